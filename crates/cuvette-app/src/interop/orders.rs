//! Orders from the EHR (OML^O21, ORM^O01): the patient found by MRN or registered from the
//! PID, every order placed with the placer's number, or the message quarantined with the field
//! at fault and nothing placed.

use cuvette_domain::Role;
use cuvette_domain::patient::{Mrn, Sex, parse_birth_date};
use cuvette_store::{InstrumentRow, MessageOutcome, Quarantine};

use super::message_log::{Inbound, Ingested, MessageRecord};
use super::refusal::{Place, Refusal};
use crate::orders::{PreparedOrder, SentSpecimen};
use crate::patients::NAME_LEN_MAX;
use crate::{Actor, AppError, AppResult, Lab, PlaceOrder};

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
    /// The specimen the EHR drew for it (the SPM after its OBR), when it sent one.
    pub specimen: Option<ReceivedSpecimen>,
}

/// A specimen as the EHR sent it with an order (HL7 SPM, OML^O21), as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedSpecimen {
    /// The EHR's id for it (SPM-2: the placer's id, else the filler's).
    pub id: String,
    /// Specimen type code (SPM-4.1, HL7 table 0487 or SNOMED CT).
    pub type_code: String,
    /// Its text (SPM-4.2).
    pub type_text: String,
    /// When it was drawn (SPM-17.1, an HL7 date and time).
    pub collected: String,
    /// Which SPM of the message this is (from 1), for error locations.
    pub spm: usize,
}

/// A decoded order message: one patient and their orders.
#[derive(Debug, Clone, Default)]
pub struct OrderMessage {
    /// The patient (PID), when there is one.
    pub patient: Option<ReceivedPatient>,
    /// The orders, in message order.
    pub orders: Vec<ReceivedOrder>,
    /// A problem with the message's structure (two patients, an OBR without its ORC).
    pub problem: Option<Refusal>,
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
    /// Each order, with the specimen the EHR sent it on (an index into `specimens`).
    orders: Vec<(PreparedOrder, Option<usize>)>,
    /// The specimens the EHR sent, each once, in message order.
    specimens: Vec<SentSpecimen>,
}

/// The longest specimen id an EHR may send (SPM-2); an EI's id is at most 199 characters in
/// HL7 v2.5.1, real ones are barcodes.
pub const PLACER_SPECIMEN_ID_LEN_MAX: usize = 50;

fn refuse<T>(refusal: Refusal) -> AppResult<Result<T, Refusal>> {
    Ok(Err(refusal))
}

/// Reads an HL7 date (DT, or the date of a DTM): `YYYYMMDD`, anything after it ignored.
fn hl7_date(text: &str) -> Option<jiff::civil::Date> {
    let t = text.trim();
    let digits = t.get(..8).filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
    let (y, m, d) =
        (digits[..4].parse().ok()?, digits[4..6].parse().ok()?, digits[6..].parse().ok()?);
    jiff::civil::Date::new(y, m, d).ok()
}

/// Reads an HL7 date and time (DTM) to the minute or finer: `YYYYMMDDHHMM[SS[.S…]][+/-ZZZZ]`;
/// without an offset it is the lab's local time.
fn hl7_datetime(text: &str, zone: &jiff::tz::TimeZone) -> Option<jiff::Timestamp> {
    let t = text.trim();
    let (local, offset) = match t.find(['+', '-']) {
        Some(i) => (&t[..i], Some(&t[i..])),
        None => (t, None),
    };
    let (digits, fraction) = local.split_once('.').unwrap_or((local, ""));
    let all_digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if !(digits.len() == 12 || digits.len() == 14)
        || !all_digits(digits)
        || fraction.len() > 4
        || !all_digits(fraction)
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits[r].parse::<i8>().ok();
    let date = hl7_date(digits)?;
    let second = if digits.len() == 14 { n(12..14)? } else { 0 };
    let time = jiff::civil::Time::new(n(8..10)?, n(10..12)?, second, 0).ok()?;
    let civil = date.to_datetime(time);
    match offset {
        None => zone.to_ambiguous_timestamp(civil).compatible().ok(),
        Some(o) => {
            let sign: i32 = if o.starts_with('-') { -1 } else { 1 };
            let hhmm = o.get(1..5).filter(|d| d.len() == 4 && o.len() == 5)?;
            let (h, m): (i32, i32) = (hhmm[..2].parse().ok()?, hhmm[2..].parse().ok()?);
            let offset = jiff::tz::Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()?;
            offset.to_timestamp(civil).ok()
        }
    }
}

