//! Orders, specimens (one per container, each with an accession number) and the tests
//! ordered on them.

use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use crate::patients::{PATIENT_COLUMNS, PatientRow, patient_from_row};
use crate::results::{RESULT_COLUMNS_R, ResultRow, result_from_row_prefixed};
use cuvette_domain::workflow::{
    Priority, RejectionReason, SpecimenCondition, SpecimenStatus, TestStatus,
};

use crate::{
    Store, StoreError, StoreResult, Timestamp, Tx, code, code_at, opt_code_at, opt_i64, opt_time,
    time,
};

/// An order to write.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    /// The patient.
    pub patient_id: i64,
    /// Ordering provider.
    pub provider: &'a str,
    /// How urgent it is.
    pub priority: Priority,
    /// Clinical note.
    pub clinical_note: &'a str,
    /// The placer's order number, when the order came from elsewhere.
    pub placer_number: Option<&'a str>,
}

/// A specimen to write.
#[derive(Debug, Clone)]
pub struct NewSpecimen<'a> {
    /// Its accession number, as printed.
    pub accession: &'a str,
    /// Container (tube type).
    pub container: &'a str,
    /// Specimen type.
    pub specimen_type: &'a str,
    /// The specimen this one recollects, if any.
    pub recollection_of: Option<i64>,
    /// The EHR's id for the specimen (HL7 SPM-2), when the EHR sent the specimen.
    pub placer_specimen_id: Option<&'a str>,
    /// When and by whom it was drawn, when it was drawn before it was written (the ward
    /// collected it and the EHR said when, HL7 SPM-17): it is written collected.
    pub collected: Option<(Timestamp, &'a str)>,
}

/// An ordered test to write.
#[derive(Debug, Clone)]
pub struct NewOrderedTest<'a> {
    /// Test code.
    pub test_code: &'a str,
    /// Panel it came from.
    pub panel_code: Option<&'a str>,
    /// Bench.
    pub discipline: &'a str,
}

/// A stored order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrderRow {
    /// Internal id.
    pub id: i64,
    /// The patient.
    pub patient_id: i64,
    /// Ordering provider.
    pub provider: String,
    /// How urgent it is.
    pub priority: Priority,
    /// Clinical note.
    pub clinical_note: String,
    /// Placer order number.
    pub placer_number: Option<String>,
    /// When it was ordered.
    pub ordered_at: Timestamp,
    /// Who entered it.
    pub ordered_by: String,
}

/// A stored specimen.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpecimenRow {
    /// Internal id.
    pub id: i64,
    /// Accession number as printed.
    pub accession: String,
    /// The order.
    pub order_id: i64,
    /// Container.
    pub container: String,
    /// Specimen type.
    pub specimen_type: String,
    /// Status code.
    pub status: SpecimenStatus,
    /// Collection time.
    pub collected_at: Option<Timestamp>,
    /// Collector.
    pub collected_by: Option<String>,
    /// Receipt time.
    pub received_at: Option<Timestamp>,
    /// Receiver.
    pub received_by: Option<String>,
    /// Rejection time.
    pub rejected_at: Option<Timestamp>,
    /// Who rejected it.
    pub rejected_by: Option<String>,
    /// Why it was rejected.
    pub reject_reason: Option<RejectionReason>,
    /// Rejection note.
    pub reject_note: Option<String>,
    /// The specimen this one recollects.
    pub recollection_of: Option<i64>,
    /// Optimistic-concurrency version.
    pub row_version: i64,
    /// Hemolysis index the analyzer measured.
    pub hemolysis_index: Option<i64>,
    /// Icterus index.
    pub icterus_index: Option<i64>,
    /// Lipemia index.
    pub lipemia_index: Option<i64>,
    /// Condition codes noted on it, space-separated.
    pub conditions: Vec<SpecimenCondition>,
}

