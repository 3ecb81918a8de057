//! Instruments send results; the lab stores them once, answers only after storing, and keeps
//! what it cannot place in the quarantine with the reason.

use cuvette_app::Actor;
use cuvette_app::interop::{self, Ingested};
use cuvette_app::records::MessageFilter;

use crate::support::*;

/// A chemistry analyzer that sends HL7 as "CHEMANALYZER" and reports potassium as 2823-3.
async fn analyzer(lab: &TestLab) -> i64 {
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "Chemistry 1", "hl7", "CHEMANALYZER").await.unwrap();
    lab.map_test_code(&supervisor, id, "2823-3", "K", "mmol/L").await.unwrap();
    lab.map_test_code(&supervisor, id, "2951-2", "NA", "").await.unwrap();
    id
}

fn oru(control_id: &str, accession: &str, obx: &[(&str, &str, &str, &str)]) -> Vec<u8> {
    let mut m = format!(
        "MSH|^~\\&|CHEMANALYZER|LAB|CUVETTE|LAB|20261124081500||ORU^R01^ORU_R01|{control_id}|P|2.5.1\r\
         PID|1\r\
         OBR|1||{accession}|BMP^Basic metabolic panel\r"
    );
    for (i, (code, value, unit, flags)) in obx.iter().enumerate() {
        m.push_str(&format!("OBX|{}|NM|{code}^^LN||{value}|{unit}|3.5-5.1|{flags}|||F\r", i + 1));
    }
    m.into_bytes()
}

