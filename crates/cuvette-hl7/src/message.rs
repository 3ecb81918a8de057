//! Reading a message: segments found once, each segment's fields found once, everything below
//! them found on access.
//!
//! [`Message::parse`] finds the segments (one `memchr` pass) and keeps their byte ranges. A
//! [`Segment`] view records where its fields start when it is made (one pass over the segment,
//! eight bytes at a time), so that `field(n)` is a lookup rather than a rescan of the segment;
//! repetitions, components and subcomponents are slices of their field found when asked for,
//! and escape sequences are decoded only by [`Field::decoded`] and friends. Nothing is
//! converted to UTF-8 unless asked ([`Field::text`]): MSH-18 may declare ISO 8859-1, and a byte
//! like 0x96 must reach the caller as it came.

use std::borrow::Cow;
use std::fmt;

use memchr::{memchr, memchr_iter, memchr2};

use crate::escape::unescape;
use crate::path::Path;
use crate::{ParseError, Separators};

/// The largest message [`Message::parse`] accepts: 16 MiB, room for an ED field carrying a
/// scanned report in Base64, and a bound on what one message may cost to index.
pub const MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The most segments one message (or lenient batch) may hold: a CBC is ~40, a cumulative
/// microbiology report a few hundred; the index costs 16 bytes per segment.
pub const SEGMENTS_MAX: usize = 65_536;

/// A parsed HL7 v2 message borrowing its input.
///
/// Segments are indexed at parse time and a segment's fields when its view is made; all other
/// structure is found on access, within its field. Numbering
/// follows the standard: [`Segment::field`] takes HL7 field numbers, and repetitions,
/// components and subcomponents count from 1.
///
/// ```
/// use cuvette_hl7::Message;
///
/// let bytes = b"MSH|^~\\&|GHH LAB|ELAB-3|GHH OE|BLDG4|200202150930||ORU^R01|CNTRL-3456|P|2.4\r\
///               OBX|1|SN|1554-5^GLUCOSE||^182|mg/dl|70_105|H|||F\r";
/// let message = Message::parse(bytes)?;
/// assert_eq!(message.msh().control_id().text(), "CNTRL-3456");
/// assert_eq!(message.msh().message_type().trigger().text(), "R01");
/// let obx = message.segment("OBX").unwrap();
/// assert_eq!(obx.field(3).component(2).text(), "GLUCOSE");
/// assert_eq!(message.get("OBX-5-2").unwrap().text(), "182");
/// # Ok::<(), cuvette_hl7::ParseError>(())
/// ```
#[derive(Clone)]
pub struct Message<'a> {
    input: &'a [u8],
    separators: Separators,
    segments: Vec<Span>,
    msh: usize,
}

impl<'a> Message<'a> {
    /// Parses leniently, as a receiver should: what real senders emit is read, what cannot be
    /// a message is refused.
    ///
    /// Accepted beyond the standard: a leading UTF-8 BOM; whitespace and empty lines before
    /// the header and between or after segments; CR, LF and CR LF as segment terminators; a
    /// last segment without terminator; a batch (`BHS`) or file (`FHS`) header first, which
    /// declares the delimiters like MSH does (§2.10.3) — [`Message::msh`] is then the first
    /// MSH of the batch. Segment IDs are not checked and glued segments stay glued.
    ///
    /// Refused, because it cannot be an HL7 message: no header segment first, separators
    /// missing or unusable, no MSH at all, more than [`MESSAGE_BYTES_MAX`] bytes or
    /// [`SEGMENTS_MAX`] segments.
    pub fn parse(input: &'a [u8]) -> Result<Message<'a>, ParseError> {
        parse(input, Mode::Lenient)
    }

    /// Parses strictly, as a conformance check of what a sender emits.
    ///
    /// On top of what [`Message::parse`] refuses: anything before `MSH` (a BOM, whitespace),
    /// a batch header, segment terminators other than a single CR (§2.5.4), an empty segment,
    /// a last segment without CR, segment IDs not matching `[A-Z][A-Z0-9]{2}` (§2.5.2), a
    /// second MSH, an empty required MSH field (MSH-7, 9, 10, 11, 12; §2.14.9), and a segment
    /// glued onto the previous one after a lost CR.
    ///
    /// The glued-segment check is a heuristic with a standards-based confirmation: a field
    /// ending in one of these segment IDs — glued to data (`…LORC`) or alone — counts as glued
    /// only when the field after it looks like that segment's first field: a set ID of 1 to 4
    /// digits (AL1, DG1, FT1, GT1, IN1, NK1, NTE, OBR, OBX, PID, PR1, PV1, SPM, TQ1, TXA), a
    /// two-letter order control code (ORC-1, table 0119), an acknowledgment code (MSA-1,
    /// table 0008), or the message's own encoding characters (MSH, BHS, FHS).
    ///
    /// Errors name the first problem in byte order; see [`ParseError`] for each one.
    pub fn parse_strict(input: &'a [u8]) -> Result<Message<'a>, ParseError> {
        parse(input, Mode::Strict)
    }

    /// The whole input as given (a BOM and blank lines included).
    pub fn input(&self) -> &'a [u8] {
        self.input
    }

    /// The delimiters declared by the first header segment.
    pub fn separators(&self) -> Separators {
        self.separators
    }

    /// How many segments were found (blank lines skipped in lenient mode are not segments).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The segments in order.
    pub fn segments(&self) -> Segments<'_, 'a> {
        Segments { message: self, inner: self.segments.iter().enumerate() }
    }

    /// The segment at `index` (0-based; MSH of a plain message is 0).
    pub fn segment_at(&self, index: usize) -> Option<Segment<'a>> {
        self.segments.get(index).map(|&span| self.make_segment(index, span))
    }

