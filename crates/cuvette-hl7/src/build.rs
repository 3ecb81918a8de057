//! Writing a message: values are escaped, segments end in CR, trailing empties are omitted.

use memchr::memchr2;

use crate::escape::escape_into;
use crate::message::Field;
use crate::{MESSAGE_BYTES_MAX, SEGMENTS_MAX, Separators};

/// Builds an HL7 v2 message as bytes.
///
/// Senders must end every segment with CR (HL7 v2.5.1 §2.5.4) and escape every delimiter
/// found in data (§2.7.4); the builder does both, and omits trailing empty fields, repetitions,
/// components and subcomponents, which the standard lets senders leave out (§2.5.3) and
/// receivers read as empty. MSH-1 and MSH-2 (and BHS/FHS-1 and -2) are written from the
/// builder's [`Separators`].
///
/// ```
/// use cuvette_hl7::{FieldValue, Message, MessageBuilder, SegmentBuilder};
///
/// let bytes = MessageBuilder::new()
///     .segment(
///         SegmentBuilder::new("MSH")
///             .field(3, "CUVETTE")
///             .field(7, "20240501120000")
///             .field(9, FieldValue::components(["ORU", "R01", "ORU_R01"]))
///             .field(10, "MSG0001")
///             .field(11, "P")
///             .field(12, "2.5.1"),
///     )
///     .segment(SegmentBuilder::new("NTE").field(1, "1").field(3, "A|B & C"))
///     .finish()?;
/// assert!(bytes.starts_with(b"MSH|^~\\&|CUVETTE||||20240501120000||ORU^R01^ORU_R01|MSG0001|P|2.5.1\r"));
/// assert!(bytes.ends_with(b"NTE|1||A\\F\\B \\T\\ C\r"));
/// let message = Message::parse_strict(&bytes).unwrap();
/// assert_eq!(message.get("NTE-3").unwrap().text(), "A|B & C");
/// # Ok::<(), cuvette_hl7::BuildError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct MessageBuilder {
    separators: Separators,
    segments: Vec<SegmentBuilder>,
}

impl MessageBuilder {
    /// A builder using the recommended delimiters `|^~\&`.
    pub fn new() -> MessageBuilder {
        MessageBuilder::with_separators(Separators::STANDARD)
    }

    /// A builder using `separators`, e.g. those of a message being answered.
    pub fn with_separators(separators: Separators) -> MessageBuilder {
        MessageBuilder { separators, segments: Vec::new() }
    }

    /// Appends a segment.
    pub fn segment(mut self, segment: SegmentBuilder) -> MessageBuilder {
        self.push(segment);
        self
    }

    /// Appends a segment.
    pub fn push(&mut self, segment: SegmentBuilder) -> &mut MessageBuilder {
        self.segments.push(segment);
        self
    }

    /// Writes the message, or says why it would not be one.
    pub fn finish(&self) -> Result<Vec<u8>, BuildError> {
        let Some(first) = self.segments.first() else {
            return Err(BuildError::Empty);
        };
        if !is_header_id(&first.id) {
            return Err(BuildError::FirstSegmentNotHeader { found: display(&first.id) });
        }
        if self.segments.len() > SEGMENTS_MAX {
            return Err(BuildError::TooManySegments { max: SEGMENTS_MAX });
        }
        let s = self.separators;
        let mut out = Vec::with_capacity(256);
        for (index, segment) in self.segments.iter().enumerate() {
            if !is_valid_id(&segment.id) {
                return Err(BuildError::InvalidSegmentId {
                    segment_index: index,
                    found: display(&segment.id),
                });
            }
            let header = is_header_id(&segment.id);
            if let Some(field) = segment.misplaced_field {
                return Err(BuildError::InvalidFieldNumber { segment_index: index, field });
            }
            if header && segment.fields.iter().take(2).any(|f| !f.is_empty()) {
                let field = if segment.fields[0].is_empty() { 2 } else { 1 };
                return Err(BuildError::InvalidFieldNumber { segment_index: index, field });
            }
            out.extend_from_slice(&segment.id);
            let mut fields = &segment.fields[..];
            if header {
                out.push(s.field());
                out.extend_from_slice(s.encoding_characters());
                fields = fields.get(2..).unwrap_or_default();
            }
            let fields = trim_trailing(fields, FieldValue::is_empty);
            for field in fields {
                out.push(s.field());
                field.write(&s, &mut out);
            }
            out.push(b'\r');
            if out.len() > MESSAGE_BYTES_MAX {
                return Err(BuildError::TooLarge { max: MESSAGE_BYTES_MAX });
            }
        }
        Ok(out)
    }
}

