//! Writing messages: CR terminators, escaping, omitted trailing empties, refusals.

use cuvette_hl7::{
    BuildError, FIELD_NUMBER_MAX, FieldValue, Message, MessageBuilder, SegmentBuilder, Separators,
};

fn msh() -> SegmentBuilder {
    SegmentBuilder::new("MSH")
        .field(3, "CUVETTE")
        .field(7, "20240501120000")
        .field(9, FieldValue::components(["ORU", "R01", "ORU_R01"]))
        .field(10, "M1")
        .field(11, "P")
        .field(12, "2.5.1")
}

const MSH: &str = "MSH|^~\\&|CUVETTE||||20240501120000||ORU^R01^ORU_R01|M1|P|2.5.1\r";

#[test]
fn segments_end_with_cr_and_trailing_empties_are_omitted() {
    let bytes = MessageBuilder::new()
        .segment(msh())
        .segment(
            SegmentBuilder::new("PID")
                .field(
                    3,
                    FieldValue::from_parts(vec![
                        vec![
                            vec![b"42".to_vec()],
                            vec![],
                            vec![],
                            vec![b"HOSP".to_vec()],
                            vec![b"MR".to_vec()],
                        ],
                        vec![
                            vec![b"7".to_vec()],
                            vec![],
                            vec![],
                            vec![b"NAT".to_vec(), b"1.2.3".to_vec(), b"ISO".to_vec()],
                        ],
                    ]),
                )
                .field(5, FieldValue::components(["DOE", "JANE", "", ""]))
                .field(8, "F")
                .field(9, "")
                .field(30, FieldValue::empty()),
        )
        .segment(SegmentBuilder::new("PV1"))
        .finish()
        .unwrap();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        format!("{MSH}PID|||42^^^HOSP^MR~7^^^NAT&1.2.3&ISO||DOE^JANE|||F\rPV1\r")
    );
}

#[test]
fn data_is_escaped() {
    let bytes = MessageBuilder::new()
        .segment(msh())
        .segment(SegmentBuilder::new("NTE").field(1, "1").field(3, "a|b^c~d\\e&f\r\ng"))
        .finish()
        .unwrap();
    assert!(bytes.ends_with(b"NTE|1||a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\X0D\\\\X0A\\g\r"));
    let message = Message::parse_strict(&bytes).unwrap();
    assert_eq!(message.get("NTE-3").unwrap().decoded().as_ref(), b"a|b^c~d\\e&f\r\ng");
}

#[test]
fn explicit_null_is_written_as_two_quotes() {
    let bytes = MessageBuilder::new()
        .segment(msh())
        .segment(SegmentBuilder::new("PID").field(8, FieldValue::null()))
        .finish()
        .unwrap();
    assert!(bytes.ends_with(b"PID||||||||\"\"\r"));
    assert!(Message::parse(&bytes).unwrap().get("PID-8").unwrap().is_null());
}

#[test]
fn non_standard_separators() {
    let separators = Separators::new(b'$', b"%~\\&").unwrap();
    let bytes = MessageBuilder::with_separators(separators)
        .segment(SegmentBuilder::new("MSH").field(3, "GHH LAB"))
        .segment(
            SegmentBuilder::new("PID")
                .field(5, FieldValue::components(["EVERYWOMAN", "EVE", "E|$"])),
        )
        .finish()
        .unwrap();
    assert_eq!(bytes, b"MSH$%~\\&$GHH LAB\rPID$$$$$EVERYWOMAN%EVE%E|\\F\\\r");
    assert_eq!(Message::parse(&bytes).unwrap().get("PID-5-3").unwrap().text(), "E|$");
}

#[test]
fn parsed_fields_are_copied_as_sent_or_re_escaped() {
    let original = Message::parse(b"MSH|^~\\&|APP^1.2&3^ISO|F\\T\\G\r").unwrap();
    let copy = |separators| {
        MessageBuilder::with_separators(separators)
            .segment(
                SegmentBuilder::new("MSH")
                    .field(3, original.msh().sending_application())
                    .field(4, original.msh().sending_facility())
                    .field(5, original.msh().segment().field(2)),
            )
            .finish()
            .unwrap()
    };
    assert_eq!(
        copy(Separators::STANDARD),
        b"MSH|^~\\&|APP^1.2&3^ISO|F\\T\\G|\\S\\\\R\\\\E\\\\T\\\r"
    );
    let other = Separators::new(b'#', b"*~!@").unwrap();
    assert_eq!(copy(other), b"MSH#*~!@#APP*1.2@3*ISO#F&G#^!R!\\&\r");
}

#[test]
fn refusals() {
    let check = |builder: MessageBuilder, error: BuildError| {
        assert_eq!(builder.finish(), Err(error));
    };
    check(MessageBuilder::new(), BuildError::Empty);
    check(
        MessageBuilder::new().segment(SegmentBuilder::new("PID")),
        BuildError::FirstSegmentNotHeader { found: "PID".into() },
    );
    check(
        MessageBuilder::new().segment(msh()).segment(SegmentBuilder::new("P|D")),
        BuildError::InvalidSegmentId { segment_index: 1, found: "P|D".into() },
    );
    check(
        MessageBuilder::new().segment(msh()).segment(SegmentBuilder::new("pid")),
        BuildError::InvalidSegmentId { segment_index: 1, found: "pid".into() },
    );
    check(
        MessageBuilder::new().segment(msh().field(1, "!")),
        BuildError::InvalidFieldNumber { segment_index: 0, field: 1 },
    );
    check(
        MessageBuilder::new().segment(msh().field(2, "!")),
        BuildError::InvalidFieldNumber { segment_index: 0, field: 2 },
    );
    check(
        MessageBuilder::new().segment(msh()).segment(SegmentBuilder::new("PID").field(0, "x")),
        BuildError::InvalidFieldNumber { segment_index: 1, field: 0 },
    );
    check(
        MessageBuilder::new().segment(msh().field(FIELD_NUMBER_MAX + 1, "x")),
        BuildError::InvalidFieldNumber { segment_index: 0, field: FIELD_NUMBER_MAX + 1 },
    );
}

#[test]
fn a_built_message_passes_strict_parsing() {
    let bytes = MessageBuilder::new()
        .segment(msh())
        .segment(
            SegmentBuilder::new("OBX").field(1, "1").field(2, "NM").field(5, "5.4").field(11, "F"),
        )
        .finish()
        .unwrap();
    let message = Message::parse_strict(&bytes).unwrap();
    assert_eq!(message.get("OBX-5").unwrap().text(), "5.4");
}
