//! Results out to the EHR: an ORU^R01 built when results are released and queued in the
//! outbox in the release's own transaction, and the bookkeeping of the outbox worker (the
//! server's `interfaces::outbox`), which owns the socket and the timers.
//!
//! One message per specimen and release: the specimen's released results as they stand after
//! it (HL7 v2.5.1 ch. 7, ORU^R01 with one ORC/OBR per panel or stand-alone test). A later
//! release or a correction sends the specimen again, so each message replaces the one before
//! it at the EHR; the worker therefore delivers a specimen's messages strictly in the order
//! they were queued.

use std::collections::BTreeMap;

use cuvette_domain::audit::AuditAction;
use cuvette_domain::catalog::ResultType;
use cuvette_domain::workflow::{ReleaseStatus, TestStatus};
use cuvette_domain::{Action, Catalog, Flag, ReportedValue};
use cuvette_hl7::{FieldValue, Message, MessageBuilder, SegmentBuilder};
use cuvette_store::{
    Direction, MessageOutcome, NewAuditEvent, OrderRow, OrderedTestRow, OutboxRow, PatientRow,
    Protocol, ResultRow, SpecimenRow, Tx, WorklistFilter,
};
use jiff::{SignedDuration, Timestamp};

use super::hl7::{SENDING_APPLICATION, SENDING_FACILITY};
use super::{MessageRecord, Took};
use crate::audit;
use crate::{Actor, AppResult, Lab};

/// Attempts before the worker gives up on a message (status `failed`, shown under Interfaces
/// with a Retry button): with the backoff below, about three and a half hours of trying.
pub const OUTBOX_ATTEMPTS_MAX: i64 = 50;
/// The longest wait between two attempts.
pub const OUTBOX_BACKOFF_MAX: SignedDuration = SignedDuration::from_mins(5);
/// The longest error text kept on an outbox row.
const ERROR_LEN_MAX: usize = 500;

/// The wait after the `failures`-th failed attempt: 1 s, 2 s, 4 s, … capped at
/// [`OUTBOX_BACKOFF_MAX`].
pub fn backoff(failures: i64) -> SignedDuration {
    let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    SignedDuration::from_secs(1i64 << doublings).min(OUTBOX_BACKOFF_MAX)
}

/// What the EHR answered to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckReading {
    /// `AA` (or `CA`, an enhanced-mode commit accept): delivered.
    Accepted {
        /// MSA-1.
        code: String,
    },
    /// `AE`, `AR`, `CE` or `CR`: refused, with what the EHR said.
    Refused {
        /// MSA-1.
        code: String,
        /// MSA-3 and the ERR diagnostics, as sent.
        reason: String,
    },
    /// It acknowledges another message (MSA-2): a late answer to an earlier attempt.
    ForAnother {
        /// The control id it acknowledges.
        control_id: String,
    },
    /// Not an acknowledgement that can be read.
    Unreadable {
        /// Why.
        reason: String,
    },
}

/// Reads the EHR's answer to the message whose MSH-10 is `control_id`.
pub fn read_ack(ack: &[u8], control_id: &str) -> AckReading {
    let message = match Message::parse(ack) {
        Ok(m) => m,
        Err(e) => return AckReading::Unreadable { reason: format!("not an HL7 message: {e}") },
    };
    let Some(msa) = message.segment("MSA") else {
        return AckReading::Unreadable { reason: "the answer has no MSA segment".into() };
    };
    let acknowledged = msa.field(2).text().trim().to_owned();
    if acknowledged != control_id {
        return AckReading::ForAnother { control_id: acknowledged };
    }
    let code = msa.field(1).text().trim().to_ascii_uppercase();
    match code.as_str() {
        "AA" | "CA" => AckReading::Accepted { code },
        "AE" | "AR" | "CE" | "CR" => {
            let mut said: Vec<String> = Vec::new();
            let text = msa.field(3).text().trim().to_owned();
            if !text.is_empty() {
                said.push(text);
            }
            for err in message.segments_with_id("ERR") {
                for n in [8, 7] {
                    let t = err.field(n).text().trim().to_owned();
                    if !t.is_empty() && !said.contains(&t) {
                        said.push(t);
                    }
                }
                let code = err.field(3).component(1).text().trim().to_owned();
                let at = err.field(2).text().trim().to_owned();
                if said.is_empty() && !code.is_empty() {
                    said.push(format!("error {code} at {at}"));
                }
            }
            let reason =
                if said.is_empty() { "no reason given".to_owned() } else { said.join("; ") };
            AckReading::Refused { code, reason }
        }
        other => {
            AckReading::Unreadable { reason: format!("unknown acknowledgement code {other:?}") }
        }
    }
}

