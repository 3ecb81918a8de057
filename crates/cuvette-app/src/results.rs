//! Entering, verifying, releasing and correcting results; documenting critical calls.

use std::collections::BTreeMap;

use cuvette_domain::audit::AuditAction;
use cuvette_domain::calculation::{
    Calculated, CalculationInput, calculate_reported, calculation_input, round_reported,
};
use cuvette_domain::evaluation::{Evaluation, Flags, PatientContext, Review, evaluate};
use cuvette_domain::role::{ReleaseCheck, may_release};
use cuvette_domain::value::NOT_CALCULATED;
use cuvette_domain::workflow::{
    ReleaseStatus, SpecimenStatus, SpecimenStep, TestStatus, specimen_step,
};
use cuvette_domain::{Action, ReportedValue, Role, Sex};
use cuvette_store::{
    NewAttachment, NewAuditEvent, NewCriticalCall, NewResult, PatientRow, Tx, WorkItem,
    WorklistFilter,
};
use jiff::civil::Date;

use crate::audit;
use crate::{Actor, AppError, AppResult, FieldError, Lab};

/// One value typed into the result grid.
#[derive(Debug, Clone)]
pub struct EnteredResult {
    /// The ordered test.
    pub ordered_test_id: i64,
    /// The test's row version the form was rendered with: a newer one means someone else
    /// saved in between, and this save is refused rather than overwriting theirs.
    pub row_version: i64,
    /// What was typed.
    pub text: String,
}

/// A result checked and ready to write.
#[derive(Debug, Clone)]
pub(crate) struct PreparedResult {
    /// The test with its specimen, order, patient and current result.
    pub item: WorkItem,
    /// The value.
    pub value: ReportedValue,
    /// The row version it replaces.
    pub row_version: i64,
    /// Flags the instrument set, if it came from one.
    pub instrument_flags: Vec<String>,
    /// The value as the instrument sent it, when `value` is its conversion to the catalog's
    /// unit.
    pub sent: Option<Sent>,
    /// The file the instrument sent as the result (HL7 ED), stored with its version.
    pub attachment: Option<Attached>,
}

/// A file stored with a result version: an analyzer's PDF report or histogram image, sent
/// as encapsulated data (HL7 ED) and decoded. Stored by the SHA-256 of its bytes.
#[derive(Debug, Clone)]
pub(crate) struct Attached {
    /// What the instrument calls it (OBX-3's text).
    pub name: String,
    /// Its media type (`application/pdf`).
    pub media_type: String,
    /// The file.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, lower-case hex.
    pub sha256: String,
}

impl Attached {
    pub(crate) fn new(name: &str, media_type: &str, bytes: Vec<u8>) -> Attached {
        use sha2::Digest;
        let sha256 = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        Attached { name: name.to_owned(), media_type: media_type.to_owned(), bytes, sha256 }
    }

    /// The value a result that is a file shows where a value goes (the worklist, the
    /// report's value column, the EHR's OBX-5): it points to the file, whose name, type and
    /// size the report lists below it. "See attached PDF", "See attached BMP"; a file of
    /// no named type is "See attached file".
    pub(crate) fn result_text(&self) -> String {
        match self.media_type.split_once('/') {
            Some((_, subtype)) if subtype != "octet-stream" => {
                format!("See attached {}", subtype.to_ascii_uppercase())
            }
            _ => "See attached file".to_owned(),
        }
    }
}

/// A result as its instrument sent it (or the bench typed it) when what is stored differs:
/// a number in another unit than the catalog's, kept beside the converted value so that the
/// number is never seen without the unit it arrived in; a synonym read as the catalog's
/// coded value ("NEG" as Negative); a unit sent with a result of a test that has none.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    /// The value, as sent.
    pub value: String,
    /// Its unit, when one was sent (UCUM for a conversion).
    pub unit: Option<String>,
}

/// The work items of orders already read, by order id.
pub(crate) type OrderItems = std::collections::HashMap<i64, Vec<WorkItem>>;

/// One result version about to be written.
pub(crate) struct ResultWrite {
    pub(crate) item: WorkItem,
    row_version: i64,
    pub(crate) value: ReportedValue,
    pub(crate) evaluation: Evaluation,
    pub(crate) correction_reason: Option<String>,
    /// How the instrument reported it, when not final (HL7 OBX-11, ASTM R-9).
    pub(crate) reported_as: Option<ReleaseStatus>,
    pub(crate) instrument_flags: Vec<String>,
    /// The instrument that measured it.
    pub(crate) instrument_id: Option<i64>,
    /// The autoverification decision (JSON), when a rule set judged it.
    pub(crate) autoverify: Option<String>,
    /// Released as it is written: autoverification passed it and the autoverifier may
    /// release it.
    pub(crate) auto_release: bool,
    /// The value and unit as the instrument sent them, when converted.
    pub(crate) sent: Option<Sent>,
    /// The file sent as the result, stored with this version.
    pub(crate) attachment: Option<Attached>,
    /// Why the qualification gate kept autoverification from releasing it, audited with the
    /// write.
    pub(crate) gate_refusal: Option<String>,
}

