//! Staff records, authorisations, competency assessments and the lab's qualification
//! settings (migration 0014). Records, test systems and element evidence are JSON of the
//! domain's types; every one is parsed strictly on reading, so a damaged row is corrupt data
//! naming its table, row and column.

use jiff::civil::Date;
use sqlx::Row;
use sqlx::any::AnyRow;

use cuvette_domain::staff::{
    Assessment, Authorisation, Complexity, ElementEvidence, Outcome, QualificationPolicy,
    StaffRecord, TestSystem,
};

use crate::{Store, StoreError, StoreResult, Timestamp, Tx, code, opt_code_at, time};

/// A user's staff record as stored.
#[derive(Debug, Clone)]
pub struct StaffRecordRow {
    /// The user.
    pub user_id: i64,
    /// The record.
    pub record: StaffRecord,
    /// Its version: 1 for the first, each edit one more.
    pub version: i64,
    /// Last changed.
    pub updated_at: Timestamp,
    /// By whom.
    pub updated_by: String,
}

/// An authorisation as stored.
#[derive(Debug, Clone)]
pub struct AuthorisationRow {
    /// Row id.
    pub id: i64,
    /// The person authorised.
    pub user_id: i64,
    /// What, by whom, when.
    pub authorisation: Authorisation,
    /// When it was recorded.
    pub recorded_at: Timestamp,
}

/// A competency assessment as stored.
#[derive(Debug, Clone)]
pub struct AssessmentRow {
    /// Row id.
    pub id: i64,
    /// The person assessed.
    pub user_id: i64,
    /// The assessment.
    pub assessment: Assessment,
    /// Who recorded it.
    pub recorded_by: String,
    /// When.
    pub recorded_at: Timestamp,
}

fn json<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_str(s).ok()
}

fn date(s: &str) -> Option<Date> {
    s.parse().ok()
}

fn record_from_row(r: &AnyRow) -> StoreResult<StaffRecordRow> {
    Ok(StaffRecordRow {
        user_id: r.try_get("user_id")?,
        record: code(r, "staff_record", "user_id", "record", json::<StaffRecord>)?,
        version: r.try_get("version")?,
        updated_at: time(r, "updated_at")?,
        updated_by: r.try_get("updated_by")?,
    })
}

fn authorisation_from_row(r: &AnyRow) -> StoreResult<AuthorisationRow> {
    Ok(AuthorisationRow {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        authorisation: Authorisation {
            discipline: r.try_get("discipline")?,
            authorised_by: r.try_get("authorised_by")?,
            authorised_on: code(r, "staff_authorisation", "id", "authorised_on", date)?,
        },
        recorded_at: time(r, "recorded_at")?,
    })
}

fn assessment_from_row(r: &AnyRow) -> StoreResult<AssessmentRow> {
    let table = "competency_assessment";
    Ok(AssessmentRow {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        assessment: Assessment {
            system: code(r, table, "id", "test_system", json::<TestSystem>)?,
            elements: code(r, table, "id", "elements", json::<[ElementEvidence; 6]>)?,
            outcome: code(r, table, "id", "outcome", Outcome::parse)?,
        },
        recorded_by: r.try_get("recorded_by")?,
        recorded_at: time(r, "recorded_at")?,
    })
}