/// A test of the specimen with the result version the EHR gets, if one is released.
#[derive(Debug, Clone)]
pub(crate) struct ReportedTest {
    pub test: OrderedTestRow,
    pub result: Option<ResultRow>,
}

/// What an ORU^R01 says.
pub(crate) struct OruContent<'a> {
    pub control_id: &'a str,
    pub now: cuvette_domain::time::Timestamp,
    pub patient: &'a PatientRow,
    pub order: &'a OrderRow,
    pub specimen: &'a SpecimenRow,
    /// The specimen's live tests, in order, each with its released result if any.
    pub tests: &'a [ReportedTest],
    pub catalog: &'a Catalog,
    pub lab_name: &'a str,
}

/// An HL7 time (DTM) in UTC: `20261124081500+0000`.
pub(crate) fn hl7_time(at: cuvette_domain::time::Timestamp) -> String {
    at.to_jiff().map(|t| t.strftime("%Y%m%d%H%M%S+0000").to_string()).unwrap_or_default()
}

/// A coded identifier (CWE): `LOINC^name^LN^code^name^L` when there is a LOINC, else
/// `code^name^L`.
fn identifier(loinc: &str, code: &str, name: &str) -> FieldValue {
    if loinc.trim().is_empty() {
        FieldValue::components([code, name, "L"])
    } else {
        FieldValue::components([loinc, name, "LN", code, name, "L"])
    }
}

/// OBX-2 and OBX-5 for a reported text: NM for a plain number, SN for a censored one
/// (`<^0.5`), CWE for a coded result, ST (TX when it has several lines) for text.
fn obx_value(result_type: ResultType, text: &str) -> (&'static str, FieldValue) {
    let number = ReportedValue::parse(text).ok().and_then(|v| v.number);
    match (result_type, number) {
        (ResultType::Numeric, Some(n)) => match n.comparator {
            None => ("NM", FieldValue::text(n.value.to_string())),
            Some(c) => ("SN", FieldValue::components([c.symbol().to_owned(), n.value.to_string()])),
        },
        (ResultType::Coded, _) => ("CWE", FieldValue::components([text, text, "L"])),
        _ if text.contains('\n') => {
            let lines = text
                .lines()
                .map(|l| vec![vec![l.trim_end_matches('\r').as_bytes().to_vec()]])
                .collect();
            ("TX", FieldValue::from_parts(lines))
        }
        _ => ("ST", FieldValue::text(text)),
    }
}

/// OBX-7 as HL7 writes a range: ASCII `3.5-5.1`, `>=60`, `<=200`. The report's sentence
/// that no interval applies to the patient's age is not a range: OBX-7 stays empty (the
/// result's abnormal flags and the review that released it are what the EHR gets).
fn hl7_range(interval: &str) -> String {
    if !interval.chars().any(|c| c.is_ascii_digit()) {
        return String::new();
    }
    interval.replace('–', "-").replace('≥', ">=").replace('≤', "<=")
}

/// OBX-11 for a version: `F` final, `P` preliminary, `C` a correction of a final result
/// (HL7 table 0085). Only released versions are sent; one released with the specimen in
/// this very transaction is final.
fn observation_status(release_status: Option<ReleaseStatus>) -> &'static str {
    release_status.map_or("F", ReleaseStatus::observation_status)
}

