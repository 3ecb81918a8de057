//! Results and their release: who may verify what, critical calls, students, corrections,
//! and what a result means.

use cuvette_app::records::{AuditFilter, PatientRow};
use cuvette_app::{Actor, AppResult, Correction, CriticalCall, EnteredResult, Saved};
use cuvette_domain::evaluation::{NO_INTERVAL_FOR_AGE, Review};
use cuvette_domain::workflow::TestStatus;

use crate::support::*;

/// A correction of the patient's released `code`, typed on a fresh form.
async fn correct(
    lab: &TestLab,
    who: &Actor,
    patient: &PatientRow,
    code: &str,
    text: &str,
    reason: &str,
    signature: &str,
) -> AppResult<Vec<Saved>> {
    let item = lab.test(patient, code).await;
    let entry = EnteredResult {
        ordered_test_id: item.test.id,
        row_version: item.test.row_version,
        text: text.into(),
    };
    lab.enter_results(
        who,
        &[entry],
        Some(&Correction { reason: reason.into(), signature: signature.into() }),
    )
    .await
}

#[tokio::test]
async fn a_technician_releases_a_normal_result() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    let saved = lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    assert_eq!(saved[0].evaluation.review, Review::Routine);

    assert_released(&lab.verify(&technician, &patient, "K").await);
    let released = lab.test(&patient, "K").await;
    assert_eq!(released.test.status.code(), "final");
    let result = released.result.unwrap();
    assert_eq!(
        (result.released_by.as_deref(), result.release_status.map(|s| s.code())),
        (Some("technician"), Some("final"))
    );
    assert_eq!(result.released_at, Some(lab.now_at()));
}

#[tokio::test]
async fn a_technician_cannot_release_an_abnormal_result() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["K"]).await;
    let saved = lab.enter(&technician, &patient, "K", "5.5").await.unwrap();
    assert_eq!(
        (saved[0].evaluation.flag_codes().as_str(), saved[0].evaluation.review),
        ("H", Review::Technologist)
    );

    let outcome = lab.verify(&technician, &patient, "K").await;
    assert!(held_reason(&outcome).contains("a technologist must verify it"), "{outcome:?}");
    let k = lab.test(&patient, "K").await;
    assert_eq!((k.test.status.code(), k.result.unwrap().released_at), ("in_process", None));

    assert_released(&lab.verify(&technologist, &patient, "K").await);
}

#[tokio::test]
async fn a_critical_potassium_cannot_be_released_until_the_call_is_documented() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    let technologist = lab.technologist().await;
    let pathologist = lab.pathologist().await;
    lab.received(&patient, &["K"]).await;
    let saved = lab.enter(&technician, &patient, "K", "6.8").await.unwrap();
    assert_eq!(saved[0].evaluation.flag_codes(), "HH H");

    for who in [&technologist, &pathologist] {
        let outcome = lab.verify(who, &patient, "K").await;
        assert!(held_reason(&outcome).contains("document the call"), "{outcome:?}");
    }
    lab.clock.advance(minutes(3));
    lab.call_provider(&technician, &patient, "K", true).await;
    assert_released(&lab.verify(&technologist, &patient, "K").await);

    let technologist_view = lab
        .specimen_view(&technologist, &lab.test(&patient, "K").await.specimen.accession)
        .await
        .unwrap();
    let calls = &technologist_view.tests[0].calls;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].called_person.as_str(), calls[0].called_by.as_str(), calls[0].read_back),
        (PROVIDER, "technician", true)
    );
    assert_eq!(calls[0].called_at, lab.now_at());
    assert!(lab.audit_actions_for(&patient).await.contains(&"critical.call".to_owned()));
}

#[tokio::test]
async fn a_call_without_read_back_does_not_open_the_release_gate() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technologist, &patient, "K", "2.1").await.unwrap();

    lab.call_provider(&technologist, &patient, "K", false).await;
    assert!(
        held_reason(&lab.verify(&technologist, &patient, "K").await).contains("document the call")
    );
    assert!(lab.audit_actions_for(&patient).await.contains(&"critical.attempt".to_owned()));

    lab.call_provider(&technologist, &patient, "K", true).await;
    assert_released(&lab.verify(&technologist, &patient, "K").await);
}

