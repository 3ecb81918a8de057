//! The test bench: a fresh laboratory per test, its staff, and short steps in lab words.
//!
//! Every test gets its own database (see `cuvette_testkit::TestDb`): SQLite by default, or,
//! `CUVETTE_TEST_DATABASE_URL` names a PostgreSQL server (for example
//! `postgres://postgres@127.0.0.1:5432/test`), a new database `cuvette_t_…` created on it.
//! The database is dropped when the test ends (set `CUVETTE_TEST_KEEP_DB=1` to keep it).
//! The clock stands still at [`START`] until a test moves it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use cuvette_app::records::{
    AuditEvent, AuditFilter, AuditVerification, PatientRow, ResultRow, SpecimenRow, WorkItem,
    WorklistFilter,
};
use cuvette_app::{
    Actor, AppError, AppResult, CriticalCall, EnteredResult, FixedClock, IdentityCheck, Lab,
    LabConfig, NewUser, PlaceOrder, PlacedOrder, RegisterPatient, Release, Saved,
};
use cuvette_domain::Role;
use cuvette_domain::workflow::TestStatus;
use cuvette_store::Store;
use cuvette_testkit::TestDb;
use jiff::{SignedDuration, Timestamp};
use sqlx::Connection;

/// When every test starts: a Tuesday morning in the lab.
pub const START: &str = "2026-11-24T08:00:00Z";
/// Every member of staff's password (and so their signature).
pub const PASSWORD: &str = "correct horse battery staple";
/// Why a catalog change is made, as a supervisor types it.
pub const REASON: &str = "intervals verified on 120 healthy donors (CLSI EP28)";
/// The ordering provider on every order.
pub const PROVIDER: &str = "Dr. A. Okafor, ED attending";

/// A laboratory for one test, with its clock, its database and its staff.
pub struct TestLab {
    lab: Lab,
    /// The store beneath the lab, for reading and damaging what no use case shows.
    store: Store,
    /// The clock; `lab.clock.advance(minutes(16))` moves the whole lab forward.
    pub clock: Arc<FixedClock>,
    staff: Mutex<BTreeMap<Role, Actor>>,
    // Last, so it is dropped after the lab's connections.
    db: TestDb,
}

/// A fresh laboratory at [`START`] with the default configuration and the bundled catalog.
pub async fn lab() -> TestLab {
    lab_with(LabConfig::default()).await
}

/// A fresh laboratory at [`START`] with this configuration.
pub async fn lab_with(config: LabConfig) -> TestLab {
    let db = TestDb::create().await;
    let clock =
        Arc::new(FixedClock::new(START.parse::<Timestamp>().expect("START is a timestamp")));
    let store = open_store(&db).await;
    let lab = Lab::open(store.clone().into(), clock.clone(), config).await.expect("the lab opens");
    TestLab { lab, store, clock, staff: Mutex::new(BTreeMap::new()), db }
}

impl Deref for TestLab {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

/// The store on a test's database (migrating it).
async fn open_store(db: &TestDb) -> Store {
    match db {
        TestDb::Sqlite { dir, .. } => Store::open_dir(dir).await.expect("the SQLite store opens"),
        TestDb::Postgres { url, .. } => Store::open(url).await.expect("the PostgreSQL store opens"),
    }
}

/// `n` minutes, for moving the clock.
pub fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

impl TestLab {
    /// Whether this lab runs on PostgreSQL.
    pub fn on_postgres(&self) -> bool {
        matches!(self.db, TestDb::Postgres { .. })
    }

    /// A second `Lab` on the same database and clock, as after a restart.
    pub async fn reopen(&self) -> Lab {
        Lab::open(open_store(&self.db).await.into(), self.clock.clone(), LabConfig::default())
            .await
            .expect("the lab reopens")
    }

    /// The store beneath the lab, for what the use cases do not show (rows as stored).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A raw connection to the lab's database, for what no use case may do (tampering).
    pub async fn raw_sql(&self, sql: &str) -> Result<u64, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(self.db.url()).await?;
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await;
        conn.close().await.ok();
        Ok(done?.rows_affected())
    }

    // ---- staff ----

