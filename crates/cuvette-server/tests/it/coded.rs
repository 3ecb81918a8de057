//! Coded results from urinalysis analyzers over the MLLP and ASTM listeners: the words a
//! strip reader writes ("NEG", "2+", "TR") are stored as the catalog's values with the text
//! as sent beside them; text that is no value is held for review as sent, never dropped and
//! never released. The synonym table is the lab's, edited on the test's page or the API.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use cuvette_app::records::ResultRow;
use cuvette_app::{Actor, RegisterPatient, Release};
use cuvette_astm::{Config, Link, Role};
use cuvette_domain::Role as Staff;
use cuvette_domain::workflow::TestStatus;
use cuvette_server::interfaces::astm;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::support::{App, app};

/// How long any one read may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

/// A lab with a urinalysis dipstick ordered on a received urine: the accession number.
async fn urine_received(app: &App) -> String {
    let patient = RegisterPatient {
        mrn: "U2207".into(),
        family_name: "Okonkwo".into(),
        given_name: "Ada".into(),
        birth_date: "1984-07-19".into(),
        sex: "F".into(),
    };
    app.a_received_specimen("ua", patient, "Dr. P. Mensah", &["UA"]).await.1
}

/// The analyzer's codes for the dipstick pads, mapped without units (the catalog's own).
const PADS: [(&str, &str); 12] = [
    ("COL", "UCOLOR"),
    ("CLA", "UCLAR"),
    ("SG", "USG"),
    ("PH", "UPH"),
    ("PRO", "UPRO"),
    ("GLU", "UGLU"),
    ("KET", "UKET"),
    ("BLD", "UBLD"),
    ("NIT", "UNIT"),
    ("LEU", "ULEU"),
    ("BIL", "UBIL"),
    ("UBG", "UUBG"),
];

async fn urinalysis_analyzer(app: &App, protocol: &str, sender: &str) {
    let supervisor = app.sign_in(Staff::Supervisor, protocol).await.actor;
    let id =
        app.lab.add_instrument(&supervisor, "Urine strip reader", protocol, sender).await.unwrap();
    for (code, test) in PADS {
        app.lab.map_test_code(&supervisor, id, code, test, "").await.unwrap();
    }
}

/// Every version of the specimen's test `code`.
async fn results(app: &App, accession: &str, code: &str) -> Vec<ResultRow> {
    let view = app.lab.specimen_view(&Actor::system(), accession).await.unwrap();
    view.tests.into_iter().find(|t| t.item.test.test_code == code).unwrap().versions
}

/// Value stored, report text, flags, the text and unit as sent.
async fn stored(
    app: &App,
    accession: &str,
    code: &str,
) -> (String, String, String, Option<String>, Option<String>) {
    let r = results(app, accession, code).await.pop().unwrap_or_else(|| panic!("{code} stored"));
    (r.value_text, r.report_text, r.flags.codes(), r.sent_value, r.sent_unit)
}

fn row(
    value: &str,
    flags: &str,
    sent: Option<&str>,
    unit: Option<&str>,
) -> (String, String, String, Option<String>, Option<String>) {
    (
        value.to_owned(),
        value.to_owned(),
        flags.to_owned(),
        sent.map(str::to_owned),
        unit.map(str::to_owned),
    )
}

/// A urine strip reader's ORU^R01 as such analyzers write it: ST values in the strip's
/// words, a unit on some pads whatever the catalog says, one pad with a remark instead of a
/// grade.
fn strip_reader_oru(accession: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|AUTION|URINE LAB|CUVETTE|LAB|20261124093000||ORU^R01^ORU_R01|UA-20261124-0001|P|2.5.1||||||UNICODE UTF-8\r\
         PID|1||U2207^^^HOSP^MR||Okonkwo^Ada||19840719|F\r\
         OBR|1||{accession}|24357-6^Urinalysis macro panel^LN|||20261124090000\r\
         OBX|1|ST|COL^Color||YELLOW||||||F\r\
         OBX|2|ST|CLA^Clarity||clear||||||F\r\
         OBX|3|NM|SG^Specific gravity||1.020||||||F\r\
         OBX|4|NM|PH^pH||6.0||||||F\r\
         OBX|5|ST|PRO^Protein||1+|mg/dL|||||F\r\
         OBX|6|ST|GLU^Glucose||neg|mg/dL|||||F\r\
         OBX|7|ST|KET^Ketones||TR|mg/dL|||||F\r\
         OBX|8|ST|BLD^Blood||2+|Ery/uL|||||F\r\
         OBX|9|CWE|NIT^Nitrite||NEG^^L||||||F\r\
         OBX|10|ST|LEU^Leukocytes||see sediment|Leu/uL|||||F\r\
         OBX|11|ST|BIL^Bilirubin||Not  Detected||||||F\r\
         OBX|12|ST|UBG^Urobilinogen||0.2|mg/dL|||||F\r"
    )
    .into_bytes()
}

