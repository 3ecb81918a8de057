//! A value in the database that Cuvette did not write is corrupt data: every action that
//! would decide on it refuses and says so. Nothing reads it as "no value" or a default — a
//! QC rejection that does not decode must not unlock a test, a release time must not read
//! as "not released", an unknown flag must not hide a critical.

use cuvette_app::AppError;
use cuvette_domain::qc::QcStatus;
use cuvette_domain::workflow::SpecimenCondition;

use crate::qc::{glucose_from_analyzer, glucose_qc, run};
use crate::support::*;

fn corrupt<T: std::fmt::Debug>(r: Result<T, AppError>) -> String {
    match r {
        Err(e) if e.to_string().contains("corrupt data") => e.to_string(),
        other => panic!("expected a corrupt-data refusal, got {other:?}"),
    }
}

/// A glucose QC rejection on the analyzer, with a patient result it holds.
async fn rejected_glucose(lab: &TestLab) -> (i64, cuvette_app::records::PatientRow) {
    let (instrument, l1, l2) = glucose_qc(lab).await;
    run(lab, instrument, (l1, l2), ("100", "300")).await;
    lab.clock.advance(minutes(30));
    assert_eq!(run(lab, instrument, (l1, l2), ("100", "320")).await, QcStatus::Rejected);
    lab.clock.advance(minutes(5));
    let patient = glucose_from_analyzer(lab, "P101", "95", "M2").await;
    (instrument, patient)
}

#[tokio::test]
async fn a_qc_rejection_with_an_unknown_verdict_keeps_the_lock_and_says_corrupt_data() {
    let lab = lab().await;
    let (instrument, patient) = rejected_glucose(&lab).await;
    lab.raw_sql("UPDATE qc_run SET status = 'rejectd' WHERE status = 'rejected'").await.unwrap();

    let why = corrupt(lab.qc_standings(Some(instrument)).await);
    assert!(why.contains("qc_run") && why.contains("status"), "{why}");
    let mls = lab.technologist().await;
    corrupt(lab.lockout(&mls, instrument, "GLU").await);
    let k = lab.test(&patient, "GLU").await;
    corrupt(
        lab.release(
            &mls,
            &[(k.test.id, k.test.row_version)],
            cuvette_domain::workflow::TestStatus::Final,
        )
        .await,
    );
    assert!(lab.test(&patient, "GLU").await.result.unwrap().released_at.is_none());
}

#[tokio::test]
async fn a_qc_rejection_time_that_is_not_a_time_says_corrupt_data() {
    let lab = lab().await;
    if lab.on_postgres() {
        return; // PostgreSQL refuses text in a BIGINT column itself.
    }
    let (instrument, _) = rejected_glucose(&lab).await;
    lab.raw_sql("UPDATE qc_run SET at = 'yesterday' WHERE status = 'rejected'").await.unwrap();
    corrupt(lab.qc_standings(Some(instrument)).await);
}

#[tokio::test]
async fn an_unknown_flag_is_corrupt_data_not_a_missing_critical() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "7.1").await.unwrap();
    let k = lab.test(&patient, "K").await;
    lab.raw_sql("UPDATE result SET flags = 'HHH'").await.unwrap();

    let mls = lab.technologist().await;
    // The release is held, and says why; the other tests of the same call go on.
    let outcome = lab
        .release(
            &mls,
            &[(k.test.id, k.test.row_version)],
            cuvette_domain::workflow::TestStatus::Final,
        )
        .await
        .unwrap();
    let why = match &outcome[..] {
        [cuvette_app::Release::Held { reason, .. }] => reason,
        other => panic!("expected the release held, got {other:?}"),
    };
    assert!(why.contains("corrupt data"), "{why}");
    assert!(why.contains("result") && why.contains("flags") && why.contains("HHH"), "{why}");
    corrupt(lab.review_queue(&mls).await);
}

#[tokio::test]
async fn an_unknown_test_or_specimen_status_is_corrupt_data() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();

    lab.raw_sql("UPDATE ordered_test SET status = 'done'").await.unwrap();
    let mls = lab.technologist().await;
    let why = corrupt(lab.review_queue(&mls).await);
    assert!(why.contains("ordered_test") && why.contains("\"done\""), "{why}");
    corrupt(lab.specimen_view(&mls, &accession).await);

    lab.raw_sql("UPDATE ordered_test SET status = 'in_process'").await.unwrap();
    lab.raw_sql("UPDATE specimen SET status = 'arrived'").await.unwrap();
    let why = corrupt(lab.specimen_view(&mls, &accession).await);
    assert!(why.contains("specimen") && why.contains("\"arrived\""), "{why}");
}

#[tokio::test]
async fn a_release_time_that_is_not_a_time_says_corrupt_data_not_unreleased() {
    let lab = lab().await;
    if lab.on_postgres() {
        return; // PostgreSQL refuses text in a BIGINT column itself.
    }
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    assert_released(&lab.verify(&technician, &patient, "K").await);
    lab.raw_sql("UPDATE result SET released_at = 'earlier'").await.unwrap();

    let mls = lab.technologist().await;
    let why = corrupt(lab.specimen_view(&mls, &accession).await);
    assert!(why.contains("released_at"), "{why}");
    corrupt(lab.cumulative_report(&mls, patient.id).await);
}