    /// The member of staff on duty in `role`: a real user (username = role code, password
    /// [`PASSWORD`]) added by the system on first call.
    pub async fn staff(&self, role: Role) -> Actor {
        if let Some(actor) = self.staff.lock().unwrap().get(&role) {
            return actor.clone();
        }
        let actor =
            Actor { name: role.code().to_owned(), display_name: format!("{role} on duty"), role };
        let user = NewUser {
            username: actor.name.clone(),
            display_name: actor.display_name.clone(),
            role,
            password: PASSWORD.into(),
        };
        self.lab
            .add_user(&Actor::system(), user)
            .await
            .unwrap_or_else(|e| panic!("add the {role}: {e}"));
        self.staff.lock().unwrap().insert(role, actor.clone());
        actor
    }

    pub async fn phlebotomist(&self) -> Actor {
        self.staff(Role::Phlebotomist).await
    }
    pub async fn lab_assistant(&self) -> Actor {
        self.staff(Role::LabAssistant).await
    }
    pub async fn technician(&self) -> Actor {
        self.staff(Role::Technician).await
    }
    pub async fn technologist(&self) -> Actor {
        self.staff(Role::Technologist).await
    }
    pub async fn supervisor(&self) -> Actor {
        self.staff(Role::Supervisor).await
    }
    pub async fn pathologist(&self) -> Actor {
        self.staff(Role::Pathologist).await
    }
    pub async fn student(&self) -> Actor {
        self.staff(Role::Student).await
    }

    // ---- patients ----

    /// Registers a patient at the front desk.
    pub async fn register(
        &self,
        mrn: &str,
        family_name: &str,
        birth_date: &str,
        sex: &str,
    ) -> PatientRow {
        let clerk = self.phlebotomist().await;
        let form = RegisterPatient {
            mrn: mrn.into(),
            family_name: family_name.into(),
            given_name: "Sam".into(),
            birth_date: birth_date.into(),
            sex: sex.into(),
        };
        self.register_patient(&clerk, &form).await.unwrap_or_else(|e| panic!("register {mrn}: {e}"))
    }

    /// A man of 50 on the first day (CKD-EPI's worked example: creatinine 1.0 → eGFR 92).
    pub async fn adult_man(&self) -> PatientRow {
        self.register("M1001", "Okafor", "1976-06-01", "M").await
    }

    /// A woman of 56.
    pub async fn adult_woman(&self) -> PatientRow {
        self.register("F2002", "Lindqvist", "1970-03-01", "F").await
    }

    // ---- orders and specimens ----

    /// A routine order for `tests`, entered by the phlebotomist.
    pub async fn order(&self, patient: &PatientRow, tests: &[&str]) -> PlacedOrder {
        self.order_with(order_form(patient.id, tests)).await
    }

    /// A STAT order for `tests`.
    pub async fn order_stat(&self, patient: &PatientRow, tests: &[&str]) -> PlacedOrder {
        self.order_with(PlaceOrder { priority: "stat".into(), ..order_form(patient.id, tests) })
            .await
    }

    async fn order_with(&self, form: PlaceOrder) -> PlacedOrder {
        let phlebotomist = self.phlebotomist().await;
        self.place_order(&phlebotomist, &form)
            .await
            .unwrap_or_else(|e| panic!("order {:?}: {e}", form.tests))
    }

    /// The phlebotomist draws the specimen.
    pub async fn draw(&self, accession: &str) -> SpecimenRow {
        let phlebotomist = self.phlebotomist().await;
        self.collect(&phlebotomist, accession)
            .await
            .unwrap_or_else(|e| panic!("collect {accession}: {e}"))
    }

    /// The specimen is drawn, then received by the lab assistant who checks MRN and date of birth.
    pub async fn collect_and_receive(&self, accession: &str) -> SpecimenRow {
        self.draw(accession).await;
        let patient = self.patient_of(accession).await;
        let assistant = self.lab_assistant().await;
        self.receive(&assistant, accession, &identity(&patient))
            .await
            .unwrap_or_else(|e| panic!("receive {accession}: {e}"))
    }

    /// Orders `tests` and brings every specimen of the order into the lab.
    pub async fn received(&self, patient: &PatientRow, tests: &[&str]) -> PlacedOrder {
        let placed = self.order(patient, tests).await;
        for s in &placed.specimens {
            self.collect_and_receive(&s.accession).await;
        }
        placed
    }

