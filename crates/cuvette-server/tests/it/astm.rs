//! The ASTM listener over real TCP: a test plays the instrument with its own `Link` (role
//! Instrument), driven by hand so it can look at the lab between the LIS's replies.

use std::net::SocketAddr;
use std::time::Duration;

use cuvette_app::records::{Direction, MessageFilter, MessageRow, ResultRow};
use cuvette_app::{Actor, IdentityCheck, PlaceOrder, RegisterPatient, Release};
use cuvette_astm::{Config, Event, Link, Message, Role};
use cuvette_domain::Role as Staff;
use cuvette_domain::workflow::{ReleaseStatus, TestStatus};
use cuvette_server::interfaces::astm;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use crate::support::{App, app};

const STX: u8 = 0x02;
const EOT: u8 = 0x04;
const ACK: u8 = 0x06;
const NAK: u8 = 0x15;

/// How long any one read may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

/// A lab with an ASTM chemistry analyzer ("CHEM2", GLUC → GLU, POT → K), a received specimen
/// with GLU and K ordered, and the ASTM listener on a free port.
struct Bench {
    app: App,
    addr: SocketAddr,
    accession: String,
    server: JoinHandle<()>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn bench() -> Bench {
    let app = app().await;
    let lab = &app.lab;
    let supervisor = app.sign_in(Staff::Supervisor, "astm").await.actor;
    let id = lab.add_instrument(&supervisor, "Chemistry 2", "astm", "CHEM2").await.unwrap();
    lab.map_test_code(&supervisor, id, "GLUC", "GLU", "").await.unwrap();
    lab.map_test_code(&supervisor, id, "POT", "K", "").await.unwrap();

    let phlebotomist = app.sign_in(Staff::Phlebotomist, "astm").await.actor;
    let patient = lab
        .register_patient(
            &phlebotomist,
            &RegisterPatient {
                mrn: "A5100".into(),
                family_name: "Lindqvist".into(),
                given_name: "Sam".into(),
                birth_date: "1970-03-01".into(),
                sex: "F".into(),
            },
        )
        .await
        .unwrap();
    let placed = lab
        .place_order(
            &phlebotomist,
            &PlaceOrder {
                patient_id: patient.id,
                provider: "Dr. A. Okafor".into(),
                priority: "routine".into(),
                tests: vec!["GLU".into(), "K".into()],
                clinical_note: String::new(),
                placer_number: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(placed.specimens.len(), 1, "GLU and K share a tube");
    let accession = placed.specimens[0].accession.clone();
    lab.collect(&phlebotomist, &accession).await.unwrap();
    let assistant = app.sign_in(Staff::LabAssistant, "astm").await.actor;
    let check = IdentityCheck {
        mrn: Some(patient.mrn.clone()),
        birth_date: Some(patient.birth_date.clone()),
        family_name: None,
    };
    lab.receive(&assistant, &accession, &check).await.unwrap();

    let (listener, addr) = astm::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let server = tokio::spawn(astm::serve(app.lab.clone(), listener));
    Bench { app, addr, accession, server }
}

impl Bench {
    /// Inbound messages in the log, oldest first.
    async fn inbound(&self) -> Vec<MessageRow> {
        self.log(Direction::In).await
    }

    async fn log(&self, direction: Direction) -> Vec<MessageRow> {
        let filter = MessageFilter { direction: Some(direction), ..Default::default() };
        let mut rows = self.app.lab.message_log(&Actor::system(), &filter).await.unwrap();
        rows.reverse();
        rows
    }

    /// Every result version of the specimen's test `code`.
    async fn results(&self, code: &str) -> Vec<ResultRow> {
        let view = self.app.lab.specimen_view(&Actor::system(), &self.accession).await.unwrap();
        view.tests.into_iter().find(|t| t.item.test.test_code == code).unwrap().versions
    }

    fn results_message(&self) -> Vec<Vec<u8>> {
        records(&format!(
            "H|\\^&|||CHEM2^1.0|||||||P|LIS2-A2|20261124081500\r\
             P|1\r\
             O|1|{acc}||^^^GLUC\\^^^POT|R\r\
             R|1|^^^GLUC|95|mg/dL||N||F\r\
             R|2|^^^POT|4.1|mmol/L||N||F\r\
             L|1|N",
            acc = self.accession
        ))
    }
}

fn records(text: &str) -> Vec<Vec<u8>> {
    text.split('\r').map(|r| r.as_bytes().to_vec()).collect()
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Whether `bytes` is the frame that starts the terminator record.
fn is_final_frame(bytes: &[u8]) -> bool {
    bytes.len() > 2 && bytes[0] == STX && bytes[2] == b'L'
}

/// Flips a checksum digit, so the receiver rejects the frame.
fn corrupt(frame: &[u8]) -> Vec<u8> {
    let mut bad = frame.to_vec();
    let at = bad.len() - 3;
    bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
    bad
}

/// The test's instrument: a link over a TCP connection to the listener.
struct Instrument {
    link: Link,
    stream: TcpStream,
    events: Vec<Event>,
}

impl Instrument {
    async fn connect(addr: SocketAddr) -> Instrument {
        let stream = TcpStream::connect(addr).await.unwrap();
        Instrument { link: Link::new(Config::new(Role::Instrument)), stream, events: Vec::new() }
    }

    async fn read_byte(&mut self) -> u8 {
        timeout(PATIENCE, self.stream.read_u8())
            .await
            .expect("the LIS answers in time")
            .expect("the connection stays open")
    }

    /// Writes the link's transmissions (through `mangle`) and reads the reply to each ENQ or
    /// frame, handing it to the link — until the reply to the terminator's frame arrives,
    /// which is returned before the link sees it, so the test can look at the lab first.
    /// Returns None when the link has nothing more to send.
    async fn until_final_reply(
        &mut self,
        mut mangle: impl FnMut(&[u8]) -> Vec<u8>,
    ) -> Option<(Vec<u8>, u8)> {
        while let Some(sent) = self.link.poll_transmit() {
            self.stream.write_all(&mangle(&sent)).await.unwrap();
            if sent == [EOT] {
                continue;
            }
            let reply = self.read_byte().await;
            if is_final_frame(&sent) {
                return Some((sent, reply));
            }
            self.link.handle_input(&[reply], now());
        }
        self.drain_events();
        None
    }

    /// Hands a reply held back by [`Instrument::until_final_reply`] to the link.
    fn feed(&mut self, reply: u8) {
        self.link.handle_input(&[reply], now());
    }

    /// Sends every frame before the terminator record's and has each acknowledged: the
    /// message is then one frame short of complete.
    async fn until_terminator(&mut self) {
        while let Some(sent) = self.link.poll_transmit() {
            if is_final_frame(&sent) {
                return;
            }
            self.stream.write_all(&sent).await.unwrap();
            let reply = self.read_byte().await;
            assert_eq!(reply, ACK, "every frame before the terminator is acknowledged");
            self.link.handle_input(&[reply], now());
        }
        panic!("the message has no terminator record");
    }

    /// Sends what is left (the EOT) and drains the events.
    async fn finish(&mut self) {
        assert!(self.until_final_reply(|b| b.to_vec()).await.is_none());
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.link.poll_event() {
            self.events.push(event);
        }
    }

    /// Answers the LIS's transfer until a whole message has arrived.
    async fn receive(&mut self) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 1024];
        loop {
            while let Some(bytes) = self.link.poll_transmit() {
                self.stream.write_all(&bytes).await.unwrap();
            }
            self.drain_events();
            if let Some(at) =
                self.events.iter().position(|e| matches!(e, Event::MessageReceived(_)))
            {
                let Event::MessageReceived(records) = self.events.remove(at) else {
                    unreachable!()
                };
                return records;
            }
            let n = timeout(PATIENCE, self.stream.read(&mut buf))
                .await
                .expect("the LIS sends in time")
                .unwrap();
            assert!(n > 0, "the LIS closed the connection");
            self.link.handle_input(&buf[..n], now());
        }
    }
}

/// Polls `check` until it holds (the LIS logs some things after the instrument's last word).
async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the condition never held");
}

#[tokio::test]
async fn results_are_stored_before_the_last_frame_is_acknowledged() {
    let bench = bench().await;
    let mut instrument = Instrument::connect(bench.addr).await;
    instrument.link.send(bench.results_message(), now()).unwrap();

    let (frame, reply) = instrument.until_final_reply(|b| b.to_vec()).await.unwrap();
    assert!(frame.starts_with(b"\x026L|1|N"), "{frame:?}");
    assert_eq!(reply, ACK);
    // The ACK has arrived: by then the message and its results are committed.
    let log = bench.inbound().await;
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!((log[0].protocol.code(), log[0].outcome.code()), ("astm", "accepted"));
    assert_eq!(log[0].sender, "CHEM2");
    assert_eq!(log[0].channel, format!("astm:{}", bench.addr.port()));
    assert_eq!(log[0].results, 2);
    assert!(log[0].raw.ends_with(b"L|1|N\r"));
    let glucose = bench.results("GLU").await;
    assert_eq!(glucose.len(), 1);
    assert_eq!(glucose[0].value_text, "95");
    assert_eq!(glucose[0].entered_by, "instrument:Chemistry 2");
    assert_eq!(bench.results("K").await[0].value_text, "4.1");

    instrument.feed(reply);
    instrument.finish().await;
    assert!(matches!(instrument.events[..], [Event::MessageSent(_)]), "{:?}", instrument.events);
}

#[tokio::test]
async fn a_bad_checksum_is_refused_and_the_retransmission_stored_once() {
    let bench = bench().await;
    let mut instrument = Instrument::connect(bench.addr).await;
    instrument.link.send(bench.results_message(), now()).unwrap();

    // The terminator's frame arrives damaged: NAK, and nothing is stored.
    let (_, reply) = instrument
        .until_final_reply(|b| if is_final_frame(b) { corrupt(b) } else { b.to_vec() })
        .await
        .unwrap();
    assert_eq!(reply, NAK);
    assert!(bench.inbound().await.is_empty());
    assert!(bench.results("GLU").await.is_empty());

    // The instrument sends the same frame again (E1381-02 §6.5.1.2): accepted, stored.
    instrument.feed(reply);
    let (_, reply) = instrument.until_final_reply(|b| b.to_vec()).await.unwrap();
    assert_eq!(reply, ACK);
    instrument.feed(reply);
    instrument.finish().await;
    assert!(matches!(instrument.events[..], [Event::MessageSent(_)]));

    // The whole message once more (the instrument missed the ACK and starts over): a
    // retransmission, acknowledged and not stored again.
    instrument.link.send(bench.results_message(), now()).unwrap();
    let (_, reply) = instrument.until_final_reply(|b| b.to_vec()).await.unwrap();
    assert_eq!(reply, ACK);
    instrument.feed(reply);
    instrument.finish().await;

    let log = bench.inbound().await;
    assert_eq!(log.len(), 1, "stored once: {log:#?}");
    assert_eq!(bench.results("GLU").await.len(), 1);
    assert_eq!(bench.results("K").await.len(), 1);
}

#[tokio::test]
async fn a_message_that_cannot_be_placed_is_quarantined_and_still_acknowledged() {
    // Quarantined is committed too: the instrument must not resend it forever.
    let bench = bench().await;
    let mut instrument = Instrument::connect(bench.addr).await;
    let message = records(
        "H|\\^&|||CHEM2^1.0|||||||P|LIS2-A2|20261124081600\r\
         P|1\r\
         O|1|26-0000999-3||^^^GLUC|R\r\
         R|1|^^^GLUC|95|mg/dL||N||F\r\
         L|1|N",
    );
    instrument.link.send(message, now()).unwrap();
    let (_, reply) = instrument.until_final_reply(|b| b.to_vec()).await.unwrap();
    assert_eq!(reply, ACK);
    let log = bench.inbound().await;
    assert_eq!(log[0].outcome.code(), "quarantined");
    assert_eq!(log[0].quarantine.map(|q| q.code()), Some("open"));
    assert!(log[0].detail.contains("no specimen has accession number 26-0000999-3"));
    instrument.feed(reply);
    instrument.finish().await;
}

#[tokio::test]
async fn a_glucose_in_mmol_per_litre_over_the_listener_is_stored_converted_with_what_was_sent() {
    let bench = bench().await;
    let session = bench.app.sign_in(Staff::Supervisor, "units").await;
    let supervisor = session.actor.clone();
    let lab = &bench.app.lab;
    let chem2 = lab.instruments(&supervisor).await.unwrap()[0].0.id;
    // The analyzer was set up in SI units: its glucose code is mapped again in mmol/L.
    lab.map_test_code(&supervisor, chem2, "GLUC", "GLU", "mmol/l").await.unwrap();
    let mut instrument = Instrument::connect(bench.addr).await;
    instrument
        .link
        .send(
            records(&format!(
                "H|\\^&|||CHEM2^1.0|||||||P|LIS2-A2|20261124081500\r\
                 P|1\r\
                 O|1|{acc}||^^^GLUC\\^^^POT|R\r\
                 R|1|^^^GLUC|5.2|mmol/l||N||F\r\
                 R|2|^^^POT|4.1|mmol/l||N||F\r\
                 L|1|N",
                acc = bench.accession
            )),
            now(),
        )
        .unwrap();

    let (_, reply) = instrument.until_final_reply(|b| b.to_vec()).await.unwrap();
    assert_eq!(reply, ACK);
    let glucose = &bench.results("GLU").await[0];
    assert_eq!(
        (
            glucose.value_text.as_str(),
            glucose.unit.as_str(),
            glucose.flags.codes().as_str(),
            glucose.sent_value.as_deref(),
            glucose.sent_unit.as_deref()
        ),
        ("94", "mg/dL", "", Some("5.2"), Some("mmol/L"))
    );
    let potassium = &bench.results("K").await[0];
    assert_eq!(
        (potassium.value_text.as_str(), potassium.unit.as_str(), potassium.sent_value.as_deref()),
        ("4.1", "mmol/L", None),
        "the catalog's own unit, in another spelling: stored as sent"
    );
    let page = bench.app.get(&session, &format!("/specimens/{}", bench.accession)).await;
    assert!(page.body.contains("sent as 5.2 mmol/L"), "{}", page.body);
    instrument.feed(reply);
    instrument.finish().await;
}

#[tokio::test]
async fn a_host_query_is_answered_with_the_instruments_codes() {
    let bench = bench().await;
    let mut instrument = Instrument::connect(bench.addr).await;
    let query = records(&format!(
        "H|\\^&|||CHEM2^1.0|||||||P|LIS2-A2|20261124081700\r\
         Q|1|^{acc}\\^NOSUCH1||^^^ALL||||||||O\r\
         L|1|N",
        acc = bench.accession
    ));
    instrument.link.send(query, now()).unwrap();
    let (_, reply) = instrument.until_final_reply(|b| b.to_vec()).await.unwrap();
    assert_eq!(reply, ACK);
    // The query was logged before it was acknowledged, and not quarantined.
    let log = bench.inbound().await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].outcome.code(), "query");
    assert_eq!(log[0].message_type, "ASTM query");
    assert_eq!(log[0].quarantine, None);
    assert_eq!(log[0].accession.as_deref(), Some(bench.accession.as_str()));
    instrument.feed(reply);
    instrument.finish().await;

    // The LIS bids for the line and sends the answer (LIS02-A2 §8.4.26: O-26 = Q).
    let answer = instrument.receive().await;
    let answer = Message::from_records(&answer).unwrap();
    assert_eq!(answer.header().sender().text(), "CUVETTE");
    let orders: Vec<_> = answer.orders().collect();
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[0].specimen_id().text(), bench.accession);
    let mut codes: Vec<String> = orders[0].test_ids().map(|t| t.code().text()).collect();
    codes.sort();
    assert_eq!(codes, ["GLUC", "POT"]);
    assert_eq!(orders[0].report_type().text(), "Q");
    assert_eq!(orders[1].specimen_id().text(), "NOSUCH1");
    assert_eq!(orders[1].test_ids().count(), 0);
    assert_eq!(orders[1].report_type().text(), "Y", "no order for an unknown specimen");

    // Once the instrument has taken it, the answer is in the log as sent.
    eventually(|| async { bench.log(Direction::Out).await.len() == 1 }).await;
    let out = bench.log(Direction::Out).await;
    assert_eq!((out[0].outcome.code(), out[0].message_type.as_str()), ("sent", "ASTM answer"));
    assert!(out[0].detail.contains("GLUC") && out[0].detail.contains("NOSUCH1: no order"));
    assert!(bench.results("GLU").await.is_empty(), "a query stores nothing");
}

