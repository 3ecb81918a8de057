//! HL7 v2 to and from the lab: ORU^R01 results from instruments, OML^O21 and ORM^O01 orders
//! from the EHR, and the acknowledgements for both (ACK; ORL^O22 and ORR^O02 for orders);
//! analyzers' host queries (QBP^Q11) answered with RSP^K11.
//! Results going out to the EHR are built in [`super::outbound`].

use cuvette_hl7::{
    AckBuilder, AckCode, AckMode, ErrSegment, ErrorCode, ErrorLocation, FieldValue, Message,
    MessageBuilder, Msh, Segment, SegmentBuilder, Severity,
};

use cuvette_domain::patient::SentIdentity;
use cuvette_store::Protocol;

use super::refusal::Hl7Error;
use super::{
    Aborted, Decoded, Encapsulated, Inbound, Ingested, OrderMessage, Place, Query, ReceivedOrder,
    ReceivedPatient, ReceivedResult, ReceivedSpecimen, Refusal, Skipped,
};
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
    let text = match as_utf8(raw) {
        Ok(text) => text,
        Err(refusal) => return Decoded { results: vec![], malformed: Some(refusal) },
    };
    let raw: &[u8] = &text;
    let message = match Message::parse(raw) {
        Ok(m) => m,
        Err(e) => {
            return Decoded {
                results: vec![],
                malformed: Some(Refusal::Unreadable { protocol: "HL7", error: e.to_string() }),
            };
        }
    };
    if let Some(refusal) = unsupported_version(&message) {
        return Decoded { results: vec![], malformed: Some(refusal) };
    }
    let kind = message.msh().message_type();
    let (code, trigger) = (kind.code().text().to_string(), kind.trigger().text().to_string());
    if code != "ORU" || trigger != "R01" {
        return Decoded {
            results: vec![],
            malformed: Some(Refusal::NotResults { message_type: format!("{code}^{trigger}") }),
        };
    }
    let mut results = Vec::new();
    let mut accession = String::new();
    let mut obx_seq = 0;
    let mut patient: Option<SentIdentity> = None;
    for segment in message.segments() {
        match segment.id() {
            b"PID" => {
                let name = segment.field(5).component(1);
                patient = Some(SentIdentity {
                    identifiers: segment
                        .field(3)
                        .repetitions()
                        .map(|r| r.component(1).text().trim().to_owned())
                        .filter(|id| !id.is_empty())
                        .collect(),
                    family_name: name.subcomponent(1).text().trim().to_owned(),
                    given_name: segment.field(5).component(2).text().trim().to_owned(),
                    birth_date: segment.field(7).component(1).text().trim().to_owned(),
                });
            }
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
                let code = segment.field(3).component(1).text().trim().to_owned();
                results.push(ReceivedResult {
                    accession: accession.clone(),
                    specimen_components: Vec::new(),
                    instrument_code: code.clone(),
                    test_attributes: Vec::new(),
                    value,
                    unit: segment.field(6).component(1).text().trim().to_owned(),
                    // HL7 v2.5.1 §2A.24 ED: source^type of data^data subtype^encoding^data.
                    encapsulated: (value_type == "ED").then(|| {
                        let ed = segment.field(5);
                        let part = |n| ed.component(n).text().trim().to_owned();
                        let name = segment.field(3).component(2).text().trim().to_owned();
                        Encapsulated {
                            name: if name.is_empty() { code.clone() } else { name },
                            type_of_data: part(2),
                            subtype: part(3),
                            encoding: part(4),
                            // Data longer than a field may hold is sent by some
                            // analyzers as repetitions, each carrying the next part.
                            data: ed
                                .repetitions()
                                .flat_map(|r| r.component(5).decoded().into_owned())
                                .collect(),
                        }
                    }),
                    reference_range: segment.field(7).text().trim().to_owned(),
                    flags,
                    status: segment.field(11).text().trim().to_owned(),
                    location: Place::record("OBX", obx_seq),
                    patient: patient.clone(),
                });
            }
            _ => {}
        }
    }
    Decoded { results, malformed: None }
}

