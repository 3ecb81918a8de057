//! Results from instruments: each result mapped to its specimen (by accession number) and a
//! catalog test (through the instrument's code map), converted to the catalog's unit, judged
//! like a manual result and committed with the message log entry, all of a message or none.

use std::collections::HashMap;

use cuvette_domain::autoverify::SerumIndices;
use cuvette_domain::patient::{RegisteredIdentity, SentIdentity, check_identity};
use cuvette_domain::units::{self, Conversion, Mapping};
use cuvette_domain::workflow::{ReleaseStatus, SpecimenStatus, TestStatus};
use cuvette_domain::{ReportedValue, Review, Role, TestDefinition};
use cuvette_store::{
    CodeDisposition, InstrumentRow, MessageOutcome, Protocol, Quarantine, StoreError, TestCodeRow,
    UnmappedResults,
};

use super::commit;
use super::message_log::{Inbound, Ingested, MessageRecord};
use super::refusal::{Place, Refusal};
use crate::autoverify::SERUM_INDEX_CODES;
use crate::results::{Attached, OrderItems, PreparedResult, ResultWrite, Sent};
use crate::{Actor, AppError, AppResult, Lab};

/// One result as an instrument reported it, before mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedResult {
    /// The specimen's accession number (HL7 OBR-3/OBR-2, ASTM O-3: its first component that
    /// is not empty).
    pub accession: String,
    /// ASTM O-3's components as sent (rack, position, sample id in the order the analyzer
    /// writes them), for an instrument configured to read the id from one of them; empty for
    /// HL7 and for a replay with a corrected accession number.
    pub specimen_components: Vec<String>,
    /// The instrument's test code (HL7 OBX-3.1, ASTM R-3 component 4 up to its first `/`).
    pub instrument_code: String,
    /// The parts of an ASTM test code after its code (`798/1/not`: dilution `1`, qualifier
    /// `not`), kept as sent.
    pub test_attributes: Vec<String>,
    /// The value as text, comparator included ("<0.5", "4.10", "Negative").
    pub value: String,
    /// Units as sent.
    pub unit: String,
    /// For encapsulated data (HL7 OBX-2 `ED`: a PDF report, a histogram image), the file as
    /// sent, still encoded; `None` for a value that is text.
    pub encapsulated: Option<Encapsulated>,
    /// Reference range as sent.
    pub reference_range: String,
    /// The instrument's abnormal/error flags (HL7 OBX-8, ASTM R-7), normal flags removed.
    pub flags: Vec<String>,
    /// Result status as sent (HL7 OBX-11, ASTM R-9).
    pub status: String,
    /// Where in the message it came from (`OBX 3`, `R 2`).
    pub location: Place,
    /// Who the message says the specimen came from (HL7 PID, ASTM P), when it says so.
    pub patient: Option<SentIdentity>,
}

/// A file an instrument sent as a result's value (HL7 v2.5.1 §2A.24 ED in OBX-5:
/// `source^type of data^data subtype^encoding^data`), as sent: decoded only when the result
/// is taken, against the lab's size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encapsulated {
    /// What the instrument calls it (OBX-3's text, else its code): the name staff read.
    pub name: String,
    /// OBX-5.2, type of data (`application`, `AP`, `IM`).
    pub type_of_data: String,
    /// OBX-5.3, data subtype (`pdf`, `BMP`).
    pub subtype: String,
    /// OBX-5.4, encoding (`Base64`, `Hex`, `A`).
    pub encoding: String,
    /// OBX-5.5 with its escape sequences decoded (line breaks an analyzer wrote as
    /// `\X0D0A\` are CR LF here).
    pub data: Vec<u8>,
}

impl Encapsulated {
    /// The media type its type and subtype name (`application/pdf`).
    pub fn media_type(&self) -> String {
        cuvette_hl7::media_type(&self.type_of_data, &self.subtype)
    }
}

/// A result not stored because its status says it has no value (pending, cannot be obtained).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Where in the message.
    pub at: Place,
    /// The specimen id as sent.
    pub accession: String,
    /// The instrument's test code.
    pub code: String,
    /// The status as sent (HL7 OBX-11, ASTM R-9).
    pub status: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} status {}", self.accession, self.code, self.status)
    }
}

