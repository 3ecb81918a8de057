//! Quality control records: control materials, targets, runs and their results, corrective
//! actions, moving-average rules, autoverification rule sets, and the facts autoverification
//! and the critical-call list read.

use sqlx::Row;
use sqlx::any::AnyRow;

use cuvette_domain::Flags;
use cuvette_domain::qc::{
    CorrectiveAction, QcStatus, RecordedViolation, RuleSet, RunSource, TargetSource, WestgardRule,
};
use cuvette_domain::workflow::{SpecimenCondition, TestStatus};

use crate::{Store, StoreError, StoreResult, Timestamp, Tx, opt_time, time};

/// A control material lot at one level.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MaterialRow {
    /// Internal id.
    pub id: i64,
    /// Product name.
    pub product: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Lot number.
    pub lot: String,
    /// Level, 1 to 3.
    pub level: i64,
    /// Expiry date (ISO).
    pub expires_on: String,
    /// The vial's barcode, as instruments send it.
    pub sample_id: String,
    /// In use.
    pub active: bool,
}

/// A material to add.
#[derive(Debug, Clone)]
pub struct NewMaterial<'a> {
    /// Product name.
    pub product: &'a str,
    /// Manufacturer.
    pub manufacturer: &'a str,
    /// Lot number.
    pub lot: &'a str,
    /// Level, 1 to 3.
    pub level: i64,
    /// Expiry date (ISO).
    pub expires_on: &'a str,
    /// The vial's barcode.
    pub sample_id: &'a str,
}

/// A target: what a material should read for a test on an instrument.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetRow {
    /// Internal id.
    pub id: i64,
    /// The material.
    pub material: MaterialRow,
    /// The instrument.
    pub instrument_id: i64,
    /// Its name.
    pub instrument_name: String,
    /// The catalog test.
    pub test_code: String,
    /// Target mean in force.
    pub mean: f64,
    /// Target SD in force.
    pub sd: f64,
    /// Whose mean and SD are in force.
    pub source: TargetSource,
    /// The insert's mean, kept after switching to the lab's own.
    pub manufacturer_mean: f64,
    /// The insert's SD.
    pub manufacturer_sd: f64,
}

/// One QC result with its run, as the evaluator and the chart need it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QcPoint {
    /// The result's id.
    pub id: i64,
    /// The run.
    pub run_id: i64,
    /// When the run was.
    pub at: Timestamp,
    /// Who entered the run.
    pub entered_by: String,
    /// The target judged against.
    pub target_id: i64,
    /// The material's level.
    pub level: i64,
    /// The material's lot.
    pub lot: String,
    /// The value.
    pub value: f64,
    /// Mean in force.
    pub mean: f64,
    /// SD in force.
    pub sd: f64,
    /// z-score.
    pub z: f64,
    /// Rules this result violated.
    pub rules: Vec<WestgardRule>,
    /// The run's verdict.
    pub run_status: QcStatus,
}

/// A QC run with its verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QcRunRow {
    /// Internal id.
    pub id: i64,
    /// Instrument.
    pub instrument_id: i64,
    /// Catalog test.
    pub test_code: String,
    /// When.
    pub at: Timestamp,
    /// The verdict.
    pub status: QcStatus,
    /// What it violated.
    pub violations: Vec<RecordedViolation>,
    /// Who entered it.
    pub entered_by: String,
    /// Where its results came from.
    pub source: RunSource,
}

/// The QC facts for one test on one instrument that decide its lockout.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QcFacts {
    /// Instrument.
    pub instrument_id: i64,
    /// Its name.
    pub instrument_name: String,
    /// Catalog test.
    pub test_code: String,
    /// The latest rejected run.
    pub last_rejected: Option<Timestamp>,
    /// The latest accepted (or warning) run.
    pub last_good: Option<Timestamp>,
    /// The latest corrective action.
    pub last_action: Option<Timestamp>,
    /// The latest run of any verdict, and its verdict.
    pub last_run: Option<(Timestamp, QcStatus)>,
    /// The last good run before the latest rejection: patient results after it are suspect.
    pub good_before_reject: Option<Timestamp>,
}

/// A corrective action.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CorrectiveActionRow {
    /// Internal id.
    pub id: i64,
    /// Instrument.
    pub instrument_id: i64,
    /// Catalog test.
    pub test_code: String,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub by_user: String,
    /// What was done.
    pub action: CorrectiveAction,
    /// Notes.
    pub note: String,
}

/// A patient result of a test measured on an instrument.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PatientResultRow {
    /// The result version's id.
    pub result_id: i64,
    /// The ordered test.
    pub ordered_test_id: i64,
    /// Specimen accession.
    pub accession: String,
    /// Value as reported.
    pub value_text: String,
    /// The number, when numeric.
    pub value_number: Option<f64>,
    /// When it was entered.
    pub entered_at: Timestamp,
    /// When it was released, if it was.
    pub released_at: Option<Timestamp>,
    /// The test's status.
    pub test_status: TestStatus,
}

