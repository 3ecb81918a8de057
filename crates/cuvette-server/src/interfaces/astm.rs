//! The ASTM listener: instruments connect over TCP and speak ASTM E1381 (CLSI LIS01-A2) with
//! E1394 (CLSI LIS02-A2) records. Each connection is a task driving a sans-IO
//! [`cuvette_astm::Link`] in the computer-system role: it writes what the link transmits,
//! feeds it what it reads, and sleeps only until the link's next deadline; the link owns the
//! protocol's timing.
//!
//! The link holds back the acknowledgement of the frame that completes a message's terminator
//! record ([`Config::defer_final_ack`]). The task stores the message first — results
//! accepted, a retransmission recognised, or the message kept in the quarantine — and only
//! then acknowledges that frame; if the database fails it refuses the frame, and the
//! instrument sends it again. An instrument is never told a result arrived that Cuvette has
//! not committed.
//!
//! A host query (`Q` records, no results) is logged, acknowledged the same way, and answered
//! in a transfer of Cuvette's own once the instrument has ended its own with `EOT`: per
//! specimen asked about, an order record with the instrument's codes for the tests waiting
//! for it (see [`interop::astm::answer_query`]).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cuvette_app::Lab;
use cuvette_app::interop::{self, Ingested};
use cuvette_astm::{Config, Event, Link, MessageId, Phase, ReceiveAbort, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::{ListenerLimits, Timing};
use crate::health::ListenerWatch;

/// How long [`send_records`] tries, from connecting to the sender's `EOT`.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(120);

/// Bytes read per call: ASTM frames are at most 247 characters.
const READ_BYTES: usize = 4 * 1024;

/// Binds the listener; the returned address is the one bound (port 0 in tests).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    super::bind(addr).await
}

/// Serves connections until the task is dropped, on the channel `astm:<port>`, within
/// [`ListenerLimits::astm`].
pub async fn serve(lab: Arc<Lab>, listener: TcpListener) {
    serve_limited(lab, listener, ListenerLimits::astm()).await
}

/// [`serve`] within `limits`.
pub async fn serve_limited(lab: Arc<Lab>, listener: TcpListener, limits: ListenerLimits) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    serve_watched(lab, listener, limits, ListenerWatch::unwatched("ASTM", port)).await
}

/// [`serve_limited`], reporting to `/readyz` through `watch` whether it accepts connections.
pub async fn serve_watched(
    lab: Arc<Lab>,
    listener: TcpListener,
    limits: ListenerLimits,
    watch: ListenerWatch,
) {
    super::accept_loop(
        lab,
        listener,
        "astm",
        limits,
        watch,
        |lab, stream, peer, channel, timing| async move {
            connection(&lab, stream, peer, &channel, timing).await
        },
    )
    .await
}

/// A host-query answer queued on the link, to log once its fate is known.
struct Answer {
    records: Vec<Vec<u8>>,
    /// The instrument it is for (H-5 of its query).
    to: String,
}

/// One instrument connection: the link, the socket, and the answers on their way.
struct Connection<'a> {
    lab: &'a Lab,
    channel: &'a str,
    peer: String,
    link: Link,
    stream: TcpStream,
    answers: HashMap<MessageId, Answer>,
    /// Records of a message committed after the link had given it up (its decision came
    /// after the receive timeout), to tell them apart from what the abort lost.
    committed_late: Option<usize>,
    /// The last message, or the start of the transfer under way: the connection is closed
    /// when nothing follows within its idle timeout. Bytes that start no transfer do not
    /// count, and neither does a transfer that never ends.
    last_activity: Instant,
    idle_timeout: Duration,
}

async fn connection(
    lab: &Lab,
    stream: TcpStream,
    peer: SocketAddr,
    channel: &str,
    timing: Timing,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut conn = Connection {
        lab,
        channel,
        peer: peer.to_string(),
        link: Link::new(Config::new(Role::Computer).defer_final_ack(true)),
        stream,
        answers: HashMap::new(),
        committed_late: None,
        last_activity: Instant::now(),
        idle_timeout: timing.idle_timeout,
    };
    let ended = conn.run().await;
    // A transfer cut off by the connection closing: logged as aborted; the instrument sends
    // it again when it reconnects.
    conn.link.connection_closed();
    while let Some(event) = conn.link.poll_event() {
        if matches!(event, Event::ReceiveAborted { .. }) {
            conn.on_event(event).await;
        }
    }
    // Answers that never went out are logged as not delivered.
    for (_, answer) in conn.answers.drain() {
        conn_log_answer(lab, channel, &conn.peer, &answer, Some("the connection closed")).await;
    }
    ended
}

