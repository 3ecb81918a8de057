//! Instruments, their test codes, the message log with its quarantine, and the outbox.

use cuvette_domain::peers::AllowedPeers;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{
    Store, StoreError, StoreResult, Timestamp, Tx, code, opt_code_at, opt_i64, opt_time, time,
};

/// Declares a code stored as text: `code` is what is written, `parse` reads it back and
/// knows no other spelling (a stored code it does not know is corrupt data).
macro_rules! stored_code {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $code)] $variant,)+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The code stored in the database.
            pub fn code(self) -> &'static str {
                match self {
                    $($name::$variant => $code,)+
                }
            }

            /// The value a stored code names; `None` for a code Cuvette does not write.
            pub fn parse(code: &str) -> Option<$name> {
                match code {
                    $($code => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

stored_code! {
    /// The interface protocol an instrument or system speaks.
    Protocol {
        /// HL7 v2 over MLLP.
        Hl7 = "hl7",
        /// ASTM E1381/E1394 (CLSI LIS01/LIS02).
        Astm = "astm",
    }
}

impl Protocol {
    /// The protocol's name as the lab writes it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Hl7 => "HL7",
            Protocol::Astm => "ASTM",
        }
    }
}

stored_code! {
    /// Which way a logged message went.
    Direction {
        /// Received from an instrument or system.
        In = "in",
        /// Sent to one.
        Out = "out",
    }
}

stored_code! {
    /// What became of a logged message.
    MessageOutcome {
        /// Inbound, taken: its results or orders were stored (or it was a control run).
        Accepted = "accepted",
        /// Inbound, kept in the quarantine with the reason.
        Quarantined = "quarantined",
        /// Inbound, from an instrument set to store the mappable results: those were stored,
        /// the others are kept in the quarantine with their reasons.
        Partial = "partial",
        /// Inbound host query (ASTM Q record), answered.
        Query = "query",
        /// Inbound, cut off before its message was complete (an ASTM transfer without its
        /// terminator record, an MLLP frame without its end): nothing posted; the sender
        /// resends it.
        Aborted = "aborted",
        /// Outbound, delivered.
        Sent = "sent",
        /// Outbound, not delivered.
        Failed = "failed",
    }
}

stored_code! {
    /// Where a quarantined message stands.
    Quarantine {
        /// Waiting for staff to fix the cause and replay it, or dismiss it.
        Open = "open",
        /// Replayed and taken.
        Replayed = "replayed",
        /// Dismissed with a reason, never to be replayed.
        Dismissed = "dismissed",
    }
}

stored_code! {
    /// What becomes of an instrument's message when some of its results cannot be taken.
    UnmappedResults {
        /// The whole message is kept in the quarantine (the default).
        Hold = "hold",
        /// The results that can be taken are stored; the others are kept in the quarantine
        /// with their reasons.
        StoreMappable = "store_mappable",
    }
}

stored_code! {
    /// What an instrument's test code is mapped as.
    CodeDisposition {
        /// A result of the catalog test.
        Result = "result",
        /// Skipped without a quarantine (a research parameter, an image reference).
        Ignore = "ignore",
        /// An instrument flag (a hematology analyzer's `Blasts?`): stored as a flag on the
        /// specimen's results in the same message, which then go to a technologist.
        Flag = "flag",
    }
}

stored_code! {
    /// Where a message in the outbox stands.
    OutboxStatus {
        /// Waiting for its next attempt.
        Pending = "pending",
        /// Acknowledged by the destination.
        Sent = "sent",
        /// Given up after the last attempt; staff may retry it.
        Failed = "failed",
    }
}

/// A connected instrument or system.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstrumentRow {
    /// Internal id.
    pub id: i64,
    /// The lab's name for it ("Chemistry analyzer 1").
    pub name: String,
    /// The protocol it speaks.
    pub protocol: Protocol,
    /// What it calls itself (HL7 MSH-3, ASTM H-5).
    pub sender: String,
    /// Whether its messages are accepted.
    pub active: bool,
    /// The sample ids of its control runs (`*` any run of characters, `?` one); empty when
    /// it sends no QC.
    pub qc_pattern: String,
    /// The component of ASTM O-3 that holds the accession number (from 1); `None` for the
    /// first that is not empty.
    pub specimen_id_component: Option<i64>,
    /// The character set an ASTM instrument writes (`utf-8`, `windows-1252`, `ascii`);
    /// `None` for UTF-8.
    pub charset: Option<String>,
    /// What becomes of a message some of whose results cannot be taken.
    pub unmapped_results: UnmappedResults,
    /// The addresses its messages are taken from; empty for any.
    #[serde(serialize_with = "peers_as_text")]
    pub allowed_peers: AllowedPeers,
}