/// A patient moving-average rule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MovingAverageRow {
    /// Instrument.
    pub instrument_id: i64,
    /// Catalog test.
    pub test_code: String,
    /// Results averaged.
    pub window_size: i64,
    /// Results below are left out.
    pub truncate_low: Option<f64>,
    /// Results above are left out.
    pub truncate_high: Option<f64>,
    /// Expected average.
    pub target: f64,
    /// Lower control limit.
    pub lower_limit: f64,
    /// Upper control limit.
    pub upper_limit: f64,
}

/// A stored autoverification rule set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleSetRow {
    /// Catalog test.
    pub test_code: String,
    /// The rules, JSON.
    pub rules: String,
    /// Their fingerprint.
    pub fingerprint: String,
    /// When last changed.
    pub updated_at: Timestamp,
    /// By whom.
    pub updated_by: String,
}

/// A patient's earlier numeric result of a test, for delta checks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PriorRow {
    /// Catalog test.
    pub test_code: String,
    /// The value.
    pub value: f64,
    /// When its specimen was collected (entered, when collection time is unknown).
    pub at: Timestamp,
}

/// A critical result and its call, if any.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CriticalRow {
    /// The ordered test.
    pub ordered_test_id: i64,
    /// Result version.
    pub version: i64,
    /// Test code.
    pub test_code: String,
    /// Accession.
    pub accession: String,
    /// Patient.
    pub patient_id: i64,
    /// Patient name as "FAMILY, Given".
    pub patient_name: String,
    /// MRN.
    pub mrn: String,
    /// Date of birth as stored (`YYYY-MM-DD`), so every list can show all four identifiers.
    pub birth_date: String,
    /// Sex code as stored.
    pub sex: String,
    /// The value reported.
    pub report_text: String,
    /// Flags.
    pub flags: Flags,
    /// When the critical value was entered: the call's clock starts here.
    pub entered_at: Timestamp,
    /// When the call was documented.
    pub called_at: Option<Timestamp>,
    /// Who was called.
    pub called_person: Option<String>,
    /// Who called.
    pub called_by: Option<String>,
    /// Calls tried without a read-back (no one reached).
    pub attempts: i64,
    /// When it was escalated for want of a call.
    pub escalated_at: Option<Timestamp>,
}

const MATERIAL_COLUMNS: &str = "m.id AS m_id, m.product AS m_product, m.manufacturer AS m_manufacturer, m.lot AS m_lot, \
    m.level AS m_level, m.expires_on AS m_expires_on, m.sample_id AS m_sample_id, m.active AS m_active";

fn material_from_row(r: &AnyRow) -> StoreResult<MaterialRow> {
    Ok(MaterialRow {
        id: r.try_get("m_id")?,
        product: r.try_get("m_product")?,
        manufacturer: r.try_get("m_manufacturer")?,
        lot: r.try_get("m_lot")?,
        level: r.try_get("m_level")?,
        expires_on: r.try_get("m_expires_on")?,
        sample_id: r.try_get("m_sample_id")?,
        active: r.try_get::<i64, _>("m_active")? != 0,
    })
}

const TARGET_SELECT: &str = "SELECT t.id, t.instrument_id, i.name AS instrument_name, t.test_code, t.mean, t.sd, t.source, \
    t.manufacturer_mean, t.manufacturer_sd, m.id AS m_id, m.product AS m_product, m.manufacturer AS m_manufacturer, \
    m.lot AS m_lot, m.level AS m_level, m.expires_on AS m_expires_on, m.sample_id AS m_sample_id, m.active AS m_active \
    FROM qc_target t JOIN qc_material m ON m.id = t.material_id JOIN instrument i ON i.id = t.instrument_id";

fn target_from_row(r: &AnyRow) -> StoreResult<TargetRow> {
    Ok(TargetRow {
        id: r.try_get("id")?,
        material: material_from_row(r)?,
        instrument_id: r.try_get("instrument_id")?,
        instrument_name: r.try_get("instrument_name")?,
        test_code: r.try_get("test_code")?,
        mean: r.try_get("mean")?,
        sd: r.try_get("sd")?,
        source: crate::code(r, "qc_target", "id", "source", TargetSource::parse)?,
        manufacturer_mean: r.try_get("manufacturer_mean")?,
        manufacturer_sd: r.try_get("manufacturer_sd")?,
    })
}

const POINT_SELECT: &str = "SELECT q.id, q.run_id, u.at, u.entered_by, q.target_id, m.level, m.lot, q.value, q.mean, q.sd, q.z, \
    q.rules, u.status AS run_status \
    FROM qc_result q JOIN qc_run u ON u.id = q.run_id JOIN qc_target t ON t.id = q.target_id \
    JOIN qc_material m ON m.id = t.material_id";

