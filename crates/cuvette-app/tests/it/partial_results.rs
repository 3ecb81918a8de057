//! One result that cannot be taken does not lose the others: an instrument set to store the
//! mappable results has them stored and only the refused ones kept in the quarantine with
//! their reasons (the acknowledgement AE with one ERR each); a code mapped to be ignored is
//! skipped; a hematology analyzer's interpretive messages mapped as flags go on the
//! specimen's results and send them to a technologist.

use cuvette_app::interop::{self, Ingested, Place, Refusal};
use cuvette_app::records::{AuditFilter, MessageOutcome, Quarantine};
use cuvette_domain::Review;
use cuvette_domain::audit::AuditAction;

use crate::support::*;

/// A Sysmex XN-550 (ASTM, sends as `XN-550`) with WBC, HGB and PLT mapped, and a patient's
/// specimen with a CBC's counts and the absolute neutrophils ordered.
async fn sysmex(lab: &TestLab) -> (i64, cuvette_app::records::PatientRow, String) {
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "Sysmex XN-550", "astm", "XN-550").await.unwrap();
    lab.map_test_code(&supervisor, id, "WBC", "WBC", "10*3/uL").await.unwrap();
    lab.map_test_code(&supervisor, id, "HGB", "HGB", "g/dL").await.unwrap();
    lab.map_test_code(&supervisor, id, "PLT", "PLT", "10*3/uL").await.unwrap();
    let patient = lab.adult_woman().await;
    let ordered = lab.received(&patient, &["WBC", "HGB", "PLT", "NEUTA"]).await;
    (id, patient, ordered.specimens[0].accession.clone())
}

/// A Sysmex XN upload as the analyzer writes it: the sample number right-aligned in the
/// third component of the specimen id, each result's code in R-3's fifth (`^^^^WBC^1`), the values
/// space-padded, IP messages as results of their own.
fn xn_upload(accession: &str, results: &[&str]) -> Vec<u8> {
    let mut m = format!(
        "H|\\^&|||XN-550^00-01^11001^^^^12345678||||||||E1394-97\r\
         P|1||||||||||||^Dr.1||||||||||||^^^WESTC\r\
         O|1|^^{accession:>20}^B||^^^^WBC\\^^^^HGB\\^^^^PLT|||||||N||||||||||||||F\r"
    );
    for (i, r) in results.iter().enumerate() {
        m.push_str(&format!("R|{}|{r}||||||20261124120000\r", i + 1));
    }
    m.push_str("L|1|N\r");
    m.into_bytes()
}

