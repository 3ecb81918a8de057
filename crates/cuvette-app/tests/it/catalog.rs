//! The test catalog: a supervisor's edit is a new version; results keep the version they were
//! judged by.

use cuvette_app::catalog::ImportMode;
use cuvette_app::records::AuditFilter;
use cuvette_domain::TestDefinition;
use rust_decimal::Decimal;

use crate::support::*;

/// The current definition of `code` and its version.
fn current(lab: &TestLab, code: &str) -> (TestDefinition, i64) {
    let catalog = lab.catalog();
    (catalog.catalog.test(code).cloned().unwrap(), catalog.versions[code])
}

/// Potassium with the adult upper reference limit set to `high`.
fn potassium_up_to(lab: &TestLab, high: Decimal) -> (TestDefinition, i64) {
    let (mut k, version) = current(lab, "K");
    let adult = k.reference.iter_mut().find(|r| r.age_min.as_deref() == Some("P18Y")).unwrap();
    adult.high = Some(high);
    (k, version)
}

#[tokio::test]
async fn editing_a_test_creates_a_new_version_and_a_result_keeps_the_version_it_was_evaluated_with()
{
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let technician = lab.technician().await;
    let before_edit = lab.adult_woman().await;
    let after_edit = lab.adult_man().await;
    lab.received(&before_edit, &["K"]).await;
    lab.received(&after_edit, &["K"]).await;
    assert_eq!(current(&lab, "K").1, 1, "the bundled catalog is version 1");
    assert_eq!(
        lab.enter(&technician, &before_edit, "K", "5.2").await.unwrap()[0].evaluation.flag_codes(),
        "H"
    );

    let (k, version) = potassium_up_to(&lab, Decimal::new(53, 1));
    assert_eq!(lab.save_definition(&supervisor, k, version, REASON).await.unwrap(), 2);
    assert_eq!(current(&lab, "K").1, 2);
    let saved = lab.enter(&technician, &after_edit, "K", "5.2").await.unwrap();
    assert_eq!(
        (saved[0].evaluation.flag_codes().as_str(), saved[0].evaluation.interval.as_str()),
        ("", "3.5–5.3")
    );

    let old = lab.test(&before_edit, "K").await.result.unwrap();
    assert_eq!(
        (old.definition_version, old.flags.codes().as_str(), old.reference_interval.as_str()),
        (1, "H", "3.5–5.1")
    );
    let new = lab.test(&after_edit, "K").await.result.unwrap();
    assert_eq!(
        (new.definition_version, new.flags.codes().as_str(), new.reference_interval.as_str()),
        (2, "", "3.5–5.3")
    );

    let history = lab.definition_history(&supervisor, "K").await.unwrap();
    let versions: Vec<(i64, &str, &str)> =
        history.iter().map(|d| (d.version, d.created_by.as_str(), d.reason.as_str())).collect();
    assert_eq!(
        versions,
        [(2, "supervisor", REASON), (1, "system", "the catalog bundled with Cuvette")]
    );
    let edits = lab
        .audit_trail(AuditFilter {
            entity: Some(("test_definition".into(), "K@2".into())),
            ..Default::default()
        })
        .await;
    assert_eq!(
        edits.iter().map(|e| (e.action.code(), e.actor.as_str())).collect::<Vec<_>>(),
        [("catalog.edit", "supervisor")]
    );
    assert!(
        edits[0].before.as_deref().unwrap().contains("5.1")
            && edits[0].after.as_deref().unwrap().contains("5.3")
    );
}

