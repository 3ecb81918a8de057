//! The E1381 / LIS01-A2 low-level protocol as a sans-IO state machine.
//!
//! A [`Link`] is one end of a line between an instrument and a computer system (the LIS). It
//! is neutral until one side bids for the line with `ENQ`; the granted side becomes the sender
//! for one transfer phase, the other the receiver, and the sender's `EOT` returns both to
//! neutral (E1381-02 §6.1). The same `Link` sends what [`Link::send`] queued and receives what
//! the other side sends.
//!
//! What goes in and out:
//!
//! - [`Link::handle_input`] takes bytes read from the line and the time they were read;
//!   [`Link::handle_timeout`] tells the link what time it is when [`Link::poll_timeout`]'s
//!   deadline has passed. The link never reads a clock.
//! - [`Link::poll_transmit`] returns the next bytes to write: a single control character
//!   (`ENQ`, `ACK`, `NAK`, `EOT`) or one whole frame.
//! - [`Link::poll_event`] returns what happened: a message received, one sent, or either
//!   aborted.
//!
//! Delivery unit: one [`Event::MessageReceived`] per transfer phase (the records between `ENQ`
//! and `EOT`), as a list of records. Each record is the text of one E1394 record without its
//! terminating `CR`, already reassembled from its intermediate (`ETB`) frames; the records
//! module parses them ([`crate::Message::from_records`]). A transfer phase that ended badly
//! (the sender gave up, the receiver timed out) is reported as [`Event::ReceiveAborted`]
//! instead, never as a received message.
//!
//! # Acknowledging after commit
//!
//! By default the receiver acknowledges every good frame at once, so the frame that carries a
//! message's last record is acknowledged before the application has stored anything; if it
//! crashes in between, a result the instrument was told is delivered is lost. With
//! [`Config::defer_final_ack`] the receiver holds back the reply to the frame that completes a
//! terminator record (`L`, LIS02-A2 §12) and reports [`Event::MessageComplete`] with the
//! records of that message (its header to its terminator). The link then waits for the
//! caller's decision:
//!
//! - [`Link::acknowledge`] once the message is committed: the frame is answered `ACK`; the
//!   sender ends the transfer with `EOT` (or goes on with another message).
//! - [`Link::refuse`] when it could not be committed: the frame is answered `NAK` and
//!   forgotten, so the sender retransmits it (E1381-02 §6.5.1.2) and the link reports the
//!   whole message again in a second [`Event::MessageComplete`]. After six refusals the sender
//!   aborts and the link reports [`Event::ReceiveAborted`].
//!
//! The decision is due within [`RECEIVE_TIMEOUT`] of the frame. A link still waiting then
//! (at [`Link::handle_timeout`], or at a late decision) returns to neutral without replying
//! and reports [`Event::ReceiveAborted`] with [`ReceiveAbort::Timeout`]; if the sender gives
//! up first (its own [`ACK_TIMEOUT`] is shorter) and sends `EOT` or a new `ENQ`, the link
//! reports [`ReceiveAbort::SenderAborted`].
//! Either way the sender considers the message undelivered and will send it again, so a caller
//! that committed it anyway must recognise the repetition (Cuvette does, by content hash).
//! While the link waits, everything from the line but `EOT` and `ENQ` is ignored.
//!
//! In this mode [`Event::MessageReceived`] is only reported for records a sender left without
//! a terminator when it sent `EOT` (some instruments omit `L`): their frames were acknowledged
//! as they came, as without the option.

use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::frame::{self, ACK, CR, ENQ, EOT, ETB, ETX, FRAME_BYTES_MAX, FRAME_TEXT_MAX, FrameEnd};
use crate::frame::{LF, NAK, STX};

/// How long a sender waits for the reply to a frame before aborting the message (E1381-02
/// §6.5.2.1).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a side that sent `ENQ` waits for the reply before giving up the bid (E1381-02
/// §6.5.2.1).
pub const ESTABLISHMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a receiver waits for the next frame or `EOT` before returning to neutral and
/// discarding the incomplete message (E1381-02 §6.5.2.2).
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a sender whose `ENQ` was answered with `NAK` (receiver busy) waits before bidding
/// again (E1381-02 §6.2.6: at least 10 s).
pub const BUSY_BACKOFF: Duration = Duration::from_secs(10);

/// How long a computer system that lost a contention waits before its next `ENQ` (E1381-02
/// §6.2.7.1: at least 20 s).
pub const CONTENTION_BACKOFF_COMPUTER: Duration = Duration::from_secs(20);

