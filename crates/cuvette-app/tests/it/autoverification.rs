//! Autoverification: instrument results that pass every rule of an approved rule set leave
//! the lab on their own, with the decision and its trace stored; everything else waits for a
//! technologist, with the reason in numbers.

use cuvette_app::autoverify::SERUM_INDEX_CODES;
use cuvette_app::interop::{self, Ingested};
use cuvette_app::qc::MaterialForm;
use cuvette_app::records::PatientRow;
use cuvette_domain::autoverify::{AutoverifyRules, AvRule, Decision, Verdict};

use crate::support::*;

/// A potassium analyzer with QC run and acceptable: instrument id.
async fn potassium_analyzer(lab: &TestLab) -> i64 {
    let supervisor = lab.supervisor().await;
    let instrument =
        lab.add_instrument(&supervisor, "Chemistry 1", "hl7", "CHEMANALYZER").await.unwrap();
    lab.map_test_code(&supervisor, instrument, "2823-3", "K", "mmol/L").await.unwrap();
    lab.map_test_code(&supervisor, instrument, "HIDX", SERUM_INDEX_CODES[0].0, "").await.unwrap();
    let material = lab
        .add_material(
            &supervisor,
            &MaterialForm {
                product: "Assayed Chemistry Control".into(),
                manufacturer: "Example Diagnostics".into(),
                lot: "4471".into(),
                level: "1".into(),
                expires_on: "2027-06-30".into(),
                sample_id: "QC-CHEM-L1-4471".into(),
            },
        )
        .await
        .unwrap();
    let target =
        lab.set_target(&supervisor, material, instrument, "K", "4.0", "0.1").await.unwrap();
    let tech = lab.technician().await;
    lab.record_qc(&tech, instrument, "K", &[(target, "4.02".into())]).await.unwrap();
    instrument
}

/// The director approves K's default rules with autoverification switched on (hemolysis
/// index limit 50).
async fn approve_potassium_rules(lab: &TestLab) -> AutoverifyRules {
    let director = lab.pathologist().await;
    let def = lab.catalog().catalog.test("K").unwrap().clone();
    let rules = AutoverifyRules {
        enabled: true,
        hemolysis_max: None,
        ..AutoverifyRules::default_for(&def)
    };
    lab.save_autoverify_rules(&director, "K", &rules).await.unwrap();
    rules
}

/// The analyzer sends potassium (and optionally a hemolysis index) for a new specimen of
/// `patient`.
async fn potassium(
    lab: &TestLab,
    patient: &PatientRow,
    value: &str,
    control: &str,
    hemolysis: Option<&str>,
) {
    let accession = lab.received(patient, &["K"]).await.specimens[0].accession.clone();
    let mut message = format!(
        "MSH|^~\\&|CHEMANALYZER|LAB|CUVETTE|LAB|20261124081500||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||{}||{}^{}\rOBR|1||{accession}|K\r\
         OBX|1|NM|2823-3^^LN||{value}|mmol/L|3.5-5.1||||F\r",
        patient.mrn, patient.family_name, patient.given_name
    );
    if let Some(h) = hemolysis {
        message.push_str(&format!("OBX|2|NM|HIDX^^L||{h}|||||F\r"));
    }
    let (outcome, _) =
        interop::hl7::receive(lab, message.as_bytes(), "test", "peer").await.unwrap();
    assert!(matches!(outcome, Ingested::Accepted { .. }), "{outcome:?}");
}

async fn decision(lab: &TestLab, patient: &PatientRow) -> (Decision, Option<String>) {
    let result = lab.test(patient, "K").await.result.expect("a result");
    let decision =
        serde_json::from_str(result.autoverify.as_deref().expect("a decision is stored"))
            .expect("the decision parses");
    (decision, result.released_by)
}

fn failed(d: &Decision) -> Vec<AvRule> {
    d.failed_rules()
}