#[tokio::test]
async fn a_lock_out_time_that_is_not_a_time_refuses_sign_in() {
    let lab = lab().await;
    if lab.on_postgres() {
        return; // PostgreSQL refuses text in a BIGINT column itself.
    }
    lab.technician().await;
    lab.raw_sql("UPDATE app_user SET locked_until = 'later' WHERE username = 'technician'")
        .await
        .unwrap();
    let why = corrupt(lab.login("technician", PASSWORD).await);
    assert!(why.contains("locked_until"), "{why}");
}

#[tokio::test]
async fn westgard_rules_that_do_not_parse_refuse_the_run_instead_of_judging_by_a_default() {
    let lab = lab().await;
    let (instrument, l1, l2) = glucose_qc(&lab).await;
    let mls = lab.technologist().await;
    lab.set_westgard_rules(&mls, "GLU", "1-3s,2-2s").await.unwrap();
    lab.raw_sql("UPDATE qc_rules SET rules = '1-3s,2-2x' WHERE test_code = 'GLU'").await.unwrap();

    let tech = lab.technician().await;
    let why = corrupt(
        lab.record_qc(&tech, instrument, "GLU", &[(l1, "100".into()), (l2, "300".into())]).await,
    );
    assert!(why.contains("qc_rules") && why.contains("2-2x"), "{why}");
}

#[tokio::test]
async fn a_control_result_or_run_naming_an_unknown_rule_says_corrupt_data() {
    let lab = lab().await;
    let (instrument, l1, l2) = glucose_qc(&lab).await;
    run(&lab, instrument, (l1, l2), ("100", "300")).await;
    lab.clock.advance(minutes(30));
    assert_eq!(run(&lab, instrument, (l1, l2), ("100", "320")).await, QcStatus::Rejected);
    let mls = lab.technologist().await;
    assert!(!lab.lockout(&mls, instrument, "GLU").await.unwrap().runs.is_empty());

    lab.raw_sql("UPDATE qc_run SET violations = '[{\"rule\":\"1-9s\",\"detail\":\"\"}]'")
        .await
        .unwrap();
    let why = corrupt(lab.lockout(&mls, instrument, "GLU").await);
    assert!(why.contains("qc_run") && why.contains("violations"), "{why}");

    lab.raw_sql("UPDATE qc_result SET rules = '1-3s 9-9s'").await.unwrap();
    let why = corrupt(
        lab.levey_jennings(
            &mls,
            l2,
            cuvette_domain::time::Timestamp::EPOCH,
            cuvette_domain::time::Timestamp::from_micros(i64::MAX),
        )
        .await,
    );
    assert!(why.contains("qc_result") && why.contains("rules"), "{why}");
}

#[tokio::test]
async fn an_unknown_specimen_condition_is_corrupt_data_not_a_clean_specimen() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    let technician = lab.technician().await;
    lab.set_specimen_conditions(&technician, &accession, &["hem".into(), "CLOT".into()])
        .await
        .unwrap();
    let mls = lab.technologist().await;
    let conditions = lab.specimen_view(&mls, &accession).await.unwrap().specimen.conditions;
    assert_eq!(conditions, [SpecimenCondition::Hemolyzed, SpecimenCondition::Clotted]);

    lab.raw_sql("UPDATE specimen SET conditions = 'HEM HAEM'").await.unwrap();
    let why = corrupt(lab.specimen_view(&mls, &accession).await);
    assert!(why.contains("specimen") && why.contains("conditions"), "{why}");
}

#[tokio::test]
async fn an_unknown_role_refuses_sign_in_and_an_unknown_privilege_refuses_start_up() {
    let lab = lab().await;
    lab.technician().await;
    lab.raw_sql("UPDATE app_user SET role = 'superuser' WHERE username = 'technician'")
        .await
        .unwrap();
    let why = corrupt(lab.login("technician", PASSWORD).await);
    assert!(why.contains("app_user") && why.contains("superuser"), "{why}");

    lab.raw_sql(
        "UPDATE role_privilege SET action = 'release_everything' WHERE action = 'view_results'",
    )
    .await
    .unwrap();
    let why = corrupt(lab.store().privileges().await.map_err(cuvette_app::AppError::from));
    assert!(why.contains("role_privilege") && why.contains("release_everything"), "{why}");
}

#[tokio::test]
async fn review_reasons_that_do_not_decode_are_corrupt_data_not_no_reasons() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "6.9").await.unwrap();
    let mls = lab.technologist().await;
    assert!(!lab.review_queue(&mls).await.unwrap().is_empty(), "a high potassium waits");

    lab.raw_sql("UPDATE result SET reasons = 'potassium high'").await.unwrap();
    let why = corrupt(lab.review_queue(&mls).await);
    assert!(why.contains("result") && why.contains("reasons"), "{why}");
}

