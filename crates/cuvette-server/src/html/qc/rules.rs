//! The Westgard rules a test is judged by, and the sample ids that mark an instrument's
//! control runs.

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use cuvette_app::AppError;
use serde::Deserialize;

use super::format::{error, prefixed};
use super::overview::{Typed, refused_overview};
use crate::AppState;
use crate::auth::Bench;
use crate::error::WebError;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RulesInput {
    csrf: String,
    pub(super) test_code: String,
    pub(super) rules: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct PatternInput {
    csrf: String,
    pub(super) instrument_id: String,
    pub(super) qc_pattern: String,
}

pub(super) async fn set_rules(
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
pub(super) async fn set_pattern(
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