/// One segment to build: an ID and fields by HL7 number.
#[derive(Clone, Debug)]
pub struct SegmentBuilder {
    id: Vec<u8>,
    /// `fields[0]` is field 1.
    fields: Vec<FieldValue>,
    misplaced_field: Option<usize>,
}

impl SegmentBuilder {
    /// A segment with ID `id` (checked by [`MessageBuilder::finish`]: `[A-Z][A-Z0-9]{2}`).
    pub fn new(id: &str) -> SegmentBuilder {
        SegmentBuilder { id: id.as_bytes().to_vec(), fields: Vec::new(), misplaced_field: None }
    }

    /// Sets field `n` (HL7 numbering, from 1; for MSH, BHS and FHS from 3, since fields 1 and
    /// 2 are the delimiters the builder writes).
    pub fn field(mut self, n: usize, value: impl Into<FieldValue>) -> SegmentBuilder {
        self.set(n, value);
        self
    }

    /// Sets field `n`; see [`SegmentBuilder::field`].
    pub fn set(&mut self, n: usize, value: impl Into<FieldValue>) -> &mut SegmentBuilder {
        if n == 0 || n > FIELD_NUMBER_MAX {
            self.misplaced_field.get_or_insert(n);
            return self;
        }
        if self.fields.len() < n {
            self.fields.resize(n, FieldValue::empty());
        }
        self.fields[n - 1] = value.into();
        self
    }
}

/// The highest field number a builder accepts; no segment in v2.5.1 comes near it, and it
/// bounds what a wrong number can allocate.
pub const FIELD_NUMBER_MAX: usize = 1000;

/// The value of one field: repetitions of components of subcomponents, as data (escaped when
/// written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldValue(Repr);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    /// `[repetition][component][subcomponent]` data bytes.
    Parts(Vec<Vec<Vec<Vec<u8>>>>),
    /// A field copied from a parsed message: bytes as on the wire and the delimiters they are
    /// written with.
    Encoded { raw: Vec<u8>, separators: Separators, literal: bool },
}

impl FieldValue {
    /// An empty field (not present).
    pub fn empty() -> FieldValue {
        FieldValue(Repr::Parts(Vec::new()))
    }

    /// The explicit null `""` (HL7 v2.5.1 §2.5.3: delete the value the receiver holds).
    pub fn null() -> FieldValue {
        FieldValue::text("\"\"")
    }

    /// One value, no components.
    pub fn text(data: impl AsRef<[u8]>) -> FieldValue {
        FieldValue(Repr::Parts(vec![vec![vec![data.as_ref().to_vec()]]]))
    }

    /// One repetition made of these components (`ORU^R01^ORU_R01`).
    pub fn components<T: AsRef<[u8]>>(components: impl IntoIterator<Item = T>) -> FieldValue {
        let components = components.into_iter().map(|c| vec![c.as_ref().to_vec()]).collect();
        FieldValue(Repr::Parts(vec![components]))
    }

    /// Every level spelled out: `parts[repetition][component][subcomponent]`.
    pub fn from_parts(parts: Vec<Vec<Vec<Vec<u8>>>>) -> FieldValue {
        FieldValue(Repr::Parts(parts))
    }

    /// Whether nothing would be written.
    pub fn is_empty(&self) -> bool {
        match &self.0 {
            Repr::Parts(reps) => reps.iter().all(|r| r.iter().all(|c| c.iter().all(Vec::is_empty))),
            Repr::Encoded { raw, .. } => raw.is_empty(),
        }
    }

    fn write(&self, s: &Separators, out: &mut Vec<u8>) {
        match &self.0 {
            // Bytes from a parsed message with the same delimiters are already escaped; CR and
            // LF cannot be in them (they ended the segment), VT and FS could and must not go
            // out raw, so such a field takes the decoding path below.
            Repr::Encoded { raw, separators, literal }
                if (separators == s || *literal) && memchr2(0x0B, 0x1C, raw).is_none() =>
            {
                if *literal {
                    escape_into(raw, s, out);
                } else {
                    out.extend_from_slice(raw);
                }
            }
            Repr::Encoded { raw, separators, literal: _ } => {
                write_parts(&decode_parts(raw, separators), s, out);
            }
            Repr::Parts(parts) => write_parts(parts, s, out),
        }
    }
}

