//! What the QC templates draw, shared by the overview and the lockout screen: standing,
//! violations, runs, verdicts, control levels with their entry fields, and test choices.

use cuvette_app::qc::{QC_INTERVAL_HOURS, QcLine, QcStanding};
use cuvette_app::records::{QcRunRow, TargetRow};
use cuvette_domain::autoverify::QcState;
use cuvette_domain::qc::{QcStatus, RecordedViolation};
use jiff::civil::Date;

use super::format::{chart_href, html_id, lockout_href, target_text};
use super::runs::RunInput;
use crate::AppState;
use crate::error::WebError;

/// A lockout standing in words and a class; the words alone carry the meaning.
pub(super) struct StandingView {
    /// "LOCKED", "1-2s warning", "QC acceptable", "No QC in 24 h", "No QC yet".
    pub(super) label: String,
    /// CSS class of the chip (`qc-locked` for a lockout).
    pub(super) class: &'static str,
    pub(super) locked: bool,
    /// What the bench must do next.
    pub(super) reason: String,
    /// "14-Nov-2026 08:05 · rejected".
    pub(super) last_run: String,
}

pub(super) fn standing_view(
    s: &AppState,
    standing: Option<&QcStanding>,
    now: cuvette_domain::time::Timestamp,
) -> StandingView {
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

pub(super) fn status_words(status: &QcStatus) -> &'static str {
    match status {
        QcStatus::Accepted => "accepted",
        QcStatus::Warning => "accepted with a 1-2s warning",
        QcStatus::Rejected => "REJECTED",
    }
}

/// One violation as the bench reads it.
pub(super) struct ViolationView {
    pub(super) rule: String,
    pub(super) detail: String,
}

pub(super) fn violations_of(recorded: &[RecordedViolation]) -> Vec<ViolationView> {
    recorded
        .iter()
        .map(|v| ViolationView {
            rule: v.rule.code().to_owned(),
            detail: v.detail_without_rule().to_owned(),
        })
        .collect()
}

/// One run in a history table.
pub(super) struct RunView {
    pub(super) id: i64,
    pub(super) at: String,
    pub(super) status: String,
    pub(super) status_label: &'static str,
    pub(super) by: String,
    pub(super) source: &'static str,
    pub(super) violations: Vec<ViolationView>,
}

pub(super) fn run_view(s: &AppState, r: &QcRunRow) -> RunView {
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
pub(super) struct VerdictView {
    pub(super) rejected: bool,
    pub(super) heading: String,
    pub(super) violations: Vec<ViolationView>,
    pub(super) lockout_href: String,
}

pub(super) fn verdict_view(run: &QcRunRow, instrument_name: &str) -> VerdictView {
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
pub(super) struct LevelView {
    pub(super) level: i64,
    pub(super) lot: String,
    pub(super) product: String,
    pub(super) expires_on: String,
    pub(super) expired: bool,
    pub(super) mean: String,
    pub(super) sd: String,
    pub(super) source: &'static str,
    /// Field name and id: `value_{target_id}`.
    pub(super) field: String,
    /// What was typed, when a refused form comes back.
    pub(super) value: String,
    pub(super) chart_href: String,
}

/// One test on one instrument.
pub(super) struct LineView {
    pub(super) anchor: String,
    pub(super) instrument_id: i64,
    pub(super) instrument_name: String,
    pub(super) test_code: String,
    pub(super) unit: String,
    pub(super) lockout_href: String,
    pub(super) standing: StandingView,
    pub(super) has_standing: bool,
    pub(super) rules: String,
    pub(super) levels: Vec<LevelView>,
    /// Where the form goes back to: "overview" or "lockout".
    pub(super) return_to: &'static str,
}

pub(super) fn level_views(
    targets: &[TargetRow],
    typed: Option<&RunInput>,
    today: Date,
) -> Vec<LevelView> {
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

pub(super) async fn line_view(
    s: &AppState,
    line: &QcLine,
    typed: Option<&RunInput>,
    now: cuvette_domain::time::Timestamp,
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

pub(super) fn unit_of(s: &AppState, test_code: &str) -> String {
    s.lab.catalog().catalog.test(test_code).map(|d| d.unit.clone()).unwrap_or_default()
}

/// An option of a `<select>`.
pub(super) struct Choice {
    pub(super) value: String,
    pub(super) label: String,
}

pub(super) fn test_choices(s: &AppState) -> Vec<Choice> {
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
