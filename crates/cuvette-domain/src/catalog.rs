//! The test catalog: what can be ordered, how it is collected and how its results are judged.
//!
//! The default catalog ships with Cuvette as TOML under `catalog/` (example defaults that every
//! laboratory must verify before clinical use, see `catalog/SOURCES.md`). A lab's edits are new
//! versions of a [`TestDefinition`]; a result remembers the version it was evaluated with.

use std::collections::BTreeMap;
use std::str::FromStr;

use jiff::Span;
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

use crate::calculation::{Condition, Formula};
use crate::patient::Sex;

/// The catalog bundled with Cuvette, as data.
pub const DEFAULT_TESTS_TOML: &str = include_str!("../catalog/tests.toml");
/// The bundled panels.
pub const DEFAULT_PANELS_TOML: &str = include_str!("../catalog/panels.toml");
/// The bundled calculated tests.
pub const DEFAULT_CALCULATIONS_TOML: &str = include_str!("../catalog/calculations.toml");

/// How a test's result is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultType {
    /// A number with a unit, possibly with a comparator ("<0.5").
    Numeric,
    /// One value from a fixed list ("Negative", "Trace").
    Coded,
    /// Free text.
    Text,
    /// An organism name (microbiology).
    Organism,
}

/// A reference interval for one sex and age band. Ages are ISO-8601 durations from the date
/// of birth, `age_min` inclusive and `age_max` exclusive; either limit may be absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceInterval {
    /// "M", "F" or "*" for both.
    #[serde(default = "any_sex")]
    pub sex: String,
    /// Youngest age the interval applies to (inclusive), e.g. "P18Y", "P8D".
    #[serde(default)]
    pub age_min: Option<String>,
    /// Age from which it no longer applies (exclusive).
    #[serde(default)]
    pub age_max: Option<String>,
    /// Lower limit, inclusive; absent for a one-sided interval.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub low: Option<Decimal>,
    /// Upper limit, inclusive; absent for a one-sided interval.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub high: Option<Decimal>,
}

fn any_sex() -> String {
    "*".into()
}

impl ReferenceInterval {
    /// Whether this interval applies to a patient of `sex` born on `birth_date`, for a
    /// specimen collected on `collected_on`. Age bands are compared on the calendar, so a
    /// neonate of 7 days is not in a band that starts at "P8D".
    pub fn applies_to(&self, sex: Sex, birth_date: Date, collected_on: Date) -> bool {
        let sex_matches = match self.sex.as_str() {
            "*" => true,
            "M" => sex == Sex::Male,
            "F" => sex == Sex::Female,
            _ => false,
        };
        sex_matches
            && self.age_min.as_deref().is_none_or(|min| reached(birth_date, min, collected_on))
            && self.age_max.as_deref().is_none_or(|max| !reached(birth_date, max, collected_on))
    }

    /// The interval as printed on a report: "3.5–5.1", "<130", ">60".
    pub fn display(&self) -> String {
        match (self.low, self.high) {
            (Some(l), Some(h)) => format!("{l}–{h}"),
            (Some(l), None) => format!("≥{l}"),
            (None, Some(h)) => format!("≤{h}"),
            (None, None) => String::new(),
        }
    }
}

/// Whether a person born on `birth_date` has reached the age `duration` (ISO 8601) on `on`.
/// An unreadable duration never matches, which `Catalog::validate` rules out at load time.
fn reached(birth_date: Date, duration: &str, on: Date) -> bool {
    match Some(duration)
        .filter(|d| d.starts_with('P'))
        .and_then(|d| Span::from_str(d).ok())
        .and_then(|span| birth_date.checked_add(span).ok())
    {
        Some(birthday) => on >= birthday,
        None => false,
    }
}

