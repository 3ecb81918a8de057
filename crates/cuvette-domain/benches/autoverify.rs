//! The rules one instrument result goes through before it may leave the lab: the Westgard
//! verdict of the run it belongs to (two levels, 20 earlier results each), its evaluation
//! against the reference interval and critical limits, the delta check against the
//! patient's previous result, and the full autoverification rule set with its trace.
//! Baseline in the same run: the evaluation alone (what every result already cost before).
//!
//! `cargo bench -p cuvette-domain --bench autoverify`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use cuvette_domain::autoverify::{AutoverifyRules, Candidate, QcState, SerumIndices, autoverify};
use cuvette_domain::delta::{DeltaLimits, PriorResult, delta_check};
use cuvette_domain::evaluation::{PatientContext, evaluate};
use cuvette_domain::qc::{ControlResult, RuleSet, evaluate_run};
use cuvette_domain::{Catalog, ReportedValue, Sex};
use jiff::civil::date;
use rust_decimal::Decimal;

fn bench(c: &mut Criterion) {
    let catalog = Catalog::bundled();
    let k = catalog.test("K").expect("K in the catalog").clone();
    let patient = PatientContext {
        sex: Sex::Female,
        birth_date: date(1961, 5, 5),
        collected_on: date(2026, 11, 24),
    };
    let value = ReportedValue::parse("4.6").unwrap();
    let rules = AutoverifyRules {
        enabled: true,
        hemolysis_max: Some(50),
        ..AutoverifyRules::default_for(&k)
    };
    let limits = DeltaLimits::from_definition(&k).expect("K has delta limits");
    let at: jiff::Timestamp = "2026-11-24T08:00:00Z".parse().unwrap();
    let prior =
        PriorResult { value: Decimal::new(41, 1), at: "2026-11-23T20:00:00Z".parse().unwrap() };
    // Twenty earlier runs of two levels, alternating just inside ±1 SD.
    let history: Vec<ControlResult> = (0..40)
        .map(|i| ControlResult {
            id: i,
            run: i / 2,
            level: (i % 2 + 1) as u8,
            z: if i % 3 == 0 { 0.8 } else { -0.6 },
        })
        .collect();
    let run = [
        ControlResult { id: 100, run: 20, level: 1, z: 0.4 },
        ControlResult { id: 101, run: 20, level: 2, z: -0.3 },
    ];
    let westgard = RuleSet::classic();

    let mut group = c.benchmark_group("rules_per_result");
    group.bench_function("baseline_evaluate_only", |b| {
        b.iter(|| black_box(evaluate(black_box(&k), black_box(&value), patient)))
    });
    group.bench_function("westgard_run_verdict", |b| {
        b.iter(|| black_box(evaluate_run(black_box(&history), black_box(&run), &westgard)))
    });
    group.bench_function("evaluate_delta_autoverify", |b| {
        b.iter(|| {
            let evaluation = evaluate(black_box(&k), black_box(&value), patient);
            let delta = delta_check("K", "mmol/L", &limits, Decimal::new(46, 1), at, Some(&prior));
            black_box(&delta);
            let decision = autoverify(
                &rules,
                &Candidate {
                    test: &k,
                    value: &value,
                    evaluation: &evaluation,
                    instrument_flags: &[],
                    qc: &QcState::Acceptable,
                    indices: SerumIndices { hemolysis: Some(12), icterus: None, lipemia: None },
                    prior: Some(&prior),
                    at,
                    specimen_comments: &[],
                },
            );
            black_box(decision)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
