//! What a result means: its flags against the reference interval, critical limits and
//! measurement range, what the report prints, and who must look at it before release.
//!
//! Limits follow the catalog's conventions: a reference interval is inclusive at both ends
//! (`low ≤ x ≤ high` is normal); a result is critical strictly beyond a critical limit
//! (`x < critical_low` or `x > critical_high`); the measurement range is inclusive.
//! A censored value ("<0.5", ">1000") is flagged only when every value it stands for is
//! beyond the limit; when it straddles a limit it goes to a technologist.

use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::catalog::{ReferenceInterval, ResultType, TestDefinition};
use crate::patient::Sex;
use crate::value::{Comparator, Numeric, ReportedValue};

/// An abnormality flag (HL7 v2 table 0078 codes, where one exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Flag {
    /// Critical low (LL).
    #[serde(rename = "LL")]
    CriticalLow,
    /// Critical high (HH).
    #[serde(rename = "HH")]
    CriticalHigh,
    /// Below the reference interval (L).
    #[serde(rename = "L")]
    Low,
    /// Above the reference interval (H).
    #[serde(rename = "H")]
    High,
    /// Abnormal coded or text result (A).
    #[serde(rename = "A")]
    Abnormal,
    /// Below the analytical measurement range (`<`): reported as "<low".
    #[serde(rename = "<")]
    BelowRange,
    /// Above the analytical measurement range (`>`): reported as ">high".
    #[serde(rename = ">")]
    AboveRange,
    /// Not a valid value for the test (text in a numeric field, a code not in the list).
    #[serde(rename = "INV")]
    Invalid,
}

impl Flag {
    /// Every flag, most severe first.
    pub const ALL: [Flag; 8] = [
        Flag::CriticalLow,
        Flag::CriticalHigh,
        Flag::Low,
        Flag::High,
        Flag::Abnormal,
        Flag::BelowRange,
        Flag::AboveRange,
        Flag::Invalid,
    ];

    /// The code stored and sent (HL7 OBX-8).
    pub fn code(self) -> &'static str {
        match self {
            Flag::CriticalLow => "LL",
            Flag::CriticalHigh => "HH",
            Flag::Low => "L",
            Flag::High => "H",
            Flag::Abnormal => "A",
            Flag::BelowRange => "<",
            Flag::AboveRange => ">",
            Flag::Invalid => "INV",
        }
    }

    /// Parses a stored code.
    pub fn from_code(code: &str) -> Option<Flag> {
        Some(match code {
            "LL" => Flag::CriticalLow,
            "HH" => Flag::CriticalHigh,
            "L" => Flag::Low,
            "H" => Flag::High,
            "A" => Flag::Abnormal,
            "<" => Flag::BelowRange,
            ">" => Flag::AboveRange,
            "INV" => Flag::Invalid,
            _ => return None,
        })
    }

    /// The label the bench and the report print: text, never colour alone.
    pub fn label(self) -> &'static str {
        match self {
            Flag::CriticalLow => "CRIT L",
            Flag::CriticalHigh => "CRIT H",
            Flag::Low => "L",
            Flag::High => "H",
            Flag::Abnormal => "A",
            Flag::BelowRange => "<AMR",
            Flag::AboveRange => ">AMR",
            Flag::Invalid => "INV",
        }
    }

    /// Whether this flag makes the result critical.
    pub fn is_critical(self) -> bool {
        matches!(self, Flag::CriticalLow | Flag::CriticalHigh)
    }
}

/// The flags of one result, most severe first, as one value: stored and sent as their codes
/// separated by spaces ("HH >"), read back strictly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Flags(Vec<Flag>);

impl Flags {
    /// No flag: within every limit.
    pub const NONE: Flags = Flags(Vec::new());

    /// Parses stored codes ("HH >"); the error is the first code that is not a flag.
    pub fn parse(codes: &str) -> Result<Flags, String> {
        codes
            .split_whitespace()
            .map(|c| Flag::from_code(c).ok_or_else(|| c.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map(Flags)
    }

    /// The codes as stored and sent: "HH >", empty when none.
    pub fn codes(&self) -> String {
        self.0.iter().map(|f| f.code()).collect::<Vec<_>>().join(" ")
    }

    /// Whether any flag is critical.
    pub fn is_critical(&self) -> bool {
        self.0.iter().any(|f| f.is_critical())
    }

    /// Whether the value is not valid for its test (it can never be released).
    pub fn is_invalid(&self) -> bool {
        self.0.contains(&Flag::Invalid)
    }
}

impl From<Vec<Flag>> for Flags {
    fn from(flags: Vec<Flag>) -> Flags {
        Flags(flags)
    }
}

impl std::ops::Deref for Flags {
    type Target = [Flag];
    fn deref(&self) -> &[Flag] {
        &self.0
    }
}

impl std::fmt::Display for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.codes())
    }
}

