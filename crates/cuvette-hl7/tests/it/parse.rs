//! Reading messages (lenient mode), rule by rule of HL7 v2.5.1 chapter 2.

use std::borrow::Cow;

use cuvette_hl7::{
    Charset, MESSAGE_BYTES_MAX, Message, ParseError, Path, PathError, SEGMENTS_MAX, SeparatorError,
};

pub fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const SN_VALUES: &str = "hl7v24-oru-r01_python-hl7_sample-hl7-sn-values.hl7";
const REP_SAMPLE: &str = "hl7v24-oru-r01_python-hl7_rep-sample-subcomponents.hl7";

fn texts<'a>(values: impl Iterator<Item = Cow<'a, str>>) -> Vec<String> {
    values.map(Cow::into_owned).collect()
}

// §2.14.9.1–2 and §2.5.4: MSH-1 is the field separator, MSH-2 the encoding characters, so
// MSH-n is the (n-1)-th element after the ID while SEG-n is the n-th.

#[test]
fn msh_1_is_the_field_separator_and_msh_2_the_encoding_characters() {
    let bytes = fixture(SN_VALUES);
    let message = Message::parse(&bytes).unwrap();
    let msh = message.msh().segment();
    assert_eq!(msh.id(), b"MSH");
    assert!(msh.is_header());
    assert_eq!(msh.field(1).raw(), b"|");
    assert_eq!(msh.field(2).raw(), br"^~\&");
    // MSH-2 is never split into components nor unescaped.
    assert_eq!(msh.field(2).component(1).raw(), br"^~\&");
    assert_eq!(msh.field(2).decoded().as_ref(), br"^~\&");
    assert_eq!(msh.field(3).text(), "GHH LAB");
    assert_eq!(msh.field(9).raw(), b"ORU^R01");
    assert_eq!(msh.field(12).text(), "2.4");
    let obx = message.segment("OBX").unwrap();
    assert_eq!(obx.field(1).text(), "1");
    assert_eq!(obx.field(2).text(), "SN");
    assert_eq!(obx.field(3).raw(), b"1554-5^GLUCOSE^POST 12H CFST:MCNC:PT:SER/PLAS:QN");
    assert_eq!(obx.field(0).raw(), b"", "field 0 does not exist: fields count from 1");
}

#[test]
fn fields_iterate_in_hl7_numbering() {
    let bytes = fixture(SN_VALUES);
    let message = Message::parse(&bytes).unwrap();
    for segment in message.segments() {
        let fields: Vec<_> = segment.fields().collect();
        assert_eq!(fields.len(), segment.field_count(), "{segment:?}");
        for (i, field) in fields.iter().enumerate() {
            assert_eq!(field.raw(), segment.field(i + 1).raw(), "{segment:?} field {}", i + 1);
        }
    }
    let msh = message.msh().segment();
    assert_eq!(msh.field_count(), 12);
    assert_eq!(message.segment("PID").unwrap().field_count(), 20);
}

#[test]
fn separators_are_read_from_msh_never_assumed() {
    let bytes = fixture("hl7-nonstd-separators_python-hl7_test-parse.hl7");
    let message = Message::parse(&bytes).unwrap();
    let s = message.separators();
    assert_eq!((s.field(), s.component()), (b'$', b'%'));
    assert_eq!(message.msh().sending_application().text(), "GHH LAB");
    let pid = message.segment("PID").unwrap();
    assert_eq!(pid.field(3).text(), "555-44-4444");
    let name = pid.field(5);
    let components = texts(name.repetition(1).components().map(|c| c.text()));
    assert_eq!(components, ["EVERYWOMAN", "EVE", "E", "", "", "L"]);
    // `^` and `|` mean nothing here.
    let other = Message::parse(b"MSH$%~\\&$A|B^C\r").unwrap();
    assert_eq!(other.msh().sending_application().text(), "A|B^C");
}

