//! Children and neonates through the running lab: at every age where the shipped catalog's
//! partitions change, a patient a day short of it and one who has just reached it get the
//! interval and the critical limits the catalog file gives for their age and sex.
//!
//! What is expected is read from `catalog/tests.toml` by this file itself (a TOML reading and a
//! calendar count of its own, not the catalog code under test), and judged with the lab's
//! plain rules: LL below the critical low, L below the interval, HH and H above, `<`/`>`
//! outside the measurement range, every limit strict.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{Method, StatusCode};
use cuvette_app::{IdentityCheck, PlaceOrder, RegisterPatient};
use cuvette_domain::Role;
use jiff::ToSpan;
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::support::{App, Session, app};

/// The tests whose partitions for children and neonates this file walks.
const TESTS: &[&str] = &[
    "NA", "K", "CL", "CO2", "BUN", "GLU", "CREAT", "CA", "PHOS", "MG", "ALP", "ALT", "AST", "TBIL",
    "ALB", "TP", "HGB", "HCT", "PLT", "WBC", "PHA", "PCO2A", "PO2A",
];

/// The day every specimen here is collected (the test clock's date).
fn collected_on() -> Date {
    Date::constant(2026, 11, 24)
}

/// An age bound as the catalog writes it ("P15D", "P1Y", "P2M"), as a span.
fn age(text: &str) -> jiff::Span {
    let body = text.strip_prefix('P').unwrap_or_else(|| panic!("{text}: not a duration"));
    let (n, unit) = body.split_at(body.len() - 1);
    let n: i64 = n.parse().unwrap_or_else(|_| panic!("{text}: one number and one unit"));
    match unit {
        "Y" => n.years(),
        "M" => n.months(),
        "W" => (n * 7).days(),
        "D" => n.days(),
        _ => panic!("{text}: years, months, weeks or days"),
    }
}

/// One row of `reference` or `critical_by_age`, as the file says it.
#[derive(Debug, Clone)]
struct Row {
    sex: String,
    min: Option<String>,
    max: Option<String>,
    low: Option<Decimal>,
    high: Option<Decimal>,
}

impl Row {
    /// Whether it applies to a patient of `sex` born on `birth`, on the collection day:
    /// reached `min` and not yet `max`, counted on the calendar from the date of birth.
    fn applies(&self, sex: &str, birth: Date) -> bool {
        let reached = |a: &str| birth.checked_add(age(a)).unwrap() <= collected_on();
        (self.sex == "*" || self.sex == sex)
            && self.min.as_deref().is_none_or(reached)
            && !self.max.as_deref().is_some_and(reached)
    }
}

/// What the catalog file says of one test.
#[derive(Debug)]
struct Expected {
    decimals_note: String,
    reference: Vec<Row>,
    critical_by_age: Vec<Row>,
    critical: (Option<Decimal>, Option<Decimal>),
    amr: (Option<Decimal>, Option<Decimal>),
}

fn number(v: Option<&toml::Value>) -> Option<Decimal> {
    match v? {
        toml::Value::Integer(i) => Some(Decimal::from(*i)),
        toml::Value::Float(f) => Some(f.to_string().parse().unwrap()),
        other => panic!("{other:?} is not a number"),
    }
}

fn rows(entry: &toml::Table, key: &str) -> Vec<Row> {
    let Some(toml::Value::Array(list)) = entry.get(key) else { return Vec::new() };
    list.iter()
        .map(|r| {
            let r = r.as_table().unwrap();
            let text = |k: &str| r.get(k).and_then(toml::Value::as_str).map(str::to_owned);
            Row {
                sex: text("sex").unwrap_or_else(|| "*".into()),
                min: text("age_min"),
                max: text("age_max"),
                low: number(r.get("low")),
                high: number(r.get("high")),
            }
        })
        .collect()
}

