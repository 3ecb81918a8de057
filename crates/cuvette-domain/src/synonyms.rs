//! Synonyms of coded results: the words instruments and people write for a catalog test's
//! coded values ("NEG", "neg", "not detected" for Negative; "1+" for a dipstick's Small).
//!
//! A synonym belongs to one test, because the same word means different values on different
//! tests (a urine protein pad's "1+" is 30 mg/dL, a blood pad's "1+" is Small). Text is
//! compared after trimming, in lower case, with runs of whitespace read as one space. A
//! synonym never stands for a value its test no longer lists: such a result is kept as sent
//! and flagged invalid, like any other unknown text.

use std::collections::HashMap;

use crate::catalog::{Catalog, ResultType, TestDefinition};

/// The longest synonym accepted (characters).
pub const SYNONYM_LEN_MAX: usize = 100;

/// The form a text is compared in: trimmed, lower case, whitespace runs as one space.
pub fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// The synonyms in force, by test code, each mapping a normalised text to a coded value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synonyms {
    by_test: HashMap<String, HashMap<String, String>>,
}

impl Synonyms {
    /// Adds one synonym (a later one of the same text replaces an earlier one).
    pub fn insert(&mut self, test: &str, synonym: &str, coded_value: &str) {
        self.by_test
            .entry(test.to_owned())
            .or_default()
            .insert(normalize(synonym), coded_value.to_owned());
    }

    /// Whether no test has a synonym.
    pub fn is_empty(&self) -> bool {
        self.by_test.is_empty()
    }

    /// The catalog's coded value `text` stands for on `test`: the value itself when `text`
    /// is one of the test's values (whatever its case), else the value its synonym names,
    /// provided the test still lists that value. `None` for any other text, and for tests
    /// that are not coded.
    pub fn coded_value<'t>(&self, test: &'t TestDefinition, text: &str) -> Option<&'t str> {
        if test.result_type != ResultType::Coded {
            return None;
        }
        let wanted = normalize(text);
        if let Some(value) = test.allowed_values.iter().find(|v| normalize(v) == wanted) {
            return Some(value);
        }
        let target = self.by_test.get(&test.code)?.get(&wanted)?;
        test.allowed_values.iter().find(|v| *v == target).map(String::as_str)
    }
}

/// Why a synonym cannot be added to a test.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SynonymRefusal {
    /// The test's results are not coded.
    #[error("{test} is not reported as a coded value, so it takes no synonyms")]
    NotCoded {
        /// The test code.
        test: String,
    },
    /// Nothing but whitespace was typed.
    #[error("type the text the instrument or the bench writes")]
    Empty,
    /// Longer than [`SYNONYM_LEN_MAX`].
    #[error("the synonym is {len} characters long; the limit is {max}")]
    TooLong {
        /// Characters given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is not one of the test's coded values.
    #[error("{value:?} is not one of the values of {test}: choose one of {allowed}")]
    UnknownValue {
        /// The value asked for.
        value: String,
        /// The test code.
        test: String,
        /// The test's values, comma separated.
        allowed: String,
    },
    /// The text is itself one of the test's values: it can only mean that value.
    #[error("{synonym:?} is itself a value of {test}; it cannot stand for {value:?}")]
    IsAValue {
        /// The synonym.
        synonym: String,
        /// The test code.
        test: String,
        /// The value it was to stand for.
        value: String,
    },
}

/// Checks a synonym before it is saved for `test`: a coded test, a text of at most
/// [`SYNONYM_LEN_MAX`] characters that is not already another of the test's values, and a
/// value the test lists. Returns the value in the catalog's spelling.
pub fn check(
    test: &TestDefinition,
    synonym: &str,
    coded_value: &str,
) -> Result<String, SynonymRefusal> {
    if test.result_type != ResultType::Coded {
        return Err(SynonymRefusal::NotCoded { test: test.code.clone() });
    }
    let text = normalize(synonym);
    if text.is_empty() {
        return Err(SynonymRefusal::Empty);
    }
    let len = text.chars().count();
    if len > SYNONYM_LEN_MAX {
        return Err(SynonymRefusal::TooLong { len, max: SYNONYM_LEN_MAX });
    }
    let value = normalize(coded_value);
    let Some(value) = test.allowed_values.iter().find(|v| normalize(v) == value) else {
        return Err(SynonymRefusal::UnknownValue {
            value: coded_value.trim().to_owned(),
            test: test.code.clone(),
            allowed: test.allowed_values.join(", "),
        });
    };
    if test.allowed_values.iter().any(|v| normalize(v) == text) {
        return Err(SynonymRefusal::IsAValue {
            synonym: synonym.trim().to_owned(),
            test: test.code.clone(),
            value: value.clone(),
        });
    }
    Ok(value.clone())
}

