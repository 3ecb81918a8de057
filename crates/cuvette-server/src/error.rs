//! Errors at the HTTP edge: the status code decided in one place, internal details logged,
//! never shown.

use askama::Template;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use cuvette_app::AppError;

/// An error on an HTML route.
#[derive(Debug)]
pub enum WebError {
    /// A use case refused.
    App(AppError),
    /// The form's CSRF token is missing or wrong.
    Csrf,
    /// A template failed to render (a bug).
    Render(askama::Error),
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> WebError {
        WebError::App(e)
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> WebError {
        WebError::Render(e)
    }
}

pub(crate) fn status_of(e: &AppError) -> StatusCode {
    match e {
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        AppError::Conflict(_) => StatusCode::CONFLICT,
        AppError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
        AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Template)]
#[template(
    source = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ heading }} · Cuvette</title>
<link rel="stylesheet" href="/static/cuvette.css"></head><body><main>
<div class="error-summary" role="alert"><h2>{{ heading }}</h2><p>{{ message }}</p></div>
<p><a href="javascript:history.back()">Go back</a> · <a href="/">Start page</a></p></main></body></html>"#,
    ext = "html"
)]
struct ErrorPage<'a> {
    heading: &'a str,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match &self {
            WebError::App(e) => {
                let status = status_of(e);
                let heading = match status {
                    StatusCode::FORBIDDEN => "Not allowed",
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::CONFLICT => "Someone else changed this first",
                    StatusCode::UNAUTHORIZED => "Sign in again",
                    StatusCode::INTERNAL_SERVER_ERROR => "Something went wrong",
                    StatusCode::SERVICE_UNAVAILABLE => "The database is not answering",
                    _ => "This cannot be done",
                };
                if let AppError::Unavailable(cause) = e {
                    tracing::warn!(error = %cause, "request refused: the database is not answering");
                }
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(error = %e, "request failed");
                    (status, heading, "the request failed on the server; nothing was saved. Try again, and tell the system administrator if it persists.".to_owned())
                } else {
                    (status, heading, e.to_string())
                }
            }
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "The form has expired",
                "this form was opened in an earlier session; reload the page and submit it again"
                    .to_owned(),
            ),
            WebError::Render(e) => {
                tracing::error!(error = %e, "template failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "the page could not be drawn".to_owned(),
                )
            }
        };
        let body = ErrorPage { heading, message }.render().unwrap_or_else(|_| heading.to_owned());
        (status, Html(body)).into_response()
    }
}

/// An error on a JSON route: `{"error": {"status", "message", "fields"}}` (the shape is
/// `api::responses::ErrorBody`).
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        ApiError(e)
    }
}

/// The API's one error response.
pub(crate) fn api_error(
    status: StatusCode,
    message: String,
    fields: Vec<cuvette_app::FieldError>,
) -> Response {
    use crate::api::responses::{ErrorBody, ErrorDetail, InvalidField};
    let body = ErrorBody {
        error: ErrorDetail {
            status: i64::from(status.as_u16()),
            message,
            fields: fields.iter().map(InvalidField::from).collect(),
        },
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        if let AppError::Unavailable(cause) = &self.0 {
            tracing::warn!(error = %cause, "api request refused: the database is not answering");
        }
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self.0, "api request failed");
            "the request failed on the server; nothing was saved".to_owned()
        } else {
            self.0.to_string()
        };
        let fields = match self.0 {
            AppError::Invalid(f) => f,
            _ => vec![],
        };
        api_error(status, message, fields)
    }
}
