//! HL7 version 2 messages in the ER7 ("pipe") encoding, and the MLLP framing they travel in.
//!
//! What this crate is:
//!
//! - a parser, [`Message`], that borrows the bytes it reads: segments are indexed once, each
//!   segment's fields once when its view is made, and repetitions, components and
//!   subcomponents are slices of their field found on access, with escape sequences decoded
//!   only when asked ([`Field::decoded`]). Lenient by default, as receivers
//!   must be (BOM, LF line ends, blank lines, batches), and strict on request
//!   ([`Message::parse_strict`]) with errors that name the byte, segment and field;
//! - a writer, [`MessageBuilder`], that escapes data and ends segments with CR, and
//!   [`AckBuilder`] for the acknowledgment a receiver owes;
//! - an MLLP codec, [`mllp`]: [`mllp::MllpDeframer`] turns reads into frames, [`mllp::frame`]
//!   wraps a message.
//!
//! What it is not: it does no IO and keeps no time (sans-IO: the caller owns sockets, clocks
//! and timeouts, and passes timestamps and control IDs in); it knows nothing of laboratories,
//! orders or results, nor of message structures beyond the header and acknowledgment — mapping
//! OBX to an observation is the caller's business; and it never assumes text is UTF-8: values
//! are bytes until the caller asks for text, in the character set MSH-18 declares
//! ([`Charset`]).
//!
//! The target is HL7 v2.5.1; clause numbers in the documentation (§) refer to its chapter 2,
//! "Control". Earlier and later v2 versions share the encoding and parse the same way.
#![deny(missing_docs)]

mod ack;
mod build;
mod ed;
mod error;
mod escape;
mod message;
pub mod mllp;
mod path;
mod separators;

pub use ack::{
    AckBuilder, AckCode, AckCondition, AckMode, ErrSegment, ErrorCode, ErrorLocation, Severity,
};
pub use build::{BuildError, FIELD_NUMBER_MAX, FieldValue, MessageBuilder, SegmentBuilder};
pub use ed::{EdEncoding, EdError, decode_ed, media_type};
pub use error::ParseError;
pub use escape::{escape, unescape};
pub use message::{
    Charset, Component, Components, Field, Fields, MESSAGE_BYTES_MAX, Message, MessageType, Msh,
    Repetition, Repetitions, SEGMENTS_MAX, Segment, Segments, Subcomponent, Subcomponents, Value,
};
pub use path::{Path, PathError};
pub use separators::{SeparatorError, Separators};
