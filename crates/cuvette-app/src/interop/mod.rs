//! Interfaces: the one place where instrument and EHR messages meet the lab.
//!
//! Protocol codecs (HL7 v2, ASTM) turn bytes into [`Inbound`] messages carrying
//! [`ReceivedResult`]s; [`Lab::ingest`] maps each to a specimen (by accession number) and a
//! catalog test (through the instrument's test-code map), judges it with the same rules as a
//! manual result, and commits results, message log entry and the acknowledgement in one
//! transaction. Only then does the listener send that acknowledgement. What cannot be mapped
//! is committed to the quarantine with the reason and answered with an error: never dropped.
//!
//! Units follow the code map: a code mapped in another unit than the catalog's carries a
//! conversion ([`cuvette_domain::units`]; a unit without one is refused when the code is
//! mapped), its results are converted before they are judged and keep the value and unit as
//! sent, and a result whose unit differs from its mapping's is quarantined.
//!
//! Orders from the EHR ([`OrderMessage`], decoded from OML^O21 and ORM^O01 by [`hl7`]) take the
//! same path through [`Lab::ingest_orders`]: the patient found by MRN or registered, every
//! order placed with the placer's number, all committed with the log entry and the answer
//! carrying the accession numbers, or quarantined with the field at fault. Results go the
//! other way through [`outbound`]: an ORU^R01 queued in the outbox by the release itself.

use cuvette_domain::patient::{
    Mrn, RegisteredIdentity, SentIdentity, Sex, check_identity, parse_birth_date,
};
use cuvette_domain::units::{self, Conversion, Mapping};
use cuvette_domain::workflow::{SpecimenStatus, TestStatus};
use cuvette_domain::{Action, ReportedValue, Role, TestDefinition};
use cuvette_store::{
    InstrumentRow, MessageFilter, MessageRow, NewAuditEvent, NewMessage, OutboxRow, StoreError,
    TestCodeRow, Tx,
};

pub mod astm;
pub(crate) mod commit;
mod control;
pub mod hl7;
pub mod outbound;

use crate::orders::PreparedOrder;
use crate::patients::NAME_LEN_MAX;
use std::collections::HashMap;

use cuvette_domain::autoverify::SerumIndices;

