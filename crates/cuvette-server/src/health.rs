//! Liveness and readiness: `/healthz` says the process answers, `/readyz` whether the lab can
//! be served — the database answers in time, every interface listener accepts connections,
//! and the outbox is not falling behind. Both are unauthenticated for load balancers and
//! monitoring, so they say which check failed in plain words and nothing about any patient,
//! user or address.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::AppState;

/// What `/readyz` tolerates.
#[derive(Debug, Clone)]
pub struct ReadinessConfig {
    /// The database must answer a trivial query within this.
    pub database_timeout: Duration,
    /// The oldest message waiting in the outbox may wait this long.
    pub outbox_wait_max: Duration,
    /// The interface listeners this server runs.
    pub listeners: Listeners,
}

impl Default for ReadinessConfig {
    fn default() -> ReadinessConfig {
        ReadinessConfig {
            database_timeout: Duration::from_secs(1),
            outbox_wait_max: Duration::from_secs(15 * 60),
            listeners: Listeners::default(),
        }
    }
}

/// The interface listeners a server runs, each reporting whether it accepts connections.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    watched: Arc<Mutex<Vec<ListenerWatch>>>,
}

impl Listeners {
    /// Watches a listener bound on `port` speaking `protocol`; its accept loop reports
    /// through the returned watch.
    pub fn watch(&self, protocol: &'static str, port: u16) -> ListenerWatch {
        let watch = ListenerWatch::new(protocol, port);
        self.watched.lock().unwrap_or_else(|p| p.into_inner()).push(watch.clone());
        watch
    }

    fn all(&self) -> Vec<ListenerWatch> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One listener's state as its accept loop reports it.
#[derive(Debug, Clone)]
pub struct ListenerWatch {
    protocol: &'static str,
    port: u16,
    state: Arc<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    /// The accept loop runs.
    running: AtomicBool,
    /// The last accept failed (out of file descriptors, say).
    accept_failing: AtomicBool,
    /// Every connection slot is taken: a new peer waits in the accept queue.
    full: AtomicBool,
}

impl ListenerWatch {
    /// A watch that no readiness probe reads (a listener served without one).
    pub fn unwatched(protocol: &'static str, port: u16) -> ListenerWatch {
        ListenerWatch::new(protocol, port)
    }

    fn new(protocol: &'static str, port: u16) -> ListenerWatch {
        ListenerWatch { protocol, port, state: Arc::default() }
    }

    /// Marks the accept loop running until the returned guard is dropped (the loop ended,
    /// panicked or was cancelled).
    pub(crate) fn running(&self) -> RunningGuard {
        self.state.running.store(true, Ordering::Release);
        RunningGuard(self.state.clone())
    }

    pub(crate) fn accept_result(&self, ok: bool) {
        self.state.accept_failing.store(!ok, Ordering::Release);
    }

    pub(crate) fn full(&self, full: bool) {
        self.state.full.store(full, Ordering::Release);
    }

    fn fault(&self) -> Option<NotReady> {
        let (protocol, port) = (self.protocol, self.port);
        if !self.state.running.load(Ordering::Acquire) {
            Some(NotReady::ListenerStopped { protocol, port })
        } else if self.state.accept_failing.load(Ordering::Acquire) {
            Some(NotReady::ListenerAcceptFailing { protocol, port })
        } else if self.state.full.load(Ordering::Acquire) {
            Some(NotReady::ListenerFull { protocol, port })
        } else {
            None
        }
    }
}

/// Marks a listener stopped when its accept loop ends.
pub(crate) struct RunningGuard(Arc<WatchState>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

/// Why the server is not ready, in the words an operator acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The server was started but could not open its database yet; it keeps trying.
    #[error(
        "the database cannot be reached yet: Cuvette keeps trying and serves the lab once it opens (see the server log)"
    )]
    DatabaseNotOpened,
    /// The database did not answer in time.
    #[error("the database did not answer within {} ms", .0.as_millis())]
    DatabaseSlow(Duration),
    /// The database answered with an error (the detail is in the server's log).
    #[error("the database cannot be queried (see the server log)")]
    DatabaseFailing,
    /// Reads are answered but the last write failed and none has succeeded since.
    #[error(
        "the database answers but the last write to it failed (a full disk or a lock held elsewhere; see the server log)"
    )]
    WritesFailing,
    /// A listener's accept loop is not running.
    #[error("the {protocol} listener on port {port} is not accepting connections")]
    ListenerStopped {
        /// `MLLP` or `ASTM`.
        protocol: &'static str,
        /// Its port.
        port: u16,
    },
    /// A listener cannot accept connections.
    #[error("the {protocol} listener on port {port} fails to accept connections")]
    ListenerAcceptFailing {
        /// `MLLP` or `ASTM`.
        protocol: &'static str,
        /// Its port.
        port: u16,
    },
    /// Every connection slot of a listener is taken.
    #[error("the {protocol} listener on port {port} has every connection in use")]
    ListenerFull {
        /// `MLLP` or `ASTM`.
        protocol: &'static str,
        /// Its port.
        port: u16,
    },
    /// The outbox falls behind.
    #[error(
        "{pending} result message(s) wait to be sent, the oldest for {} min (more than {} min)",
        .oldest.as_secs() / 60, .limit.as_secs() / 60
    )]
    OutboxBehind {
        /// Messages waiting.
        pending: i64,
        /// How long the oldest has waited.
        oldest: Duration,
        /// What is tolerated.
        limit: Duration,
    },
}