    /// The first segment whose ID is `id`.
    pub fn segment(&self, id: &str) -> Option<Segment<'a>> {
        self.segments_with_id(id).next()
    }

    /// Every segment whose ID is `id`, in order.
    pub fn segments_with_id<'m>(&'m self, id: &'m str) -> impl Iterator<Item = Segment<'a>> + 'm {
        let (id, fs) = (id.as_bytes(), self.separators.field());
        // The ID is compared before a view is made, so that only the segments asked for have
        // their fields indexed. The ID is what comes before the first field separator.
        let wanted = move |raw: &[u8]| {
            !id.contains(&fs) && raw.starts_with(id) && raw.get(id.len()).is_none_or(|&b| b == fs)
        };
        self.segments
            .iter()
            .enumerate()
            .filter(move |(_, span)| wanted(&self.input[span.start..span.end]))
            .map(|(index, &span)| self.make_segment(index, span))
    }

    /// The message header (the first MSH; there is always one in a parsed message).
    pub fn msh(&self) -> Msh<'a> {
        Msh { segment: self.make_segment(self.msh, self.segments[self.msh]) }
    }

    /// The value at a path such as `PID-3`, `OBX(2)-5`, `PID-3(2)-1` or `SPM-2-1-2` (see
    /// [`Path`]); `None` when that segment occurrence does not exist or when `path` is not a
    /// valid path (use [`Path::parse`] and [`Message::resolve`] to tell these apart).
    pub fn get(&self, path: &str) -> Option<Value<'a>> {
        self.resolve(&Path::parse(path).ok()?)
    }

    /// The value at `path`; `None` when that segment occurrence does not exist. Absent fields,
    /// repetitions and components are empty values, as the standard reads omitted trailing
    /// elements (§2.5.3).
    pub fn resolve(&self, path: &Path) -> Option<Value<'a>> {
        let id = std::str::from_utf8(path.segment_id()).ok()?;
        let segment = self.segments_with_id(id).nth(path.occurrence() - 1)?;
        let field = segment.field(path.field());
        let value = match (path.repetition(), path.component(), path.subcomponent()) {
            (None, None, _) => field.value(),
            (Some(r), None, _) => field.repetition(r).value(),
            (r, Some(c), None) => field.repetition(r.unwrap_or(1)).component(c).value(),
            (r, Some(c), Some(s)) => {
                field.repetition(r.unwrap_or(1)).component(c).subcomponent(s).value()
            }
        };
        Some(value)
    }

    #[inline]
    fn make_segment(&self, index: usize, span: Span) -> Segment<'a> {
        Segment::new(&self.input[span.start..span.end], self.separators, index, span.start)
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.segments()).finish()
    }
}

/// Iterator over a message's segments ([`Message::segments`]).
pub struct Segments<'m, 'a> {
    message: &'m Message<'a>,
    inner: std::iter::Enumerate<std::slice::Iter<'m, Span>>,
}

impl<'a> Iterator for Segments<'_, 'a> {
    type Item = Segment<'a>;

    #[inline]
    fn next(&mut self) -> Option<Segment<'a>> {
        let (index, &span) = self.inner.next()?;
        Some(self.message.make_segment(index, span))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Segments<'_, '_> {}

/// One segment: its ID and fields.
#[derive(Clone, Copy)]
pub struct Segment<'a> {
    raw: &'a [u8],
    separators: Separators,
    index: usize,
    offset: usize,
    /// MSH, BHS or FHS: see [`Segment::is_header`].
    header: bool,
    fields: FieldIndex,
}

impl<'a> Segment<'a> {
    fn new(raw: &'a [u8], separators: Separators, index: usize, offset: usize) -> Segment<'a> {
        let fs = separators.field();
        let header =
            matches!(raw.get(..3), Some(b"MSH" | b"BHS" | b"FHS")) && raw.get(3) == Some(&fs);
        Segment { raw, separators, index, offset, header, fields: FieldIndex::new(raw, fs) }
    }

    /// The `k`-th (0-based) element between field separators: 0 is the ID.
    #[inline]
    fn element(&self, k: usize) -> &'a [u8] {
        self.fields.element(self.raw, self.separators.field(), k)
    }

