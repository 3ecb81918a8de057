//! Escape sequences (HL7 v2.5.1 §2.7), with python-hl7's test vectors.

use cuvette_hl7::{Message, Separators, escape, unescape};

fn unescaped(raw: &str) -> Vec<u8> {
    unescape(raw.as_bytes(), &Separators::STANDARD).into_owned()
}

fn escaped(data: &[u8]) -> String {
    String::from_utf8(escape(data, &Separators::STANDARD).into_owned()).unwrap()
}

#[test]
fn python_hl7_unescape() {
    assert_eq!(unescaped(r"\E\"), b"\\");
    assert_eq!(unescaped(r"\F\"), b"|");
    assert_eq!(unescaped(r"\S\"), b"^");
    assert_eq!(unescaped(r"\T\"), b"&");
    assert_eq!(unescaped(r"\R\"), b"~");
    assert_eq!(unescaped(r"\X20202020\"), b"    ");
    // Hex escapes are bytes in the message's character set: Latin-1 here.
    assert_eq!(unescaped(r"\Xe1\\Xe9\\Xed\\Xf3\\Xfa\"), b"\xe1\xe9\xed\xf3\xfa");
    // python-hl7 renders highlighting as `_text_`; we keep it, since bytes cannot highlight.
    assert_eq!(unescaped(r"\H\text\N\"), br"\H\text\N\");
}

#[test]
fn python_hl7_escape() {
    assert_eq!(escaped(b"\\"), r"\E\");
    assert_eq!(escaped(b"|"), r"\F\");
    assert_eq!(escaped(b"^"), r"\S\");
    assert_eq!(escaped(b"&"), r"\T\");
    assert_eq!(escaped(b"~"), r"\R\");
    // python-hl7 also hex-escapes non-ASCII text; bytes valid in the declared character set
    // stay as they are here, and hex is kept for what would break the segment or the frame.
    assert_eq!(escape(b"\xe1", &Separators::STANDARD).as_ref(), b"\xe1");
    assert_eq!(escaped(b"two\rlines"), r"two\X0D\lines");
}

#[test]
fn the_escape_character_is_escaped_first() {
    // Escaping `\F\` must not produce `\F\` again: its escape characters become `\E\`.
    assert_eq!(escaped(br"\F\"), r"\E\F\E\");
    assert_eq!(unescaped(r"\E\F\E\"), br"\F\");
}

#[test]
fn sequences_are_decoded_after_splitting() {
    let message = Message::parse(b"MSH|^~\\&\rNTE|1||A\\S\\B^C\\T\\D&E\\F\\F\r").unwrap();
    let field = message.segment("NTE").unwrap().field(3);
    assert_eq!(field.component(1).text(), "A^B", "an escaped ^ is data, not a component");
    assert_eq!(field.component(2).subcomponent(1).text(), "C&D");
    assert_eq!(field.component(2).subcomponent(2).text(), "E|F");
}

#[test]
fn sequences_use_the_declared_escape_character() {
    let s = Separators::new(b'$', b"%~!&").unwrap();
    assert_eq!(unescape(b"a!F!b!S!c!E!", &s).as_ref(), b"a$b%c!");
    assert_eq!(unescape(br"a\F\b", &s).as_ref(), br"a\F\b");
    assert_eq!(escape(b"a$b%c!d\\", &s).as_ref(), b"a!F!b!S!c!E!d\\");
}

#[test]
fn malformed_sequences_are_kept_and_never_panic() {
    for raw in [r"\", r"\\", r"\\\", r"\X", r"\X\", r"\XG1\", r"\X123\", r"abc\", r"\F", r"\.br"] {
        assert_eq!(unescaped(raw), raw.as_bytes(), "{raw}");
    }
    assert_eq!(unescaped(r"a\.br\b"), b"a\rb");
    assert_eq!(unescaped(r"\.sp\\Zabc\\C2842\\M2442\"), br"\.sp\\Zabc\\C2842\\M2442\");
}

#[test]
fn msh_2_is_never_unescaped() {
    let message = Message::parse(b"MSH|^~\\&|\\F\\\r").unwrap();
    let msh = message.msh().segment();
    assert_eq!(msh.field(2).decoded().as_ref(), br"^~\&");
    assert_eq!(msh.field(3).decoded().as_ref(), b"|");
}