impl Tx {
    /// Saves a user's record as the version after `expected_version` (0 for a user without
    /// one); someone else's edit in between is a conflict.
    pub async fn save_staff_record(
        &mut self,
        user_id: i64,
        record: &StaffRecord,
        expected_version: i64,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<i64> {
        let text = serde_json::to_string(record)
            .map_err(|e| StoreError::Conflict(format!("the record cannot be written: {e}")))?;
        let version = expected_version + 1;
        let changed = if expected_version == 0 {
            sqlx::query(
                "INSERT INTO staff_record (user_id, record, version, updated_at, updated_by) VALUES ($1, $2, 1, $3, $4)",
            )
            .bind(user_id)
            .bind(&text)
            .bind(now.as_micros())
            .bind(by)
            .execute(self.conn())
            .await
            .map_err(|e| {
                StoreError::on_unique(e, "someone else saved this record first: open it again")
            })?
            .rows_affected()
        } else {
            sqlx::query(
                "UPDATE staff_record SET record = $1, version = $2, updated_at = $3, updated_by = $4 WHERE user_id = $5 AND version = $6",
            )
            .bind(&text)
            .bind(version)
            .bind(now.as_micros())
            .bind(by)
            .bind(user_id)
            .bind(expected_version)
            .execute(self.conn())
            .await?
            .rows_affected()
        };
        if changed == 1 {
            Ok(version)
        } else {
            Err(StoreError::Conflict("someone else changed this record: open it again".into()))
        }
    }

    /// Records an authorisation.
    pub async fn insert_authorisation(
        &mut self,
        user_id: i64,
        authorisation: &Authorisation,
        now: Timestamp,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO staff_authorisation (user_id, discipline, authorised_by, authorised_on, recorded_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(user_id)
        .bind(&authorisation.discipline)
        .bind(&authorisation.authorised_by)
        .bind(authorisation.authorised_on.to_string())
        .bind(now.as_micros())
        .fetch_one(self.conn())
        .await?)
    }

    /// Records a competency assessment.
    pub async fn insert_assessment(
        &mut self,
        user_id: i64,
        assessment: &Assessment,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<i64> {
        let system = serde_json::to_string(&assessment.system)
            .map_err(|e| StoreError::Conflict(format!("the test system cannot be written: {e}")))?;
        let elements = serde_json::to_string(&assessment.elements)
            .map_err(|e| StoreError::Conflict(format!("the evidence cannot be written: {e}")))?;
        Ok(sqlx::query_scalar(
            "INSERT INTO competency_assessment (user_id, test_system, elements, outcome, assessed_on, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(user_id)
        .bind(system)
        .bind(elements)
        .bind(assessment.outcome.code())
        .bind(assessment.assessed_on().to_string())
        .bind(by)
        .bind(now.as_micros())
        .fetch_one(self.conn())
        .await?)
    }

    /// Replaces the lab's qualification settings.
    pub async fn save_qualification_policy(
        &mut self,
        policy: &QualificationPolicy,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM qualification_policy").execute(self.conn()).await?;
        sqlx::query(
            "INSERT INTO qualification_policy (id, enforce, licence_required_from, certification_required_from, updated_at, updated_by) VALUES (1, $1, $2, $3, $4, $5)",
        )
        .bind(i64::from(policy.enforce))
        .bind(policy.licence_required_from.map(Complexity::code))
        .bind(policy.certification_required_from.map(Complexity::code))
        .bind(now.as_micros())
        .bind(by)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

impl Store {
    /// A user's staff record, if one was saved.
    pub async fn staff_record(&self, user_id: i64) -> StoreResult<Option<StaffRecordRow>> {
        sqlx::query("SELECT user_id, record, version, updated_at, updated_by FROM staff_record WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(self.reader())
            .await?
            .as_ref()
            .map(record_from_row)
            .transpose()
    }

    /// Every staff record.
    pub async fn staff_records(&self) -> StoreResult<Vec<StaffRecordRow>> {
        sqlx::query("SELECT user_id, record, version, updated_at, updated_by FROM staff_record ORDER BY user_id")
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(record_from_row)
            .collect()
    }

    /// A user's authorisations, oldest first.
    pub async fn authorisations(&self, user_id: i64) -> StoreResult<Vec<AuthorisationRow>> {
        sqlx::query("SELECT id, user_id, discipline, authorised_by, authorised_on, recorded_at FROM staff_authorisation WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(authorisation_from_row)
            .collect()
    }

    /// A user's competency assessments, oldest first.
    pub async fn assessments(&self, user_id: i64) -> StoreResult<Vec<AssessmentRow>> {
        sqlx::query("SELECT id, user_id, test_system, elements, outcome, recorded_by, recorded_at FROM competency_assessment WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(assessment_from_row)
            .collect()
    }

    /// Every authorisation of every person, by person then oldest first.
    pub async fn all_authorisations(&self) -> StoreResult<Vec<AuthorisationRow>> {
        sqlx::query("SELECT id, user_id, discipline, authorised_by, authorised_on, recorded_at FROM staff_authorisation ORDER BY user_id, id")
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(authorisation_from_row)
            .collect()
    }

    /// Every competency assessment of every person, by person then oldest first.
    pub async fn all_assessments(&self) -> StoreResult<Vec<AssessmentRow>> {
        sqlx::query("SELECT id, user_id, test_system, elements, outcome, recorded_by, recorded_at FROM competency_assessment ORDER BY user_id, id")
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(assessment_from_row)
            .collect()
    }

    /// The lab's qualification settings; the defaults (not enforced) when none were saved.
    pub async fn qualification_policy(&self) -> StoreResult<QualificationPolicy> {
        let Some(r) = sqlx::query("SELECT id, enforce, licence_required_from, certification_required_from FROM qualification_policy WHERE id = 1")
            .fetch_optional(self.reader())
            .await?
        else {
            return Ok(QualificationPolicy::default());
        };
        let table = "qualification_policy";
        let enforce: i64 = r.try_get("enforce")?;
        Ok(QualificationPolicy {
            enforce: match enforce {
                0 => false,
                1 => true,
                other => {
                    return Err(StoreError::Corrupt {
                        table,
                        row: 1,
                        column: "enforce",
                        value: other.to_string(),
                    });
                }
            },
            licence_required_from: opt_code_at(
                &r,
                table,
                "id",
                "licence_required_from",
                "licence_required_from",
                Complexity::parse,
            )?,
            certification_required_from: opt_code_at(
                &r,
                table,
                "id",
                "certification_required_from",
                "certification_required_from",
                Complexity::parse,
            )?,
        })
    }
}
