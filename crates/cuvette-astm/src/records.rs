//! E1394 / LIS02-A2 records: the content of an ASTM message.
//!
//! A message is a list of records, each terminated by `CR` (LIS02-A2 §5): a header (`H`),
//! then patients (`P`), their test orders (`O`), results (`R`), comments (`C`) on the record
//! before them, requests for information (`Q`), scientific (`S`) and manufacturer (`M`)
//! records, and a terminator (`L`). Fields are separated by the field delimiter, repeated
//! values by the repeat delimiter, components by the component delimiter; the header declares
//! all four delimiters in its first characters (`H|\^&` is the usual set; Cepheid GeneXpert
//! sends `H|@^\`, where `@` repeats and `\` escapes), so they are always read from it.
//!
//! Numbering follows the standard: field 1 is the record type, so `H-2` is the delimiter
//! definition, `O-3` the specimen ID and `R-4` the measurement value. Components and repeats
//! are numbered from 1 too.
//!
//! Bytes are kept as received. Record text is not always UTF-8 (instruments send Latin-1 or
//! Windows-1252), so [`Field::decode`] returns bytes with escape sequences resolved, and only
//! the text helpers ([`Field::text`], [`Field::text_as`]) turn them into `String`, lossily.
//!
//! Parsing is lenient where instruments differ and strict where a message would be
//! misunderstood: `CR`, `LF` and `CRLF` all end records, trailing fields may be missing, empty
//! lines are skipped; but the first record must be a header with four distinct delimiters,
//! every record type must be one the standard defines, and nothing may follow the terminator.

mod builder;
mod field;
mod view;

use std::fmt;

use thiserror::Error;

pub use builder::{FIELDS_MAX, MessageBuilder, RecordBuilder};
pub use field::{Charset, Component, Field, Repeat};
pub use view::{
    Comment, Header, Order, OrderGroup, Patient, Query, ResultGroup, ResultRecord, Terminator,
    UniversalTestId, View,
};

/// The most bytes of message text [`Message::parse`] accepts: the link layer's limit.
pub const MESSAGE_BYTES_MAX: usize = crate::link::MESSAGE_BYTES_MAX;

/// The four delimiters a header declares (LIS02-A2 §6.2 and §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delimiters {
    /// Separates fields; the character right after `H`.
    pub field: u8,
    /// Separates repeated values of one field.
    pub repeat: u8,
    /// Separates components of one value.
    pub component: u8,
    /// Opens and closes escape sequences such as `&F&`.
    pub escape: u8,
}

impl Delimiters {
    /// The delimiters the standard uses in its examples: `|`, `\`, `^`, `&` (header `H|\^&`).
    pub const STANDARD: Delimiters =
        Delimiters { field: b'|', repeat: b'\\', component: b'^', escape: b'&' };

    /// Reads the delimiters from a header record's first five characters (`H|\^&`).
    ///
    /// Each must be a printable, non-alphanumeric ASCII character (escape sequences are
    /// letters and hex digits, so a letter delimiter would be ambiguous), and all four must
    /// differ.
    pub fn from_header(header: &[u8]) -> Result<Delimiters, ParseError> {
        let invalid = |reason| ParseError::InvalidField { record: 1, field: 2, reason };
        let [b'H', field, repeat, component, escape, rest @ ..] = header else {
            return Err(invalid("the header must start with H and four delimiters"));
        };
        let delimiters =
            Delimiters { field: *field, repeat: *repeat, component: *component, escape: *escape };
        let all = [*field, *repeat, *component, *escape];
        if all.iter().any(|&b| !b.is_ascii_graphic() || b.is_ascii_alphanumeric()) {
            return Err(invalid("delimiters must be printable punctuation characters"));
        }
        if (1..4).any(|i| all[..i].contains(&all[i])) {
            return Err(invalid("the four delimiters must differ"));
        }
        if rest.first().is_some_and(|&b| b != *field) {
            return Err(invalid("the delimiter definition must be followed by a field delimiter"));
        }
        Ok(delimiters)
    }

    /// The header's delimiter definition as sent: repeat, component, escape (`\^&`).
    pub fn definition(&self) -> [u8; 3] {
        [self.repeat, self.component, self.escape]
    }

