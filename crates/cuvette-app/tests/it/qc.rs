//! Quality control: a run is judged the moment it is entered; a rejection holds the
//! instrument's patient results until a technologist documents what was done and QC passes.

use cuvette_app::interop;
use cuvette_app::qc::MaterialForm;
use cuvette_app::records::MovingAverageRow;
use cuvette_domain::qc::{ControlRule, QcStatus, RunSource, TargetSource, WestgardRule};

use crate::support::*;

/// Glucose on a chemistry analyzer with two control levels: level 1 targets 100 ± 2 mg/dL,
/// level 2 targets 300 ± 6 mg/dL. Returns (instrument id, level 1 target, level 2 target).
pub async fn glucose_qc(lab: &TestLab) -> (i64, i64, i64) {
    let supervisor = lab.supervisor().await;
    let instrument =
        lab.add_instrument(&supervisor, "Chemistry 1", "hl7", "CHEMANALYZER").await.unwrap();
    lab.map_test_code(&supervisor, instrument, "2345-7", "GLU", "").await.unwrap();
    lab.map_test_code(&supervisor, instrument, "2823-3", "K", "mmol/L").await.unwrap();
    let mut targets = Vec::new();
    for (level, mean, sd) in [("1", "100", "2"), ("2", "300", "6")] {
        let material = lab
            .add_material(
                &supervisor,
                &MaterialForm {
                    product: "Assayed Chemistry Control".into(),
                    manufacturer: "Example Diagnostics".into(),
                    lot: "4471".into(),
                    level: level.into(),
                    expires_on: "2027-06-30".into(),
                    sample_id: format!("QC-CHEM-L{level}-4471"),
                },
            )
            .await
            .unwrap();
        targets.push(
            lab.set_target(&supervisor, material, instrument, "GLU", mean, sd).await.unwrap(),
        );
    }
    (instrument, targets[0], targets[1])
}

/// A technician runs both levels.
pub async fn run(
    lab: &TestLab,
    instrument: i64,
    targets: (i64, i64),
    values: (&str, &str),
) -> QcStatus {
    let tech = lab.technician().await;
    lab.record_qc(
        &tech,
        instrument,
        "GLU",
        &[(targets.0, values.0.into()), (targets.1, values.1.into())],
    )
    .await
    .unwrap()
    .status
}

/// A glucose result for a received specimen, sent by the analyzer.
pub async fn glucose_from_analyzer(
    lab: &TestLab,
    mrn: &str,
    value: &str,
    control: &str,
) -> cuvette_app::records::PatientRow {
    let patient = lab.register(mrn, "Osei", "1980-02-02", "F").await;
    let accession = lab.received(&patient, &["GLU"]).await.specimens[0].accession.clone();
    let message = format!(
        "MSH|^~\\&|CHEMANALYZER|LAB|CUVETTE|LAB|20261124081500||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||{mrn}||Osei^Sam\rOBR|1||{accession}|GLU\r\
         OBX|1|NM|2345-7^^LN||{value}|mg/dL|70-99||||F\r"
    );
    let (outcome, _) =
        interop::hl7::receive(lab, message.as_bytes(), "test", "peer").await.unwrap();
    assert!(matches!(outcome, interop::Ingested::Accepted { .. }), "{outcome:?}");
    patient
}

#[tokio::test]
async fn a_run_within_two_sd_is_accepted() {
    let lab = lab().await;
    let (instrument, l1, l2) = glucose_qc(&lab).await;
    assert_eq!(run(&lab, instrument, (l1, l2), ("101.0", "297.0")).await, QcStatus::Accepted);
    let standing = &lab.qc_standings(Some(instrument)).await.unwrap()[0];
    assert!(!standing.locked);
    assert_eq!(standing.reason, "QC acceptable");
}

