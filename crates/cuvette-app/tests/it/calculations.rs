//! Calculated tests: ordered with their panel, computed when their inputs arrive.

use cuvette_app::{Correction, EnteredResult, Saved};
use cuvette_domain::evaluation::Review;

use crate::support::*;

/// The (code, report text) pairs a save produced, calculations included.
async fn produced(lab: &TestLab, saved: &[Saved]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in saved {
        let test = lab.store().ordered_test(s.ordered_test_id).await.unwrap();
        out.push((test.test_code, s.evaluation.report_text.clone()));
    }
    out
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(c, t)| ((*c).to_owned(), (*t).to_owned())).collect()
}

#[tokio::test]
async fn a_panel_creates_its_calculations_and_they_compute_when_inputs_arrive() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    let placed = lab.received(&patient, &["BMP"]).await;
    let ordered: Vec<&str> =
        placed.specimens.iter().flat_map(|s| s.tests.iter().map(String::as_str)).collect();
    assert!(ordered.contains(&"AGAP") && ordered.contains(&"EGFR"), "{ordered:?}");
    assert_eq!(lab.test(&patient, "AGAP").await.test.panel_code.as_deref(), Some("BMP"));

    let saved = lab.enter(&technician, &patient, "NA", "140").await.unwrap();
    assert_eq!(
        produced(&lab, &saved).await,
        pairs(&[("NA", "140")]),
        "no anion gap without chloride and CO2"
    );
    assert!(lab.test(&patient, "AGAP").await.result.is_none());

    let saved =
        lab.enter_all(&technician, &patient, &[("CL", "104"), ("CO2", "24")]).await.unwrap();
    assert_eq!(
        produced(&lab, &saved).await,
        pairs(&[("CL", "104"), ("CO2", "24"), ("AGAP", "12")])
    );

    let saved = lab.enter(&technician, &patient, "CREAT", "1.0").await.unwrap();
    assert_eq!(produced(&lab, &saved).await, pairs(&[("CREAT", "1.0"), ("EGFR", "92")]));

    let agap = lab.test(&patient, "AGAP").await.result.unwrap();
    assert_eq!(
        (agap.value_text.as_str(), agap.unit.as_str(), agap.flags.codes().as_str()),
        ("12", "mmol/L", "")
    );
    assert_eq!((agap.entered_by.as_str(), agap.review.code()), ("technician", "routine"));
    let egfr = lab.test(&patient, "EGFR").await.result.unwrap();
    assert_eq!((egfr.value_text.as_str(), egfr.unit.as_str()), ("92", "mL/min/{1.73_m2}"));
    assert_released(&lab.verify(&technician, &patient, "EGFR").await);
}

#[tokio::test]
async fn a_calculation_follows_its_inputs_when_they_are_reentered() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["BMP"]).await;
    lab.enter_all(&technician, &patient, &[("NA", "140"), ("CL", "104"), ("CO2", "24")])
        .await
        .unwrap();

    let saved = lab.enter(&technician, &patient, "NA", "143").await.unwrap();
    assert_eq!(produced(&lab, &saved).await, pairs(&[("NA", "143"), ("AGAP", "15")]));
    let agap = lab.versions(&patient, "AGAP").await;
    assert_eq!(agap.iter().map(|v| v.value_text.as_str()).collect::<Vec<_>>(), ["12", "15"]);
    assert_eq!(lab.test(&patient, "AGAP").await.result.unwrap().flags.codes(), "H");

    let saved = lab.enter(&technician, &patient, "K", "4.0").await.unwrap();
    assert_eq!(
        produced(&lab, &saved).await,
        pairs(&[("K", "4.0")]),
        "an unchanged calculation is not written again"
    );
}

#[tokio::test]
async fn a_calculation_is_not_typed_by_hand() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["BMP"]).await;
    let agap = lab.test(&patient, "AGAP").await;

    let message = invalid(
        lab.enter(&technician, &patient, "AGAP", "12").await,
        &format!("result_{}", agap.test.id),
    );
    assert!(message.contains("calculated from its inputs"), "{message}");
    assert!(lab.versions(&patient, "AGAP").await.is_empty());
}

#[tokio::test]
async fn egfr_is_not_reported_for_a_child() {
    let lab = lab().await;
    let child = lab.register("C1701", "Mwangi", "2009-06-01", "M").await;
    let technician = lab.technician().await;
    lab.received(&child, &["BMP"]).await;

    let egfr_id = lab.test(&child, "EGFR").await.test.id;
    let saved = lab.enter(&technician, &child, "CREAT", "0.7").await.unwrap();
    let egfr = saved
        .iter()
        .find(|s| s.ordered_test_id == egfr_id)
        .unwrap_or_else(|| panic!("no eGFR line: {saved:?}"));
    assert!(
        egfr.evaluation.report_text.starts_with("Not calculated"),
        "{}",
        egfr.evaluation.report_text
    );
    assert!(
        egfr.evaluation.report_text.contains("age_years >= 18"),
        "{}",
        egfr.evaluation.report_text
    );
    assert_eq!(
        egfr.evaluation.review,
        Review::Technologist,
        "a technologist reads the comment before release"
    );
}

