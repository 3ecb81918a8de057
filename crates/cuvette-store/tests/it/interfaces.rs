//! Instruments and their code maps, the message log with its quarantine, and the outbox.

use cuvette_store::{
    CodeDisposition, Direction, InstrumentRow, MessageFilter, MessageOutcome, MessageRow,
    NewMessage, OutboxRow, OutboxStatus, Protocol, Quarantine, TestCodeRow, UnmappedResults,
};

use cuvette_domain::peers::AllowedPeers;

use crate::{AT, Db, at, corrupt_column, same};

#[tokio::test]
async fn an_allowed_address_that_is_no_address_is_corrupt_data_naming_the_column() {
    let db = Db::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let id = tx.insert_instrument("cobas c 311", Protocol::Astm, "H7600", AT).await.unwrap();
    tx.commit().await.unwrap();
    assert!(!db.store.instrument(id).await.unwrap().allowed_peers.is_restricted());
    db.damage(&format!("UPDATE instrument SET allowed_peers = 'analyzer-1.lab' WHERE id = {id}"))
        .await;
    let (table, column, value) = corrupt_column(db.store.instrument(id).await);
    assert_eq!((table, column, value.as_str()), ("instrument", "allowed_peers", "analyzer-1.lab"));
    corrupt_column(db.store.instruments().await);
}

#[tokio::test]
async fn an_instrument_and_its_code_map_read_back_by_sender_and_by_id() {
    let db = Db::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let id = tx.insert_instrument("cobas c 311", Protocol::Astm, "H7600", AT).await.unwrap();
    tx.set_qc_pattern(id, "QC-*").await.unwrap();
    tx.set_specimen_id_component(id, Some(3)).await.unwrap();
    tx.set_instrument_charset(id, Some("windows-1252")).await.unwrap();
    tx.set_unmapped_results(id, UnmappedResults::StoreMappable).await.unwrap();
    let peers = AllowedPeers::parse("10.20.1.31 10.20.1.32").unwrap();
    tx.set_allowed_peers(id, &peers).await.unwrap();
    let glucose = TestCodeRow {
        instrument_id: id,
        instrument_code: "717".into(),
        test_code: "GLU".into(),
        unit: "mg/dL".into(),
        disposition: CodeDisposition::Result,
    };
    let potassium = TestCodeRow {
        instrument_id: id,
        instrument_code: "989".into(),
        test_code: "K".into(),
        unit: "mmol/L".into(),
        disposition: CodeDisposition::Result,
    };
    let research = TestCodeRow {
        instrument_id: id,
        instrument_code: "9999".into(),
        test_code: String::new(),
        unit: String::new(),
        disposition: CodeDisposition::Ignore,
    };
    tx.map_test_code(&research).await.unwrap();
    tx.map_test_code(&potassium).await.unwrap();
    tx.map_test_code(&TestCodeRow { test_code: "GLUC".into(), ..glucose.clone() }).await.unwrap();
    tx.map_test_code(&glucose).await.unwrap(); // re-mapped: the last mapping stands
    tx.commit().await.unwrap();

    let instrument = InstrumentRow {
        id,
        name: "cobas c 311".into(),
        protocol: Protocol::Astm,
        sender: "H7600".into(),
        active: true,
        qc_pattern: "QC-*".into(),
        specimen_id_component: Some(3),
        charset: Some("windows-1252".into()),
        unmapped_results: UnmappedResults::StoreMappable,
        allowed_peers: peers,
    };
    same(&db.store.instrument(id).await.unwrap(), &instrument);
    same(&db.store.instruments().await.unwrap()[..], &[instrument.clone()][..]);
    same(
        &db.store.instrument_by_sender(Protocol::Astm, "H7600").await.unwrap(),
        &Some(instrument.clone()),
    );
    assert!(db.store.instrument_by_sender(Protocol::Hl7, "H7600").await.unwrap().is_none());
    let codes = vec![glucose, potassium, research];
    same(&db.store.test_codes(id).await.unwrap(), &codes);
    same(
        &db.store.instrument_with_codes(Protocol::Astm, "H7600").await.unwrap(),
        &Some((instrument, codes)),
    );
}

fn quarantined<'a>(raw: &'a [u8]) -> NewMessage<'a> {
    NewMessage {
        direction: Direction::In,
        protocol: Protocol::Hl7,
        channel: "mllp:2575",
        peer: "10.1.2.3:40112",
        sender: "CHEM1",
        control_id: Some("MSG0001"),
        message_type: "ORU^R01",
        raw,
        outcome: MessageOutcome::Quarantined,
        detail: "no specimen has accession number 26-0000999-3",
        ack: Some(b"MSH|^~\\&|CUVETTE\rMSA|AE|MSG0001\r"),
        accession: Some("26-0000999-3"),
        results: 0,
        quarantine: Some(Quarantine::Open),
        replay_of: None,
        processed_us: 1234,
        held: &[],
    }
}

