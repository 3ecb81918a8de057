//! The FHIR API as an EHR uses it: reading released results shaped to US Core, searching and
//! paging through them, and being refused with an OperationOutcome.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use cuvette_app::records::PatientRow;
use cuvette_app::{Actor, Correction, EnteredResult, IdentityCheck, PlaceOrder, RegisterPatient};
use cuvette_domain::Role;
use cuvette_domain::scope::Scopes;
use cuvette_domain::workflow::TestStatus;
use serde_json::Value;

use crate::support::{App, PASSWORD, app};

/// The lab's staff for these walks.
struct Staff {
    phlebotomist: Actor,
    assistant: Actor,
    technologist: Actor,
}

async fn staff(app: &App) -> Staff {
    Staff {
        phlebotomist: app.sign_in(Role::Phlebotomist, "fhir").await.actor,
        assistant: app.sign_in(Role::LabAssistant, "fhir").await.actor,
        technologist: app.sign_in(Role::Technologist, "fhir").await.actor,
    }
}

async fn a_patient(app: &App, staff: &Staff, mrn: &str) -> PatientRow {
    let form = RegisterPatient {
        mrn: mrn.into(),
        family_name: "Okafor".into(),
        given_name: "Ada".into(),
        birth_date: "1961-04-12".into(),
        sex: "F".into(),
    };
    app.lab.register_patient(&staff.phlebotomist, &form).await.unwrap()
}

/// `tests` ordered for `patient`, collected at `collected` and received: the accession.
async fn a_specimen(
    app: &App,
    staff: &Staff,
    patient: &PatientRow,
    tests: &[&str],
    collected: &str,
) -> String {
    app.clock.set(collected.parse().unwrap());
    let order = PlaceOrder {
        patient_id: patient.id,
        provider: "Dr. Osei".into(),
        priority: "routine".into(),
        tests: tests.iter().map(|t| (*t).to_owned()).collect(),
        clinical_note: String::new(),
        placer_number: None,
    };
    let placed = app.lab.place_order(&staff.phlebotomist, &order).await.unwrap();
    let accession = placed.specimens[0].accession.clone();
    app.lab.collect(&staff.phlebotomist, &accession).await.unwrap();
    let check = IdentityCheck {
        mrn: Some(patient.mrn.clone()),
        birth_date: Some(patient.birth_date.clone()),
        family_name: None,
    };
    app.lab.receive(&staff.assistant, &accession, &check).await.unwrap();
    accession
}

/// Enters `values` (test code → text) on the specimen; releases them when `release`.
/// Returns the ordered test ids by code.
async fn results(
    app: &App,
    staff: &Staff,
    accession: &str,
    values: &[(&str, &str)],
    release: bool,
) -> Vec<(String, i64)> {
    let view = app.lab.specimen_view(&staff.technologist, accession).await.unwrap();
    let entries: Vec<EnteredResult> = values
        .iter()
        .map(|(code, text)| {
            let t = view.tests.iter().find(|t| t.item.test.test_code == *code).unwrap();
            EnteredResult {
                ordered_test_id: t.item.test.id,
                row_version: t.item.test.row_version,
                text: (*text).into(),
            }
        })
        .collect();
    app.lab.enter_results(&staff.technologist, &entries, None).await.unwrap();
    let view = app.lab.specimen_view(&staff.technologist, accession).await.unwrap();
    if release {
        let entered: Vec<(i64, i64)> = view
            .tests
            .iter()
            .filter(|t| t.item.result.as_ref().is_some_and(|r| r.released_at.is_none()))
            .map(|t| (t.item.test.id, t.item.test.row_version))
            .collect();
        let outcomes =
            app.lab.release(&staff.technologist, &entered, TestStatus::Final).await.unwrap();
        for o in &outcomes {
            assert!(matches!(o, cuvette_app::Release::Released { .. }), "released: {o:?}");
        }
    }
    view.tests.iter().map(|t| (t.item.test.test_code.clone(), t.item.test.id)).collect()
}