/// The message as UTF-8, read in the character set MSH-18 declares (HL7 v2.5.1 §2.15.9.18,
/// table 0211): `UNICODE UTF-8` (or `UNICODE`) — or none, since UTF-8 holds ASCII and senders that do not
/// declare mostly send it —, `ASCII`, or `8859/1` (Latin-1, each byte its own character).
/// A byte that is not text in that set is refused where it is, never stored as `�`: a
/// patient's name read wrong is a patient's name changed.
#[allow(clippy::result_large_err)] // Built at most once per message, on its way to the log.
pub(crate) fn as_utf8(raw: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, Refusal> {
    use std::borrow::Cow;
    let declared = Message::parse(raw)
        .map(|m| m.msh().segment().field(18).component(1).text().trim().to_owned())
        .unwrap_or_default();
    let invalid = |offset: usize, charset: &str| Refusal::InvalidEncoding {
        protocol: "HL7",
        at: place_of_byte(raw, offset),
        byte: raw[offset],
        offset,
        charset: charset.to_owned(),
    };
    match declared.to_ascii_uppercase().as_str() {
        // Mindray's analyzers declare plain `UNICODE` (ISO/IEC 10646) and send UTF-8.
        "" | "UNICODE UTF-8" | "UTF-8" | "UNICODE" => match std::str::from_utf8(raw) {
            Ok(_) => Ok(Cow::Borrowed(raw)),
            Err(e) => Err(invalid(e.valid_up_to(), "UTF-8")),
        },
        "ASCII" => match raw.iter().position(|b| !b.is_ascii()) {
            None => Ok(Cow::Borrowed(raw)),
            Some(offset) => Err(invalid(offset, "ASCII")),
        },
        "8859/1" => Ok(Cow::Owned(raw.iter().map(|&b| b as char).collect::<String>().into_bytes())),
        _ => Err(Refusal::UnsupportedCharset { declared }),
    }
}

/// The segment and field a byte of an ER7 message lies in: `PID-5`, `OBX(2)-5`.
fn place_of_byte(raw: &[u8], offset: usize) -> Place {
    let start = raw[..offset].iter().rposition(|&b| b == b'\r' || b == b'\n').map_or(0, |i| i + 1);
    let segment = &raw[start..offset];
    let id = String::from_utf8_lossy(segment.get(..3).unwrap_or(segment)).into_owned();
    let id = id.trim_start_matches('\u{feff}').to_owned();
    let separator = raw.get(3).copied().unwrap_or(b'|');
    let separators = segment.iter().filter(|&&b| b == separator).count();
    // MSH-1 is the separator itself, so MSH's fields count one further.
    let field = if id == "MSH" { separators + 1 } else { separators };
    let sequence = raw[..start]
        .split(|&b| b == b'\r' || b == b'\n')
        .filter(|s| s.starts_with(id.as_bytes()))
        .count()
        + 1;
    match sequence {
        1 => Place::field(&id, field),
        n => Place::nth_field(&id, n, field),
    }
}

/// The refusal of a message whose MSH-12 names a version other than 2.x: its segments may
/// mean something else. A message that names no version is read as v2.
fn unsupported_version(message: &Message<'_>) -> Option<Refusal> {
    let msh = message.msh();
    let version = msh.version().component(1).text().trim().to_owned();
    (!version.is_empty() && !version.starts_with("2."))
        .then_some(Refusal::UnsupportedVersion { version })
}

/// OBX-5 as result text: SN as "<0.5" or "1:128", coded values by their text, the lines of
/// a TX or FT report (its repetitions, HL7 v2.5.1 §2A.79) one per line, other repeated values
/// joined by a space (and then sent to review as not a single number).
fn obx_value(segment: &cuvette_hl7::Segment<'_>, value_type: &str) -> String {
    if value_type == "ED" {
        // A file, read as one by the ingest (never as text, never copied twice).
        return String::new();
    }
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
    match value_type {
        "TX" | "FT" => reps.join("\n"),
        _ => reps.join(" "),
    }
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
    let (ack_id, timestamp) = stamp(lab);
    if is_order_message(&message_type) {
        let decoded = decode_orders(raw);
        let inbound = Inbound {
            protocol: Protocol::Hl7,
            channel,
            peer,
            sender: &sender,
            control_id: control_id.as_deref(),
            message_type: &message_type,
            raw,
            results: Vec::new(),
            malformed: None,
            replay_of: None,
            replayed: false,
        };
        let make_ack = |outcome: &Ingested| order_ack(raw, &decoded, outcome, &ack_id, &timestamp);
        return lab.ingest_orders(&inbound, &decoded, &make_ack).await;
    }
    let decoded = decode_results(raw);
    let inbound = Inbound {
        protocol: Protocol::Hl7,
        channel,
        peer,
        sender: &sender,
        control_id: control_id.as_deref(),
        message_type: &message_type,
        raw,
        results: decoded.results,
        malformed: decoded.malformed,
        replay_of: None,
        replayed: false,
    };
    let make_ack = |outcome: &Ingested| ack(raw, outcome, &ack_id, &timestamp);
    lab.ingest(&inbound, &make_ack).await
}

/// Logs the start of a message whose MLLP frame was cut off (`how`: the connection closed,
/// the sender fell silent) with outcome `aborted`. Nothing in it is posted — the segments
/// after the cut, results among them, never arrived — and no acknowledgement was sent, so the
/// sender sends the message again (MLLP Release 2: a sender resends what was not
/// acknowledged).
pub async fn log_aborted(
    lab: &Lab,
    partial: &[u8],
    how: &str,
    channel: &str,
    peer: &str,
) -> AppResult<i64> {
    let parsed = Message::parse(partial).ok();
    let (sender, message_type) = match &parsed {
        Some(m) => {
            let kind = m.msh().message_type();
            (sender_of(m), format!("{}^{}", kind.code().text(), kind.trigger().text()))
        }
        None => (String::new(), "unreadable".to_owned()),
    };
    let control_id = parsed.as_ref().map(|m| m.msh().control_id().text().trim().to_owned());
    let accession = decode_results(partial).results.first().map(|r| r.accession.clone());
    let detail = format!(
        "frame cut off after {} bytes ({how}){}: nothing in it was stored and nothing acknowledged; the sender sends the message again",
        partial.len(),
        control_id
            .filter(|c| !c.is_empty())
            .map(|c| format!(", control id {c}"))
            .unwrap_or_default()
    );
    lab.log_aborted(Aborted {
        protocol: Protocol::Hl7,
        channel,
        peer,
        sender,
        message_type,
        raw: partial.to_vec(),
        detail,
        accession,
    })
    .await
}

/// The application acknowledgement for an outcome (HL7 v2.5.1 §2.9.2): AA when stored, with a
/// warning ERR (ERR-4 `W`) per result whose status says it has no value — AE with one ERR per
/// result kept in the quarantine when the others were stored; when
/// quarantined, one ERR per reason ([`Refusal::hl7_error`]: ERR-2 the place, ERR-3 the table
/// 0357 code, ERR-7/8 the reason) under AE, or AR when Cuvette does not process the message
/// at all (unreadable, or a type that carries no results). MSA-2 echoes MSH-10; MSA-3 is the
/// first reason, cut to 80 characters. [`replies`] decides what of it is sent.
pub fn ack(raw: &[u8], outcome: &Ingested, control_id: &str, timestamp: &str) -> Vec<u8> {
    let Ok(original) = Message::parse(raw) else {
        return minimal_reject(control_id, timestamp, "the message could not be read as HL7");
    };
    let built = match outcome {
        Ingested::Accepted { skipped, held, .. } => {
            // Results kept in the quarantine while the others were stored: AE, one ERR each.
            let errors = errors(outcome);
            let mut ack = AckBuilder::new(&original, ack_code(&errors), control_id, timestamp)
                .version(VERSION);
            if let Some(first) = held.first() {
                ack = ack.text(truncate(&first.to_string(), 80));
            }
            for (_, err) in errors {
                ack = ack.error(err);
            }
            for result in skipped {
                ack = ack.error(warning(result));
            }
            ack.build()
        }
        Ingested::Duplicate { .. } | Ingested::Ordered { .. } => {
            AckBuilder::new(&original, AckCode::ApplicationAccept, control_id, timestamp)
                .version(VERSION)
                .build()
        }
        Ingested::Quarantined { reason, .. } => {
            let errors = errors(outcome);
            let mut ack = AckBuilder::new(&original, ack_code(&errors), control_id, timestamp)
                .version(VERSION)
                .text(truncate(reason, 80));
            for (_, err) in errors {
                ack = ack.error(err);
            }
            ack.build()
        }
    };
    built.unwrap_or_else(|_| {
        minimal_reject(control_id, timestamp, "the acknowledgement could not be built")
    })
}

/// What to send back on the connection for a committed message, in order, in the mode the
/// message asked for (HL7 v2.5.1 §2.9; MSH-15/16).
///
/// Original mode (MSH-15 and MSH-16 empty): the application acknowledgement `application`
/// (AA, AE or AR, as committed with the message). Enhanced mode: first the accept
/// acknowledgement, when MSH-15 asks for it — CA, as the message is stored, or CR with the
/// ERR when Cuvette does not process messages like it (the refusals that are AR in original
/// mode; no application acknowledgement follows one) — then `application` when MSH-16 asks
/// for it (AL always, ER when it is AE or AR, SU when it is AA). Both go on the connection
/// the message came on, the accept acknowledgement first.
pub fn replies(
    raw: &[u8],
    outcome: &Ingested,
    application: Vec<u8>,
    control_id: &str,
    timestamp: &str,
) -> Vec<Vec<u8>> {
    let Ok(original) = Message::parse(raw) else { return vec![application] };
    let AckMode::Enhanced { accept, application: wanted } = AckMode::of(&original.msh()) else {
        return vec![application];
    };
    let errors = errors(outcome);
    // A retransmission is answered as the original was: its stored acknowledgement says how.
    let code = match outcome {
        Ingested::Duplicate { .. } => Message::parse(&application)
            .ok()
            .and_then(|a| a.get("MSA-1").and_then(|c| AckCode::from_code(c.raw())))
            .unwrap_or(AckCode::ApplicationAccept),
        _ => ack_code(&errors),
    };
    let mut out = Vec::new();
    // The accept acknowledgement has its own control id: the application one carries
    // `control_id`.
    let accept_id = format!("{control_id}C");
    if code == AckCode::ApplicationReject {
        if accept.wants(false) {
            let mut ack = AckBuilder::new(&original, AckCode::CommitReject, &accept_id, timestamp)
                .version(VERSION);
            for (_, err) in errors {
                ack = ack.error(err);
            }
            out.push(ack.build().unwrap_or_else(|_| {
                minimal_reject(control_id, timestamp, "the acknowledgement could not be built")
            }));
        }
        return out;
    }
    if accept.wants(true) {
        let ack = AckBuilder::new(&original, AckCode::CommitAccept, &accept_id, timestamp)
            .version(VERSION)
            .build();
        out.extend(ack.ok());
    }
    if wanted.wants(code == AckCode::ApplicationAccept) {
        out.push(application);
    }
    out
}

/// An AR (application reject) for a message Cuvette could not take now — a framing error or a
/// database failure — so the sender resends it (HL7 v2.5.1 §2.9.2: AR asks for a retry). In
/// enhanced mode it is a CR (commit reject), sent whatever MSH-15 says: a message that was not
/// stored is never left unanswered, or the sender would take silence for success.
pub fn reject(raw: &[u8], reason: &str, control_id: &str, timestamp: &str) -> Vec<u8> {
    let Ok(original) = Message::parse(raw) else {
        return minimal_reject(control_id, timestamp, reason);
    };
    let err = ErrSegment::new(ErrorCode::ApplicationInternalError, Severity::Error)
        .diagnostic(reason.to_owned());
    // Not stored: in enhanced mode that is a commit reject, which the sender also retries.
    let code = match AckMode::of(&original.msh()) {
        AckMode::Original => AckCode::ApplicationReject,
        AckMode::Enhanced { .. } => AckCode::CommitReject,
    };
    AckBuilder::new(&original, code, control_id, timestamp)
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

// ---------------------------------------------------------------------------------------------
// Orders from the EHR

/// Whether a message type (`OML^O21`) is an order Cuvette takes: OML^O21 (v2.5+ laboratory
/// order) or ORM^O01 (the older general order most EHRs still send).
pub fn is_order_message(message_type: &str) -> bool {
    matches!(message_type, "OML^O21" | "ORM^O01")
}

/// Reads an OML^O21 or ORM^O01: the patient from PID and each order from an ORC with the OBR
/// after it (HL7 v2.5.1 ch. 4). Values are read as sent; [`Lab::ingest_orders`] judges them.
///
/// Fields read: PID-3 (first repetition, CX.1: the MRN), PID-5 (family^given), PID-7, PID-8;
/// ORC-1 order control, ORC-2/OBR-2 placer order number, ORC-12/OBR-16 ordering provider
/// (XCN), OBR-4 the test or panel (with its alternate identifier), the priority from TQ1-9,
/// OBR-27.6, ORC-7.6 or OBR-5, and the NTE lines after the OBR as the clinical note; and the
/// SPM after an OBR (OML^O21's specimen group): SPM-2 the EHR's specimen id, SPM-4 its type,
/// SPM-17 when it was drawn. OBRs whose SPMs carry one id are tests on one specimen.
pub fn decode_orders(raw: &[u8]) -> OrderMessage {
    let mut out = OrderMessage::default();
    let utf8 = match as_utf8(raw) {
        Ok(utf8) => utf8,
        Err(refusal) => {
            out.problem = Some(refusal);
            return out;
        }
    };
    let raw: &[u8] = &utf8;
    let message = match Message::parse(raw) {
        Ok(m) => m,
        Err(e) => {
            out.problem = Some(Refusal::Unreadable { protocol: "HL7", error: e.to_string() });
            return out;
        }
    };
    if let Some(refusal) = unsupported_version(&message) {
        out.problem = Some(refusal);
        return out;
    }
    let text = |v: cuvette_hl7::Component<'_>| v.text().trim().to_owned();
    let mut pids = 0;
    let (mut orcs, mut obrs, mut spms) = (0, 0, 0);
    // What the current ORC says, for an OBR that follows without its own ORC.
    let mut current: Option<ReceivedOrder> = None;
    // ORC-7.6, the priority of the ORC's quantity/timing, below TQ1-9 and OBR-27.6.
    let mut orc_priority = String::new();
    // Whether the NTEs seen now belong to the current order's OBR.
    let mut in_obr = false;
    for segment in message.segments() {
        match segment.id() {
            b"PID" => {
                pids += 1;
                if pids > 1 {
                    out.problem
                        .get_or_insert(Refusal::SecondPatient { at: Place::nth("PID", pids) });
                    continue;
                }
                let mrn = segment.field(3).repetition(1).component(1).text().trim().to_owned();
                out.patient = Some(ReceivedPatient {
                    mrn,
                    family_name: segment
                        .field(5)
                        .component(1)
                        .subcomponent(1)
                        .text()
                        .trim()
                        .to_owned(),
                    given_name: text(segment.field(5).component(2)),
                    birth_date: segment.field(7).text().trim().to_owned(),
                    sex: segment.field(8).text().trim().to_owned(),
                });
            }
            b"ORC" => {
                orcs += 1;
                if let Some(done) = current.take() {
                    out.orders.push(done);
                }
                current = Some(ReceivedOrder {
                    control: text(segment.field(1).component(1)),
                    placer_number: text(segment.field(2).component(1)),
                    provider: provider_text(&segment, 12),
                    orc: orcs,
                    ..ReceivedOrder::default()
                });
                orc_priority = text(segment.field(7).component(6));
                in_obr = false;
            }
            b"TQ1" => {
                let priority = text(segment.field(9).component(1));
                if let Some(o) = current.as_mut().filter(|_| !priority.is_empty()) {
                    o.priority = priority;
                }
            }
            b"OBR" => {
                obrs += 1;
                let order = match current.take() {
                    Some(o) if o.obr == 0 => o,
                    Some(previous) => {
                        // A second OBR under one ORC: a new order with the same control.
                        let next = ReceivedOrder {
                            control: previous.control.clone(),
                            orc: previous.orc,
                            provider: previous.provider.clone(),
                            priority: previous.priority.clone(),
                            ..ReceivedOrder::default()
                        };
                        out.orders.push(previous);
                        next
                    }
                    None => {
                        out.problem
                            .get_or_insert(Refusal::OrphanObr { at: Place::nth("OBR", obrs) });
                        continue;
                    }
                };
                let service = segment.field(4);
                let mut order = ReceivedOrder {
                    obr: obrs,
                    code: text(service.component(1)),
                    code_text: text(service.component(2)),
                    coding_system: text(service.component(3)),
                    alternate_code: text(service.component(4)),
                    ..order
                };
                if order.placer_number.is_empty() {
                    order.placer_number = text(segment.field(2).component(1));
                }
                if order.provider.is_empty() {
                    order.provider = provider_text(&segment, 16);
                }
                // TQ1-9 (read above: the timing group comes before the OBR in OML^O21) outranks
                // OBR-27.6, then ORC-7.6, then the OBR-5 of older versions.
                for candidate in [
                    text(segment.field(27).component(6)),
                    orc_priority.clone(),
                    text(segment.field(5).component(1)),
                ] {
                    if order.priority.is_empty() {
                        order.priority = candidate;
                    }
                }
                current = Some(order);
                in_obr = true;
            }
            b"NTE" if in_obr => {
                if let Some(o) = current.as_mut() {
                    let line = segment.field(3).text().trim().to_owned();
                    if !line.is_empty() {
                        if !o.note.is_empty() {
                            o.note.push('\n');
                        }
                        o.note.push_str(&line);
                    }
                }
            }
            b"NTE" => {}
            b"SPM" => {
                spms += 1;
                in_obr = false;
                let at = Place::nth("SPM", spms);
                let Some(order) = current.as_mut().filter(|o| o.obr != 0) else {
                    out.problem.get_or_insert(Refusal::OrphanSpm { at });
                    continue;
                };
                if order.specimen.is_some() {
                    out.problem.get_or_insert(Refusal::SecondSpecimen { at });
                    continue;
                }
                // SPM-2 is an EIP: the placer's id, then the filler's, each an EI whose first
                // subcomponent is the id.
                let id = segment.field(2);
                let placer = id.component(1).subcomponent(1).text().trim().to_owned();
                let filler = id.component(2).subcomponent(1).text().trim().to_owned();
                let kind = segment.field(4);
                order.specimen = Some(ReceivedSpecimen {
                    id: if placer.is_empty() { filler } else { placer },
                    type_code: text(kind.component(1)),
                    type_text: text(kind.component(2)),
                    collected: text(segment.field(17).component(1)),
                    spm: spms,
                });
            }
            // Segments between the OBR and its notes end the notes (OBX, DG1, …).
            _ => in_obr = false,
        }
    }
    if let Some(done) = current {
        out.orders.push(done);
    }
    out
}

/// A person (XCN) as text: "prefix given middle family suffix degree (id)".
fn provider_text(segment: &Segment<'_>, field: usize) -> String {
    let xcn = segment.field(field).repetition(1);
    let part = |n: usize| xcn.component(n).subcomponent(1).text().trim().to_owned();
    let name: Vec<String> =
        [6, 3, 4, 2, 5, 7].into_iter().map(part).filter(|p| !p.is_empty()).collect();
    let id = part(1);
    match (name.is_empty(), id.is_empty()) {
        (true, _) => String::new(),
        (false, true) => name.join(" "),
        (false, false) => format!("{} ({id})", name.join(" ")),
    }
}

/// The answer to an order message: ORL^O22 for OML^O21, ORR^O02 for ORM^O01 (both carry the
/// accession numbers, which a bare ACK could not).
///
/// Accepted: `MSA|AA`, the patient (PID-3 and PID-5 as sent), and for each specimen Cuvette
/// created an `ORC|OK|<placer number>|<accession>^CUVETTE` with its `OBR` (OBR-4 as sent):
/// an order whose tests need two tubes gets two ORC/OBR pairs with the same placer number.
/// An order the EHR sent with its specimen (SPM) is on that one specimen, and its OBR is
/// followed by an `SPM` whose SPM-2 pairs the EHR's id with the accession
/// (`<id>^<accession>&CUVETTE`), SPM-4 and SPM-17 as sent.
/// Quarantined: `MSA|AE` (`AR` when unreadable) and the ERR of the refusal, as in [`ack`].
pub fn order_ack(
    raw: &[u8],
    decoded: &OrderMessage,
    outcome: &Ingested,
    control_id: &str,
    timestamp: &str,
) -> Vec<u8> {
    let Ok(original) = Message::parse(raw) else {
        return minimal_reject(control_id, timestamp, "the message could not be read as HL7");
    };
    let msh = original.msh();
    let (code, trigger, structure) = match msh.message_type().trigger().text().as_ref() {
        "O21" => ("ORL", "O22", "ORL_O22"),
        _ => ("ORR", "O02", "ORR_O02"),
    };
    let header = reply_header(&msh, [code, trigger, structure], control_id, timestamp);
    let errors = errors(outcome);
    let ack_code = ack_code(&errors);
    let mut msa = SegmentBuilder::new("MSA").field(1, ack_code.code()).field(2, acknowledged(&msh));
    if let Ingested::Quarantined { reason, .. } = outcome {
        msa.set(3, truncate(reason, 80));
    }
    let separators = original.separators();
    let mut reply = MessageBuilder::with_separators(separators).segment(header).segment(msa);
    for (_, err) in &errors {
        reply.push(err.segment());
    }
    if let Ingested::Ordered { orders, .. } = outcome {
        if let Some(pid) = original.segment("PID") {
            reply.push(
                SegmentBuilder::new("PID")
                    .field(1, "1")
                    .field(3, pid.field(3))
                    .field(5, pid.field(5)),
            );
        }
        let services: Vec<Segment<'_>> = original.segments_with_id("OBR").collect();
        let specimens: Vec<Segment<'_>> = original.segments_with_id("SPM").collect();
        let mut set_id = 0;
        for (placed, asked) in orders.iter().zip(&decoded.orders) {
            let service = services.get(asked.obr.wrapping_sub(1)).map(|obr| obr.field(4));
            for specimen in &placed.specimens {
                set_id += 1;
                let filler =
                    FieldValue::components([specimen.accession.as_str(), SENDING_APPLICATION]);
                reply.push(
                    SegmentBuilder::new("ORC")
                        .field(1, "OK")
                        .field(2, asked.placer_number.as_str())
                        .field(3, filler.clone()),
                );
                let mut obr = SegmentBuilder::new("OBR")
                    .field(1, set_id.to_string())
                    .field(2, asked.placer_number.as_str())
                    .field(3, filler);
                if let Some(service) = service {
                    obr.set(4, service);
                }
                reply.push(obr);
                if let Some(sent) = &asked.specimen {
                    // SPM-2 as an EIP: the EHR's id, then Cuvette's accession as the filler's.
                    let id = FieldValue::from_parts(vec![vec![
                        vec![sent.id.clone().into_bytes()],
                        vec![specimen.accession.clone().into_bytes(), SENDING_APPLICATION.into()],
                    ]]);
                    let mut spm =
                        SegmentBuilder::new("SPM").field(1, set_id.to_string()).field(2, id);
                    if let Some(original) = specimens.get(sent.spm.wrapping_sub(1)) {
                        spm.set(4, original.field(4));
                        spm.set(17, original.field(17));
                    }
                    reply.push(spm);
                }
            }
        }
    }
    reply.finish().unwrap_or_else(|_| {
        minimal_reject(control_id, timestamp, "the acknowledgement could not be built")
    })
}

/// One ERR per reason a quarantined message was refused for, with what each says about the
/// acknowledgement; none for a message that was taken.
fn errors(outcome: &Ingested) -> Vec<(Hl7Error, ErrSegment)> {
    outcome
        .refusals()
        .into_iter()
        .map(|refusal| {
            let answer = refusal.hl7_error();
            let err = err_segment(&answer, &refusal.to_string());
            (answer, err)
        })
        .collect()
}

/// MSA-1 for a message with these errors: AA without any, AR when one of them means Cuvette
/// does not process the message at all, else AE.
fn ack_code(errors: &[(Hl7Error, ErrSegment)]) -> AckCode {
    if errors.is_empty() {
        AckCode::ApplicationAccept
    } else if errors.iter().any(|(e, _)| e.ack == AckCode::ApplicationReject) {
        AckCode::ApplicationReject
    } else {
        AckCode::ApplicationError
    }
}

/// The warning for a result taken without a value (AA with ERR-4 `W`, ERR-3 `0` message
/// accepted): ERR-2 its OBX-11, the status that says there is no value.
fn warning(result: &Skipped) -> ErrSegment {
    let text = format!("not stored: {result} (no value)");
    let at = &result.at;
    ErrSegment::new(ErrorCode::MessageAccepted, Severity::Warning)
        .location(ErrorLocation::new(at.segment_id(), at.sequence()).field(11))
        .diagnostic(text.clone())
        .user_message(text)
}

/// The ERR segment for a refusal (HL7 v2.5.1 §2.14.5): ERR-2 where, ERR-3 the table 0357
/// code, ERR-4 `E`, ERR-7 and ERR-8 the reason.
fn err_segment(answer: &Hl7Error, reason: &str) -> ErrSegment {
    let err = ErrSegment::new(answer.code, Severity::Error).diagnostic(reason).user_message(reason);
    match &answer.location {
        Some(at) => err.location(at.clone()),
        None => err,
    }
}

// ---------------------------------------------------------------------------------------------
// Host queries from analyzers

/// `message_type` of a logged HL7 host query.
pub const QUERY_MESSAGE_TYPE: &str = "QBP^Q11";

/// Whether a message is an analyzer's host query: QBP^Q11 (IHE LAW "query by specimen").
pub fn is_query(raw: &[u8]) -> bool {
    Message::parse(raw).is_ok_and(|m| {
        let kind = m.msh().message_type();
        kind.code().text() == "QBP" && kind.trigger().text() == "Q11"
    })
}

/// Answers an analyzer's host query (QBP^Q11, IHE LAW) with RSP^K11: which tests to run on the
/// specimen QPD-3 names — its accession number, or the id the EHR gave it (SPM-2) — as the
/// ASTM host query is answered ([`super::astm::answer_query`]): the analyzer's codes, through
/// the code map of the HL7 instrument registered as MSH-3, for the specimen's tests still
/// waiting for a result once it is received.
///
/// The answer: `MSH` (RSP^K11^RSP_K11), `MSA` (AA, MSA-2 the query's MSH-10), `QAK` (QAK-1 the
/// query tag QPD-2, QAK-2 `OK` with tests to run, `NF` with none — a specimen Cuvette does not
/// know, has not received, or has nothing for this analyzer — QAK-3 the query name QPD-1),
/// `QPD` as asked; then, with `OK`, the work order as the response's rows: `RDF` naming the
/// one column (`@OBR.4`, the test) and one `RDT` per test to run, in the analyzer's code. An
/// unknown or disabled sender, or a query without QPD-3, is answered AE with its ERR and
/// QAK-2 `AE`. The query and its answer are committed to the message log (outcome `query`)
/// before the answer is returned.
///
/// Returns `None` when the message is not a query ([`is_query`]): [`receive`] it instead.
pub async fn answer_query(
    lab: &Lab,
    raw: &[u8],
    channel: &str,
    peer: &str,
) -> AppResult<Option<Vec<u8>>> {
    if !is_query(raw) {
        return Ok(None);
    }
    let started = lab.now_at();
    let Ok(query) = Message::parse(raw) else { return Ok(None) };
    let sender = sender_of(&query);
    let qpd = query.segment("QPD");
    let part = |field: usize| {
        qpd.as_ref()
            .map(|q| q.field(field).component(1).text().trim().to_owned())
            .unwrap_or_default()
    };
    let asked = part(3);
    let store = &lab.store;
    let instrument = store.instrument_by_sender(Protocol::Hl7, &sender).await?;
    let (answer, detail): (QueryAnswer, String) = match instrument {
        Some(i) if !i.active => {
            (QueryAnswer::Refused(QueryRefusal::Disabled { name: i.name.clone() }), String::new())
        }
        None => (
            QueryAnswer::Refused(QueryRefusal::UnknownSender { sender: sender.clone() }),
            String::new(),
        ),
        Some(_) if asked.is_empty() => {
            (QueryAnswer::Refused(QueryRefusal::NoSpecimen), String::new())
        }
        Some(instrument) => {
            let codes = store.test_codes(instrument.id).await?;
            match super::astm::queried_specimen(lab, &asked).await? {
                Some(specimen) => {
                    let open = super::astm::pending_codes(lab, &specimen, &codes).await?;
                    let detail = if open.is_empty() {
                        format!(
                            "asks for {asked}; answered NF: nothing to run on {} for {}",
                            specimen.accession, instrument.name
                        )
                    } else {
                        format!(
                            "asks for {asked}; answered with {}: {}",
                            specimen.accession,
                            open.join(", ")
                        )
                    };
                    if open.is_empty() {
                        (QueryAnswer::NotFound, detail)
                    } else {
                        (QueryAnswer::Found { accession: specimen.accession, codes: open }, detail)
                    }
                }
                None => (
                    QueryAnswer::NotFound,
                    format!(
                        "asks for {asked}; answered NF: no specimen has this accession number or EHR specimen id"
                    ),
                ),
            }
        }
    };
    let detail = match &answer {
        QueryAnswer::Refused(why) => format!("asks for {asked:?}; answered AE: {why}"),
        _ => detail,
    };
    let (control_id, timestamp) = stamp(lab);
    let rsp = query_response(&query, &answer, &control_id, &timestamp);
    let mut tx = store.begin().await?;
    let record = Query {
        protocol: Protocol::Hl7,
        channel,
        peer,
        sender,
        message_type: QUERY_MESSAGE_TYPE,
        raw,
        detail,
        answer: Some(rsp.clone()),
        accession: match &answer {
            QueryAnswer::Found { accession, .. } => Some(accession.clone()),
            _ => Some(asked.clone()).filter(|a| !a.is_empty()),
        },
        started,
    }
    .into_record();
    lab.log_message(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Some(rsp))
}

/// What Cuvette answers a host query.
enum QueryAnswer {
    /// The specimen's tests to run, by the analyzer's codes (QAK-2 `OK`).
    Found { accession: String, codes: Vec<String> },
    /// Nothing to run on it, or no such specimen (QAK-2 `NF`).
    NotFound,
    /// A query Cuvette cannot answer (MSA-1 and QAK-2 `AE`).
    Refused(QueryRefusal),
}

/// Why a host query is answered AE.
#[derive(Debug, Clone, PartialEq, Eq)]
enum QueryRefusal {
    /// MSH-3 names no HL7 instrument on file.
    UnknownSender { sender: String },
    /// The instrument is on file but disabled.
    Disabled { name: String },
    /// QPD-3 is empty.
    NoSpecimen,
}

impl std::fmt::Display for QueryRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryRefusal::UnknownSender { sender } => write!(
                f,
                "unknown analyzer {sender:?}: add it under Interfaces (HL7, sender {sender:?}) with its test codes"
            ),
            QueryRefusal::Disabled { name } => write!(f, "{name} is disabled"),
            QueryRefusal::NoSpecimen => {
                f.write_str("the query names no specimen (QPD-3, the specimen id)")
            }
        }
    }
}