fn peers_as_text<S: serde::Serializer>(peers: &AllowedPeers, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&peers.code())
}

/// One instrument test code mapped to a catalog test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestCodeRow {
    /// The instrument.
    pub instrument_id: i64,
    /// The code the instrument sends.
    pub instrument_code: String,
    /// The catalog test.
    pub test_code: String,
    /// The unit the instrument reports.
    pub unit: String,
    /// What the code is mapped as: a result, a flag, or nothing to store.
    pub disposition: CodeDisposition,
}

/// A message to log.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// Received or sent.
    pub direction: Direction,
    /// The protocol.
    pub protocol: Protocol,
    /// The listener or destination ("mllp:2575").
    pub channel: &'a str,
    /// The remote address.
    pub peer: &'a str,
    /// Who sent it (HL7 MSH-3^MSH-4, ASTM H-5).
    pub sender: &'a str,
    /// HL7 MSH-10, or a content hash for ASTM.
    pub control_id: Option<&'a str>,
    /// `ORU^R01`, `ASTM`, …
    pub message_type: &'a str,
    /// The bytes as received or sent.
    pub raw: &'a [u8],
    /// What became of it.
    pub outcome: MessageOutcome,
    /// Why, in words.
    pub detail: &'a str,
    /// The acknowledgement sent back.
    pub ack: Option<&'a [u8]>,
    /// The specimen it concerned, when known.
    pub accession: Option<&'a str>,
    /// Results stored from it.
    pub results: i64,
    /// `Open` when quarantined.
    pub quarantine: Option<Quarantine>,
    /// The quarantined message this one replays.
    pub replay_of: Option<i64>,
    /// Processing time, microseconds.
    pub processed_us: i64,
    /// For a message partly stored: the sequence numbers of the OBX segments or R records
    /// kept in the quarantine.
    pub held: &'a [usize],
}

/// A logged message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MessageRow {
    /// Internal id.
    pub id: i64,
    /// Received or sent.
    pub direction: Direction,
    /// The protocol.
    pub protocol: Protocol,
    /// Listener or destination.
    pub channel: String,
    /// Remote address.
    pub peer: String,
    /// Sender.
    pub sender: String,
    /// Control id.
    pub control_id: Option<String>,
    /// Message type.
    pub message_type: String,
    /// Raw bytes.
    pub raw: Vec<u8>,
    /// When.
    pub received_at: Timestamp,
    /// Outcome.
    pub outcome: MessageOutcome,
    /// Why.
    pub detail: String,
    /// ACK sent.
    pub ack: Option<Vec<u8>>,
    /// Specimen.
    pub accession: Option<String>,
    /// Results stored.
    pub results: i64,
    /// Where it stands in the quarantine; none for a message never quarantined.
    pub quarantine: Option<Quarantine>,
    /// Replay of.
    pub replay_of: Option<i64>,
    /// Processing time, microseconds.
    pub processed_us: i64,
    /// For a message partly stored: the sequence numbers of the OBX segments or R records
    /// kept in the quarantine (a replay takes only those); empty otherwise.
    pub held: Vec<usize>,
}

