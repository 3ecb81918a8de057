//! The life of an ordered test and its specimen, as state machines.
//!
//! ordered → collected → received → in process → preliminary → final, with rejection as a
//! dead end for the specimen (its tests are cancelled and a recollection is requested).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where an ordered test stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStatus {
    /// Ordered, specimen not yet collected.
    Ordered,
    /// Specimen collected and labelled.
    Collected,
    /// Specimen received in the lab.
    Received,
    /// A result has been entered but not released.
    InProcess,
    /// Released as preliminary.
    Preliminary,
    /// Released as final.
    Final,
    /// The specimen was rejected; the test will be done on the recollected specimen.
    Cancelled,
}

/// Every test status.
pub const TEST_STATUSES: [TestStatus; 7] = [
    TestStatus::Ordered,
    TestStatus::Collected,
    TestStatus::Received,
    TestStatus::InProcess,
    TestStatus::Preliminary,
    TestStatus::Final,
    TestStatus::Cancelled,
];

impl TestStatus {
    /// Every test status.
    pub const ALL: [TestStatus; 7] = TEST_STATUSES;

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            TestStatus::Ordered => "ordered",
            TestStatus::Collected => "collected",
            TestStatus::Received => "received",
            TestStatus::InProcess => "in_process",
            TestStatus::Preliminary => "preliminary",
            TestStatus::Final => "final",
            TestStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored code.
    pub fn parse(code: &str) -> Option<TestStatus> {
        TEST_STATUSES.into_iter().find(|s| s.code() == code)
    }

    /// Whether a result may be entered (or re-entered before release) in this state.
    pub fn accepts_results(self) -> bool {
        matches!(self, TestStatus::Received | TestStatus::InProcess | TestStatus::Preliminary)
    }

    /// Whether the result has been released to the provider.
    pub fn is_released(self) -> bool {
        matches!(self, TestStatus::Preliminary | TestStatus::Final)
    }
}

impl fmt::Display for TestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TestStatus::Ordered => "Ordered",
            TestStatus::Collected => "Collected",
            TestStatus::Received => "Received",
            TestStatus::InProcess => "In process",
            TestStatus::Preliminary => "Preliminary",
            TestStatus::Final => "Final",
            TestStatus::Cancelled => "Cancelled",
        })
    }
}

/// How a result version was released to the provider (HL7 OBX-11, table 0085).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// Released as preliminary: a final result follows.
    Preliminary,
    /// Released as final.
    Final,
    /// A changed value released after a final report.
    Corrected,
}

impl ReleaseStatus {
    /// Every release status.
    pub const ALL: [ReleaseStatus; 3] =
        [ReleaseStatus::Preliminary, ReleaseStatus::Final, ReleaseStatus::Corrected];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            ReleaseStatus::Preliminary => "preliminary",
            ReleaseStatus::Final => "final",
            ReleaseStatus::Corrected => "corrected",
        }
    }

    /// Parses a stored code.
    pub fn parse(code: &str) -> Option<ReleaseStatus> {
        [ReleaseStatus::Preliminary, ReleaseStatus::Final, ReleaseStatus::Corrected]
            .into_iter()
            .find(|s| s.code() == code)
    }

    /// OBX-11: `P` preliminary, `F` final, `C` a correction of a final result.
    pub fn observation_status(self) -> &'static str {
        match self {
            ReleaseStatus::Preliminary => "P",
            ReleaseStatus::Final => "F",
            ReleaseStatus::Corrected => "C",
        }
    }

    /// Whether a final report was issued (a later change is a correction).
    pub fn is_final(self) -> bool {
        matches!(self, ReleaseStatus::Final | ReleaseStatus::Corrected)
    }
}

/// Where a specimen (one container) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecimenStatus {
    /// Labelled for collection, not yet drawn.
    Pending,
    /// Drawn.
    Collected,
    /// Received in the lab.
    Received,
    /// Rejected; takes no results.
    Rejected,
}

impl SpecimenStatus {
    /// Every specimen status.
    pub const ALL: [SpecimenStatus; 4] = [
        SpecimenStatus::Pending,
        SpecimenStatus::Collected,
        SpecimenStatus::Received,
        SpecimenStatus::Rejected,
    ];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            SpecimenStatus::Pending => "pending",
            SpecimenStatus::Collected => "collected",
            SpecimenStatus::Received => "received",
            SpecimenStatus::Rejected => "rejected",
        }
    }

    /// Parses a stored code.
    pub fn parse(code: &str) -> Option<SpecimenStatus> {
        [
            SpecimenStatus::Pending,
            SpecimenStatus::Collected,
            SpecimenStatus::Received,
            SpecimenStatus::Rejected,
        ]
        .into_iter()
        .find(|s| s.code() == code)
    }
}

