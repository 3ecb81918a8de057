//! E1381 frames: `STX FN text ETB|ETX C1 C2 CR LF`.
//!
//! A frame carries at most [`FRAME_TEXT_MAX`] characters of message text. The frame number
//! `FN` is one ASCII digit counting 1, 2, … 7, 0, 1, … within a transfer phase; the checksum
//! `C1 C2` is the modulo-256 sum of every byte after `STX` up to and including `ETB` or `ETX`,
//! written as two uppercase hexadecimal characters (E1381-02 §6.3.1–§6.3.3).

use thiserror::Error;

/// Start of text: opens a frame.
pub const STX: u8 = 0x02;
/// End of text: closes the last frame of a message (an end frame).
pub const ETX: u8 = 0x03;
/// End of transmission: ends the transfer phase, or asks the sender to stop (receiver
/// interrupt).
pub const EOT: u8 = 0x04;
/// Enquiry: bids for the line (establishment phase).
pub const ENQ: u8 = 0x05;
/// Acknowledge: the line is granted, or a frame was accepted.
pub const ACK: u8 = 0x06;
/// Line feed: the last character of a frame.
pub const LF: u8 = 0x0A;
/// Carriage return: ends a record, and precedes the frame's closing `LF`.
pub const CR: u8 = 0x0D;
/// Negative acknowledge: the line is busy, or a frame was rejected.
pub const NAK: u8 = 0x15;
/// End of transmission block: closes an intermediate frame of a message split over frames.
pub const ETB: u8 = 0x17;

/// The most message text characters one frame carries (E1381-02 §6.3.1: a frame is at most 247
/// characters, 7 of which are the frame's own overhead).
pub const FRAME_TEXT_MAX: usize = 240;

/// The most bytes one frame takes on the wire, from `STX` to `LF` (E1381-02 §6.3.1).
pub const FRAME_BYTES_MAX: usize = 247;

/// Bytes a frame adds around its text: `STX FN` before, `ETB|ETX C1 C2 CR LF` after.
const FRAME_OVERHEAD: usize = FRAME_BYTES_MAX - FRAME_TEXT_MAX;

/// How a frame ends, which says whether the message continues in the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameEnd {
    /// `ETB`: an intermediate frame; the text continues in the next frame.
    Intermediate,
    /// `ETX`: an end frame; the text it completes ends here.
    Final,
}

impl FrameEnd {
    /// The control character that closes a frame of this kind.
    pub fn byte(self) -> u8 {
        match self {
            FrameEnd::Intermediate => ETB,
            FrameEnd::Final => ETX,
        }
    }
}

/// One decoded frame, borrowing its text from the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The frame number, `0..=7`.
    pub number: u8,
    /// The message text the frame carries (between `FN` and `ETB`/`ETX`).
    pub text: &'a [u8],
    /// Whether the frame is intermediate (`ETB`) or an end frame (`ETX`).
    pub end: FrameEnd,
}

/// Why bytes are not a valid frame. Each case is a reason for the receiver to answer `NAK`
/// (E1381-02 §6.5.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The bytes do not start with `STX`.
    #[error("a frame starts with STX")]
    MissingStx,
    /// The frame is longer than the standard allows.
    #[error("frame is {len} bytes, more than the limit of {limit}")]
    TooLong {
        /// The frame's length in bytes.
        len: usize,
        /// [`FRAME_BYTES_MAX`].
        limit: usize,
    },
    /// Text handed to [`encode`] is longer than one frame carries.
    #[error("frame text is {len} bytes, more than the limit of {limit}")]
    TextTooLong {
        /// The text's length in bytes.
        len: usize,
        /// [`FRAME_TEXT_MAX`].
        limit: usize,
    },
    /// A frame number outside `0..=7` was given to [`encode`].
    #[error("frame number {number} is not 0..=7")]
    FrameNumberOutOfRange {
        /// The number given.
        number: u8,
    },
    /// The character after `STX` is not a digit `0`–`7`.
    #[error("frame number {found:#04x} is not an ASCII digit 0-7")]
    InvalidFrameNumber {
        /// The byte found where the frame number belongs.
        found: u8,
    },
    /// Neither `ETB` nor `ETX` closes the text, or it is not followed by exactly
    /// `C1 C2 CR` and an optional `LF`.
    #[error("frame does not end with ETB|ETX C1 C2 CR LF")]
    MalformedTrailer,
    /// The text contains a character that may never appear in message text (E1381-02 §6.6).
    #[error("frame text holds restricted character {byte:#04x} at offset {offset}")]
    RestrictedCharacter {
        /// The offending byte.
        byte: u8,
        /// Its offset within the text.
        offset: usize,
    },
    /// `C1 C2` are not two hexadecimal digits.
    #[error("checksum characters are not two hexadecimal digits")]
    InvalidChecksumDigits,
    /// The checksum does not match the frame's content.
    #[error("checksum is {found:02X}, the frame's content sums to {computed:02X}")]
    ChecksumMismatch {
        /// The checksum the frame carries.
        found: u8,
        /// The checksum of the bytes received.
        computed: u8,
    },
}