/// A stored ordered test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrderedTestRow {
    /// Internal id.
    pub id: i64,
    /// The order.
    pub order_id: i64,
    /// The specimen it is done on.
    pub specimen_id: i64,
    /// Test code.
    pub test_code: String,
    /// Panel code.
    pub panel_code: Option<String>,
    /// Bench.
    pub discipline: String,
    /// Status code.
    pub status: TestStatus,
    /// Optimistic-concurrency version: a form carries it back, a save with a stale one
    /// is a conflict.
    pub row_version: i64,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A row of a worklist or review queue: the test with its specimen, order, patient and
/// current result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkItem {
    /// The test.
    pub test: OrderedTestRow,
    /// Its specimen.
    pub specimen: SpecimenRow,
    /// Its order.
    pub order: OrderRow,
    /// The patient.
    pub patient: PatientRow,
    /// The latest result version, if any.
    pub result: Option<ResultRow>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct WorklistFilter {
    /// Only this bench.
    pub discipline: Option<String>,
    /// Only tests in these statuses.
    pub statuses: Vec<TestStatus>,
    /// Only this specimen.
    pub specimen_id: Option<i64>,
    /// Only this patient.
    pub patient_id: Option<i64>,
    /// Only this order.
    pub order_id: Option<i64>,
    /// Only tests whose latest result waits for verification (read through a partial index
    /// of the open ones, never by filtering history).
    pub awaiting_verification: bool,
    /// At most this many rows.
    pub limit: i64,
}

/// What the order search looks for: every filter given narrows it, each on its index; the
/// period is always given, so the search never walks the whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSearchFilter {
    /// Ordered at or after this time.
    pub from: Timestamp,
    /// Ordered before this time.
    pub to: Timestamp,
    /// Only this patient's orders.
    pub patient_id: Option<i64>,
    /// Only this provider's orders, as written on the order.
    pub provider: Option<String>,
    /// Only tests in this status.
    pub status: Option<TestStatus>,
    /// Only orders of this priority.
    pub priority: Option<Priority>,
    /// Only this test.
    pub test_code: Option<String>,
    /// Rows skipped (the pages before).
    pub offset: i64,
    /// At most this many rows.
    pub limit: i64,
}

pub(crate) const SPECIMEN_COLUMNS: &str = "s.id AS s_id, s.accession AS s_accession, s.order_id AS s_order_id, s.container AS s_container, \
    s.specimen_type AS s_specimen_type, s.status AS s_status, s.collected_at AS s_collected_at, s.collected_by AS s_collected_by, \
    s.received_at AS s_received_at, s.received_by AS s_received_by, s.rejected_at AS s_rejected_at, s.rejected_by AS s_rejected_by, \
    s.reject_reason AS s_reject_reason, s.reject_note AS s_reject_note, s.recollection_of AS s_recollection_of, s.row_version AS s_row_version, \
    s.hemolysis_index AS s_hemolysis_index, s.icterus_index AS s_icterus_index, s.lipemia_index AS s_lipemia_index, s.conditions AS s_conditions";

pub(crate) const ORDER_COLUMNS: &str = "o.id AS o_id, o.patient_id AS o_patient_id, o.provider AS o_provider, o.priority AS o_priority, \
    o.clinical_note AS o_clinical_note, o.placer_number AS o_placer_number, o.ordered_at AS o_ordered_at, o.ordered_by AS o_ordered_by";

pub(crate) const TEST_COLUMNS: &str = "t.id AS t_id, t.order_id AS t_order_id, t.specimen_id AS t_specimen_id, t.test_code AS t_test_code, \
    t.panel_code AS t_panel_code, t.discipline AS t_discipline, t.status AS t_status, t.row_version AS t_row_version, t.updated_at AS t_updated_at";

