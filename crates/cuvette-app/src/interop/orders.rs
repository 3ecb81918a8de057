//! Orders from the EHR (OML^O21, ORM^O01): the patient found by MRN or registered from the
//! PID, every order placed with the placer's number, or the message quarantined with the field
//! at fault and nothing placed.

use cuvette_domain::Role;
use cuvette_domain::patient::{Mrn, Sex, parse_birth_date};
use cuvette_store::InstrumentRow;

use super::message_log::{Inbound, Ingested, MessageRecord};
use crate::orders::PreparedOrder;
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
}

/// A decoded order message: one patient and their orders.
#[derive(Debug, Clone, Default)]
pub struct OrderMessage {
    /// The patient (PID), when there is one.
    pub patient: Option<ReceivedPatient>,
    /// The orders, in message order.
    pub orders: Vec<ReceivedOrder>,
    /// A problem with the message's structure (two patients, an OBR without its ORC).
    pub problem: Option<OrderRefusal>,
}

/// Why an order message goes to the quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRefusal {
    /// In words staff can act on.
    pub reason: String,
    /// Where, as an HL7 location: `PID-7`, `OBR(2)-4`, or a segment (`PID`).
    pub location: String,
    /// What kind of fault, for the acknowledgement's error code.
    pub fault: OrderFault,
}

/// The kind of fault in an order message (mapped to HL7 table 0357 by the acknowledgement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderFault {
    /// A required segment or field is empty (101).
    Missing,
    /// A field cannot be read as what it must hold (102).
    Invalid,
    /// A code the lab does not know: a test, an order control, a sender (103).
    UnknownCode,
    /// The message contradicts what the lab holds: another date of birth for a known MRN.
    Mismatch,
    /// The message cannot be taken at all (unreadable).
    Unsupported,
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
    orders: Vec<PreparedOrder>,
}

fn refuse<T>(
    reason: impl Into<String>,
    location: impl Into<String>,
    fault: OrderFault,
) -> AppResult<Result<T, OrderRefusal>> {
    Ok(Err(OrderRefusal { reason: reason.into(), location: location.into(), fault }))
}

/// Reads an HL7 date (DT, or the date of a DTM): `YYYYMMDD`, anything after it ignored.
fn hl7_date(text: &str) -> Option<jiff::civil::Date> {
    let t = text.trim();
    let digits = t.get(..8).filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
    let (y, m, d) =
        (digits[..4].parse().ok()?, digits[4..6].parse().ok()?, digits[6..].parse().ok()?);
    jiff::civil::Date::new(y, m, d).ok()
}

