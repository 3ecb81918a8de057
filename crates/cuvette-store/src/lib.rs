//! The one place that writes SQL.
//!
//! Cuvette keeps its data in SQLite (the default, one file under `--data`) or PostgreSQL (by
//! URL). Both run the same SQL text through sqlx's `Any` driver with `$N` placeholders; the
//! schema differs only in the auto-increment key and the append-only triggers (see
//! `migrations/`). Every change is written in one transaction together with its audit event
//! (`Tx::audit`), whose hash chains it to the previous one.
//!
//! Times are UTC microseconds since the epoch ([`Timestamp`]); lab values are stored as the text
//! that was reported. This crate knows the schema, not the rules: it decides nothing.

mod attachments;
mod audit;
mod catalog;
mod fhir;
mod interfaces;
mod orders;
mod patients;
mod qc;
mod results;
mod staff;
mod students;
mod synonyms;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnectionMetadata;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};

pub use attachments::{AttachmentRow, NewAttachment};
pub use audit::{AUDIT_PAGE_LEN, AuditEvent, AuditFilter, AuditVerification, NewAuditEvent};
pub use catalog::StoredDefinition;
pub use fhir::{
    FHIR_ROWS_MAX, PatientPageFilter, SpecimenItem, SpecimenPageFilter, TestPageFilter,
};
pub use interfaces::{
    CodeDisposition, Direction, InstrumentRow, MessageFilter, MessageOutcome, MessageRow,
    NewMessage, OutboxRow, OutboxStatus, Protocol, Quarantine, TestCodeRow, UnmappedResults,
};
pub use orders::{
    NewOrder, NewOrderedTest, NewSpecimen, OrderRow, OrderSearchFilter, OrderedTestRow,
    SpecimenRow, WorkItem, WorklistFilter,
};
pub use patients::{NewPatient, PATIENT_SEARCH_LEN_MAX, PatientRow};
pub use qc::{
    CorrectiveActionRow, CriticalRow, MaterialRow, MovingAverageRow, NewMaterial, NewQcRun,
    PatientResultRow, PriorRow, QcFacts, QcPoint, QcRunRow, RuleSetRow, TargetRow,
};
pub use results::{CriticalCallRow, NewCriticalCall, NewResult, ResultRow};
pub use staff::{AssessmentRow, AuthorisationRow, StaffRecordRow};
pub use students::{EnteredResultRow, LOGBOOK_RESULTS_MAX, RotationRow};
pub use synonyms::{CodedSynonymRow, NewCodedSynonym};
pub use users::{ApiKeyRow, SessionRow, UserRow};

/// Every time the store reads or writes: microseconds since the Unix epoch, UTC, kept in a
/// `BIGINT` column.
use cuvette_domain::time::Timestamp;

/// The database engine behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, one file, WAL.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Failures the callers handle differently.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Someone else changed the row first, or a unique value is taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored code does not parse: the row was written by something other than Cuvette,
    /// or damaged. Never read as a default.
    #[error("corrupt data in {table} row {row}, column {column}: {value:?} is not a valid code")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's id.
        row: i64,
        /// The column.
        column: &'static str,
        /// What was stored.
        value: String,
    },
    /// A stored value cannot be read as its column's type.
    #[error("corrupt data in column {column}: {reason}")]
    CorruptColumn {
        /// The column.
        column: String,
        /// What the driver said.
        reason: String,
    },
    /// The database did not take a write at COMMIT (a full disk while the log is written, an
    /// I/O error, the server going away): nothing of the transaction was kept.
    #[error("the database did not take the write: {0}")]
    CommitFailed(sqlx::Error),
    /// Anything else from the database.
    #[error("database error: {0}")]
    Other(#[from] sqlx::Error),
}

impl StoreError {
    /// A column whose stored value cannot be read as its type.
    pub(crate) fn corrupt_column(column: &str, e: sqlx::Error) -> StoreError {
        StoreError::CorruptColumn { column: column.to_owned(), reason: e.to_string() }
    }

