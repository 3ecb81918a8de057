//! Properties over generated input: what is built parses back to the same values, escaping
//! round-trips, arbitrary bytes never panic, and MLLP framing survives any split.

use cuvette_hl7::mllp::{MllpDeframer, frame};
use cuvette_hl7::{
    FieldValue, Message, MessageBuilder, SegmentBuilder, Separators, escape, unescape,
};
use proptest::prelude::*;

/// Printable ASCII that is neither a letter nor a digit: what may be a delimiter.
const PUNCTUATION: &[u8] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

fn separators() -> impl Strategy<Value = Separators> {
    prop_oneof![
        Just(Separators::STANDARD),
        Just(Separators::new(b'|', b"^~\\&#").unwrap()),
        Just(Separators::new(b'$', b"%~\\&").unwrap()),
        (5..=6usize)
            .prop_flat_map(|n| proptest::sample::subsequence(PUNCTUATION.to_vec(), n).prop_shuffle())
            .prop_map(|d| Separators::new(d[0], &d[1..]).unwrap()),
    ]
}

/// Data bytes, weighted toward what escaping must handle: delimiters, escape-sequence letters,
/// CR, LF and the MLLP block characters.
fn data() -> impl Strategy<Value = Vec<u8>> {
    let interesting = proptest::sample::select(b"|^~\\&#$%!\r\n\x0b\x1cXFSTREPH.br\"0a".to_vec());
    proptest::collection::vec(prop_oneof![3 => any::<u8>(), 2 => interesting], 0..10)
}

type Parts = Vec<Vec<Vec<Vec<u8>>>>;

fn field() -> impl Strategy<Value = Parts> {
    use proptest::collection::vec;
    vec(vec(vec(data(), 1..3), 1..4), 1..3)
}

fn segment_id() -> impl Strategy<Value = String> {
    let upper = proptest::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ".to_vec());
    let alnum = proptest::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".to_vec());
    (upper, alnum.clone(), alnum)
        .prop_map(|(a, b, c)| String::from_utf8(vec![a, b, c]).unwrap())
        .prop_filter("not a header", |id| !matches!(id.as_str(), "MSH" | "BHS" | "FHS"))
}

/// A generated segment: its ID and `(field number, value)` pairs.
type GeneratedSegment = (String, Vec<(usize, Parts)>);

fn segment() -> impl Strategy<Value = GeneratedSegment> {
    (segment_id(), proptest::collection::vec((1..12usize, field()), 0..6))
}

fn message() -> impl Strategy<Value = (Separators, Vec<(usize, Parts)>, Vec<GeneratedSegment>)> {
    let msh_fields =
        proptest::collection::vec((prop_oneof![3..7usize, 13..22usize], field()), 0..5);
    (separators(), msh_fields, proptest::collection::vec(segment(), 0..6))
}

/// The value each field number ends up with (a later setting of the same number wins).
fn last_wins(fields: &[(usize, Parts)]) -> Vec<(usize, &Parts)> {
    let mut out: Vec<(usize, &Parts)> = Vec::new();
    for (n, parts) in fields {
        out.retain(|(m, _)| m != n);
        out.push((*n, parts));
    }
    out
}

fn build(separators: Separators, msh: &[(usize, Parts)], segments: &[GeneratedSegment]) -> Vec<u8> {
    let mut header = SegmentBuilder::new("MSH")
        .field(7, "20240501120000")
        .field(9, FieldValue::components(["ORU", "R01", "ORU_R01"]))
        .field(10, "CTRL1")
        .field(11, "P")
        .field(12, "2.5.1");
    for (n, parts) in msh {
        header.set(*n, FieldValue::from_parts(parts.clone()));
    }
    let mut builder = MessageBuilder::with_separators(separators).segment(header);
    for (id, fields) in segments {
        let mut segment = SegmentBuilder::new(id);
        for (n, parts) in fields {
            segment.set(*n, FieldValue::from_parts(parts.clone()));
        }
        builder.push(segment);
    }
    builder.finish().expect("generated messages are valid")
}

fn assert_fields(segment: cuvette_hl7::Segment<'_>, fields: &[(usize, Parts)]) {
    for (n, parts) in last_wins(fields) {
        let field = segment.field(n);
        for (r, repetition) in parts.iter().enumerate() {
            for (c, component) in repetition.iter().enumerate() {
                for (s, sub) in component.iter().enumerate() {
                    let got = field.repetition(r + 1).component(c + 1).subcomponent(s + 1);
                    assert_eq!(
                        got.decoded().as_ref(),
                        sub.as_slice(),
                        "{}-{n}({}) component {} subcomponent {} in {:?}",
                        String::from_utf8_lossy(segment.id()),
                        r + 1,
                        c + 1,
                        s + 1,
                        field
                    );
                }
            }
        }
    }
}

