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

use crate::calculation::{Condition, Formula, is_patient_input, undeclared_names};
use crate::partition::PartitionGap;
use crate::patient::Sex;
use crate::staff::Complexity;

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
    /// CLIA complexity of the lab's method for this test, which sets who may perform it
    /// (`staff::may_perform`); high when not stated.
    #[serde(default)]
    pub complexity: crate::staff::Complexity,
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
    /// Critical limits for particular ages and sexes (a newborn's potassium, a child's
    /// glucose), written as intervals whose `low` and `high` are the critical low and high.
    /// Where one applies, its limits replace `critical_low`/`critical_high` (a side it leaves
    /// out has no critical limit at that age); at every other age those apply.
    #[serde(default)]
    pub critical_by_age: Vec<ReferenceInterval>,
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
    /// Whether the test can be ordered on its own. Ordering a calculation orders the measured
    /// tests it is calculated from with it (see [`Catalog::expand_order`]).
    #[serde(default = "yes")]
    pub orderable: bool,
}

fn yes() -> bool {
    true
}

/// How a calculated test is derived.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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

    /// The critical limits (low, high) for this patient: those of the age partition that
    /// applies (sex-specific first, as for intervals), else the test's own.
    pub fn critical_for(
        &self,
        sex: Sex,
        birth_date: Date,
        collected_on: Date,
    ) -> (Option<Decimal>, Option<Decimal>) {
        let applicable = || {
            self.critical_by_age.iter().filter(move |r| r.applies_to(sex, birth_date, collected_on))
        };
        match applicable().find(|r| r.sex != "*").or_else(|| applicable().next()) {
            Some(partition) => (partition.low, partition.high),
            None => (self.critical_low, self.critical_high),
        }
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
    /// A test's age and sex partitions leave a gap or overlap, or a critical limit lies inside
    /// a reference interval (see [`crate::partition`]).
    #[error("{0}")]
    Partitions(Box<PartitionGap>),
}

/// The tests and panels a lab offers.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tests: BTreeMap<String, TestDefinition>,
    panels: BTreeMap<String, Panel>,
}

/// Tests, calculations and panels read from catalog files, before they are checked as a
/// catalog (a lab's import may hold only the tests it changes).
#[derive(Debug, Clone, Default)]
pub struct CatalogFile {
    /// Measured tests and calculations.
    pub tests: Vec<TestDefinition>,
    /// Panels.
    pub panels: Vec<Panel>,
}

impl CatalogFile {
    /// Reads one TOML file holding any of `[[test]]`, `[[calc]]` and `[[panel]]` (what
    /// [`Catalog::to_toml`] writes, or the bundled files pasted together).
    /// A key the catalog does not know is refused, naming it: a misspelt limit
    /// (`critcal_low`) would otherwise be dropped without a word.
    pub fn parse(text: &str) -> Result<CatalogFile, CatalogError> {
        if let Ok(table) = text.parse::<toml::Table>() {
            unknown_keys(&table)?;
        }
        CatalogFile::read(("catalog file", text), ("catalog file", text), ("catalog file", text))
    }

