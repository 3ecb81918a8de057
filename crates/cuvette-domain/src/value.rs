//! A result value exactly as reported: the text is kept, the number read from it.
//!
//! "4.10" keeps its two decimals (the reported precision), "<0.5" and ">1000" keep their
//! comparator (HL7 SN, FHIR `Quantity.comparator`). Text typed into a numeric field is never
//! dropped: it is kept as text and sent to review.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The longest result text accepted (HL7 OBX-5 for ST is 199; free text reports can be longer).
pub const RESULT_TEXT_LEN_MAX: usize = 2000;

/// A comparator in front of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparator {
    /// `<`: below the value (e.g. below the limit of quantitation).
    #[serde(rename = "<")]
    Less,
    /// `<=`.
    #[serde(rename = "<=")]
    LessOrEqual,
    /// `>`: above the value (e.g. above the measurement range).
    #[serde(rename = ">")]
    Greater,
    /// `>=`.
    #[serde(rename = ">=")]
    GreaterOrEqual,
}

impl Comparator {
    /// The symbol as printed.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::Less => "<",
            Comparator::LessOrEqual => "<=",
            Comparator::Greater => ">",
            Comparator::GreaterOrEqual => ">=",
        }
    }
}

/// A result value as the lab reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedValue {
    /// Exactly what was reported, trimmed ("4.10", "<0.5", "Negative").
    pub text: String,
    /// The number in it, when it is numeric.
    pub number: Option<Numeric>,
}

/// A number with its comparator; `value` keeps the reported scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Numeric {
    /// Present for censored values ("<0.5").
    pub comparator: Option<Comparator>,
    /// The number, with the scale it was written with.
    pub value: Decimal,
}

/// How a result reported as a comment begins when it cannot be reported as a value (a
/// clotted specimen, an interference): "Unable to report: specimen clotted".
pub const UNABLE_TO_REPORT: &str = "Unable to report:";

/// How a calculated result begins when it may not be calculated: "Not calculated: Creatinine
/// above the measurement range (>25.00)".
pub const NOT_CALCULATED: &str = "Not calculated:";

/// A result reported as a documented comment instead of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoValue {
    /// [`UNABLE_TO_REPORT`], typed on the bench in place of an invalid or unobtainable value.
    UnableToReport,
    /// [`NOT_CALCULATED`], written by a calculation that may not report a number.
    NotCalculated,
}

impl NoValue {
    /// The words the comment begins with.
    pub fn prefix(self) -> &'static str {
        match self {
            NoValue::UnableToReport => UNABLE_TO_REPORT,
            NoValue::NotCalculated => NOT_CALCULATED,
        }
    }

    /// The kind of comment `text` is, and the reason after its prefix (case-insensitive).
    fn read(text: &str) -> Option<(NoValue, &str)> {
        [NoValue::UnableToReport, NoValue::NotCalculated].into_iter().find_map(|kind| {
            let prefix = kind.prefix();
            let head = text.get(..prefix.len())?;
            head.eq_ignore_ascii_case(prefix).then(|| (kind, text[prefix.len()..].trim()))
        })
    }
}

/// Why a result text was refused outright (as opposed to kept and sent to review).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Nothing was entered.
    #[error("enter a result")]
    Empty,
    /// More than [`RESULT_TEXT_LEN_MAX`] characters.
    #[error("the result is {len} characters long; the limit is {max}")]
    TooLong {
        /// Characters given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A comment in place of a value that does not say why.
    #[error("say why the result cannot be reported, after \"{}\"", .0.prefix())]
    CommentWithoutReason(NoValue),
}

impl ReportedValue {
    /// Reads a result text. Numbers are read with an optional comparator; anything else is
    /// kept as text. Only empty or oversized input is refused.
    pub fn parse(text: &str) -> Result<ReportedValue, ValueError> {
        ReportedValue::parse_within(text, RESULT_TEXT_LEN_MAX)
    }