/// Filters for the message log.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Only quarantined messages still open.
    pub open_quarantine: bool,
    /// Only this direction.
    pub direction: Option<Direction>,
    /// Only this outcome.
    pub outcome: Option<MessageOutcome>,
    /// Raw text or control id or accession containing this.
    pub text: Option<String>,
    /// Only messages from or to this sender (HL7 MSH-3, ASTM H-5) in this protocol: one
    /// instrument's traffic.
    pub sender: Option<(Protocol, String)>,
    /// Only messages before this id (paging backwards).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboxRow {
    /// Internal id.
    pub id: i64,
    /// Destination name.
    pub destination: String,
    /// Control id of the message.
    pub control_id: String,
    /// Bytes to send.
    pub payload: Vec<u8>,
    /// Specimen.
    pub accession: String,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Where it stands.
    pub status: OutboxStatus,
    /// Attempts so far.
    pub attempts: i64,
    /// Next attempt.
    pub next_attempt_at: Timestamp,
    /// Last error.
    pub last_error: Option<String>,
    /// When the ACK came.
    pub sent_at: Option<Timestamp>,
}

const MESSAGE_COLUMNS: &str = "id, direction, protocol, channel, peer, sender, control_id, message_type, raw, received_at, \
    outcome, detail, ack, accession, results, quarantine, replay_of, processed_us, held";

fn message_from_row(r: &AnyRow) -> StoreResult<MessageRow> {
    Ok(MessageRow {
        id: r.try_get("id")?,
        direction: code(r, "interface_message", "id", "direction", Direction::parse)?,
        protocol: code(r, "interface_message", "id", "protocol", Protocol::parse)?,
        channel: r.try_get("channel")?,
        peer: r.try_get("peer")?,
        sender: r.try_get("sender")?,
        control_id: r.try_get("control_id")?,
        message_type: r.try_get("message_type")?,
        raw: r.try_get("raw")?,
        received_at: time(r, "received_at")?,
        outcome: code(r, "interface_message", "id", "outcome", MessageOutcome::parse)?,
        detail: r.try_get("detail")?,
        ack: r.try_get("ack")?,
        accession: r.try_get("accession")?,
        results: r.try_get("results")?,
        quarantine: opt_code_at(
            r,
            "interface_message",
            "id",
            "quarantine",
            "quarantine",
            Quarantine::parse,
        )?,
        replay_of: opt_i64(r, "replay_of")?,
        processed_us: r.try_get("processed_us")?,
        held: held_from(r)?,
    })
}

/// The `held` column: sequence numbers, space separated.
fn held_from(r: &AnyRow) -> StoreResult<Vec<usize>> {
    let Some(text) = r.try_get::<Option<String>, _>("held")? else { return Ok(Vec::new()) };
    let parse = |n: &str| n.parse::<usize>().ok();
    text.split_whitespace()
        .map(|n| {
            parse(n).ok_or_else(|| StoreError::Corrupt {
                table: "interface_message",
                row: r.try_get("id").unwrap_or_default(),
                column: "held",
                value: text.clone(),
            })
        })
        .collect()
}

fn instrument_from_row(r: &AnyRow) -> StoreResult<InstrumentRow> {
    Ok(InstrumentRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        protocol: code(r, "instrument", "id", "protocol", Protocol::parse)?,
        sender: r.try_get("sender")?,
        active: r.try_get::<i64, _>("active")? != 0,
        qc_pattern: r.try_get("qc_pattern")?,
        specimen_id_component: r.try_get("specimen_id_component")?,
        charset: r.try_get("charset")?,
        unmapped_results: opt_code_at(
            r,
            "instrument",
            "id",
            "unmapped_results",
            "unmapped_results",
            UnmappedResults::parse,
        )?
        .unwrap_or(UnmappedResults::Hold),
        allowed_peers: code(r, "instrument", "id", "allowed_peers", |text| {
            AllowedPeers::parse(text).ok()
        })?,
    })
}

const OUTBOX_COLUMNS: &str = "id, destination, control_id, payload, accession, created_at, status, attempts, next_attempt_at, last_error, sent_at";

fn outbox_from_row(r: &AnyRow) -> StoreResult<OutboxRow> {
    Ok(OutboxRow {
        id: r.try_get("id")?,
        destination: r.try_get("destination")?,
        control_id: r.try_get("control_id")?,
        payload: r.try_get("payload")?,
        accession: r.try_get("accession")?,
        created_at: time(r, "created_at")?,
        status: code(r, "outbox", "id", "status", OutboxStatus::parse)?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: time(r, "next_attempt_at")?,
        last_error: r.try_get("last_error")?,
        sent_at: opt_time(r, "sent_at")?,
    })
}