#[tokio::test]
async fn a_new_critical_value_needs_its_own_call() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technologist, &patient, "K", "6.8").await.unwrap();
    lab.call_provider(&technologist, &patient, "K", true).await;

    lab.enter(&technologist, &patient, "K", "7.1").await.unwrap();
    let outcome = lab.verify(&technologist, &patient, "K").await;
    assert!(
        held_reason(&outcome).contains("document the call"),
        "the call was about 6.8, not 7.1: {outcome:?}"
    );

    lab.call_provider(&technologist, &patient, "K", true).await;
    assert_released(&lab.verify(&technologist, &patient, "K").await);
    assert_eq!(lab.test(&patient, "K").await.result.unwrap().report_text, "7.1");
}

#[tokio::test]
async fn only_a_critical_result_is_called() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["K"]).await;
    let k = lab.test(&patient, "K").await;
    let call =
        CriticalCall { called_person: PROVIDER.into(), read_back: true, notes: String::new() };

    assert!(
        refused(lab.document_critical_call(&technologist, k.test.id, &call).await)
            .contains("no result")
    );
    lab.enter(&technologist, &patient, "K", "5.5").await.unwrap();
    assert!(
        refused(lab.document_critical_call(&technologist, k.test.id, &call).await)
            .contains("not critical")
    );
    not_found(lab.document_critical_call(&technologist, k.test.id + 1000, &call).await);
}

#[tokio::test]
async fn a_students_result_needs_a_cosignature() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let student = lab.student().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&student, &patient, "K", "4.2").await.unwrap();
    let k = lab.test(&patient, "K").await;
    assert_eq!(k.result.as_ref().unwrap().entered_by_role.code(), "student");

    let message = forbidden(
        lab.release(&student, &[(k.test.id, k.test.row_version)], TestStatus::Final).await,
    );
    assert!(message.contains("co-sign"), "{message}");
    assert_eq!(lab.test(&patient, "K").await.result.unwrap().released_at, None);

    assert_released(&lab.verify(&technician, &patient, "K").await);
    let cosign = lab
        .audit_trail(AuditFilter { actor: Some(technician.name.clone()), ..Default::default() })
        .await;
    assert_eq!(cosign.last().map(|e| e.action.code()), Some("result.cosign_release"));
    let result = lab.test(&patient, "K").await.result.unwrap();
    assert_eq!(
        (result.entered_by.as_str(), result.released_by.as_deref()),
        ("student", Some("technician"))
    );
}

#[tokio::test]
async fn a_students_abnormal_result_is_cosigned_by_a_technologist() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let student = lab.student().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&student, &patient, "K", "5.6").await.unwrap();

    let technician = lab.technician().await;
    assert!(held_reason(&lab.verify(&technician, &patient, "K").await).contains("technologist"));
    let technologist = lab.technologist().await;
    assert_released(&lab.verify(&technologist, &patient, "K").await);
}

#[tokio::test]
async fn a_result_changed_since_the_reviewer_opened_it_is_held() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    let as_reviewed = lab.test(&patient, "K").await;

    lab.enter(&technician, &patient, "K", "4.9").await.unwrap();
    let outcome = lab
        .release(
            &technologist,
            &[(as_reviewed.test.id, as_reviewed.test.row_version)],
            TestStatus::Final,
        )
        .await
        .unwrap();

    assert!(held_reason(&outcome[0]).contains("changed since you opened it"), "{outcome:?}");
    let versions = lab.versions(&patient, "K").await;
    assert!(
        versions.iter().all(|v| v.released_at.is_none()),
        "neither the seen nor the unseen value was released"
    );
}

