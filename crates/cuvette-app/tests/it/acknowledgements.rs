//! What Cuvette answers an HL7 sender: MSA-2 echoes the message's MSH-10, every problem gets
//! its own ERR (ERR-2 the segment, its sequence and the field; ERR-3 an HL7 table 0357 code;
//! ERR-4 the severity, `W` for a result taken without a value; ERR-7/8 the reason), AE for content that can be put right, AR for a
//! message Cuvette does not process, and in enhanced mode (MSH-15/16) only the
//! acknowledgements the sender asked for. The messages are real ones from the NIST and
//! python-hl7 test sets.

use cuvette_app::interop::{self, Ingested, Refusal};

use crate::support::*;

/// The NIST LRI CBC result (ORU^R01 v2.5.1, MSH-15 `AL`, MSH-16 `NE`), LF line ends as sent.
const NIST_CBC: &[u8] = include_bytes!("data/hl7v251-oru-r01_fhir-converter_nist-lri-cbc-lf.hl7");
/// An ADT^A01 from a hospital system (v2.3, original mode).
const ADT_A01: &[u8] = include_bytes!("data/hl7v23-adt-a01_python-hl7_sample-msh-quoted-nulls.hl7");

/// The NIST CBC with the results whose OBX-1 is in `obx`, without its patient (NIST's test
/// patient is not on file: the specimen id names ours), its specimen id (OBR-3) replaced
/// by `accession`, its control id (MSH-10) by `control_id` and its MSH-15/16 by `modes`
/// (`AL|NE` as sent).
fn nist_cbc(
    obx: std::ops::RangeInclusive<usize>,
    accession: &str,
    control_id: &str,
    modes: &str,
) -> Vec<u8> {
    let text = String::from_utf8(NIST_CBC.to_vec()).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("PID|"))
        .filter(|l| {
            !l.starts_with("OBX|") || obx.contains(&l.split('|').nth(1).unwrap().parse().unwrap())
        })
        .collect();
    kept.join("\r")
        .replace("|R-991133^NIST Lab Filler|", &format!("|{accession}^NIST Lab Filler|"))
        .replace(
            "|NIST-LRI-NG-002.00|T|2.5.1|||AL|NE|",
            &format!("|{control_id}|T|2.5.1|||{modes}|"),
        )
        .into_bytes()
}

