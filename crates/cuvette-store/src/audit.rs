//! The hash-chained audit log.
//!
//! Canonical form of an event (what is hashed): the JSON object
//! `{"action","actor","after","at","before","entity","entity_id","patient_id","seq"}` with keys
//! in that (sorted) order, no insignificant whitespace, `before`/`after` as the JSON text of
//! the state (or null), `at` in UTC microseconds. `hash = SHA-256(prev_hash ‖ canonical)`,
//! both hex-encoded; the first event's `prev_hash` is 32 zero bytes. An event is written in
//! the same transaction as the change it records, and writers serialise on `audit_head`.

use cuvette_domain::audit::AuditAction;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{Store, StoreResult, Timestamp, Tx, code, opt_i64, time};

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewAuditEvent<'a> {
    /// When it happened.
    pub at: Timestamp,
    /// Who did it (username, or `system`, or `apikey:NAME`).
    pub actor: &'a str,
    /// What was done; stored as its code (`result.enter`).
    pub action: AuditAction,
    /// The kind of thing it was done to (`patient`, `specimen`, `result`, …).
    pub entity: &'a str,
    /// Which one.
    pub entity_id: String,
    /// The patient concerned, so every access to a patient's record can be listed.
    pub patient_id: Option<i64>,
    /// The state before the change.
    pub before: Option<serde_json::Value>,
    /// The state after the change.
    pub after: Option<serde_json::Value>,
}

/// A stored event.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// What; a stored code Cuvette does not write is corrupt data.
    pub action: AuditAction,
    /// To what kind of thing.
    pub entity: String,
    /// To which.
    pub entity_id: String,
    /// The patient concerned.
    pub patient_id: Option<i64>,
    /// State before, as JSON text.
    pub before: Option<String>,
    /// State after, as JSON text.
    pub after: Option<String>,
    /// Hash of the previous event.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

/// The outcome of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditVerification {
    /// Every event hashes to what is stored and links to its predecessor.
    Intact {
        /// Events checked.
        events: i64,
    },
    /// The first event that does not check out, and why.
    Broken {
        /// Its sequence number.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Serialize)]
struct Canonical<'a> {
    action: &'a str,
    actor: &'a str,
    after: Option<&'a str>,
    at: Timestamp,
    before: Option<&'a str>,
    entity: &'a str,
    entity_id: &'a str,
    patient_id: Option<i64>,
    seq: i64,
}

