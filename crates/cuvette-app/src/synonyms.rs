//! Synonyms of coded results: the lab's table per test, seeded with the shipped defaults,
//! kept in memory with the catalog and applied to every coded result, from an instrument or
//! the bench, before it is judged.

use cuvette_domain::audit::AuditAction;
use cuvette_domain::synonyms::{self, Synonyms};
use cuvette_domain::{Action, Catalog, ReportedValue, TestDefinition};
use serde::Deserialize;

use crate::results::Sent;
use crate::{Actor, AppError, AppResult, Lab, LabCatalog, audit, records};

/// A synonym as typed on the test's page or sent to the API.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SynonymForm {
    /// The text the instrument or the bench writes ("NEG", "1+").
    pub synonym: String,
    /// The catalog's coded value it stands for ("Negative").
    pub coded_value: String,
}

/// A result as read for its test: a coded test's text (or its synonym) becomes the catalog's
/// coded value, with the text as sent kept beside it; a unit sent with a result of a test
/// that has none is kept beside it too. A result already converted from another unit, and
/// text that stands for no value, are as they came (the latter is flagged invalid when
/// judged, and so held for review).
pub(crate) fn read_for_test(
    catalog: &LabCatalog,
    def: &TestDefinition,
    value: ReportedValue,
    sent: Option<Sent>,
    sent_unit: &str,
) -> (ReportedValue, Option<Sent>) {
    if sent.is_some() {
        return (value, sent);
    }
    let sent_unit = sent_unit.trim();
    let unit = (def.unit.is_empty() && !sent_unit.is_empty()).then(|| sent_unit.to_owned());
    match catalog.synonyms.coded_value(def, &value.text) {
        Some(coded) if coded != value.text => match ReportedValue::parse(coded) {
            Ok(coded) => (coded, Some(Sent { value: value.text, unit })),
            // A catalog value is never empty or too long (`Catalog::validate`); should one
            // be, the text stays as sent and is judged as such.
            Err(_) => (value, None),
        },
        _ => match unit {
            Some(unit) => {
                let text = value.text.clone();
                (value, Some(Sent { value: text, unit: Some(unit) }))
            }
            None => (value, None),
        },
    }
}

/// The synonyms in force, as the catalog's cache holds them.
pub(crate) fn in_force(
    rows: &[records::CodedSynonymRow],
) -> (Synonyms, Vec<records::CodedSynonymRow>) {
    let mut table = Synonyms::default();
    let rows: Vec<_> = rows.iter().filter(|r| r.removed_at.is_none()).cloned().collect();
    for r in &rows {
        table.insert(&r.test_code, &r.synonym, &r.coded_value);
    }
    (table, rows)
}

/// `catalog.synonym_add` and `catalog.synonym_remove`: one synonym of one test.
#[derive(serde::Serialize)]
struct SynonymState<'a> {
    test: &'a str,
    synonym: &'a str,
    coded_value: &'a str,
}

/// `catalog.seed` of the synonyms: how many were put in force.
#[derive(serde::Serialize)]
struct SynonymsSeeded {
    synonyms: usize,
}

impl Lab {
    /// The synonyms in force for a coded test, by text.
    pub fn coded_synonyms(&self, test_code: &str) -> AppResult<Vec<records::CodedSynonymRow>> {
        let catalog = self.catalog();
        if catalog.catalog.test(test_code).is_none() {
            return Err(AppError::NotFound(format!("no test {test_code} in the catalog")));
        }
        Ok(catalog.synonym_rows.iter().filter(|r| r.test_code == test_code).cloned().collect())
    }

