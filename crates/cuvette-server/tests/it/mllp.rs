//! The MLLP listener over real TCP: a test plays the sender and reads what comes back on its
//! connection, frame by frame, in the acknowledgement mode its message asked for.

use std::time::Duration;

use cuvette_app::records::MessageFilter;
use cuvette_app::{Actor, IdentityCheck, PlaceOrder, RegisterPatient};
use cuvette_domain::Role as Staff;
use cuvette_hl7::Message;
use cuvette_hl7::mllp::{MllpDeframer, frame};
use cuvette_server::interfaces::mllp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::support::app;

/// The NIST LRI CBC result as NIST sends it (v2.5.1, MSH-15 `AL`, MSH-16 `NE`).
const NIST_CBC: &[u8] = include_bytes!("data/hl7v251-oru-r01_fhir-converter_nist-lri-cbc-lf.hl7");

/// How long any one read may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

/// The NIST CBC with control id (MSH-10) `control_id` and MSH-15/16 `modes`.
fn nist_cbc(control_id: &str, modes: &str) -> Vec<u8> {
    String::from_utf8(NIST_CBC.to_vec())
        .unwrap()
        .replace(
            "|NIST-LRI-NG-002.00|T|2.5.1|||AL|NE|",
            &format!("|{control_id}|T|2.5.1|||{modes}|"),
        )
        .into_bytes()
}

/// A sender connected to a fresh lab's MLLP listener; the NIST lab is not on file.
struct Sender {
    stream: TcpStream,
    deframer: MllpDeframer,
    addr: std::net::SocketAddr,
    _server: tokio::task::JoinHandle<()>,
    _app: crate::support::App,
}

impl Sender {
    async fn connect() -> Sender {
        let app = app().await;
        let (listener, addr) = mllp::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let server = tokio::spawn(mllp::serve(app.lab.clone(), listener));
        let stream = TcpStream::connect(addr).await.unwrap();
        Sender { stream, deframer: MllpDeframer::new(), addr, _server: server, _app: app }
    }

    async fn send(&mut self, message: &[u8]) {
        self.stream.write_all(&frame(message)).await.unwrap();
    }

    /// The next frame from the listener, as MSA-1 and MSA-2.
    async fn next(&mut self) -> (String, String) {
        let reply = self.next_message().await;
        let message = Message::parse(&reply).unwrap();
        let field = |path| message.get(path).unwrap().text().into_owned();
        (field("MSA-1"), field("MSA-2"))
    }

    /// The next frame from the listener, whole.
    async fn next_message(&mut self) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(next) = self.deframer.next_frame() {
                return next.unwrap();
            }
            let n = timeout(PATIENCE, self.stream.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "the listener closed the connection");
            self.deframer.push(&buf[..n]);
        }
    }
}

#[tokio::test]
async fn an_enhanced_mode_sender_gets_the_commit_accept_then_the_application_error() {
    let mut sender = Sender::connect().await;
    sender.send(&nist_cbc("NIST-1", "AL|AL")).await;
    assert_eq!(sender.next().await, ("CA".into(), "NIST-1".into()), "stored");
    assert_eq!(
        sender.next().await,
        ("AE".into(), "NIST-1".into()),
        "not processed: unknown sender"
    );
}

#[tokio::test]
async fn acknowledgements_not_asked_for_are_not_sent() {
    let mut sender = Sender::connect().await;
    // NE|SU for a message that will be quarantined: nothing comes back for it. The next
    // message (original mode) is then answered first, with its own control id.
    sender.send(&nist_cbc("NIST-2", "NE|SU")).await;
    sender.send(&nist_cbc("NIST-3", "|")).await;
    assert_eq!(sender.next().await, ("AE".into(), "NIST-3".into()));
    // As NIST sends it, AL|NE: the commit accept only.
    sender.send(&nist_cbc("NIST-4", "AL|NE")).await;
    sender.send(&nist_cbc("NIST-5", "|")).await;
    assert_eq!(sender.next().await, ("CA".into(), "NIST-4".into()));
    assert_eq!(sender.next().await, ("AE".into(), "NIST-5".into()));
}