#[tokio::test]
async fn an_audit_event_with_an_action_cuvette_never_writes_is_corrupt_data_and_breaks_the_chain() {
    let lab = lab().await;
    lab.technician().await;
    assert!(matches!(
        lab.store().verify_audit().await.unwrap(),
        cuvette_app::records::AuditVerification::Intact { .. }
    ));
    // The log is append-only, so the damage is an appended row rather than an edited one.
    lab.raw_sql(
        "INSERT INTO audit_event (seq, at, actor, action, entity, entity_id, patient_id, \
         before_state, after_state, prev_hash, hash) \
         SELECT seq + 1, at, actor, 'result.erase', entity, entity_id, NULL, NULL, NULL, audit_event.hash, audit_event.hash \
         FROM audit_head JOIN audit_event USING (seq) WHERE audit_head.id = 1",
    )
    .await
    .unwrap();
    let why = corrupt(
        lab.store().audit_events(&Default::default()).await.map_err(cuvette_app::AppError::from),
    );
    assert!(why.contains("audit_event") && why.contains("result.erase"), "{why}");
    assert!(
        matches!(
            lab.store().verify_audit().await.unwrap(),
            cuvette_app::records::AuditVerification::Broken { .. }
        ),
        "the chain check reads the stored text and reports the damage"
    );
}

/// A message from an unregistered sender, kept in the quarantine; returns its log id.
async fn quarantined_message(lab: &TestLab) -> i64 {
    let oru = "MSH|^~\\&|NOSUCH|LAB|CUVETTE|LAB|20261124081500||ORU^R01^ORU_R01|MSG0001|P|2.5.1\r\
               PID|1\rOBR|1||26-0000999-3|BMP\rOBX|1|NM|2823-3^^LN||4.1|mmol/L\r";
    let (outcome, _) =
        cuvette_app::interop::hl7::receive(lab, oru.as_bytes(), "test", "peer").await.unwrap();
    let cuvette_app::interop::Ingested::Quarantined { message_id, .. } = outcome else {
        panic!("{outcome:?}")
    };
    message_id
}

#[tokio::test]
async fn a_quarantined_message_of_an_unknown_protocol_is_corrupt_data_never_replayed() {
    let lab = lab().await;
    let id = quarantined_message(&lab).await;
    lab.raw_sql("UPDATE interface_message SET protocol = 'fhir'").await.unwrap();

    let mls = lab.technologist().await;
    let why = corrupt(lab.replay_quarantined(&mls, id, None).await);
    assert!(why.contains("interface_message") && why.contains("protocol"), "{why}");
    corrupt(lab.message_log(&mls, &Default::default()).await);
    corrupt(lab.dismiss_quarantined(&mls, id, "a test message").await);
}

#[tokio::test]
async fn a_quarantine_state_or_outcome_it_does_not_know_is_corrupt_data_not_closed() {
    let lab = lab().await;
    let id = quarantined_message(&lab).await;
    let mls = lab.technologist().await;
    lab.raw_sql("UPDATE interface_message SET quarantine = 'OPEN'").await.unwrap();
    let why = corrupt(lab.dismiss_quarantined(&mls, id, "a test message").await);
    assert!(why.contains("quarantine") && why.contains("OPEN"), "{why}");

    lab.raw_sql("UPDATE interface_message SET quarantine = 'open', outcome = 'kept'")
        .await
        .unwrap();
    let why = corrupt(lab.message(&mls, id).await);
    assert!(why.contains("outcome") && why.contains("kept"), "{why}");
}

#[tokio::test]
async fn an_instrument_protocol_or_outbox_status_it_does_not_know_is_corrupt_data() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    lab.add_instrument(&supervisor, "Chemistry 1", "hl7", "CHEMANALYZER").await.unwrap();
    lab.raw_sql("UPDATE instrument SET protocol = 'mllp'").await.unwrap();
    let why = corrupt(lab.instruments(&supervisor).await);
    assert!(why.contains("instrument") && why.contains("mllp"), "{why}");

    let mut tx = lab.store().begin().await.unwrap();
    tx.enqueue("ehr", "CUV1", b"MSH|", "26-0000001-8", cuvette_domain::time::Timestamp::EPOCH)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    lab.raw_sql("UPDATE outbox SET status = 'delivered'").await.unwrap();
    let why = corrupt(lab.outbox(&supervisor).await);
    assert!(why.contains("outbox") && why.contains("status"), "{why}");
}

#[tokio::test]
async fn an_unknown_reported_status_is_corrupt_data_not_a_final_result() {
    // Read as "reported final", a preliminary result could be released as final.
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    let mls = lab.technologist().await;

    lab.raw_sql("UPDATE result SET reported_as = 'provisional'").await.unwrap();
    let why = corrupt(lab.review_queue(&mls).await);
    assert!(why.contains("result") && why.contains("reported_as"), "{why}");
}