fn id_of(ids: &[(String, i64)], code: &str) -> i64 {
    ids.iter().find(|(c, _)| c == code).unwrap().1
}

/// An API key acting as a technologist with these FHIR scopes.
async fn a_key_with(app: &App, name: &str, scopes: &str) -> String {
    let scopes = Scopes::parse(scopes).unwrap();
    app.lab
        .create_api_key_with_scopes(&Actor::system(), name, Role::Technologist, &scopes)
        .await
        .unwrap()
}

/// A key reading every FHIR resource.
async fn a_key(app: &App, name: &str) -> String {
    a_key_with(app, name, "system/*.read").await
}

/// A FHIR GET with the key: status, content type and body.
async fn get(app: &App, key: &str, uri: &str) -> (StatusCode, Value) {
    let reply = app.api_key(key, Method::GET, uri, None).await;
    (reply.status, reply.json())
}

/// The path and query of a link the server wrote (`http://host/fhir/...`).
fn path_of(url: &str) -> String {
    let at = url.find("/fhir/").unwrap_or_else(|| panic!("not a FHIR link: {url}"));
    url[at..].to_owned()
}

fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == relation)
        .map(|l| l["url"].as_str().unwrap().to_owned())
}

fn matches(bundle: &Value) -> Vec<&Value> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter().filter(|e| e["search"]["mode"] == "match").map(|e| &e["resource"]).collect()
        })
        .unwrap_or_default()
}

fn assert_outcome(body: &Value, code: &str, expression: Option<&str>) {
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    assert_eq!(body["issue"][0]["code"], code, "{body}");
    assert!(!body["issue"][0]["diagnostics"].as_str().unwrap().is_empty());
    if let Some(e) = expression {
        assert_eq!(body["issue"][0]["expression"][0], e, "{body}");
    }
}