/// Words instruments write for a value, wherever a coded test lists that value.
const BY_VALUE: &[(&str, &[&str])] = &[
    ("Negative", &["NEG", "-", "not detected", "ND"]),
    ("Positive", &["POS", "+", "detected", "DET"]),
    ("Trace", &["TR", "+-", "±"]),
    ("Nonreactive", &["NR", "non-reactive", "non reactive", "NEG", "negative"]),
    ("Reactive", &["REA", "POS", "positive"]),
    ("Not detected", &["ND", "NEG", "negative", "not det"]),
    ("Detected", &["DET", "POS", "positive"]),
    ("None seen", &["none", "NS", "neg", "negative"]),
    ("Clear", &["CLR"]),
];

/// Dipstick grades (1+ … 4+) per pad, as the common strip charts print them (Siemens
/// Multistix, Roche Combur: blood and leukocytes Small/Moderate/Large = 1+/2+/3+; protein
/// 30/100/300/≥2000 mg/dL = 1+…4+; glucose 100 mg/dL is trace, 250/500/1000/≥2000 = 1+…4+;
/// ketones Small (15)/Moderate (40)/Large (80)/Large (160) = 1+…4+). Strips differ by brand:
/// a lab whose strip grades differently removes these on the test's page.
const GRADES: &[(&str, &[(&str, &str)])] = &[
    ("UBLD", &[("1+", "Small"), ("2+", "Moderate"), ("3+", "Large")]),
    ("ULEU", &[("1+", "Small"), ("2+", "Moderate"), ("3+", "Large")]),
    ("UBIL", &[("1+", "Small"), ("2+", "Moderate"), ("3+", "Large")]),
    ("UPRO", &[("1+", "30"), ("2+", "100"), ("3+", "300"), ("4+", ">=2000")]),
    (
        "UGLU",
        &[
            ("trace", "100"),
            ("TR", "100"),
            ("1+", "250"),
            ("2+", "500"),
            ("3+", "1000"),
            ("4+", ">=2000"),
        ],
    ),
    (
        "UKET",
        &[
            ("trace", "Trace (5)"),
            ("TR", "Trace (5)"),
            ("1+", "Small (15)"),
            ("2+", "Moderate (40)"),
            ("3+", "Large (80)"),
            ("4+", "Large (160)"),
        ],
    ),
];

