//! MLLP, the Minimal Lower Layer Protocol (HL7 v2.5.1 Appendix C, "Lower layer protocols",
//! and the HL7 Transport Specification MLLP Release 2): the block framing HL7 messages travel
//! in over TCP.
//!
//! ```text
//! <VT 0x0B> message bytes <FS 0x1C><CR 0x0D>
//! ```
//!
//! Sans-IO: [`MllpDeframer`] is fed whatever bytes a read returned and hands back whole frames;
//! the caller owns the socket, the timers and the decision to close. [`frame`] wraps a message
//! for sending.

use std::collections::VecDeque;

use memchr::{memchr, memchr2};

use crate::MESSAGE_BYTES_MAX;

/// Start block character VT.
pub const START_BLOCK: u8 = 0x0B;
/// End block character FS.
pub const END_BLOCK: u8 = 0x1C;
/// The carriage return that must follow [`END_BLOCK`].
pub const CARRIAGE_RETURN: u8 = 0x0D;

/// Default largest frame content a [`MllpDeframer`] accepts: the largest message the parser
/// accepts, so that nothing framed is refused by one and accepted by the other.
pub const MLLP_FRAME_BYTES_MAX: usize = MESSAGE_BYTES_MAX;

/// Wraps a message in an MLLP block: `VT message FS CR`.
///
/// The message must not contain VT or FS: HL7 text never does, and
/// [`MessageBuilder`](crate::MessageBuilder) escapes them (`\X0B\`, `\X1C\`).
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START_BLOCK);
    out.extend_from_slice(message);
    out.extend_from_slice(&[END_BLOCK, CARRIAGE_RETURN]);
    out
}

/// Finds MLLP frames in a byte stream, across reads of any size.
///
/// Rules (the block format of Appendix C, read the way a receiver must to stay in step):
///
/// - Bytes outside a frame — before a VT — are discarded and counted
///   ([`MllpDeframer::discarded_bytes`]).
/// - A frame ends at FS immediately followed by CR. When a read ends right after FS, the frame
///   is held until the next byte arrives: CR completes it. Any other byte after FS is a
///   protocol error ([`MllpError::MissingCarriageReturn`]): the frame is dropped, and if that
///   byte is a VT it starts the next frame.
/// - A VT inside an unfinished frame is a protocol error ([`MllpError::StartBlockInFrame`]):
///   the partial frame is dropped and a new frame starts at that VT.
/// - A frame whose content grows past the limit is refused as soon as it does
///   ([`MllpError::FrameTooLarge`]), so memory stays bounded; the rest of it is skipped up to
///   its FS CR, or up to the next VT, where reading resynchronises.
/// - An empty frame (`VT FS CR`) is yielded as an empty message; the parser refuses it.
///
/// Frames and errors come out of [`MllpDeframer::next_frame`] in stream order. There is no
/// timer here: a driver that sees [`MllpDeframer::is_mid_frame`] stay true past its idle
/// timeout calls [`MllpDeframer::reset`] or closes the connection.
///
/// ```
/// use cuvette_hl7::mllp::{MllpDeframer, frame};
///
/// let mut deframer = MllpDeframer::new();
/// let wire = [b"noise".as_slice(), &frame(b"MSH|^~\\&|A\r"), &frame(b"MSH|^~\\&|B\r")].concat();
/// let (first, second) = wire.split_at(9);
/// deframer.push(first);
/// assert!(deframer.next_frame().is_none());
/// deframer.push(second);
/// assert_eq!(deframer.next_frame(), Some(Ok(b"MSH|^~\\&|A\r".to_vec())));
/// assert_eq!(deframer.next_frame(), Some(Ok(b"MSH|^~\\&|B\r".to_vec())));
/// assert_eq!(deframer.next_frame(), None);
/// assert_eq!(deframer.discarded_bytes(), 5);
/// ```
#[derive(Debug, Clone)]
pub struct MllpDeframer {
    state: State,
    frame: Vec<u8>,
    frame_bytes_max: usize,
    ready: VecDeque<Result<Vec<u8>, MllpError>>,
    /// Stream offset of the next byte pushed.
    position: u64,
    /// Stream offset of the current frame's VT.
    frame_start: u64,
    discarded: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Outside a frame, looking for VT.
    Hunting,
    /// Inside a frame, collecting content.
    InFrame,
    /// Inside a frame, FS seen: CR must follow.
    EndBlock,
    /// Skipping the rest of an oversized frame; `after_fs` when the last byte was FS.
    Skipping { after_fs: bool },
}

