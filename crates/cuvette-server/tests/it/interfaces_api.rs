//! Setting up an analyzer through the JSON API, as a lab scripts a go-live: the instrument,
//! its code map (one mapping, or a CSV file exported from one analyzer and imported into its
//! twin), then its messages in the log and the quarantine, replayed or dismissed. The same
//! use cases as the interfaces screens, so the same privileges, words and audit.

use axum::http::{Method, StatusCode};
use cuvette_app::Actor;
use cuvette_app::records::AuditFilter;
use cuvette_domain::Role;
use cuvette_domain::audit::AuditAction;
use serde_json::{Value, json};

use crate::support::{App, Session, app};

const GLUCOSE_SI: &str = "mmol/L → mg/dL × 18.016 (glucose, C6H12O6, 180.156 g/mol; IUPAC 2021 standard atomic weights; PubChem CID 5793)";

/// A chemistry analyzer's result message: one OBX per (code, value, unit).
fn oru(control_id: &str, accession: &str, obx: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut m = format!(
        "MSH|^~\\&|CHEM-SI|LAB|CUVETTE|LAB|20261124081500||ORU^R01^ORU_R01|{control_id}|P|2.5.1\r\
         PID|1\r\
         OBR|1||{accession}|GLU^Glucose\r"
    );
    for (i, (code, value, unit)) in obx.iter().enumerate() {
        m.push_str(&format!("OBX|{}|NM|{code}^^LN||{value}|{unit}|||||F\r", i + 1));
    }
    m.into_bytes()
}