    /// Delimiters under which nothing splits and nothing is an escape: every delimiter is the
    /// field delimiter, which a field never contains. Used to present `H-2` verbatim.
    fn literal(self) -> Delimiters {
        Delimiters {
            field: self.field,
            repeat: self.field,
            component: self.field,
            escape: self.field,
        }
    }
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters::STANDARD
    }
}

/// The record types of LIS02-A2 (§6–§14), by their identifying letter (field 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordType {
    /// `H`, message header (§6).
    Header,
    /// `P`, patient information (§7).
    Patient,
    /// `O`, test order (§8).
    Order,
    /// `R`, result (§9).
    Result,
    /// `C`, comment (§10), about the record before it.
    Comment,
    /// `Q`, request information (§11): a host query.
    Query,
    /// `L`, message terminator (§12).
    Terminator,
    /// `S`, scientific (§13).
    Scientific,
    /// `M`, manufacturer information (§14).
    Manufacturer,
}

impl RecordType {
    /// The record type identified by `letter`, if the standard defines one.
    pub fn from_letter(letter: u8) -> Option<RecordType> {
        Some(match letter {
            b'H' => RecordType::Header,
            b'P' => RecordType::Patient,
            b'O' => RecordType::Order,
            b'R' => RecordType::Result,
            b'C' => RecordType::Comment,
            b'Q' => RecordType::Query,
            b'L' => RecordType::Terminator,
            b'S' => RecordType::Scientific,
            b'M' => RecordType::Manufacturer,
            _ => return None,
        })
    }

    /// The record type's letter.
    pub fn letter(self) -> u8 {
        match self {
            RecordType::Header => b'H',
            RecordType::Patient => b'P',
            RecordType::Order => b'O',
            RecordType::Result => b'R',
            RecordType::Comment => b'C',
            RecordType::Query => b'Q',
            RecordType::Terminator => b'L',
            RecordType::Scientific => b'S',
            RecordType::Manufacturer => b'M',
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", char::from(self.letter()))
    }
}

/// Why message text is not an E1394 message. Record positions are 1-based and count the
/// records of the text given (empty lines are not records); fields use the standard's
/// numbering (field 1 is the record type).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The text holds no record.
    #[error("message has no records")]
    Empty,
    /// The text is larger than [`MESSAGE_BYTES_MAX`].
    #[error("message is {len} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The text's length.
        len: usize,
        /// [`MESSAGE_BYTES_MAX`].
        limit: usize,
    },
    /// A message does not start with a header record (LIS02-A2 §6: the header comes first).
    #[error("record {record} is a {found:?} record where a message must start with a header (H)")]
    MissingHeader {
        /// The record's position.
        record: usize,
        /// The record's first field, lossily decoded.
        found: String,
    },
    /// A field has a form the standard does not allow: the header's delimiter definition
    /// (`H-2`) or a record type (field 1) that is not one letter.
    #[error("record {record} field {field}: {reason}")]
    InvalidField {
        /// The record's position.
        record: usize,
        /// The field's number.
        field: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Field 1 names a record type LIS02-A2 does not define.
    #[error("record {record} has unknown record type {found:?}")]
    UnknownRecordType {
        /// The record's position.
        record: usize,
        /// The record type as found, lossily decoded.
        found: String,
    },
    /// A record follows the terminator record (LIS02-A2 §12: `L` ends the message).
    #[error("record {record} follows the message terminator (L)")]
    RecordAfterTerminator {
        /// The record's position.
        record: usize,
    },
    /// A header where none may be: inside a message not yet terminated, or starting a second
    /// message where [`Message::parse`] expects one (use [`Message::parse_all`] for text
    /// holding several messages).
    #[error("record {record} is an unexpected header (H)")]
    UnexpectedHeader {
        /// The record's position.
        record: usize,
    },
}

/// One record: its bytes as received (without the terminating `CR`) and the delimiters of the
/// message it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    kind: RecordType,
    bytes: Vec<u8>,
    delimiters: Delimiters,
}