use crate::autoverify::SERUM_INDEX_CODES;
use crate::results::{OrderItems, PreparedResult, Sent};
use crate::{Actor, AppError, AppResult, Lab, PlaceOrder, PlacedOrder};

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
    /// Who the message says the specimen came from (HL7 PID, ASTM P), when it says so.
    pub patient: Option<SentIdentity>,
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
    /// Orders from the EHR were placed (all of the message's orders, or none of them).
    Ordered {
        /// The message log id.
        message_id: i64,
        /// The patient the orders are for.
        patient_id: i64,
        /// Whether the patient was registered from the message's PID.
        registered: bool,
        /// One per order (ORC/OBR pair) in message order, with the accession numbers assigned.
        orders: Vec<PlacedOrder>,
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

impl Ingested {
    /// The outcome with the message log id it was committed under.
    fn with_message_id(self, id: i64) -> Ingested {
        match self {
            Ingested::Accepted { results, skipped, .. } => {
                Ingested::Accepted { message_id: id, results, skipped }
            }
            Ingested::Ordered { patient_id, registered, orders, .. } => {
                Ingested::Ordered { message_id: id, patient_id, registered, orders }
            }
            Ingested::Quarantined { reason, location, .. } => {
                Ingested::Quarantined { message_id: id, reason, location }
            }
            d @ Ingested::Duplicate { .. } => d,
        }
    }
}

/// A result message checked against the record, ready to evaluate.
pub(crate) struct IngestPlan {
    instrument: InstrumentRow,
    prepared: Vec<PreparedResult>,
    orders: OrderItems,
    skipped: Vec<String>,
    /// Serum indices the message carried, by specimen id.
    indices: HashMap<i64, SerumIndices>,
}

/// Work after a message's commit.
#[derive(Default)]
struct AfterCommit {
    instrument_id: Option<i64>,
    tests: Vec<String>,
}

/// What the message log records about one inbound message, owned so that it can wait for a
/// group commit.
pub(crate) struct MessageRecord {
    protocol: String,
    channel: String,
    peer: String,
    sender: String,
    control_id: Option<String>,
    message_type: String,
    raw: Vec<u8>,
    outcome: &'static str,
    detail: String,
    ack: Vec<u8>,
    accession: Option<String>,
    results: i64,
    quarantine: Option<&'static str>,
    replay_of: Option<i64>,
    /// When processing began (clock microseconds), for the processing time.
    started: i64,
}

impl MessageRecord {
    #[allow(clippy::too_many_arguments)] // One log row; the names are the columns.
    fn inbound(
        msg: &Inbound<'_>,
        outcome: &'static str,
        detail: String,
        ack: Vec<u8>,
        accession: Option<String>,
        results: usize,
        quarantine: Option<&'static str>,
        started: i64,
    ) -> MessageRecord {
        MessageRecord {
            protocol: msg.protocol.to_owned(),
            channel: msg.channel.to_owned(),
            peer: msg.peer.to_owned(),
            sender: msg.sender.to_owned(),
            control_id: msg.control_id.map(str::to_owned),
            message_type: msg.message_type.to_owned(),
            raw: msg.raw.to_vec(),
            outcome,
            detail,
            ack,
            accession,
            results: results as i64,
            quarantine,
            replay_of: msg.replay_of,
            started,
        }
    }
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
        if let Some(answer) = self.stored_answer(msg, ack).await? {
            return Ok(answer);
        }
        // The sender and its code map, read once for both kinds of result message.
        let sender = match &msg.malformed {
            Some(_) => None,
            None => self.store.instrument_with_codes(msg.protocol, msg.sender).await?,
        };
        let control = match (&msg.malformed, &sender) {
            (None, Some(sender)) => self.plan_control_runs(msg, sender).await?,
            _ => None,
        };
        let control_refused = match control {
            Some(Ok(runs)) => return self.ingest_control_runs(msg, runs, ack, started).await,
            Some(Err(refusal)) => Some(refusal),
            None => None,
        };
        let plan = match (&msg.malformed, control_refused) {
            (Some(reason), _) => Err((reason.clone(), String::new())),
            (None, Some(refusal)) => Err(refusal),
            (None, None) => match self.plan_ingest(msg, sender).await? {
                Ok(plan) => {
                    let mut writes = self.result_writes(&plan.prepared, None, &plan.orders).await?;
                    let measured = plan.prepared.len();
                    for w in &mut writes[..measured] {
                        w.instrument_id = Some(plan.instrument.id);
                    }
                    self.decide_autoverification(
                        plan.instrument.id,
                        &mut writes[..measured],
                        &plan.indices,
                    )
                    .await?;
                    Ok((plan, writes))
                }
                Err(refused) => Err(refused),
            },
        };
        let mut after = AfterCommit::default();
        let (outcome, actor, writes, accession, skipped_count, indices) = match plan {
            Ok((plan, writes)) => {
                let accession = plan.prepared.first().map(|p| p.item.specimen.accession.clone());
                let skipped_count = plan.skipped.len();
                after.instrument_id = Some(plan.instrument.id);
                after.tests = plan.prepared.iter().map(|p| p.item.test.test_code.clone()).collect();
                (
                    Ingested::Accepted {
                        message_id: 0,
                        results: plan.prepared.len(),
                        skipped: plan.skipped,
                    },
                    Some(instrument_actor(&plan.instrument)),
                    writes,
                    accession,
                    skipped_count,
                    plan.indices.into_iter().collect(),
                )
            }
            Err((reason, location)) => (
                Ingested::Quarantined { message_id: 0, reason, location },
                None,
                Vec::new(),
                None,
                0,
                Vec::new(),
            ),
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
            Ingested::Duplicate { .. } | Ingested::Ordered { .. } => {
                unreachable!("duplicates return early; results place no orders")
            }
        };
        let first_accession = accession
            .or_else(|| msg.results.first().map(|r| r.accession.clone()))
            .filter(|a| !a.is_empty());
        let record = MessageRecord::inbound(
            msg,
            outcome_code,
            detail,
            ack_bytes.clone(),
            first_accession,
            writes.len(),
            quarantine,
            started,
        );
        match self.commit_grouped(commit::CommitJob { actor, writes, record, indices }).await? {
            commit::Committed::Logged(message_id) => {
                self.after_commit(after).await;
                Ok((outcome.with_message_id(message_id), ack_bytes))
            }
            // Two connections delivered the same message at once: the other one won.
            commit::Committed::AlreadyLogged => self
                .stored_answer(msg, ack)
                .await?
                .ok_or_else(|| AppError::Conflict("the message was received twice at once".into())),
        }
    }

    /// What follows a committed message: the patient moving averages. The message is
    /// acknowledged whatever happens here: its results are stored.
    async fn after_commit(&self, after: AfterCommit) {
        if let Some(instrument_id) = after.instrument_id
            && let Err(e) = self.check_moving_averages(instrument_id, &after.tests).await
        {
            tracing::error!(error = %e, "patient moving averages could not be checked");
        }
    }

    /// The answer already given to this message, when it is a retransmission (same sender,
    /// same control id): nothing is processed twice.
    async fn stored_answer(
        &self,
        msg: &Inbound<'_>,
        ack: &(dyn Fn(&Ingested) -> Vec<u8> + Sync),
    ) -> AppResult<Option<(Ingested, Vec<u8>)>> {
        let Some(control_id) = msg.control_id else { return Ok(None) };
        let Some(original) = self.store.message_by_control("in", msg.sender, control_id).await?
        else {
            return Ok(None);
        };
        let outcome = Ingested::Duplicate { message_id: original.id, ack: original.ack.clone() };
        let bytes = original.ack.clone().unwrap_or_else(|| ack(&outcome));
        Ok(Some((outcome, bytes)))
    }

    /// Logs an inbound message inside `tx`; `None` when the same sender's control id was
    /// logged meanwhile (the transaction is then unusable and must be dropped).
    async fn log_inbound(&self, tx: &mut Tx, e: &MessageRecord) -> AppResult<Option<i64>> {
        let inserted = tx
            .insert_message(
                &NewMessage {
                    direction: "in",
                    protocol: &e.protocol,
                    channel: &e.channel,
                    peer: &e.peer,
                    sender: &e.sender,
                    control_id: e.control_id.as_deref(),
                    message_type: &e.message_type,
                    raw: &e.raw,
                    outcome: e.outcome,
                    detail: &e.detail,
                    ack: Some(&e.ack),
                    accession: e.accession.as_deref(),
                    results: e.results,
                    quarantine: e.quarantine,
                    replay_of: e.replay_of,
                    processed_us: self.clock_micros() - e.started,
                },
                self.now_micros(),
            )
            .await;
        match inserted {
            Ok(id) => Ok(Some(id)),
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn clock_micros(&self) -> i64 {
        self.now_micros()
    }

    /// Maps every result to its specimen and test; the first that cannot be mapped names why.
    async fn plan_ingest(
        &self,
        msg: &Inbound<'_>,
        sender: Option<(InstrumentRow, Vec<TestCodeRow>)>,
    ) -> AppResult<Result<IngestPlan, (String, String)>> {
        let Some((instrument, codes)) = sender else {
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
        let catalog = self.catalog();
        let mut prepared: Vec<PreparedResult> = Vec::new();
        let mut skipped = Vec::new();
        let mut indices: HashMap<i64, SerumIndices> = HashMap::new();
        let mut specimens: std::collections::HashMap<
            String,
            (Option<cuvette_store::SpecimenRow>, Vec<cuvette_store::WorkItem>),
        > = std::collections::HashMap::new();
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
            let def = catalog.catalog.test(&map.test_code);
            let conversion = match unit_of_result(&instrument, map, &r.unit, def) {
                Ok(c) => c,
                Err(reason) => return Ok(Err((reason, at))),
            };
            let accession = match cuvette_domain::Accession::parse(&r.accession) {
                Ok(a) => a.to_string(),
                Err(e) => return Ok(Err((format!("specimen id {:?}: {e}", r.accession), at))),
            };
            // One read per specimen, not per result: a panel's results share a tube. The
            // whole order is read, for the calculations its results feed.
            if !specimens.contains_key(&accession) {
                let found = self.store.specimen_by_accession(&accession).await?;
                let items = match &found {
                    Some(s) => {
                        self.store
                            .work_items(&cuvette_store::WorklistFilter {
                                order_id: Some(s.order_id),
                                limit: 10_000,
                                ..Default::default()
                            })
                            .await?
                    }
                    None => Vec::new(),
                };
                specimens.insert(accession.clone(), (found, items));
            }
            let (found, items) = &specimens[&accession];
            let Some(specimen) = found else {
                return Ok(Err((format!("no specimen has accession number {accession}"), at)));
            };
            if specimen.status == SpecimenStatus::Rejected {
                return Ok(Err((
                    format!("specimen {accession} was rejected; results go on its recollection"),
                    at,
                )));
            }
            if specimen.status != SpecimenStatus::Received {
                return Ok(Err((
                    format!("specimen {accession} has not been received in the lab"),
                    at,
                )));
            }
            if let Some(index) = SERUM_INDEX_CODES.iter().position(|(c, _)| *c == map.test_code) {
                // A serum index describes the specimen, not an ordered test.
                let Ok(value) = r.value.trim().parse::<u32>() else {
                    return Ok(Err((
                        format!(
                            "{} {:?} is not a whole number",
                            SERUM_INDEX_CODES[index].1, r.value
                        ),
                        at,
                    )));
                };
                let entry = indices.entry(specimen.id).or_default();
                match index {
                    0 => entry.hemolysis = Some(value),
                    1 => entry.icterus = Some(value),
                    _ => entry.lipemia = Some(value),
                }
                continue;
            }
            if let Some(sent) = r.patient.as_ref().filter(|p| !p.is_empty()) {
                // The two-identifier rule applies to machines: a message about someone else
                // is never stored under this specimen's patient.
                if let Some(patient) =
                    items.iter().find(|i| i.specimen.id == specimen.id).map(|i| &i.patient)
                {
                    let birth_date = patient.birth_date.parse().map_err(|_| {
                        AppError::Store(StoreError::Corrupt {
                            table: "patient",
                            row: patient.id,
                            column: "birth_date",
                            value: patient.birth_date.clone(),
                        })
                    })?;
                    let registered = RegisteredIdentity {
                        mrn: &patient.mrn,
                        family_name: &patient.family_name,
                        given_name: &patient.given_name,
                        birth_date,
                    };
                    if let Err(wrong) = check_identity(sent, registered) {
                        let wrong: Vec<String> = wrong.iter().map(ToString::to_string).collect();
                        return Ok(Err((
                            format!(
                                "the message's patient is not specimen {accession}'s patient ({}): check the specimen id on the tube and the patient on the instrument",
                                wrong.join("; ")
                            ),
                            at,
                        )));
                    }
                }
            }
            let Some(item) = items
                .iter()
                .find(|i| {
                    i.specimen.id == specimen.id
                        && i.test.test_code == map.test_code
                        && i.test.status != TestStatus::Cancelled
                })
                .cloned()
            else {
                return Ok(Err((
                    format!("{} is not ordered on specimen {accession}", map.test_code),
                    at,
                )));
            };
            let status = item.test.status;
            if !status.accepts_results() {
                return Ok(Err((
                    format!(
                        "{} on {accession} is {status}: a released result is corrected by a technologist, not by the instrument",
                        map.test_code
                    ),
                    at,
                )));
            }
            let Some(def) = def.filter(|d| !d.is_calculated()) else {
                return Ok(Err((format!("{} cannot take a measured value", map.test_code), at)));
            };
            let value = match ReportedValue::parse(&r.value) {
                Ok(v) => v,
                Err(e) => return Ok(Err((format!("{}: {e}", map.test_code), at))),
            };
            // Converted before it is judged: flags, interval and critical limits are the
            // catalog's, in the catalog's unit.
            let (value, sent) = match conversion {
                None => (value, None),
                Some(c) => match c.apply(&value, def.decimals) {
                    Some(converted) => (converted, Some(Sent { value: value.text, unit: c.from })),
                    None => {
                        return Ok(Err((
                            format!(
                                "{} {} {} cannot be converted to {}",
                                map.test_code, value.text, c.from, c.to
                            ),
                            at,
                        )));
                    }
                },
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
                sent,
            });
        }
        if prepared.is_empty() {
            return Ok(Err((
                format!("no result carries a value ({})", skipped.join("; ")),
                String::new(),
            )));
        }
        let orders: OrderItems = specimens
            .into_values()
            .filter_map(|(found, items)| Some((found?.order_id, items)))
            .collect();
        Ok(Ok(IngestPlan { instrument, prepared, orders, skipped, indices }))
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
        let index = SERUM_INDEX_CODES.iter().any(|(c, _)| *c == test_code);
        let def = catalog.catalog.test(&test_code);
        if def.is_none() && !index {
            return Err(AppError::invalid(
                "test_code",
                format!(
                    "{test_code:?} is not a test in the catalog (serum indices map to SI_H, SI_I or SI_L)"
                ),
            ));
        }
        if let Some(def) = def.filter(|d| d.is_calculated()) {
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
        let unit = unit.trim();
        if unit.chars().count() > units::UNIT_LEN_MAX {
            return Err(AppError::invalid(
                "unit",
                format!("a unit is at most {} characters", units::UNIT_LEN_MAX),
            ));
        }
        // A result is stored in the catalog's unit: another unit needs a conversion.
        let (unit, conversion) = match def {
            None => (units::normalize(unit).to_owned(), None),
            Some(def) => match units::mapping(def, unit) {
                Mapping::Same if unit.is_empty() => (def.unit.clone(), None),
                Mapping::Same => (units::normalize(unit).to_owned(), None),
                Mapping::Convert(c) => (c.from.to_owned(), Some(c)),
                Mapping::Unconvertible => {
                    return Err(AppError::invalid("unit", unconvertible(def, unit)));
                }
            },
        };
        let row = TestCodeRow {
            instrument_id,
            instrument_code: code.to_owned(),
            test_code: test_code.clone(),
            unit: unit.clone(),
        };
        let now = self.now_micros();
        let mut tx = self.store.begin().await?;
        tx.map_test_code(&row).await?;
        let mut after =
            serde_json::json!({ "instrument_code": code, "test_code": test_code, "unit": unit });
        if let Some(c) = &conversion {
            after["conversion"] = c.describe().into();
        }
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: "instrument.map_code",
            entity: "instrument",
            entity_id: instrument.name.clone(),
            patient_id: None,
            before: None,
            after: Some(after),
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
        let replay_control =
            original.control_id.as_ref().map(|c| format!("{c}#replay-{}", self.now_micros()));
        let channel = format!("replay by {}", actor.name);
        let (outcome, _) = if original.protocol == "hl7"
            && hl7::is_order_message(&original.message_type)
        {
            if accession.is_some() {
                return Err(AppError::invalid(
                    "accession",
                    "an order message carries no accession number to correct: fix the cause (the catalog, the sender, the patient on file) and replay it as it is",
                ));
            }
            let decoded = hl7::decode_orders(&original.raw);
            let inbound = Inbound {
                protocol: &original.protocol,
                channel: &channel,
                peer: &original.peer,
                sender: &original.sender,
                control_id: replay_control.as_deref(),
                message_type: &original.message_type,
                raw: &original.raw,
                results: Vec::new(),
                malformed: None,
                replay_of: None,
            };
            let ack = |_: &Ingested, _: Option<OrderFault>| Vec::new();
            self.ingest_orders(&inbound, &decoded, &ack).await?
        } else {
            let decoded = decode_for_replay(&original);
            let mut results = decoded.results;
            if let Some(a) = accession {
                for r in &mut results {
                    r.accession = a.to_owned();
                }
            }
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
            self.ingest(&inbound, &ack).await?
        };
        let now = self.now_micros();
        let mut tx = self.store.begin().await?;
        let new_id = match &outcome {
            Ingested::Accepted { message_id, .. } | Ingested::Ordered { message_id, .. } => {
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

/// Whether a result's unit lets it in, and the conversion it needs: a unit in the message
/// (after normalising its spelling) must be the one its code is mapped with — an empty one
/// means the mapped unit — and a mapped unit other than the catalog's must have a conversion
/// (a mapping saved before conversions were required may not). `Err` says why not.
pub(crate) fn unit_of_result(
    instrument: &InstrumentRow,
    map: &TestCodeRow,
    sent_unit: &str,
    def: Option<&TestDefinition>,
) -> Result<Option<Conversion>, String> {
    let (sent, mapped) = (units::normalize(sent_unit), units::normalize(&map.unit));
    if !sent.is_empty() && !mapped.is_empty() && sent != mapped {
        return Err(format!(
            "{} arrived in {sent} but {} is mapped to send {mapped}: correct the instrument's unit or its mapping under Interfaces",
            map.test_code, instrument.name
        ));
    }
    let Some(def) = def else { return Ok(None) };
    match units::mapping(def, mapped) {
        Mapping::Same => Ok(None),
        Mapping::Convert(c) => Ok(Some(c)),
        Mapping::Unconvertible if def.unit.is_empty() => Err(format!(
            "{} is mapped on {} to arrive in {mapped}, but the catalog reports it without a unit: map the code again under Interfaces",
            map.test_code, instrument.name
        )),
        Mapping::Unconvertible => Err(format!(
            "{} is mapped on {} to arrive in {mapped}, which Cuvette cannot convert to the catalog's {}: map the code again under Interfaces",
            map.test_code, instrument.name, def.unit
        )),
    }
}

/// Why a code cannot be mapped with `unit`, and what to map it with instead.
fn unconvertible(def: &TestDefinition, unit: &str) -> String {
    let unit = units::normalize(unit);
    if def.unit.is_empty() {
        return format!("{} is reported without a unit: leave the unit empty", def.name);
    }
    if def.result_type != cuvette_domain::catalog::ResultType::Numeric {
        return format!(
            "{} is reported as coded values in {}: map the code with {} or leave the unit empty",
            def.name, def.unit, def.unit
        );
    }
    let others = units::convertible_units(&def.code, &def.unit);
    let instead = if others.is_empty() {
        format!("map the code with {} and set the instrument to send {}", def.unit, def.unit)
    } else {
        format!(
            "map the code with {} (set the instrument to send it) or with a unit Cuvette converts for {}: {}",
            def.unit,
            def.code,
            others.join(", ")
        )
    };
    format!(
        "{} is reported in {} and Cuvette cannot convert {unit} to it: {instead}",
        def.name, def.unit
    )
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

// ---------------------------------------------------------------------------------------------
// Orders from the EHR

/// A patient as an order message describes them (HL7 PID), as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedPatient {
    /// Medical record number (PID-3, first repetition, CX.1).
    pub mrn: String,
    /// Family name (PID-5.1, its surname).
    pub family_name: String,
    /// Given name (PID-5.2).
    pub given_name: String,
    /// Date of birth as sent (PID-7: `YYYYMMDD`, a time may follow).
    pub birth_date: String,
    /// Administrative sex as sent (PID-8, HL7 table 0001).
    pub sex: String,
}

/// One order as the EHR placed it (HL7 ORC with its OBR), as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedOrder {
    /// Order control (ORC-1, HL7 table 0119): `NW` for a new order.
    pub control: String,
    /// The placer's order number (ORC-2, else OBR-2).
    pub placer_number: String,
    /// The test or panel asked for (OBR-4.1): a LOINC or a Cuvette code.
    pub code: String,
    /// Its text (OBR-4.2).
    pub code_text: String,
    /// Its coding system (OBR-4.3, `LN` for LOINC).
    pub coding_system: String,
    /// The alternate identifier (OBR-4.4), tried when the first is not in the catalog.
    pub alternate_code: String,
    /// Priority as sent (TQ1-9, else OBR-27.6, ORC-7.6, OBR-5; HL7 table 0485: `S` stat).
    pub priority: String,
    /// The ordering provider as text (ORC-12, else OBR-16).
    pub provider: String,
    /// Notes on the order (NTE-3 after the OBR), one per line.
    pub note: String,
    /// Which ORC of the message this is (from 1), for error locations.
    pub orc: usize,
    /// Which OBR of the message (from 1; 0 when the ORC has none).
    pub obr: usize,
}

/// A decoded order message: one patient and their orders.
#[derive(Debug, Clone, Default)]
pub struct OrderMessage {
    /// The patient (PID), when there is one.
    pub patient: Option<ReceivedPatient>,
    /// The orders, in message order.
    pub orders: Vec<ReceivedOrder>,
    /// A problem with the message's structure (two patients, an OBR without its ORC).
    pub problem: Option<OrderRefusal>,
}

/// Why an order message goes to the quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRefusal {
    /// In words staff can act on.
    pub reason: String,
    /// Where, as an HL7 location: `PID-7`, `OBR(2)-4`, or a segment (`PID`).
    pub location: String,
    /// What kind of fault, for the acknowledgement's error code.
    pub fault: OrderFault,
}

/// The kind of fault in an order message (mapped to HL7 table 0357 by the acknowledgement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderFault {
    /// A required segment or field is empty (101).
    Missing,
    /// A field cannot be read as what it must hold (102).
    Invalid,
    /// A code the lab does not know: a test, an order control, a sender (103).
    UnknownCode,
    /// The message contradicts what the lab holds: another date of birth for a known MRN.
    Mismatch,
    /// The message cannot be taken at all (unreadable).
    Unsupported,
}

/// Who places the orders an EHR sends: the registered system, as order entry.
fn ehr_actor(system: &InstrumentRow) -> Actor {
    Actor {
        name: format!("ehr:{}", system.name),
        display_name: system.name.clone(),
        role: Role::Phlebotomist,
    }
}

/// The patient an order message is for: on file, or to register from its PID.
enum PlannedPatient {
    OnFile(cuvette_store::PatientRow),
    New { mrn: String, family: String, given: String, birth_date: String, sex: &'static str },
}

struct OrderPlan {
    system: InstrumentRow,
    patient: PlannedPatient,
    orders: Vec<PreparedOrder>,
}

fn refuse<T>(
    reason: impl Into<String>,
    location: impl Into<String>,
    fault: OrderFault,
) -> AppResult<Result<T, OrderRefusal>> {
    Ok(Err(OrderRefusal { reason: reason.into(), location: location.into(), fault }))
}

/// Reads an HL7 date (DT, or the date of a DTM): `YYYYMMDD`, anything after it ignored.
fn hl7_date(text: &str) -> Option<jiff::civil::Date> {
    let t = text.trim();
    let digits = t.get(..8).filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
    let (y, m, d) =
        (digits[..4].parse().ok()?, digits[4..6].parse().ok()?, digits[6..].parse().ok()?);
    jiff::civil::Date::new(y, m, d).ok()
}

/// The Cuvette code an order code stands for: an orderable test with this LOINC, else a panel
/// with this LOINC, else the code itself when it is a Cuvette test or panel code.
fn catalog_code(catalog: &cuvette_domain::Catalog, code: &str) -> Result<Option<String>, String> {
    let code = code.trim();
    if code.is_empty() {
        return Ok(None);
    }
    let tests: Vec<&str> = catalog
        .tests()
        .filter(|t| t.orderable && t.loinc == code)
        .map(|t| t.code.as_str())
        .collect();
    let panels: Vec<&str> =
        catalog.panels().filter(|p| p.loinc == code).map(|p| p.code.as_str()).collect();
    // A LOINC names an observation: the test itself wins over a panel built around it
    // (3016-3 is TSH, not the thyroid cascade that starts with it).
    for found in [tests, panels] {
        match found.as_slice() {
            [one] => return Ok(Some((*one).to_owned())),
            [] => {}
            many => {
                return Err(format!(
                    "LOINC {code} matches several catalog entries ({}): send the Cuvette code instead",
                    many.join(", ")
                ));
            }
        }
    }
    let upper = code.to_ascii_uppercase();
    let known =
        catalog.panel(&upper).is_some() || catalog.test(&upper).is_some_and(|t| t.orderable);
    Ok(known.then_some(upper))
}

/// Cuvette's priority for an HL7 priority code: `S` (stat) is STAT, everything else routine
/// (Cuvette has no ASAP or timed priorities).
fn order_priority(code: &str) -> &'static str {
    match code.trim().to_ascii_uppercase().as_str() {
        "S" | "STAT" => "stat",
        _ => "routine",
    }
}

/// The meaning of an order control code (HL7 table 0119), for messages.
fn order_control_name(code: &str) -> &'static str {
    match code {
        "NW" => "new order",
        "OK" => "order accepted",
        "CA" => "cancel order request",
        "DC" => "discontinue order request",
        "XO" => "change order request",
        "SC" => "status changed",
        "RE" => "observations to follow",
        "HD" => "hold order request",
        "RP" => "order replace request",
        "SN" => "send order number",
        _ => "not a new order",
    }
}

impl Lab {
    /// Ingests an order message from the EHR (OML^O21, ORM^O01): finds the patient by MRN or
    /// registers them, places every order with the placer's number, and commits the patients,
    /// orders, message log entry and `ack(outcome, fault)` together, or quarantines the message
    /// with the reason and places nothing. A retransmission gets the stored acknowledgement.
    ///
    /// The sender must be registered under Interfaces (protocol HL7, sender = MSH-3), as
    /// instruments are: registering it is what allows it to create patients and orders.
    pub async fn ingest_orders(
        &self,
        msg: &Inbound<'_>,
        order: &OrderMessage,
        ack: &(dyn Fn(&Ingested, Option<OrderFault>) -> Vec<u8> + Sync),
    ) -> AppResult<(Ingested, Vec<u8>)> {
        let started = self.clock_micros();
        let plain = |o: &Ingested| ack(o, None);
        if let Some(answer) = self.stored_answer(msg, &plain).await? {
            return Ok(answer);
        }
        let plan = match &msg.malformed {
            Some(reason) => Err(OrderRefusal {
                reason: reason.clone(),
                location: String::new(),
                fault: OrderFault::Unsupported,
            }),
            None => self.plan_orders(msg, order).await?,
        };
        let mut tx = self.store.begin().await?;
        let (outcome, fault, detail, accession) = match plan {
            Ok(plan) => {
                let actor = ehr_actor(&plan.system);
                let (patient_id, mrn, registered) = match &plan.patient {
                    PlannedPatient::OnFile(p) => (p.id, p.mrn.clone(), false),
                    PlannedPatient::New { mrn, family, given, birth_date, sex } => {
                        let new = cuvette_store::NewPatient {
                            mrn,
                            family_name: family,
                            given_name: given,
                            birth_date,
                            sex,
                        };
                        (self.register_in(&mut tx, &actor, &new).await?, mrn.clone(), true)
                    }
                };
                let mut placed = Vec::new();
                for o in &plan.orders {
                    placed.push(self.write_order(&mut tx, &actor, patient_id, o).await?);
                }
                let lines: Vec<String> = placed
                    .iter()
                    .zip(&order.orders)
                    .map(|(p, o)| {
                        let specimens: Vec<String> = p
                            .specimens
                            .iter()
                            .map(|s| format!("{} ({})", s.accession, s.tests.join(" ")))
                            .collect();
                        let placer = if o.placer_number.is_empty() {
                            String::new()
                        } else {
                            format!(", placer {}", o.placer_number)
                        };
                        format!("order {}{placer}: {}", p.order_id, specimens.join(", "))
                    })
                    .collect();
                let detail = format!(
                    "MRN {mrn}{}; {}",
                    if registered { " registered from PID" } else { "" },
                    lines.join("; ")
                );
                let first = placed.first().and_then(|p| p.specimens.first());
                let accession = first.map(|s| s.accession.clone());
                let outcome =
                    Ingested::Ordered { message_id: 0, patient_id, registered, orders: placed };
                (outcome, None, detail, accession)
            }
            Err(refusal) => {
                let detail = if refusal.location.is_empty() {
                    refusal.reason.clone()
                } else {
                    format!("{}: {}", refusal.location, refusal.reason)
                };
                let outcome = Ingested::Quarantined {
                    message_id: 0,
                    reason: refusal.reason,
                    location: refusal.location,
                };
                (outcome, Some(refusal.fault), detail, None)
            }
        };
        let ack_bytes = ack(&outcome, fault);
        let quarantined = matches!(outcome, Ingested::Quarantined { .. });
        let entry = MessageRecord::inbound(
            msg,
            if quarantined { "quarantined" } else { "accepted" },
            detail,
            ack_bytes.clone(),
            accession,
            0,
            quarantined.then_some("open"),
            started,
        );
        let Some(message_id) = self.log_inbound(&mut tx, &entry).await? else {
            drop(tx);
            return self.stored_answer(msg, &plain).await?.ok_or_else(|| {
                AppError::Conflict("the message was received twice at once".into())
            });
        };
        if let Some(original) = msg.replay_of {
            tx.set_quarantine(original, "replayed").await?;
        }
        tx.commit().await?;
        Ok((outcome.with_message_id(message_id), ack_bytes))
    }

    /// Checks an order message against the senders, patients and catalog on file; the first
    /// problem found names its place.
    async fn plan_orders(
        &self,
        msg: &Inbound<'_>,
        m: &OrderMessage,
    ) -> AppResult<Result<OrderPlan, OrderRefusal>> {
        use OrderFault::{Invalid, Mismatch, Missing, UnknownCode};
        let Some(system) = self.store.instrument_by_sender(msg.protocol, msg.sender).await? else {
            return refuse(
                format!(
                    "unknown sender {:?}: add the EHR under Interfaces (HL7, sender {:?}) before it sends orders",
                    msg.sender, msg.sender
                ),
                "MSH-3",
                UnknownCode,
            );
        };
        if !system.active {
            return refuse(format!("{} is disabled", system.name), "MSH-3", UnknownCode);
        }
        if let Some(problem) = &m.problem {
            return Ok(Err(problem.clone()));
        }
        let Some(pid) = &m.patient else {
            return refuse(
                "the order names no patient: the PID segment is missing",
                "PID",
                Missing,
            );
        };
        if pid.mrn.trim().is_empty() {
            return refuse(
                "the patient's MRN is missing (PID-3, first repetition, first component)",
                "PID-3",
                Missing,
            );
        }
        let mrn = match Mrn::parse(&pid.mrn) {
            Ok(m) => m,
            Err(e) => return refuse(format!("MRN {:?}: {e}", pid.mrn.trim()), "PID-3", Invalid),
        };
        let today = self.now().to_zoned_datetime(self.config.time_zone.clone()).date();
        if pid.birth_date.trim().is_empty() {
            return refuse(
                "the date of birth is missing (PID-7): Cuvette identifies patients by MRN and date of birth",
                "PID-7",
                Missing,
            );
        }
        let birth = match hl7_date(&pid.birth_date)
            .ok_or_else(|| {
                format!("date of birth {:?} is not a date (YYYYMMDD)", pid.birth_date.trim())
            })
            .and_then(|d| parse_birth_date(&d.to_string(), today))
        {
            Ok(d) => d.to_string(),
            Err(e) => return refuse(e, "PID-7", Invalid),
        };
        let patient = match self.store.patient_by_mrn(mrn.as_str()).await? {
            Some(row) if row.birth_date != birth => {
                return refuse(
                    format!(
                        "MRN {} is on file with date of birth {}, but the order says {birth}: check the patient's identity with the ward before ordering",
                        row.mrn, row.birth_date
                    ),
                    "PID-7",
                    Mismatch,
                );
            }
            Some(row) => PlannedPatient::OnFile(row),
            None => {
                let family = pid.family_name.trim();
                let given = pid.given_name.trim();
                if family.is_empty() {
                    return refuse(
                        format!(
                            "MRN {mrn} is not on file and the family name to register is missing (PID-5.1)",
                            mrn = mrn.as_str()
                        ),
                        "PID-5",
                        Missing,
                    );
                }
                if family.chars().count() > NAME_LEN_MAX || given.chars().count() > NAME_LEN_MAX {
                    return refuse(
                        format!("names are at most {NAME_LEN_MAX} characters"),
                        "PID-5",
                        Invalid,
                    );
                }
                let sex = match pid.sex.trim() {
                    // N (not applicable) and an empty field register as not known.
                    "" | "N" => Sex::Unknown,
                    other => match Sex::parse(other) {
                        Some(s) => s,
                        None => {
                            return refuse(
                                format!("sex {other:?} is not F, M, O, U, A or N (HL7 table 0001)"),
                                "PID-8",
                                Invalid,
                            );
                        }
                    },
                };
                PlannedPatient::New {
                    mrn: mrn.as_str().to_owned(),
                    family: family.to_owned(),
                    given: given.to_owned(),
                    birth_date: birth,
                    sex: sex.code(),
                }
            }
        };
        if m.orders.is_empty() {
            return refuse("the message carries no order (ORC with OBR)", "ORC", Missing);
        }
        let catalog = self.catalog();
        let mut orders = Vec::new();
        for o in &m.orders {
            let orc = o.orc;
            let control = o.control.trim();
            if control != "NW" {
                return refuse(
                    format!(
                        "order control {control:?} ({}) is not taken: Cuvette accepts new orders (NW) only; cancel or change an order by calling the lab",
                        order_control_name(control)
                    ),
                    format!("ORC({orc})-1"),
                    if control.is_empty() { Missing } else { UnknownCode },
                );
            }
            if o.obr == 0 {
                return refuse(
                    "the order has no OBR naming the test (OBR-4)",
                    format!("ORC({orc})"),
                    Missing,
                );
            }
            let obr = o.obr;
            let code = match catalog_code(&catalog.catalog, &o.code) {
                Ok(Some(c)) => c,
                Ok(None) => match catalog_code(&catalog.catalog, &o.alternate_code) {
                    Ok(Some(c)) => c,
                    Ok(None) if o.code.trim().is_empty() => {
                        return refuse(
                            "the test or panel code is missing (OBR-4)",
                            format!("OBR({obr})-4"),
                            Missing,
                        );
                    }
                    Ok(None) => {
                        let described = [o.code_text.trim(), o.coding_system.trim()]
                            .into_iter()
                            .filter(|t| !t.is_empty())
                            .collect::<Vec<_>>()
                            .join(", ");
                        let described = if described.is_empty() {
                            String::new()
                        } else {
                            format!(" ({described})")
                        };
                        return refuse(
                            format!(
                                "test code {:?}{described} is not in the catalog: no orderable test or panel has this LOINC or Cuvette code",
                                o.code.trim()
                            ),
                            format!("OBR({obr})-4"),
                            UnknownCode,
                        );
                    }
                    Err(why) => return refuse(why, format!("OBR({obr})-4"), UnknownCode),
                },
                Err(why) => return refuse(why, format!("OBR({obr})-4"), UnknownCode),
            };
            let form = PlaceOrder {
                patient_id: 0,
                provider: o.provider.clone(),
                priority: order_priority(&o.priority).to_owned(),
                tests: vec![code],
                clinical_note: o.note.clone(),
                placer_number: Some(o.placer_number.clone()),
            };
            let mut errors = Vec::new();
            match self.prepare_order(&form, &mut errors) {
                Some(p) if errors.is_empty() => orders.push(p),
                _ => {
                    let Some(e) = errors.first() else {
                        return refuse(
                            "the order cannot be placed",
                            format!("OBR({obr})"),
                            Invalid,
                        );
                    };
                    let (location, missing) = match e.field.as_str() {
                        "provider" => (format!("ORC({orc})-12"), o.provider.trim().is_empty()),
                        "placer_number" => (format!("ORC({orc})-2"), false),
                        "clinical_note" => ("NTE-3".to_owned(), false),
                        "priority" => ("TQ1-9".to_owned(), false),
                        _ => (format!("OBR({obr})-4"), false),
                    };
                    let reason = match e.field.as_str() {
                        "provider" if missing => {
                            "the ordering provider is missing (ORC-12 or OBR-16): an order needs the name of the person who ordered it".to_owned()
                        }
                        field => format!("{field}: {}", e.message),
                    };
                    return refuse(
                        reason,
                        location,
                        if missing {
                            Missing
                        } else if e.field == "tests" {
                            UnknownCode
                        } else {
                            Invalid
                        },
                    );
                }
            }
        }
        Ok(Ok(OrderPlan { system, patient, orders }))
    }
}