#[test]
fn a_fifth_encoding_character_declares_truncation() {
    let bytes = fixture("hl7v27-rsp-k22_hl7apy_five-encoding-chars.hl7");
    let message = Message::parse(&bytes).unwrap();
    assert_eq!(message.separators().truncation(), Some(b'#'));
    assert_eq!(message.msh().segment().field(2).raw(), br"^~\&#");
    assert_eq!(message.msh().sending_application().text(), "SEND APP");
    assert_eq!(message.get("QPD-3(2)-1").unwrap().text(), "@PID.5.1");
    assert_eq!(message.get("QPD-3(2)-2").unwrap().text(), "SMITH");
}

// §2.5.3: field → repetitions (~) → components (^) → subcomponents (&).

#[test]
fn repetitions_components_and_subcomponents() {
    let bytes = fixture(REP_SAMPLE);
    let message = Message::parse(&bytes).unwrap();
    let pid = message.segment("PID").unwrap();
    assert_eq!(pid.field(1).text(), "Field1");
    assert_eq!(
        texts(pid.field(2).repetition(1).components().map(|c| c.text())),
        ["Component1", "Component2"]
    );
    let field3 = pid.field(3);
    assert_eq!(field3.component(2).raw(), b"Sub-Component1&Sub-Component2");
    assert_eq!(
        texts(field3.component(2).subcomponents().map(|s| s.text())),
        ["Sub-Component1", "Sub-Component2"]
    );
    assert_eq!(field3.component(3).text(), "Component3");
    assert_eq!(texts(pid.field(4).repetitions().map(|r| r.text())), ["Repeat1", "Repeat2"]);
    // python-hl7's accessor examples, in the standard's notation (its `PID.3.1.2.2` counts
    // the repetition too).
    assert_eq!(message.get("PID-3-2-2").unwrap().text(), "Sub-Component2");
    assert_eq!(message.get("PID.3.2.2").unwrap().text(), "Sub-Component2");
    assert_eq!(message.get("PID-4(2)-1").unwrap().text(), "Repeat2");
    assert_eq!(message.get("PID-1").unwrap().text(), "Field1");
    assert_eq!(message.get("PID-3-2-3").unwrap().text(), "");
    assert_eq!(message.get("PID-3-4").unwrap().text(), "");
}

#[test]
fn an_empty_first_repetition_is_kept() {
    let message = Message::parse(b"MSH|^~\\&\rPID|~Repeat2\r").unwrap();
    let field = message.segment("PID").unwrap().field(1);
    assert_eq!(texts(field.repetitions().map(|r| r.text())), ["", "Repeat2"]);
    assert!(field.repetition(1).is_empty());
    assert!(field.repetition(3).is_empty());
    assert!(field.repetition(0).is_empty());
}

#[test]
fn omitted_trailing_elements_read_as_empty() {
    let bytes = fixture(REP_SAMPLE);
    let message = Message::parse(&bytes).unwrap();
    assert!(message.get("MSH-20").unwrap().is_empty());
    let pid = message.segment("PID").unwrap();
    assert!(pid.field(99).is_empty());
    assert!(pid.field(1).component(5).subcomponent(9).is_empty());
}

// §2.5.3: `""` is the explicit null (delete the value); empty means not present.

#[test]
fn explicit_null_differs_from_empty() {
    let bytes = fixture("hl7v23-adt-a01_python-hl7_sample-msh-quoted-nulls.hl7");
    let message = Message::parse(&bytes).unwrap();
    let pv1 = message.segment("PV1").unwrap();
    let null = pv1.field(9);
    assert!(null.is_null());
    assert!(!null.is_empty());
    assert_eq!(null.text(), "\"\"");
    let empty = pv1.field(6);
    assert!(empty.is_empty());
    assert!(!empty.is_null());
    let in1 = message.segment("IN1").unwrap();
    assert!(in1.field(5).component(2).is_null(), "a null component: {:?}", in1.field(5));
    // PID-3 repeats.
    let ids = texts(
        message.segment("PID").unwrap().field(3).repetitions().map(|r| r.component(1).text()),
    );
    assert_eq!(ids, ["2148790", "162840"]);
}