#[tokio::test]
async fn one_level_beyond_two_sd_is_a_warning_not_a_rejection() {
    let lab = lab().await;
    let (instrument, l1, l2) = glucose_qc(&lab).await;
    let tech = lab.technician().await;
    let outcome = lab
        .record_qc(&tech, instrument, "GLU", &[(l1, "104.5".into()), (l2, "300".into())])
        .await
        .unwrap();
    assert_eq!(outcome.status, QcStatus::Warning);
    assert_eq!(outcome.violations[0].rule, WestgardRule::OneTwoS);
    assert!(!lab.qc_standings(Some(instrument)).await.unwrap()[0].locked);
}

#[tokio::test]
async fn two_runs_beyond_two_sd_on_one_level_reject_as_2_2s_across_runs() {
    let lab = lab().await;
    let (instrument, l1, l2) = glucose_qc(&lab).await;
    assert_eq!(run(&lab, instrument, (l1, l2), ("104.3", "300")).await, QcStatus::Warning);
    lab.clock.advance(minutes(60));
    let tech = lab.technician().await;
    let outcome = lab
        .record_qc(&tech, instrument, "GLU", &[(l1, "104.1".into()), (l2, "301".into())])
        .await
        .unwrap();
    assert_eq!(outcome.status, QcStatus::Rejected);
    assert!(
        outcome.violations.iter().any(|v| v.rule == WestgardRule::TwoTwoS && v.results.len() == 2),
        "{:?}",
        outcome.violations
    );
}

#[tokio::test]
async fn a_rejection_holds_the_instruments_results_until_corrective_action_and_good_qc() {
    let lab = lab().await;
    let (instrument, l1, l2) = glucose_qc(&lab).await;
    run(&lab, instrument, (l1, l2), ("100", "300")).await;
    lab.clock.advance(minutes(30));
    let before_failure = glucose_from_analyzer(&lab, "P100", "92", "M1").await;
    lab.clock.advance(minutes(30));
    // Level 2 reads 320: more than 3 SD above its mean.
    assert_eq!(run(&lab, instrument, (l1, l2), ("100", "320")).await, QcStatus::Rejected);
    lab.clock.advance(minutes(5));
    let after_failure = glucose_from_analyzer(&lab, "P101", "95", "M2").await;

    let mls = lab.technologist().await;
    let view = lab.lockout(&mls, instrument, "GLU").await.unwrap();
    assert!(view.standing.locked);
    assert!(
        view.standing.reason.contains("document a corrective action"),
        "{}",
        view.standing.reason
    );
    let suspects: Vec<i64> = view.suspect_results.iter().map(|r| r.ordered_test_id).collect();
    let expected = vec![
        lab.test(&before_failure, "GLU").await.test.id,
        lab.test(&after_failure, "GLU").await.test.id,
    ];
    assert_eq!(suspects, expected, "every result since the last good QC");

    // The technologist cannot release them.
    let held = lab.verify(&mls, &after_failure, "GLU").await;
    assert!(held_reason(&held).starts_with("QC lockout"), "{held:?}");

    // Good QC alone does not lift it: the failure needs a documented corrective action.
    lab.clock.advance(minutes(5));
    assert_eq!(run(&lab, instrument, (l1, l2), ("100", "300")).await, QcStatus::Accepted);
    assert!(lab.lockout(&mls, instrument, "GLU").await.unwrap().standing.locked);

    lab.document_corrective_action(
        &mls,
        instrument,
        "GLU",
        "recalibrated",
        "Recalibrated GLU, cal lot 88",
    )
    .await
    .unwrap();
    let view = lab.lockout(&mls, instrument, "GLU").await.unwrap();
    assert!(view.standing.locked, "QC must pass after the corrective action");
    assert!(view.standing.reason.contains("run QC"), "{}", view.standing.reason);

    lab.clock.advance(minutes(5));
    assert_eq!(run(&lab, instrument, (l1, l2), ("99", "302")).await, QcStatus::Accepted);
    assert!(!lab.lockout(&mls, instrument, "GLU").await.unwrap().standing.locked);
    assert_released(&lab.verify(&mls, &after_failure, "GLU").await);
}