/// The E1381 checksum of `bytes`: their sum modulo 256 (E1381-02 §6.3.3). Pass the bytes after
/// `STX` up to and including `ETB`/`ETX`.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

/// Writes one frame: `STX FN text ETB|ETX C1 C2 CR LF`, the checksum in uppercase hexadecimal.
pub fn encode(number: u8, text: &[u8], end: FrameEnd) -> Result<Vec<u8>, FrameError> {
    if number > 7 {
        return Err(FrameError::FrameNumberOutOfRange { number });
    }
    if text.len() > FRAME_TEXT_MAX {
        return Err(FrameError::TextTooLong { len: text.len(), limit: FRAME_TEXT_MAX });
    }
    if let Some(offset) = text.iter().position(|&b| is_restricted(b)) {
        return Err(FrameError::RestrictedCharacter { byte: text[offset], offset });
    }
    Ok(encode_checked(number, text, end))
}

/// Reads one frame from `bytes` (`STX` through `CR`, with or without the closing `LF`).
///
/// The checksum digits are accepted in either case and compared as numbers, as E1381-02 §6.3.3
/// describes the value, not its spelling. The frame number is returned as found; whether it is
/// the one expected is the receiver's decision ([`crate::Link`]).
pub fn decode(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    if bytes.len() > FRAME_BYTES_MAX {
        return Err(FrameError::TooLong { len: bytes.len(), limit: FRAME_BYTES_MAX });
    }
    let rest = bytes.strip_prefix(&[STX]).ok_or(FrameError::MissingStx)?;
    let rest = rest.strip_suffix(&[LF]).unwrap_or(rest);
    let rest = rest.strip_suffix(&[CR]).ok_or(FrameError::MalformedTrailer)?;
    // `rest` is now `FN text ETB|ETX C1 C2`.
    if rest.len() < 4 {
        return Err(FrameError::MalformedTrailer);
    }
    let (body, digits) = rest.split_at(rest.len() - 2);
    let (&end_byte, before_end) = body.split_last().ok_or(FrameError::MalformedTrailer)?;
    let end = match end_byte {
        ETB => FrameEnd::Intermediate,
        ETX => FrameEnd::Final,
        _ => return Err(FrameError::MalformedTrailer),
    };
    let (&fn_byte, text) = before_end.split_first().ok_or(FrameError::MalformedTrailer)?;
    if !(b'0'..=b'7').contains(&fn_byte) {
        return Err(FrameError::InvalidFrameNumber { found: fn_byte });
    }
    if let Some(offset) = text.iter().position(|&b| is_restricted(b)) {
        return Err(FrameError::RestrictedCharacter { byte: text[offset], offset });
    }
    let found = match (hex_value(digits[0]), hex_value(digits[1])) {
        (Some(hi), Some(lo)) => hi << 4 | lo,
        _ => return Err(FrameError::InvalidChecksumDigits),
    };
    let computed = checksum(body);
    if found != computed {
        return Err(FrameError::ChecksumMismatch { found, computed });
    }
    Ok(Frame { number: fn_byte - b'0', text, end })
}

