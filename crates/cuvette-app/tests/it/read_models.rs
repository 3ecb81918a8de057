//! What the bench reads beside the use cases: the previous result of each test, the calls of
//! every critical result on a page, the recollection of a rejected specimen and the QC set-up.
//! Each checks the reader's privilege before it reads anything.

use crate::support::*;

#[tokio::test]
async fn the_previous_column_shows_the_latest_released_value_from_an_earlier_specimen() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let (tech, mls) = (lab.technician().await, lab.technologist().await);
    lab.received(&patient, &["K"]).await;
    lab.enter(&tech, &patient, "K", "4.1").await.unwrap();
    assert_released(&lab.verify(&mls, &patient, "K").await);
    lab.clock.advance(minutes(24 * 60));
    let yesterday = lab.received(&patient, &["K"]).await;
    lab.enter(&tech, &patient, "K", "5.4").await.unwrap();
    assert_released(&lab.verify(&mls, &patient, "K").await);
    lab.clock.advance(minutes(24 * 60));
    // Entered but never released: not a previous result.
    lab.received(&patient, &["K"]).await;
    lab.enter(&tech, &patient, "K", "3.9").await.unwrap();
    lab.clock.advance(minutes(60));
    let today = lab.received(&patient, &["K"]).await;

    let view = lab.specimen_view(&mls, &today.specimens[0].accession).await.unwrap();
    let previous = lab.previous_results(&mls, &view).await.unwrap();

    let k = &previous["K"];
    assert_eq!((k.result.report_text.as_str(), k.result.flags.codes().as_str()), ("5.4", "H"));
    let drawn = lab.specimen(&yesterday.specimens[0].accession).await.collected_at;
    assert_eq!(Some(k.collected_at), drawn, "the earlier specimen's collection time");
    assert_eq!(previous.len(), 1, "only the tests on this specimen");
}

#[tokio::test]
async fn the_calls_of_every_critical_result_on_the_page_are_read_together() {
    let lab = lab().await;
    let (tech, mls) = (lab.technician().await, lab.technologist().await);
    let (woman, man) = (lab.adult_woman().await, lab.adult_man().await);
    for patient in [&woman, &man] {
        lab.received(patient, &["K"]).await;
        lab.enter(&tech, patient, "K", "6.9").await.unwrap();
    }
    lab.call_provider(&mls, &woman, "K", false).await; // nobody answered
    lab.call_provider(&mls, &woman, "K", true).await;
    lab.call_provider(&mls, &man, "K", true).await;
    let (hers, his) = (lab.test(&woman, "K").await.test.id, lab.test(&man, "K").await.test.id);

    let calls = lab.critical_calls_of_tests(&mls, &[hers, his]).await.unwrap();

    let of = |id: i64| calls.iter().filter(|c| c.ordered_test_id == id).count();
    assert_eq!((of(hers), of(his)), (2, 1));
    assert!(calls.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    assert!(lab.critical_calls_of_tests(&mls, &[]).await.unwrap().is_empty());
    // The specimen view carries the same calls with each test.
    let accession = lab.test(&woman, "K").await.specimen.accession;
    let view = lab.specimen_view_of_test(&mls, hers).await.unwrap();
    assert_eq!(view.specimen.accession, accession);
    assert_eq!(view.tests[0].calls.len(), 2);
}

#[tokio::test]
async fn a_rejected_specimen_names_the_recollection_that_replaces_it() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let placed = lab.received(&patient, &["K"]).await;
    let accession = &placed.specimens[0].accession;
    let mls = lab.technologist().await;
    assert_eq!(lab.specimen_view(&mls, accession).await.unwrap().recollection, None);

    let assistant = lab.lab_assistant().await;
    let recollection = lab.reject(&assistant, accession, "hemolyzed", "pink serum").await.unwrap();

    let view = lab.specimen_view(&mls, accession).await.unwrap();
    assert_eq!(view.recollection, Some(recollection.clone()));
    let new = lab.specimen_view(&mls, &recollection).await.unwrap();
    assert_eq!(new.recollection, None, "the recollection itself was not rejected");
}

#[tokio::test]
async fn those_who_may_not_view_results_are_refused_before_anything_is_read() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let placed = lab.received(&patient, &["K"]).await;
    let mls = lab.technologist().await;
    let view = lab.specimen_view(&mls, &placed.specimens[0].accession).await.unwrap();
    let test_id = view.tests[0].item.test.id;
    let phlebotomist = lab.phlebotomist().await;

    for refusal in [
        forbidden(lab.previous_results(&phlebotomist, &view).await),
        forbidden(lab.critical_calls_of_tests(&phlebotomist, &[test_id]).await),
        forbidden(lab.specimen_view_of_test(&phlebotomist, test_id).await),
        forbidden(lab.qc_materials(&phlebotomist).await),
        forbidden(lab.qc_targets(&phlebotomist, None, None).await),
        forbidden(lab.moving_average_rules(&phlebotomist).await),
    ] {
        assert!(refusal.contains("may not view results"), "{refusal}");
    }
    let refusal = forbidden(lab.verify_audit(&phlebotomist).await);
    assert!(refusal.contains("may not"), "{refusal}");
    assert!(matches!(
        lab.verify_audit(&lab.supervisor().await).await.unwrap(),
        cuvette_app::records::AuditVerification::Intact { .. }
    ));
}
