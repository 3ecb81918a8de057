//! What other systems read through the FHIR API: patients, ordered tests, specimens, released
//! results and the report of each specimen, a page at a time.
//!
//! Only released results leave the lab. A result entered but not released — waiting for
//! review, held by autoverification, or under a QC lockout — is not shown to a physician's
//! system at all, not even as preliminary: the lab has not yet vouched for it, and a number
//! read before release may be corrected before anyone in the lab has looked at it. A version
//! released as preliminary (the instrument said so) is shown as preliminary; a correction of a
//! released result is shown as corrected from its release on. A test without a released
//! result is an order in progress: its ServiceRequest is active, its report partial.
//!
//! Every read costs a fixed number of queries whatever the page holds: one for the page, one
//! more for the tests of a page of specimens, one for the patients a search includes — plus
//! its audit event.

use cuvette_domain::Action;
use cuvette_domain::audit::AuditAction;
use cuvette_domain::catalog::{ReferenceInterval, TestDefinition};
use cuvette_domain::time::Timestamp;
use cuvette_domain::workflow::ReleaseStatus;
use cuvette_store::{
    PatientPageFilter, PatientRow, SpecimenItem, SpecimenPageFilter, TestPageFilter, WorkItem,
};

use crate::audit;
use crate::results::patient_context;
use crate::{Actor, AppResult, Lab};

/// The most resources one page holds (FHIR `_count`).
pub const PAGE_LEN_MAX: i64 = 1000;

/// The most reports one page holds: each carries its specimen's tests, and a page of reports
/// reads at most [`cuvette_store::FHIR_ROWS_MAX`] tests.
pub const REPORT_PAGE_LEN_MAX: i64 = 100;

/// One page of a read, in id order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    /// What the page holds.
    pub items: Vec<T>,
    /// Whether more follow the last one.
    pub more: bool,
}

impl<T> Page<T> {
    /// The page of `count` from rows read with one more than `count`.
    fn of(mut rows: Vec<T>, count: i64) -> Page<T> {
        let count = usize::try_from(count).unwrap_or(0);
        let more = rows.len() > count;
        rows.truncate(count);
        Page { items: rows, more }
    }
}

/// A released result: the test with its current released version.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReleasedResult {
    /// The test, specimen, order and patient; `result` is the current released version.
    pub item: WorkItem,
    /// The test's definition in the catalog (absent for a test since removed from it).
    pub definition: Option<TestDefinition>,
    /// The reference interval that applied to this patient at collection.
    pub interval: Option<ReferenceInterval>,
}

impl ReleasedResult {
    /// The released version (always present: only released tests are read into this).
    pub fn result(&self) -> &crate::records::ResultRow {
        // Invariant: built only from rows whose released version was joined (`released_only`).
        self.item.result.as_ref().expect("a released result carries its released version")
    }
}

/// An ordered test (what an EHR reads as a ServiceRequest).
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrderedTest {
    /// The test, specimen, order, patient and current released version if any.
    pub item: WorkItem,
    /// The test's definition in the catalog.
    pub definition: Option<TestDefinition>,
}

/// How far the report of a specimen has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ReportStatus {
    /// Some results released, others still open.
    Partial,
    /// Every test released, some only as preliminary.
    Preliminary,
    /// Every test released as final.
    Final,
    /// Every test released, and a released result was corrected since.
    Corrected,
}

/// The released results of one specimen (what an EHR reads as a DiagnosticReport).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabReport {
    /// The specimen, its order and patient.
    pub specimen: SpecimenItem,
    /// Its released results, in test order.
    pub results: Vec<ReleasedResult>,
    /// How far it has come.
    pub status: ReportStatus,
    /// When its latest result was released.
    pub issued: Option<Timestamp>,
}

/// Which released results to read.
#[derive(Debug, Clone, Default)]
pub struct ResultQuery {
    /// Only this test (its id).
    pub id: Option<i64>,
    /// Only this patient's.
    pub patient_id: Option<i64>,
    /// Only on this specimen (accession number as printed or scanned).
    pub accession: Option<String>,
    /// Only tests with one of these LOINC codes.
    pub loinc: Option<Vec<String>>,
    /// Only collected at or after this.
    pub collected_from: Option<Timestamp>,
    /// Only collected before this.
    pub collected_before: Option<Timestamp>,
    /// Only released as one of these.
    pub statuses: Vec<ReleaseStatus>,
    /// Only tests after this id (the page before's last).
    pub after_id: i64,
    /// At most this many.
    pub count: i64,
}

/// Which specimens (or their reports) to read.
#[derive(Debug, Clone, Default)]
pub struct SpecimenQuery {
    /// Only this specimen (its id).
    pub id: Option<i64>,
    /// Only this patient's.
    pub patient_id: Option<i64>,
    /// Only this accession number.
    pub accession: Option<String>,
    /// Only collected at or after this.
    pub collected_from: Option<Timestamp>,
    /// Only collected before this.
    pub collected_before: Option<Timestamp>,
    /// Only specimens after this id.
    pub after_id: i64,
    /// At most this many.
    pub count: i64,
}