/// A result message checked against the record, ready to evaluate.
pub(crate) struct IngestPlan {
    instrument: InstrumentRow,
    prepared: Vec<PreparedResult>,
    orders: OrderItems,
    skipped: Vec<Skipped>,
    /// What the sender said about each prepared result, in the same order.
    reported: Vec<SentStatus>,
    /// Serum indices the message carried, by specimen id.
    indices: HashMap<i64, SerumIndices>,
    /// Results kept in the quarantine while the others are stored (an instrument set to store
    /// the mappable results).
    held: Vec<Refusal>,
    /// The prepared results (by index) on a specimen an instrument flag was raised for.
    flagged: Vec<usize>,
}

/// Work after a message's commit.
#[derive(Default)]
struct AfterCommit {
    instrument_id: Option<i64>,
    tests: Vec<String>,
}

/// The longest time a result message may take to process before it is logged as slow.
pub const INGEST_SLOW_US: i64 = 1_000_000;

/// What the sender says about one result: HL7 OBX-11 (table 0085) or ASTM R-9 (LIS02-A2
/// §9.4.9). The two tables share letters but not all meanings: HL7 `W` is a result sent for
/// the wrong patient, ASTM `W` a result whose validity is questionable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SentStatus {
    /// `F`, none, or a status that still carries a result (ASTM `R` sent before, `V`
    /// verified by the operator): stored for verification.
    Final,
    /// `P` (ASTM also `S`, partial): stored, and released only as preliminary.
    Preliminary,
    /// `C`: replaces the result reported before, also one already released.
    Corrected,
    /// HL7 `D` (delete) or `W` (sent for the wrong patient): the result reported before is
    /// withdrawn — never deleted: a version saying so waits for a technologist.
    Withdrawn(Withdrawal),
    /// ASTM `W`: the instrument doubts the result; stored for a technologist's review.
    Questionable,
    /// No value to store: `I` pending, `X` cannot be obtained, `N`, `O`.
    NoValue,
}

impl SentStatus {
    /// Reads OBX-11 (`protocol` `hl7`) or R-9 (`astm`).
    pub(crate) fn read(protocol: Protocol, status: &str) -> SentStatus {
        match (protocol, status) {
            (_, "P") | (Protocol::Astm, "S") => SentStatus::Preliminary,
            (_, "C") => SentStatus::Corrected,
            (Protocol::Hl7, "D") => SentStatus::Withdrawn(Withdrawal::Deleted),
            (Protocol::Hl7, "W") => SentStatus::Withdrawn(Withdrawal::WrongPatient),
            (Protocol::Astm, "W") => SentStatus::Questionable,
            _ if NO_VALUE_STATUSES.contains(&status) => SentStatus::NoValue,
            _ => SentStatus::Final,
        }
    }

    /// The field the status came in, for the words staff read.
    fn field(protocol: Protocol) -> &'static str {
        match protocol {
            Protocol::Astm => "R-9",
            Protocol::Hl7 => "OBX-11",
        }
    }
}

/// Why an EHR withdrew a result it reported before (HL7 table 0085).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Withdrawal {
    /// `D`: deleted.
    Deleted,
    /// `W`: sent for the wrong patient.
    WrongPatient,
}

impl Withdrawal {
    /// The reason in the words staff read.
    fn reason(self) -> &'static str {
        match self {
            Withdrawal::Deleted => "delete",
            Withdrawal::WrongPatient => "sent for the wrong patient",
        }
    }
}

/// OBX-11 / R-9 statuses that carry no value to store (HL7 table 0085: I pending, X cannot be
/// obtained, N not asked, O order detail, D delete, W wrong patient).
pub(crate) const NO_VALUE_STATUSES: [&str; 6] = ["I", "X", "N", "O", "D", "W"];

pub(crate) fn instrument_actor(instrument: &InstrumentRow) -> Actor {
    // Instruments enter results like a technician would; a person verifies them.
    Actor {
        name: format!("instrument:{}", instrument.name),
        display_name: instrument.name.clone(),
        role: Role::Technician,
    }
}

