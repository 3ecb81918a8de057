//! Interfaces: the one place where instrument and EHR messages meet the lab.
//!
//! Protocol codecs (HL7 v2, ASTM) turn bytes into [`Inbound`] messages carrying
//! [`ReceivedResult`]s; [`Lab::ingest`] maps each to a specimen (by accession number) and a
//! catalog test (through the instrument's test-code map), judges it with the same rules as a
//! manual result, and commits results, message log entry and the acknowledgement in one
//! transaction. Only then does the listener send that acknowledgement. What cannot be mapped
//! is committed to the quarantine with the reason and answered with an error: never dropped.

use cuvette_domain::workflow::{SpecimenStatus, TestStatus};
use cuvette_domain::{Action, ReportedValue, Role};
use cuvette_store::{
    InstrumentRow, MessageFilter, MessageRow, NewAuditEvent, NewMessage, OutboxRow, StoreError,
    TestCodeRow,
};

pub mod astm;
pub mod hl7;

use crate::results::PreparedResult;
use crate::{Actor, AppError, AppResult, Lab};

/// One result as an instrument reported it, before mapping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReceivedResult {
    /// The specimen's accession number (HL7 OBR-3/OBR-2, ASTM O-3).
    pub accession: String,
    /// The instrument's test code (HL7 OBX-3.1, ASTM R-3 component).
    pub instrument_code: String,
    /// The value as text, comparator included ("<0.5", "4.10", "Negative").
    pub value: String,
    /// Units as sent.
    pub unit: String,
    /// Reference range as sent.
    pub reference_range: String,
    /// The instrument's abnormal/error flags (HL7 OBX-8, ASTM R-7), normal flags removed.
    pub flags: Vec<String>,
    /// Result status as sent (HL7 OBX-11, ASTM R-9).
    pub status: String,
    /// Where in the message it came from, for error messages ("OBX 3", "R 2").
    pub location: String,
}

/// A decoded inbound message.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    /// `hl7` or `astm`.
    pub protocol: &'a str,
    /// The listener ("mllp:2575", "astm:5100").
    pub channel: &'a str,
    /// The remote address.
    pub peer: &'a str,
    /// The sender as the instrument map knows it (HL7 MSH-3, ASTM H-5).
    pub sender: &'a str,
    /// The message control id (HL7 MSH-10) or, for ASTM, a hash of the content.
    pub control_id: Option<&'a str>,
    /// `ORU^R01`, `ASTM`.
    pub message_type: &'a str,
    /// The raw bytes.
    pub raw: &'a [u8],
    /// The results in it.
    pub results: Vec<ReceivedResult>,
    /// Set when the message could not be decoded at all: it is quarantined with this reason.
    pub malformed: Option<String>,
    /// The quarantined message this replays, if any.
    pub replay_of: Option<i64>,
}

/// What became of an inbound message.
#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    /// Its results were stored.
    Accepted {
        /// The message log id.
        message_id: i64,
        /// Results stored.
        results: usize,
        /// Results not stored because their status says there is no value (pending, cannot
        /// be obtained), each with why.
        skipped: Vec<String>,
    },
    /// A retransmission: nothing changed; answer with the acknowledgement stored before.
    Duplicate {
        /// The original message.
        message_id: i64,
        /// The acknowledgement sent the first time.
        ack: Option<Vec<u8>>,
    },
    /// Kept in the quarantine; answer with an error naming the reason.
    Quarantined {
        /// The message log id.
        message_id: i64,
        /// Why, in words staff can act on.
        reason: String,
        /// Where in the message ("OBX 3"), when one part is at fault.
        location: String,
    },
}

/// The longest time a result message may take to process before it is logged as slow.
pub const INGEST_SLOW_US: i64 = 1_000_000;

/// OBX-11 / R-9 statuses that carry no value to store (HL7 table 0085: I pending, X cannot be
/// obtained, N not asked, O order detail, D delete, W wrong patient).
const NO_VALUE_STATUSES: [&str; 6] = ["I", "X", "N", "O", "D", "W"];

fn instrument_actor(instrument: &InstrumentRow) -> Actor {
    // Instruments enter results like a technician would; a person verifies them.
    Actor {
        name: format!("instrument:{}", instrument.name),
        display_name: instrument.name.clone(),
        role: Role::Technician,
    }
}