// §2.5.4 segment terminator CR; receivers also meet LF and CR LF, a BOM and blank lines.

#[test]
fn cr_lf_crlf_and_mixed_terminators_read_the_same() {
    let lines = ["MSH|^~\\&|A|B|||20240101||ORU^R01|1|P|2.5.1", "PID|1||42", "OBX|1|NM|X||5"];
    let cr = lines.join("\r");
    let reference = Message::parse(cr.as_bytes()).unwrap();
    let shape =
        |m: &Message<'_>| -> Vec<Vec<u8>> { m.segments().map(|s| s.raw().to_vec()).collect() };
    for joined in [
        lines.join("\n"),
        lines.join("\r\n"),
        format!("{}\r\n{}\n{}\r", lines[0], lines[1], lines[2]),
        format!("\u{feff}{}\n\n\r\n{}\r\r{}\n\n  \n", lines[0], lines[1], lines[2]),
        format!("\r\n \t\n{}\r{}\r{}", lines[0], lines[1], lines[2]),
    ] {
        let message =
            Message::parse(joined.as_bytes()).unwrap_or_else(|e| panic!("{joined:?}: {e}"));
        assert_eq!(shape(&message), shape(&reference), "{joined:?}");
        assert_eq!(message.get("OBX-5").unwrap().text(), "5");
    }
}

#[test]
fn the_bom_fixtures_start_at_msh() {
    let bytes = fixture("hl7v25-oru-r01_fhir-converter_lab-oru-1-bom-partial.hl7");
    let message = Message::parse(&bytes).unwrap();
    assert_eq!(message.msh().segment().offset(), 3);
    assert_eq!(message.msh().control_id().text(), "182");
    // OBX-11 `I`: result pending, value empty.
    let first = message.segment("OBX").unwrap();
    assert!(first.field(5).is_empty());
    assert_eq!(first.field(11).text(), "I");
}

#[test]
fn trailing_spaces_are_data() {
    let bytes = fixture("hl7v23-orm-o01_fhir-converter_lab-orm-1-bom.hl7");
    let message = Message::parse(&bytes).unwrap();
    let pid = message.segment("PID").unwrap();
    assert_eq!(pid.field(pid.field_count()).text(), "NO ");
}

// Lenient mode still refuses what cannot be a message, and says exactly why.

#[test]
fn what_cannot_be_a_message_is_refused() {
    let check = |input: &[u8], error: ParseError| {
        assert_eq!(
            Message::parse(input).unwrap_err(),
            error,
            "{:?}",
            input.escape_ascii().to_string()
        );
    };
    check(b"", ParseError::Empty);
    check(b"\xEF\xBB\xBF \r\n\r\n", ParseError::Empty);
    check(b"PID|1||42\r", ParseError::NotMsh { offset: 0, found: "PID".into() });
    check(b"\n\nHello", ParseError::NotMsh { offset: 2, found: "Hel".into() });
    check(b"MS", ParseError::NotMsh { offset: 0, found: "MS".into() });
    check(b"MSH", ParseError::MissingSeparators { offset: 3 });
    check(b"MSH\rPID|1", ParseError::MissingSeparators { offset: 3 });
    check(b"MSH|", ParseError::MissingSeparators { offset: 4 });
    check(b"MSH||A", ParseError::MissingSeparators { offset: 4 });
    check(
        b"MSH|^~\\|A",
        ParseError::InvalidSeparators {
            offset: 3,
            reason: SeparatorError::EncodingCharacterCount { count: 3 },
        },
    );
    check(
        b"MSH|^~\\^|A",
        ParseError::InvalidSeparators {
            offset: 3,
            reason: SeparatorError::Duplicate { byte: b'^' },
        },
    );
    check(
        b"MSH ^~\\&",
        ParseError::InvalidSeparators {
            offset: 3,
            reason: SeparatorError::NotPrintable { byte: b' ' },
        },
    );
    check(
        b"MSHA^~\\&",
        ParseError::InvalidSeparators {
            offset: 3,
            reason: SeparatorError::Alphanumeric { byte: b'A' },
        },
    );
    check(b"BHS|^~\\&\rBTS|0\r", ParseError::MissingMsh { segments: 2 });
}

