//! Students on clinical rotation (migration 0017): the rotation schedule with its sign-offs,
//! and the results a student entered, which the logbook is made of.

use jiff::civil::Date;
use sqlx::Row;
use sqlx::any::AnyRow;

use cuvette_domain::rotation::{Rotation, SignOff};
use cuvette_domain::workflow::TestStatus;

use crate::{Store, StoreResult, Timestamp, Tx, code, code_at, opt_time, time};

/// A rotation as stored.
#[derive(Debug, Clone)]
pub struct RotationRow {
    /// Row id.
    pub id: i64,
    /// The student.
    pub user_id: i64,
    /// The rotation and its sign-off.
    pub rotation: Rotation,
    /// Who scheduled it.
    pub recorded_by: String,
    /// When.
    pub recorded_at: Timestamp,
}

/// One result version a person entered, with its test and whether it is still the current
/// value.
#[derive(Debug, Clone)]
pub struct EnteredResultRow {
    /// The ordered test.
    pub ordered_test_id: i64,
    /// The version entered.
    pub version: i64,
    /// The test's newest version: greater than `version` when this one was replaced.
    pub latest_version: i64,
    /// Test code.
    pub test_code: String,
    /// Discipline of the ordered test.
    pub discipline: String,
    /// The test's status.
    pub test_status: TestStatus,
    /// When it was entered.
    pub entered_at: Timestamp,
    /// Who released this version, if anyone did.
    pub released_by: Option<String>,
    /// When.
    pub released_at: Option<Timestamp>,
}

/// The most results one logbook reads: a year's rotation at a busy bench.
pub const LOGBOOK_RESULTS_MAX: i64 = 20_000;

fn date(s: &str) -> Option<Date> {
    s.parse().ok()
}

fn rotation_from_row(r: &AnyRow) -> StoreResult<RotationRow> {
    let table = "student_rotation";
    let signed_by: Option<String> = r.try_get("signed_off_by")?;
    let signed_off = match signed_by {
        Some(by) => Some(SignOff { by, on: code(r, table, "id", "signed_off_on", date)? }),
        None => None,
    };
    Ok(RotationRow {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        rotation: Rotation {
            program: r.try_get("program")?,
            discipline: r.try_get("discipline")?,
            starts_on: code(r, table, "id", "starts_on", date)?,
            ends_on: code(r, table, "id", "ends_on", date)?,
            supervisor: r.try_get("supervisor")?,
            signed_off,
        },
        recorded_by: r.try_get("recorded_by")?,
        recorded_at: time(r, "recorded_at")?,
    })
}

impl Tx {
    /// Schedules a rotation.
    pub async fn insert_rotation(
        &mut self,
        user_id: i64,
        rotation: &Rotation,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO student_rotation (user_id, program, discipline, starts_on, ends_on, supervisor, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(user_id)
        .bind(&rotation.program)
        .bind(&rotation.discipline)
        .bind(rotation.starts_on.to_string())
        .bind(rotation.ends_on.to_string())
        .bind(&rotation.supervisor)
        .bind(by)
        .bind(now.as_micros())
        .fetch_one(self.conn())
        .await?)
    }

    /// Signs a rotation off; `false` when someone signed it first.
    pub async fn sign_off_rotation(
        &mut self,
        id: i64,
        sign_off: &SignOff,
        now: Timestamp,
    ) -> StoreResult<bool> {
        Ok(sqlx::query(
            "UPDATE student_rotation SET signed_off_by = $1, signed_off_on = $2, signed_off_at = $3 WHERE id = $4 AND signed_off_by IS NULL",
        )
        .bind(&sign_off.by)
        .bind(sign_off.on.to_string())
        .bind(now.as_micros())
        .bind(id)
        .execute(self.conn())
        .await?
        .rows_affected()
            == 1)
    }
}

impl Store {
    /// A student's rotations, in schedule order.
    pub async fn rotations(&self, user_id: i64) -> StoreResult<Vec<RotationRow>> {
        sqlx::query("SELECT id, user_id, program, discipline, starts_on, ends_on, supervisor, recorded_by, recorded_at, signed_off_by, signed_off_on FROM student_rotation WHERE user_id = $1 ORDER BY starts_on, id")
            .bind(user_id)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(rotation_from_row)
            .collect()
    }

    /// Every rotation of every student, in schedule order (who supervises whom).
    pub async fn all_rotations(&self) -> StoreResult<Vec<RotationRow>> {
        sqlx::query("SELECT id, user_id, program, discipline, starts_on, ends_on, supervisor, recorded_by, recorded_at, signed_off_by, signed_off_on FROM student_rotation ORDER BY starts_on, id")
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(rotation_from_row)
            .collect()
    }

    /// The result versions `username` entered, oldest first (at most
    /// [`LOGBOOK_RESULTS_MAX`], the newest kept).
    pub async fn results_entered_by(&self, username: &str) -> StoreResult<Vec<EnteredResultRow>> {
        let rows = sqlx::query(
            "SELECT r.id AS r_id, r.ordered_test_id, r.version, r.entered_at, r.released_by, r.released_at, \
             t.test_code, t.discipline, t.status AS t_status, \
             (SELECT MAX(n.version) FROM result n WHERE n.ordered_test_id = r.ordered_test_id) AS latest_version \
             FROM result r JOIN ordered_test t ON t.id = r.ordered_test_id \
             WHERE r.entered_by = $1 ORDER BY r.entered_at DESC, r.id DESC LIMIT $2",
        )
        .bind(username)
        .bind(LOGBOOK_RESULTS_MAX)
        .fetch_all(self.reader())
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(EnteredResultRow {
                    ordered_test_id: r.try_get("ordered_test_id")?,
                    version: r.try_get("version")?,
                    latest_version: r.try_get("latest_version")?,
                    test_code: r.try_get("test_code")?,
                    discipline: r.try_get("discipline")?,
                    test_status: code_at(
                        r,
                        "ordered_test",
                        "ordered_test_id",
                        "t_status",
                        "status",
                        TestStatus::parse,
                    )?,
                    entered_at: time(r, "entered_at")?,
                    released_by: r.try_get("released_by")?,
                    released_at: opt_time(r, "released_at")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }
}