#[tokio::test]
async fn a_stale_catalog_edit_is_a_conflict() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let director = lab.pathologist().await;
    let (first, opened_at) = potassium_up_to(&lab, Decimal::new(53, 1));
    let (second, _) = potassium_up_to(&lab, Decimal::new(52, 1)); // both opened version 1

    lab.save_definition(&supervisor, first, opened_at, REASON).await.unwrap();
    let events = lab.audit_count().await;
    let message = conflict(lab.save_definition(&director, second, opened_at, REASON).await);

    assert!(message.contains("K") && message.contains("version 2"), "{message}");
    let (k, version) = current(&lab, "K");
    assert_eq!(version, 2);
    assert_eq!(
        k.interval_for(
            cuvette_domain::Sex::Female,
            "1970-01-01".parse().unwrap(),
            "2026-11-24".parse().unwrap()
        )
        .unwrap()
        .display(),
        "3.5–5.3"
    );
    assert_eq!(lab.definition_history(&supervisor, "K").await.unwrap().len(), 2);
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn an_inconsistent_definition_is_refused() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let events = lab.audit_count().await;
    let (k, version) = current(&lab, "K");

    let mut crossed = k.clone();
    crossed.critical_low = Some(Decimal::new(70, 1));
    assert!(
        invalid(lab.save_definition(&supervisor, crossed, version, REASON).await, "definition")
            .contains("critical low")
    );
    let mut bad_band = k.clone();
    bad_band.reference[0].age_min = Some("18 years".into());
    assert!(
        invalid(lab.save_definition(&supervisor, bad_band, version, REASON).await, "definition")
            .contains("P18Y")
    );
    let mut nameless = k.clone();
    nameless.name = "  ".into();
    invalid(lab.save_definition(&supervisor, nameless, version, REASON).await, "definition");

    assert_eq!(current(&lab, "K"), (k, 1));
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn a_new_test_is_defined_and_then_ordered() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let patient = lab.adult_man().await;
    let (mut kwb, _) = current(&lab, "K");
    kwb.code = "KWB".into();
    kwb.name = "Potassium, whole blood".into();
    kwb.container = "blood gas syringe, balanced heparin".into();

    assert_eq!(lab.save_definition(&supervisor, kwb.clone(), 0, REASON).await.unwrap(), 1);
    conflict(lab.save_definition(&supervisor, kwb, 0, REASON).await);
    let placed = lab.order(&patient, &["kwb", "K"]).await;
    assert_eq!(placed.specimens.len(), 2, "its own container");
    assert_eq!(placed.specimens[0].tests, ["KWB"]);
}

#[tokio::test]
async fn reopening_the_lab_keeps_the_catalog_and_does_not_seed_it_again() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let (k, version) = potassium_up_to(&lab, Decimal::new(53, 1));
    lab.save_definition(&supervisor, k.clone(), version, REASON).await.unwrap();

    let restarted = lab.reopen().await;
    let catalog = restarted.catalog();
    assert_eq!((catalog.catalog.test("K"), catalog.versions["K"]), (Some(&k), 2));
    assert_eq!(catalog.versions.len(), lab.catalog().versions.len());
    let seeds = lab
        .audit_trail(AuditFilter::default())
        .await
        .into_iter()
        .filter(|e| e.action.code() == "catalog.seed")
        .map(|e| e.entity)
        .collect::<Vec<_>>();
    assert_eq!(seeds, ["catalog", "coded_synonym"], "the catalog and its synonyms, once each");
}

#[tokio::test]
async fn a_test_code_the_catalog_accepts_can_be_ordered() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let patient = lab.adult_man().await;
    let phlebotomist = lab.phlebotomist().await;
    let mut unorderable = Vec::new();
    for code in ["vitd", "K WB"] {
        let (mut def, _) = current(&lab, "K");
        def.code = code.into();
        def.name = format!("New test {code}");
        match lab.save_definition(&supervisor, def, 0, REASON).await {
            Err(cuvette_app::AppError::Invalid(_)) => {} // refused at once: fine
            Err(other) => panic!("{code}: {other:?}"),
            Ok(_) => {
                if let Err(e) =
                    lab.place_order(&phlebotomist, &order_form(patient.id, &[code])).await
                {
                    unorderable.push(format!("{code:?} was saved but cannot be ordered: {e}"));
                }
            }
        }
    }
    assert!(unorderable.is_empty(), "{}", unorderable.join("\n"));
}

