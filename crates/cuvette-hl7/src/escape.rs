//! Escape sequences in data (HL7 v2.5.1 §2.7, "Use of escape sequences in text fields").
//!
//! Decoding happens on access, after a value has been split into its repetitions, components
//! and subcomponents, so an escaped delimiter (`\S\`) is data and never structure (§2.7: the
//! receiver splits on delimiters first and interprets escape sequences inside the pieces).
//!
//! What [`unescape`] does with each sequence (`\` stands for the declared escape character):
//!
//! | sequence | §      | decoded to |
//! |---|---|---|
//! | `\F\` `\S\` `\T\` `\R\` `\E\` | 2.7.4 | the declared field, component, subcomponent, repetition or escape character |
//! | `\P\` | v2.7 | the declared truncation character; kept literally when MSH-2 declares none |
//! | `\Xhh…\` | 2.7.5 | the bytes the hexadecimal pairs spell, in the message's character set |
//! | `\.br\` | 2.7.6 | CR (0x0D), the line break of formatted text, as python-hl7 decodes it |
//! | `\H\` `\N\`, other `\.xx\` formatting, `\Zxx\`, `\Cxxyy\`, `\Mxxyyzz\` | 2.7.1–2.7.7 | kept literally: they mean presentation or a character-set switch that plain bytes cannot carry |
//!
//! A sequence that is unknown or malformed (odd or non-hex `\X`, an empty `\\`) is kept
//! literally, and so is an escape character without a closing one: decoding never fails and
//! never drops a byte.

use std::borrow::Cow;

use memchr::memchr;

use crate::Separators;

/// Decodes the escape sequences of one value (see the module documentation for the table).
///
/// Borrows when `raw` holds no escape character, which is the common case.
pub fn unescape<'a>(raw: &'a [u8], separators: &Separators) -> Cow<'a, [u8]> {
    let esc = separators.escape();
    let Some(first) = memchr(esc, raw) else {
        return Cow::Borrowed(raw);
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut at = first;
    while at < raw.len() {
        // Invariant: raw[at] is the escape character.
        let body_start = at + 1;
        let Some(len) = memchr(esc, &raw[body_start..]) else {
            // §2.7: a sequence is closed by the escape character; without one the rest is data.
            out.extend_from_slice(&raw[at..]);
            break;
        };
        let body = &raw[body_start..body_start + len];
        let end = body_start + len + 1;
        if !decode_sequence(body, separators, &mut out) {
            out.extend_from_slice(&raw[at..end]);
        }
        match memchr(esc, &raw[end..]) {
            Some(next) => {
                out.extend_from_slice(&raw[end..end + next]);
                at = end + next;
            }
            None => {
                out.extend_from_slice(&raw[end..]);
                break;
            }
        }
    }
    Cow::Owned(out)
}

/// Escapes data so that it can stand in a field, component or subcomponent.
///
/// Every delimiter becomes its escape sequence — the escape character itself first in the
/// sense that it is never left bare, so `\` becomes `\E\` and never starts a sequence by
/// accident (§2.7.4). CR and LF, which would end the segment, and VT (0x0B) and FS (0x1C), which
/// would break MLLP framing, become `\X0D\`, `\X0A\`, `\X0B\` and `\X1C\` (§2.7.5). Other bytes
/// are copied: non-ASCII bytes are valid in the character set MSH-18 declares.
///
/// `unescape(escape(x)) == x` for every byte string `x`.
pub fn escape<'a>(data: &'a [u8], separators: &Separators) -> Cow<'a, [u8]> {
    if !data.iter().any(|&b| needs_escape(b, separators)) {
        return Cow::Borrowed(data);
    }
    let mut out = Vec::with_capacity(data.len() + 8);
    escape_into(data, separators, &mut out);
    Cow::Owned(out)
}

