//! Staff records, authorisations, competency assessments and the qualification settings:
//! each written and read back field by field, and each coded column damaged.

use cuvette_domain::Role;
use cuvette_domain::staff::{
    Accreditation, Assessment, Authorisation, Certification, Complexity, Credential, Education,
    EducationLevel, ElementEvidence, FieldOfStudy, Licence, Method, Outcome, QualificationPolicy,
    Scope, StaffRecord, TestSystem,
};
use cuvette_store::StoreError;
use jiff::civil::date;

use crate::{AT, Db, at, corrupt_column, same};

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

fn record() -> StaffRecord {
    StaffRecord {
        education: vec![Education {
            level: EducationLevel::Associate,
            field: FieldOfStudy::MedicalLaboratoryTechnology,
            institution: "Valley Community College".into(),
            accreditation: Some(Accreditation::Naacls),
            completed_on: date(2020, 5, 20),
        }],
        certifications: vec![Certification {
            credential: Credential::AscpMlt,
            number: "MLT-1".into(),
            issued_on: date(2020, 7, 1),
            expires_on: None,
        }],
        licences: vec![Licence {
            state: "CA".into(),
            number: "MLT 7".into(),
            expires_on: date(2027, 1, 31),
        }],
        hire_date: date(2021, 2, 1),
        experience_since: date(2020, 9, 1),
        disciplines: vec!["chemistry".into()],
    }
}

fn assessment() -> Assessment {
    let e = ElementEvidence {
        evidence: "observed".into(),
        assessor: "ts".into(),
        assessed_on: date(2026, 6, 10),
    };
    Assessment {
        system: TestSystem {
            scope: Scope::Test("K".into()),
            method: Method::Instrument("Chem-1".into()),
        },
        elements: [e.clone(), e.clone(), e.clone(), e.clone(), e.clone(), e],
        outcome: Outcome::Pass,
    }
}

/// A technician with a record (version 2), an authorisation and an assessment.
async fn technician(db: &Db) -> i64 {
    let mut tx = db.store.begin().await.unwrap();
    let id = tx.insert_user("tech.k", "K Tech", Role::Technician, PHC, AT).await.unwrap();
    tx.save_staff_record(id, &record(), 0, "ts", at(1)).await.unwrap();
    let mut renewed = record();
    renewed.licences[0].expires_on = date(2029, 1, 31);
    assert_eq!(tx.save_staff_record(id, &renewed, 1, "ts", at(2)).await.unwrap(), 2);
    let authorisation = Authorisation {
        discipline: "chemistry".into(),
        authorised_by: "director".into(),
        authorised_on: date(2026, 6, 1),
    };
    tx.insert_authorisation(id, &authorisation, at(3)).await.unwrap();
    tx.insert_assessment(id, &assessment(), "ts", at(4)).await.unwrap();
    tx.commit().await.unwrap();
    id
}

#[tokio::test]
async fn a_staff_record_authorisation_and_assessment_read_back() {
    let db = Db::new().await;
    let id = technician(&db).await;
    let stored = db.store.staff_record(id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.record.licences[0].expires_on, date(2029, 1, 31));
    assert_eq!(stored.record.education, record().education);
    assert_eq!(stored.updated_by, "ts");
    same(&stored.updated_at, &at(2));
    assert_eq!(db.store.staff_records().await.unwrap().len(), 1);
    let auths = db.store.authorisations(id).await.unwrap();
    assert_eq!(auths[0].authorisation.authorised_on, date(2026, 6, 1));
    assert_eq!(auths[0].authorisation.authorised_by, "director");
    let assessments = db.store.assessments(id).await.unwrap();
    assert_eq!(assessments[0].assessment, assessment());
    assert_eq!(assessments[0].recorded_by, "ts");

    // An edit from a stale version is a conflict, and changes nothing.
    let mut tx = db.store.begin().await.unwrap();
    let stale = tx.save_staff_record(id, &record(), 1, "ts", at(5)).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    drop(tx);
    assert_eq!(db.store.staff_record(id).await.unwrap().unwrap().version, 2);
}

#[tokio::test]
async fn the_qualification_settings_are_off_until_saved_and_read_back() {
    let db = Db::new().await;
    assert_eq!(db.store.qualification_policy().await.unwrap(), QualificationPolicy::default());
    let policy = QualificationPolicy {
        enforce: true,
        licence_required_from: Some(Complexity::Moderate),
        certification_required_from: None,
    };
    for saved in [QualificationPolicy { enforce: false, ..policy }, policy] {
        let mut tx = db.store.begin().await.unwrap();
        tx.save_qualification_policy(&saved, "director", AT).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(db.store.qualification_policy().await.unwrap(), saved);
    }
}

#[tokio::test]
async fn a_damaged_staff_column_is_corrupt_data_naming_it() {
    let db = Db::new().await;
    let id = technician(&db).await;
    db.damage(&format!(
        "UPDATE staff_record SET record = '{{\"education\": 3}}' WHERE user_id = {id}"
    ))
    .await;
    assert_eq!(corrupt_column(db.store.staff_record(id).await).1, "record");
    db.damage("UPDATE staff_authorisation SET authorised_on = '2026-13-01'").await;
    assert_eq!(corrupt_column(db.store.authorisations(id).await).1, "authorised_on");
    db.damage("UPDATE competency_assessment SET outcome = 'passed'").await;
    assert_eq!(corrupt_column(db.store.assessments(id).await).1, "outcome");
    db.damage("UPDATE competency_assessment SET outcome = 'pass', test_system = '{}'").await;
    assert_eq!(corrupt_column(db.store.assessments(id).await).1, "test_system");
    let mut tx = db.store.begin().await.unwrap();
    tx.save_qualification_policy(&QualificationPolicy::default(), "director", AT).await.unwrap();
    tx.commit().await.unwrap();
    db.damage("UPDATE qualification_policy SET licence_required_from = 'complex'").await;
    assert_eq!(corrupt_column(db.store.qualification_policy().await).1, "licence_required_from");
    db.damage("UPDATE qualification_policy SET licence_required_from = NULL, enforce = 7").await;
    assert_eq!(corrupt_column(db.store.qualification_policy().await).1, "enforce");
}
