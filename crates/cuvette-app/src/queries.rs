//! What the bench reads: a specimen with its tests, worklists, the review queue, the
//! patient's cumulative report and the audit log. Views of a patient's results are audited.

use std::collections::{BTreeMap, BTreeSet};

use cuvette_domain::Action;
use cuvette_domain::Review;
use cuvette_domain::audit::AuditAction;
use cuvette_domain::workflow::{Priority, SpecimenStatus, TestStatus};
use cuvette_store::{
    AttachmentRow, AuditEvent, AuditFilter, AuditVerification, CriticalCallRow, OrderRow,
    PatientRow, ResultRow, SpecimenRow, WorkItem, WorklistFilter,
};

use crate::audit;
use crate::{Actor, AppError, AppResult, Lab};

/// A test on a specimen with every result version and documented call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestView {
    /// The test, specimen, order, patient and latest result.
    pub item: WorkItem,
    /// Test name.
    pub name: String,
    /// LOINC.
    pub loinc: String,
    /// Unit.
    pub unit: String,
    /// Whether it is calculated.
    pub calculated: bool,
    /// Every result version, oldest first.
    pub versions: Vec<ResultRow>,
    /// Documented critical calls.
    pub calls: Vec<CriticalCallRow>,
    /// The files instruments sent as results (HL7 ED), by result version, oldest first.
    pub attachments: Vec<AttachmentRow>,
}

impl TestView {
    /// The latest released version (what the physician sees).
    pub fn released(&self) -> Option<&ResultRow> {
        self.versions.iter().rev().find(|r| r.released_at.is_some())
    }

    /// The file stored with a result version, when the result is one.
    pub fn attachment_of(&self, result: &ResultRow) -> Option<&AttachmentRow> {
        self.attachments.iter().find(|a| a.result_version == result.version)
    }

    /// The released version before the current released one, when it was corrected.
    pub fn corrected_from(&self) -> Option<&ResultRow> {
        let current = self.released()?;
        self.versions.iter().rev().find(|r| r.released_at.is_some() && r.version < current.version)
    }
}

/// A result's file with its bytes, as downloaded.
#[derive(Debug, Clone)]
pub struct ResultFile {
    /// What it is.
    pub attachment: AttachmentRow,
    /// The file.
    pub content: Vec<u8>,
    /// The test it is the result of, with its specimen and patient.
    pub item: WorkItem,
}

/// A specimen with everything about it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpecimenView {
    /// The specimen.
    pub specimen: SpecimenRow,
    /// Its order.
    pub order: OrderRow,
    /// The patient.
    pub patient: PatientRow,
    /// Its tests.
    pub tests: Vec<TestView>,
    /// When it was rejected and a recollection ordered: the new specimen's accession.
    pub recollection: Option<String>,
}

/// The latest released value of a test from an earlier specimen of the same patient.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PreviousResult {
    /// When the earlier specimen was collected.
    pub collected_at: cuvette_domain::time::Timestamp,
    /// Its current released version.
    pub result: ResultRow,
}

/// One line of a cumulative report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReportRow {
    /// The test with its versions.
    pub test: TestView,
    /// Collection time.
    pub collected_at: Option<cuvette_domain::time::Timestamp>,
}

/// A patient's released results, newest specimen first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CumulativeReport {
    /// The patient.
    pub patient: PatientRow,
    /// Released results.
    pub rows: Vec<ReportRow>,
}

/// A tube waiting to be drawn, with every test it carries.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DueDraw {
    /// The first test on the tube, with the specimen, order and patient.
    pub item: WorkItem,
    /// What the tube carries, in order: panel codes for tests ordered in a panel, test
    /// codes for the others.
    pub tests: Vec<String>,
}

/// The longest worklist returned at once.
pub const WORKLIST_LEN_MAX: i64 = 5000;

/// How many of a patient's earlier tests are scanned for their previous results.
pub const PREVIOUS_SCAN_MAX: i64 = 5000;

