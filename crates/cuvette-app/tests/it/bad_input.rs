//! Bad input gets a clear error naming the field, and loses nothing: no row and no audit
//! event is written, and what was there before is still there.

use cuvette_app::autoverify::RuleSetForm;
use cuvette_app::qc::MovingAverageForm;
use cuvette_app::{CriticalCall, EnteredResult, PatientQuery, PlaceOrder, RegisterPatient};

use crate::support::*;

fn registration(mrn: &str, family_name: &str, birth_date: &str, sex: &str) -> RegisterPatient {
    RegisterPatient {
        mrn: mrn.into(),
        family_name: family_name.into(),
        given_name: "Sam".into(),
        birth_date: birth_date.into(),
        sex: sex.into(),
    }
}

/// How many patients a search for `text` finds.
async fn found(lab: &TestLab, text: &str) -> usize {
    let clerk = lab.phlebotomist().await;
    lab.search_patients(&clerk, &PatientQuery { text: text.into() }).await.unwrap().len()
}

// ---- registration ----

#[tokio::test]
async fn a_birth_date_in_the_future_is_refused() {
    let lab = lab().await;
    let clerk = lab.phlebotomist().await;
    let events = lab.audit_count().await;

    let message = invalid(
        lab.register_patient(&clerk, &registration("P1", "Okafor", "2026-11-25", "M")).await,
        "birth_date",
    );
    assert!(message.contains("in the future"), "{message}");
    lab.register_patient(&clerk, &registration("P1", "Okafor", "2026-11-24", "M"))
        .await
        .expect("born today is fine");
    assert_eq!(lab.audit_count().await, events + 1);
}

