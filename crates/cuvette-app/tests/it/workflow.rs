//! Ordering and the life of a routine sample: order, accession, draw, receive, work, report.

use cuvette_app::PatientQuery;
use cuvette_domain::Accession;
use cuvette_domain::workflow::TestStatus;

use crate::support::*;

// Tubes by the first container the catalog lists for a test.
const SST: &str = "SST (gold)";
const LAVENDER: &str = "K2EDTA (lavender)";
const LIGHT_BLUE: &str = "3.2% sodium citrate (light blue)";

#[tokio::test]
async fn a_routine_potassium_goes_from_order_to_report() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;

    let placed = lab.order(&patient, &["K"]).await;
    assert_eq!(placed.specimens.len(), 1);
    assert_eq!(placed.specimens[0].tests, ["K"]);
    lab.collect_and_receive(&placed.specimens[0].accession).await;

    let bench = lab.worklist(&technician, Some("chemistry")).await.unwrap();
    assert_eq!(bench.len(), 1);
    assert_eq!((bench[0].test.test_code.as_str(), bench[0].test.status.code()), ("K", "received"));

    let saved = lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].evaluation.flag_codes(), "");
    assert_eq!(saved[0].evaluation.interval, "3.5–5.1");
    assert_released(&lab.verify(&technician, &patient, "K").await);

    let report = lab.cumulative_report(&technician, patient.id).await.unwrap();
    assert_eq!(report.rows.len(), 1);
    let released = report.rows[0].test.released().expect("released");
    assert_eq!(released.report_text, "4.2");
    assert_eq!(released.unit, "mmol/L");
    assert_eq!(released.reference_interval, "3.5–5.1");
    assert_eq!(released.release_status.map(|s| s.code()), Some("final"));
    assert_eq!(released.released_by.as_deref(), Some("technician"));
    assert_eq!(report.rows[0].test.item.test.status.code(), "final");
    assert!(
        lab.worklist(&technician, None).await.unwrap().is_empty(),
        "a released test leaves the bench"
    );
    assert!(lab.review_queue(&technician).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_order_groups_tests_by_container_into_specimens() {
    let lab = lab().await;
    let patient = lab.adult_man().await;

    let placed = lab.order(&patient, &["NA", "HGB", "K", "PT", "WBC"]).await;

    let tubes: Vec<(&str, Vec<&str>)> = placed
        .specimens
        .iter()
        .map(|s| (s.container.as_str(), s.tests.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        tubes,
        [(SST, vec!["NA", "K"]), (LAVENDER, vec!["HGB", "WBC"]), (LIGHT_BLUE, vec!["PT"])]
    );
    let mut accessions: Vec<&str> = placed.specimens.iter().map(|s| s.accession.as_str()).collect();
    accessions.dedup();
    assert_eq!(accessions.len(), 3, "one accession number per tube");
    for s in &placed.specimens {
        let specimen = lab.specimen(&s.accession).await;
        assert_eq!(
            (specimen.status.code(), specimen.container.as_str()),
            ("pending", s.container.as_str())
        );
    }
}

#[tokio::test]
async fn a_panel_drawn_in_one_tube_gets_one_accession_number() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let mut extra_tubes = Vec::new();
    for panel in ["BMP", "CMP", "CBC", "UA"] {
        let placed = lab.order(&patient, &[panel]).await;
        if placed.specimens.len() != 1 {
            let tubes: Vec<String> =
                placed.specimens.iter().map(|s| format!("{} {:?}", s.container, s.tests)).collect();
            extra_tubes.push(format!("{panel}: {}", tubes.join(" + ")));
        }
    }
    assert!(extra_tubes.is_empty(), "panels split over several tubes:\n{}", extra_tubes.join("\n"));
}

#[tokio::test]
async fn accession_numbers_count_up_within_the_year_and_carry_a_check_digit() {
    let lab = lab().await;
    let patient = lab.adult_man().await;

    let first = lab.order(&patient, &["K"]).await.specimens[0].accession.clone();
    let second = lab.order(&patient, &["HGB"]).await.specimens[0].accession.clone();

    let (a, b) = (Accession::parse(&first).unwrap(), Accession::parse(&second).unwrap());
    assert_eq!((a.year(), a.sequence()), (26, 1));
    assert_eq!((b.year(), b.sequence()), (26, 2));
    assert_eq!(first, a.to_string(), "printed as the label shows it");
}

#[tokio::test]
async fn orders_placed_at_the_same_moment_get_distinct_accession_numbers() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let phlebotomist = lab.phlebotomist().await;
    let form = order_form(patient.id, &["K", "HGB"]);

    let order = || lab.place_order(&phlebotomist, &form);

    let (a, b, c, d) = tokio::join!(order(), order(), order(), order());

    let mut sequences: Vec<u32> = [a, b, c, d]
        .into_iter()
        .flat_map(|p| p.expect("every order is placed").specimens)
        .map(|s| Accession::parse(&s.accession).unwrap().sequence())
        .collect();
    sequences.sort();
    assert_eq!(sequences, (1..=8).collect::<Vec<u32>>());
    lab.audit_count().await; // the chain verifies
}

