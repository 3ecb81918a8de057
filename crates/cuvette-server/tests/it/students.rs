//! Students on clinical rotation, over HTTP: with qualifications enforced, a student enters
//! results only in the discipline of a rotation running today; nothing a student enters is
//! released until someone qualified for the test co-signs it; the supervising technologist
//! sees what waits, signs the rotation off once nothing does, and the programme receives the
//! logbook as CSV and PDF.

use axum::http::{Method, StatusCode};
use cuvette_app::Actor;
use cuvette_app::records::AuditFilter;
use cuvette_domain::Role;
use cuvette_domain::audit::AuditAction;
use serde_json::{Value, json};

use crate::staff::{Lab, enter, has_result, lab, received, refusals};
use crate::support::{App, PASSWORD, Session};

/// The chemistry rotation of November 2026, supervised by `supervisor`.
fn chemistry(supervisor: &str) -> Value {
    json!({
        "program": "State University MLS program",
        "discipline": "chemistry",
        "starts_on": "2026-11-02",
        "ends_on": "2026-11-27",
        "supervisor": supervisor,
    })
}

async fn schedule(
    app: &App,
    by: &Session,
    student: &str,
    rotation: Value,
) -> crate::support::Reply {
    app.api(by, Method::POST, &format!("/api/v1/staff/{student}/rotations"), Some(rotation)).await
}

/// The release call of the verification queue for the specimen's first test.
async fn release(app: &App, by: &Session, acc: &str) -> Value {
    let test =
        app.lab.specimen_view(&Actor::system(), acc).await.unwrap().tests[0].item.test.clone();
    let body = json!({ "status": "final", "tests": [{ "ordered_test_id": test.id, "row_version": test.row_version }] });
    app.api(by, Method::POST, "/api/v1/release", Some(body)).await.json()["outcomes"][0].clone()
}

async fn released(app: &App, acc: &str) -> bool {
    let view = app.lab.specimen_view(&Actor::system(), acc).await.unwrap();
    view.tests[0].item.result.as_ref().is_some_and(|r| r.released_at.is_some())
}

async fn again(app: &App, s: &mut Session) {
    let out = app.lab.login(&s.actor.name, PASSWORD).await.unwrap();
    s.cookie = format!("cuvette_session={}", out.token);
    s.csrf = out.csrf_token;
}

async fn events(app: &App, action: AuditAction) -> Vec<cuvette_app::records::AuditEvent> {
    let filter = AuditFilter { action: Some(action), ..Default::default() };
    app.lab.audit_events(&Actor::system(), &filter).await.unwrap()
}

