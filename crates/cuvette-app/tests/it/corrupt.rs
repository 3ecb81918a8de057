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
    let why = corrupt(lab.levey_jennings(&mls, l2, 0, i64::MAX).await);
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
