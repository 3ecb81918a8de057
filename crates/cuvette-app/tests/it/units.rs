//! Units: an instrument that reports in another unit than the catalog's has its results
//! converted before they are judged, with the value and unit as sent kept beside them; a
//! mapping Cuvette cannot convert is refused, and a message in another unit than its mapping
//! is quarantined. No number is ever stored under a unit it did not arrive in.

use cuvette_app::interop::{self, Ingested};
use cuvette_app::records::{AuditFilter, ResultRow};

use crate::qc::glucose_qc;
use crate::support::*;

/// The stored value, unit, flags and what was sent of a result.
fn stored(r: &ResultRow) -> (&str, &str, Vec<&str>, Option<&str>, Option<&str>) {
    (
        r.value_text.as_str(),
        r.unit.as_str(),
        r.flags.iter().map(|f| f.code()).collect(),
        r.sent_value.as_deref(),
        r.sent_unit.as_deref(),
    )
}

/// A chemistry analyzer sending HL7 in SI units as "CHEM-SI", glucose mapped in mmol/L.
async fn si_chemistry(lab: &TestLab) -> i64 {
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "Chem-1", "hl7", "CHEM-SI").await.unwrap();
    lab.map_test_code(&supervisor, id, "2345-7", "GLU", "mmol/L").await.unwrap();
    id
}

/// An IHE LAW-style result message: OBX-3 LOINC with the analyzer's code, OBX-6 as UCUM.
fn oul(control_id: &str, accession: &str, obx: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut m = format!(
        "MSH|^~\\&|CHEM-SI|LAB|CUVETTE|LAB|20261124081500+0100||ORU^R01^ORU_R01|{control_id}|P|2.5.1|||AL|NE||UNICODE UTF-8\r\
         PID|1\r\
         OBR|1||{accession}|2345-7^Glucose [Mass/volume] in Serum or Plasma^LN\r"
    );
    for (i, (code, value, unit)) in obx.iter().enumerate() {
        m.push_str(&format!(
            "OBX|{}|NM|{code}^Glucose^LN^767^GLUC3^99ROC||{value}|{unit}^{unit}^UCUM|3.9-5.5|N|||F|||||ADMIN||^^^c702^1|20261124081300\r",
            i + 1
        ));
    }
    m.into_bytes()
}

#[tokio::test]
async fn a_glucose_in_mmol_per_litre_is_stored_in_mg_per_decilitre_with_the_original_kept() {
    let lab = lab().await;
    si_chemistry(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["GLU"]).await.specimens[0].accession.clone();

    let (outcome, _) = interop::hl7::receive(
        &lab,
        &oul("LAW-0001", &accession, &[("2345-7", "5.2", "mmol/L")]),
        "test",
        "peer",
    )
    .await
    .unwrap();

    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
    let r = lab.test(&patient, "GLU").await.result.unwrap();
    // 5.2 mmol/L × 18.0156 = 93.68 mg/dL, reported with the catalog's 0 places: within
    // 70–99, not the critical low a raw 5.2 mg/dL would be.
    assert_eq!(stored(&r), ("94", "mg/dL", vec![], Some("5.2"), Some("mmol/L")));
    assert_eq!((r.report_text.as_str(), r.reference_interval.as_str()), ("94", "70–99"));
    let entry = lab
        .audit_trail(AuditFilter { patient_id: Some(patient.id), ..Default::default() })
        .await
        .into_iter()
        .find(|e| e.action.code() == "result.enter")
        .unwrap();
    let after: serde_json::Value = serde_json::from_str(entry.after.as_deref().unwrap()).unwrap();
    assert_eq!(
        (&after["value"], &after["sent_value"], &after["sent_unit"]),
        (&"94".into(), &"5.2".into(), &"mmol/L".into())
    );
}

#[tokio::test]
async fn a_censored_glucose_keeps_its_comparator_when_converted() {
    let lab = lab().await;
    si_chemistry(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["GLU"]).await.specimens[0].accession.clone();

    interop::hl7::receive(
        &lab,
        &oul("LAW-0002", &accession, &[("2345-7", "<0.1", "mmol/L")]),
        "test",
        "peer",
    )
    .await
    .unwrap();

    // Below 0.1 mmol/L is below 1.8 mg/dL: reported "<2", surely below the critical 40.
    let r = lab.test(&patient, "GLU").await.result.unwrap();
    assert_eq!(stored(&r), ("<2", "mg/dL", vec!["LL", "L"], Some("<0.1"), Some("mmol/L")));
}

