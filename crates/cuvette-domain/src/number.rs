//! What a number typed by a person or sent by an instrument is: the one reading used for
//! patient results, control values and targets, and every limit the lab sets.
//!
//! The policy, and why:
//! - **A point is the decimal mark, and nothing else separates digits.** "4,2" is refused with
//!   "use a point": read silently as 4.2 it is right in Berlin and a thousandfold wrong where
//!   "1,000" is a thousand, and the reader cannot tell which the writer meant.
//! - **No exponents.** "1e3" is not how a lab writes a number, and a stray "e" is more often a
//!   typing error than a thousand; the message gives the number written out.
//! - **No leading "+"** and no letter in place of a digit ("1OO"): each is refused with the
//!   number the writer probably meant, never read as it.
//! - **Censored values** ("<0.5", ">1000", "<=", ">=") are numbers only where the lab reports
//!   them — a patient result ([`NumberRules::Reported`]). A control value, a target or a limit
//!   is a plain number ([`NumberRules::Plain`]).
//! - The number keeps the places it was written with ("4.10" stays 4.10), so the reported
//!   precision is never lost.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::value::{Comparator, Numeric};

/// The longest number accepted, in characters: more digits than a decimal holds (28) is a
/// pasted identifier, not a measurement.
pub const NUMBER_TEXT_LEN_MAX: usize = 32;

/// What kind of number is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberRules {
    /// A patient result: a plain number, or one censored by `<`, `<=`, `>` or `>=`.
    Reported,
    /// A measurement or a setting that is always a plain number: a control value, a target
    /// mean or SD, an autoverification or moving-average limit.
    Plain,
}

/// Why a text is not a number, in the words the bench reads beside the field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NumberError {
    /// Nothing was entered.
    Empty,
    /// A comma as a decimal mark ("4,2"): `point` is the number written with a point.
    DecimalComma {
        /// The number written with a point.
        point: String,
    },
    /// A comma that could be a thousands separator or a decimal mark ("1,000").
    AmbiguousComma {
        /// What was entered.
        text: String,
    },
    /// An exponent ("1e3"); `full` is the number written out, when it fits.
    Exponent {
        /// What was entered.
        text: String,
        /// The number written out in full.
        full: Option<String>,
    },
    /// A leading plus sign ("+5").
    LeadingPlus {
        /// The number without it.
        unsigned: String,
    },
    /// A letter where a digit belongs ("1OO", "l.5").
    LetterForDigit {
        /// What was entered.
        text: String,
        /// The letter.
        letter: char,
        /// The number with the digit in its place.
        meant: String,
    },
    /// A censored value ("<0.5") where only a plain number is taken.
    Censored {
        /// What was entered.
        text: String,
        /// The comparator given.
        comparator: Comparator,
    },
    /// More than [`NUMBER_TEXT_LEN_MAX`] characters, or more digits than a decimal holds.
    TooLong {
        /// Characters given.
        len: usize,
    },
    /// Anything else that is not a number.
    NotANumber {
        /// What was entered.
        text: String,
    },
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberError::Empty => write!(f, "enter a number such as 4.2"),
            NumberError::DecimalComma { point } => {
                write!(f, "use a point, not a comma: {point}")
            }
            NumberError::AmbiguousComma { text } => write!(
                f,
                "{text:?} could be read with the comma as a thousands separator or as a decimal \
                 mark: write the number without a comma, with a point for decimals"
            ),
            NumberError::Exponent { text, full: Some(full) } => {
                write!(f, "write the number out in full: {full}, not {text}")
            }
            NumberError::Exponent { text, full: None } => {
                write!(f, "write the number out in full, without an exponent: {text:?}")
            }
            NumberError::LeadingPlus { unsigned } => {
                write!(f, "leave out the plus sign: {unsigned}")
            }
            NumberError::LetterForDigit { text, letter, meant } => write!(
                f,
                "enter a number such as 4.2; {text:?} has a letter {letter} where a digit \
                 belongs: {meant}"
            ),
            NumberError::Censored { text, comparator } => write!(
                f,
                "enter the number itself, without {:?}: {text:?} is a limit, not a value",
                comparator.symbol()
            ),
            NumberError::TooLong { len } => write!(
                f,
                "a number has at most {NUMBER_TEXT_LEN_MAX} characters and 28 digits; this has \
                 {len} characters"
            ),
            NumberError::NotANumber { text } => {
                write!(f, "enter a number such as 4.2, not {text:?}")
            }
        }
    }
}

impl std::error::Error for NumberError {}

impl Numeric {
    /// The value as a float, for the statistics QC keeps (means, SDs, z-scores): the nearest
    /// double to the decimal, exactly as if its text were read as one.
    pub fn to_f64(self) -> f64 {
        // A decimal's text is plain digits with at most one point, which always reads as a
        // finite float (at most 28 digits, far inside its range).
        self.value.to_string().parse().expect("a decimal's text is a float")
    }
}

