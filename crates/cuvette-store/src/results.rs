//! Result versions and critical-value calls.

use sqlx::Row;
use sqlx::any::AnyRow;

use cuvette_domain::workflow::ReleaseStatus;
use cuvette_domain::{Flags, Review, Role};

use crate::{Store, StoreResult, Timestamp, Tx, code_at, opt_code_at, opt_i64, opt_time, time};

/// A result version to write.
#[derive(Debug, Clone)]
pub struct NewResult<'a> {
    /// The ordered test.
    pub ordered_test_id: i64,
    /// The version: one more than the test's latest.
    pub version: i64,
    /// Exactly what was reported.
    pub value_text: &'a str,
    /// The number in it, for range queries and statistics.
    pub value_number: Option<f64>,
    /// What the report prints.
    pub report_text: &'a str,
    /// Unit.
    pub unit: &'a str,
    /// Flags, most severe first.
    pub flags: &'a Flags,
    /// Reference interval as printed.
    pub reference_interval: &'a str,
    /// Who must review it.
    pub review: Review,
    /// Why it needs review, one sentence each (kept as a JSON array).
    pub reasons: &'a [String],
    /// The definition version it was evaluated with.
    pub definition_version: i64,
    /// Who entered it.
    pub entered_by: &'a str,
    /// Their role at the time.
    pub entered_by_role: Role,
    /// Why a released result was corrected.
    pub correction_reason: Option<&'a str>,
    /// What the instrument flagged, in its own codes (none for manual entry).
    pub instrument_flags: &'a [String],
    /// The instrument that measured it.
    pub instrument_id: Option<i64>,
    /// The autoverification decision with its trace (JSON), when a rule set ran.
    pub autoverify: Option<&'a str>,
    /// Who released it as it was written (autoverification), if anyone.
    pub released_by: Option<&'a str>,
    /// Its release status then (final).
    pub release_status: Option<ReleaseStatus>,
    /// The value as the instrument sent it, when it was converted to the catalog's unit.
    pub sent_value: Option<&'a str>,
    /// The unit it was sent in (UCUM), when it was converted.
    pub sent_unit: Option<&'a str>,
    /// How its sender reported it, when not final (HL7 OBX-11, ASTM R-9).
    pub reported_as: Option<ReleaseStatus>,
}

/// A stored result version.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResultRow {
    /// Internal id.
    pub id: i64,
    /// The ordered test.
    pub ordered_test_id: i64,
    /// Version, from 1.
    pub version: i64,
    /// Exactly what was reported.
    pub value_text: String,
    /// What the report prints.
    pub report_text: String,
    /// Unit.
    pub unit: String,
    /// Flags, most severe first.
    pub flags: Flags,
    /// Reference interval as printed.
    pub reference_interval: String,
    /// Who must review it.
    pub review: Review,
    /// Why it needs review, one sentence each.
    pub reasons: Vec<String>,
    /// The definition version used.
    pub definition_version: i64,
    /// Entry time.
    pub entered_at: Timestamp,
    /// Who entered it.
    pub entered_by: String,
    /// Their role at the time.
    pub entered_by_role: Role,
    /// Correction reason.
    pub correction_reason: Option<String>,
    /// Release time.
    pub released_at: Option<Timestamp>,
    /// Who released it.
    pub released_by: Option<String>,
    /// How it was released, if it was.
    pub release_status: Option<ReleaseStatus>,
    /// What the instrument flagged, in its own codes (kept space-separated).
    pub instrument_flags: Vec<String>,
    /// The instrument that measured it.
    pub instrument_id: Option<i64>,
    /// The autoverification decision with its trace (JSON).
    pub autoverify: Option<String>,
    /// The value as the instrument sent it, when it was converted to the catalog's unit.
    pub sent_value: Option<String>,
    /// The unit it was sent in (UCUM), when it was converted.
    pub sent_unit: Option<String>,
    /// How its sender reported it, when not final (HL7 OBX-11, ASTM R-9): a preliminary
    /// result is released only as preliminary.
    pub reported_as: Option<ReleaseStatus>,
}

/// The result columns, prefixed `r_`, for joins.
pub(crate) const RESULT_COLUMNS_R: &str = "r.id AS r_id, r.ordered_test_id AS r_ordered_test_id, r.version AS r_version, \
    r.value_text AS r_value_text, r.report_text AS r_report_text, r.unit AS r_unit, r.flags AS r_flags, \
    r.reference_interval AS r_reference_interval, r.review AS r_review, r.reasons AS r_reasons, \
    r.definition_version AS r_definition_version, r.entered_at AS r_entered_at, r.entered_by AS r_entered_by, \
    r.entered_by_role AS r_entered_by_role, r.correction_reason AS r_correction_reason, r.released_at AS r_released_at, \
    r.released_by AS r_released_by, r.release_status AS r_release_status, r.instrument_flags AS r_instrument_flags, \
    r.instrument_id AS r_instrument_id, r.autoverify AS r_autoverify, r.sent_value AS r_sent_value, \
    r.sent_unit AS r_sent_unit, r.reported_as AS r_reported_as";