impl Lab {
    /// Ingests a decoded message: all of its results or none, with the message log entry and
    /// `ack(outcome)` committed together before the caller sends that acknowledgement.
    pub async fn ingest(
        &self,
        msg: &Inbound<'_>,
        ack: &(dyn Fn(&Ingested) -> Vec<u8> + Sync),
    ) -> AppResult<(Ingested, Vec<u8>)> {
        let started = self.clock_micros();
        if let Some(control_id) = msg.control_id
            && let Some(original) =
                self.store.message_by_control("in", msg.sender, control_id).await?
        {
            let outcome =
                Ingested::Duplicate { message_id: original.id, ack: original.ack.clone() };
            let bytes = original.ack.clone().unwrap_or_else(|| ack(&outcome));
            return Ok((outcome, bytes));
        }
        let plan = match &msg.malformed {
            Some(reason) => Err((reason.clone(), String::new())),
            None => self.plan_ingest(msg).await?,
        };
        let now = self.now_micros();
        let mut tx = self.store.begin().await?;
        let (outcome, results, accession, skipped_count) = match plan {
            Ok((instrument, prepared, skipped)) => {
                let actor = instrument_actor(&instrument);
                let saved = self.write_prepared(&mut tx, &actor, &prepared, None).await?;
                let accession = prepared.first().map(|p| p.item.specimen.accession.clone());
                let n = saved.len();
                (
                    Ingested::Accepted {
                        message_id: 0,
                        results: prepared.len(),
                        skipped: skipped.clone(),
                    },
                    n,
                    accession,
                    skipped.len(),
                )
            }
            Err((reason, location)) => {
                (Ingested::Quarantined { message_id: 0, reason, location }, 0, None, 0)
            }
        };
        let ack_bytes = ack(&outcome);
        let (outcome_code, detail, quarantine) = match &outcome {
            Ingested::Accepted { results, skipped, .. } => (
                "accepted",
                if skipped.is_empty() {
                    format!("{results} results stored")
                } else {
                    format!(
                        "{results} results stored; {skipped_count} without a value: {}",
                        skipped.join("; ")
                    )
                },
                None,
            ),
            Ingested::Quarantined { reason, location, .. } => (
                "quarantined",
                if location.is_empty() { reason.clone() } else { format!("{location}: {reason}") },
                Some("open"),
            ),
            Ingested::Duplicate { .. } => unreachable!("duplicates return early"),
        };
        let first_accession = accession
            .or_else(|| msg.results.first().map(|r| r.accession.clone()))
            .filter(|a| !a.is_empty());
        let inserted = tx
            .insert_message(
                &NewMessage {
                    direction: "in",
                    protocol: msg.protocol,
                    channel: msg.channel,
                    peer: msg.peer,
                    sender: msg.sender,
                    control_id: msg.control_id,
                    message_type: msg.message_type,
                    raw: msg.raw,
                    outcome: outcome_code,
                    detail: &detail,
                    ack: Some(&ack_bytes),
                    accession: first_accession.as_deref(),
                    results: results as i64,
                    quarantine,
                    replay_of: msg.replay_of,
                    processed_us: self.clock_micros() - started,
                },
                now,
            )
            .await;
        let message_id = match inserted {
            Ok(id) => id,
            Err(StoreError::Conflict(_)) => {
                // Two connections delivered the same message at once: the other one won.
                drop(tx);
                let original = self
                    .store
                    .message_by_control("in", msg.sender, msg.control_id.unwrap_or_default())
                    .await?
                    .ok_or_else(|| {
                        AppError::Conflict("the message was received twice at once".into())
                    })?;
                let outcome =
                    Ingested::Duplicate { message_id: original.id, ack: original.ack.clone() };
                let bytes = original.ack.clone().unwrap_or_else(|| ack(&outcome));
                return Ok((outcome, bytes));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(original) = msg.replay_of {
            tx.set_quarantine(original, "replayed").await?;
        }
        tx.commit().await?;
        let outcome = match outcome {
            Ingested::Accepted { results, skipped, .. } => {
                Ingested::Accepted { message_id, results, skipped }
            }
            Ingested::Quarantined { reason, location, .. } => {
                Ingested::Quarantined { message_id, reason, location }
            }
            d => d,
        };
        Ok((outcome, ack_bytes))
    }

    fn clock_micros(&self) -> i64 {
        self.now_micros()
    }

    /// Maps every result to its specimen and test; the first that cannot be mapped names why.
    async fn plan_ingest(
        &self,
        msg: &Inbound<'_>,
    ) -> AppResult<Result<(InstrumentRow, Vec<PreparedResult>, Vec<String>), (String, String)>>
    {
        let Some(instrument) = self.store.instrument_by_sender(msg.protocol, msg.sender).await?
        else {
            return Ok(Err((
                format!(
                    "unknown instrument {:?}: add it under Interfaces with its test codes",
                    msg.sender
                ),
                String::new(),
            )));
        };
        if !instrument.active {
            return Ok(Err((format!("instrument {} is disabled", instrument.name), String::new())));
        }
        if msg.results.is_empty() {
            return Ok(Err(("the message carries no results".into(), String::new())));
        }
        let codes = self.store.test_codes(instrument.id).await?;
        let catalog = self.catalog();
        let mut prepared: Vec<PreparedResult> = Vec::new();
        let mut skipped = Vec::new();
        for r in &msg.results {
            let at = r.location.clone();
            if NO_VALUE_STATUSES.contains(&r.status.as_str()) {
                skipped.push(format!("{} {} status {}", r.accession, r.instrument_code, r.status));
                continue;
            }
            let Some(map) = codes.iter().find(|c| c.instrument_code == r.instrument_code) else {
                return Ok(Err((
                    format!(
                        "test code {:?} from {} is not mapped to a catalog test: map it under Interfaces",
                        r.instrument_code, instrument.name
                    ),
                    at,
                )));
            };
            if !r.unit.trim().is_empty() && !map.unit.is_empty() && r.unit.trim() != map.unit {
                return Ok(Err((
                    format!(
                        "{} arrived in {:?} but {} reports it in {:?}: check the instrument's units",
                        map.test_code,
                        r.unit.trim(),
                        instrument.name,
                        map.unit
                    ),
                    at,
                )));
            }
            let accession = match cuvette_domain::Accession::parse(&r.accession) {
                Ok(a) => a.to_string(),
                Err(e) => return Ok(Err((format!("specimen id {:?}: {e}", r.accession), at))),
            };
            let Some(specimen) = self.store.specimen_by_accession(&accession).await? else {
                return Ok(Err((format!("no specimen has accession number {accession}"), at)));
            };
            if specimen.status == SpecimenStatus::Rejected.code() {
                return Ok(Err((
                    format!("specimen {accession} was rejected; results go on its recollection"),
                    at,
                )));
            }
            if specimen.status != SpecimenStatus::Received.code() {
                return Ok(Err((
                    format!("specimen {accession} has not been received in the lab"),
                    at,
                )));
            }
            let items = self
                .store
                .work_items(&cuvette_store::WorklistFilter {
                    specimen_id: Some(specimen.id),
                    limit: 1000,
                    ..Default::default()
                })
                .await?;
            let Some(item) = items.into_iter().find(|i| {
                i.test.test_code == map.test_code && i.test.status != TestStatus::Cancelled.code()
            }) else {
                return Ok(Err((
                    format!("{} is not ordered on specimen {accession}", map.test_code),
                    at,
                )));
            };
            let status = TestStatus::parse(&item.test.status).unwrap_or(TestStatus::Cancelled);
            if !status.accepts_results() {
                return Ok(Err((
                    format!(
                        "{} on {accession} is {status}: a released result is corrected by a technologist, not by the instrument",
                        map.test_code
                    ),
                    at,
                )));
            }
            if catalog.catalog.test(&map.test_code).is_none_or(|d| d.is_calculated()) {
                return Ok(Err((format!("{} cannot take a measured value", map.test_code), at)));
            }
            let value = match ReportedValue::parse(&r.value) {
                Ok(v) => v,
                Err(e) => return Ok(Err((format!("{}: {e}", map.test_code), at))),
            };
            if prepared.iter().any(|p| p.item.test.id == item.test.id) {
                return Ok(Err((format!("{} appears twice for {accession}", map.test_code), at)));
            }
            let row_version = item.test.row_version;
            prepared.push(PreparedResult {
                item,
                value,
                row_version,
                instrument_flags: r.flags.clone(),
            });
        }
        if prepared.is_empty() {
            return Ok(Err((
                format!("no result carries a value ({})", skipped.join("; ")),
                String::new(),
            )));
        }
        Ok(Ok((instrument, prepared, skipped)))
    }

    /// Adds an instrument (supervisor).
    pub async fn add_instrument(
        &self,
        actor: &Actor,
        name: &str,
        protocol: &str,
        sender: &str,
    ) -> AppResult<i64> {
        self.require(actor, Action::EditCatalog)?;
        let (name, sender) = (name.trim(), sender.trim());
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AppError::invalid("name", "name the instrument (up to 100 characters)"));
        }
        if !matches!(protocol, "hl7" | "astm") {
            return Err(AppError::invalid("protocol", "choose HL7 or ASTM"));
        }
        if sender.is_empty() || sender.chars().count() > 200 {
            return Err(AppError::invalid(
                "sender",
                "enter what the instrument sends as its name (HL7 MSH-3, ASTM H-5)",
            ));
        }
        let now = self.now_micros();
        let mut tx = self.store.begin().await?;
        let id = tx.insert_instrument(name, protocol, sender, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: "instrument.add",
            entity: "instrument",
            entity_id: name.to_owned(),
            patient_id: None,
            before: None,
            after: Some(
                serde_json::json!({ "name": name, "protocol": protocol, "sender": sender }),
            ),
        })
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Maps an instrument's test code to a catalog test (supervisor).
    pub async fn map_test_code(
        &self,
        actor: &Actor,
        instrument_id: i64,
        instrument_code: &str,
        test_code: &str,
        unit: &str,
    ) -> AppResult<()> {
        self.require(actor, Action::EditCatalog)?;
        let instrument = self.store.instrument(instrument_id).await?;
        let test_code = test_code.trim().to_ascii_uppercase();
        let catalog = self.catalog();
        let Some(def) = catalog.catalog.test(&test_code) else {
            return Err(AppError::invalid(
                "test_code",
                format!("{test_code:?} is not a test in the catalog"),
            ));
        };
        if def.is_calculated() {
            return Err(AppError::invalid(
                "test_code",
                format!("{} is calculated; map the instrument's measured tests", def.name),
            ));
        }
        let code = instrument_code.trim();
        if code.is_empty() || code.chars().count() > 100 {
            return Err(AppError::invalid(
                "instrument_code",
                "enter the code the instrument sends (up to 100 characters)",
            ));
        }
        let unit = if unit.trim().is_empty() { def.unit.clone() } else { unit.trim().to_owned() };
        let row = TestCodeRow {
            instrument_id,
            instrument_code: code.to_owned(),
            test_code: test_code.clone(),
            unit: unit.clone(),
        };
        let now = self.now_micros();
        let mut tx = self.store.begin().await?;
        tx.map_test_code(&row).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: "instrument.map_code",
            entity: "instrument",
            entity_id: instrument.name.clone(),
            patient_id: None,
            before: None,
            after: Some(serde_json::json!({ "instrument_code": code, "test_code": test_code, "unit": unit })),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every instrument with its test-code map.
    pub async fn instruments(
        &self,
        actor: &Actor,
    ) -> AppResult<Vec<(InstrumentRow, Vec<TestCodeRow>)>> {
        self.require(actor, Action::ViewResults)?;
        let mut out = Vec::new();
        for i in self.store.instruments().await? {
            let codes = self.store.test_codes(i.id).await?;
            out.push((i, codes));
        }
        Ok(out)
    }

    /// The message log (or the open quarantine), newest first.
    pub async fn message_log(
        &self,
        actor: &Actor,
        filter: &MessageFilter,
    ) -> AppResult<Vec<MessageRow>> {
        self.require(actor, Action::ViewResults)?;
        Ok(self.store.messages(filter).await?)
    }

    /// One logged message.
    pub async fn message(&self, actor: &Actor, id: i64) -> AppResult<MessageRow> {
        self.require(actor, Action::ViewResults)?;
        Ok(self.store.message(id).await?)
    }

    /// Dismisses a quarantined message that will not be replayed (a test message, a duplicate
    /// sent under another id), with the reason, audited.
    pub async fn dismiss_quarantined(&self, actor: &Actor, id: i64, reason: &str) -> AppResult<()> {
        self.require(actor, Action::VerifyAbnormal)?;
        if reason.trim().is_empty() {
            return Err(AppError::invalid("reason", "say why the message is dismissed"));
        }
        let message = self.store.message(id).await?;
        if message.quarantine.as_deref() != Some("open") {
            return Err(AppError::Refused("this message is not waiting in the quarantine".into()));
        }
        let now = self.now_micros();
        let mut tx = self.store.begin().await?;
        tx.set_quarantine(id, "dismissed").await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: "quarantine.dismiss",
            entity: "interface_message",
            entity_id: id.to_string(),
            patient_id: None,
            before: Some(serde_json::json!({ "quarantine": "open", "detail": message.detail })),
            after: Some(serde_json::json!({ "quarantine": "dismissed", "reason": reason.trim() })),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Messages waiting in the outbox or failed.
    pub async fn outbox(&self, actor: &Actor) -> AppResult<Vec<OutboxRow>> {
        self.require(actor, Action::ViewResults)?;
        Ok(self.store.outbox_undelivered().await?)
    }
}

impl Lab {
    /// Puts a failed outbox message back in the queue.
    pub async fn retry_outbox(&self, actor: &Actor, id: i64) -> AppResult<()> {
        self.require(actor, Action::VerifyAbnormal)?;
        let now = self.now_micros();
        let mut tx = self.store.begin().await?;
        tx.outbox_retry(id, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: "outbox.retry",
            entity: "outbox",
            entity_id: id.to_string(),
            patient_id: None,
            before: None,
            after: None,
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replays a quarantined message after staff fixed the cause, optionally with a corrected
    /// accession number. Returns the new message log id; the original is marked replayed
    /// when the replay is accepted.
    pub async fn replay_quarantined(
        &self,
        actor: &Actor,
        id: i64,
        accession: Option<&str>,
    ) -> AppResult<i64> {
        self.require(actor, Action::VerifyAbnormal)?;
        let original = self.store.message(id).await?;
        if original.quarantine.as_deref() != Some("open") {
            return Err(AppError::Refused("this message is not waiting in the quarantine".into()));
        }
        if let Some(a) = accession {
            cuvette_domain::Accession::parse(a)
                .map_err(|e| AppError::invalid("accession", e.to_string()))?;
        }
        let decoded = decode_for_replay(&original);
        let mut results = decoded.results;
        if let Some(a) = accession {
            for r in &mut results {
                r.accession = a.to_owned();
            }
        }
        let replay_control =
            original.control_id.as_ref().map(|c| format!("{c}#replay-{}", self.now_micros()));
        let channel = format!("replay by {}", actor.name);
        let inbound = Inbound {
            protocol: &original.protocol,
            channel: &channel,
            peer: &original.peer,
            sender: &original.sender,
            control_id: replay_control.as_deref(),
            message_type: &original.message_type,
            raw: &original.raw,
            results,
            malformed: decoded.malformed,
            replay_of: None,
        };
        let ack = |_: &Ingested| Vec::new();
        let (outcome, _) = self.ingest(&inbound, &ack).await?;
        let now = self.now_micros();
        let mut tx = self.store.begin().await?;
        let new_id = match &outcome {
            Ingested::Accepted { message_id, .. } => {
                tx.set_quarantine(id, "replayed").await?;
                *message_id
            }
            Ingested::Quarantined { message_id, .. } | Ingested::Duplicate { message_id, .. } => {
                *message_id
            }
        };
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: "quarantine.replay",
            entity: "interface_message",
            entity_id: id.to_string(),
            patient_id: None,
            before: Some(serde_json::json!({ "detail": original.detail })),
            after: Some(serde_json::json!({ "replay": new_id, "accession": accession, "outcome": format!("{outcome:?}") })),
        })
        .await?;
        tx.commit().await?;
        Ok(new_id)
    }
}

/// What a logged message decodes to, for a replay.
pub struct Decoded {
    /// The results.
    pub results: Vec<ReceivedResult>,
    /// Why it cannot be decoded, if it cannot.
    pub malformed: Option<String>,
}

fn decode_for_replay(m: &MessageRow) -> Decoded {
    match m.protocol.as_str() {
        "hl7" => hl7::decode_results(&m.raw),
        "astm" => astm::decode_results(&m.raw),
        other => Decoded { results: vec![], malformed: Some(format!("unknown protocol {other}")) },
    }
}
