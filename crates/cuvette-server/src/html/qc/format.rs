//! Helpers of the QC screens: links and ids, numbers as the bench writes them, times in the
//! lab's zone, and form errors named after their fields.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use cuvette_app::FieldError;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::AppState;

/// Percent-encodes one path segment or query value (everything but RFC 3986's unreserved
/// characters).
pub(super) fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, crate::web::UNRESERVED_ONLY).to_string()
}

/// An HTML id made of safe characters only.
pub(super) fn html_id(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

pub(super) fn lockout_href(instrument_id: i64, test_code: &str) -> String {
    format!("/qc/lockout/{instrument_id}/{}", segment(test_code))
}

pub(super) fn chart_href(target_id: i64) -> String {
    format!("/qc/chart/{target_id}")
}

/// A stored number as typed: shortest form, leading zero, no invented trailing zeros.
pub(super) fn number(v: f64) -> String {
    if v.is_finite() { format!("{v}") } else { String::new() }
}

/// A target as the bench reads it: the mean to the SD's precision and the SD to one more
/// decimal, without trailing zeros ("100.47 ± 1.877" is "100.5 ± 1.88", "250 ± 5" stays).
pub(super) fn target_text(mean: f64, sd: f64) -> (String, String) {
    let d = decimals(sd);
    (trimmed(mean, d), trimmed(sd, d + 1))
}

/// `v` to at most `decimals`, without trailing zeros.
pub(super) fn trimmed(v: f64, decimals: usize) -> String {
    let s = fixed(v, decimals);
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// Decimals that show `step` (an SD) with two significant digits: 2.5 → 1, 0.12 → 2, 15 → 0.
pub(super) fn decimals(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) {
        return 2;
    }
    (1 - step.log10().floor() as i32).clamp(0, 4) as usize
}

/// `v` rounded to `decimals`, never "-0.0".
pub(super) fn fixed(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let s = format!("{v:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_owned(),
        _ => s,
    }
}

/// A z-score as the bench reads it: "+2.31".
pub(super) fn signed(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let s = fixed(v, 2);
    if s.starts_with('-') || s == "0.00" { s } else { format!("+{s}") }
}

/// Today in the lab's zone.
pub(super) fn lab_today(s: &AppState) -> Date {
    s.lab.now().to_zoned_datetime(s.lab.config().time_zone.clone()).date()
}

/// Midnight of `date` in `tz`, as UTC microseconds.
pub(super) fn start_of(date: Date, tz: &TimeZone) -> Option<i64> {
    date.to_zoned_datetime(tz.clone()).ok().map(|z| z.timestamp().as_microsecond())
}

/// ISO 8601 with the lab's offset: "2026-11-14T08:05:00+01:00".
pub(super) fn iso_time(micros: i64, tz: &TimeZone) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .unwrap_or_default()
}

/// The text of one time tick: dates for long periods, hours for short ones.
pub(super) fn tick_label(micros: i64, tz: &TimeZone, span: i64) -> String {
    let format = if span > 3 * 86_400_000_000 { "%d-%b-%Y" } else { "%d-%b %H:%M" };
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.to_zoned_datetime(tz.clone()).strftime(format).to_string())
        .unwrap_or_default()
}

/// A time axis of at least an hour around `from..=to`, so a single point (or a burst of
/// points) sits mid-axis and the ticks do not pile up on each other.
pub(super) fn padded(from: i64, to: i64) -> (i64, i64) {
    const HOUR: i64 = 3_600_000_000;
    let pad = (HOUR - to.saturating_sub(from)).max(0) / 2;
    (from.saturating_sub(pad), to.saturating_add(pad))
}

/// Prefixes every error's field, so each form on a page has its own ids.
pub(super) fn prefixed(errors: Vec<FieldError>, prefix: &str) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|e| FieldError { field: format!("{prefix}{}", e.field), message: e.message })
        .collect()
}

/// The material form's fields in words, for messages that do not name their field.
pub(super) const MATERIAL_FIELDS: &[(&str, &str)] = &[
    ("product", "product"),
    ("manufacturer", "manufacturer"),
    ("lot", "lot"),
    ("sample_id", "vial barcode"),
];

/// "required" on its own does not say what is missing in the error summary: "Enter the lot".
pub(super) fn named(e: FieldError, names: &[(&str, &str)]) -> FieldError {
    match names.iter().find(|(field, _)| *field == e.field) {
        Some((_, name)) if e.message == "required" => {
            FieldError { message: format!("Enter the {name}"), field: e.field }
        }
        _ => e,
    }
}

pub(super) fn error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_owned(), message: message.into() }
}

pub(super) fn render_with(status: StatusCode, html: String) -> Response {
    (status, Html(html)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_the_bench_writes_them() {
        assert_eq!(signed(2.314), "+2.31");
        assert_eq!(signed(-0.001), "0.00");
        assert_eq!(signed(-3.2), "-3.20");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(target_text(100.47, 1.8770357369785842), ("100.5".into(), "1.88".into()));
        assert_eq!(target_text(250.0, 5.0), ("250".into(), "5".into()));
        assert_eq!(target_text(4.0, 0.1), ("4".into(), "0.1".into()));
        assert_eq!(fixed(-0.04, 1), "0.0");
        assert_eq!((decimals(2.5), decimals(0.12), decimals(15.0)), (1, 2, 0));
    }

    #[test]
    fn ids_and_segments_are_safe() {
        assert_eq!(segment("GLU/2 x"), "GLU%2F2%20x");
        assert_eq!(html_id(&["line", "3", "HbA1c/x"]), "line-3-HbA1c_x");
        assert_eq!(padded(10_000_000_000, 10_000_000_000), (8_200_000_000, 11_800_000_000));
        assert_eq!(padded(0, 7_200_000_000), (0, 7_200_000_000));
    }
}
