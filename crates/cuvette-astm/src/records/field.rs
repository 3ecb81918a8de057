//! Fields, repeats and components, and the escape sequences inside them.

use std::borrow::Cow;

use super::Delimiters;

/// One field of a record: its raw bytes and the delimiters to read them with.
///
/// A field holds one or more repeats (split by the repeat delimiter), each of one or more
/// components (split by the component delimiter). Splitting happens on the raw bytes, before
/// escape sequences are resolved, so an escaped delimiter (`&F&`, `&S&`, `&R&`) never splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    raw: &'a [u8],
    delimiters: Delimiters,
}

/// One repeat of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat<'a> {
    raw: &'a [u8],
    delimiters: Delimiters,
}

/// One component of a repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component<'a> {
    raw: &'a [u8],
    delimiters: Delimiters,
}

/// How to turn record bytes into text. E1394 allows bytes 128–254 in data (LIS02-A2 §5) but
/// names no encoding; each instrument interface has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Charset {
    /// UTF-8, invalid sequences replaced by U+FFFD.
    #[default]
    Utf8Lossy,
    /// Windows-1252 (a superset of the printable Latin-1 range), as sent by e.g. Ortho VISION.
    /// Bytes 0x81, 0x8D, 0x8F, 0x90 and 0x9D map to the C1 controls, as WHATWG specifies.
    Windows1252,
}

impl Charset {
    /// Bytes as text in this character set (a whole message, before it is parsed: the
    /// delimiters are ASCII in both).
    pub fn decode(self, bytes: &[u8]) -> String {
        to_text(bytes, self)
    }
}

impl<'a> Field<'a> {
    pub(crate) fn new(raw: &'a [u8], delimiters: Delimiters) -> Self {
        Field { raw, delimiters }
    }

    /// The field's bytes as received, escape sequences and delimiters included.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether the field is empty (or absent).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The field's repeats. An empty field has one empty repeat.
    pub fn repeats(&self) -> impl Iterator<Item = Repeat<'a>> + use<'a> {
        let delimiters = self.delimiters;
        self.raw.split(move |&b| b == delimiters.repeat).map(move |raw| Repeat { raw, delimiters })
    }

    /// The first repeat: the whole value of a field that does not repeat.
    pub fn first(&self) -> Repeat<'a> {
        self.repeats().next().unwrap_or(Repeat { raw: &[], delimiters: self.delimiters })
    }

    /// Component `n` (1-based) of the first repeat; empty if absent.
    pub fn component(&self, n: usize) -> Component<'a> {
        self.first().component(n)
    }

    /// The components of the first repeat.
    pub fn components(&self) -> impl Iterator<Item = Component<'a>> + use<'a> {
        self.first().components()
    }

    /// The field's bytes with escape sequences resolved (delimiters inside it are kept).
    pub fn decode(&self) -> Cow<'a, [u8]> {
        unescape(self.raw, self.delimiters)
    }

    /// The field as UTF-8 text, lossily; see [`Field::text_as`].
    pub fn text(&self) -> String {
        self.text_as(Charset::Utf8Lossy)
    }

    /// The field as text in the given character set, escape sequences resolved.
    pub fn text_as(&self, charset: Charset) -> String {
        to_text(&self.decode(), charset)
    }
}

impl<'a> Repeat<'a> {
    /// The repeat's bytes as received.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether the repeat is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The repeat's components. An empty repeat has one empty component.
    pub fn components(&self) -> impl Iterator<Item = Component<'a>> + use<'a> {
        let delimiters = self.delimiters;
        self.raw
            .split(move |&b| b == delimiters.component)
            .map(move |raw| Component { raw, delimiters })
    }

    /// Component `n` (1-based); empty if absent.
    pub fn component(&self, n: usize) -> Component<'a> {
        n.checked_sub(1)
            .and_then(|index| self.components().nth(index))
            .unwrap_or(Component { raw: &[], delimiters: self.delimiters })
    }

    /// The repeat's bytes with escape sequences resolved.
    pub fn decode(&self) -> Cow<'a, [u8]> {
        unescape(self.raw, self.delimiters)
    }

    /// The repeat as UTF-8 text, lossily.
    pub fn text(&self) -> String {
        self.text_as(Charset::Utf8Lossy)
    }

    /// The repeat as text in the given character set.
    pub fn text_as(&self, charset: Charset) -> String {
        to_text(&self.decode(), charset)
    }
}

impl<'a> Component<'a> {
    /// The component's bytes as received.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether the component is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The component's bytes with escape sequences resolved.
    pub fn decode(&self) -> Cow<'a, [u8]> {
        unescape(self.raw, self.delimiters)
    }

    /// The component as UTF-8 text, lossily.
    pub fn text(&self) -> String {
        self.text_as(Charset::Utf8Lossy)
    }

    /// The component as text in the given character set.
    pub fn text_as(&self, charset: Charset) -> String {
        to_text(&self.decode(), charset)
    }
}