#[test]
fn error_messages_name_the_position() {
    let error = Message::parse(b"\r\nPID|1").unwrap_err();
    assert_eq!(error.to_string(), "expected MSH at byte 2, found \"PID\"");
    assert_eq!(error.offset(), Some(2));
}

#[test]
fn limits() {
    let mut huge = b"MSH|^~\\&\r".to_vec();
    huge.resize(MESSAGE_BYTES_MAX + 1, b'A');
    assert_eq!(
        Message::parse(&huge).unwrap_err(),
        ParseError::TooLarge { bytes: MESSAGE_BYTES_MAX + 1, max: MESSAGE_BYTES_MAX }
    );
    huge.truncate(MESSAGE_BYTES_MAX);
    assert!(Message::parse(&huge).is_ok(), "exactly the limit is accepted");

    let mut many = b"MSH|^~\\&\r".to_vec();
    for _ in 1..SEGMENTS_MAX {
        many.extend_from_slice(b"Z01\r");
    }
    assert_eq!(Message::parse(&many).unwrap().segment_count(), SEGMENTS_MAX);
    let offset = many.len();
    many.extend_from_slice(b"Z01\r");
    assert_eq!(
        Message::parse(&many).unwrap_err(),
        ParseError::TooManySegments { offset, max: SEGMENTS_MAX }
    );
}

// An ED field carries a whole document (a scanned report in Base64) in one OBX: the fields
// before it, after it, and around the 64 KiB the field index covers are read exactly.

#[test]
fn fields_around_a_document_larger_than_64_kib_are_read_exactly() {
    for length in [65_520, 65_525, 65_526, 65_527, 65_528, 65_529, 65_535, 65_536, 200_000] {
        let mut bytes = b"MSH|^~\\&|LAB||LIS||20240501120000||ORU^R01|1|P|2.5.1\r".to_vec();
        bytes.extend_from_slice(b"OBX|1|ED|11502-2^Laboratory report^LN||^AP^PDF^Base64^");
        let document = vec![b'Q'; length];
        bytes.extend_from_slice(&document);
        bytes.extend_from_slice(b"||||||F");
        for n in 12..=40 {
            bytes.extend_from_slice(format!("|f{n}").as_bytes());
        }
        bytes.push(b'\r');
        let message = Message::parse(&bytes).unwrap();
        let obx = message.segment("OBX").unwrap();
        assert_eq!(obx.field(3).component(2).text(), "Laboratory report", "{length}");
        assert_eq!(obx.field(5).component(5).raw(), document.as_slice(), "{length}");
        assert_eq!(obx.field(6).raw(), b"", "{length}");
        assert_eq!(obx.field(11).text(), "F", "{length}");
        assert_eq!(obx.field(12).text(), "f12", "{length}");
        assert_eq!(obx.field(40).text(), "f40", "{length}");
        assert_eq!(obx.field(41).raw(), b"", "{length}");
        assert_eq!(obx.field_count(), 40, "{length}");
        assert_eq!(obx.fields().count(), 40, "{length}");
        assert_eq!(message.get("OBX-40").unwrap().text(), "f40", "{length}");
    }
}

// An OBR or PID may carry 40 and more fields, more than the field index keeps inline; the
// ones past it are found by reading on from the last one kept.

