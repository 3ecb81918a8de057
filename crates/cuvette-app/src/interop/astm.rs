//! ASTM E1394 (CLSI LIS02-A2) records to and from the lab: results in (R records under O
//! records), host-query answers out (O records for a specimen's tests).

use cuvette_astm::records::{Charset, Message, MessageBuilder, RecordBuilder, RecordType};
use cuvette_domain::patient::SentIdentity;
use cuvette_domain::workflow::{SpecimenStatus, TestStatus};
use cuvette_store::{
    Direction, MessageOutcome, Protocol, SpecimenRow, TestCodeRow, WorklistFilter,
};
use sha2::{Digest, Sha256};

use super::{
    Aborted, Decoded, Inbound, Ingested, MessageRecord, Place, Query, ReceivedResult, Refusal, Took,
};
use crate::{AppError, AppResult, Lab};

/// Reads the results of a message from `sender` in the character set its instrument is
/// configured with ([`as_utf8`]).
pub async fn decode_stored(lab: &Lab, raw: &[u8], sender: &str) -> AppResult<Decoded> {
    let charset =
        lab.store.instrument_by_sender(Protocol::Astm, sender).await?.and_then(|i| i.charset);
    Ok(match as_utf8(raw, charset.as_deref().unwrap_or("utf-8")) {
        Ok(text) => decode_results(&text),
        Err(refusal) => Decoded { results: vec![], malformed: Some(refusal) },
    })
}

/// The message as UTF-8, read in the instrument's character set: `utf-8` (the default: a
/// byte that is not UTF-8 is refused, never guessed), `windows-1252` (LIS02-A2 allows the
/// Latin-1 bytes 128–254 in data; the cobas c 311 writes µmol/l with byte 0xB5), `ascii`, or
/// `utf-8-lossy` (each byte that is not UTF-8 replaced by `�` and logged).
/// A byte that is not text in it is refused with the record and field it is in.
#[allow(clippy::result_large_err)] // Built at most once per message, on its way to the log.
pub fn as_utf8<'a>(raw: &'a [u8], charset: &str) -> Result<std::borrow::Cow<'a, [u8]>, Refusal> {
    use std::borrow::Cow;
    let invalid = |offset: usize, charset: &str| Refusal::InvalidEncoding {
        protocol: "ASTM",
        at: place_of_byte(raw, offset),
        byte: raw[offset],
        offset,
        charset: charset.to_owned(),
    };
    match charset {
        "windows-1252" => Ok(Cow::Owned(Charset::Windows1252.decode(raw).into_bytes())),
        "ascii" => match raw.iter().position(|b| !b.is_ascii()) {
            None => Ok(Cow::Borrowed(raw)),
            Some(offset) => Err(invalid(offset, "ASCII")),
        },
        // Only when the lab chose it for an instrument it cannot set right: each byte
        // replaced by `�` is logged with where it was.
        "utf-8-lossy" => {
            let mut rest = raw;
            while let Err(e) = std::str::from_utf8(rest) {
                let offset = raw.len() - rest.len() + e.valid_up_to();
                tracing::warn!(
                    offset,
                    byte = format!("0x{:02X}", raw[offset]),
                    at = %place_of_byte(raw, offset),
                    "ASTM byte that is not UTF-8 replaced by U+FFFD (the instrument is set to utf-8-lossy)"
                );
                let skip = e.error_len().unwrap_or(rest.len() - e.valid_up_to());
                rest = &rest[e.valid_up_to() + skip..];
            }
            Ok(String::from_utf8_lossy(raw).into_owned().into_bytes().into())
        }
        _ => match std::str::from_utf8(raw) {
            Ok(_) => Ok(Cow::Borrowed(raw)),
            Err(e) => Err(invalid(e.valid_up_to(), "UTF-8")),
        },
    }
}