/// Why a specimen was rejected (HL7 v2 table 0490 in spirit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    /// Hemolysis beyond the test's limits.
    Hemolyzed,
    /// Clotted anticoagulated specimen.
    Clotted,
    /// Quantity not sufficient.
    QuantityNotSufficient,
    /// Unlabelled, or the label does not match the requisition.
    Mislabeled,
    /// Wrong tube, anticoagulant or preservative.
    WrongContainer,
    /// Too old or stored wrongly.
    StabilityExceeded,
}

/// Every rejection reason, in the order the receipt screen numbers them (keys 1–6).
pub const REJECTION_REASONS: [RejectionReason; 6] = [
    RejectionReason::Hemolyzed,
    RejectionReason::Clotted,
    RejectionReason::QuantityNotSufficient,
    RejectionReason::Mislabeled,
    RejectionReason::WrongContainer,
    RejectionReason::StabilityExceeded,
];

impl RejectionReason {
    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            RejectionReason::Hemolyzed => "hemolyzed",
            RejectionReason::Clotted => "clotted",
            RejectionReason::QuantityNotSufficient => "qns",
            RejectionReason::Mislabeled => "mislabeled",
            RejectionReason::WrongContainer => "wrong_container",
            RejectionReason::StabilityExceeded => "stability_exceeded",
        }
    }

    /// Parses a stored code.
    pub fn parse(code: &str) -> Option<RejectionReason> {
        REJECTION_REASONS.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectionReason::Hemolyzed => "Hemolyzed",
            RejectionReason::Clotted => "Clotted",
            RejectionReason::QuantityNotSufficient => "Quantity not sufficient",
            RejectionReason::Mislabeled => "Mislabeled",
            RejectionReason::WrongContainer => "Wrong container",
            RejectionReason::StabilityExceeded => "Stability exceeded",
        })
    }
}

/// A condition of the specimen seen at receipt, which autoverification rule sets may hold on
/// (stored as its code: "HEM", "LIP" …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpecimenCondition {
    /// Hemolyzed.
    #[serde(rename = "HEM")]
    Hemolyzed,
    /// Lipemic.
    #[serde(rename = "LIP")]
    Lipemic,
    /// Icteric.
    #[serde(rename = "ICT")]
    Icteric,
    /// Clotted.
    #[serde(rename = "CLOT")]
    Clotted,
    /// Quantity not sufficient.
    #[serde(rename = "QNS")]
    QuantityNotSufficient,
    /// Diluted, or drawn above an IV line.
    #[serde(rename = "DIL")]
    Diluted,
}

impl SpecimenCondition {
    /// Every condition, in the order the receipt screen lists them.
    pub const ALL: [SpecimenCondition; 6] = [
        SpecimenCondition::Hemolyzed,
        SpecimenCondition::Lipemic,
        SpecimenCondition::Icteric,
        SpecimenCondition::Clotted,
        SpecimenCondition::QuantityNotSufficient,
        SpecimenCondition::Diluted,
    ];

    /// The stored code, which rule sets name too.
    pub fn code(self) -> &'static str {
        match self {
            SpecimenCondition::Hemolyzed => "HEM",
            SpecimenCondition::Lipemic => "LIP",
            SpecimenCondition::Icteric => "ICT",
            SpecimenCondition::Clotted => "CLOT",
            SpecimenCondition::QuantityNotSufficient => "QNS",
            SpecimenCondition::Diluted => "DIL",
        }
    }

    /// Reads a code, ignoring case and surrounding space ("hem" is HEM).
    pub fn parse(code: &str) -> Option<SpecimenCondition> {
        let code = code.trim();
        SpecimenCondition::ALL.into_iter().find(|c| c.code().eq_ignore_ascii_case(code))
    }

    /// Reads a stored list ("HEM CLOT"); one unknown code makes the list unreadable.
    pub fn parse_list(stored: &str) -> Option<Vec<SpecimenCondition>> {
        stored.split_whitespace().map(SpecimenCondition::parse).collect()
    }

    /// Writes what [`parse_list`](Self::parse_list) reads.
    pub fn list_code(conditions: &[SpecimenCondition]) -> String {
        conditions.iter().map(|c| c.code()).collect::<Vec<_>>().join(" ")
    }

    /// What the bench reads.
    pub fn words(self) -> &'static str {
        match self {
            SpecimenCondition::Hemolyzed => "hemolyzed",
            SpecimenCondition::Lipemic => "lipemic",
            SpecimenCondition::Icteric => "icteric",
            SpecimenCondition::Clotted => "clotted",
            SpecimenCondition::QuantityNotSufficient => "quantity not sufficient",
            SpecimenCondition::Diluted => "diluted / drawn above an IV line",
        }
    }
}