    /// Whether the database could not do the work for now — it cannot be reached, its disk is
    /// full, it is locked or shutting down — rather than refusing this request or holding bad
    /// data. Such a failure clears by itself once the fault does (the pool discards broken
    /// connections), so the caller is told to try again, not that something is wrong with
    /// what they asked.
    pub fn is_unavailable(&self) -> bool {
        let e = match self {
            StoreError::CommitFailed(_) => return true,
            StoreError::Other(e) => e,
            _ => return false,
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(d) => {
                let code = d.code().unwrap_or_default();
                // SQLite's primary result codes (the low byte of an extended code): BUSY 5,
                // LOCKED 6, NOMEM 7, READONLY 8, IOERR 10, FULL 13, CANTOPEN 14.
                let sqlite = code
                    .parse::<i64>()
                    .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 7 | 8 | 10 | 13 | 14));
                // PostgreSQL's SQLSTATE classes: 08 connection exception, 53 insufficient
                // resources (disk full, out of memory, too many connections), 57P operator
                // intervention (shutdown, cannot connect now), 40001/40P01 retryable.
                let postgres = code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
                    || code == "40001"
                    || code == "40P01";
                sqlite || postgres
            }
            _ => false,
        }
    }

    /// Maps a unique-constraint violation to [`StoreError::Conflict`] naming what is taken.
    fn on_unique(e: sqlx::Error, what: &str) -> StoreError {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(what.to_owned())
            }
            _ => StoreError::Other(e),
        }
    }
}

/// Result alias for the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// The database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time: writers queue here, in order, instead of sleeping in
    /// SQLite's busy handler while the lock may already be free.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Set when a write transaction could not begin or commit, cleared by the next commit:
    /// the readiness probe reports a database that answers reads but takes no writes.
    writes_failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The fault the next write transactions meet (fault-injection tests only).
    #[cfg(feature = "fault-injection")]
    fault: std::sync::Arc<std::sync::Mutex<Fault>>,
}

/// A fault the store can be made to meet, to prove the lab recovers from it by itself
/// (built only with the `fault-injection` feature, which only tests enable).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// None: the database behaves.
    #[default]
    None,
    /// SQLite's disk is full: the file cannot grow (`PRAGMA max_page_count` at its size).
    DiskFull,
    /// SQLite abandons the transaction at COMMIT, as it does when the disk fills while the
    /// write-ahead log is written: the COMMIT fails and no transaction is open any more.
    CommitAborted,
}

/// What a pool hook returns: whether the connection may serve.
type Check<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, sqlx::Error>> + Send + 'c>>;

/// Whether a connection given back to the pool may serve again. A connection still inside
/// a transaction after its rollback was attempted (the engine had already abandoned it, or
/// the rollback failed) is in a state no one knows: it is closed and a fresh one is opened,
/// instead of every later transaction on it failing until a restart.
fn reusable(conn: &AnyConnection) -> bool {
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!("a database connection left inside a failed transaction is discarded");
    }
    clean
}

/// The pool's release check on SQLite: the rollback a dropped transaction queued runs first
/// (a ping waits for it), then the connection must be out of any transaction.
fn sqlite_after_release(conn: &mut AnyConnection, _: PoolConnectionMetadata) -> Check<'_> {
    Box::pin(async move {
        conn.ping().await?;
        Ok(reusable(conn))
    })
}

/// The pool's release and acquire check: only connections out of any transaction serve.
fn out_of_transaction(conn: &mut AnyConnection, _: PoolConnectionMetadata) -> Check<'_> {
    Box::pin(async move { Ok(reusable(conn)) })
}

/// Connections to SQLite: one writer at a time is SQLite's model, and readers run beside it
/// in WAL mode.
const SQLITE_CONNECTIONS_MAX: u32 = 8;
/// Connections to PostgreSQL.
const POSTGRES_CONNECTIONS_MAX: u32 = 16;

