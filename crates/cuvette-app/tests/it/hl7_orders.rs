//! The EHR side of HL7: orders come in as OML^O21 or ORM^O01 and are placed with the placer's
//! number, answered with the accession numbers (ORL^O22, ORR^O02) or quarantined with the
//! field at fault; released results go out as ORU^R01, queued in the release's transaction.

use cuvette_app::interop::{self, Ingested};
use cuvette_app::records::{MessageFilter, OrderRow, OutboxRow, PatientRow};
use cuvette_app::{Correction, LabConfig};
use cuvette_domain::workflow::TestStatus;
use cuvette_hl7::Message;

use crate::support::*;

/// The ward's EHR, registered under Interfaces; it sends as "WARDEHR".
async fn ehr(lab: &TestLab) {
    let supervisor = lab.supervisor().await;
    lab.add_instrument(&supervisor, "Ward EHR", "hl7", "WARDEHR").await.unwrap();
}

/// A lab that sends released results to an EHR.
async fn lab_sending_results() -> TestLab {
    lab_with(LabConfig { ehr_destination: Some("10.1.2.3:2575".into()), ..LabConfig::default() })
        .await
}

const PID_OKAFOR: &str =
    "PID|1||M1001^^^HOSP^MR~999-99-9999^^^USSSA^SS||Okafor^Chidi^E||19760601|M";

/// An OML^O21 from the ward's EHR: the patient, then one ORC/TQ1/OBR per `(placer, OBR-4)`.
fn oml(control_id: &str, pid: &str, orders: &[(&str, &str)]) -> Vec<u8> {
    let mut m = format!(
        "MSH|^~\\&|WARDEHR|HOSP|CUVETTE|LAB|20261124074500||OML^O21^OML_O21|{control_id}|P|2.5.1\r{pid}\r"
    );
    for (placer, service) in orders {
        m.push_str(&format!(
            "ORC|NW|{placer}|||||||20261124074500|||4711^Adeyemi^Ngozi^^^Dr\r\
             TQ1|1||||||||S\r\
             OBR|1|{placer}||{service}\r\
             NTE|1||Fasting since midnight\r"
        ));
    }
    m.into_bytes()
}

fn field(message: &[u8], path: &str) -> String {
    let m = Message::parse(message).expect("an HL7 message");
    m.get(path).map(|v| v.text().into_owned()).unwrap_or_default()
}

fn segments(message: &[u8], id: &str) -> usize {
    Message::parse(message).expect("an HL7 message").segments_with_id(id).count()
}

async fn orders_of(lab: &TestLab, patient: &PatientRow) -> Vec<OrderRow> {
    lab.store().orders_of_patient(patient.id).await.unwrap()
}

async fn patient_by_mrn(lab: &TestLab, mrn: &str) -> Option<PatientRow> {
    lab.store().patient_by_mrn(mrn).await.unwrap()
}

async fn outbox(lab: &TestLab) -> Vec<OutboxRow> {
    lab.store().outbox_undelivered().await.unwrap()
}

// ---- orders in ----