#[tokio::test]
async fn correcting_an_input_recalculates_and_corrects_the_released_calculation() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["BMP"]).await;
    lab.enter_all(&technologist, &patient, &[("NA", "140"), ("CL", "104"), ("CO2", "24")])
        .await
        .unwrap();
    for code in ["NA", "CL", "CO2", "AGAP"] {
        assert_released(&lab.verify(&technologist, &patient, code).await);
    }

    let co2 = lab.test(&patient, "CO2").await;
    let entry = EnteredResult {
        ordered_test_id: co2.test.id,
        row_version: co2.test.row_version,
        text: "28".into(),
    };
    let correction =
        Correction { reason: "CO2 rerun after recalibration".into(), signature: PASSWORD.into() };
    let saved = lab.enter_results(&technologist, &[entry], Some(&correction)).await.unwrap();
    assert_eq!(produced(&lab, &saved).await, pairs(&[("CO2", "28"), ("AGAP", "8")]));

    let agap = lab.versions(&patient, "AGAP").await;
    assert_eq!(agap[1].correction_reason.as_deref(), Some("recalculated from corrected inputs"));
    assert_eq!(lab.test(&patient, "AGAP").await.test.status.code(), "final");
    assert_released(&lab.verify(&technologist, &patient, "AGAP").await);
    let agap = lab.test(&patient, "AGAP").await.result.unwrap();
    assert_eq!(
        (agap.report_text.as_str(), agap.release_status.map(|s| s.code())),
        ("8", Some("corrected"))
    );
}

#[tokio::test]
async fn a_calculation_is_withdrawn_when_an_input_is_no_longer_a_number() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["BMP"]).await;
    lab.enter(&technologist, &patient, "CREAT", "1.0").await.unwrap();
    assert_eq!(lab.test(&patient, "EGFR").await.result.unwrap().value_text, "92");

    lab.enter(&technologist, &patient, "CREAT", "hemolyzed").await.unwrap();

    let egfr = lab.test(&patient, "EGFR").await.result.unwrap();
    assert_ne!(
        egfr.value_text, "92",
        "eGFR still reports the value computed from the creatinine that was replaced"
    );
}

/// The report text of the patient's `code` as it now stands.
async fn reported(lab: &TestLab, patient: &cuvette_app::records::PatientRow, code: &str) -> String {
    lab.test(patient, code).await.result.map(|r| r.report_text).unwrap_or_default()
}

#[tokio::test]
async fn a_creatinine_above_the_measurement_range_gives_no_egfr() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["BMP"]).await;

    let saved = lab.enter(&technologist, &patient, "CREAT", "30.00").await.unwrap();
    assert_eq!(saved[0].evaluation.report_text, ">25", "the creatinine itself is censored");
    let egfr = reported(&lab, &patient, "EGFR").await;
    assert!(egfr.starts_with("Not calculated: Creatinine above the measurement range"), "{egfr}");
    // The comment is no value: it is not flagged invalid, and a technologist releases it.
    let stored = lab.test(&patient, "EGFR").await.result.unwrap();
    assert_eq!((stored.flags.codes().as_str(), stored.review.code()), ("", "technologist"));
    assert_released(&lab.verify(&technologist, &patient, "EGFR").await);
}

#[tokio::test]
async fn a_censored_albumin_as_typed_gives_no_globulin_or_ratio() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["CMP"]).await;

    lab.enter_all(&technologist, &patient, &[("TP", "7.0"), ("ALB", ">6.0")]).await.unwrap();
    for code in ["GLOB", "AGRATIO"] {
        let text = reported(&lab, &patient, code).await;
        assert_eq!(text, "Not calculated: Albumin above the measurement range (>6.0)", "{code}");
    }
    // An albumin above the range as a plain number is the same.
    lab.enter(&technologist, &patient, "ALB", "8.0").await.unwrap();
    let text = reported(&lab, &patient, "GLOB").await;
    assert!(text.starts_with("Not calculated: Albumin above the measurement range"), "{text}");
    // Repeated within the range, the calculations report numbers again.
    lab.enter(&technologist, &patient, "ALB", "4.0").await.unwrap();
    assert_eq!(reported(&lab, &patient, "GLOB").await, "3.0");
}

#[tokio::test]
async fn a_cholesterol_above_the_measurement_range_gives_no_ldl_or_non_hdl() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["LIPID"]).await;

    lab.enter_all(&technologist, &patient, &[("CHOL", "840"), ("HDL", "45"), ("TRIG", "150")])
        .await
        .unwrap();
    for code in ["LDLS", "NONHDL"] {
        let text = reported(&lab, &patient, code).await;
        assert!(
            text.starts_with("Not calculated: Cholesterol")
                && text.contains("above the measurement range"),
            "{code}: {text}"
        );
    }
}

#[tokio::test]
async fn a_creatinine_below_the_measurement_range_as_typed_gives_no_egfr() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["BMP"]).await;
    lab.enter(&technologist, &patient, "CREAT", "<0.15").await.unwrap();
    let egfr = reported(&lab, &patient, "EGFR").await;
    assert!(egfr.contains("Creatinine below the measurement range (<0.15)"), "{egfr}");
}

#[tokio::test]
async fn a_result_that_cannot_be_reported_is_released_as_its_documented_comment() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "1OO").await.unwrap();
    assert!(held_reason(&lab.verify(&technologist, &patient, "K").await).contains("not a valid"));

    // "Unable to report" without a reason is refused on the field.
    let k = lab.test(&patient, "K").await;
    let message = invalid(
        lab.enter(&technician, &patient, "K", "Unable to report:").await,
        &format!("result_{}", k.test.id),
    );
    assert!(message.contains("say why"), "{message}");

    let saved =
        lab.enter(&technician, &patient, "K", "Unable to report: specimen clotted").await.unwrap();
    assert_eq!(saved[0].evaluation.flag_codes(), "");
    assert_eq!(saved[0].evaluation.review, Review::Technologist);
    assert!(held_reason(&lab.verify(&technician, &patient, "K").await).contains("technologist"));
    assert_released(&lab.verify(&technologist, &patient, "K").await);
    assert_eq!(reported(&lab, &patient, "K").await, "Unable to report: specimen clotted");
}