/// One check as `/readyz` reports it.
#[derive(Debug, Serialize)]
struct Check {
    /// `database`, `listeners` or `outbox`.
    name: &'static str,
    ok: bool,
    /// What is wrong, or what was found.
    detail: String,
}

/// The `/readyz` body.
#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    /// The failed checks' reasons, joined: what an operator reads first.
    reason: Option<String>,
    checks: Vec<Check>,
}

/// Liveness: the process answers. It touches nothing, so it answers at once even while the
/// database is down (a probe restarting the server then would not help).
pub(crate) async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok")
}

/// Readiness: 200 when every check passes, 503 with each check and the reason otherwise.
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let config = &state.config.readiness;
    let mut checks = Vec::new();
    let mut faults = Vec::new();

    let database =
        match tokio::time::timeout(config.database_timeout, state.lab.check_reachable()).await {
            Ok(Ok(())) if state.lab.writes_failing() => Err(NotReady::WritesFailing),
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: the database cannot be queried");
                Err(NotReady::DatabaseFailing)
            }
            Err(_) => Err(NotReady::DatabaseSlow(config.database_timeout)),
        };
    let database_ok = database.is_ok();
    checks.push(check("database", database.map(|()| "answers".to_owned()), &mut faults));

    let stopped: Vec<NotReady> =
        config.listeners.all().iter().filter_map(ListenerWatch::fault).collect();
    let listeners = match stopped.first() {
        None => Ok(format!("{} accepting", config.listeners.all().len())),
        Some(first) => Err(first.clone()),
    };
    checks.push(check("listeners", listeners, &mut faults));
    faults.extend(stopped.iter().skip(1).cloned());

    // The backlog is read only from a database that answers, and within the same patience.
    let outbox = if database_ok {
        match tokio::time::timeout(config.database_timeout, state.lab.outbox_backlog()).await {
            Ok(Ok(b)) => match b.oldest_wait {
                Some(oldest) if oldest > config.outbox_wait_max => Err(NotReady::OutboxBehind {
                    pending: b.pending,
                    oldest,
                    limit: config.outbox_wait_max,
                }),
                _ => Ok(format!("{} waiting", b.pending)),
            },
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: the outbox cannot be read");
                Err(NotReady::DatabaseFailing)
            }
            Err(_) => Err(NotReady::DatabaseSlow(config.database_timeout)),
        }
    } else {
        Ok("not checked while the database fails".to_owned())
    };
    checks.push(check("outbox", outbox, &mut faults));

    let ready = faults.is_empty();
    let reason =
        (!ready).then(|| faults.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready, reason, checks }))
}

fn check(
    name: &'static str,
    outcome: Result<String, NotReady>,
    faults: &mut Vec<NotReady>,
) -> Check {
    match outcome {
        Ok(detail) => Check { name, ok: true, detail },
        Err(fault) => {
            let detail = fault.to_string();
            faults.push(fault);
            Check { name, ok: false, detail }
        }
    }
}

/// What the server answers before its database could be opened (a database server still
/// starting, or down when Cuvette started): `/healthz` answers, so a supervisor does not
/// restart a process that only waits; `/readyz` says why it is not ready; every other request
/// is refused with a 503 saying to try again, never a connection refused or a hang.
pub(crate) fn opening_routes() -> axum::Router {
    axum::Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", axum::routing::get(not_opened))
        .fallback(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Cuvette is starting and cannot reach its database yet: try again in a minute, and if it lasts, tell whoever runs the server.",
            )
        })
}

async fn not_opened() -> impl IntoResponse {
    let mut faults = Vec::new();
    let checks = vec![check("database", Err(NotReady::DatabaseNotOpened), &mut faults)];
    let reason = Some(faults.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
    (StatusCode::SERVICE_UNAVAILABLE, Json(Readiness { ready: false, reason, checks }))
}