impl Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.codes())
    }
}

/// Who must review a result before it is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Review {
    /// Within limits: a technician may release it.
    Routine,
    /// Abnormal, critical, out of range or unreadable: a technologist must verify it.
    Technologist,
}

impl Review {
    /// Every review.
    pub const ALL: [Review; 2] = [Review::Routine, Review::Technologist];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            Review::Routine => "routine",
            Review::Technologist => "technologist",
        }
    }

    /// Parses a stored code.
    pub fn parse(code: &str) -> Option<Review> {
        [Review::Routine, Review::Technologist].into_iter().find(|r| r.code() == code)
    }
}

/// The outcome of judging one result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Flags, most severe first.
    pub flags: Vec<Flag>,
    /// The reference interval applied, as printed ("3.5–5.1"); when the test has intervals
    /// but none for this patient, what the bench and the report say instead
    /// ([`NO_INTERVAL_FOR_AGE`]); empty for a test without intervals.
    pub interval: String,
    /// Whether the test has reference intervals but none for this patient's sex and age: the
    /// result cannot be judged normal, so a technologist reviews it and autoverification
    /// never releases it.
    #[serde(default)]
    pub no_interval_applies: bool,
    /// The critical low applied: the test's, or that of the age partition the patient is in
    /// (a newborn's glucose); absent when none applies.
    #[serde(default)]
    pub critical_low: Option<Decimal>,
    /// The critical high applied, likewise.
    #[serde(default)]
    pub critical_high: Option<Decimal>,
    /// What the report prints: the reported text, or "<low"/">high" outside the measurement
    /// range, so an unmeasurable number is never released as a plain number.
    pub report_text: String,
    /// Who must review it.
    pub review: Review,
    /// Why it needs a technologist, in the bench's words.
    pub reasons: Vec<String>,
}

impl Evaluation {
    /// Whether any flag is critical.
    pub fn is_critical(&self) -> bool {
        self.flags.iter().any(|f| f.is_critical())
    }

    /// The flags as stored: codes separated by spaces ("HH >").
    pub fn flag_codes(&self) -> String {
        Flags::from(self.flags.clone()).codes()
    }
}

/// The patient facts a result is judged against, at the time of collection.
#[derive(Debug, Clone, Copy)]
pub struct PatientContext {
    /// Administrative sex.
    pub sex: Sex,
    /// Date of birth.
    pub birth_date: Date,
    /// Date the specimen was collected (ages are computed at collection, not at entry).
    pub collected_on: Date,
}

/// What the bench and the report print in place of the interval when the test's intervals
/// leave out this patient's age (a neonate, a child where only adult intervals are carried).
pub const NO_INTERVAL_FOR_AGE: &str = "No reference interval for this age";

/// The same, for a test whose intervals are given by sex.
pub const NO_INTERVAL_FOR_SEX_AND_AGE: &str = "No reference interval for this sex and age";

/// The interval column of a result of `test` for this patient: the interval as printed, or
/// the sentence saying none applies, or empty for a test that carries no intervals (text,
/// coded results, tests the lab reports without one).
pub fn interval_text(test: &TestDefinition, patient: PatientContext) -> String {
    match test.interval_for(patient.sex, patient.birth_date, patient.collected_on) {
        Some(r) => r.display(),
        None if lacks_interval(test, None) => {
            if test.reference.iter().any(|r| r.sex != "*") {
                NO_INTERVAL_FOR_SEX_AND_AGE.to_owned()
            } else {
                NO_INTERVAL_FOR_AGE.to_owned()
            }
        }
        None => String::new(),
    }
}

/// Whether a numeric test has intervals of which none (`applied`) fits the patient.
fn lacks_interval(test: &TestDefinition, applied: Option<&ReferenceInterval>) -> bool {
    applied.is_none() && !test.reference.is_empty() && test.result_type == ResultType::Numeric
}

