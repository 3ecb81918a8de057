//! What the audit log records: every kind of event as one enum, each with the code stored in
//! the log and the words the audit view shows.
//!
//! The codes are part of the hash chain and of every database already written, so a code is
//! never changed or reused; a new kind of event is a new variant with a new code.

use std::fmt;

use serde::{Serialize, Serializer};

/// A kind of audited event. Deliberately not `#[non_exhaustive]`: the audit view matches on
/// every action, so a new one does not compile until the view has decided how to show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditAction {
    /// Signed in (`login`).
    Login,
    /// Sign-in failed (`login.fail`).
    LoginFail,
    /// Account locked after failed sign-ins (`login.lockout`).
    LoginLockout,
    /// Sign-in refused: account inactive (`login.refused_inactive`).
    LoginRefusedInactive,
    /// Sign-in refused: account locked (`login.refused_locked`).
    LoginRefusedLocked,
    /// Sign-ins of an account or from an address slowed down after failed attempts
    /// (`login.throttle`).
    LoginThrottle,
    /// A sign-in delay cleared by a supervisor (`login.throttle_clear`).
    LoginThrottleClear,
    /// Signed out for inactivity (`session.timeout`).
    SessionTimeout,
    /// Signed out (`logout`).
    Logout,
    /// Electronic signature failed (`signature.fail`).
    SignatureFail,
    /// API key created (`apikey.create`).
    ApiKeyCreate,
    /// User added (`user.add`).
    UserAdd,
    /// User changed (`user.edit`).
    UserEdit,
    /// Privilege table changed (`privileges.edit`).
    PrivilegesEdit,
    /// Test catalog loaded (`catalog.seed`).
    CatalogSeed,
    /// Test definition changed (`catalog.edit`).
    CatalogEdit,
    /// Synonym of a coded result added (`catalog.synonym_add`).
    CatalogSynonymAdd,
    /// Synonym of a coded result removed (`catalog.synonym_remove`).
    CatalogSynonymRemove,
    /// A catalog file imported: the tests and panels it changed, with the reason
    /// (`catalog.import`).
    CatalogImport,
    /// Patient registered (`patient.register`).
    PatientRegister,
    /// Patient results viewed (`patient.view_results`).
    PatientViewResults,
    /// Results viewed in a list (`results.view_list`).
    ResultsViewList,
    /// Order placed (`order.place`).
    OrderPlace,
    /// Specimen viewed (`specimen.view`).
    SpecimenView,
    /// A search by accession, MRN or name, or of orders, and what it opened (`search`).
    Search,
    /// Specimen collected (`specimen.collect`).
    SpecimenCollect,
    /// Specimen received (`specimen.receive`).
    SpecimenReceive,
    /// Specimen receipt refused (`specimen.receive_refused`).
    SpecimenReceiveRefused,
    /// Specimen rejected (`specimen.reject`).
    SpecimenReject,
    /// Recollection requested (`specimen.recollect`).
    SpecimenRecollect,
    /// Specimen condition recorded (`specimen.condition`).
    SpecimenCondition,
    /// Result entered (`result.enter`).
    ResultEnter,
    /// Result corrected (`result.correct`).
    ResultCorrect,
    /// Result released (`result.release`).
    ResultRelease,
    /// Result co-signed for a student and released (`result.cosign_release`).
    ResultCosignRelease,
    /// Result released by autoverification (`result.autoverify_release`).
    ResultAutoverifyRelease,
    /// Result message queued for the EHR (`result.send`).
    ResultSend,
    /// A file an instrument sent as a result viewed or downloaded
    /// (`result.attachment_view`).
    ResultAttachmentView,
    /// Critical value called with read-back (`critical.call`).
    CriticalCall,
    /// Critical value call attempted (`critical.attempt`).
    CriticalAttempt,
    /// Critical value call escalated (`critical.escalate`).
    CriticalEscalate,
    /// Result message retried (`outbox.retry`).
    OutboxRetry,
    /// Result message given up (`outbox.give_up`).
    OutboxGiveUp,
    /// Instrument added (`instrument.add`).
    InstrumentAdd,
    /// Instrument renamed, or its sender or protocol changed (`instrument.edit`).
    InstrumentEdit,
    /// Instrument code mapped (`instrument.map_code`).
    InstrumentMapCode,
    /// Instrument QC sample pattern set (`instrument.qc_pattern`).
    InstrumentQcPattern,
    /// The ASTM component an instrument puts the specimen id in
    /// (`instrument.specimen_id_component`).
    InstrumentSpecimenIdComponent,
    /// The character set an ASTM instrument writes (`instrument.charset`).
    InstrumentCharset,
    /// Instrument code mapped to be ignored (`instrument.ignore_code`).
    InstrumentIgnoreCode,
    /// Instrument code mapped as an instrument flag (`instrument.map_flag`).
    InstrumentMapFlag,
    /// What becomes of an instrument's message some of whose results cannot be taken
    /// (`instrument.unmapped_results`).
    InstrumentUnmappedResults,
    /// The addresses an instrument's messages are taken from (`instrument.allowed_peers`).
    InstrumentAllowedPeers,
    /// Quarantined message dismissed (`quarantine.dismiss`).
    QuarantineDismiss,
    /// Quarantined message replayed (`quarantine.replay`).
    QuarantineReplay,
    /// Autoverification rules saved (`autoverify.save`).
    AutoverifySave,
    /// Autoverification rules approved (`autoverify.approve`).
    AutoverifyApprove,
    /// Autoverification suspended (`autoverify.suspend`).
    AutoverifySuspend,
    /// Control material added (`qc.material.add`).
    QcMaterialAdd,
    /// Control target set (`qc.target.set`).
    QcTargetSet,
    /// Control target adopted from runs in this lab (`qc.target.adopt_lab`).
    QcTargetAdoptLab,
    /// Westgard rules set (`qc.rules.set`).
    QcRulesSet,
    /// QC run recorded (`qc.run`).
    QcRun,
    /// QC run rejected (`qc.run.reject`).
    QcRunReject,
    /// Corrective action documented (`qc.corrective_action`).
    QcCorrectiveAction,
    /// Moving average set up (`qc.moving_average.set`).
    QcMovingAverageSet,
    /// Staff record saved (`staff.record`).
    StaffRecordSave,
    /// Person authorised for a discipline (`staff.authorise`).
    StaffAuthorise,
    /// Competency assessment recorded (`staff.competency`).
    StaffCompetency,
    /// Qualification settings changed (`staff.policy`).
    StaffPolicy,
    /// Result entry or verification refused for the person's qualifications
    /// (`staff.privilege_refused`).
    StaffPrivilegeRefused,
    /// A student's rotation scheduled (`staff.rotation`).
    StaffRotation,
    /// A student's rotation signed off by the supervising technologist
    /// (`staff.rotation_sign_off`).
    StaffRotationSignOff,
}

