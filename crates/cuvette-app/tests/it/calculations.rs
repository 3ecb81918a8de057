//! Calculated tests: ordered with their panel, computed when their inputs arrive.

use cuvette_app::records::PatientRow;
use cuvette_app::{Correction, EnteredResult, Saved};
use cuvette_domain::ReportedValue;
use cuvette_domain::evaluation::Review;
use cuvette_domain::value::NoValue;

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

/// A calculation, the results it is calculated from as typed, and its report.
type Walk = (&'static str, &'static [(&'static str, &'static str)], &'static str);

/// For every calculation in the bundled catalog: plausible adult values of the tests it is
/// calculated from (the catalog's worked examples), and the report they give. A man of 50
/// (`adult_man`) is the patient, as in CKD-EPI's worked example.
const PLAUSIBLE: &[Walk] = &[
    ("AGAP", &[("NA", "140"), ("CL", "104"), ("CO2", "24")], "12"),
    ("AGAPK", &[("NA", "140"), ("K", "4.0"), ("CL", "104"), ("CO2", "24")], "16"),
    ("EGFR", &[("CREAT", "1.00")], "92"),
    ("LDLF", &[("CHOL", "200"), ("HDL", "50"), ("TRIG", "150")], "120"),
    ("LDLS", &[("CHOL", "200"), ("HDL", "50"), ("TRIG", "150")], "123"),
    ("NONHDL", &[("CHOL", "200"), ("HDL", "50")], "150"),
    ("CHOLHDL", &[("CHOL", "200"), ("HDL", "50")], "4.0"),
    ("CACORR", &[("CA", "8.0"), ("ALB", "2.0")], "9.6"),
    ("GLOB", &[("TP", "7.0"), ("ALB", "4.0")], "3.0"),
    ("AGRATIO", &[("ALB", "4.0"), ("TP", "7.0")], "1.3"),
    ("BUNCR", &[("BUN", "20"), ("CREAT", "1.00")], "20"),
    ("MCV_CALC", &[("HCT", "42.0"), ("RBC", "4.50")], "93.3"),
    ("MCH_CALC", &[("HGB", "14.0"), ("RBC", "4.50")], "31.1"),
    ("MCHC_CALC", &[("HGB", "14.0"), ("HCT", "42.0")], "33.3"),
    ("ANC", &[("WBC", "5.0"), ("NEUT_SEG_PCT", "60"), ("NEUT_BAND_PCT", "5")], "3.25"),
    ("OSMCALC", &[("NA", "140"), ("GLU", "90"), ("BUN", "14")], "290"),
    ("OSMGAP", &[("OSMO", "300"), ("NA", "140"), ("GLU", "90"), ("BUN", "14")], "10"),
    ("INR_CALC", &[("PT", "24.0")], "2.0"),
    ("TSAT", &[("FE", "100"), ("TIBC", "300")], "33"),
];

/// The stored result of the patient's `code` is the comment `expected`, with no number in it.
async fn shows_the_comment(lab: &TestLab, patient: &PatientRow, code: &str, expected: &str) {
    let result =
        lab.test(patient, code).await.result.unwrap_or_else(|| panic!("{code}: no result"));
    assert_eq!(result.report_text, expected, "{code}");
    let value = ReportedValue::parse(&result.value_text).expect("a stored value reads back");
    assert_eq!(value.no_value(), Some(NoValue::NotCalculated), "{code}: {}", result.value_text);
    assert_eq!(value.number, None, "{code}: {}", result.value_text);
}

#[tokio::test]
async fn every_calculation_in_the_catalog_is_ordered_on_its_own_and_reported() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technologist = lab.technologist().await;
    let catalog = lab.catalog();
    let calculations: Vec<&str> =
        catalog.catalog.tests().filter(|t| t.is_calculated()).map(|t| t.code.as_str()).collect();
    let walked: Vec<&str> = PLAUSIBLE.iter().map(|(code, _, _)| *code).collect();
    assert_eq!(
        calculations.iter().copied().collect::<std::collections::BTreeSet<_>>(),
        walked.iter().copied().collect(),
        "every calculation in the catalog is walked, and only those"
    );

    for (code, inputs, expected) in PLAUSIBLE {
        let placed = lab.received(&patient, &[code]).await;
        let ordered: Vec<&str> =
            placed.specimens.iter().flat_map(|s| s.tests.iter().map(String::as_str)).collect();
        let mut wanted: Vec<&str> = inputs.iter().map(|(input, _)| *input).collect();
        wanted.push(code);
        if *code == "OSMGAP" {
            wanted.push("OSMCALC"); // the osmolal gap is calculated from the calculated osmolality
        }
        assert_eq!(
            ordered.iter().copied().collect::<std::collections::BTreeSet<_>>(),
            wanted.iter().copied().collect(),
            "ordering {code} orders the tests it is calculated from, and nothing else"
        );
        for input in &wanted {
            let on_order = lab.test(&patient, input).await;
            assert_eq!(
                on_order.test.panel_code.as_deref(),
                Some(*code),
                "{input} says it is for {code}"
            );
        }

        lab.enter_all(&technologist, &patient, inputs).await.unwrap();
        assert_eq!(reported(&lab, &patient, code).await, *expected, "{code}");
    }
}

