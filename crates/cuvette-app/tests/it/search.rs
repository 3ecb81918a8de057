//! Finding a specimen, a patient or an order: what the search field opens for a scan or a
//! typed text, and the order search by patient, provider, period, status, priority and test,
//! each filter read through its index and every search audited.

use cuvette_app::AppError;
use cuvette_app::records::AuditFilter;
use cuvette_app::search::{Found, ORDER_PAGE_LEN, OrderSearchForm};
use cuvette_domain::audit::AuditAction;
use cuvette_domain::workflow::{Priority, TestStatus};
use cuvette_store::OrderSearchFilter;

use crate::support::*;

#[tokio::test]
async fn a_scanned_accession_opens_its_specimen_an_mrn_its_patient_and_anything_else_searches_names()
 {
    let lab = lab().await;
    let clerk = lab.phlebotomist().await;
    let patient = lab.adult_woman().await;
    let placed = lab.order(&patient, &["K"]).await;
    let printed = placed.specimens[0].accession.clone();
    let scanned: String = printed.chars().filter(|c| *c != '-').collect();

    for text in [printed.as_str(), scanned.as_str(), &format!("  {printed} ")] {
        assert_eq!(
            lab.find(&clerk, text).await.unwrap(),
            Found::Specimen { accession: printed.clone() },
            "{text:?} opens the specimen"
        );
    }
    assert_eq!(
        lab.find(&clerk, &patient.mrn).await.unwrap(),
        Found::Patient { patient_id: patient.id }
    );
    assert_eq!(
        lab.find(&clerk, "lindqvist,sam").await.unwrap(),
        Found::Names { query: "lindqvist,sam".into() }
    );

    // An accession number with a good check digit that is not on file is a wrong label.
    let mut other = printed.clone();
    let seq: String = other.split('-').nth(1).unwrap().to_owned();
    let next = format!("{:07}", seq.parse::<u32>().unwrap() + 500);
    other = other.replace(&seq, &next);
    let body: String = other.chars().filter(char::is_ascii_digit).take(9).collect();
    let valid = (0..10)
        .map(|d| format!("{}-{}-{d}", &body[..2], &body[2..9]))
        .find(|a| cuvette_domain::Accession::parse(a).is_ok())
        .unwrap();
    match lab.find(&clerk, &valid).await {
        Err(AppError::NotFound(m)) => {
            assert!(m.contains("No specimen has accession number"), "{m}")
        }
        other => panic!("{valid} is on no specimen: {other:?}"),
    }
    match lab.find(&clerk, "   ").await {
        Err(AppError::Invalid(f)) => assert_eq!(f[0].field, "q"),
        other => panic!("an empty search is refused: {other:?}"),
    }

    let events = lab
        .audit_trail(AuditFilter { action: Some(AuditAction::Search), ..Default::default() })
        .await;
    assert_eq!(events.len(), 5, "each search is audited: {events:#?}");
    assert!(
        events
            .iter()
            .any(|e| e.entity_id.contains("→ specimen") && e.patient_id == Some(patient.id))
    );
}

