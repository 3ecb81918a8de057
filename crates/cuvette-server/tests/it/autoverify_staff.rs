//! Autoverification under the qualification gates, through the instrument path: an
//! analyzer's result that passes every rule is released on its own only while someone on
//! staff is qualified, authorised and competency-current for that test on that analyzer;
//! otherwise it waits for a qualified person, with the reason stored and audited.

use axum::http::{Method, StatusCode};
use cuvette_app::qc::MaterialForm;
use cuvette_app::records::AuditFilter;
use cuvette_app::{Actor, interop};
use cuvette_domain::audit::AuditAction;
use cuvette_domain::autoverify::AutoverifyRules;

use crate::staff::{Lab, assessment, lab, put_record, received, technician_record};

/// Acceptable QC for potassium on both analyzers, and the director's approved potassium
/// rules with autoverification on.
async fn autoverifying(lab: &Lab) {
    let app = &lab.app;
    let supervisor = &lab.supervisor.actor;
    for (i, (instrument, _)) in app.lab.instruments(supervisor).await.unwrap().iter().enumerate() {
        let material = app
            .lab
            .add_material(
                supervisor,
                &MaterialForm {
                    product: "Assayed Chemistry Control".into(),
                    manufacturer: "Example Diagnostics".into(),
                    lot: format!("44{i}"),
                    level: "1".into(),
                    expires_on: "2027-06-30".into(),
                    sample_id: format!("QC-CHEM-L1-44{i}"),
                },
            )
            .await
            .unwrap();
        let target = app
            .lab
            .set_target(supervisor, material, instrument.id, "K", "4.0", "0.1")
            .await
            .unwrap();
        app.lab
            .record_qc(&lab.tech.actor, instrument.id, "K", &[(target, "4.02".into())])
            .await
            .unwrap();
    }
    let def = app.lab.catalog().catalog.test("K").unwrap().clone();
    let rules = AutoverifyRules {
        enabled: true,
        hemolysis_max: None,
        ..AutoverifyRules::default_for(&def)
    };
    app.lab.save_autoverify_rules(&lab.director.actor, "K", &rules).await.unwrap();
}

/// Potassium 4.1 from `sender` for a new specimen: whether autoverification released it,
/// and the reasons stored with it.
async fn potassium(lab: &Lab, sender: &str, mrn: &str) -> (bool, Vec<String>) {
    let app = &lab.app;
    let acc = received(app, mrn, &["K"]).await;
    let oru = format!(
        "MSH|^~\\&|{sender}|LAB|CUVETTE|LAB|20261124081500||ORU^R01^ORU_R01|{mrn}|P|2.5.1\r\
         PID|1||{mrn}||Okafor^Ada\rOBR|1||{acc}|K\r\
         OBX|1|NM|2823-3^^LN||4.1|mmol/L|3.5-5.1||||F\r"
    );
    let (outcome, _) =
        interop::hl7::receive(&app.lab, oru.as_bytes(), "test", "peer").await.unwrap();
    assert!(matches!(outcome, interop::Ingested::Accepted { .. }), "{outcome:?}");
    let view = app.lab.specimen_view(&Actor::system(), &acc).await.unwrap();
    let result = view.tests[0].item.result.clone().expect("stored");
    (result.released_by.as_deref() == Some("autoverify"), result.reasons)
}

#[tokio::test]
async fn an_analyzer_result_is_autoverified_only_while_someone_is_competent_on_that_analyzer() {
    let lab = lab().await;
    put_record(&lab.app, &lab.supervisor, &lab.tech.actor.name, 1, technician_record("2028-12-01"))
        .await;
    autoverifying(&lab).await;

    // The technician is competency-current on K on Chem-1: released.
    let (released, reasons) = potassium(&lab, "CHEM1", "AV001").await;
    assert!(released, "{reasons:?}");

    // No one is assessed on K on Chem-2: the same value waits for a person.
    let (released, reasons) = potassium(&lab, "CHEM2", "AV002").await;
    assert!(!released);
    let reason = "no one on staff may perform K on Chem-2 today (qualified, authorised and competency-current): a qualified person verifies it";
    assert!(reasons.iter().any(|r| r.contains(reason)), "{reasons:?}");
    let filter = AuditFilter {
        actor: Some("autoverify".into()),
        action: Some(AuditAction::StaffPrivilegeRefused),
        ..Default::default()
    };
    let refused = lab.app.lab.audit_events(&Actor::system(), &filter).await.unwrap();
    assert_eq!(refused.len(), 1, "the hold is audited");
    assert!(refused[0].after.as_deref().unwrap_or_default().contains(reason));

    // Assessed on Chem-2 by the technical supervisor: autoverification resumes there.
    let on_chem2 = assessment("K", "Chem-2", &lab.supervisor.actor.name, "2026-11-24", "pass");
    let r = lab
        .app
        .api(
            &lab.supervisor,
            Method::POST,
            &format!("/api/v1/staff/{}/competency", lab.tech.actor.name),
            Some(on_chem2),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (released, reasons) = potassium(&lab, "CHEM2", "AV003").await;
    assert!(released, "{reasons:?}");
}

#[tokio::test]
async fn a_lapsed_licence_stops_autoverification_when_no_one_else_answers_for_the_analyzer() {
    let lab = lab().await;
    // The technician's licence lapsed yesterday (the lab requires one for moderate
    // complexity), and no one else is competent on K on Chem-1.
    put_record(&lab.app, &lab.supervisor, &lab.tech.actor.name, 1, technician_record("2026-11-23"))
        .await;
    autoverifying(&lab).await;
    let (released, reasons) = potassium(&lab, "CHEM1", "AV010").await;
    assert!(!released, "the only competent person's licence expired");
    assert!(
        reasons.iter().any(|r| r.contains("no one on staff may perform K on Chem-1 today")),
        "{reasons:?}"
    );
    // Renewed: released again.
    put_record(&lab.app, &lab.supervisor, &lab.tech.actor.name, 2, technician_record("2028-12-01"))
        .await;
    let (released, reasons) = potassium(&lab, "CHEM1", "AV011").await;
    assert!(released, "{reasons:?}");
}
