//! The catalog as data the lab owns: each change a new version with who, when and why; the
//! whole catalog exported as one TOML file in the bundled files' shape and imported back (all
//! or nothing, only the tests that changed becoming new versions, a preview first); and what
//! changed between two versions of a test.

use cuvette_domain::audit::AuditAction;
use cuvette_domain::catalog::{CatalogError, CatalogFile};
use cuvette_domain::definition_diff::{self, DefinitionDiff};
use cuvette_domain::{Action, TestDefinition};

use crate::{Actor, AppError, AppResult, FieldError, Lab, audit, records};

/// The longest reason kept with a catalog change.
pub const REASON_CHARS_MAX: usize = 1_000;

/// Whether an import is only looked at or carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Show what would change; store nothing.
    Preview,
    /// Store every change, or none.
    Apply,
}

/// What an import changes (or, previewed, would change).
#[derive(Debug, Clone)]
pub struct CatalogImport {
    /// The tests the file adds or changes, by code.
    pub tests: Vec<ImportedTest>,
    /// Panels the file adds or changes, by code.
    pub panels: Vec<String>,
    /// Tests in the file identical to the catalog's current version.
    pub unchanged: usize,
    /// Whether the changes were stored.
    pub applied: bool,
}

/// A test an import adds or changes.
#[derive(Debug, Clone)]
pub struct ImportedTest {
    /// Its code.
    pub code: String,
    /// Its name, as the file gives it.
    pub name: String,
    /// The version it replaces; `None` for a new test.
    pub replaces: Option<i64>,
    /// The version the import stored; `None` in a preview.
    pub version: Option<i64>,
    /// What changes from the current version (for a new test, from an empty one).
    pub diff: DefinitionDiff,
}

/// Two versions of a test and what changed between them.
#[derive(Debug, Clone)]
pub struct VersionDiff {
    /// The earlier version.
    pub from: records::StoredDefinition,
    /// The later version.
    pub to: records::StoredDefinition,
    /// What changed.
    pub diff: DefinitionDiff,
}

/// The reason typed with a change, trimmed; refused when empty or too long.
fn reason_given(reason: &str) -> Result<String, FieldError> {
    let reason = reason.trim();
    let refuse = |message: String| FieldError { field: "reason".into(), message };
    if reason.is_empty() {
        return Err(refuse(
            "give the reason for the change, such as the verification or source it follows".into(),
        ));
    }
    if reason.chars().count() > REASON_CHARS_MAX {
        return Err(refuse(format!(
            "the reason is longer than {REASON_CHARS_MAX} characters: shorten it and refer to the verification record"
        )));
    }
    Ok(reason.to_owned())
}

fn catalog_errors(field: &str, errors: Vec<CatalogError>) -> Vec<FieldError> {
    errors.into_iter().map(|e| FieldError { field: field.into(), message: e.to_string() }).collect()
}

