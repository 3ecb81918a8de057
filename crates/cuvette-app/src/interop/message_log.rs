//! The message log: one record per message in or out, the quarantine of inbound messages
//! that could not be taken, and their replay once the cause is fixed.

use cuvette_domain::Action;
use cuvette_domain::audit::AuditAction;
use cuvette_store::{
    Direction, MessageFilter, MessageOutcome, MessageRow, NewAuditEvent, NewMessage, Protocol,
    Quarantine, StoreError, Tx,
};

use super::ingest::{Decoded, Skipped};
use super::{ReceivedResult, Refusal, astm, hl7};
use crate::audit;
use crate::{Actor, AppError, AppResult, Lab, PlacedOrder};

/// The message log's page length when none is asked for.
pub const MESSAGE_PAGE: i64 = 200;

/// The longest page of the message log one read returns.
pub const MESSAGE_PAGE_MAX: i64 = 1000;

/// The message log's filters as typed: empty text is no filter.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogQuery<'a> {
    /// Only the quarantine's open messages.
    pub open_quarantine: bool,
    /// `in` or `out`.
    pub direction: &'a str,
    /// An outcome's code (`accepted`, `quarantined`, …).
    pub outcome: &'a str,
    /// Only this instrument's messages (by its sender and protocol).
    pub instrument: Option<i64>,
    /// A control id or accession number, or text in the log's detail.
    pub text: &'a str,
    /// Only messages before this id (the next page).
    pub before: Option<i64>,
    /// At most this many ([`MESSAGE_PAGE`] when `None`).
    pub limit: Option<i64>,
}

/// A decoded inbound message.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    /// The protocol it came in.
    pub protocol: Protocol,
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
    pub malformed: Option<Refusal>,
    /// The quarantined message this replays, if any.
    pub replay_of: Option<i64>,
    /// Staff replay it from the quarantine, rather than a line delivering it: the
    /// instrument's address restriction is for the line.
    pub replayed: bool,
}

/// What became of an inbound message.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // One per message, moved a few times: not worth a box.
pub enum Ingested {
    /// Its results were stored.
    Accepted {
        /// The message log id.
        message_id: i64,
        /// Results stored.
        results: usize,
        /// Results not stored because their status says there is no value (pending, cannot
        /// be obtained): each is a warning in the acknowledgement.
        skipped: Vec<Skipped>,
        /// Results kept in the quarantine with their reasons, the others stored (an
        /// instrument set to store the mappable results): each is an error in the
        /// acknowledgement, which is then AE.
        held: Vec<Refusal>,
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
        /// Why, in words staff can act on (the refusal's text).
        reason: String,
        /// Where in the message ("OBX 3"), when one part is at fault.
        location: String,
        /// Why, as data: what the acknowledgement says is decided from this.
        refusal: Refusal,
        /// The other problems found in the same message (other results that cannot be taken),
        /// each answered with an ERR of its own.
        also: Vec<Refusal>,
    },
}

impl Ingested {
    /// A message kept in the quarantine for `refusals`, the first problem first (its log id
    /// set on commit).
    pub(super) fn quarantined(refusals: Vec<Refusal>) -> Ingested {
        let mut refusals = refusals.into_iter();
        let refusal = refusals.next().unwrap_or(Refusal::NoResults);
        Ingested::Quarantined {
            message_id: 0,
            reason: refusal.to_string(),
            location: refusal.location(),
            refusal,
            also: refusals.collect(),
        }
    }

