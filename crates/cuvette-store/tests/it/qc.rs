//! Control materials, targets, runs with their verdicts and points, corrective actions,
//! Westgard rules, moving averages and autoverification rule sets.

use cuvette_domain::qc::{
    ControlRule, CorrectiveAction, QcStatus, RecordedViolation, RuleSet, RunSource, TargetSource,
    WestgardRule,
};
use cuvette_store::{
    CorrectiveActionRow, MaterialRow, MovingAverageRow, NewMaterial, NewQcRun, Protocol, QcPoint,
    QcRunRow, RuleSetRow, TargetRow,
};

use crate::{AT, Db, at, corrupt_column, same};

/// A level-2 chemistry control on an analyzer with a glucose target; returns (instrument,
/// target, the material as written).
async fn glucose_control(db: &Db) -> (i64, i64, MaterialRow) {
    let mut tx = db.store.begin().await.unwrap();
    let instrument = tx.insert_instrument("Chemistry 1", Protocol::Hl7, "CHEM1", AT).await.unwrap();
    let material = NewMaterial {
        product: "Liquichek Unassayed Chemistry",
        manufacturer: "Bio-Rad",
        lot: "16782",
        level: 2,
        expires_on: "2027-01-31",
        sample_id: "QC-L2",
    };
    let material_id = tx.insert_material(&material, AT).await.unwrap();
    let target = tx
        .upsert_target(
            material_id,
            instrument,
            "GLU",
            250.0,
            7.5,
            TargetSource::Manufacturer,
            "supervisor",
            AT,
        )
        .await
        .unwrap();
    // Replaced by the lab's own statistics; the manufacturer's stay as first given.
    let again = tx
        .upsert_target(
            material_id,
            instrument,
            "GLU",
            248.5,
            5.25,
            TargetSource::Lab,
            "supervisor",
            at(1),
        )
        .await
        .unwrap();
    assert_eq!(again, target);
    tx.commit().await.unwrap();
    let material = MaterialRow {
        id: material_id,
        product: material.product.into(),
        manufacturer: material.manufacturer.into(),
        lot: material.lot.into(),
        level: 2,
        expires_on: material.expires_on.into(),
        sample_id: material.sample_id.into(),
        active: true,
    };
    (instrument, target, material)
}

#[tokio::test]
async fn a_material_and_its_target_read_back_with_the_manufacturers_values_kept() {
    let db = Db::new().await;
    let (instrument, target, material) = glucose_control(&db).await;
    same(&db.store.materials().await.unwrap(), &vec![material.clone()]);
    same(&db.store.material_by_sample_id("QC-L2").await.unwrap(), &Some(material.clone()));
    let written = TargetRow {
        id: target,
        material,
        instrument_id: instrument,
        instrument_name: "Chemistry 1".into(),
        test_code: "GLU".into(),
        mean: 248.5,
        sd: 5.25,
        source: TargetSource::Lab,
        manufacturer_mean: 250.0,
        manufacturer_sd: 7.5,
    };
    same(&db.store.target(target).await.unwrap(), &written);
    same(&db.store.targets(Some(instrument), Some("GLU")).await.unwrap(), &vec![written]);
}