    fn read(
        (tests_name, tests): (&'static str, &str),
        (panels_name, panels): (&'static str, &str),
        (calcs_name, calculations): (&'static str, &str),
    ) -> Result<CatalogFile, CatalogError> {
        let syntax =
            |file| move |e: toml::de::Error| CatalogError::Syntax { file, message: e.to_string() };
        let tests: TestsFile = toml::from_str(tests).map_err(syntax(tests_name))?;
        let panels: PanelsFile = toml::from_str(panels).map_err(syntax(panels_name))?;
        let calcs: CalculationsFile = toml::from_str(calculations).map_err(syntax(calcs_name))?;
        let mut file = CatalogFile { tests: tests.test, panels: panels.panel };
        file.tests.extend(calcs.calc.into_iter().map(CalculationEntry::into_definition));
        // The same code twice would leave one of them silently unused.
        let mut codes: Vec<&str> = file.tests.iter().map(|t| t.code.as_str()).collect();
        codes.sort_unstable();
        if let Some(pair) = codes.windows(2).find(|w| w[0] == w[1]) {
            return Err(CatalogError::Invalid {
                code: pair[0].to_owned(),
                message: "the code is defined more than once: keep one definition".into(),
            });
        }
        let mut panel_codes: Vec<&str> = file.panels.iter().map(|p| p.code.as_str()).collect();
        panel_codes.sort_unstable();
        if let Some(pair) = panel_codes.windows(2).find(|w| w[0] == w[1]) {
            return Err(CatalogError::Invalid {
                code: pair[0].to_owned(),
                message: "the panel is defined more than once: keep one definition".into(),
            });
        }
        Ok(file)
    }
}

/// The keys each kind of entry may carry: what Cuvette reads, and the provenance notes the
/// bundled files keep beside it (read by people, not by Cuvette).
const TEST_KEYS: &[&str] = &[
    "code",
    "name",
    "loinc",
    "discipline",
    "complexity",
    "specimen",
    "container",
    "unit",
    "result_type",
    "allowed_values",
    "normal_values",
    "decimals",
    "reference",
    "critical_low",
    "critical_high",
    "critical_by_age",
    "amr_low",
    "amr_high",
    "tea_percent",
    "tea_absolute",
    "delta_abs",
    "delta_percent",
    "delta_window_hours",
    "calculation",
    "orderable",
    "loinc_name",
    "loinc_verified",
    "ref_source",
    "tea_source",
    "tea_verified",
    "amr_source",
    "critical_source",
    "note",
    "source",
];
const CALC_KEYS: &[&str] = &[
    "code",
    "name",
    "loinc",
    "discipline",
    "complexity",
    "amr_low",
    "amr_high",
    "inputs",
    "formula",
    "coefficients",
    "unit",
    "decimals",
    "reference",
    "critical_low",
    "critical_high",
    "critical_by_age",
    "valid_when",
    "invalid_comment",
    "orderable",
    "critical_source",
    "example",
    "examples",
    "formula_si",
    "loinc_name",
    "loinc_si",
    "loinc_verified",
    "note",
    "ref_source",
    "report_rule",
    "source",
];
const PANEL_KEYS: &[&str] = &[
    "code",
    "name",
    "loinc",
    "members",
    "calculated",
    "container",
    "loinc_name",
    "loinc_verified",
    "optional",
    "reflex",
    "specimen",
];
const INTERVAL_KEYS: &[&str] = &["sex", "age_min", "age_max", "low", "high"];

fn unknown_keys(file: &toml::Table) -> Result<(), CatalogError> {
    for (kind, known) in [("test", TEST_KEYS), ("calc", CALC_KEYS), ("panel", PANEL_KEYS)] {
        let Some(toml::Value::Array(entries)) = file.get(kind) else { continue };
        for entry in entries.iter().filter_map(toml::Value::as_table) {
            let code = entry.get("code").and_then(toml::Value::as_str).unwrap_or("?").to_owned();
            let intervals: Vec<&toml::Table> = ["reference", "critical_by_age"]
                .into_iter()
                .filter_map(|key| match entry.get(key) {
                    Some(toml::Value::Array(list)) => Some(list),
                    _ => None,
                })
                .flatten()
                .filter_map(toml::Value::as_table)
                .collect();
            let unknown = entry.keys().find(|k| !known.contains(&k.as_str())).or_else(|| {
                intervals
                    .iter()
                    .flat_map(|r| r.keys())
                    .find(|k| !INTERVAL_KEYS.contains(&k.as_str()))
            });
            if let Some(key) = unknown {
                return Err(CatalogError::Invalid {
                    code,
                    message: format!(
                        "{key} is not a field of a catalog {kind}: check its spelling, since a misspelt limit would be left out"
                    ),
                });
            }
        }
    }
    Ok(())
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
    /// The bench, when the lab set it; else it follows the inputs (`Catalog::with`).
    #[serde(default)]
    discipline: String,
    /// Written with the discipline by an export, so a lab's bench keeps its complexity.
    #[serde(default)]
    complexity: Option<Complexity>,
    #[serde(default, deserialize_with = "decimal_opt")]
    amr_low: Option<Decimal>,
    #[serde(default, deserialize_with = "decimal_opt")]
    amr_high: Option<Decimal>,
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
    #[serde(default, deserialize_with = "decimal_opt")]
    critical_low: Option<Decimal>,
    #[serde(default, deserialize_with = "decimal_opt")]
    critical_high: Option<Decimal>,
    #[serde(default)]
    critical_by_age: Vec<ReferenceInterval>,
    #[serde(default)]
    valid_when: Vec<String>,
    #[serde(default)]
    invalid_comment: Option<String>,
    #[serde(default = "yes")]
    orderable: bool,
}

#[derive(Deserialize)]
struct CalculationsFile {
    #[serde(default)]
    calc: Vec<CalculationEntry>,
}

impl CalculationEntry {
    /// The calculated test this entry defines; its discipline follows its inputs
    /// ([`Catalog::with`]).
    fn into_definition(self) -> TestDefinition {
        let c = self;
        TestDefinition {
            code: c.code,
            name: c.name,
            loinc: c.loinc,
            // Unless the file states them (a lab's export), the discipline of its first
            // measured input and the most complex of its inputs (`Catalog::with`).
            discipline: c.discipline,
            complexity: c.complexity.unwrap_or_default(),
            specimen: String::new(),
            container: String::new(),
            unit: c.unit,
            result_type: ResultType::Numeric,
            allowed_values: vec![],
            normal_values: vec![],
            decimals: c.decimals,
            reference: c.reference,
            critical_low: c.critical_low,
            critical_high: c.critical_high,
            critical_by_age: c.critical_by_age,
            amr_low: c.amr_low,
            amr_high: c.amr_high,
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
            orderable: c.orderable,
        }
    }
}

/// What an exported catalog file says first.
const EXPORT_HEADER: &str = "\
# Test catalog exported from Cuvette: [[test]] entries in the shape of the bundled tests.toml,
# [[calc]] of calculations.toml, [[panel]] of panels.toml. Every laboratory must verify its own
# reference intervals, critical limits and measurement ranges before reporting with them.
";

#[derive(Serialize)]
struct ExportFile<'a> {
    test: Vec<TestOut<'a>>,
    calc: Vec<CalcOut<'a>>,
    panel: Vec<&'a Panel>,
}

/// A number written as TOML writes numbers: an integer when it is whole, else a float whose
/// shortest form is the decimal's (the loader reads it back as that decimal).
#[derive(Clone, Copy)]
struct Number(Decimal);

impl Serialize for Number {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use rust_decimal::prelude::ToPrimitive;
        match (self.0.scale(), self.0.to_i64(), self.0.to_f64()) {
            (0, Some(i), _) => s.serialize_i64(i),
            (_, _, Some(f)) => s.serialize_f64(f),
            _ => s.serialize_str(&self.0.to_string()),
        }
    }
}

fn number(d: Option<Decimal>) -> Option<Number> {
    d.map(Number)
}

#[derive(Serialize)]
struct IntervalOut<'a> {
    sex: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    age_min: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    age_max: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    low: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    high: Option<Number>,
}