#[tokio::test]
async fn a_birth_date_that_is_not_a_date_is_refused() {
    let lab = lab().await;
    let clerk = lab.phlebotomist().await;
    let events = lab.audit_count().await;

    for typed in [
        "31/02/2001",
        "2001-02-30",
        "2001-13-01",
        "yesterday",
        "14-Jly-1945",
        "1945-7-14x",
        "'; DROP TABLE patient; --",
    ] {
        let message = invalid(
            lab.register_patient(&clerk, &registration("P1", "Okafor", typed, "M")).await,
            "birth_date",
        );
        assert!(message.contains("1945-07-14"), "the message shows how to type it: {message}");
    }
    let message = invalid(
        lab.register_patient(&clerk, &registration("P1", "Okafor", "1850-01-01", "M")).await,
        "birth_date",
    );
    assert!(message.contains("150 years"), "{message}");
    assert_eq!(found(&lab, "P1").await, 0);
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn every_wrong_field_of_a_registration_is_named_at_once() {
    let lab = lab().await;
    let clerk = lab.phlebotomist().await;
    let events = lab.audit_count().await;
    let form = RegisterPatient {
        mrn: "12 34".into(),
        family_name: "   ".into(),
        given_name: "G".repeat(101),
        birth_date: String::new(),
        sex: "X".into(),
    };

    let fields = invalid_fields(lab.register_patient(&clerk, &form).await);
    assert_eq!(fields, ["mrn", "family_name", "given_name", "birth_date", "sex"]);
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn an_overlong_name_or_mrn_is_refused() {
    let lab = lab().await;
    let clerk = lab.phlebotomist().await;

    let long_name = registration("P1", &"Ö".repeat(101), "1970-01-01", "F");
    assert!(invalid(lab.register_patient(&clerk, &long_name).await, "family_name").contains("100"));
    let long_mrn = registration(&"1".repeat(21), "Okafor", "1970-01-01", "F");
    assert!(invalid(lab.register_patient(&clerk, &long_mrn).await, "mrn").contains("20"));
    lab.register_patient(&clerk, &registration("P1", &"Ö".repeat(100), "1970-01-01", "F"))
        .await
        .expect("100 characters fit");
}

#[tokio::test]
async fn a_second_patient_with_the_same_mrn_is_refused() {
    let lab = lab().await;
    let clerk = lab.phlebotomist().await;
    let first = lab.adult_man().await;
    let events = lab.audit_count().await;

    let message = invalid(
        lab.register_patient(&clerk, &registration(" m1001 ", "Someone", "1990-01-01", "F")).await,
        "mrn",
    );
    assert!(message.contains("M1001"), "{message}");
    let on_file = lab.patient(&clerk, first.id).await.unwrap();
    assert_eq!(
        (on_file.family_name.as_str(), on_file.birth_date.as_str()),
        ("Okafor", "1976-06-01")
    );
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn a_search_longer_than_200_characters_is_refused() {
    let lab = lab().await;
    let clerk = lab.phlebotomist().await;
    invalid(lab.search_patients(&clerk, &PatientQuery { text: "x".repeat(201) }).await, "q");
}

// ---- orders ----

#[tokio::test]
async fn unknown_test_codes_are_named() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let phlebotomist = lab.phlebotomist().await;
    let events = lab.audit_count().await;

    let form = order_form(patient.id, &["BMP", "XYZ", "k", "QQ7"]);
    let message = invalid(lab.place_order(&phlebotomist, &form).await, "tests");
    assert!(message.contains("XYZ") && message.contains("QQ7"), "{message}");
    assert!(!message.contains("BMP"), "known codes are not blamed: {message}");

    assert!(lab.patient_orders(&phlebotomist, patient.id).await.unwrap().is_empty());
    assert!(lab.collection_list(&phlebotomist).await.unwrap().is_empty());
    assert_eq!(lab.audit_count().await, events);
    let next = lab.order(&patient, &["K"]).await;
    assert!(
        next.specimens[0].accession.starts_with("26-0000001"),
        "no accession number was used up: {}",
        next.specimens[0].accession
    );
}

#[tokio::test]
async fn an_order_needs_a_provider_and_a_test() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let phlebotomist = lab.phlebotomist().await;
    let events = lab.audit_count().await;

    let form = PlaceOrder {
        provider: "  ".into(),
        tests: vec![" , ".into()],
        ..order_form(patient.id, &[])
    };
    let fields = invalid_fields(lab.place_order(&phlebotomist, &form).await);
    assert_eq!(fields, ["provider", "tests"]);
    let too_many: Vec<String> = (0..101).map(|_| "K".to_owned()).collect();
    let form = PlaceOrder { tests: too_many, ..order_form(patient.id, &[]) };
    assert!(invalid(lab.place_order(&phlebotomist, &form).await, "tests").contains("100"));
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn an_oversized_provider_or_note_is_refused() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let phlebotomist = lab.phlebotomist().await;
    let events = lab.audit_count().await;

    let form = PlaceOrder {
        provider: "P".repeat(600),
        clinical_note: "n".repeat(501),
        ..order_form(patient.id, &["K"])
    };
    let fields = invalid_fields(lab.place_order(&phlebotomist, &form).await);
    assert_eq!(fields, ["provider", "clinical_note"]);
    let fits = PlaceOrder {
        provider: "P".repeat(500),
        clinical_note: "n".repeat(500),
        ..order_form(patient.id, &["K"])
    };
    lab.place_order(&phlebotomist, &fits).await.expect("500 characters fit");
    assert_eq!(lab.audit_count().await, events + 1);
}

#[tokio::test]
async fn an_oversized_placer_number_is_refused() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let phlebotomist = lab.phlebotomist().await;
    let events = lab.audit_count().await;

    let form =
        PlaceOrder { placer_number: Some("9".repeat(600)), ..order_form(patient.id, &["K"]) };
    invalid(lab.place_order(&phlebotomist, &form).await, "placer_number");
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn an_unknown_priority_is_refused() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let phlebotomist = lab.phlebotomist().await;

    let form = PlaceOrder { priority: "urgent".into(), ..order_form(patient.id, &["K"]) };
    assert!(invalid(lab.place_order(&phlebotomist, &form).await, "priority").contains("STAT"));
    let form = PlaceOrder { priority: "STAT".into(), ..order_form(patient.id, &["K"]) };
    lab.place_order(&phlebotomist, &form).await.expect("STAT in capitals is STAT");
}

#[tokio::test]
async fn an_order_for_an_unknown_patient_is_refused() {
    let lab = lab().await;
    let phlebotomist = lab.phlebotomist().await;
    let events = lab.audit_count().await;

    let message =
        invalid(lab.place_order(&phlebotomist, &order_form(424_242, &["K"])).await, "patient_id");
    assert!(message.contains("search again"), "{message}");
    assert_eq!(lab.audit_count().await, events);
}

// ---- specimens ----

#[tokio::test]
async fn an_unknown_rejection_reason_or_an_overlong_note_is_refused() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let assistant = lab.lab_assistant().await;
    let accession = lab.received(&patient, &["K"]).await.specimens[0].accession.clone();
    let events = lab.audit_count().await;

    invalid(lab.reject(&assistant, &accession, "dropped on the floor", "").await, "reason");
    invalid(lab.reject(&assistant, &accession, "hemolyzed", &"n".repeat(501)).await, "note");

    assert_eq!(lab.specimen(&accession).await.status.code(), "received");
    assert_eq!(lab.test(&patient, "K").await.test.status.code(), "received");
    assert_eq!(lab.audit_count().await, events);
}