/// The segments of a reply, each as text.
fn segments(message: &[u8]) -> Vec<String> {
    String::from_utf8(message.to_vec())
        .unwrap()
        .split('\r')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The segments of a reply after its MSH (which carries Cuvette's own id and time).
fn body(message: &[u8]) -> Vec<String> {
    segments(message).into_iter().skip(1).collect()
}

/// The replies sent on the connection for a received message.
fn replies(raw: &[u8], outcome: &Ingested, ack: Vec<u8>) -> Vec<Vec<String>> {
    interop::hl7::replies(raw, outcome, ack, "CUV1", "20261124081500+0000")
        .iter()
        .map(|r| segments(r))
        .collect()
}

/// The NIST CBC analyzer, with haemoglobin and haematocrit mapped; the red cell count is not.
async fn nist_analyzer(lab: &TestLab) {
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "NIST CBC", "hl7", "NIST Test Lab APP").await.unwrap();
    lab.map_test_code(&supervisor, id, "718-7", "HGB", "g/dL").await.unwrap();
    lab.map_test_code(&supervisor, id, "20570-8", "HCT", "").await.unwrap();
}

#[tokio::test]
async fn a_result_from_an_instrument_not_on_file_is_answered_ae_naming_msh_3() {
    let lab = lab().await;
    let (outcome, ack) = interop::hl7::receive(
        &lab,
        &nist_cbc(1..=3, "R-991133", "NIST-LRI-NG-002.00", "|"),
        "mllp:2575",
        "peer",
    )
    .await
    .unwrap();
    let Ingested::Quarantined { refusal, also, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(refusal, &Refusal::UnknownInstrument { sender: "NIST Test Lab APP".into() });
    assert!(also.is_empty());
    let reason =
        "unknown instrument \"NIST Test Lab APP\": add it under Interfaces with its test codes";
    assert_eq!(
        body(&ack),
        [
            // MSA-3 is the first reason, cut to 80 characters (v2.5.1 §2.14.8).
            format!("MSA|AE|NIST-LRI-NG-002.00|{}", &reason[..80]),
            format!("ERR||MSH^1^3|103^Table value not found^HL70357|E|||{reason}|{reason}"),
        ]
    );
}

#[tokio::test]
async fn every_result_that_cannot_be_taken_gets_its_own_err_naming_the_obx_field() {
    let lab = lab().await;
    nist_analyzer(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["HGB", "HCT"]).await.specimens[0].accession.clone();

    let message = nist_cbc(1..=3, &accession, "NIST-LRI-NG-002.00", "|");
    let (outcome, ack) = interop::hl7::receive(&lab, &message, "mllp:2575", "peer").await.unwrap();

    // OBX 1 (red cells) is not mapped; OBX 2 (haemoglobin) arrives in g/mL, mapped in g/dL;
    // OBX 3 (haematocrit) is fine, and waits with the others: all of a message or none.
    let unmapped = "test code \"26453-1\" from NIST CBC is not mapped to a catalog test: map it under Interfaces";
    let unit = "HGB arrived in g/mL but NIST CBC is mapped to send g/dL: correct the instrument's unit or its mapping under Interfaces";
    assert_eq!(
        body(&ack),
        [
            format!("MSA|AE|NIST-LRI-NG-002.00|{}", &unmapped[..80]),
            format!("ERR||OBX^1^3|103^Table value not found^HL70357|E|||{unmapped}|{unmapped}"),
            format!("ERR||OBX^2^6|103^Table value not found^HL70357|E|||{unit}|{unit}"),
        ]
    );
    assert!(lab.test(&patient, "HCT").await.result.is_none(), "nothing of the message is stored");
    let Ingested::Quarantined { message_id, .. } = outcome else { panic!("{outcome:?}") };
    let logged = lab.message(&lab.technologist().await, message_id).await.unwrap();
    assert_eq!(logged.detail, format!("OBX 1: {unmapped}; OBX 2: {unit}"));
}

#[tokio::test]
async fn a_message_type_cuvette_does_not_take_is_answered_ar_with_200_at_msh_9() {
    let lab = lab().await;
    let (outcome, ack) = interop::hl7::receive(&lab, ADT_A01, "mllp:2575", "peer").await.unwrap();
    assert!(matches!(outcome, Ingested::Quarantined { .. }), "{outcome:?}");
    // The component separators in the reason are escaped (\S\), as HL7 text must be.
    let reason = "ADT\\S\\A01 carries no results: send ORU\\S\\R01 (orders come as OML\\S\\O21 or ORM\\S\\O01)";
    assert_eq!(
        body(&ack),
        [
            format!("MSA|AR|Q150084616T145947960|{reason}"),
            format!("ERR||MSH^1^9|200^Unsupported message type^HL70357|E|||{reason}|{reason}"),
        ]
    );
    // Original mode: the application acknowledgement, and only it.
    assert_eq!(replies(ADT_A01, &outcome, ack.clone()), [segments(&ack)]);
}

#[tokio::test]
async fn in_enhanced_mode_a_refused_type_is_answered_with_a_commit_reject_alone() {
    let lab = lab().await;
    let text = String::from_utf8(ADT_A01.to_vec()).unwrap();
    let enhanced = text.replacen("|P|2.3", "|P|2.3|||AL|AL", 1);
    let (outcome, ack) =
        interop::hl7::receive(&lab, enhanced.as_bytes(), "mllp:2575", "peer").await.unwrap();
    let sent = replies(enhanced.as_bytes(), &outcome, ack);
    assert_eq!(sent.len(), 1, "no application acknowledgement follows a commit reject");
    assert_eq!(
        sent[0][1..],
        [
            "MSA|CR|Q150084616T145947960".to_owned(),
            "ERR||MSH^1^9|200^Unsupported message type^HL70357|E|||ADT\\S\\A01 carries no results: send ORU\\S\\R01 (orders come as OML\\S\\O21 or ORM\\S\\O01)|ADT\\S\\A01 carries no results: send ORU\\S\\R01 (orders come as OML\\S\\O21 or ORM\\S\\O01)".to_owned(),
        ]
    );
    assert_eq!(sent[0][0].split('|').nth(9), Some("CUV1C"), "its own control id");
}

#[tokio::test]
async fn in_enhanced_mode_only_the_acknowledgements_asked_for_are_sent() {
    let lab = lab().await;
    nist_analyzer(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["HGB", "HCT"]).await.specimens[0].accession.clone();

    // As NIST sends it: AL|NE, the commit accept and no application acknowledgement, though
    // the message was quarantined (OBX 1 is not mapped).
    let message = nist_cbc(1..=3, &accession, "NIST-LRI-NG-002.00", "AL|NE");
    let (outcome, ack) = interop::hl7::receive(&lab, &message, "mllp:2575", "peer").await.unwrap();
    assert!(matches!(outcome, Ingested::Quarantined { .. }));
    let sent = replies(&message, &outcome, ack.clone());
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0][1..], ["MSA|CA|NIST-LRI-NG-002.00".to_owned()]);

    // Sent again: answered the same way, from what was stored.
    let (again, stored) = interop::hl7::receive(&lab, &message, "mllp:2575", "peer").await.unwrap();
    assert!(matches!(again, Ingested::Duplicate { .. }), "{again:?}");
    assert_eq!(replies(&message, &again, stored), sent);

    // NE|ER: no commit accept; the application error, as it is one.
    let message = nist_cbc(1..=3, &accession, "NIST-LRI-NG-002.01", "NE|ER");
    let (outcome, ack) = interop::hl7::receive(&lab, &message, "mllp:2575", "peer").await.unwrap();
    assert_eq!(replies(&message, &outcome, ack.clone()), [segments(&ack)]);
    assert!(segments(&ack)[1].starts_with("MSA|AE|NIST-LRI-NG-002.01|"));

    // NE|SU: an error is not acknowledged at all.
    let message = nist_cbc(1..=3, &accession, "NIST-LRI-NG-002.02", "NE|SU");
    let (outcome, ack) = interop::hl7::receive(&lab, &message, "mllp:2575", "peer").await.unwrap();
    assert!(replies(&message, &outcome, ack).is_empty());

    // AL|SU with the mapped results only, haemoglobin in the mapped unit: both
    // acknowledgements, the commit first.
    let message = String::from_utf8(nist_cbc(2..=3, &accession, "NIST-LRI-NG-002.03", "AL|SU"))
        .unwrap()
        .replace("|12.5|g/mL^", "|12.5|g/dL^");
    let (outcome, ack) =
        interop::hl7::receive(&lab, message.as_bytes(), "mllp:2575", "peer").await.unwrap();
    assert!(matches!(outcome, Ingested::Accepted { results: 2, .. }), "{outcome:?}");
    let sent = replies(message.as_bytes(), &outcome, ack.clone());
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0][1..], ["MSA|CA|NIST-LRI-NG-002.03".to_owned()]);
    assert_eq!(sent[1], segments(&ack));
    assert_eq!(sent[1][1..], ["MSA|AA|NIST-LRI-NG-002.03".to_owned()]);
}