/// Adds the analyzer through the API; its id.
async fn chemistry_analyzer(app: &App, s: &Session, name: &str, sender: &str) -> i64 {
    let body = json!({ "name": name, "protocol": "hl7", "sender": sender });
    let r = app.api(s, Method::POST, "/api/v1/instruments", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.json()["id"].as_i64().unwrap()
}

/// A glucose tube drawn and received in the lab; its accession number.
async fn glucose_received(app: &App, s: &Session) -> String {
    let patient = json!({ "mrn": "GL100", "family_name": "Sugar", "given_name": "Ana", "birth_date": "1961-04-12", "sex": "F" });
    let order = json!({ "patient": patient, "provider": "Dr. G. Lucose", "tests": ["GLU"] });
    let r = app.api(s, Method::POST, "/api/v1/orders", Some(order)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let accession = r.json()["accessions"][0].as_str().unwrap().to_owned();
    let r = app.api(s, Method::POST, &format!("/api/v1/specimens/{accession}/collect"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let label = json!({ "mrn": "GL100", "birth_date": "1961-04-12" });
    let uri = format!("/api/v1/specimens/{accession}/receive");
    let r = app.api(s, Method::POST, &uri, Some(label)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    accession
}

async fn audited(app: &App, action: AuditAction) -> Vec<(String, Option<String>)> {
    let filter = AuditFilter { action: Some(action), ..Default::default() };
    let events = app.lab.audit_events(&Actor::system(), &filter).await.unwrap();
    events.into_iter().map(|e| (e.entity_id, e.after)).collect()
}

#[tokio::test]
async fn a_new_analyzer_is_added_configured_and_mapped_through_the_api() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "golive").await;

    let body = json!({ "name": "Chem-1", "protocol": "hl7", "sender": "CHEM-SI" });
    let r = app.api(&s, Method::POST, "/api/v1/instruments", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(
        r.json(),
        json!({ "id": id, "name": "Chem-1", "protocol": "hl7", "sender": "CHEM-SI", "active": true,
                "qc_pattern": "", "specimen_id_component": null, "charset": null,
                "unmapped_results": "hold", "codes": [] })
    );

    let settings = json!({ "unmapped_results": "store_mappable", "charset": "windows-1252", "specimen_id_component": 3 });
    let uri = format!("/api/v1/instruments/{id}");
    let r = app.api(&s, Method::PATCH, &uri, Some(settings)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.api(&s, Method::PATCH, &uri, Some(json!({ "specimen_id_component": null }))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let codes = format!("/api/v1/instruments/{id}/codes");
    let glucose = json!({ "instrument_code": "2345-7", "test_code": "GLU", "unit": "mmol/L" });
    let r = app.api(&s, Method::POST, &codes, Some(glucose)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({ "instrument_code": "2345-7", "map_as": "result", "test_code": "GLU", "unit": "mmol/L",
                "conversion": GLUCOSE_SI, "problem": null })
    );
    let research = json!({ "instrument_code": "RSRCH1", "map_as": "ignore" });
    assert_eq!(app.api(&s, Method::POST, &codes, Some(research)).await.status, StatusCode::OK);

    let r = app.api(&s, Method::GET, &uri, None).await;
    assert_eq!(
        r.json(),
        json!({ "id": id, "name": "Chem-1", "protocol": "hl7", "sender": "CHEM-SI", "active": true,
                "qc_pattern": "", "specimen_id_component": null, "charset": "windows-1252",
                "unmapped_results": "store_mappable", "codes": [
                    { "instrument_code": "2345-7", "map_as": "result", "test_code": "GLU", "unit": "mmol/L",
                      "conversion": GLUCOSE_SI, "problem": null },
                    { "instrument_code": "RSRCH1", "map_as": "ignore", "test_code": null, "unit": null,
                      "conversion": null, "problem": null } ] })
    );
    let list = app.api(&s, Method::GET, "/api/v1/instruments", None).await.json();
    assert_eq!(list["instruments"], json!([r.json()]));
    assert_eq!(app.api(&s, Method::GET, &codes, None).await.json()["codes"], r.json()["codes"]);

    // Each change audited as the screens audit it, with what it was before.
    assert_eq!(
        audited(&app, AuditAction::InstrumentUnmappedResults).await,
        [("Chem-1".to_owned(), Some(r#"{"unmapped_results":"store_mappable"}"#.to_owned()))]
    );
    assert_eq!(
        audited(&app, AuditAction::InstrumentSpecimenIdComponent).await,
        [
            ("Chem-1".to_owned(), Some(r#"{"component":null}"#.to_owned())),
            ("Chem-1".to_owned(), Some(r#"{"component":3}"#.to_owned())),
        ]
    );
    assert_eq!(
        audited(&app, AuditAction::InstrumentMapCode).await,
        [(
            "Chem-1".to_owned(),
            Some(format!(
                r#"{{"conversion":"{GLUCOSE_SI}","instrument_code":"2345-7","test_code":"GLU","unit":"mmol/L"}}"#
            ))
        )]
    );
    assert_eq!(
        audited(&app, AuditAction::InstrumentIgnoreCode).await,
        [(
            "Chem-1".to_owned(),
            Some(r#"{"instrument_code":"RSRCH1","mapped_as":"ignore"}"#.to_owned())
        )]
    );
}

#[tokio::test]
async fn the_api_refuses_what_the_screens_refuse_in_the_same_words_and_saves_nothing() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "refuse").await;
    let id = chemistry_analyzer(&app, &s, "Chem-1", "CHEM-SI").await;
    let codes = format!("/api/v1/instruments/{id}/codes");

    // Potassium in mg/dL: no conversion Cuvette knows, refused beside the unit.
    let potassium = json!({ "instrument_code": "2823-3", "test_code": "K", "unit": "mg/dL" });
    let api = app.api(&s, Method::POST, &codes, Some(potassium)).await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY);
    let words = "Potassium is reported in mmol/L and Cuvette cannot convert mg/dL to it: map the code with mmol/L (set the instrument to send it) or with a unit Cuvette converts for K: mol/L, umol/L, meq/L";
    assert_eq!(api.json()["error"]["fields"], json!([{ "field": "unit", "message": words }]));
    let form = app
        .post_form(
            &s,
            &format!("/interfaces/instruments/{id}/codes"),
            &[("instrument_code", "2823-3"), ("test_code", "K"), ("unit", "mg/dL")],
        )
        .await;
    assert_eq!(form.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(form.body.contains(words), "the form says the same: {}", form.body);
    assert_eq!(app.api(&s, Method::GET, &codes, None).await.json()["codes"], json!([]));

    // A setting that is not one, beside one that is: neither is saved.
    let uri = format!("/api/v1/instruments/{id}");
    let both = json!({ "unmapped_results": "store_mappable", "charset": "ebcdic" });
    let r = app.api(&s, Method::PATCH, &uri, Some(both)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["error"]["fields"][0]["field"], "charset");
    assert_eq!(app.api(&s, Method::GET, &uri, None).await.json()["unmapped_results"], "hold");

    // An instrument without a name; one that does not exist; one named twice.
    let r = app
        .api(
            &s,
            Method::POST,
            "/api/v1/instruments",
            Some(json!({ "protocol": "astm", "sender": "X" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.json()["error"]["fields"],
        json!([{ "field": "name", "message": "name the instrument (up to 100 characters)" }])
    );
    let r = app.api(&s, Method::GET, "/api/v1/instruments/999", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["message"], "instrument not found");
    let again = json!({ "name": "Chem-1", "protocol": "hl7", "sender": "CHEM-2" });
    let r = app.api(&s, Method::POST, "/api/v1/instruments", Some(again)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

    // Who may: a technologist reads the instruments and the log but maps nothing; no key, no answer.
    let technologist = app.sign_in(Role::Technologist, "bench").await;
    assert_eq!(app.api(&technologist, Method::GET, &codes, None).await.status, StatusCode::OK);
    let glucose = json!({ "instrument_code": "2345-7", "test_code": "GLU" });
    let r = app.api(&technologist, Method::POST, &codes, Some(glucose)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let file = json!({ "csv": "instrument_code,map_as,test_code,unit\r\n2345-7,result,GLU,\r\n" });
    let r = app.api(&technologist, Method::POST, &format!("{codes}/csv"), Some(file)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = app.api(&technologist, Method::PATCH, &uri, Some(json!({ "charset": "ascii" }))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let anonymous = Session { cookie: String::new(), csrf: String::new(), actor: Actor::system() };
    assert_eq!(
        app.api(&anonymous, Method::GET, "/api/v1/instruments", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let student = app.sign_in(Role::Student, "learns").await;
    let r = app
        .api(
            &student,
            Method::POST,
            "/api/v1/messages/1/dismiss",
            Some(json!({ "reason": "test" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(audited(&app, AuditAction::InstrumentMapCode).await.is_empty());
}

#[tokio::test]
async fn an_analyzer_renamed_and_given_a_new_sender_takes_its_messages_by_that_sender_from_then_on()
{
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "rename").await;
    let id = chemistry_analyzer(&app, &s, "Chem-1", "CHEM-SI").await;
    let uri = format!("/api/v1/instruments/{id}");
    let r = app
        .api(
            &s,
            Method::POST,
            &format!("{uri}/codes"),
            Some(json!({ "instrument_code": "2345-7", "test_code": "GLU", "unit": "mmol/L" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // The analyzer is replaced by its successor on the same bench: new name, new MSH-3.
    let change = json!({ "name": "Chem-1 (cobas pro)", "sender": "COBAS-PRO" });
    let r = app.api(&s, Method::PATCH, &uri, Some(change)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.json()["name"].clone(), r.json()["sender"].clone(), r.json()["protocol"].clone()),
        (json!("Chem-1 (cobas pro)"), json!("COBAS-PRO"), json!("hl7"))
    );
    assert_eq!(r.json()["codes"][0]["instrument_code"], "2345-7", "its code map stays");
    let events = audited(&app, AuditAction::InstrumentEdit).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "Chem-1 (cobas pro)");
    let after: Value = serde_json::from_str(events[0].1.as_deref().unwrap()).unwrap();
    assert_eq!(
        after,
        json!({ "name": "Chem-1 (cobas pro)", "protocol": "hl7", "sender": "COBAS-PRO" })
    );

    // Its messages now come under the new sender; the old one is no instrument any more.
    let accession = glucose_received(&app, &s).await;
    let new = String::from_utf8(oru("RN-1", &accession, &[("2345-7", "5.2", "mmol/L")]))
        .unwrap()
        .replace("|CHEM-SI|", "|COBAS-PRO|");
    let receive = |raw: Vec<u8>| {
        let lab = app.lab.clone();
        async move {
            let (_, ack) =
                cuvette_app::interop::hl7::receive(&lab, &raw, "mllp:2575", "10.1.2.3:40112")
                    .await
                    .unwrap();
            String::from_utf8(ack).unwrap()
        }
    };
    let ack = receive(new.into_bytes()).await;
    assert!(ack.contains("MSA|AA|RN-1"), "{ack}");
    let ack = receive(oru("RN-2", &accession, &[("2345-7", "5.2", "mmol/L")])).await;
    assert!(ack.contains("MSA|AE|RN-2"), "{ack}");
    assert!(
        ack.contains("ERR||MSH^1^3|103^Table value not found^HL70357|E"),
        "the old sender is no instrument now: {ack}"
    );

    // A sender another instrument has is refused, in the words of the screen, and nothing
    // is saved; so is a name another has.
    chemistry_analyzer(&app, &s, "Chem-2", "CHEM-2").await;
    let words = "Chem-2 already sends as \"CHEM-2\" over HL7: each instrument needs a sender of its own (HL7 MSH-3, ASTM H-5), or its messages would be taken as the other's";
    let r = app
        .api(&s, Method::PATCH, &uri, Some(json!({ "name": "Chem-9", "sender": "CHEM-2" })))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.json()["error"]["fields"], json!([{ "field": "sender", "message": words }]));
    let form = app
        .post_form(
            &s,
            &format!("/interfaces/instruments/{id}/identity"),
            &[("name", "Chem-9"), ("protocol", "hl7"), ("sender", "CHEM-2")],
        )
        .await;
    assert_eq!(form.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        form.body.contains(&words.replace('"', "&#34;").replace('\'', "&#39;")),
        "the screen says the same: {}",
        form.body
    );
    assert!(form.body.contains("value=\"Chem-9\""), "what was typed is kept");
    let r = app.api(&s, Method::PATCH, &uri, Some(json!({ "name": "Chem-2" }))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.json()["error"]["message"], "an instrument named \"Chem-2\" exists");
    let adding = json!({ "name": "Chem-3", "protocol": "hl7", "sender": "CHEM-2" });
    let r = app.api(&s, Method::POST, "/api/v1/instruments", Some(adding)).await;
    assert_eq!(r.json()["error"]["fields"], json!([{ "field": "sender", "message": words }]));
    let r = app.api(&s, Method::GET, &uri, None).await;
    assert_eq!(
        (r.json()["name"].clone(), r.json()["sender"].clone()),
        (json!("Chem-1 (cobas pro)"), json!("COBAS-PRO"))
    );
    assert_eq!(audited(&app, AuditAction::InstrumentEdit).await.len(), 1, "only the change made");

    // The screen renames it too, audited the same way.
    let form = app
        .post_form(
            &s,
            &format!("/interfaces/instruments/{id}/identity"),
            &[("name", "Chem-1"), ("protocol", "hl7"), ("sender", "COBAS-PRO")],
        )
        .await;
    assert_eq!(form.status, StatusCode::SEE_OTHER, "{}", form.body);
    assert_eq!(app.api(&s, Method::GET, &uri, None).await.json()["name"], "Chem-1");
    assert_eq!(audited(&app, AuditAction::InstrumentEdit).await.len(), 2);
}

#[tokio::test]
async fn a_code_map_exported_from_one_analyzer_imports_into_its_twin_unchanged() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "twins").await;
    let first = chemistry_analyzer(&app, &s, "Chem-1", "CHEM-1").await;
    let second = chemistry_analyzer(&app, &s, "Chem-2", "CHEM-2").await;
    let codes = format!("/api/v1/instruments/{first}/codes");
    for mapping in [
        json!({ "instrument_code": "2345-7", "test_code": "GLU", "unit": "mmol/L" }),
        json!({ "instrument_code": "2823-3", "test_code": "K" }),
        json!({ "instrument_code": "=DIL", "map_as": "ignore" }),
        json!({ "instrument_code": "Blasts?", "map_as": "flag" }),
    ] {
        let r = app.api(&s, Method::POST, &codes, Some(mapping)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    let file = app.api(&s, Method::GET, &format!("{codes}/csv"), None).await.json();
    assert_eq!(file["filename"], format!("cuvette-codes-{first}-chem-1.csv"));
    // The spreadsheet guard: a code starting with = is written as text, not as a formula.
    assert_eq!(
        file["csv"],
        "instrument_code,map_as,test_code,unit\r\n\
         2345-7,result,GLU,mmol/L\r\n\
         2823-3,result,K,mmol/L\r\n\
         '=DIL,ignore,,\r\n\
         Blasts?,flag,,\r\n"
    );
    let download = app.get(&s, &format!("/interfaces/instruments/{first}/codes.csv")).await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(download.body, file["csv"].as_str().unwrap(), "the screen downloads the same file");

    let import = format!("/api/v1/instruments/{second}/codes/csv");
    let check = json!({ "csv": file["csv"], "dry_run": true });
    let r = app.api(&s, Method::POST, &import, Some(check)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["dry_run"], true);
    assert_eq!(r.json()["codes"].as_array().unwrap().len(), 4);
    let twin = format!("/api/v1/instruments/{second}/codes");
    assert_eq!(
        app.api(&s, Method::GET, &twin, None).await.json()["codes"],
        json!([]),
        "a dry run saves nothing"
    );

    let r = app.api(&s, Method::POST, &import, Some(json!({ "csv": file["csv"] }))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let original = app.api(&s, Method::GET, &codes, None).await.json()["codes"].clone();
    assert_eq!(r.json()["codes"], original, "the import answers what it saved");
    assert_eq!(app.api(&s, Method::GET, &twin, None).await.json()["codes"], original);
    let mapped = audited(&app, AuditAction::InstrumentMapCode).await;
    assert_eq!(mapped.iter().filter(|(i, _)| i == "Chem-2").count(), 2, "each row audited");
}

#[tokio::test]
async fn a_code_map_file_with_a_unit_cuvette_cannot_convert_is_refused_whole_naming_the_row() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "badrow").await;
    let id = chemistry_analyzer(&app, &s, "Chem-1", "CHEM-1").await;
    let file = "instrument_code,map_as,test_code,unit\r\n\
                2345-7,result,GLU,mmol/L\r\n\
                2823-3,result,K,mg/dL\r\n\
                2160-0,result,CREAT,umol/L\r\n\
                2345-7,ignore,,\r\n";
    let import = format!("/api/v1/instruments/{id}/codes/csv");

    let r = app.api(&s, Method::POST, &import, Some(json!({ "csv": file }))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unit = "row 3, unit: Potassium is reported in mmol/L and Cuvette cannot convert mg/dL to it: map the code with mmol/L (set the instrument to send it) or with a unit Cuvette converts for K: mol/L, umol/L, meq/L";
    let twice = "row 5, instrument_code: 2345-7 is mapped on row 2 already: keep one of the two";
    assert_eq!(
        r.json()["error"]["fields"],
        json!([{ "field": "row 3, unit", "message": unit }, { "field": "row 5, instrument_code", "message": twice }])
    );
    let codes = format!("/api/v1/instruments/{id}/codes");
    assert_eq!(app.api(&s, Method::GET, &codes, None).await.json()["codes"], json!([]));

    // The screen refuses the same file with the same words and keeps it for correction.
    let form = app
        .post_form(&s, &format!("/interfaces/instruments/{id}/codes/import"), &[("csv", file)])
        .await;
    assert_eq!(form.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(form.body.contains(unit), "{}", form.body);
    assert!(form.body.contains("row 5, instrument_code: 2345-7 is mapped on row 2 already"));
    assert!(form.body.contains("2160-0,result,CREAT,umol/L"), "what was pasted is kept");
    assert_eq!(app.api(&s, Method::GET, &codes, None).await.json()["codes"], json!([]));
    assert!(audited(&app, AuditAction::InstrumentMapCode).await.is_empty());

    // A file without its header is refused before any row is read.
    let r = app
        .api(&s, Method::POST, &import, Some(json!({ "csv": "2345-7,result,GLU,mmol/L\r\n" })))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.json()["error"]["fields"][0]["message"],
        "row 1, column 1: \"2345-7\" is not a column of a code map: the columns are instrument_code, map_as, test_code, unit"
    );
}

#[tokio::test]
async fn a_quarantined_message_is_read_replayed_or_dismissed_through_the_api() {
    let app = app().await;
    let s = app.sign_in(Role::Supervisor, "quarantine").await;
    let id = chemistry_analyzer(&app, &s, "Chem-1", "CHEM-SI").await;
    let accession = glucose_received(&app, &s).await;
    let receive = |raw: Vec<u8>| {
        let lab = app.lab.clone();
        async move {
            cuvette_app::interop::hl7::receive(&lab, &raw, "mllp:2575", "10.1.2.3:40112")
                .await
                .unwrap()
        }
    };

    // Glucose in mmol/L before its code is mapped: quarantined, the ACK naming OBX-3.
    receive(oru("CHEM0001", &accession, &[("2345-7", "5.2", "mmol/L")])).await;
    // A message for a specimen no one ordered: quarantined too.
    receive(oru("CHEM0002", "26-0000999-3", &[("2345-7", "5.0", "mmol/L")])).await;

    let log = app.api(&s, Method::GET, &format!("/api/v1/quarantine?instrument={id}"), None).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let waiting = log.json()["messages"].clone();
    let ids: Vec<i64> =
        waiting.as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{waiting}");
    let (stranger, unmapped) = (ids[0], ids[1]);
    assert_eq!(
        waiting[1]["detail"],
        "OBX 1: test code \"2345-7\" from Chem-1 is not mapped to a catalog test: map it under Interfaces"
    );

    let r = app.api(&s, Method::GET, &format!("/api/v1/messages/{unmapped}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let detail = r.json();
    assert_eq!(detail["message"]["outcome"], "quarantined");
    assert_eq!(detail["message"]["quarantine"], "open");
    assert_eq!(detail["message"]["control_id"], "CHEM0001");
    assert_eq!(detail["ack_code"], "AE");
    assert_eq!(
        detail["ack_errors"],
        json!([{ "location": "OBX^1^3", "code": "103", "code_name": "Table value not found", "severity": "E",
                 "message": "test code \"2345-7\" from Chem-1 is not mapped to a catalog test: map it under Interfaces" }])
    );
    assert!(detail["raw"].as_str().unwrap().contains("OBX|1|NM|2345-7^^LN||5.2|mmol/L"));

    // Filters: the direction and outcome as codes, the instrument by id; a wrong one refused.
    let q = format!("/api/v1/messages?direction=in&outcome=quarantined&instrument={id}&limit=1");
    let page = app.api(&s, Method::GET, &q, None).await.json();
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_before"], stranger);
    let r = app.api(&s, Method::GET, "/api/v1/messages?outcome=lost", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("is not an outcome: choose one of accepted, quarantined"),
        "{}",
        r.body
    );
    let r = app.api(&s, Method::GET, "/api/v1/messages?instrument=999", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Map the code, replay the message: the glucose is stored, the original marked replayed.
    let codes = format!("/api/v1/instruments/{id}/codes");
    let glucose = json!({ "instrument_code": "2345-7", "test_code": "GLU", "unit": "mmol/L" });
    assert_eq!(app.api(&s, Method::POST, &codes, Some(glucose)).await.status, StatusCode::OK);
    let uri = format!("/api/v1/messages/{unmapped}/replay");
    let r = app.api(&s, Method::POST, &uri, Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let replayed = r.json();
    assert_eq!(replayed["original"]["quarantine"], "replayed");
    assert_eq!(replayed["replay"]["outcome"], "accepted");
    assert_eq!(replayed["replay"]["results"], 1);
    assert_eq!(replayed["replay"]["replay_of"], Value::Null);
    assert_eq!(replayed["replay"]["channel"], "replay by supervisor-quarantine");
    let r = app.api(&s, Method::POST, &uri, Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "replayed once only");
    assert_eq!(r.json()["error"]["message"], "this message is not waiting in the quarantine");

    // The stranger's message is dismissed, with a reason; without one it is refused.
    let uri = format!("/api/v1/messages/{stranger}/dismiss");
    let r = app.api(&s, Method::POST, &uri, Some(json!({ "reason": "" }))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.json()["error"]["fields"],
        json!([{ "field": "reason", "message": "say why the message is dismissed" }])
    );
    let r = app
        .api(&s, Method::POST, &uri, Some(json!({ "reason": "sent by the vendor's test" })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["quarantine"], "dismissed");
    let left = app.api(&s, Method::GET, "/api/v1/quarantine", None).await.json();
    assert_eq!(left["messages"], json!([]));
    assert_eq!(
        audited(&app, AuditAction::QuarantineDismiss).await,
        [(
            stranger.to_string(),
            Some(r#"{"quarantine":"dismissed","reason":"sent by the vendor's test"}"#.to_owned())
        )]
    );
    assert_eq!(audited(&app, AuditAction::QuarantineReplay).await.len(), 1);
}