fn chain_hash(prev_hash: &str, c: &Canonical<'_>) -> String {
    // Serialising a struct of plain fields cannot fail.
    let canonical = serde_json::to_vec(c).expect("canonical audit form serialises");
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(&canonical);
    hex(&h.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// The audit events of one transaction, hashed as they are appended and inserted together
/// when it commits: one read and one write of the chain's head per transaction instead of per
/// event. Nothing else reads the chain inside a write transaction.
#[derive(Default)]
pub(crate) struct Pending {
    /// The chain's head as of the last appended event; read at the first append.
    head: Option<(i64, String)>,
    /// Events appended and not yet written.
    rows: Vec<PendingEvent>,
}

struct PendingEvent {
    seq: i64,
    at: Timestamp,
    actor: String,
    action: &'static str,
    entity: String,
    entity_id: String,
    patient_id: Option<i64>,
    before: Option<String>,
    after: Option<String>,
    prev_hash: String,
    hash: String,
}

/// Rows per INSERT: 11 parameters each stays far below both engines' parameter limits.
const AUDIT_ROWS_PER_INSERT: usize = 200;

impl Tx {
    /// Appends an audit event to the chain, inside this transaction.
    pub async fn audit(&mut self, e: NewAuditEvent<'_>) -> StoreResult<()> {
        let (prev_seq, prev_hash) = match self.audit.head.take() {
            Some(head) => head,
            None => {
                // PostgreSQL's begin() already holds this row FOR UPDATE; SQLite's writer
                // holds the database lock.
                let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(self.conn())
                    .await?;
                (head.try_get("seq")?, head.try_get("hash")?)
            }
        };
        let seq = prev_seq + 1;
        let before = e.before.as_ref().map(|v| v.to_string());
        let after = e.after.as_ref().map(|v| v.to_string());
        let hash = chain_hash(
            &prev_hash,
            &Canonical {
                action: e.action.code(),
                actor: e.actor,
                after: after.as_deref(),
                at: e.at,
                before: before.as_deref(),
                entity: e.entity,
                entity_id: &e.entity_id,
                patient_id: e.patient_id,
                seq,
            },
        );
        self.audit.head = Some((seq, hash.clone()));
        self.audit.rows.push(PendingEvent {
            seq,
            at: e.at,
            actor: e.actor.to_owned(),
            action: e.action.code(),
            entity: e.entity.to_owned(),
            entity_id: e.entity_id,
            patient_id: e.patient_id,
            before,
            after,
            prev_hash,
            hash,
        });
        Ok(())
    }

    /// Writes the events appended so far and the new head (called by commit).
    pub(crate) async fn flush_audit(&mut self) -> StoreResult<()> {
        let rows = std::mem::take(&mut self.audit.rows);
        for chunk in rows.chunks(AUDIT_ROWS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO audit_event (seq, at, actor, action, entity, entity_id, patient_id, before_state, after_state, prev_hash, hash) VALUES ",
            );
            crate::values_placeholders(&mut sql, chunk.len(), 11);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(r.seq)
                    .bind(r.at.as_micros())
                    .bind(&r.actor)
                    .bind(r.action)
                    .bind(&r.entity)
                    .bind(&r.entity_id)
                    .bind(r.patient_id)
                    .bind(&r.before)
                    .bind(&r.after)
                    .bind(&r.prev_hash)
                    .bind(&r.hash);
            }
            q.execute(self.conn()).await?;
        }
        if let Some(last) = rows.last() {
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(last.seq)
                .bind(&last.hash)
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }
}

fn event_from_row(r: &sqlx::any::AnyRow) -> StoreResult<AuditEvent> {
    Ok(AuditEvent {
        seq: r.try_get("seq")?,
        at: time(r, "at")?,
        actor: r.try_get("actor")?,
        action: code(r, "audit_event", "seq", "action", AuditAction::parse)?,
        entity: r.try_get("entity")?,
        entity_id: r.try_get("entity_id")?,
        patient_id: opt_i64(r, "patient_id")?,
        before: r.try_get("before_state")?,
        after: r.try_get("after_state")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// An event exactly as stored, for recomputing its hash.
struct StoredEvent {
    seq: i64,
    at: Timestamp,
    actor: String,
    action: String,
    entity: String,
    entity_id: String,
    patient_id: Option<i64>,
    before: Option<String>,
    after: Option<String>,
    prev_hash: String,
    hash: String,
}

impl StoredEvent {
    fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<StoredEvent> {
        Ok(StoredEvent {
            seq: r.try_get("seq")?,
            at: time(r, "at")?,
            actor: r.try_get("actor")?,
            action: r.try_get("action")?,
            entity: r.try_get("entity")?,
            entity_id: r.try_get("entity_id")?,
            patient_id: opt_i64(r, "patient_id")?,
            before: r.try_get("before_state")?,
            after: r.try_get("after_state")?,
            prev_hash: r.try_get("prev_hash")?,
            hash: r.try_get("hash")?,
        })
    }
}

/// Filters for the audit view.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this kind of event.
    pub action: Option<AuditAction>,
    /// Only this entity kind and id.
    pub entity: Option<(String, String)>,
    /// Only events about this patient.
    pub patient_id: Option<i64>,
    /// Only events before this sequence number (paging backwards).
    pub before_seq: Option<i64>,
}

/// Events per audit page.
pub const AUDIT_PAGE_LEN: i64 = 200;

impl Store {
    /// Recomputes the whole chain and names the first broken link.
    pub async fn verify_audit(&self) -> StoreResult<AuditVerification> {
        const BATCH: i64 = 5000;
        let mut prev_hash = GENESIS.to_owned();
        let mut expected_seq = 1;
        loop {
            let rows = sqlx::query(
                "SELECT seq, at, actor, action, entity, entity_id, patient_id, before_state, after_state, prev_hash, hash \
                 FROM audit_event WHERE seq >= $1 ORDER BY seq LIMIT $2",
            )
            .bind(expected_seq)
            .bind(BATCH)
            .fetch_all(self.reader())
            .await?;
            let done = (rows.len() as i64) < BATCH;
            for row in &rows {
                // The chain is checked on the text as stored: an action code this version
                // does not know is still hashed, so a damaged code shows as a broken link.
                let e = StoredEvent::from_row(row)?;
                if e.seq != expected_seq {
                    return Ok(AuditVerification::Broken {
                        seq: expected_seq,
                        reason: format!(
                            "event {expected_seq} is missing (next stored is {})",
                            e.seq
                        ),
                    });
                }
                if e.prev_hash != prev_hash {
                    return Ok(AuditVerification::Broken {
                        seq: e.seq,
                        reason: "its prev_hash does not match the previous event's hash".into(),
                    });
                }
                let recomputed = chain_hash(
                    &prev_hash,
                    &Canonical {
                        action: &e.action,
                        actor: &e.actor,
                        after: e.after.as_deref(),
                        at: e.at,
                        before: e.before.as_deref(),
                        entity: &e.entity,
                        entity_id: &e.entity_id,
                        patient_id: e.patient_id,
                        seq: e.seq,
                    },
                );
                if recomputed != e.hash {
                    return Ok(AuditVerification::Broken {
                        seq: e.seq,
                        reason: "its content does not match its hash (the event was altered)"
                            .into(),
                    });
                }
                prev_hash = e.hash;
                expected_seq += 1;
            }
            if done {
                break;
            }
        }
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.reader())
            .await?;
        let head_seq: i64 = head.try_get("seq")?;
        let head_hash: String = head.try_get("hash")?;
        if head_seq != expected_seq - 1 || head_hash != prev_hash {
            return Ok(AuditVerification::Broken {
                seq: expected_seq,
                reason: format!(
                    "the chain head names event {head_seq} but the log ends at {}",
                    expected_seq - 1
                ),
            });
        }
        Ok(AuditVerification::Intact { events: expected_seq - 1 })
    }

    /// The chain's head as stored: the last event's sequence number and hash (0 and the
    /// genesis hash before any event).
    pub async fn audit_head(&self) -> StoreResult<(i64, String)> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.reader())
            .await?;
        Ok((head.try_get("seq")?, head.try_get("hash")?))
    }

    /// The stored hash of event `seq`, if there is such an event.
    pub async fn audit_event_hash(&self, seq: i64) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT hash FROM audit_event WHERE seq = $1")
            .bind(seq)
            .fetch_optional(self.reader())
            .await?)
    }

    /// Audit events, newest first, filtered.
    pub async fn audit_events(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, entity, entity_id, patient_id, before_state, after_state, prev_hash, hash \
             FROM audit_event \
             WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR entity = $2) AND ($3 IS NULL OR entity_id = $3) \
               AND ($4 IS NULL OR patient_id = $4) AND ($5 IS NULL OR seq < $5) \
               AND ($6 IS NULL OR action = $6) \
             ORDER BY seq DESC LIMIT $7",
        )
        .bind(filter.actor.as_deref())
        .bind(filter.entity.as_ref().map(|e| e.0.as_str()))
        .bind(filter.entity.as_ref().map(|e| e.1.as_str()))
        .bind(filter.patient_id)
        .bind(filter.before_seq)
        .bind(filter.action.map(AuditAction::code))
        .bind(AUDIT_PAGE_LEN)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(event_from_row).collect()
    }
}
