//! Sign-in, sign-out and the start page.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cuvette_app::{AppError, FieldError};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{Bench, PeerAddress, clear_cookie, session_cookie};
use crate::error::WebError;
use crate::web::{Page, home_for};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
}

async fn home(bench: Bench) -> Redirect {
    Redirect::to(home_for(bench.actor.role))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: Page,
    username: String,
    next: String,
}

#[derive(Deserialize, Default)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

/// Only same-site paths are followed after sign-in (no open redirect).
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next.to_owned()
    } else {
        String::new()
    }
}

async fn login_form(Query(q): Query<NextQuery>) -> Result<Html<String>, WebError> {
    let page = Page { title: "Sign in".into(), ..Page::default() };
    Ok(Html(LoginPage { page, username: String::new(), next: safe_next(&q.next) }.render()?))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(state): State<AppState>,
    PeerAddress(peer): PeerAddress,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    // The sign-in form has no session yet, so no CSRF token: SameSite=Strict cookies and the
    // same-origin check stop a cross-site sign-in.
    match state.lab.login_from(&form.username, &form.password, peer).await {
        Ok(outcome) => {
            let next = safe_next(&form.next);
            let to = if next.is_empty() || next == "/" {
                home_for(outcome.actor.role).to_owned()
            } else {
                next
            };
            Ok((
                [(header::SET_COOKIE, session_cookie(&outcome.token, state.config.secure_cookies))],
                Redirect::to(&to),
            )
                .into_response())
        }
        Err(AppError::Unauthenticated(message)) => {
            let page = Page { title: "Sign in".into(), ..Page::default() }
                .with_errors(vec![FieldError { field: "password".into(), message }]);
            let body = LoginPage { page, username: form.username, next: safe_next(&form.next) }
                .render()?;
            Ok((axum::http::StatusCode::UNAUTHORIZED, Html(body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    bench: Bench,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    bench.check_csrf(&form.csrf)?;
    state.lab.logout(&bench.token, &bench.actor).await?;
    Ok(([(header::SET_COOKIE, clear_cookie())], Redirect::to("/login")).into_response())
}
