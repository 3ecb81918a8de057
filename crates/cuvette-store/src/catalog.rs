//! Versioned test definitions and panels, stored as JSON of the domain types.

use cuvette_domain::TestDefinition;
use cuvette_domain::catalog::Panel;
use sqlx::Row;

use crate::{Store, StoreError, StoreResult, Timestamp, Tx, time};

/// A definition with its version.
#[derive(Debug, Clone)]
pub struct StoredDefinition {
    /// The version, from 1.
    pub version: i64,
    /// The definition.
    pub definition: TestDefinition,
    /// When it was saved.
    pub created_at: Timestamp,
    /// Who saved it.
    pub created_by: String,
    /// Why: the verification or source the change follows (empty for versions saved before
    /// reasons were recorded).
    pub reason: String,
}

fn unencodable(e: serde_json::Error) -> StoreError {
    StoreError::Other(sqlx::Error::Encode(Box::new(e)))
}

/// A stored definition that does not parse as its domain type is corrupt data naming the
/// table's column and the row (its code, and version): never skipped, never a default.
fn corrupt(column: &str, row: &str, e: serde_json::Error) -> StoreError {
    StoreError::CorruptColumn { column: format!("{column} of {row}"), reason: e.to_string() }
}

impl Tx {
    /// Saves a new version of a definition with why it was made; `expected_version` is the
    /// version the editor started from (0 for a new test), so two supervisors editing at once
    /// conflict instead of one silently overwriting the other.
    pub async fn save_definition(
        &mut self,
        definition: &TestDefinition,
        expected_version: i64,
        by: &str,
        reason: &str,
        now: Timestamp,
    ) -> StoreResult<i64> {
        let current: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM test_definition WHERE code = $1")
                .bind(&definition.code)
                .fetch_one(self.conn())
                .await?;
        let current = current.unwrap_or(0);
        if current != expected_version {
            return Err(StoreError::Conflict(format!(
                "{} was changed by someone else (now version {current}); reload and edit again",
                definition.code
            )));
        }
        let version = current + 1;
        let json = serde_json::to_string(definition).map_err(unencodable)?;
        sqlx::query(
            "INSERT INTO test_definition (code, version, definition, created_at, created_by, reason) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&definition.code)
        .bind(version)
        .bind(json)
        .bind(now.as_micros())
        .bind(by)
        .bind(reason)
        .execute(self.conn())
        .await
        .map_err(|e| StoreError::on_unique(e, &format!("{} was saved by someone else at the same time", definition.code)))?;
        Ok(version)
    }

    /// Adds or replaces a panel.
    pub async fn save_panel(&mut self, panel: &Panel) -> StoreResult<()> {
        let json = serde_json::to_string(panel).map_err(unencodable)?;
        sqlx::query(
            "INSERT INTO panel (code, definition) VALUES ($1, $2) ON CONFLICT (code) DO UPDATE SET definition = excluded.definition",
        )
        .bind(&panel.code)
        .bind(json)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

impl Store {
    /// The current version of every definition.
    pub async fn current_definitions(&self) -> StoreResult<Vec<StoredDefinition>> {
        let rows = sqlx::query(
            "SELECT d.code, d.version, d.definition, d.created_at, d.created_by, d.reason FROM test_definition d \
             WHERE d.version = (SELECT MAX(v.version) FROM test_definition v WHERE v.code = d.code) ORDER BY d.code",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(stored_from_row).collect()
    }

    /// Every version of one definition, newest first.
    pub async fn definition_history(&self, code: &str) -> StoreResult<Vec<StoredDefinition>> {
        let rows = sqlx::query(
            "SELECT code, version, definition, created_at, created_by, reason FROM test_definition WHERE code = $1 ORDER BY version DESC",
        )
        .bind(code)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(stored_from_row).collect()
    }

    /// Every panel.
    pub async fn panels(&self) -> StoreResult<Vec<Panel>> {
        let rows = sqlx::query("SELECT code, definition FROM panel ORDER BY code")
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                let code: String = r.try_get("code")?;
                serde_json::from_str(&r.try_get::<String, _>("definition")?)
                    .map_err(|e| corrupt("panel.definition", &code, e))
            })
            .collect()
    }
}

fn stored_from_row(r: &sqlx::any::AnyRow) -> StoreResult<StoredDefinition> {
    let (code, version): (String, i64) = (r.try_get("code")?, r.try_get("version")?);
    Ok(StoredDefinition {
        version,
        definition: serde_json::from_str(&r.try_get::<String, _>("definition")?).map_err(|e| {
            corrupt("test_definition.definition", &format!("{code} version {version}"), e)
        })?,
        created_at: time(r, "created_at")?,
        created_by: r.try_get("created_by")?,
        reason: r.try_get("reason")?,
    })
}