#[tokio::test]
async fn by_default_one_unmapped_code_holds_the_whole_message_in_the_quarantine() {
    let lab = lab().await;
    let (_, patient, accession) = sysmex(&lab).await;
    let message = xn_upload(
        &accession,
        &[
            "^^^^WBC^1|7.81|10*3/uL||N",
            "^^^^NEUT#^1|  4.10|10*3/uL||N",
            "^^^^PLT^1|  78|10*3/uL||L",
        ],
    );
    let outcome = interop::astm::receive(&lab, &message, "astm:5100", "peer").await.unwrap();
    let Ingested::Quarantined { refusal, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(
        refusal,
        &Refusal::UnmappedCode {
            at: Place::record("R", 2),
            code: "NEUT#".into(),
            instrument: "Sysmex XN-550".into()
        }
    );
    assert!(lab.test(&patient, "WBC").await.result.is_none(), "nothing of the message is stored");
}

#[tokio::test]
async fn an_analyzer_set_to_store_the_mappable_results_stores_them_and_quarantines_the_unmapped_one_until_it_is_mapped_and_replayed()
 {
    let lab = lab().await;
    let (id, patient, accession) = sysmex(&lab).await;
    let supervisor = lab.supervisor().await;
    lab.set_unmapped_results(&supervisor, id, "store_mappable").await.unwrap();

    let message = xn_upload(
        &accession,
        &[
            "^^^^WBC^1|7.81|10*3/uL||N",
            "^^^^NEUT#^1|  4.10|10*3/uL||N",
            "^^^^PLT^1|  78|10*3/uL||L",
        ],
    );
    let outcome = interop::astm::receive(&lab, &message, "astm:5100", "peer").await.unwrap();
    let Ingested::Accepted { message_id, results: 2, held, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    let unmapped = "test code \"NEUT#\" from Sysmex XN-550 is not mapped to a catalog test: map it under Interfaces";
    assert_eq!(held.iter().map(Refusal::detail).collect::<Vec<_>>(), [format!("R 2: {unmapped}")]);
    let wbc = lab.test(&patient, "WBC").await.result.unwrap();
    assert_eq!((wbc.value_text.as_str(), wbc.unit.as_str()), ("7.81", "10*3/uL"));
    let plt = lab.test(&patient, "PLT").await.result.unwrap();
    assert_eq!((plt.value_text.as_str(), plt.unit.as_str()), ("78", "10*3/uL"));
    assert!(lab.test(&patient, "NEUTA").await.result.is_none());

    // The message log and the quarantine show what was stored and what waits, and why.
    let technologist = lab.technologist().await;
    let logged = lab.message(&technologist, *message_id).await.unwrap();
    assert_eq!(
        (logged.outcome, logged.quarantine, logged.results, logged.held.clone()),
        (MessageOutcome::Partial, Some(Quarantine::Open), 2, vec![2])
    );
    assert_eq!(
        logged.detail,
        format!("2 results stored; 1 kept in the quarantine: R 2: {unmapped}")
    );

    // Mapped, the replay takes only the record kept back: the counts are not entered twice.
    lab.map_test_code(&supervisor, id, "NEUT#", "NEUTA", "10*3/uL").await.unwrap();
    let replay = lab.replay_quarantined(&technologist, *message_id, None).await.unwrap();
    let replayed = lab.message(&technologist, replay).await.unwrap();
    assert_eq!((replayed.outcome, replayed.results), (MessageOutcome::Accepted, 1));
    assert_eq!(lab.test(&patient, "NEUTA").await.result.unwrap().value_text, "4.10");
    assert_eq!(lab.versions(&patient, "WBC").await.len(), 1, "WBC was stored once");
    let original = lab.message(&technologist, *message_id).await.unwrap();
    assert_eq!(original.quarantine, Some(Quarantine::Replayed));
}

/// A Mindray BC-5390 result (ORU^R01 v2.3.1) with the CBC's counts, its haemoglobin sent
/// in `g/L` and a research parameter the lab never mapped.
fn bc5390(accession: &str, control_id: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|BC-5390|Mindray|||20261124101500||ORU^R01|{control_id}|P|2.3.1||||||UNICODE\r\
         PID|1\r\
         OBR|1||{accession}|00001^Automated Count^99MRC||20261124095000|20261124101400\r\
         OBX|1|NM|6690-2^WBC^LN||8.21|10*3/uL|4.00-10.00|N|||F\r\
         OBX|2|NM|718-7^HGB^LN||128|g/L|110-150|N|||F\r\
         OBX|3|NM|777-3^PLT^LN||265|10*3/uL|100-300|N|||F\r\
         OBX|4|NM|10001^InR#^99MRC||0.02|10*3/uL||N|||F\r"
    )
    .into_bytes()
}

#[tokio::test]
async fn an_hl7_analyzer_set_to_store_the_mappable_results_is_answered_ae_with_one_err_per_result_kept_back()
 {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "Mindray BC-5390", "hl7", "BC-5390").await.unwrap();
    lab.map_test_code(&supervisor, id, "6690-2", "WBC", "10*3/uL").await.unwrap();
    lab.map_test_code(&supervisor, id, "718-7", "HGB", "g/dL").await.unwrap();
    lab.map_test_code(&supervisor, id, "777-3", "PLT", "10*3/uL").await.unwrap();
    lab.set_unmapped_results(&supervisor, id, "store_mappable").await.unwrap();
    let patient = lab.adult_man().await;
    let accession =
        lab.received(&patient, &["WBC", "HGB", "PLT"]).await.specimens[0].accession.clone();

    let message = bc5390(&accession, "BC20261124-0042");
    let (outcome, ack) = interop::hl7::receive(&lab, &message, "mllp:2575", "peer").await.unwrap();
    assert!(matches!(outcome, Ingested::Accepted { results: 2, .. }), "{outcome:?}");
    let unit = "HGB arrived in g/L but Mindray BC-5390 is mapped to send g/dL: correct the instrument's unit or its mapping under Interfaces";
    let unmapped = "test code \"10001\" from Mindray BC-5390 is not mapped to a catalog test: map it under Interfaces";
    let body: Vec<String> = String::from_utf8(ack)
        .unwrap()
        .split('\r')
        .filter(|s| !s.is_empty())
        .skip(1)
        .map(str::to_owned)
        .collect();
    assert_eq!(
        body,
        [
            format!("MSA|AE|BC20261124-0042|{}", &unit[..80]),
            format!("ERR||OBX^2^6|103^Table value not found^HL70357|E|||{unit}|{unit}"),
            format!("ERR||OBX^4^3|103^Table value not found^HL70357|E|||{unmapped}|{unmapped}"),
        ]
    );
    assert_eq!(lab.test(&patient, "WBC").await.result.unwrap().value_text, "8.21");
    assert_eq!(lab.test(&patient, "PLT").await.result.unwrap().value_text, "265");
    assert!(lab.test(&patient, "HGB").await.result.is_none(), "HGB waits in the quarantine");
}

