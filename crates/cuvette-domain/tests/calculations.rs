//! Every calculation in the bundled catalog checked against a second, plain implementation.
//!
//! The reference below shares no code with `cuvette_domain::calculation`: each formula is
//! written out by hand in Rust from its published source (as cited in `calculations.toml`),
//! input texts are read by looking at their first characters, the measurement range is
//! compared as plain floating-point numbers, and the report is rounded half away from zero by
//! carrying digits through the decimal text. Only data comes from the catalog: test names and
//! measurement ranges (for the words of the comment), the `invalid_comment` texts, and the
//! lab's ISI and mean normal PT.
//!
//! The two are compared over more than ten thousand random cases from a seeded generator:
//! inputs inside the measurement range, exactly on its ends, just and far beyond it as plain
//! numbers, censored as typed ("<0.15", ">=700"), missing, and words where a number belongs;
//! patients of every age from newborn to 100, of either or unknown sex; and a new ISI and mean
//! normal PT for every INR, as at a reagent lot change.

use std::collections::{BTreeMap, BTreeSet};

use cuvette_domain::calculation::{
    Calculated, CalculationInput, calculate_reported, calculation_input, round_reported,
};
use cuvette_domain::{Catalog, ReportedValue, Sex, TestDefinition};
use rust_decimal::Decimal;

/// How many random cases are compared.
const CASES: usize = 12_000;

/// What the report says for a calculation, as both implementations can state it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Report {
    /// The number as printed.
    Number(String),
    /// "Not calculated: …".
    Comment(String),
    /// Nothing yet: these inputs have no number (compared as a set).
    Waiting(BTreeSet<String>),
}

// ---------------------------------------------------------------------------------------------
// The reference
// ---------------------------------------------------------------------------------------------

/// One input as the reference reads the typed text.
enum Read {
    Number(f64),
    /// The reason the lab would not report it as a number.
    Beyond(String),
    Missing,
}

fn read(test: &TestDefinition, text: Option<&str>) -> Read {
    let Some(text) = text else { return Read::Missing };
    let comment = |direction: &str, shown: &str| {
        Read::Beyond(format!("{} {direction} the measurement range ({shown})", test.name))
    };
    let (sign, number) = match text.as_bytes().first() {
        Some(b'<') => ("<", text.trim_start_matches(['<', '='])),
        Some(b'>') => (">", text.trim_start_matches(['>', '='])),
        _ => ("", text),
    };
    let Ok(value) = number.parse::<f64>() else { return Read::Missing };
    match sign {
        "<" => return comment("below", text),
        ">" => return comment("above", text),
        _ => {}
    }
    let limit = |d: Option<Decimal>| d.map(|d| d.to_string().parse::<f64>().unwrap());
    if let Some(high) = test.amr_high.filter(|h| value > limit(Some(*h)).unwrap()) {
        return comment("above", &format!(">{high}"));
    }
    if let Some(low) = test.amr_low.filter(|l| value < limit(Some(*l)).unwrap()) {
        return comment("below", &format!("<{low}"));
    }
    Read::Number(value)
}

/// The unrounded value of `code`, or the comment, or what it waits for.
enum Outcome {
    Value(f64),
    Comment(String),
    Waiting(BTreeSet<String>),
}

struct Patient {
    sex: Sex,
    age: f64,
    /// Typed text of each measured input present.
    typed: BTreeMap<String, String>,
    /// The lab's ISI and mean normal PT.
    isi: f64,
    mnpt: f64,
}