#[tokio::test]
async fn a_catalog_change_without_a_reason_is_refused_and_nothing_is_stored() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let events = lab.audit_count().await;
    let (k, version) = potassium_up_to(&lab, Decimal::new(53, 1));
    let words = invalid(lab.save_definition(&supervisor, k, version, "  ").await, "reason");
    assert_eq!(
        words,
        "give the reason for the change, such as the verification or source it follows"
    );
    assert_eq!(current(&lab, "K").1, 1);
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn an_exported_catalog_imported_unchanged_makes_no_new_version() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let events = lab.audit_count().await;
    let file = lab.export_catalog(&supervisor).unwrap();
    let import = lab.import_catalog(&supervisor, &file, REASON, ImportMode::Apply).await.unwrap();
    assert_eq!((import.tests.len(), import.panels.len()), (0, 0));
    assert_eq!(import.unchanged, lab.catalog().versions.len());
    assert!(lab.catalog().versions.values().all(|v| *v == 1));
    assert_eq!(lab.audit_count().await, events);
}

#[tokio::test]
async fn an_import_with_one_changed_test_makes_one_version_with_its_reason_and_actor() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let file = lab.export_catalog(&supervisor).unwrap().replacen(
        "critical_high = 6.2",
        "critical_high = 6.5",
        1,
    );

    let preview = lab.import_catalog(&supervisor, &file, "", ImportMode::Preview).await.unwrap();
    assert_eq!(preview.tests.iter().map(|t| t.code.as_str()).collect::<Vec<_>>(), ["K"]);
    assert!(!preview.applied);
    assert_eq!(current(&lab, "K").1, 1, "a preview stores nothing");

    assert_eq!(
        invalid(lab.import_catalog(&supervisor, &file, "", ImportMode::Apply).await, "reason"),
        "give the reason for the change, such as the verification or source it follows"
    );
    let import = lab.import_catalog(&supervisor, &file, REASON, ImportMode::Apply).await.unwrap();
    assert_eq!(import.tests[0].version, Some(2));
    assert_eq!(current(&lab, "K").0.critical_high, Some(Decimal::new(65, 1)));
    let versions = lab.catalog().versions.clone();
    assert_eq!(versions.values().filter(|v| **v == 2).count(), 1, "only potassium changed");
    let history = lab.definition_history(&supervisor, "K").await.unwrap();
    assert_eq!(
        (history[0].created_by.as_str(), history[0].reason.as_str()),
        ("supervisor", REASON)
    );
    let imports = lab
        .audit_trail(AuditFilter::default())
        .await
        .into_iter()
        .filter(|e| e.action.code() == "catalog.import")
        .collect::<Vec<_>>();
    assert_eq!(imports.len(), 1);
    assert!(imports[0].after.as_deref().unwrap().contains("K@2"));
    let diff = lab.definition_diff(&supervisor, "K", 1, 2).await.unwrap().diff;
    assert_eq!(
        diff.limits
            .iter()
            .map(|c| (c.field, c.before.as_str(), c.after.as_str()))
            .collect::<Vec<_>>(),
        [("critical high", "6.2", "6.5")]
    );
}

#[tokio::test]
async fn an_import_with_a_gap_is_refused_whole_naming_the_gap() {
    let lab = lab().await;
    let supervisor = lab.supervisor().await;
    let events = lab.audit_count().await;
    let file = lab
        .export_catalog(&supervisor)
        .unwrap()
        .replacen("critical_high = 6.2", "critical_high = 6.5", 1)
        .replacen(
            "age_min = \"P1Y\"\nage_max = \"P18Y\"",
            "age_min = \"P2Y\"\nage_max = \"P18Y\"",
            1,
        );
    let refused = lab.import_catalog(&supervisor, &file, REASON, ImportMode::Apply).await;
    let words = invalid(refused, "catalog");
    assert!(words.contains("no reference interval from 1 year to 2 years"), "{words}");
    assert_eq!(current(&lab, "K").1, 1, "not even the change without a gap is stored");
    assert_eq!(lab.audit_count().await, events);
}
