//! Quality control at the bench (UX.md §1.11): the overview of every test × instrument with
//! its control levels and lockout standing, QC entry with the Westgard verdict shown at once,
//! QC set-up (materials, targets, rules, moving averages), the Levey-Jennings chart with its
//! monthly statistics and sigma metric (and the same points as CSV), and the lockout screen:
//! the patient results to re-run, the corrective action, and the run history.
//!
//! Standing is always written as text ("LOCKED", "1-2s warning"), never colour alone.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cuvette_app::qc::{LeveyJenningsData, MaterialForm, QC_INTERVAL_HOURS, QcLine, QcStanding};
use cuvette_app::records::{MovingAverageRow, QcPoint, QcRunRow, TargetRow};
use cuvette_app::{AppError, FieldError};
use cuvette_domain::Action;
use cuvette_domain::autoverify::QcState;
use cuvette_domain::qc::{
    ControlStatistics, CorrectiveAction, QcStatus, RUNS_TO_ESTABLISH_TARGET, RecordedViolation,
    RuleSet, SigmaRecommendation, TargetSource, WestgardRule,
};
use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Bench;
use crate::chart::{self, ChartPoint, LeveyJennings, LotChange, MovingAverageChart};
use crate::error::WebError;
use crate::web::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/qc", get(overview))
        .route("/qc/runs", post(record_run))
        .route("/qc/materials", post(add_material))
        .route("/qc/targets", post(set_target))
        .route("/qc/targets/{id}/adopt", post(adopt_target))
        .route("/qc/rules", post(set_rules))
        .route("/qc/sample-pattern", post(set_pattern))
        .route("/qc/moving-averages", post(set_moving_average))
        // `{target}` is "12" (the page) or "12.csv" (its points as CSV).
        .route("/qc/chart/{target}", get(chart_or_csv))
        .route("/qc/chart/{target}/csv", get(chart_csv))
        .route("/qc/lockout/{instrument_id}/{test_code}", get(lockout))
        .route("/qc/lockout/{instrument_id}/{test_code}/action", post(corrective_action))
}

// ---------------------------------------------------------------------------------------------
// Helpers: links, numbers, times, CSV.

/// Percent-encodes one path segment or query value (everything but RFC 3986's unreserved
/// characters).
fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, crate::web::UNRESERVED_ONLY).to_string()
}

/// An HTML id made of safe characters only.
fn html_id(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn lockout_href(instrument_id: i64, test_code: &str) -> String {
    format!("/qc/lockout/{instrument_id}/{}", segment(test_code))
}

fn chart_href(target_id: i64) -> String {
    format!("/qc/chart/{target_id}")
}

/// A stored number as typed: shortest form, leading zero, no invented trailing zeros.
fn number(v: f64) -> String {
    if v.is_finite() { format!("{v}") } else { String::new() }
}

/// A target as the bench reads it: the mean to the SD's precision and the SD to one more
/// decimal, without trailing zeros ("100.47 ± 1.877" is "100.5 ± 1.88", "250 ± 5" stays).
fn target_text(mean: f64, sd: f64) -> (String, String) {
    let d = decimals(sd);
    (trimmed(mean, d), trimmed(sd, d + 1))
}

/// `v` to at most `decimals`, without trailing zeros.
fn trimmed(v: f64, decimals: usize) -> String {
    let s = fixed(v, decimals);
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// Decimals that show `step` (an SD) with two significant digits: 2.5 → 1, 0.12 → 2, 15 → 0.
fn decimals(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) {
        return 2;
    }
    (1 - step.log10().floor() as i32).clamp(0, 4) as usize
}

/// `v` rounded to `decimals`, never "-0.0".
fn fixed(v: f64, decimals: usize) -> String {
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
fn signed(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let s = fixed(v, 2);
    if s.starts_with('-') || s == "0.00" { s } else { format!("+{s}") }
}

/// Parses an optional decimal number as typed ("4,2" is 4.2); `Ok(None)` when blank.
fn parse_decimal(text: &str) -> Result<Option<f64>, ()> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let t = if t.contains('.') { t.to_owned() } else { t.replacen(',', ".", 1) };
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(()),
    }
}

/// Today in the lab's zone.
fn lab_today(s: &AppState) -> Date {
    s.lab.now().to_zoned_datetime(s.lab.config().time_zone.clone()).date()
}

/// Midnight of `date` in `tz`, as UTC microseconds.
fn start_of(date: Date, tz: &TimeZone) -> Option<i64> {
    date.to_zoned_datetime(tz.clone()).ok().map(|z| z.timestamp().as_microsecond())
}

/// ISO 8601 with the lab's offset: "2026-11-14T08:05:00+01:00".
fn iso_time(micros: i64, tz: &TimeZone) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .unwrap_or_default()
}

/// The text of one time tick: dates for long periods, hours for short ones.
fn tick_label(micros: i64, tz: &TimeZone, span: i64) -> String {
    let format = if span > 3 * 86_400_000_000 { "%d-%b-%Y" } else { "%d-%b %H:%M" };
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.to_zoned_datetime(tz.clone()).strftime(format).to_string())
        .unwrap_or_default()
}

/// A time axis of at least an hour around `from..=to`, so a single point (or a burst of
/// points) sits mid-axis and the ticks do not pile up on each other.
fn padded(from: i64, to: i64) -> (i64, i64) {
    const HOUR: i64 = 3_600_000_000;
    let pad = (HOUR - to.saturating_sub(from)).max(0) / 2;
    (from.saturating_sub(pad), to.saturating_add(pad))
}

/// Prefixes every error's field, so each form on a page has its own ids.
fn prefixed(errors: Vec<FieldError>, prefix: &str) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|e| FieldError { field: format!("{prefix}{}", e.field), message: e.message })
        .collect()
}

/// The material form's fields in words, for messages that do not name their field.
const MATERIAL_FIELDS: &[(&str, &str)] = &[
    ("product", "product"),
    ("manufacturer", "manufacturer"),
    ("lot", "lot"),
    ("sample_id", "vial barcode"),
];

/// "required" on its own does not say what is missing in the error summary: "Enter the lot".
fn named(e: FieldError, names: &[(&str, &str)]) -> FieldError {
    match names.iter().find(|(field, _)| *field == e.field) {
        Some((_, name)) if e.message == "required" => {
            FieldError { message: format!("Enter the {name}"), field: e.field }
        }
        _ => e,
    }
}

fn error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_owned(), message: message.into() }
}

fn render_with(status: StatusCode, html: String) -> Response {
    (status, Html(html)).into_response()
}

// ---------------------------------------------------------------------------------------------
// What the templates draw.

