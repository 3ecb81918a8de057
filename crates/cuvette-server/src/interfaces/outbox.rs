//! The outbox worker: released results to the EHR over MLLP.
//!
//! Every second it takes the messages due ([`Lab::outbox_take_due`]: oldest first, a
//! specimen's messages in order), sends each MLLP-framed on one reused connection and waits
//! for the acknowledgement (HL7 v2.5.1 Appendix C: one message outstanding at a time, 30 s).
//! `AA` (or an enhanced-mode `CA`) marks the message sent, logs it and audits the disclosure
//! ([`Lab::outbox_delivered`]); `AE`, `AR`, no answer in time or a broken connection is a failed
//! attempt, retried after 1 s, 2 s, 4 s … up to 5 min, and given up after 50 attempts
//! ([`Lab::outbox_attempt_failed`]), when it shows under Interfaces with a Retry button. Times
//! for the backoff come from the lab's clock ([`Lab::now`]), so tests move them.
//!
//! The worker sends what the app queued and decides nothing about results; the app never
//! touches a socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cuvette_app::Lab;
use cuvette_app::interop::outbound::{AckReading, backoff, read_ack};
use cuvette_app::records::OutboxRow;
use cuvette_hl7::mllp::{MllpDeframer, frame};
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// How often the outbox is looked at.
    pub poll: Duration,
    /// How long to wait for the EHR's acknowledgement of one message.
    pub ack_timeout: Duration,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// The most messages taken per look.
    pub batch: i64,
}