#[tokio::test]
async fn accession_numbers_start_again_each_year() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    lab.order(&patient, &["K"]).await;
    lab.order(&patient, &["K"]).await;

    lab.clock.set("2027-01-01T00:05:00Z".parse().unwrap());
    let new_year = lab.order(&patient, &["K"]).await.specimens[0].accession.clone();

    let a = Accession::parse(&new_year).unwrap();
    assert_eq!((a.year(), a.sequence()), (27, 1));
}

#[tokio::test]
async fn the_bench_worklist_holds_a_test_from_receipt_until_release() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    let on_bench = async || lab.worklist(&technician, Some("chemistry")).await.unwrap().len();

    let accession = lab.order(&patient, &["K"]).await.specimens[0].accession.clone();
    assert_eq!(on_bench().await, 0, "ordered: not yet in the lab");
    lab.draw(&accession).await;
    assert_eq!(on_bench().await, 0, "collected: still on its way");
    let assistant = lab.lab_assistant().await;
    lab.receive(&assistant, &accession, &identity(&patient)).await.unwrap();
    assert_eq!(on_bench().await, 1, "received: on the bench");
    lab.enter(&technician, &patient, "K", "4.0").await.unwrap();
    assert_eq!(on_bench().await, 1, "in process: still on the bench");
    assert_eq!(lab.test(&patient, "K").await.test.status.code(), "in_process");
    assert_released(&lab.verify(&technician, &patient, "K").await);
    assert_eq!(on_bench().await, 0, "released: done");
}

#[tokio::test]
async fn each_bench_sees_only_its_own_tests() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K", "HGB"]).await;

    let chemistry: Vec<String> = lab
        .worklist(&technician, Some("chemistry"))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.test.test_code)
        .collect();
    let hematology: Vec<String> = lab
        .worklist(&technician, Some("hematology"))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.test.test_code)
        .collect();
    assert_eq!(chemistry, ["K"]);
    assert_eq!(hematology, ["HGB"]);
    assert_eq!(
        lab.worklist(&technician, None).await.unwrap().len(),
        2,
        "no bench chosen: every bench"
    );
}

#[tokio::test]
async fn a_stat_order_comes_first_on_the_worklist() {
    let lab = lab().await;
    let routine = lab.adult_woman().await;
    let urgent = lab.adult_man().await;
    let technician = lab.technician().await;

    lab.received(&routine, &["K"]).await;
    lab.clock.advance(minutes(30));
    let stat = lab.order_stat(&urgent, &["K"]).await;
    lab.collect_and_receive(&stat.specimens[0].accession).await;
    lab.clock.advance(minutes(1));
    lab.received(&routine, &["NA"]).await;

    let order: Vec<(String, String)> = lab
        .worklist(&technician, None)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.patient.mrn, i.test.test_code))
        .collect();
    let expected = [("M1001", "K"), ("F2002", "K"), ("F2002", "NA")];
    assert_eq!(
        order,
        expected.map(|(m, c)| (m.to_owned(), c.to_owned())),
        "STAT first, then the oldest specimen"
    );
    assert_eq!(lab.worklist(&technician, None).await.unwrap()[0].order.priority.code(), "stat");
}

