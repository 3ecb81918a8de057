//! Evaluating a 20-analyte panel (CMP + CBC subset) through every rule: interval selection,
//! flags, critical limits, measurement range, and the panel's calculations.
//! Baseline in the same run: reading the 20 reported values only.
//!
//! `cargo bench -p cuvette-domain --bench evaluate`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use cuvette_domain::calculation::calculate;
use cuvette_domain::evaluation::{PatientContext, evaluate};
use cuvette_domain::{Catalog, ReportedValue, Sex};
use jiff::civil::date;

const PANEL: [(&str, &str); 20] = [
    ("NA", "139"),
    ("K", "6.4"),
    ("CL", "101"),
    ("CO2", "24"),
    ("BUN", "18"),
    ("CREAT", "1.10"),
    ("GLU", "812"),
    ("CA", "9.4"),
    ("TP", "7.1"),
    ("ALB", "4.2"),
    ("TBIL", "0.8"),
    ("ALP", "88"),
    ("ALT", "31"),
    ("AST", "29"),
    ("WBC", "7.2"),
    ("HGB", "12.0"),
    ("HCT", "37"),
    ("PLT", "250"),
    ("MCV", "90"),
    ("RBC", "4.5"),
];

fn bench(c: &mut Criterion) {
    let catalog = Catalog::bundled();
    let patient = PatientContext {
        sex: Sex::Female,
        birth_date: date(1961, 5, 5),
        collected_on: date(2026, 11, 24),
    };
    let calcs: Vec<_> = ["AGAP", "EGFR", "GLOB", "AGRATIO"]
        .iter()
        .map(|c| catalog.test(c).unwrap().clone())
        .collect();
    let mut group = c.benchmark_group("panel_of_20");
    group.bench_function("baseline_parse_values", |b| {
        b.iter(|| {
            for (_, text) in PANEL {
                black_box(ReportedValue::parse(black_box(text)).unwrap());
            }
        })
    });
    group.bench_function("evaluate_all_rules", |b| {
        b.iter(|| {
            let mut numbers = BTreeMap::new();
            for (code, text) in PANEL {
                let def = catalog.test(code).unwrap();
                let value = ReportedValue::parse(black_box(text)).unwrap();
                if let Some(n) = value.number {
                    numbers.insert(code.to_owned(), n.value.to_string().parse::<f64>().unwrap());
                }
                black_box(evaluate(def, &value, patient));
            }
            for def in &calcs {
                black_box(calculate(
                    &def.code,
                    def.calculation.as_ref().unwrap(),
                    &numbers,
                    patient.sex,
                    65.0,
                ));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
