//! What each audited event records as the state before and after: one `Serialize` struct per
//! shape, so an event's JSON is written in one place and a misspelt key does not compile.
//!
//! Every payload goes through [`state`], which writes it the way the log always has: a JSON
//! object with its keys in sorted order (`serde_json::Value`'s map). The hash chain covers that
//! text, so a field is never renamed; a new field is new information, not a new spelling.

use cuvette_domain::Flags;
use cuvette_domain::peers::AllowedPeers;
use cuvette_domain::qc::TargetSource;
use cuvette_domain::workflow::{SpecimenCondition, TestStatus};
use serde::Serialize;

/// The JSON state of an audited event.
pub(crate) fn state(payload: &impl Serialize) -> Option<serde_json::Value> {
    // Payloads are structs of strings, numbers and codes, which always serialise.
    Some(serde_json::to_value(payload).expect("an audit payload serialises"))
}

// ---- users and sign-in ----

/// `user.add`.
#[derive(Serialize)]
pub(crate) struct UserAdded<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: &'a str,
}

/// `user.edit`, before.
#[derive(Serialize)]
pub(crate) struct UserBefore<'a> {
    pub role: &'a str,
    pub active: bool,
}

/// `user.edit`, after.
#[derive(Serialize)]
pub(crate) struct UserAfter<'a> {
    pub role: &'a str,
    pub active: bool,
}

/// `login.fail` (and `login.lockout`, written by earlier versions).
#[derive(Serialize)]
pub(crate) struct FailedLogins {
    pub failed_logins: i64,
    /// Where the attempt came from, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// `login.throttle`: the failures so far and the wait before the next attempt.
#[derive(Serialize)]
pub(crate) struct Throttled {
    pub failures: u32,
    pub wait_seconds: i64,
}

/// `login.throttle_clear`, before.
#[derive(Serialize)]
pub(crate) struct ThrottleCleared {
    pub failures: u32,
    pub refused: u32,
}

/// `apikey.create`.
#[derive(Serialize)]
pub(crate) struct ApiKeyCreated<'a> {
    pub name: &'a str,
    pub role: &'a str,
    /// Its FHIR scopes, when it holds any.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub scopes: &'a str,
}

// ---- catalog ----

/// `catalog.seed`.
#[derive(Serialize)]
pub(crate) struct CatalogSeeded {
    pub tests: usize,
    pub panels: usize,
}

/// `catalog.edit`, after: the definition saved, with why.
#[derive(Serialize)]
pub(crate) struct DefinitionSaved<'a> {
    pub reason: &'a str,
    #[serde(flatten)]
    pub definition: &'a cuvette_domain::TestDefinition,
}

/// `catalog.import`: the versions replaced (before) and stored (after) as `CODE@version`,
/// the panels as they were and became, and the reason given.
#[derive(Serialize)]
pub(crate) struct CatalogImported<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    pub tests: Vec<String>,
    pub panels: Vec<&'a cuvette_domain::catalog::Panel>,
}

// ---- results ----

/// `result.enter` and `result.correct`, before: the version replaced.
#[derive(Serialize)]
pub(crate) struct ResultBefore<'a> {
    pub version: i64,
    pub value: &'a str,
    pub flags: &'a Flags,
}

/// `result.enter` and `result.correct`, after.
#[derive(Serialize)]
pub(crate) struct ResultEntered<'a, I: Serialize> {
    pub version: i64,
    pub value: &'a str,
    pub report: &'a str,
    pub flags: &'a Flags,
    pub interval: &'a I,
    pub definition_version: i64,
    pub correction_reason: Option<&'a str>,
    /// Only a converted result carries these, so every other entry reads as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_value: Option<&'a str>,
    /// The unit the instrument sent, with `sent_value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_unit: Option<&'a str>,
    /// The file stored with the version, when the result is one (HL7 ED).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentState<'a>>,
}

/// A result's attachment as the audit log records it: what it is, and the SHA-256 that
/// names its bytes in the store.
#[derive(Serialize)]
pub(crate) struct AttachmentState<'a> {
    pub name: &'a str,
    pub media_type: &'a str,
    pub bytes: usize,
    pub sha256: &'a str,
}

/// A view of a result's attachment (`result.attachment_view`).
#[derive(Serialize)]
pub(crate) struct AttachmentViewed<'a> {
    pub version: i64,
    pub name: &'a str,
    pub sha256: &'a str,
}

/// A release's before: the test's status.
#[derive(Serialize)]
pub(crate) struct StatusBefore {
    pub status: TestStatus,
}

/// `result.release` and `result.cosign_release`, after.
#[derive(Serialize)]
pub(crate) struct Released<'a, R: Serialize> {
    pub status: &'a str,
    pub version: i64,
    pub value: &'a str,
    pub flags: &'a Flags,
    pub release_status: R,
}

/// `result.autoverify_release`, after: [`Released`] and the fingerprint of the rule set.
#[derive(Serialize)]
pub(crate) struct Autoverified<'a> {
    pub status: &'a str,
    pub version: i64,
    pub value: &'a str,
    pub flags: &'a Flags,
    pub release_status: &'a str,
    pub rules: Option<serde_json::Value>,
}