/// A test as the lab defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestDefinition {
    /// Local short code, unique across tests and calculations ("K", "HGB").
    pub code: String,
    /// Display name.
    pub name: String,
    /// LOINC number, empty when none is asserted.
    #[serde(default)]
    pub loinc: String,
    /// Bench or discipline: chemistry, hematology, urinalysis, …
    #[serde(default)]
    pub discipline: String,
    /// Preferred specimen ("serum or plasma").
    #[serde(default)]
    pub specimen: String,
    /// Collection container; tests sharing a container share a tube.
    #[serde(default)]
    pub container: String,
    /// UCUM unit ("" for coded results).
    #[serde(default)]
    pub unit: String,
    /// Numeric, coded, text or organism.
    pub result_type: ResultType,
    /// Coded results: the value set in display order.
    #[serde(default)]
    pub allowed_values: Vec<String>,
    /// Coded results: the values that are not flagged abnormal.
    #[serde(default)]
    pub normal_values: Vec<String>,
    /// Decimal places reported for numeric results.
    #[serde(default)]
    pub decimals: Option<u32>,
    /// Reference intervals by sex and age band.
    #[serde(default)]
    pub reference: Vec<ReferenceInterval>,
    /// Critical (panic) low: a result below it is LL.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub critical_low: Option<Decimal>,
    /// Critical (panic) high: a result above it is HH.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub critical_high: Option<Decimal>,
    /// Analytical measurement range, low end.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub amr_low: Option<Decimal>,
    /// Analytical measurement range, high end.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub amr_high: Option<Decimal>,
    /// Allowable total error, percent of target.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub tea_percent: Option<Decimal>,
    /// Allowable total error, absolute in the test's unit.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub tea_absolute: Option<Decimal>,
    /// Delta check: largest absolute change allowed within the window.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub delta_abs: Option<Decimal>,
    /// Delta check: largest percent change allowed within the window.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub delta_percent: Option<Decimal>,
    /// Delta check window in hours.
    #[serde(default)]
    pub delta_window_hours: Option<u32>,
    /// Set for calculated tests: how the value is derived from other results.
    #[serde(default)]
    pub calculation: Option<CalculationRule>,
    /// Whether the test can be ordered on its own (calculations cannot).
    #[serde(default = "yes")]
    pub orderable: bool,
}

fn yes() -> bool {
    true
}

/// How a calculated test is derived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalculationRule {
    /// The test codes (and the pseudo-inputs `age_years`, `sex`) it reads.
    pub inputs: Vec<String>,
    /// The formula, in the catalog's arithmetic (see [`Formula`]).
    pub formula: String,
    /// Named constants the formula uses; sex-specific ones end in `_female`/`_male`.
    #[serde(default)]
    pub coefficients: BTreeMap<String, f64>,
    /// Conditions that must hold for the value to be reported.
    #[serde(default)]
    pub valid_when: Vec<String>,
    /// What the report says when a condition fails.
    #[serde(default)]
    pub invalid_comment: Option<String>,
}

impl TestDefinition {
    /// The reference interval that applies to this patient for a specimen collected on
    /// `collected_on`: the first sex-specific match, else the first match for both sexes.
    pub fn interval_for(
        &self,
        sex: Sex,
        birth_date: Date,
        collected_on: Date,
    ) -> Option<&ReferenceInterval> {
        let applicable =
            || self.reference.iter().filter(move |r| r.applies_to(sex, birth_date, collected_on));
        applicable().find(|r| r.sex != "*").or_else(|| applicable().next())
    }

    /// The tube drawn for this test: the first container the catalog lists ("SST (gold)" from
    /// "SST (gold) or lithium heparin PST (light green)"). Tests with the same primary
    /// container share a tube.
    pub fn primary_container(&self) -> &str {
        let c = self.container.as_str();
        let end = [c.find(','), c.find(';'), c.find(" or ")]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(c.len());
        c[..end].trim()
    }

    /// Whether this test is computed from other results rather than measured.
    pub fn is_calculated(&self) -> bool {
        self.calculation.is_some()
    }
}

/// A named group of tests ordered together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Panel {
    /// Order code ("BMP").
    pub code: String,
    /// Display name.
    pub name: String,
    /// LOINC of the order panel, if any.
    #[serde(default)]
    pub loinc: String,
    /// Measured member tests.
    pub members: Vec<String>,
    /// Calculated tests produced when their inputs are present.
    #[serde(default)]
    pub calculated: Vec<String>,
}

/// Why a catalog could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum CatalogError {
    /// The TOML does not parse or a field has the wrong type.
    #[error("catalog file {file}: {message}")]
    Syntax {
        /// Which file.
        file: &'static str,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A definition is inconsistent (unknown member, bad age band, unparsable formula).
    #[error("catalog entry {code}: {message}")]
    Invalid {
        /// The test or panel code.
        code: String,
        /// What is wrong, and what to change.
        message: String,
    },
}

/// The tests and panels a lab offers.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tests: BTreeMap<String, TestDefinition>,
    panels: BTreeMap<String, Panel>,
}

#[derive(Deserialize)]
struct TestsFile {
    #[serde(default)]
    test: Vec<TestDefinition>,
}

#[derive(Deserialize)]
struct PanelsFile {
    #[serde(default)]
    panel: Vec<Panel>,
}