impl MllpDeframer {
    /// A deframer accepting frames up to [`MLLP_FRAME_BYTES_MAX`].
    pub fn new() -> MllpDeframer {
        MllpDeframer::with_frame_bytes_max(MLLP_FRAME_BYTES_MAX)
    }

    /// A deframer accepting frames whose content is at most `frame_bytes_max` bytes.
    pub fn with_frame_bytes_max(frame_bytes_max: usize) -> MllpDeframer {
        MllpDeframer {
            state: State::Hunting,
            frame: Vec::new(),
            frame_bytes_max,
            ready: VecDeque::new(),
            position: 0,
            frame_start: 0,
            discarded: 0,
        }
    }

    /// The content limit in force.
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Feeds bytes as they were read; completed frames and errors queue up for
    /// [`MllpDeframer::next_frame`]. At most one partial frame (up to the limit) is buffered,
    /// plus whatever completed frames the caller has not taken yet.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let used = match self.state {
                State::Hunting => self.hunt(bytes),
                State::InFrame => self.collect(bytes),
                State::EndBlock => self.end_block(bytes[0]),
                State::Skipping { after_fs } => self.skip(bytes, after_fs),
            };
            self.position += used as u64;
            bytes = &bytes[used..];
        }
    }

    /// The next complete frame (its content, without VT and FS CR), or the next protocol
    /// error, in stream order; `None` until more bytes are pushed.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, MllpError>> {
        self.ready.pop_front()
    }

    /// The frames and errors ready now.
    pub fn frames(&mut self) -> impl Iterator<Item = Result<Vec<u8>, MllpError>> + '_ {
        std::iter::from_fn(|| self.next_frame())
    }

    /// Data bytes that reached no frame: bytes outside frames and the contents of dropped
    /// frames (block characters are not counted).
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded
    }

    /// Whether a frame has started and not ended (an oversized one being skipped included).
    pub fn is_mid_frame(&self) -> bool {
        self.state != State::Hunting
    }

    /// The content of the frame started and not yet ended, so a driver whose connection closes
    /// mid-frame can say what was cut off. Empty while an oversized frame is being skipped.
    pub fn partial_frame(&self) -> &[u8] {
        match self.state {
            State::InFrame | State::EndBlock => &self.frame,
            State::Hunting | State::Skipping { .. } => &[],
        }
    }

    /// Drops a partial frame, e.g. when the driver's idle timeout expires mid-frame, and
    /// returns to looking for VT; returns how many content bytes were dropped.
    pub fn reset(&mut self) -> usize {
        let dropped = self.frame.len();
        self.discarded += dropped as u64;
        self.frame.clear();
        self.state = State::Hunting;
        dropped
    }

    fn hunt(&mut self, bytes: &[u8]) -> usize {
        match memchr(START_BLOCK, bytes) {
            Some(at) => {
                self.discarded += at as u64;
                self.start_frame(self.position + at as u64);
                at + 1
            }
            None => {
                self.discarded += bytes.len() as u64;
                bytes.len()
            }
        }
    }

    fn collect(&mut self, bytes: &[u8]) -> usize {
        let special = memchr2(START_BLOCK, END_BLOCK, bytes);
        let data = &bytes[..special.unwrap_or(bytes.len())];
        if self.frame.len() + data.len() > self.frame_bytes_max {
            // Refuse now rather than buffer an unbounded frame.
            let kept = self.frame_bytes_max - self.frame.len();
            self.discarded += (self.frame.len() + kept) as u64;
            self.frame.clear();
            self.ready.push_back(Err(MllpError::FrameTooLarge {
                offset: self.frame_start,
                max: self.frame_bytes_max,
            }));
            self.state = State::Skipping { after_fs: false };
            return kept;
        }
        self.frame.extend_from_slice(data);
        match special {
            None => bytes.len(),
            Some(at) if bytes[at] == START_BLOCK => {
                let offset = self.position + at as u64;
                let dropped = self.frame.len();
                self.discarded += dropped as u64;
                self.ready.push_back(Err(MllpError::StartBlockInFrame { offset, dropped }));
                self.start_frame(offset);
                at + 1
            }
            Some(at) => {
                self.state = State::EndBlock;
                at + 1
            }
        }
    }

    fn end_block(&mut self, byte: u8) -> usize {
        if byte == CARRIAGE_RETURN {
            self.ready.push_back(Ok(std::mem::take(&mut self.frame)));
            self.state = State::Hunting;
            return 1;
        }
        let offset = self.position;
        let dropped = self.frame.len();
        self.discarded += dropped as u64;
        self.frame.clear();
        self.ready.push_back(Err(MllpError::MissingCarriageReturn {
            offset,
            found: byte,
            dropped,
        }));
        if byte == START_BLOCK {
            self.start_frame(offset);
        } else {
            self.discarded += 1;
            self.state = State::Hunting;
        }
        1
    }

    fn skip(&mut self, bytes: &[u8], after_fs: bool) -> usize {
        if after_fs {
            match bytes[0] {
                CARRIAGE_RETURN => self.state = State::Hunting,
                START_BLOCK => self.start_frame(self.position),
                END_BLOCK => {}
                _ => {
                    self.discarded += 1;
                    self.state = State::Skipping { after_fs: false };
                }
            }
            return 1;
        }
        match memchr2(START_BLOCK, END_BLOCK, bytes) {
            Some(at) => {
                self.discarded += at as u64;
                if bytes[at] == START_BLOCK {
                    self.start_frame(self.position + at as u64);
                } else {
                    self.state = State::Skipping { after_fs: true };
                }
                at + 1
            }
            None => {
                self.discarded += bytes.len() as u64;
                bytes.len()
            }
        }
    }

    fn start_frame(&mut self, offset: u64) {
        self.frame.clear();
        self.frame_start = offset;
        self.state = State::InFrame;
    }
}