pub(crate) fn specimen_from_row(r: &AnyRow) -> StoreResult<SpecimenRow> {
    Ok(SpecimenRow {
        id: r.try_get("s_id")?,
        accession: r.try_get("s_accession")?,
        order_id: r.try_get("s_order_id")?,
        container: r.try_get("s_container")?,
        specimen_type: r.try_get("s_specimen_type")?,
        status: code_at(r, "specimen", "s_id", "s_status", "status", SpecimenStatus::parse)?,
        collected_at: opt_time(r, "s_collected_at")?,
        collected_by: r.try_get("s_collected_by")?,
        received_at: opt_time(r, "s_received_at")?,
        received_by: r.try_get("s_received_by")?,
        rejected_at: opt_time(r, "s_rejected_at")?,
        rejected_by: r.try_get("s_rejected_by")?,
        reject_reason: opt_code_at(
            r,
            "specimen",
            "s_id",
            "s_reject_reason",
            "reject_reason",
            RejectionReason::parse,
        )?,
        reject_note: r.try_get("s_reject_note")?,
        recollection_of: opt_i64(r, "s_recollection_of")?,
        row_version: r.try_get("s_row_version")?,
        hemolysis_index: opt_i64(r, "s_hemolysis_index")?,
        icterus_index: opt_i64(r, "s_icterus_index")?,
        lipemia_index: opt_i64(r, "s_lipemia_index")?,
        conditions: crate::code_at(
            r,
            "specimen",
            "s_id",
            "s_conditions",
            "conditions",
            SpecimenCondition::parse_list,
        )?,
    })
}

pub(crate) fn order_from_row(r: &AnyRow) -> StoreResult<OrderRow> {
    Ok(OrderRow {
        id: r.try_get("o_id")?,
        patient_id: r.try_get("o_patient_id")?,
        provider: r.try_get("o_provider")?,
        priority: code_at(r, "lab_order", "o_id", "o_priority", "priority", Priority::from_code)?,
        clinical_note: r.try_get("o_clinical_note")?,
        placer_number: r.try_get("o_placer_number")?,
        ordered_at: time(r, "o_ordered_at")?,
        ordered_by: r.try_get("o_ordered_by")?,
    })
}

pub(crate) fn test_from_row(r: &AnyRow) -> StoreResult<OrderedTestRow> {
    Ok(OrderedTestRow {
        id: r.try_get("t_id")?,
        order_id: r.try_get("t_order_id")?,
        specimen_id: r.try_get("t_specimen_id")?,
        test_code: r.try_get("t_test_code")?,
        panel_code: r.try_get("t_panel_code")?,
        discipline: r.try_get("t_discipline")?,
        status: code_at(r, "ordered_test", "t_id", "t_status", "status", TestStatus::parse)?,
        row_version: r.try_get("t_row_version")?,
        updated_at: time(r, "t_updated_at")?,
    })
}

fn work_item_from_row(r: &AnyRow) -> StoreResult<WorkItem> {
    let has_result = opt_i64(r, "r_id")?.is_some();
    Ok(WorkItem {
        test: test_from_row(r)?,
        specimen: specimen_from_row(r)?,
        order: order_from_row(r)?,
        patient: patient_from_row(r)?,
        result: if has_result { Some(result_from_row_prefixed(r)?) } else { None },
    })
}