/// Touches every accessor of every element, as a careless caller would.
fn walk(message: &Message<'_>) {
    let _ = message.msh().charset();
    let _ = message.msh().message_type().structure().text();
    for segment in message.segments() {
        let _ = (segment.id(), segment.field_count(), segment.field(0), segment.field(1000));
        for field in segment.fields() {
            let _ = (field.text(), field.is_null(), field.component(3).subcomponent(2).decoded());
            for repetition in field.repetitions() {
                for component in repetition.components() {
                    for sub in component.subcomponents() {
                        let _ = sub.text();
                    }
                }
            }
        }
    }
    for path in ["MSH-9-2", "PID-3(2)-1-1", "OBX(2)-5", "ZZZ-1"] {
        let _ = message.get(path).map(|v| v.text().into_owned());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn built_messages_parse_back_to_the_same_values((separators, msh, segments) in message()) {
        let bytes = build(separators, &msh, &segments);
        let lenient = Message::parse(&bytes).expect("lenient parse of a built message");
        let strict = Message::parse_strict(&bytes).expect("strict parse of a built message");
        prop_assert_eq!(lenient.separators(), separators);
        prop_assert_eq!(lenient.segment_count(), segments.len() + 1);
        prop_assert_eq!(strict.segment_count(), lenient.segment_count());
        assert_fields(lenient.msh().segment(), &msh);
        for (i, (id, fields)) in segments.iter().enumerate() {
            let segment = lenient.segment_at(i + 1).unwrap();
            prop_assert_eq!(segment.id(), id.as_bytes());
            assert_fields(segment, fields);
        }
        // And through MLLP.
        let mut deframer = MllpDeframer::new();
        deframer.push(&frame(&bytes));
        prop_assert_eq!(deframer.next_frame(), Some(Ok(bytes.clone())));
    }

    // A segment's fields are indexed once when it is read; whatever the number of fields (past
    // what the index keeps inline) and their lengths, a field read by its number is the one
    // between its separators.
    #[test]
    fn a_field_read_by_number_is_the_one_between_its_separators(
        separators in separators(),
        header in any::<bool>(),
        fields in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![3 => any::<u8>(), 2 => proptest::sample::select(b"|^~\\&$%".to_vec())],
                0..24),
            0..80),
    ) {
        let fs = separators.field();
        let fields: Vec<Vec<u8>> = fields
            .into_iter()
            .map(|f| f.into_iter().filter(|b| !matches!(b, b'\r' | b'\n') && *b != fs).collect())
            .collect();
        // "MSH" alone, with no field separator after it, is no header.
        let header = header && !fields.is_empty();
        let mut bytes = b"MSH".to_vec();
        bytes.push(fs);
        bytes.extend_from_slice(separators.encoding_characters());
        bytes.push(b'\r');
        let start = bytes.len();
        if header {
            // A second header (a lenient batch), whose first element after the ID is MSH-2.
            bytes.extend_from_slice(b"MSH");
        } else {
            bytes.extend_from_slice(b"ZLN");
        }
        for field in &fields {
            bytes.push(fs);
            bytes.extend_from_slice(field);
        }
        let raw = bytes[start..].to_vec();
        bytes.push(b'\r');
        let message = Message::parse(&bytes).expect("a valid header is enough for lenient mode");
        let segment = message.segment_at(1).expect("the segment after the header");
        prop_assert_eq!(segment.raw(), raw.as_slice());
        prop_assert_eq!(segment.is_header(), header);
        // Element 0 is the ID; a header's field n is element n - 1 (MSH-1 is the separator).
        let elements: Vec<&[u8]> = raw.split(|&b| b == fs).collect();
        let expected = |n: usize| -> &[u8] {
            match (header, n) {
                (_, 0) => b"",
                (true, 1) => &raw[3..4],
                (true, n) => elements.get(n - 1).copied().unwrap_or(b""),
                (false, n) => elements.get(n).copied().unwrap_or(b""),
            }
        };
        let count = if header { fields.len() + 1 } else { fields.len() };
        prop_assert_eq!(segment.field_count(), count);
        prop_assert_eq!(segment.id(), &raw[..3]);
        for n in 0..=count + 3 {
            prop_assert_eq!(segment.field(n).raw(), expected(n), "field {}", n);
        }
        let iterated: Vec<&[u8]> = segment.fields().map(|f| f.raw()).collect();
        let numbered: Vec<&[u8]> = (1..=count).map(|n| segment.field(n).raw()).collect();
        prop_assert_eq!(iterated, numbered);
    }

    #[test]
    fn escape_then_unescape_is_identity(separators in separators(), data in data()) {
        let escaped = escape(&data, &separators);
        prop_assert!(!escaped.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0x0B | 0x1C)));
        prop_assert!(
            !escaped.iter().any(|&b| b == separators.field() || b == separators.component()
                || b == separators.repetition() || b == separators.subcomponent())
        );
        let unescaped = unescape(&escaped, &separators);
        prop_assert_eq!(unescaped.as_ref(), data.as_slice());
    }

    #[test]
    fn unescape_never_panics(separators in separators(), raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = unescape(&raw, &separators);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(message) = Message::parse(&bytes) {
            walk(&message);
        }
        if let Ok(message) = Message::parse_strict(&bytes) {
            walk(&message);
        }
    }

    #[test]
    fn arbitrary_bytes_after_a_header_never_panic(
        separators in separators(),
        rest in proptest::collection::vec(
            prop_oneof![any::<u8>(), proptest::sample::select(b"|^~\\&\r\nMSHOBX".to_vec())], 0..256),
    ) {
        let mut bytes = b"MSH".to_vec();
        bytes.push(separators.field());
        bytes.extend_from_slice(separators.encoding_characters());
        bytes.push(separators.field());
        bytes.extend_from_slice(&rest);
        let lenient = Message::parse(&bytes).expect("a valid header is enough for lenient mode");
        walk(&lenient);
        if let Ok(strict) = Message::parse_strict(&bytes) {
            walk(&strict);
            let raws = |m: &Message<'_>| m.segments().map(|s| s.raw().to_vec()).collect::<Vec<_>>();
            prop_assert_eq!(raws(&strict), raws(&lenient));
        }
    }

    #[test]
    fn frames_survive_any_split(
        messages in proptest::collection::vec(
            proptest::collection::vec(any::<u8>().prop_filter("no block characters", |b| *b != 0x0B && *b != 0x1C), 0..40),
            1..5),
        junk in proptest::collection::vec(any::<u8>().prop_filter("no VT", |b| *b != 0x0B), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut wire = Vec::new();
        for message in &messages {
            wire.extend_from_slice(&junk);
            wire.extend_from_slice(&frame(message));
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
        cuts.sort_unstable();
        let mut deframer = MllpDeframer::new();
        let mut frames = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([wire.len()]) {
            deframer.push(&wire[start..cut]);
            frames.extend(deframer.frames());
            start = cut;
        }
        let expected: Vec<_> = messages.into_iter().map(Ok).collect();
        prop_assert_eq!(frames, expected);
    }

    #[test]
    fn how_reads_are_cut_never_changes_the_frames(
        max in 0..32usize,
        stream in proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(0x0B), Just(0x1C), Just(0x0D)], 0..200),
        chunk in 1..16usize,
    ) {
        let mut whole = MllpDeframer::with_frame_bytes_max(max);
        whole.push(&stream);
        let whole_out: Vec<_> = whole.frames().collect();
        let mut cut = MllpDeframer::with_frame_bytes_max(max);
        let mut cut_out = Vec::new();
        for piece in stream.chunks(chunk) {
            cut.push(piece);
            cut_out.extend(cut.frames());
        }
        prop_assert_eq!(cut_out, whole_out);
        prop_assert_eq!(cut.discarded_bytes(), whole.discarded_bytes());
    }

    #[test]
    fn the_deframer_never_yields_more_than_its_limit(
        max in 0..32usize,
        chunks in proptest::collection::vec(proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(0x0B), Just(0x1C), Just(0x0D)], 0..64), 0..8),
    ) {
        let mut deframer = MllpDeframer::with_frame_bytes_max(max);
        let mut pushed = 0u64;
        let mut delivered = 0u64;
        for chunk in &chunks {
            deframer.push(chunk);
            pushed += chunk.len() as u64;
            for frame in deframer.frames().flatten() {
                prop_assert!(frame.len() <= max);
                delivered += frame.len() as u64;
            }
        }
        prop_assert!(delivered + deframer.discarded_bytes() <= pushed);
    }
}
