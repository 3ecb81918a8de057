//! What instruments and EHRs say about each result (HL7 OBX-11, ASTM R-9): a correction
//! becomes a new version the report calls corrected, a preliminary result is released only
//! as preliminary, a withdrawal is never a silent delete, and a doubted result waits for a
//! technologist.

use cuvette_app::interop::{self, Ingested};
use cuvette_domain::workflow::{ReleaseStatus, TestStatus};

use crate::support::*;

/// A reference lab's interface sending potassium (LOINC 2823-3) over HL7 as "REFLAB".
async fn reference_lab(lab: &TestLab) {
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "Reference lab", "hl7", "REFLAB").await.unwrap();
    lab.map_test_code(&supervisor, id, "2823-3", "K", "mmol/L").await.unwrap();
}

/// An ORU^R01 as a reference lab sends it: one potassium with its OBX-11, for the patient with
/// MRN `mrn`.
fn oru(control_id: &str, mrn: &str, accession: &str, value: &str, status: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|REFLAB|REF|CUVETTE|LAB|20261124091500||ORU^R01^ORU_R01|{control_id}|P|2.5.1|||NE|AL\r\
         PID|1||{mrn}^^^LAB^MR\r\
         OBR|1||{accession}|2823-3^Potassium^LN|||20261124080000\r\
         OBX|1|NM|2823-3^Potassium [Moles/volume] in Serum or Plasma^LN||{value}|mmol/L|3.5-5.1|N|||{status}|||20261124091000\r"
    )
    .into_bytes()
}

async fn receive(lab: &TestLab, message: &[u8]) -> (Ingested, String) {
    let (outcome, ack) = interop::hl7::receive(lab, message, "mllp:2575", "peer").await.unwrap();
    (outcome, String::from_utf8(ack).unwrap())
}