#[tokio::test]
async fn a_creatinine_in_micromoles_from_a_cobas_is_converted_and_flagged_high() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "cobas c 311", "astm", "H7600").await.unwrap();
    // The analyzer writes its units its own way; the map normalises them to UCUM.
    lab.map_test_code(&supervisor, id, "798/", "GLU", "mmol/l").await.unwrap();
    lab.map_test_code(&supervisor, id, "767/", "CREAT", "µmol/l").await.unwrap();
    let codes = &lab.instruments(&supervisor).await.unwrap()[0].1;
    let units: Vec<(&str, &str)> =
        codes.iter().map(|c| (c.instrument_code.as_str(), c.unit.as_str())).collect();
    assert_eq!(units, [("767/", "umol/L"), ("798/", "mmol/L")]);
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["GLU", "CREAT"]).await.specimens[0].accession.clone();

    // As the cobas c 311 uploads a patient sample: Latin-1 µ (byte 0xB5), a data-alarm
    // comment record after each result.
    let upload = |time: &str| {
        let mut message = format!(
            "H|\\^&|||H7600^1|||||host|RSUPL^BATCH|P|1|{time}\r\
             P|1|||||||U||||||^\r\
             O|1|{accession:<20}|4031^30012^012^^S1^SC|^^^798^\\^^^767^|||||||N||||1|||||||20261124081312|||F\r\
             C|1|I|^^^^|G\r\
             R|1|^^^798/|4.60|mmol/l||N||||ADMIN |||P1\r\
             C|1|I|0|I\r\
             R|2|^^^767/|412|"
        )
        .into_bytes();
        message.extend_from_slice(b"\xB5mol/l||H||||ADMIN |||P1\rC|1|I|0|I\rL|1|N\r");
        message
    };
    // Until the lab says the analyzer writes Latin-1, that byte is refused, not guessed.
    let outcome =
        interop::astm::receive(&lab, &upload("20261124081400"), "astm:5100", "peer").await.unwrap();
    let Ingested::Quarantined { location, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(location, "R(2)-5");
    lab.set_instrument_charset(&supervisor, id, "windows-1252").await.unwrap();
    let outcome =
        interop::astm::receive(&lab, &upload("20261124081500"), "astm:5100", "peer").await.unwrap();

    assert!(matches!(outcome, Ingested::Accepted { results: 2, .. }), "{outcome:?}");
    // 412 µmol/L × 0.011312 = 4.6605 mg/dL, two places; above the woman's 0.59–1.04.
    let creatinine = lab.test(&patient, "CREAT").await.result.unwrap();
    assert_eq!(stored(&creatinine), ("4.66", "mg/dL", vec!["H"], Some("412"), Some("umol/L")));
    assert_eq!(creatinine.reference_interval, "0.59–1.04");
    // 4.60 mmol/L × 18.0156 = 82.87 mg/dL.
    let glucose = lab.test(&patient, "GLU").await.result.unwrap();
    assert_eq!(stored(&glucose), ("83", "mg/dL", vec![], Some("4.60"), Some("mmol/L")));
}

#[tokio::test]
async fn a_code_cannot_be_mapped_in_a_unit_cuvette_cannot_convert() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "Chem-1", "hl7", "CHEM-SI").await.unwrap();

    let glucose =
        invalid(lab.map_test_code(&supervisor, id, "2345-7", "GLU", "mEq/L").await, "unit");
    assert_eq!(
        glucose,
        "Glucose is reported in mg/dL and Cuvette cannot convert meq/L to it: map the code with mg/dL (set the instrument to send it) or with a unit Cuvette converts for GLU: g/L, g/dL, mg/mL, mg/L, ug/dL, ug/mL, mmol/L, umol/L"
    );
    let potassium =
        invalid(lab.map_test_code(&supervisor, id, "2823-3", "K", "mg/dL").await, "unit");
    assert!(
        potassium.contains("cannot convert mg/dL") && potassium.contains("meq/L"),
        "{potassium}"
    );
    let dipstick =
        invalid(lab.map_test_code(&supervisor, id, "UGLU", "UGLU", "mmol/L").await, "unit");
    assert!(dipstick.contains("coded values in mg/dL"), "{dipstick}");
    let a1c =
        invalid(lab.map_test_code(&supervisor, id, "4548-4", "HBA1C", "mmol/mol").await, "unit");
    assert!(a1c.contains("cannot convert mmol/mol"), "{a1c}");

    let instruments = lab.instruments(&supervisor).await.unwrap();
    assert!(instruments[0].1.is_empty(), "nothing mapped: {:?}", instruments[0].1);
    let mapped = lab
        .audit_trail(AuditFilter::default())
        .await
        .into_iter()
        .filter(|e| e.action.code() == "instrument.map_code")
        .count();
    assert_eq!(mapped, 0, "nothing audited as mapped");
}

