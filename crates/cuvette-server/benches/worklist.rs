//! The bench worklist with 1,000 open specimens: querying it from SQLite and rendering it.
//! Baselines in the same run: the same rows serialised to JSON (render baseline), and the
//! store query alone (so the render's share is visible).
//!
//! `cargo bench -p cuvette-server --bench worklist`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use cuvette_app::{
    Actor, EnteredResult, FixedClock, IdentityCheck, Lab, LabConfig, PlaceOrder, RegisterPatient,
};
use cuvette_testkit::TestDb;

const SPECIMENS: usize = 1000;

async fn lab_with_open_specimens() -> (Lab, TestDb) {
    let db = TestDb::create().await;
    let clock = Arc::new(FixedClock::new("2026-11-24T08:00:00Z".parse().unwrap()));
    let lab = Lab::open(
        cuvette_app::Database::open(db.url()).await.unwrap(),
        clock,
        LabConfig::default(),
    )
    .await
    .unwrap();
    let sys = Actor::system();
    for i in 0..SPECIMENS {
        let p = lab
            .register_patient(
                &sys,
                &RegisterPatient {
                    mrn: format!("B{i:06}"),
                    family_name: format!("Benchmark{}", i % 97),
                    given_name: "Row".into(),
                    birth_date: "1970-01-01".into(),
                    sex: if i % 2 == 0 { "F".into() } else { "M".into() },
                },
            )
            .await
            .unwrap();
        let placed = lab
            .place_order(
                &sys,
                &PlaceOrder {
                    patient_id: p.id,
                    provider: "Dr. Bench".into(),
                    priority: if i % 10 == 0 { "stat".into() } else { "routine".into() },
                    tests: vec!["K".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let acc = &placed.specimens[0].accession;
        lab.collect(&sys, acc).await.unwrap();
        lab.receive(
            &sys,
            acc,
            &IdentityCheck {
                mrn: Some(p.mrn.clone()),
                birth_date: Some(p.birth_date.clone()),
                family_name: None,
            },
        )
        .await
        .unwrap();
        if i % 3 == 0 {
            let t = lab.specimen_view(&sys, acc).await.unwrap().tests[0].item.test.clone();
            lab.enter_results(
                &sys,
                &[EnteredResult {
                    ordered_test_id: t.id,
                    row_version: t.row_version,
                    text: "4.4".into(),
                }],
                None,
            )
            .await
            .unwrap();
        }
    }
    (lab, db)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (lab, _db) = rt.block_on(lab_with_open_specimens());
    let sys = Actor::system();
    let items = rt.block_on(lab.worklist(&sys, Some("chemistry"))).unwrap();
    assert_eq!(items.len(), SPECIMENS);
    let mut group = c.benchmark_group("worklist_1000");
    group.sample_size(20);
    group.bench_function("baseline_json_of_rows", |b| {
        b.iter(|| black_box(serde_json::to_string(black_box(&items)).unwrap()))
    });
    group.bench_function("render_html", |b| {
        b.iter(|| black_box(cuvette_server::render_worklist_for_bench(&lab, black_box(&items))))
    });
    group.bench_function("query", |b| {
        b.iter(|| black_box(rt.block_on(lab.worklist(&sys, Some("chemistry"))).unwrap()))
    });
    group.bench_function("query_and_render", |b| {
        b.iter(|| {
            let items = rt.block_on(lab.worklist(&sys, Some("chemistry"))).unwrap();
            black_box(cuvette_server::render_worklist_for_bench(&lab, &items))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
