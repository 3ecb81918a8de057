//! The outbox worker against a fake EHR: a TCP listener on 127.0.0.1 that reads MLLP frames
//! and answers each with the acknowledgement the test scripts (AA unless told otherwise).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cuvette_app::records::{MessageFilter, OutboxRow};
use cuvette_app::{
    Actor, EnteredResult, FixedClock, IdentityCheck, Lab, LabConfig, NewUser, PlaceOrder,
    RegisterPatient,
};
use cuvette_domain::Role;
use cuvette_domain::workflow::TestStatus;
use cuvette_hl7::mllp::{MllpDeframer, frame};
use cuvette_hl7::{AckBuilder, AckCode, ErrSegment, ErrorCode, Message, Severity};
use cuvette_server::interfaces::outbox::{OutboxSettings, OutboxWorker, Round, run};
use cuvette_testkit::TestDb;
use jiff::SignedDuration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the fake EHR answers to the next messages, in order; `None` is no answer at all.
type Script = VecDeque<Option<AckCode>>;

struct FakeEhr {
    addr: SocketAddr,
    /// Every message received, in order.
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Connections accepted.
    connections: Arc<AtomicUsize>,
}

async fn fake_ehr(script: impl IntoIterator<Item = Option<AckCode>>) -> FakeEhr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(script.into_iter().collect()));
    let (got, count) = (received.clone(), connections.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (got, script) = (got.clone(), script.clone());
            tokio::spawn(async move {
                let mut deframer = MllpDeframer::new();
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    deframer.push(&buf[..n]);
                    while let Some(Ok(message)) = deframer.next_frame() {
                        got.lock().unwrap().push(message.clone());
                        let answer = script.lock().unwrap().pop_front();
                        let Some(code) = answer.unwrap_or(Some(AckCode::ApplicationAccept)) else {
                            continue;
                        };
                        let original = Message::parse(&message).unwrap();
                        let mut ack = AckBuilder::new(&original, code, "EHRACK", "20261124080000");
                        if code != AckCode::ApplicationAccept {
                            ack = ack.text("patient not found").error(
                                ErrSegment::new(ErrorCode::UnknownKeyIdentifier, Severity::Error)
                                    .diagnostic("no such MRN in the EHR"),
                            );
                        }
                        let ack = ack.build().unwrap();
                        if stream.write_all(&frame(&ack)).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    FakeEhr { addr, received, connections }
}

impl FakeEhr {
    fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }
}

/// A lab that queues released results for the EHR, on its own database, with its clock.
struct Bench {
    lab: Arc<Lab>,
    clock: Arc<FixedClock>,
    technologist: Actor,
    /// The potassium's specimen, once drawn.
    accession: std::sync::OnceLock<String>,
    _db: TestDb,
}

async fn bench() -> Bench {
    let db = TestDb::create().await;
    let clock = Arc::new(FixedClock::new("2026-11-24T08:00:00Z".parse().unwrap()));
    let config = LabConfig { ehr_destination: Some("ehr".into()), ..LabConfig::default() };
    let lab = Arc::new(
        Lab::open(cuvette_app::Database::open(db.url()).await.unwrap(), clock.clone(), config)
            .await
            .unwrap(),
    );
    let user = NewUser {
        username: "mls".into(),
        display_name: "A. Technologist".into(),
        role: Role::Technologist,
        password: "correct horse battery staple".into(),
    };
    lab.add_user(&Actor::system(), user).await.unwrap();
    let technologist = Actor {
        name: "mls".into(),
        display_name: "A. Technologist".into(),
        role: Role::Technologist,
    };
    Bench { lab, clock, technologist, accession: Default::default(), _db: db }
}

impl Bench {
    /// A patient's potassium, drawn, received and entered; returns the ordered test id.
    async fn potassium(&self, value: &str) -> i64 {
        let (lab, who) = (&self.lab, &self.technologist);
        let form = RegisterPatient {
            mrn: "F2002".into(),
            family_name: "Lindqvist".into(),
            given_name: "Sam".into(),
            birth_date: "1970-03-01".into(),
            sex: "F".into(),
        };
        let patient = lab.register_patient(who, &form).await.unwrap();
        let order = PlaceOrder {
            patient_id: patient.id,
            provider: "Dr. A. Okafor".into(),
            priority: "routine".into(),
            tests: vec!["K".into()],
            clinical_note: String::new(),
            placer_number: Some("PL-7".into()),
        };
        let placed = lab.place_order(who, &order).await.unwrap();
        let accession = &placed.specimens[0].accession;
        lab.collect(who, accession).await.unwrap();
        let check = IdentityCheck {
            mrn: Some("F2002".into()),
            birth_date: Some("1970-03-01".into()),
            family_name: None,
        };
        lab.receive(who, accession, &check).await.unwrap();
        self.accession.set(accession.clone()).unwrap();
        let id = self.item().await.0;
        self.enter(id, value).await;
        id
    }

    async fn item(&self) -> (i64, i64) {
        let accession = self.accession.get().expect("the potassium is drawn");
        let view = self.lab.specimen_view(&self.technologist, accession).await.unwrap();
        let test = &view.tests[0].item.test;
        (test.id, test.row_version)
    }

    async fn enter(&self, id: i64, value: &str) {
        let row_version = self.item().await.1;
        let entry = EnteredResult { ordered_test_id: id, row_version, text: value.into() };
        self.lab.enter_results(&self.technologist, &[entry], None).await.unwrap();
    }

    async fn release(&self, status: TestStatus) {
        let outcomes =
            self.lab.release(&self.technologist, &[self.item().await], status).await.unwrap();
        assert!(
            matches!(outcomes[0], cuvette_app::Release::Released { .. }),
            "released: {outcomes:?}"
        );
    }

    async fn undelivered(&self) -> Vec<OutboxRow> {
        self.lab.outbox(&self.technologist).await.unwrap()
    }

    async fn sent_log(&self) -> Vec<cuvette_app::records::MessageRow> {
        let filter = MessageFilter {
            direction: Some(cuvette_app::records::Direction::Out),
            ..Default::default()
        };
        self.lab.message_log(&self.technologist, &filter).await.unwrap()
    }

    fn worker(&self, ehr: SocketAddr) -> OutboxWorker {
        OutboxWorker::new(self.lab.clone(), ehr, settings())
    }
}

fn settings() -> OutboxSettings {
    OutboxSettings {
        poll: Duration::from_millis(20),
        ack_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        batch: 100,
    }
}

fn msh10(message: &[u8]) -> String {
    Message::parse(message).unwrap().msh().control_id().text().into_owned()
}

#[tokio::test]
async fn a_released_result_is_delivered_to_the_ehr_and_logged() {
    let b = bench().await;
    let ehr = fake_ehr([]).await;
    b.potassium("4.2").await;
    b.release(TestStatus::Final).await;
    let queued = b.undelivered().await;
    assert_eq!(queued.len(), 1);

    let round = b.worker(ehr.addr).run_once().await;

    assert_eq!(round, Round { sent: 1, failed: 0 });
    assert_eq!(ehr.received(), [queued[0].payload.clone()], "the ORU as queued");
    assert!(b.undelivered().await.is_empty(), "the outbox row is sent");
    let log = b.sent_log().await;
    assert_eq!(log.len(), 1);
    let m = &log[0];
    assert_eq!(
        (m.message_type.as_str(), m.outcome.code(), m.control_id.as_deref()),
        ("ORU^R01", "sent", Some(queued[0].control_id.as_str()))
    );
    assert_eq!(m.raw, queued[0].payload);
    assert_eq!(m.accession.as_deref(), Some(queued[0].accession.as_str()));
    assert_eq!(m.results, 1);
    let ack = String::from_utf8_lossy(m.ack.as_ref().expect("the EHR's ACK is kept")).into_owned();
    assert!(ack.contains(&format!("MSA|AA|{}", queued[0].control_id)), "{ack}");
}

#[tokio::test]
async fn an_ae_is_a_failed_attempt_retried_after_the_backoff_on_the_same_connection() {
    let b = bench().await;
    let ehr = fake_ehr([Some(AckCode::ApplicationError)]).await;
    b.potassium("4.2").await;
    b.release(TestStatus::Final).await;
    let mut worker = b.worker(ehr.addr);

    assert_eq!(worker.run_once().await, Round { sent: 0, failed: 1 });
    let row = &b.undelivered().await[0];
    assert_eq!((row.status.code(), row.attempts), ("pending", 1));
    let error = row.last_error.clone().unwrap();
    assert!(error.contains("AE") && error.contains("patient not found"), "{error}");
    assert_eq!(row.next_attempt_at, b.lab.now_at() + SignedDuration::from_secs(1), "1 s backoff");

    assert_eq!(worker.run_once().await, Round::default(), "not due before the backoff");
    b.clock.advance(SignedDuration::from_secs(1));
    assert_eq!(worker.run_once().await, Round { sent: 1, failed: 0 });

    assert!(b.undelivered().await.is_empty());
    assert_eq!(ehr.received().len(), 2, "sent twice, the same message");
    assert_eq!(msh10(&ehr.received()[0]), msh10(&ehr.received()[1]));
    assert_eq!(ehr.connections.load(Ordering::SeqCst), 1, "one connection, reused");
    let log = b.sent_log().await;
    assert_eq!(log.len(), 1, "logged once, when sent");
    assert!(log[0].detail.contains("attempt 2"), "{}", log[0].detail);
}

#[tokio::test]
async fn a_specimens_messages_go_in_order_even_when_the_first_must_be_retried() {
    let b = bench().await;
    let ehr = fake_ehr([Some(AckCode::ApplicationReject)]).await;
    b.potassium("4.1").await;
    b.release(TestStatus::Preliminary).await;
    b.release(TestStatus::Final).await;
    let queued = b.undelivered().await;
    assert_eq!(queued.len(), 2);
    let mut worker = b.worker(ehr.addr);

    assert_eq!(worker.run_once().await, Round { sent: 0, failed: 1 });
    assert_eq!(ehr.received().len(), 1, "the final waits for the preliminary");
    b.clock.advance(SignedDuration::from_secs(1));
    assert_eq!(worker.run_once().await, Round { sent: 2, failed: 0 });

    let order: Vec<String> = ehr.received().iter().map(|m| msh10(m)).collect();
    assert_eq!(
        order,
        [queued[0].control_id.clone(), queued[0].control_id.clone(), queued[1].control_id.clone()],
        "preliminary (refused, then accepted), then final"
    );
}

#[tokio::test]
async fn no_answer_in_time_is_a_failed_attempt() {
    let b = bench().await;
    let ehr = fake_ehr([None]).await;
    b.potassium("4.2").await;
    b.release(TestStatus::Final).await;
    let mut worker = OutboxWorker::new(
        b.lab.clone(),
        ehr.addr,
        OutboxSettings { ack_timeout: Duration::from_millis(200), ..settings() },
    );

    assert_eq!(worker.run_once().await, Round { sent: 0, failed: 1 });
    let error = b.undelivered().await[0].last_error.clone().unwrap();
    assert!(error.contains("no acknowledgement within 200ms"), "{error}");

    b.clock.advance(SignedDuration::from_secs(1));
    assert_eq!(worker.run_once().await, Round { sent: 1, failed: 0 }, "answered the second time");
    assert_eq!(ehr.connections.load(Ordering::SeqCst), 2, "a new connection after the timeout");
}

#[tokio::test]
async fn an_unreachable_ehr_backs_off_and_gives_up_after_fifty_attempts() {
    let b = bench().await;
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    b.potassium("4.2").await;
    b.release(TestStatus::Final).await;
    let mut worker = b.worker(closed);

    assert_eq!(worker.run_once().await, Round { sent: 0, failed: 1 });
    let row = &b.undelivered().await[0];
    assert!(row.last_error.as_deref().unwrap().contains("cannot connect"), "{row:?}");
    let mut waits = vec![row.next_attempt_at.as_micros() - b.lab.now_at().as_micros()];
    for _ in 0..60 {
        b.clock.advance(SignedDuration::from_mins(5));
        worker.run_once().await;
        let row = &b.undelivered().await[0];
        if row.status == cuvette_app::records::OutboxStatus::Failed {
            break;
        }
        waits.push(row.next_attempt_at.as_micros() - b.lab.now_at().as_micros());
    }
    let row = &b.undelivered().await[0];
    assert_eq!((row.status.code(), row.attempts), ("failed", 50), "given up");
    let secs: Vec<i64> = waits.iter().take(10).map(|w| w / 1_000_000).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300], "doubling, capped at 5 min");

    // Staff retry it from the Interfaces page once the EHR is back.
    let ehr = fake_ehr([]).await;
    b.lab.retry_outbox(&b.technologist, row.id).await.unwrap();
    let mut worker = b.worker(ehr.addr);
    assert_eq!(worker.run_once().await, Round { sent: 1, failed: 0 });
    assert!(b.undelivered().await.is_empty());
}

#[tokio::test]
async fn the_worker_task_sends_on_its_own() {
    let b = bench().await;
    let ehr = fake_ehr([]).await;
    let task = tokio::spawn(run(b.lab.clone(), ehr.addr, settings()));
    b.potassium("4.2").await;
    b.release(TestStatus::Final).await;

    let mut waited = Duration::ZERO;
    while !b.undelivered().await.is_empty() {
        assert!(waited < Duration::from_secs(10), "not delivered in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    task.abort();
    assert_eq!(ehr.received().len(), 1);
    assert_eq!(b.sent_log().await.len(), 1);
}
