//! The LIS as a library: `Lab` and its use cases.
//!
//! Every bench action — register, order, collect, receive, reject, enter, verify, correct,
//! document a critical call — is a method on [`Lab`] that checks the actor's privilege
//! (`cuvette_domain::role`), gathers what the rules need from the store, lets the domain
//! decide, and writes the change with its audit event in one transaction. The server (HTML and
//! JSON) and the CLI call these methods and nothing below them; this is the main test
//! boundary. The store is private to this crate: what the faces read comes back as the read
//! models in [`records`] and the views beside the use cases, each checked against the actor's
//! privilege before anything is read.
//!
//! The public surface, by area (each a set of methods on [`Lab`] unless a module is named):
//!
//! - **Opening**: [`Database`] (`open`, `open_dir`, `verify_audit`, `backup_to`), then
//!   [`Lab::open`]; [`Lab::check_reachable`], [`Lab::writes_failing`] and `outbox_backlog` for readiness
//!   probes, [`Lab::close`].
//! - **People and access** (`auth.rs`): `add_user`, `update_user`, `users`, `login`,
//!   `login_from`, `sign_in_delays`, `clear_sign_in_delay`, `session`,
//!   `peek_session`, `logout`, `check_signature`, `create_api_key`, `api_key_actor`,
//!   `privileges`, `save_privileges`, `require`.
//! - **Staff qualifications** (`staff.rs`): `staff`, `save_staff_record`, `authorise`,
//!   `record_competency`, `qualification_policy`, `set_qualification_policy`; result
//!   entry and release pass through the gate (`cuvette_domain::staff::may_perform`).
//! - **Patients and orders** (`patients.rs`, `orders.rs`): `register_patient`,
//!   `search_patients`, `patient`, `place_order`, `collect`, `receive`, `reject`.
//! - **Results** (`results.rs`): `enter_results` (a correction is an entry with its signed
//!   [`Correction`]), `release`, `document_critical_call`.
//! - **Read models** (`queries.rs`): `specimen_view`, `specimen_view_of_test`,
//!   `previous_results`, `critical_calls_of_tests`, `worklist`, `collection_list`,
//!   `review_queue`, `cumulative_report`, `patient_orders`, `audit_events`, `verify_audit`,
//!   `open_counts`; the rows they return are in [`records`].
//! - **Search** ([`search`]): `find` (one field: accession or a tube's placer id → the
//!   specimen, MRN → the patient, else a name), `search_orders` (by patient, provider,
//!   period, status, priority and test, paged, each filter on its index), both audited.
//! - **FHIR read models** ([`fhir`]): `released_results` (Observations), `ordered_tests`
//!   (ServiceRequests), `specimen_page`, `lab_reports` (DiagnosticReports), `patient_page`,
//!   `patients_by_id` — a page at a time by key, each read audited; only released results.
//! - **Catalog** ([`catalog`]): `catalog`, `save_definition` (with a required reason),
//!   `definition_history`, `definition_diff`, `export_catalog`, `import_catalog`; the synonyms
//!   of coded results (`synonyms.rs`): `coded_synonyms`, `add_coded_synonym`,
//!   `remove_coded_synonym`.
//! - **Quality control** ([`qc`]): materials, targets, Westgard rules, runs and their
//!   verdicts, corrective actions, lockouts, Levey-Jennings data, moving averages
//!   (`qc_materials`, `qc_targets`, `moving_average_rules`, `qc_overview`, `lockout`,
//!   `levey_jennings`, `record_qc`, …).
//! - **Autoverification** ([`autoverify`]): rule sets, dry runs, specimen conditions.
//! - **Critical results** ([`critical`]): pending calls, escalation, compliance.
//! - **Interfaces** ([`interop`]): instruments and code maps, `ingest`, `ingest_orders`, the
//!   message log and quarantine, the outbox; HL7 and ASTM decoding and answers.
//! - **Audit checkpoints** ([`checkpoint`]): the chain's head signed into a file outside the
//!   database (`write_checkpoint`, `keep_checkpoints`, `Database::verify_audit_anchored`).
//! - **Time**: [`Clock`], `now`, `format_time`.

mod audit;
mod auth;
pub mod autoverify;
pub mod catalog;
pub mod checkpoint;
pub mod clock;
pub mod critical;
mod error;
pub mod fhir;
pub mod interop;
mod orders;
mod patients;
pub mod qc;
mod queries;
pub mod records;
mod results;
pub mod search;
mod staff;
pub mod students;
mod synonyms;