impl Tx {
    /// Writes an order.
    pub async fn insert_order(
        &mut self,
        o: &NewOrder<'_>,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO lab_order (patient_id, provider, priority, clinical_note, placer_number, ordered_at, ordered_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(o.patient_id)
        .bind(o.provider)
        .bind(o.priority.code())
        .bind(o.clinical_note)
        .bind(o.placer_number)
        .bind(now.as_micros())
        .bind(by)
        .fetch_one(self.conn())
        .await?)
    }

    /// The next accession sequence number for a two-digit year. Gaps are possible when a
    /// transaction rolls back; duplicates are not (the row is updated inside the transaction).
    pub async fn next_accession_sequence(&mut self, year: i64) -> StoreResult<i64> {
        let next: i64 = sqlx::query_scalar(
            "INSERT INTO accession_sequence (year, last_sequence) VALUES ($1, 1) \
             ON CONFLICT (year) DO UPDATE SET last_sequence = accession_sequence.last_sequence + 1 RETURNING last_sequence",
        )
        .bind(year)
        .fetch_one(self.conn())
        .await?;
        Ok(next)
    }

    /// Whether an accession number is already on a specimen (read inside the transaction).
    pub async fn accession_taken(&mut self, accession: &str) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM specimen WHERE accession = $1")
            .bind(accession)
            .fetch_one(self.conn())
            .await?;
        Ok(n > 0)
    }

    /// Writes a specimen; a duplicate accession number is a conflict.
    pub async fn insert_specimen(
        &mut self,
        order_id: i64,
        s: &NewSpecimen<'_>,
    ) -> StoreResult<i64> {
        sqlx::query_scalar(
            "INSERT INTO specimen (accession, order_id, container, specimen_type, status, recollection_of, \
             placer_specimen_id, collected_at, collected_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(s.accession)
        .bind(order_id)
        .bind(s.container)
        .bind(s.specimen_type)
        .bind(match s.collected {
            Some(_) => SpecimenStatus::Collected.code(),
            None => SpecimenStatus::Pending.code(),
        })
        .bind(s.recollection_of)
        .bind(s.placer_specimen_id)
        .bind(s.collected.map(|(at, _)| at.as_micros()))
        .bind(s.collected.map(|(_, by)| by))
        .fetch_one(self.conn())
        .await
        .map_err(|e| StoreError::on_unique(e, &format!("accession number {} is already in use", s.accession)))
    }

    /// Writes an ordered test.
    pub async fn insert_ordered_test(
        &mut self,
        order_id: i64,
        specimen_id: i64,
        t: &NewOrderedTest<'_>,
        status: TestStatus,
        now: Timestamp,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO ordered_test (order_id, specimen_id, test_code, panel_code, discipline, status, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(order_id)
        .bind(specimen_id)
        .bind(t.test_code)
        .bind(t.panel_code)
        .bind(t.discipline)
        .bind(status.code())
        .bind(now.as_micros())
        .fetch_one(self.conn())
        .await?)
    }

    /// Writes a specimen's new state if nobody changed it since `s.row_version` was read.
    pub async fn update_specimen(&mut self, s: &SpecimenRow) -> StoreResult<()> {
        let n = sqlx::query(
            "UPDATE specimen SET status = $1, collected_at = $2, collected_by = $3, received_at = $4, received_by = $5, \
             rejected_at = $6, rejected_by = $7, reject_reason = $8, reject_note = $9, row_version = row_version + 1 \
             WHERE id = $10 AND row_version = $11",
        )
        .bind(s.status.code())
        .bind(s.collected_at.map(Timestamp::as_micros))
        .bind(&s.collected_by)
        .bind(s.received_at.map(Timestamp::as_micros))
        .bind(&s.received_by)
        .bind(s.rejected_at.map(Timestamp::as_micros))
        .bind(&s.rejected_by)
        .bind(s.reject_reason.map(RejectionReason::code))
        .bind(&s.reject_note)
        .bind(s.id)
        .bind(s.row_version)
        .execute(self.conn())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "specimen {} was changed by someone else; reload it",
                s.accession
            )));
        }
        Ok(())
    }

    /// Moves an ordered test to `status` if nobody changed it since `row_version`.
    pub async fn update_test_status(
        &mut self,
        id: i64,
        row_version: i64,
        status: TestStatus,
        awaiting_verification: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.update_test_statuses(&[(id, row_version)], status, awaiting_verification, now).await
    }

    /// Sets the status of several ordered tests in one statement, each only if it is still at
    /// the `(id, row_version)` the caller read; if any moved on, nothing may be written.
    /// `awaiting_verification` says whether their latest result now waits for a person to
    /// verify it: the review queue reads only those.
    pub async fn update_test_statuses(
        &mut self,
        tests: &[(i64, i64)],
        status: TestStatus,
        awaiting_verification: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        if tests.is_empty() {
            return Ok(());
        }
        let mut sql = String::from(
            "UPDATE ordered_test SET status = $1, updated_at = $2, awaiting_verification = $3, \
             row_version = row_version + 1 WHERE ",
        );
        for i in 0..tests.len() {
            let sep = if i == 0 { "" } else { " OR " };
            sql.push_str(&format!("{sep}(id = ${} AND row_version = ${})", 4 + 2 * i, 5 + 2 * i));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(status.code())
            .bind(now.as_micros())
            .bind(i64::from(awaiting_verification));
        for (id, row_version) in tests {
            q = q.bind(*id).bind(*row_version);
        }
        let n = q.execute(self.conn()).await?.rows_affected();
        if n != tests.len() as u64 {
            return Err(StoreError::Conflict(
                "someone else saved this result first: review their value, then save again if yours should replace it".into(),
            ));
        }
        Ok(())
    }

    /// Moves every test on a specimen that is in `from` to `to` (collection, receipt, rejection).
    pub async fn update_tests_of_specimen(
        &mut self,
        specimen_id: i64,
        from: &[TestStatus],
        to: TestStatus,
        now: Timestamp,
    ) -> StoreResult<()> {
        for status in from {
            sqlx::query(
                "UPDATE ordered_test SET status = $1, updated_at = $2, awaiting_verification = 0, row_version = row_version + 1 \
                 WHERE specimen_id = $3 AND status = $4",
            )
            .bind(to.code())
            .bind(now.as_micros())
            .bind(specimen_id)
            .bind(status.code())
            .execute(self.conn())
            .await?;
        }
        Ok(())
    }
}