#[tokio::test]
async fn a_normal_potassium_with_good_qc_is_released_automatically_with_its_trace() {
    let lab = lab().await;
    potassium_analyzer(&lab).await;
    approve_potassium_rules(&lab).await;
    let patient = lab.adult_woman().await;

    potassium(&lab, &patient, "4.1", "AV1", None).await;

    let (d, released_by) = decision(&lab, &patient).await;
    assert!(d.release, "{}", d.summary());
    assert_eq!(released_by.as_deref(), Some("autoverify"));
    assert!(d.fingerprint.starts_with("AV1-"));
    assert_eq!(d.outcome(AvRule::QcAcceptable).unwrap().verdict, Verdict::Passed);
    let item = lab.test(&patient, "K").await;
    assert_eq!(item.test.status.code(), "final");
}

#[tokio::test]
async fn a_normal_potassium_sent_under_another_patient_is_quarantined_not_autoverified() {
    let lab = lab().await;
    potassium_analyzer(&lab).await;
    approve_potassium_rules(&lab).await;
    let patient = lab.adult_woman().await;
    let other = lab.adult_man().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    let message = format!(
        "MSH|^~\\&|CHEMANALYZER|LAB|CUVETTE|LAB|20261124081500||ORU^R01^ORU_R01|AVWRONG|P|2.5.1\r\
         PID|1||{}||{}^{}\rOBR|1||{accession}|K\r\
         OBX|1|NM|2823-3^^LN||4.1|mmol/L|3.5-5.1||||F\r",
        other.mrn, other.family_name, other.given_name
    );
    let (outcome, _) =
        interop::hl7::receive(&lab, message.as_bytes(), "test", "peer").await.unwrap();
    let Ingested::Quarantined { reason, .. } = outcome else { panic!("{outcome:?}") };
    assert!(
        reason.contains(&format!("patient id {} is not MRN {}", other.mrn, patient.mrn)),
        "{reason}"
    );
    assert!(lab.test(&patient, "K").await.result.is_none(), "nothing stored, nothing released");
}

#[tokio::test]
async fn a_delta_failure_is_held_with_the_numbers() {
    let lab = lab().await;
    potassium_analyzer(&lab).await;
    approve_potassium_rules(&lab).await;
    let patient = lab.adult_woman().await;
    potassium(&lab, &patient, "4.0", "AV2a", None).await;
    lab.clock.advance(minutes(6 * 60));

    potassium(&lab, &patient, "5.1", "AV2b", None).await;

    let (d, released_by) = decision(&lab, &patient).await;
    assert!(!d.release);
    assert_eq!(released_by, None, "held for a technologist");
    assert_eq!(failed(&d), vec![AvRule::Delta]);
    assert_eq!(d.held_reasons(), "delta K +1.1 mmol/L in 6 h, limit 1.0");
    let queue = lab.review_queue(&lab.technologist().await).await.unwrap();
    assert!(queue.iter().any(|i| i.patient.id == patient.id), "it waits in the review queue");
}

#[tokio::test]
async fn a_hemolysed_specimen_is_held_when_the_rule_set_has_an_index_limit() {
    let lab = lab().await;
    potassium_analyzer(&lab).await;
    let mut rules = approve_potassium_rules(&lab).await;
    rules.hemolysis_max = Some(50);
    lab.save_autoverify_rules(&lab.pathologist().await, "K", &rules).await.unwrap();
    let patient = lab.adult_woman().await;

    potassium(&lab, &patient, "4.8", "AV3", Some("120")).await;

    let (d, _) = decision(&lab, &patient).await;
    assert_eq!(failed(&d), vec![AvRule::SerumIndices]);
    assert!(d.held_reasons().contains("120"), "{}", d.held_reasons());
    let specimen = lab.test(&patient, "K").await.specimen;
    assert_eq!(specimen.hemolysis_index, Some(120), "the index is kept on the specimen");
}

#[tokio::test]
async fn a_rejected_qc_run_holds_autoverification() {
    let lab = lab().await;
    let instrument = potassium_analyzer(&lab).await;
    approve_potassium_rules(&lab).await;
    let target = lab.store().targets(Some(instrument), Some("K")).await.unwrap()[0].id;
    lab.clock.advance(minutes(10));
    lab.record_qc(&lab.technician().await, instrument, "K", &[(target, "4.5".into())])
        .await
        .unwrap();
    let patient = lab.adult_woman().await;

    potassium(&lab, &patient, "4.1", "AV4", None).await;

    let (d, released_by) = decision(&lab, &patient).await;
    assert_eq!(failed(&d), vec![AvRule::QcAcceptable]);
    assert!(d.held_reasons().contains("QC rejected"), "{}", d.held_reasons());
    assert_eq!(released_by, None);
}