fn catalog_file() -> BTreeMap<String, Expected> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../cuvette-domain/catalog/tests.toml");
    let table: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    table["test"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_table().unwrap())
        .filter(|t| TESTS.contains(&t["code"].as_str().unwrap()))
        .map(|t| {
            let code = t["code"].as_str().unwrap().to_owned();
            let expected = Expected {
                decimals_note: format!("{code} in {}", t["unit"].as_str().unwrap()),
                reference: rows(t, "reference"),
                critical_by_age: rows(t, "critical_by_age"),
                critical: (number(t.get("critical_low")), number(t.get("critical_high"))),
                amr: (number(t.get("amr_low")), number(t.get("amr_high"))),
            };
            (code, expected)
        })
        .collect()
}

/// The row for this patient: one for their sex first, else one for both.
fn row_for<'a>(rows: &'a [Row], sex: &str, birth: Date) -> Option<&'a Row> {
    let applying = || rows.iter().filter(move |r| r.applies(sex, birth));
    applying().find(|r| r.sex != "*").or_else(|| applying().next())
}

impl Expected {
    fn interval(&self, sex: &str, birth: Date) -> Option<&Row> {
        row_for(&self.reference, sex, birth)
    }

    fn critical(&self, sex: &str, birth: Date) -> (Option<Decimal>, Option<Decimal>) {
        match row_for(&self.critical_by_age, sex, birth) {
            Some(r) => (r.low, r.high),
            None => self.critical,
        }
    }

    /// The flags a value earns, in the order the lab lists them.
    fn flags(&self, sex: &str, birth: Date, v: Decimal) -> Vec<&'static str> {
        let (cl, ch) = self.critical(sex, birth);
        let (l, h) = self.interval(sex, birth).map_or((None, None), |r| (r.low, r.high));
        let (al, ah) = self.amr;
        let below = |x: Option<Decimal>| x.is_some_and(|x| v < x);
        let above = |x: Option<Decimal>| x.is_some_and(|x| v > x);
        [
            (below(cl), "LL"),
            (above(ch), "HH"),
            (below(l), "L"),
            (above(h), "H"),
            (below(al), "<"),
            (above(ah), ">"),
        ]
        .into_iter()
        .filter_map(|(on, code)| on.then_some(code))
        .collect()
    }
}

/// Which value a patient's result sits at: on a limit, or one step beyond it (a step in the
/// last decimal the limit is written with), below or above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Probe {
    AtLow,
    BelowLow,
    AtHigh,
    AboveHigh,
}

impl Probe {
    const ALL: [Probe; 4] = [Probe::AtLow, Probe::BelowLow, Probe::AtHigh, Probe::AboveHigh];

    /// The value to enter: at or beyond the critical limit in force, or where the patient has
    /// none on that side, the interval's limit; `None` when neither is set.
    fn value(self, e: &Expected, sex: &str, birth: Date) -> Option<Decimal> {
        let (cl, ch) = e.critical(sex, birth);
        let interval = e.interval(sex, birth);
        let low = cl.or(interval.and_then(|r| r.low));
        let high = ch.or(interval.and_then(|r| r.high));
        let step = |x: Decimal| Decimal::new(1, x.scale());
        match self {
            Probe::AtLow => low,
            Probe::BelowLow => low.map(|x| x - step(x)),
            Probe::AtHigh => high,
            Probe::AboveHigh => high.map(|x| x + step(x)),
        }
    }
}

/// Every birth date that puts a patient collected today on either side of an age where one
/// of `codes`' partitions begins or ends (the day it is reached, and the day before), with
/// the codes that change there; a newborn on the day of birth too.
fn boundaries(file: &BTreeMap<String, Expected>) -> BTreeMap<Date, BTreeSet<String>> {
    let mut out: BTreeMap<Date, BTreeSet<String>> = BTreeMap::new();
    for (code, e) in file {
        for r in e.reference.iter().chain(&e.critical_by_age) {
            for bound in [&r.min, &r.max].into_iter().flatten() {
                let reached_today = collected_on().checked_sub(age(bound)).unwrap();
                out.entry(reached_today).or_default().insert(code.clone());
                if bound != "P0D" {
                    let day_short = reached_today.checked_add(1.day()).unwrap();
                    out.entry(day_short).or_default().insert(code.clone());
                }
            }
        }
    }
    out
}

