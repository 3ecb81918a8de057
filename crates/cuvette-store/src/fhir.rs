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
        let mut conditions = vec!["t.id > $1".to_owned()];
        let mut binds = vec![Bind::Int(f.after_id)];
        let mut push = |column: &str, op: &str, b: Bind| {
            binds.push(b);
            conditions.push(format!("{column} {op} ${}", binds.len()));
        };
        if let Some(id) = f.test_id {
            push("t.id", "=", Bind::Int(id));
        }
        if let Some(id) = f.patient_id {
            push("o.patient_id", "=", Bind::Int(id));
        }
        if let Some(acc) = &f.accession {
            push("s.accession", "=", Bind::Text(acc.clone()));
        }
        if let Some(from) = f.collected_from {
            push("s.collected_at", ">=", Bind::Int(from.as_micros()));
        }
        if let Some(before) = f.collected_before {
            push("s.collected_at", "<", Bind::Int(before.as_micros()));
        }
        if !f.specimen_ids.is_empty() {
            let list = in_list(&mut binds, f.specimen_ids.iter().map(|&i| Bind::Int(i)));
            conditions.push(format!("t.specimen_id IN ({list})"));
        }
        if let Some(codes) = &f.test_codes {
            if codes.is_empty() {
                return Ok(Vec::new());
            }
            let list = in_list(&mut binds, codes.iter().map(|c| Bind::Text(c.clone())));
            conditions.push(format!("t.test_code IN ({list})"));
        }
        if !f.release_statuses.is_empty() {
            let list = in_list(
                &mut binds,
                f.release_statuses.iter().map(|s| Bind::Text(s.code().to_owned())),
            );
            conditions.push(format!("r.release_status IN ({list})"));
        }
        if f.released_only {
            conditions.push("r.id IS NOT NULL".to_owned());
        }
        binds.push(Bind::Int(f.limit.clamp(1, FHIR_ROWS_MAX)));
        let limit = binds.len();
        let sql = format!(
            "SELECT {TEST_COLUMNS}, {SPECIMEN_COLUMNS}, {ORDER_COLUMNS}, {PATIENT_COLUMNS}, {RESULT_COLUMNS_R} \
             FROM ordered_test t \
             JOIN specimen s ON s.id = t.specimen_id \
             JOIN lab_order o ON o.id = t.order_id \
             JOIN patient p ON p.id = o.patient_id \
             LEFT JOIN result r ON r.ordered_test_id = t.id \
                AND r.version = (SELECT MAX(r2.version) FROM result r2 \
                                 WHERE r2.ordered_test_id = t.id AND r2.released_at IS NOT NULL) \
             WHERE {} ORDER BY t.id LIMIT ${limit}",
            conditions.join(" AND ")
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
        let mut conditions = vec!["s.id > $1".to_owned()];
        let mut binds = vec![Bind::Int(f.after_id)];
        let mut push = |column: &str, op: &str, b: Bind| {
            binds.push(b);
            conditions.push(format!("{column} {op} ${}", binds.len()));
        };
        if let Some(id) = f.id {
            push("s.id", "=", Bind::Int(id));
        }
        if let Some(id) = f.patient_id {
            push("o.patient_id", "=", Bind::Int(id));
        }
        if let Some(acc) = &f.accession {
            push("s.accession", "=", Bind::Text(acc.clone()));
        }
        if let Some(from) = f.collected_from {
            push("s.collected_at", ">=", Bind::Int(from.as_micros()));
        }
        if let Some(before) = f.collected_before {
            push("s.collected_at", "<", Bind::Int(before.as_micros()));
        }
        if f.released_only {
            conditions.push(
                "EXISTS (SELECT 1 FROM ordered_test t JOIN result r ON r.ordered_test_id = t.id \
                 WHERE t.specimen_id = s.id AND r.released_at IS NOT NULL)"
                    .to_owned(),
            );
        }
        binds.push(Bind::Int(f.limit.clamp(1, FHIR_ROWS_MAX)));
        let sql = format!(
            "SELECT {SPECIMEN_COLUMNS}, {ORDER_COLUMNS}, {PATIENT_COLUMNS} \
             FROM specimen s JOIN lab_order o ON o.id = s.order_id JOIN patient p ON p.id = o.patient_id \
             WHERE {} ORDER BY s.id LIMIT ${}",
            conditions.join(" AND "),
            binds.len()
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
        let mut conditions = vec!["p.id > $1".to_owned()];
        let mut binds = vec![Bind::Int(f.after_id)];
        if let Some(id) = f.id {
            binds.push(Bind::Int(id));
            conditions.push(format!("p.id = ${}", binds.len()));
        }
        if let Some(mrn) = &f.mrn {
            binds.push(Bind::Text(mrn.clone()));
            conditions.push(format!("p.mrn = ${}", binds.len()));
        }
        binds.push(Bind::Int(f.limit.clamp(1, FHIR_ROWS_MAX)));
        let sql = format!(
            "SELECT {PATIENT_COLUMNS} FROM patient p WHERE {} ORDER BY p.id LIMIT ${}",
            conditions.join(" AND "),
            binds.len()
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
