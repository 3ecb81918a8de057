//! A code in a coded column that Cuvette did not write is corrupt data naming the table and
//! the column, on every read that maps the row — never a default, never "none".

use cuvette_domain::workflow::{ReleaseStatus, TestStatus};
use cuvette_domain::{Flags, Review, Role};
use cuvette_store::{
    Direction, MessageOutcome, NewMessage, NewResult, Protocol, Quarantine, WorklistFilter,
};

use crate::orders::potassium_ordered;
use crate::{AT, Db, corrupt_column};

/// What the seeded database holds.
struct Seed {
    specimen: i64,
    order: i64,
    test: i64,
    instrument: i64,
    message: i64,
}

/// A database holding one of every coded row, then damaged by `sql` (which must change
/// exactly one row).
async fn damaged(sql: &str) -> (Db, Seed) {
    let db = Db::new().await;
    let (_, order, specimen, test) = potassium_ordered(&db).await;
    let mut tx = db.store.begin().await.unwrap();
    let flags = Flags::parse("H").unwrap();
    tx.insert_results(
        &[NewResult {
            ordered_test_id: test,
            version: 1,
            value_text: "5.4",
            value_number: Some(5.4),
            report_text: "5.4",
            unit: "mmol/L",
            flags: &flags,
            reference_interval: "3.5–5.1",
            review: Review::Technologist,
            reasons: &["high".to_owned()],
            definition_version: 1,
            entered_by: "technician",
            entered_by_role: Role::Technician,
            correction_reason: None,
            instrument_flags: &[],
            instrument_id: None,
            autoverify: None,
            released_by: Some("autoverify"),
            release_status: Some(ReleaseStatus::Final),
            sent_value: None,
            sent_unit: None,
            reported_as: None,
        }],
        AT,
    )
    .await
    .unwrap();
    tx.update_test_status(test, 1, TestStatus::Final, false, AT).await.unwrap();
    let instrument = tx.insert_instrument("Chemistry 1", Protocol::Hl7, "CHEM1", AT).await.unwrap();
    let message = tx
        .insert_message(
            &NewMessage {
                direction: Direction::In,
                protocol: Protocol::Hl7,
                channel: "mllp:2575",
                peer: "10.1.2.3:40112",
                sender: "CHEM1",
                control_id: Some("MSG0001"),
                message_type: "ORU^R01",
                raw: b"MSH|",
                outcome: MessageOutcome::Quarantined,
                detail: "unmapped code",
                ack: None,
                accession: None,
                results: 0,
                quarantine: Some(Quarantine::Open),
                replay_of: None,
                processed_us: 10,
                held: &[],
            },
            AT,
        )
        .await
        .unwrap();
    tx.enqueue("ehr:2575", "CUV0001", b"MSH|ORU", "26-0000001-8", AT).await.unwrap();
    tx.insert_user("tech", "Tech", Role::Technician, "phc", AT).await.unwrap();
    tx.insert_api_key("ehr", "beef", Role::Technician, &Default::default(), "director", AT)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    db.damage(sql).await;
    (db, Seed { specimen, order, test, instrument, message })
}

#[tokio::test]
async fn an_unknown_code_in_the_message_log_is_corrupt_data_naming_its_column() {
    for (column, sql) in [
        ("direction", "UPDATE interface_message SET direction = 'sideways'"),
        ("protocol", "UPDATE interface_message SET protocol = 'fhir'"),
        ("outcome", "UPDATE interface_message SET outcome = 'accepted?'"),
        ("quarantine", "UPDATE interface_message SET quarantine = 'closed'"),
    ] {
        let (db, s) = damaged(sql).await;
        let (table, named, _) = corrupt_column(db.store.message(s.message).await);
        assert_eq!((table, named), ("interface_message", column));
        let open = cuvette_store::MessageFilter { limit: 10, ..Default::default() };
        assert_eq!(corrupt_column(db.store.messages(&open).await).1, column);
    }
}

#[tokio::test]
async fn an_unknown_protocol_or_outbox_status_is_corrupt_data_naming_its_column() {
    let (db, s) = damaged("UPDATE instrument SET protocol = 'HL7'").await;
    assert_eq!(corrupt_column(db.store.instrument(s.instrument).await).1, "protocol");
    assert_eq!(corrupt_column(db.store.instruments().await).0, "instrument");

    let (db, _) = damaged("UPDATE outbox SET status = 'queued'").await;
    let (table, column, value) = corrupt_column(db.store.outbox_undelivered().await);
    assert_eq!((table, column, value.as_str()), ("outbox", "status", "queued"));
}

#[tokio::test]
async fn an_unknown_code_on_a_specimen_order_or_test_is_corrupt_data_naming_its_column() {
    for (table, column, sql) in [
        ("specimen", "status", "UPDATE specimen SET status = 'lost'"),
        ("specimen", "reject_reason", "UPDATE specimen SET reject_reason = 'dropped'"),
        ("specimen", "conditions", "UPDATE specimen SET conditions = 'HEM WARM'"),
        ("lab_order", "priority", "UPDATE lab_order SET priority = 'asap'"),
        ("ordered_test", "status", "UPDATE ordered_test SET status = 'done'"),
    ] {
        let (db, s) = damaged(sql).await;
        let items = db
            .store
            .work_items(&WorklistFilter {
                specimen_id: Some(s.specimen),
                limit: 10,
                ..Default::default()
            })
            .await;
        let (t, c, _) = corrupt_column(items);
        assert_eq!((t, c), (table, column), "{sql}");
        let direct = match table {
            "specimen" => db.store.specimen(s.specimen).await.map(drop),
            "lab_order" => db.store.order(s.order).await.map(drop),
            _ => db.store.ordered_test(s.test).await.map(drop),
        };
        assert_eq!(corrupt_column(direct).1, column, "{sql}");
    }
}

#[tokio::test]
async fn an_unknown_code_in_a_result_is_corrupt_data_naming_its_column() {
    for (column, sql) in [
        ("flags", "UPDATE result SET flags = 'H?'"),
        ("review", "UPDATE result SET review = 'nobody'"),
        ("reasons", "UPDATE result SET reasons = 'high'"),
        ("entered_by_role", "UPDATE result SET entered_by_role = 'intern'"),
        ("release_status", "UPDATE result SET release_status = 'released'"),
    ] {
        let (db, s) = damaged(sql).await;
        let (table, named, _) = corrupt_column(db.store.results_of_tests(&[s.test]).await);
        assert_eq!((table, named), ("result", column), "{sql}");
    }
}

#[tokio::test]
async fn an_unknown_role_or_privilege_is_corrupt_data_naming_its_column() {
    let (db, _) = damaged("UPDATE app_user SET role = 'admin'").await;
    assert_eq!(
        corrupt_column(db.store.user_by_username("tech").await),
        ("app_user", "role", "admin".into())
    );
    let (db, _) = damaged("UPDATE api_key SET role = 'root'").await;
    assert_eq!(corrupt_column(db.store.api_key("beef").await), ("api_key", "role", "root".into()));
    // A scope list that does not read back is corrupt, never "no scopes" nor "every scope".
    let (db, _) = damaged("UPDATE api_key SET scopes = 'system/*.read admin/*.*'").await;
    assert_eq!(
        corrupt_column(db.store.api_key("beef").await),
        ("api_key", "scopes", "system/*.read admin/*.*".into())
    );
    let (db, _) =
        damaged("INSERT INTO role_privilege (role, action) VALUES ('technician', 'fly')").await;
    assert_eq!(corrupt_column(db.store.privileges().await).1, "action");
}