#[tokio::test]
async fn history_restarts_after_a_corrective_action_so_a_rejected_result_is_not_reused() {
    let lab = lab().await;
    let (instrument, l1, l2) = glucose_qc(&lab).await;
    // Level 1 at +2.5 SD: a warning.
    assert_eq!(run(&lab, instrument, (l1, l2), ("105", "300")).await, QcStatus::Warning);
    let mls = lab.technologist().await;
    lab.clock.advance(minutes(5));
    lab.document_corrective_action(&mls, instrument, "GLU", "new_control", "").await.unwrap();
    lab.clock.advance(minutes(10));
    // Another +2.5 SD: without the restart this would pair with the first as 2-2s.
    assert_eq!(run(&lab, instrument, (l1, l2), ("105", "300")).await, QcStatus::Warning);
}

#[tokio::test]
async fn qc_is_refused_on_an_expired_lot_and_on_a_level_without_a_target_sd() {
    let lab = lab().await;
    let (instrument, l1, _) = glucose_qc(&lab).await;
    let supervisor = lab.supervisor().await;
    let expired = lab
        .add_material(
            &supervisor,
            &MaterialForm {
                product: "Assayed Chemistry Control".into(),
                manufacturer: "Example Diagnostics".into(),
                lot: "3001".into(),
                level: "1".into(),
                expires_on: "2026-10-31".into(),
                sample_id: "QC-CHEM-L1-3001".into(),
            },
        )
        .await
        .unwrap();
    let target = lab.set_target(&supervisor, expired, instrument, "GLU", "100", "2").await.unwrap();
    let tech = lab.technician().await;
    let why = refused(lab.record_qc(&tech, instrument, "GLU", &[(target, "100".into())]).await);
    assert!(why.contains("expired on 2026-10-31"), "{why}");
    assert_eq!(
        invalid(lab.set_target(&supervisor, expired, instrument, "GLU", "100", "0").await, "sd"),
        "give the SD as a number above 0"
    );
    assert_eq!(
        invalid(
            lab.record_qc(&tech, instrument, "GLU", &[(l1, "1OO".into())]).await,
            &format!("value_{l1}")
        ),
        "enter a number such as 4.2; \"1OO\" has a letter O where a digit belongs: 100"
    );
}

#[tokio::test]
async fn the_lab_adopts_its_own_target_after_twenty_runs_and_not_before() {
    let lab = lab().await;
    let (instrument, l1, _) = glucose_qc(&lab).await;
    let tech = lab.technician().await;
    let supervisor = lab.supervisor().await;
    let values = [99.0, 101.0, 100.5, 99.5, 100.0, 102.0, 98.0, 100.0, 101.0, 99.0];
    for (n, v) in values.iter().chain(values.iter()).enumerate() {
        if n == 19 {
            let why = refused(lab.adopt_lab_target(&supervisor, l1).await);
            assert!(why.starts_with("19 of 20 results"), "{why}");
        }
        lab.record_qc(&tech, instrument, "GLU", &[(l1, v.to_string())]).await.unwrap();
        lab.clock.advance(minutes(60));
    }
    let (mean, sd) = lab.adopt_lab_target(&supervisor, l1).await.unwrap();
    assert!((mean - 100.0).abs() < 1e-9, "{mean}");
    // Sample SD (n − 1) of the twenty values: √(25 / 19).
    assert!((sd - (25.0f64 / 19.0).sqrt()).abs() < 1e-9, "{sd}");
    let target = lab.store().target(l1).await.unwrap();
    assert_eq!((target.source, target.manufacturer_mean), (TargetSource::Lab, 100.0));
}

