//! Every role against every action, over HTTP: each cell of the privilege table is tried,
//! and what is allowed must succeed while what is not must be refused with 403.

use axum::http::{Method, StatusCode};
use cuvette_app::{Actor, EnteredResult, IdentityCheck, PlaceOrder, RegisterPatient};
use cuvette_domain::role::{ACTIONS, ROLES};
use cuvette_domain::workflow::TestStatus;
use cuvette_domain::{Action, Role};
use serde_json::json;

use crate::support::{App, PASSWORD, Session, app};

/// The lab's privilege table, written out: Y allowed, . refused. Columns in the order of
/// `ROLES`: phlebotomist, lab assistant, technician, technologist, supervisor, pathologist,
/// student.
const TABLE: &[(Action, &str)] = &[
    (Action::SearchPatients, "YYYYYYY"),
    (Action::RegisterPatient, "Y..YYY."),
    (Action::PlaceOrder, "Y..YYY."),
    (Action::CollectSpecimen, "YY.YYY."),
    (Action::ReceiveSpecimen, ".YYYYY."),
    (Action::RejectSpecimen, ".YYYYY."),
    (Action::ViewResults, ".YYYYYY"),
    (Action::EnterResult, "..YYYYY"),
    (Action::VerifyRoutine, "..YYYY."),
    (Action::VerifyAbnormal, "...YYY."),
    (Action::DocumentCriticalCall, "..YYYY."),
    (Action::CorrectResult, "...YYY."),
    (Action::EditCatalog, "....YY."),
    (Action::ManageUsers, "....YY."),
    (Action::ViewAudit, "....YY."),
    (Action::RunQc, "..YYYY."),
    (Action::CorrectQc, "...YYY."),
    (Action::ManageQc, "...YYY."),
    (Action::ApproveAutoverification, "....YY."),
];

fn expected(action: Action, role: Role) -> bool {
    let row = TABLE.iter().find(|(a, _)| *a == action).expect("every action is in the table").1;
    let col = ROLES.iter().position(|r| *r == role).unwrap();
    row.as_bytes()[col] == b'Y'
}

#[test]
fn the_table_covers_every_action_and_agrees_with_the_domain() {
    assert_eq!(TABLE.len(), ACTIONS.len());
    for action in ACTIONS {
        for role in ROLES {
            assert_eq!(role.may(action), expected(action, role), "{role} × {action}");
        }
    }
}

struct Fixture {
    n: usize,
    /// An analyzer with a glucose control target: (instrument id, target id).
    qc: Option<(i64, i64)>,
}

/// The fixture's analyzer and glucose target, made once by the system.
async fn qc_target(app: &App, f: &mut Fixture) -> (i64, i64) {
    if let Some(qc) = f.qc {
        return qc;
    }
    let sys = Actor::system();
    let instrument =
        app.lab.add_instrument(&sys, "Table analyzer", "hl7", "TABLECHEM").await.unwrap();
    let material = app
        .lab
        .add_material(
            &sys,
            &cuvette_app::qc::MaterialForm {
                product: "Table control".into(),
                manufacturer: "Table".into(),
                lot: "T1".into(),
                level: "1".into(),
                expires_on: "2099-01-01".into(),
                sample_id: "QC-TABLE-1".into(),
            },
        )
        .await
        .unwrap();
    let target = app.lab.set_target(&sys, material, instrument, "GLU", "100", "2").await.unwrap();
    f.qc = Some((instrument, target));
    (instrument, target)
}

impl Fixture {
    fn next(&mut self) -> usize {
        self.n += 1;
        self.n
    }
}

async fn patient(app: &App, f: &mut Fixture) -> cuvette_app::records::PatientRow {
    let n = f.next();
    app.lab
        .register_patient(
            &Actor::system(),
            &RegisterPatient {
                mrn: format!("R{n:05}"),
                family_name: "Tablerow".into(),
                given_name: format!("Cell{n}"),
                birth_date: "1970-03-01".into(),
                sex: "F".into(),
            },
        )
        .await
        .unwrap()
}

