//! Who may do what: every use case refuses a role without the privilege, before looking at
//! the input, and a refused attempt writes nothing.

use cuvette_app::records::{AuditFilter, PatientRow};
use cuvette_app::{
    Actor, AppError, AppResult, EnteredResult, NewUser, PatientQuery, PlaceOrder, RegisterPatient,
};
use cuvette_domain::Role;
use cuvette_domain::role::ROLES;
use cuvette_domain::workflow::TestStatus;

use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum UseCase {
    RegisterPatient,
    SearchPatients,
    ViewPatient,
    PatientOrders,
    OpenCounts,
    SpecimenView,
    PlaceOrder,
    Collect,
    CollectionList,
    Receive,
    Reject,
    Worklist,
    ReviewQueue,
    CumulativeReport,
    EnterResults,
    CorrectResult,
    Release,
    DocumentCriticalCall,
    SaveDefinition,
    DefinitionHistory,
    AddUser,
    Users,
    CreateApiKey,
    AuditEvents,
}

const Y: bool = true;
const N: bool = false;

/// The privilege table, as the lab's policy states it. Columns: phlebotomist, lab assistant,
/// technician, technologist, supervisor, pathologist, student (the order of `ROLES`).
const WHO_MAY: &[(UseCase, [bool; 7])] = &[
    (UseCase::RegisterPatient, [Y, N, N, Y, Y, Y, N]),
    (UseCase::SearchPatients, [Y, Y, Y, Y, Y, Y, Y]),
    (UseCase::ViewPatient, [Y, Y, Y, Y, Y, Y, Y]),
    (UseCase::PatientOrders, [Y, Y, Y, Y, Y, Y, Y]),
    (UseCase::OpenCounts, [Y, Y, Y, Y, Y, Y, Y]),
    (UseCase::SpecimenView, [Y, Y, Y, Y, Y, Y, Y]),
    (UseCase::PlaceOrder, [Y, N, N, Y, Y, Y, N]),
    (UseCase::Collect, [Y, Y, N, Y, Y, Y, N]),
    (UseCase::CollectionList, [Y, Y, N, Y, Y, Y, N]),
    (UseCase::Receive, [N, Y, Y, Y, Y, Y, N]),
    (UseCase::Reject, [N, Y, Y, Y, Y, Y, N]),
    (UseCase::Worklist, [N, Y, Y, Y, Y, Y, Y]),
    (UseCase::ReviewQueue, [N, Y, Y, Y, Y, Y, Y]),
    (UseCase::CumulativeReport, [N, Y, Y, Y, Y, Y, Y]),
    (UseCase::EnterResults, [N, N, Y, Y, Y, Y, Y]),
    (UseCase::CorrectResult, [N, N, N, Y, Y, Y, N]),
    (UseCase::Release, [N, N, Y, Y, Y, Y, N]),
    (UseCase::DocumentCriticalCall, [N, N, Y, Y, Y, Y, N]),
    (UseCase::SaveDefinition, [N, N, N, N, Y, Y, N]),
    (UseCase::DefinitionHistory, [N, N, N, N, Y, Y, N]),
    (UseCase::AddUser, [N, N, N, N, Y, Y, N]),
    (UseCase::Users, [N, N, N, N, Y, Y, N]),
    (UseCase::CreateApiKey, [N, N, N, N, Y, Y, N]),
    (UseCase::AuditEvents, [N, N, N, N, Y, Y, N]),
];

/// What the attempts work on: a patient with a released potassium on a received specimen.
struct Scene {
    patient: PatientRow,
    accession: String,
    released: EnteredResult,
}

/// Tries the use case with input that a privileged role gets refused for something else (or
/// only reads), so that no attempt, allowed or not, changes anything.
async fn attempt(lab: &TestLab, case: UseCase, who: &Actor, scene: &Scene) -> AppResult<()> {
    let nobody = 987_654;
    match case {
        UseCase::RegisterPatient => {
            lab.register_patient(who, &RegisterPatient::default()).await.map(drop)
        }
        UseCase::SearchPatients => {
            lab.search_patients(who, &PatientQuery { text: "x".repeat(201) }).await.map(drop)
        }
        UseCase::ViewPatient => lab.patient(who, nobody).await.map(drop),
        UseCase::PatientOrders => lab.patient_orders(who, scene.patient.id).await.map(drop),
        UseCase::OpenCounts => lab.open_counts(who).await.map(drop),
        UseCase::SpecimenView => lab.specimen_view(who, "not an accession").await.map(drop),
        UseCase::PlaceOrder => lab.place_order(who, &PlaceOrder::default()).await.map(drop),
        UseCase::Collect => lab.collect(who, "not an accession").await.map(drop),
        UseCase::CollectionList => lab.collection_list(who).await.map(drop),
        UseCase::Receive => {
            lab.receive(who, "not an accession", &identity(&scene.patient)).await.map(drop)
        }
        UseCase::Reject => lab.reject(who, &scene.accession, "not a reason", "").await.map(drop),
        UseCase::Worklist => lab.worklist(who, None).await.map(drop),
        UseCase::ReviewQueue => lab.review_queue(who).await.map(drop),
        UseCase::CumulativeReport => lab.cumulative_report(who, nobody).await.map(drop),
        UseCase::EnterResults => lab.enter_results(who, &[], None).await.map(drop),
        UseCase::CorrectResult => {
            lab.enter_results(who, std::slice::from_ref(&scene.released), None).await.map(drop)
        }
        UseCase::Release => lab.release(who, &[], TestStatus::InProcess).await.map(drop),
        UseCase::DocumentCriticalCall => {
            lab.document_critical_call(who, nobody, &Default::default()).await.map(drop)
        }
        UseCase::SaveDefinition => {
            let mut k = lab.catalog().catalog.test("K").cloned().unwrap();
            k.name = String::new();
            lab.save_definition(who, k, 1, REASON).await.map(drop)
        }
        UseCase::DefinitionHistory => lab.definition_history(who, "K").await.map(drop),
        UseCase::AddUser => {
            let user = NewUser {
                username: "newcomer".into(),
                display_name: "New Comer".into(),
                role: Role::Pathologist,
                password: "short".into(), // refused after the privilege check
            };
            lab.add_user(who, user).await.map(drop)
        }
        UseCase::Users => lab.users(who).await.map(drop),
        UseCase::CreateApiKey => lab.create_api_key(who, "", Role::Pathologist).await.map(drop),
        UseCase::AuditEvents => lab.audit_events(who, &AuditFilter::default()).await.map(drop),
    }
}