impl Lab {
    /// Saves a supervisor's edit of a test definition as a new version, with why it was made.
    /// The definition is refused, naming the gap, when its partitions leave an age uncovered
    /// between two others or overlap, or a critical limit lies inside a reference interval.
    pub async fn save_definition(
        &self,
        actor: &Actor,
        definition: TestDefinition,
        expected_version: i64,
        reason: &str,
    ) -> AppResult<i64> {
        self.require(actor, Action::EditCatalog)?;
        let current = self.catalog();
        let code = definition.code.clone();
        let changed = current.catalog.with(CatalogFile { tests: vec![definition], panels: vec![] });
        let mut errors =
            catalog_errors("definition", changed.check_changed(std::slice::from_ref(&code), &[]));
        let reason = reason_given(reason).map_err(|e| errors.push(e)).unwrap_or_default();
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        // `with` gives a calculation its inputs' bench when the edit left it empty.
        let definition = changed
            .test(&code)
            .cloned()
            .ok_or_else(|| AppError::NotFound(format!("no test {code} in the catalog")))?;
        let before = current.catalog.test(&code).cloned();
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let version =
            tx.save_definition(&definition, expected_version, &actor.name, &reason, now).await?;
        tx.audit(cuvette_store::NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::CatalogEdit,
            entity: "test_definition",
            entity_id: format!("{code}@{version}"),
            patient_id: None,
            before: before.and_then(|b| audit::state(&b)),
            after: audit::state(&audit::DefinitionSaved {
                reason: &reason,
                definition: &definition,
            }),
        })
        .await?;
        tx.commit().await?;
        self.reload_catalog().await?;
        Ok(version)
    }

    /// Every stored version of a definition, newest first, each with who saved it, when and
    /// why.
    pub async fn definition_history(
        &self,
        actor: &Actor,
        code: &str,
    ) -> AppResult<Vec<records::StoredDefinition>> {
        self.require(actor, Action::EditCatalog)?;
        Ok(self.store.definition_history(code).await?)
    }

    /// What changed in test `code` from version `from` to version `to`.
    pub async fn definition_diff(
        &self,
        actor: &Actor,
        code: &str,
        from: i64,
        to: i64,
    ) -> AppResult<VersionDiff> {
        let history = self.definition_history(actor, code).await?;
        let version = |v: i64| {
            history.iter().find(|d| d.version == v).cloned().ok_or_else(|| {
                AppError::NotFound(match history.first() {
                    Some(newest) => format!(
                        "{code} has no version {v}: its versions are 1 to {}",
                        newest.version
                    ),
                    None => format!("no test {code} in the catalog"),
                })
            })
        };
        let (from, to) = (version(from)?, version(to)?);
        let diff = definition_diff::compare(&from.definition, &to.definition);
        Ok(VersionDiff { from, to, diff })
    }

    /// The whole current catalog as one TOML file in the shape of the bundled ones, for the
    /// lab to keep, edit and import back.
    pub fn export_catalog(&self, actor: &Actor) -> AppResult<String> {
        self.require(actor, Action::EditCatalog)?;
        Ok(self.catalog().catalog.to_toml())
    }

    /// Imports a catalog file (the whole catalog, or only the tests and panels it changes):
    /// each test that differs from its current version becomes a new version with the actor
    /// and the reason; identical ones are left as they are. All or nothing: a file that does
    /// not parse, or in which any changed test has a gap, is refused naming every problem,
    /// and nothing is stored. `ImportMode::Preview` says what would change and stores nothing.
    pub async fn import_catalog(
        &self,
        actor: &Actor,
        file: &str,
        reason: &str,
        mode: ImportMode,
    ) -> AppResult<CatalogImport> {
        self.require(actor, Action::EditCatalog)?;
        let parsed =
            CatalogFile::parse(file).map_err(|e| AppError::invalid("catalog", e.to_string()))?;
        let current = self.catalog();
        let codes: Vec<String> = parsed.tests.iter().map(|t| t.code.clone()).collect();
        let panel_codes: Vec<String> = parsed.panels.iter().map(|p| p.code.clone()).collect();
        let merged = current.catalog.with(parsed);
        let mut tests = Vec::new();
        let mut unchanged = 0;
        for code in &codes {
            let Some(imported) = merged.test(code) else { continue };
            match current.catalog.test(code) {
                Some(existing) if existing == imported => unchanged += 1,
                existing => tests.push(ImportedTest {
                    code: code.clone(),
                    name: imported.name.clone(),
                    replaces: existing.and(current.versions.get(code).copied()),
                    version: None,
                    diff: definition_diff::compare(
                        &existing.cloned().unwrap_or_else(|| empty_like(imported)),
                        imported,
                    ),
                }),
            }
        }
        let panels: Vec<String> = panel_codes
            .into_iter()
            .filter(|code| current.catalog.panel(code) != merged.panel(code))
            .collect();
        let changed: Vec<String> = tests.iter().map(|t| t.code.clone()).collect();
        let mut errors = catalog_errors("catalog", merged.check_changed(&changed, &panels));
        let reason = match mode {
            ImportMode::Preview => String::new(),
            ImportMode::Apply => {
                reason_given(reason).map_err(|e| errors.push(e)).unwrap_or_default()
            }
        };
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let mut import = CatalogImport { tests, panels, unchanged, applied: false };
        if mode == ImportMode::Preview || (import.tests.is_empty() && import.panels.is_empty()) {
            // Nothing to store: an unchanged catalog makes no version and no event.
            import.applied = mode == ImportMode::Apply;
            return Ok(import);
        }
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let mut stored = Vec::new();
        for t in &mut import.tests {
            // Checked above: every changed code is in the merged catalog.
            let Some(definition) = merged.test(&t.code) else { continue };
            let version = tx
                .save_definition(definition, t.replaces.unwrap_or(0), &actor.name, &reason, now)
                .await?;
            t.version = Some(version);
            stored.push(format!("{}@{version}", t.code));
            tx.audit(cuvette_store::NewAuditEvent {
                at: now,
                actor: &actor.name,
                action: AuditAction::CatalogEdit,
                entity: "test_definition",
                entity_id: format!("{}@{version}", t.code),
                patient_id: None,
                before: current.catalog.test(&t.code).and_then(audit::state),
                after: audit::state(&audit::DefinitionSaved { reason: &reason, definition }),
            })
            .await?;
        }
        for code in &import.panels {
            if let Some(panel) = merged.panel(code) {
                tx.save_panel(panel).await?;
            }
        }
        let panels_before: Vec<_> =
            import.panels.iter().filter_map(|c| current.catalog.panel(c)).collect();
        let panels_after: Vec<_> = import.panels.iter().filter_map(|c| merged.panel(c)).collect();
        tx.audit(cuvette_store::NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::CatalogImport,
            entity: "catalog",
            entity_id: "import".into(),
            patient_id: None,
            before: audit::state(&audit::CatalogImported {
                reason: None,
                tests: import
                    .tests
                    .iter()
                    .filter_map(|t| t.replaces.map(|v| format!("{}@{v}", t.code)))
                    .collect(),
                panels: panels_before,
            }),
            after: audit::state(&audit::CatalogImported {
                reason: Some(&reason),
                tests: stored,
                panels: panels_after,
            }),
        })
        .await?;
        tx.commit().await?;
        self.reload_catalog().await?;
        import.applied = true;
        Ok(import)
    }
}

/// A definition with nothing in it but its code, name and type: what a new test is compared
/// with.
fn empty_like(t: &TestDefinition) -> TestDefinition {
    TestDefinition {
        code: t.code.clone(),
        name: String::new(),
        loinc: String::new(),
        discipline: String::new(),
        complexity: t.complexity,
        specimen: String::new(),
        container: String::new(),
        unit: String::new(),
        result_type: t.result_type,
        allowed_values: vec![],
        normal_values: vec![],
        decimals: None,
        reference: vec![],
        critical_low: None,
        critical_high: None,
        critical_by_age: vec![],
        amr_low: None,
        amr_high: None,
        tea_percent: None,
        tea_absolute: None,
        delta_abs: None,
        delta_percent: None,
        delta_window_hours: None,
        calculation: None,
        orderable: t.orderable,
    }
}
