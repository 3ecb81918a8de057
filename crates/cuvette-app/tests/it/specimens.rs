//! Specimens: drawing, receipt with two identifiers, rejection and recollection.

use cuvette_app::records::AuditFilter;
use cuvette_app::{EnteredResult, IdentityCheck};
use cuvette_domain::Accession;
use cuvette_domain::workflow::TestStatus;

use crate::support::*;

#[tokio::test]
async fn receipt_checks_two_identifiers() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let assistant = lab.lab_assistant().await;
    let placed = lab.order(&patient, &["K", "HGB"]).await;
    let (serum, blood) = (&placed.specimens[0].accession, &placed.specimens[1].accession);
    lab.draw(serum).await;
    lab.draw(blood).await;

    let mrn_only = IdentityCheck { mrn: Some(patient.mrn.clone()), ..Default::default() };
    let message = invalid(lab.receive(&assistant, serum, &mrn_only).await, "identifiers");
    assert!(message.contains("two identifiers"), "{message}");
    let birth_date_only =
        IdentityCheck { birth_date: Some(patient.birth_date.clone()), ..Default::default() };
    invalid(lab.receive(&assistant, serum, &birth_date_only).await, "identifiers");
    let blank = IdentityCheck {
        mrn: Some("  ".into()),
        birth_date: Some(String::new()),
        family_name: None,
    };
    invalid(lab.receive(&assistant, serum, &blank).await, "identifiers");
    assert_eq!(
        lab.specimen(serum).await.status.code(),
        "collected",
        "not received on one identifier"
    );

    let received = lab.receive(&assistant, serum, &identity(&patient)).await.unwrap();
    assert_eq!(
        (received.status.code(), received.received_by.as_deref()),
        ("received", Some("lab_assistant"))
    );
    let mrn_and_name = IdentityCheck {
        mrn: Some(patient.mrn.to_lowercase()),
        family_name: Some("OKAFOR".into()),
        birth_date: None,
    };
    lab.receive(&assistant, blood, &mrn_and_name).await.unwrap();
    assert_eq!(lab.specimen(blood).await.status.code(), "received");
    assert_eq!(lab.test(&patient, "K").await.test.status.code(), "received");
}

#[tokio::test]
async fn a_label_that_does_not_match_the_patient_is_not_received() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let other = lab.adult_woman().await;
    let assistant = lab.lab_assistant().await;
    let accession = lab.order(&patient, &["K"]).await.specimens[0].accession.clone();
    lab.draw(&accession).await;
    let events = lab.audit_count().await;

    let wrong_birth_date =
        IdentityCheck { birth_date: Some("1976-06-02".into()), ..identity(&patient) };
    let message =
        invalid(lab.receive(&assistant, &accession, &wrong_birth_date).await, "birth_date");
    assert!(message.contains("reject as mislabeled"), "{message}");
    let someone_elses_mrn = IdentityCheck { mrn: Some(other.mrn.clone()), ..identity(&patient) };
    invalid(lab.receive(&assistant, &accession, &someone_elses_mrn).await, "mrn");
    let wrong_name = IdentityCheck { family_name: Some("Okafo".into()), ..identity(&patient) };
    invalid(lab.receive(&assistant, &accession, &wrong_name).await, "family_name");

    assert_eq!(lab.specimen(&accession).await.status.code(), "collected");
    assert_eq!(lab.test(&patient, "K").await.test.status.code(), "collected");
    let refusals = lab
        .audit_trail(AuditFilter { actor: Some(assistant.name.clone()), ..Default::default() })
        .await;
    assert_eq!(
        refusals.iter().filter(|e| e.action.code() == "specimen.receive_refused").count(),
        3,
        "each refusal is on record"
    );
    assert_eq!(lab.audit_count().await, events + 3, "and nothing else was written");
}

#[tokio::test]
async fn receipt_matches_a_family_name_in_capitals_in_any_alphabet() {
    let lab = lab().await;
    let patient = lab.register("N3003", "Øvergård", "1980-05-05", "F").await;
    let assistant = lab.lab_assistant().await;
    let accession = lab.order(&patient, &["K"]).await.specimens[0].accession.clone();
    lab.draw(&accession).await;

    let label = IdentityCheck {
        mrn: Some(patient.mrn.clone()),
        family_name: Some("ØVERGÅRD".into()),
        birth_date: None,
    };
    lab.receive(&assistant, &accession, &label).await.expect("the same name, in capitals");
}