fn point_from_row(r: &AnyRow) -> StoreResult<QcPoint> {
    Ok(QcPoint {
        id: r.try_get("id")?,
        run_id: r.try_get("run_id")?,
        at: time(r, "at")?,
        entered_by: r.try_get("entered_by")?,
        target_id: r.try_get("target_id")?,
        level: r.try_get("level")?,
        lot: r.try_get("lot")?,
        value: r.try_get("value")?,
        mean: r.try_get("mean")?,
        sd: r.try_get("sd")?,
        z: r.try_get("z")?,
        rules: crate::code(r, "qc_result", "id", "rules", parse_rules)?,
        run_status: qc_status(r, "qc_run", "run_status")?,
    })
}

fn run_from_row(r: &AnyRow) -> StoreResult<QcRunRow> {
    Ok(QcRunRow {
        id: r.try_get("id")?,
        instrument_id: r.try_get("instrument_id")?,
        test_code: r.try_get("test_code")?,
        at: time(r, "at")?,
        status: qc_status(r, "qc_run", "status")?,
        violations: crate::code(r, "qc_run", "id", "violations", |json| {
            serde_json::from_str(json).ok()
        })?,
        entered_by: r.try_get("entered_by")?,
        source: crate::code(r, "qc_run", "id", "source", RunSource::parse)?,
    })
}

/// The rules a control result violated, stored space-separated ("2-2s R-4s"); one that does
/// not parse makes the whole list unreadable.
fn parse_rules(stored: &str) -> Option<Vec<WestgardRule>> {
    stored.split_whitespace().map(WestgardRule::parse).collect()
}

/// Writes what [`parse_rules`] reads.
fn rules_code(rules: &[WestgardRule]) -> String {
    rules.iter().map(|r| r.code()).collect::<Vec<_>>().join(" ")
}

/// The violations kept with a run, as JSON.
fn violations_json(violations: &[RecordedViolation]) -> String {
    serde_json::to_string(violations).expect("violations serialise: strings and codes only")
}

/// A stored QC verdict, strictly: an unknown code is corrupt data, never "not rejected".
fn qc_status(r: &AnyRow, table: &'static str, col: &'static str) -> StoreResult<QcStatus> {
    crate::code(r, table, "id", col, QcStatus::parse)
}

fn opt_f64(r: &AnyRow, col: &str) -> StoreResult<Option<f64>> {
    r.try_get::<Option<f64>, _>(col).map_err(|e| StoreError::corrupt_column(col, e))
}

impl Store {
    /// Every control material, newest lots first.
    pub async fn materials(&self) -> StoreResult<Vec<MaterialRow>> {
        let sql = format!(
            "SELECT {MATERIAL_COLUMNS} FROM qc_material m ORDER BY m.product, m.lot DESC, m.level"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.reader()).await?;
        rows.iter().map(material_from_row).collect()
    }

