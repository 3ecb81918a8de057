//! Signed checkpoints of the audit chain, kept outside the database the chain protects.
//!
//! The hash chain proves that no event was altered or removed *inside* the chain, but someone
//! who can write to the database can delete the newest events and set the stored head back:
//! what remains is a shorter chain that checks out. A checkpoint anchors the head elsewhere:
//! the chain's sequence number and hash at a moment, signed with an Ed25519 key kept in a file
//! (never in the database), appended as one JSON line to a checkpoint file. `audit verify`
//! then finds a tail cut off behind the last checkpoint, or a chain rewritten under one, and a
//! checkpoint line forged without the key.
//!
//! What a checkpoint cannot show: events written after the last checkpoint (the window is the
//! checkpoint interval), or anything done by someone who also holds the key file and can
//! rewrite the checkpoint file. `docs/security.md` says how to narrow both.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use jiff::Timestamp;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{AppError, Database, Lab};
use cuvette_store::{AuditVerification, Store};

/// What the signature covers, before the fields: a signature made for anything else never
/// verifies as a checkpoint.
const SIGNED_PREFIX: &str = "cuvette audit checkpoint v1";
/// A checkpoint file line longer than this is not a checkpoint (the real ones are ~300 bytes).
const CHECKPOINT_LINE_BYTES_MAX: usize = 4096;

/// The key that signs checkpoints and the file they are appended to.
pub struct AuditAnchor {
    key: SigningKey,
    key_path: PathBuf,
    checkpoints: PathBuf,
    /// The sequence number last written by this process: an unchanged head is not written
    /// again.
    last_seq: Mutex<Option<i64>>,
}