#[tokio::test]
async fn a_critical_value_is_never_released_automatically() {
    let lab = lab().await;
    potassium_analyzer(&lab).await;
    approve_potassium_rules(&lab).await;
    let patient = lab.adult_woman().await;

    potassium(&lab, &patient, "6.9", "AV5", None).await;

    let (d, released_by) = decision(&lab, &patient).await;
    assert!(failed(&d).contains(&AvRule::Critical), "{}", d.summary());
    assert_eq!(released_by, None);
    let pending = lab.pending_critical_calls(&lab.technologist().await).await.unwrap();
    assert_eq!(pending.len(), 1, "the call's clock is running");
}

#[tokio::test]
async fn without_an_enabled_rule_set_nothing_is_decided_and_everything_waits() {
    let lab = lab().await;
    potassium_analyzer(&lab).await;
    let patient = lab.adult_woman().await;

    potassium(&lab, &patient, "4.1", "AV6", None).await;

    let result = lab.test(&patient, "K").await.result.unwrap();
    assert_eq!((result.autoverify, result.released_by), (None, None));
}

#[tokio::test]
async fn suspending_autoverification_switches_every_rule_set_off_at_once() {
    let lab = lab().await;
    potassium_analyzer(&lab).await;
    approve_potassium_rules(&lab).await;
    let director = lab.pathologist().await;
    assert_eq!(lab.suspend_autoverification(&director).await.unwrap(), 1);
    let patient = lab.adult_woman().await;

    potassium(&lab, &patient, "4.1", "AV7", None).await;

    assert_eq!(lab.test(&patient, "K").await.result.unwrap().released_by, None);
    let view = lab.autoverify_rule_set(&director, "K").await.unwrap();
    assert!(view.stored && !view.rules.enabled);
}

#[tokio::test]
async fn only_the_director_or_supervisor_approves_rules() {
    let lab = lab().await;
    let def = lab.catalog().catalog.test("K").unwrap().clone();
    let rules = AutoverifyRules { enabled: true, ..AutoverifyRules::default_for(&def) };
    forbidden(lab.save_autoverify_rules(&lab.technologist().await, "K", &rules).await);
    forbidden(lab.suspend_autoverification(&lab.technician().await).await);
    lab.save_autoverify_rules(&lab.supervisor().await, "K", &rules).await.unwrap();
}

#[tokio::test]
async fn a_dry_run_reports_what_a_rule_set_would_have_released_and_held_over_history() {
    let lab = lab().await;
    potassium_analyzer(&lab).await;
    let patient = lab.adult_woman().await;
    let other = lab.adult_man().await;
    potassium(&lab, &patient, "4.0", "DR1", None).await; // normal
    lab.clock.advance(minutes(120));
    potassium(&lab, &patient, "5.6", "DR2", None).await; // H and delta +1.6
    potassium(&lab, &other, "4.4", "DR3", None).await; // normal
    lab.clock.advance(minutes(30));
    potassium(&lab, &other, "7.0", "DR4", None).await; // critical, delta

    let director = lab.pathologist().await;
    let def = lab.catalog().catalog.test("K").unwrap().clone();
    let rules = AutoverifyRules::default_for(&def);
    let now = lab.now_at();
    let run = lab
        .autoverify_dry_run(
            &director,
            "K",
            &rules,
            cuvette_domain::time::Timestamp::EPOCH,
            now + jiff::SignedDuration::from_micros(1),
        )
        .await
        .unwrap();

    assert_eq!(
        (run.report.evaluated, run.report.would_release, run.report.would_hold),
        (4, 2, 2),
        "{:?}",
        run.held_examples
    );
    assert_eq!(run.report.held_by_rule.get(&AvRule::Delta), Some(&2));
    assert_eq!(run.report.held_by_rule.get(&AvRule::Critical), Some(&1));
    assert_eq!(run.held_examples.len(), 2);
    // The dry run changed nothing.
    assert_eq!(lab.test(&patient, "K").await.result.unwrap().autoverify, None);
}