    /// The material whose vial carries this barcode.
    pub async fn material_by_sample_id(&self, sample_id: &str) -> StoreResult<Option<MaterialRow>> {
        let sql = format!("SELECT {MATERIAL_COLUMNS} FROM qc_material m WHERE m.sample_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sample_id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(material_from_row).transpose()
    }

    /// Targets, optionally of one instrument and test, by test, instrument and level.
    pub async fn targets(
        &self,
        instrument_id: Option<i64>,
        test_code: Option<&str>,
    ) -> StoreResult<Vec<TargetRow>> {
        let sql = format!(
            "{TARGET_SELECT} WHERE ($1 IS NULL OR t.instrument_id = $1) AND ($2 IS NULL OR t.test_code = $2) \
             ORDER BY t.test_code, i.name, m.level, m.lot"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(instrument_id)
            .bind(test_code)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(target_from_row).collect()
    }

    /// One target.
    pub async fn target(&self, id: i64) -> StoreResult<TargetRow> {
        let sql = format!("{TARGET_SELECT} WHERE t.id = $1");
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.reader()).await?;
        row.as_ref().map(target_from_row).transpose()?.ok_or(StoreError::NotFound("QC target"))
    }

    /// The Westgard rules configured for a test, if any.
    /// Rules that do not parse are corrupt data: QC is never judged by a default in their place.
    pub async fn qc_rules(&self, test_code: &str) -> StoreResult<Option<RuleSet>> {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT rules FROM qc_rules WHERE test_code = $1")
                .bind(test_code)
                .fetch_optional(self.reader())
                .await?;
        stored
            .map(|rules| {
                RuleSet::parse(&rules).map_err(|_| StoreError::Corrupt {
                    table: "qc_rules",
                    row: 0,
                    column: "rules",
                    value: rules,
                })
            })
            .transpose()
    }

    /// QC results of a test on an instrument after `since`, in run order then level.
    pub async fn qc_points(
        &self,
        instrument_id: i64,
        test_code: &str,
        since: Timestamp,
    ) -> StoreResult<Vec<QcPoint>> {
        let sql = format!(
            "{POINT_SELECT} WHERE u.instrument_id = $1 AND u.test_code = $2 AND u.at > $3 \
             ORDER BY u.at, u.id, m.level, q.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(instrument_id)
            .bind(test_code)
            .bind(since.as_micros())
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(point_from_row).collect()
    }

    /// The QC results of one material on one target's test and instrument in a period
    /// (every lot of that level, so lot changes show on the chart).
    pub async fn qc_points_of_level(
        &self,
        instrument_id: i64,
        test_code: &str,
        level: i64,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<QcPoint>> {
        let sql = format!(
            "{POINT_SELECT} WHERE u.instrument_id = $1 AND u.test_code = $2 AND m.level = $3 AND u.at >= $4 AND u.at < $5 \
             ORDER BY u.at, u.id, q.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(instrument_id)
            .bind(test_code)
            .bind(level)
            .bind(from.as_micros())
            .bind(to.as_micros())
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(point_from_row).collect()
    }

    /// The latest runs of a test on an instrument, newest first.
    pub async fn qc_runs(
        &self,
        instrument_id: i64,
        test_code: &str,
        limit: i64,
    ) -> StoreResult<Vec<QcRunRow>> {
        let rows = sqlx::query(
            "SELECT id, instrument_id, test_code, at, status, violations, entered_by, source FROM qc_run \
             WHERE instrument_id = $1 AND test_code = $2 ORDER BY at DESC, id DESC LIMIT $3",
        )
        .bind(instrument_id)
        .bind(test_code)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// The lockout facts of every test with QC, optionally on one instrument.
    pub async fn qc_facts(&self, instrument_id: Option<i64>) -> StoreResult<Vec<QcFacts>> {
        let rows = sqlx::query(
            "SELECT u.instrument_id, i.name AS instrument_name, u.test_code, \
               MAX(CASE WHEN u.status NOT IN ('accepted', 'warning') THEN u.at END) AS last_rejected, \
               MAX(CASE WHEN u.status IN ('accepted', 'warning') THEN u.at END) AS last_good, \
               SUM(CASE WHEN u.status IN ('accepted', 'warning', 'rejected') THEN 0 ELSE 1 END) AS unknown_status, \
               MAX(u.at) AS last_at, \
               (SELECT MAX(a.at) FROM qc_corrective_action a WHERE a.instrument_id = u.instrument_id AND a.test_code = u.test_code) AS last_action, \
               (SELECT l.status FROM qc_run l WHERE l.instrument_id = u.instrument_id AND l.test_code = u.test_code ORDER BY l.at DESC, l.id DESC LIMIT 1) AS last_status, \
               (SELECT MAX(g.at) FROM qc_run g WHERE g.instrument_id = u.instrument_id AND g.test_code = u.test_code AND g.status IN ('accepted', 'warning') \
                  AND g.at < (SELECT MAX(x.at) FROM qc_run x WHERE x.instrument_id = u.instrument_id AND x.test_code = u.test_code AND x.status NOT IN ('accepted', 'warning'))) AS good_before_reject \
             FROM qc_run u JOIN instrument i ON i.id = u.instrument_id \
             WHERE ($1 IS NULL OR u.instrument_id = $1) \
             GROUP BY u.instrument_id, i.name, u.test_code ORDER BY u.test_code, i.name",
        )
        .bind(instrument_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                // A verdict that is none of the three is read as a rejection above (the lock
                // holds), and named here: nothing decides on it.
                let unknown: i64 = r.try_get("unknown_status")?;
                if unknown > 0 {
                    let test_code: String = r.try_get("test_code")?;
                    return Err(StoreError::Corrupt {
                        table: "qc_run",
                        row: r.try_get("instrument_id")?,
                        column: "status",
                        value: format!("{unknown} run(s) of {test_code} with a status that is not accepted, warning or rejected"),
                    });
                }
                let last_status: Option<String> = r.try_get("last_status")?;
                let last_status = last_status
                    .map(|code| {
                        QcStatus::parse(&code).ok_or(StoreError::Corrupt {
                            table: "qc_run",
                            row: 0,
                            column: "status",
                            value: code,
                        })
                    })
                    .transpose()?;
                Ok(QcFacts {
                    instrument_id: r.try_get("instrument_id")?,
                    instrument_name: r.try_get("instrument_name")?,
                    test_code: r.try_get("test_code")?,
                    last_rejected: opt_time(r, "last_rejected")?,
                    last_good: opt_time(r, "last_good")?,
                    last_action: opt_time(r, "last_action")?,
                    last_run: opt_time(r, "last_at")?.zip(last_status),
                    good_before_reject: opt_time(r, "good_before_reject")?,
                })
            })
            .collect()
    }

    /// Corrective actions of a test on an instrument, newest first.
    pub async fn corrective_actions(
        &self,
        instrument_id: i64,
        test_code: &str,
    ) -> StoreResult<Vec<CorrectiveActionRow>> {
        let rows = sqlx::query(
            "SELECT id, instrument_id, test_code, at, by_user, action, note FROM qc_corrective_action \
             WHERE instrument_id = $1 AND test_code = $2 ORDER BY at DESC, id DESC",
        )
        .bind(instrument_id)
        .bind(test_code)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CorrectiveActionRow {
                    id: r.try_get("id")?,
                    instrument_id: r.try_get("instrument_id")?,
                    test_code: r.try_get("test_code")?,
                    at: time(r, "at")?,
                    by_user: r.try_get("by_user")?,
                    action: crate::code(
                        r,
                        "qc_corrective_action",
                        "id",
                        "action",
                        CorrectiveAction::parse,
                    )?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }

    /// Patient results of a test measured on an instrument after `since`, oldest first.
    pub async fn patient_results_since(
        &self,
        instrument_id: i64,
        test_code: &str,
        since: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<PatientResultRow>> {
        let rows = sqlx::query(
            "SELECT r.id, r.ordered_test_id, s.accession, r.value_text, r.value_number, r.entered_at, r.released_at, t.status \
             FROM result r JOIN ordered_test t ON t.id = r.ordered_test_id JOIN specimen s ON s.id = t.specimen_id \
             WHERE r.instrument_id = $1 AND t.test_code = $2 AND r.entered_at > $3 \
             ORDER BY r.entered_at, r.id LIMIT $4",
        )
        .bind(instrument_id)
        .bind(test_code)
        .bind(since.as_micros())
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PatientResultRow {
                    result_id: r.try_get("id")?,
                    ordered_test_id: r.try_get("ordered_test_id")?,
                    accession: r.try_get("accession")?,
                    value_text: r.try_get("value_text")?,
                    value_number: opt_f64(r, "value_number")?,
                    entered_at: time(r, "entered_at")?,
                    released_at: opt_time(r, "released_at")?,
                    test_status: crate::code(
                        r,
                        "ordered_test",
                        "ordered_test_id",
                        "status",
                        TestStatus::parse,
                    )?,
                })
            })
            .collect()
    }

    /// The latest numeric patient values of a test on an instrument, newest first.
    pub async fn recent_patient_values(
        &self,
        instrument_id: i64,
        test_code: &str,
        limit: i64,
    ) -> StoreResult<Vec<(i64, Timestamp, f64)>> {
        let rows = sqlx::query(
            "SELECT r.id, r.entered_at, r.value_number FROM result r JOIN ordered_test t ON t.id = r.ordered_test_id \
             WHERE r.instrument_id = $1 AND t.test_code = $2 AND r.value_number IS NOT NULL \
             ORDER BY r.entered_at DESC, r.id DESC LIMIT $3",
        )
        .bind(instrument_id)
        .bind(test_code)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, time(r, "entered_at")?, r.try_get("value_number")?)))
            .collect()
    }