#[tokio::test]
async fn a_problem_with_the_specimen_holds_the_whole_message_whatever_the_setting() {
    let lab = lab().await;
    let (id, patient, accession) = sysmex(&lab).await;
    let supervisor = lab.supervisor().await;
    lab.set_unmapped_results(&supervisor, id, "store_mappable").await.unwrap();
    // PLT is mapped but not ordered on this specimen: one result's problem. The second
    // specimen id is no specimen at all: the specimen's problem holds everything.
    let mut message = String::from_utf8(xn_upload(
        &accession,
        &["^^^^WBC^1|7.81|10*3/uL||N", "^^^^NEUT#^1|  4.10|10*3/uL||N"],
    ))
    .unwrap();
    message = message.replace("L|1|N\r", "O|2|^^26-0000999-9^B||^^^^WBC|||||||N||||||||||||||F\rR|1|^^^^WBC^1|5.00|10*3/uL||N||||||20261124120000\rL|1|N\r");
    let outcome =
        interop::astm::receive(&lab, message.as_bytes(), "astm:5100", "peer").await.unwrap();
    let refusals: Vec<String> = outcome.refusals().iter().map(|r| r.detail()).collect();
    assert!(matches!(outcome, Ingested::Quarantined { .. }), "{outcome:?}");
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(refusals[1].contains("26-0000999-9"), "{refusals:?}");
    assert!(lab.test(&patient, "WBC").await.result.is_none());
}

