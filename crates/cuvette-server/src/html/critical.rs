//! Critical values at the bench (DOMAIN §7): the list of critical results still waiting for a
//! call with read-back, each with a live timer against the lab's limit; the compliance report
//! the lab's policy is measured by; and the banner every page polls so a waiting critical
//! cannot be missed wherever the bench happens to be working.
//!
//! The call itself is documented on the existing page of the result
//! (`/tests/{id}/critical-call`, in `results.rs`): this module only finds what waits.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use cuvette_app::critical::PendingCall;
use cuvette_app::records::CriticalRow;
use cuvette_app::{FieldError, Lab};
use cuvette_domain::Action;
use cuvette_domain::time::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Bench;
use crate::error::WebError;
use crate::web::{FlagChip, Page, flag_chips};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/critical", get(pending))
        .route("/critical/report", get(report))
        .route("/critical/banner", get(banner))
}

/// How many days a report covers when no dates are given.
const DEFAULT_DAYS: i64 = 30;

// ---------------------------------------------------------------------------------------------
// Periods of whole days, as typed in a form (shared with the autoverification dry run).

/// A period of whole days in the lab's time zone, both ends included.
pub(super) struct DayRange {
    /// First day, as `YYYY-MM-DD`.
    pub from: String,
    /// Last day, as `YYYY-MM-DD`.
    pub to: String,
    /// Start of the first day.
    pub start: Timestamp,
    /// Start of the day after the last (the end is exclusive in the store).
    pub end: Timestamp,
}

/// The last [`DEFAULT_DAYS`] days up to today, as the form shows them.
pub(super) fn default_days(lab: &Lab) -> (String, String) {
    let today = today(lab);
    let from = today.saturating_sub(jiff::Span::new().days(DEFAULT_DAYS));
    (from.to_string(), today.to_string())
}

fn today(lab: &Lab) -> Date {
    lab.now().to_zoned_datetime(lab.config().time_zone.clone()).date()
}

/// Reads a date as the date picker sends it (`2025-07-14`) or as the bench writes it
/// (`14-Jul-2025`).
fn parse_day(text: &str) -> Option<Date> {
    let text = text.trim();
    text.parse::<Date>().ok().or_else(|| Date::strptime("%d-%b-%Y", text).ok())
}

/// Reads `from` and `to` (empty means the default period) into a period, or says what to fix
/// for the fields `from` and `to`.
pub(super) fn day_range(lab: &Lab, from: &str, to: &str) -> Result<DayRange, Vec<FieldError>> {
    let (default_from, default_to) = default_days(lab);
    let mut errors = Vec::new();
    let mut read = |field: &str, what: &str, text: &str, default: &str| {
        let text = if text.trim().is_empty() { default } else { text };
        let day = parse_day(text);
        if day.is_none() {
            errors.push(FieldError {
                field: field.into(),
                message: format!("Enter the {what} as a date, for example {default_to}"),
            });
        }
        day
    };
    let first = read("from", "start date", from, &default_from);
    let last = read("to", "end date", to, &default_to);
    let (Some(first), Some(last)) = (first, last) else { return Err(errors) };
    if first > last {
        return Err(vec![FieldError {
            field: "from".into(),
            message: format!("The start date ({first}) must be on or before the end date ({last})"),
        }]);
    }
    let zone = lab.config().time_zone.clone();
    let start = |d: Date| d.to_zoned_datetime(zone.clone()).ok().map(|z| z.timestamp());
    let end = last.checked_add(jiff::Span::new().days(1)).ok();
    match (start(first), end.and_then(start)) {
        (Some(a), Some(b)) => Ok(DayRange {
            from: first.to_string(),
            to: last.to_string(),
            start: a.into(),
            end: b.into(),
        }),
        _ => Err(vec![FieldError {
            field: "from".into(),
            message: format!("That period is out of range: enter dates such as {default_to}"),
        }]),
    }
}

/// "12 min", or "3 h 5 min" past two hours.
fn waited(minutes: i64) -> String {
    let minutes = minutes.max(0);
    if minutes < 120 {
        format!("{minutes} min")
    } else {
        format!("{} h {} min", minutes / 60, minutes % 60)
    }
}

fn test_name(lab: &Lab, code: &str) -> String {
    lab.catalog().catalog.test(code).map(|d| d.name.clone()).unwrap_or_else(|| code.to_owned())
}

// ---------------------------------------------------------------------------------------------
// GET /critical

struct PendingLine {
    test_id: i64,
    patient: String,
    /// Date of birth, sex and MRN.
    ids: String,
    accession: String,
    code: String,
    name: String,
    value: String,
    flags: Vec<FlagChip>,
    entered: String,
    /// Entry time in epoch milliseconds, for the live timer.
    entered_ms: i64,
    waited: String,
    overdue: bool,
    escalated: String,
    attempts: i64,
}

