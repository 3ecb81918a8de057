//! Acknowledgments (HL7 v2.5.1 §2.9.2 original mode, §2.9.3 enhanced mode; MSA §2.14.8,
//! ERR §2.14.5).

use cuvette_hl7::{
    AckBuilder, AckCode, AckCondition, AckMode, ErrSegment, ErrorCode, ErrorLocation, Message,
    Path, Severity,
};

use crate::parse::fixture;

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap().replace('\r', "\n")
}

#[test]
fn application_accept() {
    let bytes = fixture("hl7v24-oru-r01_python-hl7_sample-hl7-sn-values.hl7");
    let original = Message::parse(&bytes).unwrap();
    let ack =
        AckBuilder::new(&original, AckCode::ApplicationAccept, "ACK0001", "20240501120000+0200")
            .build()
            .unwrap();
    assert_eq!(
        text(&ack),
        "MSH|^~\\&|GHH OE|BLDG4|GHH LAB|ELAB-3|20240501120000+0200||ACK^R01^ACK|ACK0001|P|2.4\n\
         MSA|AA|CNTRL-3456\n"
    );
    let parsed = Message::parse_strict(&ack).unwrap();
    assert_eq!(parsed.get("MSA-2").unwrap().text(), original.msh().control_id().text());
    assert_eq!(
        AckCode::from_code(parsed.get("MSA-1").unwrap().raw()),
        Some(AckCode::ApplicationAccept)
    );
}

#[test]
fn application_error_with_err_segments() {
    let bytes = fixture("hl7v251-oml-o21_fhir-converter_mdhhs-missing-segment-break.hl7");
    let original = Message::parse(&bytes).unwrap();
    let ack = AckBuilder::new(&original, AckCode::ApplicationError, "A-17", "20240501120001")
        .text("order rejected")
        .error(
            ErrSegment::new(ErrorCode::SegmentSequenceError, Severity::Error)
                .location(ErrorLocation::new("GT1", 1).field(21))
                .diagnostic("ORC glued to GT1-21: missing segment terminator")
                .user_message("Resend the order with every segment on its own line"),
        )
        .error(
            ErrSegment::new(ErrorCode::TableValueNotFound, Severity::Warning)
                .location(ErrorLocation::from(&Path::parse("OBX(1)-3(1)-1").unwrap())),
        )
        .build()
        .unwrap();
    assert_eq!(
        text(&ack),
        "MSH|^~\\&|LAN^23D0650909^CLIA|MDHHS^2.16.840.1.114222.4.3.2.2.3.161.1^ISO|MDHHSDataHub|MDHHS|\
         20240501120001||ACK^O21^ACK|A-17|T|2.5.1\n\
         MSA|AE|TC09SAPartAIG030101AA|order rejected\n\
         ERR||GT1^1^21|100^Segment sequence error^HL70357|E|||ORC glued to GT1-21: missing segment terminator|\
         Resend the order with every segment on its own line\n\
         ERR||OBX^1^3^1^1|103^Table value not found^HL70357|W\n"
    );
    Message::parse_strict(&ack).unwrap();
}

#[test]
fn the_ack_answers_in_the_senders_delimiters() {
    let original =
        Message::parse(b"MSH$%~\\&$GHH LAB$ELAB$$$20240101$$ORU%R01$C1$P$2.5.1\r").unwrap();
    let ack = AckBuilder::new(&original, AckCode::ApplicationReject, "A1", "20240101")
        .text("50% full")
        .build()
        .unwrap();
    assert_eq!(
        text(&ack),
        "MSH$%~\\&$$$GHH LAB$ELAB$20240101$$ACK%R01%ACK$A1$P$2.5.1\nMSA$AR$C1$50\\S\\ full\n"
    );
}