pub(crate) fn result_from_row_prefixed(r: &AnyRow) -> StoreResult<ResultRow> {
    Ok(ResultRow {
        id: r.try_get("r_id")?,
        ordered_test_id: r.try_get("r_ordered_test_id")?,
        version: r.try_get("r_version")?,
        value_text: r.try_get("r_value_text")?,
        report_text: r.try_get("r_report_text")?,
        unit: r.try_get("r_unit")?,
        flags: code_at(r, "result", "r_id", "r_flags", "flags", |c| Flags::parse(c).ok())?,
        reference_interval: r.try_get("r_reference_interval")?,
        review: code_at(r, "result", "r_id", "r_review", "review", Review::parse)?,
        reasons: code_at(r, "result", "r_id", "r_reasons", "reasons", |json| {
            serde_json::from_str(json).ok()
        })?,
        definition_version: r.try_get("r_definition_version")?,
        entered_at: time(r, "r_entered_at")?,
        entered_by: r.try_get("r_entered_by")?,
        entered_by_role: code_at(
            r,
            "result",
            "r_id",
            "r_entered_by_role",
            "entered_by_role",
            Role::parse,
        )?,
        correction_reason: r.try_get("r_correction_reason")?,
        released_at: opt_time(r, "r_released_at")?,
        released_by: r.try_get("r_released_by")?,
        release_status: opt_code_at(
            r,
            "result",
            "r_id",
            "r_release_status",
            "release_status",
            ReleaseStatus::parse,
        )?,
        instrument_flags: r
            .try_get::<String, _>("r_instrument_flags")?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        instrument_id: opt_i64(r, "r_instrument_id")?,
        autoverify: r.try_get("r_autoverify")?,
        sent_value: r.try_get("r_sent_value")?,
        sent_unit: r.try_get("r_sent_unit")?,
        reported_as: opt_code_at(
            r,
            "result",
            "r_id",
            "r_reported_as",
            "reported_as",
            ReleaseStatus::parse,
        )?,
    })
}

/// A documented critical-value call to write.
#[derive(Debug, Clone)]
pub struct NewCriticalCall<'a> {
    /// The ordered test.
    pub ordered_test_id: i64,
    /// The result version that was called.
    pub result_version: i64,
    /// Who was called (name and role).
    pub called_person: &'a str,
    /// Who called.
    pub called_by: &'a str,
    /// When the result was given.
    pub called_at: Timestamp,
    /// Whether the recipient read the result back.
    pub read_back: bool,
    /// Number called, attempts, anything else.
    pub notes: &'a str,
}

/// A documented call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CriticalCallRow {
    /// Internal id.
    pub id: i64,
    /// The ordered test.
    pub ordered_test_id: i64,
    /// The result version called.
    pub result_version: i64,
    /// Who was called.
    pub called_person: String,
    /// Who called.
    pub called_by: String,
    /// When.
    pub called_at: Timestamp,
    /// Read back.
    pub read_back: bool,
    /// Notes.
    pub notes: String,
    /// When it was documented.
    pub documented_at: Timestamp,
}

impl Tx {
    /// Stores result versions in as few statements as their number allows (an analyzer's
    /// panel arrives at once). Each version must be the one after the test's latest: the
    /// caller read that with the test's row version, and the unique (test, version) key
    /// refuses a version someone else wrote meanwhile.
    pub async fn insert_results(
        &mut self,
        results: &[NewResult<'_>],
        now: Timestamp,
    ) -> StoreResult<()> {
        const COLUMNS: usize = 24;
        const ROWS_PER_INSERT: usize = 100;
        for chunk in results.chunks(ROWS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO result (ordered_test_id, version, value_text, value_number, report_text, unit, flags, reference_interval, \
                 review, reasons, definition_version, entered_at, entered_by, entered_by_role, correction_reason, instrument_flags, \
                 instrument_id, autoverify, released_at, released_by, release_status, sent_value, sent_unit, reported_as) VALUES ",
            );
            crate::values_placeholders(&mut sql, chunk.len(), COLUMNS);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(self.keep_prepared());
            for r in chunk {
                q = q
                    .bind(r.ordered_test_id)
                    .bind(r.version)
                    .bind(r.value_text)
                    .bind(r.value_number)
                    .bind(r.report_text)
                    .bind(r.unit)
                    .bind(r.flags.codes())
                    .bind(r.reference_interval)
                    .bind(r.review.code())
                    .bind(serde_json::to_string(r.reasons).expect("a list of strings serialises"))
                    .bind(r.definition_version)
                    .bind(now.as_micros())
                    .bind(r.entered_by)
                    .bind(r.entered_by_role.code())
                    .bind(r.correction_reason)
                    .bind(r.instrument_flags.join(" "))
                    .bind(r.instrument_id)
                    .bind(r.autoverify)
                    .bind(r.released_by.map(|_| now).map(Timestamp::as_micros))
                    .bind(r.released_by)
                    .bind(r.release_status.map(ReleaseStatus::code))
                    .bind(r.sent_value)
                    .bind(r.sent_unit)
                    .bind(r.reported_as.map(ReleaseStatus::code));
            }
            q.execute(self.conn()).await.map_err(|e| {
                crate::StoreError::on_unique(
                    e,
                    "someone else saved this result first: review their value, then save again if yours should replace it",
                )
            })?;
        }
        Ok(())
    }

