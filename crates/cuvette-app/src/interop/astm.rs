//! ASTM E1394 (CLSI LIS02-A2) records to and from the lab: results in (R records under O
//! records), host-query answers out (O records for a specimen's tests).

use cuvette_astm::records::{Charset, Message, MessageBuilder, RecordBuilder, RecordType};
use cuvette_domain::patient::SentIdentity;
use cuvette_domain::workflow::{SpecimenStatus, TestStatus};
use cuvette_store::WorklistFilter;
use sha2::{Digest, Sha256};

use super::{Decoded, Inbound, Ingested, MessageRecord, Place, ReceivedResult, Refusal, Took};
use crate::{AppError, AppResult, Lab};

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
        let accession = group.order.specimen_id().text().trim().to_owned();
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
            results.push(ReceivedResult {
                accession: accession.clone(),
                instrument_code: rec.test_id().code().text().trim().to_owned(),
                value: rec.value_text().unwrap_or_default().trim().to_owned(),
                unit: units_text(&rec.units()),
                reference_range: rec.reference_range().text().trim().to_owned(),
                flags,
                status: rec.status().text().trim().to_owned(),
                location: Place::record("R", sequence(rec.sequence().text().trim(), results.len())),
                patient: patient.clone(),
            });
        }
    }
    Decoded { results, malformed: None }
}

/// A result's place: its R-2 sequence number, else its position among the message's
/// results (`before` of them came first).
fn sequence(sent: &str, before: usize) -> usize {
    sent.parse().unwrap_or(before + 1)
}

/// R-5 as text. LIS02-A2 allows the Latin-1 bytes 128–254 in data (the cobas c 311 writes
/// µmol/l as byte 0xB5): units that are not UTF-8 are read as Windows-1252, so µ stays µ.
fn units_text(field: &cuvette_astm::records::Field<'_>) -> String {
    let charset = match std::str::from_utf8(&field.decode()) {
        Ok(_) => Charset::Utf8Lossy,
        Err(_) => Charset::Windows1252,
    };
    field.text_as(charset).trim().to_owned()
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
    let decoded = decode_results(raw);
    let inbound = Inbound {
        protocol: "astm",
        channel,
        peer,
        sender: &sender,
        control_id: Some(&control_id),
        message_type: "ASTM",
        raw,
        results: decoded.results,
        malformed: decoded.malformed,
        replay_of: None,
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
            .field(26, if codes.is_empty() { "Y" } else { "Q" });
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
    let started = lab.now_micros();
    let sender = sender_of(raw);
    let specimens = queried_specimens(raw);
    let store = &lab.store;
    let (codes, known) = match store.instrument_by_sender("astm", &sender).await? {
        Some(instrument) if instrument.active => (store.test_codes(instrument.id).await?, true),
        _ => (Vec::new(), false),
    };
    let mut answers = Vec::new();
    for asked in &specimens {
        let accession = cuvette_domain::Accession::parse(asked).map(|a| a.to_string());
        let specimen = match &accession {
            Ok(a) => store.specimen_by_accession(a).await?,
            Err(_) => None,
        };
        let mut open = Vec::new();
        if let Some(specimen) = specimen.filter(|s| s.status == SpecimenStatus::Received) {
            let items = store
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
        }
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
    let record = MessageRecord {
        direction: "in",
        protocol: "astm".into(),
        channel: channel.into(),
        peer: peer.into(),
        sender,
        // Instruments repeat identical queries; each is logged, none is a duplicate.
        control_id: None,
        message_type: QUERY_MESSAGE_TYPE.into(),
        raw: raw.to_vec(),
        outcome: "query",
        detail,
        ack: None,
        accession: specimens.first().cloned(),
        results: 0,
        quarantine: None,
        replay_of: None,
        took: Took::Since(started),
    };
    lab.log_message(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Some(query_answer(&answers)))
}

/// Logs a host-query answer that was sent (`failure` None, outcome `sent`) or given up
/// (outcome `failed`, with why), direction `out`. `records` are the answer as built by
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
                    let codes = if o.report_type().text() == "Y" {
                        vec![]
                    } else {
                        o.test_ids().map(|t| t.code().text()).collect()
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
        direction: "out",
        protocol: "astm".into(),
        channel: channel.into(),
        peer: peer.into(),
        sender: SENDER_NAME.into(),
        control_id: None,
        message_type: ANSWER_MESSAGE_TYPE.into(),
        raw,
        outcome: if failure.is_some() { "failed" } else { "sent" },
        detail,
        ack: None,
        accession: answers.first().map(|(a, _)| a.clone()),
        results: 0,
        quarantine: None,
        replay_of: None,
        took: Took::Micros(0),
    };
    // Without a control id no other row can conflict with this one.
    let Some(id) = lab.log_message(&mut tx, &record).await? else {
        return Err(AppError::Conflict("the host-query answer was logged twice at once".into()));
    };
    tx.commit().await?;
    Ok(id)
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