#[tokio::test]
async fn a_result_sent_without_a_value_is_a_warning_in_the_aa() {
    let lab = lab().await;
    nist_analyzer(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["HGB", "HCT"]).await.specimens[0].accession.clone();

    // Haemoglobin in the mapped unit; the haematocrit could not be obtained (OBX-11 `X`).
    let message = String::from_utf8(nist_cbc(2..=3, &accession, "NIST-LRI-NG-002.10", "|"))
        .unwrap()
        .replace("|12.5|g/mL^", "|12.5|g/dL^")
        .replace("|41|%^percent^UCUM|40 to 52|N|||F|", "|41|%^percent^UCUM|40 to 52|N|||X|");
    let (outcome, ack) =
        interop::hl7::receive(&lab, message.as_bytes(), "mllp:2575", "peer").await.unwrap();
    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
    let warning = format!("not stored: {accession} 20570-8 status X (no value)");
    assert_eq!(
        body(&ack),
        [
            "MSA|AA|NIST-LRI-NG-002.10".to_owned(),
            format!("ERR||OBX^2^11|0^Message accepted^HL70357|W|||{warning}|{warning}"),
        ]
    );
    assert_eq!(lab.test(&patient, "HGB").await.result.unwrap().value_text, "12.5");
    assert!(lab.test(&patient, "HCT").await.result.is_none());
}

#[tokio::test]
async fn a_message_of_another_hl7_version_is_rejected_with_203_at_msh_12() {
    let lab = lab().await;
    let message = String::from_utf8(NIST_CBC.to_vec()).unwrap().replacen("|T|2.5.1|", "|T|3.0|", 1);
    let (outcome, ack) =
        interop::hl7::receive(&lab, message.as_bytes(), "mllp:2575", "peer").await.unwrap();
    let Ingested::Quarantined { refusal, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(refusal, &Refusal::UnsupportedVersion { version: "3.0".into() });
    let reason = "HL7 version \"3.0\" is not taken: Cuvette reads HL7 v2 (MSH-12 2.x)";
    assert_eq!(
        body(&ack),
        [
            format!("MSA|AR|NIST-LRI-NG-002.00|{reason}"),
            format!("ERR||MSH^1^12|203^Unsupported version id^HL70357|E|||{reason}|{reason}"),
        ]
    );
}
