//! HL7 v2 to and from the lab: ORU^R01 results in, acknowledgements out.

use cuvette_hl7::{
    AckBuilder, AckCode, ErrSegment, ErrorCode, ErrorLocation, FieldValue, Message, MessageBuilder,
    SegmentBuilder, Severity,
};

use super::{Decoded, Inbound, Ingested, ReceivedResult};
use crate::{AppResult, Lab};

/// Who Cuvette says it is in MSH-3/MSH-4 of what it sends.
pub const SENDING_APPLICATION: &str = "CUVETTE";
/// MSH-4.
pub const SENDING_FACILITY: &str = "LAB";
/// The HL7 version Cuvette writes (MSH-12): its ACK and ERR segments are v2.5.1's, whatever
/// version the sender used.
pub const VERSION: &str = "2.5.1";

/// Reads the results of an ORU^R01: each OBX under an OBR, the specimen from OBR-3 (the filler
/// order number: Cuvette's accession) or else OBR-2.
pub fn decode_results(raw: &[u8]) -> Decoded {
    let message = match Message::parse(raw) {
        Ok(m) => m,
        Err(e) => {
            return Decoded {
                results: vec![],
                malformed: Some(format!("not an HL7 message: {e}")),
            };
        }
    };
    let kind = message.msh().message_type();
    let (code, trigger) = (kind.code().text().to_string(), kind.trigger().text().to_string());
    if code != "ORU" || trigger != "R01" {
        return Decoded {
            results: vec![],
            malformed: Some(format!("{code}^{trigger} carries no results: send ORU^R01")),
        };
    }
    let mut results = Vec::new();
    let mut accession = String::new();
    let mut obx_seq = 0;
    for segment in message.segments() {
        match segment.id() {
            b"OBR" => {
                let filler = segment.field(3).component(1).text().trim().to_owned();
                let placer = segment.field(2).component(1).text().trim().to_owned();
                accession = if filler.is_empty() { placer } else { filler };
            }
            b"OBX" => {
                obx_seq += 1;
                let value_type = segment.field(2).text().trim().to_string();
                let value = obx_value(&segment, &value_type);
                let flags = segment
                    .field(8)
                    .repetitions()
                    .map(|r| r.text().trim().to_owned())
                    .filter(|f| !f.is_empty() && f != "N")
                    .collect();
                results.push(ReceivedResult {
                    accession: accession.clone(),
                    instrument_code: segment.field(3).component(1).text().trim().to_owned(),
                    value,
                    unit: segment.field(6).component(1).text().trim().to_owned(),
                    reference_range: segment.field(7).text().trim().to_owned(),
                    flags,
                    status: segment.field(11).text().trim().to_owned(),
                    location: format!("OBX {obx_seq}"),
                });
            }
            _ => {}
        }
    }
    Decoded { results, malformed: None }
}

/// OBX-5 as result text: SN as "<0.5" or "1:128", coded values by their text, repeated values
/// joined (and then sent to review as not a single number).
fn obx_value(segment: &cuvette_hl7::Segment<'_>, value_type: &str) -> String {
    let field = segment.field(5);
    let reps: Vec<String> = field
        .repetitions()
        .map(|r| match value_type {
            "SN" => {
                let part = |n| r.component(n).text().trim().to_owned();
                let (cmp, n1, sep, n2) = (part(1), part(2), part(3), part(4));
                let cmp = if cmp == "=" { String::new() } else { cmp };
                format!("{cmp}{n1}{sep}{n2}")
            }
            "CWE" | "CE" | "CNE" => {
                let text = r.component(2).text().trim().to_owned();
                if text.is_empty() { r.component(1).text().trim().to_owned() } else { text }
            }
            _ => r.text().trim().to_owned(),
        })
        .filter(|v| !v.is_empty())
        .collect();
    reps.join(" ")
}

/// The sender a message names in MSH-3 (namespace id).
pub fn sender_of(message: &Message<'_>) -> String {
    message.msh().sending_application().component(1).text().trim().to_owned()
}

/// Cuvette's answer to one inbound HL7 message: decode it, ingest it, and return the
/// acknowledgement to send — after everything is committed.
pub async fn receive(
    lab: &Lab,
    raw: &[u8],
    channel: &str,
    peer: &str,
) -> AppResult<(Ingested, Vec<u8>)> {
    let parsed = Message::parse(raw);
    let (sender, control_id, message_type) = match &parsed {
        Ok(m) => {
            let kind = m.msh().message_type();
            (
                sender_of(m),
                Some(m.msh().control_id().text().trim().to_owned()).filter(|c| !c.is_empty()),
                format!("{}^{}", kind.code().text(), kind.trigger().text()),
            )
        }
        Err(_) => (String::new(), None, "unreadable".to_owned()),
    };
    let decoded = decode_results(raw);
    let inbound = Inbound {
        protocol: "hl7",
        channel,
        peer,
        sender: &sender,
        control_id: control_id.as_deref(),
        message_type: &message_type,
        raw,
        results: decoded.results,
        malformed: decoded.malformed,
        replay_of: None,
    };
    let (ack_id, timestamp) = stamp(lab);
    let make_ack = |outcome: &Ingested| ack(raw, outcome, &ack_id, &timestamp);
    lab.ingest(&inbound, &make_ack).await
}

