//! The lockout screen: the facts behind the standing, the patient results to re-run, the
//! corrective action and the run history.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use cuvette_app::qc::QcLine;
use cuvette_app::{AppError, FieldError};
use cuvette_domain::Action;
use cuvette_domain::qc::CorrectiveAction;
use serde::Deserialize;

use super::chart::LevelLink;
use super::format::{chart_href, lab_today, lockout_href, render_with, segment};
use super::moving_average::moving_average_svg;
use super::overview::done_notice;
use super::runs::RunInput;
use super::views::{
    LineView, RunView, StandingView, VerdictView, line_view, run_view, standing_view, unit_of,
    verdict_view,
};
use crate::AppState;
use crate::auth::Bench;
use crate::error::WebError;
use crate::web::Page;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ActionInput {
    csrf: String,
    action: String,
    note: String,
}

pub(super) struct SuspectView {
    accession: String,
    href: String,
    value: String,
    entered: String,
    released: Option<String>,
    status: String,
}

pub(super) struct ActionView {
    at: String,
    by: String,
    action: String,
    note: String,
}

pub(super) struct ChoiceRef {
    code: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "qc_lockout.html")]
pub(super) struct LockoutPage {
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
pub(super) async fn lockout_page(
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
    let (now, today) = (s.lab.now_at(), lab_today(s));
    let facts = &view.standing.facts;
    let instrument_name = facts.instrument_name.clone();
    let when = |t: Option<cuvette_domain::time::Timestamp>| {
        t.map(|t| s.lab.format_time(t)).unwrap_or_else(|| "none".into())
    };
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
        let (unit, last_day) =
            (unit_of(s, test_code), (now.as_micros() - 86_400_000_000, now.as_micros()));
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
pub(super) struct LockoutQuery {
    run: String,
    done: String,
}

pub(super) async fn lockout(
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

pub(super) async fn corrective_action(
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