    /// Moving-average rules, optionally of one instrument.
    pub async fn moving_average_rules(
        &self,
        instrument_id: Option<i64>,
    ) -> StoreResult<Vec<MovingAverageRow>> {
        let rows = sqlx::query(
            "SELECT instrument_id, test_code, window_size, truncate_low, truncate_high, target, lower_limit, upper_limit \
             FROM moving_average_rule WHERE ($1 IS NULL OR instrument_id = $1) ORDER BY test_code",
        )
        .bind(instrument_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MovingAverageRow {
                    instrument_id: r.try_get("instrument_id")?,
                    test_code: r.try_get("test_code")?,
                    window_size: r.try_get("window_size")?,
                    truncate_low: opt_f64(r, "truncate_low")?,
                    truncate_high: opt_f64(r, "truncate_high")?,
                    target: r.try_get("target")?,
                    lower_limit: r.try_get("lower_limit")?,
                    upper_limit: r.try_get("upper_limit")?,
                })
            })
            .collect()
    }

    /// Every stored autoverification rule set.
    pub async fn autoverify_rule_sets(&self) -> StoreResult<Vec<RuleSetRow>> {
        let rows = sqlx::query(
            "SELECT test_code, rules, fingerprint, updated_at, updated_by FROM autoverify_rule_set ORDER BY test_code",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RuleSetRow {
                    test_code: r.try_get("test_code")?,
                    rules: r.try_get("rules")?,
                    fingerprint: r.try_get("fingerprint")?,
                    updated_at: time(r, "updated_at")?,
                    updated_by: r.try_get("updated_by")?,
                })
            })
            .collect()
    }

    /// The patient's latest numeric result of each test collected up to `before` and entered
    /// before `entered_before`, from other specimens (the latest version of each).
    pub async fn prior_results(
        &self,
        patient_id: i64,
        test_codes: &[String],
        exclude_specimen_id: i64,
        before: Timestamp,
        entered_before: Timestamp,
    ) -> StoreResult<Vec<PriorRow>> {
        if test_codes.is_empty() {
            return Ok(Vec::new());
        }
        // Test codes are catalog codes ([A-Z0-9_]), checked again here before they are inlined.
        let codes: Vec<String> = test_codes
            .iter()
            .filter(|c| c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .map(|c| format!("'{c}'"))
            .collect();
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT t.test_code, r.value_number, COALESCE(s.collected_at, r.entered_at) AS at \
             FROM result r JOIN ordered_test t ON t.id = r.ordered_test_id JOIN specimen s ON s.id = t.specimen_id \
             JOIN lab_order o ON o.id = t.order_id \
             WHERE o.patient_id = $1 AND t.test_code IN ({}) AND t.specimen_id <> $2 AND r.value_number IS NOT NULL \
               AND r.version = (SELECT MAX(r2.version) FROM result r2 WHERE r2.ordered_test_id = r.ordered_test_id) \
               AND COALESCE(s.collected_at, r.entered_at) <= $3 AND r.entered_at < $4 AND t.status <> 'cancelled' \
             ORDER BY at DESC",
            codes.join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(patient_id)
            .bind(exclude_specimen_id)
            .bind(before.as_micros())
            .bind(entered_before.as_micros())
            .fetch_all(self.reader())
            .await?;
        let mut out: Vec<PriorRow> = Vec::new();
        for r in &rows {
            let test_code: String = r.try_get("test_code")?;
            if out.iter().any(|p| p.test_code == test_code) {
                continue; // newest first: the first seen is the latest
            }
            out.push(PriorRow { test_code, value: r.try_get("value_number")?, at: time(r, "at")? });
        }
        Ok(out)
    }

    /// Critical results (latest version flagged LL or HH) entered in a period, with their
    /// call and escalation; `pending_only` keeps those without a documented call.
    pub async fn critical_results(
        &self,
        from: Timestamp,
        to: Timestamp,
        pending_only: bool,
    ) -> StoreResult<Vec<CriticalRow>> {
        let sql = critical_results_sql(pending_only);
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(from.as_micros())
            .bind(to.as_micros())
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                let family: String = r.try_get("family_name")?;
                let given: String = r.try_get("given_name")?;
                Ok(CriticalRow {
                    ordered_test_id: r.try_get("ordered_test_id")?,
                    version: r.try_get("version")?,
                    test_code: r.try_get("test_code")?,
                    accession: r.try_get("accession")?,
                    patient_id: r.try_get("patient_id")?,
                    patient_name: format!("{}, {given}", family.to_uppercase()),
                    mrn: r.try_get("mrn")?,
                    birth_date: r.try_get("birth_date")?,
                    sex: r.try_get("sex")?,
                    report_text: r.try_get("report_text")?,
                    flags: crate::code(r, "result", "result_id", "flags", |c| {
                        Flags::parse(c).ok()
                    })?,
                    entered_at: time(r, "entered_at")?,
                    called_at: opt_time(r, "called_at")?,
                    called_person: r.try_get("called_person")?,
                    called_by: r.try_get("called_by")?,
                    attempts: r.try_get("attempts")?,
                    escalated_at: opt_time(r, "escalated_at")?,
                })
            })
            .collect()
    }
}

