//! Run entry: one value per control level, judged by the Westgard rules the moment it is saved.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cuvette_app::AppError;

use super::format::{error, lockout_href, render_with, segment};
use super::lockout::{ActionInput, lockout_page};
use super::overview::{Typed, refused_overview};
use crate::AppState;
use crate::auth::Bench;
use crate::error::WebError;

/// A QC run as typed: one value per target.
pub(super) struct RunInput {
    pub(super) instrument_id: i64,
    pub(super) test_code: String,
    pub(super) values: BTreeMap<i64, String>,
}

pub(super) async fn record_run(
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