    /// The segment ID: the bytes before the first field separator (`b"OBX"`).
    #[inline]
    pub fn id(&self) -> &'a [u8] {
        self.element(0)
    }

    /// The segment as on the wire, without its terminator.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Position in the message (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Byte offset of the segment's first byte in the input.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Whether this segment declares the delimiters (MSH, BHS, FHS), which shifts its field
    /// numbering by one: HL7 v2.5.1 §2.14.9, MSH-1 is the field separator itself and MSH-2 the
    /// encoding characters, so MSH-n is the (n-1)-th element after the ID.
    #[inline]
    pub fn is_header(&self) -> bool {
        self.header
    }

    /// Field `n` by its HL7 number (PID-3 is `field(3)`, MSH-9 is `field(9)`).
    ///
    /// MSH-1 (the field separator) and MSH-2 (the encoding characters) are returned as
    /// literal values: never split into components and never unescaped (§2.14.9.1–2). A field
    /// beyond the last one present — senders omit trailing empty fields (§2.5.3) — and the
    /// meaningless `field(0)` are empty.
    #[inline]
    pub fn field(&self, n: usize) -> Field<'a> {
        let (raw, literal) = if self.header {
            match n {
                0 => (&self.raw[..0], false),
                1 => (&self.raw[3..4], true),
                2 => (self.element(1), true),
                n => (self.element(n - 1), false),
            }
        } else if n == 0 {
            (&self.raw[..0], false)
        } else {
            (self.element(n), false)
        };
        Field(Element { raw, separators: self.separators, literal })
    }

    /// The fields present, from field 1 (MSH-1 for a header) to the last one sent.
    #[inline]
    pub fn fields(&self) -> Fields<'a> {
        let mut inner = Split::new(self.raw, Some(self.separators.field()));
        inner.next(); // The segment ID is not a field.
        let header = self.is_header();
        Fields {
            inner,
            separators: self.separators,
            msh1: header.then(|| &self.raw[3..4]),
            literal_next: header,
        }
    }

    /// The number of the last field present (0 for a segment that is only an ID).
    #[inline]
    pub fn field_count(&self) -> usize {
        let separators = self.fields.separator_count(self.raw, self.separators.field());
        if self.header { separators + 1 } else { separators }
    }
}

impl fmt::Debug for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Segment({:?})", self.raw.escape_ascii().to_string())
    }
}

/// Iterator over a segment's fields ([`Segment::fields`]), numbered from 1.
pub struct Fields<'a> {
    inner: Split<'a>,
    separators: Separators,
    msh1: Option<&'a [u8]>,
    literal_next: bool,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    #[inline]
    fn next(&mut self) -> Option<Field<'a>> {
        if let Some(raw) = self.msh1.take() {
            return Some(Field(Element { raw, separators: self.separators, literal: true }));
        }
        let raw = self.inner.next()?;
        let literal = std::mem::take(&mut self.literal_next);
        Some(Field(Element { raw, separators: self.separators, literal }))
    }
}

/// The message header segment with accessors for the fields an LIS reads (HL7 v2.5.1
/// §2.14.9). Every other field is at [`Msh::segment`]`.field(n)`.
#[derive(Clone, Copy, Debug)]
pub struct Msh<'a> {
    segment: Segment<'a>,
}

impl<'a> Msh<'a> {
    /// The MSH segment itself.
    pub fn segment(&self) -> Segment<'a> {
        self.segment
    }

    /// MSH-3 sending application (HD).
    pub fn sending_application(&self) -> Field<'a> {
        self.segment.field(3)
    }

    /// MSH-4 sending facility (HD).
    pub fn sending_facility(&self) -> Field<'a> {
        self.segment.field(4)
    }

    /// MSH-5 receiving application (HD).
    pub fn receiving_application(&self) -> Field<'a> {
        self.segment.field(5)
    }

    /// MSH-6 receiving facility (HD).
    pub fn receiving_facility(&self) -> Field<'a> {
        self.segment.field(6)
    }

    /// MSH-7 date/time of message (TS/DTM).
    pub fn date_time(&self) -> Field<'a> {
        self.segment.field(7)
    }

    /// MSH-9 message type (MSG): code, trigger event, structure.
    pub fn message_type(&self) -> MessageType<'a> {
        MessageType { field: self.segment.field(9) }
    }

    /// MSH-10 message control ID: echoed in MSA-2 and used to detect duplicates.
    pub fn control_id(&self) -> Field<'a> {
        self.segment.field(10)
    }

    /// MSH-11 processing ID (PT): `P` production, `T` training, `D` debugging.
    pub fn processing_id(&self) -> Field<'a> {
        self.segment.field(11)
    }

    /// MSH-12 version ID (VID), e.g. `2.5.1`.
    pub fn version(&self) -> Field<'a> {
        self.segment.field(12)
    }

    /// MSH-15 accept acknowledgment type (table 0155); empty in original mode.
    pub fn accept_ack_type(&self) -> Field<'a> {
        self.segment.field(15)
    }

    /// MSH-16 application acknowledgment type (table 0155); empty in original mode.
    pub fn application_ack_type(&self) -> Field<'a> {
        self.segment.field(16)
    }

    /// MSH-18 character set (first repetition; later ones name alternate sets for ISO 2022
    /// switching, §2.14.9.18).
    pub fn charset(&self) -> Charset<'a> {
        Charset::from_msh18(self.segment.field(18).repetition(1).raw())
    }
}