/// A QC run to record.
#[derive(Debug, Clone)]
pub struct NewQcRun<'a> {
    /// Instrument.
    pub instrument_id: i64,
    /// Catalog test.
    pub test_code: &'a str,
    /// When.
    pub at: Timestamp,
    /// Verdict.
    pub status: QcStatus,
    /// What it violated.
    pub violations: &'a [RecordedViolation],
    /// Who entered it.
    pub entered_by: &'a str,
    /// Where it came from.
    pub source: RunSource,
}

impl Tx {
    /// Adds a control material.
    pub async fn insert_material(
        &mut self,
        m: &NewMaterial<'_>,
        now: Timestamp,
    ) -> StoreResult<i64> {
        sqlx::query_scalar(
            "INSERT INTO qc_material (product, manufacturer, lot, level, expires_on, sample_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(m.product)
        .bind(m.manufacturer)
        .bind(m.lot)
        .bind(m.level)
        .bind(m.expires_on)
        .bind(m.sample_id)
        .bind(now.as_micros())
        .fetch_one(self.conn())
        .await
        .map_err(|e| {
            StoreError::on_unique(e, &format!("a material with barcode {:?} exists", m.sample_id))
        })
    }

    /// Sets a target (inserting it the first time); the manufacturer's values are kept as
    /// given the first time.
    #[allow(clippy::too_many_arguments)] // One row; the names are the columns.
    pub async fn upsert_target(
        &mut self,
        material_id: i64,
        instrument_id: i64,
        test_code: &str,
        mean: f64,
        sd: f64,
        source: TargetSource,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<i64> {
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM qc_target WHERE material_id = $1 AND instrument_id = $2 AND test_code = $3",
        )
        .bind(material_id)
        .bind(instrument_id)
        .bind(test_code)
        .fetch_optional(self.conn())
        .await?;
        if let Some(id) = existing {
            sqlx::query(
                "UPDATE qc_target SET mean = $1, sd = $2, source = $3, updated_at = $4, updated_by = $5 WHERE id = $6",
            )
            .bind(mean)
            .bind(sd)
            .bind(source.code())
            .bind(now.as_micros())
            .bind(by)
            .bind(id)
            .execute(self.conn())
            .await?;
            return Ok(id);
        }
        Ok(sqlx::query_scalar(
            "INSERT INTO qc_target (material_id, instrument_id, test_code, mean, sd, source, manufacturer_mean, manufacturer_sd, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $4, $5, $7, $8) RETURNING id",
        )
        .bind(material_id)
        .bind(instrument_id)
        .bind(test_code)
        .bind(mean)
        .bind(sd)
        .bind(source.code())
        .bind(now.as_micros())
        .bind(by)
        .fetch_one(self.conn())
        .await?)
    }

    /// Sets a test's Westgard rules.
    pub async fn set_qc_rules(
        &mut self,
        test_code: &str,
        rules: &RuleSet,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM qc_rules WHERE test_code = $1")
            .bind(test_code)
            .execute(self.conn())
            .await?;
        sqlx::query(
            "INSERT INTO qc_rules (test_code, rules, updated_at, updated_by) VALUES ($1, $2, $3, $4)",
        )
        .bind(test_code)
        .bind(rules.to_string())
        .bind(now.as_micros())
        .bind(by)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Records a QC run (its results follow with [`Tx::insert_qc_result`]).
    pub async fn insert_qc_run(&mut self, r: &NewQcRun<'_>) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO qc_run (instrument_id, test_code, at, status, violations, entered_by, source) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(r.instrument_id)
        .bind(r.test_code)
        .bind(r.at.as_micros())
        .bind(r.status.code())
        .bind(violations_json(r.violations))
        .bind(r.entered_by)
        .bind(r.source.code())
        .fetch_one(self.conn())
        .await?)
    }

    /// Records one QC result of a run.
    #[allow(clippy::too_many_arguments)] // One row; the names are the columns.
    pub async fn insert_qc_result(
        &mut self,
        run_id: i64,
        target_id: i64,
        value: f64,
        mean: f64,
        sd: f64,
        z: f64,
        rules: &[WestgardRule],
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO qc_result (run_id, target_id, value, mean, sd, z, rules) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(run_id)
        .bind(target_id)
        .bind(value)
        .bind(mean)
        .bind(sd)
        .bind(z)
        .bind(rules_code(rules))
        .fetch_one(self.conn())
        .await?)
    }

