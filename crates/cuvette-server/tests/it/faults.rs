//! The lab recovers from database faults by itself: while a fault lasts, every HL7 message is
//! answered AR (never accepted) and `/readyz` says why; once it clears, the same running
//! server takes messages again, with nothing acknowledged lost and nothing refused kept.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cuvette_app::Actor;
use cuvette_app::records::{Direction, MessageFilter};
use cuvette_hl7::Message;
use cuvette_hl7::mllp::{MllpDeframer, frame};
use cuvette_server::interfaces::mllp;
use cuvette_server::{AppState, ServerConfig, router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

use crate::fixtures::{Fault, app_with_faults};

/// The NIST LRI CBC result as NIST sends it; its sender is not on file, so once stored it is
/// answered AE (kept in the quarantine), and AR when it could not be stored.
const NIST_CBC: &[u8] = include_bytes!("data/hl7v251-oru-r01_fhir-converter_nist-lri-cbc-lf.hl7");

/// How long any one answer may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

/// The NIST CBC in original mode with control id (MSH-10) `control_id`.
fn message(control_id: &str) -> Vec<u8> {
    String::from_utf8(NIST_CBC.to_vec())
        .unwrap()
        .replace("|NIST-LRI-NG-002.00|T|2.5.1|||AL|NE|", &format!("|{control_id}|T|2.5.1|||||"))
        .into_bytes()
}

/// Sends each message on one MLLP connection and returns the MSA-1 it was answered with.
async fn send_all(stream: &mut TcpStream, control_ids: &[String]) -> Vec<String> {
    let mut deframer = MllpDeframer::new();
    let mut buf = [0u8; 8192];
    let mut codes = Vec::new();
    for id in control_ids {
        stream.write_all(&frame(&message(id))).await.unwrap();
        let reply = loop {
            if let Some(next) = deframer.next_frame() {
                break next.unwrap();
            }
            let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "the listener closed the connection");
            deframer.push(&buf[..n]);
        };
        let reply = Message::parse(&reply).unwrap();
        assert_eq!(reply.get("MSA-2").unwrap().text(), id.as_str(), "answered in order");
        codes.push(reply.get("MSA-1").unwrap().text().into_owned());
    }
    codes
}

/// The control ids of the inbound messages the lab keeps.
async fn kept(app: &crate::support::App) -> Vec<String> {
    let inbound =
        MessageFilter { direction: Some(Direction::In), limit: 1000, ..Default::default() };
    let mut ids: Vec<String> = app
        .lab
        .message_log(&Actor::system(), &inbound)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.control_id)
        .collect();
    ids.sort();
    ids
}

async fn readiness(app: &crate::support::App) -> (StatusCode, serde_json::Value) {
    let http = router(AppState { lab: app.lab.clone(), config: ServerConfig::default() });
    let res =
        http.oneshot(Request::builder().uri("/readyz").body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Runs the episode: messages before, during and after `fault`, on one listener that is
/// never restarted. `seen_at_commit`: the fault fails the COMMIT (as a full disk does when
/// the write-ahead log is appended), which `/readyz` reports until a write succeeds.
async fn an_episode_of(fault: Fault, seen_at_commit: bool) {
    let (app, faults) = app_with_faults().await;
    if app.db.is_postgres() {
        return; // SQLite's faults; PostgreSQL's are in the store's suite.
    }
    let (listener, addr) = mllp::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let _server = tokio::spawn(mllp::serve(app.lab.clone(), listener));
    let mut sender = TcpStream::connect(addr).await.unwrap();

    let bench = app.sign_in(cuvette_domain::role::Role::Technologist, "faults").await;
    let before = ids("BEFORE", 3);
    assert_eq!(send_all(&mut sender, &before).await, ["AE"; 3], "stored and quarantined");

    faults.inject(fault);
    let during = ids("DURING", 12);
    assert_eq!(send_all(&mut sender, &during).await, ["AR"; 12], "none taken while it lasts");
    if seen_at_commit {
        let (status, body) = readiness(&app).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let reason = body["reason"].as_str().unwrap();
        assert!(reason.contains("the last write to it failed"), "{body}");
    }

    // The bench is told the database is not answering and to try again — not that the
    // server broke — and nothing of it is stored. (A full disk refuses only what needs a new
    // page; a registration may fit in the pages the file has.)
    let patient = serde_json::json!({ "mrn": "FAULT1", "family_name": "Fault", "given_name": "Ada",
        "birth_date": "1960-03-02", "sex": "F" });
    if seen_at_commit {
        let refused =
            app.api(&bench, Method::POST, "/api/v1/patients", Some(patient.clone())).await;
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.body);
        assert!(refused.body.contains("the database is not answering for now"), "{}", refused.body);
        assert!(refused.body.contains("try again"), "{}", refused.body);
    }

    faults.inject(Fault::None);
    if seen_at_commit {
        let registered = app.api(&bench, Method::POST, "/api/v1/patients", Some(patient)).await;
        assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.body);
    }
    // The same connection and another one, more messages than the pool has connections:
    // none is left broken by the fault.
    let after = ids("AFTER", 12);
    assert_eq!(send_all(&mut sender, &after[..6]).await, ["AE"; 6], "taken again");
    let mut another = TcpStream::connect(addr).await.unwrap();
    assert_eq!(send_all(&mut another, &after[6..]).await, ["AE"; 6], "taken again");
    let (status, body) = readiness(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Everything acknowledged is kept; nothing answered AR is.
    let mut expected: Vec<String> = before.iter().chain(&after).cloned().collect();
    expected.sort();
    assert_eq!(kept(&app).await, expected);
    let report = app.lab.verify_audit(&Actor::system()).await.unwrap();
    assert!(matches!(report, cuvette_app::records::AuditVerification::Intact { .. }), "{report:?}");
}

#[tokio::test]
async fn a_commit_the_database_abandons_is_answered_ar_and_the_next_messages_are_taken_without_a_restart()
 {
    an_episode_of(Fault::CommitAborted, true).await;
}

#[tokio::test]
async fn a_full_disk_is_answered_ar_and_once_space_returns_messages_are_taken_without_a_restart() {
    // The file cannot grow: the statement that needs a page fails inside the transaction.
    an_episode_of(Fault::DiskFull, false).await;
}