#[tokio::test]
async fn a_quarantined_message_and_its_replay_read_back_with_every_column() {
    let db = Db::new().await;
    let raw = b"MSH|^~\\&|CHEM1\rOBX|1|NM|K\r".to_vec();
    let first = quarantined(&raw);
    let mut tx = db.store.begin().await.unwrap();
    let id = tx.insert_message(&first, AT).await.unwrap();
    tx.commit().await.unwrap();
    let written = MessageRow {
        id,
        direction: Direction::In,
        protocol: Protocol::Hl7,
        channel: "mllp:2575".into(),
        peer: "10.1.2.3:40112".into(),
        sender: "CHEM1".into(),
        control_id: Some("MSG0001".into()),
        message_type: "ORU^R01".into(),
        raw: raw.clone(),
        received_at: AT,
        outcome: MessageOutcome::Quarantined,
        detail: "no specimen has accession number 26-0000999-3".into(),
        ack: Some(b"MSH|^~\\&|CUVETTE\rMSA|AE|MSG0001\r".to_vec()),
        accession: Some("26-0000999-3".into()),
        results: 0,
        quarantine: Some(Quarantine::Open),
        replay_of: None,
        processed_us: 1234,
        held: Vec::new(),
    };
    same(&db.store.message(id).await.unwrap(), &written);
    same(
        &db.store.message_by_control(Direction::In, "CHEM1", "MSG0001").await.unwrap(),
        &Some(written.clone()),
    );
    let open = MessageFilter { open_quarantine: true, limit: 10, ..Default::default() };
    same(&db.store.messages(&open).await.unwrap(), &vec![written.clone()]);

    // The same control id from the same sender again is a conflict: it is a retransmission.
    let mut tx = db.store.begin().await.unwrap();
    assert!(tx.insert_message(&first, at(1)).await.is_err());
    drop(tx);

    let mut tx = db.store.begin().await.unwrap();
    let replay = tx
        .insert_message(
            &NewMessage {
                control_id: Some("MSG0001#replay"),
                outcome: MessageOutcome::Partial,
                detail: "1 results stored; OBX 2 and OBX 4 kept in the quarantine",
                ack: None,
                accession: None,
                results: 1,
                quarantine: None,
                replay_of: Some(id),
                held: &[2, 4],
                ..quarantined(&raw)
            },
            at(2),
        )
        .await
        .unwrap();
    tx.set_quarantine(id, Quarantine::Replayed).await.unwrap();
    tx.commit().await.unwrap();
    same(
        &db.store.message(id).await.unwrap(),
        &MessageRow { quarantine: Some(Quarantine::Replayed), ..written.clone() },
    );
    let read = db.store.message(replay).await.unwrap();
    assert_eq!(
        (read.outcome, read.quarantine, read.replay_of, read.ack, read.accession, read.results),
        (MessageOutcome::Partial, None, Some(id), None, None, 1)
    );
    assert_eq!(read.held, [2, 4], "the records kept back read back in order");
    assert!(db.store.messages(&open).await.unwrap().is_empty(), "nothing left open");
    let accepted = MessageFilter {
        direction: Some(Direction::In),
        outcome: Some(MessageOutcome::Partial),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        db.store.messages(&accepted).await.unwrap().iter().map(|m| m.id).collect::<Vec<_>>(),
        [replay]
    );

    // One instrument's traffic: the sender in its protocol, not a namesake in the other.
    let by_sender = |protocol, sender: &str| MessageFilter {
        sender: Some((protocol, sender.to_owned())),
        limit: 10,
        ..Default::default()
    };
    let ids = |rows: Vec<MessageRow>| rows.iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        ids(db.store.messages(&by_sender(Protocol::Hl7, "CHEM1")).await.unwrap()),
        [replay, id]
    );
    assert!(db.store.messages(&by_sender(Protocol::Astm, "CHEM1")).await.unwrap().is_empty());
    assert!(db.store.messages(&by_sender(Protocol::Hl7, "CHEM2")).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_outbox_message_reads_back_pending_failed_retried_and_sent() {
    let db = Db::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let id = tx.enqueue("ehr:2575", "CUV0001", b"MSH|ORU", "26-0000001-8", AT).await.unwrap();
    tx.commit().await.unwrap();
    let pending = OutboxRow {
        id,
        destination: "ehr:2575".into(),
        control_id: "CUV0001".into(),
        payload: b"MSH|ORU".to_vec(),
        accession: "26-0000001-8".into(),
        created_at: AT,
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: AT,
        last_error: None,
        sent_at: None,
    };
    same(&db.store.outbox_due(AT, 10).await.unwrap(), &vec![pending.clone()]);

    let mut tx = db.store.begin().await.unwrap();
    tx.outbox_failed(id, "connection refused", Some(at(30))).await.unwrap();
    tx.commit().await.unwrap();
    let retrying = OutboxRow {
        attempts: 1,
        next_attempt_at: at(30),
        last_error: Some("connection refused".into()),
        ..pending
    };
    same(&db.store.outbox_undelivered().await.unwrap(), &vec![retrying.clone()]);
    assert!(db.store.outbox_due(at(29), 10).await.unwrap().is_empty(), "not before its time");

    let mut tx = db.store.begin().await.unwrap();
    tx.outbox_failed(id, "AE: unknown patient", None).await.unwrap();
    tx.commit().await.unwrap();
    let given_up = OutboxRow {
        status: OutboxStatus::Failed,
        attempts: 2,
        last_error: Some("AE: unknown patient".into()),
        ..retrying
    };
    same(&db.store.outbox_undelivered().await.unwrap(), &vec![given_up.clone()]);

    let mut tx = db.store.begin().await.unwrap();
    tx.outbox_retry(id, at(100)).await.unwrap();
    tx.outbox_sent(id, b"MSA|AA|CUV0001", at(101)).await.unwrap();
    tx.commit().await.unwrap();
    assert!(db.store.outbox_undelivered().await.unwrap().is_empty(), "delivered");
}