impl Record {
    /// Reads one record under the given delimiters. `position` (1-based) is used in errors.
    pub fn parse(
        bytes: &[u8],
        delimiters: Delimiters,
        position: usize,
    ) -> Result<Record, ParseError> {
        let type_field = bytes.split(|&b| b == delimiters.field).next().unwrap_or_default();
        let kind = match type_field {
            [letter] => RecordType::from_letter(*letter).ok_or_else(|| {
                ParseError::UnknownRecordType { record: position, found: lossy(type_field) }
            })?,
            _ => {
                return Err(ParseError::InvalidField {
                    record: position,
                    field: 1,
                    reason: "the record type must be one letter",
                });
            }
        };
        Ok(Record { kind, bytes: bytes.to_vec(), delimiters })
    }

    /// The record's type.
    pub fn kind(&self) -> RecordType {
        self.kind
    }

    /// The record's bytes as received, without the terminating `CR`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The delimiters in effect.
    pub fn delimiters(&self) -> Delimiters {
        self.delimiters
    }

    /// Field `n` in the standard's numbering (1 is the record type). A field the record does
    /// not reach is empty, as E1394 lets senders drop trailing empty fields.
    ///
    /// The header's delimiter definition (`H-2`) is returned verbatim: it holds the repeat,
    /// component and escape characters themselves, so it neither splits nor unescapes.
    pub fn field(&self, n: usize) -> Field<'_> {
        let raw = if n == 0 {
            &[][..]
        } else {
            self.bytes.split(|&b| b == self.delimiters.field).nth(n - 1).unwrap_or_default()
        };
        let delimiters = if self.kind == RecordType::Header && n == 2 {
            self.delimiters.literal()
        } else {
            self.delimiters
        };
        Field::new(raw, delimiters)
    }

    /// How many fields the record has, counting the record type.
    pub fn field_count(&self) -> usize {
        self.bytes.split(|&b| b == self.delimiters.field).count()
    }

    /// The record seen as its type: header, patient, order, result, …
    pub fn view(&self) -> View<'_> {
        View::of(self)
    }
}

/// One E1394 message: a header, the records after it, and usually a terminator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    delimiters: Delimiters,
    records: Vec<Record>,
}

impl Message {
    /// Parses the text of exactly one message. Records end with `CR`, `LF` or `CRLF`; empty
    /// lines and a leading UTF-8 byte-order mark are skipped.
    pub fn parse(text: &[u8]) -> Result<Message, ParseError> {
        let mut messages = Message::parse_all(text)?;
        match messages.len() {
            1 => Ok(messages.remove(0)),
            // `parse_all` returns at least one message or an error.
            0 => Err(ParseError::Empty),
            _ => Err(ParseError::UnexpectedHeader { record: messages[0].records.len() + 1 }),
        }
    }

    /// Parses text holding one or more messages, each starting with its header.
    pub fn parse_all(text: &[u8]) -> Result<Vec<Message>, ParseError> {
        if text.len() > MESSAGE_BYTES_MAX {
            return Err(ParseError::TooLarge { len: text.len(), limit: MESSAGE_BYTES_MAX });
        }
        let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        Message::all_from_records(text.split(|&b| b == b'\r' || b == b'\n'))
    }