impl AuditAction {
    /// Every action, in the order the audit view lists them.
    pub const ALL: [AuditAction; 73] = [
        AuditAction::Login,
        AuditAction::LoginFail,
        AuditAction::LoginLockout,
        AuditAction::LoginRefusedInactive,
        AuditAction::LoginRefusedLocked,
        AuditAction::LoginThrottle,
        AuditAction::LoginThrottleClear,
        AuditAction::SessionTimeout,
        AuditAction::Logout,
        AuditAction::SignatureFail,
        AuditAction::ApiKeyCreate,
        AuditAction::UserAdd,
        AuditAction::UserEdit,
        AuditAction::PrivilegesEdit,
        AuditAction::CatalogSeed,
        AuditAction::CatalogEdit,
        AuditAction::CatalogSynonymAdd,
        AuditAction::CatalogSynonymRemove,
        AuditAction::CatalogImport,
        AuditAction::PatientRegister,
        AuditAction::PatientViewResults,
        AuditAction::ResultsViewList,
        AuditAction::OrderPlace,
        AuditAction::SpecimenView,
        AuditAction::Search,
        AuditAction::SpecimenCollect,
        AuditAction::SpecimenReceive,
        AuditAction::SpecimenReceiveRefused,
        AuditAction::SpecimenReject,
        AuditAction::SpecimenRecollect,
        AuditAction::SpecimenCondition,
        AuditAction::ResultEnter,
        AuditAction::ResultCorrect,
        AuditAction::ResultRelease,
        AuditAction::ResultCosignRelease,
        AuditAction::ResultAutoverifyRelease,
        AuditAction::ResultSend,
        AuditAction::ResultAttachmentView,
        AuditAction::CriticalCall,
        AuditAction::CriticalAttempt,
        AuditAction::CriticalEscalate,
        AuditAction::OutboxRetry,
        AuditAction::OutboxGiveUp,
        AuditAction::InstrumentAdd,
        AuditAction::InstrumentEdit,
        AuditAction::InstrumentMapCode,
        AuditAction::InstrumentQcPattern,
        AuditAction::InstrumentSpecimenIdComponent,
        AuditAction::InstrumentCharset,
        AuditAction::InstrumentIgnoreCode,
        AuditAction::InstrumentMapFlag,
        AuditAction::InstrumentUnmappedResults,
        AuditAction::InstrumentAllowedPeers,
        AuditAction::QuarantineDismiss,
        AuditAction::QuarantineReplay,
        AuditAction::AutoverifySave,
        AuditAction::AutoverifyApprove,
        AuditAction::AutoverifySuspend,
        AuditAction::QcMaterialAdd,
        AuditAction::QcTargetSet,
        AuditAction::QcTargetAdoptLab,
        AuditAction::QcRulesSet,
        AuditAction::QcRun,
        AuditAction::QcRunReject,
        AuditAction::QcCorrectiveAction,
        AuditAction::QcMovingAverageSet,
        AuditAction::StaffRecordSave,
        AuditAction::StaffAuthorise,
        AuditAction::StaffCompetency,
        AuditAction::StaffPolicy,
        AuditAction::StaffPrivilegeRefused,
        AuditAction::StaffRotation,
        AuditAction::StaffRotationSignOff,
    ];