/// The acknowledgement for an outcome (HL7 v2.5.1 §2.9.2, original mode): AA when stored, AE
/// with an ERR naming the reason and place when quarantined, AR when the message cannot be
/// read or carries no results.
pub fn ack(raw: &[u8], outcome: &Ingested, control_id: &str, timestamp: &str) -> Vec<u8> {
    let Ok(original) = Message::parse(raw) else {
        return minimal_reject(control_id, timestamp, "the message could not be read as HL7");
    };
    let built = match outcome {
        Ingested::Accepted { .. } | Ingested::Duplicate { .. } => {
            AckBuilder::new(&original, AckCode::ApplicationAccept, control_id, timestamp)
                .version(VERSION)
                .build()
        }
        Ingested::Quarantined { reason, location, .. } => {
            let (code, ack_code) =
                if reason.contains("carries no results") || reason.contains("not an HL7 message") {
                    (ErrorCode::UnsupportedMessageType, AckCode::ApplicationReject)
                } else if reason.contains("no specimen") || reason.contains("specimen id") {
                    (ErrorCode::UnknownKeyIdentifier, AckCode::ApplicationError)
                } else if reason.contains("not mapped") || reason.contains("unknown instrument") {
                    (ErrorCode::TableValueNotFound, AckCode::ApplicationError)
                } else {
                    (ErrorCode::ApplicationInternalError, AckCode::ApplicationError)
                };
            let mut err = ErrSegment::new(code, Severity::Error)
                .diagnostic(reason.clone())
                .user_message(reason.clone());
            if let Some((seg, seq)) = location.split_once(' ')
                && let Ok(seq) = seq.parse::<usize>()
            {
                err = err.location(ErrorLocation::new(seg, seq));
            }
            AckBuilder::new(&original, ack_code, control_id, timestamp)
                .version(VERSION)
                .text(truncate(reason, 80))
                .error(err)
                .build()
        }
    };
    built.unwrap_or_else(|_| {
        minimal_reject(control_id, timestamp, "the acknowledgement could not be built")
    })
}

/// An AR (application reject) for a message Cuvette could not take now — a framing error or a
/// database failure — so the sender resends it (HL7 v2.5.1 §2.9.2: AR asks for a retry).
pub fn reject(raw: &[u8], reason: &str, control_id: &str, timestamp: &str) -> Vec<u8> {
    let Ok(original) = Message::parse(raw) else {
        return minimal_reject(control_id, timestamp, reason);
    };
    let err = ErrSegment::new(ErrorCode::ApplicationInternalError, Severity::Error)
        .diagnostic(reason.to_owned());
    AckBuilder::new(&original, AckCode::ApplicationReject, control_id, timestamp)
        .version(VERSION)
        .text(truncate(reason, 80))
        .error(err)
        .build()
        .unwrap_or_else(|_| minimal_reject(control_id, timestamp, reason))
}

/// A control id and timestamp for something Cuvette sends now.
pub fn stamp(lab: &Lab) -> (String, String) {
    let now = lab.now();
    (format!("CUV{}", now.as_microsecond()), now.strftime("%Y%m%d%H%M%S+0000").to_string())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// An AR for bytes with no usable MSH: there is nothing to echo, so MSA-2 stays empty.
fn minimal_reject(control_id: &str, timestamp: &str, why: &str) -> Vec<u8> {
    MessageBuilder::new()
        .segment(
            SegmentBuilder::new("MSH")
                .field(3, SENDING_APPLICATION)
                .field(4, SENDING_FACILITY)
                .field(7, timestamp)
                .field(9, FieldValue::components(["ACK"]))
                .field(10, control_id)
                .field(11, "P")
                .field(12, "2.5.1"),
        )
        .segment(SegmentBuilder::new("MSA").field(1, "AR").field(3, why))
        .finish()
        .unwrap_or_else(|_| format!("MSH|^~\\&|{SENDING_APPLICATION}|{SENDING_FACILITY}|||{timestamp}||ACK|{control_id}|P|2.5.1\rMSA|AR\r").into_bytes())
}
