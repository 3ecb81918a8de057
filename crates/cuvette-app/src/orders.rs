//! Orders, collection, receipt and rejection.

use std::collections::BTreeMap;

use cuvette_domain::audit::AuditAction;
use cuvette_domain::patient::{Mrn, parse_birth_date};
use cuvette_domain::workflow::{
    Priority, RejectionReason, SpecimenStatus, SpecimenStep, TestStatus, specimen_step,
};
use cuvette_domain::{Accession, Action};
use cuvette_store::{NewAuditEvent, NewOrder, NewOrderedTest, NewSpecimen, SpecimenRow, Tx};

use crate::audit;
use crate::{Actor, AppError, AppResult, FieldError, Lab};

/// The longest free-text field on an order (provider, note).
pub const ORDER_TEXT_LEN_MAX: usize = 500;
/// The most tests and panels on one order.
pub const ORDER_CODES_MAX: usize = 100;

/// An order as entered.
#[derive(Debug, Clone, Default)]
pub struct PlaceOrder {
    /// The patient.
    pub patient_id: i64,
    /// Ordering provider.
    pub provider: String,
    /// `routine` or `stat`.
    pub priority: String,
    /// Test and panel codes.
    pub tests: Vec<String>,
    /// Clinical note.
    pub clinical_note: String,
    /// The placer's order number, when the order comes from another system.
    pub placer_number: Option<String>,
}

/// A placed order: the specimens to collect, each with its accession number.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlacedOrder {
    /// The order.
    pub order_id: i64,
    /// One per container.
    pub specimens: Vec<PlacedSpecimen>,
}

/// A specimen created by an order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlacedSpecimen {
    /// Accession number as printed.
    pub accession: String,
    /// Container to draw.
    pub container: String,
    /// Test codes on it.
    pub tests: Vec<String>,
    /// The EHR's id for it (HL7 SPM-2), when the EHR sent the specimen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placer_specimen_id: Option<String>,
    /// When the ward drew it (HL7 SPM-17), when the EHR said so: the specimen is collected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<cuvette_domain::time::Timestamp>,
}

/// A specimen the EHR sent with its orders (HL7 OML^O21 SPM): every test of the orders under
/// it goes on this one specimen, whatever containers the catalog would have chosen, and the
/// orders of one message that name the same specimen id share it.
#[derive(Debug, Clone)]
pub(crate) struct SentSpecimen {
    /// SPM-2, the EHR's id for it.
    pub placer_id: String,
    /// SPM-4, as the lab reads it (its text, else its code).
    pub specimen_type: String,
    /// SPM-17, when the ward drew it.
    pub collected_at: Option<cuvette_domain::time::Timestamp>,
    /// Once written: its row and accession number.
    pub written: Option<(i64, String)>,
}

/// The identifiers read off a tube at receipt; at least two must be given and all must match
/// the patient on file (Joint Commission NPSG.01.01.01: two identifiers).
#[derive(Debug, Clone, Default)]
pub struct IdentityCheck {
    /// MRN on the label.
    pub mrn: Option<String>,
    /// Date of birth on the label.
    pub birth_date: Option<String>,
    /// Family name on the label.
    pub family_name: Option<String>,
}

fn text_field(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: &str,
    required: Option<&str>,
) -> String {
    let v = value.trim();
    if v.is_empty()
        && let Some(message) = required
    {
        errors.push(FieldError { field: field.into(), message: message.into() });
    }
    if v.chars().count() > ORDER_TEXT_LEN_MAX {
        errors.push(FieldError {
            field: field.into(),
            message: format!("at most {ORDER_TEXT_LEN_MAX} characters"),
        });
    }
    v.to_owned()
}

/// An order checked against the catalog, its tests grouped into the tubes to draw: what
/// [`Lab::write_order`] writes. The patient is given at write time, so that an order arriving
/// with a new patient (HL7 from the EHR) can register them in the same transaction.
#[derive(Debug, Clone)]
pub(crate) struct PreparedOrder {
    provider: String,
    note: String,
    placer_number: Option<String>,
    priority: Priority,
    /// Containers in the order their first test was asked for.
    container_order: Vec<String>,
    /// The tests (and calculations riding along) on each container.
    by_container: BTreeMap<String, Vec<cuvette_domain::catalog::OrderedTest>>,
}

