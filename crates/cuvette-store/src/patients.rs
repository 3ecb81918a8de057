//! Patients.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, StoreResult, Timestamp, Tx, like_prefix};

/// A patient to register.
#[derive(Debug, Clone)]
pub struct NewPatient<'a> {
    /// Medical record number (unique).
    pub mrn: &'a str,
    /// Family name.
    pub family_name: &'a str,
    /// Given name.
    pub given_name: &'a str,
    /// ISO date of birth.
    pub birth_date: &'a str,
    /// Sex code (F, M, U).
    pub sex: &'a str,
}

/// A registered patient.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PatientRow {
    /// Internal id.
    pub id: i64,
    /// Medical record number.
    pub mrn: String,
    /// Family name.
    pub family_name: String,
    /// Given name.
    pub given_name: String,
    /// ISO date of birth.
    pub birth_date: String,
    /// Sex code.
    pub sex: String,
}

/// Patients per search page.
pub const PATIENT_SEARCH_LEN_MAX: i64 = 50;

pub(crate) const PATIENT_COLUMNS: &str =
    "p.id, p.mrn, p.family_name, p.given_name, p.birth_date, p.sex";

pub(crate) fn patient_from_row(r: &AnyRow) -> StoreResult<PatientRow> {
    Ok(PatientRow {
        id: r.try_get("id")?,
        mrn: r.try_get("mrn")?,
        family_name: r.try_get("family_name")?,
        given_name: r.try_get("given_name")?,
        birth_date: r.try_get("birth_date")?,
        sex: r.try_get("sex")?,
    })
}

impl Tx {
    /// Registers a patient; an MRN already on file is a conflict.
    pub async fn insert_patient(
        &mut self,
        p: &NewPatient<'_>,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<i64> {
        sqlx::query_scalar(
            "INSERT INTO patient (mrn, family_name, given_name, birth_date, sex, family_key, given_key, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(p.mrn)
        .bind(p.family_name)
        .bind(p.given_name)
        .bind(p.birth_date)
        .bind(p.sex)
        .bind(p.family_name.to_lowercase())
        .bind(p.given_name.to_lowercase())
        .bind(now.as_micros())
        .bind(by)
        .fetch_one(self.conn())
        .await
        .map_err(|e| StoreError::on_unique(e, &format!("a patient with MRN {} is already registered", p.mrn)))
    }
}

impl Store {
    /// A patient by id.
    pub async fn patient(&self, id: i64) -> StoreResult<PatientRow> {
        let sql = format!("SELECT {PATIENT_COLUMNS} FROM patient p WHERE p.id = $1");
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.reader()).await?;
        row.as_ref().map(patient_from_row).transpose()?.ok_or(StoreError::NotFound("patient"))
    }

    /// A patient by MRN.
    pub async fn patient_by_mrn(&self, mrn: &str) -> StoreResult<Option<PatientRow>> {
        let sql = format!("SELECT {PATIENT_COLUMNS} FROM patient p WHERE p.mrn = $1");
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(mrn).fetch_optional(self.reader()).await?;
        row.as_ref().map(patient_from_row).transpose()
    }

    /// Patients whose MRN is `mrn`, or whose family name starts with `family` (and given name
    /// with `given`), optionally born on `birth_date` — case-insensitively.
    pub async fn search_patients(
        &self,
        mrn: Option<&str>,
        family: Option<&str>,
        given: Option<&str>,
        birth_date: Option<&str>,
    ) -> StoreResult<Vec<PatientRow>> {
        let sql = format!(
            "SELECT {PATIENT_COLUMNS} FROM patient p \
             WHERE ($1 IS NULL OR p.mrn = $1) \
               AND ($2 IS NULL OR p.family_key LIKE $2 ESCAPE '\\') \
               AND ($3 IS NULL OR p.given_key LIKE $3 ESCAPE '\\') \
               AND ($4 IS NULL OR p.birth_date = $4) \
             ORDER BY p.family_name, p.given_name, p.birth_date LIMIT $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(mrn)
            .bind(family.map(|f| like_prefix(&f.to_lowercase())))
            .bind(given.map(|g| like_prefix(&g.to_lowercase())))
            .bind(birth_date)
            .bind(PATIENT_SEARCH_LEN_MAX)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(patient_from_row).collect()
    }
}