    /// The stored code (`result.release`); the hash chain covers it, so it never changes.
    pub fn code(self) -> &'static str {
        match self {
            AuditAction::Login => "login",
            AuditAction::LoginFail => "login.fail",
            AuditAction::LoginLockout => "login.lockout",
            AuditAction::LoginRefusedInactive => "login.refused_inactive",
            AuditAction::LoginRefusedLocked => "login.refused_locked",
            AuditAction::LoginThrottle => "login.throttle",
            AuditAction::LoginThrottleClear => "login.throttle_clear",
            AuditAction::SessionTimeout => "session.timeout",
            AuditAction::Logout => "logout",
            AuditAction::SignatureFail => "signature.fail",
            AuditAction::ApiKeyCreate => "apikey.create",
            AuditAction::UserAdd => "user.add",
            AuditAction::UserEdit => "user.edit",
            AuditAction::PrivilegesEdit => "privileges.edit",
            AuditAction::CatalogSeed => "catalog.seed",
            AuditAction::CatalogEdit => "catalog.edit",
            AuditAction::CatalogSynonymAdd => "catalog.synonym_add",
            AuditAction::CatalogSynonymRemove => "catalog.synonym_remove",
            AuditAction::CatalogImport => "catalog.import",
            AuditAction::PatientRegister => "patient.register",
            AuditAction::PatientViewResults => "patient.view_results",
            AuditAction::ResultsViewList => "results.view_list",
            AuditAction::OrderPlace => "order.place",
            AuditAction::SpecimenView => "specimen.view",
            AuditAction::Search => "search",
            AuditAction::SpecimenCollect => "specimen.collect",
            AuditAction::SpecimenReceive => "specimen.receive",
            AuditAction::SpecimenReceiveRefused => "specimen.receive_refused",
            AuditAction::SpecimenReject => "specimen.reject",
            AuditAction::SpecimenRecollect => "specimen.recollect",
            AuditAction::SpecimenCondition => "specimen.condition",
            AuditAction::ResultEnter => "result.enter",
            AuditAction::ResultCorrect => "result.correct",
            AuditAction::ResultRelease => "result.release",
            AuditAction::ResultCosignRelease => "result.cosign_release",
            AuditAction::ResultAutoverifyRelease => "result.autoverify_release",
            AuditAction::ResultSend => "result.send",
            AuditAction::ResultAttachmentView => "result.attachment_view",
            AuditAction::CriticalCall => "critical.call",
            AuditAction::CriticalAttempt => "critical.attempt",
            AuditAction::CriticalEscalate => "critical.escalate",
            AuditAction::OutboxRetry => "outbox.retry",
            AuditAction::OutboxGiveUp => "outbox.give_up",
            AuditAction::InstrumentAdd => "instrument.add",
            AuditAction::InstrumentEdit => "instrument.edit",
            AuditAction::InstrumentMapCode => "instrument.map_code",
            AuditAction::InstrumentQcPattern => "instrument.qc_pattern",
            AuditAction::InstrumentSpecimenIdComponent => "instrument.specimen_id_component",
            AuditAction::InstrumentCharset => "instrument.charset",
            AuditAction::InstrumentIgnoreCode => "instrument.ignore_code",
            AuditAction::InstrumentMapFlag => "instrument.map_flag",
            AuditAction::InstrumentUnmappedResults => "instrument.unmapped_results",
            AuditAction::InstrumentAllowedPeers => "instrument.allowed_peers",
            AuditAction::QuarantineDismiss => "quarantine.dismiss",
            AuditAction::QuarantineReplay => "quarantine.replay",
            AuditAction::AutoverifySave => "autoverify.save",
            AuditAction::AutoverifyApprove => "autoverify.approve",
            AuditAction::AutoverifySuspend => "autoverify.suspend",
            AuditAction::QcMaterialAdd => "qc.material.add",
            AuditAction::QcTargetSet => "qc.target.set",
            AuditAction::QcTargetAdoptLab => "qc.target.adopt_lab",
            AuditAction::QcRulesSet => "qc.rules.set",
            AuditAction::QcRun => "qc.run",
            AuditAction::QcRunReject => "qc.run.reject",
            AuditAction::QcCorrectiveAction => "qc.corrective_action",
            AuditAction::QcMovingAverageSet => "qc.moving_average.set",
            AuditAction::StaffRecordSave => "staff.record",
            AuditAction::StaffAuthorise => "staff.authorise",
            AuditAction::StaffCompetency => "staff.competency",
            AuditAction::StaffPolicy => "staff.policy",
            AuditAction::StaffPrivilegeRefused => "staff.privilege_refused",
            AuditAction::StaffRotation => "staff.rotation",
            AuditAction::StaffRotationSignOff => "staff.rotation_sign_off",
        }
    }

    /// What the audit view and export call it.
    pub fn label(self) -> &'static str {
        match self {
            AuditAction::Login => "Signed in",
            AuditAction::LoginFail => "Sign-in failed",
            AuditAction::LoginLockout => "Account locked after failed sign-ins",
            AuditAction::LoginRefusedInactive => "Sign-in refused: account inactive",
            AuditAction::LoginRefusedLocked => "Sign-in refused: account locked",
            AuditAction::LoginThrottle => "Sign-ins slowed after failed attempts",
            AuditAction::LoginThrottleClear => "Sign-in delay cleared",
            AuditAction::SessionTimeout => "Signed out for inactivity",
            AuditAction::Logout => "Signed out",
            AuditAction::SignatureFail => "Electronic signature failed",
            AuditAction::ApiKeyCreate => "API key created",
            AuditAction::UserAdd => "User added",
            AuditAction::UserEdit => "User changed",
            AuditAction::PrivilegesEdit => "Privilege table changed",
            AuditAction::CatalogSeed => "Test catalog loaded",
            AuditAction::CatalogEdit => "Test definition changed",
            AuditAction::CatalogSynonymAdd => "Synonym of a coded result added",
            AuditAction::CatalogSynonymRemove => "Synonym of a coded result removed",
            AuditAction::CatalogImport => "Catalog file imported",
            AuditAction::PatientRegister => "Patient registered",
            AuditAction::PatientViewResults => "Patient results viewed",
            AuditAction::ResultsViewList => "Results viewed in a list",
            AuditAction::OrderPlace => "Order placed",
            AuditAction::SpecimenView => "Specimen viewed",
            AuditAction::Search => "Searched",
            AuditAction::SpecimenCollect => "Specimen collected",
            AuditAction::SpecimenReceive => "Specimen received",
            AuditAction::SpecimenReceiveRefused => "Specimen receipt refused",
            AuditAction::SpecimenReject => "Specimen rejected",
            AuditAction::SpecimenRecollect => "Recollection requested",
            AuditAction::SpecimenCondition => "Specimen condition recorded",
            AuditAction::ResultEnter => "Result entered",
            AuditAction::ResultCorrect => "Result corrected",
            AuditAction::ResultRelease => "Result released",
            AuditAction::ResultCosignRelease => "Result co-signed for a student and released",
            AuditAction::ResultAutoverifyRelease => "Result released by autoverification",
            AuditAction::ResultSend => "Result message queued for the EHR",
            AuditAction::ResultAttachmentView => "Result attachment viewed",
            AuditAction::CriticalCall => "Critical value called with read-back",
            AuditAction::CriticalAttempt => "Critical value call attempted",
            AuditAction::CriticalEscalate => "Critical value call escalated",
            AuditAction::OutboxRetry => "Result message retried",
            AuditAction::OutboxGiveUp => "Result message given up",
            AuditAction::InstrumentAdd => "Instrument added",
            AuditAction::InstrumentEdit => "Instrument renamed or its sender changed",
            AuditAction::InstrumentMapCode => "Instrument code mapped",
            AuditAction::InstrumentQcPattern => "Instrument QC sample pattern set",
            AuditAction::InstrumentSpecimenIdComponent => "Instrument specimen id component set",
            AuditAction::InstrumentCharset => "Instrument character set set",
            AuditAction::InstrumentIgnoreCode => "Instrument code ignored",
            AuditAction::InstrumentMapFlag => "Instrument code mapped as a flag",
            AuditAction::InstrumentUnmappedResults => "Instrument unmappable results setting set",
            AuditAction::InstrumentAllowedPeers => "Instrument addresses allowed set",
            AuditAction::QuarantineDismiss => "Quarantined message dismissed",
            AuditAction::QuarantineReplay => "Quarantined message replayed",
            AuditAction::AutoverifySave => "Autoverification rules saved",
            AuditAction::AutoverifyApprove => "Autoverification rules approved",
            AuditAction::AutoverifySuspend => "Autoverification suspended",
            AuditAction::QcMaterialAdd => "Control material added",
            AuditAction::QcTargetSet => "Control target set",
            AuditAction::QcTargetAdoptLab => "Control target adopted from runs in this lab",
            AuditAction::QcRulesSet => "Westgard rules set",
            AuditAction::QcRun => "QC run recorded",
            AuditAction::QcRunReject => "QC run rejected",
            AuditAction::QcCorrectiveAction => "Corrective action documented",
            AuditAction::QcMovingAverageSet => "Moving average set up",
            AuditAction::StaffRecordSave => "Staff record saved",
            AuditAction::StaffAuthorise => "Authorised for a discipline",
            AuditAction::StaffCompetency => "Competency assessment recorded",
            AuditAction::StaffPolicy => "Qualification settings changed",
            AuditAction::StaffPrivilegeRefused => "Refused for qualifications",
            AuditAction::StaffRotation => "Student rotation scheduled",
            AuditAction::StaffRotationSignOff => "Student rotation signed off",
        }
    }

    /// Parses a stored code; `None` for a code Cuvette never writes.
    pub fn parse(code: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.code() == code)
    }
}

/// Serialised as its stored code, the form every reader of the log already knows.
impl Serialize for AuditAction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_reads_back_from_its_stored_code() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.code()), Some(action), "{action:?}");
        }
    }

    #[test]
    fn no_two_actions_share_a_code_or_a_label() {
        let mut codes: Vec<&str> = AuditAction::ALL.iter().map(|a| a.code()).collect();
        let mut labels: Vec<&str> = AuditAction::ALL.iter().map(|a| a.label()).collect();
        codes.sort_unstable();
        labels.sort_unstable();
        codes.dedup();
        labels.dedup();
        assert_eq!(codes.len(), AuditAction::ALL.len());
        assert_eq!(labels.len(), AuditAction::ALL.len());
    }

    #[test]
    fn a_code_cuvette_never_writes_is_not_an_action() {
        for code in ["", "Result.release", "result.release ", "result", "worklist"] {
            assert_eq!(AuditAction::parse(code), None, "{code:?}");
        }
    }
}
