//! Crash safety: the server is killed (SIGKILL) while instruments stream results on three
//! connections at once (so messages are committed in groups), then restarted; each connection
//! resends what was not acknowledged (and, to be sure, some of what was). Every acknowledged
//! result must be stored, and every result exactly once.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cuvette_app::{Actor, FixedClock, IdentityCheck, Lab, LabConfig, PlaceOrder, RegisterPatient};
use cuvette_hl7::mllp::{MllpDeframer, frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SPECIMENS: usize = 120;
/// The server is killed after this many acknowledgements.
const KILL_AFTER: usize = 40;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(data: &std::path::Path, http: u16, mllp: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cuvette"))
        .args(["serve", "--data"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{http}"), "--mllp", &format!("127.0.0.1:{mllp}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the cuvette binary starts")
}

async fn wait_for(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn oru(control_id: &str, accession: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|CRASHTEST|LAB|CUVETTE|LAB|20261124081500||ORU^R01^ORU_R01|{control_id}|P|2.5.1\rOBR|1||{accession}\rOBX|1|NM|2823-3^^LN||4.2|mmol/L|||||F\r"
    )
    .into_bytes()
}

/// Connections streaming at once.
const CONNECTIONS: usize = 3;

/// Sends the messages at `share` (indexes into `messages`) in order, one at a time, until the
/// connection breaks; returns the indexes acknowledged AA.
async fn stream(
    mllp: SocketAddr,
    messages: &[Vec<u8>],
    share: &[usize],
    progress: Arc<AtomicUsize>,
) -> Vec<usize> {
    let mut acked = Vec::new();
    let Ok(mut s) = TcpStream::connect(mllp).await else { return acked };
    let mut deframer = MllpDeframer::new();
    let mut buf = [0u8; 4096];
    for &i in share {
        let m = &messages[i];
        if s.write_all(&frame(m)).await.is_err() {
            break;
        }
        let ack = loop {
            if let Some(Ok(f)) = deframer.next_frame() {
                break Some(f);
            }
            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => deframer.push(&buf[..n]),
                _ => break None,
            }
        };
        match ack {
            Some(a) if String::from_utf8_lossy(&a).contains("MSA|AA|") => {
                acked.push(i);
                progress.fetch_add(1, Ordering::SeqCst);
            }
            Some(a) => panic!("message {i} refused: {}", String::from_utf8_lossy(&a)),
            None => break,
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_acknowledged_result_and_stores_none_twice() {
    let data = std::env::temp_dir().join(format!("cuvette-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);

    // The lab before the run: an analyzer, and received specimens waiting for potassium.
    let accessions = {
        let database = cuvette_app::Database::open_dir(&data).await.unwrap();
        let clock = Arc::new(FixedClock::new(cuvette_app::Clock::now(&cuvette_app::SystemClock)));
        let lab = Lab::open(database, clock, LabConfig::default()).await.unwrap();
        let sys = Actor::system();
        let id = lab.add_instrument(&sys, "Crash analyzer", "hl7", "CRASHTEST").await.unwrap();
        lab.map_test_code(&sys, id, "2823-3", "K", "mmol/L").await.unwrap();
        let mut accessions = Vec::new();
        for i in 0..SPECIMENS {
            let p = lab
                .register_patient(
                    &sys,
                    &RegisterPatient {
                        mrn: format!("CR{i:04}"),
                        family_name: "Crashtest".into(),
                        given_name: "Kim".into(),
                        birth_date: "1970-01-01".into(),
                        sex: "F".into(),
                    },
                )
                .await
                .unwrap();
            let placed = lab
                .place_order(
                    &sys,
                    &PlaceOrder {
                        patient_id: p.id,
                        provider: "Dr. K".into(),
                        priority: "routine".into(),
                        tests: vec!["K".into()],
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let acc = placed.specimens[0].accession.clone();
            lab.collect(&sys, &acc).await.unwrap();
            lab.receive(
                &sys,
                &acc,
                &IdentityCheck {
                    mrn: Some(p.mrn.clone()),
                    birth_date: Some(p.birth_date.clone()),
                    family_name: None,
                },
            )
            .await
            .unwrap();
            accessions.push(acc);
        }
        lab.close().await;
        accessions
    };
    let messages: Vec<Vec<u8>> =
        accessions.iter().enumerate().map(|(i, a)| oru(&format!("CRASH{i:04}"), a)).collect();

    // Stream, and kill the server without warning part-way through.
    let (http, port) = (free_port(), free_port());
    let mllp: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = start(&data, http, port);
    wait_for(mllp).await;
    let progress = Arc::new(AtomicUsize::new(0));
    let shares: Vec<Vec<usize>> =
        (0..CONNECTIONS).map(|c| (c..SPECIMENS).step_by(CONNECTIONS).collect()).collect();
    let senders: Vec<_> = shares
        .iter()
        .map(|share| {
            let (messages, progress, share) = (messages.clone(), progress.clone(), share.clone());
            tokio::spawn(async move { stream(mllp, &messages, &share, progress).await })
        })
        .collect();
    while progress.load(Ordering::SeqCst) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    server.wait().unwrap();
    let mut acked_before = Vec::new();
    for sender in senders {
        acked_before.push(sender.await.unwrap());
    }
    let total: usize = acked_before.iter().map(Vec::len).sum();
    assert!(total < SPECIMENS, "the kill came before the end ({total} acknowledged)");
    eprintln!("killed after {total} of {SPECIMENS} results were acknowledged");

    // Restart; each connection resends from a little before its last acknowledgement.
    let mut server = start(&data, http, port);
    wait_for(mllp).await;
    let mut resent = 0;
    let mut acked_after = 0;
    for (share, acked) in shares.iter().zip(&acked_before) {
        let rest = &share[acked.len().saturating_sub(2)..];
        resent += rest.len();
        acked_after += stream(mllp, &messages, rest, Arc::new(AtomicUsize::new(0))).await.len();
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(acked_after, resent, "everything resent is acknowledged");

    // Every specimen has exactly one potassium result.
    let database = cuvette_app::Database::open_dir(&data).await.unwrap();
    let clock = Arc::new(FixedClock::new(cuvette_app::Clock::now(&cuvette_app::SystemClock)));
    let lab = Lab::open(database, clock, LabConfig::default()).await.unwrap();
    for acc in &accessions {
        let view = lab.specimen_view(&Actor::system(), acc).await.unwrap();
        let k = &view.tests[0];
        assert_eq!(k.versions.len(), 1, "{acc}: {} result versions", k.versions.len());
        assert_eq!(k.versions[0].value_text, "4.2");
    }
    assert!(matches!(
        lab.verify_audit(&Actor::system()).await.unwrap(),
        cuvette_app::records::AuditVerification::Intact { .. }
    ));
    lab.close().await;
    let _ = std::fs::remove_dir_all(&data);
}
