//! The read models: the rows the app's use cases return, exactly as the store reads them.
//!
//! A row is a fine read model when it is what the bench reads: a patient, a specimen, a result
//! version, a QC run, a message in the log. These are re-exported here, and nothing else from
//! the store is: its handle, its transactions, the inputs of its writes (`New…`) and every query
//! stay inside the app, so the server and the CLI can only read what a use case hands them,
//! after the actor's privilege was checked. Where a row is not what a screen reads, the app
//! assembles its own view beside the use case instead (`SpecimenView`, `TestView`,
//! `PreviousResult`, `qc::QcLine`, `critical::PendingCall`, …).
//!
//! Filters that narrow a read (`WorklistFilter`, `AuditFilter`, `MessageFilter`) and the limits
//! the reads obey are here too, beside the rows they select.

/// Every time a row carries: microseconds since the epoch, UTC.
pub use cuvette_domain::time::Timestamp;

// Patients, orders and specimens.
pub use cuvette_store::{
    OrderRow, OrderedTestRow, PATIENT_SEARCH_LEN_MAX, PatientRow, SpecimenItem, SpecimenRow,
    WorkItem, WorklistFilter,
};

// Results, the files instruments sent as results, and the calls documented for critical ones.
pub use cuvette_store::{AttachmentRow, CriticalCallRow, CriticalRow, ResultRow};

// Quality control.
pub use cuvette_store::{
    CorrectiveActionRow, MaterialRow, MovingAverageRow, PatientResultRow, QcFacts, QcPoint,
    QcRunRow, RuleSetRow, TargetRow,
};

// Interfaces: instruments, their code maps, the message log and the outbox.
pub use cuvette_store::{
    CodeDisposition, Direction, InstrumentRow, MessageFilter, MessageOutcome, MessageRow,
    OutboxRow, OutboxStatus, Protocol, Quarantine, TestCodeRow, UnmappedResults,
};

// People, sessions and the audit log.
pub use cuvette_store::{
    AUDIT_PAGE_LEN, AuditEvent, AuditFilter, AuditVerification, SessionRow, UserRow,
};

// Staff records, authorisations and competency assessments (`Lab::staff`).
pub use cuvette_store::{AssessmentRow, AuthorisationRow, RotationRow, StaffRecordRow};

// The catalog's stored versions.
pub use cuvette_store::{CodedSynonymRow, StoredDefinition};
