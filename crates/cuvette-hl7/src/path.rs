//! Paths to a value, in the notation HL7 uses in its own text (`PID-3`, `OBX-5.1`) and ERR-2
//! error locations point with.

use std::fmt;
use std::str::FromStr;

/// Where a value sits: `SEG[(occurrence)]-field[(repetition)][-component[-subcomponent]]`.
///
/// `-` and `.` are both accepted between the numbers (`PID.3.1` reads like `PID-3-1`); every
/// number counts from 1 and the occurrence defaults to the first segment with that ID.
/// Without a repetition, a path to a component or subcomponent reads the first repetition, and
/// a path that stops at the field means the whole field, all repetitions included.
///
/// ```
/// use cuvette_hl7::Path;
///
/// let path: Path = "OBX(2)-5(1)-1".parse()?;
/// assert_eq!((path.segment_id(), path.occurrence(), path.field()), (&b"OBX"[..], 2, 5));
/// assert_eq!((path.repetition(), path.component(), path.subcomponent()), (Some(1), Some(1), None));
/// assert_eq!(path.to_string(), "OBX(2)-5(1)-1");
/// # Ok::<(), cuvette_hl7::PathError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Path {
    segment: [u8; 3],
    occurrence: usize,
    field: usize,
    repetition: Option<usize>,
    component: Option<usize>,
    subcomponent: Option<usize>,
}

impl Path {
    /// Reads a path; see the type documentation for the notation.
    pub fn parse(text: &str) -> Result<Path, PathError> {
        let mut cursor = Cursor { bytes: text.as_bytes(), at: 0 };
        let segment = cursor.segment_id()?;
        let occurrence = cursor.parenthesised()?.unwrap_or(1);
        cursor.separator()?;
        let field = cursor.number()?;
        let repetition = cursor.parenthesised()?;
        let mut component = None;
        let mut subcomponent = None;
        if !cursor.done() {
            cursor.separator()?;
            component = Some(cursor.number()?);
            if !cursor.done() {
                cursor.separator()?;
                subcomponent = Some(cursor.number()?);
            }
        }
        if !cursor.done() {
            return Err(PathError::TrailingInput { at: cursor.at });
        }
        Ok(Path { segment, occurrence, field, repetition, component, subcomponent })
    }

    /// The segment ID (`b"OBX"`).
    pub fn segment_id(&self) -> &[u8] {
        &self.segment
    }

    /// Which segment with that ID, from 1.
    pub fn occurrence(&self) -> usize {
        self.occurrence
    }

    /// The field number (HL7 numbering: MSH-9 is 9).
    pub fn field(&self) -> usize {
        self.field
    }

    /// The repetition, when the path names one.
    pub fn repetition(&self) -> Option<usize> {
        self.repetition
    }

    /// The component, when the path goes that deep.
    pub fn component(&self) -> Option<usize> {
        self.component
    }

    /// The subcomponent, when the path goes that deep.
    pub fn subcomponent(&self) -> Option<usize> {
        self.subcomponent
    }
}

impl FromStr for Path {
    type Err = PathError;

    fn from_str(text: &str) -> Result<Path, PathError> {
        Path::parse(text)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The ID is checked ASCII at parse time.
        let id: String = self.segment.iter().map(|&b| char::from(b)).collect();
        write!(f, "{id}")?;
        if self.occurrence != 1 {
            write!(f, "({})", self.occurrence)?;
        }
        write!(f, "-{}", self.field)?;
        if let Some(r) = self.repetition {
            write!(f, "({r})")?;
        }
        for n in [self.component, self.subcomponent].into_iter().flatten() {
            write!(f, "-{n}")?;
        }
        Ok(())
    }
}

/// Why a text is not a [`Path`]; `at` is the byte position in the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with a segment ID `[A-Z][A-Z0-9]{2}`.
    #[error("expected a segment ID at {at}")]
    SegmentId {
        /// Position in the text.
        at: usize,
    },
    /// A number is missing, is 0 (everything counts from 1) or does not fit.
    #[error("expected a number from 1 at {at}")]
    Number {
        /// Position in the text.
        at: usize,
    },
    /// Something other than `-` or `.` stands between two numbers.
    #[error("expected '-' or '.' at {at}")]
    Separator {
        /// Position in the text.
        at: usize,
    },
    /// An occurrence or repetition `(n` lacks its `)`.
    #[error("expected ')' at {at}")]
    UnclosedParenthesis {
        /// Position in the text.
        at: usize,
    },
    /// Text follows the subcomponent, the deepest level.
    #[error("unexpected text at {at}")]
    TrailingInput {
        /// Position in the text.
        at: usize,
    },
}

struct Cursor<'t> {
    bytes: &'t [u8],
    at: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }

    fn segment_id(&mut self) -> Result<[u8; 3], PathError> {
        match self.bytes.get(..3) {
            Some(&[a, b, c])
                if a.is_ascii_uppercase()
                    && [b, c].iter().all(|x| x.is_ascii_uppercase() || x.is_ascii_digit()) =>
            {
                self.at = 3;
                Ok([a, b, c])
            }
            _ => Err(PathError::SegmentId { at: 0 }),
        }
    }

    fn separator(&mut self) -> Result<(), PathError> {
        match self.bytes.get(self.at) {
            Some(b'-' | b'.') => {
                self.at += 1;
                Ok(())
            }
            _ => Err(PathError::Separator { at: self.at }),
        }
    }

    fn number(&mut self) -> Result<usize, PathError> {
        let start = self.at;
        let digits = self.bytes[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        let text = &self.bytes[start..start + digits];
        let n = text
            .iter()
            .try_fold(0usize, |n, &d| n.checked_mul(10)?.checked_add(usize::from(d - b'0')));
        match n {
            Some(n) if n >= 1 => {
                self.at += digits;
                Ok(n)
            }
            _ => Err(PathError::Number { at: start }),
        }
    }

    fn parenthesised(&mut self) -> Result<Option<usize>, PathError> {
        if self.bytes.get(self.at) != Some(&b'(') {
            return Ok(None);
        }
        self.at += 1;
        let n = self.number()?;
        if self.bytes.get(self.at) != Some(&b')') {
            return Err(PathError::UnclosedParenthesis { at: self.at });
        }
        self.at += 1;
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, canonical: &str) {
        let path = Path::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(path.to_string(), canonical);
    }

    fn check_err(text: &str, error: PathError) {
        assert_eq!(Path::parse(text), Err(error), "{text}");
    }

    #[test]
    fn notations() {
        check("PID-3", "PID-3");
        check("PID.3.1", "PID-3-1");
        check("OBX(1)-5", "OBX-5");
        check("OBX(12)-5(2)-1-3", "OBX(12)-5(2)-1-3");
        check("ZX1-1", "ZX1-1");
    }

    #[test]
    fn refused() {
        check_err("", PathError::SegmentId { at: 0 });
        check_err("pid-3", PathError::SegmentId { at: 0 });
        check_err("PID", PathError::Separator { at: 3 });
        check_err("PID-0", PathError::Number { at: 4 });
        check_err("PID-", PathError::Number { at: 4 });
        check_err("PID-3(2", PathError::UnclosedParenthesis { at: 7 });
        check_err("PID-3-1-1-1", PathError::TrailingInput { at: 9 });
        check_err("PID-3x", PathError::Separator { at: 5 });
        check_err("PID-99999999999999999999999", PathError::Number { at: 4 });
    }
}
