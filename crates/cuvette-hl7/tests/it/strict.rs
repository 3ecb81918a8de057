//! Strict mode: what a conforming sender emits, and the exact position of what it must not.

use cuvette_hl7::{Message, ParseError};

use crate::parse::fixture;

const MSH: &str = "MSH|^~\\&|LAB|HOSP|LIS|CUVETTE|20240501120000||ORU^R01^ORU_R01|M1|P|2.5.1\r";

fn strict(input: &str) -> Result<usize, ParseError> {
    Message::parse_strict(input.as_bytes()).map(|m| m.segment_count())
}

fn check(input: &str, error: ParseError) {
    assert_eq!(strict(input), Err(error), "{input:?}");
}

#[test]
fn a_conforming_message_passes() {
    assert_eq!(strict(&format!("{MSH}PID|1||42^^^HOSP^MR\rZX1|A\rOBX|1|NM|X||5\r")), Ok(4));
    assert_eq!(strict(MSH), Ok(1));
}

#[test]
fn msh_first_at_byte_0() {
    check(&format!("\u{feff}{MSH}"), ParseError::ByteOrderMark);
    check(&format!("\r{MSH}"), ParseError::NotMsh { offset: 0, found: "\\rMS".into() });
    check(&format!(" {MSH}"), ParseError::NotMsh { offset: 0, found: " MS".into() });
    check("BHS|^~\\&\rMSH|^~\\&\r", ParseError::NotMsh { offset: 0, found: "BHS".into() });
    check("", ParseError::Empty);
}

// §2.5.4: the segment terminator is CR, and it cannot be changed.

#[test]
fn segments_end_with_cr_only() {
    let lf = MSH.replace('\r', "\n");
    check(&lf, ParseError::LineFeedTerminator { offset: MSH.len() - 1, segment_index: 0 });
    let crlf = format!("{MSH}PID|1\r\nOBX|1\r");
    check(&crlf, ParseError::LineFeedTerminator { offset: MSH.len() + 6, segment_index: 1 });
    let unterminated = format!("{MSH}PID|1");
    check(
        &unterminated,
        ParseError::MissingSegmentTerminator { offset: unterminated.len(), segment_index: 1 },
    );
    check(
        &format!("{MSH}\rPID|1\r"),
        ParseError::EmptySegment { offset: MSH.len(), segment_index: 1 },
    );
}

// §2.5.2: three-character segment IDs.

#[test]
fn segment_ids() {
    let at = MSH.len();
    let bad = |id: &str, found: &str| {
        check(
            &format!("{MSH}{id}\r"),
            ParseError::InvalidSegmentId { offset: at, segment_index: 1, found: found.into() },
        );
    };
    bad("pid|1", "pid");
    bad("PI|1", "PI");
    bad("PIDX|1", "PIDX");
    bad("1ID|1", "1ID");
    bad(" PID|1", " PID");
    bad("P-D|1", "P-D");
    assert_eq!(strict(&format!("{MSH}ZA9|1\rPV1\r")), Ok(3), "Z-segments and bare IDs are fine");
}

#[test]
fn one_msh_per_message() {
    check(
        &format!("{MSH}PID|1\r{MSH}"),
        ParseError::UnexpectedMsh { offset: MSH.len() + 6, segment_index: 2 },
    );
}

// §2.14.9: MSH-7, 9, 10, 11 and 12 are required.

#[test]
fn required_msh_fields() {
    let missing = |input: &str, field: usize, name: &'static str| {
        check(input, ParseError::MissingRequiredField { offset: 0, field, name });
    };
    missing("MSH|^~\\&|A\r", 7, "date/time of message");
    missing("MSH|^~\\&|||||20240101||||P|2.5.1\r", 9, "message type");
    missing("MSH|^~\\&|||||20240101||ACK^A01^ACK||P|2.5.1\r", 10, "message control ID");
    missing("MSH|^~\\&|||||20240101||ACK^A01^ACK|1||2.5.1\r", 11, "processing ID");
    missing("MSH|^~\\&|||||20240101||ACK^A01^ACK|1|P\r", 12, "version ID");
}

// The corpus file MDHHS-OML-O21-1 lost the CR between GT1 and ORC.

#[test]
fn a_glued_segment_is_found() {
    let bytes = fixture("hl7v251-oml-o21_fhir-converter_mdhhs-missing-segment-break.hl7");
    // Strict mode stops at the first LF; with CR terminators the glued ORC is what remains.
    let cr: Vec<u8> = bytes.iter().map(|&b| if b == b'\n' { b'\r' } else { b }).collect();
    let cr = [cr.as_slice(), b"\r"].concat();
    let error = Message::parse_strict(&cr).unwrap_err();
    let offset = bytes.windows(5).position(|w| w == b"ORC|N").unwrap();
    assert_eq!(
        error,
        ParseError::GluedSegment { offset, segment_index: 4, field: 21, found: "ORC".into() }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "segment 4 field 21 ends in \"ORC\" at byte {offset}: a segment glued on after a lost CR"
        )
    );
    // Lenient mode reads it, glued: GT1 carries ORC's fields and there is no ORC.
    let message = Message::parse(&bytes).unwrap();
    let gt1 = message.segment("GT1").unwrap();
    assert_eq!(gt1.field(21).text(), "Walmart^LORC");
    assert_eq!(gt1.field(22).text(), "NW");
    assert!(message.segment("ORC").is_none());
}

#[test]
fn glued_segments_need_a_plausible_first_field() {
    let glued = |tail: &str| strict(&format!("{MSH}NTE|1||see {tail}\r"));
    let found = |field, found: &str, tail: &str| {
        let input = format!("{MSH}NTE|1||see {tail}\r");
        let offset = input.rfind(&format!("{found}|")).unwrap();
        Err(ParseError::GluedSegment { offset, segment_index: 1, field, found: found.into() })
    };
    for (tail, field, id) in [
        ("resultOBX|2|NM", 3, "OBX"),
        ("x|OBX|2|NM", 4, "OBX"),
        ("resultMSA|AA|M1", 3, "MSA"),
        ("resultMSH|^~\\&|A", 3, "MSH"),
        ("resultORC|NW|1", 3, "ORC"),
    ] {
        assert_eq!(glued(tail), found(field, id, tail), "{tail}");
    }
    // Names and words that merely end like a segment ID pass.
    assert_eq!(glued("DANTE|Smith"), Ok(2));
    assert_eq!(glued("the OBX"), Ok(2));
    assert_eq!(glued("resultOBX|two"), Ok(2));
    assert_eq!(glued("resultORC|N"), Ok(2));
    assert_eq!(glued("resultMSA|XX"), Ok(2));
    assert_eq!(glued("^OBX|2"), Ok(2), "after a component separator it is a component");
}

#[test]
fn strict_success_reads_the_same_leniently() {
    let bytes = fixture("hl7v24-oru-r01_python-hl7_sample-hl7-sn-values.hl7");
    let strict = Message::parse_strict(&bytes).unwrap();
    let lenient = Message::parse(&bytes).unwrap();
    let raws = |m: &Message<'_>| m.segments().map(|s| s.raw().to_vec()).collect::<Vec<_>>();
    assert_eq!(raws(&strict), raws(&lenient));
}