/// Whether `peer` (the remote `address:port`, or an address) is one the instrument's messages
/// are taken from. A peer that is no network address (a file, the demo) is not, for an
/// instrument the lab restricted.
fn sent_from_allowed_address(instrument: &InstrumentRow, peer: &str) -> bool {
    if !instrument.allowed_peers.is_restricted() {
        return true;
    }
    let address = peer
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| peer.parse::<std::net::IpAddr>());
    address.is_ok_and(|a| instrument.allowed_peers.admits(a))
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
        // An instrument the lab restricted to its addresses: a message from any other is
        // kept in the quarantine, never posted (a replay is staff's decision, not the line's).
        let not_allowed = match (&msg.malformed, &sender) {
            (None, Some((instrument, _)))
                if !msg.replayed && !sent_from_allowed_address(instrument, msg.peer) =>
            {
                Some(Refusal::AddressNotAllowed {
                    name: instrument.name.clone(),
                    peer: msg.peer.to_owned(),
                })
            }
            _ => None,
        };
        let control = match (&msg.malformed, &sender, &not_allowed) {
            (None, Some(sender), None) => self.plan_control_runs(msg, sender).await?,
            _ => None,
        };
        let control_refused = match control {
            Some(Ok(runs)) => return self.ingest_control_runs(msg, runs, ack, started).await,
            Some(Err(refusal)) => Some(refusal),
            None => not_allowed,
        };
        let plan = match (&msg.malformed, control_refused) {
            (Some(refusal), _) => Err(vec![refusal.clone()]),
            (None, Some(refusal)) => Err(vec![refusal]),
            (None, None) => match self.plan_ingest(msg, sender).await? {
                Ok(plan) => {
                    let mut writes = self.result_writes(&plan.prepared, None, &plan.orders).await?;
                    let measured = plan.prepared.len();
                    for (w, sent) in writes[..measured].iter_mut().zip(&plan.reported) {
                        w.instrument_id = Some(plan.instrument.id);
                        mark_sent_status(w, *sent, &plan.instrument.name, msg.protocol);
                    }
                    self.decide_autoverification(
                        plan.instrument.id,
                        &mut writes[..measured],
                        &plan.indices,
                    )
                    .await?;
                    for &i in &plan.flagged {
                        // A flag the instrument raised on the specimen (a suspected blast
                        // population) is for a person to judge, whatever the rule set says.
                        let w = &mut writes[i];
                        if w.auto_release {
                            w.auto_release = false;
                            w.evaluation.reasons.push(format!(
                                "not released by autoverification: {} flagged the specimen",
                                plan.instrument.name
                            ));
                        }
                    }
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
                        held: plan.held,
                    },
                    Some(instrument_actor(&plan.instrument)),
                    writes,
                    accession,
                    skipped_count,
                    plan.indices.into_iter().collect(),
                )
            }
            Err(refusals) => {
                (Ingested::quarantined(refusals), None, Vec::new(), None, 0, Vec::new())
            }
        };
        let ack_bytes = ack(&outcome);
        let mut held_records = Vec::new();
        let (outcome_code, detail, quarantine) = match &outcome {
            Ingested::Accepted { results, skipped, held, .. } => {
                let mut detail = format!("{results} results stored");
                if !skipped.is_empty() {
                    detail.push_str(&format!(
                        "; {skipped_count} without a value: {}",
                        skipped.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                    ));
                }
                if held.is_empty() {
                    (MessageOutcome::Accepted, detail, None)
                } else {
                    held_records = held
                        .iter()
                        .filter_map(Refusal::place)
                        .map(super::refusal::Place::sequence)
                        .collect();
                    detail.push_str(&format!(
                        "; {} kept in the quarantine: {}",
                        held.len(),
                        held.iter().map(Refusal::detail).collect::<Vec<_>>().join("; ")
                    ));
                    (MessageOutcome::Partial, detail, Some(Quarantine::Open))
                }
            }
            Ingested::Quarantined { .. } => {
                let all = outcome.refusals().into_iter().map(Refusal::detail);
                (
                    MessageOutcome::Quarantined,
                    all.collect::<Vec<_>>().join("; "),
                    Some(Quarantine::Open),
                )
            }
            Ingested::Duplicate { .. } | Ingested::Ordered { .. } => {
                unreachable!("duplicates return early; results place no orders")
            }
        };
        let first_accession = accession
            .or_else(|| msg.results.first().map(|r| r.accession.clone()))
            .filter(|a| !a.is_empty());
        let mut record = MessageRecord::inbound(
            msg,
            outcome_code,
            detail,
            ack_bytes.clone(),
            first_accession,
            writes.len(),
            quarantine,
            started,
        );
        record.held = held_records;
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

    pub(super) fn clock_micros(&self) -> cuvette_domain::time::Timestamp {
        self.now_at()
    }

    /// Maps every result to its specimen and test; the first that cannot be mapped names why.
    async fn plan_ingest(
        &self,
        msg: &Inbound<'_>,
        sender: Option<(InstrumentRow, Vec<TestCodeRow>)>,
    ) -> AppResult<Result<IngestPlan, Vec<Refusal>>> {
        let Some((instrument, codes)) = sender else {
            return Ok(Err(vec![Refusal::UnknownInstrument { sender: msg.sender.to_owned() }]));
        };
        if !instrument.active {
            return Ok(Err(vec![Refusal::InstrumentDisabled { name: instrument.name.clone() }]));
        }
        if msg.results.is_empty() {
            return Ok(Err(vec![Refusal::NoResults]));
        }
        let catalog = self.catalog();
        let mut prepared: Vec<PreparedResult> = Vec::new();
        let mut skipped = Vec::new();
        let mut indices: HashMap<i64, SerumIndices> = HashMap::new();
        let mut specimens: std::collections::HashMap<
            String,
            (Option<cuvette_store::SpecimenRow>, Vec<cuvette_store::WorkItem>),
        > = std::collections::HashMap::new();
        // Every result is checked: the answer names each one that cannot be taken.
        let mut refused: Vec<Refusal> = Vec::new();
        macro_rules! refuse {
            ($refusal:expr) => {{
                refused.push($refusal);
                continue;
            }};
        }
        let mut reported = Vec::new();
        // Instrument flags raised, by accession number, in the order they came.
        let mut flags: HashMap<String, Vec<String>> = HashMap::new();
        for r in &msg.results {
            let at = r.location.clone();
            let sent_status = SentStatus::read(msg.protocol, &r.status);
            let skip = || Skipped {
                at: r.location.clone(),
                accession: r.accession.clone(),
                code: r.instrument_code.clone(),
                status: r.status.clone(),
            };
            if sent_status == SentStatus::NoValue {
                skipped.push(skip());
                continue;
            }
            let withdrawal = match sent_status {
                SentStatus::Withdrawn(why) => Some(why),
                SentStatus::Final
                | SentStatus::Preliminary
                | SentStatus::Corrected
                | SentStatus::Questionable
                | SentStatus::NoValue => None,
            };
            let withdrawn = withdrawal.is_some();
            let map = codes.iter().find(|c| c.instrument_code == r.instrument_code).or_else(|| {
                // A map saved with the dilution part as the analyzer wrote it (`798/`).
                let full = std::iter::once(r.instrument_code.as_str())
                    .chain(r.test_attributes.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join("/");
                let slashed = format!("{full}/");
                codes.iter().find(|c| c.instrument_code == full || c.instrument_code == slashed)
            });
            let disposition = map.map(|m| m.disposition);
            if disposition == Some(CodeDisposition::Ignore) {
                // Mapped to be ignored, deliberately and audited: no result, no quarantine.
                continue;
            }
            // A serum index sent as a result: by the map, else by the names analyzers use.
            let index = match map {
                Some(map) => SERUM_INDEX_CODES.iter().position(|(c, _)| *c == map.test_code),
                None => serum_index_named(&r.instrument_code),
            };
            if map.is_none() && index.is_none() {
                refuse!(Refusal::UnmappedCode {
                    at,
                    code: r.instrument_code.clone(),
                    instrument: instrument.name.clone(),
                });
            }
            let def = map.and_then(|map| catalog.catalog.test(&map.test_code));
            // A withdrawal carries no value, so no unit to check.
            let conversion = match map {
                _ if withdrawn || disposition == Some(CodeDisposition::Flag) => None,
                None => None,
                Some(map) => match unit_of_result(&instrument, map, &r.unit, def, &at) {
                    Ok(c) => c,
                    Err(refusal) => refuse!(refusal),
                },
            };
            let sent_accession = specimen_id(&instrument, r);
            let accession = match cuvette_domain::Accession::parse(&sent_accession) {
                Ok(a) => a.to_string(),
                Err(e) => {
                    refuse!(Refusal::BadSpecimenId {
                        at,
                        sent: sent_accession,
                        error: e.to_string()
                    });
                }
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
            if disposition == Some(CodeDisposition::Flag) {
                if flag_raised(r) {
                    // The flag as mapped (`Abn_Lympho/Blasts?`, which reads as a code and a
                    // qualifier); whitespace separates stored flags, so a flag keeps one word.
                    let mapped = map.map_or(r.instrument_code.as_str(), |m| {
                        m.instrument_code.trim_end_matches('/')
                    });
                    let name = mapped.split_whitespace().collect::<Vec<_>>().join("_");
                    let raised = flags.entry(accession.clone()).or_default();
                    if !raised.contains(&name) {
                        raised.push(name);
                    }
                }
                continue;
            }
            let (found, items) = &specimens[&accession];
            let Some(specimen) = found else {
                refuse!(Refusal::NoSpecimen { at, accession });
            };
            if specimen.status == SpecimenStatus::Rejected {
                refuse!(Refusal::RejectedSpecimen { at, accession });
            }
            if specimen.status != SpecimenStatus::Received {
                refuse!(Refusal::SpecimenNotReceived { at, accession });
            }
            if let Some(index) = index {
                // A serum index describes the specimen, not an ordered test.
                let Ok(value) = r.value.trim().parse::<u32>() else {
                    refuse!(Refusal::SerumIndexNotWhole {
                        at,
                        index: SERUM_INDEX_CODES[index].1.to_owned(),
                        value: r.value.clone(),
                    });
                };
                let entry = indices.entry(specimen.id).or_default();
                match index {
                    0 => entry.hemolysis = Some(value),
                    1 => entry.icterus = Some(value),
                    _ => entry.lipemia = Some(value),
                }
                continue;
            }
            let Some(map) = map else {
                unreachable!("a code neither mapped nor a serum index was refused above")
            };
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
                        refuse!(Refusal::WrongPatient {
                            at,
                            accession,
                            differences: wrong.iter().map(ToString::to_string).collect(),
                        });
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
                refuse!(Refusal::NotOrdered { at, test: map.test_code.clone(), accession });
            };
            let status = item.test.status;
            // A released result changes only when the sender says it replaces it.
            let replaces_released = status == TestStatus::Final
                && matches!(sent_status, SentStatus::Corrected | SentStatus::Withdrawn(_));
            if !status.accepts_results() && !replaces_released {
                refuse!(Refusal::Locked { at, test: map.test_code.clone(), accession, status });
            }
            if withdrawn && item.result.is_none() {
                // Nothing was reported to withdraw.
                skipped.push(skip());
                continue;
            }
            let Some(def) = def.filter(|d| !d.is_calculated()) else {
                refuse!(Refusal::NotMeasured { at, test: map.test_code.clone() });
            };
            // A file (a PDF report, a histogram image) is stored as the result's attachment,
            // decoded whole or not at all, and never read as text.
            let attachment = match r.encapsulated.as_ref().filter(|_| !withdrawn) {
                None => None,
                Some(ed) => match cuvette_hl7::decode_ed(&ed.encoding, &ed.data) {
                    Err(error) => {
                        refuse!(Refusal::EncapsulatedUnreadable {
                            at,
                            test: map.test_code.clone(),
                            error,
                        });
                    }
                    Ok(bytes) if bytes.len() > self.config.instrument_attachment_bytes_max => {
                        refuse!(Refusal::AttachmentTooLarge {
                            at,
                            test: map.test_code.clone(),
                            media_type: ed.media_type(),
                            bytes: bytes.len(),
                            limit: self.config.instrument_attachment_bytes_max,
                        });
                    }
                    Ok(bytes) => Some(Attached::new(&ed.name, &ed.media_type(), bytes)),
                },
            };
            let sent_value = if let Some(why) = withdrawal {
                // Never a silent delete: the withdrawal is a version of its own, which a
                // technologist releases as written (or corrects), and the value withdrawn
                // stays in the result's history.
                let why = why.reason();
                format!(
                    "Unable to report: {} withdrew the result ({} {}: {why})",
                    instrument.name,
                    SentStatus::field(msg.protocol),
                    r.status
                )
            } else if let Some(file) = &attachment {
                file.result_text()
            } else {
                r.value.clone()
            };
            let value = match ReportedValue::parse_within(
                &sent_value,
                self.config.instrument_text_chars_max,
            ) {
                Ok(v) => v,
                Err(e) => {
                    refuse!(Refusal::InvalidValue {
                        at,
                        test: map.test_code.clone(),
                        error: e.to_string(),
                    });
                }
            };
            // Converted before it is judged: flags, interval and critical limits are the
            // catalog's, in the catalog's unit.
            let (value, sent) = match conversion {
                None => (value, None),
                Some(c) => match c.apply(&value, def.decimals) {
                    Some(converted) => {
                        (converted, Some(Sent { value: value.text, unit: Some(c.from.to_owned()) }))
                    }
                    None => {
                        refuse!(Refusal::NotConvertible {
                            at,
                            test: map.test_code.clone(),
                            value: value.text,
                            from: c.from.to_owned(),
                            to: c.to.to_owned(),
                        });
                    }
                },
            };
            // A coded test's text through its synonyms ("NEG" is Negative), the text as sent
            // kept; unknown text stays as sent, flagged invalid for a technologist.
            let (value, sent) = crate::synonyms::read_for_test(&catalog, def, value, sent, &r.unit);
            if prepared.iter().any(|p| p.item.test.id == item.test.id) {
                refuse!(Refusal::Twice { at, test: map.test_code.clone(), accession });
            }
            let row_version = item.test.row_version;
            let mut instrument_flags = r.flags.clone();
            if sent_status == SentStatus::Questionable {
                instrument_flags.push("W".to_owned());
            }
            prepared.push(PreparedResult {
                item,
                value,
                row_version,
                instrument_flags,
                sent,
                attachment,
            });
            reported.push(sent_status);
        }
        // An instrument set to store the mappable results keeps back only the results refused
        // for a reason of their own; a refusal about the specimen or patient holds it all.
        let partly = instrument.unmapped_results == UnmappedResults::StoreMappable
            && !prepared.is_empty()
            && refused.iter().all(Refusal::concerns_one_result);
        if !refused.is_empty() && !partly {
            return Ok(Err(refused));
        }
        let mut flagged = Vec::new();
        for (i, p) in prepared.iter_mut().enumerate() {
            if let Some(raised) = flags.get(&p.item.specimen.accession) {
                for flag in raised {
                    if !p.instrument_flags.contains(flag) {
                        p.instrument_flags.push(flag.clone());
                    }
                }
                flagged.push(i);
            }
        }
        if prepared.is_empty() {
            let skipped = skipped.iter().map(ToString::to_string).collect();
            return Ok(Err(vec![Refusal::NoValue { skipped }]));
        }
        let orders: OrderItems = specimens
            .into_values()
            .filter_map(|(found, items)| Some((found?.order_id, items)))
            .collect();
        Ok(Ok(IngestPlan {
            instrument,
            prepared,
            orders,
            skipped,
            reported,
            indices,
            held: refused,
            flagged,
        }))
    }
}