impl Store {
    /// Opens (creating if needed) the SQLite database in `dir`.
    pub async fn open_dir(dir: &Path) -> StoreResult<Store> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Other(sqlx::Error::Io(e)))?;
        let path = dir.join("cuvette.sqlite3");
        Store::open(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Opens a database by URL: `sqlite://PATH?mode=rwc` or `postgres://…`, and brings its
    /// schema up to date.
    pub async fn open(url: &str) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Other(sqlx::Error::Configuration(
                format!("unsupported database URL {url:?}: use sqlite://PATH or postgres://…")
                    .into(),
            )));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(SQLITE_CONNECTIONS_MAX)
                    .after_release(sqlite_after_release)
                    .before_acquire(out_of_transaction)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // FULL: an acknowledged result survives power loss, not only a crash.
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(POSTGRES_CONNECTIONS_MAX)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_release(out_of_transaction)
                    .before_acquire(out_of_transaction)
                    .connect_with(options)
                    .await?
            }
        };
        let store = Store {
            pool,
            backend,
            write_gate: Default::default(),
            writes_failing: Default::default(),
            #[cfg(feature = "fault-injection")]
            fault: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The engine in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so two writers queue instead of failing half-way with SQLITE_BUSY.
    pub async fn begin(&self) -> StoreResult<Tx> {
        let begun = self.begin_inner().await;
        if begun.is_err() {
            self.writes_failing.store(true, std::sync::atomic::Ordering::Release);
        }
        begun
    }

    /// Whether the last write transaction failed to begin or commit, and none has committed
    /// since (readiness).
    pub fn writes_failing(&self) -> bool {
        self.writes_failing.load(std::sync::atomic::Ordering::Acquire)
    }

    async fn begin_inner(&self) -> StoreResult<Tx> {
        let mut gate = None;
        let inner = match self.backend {
            Backend::Sqlite => {
                gate = Some(self.write_gate.clone().lock_owned().await);
                #[allow(unused_mut)]
                let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                #[cfg(feature = "fault-injection")]
                {
                    // The page limit holds on this connection until changed: set it each time.
                    let pages = if self.fault() == Fault::DiskFull { 1 } else { 4_294_967_294u32 };
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA max_page_count = {pages}")))
                        .execute(&mut *tx)
                        .await?;
                }
                tx
            }
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                // Writers take the audit chain's head first, so every write transaction locks
                // in the same order (no deadlocks) and the chain is appended in commit order.
                sqlx::query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
                    .fetch_one(&mut *tx)
                    .await?;
                tx
            }
        };
        Ok(Tx {
            inner,
            _gate: gate,
            audit: Default::default(),
            backend: self.backend,
            writes_failing: self.writes_failing.clone(),
            #[cfg(feature = "fault-injection")]
            fault: self.fault(),
        })
    }

    /// Makes the next write transactions meet `fault` (fault-injection tests only).
    #[cfg(feature = "fault-injection")]
    pub fn inject(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    #[cfg(feature = "fault-injection")]
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pool, for reads.
    fn reader(&self) -> &AnyPool {
        &self.pool
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migration (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .await?;
        let mut tx = conn.begin().await?;
        if self.backend == Backend::Postgres {
            // Two servers starting at once must not both migrate.
            tx.execute("LOCK TABLE schema_migration IN EXCLUSIVE MODE").await?;
        }
        let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migration")
            .fetch_one(&mut *tx)
            .await?;
        let applied = applied.unwrap_or(0);
        for (version, common, sqlite, postgres) in MIGRATIONS {
            if *version <= applied {
                continue;
            }
            let id = match self.backend {
                Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
                Backend::Postgres => "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            };
            let specific = match self.backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => postgres,
            };
            let blob = match self.backend {
                Backend::Sqlite => "BLOB",
                Backend::Postgres => "BYTEA",
            };
            let sql =
                format!("{}\n{}", common.replace("{{id}}", id).replace("{{blob}}", blob), specific);
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migration (version, applied_at) VALUES ($1, 0)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes a consistent copy of the SQLite database to `path` while Cuvette keeps running
    /// (`VACUUM INTO` reads one snapshot). PostgreSQL is backed up with its own tools.
    pub async fn backup_to(&self, path: &Path) -> StoreResult<()> {
        match self.backend {
            Backend::Sqlite => {
                let target = path.display().to_string();
                sqlx::query("VACUUM INTO $1").bind(target).execute(self.reader()).await?;
                Ok(())
            }
            Backend::Postgres => Err(StoreError::Other(sqlx::Error::Configuration(
                "back up PostgreSQL with pg_dump or its continuous archiving; `cuvette backup` copies SQLite".into(),
            ))),
        }
    }

    /// Closes every connection (tests and shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// (version, common SQL, SQLite-only SQL, PostgreSQL-only SQL).
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        include_str!("../migrations/0001_core.sql"),
        include_str!("../migrations/0001_sqlite.sql"),
        include_str!("../migrations/0001_postgres.sql"),
    ),
    (2, include_str!("../migrations/0002_interfaces.sql"), "", ""),
    (3, include_str!("../migrations/0003_qc.sql"), "", ""),
    (4, include_str!("../migrations/0004_instrument_qc.sql"), "", ""),
    (5, include_str!("../migrations/0005_units.sql"), "", ""),
    (6, include_str!("../migrations/0006_open_work.sql"), "", ""),
    (7, include_str!("../migrations/0007_instrument_statuses.sql"), "", ""),
    (8, include_str!("../migrations/0008_placer_specimens.sql"), "", ""),
    (9, include_str!("../migrations/0009_partial_results.sql"), "", ""),
    (10, include_str!("../migrations/0010_coded_results.sql"), "", ""),
    (12, include_str!("../migrations/0012_instrument_peers.sql"), "", ""),
    (13, include_str!("../migrations/0013_catalog_reasons.sql"), "", ""),
    (14, include_str!("../migrations/0014_staff.sql"), "", ""),
    (15, include_str!("../migrations/0015_result_attachments.sql"), "", ""),
    (16, include_str!("../migrations/0016_order_search.sql"), "", ""),
    (17, include_str!("../migrations/0017_students.sql"), "", ""),
    (18, include_str!("../migrations/0018_api_key_scopes.sql"), "", ""),
];

/// A write transaction. Dropping it without [`Tx::commit`] rolls everything back, the audit
/// events included. Whatever fails — a statement, the audit append, the COMMIT itself — the
/// transaction is rolled back, and a connection whose rollback did not leave it out of the
/// transaction is closed rather than pooled (see [`reusable`]).
pub struct Tx {
    inner: Transaction<'static, Any>,
    /// Held until commit or rollback (SQLite only).
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// Audit events appended in this transaction, written just before it commits.
    audit: audit::Pending,
    /// The engine, for the few statements written differently on each.
    backend: Backend,
    /// The store's record of failing writes (see [`Store::writes_failing`]).
    writes_failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The fault this transaction meets.
    #[cfg(feature = "fault-injection")]
    fault: Fault,
}

impl Tx {
    /// Commits the change and its audit events together. On any failure the transaction is
    /// rolled back before the error is returned.
    pub async fn commit(mut self) -> StoreResult<()> {
        let writes_failing = self.writes_failing.clone();
        if let Err(e) = self.flush_audit().await {
            writes_failing.store(true, std::sync::atomic::Ordering::Release);
            self.roll_back_after(&e).await;
            return Err(e);
        }
        #[cfg(feature = "fault-injection")]
        if self.fault == Fault::CommitAborted {
            // What SQLite does on a full disk at COMMIT: the transaction is gone.
            sqlx::raw_sql("ROLLBACK").execute(self.conn()).await?;
        }
        // A failed COMMIT hands the transaction back to its drop, which queues the rollback;
        // the pool then closes the connection if it is still inside the transaction.
        let committed = self.inner.commit().await;
        writes_failing.store(committed.is_err(), std::sync::atomic::Ordering::Release);
        committed.map_err(StoreError::CommitFailed)
    }

    /// Rolls back explicitly after `cause`, logging a rollback that fails too (the pool then
    /// discards the connection).
    async fn roll_back_after(self, cause: &StoreError) {
        if let Err(e) = self.inner.rollback().await {
            tracing::warn!(error = %e, %cause, "rolling back a failed transaction failed too");
        }
    }

    fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.inner
    }

    /// Whether a statement whose rows may bind NULL in one call and a value in the next may
    /// be kept prepared. PostgreSQL fixes a prepared statement's parameter types when it is
    /// first prepared, and a NULL bound through the `Any` driver does not carry its column's
    /// type: a cached multi-row INSERT would then refuse a value where it first saw NULL.
    /// SQLite has no such types, and keeps the statement for speed.
    fn keep_prepared(&self) -> bool {
        self.backend == Backend::Sqlite
    }
}

/// Reads an optional integer column (a time, an id). A value that is there but is not an
/// integer is corrupt data and an error, never "no value": a release time that fails to
/// decode must not read as "not released", nor a QC rejection time as "never rejected".
pub(crate) fn opt_i64(row: &sqlx::any::AnyRow, col: &str) -> StoreResult<Option<i64>> {
    use sqlx::Row;
    row.try_get::<Option<i64>, _>(col).map_err(|e| StoreError::corrupt_column(col, e))
}

/// Reads a time column (a `BIGINT` of microseconds). NULL or a value that is not an integer
/// is corrupt data naming the column, never a default.
pub(crate) fn time(row: &sqlx::any::AnyRow, col: &str) -> StoreResult<Timestamp> {
    use sqlx::Row;
    row.try_get::<i64, _>(col)
        .map(Timestamp::from_micros)
        .map_err(|e| StoreError::corrupt_column(col, e))
}

/// Reads an optional time column: NULL is "not yet" (not collected, not released); a value
/// that is there but is not an integer is corrupt data, never "not yet".
pub(crate) fn opt_time(row: &sqlx::any::AnyRow, col: &str) -> StoreResult<Option<Timestamp>> {
    Ok(opt_i64(row, col)?.map(Timestamp::from_micros))
}

/// Reads a coded column strictly: a code `parse` does not know is corrupt data naming the
/// table, the row (by its id column) and the column — never a default.
pub(crate) fn code<T>(
    row: &sqlx::any::AnyRow,
    table: &'static str,
    id_column: &str,
    column: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> StoreResult<T> {
    code_at(row, table, id_column, column, column, parse)
}

/// [`code`] for a column selected under an alias (`r_flags` in a join): the error names
/// the table's own column.
pub(crate) fn code_at<T>(
    row: &sqlx::any::AnyRow,
    table: &'static str,
    id_column: &str,
    alias: &str,
    column: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> StoreResult<T> {
    use sqlx::Row;
    let value: String = row.try_get(alias)?;
    parse(&value).ok_or_else(|| corrupt(row, table, id_column, column, value))
}

/// [`code_at`] for a nullable coded column: NULL is `None`, a code that does not parse is
/// still corrupt data.
pub(crate) fn opt_code_at<T>(
    row: &sqlx::any::AnyRow,
    table: &'static str,
    id_column: &str,
    alias: &str,
    column: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> StoreResult<Option<T>> {
    use sqlx::Row;
    let value: Option<String> = row.try_get(alias)?;
    value
        .map(|value| parse(&value).ok_or_else(|| corrupt(row, table, id_column, column, value)))
        .transpose()
}

fn corrupt(
    row: &sqlx::any::AnyRow,
    table: &'static str,
    id_column: &str,
    column: &'static str,
    value: String,
) -> StoreError {
    use sqlx::Row;
    StoreError::Corrupt { table, row: row.try_get(id_column).unwrap_or(0), column, value }
}

/// Appends `($1, $2, …), ($n+1, …), …` for a multi-row INSERT of `rows` rows of `columns`.
pub(crate) fn values_placeholders(sql: &mut String, rows: usize, columns: usize) {
    use std::fmt::Write;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            let sep = if column == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}${}", row * columns + column + 1);
        }
        sql.push(')');
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub(crate) fn like_prefix(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Store {
    /// Answers whether the database can be queried (readiness).
    pub async fn verify_reachable(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(self.reader()).await?;
        Ok(())
    }
}