/// MSH-9 message type (data type MSG): e.g. `ORU^R01^ORU_R01`; older senders omit the
/// structure.
#[derive(Clone, Copy, Debug)]
pub struct MessageType<'a> {
    field: Field<'a>,
}

impl<'a> MessageType<'a> {
    /// MSG-1 message code (table 0076), e.g. `ORU`.
    pub fn code(&self) -> Component<'a> {
        self.field.component(1)
    }

    /// MSG-2 trigger event (table 0003), e.g. `R01`.
    pub fn trigger(&self) -> Component<'a> {
        self.field.component(2)
    }

    /// MSG-3 message structure (table 0354), e.g. `ORU_R01`; often empty before v2.4.
    pub fn structure(&self) -> Component<'a> {
        self.field.component(3)
    }

    /// The whole field.
    pub fn field(&self) -> Field<'a> {
        self.field
    }
}

/// The character set MSH-18 declares (HL7 table 0211), which decides how bytes become text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Charset<'a> {
    /// Empty MSH-18 or `ASCII`: 7-bit ASCII, the default when the field is not valued.
    Ascii,
    /// `8859/1`: ISO 8859-1 (Latin-1), one byte per character.
    Latin1,
    /// `UNICODE UTF-8`, or `UNICODE` as analyzers (e.g. Mindray) send it meaning UTF-8.
    Utf8,
    /// Anything else, as declared; text is then decoded as UTF-8 with replacement characters
    /// and the caller should decode [`Field::decoded`] bytes itself.
    Other(&'a [u8]),
}

impl<'a> Charset<'a> {
    /// Reads an MSH-18 value.
    pub fn from_msh18(raw: &'a [u8]) -> Charset<'a> {
        match raw.trim_ascii() {
            b"" | b"ASCII" => Charset::Ascii,
            b"8859/1" => Charset::Latin1,
            b"UNICODE UTF-8" | b"UNICODE" => Charset::Utf8,
            _ => Charset::Other(raw),
        }
    }

    /// Decodes bytes in this character set; invalid sequences become U+FFFD, never dropped.
    pub fn decode<'b>(&self, bytes: Cow<'b, [u8]>) -> Cow<'b, str> {
        match self {
            Charset::Latin1 if !bytes.is_ascii() => {
                // ISO 8859-1 maps each byte to the Unicode code point of the same value.
                Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect())
            }
            _ => lossy_utf8(bytes),
        }
    }
}

/// A field: one or more repetitions (HL7 v2.5.1 §2.5.3).
#[derive(Clone, Copy)]
pub struct Field<'a>(Element<'a>);

/// One repetition of a field: one or more components.
#[derive(Clone, Copy)]
pub struct Repetition<'a>(Element<'a>);

/// One component: one or more subcomponents.
#[derive(Clone, Copy)]
pub struct Component<'a>(Element<'a>);

/// One subcomponent: the smallest element.
#[derive(Clone, Copy)]
pub struct Subcomponent<'a>(Element<'a>);

/// The value found at a [`Path`], at whatever depth the path stops.
#[derive(Clone, Copy)]
pub struct Value<'a>(Element<'a>);

impl<'a> Field<'a> {
    /// The repetitions (split on the repetition separator). An empty field yields one empty
    /// repetition: a field always holds at least one.
    #[inline]
    pub fn repetitions(&self) -> Repetitions<'a> {
        Repetitions(self.0.parts(self.0.separators.repetition()))
    }

    /// Repetition `n` (from 1); empty when absent.
    #[inline]
    pub fn repetition(&self, n: usize) -> Repetition<'a> {
        Repetition(self.0.nth(self.0.separators.repetition(), n))
    }

    /// Component `n` (from 1) of the first repetition, the usual reading of `PID-5-1`.
    #[inline]
    pub fn component(&self, n: usize) -> Component<'a> {
        self.repetition(1).component(n)
    }

    /// A field read from bytes that are not part of a parsed message.
    pub(crate) fn from_raw(raw: &'a [u8], separators: Separators) -> Field<'a> {
        Field(Element { raw, separators, literal: false })
    }

    /// The delimiters this field is written with.
    pub(crate) fn separators(&self) -> Separators {
        self.0.separators
    }

    /// MSH-1 or MSH-2: never split, never unescaped.
    pub(crate) fn is_literal(&self) -> bool {
        self.0.literal
    }
}

