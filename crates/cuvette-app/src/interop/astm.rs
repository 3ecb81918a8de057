//! ASTM E1394 (CLSI LIS02-A2) records to and from the lab: results in (R records under O
//! records), host-query answers out (O records for a specimen's tests).

use cuvette_astm::records::{Message, MessageBuilder, RecordBuilder};
use sha2::{Digest, Sha256};

use super::{Decoded, Inbound, Ingested, ReceivedResult};
use crate::{AppResult, Lab};

/// Reads the results of an ASTM message: each R record under its O record, the specimen from
/// O-3, the test code from R-3 (the manufacturer's code, component 4, else the first).
pub fn decode_results(raw: &[u8]) -> Decoded {
    let message = match Message::parse(raw) {
        Ok(m) => m,
        Err(e) => {
            return Decoded {
                results: vec![],
                malformed: Some(format!("not an ASTM message: {e}")),
            };
        }
    };
    let mut results = Vec::new();
    for group in message.order_groups() {
        let accession = group.order.specimen_id().text().trim().to_owned();
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
                unit: rec.units().text().trim().to_owned(),
                reference_range: rec.reference_range().text().trim().to_owned(),
                flags,
                status: rec.status().text().trim().to_owned(),
                location: format!("R {}", rec.sequence().text().trim()),
            });
        }
    }
    Decoded { results, malformed: None }
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

/// Ingests one ASTM message (the records of one ENQ…EOT, joined by CR). The link layer ACKs
/// frames as they arrive; this commits the message before the session's last frame is
/// acknowledged by the listener.
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
/// order for the specimen).
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
    b.record(RecordBuilder::terminator("N")).encode()
}

/// H-5 of what Cuvette sends.
pub const SENDER_NAME: &str = "CUVETTE";
