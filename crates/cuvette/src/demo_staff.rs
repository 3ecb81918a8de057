//! The demo lab's people: a staff record for everyone at every level, the director's
//! authorisations and competency assessments on every analyzer, and the lab enforcing
//! qualifications — with a technologist's coagulation competency overdue, the technician's
//! (an MLT's) state licence expiring next week, and the phlebotomist and lab assistant with
//! their certificates. The student is on a chemistry rotation of her programme, supervised
//! by the technologist, with a week of co-signed panels in her logbook and today's panel
//! waiting for co-signature.

use std::collections::BTreeSet;

use cuvette_app::{Actor, AssessmentInput, AuthoriseInput, ElementInput, Lab, PolicyInput};
use cuvette_domain::staff::{CertificationInput, EducationInput, LicenceInput, StaffRecordInput};
use jiff::ToSpan;
use jiff::civil::Date;

/// Records everyone, authorises and assesses them, then turns enforcement on.
pub async fn set_up(
    lab: &Lab,
    today: Date,
    people: [&Actor; 6],
    director: &Actor,
    supervisor: &Actor,
) -> anyhow::Result<()> {
    let [phleb, assistant, tech, mls, sup, dir] = people;
    let day =
        |days: i64| -> anyhow::Result<String> { Ok(today.checked_add(days.days())?.to_string()) };
    let education = |level: &str, field: &str, school: &str, on: &str| EducationInput {
        level: level.into(),
        field: field.into(),
        institution: school.into(),
        accreditation: if field.starts_with("medical_laboratory") {
            "naacls".into()
        } else {
            String::new()
        },
        completed_on: on.into(),
    };
    let certification =
        |credential: &str, number: &str, issued: &str, expires: String| CertificationInput {
            credential: credential.into(),
            number: number.into(),
            issued_on: issued.into(),
            expires_on: expires,
        };
    let licence = |number: &str, expires: String| LicenceInput {
        state: "CA".into(),
        number: number.into(),
        expires_on: expires,
    };
    let records = [
        (
            phleb,
            StaffRecordInput {
                education: vec![education(
                    "certificate",
                    "allied_health",
                    "Demo Valley Phlebotomy School",
                    "2021-06-11",
                )],
                certifications: vec![certification(
                    "nha_cpt",
                    "CPT-DEMO-310",
                    "2021-07-02",
                    day(420)?,
                )],
                hire_date: "2021-08-16".into(),
                ..Default::default()
            },
        ),
        (
            assistant,
            StaffRecordInput {
                education: vec![education(
                    "certificate",
                    "allied_health",
                    "Demo City College",
                    "2019-12-13",
                )],
                certifications: vec![certification(
                    "ascp_pbt",
                    "PBT-DEMO-2207",
                    "2020-02-01",
                    day(300)?,
                )],
                hire_date: "2020-03-02".into(),
                disciplines: vec!["urinalysis".into()],
                ..Default::default()
            },
        ),
        // The MLT: an associate degree; the licence runs out next week.
        (
            tech,
            StaffRecordInput {
                education: vec![education(
                    "associate",
                    "medical_laboratory_technology",
                    "Demo Community College MLT Program",
                    "2019-05-17",
                )],
                certifications: vec![certification(
                    "ascp_mlt",
                    "MLT-DEMO-5120",
                    "2019-07-15",
                    day(500)?,
                )],
                licences: vec![licence("MLT-DEMO-8812", day(6)?)],
                hire_date: "2019-09-03".into(),
                disciplines: vec![
                    "chemistry".into(),
                    "hematology".into(),
                    "coagulation".into(),
                    "urinalysis".into(),
                ],
                ..Default::default()
            },
        ),
        (
            mls,
            StaffRecordInput {
                education: vec![education(
                    "bachelor",
                    "medical_laboratory_science",
                    "Demo State University",
                    "2014-05-16",
                )],
                certifications: vec![certification(
                    "ascp_mls",
                    "MLS-DEMO-4410",
                    "2014-07-01",
                    day(700)?,
                )],
                licences: vec![licence("CLS-DEMO-2231", day(640)?)],
                hire_date: "2014-08-18".into(),
                disciplines: vec!["chemistry".into(), "hematology".into(), "coagulation".into()],
                ..Default::default()
            },
        ),
        (
            sup,
            StaffRecordInput {
                education: vec![education(
                    "bachelor",
                    "medical_laboratory_science",
                    "Demo State University",
                    "2004-05-14",
                )],
                certifications: vec![
                    certification("ascp_mls", "MLS-DEMO-1001", "2004-07-01", String::new()),
                    certification("ascp_sc", "SC-DEMO-77", "2011-03-01", day(900)?),
                ],
                licences: vec![licence("CLS-DEMO-0999", day(800)?)],
                hire_date: "2006-01-09".into(),
                experience_since: "2004-07-06".into(),
                disciplines: vec![
                    "chemistry".into(),
                    "hematology".into(),
                    "coagulation".into(),
                    "urinalysis".into(),
                ],
            },
        ),
        (
            dir,
            StaffRecordInput {
                education: vec![education(
                    "doctorate",
                    "medicine",
                    "Demo School of Medicine",
                    "1998-05-22",
                )],
                licences: vec![licence("A-DEMO-40021", day(1000)?)],
                hire_date: "2008-07-01".into(),
                experience_since: "2002-07-01".into(),
                ..Default::default()
            },
        ),
    ];
    // No one records, authorises or assesses themselves: the technical supervisor does it
    // for the director.
    let by = |who: &Actor| if who.name == director.name { supervisor } else { director };
    for (who, record) in &records {
        lab.save_staff_record(by(who), &who.name, record, 0).await?;
    }
    // Authorisations, signed by the director a while ago.
    let signed = day(-500)?;
    for (who, disciplines) in [
        (tech, &["chemistry", "hematology", "coagulation", "urinalysis"][..]),
        (mls, &["chemistry", "hematology", "coagulation", "urinalysis"][..]),
        (sup, &["chemistry", "hematology", "coagulation", "urinalysis"][..]),
        (dir, &["chemistry", "hematology", "coagulation", "urinalysis"][..]),
        (assistant, &["urinalysis"][..]),
    ] {
        for d in disciplines {
            let input = AuthoriseInput { discipline: (*d).into(), authorised_on: signed.clone() };
            lab.authorise(by(who), &who.name, &input).await?;
        }
    }
    // Competency on each analyzer's benches and on the manual methods: current for everyone,
    // but the technologist's coagulation assessments stopped a year and a few months ago.
    let mut systems: BTreeSet<(String, String)> = BTreeSet::new();
    let catalog = lab.catalog();
    for (instrument, codes) in lab.instruments(supervisor).await? {
        for code in codes {
            if let Some(def) = catalog.catalog.test(&code.test_code) {
                systems.insert((def.discipline.clone(), instrument.name.clone()));
            }
        }
    }
    for d in ["chemistry", "hematology", "coagulation", "urinalysis"] {
        systems.insert((d.into(), String::new()));
    }
    let current = [day(-400)?, day(-220)?, day(-40)?];
    let lapsed = [day(-800)?, day(-620)?, day(-440)?];
    for who in [tech, mls, sup, dir] {
        // No one assesses themselves: the director assesses the technical supervisor.
        let assessor = if who.name == sup.name { &dir.name } else { &sup.name };
        for (discipline, instrument) in &systems {
            let overdue = who.name == mls.name && discipline == "coagulation";
            for on in if overdue { &lapsed } else { &current } {
                let input = AssessmentInput {
                    test: String::new(),
                    discipline: discipline.clone(),
                    instrument: instrument.clone(),
                    outcome: "pass".into(),
                    elements: EVIDENCE
                        .iter()
                        .map(|evidence| ElementInput {
                            evidence: (*evidence).into(),
                            assessor: assessor.clone(),
                            assessed_on: on.clone(),
                        })
                        .collect(),
                };
                let recorder = if who.name == supervisor.name { director } else { supervisor };
                lab.record_competency(recorder, &who.name, &input).await?;
            }
        }
    }
    lab.set_qualification_policy(
        director,
        &PolicyInput {
            enforce: true,
            licence_required_from: "moderate".into(),
            certification_required_from: String::new(),
        },
    )
    .await?;
    Ok(())
}

/// What the assessor wrote for each of the six elements.
const EVIDENCE: [&str; 6] = [
    "Observed two routine patient specimens from receipt to result, including centrifugation and loading",
    "Reviewed the results recorded and reported that shift against the instrument printout",
    "Reviewed the day's worksheets, QC records, last PT event and preventive maintenance log",
    "Observed daily maintenance and the function checks before the morning run",
    "Tested three previously analysed specimens; all within the allowable total error",
    "Described the steps for a QC rule violation and a delta-check failure correctly",
];

/// The student's chemistry rotation: ten days ago to the end of next week, supervised by the
/// technologist (the panels she entered this week are its logbook).
pub async fn rotation(
    lab: &Lab,
    today: Date,
    student: &Actor,
    technologist: &Actor,
    supervisor: &Actor,
) -> anyhow::Result<()> {
    let input = cuvette_domain::rotation::RotationInput {
        program: "Demo State University MLS program".into(),
        discipline: "chemistry".into(),
        starts_on: today.checked_sub(10.days())?.to_string(),
        ends_on: today.checked_add(12.days())?.to_string(),
        supervisor: technologist.name.clone(),
    };
    lab.schedule_rotation(supervisor, &student.name, &input).await?;
    Ok(())
}
