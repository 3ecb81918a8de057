//! Rows no use case writes, put straight into a test's database.
//!
//! The server reaches data only through the app; this file is the one exception the tidy test
//! allows, and only for fixtures: an audit event of every action the lab records, which no
//! single walk through the bench produces; an outbox message queued at a given time; and a
//! lab whose database can be made to fail (a full disk, an abandoned COMMIT).

use cuvette_domain::audit::AuditAction;
pub use cuvette_store::Fault;
use cuvette_store::{NewAuditEvent, Store};
use cuvette_testkit::TestDb;

use crate::support::App;

/// Makes the lab's database meet a fault, and clears it.
pub struct Faults(Store);

impl Faults {
    /// The next write transactions meet `fault` (`Fault::None` clears it).
    pub fn inject(&self, fault: Fault) {
        self.0.inject(fault);
    }
}

/// A running Cuvette whose database can be made to fail.
pub async fn app_with_faults() -> (App, Faults) {
    let db = TestDb::create().await;
    let store = Store::open(db.url()).await.expect("the test database opens");
    let app = crate::support::app_on(db, cuvette_app::Database::from(store.clone())).await;
    (app, Faults(store))
}

/// Queues one result message for the EHR at `at`, as a release does, never sent.
pub async fn an_outbox_message_queued(app: &App, at: i64) {
    let store = Store::open(app.db.url()).await.expect("the test database opens");
    let mut tx = store.begin().await.unwrap();
    tx.enqueue(
        "ehr",
        "CUV-1",
        b"MSH|^~\\&|",
        "26-0000001-0",
        cuvette_domain::time::Timestamp::from_micros(at),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    store.close().await;
}

/// Appends one audit event of every action, by `actor`, on the hash chain.
pub async fn an_audit_event_of_every_action(app: &App, actor: &str) {
    let store = Store::open(app.db.url()).await.expect("the test database opens");
    let mut tx = store.begin().await.unwrap();
    for action in AuditAction::ALL {
        tx.audit(NewAuditEvent {
            at: cuvette_domain::time::Timestamp::from_micros(1_795_000_000_000_000),
            actor,
            action,
            entity: "probe",
            entity_id: action.code().to_owned(),
            patient_id: None,
            before: None,
            after: None,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}