impl Default for MllpDeframer {
    fn default() -> Self {
        MllpDeframer::new()
    }
}

/// An MLLP protocol error; `offset` counts bytes pushed since the deframer was created.
/// After each one the deframer has already resynchronised: keep pushing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MllpError {
    /// A VT arrived inside an unfinished frame (the sender restarted, or lost bytes). The
    /// partial frame was dropped; a new frame starts at this VT.
    #[error("start block at byte {offset} inside an unfinished frame: {dropped} bytes dropped")]
    StartBlockInFrame {
        /// Stream offset of the VT.
        offset: u64,
        /// Content bytes of the dropped frame.
        dropped: usize,
    },
    /// FS was followed by something other than CR. The frame was dropped; if `found` is VT a
    /// new frame starts there.
    #[error(
        "byte 0x{found:02X} at {offset} after the end block where CR belongs: {dropped} bytes dropped"
    )]
    MissingCarriageReturn {
        /// Stream offset of the byte after FS.
        offset: u64,
        /// That byte.
        found: u8,
        /// Content bytes of the dropped frame.
        dropped: usize,
    },
    /// The frame starting at `offset` grew past the limit. It was dropped, and the deframer
    /// skips to its end or to the next VT.
    #[error("frame starting at byte {offset} exceeds {max} bytes")]
    FrameTooLarge {
        /// Stream offset of the frame's VT.
        offset: u64,
        /// The limit.
        max: usize,
    },
}