/// Who autoverified releases are signed by.
pub(crate) const AUTOVERIFIER: &str = "autoverify";

impl ResultWrite {
    /// The version this write creates: the one after the latest the caller read.
    fn version(&self) -> i64 {
        self.item.result.as_ref().map_or(0, |r| r.version) + 1
    }
}

/// A correction of a released result: why, signed with the actor's password.
#[derive(Debug, Clone)]
pub struct Correction {
    /// Why the released value was wrong.
    pub reason: String,
    /// The actor's password, re-entered as a signature.
    pub signature: String,
}

/// The outcome of releasing one test.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Release {
    /// Released; the report now shows it.
    Released {
        /// The test.
        ordered_test_id: i64,
    },
    /// Not released, and why.
    Held {
        /// The test.
        ordered_test_id: i64,
        /// Why, and what would allow it.
        reason: String,
    },
}

/// A documented critical-value call, as entered.
#[derive(Debug, Clone, Default)]
pub struct CriticalCall {
    /// Who was told (name and role, e.g. "Dr. A. Okafor, ED attending").
    pub called_person: String,
    /// Whether the recipient read the result back.
    pub read_back: bool,
    /// Number called, attempts, anything else.
    pub notes: String,
}

/// What a saved result produced.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The test.
    pub ordered_test_id: i64,
    /// The version written.
    pub version: i64,
    /// Its evaluation.
    pub evaluation: Evaluation,
}

pub(crate) fn patient_context(
    lab: &Lab,
    patient: &PatientRow,
    collected_at: Option<cuvette_domain::time::Timestamp>,
) -> PatientContext {
    let tz = lab.config.time_zone.clone();
    let collected_on = collected_at
        .and_then(|at| at.to_jiff())
        .unwrap_or_else(|| lab.now())
        .to_zoned_datetime(tz)
        .date();
    PatientContext {
        sex: Sex::parse(&patient.sex).unwrap_or(Sex::Unknown),
        birth_date: patient.birth_date.parse::<Date>().unwrap_or(collected_on),
        collected_on,
    }
}

