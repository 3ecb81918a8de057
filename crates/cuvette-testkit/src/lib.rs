//! Test support shared by Cuvette's integration suites.
//!
//! Every test gets its own database: a SQLite file in a new temporary directory, or, when
//! `CUVETTE_TEST_DATABASE_URL` names a PostgreSQL server (for example
//! `postgres://postgres@127.0.0.1:5432/test`), a new database `cuvette_t_…` created on it.
//! The database is dropped when the test ends (set `CUVETTE_TEST_KEEP_DB=1` to keep it).

use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

/// Where a test's data lives; removed when the test ends.
pub enum TestDb {
    /// A SQLite file in its own temporary directory.
    Sqlite {
        /// The directory.
        dir: PathBuf,
        /// Its URL.
        url: String,
    },
    /// A database of its own on the PostgreSQL server named by `CUVETTE_TEST_DATABASE_URL`.
    Postgres {
        /// The server URL it was created from.
        admin_url: String,
        /// The database name.
        name: String,
        /// Its URL.
        url: String,
    },
}

impl TestDb {
    /// A fresh, empty database for one test.
    pub async fn create() -> TestDb {
        let name = unique_name();
        match std::env::var("CUVETTE_TEST_DATABASE_URL").ok().filter(|u| !u.trim().is_empty()) {
            Some(admin_url) => {
                let mut admin = sqlx::postgres::PgConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("CUVETTE_TEST_DATABASE_URL {admin_url}: {e}"));
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .unwrap_or_else(|e| panic!("create database {name}: {e}"));
                admin.close().await.ok();
                let url = with_database(&admin_url, &name);
                TestDb::Postgres { admin_url, name, url }
            }
            None => {
                let dir = std::env::temp_dir().join(name.replace('_', "-"));
                std::fs::create_dir_all(&dir)
                    .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
                let url = format!("sqlite://{}?mode=rwc", dir.join("cuvette.sqlite3").display());
                TestDb::Sqlite { dir, url }
            }
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var_os("CUVETTE_TEST_KEEP_DB").is_some() {
            eprintln!("kept test database {}", self.url());
            return;
        }
        match self {
            TestDb::Sqlite { dir, .. } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            TestDb::Postgres { admin_url, name, .. } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop cannot await; a thread with its own runtime drops the database.
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build()
                    else {
                        return;
                    };
                    rt.block_on(async {
                        if let Ok(mut admin) =
                            sqlx::postgres::PgConnection::connect(&admin_url).await
                        {
                            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                            let _ =
                                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
                            let _ = admin.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// A name no other test (in this run or a concurrent one) uses: `cuvette_t_<pid>_<n>_<random>`.
fn unique_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    // RandomState is seeded randomly per process, which is all the randomness a name needs.
    let random = std::hash::RandomState::new().hash_one((std::process::id(), n));
    format!("cuvette_t_{}_{n}_{random:016x}", std::process::id())
}

/// The same server URL with another database name.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").expect("a URL like postgres://user@host:5432/db");
    let host = rest.split_once('/').map_or(rest, |(h, _)| h);
    match query {
        Some(q) => format!("{scheme}://{host}/{name}?{q}"),
        None => format!("{scheme}://{host}/{name}"),
    }
}

impl TestDb {
    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDb::Postgres { .. })
    }
}