#[tokio::test]
async fn a_specimen_whose_tests_are_done_gets_no_order() {
    let bench = bench().await;
    // Results in first; then the instrument asks again: nothing is waiting any more.
    let mut instrument = Instrument::connect(bench.addr).await;
    instrument.link.send(bench.results_message(), now()).unwrap();
    let (_, reply) = instrument.until_final_reply(|b| b.to_vec()).await.unwrap();
    instrument.feed(reply);
    instrument.finish().await;

    let query = records(&format!(
        "H|\\^&|||CHEM2\rQ|1|^{acc}||^^^ALL||||||||O\rL|1|N",
        acc = bench.accession
    ));
    instrument.link.send(query, now()).unwrap();
    let (_, reply) = instrument.until_final_reply(|b| b.to_vec()).await.unwrap();
    instrument.feed(reply);
    instrument.finish().await;
    let answer = Message::from_records(instrument.receive().await).unwrap();
    let order = answer.orders().next().unwrap();
    assert_eq!(order.specimen_id().text(), bench.accession);
    assert_eq!(order.report_type().text(), "Y");
}

#[tokio::test]
async fn send_records_delivers_a_message_to_an_astm_receiver() {
    // A receiver as the python `astm` package's server would be: it only answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut link = Link::new(Config::new(Role::Instrument));
        let mut buf = [0u8; 1024];
        loop {
            while let Some(bytes) = link.poll_transmit() {
                stream.write_all(&bytes).await.unwrap();
            }
            if let Some(event) = link.poll_event() {
                return event;
            }
            let n = timeout(PATIENCE, stream.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "the sender closed before EOT");
            link.handle_input(&buf[..n], now());
        }
    });
    let message = cuvette_app::interop::astm::query_answer(&[(
        "26-0000012-3".to_owned(),
        vec!["GLUC".to_owned(), "POT".to_owned()],
    )]);
    timeout(PATIENCE, astm::send_records(addr, message.clone())).await.unwrap().unwrap();
    assert_eq!(receiver.await.unwrap(), Event::MessageReceived(message));
}