/// Builds the ORU^R01 (v2.5.1) for a specimen's released results.
pub(crate) fn build_oru(c: &OruContent<'_>) -> Result<Vec<u8>, cuvette_hl7::BuildError> {
    let now = hl7_time(c.now);
    let mut message = MessageBuilder::new().segment(
        SegmentBuilder::new("MSH")
            .field(3, SENDING_APPLICATION)
            .field(4, SENDING_FACILITY)
            .field(7, now.as_str())
            .field(9, FieldValue::components(["ORU", "R01", "ORU_R01"]))
            .field(10, c.control_id)
            .field(11, "P")
            .field(12, "2.5.1")
            .field(18, "UNICODE UTF-8"),
    );
    let birth_date = c.patient.birth_date.replace('-', "");
    message.push(
        SegmentBuilder::new("PID")
            .field(1, "1")
            .field(3, FieldValue::components([c.patient.mrn.as_str(), "", "", "", "MR"]))
            .field(
                5,
                FieldValue::components([
                    c.patient.family_name.as_str(),
                    c.patient.given_name.as_str(),
                ]),
            )
            .field(7, birth_date)
            .field(8, c.patient.sex.as_str()),
    );
    let placer = c.order.placer_number.clone().unwrap_or_default();
    let filler = FieldValue::components([c.specimen.accession.as_str(), SENDING_APPLICATION]);
    let collected = c.specimen.collected_at.map(hl7_time).unwrap_or_default();
    // One ORC/OBR per panel, and per test ordered on its own.
    let mut groups: Vec<(Option<&str>, Vec<&ReportedTest>)> = Vec::new();
    for t in c.tests {
        match t.test.panel_code.as_deref() {
            Some(panel) => match groups.iter_mut().find(|(k, _)| *k == Some(panel)) {
                Some((_, members)) => members.push(t),
                None => groups.push((Some(panel), vec![t])),
            },
            None => groups.push((None, vec![t])),
        }
    }
    let mut set_id = 0;
    for (panel, members) in &groups {
        if members.iter().all(|t| t.result.is_none()) {
            continue;
        }
        set_id += 1;
        let service = match *panel {
            // A calculation ordered on its own groups the tests it is calculated from.
            Some(code) => match (c.catalog.panel(code), c.catalog.test(code)) {
                (Some(p), _) => identifier(&p.loinc, &p.code, &p.name),
                (None, Some(d)) => identifier(&d.loinc, &d.code, &d.name),
                (None, None) => identifier("", code, code),
            },
            None => {
                let code = &members[0].test.test_code;
                match c.catalog.test(code) {
                    Some(d) => identifier(&d.loinc, &d.code, &d.name),
                    None => identifier("", code, code),
                }
            }
        };
        let statuses: Vec<&str> = members
            .iter()
            .map(|t| match &t.result {
                Some(r) => observation_status(r.release_status),
                None => "",
            })
            .collect();
        let result_status = if statuses.contains(&"C") {
            "C"
        } else if statuses.contains(&"") {
            "A"
        } else if statuses.contains(&"P") {
            "P"
        } else {
            "F"
        };
        message.push(
            SegmentBuilder::new("ORC")
                .field(1, "RE")
                .field(2, placer.as_str())
                .field(3, filler.clone()),
        );
        message.push(
            SegmentBuilder::new("OBR")
                .field(1, set_id.to_string())
                .field(2, placer.as_str())
                .field(3, filler.clone())
                .field(4, service)
                .field(7, collected.as_str())
                .field(22, now.as_str())
                .field(25, result_status),
        );
        let mut obx_id = 0;
        for t in members {
            let Some(r) = &t.result else { continue };
            obx_id += 1;
            let def = c.catalog.test(&t.test.test_code);
            let name = def.map_or(t.test.test_code.as_str(), |d| d.name.as_str());
            let loinc = def.map_or("", |d| d.loinc.as_str());
            let text = if r.report_text.trim().is_empty() { &r.value_text } else { &r.report_text };
            let (value_type, value) =
                obx_value(def.map_or(ResultType::Text, |d| d.result_type), text.trim());
            // Cuvette's flags are HL7 table 0078 codes already; INV (not a valid value) has no
            // HL7 equivalent and the value speaks for itself.
            let flags: Vec<&str> =
                r.flags.iter().filter(|f| **f != Flag::Invalid).map(|f| f.code()).collect();
            let interval = hl7_range(&r.reference_interval);
            let flags = if flags.is_empty() && !interval.is_empty() && !r.flags.is_invalid() {
                vec!["N"]
            } else {
                flags
            };
            let mut obx = SegmentBuilder::new("OBX")
                .field(1, obx_id.to_string())
                .field(2, value_type)
                .field(3, identifier(loinc, &t.test.test_code, name))
                .field(5, value)
                .field(7, interval)
                .field(
                    8,
                    FieldValue::from_parts(
                        flags.iter().map(|f| vec![vec![f.as_bytes().to_vec()]]).collect(),
                    ),
                )
                .field(11, observation_status(r.release_status))
                .field(14, collected.as_str())
                .field(19, hl7_time(r.entered_at))
                .field(23, c.lab_name);
            if !r.unit.is_empty() {
                obx.set(6, FieldValue::components([r.unit.as_str(), r.unit.as_str(), "UCUM"]));
            }
            message.push(obx);
        }
    }
    message.finish()
}