#[tokio::test]
async fn the_levey_jennings_data_marks_violations_lot_changes_and_monthly_statistics() {
    let lab = lab().await;
    let (instrument, l1, l2) = glucose_qc(&lab).await;
    run(&lab, instrument, (l1, l2), ("100", "300")).await;
    lab.clock.advance(minutes(60));
    run(&lab, instrument, (l1, l2), ("107", "300")).await; // +3.5 SD: 1-3s
    let mls = lab.technologist().await;
    let from = lab.now_at() - jiff::SignedDuration::from_hours(24);
    let to = lab.now_at() + jiff::SignedDuration::from_micros(1);
    let data = lab.levey_jennings(&mls, l1, from, to).await.unwrap();
    assert_eq!(data.points.len(), 2);
    assert_eq!(data.points[1].rules, [WestgardRule::OneTwoS, WestgardRule::OneThreeS]);
    assert_eq!(data.points[1].run_status.code(), "rejected");
    assert_eq!(data.months.len(), 1);
    assert_eq!((data.months[0].stats.n, data.months[0].stats.mean), (2, 103.5));
    assert_eq!(data.months[0].stats.bias_percent, Some(3.5));
    assert!(data.sigma.is_some(), "glucose has a TEa in the catalog");
    assert!(data.recommendation.is_some());
}

#[tokio::test]
async fn a_patient_moving_average_out_of_control_raises_the_same_lockout() {
    let lab = lab().await;
    let (instrument, l1, l2) = glucose_qc(&lab).await;
    run(&lab, instrument, (l1, l2), ("100", "300")).await;
    let supervisor = lab.supervisor().await;
    lab.set_moving_average(
        &supervisor,
        &MovingAverageRow {
            instrument_id: instrument,
            test_code: "GLU".into(),
            window_size: 5,
            truncate_low: Some(40.0),
            truncate_high: Some(400.0),
            target: 100.0,
            lower_limit: 85.0,
            upper_limit: 115.0,
        },
    )
    .await
    .unwrap();
    for (n, v) in ["98", "101", "99", "103", "100"].iter().enumerate() {
        glucose_from_analyzer(&lab, &format!("MA{n}"), v, &format!("MA-OK-{n}")).await;
    }
    assert!(!lab.qc_standings(Some(instrument)).await.unwrap()[0].locked);
    // A calibration shift: every patient reads ~30% high.
    for (n, v) in ["131", "135", "128", "133", "130"].iter().enumerate() {
        glucose_from_analyzer(&lab, &format!("MB{n}"), v, &format!("MA-SHIFT-{n}")).await;
    }
    let standing = &lab.qc_standings(Some(instrument)).await.unwrap()[0];
    assert!(standing.locked, "{standing:?}");
    let runs = lab.store().qc_runs(instrument, "GLU", 1).await.unwrap();
    assert_eq!(runs[0].source, RunSource::PatientAverage);
    assert!(
        runs[0].violations[0].rule == ControlRule::MovingAverage
            && runs[0].violations[0]
                .detail
                .contains("patient moving average of GLU over 5 results"),
        "{:?}",
        runs[0].violations
    );
}

#[tokio::test]
async fn only_qc_roles_run_qc_and_only_technologists_document_corrective_actions() {
    let lab = lab().await;
    let (instrument, l1, _) = glucose_qc(&lab).await;
    let assistant = lab.lab_assistant().await;
    forbidden(lab.record_qc(&assistant, instrument, "GLU", &[(l1, "100".into())]).await);
    let tech = lab.technician().await;
    forbidden(lab.document_corrective_action(&tech, instrument, "GLU", "recalibrated", "").await);
    forbidden(lab.set_target(&tech, 1, instrument, "GLU", "1", "1").await);
}

/// The analyzer's control run for glucose, as it sends it: one OBR per level, the vial's
/// barcode as the sample id.
fn control_message(control: &str, levels: &[(&str, &str)]) -> Vec<u8> {
    let mut m = format!(
        "MSH|^~\\&|CHEMANALYZER|LAB|CUVETTE|LAB|20261124070000||ORU^R01^ORU_R01|{control}|P|2.5.1\r"
    );
    for (i, (sample, value)) in levels.iter().enumerate() {
        m.push_str(&format!(
            "OBR|{}||{sample}|GLU\rOBX|1|NM|2345-7^^LN||{value}|mg/dL|||||F\r",
            i + 1
        ));
    }
    m.into_bytes()
}

