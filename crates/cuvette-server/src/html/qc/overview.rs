//! The overview: every test × instrument with its levels, standing and run entry, and the
//! set-up forms, each kept as typed when a save is refused.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, Response};
use cuvette_app::{AppError, FieldError};
use cuvette_domain::Action;
use cuvette_domain::qc::{RuleSet, WestgardRule};
use serde::Deserialize;

use super::format::{lab_today, number, render_with};
use super::materials::{MaterialInput, TargetInput};
use super::moving_average::MaInput;
use super::rules::{PatternInput, RulesInput};
use super::runs::RunInput;
use super::views::{Choice, LineView, VerdictView, line_view, test_choices, verdict_view};
use crate::AppState;
use crate::auth::Bench;
use crate::error::WebError;
use crate::web::Page;

/// Every form of the overview, as typed (all empty on a fresh page).
#[derive(Default)]
pub(super) struct Typed {
    pub(super) material: MaterialInput,
    pub(super) target: TargetInput,
    pub(super) rules: RulesInput,
    pub(super) ma: MaInput,
    pub(super) pattern: PatternInput,
    pub(super) run: Option<RunInput>,
}

pub(super) struct MaRuleView {
    test_code: String,
    instrument_name: String,
    window_size: i64,
    truncation: String,
    target: String,
    limits: String,
}

pub(super) struct RuleRef {
    code: &'static str,
    describe: &'static str,
    warning: bool,
}

#[derive(Template)]
#[template(path = "qc_overview.html")]
pub(super) struct OverviewPage {
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

pub(super) async fn overview_page(
    s: &AppState,
    bench: &Bench,
    errors: Vec<FieldError>,
    notice: Option<String>,
    verdict: Option<VerdictView>,
    typed: Typed,
) -> Result<OverviewPage, WebError> {
    let qc_lines = s.lab.qc_overview(&bench.actor).await?;
    let (now, today) = (s.lab.now_at(), lab_today(s));
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
pub(super) struct OverviewQuery {
    done: String,
    run: String,
    instrument: String,
    test: String,
}

pub(super) fn done_notice(done: &str) -> Option<String> {
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

pub(super) async fn overview(
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

pub(super) async fn refused_overview(
    s: &AppState,
    bench: &Bench,
    errors: Vec<FieldError>,
    typed: Typed,
) -> Result<Response, WebError> {
    let page = overview_page(s, bench, errors, None, None, typed).await?;
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, page.render()?))
}