impl<'a> Repetition<'a> {
    /// The components (split on the component separator).
    #[inline]
    pub fn components(&self) -> Components<'a> {
        Components(self.0.parts(self.0.separators.component()))
    }

    /// Component `n` (from 1); empty when absent.
    #[inline]
    pub fn component(&self, n: usize) -> Component<'a> {
        Component(self.0.nth(self.0.separators.component(), n))
    }
}

impl<'a> Component<'a> {
    /// The subcomponents (split on the subcomponent separator).
    #[inline]
    pub fn subcomponents(&self) -> Subcomponents<'a> {
        Subcomponents(self.0.parts(self.0.separators.subcomponent()))
    }

    /// Subcomponent `n` (from 1); empty when absent.
    #[inline]
    pub fn subcomponent(&self, n: usize) -> Subcomponent<'a> {
        Subcomponent(self.0.nth(self.0.separators.subcomponent(), n))
    }
}

macro_rules! value_methods {
    ($($t:ident),*) => {$(
        impl<'a> $t<'a> {
            /// The bytes as on the wire: delimiters of lower levels and escape sequences
            /// included.
            #[inline]
            pub fn raw(&self) -> &'a [u8] {
                self.0.raw
            }

            /// The bytes with escape sequences decoded (HL7 v2.5.1 §2.7; see
            /// [`unescape`](crate::unescape) for each sequence). Borrows when there is
            /// nothing to decode. On an element that still has lower levels, decoded
            /// delimiters become indistinguishable from real ones: decode leaves.
            pub fn decoded(&self) -> Cow<'a, [u8]> {
                if self.0.literal {
                    Cow::Borrowed(self.0.raw)
                } else {
                    unescape(self.0.raw, &self.0.separators)
                }
            }

            /// [`decoded`](Self::decoded) as UTF-8, invalid bytes replaced by U+FFFD.
            pub fn text(&self) -> Cow<'a, str> {
                lossy_utf8(self.decoded())
            }

            /// [`decoded`](Self::decoded) in the character set MSH-18 declares.
            pub fn text_in(&self, charset: Charset<'_>) -> Cow<'a, str> {
                charset.decode(self.decoded())
            }

            /// Empty: not present (§2.5.3: "not sent" and "empty" read the same).
            #[inline]
            pub fn is_empty(&self) -> bool {
                self.0.raw.is_empty()
            }

            /// The explicit null `""`: the receiver must delete the value it holds
            /// (§2.5.3, null values).
            #[inline]
            pub fn is_null(&self) -> bool {
                self.0.raw == b"\"\""
            }

            /// This element as a [`Value`].
            #[inline]
            pub fn value(&self) -> Value<'a> {
                Value(self.0)
            }
        }

        impl fmt::Debug for $t<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({:?})"), self.0.raw.escape_ascii().to_string())
            }
        }
    )*};
}

value_methods!(Field, Repetition, Component, Subcomponent, Value);

macro_rules! parts_iterator {
    ($($(#[$doc:meta])* $name:ident => $item:ident;)*) => {$(
        $(#[$doc])*
        pub struct $name<'a>(Parts<'a>);

        impl<'a> Iterator for $name<'a> {
            type Item = $item<'a>;

            #[inline]
            fn next(&mut self) -> Option<$item<'a>> {
                self.0.next().map($item)
            }
        }
    )*};
}

parts_iterator! {
    /// Iterator over a field's repetitions ([`Field::repetitions`]).
    Repetitions => Repetition;
    /// Iterator over a repetition's components ([`Repetition::components`]).
    Components => Component;
    /// Iterator over a component's subcomponents ([`Component::subcomponents`]).
    Subcomponents => Subcomponent;
}

struct Parts<'a> {
    split: Split<'a>,
    separators: Separators,
    literal: bool,
}

impl<'a> Iterator for Parts<'a> {
    type Item = Element<'a>;

    #[inline]
    fn next(&mut self) -> Option<Element<'a>> {
        let raw = self.split.next()?;
        Some(Element { raw, separators: self.separators, literal: self.literal })
    }
}

/// What every element view is: a slice of the input and the delimiters to read it with.
#[derive(Clone, Copy)]
struct Element<'a> {
    raw: &'a [u8],
    separators: Separators,
    /// MSH-1 and MSH-2: never split, never unescaped.
    literal: bool,
}

impl<'a> Element<'a> {
    #[inline]
    fn parts(&self, separator: u8) -> Parts<'a> {
        let separator = (!self.literal).then_some(separator);
        Parts {
            split: Split::new(self.raw, separator),
            separators: self.separators,
            literal: self.literal,
        }
    }

    #[inline]
    fn nth(&self, separator: u8, n: usize) -> Element<'a> {
        let raw = if n == 0 {
            &self.raw[..0]
        } else if self.literal {
            if n == 1 { self.raw } else { &self.raw[..0] }
        } else {
            element(self.raw, separator, n - 1)
        };
        Element { raw, separators: self.separators, literal: self.literal }
    }
}

/// How many field separators a segment view keeps the offsets of: MSH, PID, ORC and OBX as
/// laboratories send them fit; fields after the 32nd are found by scanning on from there.
const INDEXED_SEPARATORS: usize = 32;