    /// The patient a specimen was taken from.
    pub async fn patient_of(&self, accession: &str) -> PatientRow {
        let specimen = self.specimen(accession).await;
        self.store().patient_of_specimen(specimen.id).await.expect("a specimen has a patient")
    }

    /// A specimen as stored.
    pub async fn specimen(&self, accession: &str) -> SpecimenRow {
        self.store()
            .specimen_by_accession(accession)
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("no specimen {accession}"))
    }

    // ---- tests and results ----

    /// The patient's live (not cancelled) ordered test `code`, latest first, with its current result.
    pub async fn test(&self, patient: &PatientRow, code: &str) -> WorkItem {
        self.all_tests(patient)
            .await
            .into_iter()
            .filter(|i| i.test.test_code == code && i.test.status != TestStatus::Cancelled)
            .max_by_key(|i| i.test.id)
            .unwrap_or_else(|| panic!("{} has no live {code} test", patient.mrn))
    }

    /// Every ordered test of the patient, cancelled ones included.
    pub async fn all_tests(&self, patient: &PatientRow) -> Vec<WorkItem> {
        let filter =
            WorklistFilter { patient_id: Some(patient.id), limit: 10_000, ..Default::default() };
        self.store().work_items(&filter).await.expect("read the patient's tests")
    }

    /// Every result version of the patient's test `code`, oldest first.
    pub async fn versions(&self, patient: &PatientRow, code: &str) -> Vec<ResultRow> {
        let id = self.test(patient, code).await.test.id;
        self.store().results_of_tests(&[id]).await.expect("read results")
    }

    /// Types `text` for the patient's test `code` on a freshly opened form.
    pub async fn enter(
        &self,
        who: &Actor,
        patient: &PatientRow,
        code: &str,
        text: &str,
    ) -> AppResult<Vec<Saved>> {
        let item = self.test(patient, code).await;
        let entry = EnteredResult {
            ordered_test_id: item.test.id,
            row_version: item.test.row_version,
            text: text.into(),
        };
        self.enter_results(who, &[entry], None).await
    }

    /// Several results typed on one freshly opened grid, saved together.
    pub async fn enter_all(
        &self,
        who: &Actor,
        patient: &PatientRow,
        values: &[(&str, &str)],
    ) -> AppResult<Vec<Saved>> {
        let mut entries = Vec::new();
        for (code, text) in values {
            let item = self.test(patient, code).await;
            entries.push(EnteredResult {
                ordered_test_id: item.test.id,
                row_version: item.test.row_version,
                text: (*text).into(),
            });
        }
        self.enter_results(who, &entries, None).await
    }

    /// Releases the current result of the patient's test `code` as final, as just reviewed.
    pub async fn verify(&self, who: &Actor, patient: &PatientRow, code: &str) -> Release {
        self.verify_as(who, patient, code, TestStatus::Final).await
    }

    /// Releases as preliminary or final.
    pub async fn verify_as(
        &self,
        who: &Actor,
        patient: &PatientRow,
        code: &str,
        status: TestStatus,
    ) -> Release {
        let item = self.test(patient, code).await;
        let mut outcomes = self
            .release(who, &[(item.test.id, item.test.row_version)], status)
            .await
            .unwrap_or_else(|e| panic!("release {code}: {e}"));
        assert_eq!(outcomes.len(), 1);
        outcomes.remove(0)
    }

    /// Documents the call of the patient's critical `code` result, read back.
    pub async fn call_provider(
        &self,
        who: &Actor,
        patient: &PatientRow,
        code: &str,
        read_back: bool,
    ) -> i64 {
        let id = self.test(patient, code).await.test.id;
        let call = CriticalCall {
            called_person: "Dr. A. Okafor, ED attending".into(),
            read_back,
            notes: "ext 4471".into(),
        };
        self.document_critical_call(who, id, &call)
            .await
            .unwrap_or_else(|e| panic!("call {code}: {e}"))
    }

    // ---- audit ----

    /// How many events the audit chain holds; panics if it does not verify.
    pub async fn audit_count(&self) -> i64 {
        match self.store().verify_audit().await.expect("verify the audit chain") {
            AuditVerification::Intact { events } => events,
            broken => panic!("the audit chain is broken: {broken:?}"),
        }
    }

    /// The latest audit events (up to a page), oldest first.
    pub async fn audit_trail(&self, filter: AuditFilter) -> Vec<AuditEvent> {
        let mut events = self.store().audit_events(&filter).await.expect("read the audit log");
        events.reverse();
        events
    }

    /// The actions of the audit events about a patient, oldest first.
    pub async fn audit_actions_for(&self, patient: &PatientRow) -> Vec<String> {
        self.audit_trail(AuditFilter { patient_id: Some(patient.id), ..Default::default() })
            .await
            .into_iter()
            .map(|e| e.action.code().to_owned())
            .collect()
    }
}