/// The accession number a result names: the component of ASTM O-3 its instrument is
/// configured to read, else the first that is not empty (decoded already).
fn specimen_id(instrument: &InstrumentRow, r: &ReceivedResult) -> String {
    match instrument.specimen_id_component {
        Some(n) if !r.specimen_components.is_empty() => usize::try_from(n - 1)
            .ok()
            .and_then(|i| r.specimen_components.get(i))
            .cloned()
            .unwrap_or_default(),
        _ => r.accession.clone(),
    }
}

/// Whether a result mapped as an instrument flag raises it: an abnormal flag on it (HL7
/// OBX-8, ASTM R-7 `A`), no value at all (an interpretive message that is the flag itself,
/// `PLT_Abn_Distribution`), or a value that is not a number (`Positive`). A number without
/// an abnormal flag is a suspicion score below the instrument's own threshold (a Sysmex
/// Q-flag `Blasts?` of 40 with no `A`): not raised.
fn flag_raised(r: &ReceivedResult) -> bool {
    let value = r.value.trim();
    !r.flags.is_empty() || value.is_empty() || value.parse::<f64>().is_err()
}

/// Which serum index (0 hemolysis, 1 icterus, 2 lipemia) a test code names, in the spellings
/// analyzers send for an index reported as a result of its own (cobas `H`, `I`, `L`; `HEM`,
/// `ICT`, `LIP`; "Hemolysis Index"), whatever the case.
pub(crate) fn serum_index_named(code: &str) -> Option<usize> {
    let code = code.trim().to_ascii_uppercase();
    let code = code.strip_suffix(" INDEX").or_else(|| code.strip_suffix("_INDEX")).unwrap_or(&code);
    match code {
        "H" | "HEM" | "HI" | "SI_H" | "HEMOLYSIS" | "HAEMOLYSIS" => Some(0),
        "I" | "ICT" | "II" | "SI_I" | "ICTERUS" | "ICTERIC" => Some(1),
        "L" | "LIP" | "LI" | "SI_L" | "LIPEMIA" | "LIPAEMIA" | "LIPEMIC" => Some(2),
        _ => None,
    }
}

