//! The audit trail: every change and every view of results is on record, in a hash chain
//! that names the first event someone altered.

use cuvette_app::records::{AUDIT_PAGE_LEN, AuditFilter, AuditVerification};

use crate::support::*;

/// A patient with a released potassium; returns the accession number.
async fn a_day_at_the_bench(lab: &TestLab) -> (cuvette_app::records::PatientRow, String) {
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    assert_released(&lab.verify(&technician, &patient, "K").await);
    (patient, accession)
}

/// The SQL that lets a test do what no use case may: lift the append-only guard.
fn lift_guard(lab: &TestLab, on: &str) -> String {
    if lab.on_postgres() {
        "DROP TRIGGER audit_event_no_change ON audit_event".into()
    } else {
        format!("DROP TRIGGER audit_event_no_{on}")
    }
}

async fn seq_of(lab: &TestLab, action: &str) -> i64 {
    let trail = lab.audit_trail(AuditFilter::default()).await;
    trail
        .iter()
        .find(|e| e.action.code() == action)
        .unwrap_or_else(|| panic!("no {action} event"))
        .seq
}

#[tokio::test]
async fn every_change_is_on_record_with_who_made_it() {
    let lab = lab().await;
    let (patient, accession) = a_day_at_the_bench(&lab).await;

    let trail =
        lab.audit_trail(AuditFilter { patient_id: Some(patient.id), ..Default::default() }).await;
    let who_did_what: Vec<(&str, &str)> =
        trail.iter().map(|e| (e.action.code(), e.actor.as_str())).collect();
    assert_eq!(
        who_did_what,
        [
            ("patient.register", "phlebotomist"),
            ("order.place", "phlebotomist"),
            ("specimen.collect", "phlebotomist"),
            ("specimen.receive", "lab_assistant"),
            ("result.enter", "technician"),
            ("result.release", "technician"),
        ]
    );
    assert!(trail.iter().all(|e| e.at == lab.now_at()));

    let collect = &trail[2];
    assert_eq!(
        (collect.entity.as_str(), collect.entity_id.as_str()),
        ("specimen", accession.as_str())
    );
    let before: serde_json::Value =
        serde_json::from_str(collect.before.as_deref().unwrap()).unwrap();
    let after: serde_json::Value = serde_json::from_str(collect.after.as_deref().unwrap()).unwrap();
    assert_eq!(
        (before["status"].as_str(), after["status"].as_str()),
        (Some("pending"), Some("collected"))
    );
    let entered: serde_json::Value =
        serde_json::from_str(trail[4].after.as_deref().unwrap()).unwrap();
    assert_eq!(
        (entered["value"].as_str(), entered["definition_version"].as_i64()),
        (Some("4.2"), Some(1))
    );
    assert_eq!(trail[4].entity_id, format!("{accession}/K"));

    let on_the_tube = lab
        .audit_trail(AuditFilter {
            entity: Some(("specimen".into(), accession.clone())),
            ..Default::default()
        })
        .await;
    let actions: Vec<&str> = on_the_tube.iter().map(|e| e.action.code()).collect();
    assert_eq!(actions, ["specimen.collect", "specimen.receive"]);
}

#[tokio::test]
async fn every_view_of_a_patients_results_is_audited() {
    let lab = lab().await;
    let (patient, accession) = a_day_at_the_bench(&lab).await;
    let technologist = lab.technologist().await;
    let pathologist = lab.pathologist().await;
    let assistant = lab.lab_assistant().await;
    let phlebotomist = lab.phlebotomist().await;

    lab.specimen_view(&technologist, &accession).await.unwrap();
    lab.cumulative_report(&pathologist, patient.id).await.unwrap();
    lab.specimen_view(&assistant, &accession).await.unwrap();
    lab.specimen_view(&phlebotomist, &accession).await.unwrap(); // sees no results

    let views: Vec<(String, String, String)> = lab
        .audit_trail(AuditFilter { patient_id: Some(patient.id), ..Default::default() })
        .await
        .into_iter()
        .filter(|e| e.action.code().contains("view"))
        .map(|e| (e.action.code().to_owned(), e.actor, e.entity_id))
        .collect();
    let expected = [
        ("specimen.view", "technologist", accession.as_str()),
        ("patient.view_results", "pathologist", &patient.id.to_string()),
        ("specimen.view", "lab_assistant", accession.as_str()),
    ];
    assert_eq!(views, expected.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned())));
}