/// Characters that may never appear in message text, because the link layer gives them meaning
/// (E1381-02 §6.6): SOH, STX, ETX, EOT, ENQ, ACK, DLE, NAK, SYN, ETB, LF, DC1–DC4. CR is
/// allowed: it ends records inside the text.
pub fn is_restricted(byte: u8) -> bool {
    matches!(byte, 0x01..=0x06 | LF | 0x10..=0x17)
}

/// [`encode`] for arguments the caller has already checked.
pub(crate) fn encode_checked(number: u8, text: &[u8], end: FrameEnd) -> Vec<u8> {
    debug_assert!(number <= 7 && text.len() <= FRAME_TEXT_MAX);
    let mut frame = Vec::with_capacity(text.len() + FRAME_OVERHEAD);
    frame.push(STX);
    frame.push(b'0' + number);
    frame.extend_from_slice(text);
    frame.push(end.byte());
    let sum = checksum(&frame[1..]);
    frame.push(HEX_UPPER[usize::from(sum >> 4)]);
    frame.push(HEX_UPPER[usize::from(sum & 0x0F)]);
    frame.push(CR);
    frame.push(LF);
    frame
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_checksum(body: &[u8], expected: &str) {
        assert_eq!(format!("{:02X}", checksum(body)), expected);
    }

    #[test]
    fn checksum_vectors() {
        // python-astm codec tests and the corpus sessions.
        check_checksum(b"1H\r\x03", "89");
        check_checksum(b"1A|B|C|D\r\x03", "BF");
        check_checksum(b"1foo|1\r\x03", "32");
        check_checksum(b"1H|foo\x17", "50");
        check_checksum(b"7G\r\x03", "8E");
        check_checksum(b"0H\r\x03", "88");
    }

    #[test]
    fn encode_then_decode() {
        let frame = encode(1, b"A|B|C|D\r", FrameEnd::Final).unwrap();
        assert_eq!(frame, b"\x021A|B|C|D\r\x03BF\r\n");
        let decoded = decode(&frame).unwrap();
        assert_eq!(decoded, Frame { number: 1, text: b"A|B|C|D\r", end: FrameEnd::Final });
    }

    #[test]
    fn decode_accepts_lowercase_checksum_and_missing_lf() {
        let frame = decode(b"\x021H|foo\x1750\r").unwrap();
        assert_eq!(frame.end, FrameEnd::Intermediate);
        assert!(decode(b"\x021A|B|C|D\r\x03bf\r\n").is_ok());
    }

    #[test]
    fn decode_rejects() {
        use FrameError::*;
        let cases: &[(&[u8], FrameError)] = &[
            (b"1A\r\x0382\r\n", MissingStx),
            (b"\x021A\r\x0382\n", MalformedTrailer),
            (b"\x021A\r82\r\n", MalformedTrailer),
            (b"\x028A\r\x0389\r\n", InvalidFrameNumber { found: b'8' }),
            (b"\x021A\r\x03G2\r\n", InvalidChecksumDigits),
            (b"\x021A\r\x0300\r\n", ChecksumMismatch { found: 0, computed: 0x82 }),
            (b"\x021A\x10\r\x0392\r\n", RestrictedCharacter { byte: 0x10, offset: 1 }),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode(bytes).unwrap_err(), *expected, "{bytes:?}");
        }
        let long = encode_checked(1, &[b'x'; FRAME_TEXT_MAX], FrameEnd::Final);
        assert!(decode(&long).is_ok());
        let mut too_long = long.clone();
        too_long.insert(2, b'x');
        assert_eq!(decode(&too_long).unwrap_err(), TooLong { len: 248, limit: 247 });
    }

    #[test]
    fn encode_rejects_what_a_receiver_would() {
        assert!(matches!(
            encode(8, b"", FrameEnd::Final),
            Err(FrameError::FrameNumberOutOfRange { .. })
        ));
        assert!(matches!(
            encode(1, &[b'x'; 241], FrameEnd::Final),
            Err(FrameError::TextTooLong { len: 241, limit: 240 })
        ));
        assert!(matches!(
            encode(1, b"a\nb", FrameEnd::Final),
            Err(FrameError::RestrictedCharacter { byte: LF, offset: 1 })
        ));
    }
}