impl Store {
    /// A specimen by accession number as printed.
    pub async fn specimen_by_accession(&self, accession: &str) -> StoreResult<Option<SpecimenRow>> {
        let sql = format!("SELECT {SPECIMEN_COLUMNS} FROM specimen s WHERE s.accession = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(accession)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(specimen_from_row).transpose()
    }

    /// The specimens an EHR gave this id (HL7 SPM-2), oldest first.
    pub async fn specimens_by_placer_id(&self, placer_id: &str) -> StoreResult<Vec<SpecimenRow>> {
        let sql = format!(
            "SELECT {SPECIMEN_COLUMNS} FROM specimen s WHERE s.placer_specimen_id = $1 ORDER BY s.id"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(placer_id).fetch_all(self.reader()).await?;
        rows.iter().map(specimen_from_row).collect()
    }

    /// A specimen by id.
    pub async fn specimen(&self, id: i64) -> StoreResult<SpecimenRow> {
        let sql = format!("SELECT {SPECIMEN_COLUMNS} FROM specimen s WHERE s.id = $1");
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.reader()).await?;
        row.as_ref().map(specimen_from_row).transpose()?.ok_or(StoreError::NotFound("specimen"))
    }

    /// An order by id.
    pub async fn order(&self, id: i64) -> StoreResult<OrderRow> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM lab_order o WHERE o.id = $1");
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.reader()).await?;
        row.as_ref().map(order_from_row).transpose()?.ok_or(StoreError::NotFound("order"))
    }

    /// The specimens of an order: those written for it, and those another order of the same
    /// message wrote that carry some of its tests (an EHR's swab with a culture and a Gram
    /// stain ordered apart).
    pub async fn specimens_of_order(&self, order_id: i64) -> StoreResult<Vec<SpecimenRow>> {
        let sql = format!(
            "SELECT {SPECIMEN_COLUMNS} FROM specimen s WHERE s.order_id = $1 \
             OR s.id IN (SELECT t.specimen_id FROM ordered_test t WHERE t.order_id = $1) ORDER BY s.id"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(order_id).fetch_all(self.reader()).await?;
        rows.iter().map(specimen_from_row).collect()
    }

    /// The orders of a patient, newest first.
    pub async fn orders_of_patient(&self, patient_id: i64) -> StoreResult<Vec<OrderRow>> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM lab_order o WHERE o.patient_id = $1 ORDER BY o.ordered_at DESC, o.id DESC"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(patient_id).fetch_all(self.reader()).await?;
        rows.iter().map(order_from_row).collect()
    }

    /// An ordered test by id.
    pub async fn ordered_test(&self, id: i64) -> StoreResult<OrderedTestRow> {
        let sql = format!("SELECT {TEST_COLUMNS} FROM ordered_test t WHERE t.id = $1");
        let row =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.reader()).await?;
        row.as_ref().map(test_from_row).transpose()?.ok_or(StoreError::NotFound("ordered test"))
    }

    /// Tests with their specimen, order, patient and latest result, STAT first, then oldest
    /// specimen first.
    pub async fn work_items(&self, f: &WorklistFilter) -> StoreResult<Vec<WorkItem>> {
        let sql = work_items_sql(f);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(d) = &f.discipline {
            query = query.bind(d.as_str());
        }
        if let Some(id) = f.specimen_id {
            query = query.bind(id);
        }
        if let Some(id) = f.patient_id {
            query = query.bind(id);
        }
        if let Some(id) = f.order_id {
            query = query.bind(id);
        }
        let rows =
            query.bind(if f.limit > 0 { f.limit } else { 1000 }).fetch_all(self.reader()).await?;
        rows.iter().map(work_item_from_row).collect()
    }

    /// Stored instrument results of a test entered in `[from, to)` (their latest versions),
    /// with specimen and patient, oldest first: the history a rule set is tried on.
    pub async fn results_of_test(
        &self,
        test_code: &str,
        from: Timestamp,
        to: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<WorkItem>> {
        let sql = format!(
            "SELECT {TEST_COLUMNS}, {SPECIMEN_COLUMNS}, {ORDER_COLUMNS}, {PATIENT_COLUMNS}, {RESULT_COLUMNS_R} \
             FROM result r JOIN ordered_test t ON t.id = r.ordered_test_id \
             JOIN specimen s ON s.id = t.specimen_id JOIN lab_order o ON o.id = t.order_id JOIN patient p ON p.id = o.patient_id \
             WHERE t.test_code = $1 AND r.entered_at >= $2 AND r.entered_at < $3 AND r.instrument_id IS NOT NULL \
               AND r.version = (SELECT MAX(r2.version) FROM result r2 WHERE r2.ordered_test_id = t.id) \
             ORDER BY r.entered_at, r.id LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(test_code)
            .bind(from.as_micros())
            .bind(to.as_micros())
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(work_item_from_row).collect()
    }

    /// Ordered tests with their specimen, order, patient and latest result, newest order first
    /// (the order search).
    pub async fn search_orders(&self, f: &OrderSearchFilter) -> StoreResult<Vec<WorkItem>> {
        let rows = bind_order_search(sqlx::query(sqlx::AssertSqlSafe(order_search_sql(f))), f)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(work_item_from_row).collect()
    }

    /// How the database plans an order search with these filters (see [`Self::open_work_plans`]).
    pub async fn order_search_plan(&self, f: &OrderSearchFilter) -> StoreResult<Vec<String>> {
        let (explain, column) = match self.backend {
            crate::Backend::Sqlite => ("EXPLAIN QUERY PLAN ", "detail"),
            crate::Backend::Postgres => ("EXPLAIN ", "QUERY PLAN"),
        };
        let sql = format!("{explain}{}", order_search_sql(f));
        let rows = bind_order_search(sqlx::query(sqlx::AssertSqlSafe(sql)), f)
            .fetch_all(self.reader())
            .await?;
        plan_lines(&rows, column)
    }

    /// How the database plans the open-work lists — the review queue, a bench worklist, the
    /// collection list and the pending critical calls — one line per step (SQLite's `EXPLAIN
    /// QUERY PLAN`, PostgreSQL's `EXPLAIN`): tests keep them on their indexes, so they cost
    /// the same however much history lies behind them.
    pub async fn open_work_plans(&self) -> StoreResult<Vec<(&'static str, Vec<String>)>> {
        let (explain, column) = match self.backend {
            crate::Backend::Sqlite => ("EXPLAIN QUERY PLAN ", "detail"),
            crate::Backend::Postgres => ("EXPLAIN ", "QUERY PLAN"),
        };
        let queue = WorklistFilter { awaiting_verification: true, ..Default::default() };
        let bench = WorklistFilter {
            discipline: Some("chemistry".into()),
            statuses: vec![TestStatus::Received, TestStatus::InProcess],
            ..Default::default()
        };
        let draws = WorklistFilter { statuses: vec![TestStatus::Ordered], ..Default::default() };
        let mut plans = Vec::new();
        for (name, sql, binds) in [
            ("review queue", work_items_sql(&queue), vec![]),
            ("bench worklist", work_items_sql(&bench), vec!["chemistry"]),
            ("collection list", work_items_sql(&draws), vec![]),
        ] {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("{explain}{sql}")));
            for b in binds {
                q = q.bind(b);
            }
            let rows = q.bind(1000_i64).fetch_all(self.reader()).await?;
            plans.push((name, plan_lines(&rows, column)?));
        }
        let sql = crate::qc::critical_results_sql(true);
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{explain}{sql}")))
            .bind(0_i64)
            .bind(1_i64)
            .fetch_all(self.reader())
            .await?;
        plans.push(("pending critical calls", plan_lines(&rows, column)?));
        Ok(plans)
    }

    /// Counts of open tests per bench and status (for the navigation's queue counts).
    pub async fn open_counts(&self) -> StoreResult<Vec<(String, TestStatus, i64)>> {
        let rows = sqlx::query(
            "SELECT t.discipline, t.status, COUNT(*) AS n FROM ordered_test t \
             WHERE t.status IN ('ordered', 'collected', 'received', 'in_process') GROUP BY t.discipline, t.status",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let status = code(r, "ordered_test", "id", "status", TestStatus::parse)?;
                Ok((r.try_get("discipline")?, status, r.try_get("n")?))
            })
            .collect()
    }

    /// The patient of a specimen.
    pub async fn patient_of_specimen(&self, specimen_id: i64) -> StoreResult<PatientRow> {
        let sql = format!(
            "SELECT {PATIENT_COLUMNS} FROM specimen s JOIN lab_order o ON o.id = s.order_id JOIN patient p ON p.id = o.patient_id WHERE s.id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(specimen_id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(patient_from_row).transpose()?.ok_or(StoreError::NotFound("specimen"))
    }
}