/// Which patients to read.
#[derive(Debug, Clone, Default)]
pub struct PatientPage {
    /// Only this patient.
    pub id: Option<i64>,
    /// Only the patient with this MRN.
    pub mrn: Option<String>,
    /// Only patients after this id.
    pub after_id: i64,
    /// At most this many.
    pub count: i64,
}

/// What a read is, for its audit event.
#[derive(Debug, Clone, Copy)]
pub enum FhirRead<'a> {
    /// One resource by id.
    Read(i64),
    /// A search, with its query as sent.
    Search(&'a str),
}

impl Lab {
    /// Released results, in test id order (audited as a view).
    pub async fn released_results(
        &self,
        actor: &Actor,
        q: &ResultQuery,
        read: FhirRead<'_>,
    ) -> AppResult<Page<ReleasedResult>> {
        self.require(actor, Action::ViewResults)?;
        let count = q.count.clamp(1, PAGE_LEN_MAX);
        let items = self.store.test_page(&self.test_filter(q, true, count + 1)?).await?;
        let page = Page::of(items, count);
        let results = self.released(page.items);
        let patients: Vec<i64> = results.iter().map(|r| r.item.patient.id).collect();
        self.audit_fhir(actor, "Observation", read, &patients).await?;
        Ok(Page { items: results, more: page.more })
    }

    /// Ordered tests, in id order (audited as a view of the specimens).
    pub async fn ordered_tests(
        &self,
        actor: &Actor,
        q: &ResultQuery,
        read: FhirRead<'_>,
    ) -> AppResult<Page<OrderedTest>> {
        self.require(actor, Action::SearchPatients)?;
        let count = q.count.clamp(1, PAGE_LEN_MAX);
        let page =
            Page::of(self.store.test_page(&self.test_filter(q, false, count + 1)?).await?, count);
        let catalog = self.catalog();
        let tests: Vec<OrderedTest> = page
            .items
            .into_iter()
            .map(|item| OrderedTest {
                definition: catalog.catalog.test(&item.test.test_code).cloned(),
                item,
            })
            .collect();
        let patients: Vec<i64> = tests.iter().map(|t| t.item.patient.id).collect();
        self.audit_fhir(actor, "ServiceRequest", read, &patients).await?;
        Ok(Page { items: tests, more: page.more })
    }

    /// Specimens with order and patient, in id order (audited as a view).
    pub async fn specimen_page(
        &self,
        actor: &Actor,
        q: &SpecimenQuery,
        read: FhirRead<'_>,
    ) -> AppResult<Page<SpecimenItem>> {
        self.require(actor, Action::SearchPatients)?;
        let count = q.count.clamp(1, PAGE_LEN_MAX);
        let rows = self.store.specimen_page(&self.specimen_filter(q, false, count + 1)?).await?;
        let page = Page::of(rows, count);
        let patients: Vec<i64> = page.items.iter().map(|s| s.patient.id).collect();
        self.audit_fhir(actor, "Specimen", read, &patients).await?;
        Ok(page)
    }

    /// The reports of specimens with at least one released result, in specimen id order
    /// (audited as a view of the results).
    pub async fn lab_reports(
        &self,
        actor: &Actor,
        q: &SpecimenQuery,
        read: FhirRead<'_>,
    ) -> AppResult<Page<LabReport>> {
        self.require(actor, Action::ViewResults)?;
        let count = q.count.clamp(1, REPORT_PAGE_LEN_MAX);
        let rows = self.store.specimen_page(&self.specimen_filter(q, true, count + 1)?).await?;
        let Page { items: specimens, more } = Page::of(rows, count);
        let ids: Vec<i64> = specimens.iter().map(|s| s.specimen.id).collect();
        let tests = if ids.is_empty() {
            Vec::new()
        } else {
            self.store
                .test_page(&TestPageFilter {
                    specimen_ids: ids,
                    limit: cuvette_store::FHIR_ROWS_MAX,
                    ..Default::default()
                })
                .await?
        };
        let mut reports = Vec::with_capacity(specimens.len());
        let mut by_specimen: std::collections::BTreeMap<i64, Vec<WorkItem>> = Default::default();
        for t in tests {
            by_specimen.entry(t.specimen.id).or_default().push(t);
        }
        for specimen in specimens {
            let items = by_specimen.remove(&specimen.specimen.id).unwrap_or_default();
            let open = items.iter().any(|i| {
                i.result.is_none()
                    && i.test.status != cuvette_domain::workflow::TestStatus::Cancelled
            });
            let results = self.released(items.into_iter().filter(|i| i.result.is_some()).collect());
            let released =
                |s: ReleaseStatus| results.iter().any(|r| r.result().release_status == Some(s));
            let status = if open {
                ReportStatus::Partial
            } else if released(ReleaseStatus::Preliminary) {
                ReportStatus::Preliminary
            } else if released(ReleaseStatus::Corrected) {
                ReportStatus::Corrected
            } else {
                ReportStatus::Final
            };
            let issued = results.iter().filter_map(|r| r.result().released_at).max();
            reports.push(LabReport { specimen, results, status, issued });
        }
        let patients: Vec<i64> = reports.iter().map(|r| r.specimen.patient.id).collect();
        self.audit_fhir(actor, "DiagnosticReport", read, &patients).await?;
        Ok(Page { items: reports, more })
    }