/// Registers a patient born on `birth`, orders `codes`, collects and receives every tube:
/// the accession numbers.
async fn specimens(
    app: &App,
    bench: &Session,
    n: usize,
    birth: Date,
    sex: &str,
    codes: &[String],
) -> Vec<String> {
    let lab = &app.lab;
    let patient = RegisterPatient {
        mrn: format!("CH{n:05}"),
        family_name: "Partition".into(),
        given_name: format!("Child{n}"),
        birth_date: birth.to_string(),
        sex: sex.into(),
    };
    let patient = lab.register_patient(&bench.actor, &patient).await.unwrap();
    let order = PlaceOrder {
        patient_id: patient.id,
        provider: "Dr. P. Aediatric".into(),
        priority: "routine".into(),
        tests: codes.to_vec(),
        clinical_note: String::new(),
        placer_number: None,
    };
    let placed = lab.place_order(&bench.actor, &order).await.unwrap();
    let check = IdentityCheck {
        mrn: Some(patient.mrn.clone()),
        birth_date: Some(patient.birth_date.clone()),
        family_name: None,
    };
    let mut accessions = Vec::new();
    for s in &placed.specimens {
        lab.collect(&bench.actor, &s.accession).await.unwrap();
        lab.receive(&bench.actor, &s.accession, &check).await.unwrap();
        accessions.push(s.accession.clone());
    }
    accessions
}