// ---- results ----

#[tokio::test]
async fn a_result_for_a_rejected_specimen_is_refused() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    let assistant = lab.lab_assistant().await;
    let accession = lab.received(&patient, &["K", "NA"]).await.specimens[0].accession.clone();
    let (k, na) = (lab.test(&patient, "K").await, lab.test(&patient, "NA").await);
    let recollection = lab.reject(&assistant, &accession, "clotted", "").await.unwrap();
    let events = lab.audit_count().await;

    let stale = [
        EnteredResult {
            ordered_test_id: k.test.id,
            row_version: k.test.row_version + 1,
            text: "4.2".into(),
        },
        EnteredResult {
            ordered_test_id: na.test.id,
            row_version: na.test.row_version + 1,
            text: "140".into(),
        },
    ];
    let fields = invalid_fields(lab.enter_results(&technician, &stale, None).await);
    assert_eq!(
        fields,
        [format!("result_{}", k.test.id), format!("result_{}", na.test.id)],
        "each cell is named"
    );
    assert!(lab.store().results_of_tests(&[k.test.id, na.test.id]).await.unwrap().is_empty());
    assert_eq!(lab.audit_count().await, events);
    assert_eq!(
        lab.test(&patient, "K").await.specimen.accession,
        recollection,
        "the live K test is on the recollection"
    );
}

#[tokio::test]
async fn a_result_for_an_unknown_ordered_test_is_not_found() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    let k = lab.test(&patient, "K").await;
    let events = lab.audit_count().await;

    let entries = [
        EnteredResult {
            ordered_test_id: k.test.id,
            row_version: k.test.row_version,
            text: "4.2".into(),
        },
        EnteredResult { ordered_test_id: 987_654, row_version: 1, text: "4.2".into() },
    ];
    let message = not_found(lab.enter_results(&technician, &entries, None).await);
    assert!(message.contains("987654") && message.contains("reload"), "{message}");
    assert!(
        lab.versions(&patient, "K").await.is_empty(),
        "the good cell of the grid was not saved either"
    );
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn a_result_too_long_to_report_is_refused_and_nothing_is_saved() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["NA", "K"]).await;
    let na = lab.test(&patient, "NA").await;
    let events = lab.audit_count().await;

    let grid = [("K", "4.2".to_owned()), ("NA", "1".repeat(3000))];
    let grid: Vec<(&str, &str)> = grid.iter().map(|(c, t)| (*c, t.as_str())).collect();
    let message = invalid(
        lab.enter_all(&technician, &patient, &grid).await,
        &format!("result_{}", na.test.id),
    );
    assert!(message.contains("3000") && message.contains("2000"), "{message}");
    assert!(
        lab.versions(&patient, "K").await.is_empty(),
        "all or nothing: the good K was not saved"
    );
    assert_eq!(lab.test(&patient, "K").await.test.status.code(), "received");
    assert_eq!(lab.audit_count().await, events);
    lab.enter(&technician, &patient, "NA", &"1".repeat(2000)).await.expect("2000 characters fit");
}

#[tokio::test]
async fn an_empty_result_is_refused() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    let events = lab.audit_count().await;

    for blank in ["", "   ", "\t\n"] {
        assert!(
            invalid(lab.enter(&technician, &patient, "K", blank).await, "results")
                .contains("at least one result")
        );
    }
    invalid(lab.enter_results(&technician, &[], None).await, "results");
    assert!(lab.versions(&patient, "K").await.is_empty());
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn two_people_saving_the_same_result_the_second_gets_a_conflict() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["K"]).await;
    let form = lab.test(&patient, "K").await; // both open the same form

    let first = EnteredResult {
        ordered_test_id: form.test.id,
        row_version: form.test.row_version,
        text: "4.2".into(),
    };
    lab.enter_results(&technician, &[first], None).await.unwrap();
    let events = lab.audit_count().await;
    let second = EnteredResult {
        ordered_test_id: form.test.id,
        row_version: form.test.row_version,
        text: "4.4".into(),
    };
    let message = conflict(lab.enter_results(&technologist, &[second], None).await);

    assert!(message.contains("someone else saved this result first"), "{message}");
    let versions = lab.versions(&patient, "K").await;
    assert_eq!(
        versions.iter().map(|v| v.value_text.as_str()).collect::<Vec<_>>(),
        ["4.2"],
        "the first save stands"
    );
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn two_people_saving_at_the_same_moment_one_wins_and_the_other_gets_a_conflict() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["BMP"]).await;
    let form = lab.test(&patient, "NA").await;
    let save = |text: &str| EnteredResult {
        ordered_test_id: form.test.id,
        row_version: form.test.row_version,
        text: text.into(),
    };
    let (a, b) = (save("140"), save("141"));

    let (first, second) = tokio::join!(
        lab.enter_results(&technician, std::slice::from_ref(&a), None),
        lab.enter_results(&technologist, std::slice::from_ref(&b), None)
    );

    let outcomes = [first.is_ok(), second.is_ok()];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "exactly one save wins: {first:?} {second:?}"
    );
    conflict(if first.is_ok() { second } else { first });
    assert_eq!(lab.versions(&patient, "NA").await.len(), 1);
    lab.audit_count().await; // and the chain verifies
}