/// The Cuvette code an order code stands for: an orderable measured test with this LOINC, else
/// an orderable calculation with it, else a panel with it, else the code itself when it is a
/// Cuvette test or panel code. `Err` lists the entries a LOINC matches when it matches several.
fn catalog_code(
    catalog: &cuvette_domain::Catalog,
    code: &str,
) -> Result<Option<String>, Vec<String>> {
    let code = code.trim();
    if code.is_empty() {
        return Ok(None);
    }
    let tests = |calculated: bool| -> Vec<&str> {
        catalog
            .tests()
            .filter(|t| t.orderable && t.loinc == code && t.is_calculated() == calculated)
            .map(|t| t.code.as_str())
            .collect()
    };
    let panels: Vec<&str> =
        catalog.panels().filter(|p| p.loinc == code).map(|p| p.code.as_str()).collect();
    // A LOINC names an observation: the test itself wins over a panel built around it
    // (3016-3 is TSH, not the thyroid cascade that starts with it). A measured test wins over a
    // calculation of the same observation (6301-6 is the INR the analyzer reports, not the one
    // calculated from its PT): the EHR names the calculation by its Cuvette code.
    for found in [tests(false), tests(true), panels] {
        match found.as_slice() {
            [one] => return Ok(Some((*one).to_owned())),
            [] => {}
            many => return Err(many.iter().map(|c| (*c).to_owned()).collect()),
        }
    }
    let upper = code.to_ascii_uppercase();
    let known =
        catalog.panel(&upper).is_some() || catalog.test(&upper).is_some_and(|t| t.orderable);
    Ok(known.then_some(upper))
}