#[test]
fn fields_past_the_thirty_second_are_read_exactly() {
    let mut obr = String::from("OBR|1");
    for n in 2..=50 {
        obr.push_str(&format!("|{n}^{}", n * 10));
    }
    let bytes = format!("MSH|^~\\&|LAB||LIS||20240501120000||ORU^R01|1|P|2.5.1\r{obr}\r");
    let message = Message::parse(bytes.as_bytes()).unwrap();
    let obr = message.segment("OBR").unwrap();
    assert_eq!(obr.field_count(), 50);
    assert_eq!(obr.field(1).text(), "1");
    for n in 2..=50 {
        assert_eq!(obr.field(n).component(1).text(), n.to_string());
        assert_eq!(obr.field(n).component(2).text(), (n * 10).to_string());
    }
    assert_eq!(obr.field(51).raw(), b"");
}

// §2.10.3: a batch header declares the delimiters like MSH.

#[test]
fn a_batch_reads_with_msh_as_its_first_message_header() {
    let bytes = fixture("hl7v25-batch-bhs-bts_python-hl7_sample-batch1.hl7");
    let message = Message::parse(&bytes).unwrap();
    let first = message.segment_at(0).unwrap();
    assert_eq!(first.id(), b"BHS");
    assert!(first.is_header());
    assert_eq!(first.field(4).text(), "ABCHS", "BHS-n is numbered like MSH-n");
    assert_eq!(first.field(6).text(), "AUSDHSV");
    assert_eq!(message.msh().segment().index(), 1);
    assert_eq!(message.msh().control_id().text(), "12334456778890");
    let headers: Vec<_> =
        message.segments_with_id("MSH").map(|m| m.field(10).text().into_owned()).collect();
    assert_eq!(headers, ["12334456778890", "12334456778891"]);
    assert_eq!(message.segment("BTS").unwrap().field(1).text(), "2");
}

// §2.14.9: the header fields an LIS reads.

#[test]
fn msh_accessors() {
    let bytes = fixture("hl7v251-oru-r01_fhir-converter_nist-lri-cbc-lf.hl7");
    let message = Message::parse(&bytes).unwrap();
    let msh = message.msh();
    assert_eq!(msh.sending_application().text(), "NIST Test Lab APP");
    assert_eq!(msh.sending_facility().text(), "NIST Lab Facility");
    assert!(msh.receiving_application().is_empty());
    assert_eq!(msh.receiving_facility().text(), "NIST EHR Facility");
    assert_eq!(msh.date_time().text(), "20110531140551-0500");
    let message_type = msh.message_type();
    assert_eq!(
        (
            &*message_type.code().text(),
            &*message_type.trigger().text(),
            &*message_type.structure().text()
        ),
        ("ORU", "R01", "ORU_R01")
    );
    assert_eq!(msh.control_id().text(), "NIST-LRI-NG-002.00");
    assert_eq!(msh.processing_id().text(), "T");
    assert_eq!(msh.version().text(), "2.5.1");
    assert_eq!(msh.accept_ack_type().text(), "AL");
    assert_eq!(msh.application_ack_type().text(), "NE");
    assert_eq!(msh.charset(), Charset::Ascii);
    // Every OBX-5 of the CBC, read the way a result interface does.
    let values: Vec<String> =
        message.segments_with_id("OBX").map(|obx| obx.field(5).text().into_owned()).collect();
    assert_eq!(values.len(), 28);
    assert_eq!(&values[..3], ["4.41", "12.5", "41"]);
}

#[test]
fn paths() {
    let bytes = fixture(SN_VALUES);
    let message = Message::parse(&bytes).unwrap();
    assert_eq!(message.get("OBX(2)-2").unwrap().text(), "FN");
    assert_eq!(message.get("OBX-5-2").unwrap().text(), "182");
    assert_eq!(message.get("OBX(2)-3-2").unwrap().text(), "GLUCOSE");
    assert_eq!(message.get("PID-5").unwrap().raw(), b"EVERYWOMAN^EVE^E^^^^L");
    assert!(message.get("OBX(3)-5").is_none(), "no third OBX");
    assert!(message.get("NTE-1").is_none(), "no NTE");
    assert!(message.get("obx-5").is_none(), "not a path");
    assert_eq!(Path::parse("obx-5"), Err(PathError::SegmentId { at: 0 }));
    let path: Path = "OBX(2)-8".parse().unwrap();
    assert_eq!(message.resolve(&path).unwrap().text(), "H");
}

