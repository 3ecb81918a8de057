//! Liveness and readiness as a load balancer or the lab's monitoring asks for them: `/healthz`
//! answers at once whatever the database does; `/readyz` says 503 with the reason in plain
//! words when the database fails, a listener stops or the outbox falls behind, and 200 when
//! all is well.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cuvette_server::health::{Listeners, ReadinessConfig};
use cuvette_server::interfaces::{ListenerLimits, mllp};
use cuvette_server::{AppState, ServerConfig, router};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tower::ServiceExt;

use crate::support::app;

/// GETs `uri` without signing in: its status and JSON body (or the text as a string).
async fn probe(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let res = app
        .clone()
        .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn check<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {body}"))
}

fn served(app: &crate::support::App, readiness: ReadinessConfig) -> axum::Router {
    router(AppState {
        lab: app.lab.clone(),
        config: ServerConfig { readiness, ..ServerConfig::default() },
    })
}

#[tokio::test]
async fn a_lab_whose_database_answers_and_listeners_accept_is_ready_with_each_check_named() {
    let app = app().await;
    let listeners = Listeners::default();
    let (listener, addr) = mllp::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let _mllp = tokio::spawn(mllp::serve_watched(
        app.lab.clone(),
        listener,
        ListenerLimits::mllp(),
        listeners.watch("MLLP", addr.port()),
    ));
    let http = served(&app, ReadinessConfig { listeners, ..ReadinessConfig::default() });
    tokio::task::yield_now().await;
    let (status, body) = probe(&http, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ready"], true);
    for name in ["database", "listeners", "outbox"] {
        assert_eq!(check(&body, name)["ok"], true, "{body}");
    }
    assert_eq!(check(&body, "listeners")["detail"], "1 accepting");
    assert_eq!(check(&body, "outbox")["detail"], "0 waiting");
}

#[tokio::test]
async fn liveness_answers_at_once_while_the_database_is_gone_and_readiness_says_why() {
    let app = app().await;
    let http = served(&app, ReadinessConfig::default());
    app.lab.close().await;

    let alive =
        tokio::time::timeout(Duration::from_millis(200), probe(&http, "/healthz")).await.unwrap();
    assert_eq!(alive, (StatusCode::OK, Value::String("ok".into())));

    let (status, body) = probe(&http, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(check(&body, "database")["ok"], false);
    assert_eq!(body["reason"], "the database cannot be queried (see the server log)");
    // Nothing about the database's address or the driver's words is shown.
    assert!(!body.to_string().contains("sqlite"), "{body}");
    assert!(!body.to_string().contains("postgres"), "{body}");
}

#[tokio::test]
async fn a_listener_that_stopped_accepting_makes_the_server_not_ready_naming_its_port() {
    let app = app().await;
    let listeners = Listeners::default();
    let (listener, addr) = mllp::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let running = tokio::spawn(mllp::serve_watched(
        app.lab.clone(),
        listener,
        ListenerLimits::mllp(),
        listeners.watch("MLLP", addr.port()),
    ));
    let http = served(&app, ReadinessConfig { listeners, ..ReadinessConfig::default() });
    tokio::task::yield_now().await;
    assert_eq!(probe(&http, "/readyz").await.0, StatusCode::OK);

    running.abort();
    let _ = running.await;
    let (status, body) = probe(&http, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(check(&body, "listeners")["ok"], false);
    assert_eq!(
        body["reason"],
        format!("the MLLP listener on port {} is not accepting connections", addr.port())
    );
    assert_eq!(check(&body, "database")["ok"], true);
}

#[tokio::test]
async fn a_result_message_waiting_in_the_outbox_longer_than_allowed_makes_the_server_not_ready() {
    let app = app().await;
    let http = served(
        &app,
        ReadinessConfig { outbox_wait_max: Duration::from_secs(30 * 60), ..Default::default() },
    );
    // A release queued an ORU for the EHR at 08:00 (the test clock's now), and it was not sent.
    crate::fixtures::an_outbox_message_queued(&app, app.lab.now().as_microsecond()).await;
    let (status, body) = probe(&http, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "a message queued just now is no backlog: {body}");
    assert_eq!(check(&body, "outbox")["detail"], "1 waiting");

    app.clock.advance(jiff::SignedDuration::from_mins(31));
    let (status, body) = probe(&http, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(check(&body, "outbox")["ok"], false);
    assert_eq!(
        body["reason"],
        "1 result message(s) wait to be sent, the oldest for 31 min (more than 30 min)"
    );
}

#[tokio::test]
async fn a_listener_that_turned_a_peer_away_is_ready_again_once_a_slot_is_free() {
    let app = app().await;
    let listeners = Listeners::default();
    let (listener, addr) = mllp::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // The lab lists no address: every peer shares the one slot.
    let limits = ListenerLimits { unlisted_connections: 1, ..ListenerLimits::mllp() };
    let _mllp = tokio::spawn(mllp::serve_watched(
        app.lab.clone(),
        listener,
        limits,
        listeners.watch("MLLP", addr.port()),
    ));
    let http = served(&app, ReadinessConfig { listeners, ..ReadinessConfig::default() });
    let first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut turned_away = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), turned_away.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed at once: {n:?}");
    let (status, body) = probe(&http, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body["reason"],
        format!("the MLLP listener on port {} has every connection in use", addr.port())
    );

    // The holder leaves; nobody connects after it, and still the listener is ready again.
    drop(first);
    let mut ready = false;
    for _ in 0..100 {
        if probe(&http, "/readyz").await.0 == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "{}", probe(&http, "/readyz").await.1);
}

/// Asks the real server on `addr` for `path` on a connection of its own: the status code and
/// the body.
async fn over_tcp(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("answered within 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_server_started_before_its_database_answers_liveness_says_why_it_is_not_ready_then_serves_the_lab()
 {
    let app = app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The database opens when the test says so, as a database server coming back would.
    let (opened, opening) = tokio::sync::oneshot::channel::<std::sync::Arc<cuvette_app::Lab>>();
    let server = tokio::spawn(cuvette_server::serve_once_open(
        listener,
        async {
            Ok::<_, cuvette_server::OpenError>(opening.await.expect("the test opens the lab"))
        },
        ServerConfig::default(),
        cuvette_server::interfaces::InterfaceConfig::default(),
        std::future::pending(),
    ));

    let (status, body) = over_tcp(addr, "/healthz").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "ok"),
        "liveness answers while the database is out of reach"
    );
    let (status, body) = over_tcp(addr, "/readyz").await;
    assert_eq!(status, 503);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("database cannot be reached yet"),
        "readiness names the database: {body}"
    );
    assert_eq!(check(&body, "database")["ok"], false);
    let (status, body) = over_tcp(addr, "/login").await;
    assert_eq!(status, 503, "a page is refused with a reason, not left hanging: {body}");
    assert!(body.contains("try again"), "{body}");

    opened.send(app.lab.clone()).ok().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if over_tcp(addr, "/readyz").await.0 == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "ready within 5 s of the database opening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = over_tcp(addr, "/login").await;
    assert_eq!(status, 200, "the sign-in page is served once the lab is open: {body}");
    assert!(!server.is_finished());
    server.abort();
}

#[tokio::test]
async fn a_lab_that_cannot_be_opened_for_good_ends_the_server_with_the_reason() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ended = tokio::time::timeout(
        Duration::from_secs(5),
        cuvette_server::serve_once_open(
            listener,
            async {
                Err::<std::sync::Arc<cuvette_app::Lab>, _>(cuvette_server::OpenError::from(
                    "the audit key is readable by others",
                ))
            },
            ServerConfig::default(),
            cuvette_server::interfaces::InterfaceConfig::default(),
            std::future::pending(),
        ),
    )
    .await
    .expect("the server ends at once");
    let error = ended.expect_err("an error, not a clean stop");
    assert!(error.to_string().contains("audit key"), "{error}");
}