#[test]
fn processing_id_defaults_to_p_and_can_be_set() {
    let original = Message::parse(b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X9||2.3\r").unwrap();
    let ack = AckBuilder::new(&original, AckCode::ApplicationAccept, "1", "2").build().unwrap();
    assert!(text(&ack).starts_with("MSH|^~\\&|C|D|A|B|2||ACK^A01^ACK|1|P|2.3\n"), "{}", text(&ack));
    let ack = AckBuilder::new(&original, AckCode::ApplicationAccept, "1", "2")
        .processing_id("T")
        .build()
        .unwrap();
    assert!(text(&ack).contains("|1|T|2.3\n"));
}

#[test]
fn enhanced_mode_commit_accept() {
    let bytes = fixture("hl7v251-oru-r01_fhir-converter_nist-lri-cbc-lf.hl7");
    let original = Message::parse(&bytes).unwrap();
    assert_eq!(original.msh().accept_ack_type().text(), "AL", "the sender asks for a commit ACK");
    let ack = AckBuilder::new(&original, AckCode::CommitAccept, "C1", "20240101").build().unwrap();
    assert_eq!(
        text(&ack),
        "MSH|^~\\&||NIST EHR Facility|NIST Test Lab APP|NIST Lab Facility|20240101||ACK^R01^ACK|C1|T|2.5.1\n\
         MSA|CA|NIST-LRI-NG-002.00\n"
    );
}

#[test]
fn caller_values_are_escaped() {
    let original = Message::parse(b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|X|P|2.5.1\r").unwrap();
    let ack = AckBuilder::new(&original, AckCode::ApplicationError, "id|1", "2024^01")
        .error(
            ErrSegment::new(ErrorCode::ApplicationInternalError, Severity::Error).diagnostic("a~b"),
        )
        .build()
        .unwrap();
    let parsed = Message::parse_strict(&ack).unwrap();
    assert_eq!(parsed.msh().control_id().text(), "id|1");
    assert_eq!(parsed.msh().date_time().text(), "2024^01");
    assert_eq!(parsed.get("ERR-7").unwrap().text(), "a~b");
    assert_eq!(parsed.get("ERR-3-1").unwrap().text(), "207");
}

#[test]
fn reading_the_nist_ack_from_the_corpus() {
    let bytes = fixture("hl7v251-ack-ae-err_smm-tester_nist-iz-ack.hl7");
    let ack = Message::parse_strict(&bytes).unwrap();
    assert_eq!(
        AckCode::from_code(ack.get("MSA-1").unwrap().raw()),
        Some(AckCode::ApplicationError)
    );
    assert_eq!(ack.get("MSA-2").unwrap().text(), "NIST-IZ-AD-7.1_Send_V04_Z22");
    let err = ack.segment("ERR").unwrap();
    let location: Vec<String> =
        err.field(2).repetition(1).components().map(|c| c.text().into_owned()).collect();
    assert_eq!(location, ["RXA", "1", "5", "1", "1"]);
    assert_eq!(err.field(3).component(3).text(), "HL70357");
    assert_eq!(err.field(4).text(), Severity::Error.code());
    assert_eq!(err.field(8).text(), "Vaccine code not recognized - message rejected");
}

#[test]
fn table_0357() {
    let codes = [
        (ErrorCode::MessageAccepted, 0),
        (ErrorCode::SegmentSequenceError, 100),
        (ErrorCode::RequiredFieldMissing, 101),
        (ErrorCode::DataTypeError, 102),
        (ErrorCode::TableValueNotFound, 103),
        (ErrorCode::UnsupportedMessageType, 200),
        (ErrorCode::UnsupportedEventCode, 201),
        (ErrorCode::UnsupportedProcessingId, 202),
        (ErrorCode::UnsupportedVersionId, 203),
        (ErrorCode::UnknownKeyIdentifier, 204),
        (ErrorCode::DuplicateKeyIdentifier, 205),
        (ErrorCode::ApplicationRecordLocked, 206),
        (ErrorCode::ApplicationInternalError, 207),
    ];
    for (code, number) in codes {
        assert_eq!(code.code(), number, "{code:?}");
        assert!(!code.description().is_empty());
    }
    for code in ["AA", "AE", "AR", "CA", "CE", "CR"] {
        assert_eq!(AckCode::from_code(code.as_bytes()).unwrap().code(), code);
    }
    assert_eq!(AckCode::from_code(b"AX"), None);
}

#[test]
fn a_message_without_msh_15_and_16_asks_for_the_original_mode() {
    let bytes = fixture("hl7v24-oru-r01_python-hl7_sample-hl7-sn-values.hl7");
    let original = Message::parse(&bytes).unwrap();
    assert!(original.msh().accept_ack_type().is_empty());
    assert_eq!(AckMode::of(&original.msh()), AckMode::Original);
}

#[test]
fn msh_15_and_16_choose_the_enhanced_mode_and_when_each_acknowledgment_is_sent() {
    let msh = |accept: &str, application: &str| {
        let text = format!(
            "MSH|^~\\&|LAB|HOSP|LIS|CUVETTE|20240501120000||ORU^R01^ORU_R01|M42|P|2.5.1|||{accept}|{application}\r"
        );
        let message = Message::parse(text.as_bytes()).unwrap();
        AckMode::of(&message.msh())
    };
    use AckCondition::*;
    assert_eq!(msh("AL", "NE"), AckMode::Enhanced { accept: Always, application: Never });
    assert_eq!(msh("ER", "SU"), AckMode::Enhanced { accept: ErrorOnly, application: SuccessOnly });
    // Enhanced mode asked for with one field only, or with a value outside table 0155: the
    // other acknowledgment is sent always rather than never.
    assert_eq!(msh("", "ER"), AckMode::Enhanced { accept: Always, application: ErrorOnly });
    assert_eq!(msh("XX", "AL"), AckMode::Enhanced { accept: Always, application: Always });

    assert!(Always.wants(true) && Always.wants(false));
    assert!(!Never.wants(true) && !Never.wants(false));
    assert!(ErrorOnly.wants(false) && !ErrorOnly.wants(true));
    assert!(SuccessOnly.wants(true) && !SuccessOnly.wants(false));
}