#[tokio::test]
async fn a_message_in_another_unit_than_its_mapping_is_quarantined_with_the_reason() {
    let lab = lab().await;
    si_chemistry(&lab).await;
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["GLU"]).await.specimens[0].accession.clone();

    // The analyzer was switched to conventional units; its mapping still says mmol/L.
    let (outcome, _) = interop::hl7::receive(
        &lab,
        &oul("LAW-0003", &accession, &[("2345-7", "94", "mg/dL")]),
        "test",
        "peer",
    )
    .await
    .unwrap();

    let Ingested::Quarantined { reason, location, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(
        (reason.as_str(), location.as_str()),
        (
            "GLU arrived in mg/dL but Chem-1 is mapped to send mmol/L: correct the instrument's unit or its mapping under Interfaces",
            "OBX 1"
        )
    );
    assert!(lab.test(&patient, "GLU").await.result.is_none(), "nothing stored");
}

#[tokio::test]
async fn a_spelling_of_the_mapped_unit_is_the_same_unit() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "Chem-2", "hl7", "CHEM-SI").await.unwrap();
    lab.map_test_code(&supervisor, id, "2345-7", "GLU", "mg/dl").await.unwrap();
    assert_eq!(lab.instruments(&supervisor).await.unwrap()[0].1[0].unit, "mg/dL");
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["GLU"]).await.specimens[0].accession.clone();

    let (outcome, _) = interop::hl7::receive(
        &lab,
        &oul("LAW-0004", &accession, &[("2345-7", "94", "MG/DL")]),
        "test",
        "peer",
    )
    .await
    .unwrap();

    assert!(matches!(outcome, Ingested::Accepted { results: 1, .. }), "{outcome:?}");
    let r = lab.test(&patient, "GLU").await.result.unwrap();
    assert_eq!(stored(&r), ("94", "mg/dL", vec![], None, None), "nothing converted");
}

#[tokio::test]
async fn a_mapping_saved_before_conversions_were_required_quarantines_rather_than_stores() {
    let lab = lab().await;
    let id = si_chemistry(&lab).await;
    // An older database kept any unit with a code: glucose "in mEq/L".
    lab.raw_sql(&format!(
        "UPDATE instrument_test_code SET unit = 'meq/L' WHERE instrument_id = {id} AND instrument_code = '2345-7'"
    ))
    .await
    .unwrap();
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["GLU"]).await.specimens[0].accession.clone();

    for unit in ["mEq/L", ""] {
        let (outcome, _) = interop::hl7::receive(
            &lab,
            &oul(&format!("LAW-0005{unit}"), &accession, &[("2345-7", "5.2", unit)]),
            "test",
            "peer",
        )
        .await
        .unwrap();
        let Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
        assert_eq!(
            reason,
            "GLU is mapped on Chem-1 to arrive in meq/L, which Cuvette cannot convert to the catalog's mg/dL: map the code again under Interfaces"
        );
    }
    assert!(lab.test(&patient, "GLU").await.result.is_none(), "nothing stored");
}

