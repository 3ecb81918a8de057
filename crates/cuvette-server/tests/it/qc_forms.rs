//! The QC, autoverification and specimen-condition forms refuse bad input on the field at
//! fault, keep what was typed, and store nothing.

use axum::http::StatusCode;
use cuvette_app::{Actor, IdentityCheck, PlaceOrder, RegisterPatient};
use cuvette_domain::Role;

use crate::support::app;

#[tokio::test]
async fn a_control_material_with_a_bad_level_and_no_lot_is_refused_and_kept_as_typed() {
    let app = app().await;
    let supervisor = app.sign_in(Role::Supervisor, "qcform").await;
    let reply = app
        .post_form(
            &supervisor,
            "/qc/materials",
            &[
                ("product", "Typed Control Product"),
                ("manufacturer", "Typed Maker"),
                ("lot", ""),
                ("level", "7"),
                ("expires_on", "2027-06-30"),
                ("sample_id", "QC-TYPED-1"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("the level is 1, 2 or 3"), "the level is named");
    assert!(reply.body.contains("Typed Control Product"), "what was typed is kept");
    let materials = app.lab.qc_materials(&Actor::system()).await.unwrap();
    assert!(materials.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn a_rule_set_with_a_word_for_a_limit_is_refused_and_kept_as_typed() {
    let app = app().await;
    let director = app.sign_in(Role::Pathologist, "avform").await;
    let reply = app
        .post_form(
            &director,
            "/autoverify/K",
            &[("rules", "typed"), ("enabled", "yes"), ("hemolysis_max", "fifty")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.body.contains("index limit as a whole number"), "the field says why");
    assert!(reply.body.contains("value=\"fifty\""), "what was typed is kept");
    let rules = app.lab.autoverify_rule_sets(&Actor::system()).await.unwrap();
    assert!(rules.iter().all(|r| !r.stored), "nothing was stored");
}

#[tokio::test]
async fn an_unknown_specimen_condition_is_refused_and_the_conditions_stay_as_they_were() {
    let app = app().await;
    let sys = Actor::system();
    let p = app
        .lab
        .register_patient(
            &sys,
            &RegisterPatient {
                mrn: "COND01".into(),
                family_name: "Condition".into(),
                given_name: "Cal".into(),
                birth_date: "1980-01-01".into(),
                sex: "F".into(),
            },
        )
        .await
        .unwrap();
    let placed = app
        .lab
        .place_order(
            &sys,
            &PlaceOrder {
                patient_id: p.id,
                provider: "Dr. Form".into(),
                priority: "routine".into(),
                tests: vec!["K".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let acc = placed.specimens[0].accession.clone();
    app.lab.collect(&sys, &acc).await.unwrap();
    let check = IdentityCheck {
        mrn: Some(p.mrn.clone()),
        birth_date: Some(p.birth_date.clone()),
        family_name: None,
    };
    app.lab.receive(&sys, &acc, &check).await.unwrap();
    let assistant = app.sign_in(Role::LabAssistant, "cond").await;
    let reply = app
        .post_form(
            &assistant,
            &format!("/specimens/{acc}/conditions"),
            &[("conditions", "HEM"), ("conditions", "SPLASHED")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body.contains("SPLASHED") && reply.body.contains("is not a specimen condition code"),
        "it says which"
    );
    let specimen = app.lab.specimen_view(&Actor::system(), &acc).await.unwrap().specimen;
    assert!(specimen.conditions.is_empty(), "nothing was stored, not even HEM");
}

#[tokio::test]
async fn a_refused_receipt_offers_rejection_only_for_a_tube_not_already_rejected() {
    let app = app().await;
    let sys = Actor::system();
    let p = app
        .lab
        .register_patient(
            &sys,
            &RegisterPatient {
                mrn: "RCV01".into(),
                family_name: "Receipt".into(),
                given_name: "Rae".into(),
                birth_date: "1975-05-05".into(),
                sex: "F".into(),
            },
        )
        .await
        .unwrap();
    let order = PlaceOrder {
        patient_id: p.id,
        provider: "Dr. Form".into(),
        priority: "routine".into(),
        tests: vec!["K".into()],
        ..Default::default()
    };
    let acc = app.lab.place_order(&sys, &order).await.unwrap().specimens[0].accession.clone();
    let assistant = app.sign_in(Role::LabAssistant, "rcv").await;
    let scan = [("accession", acc.as_str()), ("mrn", "RCV01"), ("birth_date", "1975-05-05")];
    let reject_link = format!("/specimens/{acc}#reject");

    // Not yet collected: refused, and rejecting the tube in hand is offered.
    let reply = app.post_form(&assistant, "/receive", &scan).await;
    assert!(reply.body.contains("NOT RECEIVED"), "refused");
    assert!(reply.body.contains(&reject_link), "rejection is offered");

    app.lab.reject(&sys, &acc, "mislabeled", "label torn").await.unwrap();
    let reply = app.post_form(&assistant, "/receive", &scan).await;
    assert!(reply.body.contains("NOT RECEIVED"), "a rejected tube is refused");
    assert!(!reply.body.contains(&reject_link), "it is not offered for rejection again");
}