use std::sync::{Arc, RwLock};

use cuvette_domain::audit::AuditAction;
use cuvette_domain::role::{Privileges, ROLES};
use cuvette_domain::{Action, Catalog, Role};
use cuvette_store::{AuditVerification, Store};
use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use auth::{API_KEY_PREFIX, LoginOutcome, NewUser, SignInDelay, SignInKey};
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{AppError, AppResult, FieldError};
pub use orders::{IdentityCheck, PlaceOrder, PlacedOrder};
pub use patients::{PatientQuery, RegisterPatient};
pub use queries::{
    CumulativeReport, DueDraw, PREVIOUS_SCAN_MAX, PreviousResult, ReportRow, ResultFile,
    SpecimenView, TestView,
};
pub use results::{Correction, CriticalCall, EnteredResult, Release, Saved};
pub use staff::{AssessmentInput, AuthoriseInput, ElementInput, PolicyInput, StaffView};
pub use synonyms::SynonymForm;

/// Settings a lab chooses.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// The lab's time zone: times are stored in UTC and shown in this zone, and ages at
    /// collection are counted on its calendar.
    pub time_zone: TimeZone,
    /// A session unused this long is over (HIPAA automatic logoff).
    pub session_idle_minutes: i64,
    /// A session is over this long after sign-in, however active.
    pub session_max_hours: i64,
    /// Failed sign-ins of one account allowed before each further one delays the next
    /// attempt on it (1 s, 2 s, 4 s … up to `throttle_delay_max_seconds`).
    pub throttle_account_free_failures: u32,
    /// The same for one source address, higher because a ward's shared workstation or a
    /// proxy carries many people's typos.
    pub throttle_address_free_failures: u32,
    /// The longest delay between attempts: short enough that no one is kept out of their
    /// work, long enough that guessing takes years.
    pub throttle_delay_max_seconds: i64,
    /// The lab's name on reports.
    pub lab_name: String,
    /// Where released results are sent: the EHR's MLLP address as configured (`cuvette serve
    /// --ehr HOST:PORT`). Each release then queues an ORU^R01 in the outbox, in the release's
    /// own transaction, marked with this destination. `None` (the default) queues nothing.
    pub ehr_destination: Option<String>,
    /// Minutes within which a critical result must be called with read-back before it is
    /// escalated (the lab's policy; 30 by default).
    pub critical_call_minutes: i64,
    /// The longest result text taken from an instrument, in characters: a text report (HL7
    /// TX, FT, a long ST) is stored whole up to it, and a longer one is refused with its
    /// message, never cut (64 Ki characters by default; the bench's limit is the domain's
    /// `RESULT_TEXT_LEN_MAX`).
    pub instrument_text_chars_max: usize,
    /// The largest file taken from an instrument as a result's attachment (HL7 ED: a PDF
    /// report, a histogram image), in bytes once decoded: a larger one is refused with its
    /// message (AE, ERR at OBX-5), which waits in the quarantine (4 MiB by default).
    pub instrument_attachment_bytes_max: usize,
}

/// The default of [`LabConfig::instrument_attachment_bytes_max`]: a PDF report of a few
/// pages or a histogram bitmap is well under it, and a message carrying it (Base64 adds a
/// third) stays far below the MLLP frame limit.
pub const INSTRUMENT_ATTACHMENT_BYTES_MAX: usize = 4 * 1024 * 1024;

/// The default of [`LabConfig::instrument_text_chars_max`].
pub const INSTRUMENT_TEXT_CHARS_MAX: usize = 64 * 1024;

impl Default for LabConfig {
    fn default() -> LabConfig {
        LabConfig {
            time_zone: TimeZone::UTC,
            session_idle_minutes: 15,
            session_max_hours: 12,
            throttle_account_free_failures: 5,
            throttle_address_free_failures: 20,
            throttle_delay_max_seconds: 30,
            lab_name: "Cuvette demo laboratory".into(),
            ehr_destination: None,
            critical_call_minutes: 30,
            instrument_text_chars_max: INSTRUMENT_TEXT_CHARS_MAX,
            instrument_attachment_bytes_max: INSTRUMENT_ATTACHMENT_BYTES_MAX,
        }
    }
}

/// Who is acting: a signed-in user or an API key, with the role it acts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Username, or `apikey:NAME`.
    pub name: String,
    /// Name shown on screens and reports.
    pub display_name: String,
    /// The role.
    pub role: Role,
}

