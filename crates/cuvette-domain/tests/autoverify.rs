//! Autoverification through the real pipeline: bundled catalog → `ReportedValue::parse` →
//! `evaluate` → `autoverify`. Each case names what it pins (DOMAIN.md §6: every rule branch,
//! boundary values included, tested with expected against actual) and asserts both the
//! release/hold decision and the exact set of failed rules.

use std::collections::BTreeMap;

use cuvette_domain::autoverify::{
    AutoverifyRules, AvRule, Candidate, Decision, QcState, SerumIndices, Verdict, autoverify,
    dry_run,
};
use cuvette_domain::delta::PriorResult;
use cuvette_domain::evaluation::{Evaluation, PatientContext, evaluate};
use cuvette_domain::{Catalog, ReportedValue, Sex, TestDefinition};
use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;

/// When every current specimen in these tests was collected.
fn collected_at() -> Timestamp {
    "2026-11-24T10:00:00Z".parse().unwrap()
}

fn patient(sex: Sex) -> PatientContext {
    PatientContext { sex, birth_date: date(1970, 3, 1), collected_on: date(2026, 11, 24) }
}

type Tweak = fn(&mut AutoverifyRules);

/// One named case: a result, its surroundings, and what the rules must decide.
struct Case {
    name: &'static str,
    test: &'static str,
    value: &'static str,
    sex: Sex,
    tweaks: Vec<Tweak>,
    qc: QcState,
    instrument_flags: Vec<String>,
    indices: SerumIndices,
    /// (prior value, minutes before this collection).
    prior: Option<(&'static str, i64)>,
    comments: Vec<String>,
    release: bool,
    failed: Vec<AvRule>,
    not_applicable: Vec<AvRule>,
    details: Vec<(AvRule, &'static str)>,
}

/// A case on an adult woman, with the test's default rules switched on, acceptable QC and
/// nothing else; it expects release until told otherwise.
fn case(name: &'static str, test: &'static str, value: &'static str) -> Case {
    Case {
        name,
        test,
        value,
        sex: Sex::Female,
        tweaks: vec![|r| r.enabled = true],
        qc: QcState::Acceptable,
        instrument_flags: vec![],
        indices: SerumIndices::default(),
        prior: None,
        comments: vec![],
        release: true,
        failed: vec![],
        not_applicable: vec![],
        details: vec![],
    }
}

impl Case {
    fn rules(mut self, tweak: Tweak) -> Case {
        self.tweaks.push(tweak);
        self
    }
    fn qc(mut self, qc: QcState) -> Case {
        self.qc = qc;
        self
    }
    fn sex(mut self, sex: Sex) -> Case {
        self.sex = sex;
        self
    }
    fn instrument_flags(mut self, flags: &[&str]) -> Case {
        self.instrument_flags = flags.iter().map(|f| (*f).to_owned()).collect();
        self
    }
    fn indices(
        mut self,
        hemolysis: Option<u32>,
        icterus: Option<u32>,
        lipemia: Option<u32>,
    ) -> Case {
        self.indices = SerumIndices { hemolysis, icterus, lipemia };
        self
    }
    fn prior(mut self, value: &'static str, minutes_before: i64) -> Case {
        self.prior = Some((value, minutes_before));
        self
    }
    fn comments(mut self, comments: &[&str]) -> Case {
        self.comments = comments.iter().map(|c| (*c).to_owned()).collect();
        self
    }
    fn releases(mut self) -> Case {
        self.release = true;
        self.failed = vec![];
        self
    }
    fn holds(mut self, failed: &[AvRule]) -> Case {
        self.release = false;
        self.failed = failed.to_vec();
        self
    }
    fn not_applicable(mut self, rules: &[AvRule]) -> Case {
        self.not_applicable = rules.to_vec();
        self
    }
    fn detail(mut self, rule: AvRule, detail: &'static str) -> Case {
        self.details.push((rule, detail));
        self
    }
}

/// Everything a candidate borrows, owned here.
struct Inputs {
    test: TestDefinition,
    value: ReportedValue,
    evaluation: Evaluation,
    prior: Option<PriorResult>,
}

impl Inputs {
    fn new(
        catalog: &Catalog,
        code: &str,
        value: &str,
        sex: Sex,
        prior: Option<(&str, i64)>,
    ) -> Inputs {
        let test = catalog.test(code).unwrap_or_else(|| panic!("{code} is in the catalog")).clone();
        let value = ReportedValue::parse(value).unwrap();
        let evaluation = evaluate(&test, &value, patient(sex));
        let prior = prior.map(|(v, minutes)| PriorResult {
            value: v.parse().unwrap(),
            at: collected_at() - SignedDuration::from_mins(minutes),
        });
        Inputs { test, value, evaluation, prior }
    }
}

fn run(catalog: &Catalog, case: &Case) -> Decision {
    let inputs = Inputs::new(catalog, case.test, case.value, case.sex, case.prior);
    let mut rules = AutoverifyRules::default_for(&inputs.test);
    for tweak in &case.tweaks {
        tweak(&mut rules);
    }
    let candidate = Candidate {
        test: &inputs.test,
        value: &inputs.value,
        evaluation: &inputs.evaluation,
        instrument_flags: &case.instrument_flags,
        qc: &case.qc,
        indices: case.indices,
        prior: inputs.prior.as_ref(),
        at: collected_at(),
        specimen_comments: &case.comments,
    };
    let decision = autoverify(&rules, &candidate);
    assert_eq!(decision.fingerprint, rules.fingerprint(), "{}", case.name);
    decision
}

fn cases() -> Vec<Case> {
    use AvRule::*;
    let numeric_rules = [MeasurementRange, Critical, Delta, AutoverifyRange];
    vec![
        // The happy path.
        case("normal potassium with no prior is released", "K", "4.2")
            .releases()
            .not_applicable(&[SerumIndices, Delta, AutoverifyRange])
            .detail(Delta, "delta K: no prior result"),
        // §6.1 enabled.
        case("a disabled rule set holds everything", "K", "4.2")
            .rules(|r| r.enabled = false)
            .holds(&[Enabled])
            .detail(Enabled, "autoverification not enabled for this test"),
        case("a disabled rule set still records every other failure", "K", "6.5")
            .rules(|r| r.enabled = false)
            .holds(&[Enabled, Critical, ReferenceInterval]),
        // §6.2 QC.
        case("a rejected QC run holds", "K", "4.2")
            .qc(QcState::Rejected { reason: "1-3s on level 2".into() })
            .holds(&[QcAcceptable])
            .detail(QcAcceptable, "QC rejected: 1-3s on level 2"),
        case("missing QC holds when QC is required", "K", "4.2")
            .qc(QcState::NoQc)
            .holds(&[QcAcceptable])
            .detail(QcAcceptable, "no QC in the current interval"),
        case("missing QC is released when QC is not required", "K", "4.2")
            .rules(|r| r.require_qc = false)
            .qc(QcState::NoQc)
            .releases()
            .not_applicable(&[QcAcceptable, SerumIndices, Delta, AutoverifyRange]),
        case("a rejected QC run holds even when QC is not required", "K", "4.2")
            .rules(|r| r.require_qc = false)
            .qc(QcState::Rejected { reason: "2-2s across runs".into() })
            .holds(&[QcAcceptable]),
        case("a 1-2s QC warning is accepted", "K", "4.2")
            .qc(QcState::Warning { rule: "1-2s".into() })
            .releases()
            .detail(QcAcceptable, "QC accepted with a 1-2s warning"),
        // §6.3 instrument flags.
        case("an instrument flag holds", "K", "4.2")
            .instrument_flags(&["R", " "])
            .holds(&[InstrumentFlags])
            .detail(InstrumentFlags, "instrument flags: R"),
        case("instrument flags are recorded but not held when not blocking", "K", "4.2")
            .rules(|r| r.block_instrument_flags = false)
            .instrument_flags(&["R"])
            .releases()
            .detail(InstrumentFlags, "instrument flags not checked (sent: R)"),
        // §6.4 serum indices.
        case("hemolysis above the limit holds", "K", "4.2")
            .rules(|r| r.hemolysis_max = Some(50))
            .indices(Some(120), None, None)
            .holds(&[SerumIndices])
            .detail(SerumIndices, "hemolysis index 120 > limit 50"),
        case("hemolysis exactly at the limit is released", "K", "4.2")
            .rules(|r| r.hemolysis_max = Some(50))
            .indices(Some(50), None, None)
            .releases()
            .detail(SerumIndices, "hemolysis index 50 ≤ limit 50"),
        case("icterus above the limit holds", "CREAT", "0.80")
            .rules(|r| r.icterus_max = Some(20))
            .indices(Some(0), Some(21), Some(0))
            .holds(&[SerumIndices])
            .detail(SerumIndices, "icterus index 21 > limit 20"),
        case("lipemia above the limit holds", "NA", "140")
            .rules(|r| r.lipemia_max = Some(100))
            .indices(None, None, Some(150))
            .holds(&[SerumIndices])
            .detail(SerumIndices, "lipemia index 150 > limit 100"),
        case("an index not measured holds when its limit is set", "K", "4.2")
            .rules(|r| r.hemolysis_max = Some(50))
            .holds(&[SerumIndices])
            .detail(SerumIndices, "hemolysis index not measured (limit 50)"),
        // §6.10 specimen condition.
        case("a clotted specimen holds", "HGB", "13.5")
            .comments(&["CLOT"])
            .holds(&[SpecimenComments])
            .detail(SpecimenComments, "specimen condition CLOT requires review"),
        case("condition codes match without regard to case", "K", "4.2")
            .comments(&[" hem "])
            .holds(&[SpecimenComments]),
        case("a comment that is not a hold code is released", "K", "4.2")
            .comments(&["FASTING"])
            .releases()
            .detail(SpecimenComments, "no holding specimen condition (FASTING)"),
        // §6.5 measurement range (inclusive), with the reference rule off to isolate it.
        case("exactly at the top of the measurement range is released", "ALT", "1000")
            .rules(|r| r.hold_outside_reference = false)
            .releases()
            .detail(MeasurementRange, "1000 U/L within measurement range 5–1000"),
        case("just above the measurement range holds", "ALT", "1001")
            .rules(|r| r.hold_outside_reference = false)
            .holds(&[MeasurementRange])
            .detail(MeasurementRange, "1001 U/L > measurement range high 1000"),
        case("exactly at the bottom of the measurement range is released", "ALT", "5")
            .rules(|r| r.hold_outside_reference = false)
            .releases(),
        case("just below the measurement range holds", "ALT", "4")
            .rules(|r| r.hold_outside_reference = false)
            .holds(&[MeasurementRange])
            .detail(MeasurementRange, "4 U/L < measurement range low 5"),
        case("a censored result holds under the measurement range rule", "TNIHS", "<3")
            .holds(&[MeasurementRange])
            .detail(MeasurementRange, "reported as <3 ng/L: not a measured value (range 3–25000)"),
        case(
            "a censored result below the interval is released without the range rule",
            "TNIHS",
            "<3",
        )
        .rules(|r| r.check_measurement_range = false)
        .releases()
        .detail(ReferenceInterval, "<3 ng/L within the reference interval ≤15"),
        // §6.6 critical values.
        case("critical high potassium holds", "K", "6.3")
            .holds(&[Critical, ReferenceInterval])
            .detail(Critical, "critical HH: 6.3 mmol/L > 6.2"),
        case("critical low potassium holds", "K", "2.7")
            .holds(&[Critical, ReferenceInterval])
            .detail(Critical, "critical LL: 2.7 mmol/L < 2.8"),
        case("exactly at the critical limit is not critical", "K", "6.2")
            .rules(|r| r.hold_outside_reference = false)
            .releases()
            .detail(Critical, "not critical (critical below 2.8 or above 6.2)"),
        case("a critical value holds even when the reference interval is not checked", "K", "6.3")
            .rules(|r| r.hold_outside_reference = false)
            .holds(&[Critical]),
        case("a critical value with a rejected QC run shows both", "K", "7.1")
            .qc(QcState::Rejected { reason: "1-3s".into() })
            .holds(&[QcAcceptable, Critical, ReferenceInterval]),
        case("a censored value that may be critical holds", "K", "<3.0")
            .rules(|r| r.check_measurement_range = false)
            .holds(&[Critical, ReferenceInterval])
            .detail(Critical, "<3.0 mmol/L may be below the critical limit 2.8"),
        case("a censored value straddling two limits cannot be placed", "GLU", "<80")
            .rules(|r| r.check_measurement_range = false)
            .holds(&[Critical, ReferenceInterval])
            .detail(
                ReferenceInterval,
                "<80 mg/dL cannot be placed in the reference interval 70–99",
            ),
        case("a critical value passes only when the lab turns hold_critical off", "K", "6.3")
            .rules(|r| {
                r.hold_critical = false;
                r.hold_outside_reference = false;
            })
            .releases()
            .not_applicable(&[SerumIndices, Critical, Delta, ReferenceInterval, AutoverifyRange]),
        case("glucose above the measurement range is also critical and high", "GLU", "812")
            .holds(&[MeasurementRange, Critical, ReferenceInterval])
            .detail(MeasurementRange, "812 mg/dL > measurement range high 750"),
        // §6.7 delta check (K: 1.0 mmol/L in 48 h).
        case("a delta beyond the limit holds", "K", "5.0")
            .prior("3.9", 6 * 60)
            .holds(&[Delta])
            .detail(Delta, "delta K +1.1 mmol/L in 6 h, limit 1.0"),
        case("a delta exactly at the limit is released", "K", "4.9")
            .prior("3.9", 6 * 60)
            .releases()
            .detail(Delta, "delta K +1.0 mmol/L in 6 h, within limit 1.0"),
        case("a prior exactly at the edge of the window is compared", "K", "5.0")
            .prior("3.9", 48 * 60)
            .holds(&[Delta])
            .detail(Delta, "delta K +1.1 mmol/L in 2 d, limit 1.0"),
        case("a prior just outside the window is not compared", "K", "5.0")
            .prior("3.9", 48 * 60 + 1)
            .releases()
            .not_applicable(&[SerumIndices, Delta, AutoverifyRange]),
        case("hemolysed potassium with a delta failure shows every reason", "K", "5.0")
            .rules(|r| r.hemolysis_max = Some(50))
            .indices(Some(120), None, None)
            .prior("3.9", 6 * 60)
            .comments(&["HEM"])
            .holds(&[SerumIndices, Delta, SpecimenComments])
            .detail(SerumIndices, "hemolysis index 120 > limit 50")
            .detail(Delta, "delta K +1.1 mmol/L in 6 h, limit 1.0"),
        case("creatinine beyond its percent limit holds", "CREAT", "0.90")
            .prior("0.55", 20 * 60)
            .holds(&[Delta])
            .detail(Delta, "delta CREAT +64% in 20 h, limit 50%"),
        case("a combined creatinine rule releases a small absolute change", "CREAT", "0.90")
            .rules(|r| r.delta.as_mut().unwrap().require_all = true)
            .prior("0.55", 20 * 60)
            .releases(),
        case("hemoglobin falling faster than the rate limit holds", "HGB", "12.0")
            .rules(|r| r.delta.as_mut().unwrap().rate_per_day = Some(Decimal::TWO))
            .prior("14.0", 12 * 60)
            .holds(&[Delta])
            .detail(Delta, "delta HGB \u{2212}4.0 g/dL/day, limit 2.0"),
        // §6.8 autoverification range (inclusive) and reference interval.
        case("above the autoverification range holds", "K", "4.9")
            .rules(|r| r.autoverify_high = Some("4.8".parse().unwrap()))
            .holds(&[AutoverifyRange])
            .detail(AutoverifyRange, "4.9 mmol/L > autoverification high 4.8"),
        case("exactly at the autoverification limit is released", "K", "4.8")
            .rules(|r| r.autoverify_high = Some("4.8".parse().unwrap()))
            .releases()
            .detail(AutoverifyRange, "4.8 mmol/L within autoverification range ≤4.8"),
        case("below the autoverification range holds", "K", "3.6")
            .rules(|r| r.autoverify_low = Some("3.7".parse().unwrap()))
            .holds(&[AutoverifyRange]),
        case("a censored value open towards an autoverification limit holds", "TNIHS", "<3")
            .rules(|r| {
                r.check_measurement_range = false;
                r.autoverify_low = Some(Decimal::ZERO);
            })
            .holds(&[AutoverifyRange])
            .detail(AutoverifyRange, "<3 ng/L may be below autoverification low 0"),
        case("outside the reference interval holds", "K", "5.2")
            .holds(&[ReferenceInterval])
            .detail(ReferenceInterval, "5.2 mmol/L above the reference interval 3.5–5.1"),
        case("outside the reference interval is released when the lab allows it", "K", "5.2")
            .rules(|r| r.hold_outside_reference = false)
            .releases(),
        case("a result no reference interval applies to holds", "CREAT", "0.80")
            .sex(Sex::Unknown)
            .holds(&[ReferenceInterval])
            .detail(
                ReferenceInterval,
                "No reference interval for this sex and age: CREAT is held for a technologist",
            ),
        case(
            "a result no reference interval applies to holds where results outside it release",
            "CREAT",
            "0.80",
        )
        .sex(Sex::Unknown)
        .rules(|r| r.hold_outside_reference = false)
        .holds(&[ReferenceInterval])
        .detail(
            ReferenceInterval,
            "No reference interval for this sex and age: CREAT is held for a technologist",
        ),
        // Coded and text results: the numeric rules do not apply.
        case("a normal urine color is released", "UCOLOR", "yellow")
            .releases()
            .not_applicable(&[SerumIndices, MeasurementRange, Critical, Delta, AutoverifyRange])
            .detail(ReferenceInterval, "normal result Yellow"),
        case("an abnormal urine color holds", "UCOLOR", "Red")
            .holds(&[ReferenceInterval])
            .not_applicable(&[SerumIndices, MeasurementRange, Critical, Delta, AutoverifyRange]),
        case("a urine color not in the list holds", "UCOLOR", "Purple")
            .holds(&[ValidValue])
            .detail(ValidValue, "\"Purple\" is not a valid coded result for UCOLOR"),
        case("text in a numeric field holds and skips the numeric rules", "K", "hemolyzed")
            .rules(|r| r.autoverify_high = Some("5.8".parse().unwrap()))
            .prior("4.0", 60)
            .holds(&[ValidValue])
            .not_applicable(&[
                SerumIndices,
                MeasurementRange,
                Critical,
                Delta,
                ReferenceInterval,
                AutoverifyRange,
            ]),
        case("the numeric rules do not apply to a coded result even when set", "UCOLOR", "Amber")
            .rules(|r| {
                r.autoverify_high = Some(Decimal::TEN);
                r.delta = Some(cuvette_domain::delta::DeltaLimits {
                    absolute: Some(Decimal::ONE),
                    percent: None,
                    rate_per_day: None,
                    window_hours: 48,
                    require_all: false,
                });
            })
            .prior("1", 60)
            .releases()
            .not_applicable(&numeric_rules),
        // Everything at once: nothing short-circuits.
        case("every failure at once is recorded", "K", "7.1")
            .rules(|r| {
                r.enabled = false;
                r.hemolysis_max = Some(50);
                r.autoverify_high = Some("5.8".parse().unwrap());
            })
            .qc(QcState::Rejected { reason: "R-4s".into() })
            .instrument_flags(&["***"])
            .indices(Some(120), None, None)
            .prior("4.0", 60)
            .comments(&["CLOT", "HEM"])
            .holds(&[
                Enabled,
                QcAcceptable,
                InstrumentFlags,
                SerumIndices,
                Critical,
                Delta,
                ReferenceInterval,
                AutoverifyRange,
                SpecimenComments,
            ])
            .detail(SpecimenComments, "specimen condition CLOT, HEM requires review"),
    ]
}

#[test]
fn autoverification_cases() {
    let catalog = Catalog::bundled();
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");

    let mut mismatches = Vec::new();
    for case in &cases {
        let decision = run(&catalog, case);
        let order: Vec<AvRule> = decision.trace.iter().map(|o| o.rule).collect();
        if order != AvRule::ALL {
            mismatches.push(format!("{}: trace order {order:?}", case.name));
        }
        if decision.release != case.release || decision.failed_rules() != case.failed {
            mismatches.push(format!(
                "{}: expected release={} failed={:?}, got release={} failed={:?} ({})",
                case.name,
                case.release,
                case.failed,
                decision.release,
                decision.failed_rules(),
                decision.summary()
            ));
        }
        for rule in &case.not_applicable {
            let outcome = decision.outcome(*rule).unwrap();
            if outcome.verdict != Verdict::NotApplicable {
                mismatches.push(format!(
                    "{}: {rule:?} is {:?}: {}",
                    case.name, outcome.verdict, outcome.detail
                ));
            }
        }
        for (rule, detail) in &case.details {
            let actual = &decision.outcome(*rule).unwrap().detail;
            if actual != detail {
                mismatches.push(format!(
                    "{}: {rule:?} detail {actual:?}, expected {detail:?}",
                    case.name
                ));
            }
        }
        if !decision.release && decision.held_reasons().is_empty() {
            mismatches.push(format!("{}: held without a reason", case.name));
        }
    }
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[test]
fn every_rule_has_a_case_that_fails_it_alone() {
    let catalog = Catalog::bundled();
    let alone: Vec<AvRule> =
        cases().iter().filter(|c| c.failed.len() == 1).map(|c| c.failed[0]).collect();
    for rule in AvRule::ALL {
        assert!(alone.contains(&rule), "no case fails {rule:?} alone");
    }
    // And one case fails every rule but those it cannot (a readable value within range).
    let all = cases().into_iter().find(|c| c.name == "every failure at once is recorded").unwrap();
    assert_eq!(run(&catalog, &all).failed_rules().len(), AvRule::ALL.len() - 2);
}

#[test]
fn the_summary_and_reasons_read_as_one_line() {
    let catalog = Catalog::bundled();
    let held = case("held", "K", "5.0")
        .rules(|r| r.hemolysis_max = Some(50))
        .indices(Some(120), None, None)
        .prior("3.9", 6 * 60);
    let decision = run(&catalog, &held);
    assert_eq!(
        decision.held_reasons(),
        "hemolysis index 120 > limit 50; delta K +1.1 mmol/L in 6 h, limit 1.0"
    );
    assert_eq!(
        decision.summary(),
        "held: hemolysis index 120 > limit 50; delta K +1.1 mmol/L in 6 h, limit 1.0"
    );
    let released = run(&catalog, &case("released", "K", "4.2").prior("4.0", 60));
    assert_eq!(released.held_reasons(), "");
    // Passed: enabled, QC, instrument flags, valid value, range, critical, delta, reference,
    // specimen condition; not applicable: serum indices, autoverification range.
    assert_eq!(released.summary(), "released automatically (9 rules passed, 2 not applicable)");
}

/// Owned inputs for a dry run over a small "historical" batch.
fn history(catalog: &Catalog) -> Vec<(Inputs, QcState, SerumIndices)> {
    let ok = QcState::Acceptable;
    // Every specimen had its hemolysis index measured; the rule set under test has a limit.
    let none = SerumIndices { hemolysis: Some(10), ..SerumIndices::default() };
    vec![
        (Inputs::new(catalog, "K", "4.2", Sex::Female, Some(("4.0", 60))), ok.clone(), none),
        (Inputs::new(catalog, "K", "4.4", Sex::Male, None), ok.clone(), none),
        // Delta alone.
        (Inputs::new(catalog, "K", "5.0", Sex::Female, Some(("3.9", 360))), ok.clone(), none),
        // Hemolysis alone.
        (
            Inputs::new(catalog, "K", "4.1", Sex::Female, None),
            ok.clone(),
            SerumIndices { hemolysis: Some(90), ..none },
        ),
        // Critical and high.
        (Inputs::new(catalog, "K", "6.6", Sex::Female, None), ok.clone(), none),
        // QC rejected alone.
        (
            Inputs::new(catalog, "K", "4.0", Sex::Female, None),
            QcState::Rejected { reason: "1-3s".into() },
            none,
        ),
    ]
}

fn candidates<'a>(
    batch: &'a [(Inputs, QcState, SerumIndices)],
) -> impl Iterator<Item = Candidate<'a>> {
    batch.iter().map(|(inputs, qc, indices)| Candidate {
        test: &inputs.test,
        value: &inputs.value,
        evaluation: &inputs.evaluation,
        instrument_flags: &[],
        qc,
        indices: *indices,
        prior: inputs.prior.as_ref(),
        at: collected_at(),
        specimen_comments: &[],
    })
}

#[test]
fn a_dry_run_counts_what_the_rules_would_do() {
    let catalog = Catalog::bundled();
    let batch = history(&catalog);
    let mut rules = AutoverifyRules::default_for(catalog.test("K").unwrap());
    rules.hemolysis_max = Some(50);
    // Not yet enabled: a dry run is how the lab validates before switching on.
    assert!(!rules.enabled);
    let report = dry_run(&rules, candidates(&batch));
    assert_eq!((report.evaluated, report.would_release, report.would_hold), (6, 2, 4));
    let expected_held = BTreeMap::from([
        (AvRule::QcAcceptable, 1),
        (AvRule::SerumIndices, 1),
        (AvRule::Critical, 1),
        (AvRule::Delta, 1),
        (AvRule::ReferenceInterval, 1),
    ]);
    assert_eq!(report.held_by_rule, expected_held);
    let expected_only =
        BTreeMap::from([(AvRule::QcAcceptable, 1), (AvRule::SerumIndices, 1), (AvRule::Delta, 1)]);
    assert_eq!(report.held_only_by_rule, expected_only);
    assert!(!report.held_by_rule.contains_key(&AvRule::Enabled));
    // The report names the rule set as it would run: enabled.
    let enabled = AutoverifyRules { enabled: true, ..rules.clone() };
    assert_eq!(report.fingerprint, enabled.fingerprint());
    assert_ne!(report.fingerprint, rules.fingerprint());

    // Relaxing the hemolysis limit releases exactly the result it alone held.
    rules.hemolysis_max = Some(100);
    let relaxed = dry_run(&rules, candidates(&batch));
    assert_eq!((relaxed.would_release, relaxed.would_hold), (3, 3));
}

#[test]
fn a_dry_run_over_nothing_is_empty() {
    let catalog = Catalog::bundled();
    let rules = AutoverifyRules::default_for(catalog.test("K").unwrap());
    let report = dry_run(&rules, std::iter::empty());
    assert_eq!((report.evaluated, report.would_release, report.would_hold), (0, 0, 0));
    assert!(report.held_by_rule.is_empty() && report.held_only_by_rule.is_empty());
}