impl QueryRefusal {
    /// ERR-2 and ERR-3 for the refusal.
    fn error(&self) -> ErrSegment {
        let (code, location) = match self {
            QueryRefusal::UnknownSender { .. } => {
                (ErrorCode::TableValueNotFound, ErrorLocation::new("MSH", 1).field(3))
            }
            QueryRefusal::Disabled { .. } => {
                (ErrorCode::ApplicationInternalError, ErrorLocation::new("MSH", 1).field(3))
            }
            QueryRefusal::NoSpecimen => {
                (ErrorCode::RequiredFieldMissing, ErrorLocation::new("QPD", 1).field(3))
            }
        };
        let text = self.to_string();
        ErrSegment::new(code, Severity::Error)
            .location(location)
            .diagnostic(text.clone())
            .user_message(text)
    }
}

/// The MSH of a reply (ORL/ORR, RSP): addressed back to the sender, from the receiver the
/// message named (or Cuvette when it named none), in the message's processing mode.
fn reply_header(
    msh: &Msh<'_>,
    message_type: [&str; 3],
    control_id: &str,
    timestamp: &str,
) -> SegmentBuilder {
    let processing_id = if msh.processing_id().is_empty() {
        FieldValue::text("P")
    } else {
        msh.processing_id().into()
    };
    let mut header = SegmentBuilder::new("MSH")
        .field(5, msh.sending_application())
        .field(6, msh.sending_facility())
        .field(7, timestamp)
        .field(9, FieldValue::components(message_type))
        .field(10, control_id)
        .field(11, processing_id)
        .field(12, VERSION);
    if msh.receiving_application().is_empty() {
        header.set(3, SENDING_APPLICATION);
        header.set(4, SENDING_FACILITY);
    } else {
        header.set(3, msh.receiving_application());
        header.set(4, msh.receiving_facility());
    }
    header
}