impl Actor {
    /// The system itself (seeding, calculations, migrations).
    pub fn system() -> Actor {
        Actor { name: "system".into(), display_name: "Cuvette".into(), role: Role::Pathologist }
    }
}

/// The catalog as the lab currently defines it, with each definition's version and the
/// synonyms of its coded results.
#[derive(Debug, Clone, Default)]
pub struct LabCatalog {
    /// The definitions.
    pub catalog: Catalog,
    /// The stored version of each definition.
    pub versions: std::collections::BTreeMap<String, i64>,
    /// The synonyms in force, as results are read through them.
    pub synonyms: cuvette_domain::synonyms::Synonyms,
    /// The same synonyms as stored, by test and text.
    pub synonym_rows: Vec<records::CodedSynonymRow>,
}

/// The lab's database, opened and its schema brought up to date, before a [`Lab`] is opened
/// on it. What can be done without a lab — checking the audit chain, taking a backup — is done
/// here, by whoever holds the database (the operator at the command line).
#[derive(Clone, Debug)]
pub struct Database {
    store: Store,
}

impl Database {
    /// Opens a database by URL, `sqlite://PATH?mode=rwc` or `postgres://…`, migrating it.
    pub async fn open(url: &str) -> AppResult<Database> {
        Ok(Database { store: Store::open(url).await? })
    }

    /// Opens (creating it if need be) the SQLite database in a directory, migrating it.
    pub async fn open_dir(dir: &std::path::Path) -> AppResult<Database> {
        Ok(Database { store: Store::open_dir(dir).await? })
    }

    /// Recomputes the audit chain from its first event.
    pub async fn verify_audit(&self) -> AppResult<AuditVerification> {
        Ok(self.store.verify_audit().await?)
    }

    /// Copies a SQLite database into a new file, consistent as of one moment; PostgreSQL is
    /// backed up with its own tools, and this says so.
    pub async fn backup_to(&self, path: &std::path::Path) -> AppResult<()> {
        Ok(self.store.backup_to(path).await?)
    }
}

/// The app's own integration tests keep a handle on the store beneath a lab, to read and
/// damage rows directly; nothing outside this crate depends on `cuvette-store`.
impl From<Store> for Database {
    fn from(store: Store) -> Database {
        Database { store }
    }
}

/// The laboratory: store, clock, configuration and the current catalog.
pub struct Lab {
    store: Store,
    clock: Arc<dyn Clock>,
    config: LabConfig,
    catalog: RwLock<Arc<LabCatalog>>,
    privileges: RwLock<Arc<Privileges>>,
    /// Inbound result messages waiting to be committed together.
    group: interop::commit::GroupCommit,
    /// Autoverification rules and moving averages in force.
    rules: RwLock<Arc<autoverify::RuleCache>>,
    /// QC facts read last (see `Lab::qc_standings`).
    qc_facts: qc::QcFactsCache,
    /// Failed sign-ins per account and per address (in memory: a restart forgets them).
    sign_ins: std::sync::Mutex<auth::SignInThrottle>,
}

impl Lab {
    /// Opens the lab on a database, seeding the bundled catalog on first start.
    pub async fn open(
        database: Database,
        clock: Arc<dyn Clock>,
        config: LabConfig,
    ) -> AppResult<Lab> {
        let lab = Lab {
            store: database.store,
            clock,
            sign_ins: auth::SignInThrottle::new(&config),
            config,
            catalog: RwLock::new(Arc::default()),
            privileges: RwLock::new(Arc::new(Privileges::seeded())),
            group: Default::default(),
            rules: RwLock::new(Arc::default()),
            qc_facts: Default::default(),
        };
        lab.seed_catalog().await?;
        lab.reload_catalog().await?;
        lab.seed_synonyms().await?;
        lab.seed_privileges().await?;
        lab.reload_rules().await?;
        Ok(lab)
    }

    /// Whether the database answers (the server's readiness probe; no data is read).
    pub async fn check_reachable(&self) -> AppResult<()> {
        Ok(self.store.verify_reachable().await?)
    }

    /// Whether the last write failed to begin or commit and none has committed since: the
    /// database answers reads but takes no writes (a full disk, a lock held elsewhere). The
    /// readiness probe reports it until a write succeeds.
    pub fn writes_failing(&self) -> bool {
        self.store.writes_failing()
    }

    /// Closes the database's connections, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// The configuration.
    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    /// Now, from the injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Now, as the time the store records.
    pub fn now_at(&self) -> cuvette_domain::time::Timestamp {
        self.clock.now().into()
    }