/// How long an instrument that detected a contention waits before its next `ENQ` (E1381-02
/// §6.2.7.1: at least 1 s).
pub const CONTENTION_BACKOFF_INSTRUMENT: Duration = Duration::from_secs(1);

/// How many times one frame is sent without being accepted before the sender aborts the
/// message: E1381-02 §6.5.1.2 aborts "if this counter shows a single frame was sent and not
/// accepted six times". So a frame goes out at most six times in all — the first transmission
/// and five retransmissions — and the sixth rejection ends the message with `EOT`.
pub const RETRANSMISSIONS_MAX: u32 = 6;

/// The most message text one transfer phase may carry, in either direction. A receiver rejects
/// (`NAK`s) frames beyond it, so the sender aborts; [`Link::send`] refuses larger messages.
/// E1381 sets no limit; Cuvette's is far above any instrument's message (a whole CBC with
/// histograms is tens of kilobytes).
pub const MESSAGE_BYTES_MAX: usize = 1 << 20;

/// The most messages [`Link::send`] queues before refusing more.
pub const SEND_QUEUE_MAX: usize = 16;

/// The most undelivered events a link holds. While the caller has not drained
/// [`Link::poll_event`] below this, the link answers `ENQ` with `NAK` (busy, E1381-02 §6.2.5)
/// instead of receiving more.
pub const EVENTS_QUEUED_MAX: usize = 16;

/// Which end of the line a [`Link`] is. The standard treats both alike except when both bid
/// for the line at once (E1381-02 §6.2.7.1): the instrument wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The instrument: wins contention, waits [`CONTENTION_BACKOFF_INSTRUMENT`] and bids again.
    Instrument,
    /// The computer system (the LIS): yields on contention, receives the instrument's message,
    /// and waits [`CONTENTION_BACKOFF_COMPUTER`] before bidding again.
    Computer,
}

/// How a [`Link`] behaves. The timers and limits are the standard's and stay constants.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Which end of the line this is.
    pub role: Role,
    /// Hold back the reply to the frame that completes a terminator record until the caller
    /// decides with [`Link::acknowledge`] or [`Link::refuse`]; see the
    /// [module documentation](self#acknowledging-after-commit). Off by default.
    pub defer_final_ack: bool,
}

impl Config {
    /// A configuration for the given end of the line, acknowledging every frame at once.
    pub fn new(role: Role) -> Self {
        Config { role, defer_final_ack: false }
    }

    /// Sets [`Config::defer_final_ack`].
    pub fn defer_final_ack(mut self, defer: bool) -> Self {
        self.defer_final_ack = defer;
        self
    }
}

/// Which phase of E1381-02 §6.1 the link is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Nobody holds the line (possibly waiting out a back-off before bidding).
    Neutral,
    /// This side sent `ENQ` and waits for the reply.
    Establishing,
    /// This side holds the line and sends frames.
    Sending,
    /// The other side holds the line; this side answers its frames.
    Receiving,
}

/// Identifies a message queued with [`Link::send`] in the events that report its fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message {}", self.0)
    }
}

/// What happened on the line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The other side completed a transfer phase: every frame was accepted, the last one was
    /// an end frame, and `EOT` followed. Holds the records, each without its terminating `CR`.
    /// Whether they form a complete E1394 message (`H` … `L`) is the records layer's question.
    MessageReceived(Vec<Vec<u8>>),
    /// Only with [`Config::defer_final_ack`]: the frame that completes a terminator record was
    /// received and its reply is held back. Holds the message's records (from the first not
    /// yet reported, normally its header, to the terminator), each without its terminating
    /// `CR`. The caller answers with [`Link::acknowledge`] after committing them or
    /// [`Link::refuse`] if it cannot; after a refusal the same message may be reported again.
    MessageComplete(Vec<Vec<u8>>),
    /// A transfer phase from the other side ended without completing. Its records must not be
    /// posted (E1381-02 §6.5.2.2 discards an incomplete message); they are handed over only so
    /// the caller can log what was lost.
    ReceiveAborted {
        /// Why it ended.
        reason: ReceiveAbort,
        /// The records completed before the abort.
        records: Vec<Vec<u8>>,
    },
    /// Every frame of a queued message was accepted and `EOT` was sent.
    MessageSent(MessageId),
    /// A queued message was given up; `EOT` was sent. The records are returned so the caller
    /// may queue them again.
    SendAborted {
        /// The message given up.
        id: MessageId,
        /// Why.
        reason: SendAbort,
        /// The records that were queued.
        records: Vec<Vec<u8>>,
    },
}

