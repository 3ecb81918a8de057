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

/// Who an instrument's or EHR's result message says its specimen came from; each part is
/// empty when the message does not carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentIdentity {
    /// Patient identifiers (HL7 PID-3, every repetition); one must be the MRN.
    pub identifiers: Vec<String>,
    /// Family name (HL7 PID-5.1, ASTM P-6.1).
    pub family_name: String,
    /// Given name (HL7 PID-5.2, ASTM P-6.2).
    pub given_name: String,
    /// Date of birth as sent (`YYYYMMDD`, a time may follow).
    pub birth_date: String,
}

impl SentIdentity {
    /// Whether the message names anyone at all.
    pub fn is_empty(&self) -> bool {
        self.identifiers.is_empty()
            && self.family_name.is_empty()
            && self.given_name.is_empty()
            && self.birth_date.is_empty()
    }
}

/// The registered patient a specimen belongs to, as the identity check needs them.
#[derive(Debug, Clone, Copy)]
pub struct RegisteredIdentity<'a> {
    /// Medical record number.
    pub mrn: &'a str,
    /// Family name.
    pub family_name: &'a str,
    /// Given name(s).
    pub given_name: &'a str,
    /// Date of birth.
    pub birth_date: Date,
}

/// One way a message's patient differs from the specimen's registered patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityMismatch {
    /// None of the identifiers sent is the MRN.
    Mrn {
        /// What was sent.
        sent: Vec<String>,
        /// The registered MRN.
        registered: String,
    },
    /// The family name differs.
    FamilyName {
        /// What was sent.
        sent: String,
        /// The registered name.
        registered: String,
    },
    /// The given name differs.
    GivenName {
        /// What was sent.
        sent: String,
        /// The registered name.
        registered: String,
    },
    /// The date of birth differs, or cannot be read.
    BirthDate {
        /// What was sent.
        sent: String,
        /// The registered date.
        registered: Date,
    },
}

impl fmt::Display for IdentityMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityMismatch::Mrn { sent, registered } => {
                write!(f, "patient id {} is not MRN {registered}", sent.join(" / "))
            }
            IdentityMismatch::FamilyName { sent, registered } => {
                write!(f, "family name {sent:?} is not {registered:?}")
            }
            IdentityMismatch::GivenName { sent, registered } => {
                write!(f, "given name {sent:?} is not {registered:?}")
            }
            IdentityMismatch::BirthDate { sent, registered } => {
                write!(f, "date of birth {sent:?} is not {registered}")
            }
        }
    }
}

/// Checks what a message says about the patient against the specimen's registered patient:
/// the two-identifier rule, applied to machines. Only what the message carries is checked;
/// names compare without regard to case or repeated spaces, and a given name sent without
/// the middle names still matches.
pub fn check_identity(
    sent: &SentIdentity,
    registered: RegisteredIdentity<'_>,
) -> Result<(), Vec<IdentityMismatch>> {
    let fold = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let mut wrong = Vec::new();
    let ids: Vec<String> =
        sent.identifiers.iter().map(|i| i.trim().to_owned()).filter(|i| !i.is_empty()).collect();
    if !ids.is_empty() && !ids.iter().any(|i| i.eq_ignore_ascii_case(registered.mrn)) {
        wrong.push(IdentityMismatch::Mrn { sent: ids, registered: registered.mrn.to_owned() });
    }
    let family = fold(&sent.family_name);
    if !family.is_empty() && family != fold(registered.family_name) {
        wrong.push(IdentityMismatch::FamilyName {
            sent: sent.family_name.trim().to_owned(),
            registered: registered.family_name.to_owned(),
        });
    }
    let given = fold(&sent.given_name);
    let known = fold(registered.given_name);
    if !given.is_empty() && given != known && !known.starts_with(&format!("{given} ")) {
        wrong.push(IdentityMismatch::GivenName {
            sent: sent.given_name.trim().to_owned(),
            registered: registered.given_name.to_owned(),
        });
    }
    let birth = sent.birth_date.trim();
    if !birth.is_empty() {
        let read = birth
            .get(..8)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| Date::strptime("%Y%m%d", d).ok());
        if read != Some(registered.birth_date) {
            wrong.push(IdentityMismatch::BirthDate {
                sent: birth.to_owned(),
                registered: registered.birth_date,
            });
        }
    }
    if wrong.is_empty() { Ok(()) } else { Err(wrong) }
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

    fn jane() -> RegisteredIdentity<'static> {
        RegisteredIdentity {
            mrn: "7788990",
            family_name: "Doe",
            given_name: "Jane Quinn",
            birth_date: jiff::civil::date(1972, 3, 4),
        }
    }

    #[test]
    fn a_message_naming_the_specimens_patient_passes() {
        let sent = SentIdentity {
            identifiers: vec!["X-1".into(), "7788990".into()],
            family_name: "DOE".into(),
            given_name: "JANE".into(),
            birth_date: "19720304".into(),
        };
        assert_eq!(check_identity(&sent, jane()), Ok(()));
        assert_eq!(check_identity(&SentIdentity::default(), jane()), Ok(()));
    }

    #[test]
    fn each_identifier_that_differs_is_named() {
        let sent = SentIdentity {
            identifiers: vec!["1234567".into()],
            family_name: "Roe".into(),
            given_name: "Janet".into(),
            birth_date: "1972-03-04".into(),
        };
        let wrong = check_identity(&sent, jane()).unwrap_err();
        let text: Vec<String> = wrong.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "patient id 1234567 is not MRN 7788990",
                "family name \"Roe\" is not \"Doe\"",
                "given name \"Janet\" is not \"Jane Quinn\"",
                "date of birth \"1972-03-04\" is not 1972-03-04",
            ]
        );
    }
}
