//! Hostile peers cannot lock the analyzers out: a crowd of connections from addresses no
//! instrument lists — silent, dripping stray bytes, or a frame begun and never ended — takes
//! only the slots of unlisted addresses, and an analyzer at its listed address still has its
//! message acknowledged within a second, over MLLP and over ASTM. Every one of the crowd is
//! closed: at once when over a cap, else at its frame or idle deadline, which stray bytes do
//! not push back. Loopback only: 127.0.0.0/8 gives each peer an address of its own.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use cuvette_app::Actor;
use cuvette_app::records::{Direction, MessageFilter, MessageRow};
use cuvette_astm::Role;
use cuvette_domain::Role as Staff;
use cuvette_hl7::Message;
use cuvette_hl7::mllp::{MllpDeframer, frame};
use cuvette_server::interfaces::{ListenerLimits, astm, mllp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use crate::support::{App, app};

/// How many hostile connections the crowd opens.
const CROWD: usize = 1000;
/// Connections from each hostile address: 250 addresses, 127.0.0.2 and up.
const PER_HOSTILE_ADDRESS: usize = 4;
/// What an analyzer waits for its acknowledgement at most.
const ACK_WITHIN: Duration = Duration::from_secs(1);

/// Short deadlines, so that the crowd's slots are all freed within seconds.
fn limits() -> ListenerLimits {
    ListenerLimits {
        listed_connections: 4,
        unlisted_connections: 16,
        connections_per_address: PER_HOSTILE_ADDRESS,
        frame_timeout: Duration::from_secs(3),
        idle_timeout: Duration::from_secs(60),
        unlisted_idle_timeout: Duration::from_secs(4),
    }
}

/// The NIST LRI CBC result as NIST sends it (MSH-3 `NIST Test Lab APP`).
const NIST_CBC: &[u8] = include_bytes!("data/hl7v251-oru-r01_fhir-converter_nist-lri-cbc-lf.hl7");

/// A lab with an HL7 analyzer (the NIST sender) and an ASTM one (`CHEM2`), both restricted
/// to 127.0.0.1, the analyzers' address in these tests.
async fn lab_with_listed_analyzers() -> App {
    let app = app().await;
    let supervisor = app.sign_in(Staff::Supervisor, "hostile").await.actor;
    for (name, protocol, sender) in
        [("Haematology 1", "hl7", "NIST Test Lab APP"), ("Chemistry 2", "astm", "CHEM2")]
    {
        let id = app.lab.add_instrument(&supervisor, name, protocol, sender).await.unwrap();
        app.lab.set_allowed_peers(&supervisor, id, "127.0.0.1").await.unwrap();
    }
    app
}

fn hostile_address(i: usize) -> IpAddr {
    let n = 2 + i / PER_HOSTILE_ADDRESS;
    IpAddr::V4(Ipv4Addr::new(127, 0, (n / 250) as u8, (n % 250) as u8))
}

/// A connection to `to` from `from`.
async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// The crowd: the read halves to watch, the write halves held open, and the drippers.
struct Crowd {
    reads: Vec<OwnedReadHalf>,
    _writes: Vec<OwnedWriteHalf>,
    drippers: Vec<JoinHandle<()>>,
    opened: Instant,
}

impl Drop for Crowd {
    fn drop(&mut self) {
        for d in &self.drippers {
            d.abort();
        }
    }
}

/// Opens [`CROWD`] connections: a third silent, a third dripping `stray` a byte every 100 ms,
/// a third sending `half_frame` and nothing more.
async fn crowd(to: SocketAddr, stray: u8, half_frame: &'static [u8]) -> Crowd {
    let mut crowd = Crowd {
        reads: Vec::new(),
        _writes: Vec::new(),
        drippers: Vec::new(),
        opened: Instant::now(),
    };
    for i in 0..CROWD {
        let (read, mut write) = connect_from(hostile_address(i), to).await.into_split();
        crowd.reads.push(read);
        match i % 3 {
            0 => crowd._writes.push(write),
            1 => crowd.drippers.push(tokio::spawn(async move {
                while write.write_all(&[stray]).await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })),
            _ => {
                // Over a cap the server may have closed it already.
                let _ = write.write_all(half_frame).await;
                crowd._writes.push(write);
            }
        }
    }
    crowd.opened = Instant::now();
    crowd
}

/// Whether the server has closed the connection (end of file or an error), waiting at most
/// `within`; what it sent before is skipped.
async fn closed_within(read: &mut OwnedReadHalf, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, read.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

impl Crowd {
    /// How many of the crowd the server has closed, each given `within`.
    async fn closed(&mut self, within: Duration) -> usize {
        let mut closed = 0;
        for read in &mut self.reads {
            if closed_within(read, within).await {
                closed += 1;
            }
        }
        closed
    }

    /// Checks that the server closes the ones over a cap at once, and every other one by its
    /// deadline: the frame timeout, or the idle timeout of unlisted addresses.
    async fn gets_closed_by_the_server(mut self) {
        let limits = limits();
        // Time for the accept loop to have seen every one of them.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let at_once = self.closed(Duration::from_millis(1)).await;
        assert!(
            at_once >= CROWD - limits.unlisted_connections,
            "only {at_once} of {CROWD} closed at once: the rest must have waited for a slot"
        );
        let by = self.opened + limits.unlisted_idle_timeout.max(limits.frame_timeout);
        let left = by.saturating_duration_since(Instant::now()) + Duration::from_secs(3);
        let all = self.closed(left).await;
        assert_eq!(all, CROWD, "every hostile connection is closed by its deadline");
    }
}

async fn inbound(app: &App) -> Vec<MessageRow> {
    let filter = MessageFilter { direction: Some(Direction::In), ..Default::default() };
    app.lab.message_log(&Actor::system(), &filter).await.unwrap()
}

#[tokio::test]
async fn a_thousand_hostile_connections_leave_an_hl7_analyzer_its_ack_within_a_second() {
    let app = lab_with_listed_analyzers().await;
    let (listener, addr) = mllp::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let _server = tokio::spawn(mllp::serve_limited(app.lab.clone(), listener, limits()));
    let crowd = crowd(addr, b'x', b"\x0bMSH|^~\\&|NIST Test Lab APP|").await;

    let started = Instant::now();
    let mut analyzer = TcpStream::connect(addr).await.unwrap();
    analyzer.write_all(&frame(NIST_CBC)).await.unwrap();
    let mut deframer = MllpDeframer::new();
    let mut buf = [0u8; 4096];
    let ack = loop {
        if let Some(next) = deframer.next_frame() {
            break next.unwrap();
        }
        let n = timeout(ACK_WITHIN, analyzer.read(&mut buf))
            .await
            .expect("the analyzer's ACK within a second")
            .unwrap();
        assert!(n > 0, "the listener closed the analyzer's connection");
        deframer.push(&buf[..n]);
    };
    assert!(started.elapsed() < ACK_WITHIN, "{:?}", started.elapsed());
    let ack = Message::parse(&ack).unwrap();
    assert_eq!(ack.get("MSA-2").unwrap().text(), "NIST-LRI-NG-002.00");
    let log = inbound(&app).await;
    let from_analyzer: Vec<_> = log.iter().filter(|m| m.peer.starts_with("127.0.0.1:")).collect();
    assert_eq!(from_analyzer.len(), 1, "{log:#?}");
    assert!(!from_analyzer[0].detail.contains("listed addresses"), "{:?}", from_analyzer[0].detail);

    crowd.gets_closed_by_the_server().await;
    // The half frames that had a slot are in the message log as cut off, nothing stored.
    let cut: Vec<_> =
        inbound(&app).await.into_iter().filter(|m| m.outcome.code() == "aborted").collect();
    assert!(!cut.is_empty(), "{:#?}", inbound(&app).await);
    assert!(
        cut.iter().all(|m| m.detail.contains("did not arrive whole within 3 s")
            && !m.peer.starts_with("127.0.0.1:")),
        "{cut:#?}"
    );
}

#[tokio::test]
async fn a_thousand_hostile_connections_leave_an_astm_analyzer_its_ack_within_a_second() {
    let app = lab_with_listed_analyzers().await;
    let (listener, addr) = astm::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let _server = tokio::spawn(astm::serve_limited(app.lab.clone(), listener, limits()));
    // ENQ, then a frame that never ends.
    let crowd = crowd(addr, b'x', b"\x05\x021H|\\^&|||CHEM2").await;

    let records: Vec<Vec<u8>> = "H|\\^&|||CHEM2^1.0|||||||P|LIS2-A2|20261124081500\rP|1\rO|1|26-0000001-0||^^^GLUC|R\rR|1|^^^GLUC|95|mg/dL||N||F\rL|1|N"
        .split('\r')
        .map(|r| r.as_bytes().to_vec())
        .collect();
    let started = Instant::now();
    timeout(ACK_WITHIN, astm::send_records_as(addr, Role::Instrument, records))
        .await
        .expect("every frame acknowledged within a second")
        .unwrap();
    assert!(started.elapsed() < ACK_WITHIN, "{:?}", started.elapsed());
    let log = inbound(&app).await;
    let from_analyzer: Vec<_> = log.iter().filter(|m| m.peer.starts_with("127.0.0.1:")).collect();
    assert_eq!(from_analyzer.len(), 1, "stored before its last frame was acknowledged: {log:#?}");
    assert_eq!(from_analyzer[0].sender, "CHEM2");

    crowd.gets_closed_by_the_server().await;
}

#[tokio::test]
async fn a_frame_dripped_a_byte_at_a_time_is_cut_at_its_deadline_and_stray_bytes_keep_nothing_open()
{
    let app = app().await;
    let limits = ListenerLimits {
        frame_timeout: Duration::from_secs(1),
        unlisted_idle_timeout: Duration::from_secs(2),
        ..ListenerLimits::mllp()
    };
    let (listener, addr) = mllp::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let _server = tokio::spawn(mllp::serve_limited(app.lab.clone(), listener, limits));
    let drip = |bytes: &'static [u8], from: IpAddr| async move {
        let (mut read, mut write) = connect_from(from, addr).await.into_split();
        let dripper = tokio::spawn(async move {
            for &b in bytes.iter().cycle() {
                if write.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let started = Instant::now();
        assert!(closed_within(&mut read, Duration::from_secs(10)).await, "closed in the end");
        dripper.abort();
        started.elapsed()
    };
    let (frame_cut, idle_cut) = tokio::join!(
        drip(
            b"\x0bMSH|^~\\&|SLOW|LAB|CUVETTE|LAB|20261124081500||ORU^R01|SLOW-1|P|2.5.1\r",
            "127.0.0.21".parse().unwrap()
        ),
        drip(b"stray bytes outside any frame ", "127.0.0.22".parse().unwrap()),
    );
    assert!((1000..2500).contains(&frame_cut.as_millis()), "frame cut after {frame_cut:?}");
    assert!((2000..3500).contains(&idle_cut.as_millis()), "idle cut after {idle_cut:?}");
    let log = inbound(&app).await;
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0].outcome.code(), "aborted");
    assert!(
        log[0].detail.contains("the frame did not arrive whole within 1 s of its start"),
        "{}",
        log[0].detail
    );
    assert!(log[0].peer.starts_with("127.0.0.21:"), "{}", log[0].peer);
}

#[tokio::test]
async fn one_address_holds_its_share_of_connections_and_one_more_is_closed_at_once() {
    let app = app().await;
    let limits = ListenerLimits { connections_per_address: 2, ..ListenerLimits::astm() };
    let (listener, addr) = astm::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let _server = tokio::spawn(astm::serve_limited(app.lab.clone(), listener, limits));
    let greedy: IpAddr = "127.0.0.31".parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(connect_from(greedy, addr).await.into_split());
    }
    let (mut third, _keep) = connect_from(greedy, addr).await.into_split();
    assert!(
        closed_within(&mut third, Duration::from_millis(500)).await,
        "one more is closed at once"
    );
    for (read, _) in &mut held {
        assert!(!closed_within(read, Duration::from_millis(200)).await, "its share stays open");
    }
    let (mut other, _keep_other) =
        connect_from("127.0.0.32".parse().unwrap(), addr).await.into_split();
    assert!(
        !closed_within(&mut other, Duration::from_millis(200)).await,
        "another address is served"
    );
    // A connection freed is the address's again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut again, _keep_again) = connect_from(greedy, addr).await.into_split();
    assert!(!closed_within(&mut again, Duration::from_millis(200)).await, "its slot came back");
}