/// The identifiers on a correct label: MRN and date of birth.
pub fn identity(patient: &PatientRow) -> IdentityCheck {
    IdentityCheck {
        mrn: Some(patient.mrn.clone()),
        birth_date: Some(patient.birth_date.clone()),
        family_name: None,
    }
}

/// A routine order form.
pub fn order_form(patient_id: i64, tests: &[&str]) -> PlaceOrder {
    PlaceOrder {
        patient_id,
        provider: PROVIDER.into(),
        priority: "routine".into(),
        tests: tests.iter().map(|t| (*t).to_owned()).collect(),
        clinical_note: String::new(),
        placer_number: None,
    }
}

/// Why a result was held; panics if it was released.
pub fn held_reason(outcome: &Release) -> &str {
    match outcome {
        Release::Held { reason, .. } => reason,
        Release::Released { .. } => panic!("expected the result to be held, but it was released"),
    }
}

/// Asserts the result was released.
#[track_caller]
pub fn assert_released(outcome: &Release) {
    if let Release::Held { reason, .. } = outcome {
        panic!("expected the result to be released, but it was held: {reason}");
    }
}

// ---- errors ----

#[track_caller]
fn failure<T: Debug>(r: AppResult<T>, expected: &str) -> AppError {
    match r {
        Ok(v) => panic!("expected {expected}, but it succeeded: {v:?}"),
        Err(e) => e,
    }
}

/// Asserts the input was refused with `field` named; returns that field's message.
#[track_caller]
pub fn invalid<T: Debug>(r: AppResult<T>, field: &str) -> String {
    match failure(r, &format!("an invalid {field}")) {
        AppError::Invalid(errors) => match errors.iter().find(|e| e.field == field) {
            Some(e) => e.message.clone(),
            None => panic!("expected {field} to be named invalid, but the fields were {errors:?}"),
        },
        other => panic!("expected an invalid {field}, got {other:?}"),
    }
}

/// The names of the invalid fields.
#[track_caller]
pub fn invalid_fields<T: Debug>(r: AppResult<T>) -> Vec<String> {
    match failure(r, "invalid input") {
        AppError::Invalid(errors) => errors.into_iter().map(|e| e.field).collect(),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

/// Asserts the role was not privileged; returns the message.
#[track_caller]
pub fn forbidden<T: Debug>(r: AppResult<T>) -> String {
    match failure(r, "Forbidden") {
        AppError::Forbidden(m) => m,
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

/// Asserts someone else changed it first; returns the message.
#[track_caller]
pub fn conflict<T: Debug>(r: AppResult<T>) -> String {
    match failure(r, "a Conflict") {
        AppError::Conflict(m) => m,
        other => panic!("expected a Conflict, got {other:?}"),
    }
}

/// Asserts a lab rule refused the step; returns the message.
#[track_caller]
pub fn refused<T: Debug>(r: AppResult<T>) -> String {
    match failure(r, "Refused") {
        AppError::Refused(m) => m,
        other => panic!("expected Refused, got {other:?}"),
    }
}

/// Asserts the thing asked for does not exist; returns the message.
#[track_caller]
pub fn not_found<T: Debug>(r: AppResult<T>) -> String {
    match failure(r, "NotFound") {
        AppError::NotFound(m) => m,
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// Asserts the caller is not (or no longer) signed in; returns the message.
#[track_caller]
pub fn unauthenticated<T: Debug>(r: AppResult<T>) -> String {
    match failure(r, "Unauthenticated") {
        AppError::Unauthenticated(m) => m,
        other => panic!("expected Unauthenticated, got {other:?}"),
    }
}