impl Connection<'_> {
    async fn run(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; READ_BYTES];
        loop {
            self.flush().await?;
            if let Some(event) = self.link.poll_event() {
                self.on_event(event).await;
                continue;
            }
            let link_deadline = self.link.poll_timeout().map(Instant::from_std);
            let idle_deadline = self.last_activity + self.idle_timeout;
            let wake = link_deadline.map_or(idle_deadline, |at| at.min(idle_deadline));
            tokio::select! {
                read = self.stream.read(&mut buf) => {
                    let n = read?;
                    if n == 0 {
                        return Ok(());
                    }
                    let now = Instant::now();
                    let was_neutral = self.link.phase() == Phase::Neutral;
                    self.link.handle_input(&buf[..n], now.into_std());
                    if was_neutral && self.link.phase() != Phase::Neutral {
                        self.last_activity = now;
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if now >= idle_deadline {
                        // A transfer under way is given up as aborted when the connection
                        // closes; the instrument sends it again.
                        tracing::info!(peer = %self.peer, seconds = self.idle_timeout.as_secs(), "closing an ASTM connection that delivered no message");
                        return Ok(());
                    }
                    self.link.handle_timeout(now.into_std());
                }
            }
        }
    }

    /// Writes everything the link has to send, in order.
    async fn flush(&mut self) -> io::Result<()> {
        let out = transmits(&mut self.link);
        if !out.is_empty() {
            self.stream.write_all(&out).await?;
        }
        Ok(())
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::MessageComplete(records) => {
                self.last_activity = Instant::now();
                let handled = self.store(&records).await;
                let now = Instant::now().into_std();
                let decided =
                    if handled.stored { self.link.acknowledge(now) } else { self.link.refuse(now) };
                if decided.is_err() {
                    // The receive timer ran out while the database worked: the instrument
                    // treats the message as not delivered and sends it again, which is then
                    // recognised as a retransmission. The link gives the message up with the
                    // records after it; these are not an aborted transfer.
                    tracing::warn!(peer = %self.peer, "an ASTM message took longer to store than the instrument waits");
                    if handled.stored {
                        self.committed_late = Some(records.len());
                    }
                }
                if let Some(answer) = handled.answer {
                    self.queue_answer(answer);
                }
            }
            Event::MessageReceived(records) => {
                self.last_activity = Instant::now();
                // Records the instrument left without a terminator when it ended the
                // transfer: an incomplete message, posted never (item by item a result could
                // be missing or cut), logged so the lab sees it.
                self.log_aborted(&records, "the instrument sent EOT without a terminator record")
                    .await;
            }
            Event::ReceiveAborted { reason, mut records } => {
                // A message whose decision came too late is committed already; only what
                // followed it was lost.
                records.drain(..self.committed_late.take().unwrap_or(0).min(records.len()));
                let how = match reason {
                    ReceiveAbort::Timeout => "no frame and no EOT within the receive timeout",
                    ReceiveAbort::SenderAborted => "the instrument gave the transfer up",
                    ReceiveAbort::TooLarge => "the message was larger than Cuvette takes",
                    ReceiveAbort::ConnectionClosed => "the connection closed",
                    _ => "the link gave the transfer up",
                };
                if !records.is_empty() {
                    self.log_aborted(&records, how).await;
                } else {
                    tracing::info!(peer = %self.peer, ?reason, "ASTM transfer aborted before any record");
                }
            }
            Event::MessageSent(id) => {
                if let Some(answer) = self.answers.remove(&id) {
                    conn_log_answer(self.lab, self.channel, &self.peer, &answer, None).await;
                }
            }
            Event::SendAborted { id, reason, .. } => {
                if let Some(answer) = self.answers.remove(&id) {
                    let why = format!("the instrument did not take it ({reason:?})");
                    tracing::warn!(peer = %self.peer, %why, "ASTM host-query answer not delivered");
                    conn_log_answer(self.lab, self.channel, &self.peer, &answer, Some(&why)).await;
                }
            }
            other => tracing::debug!(peer = %self.peer, ?other, "ASTM event ignored"),
        }
    }

    /// Commits one message: answers a host query, or ingests results. `stored` is false only
    /// when nothing was committed (the database failed).
    async fn store(&self, records: &[Vec<u8>]) -> Handled {
        let text = interop::astm::join_records(records);
        let (lab, channel, peer) = (self.lab, self.channel, self.peer.as_str());
        match interop::astm::answer_query(lab, &text, channel, peer).await {
            Ok(Some(answer)) => {
                tracing::info!(%peer, "ASTM host query answered");
                let to = interop::astm::sender_of(&text);
                return Handled { stored: true, answer: Some(Answer { records: answer, to }) };
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(%peer, error = %e, "could not log an ASTM host query; refusing it so the instrument asks again");
                return Handled { stored: false, answer: None };
            }
        }
        match interop::astm::receive(lab, &text, channel, peer).await {
            Ok(outcome) => {
                // Accepted, a retransmission, or quarantined: committed either way.
                if let Ingested::Quarantined { message_id, reason, .. } = &outcome {
                    tracing::warn!(%peer, message_id, %reason, "ASTM message quarantined");
                } else {
                    tracing::info!(%peer, ?outcome, "ASTM message stored");
                }
                Handled { stored: true, answer: None }
            }
            Err(e) => {
                tracing::error!(%peer, error = %e, "could not store an ASTM message; refusing it so the instrument resends it");
                Handled { stored: false, answer: None }
            }
        }
    }

    /// Logs records that never became a complete message; the instrument resends it.
    async fn log_aborted(&self, records: &[Vec<u8>], how: &str) {
        tracing::warn!(peer = %self.peer, how, records = records.len(), "ASTM transfer aborted: nothing in it was stored");
        if let Err(e) =
            interop::astm::log_aborted(self.lab, records, how, self.channel, &self.peer).await
        {
            tracing::error!(peer = %self.peer, error = %e, "could not log an aborted ASTM transfer");
        }
    }

    fn queue_answer(&mut self, answer: Answer) {
        match self.link.send(answer.records.clone(), Instant::now().into_std()) {
            Ok(id) => {
                self.answers.insert(id, answer);
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer, error = %e, "ASTM host-query answer not queued")
            }
        }
    }
}