#[tokio::test]
async fn an_instruments_control_run_is_recognised_by_its_sample_id_and_judged_on_arrival() {
    let lab = lab().await;
    let (instrument, _, _) = glucose_qc(&lab).await;
    let supervisor = lab.supervisor().await;
    lab.set_qc_pattern(&supervisor, instrument, "QC-CHEM-*").await.unwrap();

    let (outcome, ack) = interop::hl7::receive(
        &lab,
        &control_message("QC1", &[("QC-CHEM-L1-4471", "100.8"), ("QC-CHEM-L2-4471", "313.0")]),
        "test",
        "peer",
    )
    .await
    .unwrap();
    assert!(matches!(outcome, interop::Ingested::Accepted { results: 2, .. }), "{outcome:?}");
    assert!(String::from_utf8_lossy(&ack).contains("MSA|AA|QC1"));
    let runs = lab.store().qc_runs(instrument, "GLU", 5).await.unwrap();
    assert_eq!((runs[0].status, runs[0].source), (QcStatus::Warning, RunSource::Instrument));

    // Level 1 reads 107: 3.5 SD high.
    interop::hl7::receive(
        &lab,
        &control_message("QC2", &[("QC-CHEM-L1-4471", "107"), ("QC-CHEM-L2-4471", "300")]),
        "test",
        "peer",
    )
    .await
    .unwrap();
    assert!(lab.qc_standings(Some(instrument)).await.unwrap()[0].locked);
    let log = lab
        .message_log(&lab.technologist().await, &cuvette_app::records::MessageFilter::default())
        .await
        .unwrap();
    assert!(
        log.iter().any(|m| m.detail.starts_with("QC run: GLU REJECTED (1-2s, 1-3s")),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_control_sample_without_a_material_or_mixed_with_patients_is_quarantined() {
    let lab = lab().await;
    let (instrument, _, _) = glucose_qc(&lab).await;
    let supervisor = lab.supervisor().await;
    lab.set_qc_pattern(&supervisor, instrument, "QC-*").await.unwrap();

    let (outcome, _) = interop::hl7::receive(
        &lab,
        &control_message("QC3", &[("QC-UNKNOWN-9", "100")]),
        "test",
        "peer",
    )
    .await
    .unwrap();
    let interop::Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
    assert!(reason.contains("no control material has the sample id \"QC-UNKNOWN-9\""), "{reason}");

    let (outcome, _) = interop::hl7::receive(
        &lab,
        &control_message("QC4", &[("QC-CHEM-L1-4471", "100"), ("26-0000001-8", "99")]),
        "test",
        "peer",
    )
    .await
    .unwrap();
    let interop::Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
    assert!(reason.contains("mixes control sample"), "{reason}");
    assert!(
        lab.store().qc_runs(instrument, "GLU", 5).await.unwrap().is_empty(),
        "nothing recorded"
    );

    assert_eq!(
        invalid(lab.set_qc_pattern(&supervisor, instrument, "*").await, "qc_pattern"),
        "that pattern matches every sample: patient results would be taken for QC"
    );
}

#[tokio::test]
async fn a_disabled_instruments_control_run_is_quarantined_like_its_patient_results() {
    let lab = lab().await;
    let (instrument, _, _) = glucose_qc(&lab).await;
    lab.set_qc_pattern(&lab.supervisor().await, instrument, "QC-*").await.unwrap();
    lab.raw_sql(&format!("UPDATE instrument SET active = 0 WHERE id = {instrument}"))
        .await
        .unwrap();

    let (outcome, _) = interop::hl7::receive(
        &lab,
        &control_message("QC5", &[("QC-CHEM-L1-4471", "100")]),
        "test",
        "peer",
    )
    .await
    .unwrap();
    let interop::Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(reason, "instrument Chemistry 1 is disabled");
    assert!(lab.store().qc_runs(instrument, "GLU", 5).await.unwrap().is_empty());
}
