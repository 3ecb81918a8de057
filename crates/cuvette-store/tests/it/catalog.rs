//! Versioned test definitions and panels, kept as JSON of the domain types.

use cuvette_domain::Catalog;
use cuvette_store::StoreError;

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