#[tokio::test]
async fn an_autoverified_result_goes_to_the_ehr_in_the_same_transaction() {
    let lab = lab_with(cuvette_app::LabConfig {
        ehr_destination: Some("10.1.2.3:2575".into()),
        ..cuvette_app::LabConfig::default()
    })
    .await;
    potassium_analyzer(&lab).await;
    approve_potassium_rules(&lab).await;
    let patient = lab.adult_woman().await;

    potassium(&lab, &patient, "4.1", "AV8", None).await;

    let outbox = lab.outbox(&lab.technologist().await).await.unwrap();
    assert_eq!(outbox.len(), 1, "one ORU^R01 for the specimen");
    let oru = String::from_utf8_lossy(&outbox[0].payload).into_owned();
    let obx = oru.split('\r').find(|s| s.starts_with("OBX|")).expect("an OBX");
    assert!(obx.contains("|4.1|"), "{obx}");
    assert_eq!(obx.split('|').nth(11), Some("F"), "sent as final: {obx}");
}

#[tokio::test]
async fn a_dry_run_judges_qc_as_it_stood_when_each_result_was_entered() {
    let lab = lab().await;
    let instrument = potassium_analyzer(&lab).await;
    let patient = lab.adult_woman().await;
    lab.clock.advance(minutes(10));
    potassium(&lab, &patient, "4.1", "DQ1", None).await; // QC acceptable then
    lab.clock.advance(minutes(60));
    let target = lab.store().targets(Some(instrument), Some("K")).await.unwrap()[0].id;
    lab.record_qc(&lab.technician().await, instrument, "K", &[(target, "4.5".into())])
        .await
        .unwrap();
    lab.clock.advance(minutes(10));
    let other = lab.adult_man().await;
    potassium(&lab, &other, "4.2", "DQ2", None).await; // during the lockout

    let def = lab.catalog().catalog.test("K").unwrap().clone();
    let rules = AutoverifyRules::default_for(&def);
    let now = lab.now_at();
    let run = lab
        .autoverify_dry_run(
            &lab.pathologist().await,
            "K",
            &rules,
            cuvette_domain::time::Timestamp::EPOCH,
            now + jiff::SignedDuration::from_micros(1),
        )
        .await
        .unwrap();

    assert_eq!(
        (run.report.would_release, run.report.would_hold),
        (1, 1),
        "{:?}",
        run.held_examples
    );
    assert_eq!(run.report.held_by_rule.get(&AvRule::QcAcceptable), Some(&1));
    assert!(run.held_examples[0].2.contains("QC rejected"), "{:?}", run.held_examples);
}

#[tokio::test]
async fn a_neonate_without_an_interval_is_held_even_where_results_outside_it_release() {
    // A lab that has not validated a newborn potassium interval removes the band; its rule
    // set releases results outside the interval, but none applies to a four-day-old at all.
    let lab = lab().await;
    potassium_analyzer(&lab).await;
    let supervisor = lab.supervisor().await;
    let mut k = lab.catalog().catalog.test("K").unwrap().clone();
    let version = lab.catalog().versions["K"];
    k.reference.retain(|r| r.age_min.as_deref() != Some("P0D"));
    lab.save_definition(&supervisor, k.clone(), version, REASON).await.unwrap();
    let rules = AutoverifyRules {
        enabled: true,
        hemolysis_max: None,
        hold_outside_reference: false,
        ..AutoverifyRules::default_for(&k)
    };
    lab.save_autoverify_rules(&lab.pathologist().await, "K", &rules).await.unwrap();
    let neonate = lab.register("N4K", "Okafor", "2026-11-20", "M").await;

    potassium(&lab, &neonate, "4.1", "AVNEO", None).await;

    let (d, released_by) = decision(&lab, &neonate).await;
    assert!(!d.release, "{}", d.summary());
    assert_eq!(failed(&d), vec![AvRule::ReferenceInterval]);
    assert_eq!(
        d.outcome(AvRule::ReferenceInterval).unwrap().detail,
        "No reference interval for this age: K is held for a technologist"
    );
    assert_eq!(released_by, None);
}