    /// Patients in id order (audited as a view).
    pub async fn patient_page(
        &self,
        actor: &Actor,
        q: &PatientPage,
        read: FhirRead<'_>,
    ) -> AppResult<Page<PatientRow>> {
        self.require(actor, Action::SearchPatients)?;
        let count = q.count.clamp(1, PAGE_LEN_MAX);
        let rows = self
            .store
            .patient_page(&PatientPageFilter {
                id: q.id,
                mrn: q.mrn.clone(),
                after_id: q.after_id,
                limit: count + 1,
            })
            .await?;
        let page = Page::of(rows, count);
        let patients: Vec<i64> = page.items.iter().map(|p| p.id).collect();
        self.audit_fhir(actor, "Patient", read, &patients).await?;
        Ok(page)
    }

    /// Patients by id, for a search's `_include` (audited with the search that includes them).
    pub async fn patients_by_id(&self, actor: &Actor, ids: &[i64]) -> AppResult<Vec<PatientRow>> {
        self.require(actor, Action::SearchPatients)?;
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        Ok(self.store.patients_by_id(&ids).await?)
    }

    fn test_filter(
        &self,
        q: &ResultQuery,
        released_only: bool,
        limit: i64,
    ) -> AppResult<TestPageFilter> {
        let test_codes = q.loinc.as_ref().map(|loincs| {
            let catalog = self.catalog();
            catalog
                .catalog
                .tests()
                .filter(|t| loincs.contains(&t.loinc))
                .map(|t| t.code.clone())
                .collect()
        });
        Ok(TestPageFilter {
            released_only,
            test_id: q.id,
            patient_id: q.patient_id,
            accession: q.accession.as_deref().map(accession).transpose()?,
            specimen_ids: Vec::new(),
            test_codes,
            release_statuses: q.statuses.clone(),
            collected_from: q.collected_from,
            collected_before: q.collected_before,
            after_id: q.after_id,
            limit,
        })
    }

    fn specimen_filter(
        &self,
        q: &SpecimenQuery,
        released_only: bool,
        limit: i64,
    ) -> AppResult<SpecimenPageFilter> {
        Ok(SpecimenPageFilter {
            released_only,
            id: q.id,
            patient_id: q.patient_id,
            accession: q.accession.as_deref().map(accession).transpose()?,
            collected_from: q.collected_from,
            collected_before: q.collected_before,
            after_id: q.after_id,
            limit,
        })
    }

    fn released(&self, items: Vec<WorkItem>) -> Vec<ReleasedResult> {
        let catalog = self.catalog();
        items
            .into_iter()
            .map(|item| {
                let definition = catalog.catalog.test(&item.test.test_code).cloned();
                let interval = definition.as_ref().and_then(|d| {
                    let p = patient_context(self, &item.patient, item.specimen.collected_at);
                    d.interval_for(p.sex, p.birth_date, p.collected_on).cloned()
                });
                ReleasedResult { item, definition, interval }
            })
            .collect()
    }

    async fn audit_fhir(
        &self,
        actor: &Actor,
        resource: &str,
        read: FhirRead<'_>,
        patients: &[i64],
    ) -> AppResult<()> {
        let mut distinct = patients.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let entity = format!("fhir/{resource}");
        let (action, entity_id) = match read {
            FhirRead::Read(id) => (AuditAction::PatientViewResults, id.to_string()),
            FhirRead::Search(q) => (AuditAction::ResultsViewList, q.chars().take(500).collect()),
        };
        let mut tx = self.store.begin().await?;
        tx.audit(cuvette_store::NewAuditEvent {
            at: self.now_at(),
            actor: &actor.name,
            action,
            entity: &entity,
            entity_id,
            patient_id: (distinct.len() == 1).then(|| distinct[0]),
            before: None,
            after: audit::state(&audit::ListViewed { patients: &distinct, rows: patients.len() }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// An accession number as printed or scanned, in the form it is stored.
fn accession(text: &str) -> AppResult<String> {
    cuvette_domain::Accession::parse(text)
        .map(|a| a.to_string())
        .map_err(|e| crate::AppError::invalid("identifier", e.to_string()))
}
