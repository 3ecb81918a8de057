//! People over HTTP: with qualifications enforced, a person enters and verifies a test only
//! while their education meets its complexity, the director has authorised its discipline,
//! the licence the lab requires is valid and their competency on the test system is current.
//! The clock is moved across a licence's expiry and a competency's due date, and the
//! privilege changes with it; every refusal names its reason, is audited and saves nothing.

use axum::http::{Method, StatusCode};
use cuvette_app::records::AuditFilter;
use cuvette_app::{Actor, IdentityCheck, PlaceOrder, RegisterPatient, interop};
use cuvette_domain::Role;
use cuvette_domain::audit::AuditAction;
use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::support::{App, Session, app};

/// The lab of these tests: a director, a technical supervisor with a full record, a
/// technician (MLT, associate degree) authorised for chemistry with a California licence
/// expiring on 1 December and a competency on potassium on Chem-1 due on 10 December, and
/// the lab enforcing qualifications with a licence required for moderate complexity and up.
pub(crate) struct Lab {
    pub(crate) app: App,
    pub(crate) director: Session,
    pub(crate) supervisor: Session,
    pub(crate) tech: Session,
}

fn element(assessor: &str, on: &str) -> Value {
    json!({ "evidence": "observed on the morning run; worksheets and QC reviewed", "assessor": assessor, "assessed_on": on })
}

pub(crate) fn assessment(
    test: &str,
    instrument: &str,
    assessor: &str,
    on: &str,
    outcome: &str,
) -> Value {
    json!({
        "test": test,
        "instrument": instrument,
        "outcome": outcome,
        "elements": (0..6).map(|_| element(assessor, on)).collect::<Vec<_>>(),
    })
}

pub(crate) fn technician_record(licence_expires: &str) -> Value {
    json!({
        "education": [{ "level": "associate", "field": "medical_laboratory_technology",
            "institution": "Valley Community College", "accreditation": "naacls", "completed_on": "2020-05-20" }],
        "certifications": [{ "credential": "ascp_mlt", "number": "MLT-20411", "issued_on": "2020-07-01", "expires_on": "2029-06-30" }],
        "licences": [{ "state": "CA", "number": "MLT 7001", "expires_on": licence_expires }],
        "hire_date": "2021-02-01",
        "disciplines": ["chemistry"],
    })
}