#[tokio::test]
async fn a_stale_row_in_a_grid_saves_nothing_from_the_grid() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["NA", "CL", "K"]).await;
    let stale_k = lab.test(&patient, "K").await;
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    let (na, cl) = (lab.test(&patient, "NA").await, lab.test(&patient, "CL").await);
    let events = lab.audit_count().await;

    let grid = [
        EnteredResult {
            ordered_test_id: na.test.id,
            row_version: na.test.row_version,
            text: "140".into(),
        },
        EnteredResult {
            ordered_test_id: cl.test.id,
            row_version: cl.test.row_version,
            text: "104".into(),
        },
        EnteredResult {
            ordered_test_id: stale_k.test.id,
            row_version: stale_k.test.row_version,
            text: "4.9".into(),
        },
    ];
    conflict(lab.enter_results(&technician, &grid, None).await);

    assert!(lab.versions(&patient, "NA").await.is_empty());
    assert!(lab.versions(&patient, "CL").await.is_empty());
    assert_eq!(lab.test(&patient, "K").await.result.unwrap().value_text, "4.2");
    assert_eq!(lab.audit_count().await, events);
}

// ---- critical calls ----

#[tokio::test]
async fn a_critical_call_names_who_was_told() {
    let lab = lab().await;
    let patient = lab.adult_man().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technologist, &patient, "K", "6.9").await.unwrap();
    let k = lab.test(&patient, "K").await;
    let events = lab.audit_count().await;

    let call = |person: String, notes: String| CriticalCall {
        called_person: person,
        read_back: true,
        notes,
    };
    assert!(
        invalid(
            lab.document_critical_call(&technologist, k.test.id, &call("  ".into(), String::new()))
                .await,
            "called_person"
        )
        .contains("who was told")
    );
    invalid(
        lab.document_critical_call(&technologist, k.test.id, &call("D".repeat(201), String::new()))
            .await,
        "called_person",
    );
    invalid(
        lab.document_critical_call(
            &technologist,
            k.test.id,
            &call(PROVIDER.into(), "n".repeat(2001)),
        )
        .await,
        "notes",
    );

    assert!(
        held_reason(&lab.verify(&technologist, &patient, "K").await).contains("document the call")
    );
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn an_accession_number_already_on_a_tube_is_never_issued_again() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let first = lab.order(&patient, &["K"]).await.specimens[0].accession.clone();
    // The sequence falls behind the specimens on file (say, after restoring an older backup).
    lab.raw_sql("UPDATE accession_sequence SET last_sequence = 0").await.unwrap();

    let second = lab.order(&patient, &["K"]).await.specimens[0].accession.clone();

    assert_ne!(first, second, "a duplicate accession number was issued");
    assert_eq!(
        lab.specimen(&first).await.accession,
        first,
        "the first tube still carries its number"
    );
}

// ---- QC and autoverification set-up ----

fn moving_average(instrument: &str, test: &str, window: &str) -> MovingAverageForm {
    MovingAverageForm {
        instrument_id: instrument.into(),
        test_code: test.into(),
        window_size: window.into(),
        truncate_low: "40".into(),
        truncate_high: "400".into(),
        target: "100".into(),
        lower_limit: "85".into(),
        upper_limit: "115".into(),
    }
}

