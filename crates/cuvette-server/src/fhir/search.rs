//! Reading a FHIR search's parameters: each checked against the resource's row in
//! [`super::RESOURCES`], each bad one refused by its name with what a valid one looks like.

use cuvette_domain::scope::ResourceType;
use cuvette_domain::time::Timestamp;
use cuvette_domain::workflow::ReleaseStatus;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::resources::{ACCESSION_SYSTEM, LOINC, MRN_SYSTEM, OBSERVATION_CATEGORY, V2_0074};
use super::{Outcome, ResourceRoute};

/// Results on a page when `_count` is not given.
pub const COUNT_DEFAULT: i64 = 50;
/// The most results a page may hold (`_count`).
pub const COUNT_MAX: i64 = cuvette_app::fhir::PAGE_LEN_MAX;

/// The most reports a page may hold (each carries its results).
pub const REPORT_COUNT_MAX: i64 = cuvette_app::fhir::REPORT_PAGE_LEN_MAX;

/// A search, read.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// `_id`.
    pub id: Option<i64>,
    /// `patient` (or `subject`).
    pub patient: Option<i64>,
    /// `identifier` on Patient: the MRN.
    pub mrn: Option<String>,
    /// `identifier` on the others: the accession number.
    pub accession: Option<String>,
    /// `code`: LOINC codes (any one).
    pub loinc: Option<Vec<String>>,
    /// `date`: collected at or after.
    pub from: Option<Timestamp>,
    /// `date`: collected before.
    pub before: Option<Timestamp>,
    /// `status`: released as one of these.
    pub statuses: Vec<ReleaseStatus>,
    /// The search cannot match anything (a category or status Cuvette never writes).
    pub matches_nothing: bool,
    /// `_include`s asked for.
    pub includes: Vec<&'static str>,
    /// `_count`.
    pub count: i64,
    /// `_after`: the last id of the page before.
    pub after: i64,
    /// The parameters as given, minus `_after`, for the `self` and `next` links.
    pub echo: Vec<(String, String)>,
}