#[tokio::test]
async fn send_records_fails_when_nobody_answers() {
    // A receiver that accepts the connection and never replies to ENQ: the bid times out
    // (E1381-02 §6.5.2.1, 15 s) — too long for a test, so only the refused connection is
    // checked here.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = astm::send_records(addr, records("H|\\^&\rL|1|N")).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn a_transfer_cut_off_before_the_terminator_stores_nothing_and_the_resend_is_taken() {
    let bench = bench().await;
    let mut instrument = Instrument::connect(bench.addr).await;
    instrument.link.send(bench.results_message(), now()).unwrap();
    // Header, patient, order and both results arrive and are acknowledged frame by frame;
    // then the analyzer is switched off before its terminator record.
    instrument.until_terminator().await;
    drop(instrument);

    eventually(|| async { !bench.inbound().await.is_empty() }).await;
    let log = bench.inbound().await;
    assert_eq!(log.len(), 1, "{log:#?}");
    let aborted = &log[0];
    assert_eq!(
        (aborted.protocol.code(), aborted.outcome.code(), aborted.sender.as_str()),
        ("astm", "aborted", "CHEM2")
    );
    assert_eq!(
        aborted.detail,
        "transfer aborted before the terminator record (the connection closed) after 5 records: \
         nothing in it was stored; the instrument sends the message again — if it does not, run \
         the samples again"
    );
    assert_eq!(aborted.results, 0);
    assert_eq!(aborted.quarantine, None, "not for replay: the instrument resends it");
    assert_eq!(aborted.control_id, None, "the resend must not be taken for a retransmission");
    assert_eq!(aborted.accession.as_deref(), Some(bench.accession.as_str()));
    assert!(aborted.raw.ends_with(b"R|2|^^^POT|4.1|mmol/L||N||F\r"), "{:?}", aborted.raw);
    assert!(bench.results("GLU").await.is_empty(), "nothing posted from an incomplete message");
    assert!(bench.results("K").await.is_empty());

    // The analyzer comes back and sends the whole message: it is taken, once.
    let mut instrument = Instrument::connect(bench.addr).await;
    instrument.link.send(bench.results_message(), now()).unwrap();
    let (_, reply) = instrument.until_final_reply(|b| b.to_vec()).await.unwrap();
    assert_eq!(reply, ACK);
    instrument.feed(reply);
    instrument.finish().await;
    let log = bench.inbound().await;
    assert_eq!(log.iter().map(|m| m.outcome.code()).collect::<Vec<_>>(), ["aborted", "accepted"]);
    assert_eq!(bench.results("GLU").await.len(), 1);
    assert_eq!(bench.results("K").await[0].value_text, "4.1");
}