/// Why the receiving side of a transfer phase gave it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiveAbort {
    /// No frame or `EOT` arrived within [`RECEIVE_TIMEOUT`] of the last reply (E1381-02
    /// §6.5.2.2).
    Timeout,
    /// `EOT` (or a new `ENQ`) arrived while the last frame was rejected or a record was still
    /// open after an intermediate frame: the sender aborted (E1381-02 §6.5.1.2, §6.5.2.1).
    SenderAborted,
    /// The message grew past [`MESSAGE_BYTES_MAX`]; its frames were rejected until the sender
    /// aborted.
    TooLarge,
    /// The connection under the link closed in the middle of the transfer
    /// ([`Link::connection_closed`]).
    ConnectionClosed,
}

/// Why the sending side gave a message up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendAbort {
    /// No reply to `ENQ` within [`ESTABLISHMENT_TIMEOUT`] (E1381-02 §6.5.2.1).
    EstablishmentTimeout,
    /// One frame was sent [`RETRANSMISSIONS_MAX`] times without being accepted (E1381-02
    /// §6.5.1.2).
    FrameRejected,
    /// No reply to a frame within [`ACK_TIMEOUT`] (E1381-02 §6.5.2.1).
    ReplyTimeout,
}

/// Why [`Link::send`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SendError {
    /// The message has no records.
    #[error("a message needs at least one record")]
    Empty,
    /// A record is empty.
    #[error("record {record} is empty")]
    EmptyRecord {
        /// The record's 1-based position in the message.
        record: usize,
    },
    /// A record holds a byte that E1394 does not allow in data (LIS02-A2 §5: 0–6, 8, 10,
    /// 13–31, 127 and 255; CR is the record terminator). Build records with
    /// [`crate::RecordBuilder`], which escapes such bytes.
    #[error("record {record} holds disallowed byte {byte:#04x} at offset {offset}")]
    DisallowedByte {
        /// The record's 1-based position in the message.
        record: usize,
        /// The byte's offset within the record.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// The message is larger than [`MESSAGE_BYTES_MAX`].
    #[error("message is {len} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The message's size in bytes, counting one `CR` per record.
        len: usize,
        /// [`MESSAGE_BYTES_MAX`].
        limit: usize,
    },
    /// [`SEND_QUEUE_MAX`] messages are already waiting.
    #[error("{limit} messages are already queued")]
    QueueFull {
        /// [`SEND_QUEUE_MAX`].
        limit: usize,
    },
}

/// [`Link::acknowledge`] or [`Link::refuse`] was called while no message awaited a decision:
/// none was reported, it was decided already, or the link gave it up (the sender aborted or
/// the receive timer expired, reported as [`Event::ReceiveAborted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("no received message awaits acknowledgement")]
pub struct NothingPending;

/// One end of an E1381 line. See the [module documentation](self).
#[derive(Debug)]
pub struct Link {
    role: Role,
    defer_final_ack: bool,
    state: State,
    queue: VecDeque<Outbound>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    /// The earliest time this side may bid for the line again, after a busy `NAK` or a
    /// contention.
    enq_not_before: Option<Instant>,
    next_id: u64,
}

impl Link {
    /// A neutral link.
    pub fn new(config: Config) -> Self {
        Link {
            role: config.role,
            defer_final_ack: config.defer_final_ack,
            state: State::Neutral,
            queue: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            enq_not_before: None,
            next_id: 1,
        }
    }

    /// Which end of the line this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether a message reported as [`Event::MessageComplete`] awaits [`Link::acknowledge`]
    /// or [`Link::refuse`].
    pub fn awaits_decision(&self) -> bool {
        matches!(&self.state, State::Receiving(receiver) if receiver.pending.is_some())
    }

    /// Answers the frame held back for the message last reported as
    /// [`Event::MessageComplete`] with `ACK`: the caller has committed it. The receive timer
    /// restarts.
    ///
    /// Like [`Link::handle_timeout`], this first acts on every deadline at or before `now`: a
    /// decision that comes after the receive timeout finds the message given up
    /// ([`Event::ReceiveAborted`]) and returns [`NothingPending`] without replying.
    pub fn acknowledge(&mut self, now: Instant) -> Result<(), NothingPending> {
        self.handle_timeout(now);
        let State::Receiving(receiver) = &mut self.state else { return Err(NothingPending) };
        let pending = receiver.pending.take().ok_or(NothingPending)?;
        receiver.records.drain(..pending.delivered);
        let reply = receiver.replied(ACK, now);
        self.transmits.push_back(vec![reply]);
        Ok(())
    }