    /// Builds one message from records as the link layer delivers them
    /// ([`crate::Event::MessageReceived`]): each record's text without its `CR`.
    pub fn from_records<I>(records: I) -> Result<Message, ParseError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut messages = Message::all_from_records(records)?;
        match messages.len() {
            1 => Ok(messages.remove(0)),
            0 => Err(ParseError::Empty),
            _ => Err(ParseError::UnexpectedHeader { record: messages[0].records.len() + 1 }),
        }
    }

    /// Builds every message from a list of records, a new message starting at each header.
    pub fn all_from_records<I>(records: I) -> Result<Vec<Message>, ParseError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut messages: Vec<Message> = Vec::new();
        let mut position = 0;
        let mut total = 0usize;
        for bytes in records {
            let bytes = bytes.as_ref();
            if bytes.is_empty() {
                continue;
            }
            position += 1;
            total = total.saturating_add(bytes.len() + 1);
            if total > MESSAGE_BYTES_MAX {
                return Err(ParseError::TooLarge { len: total, limit: MESSAGE_BYTES_MAX });
            }
            let open = messages.last().is_some_and(|m| m.terminator().is_none());
            if bytes[0] == b'H' {
                // A header declares the delimiters of the records that follow it (LIS02-A2
                // §6.2). It may not arrive inside an unterminated message.
                if open {
                    return Err(ParseError::UnexpectedHeader { record: position });
                }
                let delimiters =
                    Delimiters::from_header(bytes).map_err(|e| at_record(e, position))?;
                let header = Record::parse(bytes, delimiters, position)?;
                messages.push(Message { delimiters, records: vec![header] });
                continue;
            }
            match messages.last_mut() {
                Some(message) if open => {
                    let record = Record::parse(bytes, message.delimiters, position)?;
                    message.records.push(record);
                }
                Some(_) => return Err(ParseError::RecordAfterTerminator { record: position }),
                None => {
                    let first = bytes.split(|&b| b == b'|').next().unwrap_or_default();
                    return Err(ParseError::MissingHeader {
                        record: position,
                        found: lossy(first),
                    });
                }
            }
        }
        if messages.is_empty() {
            return Err(ParseError::Empty);
        }
        Ok(messages)
    }

    /// The delimiters the header declared.
    pub fn delimiters(&self) -> Delimiters {
        self.delimiters
    }

    /// Every record, the header first.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The header record.
    pub fn header(&self) -> Header<'_> {
        // A message is only ever built with its header as the first record.
        Header::new(&self.records[0])
    }

    /// The terminator record, if the message has one. A message without one was cut short or
    /// comes from a sender that omits it.
    pub fn terminator(&self) -> Option<Terminator<'_>> {
        self.records.last().filter(|r| r.kind() == RecordType::Terminator).map(Terminator::new)
    }

    /// The patient records.
    pub fn patients(&self) -> impl Iterator<Item = Patient<'_>> {
        self.records.iter().filter_map(|r| match r.view() {
            View::Patient(p) => Some(p),
            _ => None,
        })
    }

    /// The test order records.
    pub fn orders(&self) -> impl Iterator<Item = Order<'_>> {
        self.records.iter().filter_map(|r| match r.view() {
            View::Order(o) => Some(o),
            _ => None,
        })
    }

    /// The result records.
    pub fn results(&self) -> impl Iterator<Item = ResultRecord<'_>> {
        self.records.iter().filter_map(|r| match r.view() {
            View::Result(r) => Some(r),
            _ => None,
        })
    }

    /// The request-information (host query) records.
    pub fn queries(&self) -> impl Iterator<Item = Query<'_>> {
        self.records.iter().filter_map(|r| match r.view() {
            View::Query(q) => Some(q),
            _ => None,
        })
    }

    /// The comment records.
    pub fn comments(&self) -> impl Iterator<Item = Comment<'_>> {
        self.records.iter().filter_map(|r| match r.view() {
            View::Comment(c) => Some(c),
            _ => None,
        })
    }

    /// Each order with the patient above it, its results and the comments on each result,
    /// following the record hierarchy of LIS02-A2 §5 (H → P → O → R → C). Results that
    /// precede any order are not returned.
    pub fn order_groups(&self) -> Vec<OrderGroup<'_>> {
        let mut groups: Vec<OrderGroup<'_>> = Vec::new();
        let mut patient = None;
        // Comments belong to the record right before them; track what that was.
        let mut last = RecordType::Header;
        for record in &self.records {
            match record.view() {
                View::Patient(p) => {
                    patient = Some(p);
                    last = RecordType::Patient;
                }
                View::Order(order) => {
                    groups.push(OrderGroup {
                        patient,
                        order,
                        comments: Vec::new(),
                        results: Vec::new(),
                    });
                    last = RecordType::Order;
                }
                View::Result(result) => {
                    if let Some(group) = groups.last_mut() {
                        group.results.push(ResultGroup { result, comments: Vec::new() });
                        last = RecordType::Result;
                    }
                }
                View::Comment(comment) => match (last, groups.last_mut()) {
                    (RecordType::Result, Some(group)) => {
                        if let Some(result) = group.results.last_mut() {
                            result.comments.push(comment);
                        }
                    }
                    (RecordType::Order, Some(group)) => group.comments.push(comment),
                    _ => {}
                },
                _ => last = record.kind(),
            }
        }
        groups
    }
}

fn at_record(error: ParseError, position: usize) -> ParseError {
    match error {
        ParseError::InvalidField { field, reason, .. } => {
            ParseError::InvalidField { record: position, field, reason }
        }
        other => other,
    }
}