/// What the sender's status means for a result about to be written: a preliminary result is
/// marked so no one releases it as final; a correction or withdrawal of a released result is
/// a correction by the instrument (the report then says corrected, once a technologist
/// releases it); none of these, and no doubted result, is released without a person.
fn mark_sent_status(w: &mut ResultWrite, sent: SentStatus, instrument: &str, protocol: Protocol) {
    let field = SentStatus::field(protocol);
    let released = w.item.test.status == TestStatus::Final;
    let reason = match sent {
        SentStatus::Final | SentStatus::NoValue | SentStatus::Questionable => return,
        SentStatus::Preliminary => {
            w.reported_as = Some(ReleaseStatus::Preliminary);
            format!(
                "{instrument} reported it as preliminary ({field} P): release it as preliminary, or wait for its final result"
            )
        }
        SentStatus::Corrected => {
            w.reported_as = Some(ReleaseStatus::Corrected);
            if released {
                w.correction_reason = Some(format!("corrected by {instrument} ({field} C)"));
            }
            format!(
                "{instrument} sent it as a correction ({field} C) of the result reported before: check it before it replaces that one"
            )
        }
        SentStatus::Withdrawn(_) => {
            w.reported_as = Some(ReleaseStatus::Corrected);
            if released {
                w.correction_reason = Some(format!("withdrawn by {instrument} ({field} D)"));
            }
            format!(
                "{instrument} withdrew the result reported before: find out why with the instrument's operator before this replaces it"
            )
        }
    };
    w.evaluation.reasons.push(reason);
    w.evaluation.review = Review::Technologist;
}