/// One checkpoint, as written: one JSON object a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// When it was taken (RFC 3339, UTC).
    pub at: String,
    /// The chain head's hash.
    pub hash: String,
    /// The public key of the signer, hex (for the reader; verification uses the lab's key).
    pub public_key: String,
    /// The chain head's sequence number (0 before any event).
    pub seq: i64,
    /// Ed25519 signature over [`SIGNED_PREFIX`], `seq`, `hash` and `at`, hex.
    pub signature: String,
}

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// The key file cannot be read, created or used.
    #[error("the audit key file {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The checkpoint file cannot be read or appended to.
    #[error("the audit checkpoint file {path}: {reason}")]
    Checkpoints {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The database failed.
    #[error("{0}")]
    Lab(#[from] AppError),
}

/// The outcome of checking the chain against the checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchoredVerification {
    /// The chain is whole and holds every checkpoint.
    Intact {
        /// Events checked.
        events: i64,
        /// The last checkpoint's sequence number and time, if any was written.
        last_checkpoint: Option<(i64, String)>,
        /// Checkpoints checked.
        checkpoints: usize,
    },
    /// The chain itself is broken (an event altered, missing or out of order).
    Broken {
        /// The first bad event.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
    /// Events a checkpoint saw are gone: the chain was cut at its tail.
    TailMissing {
        /// The checkpoint's sequence number.
        checkpoint_seq: i64,
        /// The checkpoint's hash.
        checkpoint_hash: String,
        /// Where the chain now ends.
        chain_end: i64,
    },
    /// The event a checkpoint names has another hash now: the chain was rebuilt.
    Rewritten {
        /// The event.
        seq: i64,
        /// The hash the checkpoint signed.
        checkpoint_hash: String,
        /// The hash stored now.
        stored_hash: String,
    },
    /// A checkpoint line is not signed by the lab's key, or is not a checkpoint.
    Forged {
        /// Its line in the file, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl AnchoredVerification {
    /// Whether nothing is wrong.
    pub fn is_intact(&self) -> bool {
        matches!(self, AnchoredVerification::Intact { .. })
    }
}

impl fmt::Display for AnchoredVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnchoredVerification::Intact {
                events,
                last_checkpoint: Some((seq, at)),
                checkpoints,
            } => write!(
                f,
                "Audit chain intact: {events} events verified against {checkpoints} signed checkpoint(s), the last at seq {seq} ({at})"
            ),
            AnchoredVerification::Intact { events, last_checkpoint: None, .. } => write!(
                f,
                "Audit chain intact: {events} events verified; no checkpoint written yet, so a cut tail could not be seen"
            ),
            AnchoredVerification::Broken { seq, reason } => {
                write!(f, "Audit chain BROKEN at event {seq}: {reason}")
            }
            AnchoredVerification::TailMissing { checkpoint_seq, checkpoint_hash, chain_end } => {
                write!(
                    f,
                    "Audit chain BROKEN: tail missing: checkpoint at seq {checkpoint_seq} hash {checkpoint_hash} but the chain ends at seq {chain_end}"
                )
            }
            AnchoredVerification::Rewritten { seq, checkpoint_hash, stored_hash } => write!(
                f,
                "Audit chain BROKEN: rewritten: checkpoint at seq {seq} hash {checkpoint_hash} but event {seq} has hash {stored_hash}"
            ),
            AnchoredVerification::Forged { line, reason } => {
                write!(f, "Audit checkpoints FORGED: line {line} of the checkpoint file {reason}")
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    if text.len() != N * 2 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

fn signed_text(seq: i64, hash: &str, at: &str) -> String {
    format!("{SIGNED_PREFIX}\n{seq}\n{hash}\n{at}")
}

impl AuditAnchor {
    /// Opens the signing key at `key_path`, creating it on first use (32 random bytes, hex,
    /// readable and writable by the owner only), and the checkpoint file it appends to.
    pub fn open_or_create(key_path: &Path, checkpoints: &Path) -> Result<AuditAnchor, AnchorError> {
        if !key_path.exists() {
            let mut seed = [0u8; 32];
            rand::rng().fill_bytes(&mut seed);
            let key_error = |e: std::io::Error| AnchorError::Key {
                path: key_path.to_owned(),
                reason: format!("cannot be created: {e}"),
            };
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(key_path).map_err(key_error)?;
            file.write_all(format!("{}\n", hex(&seed)).as_bytes()).map_err(key_error)?;
            file.sync_all().map_err(key_error)?;
            tracing::info!(key = %key_path.display(), "created the audit checkpoint key");
        }
        AuditAnchor::open(key_path, checkpoints)
    }

    /// Opens an existing signing key (to verify, never creating one).
    pub fn open(key_path: &Path, checkpoints: &Path) -> Result<AuditAnchor, AnchorError> {
        let key_error = |reason: String| AnchorError::Key { path: key_path.to_owned(), reason };
        let text = std::fs::read_to_string(key_path)
            .map_err(|e| key_error(format!("cannot be read: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_path)
                .map_err(|e| key_error(format!("cannot be read: {e}")))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(key_error(format!(
                    "others may read it (mode {:o}): make it the owner's only with chmod 600",
                    mode & 0o777
                )));
            }
        }
        let seed = unhex::<32>(&text).ok_or_else(|| {
            key_error("is not an audit key (64 hexadecimal digits on one line)".into())
        })?;
        Ok(AuditAnchor {
            key: SigningKey::from_bytes(&seed),
            key_path: key_path.to_owned(),
            checkpoints: checkpoints.to_owned(),
            last_seq: Mutex::new(None),
        })
    }

    /// The public half of the key, hex.
    pub fn public_key(&self) -> String {
        hex(self.key.verifying_key().as_bytes())
    }

    /// The checkpoint file.
    pub fn checkpoints(&self) -> &Path {
        &self.checkpoints
    }

    /// Signs the head `(seq, hash)` at `at` and appends it to the checkpoint file, flushed to
    /// disk before returning.
    fn append(&self, seq: i64, hash: &str, at: Timestamp) -> Result<Checkpoint, AnchorError> {
        let at = at.to_string();
        let signature = self.key.sign(signed_text(seq, hash, &at).as_bytes());
        let checkpoint = Checkpoint {
            at,
            hash: hash.to_owned(),
            public_key: self.public_key(),
            seq,
            signature: hex(&signature.to_bytes()),
        };
        let file_error = |e: std::io::Error| AnchorError::Checkpoints {
            path: self.checkpoints.clone(),
            reason: format!("cannot be appended to: {e}"),
        };
        // A struct of strings and a number always serialises.
        let mut line = serde_json::to_string(&checkpoint).expect("a checkpoint serialises");
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.checkpoints)
            .map_err(file_error)?;
        file.write_all(line.as_bytes()).map_err(file_error)?;
        file.sync_data().map_err(file_error)?;
        Ok(checkpoint)
    }

    /// Reads every checkpoint, checking each signature with this key.
    fn read(&self) -> Result<Result<Vec<Checkpoint>, AnchoredVerification>, AnchorError> {
        let text = std::fs::read_to_string(&self.checkpoints).map_err(|e| {
            AnchorError::Checkpoints {
                path: self.checkpoints.clone(),
                reason: format!(
                    "cannot be read ({e}): a lab that writes checkpoints has this file, so a missing one was removed or is the wrong path"
                ),
            }
        })?;
        let verifying: VerifyingKey = self.key.verifying_key();
        let mut all = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let forged = |reason: &str| {
                Ok(Err(AnchoredVerification::Forged { line: i + 1, reason: reason.to_owned() }))
            };
            if line.trim().is_empty() {
                continue;
            }
            if line.len() > CHECKPOINT_LINE_BYTES_MAX {
                return forged("is too long to be a checkpoint");
            }
            let Ok(c) = serde_json::from_str::<Checkpoint>(line) else {
                return forged(
                    "is not a checkpoint (one JSON object with seq, hash, at and signature)",
                );
            };
            let Some(signature) = unhex::<64>(&c.signature) else {
                return forged("has a signature that is not 128 hexadecimal digits");
            };
            let signature = Signature::from_bytes(&signature);
            if verifying.verify(signed_text(c.seq, &c.hash, &c.at).as_bytes(), &signature).is_err()
            {
                return forged(&format!(
                    "(seq {}) is not signed by this lab's audit key {}",
                    c.seq,
                    self.key_path.display()
                ));
            }
            all.push(c);
        }
        Ok(Ok(all))
    }
}

/// Writes a checkpoint of `store`'s head at `at`, unless this anchor last wrote the same head.
async fn checkpoint(
    store: &Store,
    anchor: &AuditAnchor,
    at: Timestamp,
) -> Result<Option<Checkpoint>, AnchorError> {
    let (seq, hash) = store.audit_head().await.map_err(AppError::from)?;
    let mut last = anchor.last_seq.lock().unwrap_or_else(|p| p.into_inner());
    if *last == Some(seq) {
        return Ok(None);
    }
    let written = anchor.append(seq, &hash, at)?;
    *last = Some(seq);
    Ok(Some(written))
}

impl Database {
    /// Writes a checkpoint of the chain's head now (`cuvette audit checkpoint`).
    pub async fn write_checkpoint(
        &self,
        anchor: &AuditAnchor,
        at: Timestamp,
    ) -> Result<Option<Checkpoint>, AnchorError> {
        checkpoint(&self.store, anchor, at).await
    }

    /// Checks the chain from its first event, then against every checkpoint in the file:
    /// each must be signed by `anchor`'s key and name an event the chain still has, with the
    /// same hash.
    pub async fn verify_audit_anchored(
        &self,
        anchor: &AuditAnchor,
    ) -> Result<AnchoredVerification, AnchorError> {
        let checkpoints = match anchor.read()? {
            Ok(all) => all,
            Err(forged) => return Ok(forged),
        };
        let events = match self.verify_audit().await? {
            AuditVerification::Intact { events } => events,
            AuditVerification::Broken { seq, reason } => {
                return Ok(AnchoredVerification::Broken { seq, reason });
            }
        };
        if let Some(furthest) = checkpoints.iter().max_by_key(|c| c.seq)
            && furthest.seq > events
        {
            return Ok(AnchoredVerification::TailMissing {
                checkpoint_seq: furthest.seq,
                checkpoint_hash: furthest.hash.clone(),
                chain_end: events,
            });
        }
        for c in checkpoints.iter().filter(|c| c.seq > 0) {
            let stored = self.store.audit_event_hash(c.seq).await.map_err(AppError::from)?;
            let stored = stored.unwrap_or_default();
            if stored != c.hash {
                return Ok(AnchoredVerification::Rewritten {
                    seq: c.seq,
                    checkpoint_hash: c.hash.clone(),
                    stored_hash: stored,
                });
            }
        }
        Ok(AnchoredVerification::Intact {
            events,
            last_checkpoint: checkpoints.last().map(|c| (c.seq, c.at.clone())),
            checkpoints: checkpoints.len(),
        })
    }
}

impl Lab {
    /// Writes a checkpoint of the chain's head now, from the lab's clock; `None` when the head
    /// has not moved since this anchor's last one.
    pub async fn write_checkpoint(
        &self,
        anchor: &AuditAnchor,
    ) -> Result<Option<Checkpoint>, AnchorError> {
        checkpoint(&self.store, anchor, self.now()).await
    }

    /// Writes a checkpoint now and then every `every` while the server runs. A failure is
    /// logged and the next round tries again; each checkpoint is also logged, so a log shipped
    /// off the machine (syslog, the journal) carries the head too.
    pub async fn keep_checkpoints(self: Arc<Lab>, anchor: AuditAnchor, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.write_checkpoint(&anchor).await {
                Ok(Some(c)) => {
                    tracing::info!(seq = c.seq, hash = %c.hash, at = %c.at, "audit checkpoint written")
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "writing an audit checkpoint failed"),
            }
        }
    }
}