#[tokio::test]
async fn a_corrected_result_after_release_is_a_new_version_released_as_corrected() {
    let lab = lab().await;
    reference_lab(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    let technologist = lab.technologist().await;

    receive(&lab, &oru("REF-1", &patient.mrn, &accession, "4.2", "F")).await;
    assert_released(&lab.verify(&technologist, &patient, "K").await);

    // The reference lab repeats the test and corrects its report.
    let (outcome, ack) = receive(&lab, &oru("REF-2", &patient.mrn, &accession, "5.9", "C")).await;
    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
    assert!(ack.contains("MSA|AA|REF-2"), "{ack}");
    let versions = lab.versions(&patient, "K").await;
    assert_eq!(versions.len(), 2);
    let corrected = &versions[1];
    assert_eq!(
        (
            corrected.value_text.as_str(),
            corrected.correction_reason.as_deref(),
            corrected.reported_as,
            corrected.released_at,
        ),
        (
            "5.9",
            Some("corrected by Reference lab (OBX-11 C)"),
            Some(ReleaseStatus::Corrected),
            None
        )
    );
    assert!(
        corrected.reasons.contains(&"Reference lab sent it as a correction (OBX-11 C) of the result reported before: check it before it replaces that one".to_owned()),
        "{:?}",
        corrected.reasons
    );
    // Until a technologist releases it the report shows the value released before.
    assert_eq!(lab.test(&patient, "K").await.test.status, TestStatus::Final);
    assert_eq!(versions[0].release_status, Some(ReleaseStatus::Final));

    assert_released(&lab.verify(&technologist, &patient, "K").await);
    let versions = lab.versions(&patient, "K").await;
    assert_eq!(versions[1].release_status, Some(ReleaseStatus::Corrected));
    assert_eq!(versions[0].value_text, "4.2", "the value replaced stays in the history");
}

#[tokio::test]
async fn a_final_result_sent_again_for_a_released_test_is_still_refused() {
    let lab = lab().await;
    reference_lab(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    receive(&lab, &oru("REF-3", &patient.mrn, &accession, "4.2", "F")).await;
    assert_released(&lab.verify(&lab.technologist().await, &patient, "K").await);

    let (outcome, ack) = receive(&lab, &oru("REF-4", &patient.mrn, &accession, "4.4", "F")).await;
    let Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(
        reason,
        format!(
            "K on {accession} is Final: a change to a released result comes as a correction (OBX-11 or R-9 C), or a technologist corrects it on the bench"
        )
    );
    assert!(ack.contains("ERR||OBX^1^3|206^"), "{ack}");
    assert_eq!(lab.versions(&patient, "K").await.len(), 1);
}

#[tokio::test]
async fn a_preliminary_result_is_released_only_as_preliminary_until_the_final_one_comes() {
    let lab = lab().await;
    reference_lab(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    let technologist = lab.technologist().await;

    receive(&lab, &oru("REF-5", &patient.mrn, &accession, "4.0", "P")).await;
    let preliminary = &lab.versions(&patient, "K").await[0];
    assert_eq!(preliminary.reported_as, Some(ReleaseStatus::Preliminary));
    assert!(
        preliminary.reasons.contains(&"Reference lab reported it as preliminary (OBX-11 P): release it as preliminary, or wait for its final result".to_owned()),
        "{:?}",
        preliminary.reasons
    );
    let held = lab.verify(&technologist, &patient, "K").await;
    assert_eq!(
        held_reason(&held),
        "K: the instrument reported this result as preliminary: release it as preliminary, or wait for its final result"
    );
    assert_released(&lab.verify_as(&technologist, &patient, "K", TestStatus::Preliminary).await);
    assert_eq!(lab.test(&patient, "K").await.test.status, TestStatus::Preliminary);

    // The final result follows as a version of its own, released as final.
    let (outcome, _) = receive(&lab, &oru("REF-6", &patient.mrn, &accession, "4.1", "F")).await;
    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
    assert_released(&lab.verify(&technologist, &patient, "K").await);
    let versions = lab.versions(&patient, "K").await;
    assert_eq!(
        versions.iter().map(|v| (v.value_text.as_str(), v.release_status)).collect::<Vec<_>>(),
        [("4.0", Some(ReleaseStatus::Preliminary)), ("4.1", Some(ReleaseStatus::Final))]
    );
}

#[tokio::test]
async fn a_deleted_result_is_withdrawn_by_a_version_that_waits_for_a_technologist() {
    let lab = lab().await;
    reference_lab(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    let technologist = lab.technologist().await;
    receive(&lab, &oru("REF-7", &patient.mrn, &accession, "5.6", "F")).await;
    assert_released(&lab.verify(&technologist, &patient, "K").await);

    // The reference lab deletes it: the tube was haemolysed.
    let (outcome, ack) = receive(&lab, &oru("REF-8", &patient.mrn, &accession, "", "D")).await;
    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
    assert!(ack.contains("MSA|AA|REF-8"), "{ack}");
    let versions = lab.versions(&patient, "K").await;
    assert_eq!(versions.len(), 2, "nothing deleted");
    let withdrawal = &versions[1];
    assert_eq!(
        (
            withdrawal.value_text.as_str(),
            withdrawal.correction_reason.as_deref(),
            withdrawal.released_at
        ),
        (
            "Unable to report: Reference lab withdrew the result (OBX-11 D: delete)",
            Some("withdrawn by Reference lab (OBX-11 D)"),
            None
        )
    );
    let queue = lab.review_queue(&technologist).await.unwrap();
    assert!(queue.iter().any(|i| i.result.as_ref().is_some_and(|r| r.id == withdrawal.id)));
    assert_released(&lab.verify(&technologist, &patient, "K").await);
    assert_eq!(lab.versions(&patient, "K").await[1].release_status, Some(ReleaseStatus::Corrected));
}

#[tokio::test]
async fn a_delete_for_a_test_without_a_result_is_a_warning_and_stores_nothing() {
    let lab = lab().await;
    reference_lab(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    let (outcome, _) = receive(&lab, &oru("REF-9", &patient.mrn, &accession, "", "D")).await;
    let Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(reason, format!("no result carries a value ({accession} 2823-3 status D)"));
    assert!(lab.versions(&patient, "K").await.is_empty());
}

#[tokio::test]
async fn an_astm_correction_and_a_doubted_result_wait_for_a_technologist() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "Chemistry 3", "astm", "C311").await.unwrap();
    lab.map_test_code(&supervisor, id, "798", "GLU", "mg/dL").await.unwrap();
    lab.map_test_code(&supervisor, id, "435", "K", "mmol/L").await.unwrap();
    let patient = lab.adult_man().await;
    let accession = lab.received(&patient, &["GLU", "K"]).await.specimens[0].accession.clone();
    let technologist = lab.technologist().await;
    let session = |time: &str, glu: (&str, &str), k: (&str, &str)| {
        format!(
            "H|\\^&|||C311^1|||||host|RSUPL^BATCH|P|1|{time}\r\
             P|1\r\
             O|1|{accession}|4031^30012^012^^S1^SC|^^^798^\\^^^435^|R\r\
             R|1|^^^798|{}|mg/dL||N||{}||ADMIN|||P1\r\
             R|2|^^^435|{}|mmol/L||N||{}||ADMIN|||P1\r\
             L|1|N\r",
            glu.0, glu.1, k.0, k.1
        )
    };
    let first = session("20261124100000", ("101", "F"), ("7.2", "W"));
    let outcome = interop::astm::receive(&lab, first.as_bytes(), "astm:5100", "peer").await;
    assert!(matches!(outcome, Ok(Ingested::Accepted { results: 2, .. })), "{outcome:?}");
    let k = &lab.versions(&patient, "K").await[0];
    assert_eq!(k.instrument_flags, ["W"], "R-9 W: the instrument doubts it");
    assert_eq!(k.review, cuvette_domain::Review::Technologist);
    assert_released(&lab.verify(&technologist, &patient, "GLU").await);

    let second = session("20261124101500", ("96", "C"), ("4.4", "F"));
    let outcome = interop::astm::receive(&lab, second.as_bytes(), "astm:5100", "peer").await;
    assert!(matches!(outcome, Ok(Ingested::Accepted { results: 2, .. })), "{outcome:?}");
    let glucose = lab.versions(&patient, "GLU").await;
    assert_eq!(
        (glucose[1].value_text.as_str(), glucose[1].correction_reason.as_deref()),
        ("96", Some("corrected by Chemistry 3 (R-9 C)"))
    );
    let k = lab.versions(&patient, "K").await;
    assert_eq!(
        (k.len(), k[1].value_text.as_str(), k[1].correction_reason.as_deref()),
        (2, "4.4", None)
    );
}