/// The record and field a byte of a message lies in: `R(2)-5` (the record type is field 1).
fn place_of_byte(raw: &[u8], offset: usize) -> Place {
    let start = raw[..offset].iter().rposition(|&b| b == b'\r' || b == b'\n').map_or(0, |i| i + 1);
    let record = &raw[start..offset];
    let kind = record.first().map(|&b| char::from(b).to_string()).unwrap_or_default();
    let separator = raw.get(1).copied().unwrap_or(b'|');
    let field = record.iter().filter(|&&b| b == separator).count() + 1;
    let sequence = raw[..start]
        .split(|&b| b == b'\r' || b == b'\n')
        .filter(|r| r.starts_with(kind.as_bytes()))
        .count()
        + 1;
    Place::nth_field(&kind, sequence, field)
}

/// Reads the results of an ASTM message: each R record under its O record, the specimen from
/// O-3, the test code from R-3 (the manufacturer's code, component 4, else the first).
pub fn decode_results(raw: &[u8]) -> Decoded {
    let message = match Message::parse(raw) {
        Ok(m) => m,
        Err(e) => {
            return Decoded {
                results: vec![],
                malformed: Some(Refusal::Unreadable { protocol: "ASTM", error: e.to_string() }),
            };
        }
    };
    let mut results = Vec::new();
    for group in message.order_groups() {
        let specimen_components: Vec<String> = group
            .order
            .record()
            .field(3)
            .components()
            .take(super::instruments::SPECIMEN_ID_COMPONENTS_MAX)
            .map(|c| c.text().trim().to_owned())
            .collect();
        let accession = specimen_id(&group.order);
        // P-3 and P-4 are not read as the MRN: analyzers put sample ids and times there.
        let patient = group.patient.map(|p| SentIdentity {
            identifiers: Vec::new(),
            family_name: p.name().component(1).text().trim().to_owned(),
            given_name: p.name().component(2).text().trim().to_owned(),
            birth_date: p.birth_date().text().trim().to_owned(),
        });
        for r in &group.results {
            let rec = &r.result;
            let mut flags: Vec<String> = rec
                .abnormal_flags()
                .map(|f| f.text().trim().to_owned())
                .filter(|f| !f.is_empty() && f != "N")
                .collect();
            // Comment records after a result carry instrument error text: a reviewer must see it.
            if !r.comments.is_empty() {
                flags.push("comment".into());
            }
            // `798/1/not`: the code, then the dilution and qualifier (cobas, LIS02-A2 §9.4.3).
            let sent_code = rec.test_id().code().text();
            let mut parts = sent_code.trim().split('/').map(|p| p.trim().to_owned());
            let instrument_code = parts.next().unwrap_or_default();
            let test_attributes: Vec<String> = parts.collect();
            // Trailing empty parts (`798/`) say nothing.
            let test_attributes = match test_attributes.iter().rposition(|p| !p.is_empty()) {
                Some(last) => test_attributes[..=last].to_vec(),
                None => Vec::new(),
            };
            results.push(ReceivedResult {
                accession: accession.clone(),
                specimen_components: specimen_components.clone(),
                instrument_code,
                test_attributes,
                value: rec.value_text().unwrap_or_default().trim().to_owned(),
                unit: rec.units().text().trim().to_owned(),
                reference_range: rec.reference_range().text().trim().to_owned(),
                flags,
                status: rec.status().text().trim().to_owned(),
                location: Place::record("R", sequence(rec.sequence().text().trim(), results.len())),
                encapsulated: None,
                patient: patient.clone(),
            });
        }
    }
    Decoded { results, malformed: None }
}

/// The specimen id of an order record: the first component of O-3 that is not empty
/// (analyzers write `^^26-0000012-3` with rack and position around it; an instrument's
/// configuration may name another component, see `Lab::set_specimen_id_component`).
fn specimen_id(order: &cuvette_astm::records::Order<'_>) -> String {
    order
        .record()
        .field(3)
        .components()
        .map(|c| c.text().trim().to_owned())
        .find(|c| !c.is_empty())
        .unwrap_or_default()
}

/// A result's place: its R-2 sequence number, else its position among the message's
/// results (`before` of them came first).
fn sequence(sent: &str, before: usize) -> usize {
    sent.parse().unwrap_or(before + 1)
}