#[tokio::test]
async fn an_oml_from_the_ehr_registers_the_patient_places_the_order_and_answers_orl_with_the_accession()
 {
    let lab = lab().await;
    ehr(&lab).await;

    let (outcome, ack) = interop::hl7::receive(
        &lab,
        &oml("OML0001", PID_OKAFOR, &[("PL-1001", "24321-2^Basic metabolic panel^LN")]),
        "mllp:2575",
        "10.0.0.9:50000",
    )
    .await
    .unwrap();

    let Ingested::Ordered { registered: true, orders, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    let patient = patient_by_mrn(&lab, "M1001").await.expect("registered from PID");
    assert_eq!(
        (
            patient.family_name.as_str(),
            patient.given_name.as_str(),
            patient.birth_date.as_str(),
            patient.sex.as_str()
        ),
        ("Okafor", "Chidi", "1976-06-01", "M")
    );
    let order = &orders_of(&lab, &patient).await[0];
    assert_eq!(order.placer_number.as_deref(), Some("PL-1001"));
    assert_eq!(order.priority.code(), "stat", "TQ1-9 S");
    assert_eq!(order.provider, "Dr Ngozi Adeyemi (4711)");
    assert_eq!(order.clinical_note, "Fasting since midnight");
    assert_eq!(order.ordered_by, "ehr:Ward EHR");
    let accession = &orders[0].specimens[0].accession;
    assert!(orders[0].specimens[0].tests.contains(&"K".to_owned()), "the BMP by its LOINC");

    assert_eq!(field(&ack, "MSH-9"), "ORL^O22^ORL_O22");
    assert_eq!(field(&ack, "MSA-1"), "AA");
    assert_eq!(field(&ack, "MSA-2"), "OML0001");
    assert_eq!(field(&ack, "PID-3-1"), "M1001");
    assert_eq!(field(&ack, "ORC-1"), "OK");
    assert_eq!(field(&ack, "ORC-2"), "PL-1001");
    assert_eq!(field(&ack, "ORC-3-1"), *accession, "the filler number is the accession");
    assert_eq!(field(&ack, "OBR-4-1"), "24321-2");

    let log = lab.message_log(&lab.technologist().await, &MessageFilter::default()).await.unwrap();
    assert_eq!(
        (log[0].message_type.as_str(), log[0].outcome.code(), log[0].ack.as_ref()),
        ("OML^O21", "accepted", Some(&ack))
    );
    assert_eq!(log[0].accession.as_deref(), Some(accession.as_str()));
    let actions = lab.audit_actions_for(&patient).await;
    assert_eq!(actions, ["patient.register", "order.place"]);
}

#[tokio::test]
async fn an_orm_for_a_patient_on_file_is_placed_and_answered_orr_with_each_tube() {
    let lab = lab().await;
    ehr(&lab).await;
    let patient = lab.adult_man().await; // M1001, 1976-06-01
    // Two orders: a CBC by Cuvette code (routine in OBR-27) and a PT by LOINC; the provider
    // only in OBR-16.
    let orm = "MSH|^~\\&|WARDEHR|HOSP|||20261124074500||ORM^O01|ORM0001|P|2.3\r\
               PID|1||M1001||OKAFOR^CHIDI||19760601|M\r\
               ORC|NW|PL-2001\r\
               OBR|1|PL-2001||CBC^Complete blood count^L||||||||||||^Okafor^Amaka|||||||||||^^^^^R\r\
               ORC|NW|PL-2002\r\
               OBR|2|PL-2002||5902-2^Prothrombin time^LN||||||||||||^Okafor^Amaka\r";

    let (outcome, ack) =
        interop::hl7::receive(&lab, orm.as_bytes(), "mllp:2575", "peer").await.unwrap();

    let Ingested::Ordered { registered: false, orders, patient_id, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(*patient_id, patient.id, "found by MRN, not registered again");
    assert_eq!(orders.len(), 2);
    let placed = orders_of(&lab, &patient).await;
    let mut placers: Vec<_> = placed.iter().filter_map(|o| o.placer_number.clone()).collect();
    placers.sort();
    assert_eq!(placers, ["PL-2001", "PL-2002"]);
    assert!(placed.iter().all(|o| o.priority.code() == "routine" && o.provider == "Amaka Okafor"));

    assert_eq!(field(&ack, "MSH-9"), "ORR^O02^ORR_O02");
    assert_eq!(field(&ack, "MSA-1"), "AA");
    assert_eq!(field(&ack, "MSH-12"), "2.5.1", "answered in v2.5.1, the structures Cuvette writes");
    assert_eq!(field(&ack, "ORC(1)-2"), "PL-2001");
    assert_eq!(field(&ack, "ORC(1)-3-1"), orders[0].specimens[0].accession);
    assert_eq!(field(&ack, "ORC(2)-2"), "PL-2002");
    assert_eq!(field(&ack, "ORC(2)-3-1"), orders[1].specimens[0].accession);
}

#[tokio::test]
async fn the_corpus_orm_is_quarantined_for_its_loinc_and_placed_when_it_names_the_cbc() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    lab.add_instrument(&supervisor, "Transformation agent", "hl7", "SomeSystem").await.unwrap();
    let corpus = include_bytes!("data/hl7v23-orm-o01_fhir-converter_lab-orm-1-bom.hl7");

    // 24317-0 "Hemogram and platelet count, automated" is no LOINC of the catalog.
    let (outcome, ack) = interop::hl7::receive(&lab, corpus, "mllp:2575", "peer").await.unwrap();
    let Ingested::Quarantined { reason, location, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(location, "OBR(1)-4");
    assert!(
        reason.contains("\"24317-0\"")
            && reason.contains("Hemogram and platelet count")
            && reason.contains("not in the catalog"),
        "{reason}"
    );
    assert_eq!(field(&ack, "MSH-9"), "ORR^O02^ORR_O02");
    assert_eq!(field(&ack, "MSA-1"), "AE");
    assert_eq!(field(&ack, "MSA-2"), "MSGID20060307110114");
    assert_eq!(field(&ack, "ERR-2"), "OBR^1^4");
    assert_eq!(field(&ack, "ERR-3-1"), "103");
    assert!(patient_by_mrn(&lab, "10006579").await.is_none(), "nothing registered");
    let open = lab
        .message_log(
            &lab.technologist().await,
            &MessageFilter { open_quarantine: true, ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].raw, corpus, "kept as it came, BOM included");

    // The same message asking for the CBC panel by its LOINC (58410-2) is placed.
    let text = String::from_utf8_lossy(corpus)
        .replace("24317-0", "58410-2")
        .replace("MSGID20060307110114", "MSGID20060307110115");
    let (outcome, ack) =
        interop::hl7::receive(&lab, text.as_bytes(), "mllp:2575", "peer").await.unwrap();
    let Ingested::Ordered { registered: true, .. } = &outcome else { panic!("{outcome:?}") };
    let patient = patient_by_mrn(&lab, "10006579").await.expect("DUCK, DONALD registered");
    assert_eq!(
        (patient.family_name.as_str(), patient.birth_date.as_str(), patient.sex.as_str()),
        ("DUCK", "1924-10-10", "M")
    );
    let order = &orders_of(&lab, &patient).await[0];
    assert_eq!(order.placer_number.as_deref(), Some("88502218"));
    assert_eq!(order.provider, "DR URO", "from OBR-16: ORC-12 is empty");
    assert_eq!(field(&ack, "MSA-1"), "AA");
}

#[tokio::test]
async fn the_corpus_oml_is_quarantined_because_it_carries_no_new_order() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    lab.add_instrument(&supervisor, "GHH order entry", "hl7", "ORDApp").await.unwrap();
    let corpus = include_bytes!("data/hl7v28-oml-o21_fhir-converter_oml-o21-03-spm-sac.hl7");

    let (outcome, ack) = interop::hl7::receive(&lab, corpus, "mllp:2575", "peer").await.unwrap();

    let Ingested::Quarantined { reason, location, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(location, "ORC(1)-1");
    assert!(reason.contains("\"SC\"") && reason.contains("status changed"), "{reason}");
    assert_eq!(field(&ack, "MSH-9"), "ORL^O22^ORL_O22");
    assert_eq!(field(&ack, "MSA-1"), "AE");
    assert_eq!(field(&ack, "ERR-2"), "ORC^1^1");
    assert!(patient_by_mrn(&lab, "PATID1234").await.is_none(), "nothing registered");
}

/// An OML^O21 as a ward's EHR sends it when the ward draws and labels the tubes: each
/// ORC/TQ1/OBR followed by the SPM of the tube it was drawn into (SPM-2 the EHR's barcode,
/// SPM-4 the specimen type, SPM-17 when it was drawn, Eastern time).
fn oml_with_specimens(control_id: &str, orders: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut m = format!(
        "MSH|^~\\&|WARDEHR|HOSP|CUVETTE|LAB|20261124074500||OML^O21^OML_O21|{control_id}|P|2.5.1\r{PID_OKAFOR}\r\
         PV1|1|I|4W^412^1\r"
    );
    for (placer, service, spm) in orders {
        m.push_str(&format!(
            "ORC|NW|{placer}|||||||20261124021000-0500|||4711^Adeyemi^Ngozi^^^Dr\r\
             TQ1|1||||||||R\r\
             OBR|1|{placer}||{service}|||20261124021500-0500||||O\r\
             {spm}\r"
        ));
    }
    m.into_bytes()
}

#[tokio::test]
async fn an_oml_with_two_tubes_drawn_on_the_ward_puts_each_test_on_the_tube_the_ehr_sent() {
    let lab = lab().await;
    ehr(&lab).await;
    // A BMP and a magnesium from one gold-top (SPM E0417-1), a CBC from the lavender-top
    // (E0417-2): three orders, two tubes, not one tube per order.
    let gold = "SPM|1|E0417-1^||119364003^Serum specimen^SCT|||||||P^Patient^HL70369||||||20261124021500-0500";
    let lavender = "SPM|2|E0417-2^||119297000^Blood specimen^SCT|||||||P^Patient^HL70369||||||20261124021500-0500";
    let message = oml_with_specimens(
        "OML0101",
        &[
            ("PL-3001", "24321-2^Basic metabolic panel^LN", gold),
            ("PL-3002", "19123-9^Magnesium^LN", gold),
            ("PL-3003", "58410-2^CBC panel^LN", lavender),
        ],
    );

    let (outcome, ack) =
        interop::hl7::receive(&lab, &message, "mllp:2575", "10.0.0.9:50000").await.unwrap();

    let Ingested::Ordered { orders, .. } = &outcome else { panic!("{outcome:?}") };
    let accessions: Vec<Vec<&str>> =
        orders.iter().map(|o| o.specimens.iter().map(|s| s.accession.as_str()).collect()).collect();
    let (serum, blood) = (accessions[0][0], accessions[2][0]);
    assert_eq!(accessions, [vec![serum], vec![serum], vec![blood]], "two tubes, as sent");
    assert_ne!(serum, blood);
    let serum_tube = lab.specimen(serum).await;
    assert_eq!(serum_tube.specimen_type, "Serum specimen", "SPM-4 as the EHR named it");
    assert_eq!(serum_tube.status.code(), "collected", "drawn on the ward, as SPM-17 says");
    assert_eq!(
        serum_tube.collected_at,
        Some("2026-11-24T07:15:00Z".parse::<jiff::Timestamp>().unwrap().into()),
        "20261124021500-0500"
    );
    let patient = patient_by_mrn(&lab, "M1001").await.unwrap();
    let mut on_tube: Vec<(String, String)> = lab
        .all_tests(&patient)
        .await
        .into_iter()
        .map(|t| (t.specimen.accession.clone(), t.test.test_code.clone()))
        .collect();
    on_tube.sort();
    let mut expected: Vec<(String, String)> =
        ["AGAP", "BUN", "CA", "CL", "CO2", "CREAT", "EGFR", "GLU", "K", "MG", "NA"]
            .into_iter()
            .map(|t| (serum.to_owned(), t.to_owned()))
            .chain(
                ["HCT", "HGB", "MCH", "MCHC", "MCV", "MPV", "PLT", "RBC", "RDW", "WBC"]
                    .into_iter()
                    .map(|t| (blood.to_owned(), t.to_owned())),
            )
            .collect();
    expected.sort();
    assert_eq!(on_tube, expected);
    assert!(lab.all_tests(&patient).await.iter().all(|t| t.test.status == TestStatus::Collected));

    assert_eq!(field(&ack, "MSH-9"), "ORL^O22^ORL_O22");
    assert_eq!(field(&ack, "MSA-1"), "AA");
    assert_eq!(segments(&ack, "ORC"), 3);
    assert_eq!(segments(&ack, "SPM"), 3, "one SPM per test order, as the EHR grouped them");
    for (n, placer, accession, spm_id) in [
        (1, "PL-3001", serum, "E0417-1"),
        (2, "PL-3002", serum, "E0417-1"),
        (3, "PL-3003", blood, "E0417-2"),
    ] {
        assert_eq!(field(&ack, &format!("ORC({n})-2")), placer);
        assert_eq!(field(&ack, &format!("ORC({n})-3-1")), accession);
        assert_eq!(field(&ack, &format!("SPM({n})-2-1")), spm_id, "the EHR's id");
        assert_eq!(field(&ack, &format!("SPM({n})-2-2")), format!("{accession}&CUVETTE"));
        assert_eq!(field(&ack, &format!("SPM({n})-17")), "20261124021500-0500");
    }
    assert_eq!(field(&ack, "SPM(3)-4-2"), "Blood specimen");
}

#[tokio::test]
async fn a_wound_culture_and_gram_stain_on_one_swab_are_one_specimen_with_one_accession() {
    let lab = lab().await;
    ehr(&lab).await;
    // Culture and Gram stain are ordered apart (each its own ORC, placer number and result
    // back to the EHR) on the one swab the nurse took from the wound.
    let swab = "SPM|1|SW-88213^||WND^Wound^HL70487|||||LEFT LEG^Left lower leg|||P^Patient^HL70369||||||20261124021500-0500";
    let message = oml_with_specimens(
        "OML0102",
        &[
            ("PL-4001", "6462-6^Bacteria identified in Wound by Culture^LN", swab),
            (
                "PL-4002",
                "664-3^Microscopic observation in Specimen by Gram stain^LN",
                &swab.replace("SPM|1|", "SPM|2|"),
            ),
        ],
    );

    let (outcome, ack) = interop::hl7::receive(&lab, &message, "mllp:2575", "peer").await.unwrap();

    let Ingested::Ordered { orders, .. } = &outcome else { panic!("{outcome:?}") };
    let culture = &orders[0].specimens;
    let gram = &orders[1].specimens;
    assert_eq!((culture.len(), gram.len()), (1, 1));
    assert_eq!(culture[0].accession, gram[0].accession, "one swab, one accession");
    assert_eq!(
        (culture[0].tests.as_slice(), gram[0].tests.as_slice()),
        (&["WCX".to_owned()][..], &["GRAM".to_owned()][..])
    );
    let accession = culture[0].accession.clone();
    let patient = patient_by_mrn(&lab, "M1001").await.unwrap();
    let on_swab: Vec<(String, String)> = lab
        .all_tests(&patient)
        .await
        .into_iter()
        .map(|t| (t.specimen.accession.clone(), t.test.test_code.clone()))
        .collect();
    assert_eq!(on_swab.len(), 2);
    assert!(on_swab.iter().all(|(a, _)| *a == accession), "{on_swab:?}");
    let swab = lab.specimen(&accession).await;
    assert_eq!(swab.specimen_type, "Wound");
    // Each order shows the swab, though the culture's order wrote it.
    let placed = orders_of(&lab, &patient).await;
    for order in &placed {
        let specimens = lab.store().specimens_of_order(order.id).await.unwrap();
        assert_eq!(specimens.len(), 1, "{:?}", order.placer_number);
        assert_eq!(specimens[0].accession, accession);
    }

    assert_eq!(field(&ack, "MSA-1"), "AA");
    assert_eq!(
        (field(&ack, "ORC(1)-3-1"), field(&ack, "ORC(2)-3-1")),
        (accession.clone(), accession.clone())
    );
    assert_eq!(
        (field(&ack, "OBR(1)-4-1"), field(&ack, "OBR(2)-4-1")),
        ("6462-6".into(), "664-3".into())
    );
    assert_eq!(
        (field(&ack, "SPM(1)-2-1"), field(&ack, "SPM(2)-2-1")),
        ("SW-88213".into(), "SW-88213".into())
    );
    let log = lab.message_log(&lab.technologist().await, &MessageFilter::default()).await.unwrap();
    assert_eq!(log[0].accession.as_deref(), Some(accession.as_str()));
}

#[tokio::test]
async fn specimens_the_ehr_describes_wrongly_are_quarantined_naming_the_spm_field_and_nothing_is_placed()
 {
    let lab = lab().await;
    ehr(&lab).await;
    let spm = |n: usize, id: &str, kind: &str, drawn: &str| {
        format!("SPM|{n}|{id}^||{kind}|||||||P||||||{drawn}")
    };
    let serum = "119364003^Serum specimen^SCT";
    let cases = [
        (
            "BADSPM1",
            vec![spm(1, "", serum, "20261124021500-0500")],
            "SPM(1)-2",
            "SPM^1^2",
            "101",
            "specimen id is missing",
        ),
        (
            "BADSPM2",
            vec![spm(1, "E1", "", "20261124021500-0500")],
            "SPM(1)-4",
            "SPM^1^4",
            "101",
            "no specimen type",
        ),
        (
            "BADSPM3",
            vec![spm(1, "E1", serum, "20261124")],
            "SPM(1)-17",
            "SPM^1^17",
            "102",
            "not a date and time to the minute",
        ),
        (
            "BADSPM4",
            vec![spm(1, "E1", serum, "20261124091500-0500")],
            "SPM(1)-17",
            "SPM^1^17",
            "102",
            "after the order arrived",
        ),
        (
            "BADSPM5",
            vec![
                spm(1, "E1", serum, "20261124021500-0500"),
                spm(2, "E1", "119297000^Blood specimen^SCT", "20261124021500-0500"),
            ],
            "SPM(2)-4",
            "SPM^2^4",
            "207",
            "described differently in SPM(1)",
        ),
        (
            "BADSPM6",
            vec![
                spm(1, "E1", serum, "20261124021500-0500"),
                spm(2, "E1", serum, "20261124023000-0500"),
            ],
            "SPM(2)-17",
            "SPM^2^17",
            "207",
            "one collection time",
        ),
    ];
    for (control_id, spms, location, err_2, err_3, words) in cases {
        let orders: Vec<(&str, &str, &str)> = spms
            .iter()
            .enumerate()
            .map(|(i, s)| (if i == 0 { "PL-5001" } else { "PL-5002" }, "K^Potassium^L", s.as_str()))
            .collect();
        let (outcome, ack) = interop::hl7::receive(
            &lab,
            &oml_with_specimens(control_id, &orders),
            "mllp:2575",
            "peer",
        )
        .await
        .unwrap();
        let Ingested::Quarantined { reason, location: at, .. } = &outcome else {
            panic!("{control_id}: {outcome:?}")
        };
        assert_eq!(at, location, "{control_id}");
        assert!(reason.contains(words), "{control_id}: {reason}");
        assert_eq!(field(&ack, "MSA-1"), "AE", "{control_id}");
        assert_eq!(field(&ack, "ERR-2"), err_2, "{control_id}");
        assert_eq!(field(&ack, "ERR-3-1"), err_3, "{control_id}");
    }
    assert!(patient_by_mrn(&lab, "M1001").await.is_none(), "nothing registered, nothing placed");

    // A later message naming a swab already on file would put a second accession on it.
    let swab = spm(1, "SW-1", "WND^Wound^HL70487", "20261124021500-0500");
    let first = oml_with_specimens("SWAB1", &[("PL-6001", "6462-6^Wound culture^LN", &swab)]);
    let (placed, _) = interop::hl7::receive(&lab, &first, "mllp:2575", "peer").await.unwrap();
    let Ingested::Ordered { orders, .. } = &placed else { panic!("{placed:?}") };
    let again = oml_with_specimens("SWAB2", &[("PL-6002", "664-3^Gram stain^LN", &swab)]);
    let (outcome, ack) = interop::hl7::receive(&lab, &again, "mllp:2575", "peer").await.unwrap();
    let Ingested::Quarantined { reason, .. } = &outcome else { panic!("{outcome:?}") };
    assert!(
        reason.contains(&format!(
            "already on file as accession {}",
            orders[0].specimens[0].accession
        )),
        "{reason}"
    );
    assert_eq!(field(&ack, "ERR-2"), "SPM^1^2");
}

#[tokio::test]
async fn a_retransmitted_order_is_answered_with_the_stored_orl_and_placed_once() {
    let lab = lab().await;
    ehr(&lab).await;
    let message = oml("OML0002", PID_OKAFOR, &[("PL-1002", "K^Potassium^L")]);

    let (_, first) = interop::hl7::receive(&lab, &message, "mllp:2575", "peer").await.unwrap();
    lab.clock.advance(minutes(1));
    let (again, second) = interop::hl7::receive(&lab, &message, "mllp:2575", "peer").await.unwrap();

    assert!(matches!(again, Ingested::Duplicate { .. }), "{again:?}");
    assert_eq!(first, second, "the same ORL, accession included");
    let patient = patient_by_mrn(&lab, "M1001").await.unwrap();
    assert_eq!(orders_of(&lab, &patient).await.len(), 1, "placed once");
}

#[tokio::test]
async fn an_order_without_a_usable_patient_is_quarantined_with_the_field_named() {
    let lab = lab().await;
    ehr(&lab).await;
    let cases = [
        ("NOPID", "", "PID", "PID^1", "101", "PID segment is missing"),
        (
            "BADDOB",
            "PID|1||M1001||Okafor^Chidi||19761301|M",
            "PID-7",
            "PID^1^7",
            "102",
            "not a date",
        ),
        (
            "NODOB",
            "PID|1||M1001||Okafor^Chidi|||M",
            "PID-7",
            "PID^1^7",
            "101",
            "date of birth is missing",
        ),
        ("NOMRN", "PID|1||||Okafor^Chidi||19760601|M", "PID-3", "PID^1^3", "101", "MRN"),
        ("BADSEX", "PID|1||M1001||Okafor^Chidi||19760601|X", "PID-8", "PID^1^8", "102", "\"X\""),
    ];
    for (control_id, pid, location, err_2, err_3, says) in cases {
        let message =
            String::from_utf8(oml(control_id, pid, &[("PL-9", "K^Potassium^L")])).unwrap();
        // Without a PID the segment is left out, not sent empty.
        let message = message.replace("\r\rORC", "\rORC");
        let (outcome, ack) =
            interop::hl7::receive(&lab, message.as_bytes(), "mllp:2575", "peer").await.unwrap();
        let Ingested::Quarantined { reason, location: at, .. } = &outcome else {
            panic!("{control_id}: {outcome:?}")
        };
        assert_eq!(at, location, "{control_id}");
        assert!(reason.contains(says), "{control_id}: {reason}");
        assert_eq!(field(&ack, "MSA-1"), "AE", "{control_id}");
        assert_eq!(field(&ack, "ERR-2"), err_2, "{control_id}");
        assert_eq!(field(&ack, "ERR-3-1"), err_3, "{control_id}");
    }
    assert!(patient_by_mrn(&lab, "M1001").await.is_none());
}

#[tokio::test]
async fn an_order_whose_date_of_birth_differs_from_the_patient_on_file_is_quarantined() {
    let lab = lab().await;
    ehr(&lab).await;
    let patient = lab.adult_man().await; // M1001 born 1976-06-01
    let pid = "PID|1||M1001||Okafor^Chidi||19670601|M";
    let (outcome, _) = interop::hl7::receive(
        &lab,
        &oml("WRONGDOB", pid, &[("PL-3", "K^Potassium^L")]),
        "mllp:2575",
        "peer",
    )
    .await
    .unwrap();
    let Ingested::Quarantined { reason, location, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(location, "PID-7");
    assert!(reason.contains("1976-06-01") && reason.contains("1967-06-01"), "{reason}");
    assert!(orders_of(&lab, &patient).await.is_empty());
}

#[tokio::test]
async fn an_unknown_test_or_missing_provider_places_nothing_of_the_message() {
    let lab = lab().await;
    ehr(&lab).await;
    // The first order is fine, the second is not: neither is placed.
    let message =
        oml("TWO", PID_OKAFOR, &[("PL-4", "K^Potassium^L"), ("PL-5", "99999-9^Unobtainium^LN")]);
    let (outcome, ack) = interop::hl7::receive(&lab, &message, "mllp:2575", "peer").await.unwrap();
    let Ingested::Quarantined { location, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(location, "OBR(2)-4");
    assert_eq!(field(&ack, "ERR-2"), "OBR^2^4");
    assert!(patient_by_mrn(&lab, "M1001").await.is_none(), "all or nothing");

    let no_provider = String::from_utf8(oml("NOPROV", PID_OKAFOR, &[("PL-6", "K^Potassium^L")]))
        .unwrap()
        .replace("|||4711^Adeyemi^Ngozi^^^Dr", "");
    let (outcome, ack) =
        interop::hl7::receive(&lab, no_provider.as_bytes(), "mllp:2575", "peer").await.unwrap();
    let Ingested::Quarantined { reason, location, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(location, "ORC(1)-12");
    assert!(reason.contains("ordering provider"), "{reason}");
    assert_eq!(field(&ack, "ERR-3-1"), "101");
}

#[tokio::test]
async fn an_order_from_an_unknown_sender_waits_in_the_quarantine_until_the_ehr_is_added() {
    let lab = lab().await;
    let (outcome, ack) = interop::hl7::receive(
        &lab,
        &oml("OML0003", PID_OKAFOR, &[("PL-1003", "K^Potassium^L")]),
        "mllp:2575",
        "peer",
    )
    .await
    .unwrap();
    let Ingested::Quarantined { message_id, reason, .. } = outcome else { panic!("{outcome:?}") };
    assert!(reason.contains("unknown sender \"WARDEHR\""), "{reason}");
    assert_eq!(field(&ack, "MSA-1"), "AE");
    assert!(patient_by_mrn(&lab, "M1001").await.is_none());

    ehr(&lab).await;
    let technologist = lab.technologist().await;
    lab.replay_quarantined(&technologist, message_id, None).await.unwrap();
    let patient = patient_by_mrn(&lab, "M1001").await.expect("the replay registered them");
    assert_eq!(orders_of(&lab, &patient).await[0].placer_number.as_deref(), Some("PL-1003"));
    let open = lab
        .message_log(&technologist, &MessageFilter { open_quarantine: true, ..Default::default() })
        .await
        .unwrap();
    assert!(open.is_empty(), "the original left the quarantine");
}

// ---- results out ----

/// The EHR orders K and CRP (one tube) for Ms Lindqvist; the tube reaches the lab.
async fn ordered_from_the_ehr(lab: &TestLab) -> (PatientRow, String) {
    ehr(lab).await;
    let pid = "PID|1||F2002^^^HOSP^MR||Lindqvist^Sam||19700301|F";
    let (outcome, _) = interop::hl7::receive(
        lab,
        &oml("OML0100", pid, &[("PL-7", "K^Potassium^L")]),
        "mllp:2575",
        "peer",
    )
    .await
    .unwrap();
    let Ingested::Ordered { orders, .. } = outcome else { panic!("{outcome:?}") };
    let accession = orders[0].specimens[0].accession.clone();
    lab.collect_and_receive(&accession).await;
    (lab.patient_of(&accession).await, accession)
}

#[tokio::test]
async fn a_release_queues_one_oru_for_the_ehr_with_the_result() {
    let lab = lab_sending_results().await;
    let (patient, accession) = ordered_from_the_ehr(&lab).await;
    let technologist = lab.technologist().await;
    let collected = lab.specimen(&accession).await.collected_at.unwrap();
    lab.clock.advance(minutes(30));
    lab.enter(&lab.technician().await, &patient, "K", "5.6").await.unwrap();
    assert!(outbox(&lab).await.is_empty(), "nothing goes out before release");

    assert_released(&lab.verify(&technologist, &patient, "K").await);

    let queued = outbox(&lab).await;
    assert_eq!(queued.len(), 1, "exactly one message");
    let row = &queued[0];
    assert_eq!(
        (row.destination.as_str(), row.accession.as_str(), row.status.code(), row.attempts),
        ("10.1.2.3:2575", accession.as_str(), "pending", 0)
    );
    let oru = &row.payload;
    assert!(Message::parse_strict(oru).is_ok(), "{}", String::from_utf8_lossy(oru));
    assert_eq!(field(oru, "MSH-9"), "ORU^R01^ORU_R01");
    assert_eq!(field(oru, "MSH-10"), row.control_id);
    assert_eq!(field(oru, "MSH-12"), "2.5.1");
    assert_eq!(field(oru, "PID-3-1"), "F2002");
    assert_eq!(field(oru, "PID-5"), "Lindqvist^Sam");
    assert_eq!((field(oru, "PID-7"), field(oru, "PID-8")), ("19700301".into(), "F".into()));
    assert_eq!(field(oru, "ORC-1"), "RE");
    assert_eq!(field(oru, "ORC-2"), "PL-7", "the placer's number");
    assert_eq!(field(oru, "ORC-3-1"), accession);
    assert_eq!(field(oru, "OBR-2"), "PL-7");
    assert_eq!(field(oru, "OBR-4"), "2823-3^Potassium^LN^K^Potassium^L");
    assert_eq!(field(oru, "OBR-25"), "F");
    assert_eq!(segments(oru, "OBX"), 1);
    assert_eq!(field(oru, "OBX-2"), "NM");
    assert_eq!(field(oru, "OBX-3-1"), "2823-3");
    assert_eq!(field(oru, "OBX-3-3"), "LN");
    assert_eq!(field(oru, "OBX-5"), "5.6");
    assert_eq!(field(oru, "OBX-6-1"), "mmol/L");
    assert_eq!(field(oru, "OBX-7"), "3.5-5.1");
    assert_eq!(field(oru, "OBX-8"), "H");
    assert_eq!(field(oru, "OBX-11"), "F");
    let when = |at: cuvette_domain::time::Timestamp| {
        at.to_jiff().unwrap().strftime("%Y%m%d%H%M%S+0000").to_string()
    };
    assert_eq!(field(oru, "OBX-14"), when(collected), "observed when collected");
    assert_eq!(field(oru, "OBR-7"), when(collected));
    assert_eq!(field(oru, "OBX-19"), when(lab.now_at()), "analysed when entered");
}

#[tokio::test]
async fn one_release_of_several_tests_queues_one_message_per_specimen() {
    let lab = lab_sending_results().await;
    let patient = lab.adult_woman().await;
    let placed = lab.received(&patient, &["K", "CRP"]).await;
    assert_eq!(placed.specimens.len(), 1, "K and CRP share a tube");
    let technician = lab.technician().await;
    lab.enter_all(&technician, &patient, &[("K", "4.2"), ("CRP", "0.3")]).await.unwrap();
    let k = lab.test(&patient, "K").await;
    let crp = lab.test(&patient, "CRP").await;

    let outcomes = lab
        .release(
            &lab.technologist().await,
            &[(k.test.id, k.test.row_version), (crp.test.id, crp.test.row_version)],
            TestStatus::Final,
        )
        .await
        .unwrap();
    outcomes.iter().for_each(assert_released);

    let queued = outbox(&lab).await;
    assert_eq!(queued.len(), 1, "one message for the specimen, not one per test");
    let oru = &queued[0].payload;
    assert_eq!(segments(oru, "OBR"), 2, "each test ordered on its own has its OBR");
    assert_eq!(field(oru, "ORC-2"), "", "no placer number for an order placed at the lab");
    assert_eq!(field(oru, "OBX(1)-5"), "4.2");
    assert_eq!(field(oru, "OBX(1)-8"), "N");
    // Below the measuring range 0.5: reported "<0.5", sent as structured numeric.
    assert_eq!(field(oru, "OBX(2)-2"), "SN");
    assert_eq!(field(oru, "OBX(2)-5"), "<^0.5");
    assert_eq!(field(oru, "OBX(2)-3"), "1988-5^C-reactive protein^LN^CRP^C-reactive protein^L");
    assert_eq!(field(oru, "OBX(2)-8"), "<");
}

#[tokio::test]
async fn a_preliminary_release_is_sent_p_and_its_correction_c() {
    let lab = lab_sending_results().await;
    let (patient, _) = ordered_from_the_ehr(&lab).await;
    let technologist = lab.technologist().await;
    lab.enter(&lab.technician().await, &patient, "K", "4.1").await.unwrap();

    assert_released(&lab.verify_as(&technologist, &patient, "K", TestStatus::Preliminary).await);
    assert_released(&lab.verify(&technologist, &patient, "K").await);
    // Corrected after the final report, signed.
    let k = lab.test(&patient, "K").await;
    let entry = cuvette_app::EnteredResult {
        ordered_test_id: k.test.id,
        row_version: k.test.row_version,
        text: "4.4".into(),
    };
    let correction =
        Correction { reason: "transcription error".into(), signature: PASSWORD.into() };
    lab.enter_results(&technologist, &[entry], Some(&correction)).await.unwrap();
    assert_released(&lab.verify(&technologist, &patient, "K").await);

    let queued = outbox(&lab).await;
    assert_eq!(queued.len(), 3, "preliminary, final, corrected");
    let sent: Vec<(String, String, String)> = queued
        .iter()
        .map(|r| {
            (field(&r.payload, "OBX-5"), field(&r.payload, "OBX-11"), field(&r.payload, "OBR-25"))
        })
        .collect();
    assert_eq!(
        sent,
        [
            ("4.1".into(), "P".into(), "P".into()),
            ("4.1".into(), "F".into(), "F".into()),
            ("4.4".into(), "C".into(), "C".into()),
        ]
    );
    let ids: std::collections::BTreeSet<_> = queued.iter().map(|r| &r.control_id).collect();
    assert_eq!(ids.len(), 3, "each message has its own control id");
}

#[tokio::test]
async fn nothing_is_queued_without_an_ehr_or_when_the_release_is_held() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&lab.technician().await, &patient, "K", "4.2").await.unwrap();
    assert_released(&lab.verify(&lab.technologist().await, &patient, "K").await);
    assert!(outbox(&lab).await.is_empty(), "no EHR configured");

    let lab = lab_sending_results().await;
    let patient = lab.adult_woman().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&lab.technician().await, &patient, "K", "6.9").await.unwrap();
    let held = lab.verify(&lab.technologist().await, &patient, "K").await;
    assert!(held_reason(&held).contains("critical"), "{held:?}");
    assert!(outbox(&lab).await.is_empty(), "a held result is not sent");
}

#[tokio::test]
async fn an_inr_ordered_by_loinc_is_the_measured_one_and_by_code_the_one_calculated_from_the_pt() {
    let lab = lab_sending_results().await;
    ehr(&lab).await;
    let (outcome, _) = interop::hl7::receive(
        &lab,
        &oml(
            "OML0200",
            PID_OKAFOR,
            &[("PL-31", "6301-6^INR^LN"), ("PL-32", "INR_CALC^INR from PT^L")],
        ),
        "mllp:2575",
        "peer",
    )
    .await
    .unwrap();
    let Ingested::Ordered { orders, .. } = &outcome else { panic!("{outcome:?}") };
    // 6301-6 names both the analyzer's INR and the one Cuvette calculates: the measured test
    // wins, and the EHR asks for the calculation by its code.
    assert_eq!(orders[0].specimens[0].tests, ["INR"]);
    assert_eq!(orders[1].specimens[0].tests, ["PT", "INR_CALC"]);

    let accession = orders[1].specimens[0].accession.clone();
    lab.collect_and_receive(&accession).await;
    let patient = lab.patient_of(&accession).await;
    let technologist = lab.technologist().await;
    lab.enter(&technologist, &patient, "PT", "24.0").await.unwrap();
    assert_released(&lab.verify(&technologist, &patient, "PT").await);
    assert_released(&lab.verify(&technologist, &patient, "INR_CALC").await);

    // The PT and its INR go out under one OBR naming what was ordered.
    let queued = outbox(&lab).await;
    let oru = &queued.last().expect("a result message").payload;
    assert_eq!(segments(oru, "OBR"), 1, "{}", String::from_utf8_lossy(oru));
    assert_eq!(field(oru, "OBR-2"), "PL-32");
    assert_eq!(field(oru, "OBR-4-1"), "6301-6");
    assert_eq!(field(oru, "OBR-4-4"), "INR_CALC");
    assert_eq!(segments(oru, "OBX"), 2);
    assert_eq!(field(oru, "OBX(2)-5"), "2.0");
}