#[tokio::test]
async fn a_code_mapped_to_be_ignored_is_skipped_without_a_quarantine_and_the_mapping_is_audited() {
    let lab = lab().await;
    let (id, patient, accession) = sysmex(&lab).await;
    let supervisor = lab.supervisor().await;
    lab.ignore_test_code(&supervisor, id, "SCAT_DIFF").await.unwrap();

    let message = xn_upload(
        &accession,
        &[
            "^^^^WBC^1|7.81|10*3/uL||N",
            "^^^^SCAT_DIFF|PNG&R&20261124&R&2026_11_24_12_00_DIFF.PNG|||N",
        ],
    );
    let outcome = interop::astm::receive(&lab, &message, "astm:5100", "peer").await.unwrap();
    assert!(
        matches!(&outcome, Ingested::Accepted { results: 1, held, .. } if held.is_empty()),
        "{outcome:?}"
    );
    assert_eq!(lab.test(&patient, "WBC").await.result.unwrap().value_text, "7.81");

    let trail = lab
        .audit_trail(AuditFilter {
            action: Some(AuditAction::InstrumentIgnoreCode),
            ..Default::default()
        })
        .await;
    assert_eq!(trail.len(), 1);
    assert_eq!(
        trail[0].after.as_ref().map(ToString::to_string).as_deref(),
        Some(r#"{"instrument_code":"SCAT_DIFF","mapped_as":"ignore"}"#)
    );
    assert_eq!(trail[0].entity_id, "Sysmex XN-550");
}

#[tokio::test]
async fn sysmex_ip_messages_mapped_as_flags_go_on_the_specimens_results_and_send_them_to_review() {
    let lab = lab().await;
    let (id, patient, accession) = sysmex(&lab).await;
    let supervisor = lab.supervisor().await;
    for flag in ["Blasts?", "Immature_Gran?", "Abn_Lympho/Blasts?", "PLT_Abn_Distribution"] {
        lab.map_flag_code(&supervisor, id, flag).await.unwrap();
    }
    let message = xn_upload(
        &accession,
        &[
            "^^^^WBC^1|7.81|10*3/uL||N",
            "^^^^PLT^1|  78|10*3/uL||L",
            "^^^^PLT_Abn_Distribution||||A",
            // Q-flag scores below the analyzer's threshold of 100, without an A: not raised.
            "^^^^Blasts?|0|||",
            "^^^^Immature_Gran?|40|||",
            "^^^^Abn_Lympho/Blasts?|100|||A",
        ],
    );
    let outcome = interop::astm::receive(&lab, &message, "astm:5100", "peer").await.unwrap();
    assert!(matches!(outcome, Ingested::Accepted { results: 2, .. }), "{outcome:?}");
    let wbc = lab.test(&patient, "WBC").await.result.unwrap();
    assert_eq!(wbc.instrument_flags, ["PLT_Abn_Distribution", "Abn_Lympho/Blasts?"]);
    assert_eq!(wbc.review, Review::Technologist);
    assert!(
        wbc.reasons
            .contains(&"instrument flagged: PLT_Abn_Distribution, Abn_Lympho/Blasts?".to_owned()),
        "{:?}",
        wbc.reasons
    );
    let plt = lab.test(&patient, "PLT").await.result.unwrap();
    assert_eq!(plt.instrument_flags, ["L", "PLT_Abn_Distribution", "Abn_Lympho/Blasts?"]);
    assert_eq!(plt.review, Review::Technologist);

    let trail = lab
        .audit_trail(AuditFilter {
            action: Some(AuditAction::InstrumentMapFlag),
            ..Default::default()
        })
        .await;
    assert_eq!(trail.len(), 4);
}

#[tokio::test]
async fn the_unmapped_results_setting_takes_hold_or_store_mappable_from_a_supervisor() {
    let lab = lab().await;
    let (id, _, _) = sysmex(&lab).await;
    let supervisor = lab.supervisor().await;
    let refused = lab.set_unmapped_results(&supervisor, id, "store some").await;
    assert_eq!(
        invalid(refused, "unmapped_results"),
        "hold (the whole message waits in the quarantine) or store_mappable (the results that can be taken are stored, the others wait in the quarantine)"
    );
    let technician = lab.technician().await;
    forbidden(lab.set_unmapped_results(&technician, id, "store_mappable").await);
    forbidden(lab.map_flag_code(&technician, id, "Blasts?").await);
    assert_eq!(
        invalid(lab.ignore_test_code(&supervisor, id, "  ").await, "instrument_code"),
        "enter the code the instrument sends (up to 100 characters)"
    );
    let trail = lab
        .audit_trail(AuditFilter {
            action: Some(AuditAction::InstrumentUnmappedResults),
            ..Default::default()
        })
        .await;
    assert!(trail.is_empty(), "nothing refused is stored or audited");
    lab.set_unmapped_results(&supervisor, id, "store_mappable").await.unwrap();
    let trail = lab
        .audit_trail(AuditFilter {
            action: Some(AuditAction::InstrumentUnmappedResults),
            ..Default::default()
        })
        .await;
    assert_eq!(
        (
            trail[0].before.as_ref().map(ToString::to_string),
            trail[0].after.as_ref().map(ToString::to_string)
        ),
        (
            Some(r#"{"unmapped_results":"hold"}"#.to_owned()),
            Some(r#"{"unmapped_results":"store_mappable"}"#.to_owned())
        )
    );
}