impl Tx {
    /// Adds an instrument.
    pub async fn insert_instrument(
        &mut self,
        name: &str,
        protocol: Protocol,
        sender: &str,
        now: Timestamp,
    ) -> StoreResult<i64> {
        sqlx::query_scalar("INSERT INTO instrument (name, protocol, sender, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(name)
            .bind(protocol.code())
            .bind(sender)
            .bind(now.as_micros())
            .fetch_one(self.conn())
            .await
            .map_err(|e| StoreError::on_unique(e, &format!("an instrument named {name:?} exists")))
    }

    /// Renames an instrument, or changes the sender it is known by and its protocol. The
    /// name is unique; the caller checks that no other instrument has the sender.
    pub async fn set_instrument_identity(
        &mut self,
        instrument_id: i64,
        name: &str,
        protocol: Protocol,
        sender: &str,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE instrument SET name = $1, protocol = $2, sender = $3 WHERE id = $4")
            .bind(name)
            .bind(protocol.code())
            .bind(sender)
            .bind(instrument_id)
            .execute(self.conn())
            .await
            .map_err(|e| {
                StoreError::on_unique(e, &format!("an instrument named {name:?} exists"))
            })?;
        Ok(())
    }

    /// Maps (or re-maps) an instrument's test code to a catalog test.
    pub async fn map_test_code(&mut self, m: &TestCodeRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO instrument_test_code (instrument_id, instrument_code, test_code, unit, disposition) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (instrument_id, instrument_code) DO UPDATE SET test_code = excluded.test_code, unit = excluded.unit, disposition = excluded.disposition",
        )
        .bind(m.instrument_id)
        .bind(&m.instrument_code)
        .bind(&m.test_code)
        .bind(&m.unit)
        .bind(m.disposition.code())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Sets what becomes of an instrument's message some of whose results cannot be taken.
    pub async fn set_unmapped_results(
        &mut self,
        instrument_id: i64,
        setting: UnmappedResults,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE instrument SET unmapped_results = $1 WHERE id = $2")
            .bind(setting.code())
            .bind(instrument_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Sets the addresses an instrument's messages are taken from.
    pub async fn set_allowed_peers(
        &mut self,
        instrument_id: i64,
        peers: &AllowedPeers,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE instrument SET allowed_peers = $1 WHERE id = $2")
            .bind(peers.code())
            .bind(instrument_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Logs a message. A second inbound message with the same sender and control id is a
    /// conflict: the caller answers it with the stored acknowledgement.
    pub async fn insert_message(&mut self, m: &NewMessage<'_>, now: Timestamp) -> StoreResult<i64> {
        sqlx::query_scalar(
            "INSERT INTO interface_message (direction, protocol, channel, peer, sender, control_id, message_type, raw, received_at, \
             outcome, detail, ack, accession, results, quarantine, replay_of, processed_us, held) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id",
        )
        .bind(m.direction.code())
        .bind(m.protocol.code())
        .bind(m.channel)
        .bind(m.peer)
        .bind(m.sender)
        .bind(m.control_id)
        .bind(m.message_type)
        .bind(m.raw.to_vec())
        .bind(now.as_micros())
        .bind(m.outcome.code())
        .bind(m.detail)
        .bind(m.ack.map(<[u8]>::to_vec))
        .bind(m.accession)
        .bind(m.results)
        .bind(m.quarantine.map(Quarantine::code))
        .bind(m.replay_of)
        .bind(m.processed_us)
        .bind(if m.held.is_empty() {
            None
        } else {
            Some(m.held.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "))
        })
        .fetch_one(self.conn())
        .await
        .map_err(|e| StoreError::on_unique(e, "a message with this control id from this sender was already received"))
    }

    /// Closes an open quarantined message as replayed or dismissed.
    pub async fn set_quarantine(&mut self, id: i64, state: Quarantine) -> StoreResult<()> {
        sqlx::query(
            "UPDATE interface_message SET quarantine = $1 WHERE id = $2 AND quarantine = 'open'",
        )
        .bind(state.code())
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Queues a message for an external system.
    pub async fn enqueue(
        &mut self,
        destination: &str,
        control_id: &str,
        payload: &[u8],
        accession: &str,
        now: Timestamp,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO outbox (destination, control_id, payload, accession, created_at, status, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $5) RETURNING id",
        )
        .bind(destination)
        .bind(control_id)
        .bind(payload.to_vec())
        .bind(accession)
        .bind(now.as_micros())
        .fetch_one(self.conn())
        .await?)
    }

    /// Records a delivered outbox message and its acknowledgement.
    pub async fn outbox_sent(&mut self, id: i64, ack: &[u8], now: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE outbox SET status = 'sent', sent_at = $1, ack = $2, attempts = attempts + 1, last_error = NULL WHERE id = $3")
            .bind(now.as_micros())
            .bind(ack.to_vec())
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Records a failed attempt; `next_attempt_at` None gives up (status `failed`).
    pub async fn outbox_failed(
        &mut self,
        id: i64,
        error: &str,
        next_attempt_at: Option<Timestamp>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, \
             status = CASE WHEN $2 IS NULL THEN 'failed' ELSE 'pending' END, next_attempt_at = COALESCE($2, next_attempt_at) WHERE id = $3",
        )
        .bind(error)
        .bind(next_attempt_at.map(Timestamp::as_micros))
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Puts a failed outbox message back in the queue (staff retry).
    pub async fn outbox_retry(&mut self, id: i64, now: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE outbox SET status = 'pending', next_attempt_at = $1 WHERE id = $2 AND status = 'failed'")
            .bind(now.as_micros())
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

impl Store {
    /// Every instrument.
    pub async fn instruments(&self) -> StoreResult<Vec<InstrumentRow>> {
        let rows = sqlx::query(
            "SELECT id, name, protocol, sender, active, qc_pattern, specimen_id_component, charset, unmapped_results, allowed_peers FROM instrument ORDER BY name",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(instrument_from_row).collect()
    }

    /// The instrument a message comes from, by protocol and sender name.
    pub async fn instrument_by_sender(
        &self,
        protocol: Protocol,
        sender: &str,
    ) -> StoreResult<Option<InstrumentRow>> {
        let row = sqlx::query("SELECT id, name, protocol, sender, active, qc_pattern, specimen_id_component, charset, unmapped_results, allowed_peers FROM instrument WHERE protocol = $1 AND sender = $2")
            .bind(protocol.code())
            .bind(sender)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(instrument_from_row).transpose()
    }

    /// An instrument with its test-code map, in one read (every inbound message needs both).
    pub async fn instrument_with_codes(
        &self,
        protocol: Protocol,
        sender: &str,
    ) -> StoreResult<Option<(InstrumentRow, Vec<TestCodeRow>)>> {
        let rows = sqlx::query(
            "SELECT i.id, i.name, i.protocol, i.sender, i.active, i.qc_pattern, i.specimen_id_component, i.charset, i.unmapped_results, i.allowed_peers, c.instrument_code, c.test_code, c.unit, c.disposition \
             FROM instrument i LEFT JOIN instrument_test_code c ON c.instrument_id = i.id \
             WHERE i.protocol = $1 AND i.sender = $2 ORDER BY c.instrument_code",
        )
        .bind(protocol.code())
        .bind(sender)
        .fetch_all(self.reader())
        .await?;
        let Some(first) = rows.first() else { return Ok(None) };
        let instrument = instrument_from_row(first)?;
        let mut codes = Vec::new();
        for r in &rows {
            let Some(instrument_code) = r.try_get::<Option<String>, _>("instrument_code")? else {
                continue; // no codes mapped yet
            };
            codes.push(TestCodeRow {
                instrument_id: instrument.id,
                instrument_code,
                test_code: r.try_get("test_code")?,
                unit: r.try_get("unit")?,
                disposition: code(
                    r,
                    "instrument_test_code",
                    "id",
                    "disposition",
                    CodeDisposition::parse,
                )?,
            });
        }
        Ok(Some((instrument, codes)))
    }

    /// An instrument by id.
    pub async fn instrument(&self, id: i64) -> StoreResult<InstrumentRow> {
        let row = sqlx::query(
            "SELECT id, name, protocol, sender, active, qc_pattern, specimen_id_component, charset, unmapped_results, allowed_peers FROM instrument WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(instrument_from_row).transpose()?.ok_or(StoreError::NotFound("instrument"))
    }

    /// An instrument's test-code map.
    pub async fn test_codes(&self, instrument_id: i64) -> StoreResult<Vec<TestCodeRow>> {
        let rows = sqlx::query(
            "SELECT instrument_id, instrument_code, test_code, unit, disposition FROM instrument_test_code WHERE instrument_id = $1 ORDER BY instrument_code",
        )
        .bind(instrument_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TestCodeRow {
                    instrument_id: r.try_get("instrument_id")?,
                    instrument_code: r.try_get("instrument_code")?,
                    test_code: r.try_get("test_code")?,
                    unit: r.try_get("unit")?,
                    disposition: code(
                        r,
                        "instrument_test_code",
                        "instrument_id",
                        "disposition",
                        CodeDisposition::parse,
                    )?,
                })
            })
            .collect()
    }

    /// A message already received from `sender` with `control_id`.
    pub async fn message_by_control(
        &self,
        direction: Direction,
        sender: &str,
        control_id: &str,
    ) -> StoreResult<Option<MessageRow>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM interface_message WHERE direction = $1 AND sender = $2 AND control_id = $3"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(direction.code())
            .bind(sender)
            .bind(control_id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    /// A message by id.
    pub async fn message(&self, id: i64) -> StoreResult<MessageRow> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM interface_message WHERE id = $1");
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.reader()).await?;
        row.as_ref().map(message_from_row).transpose()?.ok_or(StoreError::NotFound("message"))
    }

    /// The message log, newest first.
    pub async fn messages(&self, f: &MessageFilter) -> StoreResult<Vec<MessageRow>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM interface_message \
             WHERE ($1 = 0 OR quarantine = 'open') AND ($2 IS NULL OR direction = $2) AND ($3 IS NULL OR outcome = $3) \
               AND ($4 IS NULL OR control_id = $4 OR accession = $4 OR detail LIKE $5) AND ($6 IS NULL OR id < $6) \
               AND ($8 IS NULL OR (protocol = $8 AND sender = $9)) \
             ORDER BY id DESC LIMIT $7"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(f.open_quarantine))
            .bind(f.direction.map(Direction::code))
            .bind(f.outcome.map(MessageOutcome::code))
            .bind(f.text.as_deref())
            .bind(f.text.as_deref().map(|t| format!("%{t}%")))
            .bind(f.before_id)
            .bind(if f.limit > 0 { f.limit } else { 200 })
            .bind(f.sender.as_ref().map(|(p, _)| p.code()))
            .bind(f.sender.as_ref().map(|(_, s)| s.as_str()))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// Outbox messages due now, oldest first.
    pub async fn outbox_due(&self, now: Timestamp, limit: i64) -> StoreResult<Vec<OutboxRow>> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now.as_micros())
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(outbox_from_row).collect()
    }

    /// How many outbox messages wait to be sent, and when the oldest of them was queued.
    pub async fn outbox_backlog(&self) -> StoreResult<(i64, Option<Timestamp>)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM outbox WHERE status = 'pending'",
        )
        .fetch_one(self.reader())
        .await?;
        use sqlx::Row;
        let pending: i64 = row.try_get("pending")?;
        Ok((pending, crate::opt_time(&row, "oldest")?))
    }

    /// Outbox messages not yet delivered (pending or failed), oldest first.
    pub async fn outbox_undelivered(&self) -> StoreResult<Vec<OutboxRow>> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status <> 'sent' ORDER BY id LIMIT 1000"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.reader()).await?;
        rows.iter().map(outbox_from_row).collect()
    }
}