impl Lab {
    /// Places an order: expands panels, groups the tests by container into specimens and
    /// gives each an accession number.
    pub async fn place_order(&self, actor: &Actor, order: &PlaceOrder) -> AppResult<PlacedOrder> {
        self.require(actor, Action::PlaceOrder)?;
        let mut errors = Vec::new();
        let prepared = self.prepare_order(order, &mut errors);
        let patient = match self.store.patient(order.patient_id).await {
            Ok(p) => Some(p),
            Err(cuvette_store::StoreError::NotFound(_)) => {
                errors.push(FieldError {
                    field: "patient_id".into(),
                    message: "no patient with this id: search again".into(),
                });
                None
            }
            Err(e) => return Err(e.into()),
        };
        let (Some(prepared), Some(patient), true) = (prepared, patient, errors.is_empty()) else {
            return Err(AppError::Invalid(errors));
        };
        let mut tx = self.store.begin().await?;
        let result = self.write_order(&mut tx, actor, patient.id, &prepared, None).await?;
        tx.commit().await?;
        Ok(result)
    }

    /// Checks an order form (everything but the patient) and groups its tests by container;
    /// every problem is pushed to `errors`, and nothing is returned unless the form is valid.
    pub(crate) fn prepare_order(
        &self,
        order: &PlaceOrder,
        errors: &mut Vec<FieldError>,
    ) -> Option<PreparedOrder> {
        let errors_before = errors.len();
        let provider =
            text_field(errors, "provider", &order.provider, Some("enter the ordering provider"));
        let note = text_field(errors, "clinical_note", &order.clinical_note, None);
        let placer_number = order
            .placer_number
            .as_deref()
            .map(|p| text_field(errors, "placer_number", p, None))
            .filter(|p| !p.is_empty());
        let priority = Priority::parse(&order.priority);
        if priority.is_none() {
            errors.push(FieldError {
                field: "priority".into(),
                message: "choose routine or STAT".into(),
            });
        }
        let codes: Vec<String> = order
            .tests
            .iter()
            .flat_map(|t| t.split([',', ' ', '\n']))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        let catalog = self.catalog();
        let mut tests = Vec::new();
        if codes.is_empty() {
            errors.push(FieldError {
                field: "tests".into(),
                message: "enter at least one test or panel code, for example BMP".into(),
            });
        } else if codes.len() > ORDER_CODES_MAX {
            errors.push(FieldError {
                field: "tests".into(),
                message: format!("at most {ORDER_CODES_MAX} codes per order"),
            });
        } else {
            match catalog.catalog.expand_order(&codes) {
                Ok(t) => tests = t,
                Err(e) => errors.push(FieldError { field: "tests".into(), message: e.to_string() }),
            }
        }
        let priority = priority?;
        if errors.len() > errors_before {
            return None;
        }

        // Measured tests share a tube when their container is the same; a calculation rides
        // on the tube of its first input.
        let mut by_container: BTreeMap<String, Vec<cuvette_domain::catalog::OrderedTest>> =
            BTreeMap::new();
        let mut container_order: Vec<String> = Vec::new();
        let mut calculations = Vec::new();
        for t in &tests {
            let Some(def) = catalog.catalog.test(&t.code) else {
                errors.push(FieldError {
                    field: "tests".into(),
                    message: format!("unknown test {}", t.code),
                });
                return None;
            };
            if def.is_calculated() {
                calculations.push(t);
                continue;
            }
            let tube = def.primary_container().to_owned();
            if !by_container.contains_key(&tube) {
                container_order.push(tube.clone());
            }
            by_container.entry(tube).or_default().push(t.clone());
        }
        for c in calculations {
            let def = catalog.catalog.test(&c.code).expect("expanded from the catalog");
            let inputs = def.calculation.as_ref().map(|r| r.inputs.clone()).unwrap_or_default();
            let home = container_order
                .iter()
                .find(|container| by_container[*container].iter().any(|t| inputs.contains(&t.code)))
                .or(container_order.first())
                .cloned();
            if let Some(home) = home {
                by_container.get_mut(&home).expect("listed container").push(c.clone());
            }
        }
        Some(PreparedOrder {
            provider,
            note,
            placer_number,
            priority,
            container_order,
            by_container,
        })
    }

