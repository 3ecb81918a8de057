//! Audit checkpoints: the chain's head signed into a file outside the database, so that events
//! cut from the end of the log, a chain rebuilt under a checkpoint, and a forged checkpoint are
//! all named by the verification.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use cuvette_app::Database;
use cuvette_app::checkpoint::{AnchorError, AnchoredVerification, AuditAnchor};
use cuvette_app::records::AuditVerification;

use crate::support::*;

/// A folder of its own for one test's key and checkpoint file, removed when dropped.
struct Folder(PathBuf);

impl Folder {
    fn new() -> Folder {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cuvette-anchor-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Folder(dir)
    }

    fn anchor(&self) -> AuditAnchor {
        AuditAnchor::open_or_create(&self.0.join("audit.key"), &self.0.join("checkpoints.jsonl"))
            .unwrap()
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.0.join("checkpoints.jsonl"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn database(lab: &TestLab) -> Database {
    Database::from(lab.store().clone())
}

async fn some_work(lab: &TestLab) {
    let patient = lab.adult_woman().await;
    let technician = lab.technician().await;
    lab.received(&patient, &["K"]).await;
    lab.enter(&technician, &patient, "K", "4.2").await.unwrap();
}

/// What only someone with write access to the database can do: drop the append-only guard,
/// delete the newest `n` events and set the stored head back to the last one left.
async fn cut_tail(lab: &TestLab, n: i64) -> i64 {
    let end = lab.audit_count().await - n;
    let lift = if lab.on_postgres() {
        "DROP TRIGGER audit_event_no_change ON audit_event"
    } else {
        "DROP TRIGGER audit_event_no_delete"
    };
    lab.raw_sql(lift).await.unwrap();
    lab.raw_sql(&format!("DELETE FROM audit_event WHERE seq > {end}")).await.unwrap();
    lab.raw_sql(&format!(
        "UPDATE audit_head SET seq = {end}, hash = (SELECT hash FROM audit_event WHERE seq = {end}) WHERE id = 1"
    ))
    .await
    .unwrap();
    end
}

#[tokio::test]
async fn a_checkpoint_signs_the_chain_head_into_a_file_outside_the_database() {
    let lab = lab().await;
    let folder = Folder::new();
    some_work(&lab).await;
    let anchor = folder.anchor();

    let first = lab.write_checkpoint(&anchor).await.unwrap().expect("a first checkpoint");
    assert_eq!(first.seq, lab.audit_count().await);
    assert_eq!(first.at, START);
    assert_eq!((first.hash.len(), first.signature.len()), (64, 128));
    assert_eq!(first.public_key, anchor.public_key());
    assert_eq!(
        lab.write_checkpoint(&anchor).await.unwrap(),
        None,
        "an unmoved head is not written"
    );
    lab.clock.advance(minutes(5));
    lab.adult_man().await;
    let second = lab.write_checkpoint(&anchor).await.unwrap().expect("the head moved");
    assert!(second.seq > first.seq);

    let lines = folder.lines();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with(r#"{"at":"2026-11-24T08:00:00Z","hash":""#), "{}", lines[0]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(folder.0.join("audit.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key is its owner's only");
    }
    let verified = database(&lab).verify_audit_anchored(&anchor).await.unwrap();
    assert!(verified.is_intact(), "{verified}");
    assert!(verified.to_string().contains("against 2 signed checkpoint(s)"), "{verified}");
}

#[tokio::test]
async fn a_tail_cut_behind_a_checkpoint_is_named_though_the_chain_alone_checks_out() {
    let lab = lab().await;
    let folder = Folder::new();
    some_work(&lab).await;
    let anchor = folder.anchor();
    let checkpoint = lab.write_checkpoint(&anchor).await.unwrap().unwrap();

    let end = cut_tail(&lab, 3).await;

    assert!(
        matches!(lab.store().verify_audit().await.unwrap(), AuditVerification::Intact { .. }),
        "the chain alone cannot see a tail cut with its head"
    );
    let verified = database(&lab).verify_audit_anchored(&anchor).await.unwrap();
    assert_eq!(
        verified,
        AnchoredVerification::TailMissing {
            checkpoint_seq: checkpoint.seq,
            checkpoint_hash: checkpoint.hash.clone(),
            chain_end: end,
        }
    );
    assert_eq!(
        verified.to_string(),
        format!(
            "Audit chain BROKEN: tail missing: checkpoint at seq {} hash {} but the chain ends at seq {end}",
            checkpoint.seq, checkpoint.hash
        )
    );
}

#[tokio::test]
async fn a_tail_cut_and_covered_with_new_events_is_named_as_rewritten() {
    let lab = lab().await;
    let folder = Folder::new();
    some_work(&lab).await;
    let anchor = folder.anchor();
    let checkpoint = lab.write_checkpoint(&anchor).await.unwrap().unwrap();

    cut_tail(&lab, 1).await;
    lab.adult_man().await; // a new event takes the cut one's place
    assert!(lab.audit_count().await >= checkpoint.seq);

    match database(&lab).verify_audit_anchored(&anchor).await.unwrap() {
        AnchoredVerification::Rewritten { seq, checkpoint_hash, stored_hash } => {
            assert_eq!((seq, &checkpoint_hash), (checkpoint.seq, &checkpoint.hash));
            assert_ne!(stored_hash, checkpoint_hash);
        }
        other => panic!("a rebuilt tail verified: {other}"),
    }
}

#[tokio::test]
async fn a_checkpoint_not_signed_by_the_labs_key_is_reported_as_forged() {
    let lab = lab().await;
    let folder = Folder::new();
    some_work(&lab).await;
    let anchor = folder.anchor();
    lab.write_checkpoint(&anchor).await.unwrap().unwrap();

    // A forger with the file but not the key signs a head of their own choosing.
    let forger = AuditAnchor::open_or_create(
        &folder.0.join("forger.key"),
        &folder.0.join("checkpoints.jsonl"),
    )
    .unwrap();
    cut_tail(&lab, 3).await;
    lab.write_checkpoint(&forger).await.unwrap().unwrap();
    let verified = database(&lab).verify_audit_anchored(&anchor).await.unwrap();
    assert!(matches!(&verified, AnchoredVerification::Forged { line: 2, .. }), "{verified}");
    assert!(verified.to_string().contains("is not signed by this lab's audit key"), "{verified}");

    // Editing a signed line (its sequence number) breaks its signature too.
    let first = folder.lines()[0].clone();
    let seq = first.split(r#""seq":"#).nth(1).unwrap().split(',').next().unwrap().to_owned();
    let edited = first.replace(&format!(r#""seq":{seq}"#), r#""seq":3"#);
    std::fs::write(folder.0.join("checkpoints.jsonl"), format!("{edited}\n")).unwrap();
    let verified = database(&lab).verify_audit_anchored(&anchor).await.unwrap();
    assert!(matches!(verified, AnchoredVerification::Forged { line: 1, .. }), "{verified}");

    std::fs::write(folder.0.join("checkpoints.jsonl"), "not a checkpoint\n").unwrap();
    let verified = database(&lab).verify_audit_anchored(&anchor).await.unwrap();
    assert!(verified.to_string().contains("is not a checkpoint"), "{verified}");
}

#[tokio::test]
async fn a_key_others_may_read_or_a_missing_checkpoint_file_is_refused_in_plain_words() {
    let lab = lab().await;
    let folder = Folder::new();
    let key = folder.0.join("audit.key");
    let missing = folder.0.join("nowhere.jsonl");
    let anchor = AuditAnchor::open_or_create(&key, &missing).unwrap();

    match database(&lab).verify_audit_anchored(&anchor).await {
        Err(e @ AnchorError::Checkpoints { .. }) => {
            assert!(e.to_string().contains("nowhere.jsonl"), "{e}")
        }
        other => panic!("a missing checkpoint file passed: {other:?}"),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = AuditAnchor::open(&key, &missing).err().expect("a readable key is refused");
        assert!(refused.to_string().contains("chmod 600"), "{refused}");
    }
    std::fs::write(folder.0.join("bad.key"), "not a key\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(folder.0.join("bad.key"), perms).unwrap();
    }
    let refused = AuditAnchor::open(&folder.0.join("bad.key"), &missing).err().unwrap();
    assert!(refused.to_string().contains("64 hexadecimal digits"), "{refused}");
}
