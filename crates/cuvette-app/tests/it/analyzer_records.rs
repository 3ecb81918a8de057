//! ASTM records as analyzers write them: the specimen id among rack and position components,
//! test codes with dilution and qualifier parts, and serum indices sent as results of their
//! own.

use cuvette_app::interop::{self, Ingested};

use crate::support::*;

/// A cobas c 311-like chemistry analyzer ("H7600") sending glucose as 798 and potassium as
/// 435; the specimen with both ordered.
async fn cobas(lab: &TestLab) -> (i64, cuvette_app::records::PatientRow, String) {
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "cobas c 311", "astm", "H7600").await.unwrap();
    lab.map_test_code(&supervisor, id, "798", "GLU", "mg/dL").await.unwrap();
    // Mapped as the analyzer writes it, dilution separator included.
    lab.map_test_code(&supervisor, id, "435/", "K", "mmol/L").await.unwrap();
    let patient = lab.adult_man().await;
    let accession = lab.received(&patient, &["GLU", "K"]).await.specimens[0].accession.clone();
    (id, patient, accession)
}

fn upload(time: &str, o3: &str, results: &[&str]) -> Vec<u8> {
    let mut m = format!(
        "H|\\^&|||H7600^1|||||host|RSUPL^BATCH|P|1|{time}\r\
         P|1|||||||U||||||^\r\
         O|1|{o3}|4031^30012^012^^S1^SC|^^^798^\\^^^435^|||||||N||||1|||||||20261124153312|||F\r"
    );
    for (i, r) in results.iter().enumerate() {
        m.push_str(&format!("R|{}|{r}||||ADMIN |||P1\r", i + 1));
    }
    m.push_str("L|1|N\r");
    m.into_bytes()
}

#[tokio::test]
async fn the_specimen_id_is_the_first_component_of_o3_that_is_not_empty() {
    let lab = lab().await;
    let (_, patient, accession) = cobas(&lab).await;
    let message = upload(
        "20261124153400",
        &format!("^^{accession}"),
        &["^^^798/1/not|101|mg/dL||N|", "^^^435/|4.3|mmol/L||N|"],
    );
    let decoded = interop::astm::decode_results(&message);
    assert_eq!(decoded.results[0].accession, accession);
    assert_eq!(
        (decoded.results[0].instrument_code.as_str(), decoded.results[0].test_attributes.clone()),
        ("798", vec!["1".to_owned(), "not".to_owned()]),
        "the code maps; dilution and qualifier are kept as sent"
    );
    assert_eq!(decoded.results[1].instrument_code, "435");
    assert!(decoded.results[1].test_attributes.is_empty());

    let outcome = interop::astm::receive(&lab, &message, "astm:5100", "peer").await.unwrap();
    assert!(matches!(outcome, Ingested::Accepted { results: 2, .. }), "{outcome:?}");
    let glucose = lab.test(&patient, "GLU").await.result.unwrap();
    assert_eq!((glucose.value_text.as_str(), glucose.unit.as_str()), ("101", "mg/dL"));
    assert_eq!(lab.test(&patient, "K").await.result.unwrap().value_text, "4.3");
}

#[tokio::test]
async fn an_instrument_configured_for_another_component_reads_the_id_there() {
    let lab = lab().await;
    let (id, patient, accession) = cobas(&lab).await;
    // Rack, position, then the sample id.
    let o3 = format!("4031^3^{accession}");
    let message = upload("20261124153500", &o3, &["^^^798/|99|mg/dL||N|"]);
    let outcome = interop::astm::receive(&lab, &message, "astm:5100", "peer").await.unwrap();
    let Ingested::Quarantined { reason, location, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(location, "R 1");
    assert!(reason.starts_with("specimen id \"4031\": "), "{reason}");

    let supervisor = lab.supervisor().await;
    let refused = lab.set_specimen_id_component(&supervisor, id, Some(11)).await;
    assert_eq!(
        invalid(refused, "specimen_id_component"),
        "a component from 1 to 10, or none for the first that is not empty"
    );
    lab.set_specimen_id_component(&supervisor, id, Some(3)).await.unwrap();
    let message = upload("20261124153600", &o3, &["^^^798/|99|mg/dL||N|"]);
    let outcome = interop::astm::receive(&lab, &message, "astm:5100", "peer").await.unwrap();
    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
    assert_eq!(lab.test(&patient, "GLU").await.result.unwrap().value_text, "99");
    let technician = lab.technician().await;
    forbidden(lab.set_specimen_id_component(&technician, id, None).await);
}

#[tokio::test]
async fn serum_indices_sent_as_results_are_the_specimens_indices() {
    let lab = lab().await;
    let (_, patient, accession) = cobas(&lab).await;
    let message = upload(
        "20261124153700",
        &accession,
        &["^^^798/|101|mg/dL||N|", "^^^H|12|||N|", "^^^ICT|3|||N|", "^^^Lipemia Index|40|||N|"],
    );
    let outcome = interop::astm::receive(&lab, &message, "astm:5100", "peer").await.unwrap();
    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
    let specimen = lab.specimen(&accession).await;
    assert_eq!(
        (specimen.hemolysis_index, specimen.icterus_index, specimen.lipemia_index),
        (Some(12), Some(3), Some(40))
    );
    assert_eq!(lab.test(&patient, "GLU").await.result.unwrap().value_text, "101");

    // An index that is not a whole number is refused with its name.
    let message = upload("20261124153800", &accession, &["^^^HEM|++|||N|"]);
    let outcome = interop::astm::receive(&lab, &message, "astm:5100", "peer").await.unwrap();
    let Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(reason, "hemolysis index \"++\" is not a whole number");
}