    /// Writes a prepared order for a patient inside `tx`: the order, a specimen with a new
    /// accession number per container — or, when the EHR sent the specimen, all its tests on
    /// that one (written by the first order naming it) —, its ordered tests, and the audit
    /// event.
    pub(crate) async fn write_order(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        patient_id: i64,
        order: &PreparedOrder,
        sent: Option<&mut SentSpecimen>,
    ) -> AppResult<PlacedOrder> {
        let catalog = self.catalog();
        let PreparedOrder {
            provider,
            note,
            placer_number,
            priority,
            container_order,
            by_container,
        } = order;
        let now = self.now_at();
        let year =
            i64::from(self.now().to_zoned_datetime(self.config.time_zone.clone()).year() % 100);
        let order_id = tx
            .insert_order(
                &NewOrder {
                    patient_id,
                    provider,
                    priority: *priority,
                    clinical_note: note,
                    placer_number: placer_number.as_deref(),
                },
                &actor.name,
                now,
            )
            .await?;
        let mut placed = Vec::new();
        // Without a specimen from the EHR, one specimen per container.
        let by_tube: &[String] = if sent.is_some() { &[] } else { container_order };
        if let Some(sent) = sent {
            // The EHR grouped the tests: one specimen, the container of the first test.
            let tests: Vec<&cuvette_domain::catalog::OrderedTest> =
                container_order.iter().flat_map(|c| &by_container[c]).collect();
            let (specimen_id, accession) = match &sent.written {
                Some(written) => written.clone(),
                None => {
                    let container = container_order.first().cloned().unwrap_or_default();
                    let accession = new_accession(tx, year).await?;
                    let specimen_id = tx
                        .insert_specimen(
                            order_id,
                            &NewSpecimen {
                                accession: &accession,
                                container: &container,
                                specimen_type: &sent.specimen_type,
                                recollection_of: None,
                                placer_specimen_id: Some(&sent.placer_id),
                                collected: sent.collected_at.map(|at| (at, actor.name.as_str())),
                            },
                        )
                        .await?;
                    sent.written = Some((specimen_id, accession.clone()));
                    (specimen_id, accession)
                }
            };
            let status = match sent.collected_at {
                Some(_) => TestStatus::Collected,
                None => TestStatus::Ordered,
            };
            for t in &tests {
                let def = catalog.catalog.test(&t.code).ok_or_else(|| {
                    AppError::Conflict(
                        "the catalog changed while the order was placed: place it again".into(),
                    )
                })?;
                tx.insert_ordered_test(
                    order_id,
                    specimen_id,
                    &NewOrderedTest {
                        test_code: &t.code,
                        panel_code: t.panel.as_deref(),
                        discipline: &def.discipline,
                    },
                    status,
                    now,
                )
                .await?;
            }
            placed.push(PlacedSpecimen {
                accession,
                container: container_order.first().cloned().unwrap_or_default(),
                tests: tests.iter().map(|t| t.code.clone()).collect(),
                placer_specimen_id: Some(sent.placer_id.clone()),
                collected_at: sent.collected_at,
            });
        }
        for container in by_tube {
            let specimen_tests = &by_container[container];
            let first = catalog.catalog.test(&specimen_tests[0].code).ok_or_else(|| {
                AppError::Conflict(
                    "the catalog changed while the order was placed: place it again".into(),
                )
            })?;
            let accession = new_accession(tx, year).await?;
            let specimen_id = tx
                .insert_specimen(
                    order_id,
                    &NewSpecimen {
                        accession: &accession,
                        container,
                        specimen_type: &first.specimen,
                        recollection_of: None,
                        placer_specimen_id: None,
                        collected: None,
                    },
                )
                .await?;
            for t in specimen_tests {
                let def = catalog.catalog.test(&t.code).ok_or_else(|| {
                    AppError::Conflict(
                        "the catalog changed while the order was placed: place it again".into(),
                    )
                })?;
                tx.insert_ordered_test(
                    order_id,
                    specimen_id,
                    &NewOrderedTest {
                        test_code: &t.code,
                        panel_code: t.panel.as_deref(),
                        discipline: &def.discipline,
                    },
                    TestStatus::Ordered,
                    now,
                )
                .await?;
            }
            placed.push(PlacedSpecimen {
                accession,
                container: container.clone(),
                tests: specimen_tests.iter().map(|t| t.code.clone()).collect(),
                placer_specimen_id: None,
                collected_at: None,
            });
        }
        let result = PlacedOrder { order_id, specimens: placed };
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::OrderPlace,
            entity: "order",
            entity_id: order_id.to_string(),
            patient_id: Some(patient_id),
            before: None,
            after: audit::state(&audit::OrderPlaced {
                provider,
                priority: priority.code(),
                clinical_note: note,
                placer_number: placer_number.as_deref(),
                specimens: &result.specimens,
            }),
        })
        .await?;
        Ok(result)
    }

    async fn specimen_for_step(
        &self,
        accession: &str,
        step: SpecimenStep,
    ) -> AppResult<SpecimenRow> {
        let accession = Accession::parse(accession)
            .map_err(|e| AppError::invalid("accession", e.to_string()))?;
        let specimen =
            self.store.specimen_by_accession(&accession.to_string()).await?.ok_or_else(|| {
                AppError::NotFound(format!("no specimen has accession number {accession}"))
            })?;
        let status = specimen.status;
        specimen_step(status, step).map_err(|e| AppError::Refused(e.to_string()))?;
        Ok(specimen)
    }

    /// Records that a specimen was drawn, now, by the actor.
    pub async fn collect(&self, actor: &Actor, accession: &str) -> AppResult<SpecimenRow> {
        self.require(actor, Action::CollectSpecimen)?;
        let before = self.specimen_for_step(accession, SpecimenStep::Collect).await?;
        let patient = self.store.patient_of_specimen(before.id).await?;
        let now = self.now_at();
        let mut after = before.clone();
        after.status = SpecimenStatus::Collected;
        after.collected_at = Some(now);
        after.collected_by = Some(actor.name.clone());
        let mut tx = self.store.begin().await?;
        tx.update_specimen(&after).await?;
        tx.update_tests_of_specimen(after.id, &[TestStatus::Ordered], TestStatus::Collected, now)
            .await?;
        audit_specimen(
            &mut tx,
            actor,
            AuditAction::SpecimenCollect,
            &before,
            &after,
            patient.id,
            now,
        )
        .await?;
        tx.commit().await?;
        after.row_version += 1;
        Ok(after)
    }

    /// Receives a specimen in the lab after checking two patient identifiers on its label.
    pub async fn receive(
        &self,
        actor: &Actor,
        accession: &str,
        check: &IdentityCheck,
    ) -> AppResult<SpecimenRow> {
        self.require(actor, Action::ReceiveSpecimen)?;
        let before = self.specimen_for_step(accession, SpecimenStep::Receive).await?;
        let patient = self.store.patient_of_specimen(before.id).await?;
        let today = self.now().to_zoned_datetime(self.config.time_zone.clone()).date();
        let mut given = 0;
        let mut errors = Vec::new();
        if let Some(mrn) = check.mrn.as_deref().filter(|m| !m.trim().is_empty()) {
            given += 1;
            if Mrn::parse(mrn).map(|m| m.as_str() != patient.mrn).unwrap_or(true) {
                errors.push(FieldError { field: "mrn".into(), message: "the MRN on the label does not match the patient on the order: do not receive; reject as mislabeled".into() });
            }
        }
        if let Some(dob) = check.birth_date.as_deref().filter(|d| !d.trim().is_empty()) {
            given += 1;
            if parse_birth_date(dob, today)
                .map(|d| d.to_string() != patient.birth_date)
                .unwrap_or(true)
            {
                errors.push(FieldError { field: "birth_date".into(), message: "the date of birth on the label does not match the patient on the order: do not receive; reject as mislabeled".into() });
            }
        }
        if let Some(name) = check.family_name.as_deref().filter(|n| !n.trim().is_empty()) {
            given += 1;
            if name.trim().to_lowercase() != patient.family_name.trim().to_lowercase() {
                errors.push(FieldError { field: "family_name".into(), message: "the name on the label does not match the patient on the order: do not receive; reject as mislabeled".into() });
            }
        }
        if given < 2 {
            errors.push(FieldError {
                field: "identifiers".into(),
                message: "check two identifiers on the label: enter the MRN and the date of birth (or family name)".into(),
            });
        }
        if !errors.is_empty() {
            self.audit_as(
                &actor.name,
                AuditAction::SpecimenReceiveRefused,
                "specimen",
                &before.accession,
                Some(patient.id),
            )
            .await?;
            return Err(AppError::Invalid(errors));
        }
        let now = self.now_at();
        let mut after = before.clone();
        after.status = SpecimenStatus::Received;
        after.received_at = Some(now);
        after.received_by = Some(actor.name.clone());
        let mut tx = self.store.begin().await?;
        tx.update_specimen(&after).await?;
        tx.update_tests_of_specimen(after.id, &[TestStatus::Collected], TestStatus::Received, now)
            .await?;
        audit_specimen(
            &mut tx,
            actor,
            AuditAction::SpecimenReceive,
            &before,
            &after,
            patient.id,
            now,
        )
        .await?;
        tx.commit().await?;
        after.row_version += 1;
        Ok(after)
    }

    /// Rejects a specimen: its open tests are cancelled and a recollection specimen with the
    /// same tests is created. Returns the recollection's accession number.
    pub async fn reject(
        &self,
        actor: &Actor,
        accession: &str,
        reason: &str,
        note: &str,
    ) -> AppResult<String> {
        self.require(actor, Action::RejectSpecimen)?;
        let reason = RejectionReason::parse(reason)
            .ok_or_else(|| AppError::invalid("reason", "choose why the specimen is rejected"))?;
        let note = note.trim();
        if note.chars().count() > ORDER_TEXT_LEN_MAX {
            return Err(AppError::invalid(
                "note",
                format!("the note is at most {ORDER_TEXT_LEN_MAX} characters"),
            ));
        }
        let before = self.specimen_for_step(accession, SpecimenStep::Reject).await?;
        let patient = self.store.patient_of_specimen(before.id).await?;
        let tests = self
            .store
            .work_items(&cuvette_store::WorklistFilter {
                specimen_id: Some(before.id),
                limit: 1000,
                ..Default::default()
            })
            .await?;
        if tests.iter().any(|t| t.test.status.is_released()) {
            return Err(AppError::Refused(
                "results on this specimen were already released: correct them instead of rejecting the specimen".into(),
            ));
        }
        let now = self.now_at();
        let year =
            i64::from(self.now().to_zoned_datetime(self.config.time_zone.clone()).year() % 100);
        let mut after = before.clone();
        after.status = SpecimenStatus::Rejected;
        after.rejected_at = Some(now);
        after.rejected_by = Some(actor.name.clone());
        after.reject_reason = Some(reason);
        after.reject_note = Some(note.to_owned());
        let mut tx = self.store.begin().await?;
        tx.update_specimen(&after).await?;
        let open = [
            TestStatus::Ordered,
            TestStatus::Collected,
            TestStatus::Received,
            TestStatus::InProcess,
        ];
        tx.update_tests_of_specimen(after.id, &open, TestStatus::Cancelled, now).await?;
        let recollection = new_accession(&mut tx, year).await?;
        let new_id = tx
            .insert_specimen(
                before.order_id,
                &NewSpecimen {
                    accession: &recollection,
                    container: &before.container,
                    specimen_type: &before.specimen_type,
                    recollection_of: Some(before.id),
                    placer_specimen_id: None,
                    collected: None,
                },
            )
            .await?;
        for t in &tests {
            tx.insert_ordered_test(
                before.order_id,
                new_id,
                &NewOrderedTest {
                    test_code: &t.test.test_code,
                    panel_code: t.test.panel_code.as_deref(),
                    discipline: &t.test.discipline,
                },
                TestStatus::Ordered,
                now,
            )
            .await?;
        }
        audit_specimen(
            &mut tx,
            actor,
            AuditAction::SpecimenReject,
            &before,
            &after,
            patient.id,
            now,
        )
        .await?;
        tx.audit(NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::SpecimenRecollect,
            entity: "specimen",
            entity_id: recollection.clone(),
            patient_id: Some(patient.id),
            before: None,
            after: audit::state(&audit::Recollection {
                recollection_of: &before.accession,
                reason: reason.code(),
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(recollection)
    }
}

/// How many taken numbers `new_accession` skips before giving up.
const ACCESSION_SKIPS_MAX: usize = 1000;

async fn new_accession(tx: &mut Tx, year: i64) -> AppResult<String> {
    for _ in 0..ACCESSION_SKIPS_MAX {
        let sequence = tx.next_accession_sequence(year).await?;
        let accession = u32::try_from(sequence)
            .ok()
            .and_then(|s| Accession::new(year as u16, s))
            .ok_or_else(|| {
            AppError::Refused(
                "this year's accession numbers are used up: call the system administrator".into(),
            )
        })?;
        let accession = accession.to_string();
        // The sequence can fall behind the specimens (a restored backup, numbers issued
        // elsewhere): a number already on a tube is skipped, never issued twice.
        if !tx.accession_taken(&accession).await? {
            return Ok(accession);
        }
        tracing::warn!(%accession, "accession sequence behind the specimens: skipping a number already in use");
    }
    Err(AppError::Refused(
        "the accession sequence has fallen far behind the specimens on file: call the system administrator".into(),
    ))
}

async fn audit_specimen(
    tx: &mut Tx,
    actor: &Actor,
    action: AuditAction,
    before: &SpecimenRow,
    after: &SpecimenRow,
    patient_id: i64,
    now: cuvette_domain::time::Timestamp,
) -> AppResult<()> {
    tx.audit(NewAuditEvent {
        at: now,
        actor: &actor.name,
        action,
        entity: "specimen",
        entity_id: before.accession.clone(),
        patient_id: Some(patient_id),
        before: audit::state(before),
        after: audit::state(after),
    })
    .await?;
    Ok(())
}