impl Default for OutboxSettings {
    fn default() -> OutboxSettings {
        OutboxSettings {
            poll: Duration::from_secs(1),
            ack_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            batch: 100,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Messages the EHR accepted.
    pub sent: usize,
    /// Attempts that failed.
    pub failed: usize,
}

/// Sends the outbox to one EHR. [`OutboxWorker::run`] loops forever; tests drive
/// [`OutboxWorker::run_once`].
pub struct OutboxWorker {
    lab: Arc<Lab>,
    ehr: SocketAddr,
    settings: OutboxSettings,
    connection: Option<Connection>,
    /// After the EHR could not be reached: no new connection before this time.
    reconnect_at: Option<Timestamp>,
    unreachable: i64,
}

struct Connection {
    stream: TcpStream,
    deframer: MllpDeframer,
}

/// Why an attempt failed.
enum Failure {
    /// The EHR could not be reached or the connection broke: later messages would fail alike.
    Transport(String),
    /// The EHR answered, but not with an acceptance.
    Refused(String),
}

/// Runs the worker until the task is dropped.
pub async fn run(lab: Arc<Lab>, ehr: SocketAddr, settings: OutboxSettings) {
    OutboxWorker::new(lab, ehr, settings).run().await;
}

impl OutboxWorker {
    /// A worker for the EHR listening at `ehr`.
    pub fn new(lab: Arc<Lab>, ehr: SocketAddr, settings: OutboxSettings) -> OutboxWorker {
        OutboxWorker { lab, ehr, settings, connection: None, reconnect_at: None, unreachable: 0 }
    }

    /// Sends what is due, then waits a poll interval, forever.
    pub async fn run(mut self) {
        loop {
            self.run_once().await;
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    /// Sends every message due now, in order; stops at the first connection failure.
    pub async fn run_once(&mut self) -> Round {
        let mut round = Round::default();
        if self.reconnect_at.is_some_and(|at| self.lab.now() < at) {
            return round;
        }
        let due = match self.lab.outbox_take_due(self.settings.batch).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "could not read the outbox");
                return round;
            }
        };
        // A specimen whose message failed: its later messages wait for the next round.
        let mut held: Vec<String> = Vec::new();
        for row in due {
            if held.contains(&row.accession) {
                continue;
            }
            let started = Instant::now();
            let outcome = self.deliver(&row).await;
            let elapsed = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
            let (error, transport) = match outcome {
                Ok(ack) => {
                    self.unreachable = 0;
                    self.reconnect_at = None;
                    match self
                        .lab
                        .outbox_delivered(&row, &self.ehr.to_string(), &ack, elapsed)
                        .await
                    {
                        Ok(()) => {
                            tracing::info!(accession = %row.accession, control_id = %row.control_id, "result message delivered to the EHR");
                            round.sent += 1;
                        }
                        // Delivered, not yet marked: it goes again and the EHR dedups it.
                        Err(e) => {
                            tracing::error!(error = %e, "could not record a delivered message")
                        }
                    }
                    continue;
                }
                Err(Failure::Refused(why)) => (why, false),
                Err(Failure::Transport(why)) => (why, true),
            };
            round.failed += 1;
            held.push(row.accession.clone());
            match self.lab.outbox_attempt_failed(&row, &error).await {
                Ok(Some(next)) => {
                    tracing::warn!(accession = %row.accession, %error, %next, "result message not delivered; will retry")
                }
                Ok(None) => {
                    tracing::error!(accession = %row.accession, %error, "result message given up after repeated failures: retry it under Interfaces")
                }
                Err(e) => tracing::error!(error = %e, "could not record a failed delivery"),
            }
            if transport {
                // The EHR is not there: wait before connecting again instead of failing every
                // message in the queue at once.
                self.unreachable += 1;
                self.reconnect_at = Some(self.lab.now() + backoff(self.unreachable));
                break;
            }
        }
        round
    }

    /// Sends one message and returns the EHR's acceptance. A connection that was idle may have
    /// been closed by the EHR meanwhile: a failure on it is retried once on a new one.
    async fn deliver(&mut self, row: &OutboxRow) -> Result<Vec<u8>, Failure> {
        let reused = self.connection.is_some();
        match self.attempt(row).await {
            Err(Failure::Transport(why)) if reused => {
                tracing::debug!(%why, "reused MLLP connection failed; reconnecting");
                self.attempt(row).await
            }
            other => other,
        }
    }

    async fn attempt(&mut self, row: &OutboxRow) -> Result<Vec<u8>, Failure> {
        let result = self.exchange(row).await;
        if matches!(result, Err(Failure::Transport(_))) {
            self.connection = None;
        }
        result
    }

    async fn exchange(&mut self, row: &OutboxRow) -> Result<Vec<u8>, Failure> {
        if self.connection.is_none() {
            let stream = match tokio::time::timeout(
                self.settings.connect_timeout,
                TcpStream::connect(self.ehr),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    return Err(Failure::Transport(format!(
                        "cannot connect to the EHR at {}: {e}",
                        self.ehr
                    )));
                }
                Err(_) => {
                    return Err(Failure::Transport(format!(
                        "no connection to the EHR at {} within {:?}",
                        self.ehr, self.settings.connect_timeout
                    )));
                }
            };
            self.connection = Some(Connection { stream, deframer: MllpDeframer::new() });
        }
        let timeout = self.settings.ack_timeout;
        let conn = self.connection.as_mut().expect("connected above");
        conn.stream
            .write_all(&frame(&row.payload))
            .await
            .map_err(|e| Failure::Transport(format!("sending to the EHR failed: {e}")))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(next) = conn.deframer.next_frame() {
                let Ok(answer) = next else { continue };
                match read_ack(&answer, &row.control_id) {
                    AckReading::Accepted { .. } => return Ok(answer),
                    AckReading::Refused { code, reason } => {
                        return Err(Failure::Refused(format!("the EHR answered {code}: {reason}")));
                    }
                    AckReading::Unreadable { reason } => {
                        // Out of step with the EHR: start afresh next time.
                        self.connection = None;
                        return Err(Failure::Refused(format!(
                            "the EHR's answer cannot be read: {reason}"
                        )));
                    }
                    // A late answer to an earlier attempt: keep waiting for ours.
                    AckReading::ForAnother { .. } => {}
                }
            }
            let read = tokio::time::timeout_at(deadline, conn.stream.read(&mut buf)).await;
            match read {
                Ok(Ok(0)) => {
                    return Err(Failure::Transport(
                        "the EHR closed the connection without acknowledging".into(),
                    ));
                }
                Ok(Ok(n)) => conn.deframer.push(&buf[..n]),
                Ok(Err(e)) => {
                    return Err(Failure::Transport(format!("reading from the EHR failed: {e}")));
                }
                Err(_) => {
                    // A late acknowledgement must not be taken for the next message's.
                    self.connection = None;
                    return Err(Failure::Refused(format!("no acknowledgement within {timeout:?}")));
                }
            }
        }
    }
}