    /// Answers the frame held back for the message last reported as
    /// [`Event::MessageComplete`] with `NAK`: the caller could not commit it. The frame is
    /// forgotten, so its retransmission completes the message again and it is reported anew.
    /// The receive timer restarts. A decision after the receive timeout is refused as in
    /// [`Link::acknowledge`].
    pub fn refuse(&mut self, now: Instant) -> Result<(), NothingPending> {
        self.handle_timeout(now);
        let State::Receiving(receiver) = &mut self.state else { return Err(NothingPending) };
        let pending = receiver.pending.take().ok_or(NothingPending)?;
        receiver.restore(pending.before);
        let reply = receiver.replied(NAK, now);
        self.transmits.push_back(vec![reply]);
        Ok(())
    }

    /// Tells the link that the connection under it closed. A transfer being received is given
    /// up as [`Event::ReceiveAborted`] with [`ReceiveAbort::ConnectionClosed`]: the sender
    /// never saw its end acknowledged, so it sends the message again (E1381-02 §6.5.2.2
    /// discards an incomplete message). A message waiting for [`Link::acknowledge`] is given
    /// up with it.
    pub fn connection_closed(&mut self) {
        if let Some(receiver) = self.take_receiver() {
            self.events.push_back(Event::ReceiveAborted {
                reason: ReceiveAbort::ConnectionClosed,
                records: receiver.records,
            });
        }
    }