#[tokio::test]
async fn a_specimen_is_drawn_before_it_is_received() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let assistant = lab.lab_assistant().await;
    let accession = lab.order(&patient, &["K"]).await.specimens[0].accession.clone();

    let message = refused(lab.receive(&assistant, &accession, &identity(&patient)).await);
    assert!(message.contains("record the collection"), "{message}");
    assert_eq!(lab.specimen(&accession).await.status.code(), "pending");
}

#[tokio::test]
async fn a_specimen_is_drawn_and_received_once() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let phlebotomist = lab.phlebotomist().await;
    let assistant = lab.lab_assistant().await;
    let accession = lab.order(&patient, &["K"]).await.specimens[0].accession.clone();
    let drawn = lab.draw(&accession).await;
    assert_eq!(
        (drawn.collected_by.as_deref(), drawn.collected_at),
        (Some("phlebotomist"), Some(lab.now_at()))
    );

    assert!(refused(lab.collect(&phlebotomist, &accession).await).contains("already collected"));
    lab.receive(&assistant, &accession, &identity(&patient)).await.unwrap();
    assert!(
        refused(lab.receive(&assistant, &accession, &identity(&patient)).await)
            .contains("already received")
    );
    assert!(refused(lab.collect(&phlebotomist, &accession).await).contains("already collected"));
}

#[tokio::test]
async fn results_wait_for_the_specimen_to_be_received() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    let accession = lab.order(&patient, &["K"]).await.specimens[0].accession.clone();
    lab.draw(&accession).await;
    let k = lab.test(&patient, "K").await;

    let message = invalid(
        lab.enter(&technician, &patient, "K", "4.2").await,
        &format!("result_{}", k.test.id),
    );
    assert!(message.contains("receive this specimen"), "{message}");
    assert!(lab.versions(&patient, "K").await.is_empty());
}

#[tokio::test]
async fn a_rejected_specimen_takes_no_results() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    let assistant = lab.lab_assistant().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    let k = lab.test(&patient, "K").await;
    lab.reject(&assistant, &accession, "hemolyzed", "pink serum").await.unwrap();
    let events = lab.audit_count().await;

    let cancelled = lab.store().ordered_test(k.test.id).await.unwrap();
    assert_eq!(cancelled.status.code(), "cancelled");
    let late = EnteredResult {
        ordered_test_id: k.test.id,
        row_version: cancelled.row_version,
        text: "4.2".into(),
    };
    let message = invalid(
        lab.enter_results(&technician, &[late], None).await,
        &format!("result_{}", k.test.id),
    );
    assert!(message.contains("rejected") && message.contains("recollected"), "{message}");

    assert!(
        lab.store().results_of_tests(&[k.test.id]).await.unwrap().is_empty(),
        "no result on the rejected tube"
    );
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn rejecting_a_specimen_orders_a_recollection_of_the_same_tests() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let assistant = lab.lab_assistant().await;
    let technologist = lab.technologist().await;
    let phlebotomist = lab.phlebotomist().await;
    let accession = lab.received(&patient, &["NA", "K"]).await.specimens[0].accession.clone();

    let recollection =
        lab.reject(&assistant, &accession, "hemolyzed", "grossly hemolyzed").await.unwrap();
    let actions = lab.audit_actions_for(&patient).await;
    assert!(
        actions.ends_with(&["specimen.reject".into(), "specimen.recollect".into()]),
        "{actions:?}"
    );
    assert_ne!(recollection, accession);
    Accession::parse(&recollection).expect("a valid accession number");

    let rejected = lab.specimen_view(&technologist, &accession).await.unwrap();
    assert_eq!(rejected.specimen.status.code(), "rejected");
    assert_eq!(rejected.specimen.reject_reason.map(|r| r.code()), Some("hemolyzed"));
    assert_eq!(rejected.specimen.reject_note.as_deref(), Some("grossly hemolyzed"));
    assert_eq!(rejected.specimen.rejected_by.as_deref(), Some("lab_assistant"));
    assert!(rejected.tests.iter().all(|t| t.item.test.status.code() == "cancelled"));

    let new = lab.specimen_view(&technologist, &recollection).await.unwrap();
    assert_eq!(new.specimen.recollection_of, Some(rejected.specimen.id));
    assert_eq!(
        (new.specimen.status.code(), new.specimen.container.as_str()),
        ("pending", rejected.specimen.container.as_str())
    );
    assert_eq!(new.order.id, rejected.order.id, "the same order");
    let tests: Vec<(&str, &str)> = new
        .tests
        .iter()
        .map(|t| (t.item.test.test_code.as_str(), t.item.test.status.code()))
        .collect();
    assert_eq!(tests, [("NA", "ordered"), ("K", "ordered")]);

    let to_draw: Vec<String> = lab
        .collection_list(&phlebotomist)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.item.specimen.accession)
        .collect();
    assert_eq!(to_draw, [recollection.as_str()]);
}