pub(crate) async fn put_record(
    app: &App,
    by: &Session,
    username: &str,
    version: i64,
    record: Value,
) {
    let body = json!({ "expected_version": version, "record": record });
    let r = app.api(by, Method::PUT, &format!("/api/v1/staff/{username}/record"), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

pub(crate) async fn lab() -> Lab {
    let app = app().await;
    let director = app.sign_in(Role::Pathologist, "dir").await;
    let supervisor = app.sign_in(Role::Supervisor, "ts").await;
    let tech = app.sign_in(Role::Technician, "k").await;
    // The technical supervisor: bachelor's in medical laboratory science, in the lab since
    // 2010 — qualified to assess high-complexity testing (§493.1449).
    put_record(
        &app,
        &director,
        &supervisor.actor.name,
        0,
        json!({
            "education": [{ "level": "bachelor", "field": "medical_laboratory_science",
                "institution": "State University", "accreditation": "naacls", "completed_on": "2009-05-15" }],
            "certifications": [{ "credential": "ascp_mls", "number": "MLS-1001", "issued_on": "2009-08-01", "expires_on": "" }],
            "licences": [{ "state": "CA", "number": "CLS 1001", "expires_on": "2028-06-30" }],
            "hire_date": "2010-01-04",
            "disciplines": ["chemistry", "hematology", "blood_bank"],
        }),
    )
    .await;
    put_record(&app, &supervisor, &tech.actor.name, 0, technician_record("2026-12-01")).await;
    let r = app
        .api(
            &director,
            Method::PUT,
            "/api/v1/staff-policy",
            Some(json!({ "enforce": true, "licence_required_from": "moderate" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let sys = Actor::system();
    for (name, sender) in [("Chem-1", "CHEM1"), ("Chem-2", "CHEM2")] {
        let id = app.lab.add_instrument(&sys, name, "hl7", sender).await.unwrap();
        app.lab.map_test_code(&sys, id, "2823-3", "K", "mmol/L").await.unwrap();
    }
    // The technical supervisor authorises the technician for chemistry on the staff page.
    let r = app
        .post_form(
            &supervisor,
            &format!("/staff/{}/authorisations", tech.actor.name),
            &[("discipline", "chemistry"), ("authorised_on", "2026-06-01")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let initial = assessment("K", "Chem-1", &supervisor.actor.name, "2026-06-10", "pass");
    let r = app
        .api(
            &supervisor,
            Method::POST,
            &format!("/api/v1/staff/{}/competency", tech.actor.name),
            Some(initial),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    Lab { app, director, supervisor, tech }
}

/// A received specimen with `tests` for a new patient: its accession.
pub(crate) async fn received(app: &App, mrn: &str, tests: &[&str]) -> String {
    let sys = Actor::system();
    let p = app
        .lab
        .register_patient(
            &sys,
            &RegisterPatient {
                mrn: mrn.into(),
                family_name: "Okafor".into(),
                given_name: "Ada".into(),
                birth_date: "1968-09-14".into(),
                sex: "F".into(),
            },
        )
        .await
        .unwrap();
    let placed = app
        .lab
        .place_order(
            &sys,
            &PlaceOrder {
                patient_id: p.id,
                provider: "Dr. Ward".into(),
                priority: "routine".into(),
                tests: tests.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let acc = placed.specimens[0].accession.clone();
    app.lab.collect(&sys, &acc).await.unwrap();
    let check = IdentityCheck {
        mrn: Some(p.mrn.clone()),
        birth_date: Some(p.birth_date.clone()),
        family_name: None,
    };
    app.lab.receive(&sys, &acc, &check).await.unwrap();
    acc
}

pub(crate) async fn enter(
    app: &App,
    s: &Session,
    acc: &str,
    test: &str,
    value: &str,
) -> crate::support::Reply {
    let body = json!({ "results": [{ "test_code": test, "value": value }] });
    app.api(s, Method::POST, &format!("/api/v1/specimens/{acc}/results"), Some(body)).await
}

/// Whether the specimen's first test has a result.
pub(crate) async fn has_result(app: &App, acc: &str) -> bool {
    app.lab.specimen_view(&Actor::system(), acc).await.unwrap().tests[0].item.result.is_some()
}

pub(crate) async fn refusals(app: &App, actor: &str) -> Vec<String> {
    let filter = AuditFilter {
        actor: Some(actor.into()),
        action: Some(AuditAction::StaffPrivilegeRefused),
        ..Default::default()
    };
    app.lab
        .audit_events(&Actor::system(), &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let after: Value = serde_json::from_str(&e.after.unwrap_or_default()).unwrap();
            after["reason"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// Moves the clock to 09:00 on `day`; the sessions idle since then are over, so the staff
/// sign in again.
async fn set_day(lab: &mut Lab, day: &str) {
    lab.app.clock.set(format!("{day}T09:00:00Z").parse().unwrap());
    sign_in_again(lab).await;
}

async fn sign_in_again(lab: &mut Lab) {
    for s in [&mut lab.director, &mut lab.supervisor, &mut lab.tech] {
        let out = lab.app.lab.login(&s.actor.name, crate::support::PASSWORD).await.unwrap();
        s.cookie = format!("cuvette_session={}", out.token);
        s.csrf = out.csrf_token;
    }
}

#[tokio::test]
async fn a_licence_that_expires_suspends_result_entry_the_next_day_until_it_is_renewed() {
    let mut lab = lab().await;
    let acc = received(&lab.app, "ST001", &["K"]).await;
    let r = enter(&lab.app, &lab.tech, &acc, "K", "4.1").await;
    assert_eq!(r.status, StatusCode::OK, "qualified on 24 November: {}", r.body);

    // The licence is valid through 1 December; on the 2nd nothing is saved.
    set_day(&mut lab, "2026-12-01").await;
    let acc = received(&lab.app, "ST002", &["K"]).await;
    assert_eq!(enter(&lab.app, &lab.tech, &acc, "K", "4.2").await.status, StatusCode::OK);
    lab.app.clock.advance(SignedDuration::from_hours(24));
    sign_in_again(&mut lab).await;
    let app = &lab.app;
    let acc = received(app, "ST003", &["K"]).await;
    let r = enter(app, &lab.tech, &acc, "K", "4.3").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let reason = "K is moderate complexity and the lab requires a state licence for it: your CA licence expired on 2026-12-01";
    assert!(r.body.contains(reason), "{}", r.body);
    assert!(!has_result(app, &acc).await, "nothing was saved");
    // On the bench's result grid the same refusal comes back with what was typed.
    let test =
        app.lab.specimen_view(&Actor::system(), &acc).await.unwrap().tests[0].item.test.clone();
    let page = app
        .post_form(
            &lab.tech,
            &format!("/specimens/{acc}/results"),
            &[
                (&format!("result_{}", test.id), "4.3"),
                (&format!("version_{}", test.id), &test.row_version.to_string()),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("your CA licence expired on 2026-12-01"), "{}", page.body);
    assert!(page.body.contains("value=\"4.3\""), "what was typed is kept: {}", page.body);
    assert!(!has_result(app, &acc).await, "nothing was saved");
    assert_eq!(refusals(app, &lab.tech.actor.name).await, [reason, reason]);

    // Renewed: the same entry is taken.
    put_record(app, &lab.supervisor, &lab.tech.actor.name, 1, technician_record("2028-12-01"))
        .await;
    let r = enter(app, &lab.tech, &acc, "K", "4.3").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn overdue_competency_suspends_entry_and_verification_until_reassessment() {
    let mut lab = lab().await;
    let app = &lab.app;
    put_record(app, &lab.supervisor, &lab.tech.actor.name, 1, technician_record("2028-12-01"))
        .await;
    // A potassium from Chem-1 waits for verification.
    let acc = received(app, "ST010", &["K"]).await;
    let oru = format!(
        "MSH|^~\\&|CHEM1|LAB|CUVETTE|LAB|20261124081500||ORU^R01^ORU_R01|C1-1|P|2.5.1\r\
         PID|1||ST010||Okafor^Ada\rOBR|1||{acc}|K\r\
         OBX|1|NM|2823-3^^LN||4.4|mmol/L|3.5-5.1||||F\r"
    );
    let (outcome, _) =
        interop::hl7::receive(&app.lab, oru.as_bytes(), "test", "peer").await.unwrap();
    assert!(matches!(outcome, interop::Ingested::Accepted { .. }), "{outcome:?}");

    // Due on 10 December (six months after the first assessment); on the 11th it is overdue.
    set_day(&mut lab, "2026-12-11").await;
    let app = &lab.app;
    let reason =
        "competency for K on Chem-1 overdue since 2026-12-10: be reassessed before testing";
    let other = received(app, "ST011", &["K"]).await;
    let r = enter(app, &lab.tech, &other, "K", "4.0").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains(reason), "{}", r.body);
    assert!(!has_result(app, &other).await);
    let test =
        app.lab.specimen_view(&Actor::system(), &acc).await.unwrap().tests[0].item.test.clone();
    let release = json!({ "status": "final", "tests": [{ "ordered_test_id": test.id, "row_version": test.row_version }] });
    let r = app.api(&lab.tech, Method::POST, "/api/v1/release", Some(release.clone())).await;
    assert_eq!(r.json()["outcomes"][0]["outcome"], "held", "{}", r.body);
    assert_eq!(r.json()["outcomes"][0]["reason"], format!("K: {reason}"));
    assert_eq!(refusals(app, &lab.tech.actor.name).await.len(), 2, "entry and verification");

    // Reassessed on the 11th: the privilege is back, for both.
    let again = assessment("K", "Chem-1", &lab.supervisor.actor.name, "2026-12-11", "pass");
    let r = app
        .api(
            &lab.supervisor,
            Method::POST,
            &format!("/api/v1/staff/{}/competency", lab.tech.actor.name),
            Some(again),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(enter(app, &lab.tech, &other, "K", "4.0").await.status, StatusCode::OK);
    let r = app.api(&lab.tech, Method::POST, "/api/v1/release", Some(release)).await;
    assert_eq!(r.json()["outcomes"][0]["outcome"], "released", "{}", r.body);
    let staff = app
        .api(&lab.tech, Method::GET, &format!("/api/v1/staff/{}", lab.tech.actor.name), None)
        .await;
    assert_eq!(staff.json()["competency"][0]["standing"], "current");
    // The second assessment of the first year is due when the year ends.
    assert_eq!(staff.json()["competency"][0]["date"], "2027-06-10");
}

#[tokio::test]
async fn an_instrument_result_is_verified_only_by_someone_assessed_on_that_instrument() {
    let lab = lab().await;
    let app = &lab.app;
    put_record(app, &lab.supervisor, &lab.tech.actor.name, 1, technician_record("2028-12-01"))
        .await;
    let acc = received(app, "ST020", &["K"]).await;
    let oru = format!(
        "MSH|^~\\&|CHEM2|LAB|CUVETTE|LAB|20261124081500||ORU^R01^ORU_R01|C2-1|P|2.5.1\r\
         PID|1||ST020||Okafor^Ada\rOBR|1||{acc}|K\r\
         OBX|1|NM|2823-3^^LN||4.4|mmol/L|3.5-5.1||||F\r"
    );
    let (outcome, _) =
        interop::hl7::receive(&app.lab, oru.as_bytes(), "test", "peer").await.unwrap();
    assert!(matches!(outcome, interop::Ingested::Accepted { .. }), "{outcome:?}");
    let test =
        app.lab.specimen_view(&Actor::system(), &acc).await.unwrap().tests[0].item.test.clone();
    let release = json!({ "status": "final", "tests": [{ "ordered_test_id": test.id, "row_version": test.row_version }] });
    let r = app.api(&lab.tech, Method::POST, "/api/v1/release", Some(release.clone())).await;
    assert_eq!(
        r.json()["outcomes"][0]["reason"],
        "K: no competency assessment for K on Chem-2: a qualified assessor must assess you first"
    );
    let view = app.lab.specimen_view(&Actor::system(), &acc).await.unwrap();
    assert!(view.tests[0].item.result.as_ref().unwrap().released_at.is_none(), "not released");
    let on_chem2 = assessment("K", "Chem-2", &lab.supervisor.actor.name, "2026-11-24", "pass");
    let r = app
        .api(
            &lab.supervisor,
            Method::POST,
            &format!("/api/v1/staff/{}/competency", lab.tech.actor.name),
            Some(on_chem2),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app.api(&lab.tech, Method::POST, "/api/v1/release", Some(release)).await;
    assert_eq!(r.json()["outcomes"][0]["outcome"], "released", "{}", r.body);
}

#[tokio::test]
async fn education_below_the_complexity_and_an_unauthorised_discipline_are_refused() {
    let lab = lab().await;
    let app = &lab.app;
    put_record(app, &lab.supervisor, &lab.tech.actor.name, 1, technician_record("2028-12-01"))
        .await;
    // Not authorised for hematology, whatever the education.
    let acc = received(app, "ST030", &["WBC"]).await;
    let r = enter(app, &lab.tech, &acc, "WBC", "6.1").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("you are not authorised for hematology"), "{}", r.body);

    // A phlebotomy-trained assistant made technician: a certificate, authorised for blood
    // bank, may not type blood (high complexity, §493.1489).
    let assistant = app.sign_in(Role::Technician, "cert").await;
    put_record(
        app,
        &lab.supervisor,
        &assistant.actor.name,
        0,
        json!({
            "education": [{ "level": "certificate", "field": "allied_health", "institution": "City Phlebotomy School", "completed_on": "2022-03-01" }],
            "licences": [{ "state": "CA", "number": "CPT 55", "expires_on": "2028-01-01" }],
            "hire_date": "2022-04-01",
        }),
    )
    .await;
    app.lab
        .authorise(
            &lab.director.actor,
            &assistant.actor.name,
            &cuvette_app::AuthoriseInput {
                discipline: "blood_bank".into(),
                authorised_on: String::new(),
            },
        )
        .await
        .unwrap();
    let acc = received(app, "ST031", &["ABO"]).await;
    let r = enter(app, &assistant, &acc, "ABO", "A").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body.contains("ABO is high complexity: it needs an associate degree or higher in a laboratory science or medical laboratory technology (CLIA §493.1489); your record shows certificate in allied health"),
        "{}",
        r.body
    );
    assert!(!has_result(app, &acc).await);
    // A technician does not authorise.
    let r = app
        .post_form(
            &lab.tech,
            &format!("/staff/{}/authorisations", assistant.actor.name),
            &[("discipline", "chemistry")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_unqualified_assessor_is_refused_on_the_field_and_nothing_is_stored() {
    let lab = lab().await;
    let app = &lab.app;
    let technologist = app.sign_in(Role::Technologist, "mls").await;
    let junior = app.sign_in(Role::Supervisor, "new").await;
    // A supervisor of two years with a bachelor's: a technical consultant for moderate
    // complexity, not a technical supervisor for high (four years, §493.1449).
    put_record(
        app,
        &lab.director,
        &junior.actor.name,
        0,
        json!({
            "education": [{ "level": "bachelor", "field": "biology", "institution": "State University", "completed_on": "2024-05-15" }],
            "hire_date": "2024-06-01",
        }),
    )
    .await;
    let before =
        app.lab.staff(&Actor::system(), &lab.tech.actor.name).await.unwrap().assessments.len();
    let uri = format!("/api/v1/staff/{}/competency", lab.tech.actor.name);
    let by_technologist = assessment("K", "Chem-1", &technologist.actor.name, "2026-11-20", "pass");
    let r = app.api(&lab.supervisor, Method::POST, &uri, Some(by_technologist)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.json()["error"]["fields"][0]["field"], "elements[0].assessor");
    let high = assessment("ABO", "", &junior.actor.name, "2026-11-20", "pass");
    let r = app.api(&lab.supervisor, Method::POST, &uri, Some(high)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body.contains("does not qualify as technical supervisor (CLIA §493.1449)"),
        "{}",
        r.body
    );
    let moderate = assessment("K", "Chem-1", &junior.actor.name, "2026-11-20", "pass");
    let r = app.api(&lab.supervisor, Method::POST, &uri, Some(moderate)).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "a technical consultant assesses moderate complexity: {}",
        r.body
    );
    let after =
        app.lab.staff(&Actor::system(), &lab.tech.actor.name).await.unwrap().assessments.len();
    assert_eq!(after, before + 1, "only the qualified assessment was stored");
}

#[tokio::test]
async fn a_bad_record_is_refused_on_its_fields_keeps_what_was_typed_and_stores_nothing() {
    let lab = lab().await;
    let app = &lab.app;
    let newcomer = app.sign_in(Role::Technologist, "new").await;
    let r = app
        .post_form(
            &lab.supervisor,
            &format!("/staff/{}/record", newcomer.actor.name),
            &[
                ("version", "0"),
                ("education[0].level", "bachelor"),
                ("education[0].field", "medical_laboratory_science"),
                ("education[0].institution", "State University"),
                ("education[0].completed_on", "2027-05-01"),
                ("certifications[0].credential", "XYZ_MLS"),
                ("certifications[0].number", "123"),
                ("certifications[0].issued_on", "2020-01-01"),
                ("certifications[1].credential", "ascp_mls"),
                ("certifications[1].number", "MLS-9"),
                ("certifications[1].issued_on", "2024-01-01"),
                ("certifications[1].expires_on", "2023-01-01"),
                ("hire_date", "2025-01-06"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    for message in [
        "2027-05-01 is in the future (today is 2026-11-24): give the date on the document",
        "&#34;XYZ_MLS&#34; is not a certification body and credential Cuvette knows",
        "the expiry 2023-01-01 is before the issue date 2024-01-01: check both dates on the certificate",
    ] {
        assert!(r.body.contains(message), "{message}: {}", r.body);
    }
    assert!(r.body.contains("value=\"XYZ_MLS\""), "what was typed is kept");
    assert!(r.body.contains("value=\"MLS-9\""));
    let view = app.lab.staff(&Actor::system(), &newcomer.actor.name).await.unwrap();
    assert!(view.record.is_none(), "nothing stored");

    // The API refuses the same input with the same words, by field.
    let body = json!({ "expected_version": 0, "record": {
        "certifications": [{ "credential": "XYZ_MLS", "number": "1", "issued_on": "2020-01-01" }],
        "hire_date": "2025-01-06" } });
    let r = app
        .api(
            &lab.supervisor,
            Method::PUT,
            &format!("/api/v1/staff/{}/record", newcomer.actor.name),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["error"]["fields"][0]["field"], "certifications[0].credential");
}

#[tokio::test]
async fn each_person_reads_their_own_record_and_only_supervisors_edit() {
    let lab = lab().await;
    let app = &lab.app;
    let own = app
        .api(&lab.tech, Method::GET, &format!("/api/v1/staff/{}", lab.tech.actor.name), None)
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.json()["record"]["certifications"][0]["label"], "MLT(ASCP)");
    assert_eq!(own.json()["authorisations"][0]["authorised_by"], lab.supervisor.actor.name);
    let page = app.get(&lab.tech, &format!("/staff/{}", lab.tech.actor.name)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("K on Chem-1"), "{}", page.body);
    assert!(!page.body.contains("Edit the record"), "a technician does not edit");
    let other = app
        .api(&lab.tech, Method::GET, &format!("/api/v1/staff/{}", lab.supervisor.actor.name), None)
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let body = json!({ "expected_version": 1, "record": technician_record("2030-01-01") });
    let r = app
        .api(
            &lab.tech,
            Method::PUT,
            &format!("/api/v1/staff/{}/record", lab.tech.actor.name),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no one extends their own licence");
    let r = app
        .api(
            &lab.supervisor,
            Method::PUT,
            &format!("/api/v1/staff/{}/record", lab.supervisor.actor.name),
            Some(json!({ "expected_version": 1, "record": technician_record("2030-01-01") })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "nor does a supervisor: {}", r.body);
    assert!(r.body.contains("you cannot edit your own staff record"), "{}", r.body);
    let own = assessment("K", "Chem-1", &lab.director.actor.name, "2026-11-20", "pass");
    let r = app
        .api(
            &lab.supervisor,
            Method::POST,
            &format!("/api/v1/staff/{}/competency", lab.supervisor.actor.name),
            Some(own),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let list = app.get(&lab.supervisor, "/staff").await;
    assert!(list.body.contains("Enforce qualifications"), "{}", list.body);
}