struct Handled {
    stored: bool,
    answer: Option<Answer>,
}

async fn conn_log_answer(
    lab: &Lab,
    channel: &str,
    peer: &str,
    answer: &Answer,
    failure: Option<&str>,
) {
    if let Err(e) =
        interop::astm::log_answer(lab, &answer.records, &answer.to, channel, peer, failure).await
    {
        tracing::warn!(%peer, error = %e, "could not log an ASTM host-query answer");
    }
}

/// Delivers one message (its records, each without its terminating `CR`) to a remote ASTM
/// receiver over TCP: connects, bids for the line as the computer system, sends the frames,
/// and returns once every frame was accepted and `EOT` was written. Fails if the receiver
/// refuses a frame six times, stops answering, closes the connection, or the whole exchange
/// takes longer than [`SEND_TIMEOUT`]. Anything the receiver sends meanwhile is answered by
/// the link and otherwise ignored.
pub async fn send_records(addr: SocketAddr, records: Vec<Vec<u8>>) -> io::Result<()> {
    send_records_as(addr, Role::Computer, records).await
}

/// [`send_records`], bidding for the line in `role`: an instrument's side of the contention
/// rule (E1381-02: on contention the computer system yields), as the simulator sends its results
/// to Cuvette's own listener.
pub async fn send_records_as(
    addr: SocketAddr,
    role: Role,
    records: Vec<Vec<u8>>,
) -> io::Result<()> {
    tokio::time::timeout(SEND_TIMEOUT, deliver(addr, role, records)).await.unwrap_or_else(|_| {
        Err(io::Error::new(io::ErrorKind::TimedOut, "the ASTM receiver did not take the message"))
    })
}

async fn deliver(addr: SocketAddr, role: Role, records: Vec<Vec<u8>>) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let mut link = Link::new(Config::new(role));
    let id = link
        .send(records, Instant::now().into_std())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut buf = vec![0u8; READ_BYTES];
    loop {
        stream.write_all(&transmits(&mut link)).await?;
        while let Some(event) = link.poll_event() {
            match event {
                Event::MessageSent(sent) if sent == id => {
                    // The EOT that ends the transfer was queued with the event.
                    stream.write_all(&transmits(&mut link)).await?;
                    stream.shutdown().await?;
                    return Ok(());
                }
                Event::SendAborted { id: aborted, reason, .. } if aborted == id => {
                    let _ = stream.write_all(&transmits(&mut link)).await;
                    return Err(io::Error::other(format!(
                        "the ASTM receiver did not take the message: {reason:?}"
                    )));
                }
                _ => {}
            }
        }
        let wake = link.poll_timeout().map(Instant::from_std);
        tokio::select! {
            read = stream.read(&mut buf) => {
                let n = read?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the ASTM receiver closed the connection before the message was sent",
                    ));
                }
                link.handle_input(&buf[..n], Instant::now().into_std());
            }
            () = sleep_until_some(wake) => link.handle_timeout(Instant::now().into_std()),
        }
    }
}

/// Everything the link has to send, in order, as one write.
fn transmits(link: &mut Link) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = link.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    out
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