/// `critical.call` and `critical.attempt`.
#[derive(Serialize)]
pub(crate) struct CriticalCallMade<'a> {
    pub called_person: &'a str,
    pub read_back: bool,
    pub notes: &'a str,
    pub value: &'a str,
    pub version: i64,
}

/// `critical.escalate`.
#[derive(Serialize)]
pub(crate) struct CriticalEscalated<'a> {
    pub version: i64,
    pub value: &'a str,
    pub minutes_waiting: i64,
    pub attempts: i64,
    pub limit_minutes: i64,
}

/// `results.view_list`: who saw which patients' results in a list.
#[derive(Serialize)]
pub(crate) struct ListViewed<'a> {
    pub patients: &'a [i64],
    pub rows: usize,
}

// ---- orders and specimens ----

/// `order.place`.
#[derive(Serialize)]
pub(crate) struct OrderPlaced<'a, S: Serialize> {
    pub provider: &'a str,
    pub priority: &'a str,
    pub clinical_note: &'a str,
    pub placer_number: Option<&'a str>,
    pub specimens: &'a S,
}

/// `specimen.recollect`.
#[derive(Serialize)]
pub(crate) struct Recollection<'a> {
    pub recollection_of: &'a str,
    pub reason: &'a str,
}

/// `specimen.condition`, before and after.
#[derive(Serialize)]
pub(crate) struct Conditions<'a> {
    pub conditions: &'a [SpecimenCondition],
}

// ---- QC ----

/// `qc.material.add`.
#[derive(Serialize)]
pub(crate) struct MaterialAdded<'a> {
    pub product: &'a str,
    pub lot: &'a str,
    pub level: Option<i64>,
    pub expires_on: &'a str,
    pub sample_id: &'a str,
}

/// `qc.target.set`.
#[derive(Serialize)]
pub(crate) struct TargetSet<'a> {
    pub material_id: i64,
    pub instrument_id: i64,
    pub test: &'a str,
    pub mean: f64,
    pub sd: f64,
    pub source: &'static str,
}

/// `qc.target.adopt_lab`, before.
#[derive(Serialize)]
pub(crate) struct Target {
    pub mean: f64,
    pub sd: f64,
    pub source: TargetSource,
}

/// `qc.target.adopt_lab`, after: the lab's own target and the runs it was set from.
#[derive(Serialize)]
pub(crate) struct TargetAdopted {
    pub mean: f64,
    pub sd: f64,
    pub source: &'static str,
    pub runs: usize,
}

/// `qc.rules.set`, before and after.
#[derive(Serialize)]
pub(crate) struct QcRules {
    pub rules: String,
}

/// `qc.run` and `qc.run.reject`: the verdict and the values judged.
#[derive(Serialize)]
pub(crate) struct QcRunJudged<'a> {
    pub status: &'static str,
    pub values: Vec<ControlValue<'a>>,
    pub violations: Vec<&'a str>,
    pub source: &'static str,
}

/// `qc.run.reject` of a patient moving average out of control.
#[derive(Serialize)]
pub(crate) struct MovingAverageRejected<'a> {
    pub status: &'static str,
    pub source: &'static str,
    pub violations: [&'a str; 1],
}

/// One level's value in [`QcRunJudged`].
#[derive(Serialize)]
pub(crate) struct ControlValue<'a> {
    pub level: i64,
    pub lot: &'a str,
    pub value: f64,
}

/// `qc.corrective_action`.
#[derive(Serialize)]
pub(crate) struct CorrectiveActionTaken<'a, A: Serialize> {
    pub action: A,
    pub note: &'a str,
}

// ---- instruments and messages ----

/// `instrument.add`.
#[derive(Serialize)]
pub(crate) struct InstrumentAdded<'a, P: Serialize> {
    pub name: &'a str,
    pub protocol: P,
    pub sender: &'a str,
}

/// `instrument.map_code`.
#[derive(Serialize)]
pub(crate) struct CodeMapped<'a> {
    pub instrument_code: &'a str,
    pub test_code: &'a str,
    pub unit: &'a str,
    /// Only a mapping in another unit than the catalog's has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion: Option<String>,
}

/// `instrument.qc_pattern`, before and after.
#[derive(Serialize)]
pub(crate) struct QcPattern<'a> {
    pub qc_pattern: &'a str,
}

/// `instrument.specimen_id_component`, before and after.
#[derive(Serialize)]
pub(crate) struct SpecimenIdComponent {
    pub component: Option<i64>,
}

/// `instrument.ignore_code` and `instrument.map_flag`: the code, and what it was mapped as
/// before (a catalog test, `ignore`, `flag`; none when it was not mapped).
#[derive(Serialize)]
pub(crate) struct CodeDisposed<'a> {
    pub instrument_code: &'a str,
    pub mapped_as: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
}

