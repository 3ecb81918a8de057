//! A lab with years behind it: every work list still shows what waits, however much released
//! history lies before it.

use std::fmt::Write;

use crate::support::*;

/// Released potassium results, more than any list ever fetched at once, all older than
/// anything waiting: `n` tests on one old specimen of `patient`.
async fn grow_released_history(lab: &TestLab, n: usize) {
    let patient = lab.adult_man().await;
    let placed = lab.received(&patient, &["K"]).await;
    let technician = lab.technician().await;
    lab.enter(&technician, &patient, "K", "4.0").await.unwrap();
    assert_released(&lab.verify(&technician, &patient, "K").await);
    let specimen = lab.specimen(&placed.specimens[0].accession).await;
    let (order, specimen) = (specimen.order_id, specimen.id);
    let mut sql = String::new();
    write!(
        sql,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) \
         INSERT INTO ordered_test (order_id, specimen_id, test_code, discipline, status, updated_at, row_version) \
         SELECT {order}, {specimen}, 'K', 'chemistry', 'final', 0, 3 FROM n;"
    )
    .unwrap();
    write!(
        sql,
        "INSERT INTO result (ordered_test_id, version, value_text, value_number, report_text, unit, flags, \
           reference_interval, review, reasons, definition_version, entered_at, entered_by, entered_by_role, \
           released_at, released_by, release_status) \
         SELECT t.id, 1, '4.0', 4.0, '4.0', 'mmol/L', '', '3.5–5.1', 'routine', '[]', 1, 0, 'technician', \
           'technician', 0, 'technician', 'final' \
         FROM ordered_test t WHERE t.specimen_id = {specimen} AND t.status = 'final' \
           AND NOT EXISTS (SELECT 1 FROM result x WHERE x.ordered_test_id = t.id);"
    )
    .unwrap();
    lab.raw_sql(&sql).await.expect("history written");
}

#[tokio::test]
async fn the_review_queue_shows_what_waits_behind_six_thousand_released_results() {
    let lab = lab().await;
    grow_released_history(&lab, 6_000).await;
    lab.clock.advance(minutes(60));
    let technician = lab.technician().await;
    let technologist = lab.technologist().await;
    let mut waiting = Vec::new();
    for n in 0..3 {
        let patient = lab.register(&format!("W{n}"), "Waiting", "1980-01-01", "F").await;
        lab.received(&patient, &["K", "NA"]).await;
        lab.enter(&technician, &patient, "K", "5.9").await.unwrap();
        waiting.push(lab.test(&patient, "K").await.test.id);
    }

    let queue = lab.review_queue(&technologist).await.unwrap();
    let shown: Vec<i64> = queue.iter().map(|i| i.test.id).collect();
    assert_eq!(shown, waiting, "the queue lists exactly the waiting results, oldest first");

    // A correction of a released result waits too, and leaves once released.
    let patient = lab.adult_woman().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "4.1").await.unwrap();
    assert_released(&lab.verify(&technician, &patient, "K").await);
    let item = lab.test(&patient, "K").await;
    let correction = cuvette_app::Correction {
        reason: "wrong specimen tube read".into(),
        signature: PASSWORD.into(),
    };
    let entry = cuvette_app::EnteredResult {
        ordered_test_id: item.test.id,
        row_version: item.test.row_version,
        text: "4.4".into(),
    };
    lab.enter_results(&technologist, &[entry], Some(&correction)).await.unwrap();
    let queue = lab.review_queue(&technologist).await.unwrap();
    assert!(queue.iter().any(|i| i.test.id == item.test.id), "the correction waits");
    assert_released(&lab.verify(&technologist, &patient, "K").await);
    let queue = lab.review_queue(&technologist).await.unwrap();
    assert_eq!(queue.iter().map(|i| i.test.id).collect::<Vec<_>>(), waiting);
}

#[tokio::test]
async fn the_bench_worklist_shows_what_waits_behind_six_thousand_released_results() {
    let lab = lab().await;
    grow_released_history(&lab, 6_000).await;
    let technician = lab.technician().await;
    let patient = lab.adult_woman().await;
    lab.received(&patient, &["K"]).await;
    let k = lab.test(&patient, "K").await.test.id;
    let worklist = lab.worklist(&technician, Some("chemistry")).await.unwrap();
    assert_eq!(worklist.iter().map(|i| i.test.id).collect::<Vec<_>>(), vec![k]);
}

#[tokio::test]
async fn every_open_work_list_is_read_through_an_index_not_a_scan_of_history() {
    let lab = lab().await;
    grow_released_history(&lab, 2_000).await;
    let plans = lab.store().open_work_plans().await.unwrap();
    assert_eq!(plans.len(), 4);
    for (list, plan) in &plans {
        assert!(!plan.is_empty(), "{list}: no plan");
        if lab.on_postgres() {
            continue; // PostgreSQL's plans follow its statistics; SQLite's are fixed rules.
        }
        // "SCAN" over a table is a read of every row; over a partial index of open work it is
        // a read of what waits, which is the point.
        let full_scans: Vec<&String> = plan
            .iter()
            .filter(|line| {
                line.starts_with("SCAN ")
                    && !line.contains("ordered_test_awaiting_verification")
                    && !line.contains("result_critical")
            })
            .collect();
        assert!(full_scans.is_empty(), "{list} scans history: {plan:?}");
    }
    let queue = &plans.iter().find(|(l, _)| *l == "review queue").unwrap().1;
    if !lab.on_postgres() {
        assert!(
            queue.iter().any(|l| l.contains("ordered_test_awaiting_verification")),
            "{queue:?}"
        );
        let critical = &plans.iter().find(|(l, _)| *l == "pending critical calls").unwrap().1;
        assert!(critical.iter().any(|l| l.contains("result_critical")), "{critical:?}");
    }
}