#[tokio::test]
async fn a_result_is_released_once() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    let k = lab.test(&patient, "K").await;

    let twice = [(k.test.id, k.test.row_version), (k.test.id, k.test.row_version)];
    let outcomes = lab.release(&technician, &twice, TestStatus::Final).await.unwrap();
    assert_released(&outcomes[0]);
    assert!(
        held_reason(&outcomes[1]).contains("already released")
            || held_reason(&outcomes[1]).contains("changed"),
        "{outcomes:?}"
    );
    assert!(
        held_reason(&lab.verify(&technician, &patient, "K").await).contains("already released")
    );
    let releases =
        lab.audit_actions_for(&patient).await.into_iter().filter(|a| a == "result.release").count();
    assert_eq!(releases, 1);
}

#[tokio::test]
async fn a_test_without_a_result_is_not_released() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;

    assert!(
        held_reason(&lab.verify(&technician, &patient, "K").await).contains("no result to release")
    );
    let outcome = lab.release(&technician, &[(987_654, 1)], TestStatus::Final).await.unwrap();
    assert!(held_reason(&outcome[0]).contains("no ordered test 987654"), "{outcome:?}");
}

#[tokio::test]
async fn results_are_released_as_preliminary_or_final_only() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    let k = lab.test(&patient, "K").await;

    for status in [TestStatus::InProcess, TestStatus::Cancelled, TestStatus::Received] {
        invalid(
            lab.release(&technician, &[(k.test.id, k.test.row_version)], status).await,
            "status",
        );
    }
    assert_eq!(lab.test(&patient, "K").await.result.unwrap().released_at, None);
}

#[tokio::test]
async fn a_preliminary_release_shows_on_the_report() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();

    assert_released(&lab.verify_as(&technician, &patient, "K", TestStatus::Preliminary).await);
    let report = lab.cumulative_report(&technician, patient.id).await.unwrap();
    assert_eq!(report.rows[0].test.item.test.status.code(), "preliminary");
    assert_eq!(
        report.rows[0].test.released().unwrap().release_status.map(|s| s.code()),
        Some("preliminary")
    );
}

#[tokio::test]
async fn a_preliminary_result_is_later_released_as_final() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    assert_released(&lab.verify_as(&technician, &patient, "K", TestStatus::Preliminary).await);

    let outcome = lab.verify(&technician, &patient, "K").await;
    assert_released(&outcome);
    let k = lab.test(&patient, "K").await;
    assert_eq!(k.test.status.code(), "final");
    assert_eq!(lab.versions(&patient, "K").await.len(), 1, "the same value, no new version");
}

#[tokio::test]
async fn a_changed_preliminary_result_is_released_as_final_not_corrected() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    assert_released(&lab.verify_as(&technician, &patient, "K", TestStatus::Preliminary).await);
    lab.enter(&technician, &patient, "K", "4.3").await.unwrap();

    assert_released(&lab.verify(&technician, &patient, "K").await);
    let result = lab.test(&patient, "K").await.result.unwrap();
    assert_eq!(
        result.release_status.map(|s| s.code()),
        Some("final"),
        "a final report after a preliminary one corrects nothing final"
    );
}

#[tokio::test]
async fn a_result_reentered_before_release_keeps_every_version() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    lab.clock.advance(minutes(2));
    let saved = lab.enter(&technician, &patient, "K", "4.3").await.unwrap();
    assert_eq!(saved[0].version, 2);
    assert_released(&lab.verify(&technician, &patient, "K").await);

    let versions = lab.versions(&patient, "K").await;
    let texts: Vec<(&str, Option<&str>)> = versions
        .iter()
        .map(|v| (v.value_text.as_str(), v.release_status.map(|s| s.code())))
        .collect();
    assert_eq!(
        texts,
        [("4.2", None), ("4.3", Some("final"))],
        "a value replaced before release is kept, not released"
    );
}