#[tokio::test]
async fn every_use_case_refuses_a_role_without_the_privilege() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    assert_released(&lab.verify(&technician, &patient, "K").await);
    let k = lab.test(&patient, "K").await;
    let released = EnteredResult {
        ordered_test_id: k.test.id,
        row_version: k.test.row_version,
        text: "4.4".into(),
    };
    let scene = Scene { patient, accession, released };
    let mut staff = Vec::new();
    for role in ROLES {
        staff.push(lab.staff(role).await);
    }
    let events = lab.audit_count().await;

    let mut wrong = Vec::new();
    for (case, may) in WHO_MAY {
        for (who, may) in staff.iter().zip(may) {
            match (attempt(&lab, *case, who, &scene).await, may) {
                (Err(AppError::Forbidden(_)), false) => {}
                (Err(AppError::Forbidden(m)), true) => {
                    wrong.push(format!("{case:?} refused a {}: {m}", who.role))
                }
                (other, false) => {
                    wrong.push(format!("{case:?} let a {} through: {other:?}", who.role))
                }
                (_, true) => {}
            }
        }
    }
    assert!(wrong.is_empty(), "the privilege table is not enforced:\n{}", wrong.join("\n"));
    assert_eq!(lab.audit_count().await, events, "no attempt wrote anything");
    assert_eq!(lab.versions(&scene.patient, "K").await.len(), 1);
}

#[tokio::test]
async fn the_policy_table_is_the_domains_privilege_table() {
    let actions = [
        (UseCase::RegisterPatient, cuvette_domain::Action::RegisterPatient),
        (UseCase::PlaceOrder, cuvette_domain::Action::PlaceOrder),
        (UseCase::Collect, cuvette_domain::Action::CollectSpecimen),
        (UseCase::Receive, cuvette_domain::Action::ReceiveSpecimen),
        (UseCase::Reject, cuvette_domain::Action::RejectSpecimen),
        (UseCase::Worklist, cuvette_domain::Action::ViewResults),
        (UseCase::EnterResults, cuvette_domain::Action::EnterResult),
        (UseCase::CorrectResult, cuvette_domain::Action::CorrectResult),
        (UseCase::Release, cuvette_domain::Action::VerifyRoutine),
        (UseCase::DocumentCriticalCall, cuvette_domain::Action::DocumentCriticalCall),
        (UseCase::SaveDefinition, cuvette_domain::Action::EditCatalog),
        (UseCase::AddUser, cuvette_domain::Action::ManageUsers),
        (UseCase::AuditEvents, cuvette_domain::Action::ViewAudit),
    ];
    for (case, action) in actions {
        let row = WHO_MAY.iter().find(|(c, _)| *c == case).unwrap().1;
        let domain: Vec<bool> = ROLES.iter().map(|r| r.may(action)).collect();
        assert_eq!(domain, row, "{case:?} ({action})");
    }
}

#[tokio::test]
async fn only_technologists_and_above_release_abnormal_results() {
    let lab = lab().await;
    let technician = lab.technician().await;
    let mut released_by = Vec::new();
    for (n, role) in [Role::Technician, Role::Technologist, Role::Supervisor, Role::Pathologist]
        .into_iter()
        .enumerate()
    {
        let patient = lab.register(&format!("AB{n}"), "Abnormal", "1980-01-01", "F").await;
        lab.received(&patient, &["K"]).await;
        lab.enter(&technician, &patient, "K", "5.6").await.unwrap();
        if let cuvette_app::Release::Released { .. } =
            lab.verify(&lab.staff(role).await, &patient, "K").await
        {
            released_by.push(role);
        }
    }
    assert_eq!(released_by, [Role::Technologist, Role::Supervisor, Role::Pathologist]);
}

#[tokio::test]
async fn a_view_of_the_audit_log_is_for_supervisors_and_directors() {
    let lab = lab().await;
    let technologist = lab.technologist().await;
    let message = forbidden(lab.audit_events(&technologist, &AuditFilter::default()).await);
    assert!(message.contains("view the audit log"), "{message}");
    let supervisor = lab.supervisor().await;
    assert!(!lab.audit_events(&supervisor, &AuditFilter::default()).await.unwrap().is_empty());
}