/// Reads a number as a person typed it or an instrument sent it, by the lab's one policy
/// (see the module's documentation). Surrounding spaces are ignored, and so are spaces after
/// a comparator ("< 10").
pub fn parse_entry(text: &str, rules: NumberRules) -> Result<Numeric, NumberError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(NumberError::Empty);
    }
    let len = text.chars().count();
    if len > NUMBER_TEXT_LEN_MAX {
        return Err(NumberError::TooLong { len });
    }
    let (comparator, rest) = split_comparator(text);
    let rest = rest.trim_start();
    if let (Some(comparator), NumberRules::Plain) = (comparator, rules) {
        return Err(NumberError::Censored { text: text.to_owned(), comparator });
    }
    match plain_decimal(rest) {
        Ok(value) => Ok(Numeric { comparator, value }),
        Err(Malformed::TooManyDigits) => Err(NumberError::TooLong { len }),
        Err(Malformed::NotPlain) => Err(diagnose(text, comparator, rest)),
    }
}

/// The comparator in front of a number, and the rest.
fn split_comparator(text: &str) -> (Option<Comparator>, &str) {
    for (symbol, comparator) in [
        ("<=", Comparator::LessOrEqual),
        (">=", Comparator::GreaterOrEqual),
        ("<", Comparator::Less),
        (">", Comparator::Greater),
    ] {
        if let Some(rest) = text.strip_prefix(symbol) {
            return (Some(comparator), rest);
        }
    }
    (None, text)
}

enum Malformed {
    NotPlain,
    TooManyDigits,
}

/// Plain decimal notation only: an optional "-", digits with at most one point, not ending in
/// the point.
fn plain_decimal(text: &str) -> Result<Decimal, Malformed> {
    let well_formed = !text.is_empty()
        && text
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || b == b'.' || (i == 0 && b == b'-'))
        && text.bytes().filter(|&b| b == b'.').count() <= 1
        && text.bytes().any(|b| b.is_ascii_digit())
        && !text.ends_with('.');
    if !well_formed {
        return Err(Malformed::NotPlain);
    }
    // Well formed, so the only way left to fail is more digits than a decimal holds.
    Decimal::from_str(text).map_err(|_| Malformed::TooManyDigits)
}

