//! Synonyms of coded results: what the bench types for a coded test ("neg", "2+") is stored
//! as the catalog's value with what was typed beside it; the table starts with the shipped
//! synonyms, is the lab's to change (audited), and survives a restart as the lab left it.

use cuvette_app::records::AuditFilter;
use cuvette_app::{AppError, SynonymForm};
use cuvette_domain::audit::AuditAction;

use crate::support::{assert_released, held_reason, lab};

#[tokio::test]
async fn neg_typed_for_nitrite_is_stored_as_negative_with_what_was_typed() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    lab.received(&patient, &["UNIT", "UBLD"]).await;
    let technician = lab.technician().await;
    lab.enter_all(&technician, &patient, &[("UNIT", " neg "), ("UBLD", "TR")]).await.unwrap();

    let nitrite = lab.versions(&patient, "UNIT").await.pop().unwrap();
    assert_eq!(
        (nitrite.value_text.as_str(), nitrite.report_text.as_str(), nitrite.flags.codes().as_str()),
        ("Negative", "Negative", "")
    );
    assert_eq!((nitrite.sent_value.as_deref(), nitrite.sent_unit.as_deref()), (Some("neg"), None));
    assert_released(&lab.verify(&technician, &patient, "UNIT").await);

    let blood = lab.versions(&patient, "UBLD").await.pop().unwrap();
    assert_eq!((blood.value_text.as_str(), blood.flags.codes().as_str()), ("Trace", "A"));
}

#[tokio::test]
async fn text_that_is_no_value_and_no_synonym_is_kept_and_never_released() {
    let lab = lab().await;
    let patient = lab.adult_woman().await;
    lab.received(&patient, &["UNIT"]).await;
    let technologist = lab.technologist().await;
    lab.enter(&technologist, &patient, "UNIT", "weakly pos").await.unwrap();
    let nitrite = lab.versions(&patient, "UNIT").await.pop().unwrap();
    assert_eq!(
        (nitrite.value_text.as_str(), nitrite.flags.codes().as_str(), nitrite.sent_value),
        ("weakly pos", "INV", None)
    );
    let held = lab.verify(&technologist, &patient, "UNIT").await;
    assert_eq!(
        held_reason(&held),
        "UNIT: this value is not a valid result for the test: correct it on the bench (or reject the specimen)"
    );
}

#[tokio::test]
async fn a_new_lab_starts_with_the_shipped_synonyms_and_keeps_its_removals_across_a_restart() {
    let lab = lab().await;
    let shipped = cuvette_domain::synonyms::defaults(&cuvette_domain::Catalog::bundled());
    let in_force: usize =
        lab.catalog().catalog.tests().map(|t| lab.coded_synonyms(&t.code).unwrap().len()).sum();
    assert_eq!(in_force, shipped.len());
    let seeded = lab
        .audit_trail(AuditFilter { action: Some(AuditAction::CatalogSeed), ..Default::default() })
        .await;
    assert_eq!(
        seeded.iter().map(|e| (e.entity.as_str(), e.entity_id.as_str())).collect::<Vec<_>>(),
        [("catalog", "bundled"), ("coded_synonym", "bundled")]
    );

    let supervisor = lab.supervisor().await;
    lab.remove_coded_synonym(&supervisor, "UNIT", "NEG").await.unwrap();
    let reopened = lab.reopen().await;
    let nitrite = reopened.coded_synonyms("UNIT").unwrap();
    assert!(nitrite.iter().all(|s| s.synonym != "neg"), "{nitrite:?}");
    assert!(nitrite.iter().any(|s| s.synonym == "pos"));
    let nitrite_def = reopened.catalog().catalog.test("UNIT").unwrap().clone();
    assert_eq!(reopened.catalog().synonyms.coded_value(&nitrite_def, "NEG"), None);

    // Added back: in force again, and audited each time.
    let form = SynonymForm { synonym: "NEG".into(), coded_value: "Negative".into() };
    let added = reopened.add_coded_synonym(&supervisor, "UNIT", &form).await.unwrap();
    assert_eq!((added.written.as_str(), added.changed_by.as_str()), ("NEG", "supervisor"));
    let changes = lab
        .audit_trail(AuditFilter {
            entity: Some(("coded_synonym".into(), "UNIT/neg".into())),
            ..Default::default()
        })
        .await;
    assert_eq!(
        changes.iter().map(|e| e.action).collect::<Vec<_>>(),
        [AuditAction::CatalogSynonymRemove, AuditAction::CatalogSynonymAdd]
    );
}

#[tokio::test]
async fn a_synonym_is_refused_in_the_labs_words_and_nothing_is_stored() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let refused = |test: &'static str, synonym: &'static str, value: &'static str| {
        let lab = &lab;
        let supervisor = supervisor.clone();
        async move {
            let form = SynonymForm { synonym: synonym.into(), coded_value: value.into() };
            match lab.add_coded_synonym(&supervisor, test, &form).await {
                Err(AppError::Invalid(fields)) => {
                    let [field] = &fields[..] else { panic!("{fields:?}") };
                    format!("{}: {}", field.field, field.message)
                }
                other => panic!("{other:?}"),
            }
        }
    };
    let before = lab.audit_count().await;
    assert_eq!(
        refused("UNIT", "pos", "Negative").await,
        "synonym: \"pos\" already stands for \"Positive\" on UNIT: remove it first"
    );
    assert_eq!(
        refused("UNIT", "weak", "Weakly positive").await,
        "coded_value: \"Weakly positive\" is not one of the values of UNIT: choose one of Negative, Positive"
    );
    assert_eq!(
        refused("NA", "NEG", "Negative").await,
        "synonym: NA is not reported as a coded value, so it takes no synonyms"
    );
    assert_eq!(
        refused("UNIT", "  ", "Negative").await,
        "synonym: type the text the instrument or the bench writes"
    );
    assert_eq!(lab.audit_count().await, before);

    let technician = lab.technician().await;
    let form = SynonymForm { synonym: "+".into(), coded_value: "Positive".into() };
    assert!(matches!(
        lab.add_coded_synonym(&technician, "UNIT", &form).await,
        Err(AppError::Forbidden(_))
    ));
}
