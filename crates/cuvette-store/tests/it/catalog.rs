//! Versioned test definitions and panels, kept as JSON of the domain types.

use cuvette_domain::Catalog;
use cuvette_store::{CodedSynonymRow, NewCodedSynonym, StoreError};

use crate::{AT, Db, at};

#[tokio::test]
async fn every_version_of_a_definition_and_a_panel_read_back_as_written() {
    let db = Db::new().await;
    let catalog = Catalog::bundled();
    let potassium = catalog.test("K").expect("the bundled catalog has potassium").clone();
    let mut edited = potassium.clone();
    edited.name = "Potassium, serum".into();
    let panel = catalog.panel("BMP").expect("the bundled catalog has the BMP").clone();

    let mut tx = db.store.begin().await.unwrap();
    assert_eq!(
        tx.save_definition(&potassium, 0, "supervisor", "verified on the bench analyzer", AT)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        tx.save_definition(&edited, 1, "director", "name as on the report", at(1)).await.unwrap(),
        2
    );
    tx.save_panel(&panel).await.unwrap();
    tx.commit().await.unwrap();

    let current = db.store.current_definitions().await.unwrap();
    let [k] = &current[..] else { panic!("{current:?}") };
    assert_eq!(
        (k.version, &k.definition, k.created_at, k.created_by.as_str(), k.reason.as_str()),
        (2, &edited, at(1), "director", "name as on the report")
    );
    let history = db.store.definition_history("K").await.unwrap();
    let versions: Vec<_> = history
        .iter()
        .map(|d| (d.version, &d.definition, d.created_by.as_str(), d.reason.as_str()))
        .collect();
    assert_eq!(
        versions,
        [
            (2, &edited, "director", "name as on the report"),
            (1, &potassium, "supervisor", "verified on the bench analyzer")
        ]
    );
    assert_eq!(db.store.panels().await.unwrap(), [panel]);

    // An editor who started from version 1 is too late.
    let mut tx = db.store.begin().await.unwrap();
    assert!(matches!(
        tx.save_definition(&potassium, 1, "supervisor", "late", at(2)).await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn a_definition_or_panel_that_does_not_parse_is_corrupt_data_naming_it() {
    let db = Db::new().await;
    let catalog = Catalog::bundled();
    let mut tx = db.store.begin().await.unwrap();
    tx.save_definition(catalog.test("K").unwrap(), 0, "supervisor", "seed", AT).await.unwrap();
    tx.save_panel(catalog.panel("BMP").unwrap()).await.unwrap();
    tx.commit().await.unwrap();
    db.damage("UPDATE test_definition SET definition = '{\"code\":\"K\"}'").await;
    db.damage("UPDATE panel SET definition = 'BMP'").await;

    let why = db.store.current_definitions().await.unwrap_err().to_string();
    assert!(
        why.contains("corrupt data") && why.contains("test_definition.definition of K version 1"),
        "{why}"
    );
    let why = db.store.panels().await.unwrap_err().to_string();
    assert!(why.contains("corrupt data") && why.contains("panel.definition of BMP"), "{why}");
}

#[tokio::test]
async fn a_synonym_reads_back_as_written_and_a_removal_keeps_its_row() {
    let db = Db::new().await;
    let neg = NewCodedSynonym {
        test_code: "UNIT",
        synonym: "neg",
        written: "NEG",
        coded_value: "Negative",
    };
    let mut tx = db.store.begin().await.unwrap();
    tx.save_coded_synonym(neg, "system", AT).await.unwrap();
    tx.commit().await.unwrap();
    let read = db.store.coded_synonyms().await.unwrap();
    let [row] = &read[..] else { panic!("{read:?}") };
    let written = CodedSynonymRow {
        id: row.id,
        test_code: "UNIT".into(),
        synonym: "neg".into(),
        written: "NEG".into(),
        coded_value: "Negative".into(),
        changed_at: AT,
        changed_by: "system".into(),
        removed_at: None,
    };
    assert_eq!(row, &written);

    let mut tx = db.store.begin().await.unwrap();
    assert!(tx.remove_coded_synonym("UNIT", "neg", "supervisor", at(1)).await.unwrap());
    assert!(!tx.remove_coded_synonym("UNIT", "neg", "supervisor", at(2)).await.unwrap());
    tx.commit().await.unwrap();
    let removed = CodedSynonymRow {
        changed_at: at(1),
        changed_by: "supervisor".into(),
        removed_at: Some(at(1)),
        ..written.clone()
    };
    assert_eq!(db.store.coded_synonyms().await.unwrap(), [removed]);

    // Saved again, the same row is back in force with its new value and who gave it.
    let mut tx = db.store.begin().await.unwrap();
    tx.save_coded_synonym(NewCodedSynonym { written: "neg", ..neg }, "director", at(3))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let back = CodedSynonymRow {
        written: "neg".into(),
        changed_at: at(3),
        changed_by: "director".into(),
        ..written
    };
    assert_eq!(db.store.coded_synonyms().await.unwrap(), [back]);
}