#[tokio::test]
async fn records_ended_by_eot_without_a_terminator_are_logged_as_aborted_and_not_posted() {
    let bench = bench().await;
    let mut instrument = Instrument::connect(bench.addr).await;
    let mut message = bench.results_message();
    assert_eq!(message.pop().as_deref(), Some(&b"L|1|N"[..]));
    instrument.link.send(message, now()).unwrap();
    instrument.finish().await;
    assert!(matches!(instrument.events[..], [Event::MessageSent(_)]), "{:?}", instrument.events);

    eventually(|| async { !bench.inbound().await.is_empty() }).await;
    let log = bench.inbound().await;
    assert_eq!(log[0].outcome.code(), "aborted");
    assert!(
        log[0].detail.starts_with(
            "transfer aborted before the terminator record (the instrument sent EOT without a \
             terminator record) after 5 records: nothing in it was stored"
        ),
        "{}",
        log[0].detail
    );
    assert!(bench.results("GLU").await.is_empty());
    assert!(bench.results("K").await.is_empty());
    let open = MessageFilter { open_quarantine: true, ..Default::default() };
    assert!(bench.app.lab.message_log(&Actor::system(), &open).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_instruments_correction_of_a_released_result_makes_the_report_say_corrected() {
    let bench = bench().await;
    let send = |time: &'static str, glucose: &'static str, status: &'static str| {
        let accession = bench.accession.clone();
        records(&format!(
            "H|\\^&|||CHEM2^1.0|||||||P|LIS2-A2|{time}\r\
             P|1\r\
             O|1|{accession}||^^^GLUC|R\r\
             R|1|^^^GLUC|{glucose}|mg/dL||N||{status}\r\
             L|1|N"
        ))
    };
    let technologist = bench.app.sign_in(Staff::Technologist, "release").await.actor;
    let mut instrument = Instrument::connect(bench.addr).await;
    for message in [send("20261124081500", "95", "F"), send("20261124083000", "88", "C")] {
        instrument.link.send(message, now()).unwrap();
        let (_, reply) = instrument.until_final_reply(|b| b.to_vec()).await.unwrap();
        assert_eq!(reply, ACK);
        instrument.feed(reply);
        instrument.finish().await;
        // A technologist releases what arrived: first the result, then its correction.
        let glucose = bench.results("GLU").await;
        let latest = glucose.last().unwrap();
        let view = bench
            .app
            .lab
            .specimen_view_of_test(&technologist, latest.ordered_test_id)
            .await
            .unwrap();
        let test = &view
            .tests
            .iter()
            .find(|t| t.item.test.id == latest.ordered_test_id)
            .unwrap()
            .item
            .test;
        let released = bench
            .app
            .lab
            .release(&technologist, &[(test.id, test.row_version)], TestStatus::Final)
            .await
            .unwrap();
        assert!(matches!(released[..], [Release::Released { .. }]), "{released:?}");
    }
    let glucose = bench.results("GLU").await;
    assert_eq!(
        glucose
            .iter()
            .map(|r| (r.value_text.as_str(), r.correction_reason.as_deref(), r.release_status))
            .collect::<Vec<_>>(),
        [
            ("95", None, Some(ReleaseStatus::Final)),
            ("88", Some("corrected by Chemistry 2 (R-9 C)"), Some(ReleaseStatus::Corrected))
        ]
    );
    let session = bench.app.sign_in(Staff::Technologist, "report").await;
    let patient_id =
        bench.app.lab.specimen_view(&session.actor, &bench.accession).await.unwrap().patient.id;
    let page = bench.app.get(&session, &format!("/patients/{patient_id}/report")).await;
    assert!(page.body.contains("CORRECTED REPORT"), "{}", page.body);
    assert!(page.body.contains("corrected by Chemistry 2 (R-9 C)"), "{}", page.body);
}