    /// Every reason a quarantined message was refused for, the first first, or why each
    /// result kept back from a partly stored message was; none otherwise.
    pub fn refusals(&self) -> Vec<&Refusal> {
        match self {
            Ingested::Quarantined { refusal, also, .. } => {
                std::iter::once(refusal).chain(also).collect()
            }
            Ingested::Accepted { held, .. } => held.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// The outcome with the message log id it was committed under.
    pub(super) fn with_message_id(self, id: i64) -> Ingested {
        match self {
            Ingested::Accepted { results, skipped, held, .. } => {
                Ingested::Accepted { message_id: id, results, skipped, held }
            }
            Ingested::Ordered { patient_id, registered, orders, .. } => {
                Ingested::Ordered { message_id: id, patient_id, registered, orders }
            }
            Ingested::Quarantined { reason, location, refusal, also, .. } => {
                Ingested::Quarantined { message_id: id, reason, location, refusal, also }
            }
            d @ Ingested::Duplicate { .. } => d,
        }
    }
}

/// What the message log records about one message, in or out: the one record every path
/// writes ([`Lab::log_message`]). Owned, so that it can wait for a group commit.
pub(crate) struct MessageRecord {
    pub direction: Direction,
    pub protocol: Protocol,
    pub channel: String,
    pub peer: String,
    pub sender: String,
    pub control_id: Option<String>,
    pub message_type: String,
    pub raw: Vec<u8>,
    pub outcome: MessageOutcome,
    pub detail: String,
    /// The acknowledgement sent (in) or received (out), when there is one.
    pub ack: Option<Vec<u8>>,
    pub accession: Option<String>,
    pub results: i64,
    /// `Open` for a message kept in the quarantine.
    pub quarantine: Option<Quarantine>,
    pub replay_of: Option<i64>,
    pub took: Took,
    /// The sequence numbers of the OBX segments or R records kept in the quarantine from a
    /// partly stored message.
    pub held: Vec<usize>,
}

/// An inbound transfer that ended before its message was complete, for the message log.
pub(crate) struct Aborted<'a> {
    pub protocol: Protocol,
    pub channel: &'a str,
    pub peer: &'a str,
    /// The sender, as far as the bytes that arrived say (HL7 MSH-3, ASTM H-5).
    pub sender: String,
    pub message_type: String,
    /// What arrived.
    pub raw: Vec<u8>,
    /// How the transfer ended and what happens next.
    pub detail: String,
    /// The first specimen id in what arrived.
    pub accession: Option<String>,
}

/// How long handling a message took, for the log's processing time.
pub(crate) enum Took {
    /// Since this clock reading: processing ends when the record is written.
    Since(cuvette_domain::time::Timestamp),
    /// This long (microseconds), measured by the caller (a delivery's round trip).
    Micros(i64),
}

impl MessageRecord {
    #[allow(clippy::too_many_arguments)] // One log row; the names are the columns.
    pub(super) fn inbound(
        msg: &Inbound<'_>,
        outcome: MessageOutcome,
        detail: String,
        ack: Vec<u8>,
        accession: Option<String>,
        results: usize,
        quarantine: Option<Quarantine>,
        started: cuvette_domain::time::Timestamp,
    ) -> MessageRecord {
        MessageRecord {
            protocol: msg.protocol,
            channel: msg.channel.to_owned(),
            peer: msg.peer.to_owned(),
            sender: msg.sender.to_owned(),
            control_id: msg.control_id.map(str::to_owned),
            message_type: msg.message_type.to_owned(),
            raw: msg.raw.to_vec(),
            direction: Direction::In,
            outcome,
            detail,
            ack: Some(ack),
            accession,
            results: results as i64,
            quarantine,
            replay_of: msg.replay_of,
            took: Took::Since(started),
            held: Vec::new(),
        }
    }
}

/// An instrument's host query, for the message log: the same shape from both protocols.
pub(crate) struct Query<'a> {
    pub protocol: Protocol,
    pub channel: &'a str,
    pub peer: &'a str,
    pub sender: String,
    pub message_type: &'a str,
    pub raw: &'a [u8],
    /// What was asked and what was answered.
    pub detail: String,
    /// The answer sent, when it is a message of its own (HL7 RSP^K11).
    pub answer: Option<Vec<u8>>,
    /// The specimen asked for (the first, when several).
    pub accession: Option<String>,
    pub started: cuvette_domain::time::Timestamp,
}