/// Order priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Immediately: pinned to the top of every worklist.
    Stat,
    /// In the normal run.
    Routine,
}

impl Priority {
    /// Every priority.
    pub const ALL: [Priority; 2] = [Priority::Stat, Priority::Routine];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            Priority::Stat => "stat",
            Priority::Routine => "routine",
        }
    }

    /// Reads a stored code strictly.
    pub fn from_code(code: &str) -> Option<Priority> {
        [Priority::Stat, Priority::Routine].into_iter().find(|p| p.code() == code)
    }

    /// Parses what a form or a message sends ("STAT", "routine", "S", "R", empty).
    pub fn parse(code: &str) -> Option<Priority> {
        match code.trim().to_ascii_lowercase().as_str() {
            "stat" | "s" => Some(Priority::Stat),
            "routine" | "r" | "" => Some(Priority::Routine),
            _ => None,
        }
    }
}

/// A step in a specimen's life that can be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecimenStep {
    /// Record the draw.
    Collect,
    /// Receive it in the lab.
    Receive,
    /// Reject it.
    Reject,
    /// Enter a result on it.
    Result,
}

/// Why a step is refused in the specimen's current state; each says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepRefusal {
    /// Rejected specimens take nothing more.
    #[error("this specimen was rejected; use the recollected specimen")]
    Rejected,
    /// Collected twice.
    #[error("this specimen was already collected")]
    AlreadyCollected,
    /// Received before collection was recorded.
    #[error("record the collection before receiving this specimen")]
    NotCollected,
    /// Received twice.
    #[error("this specimen was already received")]
    AlreadyReceived,
    /// A result for a specimen not yet in the lab.
    #[error("receive this specimen before entering results")]
    NotReceived,
}

/// Whether `step` may happen to a specimen in `status`.
pub fn specimen_step(status: SpecimenStatus, step: SpecimenStep) -> Result<(), StepRefusal> {
    use SpecimenStatus as S;
    use SpecimenStep as T;
    match (status, step) {
        (S::Rejected, _) => Err(StepRefusal::Rejected),
        (S::Pending, T::Collect) => Ok(()),
        (_, T::Collect) => Err(StepRefusal::AlreadyCollected),
        (S::Pending, T::Receive) => Err(StepRefusal::NotCollected),
        (S::Collected, T::Receive) => Ok(()),
        (S::Received, T::Receive) => Err(StepRefusal::AlreadyReceived),
        (_, T::Reject) => Ok(()),
        (S::Received, T::Result) => Ok(()),
        (_, T::Result) => Err(StepRefusal::NotReceived),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_specimen_takes_no_results_and_no_further_steps() {
        for step in [
            SpecimenStep::Collect,
            SpecimenStep::Receive,
            SpecimenStep::Reject,
            SpecimenStep::Result,
        ] {
            assert_eq!(specimen_step(SpecimenStatus::Rejected, step), Err(StepRefusal::Rejected));
        }
    }

    #[test]
    fn the_specimen_moves_forward_only() {
        use SpecimenStatus::*;
        assert_eq!(specimen_step(Pending, SpecimenStep::Collect), Ok(()));
        assert_eq!(specimen_step(Pending, SpecimenStep::Receive), Err(StepRefusal::NotCollected));
        assert_eq!(specimen_step(Collected, SpecimenStep::Receive), Ok(()));
        assert_eq!(specimen_step(Collected, SpecimenStep::Result), Err(StepRefusal::NotReceived));
        assert_eq!(
            specimen_step(Received, SpecimenStep::Receive),
            Err(StepRefusal::AlreadyReceived)
        );
        assert_eq!(specimen_step(Received, SpecimenStep::Result), Ok(()));
        assert_eq!(specimen_step(Received, SpecimenStep::Reject), Ok(()));
    }

    #[test]
    fn codes_round_trip() {
        for s in TEST_STATUSES {
            assert_eq!(TestStatus::parse(s.code()), Some(s));
        }
        for r in REJECTION_REASONS {
            assert_eq!(RejectionReason::parse(r.code()), Some(r));
        }
    }
}