impl<'a> From<&'a ReferenceInterval> for IntervalOut<'a> {
    fn from(r: &'a ReferenceInterval) -> IntervalOut<'a> {
        IntervalOut {
            sex: &r.sex,
            age_min: r.age_min.as_deref(),
            age_max: r.age_max.as_deref(),
            low: number(r.low),
            high: number(r.high),
        }
    }
}

#[derive(Serialize)]
struct TestOut<'a> {
    code: &'a str,
    name: &'a str,
    loinc: &'a str,
    discipline: &'a str,
    complexity: Complexity,
    specimen: &'a str,
    container: &'a str,
    unit: &'a str,
    result_type: ResultType,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    allowed_values: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    normal_values: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    decimals: Option<u32>,
    reference: Vec<IntervalOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    critical_low: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    critical_high: Option<Number>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    critical_by_age: Vec<IntervalOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amr_low: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amr_high: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tea_percent: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tea_absolute: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta_abs: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta_percent: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta_window_hours: Option<u32>,
    orderable: bool,
}

impl<'a> From<&'a TestDefinition> for TestOut<'a> {
    fn from(t: &'a TestDefinition) -> TestOut<'a> {
        TestOut {
            code: &t.code,
            name: &t.name,
            loinc: &t.loinc,
            discipline: &t.discipline,
            complexity: t.complexity,
            specimen: &t.specimen,
            container: &t.container,
            unit: &t.unit,
            result_type: t.result_type,
            allowed_values: &t.allowed_values,
            normal_values: &t.normal_values,
            decimals: t.decimals,
            reference: t.reference.iter().map(IntervalOut::from).collect(),
            critical_low: number(t.critical_low),
            critical_high: number(t.critical_high),
            critical_by_age: t.critical_by_age.iter().map(IntervalOut::from).collect(),
            amr_low: number(t.amr_low),
            amr_high: number(t.amr_high),
            tea_percent: number(t.tea_percent),
            tea_absolute: number(t.tea_absolute),
            delta_abs: number(t.delta_abs),
            delta_percent: number(t.delta_percent),
            delta_window_hours: t.delta_window_hours,
            orderable: t.orderable,
        }
    }
}