/// Resolves escape sequences (LIS02-A2 §5, E1394 "escape delimiter"): with `&` as the escape
/// character, `&F&` is the field delimiter, `&S&` the component delimiter, `&R&` the repeat
/// delimiter, `&E&` the escape character itself, and `&Xhh…&` the bytes written as pairs of
/// hexadecimal digits. Anything else between two escape characters (`&Z…&` local sequences,
/// formatting codes) and a lone escape character are kept verbatim, so no byte is lost.
pub(crate) fn unescape(raw: &[u8], delimiters: Delimiters) -> Cow<'_, [u8]> {
    let escape = delimiters.escape;
    if !raw.contains(&escape) {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.iter().position(|&b| b == escape) {
        out.extend_from_slice(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(len) = after.iter().position(|&b| b == escape) else {
            // No closing escape character: the rest is data.
            out.extend_from_slice(&rest[start..]);
            return Cow::Owned(out);
        };
        let sequence = &after[..len];
        match sequence {
            b"F" => out.push(delimiters.field),
            b"S" => out.push(delimiters.component),
            b"R" => out.push(delimiters.repeat),
            b"E" => out.push(escape),
            [b'X', hex @ ..]
                if !hex.is_empty()
                    && hex.len() % 2 == 0
                    && hex.iter().all(u8::is_ascii_hexdigit) =>
            {
                out.extend(hex.chunks(2).map(|pair| hex_digit(pair[0]) << 4 | hex_digit(pair[1])));
            }
            _ => out.extend_from_slice(&rest[start..start + len + 2]),
        }
        rest = &after[len + 1..];
    }
    out.extend_from_slice(rest);
    Cow::Owned(out)
}

fn hex_digit(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        // Callers check `is_ascii_hexdigit` first.
        _ => 0,
    }
}

fn to_text(bytes: &[u8], charset: Charset) -> String {
    match charset {
        Charset::Utf8Lossy => String::from_utf8_lossy(bytes).into_owned(),
        Charset::Windows1252 => bytes.iter().map(|&b| windows_1252(b)).collect(),
    }
}

/// Windows-1252 to Unicode, per the WHATWG encoding standard's index.
fn windows_1252(byte: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}',
        '\u{017D}', '\u{008F}', '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}',
        '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}',
        '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
    ];
    match byte {
        0x80..=0x9F => HIGH[usize::from(byte - 0x80)],
        _ => char::from(byte),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(raw: &[u8], delimiters: Delimiters, expected: &[u8]) {
        assert_eq!(&*unescape(raw, delimiters), expected);
    }

    #[test]
    fn escape_sequences_standard_delimiters() {
        let d = Delimiters::STANDARD;
        check(b"plain", d, b"plain");
        check(b"a&F&b", d, b"a|b");
        check(b"a&S&b&R&c&E&d", d, b"a^b\\c&d");
        check(b"&X0D0A&", d, b"\r\n");
        check(b"&Xc3a9&", d, "é".as_bytes());
        check(b"&Zlocal&", d, b"&Zlocal&");
        check(b"&X0&", d, b"&X0&");
        check(b"&XZZ&", d, b"&XZZ&");
        check(b"fish & chips", d, b"fish & chips");
        check(b"a&&b", d, b"a&&b");
        check(b"&F&&S&", d, b"|^");
    }

    #[test]
    fn escape_sequences_follow_the_declared_escape_character() {
        // Cepheid: repeat @, component ^, escape \.
        let d = Delimiters { field: b'|', repeat: b'@', component: b'^', escape: b'\\' };
        check(b"a\\R\\b", d, b"a@b");
        check(b"a\\E\\b", d, b"a\\b");
        check(b"a&F&b", d, b"a&F&b");
    }

    #[test]
    fn repeats_and_components_are_one_based() {
        let d = Delimiters::STANDARD;
        let field = Field::new(b"^^^A1^name\\^^^A2", d);
        let repeats: Vec<_> = field.repeats().map(|r| r.component(4).raw()).collect();
        assert_eq!(repeats, [b"A1", b"A2"]);
        assert_eq!(field.component(5).raw(), b"name");
        assert!(field.component(0).is_empty());
        assert!(field.component(9).is_empty());
        let empty = Field::new(b"", d);
        assert_eq!(empty.repeats().count(), 1);
        assert!(empty.first().is_empty());
    }

    #[test]
    fn escaped_delimiters_do_not_split() {
        let field = Field::new(b"a&S&b^c", Delimiters::STANDARD);
        assert_eq!(field.component(1).text(), "a^b");
        assert_eq!(field.component(2).text(), "c");
    }

    #[test]
    fn text_charsets() {
        let field = Field::new(b"\x8aC\x8e\xd0", Delimiters::STANDARD);
        assert_eq!(field.text_as(Charset::Windows1252), "ŠCŽÐ");
        assert_eq!(field.text(), "\u{FFFD}C\u{FFFD}\u{FFFD}");
        assert_eq!(field.decode(), &b"\x8aC\x8e\xd0"[..]);
    }
}