/// What an ASTM message says about its sender (H-5, first component).
pub fn sender_of(raw: &[u8]) -> String {
    Message::parse(raw)
        .map(|m| m.header().sender().first().component(1).text().trim().to_owned())
        .unwrap_or_default()
}

/// ASTM has no message control id: a retransmitted message is recognised by the hash of its
/// content (the header's date and time make each message distinct).
pub fn content_id(raw: &[u8]) -> String {
    Sha256::digest(raw).iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Ingests one ASTM message (its records, each terminated by CR). The listener's link holds
/// back the acknowledgement of the frame that carries the message's terminator record until
/// this has committed the message (accepted, duplicate or quarantined); an error means
/// nothing was stored, and the listener refuses the frame so the instrument sends it again.
pub async fn receive(lab: &Lab, raw: &[u8], channel: &str, peer: &str) -> AppResult<Ingested> {
    let sender = sender_of(raw);
    let control_id = content_id(raw);
    let decoded = decode_stored(lab, raw, &sender).await?;
    let inbound = Inbound {
        protocol: Protocol::Astm,
        channel,
        peer,
        sender: &sender,
        control_id: Some(&control_id),
        message_type: "ASTM",
        raw,
        results: decoded.results,
        malformed: decoded.malformed,
        replay_of: None,
        replayed: false,
    };
    let no_ack = |_: &Ingested| Vec::new();
    Ok(lab.ingest(&inbound, &no_ack).await?.0)
}

/// The specimens an instrument asks about in a host query (Q-3 starting range).
pub fn queried_specimens(raw: &[u8]) -> Vec<String> {
    let Ok(message) = Message::parse(raw) else { return vec![] };
    message
        .queries()
        .flat_map(|q| q.specimen_ids().map(|s| s.text()).collect::<Vec<_>>())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The answer to a host query: for each specimen, its patient and an O record listing the
/// ordered tests by the instrument's codes (LIS02-A2 §8; O-26 `Q` response to query, `Y` no
/// order for the specimen). A query that named no specimen is answered with a header and a
/// terminator saying no information is available (L-3 `I`, LIS02-A2 §12).
pub fn query_answer(answers: &[(String, Vec<String>)]) -> Vec<Vec<u8>> {
    use cuvette_astm::records::Delimiters;
    let mut b = MessageBuilder::new(Delimiters::STANDARD)
        .record(RecordBuilder::header().field(5, SENDER_NAME));
    for (i, (specimen, codes)) in answers.iter().enumerate() {
        let seq = (i + 1) as u32;
        b = b.record(RecordBuilder::patient(seq));
        let order = RecordBuilder::order(1, specimen, codes.iter().map(String::as_str))
            .field(12, "N")
            .field(26, ReportType::of(codes).code());
        b = b.record(order);
    }
    let code = if answers.is_empty() { "I" } else { "N" };
    b.record(RecordBuilder::terminator(code)).encode()
}

/// `message_type` of a logged host query.
pub const QUERY_MESSAGE_TYPE: &str = "ASTM query";
/// `message_type` of a logged host-query answer.
pub const ANSWER_MESSAGE_TYPE: &str = "ASTM answer";

/// Whether an ASTM message is a host query: it holds request-information (`Q`) records and
/// no results. A message with results is ingested whatever else it holds.
pub fn is_query(raw: &[u8]) -> bool {
    let Ok(message) = Message::parse(raw) else { return false };
    let kinds = || message.records().iter().map(|r| r.kind());
    kinds().any(|k| k == RecordType::Query) && !kinds().any(|k| k == RecordType::Result)
}

/// Answers an instrument's host query (LIS02-A2 §11): for each specimen it asks about, the
/// instrument's codes for the specimen's tests still waiting for a result, through the code
/// map of the instrument that sent the query (H-5). A specimen Cuvette does not know, has
/// not received, or has no such test for this instrument is answered with report type `Y` (no
/// order). The query is committed to the message log (direction `in`, outcome `query`) before
/// the answer is returned; the caller acknowledges the query only then.
///
/// Returns `None` when the message is not a query ([`is_query`]): ingest it with
/// [`receive`] instead.
pub async fn answer_query(
    lab: &Lab,
    raw: &[u8],
    channel: &str,
    peer: &str,
) -> AppResult<Option<Vec<Vec<u8>>>> {
    if !is_query(raw) {
        return Ok(None);
    }
    let started = lab.now_at();
    let sender = sender_of(raw);
    let specimens = queried_specimens(raw);
    let store = &lab.store;
    let (codes, known) = match store.instrument_by_sender(Protocol::Astm, &sender).await? {
        Some(instrument) if instrument.active => (store.test_codes(instrument.id).await?, true),
        _ => (Vec::new(), false),
    };
    let mut answers = Vec::new();
    for asked in &specimens {
        let open = match queried_specimen(lab, asked).await? {
            Some(specimen) => pending_codes(lab, &specimen, &codes).await?,
            None => Vec::new(),
        };
        answers.push((asked.clone(), open));
    }
    let detail = {
        let asked = if specimens.is_empty() {
            "asks for no specimen Cuvette can look up".to_owned()
        } else {
            format!("asks for {}", specimens.join(", "))
        };
        if known {
            format!("{asked}; answered with {}", describe(&answers))
        } else {
            format!(
                "{asked}; unknown or disabled instrument {sender:?}: answered with no orders (add it under Interfaces with its test codes)"
            )
        }
    };
    let mut tx = store.begin().await?;
    let record = Query {
        protocol: Protocol::Astm,
        channel,
        peer,
        sender,
        message_type: QUERY_MESSAGE_TYPE,
        raw,
        detail,
        answer: None,
        accession: specimens.first().cloned(),
        started,
    }
    .into_record();
    lab.log_message(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Some(query_answer(&answers)))
}

/// The specimen an analyzer's host query names (ASTM Q-3, HL7 QPD-3): by its accession number,
/// else by the id the EHR gave it (HL7 SPM-2) when exactly one specimen has that id.
pub(crate) async fn queried_specimen(lab: &Lab, asked: &str) -> AppResult<Option<SpecimenRow>> {
    if let Ok(accession) = cuvette_domain::Accession::parse(asked) {
        return Ok(lab.store.specimen_by_accession(&accession.to_string()).await?);
    }
    let mut sent = lab.store.specimens_by_placer_id(asked.trim()).await?;
    Ok(if sent.len() == 1 { sent.pop() } else { None })
}

/// What an analyzer is to run on a specimen it asks about: the instrument's codes (`codes`, its
/// code map) for the specimen's tests still waiting for a result, each once, in the order the
/// tests were ordered — none unless the specimen has been received in the lab.
pub(crate) async fn pending_codes(
    lab: &Lab,
    specimen: &SpecimenRow,
    codes: &[TestCodeRow],
) -> AppResult<Vec<String>> {
    let mut open = Vec::new();
    if specimen.status != SpecimenStatus::Received {
        return Ok(open);
    }
    let items = lab
        .store
        .work_items(&WorklistFilter {
            specimen_id: Some(specimen.id),
            statuses: vec![TestStatus::Received],
            limit: 1000,
            ..Default::default()
        })
        .await?;
    for item in &items {
        // The first of the instrument's codes for the test, in the map's order.
        if let Some(map) = codes.iter().find(|c| c.test_code == item.test.test_code)
            && !open.contains(&map.instrument_code)
        {
            open.push(map.instrument_code.clone());
        }
    }
    Ok(open)
}

/// Logs a host-query answer that was sent (`failure` None, outcome `sent`) or given up
/// (outcome `failed`, with why), direction `out`. `records` are the answer as built by
/// The report type (O-26, LIS02-A2 §8.4.26) of an order record answering a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReportType {
    /// `Q`: the tests ordered for the specimen, in response to the query.
    Query,
    /// `Y`: no order on record for the specimen.
    NoOrder,
}

impl ReportType {
    /// The answer for a specimen with `codes` ordered.
    fn of(codes: &[String]) -> ReportType {
        if codes.is_empty() { ReportType::NoOrder } else { ReportType::Query }
    }

    fn code(self) -> &'static str {
        match self {
            ReportType::Query => "Q",
            ReportType::NoOrder => "Y",
        }
    }

    fn parse(code: &str) -> Option<ReportType> {
        [ReportType::Query, ReportType::NoOrder].into_iter().find(|t| t.code() == code)
    }
}