/// Enters `values` over HTTP on whichever tubes carry them and reads every result back:
/// test code → (flags, interval as printed).
async fn enter_and_read(
    app: &App,
    bench: &Session,
    accessions: &[String],
    values: &BTreeMap<String, Decimal>,
) -> BTreeMap<String, (Vec<String>, String)> {
    let mut out = BTreeMap::new();
    for acc in accessions {
        let uri = format!("/api/v1/specimens/{acc}");
        let specimen = app.api(bench, Method::GET, &uri, None).await.json();
        let on_tube: Vec<Value> = specimen["tests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| {
                let code = t["test_code"].as_str()?;
                let v = values.get(code)?;
                Some(json!({ "test_code": code, "value": v.to_string() }))
            })
            .collect();
        if on_tube.is_empty() {
            continue;
        }
        let entry = json!({ "results": on_tube });
        let r = app.api(bench, Method::POST, &format!("{uri}/results"), Some(entry)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let specimen = app.api(bench, Method::GET, &uri, None).await.json();
        for t in specimen["tests"].as_array().unwrap() {
            let Some(result) = t["result"].as_object() else { continue };
            let flags = result["flags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect();
            let interval = result["reference_interval"].as_str().unwrap().to_owned();
            out.insert(t["test_code"].as_str().unwrap().to_owned(), (flags, interval));
        }
    }
    out
}

/// The interval as the report prints it, from the file: "3.4–4.7", "≤100", or the sentence
/// saying none applies.
fn printed(e: &Expected, sex: &str, birth: Date) -> String {
    match e.interval(sex, birth) {
        Some(r) => match (r.low, r.high) {
            (Some(l), Some(h)) => format!("{}–{}", l.normalize(), h.normalize()),
            (Some(l), None) => format!("≥{}", l.normalize()),
            (None, Some(h)) => format!("≤{}", h.normalize()),
            (None, None) => String::new(),
        },
        None if e.reference.iter().any(|r| r.sex != "*") => {
            "No reference interval for this sex and age".into()
        }
        None => "No reference interval for this age".into(),
    }
}

#[tokio::test]
async fn at_every_partition_boundary_for_children_a_patient_on_either_side_gets_the_interval_and_critical_limits_of_the_catalog_for_both_sexes()
 {
    let app = app().await;
    let bench = app.sign_in(Role::Technologist, "children").await;
    let file = catalog_file();
    assert_eq!(file.len(), TESTS.len(), "every test walked here is in the catalog file");
    let mut n = 0;
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (birth, codes) in boundaries(&file) {
        let codes: Vec<String> = codes.into_iter().collect();
        for sex in ["F", "M"] {
            for probe in Probe::ALL {
                let values: BTreeMap<String, Decimal> = codes
                    .iter()
                    .filter_map(|c| Some((c.clone(), probe.value(&file[c], sex, birth)?)))
                    .collect();
                n += 1;
                let accessions = specimens(&app, &bench, n, birth, sex, &codes).await;
                let got = enter_and_read(&app, &bench, &accessions, &values).await;
                for (code, v) in &values {
                    let e = &file[code];
                    let want_flags: Vec<String> =
                        e.flags(sex, birth, *v).iter().map(|f| (*f).to_owned()).collect();
                    let want = (want_flags, printed(e, sex, birth));
                    let days = (collected_on() - birth).get_days();
                    let case = format!(
                        "{} born {birth} ({days} days), sex {sex}, {probe:?} {v}",
                        e.decimals_note
                    );
                    match got.get(code) {
                        Some(g) if *g == want => checked += 1,
                        other => wrong.push(format!("{case}: wanted {want:?}, got {other:?}")),
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} wrong:\n{}",
        wrong.len(),
        checked + wrong.len(),
        wrong.join("\n")
    );
    // Two sides of each boundary, two sexes, four values: many hundreds of results.
    assert!(checked > 500, "only {checked} results were checked");
}

#[tokio::test]
async fn a_seventeen_year_olds_sodium_is_held_for_want_of_an_interval_and_called_at_the_childrens_limit()
 {
    let app = app().await;
    let bench = app.sign_in(Role::Technologist, "teen").await;
    let birth = collected_on().checked_sub(17.years()).unwrap();
    let codes = vec!["NA".to_owned()];
    let accessions = specimens(&app, &bench, 1, birth, "M", &codes).await;
    // 157 mmol/L: above the children's critical high of 156 (Kost 1991), below the adult 160.
    let values = BTreeMap::from([("NA".to_owned(), Decimal::from(157))]);
    let got = enter_and_read(&app, &bench, &accessions, &values).await;
    assert_eq!(
        got["NA"],
        (vec!["HH".to_owned()], "No reference interval for this age".to_owned()),
        "flagged critical and shown without an interval"
    );
    let uri = format!("/api/v1/specimens/{}", accessions[0]);
    let specimen = app.api(&bench, Method::GET, &uri, None).await.json();
    let result = &specimen["tests"][0]["result"];
    assert_eq!(result["review"], "technologist", "never autoverified: {result}");
}

#[tokio::test]
async fn a_newborns_potassium_of_seven_is_not_critical_but_a_two_month_olds_is() {
    let app = app().await;
    let bench = app.sign_in(Role::Technologist, "kalium").await;
    let codes = vec!["K".to_owned()];
    let values = BTreeMap::from([("K".to_owned(), Decimal::new(70, 1))]);
    let newborn = collected_on().checked_sub(3.days()).unwrap();
    let accessions = specimens(&app, &bench, 1, newborn, "F", &codes).await;
    let got = enter_and_read(&app, &bench, &accessions, &values).await;
    assert_eq!(got["K"], (vec!["H".to_owned()], "3.7–5.9".to_owned()), "newborn: below 7.8");
    let infant = collected_on().checked_sub(2.months()).unwrap();
    let accessions = specimens(&app, &bench, 2, infant, "F", &codes).await;
    let got = enter_and_read(&app, &bench, &accessions, &values).await;
    assert_eq!(
        got["K"],
        (vec!["HH".to_owned(), "H".to_owned()], "4.1–5.3".to_owned()),
        "two months: above the children's 6.4"
    );
}
