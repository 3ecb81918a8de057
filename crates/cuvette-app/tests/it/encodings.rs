//! A message is read in the character set it declares (HL7 MSH-18): bytes that are not text
//! in it are refused with the field they are in, never stored as `�`.

use cuvette_app::interop::{self, Ingested};

use crate::support::*;

/// A European LIMS's ORU whose MSH-18 says UTF-8 while PID-5 holds Latin-1 `é` (0xE9).
const DECLARED_UTF8_HOLDS_LATIN1: &[u8] =
    include_bytes!("data/hl7v251-oru-r01_fault_declared-utf8-contains-latin1-bytes.hl7");

/// A reference lab sending potassium as 2823-3, and Renée Lévesque's received specimen.
async fn reference_lab(lab: &TestLab) -> (cuvette_app::records::PatientRow, String) {
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "Reference lab", "hl7", "REFLAB").await.unwrap();
    lab.map_test_code(&supervisor, id, "2823-3", "K", "mmol/L").await.unwrap();
    let clerk = lab.phlebotomist().await;
    let form = cuvette_app::RegisterPatient {
        mrn: "FR33221".into(),
        family_name: "Lévesque".into(),
        given_name: "Renée".into(),
        birth_date: "1988-07-07".into(),
        sex: "F".into(),
    };
    let patient = lab.register_patient(&clerk, &form).await.unwrap();
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    (patient, accession)
}

/// Renée Lévesque's potassium with MSH-18 `charset`, her name encoded by `encode`.
fn oru(control_id: &str, charset: &str, accession: &str, encode: fn(&str) -> Vec<u8>) -> Vec<u8> {
    let mut m = format!(
        "MSH|^~\\&|REFLAB|REF|CUVETTE|LAB|20261124091500||ORU^R01^ORU_R01|{control_id}|P|2.5.1||||||{charset}\r\
         PID|1||FR33221^^^LAB^MR||"
    )
    .into_bytes();
    m.extend(encode("Lévesque^Renée"));
    m.extend(
        format!(
            "||19880707|F\r\
             OBR|1||{accession}|2823-3^Potassium^LN\r\
             OBX|1|NM|2823-3^Potassium^LN||4.2|mmol/L|3.5-5.1|N|||F\r"
        )
        .into_bytes(),
    );
    m
}

fn latin1(text: &str) -> Vec<u8> {
    text.chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect()
}

fn utf8(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

async fn receive(lab: &TestLab, message: &[u8]) -> (Ingested, String) {
    let (outcome, ack) = interop::hl7::receive(lab, message, "mllp:2575", "peer").await.unwrap();
    (outcome, String::from_utf8_lossy(&ack).into_owned())
}

#[tokio::test]
async fn latin1_bytes_in_a_message_declared_utf8_are_refused_at_their_field() {
    let lab = lab().await;
    let (outcome, ack) = receive(&lab, DECLARED_UTF8_HOLDS_LATIN1).await;
    let Ingested::Quarantined { reason, location, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(location, "PID-5");
    assert_eq!(
        reason,
        "byte 0xE9 (at byte 129 of the message) is not UTF-8 text: the sender must encode the message in UTF-8, or declare the character set it uses in MSH-18 (UNICODE UTF-8, 8859/1, ASCII)"
    );
    assert!(ack.contains("MSA|AE|EU-1201"), "{ack}");
    assert!(ack.contains("ERR||PID^1^5|102^"), "{ack}");
}

#[tokio::test]
async fn a_message_declared_latin1_is_read_as_latin1_and_its_patient_recognised() {
    let lab = lab().await;
    let (patient, accession) = reference_lab(&lab).await;
    let (outcome, ack) = receive(&lab, &oru("REF-1", "8859/1", &accession, latin1)).await;
    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?} {ack}");
    assert_eq!(lab.test(&patient, "K").await.result.unwrap().value_text, "4.2");

    // The same name in UTF-8 under the same declaration reads as another patient's.
    let (outcome, _) = receive(&lab, &oru("REF-2", "8859/1", &accession, utf8)).await;
    let Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
    assert!(reason.starts_with("the message's patient is not specimen"), "{reason}");
}

#[tokio::test]
async fn utf8_declared_or_undeclared_is_read_as_utf8() {
    let lab = lab().await;
    let (patient, accession) = reference_lab(&lab).await;
    let (outcome, _) = receive(&lab, &oru("REF-3", "UNICODE UTF-8", &accession, utf8)).await;
    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
    let (outcome, _) = receive(&lab, &oru("REF-4", "", &accession, latin1)).await;
    let Ingested::Quarantined { location, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(location, "PID-5");
    assert_eq!(lab.versions(&patient, "K").await.len(), 1);
}

#[tokio::test]
async fn ascii_with_a_byte_above_127_and_an_unknown_character_set_are_refused() {
    let lab = lab().await;
    let (patient, accession) = reference_lab(&lab).await;
    let (outcome, ack) = receive(&lab, &oru("REF-5", "ASCII", &accession, utf8)).await;
    let Ingested::Quarantined { reason, location, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(location, "PID-5");
    assert!(reason.starts_with("byte 0xC3 (at byte "), "{reason}");
    assert!(reason.contains("is not ASCII text"), "{reason}");
    assert!(ack.contains("ERR||PID^1^5|102^"), "{ack}");

    let (outcome, ack) = receive(&lab, &oru("REF-6", "UNICODE UTF-16", &accession, utf8)).await;
    let Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(
        reason,
        "character set \"UNICODE UTF-16\" (MSH-18) is not read: send UNICODE UTF-8, 8859/1 or ASCII"
    );
    assert!(ack.contains("ERR||MSH^1^18|103^"), "{ack}");
    assert!(lab.versions(&patient, "K").await.is_empty());
}

#[tokio::test]
async fn an_astm_instrument_reads_lossily_only_when_configured_so() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "Old analyzer", "astm", "OLD1").await.unwrap();
    lab.map_test_code(&supervisor, id, "K", "K", "mmol/L").await.unwrap();
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    let upload = |time: &str| {
        let mut m = format!(
            "H|\\^&|||OLD1|||||||P|1|{time}\rP|1\rO|1|{accession}||^^^K|R\rR|1|^^^K|4.2|mmol/L||N||F\rC|1|I|"
        )
        .into_bytes();
        m.extend_from_slice(b"h\xE4molysiert|G\rL|1|N\r");
        m
    };
    let outcome =
        interop::astm::receive(&lab, &upload("20261124100000"), "astm:5100", "peer").await;
    let Ok(Ingested::Quarantined { location, .. }) = &outcome else { panic!("{outcome:?}") };
    assert_eq!(location, "C(1)-4");
    assert_eq!(
        invalid(lab.set_instrument_charset(&supervisor, id, "latin-9").await, "charset"),
        "utf-8, windows-1252 (Latin-1 and its extensions), ascii, or utf-8-lossy (bytes that are not UTF-8 replaced by �, each logged)"
    );
    lab.set_instrument_charset(&supervisor, id, "utf-8-lossy").await.unwrap();
    let outcome =
        interop::astm::receive(&lab, &upload("20261124100100"), "astm:5100", "peer").await;
    assert!(matches!(outcome, Ok(Ingested::Accepted { results: 1, .. })), "{outcome:?}");
    assert_eq!(lab.test(&patient, "K").await.result.unwrap().value_text, "4.2");
}