/// `instrument.unmapped_results`, before and after.
#[derive(Serialize)]
pub(crate) struct UnmappedResultsSetting {
    pub unmapped_results: &'static str,
}

/// `instrument.allowed_peers`, before and after: the addresses, none when unrestricted.
#[derive(Serialize)]
pub(crate) struct AllowedPeersSetting {
    pub allowed_peers: Vec<String>,
}

impl AllowedPeersSetting {
    pub(crate) fn of(peers: &AllowedPeers) -> AllowedPeersSetting {
        AllowedPeersSetting {
            allowed_peers: peers.addresses().iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// `instrument.charset`, before and after.
#[derive(Serialize)]
pub(crate) struct Charset<'a> {
    pub charset: Option<&'a str>,
}

/// `autoverify.suspend`.
#[derive(Serialize)]
pub(crate) struct AutoverifySuspended {
    pub tests_suspended: usize,
}

/// `quarantine.dismiss`, before.
#[derive(Serialize)]
pub(crate) struct QuarantineOpen<'a> {
    pub quarantine: &'static str,
    pub detail: &'a str,
}

/// `quarantine.dismiss`, after.
#[derive(Serialize)]
pub(crate) struct QuarantineDismissed<'a> {
    pub quarantine: &'static str,
    pub reason: &'a str,
}

/// `quarantine.replay`, before.
#[derive(Serialize)]
pub(crate) struct MessageDetail<'a> {
    pub detail: &'a str,
}

/// `quarantine.replay`, after.
#[derive(Serialize)]
pub(crate) struct Replayed<'a> {
    pub replay: i64,
    pub accession: Option<&'a str>,
    pub outcome: String,
}

/// `result.send`: the EHR's acknowledgement of a result message.
#[derive(Serialize)]
pub(crate) struct Delivered<'a> {
    pub accession: &'a str,
    pub control_id: &'a str,
    pub destination: &'a str,
    pub peer: &'a str,
    pub ack: &'a str,
}

/// `outbox.give_up`.
#[derive(Serialize)]
pub(crate) struct GivenUp<'a> {
    pub accession: &'a str,
    pub attempts: i64,
    pub error: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys a payload leaves out when it has nothing to say are left out of the text, so
    /// the events written before those keys existed and those written after read alike.
    #[test]
    fn optional_keys_appear_only_when_there_is_something_to_record() {
        let plain = CodeMapped {
            instrument_code: "GLU",
            test_code: "GLU",
            unit: "mg/dL",
            conversion: None,
        };
        assert_eq!(
            state(&plain).unwrap().to_string(),
            r#"{"instrument_code":"GLU","test_code":"GLU","unit":"mg/dL"}"#
        );
        let converted = CodeMapped { conversion: Some("× 0.0555".into()), ..plain };
        assert_eq!(
            state(&converted).unwrap().to_string(),
            r#"{"conversion":"× 0.0555","instrument_code":"GLU","test_code":"GLU","unit":"mg/dL"}"#
        );
    }

    /// The hash chain covers the text, and the log has always written keys in sorted order:
    /// a struct's field order does not change it.
    #[test]
    fn keys_are_written_in_sorted_order_whatever_the_field_order() {
        let given_up = GivenUp { accession: "26-0000012-3", attempts: 10, error: "refused" };
        assert_eq!(
            state(&given_up).unwrap().to_string(),
            r#"{"accession":"26-0000012-3","attempts":10,"error":"refused"}"#
        );
        let seen = ListViewed { patients: &[3, 7], rows: 12 };
        assert_eq!(state(&seen).unwrap().to_string(), r#"{"patients":[3,7],"rows":12}"#);
        let user = UserAfter { role: "technician", active: true };
        assert_eq!(state(&user).unwrap().to_string(), r#"{"active":true,"role":"technician"}"#);
    }
}

// ---- people ----

/// `staff.authorise`.
#[derive(Serialize)]
pub(crate) struct Authorised<'a> {
    pub username: &'a str,
    #[serde(flatten)]
    pub authorisation: &'a cuvette_domain::staff::Authorisation,
}

/// `staff.competency`.
#[derive(Serialize)]
pub(crate) struct Assessed<'a> {
    pub username: &'a str,
    #[serde(flatten)]
    pub assessment: &'a cuvette_domain::staff::Assessment,
}

/// `staff.privilege_refused`: what the person tried and why it was refused.
#[derive(Serialize)]
pub(crate) struct QualificationRefused<'a> {
    pub action: &'a str,
    pub reason: String,
}

/// `staff.rotation`.
#[derive(Serialize)]
pub(crate) struct RotationScheduled<'a> {
    pub username: &'a str,
    #[serde(flatten)]
    pub rotation: &'a cuvette_domain::rotation::Rotation,
}

/// `staff.rotation_sign_off`: the rotation and what its logbook held when signed.
#[derive(Serialize)]
pub(crate) struct RotationSignedOff<'a> {
    pub username: &'a str,
    pub discipline: &'a str,
    pub starts_on: jiff::civil::Date,
    pub ends_on: jiff::civil::Date,
    pub tests_cosigned: usize,
}