/// Where a segment's field separators are, found once when its view is made, so that reading
/// fields by number costs one pass over the segment instead of one per field. It lives inline
/// in the (copied) view: no allocation per segment.
#[derive(Clone, Copy)]
struct FieldIndex {
    /// Offsets in the segment of its first `kept` field separators.
    separators: [u16; INDEXED_SEPARATORS],
    kept: u8,
    /// Whether every separator of the segment is kept. When not — more than
    /// [`INDEXED_SEPARATORS`] of them, or a segment longer than 64 KiB (an ED field carrying a
    /// document) — elements after the last kept separator are found by scanning on from it, so
    /// that a field near the start of a large segment does not cost a pass over all of it.
    complete: bool,
}

impl FieldIndex {
    fn new(raw: &[u8], fs: u8) -> FieldIndex {
        let mut separators = [0; INDEXED_SEPARATORS];
        let mut kept = 0;
        let scanned = &raw[..raw.len().min(usize::from(u16::MAX) + 1)];
        // Eight bytes at a time: fields are a few bytes long, too short for a `memchr` call to
        // pay for itself on each one.
        let mut words = scanned.chunks_exact(8);
        let mut last = [0; 8];
        let tail = words.remainder();
        // The field separator is printable (`Separators::new`), so the zeros after the tail
        // never match.
        last[..tail.len()].copy_from_slice(tail);
        const LOW7: u64 = u64::from_ne_bytes([0x7F; 8]);
        let pattern = u64::from_ne_bytes([fs; 8]);
        for (word_index, word) in (&mut words).chain([&last[..]]).enumerate() {
            let word = u64::from_le_bytes(word.try_into().expect("words of eight")) ^ pattern;
            // The high bit of each byte that was `fs` (now zero), and nothing else: adding 0x7F
            // to the low seven bits cannot carry into the next byte.
            let mut found = !((word & LOW7).wrapping_add(LOW7) | word | LOW7);
            while found != 0 {
                if kept == INDEXED_SEPARATORS {
                    return FieldIndex { separators, kept: kept as u8, complete: false };
                }
                // Below 64 KiB: only that much of the segment is scanned.
                separators[kept] = (word_index * 8 + found.trailing_zeros() as usize / 8) as u16;
                kept += 1;
                found &= found - 1;
            }
        }
        FieldIndex { separators, kept: kept as u8, complete: scanned.len() == raw.len() }
    }

    /// The `k`-th (0-based) element of `raw` between separators; empty when there are fewer.
    #[inline]
    fn element<'a>(&self, raw: &'a [u8], fs: u8, k: usize) -> &'a [u8] {
        let kept = usize::from(self.kept);
        let after = |i: usize| usize::from(self.separators[i]) + 1;
        if k < kept {
            let start = if k == 0 { 0 } else { after(k - 1) };
            &raw[start..usize::from(self.separators[k])]
        } else if self.complete {
            match k {
                0 => raw,
                k if k == kept => &raw[after(k - 1)..],
                _ => &raw[raw.len()..],
            }
        } else {
            let from = if kept == 0 { 0 } else { after(kept - 1) };
            element(&raw[from..], fs, k - kept)
        }
    }

    /// How many field separators `raw` holds.
    #[inline]
    fn separator_count(&self, raw: &[u8], fs: u8) -> usize {
        let kept = usize::from(self.kept);
        if self.complete {
            return kept;
        }
        let from = if kept == 0 { 0 } else { usize::from(self.separators[kept - 1]) + 1 };
        kept + memchr_iter(fs, &raw[from..]).count()
    }
}

/// The `k`-th (0-based) piece of `raw` split on `separator`; empty when there are fewer.
#[inline]
fn element(raw: &[u8], separator: u8, k: usize) -> &[u8] {
    let start = if k == 0 {
        0
    } else {
        match memchr_iter(separator, raw).nth(k - 1) {
            Some(at) => at + 1,
            None => return &raw[raw.len()..],
        }
    };
    let end = memchr(separator, &raw[start..]).map_or(raw.len(), |len| start + len);
    &raw[start..end]
}

/// `slice::split` on one byte with `memchr`; with no separator, the whole slice once.
struct Split<'a> {
    rest: Option<&'a [u8]>,
    separator: Option<u8>,
}