#[derive(Serialize)]
struct CalcOut<'a> {
    code: &'a str,
    name: &'a str,
    loinc: &'a str,
    // The bench, its complexity and a measurement range a lab set on a calculation are
    // written out, so an import does not put them back to what the inputs imply.
    #[serde(skip_serializing_if = "str::is_empty")]
    discipline: &'a str,
    complexity: Complexity,
    #[serde(skip_serializing_if = "Option::is_none")]
    amr_low: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amr_high: Option<Number>,
    inputs: &'a [String],
    formula: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    coefficients: &'a BTreeMap<String, f64>,
    unit: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    decimals: Option<u32>,
    reference: Vec<IntervalOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    critical_low: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    critical_high: Option<Number>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    critical_by_age: Vec<IntervalOut<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    valid_when: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    invalid_comment: Option<&'a str>,
    orderable: bool,
}

impl<'a> CalcOut<'a> {
    fn of(t: &'a TestDefinition) -> Option<CalcOut<'a>> {
        let rule = t.calculation.as_ref()?;
        Some(CalcOut {
            code: &t.code,
            name: &t.name,
            loinc: &t.loinc,
            discipline: &t.discipline,
            complexity: t.complexity,
            amr_low: number(t.amr_low),
            amr_high: number(t.amr_high),
            inputs: &rule.inputs,
            formula: &rule.formula,
            coefficients: &rule.coefficients,
            unit: &t.unit,
            decimals: t.decimals,
            reference: t.reference.iter().map(IntervalOut::from).collect(),
            critical_low: number(t.critical_low),
            critical_high: number(t.critical_high),
            critical_by_age: t.critical_by_age.iter().map(IntervalOut::from).collect(),
            valid_when: &rule.valid_when,
            invalid_comment: rule.invalid_comment.as_deref(),
            orderable: t.orderable,
        })
    }
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
        let file = CatalogFile::read(
            ("tests.toml", tests),
            ("panels.toml", panels),
            ("calculations.toml", calculations),
        )?;
        let catalog = Catalog::default().with(file);
        catalog.validate()?;
        Ok(catalog)
    }

    /// This catalog with the file's tests and panels added or replacing those of the same
    /// code (not yet checked: see [`Catalog::validate`]).
    pub fn with(&self, file: CatalogFile) -> Catalog {
        let mut catalog = self.clone();
        for test in file.tests {
            catalog.tests.insert(test.code.clone(), test);
        }
        for panel in file.panels {
            catalog.panels.insert(panel.code.clone(), panel);
        }
        // A calculation belongs to the discipline of its first measured input, so it appears
        // on the same bench worklist and report section, and is as complex as its most
        // complex measured input: whoever releases it must be qualified for what it is made of.
        let disciplines: Vec<(String, String, Complexity)> = catalog
            .tests
            .values()
            .filter(|t| t.discipline.is_empty())
            .filter_map(|t| {
                let rule = t.calculation.as_ref()?;
                let measured = || rule.inputs.iter().filter_map(|i| catalog.tests.get(i));
                let discipline =
                    measured().find(|d| !d.discipline.is_empty()).map(|d| d.discipline.clone())?;
                let complexity = measured().map(|d| d.complexity).max()?;
                Some((t.code.clone(), discipline, complexity))
            })
            .collect();
        for (code, discipline, complexity) in disciplines {
            if let Some(t) = catalog.tests.get_mut(&code) {
                t.discipline = discipline;
                t.complexity = complexity;
            }
        }
        catalog
    }

    /// The whole catalog as one TOML file in the shape of the bundled ones: `[[test]]` as in
    /// `tests.toml`, `[[calc]]` as in `calculations.toml`, `[[panel]]` as in `panels.toml`.
    /// [`CatalogFile::parse`] reads it back to the same catalog.
    pub fn to_toml(&self) -> String {
        let file = ExportFile {
            test: self.tests.values().filter(|t| !t.is_calculated()).map(TestOut::from).collect(),
            calc: self.tests.values().filter_map(CalcOut::of).collect(),
            panel: self.panels.values().collect(),
        };
        // Serialising plain strings, numbers and lists cannot fail.
        let body = toml::to_string(&file).unwrap_or_default();
        format!("{EXPORT_HEADER}\n{body}")
    }

