//! Why a byte string is not (or, in strict mode, not exactly) an HL7 v2 message.

use crate::SeparatorError;

/// Why [`Message::parse`](crate::Message::parse) or
/// [`Message::parse_strict`](crate::Message::parse_strict) refused the input.
///
/// Every variant that points into the input carries the byte `offset` (from the first byte of
/// the input, BOM included), and where a segment is concerned its `segment_index` (0-based, in
/// the order [`Message::segments`](crate::Message::segments) yields them; MSH is 0) and, where a
/// field is concerned, the HL7 field number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Both modes: the input is longer than the limit
    /// ([`MESSAGE_BYTES_MAX`](crate::MESSAGE_BYTES_MAX)); nothing was read.
    #[error("message is {bytes} bytes, more than the limit of {max}")]
    TooLarge {
        /// Length of the input.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Both modes: the input holds more segments than the limit
    /// ([`SEGMENTS_MAX`](crate::SEGMENTS_MAX)).
    #[error("more than {max} segments: segment starting at byte {offset} is one too many")]
    TooManySegments {
        /// Where the first segment over the limit starts.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// Both modes: the input is empty (leniently: holds only a BOM, whitespace and empty lines).
    #[error("no segment: the input is empty or only whitespace")]
    Empty,
    /// The first segment is not a header. Strict mode requires `MSH` at byte 0 (HL7 v2.5.1
    /// §2.6: a message begins with MSH); lenient mode, after a BOM and whitespace, also accepts
    /// a batch or file header (`BHS`, `FHS`, §2.10.3), which declares the delimiters the same way.
    #[error("expected MSH at byte {offset}, found \"{found}\"")]
    NotMsh {
        /// Where the segment starts.
        offset: usize,
        /// Its first bytes, escaped for display.
        found: String,
    },
    /// Lenient mode: the input starts with a batch or file header but holds no MSH at all, so
    /// there is no message in it.
    #[error("batch holds no MSH segment ({segments} segments read)")]
    MissingMsh {
        /// How many segments were read.
        segments: usize,
    },
    /// Both modes: the header segment ends before its field separator or its encoding
    /// characters (MSH-1, MSH-2), e.g. `MSH` alone or `MSH|` followed by the end of the segment.
    #[error("header segment ends at byte {offset} before declaring its separators (MSH-1, MSH-2)")]
    MissingSeparators {
        /// Where the header segment ends.
        offset: usize,
    },
    /// Both modes: MSH-1 and MSH-2 do not declare usable delimiters (§2.5.4).
    #[error("invalid separators at byte {offset}: {reason}")]
    InvalidSeparators {
        /// Where MSH-1 is (the byte after the segment ID).
        offset: usize,
        /// What is wrong with them.
        reason: SeparatorError,
    },
    /// Strict mode: the input starts with a UTF-8 byte order mark, which is not part of an HL7
    /// message (the character set is declared in MSH-18, not by a BOM).
    #[error("byte order mark at byte 0: strict mode requires MSH first")]
    ByteOrderMark,
    /// Strict mode: a segment is ended by LF (or CR LF). §2.6 and §2.5.2: the segment
    /// terminator is always CR (0x0D).
    #[error(
        "line feed at byte {offset} ends segment {segment_index}: the segment terminator is CR"
    )]
    LineFeedTerminator {
        /// Where the LF is.
        offset: usize,
        /// The segment it ends.
        segment_index: usize,
    },
    /// Strict mode: two segment terminators in a row (an empty segment), or a segment of
    /// whitespace only.
    #[error("empty segment at byte {offset} (would be segment {segment_index})")]
    EmptySegment {
        /// Where the empty segment starts.
        offset: usize,
        /// The index it would have had.
        segment_index: usize,
    },
    /// Strict mode: the last segment is not terminated by CR; every segment is (§2.6).
    #[error(
        "segment {segment_index} is not terminated by CR at the end of the input (byte {offset})"
    )]
    MissingSegmentTerminator {
        /// The end of the input.
        offset: usize,
        /// The unterminated segment.
        segment_index: usize,
    },
    /// Strict mode: a segment ID is not three characters `[A-Z][A-Z0-9]{2}` followed by the
    /// field separator or the segment terminator (§2.5.2).
    #[error("invalid segment ID \"{found}\" at byte {offset} (segment {segment_index})")]
    InvalidSegmentId {
        /// Where the segment starts.
        offset: usize,
        /// The segment.
        segment_index: usize,
        /// Its first bytes up to the field separator, escaped for display.
        found: String,
    },
    /// Strict mode: a segment seems to have lost its terminator and swallowed the next one: a
    /// field ends in a segment ID glued to data, and the field after it looks like that
    /// segment's first field (e.g. `GT1|…|Walmart^LORC|NW|…`: ORC-1 is an order control code).
    /// [`Message::parse_strict`](crate::Message::parse_strict) lists the IDs and what is checked
    /// after them.
    #[error(
        "segment {segment_index} field {field} ends in \"{found}\" at byte {offset}: \
         a segment glued on after a lost CR"
    )]
    GluedSegment {
        /// Where the glued segment ID starts.
        offset: usize,
        /// The segment that swallowed it.
        segment_index: usize,
        /// The field (HL7 number) whose end is the glued ID.
        field: usize,
        /// The glued segment ID.
        found: String,
    },
    /// Strict mode: a field the standard requires in MSH is empty (v2.5.1 §2.14.9: MSH-7
    /// date/time of message, MSH-9 message type, MSH-10 control ID, MSH-11 processing ID and
    /// MSH-12 version ID are R).
    #[error("required field MSH-{field} ({name}) is empty")]
    MissingRequiredField {
        /// Where MSH starts.
        offset: usize,
        /// The field number.
        field: usize,
        /// Its name in the standard.
        name: &'static str,
    },
    /// Strict mode: a second MSH; a message has exactly one (§2.6). Batches are read leniently.
    #[error("second MSH at byte {offset} (segment {segment_index}): one message has one MSH")]
    UnexpectedMsh {
        /// Where it starts.
        offset: usize,
        /// Its index.
        segment_index: usize,
    },
}

impl ParseError {
    /// The byte offset the error points at, when it points at one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            ParseError::TooLarge { .. } | ParseError::Empty | ParseError::MissingMsh { .. } => None,
            ParseError::ByteOrderMark => Some(0),
            ParseError::TooManySegments { offset, .. }
            | ParseError::NotMsh { offset, .. }
            | ParseError::MissingSeparators { offset }
            | ParseError::InvalidSeparators { offset, .. }
            | ParseError::LineFeedTerminator { offset, .. }
            | ParseError::EmptySegment { offset, .. }
            | ParseError::MissingSegmentTerminator { offset, .. }
            | ParseError::InvalidSegmentId { offset, .. }
            | ParseError::GluedSegment { offset, .. }
            | ParseError::MissingRequiredField { offset, .. }
            | ParseError::UnexpectedMsh { offset, .. } => Some(*offset),
        }
    }
}