/// Whether a result's unit lets it in, and the conversion it needs: a unit in the message
/// (after normalising its spelling) must be the one its code is mapped with — an empty one
/// means the mapped unit — and a mapped unit other than the catalog's must have a conversion
/// (a mapping saved before conversions were required may not). `Err` says why not.
#[allow(clippy::result_large_err)] // Built at most once per message, on its way to the log.
pub(crate) fn unit_of_result(
    instrument: &InstrumentRow,
    map: &TestCodeRow,
    sent_unit: &str,
    def: Option<&TestDefinition>,
    at: &Place,
) -> Result<Option<Conversion>, Refusal> {
    let (sent, mapped) = (units::normalize(sent_unit), units::normalize(&map.unit));
    if !sent.is_empty() && !mapped.is_empty() && sent != mapped {
        return Err(Refusal::UnitMismatch {
            at: at.clone(),
            test: map.test_code.clone(),
            sent: sent.to_owned(),
            instrument: instrument.name.clone(),
            mapped: mapped.to_owned(),
        });
    }
    let Some(def) = def else { return Ok(None) };
    match units::mapping(def, mapped) {
        Mapping::Same => Ok(None),
        Mapping::Convert(c) => Ok(Some(c)),
        Mapping::Unconvertible if def.unit.is_empty() => Err(Refusal::UnitNotExpected {
            at: at.clone(),
            test: map.test_code.clone(),
            instrument: instrument.name.clone(),
            mapped: mapped.to_owned(),
        }),
        Mapping::Unconvertible => Err(Refusal::UnitNotConvertible {
            at: at.clone(),
            test: map.test_code.clone(),
            instrument: instrument.name.clone(),
            mapped: mapped.to_owned(),
            catalog_unit: def.unit.clone(),
        }),
    }
}

/// What a logged message decodes to, for a replay.
pub struct Decoded {
    /// The results.
    pub results: Vec<ReceivedResult>,
    /// Why it cannot be decoded, if it cannot.
    pub malformed: Option<Refusal>,
}