#[tokio::test]
async fn the_order_search_finds_by_each_filter_newest_first_and_pages() {
    let lab = lab().await;
    let technologist = lab.technologist().await;
    let ada = lab.register("S-1", "Searchwell", "1960-01-01", "F").await;
    let bo = lab.register("S-2", "Otherly", "1970-01-01", "M").await;
    let routine = lab.order(&ada, &["K"]).await;
    lab.clock.advance(minutes(10));
    let stat = lab.order_stat(&bo, &["NA"]).await;
    lab.collect_and_receive(&stat.specimens[0].accession).await;

    let search = |form: OrderSearchForm| {
        let lab = &lab;
        let technologist = technologist.clone();
        async move {
            let search = form.read(lab).unwrap_or_else(|e| panic!("{e:?}"));
            let page = lab.search_orders(&technologist, &search).await.unwrap();
            page.items.iter().map(|i| i.specimen.accession.clone()).collect::<Vec<_>>()
        }
    };
    let (r, s) = (routine.specimens[0].accession.clone(), stat.specimens[0].accession.clone());
    assert_eq!(
        search(OrderSearchForm::default()).await,
        vec![s.clone(), r.clone()],
        "newest first"
    );
    let by = |f: fn(&mut OrderSearchForm)| {
        let mut form = OrderSearchForm::default();
        f(&mut form);
        form
    };
    assert_eq!(search(by(|f| f.mrn = "S-1".into())).await, vec![r.clone()]);
    assert_eq!(search(by(|f| f.priority = "stat".into())).await, vec![s.clone()]);
    assert_eq!(search(by(|f| f.status = "received".into())).await, vec![s.clone()]);
    assert_eq!(search(by(|f| f.test = "k".into())).await, vec![r.clone()]);
    assert_eq!(search(by(|f| f.provider = PROVIDER.into())).await.len(), 2);
    assert!(search(by(|f| f.provider = "Dr. Nobody".into())).await.is_empty());
    assert!(search(by(|f| f.to = "2020-01-01".into())).await.is_empty(), "before the orders");

    // Each wrong field is named, and nothing is searched.
    let wrong = OrderSearchForm {
        status: "done".into(),
        priority: "urgent".into(),
        test: "NOPE".into(),
        from: "yesterday".into(),
        mrn: "S-1".into(),
        ..Default::default()
    };
    let errors = wrong.read(&lab).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["from", "status", "priority", "test"], "{errors:?}");
    let unknown = OrderSearchForm { mrn: "NOBODY-9".into(), ..Default::default() };
    match lab.search_orders(&technologist, &unknown.read(&lab).unwrap()).await {
        Err(AppError::Invalid(f)) => assert_eq!(f[0].field, "mrn"),
        other => panic!("an MRN on no patient is refused: {other:?}"),
    }

    // Pages of fifty, newest first.
    for _ in 0..ORDER_PAGE_LEN {
        lab.order(&ada, &["CA"]).await;
    }
    let form = OrderSearchForm { mrn: "S-1".into(), ..Default::default() };
    let first = lab.search_orders(&technologist, &form.read(&lab).unwrap()).await.unwrap();
    assert_eq!(first.items.len() as i64, ORDER_PAGE_LEN);
    assert!(first.more);
    let form = OrderSearchForm { page: "2".into(), ..form };
    let second = lab.search_orders(&technologist, &form.read(&lab).unwrap()).await.unwrap();
    assert_eq!(
        second.items.iter().map(|i| i.specimen.accession.clone()).collect::<Vec<_>>(),
        vec![r]
    );
    assert!(!second.more);
    assert!(
        lab.audit_trail(AuditFilter { action: Some(AuditAction::Search), ..Default::default() })
            .await
            .len()
            >= 9,
        "every search is audited"
    );
}

#[tokio::test]
async fn every_filter_of_the_order_search_is_read_through_an_index_not_a_scan_of_history() {
    let lab = lab().await;
    let now = lab.now_at();
    let base = OrderSearchFilter {
        from: now - minutes(60 * 24 * 30),
        to: now,
        patient_id: None,
        provider: None,
        status: None,
        priority: None,
        test_code: None,
        offset: 0,
        limit: ORDER_PAGE_LEN + 1,
    };
    let filters = [
        ("period", "lab_order_ordered_at", base.clone()),
        ("patient", "lab_order_patient", OrderSearchFilter { patient_id: Some(1), ..base.clone() }),
        (
            "provider",
            "lab_order_provider",
            OrderSearchFilter { provider: Some(PROVIDER.into()), ..base.clone() },
        ),
        (
            "status",
            "ordered_test_status",
            OrderSearchFilter { status: Some(TestStatus::Received), ..base.clone() },
        ),
        (
            "priority",
            "lab_order_priority",
            OrderSearchFilter { priority: Some(Priority::Stat), ..base.clone() },
        ),
        (
            "test",
            "ordered_test_code",
            OrderSearchFilter { test_code: Some("K".into()), ..base.clone() },
        ),
        (
            "everything",
            "",
            OrderSearchFilter {
                patient_id: Some(1),
                provider: Some(PROVIDER.into()),
                status: Some(TestStatus::Final),
                priority: Some(Priority::Routine),
                test_code: Some("K".into()),
                offset: 50,
                ..base.clone()
            },
        ),
    ];
    for (name, index, filter) in filters {
        let plan = lab.store().order_search_plan(&filter).await.unwrap();
        assert!(!plan.is_empty(), "{name}: no plan");
        if lab.on_postgres() {
            continue; // PostgreSQL's plans follow its statistics; SQLite's are fixed rules.
        }
        let scans: Vec<&String> = plan.iter().filter(|l| l.starts_with("SCAN ")).collect();
        assert!(scans.is_empty(), "the order search by {name} scans a table: {plan:#?}");
        assert!(plan.iter().any(|l| l.contains(index)), "by {name} through {index}: {plan:#?}");
    }
}
