//! Encapsulated data (HL7 v2.5.1 §2A.24, data type ED): a file carried in a field, such as
//! the PDF report or histogram image an analyzer sends in OBX-5.
//!
//! ED is `source^type of data^data subtype^encoding^data`. The caller reads the components
//! (escape sequences decoded, as [`Component::decoded`](crate::Component::decoded) gives
//! them) and this module turns the data back into the file's bytes, in one of the encodings
//! of HL7 table 0299:
//!
//! | OBX-5.4 | the data is |
//! |---|---|
//! | `A` | the bytes themselves, displayable ASCII (escape sequences already decoded) |
//! | `Hex` | two hexadecimal digits per byte |
//! | `Base64` | RFC 4648 §4 Base64 |
//!
//! Analyzers break long Base64 or hex data into lines, with CR LF written as escape
//! sequences (`\X0D0A\`, `\.br\`); whitespace between the characters of Base64 or hex data is
//! therefore ignored. Any other character is an error naming where it is: a file read wrong
//! is a report changed, so nothing is guessed.

use std::fmt;

/// How the data component of an ED value is encoded (HL7 table 0299).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdEncoding {
    /// `A`: no encoding, the data is displayable ASCII.
    Ascii,
    /// `Hex`: hexadecimal, two digits per byte.
    Hex,
    /// `Base64`.
    Base64,
}

impl EdEncoding {
    /// Reads OBX-5.4 (table 0299), whatever the case (`BASE64` is common).
    pub fn parse(code: &str) -> Option<EdEncoding> {
        match code.trim().to_ascii_uppercase().as_str() {
            "A" => Some(EdEncoding::Ascii),
            "HEX" => Some(EdEncoding::Hex),
            "BASE64" => Some(EdEncoding::Base64),
            _ => None,
        }
    }

    /// The code as table 0299 spells it.
    pub fn code(self) -> &'static str {
        match self {
            EdEncoding::Ascii => "A",
            EdEncoding::Hex => "Hex",
            EdEncoding::Base64 => "Base64",
        }
    }
}

/// Why the data of an ED value cannot be decoded. Offsets count bytes of the data component
/// after its escape sequences were decoded, from 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdError {
    /// OBX-5.4 names no encoding of table 0299 (empty when it is missing).
    UnknownEncoding(String),
    /// A byte that cannot be part of data in this encoding.
    InvalidByte {
        /// The encoding declared.
        encoding: EdEncoding,
        /// The byte.
        byte: u8,
        /// Where it is.
        offset: usize,
    },
    /// The data ends in the middle of a byte: Base64 whose length leaves one character over,
    /// or hex with an odd number of digits.
    Truncated {
        /// The encoding declared.
        encoding: EdEncoding,
    },
    /// Base64 padding (`=`) followed by more data.
    DataAfterPadding {
        /// Where the data after the padding starts.
        offset: usize,
    },
    /// No data at all.
    Empty,
}

impl fmt::Display for EdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EdError::UnknownEncoding(code) if code.is_empty() => {
                f.write_str("the encoding (OBX-5.4) is missing: send Base64, Hex or A")
            }
            EdError::UnknownEncoding(code) => write!(
                f,
                "encoding {code:?} (OBX-5.4) is not read: send Base64, Hex or A (HL7 table 0299)"
            ),
            EdError::InvalidByte { encoding, byte, offset } => {
                let shown = if byte.is_ascii_graphic() {
                    format!("{:?}", char::from(*byte))
                } else {
                    format!("byte 0x{byte:02X}")
                };
                write!(
                    f,
                    "the data (OBX-5.5) is not {}: {shown} at character {} of the data",
                    encoding.code(),
                    offset + 1
                )
            }
            EdError::Truncated { encoding } => write!(
                f,
                "the data (OBX-5.5) is not {}: it ends in the middle of a byte (cut off?)",
                encoding.code()
            ),
            EdError::DataAfterPadding { offset } => write!(
                f,
                "the data (OBX-5.5) is not Base64: data after the padding at character {}",
                offset + 1
            ),
            EdError::Empty => f.write_str("the data (OBX-5.5) is empty"),
        }
    }
}

impl std::error::Error for EdError {}

/// Decodes the data component of an ED value (escape sequences already decoded) in the
/// encoding `encoding` (OBX-5.4 as sent) names.
pub fn decode_ed(encoding: &str, data: &[u8]) -> Result<Vec<u8>, EdError> {
    let encoding =
        EdEncoding::parse(encoding).ok_or_else(|| EdError::UnknownEncoding(encoding.into()))?;
    let bytes = match encoding {
        EdEncoding::Ascii => match data.iter().position(|b| !b.is_ascii()) {
            Some(offset) => {
                return Err(EdError::InvalidByte { encoding, byte: data[offset], offset });
            }
            None => data.to_vec(),
        },
        EdEncoding::Hex => decode_hex(data)?,
        EdEncoding::Base64 => decode_base64(data)?,
    };
    if bytes.is_empty() {
        return Err(EdError::Empty);
    }
    Ok(bytes)
}

fn decode_hex(data: &[u8]) -> Result<Vec<u8>, EdError> {
    let mut out = Vec::with_capacity(data.len() / 2);
    let mut high: Option<u8> = None;
    for (offset, &byte) in data.iter().enumerate() {
        if byte.is_ascii_whitespace() {
            continue;
        }
        let Some(nibble) = char::from(byte).to_digit(16) else {
            return Err(EdError::InvalidByte { encoding: EdEncoding::Hex, byte, offset });
        };
        let nibble = nibble as u8; // a hex digit is below 16
        match high.take() {
            None => high = Some(nibble),
            Some(h) => out.push(h << 4 | nibble),
        }
    }
    if high.is_some() {
        return Err(EdError::Truncated { encoding: EdEncoding::Hex });
    }
    Ok(out)
}