#[derive(Deserialize)]
struct CalculationEntry {
    code: String,
    name: String,
    #[serde(default)]
    loinc: String,
    inputs: Vec<String>,
    formula: String,
    #[serde(default)]
    coefficients: BTreeMap<String, f64>,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    decimals: Option<u32>,
    #[serde(default)]
    reference: Vec<ReferenceInterval>,
    #[serde(default)]
    valid_when: Vec<String>,
    #[serde(default)]
    invalid_comment: Option<String>,
}

#[derive(Deserialize)]
struct CalculationsFile {
    #[serde(default)]
    calc: Vec<CalculationEntry>,
}

impl Catalog {
    /// The catalog bundled with Cuvette.
    pub fn bundled() -> Catalog {
        // The bundled files are tested in this crate (`bundled_catalog_loads`), so this holds.
        Catalog::from_toml(DEFAULT_TESTS_TOML, DEFAULT_PANELS_TOML, DEFAULT_CALCULATIONS_TOML)
            .expect("the bundled catalog is valid")
    }

    /// Loads a catalog from the three TOML files and checks it is consistent.
    pub fn from_toml(
        tests: &str,
        panels: &str,
        calculations: &str,
    ) -> Result<Catalog, CatalogError> {
        let syntax =
            |file| move |e: toml::de::Error| CatalogError::Syntax { file, message: e.to_string() };
        let tests: TestsFile = toml::from_str(tests).map_err(syntax("tests.toml"))?;
        let panels: PanelsFile = toml::from_str(panels).map_err(syntax("panels.toml"))?;
        let calcs: CalculationsFile =
            toml::from_str(calculations).map_err(syntax("calculations.toml"))?;
        let mut catalog = Catalog::default();
        for test in tests.test {
            catalog.tests.insert(test.code.clone(), test);
        }
        for c in calcs.calc {
            let definition = TestDefinition {
                code: c.code.clone(),
                name: c.name,
                loinc: c.loinc,
                discipline: String::new(),
                specimen: String::new(),
                container: String::new(),
                unit: c.unit,
                result_type: ResultType::Numeric,
                allowed_values: vec![],
                normal_values: vec![],
                decimals: c.decimals,
                reference: c.reference,
                critical_low: None,
                critical_high: None,
                amr_low: None,
                amr_high: None,
                tea_percent: None,
                tea_absolute: None,
                delta_abs: None,
                delta_percent: None,
                delta_window_hours: None,
                calculation: Some(CalculationRule {
                    inputs: c.inputs,
                    formula: c.formula,
                    coefficients: c.coefficients,
                    valid_when: c.valid_when,
                    invalid_comment: c.invalid_comment,
                }),
                orderable: false,
            };
            catalog.tests.insert(c.code, definition);
        }
        // A calculation belongs to the discipline of its first measured input, so it appears
        // on the same bench worklist and report section.
        let disciplines: Vec<(String, String)> = catalog
            .tests
            .values()
            .filter_map(|t| {
                let rule = t.calculation.as_ref()?;
                let discipline = rule.inputs.iter().find_map(|i| {
                    catalog
                        .tests
                        .get(i)
                        .filter(|d| !d.discipline.is_empty())
                        .map(|d| d.discipline.clone())
                })?;
                Some((t.code.clone(), discipline))
            })
            .collect();
        for (code, discipline) in disciplines {
            if let Some(t) = catalog.tests.get_mut(&code) {
                t.discipline = discipline;
            }
        }
        for panel in panels.panel {
            catalog.panels.insert(panel.code.clone(), panel);
        }
        catalog.validate()?;
        Ok(catalog)
    }

    /// Checks what a supervisor's edit or a catalog file could get wrong.
    pub fn validate(&self) -> Result<(), CatalogError> {
        for test in self.tests.values() {
            validate_definition(test)?;
        }
        for panel in self.panels.values() {
            // Panels may list optional members the catalog does not define (marked TODO in the
            // bundled file); only the members that exist are ordered, so unknown ones are
            // dropped at order time, but a panel with no known member is an error.
            if !panel.members.iter().any(|m| self.tests.contains_key(m)) {
                return Err(CatalogError::Invalid {
                    code: panel.code.clone(),
                    message: "none of the panel's members is a test in the catalog".into(),
                });
            }
        }
        Ok(())
    }

    /// A test or calculation by code.
    pub fn test(&self, code: &str) -> Option<&TestDefinition> {
        self.tests.get(code)
    }