fn lossy(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(16)];
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_come_from_the_header() {
        assert_eq!(Delimiters::from_header(b"H|\\^&|||x").unwrap(), Delimiters::STANDARD);
        let cepheid = Delimiters::from_header(b"H|@^\\|GXM").unwrap();
        assert_eq!(
            cepheid,
            Delimiters { field: b'|', repeat: b'@', component: b'^', escape: b'\\' }
        );
        assert_eq!(Delimiters::from_header(b"H|\\^&").unwrap(), Delimiters::STANDARD);
    }

    #[test]
    fn delimiters_rejected() {
        for (header, reason) in [
            (&b"H|\\^"[..], "the header must start with H and four delimiters"),
            (b"H|\\^^|", "the four delimiters must differ"),
            (b"H|A^&|", "delimiters must be printable punctuation characters"),
            (b"H| ^&|", "delimiters must be printable punctuation characters"),
            (b"H|\\^&x", "the delimiter definition must be followed by a field delimiter"),
        ] {
            assert_eq!(
                Delimiters::from_header(header),
                Err(ParseError::InvalidField { record: 1, field: 2, reason }),
                "{header:?}"
            );
        }
    }

    #[test]
    fn field_numbering_follows_the_standard() {
        let message =
            Message::parse(b"H|\\^&|ctl\rO|1|SID^R1^4||^^^GLU\\^^^NA|R\rL|1|N\r").unwrap();
        let header = &message.records()[0];
        assert_eq!(header.field(1).raw(), b"H");
        assert_eq!(header.field(2).raw(), b"\\^&");
        assert_eq!(header.field(2).repeats().count(), 1);
        assert_eq!(&*header.field(2).decode(), b"\\^&");
        assert_eq!(header.field(3).raw(), b"ctl");
        let order = &message.records()[1];
        assert_eq!(order.field(3).component(1).raw(), b"SID");
        assert_eq!(order.field(3).component(3).raw(), b"4");
        assert_eq!(order.field(4).raw(), b"");
        assert_eq!(order.field(5).repeats().count(), 2);
        assert_eq!(order.field(99).raw(), b"");
        assert_eq!(order.field(0).raw(), b"");
        assert_eq!(order.field_count(), 6);
    }

    #[test]
    fn records_end_with_cr_lf_or_crlf() {
        for text in
            [&b"H|\\^&\rP|1\rL|1"[..], b"H|\\^&\nP|1\nL|1\n", b"H|\\^&\r\nP|1\r\n\r\nL|1\r\n"]
        {
            let message = Message::parse(text).unwrap();
            assert_eq!(message.records().len(), 3, "{text:?}");
            assert!(message.terminator().is_some());
        }
    }

    #[test]
    fn structural_errors() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"", ParseError::Empty),
            (b"\r\n\r", ParseError::Empty),
            (b"P|1\rL|1", ParseError::MissingHeader { record: 1, found: "P".into() }),
            (b"H|\\^&\rX|1", ParseError::UnknownRecordType { record: 2, found: "X".into() }),
            (
                b"H|\\^&\rPP|1",
                ParseError::InvalidField {
                    record: 2,
                    field: 1,
                    reason: "the record type must be one letter",
                },
            ),
            (b"H|\\^&\rL|1\rR|1", ParseError::RecordAfterTerminator { record: 3 }),
            (b"H|\\^&\rP|1\rH|\\^&", ParseError::UnexpectedHeader { record: 3 }),
            (b"H|\\^&\rL|1\rH|\\^&\rL|1", ParseError::UnexpectedHeader { record: 3 }),
        ];
        for (text, expected) in cases {
            assert_eq!(Message::parse(text).unwrap_err(), *expected, "{:?}", lossy(text));
        }
    }

    #[test]
    fn several_messages_in_one_text() {
        let messages = Message::parse_all(b"H|\\^&\rL|1\rH|@^\\\rR|1|^^^X|1\rL|1").unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1].delimiters().repeat, b'@');
    }

    #[test]
    fn too_large() {
        let text = vec![b'x'; MESSAGE_BYTES_MAX + 1];
        assert!(matches!(Message::parse(&text), Err(ParseError::TooLarge { .. })));
    }
}
