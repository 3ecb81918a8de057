//! Slow and half-sent HTTP requests cannot hold the server: the real server on loopback,
//! a crowd of connections that never finish their headers or their bodies, and a bench
//! request that is still answered while they wait; then every one of them is closed once its
//! deadline passes.

use std::time::Duration;

use cuvette_server::{AppState, HttpLimits, ServerConfig, limits, router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::app;

/// Half of the crowd never ends its headers, the other half never sends its whole body.
const CROWD: usize = 300;

/// What a server answers on a fresh connection to `request`, read until it closes.
async fn ask(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answered within 10 s")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Waits until the server closes `stream` (a read returns end of file or an error), and
/// returns what it sent before closing.
async fn closed_by_the_server(mut stream: TcpStream, within: Duration) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!("the connection was still open after {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn half_sent_requests_are_closed_at_their_deadline_while_a_whole_request_is_served() {
    let app = app().await;
    let limits = HttpLimits {
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        // Fewer than the crowd's half-sent bodies: a request counts only once it is whole.
        requests_max: 16,
        ..HttpLimits::default()
    };
    let http = router(AppState {
        lab: app.lab.clone(),
        config: ServerConfig { limits: limits.clone(), ..ServerConfig::default() },
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        limits::serve_http(listener, http, &limits, std::future::pending()).await
    });

    let mut crowd = Vec::new();
    for i in 0..CROWD {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let start = if i % 2 == 0 {
            // The headers never end.
            "GET /login HTTP/1.1\r\nHost: lab\r\nX-Slow: ".to_owned()
        } else {
            // The body never arrives whole.
            "POST /login HTTP/1.1\r\nHost: lab\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nusername=a".to_owned()
        };
        stream.write_all(start.as_bytes()).await.unwrap();
        crowd.push(stream);
    }

    // While they wait, the bench is served.
    let answer = ask(addr, "GET /healthz HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");

    // Every one of the crowd is closed within its deadline and some slack, each half sent
    // body with a 408 that says what happened.
    let mut closing = tokio::task::JoinSet::new();
    for (i, stream) in crowd.into_iter().enumerate() {
        closing
            .spawn(async move { (i, closed_by_the_server(stream, Duration::from_secs(8)).await) });
    }
    let mut bodies_refused = 0;
    while let Some(done) = closing.join_next().await {
        let (i, said) = done.unwrap();
        if i % 2 == 1 {
            assert!(said.starts_with("HTTP/1.1 408"), "{said}");
            assert!(said.contains("did not arrive whole within 1 s"), "{said}");
            bodies_refused += 1;
        }
    }
    assert_eq!(bodies_refused, CROWD / 2);

    // And the server still serves.
    let answer = ask(addr, "GET /healthz HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_deadline() {
    let app = app().await;
    let limits =
        HttpLimits { header_read_timeout: Duration::from_secs(1), ..HttpLimits::default() };
    let http = router(AppState { lab: app.lab.clone(), config: ServerConfig::default() });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        limits::serve_http(listener, http, &limits, std::future::pending()).await
    });
    let silent = TcpStream::connect(addr).await.unwrap();
    closed_by_the_server(silent, Duration::from_secs(5)).await;
}