/// Why `rest` (after the comparator) is not a plain decimal, with the number the writer most
/// likely meant when there is one.
fn diagnose(text: &str, comparator: Option<Comparator>, rest: &str) -> NumberError {
    let prefix = comparator.map_or("", Comparator::symbol);
    if let Some(unsigned) = rest.strip_prefix('+')
        && plain_decimal(unsigned).is_ok()
    {
        return NumberError::LeadingPlus { unsigned: format!("{prefix}{unsigned}") };
    }
    if rest.bytes().filter(|&b| b == b',').count() == 1 && !rest.contains('.') {
        let (whole, fraction) = rest.split_once(',').unwrap_or((rest, ""));
        let with_point = format!("{whole}.{fraction}");
        if plain_decimal(&with_point).is_ok() {
            // "1,000" and "12,500" are how much of the world writes thousands; "4,2" and
            // "0,125" are not.
            let thousands =
                fraction.len() == 3 && !whole.is_empty() && whole != "0" && whole != "-0";
            return if thousands {
                NumberError::AmbiguousComma { text: text.to_owned() }
            } else {
                NumberError::DecimalComma { point: format!("{prefix}{with_point}") }
            };
        }
    }
    if rest.contains(',') {
        return NumberError::AmbiguousComma { text: text.to_owned() };
    }
    if let Some((mantissa, _)) = rest.split_once(['e', 'E'])
        && plain_decimal(mantissa).is_ok()
    {
        let full =
            Decimal::from_scientific(rest).ok().map(|d| format!("{prefix}{}", d.normalize()));
        return NumberError::Exponent { text: text.to_owned(), full };
    }
    for (letters, digit) in [(['O', 'o'], '0'), (['l', 'I'], '1')] {
        if let Some(letter) = rest.chars().find(|c| letters.contains(c)) {
            let meant: String =
                rest.chars().map(|c| if letters.contains(&c) { digit } else { c }).collect();
            if plain_decimal(&meant).is_ok() {
                return NumberError::LetterForDigit {
                    text: text.to_owned(),
                    letter,
                    meant: format!("{prefix}{meant}"),
                };
            }
        }
    }
    NumberError::NotANumber { text: text.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The number read, as "comparator value", or the words of the refusal.
    fn check(rules: NumberRules, text: &str, expected: &str) {
        let got = match parse_entry(text, rules) {
            Ok(n) => format!("{}{}", n.comparator.map_or("", Comparator::symbol), n.value),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expected, "{text:?}");
    }

    #[test]
    fn plain_numbers_keep_the_places_they_were_written_with() {
        for (text, expected) in [
            ("4.2", "4.2"),
            (" 4.10 ", "4.10"),
            ("0.5", "0.5"),
            ("-3", "-3"),
            ("140", "140"),
            ("0.000", "0.000"),
            (".5", "0.5"),
        ] {
            check(NumberRules::Plain, text, expected);
            check(NumberRules::Reported, text, expected);
        }
    }

    #[test]
    fn a_reported_result_may_be_censored_and_a_control_value_may_not() {
        check(NumberRules::Reported, "<0.5", "<0.5");
        check(NumberRules::Reported, ">1000", ">1000");
        check(NumberRules::Reported, "<= 10", "<=10");
        check(NumberRules::Reported, ">=2000", ">=2000");
        check(
            NumberRules::Plain,
            "<0.5",
            "error: enter the number itself, without \"<\": \"<0.5\" is a limit, not a value",
        );
    }

    #[test]
    fn a_decimal_comma_is_refused_with_the_number_written_with_a_point() {
        check(NumberRules::Plain, "4,2", "error: use a point, not a comma: 4.2");
        check(NumberRules::Plain, "0,125", "error: use a point, not a comma: 0.125");
        check(NumberRules::Reported, "<0,5", "error: use a point, not a comma: <0.5");
    }

    #[test]
    fn a_comma_that_may_separate_thousands_is_refused_as_ambiguous() {
        for text in ["1,000", "12,500", "1,000,000", "1,000.5"] {
            let e = parse_entry(text, NumberRules::Plain).unwrap_err();
            assert_eq!(e, NumberError::AmbiguousComma { text: text.into() }, "{text}");
        }
        check(
            NumberRules::Plain,
            "1,000",
            "error: \"1,000\" could be read with the comma as a thousands separator or as a \
             decimal mark: write the number without a comma, with a point for decimals",
        );
    }

    #[test]
    fn exponents_plus_signs_and_letters_are_refused_with_what_was_meant() {
        check(NumberRules::Plain, "1e3", "error: write the number out in full: 1000, not 1e3");
        check(
            NumberRules::Plain,
            "2.5E-2",
            "error: write the number out in full: 0.025, not 2.5E-2",
        );
        check(NumberRules::Plain, "+5", "error: leave out the plus sign: 5");
        check(NumberRules::Reported, ">+5", "error: leave out the plus sign: >5");
        check(
            NumberRules::Plain,
            "1OO",
            "error: enter a number such as 4.2; \"1OO\" has a letter O where a digit belongs: 100",
        );
        check(
            NumberRules::Plain,
            "l.5",
            "error: enter a number such as 4.2; \"l.5\" has a letter l where a digit belongs: 1.5",
        );
    }

    #[test]
    fn what_is_not_a_number_says_so() {
        for text in ["abc", "NaN", "inf", "5.", ".", "4.1.2", "--3", "< >", "-", "0x10", "1 000"] {
            assert_eq!(
                parse_entry(text, NumberRules::Reported),
                Err(NumberError::NotANumber { text: text.into() }),
                "{text}"
            );
        }
        check(NumberRules::Plain, "abc", "error: enter a number such as 4.2, not \"abc\"");
        check(NumberRules::Plain, "  ", "error: enter a number such as 4.2");
    }

    #[test]
    fn a_number_longer_than_a_decimal_holds_is_refused() {
        let digits = "9".repeat(30);
        assert_eq!(parse_entry(&digits, NumberRules::Plain), Err(NumberError::TooLong { len: 30 }));
        let long = "1".repeat(NUMBER_TEXT_LEN_MAX + 1);
        assert_eq!(
            parse_entry(&long, NumberRules::Plain),
            Err(NumberError::TooLong { len: NUMBER_TEXT_LEN_MAX + 1 })
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            /// Every decimal the lab writes reads back as itself, places and all.
            #[test]
            fn a_written_decimal_reads_back_exactly(
                whole in -999_999i64..999_999, fraction in 0u32..10_000, places in 0u32..5
            ) {
                let value = Decimal::new(whole * 10_000 + i64::from(fraction), 4).round_dp(places);
                let text = value.to_string();
                let read = parse_entry(&text, NumberRules::Plain).unwrap();
                prop_assert_eq!(read.value, value);
                prop_assert_eq!(read.value.to_string(), text);
            }

            /// Whatever is typed, the reading never panics, and a plain number is always a
            /// number under the reported rules too.
            #[test]
            fn any_text_is_read_or_refused_with_words(text in "\\PC{0,40}") {
                match parse_entry(&text, NumberRules::Plain) {
                    Ok(n) => prop_assert_eq!(parse_entry(&text, NumberRules::Reported), Ok(n)),
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }

            /// A decimal written with a comma is refused, and the message gives it with a
            /// point — unless the comma could separate thousands.
            #[test]
            fn a_comma_is_never_read_as_a_point(whole in 0u32..100_000, fraction in "[0-9]{1,4}") {
                let text = format!("{whole},{fraction}");
                let e = parse_entry(&text, NumberRules::Plain).unwrap_err();
                if fraction.len() == 3 && whole != 0 {
                    prop_assert_eq!(e, NumberError::AmbiguousComma { text });
                } else {
                    prop_assert_eq!(e, NumberError::DecimalComma { point: format!("{whole}.{fraction}") });
                }
            }
        }
    }
}