#[tokio::test]
async fn a_judged_run_keeps_its_verdict_violations_points_and_corrective_action() {
    let db = Db::new().await;
    let (instrument, target, _) = glucose_control(&db).await;
    let violations = vec![RecordedViolation {
        rule: ControlRule::Westgard(WestgardRule::OneThreeS),
        detail: "1-3s: level 2 at +3.4 SD".into(),
    }];
    let mut tx = db.store.begin().await.unwrap();
    let run = tx
        .insert_qc_run(&NewQcRun {
            instrument_id: instrument,
            test_code: "GLU",
            at: at(10),
            status: QcStatus::Accepted,
            violations: &[],
            entered_by: "instrument:CHEM1",
            source: RunSource::Instrument,
        })
        .await
        .unwrap();
    let point = tx.insert_qc_result(run, target, 266.35, 248.5, 5.25, 3.4, &[]).await.unwrap();
    tx.judge_qc_run(
        run,
        QcStatus::Rejected,
        &violations,
        &[(point, vec![WestgardRule::OneThreeS])],
    )
    .await
    .unwrap();
    let action = tx
        .insert_corrective_action(
            instrument,
            "GLU",
            CorrectiveAction::Recalibrated,
            "new calibrator lot",
            "technologist",
            at(20),
        )
        .await
        .unwrap();
    tx.set_qc_rules("GLU", &RuleSet::classic(), "supervisor", AT).await.unwrap();
    tx.commit().await.unwrap();

    same(
        &db.store.qc_runs(instrument, "GLU", 10).await.unwrap(),
        &vec![QcRunRow {
            id: run,
            instrument_id: instrument,
            test_code: "GLU".into(),
            at: at(10),
            status: QcStatus::Rejected,
            violations,
            entered_by: "instrument:CHEM1".into(),
            source: RunSource::Instrument,
        }],
    );
    same(
        &db.store.qc_points(instrument, "GLU", AT).await.unwrap(),
        &vec![QcPoint {
            id: point,
            run_id: run,
            at: at(10),
            entered_by: "instrument:CHEM1".into(),
            target_id: target,
            level: 2,
            lot: "16782".into(),
            value: 266.35,
            mean: 248.5,
            sd: 5.25,
            z: 3.4,
            rules: vec![WestgardRule::OneThreeS],
            run_status: QcStatus::Rejected,
        }],
    );
    same(
        &db.store.corrective_actions(instrument, "GLU").await.unwrap(),
        &vec![CorrectiveActionRow {
            id: action,
            instrument_id: instrument,
            test_code: "GLU".into(),
            at: at(20),
            by_user: "technologist".into(),
            action: CorrectiveAction::Recalibrated,
            note: "new calibrator lot".into(),
        }],
    );
    assert_eq!(db.store.qc_rules("GLU").await.unwrap(), Some(RuleSet::classic()));
}

#[tokio::test]
async fn a_moving_average_and_an_autoverification_rule_set_read_back_as_written() {
    let db = Db::new().await;
    let (instrument, _, _) = glucose_control(&db).await;
    let average = MovingAverageRow {
        instrument_id: instrument,
        test_code: "NA".into(),
        window_size: 20,
        truncate_low: Some(120.0),
        truncate_high: None,
        target: 140.0,
        lower_limit: 138.5,
        upper_limit: 141.5,
    };
    let mut tx = db.store.begin().await.unwrap();
    tx.set_moving_average_rule(&average, "supervisor", AT).await.unwrap();
    tx.set_autoverify_rules("K", r#"{"rules":["range","delta"]}"#, "f1e2", "director", AT)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    same(&db.store.moving_average_rules(Some(instrument)).await.unwrap(), &vec![average]);
    same(
        &db.store.autoverify_rule_sets().await.unwrap(),
        &vec![RuleSetRow {
            test_code: "K".into(),
            rules: r#"{"rules":["range","delta"]}"#.into(),
            fingerprint: "f1e2".into(),
            updated_at: AT,
            updated_by: "director".into(),
        }],
    );
}

#[tokio::test]
async fn an_unknown_qc_code_is_corrupt_data_naming_its_column() {
    for (table, column, sql) in [
        ("qc_target", "source", "UPDATE qc_target SET source = 'vendor'"),
        ("qc_run", "status", "UPDATE qc_run SET status = 'ok'"),
        ("qc_run", "violations", "UPDATE qc_run SET violations = '1-3s'"),
        ("qc_run", "source", "UPDATE qc_run SET source = 'robot'"),
        ("qc_result", "rules", "UPDATE qc_result SET rules = '1-9s'"),
        ("qc_corrective_action", "action", "UPDATE qc_corrective_action SET action = 'prayed'"),
    ] {
        let db = Db::new().await;
        let (instrument, target, _) = glucose_control(&db).await;
        let mut tx = db.store.begin().await.unwrap();
        let run = tx
            .insert_qc_run(&NewQcRun {
                instrument_id: instrument,
                test_code: "GLU",
                at: at(10),
                status: QcStatus::Accepted,
                violations: &[],
                entered_by: "technician",
                source: RunSource::Manual,
            })
            .await
            .unwrap();
        tx.insert_qc_result(run, target, 250.0, 248.5, 5.25, 0.3, &[]).await.unwrap();
        tx.insert_corrective_action(
            instrument,
            "GLU",
            CorrectiveAction::Rerun,
            "",
            "technician",
            AT,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        db.damage(sql).await;
        let read = match table {
            "qc_target" => db.store.target(target).await.map(drop),
            "qc_run" => db.store.qc_runs(instrument, "GLU", 10).await.map(drop),
            "qc_result" => db.store.qc_points(instrument, "GLU", AT).await.map(drop),
            _ => db.store.corrective_actions(instrument, "GLU").await.map(drop),
        };
        let (t, c, _) = corrupt_column(read);
        assert_eq!((t, c), (table, column), "{sql}");
    }
}