/// A control id for a message Cuvette sends: `C`, the time in hex and 24 random bits —
/// 20 characters, the v2.5.1 length of MSH-10, unique even when two messages are queued in
/// the same microsecond.
fn new_control_id(now: cuvette_domain::time::Timestamp) -> String {
    use rand::Rng;
    let random = rand::rng().next_u32() & 0x00FF_FFFF;
    format!("C{:x}{random:06x}", now.as_micros())
}

impl Lab {
    /// Queues the ORU^R01 for a specimen in the release's transaction, when an EHR is
    /// configured. `released` holds what this transaction released and has not committed:
    /// test id → (result id, release status).
    pub(crate) async fn queue_results(
        &self,
        tx: &mut Tx,
        specimen_id: i64,
        released: &BTreeMap<i64, (i64, ReleaseStatus)>,
        fresh: &[ResultRow],
    ) -> AppResult<()> {
        let Some(destination) = self.config.ehr_destination.as_deref() else { return Ok(()) };
        let now = self.now_at();
        // Writers are serialised (see `Store::begin`): what is committed now plus what this
        // transaction released is what the EHR must see.
        let mut items = self
            .store
            .work_items(&WorklistFilter {
                specimen_id: Some(specimen_id),
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        items.sort_by_key(|i| i.test.id);
        if items.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = items.iter().map(|i| i.test.id).collect();
        let mut versions = self.store.results_of_tests(&ids).await?;
        // Versions written and released in this very transaction (autoverification) are not
        // committed yet: the store cannot see them.
        versions.extend(fresh.iter().filter(|r| ids.contains(&r.ordered_test_id)).cloned());
        for i in &mut items {
            if fresh.iter().any(|r| r.ordered_test_id == i.test.id) {
                i.test.status = TestStatus::Final;
            }
        }
        let first = &items[0];
        for r in &mut versions {
            if let Some((id, status)) = released.get(&r.ordered_test_id)
                && *id == r.id
            {
                r.released_at = Some(now);
                r.release_status = Some(*status);
            }
        }
        let tests: Vec<ReportedTest> = items
            .iter()
            .filter(|i| i.test.status != TestStatus::Cancelled)
            .map(|i| ReportedTest {
                test: i.test.clone(),
                result: versions
                    .iter()
                    .filter(|r| r.ordered_test_id == i.test.id && r.released_at.is_some())
                    .max_by_key(|r| r.version)
                    .cloned(),
            })
            .collect();
        if tests.iter().all(|t| t.result.is_none()) {
            return Ok(());
        }
        let catalog = self.catalog();
        let control_id = new_control_id(now);
        let payload = build_oru(&OruContent {
            control_id: &control_id,
            now,
            patient: &first.patient,
            order: &first.order,
            specimen: &first.specimen,
            tests: &tests,
            catalog: &catalog.catalog,
            lab_name: &self.config.lab_name,
        })
        .map_err(|e| {
            crate::AppError::Refused(format!("the result message could not be built: {e}"))
        })?;
        tx.enqueue(destination, &control_id, &payload, &first.specimen.accession, now).await?;
        Ok(())
    }

    /// The outbox's backlog, for the readiness probe: how many messages wait to be sent and
    /// how long the oldest has waited. Counts and an age only, nothing about any patient.
    pub async fn outbox_backlog(&self) -> AppResult<OutboxBacklog> {
        let (pending, oldest) = self.store.outbox_backlog().await?;
        let now = self.now_at();
        let oldest_wait = oldest.map(|created| {
            std::time::Duration::from_micros(
                u64::try_from(now.since(created).as_micros()).unwrap_or(0),
            )
        });
        Ok(OutboxBacklog { pending, oldest_wait })
    }

    /// Outbox messages to send now, oldest first. A message waits while an older one for the
    /// same specimen is undelivered (pending or given up) and not ahead of it in this list:
    /// each message replaces the one before it at the EHR, so they must arrive in order, and
    /// one that gave up holds the later ones until staff retry it. The caller sends the list
    /// in order and skips the rest of a specimen's messages after one fails.
    pub async fn outbox_take_due(&self, limit: i64) -> AppResult<Vec<OutboxRow>> {
        let due = self.store.outbox_due(self.now_at(), limit).await?;
        if due.is_empty() {
            return Ok(due);
        }
        let waiting = self.store.outbox_undelivered().await?;
        let mut taken: Vec<OutboxRow> = Vec::new();
        for row in due {
            let held = waiting.iter().any(|w| {
                w.accession == row.accession && w.id < row.id && !taken.iter().any(|t| t.id == w.id)
            });
            if !held {
                taken.push(row);
            }
        }
        Ok(taken)
    }

    /// Records a delivered message: the outbox row is `sent` with the EHR's acknowledgement,
    /// and the message is logged (direction `out`) and audited as a disclosure, together.
    pub async fn outbox_delivered(
        &self,
        row: &OutboxRow,
        peer: &str,
        ack: &[u8],
        round_trip_us: i64,
    ) -> AppResult<()> {
        let now = self.now_at();
        let (message_type, results) = match Message::parse(&row.payload) {
            Ok(m) => {
                let kind = m.msh().message_type();
                (
                    format!("{}^{}", kind.code().text(), kind.trigger().text()),
                    m.segments_with_id("OBX").count() as i64,
                )
            }
            Err(_) => ("unreadable".to_owned(), 0),
        };
        let code = match read_ack(ack, &row.control_id) {
            AckReading::Accepted { code } => code,
            _ => "?".to_owned(),
        };
        let detail = format!(
            "delivered to {} ({peer}) on attempt {}; the EHR answered {code}",
            row.destination,
            row.attempts + 1
        );
        let patient_id = match self.store.specimen_by_accession(&row.accession).await? {
            Some(s) => Some(self.store.patient_of_specimen(s.id).await?.id),
            None => None,
        };
        let mut tx = self.store.begin().await?;
        let record = MessageRecord {
            direction: Direction::Out,
            protocol: Protocol::Hl7,
            channel: row.destination.clone(),
            peer: peer.into(),
            sender: SENDING_APPLICATION.into(),
            control_id: Some(row.control_id.clone()),
            message_type,
            raw: row.payload.clone(),
            outcome: MessageOutcome::Sent,
            detail,
            ack: Some(ack.to_vec()),
            accession: Some(row.accession.clone()),
            results,
            quarantine: None,
            replay_of: None,
            took: Took::Micros(round_trip_us),
            held: Vec::new(),
        };
        if self.log_message(&mut tx, &record).await?.is_none() {
            // Logged already: sent before, and the process stopped before it was marked.
            drop(tx);
            tx = self.store.begin().await?;
        }
        tx.outbox_sent(row.id, ack, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: "system",
            action: AuditAction::ResultSend,
            entity: "outbox",
            entity_id: row.id.to_string(),
            patient_id,
            before: None,
            after: audit::state(&audit::Delivered {
                accession: &row.accession,
                control_id: &row.control_id,
                destination: &row.destination,
                peer,
                ack: &code,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed attempt and when to try again: 1 s after the first failure, doubling
    /// up to [`OUTBOX_BACKOFF_MAX`]. After [`OUTBOX_ATTEMPTS_MAX`] attempts the message is
    /// given up (status `failed`) and `None` is returned.
    pub async fn outbox_attempt_failed(
        &self,
        row: &OutboxRow,
        error: &str,
    ) -> AppResult<Option<Timestamp>> {
        let failures = row.attempts + 1;
        let now = self.now();
        let next = (failures < OUTBOX_ATTEMPTS_MAX).then(|| now + backoff(failures));
        let error: String = error.chars().take(ERROR_LEN_MAX).collect();
        let mut tx = self.store.begin().await?;
        tx.outbox_failed(row.id, &error, next.map(Into::into)).await?;
        if next.is_none() {
            tx.audit(NewAuditEvent {
                at: now.into(),
                actor: "system",
                action: AuditAction::OutboxGiveUp,
                entity: "outbox",
                entity_id: row.id.to_string(),
                patient_id: None,
                before: None,
                after: audit::state(&audit::GivenUp {
                    accession: &row.accession,
                    attempts: failures,
                    error: &error,
                }),
            })
            .await?;
        }
        tx.commit().await?;
        Ok(next)
    }
}

impl Lab {
    /// Messages waiting in the outbox or failed.
    pub async fn outbox(&self, actor: &Actor) -> AppResult<Vec<OutboxRow>> {
        self.require(actor, Action::ViewResults)?;
        Ok(self.store.outbox_undelivered().await?)
    }

    /// Puts a failed outbox message back in the queue.
    pub async fn retry_outbox(&self, actor: &Actor, id: i64) -> AppResult<()> {
        self.require(actor, Action::VerifyAbnormal)?;
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.outbox_retry(id, now).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::OutboxRetry,
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
}

/// The outbox's backlog: what waits to be sent to the EHR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxBacklog {
    /// Messages waiting for their first or next attempt.
    pub pending: i64,
    /// How long the oldest of them has waited; `None` when none waits.
    pub oldest_wait: Option<std::time::Duration>,
}