    /// Result versions written in this transaction, by (ordered test, version).
    pub async fn results_written(&mut self, keys: &[(i64, i64)]) -> StoreResult<Vec<ResultRow>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Ids and versions are integers formatted here.
        let tests: Vec<String> = keys.iter().map(|(t, _)| t.to_string()).collect();
        let sql = format!(
            "SELECT {RESULT_COLUMNS_R} FROM result r WHERE r.ordered_test_id IN ({})",
            tests.join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.conn()).await?;
        let all: Vec<ResultRow> =
            rows.iter().map(result_from_row_prefixed).collect::<StoreResult<_>>()?;
        Ok(all.into_iter().filter(|r| keys.contains(&(r.ordered_test_id, r.version))).collect())
    }

    /// Marks a result version released. Only an unreleased version can be released, so a
    /// double click releases once.
    pub async fn release_result(
        &mut self,
        result_id: i64,
        by: &str,
        status: ReleaseStatus,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE result SET released_at = $1, released_by = $2, release_status = $3 WHERE id = $4 AND released_at IS NULL",
        )
        .bind(now.as_micros())
        .bind(by)
        .bind(status.code())
        .bind(result_id)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Turns a result released as preliminary into the final one, without a new version.
    pub async fn finalize_result(
        &mut self,
        result_id: i64,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE result SET released_at = $1, released_by = $2, release_status = 'final' \
             WHERE id = $3 AND release_status = 'preliminary'",
        )
        .bind(now.as_micros())
        .bind(by)
        .bind(result_id)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Documents a critical-value call.
    pub async fn insert_critical_call(
        &mut self,
        c: &NewCriticalCall<'_>,
        now: Timestamp,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO critical_call (ordered_test_id, result_version, called_person, called_by, called_at, read_back, notes, documented_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(c.ordered_test_id)
        .bind(c.result_version)
        .bind(c.called_person)
        .bind(c.called_by)
        .bind(c.called_at.as_micros())
        .bind(i64::from(c.read_back))
        .bind(c.notes)
        .bind(now.as_micros())
        .fetch_one(self.conn())
        .await?)
    }
}

impl Store {
    /// Every version of the results of these tests, oldest first.
    pub async fn results_of_tests(&self, test_ids: &[i64]) -> StoreResult<Vec<ResultRow>> {
        if test_ids.is_empty() {
            return Ok(vec![]);
        }
        // Ids are integers we produced, so inlining them is safe and keeps one statement.
        let ids: Vec<String> = test_ids.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT {RESULT_COLUMNS_R} FROM result r WHERE r.ordered_test_id IN ({}) ORDER BY r.ordered_test_id, r.version",
            ids.join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.reader()).await?;
        rows.iter().map(result_from_row_prefixed).collect()
    }

    /// The documented calls for these tests, in one statement, oldest first.
    pub async fn critical_calls(&self, test_ids: &[i64]) -> StoreResult<Vec<CriticalCallRow>> {
        if test_ids.is_empty() {
            return Ok(vec![]);
        }
        // Ids are integers we produced, so inlining them is safe and keeps one statement.
        let ids: Vec<String> = test_ids.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT id, ordered_test_id, result_version, called_person, called_by, called_at, read_back, notes, documented_at \
             FROM critical_call WHERE ordered_test_id IN ({}) ORDER BY id",
            ids.join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                Ok(CriticalCallRow {
                    id: r.try_get("id")?,
                    ordered_test_id: r.try_get("ordered_test_id")?,
                    result_version: r.try_get("result_version")?,
                    called_person: r.try_get("called_person")?,
                    called_by: r.try_get("called_by")?,
                    called_at: time(r, "called_at")?,
                    read_back: r.try_get::<i64, _>("read_back")? != 0,
                    notes: r.try_get("notes")?,
                    documented_at: time(r, "documented_at")?,
                })
            })
            .collect()
    }
}