#[tokio::test]
async fn the_audit_chain_verifies_and_names_the_first_altered_event() {
    let lab = lab().await;
    a_day_at_the_bench(&lab).await;
    let events = lab.audit_count().await;
    assert!(events >= 10, "seeding, staff and the day's work: {events}");
    let entered = seq_of(&lab, "result.enter").await;
    let released = seq_of(&lab, "result.release").await;

    lab.raw_sql(&lift_guard(&lab, "update")).await.unwrap();
    let sql = format!(
        "UPDATE audit_event SET after_state = REPLACE(after_state, '4.2', '4.8') WHERE seq = {entered}; \
         UPDATE audit_event SET actor = 'mallory' WHERE seq = {released}"
    );
    assert_eq!(lab.raw_sql(&sql).await.unwrap(), 2);

    match lab.store().verify_audit().await.unwrap() {
        AuditVerification::Broken { seq, reason } => {
            assert_eq!(seq, entered, "the first altered event is named");
            assert!(reason.contains("altered"), "{reason}");
        }
        intact => panic!("an altered chain verified: {intact:?}"),
    }
}

#[tokio::test]
async fn a_removed_event_is_named_as_missing() {
    let lab = lab().await;
    a_day_at_the_bench(&lab).await;
    let received = seq_of(&lab, "specimen.receive").await;

    lab.raw_sql(&lift_guard(&lab, "delete")).await.unwrap();
    lab.raw_sql(&format!("DELETE FROM audit_event WHERE seq = {received}")).await.unwrap();

    match lab.store().verify_audit().await.unwrap() {
        AuditVerification::Broken { seq, reason } => {
            assert_eq!((seq, reason.contains("missing")), (received, true), "{reason}")
        }
        intact => panic!("a chain with a hole verified: {intact:?}"),
    }
}

#[tokio::test]
async fn a_removed_newest_event_is_noticed_by_the_chain_head() {
    let lab = lab().await;
    a_day_at_the_bench(&lab).await;
    let last = lab.audit_count().await;

    lab.raw_sql(&lift_guard(&lab, "delete")).await.unwrap();
    lab.raw_sql(&format!("DELETE FROM audit_event WHERE seq = {last}")).await.unwrap();

    match lab.store().verify_audit().await.unwrap() {
        AuditVerification::Broken { seq, reason } => {
            assert_eq!((seq, reason.contains("head")), (last, true), "{reason}")
        }
        intact => panic!("a truncated chain verified: {intact:?}"),
    }
}

#[tokio::test]
async fn the_audit_log_refuses_to_be_rewritten() {
    let lab = lab().await;
    a_day_at_the_bench(&lab).await;
    let events = lab.audit_count().await;

    assert!(
        lab.raw_sql("UPDATE audit_event SET actor = 'mallory' WHERE seq = 2").await.is_err(),
        "update refused"
    );
    assert!(lab.raw_sql("DELETE FROM audit_event WHERE seq = 2").await.is_err(), "delete refused");
    assert!(lab.raw_sql("DELETE FROM audit_event").await.is_err(), "truncation refused");
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn the_chain_continues_across_a_restart() {
    let lab = lab().await;
    let (patient, _) = a_day_at_the_bench(&lab).await;
    let events = lab.audit_count().await;

    let restarted = lab.reopen().await;
    let technician = lab.technician().await;
    restarted.cumulative_report(&technician, patient.id).await.unwrap();

    assert_eq!(lab.audit_count().await, events + 1, "one view, chained to what came before");
}

#[tokio::test]
async fn the_audit_log_is_read_a_page_at_a_time_newest_first() {
    let lab = lab().await;
    let (patient, _) = a_day_at_the_bench(&lab).await;
    let pathologist = lab.pathologist().await;
    for _ in 0..AUDIT_PAGE_LEN {
        lab.cumulative_report(&pathologist, patient.id).await.unwrap();
    }
    let total = lab.audit_count().await;

    let first = lab.audit_events(&pathologist, &AuditFilter::default()).await.unwrap();
    assert_eq!(first.len() as i64, AUDIT_PAGE_LEN);
    assert_eq!(first[0].seq, total, "newest first");
    let oldest_shown = first.last().unwrap().seq;
    let second = lab
        .audit_events(
            &pathologist,
            &AuditFilter { before_seq: Some(oldest_shown), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(second.len() as i64, total - AUDIT_PAGE_LEN);
    assert_eq!(second.last().unwrap().seq, 1);
    assert!(second.iter().all(|e| e.seq < oldest_shown));
}

#[tokio::test]
async fn worklists_and_the_review_queue_record_whose_results_were_shown() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    lab.received(&patient, &["K"]).await;
    let technician = lab.technician().await;
    lab.enter(&technician, &patient, "K", "4.4").await.unwrap();

    lab.worklist(&technician, Some("chemistry")).await.unwrap();
    lab.review_queue(&technician).await.unwrap();

    let lists: Vec<(String, String)> = lab
        .audit_trail(AuditFilter { patient_id: Some(patient.id), ..Default::default() })
        .await
        .into_iter()
        .filter(|e| e.action.code() == "results.view_list")
        .map(|e| (e.entity, e.actor))
        .collect();
    let expected = [("worklist", "technician"), ("review_queue", "technician")];
    assert_eq!(lists, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
}