fn ack_code(ack: &[u8]) -> String {
    let text = String::from_utf8_lossy(ack);
    text.split('\r')
        .find(|s| s.starts_with("MSA|"))
        .and_then(|s| s.split('|').nth(1))
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn an_instrument_result_is_stored_for_review_and_acknowledged_aa() {
    let lab = lab().await;
    analyzer(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();

    let (outcome, ack) = interop::hl7::receive(
        &lab,
        &oru("MSG0001", &accession, &[("2823-3", "4.1", "mmol/L", "N")]),
        "test",
        "peer",
    )
    .await
    .unwrap();

    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
    assert_eq!(ack_code(&ack), "AA");
    assert!(String::from_utf8_lossy(&ack).contains("|MSG0001"), "MSA-2 echoes the control id");
    let k = lab.test(&patient, "K").await;
    let r = k.result.expect("the result is stored");
    assert_eq!(
        (r.value_text.as_str(), r.entered_by.as_str(), r.released_at),
        ("4.1", "instrument:Chemistry 1", None)
    );
    let queue = lab.review_queue(&lab.technologist().await).await.unwrap();
    assert!(
        queue.iter().any(|i| i.test.id == k.test.id),
        "the instrument's result waits for verification"
    );
}

#[tokio::test]
async fn a_retransmitted_message_is_stored_once_and_answered_with_the_same_ack() {
    let lab = lab().await;
    analyzer(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    let message = oru("MSG0002", &accession, &[("2823-3", "4.1", "mmol/L", "")]);

    let (_, first) = interop::hl7::receive(&lab, &message, "test", "peer").await.unwrap();
    lab.clock.advance(minutes(1));
    let (again, second) = interop::hl7::receive(&lab, &message, "test", "peer").await.unwrap();

    assert!(matches!(again, Ingested::Duplicate { .. }), "{again:?}");
    assert_eq!(first, second);
    assert_eq!(lab.versions(&patient, "K").await.len(), 1, "stored once");
}

#[tokio::test]
async fn an_unknown_specimen_is_quarantined_answered_ae_and_replayed_once_corrected() {
    let lab = lab().await;
    analyzer(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    let wrong = "26-0000999-3";

    let (outcome, ack) = interop::hl7::receive(
        &lab,
        &oru("MSG0003", wrong, &[("2823-3", "6.9", "mmol/L", "HH")]),
        "test",
        "peer",
    )
    .await
    .unwrap();
    let Ingested::Quarantined { message_id, reason, .. } = outcome else { panic!("{outcome:?}") };
    assert!(reason.contains("no specimen has accession number 26-0000999-3"), "{reason}");
    assert_eq!(ack_code(&ack), "AE");
    assert!(String::from_utf8_lossy(&ack).contains("ERR|"), "the ERR segment says why");
    assert!(lab.test(&patient, "K").await.result.is_none(), "nothing stored");

    let technologist = lab.technologist().await;
    let open = lab
        .message_log(&technologist, &MessageFilter { open_quarantine: true, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(open.iter().map(|m| m.id).collect::<Vec<_>>(), [message_id]);

    let replay = lab.replay_quarantined(&technologist, message_id, Some(&accession)).await.unwrap();
    assert_ne!(replay, message_id);
    let k = lab.test(&patient, "K").await.result.expect("the replay stored the result");
    assert_eq!(
        (k.value_text.as_str(), k.flags.codes().as_str(), k.instrument_flags.join(" ").as_str()),
        ("6.9", "HH H", "HH")
    );
    let open = lab
        .message_log(&technologist, &MessageFilter { open_quarantine: true, ..Default::default() })
        .await
        .unwrap();
    assert!(open.is_empty(), "the original left the quarantine");
}

#[tokio::test]
async fn an_unmapped_code_waits_until_it_is_mapped() {
    let lab = lab().await;
    let instrument = analyzer(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["GLU"]).await.specimens[0].accession.clone();

    let (outcome, ack) = interop::hl7::receive(
        &lab,
        &oru("MSG0004", &accession, &[("2345-7", "95", "mg/dL", "")]),
        "test",
        "peer",
    )
    .await
    .unwrap();
    let Ingested::Quarantined { message_id, reason, location, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("\"2345-7\"") && reason.contains("not mapped"), "{reason}");
    assert_eq!(location, "OBX 1");
    assert!(String::from_utf8_lossy(&ack).contains("|103^"), "ERR-3 table value not found");

    lab.map_test_code(&lab.supervisor().await, instrument, "2345-7", "GLU", "mg/dL").await.unwrap();
    lab.replay_quarantined(&lab.technologist().await, message_id, None).await.unwrap();
    assert_eq!(lab.test(&patient, "GLU").await.result.unwrap().value_text, "95");
}

#[tokio::test]
async fn a_result_in_another_unit_is_quarantined_not_converted() {
    let lab = lab().await;
    analyzer(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    let (outcome, _) = interop::hl7::receive(
        &lab,
        &oru("MSG0005", &accession, &[("2823-3", "16.0", "mg/dL", "")]),
        "test",
        "peer",
    )
    .await
    .unwrap();
    let Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
    assert!(reason.contains("mg/dL") && reason.contains("mmol/L"), "{reason}");
}

#[tokio::test]
async fn bytes_that_are_not_hl7_are_rejected_and_kept() {
    let lab = lab().await;
    let (outcome, ack) =
        interop::hl7::receive(&lab, b"HELLO|this is not hl7", "test", "peer").await.unwrap();
    assert!(matches!(outcome, Ingested::Quarantined { .. }), "{outcome:?}");
    assert_eq!(ack_code(&ack), "AR");
    let kept = lab
        .message_log(
            &lab.technologist().await,
            &MessageFilter { open_quarantine: true, ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(kept[0].raw, b"HELLO|this is not hl7");
}

#[tokio::test]
async fn a_result_for_a_rejected_specimen_goes_to_the_quarantine() {
    let lab = lab().await;
    analyzer(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    lab.reject(&lab.lab_assistant().await, &accession, "hemolyzed", "").await.unwrap();
    let (outcome, _) = interop::hl7::receive(
        &lab,
        &oru("MSG0006", &accession, &[("2823-3", "6.1", "mmol/L", "")]),
        "test",
        "peer",
    )
    .await
    .unwrap();
    let Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
    assert!(reason.contains("was rejected"), "{reason}");
}

#[tokio::test]
async fn an_astm_result_session_is_ingested_by_specimen_and_code() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "Immunoassay", "astm", "IMMUNO").await.unwrap();
    // The analyzer writes the unit its own way; the map records what it sends.
    lab.map_test_code(&supervisor, id, "TSH", "TSH", "mIU/L").await.unwrap();
    let patient = lab.adult_man().await;
    let accession = lab.received(&patient, &["TSH"]).await.specimens[0].accession.clone();
    let message = format!(
        "H|\\^&|||IMMUNO^1.0|||||||P|LIS2-A2|20261124081500\rP|1\rO|1|{accession}||^^^TSH|R\rR|1|^^^TSH|2.10|mIU/L|0.27 to 4.20|N||F\rL|1|N\r"
    );
    let outcome =
        interop::astm::receive(&lab, message.as_bytes(), "astm:5100", "peer").await.unwrap();
    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
    assert_eq!(lab.test(&patient, "TSH").await.result.unwrap().value_text, "2.10");
    // The same bytes again are a retransmission.
    let again =
        interop::astm::receive(&lab, message.as_bytes(), "astm:5100", "peer").await.unwrap();
    assert!(matches!(again, Ingested::Duplicate { .. }), "{again:?}");
}

#[tokio::test]
async fn only_a_supervisor_adds_instruments_and_maps_codes() {
    let lab = lab().await;
    let technician = lab.technician().await;
    forbidden(lab.add_instrument(&technician, "X", "hl7", "X").await);
    let _ = Actor::system();
}

#[tokio::test]
async fn every_public_astm_sample_is_ingested_or_quarantined_with_a_reason() {
    // The public sample messages (crates/cuvette-astm/test_data, provenance beside them) come
    // from instruments this lab has not configured: each must be kept with a reason, none lost.
    let lab = lab().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cuvette-astm/test_data");
    let mut seen = 0;
    for folder in ["ok", "err"] {
        for entry in std::fs::read_dir(dir.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "astm") {
                continue;
            }
            let raw = std::fs::read(&path).unwrap();
            let outcome = interop::astm::receive(&lab, &raw, "astm:test", "peer").await.unwrap();
            match outcome {
                Ingested::Quarantined { reason, .. } => {
                    assert!(!reason.is_empty(), "{}", path.display())
                }
                Ingested::Accepted { .. } | Ingested::Duplicate { .. } => {}
                other => panic!("{}: {other:?}", path.display()),
            }
            seen += 1;
        }
    }
    assert!(seen >= 9, "read {seen} samples");
    let kept = lab
        .message_log(
            &lab.technologist().await,
            &MessageFilter { limit: 1000, ..Default::default() },
        )
        .await
        .unwrap();
    assert!(kept.len() >= 9, "every sample is in the message log");
}

/// A potassium result for `accession` whose PID says the patient is `pid`.
fn oru_with_pid(control_id: &str, accession: &str, pid: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|CHEMANALYZER|LAB|CUVETTE|LAB|20261124081500||ORU^R01^ORU_R01|{control_id}|P|2.5.1\r\
         {pid}\rOBR|1||{accession}|K\r\
         OBX|1|NM|2823-3^^LN||4.1|mmol/L|3.5-5.1|N|||F\r"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_result_message_naming_the_specimens_patient_is_accepted() {
    let lab = lab().await;
    analyzer(&lab).await;
    let patient = lab.register("M7788990", "Doe", "1972-03-04", "F").await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    let pid = "PID|1||M7788990^^^NORTHHOSP^MR||DOE^SAM^Q||19720304|F";
    let (outcome, ack) =
        interop::hl7::receive(&lab, &oru_with_pid("PID0001", &accession, pid), "test", "peer")
            .await
            .unwrap();
    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
    assert_eq!(ack_code(&ack), "AA");
}

#[tokio::test]
async fn a_result_message_for_another_patient_is_quarantined_and_never_released() {
    let lab = lab().await;
    analyzer(&lab).await;
    let patient = lab.register("M7788990", "Doe", "1972-03-04", "F").await;
    // Someone else, registered too: the message is theirs, the tube label is not.
    lab.register("M5551234", "Roe", "1980-07-01", "M").await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    for (control, pid, named) in [
        ("PID0002", "PID|1||M5551234^^^NORTHHOSP^MR||ROE^SAM||19800701|M", "patient id M5551234"),
        ("PID0003", "PID|1||M7788990^^^NORTHHOSP^MR||DOE^SAM||19800701|F", "date of birth"),
        ("PID0004", "PID|1||||ROE^SAM", "family name \"ROE\""),
    ] {
        let (outcome, ack) =
            interop::hl7::receive(&lab, &oru_with_pid(control, &accession, pid), "test", "peer")
                .await
                .unwrap();
        let Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
        assert!(reason.contains("is not specimen") && reason.contains(named), "{reason}");
        assert_ne!(ack_code(&ack), "AA", "{control}");
        assert!(lab.test(&patient, "K").await.result.is_none(), "{control}: nothing stored");
    }
    let quarantine = lab
        .message_log(
            &lab.technologist().await,
            &MessageFilter { open_quarantine: true, ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(quarantine.len(), 3);
}

#[tokio::test]
async fn an_astm_result_for_another_patient_by_name_or_birth_date_is_quarantined() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "Immunoassay", "astm", "IMMUNO").await.unwrap();
    lab.map_test_code(&supervisor, id, "TSH", "TSH", "mIU/L").await.unwrap();
    let patient = lab.register("M7788990", "Doe", "1972-03-04", "F").await;
    let accession = lab.received(&patient, &["TSH"]).await.specimens[0].accession.clone();
    let session = |p: &str| {
        format!(
            "H|\\^&|||IMMUNO^1.0|||||||P|LIS2-A2|20261124081500\r{p}\rO|1|{accession}||^^^TSH|R\rR|1|^^^TSH|2.10|mIU/L|0.27 to 4.20|N||F\rL|1|N\r"
        )
    };
    for p in ["P|1|||PID77|Roe^Sam||19720304|F", "P|1||||Doe^Sam||19610101|F"] {
        let outcome =
            interop::astm::receive(&lab, session(p).as_bytes(), "astm:5100", "peer").await.unwrap();
        let Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
        assert!(reason.contains("is not specimen"), "{reason}");
    }
    assert!(lab.test(&patient, "TSH").await.result.is_none());
    // Its own patient, with P-3 holding what the analyzer keeps there, is accepted.
    let outcome = interop::astm::receive(
        &lab,
        session("P|1|20261124081500|||DOE^SAM||19720304|F").as_bytes(),
        "astm:5100",
        "peer",
    )
    .await
    .unwrap();
    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
}

#[tokio::test]
async fn an_instrument_restricted_to_its_addresses_has_a_message_from_elsewhere_quarantined_and_replayable()
 {
    let lab = lab().await;
    let id = analyzer(&lab).await;
    let supervisor = lab.supervisor().await;
    let listed = lab.set_allowed_peers(&supervisor, id, "10.20.1.31, 10.20.1.32").await.unwrap();
    assert_eq!(listed.code(), "10.20.1.31 10.20.1.32");
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["K", "NA"]).await.specimens[0].accession.clone();

    // From a listed address: taken.
    let (outcome, ack) = interop::hl7::receive(
        &lab,
        &oru("MSG0101", &accession, &[("2823-3", "4.1", "mmol/L", "")]),
        "mllp:2575",
        "10.20.1.32:40112",
    )
    .await
    .unwrap();
    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
    assert_eq!(ack_code(&ack), "AA");

    // Claiming to be the analyzer from another address: kept in the quarantine, not posted.
    let (outcome, ack) = interop::hl7::receive(
        &lab,
        &oru("MSG0102", &accession, &[("2951-2", "140", "mmol/L", "")]),
        "mllp:2575",
        "10.20.9.9:51000",
    )
    .await
    .unwrap();
    let Ingested::Quarantined { message_id, reason, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(
        reason,
        "instrument Chemistry 1 sends from its listed addresses only and this came from 10.20.9.9:51000: if the instrument's address changed, add it under Interfaces and replay the message"
    );
    assert_eq!(ack_code(&ack), "AE");
    assert!(lab.test(&patient, "NA").await.result.is_none(), "nothing posted");
    // Nor from something that is no network address at all.
    let (outcome, _) = interop::hl7::receive(
        &lab,
        &oru("MSG0103", &accession, &[("2951-2", "141", "mmol/L", "")]),
        "file",
        "results.hl7",
    )
    .await
    .unwrap();
    assert!(matches!(outcome, Ingested::Quarantined { .. }), "{outcome:?}");

    // Staff who know the message is the analyzer's replay it.
    let technologist = lab.technologist().await;
    lab.replay_quarantined(&technologist, message_id, None).await.unwrap();
    assert_eq!(lab.test(&patient, "NA").await.result.unwrap().value_text, "140");

    // Lifting the restriction takes messages from any address again.
    lab.set_allowed_peers(&supervisor, id, " ").await.unwrap();
    let (outcome, _) = interop::hl7::receive(
        &lab,
        &oru("MSG0104", &accession, &[("2823-3", "4.2", "mmol/L", "")]),
        "mllp:2575",
        "10.20.9.9:51001",
    )
    .await
    .unwrap();
    assert!(matches!(outcome, Ingested::Accepted { .. }), "{outcome:?}");
}

#[tokio::test]
async fn an_instruments_addresses_are_set_by_a_supervisor_audited_and_refused_in_plain_words() {
    use cuvette_app::records::AuditFilter;
    use cuvette_domain::audit::AuditAction;

    let lab = lab().await;
    let id = analyzer(&lab).await;
    let supervisor = lab.supervisor().await;
    let technician = lab.technician().await;
    forbidden(lab.set_allowed_peers(&technician, id, "10.20.1.31").await);
    assert_eq!(
        invalid(
            lab.set_allowed_peers(&supervisor, id, "10.20.1.31 chem-1.lab").await,
            "allowed_peers"
        ),
        "\"chem-1.lab\" is not an IP address: list addresses such as 10.20.1.31 or fd00::31, separated by spaces or commas (no host names or networks), or leave it empty to take this instrument's messages from any address"
    );
    let filter =
        || AuditFilter { action: Some(AuditAction::InstrumentAllowedPeers), ..Default::default() };
    assert!(lab.audit_trail(filter()).await.is_empty(), "nothing refused is stored or audited");
    assert!(!lab.instruments(&supervisor).await.unwrap()[0].0.allowed_peers.is_restricted());

    lab.set_allowed_peers(&supervisor, id, "10.20.1.31").await.unwrap();
    let events = lab.audit_trail(filter()).await;
    assert_eq!(
        (
            events[0].entity_id.as_str(),
            events[0].before.as_ref().map(ToString::to_string),
            events[0].after.as_ref().map(ToString::to_string)
        ),
        (
            "Chemistry 1",
            Some(r#"{"allowed_peers":[]}"#.to_owned()),
            Some(r#"{"allowed_peers":["10.20.1.31"]}"#.to_owned())
        )
    );
    let listed = lab.listed_peer_addresses().await.unwrap();
    assert_eq!(
        listed.into_iter().collect::<Vec<_>>(),
        ["10.20.1.31".parse::<std::net::IpAddr>().unwrap()]
    );
}