/// The value of a Base64 character (RFC 4648 table 1), `None` for any other byte.
fn base64_value(byte: u8) -> Option<u32> {
    Some(u32::from(match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    }))
}

fn decode_base64(data: &[u8]) -> Result<Vec<u8>, EdError> {
    let mut out = Vec::with_capacity(data.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0usize);
    let mut padding_at: Option<usize> = None;
    for (offset, &byte) in data.iter().enumerate() {
        if byte.is_ascii_whitespace() {
            continue;
        }
        if byte == b'=' {
            padding_at.get_or_insert(offset);
            continue;
        }
        if padding_at.is_some() {
            return Err(EdError::DataAfterPadding { offset });
        }
        let Some(value) = base64_value(byte) else {
            return Err(EdError::InvalidByte { encoding: EdEncoding::Base64, byte, offset });
        };
        bits = bits << 6 | value;
        count += 1;
        if count == 4 {
            out.extend_from_slice(&[(bits >> 16) as u8, (bits >> 8) as u8, bits as u8]);
            (bits, count) = (0, 0);
        }
    }
    // Padding is optional (some senders leave it out); what is left decides the last bytes.
    match count {
        0 => {}
        2 => out.push((bits >> 4) as u8),
        3 => out.extend_from_slice(&[(bits >> 10) as u8, (bits >> 2) as u8]),
        _ => return Err(EdError::Truncated { encoding: EdEncoding::Base64 }),
    }
    Ok(out)
}

/// The media type (RFC 6838 `type/subtype`, lower case) of an ED value's type of data
/// (OBX-5.2, HL7 table 0191: `AP` application, `IM` image, `AU` audio, `TEXT`, or the MIME
/// type's own name) and subtype (OBX-5.3, table 0291: `PDF`, `JPEG`, `Octet-stream`, …).
/// A subtype that is missing or not a token reads as `application/octet-stream`: bytes
/// no one should open as anything in particular.
pub fn media_type(type_of_data: &str, subtype: &str) -> String {
    let token = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let subtype = subtype.trim().to_ascii_lowercase();
    let kind = match type_of_data.trim().to_ascii_uppercase().as_str() {
        "AP" | "APPLICATION" | "SD" | "SI" | "NS" => "application",
        "IM" | "IMAGE" => "image",
        "AU" | "AUDIO" => "audio",
        "TEXT" | "TX" | "FT" => "text",
        "VIDEO" => "video",
        "MULTIPART" => "multipart",
        _ => "application",
    };
    if !token(&subtype) {
        return "application/octet-stream".into();
    }
    format!("{kind}/{subtype}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding_and_across_line_breaks() {
        assert_eq!(decode_ed("Base64", b"JVBERi0xLjEK").unwrap(), b"%PDF-1.1\n");
        assert_eq!(decode_ed("BASE64", b"TWE=").unwrap(), b"Ma");
        assert_eq!(decode_ed("base64", b"TWE").unwrap(), b"Ma");
        assert_eq!(decode_ed("Base64", b"TQ==").unwrap(), b"M");
        assert_eq!(decode_ed("Base64", b"JVBE\r\nRi0x\rLjEK").unwrap(), b"%PDF-1.1\n");
    }

    #[test]
    fn base64_that_is_not_names_the_character_and_where_it_is() {
        let e = decode_ed("Base64", b"JVBE!i0x").unwrap_err();
        assert_eq!(e, EdError::InvalidByte { encoding: EdEncoding::Base64, byte: b'!', offset: 4 });
        assert_eq!(
            e.to_string(),
            "the data (OBX-5.5) is not Base64: '!' at character 5 of the data"
        );
        assert_eq!(
            decode_ed("Base64", b"JVBER").unwrap_err(),
            EdError::Truncated { encoding: EdEncoding::Base64 }
        );
        assert_eq!(
            decode_ed("Base64", b"TQ==TQ==").unwrap_err(),
            EdError::DataAfterPadding { offset: 4 }
        );
        assert_eq!(decode_ed("Base64", b"").unwrap_err(), EdError::Empty);
    }

    #[test]
    fn hex_and_ascii_data_decode_and_other_encodings_are_refused_by_name() {
        assert_eq!(decode_ed("Hex", b"25 50 44 46").unwrap(), b"%PDF");
        assert_eq!(
            decode_ed("HEX", b"255").unwrap_err(),
            EdError::Truncated { encoding: EdEncoding::Hex }
        );
        assert_eq!(decode_ed("A", b"plain text").unwrap(), b"plain text");
        assert_eq!(
            decode_ed("A", "caf\u{e9}".as_bytes()).unwrap_err(),
            EdError::InvalidByte { encoding: EdEncoding::Ascii, byte: 0xC3, offset: 3 }
        );
        assert_eq!(
            decode_ed("UU", b"x").unwrap_err().to_string(),
            "encoding \"UU\" (OBX-5.4) is not read: send Base64, Hex or A (HL7 table 0299)"
        );
    }

    #[test]
    fn media_types_read_hl7_type_codes_and_mime_names_alike() {
        assert_eq!(media_type("application", "pdf"), "application/pdf");
        assert_eq!(media_type("AP", "PDF"), "application/pdf");
        assert_eq!(media_type("Image", "BMP"), "image/bmp");
        assert_eq!(media_type("IM", "JPEG"), "image/jpeg");
        assert_eq!(media_type("AP", "Octet-stream"), "application/octet-stream");
        assert_eq!(media_type("IM", ""), "application/octet-stream");
        assert_eq!(media_type("TEXT", "html; charset"), "application/octet-stream");
    }
}
