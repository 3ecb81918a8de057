//! Who a specimen came from: the identifiers the lab checks at every step.

use std::fmt;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// Administrative sex as used to choose reference intervals (HL7 table 0001 subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    /// Female.
    #[serde(rename = "F")]
    Female,
    /// Male.
    #[serde(rename = "M")]
    Male,
    /// Not known or not stated: only intervals for both sexes apply.
    #[serde(rename = "U")]
    Unknown,
}

impl Sex {
    /// Parses "F", "M", "U" (any case, also the words).
    pub fn parse(s: &str) -> Option<Sex> {
        match s.trim().to_ascii_uppercase().as_str() {
            "F" | "FEMALE" => Some(Sex::Female),
            "M" | "MALE" => Some(Sex::Male),
            "U" | "UNKNOWN" | "O" | "A" => Some(Sex::Unknown),
            _ => None,
        }
    }

    /// The one-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Sex::Female => "F",
            Sex::Male => "M",
            Sex::Unknown => "U",
        }
    }
}

impl fmt::Display for Sex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sex::Female => "Female",
            Sex::Male => "Male",
            Sex::Unknown => "Not known",
        })
    }
}

/// A medical record number: 1 to 20 letters, digits or hyphens, as the hospital issues them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mrn(String);

/// The longest MRN accepted.
pub const MRN_LEN_MAX: usize = 20;

impl Mrn {
    /// Parses an MRN, trimming surrounding spaces and upper-casing letters.
    pub fn parse(s: &str) -> Result<Mrn, String> {
        let s = s.trim().to_ascii_uppercase();
        if s.is_empty() {
            return Err("enter the medical record number (MRN)".into());
        }
        if s.len() > MRN_LEN_MAX {
            return Err(format!("the MRN is at most {MRN_LEN_MAX} characters"));
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err("the MRN may contain only letters, digits and hyphens".into());
        }
        Ok(Mrn(s))
    }

    /// The MRN as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Mrn {
    type Error = String;
    fn try_from(s: String) -> Result<Mrn, String> {
        Mrn::parse(&s)
    }
}

impl From<Mrn> for String {
    fn from(m: Mrn) -> String {
        m.0
    }
}

impl fmt::Display for Mrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a date of birth typed at the bench: ISO `1945-07-14`, or `14-Jul-1945` as Cuvette
/// prints it. A birth date after `today` or more than 150 years ago is refused.
pub fn parse_birth_date(s: &str, today: Date) -> Result<Date, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("enter the date of birth, for example 1945-07-14".into());
    }
    let date = s
        .parse::<Date>()
        .ok()
        .or_else(|| jiff::fmt::strtime::parse("%d-%b-%Y", s).ok().and_then(|t| t.to_date().ok()))
        .ok_or_else(|| format!("{s:?} is not a date: enter it as 1945-07-14 or 14-Jul-1945"))?;
    if date > today {
        return Err(format!("the date of birth {date} is in the future"));
    }
    if date.year() < today.year() - 150 {
        return Err(format!("the date of birth {date} is more than 150 years ago"));
    }
    Ok(date)
}

/// Age as the bench shows it: days under one month, months under two years, else years.
pub fn display_age(birth_date: Date, on: Date) -> String {
    let Ok(span) = birth_date.until((jiff::Unit::Year, on)) else { return String::new() };
    let years = span.get_years();
    let months = span.get_months();
    if years >= 2 {
        format!("{years}y")
    } else if years >= 1 || months >= 1 {
        format!("{}m", i32::from(years) * 12 + months)
    } else {
        let days = birth_date.until((jiff::Unit::Day, on)).map(|s| s.get_days()).unwrap_or(0);
        format!("{days}d")
    }
}

/// Completed years of age on a date (for calculations such as eGFR).
pub fn age_years(birth_date: Date, on: Date) -> i16 {
    birth_date.until((jiff::Unit::Year, on)).map(|s| s.get_years()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn birth_dates_accept_iso_and_the_printed_form_and_refuse_the_future() {
        let today = date(2026, 11, 24);
        assert_eq!(parse_birth_date("1945-07-14", today), Ok(date(1945, 7, 14)));
        assert_eq!(parse_birth_date("14-Jul-1945", today), Ok(date(1945, 7, 14)));
        assert!(parse_birth_date("2027-01-01", today).unwrap_err().contains("in the future"));
        assert!(parse_birth_date("31/02/2001", today).unwrap_err().contains("not a date"));
        assert!(parse_birth_date("1800-01-01", today).is_err());
    }

    #[test]
    fn ages_are_days_for_neonates_months_for_infants_years_after() {
        let on = date(2026, 11, 24);
        assert_eq!(display_age(date(2026, 11, 20), on), "4d");
        assert_eq!(display_age(date(2025, 6, 24), on), "17m");
        assert_eq!(display_age(date(1945, 7, 14), on), "81y");
        assert_eq!(age_years(date(1976, 11, 25), on), 49);
    }

    #[test]
    fn mrn_is_normalised_and_bounded() {
        assert_eq!(Mrn::parse(" ab-12 ").unwrap().as_str(), "AB-12");
        assert!(Mrn::parse("").is_err());
        assert!(Mrn::parse("12 34").is_err());
        assert!(Mrn::parse(&"1".repeat(21)).is_err());
    }
}