fn reference(catalog: &Catalog, code: &str, patient: &Patient) -> Outcome {
    let inputs: &[&str] = match code {
        "AGAP" => &["NA", "CL", "CO2"],
        "AGAPK" => &["NA", "K", "CL", "CO2"],
        "EGFR" => &["CREAT"],
        "LDLF" | "LDLS" => &["CHOL", "HDL", "TRIG"],
        "NONHDL" | "CHOLHDL" => &["CHOL", "HDL"],
        "CACORR" => &["CA", "ALB"],
        "GLOB" | "AGRATIO" => &["TP", "ALB"],
        "BUNCR" => &["BUN", "CREAT"],
        "MCV_CALC" => &["HCT", "RBC"],
        "MCH_CALC" => &["HGB", "RBC"],
        "MCHC_CALC" => &["HGB", "HCT"],
        "ANC" => &["WBC", "NEUT_SEG_PCT", "NEUT_BAND_PCT"],
        "OSMCALC" => &["NA", "GLU", "BUN"],
        "OSMGAP" => &["OSMCALC", "OSMO"],
        "INR_CALC" => &["PT"],
        "TSAT" => &["FE", "TIBC"],
        other => panic!("the reference does not know {other}"),
    };
    // Each input in code order: its number, or why there is none.
    let mut sorted = inputs.to_vec();
    sorted.sort();
    let mut values: BTreeMap<&str, f64> = BTreeMap::new();
    let mut reasons: Vec<String> = Vec::new();
    let mut missing = BTreeSet::new();
    for input in sorted {
        let outcome = if input == "OSMCALC" {
            match reference(catalog, "OSMCALC", patient) {
                Outcome::Value(v) => Read::Number(v),
                Outcome::Comment(why) => Read::Beyond(why),
                Outcome::Waiting(_) => Read::Missing,
            }
        } else {
            let test = catalog.test(input).expect("an input in the catalog");
            read(test, patient.typed.get(input).map(String::as_str))
        };
        match outcome {
            Read::Number(v) => {
                values.insert(input, v);
            }
            Read::Beyond(why) if !reasons.contains(&why) => reasons.push(why),
            Read::Beyond(_) => {}
            Read::Missing => {
                missing.insert(input.to_owned());
            }
        }
    }
    if !reasons.is_empty() {
        return Outcome::Comment(reasons.join("; "));
    }
    if !missing.is_empty() {
        return Outcome::Waiting(missing);
    }
    if code == "EGFR" && patient.sex == Sex::Unknown {
        return Outcome::Comment("sex not known: EGFR needs the patient's sex".into());
    }
    let v = |name: &str| values[name];
    let catalog_comment = |code: &str| {
        let rule = catalog.test(code).unwrap().calculation.as_ref().unwrap();
        rule.invalid_comment.clone().unwrap()
    };
    let refused = match code {
        "EGFR" if patient.age < 18.0 => Some("age_years >= 18 does not hold".to_owned()),
        "LDLF" if v("TRIG") >= 400.0 => Some(catalog_comment("LDLF")),
        "LDLS" if v("TRIG") > 800.0 => Some(catalog_comment("LDLS")),
        "AGRATIO" if v("TP") - v("ALB") <= 0.0 => Some("TP - ALB > 0 does not hold".to_owned()),
        "BUNCR" if v("CREAT") <= 0.0 => Some("CREAT > 0 does not hold".to_owned()),
        _ => None,
    };
    if let Some(why) = refused {
        return Outcome::Comment(why);
    }
    let divide = |a: f64, b: f64| if b == 0.0 { None } else { Some(a / b) };
    let value = match code {
        // Kraut & Madias 2007.
        "AGAP" => Some(v("NA") - (v("CL") + v("CO2"))),
        "AGAPK" => Some((v("NA") + v("K")) - (v("CL") + v("CO2"))),
        // Inker et al. 2021, CKD-EPI without race.
        "EGFR" => {
            let female = patient.sex == Sex::Female;
            let (kappa, alpha, factor) =
                if female { (0.7, -0.241, 1.012) } else { (0.9, -0.302, 1.0) };
            let scr = v("CREAT") / kappa;
            Some(
                142.0
                    * scr.min(1.0).powf(alpha)
                    * scr.max(1.0).powf(-1.200)
                    * 0.9938_f64.powf(patient.age)
                    * factor,
            )
        }
        // Friedewald 1972.
        "LDLF" => Some(v("CHOL") - v("HDL") - v("TRIG") / 5.0),
        // Sampson 2020, NIH equation 2.
        "LDLS" => {
            let (tc, hdl, tg) = (v("CHOL"), v("HDL"), v("TRIG"));
            Some(
                tc / 0.948
                    - hdl / 0.971
                    - (tg / 8.56 + tg * (tc - hdl) / 2140.0 - tg * tg / 16100.0)
                    - 9.44,
            )
        }
        "NONHDL" => Some(v("CHOL") - v("HDL")),
        "CHOLHDL" => divide(v("CHOL"), v("HDL")),
        // Payne 1973.
        "CACORR" => Some(v("CA") + 0.8 * (4.0 - v("ALB"))),
        "GLOB" => Some(v("TP") - v("ALB")),
        "AGRATIO" => divide(v("ALB"), v("TP") - v("ALB")),
        "BUNCR" => divide(v("BUN"), v("CREAT")),
        // Wintrobe's indices.
        "MCV_CALC" => divide(v("HCT") * 10.0, v("RBC")),
        "MCH_CALC" => divide(v("HGB") * 10.0, v("RBC")),
        "MCHC_CALC" => divide(v("HGB") * 100.0, v("HCT")),
        "ANC" => Some(v("WBC") * (v("NEUT_SEG_PCT") + v("NEUT_BAND_PCT")) / 100.0),
        "OSMCALC" => Some(2.0 * v("NA") + v("GLU") / 18.0 + v("BUN") / 2.8),
        "OSMGAP" => Some(v("OSMO") - v("OSMCALC")),
        // WHO TRS 889: INR = (PT / MNPT) ^ ISI.
        "INR_CALC" => divide(v("PT"), patient.mnpt).map(|r| r.powf(patient.isi)),
        "TSAT" => divide(v("FE"), v("TIBC")).map(|r| r * 100.0),
        _ => unreachable!(),
    };
    match value {
        Some(v) if v.is_finite() => Outcome::Value(v),
        Some(_) => Outcome::Comment(format!(
            "{code} not calculated: the result is not a finite number (overflow, or a fractional power of a negative number)"
        )),
        None => Outcome::Comment(format!("{code} not calculated: division by zero")),
    }
}

