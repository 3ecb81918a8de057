//! The store's own tests: every row written through its mapping and read back field by
//! field, and every coded column, damaged, read as corrupt data naming the column. On SQLite,
//! and on PostgreSQL too when `CUVETTE_TEST_DATABASE_URL` names a server.

mod catalog;
mod corrupt;
mod faults;
mod interfaces;
mod orders;
mod qc;
mod staff;
mod users;

use cuvette_domain::time::Timestamp;
use cuvette_store::{Store, StoreError};
use cuvette_testkit::TestDb;
use sqlx::Connection;

/// A fresh, migrated database for one test.
pub struct Db {
    pub store: Store,
    db: TestDb,
}

/// A fixed time, 2026-03-02 08:15 UTC, in microseconds.
pub const AT: Timestamp = Timestamp::from_micros(1_772_439_300_000_000);

/// `micros` microseconds after [`AT`] (before it, when negative).
pub fn at(micros: i64) -> Timestamp {
    Timestamp::from_micros(AT.as_micros() + micros)
}

impl Db {
    pub async fn new() -> Db {
        let db = TestDb::create().await;
        let store = cuvette_store::Store::open(db.url()).await.expect("the store opens");
        Db { store, db }
    }

    /// Runs SQL behind the store's back, as damage or a foreign writer would.
    pub async fn damage(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(self.db.url()).await.unwrap();
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await;
        conn.close().await.ok();
        assert_eq!(done.unwrap().rows_affected(), 1, "{sql} changes exactly one row");
    }
}

/// Two rows are the same when every field prints the same (the rows carry no `PartialEq`:
/// nothing outside the tests compares whole rows).
#[track_caller]
pub fn same<T: std::fmt::Debug + ?Sized>(read: &T, written: &T) {
    assert_eq!(format!("{read:#?}"), format!("{written:#?}"));
}

/// The column a corrupt-data refusal names; panics on any other outcome.
#[track_caller]
pub fn corrupt_column<T: std::fmt::Debug>(
    r: Result<T, StoreError>,
) -> (&'static str, &'static str, String) {
    match r {
        Err(StoreError::Corrupt { table, column, value, .. }) => (table, column, value),
        other => panic!("expected corrupt data, got {other:?}"),
    }
}