/// A Mindray BC-5390 CBC (HL7 2.3.1, LOINC in OBX-3, SI units, HCT as a fraction without a
/// unit) for `accession`, with haemoglobin in `hgb_unit`.
fn mindray_cbc(control_id: &str, accession: &str, hgb: &str, hgb_unit: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|BC-5390|Mindray|||20261124081012||ORU^R01|{control_id}|P|2.3.1||||||UNICODE\r\
         PID|1||F2002^^^^MR||Lindqvist^Sam||19700301000000|Female\r\
         PV1|1||WARD3^^012\r\
         OBR|1||{accession}|00001^Automated Count^99MRC||20261124080000|20261124080955|||||||20261124080100||||||||||HM||||||||Mindray\r\
         OBX|1|NM|6690-2^WBC^LN||6.21|10*9/L|4.00-10.00|N|||F\r\
         OBX|2|NM|789-8^RBC^LN||4.53|10*12/L|3.50-5.00|N|||F\r\
         OBX|3|NM|718-7^HGB^LN||{hgb}|{hgb_unit}|110-150|N|||F\r\
         OBX|4|NM|4544-3^HCT^LN||0.405||0.370-0.480|N|||F\r\
         OBX|5|NM|777-3^PLT^LN||212|10*9/L|100-300|N|||F\r"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_haematology_analyzer_in_si_units_is_converted_and_a_changed_unit_is_quarantined() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let id = lab.add_instrument(&supervisor, "Hematology 1", "hl7", "BC-5390").await.unwrap();
    for (code, test, unit) in [
        ("6690-2", "WBC", "10^9/L"),
        ("789-8", "RBC", "10^12/L"),
        ("718-7", "HGB", "g/L"),
        ("4544-3", "HCT", "L/L"),
        ("777-3", "PLT", "10^9/L"),
    ] {
        lab.map_test_code(&supervisor, id, code, test, unit).await.unwrap();
    }
    let patient = lab.adult_woman().await;
    let accession = lab.received(&patient, &["WBC", "RBC", "HGB", "HCT", "PLT"]).await.specimens[0]
        .accession
        .clone();

    // The analyzer was reconfigured to send haemoglobin in g/dL: not converted silently.
    let (outcome, _) = interop::hl7::receive(
        &lab,
        &mindray_cbc("1024", &accession, "13.8", "g/dL"),
        "test",
        "peer",
    )
    .await
    .unwrap();
    let Ingested::Quarantined { reason, location, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(
        (reason.as_str(), location.as_str()),
        (
            "HGB arrived in g/dL but Hematology 1 is mapped to send g/L: correct the instrument's unit or its mapping under Interfaces",
            "OBX 3"
        )
    );
    assert!(lab.test(&patient, "WBC").await.result.is_none(), "the whole CBC is held");

    // Set back to g/L, the analyzer sends the CBC again.
    let (outcome, _) =
        interop::hl7::receive(&lab, &mindray_cbc("1025", &accession, "138", "g/L"), "test", "peer")
            .await
            .unwrap();
    assert!(matches!(outcome, Ingested::Accepted { results: 5, .. }), "{outcome:?}");
    let mut got = Vec::new();
    for code in ["WBC", "RBC", "HGB", "HCT", "PLT"] {
        let r = lab.test(&patient, code).await.result.unwrap();
        got.push((
            code,
            r.value_text,
            r.unit,
            r.flags.codes(),
            r.sent_value.unwrap_or_default(),
            r.sent_unit.unwrap_or_default(),
        ));
    }
    let expected = [
        ("WBC", "6.2", "10*3/uL", "", "6.21", "10*9/L"),
        ("RBC", "4.53", "10*6/uL", "", "4.53", "10*12/L"),
        ("HGB", "13.8", "g/dL", "", "138", "g/L"),
        ("HCT", "40.5", "%", "", "0.405", "L/L"),
        ("PLT", "212", "10*3/uL", "", "212", "10*9/L"),
    ];
    let got: Vec<_> = got
        .iter()
        .map(|(c, v, u, f, sv, su)| {
            (*c, v.as_str(), u.as_str(), f.as_str(), sv.as_str(), su.as_str())
        })
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_control_in_mmol_per_litre_is_judged_against_its_mg_per_decilitre_target() {
    let lab = lab().await;
    // Level 1 targets 100 ± 2 mg/dL, level 2 300 ± 6 mg/dL.
    let (instrument, _, _) = glucose_qc(&lab).await;
    let supervisor = lab.supervisor().await;
    lab.map_test_code(&supervisor, instrument, "2345-7", "GLU", "mmol/L").await.unwrap();
    lab.set_qc_pattern(&supervisor, instrument, "QC-CHEM-*").await.unwrap();

    // 5.55 mmol/L is 99.99 mg/dL and 16.65 mmol/L 299.96 mg/dL: both on target. Taken as
    // mg/dL they would be 47 SD low.
    let message = "MSH|^~\\&|CHEMANALYZER|LAB|CUVETTE|LAB|20261124070000||ORU^R01^ORU_R01|QC-SI-1|P|2.5.1\r\
         OBR|1||QC-CHEM-L1-4471|GLU\rOBX|1|NM|2345-7^^LN||5.55|mmol/L|||||F\r\
         OBR|2||QC-CHEM-L2-4471|GLU\rOBX|1|NM|2345-7^^LN||16.65|mmol/L|||||F\r";
    let (outcome, _) =
        interop::hl7::receive(&lab, message.as_bytes(), "test", "peer").await.unwrap();

    assert!(matches!(outcome, Ingested::Accepted { results: 2, .. }), "{outcome:?}");
    let runs = lab.store().qc_runs(instrument, "GLU", 5).await.unwrap();
    assert_eq!(runs[0].status.code(), "accepted");

    // A control in mg/dL on the mmol/L mapping is quarantined like a patient's result.
    let message = "MSH|^~\\&|CHEMANALYZER|LAB|CUVETTE|LAB|20261124071000||ORU^R01^ORU_R01|QC-SI-2|P|2.5.1\r\
         OBR|1||QC-CHEM-L1-4471|GLU\rOBX|1|NM|2345-7^^LN||100|mg/dL|||||F\r";
    let (outcome, _) =
        interop::hl7::receive(&lab, message.as_bytes(), "test", "peer").await.unwrap();
    let Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
    assert!(reason.starts_with("GLU arrived in mg/dL but Chemistry 1 is mapped to send mmol/L"));
}