    /// Sets a run's verdict and a result's violated rules, once the run is judged.
    pub async fn judge_qc_run(
        &mut self,
        run_id: i64,
        status: QcStatus,
        violations: &[RecordedViolation],
        rules_by_result: &[(i64, Vec<WestgardRule>)],
    ) -> StoreResult<()> {
        sqlx::query("UPDATE qc_run SET status = $1, violations = $2 WHERE id = $3")
            .bind(status.code())
            .bind(violations_json(violations))
            .bind(run_id)
            .execute(self.conn())
            .await?;
        for (id, rules) in rules_by_result {
            sqlx::query("UPDATE qc_result SET rules = $1 WHERE id = $2")
                .bind(rules_code(rules))
                .bind(id)
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    /// Records a corrective action.
    pub async fn insert_corrective_action(
        &mut self,
        instrument_id: i64,
        test_code: &str,
        action: CorrectiveAction,
        note: &str,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO qc_corrective_action (instrument_id, test_code, at, by_user, action, note) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(instrument_id)
        .bind(test_code)
        .bind(now.as_micros())
        .bind(by)
        .bind(action.code())
        .bind(note)
        .fetch_one(self.conn())
        .await?)
    }

    /// Sets (or replaces) a moving-average rule.
    pub async fn set_moving_average_rule(
        &mut self,
        r: &MovingAverageRow,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM moving_average_rule WHERE instrument_id = $1 AND test_code = $2")
            .bind(r.instrument_id)
            .bind(&r.test_code)
            .execute(self.conn())
            .await?;
        sqlx::query(
            "INSERT INTO moving_average_rule (instrument_id, test_code, window_size, truncate_low, truncate_high, target, \
             lower_limit, upper_limit, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(r.instrument_id)
        .bind(&r.test_code)
        .bind(r.window_size)
        .bind(r.truncate_low)
        .bind(r.truncate_high)
        .bind(r.target)
        .bind(r.lower_limit)
        .bind(r.upper_limit)
        .bind(now.as_micros())
        .bind(by)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Stores a test's autoverification rule set.
    pub async fn set_autoverify_rules(
        &mut self,
        test_code: &str,
        rules_json: &str,
        fingerprint: &str,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM autoverify_rule_set WHERE test_code = $1")
            .bind(test_code)
            .execute(self.conn())
            .await?;
        sqlx::query(
            "INSERT INTO autoverify_rule_set (test_code, rules, fingerprint, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(test_code)
        .bind(rules_json)
        .bind(fingerprint)
        .bind(now.as_micros())
        .bind(by)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Records the serum indices an analyzer measured on a specimen.
    pub async fn set_specimen_indices(
        &mut self,
        specimen_id: i64,
        hemolysis: Option<i64>,
        icterus: Option<i64>,
        lipemia: Option<i64>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE specimen SET hemolysis_index = COALESCE($1, hemolysis_index), icterus_index = COALESCE($2, icterus_index), \
             lipemia_index = COALESCE($3, lipemia_index) WHERE id = $4",
        )
        .bind(hemolysis)
        .bind(icterus)
        .bind(lipemia)
        .bind(specimen_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Sets the pattern of an instrument's control sample ids.
    pub async fn set_qc_pattern(&mut self, instrument_id: i64, pattern: &str) -> StoreResult<()> {
        sqlx::query("UPDATE instrument SET qc_pattern = $1 WHERE id = $2")
            .bind(pattern)
            .bind(instrument_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Sets which component of ASTM O-3 holds an instrument's specimen ids (`None`: the first
    /// that is not empty).
    pub async fn set_specimen_id_component(
        &mut self,
        instrument_id: i64,
        component: Option<i64>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE instrument SET specimen_id_component = $1 WHERE id = $2")
            .bind(component)
            .bind(instrument_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Sets the character set an ASTM instrument writes (`None`: UTF-8).
    pub async fn set_instrument_charset(
        &mut self,
        instrument_id: i64,
        charset: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE instrument SET charset = $1 WHERE id = $2")
            .bind(charset)
            .bind(instrument_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Records a specimen's conditions.
    pub async fn set_specimen_conditions(
        &mut self,
        specimen_id: i64,
        conditions: &[SpecimenCondition],
    ) -> StoreResult<()> {
        sqlx::query("UPDATE specimen SET conditions = $1 WHERE id = $2")
            .bind(SpecimenCondition::list_code(conditions))
            .bind(specimen_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Records that a critical result went without a documented call past the limit; false
    /// when it was already escalated.
    pub async fn insert_escalation(
        &mut self,
        ordered_test_id: i64,
        result_version: i64,
        minutes_waiting: i64,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let n = sqlx::query(
            "INSERT INTO critical_escalation (ordered_test_id, result_version, escalated_at, minutes_waiting) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (ordered_test_id, result_version) DO NOTHING",
        )
        .bind(ordered_test_id)
        .bind(result_version)
        .bind(now.as_micros())
        .bind(minutes_waiting)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}

/// The SQL of the critical results of a period (`$1`, `$2`): it reads the critical ones only,
/// through their partial index, never every result.
pub(crate) fn critical_results_sql(pending_only: bool) -> String {
    let pending = if pending_only {
        "AND NOT EXISTS (SELECT 1 FROM critical_call x WHERE x.ordered_test_id = t.id AND x.result_version = r.version AND x.read_back = 1)"
    } else {
        ""
    };
    // The first call with read-back closes the loop; calls without it are attempts.
    let first_call = |column: &str| {
        format!(
            "(SELECT c.{column} FROM critical_call c WHERE c.ordered_test_id = t.id AND c.result_version = r.version \
                 AND c.read_back = 1 ORDER BY c.called_at, c.id LIMIT 1) AS {column}"
        )
    };
    let sql = format!(
        "SELECT r.id AS result_id, t.id AS ordered_test_id, r.version, t.test_code, s.accession, p.id AS patient_id, \
               p.family_name, p.given_name, p.mrn, p.birth_date, p.sex, r.report_text, r.flags, r.entered_at, \
               {}, {}, {}, \
               (SELECT COUNT(*) FROM critical_call c WHERE c.ordered_test_id = t.id AND c.result_version = r.version AND c.read_back = 0) AS attempts, \
               e.escalated_at \
             FROM result r JOIN ordered_test t ON t.id = r.ordered_test_id JOIN specimen s ON s.id = t.specimen_id \
             JOIN lab_order o ON o.id = t.order_id JOIN patient p ON p.id = o.patient_id \
             LEFT JOIN critical_escalation e ON e.ordered_test_id = t.id AND e.result_version = r.version \
             WHERE (r.flags LIKE '%LL%' OR r.flags LIKE '%HH%') AND r.entered_at >= $1 AND r.entered_at < $2 \
               AND r.version = (SELECT MAX(r2.version) FROM result r2 WHERE r2.ordered_test_id = r.ordered_test_id) \
               AND t.status <> 'cancelled' {pending} \
             ORDER BY r.entered_at",
        first_call("called_at"),
        first_call("called_person"),
        first_call("called_by"),
    );
    sql
}