#[tokio::test]
async fn a_moving_average_rule_typed_wrong_is_refused_field_by_field_and_nothing_is_stored() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let instrument =
        lab.add_instrument(&supervisor, "Chemistry 1", "hl7", "CHEMANALYZER").await.unwrap();
    let events = lab.audit_count().await;

    let typed = MovingAverageForm {
        truncate_low: "400".into(),
        truncate_high: "40".into(),
        target: "1OO".into(),
        upper_limit: String::new(),
        ..moving_average("", "NOSUCH", "ten")
    };
    let refused = lab.set_moving_average_as_typed(&supervisor, &typed).await;
    assert_eq!(
        invalid_fields(refused),
        ["instrument_id", "test_code", "window_size", "target", "upper_limit", "truncate_high"]
    );
    let words = |form: &MovingAverageForm, field: &str| {
        form.rule(&lab.catalog().catalog).unwrap_err().into_iter().find(|e| e.field == field)
    };
    assert_eq!(
        words(&typed, "test_code").unwrap().message,
        "choose a numeric test from the catalog"
    );
    assert_eq!(words(&typed, "upper_limit").unwrap().message, "give the upper control limit");
    assert_eq!(
        words(&typed, "truncate_high").unwrap().message,
        "the upper truncation limit must be above the lower"
    );
    // A coded test has no average to watch, and a calculated one is not measured.
    for test in ["UCOLOR", "AGAP"] {
        let typed = moving_average(&instrument.to_string(), test, "20");
        invalid(lab.set_moving_average_as_typed(&supervisor, &typed).await, "test_code");
    }
    // Read, but outside what a moving average may be.
    let too_small = moving_average(&instrument.to_string(), "GLU", "3");
    let message =
        invalid(lab.set_moving_average_as_typed(&supervisor, &too_small).await, "window_size");
    assert_eq!(message, "average 5 to 500 results");

    assert!(lab.moving_average_rules(&supervisor).await.unwrap().is_empty(), "no rule stored");
    assert_eq!(lab.audit_count().await, events, "nothing audited");

    let good = moving_average(&instrument.to_string(), "GLU", "20");
    lab.set_moving_average_as_typed(&supervisor, &good).await.expect("a rule typed right is set");
    let rules = lab.moving_average_rules(&supervisor).await.unwrap();
    assert_eq!((rules.len(), rules[0].window_size, rules[0].upper_limit), (1, 20, 115.0));
}

#[tokio::test]
async fn an_autoverification_rule_set_typed_wrong_is_refused_field_by_field_and_nothing_is_stored()
{
    let lab = lab().await;
    let director = lab.pathologist().await;
    let events = lab.audit_count().await;

    let typed = RuleSetForm {
        enabled: true,
        hemolysis_max: "fifty".into(),
        delta_percent: "-20".into(),
        delta_window: "0".into(),
        autoverify_low: "6".into(),
        autoverify_high: "2.5".into(),
        ..RuleSetForm::default()
    };
    let refused = lab.save_autoverify_form(&director, "K", &typed).await;
    assert_eq!(
        invalid_fields(refused),
        ["hemolysis_max", "delta_percent", "delta_window", "autoverify_low"]
    );
    let message = invalid(lab.save_autoverify_form(&director, "K", &typed).await, "hemolysis_max");
    assert!(message.starts_with("Enter the hemolysis index limit as a whole number"), "{message}");
    let message = invalid(lab.save_autoverify_form(&director, "K", &typed).await, "delta_percent");
    assert!(message.contains("without a minus sign"), "{message}");
    let message = invalid(lab.save_autoverify_form(&director, "K", &typed).await, "autoverify_low");
    assert_eq!(message, "The low limit (6) must not be above the high limit (2.5)");
    // A hold code no specimen condition has is refused on its field, in the same words the
    // typed rule set gets.
    let odd = RuleSetForm { hold_codes: vec!["NOT A CODE".into()], ..RuleSetForm::default() };
    let from_form = invalid(lab.save_autoverify_form(&director, "K", &odd).await, "hold_codes");
    let rules = cuvette_domain::autoverify::AutoverifyRules {
        hold_comment_codes: vec!["NOT A CODE".into()],
        ..cuvette_domain::autoverify::AutoverifyRules::default_for(
            lab.catalog().catalog.test("K").unwrap(),
        )
    };
    let typed_rules =
        invalid(lab.save_autoverify_rules(&director, "K", &rules).await, "hold_codes");
    assert_eq!(from_form, typed_rules);

    let view = lab.autoverify_rule_set(&director, "K").await.unwrap();
    assert!(!view.stored, "no rule set stored");
    assert_eq!(lab.audit_count().await, events, "nothing audited");
}
