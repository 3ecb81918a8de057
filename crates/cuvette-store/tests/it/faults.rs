//! Faults the database meets and the store recovers from by itself: a transaction whose
//! connection dies or whose database is locked fails with an error, nothing of it is kept, and
//! the next transactions on the same store commit — no restart, no connection left broken.

use std::time::Duration;

use sqlx::Connection;

use crate::{AT, Db};

impl Db {
    /// Ends every other session on this PostgreSQL database, as a server restart or a
    /// network cut would.
    async fn kill_its_connections(&self) -> u64 {
        let mut admin = sqlx::postgres::PgConnection::connect(self.db.url()).await.unwrap();
        let killed = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .execute(&mut admin)
        .await
        .unwrap()
        .rows_affected();
        admin.close().await.ok();
        killed
    }

    async fn queue(&self, control_id: &str) -> Result<(), cuvette_store::StoreError> {
        let mut tx = self.store.begin().await?;
        tx.enqueue("ehr", control_id, b"MSH|", "26-0000001-0", AT).await?;
        tx.commit().await
    }
}

#[tokio::test]
async fn a_postgresql_connection_killed_mid_transaction_loses_that_transaction_only() {
    let db = Db::new().await;
    if !db.db.is_postgres() {
        return;
    }
    db.queue("BEFORE").await.unwrap();
    let mut tx = db.store.begin().await.unwrap();
    tx.enqueue("ehr", "CUT", b"MSH|", "26-0000001-0", AT).await.unwrap();
    assert!(db.kill_its_connections().await >= 1);
    let e = tx.commit().await.expect_err("a commit on a dead connection fails");
    assert!(e.is_unavailable(), "a dead connection is a wait, not a bad request: {e}");

    // Every pooled connection was killed too: the next transactions get fresh ones.
    for i in 0..40 {
        db.queue(&format!("AFTER-{i}")).await.unwrap();
    }
    assert_eq!(db.store.outbox_backlog().await.unwrap().0, 41, "BEFORE and the 40 after");
    assert!(!db.store.writes_failing());
}

#[tokio::test]
async fn a_sqlite_database_locked_by_another_program_refuses_writes_then_takes_them_when_released()
{
    let db = Db::new().await;
    if db.db.is_postgres() {
        return;
    }
    // Another program holds the write lock longer than the store waits for it (10 s).
    let mut other = sqlx::sqlite::SqliteConnection::connect(db.db.url()).await.unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE").execute(&mut other).await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(30), db.queue("LOCKED"))
        .await
        .expect("refused within the busy timeout, not held forever");
    let e = refused.expect_err("no write while another program holds the lock");
    assert!(e.to_string().contains("locked"), "{e}");
    assert!(e.is_unavailable(), "a lock is a wait, not a bad request: {e}");
    assert!(db.store.writes_failing());

    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    for i in 0..12 {
        db.queue(&format!("AFTER-{i}")).await.unwrap();
    }
    assert_eq!(db.store.outbox_backlog().await.unwrap().0, 12, "nothing of the refused one");
    assert!(!db.store.writes_failing());
}

/// A TCP relay on loopback between the store and PostgreSQL that can be cut, as a network
/// outage or a stopped server would: while down, every relayed connection is closed and new
/// ones are refused.
struct Relay {
    addr: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    async fn to(upstream: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (accepting, cuts) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let upstream = upstream.clone();
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Relay { addr, up, cut }
    }

    fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn back_up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn postgresql_unreachable_refuses_writes_with_an_error_and_they_resume_when_it_is_back() {
    let db = Db::new().await;
    if !db.db.is_postgres() {
        return;
    }
    // postgres://user@HOST:PORT/name → the same database through the relay.
    let url = db.db.url().to_owned();
    let (scheme_user, rest) = url.split_once('@').unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let relay = Relay::to(host.to_owned()).await;
    let store =
        cuvette_store::Store::open(&format!("{scheme_user}@{}/{path}", relay.addr)).await.unwrap();
    let queue = |id: String| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await?;
            tx.enqueue("ehr", &id, b"MSH|", "26-0000001-0", AT).await?;
            tx.commit().await
        }
    };
    queue("BEFORE".into()).await.unwrap();

    relay.down();
    let refused = tokio::time::timeout(Duration::from_secs(30), queue("DOWN".into()))
        .await
        .expect("refused within the pool's patience, not held forever");
    let e = refused.expect_err("no write while the database is unreachable");
    assert!(e.is_unavailable(), "an unreachable database is a wait, not a bad request: {e}");
    assert!(store.writes_failing());

    relay.back_up();
    for i in 0..20 {
        queue(format!("AFTER-{i}")).await.unwrap();
    }
    assert_eq!(store.outbox_backlog().await.unwrap().0, 21, "BEFORE and the 20 after");
    assert!(!store.writes_failing());
    store.close().await;
}