impl<'a> Split<'a> {
    #[inline]
    fn new(raw: &'a [u8], separator: Option<u8>) -> Split<'a> {
        Split { rest: Some(raw), separator }
    }
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match self.separator.and_then(|s| memchr(s, rest)) {
            Some(at) => {
                self.rest = Some(&rest[at + 1..]);
                Some(&rest[..at])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

fn lossy_utf8(bytes: Cow<'_, [u8]>) -> Cow<'_, str> {
    match bytes {
        Cow::Borrowed(bytes) => String::from_utf8_lossy(bytes),
        Cow::Owned(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Cow::Owned(text),
            Err(error) => Cow::Owned(String::from_utf8_lossy(error.as_bytes()).into_owned()),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lenient,
    Strict,
}

#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    end: usize,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bytes a lenient reader skips around and between segments: whitespace, NUL padding, and
/// MLLP block characters (VT, FS) left behind by a careless transport.
fn is_blank(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n' | 0x00 | 0x0B | 0x1C)
}

fn parse(input: &[u8], mode: Mode) -> Result<Message<'_>, ParseError> {
    let strict = mode == Mode::Strict;
    if input.len() > MESSAGE_BYTES_MAX {
        return Err(ParseError::TooLarge { bytes: input.len(), max: MESSAGE_BYTES_MAX });
    }
    let mut start = 0;
    if input.starts_with(BOM) {
        if strict {
            return Err(ParseError::ByteOrderMark);
        }
        start = BOM.len();
    }
    if !strict {
        while input.get(start).is_some_and(|&b| is_blank(b)) {
            start += 1;
        }
    }
    if start == input.len() {
        return Err(ParseError::Empty);
    }
    let separators = header_separators(input, start, mode)?;

    let mut segments = Vec::new();
    let mut msh = None;
    let mut pos = start;
    while pos < input.len() {
        let (end, terminator, next) = match memchr2(b'\r', b'\n', &input[pos..]) {
            Some(len) => {
                let end = pos + len;
                let crlf = input[end] == b'\r' && input.get(end + 1) == Some(&b'\n');
                (end, Some(input[end]), if crlf { end + 2 } else { end + 1 })
            }
            None => (input.len(), None, input.len()),
        };
        let raw = &input[pos..end];
        let index = segments.len();
        if strict {
            check_segment(raw, pos, index, &separators)?;
        } else if raw.iter().all(|&b| is_blank(b)) {
            pos = next;
            continue;
        }
        if index == SEGMENTS_MAX {
            return Err(ParseError::TooManySegments { offset: pos, max: SEGMENTS_MAX });
        }
        if raw.starts_with(b"MSH") && raw.get(3) == Some(&separators.field()) {
            match msh {
                None => msh = Some(index),
                Some(_) if strict => {
                    return Err(ParseError::UnexpectedMsh { offset: pos, segment_index: index });
                }
                Some(_) => {}
            }
        }
        if strict {
            match terminator {
                Some(b'\r') if next == end + 2 => {
                    return Err(ParseError::LineFeedTerminator {
                        offset: end + 1,
                        segment_index: index,
                    });
                }
                Some(b'\r') => {}
                Some(_) => {
                    return Err(ParseError::LineFeedTerminator {
                        offset: end,
                        segment_index: index,
                    });
                }
                None => {
                    return Err(ParseError::MissingSegmentTerminator {
                        offset: end,
                        segment_index: index,
                    });
                }
            }
        }
        segments.push(Span { start: pos, end });
        pos = next;
    }
    let msh = msh.ok_or(ParseError::MissingMsh { segments: segments.len() })?;
    Ok(Message { input, separators, segments, msh })
}

/// Reads MSH-1 and MSH-2 (or BHS/FHS-1 and -2) from the header starting at `start`.
fn header_separators(input: &[u8], start: usize, mode: Mode) -> Result<Separators, ParseError> {
    let end = memchr2(b'\r', b'\n', &input[start..]).map_or(input.len(), |len| start + len);
    let header = &input[start..end];
    let id = &header[..header.len().min(3)];
    let accepted = match mode {
        Mode::Strict => id == b"MSH",
        // HL7 v2.5.1 §2.10.3: FHS and BHS declare the delimiters exactly as MSH does.
        Mode::Lenient => matches!(id, b"MSH" | b"BHS" | b"FHS"),
    };
    if !accepted {
        let shown = &input[start..input.len().min(start + 3)];
        return Err(ParseError::NotMsh { offset: start, found: shown.escape_ascii().to_string() });
    }
    let Some(&field) = header.get(3) else {
        return Err(ParseError::MissingSeparators { offset: end });
    };
    let rest = &header[4..];
    let encoding = &rest[..memchr(field, rest).unwrap_or(rest.len())];
    if encoding.is_empty() {
        return Err(ParseError::MissingSeparators { offset: start + 4 });
    }
    Separators::new(field, encoding)
        .map_err(|reason| ParseError::InvalidSeparators { offset: start + 3, reason })
}

/// The strict checks of one segment's content (its terminator is checked by the caller).
fn check_segment(
    raw: &[u8],
    offset: usize,
    index: usize,
    separators: &Separators,
) -> Result<(), ParseError> {
    if raw.is_empty() {
        return Err(ParseError::EmptySegment { offset, segment_index: index });
    }
    let fs = separators.field();
    // §2.5.2: a segment ID is three characters, the first a letter; Z-segments included.
    let id_ok = raw.len() >= 3
        && raw[0].is_ascii_uppercase()
        && raw[1..3].iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && raw.get(3).is_none_or(|&b| b == fs);
    if !id_ok {
        let shown = &raw[..memchr(fs, raw).unwrap_or(raw.len()).min(8)];
        return Err(ParseError::InvalidSegmentId {
            offset,
            segment_index: index,
            found: shown.escape_ascii().to_string(),
        });
    }
    let segment = Segment::new(raw, *separators, index, offset);
    if index == 0 {
        // §2.14.9: these MSH fields are required (R) in v2.5.1.
        for (field, name) in [
            (7, "date/time of message"),
            (9, "message type"),
            (10, "message control ID"),
            (11, "processing ID"),
            (12, "version ID"),
        ] {
            if segment.field(field).is_empty() {
                return Err(ParseError::MissingRequiredField { offset, field, name });
            }
        }
    }
    check_glued(&segment, separators)
}

/// What must follow a glued segment ID for the strict check to call it glued: the first field
/// of that segment as the standard defines it.
#[derive(Clone, Copy)]
enum FirstField {
    /// A set ID (SI): 1 to 4 digits.
    SetId,
    /// ORC-1 order control (table 0119): two capital letters.
    OrderControl,
    /// MSA-1 acknowledgment code (table 0008).
    AckCode,
    /// MSH-2 / BHS-2 / FHS-2: the message's own encoding characters.
    EncodingCharacters,
}

const GLUED_SEGMENT_IDS: &[(&[u8; 3], FirstField)] = &[
    (b"AL1", FirstField::SetId),
    (b"DG1", FirstField::SetId),
    (b"FT1", FirstField::SetId),
    (b"GT1", FirstField::SetId),
    (b"IN1", FirstField::SetId),
    (b"NK1", FirstField::SetId),
    (b"NTE", FirstField::SetId),
    (b"OBR", FirstField::SetId),
    (b"OBX", FirstField::SetId),
    (b"PID", FirstField::SetId),
    (b"PR1", FirstField::SetId),
    (b"PV1", FirstField::SetId),
    (b"SPM", FirstField::SetId),
    (b"TQ1", FirstField::SetId),
    (b"TXA", FirstField::SetId),
    (b"ORC", FirstField::OrderControl),
    (b"MSA", FirstField::AckCode),
    (b"MSH", FirstField::EncodingCharacters),
    (b"BHS", FirstField::EncodingCharacters),
    (b"FHS", FirstField::EncodingCharacters),
];

fn check_glued(segment: &Segment<'_>, separators: &Separators) -> Result<(), ParseError> {
    let header = segment.is_header();
    // Element 0 is the ID; a header's element 1 is MSH-2, not data.
    let first_data = if header { 2 } else { 1 };
    let mut elements = Split::new(segment.raw, Some(separators.field())).enumerate().peekable();
    let mut element_start = 0;
    while let Some((i, raw)) = elements.next() {
        let start = element_start;
        element_start += raw.len() + 1;
        let Some(&(_, next)) = elements.peek() else { break };
        if i < first_data || raw.len() < 3 {
            continue;
        }
        let (before, tail) = raw.split_at(raw.len() - 3);
        let glued_to_data = before.last().is_none_or(|b| b.is_ascii_alphanumeric());
        if !glued_to_data {
            continue;
        }
        let Some(&(id, first)) = GLUED_SEGMENT_IDS.iter().find(|(id, _)| id[..] == *tail) else {
            continue;
        };
        let looks_like_first_field = match first {
            FirstField::SetId => {
                (1..=4).contains(&next.len()) && next.iter().all(u8::is_ascii_digit)
            }
            FirstField::OrderControl => next.len() == 2 && next.iter().all(u8::is_ascii_uppercase),
            FirstField::AckCode => matches!(next, b"AA" | b"AE" | b"AR" | b"CA" | b"CE" | b"CR"),
            FirstField::EncodingCharacters => next == separators.encoding_characters(),
        };
        if looks_like_first_field {
            return Err(ParseError::GluedSegment {
                offset: segment.offset + start + raw.len() - 3,
                segment_index: segment.index,
                field: if header { i + 1 } else { i },
                found: String::from_utf8_lossy(id).into_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_split() {
        assert_eq!(element(b"a|b|c", b'|', 0), b"a");
        assert_eq!(element(b"a|b|c", b'|', 2), b"c");
        assert_eq!(element(b"a|b|c", b'|', 3), b"");
        assert_eq!(element(b"", b'|', 0), b"");
        assert_eq!(element(b"a||", b'|', 2), b"");
        let split: Vec<&[u8]> = Split::new(b"a^^b", Some(b'^')).collect();
        assert_eq!(split, [&b"a"[..], b"", b"b"]);
        let whole: Vec<&[u8]> = Split::new(b"a^b", None).collect();
        assert_eq!(whole, [&b"a^b"[..]]);
    }

    #[test]
    fn glued_ids_are_unique() {
        for (i, (id, _)) in GLUED_SEGMENT_IDS.iter().enumerate() {
            assert!(!GLUED_SEGMENT_IDS[..i].iter().any(|(other, _)| other == id), "{id:?}");
        }
    }
}
