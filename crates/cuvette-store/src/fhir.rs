//! Reads for the FHIR API: ordered tests with their current released result, and patients,
//! a page at a time in id order.
//!
//! Each read is one statement. A page is asked for as "ids greater than the last one seen",
//! never by offset, so paging through thousands of results costs the same per page and a row
//! written between two pages neither repeats nor hides another.

use cuvette_domain::time::Timestamp;
use cuvette_domain::workflow::ReleaseStatus;
use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

use crate::orders::{
    ORDER_COLUMNS, OrderRow, SPECIMEN_COLUMNS, SpecimenRow, TEST_COLUMNS, WorkItem, order_from_row,
    specimen_from_row, test_from_row,
};
use crate::patients::{PATIENT_COLUMNS, PatientRow, patient_from_row};
use crate::results::{RESULT_COLUMNS_R, result_from_row_prefixed};
use crate::{Store, StoreResult, opt_i64};

/// The most rows one read returns, whatever it is asked: a page of tests, specimens or
/// patients, or the tests of a page of specimens.
pub const FHIR_ROWS_MAX: i64 = 10_000;

/// Which ordered tests to read. Only the conditions given appear in the SQL.
#[derive(Debug, Clone, Default)]
pub struct TestPageFilter {
    /// Only tests with a released result version (and that version joined as the result).
    pub released_only: bool,
    /// Only this ordered test.
    pub test_id: Option<i64>,
    /// Only this patient's.
    pub patient_id: Option<i64>,
    /// Only on this specimen (accession number as stored).
    pub accession: Option<String>,
    /// Only on these specimens.
    pub specimen_ids: Vec<i64>,
    /// Only these test codes (none given: every test; given but empty: nothing).
    pub test_codes: Option<Vec<String>>,
    /// Only whose current released version was released as one of these.
    pub release_statuses: Vec<ReleaseStatus>,
    /// Only specimens collected at or after this.
    pub collected_from: Option<Timestamp>,
    /// Only specimens collected before this.
    pub collected_before: Option<Timestamp>,
    /// Only tests with a greater id (the last id of the page before).
    pub after_id: i64,
    /// At most this many (capped at [`FHIR_ROWS_MAX`]).
    pub limit: i64,
}

/// Which specimens to read.
#[derive(Debug, Clone, Default)]
pub struct SpecimenPageFilter {
    /// Only specimens with at least one released result.
    pub released_only: bool,
    /// Only this specimen.
    pub id: Option<i64>,
    /// Only this patient's.
    pub patient_id: Option<i64>,
    /// Only this accession number (as stored).
    pub accession: Option<String>,
    /// Only collected at or after this.
    pub collected_from: Option<Timestamp>,
    /// Only collected before this.
    pub collected_before: Option<Timestamp>,
    /// Only specimens with a greater id.
    pub after_id: i64,
    /// At most this many (capped at [`FHIR_ROWS_MAX`]).
    pub limit: i64,
}

/// A specimen with its order and patient.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpecimenItem {
    /// The specimen.
    pub specimen: SpecimenRow,
    /// Its order.
    pub order: OrderRow,
    /// The patient.
    pub patient: PatientRow,
}

/// Which patients to read.
#[derive(Debug, Clone, Default)]
pub struct PatientPageFilter {
    /// Only this patient.
    pub id: Option<i64>,
    /// Only the patient with this MRN.
    pub mrn: Option<String>,
    /// Only patients with a greater id.
    pub after_id: i64,
    /// At most this many (capped at [`FHIR_ROWS_MAX`]).
    pub limit: i64,
}

enum Bind {
    Int(i64),
    Text(String),
}