#[tokio::test]
async fn an_ehr_reads_a_released_high_potassium_as_a_us_core_laboratory_result() {
    let app = app().await;
    let staff = staff(&app).await;
    let patient = a_patient(&app, &staff, "MRN-FHIR-1").await;
    let acc = a_specimen(&app, &staff, &patient, &["K", "CREAT"], "2026-11-24T07:30:00Z").await;
    let ids = results(&app, &staff, &acc, &[("K", "5.8"), ("CREAT", "<0.15")], true).await;
    let key = a_key(&app, "ehr").await;

    let reply = app
        .api_key(&key, Method::GET, &format!("/fhir/Observation/{}", id_of(&ids, "K")), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let obs = reply.json();
    assert_eq!(obs["resourceType"], "Observation");
    assert_eq!(
        obs["meta"]["profile"][0],
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"
    );
    assert_eq!(obs["status"], "final");
    assert_eq!(obs["category"][0]["coding"][0]["code"], "laboratory");
    assert_eq!(obs["code"]["coding"][0]["system"], "http://loinc.org");
    assert_eq!(obs["code"]["coding"][0]["code"], "2823-3");
    assert_eq!(obs["subject"]["reference"], format!("Patient/{}", patient.id));
    assert_eq!(obs["effectiveDateTime"], "2026-11-24T07:30:00Z");
    assert!(obs["issued"].is_string());
    assert_eq!(obs["valueQuantity"]["value"], 5.8);
    assert_eq!(obs["valueQuantity"]["system"], "http://unitsofmeasure.org");
    assert_eq!(obs["valueQuantity"]["code"], "mmol/L");
    assert_eq!(obs["interpretation"][0]["coding"][0]["code"], "H");
    assert_eq!(obs["referenceRange"][0]["low"]["value"], 3.5);
    assert_eq!(obs["referenceRange"][0]["high"]["value"], 5.1);
    assert!(obs["specimen"]["reference"].as_str().unwrap().starts_with("Specimen/"));
    assert!(obs["performer"][0]["display"].is_string());

    // A value below the measuring range keeps its comparator.
    let (status, creat) =
        get(&app, &key, &format!("/fhir/Observation/{}", id_of(&ids, "CREAT"))).await;
    assert_eq!(status, StatusCode::OK, "{creat}");
    assert_eq!(creat["valueQuantity"]["comparator"], "<");
    assert_eq!(creat["valueQuantity"]["value"], 0.15);
    assert_eq!(creat["valueQuantity"]["code"], "mg/dL");
}

#[tokio::test]
async fn a_result_not_yet_released_is_not_served_to_a_physician_system() {
    let app = app().await;
    let staff = staff(&app).await;
    let patient = a_patient(&app, &staff, "MRN-FHIR-2").await;
    let acc = a_specimen(&app, &staff, &patient, &["K"], "2026-11-24T07:30:00Z").await;
    let ids = results(&app, &staff, &acc, &[("K", "4.1")], false).await;
    let key = a_key(&app, "ehr").await;

    let (status, body) = get(&app, &key, &format!("/fhir/Observation/{}", id_of(&ids, "K"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_outcome(&body, "not-found", None);
    let (status, bundle) =
        get(&app, &key, &format!("/fhir/Observation?patient={}", patient.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(matches(&bundle).is_empty(), "{bundle}");
    // The order itself is visible, still active, and the report does not exist yet.
    let (status, sr) = get(&app, &key, &format!("/fhir/ServiceRequest/{}", id_of(&ids, "K"))).await;
    assert_eq!(status, StatusCode::OK, "{sr}");
    assert_eq!(sr["status"], "active");
    let (_, reports) =
        get(&app, &key, &format!("/fhir/DiagnosticReport?patient={}", patient.id)).await;
    assert!(matches(&reports).is_empty(), "{reports}");
}

#[tokio::test]
async fn a_corrected_result_is_served_as_corrected_with_the_reason() {
    let app = app().await;
    let staff = staff(&app).await;
    let patient = a_patient(&app, &staff, "MRN-FHIR-3").await;
    let acc = a_specimen(&app, &staff, &patient, &["K"], "2026-11-24T07:30:00Z").await;
    let ids = results(&app, &staff, &acc, &[("K", "4.1")], true).await;
    let k = id_of(&ids, "K");
    let view = app.lab.specimen_view(&staff.technologist, &acc).await.unwrap();
    let row_version = view.tests[0].item.test.row_version;
    let correction =
        Correction { reason: "wrong sample loaded".into(), signature: PASSWORD.into() };
    let entry = EnteredResult { ordered_test_id: k, row_version, text: "4.6".into() };
    app.lab.enter_results(&staff.technologist, &[entry], Some(&correction)).await.unwrap();
    let key = a_key(&app, "ehr").await;

    // Until the correction is released the EHR keeps reading the released value.
    let (_, obs) = get(&app, &key, &format!("/fhir/Observation/{k}")).await;
    assert_eq!(obs["valueQuantity"]["value"], 4.1, "{obs}");
    let view = app.lab.specimen_view(&staff.technologist, &acc).await.unwrap();
    let t = &view.tests[0].item.test;
    app.lab
        .release(&staff.technologist, &[(t.id, t.row_version)], TestStatus::Final)
        .await
        .unwrap();
    let (_, obs) = get(&app, &key, &format!("/fhir/Observation/{k}")).await;
    assert_eq!(obs["status"], "corrected", "{obs}");
    assert_eq!(obs["valueQuantity"]["value"], 4.6);
    assert!(obs["note"][0]["text"].as_str().unwrap().contains("wrong sample loaded"));
    let (_, corrected) = get(&app, &key, "/fhir/Observation?status=corrected").await;
    assert_eq!(matches(&corrected).len(), 1);
    let (_, finals) = get(&app, &key, "/fhir/Observation?status=final").await;
    assert!(matches(&finals).is_empty(), "{finals}");
}

#[tokio::test]
async fn an_ehr_searches_a_patients_potassium_results_since_monday_and_pages_through_them() {
    let app = app().await;
    let staff = staff(&app).await;
    let patient = a_patient(&app, &staff, "MRN-FHIR-4").await;
    let other = a_patient(&app, &staff, "MRN-FHIR-5").await;
    // Potassium every morning from Friday 20 to Tuesday 24 November; Monday is the 23rd.
    let mut since_monday = Vec::new();
    for (day, value) in [(20, "4.0"), (21, "4.2"), (22, "4.4"), (23, "4.6"), (24, "4.8")] {
        let at = format!("2026-11-{day}T07:00:00Z");
        let acc = a_specimen(&app, &staff, &patient, &["K", "NA"], &at).await;
        let ids = results(&app, &staff, &acc, &[("K", value), ("NA", "140")], true).await;
        if day >= 23 {
            since_monday.push(id_of(&ids, "K"));
        }
    }
    let acc = a_specimen(&app, &staff, &other, &["K"], "2026-11-24T07:00:00Z").await;
    results(&app, &staff, &acc, &[("K", "3.9")], true).await;
    let key = a_key(&app, "ehr").await;

    let mut next = Some(format!(
        "/fhir/Observation?patient=Patient/{}&code=http%3A%2F%2Floinc.org%7C2823-3&date=ge2026-11-23&_count=1",
        patient.id
    ));
    let mut seen = Vec::new();
    while let Some(uri) = next {
        let (status, bundle) = get(&app, &key, &uri).await;
        assert_eq!(status, StatusCode::OK, "{bundle}");
        assert_eq!(bundle["type"], "searchset");
        assert!(link(&bundle, "self").is_some());
        for obs in matches(&bundle) {
            assert_eq!(obs["code"]["coding"][0]["code"], "2823-3");
            seen.push(obs["id"].as_str().unwrap().parse::<i64>().unwrap());
        }
        next = link(&bundle, "next").map(|u| path_of(&u));
    }
    assert_eq!(seen, since_monday);

    // Before Monday, and on Monday only.
    let (_, before) = get(
        &app,
        &key,
        &format!("/fhir/Observation?patient={}&code=2823-3&date=lt2026-11-23", patient.id),
    )
    .await;
    assert_eq!(matches(&before).len(), 3);
    let (_, monday) = get(
        &app,
        &key,
        &format!("/fhir/Observation?patient={}&code=2823-3&date=eq2026-11-23", patient.id),
    )
    .await;
    assert_eq!(matches(&monday).len(), 1);
    let (_, window) = get(
        &app,
        &key,
        &format!(
            "/fhir/Observation?patient={}&date=gt2026-11-20&date=le2026-11-22&category=laboratory",
            patient.id
        ),
    )
    .await;
    assert_eq!(matches(&window).len(), 4, "two days of potassium and sodium");
    let (_, included) = get(
        &app,
        &key,
        &format!("/fhir/Observation?patient={}&_include=Observation:patient&_count=3", patient.id),
    )
    .await;
    let entries = included["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "three results and their patient once");
    assert_eq!(entries[3]["search"]["mode"], "include");
    assert_eq!(entries[3]["resource"]["resourceType"], "Patient");
}

#[tokio::test]
async fn paging_through_more_than_a_thousand_results_returns_each_once_in_order() {
    let app = app().await;
    let staff = staff(&app).await;
    let patient = a_patient(&app, &staff, "MRN-FHIR-6").await;
    const BMP: [(&str, &str); 8] = [
        ("NA", "140"),
        ("K", "4.2"),
        ("CL", "102"),
        ("CO2", "25"),
        ("BUN", "14"),
        ("CREAT", "0.9"),
        ("GLU", "90"),
        ("CA", "9.4"),
    ];
    let mut released = BTreeSet::new();
    let mut day = 0;
    while released.len() <= 1000 {
        let at = jiff::Timestamp::from_second(1_790_000_000 + day * 3600).unwrap().to_string();
        day += 1;
        let acc = a_specimen(&app, &staff, &patient, &["BMP"], &at).await;
        for (_, id) in results(&app, &staff, &acc, &BMP, true).await {
            released.insert(id);
        }
    }
    let key = a_key(&app, "ehr").await;
    let mut next = Some(format!("/fhir/Observation?patient={}&_count=97", patient.id));
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(uri) = next {
        let (status, bundle) = get(&app, &key, &uri).await;
        assert_eq!(status, StatusCode::OK, "{bundle}");
        pages += 1;
        for obs in matches(&bundle) {
            seen.push(obs["id"].as_str().unwrap().parse::<i64>().unwrap());
        }
        next = link(&bundle, "next").map(|u| path_of(&u));
    }
    let expected: Vec<i64> = released.into_iter().collect();
    assert!(expected.len() > 1000);
    assert_eq!(seen, expected, "every released result once, in id order");
    assert_eq!(pages, expected.len().div_ceil(97));
}

#[tokio::test]
async fn a_lab_report_lists_its_results_and_links_the_pdf() {
    let app = app().await;
    let staff = staff(&app).await;
    let patient = a_patient(&app, &staff, "MRN-FHIR-7").await;
    let acc = a_specimen(&app, &staff, &patient, &["K", "NA"], "2026-11-24T07:30:00Z").await;
    let ids = results(&app, &staff, &acc, &[("K", "4.4")], true).await;
    let key = a_key(&app, "ehr").await;

    // Sodium is still open: the report is partial.
    let (status, bundle) = get(
        &app,
        &key,
        &format!("/fhir/DiagnosticReport?identifier={acc}&_include=DiagnosticReport:result"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    let reports = matches(&bundle);
    assert_eq!(reports.len(), 1);
    let report = reports[0];
    assert_eq!(report["status"], "partial");
    assert_eq!(report["category"][0]["coding"][0]["code"], "LAB");
    assert_eq!(report["result"].as_array().unwrap().len(), 1);
    assert_eq!(report["result"][0]["reference"], format!("Observation/{}", id_of(&ids, "K")));
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries[1]["resource"]["resourceType"], "Observation");
    let pdf = report["presentedForm"][0]["url"].as_str().unwrap();
    assert_eq!(report["presentedForm"][0]["contentType"], "application/pdf");
    let reply = app.api_key(&key, Method::GET, &path_of(pdf), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.starts_with("%PDF"));

    results(&app, &staff, &acc, &[("NA", "141")], true).await;
    let id = report["id"].as_str().unwrap();
    let (_, report) = get(&app, &key, &format!("/fhir/DiagnosticReport/{id}")).await;
    assert_eq!(report["status"], "final");
    assert_eq!(report["result"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn patients_specimens_and_orders_are_found_by_their_identifiers() {
    let app = app().await;
    let staff = staff(&app).await;
    let patient = a_patient(&app, &staff, "MRN-FHIR-8").await;
    let acc = a_specimen(&app, &staff, &patient, &["K"], "2026-11-24T07:30:00Z").await;
    let key = a_key(&app, "ehr").await;

    let (_, found) =
        get(&app, &key, "/fhir/Patient?identifier=urn%3Acuvette%3Amrn%7CMRN-FHIR-8").await;
    let patients = matches(&found);
    assert_eq!(patients.len(), 1, "{found}");
    assert_eq!(patients[0]["identifier"][0]["value"], "MRN-FHIR-8");
    assert_eq!(patients[0]["gender"], "female");
    assert_eq!(patients[0]["birthDate"], "1961-04-12");
    let (_, specimens) =
        get(&app, &key, &format!("/fhir/Specimen?identifier={acc}&_include=Specimen:patient"))
            .await;
    let specimen = matches(&specimens)[0].clone();
    assert_eq!(specimen["accessionIdentifier"]["value"], acc.as_str());
    assert_eq!(specimen["status"], "available");
    assert_eq!(specimen["collection"]["collectedDateTime"], "2026-11-24T07:30:00Z");
    let (_, orders) = get(
        &app,
        &key,
        &format!(
            "/fhir/ServiceRequest?patient={}&code=http%3A%2F%2Floinc.org%7C2823-3",
            patient.id
        ),
    )
    .await;
    let orders = matches(&orders);
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["intent"], "order");
    assert_eq!(orders[0]["requester"]["display"], "Dr. Osei");
    let (status, read) = get(&app, &key, &format!("/fhir/Patient/{}", patient.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["name"][0]["family"], "Okafor");
}

#[tokio::test]
async fn bad_searches_are_refused_with_an_operation_outcome_naming_the_parameter() {
    let app = app().await;
    let key = a_key(&app, "ehr").await;
    for (uri, expression) in [
        ("/fhir/Observation?colour=red", "colour"),
        ("/fhir/Observation?date=yesterday", "date"),
        ("/fhir/Observation?date=ap2026-11-23", "date"),
        ("/fhir/Observation?_count=0", "_count"),
        ("/fhir/Observation?_count=5000", "_count"),
        ("/fhir/Observation?patient=Practitioner/4", "patient"),
        ("/fhir/Observation?status=done", "status"),
        ("/fhir/Observation?_include=Observation:performer", "_include"),
        ("/fhir/Observation?code:text=potassium", "code:text"),
        ("/fhir/Specimen?identifier=26-123", "identifier"),
        ("/fhir/Patient?code=2823-3", "code"),
    ] {
        let reply = app.api_key(&key, Method::GET, uri, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}: {}", reply.body);
        assert_outcome(&reply.json(), "invalid", Some(expression));
    }
    for uri in [
        "/fhir/Encounter?patient=1",
        "/fhir/Medication/3",
        "/fhir/Observation/abc",
        "/fhir/Observation/999",
    ] {
        let reply = app.api_key(&key, Method::GET, uri, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert_outcome(&reply.json(), "not-found", None);
    }
    let reply = app.api_key(&key, Method::GET, "/fhir/Observation", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = app.api_key("cvt_wrong", Method::GET, "/fhir/Observation", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_outcome(&reply.json(), "login", None);
}

#[tokio::test]
async fn every_fhir_read_is_audited_as_a_view() {
    let app = app().await;
    let staff = staff(&app).await;
    let patient = a_patient(&app, &staff, "MRN-FHIR-9").await;
    let acc = a_specimen(&app, &staff, &patient, &["K"], "2026-11-24T07:30:00Z").await;
    let ids = results(&app, &staff, &acc, &[("K", "4.1")], true).await;
    let key = a_key(&app, "ehr").await;
    get(&app, &key, &format!("/fhir/Observation/{}", id_of(&ids, "K"))).await;
    get(&app, &key, &format!("/fhir/Observation?patient={}", patient.id)).await;

    let filter = cuvette_app::records::AuditFilter::default();
    let events = app.lab.audit_events(&Actor::system(), &filter).await.unwrap();
    let fhir: Vec<_> = events.iter().filter(|e| e.entity == "fhir/Observation").collect();
    assert_eq!(fhir.len(), 2, "{fhir:?}");
    assert!(fhir.iter().all(|e| e.actor == "apikey:ehr" && e.patient_id == Some(patient.id)));
    assert!(
        fhir.iter().any(|e| e.action == cuvette_domain::audit::AuditAction::PatientViewResults)
    );
    assert!(fhir.iter().any(|e| e.action == cuvette_domain::audit::AuditAction::ResultsViewList));
}

#[tokio::test]
async fn the_capability_statement_lists_exactly_what_the_router_accepts() {
    let app = app().await;
    let staff = staff(&app).await;
    let patient = a_patient(&app, &staff, "MRN-FHIR-10").await;
    let acc = a_specimen(&app, &staff, &patient, &["K"], "2026-11-24T07:30:00Z").await;
    results(&app, &staff, &acc, &[("K", "4.1")], true).await;
    let key = a_key(&app, "ehr").await;

    let (status, statement) = get(&app, &key, "/fhir/metadata").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    assert_eq!(statement["fhirVersion"], "4.0.1");
    let resources = statement["rest"][0]["resource"].as_array().unwrap();
    let listed: Vec<&str> = resources.iter().map(|r| r["type"].as_str().unwrap()).collect();
    let routed: Vec<&str> =
        cuvette_server::fhir::RESOURCES.iter().map(|r| r.resource.name()).collect();
    assert_eq!(listed, routed);
    for r in resources {
        let kind = r["type"].as_str().unwrap();
        let params = r["searchParam"].as_array().unwrap();
        for p in params {
            let name = p["name"].as_str().unwrap();
            let value = match (kind, name, p["type"].as_str().unwrap()) {
                (_, "_id", _) => "1".to_owned(),
                ("Patient", "identifier", _) => "MRN-FHIR-10".to_owned(),
                (_, "identifier", _) => acc.clone(),
                (_, "code", _) => "http://loinc.org|2823-3".to_owned(),
                (_, "status", _) => "final".to_owned(),
                ("DiagnosticReport", "category", _) => "LAB".to_owned(),
                (_, "category", _) => "laboratory".to_owned(),
                (_, _, "reference") => format!("Patient/{}", patient.id),
                (_, _, "date") => "ge2026-11-01".to_owned(),
                other => panic!("no sample value for {other:?}: add one"),
            };
            let uri = format!("/fhir/{kind}?{}={}", name, crate::support::enc(&value));
            let (status, body) = get(&app, &key, &uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
            assert_eq!(body["type"], "searchset");
        }
        for include in r["searchInclude"].as_array().into_iter().flatten() {
            let uri = format!("/fhir/{kind}?_include={}", include.as_str().unwrap());
            let (status, body) = get(&app, &key, &uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        }
        // A parameter the statement does not list for this type is refused, by name.
        let unlisted = ["birthdate", "code", "date", "status", "patient"]
            .into_iter()
            .find(|n| !params.iter().any(|p| p["name"] == *n))
            .unwrap_or("performer");
        let (status, body) = get(&app, &key, &format!("/fhir/{kind}?{unlisted}=x")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{kind}?{unlisted}");
        assert_outcome(&body, "invalid", Some(unlisted));
        // Reads are listed, and answered.
        let interactions: Vec<&str> = r["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap())
            .collect();
        assert_eq!(interactions, ["read", "search-type"]);
    }
}

#[tokio::test]
async fn a_key_reads_only_what_its_scopes_name() {
    let app = app().await;
    let staff = staff(&app).await;
    let patient = a_patient(&app, &staff, "MRN-FHIR-11").await;
    let acc = a_specimen(&app, &staff, &patient, &["K"], "2026-11-24T07:30:00Z").await;
    let ids = results(&app, &staff, &acc, &[("K", "4.1")], true).await;
    let k = id_of(&ids, "K");
    let results_only = a_key_with(&app, "results-only", "system/Observation.read").await;
    let one_patient = a_key_with(&app, "one-patient", "patient/Observation.read").await;
    let no_scopes =
        app.lab.create_api_key(&Actor::system(), "json-only", Role::Technologist).await.unwrap();

    let (status, _) = get(&app, &results_only, &format!("/fhir/Observation/{k}")).await;
    assert_eq!(status, StatusCode::OK);
    for uri in [
        format!("/fhir/Patient/{}", patient.id),
        format!("/fhir/DiagnosticReport?patient={}", patient.id),
        format!("/fhir/Observation?patient={}&_include=Observation:patient", patient.id),
    ] {
        let (status, body) = get(&app, &results_only, &uri).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert_outcome(&body, "forbidden", None);
    }
    // A patient/ scope reads one patient at a time: a search must name the patient.
    let (status, bundle) =
        get(&app, &one_patient, &format!("/fhir/Observation?patient={}", patient.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(matches(&bundle).len(), 1);
    for uri in ["/fhir/Observation".to_owned(), format!("/fhir/Observation/{k}")] {
        let (status, body) = get(&app, &one_patient, &uri).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert_outcome(&body, "forbidden", None);
    }
    // A key made before scopes, or without any, keeps the JSON API and reads no FHIR.
    let (status, body) = get(&app, &no_scopes, "/fhir/Observation").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("none"));
    let reply =
        app.api_key(&no_scopes, Method::GET, &format!("/api/v1/specimens/{acc}"), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    // A browser session is not a FHIR client.
    let session = app.sign_in(Role::Technologist, "browser").await;
    let reply = app.get(&session, "/fhir/Observation").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_outcome(&reply.json(), "login", None);
}