/// A lockout standing in words and a class; the words alone carry the meaning.
struct StandingView {
    /// "LOCKED", "1-2s warning", "QC acceptable", "No QC in 24 h", "No QC yet".
    label: String,
    /// CSS class of the chip (`qc-locked` for a lockout).
    class: &'static str,
    locked: bool,
    /// What the bench must do next.
    reason: String,
    /// "14-Nov-2026 08:05 · rejected".
    last_run: String,
}

fn standing_view(s: &AppState, standing: Option<&QcStanding>, now: i64) -> StandingView {
    let Some(st) = standing else {
        return StandingView {
            label: "No QC yet".into(),
            class: "qc-none",
            locked: false,
            reason: "no QC run recorded".into(),
            last_run: String::new(),
        };
    };
    let (label, class) = if st.locked {
        ("LOCKED".to_owned(), "qc-locked")
    } else {
        match st.state(now) {
            QcState::Warning { .. } => ("1-2s warning".to_owned(), "qc-warning"),
            QcState::Acceptable => ("QC acceptable".to_owned(), "qc-ok"),
            _ if st.facts.last_good.is_none() => ("No QC yet".to_owned(), "qc-none"),
            _ => (format!("No QC in {QC_INTERVAL_HOURS} h"), "qc-none"),
        }
    };
    let last_run = st
        .facts
        .last_run
        .as_ref()
        .map(|(at, status)| format!("{} · {}", s.lab.format_time(*at), status_words(status)))
        .unwrap_or_default();
    // "QC acceptable" twice says nothing more.
    let reason =
        if st.reason.eq_ignore_ascii_case(&label) { String::new() } else { st.reason.clone() };
    StandingView { label, class, locked: st.locked, reason, last_run }
}

fn status_words(status: &QcStatus) -> &'static str {
    match status {
        QcStatus::Accepted => "accepted",
        QcStatus::Warning => "accepted with a 1-2s warning",
        QcStatus::Rejected => "REJECTED",
    }
}

/// One violation as the bench reads it.
struct ViolationView {
    rule: String,
    detail: String,
}

fn violations_of(recorded: &[RecordedViolation]) -> Vec<ViolationView> {
    recorded
        .iter()
        .map(|v| ViolationView {
            rule: v.rule.code().to_owned(),
            detail: v.detail_without_rule().to_owned(),
        })
        .collect()
}

/// One run in a history table.
struct RunView {
    id: i64,
    at: String,
    status: String,
    status_label: &'static str,
    by: String,
    source: &'static str,
    violations: Vec<ViolationView>,
}

fn run_view(s: &AppState, r: &QcRunRow) -> RunView {
    RunView {
        id: r.id,
        at: s.lab.format_time(r.at),
        status: r.status.code().to_owned(),
        status_label: status_words(&r.status),
        by: r.entered_by.clone(),
        source: r.source.words(),
        violations: violations_of(&r.violations),
    }
}

/// The verdict of the run just recorded.
struct VerdictView {
    rejected: bool,
    heading: String,
    violations: Vec<ViolationView>,
    lockout_href: String,
}

fn verdict_view(run: &QcRunRow, instrument_name: &str) -> VerdictView {
    let (test, rejected) = (&run.test_code, run.status == QcStatus::Rejected);
    let heading = match run.status {
        QcStatus::Rejected => format!(
            "QC REJECTED: {test} on {instrument_name}. Patient results are held: document a corrective action, then run QC again."
        ),
        QcStatus::Warning => format!(
            "QC accepted with a 1-2s warning: {test} on {instrument_name}. Look at the chart before going on."
        ),
        QcStatus::Accepted => format!("QC accepted: {test} on {instrument_name}."),
    };
    VerdictView {
        rejected,
        heading,
        violations: violations_of(&run.violations),
        lockout_href: lockout_href(run.instrument_id, test),
    }
}

/// One control level of a line, with its entry field.
struct LevelView {
    level: i64,
    lot: String,
    product: String,
    expires_on: String,
    expired: bool,
    mean: String,
    sd: String,
    source: &'static str,
    /// Field name and id: `value_{target_id}`.
    field: String,
    /// What was typed, when a refused form comes back.
    value: String,
    chart_href: String,
}

/// One test on one instrument.
struct LineView {
    anchor: String,
    instrument_id: i64,
    instrument_name: String,
    test_code: String,
    unit: String,
    lockout_href: String,
    standing: StandingView,
    has_standing: bool,
    rules: String,
    levels: Vec<LevelView>,
    /// Where the form goes back to: "overview" or "lockout".
    return_to: &'static str,
}

fn level_views(targets: &[TargetRow], typed: Option<&RunInput>, today: Date) -> Vec<LevelView> {
    targets
        .iter()
        .map(|t| LevelView {
            level: t.material.level,
            lot: t.material.lot.clone(),
            product: t.material.product.clone(),
            expires_on: t.material.expires_on.clone(),
            expired: t.material.expires_on.parse::<Date>().is_ok_and(|d| d < today),
            mean: target_text(t.mean, t.sd).0,
            sd: target_text(t.mean, t.sd).1,
            source: t.source.words(),
            field: format!("value_{}", t.id),
            value: typed.and_then(|r| r.values.get(&t.id).cloned()).unwrap_or_default(),
            chart_href: chart_href(t.id),
        })
        .collect()
}

async fn line_view(
    s: &AppState,
    line: &QcLine,
    typed: Option<&RunInput>,
    now: i64,
    today: Date,
    return_to: &'static str,
) -> Result<LineView, WebError> {
    let levels = line
        .targets
        .iter()
        .map(|t| t.material.level)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let rules = s.lab.westgard_rules(&line.test_code, levels).await?;
    let typed =
        typed.filter(|r| r.instrument_id == line.instrument_id && r.test_code == line.test_code);
    Ok(LineView {
        anchor: html_id(&["line", &line.instrument_id.to_string(), &line.test_code]),
        instrument_id: line.instrument_id,
        instrument_name: line.instrument_name.clone(),
        test_code: line.test_code.clone(),
        unit: unit_of(s, &line.test_code),
        lockout_href: lockout_href(line.instrument_id, &line.test_code),
        standing: standing_view(s, line.standing.as_ref(), now),
        has_standing: line.standing.is_some(),
        rules: rules.rules().iter().map(|r| r.code()).collect::<Vec<_>>().join(", "),
        levels: level_views(&line.targets, typed, today),
        return_to,
    })
}

fn unit_of(s: &AppState, test_code: &str) -> String {
    s.lab.catalog().catalog.test(test_code).map(|d| d.unit.clone()).unwrap_or_default()
}

/// An option of a `<select>`.
struct Choice {
    value: String,
    label: String,
}