#[tokio::test]
async fn the_collection_list_shows_each_tube_to_draw_once() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let phlebotomist = lab.phlebotomist().await;
    let placed = lab.order(&patient, &["NA", "K", "CL", "HGB", "WBC"]).await;

    let to_draw: Vec<String> = lab
        .collection_list(&phlebotomist)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.item.specimen.accession)
        .collect();
    let expected: Vec<String> = placed.specimens.iter().map(|s| s.accession.clone()).collect();
    assert_eq!(to_draw, expected);

    lab.draw(&placed.specimens[0].accession).await;
    let to_draw: Vec<String> = lab
        .collection_list(&phlebotomist)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.item.specimen.accession)
        .collect();
    assert_eq!(to_draw, [placed.specimens[1].accession.clone()]);
}

#[tokio::test]
async fn patients_are_found_by_mrn_name_or_date_of_birth() {
    let lab = lab().await;
    let man = lab.adult_man().await;
    let woman = lab.adult_woman().await;
    let clerk = lab.phlebotomist().await;
    let search = async |text: &str| -> Vec<String> {
        lab.search_patients(&clerk, &PatientQuery { text: text.into() })
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.mrn)
            .collect()
    };

    assert_eq!(search("m1001").await, [man.mrn.as_str()], "a scanned MRN in any case");
    assert_eq!(search("okaf").await, [man.mrn.as_str()], "the start of the family name");
    assert_eq!(search("Okafor, S").await, [man.mrn.as_str()], "family, given");
    assert_eq!(
        search("Lindqvist 1970-03-01").await,
        [woman.mrn.as_str()],
        "name and date of birth"
    );
    assert_eq!(
        search("01-Mar-1970").await,
        [woman.mrn.as_str()],
        "a date of birth alone, as printed"
    );
    assert!(
        search("Lindqvist 1971-03-01").await.is_empty(),
        "the wrong date of birth finds no one"
    );
    assert!(search("   ").await.is_empty());
    assert!(search("%").await.is_empty(), "a wildcard is a character, not a pattern");
    assert!(search("_kafor").await.is_empty());
}

#[tokio::test]
async fn a_patient_with_an_accented_name_is_found_by_it() {
    let lab = lab().await;
    let patient = lab.register("N3003", "Øvergård", "1980-05-05", "F").await;
    let clerk = lab.phlebotomist().await;

    for text in ["Øvergård", "øvergård", "Øver"] {
        let found = lab.search_patients(&clerk, &PatientQuery { text: text.into() }).await.unwrap();
        assert_eq!(found.len(), 1, "searching {text:?}");
        assert_eq!(found[0].id, patient.id);
    }
}

#[tokio::test]
async fn a_patients_orders_list_their_specimens() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let clerk = lab.phlebotomist().await;
    let placed = lab.order_stat(&patient, &["K", "HGB"]).await;

    let orders = lab.patient_orders(&clerk, patient.id).await.unwrap();
    assert_eq!(orders.len(), 1);
    let (order, specimens) = &orders[0];
    assert_eq!(
        (order.id, order.provider.as_str(), order.priority.code()),
        (placed.order_id, PROVIDER, "stat")
    );
    assert_eq!(order.ordered_by, "phlebotomist");
    let accessions: Vec<&str> = specimens.iter().map(|s| s.accession.as_str()).collect();
    assert_eq!(
        accessions,
        placed.specimens.iter().map(|s| s.accession.as_str()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn open_tests_are_counted_per_bench_and_status() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let clerk = lab.phlebotomist().await;
    let placed = lab.order(&patient, &["NA", "K", "HGB"]).await;
    lab.collect_and_receive(&placed.specimens[0].accession).await;

    let mut counts = lab.open_counts(&clerk).await.unwrap();
    counts.sort();
    let expected = [("chemistry", TestStatus::Received, 2), ("hematology", TestStatus::Ordered, 1)];
    assert_eq!(counts, expected.map(|(b, s, n)| (b.to_owned(), s, n)));
    assert_eq!(lab.test(&patient, "HGB").await.test.status, TestStatus::Ordered);
}