/// MSA-2: the control id (MSH-10) of the message answered, null when it had none.
fn acknowledged(msh: &Msh<'_>) -> FieldValue {
    if msh.control_id().is_empty() { FieldValue::null() } else { msh.control_id().into() }
}

/// The RSP^K11 for a query (see [`answer_query`]).
fn query_response(
    query: &Message<'_>,
    answer: &QueryAnswer,
    control_id: &str,
    timestamp: &str,
) -> Vec<u8> {
    let msh = query.msh();
    let header = reply_header(&msh, ["RSP", "K11", "RSP_K11"], control_id, timestamp);
    let (ack, status) = match answer {
        QueryAnswer::Found { .. } => (AckCode::ApplicationAccept, "OK"),
        QueryAnswer::NotFound => (AckCode::ApplicationAccept, "NF"),
        QueryAnswer::Refused(_) => (AckCode::ApplicationError, "AE"),
    };
    let mut msa = SegmentBuilder::new("MSA").field(1, ack.code()).field(2, acknowledged(&msh));
    if let QueryAnswer::Refused(why) = answer {
        msa.set(3, truncate(&why.to_string(), 80));
    }
    let mut reply =
        MessageBuilder::with_separators(query.separators()).segment(header).segment(msa);
    if let QueryAnswer::Refused(why) = answer {
        reply.push(why.error().segment());
    }
    let qpd = query.segment("QPD");
    let mut qak = SegmentBuilder::new("QAK").field(2, status);
    if let Some(qpd) = &qpd {
        qak.set(1, qpd.field(2));
        qak.set(3, qpd.field(1));
    }
    reply.push(qak);
    // QPD echoed as asked (the response names the query it answers).
    let mut echo = SegmentBuilder::new("QPD");
    if let Some(qpd) = &qpd {
        for n in 1..=qpd.field_count() {
            echo.set(n, qpd.field(n));
        }
    }
    reply.push(echo);
    if let QueryAnswer::Found { codes, .. } = answer {
        // The work order as the response's rows (RSP_K11's row definition group): one
        // column, the test by the analyzer's code; the specimen is the one QPD-3 names.
        reply.push(
            SegmentBuilder::new("RDF")
                .field(1, "1")
                .field(2, FieldValue::components(["@OBR.4", "CWE", "250"])),
        );
        for code in codes {
            reply
                .push(SegmentBuilder::new("RDT").field(1, FieldValue::components([code.as_str()])));
        }
    }
    reply.finish().unwrap_or_else(|_| {
        minimal_reject(control_id, timestamp, "the query response could not be built")
    })
}