/// Judges a reported value against a test definition for a patient.
pub fn evaluate(
    test: &TestDefinition,
    value: &ReportedValue,
    patient: PatientContext,
) -> Evaluation {
    let interval = test.interval_for(patient.sex, patient.birth_date, patient.collected_on);
    let (critical_low, critical_high) =
        test.critical_for(patient.sex, patient.birth_date, patient.collected_on);
    let no_interval_applies = lacks_interval(test, interval);
    if value.no_value().is_some() {
        // A documented comment is reported as written; a technologist reads it first.
        return Evaluation {
            flags: Vec::new(),
            interval: interval_text(test, patient),
            no_interval_applies,
            critical_low,
            critical_high,
            report_text: value.text.clone(),
            review: Review::Technologist,
            reasons: vec![format!("{} is reported as a comment, without a value", test.name)],
        };
    }
    let mut flags = Vec::new();
    let mut reasons = Vec::new();
    let mut report_text = value.text.clone();
    match test.result_type {
        ResultType::Numeric => match value.number {
            None => {
                flags.push(Flag::Invalid);
                reasons.push(format!(
                    "{:?} is not a number; {} is reported as a number",
                    value.text, test.name
                ));
            }
            Some(n) => {
                let critical = (critical_low, critical_high);
                judge_number(
                    test,
                    n,
                    interval,
                    critical,
                    &mut flags,
                    &mut reasons,
                    &mut report_text,
                );
            }
        },
        ResultType::Coded => {
            let known = test.allowed_values.iter().find(|v| v.eq_ignore_ascii_case(&value.text));
            match known {
                None => {
                    flags.push(Flag::Invalid);
                    reasons.push(format!(
                        "{:?} is not one of the values for {}: {}",
                        value.text,
                        test.name,
                        test.allowed_values.join(", ")
                    ));
                }
                Some(v) => {
                    // Report the catalog's spelling of the code.
                    report_text = v.clone();
                    if !test.normal_values.iter().any(|n| n == v) {
                        flags.push(Flag::Abnormal);
                    }
                }
            }
        }
        ResultType::Text | ResultType::Organism => {}
    }
    if no_interval_applies {
        reasons.push(format!(
            "no reference interval of {} applies to this patient's age and sex",
            test.name
        ));
    }
    flags.sort();
    flags.dedup();
    for f in &flags {
        let why = match f {
            Flag::CriticalLow | Flag::CriticalHigh => format!("critical value ({})", f.label()),
            Flag::Low | Flag::High => format!("outside the reference interval ({})", f.label()),
            Flag::Abnormal => "abnormal result".to_owned(),
            Flag::BelowRange | Flag::AboveRange => {
                "outside the analytical measurement range".to_owned()
            }
            Flag::Invalid => continue, // already explained above
        };
        reasons.push(why);
    }
    let review = if reasons.is_empty() { Review::Routine } else { Review::Technologist };
    Evaluation {
        flags,
        interval: interval_text(test, patient),
        no_interval_applies,
        critical_low,
        critical_high,
        report_text,
        review,
        reasons,
    }
}

/// The span of true values a reported number stands for: ("<0.5" → below 0.5).
fn bounds(n: Numeric) -> (Option<Decimal>, Option<Decimal>) {
    match n.comparator {
        None => (Some(n.value), Some(n.value)),
        Some(Comparator::Less | Comparator::LessOrEqual) => (None, Some(n.value)),
        Some(Comparator::Greater | Comparator::GreaterOrEqual) => (Some(n.value), None),
    }
}

fn judge_number(
    test: &TestDefinition,
    n: Numeric,
    interval: Option<&ReferenceInterval>,
    (critical_low, critical_high): (Option<Decimal>, Option<Decimal>),
    flags: &mut Vec<Flag>,
    reasons: &mut Vec<String>,
    report_text: &mut String,
) {
    let (lowest, highest) = bounds(n);
    // Every limit is strict: L means below `low`, LL below `critical_low`, H and HH above.
    // "Surely below x": every value the result stands for is below x.
    let surely_below = |x: Decimal| {
        highest.is_some_and(|h| h < x || (h == x && n.comparator == Some(Comparator::Less)))
    };
    let surely_above = |x: Decimal| {
        lowest.is_some_and(|l| l > x || (l == x && n.comparator == Some(Comparator::Greater)))
    };
    let maybe_below = |x: Decimal| lowest.is_none_or(|l| l < x);
    let maybe_above = |x: Decimal| highest.is_none_or(|h| h > x);

    if let Some(low) = critical_low {
        if surely_below(low) {
            flags.push(Flag::CriticalLow);
        } else if maybe_below(low) {
            reasons.push(format!("{} may be below the critical limit {low}", n_text(n)));
        }
    }
    if let Some(high) = critical_high {
        if surely_above(high) {
            flags.push(Flag::CriticalHigh);
        } else if maybe_above(high) {
            reasons.push(format!("{} may be above the critical limit {high}", n_text(n)));
        }
    }
    if let Some(r) = interval {
        if let Some(low) = r.low {
            if surely_below(low) {
                flags.push(Flag::Low);
            } else if maybe_below(low) {
                reasons.push(format!("{} may be below the reference limit {low}", n_text(n)));
            }
        }
        if let Some(high) = r.high {
            if surely_above(high) {
                flags.push(Flag::High);
            } else if maybe_above(high) {
                reasons.push(format!("{} may be above the reference limit {high}", n_text(n)));
            }
        }
    }
    // A censored value already says it is beyond what was measured; a plain number outside
    // the range is reported as the limit with the comparator.
    if n.comparator.is_none() {
        if let Some(low) = test.amr_low.filter(|low| n.value < *low) {
            flags.push(Flag::BelowRange);
            *report_text = format!("<{low}");
        }
        if let Some(high) = test.amr_high.filter(|high| n.value > *high) {
            flags.push(Flag::AboveRange);
            *report_text = format!(">{high}");
        }
    }
}