    /// [`ReportedValue::parse`] with another limit than [`RESULT_TEXT_LEN_MAX`]: a text report
    /// an instrument sends (HL7 TX, FT or a long ST) is kept whole up to the lab's limit for
    /// instrument text, never cut.
    pub fn parse_within(text: &str, chars_max: usize) -> Result<ReportedValue, ValueError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ValueError::Empty);
        }
        let len = text.chars().count();
        if len > chars_max {
            return Err(ValueError::TooLong { len, max: chars_max });
        }
        if let Some((kind, "")) = NoValue::read(text) {
            return Err(ValueError::CommentWithoutReason(kind));
        }
        Ok(ReportedValue { text: text.to_owned(), number: parse_numeric(text) })
    }

    /// Whether this is a documented comment in place of a value ("Unable to report: …",
    /// "Not calculated: …"), and which: it is released as the comment, never as a value.
    pub fn no_value(&self) -> Option<NoValue> {
        NoValue::read(&self.text).map(|(kind, _)| kind)
    }

    /// A calculated or converted number, written with `decimals` places.
    pub fn from_number(value: Decimal) -> ReportedValue {
        ReportedValue { text: value.to_string(), number: Some(Numeric { comparator: None, value }) }
    }
}

/// The number in a result text, by the lab's one reading of numbers; a text that is not one
/// ("hemolyzed", "4,2") is kept as text and sent to review rather than refused.
fn parse_numeric(text: &str) -> Option<Numeric> {
    crate::number::parse_entry(text, crate::number::NumberRules::Reported).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> Option<(Option<Comparator>, String)> {
        ReportedValue::parse(text).unwrap().number.map(|n| (n.comparator, n.value.to_string()))
    }

    #[test]
    fn a_documented_comment_is_not_a_value_and_must_say_why() {
        let v = ReportedValue::parse("unable to report: specimen clotted").unwrap();
        assert_eq!((v.no_value(), v.number), (Some(NoValue::UnableToReport), None));
        let v =
            ReportedValue::parse("Not calculated: Creatinine above the measurement range").unwrap();
        assert_eq!(v.no_value(), Some(NoValue::NotCalculated));
        assert_eq!(
            ReportedValue::parse("Unable to report:  "),
            Err(ValueError::CommentWithoutReason(NoValue::UnableToReport))
        );
        assert_eq!(ReportedValue::parse("Unable").unwrap().no_value(), None);
        assert_eq!(ReportedValue::parse("4.2").unwrap().no_value(), None);
    }

    #[test]
    fn the_reported_text_and_its_precision_are_kept() {
        let v = ReportedValue::parse(" 4.10 ").unwrap();
        assert_eq!(v.text, "4.10");
        assert_eq!(number("4.10"), Some((None, "4.10".into())));
        assert_eq!(number("0.5"), Some((None, "0.5".into())));
        assert_eq!(number("-3"), Some((None, "-3".into())));
    }

    #[test]
    fn comparators_are_read() {
        assert_eq!(number("<0.5"), Some((Some(Comparator::Less), "0.5".into())));
        assert_eq!(number(">1000"), Some((Some(Comparator::Greater), "1000".into())));
        assert_eq!(number(">=2000"), Some((Some(Comparator::GreaterOrEqual), "2000".into())));
        assert_eq!(number("<= 10"), Some((Some(Comparator::LessOrEqual), "10".into())));
    }

    #[test]
    fn text_that_is_not_a_plain_number_is_kept_as_text() {
        for t in ["hemolyzed", "4,2", "1e3", "+5", "5.", ".", "4.1.2", "--3", "Negative", "< >"] {
            let v = ReportedValue::parse(t).unwrap();
            assert_eq!((v.text.as_str(), v.number), (t, None), "{t}");
        }
    }

    #[test]
    fn empty_and_oversized_results_are_refused() {
        assert_eq!(ReportedValue::parse("  "), Err(ValueError::Empty));
        let long = "x".repeat(RESULT_TEXT_LEN_MAX + 1);
        assert_eq!(
            ReportedValue::parse(&long),
            Err(ValueError::TooLong { len: RESULT_TEXT_LEN_MAX + 1, max: RESULT_TEXT_LEN_MAX })
        );
    }
}
