//! Writing records: what an LIS sends to an instrument (host-query answers, order downloads).

use super::{Delimiters, RecordType};

/// The highest field number a [`RecordBuilder`] writes. The longest record of LIS02-A2, the
/// patient record, has 35 fields.
pub const FIELDS_MAX: usize = 64;

/// One record to write. Values are given unescaped; [`RecordBuilder::encode`] escapes them for
/// the delimiters in use, so any text is safe to put in any field.
///
/// Field numbers follow the standard (1 is the record type, which the builder writes itself;
/// for a header, 2 is the delimiter definition, also written by the builder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBuilder {
    kind: RecordType,
    /// `fields[n]` holds field `n`: repeats of components of bytes.
    fields: Vec<Vec<Vec<Vec<u8>>>>,
}

impl RecordBuilder {
    /// An empty record of the given type.
    pub fn new(kind: RecordType) -> Self {
        RecordBuilder { kind, fields: Vec::new() }
    }

    /// A header record (`H|\^&`); add H-5 sender, H-14 timestamp and so on with
    /// [`RecordBuilder::field`].
    pub fn header() -> Self {
        RecordBuilder::new(RecordType::Header)
    }

    /// A patient record with its sequence number (P-2).
    pub fn patient(sequence: u32) -> Self {
        RecordBuilder::new(RecordType::Patient).field(2, sequence.to_string())
    }

    /// A test order record with its sequence number (O-2), specimen ID (O-3) and tests (O-5,
    /// one `^^^code` repeat per test, LIS02-A2 §5.6.1).
    pub fn order<I, T>(sequence: u32, specimen_id: impl AsRef<[u8]>, test_codes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let tests: Vec<Vec<Vec<u8>>> = test_codes
            .into_iter()
            .map(|code| vec![Vec::new(), Vec::new(), Vec::new(), code.as_ref().to_vec()])
            .collect();
        let mut order = RecordBuilder::new(RecordType::Order)
            .field(2, sequence.to_string())
            .field(3, specimen_id);
        order.set(5, tests);
        order
    }

    /// A terminator record: `L|1|code` (L-3: `N` normal, `I` no information, …).
    pub fn terminator(code: impl AsRef<[u8]>) -> Self {
        RecordBuilder::new(RecordType::Terminator).field(2, "1").field(3, code)
    }

    /// The record's type.
    pub fn kind(&self) -> RecordType {
        self.kind
    }

    /// Sets field `n` to one value.
    ///
    /// # Panics
    ///
    /// If `n` is 1 (the record type), 2 on a header (the delimiters), or above [`FIELDS_MAX`]:
    /// these are mistakes in the calling code, not in data.
    pub fn field(self, n: usize, value: impl AsRef<[u8]>) -> Self {
        self.components(n, [value])
    }

    /// Sets field `n` to one value made of components (1-based, in order).
    ///
    /// # Panics
    ///
    /// As [`RecordBuilder::field`].
    pub fn components<I, T>(mut self, n: usize, components: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let value = components.into_iter().map(|c| c.as_ref().to_vec()).collect();
        self.set(n, vec![value]);
        self
    }

    /// Sets field `n` to repeated values, each made of components.
    ///
    /// # Panics
    ///
    /// As [`RecordBuilder::field`].
    pub fn repeats<I, R, T>(mut self, n: usize, repeats: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let repeats = repeats
            .into_iter()
            .map(|r| r.into_iter().map(|c| c.as_ref().to_vec()).collect())
            .collect();
        self.set(n, repeats);
        self
    }

    fn set(&mut self, n: usize, value: Vec<Vec<Vec<u8>>>) {
        assert!((2..=FIELDS_MAX).contains(&n), "field {n} is not a data field (2..={FIELDS_MAX})");
        assert!(
            !(self.kind == RecordType::Header && n == 2),
            "H-2 is the delimiter definition, written by the builder"
        );
        if self.fields.len() <= n {
            self.fields.resize(n + 1, Vec::new());
        }
        self.fields[n] = value;
    }

    /// The record's bytes under `delimiters`, without the terminating `CR`. Delimiter
    /// characters in values become escape sequences (`&F&`, `&R&`, `&S&`, `&E&`); bytes E1394
    /// does not allow in data (LIS02-A2 §5: controls, 127, 255) become `&Xhh&`. Trailing empty
    /// components, repeats and fields are left out.
    pub fn encode(&self, delimiters: Delimiters) -> Vec<u8> {
        let mut out = vec![self.kind.letter()];
        if self.kind == RecordType::Header {
            out.push(delimiters.field);
            out.extend_from_slice(&delimiters.definition());
        }
        let first = if self.kind == RecordType::Header { 3 } else { 2 };
        let last = (first..self.fields.len())
            .rev()
            .find(|&n| self.fields[n].iter().any(|r| r.iter().any(|c| !c.is_empty())));
        let Some(last) = last else { return out };
        for n in first..=last {
            out.push(delimiters.field);
            let repeats = &self.fields[n];
            let repeats_used =
                repeats.iter().rposition(|r| r.iter().any(|c| !c.is_empty())).map_or(0, |i| i + 1);
            for (index, repeat) in repeats[..repeats_used].iter().enumerate() {
                if index > 0 {
                    out.push(delimiters.repeat);
                }
                let used = repeat.iter().rposition(|c| !c.is_empty()).map_or(0, |i| i + 1);
                for (index, component) in repeat[..used].iter().enumerate() {
                    if index > 0 {
                        out.push(delimiters.component);
                    }
                    escape_into(&mut out, component, delimiters);
                }
            }
        }
        out
    }
}