/// The SQL of a work list: only the filters given appear, each on its index.
pub(crate) fn work_items_sql(f: &WorklistFilter) -> String {
    // Statuses are few and fixed; an IN list keeps the SQL portable.
    let statuses = if f.statuses.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = f.statuses.iter().map(|s| format!("'{}'", s.code())).collect();
        format!("AND t.status IN ({})", list.join(", "))
    };
    // Only the filters given appear in the SQL, so each uses its index (a catch-all
    // `$1 IS NULL OR …` makes SQLite scan every ordered test).
    let mut conditions = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    if f.discipline.is_some() {
        conditions.push(format!("t.discipline = ${}", next()));
    }
    if f.specimen_id.is_some() {
        conditions.push(format!("t.specimen_id = ${}", next()));
    }
    if f.patient_id.is_some() {
        conditions.push(format!("o.patient_id = ${}", next()));
    }
    if f.order_id.is_some() {
        conditions.push(format!("t.order_id = ${}", next()));
    }
    if f.awaiting_verification {
        // The partial index's own condition, written as it is, so both engines use it.
        conditions.push("t.awaiting_verification = 1".to_owned());
    }
    let limit = next();
    let filters = if conditions.is_empty() { "1 = 1".to_owned() } else { conditions.join(" AND ") };
    let sql = format!(
        "SELECT {TEST_COLUMNS}, {SPECIMEN_COLUMNS}, {ORDER_COLUMNS}, {PATIENT_COLUMNS}, {RESULT_COLUMNS_R} \
             FROM ordered_test t \
             JOIN specimen s ON s.id = t.specimen_id \
             JOIN lab_order o ON o.id = t.order_id \
             JOIN patient p ON p.id = o.patient_id \
             LEFT JOIN result r ON r.ordered_test_id = t.id \
                AND r.version = (SELECT MAX(r2.version) FROM result r2 WHERE r2.ordered_test_id = t.id) \
             WHERE {filters} {statuses} \
             ORDER BY CASE WHEN o.priority = 'stat' THEN 0 ELSE 1 END, COALESCE(s.received_at, s.collected_at, o.ordered_at), t.id \
             LIMIT ${limit}"
    );
    sql
}