impl Lab {
    async fn test_views(&self, items: Vec<WorkItem>) -> AppResult<Vec<TestView>> {
        let catalog = self.catalog();
        let ids: Vec<i64> = items.iter().map(|i| i.test.id).collect();
        let all = self.store.results_of_tests(&ids).await?;
        // Calls are documented only for critical results: one query for all of them.
        let critical: Vec<i64> = items
            .iter()
            .filter(|i| i.result.as_ref().is_some_and(|r| r.flags.is_critical()))
            .map(|i| i.test.id)
            .collect();
        let all_calls = self.store.critical_calls(&critical).await?;
        let all_files = self.store.attachments_of_tests(&ids).await?;
        let mut views = Vec::with_capacity(items.len());
        for item in items {
            let def = catalog.catalog.test(&item.test.test_code);
            let calls = if critical.contains(&item.test.id) {
                all_calls.iter().filter(|c| c.ordered_test_id == item.test.id).cloned().collect()
            } else {
                vec![]
            };
            views.push(TestView {
                name: def.map(|d| d.name.clone()).unwrap_or_else(|| item.test.test_code.clone()),
                loinc: def.map(|d| d.loinc.clone()).unwrap_or_default(),
                unit: def.map(|d| d.unit.clone()).unwrap_or_default(),
                calculated: def.is_some_and(|d| d.is_calculated()),
                versions: all
                    .iter()
                    .filter(|r| r.ordered_test_id == item.test.id)
                    .cloned()
                    .collect(),
                calls,
                attachments: all_files
                    .iter()
                    .filter(|a| a.ordered_test_id == item.test.id)
                    .cloned()
                    .collect(),
                item,
            });
        }
        Ok(views)
    }

    /// A specimen by accession number, with its tests and results. Audited as a view of the
    /// patient's record when the actor may see results.
    pub async fn specimen_view(&self, actor: &Actor, accession: &str) -> AppResult<SpecimenView> {
        self.require(actor, Action::SearchPatients)?;
        let accession = cuvette_domain::Accession::parse(accession)
            .map_err(|e| AppError::invalid("accession", e.to_string()))?;
        let specimen =
            self.store.specimen_by_accession(&accession.to_string()).await?.ok_or_else(|| {
                AppError::NotFound(format!("no specimen has accession number {accession}"))
            })?;
        let order = self.store.order(specimen.order_id).await?;
        let patient = self.store.patient(order.patient_id).await?;
        let items = self
            .store
            .work_items(&WorklistFilter {
                specimen_id: Some(specimen.id),
                limit: 1000,
                ..Default::default()
            })
            .await?;
        let mut tests = self.test_views(items).await?;
        if self.privileges().may(actor.role, Action::ViewResults) {
            self.audit_as(
                &actor.name,
                AuditAction::SpecimenView,
                "specimen",
                &specimen.accession,
                Some(patient.id),
            )
            .await?;
        } else {
            // Those who collect and label see what to draw, not the results.
            for t in &mut tests {
                t.versions.clear();
                t.item.result = None;
                t.calls.clear();
                t.attachments.clear();
            }
        }
        let recollection = if specimen.status == SpecimenStatus::Rejected {
            self.store
                .specimens_of_order(specimen.order_id)
                .await?
                .into_iter()
                .find(|s| s.recollection_of == Some(specimen.id))
                .map(|s| s.accession)
        } else {
            None
        };
        Ok(SpecimenView { specimen, order, patient, tests, recollection })
    }