/// Rounds half away from zero on the decimal text of `value` (its shortest round-trip form).
fn round_text(value: f64, decimals: usize) -> String {
    let text = value.to_string();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest.to_owned()),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((&digits, ""));
    let mut fraction: Vec<u8> = fraction.bytes().collect();
    let round_up = fraction.get(decimals).is_some_and(|d| *d >= b'5');
    fraction.resize(decimals, b'0');
    let mut kept: Vec<u8> = whole.bytes().chain(fraction).collect();
    if round_up {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    let split = kept.len() - decimals;
    let mut out = String::from_utf8(kept[..split].to_vec()).unwrap();
    if decimals > 0 {
        out.push('.');
        out.push_str(std::str::from_utf8(&kept[split..]).unwrap());
    }
    let zero = out.bytes().all(|b| b == b'0' || b == b'.');
    if negative && !zero { format!("-{out}") } else { out }
}

fn reference_report(catalog: &Catalog, code: &str, patient: &Patient) -> Report {
    let decimals = catalog.test(code).unwrap().decimals.unwrap_or(0) as usize;
    match reference(catalog, code, patient) {
        Outcome::Value(v) => Report::Number(round_text(v, decimals)),
        Outcome::Comment(why) => Report::Comment(format!("Not calculated: {why}")),
        Outcome::Waiting(missing) => Report::Waiting(missing),
    }
}

// ---------------------------------------------------------------------------------------------
// Cuvette, as the lab calls it
// ---------------------------------------------------------------------------------------------