#[derive(Template)]
#[template(path = "critical.html")]
struct PendingPage {
    page: Page,
    lines: Vec<PendingLine>,
    limit: i64,
    /// The lab's clock in epoch milliseconds, so the timers count from the server's now.
    now_ms: i64,
    may_call: bool,
    overdue_count: usize,
}

fn pending_line(lab: &Lab, p: &PendingCall) -> PendingLine {
    let r = &p.row;
    PendingLine {
        test_id: r.ordered_test_id,
        patient: r.patient_name.clone(),
        ids: super::patients::list_ids(&r.birth_date, &r.sex, &r.mrn),
        accession: r.accession.clone(),
        code: r.test_code.clone(),
        name: test_name(lab, &r.test_code),
        value: r.report_text.clone(),
        flags: flag_chips(&r.flags),
        entered: lab.format_time(r.entered_at),
        entered_ms: r.entered_at.as_micros() / 1000,
        waited: waited(p.minutes_waiting),
        overdue: p.overdue,
        escalated: r.escalated_at.map(|t| lab.format_time(t)).unwrap_or_default(),
        attempts: r.attempts,
    }
}

async fn pending(State(s): State<AppState>, bench: Bench) -> Result<Response, WebError> {
    let lab = &s.lab;
    // Opening the list escalates what is overdue now, without waiting for the minute ticker.
    // A failure here must not hide the list itself.
    if let Err(e) = lab.escalate_overdue_calls().await {
        tracing::error!(error = %e, "escalating overdue critical calls failed");
    }
    let calls = lab.pending_critical_calls(&bench.actor).await?;
    let lines: Vec<PendingLine> = calls.iter().map(|p| pending_line(lab, p)).collect();
    let page = PendingPage {
        page: Page::new(&bench, "Critical calls", "critical"),
        overdue_count: lines.iter().filter(|l| l.overdue).count(),
        lines,
        limit: lab.config().critical_call_minutes,
        now_ms: lab.now().as_millisecond(),
        may_call: bench.may(Action::DocumentCriticalCall),
    };
    Ok(Html(page.render()?).into_response())
}

// ---------------------------------------------------------------------------------------------
// GET /critical/banner

#[derive(Template)]
#[template(path = "critical_banner.html")]
struct BannerFragment {
    count: usize,
    oldest: String,
    overdue: usize,
    /// The list could not be read: say so rather than show nothing.
    failed: bool,
}

/// The banner as every signed-in page draws it: `None` for a role that sees no results (the
/// page then has no banner at all), an empty string when nothing waits. Reads the pending
/// calls through the app's query on the partial index of critical results, so it costs one
/// indexed read per page whatever the lab's history.
pub(crate) async fn critical_banner(lab: &Lab, actor: &cuvette_app::Actor) -> Option<String> {
    if !lab.privileges().may(actor.role, Action::ViewResults) {
        return None;
    }
    let fragment = match lab.pending_critical_calls(actor).await {
        Ok(calls) => BannerFragment {
            count: calls.len(),
            oldest: waited(calls.iter().map(|c| c.minutes_waiting).max().unwrap_or(0)),
            overdue: calls.iter().filter(|c| c.overdue).count(),
            failed: false,
        },
        Err(e) => {
            // Silence would read as "nothing waits": say the check failed.
            tracing::error!(error = %e, "critical banner: pending calls could not be read");
            BannerFragment { count: 0, oldest: String::new(), overdue: 0, failed: true }
        }
    };
    match fragment.render() {
        Ok(html) => Some(html.trim().to_owned()),
        Err(e) => {
            // A page without its banner would read as "nothing waits": draw the failure line.
            tracing::error!(error = %e, "critical banner failed to render");
            let failed =
                BannerFragment { count: 0, oldest: String::new(), overdue: 0, failed: true };
            Some(failed.render().unwrap_or_default())
        }
    }
}

/// The fragment the script fetches to refresh the banner every page is drawn with. It never
/// redirects and never draws an error page, because whatever it returns is put inside the
/// page: signed out, or a role that sees no results, gets an empty fragment.
async fn banner(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    // The poll must not count as activity, or the automatic logoff would never come.
    let Some(token) = crate::auth::cookie(&headers, crate::auth::SESSION_COOKIE) else {
        return Html(String::new()).into_response();
    };
    let Ok((_, actor)) = s.lab.peek_session(&token).await else {
        return Html(String::new()).into_response();
    };
    Html(critical_banner(&s.lab, &actor).await.unwrap_or_default()).into_response()
}

// ---------------------------------------------------------------------------------------------
// GET /critical/report?from=&to=

#[derive(Deserialize, Default)]
#[serde(default)]
struct ReportQuery {
    from: String,
    to: String,
}