    /// Adds a synonym to a coded test (those who edit the catalog). Refused, in the words the
    /// page and the API show beside the field, when the test is not coded, the text is empty,
    /// too long or itself one of the test's values, the value is not one of them, or the
    /// text already stands for another value.
    pub async fn add_coded_synonym(
        &self,
        actor: &Actor,
        test_code: &str,
        form: &SynonymForm,
    ) -> AppResult<records::CodedSynonymRow> {
        self.require(actor, Action::EditCatalog)?;
        let catalog = self.catalog();
        let def = catalog
            .catalog
            .test(test_code)
            .ok_or_else(|| AppError::NotFound(format!("no test {test_code} in the catalog")))?;
        let value = synonyms::check(def, &form.synonym, &form.coded_value).map_err(|e| {
            let field = match e {
                synonyms::SynonymRefusal::UnknownValue { .. } => "coded_value",
                _ => "synonym",
            };
            AppError::invalid(field, e.to_string())
        })?;
        let key = synonyms::normalize(&form.synonym);
        if let Some(other) = catalog
            .synonym_rows
            .iter()
            .find(|r| r.test_code == test_code && r.synonym == key && r.coded_value != value)
        {
            return Err(AppError::invalid(
                "synonym",
                format!(
                    "{:?} already stands for {:?} on {test_code}: remove it first",
                    form.synonym.trim(),
                    other.coded_value
                ),
            ));
        }
        let written = form.synonym.trim();
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.save_coded_synonym(
            cuvette_store::NewCodedSynonym {
                test_code,
                synonym: &key,
                written,
                coded_value: &value,
            },
            &actor.name,
            now,
        )
        .await?;
        tx.audit(cuvette_store::NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::CatalogSynonymAdd,
            entity: "coded_synonym",
            entity_id: format!("{test_code}/{key}"),
            patient_id: None,
            before: None,
            after: audit::state(&SynonymState {
                test: test_code,
                synonym: written,
                coded_value: &value,
            }),
        })
        .await?;
        tx.commit().await?;
        self.reload_catalog().await?;
        self.coded_synonyms(test_code)?
            .into_iter()
            .find(|r| r.synonym == key)
            .ok_or_else(|| AppError::NotFound(format!("the synonym {written:?} of {test_code}")))
    }

    /// Takes a synonym of a test out of force (those who edit the catalog); results already
    /// read through it keep the value and the text as sent.
    pub async fn remove_coded_synonym(
        &self,
        actor: &Actor,
        test_code: &str,
        synonym: &str,
    ) -> AppResult<()> {
        self.require(actor, Action::EditCatalog)?;
        let key = synonyms::normalize(synonym);
        let Some(current) = self.coded_synonyms(test_code)?.into_iter().find(|r| r.synonym == key)
        else {
            return Err(AppError::NotFound(format!(
                "{test_code} has no synonym {:?}",
                synonym.trim()
            )));
        };
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.remove_coded_synonym(test_code, &key, &actor.name, now).await?;
        tx.audit(cuvette_store::NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::CatalogSynonymRemove,
            entity: "coded_synonym",
            entity_id: format!("{test_code}/{key}"),
            patient_id: None,
            before: audit::state(&SynonymState {
                test: test_code,
                synonym: &current.written,
                coded_value: &current.coded_value,
            }),
            after: None,
        })
        .await?;
        tx.commit().await?;
        self.reload_catalog().await
    }

    /// Puts the shipped synonyms in force when the table has never held any (a new lab, or
    /// one that had the catalog before synonyms existed); removals are kept as rows, so the
    /// lab's removals are never undone.
    pub(crate) async fn seed_synonyms(&self) -> AppResult<()> {
        if !self.store.coded_synonyms().await?.is_empty() {
            return Ok(());
        }
        let catalog: Catalog = self.catalog().catalog.clone();
        let defaults = synonyms::defaults(&catalog);
        if defaults.is_empty() {
            return Ok(());
        }
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        for (test_code, synonym, coded_value) in &defaults {
            let key = synonyms::normalize(synonym);
            tx.save_coded_synonym(
                cuvette_store::NewCodedSynonym {
                    test_code,
                    synonym: &key,
                    written: synonym,
                    coded_value,
                },
                "system",
                now,
            )
            .await?;
        }
        tx.audit(cuvette_store::NewAuditEvent {
            at: now,
            actor: "system",
            action: AuditAction::CatalogSeed,
            entity: "coded_synonym",
            entity_id: "bundled".into(),
            patient_id: None,
            before: None,
            after: audit::state(&SynonymsSeeded { synonyms: defaults.len() }),
        })
        .await?;
        tx.commit().await?;
        self.reload_catalog().await
    }
}