/// Sends one MLLP frame and reads the acknowledgement's MSA-1 and MSA-2.
async fn send_mllp(app: &App, message: &[u8]) -> (String, String) {
    let ack = crate::support::send_mllp(app, message).await;
    let field = |path| ack.get(path).unwrap().text().into_owned();
    (field("MSA-1"), field("MSA-2"))
}

#[tokio::test]
async fn a_strip_readers_words_over_mllp_are_stored_as_the_catalogs_values_with_the_text_as_sent() {
    let app = app().await;
    urinalysis_analyzer(&app, "hl7", "AUTION").await;
    let accession = urine_received(&app).await;

    let ack = send_mllp(&app, &strip_reader_oru(&accession)).await;
    assert_eq!(ack, ("AA".into(), "UA-20261124-0001".into()), "accepted, remark and all");

    let expected = [
        ("UCOLOR", row("Yellow", "", Some("YELLOW"), None)),
        ("UCLAR", row("Clear", "", Some("clear"), None)),
        ("UPRO", row("30", "A", Some("1+"), None)),
        ("UGLU", row("Negative", "", Some("neg"), None)),
        ("UKET", row("Trace (5)", "A", Some("TR"), None)),
        ("UBLD", row("Moderate", "A", Some("2+"), Some("Ery/uL"))),
        ("UNIT", row("Negative", "", Some("NEG"), None)),
        ("UBIL", row("Negative", "", Some("Not  Detected"), None)),
        ("UUBG", row("0.2", "", None, None)),
    ];
    for (code, want) in expected {
        assert_eq!(stored(&app, &accession, code).await, want, "{code}");
    }
    // The numeric pads are as they were: no synonym, the catalog's unit.
    let gravity = stored(&app, &accession, "USG").await;
    assert_eq!((gravity.0.as_str(), gravity.3), ("1.020", None));

    // A remark where a grade belongs is kept as sent, unit and all, flagged invalid.
    let leukocytes = results(&app, &accession, "ULEU").await.pop().unwrap();
    assert_eq!(
        (
            leukocytes.value_text.as_str(),
            leukocytes.flags.codes().as_str(),
            leukocytes.sent_value.as_deref(),
            leukocytes.sent_unit.as_deref()
        ),
        ("see sediment", "INV", Some("see sediment"), Some("Leu/uL"))
    );
    assert!(
        leukocytes
            .reasons
            .iter()
            .any(|r| r.starts_with("\"see sediment\" is not one of the values")),
        "{:?}",
        leukocytes.reasons
    );
    let review = app.lab.review_queue(&Actor::system()).await.unwrap();
    assert!(review.iter().any(|w| w.test.id == leukocytes.ordered_test_id), "in the review queue");
    let technologist = app.sign_in(Staff::Technologist, "ua").await.actor;
    let item = app.lab.specimen_view(&Actor::system(), &accession).await.unwrap();
    let leu = item.tests.iter().find(|t| t.item.test.test_code == "ULEU").unwrap();
    let released = app
        .lab
        .release(&technologist, &[(leu.item.test.id, leu.item.test.row_version)], TestStatus::Final)
        .await
        .unwrap();
    assert!(matches!(released[..], [Release::Held { .. }]), "{released:?}");
    assert!(results(&app, &accession, "ULEU").await[0].released_at.is_none());
}

/// The same strip over ASTM E1394, as readers that speak it send it: R records with the
/// grade in R-4 and the unit in R-5.
#[tokio::test]
async fn a_strip_readers_words_over_astm_are_stored_as_the_catalogs_values() {
    let app = app().await;
    urinalysis_analyzer(&app, "astm", "US-3500").await;
    let accession = urine_received(&app).await;
    let (listener, addr) = astm::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let server = tokio::spawn(astm::serve(app.lab.clone(), listener));

    let message = format!(
        "H|\\^&|||US-3500^01.02|||||||P|LIS2-A2|20261124093000\r\
         P|1\r\
         O|1|{accession}||^^^PRO\\^^^BLD\\^^^NIT\\^^^LEU|R\r\
         R|1|^^^PRO|4+|mg/dL||A||F\r\
         R|2|^^^BLD|Trace|||N||F\r\
         R|3|^^^NIT|pos|||A||F\r\
         R|4|^^^LEU|***|Leu/uL||||F\r\
         L|1|N"
    );
    let records: Vec<Vec<u8>> = message.split('\r').map(|r| r.as_bytes().to_vec()).collect();
    let mut link = Link::new(Config::new(Role::Instrument));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    link.send(records, std::time::Instant::now()).unwrap();
    while let Some(sent) = link.poll_transmit() {
        stream.write_all(&sent).await.unwrap();
        if sent == [0x04] {
            break;
        }
        let reply = timeout(PATIENCE, stream.read_u8()).await.unwrap().unwrap();
        assert_eq!(reply, 0x06, "every frame acknowledged");
        link.handle_input(&[reply], std::time::Instant::now());
    }
    server.abort();

    assert_eq!(stored(&app, &accession, "UPRO").await, row(">=2000", "A", Some("4+"), None));
    assert_eq!(stored(&app, &accession, "UBLD").await, row("Trace", "A", None, None));
    assert_eq!(stored(&app, &accession, "UNIT").await, row("Positive", "A", Some("pos"), None));
    // Masked by the reader: held as sent, with its unit, never released.
    let leukocytes = results(&app, &accession, "ULEU").await.pop().unwrap();
    assert_eq!(
        (
            leukocytes.value_text.as_str(),
            leukocytes.flags.codes().as_str(),
            leukocytes.sent_unit.as_deref()
        ),
        ("***", "INV", Some("Leu/uL"))
    );
}