struct Summary {
    limit: i64,
    total: usize,
    within: usize,
    percent: String,
    late: usize,
    uncalled: usize,
    escalated: usize,
    median: String,
    p90: String,
}

struct TestTotal {
    code: String,
    name: String,
    total: usize,
    within: usize,
    percent: String,
}

struct ReportLine {
    test_id: i64,
    entered: String,
    patient: String,
    /// Date of birth, sex and MRN.
    ids: String,
    accession: String,
    code: String,
    value: String,
    flags: Vec<FlagChip>,
    called: String,
    minutes: String,
    /// "within", "late" or "uncalled": the chip's class; its text is `outcome_label`.
    outcome: &'static str,
    outcome_label: &'static str,
    person: String,
    by: String,
    attempts: i64,
    escalated: String,
}

#[derive(Template)]
#[template(path = "critical_report.html")]
struct ReportPage {
    page: Page,
    from: String,
    to: String,
    summary: Option<Summary>,
    tests: Vec<TestTotal>,
    lines: Vec<ReportLine>,
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 { "–".into() } else { format!("{:.1}%", part as f64 * 100.0 / whole as f64) }
}

fn report_line(lab: &Lab, limit: i64, r: &CriticalRow) -> ReportLine {
    let minutes = r.called_at.map(|c| c.minutes_since(r.entered_at));
    // Judged to the microsecond, as the report's counts are.
    let (outcome, outcome_label) = match r.called_at {
        Some(c) if c.since(r.entered_at) <= jiff::SignedDuration::from_mins(limit) => {
            ("within", "✓ Within limit")
        }
        Some(_) => ("late", "⚠ Late"),
        None => ("uncalled", "✗ Not called"),
    };
    ReportLine {
        test_id: r.ordered_test_id,
        entered: lab.format_time(r.entered_at),
        patient: r.patient_name.clone(),
        ids: super::patients::list_ids(&r.birth_date, &r.sex, &r.mrn),
        accession: r.accession.clone(),
        code: r.test_code.clone(),
        value: r.report_text.clone(),
        flags: flag_chips(&r.flags),
        called: r.called_at.map(|t| lab.format_time(t)).unwrap_or_default(),
        minutes: minutes.map(waited).unwrap_or_default(),
        outcome,
        outcome_label,
        person: r.called_person.clone().unwrap_or_default(),
        by: r.called_by.clone().unwrap_or_default(),
        attempts: r.attempts,
        escalated: r.escalated_at.map(|t| lab.format_time(t)).unwrap_or_default(),
    }
}

async fn report(
    State(s): State<AppState>,
    bench: Bench,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    let lab = &s.lab;
    let range = match day_range(lab, &q.from, &q.to) {
        Ok(range) => range,
        Err(errors) => {
            // Keep what was typed so it can be corrected.
            let page = ReportPage {
                page: Page::new(&bench, "Critical-call compliance", "critical").with_errors(errors),
                from: q.from,
                to: q.to,
                summary: None,
                tests: Vec::new(),
                lines: Vec::new(),
            };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response());
        }
    };
    let c = lab.critical_compliance(&bench.actor, range.start, range.end).await?;
    let minutes = |m: Option<i64>| m.map(waited).unwrap_or_else(|| "–".into());
    let summary = Summary {
        limit: c.limit_minutes,
        total: c.total,
        within: c.within_limit,
        percent: percent(c.within_limit, c.total),
        late: c.late,
        uncalled: c.uncalled,
        escalated: c.escalated,
        median: minutes(c.median_minutes),
        p90: minutes(c.p90_minutes),
    };
    let tests = c
        .by_test
        .iter()
        .map(|(code, total, within)| TestTotal {
            name: test_name(lab, code),
            code: code.clone(),
            total: *total,
            within: *within,
            percent: percent(*within, *total),
        })
        .collect();
    let lines = c.rows.iter().map(|r| report_line(lab, c.limit_minutes, r)).collect();
    let page = ReportPage {
        page: Page::new(&bench, "Critical-call compliance", "critical"),
        from: range.from,
        to: range.to,
        summary: Some(summary),
        tests,
        lines,
    };
    Ok(Html(page.render()?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_times_read_as_minutes_then_hours() {
        assert_eq!(waited(0), "0 min");
        assert_eq!(waited(119), "119 min");
        assert_eq!(waited(125), "2 h 5 min");
        assert_eq!(waited(-3), "0 min");
    }

    #[test]
    fn days_are_read_as_the_picker_or_the_bench_writes_them() {
        assert_eq!(parse_day("2025-07-14"), Some(jiff::civil::date(2025, 7, 14)));
        assert_eq!(parse_day(" 14-Jul-2025 "), Some(jiff::civil::date(2025, 7, 14)));
        assert_eq!(parse_day("14/07/25"), None);
    }
}