impl Lab {
    /// Saves typed results, all or nothing: every invalid cell is named and nothing is saved,
    /// so the grid comes back with what was typed. Calculated tests of the order are
    /// recomputed in the same transaction.
    pub async fn enter_results(
        &self,
        actor: &Actor,
        entries: &[EnteredResult],
        correction: Option<&Correction>,
    ) -> AppResult<Vec<Saved>> {
        self.require(actor, Action::EnterResult)?;
        let entries: Vec<&EnteredResult> =
            entries.iter().filter(|e| !e.text.trim().is_empty()).collect();
        if entries.is_empty() {
            return Err(AppError::invalid("results", "enter at least one result"));
        }
        let catalog = self.catalog();
        let mut errors = Vec::new();
        let mut prepared = Vec::new();
        let mut corrects_released = false;
        for e in &entries {
            let field = format!("result_{}", e.ordered_test_id);
            let item = self.work_item(e.ordered_test_id).await?;
            let specimen_status = item.specimen.status;
            if let Err(refusal) = specimen_step(specimen_status, SpecimenStep::Result) {
                errors.push(FieldError {
                    field,
                    message: format!(
                        "{} ({}): {refusal}",
                        item.test.test_code, item.specimen.accession
                    ),
                });
                continue;
            }
            let status = item.test.status;
            if status == TestStatus::Final {
                corrects_released = true;
            } else if !status.accepts_results() {
                errors.push(FieldError {
                    field,
                    message: format!("{} is {status} and takes no results", item.test.test_code),
                });
                continue;
            }
            let Some(def) = catalog.catalog.test(&item.test.test_code) else {
                errors.push(FieldError {
                    field,
                    message: format!("{} is no longer in the catalog", item.test.test_code),
                });
                continue;
            };
            if def.is_calculated() {
                errors.push(FieldError {
                    field,
                    message: format!(
                        "{} is calculated from its inputs; enter those instead",
                        def.name
                    ),
                });
                continue;
            }
            match ReportedValue::parse(&e.text) {
                Ok(value) => {
                    // "neg" typed for a coded test is stored as its value, Negative, with
                    // what was typed kept beside it.
                    let (value, sent) =
                        crate::synonyms::read_for_test(&catalog, def, value, None, "");
                    prepared.push((item, value, e.row_version, sent))
                }
                Err(err) => {
                    errors.push(FieldError { field, message: format!("{}: {err}", def.name) })
                }
            }
        }
        if corrects_released {
            self.require(actor, Action::CorrectResult)?;
            match correction {
                None => errors.push(FieldError {
                    field: "correction_reason".into(),
                    message: "this result was released: give the reason for the correction and sign with your password".into(),
                }),
                Some(c) if c.reason.trim().is_empty() => errors.push(FieldError {
                    field: "correction_reason".into(),
                    message: "give the reason for the correction".into(),
                }),
                Some(c) => self.check_signature(actor, &c.signature).await?,
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        // The person must be qualified for every test entered (CLIA Subpart M): all or
        // nothing, like the values, and each refusal audited.
        if let Some(gate) = self.gate(actor).await? {
            let refused: Vec<_> = prepared
                .iter()
                .filter_map(|(item, _, _, _)| {
                    let def = catalog.catalog.test(&item.test.test_code)?;
                    gate.check(def, None).err().map(|r| (item, r))
                })
                .collect();
            if !refused.is_empty() {
                let mut tx = self.store.begin().await?;
                let mut reasons: Vec<String> = Vec::new();
                for (item, refusal) in &refused {
                    self.audit_refusal(
                        &mut tx,
                        actor,
                        Action::EnterResult,
                        format!("{}/{}", item.specimen.accession, item.test.test_code),
                        Some(item.patient.id),
                        refusal,
                    )
                    .await?;
                    let reason = refusal.to_string();
                    if !reasons.contains(&reason) {
                        reasons.push(reason);
                    }
                }
                tx.commit().await?;
                return Err(AppError::Forbidden(format!(
                    "nothing was saved: {}",
                    reasons.join("; ")
                )));
            }
        }
        let prepared: Vec<PreparedResult> = prepared
            .into_iter()
            .map(|(item, value, row_version, sent)| PreparedResult {
                item,
                value,
                row_version,
                instrument_flags: vec![],
                sent,
                attachment: None,
            })
            .collect();
        let writes = self.result_writes(&prepared, correction, &OrderItems::new()).await?;
        let mut tx = self.store.begin().await?;
        let saved = self.write_results(&mut tx, actor, &writes).await?;
        tx.commit().await?;
        Ok(saved)
    }

    /// Evaluates checked results and works out the order's calculations, before any write
    /// transaction: the writer then only writes. Nothing read here can go stale unnoticed,
    /// because every write checks each test's row version.
    pub(crate) async fn result_writes(
        &self,
        prepared: &[PreparedResult],
        correction: Option<&Correction>,
        known: &OrderItems,
    ) -> AppResult<Vec<ResultWrite>> {
        let catalog = self.catalog();
        let mut writes = Vec::with_capacity(prepared.len());
        let mut orders = BTreeMap::new();
        for p in prepared {
            let item = &p.item;
            let def = catalog.catalog.test(&item.test.test_code).expect("checked when prepared");
            let ctx = patient_context(self, &item.patient, item.specimen.collected_at);
            let mut evaluation = evaluate(def, &p.value, ctx);
            if !p.instrument_flags.is_empty() {
                // What the instrument itself flagged is for a technologist to judge.
                evaluation
                    .reasons
                    .push(format!("instrument flagged: {}", p.instrument_flags.join(", ")));
                evaluation.review = Review::Technologist;
            }
            let correction_reason = correction
                .filter(|_| item.test.status == TestStatus::Final)
                .map(|c| c.reason.trim().to_owned());
            writes.push(ResultWrite {
                item: item.clone(),
                row_version: p.row_version,
                value: p.value.clone(),
                evaluation,
                correction_reason,
                reported_as: None,
                instrument_flags: p.instrument_flags.clone(),
                instrument_id: None,
                autoverify: None,
                auto_release: false,
                sent: p.sent.clone(),
                attachment: p.attachment.clone(),
                gate_refusal: None,
            });
            orders.insert(item.order.id, (item.patient.clone(), item.specimen.collected_at));
        }
        // Calculations read the order's latest values, with this save's values on top.
        let typed: BTreeMap<i64, ReportedValue> =
            prepared.iter().map(|p| (p.item.test.id, p.value.clone())).collect();
        for (order_id, (patient, collected_at)) in orders {
            let items = match known.get(&order_id) {
                Some(items) => items.clone(),
                None => {
                    self.store
                        .work_items(&WorklistFilter {
                            order_id: Some(order_id),
                            limit: 10_000,
                            ..Default::default()
                        })
                        .await?
                }
            };
            writes.extend(self.calculations(items, &patient, collected_at, &typed)?);
        }
        Ok(writes)
    }

    /// Writes new result versions, their tests' status and their audit events inside `tx`, in
    /// a handful of statements whatever their number: each statement is a round trip to the
    /// database, and the writer holds the database while it runs.
    pub(crate) async fn write_results(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        writes: &[ResultWrite],
    ) -> AppResult<Vec<Saved>> {
        let catalog = self.catalog();
        let now = self.now_at();
        // A corrected released result stays final, and so does one autoverification releases;
        // anything else is in process until verified.
        // Every stored version waits for a person's verification unless autoverification
        // releases it here.
        let is_final = |w: &ResultWrite| w.item.test.status == TestStatus::Final || w.auto_release;
        for (next, awaiting) in
            [(TestStatus::Final, true), (TestStatus::Final, false), (TestStatus::InProcess, true)]
        {
            let tests: Vec<(i64, i64)> = writes
                .iter()
                .filter(|w| {
                    is_final(w) == (next == TestStatus::Final) && w.auto_release != awaiting
                })
                .map(|w| (w.item.test.id, w.row_version))
                .collect();
            tx.update_test_statuses(&tests, next, awaiting, now).await?;
        }
        let rows: Vec<_> = writes
            .iter()
            .map(|w| {
                let def = catalog.catalog.test(&w.item.test.test_code).expect("caller checked");
                (
                    def,
                    catalog.versions.get(&def.code).copied().unwrap_or(0),
                    Flags::from(w.evaluation.flags.clone()),
                )
            })
            .collect();
        let new_results: Vec<NewResult> = writes
            .iter()
            .zip(&rows)
            .map(|(w, (def, definition_version, flags))| NewResult {
                ordered_test_id: w.item.test.id,
                version: w.version(),
                value_text: &w.value.text,
                value_number: w.value.number.and_then(|n| n.value.to_string().parse().ok()),
                report_text: &w.evaluation.report_text,
                unit: &def.unit,
                flags,
                reference_interval: &w.evaluation.interval,
                review: w.evaluation.review,
                reasons: &w.evaluation.reasons,
                definition_version: *definition_version,
                entered_by: &actor.name,
                entered_by_role: actor.role,
                correction_reason: w.correction_reason.as_deref(),
                instrument_flags: &w.instrument_flags,
                instrument_id: w.instrument_id,
                autoverify: w.autoverify.as_deref(),
                released_by: w.auto_release.then_some(AUTOVERIFIER),
                release_status: w.auto_release.then_some(ReleaseStatus::Final),
                sent_value: w.sent.as_ref().map(|s| s.value.as_str()),
                sent_unit: w.sent.as_ref().and_then(|s| s.unit.as_deref()),
                reported_as: w.reported_as,
            })
            .collect();
        tx.insert_results(&new_results, now).await?;
        for w in writes {
            if let Some(file) = &w.attachment {
                tx.insert_attachment(&NewAttachment {
                    ordered_test_id: w.item.test.id,
                    result_version: w.version(),
                    name: &file.name,
                    media_type: &file.media_type,
                    sha256: &file.sha256,
                    content: &file.bytes,
                })
                .await?;
            }
        }
        for (w, (_, definition_version, flags)) in writes.iter().zip(&rows) {
            let item = &w.item;
            let version = w.version();
            let after = audit::state(&audit::ResultEntered {
                version,
                value: &w.value.text,
                report: &w.evaluation.report_text,
                flags,
                interval: &w.evaluation.interval,
                definition_version: *definition_version,
                correction_reason: w.correction_reason.as_deref(),
                sent_value: w.sent.as_ref().map(|s| s.value.as_str()),
                sent_unit: w.sent.as_ref().and_then(|s| s.unit.as_deref()),
                attachment: w.attachment.as_ref().map(|a| audit::AttachmentState {
                    name: &a.name,
                    media_type: &a.media_type,
                    bytes: a.bytes.len(),
                    sha256: &a.sha256,
                }),
            });
            tx.audit(NewAuditEvent {
                at: now,
                actor: &actor.name,
                action: if w.correction_reason.is_some() {
                    AuditAction::ResultCorrect
                } else {
                    AuditAction::ResultEnter
                },
                entity: "result",
                entity_id: format!("{}/{}", item.specimen.accession, item.test.test_code),
                patient_id: Some(item.patient.id),
                before: item.result.as_ref().and_then(|r| {
                    audit::state(&audit::ResultBefore {
                        version: r.version,
                        value: &r.value_text,
                        flags: &r.flags,
                    })
                }),
                after,
            })
            .await?;
            if let Some(reason) = &w.gate_refusal {
                tx.audit(NewAuditEvent {
                    at: now,
                    actor: AUTOVERIFIER,
                    action: AuditAction::StaffPrivilegeRefused,
                    entity: "result",
                    entity_id: format!("{}/{}", item.specimen.accession, item.test.test_code),
                    patient_id: Some(item.patient.id),
                    before: None,
                    after: audit::state(&audit::QualificationRefused {
                        action: Action::VerifyRoutine.code(),
                        reason: reason.clone(),
                    }),
                })
                .await?;
            }
            if w.auto_release {
                tx.audit(NewAuditEvent {
                    at: now,
                    actor: AUTOVERIFIER,
                    action: AuditAction::ResultAutoverifyRelease,
                    entity: "result",
                    entity_id: format!("{}/{}", item.specimen.accession, item.test.test_code),
                    patient_id: Some(item.patient.id),
                    before: audit::state(&audit::StatusBefore { status: item.test.status }),
                    after: audit::state(&audit::Autoverified {
                        status: "final",
                        version,
                        value: &w.evaluation.report_text,
                        flags,
                        release_status: "final",
                        rules: w
                            .autoverify
                            .as_deref()
                            .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
                            .and_then(|d| d.get("fingerprint").cloned()),
                    }),
                })
                .await?;
            }
        }
        self.queue_autoverified(tx, writes).await?;
        Ok(writes
            .iter()
            .map(|w| Saved {
                ordered_test_id: w.item.test.id,
                version: w.version(),
                evaluation: w.evaluation.clone(),
            })
            .collect())
    }

    /// Queues the result message for the EHR of each specimen with results autoverification
    /// released in this transaction (when the lab sends results to an EHR).
    async fn queue_autoverified(&self, tx: &mut Tx, writes: &[ResultWrite]) -> AppResult<()> {
        if self.config.ehr_destination.is_none() || !writes.iter().any(|w| w.auto_release) {
            return Ok(());
        }
        let keys: Vec<(i64, i64)> = writes
            .iter()
            .filter(|w| w.auto_release)
            .map(|w| (w.item.test.id, w.version()))
            .collect();
        let fresh = tx.results_written(&keys).await?;
        let mut by_specimen: BTreeMap<i64, BTreeMap<i64, (i64, ReleaseStatus)>> = BTreeMap::new();
        for w in writes.iter().filter(|w| w.auto_release) {
            if let Some(r) = fresh.iter().find(|r| r.ordered_test_id == w.item.test.id) {
                by_specimen
                    .entry(w.item.specimen.id)
                    .or_default()
                    .insert(w.item.test.id, (r.id, ReleaseStatus::Final));
            }
        }
        for (specimen_id, released) in &by_specimen {
            self.queue_results(tx, *specimen_id, released, &fresh).await?;
        }
        Ok(())
    }

    /// The order's calculated results that change with this save's values (`typed`, by
    /// ordered test id, on top of the stored ones in `order_items`), each with its final
    /// value.
    fn calculations(
        &self,
        order_items: Vec<WorkItem>,
        patient: &PatientRow,
        collected_at: Option<cuvette_domain::time::Timestamp>,
        typed: &BTreeMap<i64, ReportedValue>,
    ) -> AppResult<Vec<ResultWrite>> {
        let catalog = self.catalog();
        let items: Vec<WorkItem> =
            order_items.into_iter().filter(|i| i.test.status != TestStatus::Cancelled).collect();
        // Each measured input as the lab would report it; calculated ones are recomputed below
        // from their own inputs, never read back rounded.
        let mut inputs: BTreeMap<String, CalculationInput> = BTreeMap::new();
        for i in &items {
            let Some(def) = catalog.catalog.test(&i.test.test_code) else { continue };
            if def.is_calculated() {
                continue;
            }
            let text = typed
                .get(&i.test.id)
                .map(|v| v.text.clone())
                .or_else(|| i.result.as_ref().map(|r| r.value_text.clone()));
            let input = text
                .and_then(|t| ReportedValue::parse(&t).ok())
                .and_then(|v| calculation_input(def, &v));
            if let Some(input) = input {
                inputs.insert(i.test.test_code.clone(), input);
            }
        }
        let ctx = patient_context(self, patient, collected_at);
        let age = f64::from(cuvette_domain::patient::age_years(ctx.birth_date, ctx.collected_on));
        // The new text of each calculation, by ordered test id.
        let mut computed: BTreeMap<i64, String> = BTreeMap::new();
        // Calculations may feed calculations (OSMCALC → OSMGAP): go round until nothing changes.
        for _ in 0..3 {
            let mut changed = false;
            for i in &items {
                let Some(def) = catalog.catalog.test(&i.test.test_code) else { continue };
                let Some(rule) = &def.calculation else { continue };
                let status = i.test.status;
                if !(status.accepts_results() || status == TestStatus::Final) {
                    continue;
                }
                let (text, input) = match calculate_reported(&def.code, rule, &inputs, ctx.sex, age)
                {
                    // The unrounded value feeds later calculations; it is rounded once, here,
                    // for the report.
                    Calculated::Value(v) => {
                        (round_reported(v, def.decimals.unwrap_or(0)), CalculationInput::Value(v))
                    }
                    Calculated::NotValid(why) => {
                        (format!("{NOT_CALCULATED} {why}"), CalculationInput::NotReportable(why))
                    }
                    // Nothing to withdraw while the calculation has never had a value; once it
                    // has, an input that is no longer a number withdraws it.
                    Calculated::MissingInputs(_) if i.result.is_none() => continue,
                    Calculated::MissingInputs(missing) => {
                        let why = format!("{} has no numeric result", missing.join(", "));
                        (format!("{NOT_CALCULATED} {why}"), CalculationInput::NotReportable(why))
                    }
                };
                if computed.get(&i.test.id) == Some(&text) {
                    continue;
                }
                inputs.insert(def.code.clone(), input);
                computed.insert(i.test.id, text);
                changed = true;
            }
            if !changed {
                break;
            }
        }
        let mut writes = Vec::new();
        for (test_id, text) in computed {
            let item = items.iter().find(|i| i.test.id == test_id).expect("from items");
            if item.result.as_ref().is_some_and(|r| r.value_text == text) {
                continue; // unchanged: no new version
            }
            let def = catalog.catalog.test(&item.test.test_code).expect("calculated test");
            let value =
                ReportedValue::parse(&text).map_err(|e| AppError::Refused(e.to_string()))?;
            let final_ = item.test.status == TestStatus::Final;
            writes.push(ResultWrite {
                item: item.clone(),
                row_version: item.test.row_version,
                evaluation: evaluate(def, &value, ctx),
                value,
                correction_reason: final_.then(|| "recalculated from corrected inputs".to_owned()),
                reported_as: None,
                instrument_flags: Vec::new(),
                instrument_id: None,
                autoverify: None,
                auto_release: false,
                sent: None,
                attachment: None,
                gate_refusal: None,
            });
        }
        Ok(writes)
    }

    pub(crate) async fn work_item(&self, ordered_test_id: i64) -> AppResult<WorkItem> {
        let test = self.store.ordered_test(ordered_test_id).await.map_err(|_| {
            AppError::NotFound(format!(
                "no ordered test {ordered_test_id}: the worklist may be out of date, reload it"
            ))
        })?;
        let items = self
            .store
            .work_items(&WorklistFilter {
                specimen_id: Some(test.specimen_id),
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        items
            .into_iter()
            .find(|i| i.test.id == ordered_test_id)
            .ok_or_else(|| AppError::NotFound("ordered test not found".into()))
    }

    /// Releases (verifies) the current result of each test, each judged on its own: those the
    /// actor may release are released, the others are held with the reason. `row_version` is
    /// what the reviewer saw; a newer value entered since is held, not released unseen. The
    /// releases commit together, and when the lab sends results to an EHR
    /// (`LabConfig::ehr_destination`) one ORU^R01 per specimen is queued in the same
    /// transaction.
    pub async fn release(
        &self,
        actor: &Actor,
        tests: &[(i64, i64)],
        status: TestStatus,
    ) -> AppResult<Vec<Release>> {
        self.require(actor, Action::VerifyRoutine).map_err(|_| match actor.role {
            Role::Student => AppError::Forbidden(
                "a student cannot verify results: a technician or technologist co-signs them"
                    .into(),
            ),
            Role::Phlebotomist
            | Role::LabAssistant
            | Role::Technician
            | Role::Technologist
            | Role::Supervisor
            | Role::Pathologist => {
                AppError::Forbidden(format!("your role ({}) may not verify results", actor.role))
            }
        })?;
        if !matches!(status, TestStatus::Final | TestStatus::Preliminary) {
            return Err(AppError::invalid("status", "release as preliminary or final"));
        }
        let mut outcomes = Vec::new();
        // The releases of one call commit together (begun at the first one), with the result
        // message for the EHR: one per specimen, showing every result released on it.
        let mut open: Option<Tx> = None;
        let mut released_on: BTreeMap<i64, BTreeMap<i64, (i64, ReleaseStatus)>> = BTreeMap::new();
        let mut standings: Option<Vec<crate::qc::QcStanding>> = None;
        let mut gate: Option<Option<crate::staff::Gate>> = None;
        let mut refusals = Vec::new();
        for &(test_id, row_version) in tests {
            let held = |reason: String| Release::Held { ordered_test_id: test_id, reason };
            let item = match self.work_item(test_id).await {
                Ok(i) => i,
                Err(e) => {
                    outcomes.push(held(e.to_string()));
                    continue;
                }
            };
            let Some(result) = item.result.clone() else {
                outcomes.push(held(format!("{} has no result to release", item.test.test_code)));
                continue;
            };
            // Listed twice in this call: the first release is not committed yet, so the store
            // cannot say so.
            if released_on.get(&item.specimen.id).is_some_and(|r| r.contains_key(&test_id)) {
                outcomes.push(held(format!("{} is already released", item.test.test_code)));
                continue;
            }
            let test_status = item.test.status;
            if test_status == TestStatus::Cancelled
                || item.specimen.status == SpecimenStatus::Rejected
            {
                outcomes.push(held(format!(
                    "{} was cancelled because specimen {} was rejected: release the recollected specimen's result",
                    item.test.test_code, item.specimen.accession
                )));
                continue;
            }
            // A preliminary release becomes final without a new version; anything else
            // already released stays as it is.
            let finalize = result.release_status == Some(ReleaseStatus::Preliminary)
                && status == TestStatus::Final;
            if result.released_at.is_some() && !finalize {
                outcomes.push(held(format!("{} is already released", item.test.test_code)));
                continue;
            }
            // The instrument said the value may still change (OBX-11 / R-9 P): no person
            // makes it final; its final result arrives as a new version.
            if result.reported_as == Some(ReleaseStatus::Preliminary) && status == TestStatus::Final
            {
                outcomes.push(held(format!(
                    "{}: the instrument reported this result as preliminary: release it as preliminary, or wait for its final result",
                    item.test.test_code
                )));
                continue;
            }
            if item.test.row_version != row_version {
                outcomes.push(held(format!(
                    "{} changed since you opened it: review the new value",
                    item.test.test_code
                )));
                continue;
            }
            // A QC lockout holds the instrument's results since its last good QC.
            if let Some(instrument_id) = result.instrument_id {
                if standings.is_none() {
                    standings = Some(self.qc_standings(None).await?);
                }
                let lockout = standings.iter().flatten().find(|s| {
                    s.facts.instrument_id == instrument_id
                        && s.facts.test_code == item.test.test_code
                        && s.holds(result.entered_at)
                });
                if let Some(s) = lockout {
                    outcomes.push(held(format!("QC lockout: {}", s.reason)));
                    continue;
                }
            }
            let critical = result.flags.is_critical();
            let calls = self.store.critical_calls(&[test_id]).await?;
            let called = calls.iter().any(|c| c.result_version == result.version && c.read_back);
            let check = ReleaseCheck {
                review: result.review,
                critical,
                critical_call_documented: called,
                entered_by_student: result.entered_by_role == Role::Student,
                invalid_value: result.flags.is_invalid(),
            };
            if let Err(refusal) = may_release(&self.privileges(), actor.role, check) {
                outcomes.push(held(format!("{}: {refusal}", item.test.test_code)));
                continue;
            }
            // Verifying is performing the test's post-analytic step: the person must be
            // qualified for it on the instrument that measured it (CLIA Subpart M).
            if gate.is_none() {
                gate = Some(self.gate(actor).await?);
            }
            if let Some(Some(g)) = &gate
                && let Some(def) = self.catalog().catalog.test(&item.test.test_code)
                && let Err(refusal) = g.check(def, result.instrument_id)
            {
                refusals.push((
                    format!("{}/{}", item.specimen.accession, item.test.test_code),
                    item.patient.id,
                    refusal.clone(),
                ));
                outcomes.push(held(format!("{}: {refusal}", item.test.test_code)));
                continue;
            }
            let previously_released =
                self.store.results_of_tests(&[test_id]).await?.iter().any(|r| {
                    r.version < result.version
                        && r.release_status.is_some_and(ReleaseStatus::is_final)
                });
            // A changed value after a final report is a correction; after a preliminary one
            // it is simply the final result.
            let release_status = match status {
                TestStatus::Final if previously_released => ReleaseStatus::Corrected,
                TestStatus::Final => ReleaseStatus::Final,
                TestStatus::Preliminary
                | TestStatus::Ordered
                | TestStatus::Collected
                | TestStatus::Received
                | TestStatus::InProcess
                | TestStatus::Cancelled => ReleaseStatus::Preliminary,
            };
            let now = self.now_at();
            if open.is_none() {
                open = Some(self.store.begin().await?);
            }
            let tx = open.as_mut().expect("begun above");
            let released = if finalize {
                tx.finalize_result(result.id, &actor.name, now).await?
            } else {
                tx.release_result(result.id, &actor.name, release_status, now).await?
            };
            if !released {
                outcomes
                    .push(held(format!("{} was released by someone else", item.test.test_code)));
                continue;
            }
            tx.update_test_status(test_id, row_version, status, false, now).await?;
            tx.audit(NewAuditEvent {
                at: now,
                actor: &actor.name,
                action: if check.entered_by_student {
                    AuditAction::ResultCosignRelease
                } else {
                    AuditAction::ResultRelease
                },
                entity: "result",
                entity_id: format!("{}/{}", item.specimen.accession, item.test.test_code),
                patient_id: Some(item.patient.id),
                before: audit::state(&audit::StatusBefore { status: item.test.status }),
                after: audit::state(&audit::Released {
                    status: status.code(),
                    version: result.version,
                    value: &result.report_text,
                    flags: &result.flags,
                    release_status,
                }),
            })
            .await?;
            let sent_status = if finalize { ReleaseStatus::Final } else { release_status };
            released_on
                .entry(item.specimen.id)
                .or_default()
                .insert(test_id, (result.id, sent_status));
            outcomes.push(Release::Released { ordered_test_id: test_id });
        }
        if open.is_none() && !refusals.is_empty() {
            open = Some(self.store.begin().await?);
        }
        if let Some(mut tx) = open {
            for (specimen_id, released) in &released_on {
                self.queue_results(&mut tx, *specimen_id, released, &[]).await?;
            }
            for (entity_id, patient_id, refusal) in &refusals {
                self.audit_refusal(
                    &mut tx,
                    actor,
                    Action::VerifyRoutine,
                    entity_id.clone(),
                    Some(*patient_id),
                    refusal,
                )
                .await?;
            }
            tx.commit().await?;
        }
        Ok(outcomes)
    }

    /// Documents the call of a critical result to the provider. A call without read-back is
    /// recorded as an attempt and does not open the release gate.
    pub async fn document_critical_call(
        &self,
        actor: &Actor,
        ordered_test_id: i64,
        call: &CriticalCall,
    ) -> AppResult<i64> {
        self.require(actor, Action::DocumentCriticalCall)?;
        let item = self.work_item(ordered_test_id).await?;
        let result = item
            .result
            .as_ref()
            .ok_or_else(|| AppError::Refused("there is no result to call".into()))?;
        if !result.flags.is_critical() {
            return Err(AppError::Refused(format!(
                "{} {} is not critical",
                item.test.test_code, result.report_text
            )));
        }
        let mut errors = Vec::new();
        let person = call.called_person.trim();
        if person.is_empty() {
            errors.push(FieldError {
                field: "called_person".into(),
                message: "enter who was told the result (name and role)".into(),
            });
        } else if person.chars().count() > 200 {
            errors.push(FieldError {
                field: "called_person".into(),
                message: "at most 200 characters".into(),
            });
        }
        if call.notes.chars().count() > 2000 {
            errors.push(FieldError {
                field: "notes".into(),
                message: "at most 2000 characters".into(),
            });
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        let id = tx
            .insert_critical_call(
                &NewCriticalCall {
                    ordered_test_id,
                    result_version: result.version,
                    called_person: person,
                    called_by: &actor.name,
                    called_at: now,
                    read_back: call.read_back,
                    notes: call.notes.trim(),
                },
                now,
            )
            .await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: if call.read_back {
                AuditAction::CriticalCall
            } else {
                AuditAction::CriticalAttempt
            },
            entity: "result",
            entity_id: format!("{}/{}", item.specimen.accession, item.test.test_code),
            patient_id: Some(item.patient.id),
            before: None,
            after: audit::state(&audit::CriticalCallMade {
                called_person: person,
                read_back: call.read_back,
                notes: call.notes.trim(),
                value: &result.report_text,
                version: result.version,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(id)
    }
}