#[tokio::test]
async fn every_calculation_shows_why_not_for_a_censored_or_out_of_range_input() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technologist = lab.technologist().await;
    let catalog = lab.catalog();
    for (code, inputs, expected) in PLAUSIBLE {
        lab.received(&patient, &[code]).await;
        lab.enter_all(&technologist, &patient, inputs).await.unwrap();
        for (input, plausible) in *inputs {
            let test = catalog.catalog.test(input).unwrap();
            // Censored as typed: below the range, or above it.
            let censored = format!("<{plausible}");
            lab.enter(&technologist, &patient, input, &censored).await.unwrap();
            let why =
                format!("Not calculated: {} below the measurement range ({censored})", test.name);
            shows_the_comment(&lab, &patient, code, &why).await;
            lab.enter(&technologist, &patient, input, &format!(">{plausible}")).await.unwrap();
            let why =
                format!("Not calculated: {} above the measurement range (>{plausible})", test.name);
            shows_the_comment(&lab, &patient, code, &why).await;

            // A plain number beyond the measurement range.
            let high = test.amr_high.unwrap_or_else(|| panic!("{input} has no measurement range"));
            let beyond = (high * rust_decimal::Decimal::from(2)).to_string();
            lab.enter(&technologist, &patient, input, &beyond).await.unwrap();
            let why =
                format!("Not calculated: {} above the measurement range (>{high})", test.name);
            shows_the_comment(&lab, &patient, code, &why).await;

            // Back in range, the number is reported again.
            lab.enter(&technologist, &patient, input, plausible).await.unwrap();
            assert_eq!(reported(&lab, &patient, code).await, *expected, "{code} after {input}");
        }
    }
}

#[tokio::test]
async fn an_inr_is_calculated_from_the_pt_with_the_labs_isi_and_mean_normal_pt() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technologist = lab.technologist().await;
    let supervisor = lab.supervisor().await;

    // A new thromboplastin lot: ISI 1.2 from its certificate, mean normal PT 12.0 s.
    let catalog = lab.catalog();
    let mut inr = catalog.catalog.test("INR_CALC").unwrap().clone();
    let rule = inr.calculation.as_mut().unwrap();
    rule.coefficients.insert("ISI".into(), 1.2);
    rule.coefficients.insert("MNPT".into(), 12.0);
    let version =
        lab.save_definition(&supervisor, inr, catalog.versions["INR_CALC"], REASON).await.unwrap();

    let placed = lab.received(&patient, &["PTINR"]).await;
    assert_eq!(placed.specimens.len(), 1, "the INR rides on the PT's tube");
    assert_eq!(placed.specimens[0].tests, ["PT", "INR_CALC"]);
    lab.enter(&technologist, &patient, "PT", "18.0").await.unwrap();
    // (18.0 / 12.0) ** 1.2 = 1.6267
    let result = lab.test(&patient, "INR_CALC").await.result.unwrap();
    assert_eq!((result.report_text.as_str(), result.flags.codes().as_str()), ("1.6", "H"));
    assert_eq!(result.definition_version, version, "the INR remembers the lot's settings");
}

#[tokio::test]
async fn an_absolute_neutrophil_count_below_half_a_thousand_is_critical() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["MANDIFF"]).await;
    lab.enter_all(
        &technologist,
        &patient,
        &[("WBC", "1.2"), ("NEUT_SEG_PCT", "30"), ("NEUT_BAND_PCT", "0")],
    )
    .await
    .unwrap();
    let anc = lab.test(&patient, "ANC").await.result.unwrap();
    assert_eq!((anc.report_text.as_str(), anc.flags.codes().as_str()), ("0.36", "LL L"));
}