impl Store {
    /// Ordered tests in id order, each with its specimen, order, patient and — as its result
    /// — the current released version (the latest one released), when there is one.
    pub async fn test_page(&self, f: &TestPageFilter) -> StoreResult<Vec<WorkItem>> {
        let mut w = Where::after("t.id", f.after_id);
        if let Some(id) = f.test_id {
            w.compare("t.id", "=", Bind::Int(id));
        }
        w.specimen(f.patient_id, f.accession.as_deref(), f.collected_from, f.collected_before);
        if !f.specimen_ids.is_empty() {
            w.is_in("t.specimen_id", f.specimen_ids.iter().map(|&i| Bind::Int(i)));
        }
        if let Some(codes) = &f.test_codes {
            if codes.is_empty() {
                return Ok(Vec::new());
            }
            w.is_in("t.test_code", codes.iter().map(|c| Bind::Text(c.clone())));
        }
        if !f.release_statuses.is_empty() {
            w.is_in(
                "r.release_status",
                f.release_statuses.iter().map(|s| Bind::Text(s.code().to_owned())),
            );
        }
        if f.released_only {
            w.condition("r.id IS NOT NULL");
        }
        let (clause, limit, binds) = w.limit(f.limit);
        let sql = format!(
            "SELECT {TEST_COLUMNS}, {SPECIMEN_COLUMNS}, {ORDER_COLUMNS}, {PATIENT_COLUMNS}, {RESULT_COLUMNS_R} \
             FROM ordered_test t \
             JOIN specimen s ON s.id = t.specimen_id \
             JOIN lab_order o ON o.id = t.order_id \
             JOIN patient p ON p.id = o.patient_id \
             LEFT JOIN result r ON r.ordered_test_id = t.id \
                AND r.version = (SELECT MAX(r2.version) FROM result r2 \
                                 WHERE r2.ordered_test_id = t.id AND r2.released_at IS NOT NULL) \
             WHERE {clause} ORDER BY t.id LIMIT {limit}"
        );
        let rows =
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), binds).fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                let released = opt_i64(r, "r_id")?.is_some();
                Ok(WorkItem {
                    test: test_from_row(r)?,
                    specimen: specimen_from_row(r)?,
                    order: order_from_row(r)?,
                    patient: patient_from_row(r)?,
                    result: if released { Some(result_from_row_prefixed(r)?) } else { None },
                })
            })
            .collect()
    }

    /// Specimens in id order, each with its order and patient.
    pub async fn specimen_page(&self, f: &SpecimenPageFilter) -> StoreResult<Vec<SpecimenItem>> {
        let mut w = Where::after("s.id", f.after_id);
        if let Some(id) = f.id {
            w.compare("s.id", "=", Bind::Int(id));
        }
        w.specimen(f.patient_id, f.accession.as_deref(), f.collected_from, f.collected_before);
        if f.released_only {
            w.condition(
                "EXISTS (SELECT 1 FROM ordered_test t JOIN result r ON r.ordered_test_id = t.id \
                 WHERE t.specimen_id = s.id AND r.released_at IS NOT NULL)",
            );
        }
        let (clause, limit, binds) = w.limit(f.limit);
        let sql = format!(
            "SELECT {SPECIMEN_COLUMNS}, {ORDER_COLUMNS}, {PATIENT_COLUMNS} \
             FROM specimen s JOIN lab_order o ON o.id = s.order_id JOIN patient p ON p.id = o.patient_id \
             WHERE {clause} ORDER BY s.id LIMIT {limit}"
        );
        let rows =
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), binds).fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                Ok(SpecimenItem {
                    specimen: specimen_from_row(r)?,
                    order: order_from_row(r)?,
                    patient: patient_from_row(r)?,
                })
            })
            .collect()
    }

    /// Patients in id order.
    pub async fn patient_page(&self, f: &PatientPageFilter) -> StoreResult<Vec<PatientRow>> {
        let mut w = Where::after("p.id", f.after_id);
        if let Some(id) = f.id {
            w.compare("p.id", "=", Bind::Int(id));
        }
        if let Some(mrn) = &f.mrn {
            w.compare("p.mrn", "=", Bind::Text(mrn.clone()));
        }
        let (clause, limit, binds) = w.limit(f.limit);
        let sql = format!(
            "SELECT {PATIENT_COLUMNS} FROM patient p WHERE {clause} ORDER BY p.id LIMIT {limit}"
        );
        let rows =
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), binds).fetch_all(self.reader()).await?;
        rows.iter().map(patient_from_row).collect()
    }

    /// Patients by id, in id order (for `_include`).
    pub async fn patients_by_id(&self, ids: &[i64]) -> StoreResult<Vec<PatientRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut binds = Vec::new();
        let list = in_list(&mut binds, ids.iter().map(|&i| Bind::Int(i)));
        let sql =
            format!("SELECT {PATIENT_COLUMNS} FROM patient p WHERE p.id IN ({list}) ORDER BY p.id");
        let rows =
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), binds).fetch_all(self.reader()).await?;
        rows.iter().map(patient_from_row).collect()
    }
}

/// A page's WHERE clause, built from the filters given: every value is bound, never spliced
/// into the SQL, and a filter not given leaves no condition (so each read uses the index of
/// what it does filter on).
struct Where {
    conditions: Vec<String>,
    binds: Vec<Bind>,
}

impl Where {
    /// Rows after the last one seen (keyset paging on `id_column`).
    fn after(id_column: &str, after_id: i64) -> Where {
        Where { conditions: vec![format!("{id_column} > $1")], binds: vec![Bind::Int(after_id)] }
    }

    fn compare(&mut self, column: &str, op: &str, value: Bind) {
        self.binds.push(value);
        self.conditions.push(format!("{column} {op} ${}", self.binds.len()));
    }

    fn is_in(&mut self, column: &str, values: impl Iterator<Item = Bind>) {
        let list = in_list(&mut self.binds, values);
        self.conditions.push(format!("{column} IN ({list})"));
    }

    fn condition(&mut self, condition: &str) {
        self.conditions.push(condition.to_owned());
    }

    /// The filters on a specimen (`s`) and its order (`o`) that tests and specimens share.
    fn specimen(
        &mut self,
        patient_id: Option<i64>,
        accession: Option<&str>,
        collected_from: Option<Timestamp>,
        collected_before: Option<Timestamp>,
    ) {
        if let Some(id) = patient_id {
            self.compare("o.patient_id", "=", Bind::Int(id));
        }
        if let Some(acc) = accession {
            self.compare("s.accession", "=", Bind::Text(acc.to_owned()));
        }
        if let Some(from) = collected_from {
            self.compare("s.collected_at", ">=", Bind::Int(from.as_micros()));
        }
        if let Some(before) = collected_before {
            self.compare("s.collected_at", "<", Bind::Int(before.as_micros()));
        }
    }

    /// The clause, the LIMIT's placeholder (the page size capped at [`FHIR_ROWS_MAX`]) and the
    /// values in placeholder order.
    fn limit(mut self, limit: i64) -> (String, String, Vec<Bind>) {
        self.binds.push(Bind::Int(limit.clamp(1, FHIR_ROWS_MAX)));
        (self.conditions.join(" AND "), format!("${}", self.binds.len()), self.binds)
    }
}

/// Appends `values` to the binds and returns their placeholders, comma-separated.
fn in_list(binds: &mut Vec<Bind>, values: impl Iterator<Item = Bind>) -> String {
    let mut list = Vec::new();
    for v in values {
        binds.push(v);
        list.push(format!("${}", binds.len()));
    }
    list.join(", ")
}

fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments>,
    binds: Vec<Bind>,
) -> Query<'q, Any, AnyArguments> {
    for b in binds {
        q = match b {
            Bind::Int(i) => q.bind(i),
            Bind::Text(t) => q.bind(t),
        };
    }
    q
}