#[tokio::test]
async fn correcting_a_final_result_keeps_the_original_version() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    assert_released(&lab.verify(&technician, &patient, "K").await);
    lab.clock.advance(minutes(45));

    let reason = "analyzer sample mix-up, rerun on the correct tube";
    let saved = correct(&lab, &technologist, &patient, "K", "4.5", reason, PASSWORD).await.unwrap();
    assert_eq!(saved[0].version, 2);
    let pending = lab.cumulative_report(&technologist, patient.id).await.unwrap();
    assert_eq!(
        pending.rows[0].test.released().unwrap().report_text,
        "4.2",
        "the report shows 4.2 until 4.5 is verified"
    );
    assert_eq!(lab.test(&patient, "K").await.test.status.code(), "final");
    assert_eq!(
        lab.review_queue(&technologist).await.unwrap().len(),
        1,
        "the correction waits for verification"
    );

    assert_released(&lab.verify(&technologist, &patient, "K").await);
    let report = lab.cumulative_report(&technologist, patient.id).await.unwrap();
    let row = &report.rows[0].test;
    let versions: Vec<(&str, Option<&str>, Option<&str>)> = row
        .versions
        .iter()
        .map(|v| {
            (
                v.value_text.as_str(),
                v.release_status.map(|s| s.code()),
                v.correction_reason.as_deref(),
            )
        })
        .collect();
    assert_eq!(versions, [("4.2", Some("final"), None), ("4.5", Some("corrected"), Some(reason))]);
    assert_eq!(row.released().unwrap().report_text, "4.5");
    assert_eq!(row.corrected_from().unwrap().report_text, "4.2");
    assert_eq!(row.versions[1].entered_by, "technologist");
    assert!(lab.audit_actions_for(&patient).await.contains(&"result.correct".to_owned()));
}

#[tokio::test]
async fn a_correction_needs_a_reason_and_the_technologists_signature() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    assert_released(&lab.verify(&technician, &patient, "K").await);
    let events = lab.audit_count().await;

    let message =
        invalid(lab.enter(&technologist, &patient, "K", "4.5").await, "correction_reason");
    assert!(message.contains("sign with your password"), "{message}");
    invalid(
        correct(&lab, &technologist, &patient, "K", "4.5", "   ", PASSWORD).await,
        "correction_reason",
    );
    assert_eq!(lab.audit_count().await, events);

    let message = invalid(
        correct(&lab, &technologist, &patient, "K", "4.5", "wrong tube", "not my password").await,
        "signature",
    );
    assert!(message.contains("password is not right"), "{message}");
    let failed = lab.audit_trail(AuditFilter::default()).await;
    assert_eq!(
        failed.last().map(|e| (e.action.code(), e.entity_id.as_str())),
        Some(("signature.fail", "technologist"))
    );
    assert_eq!(lab.audit_count().await, events + 1, "only the failed signature is recorded");

    let versions = lab.versions(&patient, "K").await;
    assert_eq!(versions.len(), 1, "the released value stands");
    assert_eq!(versions[0].release_status.map(|s| s.code()), Some("final"));
}

#[tokio::test]
async fn a_technician_cannot_correct_a_released_result() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
    assert_released(&lab.verify(&technician, &patient, "K").await);

    let message =
        forbidden(correct(&lab, &technician, &patient, "K", "4.5", "wrong tube", PASSWORD).await);
    assert!(message.contains("correct released results"), "{message}");
    assert_eq!(lab.versions(&patient, "K").await.len(), 1);
}

#[tokio::test]
async fn the_review_queue_puts_criticals_first_then_abnormal_then_stat_then_oldest() {
    let lab = lab().await;
    let technician = lab.technician().await;
    // (MRN, STAT?, potassium) in the order entered.
    let patients = [
        ("A1", false, "4.2"),
        ("B2", true, "4.3"),
        ("C3", false, "5.5"),
        ("D4", false, "6.8"),
        ("E5", false, "4.4"),
    ];
    for (mrn, stat, value) in patients {
        let patient = lab.register(mrn, "Queue", "1980-01-01", "F").await;
        let placed = if stat {
            lab.order_stat(&patient, &["K"]).await
        } else {
            lab.order(&patient, &["K"]).await
        };
        lab.collect_and_receive(&placed.specimens[0].accession).await;
        lab.enter(&technician, &patient, "K", value).await.unwrap();
        lab.clock.advance(minutes(1));
    }

    let queue: Vec<String> =
        lab.review_queue(&technician).await.unwrap().into_iter().map(|i| i.patient.mrn).collect();
    assert_eq!(queue, ["D4", "C3", "B2", "A1", "E5"]);
}