#[tokio::test]
async fn a_synonym_added_through_the_api_reads_the_next_result_and_its_removal_is_audited() {
    let app = app().await;
    urinalysis_analyzer(&app, "hl7", "AUTION").await;
    let accession = urine_received(&app).await;
    let supervisor = app.sign_in(Staff::Supervisor, "api").await;

    // The reader writes "1+ (Leu)" for small leukocytes; the lab teaches Cuvette its words.
    let r = app
        .api(
            &supervisor,
            Method::POST,
            "/api/v1/catalog/tests/ULEU/synonyms",
            Some(json!({ "synonym": "1+ (Leu)", "coded_value": "small" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let list = r.json();
    assert!(
        list["synonyms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["synonym"] == "1+ (Leu)" && s["coded_value"] == "Small"),
        "{list:#}"
    );
    let oru = String::from_utf8(strip_reader_oru(&accession))
        .unwrap()
        .replace("see sediment", "1+ (LEU)");
    assert_eq!(send_mllp(&app, oru.as_bytes()).await.0, "AA");
    assert_eq!(
        stored(&app, &accession, "ULEU").await,
        row("Small", "A", Some("1+ (LEU)"), Some("Leu/uL"))
    );

    // A word that is itself another value is refused with the reason, and nothing stored.
    let r = app
        .api(
            &supervisor,
            Method::POST,
            "/api/v1/catalog/tests/UNIT/synonyms",
            Some(json!({ "synonym": "positive", "coded_value": "Negative" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(
        r.json()["error"]["fields"][0]["message"],
        "\"positive\" is itself a value of UNIT; it cannot stand for \"Negative\""
    );

    // A technician may read the table but not change it.
    let technician = app.sign_in(Staff::Technician, "api").await;
    let r = app.api(&technician, Method::GET, "/api/v1/catalog/tests/UNIT/synonyms", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json()["synonyms"].as_array().unwrap().iter().any(|s| s["synonym"] == "NEG"));
    let r = app
        .api(
            &technician,
            Method::POST,
            "/api/v1/catalog/tests/UNIT/synonyms/remove",
            Some(json!({ "synonym": "NEG" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    let r = app
        .api(
            &supervisor,
            Method::POST,
            "/api/v1/catalog/tests/UNIT/synonyms/remove",
            Some(json!({ "synonym": "neg" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.json()["synonyms"].as_array().unwrap().iter().any(|s| s["synonym"] == "NEG"));
    let events = app
        .lab
        .audit_events(
            &supervisor.actor,
            &cuvette_app::records::AuditFilter {
                action: Some(cuvette_domain::audit::AuditAction::CatalogSynonymRemove),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].entity_id, "UNIT/neg");
    let before: serde_json::Value =
        serde_json::from_str(events[0].before.as_deref().unwrap()).unwrap();
    assert_eq!(before, json!({ "test": "UNIT", "synonym": "NEG", "coded_value": "Negative" }));
}

#[tokio::test]
async fn the_tests_page_adds_a_synonym_and_a_refused_one_keeps_what_was_typed() {
    let app = app().await;
    let supervisor = app.sign_in(Staff::Supervisor, "page").await;
    let page = app.get(&supervisor, "/catalog/UBLD").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<code>2+</code></td><td>Moderate</td>"), "{}", page.body);

    let refused = app
        .post_form(
            &supervisor,
            "/catalog/UBLD/synonyms",
            &[("synonym", "small"), ("coded_value", "Large")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains(
            "Error: &#34;small&#34; is itself a value of UBLD; it cannot stand for &#34;Large&#34;"
        ),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(r#"name="synonym" value="small""#), "what was typed is kept");
    assert!(refused.body.contains(r#"<option value="Large" selected>"#));
    assert!(app.lab.coded_synonyms("UBLD").unwrap().iter().all(|s| s.synonym != "small"));

    let added = app
        .post_form(
            &supervisor,
            "/catalog/UBLD/synonyms",
            &[("synonym", "+++"), ("coded_value", "Large")],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let page = app.get(&supervisor, "/catalog/UBLD").await;
    assert!(page.body.contains("<code>+++</code></td><td>Large</td>"), "{}", page.body);
}
