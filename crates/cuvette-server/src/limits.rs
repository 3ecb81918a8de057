//! Serving HTTP so that slow or hostile clients cannot hold the server: each connection must
//! send a request's headers within [`HttpLimits::header_read_timeout`] (hyper closes it
//! otherwise, idle keep-alive connections included), its body within
//! [`HttpLimits::body_read_timeout`] counted from the headers (not reset by each byte), the
//! whole request is answered within [`HttpLimits::request_timeout`], and connections and
//! requests in progress are capped.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::{HttpLimits, REQUEST_BODY_BYTES_MAX};

/// Accepts HTTP/1.1 connections on `listener` until `shutdown` completes, each served by
/// `app` within `limits`. Connections in progress when it completes are given the request
/// timeout to finish.
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // The peer's address goes with each request: sign-in delays count failures per address.
        let service = TowerToHyperService::new(
            tower::ServiceBuilder::new()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    request
                })
                .service(app.clone()),
        );
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
    // Let requests in progress finish, within the time any request is given.
    let all = u32::try_from(limits.connections_max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.request_timeout, slots.acquire_many(all)).await;
}

/// The requests being handled, capped.
#[derive(Clone)]
pub(crate) struct InFlight {
    slots: Arc<Semaphore>,
    limits: HttpLimits,
}

impl InFlight {
    pub(crate) fn new(limits: &HttpLimits) -> InFlight {
        InFlight { slots: Arc::new(Semaphore::new(limits.requests_max)), limits: limits.clone() }
    }
}

/// Takes the body whole within its deadline, then answers within the request's; refuses at
/// once when too many whole requests are in progress.
pub(crate) async fn in_time(
    State(in_flight): State<InFlight>,
    req: Request,
    next: Next,
) -> Response {
    let limits = &in_flight.limits;
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(
        limits.body_read_timeout,
        axum::body::to_bytes(body, REQUEST_BODY_BYTES_MAX),
    )
    .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "request body refused");
            return refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "The request is larger than the {} kB the laboratory system accepts, or was cut off.",
                    REQUEST_BODY_BYTES_MAX / 1024
                ),
            );
        }
        Err(_) => {
            return refusal(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "The request did not arrive whole within {} s: send it again.",
                    limits.body_read_timeout.as_secs()
                ),
            );
        }
    };
    // A request counts once it has arrived whole: one still sending its body holds only its
    // connection (and is cut at the body deadline), never a slot a whole request needs.
    let Ok(_slot) = in_flight.slots.clone().try_acquire_owned() else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "Cuvette is answering as many requests as it can: try again in a moment.".into(),
        );
    };
    let req = Request::from_parts(parts, Body::from(body));
    match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            // The handler was dropped mid-way: its transaction, if any, rolled back.
            tracing::warn!(
                seconds = limits.request_timeout.as_secs(),
                "a request was not answered in time and was abandoned"
            );
            refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "The laboratory system did not answer within {} s: check whether the change was saved before trying again.",
                    limits.request_timeout.as_secs()
                ),
            )
        }
    }
}

/// A plain-text refusal that closes the connection.
fn refusal(status: StatusCode, message: String) -> Response {
    let mut res = (status, message).into_response();
    res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}