    /// Checks what a supervisor's edit or a catalog file could get wrong.
    pub fn validate(&self) -> Result<(), CatalogError> {
        for test in self.tests.values() {
            validate_definition(test)?;
        }
        for test in self.tests.values() {
            self.validate_calculation_inputs(test)?;
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

    /// Checks what changed in a catalog: each of `tests` on its own and as a calculation that
    /// must be reachable, and each of `panels`. Every problem is returned, so an import names
    /// them all at once; the rest of the catalog is not judged again (a stored definition a
    /// newer rule would refuse does not block an unrelated change).
    pub fn check_changed(&self, tests: &[String], panels: &[String]) -> Vec<CatalogError> {
        let mut errors = Vec::new();
        for test in tests.iter().filter_map(|code| self.tests.get(code)) {
            match validate_definition(test) {
                Ok(()) => {}
                // Every problem with the ages, not only the first.
                Err(CatalogError::Partitions(_)) => errors.extend(
                    crate::partition::check(test)
                        .into_iter()
                        .map(|gap| CatalogError::Partitions(Box::new(gap))),
                ),
                Err(other) => errors.push(other),
            }
            errors.extend(self.validate_calculation_inputs(test).err());
        }
        for panel in panels.iter().filter_map(|code| self.panels.get(code)) {
            if !panel.members.iter().any(|m| self.tests.contains_key(m)) {
                errors.push(CatalogError::Invalid {
                    code: panel.code.clone(),
                    message: "none of the panel's members is a test in the catalog".into(),
                });
            }
        }
        errors
    }

    /// Checks that a calculation can be reached: every name its formula reads is declared, every
    /// input is the patient's age or sex or a test in this catalog, and it never reads itself,
    /// directly or through other calculations.
    fn validate_calculation_inputs(&self, test: &TestDefinition) -> Result<(), CatalogError> {
        let Some(rule) = &test.calculation else { return Ok(()) };
        let invalid = |message: String| CatalogError::Invalid { code: test.code.clone(), message };
        if let Some(name) = undeclared_names(rule).first() {
            return Err(invalid(format!(
                "the formula reads {name}, which is neither an input nor a coefficient: add it to one of them"
            )));
        }
        for input in rule.inputs.iter().filter(|i| !is_patient_input(i)) {
            if !self.tests.contains_key(input) {
                return Err(invalid(format!(
                    "input {input} is not a test in the catalog: add the test, or make it a coefficient if it is a setting of the lab"
                )));
            }
        }
        // Through the inputs that are themselves calculations, to the end of every path.
        let mut seen: Vec<&str> = Vec::new();
        let mut next: Vec<(&str, &str)> =
            rule.inputs.iter().map(|i| (test.code.as_str(), i.as_str())).collect();
        while let Some((reader, code)) = next.pop() {
            if code == test.code && reader == test.code {
                return Err(invalid(format!(
                    "it is calculated from itself: remove {code} from its inputs"
                )));
            }
            if code == test.code {
                return Err(invalid(format!(
                    "it is calculated from {reader}, which is calculated from it: remove the loop"
                )));
            }
            if seen.contains(&code) {
                continue;
            }
            seen.push(code);
            if let Some(r) = self.tests.get(code).and_then(|t| t.calculation.as_ref()) {
                next.extend(r.inputs.iter().map(|i| (code, i.as_str())));
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

    /// Expands order codes (tests, calculations and panels) into the measured tests to collect
    /// and the calculations to produce, without duplicates, in the order given. A calculation
    /// brings the tests it is calculated from (and theirs, for a calculation of calculations),
    /// before it, each marked with the panel that carried the calculation, or with the
    /// calculation itself when it was ordered on its own. Unknown codes are returned as an
    /// error naming them all.
    pub fn expand_order(&self, codes: &[String]) -> Result<Vec<OrderedTest>, UnknownCodes> {
        let mut out: Vec<OrderedTest> = Vec::new();
        let mut unknown = Vec::new();
        for raw in codes {
            let code = raw.trim().to_ascii_uppercase();
            if code.is_empty() {
                continue;
            }
            if let Some(panel) = self.panels.get(&code) {
                for member in panel.members.iter().chain(&panel.calculated) {
                    self.push_with_inputs(member, &panel.code, &mut out, 0);
                }
            } else if let Some(test) = self.tests.get(&code).filter(|t| t.orderable) {
                match test.calculation {
                    Some(_) => self.push_with_inputs(&test.code, &test.code, &mut out, 0),
                    None => push_once(&mut out, &test.code, None),
                }
            } else {
                unknown.push(raw.trim().to_owned());
            }
        }
        if unknown.is_empty() { Ok(out) } else { Err(UnknownCodes(unknown)) }
    }

    /// Pushes `code`, after the tests it is calculated from when it is a calculation, each
    /// marked as ordered with `group`. Codes not in the catalog (a panel's TODO members) are
    /// skipped; `depth` stops a loop that `validate` would have refused.
    fn push_with_inputs(&self, code: &str, group: &str, out: &mut Vec<OrderedTest>, depth: usize) {
        let Some(test) = self.tests.get(code) else { return };
        if depth > CALCULATION_DEPTH_MAX || out.iter().any(|o| o.code == code) {
            return;
        }
        if let Some(rule) = &test.calculation {
            for input in rule.inputs.iter().filter(|i| !is_patient_input(i)) {
                self.push_with_inputs(input, group, out, depth + 1);
            }
        }
        push_once(out, code, Some(group));
    }
}

/// How deep calculations of calculations may go when an order is expanded (OSMGAP reads OSMCALC:
/// two levels).
const CALCULATION_DEPTH_MAX: usize = 8;

fn push_once(out: &mut Vec<OrderedTest>, code: &str, group: Option<&str>) {
    if !out.iter().any(|o| o.code == code) {
        out.push(OrderedTest { code: code.to_owned(), panel: group.map(str::to_owned) });
    }
}

/// One test an order asks for, and the panel it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderedTest {
    /// The test or calculation code.
    pub code: String,
    /// The panel it was ordered with, or the calculation it was ordered for (a calculation
    /// ordered on its own carries its own code, as do the tests it is calculated from).
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
    for r in test.reference.iter().chain(&test.critical_by_age) {
        for age in [&r.age_min, &r.age_max].into_iter().flatten() {
            if !age.starts_with('P') || Span::from_str(age).is_err() {
                return Err(invalid(format!(
                    "age band {age:?} is not an ISO-8601 duration such as P18Y or P8D"
                )));
            }
            // A patient is registered with a date of birth and no time, so an age in hours
            // of life cannot be known: "PT48H" would silently be judged as some whole day.
            // Neonatal bands are given in days; a value published by hours of life (total
            // bilirubin) is left out and the result goes to a technologist.
            if age.contains('T') {
                return Err(invalid(format!(
                    "age band {age:?} counts hours, but ages are counted on the calendar from \
                     the date of birth: give it in days, such as P2D"
                )));
            }
        }
        if !matches!(r.sex.as_str(), "M" | "F" | "*") {
            return Err(invalid(format!("sex {:?} must be M, F or *", r.sex)));
        }
    }
    for r in &test.reference {
        if let (Some(l), Some(h)) = (r.low, r.high)
            && l > h
        {
            return Err(invalid(format!("reference low {l} is above high {h}")));
        }
    }
    for r in &test.critical_by_age {
        if let (Some(l), Some(h)) = (r.low, r.high)
            && l >= h
        {
            return Err(invalid(format!(
                "critical low {l} must be below critical high {h} ({})",
                crate::partition::Band::of(r).map(|b| b.to_string()).unwrap_or_default()
            )));
        }
    }
    if let (Some(l), Some(h)) = (test.critical_low, test.critical_high)
        && l >= h
    {
        return Err(invalid(format!("critical low {l} must be below critical high {h}")));
    }
    if let Some(gap) = crate::partition::check(test).into_iter().next() {
        return Err(CatalogError::Partitions(Box::new(gap)));
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
    fn an_exported_catalog_reads_back_as_the_same_catalog() {
        let bundled = Catalog::bundled();
        let text = bundled.to_toml();
        let read = Catalog::default().with(CatalogFile::parse(&text).expect("the export parses"));
        read.validate().expect("the export is a valid catalog");
        assert_eq!(read.tests().collect::<Vec<_>>(), bundled.tests().collect::<Vec<_>>());
        assert_eq!(read.panels().collect::<Vec<_>>(), bundled.panels().collect::<Vec<_>>());
        // In the bundled files' shape, numbers as numbers.
        assert!(
            text.contains("[[test]]") && text.contains("[[calc]]") && text.contains("[[panel]]")
        );
        assert!(text.contains("critical_high = 6.2"), "{}", &text[..2000]);
    }

    #[test]
    fn a_calculations_bench_and_measurement_range_set_by_the_lab_survive_export_and_import() {
        let mut file = CatalogFile::default();
        let mut egfr = Catalog::bundled().test("EGFR").unwrap().clone();
        egfr.discipline = "renal".into();
        egfr.complexity = Complexity::Moderate;
        egfr.amr_low = Some(Decimal::from(2));
        egfr.amr_high = Some(Decimal::from(120));
        file.tests.push(egfr.clone());
        let edited = Catalog::bundled().with(file);
        let read = Catalog::default()
            .with(CatalogFile::parse(&edited.to_toml()).expect("the export parses"));
        assert_eq!(read.test("EGFR"), Some(&egfr));
        // A calculation whose file states no bench still follows its inputs.
        assert_eq!(read.test("AGAP").unwrap().discipline, "chemistry");
    }

    #[test]
    fn a_misspelt_field_in_a_catalog_file_is_refused_naming_it() {
        let text =
            Catalog::bundled().to_toml().replacen("critical_high = 6.2", "critcal_high = 6.2", 1);
        assert_eq!(
            CatalogFile::parse(&text).unwrap_err().to_string(),
            "catalog entry K: critcal_high is not a field of a catalog test: check its spelling, since a misspelt limit would be left out"
        );
        let bundled = [DEFAULT_TESTS_TOML, DEFAULT_CALCULATIONS_TOML, DEFAULT_PANELS_TOML];
        for file in bundled {
            assert!(
                CatalogFile::parse(file).is_ok(),
                "the bundled files' provenance notes are known"
            );
        }
    }

    #[test]
    fn a_catalog_file_defining_a_code_twice_is_refused() {
        let twice = "[[test]]\ncode = \"K\"\nname = \"Potassium\"\nresult_type = \"numeric\"\n\n\
                     [[calc]]\ncode = \"K\"\nname = \"Potassium\"\ninputs = []\nformula = \"1\"\n";
        assert_eq!(
            CatalogFile::parse(twice).unwrap_err().to_string(),
            "catalog entry K: the code is defined more than once: keep one definition"
        );
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
            .expand_order(&["BMP".into(), "XYZ".into(), "EGFR".into(), "Q1".into()])
            .unwrap_err();
        assert_eq!(err.to_string(), "unknown test or panel code: XYZ, Q1");
    }

    /// (code, what it was ordered with) for each test an order expands to.
    fn expanded(codes: &[&str]) -> Vec<(String, Option<String>)> {
        let codes: Vec<String> = codes.iter().map(|c| (*c).to_owned()).collect();
        let tests = Catalog::bundled().expand_order(&codes).expect("known codes");
        tests.into_iter().map(|t| (t.code, t.panel)).collect()
    }

    fn with(group: Option<&str>, codes: &[&str]) -> Vec<(String, Option<String>)> {
        codes.iter().map(|c| ((*c).to_owned(), group.map(str::to_owned))).collect()
    }

    #[test]
    fn a_calculation_ordered_on_its_own_brings_the_tests_it_is_calculated_from() {
        assert_eq!(expanded(&["ldlf"]), with(Some("LDLF"), &["CHOL", "HDL", "TRIG", "LDLF"]));
        // The patient's age and sex are not tests to order.
        assert_eq!(expanded(&["EGFR"]), with(Some("EGFR"), &["CREAT", "EGFR"]));
        // A calculation of a calculation brings both, innermost inputs first.
        assert_eq!(
            expanded(&["OSMGAP"]),
            with(Some("OSMGAP"), &["OSMO", "NA", "GLU", "BUN", "OSMCALC", "OSMGAP"])
        );
        // The lab's ISI and mean normal PT are settings, not tests: INR needs only the PT.
        assert_eq!(expanded(&["INR_CALC"]), with(Some("INR_CALC"), &["PT", "INR_CALC"]));
    }

    #[test]
    fn a_test_already_on_the_order_is_not_ordered_again_for_a_calculation() {
        let mut expected = with(None, &["CHOL"]);
        expected.extend(with(Some("CHOLHDL"), &["HDL", "CHOLHDL"]));
        assert_eq!(expanded(&["CHOL", "CHOLHDL"]), expected);

        let mut expected = with(Some("LIPID"), &["CHOL", "HDL", "TRIG", "LDLS", "NONHDL"]);
        expected.extend(with(Some("LDLF"), &["LDLF"]));
        assert_eq!(expanded(&["LIPID", "LDLF"]), expected);
    }

    #[test]
    fn panels_carry_the_calculations_labs_expect() {
        let carries = |panel: &str, calculation: &str| {
            expanded(&[panel]).iter().any(|(code, _)| code == calculation)
        };
        for (panel, calculation) in [
            ("LIPID", "LDLS"),
            ("LIPID", "NONHDL"),
            ("CMP", "CACORR"),
            ("CMP", "GLOB"),
            ("CMP", "AGRATIO"),
            ("MANDIFF", "ANC"),
            ("PTINR", "INR_CALC"),
            ("COAG", "INR_CALC"),
            ("IRON", "TSAT"),
        ] {
            assert!(carries(panel, calculation), "{panel} does not carry {calculation}");
        }
        // Every calculation a panel carries has all its inputs on the panel.
        let catalog = Catalog::bundled();
        for panel in catalog.panels() {
            let codes: Vec<String> = expanded(&[&panel.code]).into_iter().map(|(c, _)| c).collect();
            for code in &panel.calculated {
                let rule = catalog.test(code).and_then(|t| t.calculation.as_ref()).unwrap();
                for input in rule.inputs.iter().filter(|i| !is_patient_input(i)) {
                    assert!(codes.contains(input), "{}: {code} lacks {input}", panel.code);
                }
            }
        }
    }

    #[test]
    fn every_input_of_every_calculation_is_in_the_catalog() {
        let catalog = Catalog::bundled();
        let mut calculations = 0;
        for test in catalog.tests() {
            let Some(rule) = &test.calculation else { continue };
            calculations += 1;
            assert!(test.orderable, "{} cannot be ordered", test.code);
            assert_eq!(undeclared_names(rule), Vec::<String>::new(), "{}", test.code);
            for input in rule.inputs.iter().filter(|i| !is_patient_input(i)) {
                assert!(catalog.test(input).is_some(), "{}: no test {input}", test.code);
            }
        }
        assert_eq!(calculations, 19);
    }

    #[test]
    fn a_calculation_that_cannot_be_reached_is_refused_with_the_fix() {
        let refused = |edit: &dyn Fn(&mut Catalog)| {
            let mut catalog = Catalog::bundled();
            edit(&mut catalog);
            catalog.validate().unwrap_err().to_string()
        };
        let edit_rule = |code: &'static str, change: fn(&mut CalculationRule)| {
            move |catalog: &mut Catalog| {
                let mut test = catalog.test(code).unwrap().clone();
                change(test.calculation.as_mut().unwrap());
                catalog.insert(test);
            }
        };
        assert_eq!(
            refused(&edit_rule("INR_CALC", |r| {
                r.coefficients.remove("ISI");
            })),
            "catalog entry INR_CALC: the formula reads ISI, which is neither an input nor a coefficient: add it to one of them"
        );
        assert_eq!(
            refused(&edit_rule("ANC", |r| r.inputs.push("NEUT_META_PCT".into()))),
            "catalog entry ANC: input NEUT_META_PCT is not a test in the catalog: add the test, or make it a coefficient if it is a setting of the lab"
        );
        assert_eq!(
            refused(&edit_rule("OSMCALC", |r| r.inputs.push("OSMGAP".into()))),
            "catalog entry OSMCALC: it is calculated from OSMGAP, which is calculated from it: remove the loop"
        );
        assert_eq!(
            refused(&edit_rule("GLOB", |r| r.inputs.push("GLOB".into()))),
            "catalog entry GLOB: it is calculated from itself: remove GLOB from its inputs"
        );
    }

    #[test]
    fn a_bad_age_band_is_refused_with_the_fix() {
        let mut k = Catalog::bundled().test("K").unwrap().clone();
        k.reference[0].age_min = Some("18 years".into());
        let err = validate_definition(&k).unwrap_err();
        assert!(err.to_string().contains("ISO-8601 duration such as P18Y"), "{err}");
    }

    #[test]
    fn an_age_band_in_hours_of_life_is_refused_because_the_birth_time_is_not_known() {
        let mut k = Catalog::bundled().test("K").unwrap().clone();
        k.reference[0].age_max = Some("PT48H".into());
        let err = validate_definition(&k).unwrap_err();
        assert!(err.to_string().contains("give it in days, such as P2D"), "{err}");
        k.reference[0].age_max = Some("P2D".into());
        k.reference[1].age_min = Some("P2D".into()); // the next partition follows on
        assert_eq!(validate_definition(&k), Ok(()));
    }

    #[test]
    fn a_neonatal_band_in_days_holds_from_the_day_it_names_both_sexes() {
        // K 0 days–1 month: 3.7–5.9; 1 month–1 year: 4.1–5.3 (bundled catalog). One calendar
        // month after a birth on 20 October is 20 November: the day before is still neonatal.
        let k = Catalog::bundled().test("K").unwrap().clone();
        let born = date(2026, 10, 20);
        for sex in [Sex::Female, Sex::Male] {
            let on = |d| k.interval_for(sex, born, d).map(ReferenceInterval::display);
            assert_eq!(on(date(2026, 10, 20)).as_deref(), Some("3.7–5.9"), "day of birth");
            assert_eq!(on(date(2026, 11, 19)).as_deref(), Some("3.7–5.9"), "one day short");
            assert_eq!(on(date(2026, 11, 20)).as_deref(), Some("4.1–5.3"), "one month");
            assert_eq!(on(date(2026, 10, 19)), None, "collected before birth");
        }
    }
}