#[tokio::test]
async fn a_rejected_specimen_is_not_drawn_received_or_rejected_again() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let phlebotomist = lab.phlebotomist().await;
    let assistant = lab.lab_assistant().await;
    let accession = lab.order(&patient, &["K"]).await.specimens[0].accession.clone();
    lab.reject(&assistant, &accession, "mislabeled", "no label").await.unwrap();

    for message in [
        refused(lab.collect(&phlebotomist, &accession).await),
        refused(lab.receive(&assistant, &accession, &identity(&patient)).await),
        refused(lab.reject(&assistant, &accession, "clotted", "").await),
    ] {
        assert!(message.contains("rejected; use the recollected specimen"), "{message}");
    }
}

#[tokio::test]
async fn a_specimen_with_released_results_is_not_rejected() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    let assistant = lab.lab_assistant().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    assert_released(&lab.verify(&technician, &patient, "K").await);

    let message = refused(lab.reject(&assistant, &accession, "hemolyzed", "").await);
    assert!(message.contains("correct them instead"), "{message}");
    assert_eq!(lab.specimen(&accession).await.status.code(), "received");
}

#[tokio::test]
async fn a_result_on_a_rejected_specimen_is_never_released() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technologist = lab.technologist().await;
    let assistant = lab.lab_assistant().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    lab.enter(&technologist, &patient, "K", "6.1").await.unwrap();
    lab.reject(&assistant, &accession, "hemolyzed", "K falsely raised by hemolysis").await.unwrap();

    let view = lab.specimen_view(&technologist, &accession).await.unwrap();
    let k = &view.tests[0].item;
    assert_eq!(k.test.status.code(), "cancelled");
    let outcome = lab
        .release(&technologist, &[(k.test.id, k.test.row_version)], TestStatus::Final)
        .await
        .unwrap();

    held_reason(&outcome[0]);
    let cancelled = lab.store().results_of_tests(&[k.test.id]).await.unwrap();
    assert_eq!(cancelled[0].released_at, None, "the hemolyzed value never reaches the report");
    assert_eq!(lab.store().ordered_test(k.test.id).await.unwrap().status.code(), "cancelled");
}

#[tokio::test]
async fn a_mistyped_accession_number_is_caught_by_its_check_digit() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let phlebotomist = lab.phlebotomist().await;
    let accession = lab.order(&patient, &["K"]).await.specimens[0].accession.clone();
    let last = accession.chars().last().unwrap().to_digit(10).unwrap();
    let mistyped = format!("{}{}", &accession[..accession.len() - 1], (last + 1) % 10);

    let message = invalid(lab.collect(&phlebotomist, &mistyped).await, "accession");
    assert!(message.contains("check digit"), "{message}");
    invalid(lab.collect(&phlebotomist, "26-ABC").await, "accession");
    assert_eq!(lab.specimen(&accession).await.status.code(), "pending");
    let scanned: String = accession.chars().filter(char::is_ascii_digit).collect();
    lab.collect(&phlebotomist, &scanned)
        .await
        .expect("a scanned barcode without hyphens is the same number");
}

#[tokio::test]
async fn an_accession_number_never_issued_is_not_found() {
    let lab = lab().await;
    let phlebotomist = lab.phlebotomist().await;
    let never = Accession::new(26, 4242).unwrap().to_string();

    assert!(not_found(lab.collect(&phlebotomist, &never).await).contains(&never));
    not_found(lab.specimen_view(&phlebotomist, &never).await);
}

#[tokio::test]
async fn a_phlebotomist_sees_what_to_draw_but_not_the_results() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let phlebotomist = lab.phlebotomist().await;
    let technician = lab.technician().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    let events = lab.audit_count().await;

    let view = lab.specimen_view(&phlebotomist, &accession).await.unwrap();
    assert_eq!(view.tests.len(), 1);
    assert_eq!(view.tests[0].item.test.test_code, "K");
    assert!(
        view.tests[0].item.result.is_none() && view.tests[0].versions.is_empty(),
        "no result shown"
    );
    assert_eq!(lab.audit_count().await, events, "no result was seen, so no view is recorded");

    let view = lab.specimen_view(&technician, &accession).await.unwrap();
    assert_eq!(view.tests[0].item.result.as_ref().map(|r| r.value_text.as_str()), Some("4.2"));
    assert_eq!(view.tests[0].versions.len(), 1);
}