/// The Cuvette code an order code stands for: an orderable test with this LOINC, else a panel
/// with this LOINC, else the code itself when it is a Cuvette test or panel code.
fn catalog_code(catalog: &cuvette_domain::Catalog, code: &str) -> Result<Option<String>, String> {
    let code = code.trim();
    if code.is_empty() {
        return Ok(None);
    }
    let tests: Vec<&str> = catalog
        .tests()
        .filter(|t| t.orderable && t.loinc == code)
        .map(|t| t.code.as_str())
        .collect();
    let panels: Vec<&str> =
        catalog.panels().filter(|p| p.loinc == code).map(|p| p.code.as_str()).collect();
    // A LOINC names an observation: the test itself wins over a panel built around it
    // (3016-3 is TSH, not the thyroid cascade that starts with it).
    for found in [tests, panels] {
        match found.as_slice() {
            [one] => return Ok(Some((*one).to_owned())),
            [] => {}
            many => {
                return Err(format!(
                    "LOINC {code} matches several catalog entries ({}): send the Cuvette code instead",
                    many.join(", ")
                ));
            }
        }
    }
    let upper = code.to_ascii_uppercase();
    let known =
        catalog.panel(&upper).is_some() || catalog.test(&upper).is_some_and(|t| t.orderable);
    Ok(known.then_some(upper))
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
        ack: &(dyn Fn(&Ingested, Option<OrderFault>) -> Vec<u8> + Sync),
    ) -> AppResult<(Ingested, Vec<u8>)> {
        let started = self.clock_micros();
        let plain = |o: &Ingested| ack(o, None);
        if let Some(answer) = self.stored_answer(msg, &plain).await? {
            return Ok(answer);
        }
        let plan = match &msg.malformed {
            Some(reason) => Err(OrderRefusal {
                reason: reason.clone(),
                location: String::new(),
                fault: OrderFault::Unsupported,
            }),
            None => self.plan_orders(msg, order).await?,
        };
        let mut tx = self.store.begin().await?;
        let (outcome, fault, detail, accession) = match plan {
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
                for o in &plan.orders {
                    placed.push(self.write_order(&mut tx, &actor, patient_id, o).await?);
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
                (outcome, None, detail, accession)
            }
            Err(refusal) => {
                let detail = if refusal.location.is_empty() {
                    refusal.reason.clone()
                } else {
                    format!("{}: {}", refusal.location, refusal.reason)
                };
                let outcome = Ingested::Quarantined {
                    message_id: 0,
                    reason: refusal.reason,
                    location: refusal.location,
                };
                (outcome, Some(refusal.fault), detail, None)
            }
        };
        let ack_bytes = ack(&outcome, fault);
        let quarantined = matches!(outcome, Ingested::Quarantined { .. });
        let entry = MessageRecord::inbound(
            msg,
            if quarantined { "quarantined" } else { "accepted" },
            detail,
            ack_bytes.clone(),
            accession,
            0,
            quarantined.then_some("open"),
            started,
        );
        let Some(message_id) = self.log_inbound(&mut tx, &entry).await? else {
            drop(tx);
            return self.stored_answer(msg, &plain).await?.ok_or_else(|| {
                AppError::Conflict("the message was received twice at once".into())
            });
        };
        if let Some(original) = msg.replay_of {
            tx.set_quarantine(original, "replayed").await?;
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
    ) -> AppResult<Result<OrderPlan, OrderRefusal>> {
        use OrderFault::{Invalid, Mismatch, Missing, UnknownCode};
        let Some(system) = self.store.instrument_by_sender(msg.protocol, msg.sender).await? else {
            return refuse(
                format!(
                    "unknown sender {:?}: add the EHR under Interfaces (HL7, sender {:?}) before it sends orders",
                    msg.sender, msg.sender
                ),
                "MSH-3",
                UnknownCode,
            );
        };
        if !system.active {
            return refuse(format!("{} is disabled", system.name), "MSH-3", UnknownCode);
        }
        if let Some(problem) = &m.problem {
            return Ok(Err(problem.clone()));
        }
        let Some(pid) = &m.patient else {
            return refuse(
                "the order names no patient: the PID segment is missing",
                "PID",
                Missing,
            );
        };
        if pid.mrn.trim().is_empty() {
            return refuse(
                "the patient's MRN is missing (PID-3, first repetition, first component)",
                "PID-3",
                Missing,
            );
        }
        let mrn = match Mrn::parse(&pid.mrn) {
            Ok(m) => m,
            Err(e) => return refuse(format!("MRN {:?}: {e}", pid.mrn.trim()), "PID-3", Invalid),
        };
        let today = self.now().to_zoned_datetime(self.config.time_zone.clone()).date();
        if pid.birth_date.trim().is_empty() {
            return refuse(
                "the date of birth is missing (PID-7): Cuvette identifies patients by MRN and date of birth",
                "PID-7",
                Missing,
            );
        }
        let birth = match hl7_date(&pid.birth_date)
            .ok_or_else(|| {
                format!("date of birth {:?} is not a date (YYYYMMDD)", pid.birth_date.trim())
            })
            .and_then(|d| parse_birth_date(&d.to_string(), today))
        {
            Ok(d) => d.to_string(),
            Err(e) => return refuse(e, "PID-7", Invalid),
        };
        let patient = match self.store.patient_by_mrn(mrn.as_str()).await? {
            Some(row) if row.birth_date != birth => {
                return refuse(
                    format!(
                        "MRN {} is on file with date of birth {}, but the order says {birth}: check the patient's identity with the ward before ordering",
                        row.mrn, row.birth_date
                    ),
                    "PID-7",
                    Mismatch,
                );
            }
            Some(row) => PlannedPatient::OnFile(row),
            None => {
                let family = pid.family_name.trim();
                let given = pid.given_name.trim();
                if family.is_empty() {
                    return refuse(
                        format!(
                            "MRN {mrn} is not on file and the family name to register is missing (PID-5.1)",
                            mrn = mrn.as_str()
                        ),
                        "PID-5",
                        Missing,
                    );
                }
                if family.chars().count() > NAME_LEN_MAX || given.chars().count() > NAME_LEN_MAX {
                    return refuse(
                        format!("names are at most {NAME_LEN_MAX} characters"),
                        "PID-5",
                        Invalid,
                    );
                }
                let sex = match pid.sex.trim() {
                    // N (not applicable) and an empty field register as not known.
                    "" | "N" => Sex::Unknown,
                    other => match Sex::parse(other) {
                        Some(s) => s,
                        None => {
                            return refuse(
                                format!("sex {other:?} is not F, M, O, U, A or N (HL7 table 0001)"),
                                "PID-8",
                                Invalid,
                            );
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
            return refuse("the message carries no order (ORC with OBR)", "ORC", Missing);
        }
        let catalog = self.catalog();
        let mut orders = Vec::new();
        for o in &m.orders {
            let orc = o.orc;
            let control = o.control.trim();
            if control != "NW" {
                return refuse(
                    format!(
                        "order control {control:?} ({}) is not taken: Cuvette accepts new orders (NW) only; cancel or change an order by calling the lab",
                        order_control_name(control)
                    ),
                    format!("ORC({orc})-1"),
                    if control.is_empty() { Missing } else { UnknownCode },
                );
            }
            if o.obr == 0 {
                return refuse(
                    "the order has no OBR naming the test (OBR-4)",
                    format!("ORC({orc})"),
                    Missing,
                );
            }
            let obr = o.obr;
            let code = match catalog_code(&catalog.catalog, &o.code) {
                Ok(Some(c)) => c,
                Ok(None) => match catalog_code(&catalog.catalog, &o.alternate_code) {
                    Ok(Some(c)) => c,
                    Ok(None) if o.code.trim().is_empty() => {
                        return refuse(
                            "the test or panel code is missing (OBR-4)",
                            format!("OBR({obr})-4"),
                            Missing,
                        );
                    }
                    Ok(None) => {
                        let described = [o.code_text.trim(), o.coding_system.trim()]
                            .into_iter()
                            .filter(|t| !t.is_empty())
                            .collect::<Vec<_>>()
                            .join(", ");
                        let described = if described.is_empty() {
                            String::new()
                        } else {
                            format!(" ({described})")
                        };
                        return refuse(
                            format!(
                                "test code {:?}{described} is not in the catalog: no orderable test or panel has this LOINC or Cuvette code",
                                o.code.trim()
                            ),
                            format!("OBR({obr})-4"),
                            UnknownCode,
                        );
                    }
                    Err(why) => return refuse(why, format!("OBR({obr})-4"), UnknownCode),
                },
                Err(why) => return refuse(why, format!("OBR({obr})-4"), UnknownCode),
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
                Some(p) if errors.is_empty() => orders.push(p),
                _ => {
                    let Some(e) = errors.first() else {
                        return refuse(
                            "the order cannot be placed",
                            format!("OBR({obr})"),
                            Invalid,
                        );
                    };
                    let (location, missing) = match e.field.as_str() {
                        "provider" => (format!("ORC({orc})-12"), o.provider.trim().is_empty()),
                        "placer_number" => (format!("ORC({orc})-2"), false),
                        "clinical_note" => ("NTE-3".to_owned(), false),
                        "priority" => ("TQ1-9".to_owned(), false),
                        _ => (format!("OBR({obr})-4"), false),
                    };
                    let reason = match e.field.as_str() {
                        "provider" if missing => {
                            "the ordering provider is missing (ORC-12 or OBR-16): an order needs the name of the person who ordered it".to_owned()
                        }
                        field => format!("{field}: {}", e.message),
                    };
                    return refuse(
                        reason,
                        location,
                        if missing {
                            Missing
                        } else if e.field == "tests" {
                            UnknownCode
                        } else {
                            Invalid
                        },
                    );
                }
            }
        }
        Ok(Ok(OrderPlan { system, patient, orders }))
    }
}