/// The refusal of an order whose LOINC (OBR-4) matches several catalog entries.
fn ambiguous(obr: usize, code: &str, matches: Vec<String>) -> Refusal {
    Refusal::AmbiguousLoinc {
        at: Place::nth_field("OBR", obr, 4),
        code: code.trim().to_owned(),
        matches,
    }
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
        ack: &(dyn Fn(&Ingested) -> Vec<u8> + Sync),
    ) -> AppResult<(Ingested, Vec<u8>)> {
        let started = self.clock_micros();
        if let Some(answer) = self.stored_answer(msg, ack).await? {
            return Ok(answer);
        }
        let plan = match &msg.malformed {
            Some(refusal) => Err(refusal.clone()),
            None => self.plan_orders(msg, order).await?,
        };
        let mut tx = self.store.begin().await?;
        let (outcome, detail, accession) = match plan {
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
                let mut specimens = plan.specimens;
                for (o, sent) in &plan.orders {
                    let sent = sent.and_then(|i| specimens.get_mut(i));
                    placed.push(self.write_order(&mut tx, &actor, patient_id, o, sent).await?);
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
                (outcome, detail, accession)
            }
            Err(refusal) => (Ingested::quarantined(vec![refusal.clone()]), refusal.detail(), None),
        };
        let ack_bytes = ack(&outcome);
        let quarantined = matches!(outcome, Ingested::Quarantined { .. });
        let entry = MessageRecord::inbound(
            msg,
            if quarantined { MessageOutcome::Quarantined } else { MessageOutcome::Accepted },
            detail,
            ack_bytes.clone(),
            accession,
            0,
            quarantined.then_some(Quarantine::Open),
            started,
        );
        let Some(message_id) = self.log_message(&mut tx, &entry).await? else {
            drop(tx);
            return self.stored_answer(msg, ack).await?.ok_or_else(|| {
                AppError::Conflict("the message was received twice at once".into())
            });
        };
        if let Some(original) = msg.replay_of {
            tx.set_quarantine(original, Quarantine::Replayed).await?;
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
    ) -> AppResult<Result<OrderPlan, Refusal>> {
        let Some(system) = self.store.instrument_by_sender(msg.protocol, msg.sender).await? else {
            return refuse(Refusal::UnknownOrderer { sender: msg.sender.to_owned() });
        };
        if !system.active {
            return refuse(Refusal::OrdererDisabled { name: system.name });
        }
        if let Some(problem) = &m.problem {
            return Ok(Err(problem.clone()));
        }
        let Some(pid) = &m.patient else {
            return refuse(Refusal::NoPatient);
        };
        if pid.mrn.trim().is_empty() {
            return refuse(Refusal::MrnMissing);
        }
        let mrn = match Mrn::parse(&pid.mrn) {
            Ok(m) => m,
            Err(e) => {
                return refuse(Refusal::BadMrn {
                    mrn: pid.mrn.trim().to_owned(),
                    error: e.to_string(),
                });
            }
        };
        let today = self.now().to_zoned_datetime(self.config.time_zone.clone()).date();
        if pid.birth_date.trim().is_empty() {
            return refuse(Refusal::BirthDateMissing);
        }
        let birth = match hl7_date(&pid.birth_date)
            .ok_or_else(|| {
                format!("date of birth {:?} is not a date (YYYYMMDD)", pid.birth_date.trim())
            })
            .and_then(|d| parse_birth_date(&d.to_string(), today))
        {
            Ok(d) => d.to_string(),
            Err(error) => return refuse(Refusal::BadBirthDate { error }),
        };
        let patient = match self.store.patient_by_mrn(mrn.as_str()).await? {
            Some(row) if row.birth_date != birth => {
                return refuse(Refusal::BirthDateDiffers {
                    mrn: row.mrn,
                    on_file: row.birth_date,
                    sent: birth,
                });
            }
            Some(row) => PlannedPatient::OnFile(row),
            None => {
                let family = pid.family_name.trim();
                let given = pid.given_name.trim();
                if family.is_empty() {
                    return refuse(Refusal::FamilyNameMissing { mrn: mrn.as_str().to_owned() });
                }
                if family.chars().count() > NAME_LEN_MAX || given.chars().count() > NAME_LEN_MAX {
                    return refuse(Refusal::NameTooLong { max: NAME_LEN_MAX });
                }
                let sex = match pid.sex.trim() {
                    // N (not applicable) and an empty field register as not known.
                    "" | "N" => Sex::Unknown,
                    other => match Sex::parse(other) {
                        Some(s) => s,
                        None => {
                            return refuse(Refusal::UnknownSex { sex: other.to_owned() });
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
            return refuse(Refusal::NoOrders);
        }
        let catalog = self.catalog();
        let mut orders = Vec::new();
        let mut specimens = Vec::new();
        for o in &m.orders {
            let orc = o.orc;
            let control = o.control.trim();
            if control != "NW" {
                return refuse(Refusal::OrderControl {
                    at: Place::nth_field("ORC", orc, 1),
                    control: control.to_owned(),
                    name: order_control_name(control),
                });
            }
            if o.obr == 0 {
                return refuse(Refusal::NoObr { at: Place::nth("ORC", orc) });
            }
            let obr = o.obr;
            let code = match catalog_code(&catalog.catalog, &o.code) {
                Ok(Some(c)) => c,
                Ok(None) => match catalog_code(&catalog.catalog, &o.alternate_code) {
                    Ok(Some(c)) => c,
                    Ok(None) if o.code.trim().is_empty() => {
                        return refuse(Refusal::TestCodeMissing {
                            at: Place::nth_field("OBR", obr, 4),
                        });
                    }
                    Ok(None) => {
                        let described = [o.code_text.trim(), o.coding_system.trim()]
                            .into_iter()
                            .filter(|t| !t.is_empty())
                            .collect::<Vec<_>>()
                            .join(", ");
                        return refuse(Refusal::UnknownTestCode {
                            at: Place::nth_field("OBR", obr, 4),
                            code: o.code.trim().to_owned(),
                            described,
                        });
                    }
                    Err(matches) => return refuse(ambiguous(obr, &o.alternate_code, matches)),
                },
                Err(matches) => return refuse(ambiguous(obr, &o.code, matches)),
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
                Some(p) if errors.is_empty() => {
                    let sent = match &o.specimen {
                        None => None,
                        Some(spm) => {
                            match self.plan_specimen(spm, &m.orders, &mut specimens).await? {
                                Ok(index) => Some(index),
                                Err(refusal) => return refuse(refusal),
                            }
                        }
                    };
                    orders.push((p, sent));
                }
                _ => {
                    let Some(e) = errors.first() else {
                        return refuse(Refusal::NotPlaceable { at: Place::nth("OBR", obr) });
                    };
                    let at = match e.field.as_str() {
                        "provider" => Place::nth_field("ORC", orc, 12),
                        "placer_number" => Place::nth_field("ORC", orc, 2),
                        "clinical_note" => Place::field("NTE", 3),
                        "priority" => Place::field("TQ1", 9),
                        _ => Place::nth_field("OBR", obr, 4),
                    };
                    return refuse(match e.field.as_str() {
                        "provider" if o.provider.trim().is_empty() => {
                            Refusal::ProviderMissing { at }
                        }
                        "tests" => Refusal::TestsRefused { at, message: e.message.clone() },
                        field => Refusal::OrderField {
                            at,
                            field: field.to_owned(),
                            message: e.message.clone(),
                        },
                    });
                }
            }
        }
        Ok(Ok(OrderPlan { system, patient, orders, specimens }))
    }

    /// Checks a specimen the EHR sent (SPM) and finds it among those already planned, or adds
    /// it: an id seen before under another OBR is the same specimen, and must be described the
    /// same way. Returns its index in `planned`.
    async fn plan_specimen(
        &self,
        spm: &ReceivedSpecimen,
        all: &[ReceivedOrder],
        planned: &mut Vec<SentSpecimen>,
    ) -> AppResult<Result<usize, Refusal>> {
        let at = |field| Place::nth_field("SPM", spm.spm, field);
        let id = spm.id.trim();
        if id.is_empty() {
            return refuse(Refusal::SpecimenIdMissing { at: at(2) });
        }
        if id.chars().count() > PLACER_SPECIMEN_ID_LEN_MAX {
            return refuse(Refusal::SpecimenIdTooLong {
                at: at(2),
                max: PLACER_SPECIMEN_ID_LEN_MAX,
            });
        }
        let specimen_type = if spm.type_text.trim().is_empty() {
            spm.type_code.trim()
        } else {
            spm.type_text.trim()
        };
        if specimen_type.is_empty() {
            return refuse(Refusal::SpecimenTypeMissing { at: at(4), id: id.to_owned() });
        }
        let collected_at = match spm.collected.trim() {
            "" => None,
            sent => match hl7_datetime(sent, &self.config.time_zone) {
                None => {
                    return refuse(Refusal::BadCollectionTime {
                        at: at(17),
                        sent: sent.to_owned(),
                    });
                }
                Some(t) if t > self.now() => {
                    return refuse(Refusal::CollectedLater { at: at(17), sent: sent.to_owned() });
                }
                Some(t) => Some(cuvette_domain::time::Timestamp::from(t)),
            },
        };
        if let Some(index) = planned.iter().position(|p| p.placer_id == id) {
            let first = all
                .iter()
                .filter_map(|o| o.specimen.as_ref())
                .find(|s| s.id.trim() == id)
                .map_or(spm.spm, |s| s.spm);
            let same = planned[index].specimen_type == specimen_type
                && (collected_at.is_none() || planned[index].collected_at == collected_at);
            if !same {
                return refuse(Refusal::SpecimenDiffers {
                    at: at(if planned[index].specimen_type == specimen_type { 17 } else { 4 }),
                    id: id.to_owned(),
                    first: Place::nth("SPM", first),
                });
            }
            return Ok(Ok(index));
        }
        if let Some(on_file) = self.store.specimens_by_placer_id(id).await?.into_iter().next() {
            return refuse(Refusal::SpecimenOnFile {
                at: at(2),
                id: id.to_owned(),
                accession: on_file.accession,
            });
        }
        planned.push(SentSpecimen {
            placer_id: id.to_owned(),
            specimen_type: specimen_type.to_owned(),
            collected_at,
            written: None,
        });
        Ok(Ok(planned.len() - 1))
    }
}