    /// A file an instrument sent as a result (an analyzer's PDF report), with its bytes, for
    /// someone who may see results. Audited as a view of the patient's record: the file is
    /// the result.
    pub async fn result_attachment(&self, actor: &Actor, id: i64) -> AppResult<ResultFile> {
        self.require(actor, Action::ViewResults)?;
        let (attachment, content) = self.store.attachment(id).await.map_err(|e| match e {
            cuvette_store::StoreError::NotFound(_) => {
                AppError::NotFound(format!("there is no attached file {id}"))
            }
            other => AppError::from(other),
        })?;
        let item = self.work_item(attachment.ordered_test_id).await?;
        let mut tx = self.store.begin().await?;
        tx.audit(cuvette_store::NewAuditEvent {
            at: self.now_at(),
            actor: &actor.name,
            action: AuditAction::ResultAttachmentView,
            entity: "result",
            entity_id: format!("{}/{}", item.specimen.accession, item.test.test_code),
            patient_id: Some(item.patient.id),
            before: None,
            after: audit::state(&audit::AttachmentViewed {
                version: attachment.result_version,
                name: &attachment.name,
                sha256: &attachment.sha256,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(ResultFile { attachment, content, item })
    }

    /// The specimen view holding an ordered test, found from the test's id.
    pub async fn specimen_view_of_test(
        &self,
        actor: &Actor,
        test_id: i64,
    ) -> AppResult<SpecimenView> {
        self.require(actor, Action::ViewResults)?;
        let not_found = |_| AppError::NotFound(format!("there is no ordered test {test_id}"));
        let test = self.store.ordered_test(test_id).await.map_err(not_found)?;
        let specimen = self.store.specimen(test.specimen_id).await?;
        self.specimen_view(actor, &specimen.accession).await
    }

    /// For each test on this specimen, the latest released value from an earlier specimen of
    /// the same patient, by test code. Two queries, however many tests and earlier specimens.
    pub async fn previous_results(
        &self,
        actor: &Actor,
        view: &SpecimenView,
    ) -> AppResult<BTreeMap<String, PreviousResult>> {
        self.require(actor, Action::ViewResults)?;
        let codes: BTreeSet<&str> =
            view.tests.iter().map(|t| t.item.test.test_code.as_str()).collect();
        let this = view.specimen.collected_at;
        let items = self
            .store
            .work_items(&WorklistFilter {
                patient_id: Some(view.patient.id),
                limit: PREVIOUS_SCAN_MAX,
                ..WorklistFilter::default()
            })
            .await?;
        let earlier: Vec<_> = items
            .iter()
            .filter(|i| {
                i.specimen.id != view.specimen.id
                    && codes.contains(i.test.test_code.as_str())
                    && i.result.is_some()
                    && i.specimen.collected_at.is_some()
                    && this.is_none_or(|t| i.specimen.collected_at < Some(t))
            })
            .collect();
        let ids: Vec<i64> = earlier.iter().map(|i| i.test.id).collect();
        let mut released: BTreeMap<i64, ResultRow> = BTreeMap::new();
        for r in self.store.results_of_tests(&ids).await? {
            if r.released_at.is_some() {
                // Oldest version first, so the last one kept is the current released value.
                released.insert(r.ordered_test_id, r);
            }
        }
        let mut best: BTreeMap<String, PreviousResult> = BTreeMap::new();
        for i in earlier {
            let (Some(r), Some(at)) = (released.get(&i.test.id), i.specimen.collected_at) else {
                continue;
            };
            if best.get(&i.test.test_code).is_some_and(|p| p.collected_at >= at) {
                continue;
            }
            best.insert(
                i.test.test_code.clone(),
                PreviousResult { collected_at: at, result: r.clone() },
            );
        }
        Ok(best)
    }

    /// The calls documented for these tests' critical results, in one query, oldest first.
    pub async fn critical_calls_of_tests(
        &self,
        actor: &Actor,
        test_ids: &[i64],
    ) -> AppResult<Vec<CriticalCallRow>> {
        self.require(actor, Action::ViewResults)?;
        Ok(self.store.critical_calls(test_ids).await?)
    }

    /// Open tests on a bench: received or in process, STAT first, then oldest.
    pub async fn worklist(
        &self,
        actor: &Actor,
        discipline: Option<&str>,
    ) -> AppResult<Vec<WorkItem>> {
        self.require(actor, Action::ViewResults)?;
        let items = self
            .store
            .work_items(&WorklistFilter {
                discipline: discipline.filter(|d| !d.is_empty()).map(str::to_owned),
                statuses: vec![TestStatus::Received, TestStatus::InProcess],
                limit: WORKLIST_LEN_MAX,
                ..Default::default()
            })
            .await?;
        self.audit_list_view(actor, "worklist", discipline.unwrap_or("all"), &items).await?;
        Ok(items)
    }

    /// Records who saw which patients' results in a list (worklist, review queue): one event
    /// per view, naming the patients and specimens shown.
    pub(crate) async fn audit_list_view(
        &self,
        actor: &Actor,
        list: &str,
        which: &str,
        items: &[WorkItem],
    ) -> AppResult<()> {
        let mut patients: Vec<i64> =
            items.iter().filter(|i| i.result.is_some()).map(|i| i.patient.id).collect();
        patients.sort_unstable();
        patients.dedup();
        if patients.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        tx.audit(cuvette_store::NewAuditEvent {
            at: self.now_at(),
            actor: &actor.name,
            action: AuditAction::ResultsViewList,
            entity: list,
            entity_id: which.to_owned(),
            patient_id: (patients.len() == 1).then(|| patients[0]),
            before: None,
            after: audit::state(&audit::ListViewed { patients: &patients, rows: items.len() }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Tubes waiting to be drawn, STAT first, each once with what it carries.
    pub async fn collection_list(&self, actor: &Actor) -> AppResult<Vec<DueDraw>> {
        self.require(actor, Action::CollectSpecimen)?;
        let items = self
            .store
            .work_items(&WorklistFilter {
                statuses: vec![TestStatus::Ordered],
                limit: WORKLIST_LEN_MAX,
                ..Default::default()
            })
            .await?;
        let mut draws: Vec<DueDraw> = Vec::new();
        for item in items {
            let code = item.test.panel_code.clone().unwrap_or_else(|| item.test.test_code.clone());
            match draws.iter_mut().find(|d| d.item.specimen.id == item.specimen.id) {
                Some(d) if !d.tests.contains(&code) => d.tests.push(code),
                Some(_) => {}
                None => draws.push(DueDraw { tests: vec![code], item }),
            }
        }
        Ok(draws)
    }

    /// Results waiting for verification: critical first, then those needing a technologist,
    /// then STAT, then oldest.
    pub async fn review_queue(&self, actor: &Actor) -> AppResult<Vec<WorkItem>> {
        self.require(actor, Action::ViewResults)?;
        // Only what is open is read: the released history, however long, is never fetched.
        let items: Vec<WorkItem> = self
            .store
            .work_items(&WorklistFilter {
                awaiting_verification: true,
                limit: WORKLIST_LEN_MAX,
                ..Default::default()
            })
            .await?;
        let mut keyed = Vec::with_capacity(items.len());
        for item in items {
            // The mark and the result agree unless the database was changed behind Cuvette's
            // back: a released result is then left out, never shown as waiting.
            let Some(r) = item.result.as_ref().filter(|r| r.released_at.is_none()) else {
                continue;
            };
            let key = (
                !r.flags.is_critical(),
                r.review != Review::Technologist,
                item.order.priority != Priority::Stat,
                r.entered_at,
            );
            keyed.push((key, item));
        }
        keyed.sort_by_key(|(key, _)| *key);
        let items: Vec<WorkItem> = keyed.into_iter().map(|(_, item)| item).collect();
        self.audit_list_view(actor, "review_queue", "all", &items).await?;
        Ok(items)
    }

    /// The patient's released results, newest first; audited as a view of the record.
    pub async fn cumulative_report(
        &self,
        actor: &Actor,
        patient_id: i64,
    ) -> AppResult<CumulativeReport> {
        self.require(actor, Action::ViewResults)?;
        let patient = self.store.patient(patient_id).await?;
        let items = self
            .store
            .work_items(&WorklistFilter {
                patient_id: Some(patient_id),
                limit: 100_000,
                ..Default::default()
            })
            .await?;
        let views = self.test_views(items).await?;
        let mut rows: Vec<ReportRow> = views
            .into_iter()
            .filter(|v| v.released().is_some())
            .map(|v| ReportRow { collected_at: v.item.specimen.collected_at, test: v })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.collected_at));
        self.audit_as(
            &actor.name,
            AuditAction::PatientViewResults,
            "patient",
            &patient_id.to_string(),
            Some(patient_id),
        )
        .await?;
        Ok(CumulativeReport { patient, rows })
    }

    /// The orders of a patient with their specimens.
    pub async fn patient_orders(
        &self,
        actor: &Actor,
        patient_id: i64,
    ) -> AppResult<Vec<(OrderRow, Vec<SpecimenRow>)>> {
        self.require(actor, Action::SearchPatients)?;
        let mut out = Vec::new();
        for order in self.store.orders_of_patient(patient_id).await? {
            let specimens = self.store.specimens_of_order(order.id).await?;
            out.push((order, specimens));
        }
        Ok(out)
    }

    /// Audit events, newest first.
    pub async fn audit_events(
        &self,
        actor: &Actor,
        filter: &AuditFilter,
    ) -> AppResult<Vec<AuditEvent>> {
        self.require(actor, Action::ViewAudit)?;
        Ok(self.store.audit_events(filter).await?)
    }

    /// Recomputes the audit chain from its first event (those who may read the audit log).
    pub async fn verify_audit(&self, actor: &Actor) -> AppResult<AuditVerification> {
        self.require(actor, Action::ViewAudit)?;
        Ok(self.store.verify_audit().await?)
    }

    /// Counts of open tests per bench and status.
    pub async fn open_counts(&self, actor: &Actor) -> AppResult<Vec<(String, TestStatus, i64)>> {
        self.require(actor, Action::SearchPatients)?;
        Ok(self.store.open_counts().await?)
    }
}