    /// A panel by code.
    pub fn panel(&self, code: &str) -> Option<&Panel> {
        self.panels.get(code)
    }

    /// Every test and calculation, by code.
    pub fn tests(&self) -> impl Iterator<Item = &TestDefinition> {
        self.tests.values()
    }

    /// Every panel, by code.
    pub fn panels(&self) -> impl Iterator<Item = &Panel> {
        self.panels.values()
    }

    /// Adds or replaces a test definition (a supervisor's edit or a stored version).
    pub fn insert(&mut self, definition: TestDefinition) {
        self.tests.insert(definition.code.clone(), definition);
    }

    /// Adds or replaces a panel.
    pub fn insert_panel(&mut self, panel: Panel) {
        self.panels.insert(panel.code.clone(), panel);
    }

    /// Expands order codes (tests and panels) into the measured tests to collect and the
    /// calculations to produce, without duplicates, in the order given. Unknown codes are
    /// returned as an error naming them all.
    pub fn expand_order(&self, codes: &[String]) -> Result<Vec<OrderedTest>, UnknownCodes> {
        let mut out: Vec<OrderedTest> = Vec::new();
        let mut unknown = Vec::new();
        let push = |code: &str, panel: Option<&str>, out: &mut Vec<OrderedTest>| {
            if !out.iter().any(|o| o.code == code) {
                out.push(OrderedTest { code: code.to_owned(), panel: panel.map(str::to_owned) });
            }
        };
        for raw in codes {
            let code = raw.trim().to_ascii_uppercase();
            if code.is_empty() {
                continue;
            }
            if let Some(panel) = self.panels.get(&code) {
                for member in panel.members.iter().chain(&panel.calculated) {
                    if self.tests.contains_key(member) {
                        push(member, Some(&panel.code), &mut out);
                    }
                }
            } else if let Some(test) = self.tests.get(&code).filter(|t| t.orderable) {
                push(&test.code, None, &mut out);
            } else {
                unknown.push(raw.trim().to_owned());
            }
        }
        if unknown.is_empty() { Ok(out) } else { Err(UnknownCodes(unknown)) }
    }
}

/// One test an order asks for, and the panel it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderedTest {
    /// The test or calculation code.
    pub code: String,
    /// The panel code, when ordered as part of a panel.
    pub panel: Option<String>,
}

/// Order codes that are neither a panel nor an orderable test.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown test or panel code: {}", .0.join(", "))]
pub struct UnknownCodes(pub Vec<String>);

/// Checks one definition on its own (used when a supervisor saves an edit).
pub fn validate_definition(test: &TestDefinition) -> Result<(), CatalogError> {
    let invalid = |message: String| CatalogError::Invalid { code: test.code.clone(), message };
    // Codes are typed at order entry, separated by commas or spaces, and matched in capitals.
    if test.code.is_empty()
        || test.code.len() > 32
        || !test.code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(invalid("the code must be 1 to 32 capital letters, digits or underscores, such as K or NEUT_PCT".into()));
    }
    if test.name.trim().is_empty() {
        return Err(invalid("the name must not be empty".into()));
    }
    for r in &test.reference {
        for age in [&r.age_min, &r.age_max].into_iter().flatten() {
            if !age.starts_with('P') || Span::from_str(age).is_err() {
                return Err(invalid(format!(
                    "age band {age:?} is not an ISO-8601 duration such as P18Y or P8D"
                )));
            }
        }
        if !matches!(r.sex.as_str(), "M" | "F" | "*") {
            return Err(invalid(format!("sex {:?} must be M, F or *", r.sex)));
        }
        if let (Some(l), Some(h)) = (r.low, r.high)
            && l > h
        {
            return Err(invalid(format!("reference low {l} is above high {h}")));
        }
    }
    if let (Some(l), Some(h)) = (test.critical_low, test.critical_high)
        && l >= h
    {
        return Err(invalid(format!("critical low {l} must be below critical high {h}")));
    }
    if let (Some(l), Some(h)) = (test.amr_low, test.amr_high)
        && l >= h
    {
        return Err(invalid(format!("measurement range low {l} must be below high {h}")));
    }
    if test.result_type == ResultType::Coded && test.allowed_values.is_empty() {
        return Err(invalid("a coded test needs its allowed values".into()));
    }
    if let Some(rule) = &test.calculation {
        Formula::parse(&rule.formula).map_err(|e| invalid(format!("formula: {e}")))?;
        for c in &rule.valid_when {
            // Conditions that are not arithmetic ("CREAT is IDMS-traceable") document a
            // precondition of the method; they are shown, not evaluated.
            let _ = Condition::parse(c);
        }
    }
    Ok(())
}

