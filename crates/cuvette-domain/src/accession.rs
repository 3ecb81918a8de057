//! Accession numbers: the specimen's identity on its label, its barcode and every message.
//!
//! Format: two digits of the year, a seven-digit sequence within the year and a Luhn (mod 10)
//! check digit, e.g. `2600001234` → printed and scanned as `26-0000123-4`. The check digit
//! catches every single mistyped digit and most swapped neighbours, so a misread scan or a
//! typo is refused instead of finding another patient's specimen.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest sequence number in one year.
pub const ACCESSION_SEQUENCE_MAX: u32 = 9_999_999;

/// A specimen's accession number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Accession {
    year: u16,
    sequence: u32,
}

/// Why a scanned or typed accession number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessionError {
    /// Not ten digits once hyphens and spaces are removed.
    #[error("{0:?} is not an accession number: expected 10 digits such as 26-0000123-4")]
    Format(String),
    /// The check digit does not match: a misread or mistyped number.
    #[error("{0:?} fails its check digit: rescan the label or retype the number")]
    CheckDigit(String),
}

impl Accession {
    /// The accession for the `sequence`-th specimen of the two-digit `year`.
    pub fn new(year: u16, sequence: u32) -> Option<Accession> {
        (year < 100 && (1..=ACCESSION_SEQUENCE_MAX).contains(&sequence))
            .then_some(Accession { year, sequence })
    }

    /// Parses an accession as printed (`26-0000123-4`) or scanned (`2600001234`).
    pub fn parse(s: &str) -> Result<Accession, AccessionError> {
        let digits: String = s.trim().chars().filter(|c| *c != '-' && *c != ' ').collect();
        if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AccessionError::Format(s.trim().chars().take(40).collect()));
        }
        let body = &digits[..9];
        let check = digits.as_bytes()[9] - b'0';
        if luhn_check_digit(body) != check {
            return Err(AccessionError::CheckDigit(s.trim().to_owned()));
        }
        // Both slices are ASCII digits (checked above), so they parse.
        let year: u16 = body[..2].parse().expect("two ascii digits");
        let sequence: u32 = body[2..].parse().expect("seven ascii digits");
        Accession::new(year, sequence).ok_or_else(|| AccessionError::Format(s.trim().to_owned()))
    }

    /// The two-digit year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The sequence within the year.
    pub fn sequence(self) -> u32 {
        self.sequence
    }

    /// The ten digits, as encoded in the barcode.
    pub fn digits(self) -> String {
        let body = format!("{:02}{:07}", self.year, self.sequence);
        let check = luhn_check_digit(&body);
        format!("{body}{check}")
    }
}

impl fmt::Display for Accession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.digits();
        write!(f, "{}-{}-{}", &d[..2], &d[2..9], &d[9..])
    }
}

impl TryFrom<String> for Accession {
    type Error = AccessionError;
    fn try_from(s: String) -> Result<Accession, AccessionError> {
        Accession::parse(&s)
    }
}

impl From<Accession> for String {
    fn from(a: Accession) -> String {
        a.to_string()
    }
}

/// The Luhn check digit of a string of ASCII digits.
fn luhn_check_digit(digits: &str) -> u8 {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_and_scanned_forms_round_trip() {
        let a = Accession::new(26, 123).unwrap();
        assert_eq!(a.to_string(), "26-0000123-0");
        assert_eq!(Accession::parse("26-0000123-0"), Ok(a));
        assert_eq!(Accession::parse(&a.digits()), Ok(a));
    }

    #[test]
    fn luhn_matches_the_published_example() {
        // The classic worked example: 7992739871 has check digit 3.
        assert_eq!(luhn_check_digit("7992739871"), 3);
    }

    #[test]
    fn every_single_digit_error_is_caught() {
        let good = Accession::new(26, 4_567_890).unwrap().digits();
        for pos in 0..10 {
            for d in b'0'..=b'9' {
                let mut bad = good.clone().into_bytes();
                if bad[pos] == d {
                    continue;
                }
                bad[pos] = d;
                let bad = String::from_utf8(bad).unwrap();
                assert!(Accession::parse(&bad).is_err(), "{bad} accepted");
            }
        }
    }

    #[test]
    fn malformed_numbers_say_what_is_expected() {
        assert!(matches!(Accession::parse("12345"), Err(AccessionError::Format(_))));
        assert!(matches!(Accession::parse("26-000012A-0"), Err(AccessionError::Format(_))));
        assert!(Accession::parse("2600001231").unwrap_err().to_string().contains("rescan"));
        assert!(Accession::new(26, 0).is_none());
    }
}
