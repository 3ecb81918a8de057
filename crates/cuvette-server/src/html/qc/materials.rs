//! Control materials and their targets: adding a material, setting a target mean and SD, and
//! adopting the lab's own statistics as the target.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cuvette_app::AppError;
use cuvette_app::qc::MaterialForm;
use serde::Deserialize;

use super::chart::{PeriodQuery, chart_page};
use super::format::{MATERIAL_FIELDS, chart_href, error, named, prefixed, render_with};
use super::overview::{Typed, refused_overview};
use crate::AppState;
use crate::auth::Bench;
use crate::error::WebError;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct MaterialInput {
    csrf: String,
    pub(super) product: String,
    pub(super) manufacturer: String,
    pub(super) lot: String,
    pub(super) level: String,
    pub(super) expires_on: String,
    pub(super) sample_id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct TargetInput {
    csrf: String,
    pub(super) material_id: String,
    pub(super) instrument_id: String,
    pub(super) test_code: String,
    pub(super) mean: String,
    pub(super) sd: String,
}

pub(super) async fn add_material(
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

pub(super) async fn set_target(
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

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct CsrfForm {
    csrf: String,
}

pub(super) async fn adopt_target(
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