/// [`escape`] appending to `out`.
pub(crate) fn escape_into(data: &[u8], separators: &Separators, out: &mut Vec<u8>) {
    let esc = separators.escape();
    for &b in data {
        if !needs_escape(b, separators) {
            out.push(b);
            continue;
        }
        out.push(esc);
        match b {
            _ if b == separators.field() => out.push(b'F'),
            _ if b == separators.component() => out.push(b'S'),
            _ if b == separators.subcomponent() => out.push(b'T'),
            _ if b == separators.repetition() => out.push(b'R'),
            _ if b == esc => out.push(b'E'),
            _ if Some(b) == separators.truncation() => out.push(b'P'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.extend_from_slice(&[b'X', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
            }
        }
        out.push(esc);
    }
}

fn needs_escape(b: u8, separators: &Separators) -> bool {
    matches!(b, b'\r' | b'\n' | 0x0B | 0x1C) || separators.is_delimiter(b)
}

/// Appends what the sequence `body` (between the escape characters) stands for; false when it
/// is not one this decoder replaces, so the caller keeps it literally.
fn decode_sequence(body: &[u8], separators: &Separators, out: &mut Vec<u8>) -> bool {
    let byte = match body {
        b"F" => separators.field(),
        b"S" => separators.component(),
        b"T" => separators.subcomponent(),
        b"R" => separators.repetition(),
        b"E" => separators.escape(),
        b"P" => match separators.truncation() {
            Some(t) => t,
            None => return false,
        },
        b".br" => b'\r',
        [b'X', hex @ ..] => return decode_hex(hex, out),
        _ => return false,
    };
    out.push(byte);
    true
}

/// §2.7.5: `\Xdddd…\`, pairs of hexadecimal digits, each pair one byte.
fn decode_hex(hex: &[u8], out: &mut Vec<u8>) -> bool {
    if hex.is_empty() || !hex.len().is_multiple_of(2) || !hex.iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    out.extend(hex.chunks_exact(2).map(|pair| (nibble(pair[0]) << 4) | nibble(pair[1])));
    true
}

fn nibble(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, decoded: &[u8]) {
        let got = unescape(raw.as_bytes(), &Separators::STANDARD);
        assert_eq!(
            got.as_ref(),
            decoded,
            "{raw:?} decoded to {:?}",
            got.escape_ascii().to_string()
        );
    }

    #[test]
    fn delimiters() {
        check(r"\F\", b"|");
        check(r"\S\", b"^");
        check(r"\T\", b"&");
        check(r"\R\", b"~");
        check(r"\E\", b"\\");
        check(r"a\S\b\T\c", b"a^b&c");
        check(r"Cost \T\ Benefit", b"Cost & Benefit");
    }

    #[test]
    fn hex_and_line_break() {
        check(r"\X20202020\", b"    ");
        check(r"\Xe1\\Xe9\\Xed\\Xf3\\Xfa\", b"\xe1\xe9\xed\xf3\xfa");
        check(r"\X0D0A\", b"\r\n");
        check(r"line 1\.br\line 2", b"line 1\rline 2");
    }

    #[test]
    fn kept_literally() {
        check(r"\H\text\N\", br"\H\text\N\");
        check(r"\.sp2\", br"\.sp2\");
        check(r"\Zlocal\", br"\Zlocal\");
        check(r"\X\ \X1\ \XZZ\", br"\X\ \X1\ \XZZ\");
        check(r"\P\", br"\P\");
        check(r"\\", br"\\");
        check(r"unterminated \F", br"unterminated \F");
        check(r"C:\temp\file", br"C:\temp\file");
        check(r"a\F\b\", br"a|b\");
    }

    #[test]
    fn truncation_when_declared() {
        let five = Separators::new(b'|', b"^~\\&#").unwrap();
        assert_eq!(unescape(br"\P\", &five).as_ref(), b"#");
        assert_eq!(escape(b"#", &five).as_ref(), br"\P\");
        assert_eq!(escape(b"#", &Separators::STANDARD).as_ref(), b"#");
    }

    #[test]
    fn escape_escape_char_first() {
        let e = |s: &[u8]| escape(s, &Separators::STANDARD).into_owned();
        assert_eq!(e(b"\\"), br"\E\");
        assert_eq!(e(b"|"), br"\F\");
        assert_eq!(e(b"^"), br"\S\");
        assert_eq!(e(b"&"), br"\T\");
        assert_eq!(e(b"~"), br"\R\");
        assert_eq!(e(br"\F\"), br"\E\F\E\");
        assert_eq!(e(b"a\r\nb\x0b\x1c"), br"a\X0D\\X0A\b\X0B\\X1C\");
        assert!(matches!(escape(b"plain", &Separators::STANDARD), Cow::Borrowed(_)));
        assert!(matches!(unescape(b"plain", &Separators::STANDARD), Cow::Borrowed(_)));
    }
}