/// The SQL of an order search: the period, then only the filters given, each on its index.
fn order_search_sql(f: &OrderSearchFilter) -> String {
    let mut conditions = vec!["o.ordered_at >= $1".to_owned(), "o.ordered_at < $2".to_owned()];
    let mut n = 2;
    let mut next = || {
        n += 1;
        n
    };
    if f.patient_id.is_some() {
        conditions.push(format!("o.patient_id = ${}", next()));
    }
    if f.provider.is_some() {
        conditions.push(format!("o.provider = ${}", next()));
    }
    if f.status.is_some() {
        conditions.push(format!("t.status = ${}", next()));
    }
    if f.priority.is_some() {
        conditions.push(format!("o.priority = ${}", next()));
    }
    if f.test_code.is_some() {
        conditions.push(format!("t.test_code = ${}", next()));
    }
    let (limit, offset) = (next(), next());
    format!(
        "SELECT {TEST_COLUMNS}, {SPECIMEN_COLUMNS}, {ORDER_COLUMNS}, {PATIENT_COLUMNS}, {RESULT_COLUMNS_R} \
             FROM lab_order o \
             JOIN ordered_test t ON t.order_id = o.id \
             JOIN specimen s ON s.id = t.specimen_id \
             JOIN patient p ON p.id = o.patient_id \
             LEFT JOIN result r ON r.ordered_test_id = t.id \
                AND r.version = (SELECT MAX(r2.version) FROM result r2 WHERE r2.ordered_test_id = t.id) \
             WHERE {} \
             ORDER BY o.ordered_at DESC, o.id DESC, t.id \
             LIMIT ${limit} OFFSET ${offset}",
        conditions.join(" AND ")
    )
}

fn bind_order_search<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    f: &'q OrderSearchFilter,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    q = q.bind(f.from.as_micros()).bind(f.to.as_micros());
    if let Some(id) = f.patient_id {
        q = q.bind(id);
    }
    if let Some(p) = &f.provider {
        q = q.bind(p.as_str());
    }
    if let Some(s) = f.status {
        q = q.bind(s.code());
    }
    if let Some(p) = f.priority {
        q = q.bind(p.code());
    }
    if let Some(t) = &f.test_code {
        q = q.bind(t.as_str());
    }
    q.bind(if f.limit > 0 { f.limit } else { 50 }).bind(f.offset.max(0))
}

fn plan_lines(rows: &[AnyRow], column: &str) -> StoreResult<Vec<String>> {
    rows.iter().map(|r| Ok(r.try_get::<String, _>(column)?)).collect()
}