// MSH-18 declares the character set; bytes are never forced into UTF-8.

#[test]
fn bytes_that_are_not_utf8_reach_the_caller_intact() {
    let bytes = fixture("hl7-cp1252-byte_python-hl7_test-parse.hl7");
    let message = Message::parse(&bytes).unwrap();
    let facility = message.msh().sending_facility();
    assert_eq!(facility.raw(), b"ELAB\x963");
    assert_eq!(facility.decoded().as_ref(), b"ELAB\x963");
    assert_eq!(facility.text(), "ELAB\u{FFFD}3", "lossy UTF-8 marks the byte, never drops it");
    // python-hl7 decodes this byte as cp1252 (an en dash); Latin-1 maps it to U+0096.
    assert_eq!(facility.text_in(Charset::Latin1), "ELAB\u{96}3");
}

#[test]
fn charset_from_msh_18() {
    let check = |msh18: &str, charset: Charset<'_>| {
        let input = format!("MSH|^~\\&|A{}{msh18}\r", "|".repeat(15));
        let message = Message::parse(input.as_bytes()).unwrap();
        assert_eq!(message.msh().charset(), charset, "{msh18}");
    };
    check("", Charset::Ascii);
    check("ASCII", Charset::Ascii);
    check("8859/1", Charset::Latin1);
    check("8859/1~ISO IR87", Charset::Latin1);
    check("UNICODE UTF-8", Charset::Utf8);
    check("UNICODE", Charset::Utf8);
    check("8859/15", Charset::Other(b"8859/15"));

    let latin1 = Message::parse(b"MSH|^~\\&|Jos\xe9|||||||||||||||8859/1\r").unwrap();
    let msh = latin1.msh();
    assert_eq!(msh.sending_application().text_in(msh.charset()), "Jos\u{e9}");
    let hex = Message::parse(b"MSH|^~\\&|\\Xe1\\\\Xe9\\|||||||||||||||8859/1\r").unwrap();
    let msh = hex.msh();
    assert_eq!(msh.sending_application().text_in(msh.charset()), "\u{e1}\u{e9}");
}

#[test]
fn mindray_declares_unicode() {
    let bytes = fixture("hl7v231-oru-r01_openelis-bridge_mindray-bc5380-cbc-lf.hl7");
    let message = Message::parse(&bytes).unwrap();
    assert_eq!(message.msh().charset(), Charset::Utf8);
    let pid = message.segment("PID").unwrap();
    assert_eq!(pid.field(8).text(), "Female");
    let wbc =
        message.segments_with_id("OBX").find(|o| o.field(3).component(2).text() == "WBC").unwrap();
    assert_eq!((&*wbc.field(5).text(), &*wbc.field(6).text()), ("9.81", "10*9/L"));
}

#[test]
fn values_are_decoded_on_access_only() {
    let bytes = fixture("hl7v251-oru-r01_fhir-converter_elr-escapes-repeats.hl7");
    let message = Message::parse(&bytes).unwrap();
    let nte = message.segment("NTE").unwrap();
    let comment = nte.field(3);
    assert!(comment.raw().ends_with(br"O157:H7 \T\ other STECs, and Aeromonas"));
    assert!(comment.text().ends_with("O157:H7 & other STECs, and Aeromonas"));
    assert!(matches!(message.segment("PID").unwrap().field(3).decoded(), Cow::Borrowed(_)));
    // NM with repetitions: `27~25`.
    let repeated = message
        .segments_with_id("OBX")
        .find(|o| o.field(5).repetitions().count() > 1)
        .expect("an OBX-5 with repetitions");
    assert_eq!(texts(repeated.field(5).repetitions().map(|r| r.text())), ["27", "25"]);
}