/// The synonyms a lab starts with for the coded tests of `catalog`: (test code, synonym,
/// coded value), each a synonym [`check`] accepts. Only tests in the catalog and values
/// they list get one.
pub fn defaults(catalog: &Catalog) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for test in catalog.tests().filter(|t| t.result_type == ResultType::Coded) {
        let mut add = |synonym: &str, value: &str| {
            let taken =
                out.iter().any(|(t, s, _)| *t == test.code && normalize(s) == normalize(synonym));
            if !taken && let Ok(value) = check(test, synonym, value) {
                out.push((test.code.clone(), synonym.to_owned(), value));
            }
        };
        if let Some((_, grades)) = GRADES.iter().find(|(code, _)| *code == test.code) {
            for (synonym, value) in *grades {
                add(synonym, value);
            }
        }
        for (value, synonyms) in BY_VALUE {
            if test.allowed_values.iter().any(|v| v == value) {
                for synonym in *synonyms {
                    add(synonym, value);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled_with_defaults() -> (Catalog, Synonyms) {
        let catalog = Catalog::bundled();
        let mut synonyms = Synonyms::default();
        for (test, synonym, value) in defaults(&catalog) {
            synonyms.insert(&test, &synonym, &value);
        }
        (catalog, synonyms)
    }

    fn check_map(test: &str, sent: &str, expected: Option<&str>) {
        let (catalog, synonyms) = bundled_with_defaults();
        let def = catalog.test(test).unwrap();
        assert_eq!(synonyms.coded_value(def, sent), expected, "{test} {sent:?}");
    }

    #[test]
    fn the_words_urinalysis_analyzers_write_read_as_the_catalogs_values() {
        check_map("UNIT", "NEG", Some("Negative"));
        check_map("UNIT", "  neg ", Some("Negative"));
        check_map("UNIT", "Not  Detected", Some("Negative"));
        check_map("UNIT", "POS", Some("Positive"));
        check_map("UNIT", "positive", Some("Positive"));
        check_map("UBLD", "TR", Some("Trace"));
        check_map("UBLD", "2+", Some("Moderate"));
        check_map("UPRO", "1+", Some("30"));
        check_map("UPRO", "4+", Some(">=2000"));
        check_map("UGLU", "trace", Some("100"));
        check_map("UKET", "Trace", Some("Trace (5)"));
        check_map("HBSAG", "NR", Some("Nonreactive"));
        check_map("MRSA", "NEG", Some("Not detected"));
    }

    #[test]
    fn unknown_text_and_text_for_other_kinds_of_test_stand_for_nothing() {
        check_map("UNIT", "purple", None);
        check_map("UNIT", "1+", None);
        check_map("UPRO", "5+", None);
        check_map("NA", "NEG", None);
    }

    #[test]
    fn a_synonym_for_a_value_the_test_no_longer_lists_stands_for_nothing() {
        let (catalog, mut synonyms) = bundled_with_defaults();
        let mut unit = catalog.test("UNIT").unwrap().clone();
        synonyms.insert("UNIT", "weak", "Weakly positive");
        unit.allowed_values.push("Weakly positive".into());
        assert_eq!(synonyms.coded_value(&unit, "WEAK"), Some("Weakly positive"));
        unit.allowed_values.pop();
        assert_eq!(synonyms.coded_value(&unit, "WEAK"), None);
    }

    #[test]
    fn every_default_is_one_the_lab_could_have_saved_and_means_one_value() {
        let catalog = Catalog::bundled();
        let all = defaults(&catalog);
        assert!(all.len() > 100, "{} defaults", all.len());
        for (test, synonym, value) in &all {
            let def = catalog.test(test).unwrap();
            assert_eq!(check(def, synonym, value).as_deref(), Ok(value.as_str()));
            let same =
                all.iter().filter(|(t, s, _)| t == test && normalize(s) == normalize(synonym));
            assert_eq!(same.count(), 1, "{test} {synonym}");
        }
        for coded in catalog.tests().filter(|t| t.result_type == ResultType::Coded) {
            if coded.allowed_values.iter().any(|v| v == "Negative") {
                assert!(
                    all.iter().any(|(t, s, _)| *t == coded.code && s == "NEG"),
                    "{}",
                    coded.code
                );
            }
        }
    }

    #[test]
    fn a_synonym_is_refused_when_it_could_mislead() {
        let catalog = Catalog::bundled();
        let unit = catalog.test("UNIT").unwrap();
        assert_eq!(check(unit, " pos ", "positive"), Ok("Positive".to_owned()));
        assert_eq!(
            check(unit, "Positive", "Negative").unwrap_err().to_string(),
            "\"Positive\" is itself a value of UNIT; it cannot stand for \"Negative\""
        );
        assert_eq!(
            check(unit, "weak", "Weak").unwrap_err().to_string(),
            "\"Weak\" is not one of the values of UNIT: choose one of Negative, Positive"
        );
        assert_eq!(check(unit, "   ", "Negative"), Err(SynonymRefusal::Empty));
        assert_eq!(
            check(unit, &"x".repeat(101), "Negative"),
            Err(SynonymRefusal::TooLong { len: 101, max: 100 })
        );
        let sodium = catalog.test("NA").unwrap();
        assert_eq!(
            check(sodium, "NEG", "Negative"),
            Err(SynonymRefusal::NotCoded { test: "NA".into() })
        );
    }
}
