//! Rows no use case writes, put straight into a test's database.
//!
//! The server reaches data only through the app; this file is the one exception the tidy test
//! allows, and only for fixtures: an audit event of every action the lab records, which no
//! single walk through the bench produces.

use cuvette_domain::audit::AuditAction;
use cuvette_store::{NewAuditEvent, Store};

use crate::support::App;

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