#[tokio::test]
async fn text_in_a_numeric_field_is_kept_and_sent_to_review() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;

    let saved = lab.enter(&technician, &patient, "K", "  hemolyzed ").await.unwrap();
    let evaluation = &saved[0].evaluation;
    assert_eq!(
        (evaluation.flag_codes().as_str(), evaluation.report_text.as_str()),
        ("INV", "hemolyzed")
    );
    assert_eq!(evaluation.review, Review::Technologist);
    assert!(
        evaluation.reasons.iter().any(|r| r.contains("not a number")),
        "{:?}",
        evaluation.reasons
    );

    let stored = lab.test(&patient, "K").await.result.unwrap();
    assert_eq!(
        (stored.value_text.as_str(), stored.flags.codes().as_str(), stored.review.code()),
        ("hemolyzed", "INV", "technologist")
    );
    let reason = held_reason(&lab.verify(&technician, &patient, "K").await).to_owned();
    assert!(reason.contains("not a valid result"), "{reason}");
}

#[tokio::test]
async fn a_potassium_typed_with_the_letter_o_cannot_be_released_by_anyone() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K", "NA"]).await;
    let saved = lab.enter(&technician, &patient, "K", "1OO").await.unwrap();
    assert_eq!(saved[0].evaluation.flag_codes(), "INV");
    lab.enter(&technician, &patient, "NA", "140").await.unwrap();

    for who in [lab.technologist().await, lab.supervisor().await, lab.pathologist().await] {
        let reason = held_reason(&lab.verify(&who, &patient, "K").await).to_owned();
        assert!(reason.contains("not a valid result for the test"), "{}: {reason}", who.name);
    }
    // Ticked together with a good result, as in a bulk verify: the good one goes, K stays.
    let (k, na) = (lab.test(&patient, "K").await, lab.test(&patient, "NA").await);
    let outcomes = lab
        .release(
            &lab.technologist().await,
            &[(k.test.id, k.test.row_version), (na.test.id, na.test.row_version)],
            TestStatus::Final,
        )
        .await
        .unwrap();
    assert!(held_reason(&outcomes[0]).contains("not a valid result"), "{outcomes:?}");
    assert_released(&outcomes[1]);
    // Nor as preliminary.
    let k = lab.test(&patient, "K").await;
    let outcome = lab
        .release(
            &lab.technologist().await,
            &[(k.test.id, k.test.row_version)],
            TestStatus::Preliminary,
        )
        .await
        .unwrap();
    assert!(held_reason(&outcome[0]).contains("not a valid result"), "{outcome:?}");
    let k = lab.test(&patient, "K").await;
    assert_eq!((k.test.status.code(), k.result.unwrap().released_at), ("in_process", None));

    // Corrected on the bench, it is released as any other value.
    lab.enter(&technician, &patient, "K", "4.0").await.unwrap();
    assert_released(&lab.verify(&technician, &patient, "K").await);
}

#[tokio::test]
async fn a_code_not_in_the_tests_list_cannot_be_released() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    let technologist = lab.technologist().await;
    lab.received(&patient, &["UCLAR"]).await;
    let saved = lab.enter(&technologist, &patient, "UCLAR", "Milky").await.unwrap();
    assert_eq!(saved[0].evaluation.flag_codes(), "INV");
    let reason = held_reason(&lab.verify(&technologist, &patient, "UCLAR").await).to_owned();
    assert!(reason.contains("not a valid result"), "{reason}");
}