fn test_choices(s: &AppState) -> Vec<Choice> {
    let catalog = s.lab.catalog();
    let mut tests: Vec<Choice> = catalog
        .catalog
        .tests()
        .filter(|t| {
            !t.is_calculated() && t.result_type == cuvette_domain::catalog::ResultType::Numeric
        })
        .map(|t| Choice {
            value: t.code.clone(),
            label: if t.unit.is_empty() {
                format!("{} — {}", t.code, t.name)
            } else {
                format!("{} — {} ({})", t.code, t.name, t.unit)
            },
        })
        .collect();
    tests.sort_by(|a, b| a.value.cmp(&b.value));
    tests
}

// ---------------------------------------------------------------------------------------------
// Forms as typed.

#[derive(Deserialize, Default)]
#[serde(default)]
struct MaterialInput {
    csrf: String,
    product: String,
    manufacturer: String,
    lot: String,
    level: String,
    expires_on: String,
    sample_id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TargetInput {
    csrf: String,
    material_id: String,
    instrument_id: String,
    test_code: String,
    mean: String,
    sd: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RulesInput {
    csrf: String,
    test_code: String,
    rules: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MaInput {
    csrf: String,
    instrument_id: String,
    test_code: String,
    window_size: String,
    truncate_low: String,
    truncate_high: String,
    target: String,
    lower_limit: String,
    upper_limit: String,
}

/// A QC run as typed: one value per target.
struct RunInput {
    instrument_id: i64,
    test_code: String,
    values: BTreeMap<i64, String>,
}

/// Every form of the overview, as typed (all empty on a fresh page).
#[derive(Default)]
struct Typed {
    material: MaterialInput,
    target: TargetInput,
    rules: RulesInput,
    ma: MaInput,
    pattern: PatternInput,
    run: Option<RunInput>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PatternInput {
    csrf: String,
    instrument_id: String,
    qc_pattern: String,
}

// ---------------------------------------------------------------------------------------------
// 1. The overview.

struct MaRuleView {
    test_code: String,
    instrument_name: String,
    window_size: i64,
    truncation: String,
    target: String,
    limits: String,
}

struct RuleRef {
    code: &'static str,
    describe: &'static str,
    warning: bool,
}

#[derive(Template)]
#[template(path = "qc_overview.html")]
struct OverviewPage {
    page: Page,
    may_run: bool,
    may_manage: bool,
    lines: Vec<LineView>,
    verdict: Option<VerdictView>,
    materials: Vec<Choice>,
    instruments: Vec<Choice>,
    /// (pattern, instrument name) of instruments that send control runs.
    sample_patterns: Vec<Choice>,
    tests: Vec<Choice>,
    rule_reference: Vec<RuleRef>,
    classic_rules: String,
    ma_rules: Vec<MaRuleView>,
    typed: Typed,
}

async fn overview_page(
    s: &AppState,
    bench: &Bench,
    errors: Vec<FieldError>,
    notice: Option<String>,
    verdict: Option<VerdictView>,
    typed: Typed,
) -> Result<OverviewPage, WebError> {
    let qc_lines = s.lab.qc_overview(&bench.actor).await?;
    let (now, today) = (s.lab.now().as_microsecond(), lab_today(s));
    let mut lines = Vec::with_capacity(qc_lines.len());
    for line in &qc_lines {
        lines.push(line_view(s, line, typed.run.as_ref(), now, today, "overview").await?);
    }
    let may_manage = bench.may(Action::ManageQc);
    let instrument_rows = s.lab.instruments(&bench.actor).await?;
    let instruments: Vec<Choice> = instrument_rows
        .iter()
        .map(|(i, _)| Choice { value: i.id.to_string(), label: i.name.clone() })
        .collect();
    let sample_patterns: Vec<Choice> = instrument_rows
        .iter()
        .filter(|(i, _)| !i.qc_pattern.is_empty())
        .map(|(i, _)| Choice { value: i.qc_pattern.clone(), label: i.name.clone() })
        .collect();
    let materials = if may_manage {
        s.lab
            .qc_materials(&bench.actor)
            .await?
            .into_iter()
            .filter(|m| m.active)
            .map(|m| Choice {
                value: m.id.to_string(),
                label: format!(
                    "{} · lot {} · level {} · expires {}",
                    m.product, m.lot, m.level, m.expires_on
                ),
            })
            .collect()
    } else {
        Vec::new()
    };
    let ma_rules = s
        .lab
        .moving_average_rules(&bench.actor)
        .await?
        .into_iter()
        .map(|r| MaRuleView {
            instrument_name: instrument_rows
                .iter()
                .find(|(i, _)| i.id == r.instrument_id)
                .map(|(i, _)| i.name.clone())
                .unwrap_or_else(|| format!("instrument {}", r.instrument_id)),
            truncation: match (r.truncate_low, r.truncate_high) {
                (None, None) => "none".into(),
                (low, high) => format!(
                    "{} to {}",
                    low.map(number).unwrap_or_else(|| "–".into()),
                    high.map(number).unwrap_or_else(|| "–".into())
                ),
            },
            target: number(r.target),
            limits: format!("{} to {}", number(r.lower_limit), number(r.upper_limit)),
            window_size: r.window_size,
            test_code: r.test_code,
        })
        .collect();
    Ok(OverviewPage {
        page: Page::new(bench, "Quality control", "qc").with_errors(errors).with_notice(notice),
        may_run: bench.may(Action::RunQc),
        may_manage,
        lines,
        verdict,
        materials,
        instruments,
        sample_patterns,
        tests: test_choices(s),
        rule_reference: WestgardRule::ALL
            .iter()
            .map(|r| RuleRef { code: r.code(), describe: r.describe(), warning: r.is_warning() })
            .collect(),
        classic_rules: RuleSet::classic().to_string(),
        ma_rules,
        typed,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OverviewQuery {
    done: String,
    run: String,
    instrument: String,
    test: String,
}

fn done_notice(done: &str) -> Option<String> {
    Some(
        match done {
            "material" => "Control material added. Set its target mean and SD next.",
            "target" => "Target saved.",
            "rules" => "Westgard rules saved. They judge the next run.",
            "pattern" => "Control sample ids saved: the instrument's control runs now go to QC.",
            "ma" => "Moving-average rule saved.",
            "adopted" => "The lab's own target is now in use for this level.",
            "action" => {
                "Corrective action documented. Run QC: results stay held until it is acceptable."
            }
            _ => return None,
        }
        .to_owned(),
    )
}

async fn overview(
    State(s): State<AppState>,
    bench: Bench,
    Query(q): Query<OverviewQuery>,
) -> Result<Html<String>, WebError> {
    let verdict = match (q.run.parse::<i64>(), q.instrument.parse::<i64>()) {
        (Ok(run), Ok(instrument)) if !q.test.is_empty() => {
            match s.lab.lockout(&bench.actor, instrument, &q.test).await {
                Ok(view) => view
                    .runs
                    .iter()
                    .find(|r| r.id == run)
                    .map(|r| verdict_view(r, &view.standing.facts.instrument_name)),
                Err(AppError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            }
        }
        _ => None,
    };
    let page =
        overview_page(&s, &bench, vec![], done_notice(&q.done), verdict, Typed::default()).await?;
    Ok(Html(page.render()?))
}

async fn refused_overview(
    s: &AppState,
    bench: &Bench,
    errors: Vec<FieldError>,
    typed: Typed,
) -> Result<Response, WebError> {
    let page = overview_page(s, bench, errors, None, None, typed).await?;
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, page.render()?))
}

async fn add_material(
    State(s): State<AppState>,
    bench: Bench,
    Form(form): Form<MaterialInput>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let material = MaterialForm {
        product: form.product.clone(),
        manufacturer: form.manufacturer.clone(),
        lot: form.lot.clone(),
        level: form.level.clone(),
        expires_on: form.expires_on.clone(),
        sample_id: form.sample_id.clone(),
    };
    match s.lab.add_material(&bench.actor, &material).await {
        Ok(_) => Ok(Redirect::to("/qc?done=material").into_response()),
        Err(AppError::Invalid(errors)) => {
            let typed = Typed { material: form, ..Typed::default() };
            let errors = errors.into_iter().map(|e| named(e, MATERIAL_FIELDS)).collect();
            refused_overview(&s, &bench, prefixed(errors, "material-"), typed).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn set_target(
    State(s): State<AppState>,
    bench: Bench,
    Form(form): Form<TargetInput>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let material = form.material_id.trim().parse::<i64>().ok();
    let instrument = form.instrument_id.trim().parse::<i64>().ok();
    let mut errors = Vec::new();
    let known = s.lab.qc_materials(&bench.actor).await?;
    if !material.is_some_and(|id| known.iter().any(|m| m.id == id)) {
        errors.push(error("target-material_id", "choose the control material"));
    }
    if instrument.is_none() {
        errors.push(error("target-instrument_id", "choose the instrument"));
    }
    let outcome = match (errors.is_empty(), material, instrument) {
        (true, Some(material), Some(instrument)) => s
            .lab
            .set_target(
                &bench.actor,
                material,
                instrument,
                form.test_code.trim(),
                &form.mean,
                &form.sd,
            )
            .await
            .map(|_| ()),
        _ => Err(AppError::Invalid(Vec::new())),
    };
    match outcome {
        Ok(()) => Ok(Redirect::to("/qc?done=target").into_response()),
        Err(AppError::Invalid(more)) => {
            errors.extend(prefixed(more, "target-"));
            let typed = Typed { target: form, ..Typed::default() };
            refused_overview(&s, &bench, errors, typed).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn set_rules(
    State(s): State<AppState>,
    bench: Bench,
    Form(form): Form<RulesInput>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let test_code = form.test_code.trim().to_owned();
    let outcome = if s.lab.catalog().catalog.test(&test_code).is_none() {
        Err(AppError::Invalid(vec![error("test_code", "choose a test from the catalog")]))
    } else {
        s.lab.set_westgard_rules(&bench.actor, &test_code, &form.rules).await.map(|_| ())
    };
    match outcome {
        Ok(()) => Ok(Redirect::to("/qc?done=rules").into_response()),
        Err(AppError::Invalid(errors)) => {
            let typed = Typed { rules: form, ..Typed::default() };
            refused_overview(&s, &bench, prefixed(errors, "rules-"), typed).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The sample ids an instrument sends for its control runs.
async fn set_pattern(
    State(s): State<AppState>,
    bench: Bench,
    Form(form): Form<PatternInput>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let outcome = match form.instrument_id.trim().parse::<i64>() {
        Ok(id) => s.lab.set_qc_pattern(&bench.actor, id, &form.qc_pattern).await,
        Err(_) => Err(AppError::Invalid(vec![error("instrument_id", "choose the instrument")])),
    };
    match outcome {
        Ok(()) => Ok(Redirect::to("/qc?done=pattern").into_response()),
        Err(AppError::Invalid(errors)) => {
            let typed = Typed { pattern: form, ..Typed::default() };
            refused_overview(&s, &bench, prefixed(errors, "pattern-"), typed).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads the moving-average form into a rule, or says what is wrong with each field.
fn moving_average_rule(
    form: &MaInput,
    tests: &[Choice],
) -> Result<MovingAverageRow, Vec<FieldError>> {
    let mut errors = Vec::new();
    let instrument_id = form.instrument_id.trim().parse::<i64>().ok();
    if instrument_id.is_none() {
        errors.push(error("instrument_id", "choose the instrument"));
    }
    let test_code = form.test_code.trim();
    if !tests.iter().any(|t| t.value == test_code) {
        errors.push(error("test_code", "choose a numeric test from the catalog"));
    }
    let window_size = form.window_size.trim().parse::<i64>().ok();
    if window_size.is_none() {
        errors.push(error("window_size", "give the number of results to average, 5 to 500"));
    }
    let mut optional = |field: &str, text: &str| match parse_decimal(text) {
        Ok(v) => v,
        Err(()) => {
            errors.push(error(field, format!("{:?} is not a number", text.trim())));
            None
        }
    };
    let truncate_low = optional("truncate_low", &form.truncate_low);
    let truncate_high = optional("truncate_high", &form.truncate_high);
    let target = optional("target", &form.target);
    let lower_limit = optional("lower_limit", &form.lower_limit);
    let upper_limit = optional("upper_limit", &form.upper_limit);
    for (field, value, what) in [
        ("target", target, "the target average"),
        ("lower_limit", lower_limit, "the lower control limit"),
        ("upper_limit", upper_limit, "the upper control limit"),
    ] {
        if value.is_none() && !errors.iter().any(|e| e.field == field) {
            errors.push(error(field, format!("give {what}")));
        }
    }
    if let (Some(low), Some(high)) = (truncate_low, truncate_high)
        && low >= high
    {
        errors.push(error("truncate_high", "the upper truncation limit must be above the lower"));
    }
    match (instrument_id, window_size, target, lower_limit, upper_limit) {
        (Some(instrument_id), Some(window_size), Some(target), Some(lower), Some(upper))
            if errors.is_empty() =>
        {
            Ok(MovingAverageRow {
                instrument_id,
                test_code: test_code.to_owned(),
                window_size,
                truncate_low,
                truncate_high,
                target,
                lower_limit: lower,
                upper_limit: upper,
            })
        }
        _ => Err(errors),
    }
}

async fn set_moving_average(
    State(s): State<AppState>,
    bench: Bench,
    Form(form): Form<MaInput>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    let outcome = match moving_average_rule(&form, &test_choices(&s)) {
        Ok(rule) => s.lab.set_moving_average(&bench.actor, &rule).await,
        Err(errors) => Err(AppError::Invalid(errors)),
    };
    match outcome {
        Ok(()) => Ok(Redirect::to("/qc?done=ma").into_response()),
        Err(AppError::Invalid(errors)) => {
            let typed = Typed { ma: form, ..Typed::default() };
            refused_overview(&s, &bench, prefixed(errors, "ma-"), typed).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn record_run(
    State(s): State<AppState>,
    bench: Bench,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let field = |name: &str| {
        fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default()
    };
    bench.check_csrf(field("csrf"))?;
    let instrument_id = field("instrument_id").parse::<i64>().map_err(|_| {
        WebError::App(AppError::invalid("instrument_id", "the form names no instrument"))
    })?;
    let test_code = field("test_code").to_owned();
    let to_lockout = field("return_to") == "lockout";
    let values: Vec<(i64, String)> = fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("value_")?.parse().ok()?, v.clone())))
        .collect();
    let first = values.first().map_or_else(|| "values".to_owned(), |(id, _)| format!("value_{id}"));
    let errors = match s.lab.record_qc(&bench.actor, instrument_id, &test_code, &values).await {
        Ok(outcome) => {
            let to = if to_lockout {
                format!("{}?run={}", lockout_href(instrument_id, &test_code), outcome.run_id)
            } else {
                format!(
                    "/qc?run={}&instrument={instrument_id}&test={}",
                    outcome.run_id,
                    segment(&test_code)
                )
            };
            return Ok(Redirect::to(&to).into_response());
        }
        Err(AppError::Invalid(errors)) => errors
            .into_iter()
            .map(|e| if e.field.starts_with("value_") { e } else { error(&first, e.message) })
            .collect(),
        Err(AppError::Refused(message)) => vec![error(&first, message)],
        Err(e) => return Err(e.into()),
    };
    let typed = RunInput {
        instrument_id,
        test_code: test_code.clone(),
        values: values.into_iter().collect(),
    };
    if to_lockout {
        let page = lockout_page(
            &s,
            &bench,
            instrument_id,
            &test_code,
            errors,
            None,
            ActionInput::default(),
            Some(typed),
        )
        .await?;
        Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, page.render()?))
    } else {
        refused_overview(&s, &bench, errors, Typed { run: Some(typed), ..Typed::default() }).await
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The Levey-Jennings chart, and 3. its CSV.

#[derive(Deserialize, Default)]
#[serde(default)]
struct PeriodQuery {
    from: String,
    to: String,
    done: String,
}

/// The period asked for, as dates and as `[from, to)` in UTC microseconds.
struct Period {
    from: Date,
    to: Date,
    from_us: i64,
    to_us: i64,
}

/// The longest period one chart covers.
const PERIOD_DAYS_MAX: i64 = 731;

/// Reads `from`/`to` (dates in the lab's zone, both included); blank means the last 31 days.
/// A date that cannot be read is reported and the default used instead.
fn period_of(q: &PeriodQuery, today: Date, tz: &TimeZone) -> (Period, Vec<FieldError>) {
    let mut errors = Vec::new();
    let mut read = |field: &str, text: &str, default: Date| {
        let text = text.trim();
        if text.is_empty() {
            return default;
        }
        text.parse::<Date>().unwrap_or_else(|_| {
            errors.push(error(field, "give the date as YYYY-MM-DD"));
            default
        })
    };
    let default_from = today.checked_sub(30.days()).unwrap_or(today);
    let mut to = read("to", &q.to, today);
    let mut from = read("from", &q.from, to.checked_sub(30.days()).unwrap_or(default_from));
    if from > to {
        errors.push(error("from", "the first day must not be after the last day"));
        (from, to) = (default_from, today);
    }
    let days = from.until(to).map(|span| i64::from(span.get_days())).unwrap_or(0);
    if days > PERIOD_DAYS_MAX {
        errors.push(error("from", format!("show at most {PERIOD_DAYS_MAX} days at once")));
        (from, to) = (default_from, today);
    }
    let from_us = start_of(from, tz).unwrap_or(0);
    let to_us = to.tomorrow().ok().and_then(|d| start_of(d, tz)).unwrap_or(i64::MAX);
    (Period { from, to, from_us, to_us }, errors)
}

/// A row of the statistics table.
struct StatsRow {
    label: String,
    n: usize,
    mean: String,
    sd: String,
    cv: String,
    bias: String,
}

fn stats_row(label: &str, st: &ControlStatistics, decimals: usize) -> StatsRow {
    StatsRow {
        label: label.to_owned(),
        n: st.n,
        mean: fixed(st.mean, decimals),
        sd: fixed(st.sd, decimals + 1),
        cv: fixed(st.cv_percent, 1),
        bias: st.bias_percent.map(|b| fixed(b, 1)).unwrap_or_default(),
    }
}

/// One control result in the tables under the chart.
struct PointView {
    at: String,
    lot: String,
    value: String,
    z: String,
    rules: String,
    run_status: &'static str,
    rejected: bool,
    by: String,
}

struct RecommendationView {
    rules: String,
    controls_per_run: u8,
    runs: u8,
    note: &'static str,
    /// Recommended rules the configured set lacks.
    missing: String,
}

fn recommendation_view(rec: &SigmaRecommendation, configured: &RuleSet) -> RecommendationView {
    RecommendationView {
        rules: rec.rules.rules().iter().map(|r| r.code()).collect::<Vec<_>>().join(", "),
        controls_per_run: rec.controls_per_run,
        runs: rec.runs,
        note: rec.note,
        missing: rec
            .rules
            .rules()
            .iter()
            .filter(|r| !configured.contains(**r))
            .map(|r| r.code())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The other levels of the same test and instrument, for switching charts.
struct LevelLink {
    href: String,
    label: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "qc_chart.html")]
struct ChartPage {
    page: Page,
    target_id: i64,
    heading: String,
    test_code: String,
    instrument_name: String,
    unit: String,
    mean: String,
    sd: String,
    source: &'static str,
    is_lab_target: bool,
    manufacturer: String,
    svg: String,
    ma_svg: Option<String>,
    from: String,
    to: String,
    period_label: String,
    csv_href: String,
    lockout_href: String,
    months: Vec<StatsRow>,
    period: Option<StatsRow>,
    tea: String,
    sigma: String,
    recommendation: Option<RecommendationView>,
    configured_rules: String,
    runs_on_target: usize,
    runs_needed: usize,
    lab_target: Option<(String, String)>,
    may_adopt: bool,
    violations: Vec<PointView>,
    points: Vec<PointView>,
    levels: Vec<LevelLink>,
}

fn point_views(s: &AppState, points: &[QcPoint], decimals: usize) -> Vec<PointView> {
    points
        .iter()
        .map(|p| PointView {
            at: s.lab.format_time(p.at),
            lot: p.lot.clone(),
            value: fixed(p.value, decimals),
            z: signed(p.z),
            rules: p.rules.iter().map(|r| r.code()).collect::<Vec<_>>().join(", "),
            run_status: status_words(&p.run_status),
            rejected: is_rejection(p),
            by: p.entered_by.clone(),
        })
        .collect()
}

/// A point of a rejected run that violated a rule other than the 1-2s warning.
fn is_rejection(p: &QcPoint) -> bool {
    p.run_status == QcStatus::Rejected && p.rules.iter().any(|r| !r.is_warning())
}

async fn chart_page(
    s: &AppState,
    bench: &Bench,
    target_id: i64,
    q: &PeriodQuery,
    mut errors: Vec<FieldError>,
) -> Result<ChartPage, WebError> {
    let tz = s.lab.config().time_zone.clone();
    let (period, period_errors) = period_of(q, lab_today(s), &tz);
    errors.extend(period_errors);
    let data: LeveyJenningsData =
        s.lab.levey_jennings(&bench.actor, target_id, period.from_us, period.to_us).await?;
    let t = &data.target;
    let unit = unit_of(s, &t.test_code);
    let decimals = decimals(t.sd);
    let heading = format!(
        "{} · {} · level {} (lot {})",
        t.test_code, t.instrument_name, t.material.level, t.material.lot
    );
    let span = period.to_us.saturating_sub(period.from_us);
    let label = |us: i64| tick_label(us, &tz, span);
    let points: Vec<ChartPoint> = data
        .points
        .iter()
        .map(|p| ChartPoint {
            id: p.id,
            at: p.at,
            // A point of another lot is placed by the z it was judged with against its own
            // lot's target, so it stands against these lines where it stood against its
            // own; its note keeps the value measured.
            value: if p.target_id == data.target.id {
                p.value
            } else {
                data.target.mean + p.z * data.target.sd
            },
            rules: p.rules.iter().map(|r| r.code().to_owned()).collect(),
            rejected: is_rejection(p),
            note: format!(
                "{} · {} {unit} · {} SD · lot {} · {}",
                s.lab.format_time(p.at),
                fixed(p.value, decimals),
                signed(p.z),
                p.lot,
                p.entered_by
            ),
        })
        .collect();
    let lot_changes: Vec<LotChange> = data
        .lot_changes
        .iter()
        .map(|(at, label)| LotChange { at: *at, label: label.clone() })
        .collect();
    let svg = chart::levey_jennings(&LeveyJennings {
        title: &heading,
        unit: &unit,
        mean: t.mean,
        sd: t.sd,
        points: &points,
        lot_changes: &lot_changes,
        from: period.from_us,
        to: period.to_us,
        time_label: &label,
    });
    let series =
        s.lab.moving_average_series(&bench.actor, t.instrument_id, &t.test_code, 500).await?;
    let ma_svg = series.map(|(rule, averages)| {
        let fallback = (period.from_us, period.to_us);
        moving_average_svg(s, &rule, &averages, &t.instrument_name, &unit, fallback)
    });
    let months = data.months.iter().map(|m| stats_row(&m.month, &m.stats, decimals)).collect();
    let levels = s
        .lab
        .qc_targets(&bench.actor, Some(t.instrument_id), Some(&t.test_code))
        .await?
        .into_iter()
        .map(|o| LevelLink {
            href: format!("{}?from={}&to={}", chart_href(o.id), period.from, period.to),
            label: format!("Level {} (lot {})", o.material.level, o.material.lot),
            current: o.id == t.id,
        })
        .collect();
    Ok(ChartPage {
        page: Page::new(bench, format!("QC chart · {heading}"), "qc")
            .with_errors(errors)
            .with_notice(done_notice(&q.done)),
        target_id,
        test_code: t.test_code.clone(),
        instrument_name: t.instrument_name.clone(),
        mean: target_text(t.mean, t.sd).0,
        sd: target_text(t.mean, t.sd).1,
        source: t.source.words(),
        is_lab_target: t.source == TargetSource::Lab,
        manufacturer: {
            let (mean, sd) = target_text(t.manufacturer_mean, t.manufacturer_sd);
            format!("{mean} ± {sd}")
        },
        svg,
        ma_svg,
        from: q_or(&q.from, period.from),
        to: q_or(&q.to, period.to),
        period_label: format!(
            "{} to {}",
            period.from.strftime("%d-%b-%Y"),
            period.to.strftime("%d-%b-%Y")
        ),
        csv_href: format!("{}.csv?from={}&to={}", chart_href(target_id), period.from, period.to),
        lockout_href: lockout_href(t.instrument_id, &t.test_code),
        months,
        period: data.period.as_ref().map(|p| stats_row("Period", p, decimals)),
        tea: data.tea_percent.map(|v| fixed(v, 1)).unwrap_or_default(),
        sigma: data.sigma.map(|v| fixed(v, 1)).unwrap_or_default(),
        recommendation: data.recommendation.as_ref().map(|r| recommendation_view(r, &data.rules)),
        configured_rules: data
            .rules
            .rules()
            .iter()
            .map(|r| r.code())
            .collect::<Vec<_>>()
            .join(", "),
        runs_on_target: data.runs_on_target,
        runs_needed: RUNS_TO_ESTABLISH_TARGET,
        lab_target: data.lab_target.map(|(m, sd)| (fixed(m, decimals), fixed(sd, decimals + 1))),
        may_adopt: bench.may(Action::ManageQc) && t.source == TargetSource::Manufacturer,
        violations: point_views(s, &data.points, decimals)
            .into_iter()
            .filter(|p| !p.rules.is_empty())
            .collect(),
        points: point_views(s, &data.points, decimals),
        levels,
        unit,
        heading,
    })
}

/// What goes back into the date field: what was typed, or the date used.
fn q_or(typed: &str, used: Date) -> String {
    if typed.trim().is_empty() { used.to_string() } else { typed.trim().to_owned() }
}

fn moving_average_svg(
    s: &AppState,
    rule: &MovingAverageRow,
    averages: &[cuvette_app::qc::AveragePoint],
    instrument_name: &str,
    unit: &str,
    fallback: (i64, i64),
) -> String {
    let tz = s.lab.config().time_zone.clone();
    let decimals = decimals((rule.upper_limit - rule.lower_limit) / 2.0);
    let points: Vec<ChartPoint> = averages
        .iter()
        .enumerate()
        .map(|(i, a)| ChartPoint {
            id: i as i64 + 1,
            at: a.at,
            value: a.average,
            rules: if !a.out_of_control {
                Vec::new()
            } else if a.average > rule.upper_limit {
                vec!["above upper limit".to_owned()]
            } else {
                vec!["below lower limit".to_owned()]
            },
            rejected: a.out_of_control,
            note: format!(
                "{} · average {} {unit}",
                s.lab.format_time(a.at),
                fixed(a.average, decimals)
            ),
        })
        .collect();
    // The series is the newest results, whenever they were: its own span, or `fallback`.
    let (from, to) = match (averages.first(), averages.last()) {
        (Some(first), Some(last)) => padded(first.at, last.at),
        _ => fallback,
    };
    let span = to.saturating_sub(from);
    let label = |us: i64| tick_label(us, &tz, span);
    let title = format!(
        "{} · {instrument_name} · moving average of {} patient results",
        rule.test_code, rule.window_size
    );
    chart::moving_average_chart(&MovingAverageChart {
        title: &title,
        unit,
        target: rule.target,
        lower_limit: rule.lower_limit,
        upper_limit: rule.upper_limit,
        points: &points,
        from,
        to,
        time_label: &label,
    })
}

async fn chart_or_csv(
    State(s): State<AppState>,
    bench: Bench,
    Path(target): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, WebError> {
    let not_found = || WebError::App(AppError::NotFound("no such QC chart".into()));
    if let Some(id) = target.strip_suffix(".csv") {
        let id = id.parse::<i64>().map_err(|_| not_found())?;
        return csv(&s, &bench, id, &q).await;
    }
    let id = target.parse::<i64>().map_err(|_| not_found())?;
    let page = chart_page(&s, &bench, id, &q, vec![]).await?;
    let status =
        if page.page.errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(render_with(status, page.render()?))
}

async fn chart_csv(
    State(s): State<AppState>,
    bench: Bench,
    Path(target): Path<i64>,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, WebError> {
    csv(&s, &bench, target, &q).await
}

/// The period's points of one chart as CSV.
async fn csv(
    s: &AppState,
    bench: &Bench,
    target_id: i64,
    q: &PeriodQuery,
) -> Result<Response, WebError> {
    let tz = s.lab.config().time_zone.clone();
    let (period, errors) = period_of(q, lab_today(s), &tz);
    if let Some(e) = errors.first() {
        return Err(AppError::invalid(&e.field, e.message.clone()).into());
    }
    let data = s.lab.levey_jennings(&bench.actor, target_id, period.from_us, period.to_us).await?;
    let body = csv_body(&data.points, &tz);
    let t = &data.target;
    let name: String = format!(
        "qc-{}-{}-level{}-{}-{}.csv",
        t.test_code, t.instrument_name, t.material.level, period.from, period.to
    )
    .chars()
    .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
    .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}

fn csv_body(points: &[QcPoint], tz: &TimeZone) -> String {
    use crate::csv_export::{Csv, Field};
    let mut out = Csv::new(&[
        "time",
        "level",
        "lot",
        "value",
        "mean",
        "sd",
        "z",
        "rules",
        "run_status",
        "entered_by",
    ]);
    for p in points {
        let rules = p.rules.iter().map(|r| r.code()).collect::<Vec<_>>().join(" ");
        let z = if p.z.is_finite() { format!("{:.3}", p.z) } else { String::new() };
        out.row(&[
            Field::Value(&iso_time(p.at, tz)),
            Field::Value(&p.level.to_string()),
            Field::Text(&p.lot),
            Field::Value(&number(p.value)),
            Field::Value(&number(p.mean)),
            Field::Value(&number(p.sd)),
            Field::Value(&z),
            Field::Text(&rules),
            Field::Text(p.run_status.code()),
            Field::Text(&p.entered_by),
        ]);
    }
    out.finish()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
}

async fn adopt_target(
    State(s): State<AppState>,
    bench: Bench,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    match s.lab.adopt_lab_target(&bench.actor, id).await {
        Ok(_) => Ok(Redirect::to(&format!("{}?done=adopted", chart_href(id))).into_response()),
        Err(AppError::Refused(message)) | Err(AppError::Conflict(message)) => {
            let errors = vec![error("adopt", message)];
            let page = chart_page(&s, &bench, id, &PeriodQuery::default(), errors).await?;
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, page.render()?))
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The lockout screen.

#[derive(Deserialize, Default)]
#[serde(default)]
struct ActionInput {
    csrf: String,
    action: String,
    note: String,
}

struct SuspectView {
    accession: String,
    href: String,
    value: String,
    entered: String,
    released: Option<String>,
    status: String,
}

struct ActionView {
    at: String,
    by: String,
    action: String,
    note: String,
}

struct ChoiceRef {
    code: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "qc_lockout.html")]
struct LockoutPage {
    page: Page,
    instrument_name: String,
    test_code: String,
    standing: StandingView,
    facts: Vec<(&'static str, String)>,
    suspects: Vec<SuspectView>,
    may_correct: bool,
    action_href: String,
    choices: Vec<ChoiceRef>,
    typed: ActionInput,
    actions: Vec<ActionView>,
    runs: Vec<RunView>,
    verdict: Option<VerdictView>,
    charts: Vec<LevelLink>,
    entry: Option<LineView>,
    ma_svg: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn lockout_page(
    s: &AppState,
    bench: &Bench,
    instrument_id: i64,
    test_code: &str,
    errors: Vec<FieldError>,
    run: Option<i64>,
    typed: ActionInput,
    typed_run: Option<RunInput>,
) -> Result<LockoutPage, WebError> {
    let view = s.lab.lockout(&bench.actor, instrument_id, test_code).await?;
    let (now, today) = (s.lab.now().as_microsecond(), lab_today(s));
    let facts = &view.standing.facts;
    let instrument_name = facts.instrument_name.clone();
    let when = |t: Option<i64>| t.map(|t| s.lab.format_time(t)).unwrap_or_else(|| "none".into());
    let fact_rows = vec![
        ("Last rejected run", when(facts.last_rejected)),
        ("Last corrective action", when(facts.last_action)),
        ("Last acceptable run", when(facts.last_good)),
        ("Last acceptable run before the rejection", when(facts.good_before_reject)),
    ];
    let targets = s.lab.qc_targets(&bench.actor, Some(instrument_id), Some(test_code)).await?;
    let may_run = bench.may(Action::RunQc);
    let entry = if may_run && !targets.is_empty() {
        let line = QcLine {
            instrument_id,
            instrument_name: instrument_name.clone(),
            test_code: test_code.to_owned(),
            targets: targets.clone(),
            standing: Some(view.standing.clone()),
        };
        Some(line_view(s, &line, typed_run.as_ref(), now, today, "lockout").await?)
    } else {
        None
    };
    let series = s.lab.moving_average_series(&bench.actor, instrument_id, test_code, 500).await?;
    let ma_svg = series.map(|(rule, averages)| {
        let (unit, last_day) = (unit_of(s, test_code), (now - 86_400_000_000, now));
        moving_average_svg(s, &rule, &averages, &instrument_name, &unit, last_day)
    });
    let verdict = run
        .and_then(|id| view.runs.iter().find(|r| r.id == id))
        .map(|r| verdict_view(r, &instrument_name));
    Ok(LockoutPage {
        page: Page::new(bench, format!("QC lockout · {test_code} on {instrument_name}"), "qc")
            .with_errors(errors),
        standing: standing_view(s, Some(&view.standing), now),
        facts: fact_rows,
        suspects: view
            .suspect_results
            .iter()
            .map(|r| SuspectView {
                href: format!("/specimens/{}", segment(&r.accession)),
                accession: r.accession.clone(),
                value: r.value_text.clone(),
                entered: s.lab.format_time(r.entered_at),
                released: r.released_at.map(|t| s.lab.format_time(t)),
                status: r.test_status.to_string(),
            })
            .collect(),
        may_correct: bench.may(Action::CorrectQc),
        action_href: format!("{}/action", lockout_href(instrument_id, test_code)),
        choices: CorrectiveAction::ALL
            .into_iter()
            .map(|a| ChoiceRef { code: a.code(), label: a.label() })
            .collect(),
        typed,
        actions: view
            .actions
            .iter()
            .map(|a| ActionView {
                at: s.lab.format_time(a.at),
                by: a.by_user.clone(),
                action: a.action.label().to_owned(),
                note: a.note.clone(),
            })
            .collect(),
        runs: view.runs.iter().map(|r| run_view(s, r)).collect(),
        verdict,
        charts: targets
            .iter()
            .map(|t| LevelLink {
                href: chart_href(t.id),
                label: format!("Level {} (lot {})", t.material.level, t.material.lot),
                current: false,
            })
            .collect(),
        entry,
        ma_svg,
        instrument_name,
        test_code: test_code.to_owned(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LockoutQuery {
    run: String,
    done: String,
}

async fn lockout(
    State(s): State<AppState>,
    bench: Bench,
    Path((instrument_id, test_code)): Path<(i64, String)>,
    Query(q): Query<LockoutQuery>,
) -> Result<Html<String>, WebError> {
    let mut page = lockout_page(
        &s,
        &bench,
        instrument_id,
        &test_code,
        vec![],
        q.run.parse().ok(),
        ActionInput::default(),
        None,
    )
    .await?;
    page.page.notice = done_notice(&q.done);
    Ok(Html(page.render()?))
}

async fn corrective_action(
    State(s): State<AppState>,
    bench: Bench,
    Path((instrument_id, test_code)): Path<(i64, String)>,
    Form(form): Form<ActionInput>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    // Only for a test with QC on record: the page it comes from.
    s.lab.lockout(&bench.actor, instrument_id, &test_code).await?;
    match s
        .lab
        .document_corrective_action(
            &bench.actor,
            instrument_id,
            &test_code,
            &form.action,
            &form.note,
        )
        .await
    {
        Ok(_) => {
            Ok(Redirect::to(&format!("{}?done=action", lockout_href(instrument_id, &test_code)))
                .into_response())
        }
        Err(AppError::Invalid(errors)) => {
            let page =
                lockout_page(&s, &bench, instrument_id, &test_code, errors, None, form, None)
                    .await?;
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, page.render()?))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_carry_the_lab_zone_and_numbers_unquoted() {
        let tz = jiff::tz::offset(1).to_time_zone();
        let p = QcPoint {
            id: 1,
            run_id: 1,
            at: 1_700_000_000_000_000,
            entered_by: "=cmd".into(),
            target_id: 1,
            level: 2,
            lot: "L,1".into(),
            value: -1.5,
            mean: 0.5,
            sd: 0.25,
            z: -8.0,
            rules: vec![WestgardRule::OneThreeS],
            run_status: QcStatus::Rejected,
        };
        let body = csv_body(&[p], &tz);
        let mut lines = body.split("\r\n");
        assert_eq!(
            lines.next(),
            Some("time,level,lot,value,mean,sd,z,rules,run_status,entered_by")
        );
        assert_eq!(
            lines.next(),
            Some("2023-11-14T23:13:20+01:00,2,\"L,1\",-1.5,0.5,0.25,-8.000,1-3s,rejected,'=cmd")
        );
    }

    #[test]
    fn numbers_read_as_the_bench_writes_them() {
        assert_eq!(parse_decimal(" 4,2 "), Ok(Some(4.2)));
        assert_eq!(parse_decimal(""), Ok(None));
        assert_eq!(parse_decimal("abc"), Err(()));
        assert_eq!(parse_decimal("NaN"), Err(()));
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
    fn the_period_defaults_to_31_days_and_reports_bad_dates() {
        let tz = TimeZone::UTC;
        let today: Date = "2026-03-15".parse().unwrap();
        let (p, errors) = period_of(&PeriodQuery::default(), today, &tz);
        assert!(errors.is_empty());
        assert_eq!(
            (p.from.to_string(), p.to.to_string()),
            ("2026-02-13".into(), "2026-03-15".into())
        );
        assert_eq!(p.to_us - p.from_us, 31 * 86_400_000_000);
        let q = PeriodQuery { from: "13/02/2026".into(), ..PeriodQuery::default() };
        let (_, errors) = period_of(&q, today, &tz);
        assert_eq!(errors[0].field, "from");
        let q = PeriodQuery {
            from: "2026-03-16".into(),
            to: "2026-03-01".into(),
            ..PeriodQuery::default()
        };
        let (p, errors) = period_of(&q, today, &tz);
        assert_eq!(errors.len(), 1);
        assert_eq!(p.to, today);
        let q = PeriodQuery { from: "2020-01-01".into(), ..PeriodQuery::default() };
        assert_eq!(period_of(&q, today, &tz).1.len(), 1);
    }

    #[test]
    fn ids_and_segments_are_safe() {
        assert_eq!(segment("GLU/2 x"), "GLU%2F2%20x");
        assert_eq!(html_id(&["line", "3", "HbA1c/x"]), "line-3-HbA1c_x");
        assert_eq!(padded(10_000_000_000, 10_000_000_000), (8_200_000_000, 11_800_000_000));
        assert_eq!(padded(0, 7_200_000_000), (0, 7_200_000_000));
    }
}