/// Reads the query of a search on `route`'s type. Every refusal is a 400 naming the
/// parameter in `expression`.
pub fn read(
    route: &ResourceRoute,
    pairs: &[(String, String)],
    tz: &TimeZone,
) -> Result<Search, Outcome> {
    let mut s = Search { count: COUNT_DEFAULT, ..Default::default() };
    let resource = route.resource;
    for (name, value) in pairs {
        let bad = |why: String| Outcome::invalid(name, format!("{name}={value:?}: {why}"));
        if name != "_after" && name != "_format" {
            s.echo.push((name.clone(), value.clone()));
        }
        match name.as_str() {
            "_format" => {
                if !matches!(value.as_str(), "json" | "application/json" | "application/fhir+json")
                {
                    return Err(bad("Cuvette answers in JSON only: _format=json".into()));
                }
                continue;
            }
            "_count" => {
                let max = if resource == ResourceType::DiagnosticReport {
                    REPORT_COUNT_MAX
                } else {
                    COUNT_MAX
                };
                s.count = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| bad(format!("give a whole number from 1 to {max}")))?;
                continue;
            }
            "_after" => {
                s.after = value.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    bad("this is the paging cursor of a next link; follow the link as given".into())
                })?;
                continue;
            }
            "_include" => {
                let include =
                    route.includes.iter().find(|i| **i == value.as_str()).ok_or_else(|| {
                        bad(if route.includes.is_empty() {
                            format!("{resource} searches include nothing")
                        } else {
                            format!("{resource} searches include {}", route.includes.join(", "))
                        })
                    })?;
                s.includes.push(*include);
                continue;
            }
            _ => {}
        }
        if !route.params.iter().any(|p| p.name == name) {
            let known: Vec<&str> = route.params.iter().map(|p| p.name).collect();
            return Err(Outcome::invalid(
                name,
                format!(
                    "{name:?} is not a search parameter of {resource} here: use {}, _include, _count",
                    known.join(", ")
                ),
            ));
        }
        if value.is_empty() {
            return Err(bad("give a value".into()));
        }
        match name.as_str() {
            "_id" => {
                s.id = Some(id(value).ok_or_else(|| bad("give a resource id (a number)".into()))?)
            }
            "patient" | "subject" => {
                let id = value
                    .strip_prefix("Patient/")
                    .or(if name == "patient" { Some(value.as_str()) } else { None })
                    .and_then(id)
                    .ok_or_else(|| bad("give the patient's id, as 123 or Patient/123".into()))?;
                if s.patient.is_some_and(|p| p != id) {
                    s.matches_nothing = true;
                }
                s.patient = Some(id);
            }
            "identifier" => {
                let (system, v) = token(value);
                let expected =
                    if resource == ResourceType::Patient { MRN_SYSTEM } else { ACCESSION_SYSTEM };
                match system {
                    Some(sys) if sys != expected => s.matches_nothing = true,
                    _ if resource == ResourceType::Patient => s.mrn = Some(v.to_owned()),
                    _ => {
                        cuvette_domain::Accession::parse(v).map_err(|e| {
                            bad(format!("{e}: give the accession number as printed, 26-0000123-0"))
                        })?;
                        s.accession = Some(v.to_owned());
                    }
                }
            }
            "code" => {
                let mut codes = Vec::new();
                for t in value.split(',') {
                    match token(t) {
                        (Some(LOINC) | None, code) if !code.is_empty() => {
                            codes.push(code.to_owned())
                        }
                        (Some(_), code) if !code.is_empty() => {}
                        _ => {
                            return Err(bad("give system|code, as http://loinc.org|2823-3".into()));
                        }
                    }
                }
                s.loinc.get_or_insert_with(Vec::new).extend(codes);
                if s.loinc.as_ref().is_some_and(Vec::is_empty) {
                    s.matches_nothing = true;
                }
            }
            "date" => {
                let (from, before) = date(value, tz).map_err(bad)?;
                if let Some(f) = from {
                    s.from = Some(s.from.map_or(f, |x| x.max(f)));
                }
                if let Some(b) = before {
                    s.before = Some(s.before.map_or(b, |x| x.min(b)));
                }
            }
            "status" => {
                let mut any = false;
                for code in value.split(',') {
                    match code {
                        "preliminary" => s.statuses.push(ReleaseStatus::Preliminary),
                        "final" => s.statuses.push(ReleaseStatus::Final),
                        "corrected" => s.statuses.push(ReleaseStatus::Corrected),
                        // Valid statuses no released result of Cuvette's carries.
                        "registered" | "amended" | "cancelled" | "entered-in-error" | "unknown" => {}
                        _ => return Err(bad(
                            "an Observation status is registered, preliminary, final, amended, corrected, cancelled, entered-in-error or unknown".into(),
                        )),
                    }
                    any = true;
                }
                if any && s.statuses.is_empty() {
                    s.matches_nothing = true;
                }
            }
            "category" => {
                let (system, code) = token(value);
                let ours = match resource {
                    ResourceType::DiagnosticReport => (V2_0074, "LAB"),
                    _ => (OBSERVATION_CATEGORY, "laboratory"),
                };
                if code.is_empty() {
                    return Err(bad("give a category code, as laboratory".into()));
                }
                if system.is_some_and(|s| s != ours.0) || code != ours.1 {
                    s.matches_nothing = true;
                }
            }
            // Every name in the table is handled above; a new one must be read here before
            // the table may list it (the capability test sends each).
            _ => return Err(bad("not read yet".into())),
        }
    }
    Ok(s)
}

fn id(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|n| *n > 0)
}

/// `system|code`, `|code` or `code`.
fn token(text: &str) -> (Option<&str>, &str) {
    match text.split_once('|') {
        Some(("", code)) => (None, code),
        Some((system, code)) => (Some(system), code),
        None => (None, text),
    }
}