fn decimal_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Int(i64),
        Float(f64),
        Text(String),
    }
    let parsed = match Option::<Num>::deserialize(d)? {
        None => return Ok(None),
        Some(Num::Int(i)) => Decimal::from(i),
        // The shortest representation of the float is what the file said ("3.7", not
        // 3.70000000000000017763568394002504646778106689453125).
        Some(Num::Float(f)) => {
            Decimal::from_str(&f.to_string()).map_err(serde::de::Error::custom)?
        }
        Some(Num::Text(s)) if s.trim().is_empty() => return Ok(None),
        // A number written as text is read like any number a person types.
        Some(Num::Text(s)) => {
            crate::number::parse_entry(&s, crate::number::NumberRules::Plain)
                .map_err(serde::de::Error::custom)?
                .value
        }
    };
    Ok(Some(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn bundled_catalog_loads() {
        let catalog = Catalog::bundled();
        assert!(catalog.test("K").is_some());
        assert!(catalog.test("EGFR").unwrap().is_calculated());
        assert_eq!(catalog.test("EGFR").unwrap().discipline, "chemistry");
        assert!(catalog.panel("BMP").is_some());
    }

    #[test]
    fn potassium_interval_follows_age_bands_on_the_calendar() {
        let k = Catalog::bundled().test("K").unwrap().clone();
        let born = date(2026, 1, 1);
        let check = |on: Date, low: &str, high: &str| {
            let r = k.interval_for(Sex::Female, born, on).expect("an interval applies");
            assert_eq!(
                (r.low.unwrap().to_string(), r.high.unwrap().to_string()),
                (low.into(), high.into()),
                "on {on}"
            );
        };
        check(date(2026, 1, 1), "3.7", "5.9"); // day of birth: P0D inclusive
        check(date(2026, 1, 31), "3.7", "5.9"); // 30 days old: still under one month
        check(date(2026, 2, 1), "4.1", "5.3"); // one month exactly: the next band
        check(date(2027, 1, 1), "3.4", "4.7");
        check(date(2044, 1, 1), "3.5", "5.1");
    }

    #[test]
    fn sex_specific_interval_wins_over_the_shared_one() {
        let creat = Catalog::bundled().test("CREAT").unwrap().clone();
        let born = date(1980, 5, 5);
        let on = date(2026, 11, 24);
        assert_eq!(
            creat.interval_for(Sex::Male, born, on).unwrap().high.unwrap().to_string(),
            "1.35"
        );
        assert_eq!(
            creat.interval_for(Sex::Female, born, on).unwrap().high.unwrap().to_string(),
            "1.04"
        );
        // Unknown sex: no sex-specific interval may be chosen for an adult.
        assert!(creat.interval_for(Sex::Unknown, born, on).is_none());
    }

    #[test]
    fn panel_expands_to_members_and_calculations_without_duplicates() {
        let catalog = Catalog::bundled();
        let tests = catalog.expand_order(&["BMP".into(), "k".into(), "NA".into()]).unwrap();
        let codes: Vec<_> = tests.iter().map(|t| t.code.as_str()).collect();
        assert_eq!(codes, ["NA", "K", "CL", "CO2", "BUN", "CREAT", "GLU", "CA", "AGAP", "EGFR"]);
    }

    #[test]
    fn tests_share_a_tube_by_their_primary_container() {
        let catalog = Catalog::bundled();
        let tube = |code: &str| catalog.test(code).unwrap().primary_container().to_owned();
        assert_eq!(tube("NA"), "SST (gold)");
        assert_eq!(tube("GLU"), "SST (gold)");
        assert_eq!(tube("PLT"), tube("HGB"));
        assert_ne!(tube("PT"), tube("HGB"));
    }

    #[test]
    fn unknown_order_codes_are_named() {
        let err = Catalog::bundled()
            .expand_order(&["BMP".into(), "XYZ".into(), "EGFR".into()])
            .unwrap_err();
        // A calculation cannot be ordered on its own: it comes with its inputs.
        assert_eq!(err.to_string(), "unknown test or panel code: XYZ, EGFR");
    }

    #[test]
    fn a_bad_age_band_is_refused_with_the_fix() {
        let mut k = Catalog::bundled().test("K").unwrap().clone();
        k.reference[0].age_min = Some("18 years".into());
        let err = validate_definition(&k).unwrap_err();
        assert!(err.to_string().contains("ISO-8601 duration such as P18Y"), "{err}");
    }
}