#[tokio::test]
async fn a_frame_cut_off_by_the_sender_closing_is_logged_as_aborted_and_the_resend_is_taken() {
    let mut sender = Sender::connect().await;
    let message = nist_cbc("NIST-6", "|");
    // The sender's link drops after the OBR: the frame never ends.
    let cut = message.windows(4).position(|w| w == b"OBX|").unwrap();
    sender.stream.write_all(&[0x0B]).await.unwrap();
    sender.stream.write_all(&message[..cut]).await.unwrap();
    sender.stream.shutdown().await.unwrap();
    let lab = sender._app.lab.clone();
    let inbound = MessageFilter {
        direction: Some(cuvette_app::records::Direction::In),
        ..Default::default()
    };
    let mut logged = Vec::new();
    for _ in 0..200 {
        logged = lab.message_log(&Actor::system(), &inbound).await.unwrap();
        if !logged.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(logged.len(), 1, "{logged:#?}");
    let aborted = &logged[0];
    assert_eq!(
        (aborted.protocol.code(), aborted.outcome.code(), aborted.message_type.as_str()),
        ("hl7", "aborted", "ORU^R01")
    );
    assert_eq!(aborted.sender, "NIST Test Lab APP");
    assert_eq!(aborted.raw, &message[..cut]);
    assert_eq!(
        aborted.detail,
        format!(
            "frame cut off after {cut} bytes (the sender closed the connection), control id \
             NIST-6: nothing in it was stored and nothing acknowledged; the sender sends the \
             message again"
        )
    );
    assert_eq!((aborted.ack.as_ref(), aborted.control_id.as_ref()), (None, None));
    assert_eq!(aborted.quarantine, None);

    // The sender reconnects and sends the message whole: it is processed, not taken for a
    // retransmission of the aborted one (here quarantined: the NIST lab is not on file).
    let addr = sender.addr;
    let mut again = TcpStream::connect(addr).await.unwrap();
    again.write_all(&frame(&message)).await.unwrap();
    let mut deframer = MllpDeframer::new();
    let mut buf = [0u8; 4096];
    let reply = loop {
        if let Some(next) = deframer.next_frame() {
            break next.unwrap();
        }
        let n = timeout(PATIENCE, again.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0);
        deframer.push(&buf[..n]);
    };
    let reply = Message::parse(&reply).unwrap();
    assert_eq!(reply.get("MSA-2").unwrap().text(), "NIST-6");
    let logged = lab.message_log(&Actor::system(), &inbound).await.unwrap();
    assert_eq!(
        logged.iter().map(|m| m.outcome.code()).collect::<Vec<_>>(),
        ["quarantined", "aborted"],
        "newest first"
    );
}

#[tokio::test]
async fn latin1_bytes_in_a_message_declared_utf8_are_answered_ae_naming_pid_5() {
    let mut sender = Sender::connect().await;
    // A European LIMS declares UTF-8 (MSH-18) but writes Renée Lévesque's name in Latin-1.
    let mut message = b"MSH|^~\\&|LIMS-EU|LABO|CUVETTE|LAB|20240815141500||ORU^R01^ORU_R01|EU-1201|P|2.5.1||||||UNICODE UTF-8\r\
PID|1||FR-33221^^^HOSP^MR||L"
        .to_vec();
    message.extend_from_slice(b"\xE9vesque^Ren\xE9e||19880707|F\r");
    message.extend_from_slice(
        b"OBR|1||F240815-09|GLU^Glucose^L\rOBX|1|NM|GLU^Glucose^L||5.4|mmol/L|3.9-5.8|N|||F\r",
    );
    sender.send(&message).await;
    let mut buf = [0u8; 4096];
    let ack = loop {
        if let Some(next) = sender.deframer.next_frame() {
            break String::from_utf8(next.unwrap()).unwrap();
        }
        let n = timeout(PATIENCE, sender.stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the listener closed the connection");
        sender.deframer.push(&buf[..n]);
    };
    assert!(ack.contains("\rMSA|AE|EU-1201"), "{ack}");
    assert!(ack.contains("\rERR||PID^1^5|102^"), "{ack}");
    let lab = sender._app.lab.clone();
    let logged = lab.message_log(&Actor::system(), &MessageFilter::default()).await.unwrap();
    assert_eq!(
        (logged[0].outcome.code(), logged[0].quarantine.map(|q| q.code())),
        ("quarantined", Some("open"))
    );
    assert!(
        logged[0].detail.starts_with("PID-5: byte 0xE9 (at byte 129 of the message)"),
        "{}",
        logged[0].detail
    );
    assert_eq!(logged[0].raw, message, "kept byte for byte, not as �");
}

/// An analyzer's host query as IHE LAW (LAB-27) shapes it: QPD-1 the query name, QPD-2 the
/// query tag, QPD-3 the specimen id read off the tube.
fn qbp(sender: &str, control_id: &str, specimen: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|{sender}|CHEMLAB|CUVETTE|LAB|20261124081000||QBP^Q11^QBP_Q11|{control_id}|P|2.5.1|||NE|AL||UNICODE UTF-8|||LAB-27^IHE\r\
         QPD|WOS^Work Order Step^IHE_LABTF|T{control_id}|{specimen}\r\
         RCP|I||R\r"
    )
    .into_bytes()
}

fn path(message: &[u8], path: &str) -> String {
    let m = Message::parse(message).expect("an HL7 message");
    m.get(path).map(|v| v.text().into_owned()).unwrap_or_default()
}

#[tokio::test]
async fn an_analyzer_asking_for_a_received_tube_gets_rsp_k11_with_its_pending_tests_by_its_codes() {
    let mut sender = Sender::connect().await;
    let app = &sender._app;
    let lab = app.lab.clone();
    let supervisor = app.sign_in(Staff::Supervisor, "law").await.actor;
    let id = lab.add_instrument(&supervisor, "Chemistry LAW", "hl7", "CHEMLAW").await.unwrap();
    lab.map_test_code(&supervisor, id, "1010", "GLU", "").await.unwrap();
    lab.map_test_code(&supervisor, id, "1020", "K", "").await.unwrap();
    let phlebotomist = app.sign_in(Staff::Phlebotomist, "law").await.actor;
    let patient = lab
        .register_patient(
            &phlebotomist,
            &RegisterPatient {
                mrn: "A5200".into(),
                family_name: "Mbeki".into(),
                given_name: "Thandi".into(),
                birth_date: "1981-09-14".into(),
                sex: "F".into(),
            },
        )
        .await
        .unwrap();
    let order = |tests: &[&str]| PlaceOrder {
        patient_id: patient.id,
        provider: "Dr. A. Okafor".into(),
        priority: "routine".into(),
        tests: tests.iter().map(|t| (*t).to_owned()).collect(),
        clinical_note: String::new(),
        placer_number: None,
    };
    let received = lab.place_order(&phlebotomist, &order(&["GLU", "K"])).await.unwrap();
    let accession = received.specimens[0].accession.clone();
    let drawn = lab.place_order(&phlebotomist, &order(&["NA"])).await.unwrap();
    let not_received = drawn.specimens[0].accession.clone();
    lab.collect(&phlebotomist, &accession).await.unwrap();
    let assistant = app.sign_in(Staff::LabAssistant, "law").await.actor;
    let check = IdentityCheck {
        mrn: Some(patient.mrn.clone()),
        birth_date: Some(patient.birth_date.clone()),
        family_name: None,
    };
    lab.receive(&assistant, &accession, &check).await.unwrap();

    sender.send(&qbp("CHEMLAW", "Q0001", &accession)).await;
    let rsp = sender.next_message().await;
    assert_eq!(path(&rsp, "MSH-9"), "RSP^K11^RSP_K11");
    assert_eq!(path(&rsp, "MSH-5"), "CHEMLAW", "answered to the analyzer");
    assert_eq!((path(&rsp, "MSA-1"), path(&rsp, "MSA-2")), ("AA".into(), "Q0001".into()));
    assert_eq!(
        (path(&rsp, "QAK-1"), path(&rsp, "QAK-2"), path(&rsp, "QAK-3-1")),
        ("TQ0001".into(), "OK".into(), "WOS".into())
    );
    assert_eq!(path(&rsp, "QPD-3"), accession, "the query echoed");
    assert_eq!(path(&rsp, "RDF-2"), "@OBR.4^CWE^250", "one column: the test");
    assert_eq!(
        (path(&rsp, "RDT(1)-1"), path(&rsp, "RDT(2)-1")),
        ("1010".into(), "1020".into()),
        "glucose and potassium by the analyzer's codes"
    );
    let answered = rsp;

    // A tube still on the ward, and a barcode Cuvette never printed: no data found.
    for (control_id, asked) in [("Q0002", not_received.as_str()), ("Q0003", "99-9999999-9")] {
        sender.send(&qbp("CHEMLAW", control_id, asked)).await;
        let rsp = sender.next_message().await;
        assert_eq!(
            (path(&rsp, "MSA-1"), path(&rsp, "MSA-2"), path(&rsp, "QAK-2")),
            ("AA".into(), control_id.into(), "NF".into()),
            "{asked}"
        );
        assert!(!String::from_utf8_lossy(&rsp).contains("\rRDT|"), "no work order");
    }

    // An analyzer not on file is told so, on MSH-3.
    sender.send(&qbp("CHEMX", "Q0004", &accession)).await;
    let rsp = sender.next_message().await;
    assert_eq!((path(&rsp, "MSA-1"), path(&rsp, "QAK-2")), ("AE".into(), "AE".into()));
    assert_eq!((path(&rsp, "ERR-2"), path(&rsp, "ERR-3-1")), ("MSH^1^3".into(), "103".into()));

    let logged = lab.message_log(&Actor::system(), &MessageFilter::default()).await.unwrap();
    let queries: Vec<(&str, &str)> =
        logged.iter().map(|m| (m.message_type.as_str(), m.outcome.code())).collect();
    assert_eq!(queries, [("QBP^Q11", "query"); 4]);
    assert_eq!(
        logged[3].detail,
        format!("asks for {accession}; answered with {accession}: 1010, 1020")
    );
    assert_eq!(
        logged[3].ack.as_deref(),
        Some(answered.as_slice()),
        "the answer kept with the query"
    );
}
