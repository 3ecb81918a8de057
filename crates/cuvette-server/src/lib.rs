//! HTTP: the bench's HTML pages, the JSON API, sessions and CSRF.
//!
//! Only this crate knows HTTP, HTML and sockets. Handlers parse the request, call one use case
//! on [`cuvette_app::Lab`] and render the outcome; they decide nothing about the lab. Pages are
//! server-rendered (askama templates under `templates/`) and work without JavaScript;
//! `static/cuvette.js` adds flags-as-you-type and keyboard flow.

mod api;
mod auth;
mod barcode;
pub mod chart;
mod csv_export;
mod error;
pub mod fhir;
pub mod health;
mod html;
pub mod interfaces;
pub mod limits;
mod pdf;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use cuvette_app::Lab;

pub use web::render_worklist_for_bench;

/// Settings of the HTTP server.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Mark the session cookie `Secure` (when served over HTTPS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// What `/readyz` checks and tolerates.
    pub readiness: health::ReadinessConfig,
    /// How long and how many requests a client may hold.
    pub limits: HttpLimits,
}

/// What keeps a slow or hostile client from holding the server: a request must arrive whole
/// within its deadlines, and connections and requests in progress are capped.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// A request's line and headers must arrive within this after the connection is opened
    /// or the previous response sent (idle keep-alive connections are closed after it too).
    pub header_read_timeout: Duration,
    /// Its body must arrive whole within this (not reset by each byte).
    pub body_read_timeout: Duration,
    /// The whole request, body and answer, within this.
    pub request_timeout: Duration,
    /// Connections open at once; more wait in the accept queue.
    pub connections_max: usize,
    /// Whole requests handled at once; more are answered 503 at once.
    pub requests_max: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(60),
            connections_max: 4096,
            requests_max: 256,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The laboratory.
    pub lab: Arc<Lab>,
    /// Server settings.
    pub config: ServerConfig,
}

/// The largest request body accepted (a result grid or an order is a few kB).
pub const REQUEST_BODY_BYTES_MAX: usize = 256 * 1024;

/// Every route of Cuvette.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(html::routes())
        .nest("/api", api::routes())
        .nest("/fhir", fhir::routes())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/static/cuvette.css",
            get(|| async {
                asset("text/css; charset=utf-8", include_str!("../static/cuvette.css"))
            }),
        )
        .route(
            "/static/cuvette.js",
            get(|| async {
                asset("text/javascript; charset=utf-8", include_str!("../static/cuvette.js"))
            }),
        )
        .layer(axum::middleware::from_fn(auth::same_origin_only))
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(
            limits::InFlight::new(&state.config.limits),
            limits::in_time,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Serves until the process is stopped: HTTP on `listen` and the interface listeners.
pub async fn serve(
    lab: Arc<Lab>,
    listen: SocketAddr,
    config: ServerConfig,
    interfaces: interfaces::InterfaceConfig,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    serve_once_open(listener, async { Ok(lab) }, config, interfaces, shutdown_signal()).await
}

/// Why a lab could not be opened, ending the server.
pub type OpenError = Box<dyn std::error::Error + Send + Sync>;

/// Serves HTTP on `listener` at once and the lab as soon as `open` yields it, until
/// `shutdown` completes. Until then `/healthz` answers, `/readyz` answers 503 naming the
/// database, and every other request a 503 saying to try again (`open` is expected to keep
/// trying while the database cannot be reached); then the pages, the API and the interface
/// listeners are served. An error from `open` ends the server with it.
pub async fn serve_once_open(
    listener: tokio::net::TcpListener,
    open: impl Future<Output = Result<Arc<Lab>, OpenError>>,
    config: ServerConfig,
    interfaces: interfaces::InterfaceConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tracing::info!("Cuvette is serving on http://{}", listener.local_addr()?);
    // Every request goes to the router of the moment: the opening one, then the lab's.
    let opening = health::opening_routes().layer(axum::middleware::from_fn(security_headers));
    let current = Arc::new(std::sync::RwLock::new(opening));
    let app = {
        let current = current.clone();
        Router::new().fallback_service(tower::service_fn(move |req: axum::extract::Request| {
            let router = current.read().unwrap_or_else(|p| p.into_inner()).clone();
            tower::ServiceExt::oneshot(router, req)
        }))
    };
    let limits = config.limits.clone();
    let http = limits::serve_http(listener, app, &limits, shutdown);
    let start = async {
        let lab = open.await.map_err(std::io::Error::other)?;
        start_interfaces(&lab, &config, interfaces).await?;
        let lab_routes = router(AppState { lab, config: config.clone() });
        *current.write().unwrap_or_else(|p| p.into_inner()) = lab_routes;
        tracing::info!("the lab is open: pages, API and interfaces are served");
        std::future::pending::<std::io::Result<()>>().await
    };
    tokio::select! {
        () = http => Ok(()),
        failed = start => failed,
    }
}

/// Starts the interface listeners, the EHR outbox and the critical-call escalation.
async fn start_interfaces(
    lab: &Arc<Lab>,
    config: &ServerConfig,
    interfaces: interfaces::InterfaceConfig,
) -> std::io::Result<()> {
    if let Some(addr) = interfaces.mllp {
        let (mllp, bound) = interfaces::mllp::bind(addr).await?;
        tracing::info!("HL7 MLLP listener on {bound}");
        let watch = config.readiness.listeners.watch("MLLP", bound.port());
        tokio::spawn(interfaces::mllp::serve_watched(
            lab.clone(),
            mllp,
            interfaces.mllp_limits.clone(),
            watch,
        ));
    }
    if let Some(ehr) = interfaces.ehr {
        if lab.config().ehr_destination.is_none() {
            tracing::warn!("an EHR address is given but the lab queues no results for it");
        }
        tracing::info!("released results go to the EHR at {ehr} (HL7 ORU^R01 over MLLP)");
        let settings = interfaces::outbox::OutboxSettings::default();
        tokio::spawn(interfaces::outbox::run(lab.clone(), ehr, settings));
    }
    for &addr in &interfaces.astm {
        let (astm, bound) = interfaces::astm::bind(addr).await?;
        tracing::info!("ASTM listener on {bound}");
        let watch = config.readiness.listeners.watch("ASTM", bound.port());
        tokio::spawn(interfaces::astm::serve_watched(
            lab.clone(),
            astm,
            interfaces.astm_limits.clone(),
            watch,
        ));
    }
    {
        // Critical results not called within the lab's limit are escalated (audited, counted
        // late) even when no one has the critical-call list open. A failed pass is logged and
        // the next minute tries again.
        let lab = lab.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = lab.escalate_overdue_calls().await {
                    tracing::error!(error = %e, "escalating overdue critical calls failed");
                }
            }
        });
    }
    Ok(())
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}

async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        // A handler sets its own only to be stricter (an instrument's file: `sandbox`).
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'"),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages carry patient data: never keep them in shared caches.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The address a listener actually bound (port 0 in tests).
pub async fn bind(listen: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let l = tokio::net::TcpListener::bind(listen).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}