/// The lab of the staff tests, a student and the technologist who supervises her
/// chemistry rotation (a technologist without a staff record: the lab has not recorded her
/// yet, so she may not co-sign while qualifications are enforced).
async fn with_student() -> (Lab, Session, Session) {
    let lab = lab().await;
    let student = lab.app.sign_in(Role::Student, "stu").await;
    let mls = lab.app.sign_in(Role::Technologist, "mls").await;
    let r =
        schedule(&lab.app, &lab.supervisor, &student.actor.name, chemistry(&mls.actor.name)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (lab, student, mls)
}

#[tokio::test]
async fn a_students_result_waits_for_a_qualified_co_signer_and_is_logged_for_the_programme() {
    let (lab, student, mls) = with_student().await;
    let app = &lab.app;
    let acc = received(app, "SR001", &["K"]).await;
    let r = enter(app, &student, &acc, "K", "4.2").await;
    assert_eq!(r.status, StatusCode::OK, "on rotation in chemistry on 24 November: {}", r.body);

    // Nothing releases it but a co-signature: not the student, not someone unqualified.
    let own = release(app, &student, &acc).await;
    assert_eq!(own, Value::Null, "a student is refused the whole call");
    let by_mls = release(app, &mls, &acc).await;
    assert_eq!(by_mls["outcome"], "held", "{by_mls}");
    assert_eq!(
        by_mls["reason"],
        "K: you have no staff record: a supervisor must record your education and authorisations before you test patient specimens"
    );
    assert!(!released(app, &acc).await);

    // The supervising technologist sees it waiting, as hers.
    let waiting = app.api(&mls, Method::GET, "/api/v1/cosignatures", None).await;
    assert_eq!(waiting.status, StatusCode::OK, "{}", waiting.body);
    let item = &waiting.json()["items"][0];
    assert_eq!(item["student"], student.actor.name);
    assert_eq!(item["supervisor"], mls.actor.name);
    assert_eq!(item["yours"], true);
    assert_eq!(item["entry"]["accession"], acc);
    let page = app.get(&mls, "/cosignatures").await;
    assert!(page.body.contains(&acc) && page.body.contains("(you)"), "{}", page.body);

    // The technician qualified for K co-signs: released, audited as a co-signature.
    assert_eq!(release(app, &lab.tech, &acc).await["outcome"], "released");
    assert!(released(app, &acc).await);
    let cosigned = events(app, AuditAction::ResultCosignRelease).await;
    assert_eq!(cosigned.len(), 1);
    assert_eq!(cosigned[0].actor, lab.tech.actor.name);
    let waiting = app.api(&mls, Method::GET, "/api/v1/cosignatures", None).await;
    assert_eq!(waiting.json()["items"].as_array().unwrap().len(), 0);

    // The student reads her own logbook: the test, who co-signed it, no patient.
    let uri = format!("/api/v1/staff/{}/logbook", student.actor.name);
    let book = app.api(&student, Method::GET, &uri, None).await;
    assert_eq!(book.status, StatusCode::OK, "{}", book.body);
    let rotation = &book.json()["rotations"][0];
    assert_eq!(rotation["discipline"], "chemistry");
    assert_eq!(rotation["per_test"][0]["test_code"], "K");
    assert_eq!(rotation["per_test"][0]["count"], 1);
    assert_eq!(rotation["entries"][0]["cosigned_by"], lab.tech.actor.name);
    assert!(!book.body.contains("SR001") && !book.body.contains(&acc), "no patient identifiers");

    // Only the supervisor (or the director, a technical supervisor) signs the rotation off.
    let id = rotation["id"].as_i64().unwrap();
    let sign = format!("/api/v1/staff/{}/rotations/{id}/sign-off", student.actor.name);
    let r = app.api(&lab.tech, Method::POST, &sign, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = app.api(&mls, Method::POST, &sign, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["rotations"][0]["signed_off_by"], mls.actor.name);
    assert_eq!(r.json()["rotations"][0]["signed_off_on"], "2026-11-24");
    let r = app.api(&mls, Method::POST, &sign, None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "signed once: {}", r.body);
    assert!(r.body.contains("was signed off by"), "{}", r.body);
    assert_eq!(events(app, AuditAction::StaffRotationSignOff).await.len(), 1);

    // The programme's copies.
    let csv = app.get(&student, &format!("/staff/{}/logbook.csv", student.actor.name)).await;
    assert_eq!(csv.status, StatusCode::OK);
    let first = csv.body.lines().nth(1).unwrap_or_default().to_owned();
    assert!(first.contains(",K,Potassium,signed,"), "{}", csv.body);
    assert!(first.contains(&mls.actor.name), "the sign-off is on every row: {first}");
    let (status, pdf) =
        app.get_bytes(&student, &format!("/staff/{}/logbook.pdf", student.actor.name)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(pdf.starts_with(b"%PDF"), "a PDF file");
    let file = app.api(&student, Method::GET, &format!("{uri}/csv"), None).await;
    assert_eq!(file.json()["csv"].as_str(), Some(csv.body.as_str()));
}

#[tokio::test]
async fn a_student_enters_only_in_the_discipline_of_a_rotation_running_today() {
    let (mut lab, mut student, _) = with_student().await;
    let acc = received(&lab.app, "SR010", &["WBC"]).await;
    let r = enter(&lab.app, &student, &acc, "WBC", "6.1").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let reason = "you are not on a hematology rotation today (no hematology rotation is on your schedule): a student enters results only during a rotation in the discipline, under its supervising technologist";
    assert!(r.body.contains(reason), "{}", r.body);
    assert!(!has_result(&lab.app, &acc).await, "nothing was saved");

    // The chemistry rotation ends on 27 November: on the 28th she may not enter K either.
    lab.app.clock.set("2026-11-28T09:00:00Z".parse().unwrap());
    again(&lab.app, &mut student).await;
    again(&lab.app, &mut lab.supervisor).await;
    let app = &lab.app;
    let acc = received(app, "SR011", &["K"]).await;
    let r = enter(app, &student, &acc, "K", "4.0").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("your chemistry rotation ended on 2026-11-27"), "{}", r.body);
    assert!(!has_result(app, &acc).await);
    assert_eq!(refusals(app, &student.actor.name).await.len(), 2, "each refusal audited");

    // A hematology block scheduled from the 28th: her WBC is taken, for co-signature.
    let hematology = json!({ "program": "State University MLS program", "discipline": "hematology",
        "starts_on": "2026-11-28", "ends_on": "2026-12-18", "supervisor": lab.supervisor.actor.name });
    let r = schedule(app, &lab.supervisor, &student.actor.name, hematology).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let acc = received(app, "SR012", &["WBC"]).await;
    assert_eq!(enter(app, &student, &acc, "WBC", "6.1").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_rotation_is_not_signed_off_while_a_result_waits_for_co_signature() {
    let (lab, student, mls) = with_student().await;
    let app = &lab.app;
    let acc = received(app, "SR020", &["K"]).await;
    assert_eq!(enter(app, &student, &acc, "K", "4.4").await.status, StatusCode::OK);
    let page = app.get(&mls, &format!("/staff/{}/logbook", student.actor.name)).await;
    assert!(page.body.contains("1 waiting for co-signature"), "{}", page.body);
    let book = app
        .api(&mls, Method::GET, &format!("/api/v1/staff/{}/logbook", student.actor.name), None)
        .await;
    assert_eq!(book.json()["rotations"][0]["pending"], 1, "{}", book.body);
    let id = book.json()["rotations"][0]["id"].as_i64().unwrap();
    let form = app
        .post_form(&mls, &format!("/staff/{}/rotations/{id}/sign-off", student.actor.name), &[])
        .await;
    assert_eq!(form.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", form.body);
    assert!(
        form.body.contains(
            "1 result(s) the student entered in this rotation still wait for co-signature"
        ),
        "{}",
        form.body
    );
    assert!(events(app, AuditAction::StaffRotationSignOff).await.is_empty(), "nothing signed");
    // Another student reads no one's logbook but her own.
    let other = app.sign_in(Role::Student, "other").await;
    let r = app
        .api(&other, Method::GET, &format!("/api/v1/staff/{}/logbook", student.actor.name), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}

#[tokio::test]
async fn a_bad_rotation_is_refused_on_its_fields_keeps_what_was_typed_and_stores_nothing() {
    let lab = lab().await;
    let app = &lab.app;
    let student = app.sign_in(Role::Student, "stu").await;
    let uri = format!("/staff/{}/rotations", student.actor.name);
    let r = app
        .post_form(
            &lab.supervisor,
            &uri,
            &[
                ("program", "State University MLS program"),
                ("discipline", "chemistry"),
                ("starts_on", "2026-11-27"),
                ("ends_on", "2026-11-02"),
                ("supervisor", &lab.tech.actor.name),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    for message in [
        "the rotation ends on 2026-11-02, before it starts on 2026-11-27: check both dates",
        "a student is supervised by an active technologist, supervisor or the director",
    ] {
        assert!(r.body.contains(message), "{message}: {}", r.body);
    }
    assert!(r.body.contains("value=\"2026-11-02\""), "what was typed is kept");
    assert!(r.body.contains("value=\"State University MLS program\""));
    let book = app
        .api(
            &lab.supervisor,
            Method::GET,
            &format!("/api/v1/staff/{}/logbook", student.actor.name),
            None,
        )
        .await;
    assert_eq!(book.json()["rotations"].as_array().unwrap().len(), 0, "nothing stored");
    assert!(events(app, AuditAction::StaffRotation).await.is_empty());
    // A technician is no student: no rotation for her, and a student schedules nothing.
    let r =
        schedule(app, &lab.supervisor, &lab.tech.actor.name, chemistry(&lab.supervisor.actor.name))
            .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r =
        schedule(app, &student, &student.actor.name, chemistry(&lab.supervisor.actor.name)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}