impl Query<'_> {
    /// The log entry: instruments repeat identical queries, so each is logged and answered
    /// and none is a duplicate (no control id is kept for the duplicate check).
    pub(super) fn into_record(self) -> MessageRecord {
        MessageRecord {
            direction: Direction::In,
            protocol: self.protocol,
            channel: self.channel.into(),
            peer: self.peer.into(),
            sender: self.sender,
            control_id: None,
            message_type: self.message_type.into(),
            raw: self.raw.to_vec(),
            outcome: MessageOutcome::Query,
            detail: self.detail,
            ack: self.answer,
            accession: self.accession,
            results: 0,
            quarantine: None,
            replay_of: None,
            took: Took::Since(self.started),
            held: Vec::new(),
        }
    }
}

impl Lab {
    /// The answer already given to this message, when it is a retransmission (same sender,
    /// same control id): nothing is processed twice.
    pub(super) async fn stored_answer(
        &self,
        msg: &Inbound<'_>,
        ack: &(dyn Fn(&Ingested) -> Vec<u8> + Sync),
    ) -> AppResult<Option<(Ingested, Vec<u8>)>> {
        let Some(control_id) = msg.control_id else { return Ok(None) };
        let Some(original) =
            self.store.message_by_control(Direction::In, msg.sender, control_id).await?
        else {
            return Ok(None);
        };
        let outcome = Ingested::Duplicate { message_id: original.id, ack: original.ack.clone() };
        let bytes = original.ack.clone().unwrap_or_else(|| ack(&outcome));
        Ok(Some((outcome, bytes)))
    }

