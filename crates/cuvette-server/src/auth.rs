//! Who is asking: the session cookie for the bench, a bearer API key for systems, and CSRF.
//!
//! A browser session is a random token in an HttpOnly, SameSite=Strict cookie; only its hash
//! is stored. Every form carries the session's synchronizer token (`csrf`), compared in
//! constant time; JSON calls made with the cookie carry it in `X-CSRF-Token`. Bearer API keys
//! need no CSRF token (a browser never sends them by itself).

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use cuvette_app::{Actor, AppError};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::{ApiError, WebError};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "cuvette_session";

/// A signed-in person at a bench (HTML routes). Without a live session the request is
/// redirected to the sign-in page, which brings the person back to where they were.
#[derive(Debug, Clone)]
pub struct Bench {
    /// Who.
    pub actor: Actor,
    /// The session's CSRF token, rendered into every form.
    pub csrf: String,
    /// The cookie's token (to sign out).
    pub token: String,
    /// The lab's privilege table when the request arrived.
    pub privileges: std::sync::Arc<cuvette_domain::role::Privileges>,
    /// The critical-call banner as the server draws it into the page (empty when nothing
    /// waits), or `None` for a role that sees no results. Read here, with the session, so
    /// every page carries it even when the browser runs no script.
    pub critical_banner: Option<String>,
}

impl Bench {
    /// Whether this person's role may do `action` in this lab (to show or hide controls;
    /// the use case checks again).
    pub fn may(&self, action: cuvette_domain::Action) -> bool {
        self.privileges.may(self.actor.role, action)
    }

    /// Refuses unless this person's role may do `action` in this lab.
    pub fn require(&self, action: cuvette_domain::Action) -> Result<(), WebError> {
        if self.may(action) {
            Ok(())
        } else {
            Err(WebError::App(AppError::Forbidden(format!(
                "your role ({}) may not {action}",
                self.actor.role
            ))))
        }
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), WebError> {
        if bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(WebError::Csrf)
        }
    }
}

pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

impl FromRequestParts<AppState> for Bench {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Bench, Response> {
        let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let to_login = || Redirect::to(&format!("/login?next={}", urlencode(next))).into_response();
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else { return Err(to_login()) };
        match state.lab.session(&token).await {
            Ok((session, actor)) => Ok(Bench {
                critical_banner: crate::html::critical_banner(&state.lab, &actor).await,
                actor,
                csrf: session.csrf_token,
                token,
                privileges: state.lab.privileges(),
            }),
            Err(AppError::Unauthenticated(_)) => Err(to_login()),
            Err(e) => Err(WebError::App(e).into_response()),
        }
    }
}

/// The caller of a JSON API route: a bearer API key, or a browser session (which must send
/// its CSRF token in `X-CSRF-Token` for anything but GET).
#[derive(Debug, Clone)]
pub struct ApiCaller {
    /// Who.
    pub actor: Actor,
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<ApiCaller, ApiError> {
        if let Some(auth) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            let key = auth.strip_prefix("Bearer ").ok_or_else(|| {
                ApiError(AppError::Unauthenticated("use `Authorization: Bearer <API key>`".into()))
            })?;
            let actor = state.lab.api_key_actor(key.trim()).await.map_err(ApiError)?;
            return Ok(ApiCaller { actor });
        }
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(|| {
            ApiError(AppError::Unauthenticated(
                "sign in, or send `Authorization: Bearer <API key>`".into(),
            ))
        })?;
        let (session, actor) = state.lab.session(&token).await.map_err(ApiError)?;
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let sent =
                parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
            if !bool::from(sent.as_bytes().ct_eq(session.csrf_token.as_bytes())) {
                return Err(ApiError(AppError::Forbidden(
                    "send the session's CSRF token (the csrf-token meta tag) in X-CSRF-Token"
                        .into(),
                )));
            }
        }
        Ok(ApiCaller { actor })
    }
}

/// Refuses state-changing requests that a browser marks as coming from another site — a
/// second line behind the CSRF token.
pub async fn same_origin_only(req: Request, next: Next) -> Response {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        let site = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok());
        if site == Some("cross-site") {
            return (StatusCode::FORBIDDEN, "cross-site requests are refused").into_response();
        }
        if let (Some(origin), Some(host)) = (
            req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()),
            req.headers().get(header::HOST).and_then(|v| v.to_str().ok()),
        ) {
            let origin_host = origin.split("://").nth(1).unwrap_or(origin);
            if origin != "null" && origin_host != host {
                return (StatusCode::FORBIDDEN, "cross-origin requests are refused")
                    .into_response();
            }
        }
    }
    next.run(req).await
}

/// The address a request came from: the socket's peer when the server was started with it
/// (`serve` is), else unknown. Behind a reverse proxy this is the proxy, so the sign-in delay
/// per address then counts everyone behind it together.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<PeerAddress, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(PeerAddress(peer))
    }
}

/// The Set-Cookie value for a new session.
pub fn session_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}")
}

/// The Set-Cookie value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// Percent-encodes a string for a query parameter (a `next=` path keeps its slashes readable).
pub fn urlencode(s: &str) -> String {
    const QUERY: &percent_encoding::AsciiSet = &crate::web::UNRESERVED_ONLY.remove(b'/');
    percent_encoding::utf8_percent_encode(s, QUERY).to_string()
}
