//! Synonyms of coded results, per test: the lab's table, removals kept.

use sqlx::Row;

use crate::{Store, StoreResult, Timestamp, Tx, opt_time, time};

/// A synonym as stored, in force or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodedSynonymRow {
    /// Its id.
    pub id: i64,
    /// The catalog test it belongs to.
    pub test_code: String,
    /// The text as compared (trimmed, lower case, single spaces).
    pub synonym: String,
    /// The text as the lab typed it.
    pub written: String,
    /// The catalog's coded value it stands for.
    pub coded_value: String,
    /// When it was last added or removed.
    pub changed_at: Timestamp,
    /// By whom.
    pub changed_by: String,
    /// When it was removed; `None` while it is in force.
    pub removed_at: Option<Timestamp>,
}

/// A synonym to put in force.
#[derive(Debug, Clone, Copy)]
pub struct NewCodedSynonym<'a> {
    /// The catalog test.
    pub test_code: &'a str,
    /// The text as compared.
    pub synonym: &'a str,
    /// The text as typed.
    pub written: &'a str,
    /// The coded value.
    pub coded_value: &'a str,
}

const COLUMNS: &str =
    "id, test_code, synonym, written, coded_value, changed_at, changed_by, removed_at";

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<CodedSynonymRow> {
    Ok(CodedSynonymRow {
        id: r.try_get("id")?,
        test_code: r.try_get("test_code")?,
        synonym: r.try_get("synonym")?,
        written: r.try_get("written")?,
        coded_value: r.try_get("coded_value")?,
        changed_at: time(r, "changed_at")?,
        changed_by: r.try_get("changed_by")?,
        removed_at: opt_time(r, "removed_at")?,
    })
}

impl Store {
    /// Every synonym of every test, removed ones included, by test and text.
    pub async fn coded_synonyms(&self) -> StoreResult<Vec<CodedSynonymRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM coded_synonym ORDER BY test_code, synonym"
        )))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(from_row).collect()
    }
}

impl Tx {
    /// Puts a synonym in force: a new row, or the row of the same test and text (removed or
    /// not) given this value.
    pub async fn save_coded_synonym(
        &mut self,
        s: NewCodedSynonym<'_>,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO coded_synonym (test_code, synonym, written, coded_value, changed_at, changed_by, removed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL) \
             ON CONFLICT (test_code, synonym) DO UPDATE SET written = excluded.written, \
             coded_value = excluded.coded_value, changed_at = excluded.changed_at, \
             changed_by = excluded.changed_by, removed_at = NULL",
        )
        .bind(s.test_code)
        .bind(s.synonym)
        .bind(s.written)
        .bind(s.coded_value)
        .bind(now.as_micros())
        .bind(by)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Takes a synonym out of force, keeping its row; whether there was one in force.
    pub async fn remove_coded_synonym(
        &mut self,
        test_code: &str,
        synonym: &str,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE coded_synonym SET removed_at = $1, changed_at = $1, changed_by = $2 \
             WHERE test_code = $3 AND synonym = $4 AND removed_at IS NULL",
        )
        .bind(now.as_micros())
        .bind(by)
        .bind(test_code)
        .bind(synonym)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