    /// Logs a message inside `tx`; `None` when the same sender's control id was logged
    /// meanwhile in the same direction (the transaction is then unusable and must be dropped).
    pub(crate) async fn log_message(
        &self,
        tx: &mut Tx,
        e: &MessageRecord,
    ) -> AppResult<Option<i64>> {
        let inserted = tx
            .insert_message(
                &NewMessage {
                    direction: e.direction,
                    protocol: e.protocol,
                    channel: &e.channel,
                    peer: &e.peer,
                    sender: &e.sender,
                    control_id: e.control_id.as_deref(),
                    message_type: &e.message_type,
                    raw: &e.raw,
                    outcome: e.outcome,
                    detail: &e.detail,
                    ack: e.ack.as_deref(),
                    accession: e.accession.as_deref(),
                    results: e.results,
                    quarantine: e.quarantine,
                    replay_of: e.replay_of,
                    processed_us: match e.took {
                        Took::Since(started) => {
                            i64::try_from(self.clock_micros().since(started).as_micros())
                                .unwrap_or(i64::MAX)
                        }
                        Took::Micros(us) => us,
                    },
                    held: &e.held,
                },
                self.now_at(),
            )
            .await;
        match inserted {
            Ok(id) => Ok(Some(id)),
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Logs an inbound transfer cut off before its message was complete (outcome `aborted`,
    /// `detail` saying how): nothing in it is posted. It is not quarantined, because the
    /// sender never had the end of it acknowledged and sends it again — a replay would post
    /// it beside the resent one. It claims no control id, so that the resend is taken.
    pub(crate) async fn log_aborted(&self, aborted: Aborted<'_>) -> AppResult<i64> {
        let mut tx = self.store.begin().await?;
        let record = MessageRecord {
            direction: Direction::In,
            protocol: aborted.protocol,
            channel: aborted.channel.into(),
            peer: aborted.peer.into(),
            sender: aborted.sender,
            control_id: None,
            message_type: aborted.message_type,
            raw: aborted.raw,
            outcome: MessageOutcome::Aborted,
            detail: aborted.detail,
            ack: None,
            accession: aborted.accession.filter(|a| !a.is_empty()),
            results: 0,
            quarantine: None,
            replay_of: None,
            took: Took::Micros(0),
            held: Vec::new(),
        };
        // Without a control id no other row can conflict with this one.
        let Some(id) = self.log_message(&mut tx, &record).await? else {
            return Err(AppError::Conflict("an aborted transfer was logged twice at once".into()));
        };
        tx.commit().await?;
        Ok(id)
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

    /// The message log (or the open quarantine) as a screen or the API asks for it, newest
    /// first: the filters as typed are checked here, so both refuse them in the same words
    /// instead of showing every message under a filter the reader thinks applies.
    pub async fn search_message_log(
        &self,
        actor: &Actor,
        q: &LogQuery<'_>,
    ) -> AppResult<Vec<MessageRow>> {
        self.require(actor, Action::ViewResults)?;
        let direction = match q.direction.trim() {
            "" => None,
            code => Some(Direction::parse(code).ok_or_else(|| {
                AppError::invalid(
                    "direction",
                    format!("{code:?} is not a direction: choose in or out"),
                )
            })?),
        };
        let outcome = match q.outcome.trim() {
            "" => None,
            code => Some(MessageOutcome::parse(code).ok_or_else(|| {
                let known: Vec<&str> = MessageOutcome::ALL.iter().map(|o| o.code()).collect();
                AppError::invalid(
                    "outcome",
                    format!("{code:?} is not an outcome: choose one of {}", known.join(", ")),
                )
            })?),
        };
        let limit = q.limit.unwrap_or(MESSAGE_PAGE);
        if !(1..=MESSAGE_PAGE_MAX).contains(&limit) {
            return Err(AppError::invalid(
                "limit",
                format!("ask for 1 to {MESSAGE_PAGE_MAX} messages a page"),
            ));
        }
        let sender = match q.instrument {
            None => None,
            Some(id) => match self.store.instrument(id).await {
                Ok(i) => Some((i.protocol, i.sender)),
                Err(StoreError::NotFound(_)) => {
                    return Err(AppError::invalid(
                        "instrument",
                        format!("there is no instrument {id}: use an id from the instruments list"),
                    ));
                }
                Err(e) => return Err(e.into()),
            },
        };
        let filter = MessageFilter {
            open_quarantine: q.open_quarantine,
            direction,
            outcome,
            text: Some(q.text.trim().to_owned()).filter(|t| !t.is_empty()),
            sender,
            before_id: q.before,
            limit,
        };
        Ok(self.store.messages(&filter).await?)
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
        if message.quarantine != Some(Quarantine::Open) {
            return Err(AppError::Refused("this message is not waiting in the quarantine".into()));
        }
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.set_quarantine(id, Quarantine::Dismissed).await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::QuarantineDismiss,
            entity: "interface_message",
            entity_id: id.to_string(),
            patient_id: None,
            before: audit::state(&audit::QuarantineOpen {
                quarantine: "open",
                detail: &message.detail,
            }),
            after: audit::state(&audit::QuarantineDismissed {
                quarantine: "dismissed",
                reason: reason.trim(),
            }),
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
        if original.quarantine != Some(Quarantine::Open) {
            return Err(AppError::Refused("this message is not waiting in the quarantine".into()));
        }
        if let Some(a) = accession {
            cuvette_domain::Accession::parse(a)
                .map_err(|e| AppError::invalid("accession", e.to_string()))?;
        }
        let replay_control =
            original.control_id.as_ref().map(|c| format!("{c}#replay-{}", self.now_at()));
        let channel = format!("replay by {}", actor.name);
        let (outcome, _) = if original.protocol == Protocol::Hl7
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
                protocol: original.protocol,
                channel: &channel,
                peer: &original.peer,
                sender: &original.sender,
                control_id: replay_control.as_deref(),
                message_type: &original.message_type,
                raw: &original.raw,
                results: Vec::new(),
                malformed: None,
                replay_of: None,
                replayed: true,
            };
            let ack = |_: &Ingested| Vec::new();
            self.ingest_orders(&inbound, &decoded, &ack).await?
        } else {
            let decoded = match original.protocol {
                // Read in the instrument's character set, as it was the first time.
                Protocol::Astm => {
                    astm::decode_stored(self, &original.raw, &original.sender).await?
                }
                Protocol::Hl7 => decode_for_replay(&original),
            };
            let mut results = decoded.results;
            if original.outcome == MessageOutcome::Partial {
                // Its other results were stored the first time: only those kept back go again.
                results.retain(|r| original.held.contains(&r.location.sequence()));
            }
            if let Some(a) = accession {
                for r in &mut results {
                    r.accession = a.to_owned();
                    r.specimen_components.clear();
                }
            }
            let inbound = Inbound {
                protocol: original.protocol,
                channel: &channel,
                peer: &original.peer,
                sender: &original.sender,
                control_id: replay_control.as_deref(),
                message_type: &original.message_type,
                raw: &original.raw,
                results,
                malformed: decoded.malformed,
                replay_of: None,
                replayed: true,
            };
            let ack = |_: &Ingested| Vec::new();
            self.ingest(&inbound, &ack).await?
        };
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let new_id = match &outcome {
            Ingested::Accepted { message_id, .. } | Ingested::Ordered { message_id, .. } => {
                tx.set_quarantine(id, Quarantine::Replayed).await?;
                *message_id
            }
            Ingested::Quarantined { message_id, .. } | Ingested::Duplicate { message_id, .. } => {
                *message_id
            }
        };
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::QuarantineReplay,
            entity: "interface_message",
            entity_id: id.to_string(),
            patient_id: None,
            before: audit::state(&audit::MessageDetail { detail: &original.detail }),
            after: audit::state(&audit::Replayed {
                replay: new_id,
                accession,
                outcome: format!("{outcome:?}"),
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(new_id)
    }
}

fn decode_for_replay(m: &MessageRow) -> Decoded {
    match m.protocol {
        Protocol::Hl7 => hl7::decode_results(&m.raw),
        Protocol::Astm => astm::decode_results(&m.raw),
    }
}

/// What an HL7 acknowledgement said about a message: MSA-1 and one entry per ERR segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// MSA-1: `AA` taken, `AE` an error the sender can put right, `AR` not processed (or the
    /// enhanced-mode `CA`, `CE`, `CR`).
    pub code: String,
    /// Each problem named, in the order the acknowledgement gives them.
    pub errors: Vec<AckError>,
}

/// One ERR segment of an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    /// ERR-2, where in the message (`OBX^1^6`); empty when the whole message is at fault.
    pub location: String,
    /// ERR-3.1, the HL7 table 0357 code (`103`).
    pub code: String,
    /// ERR-3.2, the code's name (`Table value not found`).
    pub code_name: String,
    /// ERR-4: `E` error, `W` warning, `I` information.
    pub severity: String,
    /// ERR-8, the reason in the lab's words.
    pub message: String,
}

/// What the HL7 acknowledgement Cuvette sent (inbound) or received (outbound) for `message`
/// said; `None` for ASTM, whose link layer acknowledges frames and keeps no application
/// answer, or when there is none.
pub fn acknowledged(message: &MessageRow) -> Option<Acknowledged> {
    if message.protocol != Protocol::Hl7 {
        return None;
    }
    let ack = cuvette_hl7::Message::parse(message.ack.as_deref()?).ok()?;
    let code = ack.segment("MSA")?.field(1).text().into_owned();
    let errors = ack
        .segments_with_id("ERR")
        .map(|err| {
            let code = err.field(3);
            AckError {
                location: String::from_utf8_lossy(err.field(2).raw()).into_owned(),
                code: code.component(1).text().into_owned(),
                code_name: code.component(2).text().into_owned(),
                severity: err.field(4).text().into_owned(),
                message: err.field(8).text().into_owned(),
            }
        })
        .collect();
    Some(Acknowledged { code, errors })
}