fn n_text(n: Numeric) -> String {
    format!("{}{}", n.comparator.map(Comparator::symbol).unwrap_or(""), n.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use jiff::civil::date;

    fn adult(sex: Sex) -> PatientContext {
        PatientContext { sex, birth_date: date(1970, 3, 1), collected_on: date(2026, 11, 24) }
    }

    /// Evaluates `text` for test `code` on an adult woman; returns (flag codes, report text, review).
    fn check(code: &str, text: &str) -> (String, String, Review) {
        let catalog = Catalog::bundled();
        let test = catalog.test(code).unwrap();
        let e = evaluate(test, &ReportedValue::parse(text).unwrap(), adult(Sex::Female));
        (e.flag_codes(), e.report_text, e.review)
    }

    #[test]
    fn potassium_within_the_interval_is_routine() {
        // K adult 3.5–5.1 mmol/L, both limits inclusive.
        assert_eq!(check("K", "4.2"), ("".into(), "4.2".into(), Review::Routine));
        assert_eq!(check("K", "3.5"), ("".into(), "3.5".into(), Review::Routine));
        assert_eq!(check("K", "5.1"), ("".into(), "5.1".into(), Review::Routine));
    }

    #[test]
    fn potassium_outside_the_interval_is_flagged_for_a_technologist() {
        assert_eq!(check("K", "5.2"), ("H".into(), "5.2".into(), Review::Technologist));
        assert_eq!(check("K", "3.4"), ("L".into(), "3.4".into(), Review::Technologist));
    }

    #[test]
    fn critical_limits_are_exclusive() {
        // K critical < 2.8 or > 6.2.
        assert_eq!(check("K", "2.8").0, "L");
        assert_eq!(check("K", "2.7").0, "LL L");
        assert_eq!(check("K", "6.2").0, "H");
        assert_eq!(check("K", "6.3").0, "HH H");
    }

    #[test]
    fn outside_the_measurement_range_is_reported_as_the_limit() {
        // Glucose AMR 2–750 mg/dL, critical > 500.
        assert_eq!(check("GLU", "812"), ("HH H >".into(), ">750".into(), Review::Technologist));
        assert_eq!(check("GLU", "1"), ("LL L <".into(), "<2".into(), Review::Technologist));
        assert_eq!(check("GLU", "750").1, "750");
    }

    #[test]
    fn censored_values_are_flagged_only_when_certain() {
        // ">1000" glucose is certainly above the critical limit 500.
        assert_eq!(check("GLU", ">1000").0, "HH H");
        // "<0.5" potassium is certainly critical low.
        assert_eq!(check("K", "<0.5").0, "LL L");
        // "<80" glucose might be normal or low: no flag, but a technologist looks.
        let (flags, text, review) = check("GLU", "<80");
        assert_eq!((flags.as_str(), text.as_str(), review), ("", "<80", Review::Technologist));
        // ">6.2" potassium: above 6.2 means critical (exclusive limit).
        assert_eq!(check("K", ">6.2").0, "HH H");
        // "<3.5" potassium: below the inclusive low limit 3.5.
        assert_eq!(check("K", "<3.5").0, "L");
    }

    #[test]
    fn text_in_a_numeric_field_is_kept_and_sent_to_review() {
        let (flags, text, review) = check("K", "hemolyzed");
        assert_eq!(
            (flags.as_str(), text.as_str(), review),
            ("INV", "hemolyzed", Review::Technologist)
        );
    }

    #[test]
    fn coded_results_outside_the_normal_values_are_abnormal() {
        let catalog = Catalog::bundled();
        let coded = catalog
            .tests()
            .find(|t| {
                t.result_type == ResultType::Coded && t.normal_values.contains(&"Negative".into())
            })
            .unwrap();
        let code = coded.code.clone();
        let abnormal = coded.allowed_values.iter().find(|v| *v != "Negative").unwrap().clone();
        assert_eq!(check(&code, "negative"), ("".into(), "Negative".into(), Review::Routine));
        assert_eq!(check(&code, &abnormal).0, "A");
        assert_eq!(check(&code, "purple").0, "INV");
    }

    #[test]
    fn intervals_are_chosen_by_sex_and_age_at_collection() {
        let catalog = Catalog::bundled();
        let hgb = catalog.test("HGB").unwrap();
        let v = ReportedValue::parse("12.0").unwrap();
        // Adult woman 11.6–15.0: normal. Adult man 13.2–16.6: low.
        assert_eq!(evaluate(hgb, &v, adult(Sex::Female)).flag_codes(), "");
        assert_eq!(evaluate(hgb, &v, adult(Sex::Male)).flag_codes(), "L");
        // A 3-year-old: 11.5–13.5, normal.
        let child = PatientContext {
            sex: Sex::Male,
            birth_date: date(2023, 6, 1),
            collected_on: date(2026, 11, 24),
        };
        assert_eq!(evaluate(hgb, &v, child).interval, "11.5–13.5");
        // A four-day-old: the band under one month, 10.0–20.0.
        let neonate = PatientContext {
            sex: Sex::Male,
            birth_date: date(2026, 11, 20),
            collected_on: date(2026, 11, 24),
        };
        assert_eq!(evaluate(hgb, &v, neonate).interval, "10–20");
        // Hematocrit has sex-specific adult bands only: no interval applies to the neonate,
        // so it goes to review.
        let e =
            evaluate(catalog.test("HCT").unwrap(), &ReportedValue::parse("50").unwrap(), neonate);
        assert_eq!(
            (e.interval.as_str(), e.review),
            (NO_INTERVAL_FOR_SEX_AND_AGE, Review::Technologist)
        );
        assert!(e.no_interval_applies);
    }

    #[test]
    fn a_neonate_without_an_interval_is_told_so_and_reviewed_whatever_the_value() {
        // The catalog's sodium starts at eighteen years: a four-day-old has no interval. Every
        // value, however ordinary for an adult, goes to a technologist with the reason.
        let catalog = Catalog::bundled();
        let na = catalog.test("NA").unwrap();
        let neonate = PatientContext {
            sex: Sex::Female,
            birth_date: date(2026, 11, 20),
            collected_on: date(2026, 11, 24),
        };
        assert!(na.interval_for(neonate.sex, neonate.birth_date, neonate.collected_on).is_none());
        let e = evaluate(na, &ReportedValue::parse("140").unwrap(), neonate);
        assert_eq!(
            (e.flag_codes().as_str(), e.interval.as_str(), e.review),
            ("", NO_INTERVAL_FOR_AGE, Review::Technologist)
        );
        assert!(e.no_interval_applies);
        assert!(e.reasons.iter().any(|r| r.contains("no reference interval of Sodium")), "{e:?}");
        // An adult's sodium has its interval, and nothing is said.
        let e = evaluate(na, &ReportedValue::parse("140").unwrap(), adult(Sex::Female));
        assert_eq!(
            (e.interval.as_str(), e.no_interval_applies, e.review),
            ("135–145", false, Review::Routine)
        );
    }

    #[test]
    fn a_newborns_glucose_is_called_at_the_newborn_limit_and_a_childs_at_the_childs() {
        // Shipped limits (Kost 1991): newborns below 32.4 mg/dL, children below 46.8, adults
        // below 40; the one in force is kept with the evaluation for the autoverification trace.
        let catalog = Catalog::bundled();
        let glucose = catalog.test("GLU").unwrap();
        let born = |y, m, d| PatientContext {
            sex: Sex::Male,
            birth_date: date(y, m, d),
            collected_on: date(2026, 11, 24),
        };
        let value = ReportedValue::parse("40").unwrap();
        let newborn = evaluate(glucose, &value, born(2026, 11, 20));
        assert_eq!(
            (newborn.flag_codes().as_str(), newborn.critical_low),
            ("", Some(Decimal::new(324, 1)))
        );
        let child = evaluate(glucose, &value, born(2020, 1, 1));
        assert_eq!(
            (child.flag_codes().as_str(), child.critical_low),
            ("LL", Some(Decimal::new(468, 1)))
        );
        let adult = evaluate(glucose, &value, born(1970, 1, 1));
        assert_eq!(
            (adult.flag_codes().as_str(), adult.critical_low),
            ("L", Some(Decimal::from(40)))
        );
    }
}