    /// The phase the link is in.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Neutral => Phase::Neutral,
            State::Establishing { .. } => Phase::Establishing,
            State::Sending(_) => Phase::Sending,
            State::Receiving(_) => Phase::Receiving,
        }
    }

    /// Queues a message (its records, each without a terminating `CR`) and, if the line is
    /// neutral and no back-off is running, bids for it at once with `ENQ`.
    ///
    /// Each record is sent in its own frames (a record starts a new frame, LIS02-A2 §5 / E1381
    /// §6.3.1), split into intermediate frames of [`FRAME_TEXT_MAX`] characters when longer.
    pub fn send(&mut self, records: Vec<Vec<u8>>, now: Instant) -> Result<MessageId, SendError> {
        if self.queue.len() >= SEND_QUEUE_MAX {
            return Err(SendError::QueueFull { limit: SEND_QUEUE_MAX });
        }
        if records.is_empty() {
            return Err(SendError::Empty);
        }
        let mut len = 0usize;
        for (index, record) in records.iter().enumerate() {
            if record.is_empty() {
                return Err(SendError::EmptyRecord { record: index + 1 });
            }
            if let Some(offset) = record.iter().position(|&b| !is_data_byte(b)) {
                return Err(SendError::DisallowedByte {
                    record: index + 1,
                    offset,
                    byte: record[offset],
                });
            }
            len = len.saturating_add(record.len() + 1);
        }
        if len > MESSAGE_BYTES_MAX {
            return Err(SendError::TooLarge { len, limit: MESSAGE_BYTES_MAX });
        }
        let id = MessageId(self.next_id);
        self.next_id += 1;
        self.queue.push_back(Outbound { id, records });
        self.maybe_bid(now);
        Ok(id)
    }

    /// Feeds bytes read from the line at `now`. Any split of the byte stream gives the same
    /// result: the link keeps partial frames between calls.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        for &byte in bytes {
            self.on_byte(byte, now);
        }
        self.maybe_bid(now);
    }

    /// Tells the link the time; acts on every deadline at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.state {
            State::Neutral => {}
            State::Establishing { deadline } => {
                if now >= *deadline {
                    // E1381-02 §6.5.2.1: no reply to ENQ within 15 s — termination phase.
                    self.state = State::Neutral;
                    self.transmits.push_back(vec![EOT]);
                    if let Some(message) = self.queue.pop_front() {
                        self.events.push_back(Event::SendAborted {
                            id: message.id,
                            reason: SendAbort::EstablishmentTimeout,
                            records: message.records,
                        });
                    }
                }
            }
            State::Sending(sender) => {
                if now >= sender.deadline {
                    // E1381-02 §6.5.2.1: no reply to a frame within 15 s — the sender aborts
                    // the message and enters the termination phase.
                    self.abort_send(SendAbort::ReplyTimeout);
                }
            }
            State::Receiving(receiver) => {
                if now >= receiver.deadline {
                    // E1381-02 §6.5.2.2: no frame or EOT within 30 s — the receiver regards the
                    // line as neutral and discards the incomplete message.
                    if let Some(receiver) = self.take_receiver() {
                        self.events.push_back(Event::ReceiveAborted {
                            reason: ReceiveAbort::Timeout,
                            records: receiver.records,
                        });
                    }
                }
            }
        }
        self.maybe_bid(now);
    }

    /// The next bytes to write to the line: one control character or one whole frame.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The time at which [`Link::handle_timeout`] must next be called, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Neutral if !self.queue.is_empty() => self.enq_not_before,
            State::Neutral => None,
            State::Establishing { deadline } => Some(*deadline),
            State::Sending(sender) => Some(sender.deadline),
            State::Receiving(receiver) => Some(receiver.deadline),
        }
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn on_byte(&mut self, byte: u8, now: Instant) {
        match &mut self.state {
            State::Neutral => {
                if byte == ENQ {
                    self.answer_enq(now);
                }
                // E1381-02 §6.1: in the neutral state only ENQ means anything; other bytes
                // (noise, a late reply) are ignored.
            }
            State::Establishing { .. } => match byte {
                ACK => self.start_transfer(now),
                NAK => {
                    // E1381-02 §6.2.6: the receiver is busy; bid again after at least 10 s.
                    self.state = State::Neutral;
                    self.enq_not_before = Some(later(now, BUSY_BACKOFF));
                }
                ENQ => {
                    // E1381-02 §6.2.7.1: contention. The computer system stops bidding and
                    // waits for the instrument's next ENQ, then may bid again only after 20 s;
                    // the instrument waits at least 1 s and bids again. Neither answers the
                    // ENQ that collided.
                    let backoff = match self.role {
                        Role::Computer => CONTENTION_BACKOFF_COMPUTER,
                        Role::Instrument => CONTENTION_BACKOFF_INSTRUMENT,
                    };
                    self.state = State::Neutral;
                    self.enq_not_before = Some(later(now, backoff));
                }
                // Anything else is noise: the reply is still awaited, until the timeout.
                _ => {}
            },
            State::Sending(sender) => match byte {
                // E1381-02 §6.3.5: EOT in reply to a frame is a receiver interrupt. It
                // acknowledges the frame; the sender may go on. Cuvette finishes the message
                // it is sending (one message per transfer phase), which honours the request at
                // the next message boundary.
                ACK | EOT => {
                    sender.index += 1;
                    if let Some(frame) = sender.frames.get(sender.index) {
                        self.transmits.push_back(frame.clone());
                        sender.attempts = 1;
                        sender.deadline = later(now, ACK_TIMEOUT);
                    } else {
                        // E1381-02 §6.4: the sender ends the transfer with EOT.
                        let id = sender.message.id;
                        self.state = State::Neutral;
                        self.transmits.push_back(vec![EOT]);
                        self.events.push_back(Event::MessageSent(id));
                    }
                }
                // E1381-02 §6.5.1.2: NAK, or any character other than ACK or EOT, is a NAK
                // condition: retransmit the same frame with the same frame number, until it was
                // sent six times without being accepted.
                _ => {
                    if sender.attempts >= RETRANSMISSIONS_MAX {
                        self.abort_send(SendAbort::FrameRejected);
                    } else {
                        sender.attempts += 1;
                        sender.deadline = later(now, ACK_TIMEOUT);
                        self.transmits.push_back(sender.frames[sender.index].clone());
                    }
                }
            },
            State::Receiving(receiver) => match receiver.on_byte(byte, now) {
                Step::Nothing => {}
                Step::Reply(reply) => self.transmits.push_back(vec![reply]),
                Step::Hold(records) => self.events.push_back(Event::MessageComplete(records)),
                Step::End => self.end_receive(),
                Step::Enq => {
                    // A new ENQ means the sender considers the line neutral: its EOT was lost.
                    // Close this transfer phase as if EOT had arrived, then answer the bid.
                    self.end_receive();
                    self.answer_enq(now);
                }
            },
        }
    }

    /// Answers another side's `ENQ` from the neutral state (E1381-02 §6.2.4–§6.2.5).
    fn answer_enq(&mut self, now: Instant) {
        if self.events.len() >= EVENTS_QUEUED_MAX {
            // E1381-02 §6.2.5: a receiver that is not ready answers NAK.
            self.transmits.push_back(vec![NAK]);
        } else {
            self.transmits.push_back(vec![ACK]);
            self.state = State::Receiving(Box::new(Receiver::new(now, self.defer_final_ack)));
        }
    }

    /// The bid was granted: send the first frame of the first queued message.
    fn start_transfer(&mut self, now: Instant) {
        let Some(message) = self.queue.pop_front() else {
            // Only reachable if the queue emptied while establishing, which nothing does; a
            // granted line with nothing to send is closed at once.
            self.state = State::Neutral;
            self.transmits.push_back(vec![EOT]);
            return;
        };
        let frames = frames_for(&message.records);
        self.transmits.push_back(frames[0].clone());
        self.state = State::Sending(Sender {
            message,
            frames,
            index: 0,
            attempts: 1,
            deadline: later(now, ACK_TIMEOUT),
        });
    }

    fn abort_send(&mut self, reason: SendAbort) {
        if let State::Sending(sender) = mem::replace(&mut self.state, State::Neutral) {
            self.transmits.push_back(vec![EOT]);
            self.events.push_back(Event::SendAborted {
                id: sender.message.id,
                reason,
                records: sender.message.records,
            });
        }
    }

    /// Leaves the receiving state for neutral, returning what was received.
    fn take_receiver(&mut self) -> Option<Receiver> {
        match mem::replace(&mut self.state, State::Neutral) {
            State::Receiving(receiver) => Some(*receiver),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// The sender ended the transfer phase (E1381-02 §6.4).
    fn end_receive(&mut self) {
        let Some(receiver) = self.take_receiver() else { return };
        if receiver.pending.is_some() {
            // The sender gave up waiting for the reply to the frame held back: for it, the
            // message was not delivered.
            self.events.push_back(Event::ReceiveAborted {
                reason: ReceiveAbort::SenderAborted,
                records: receiver.records,
            });
        } else if receiver.too_large {
            self.events.push_back(Event::ReceiveAborted {
                reason: ReceiveAbort::TooLarge,
                records: receiver.records,
            });
        } else if receiver.last_reply == Some(NAK) || receiver.record_open {
            // A sender only sends EOT after a rejected frame when it gives up (E1381-02
            // §6.5.1.2), and only leaves a record open after an intermediate frame when it
            // aborts: the message is incomplete and must not be posted.
            self.events.push_back(Event::ReceiveAborted {
                reason: ReceiveAbort::SenderAborted,
                records: receiver.records,
            });
        } else if !receiver.records.is_empty() {
            self.events.push_back(Event::MessageReceived(receiver.records));
        }
        // ENQ followed by EOT with no frame carries nothing to report.
    }

    /// Bids for the line if there is something to send, the line is neutral and no back-off
    /// is running (E1381-02 §6.2.1).
    fn maybe_bid(&mut self, now: Instant) {
        if !matches!(self.state, State::Neutral) || self.queue.is_empty() {
            return;
        }
        if self.enq_not_before.is_some_and(|not_before| now < not_before) {
            return;
        }
        self.enq_not_before = None;
        self.transmits.push_back(vec![ENQ]);
        self.state = State::Establishing { deadline: later(now, ESTABLISHMENT_TIMEOUT) };
    }
}

#[derive(Debug)]
enum State {
    Neutral,
    Establishing { deadline: Instant },
    Sending(Sender),
    Receiving(Box<Receiver>),
}

#[derive(Debug)]
struct Outbound {
    id: MessageId,
    records: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct Sender {
    message: Outbound,
    frames: Vec<Vec<u8>>,
    /// The frame awaiting its reply.
    index: usize,
    /// How many times that frame has been sent.
    attempts: u32,
    deadline: Instant,
}

/// Where the receiver is within the byte stream of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Between frames: waiting for STX (or EOT, or ENQ).
    Idle,
    /// After STX: frame number and text, until ETB/ETX.
    Body,
    /// After ETB/ETX: this many checksum characters read so far.
    Checksum(u8),
    /// After the checksum: the CR that closes the frame.
    Cr,
    /// The frame outgrew [`FRAME_BYTES_MAX`]: skip to its LF, then reject it.
    Discard,
}

#[derive(Debug)]
enum Step {
    Nothing,
    Reply(u8),
    /// A frame completed a message; its reply waits for the caller (deferred final ACK).
    Hold(Vec<Vec<u8>>),
    End,
    Enq,
}

/// The receiver's state before it took a frame's text, to forget the frame when the caller
/// refuses the message it completed.
#[derive(Debug)]
struct Snapshot {
    expected: u8,
    last: Option<u8>,
    records: usize,
    partial: usize,
    record_open: bool,
    bytes: usize,
}

/// A frame accepted but not yet answered, waiting for the caller's decision.
#[derive(Debug)]
struct Pending {
    before: Snapshot,
    /// How many of the receiver's records were reported in [`Event::MessageComplete`].
    delivered: usize,
}

/// The receiving side of one transfer phase.
#[derive(Debug)]
struct Receiver {
    deadline: Instant,
    /// The frame number the next new frame must carry.
    expected: u8,
    /// The number of the last accepted frame, to recognise a retransmission.
    last: Option<u8>,
    scan: Scan,
    /// The frame being read, from STX on.
    frame: Vec<u8>,
    records: Vec<Vec<u8>>,
    /// The record being assembled across frames.
    partial: Vec<u8>,
    /// The last accepted frame was intermediate (ETB): the sender has more to send.
    record_open: bool,
    /// Text bytes accepted so far.
    bytes: usize,
    last_reply: Option<u8>,
    too_large: bool,
    /// Hold back the reply to a frame that completes a terminator record.
    defer_final_ack: bool,
    /// The frame whose reply is held back, if any.
    pending: Option<Pending>,
}

/// Bytes of a frame before its ETB/ETX: STX, FN and at most [`FRAME_TEXT_MAX`] of text.
const FRAME_HEAD_MAX: usize = 2 + FRAME_TEXT_MAX;

impl Receiver {
    fn new(now: Instant, defer_final_ack: bool) -> Self {
        Receiver {
            // E1381-02 §6.5.2.2: the receiver's timer starts on entering the transfer phase.
            deadline: later(now, RECEIVE_TIMEOUT),
            expected: 1,
            last: None,
            scan: Scan::Idle,
            frame: Vec::new(),
            records: Vec::new(),
            partial: Vec::new(),
            record_open: false,
            bytes: 0,
            last_reply: None,
            too_large: false,
            defer_final_ack,
            pending: None,
        }
    }

    fn on_byte(&mut self, byte: u8, now: Instant) -> Step {
        if self.pending.is_some() {
            // Waiting for the caller's decision: the sender waits for the reply, so only the
            // end of the transfer or a new bid (it gave up) means anything; the rest is noise.
            return match byte {
                EOT => Step::End,
                ENQ => Step::Enq,
                _ => Step::Nothing,
            };
        }
        // STX, EOT and ENQ never occur inside a frame (E1381-02 §6.6), so they keep their
        // meaning wherever they arrive: a new frame, the end of the transfer, a new bid.
        match byte {
            STX if self.scan != Scan::Discard => {
                // A frame cut short by noise is abandoned without a reply; the sender's timer
                // or the next frame sorts it out.
                self.frame.clear();
                self.frame.push(STX);
                self.scan = Scan::Body;
                return Step::Nothing;
            }
            EOT => return Step::End,
            ENQ => return Step::Enq,
            _ => {}
        }
        match self.scan {
            Scan::Idle => Step::Nothing,
            Scan::Body => {
                self.frame.push(byte);
                if byte == ETB || byte == ETX {
                    self.scan = Scan::Checksum(0);
                } else if self.frame.len() > FRAME_HEAD_MAX {
                    // E1381-02 §6.3.1: at most 247 characters per frame. Stop storing; the
                    // frame is rejected when it ends.
                    self.frame.clear();
                    self.scan = Scan::Discard;
                }
                Step::Nothing
            }
            Scan::Checksum(read) => {
                self.frame.push(byte);
                self.scan = if read == 1 { Scan::Cr } else { Scan::Checksum(read + 1) };
                Step::Nothing
            }
            Scan::Cr => {
                self.scan = Scan::Idle;
                if byte == CR {
                    self.frame.push(CR);
                    self.accept(now)
                } else {
                    self.reply(NAK, now)
                }
            }
            Scan::Discard => {
                if byte == LF {
                    self.scan = Scan::Idle;
                    self.reply(NAK, now)
                } else {
                    Step::Nothing
                }
            }
        }
    }

    /// Judges the frame just read and answers it (E1381-02 §6.3.4, §6.5.1).
    fn accept(&mut self, now: Instant) -> Step {
        let frame = mem::take(&mut self.frame);
        let mut held = None;
        let reply = match frame::decode(&frame) {
            // E1381-02 §6.5.1.1: a frame with a bad checksum or format is rejected.
            Err(_) => NAK,
            Ok(decoded) if decoded.number == self.expected => {
                if self.too_large || self.bytes + decoded.text.len() > MESSAGE_BYTES_MAX {
                    self.too_large = true;
                    NAK
                } else {
                    let before = self.snapshot();
                    self.bytes += decoded.text.len();
                    self.take_text(decoded.text, decoded.end);
                    self.last = Some(decoded.number);
                    // E1381-02 §6.3.2: frame numbers count modulo 8.
                    self.expected = (decoded.number + 1) % 8;
                    if self.defer_final_ack
                        && let Some(delivered) = self.terminated_up_to(before.records)
                    {
                        held = Some(Pending { before, delivered });
                    }
                    ACK
                }
            }
            // E1381-02 §6.3.2: a frame with the number of the last accepted one is a
            // retransmission (the sender missed the ACK): acknowledge it and discard it.
            Ok(decoded) if Some(decoded.number) == self.last => ACK,
            // Any other frame number is out of sequence.
            Ok(_) => NAK,
        };
        self.frame = frame;
        self.frame.clear();
        if let Some(pending) = held {
            // The reply waits for the caller, who must decide within the receive timeout of
            // the frame's arrival.
            self.deadline = later(now, RECEIVE_TIMEOUT);
            let records = self.records[..pending.delivered].to_vec();
            self.pending = Some(pending);
            return Step::Hold(records);
        }
        Step::Reply(self.replied(reply, now))
    }

    /// Notes `reply` as sent at `now`: E1381-02 §6.5.2.2, the receiver's timer restarts with
    /// each reply.
    fn replied(&mut self, reply: u8, now: Instant) -> u8 {
        self.last_reply = Some(reply);
        self.deadline = later(now, RECEIVE_TIMEOUT);
        reply
    }

    /// What [`Receiver::restore`] needs to forget the next frame. Cheap: the open record is
    /// kept by length only, since the frame only ever appends to it.
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            expected: self.expected,
            last: self.last,
            records: self.records.len(),
            partial: self.partial.len(),
            record_open: self.record_open,
            bytes: self.bytes,
        }
    }

    /// Forgets everything taken since `before` was taken (one frame's text).
    fn restore(&mut self, before: Snapshot) {
        // The record open before the frame is the start of the first record the frame
        // completed, or else of the record still open.
        let mut partial = match self.records.get_mut(before.records) {
            Some(first) => mem::take(first),
            None => mem::take(&mut self.partial),
        };
        partial.truncate(before.partial);
        self.records.truncate(before.records);
        self.partial = partial;
        self.expected = before.expected;
        self.last = before.last;
        self.record_open = before.record_open;
        self.bytes = before.bytes;
    }

    /// If a terminator record was completed among the records from index `from` on, how many
    /// records the message it ends spans from the start (the index after the last such
    /// terminator).
    fn terminated_up_to(&self, from: usize) -> Option<usize> {
        self.records[from..].iter().rposition(|r| is_terminator(r)).map(|i| from + i + 1)
    }

    fn reply(&mut self, reply: u8, now: Instant) -> Step {
        self.frame.clear();
        Step::Reply(self.replied(reply, now))
    }

    /// Appends accepted text to the records. CR ends a record (LIS02-A2 §5); an end frame
    /// (ETX) ends one too, so a sender that omits the last CR loses nothing. Several records
    /// in one frame, and one record over several frames, are both accepted.
    fn take_text(&mut self, text: &[u8], end: FrameEnd) {
        for &byte in text {
            if byte == CR {
                self.finish_record();
            } else {
                self.partial.push(byte);
            }
        }
        // E1381-02 §6.3.1: a message sent over frames is complete only at its end frame.
        self.record_open = end == FrameEnd::Intermediate;
        if end == FrameEnd::Final {
            self.finish_record();
        }
    }

    fn finish_record(&mut self) {
        if !self.partial.is_empty() {
            self.records.push(mem::take(&mut self.partial));
        }
    }
}