/// A `date` value with its prefix, as the range of collection times it selects:
/// `(at or after, before)`. A date without a time is a day in the lab's time zone; a year or
/// month the whole of it.
fn date(value: &str, tz: &TimeZone) -> Result<(Option<Timestamp>, Option<Timestamp>), String> {
    let (prefix, text) = match value.get(..2) {
        Some(p @ ("eq" | "ge" | "gt" | "le" | "lt")) => (p, &value[2..]),
        Some("ne" | "sa" | "eb" | "ap") => {
            return Err("Cuvette searches dates with eq, ge, gt, le and lt".into());
        }
        _ => ("eq", value),
    };
    let (start, end) = period(text, tz).ok_or_else(|| {
        "give a date as 2026-03-02 or 2026-03-02T08:00:00Z, optionally after ge, gt, le, lt or eq"
            .to_owned()
    })?;
    Ok(match prefix {
        "ge" => (Some(start), None),
        "gt" => (Some(end), None),
        "le" => (None, Some(end)),
        "lt" => (None, Some(start)),
        _ => (Some(start), Some(end)),
    })
}

/// The span a FHIR date or dateTime stands for: `[start, end)`.
fn period(text: &str, tz: &TimeZone) -> Option<(Timestamp, Timestamp)> {
    let day = |d: Date| d.to_zoned_datetime(tz.clone()).ok().map(|z| z.timestamp());
    let (start, end) = match text.len() {
        4 => {
            let y: i16 = text.parse().ok()?;
            let d = Date::new(y, 1, 1).ok()?;
            (day(d)?, day(d.checked_add(jiff::Span::new().years(1)).ok()?)?)
        }
        7 => {
            let d: Date = format!("{text}-01").parse().ok()?;
            (day(d)?, day(d.checked_add(jiff::Span::new().months(1)).ok()?)?)
        }
        10 => {
            let d: Date = text.parse().ok()?;
            (day(d)?, day(d.tomorrow().ok()?)?)
        }
        _ => {
            // A full dateTime must carry its offset (FHIR requires one with a time).
            let t: jiff::Timestamp = text.parse().ok()?;
            (t, t.checked_add(jiff::SignedDuration::from_secs(1)).ok()?)
        }
    };
    Some((Timestamp::from(start), Timestamp::from(end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str) -> (Option<String>, Option<String>) {
        let (a, b) = date(v, &TimeZone::UTC).unwrap();
        let s = |t: Option<Timestamp>| t.and_then(|t| t.to_jiff()).map(|t| t.to_string());
        (s(a), s(b))
    }

    #[test]
    fn a_day_is_the_whole_day_and_prefixes_take_its_edges() {
        let start = Some("2026-03-02T00:00:00Z".to_owned());
        let end = Some("2026-03-03T00:00:00Z".to_owned());
        assert_eq!(range("2026-03-02"), (start.clone(), end.clone()));
        assert_eq!(range("ge2026-03-02"), (start.clone(), None));
        assert_eq!(range("gt2026-03-02"), (end.clone(), None));
        assert_eq!(range("le2026-03-02"), (None, end));
        assert_eq!(range("lt2026-03-02"), (None, start));
    }

    #[test]
    fn a_month_and_a_year_are_whole() {
        assert_eq!(
            range("2026-02"),
            (Some("2026-02-01T00:00:00Z".into()), Some("2026-03-01T00:00:00Z".into()))
        );
        assert_eq!(
            range("2026"),
            (Some("2026-01-01T00:00:00Z".into()), Some("2027-01-01T00:00:00Z".into()))
        );
    }

    #[test]
    fn a_time_needs_its_offset_and_other_prefixes_are_refused() {
        assert!(date("2026-03-02T08:00:00", &TimeZone::UTC).is_err());
        assert!(date("ge2026-03-02T08:00:00+01:00", &TimeZone::UTC).is_ok());
        assert!(date("ap2026-03-02", &TimeZone::UTC).is_err());
        assert!(date("2026-13-02", &TimeZone::UTC).is_err());
        assert!(date("yesterday", &TimeZone::UTC).is_err());
    }
}