    /// The current catalog.
    pub fn catalog(&self) -> Arc<LabCatalog> {
        // A poisoned lock means a panic while swapping an Arc, which cannot leave it torn.
        self.catalog.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Refuses unless the actor's role is privileged for `action` in this lab's table.
    pub fn require(&self, actor: &Actor, action: Action) -> AppResult<()> {
        if self.privileges().may(actor.role, action) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!("your role ({}) may not {action}", actor.role)))
        }
    }

    /// The lab's privilege table.
    pub fn privileges(&self) -> Arc<Privileges> {
        self.privileges.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn seed_privileges(&self) -> AppResult<()> {
        if self.store.privileges().await?.is_empty() {
            let seeded = Privileges::seeded();
            let pairs: Vec<(Role, Action)> = seeded.pairs().collect();
            let mut tx = self.store.begin().await?;
            tx.replace_privileges(&pairs).await?;
            tx.commit().await?;
        }
        self.reload_privileges().await
    }

    async fn reload_privileges(&self) -> AppResult<()> {
        let pairs = self.store.privileges().await?;
        let table = Privileges::from_pairs(pairs);
        *self.privileges.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
        Ok(())
    }

    /// Replaces the privilege table (those who manage users); refused edits say why.
    pub async fn save_privileges(
        &self,
        actor: &Actor,
        granted: &[(Role, Action)],
    ) -> AppResult<()> {
        self.require(actor, Action::ManageUsers)?;
        let before = self.privileges();
        let mut table = Privileges::from_pairs(std::iter::empty());
        for role in ROLES {
            for action in cuvette_domain::role::ACTIONS {
                let allowed = granted.contains(&(role, action));
                // The director's row cannot be withdrawn; unticked boxes there are ignored.
                if let Err(refusal) = table.set(role, action, allowed)
                    && (allowed || role != Role::Pathologist)
                {
                    return Err(AppError::invalid(
                        &format!("{}.{}", role.code(), action.code()),
                        refusal.to_string(),
                    ));
                }
            }
        }
        let codes = |t: &Privileges| -> Vec<(&str, &str)> {
            t.pairs().map(|(r, a)| (r.code(), a.code())).collect()
        };
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        tx.replace_privileges(&table.pairs().collect::<Vec<_>>()).await?;
        tx.audit(cuvette_store::NewAuditEvent {
            at: now,
            actor: &actor.name,
            action: AuditAction::PrivilegesEdit,
            entity: "privileges",
            entity_id: "lab".into(),
            patient_id: None,
            before: audit::state(&codes(&before)),
            after: audit::state(&codes(&table)),
        })
        .await?;
        tx.commit().await?;
        self.reload_privileges().await
    }

    async fn seed_catalog(&self) -> AppResult<()> {
        if !self.store.current_definitions().await?.is_empty() {
            return Ok(());
        }
        let bundled = Catalog::bundled();
        let now = self.now_at();
        let mut tx = self.store.begin().await?;
        for test in bundled.tests() {
            tx.save_definition(test, 0, "system", "the catalog bundled with Cuvette", now).await?;
        }
        for panel in bundled.panels() {
            tx.save_panel(panel).await?;
        }
        tx.audit(cuvette_store::NewAuditEvent {
            at: now,
            actor: "system",
            action: AuditAction::CatalogSeed,
            entity: "catalog",
            entity_id: "bundled".into(),
            patient_id: None,
            before: None,
            after: audit::state(&audit::CatalogSeeded {
                tests: bundled.tests().count(),
                panels: bundled.panels().count(),
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn reload_catalog(&self) -> AppResult<()> {
        let mut catalog = Catalog::default();
        let mut versions = std::collections::BTreeMap::new();
        for stored in self.store.current_definitions().await? {
            versions.insert(stored.definition.code.clone(), stored.version);
            catalog.insert(stored.definition);
        }
        for panel in self.store.panels().await? {
            catalog.insert_panel(panel);
        }
        let (synonyms, synonym_rows) = synonyms::in_force(&self.store.coded_synonyms().await?);
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(LabCatalog { catalog, versions, synonyms, synonym_rows });
        Ok(())
    }

    /// Formats a stored time in the lab's zone as the bench reads it: `24-Nov-2026 08:05`.
    pub fn format_time(&self, at: cuvette_domain::time::Timestamp) -> String {
        match at.to_jiff() {
            Some(ts) => ts
                .to_zoned_datetime(self.config.time_zone.clone())
                .strftime("%d-%b-%Y %H:%M")
                .to_string(),
            None => String::new(),
        }
    }
}