impl From<&str> for FieldValue {
    fn from(text: &str) -> FieldValue {
        FieldValue::text(text)
    }
}

impl From<String> for FieldValue {
    fn from(text: String) -> FieldValue {
        FieldValue::text(text)
    }
}

impl From<&[u8]> for FieldValue {
    fn from(data: &[u8]) -> FieldValue {
        FieldValue::text(data)
    }
}

impl From<Vec<u8>> for FieldValue {
    fn from(data: Vec<u8>) -> FieldValue {
        FieldValue(Repr::Parts(vec![vec![vec![data]]]))
    }
}

impl From<Field<'_>> for FieldValue {
    /// Copies a parsed field, structure and escape sequences included: written unchanged when
    /// the builder uses the same delimiters, re-escaped otherwise. MSH-1 and MSH-2 are copied
    /// as data.
    fn from(field: Field<'_>) -> FieldValue {
        FieldValue(Repr::Encoded {
            raw: field.raw().to_vec(),
            separators: field.separators(),
            literal: field.is_literal(),
        })
    }
}

/// Why [`MessageBuilder::finish`] wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No segment was added.
    #[error("a message needs at least its MSH segment")]
    Empty,
    /// The first segment is not MSH, BHS or FHS, so the delimiters would not be declared.
    #[error("the first segment must be MSH (or BHS, FHS), not \"{found}\"")]
    FirstSegmentNotHeader {
        /// Its ID, escaped for display.
        found: String,
    },
    /// A segment ID is not `[A-Z][A-Z0-9]{2}` (HL7 v2.5.1 §2.5.2).
    #[error("invalid segment ID \"{found}\" (segment {segment_index})")]
    InvalidSegmentId {
        /// The segment (0-based).
        segment_index: usize,
        /// Its ID, escaped for display.
        found: String,
    },
    /// A field was set at number 0, above [`FIELD_NUMBER_MAX`], or at 1 or 2 of a header
    /// segment, where the builder writes the delimiters.
    #[error("field number {field} cannot be set in segment {segment_index}")]
    InvalidFieldNumber {
        /// The segment (0-based).
        segment_index: usize,
        /// The number given.
        field: usize,
    },
    /// More segments than a parser accepts ([`SEGMENTS_MAX`]).
    #[error("more than {max} segments")]
    TooManySegments {
        /// The limit.
        max: usize,
    },
    /// The message would be longer than a parser accepts ([`MESSAGE_BYTES_MAX`]).
    #[error("message would exceed {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
}

fn is_header_id(id: &[u8]) -> bool {
    matches!(id, b"MSH" | b"BHS" | b"FHS")
}

fn is_valid_id(id: &[u8]) -> bool {
    matches!(id, [a, b, c] if a.is_ascii_uppercase()
        && [b, c].iter().all(|x| x.is_ascii_uppercase() || x.is_ascii_digit()))
}

fn display(id: &[u8]) -> String {
    id.escape_ascii().to_string()
}

fn trim_trailing<T>(items: &[T], is_empty: impl Fn(&T) -> bool) -> &[T] {
    let keep = items.iter().rposition(|item| !is_empty(item)).map_or(0, |last| last + 1);
    &items[..keep]
}

fn write_parts(parts: &[Vec<Vec<Vec<u8>>>], s: &Separators, out: &mut Vec<u8>) {
    let component_empty = |c: &Vec<Vec<u8>>| c.iter().all(Vec::is_empty);
    let repetitions = trim_trailing(parts, |r| r.iter().all(component_empty));
    for (i, repetition) in repetitions.iter().enumerate() {
        if i > 0 {
            out.push(s.repetition());
        }
        for (j, component) in trim_trailing(repetition, component_empty).iter().enumerate() {
            if j > 0 {
                out.push(s.component());
            }
            for (k, sub) in trim_trailing(component, |s| s.is_empty()).iter().enumerate() {
                if k > 0 {
                    out.push(s.subcomponent());
                }
                escape_into(sub, s, out);
            }
        }
    }
}

fn decode_parts(raw: &[u8], separators: &Separators) -> Vec<Vec<Vec<Vec<u8>>>> {
    let field = Field::from_raw(raw, *separators);
    field
        .repetitions()
        .map(|r| {
            r.components()
                .map(|c| c.subcomponents().map(|s| s.decoded().into_owned()).collect())
                .collect()
        })
        .collect()
}