#[tokio::test]
async fn results_outside_the_measurement_range_are_reported_as_the_limit() {
    let lab = lab().await;
    let high = lab.adult_woman().await;
    let low = lab.adult_man().await;
    let technician = lab.technician().await;
    lab.received(&high, &["GLU"]).await;
    lab.received(&low, &["GLU"]).await;

    let saved = lab.enter(&technician, &high, "GLU", "812").await.unwrap();
    assert_eq!(
        (saved[0].evaluation.report_text.as_str(), saved[0].evaluation.flag_codes().as_str()),
        (">750", "HH H >")
    );
    let saved = lab.enter(&technician, &low, "GLU", "1").await.unwrap();
    assert_eq!(
        (saved[0].evaluation.report_text.as_str(), saved[0].evaluation.flag_codes().as_str()),
        ("<2", "LL L <")
    );

    let stored = lab.test(&high, "GLU").await.result.unwrap();
    assert_eq!(
        (stored.value_text.as_str(), stored.report_text.as_str()),
        ("812", ">750"),
        "what was measured is kept"
    );
    let technologist = lab.technologist().await;
    lab.call_provider(&technologist, &high, "GLU", true).await;
    assert_released(&lab.verify(&technologist, &high, "GLU").await);
    let report = lab.cumulative_report(&technologist, high.id).await.unwrap();
    assert_eq!(
        report.rows[0].test.released().unwrap().report_text,
        ">750",
        "never released as a plain 812"
    );
}

#[tokio::test]
async fn reference_intervals_follow_sex_and_the_age_on_the_day_of_collection() {
    let lab = lab().await;
    let technician = lab.technician().await;
    let woman = lab.adult_woman().await;
    let man = lab.adult_man().await;
    lab.received(&woman, &["HGB"]).await;
    lab.received(&man, &["HGB"]).await;
    assert_eq!(
        lab.enter(&technician, &woman, "HGB", "12.0").await.unwrap()[0].evaluation.flag_codes(),
        ""
    );
    assert_eq!(
        lab.enter(&technician, &man, "HGB", "12.0").await.unwrap()[0].evaluation.flag_codes(),
        "L"
    );

    // Eighteen tomorrow: drawn today as a child, resulted tomorrow, judged as a child.
    let teenager = lab.register("T18", "Mwangi", "2008-11-25", "F").await;
    lab.received(&teenager, &["K"]).await;
    lab.clock.advance(minutes(24 * 60));
    let adult_now = lab.register("T19", "Mwangi", "2008-11-25", "F").await;
    lab.received(&adult_now, &["K"]).await;

    let drawn_at_17 = lab.enter(&technician, &teenager, "K", "5.0").await.unwrap();
    assert_eq!(
        (
            drawn_at_17[0].evaluation.interval.as_str(),
            drawn_at_17[0].evaluation.flag_codes().as_str()
        ),
        ("3.4–4.7", "H")
    );
    let drawn_at_18 = lab.enter(&technician, &adult_now, "K", "5.0").await.unwrap();
    assert_eq!(
        (
            drawn_at_18[0].evaluation.interval.as_str(),
            drawn_at_18[0].evaluation.flag_codes().as_str()
        ),
        ("3.5–5.1", "")
    );
}

#[tokio::test]
async fn a_neonate_with_no_interval_for_the_age_is_told_so_and_verified_by_a_technologist() {
    // Sodium's interval starts at eighteen years; a four-day-old's normal-looking 140 cannot
    // be called normal, so nothing lets it through as routine.
    let lab = lab().await;
    let technician = lab.technician().await;
    let technologist = lab.technologist().await;
    let neonate = lab.register("N4", "Okafor", "2026-11-20", "F").await;
    lab.received(&neonate, &["NA"]).await;

    let saved = lab.enter(&technician, &neonate, "NA", "140").await.unwrap();
    let e = &saved[0].evaluation;
    assert_eq!(
        (e.interval.as_str(), e.flag_codes().as_str(), e.review),
        (NO_INTERVAL_FOR_AGE, "", Review::Technologist)
    );
    assert!(e.reasons.iter().any(|r| r.contains("no reference interval of Sodium")), "{e:?}");
    let reason = held_reason(&lab.verify(&technician, &neonate, "NA").await).to_owned();
    assert!(!reason.is_empty());

    assert_released(&lab.verify(&technologist, &neonate, "NA").await);
    let report = lab.cumulative_report(&technologist, neonate.id).await.unwrap();
    assert_eq!(report.rows[0].test.released().unwrap().reference_interval, NO_INTERVAL_FOR_AGE);
}
