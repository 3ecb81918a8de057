//! A patient's walk from registration to a released, called critical result, each row read
//! back as it was written.

use cuvette_domain::workflow::{
    Priority, RejectionReason, ReleaseStatus, SpecimenCondition, SpecimenStatus, TestStatus,
};
use cuvette_domain::{Flags, Review, Role};
use cuvette_store::{
    CriticalCallRow, CriticalRow, NewCriticalCall, NewOrder, NewOrderedTest, NewPatient, NewResult,
    NewSpecimen, OrderRow, OrderedTestRow, PatientRow, ResultRow, SpecimenRow, WorklistFilter,
};

use crate::{AT, Db, at, same};

/// Registers a patient and orders one STAT potassium on one tube; returns (patient, order,
/// specimen, test) ids.
pub async fn potassium_ordered(db: &Db) -> (i64, i64, i64, i64) {
    let mut tx = db.store.begin().await.unwrap();
    let patient = tx
        .insert_patient(
            &NewPatient {
                mrn: "MRN-1001",
                family_name: "Łukasiewicz",
                given_name: "Zoë",
                birth_date: "1961-07-30",
                sex: "F",
            },
            "clerk",
            AT,
        )
        .await
        .unwrap();
    let order = tx
        .insert_order(
            &NewOrder {
                patient_id: patient,
                provider: "Dr. Okafor",
                priority: Priority::Stat,
                clinical_note: "on furosemide",
                placer_number: Some("EHR-77"),
            },
            "clerk",
            AT,
        )
        .await
        .unwrap();
    let specimen = tx
        .insert_specimen(
            order,
            &NewSpecimen {
                accession: "26-0000001-8",
                container: "SST",
                specimen_type: "serum",
                recollection_of: None,
                placer_specimen_id: None,
                collected: None,
            },
        )
        .await
        .unwrap();
    let test = tx
        .insert_ordered_test(
            order,
            specimen,
            &NewOrderedTest { test_code: "K", panel_code: Some("BMP"), discipline: "chemistry" },
            TestStatus::Ordered,
            AT,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (patient, order, specimen, test)
}

#[tokio::test]
async fn a_patient_order_specimen_and_test_read_back_as_written() {
    let db = Db::new().await;
    let (patient, order, specimen, test) = potassium_ordered(&db).await;

    let written = PatientRow {
        id: patient,
        mrn: "MRN-1001".into(),
        family_name: "Łukasiewicz".into(),
        given_name: "Zoë".into(),
        birth_date: "1961-07-30".into(),
        sex: "F".into(),
    };
    same(&db.store.patient(patient).await.unwrap(), &written);
    same(&db.store.patient_by_mrn("MRN-1001").await.unwrap().unwrap(), &written);
    same(&db.store.patient_of_specimen(specimen).await.unwrap(), &written);
    same(
        &db.store.order(order).await.unwrap(),
        &OrderRow {
            id: order,
            patient_id: patient,
            provider: "Dr. Okafor".into(),
            priority: Priority::Stat,
            clinical_note: "on furosemide".into(),
            placer_number: Some("EHR-77".into()),
            ordered_at: AT,
            ordered_by: "clerk".into(),
        },
    );
    let pending = SpecimenRow {
        id: specimen,
        accession: "26-0000001-8".into(),
        order_id: order,
        container: "SST".into(),
        specimen_type: "serum".into(),
        status: SpecimenStatus::Pending,
        collected_at: None,
        collected_by: None,
        received_at: None,
        received_by: None,
        rejected_at: None,
        rejected_by: None,
        reject_reason: None,
        reject_note: None,
        recollection_of: None,
        row_version: 1,
        hemolysis_index: None,
        icterus_index: None,
        lipemia_index: None,
        conditions: vec![],
    };
    same(&db.store.specimen(specimen).await.unwrap(), &pending);
    same(
        &db.store.ordered_test(test).await.unwrap(),
        &OrderedTestRow {
            id: test,
            order_id: order,
            specimen_id: specimen,
            test_code: "K".into(),
            panel_code: Some("BMP".into()),
            discipline: "chemistry".into(),
            status: TestStatus::Ordered,
            row_version: 1,
            updated_at: AT,
        },
    );
}

#[tokio::test]
async fn a_rejected_specimen_keeps_who_when_why_its_indices_and_conditions() {
    let db = Db::new().await;
    let (_, order, specimen, _) = potassium_ordered(&db).await;
    let before = db.store.specimen(specimen).await.unwrap();
    let rejected = SpecimenRow {
        status: SpecimenStatus::Rejected,
        collected_at: Some(at(1)),
        collected_by: Some("phlebotomist".into()),
        received_at: Some(at(2)),
        received_by: Some("assistant".into()),
        rejected_at: Some(at(3)),
        rejected_by: Some("technologist".into()),
        reject_reason: Some(RejectionReason::Hemolyzed),
        reject_note: Some("pink serum".into()),
        ..before
    };
    let mut tx = db.store.begin().await.unwrap();
    tx.update_specimen(&rejected).await.unwrap();
    tx.set_specimen_indices(specimen, Some(310), Some(2), None).await.unwrap();
    tx.set_specimen_conditions(
        specimen,
        &[SpecimenCondition::Hemolyzed, SpecimenCondition::Lipemic],
    )
    .await
    .unwrap();
    let recollection = tx
        .insert_specimen(
            order,
            &NewSpecimen {
                accession: "26-0000002-6",
                container: "SST",
                specimen_type: "serum",
                recollection_of: Some(specimen),
                placer_specimen_id: None,
                collected: None,
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let read = db.store.specimen_by_accession("26-0000001-8").await.unwrap().unwrap();
    same(
        &read,
        &SpecimenRow {
            row_version: 2,
            hemolysis_index: Some(310),
            icterus_index: Some(2),
            lipemia_index: None,
            conditions: vec![SpecimenCondition::Hemolyzed, SpecimenCondition::Lipemic],
            ..rejected
        },
    );
    let both = db.store.specimens_of_order(order).await.unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(db.store.specimen(recollection).await.unwrap().recollection_of, Some(specimen));
}

#[tokio::test]
async fn a_result_version_keeps_its_flags_reasons_release_and_what_the_instrument_sent() {
    let db = Db::new().await;
    let (patient, _, specimen, test) = potassium_ordered(&db).await;
    let flags = Flags::parse("HH").unwrap();
    let reasons = vec!["critical high: call the ward".to_owned(), "delta 2.1 mmol/L".to_owned()];
    let instrument_flags = vec!["H".to_owned(), "HEM".to_owned()];
    let mut tx = db.store.begin().await.unwrap();
    tx.insert_results(
        &[NewResult {
            ordered_test_id: test,
            version: 1,
            value_text: "7.1",
            value_number: Some(7.1),
            report_text: "7.1",
            unit: "mmol/L",
            flags: &flags,
            reference_interval: "3.5–5.1",
            review: Review::Technologist,
            reasons: &reasons,
            definition_version: 3,
            entered_by: "instrument:CHEM1",
            entered_by_role: Role::Technician,
            correction_reason: None,
            instrument_flags: &instrument_flags,
            instrument_id: None,
            autoverify: Some(r#"{"decision":"hold"}"#),
            released_by: None,
            release_status: None,
            sent_value: Some("27.8"),
            sent_unit: Some("mg/dL"),
            reported_as: Some(ReleaseStatus::Preliminary),
        }],
        AT,
    )
    .await
    .unwrap();
    tx.update_test_status(test, 1, TestStatus::InProcess, true, AT).await.unwrap();
    tx.commit().await.unwrap();

    let [stored] = db.store.results_of_tests(&[test]).await.unwrap().try_into().unwrap();
    let unreleased = ResultRow {
        id: stored.id,
        ordered_test_id: test,
        version: 1,
        value_text: "7.1".into(),
        report_text: "7.1".into(),
        unit: "mmol/L".into(),
        flags: flags.clone(),
        reference_interval: "3.5–5.1".into(),
        review: Review::Technologist,
        reasons: reasons.clone(),
        definition_version: 3,
        entered_at: AT,
        entered_by: "instrument:CHEM1".into(),
        entered_by_role: Role::Technician,
        correction_reason: None,
        released_at: None,
        released_by: None,
        release_status: None,
        instrument_flags,
        instrument_id: None,
        autoverify: Some(r#"{"decision":"hold"}"#.into()),
        sent_value: Some("27.8".into()),
        sent_unit: Some("mg/dL".into()),
        reported_as: Some(ReleaseStatus::Preliminary),
    };
    same(&stored, &unreleased);

    // The worklist joins the same mappings under prefixed column names.
    let items = db
        .store
        .work_items(&WorklistFilter {
            specimen_id: Some(specimen),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let [item] = items.try_into().unwrap();
    same(&item.result.unwrap(), &unreleased);
    same(&item.patient, &db.store.patient(patient).await.unwrap());
    same(&item.specimen, &db.store.specimen(specimen).await.unwrap());
    same(&item.test, &db.store.ordered_test(test).await.unwrap());
    assert_eq!(item.test.status, TestStatus::InProcess);

    let mut tx = db.store.begin().await.unwrap();
    assert!(
        tx.release_result(stored.id, "technologist", ReleaseStatus::Final, at(60)).await.unwrap()
    );
    let call = tx
        .insert_critical_call(
            &NewCriticalCall {
                ordered_test_id: test,
                result_version: 1,
                called_person: "RN Adeyemi, ward 4",
                called_by: "technologist",
                called_at: at(30),
                read_back: true,
                notes: "ext 4471",
            },
            at(45),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    same(
        &db.store.results_of_tests(&[test]).await.unwrap()[0],
        &ResultRow {
            released_at: Some(at(60)),
            released_by: Some("technologist".into()),
            release_status: Some(ReleaseStatus::Final),
            ..unreleased
        },
    );
    same(
        &db.store.critical_calls(&[test]).await.unwrap()[..],
        &[CriticalCallRow {
            id: call,
            ordered_test_id: test,
            result_version: 1,
            called_person: "RN Adeyemi, ward 4".into(),
            called_by: "technologist".into(),
            called_at: at(30),
            read_back: true,
            notes: "ext 4471".into(),
            documented_at: at(45),
        }][..],
    );
    // The critical-call list joins the result, its patient and the call that closed the loop.
    same(
        &db.store.critical_results(AT, at(1_000), false).await.unwrap(),
        &vec![CriticalRow {
            ordered_test_id: test,
            version: 1,
            test_code: "K".into(),
            accession: "26-0000001-8".into(),
            patient_id: patient,
            patient_name: "ŁUKASIEWICZ, Zoë".into(),
            mrn: "MRN-1001".into(),
            birth_date: "1961-07-30".into(),
            sex: "F".into(),
            report_text: "7.1".into(),
            flags,
            entered_at: AT,
            called_at: Some(at(30)),
            called_person: Some("RN Adeyemi, ward 4".into()),
            called_by: Some("technologist".into()),
            attempts: 0,
            escalated_at: None,
        }],
    );
    assert!(db.store.critical_results(AT, at(1_000), true).await.unwrap().is_empty(), "called");
}