/// A potassium order for a new patient, taken as far as `stage`: 0 ordered, 1 collected,
/// 2 received, 3 resulted with `value`, 4 released.
async fn specimen(app: &App, f: &mut Fixture, stage: u8, value: &str) -> (String, i64) {
    let sys = Actor::system();
    let p = patient(app, f).await;
    let placed = app
        .lab
        .place_order(
            &sys,
            &PlaceOrder {
                patient_id: p.id,
                provider: "Dr. Table".into(),
                priority: "routine".into(),
                tests: vec!["K".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let acc = placed.specimens[0].accession.clone();
    if stage >= 1 {
        app.lab.collect(&sys, &acc).await.unwrap();
    }
    if stage >= 2 {
        let check = IdentityCheck {
            mrn: Some(p.mrn.clone()),
            birth_date: Some(p.birth_date.clone()),
            family_name: None,
        };
        app.lab.receive(&sys, &acc, &check).await.unwrap();
    }
    let test = app.lab.specimen_view(&sys, &acc).await.unwrap().tests[0].item.test.clone();
    if stage >= 3 {
        let entry = EnteredResult {
            ordered_test_id: test.id,
            row_version: test.row_version,
            text: value.into(),
        };
        app.lab.enter_results(&sys, &[entry], None).await.unwrap();
    }
    if stage >= 4 {
        let t = app.lab.specimen_view(&sys, &acc).await.unwrap().tests[0].item.test.clone();
        app.lab.release(&sys, &[(t.id, t.row_version)], TestStatus::Final).await.unwrap();
    }
    (acc, test.id)
}

async fn row_version(app: &App, acc: &str) -> i64 {
    app.lab.specimen_view(&Actor::system(), acc).await.unwrap().tests[0].item.test.row_version
}

/// Tries `action` as `s`; returns whether it was done. A refusal must be a 403.
async fn attempt(app: &App, f: &mut Fixture, action: Action, s: &Session) -> bool {
    let reply = match action {
        Action::SearchPatients => {
            app.api(s, Method::GET, "/api/v1/patients?q=Tablerow", None).await
        }
        Action::RegisterPatient => {
            let n = f.next();
            let body = json!({ "mrn": format!("N{n:05}"), "family_name": "Newcomer", "given_name": "Ann", "birth_date": "1980-01-01", "sex": "F" });
            app.api(s, Method::POST, "/api/v1/patients", Some(body)).await
        }
        Action::PlaceOrder => {
            let p = patient(app, f).await;
            let body = json!({ "patient_id": p.id, "provider": "Dr. Table", "tests": ["BMP"] });
            app.api(s, Method::POST, "/api/v1/orders", Some(body)).await
        }
        Action::CollectSpecimen => {
            let (acc, _) = specimen(app, f, 0, "").await;
            app.api(s, Method::POST, &format!("/api/v1/specimens/{acc}/collect"), None).await
        }
        Action::ReceiveSpecimen => {
            let (acc, _) = specimen(app, f, 1, "").await;
            let v = app.lab.specimen_view(&Actor::system(), &acc).await.unwrap();
            let body = json!({ "mrn": v.patient.mrn, "birth_date": v.patient.birth_date });
            app.api(s, Method::POST, &format!("/api/v1/specimens/{acc}/receive"), Some(body)).await
        }
        Action::RejectSpecimen => {
            let (acc, _) = specimen(app, f, 2, "").await;
            app.api(
                s,
                Method::POST,
                &format!("/api/v1/specimens/{acc}/reject"),
                Some(json!({ "reason": "hemolyzed" })),
            )
            .await
        }
        Action::ViewResults => app.api(s, Method::GET, "/api/v1/worklist", None).await,
        Action::EnterResult => {
            let (acc, _) = specimen(app, f, 2, "").await;
            let body = json!({ "results": [{ "test_code": "K", "value": "4.2" }] });
            app.api(s, Method::POST, &format!("/api/v1/specimens/{acc}/results"), Some(body)).await
        }
        Action::VerifyRoutine | Action::VerifyAbnormal => {
            let value = if action == Action::VerifyRoutine { "4.2" } else { "5.6" };
            let (acc, id) = specimen(app, f, 3, value).await;
            let body = json!({ "tests": [{ "ordered_test_id": id, "row_version": row_version(app, &acc).await }] });
            let reply = app.api(s, Method::POST, "/api/v1/release", Some(body)).await;
            if reply.status == StatusCode::OK {
                // The call is accepted; the result itself is released or held with the reason.
                let outcome = &reply.json()["outcomes"][0];
                return outcome["outcome"] == "released";
            }
            reply
        }
        Action::DocumentCriticalCall => {
            let (_, id) = specimen(app, f, 3, "6.9").await;
            let body = json!({ "called_person": "Dr. Table, attending", "read_back": true });
            app.api(s, Method::POST, &format!("/api/v1/tests/{id}/critical-calls"), Some(body))
                .await
        }
        Action::CorrectResult => {
            let (acc, _) = specimen(app, f, 4, "4.2").await;
            let body = json!({
                "results": [{ "test_code": "K", "value": "4.6", "row_version": row_version(app, &acc).await }],
                "correction": { "reason": "keyed from the wrong tube", "signature": PASSWORD },
            });
            app.api(s, Method::POST, &format!("/api/v1/specimens/{acc}/results"), Some(body)).await
        }
        Action::EditCatalog => {
            let current = app.api(s, Method::GET, "/api/v1/catalog/tests/K", None).await.json();
            let mut definition = current["definition"].clone();
            definition["critical_high"] = json!("6.5");
            let body = json!({ "expected_version": current["version"], "definition": definition, "reason": "roles test" });
            app.api(s, Method::PUT, "/api/v1/catalog/tests/K", Some(body)).await
        }
        Action::ManageUsers => {
            let n = f.next();
            let username = format!("added{n}");
            app.post_form(
                s,
                "/users",
                &[
                    ("username", &username),
                    ("display_name", "Added Person"),
                    ("role", "technician"),
                    ("password", PASSWORD),
                ],
            )
            .await
        }
        Action::ViewAudit => app.api(s, Method::GET, "/api/v1/audit", None).await,
        Action::RunQc => {
            let (instrument, target) = qc_target(app, f).await;
            let (instrument, value) = (instrument.to_string(), format!("value_{target}"));
            app.post_form(
                s,
                "/qc/runs",
                &[("instrument_id", &instrument), ("test_code", "GLU"), (&value, "100.4")],
            )
            .await
        }
        Action::CorrectQc => {
            let (instrument, _) = qc_target(app, f).await;
            app.post_form(
                s,
                &format!("/qc/lockout/{instrument}/GLU/action"),
                &[("action", "recalibrated"), ("note", "table test")],
            )
            .await
        }
        Action::ManageQc => {
            app.post_form(s, "/qc/rules", &[("test_code", "GLU"), ("rules", "1-2s,1-3s,2-2s,R-4s")])
                .await
        }
        Action::ApproveAutoverification => app.post_form(s, "/autoverify/suspend", &[]).await,
    };
    match reply.status {
        StatusCode::FORBIDDEN => false,
        s if s.is_success() || s == StatusCode::SEE_OTHER => true,
        other => panic!("{action}: unexpected {other}: {}", reply.body),
    }
}

#[tokio::test]
async fn every_role_against_every_action() {
    let app = app().await;
    let mut sessions = Vec::new();
    for role in ROLES {
        sessions.push(app.sign_in(role, "table").await);
    }
    let mut f = Fixture { n: 0, qc: None };
    let mut wrong = Vec::new();
    for (action, _) in TABLE {
        for s in &sessions {
            let done = attempt(&app, &mut f, *action, s).await;
            if done != expected(*action, s.actor.role) {
                wrong.push(format!(
                    "{} × {action}: {}",
                    s.actor.role,
                    if done {
                        "allowed but should be refused"
                    } else {
                        "refused but should be allowed"
                    }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "privilege table violated:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn a_supervisor_edits_the_privilege_table_and_it_applies_at_once() {
    let app = app().await;
    let supervisor = app.sign_in(Role::Supervisor, "s").await;
    let tech = app.sign_in(Role::Technician, "t").await;
    let mut f = Fixture { n: 0, qc: None };
    assert!(!attempt(&app, &mut f, Action::VerifyAbnormal, &tech).await);

    // Grant technicians the verification of abnormal results, keeping everything else.
    let mut fields: Vec<(String, String)> = Vec::new();
    for role in ROLES {
        for action in ACTIONS {
            if role.may(action) || (role == Role::Technician && action == Action::VerifyAbnormal) {
                fields.push((format!("{}.{}", role.code(), action.code()), "on".into()));
            }
        }
    }
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = app.post_form(&supervisor, "/roles", &refs).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(attempt(&app, &mut f, Action::VerifyAbnormal, &tech).await);

    // Students can never be given verification.
    let mut bad = refs.clone();
    bad.push(("student.verify_routine", "on"));
    let r = app.post_form(&supervisor, "/roles", &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("co-signed"));
    // And a technician may not edit the table.
    assert_eq!(app.post_form(&tech, "/roles", &refs).await.status, StatusCode::FORBIDDEN);
}