/// A whole message to write: records in order, under one set of delimiters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBuilder {
    delimiters: Delimiters,
    records: Vec<RecordBuilder>,
}

impl MessageBuilder {
    /// An empty message; its first record should be a header.
    pub fn new(delimiters: Delimiters) -> Self {
        MessageBuilder { delimiters, records: Vec::new() }
    }

    /// Appends a record.
    pub fn record(mut self, record: RecordBuilder) -> Self {
        self.records.push(record);
        self
    }

    /// The records' bytes, as [`crate::Link::send`] takes them.
    pub fn encode(&self) -> Vec<Vec<u8>> {
        self.records.iter().map(|r| r.encode(self.delimiters)).collect()
    }

    /// The message text: every record followed by `CR`.
    pub fn encode_text(&self) -> Vec<u8> {
        let mut text = Vec::new();
        for record in &self.records {
            text.extend(record.encode(self.delimiters));
            text.push(b'\r');
        }
        text
    }
}

fn escape_into(out: &mut Vec<u8>, value: &[u8], delimiters: Delimiters) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let escape = delimiters.escape;
    for &byte in value {
        let letter = if byte == delimiters.field {
            Some(b'F')
        } else if byte == delimiters.component {
            Some(b'S')
        } else if byte == delimiters.repeat {
            Some(b'R')
        } else if byte == escape {
            Some(b'E')
        } else {
            None
        };
        if let Some(letter) = letter {
            out.extend_from_slice(&[escape, letter, escape]);
        } else if matches!(byte, 7 | 9 | 11 | 12 | 32..=126 | 128..=254) {
            out.push(byte);
        } else {
            out.extend_from_slice(&[
                escape,
                b'X',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0x0F)],
                escape,
            ]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Message;

    #[test]
    fn host_query_answer() {
        let message = MessageBuilder::new(Delimiters::STANDARD)
            .record(RecordBuilder::header().field(5, "Cuvette").field(12, "P").field(13, "LIS2-A2"))
            .record(RecordBuilder::patient(1).field(3, "MRN1"))
            .record(RecordBuilder::order(1, "SID123", ["GLU", "NA"]).field(6, "R").field(26, "Q"))
            .record(RecordBuilder::terminator("N"));
        assert_eq!(
            message.encode_text(),
            b"H|\\^&|||Cuvette|||||||P|LIS2-A2\r\
              P|1|MRN1\r\
              O|1|SID123||^^^GLU\\^^^NA|R||||||||||||||||||||Q\r\
              L|1|N\r"
        );
    }

    #[test]
    fn values_are_escaped_and_round_trip() {
        let nasty = b"a|b\\c^d&e\rf\x7f\xff\xe9".as_slice();
        for delimiters in [
            Delimiters::STANDARD,
            Delimiters { field: b'|', repeat: b'@', component: b'^', escape: b'\\' },
        ] {
            let text = MessageBuilder::new(delimiters)
                .record(RecordBuilder::header())
                .record(RecordBuilder::order(1, nasty, [nasty]))
                .record(RecordBuilder::terminator("N"))
                .encode_text();
            let message = Message::parse(&text).unwrap();
            let order = message.orders().next().unwrap();
            assert_eq!(order.specimen_id().decode(), nasty);
            let tests: Vec<_> = order.test_ids().collect();
            assert_eq!(tests.len(), 1);
            assert_eq!(tests[0].manufacturer_code().decode(), nasty);
        }
    }

    #[test]
    fn trailing_empties_are_left_out() {
        let record = RecordBuilder::new(RecordType::Result)
            .field(2, "1")
            .components(4, ["", "12.5", ""])
            .repeats(7, [vec!["H"], vec![""]])
            .field(9, "");
        assert_eq!(record.encode(Delimiters::STANDARD), b"R|1||^12.5|||H");
        assert_eq!(RecordBuilder::new(RecordType::Terminator).encode(Delimiters::STANDARD), b"L");
        assert_eq!(RecordBuilder::header().encode(Delimiters::STANDARD), b"H|\\^&");
    }

    #[test]
    #[should_panic(expected = "H-2 is the delimiter definition")]
    fn header_delimiters_are_not_a_data_field() {
        let _ = RecordBuilder::header().field(2, "x");
    }

    #[test]
    #[should_panic(expected = "is not a data field")]
    fn field_numbers_are_bounded() {
        let _ = RecordBuilder::patient(1).field(FIELDS_MAX + 1, "x");
    }
}