/// Splits a message into frames: each record (with its CR) starts a new frame and takes as
/// many intermediate frames as it needs, the last one an end frame (E1381-02 §6.3.1; LIS02-A2
/// §5). Frame numbers start at 1 and count modulo 8 across the whole transfer phase
/// (E1381-02 §6.3.2).
fn frames_for(records: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut number = 1u8;
    for record in records {
        let mut text = Vec::with_capacity(record.len() + 1);
        text.extend_from_slice(record);
        text.push(CR);
        let count = text.len().div_ceil(FRAME_TEXT_MAX);
        for (index, chunk) in text.chunks(FRAME_TEXT_MAX).enumerate() {
            let end = if index + 1 == count { FrameEnd::Final } else { FrameEnd::Intermediate };
            frames.push(frame::encode_checked(number, chunk, end));
            number = (number + 1) % 8;
        }
    }
    debug_assert!(frames.iter().all(|f| f.len() <= FRAME_BYTES_MAX));
    frames
}

/// Whether a record is a terminator (`L`, LIS02-A2 §12): the letter alone or followed by the
/// field delimiter, which the link does not know but is never a letter or digit.
fn is_terminator(record: &[u8]) -> bool {
    record.first() == Some(&b'L') && record.get(1).is_none_or(|b| !b.is_ascii_alphanumeric())
}

/// Bytes E1394 allows in record data (LIS02-A2 §5: 7, 9, 11, 12, 32–126, 128–254).
fn is_data_byte(byte: u8) -> bool {
    matches!(byte, 7 | 9 | 11 | 12 | 32..=126 | 128..=254)
}

/// `now + wait`, saturating at `now` in the unreachable case that the sum overflows the
/// platform's `Instant` (which would make the deadline fire at once rather than panic).
fn later(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait).unwrap_or(now)
}
