//! Critical values: each waits on a list with its timer until a call with read-back is
//! documented; past the lab's limit (30 minutes) it is escalated once; the compliance report
//! measures how timely the calls were.

use crate::support::*;

/// A critical potassium (6.9 mmol/L) entered at the bench for `patient`.
async fn critical_potassium(lab: &TestLab, patient: &cuvette_app::records::PatientRow) {
    lab.received(patient, &["K"]).await;
    let tech = lab.technician().await;
    lab.enter(&tech, patient, "K", "6.9").await.unwrap();
}

#[tokio::test]
async fn a_critical_result_waits_with_its_timer_until_called_with_read_back() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    critical_potassium(&lab, &patient).await;
    let mls = lab.technologist().await;
    lab.clock.advance(minutes(12));

    let pending = lab.pending_critical_calls(&mls).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].minutes_waiting, pending[0].overdue), (12, false));
    assert_eq!(pending[0].row.report_text, "6.9");

    lab.call_provider(&mls, &patient, "K", false).await; // nobody answered
    let pending = lab.pending_critical_calls(&mls).await.unwrap();
    assert_eq!(pending[0].row.attempts, 1, "an attempt does not close the loop");

    lab.call_provider(&mls, &patient, "K", true).await;
    assert!(lab.pending_critical_calls(&mls).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_uncalled_critical_result_is_escalated_once_past_the_limit() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    critical_potassium(&lab, &patient).await;
    lab.clock.advance(minutes(29));
    assert_eq!(lab.escalate_overdue_calls().await.unwrap(), 0);
    lab.clock.advance(minutes(2));
    assert_eq!(lab.escalate_overdue_calls().await.unwrap(), 1);
    assert_eq!(lab.escalate_overdue_calls().await.unwrap(), 0, "escalated once");
    let pending = lab.pending_critical_calls(&lab.technologist().await).await.unwrap();
    assert!(pending[0].overdue && pending[0].row.escalated_at.is_some());
    assert!(lab.audit_actions_for(&patient).await.contains(&"critical.escalate".to_owned()));
}

#[tokio::test]
async fn the_compliance_report_counts_calls_within_and_past_the_limit() {
    let lab = lab().await;
    let start = lab.now_at();
    let mls = lab.technologist().await;
    let on_time = lab.adult_woman().await;
    critical_potassium(&lab, &on_time).await;
    lab.clock.advance(minutes(10));
    lab.call_provider(&mls, &on_time, "K", true).await;
    let late = lab.adult_man().await;
    critical_potassium(&lab, &late).await;
    lab.clock.advance(minutes(45));
    lab.call_provider(&mls, &late, "K", true).await;
    let uncalled = lab.register("U3003", "Haddad", "1961-01-01", "M").await;
    critical_potassium(&lab, &uncalled).await;

    let end = lab.now_at() + jiff::SignedDuration::from_micros(1);
    let report = lab.critical_compliance(&mls, start, end).await.unwrap();
    assert_eq!((report.total, report.within_limit, report.late, report.uncalled), (3, 1, 1, 1));
    assert_eq!((report.median_minutes, report.p90_minutes), (Some(10), Some(45)));
    assert_eq!(report.by_test, vec![("K".to_owned(), 3, 1)]);
    assert!((report.percent_within() - 100.0 / 3.0).abs() < 1e-9);
}