fn cuvette(catalog: &Catalog, code: &str, patient: &Patient) -> (Report, Option<f64>) {
    let def = catalog.test(code).unwrap();
    let rule = def.calculation.as_ref().unwrap();
    let mut inputs: BTreeMap<String, CalculationInput> = BTreeMap::new();
    for (input, text) in &patient.typed {
        let test = catalog.test(input).unwrap();
        let value = ReportedValue::parse(text).expect("a typed result");
        if let Some(input_value) = calculation_input(test, &value) {
            inputs.insert(input.clone(), input_value);
        }
    }
    // A calculation read by this one is calculated first and passed on unrounded.
    for input in &rule.inputs {
        let Some(inner) = catalog.test(input).and_then(|t| t.calculation.as_ref()) else {
            continue;
        };
        match calculate_reported(input, inner, &inputs, patient.sex, patient.age) {
            Calculated::Value(v) => {
                inputs.insert(input.clone(), CalculationInput::Value(v));
            }
            Calculated::NotValid(why) => {
                inputs.insert(input.clone(), CalculationInput::NotReportable(why));
            }
            Calculated::MissingInputs(_) => {}
        }
    }
    match calculate_reported(code, rule, &inputs, patient.sex, patient.age) {
        Calculated::Value(v) => {
            (Report::Number(round_reported(v, def.decimals.unwrap_or(0))), Some(v))
        }
        Calculated::NotValid(why) => (Report::Comment(format!("Not calculated: {why}")), None),
        Calculated::MissingInputs(missing) => {
            (Report::Waiting(missing.into_iter().collect()), None)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Random cases
// ---------------------------------------------------------------------------------------------

/// SplitMix64: small, seeded, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low + 1) as u64) as i64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.next() as usize % items.len()]
    }
}

/// The measured tests a calculation reads, calculations of calculations opened up.
fn measured_inputs(catalog: &Catalog, code: &str) -> Vec<String> {
    let rule = catalog.test(code).unwrap().calculation.as_ref().unwrap();
    let mut out = Vec::new();
    for input in &rule.inputs {
        match catalog.test(input) {
            Some(t) if t.is_calculated() => out.extend(measured_inputs(catalog, input)),
            Some(_) => out.push(input.clone()),
            None => {} // the patient's age or sex
        }
    }
    out
}

/// A typed result for `test`, or none. `units` counts in the test's last decimal place.
fn typed(rng: &mut Rng, test: &TestDefinition) -> Option<String> {
    let places = test.decimals.unwrap_or(0);
    let scale = Decimal::from(10_i64.pow(places));
    let units = |d: Decimal| i64::try_from((d * scale).round()).unwrap();
    let low = units(test.amr_low.expect("every input has a measurement range"));
    let high = units(test.amr_high.expect("every input has a measurement range"));
    let text = |u: i64| Decimal::new(u, places).to_string();
    let span = (high - low).max(1);
    Some(match rng.between(0, 99) {
        0..=54 => text(rng.between(low, high)),
        // The lower half of the range again, where ratios and gaps change sign.
        55..=64 => text(rng.between(low, low + span / 4)),
        65..=69 => text(rng.pick(&[low, high])),
        70..=74 => text(high + rng.pick(&[1, span / 10 + 1, span])),
        75..=77 => text(low - rng.pick(&[1, span / 10 + 1])),
        78..=86 => {
            let comparator = rng.pick(&["<", ">", "<=", ">="]);
            format!("{comparator}{}", text(rng.between(low, high)))
        }
        87..=92 => return None,
        _ => rng.pick(&["hemolyzed", "QNS", "see comment"]).to_owned(),
    })
}

#[test]
fn every_calculation_agrees_with_a_plain_reference_on_random_cases() {
    let bundled = Catalog::bundled();
    let codes: Vec<String> =
        bundled.tests().filter(|t| t.is_calculated()).map(|t| t.code.clone()).collect();
    assert_eq!(codes.len(), 19, "every calculation in the catalog has a reference");
    let mut rng = Rng(0xCA1C_0DE5_2026_1205);
    // (calculation, kind of outcome) → cases.
    let mut seen: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    for case in 0..CASES {
        let code = codes[rng.between(0, codes.len() as i64 - 1) as usize].clone();
        let mut catalog = bundled.clone();
        // A new reagent lot for the INR: its ISI and the lab's mean normal PT.
        let isi = rng.between(85, 250) as f64 / 100.0;
        let mnpt = rng.between(100, 150) as f64 / 10.0;
        let mut inr = catalog.test("INR_CALC").unwrap().clone();
        let rule = inr.calculation.as_mut().unwrap();
        rule.coefficients.insert("ISI".into(), isi);
        rule.coefficients.insert("MNPT".into(), mnpt);
        catalog.insert(inr);

        let mut typed_inputs = BTreeMap::new();
        for input in measured_inputs(&catalog, &code) {
            if let Some(text) = typed(&mut rng, catalog.test(&input).unwrap()) {
                typed_inputs.insert(input, text);
            }
        }
        let patient = Patient {
            sex: rng.pick(&[Sex::Female, Sex::Male, Sex::Female, Sex::Male, Sex::Unknown]),
            age: rng.between(0, 100) as f64,
            typed: typed_inputs,
            isi,
            mnpt,
        };

        let expected = reference_report(&catalog, &code, &patient);
        let (actual, unrounded) = cuvette(&catalog, &code, &patient);
        assert_eq!(
            actual, expected,
            "case {case}: {code} for {:?}, age {}, inputs {:?} (unrounded {unrounded:?})",
            patient.sex, patient.age, patient.typed
        );
        if let (Some(got), Outcome::Value(want)) = (unrounded, reference(&catalog, &code, &patient))
        {
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "case {case}: {got} vs {want}"
            );
        }
        let kind = match &actual {
            Report::Number(_) => "number",
            Report::Comment(c) if c.contains("measurement range") => "not reportable input",
            Report::Comment(_) => "refused",
            Report::Waiting(_) => "waiting",
        };
        *seen.entry((code, kind)).or_default() += 1;
    }

    // The comparison means something only if every calculation was reported as a number, and
    // refused for an input out of range or censored, and waited for a missing input, many times.
    for code in &codes {
        for kind in ["number", "not reportable input", "waiting"] {
            let times = seen.get(&(code.clone(), kind)).copied().unwrap_or(0);
            assert!(times >= 20, "{code}: {kind} only {times} times: {seen:?}");
        }
    }
    // And the conditions and the patient fired where a calculation has them.
    for code in ["EGFR", "LDLF", "LDLS", "AGRATIO"] {
        let times = seen.get(&(code.to_owned(), "refused")).copied().unwrap_or(0);
        assert!(times >= 10, "{code}: refused only {times} times: {seen:?}");
    }
}

