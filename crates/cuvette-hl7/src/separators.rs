//! The delimiters a message declares for itself in MSH-1 and MSH-2.

use std::fmt;

/// The field separator and encoding characters of one message.
///
/// HL7 v2.5.1 §2.5.4 ("Message delimiters"): the sender chooses them and declares them at the
/// start of the header segment — MSH-1 is the field separator itself, MSH-2 the encoding
/// characters in the fixed order component, repetition, escape, subcomponent. v2.7 adds a fifth,
/// the truncation character, which a v2.5.1 receiver must still accept. Nothing here assumes the recommended `|^~\&`:
/// a message using `$` and `%` is read with `$` and `%`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Separators {
    field: u8,
    /// MSH-2 exactly as declared: component, repetition, escape, subcomponent[, truncation].
    encoding: [u8; 5],
    encoding_len: u8,
}

impl Separators {
    /// The recommended delimiters `|^~\&` (HL7 v2.5.1 §2.5.4, figure 2-1).
    pub const STANDARD: Separators =
        Separators { field: b'|', encoding: *b"^~\\&#", encoding_len: 4 };

    /// Checks a field separator and the MSH-2 encoding characters (4, or 5 with the v2.7
    /// truncation character).
    ///
    /// Every delimiter must be a distinct printable ASCII character that is neither a letter
    /// nor a digit: HL7 v2.5.1 §2.5.4 recommends `|^~\&` and a letter or a digit would make data
    /// and structure indistinguishable; CR and LF end segments and can never be delimiters.
    pub fn new(field: u8, encoding_characters: &[u8]) -> Result<Separators, SeparatorError> {
        let count = encoding_characters.len();
        if !(4..=5).contains(&count) {
            return Err(SeparatorError::EncodingCharacterCount { count });
        }
        let mut all = [0u8; 6];
        all[0] = field;
        all[1..=count].copy_from_slice(encoding_characters);
        let all = &all[..=count];
        for (i, &byte) in all.iter().enumerate() {
            if !byte.is_ascii_graphic() {
                return Err(SeparatorError::NotPrintable { byte });
            }
            if byte.is_ascii_alphanumeric() {
                return Err(SeparatorError::Alphanumeric { byte });
            }
            if all[..i].contains(&byte) {
                return Err(SeparatorError::Duplicate { byte });
            }
        }
        let mut encoding = *b"^~\\&#";
        encoding[..count].copy_from_slice(encoding_characters);
        // `count` is 4 or 5, checked above.
        Ok(Separators { field, encoding, encoding_len: count as u8 })
    }

    /// MSH-1: separates fields.
    pub fn field(&self) -> u8 {
        self.field
    }

    /// First encoding character: separates components.
    pub fn component(&self) -> u8 {
        self.encoding[0]
    }

    /// Second encoding character: separates repetitions of a field.
    pub fn repetition(&self) -> u8 {
        self.encoding[1]
    }

    /// Third encoding character: starts and ends an escape sequence (§2.7).
    pub fn escape(&self) -> u8 {
        self.encoding[2]
    }

    /// Fourth encoding character: separates subcomponents.
    pub fn subcomponent(&self) -> u8 {
        self.encoding[3]
    }

    /// Fifth encoding character (v2.7+), when declared: marks a truncated value.
    pub fn truncation(&self) -> Option<u8> {
        (self.encoding_len == 5).then_some(self.encoding[4])
    }

    /// MSH-2 as declared (4 or 5 bytes).
    pub fn encoding_characters(&self) -> &[u8] {
        &self.encoding[..usize::from(self.encoding_len)]
    }

    /// Whether `byte` is one of the delimiters (field separator or an encoding character).
    pub fn is_delimiter(&self, byte: u8) -> bool {
        byte == self.field || self.encoding_characters().contains(&byte)
    }
}

impl Default for Separators {
    fn default() -> Self {
        Separators::STANDARD
    }
}

impl fmt::Debug for Separators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Separators({}{})", self.field as char, self.encoding_characters().escape_ascii())
    }
}

/// Why a field separator and encoding characters cannot be used (see [`Separators::new`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeparatorError {
    /// MSH-2 holds fewer than 4 or more than 5 characters.
    #[error("MSH-2 holds {count} encoding characters, expected 4 (or 5 with truncation)")]
    EncodingCharacterCount {
        /// How many were found.
        count: usize,
    },
    /// A delimiter is a control character, a space or not ASCII.
    #[error("delimiter 0x{byte:02X} is not a printable ASCII character")]
    NotPrintable {
        /// The offending byte.
        byte: u8,
    },
    /// A delimiter is a letter or a digit.
    #[error("delimiter {:?} is a letter or a digit", *byte as char)]
    Alphanumeric {
        /// The offending byte.
        byte: u8,
    },
    /// The same character is declared twice.
    #[error("delimiter {:?} is declared twice", *byte as char)]
    Duplicate {
        /// The repeated byte.
        byte: u8,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_custom() {
        let s = Separators::STANDARD;
        assert_eq!(
            (s.field(), s.component(), s.repetition(), s.escape(), s.subcomponent()),
            (b'|', b'^', b'~', b'\\', b'&')
        );
        assert_eq!(s.truncation(), None);
        assert_eq!(Separators::new(b'|', b"^~\\&"), Ok(s));
        let five = Separators::new(b'|', b"^~\\&#").unwrap();
        assert_eq!(five.truncation(), Some(b'#'));
        let dollar = Separators::new(b'$', b"%~\\&").unwrap();
        assert_eq!((dollar.field(), dollar.component()), (b'$', b'%'));
    }

    #[test]
    fn refused() {
        let check = |f, e: &[u8], want| assert_eq!(Separators::new(f, e), Err(want));
        check(b'|', b"^~\\", SeparatorError::EncodingCharacterCount { count: 3 });
        check(b'|', b"^~\\&#!", SeparatorError::EncodingCharacterCount { count: 6 });
        check(b'|', b"^~\\|", SeparatorError::Duplicate { byte: b'|' });
        check(b'|', b"^A\\&", SeparatorError::Alphanumeric { byte: b'A' });
        check(b'\r', b"^~\\&", SeparatorError::NotPrintable { byte: b'\r' });
        check(b'|', b"^ \\&", SeparatorError::NotPrintable { byte: b' ' });
    }
}
