//! The ASTM instrument protocols, as pure state machines and codecs.
//!
//! Two layers, as the standards split them:
//!
//! - [`link`] — the low-level protocol of ASTM E1381 / CLSI LIS01-A2: establishment (`ENQ`),
//!   transfer (numbered, checksummed frames answered by `ACK`/`NAK`), termination (`EOT`),
//!   contention, retransmissions and timers. [`Link`] plays either role (instrument or
//!   computer system), sending and receiving on the same line.
//! - [`records`] — the message content of ASTM E1394 / CLSI LIS02-A2: header, patient, order,
//!   result, comment, request-information, terminator, scientific and manufacturer records, with
//!   the delimiters the header declares, escape sequences, typed views for what a laboratory
//!   information system reads, and a builder for what it writes (host-query answers).
//!
//! [`frame`] holds the E1381 frame codec shared by both directions.
//!
//! What this crate is not: it contains no networking code, no serial-port code, no tokio, and it
//! never reads the clock. Bytes and the current [`std::time::Instant`] go in
//! ([`Link::handle_input`], [`Link::handle_timeout`]); bytes to write, the next deadline and
//! events come out ([`Link::poll_transmit`], [`Link::poll_timeout`], [`Link::poll_event`]), in the
//! style of quinn-proto. The caller owns the socket and the clock, so whole conversations run in
//! tests in virtual time. It also knows nothing about the laboratory: mapping records to
//! specimens, tests and results belongs to the application, in one place.
//!
//! A receiver that must not acknowledge a message before the application has stored it sets
//! [`Config::defer_final_ack`]: the reply to the frame that completes the message is then the
//! caller's, through [`Link::acknowledge`] or [`Link::refuse`] (see [`link`]).
//!
//! # Example
//!
//! The LIS end of a line receives an instrument's host query and answers it:
//!
//! ```
//! use std::time::Instant;
//! use cuvette_astm::{Config, Delimiters, Event, Link, Message, MessageBuilder, RecordBuilder, Role};
//!
//! let mut lis = Link::new(Config::new(Role::Computer));
//! let now = Instant::now(); // the caller's clock; the link never reads one
//!
//! // Bytes read from the line: ENQ, two end frames, EOT.
//! lis.handle_input(b"\x05\x021H|\\^&\r\x03E5\r\n\x022Q|1|^SID7||^^^ALL\r\x031C\r\n\x04", now);
//! assert_eq!(lis.poll_transmit(), Some(vec![0x06])); // ACK the ENQ
//! assert_eq!(lis.poll_transmit(), Some(vec![0x06])); // ACK frame 1
//! assert_eq!(lis.poll_transmit(), Some(vec![0x06])); // ACK frame 2
//!
//! let Some(Event::MessageReceived(records)) = lis.poll_event() else { panic!() };
//! let query = Message::from_records(&records).unwrap();
//! let specimen = query.queries().next().unwrap().specimen_ids().next().unwrap().text();
//! assert_eq!(specimen, "SID7");
//!
//! let answer = MessageBuilder::new(Delimiters::STANDARD)
//!     .record(RecordBuilder::header())
//!     .record(RecordBuilder::patient(1))
//!     .record(RecordBuilder::order(1, &specimen, ["GLU"]).field(26, "Q"))
//!     .record(RecordBuilder::terminator("N"))
//!     .encode();
//! lis.send(answer, now).unwrap();
//! assert_eq!(lis.poll_transmit(), Some(vec![0x05])); // ENQ: bid for the line
//! assert_eq!(lis.poll_timeout(), Some(now + cuvette_astm::link::ESTABLISHMENT_TIMEOUT));
//! ```
//!
//! Clause numbers in comments: link-layer clauses are numbered as in ASTM E1381-02 §6 (adopted
//! as CLSI LIS01-A2); record clauses as in CLSI LIS02-A2 (ASTM E1394-97): §5 message
//! structure, §6 header, §7 patient, §8 test order, §9 result, §10 comment, §11 request
//! information, §12 terminator, §13 scientific, §14 manufacturer information.
#![deny(missing_docs)]

pub mod frame;
pub mod link;
pub mod records;

pub use frame::{Frame, FrameEnd, FrameError};
pub use link::{
    Config, Event, Link, MessageId, NothingPending, Phase, ReceiveAbort, Role, SendAbort, SendError,
};
pub use records::{
    Component, Delimiters, Field, Message, MessageBuilder, ParseError, Record, RecordBuilder,
    RecordType, Repeat,
};