/// [`query_answer`]; `to` is the instrument it was meant for (H-5 of its query).
pub async fn log_answer(
    lab: &Lab,
    records: &[Vec<u8>],
    to: &str,
    channel: &str,
    peer: &str,
    failure: Option<&str>,
) -> AppResult<i64> {
    let raw = join_records(records);
    let answers: Vec<(String, Vec<String>)> = Message::parse(&raw)
        .map(|m| {
            m.orders()
                .map(|o| {
                    let codes = match ReportType::parse(&o.report_type().text()) {
                        Some(ReportType::NoOrder) => vec![],
                        Some(ReportType::Query) | None => {
                            o.test_ids().map(|t| t.code().text()).collect()
                        }
                    };
                    (o.specimen_id().text(), codes)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut detail = format!("answer to {to}: {}", describe(&answers));
    if let Some(why) = failure {
        detail = format!("{detail}; not delivered: {why}");
    }
    let mut tx = lab.store.begin().await?;
    let record = MessageRecord {
        direction: Direction::Out,
        protocol: Protocol::Astm,
        channel: channel.into(),
        peer: peer.into(),
        sender: SENDER_NAME.into(),
        control_id: None,
        message_type: ANSWER_MESSAGE_TYPE.into(),
        raw,
        outcome: if failure.is_some() { MessageOutcome::Failed } else { MessageOutcome::Sent },
        detail,
        ack: None,
        accession: answers.first().map(|(a, _)| a.clone()),
        results: 0,
        quarantine: None,
        replay_of: None,
        took: Took::Micros(0),
        held: Vec::new(),
    };
    // Without a control id no other row can conflict with this one.
    let Some(id) = lab.log_message(&mut tx, &record).await? else {
        return Err(AppError::Conflict("the host-query answer was logged twice at once".into()));
    };
    tx.commit().await?;
    Ok(id)
}

/// Logs the records of a transfer that ended before its message's terminator record was
/// complete (`how`: how it ended), with outcome `aborted`. Nothing in it is posted: E1381-02
/// §6.5.2.2 discards an incomplete message, and the instrument, which never had the end of
/// the message acknowledged, sends it again.
pub async fn log_aborted(
    lab: &Lab,
    records: &[Vec<u8>],
    how: &str,
    channel: &str,
    peer: &str,
) -> AppResult<i64> {
    let raw = join_records(records);
    let parsed = Message::parse(&raw).ok();
    let accession = parsed.as_ref().and_then(|m| m.orders().next()).map(|o| specimen_id(&o));
    let detail = format!(
        "transfer aborted before the terminator record ({how}) after {} records: nothing in it was stored; the instrument sends the message again — if it does not, run the samples again",
        records.len()
    );
    lab.log_aborted(Aborted {
        protocol: Protocol::Astm,
        channel,
        peer,
        sender: sender_of(&raw),
        message_type: "ASTM".into(),
        raw,
        detail,
        accession,
    })
    .await
}

/// Records as message text: each terminated by CR (LIS02-A2 §5).
pub fn join_records(records: &[Vec<u8>]) -> Vec<u8> {
    let mut text = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
    for record in records {
        text.extend_from_slice(record);
        text.push(b'\r');
    }
    text
}

/// "26-0000012-3: GLU, K; 26-0000013-1: no order" for the message log.
fn describe(answers: &[(String, Vec<String>)]) -> String {
    if answers.is_empty() {
        return "no information".to_owned();
    }
    answers
        .iter()
        .map(|(specimen, codes)| {
            if codes.is_empty() {
                format!("{specimen}: no order")
            } else {
                format!("{specimen}: {}", codes.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// H-5 of what Cuvette sends.
pub const SENDER_NAME: &str = "CUVETTE";