/// The reference is only worth comparing against if it reads the catalog's worked examples
/// and the rounding rule right.
#[test]
fn the_reference_reproduces_worked_examples_and_rounds_half_away_from_zero() {
    let catalog = Catalog::bundled();
    let patient = |pairs: &[(&str, &str)], sex, age| Patient {
        sex,
        age,
        typed: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        isi: 1.0,
        mnpt: 12.0,
    };
    let report = |code: &str, p: &Patient| reference_report(&catalog, code, p);
    let number = |text: &str| Report::Number(text.to_owned());
    assert_eq!(report("EGFR", &patient(&[("CREAT", "1.0")], Sex::Male, 50.0)), number("92"));
    assert_eq!(report("EGFR", &patient(&[("CREAT", "0.8")], Sex::Female, 60.0)), number("84"));
    let lipids = [("CHOL", "200"), ("HDL", "50"), ("TRIG", "150")];
    assert_eq!(report("LDLS", &patient(&lipids, Sex::Unknown, 50.0)), number("123"));
    let osm = [("OSMO", "300"), ("NA", "140"), ("GLU", "90"), ("BUN", "14")];
    assert_eq!(report("OSMGAP", &patient(&osm, Sex::Unknown, 50.0)), number("10"));
    assert_eq!(report("INR_CALC", &patient(&[("PT", "24.0")], Sex::Unknown, 50.0)), number("2.0"));
    assert_eq!(
        report("EGFR", &patient(&[("CREAT", "30.00")], Sex::Male, 50.0)),
        Report::Comment("Not calculated: Creatinine above the measurement range (>25)".into())
    );
    let censored_na = [("OSMO", ">2000"), ("NA", "<80"), ("GLU", "90"), ("BUN", "14")];
    assert_eq!(
        report("OSMGAP", &patient(&censored_na, Sex::Unknown, 50.0)),
        Report::Comment(
            "Not calculated: Sodium below the measurement range (<80); Osmolality, serum (measured) above the measurement range (>2000)".into()
        )
    );

    assert_eq!(round_text(2.5, 0), "3");
    assert_eq!(round_text(-2.5, 0), "-3");
    assert_eq!(round_text(1.005, 2), "1.01");
    assert_eq!(round_text(9.96, 1), "10.0");
    assert_eq!(round_text(99.5, 0), "100");
    assert_eq!(round_text(-0.04, 1), "0.0");
    assert_eq!(round_text(3.25, 2), "3.25");
    assert_eq!(round_text(4.0, 1), "4.0");
}
