//! Statistical quality control: Westgard multirules, sigma metrics, control statistics and
//! patient-based moving averages.
//!
//! Everything here works on z-scores, `z = (x − mean) / SD` with the lot's target mean and SD,
//! so results of different control levels can be compared and merged (DOMAIN.md §4). The rules
//! come from Westgard JO et al., Clin Chem 1981;27:493, the 3-level rules and the Sigma Rules
//! from westgard.com and LabCE, as tabulated in DOMAIN.md §4; statistics follow CLSI C24.
//!
//! Choices a reviewer should know about, each one deliberate:
//!
//! - **Limits are strict.** A result violates a 2 SD limit only when |z| > 2: a control at
//!   exactly 2.000 SD does not (DOMAIN.md §4, "Exact boundary"). The same holds for 1 SD and
//!   3 SD. "On the same side of the mean" (10x, 8x, 12x, 6x, 9x) means z > 0 or z < 0: a result
//!   exactly at the mean is on neither side and ends the streak.
//! - **No 1-2s gate.** The classic flowchart inspects the other rules only after a 1-2s
//!   warning. Here every configured rule is evaluated on every run, because 4-1s and 10x are
//!   violated by results that never leave ±2 SD: behind a gate, a slow shift would go unseen
//!   until something else happens to exceed 2 SD. 1-2s is reported as a warning only.
//! - **Order.** Results are ordered by run, then level, then the order they were given in
//!   (DOMAIN.md §4, "Mixed levels"). Within-run rules look at the current run only, across-run
//!   rules at one level's series, across-level rules at the merged chronological series.
//! - **Scopes follow the DOMAIN.md §4 table**, rule by rule (see [`WestgardRule::describe`]):
//!   2-2s within the run across levels and across runs within a level; R-4s within the run
//!   only; 4-1s and the mean rules (10x, 8x, 12x, 6x, 9x) across runs within a level and across
//!   levels on the merged series; 2of3-2s and 3-1s within the run and across runs within a
//!   level. 2-2s is *not* applied to the merged series across runs: the table gives it the two
//!   Westgard scopes only, so the previous run's last level and this run's first level do not
//!   form a 2-2s pair. (Inside one run the merged series and the within-run scope coincide.)
//! - **Each window is reported once.** A window of consecutive results that all belong to one
//!   level is reported under that level ([`Scope::Level`]); the across-level scopes
//!   ([`Scope::WithinRun`], [`Scope::AcrossLevels`]) report only windows that mix levels.
//! - **A streak across levels ends on any result of the run.** On the merged series, a 4-1s or
//!   mean-rule (10x, 8x, 12x, 6x, 9x) window counts when it ends on *any* result of the current
//!   run, not only on its last level in order: level 1 of this run may complete a 4-1s that
//!   began in earlier runs even though level 2 of this run, after it, is back within 1 SD. The
//!   shift was there when level 1 was measured; that a later level of the same run missed it
//!   does not undo it, and the run's patient results were measured alongside both.
//! - **Only the current run is judged.** A violation is reported only when at least one of the
//!   results that make it up belongs to the current run. The caller passes as history only the
//!   results since the last documented corrective action or recalibration, so a result that
//!   has already caused a rejection is not used again (DOMAIN.md §4, last sentence).
//! - **Replicates.** A run may hold several results of one level (N = 4 with two levels). They
//!   are consecutive results of that level, and R-4s compares every pair in the run, replicates
//!   included: two replicates 4 SD apart show random error as surely as two levels do.
//! - **R-4s is "one above +2 SD and another below −2 SD"**, as DOMAIN.md §4 defines it, not
//!   "range > 4 SD": +1.8 and −2.5 SD (range 4.3 SD) is a 1-2s warning, not R-4s.
//! - **A z-score that is not a number** (no SD established) violates nothing and is on neither
//!   side of the mean. Callers must not record a control result without a positive SD;
//!   [`z_score`] returns NaN to make that mistake visible rather than guess.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The control runs a lab collects before it sets its own target mean and SD for a new lot
/// (CLSI C24: at least 20 data points, ideally over 20 days).
pub const RUNS_TO_ESTABLISH_TARGET: usize = 20;

/// The longest window any rule looks at (12x). No rule needs more than `WINDOW_MAX − 1`
/// results before the current run's, in any series, so older history is not examined.
const WINDOW_MAX: usize = 12;

/// The codes accepted by [`WestgardRule::parse`], for error messages.
const KNOWN_CODES: &str = "1-2s, 1-3s, 2-2s, R-4s, 4-1s, 10x, 8x, 12x, 2of3-2s, 3-1s, 6x, 9x";

/// A Westgard control rule (DOMAIN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WestgardRule {
    /// 1-2s: one result beyond ±2 SD. A warning, never a rejection.
    #[serde(rename = "1-2s")]
    OneTwoS,
    /// 1-3s: one result beyond ±3 SD (random error).
    #[serde(rename = "1-3s")]
    OneThreeS,
    /// 2-2s: two consecutive results beyond the same 2 SD limit (systematic error).
    #[serde(rename = "2-2s")]
    TwoTwoS,
    /// R-4s: within one run, one result above +2 SD and another below −2 SD (random error).
    #[serde(rename = "R-4s")]
    RFourS,
    /// 4-1s: four consecutive results beyond the same 1 SD limit (systematic error).
    #[serde(rename = "4-1s")]
    FourOneS,
    /// 10x: ten consecutive results on the same side of the mean (systematic error).
    #[serde(rename = "10x")]
    TenX,
    /// 8x: eight consecutive results on the same side of the mean (for N = 2 or 4).
    #[serde(rename = "8x")]
    EightX,
    /// 12x: twelve consecutive results on the same side of the mean (for N = 3 or 6).
    #[serde(rename = "12x")]
    TwelveX,
    /// 2of3-2s: two of the last three results beyond the same 2 SD limit (3-level QC).
    #[serde(rename = "2of3-2s")]
    TwoOfThreeTwoS,
    /// 3-1s: three consecutive results beyond the same 1 SD limit (3-level QC).
    #[serde(rename = "3-1s")]
    ThreeOneS,
    /// 6x: six consecutive results on the same side of the mean (3-level QC, two runs).
    #[serde(rename = "6x")]
    SixX,
    /// 9x: nine consecutive results on the same side of the mean (3-level QC, three runs).
    #[serde(rename = "9x")]
    NineX,
}

impl WestgardRule {
    /// Every rule, in the order a rule set is usually written.
    pub const ALL: [WestgardRule; 12] = [
        WestgardRule::OneTwoS,
        WestgardRule::OneThreeS,
        WestgardRule::TwoTwoS,
        WestgardRule::RFourS,
        WestgardRule::FourOneS,
        WestgardRule::TenX,
        WestgardRule::EightX,
        WestgardRule::TwelveX,
        WestgardRule::TwoOfThreeTwoS,
        WestgardRule::ThreeOneS,
        WestgardRule::SixX,
        WestgardRule::NineX,
    ];

    /// The code stored and shown ("1-3s", "R-4s", "10x").
    pub fn code(self) -> &'static str {
        match self {
            WestgardRule::OneTwoS => "1-2s",
            WestgardRule::OneThreeS => "1-3s",
            WestgardRule::TwoTwoS => "2-2s",
            WestgardRule::RFourS => "R-4s",
            WestgardRule::FourOneS => "4-1s",
            WestgardRule::TenX => "10x",
            WestgardRule::EightX => "8x",
            WestgardRule::TwelveX => "12x",
            WestgardRule::TwoOfThreeTwoS => "2of3-2s",
            WestgardRule::ThreeOneS => "3-1s",
            WestgardRule::SixX => "6x",
            WestgardRule::NineX => "9x",
        }
    }

    /// Reads a code as [`code`](Self::code) writes it, ignoring ASCII case ("r-4s" is R-4s).
    pub fn parse(code: &str) -> Option<WestgardRule> {
        WestgardRule::ALL.into_iter().find(|r| r.code().eq_ignore_ascii_case(code))
    }

    /// Whether a violation only warns: 1-2s. Every other rule rejects the run.
    pub fn is_warning(self) -> bool {
        self == WestgardRule::OneTwoS
    }

    /// One line a technologist reads beside a violation: what the rule saw and where it looks.
    pub fn describe(self) -> &'static str {
        match self {
            WestgardRule::OneTwoS => {
                "warning: one control result beyond 2 SD of the mean; inspect the other results"
            }
            WestgardRule::OneThreeS => {
                "reject: one control result beyond 3 SD of the mean (random error)"
            }
            WestgardRule::TwoTwoS => {
                "reject: two consecutive control results beyond the same 2 SD limit, within the \
                 run across levels or across runs within a level (systematic error)"
            }
            WestgardRule::RFourS => {
                "reject: in one run, one control result above +2 SD and another below -2 SD \
                 (random error)"
            }
            WestgardRule::FourOneS => {
                "reject: four consecutive control results beyond the same 1 SD limit, across \
                 runs within a level or across levels (systematic error)"
            }
            WestgardRule::TenX => {
                "reject: ten consecutive control results on the same side of the mean, across \
                 runs within a level or across levels (systematic error)"
            }
            WestgardRule::EightX => {
                "reject: eight consecutive control results on the same side of the mean, across \
                 runs within a level or across levels (systematic error)"
            }
            WestgardRule::TwelveX => {
                "reject: twelve consecutive control results on the same side of the mean, across \
                 runs within a level or across levels (systematic error)"
            }
            WestgardRule::TwoOfThreeTwoS => {
                "reject: two of three consecutive control results beyond the same 2 SD limit, \
                 within the run or across runs within a level (systematic error)"
            }
            WestgardRule::ThreeOneS => {
                "reject: three consecutive control results beyond the same 1 SD limit, within \
                 the run or across runs within a level (systematic error)"
            }
            WestgardRule::SixX => {
                "reject: six consecutive control results on the same side of the mean, across \
                 runs within a level or across levels (systematic error)"
            }
            WestgardRule::NineX => {
                "reject: nine consecutive control results on the same side of the mean, across \
                 runs within a level or across levels (systematic error)"
            }
        }
    }

    /// What the rule counts, in z.
    fn shape(self) -> Shape {
        use Shape::{Consecutive, Range, Single, TwoOfThree};
        match self {
            WestgardRule::OneTwoS => Single { limit: 2.0 },
            WestgardRule::OneThreeS => Single { limit: 3.0 },
            WestgardRule::TwoTwoS => Consecutive { count: 2, limit: 2.0 },
            WestgardRule::RFourS => Range,
            WestgardRule::FourOneS => Consecutive { count: 4, limit: 1.0 },
            WestgardRule::TenX => Consecutive { count: 10, limit: 0.0 },
            WestgardRule::EightX => Consecutive { count: 8, limit: 0.0 },
            WestgardRule::TwelveX => Consecutive { count: 12, limit: 0.0 },
            WestgardRule::TwoOfThreeTwoS => TwoOfThree,
            WestgardRule::ThreeOneS => Consecutive { count: 3, limit: 1.0 },
            WestgardRule::SixX => Consecutive { count: 6, limit: 0.0 },
            WestgardRule::NineX => Consecutive { count: 9, limit: 0.0 },
        }
    }

    /// Where the rule looks, from the "Scope" column of DOMAIN.md §4. Single-result rules look
    /// at each result of the run on its own and ignore this.
    fn series(self) -> &'static [Series] {
        match self {
            WestgardRule::OneTwoS | WestgardRule::OneThreeS | WestgardRule::RFourS => {
                &[Series::WithinRun]
            }
            // 2_2s: "(a) within run across 2 levels; (b) across the last 2 runs within one
            // level". 2of3_2s and 3_1s: "within run, or across runs".
            WestgardRule::TwoTwoS | WestgardRule::TwoOfThreeTwoS | WestgardRule::ThreeOneS => {
                &[Series::WithinRun, Series::EachLevel]
            }
            // 4_1s: "across runs within level, and across levels"; 10_x (and 8x, 12x, 6x, 9x):
            // "across runs/levels", on the merged chronological series.
            WestgardRule::FourOneS
            | WestgardRule::TenX
            | WestgardRule::EightX
            | WestgardRule::TwelveX
            | WestgardRule::SixX
            | WestgardRule::NineX => &[Series::EachLevel, Series::Merged],
        }
    }
}

impl fmt::Display for WestgardRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The rules a lab applies to one test's QC, in the order it wrote them.
///
/// Stored as comma-separated codes: `"1-2s,1-3s,2-2s,R-4s,4-1s,10x"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RuleSet(Vec<WestgardRule>);

/// Why a stored rule set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleSetError {
    /// No rule at all: QC would accept every run.
    #[error("no QC rules are listed: list at least one, such as 1-3s")]
    Empty,
    /// A code that is not one of [`WestgardRule::ALL`].
    #[error("{code:?} is not a Westgard rule; the rules are {KNOWN_CODES}")]
    Unknown {
        /// The code as written, trimmed.
        code: String,
    },
    /// The same rule twice, which usually means another rule was meant.
    #[error("{code} is listed twice")]
    Duplicate {
        /// The repeated rule's code.
        code: String,
    },
}

impl RuleSet {
    /// The classic Westgard multirule for two control levels (N = 2):
    /// 1-2s (warning), 1-3s, 2-2s, R-4s, 4-1s, 10x.
    pub fn classic() -> RuleSet {
        use WestgardRule::*;
        RuleSet(vec![OneTwoS, OneThreeS, TwoTwoS, RFourS, FourOneS, TenX])
    }

    /// The multirule for three control levels (N = 3), as LabCE lists it:
    /// 1-2s (warning), 1-3s, 2of3-2s, R-4s, 3-1s, 6x. 6x covers two runs of three levels; a lab
    /// that wants fewer false rejections writes 9x (three runs) instead.
    pub fn three_level() -> RuleSet {
        use WestgardRule::*;
        RuleSet(vec![OneTwoS, OneThreeS, TwoOfThreeTwoS, RFourS, ThreeOneS, SixX])
    }

    /// A rule set of the given rules in the given order; a repeated rule is kept once. An
    /// empty set accepts every run; [`parse`](Self::parse) refuses one from storage.
    pub fn new(rules: impl IntoIterator<Item = WestgardRule>) -> RuleSet {
        let mut kept = Vec::new();
        for rule in rules {
            if !kept.contains(&rule) {
                kept.push(rule);
            }
        }
        RuleSet(kept)
    }

    /// Reads stored codes, comma-separated, spaces allowed around each ("1-3s, 2-2s").
    pub fn parse(s: &str) -> Result<RuleSet, RuleSetError> {
        if s.trim().is_empty() {
            return Err(RuleSetError::Empty);
        }
        let mut rules = Vec::new();
        for code in s.split(',').map(str::trim) {
            let rule = WestgardRule::parse(code)
                .ok_or_else(|| RuleSetError::Unknown { code: code.to_owned() })?;
            if rules.contains(&rule) {
                return Err(RuleSetError::Duplicate { code: rule.code().to_owned() });
            }
            rules.push(rule);
        }
        Ok(RuleSet(rules))
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[WestgardRule] {
        &self.0
    }

    /// Whether the set applies `rule`.
    pub fn contains(&self, rule: WestgardRule) -> bool {
        self.0.contains(&rule)
    }
}

impl fmt::Display for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(rule.code())?;
        }
        Ok(())
    }
}

impl FromStr for RuleSet {
    type Err = RuleSetError;

    fn from_str(s: &str) -> Result<RuleSet, RuleSetError> {
        RuleSet::parse(s)
    }
}

impl TryFrom<String> for RuleSet {
    type Error = RuleSetError;

    fn try_from(s: String) -> Result<RuleSet, RuleSetError> {
        RuleSet::parse(&s)
    }
}

impl From<RuleSet> for String {
    fn from(rules: RuleSet) -> String {
        rules.to_string()
    }
}

/// One control measurement, already converted to a z-score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ControlResult {
    /// The stored result's id, returned in [`Violation::results`].
    pub id: i64,
    /// The analytical run. Larger is later; results with the same value are one run.
    pub run: i64,
    /// The control level (1, 2 or 3: low, normal, high).
    pub level: u8,
    /// `(value − target mean) / target SD` of the control lot; see [`z_score`].
    pub z: f64,
}

/// How many SDs `value` lies from `mean`: `(value − mean) / sd`.
///
/// NaN when `sd` is not a positive number: without an SD there is no z-score, and NaN makes
/// every rule see nothing rather than something invented. Record no QC until the lot has a
/// target SD.
pub fn z_score(value: f64, mean: f64, sd: f64) -> f64 {
    if sd > 0.0 && sd.is_finite() { (value - mean) / sd } else { f64::NAN }
}

/// What QC says about a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QcStatus {
    /// No rule violated: patient results of the run may be released.
    Accepted,
    /// Only 1-2s violated: accept, and look at the chart.
    Warning,
    /// A rejection rule violated: hold the run's patient results, troubleshoot, rerun.
    Rejected,
}

impl QcStatus {
    /// Every QC status.
    pub const ALL: [QcStatus; 3] = [QcStatus::Accepted, QcStatus::Warning, QcStatus::Rejected];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            QcStatus::Accepted => "accepted",
            QcStatus::Warning => "warning",
            QcStatus::Rejected => "rejected",
        }
    }

    /// Parses a stored code; anything else is not a QC status.
    pub fn parse(code: &str) -> Option<QcStatus> {
        [QcStatus::Accepted, QcStatus::Warning, QcStatus::Rejected]
            .into_iter()
            .find(|s| s.code() == code)
    }

    /// Whether patient results of the run may be released (accepted, or a 1-2s warning).
    pub fn is_acceptable(self) -> bool {
        match self {
            QcStatus::Accepted | QcStatus::Warning => true,
            QcStatus::Rejected => false,
        }
    }
}

/// What a technologist did about a QC failure (documented before QC may run again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrectiveAction {
    /// The test was recalibrated.
    Recalibrated,
    /// A new reagent lot was opened, or the reagent replaced.
    NewReagentLot,
    /// A new control vial or lot.
    NewControl,
    /// Maintenance was performed.
    Maintenance,
    /// The service engineer was called.
    Service,
    /// The control was re-run (random error suspected).
    Rerun,
    /// Something else, described in the note.
    Other,
}

impl CorrectiveAction {
    /// Every action, in the order the lockout page lists them.
    pub const ALL: [CorrectiveAction; 7] = [
        CorrectiveAction::Recalibrated,
        CorrectiveAction::NewReagentLot,
        CorrectiveAction::NewControl,
        CorrectiveAction::Maintenance,
        CorrectiveAction::Service,
        CorrectiveAction::Rerun,
        CorrectiveAction::Other,
    ];

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            CorrectiveAction::Recalibrated => "recalibrated",
            CorrectiveAction::NewReagentLot => "new_reagent_lot",
            CorrectiveAction::NewControl => "new_control",
            CorrectiveAction::Maintenance => "maintenance",
            CorrectiveAction::Service => "service",
            CorrectiveAction::Rerun => "rerun",
            CorrectiveAction::Other => "other",
        }
    }

    /// Parses a stored code; anything else is not a corrective action.
    pub fn parse(code: &str) -> Option<CorrectiveAction> {
        CorrectiveAction::ALL.into_iter().find(|a| a.code() == code)
    }

    /// What the bench reads.
    pub fn label(self) -> &'static str {
        match self {
            CorrectiveAction::Recalibrated => "Recalibrated",
            CorrectiveAction::NewReagentLot => "New reagent lot / reagent replaced",
            CorrectiveAction::NewControl => "New control vial or lot",
            CorrectiveAction::Maintenance => "Maintenance performed",
            CorrectiveAction::Service => "Service engineer called",
            CorrectiveAction::Rerun => "Control re-run (random error suspected)",
            CorrectiveAction::Other => "Other (describe)",
        }
    }

    /// Whether the note must say what was done.
    pub fn needs_note(self) -> bool {
        match self {
            CorrectiveAction::Other => true,
            CorrectiveAction::Recalibrated
            | CorrectiveAction::NewReagentLot
            | CorrectiveAction::NewControl
            | CorrectiveAction::Maintenance
            | CorrectiveAction::Service
            | CorrectiveAction::Rerun => false,
        }
    }
}

/// Where a QC run's results came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunSource {
    /// Typed at the bench.
    Manual,
    /// Sent by the instrument with its control sample id.
    Instrument,
    /// The patient moving average went out of its limits (no control material was run).
    PatientAverage,
}

impl RunSource {
    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            RunSource::Manual => "manual",
            RunSource::Instrument => "instrument",
            RunSource::PatientAverage => "patient_average",
        }
    }

    /// Parses a stored code; anything else is not a run source.
    pub fn parse(code: &str) -> Option<RunSource> {
        [RunSource::Manual, RunSource::Instrument, RunSource::PatientAverage]
            .into_iter()
            .find(|s| s.code() == code)
    }

    /// What the bench reads.
    pub fn words(self) -> &'static str {
        match self {
            RunSource::Manual => "typed at the bench",
            RunSource::Instrument => "from the instrument",
            RunSource::PatientAverage => "patient moving average",
        }
    }
}

/// Whose mean and SD a control target holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetSource {
    /// The material's package insert (the starting point for a new lot).
    Manufacturer,
    /// The lab's own, established from its runs (CLSI C24).
    Lab,
}

impl TargetSource {
    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            TargetSource::Manufacturer => "manufacturer",
            TargetSource::Lab => "lab",
        }
    }

    /// Parses a stored code; anything else is not a target source.
    pub fn parse(code: &str) -> Option<TargetSource> {
        [TargetSource::Manufacturer, TargetSource::Lab].into_iter().find(|s| s.code() == code)
    }

    /// What the bench reads.
    pub fn words(self) -> &'static str {
        match self {
            TargetSource::Manufacturer => "manufacturer's insert",
            TargetSource::Lab => "lab's own",
        }
    }
}

/// The rule a recorded QC rejection or warning names: a Westgard rule, or the patient moving
/// average (which has no control results).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRule {
    /// A Westgard rule.
    Westgard(WestgardRule),
    /// The patient moving average left its control limits; stored as "MA".
    MovingAverage,
}

impl ControlRule {
    /// The stored and shown code ("1-3s", "MA").
    pub fn code(self) -> &'static str {
        match self {
            ControlRule::Westgard(rule) => rule.code(),
            ControlRule::MovingAverage => "MA",
        }
    }

    /// Parses a stored code; anything else is not a control rule.
    pub fn parse(code: &str) -> Option<ControlRule> {
        if code == "MA" {
            Some(ControlRule::MovingAverage)
        } else {
            WestgardRule::parse(code).map(ControlRule::Westgard)
        }
    }
}

impl Serialize for ControlRule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for ControlRule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        ControlRule::parse(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("{code:?} is not a QC rule")))
    }
}

/// A violation as it is kept with its run: the rule and what the technologist reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedViolation {
    /// The rule.
    pub rule: ControlRule,
    /// "2-2s level 1 across runs: run 7 +2.30 SD, run 8 +2.10 SD".
    pub detail: String,
}

impl RecordedViolation {
    /// The detail without the rule code it starts with, for a view that shows the rule beside
    /// it ("level 1 +3.75 SD" beside "1-3s").
    pub fn detail_without_rule(&self) -> &str {
        self.detail
            .strip_prefix(self.rule.code())
            .map(|rest| rest.trim_start_matches(':').trim_start())
            .unwrap_or(&self.detail)
    }
}

impl From<&Violation> for RecordedViolation {
    fn from(v: &Violation) -> RecordedViolation {
        RecordedViolation { rule: ControlRule::Westgard(v.rule), detail: v.detail.clone() }
    }
}

/// Where a violation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// One result on its own (1-2s, 1-3s).
    Result,
    /// The current run's results, across levels (R-4s, 2-2s, 2of3-2s, 3-1s).
    WithinRun,
    /// One level's results in order, across runs (and its replicates within a run).
    Level(u8),
    /// All levels merged in chronological order: run, then level (4-1s, 10x, 8x, 12x, 6x, 9x).
    AcrossLevels,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Result => f.write_str("single result"),
            Scope::WithinRun => f.write_str("within run"),
            Scope::Level(level) => write!(f, "level {level} across runs"),
            Scope::AcrossLevels => f.write_str("across levels"),
        }
    }
}

/// One rule violated by a group of control results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// The rule.
    pub rule: WestgardRule,
    /// Where the rule found it.
    pub scope: Scope,
    /// The ids of the control results that together violate the rule, in chronological order.
    /// When several overlapping windows of one scope violate (eleven results on one side for
    /// 10x), their results are listed together.
    pub results: Vec<i64>,
    /// What the technologist reads: "2-2s level 1 across runs: run 7 +2.30 SD, run 8 +2.10 SD".
    pub detail: String,
}

/// The verdict on one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunVerdict {
    /// Accepted, warning or rejected.
    pub status: QcStatus,
    /// Every violation involving the run, in the rule set's order.
    pub violations: Vec<Violation>,
}

impl RunVerdict {
    fn from_violations(violations: Vec<Violation>) -> RunVerdict {
        let status = if violations.iter().any(|v| !v.rule.is_warning()) {
            QcStatus::Rejected
        } else if violations.is_empty() {
            QcStatus::Accepted
        } else {
            QcStatus::Warning
        };
        RunVerdict { status, violations }
    }
}

/// Judges a new run of control results against the rules.
///
/// `history` holds earlier results (any order; they are put in chronological order by run,
/// then level) since the last documented corrective action. `run` holds the new run's
/// results; they are the current run whatever their `run` field says. Only violations that
/// involve at least one result of `run` are reported.
pub fn evaluate_run(
    history: &[ControlResult],
    run: &[ControlResult],
    rules: &RuleSet,
) -> RunVerdict {
    let mut history = history.to_vec();
    history.sort_by_key(|r| (r.run, r.level));
    let mut run = run.to_vec();
    run.sort_by_key(|r| r.level);
    judge(&history, &run, rules)
}

/// The verdict on one run of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvaluation {
    /// The run's identifier.
    pub run: i64,
    /// Its verdict, with the results before it as history.
    pub verdict: RunVerdict,
}

/// Judges every run of a series in turn, each with the runs before it as history, as
/// [`evaluate_run`] would have judged it when it was measured.
///
/// Pass the results since the last documented corrective action: this function cannot know
/// where a lab reset its history.
pub fn evaluate_series(results: &[ControlResult], rules: &RuleSet) -> Vec<RunEvaluation> {
    let mut sorted = results.to_vec();
    sorted.sort_by_key(|r| (r.run, r.level));
    let mut evaluations = Vec::new();
    let mut start = 0;
    while start < sorted.len() {
        let run = sorted[start].run;
        let end = start + sorted[start..].iter().take_while(|r| r.run == run).count();
        let verdict = judge(&sorted[..start], &sorted[start..end], rules);
        evaluations.push(RunEvaluation { run, verdict });
        start = end;
    }
    evaluations
}

/// For the Levey-Jennings chart: each control result that took part in a violation, with the
/// rules it took part in (in [`WestgardRule::ALL`] order). A result of an earlier run that
/// completes a later run's violation is marked too.
pub fn rules_by_result(evaluations: &[RunEvaluation]) -> BTreeMap<i64, Vec<WestgardRule>> {
    let mut marks: BTreeMap<i64, BTreeSet<WestgardRule>> = BTreeMap::new();
    for violation in evaluations.iter().flat_map(|e| &e.verdict.violations) {
        for id in &violation.results {
            marks.entry(*id).or_default().insert(violation.rule);
        }
    }
    marks.into_iter().map(|(id, rules)| (id, rules.into_iter().collect())).collect()
}

/// The sigma metric of a method: `(TEa% − |bias%|) / CV%`, all at the same concentration.
///
/// `None` when the CV is not a positive number (sigma is undefined) or an input is not a
/// number. A bias larger than the allowable error gives a negative sigma.
pub fn sigma_metric(tea_percent: f64, bias_percent: f64, cv_percent: f64) -> Option<f64> {
    let finite = tea_percent.is_finite() && bias_percent.is_finite() && cv_percent.is_finite();
    (finite && cv_percent > 0.0).then(|| (tea_percent - bias_percent.abs()) / cv_percent)
}

/// The QC a method's sigma calls for (Westgard Sigma Rules, DOMAIN.md §4).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SigmaRecommendation {
    /// The rejection rules to apply.
    pub rules: RuleSet,
    /// N: control measurements per run.
    pub controls_per_run: u8,
    /// R: runs the rules look across.
    pub runs: u8,
    /// Why, and what else to consider, in one line.
    pub note: &'static str,
}

/// Looks up the Westgard Sigma Rules for a method's sigma and the number of control levels it
/// runs (three levels uses the 3-level table, fewer the 2-level one). Each band includes its
/// lower bound: sigma 6.0 needs only 1-3s. Where the table offers two designs for a band
/// (N = 4, R = 1 or N = 2, R = 2) the first is returned and the note names the other. A sigma
/// below 3, or not a number, gets maximum QC and a note that the method is not fit for
/// purpose.
pub fn recommend(sigma: f64, levels: u8) -> SigmaRecommendation {
    use WestgardRule::*;
    let recommendation = |rules: &[WestgardRule], n, r, note| SigmaRecommendation {
        rules: RuleSet::new(rules.iter().copied()),
        controls_per_run: n,
        runs: r,
        note,
    };
    if levels >= 3 {
        if sigma >= 6.0 {
            recommendation(&[OneThreeS], 3, 1, "6 sigma or better: 1-3s alone, one run of 3 levels")
        } else if sigma >= 5.0 {
            recommendation(
                &[OneThreeS, TwoOfThreeTwoS, RFourS],
                3,
                1,
                "5 to 6 sigma: 1-3s/2of3-2s/R-4s, one run of 3 levels",
            )
        } else if sigma >= 4.0 {
            recommendation(
                &[OneThreeS, TwoOfThreeTwoS, RFourS, ThreeOneS],
                3,
                1,
                "4 to 5 sigma: 1-3s/2of3-2s/R-4s/3-1s, one run of 3 levels",
            )
        } else if sigma >= 3.0 {
            recommendation(
                &[OneThreeS, TwoOfThreeTwoS, RFourS, ThreeOneS, SixX],
                3,
                2,
                "3 to 4 sigma, maximum QC: 1-3s/2of3-2s/R-4s/3-1s/6x across 2 runs \
                 (or 9x across 3 runs)",
            )
        } else {
            recommendation(
                &[OneThreeS, TwoOfThreeTwoS, RFourS, ThreeOneS, SixX],
                3,
                2,
                "below 3 sigma the method is not fit for purpose: run maximum QC and improve \
                 or replace the method",
            )
        }
    } else if sigma >= 6.0 {
        recommendation(&[OneThreeS], 2, 1, "6 sigma or better: 1-3s alone, 2 controls per run")
    } else if sigma >= 5.0 {
        recommendation(
            &[OneThreeS, TwoTwoS, RFourS],
            2,
            1,
            "5 to 6 sigma: 1-3s/2-2s/R-4s, 2 controls per run",
        )
    } else if sigma >= 4.0 {
        recommendation(
            &[OneThreeS, TwoTwoS, RFourS, FourOneS],
            4,
            1,
            "4 to 5 sigma: 1-3s/2-2s/R-4s/4-1s with 4 controls in one run (or 2 controls \
             across 2 runs)",
        )
    } else if sigma >= 3.0 {
        recommendation(
            &[OneThreeS, TwoTwoS, RFourS, FourOneS, EightX],
            4,
            2,
            "3 to 4 sigma, maximum QC: 1-3s/2-2s/R-4s/4-1s/8x with 4 controls across 2 runs \
             (or 2 controls across 4 runs)",
        )
    } else {
        recommendation(
            &[OneThreeS, TwoTwoS, RFourS, FourOneS, EightX],
            4,
            2,
            "below 3 sigma the method is not fit for purpose: run maximum QC and improve or \
             replace the method",
        )
    }
}

/// Summary statistics of a control's results.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ControlStatistics {
    /// Number of results.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divisor n − 1); 0 for a single result.
    pub sd: f64,
    /// Coefficient of variation, `100 · sd / |mean|`; NaN when the mean is 0, where a CV means
    /// nothing.
    pub cv_percent: f64,
    /// `100 · (mean − target) / |target|` when a non-zero target mean was given: positive when
    /// the method reads high.
    pub bias_percent: Option<f64>,
}

/// The mean, SD, CV and bias of a control's results; `None` when there are none.
pub fn statistics(values: &[f64], target_mean: Option<f64>) -> Option<ControlStatistics> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    // Two passes (mean first, then squared deviations): the one-pass formula loses every digit
    // when the SD is small next to the mean, which is the usual case for a control.
    let sd = if n == 1 {
        0.0
    } else {
        let squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
        (squares / (n - 1) as f64).sqrt()
    };
    let cv_percent = if mean == 0.0 { f64::NAN } else { 100.0 * sd / mean.abs() };
    let bias_percent = target_mean.filter(|t| *t != 0.0).map(|t| 100.0 * (mean - t) / t.abs());
    Some(ControlStatistics { n, mean, sd, cv_percent, bias_percent })
}

/// A new lot's own target mean and SD, from its first [`RUNS_TO_ESTABLISH_TARGET`] results
/// (CLSI C24); `None` until there are that many. Later results are ignored: the target is
/// fixed once set, so a drifting method does not drag its own limits along.
pub fn establish_target(values: &[f64]) -> Option<(f64, f64)> {
    let first = values.get(..RUNS_TO_ESTABLISH_TARGET)?;
    statistics(first, None).map(|s| (s.mean, s.sd))
}

/// A patient-based real-time QC rule: the moving average of patient results of one test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MovingAverageRule {
    /// How many included patient results are averaged.
    pub window: usize,
    /// Results below this are left out: they say something about the patient, not the method.
    pub truncate_low: Option<f64>,
    /// Results above this are left out.
    pub truncate_high: Option<f64>,
    /// The expected average (the chart's centre line).
    pub target: f64,
    /// An average below this is out of control.
    pub lower_limit: f64,
    /// An average above this is out of control.
    pub upper_limit: f64,
}

impl MovingAverageRule {
    /// Whether a patient result enters the average: a number within the truncation limits,
    /// limits included.
    pub fn includes(&self, value: f64) -> bool {
        value.is_finite()
            && self.truncate_low.is_none_or(|low| value >= low)
            && self.truncate_high.is_none_or(|high| value <= high)
    }
}

/// One point of the moving-average chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MovingAveragePoint {
    /// Index into the values of the newest result in the window.
    pub index: usize,
    /// The average of the window.
    pub average: f64,
    /// Whether the average is strictly outside the control limits.
    pub out_of_control: bool,
}

/// The moving average of patient results in the order they were measured: one point for each
/// included result once `window` results have been included. Truncated results (and values
/// that are not numbers) are skipped and produce no point. A window of 0 produces no points.
pub fn moving_average(rule: &MovingAverageRule, values: &[f64]) -> Vec<MovingAveragePoint> {
    let mut points = Vec::new();
    if rule.window == 0 {
        return points;
    }
    let mut window = VecDeque::with_capacity(rule.window);
    for (index, &value) in values.iter().enumerate() {
        if !rule.includes(value) {
            continue;
        }
        if window.len() == rule.window {
            window.pop_front();
        }
        window.push_back(value);
        if window.len() == rule.window {
            // Summed afresh for each point: a running sum drifts over a day of results.
            let average = window.iter().sum::<f64>() / rule.window as f64;
            let out_of_control = average < rule.lower_limit || average > rule.upper_limit;
            points.push(MovingAveragePoint { index, average, out_of_control });
        }
    }
    points
}

/// What a rule counts.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// One result with |z| > limit.
    Single { limit: f64 },
    /// `count` consecutive results all above +limit or all below −limit; a limit of 0 means
    /// "on the same side of the mean".
    Consecutive { count: usize, limit: f64 },
    /// Two of three consecutive results beyond the same 2 SD limit.
    TwoOfThree,
    /// One result above +2 SD and another below −2 SD in the same run.
    Range,
}

/// Which series a rule is applied to.
#[derive(Debug, Clone, Copy)]
enum Series {
    /// The current run's results, in level order; windows must mix levels.
    WithinRun,
    /// Each level's results in chronological order.
    EachLevel,
    /// All levels in chronological order; windows must mix levels.
    Merged,
}

/// A control result placed in a series.
#[derive(Debug, Clone, Copy)]
struct Point {
    id: i64,
    run: i64,
    level: u8,
    z: f64,
    current: bool,
}

impl Point {
    fn new(result: &ControlResult, current: bool) -> Point {
        Point { id: result.id, run: result.run, level: result.level, z: result.z, current }
    }
}

/// The evaluator proper. `history` is sorted by (run, level), `run` by level.
fn judge(history: &[ControlResult], run: &[ControlResult], rules: &RuleSet) -> RunVerdict {
    let lookback = WINDOW_MAX - 1;
    let current: Vec<Point> = run.iter().map(|r| Point::new(r, true)).collect();
    let merged: Vec<Point> = history[history.len().saturating_sub(lookback)..]
        .iter()
        .map(|r| Point::new(r, false))
        .chain(current.iter().copied())
        .collect();
    // Only a level measured in this run can have a violation that involves this run.
    let levels: BTreeSet<u8> = run.iter().map(|r| r.level).collect();
    let by_level: Vec<(u8, Vec<Point>)> = levels
        .into_iter()
        .map(|level| {
            let mut series: Vec<Point> = history
                .iter()
                .rev()
                .filter(|r| r.level == level)
                .take(lookback)
                .map(|r| Point::new(r, false))
                .collect();
            series.reverse();
            series.extend(current.iter().filter(|p| p.level == level));
            (level, series)
        })
        .collect();

    let mut violations = Vec::new();
    for &rule in rules.rules() {
        let shape = rule.shape();
        if let Shape::Single { limit } = shape {
            for p in current.iter().filter(|p| p.z.abs() > limit) {
                violations.push(violation(rule, Scope::Result, &[*p]));
            }
            continue;
        }
        for series in rule.series() {
            let found: Vec<(Scope, Vec<Point>)> = match series {
                Series::WithinRun => vec![(Scope::WithinRun, involved(shape, &current, true))],
                Series::EachLevel => by_level
                    .iter()
                    .map(|(level, s)| (Scope::Level(*level), involved(shape, s, false)))
                    .collect(),
                Series::Merged => vec![(Scope::AcrossLevels, involved(shape, &merged, true))],
            };
            for (scope, points) in found {
                if !points.is_empty() {
                    violations.push(violation(rule, scope, &points));
                }
            }
        }
    }
    RunVerdict::from_violations(violations)
}

/// The results of `series` that take part in a violation of `shape` involving a current
/// result, in series order. With `mixed_levels`, a group confined to one level does not count
/// (it is the per-level scope's to report).
fn involved(shape: Shape, series: &[Point], mixed_levels: bool) -> Vec<Point> {
    let mut marked = vec![false; series.len()];
    match shape {
        Shape::Single { .. } => unreachable!("single-result rules are judged result by result"),
        Shape::Range => {
            let above = series.iter().any(|p| p.current && p.z > 2.0);
            let below = series.iter().any(|p| p.current && p.z < -2.0);
            if above && below {
                for (m, p) in marked.iter_mut().zip(series) {
                    *m = p.current && p.z.abs() > 2.0;
                }
            }
        }
        Shape::Consecutive { count, limit } => {
            // Streak lengths ending at each result: a window of `count` ending at `i` violates
            // when the streak at `i` is at least `count` long, and is confined to one level when
            // the same-level streak is.
            let (mut above, mut below, mut same_level) = (0, 0, 0);
            for (i, p) in series.iter().enumerate() {
                above = if p.z > limit { above + 1 } else { 0 };
                below = if p.z < -limit { below + 1 } else { 0 };
                same_level =
                    if i > 0 && series[i - 1].level == p.level { same_level + 1 } else { 1 };
                let one_level = mixed_levels && same_level >= count;
                // Current results are the tail of every series, so a window ending at a current
                // result is exactly a window that involves the current run.
                if p.current && above.max(below) >= count && !one_level {
                    marked[i + 1 - count..=i].fill(true);
                }
            }
        }
        Shape::TwoOfThree => {
            // Two of any three consecutive results beyond the same limit: two such results at
            // most one result apart. Only the two count; the third may be anywhere.
            for k in 0..series.len() {
                if !series[k].current {
                    continue;
                }
                for j in k.saturating_sub(2)..k {
                    let (a, b) = (series[j], series[k]);
                    let same_limit = (a.z > 2.0 && b.z > 2.0) || (a.z < -2.0 && b.z < -2.0);
                    if same_limit && !(mixed_levels && a.level == b.level) {
                        marked[j] = true;
                        marked[k] = true;
                    }
                }
            }
        }
    }
    series.iter().zip(marked).filter(|(_, m)| *m).map(|(p, _)| *p).collect()
}

/// A violation of `rule` by `points`, with the sentence the technologist reads.
fn violation(rule: WestgardRule, scope: Scope, points: &[Point]) -> Violation {
    let listed: Vec<String> = points
        .iter()
        .map(|p| match scope {
            Scope::Result | Scope::WithinRun => format!("level {} {:+.2} SD", p.level, p.z),
            Scope::Level(_) => format!("run {} {:+.2} SD", p.run, p.z),
            Scope::AcrossLevels => format!("run {} level {} {:+.2} SD", p.run, p.level, p.z),
        })
        .collect();
    let detail = match scope {
        Scope::Result => format!("{}: {}", rule.code(), listed.join(", ")),
        _ => format!("{} {scope}: {}", rule.code(), listed.join(", ")),
    };
    Violation { rule, scope, results: points.iter().map(|p| p.id).collect(), detail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WestgardRule::*;

    /// No violations, as [`check`] writes them.
    const NONE: [&str; 0] = [];

    /// Control results from runs written as `(level, z)` pairs; run numbers start at 1 and ids
    /// count up from 1 in the order written.
    fn runs(runs: &[&[(u8, f64)]]) -> Vec<ControlResult> {
        let mut id = 0;
        let mut results = Vec::new();
        for (r, run) in runs.iter().enumerate() {
            for &(level, z) in *run {
                id += 1;
                results.push(ControlResult { id, run: r as i64 + 1, level, z });
            }
        }
        results
    }

    /// Judges the last run with the others as history under `rules`; returns each violation
    /// as "rule scope ids", e.g. "2-2s level 1 across runs [1, 3]".
    fn check(written: &[&[(u8, f64)]], rules: &[WestgardRule]) -> Vec<String> {
        verdict(written, rules)
            .violations
            .iter()
            .map(|v| format!("{} {} {:?}", v.rule, v.scope, v.results))
            .collect()
    }

    fn verdict(written: &[&[(u8, f64)]], rules: &[WestgardRule]) -> RunVerdict {
        let results = runs(written);
        let last = results.last().map_or(0, |r| r.run);
        let (history, run): (Vec<_>, Vec<_>) = results.iter().partition(|r| r.run < last);
        evaluate_run(&history, &run, &RuleSet::new(rules.iter().copied()))
    }

    /// `n` runs of two levels at the same z, then nothing else.
    fn steady(n: usize, z1: f64, z2: f64) -> Vec<[(u8, f64); 2]> {
        vec![[(1, z1), (2, z2)]; n]
    }

    fn as_runs(runs: &[[(u8, f64); 2]]) -> Vec<&[(u8, f64)]> {
        runs.iter().map(|r| &r[..]).collect()
    }

    #[test]
    fn codes_read_back_as_the_same_rule() {
        for rule in WestgardRule::ALL {
            assert_eq!(WestgardRule::parse(rule.code()), Some(rule));
            assert_eq!(rule.to_string(), rule.code());
            assert!(!rule.describe().is_empty());
        }
        assert_eq!(WestgardRule::parse("r-4s"), Some(RFourS));
        assert_eq!(WestgardRule::parse("2OF3-2S"), Some(TwoOfThreeTwoS));
        assert_eq!(WestgardRule::parse("1_3s"), None);
        assert_eq!(WestgardRule::parse("7x"), None);
        let codes: Vec<&str> = WestgardRule::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.join(", "), KNOWN_CODES);
    }

    #[test]
    fn only_1_2s_is_a_warning() {
        let warnings: Vec<_> = WestgardRule::ALL.into_iter().filter(|r| r.is_warning()).collect();
        assert_eq!(warnings, [OneTwoS]);
    }

    #[test]
    fn no_rule_looks_further_back_than_the_longest_window() {
        let longest = WestgardRule::ALL
            .iter()
            .map(|r| match r.shape() {
                Shape::Single { .. } | Shape::Range => 1,
                Shape::Consecutive { count, .. } => count,
                Shape::TwoOfThree => 3,
            })
            .max();
        assert_eq!(longest, Some(WINDOW_MAX));
    }

    #[test]
    fn rule_sets_are_stored_as_comma_separated_codes() {
        assert_eq!(RuleSet::classic().to_string(), "1-2s,1-3s,2-2s,R-4s,4-1s,10x");
        assert_eq!(RuleSet::three_level().to_string(), "1-2s,1-3s,2of3-2s,R-4s,3-1s,6x");
        for set in [RuleSet::classic(), RuleSet::three_level()] {
            assert_eq!(RuleSet::parse(&set.to_string()), Ok(set));
        }
        let typed: RuleSet = " 1-3s , r-4s,2-2s ".parse().unwrap();
        assert_eq!(typed.rules(), [OneThreeS, RFourS, TwoTwoS]);
        assert_eq!(typed.to_string(), "1-3s,R-4s,2-2s");
        assert!(typed.contains(RFourS) && !typed.contains(TenX));
    }

    #[test]
    fn a_stored_rule_set_with_an_unknown_code_is_refused() {
        let e = RuleSet::parse("1-3s,2-3s").unwrap_err();
        assert_eq!(e, RuleSetError::Unknown { code: "2-3s".into() });
        assert_eq!(
            e.to_string(),
            "\"2-3s\" is not a Westgard rule; the rules are 1-2s, 1-3s, 2-2s, R-4s, 4-1s, 10x, \
             8x, 12x, 2of3-2s, 3-1s, 6x, 9x"
        );
        assert_eq!(RuleSet::parse("1-3s,"), Err(RuleSetError::Unknown { code: "".into() }));
        assert_eq!(RuleSet::parse("  "), Err(RuleSetError::Empty));
        assert_eq!(
            RuleSet::parse("1-3s,2-2s,1-3S"),
            Err(RuleSetError::Duplicate { code: "1-3s".into() })
        );
        // Built in code, a repeat is simply kept once.
        assert_eq!(RuleSet::new([OneThreeS, OneThreeS, TenX]).to_string(), "1-3s,10x");
    }

    #[test]
    fn z_scores_need_a_positive_sd() {
        assert_eq!(z_score(105.0, 100.0, 2.5), 2.0);
        assert_eq!(z_score(95.0, 100.0, 2.5), -2.0);
        assert!(z_score(105.0, 100.0, 0.0).is_nan());
        assert!(z_score(105.0, 100.0, -1.0).is_nan());
        assert!(z_score(105.0, 100.0, f64::NAN).is_nan());
    }

    #[test]
    fn a_run_within_2_sd_is_accepted() {
        let v = verdict(&[&[(1, 1.9), (2, -2.0)]], &RuleSet::classic().0);
        assert_eq!(v, RunVerdict { status: QcStatus::Accepted, violations: vec![] });
    }

    #[test]
    fn rule_1_2s_warns_strictly_beyond_2_sd() {
        assert_eq!(check(&[&[(1, 2.0), (2, -2.0)]], &[OneTwoS]), NONE);
        assert_eq!(check(&[&[(1, 2.01), (2, -0.5)]], &[OneTwoS]), ["1-2s single result [1]"]);
        let v = verdict(&[&[(1, -2.3), (2, 0.4)]], &RuleSet::classic().0);
        assert_eq!(v.status, QcStatus::Warning);
        assert_eq!(v.violations[0].detail, "1-2s: level 1 -2.30 SD");
    }

    #[test]
    fn rule_1_3s_rejects_strictly_beyond_3_sd() {
        assert_eq!(check(&[&[(1, 3.0), (2, -3.0)]], &[OneThreeS]), NONE);
        assert_eq!(check(&[&[(1, 0.2), (2, -3.4)]], &[OneThreeS]), ["1-3s single result [2]"]);
        // Each result beyond 3 SD is its own violation.
        assert_eq!(
            check(&[&[(1, 3.2), (2, -3.4)]], &[OneThreeS]),
            ["1-3s single result [1]", "1-3s single result [2]"]
        );
        // Only the current run is judged: a 1-3s in history is not reported again.
        assert_eq!(check(&[&[(1, 3.5), (2, 0.0)], &[(1, 0.5), (2, 0.0)]], &[OneThreeS]), NONE);
    }

    #[test]
    fn rule_2_2s_within_the_run_across_levels() {
        assert_eq!(check(&[&[(1, 2.3), (2, 2.1)]], &[TwoTwoS]), ["2-2s within run [1, 2]"]);
        assert_eq!(check(&[&[(1, -2.3), (2, -2.1)]], &[TwoTwoS]), ["2-2s within run [1, 2]"]);
        // Opposite limits are R-4s's business, not 2-2s's.
        assert_eq!(check(&[&[(1, 2.3), (2, -2.1)]], &[TwoTwoS]), NONE);
        // Exactly at 2 SD does not count.
        assert_eq!(check(&[&[(1, 2.3), (2, 2.0)]], &[TwoTwoS]), NONE);
        // With three levels the two must be consecutive in level order: levels 1 and 3 with
        // level 2 between them are 2of3-2s, not 2-2s.
        assert_eq!(check(&[&[(1, 2.3), (2, 0.1), (3, 2.5)]], &[TwoTwoS]), NONE);
        assert_eq!(
            check(&[&[(1, 0.1), (2, 2.3), (3, 2.5)]], &[TwoTwoS]),
            ["2-2s within run [2, 3]"]
        );
    }

    #[test]
    fn rule_2_2s_across_runs_within_a_level() {
        let v = verdict(&[&[(1, 2.3), (2, 0.4)], &[(1, 2.1), (2, -0.2)]], &[TwoTwoS]);
        assert_eq!(v.status, QcStatus::Rejected);
        assert_eq!(v.violations.len(), 1);
        assert_eq!(v.violations[0].results, [1, 3]);
        assert_eq!(v.violations[0].scope, Scope::Level(1));
        assert_eq!(
            v.violations[0].detail,
            "2-2s level 1 across runs: run 1 +2.30 SD, run 2 +2.10 SD"
        );
        // Only the last two runs: a run between them breaks the pair.
        assert_eq!(
            check(
                &[&[(1, 2.3), (2, 0.4)], &[(1, 1.0), (2, 0.0)], &[(1, 2.1), (2, 0.0)]],
                &[TwoTwoS]
            ),
            NONE
        );
        assert_eq!(check(&[&[(1, 2.0), (2, 0.4)], &[(1, 2.1), (2, 0.0)]], &[TwoTwoS]), NONE);
        // Replicates of one level in one run are consecutive results of that level.
        assert_eq!(
            check(&[&[(1, 2.2), (1, 2.4), (2, 0.0), (2, 0.3)]], &[TwoTwoS]),
            ["2-2s level 1 across runs [1, 2]"]
        );
    }

    #[test]
    fn rule_2_2s_does_not_pair_different_levels_of_different_runs() {
        // Level 2 of run 1 and level 1 of run 2 are neighbours in the merged series, but the
        // 2_2s row of DOMAIN.md §4 names only the within-run and the within-level scopes.
        assert_eq!(check(&[&[(1, 0.0), (2, 2.5)], &[(1, 2.5), (2, 0.0)]], &[TwoTwoS]), NONE);
    }

    #[test]
    fn rule_r_4s_within_the_run_only() {
        assert_eq!(check(&[&[(1, 2.4), (2, -2.2)]], &[RFourS]), ["R-4s within run [1, 2]"]);
        let v = verdict(&[&[(1, 2.4), (2, -2.2)]], &[RFourS]);
        assert_eq!(v.violations[0].detail, "R-4s within run: level 1 +2.40 SD, level 2 -2.20 SD");
        // Never across runs.
        assert_eq!(check(&[&[(1, 2.4), (2, 0.0)], &[(1, -2.4), (2, 0.0)]], &[RFourS]), NONE);
        // Both limits strict: −2.0 is not below −2 SD.
        assert_eq!(check(&[&[(1, 2.4), (2, -2.0)]], &[RFourS]), NONE);
        // A range above 4 SD without one result beyond each limit is not R-4s.
        assert_eq!(check(&[&[(1, 1.8), (2, -2.5)]], &[RFourS]), NONE);
        // Any two results of the run: levels 1 and 3, and replicates of one level.
        assert_eq!(
            check(&[&[(1, 2.4), (2, 0.0), (3, -2.2)]], &[RFourS]),
            ["R-4s within run [1, 3]"]
        );
        assert_eq!(
            check(&[&[(1, 2.4), (1, -2.6), (2, 0.3), (2, 0.1)]], &[RFourS]),
            ["R-4s within run [1, 2]"]
        );
    }

    #[test]
    fn rule_4_1s_across_runs_within_a_level() {
        let written = [
            &[(1, 1.2), (2, 0.0)][..],
            &[(1, 1.5), (2, -0.5)],
            &[(1, 1.1), (2, 0.5)],
            &[(1, 1.3), (2, -0.1)],
        ];
        assert_eq!(check(&written, &[FourOneS]), ["4-1s level 1 across runs [1, 3, 5, 7]"]);
        // Exactly 1 SD breaks the streak.
        let mut at_limit = written;
        at_limit[1] = &[(1, 1.0), (2, -0.5)];
        assert_eq!(check(&at_limit, &[FourOneS]), NONE);
        // Three are not four.
        assert_eq!(check(&written[1..], &[FourOneS]), NONE);
    }

    #[test]
    fn rule_4_1s_across_levels_two_levels_by_two_runs() {
        let written = [&[(1, -1.2), (2, -1.5)][..], &[(1, -1.1), (2, -1.3)]];
        assert_eq!(check(&written, &[FourOneS]), ["4-1s across levels [1, 2, 3, 4]"]);
        let v = verdict(&written, &[FourOneS]);
        assert_eq!(
            v.violations[0].detail,
            "4-1s across levels: run 1 level 1 -1.20 SD, run 1 level 2 -1.50 SD, \
             run 2 level 1 -1.10 SD, run 2 level 2 -1.30 SD"
        );
        // The merged series runs on across runs: level 2 of run 1 to level 1 of run 3.
        let written = [&[(1, 0.0), (2, 1.5)][..], &[(1, 1.2), (2, 1.1)], &[(1, 1.4), (2, 0.3)]];
        assert_eq!(check(&written, &[FourOneS]), ["4-1s across levels [2, 3, 4, 5]"]);
        // Without any result beyond 2 SD: no 1-2s gate keeps 4-1s from rejecting.
        assert_eq!(verdict(&written, &RuleSet::classic().0).status, QcStatus::Rejected);
    }

    #[test]
    fn a_4_1s_streak_across_levels_counts_when_it_ends_on_any_result_of_this_run() {
        // Level 2 of run 1, both levels of run 2 and level 1 of run 3 are beyond +1 SD; level 2
        // of run 3, last in order, is back near the mean. Neither level has four on its own.
        let written = [&[(1, 0.3), (2, 1.5)][..], &[(1, 1.5), (2, 1.5)], &[(1, 1.5), (2, -0.4)]];
        assert_eq!(check(&written, &[FourOneS]), ["4-1s across levels [2, 3, 4, 5]"]);
        assert_eq!(verdict(&written, &[FourOneS]).status, QcStatus::Rejected);
        // Had the streak ended in the runs before, this run would not be judged by it.
        let written = [&[(1, 1.5), (2, 1.5)][..], &[(1, 1.5), (2, 1.5)], &[(1, -0.4), (2, 0.2)]];
        assert_eq!(check(&written, &[FourOneS]), NONE);
    }

    #[test]
    fn a_10x_streak_across_levels_counts_when_it_ends_on_any_result_of_this_run() {
        // Nine on the same side up to run 5, the tenth is level 1 of run 6; level 2 of run 6
        // is on the other side.
        let mut written = steady(6, 0.5, 0.5);
        written[0][0].1 = -0.5;
        written[5][1].1 = -0.5;
        assert_eq!(
            check(&as_runs(&written), &[TenX]),
            ["10x across levels [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]"]
        );
    }

    #[test]
    fn rule_10x_across_runs_within_a_level() {
        let mut written = steady(10, 0.4, 0.0);
        let expected = ["10x level 1 across runs [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]"];
        assert_eq!(check(&as_runs(&written), &[TenX]), expected);
        // A result exactly at the mean is on neither side.
        written[4][0].1 = 0.0;
        assert_eq!(check(&as_runs(&written), &[TenX]), NONE);
        // Nine are not ten.
        assert_eq!(check(&as_runs(&steady(9, 0.4, 0.0)), &[TenX]), NONE);
    }

    #[test]
    fn rule_10x_across_levels_five_runs_of_two_levels() {
        let written = steady(5, -0.3, -0.8);
        assert_eq!(
            check(&as_runs(&written), &[TenX]),
            ["10x across levels [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
        );
        // Eleven in a row: both windows ending in the current run are listed together.
        let mut written = steady(6, -0.3, -0.8);
        written[0][0].1 = 0.5;
        assert_eq!(
            check(&as_runs(&written), &[TenX]),
            ["10x across levels [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]"]
        );
    }

    #[test]
    fn rules_8x_and_12x_count_eight_and_twelve() {
        assert_eq!(
            check(&as_runs(&steady(4, 0.3, 0.6)), &[EightX, TwelveX]),
            ["8x across levels [1, 2, 3, 4, 5, 6, 7, 8]"]
        );
        assert_eq!(
            check(&as_runs(&steady(8, 0.3, -0.6)), &[EightX, TwelveX]),
            [
                "8x level 1 across runs [1, 3, 5, 7, 9, 11, 13, 15]",
                "8x level 2 across runs [2, 4, 6, 8, 10, 12, 14, 16]"
            ]
        );
        assert_eq!(
            check(&as_runs(&steady(6, 0.3, 0.6)), &[TwelveX]),
            ["12x across levels [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]"]
        );
        assert_eq!(check(&as_runs(&steady(5, 0.3, 0.6))[1..], &[TwelveX]), NONE);
    }

    #[test]
    fn rule_2of3_2s_within_the_run() {
        // Levels 1 and 3 beyond +2 SD, level 2 between them.
        assert_eq!(
            check(&[&[(1, 2.3), (2, 0.1), (3, 2.5)]], &[TwoOfThreeTwoS]),
            ["2of3-2s within run [1, 3]"]
        );
        assert_eq!(check(&[&[(1, 2.3), (2, -2.4), (3, 2.0)]], &[TwoOfThreeTwoS]), NONE);
        let v = verdict(&[&[(1, -2.3), (2, -2.1), (3, -2.5)]], &[TwoOfThreeTwoS]);
        assert_eq!(v.violations[0].results, [1, 2, 3]);
    }

    #[test]
    fn rule_2of3_2s_across_runs_within_a_level() {
        let written = [
            &[(1, 2.3), (2, 0.0), (3, 0.0)][..],
            &[(1, 1.1), (2, 0.0), (3, 0.0)],
            &[(1, 2.4), (2, 0.0), (3, 0.0)],
        ];
        assert_eq!(check(&written, &[TwoOfThreeTwoS]), ["2of3-2s level 1 across runs [1, 7]"]);
        // Three runs apart is not "2 of the last 3".
        let four = [written[0], written[1], written[1], written[2]];
        assert_eq!(check(&four, &[TwoOfThreeTwoS]), NONE);
        // The two beyond 2 SD are both in history: the current run's normal result does not
        // make it a new violation.
        let earlier = [
            &[(1, 2.3), (2, 0.0), (3, 0.0)][..],
            &[(1, 2.4), (2, 0.0), (3, 0.0)],
            &[(1, 0.5), (2, 0.0), (3, 0.0)],
        ];
        assert_eq!(check(&earlier, &[TwoOfThreeTwoS]), NONE);
    }

    #[test]
    fn rule_3_1s_within_the_run_and_across_runs() {
        assert_eq!(
            check(&[&[(1, 1.2), (2, 1.5), (3, 1.1)]], &[ThreeOneS]),
            ["3-1s within run [1, 2, 3]"]
        );
        assert_eq!(check(&[&[(1, 1.2), (2, 1.0), (3, 1.1)]], &[ThreeOneS]), NONE);
        let written = [
            &[(1, -1.2), (2, 0.0), (3, 0.3)][..],
            &[(1, -1.6), (2, 0.0), (3, 0.3)],
            &[(1, -1.1), (2, 0.0), (3, 0.3)],
        ];
        assert_eq!(check(&written, &[ThreeOneS]), ["3-1s level 1 across runs [1, 4, 7]"]);
    }

    #[test]
    fn rules_6x_and_9x_for_three_levels() {
        let two_runs = [&[(1, 0.2), (2, 0.6), (3, 0.1)][..], &[(1, 0.9), (2, 0.4), (3, 0.3)]];
        assert_eq!(check(&two_runs, &[SixX, NineX]), ["6x across levels [1, 2, 3, 4, 5, 6]"]);
        let three_runs = [two_runs[0], two_runs[1], &[(1, 0.5), (2, 0.5), (3, 0.5)]];
        assert_eq!(check(&three_runs, &[NineX]), ["9x across levels [1, 2, 3, 4, 5, 6, 7, 8, 9]"]);
        // One result below the mean in the current run breaks 9x.
        let broken = [two_runs[0], two_runs[1], &[(1, 0.5), (2, -0.5), (3, 0.5)]];
        assert_eq!(check(&broken, &[NineX]), NONE);
    }

    #[test]
    fn rule_12x_reaches_back_eleven_results() {
        // One control level, one result a run: the twelfth run needs all eleven before it.
        let twelve: Vec<[(u8, f64); 1]> = vec![[(1, -0.4)]; 12];
        let written: Vec<&[(u8, f64)]> = twelve.iter().map(|r| &r[..]).collect();
        assert_eq!(
            check(&written, &[TwelveX]),
            [format!("12x level 1 across runs {:?}", Vec::from_iter(1..=12))]
        );
        assert_eq!(check(&written[1..], &[TwelveX]), NONE);
    }

    #[test]
    fn a_run_given_out_of_level_order_is_judged_in_level_order() {
        // Sorted, levels 1 and 3 have level 2 between them: no 2-2s within the run.
        assert_eq!(check(&[&[(3, 2.5), (1, 2.5), (2, 0.0)]], &[TwoTwoS]), NONE);
        assert_eq!(
            check(&[&[(3, 2.5), (2, 2.5), (1, 0.0)]], &[TwoTwoS]),
            ["2-2s within run [2, 1]"]
        );
    }

    #[test]
    fn a_rule_not_in_the_rule_set_does_not_fire() {
        let written = [&[(1, 2.5), (2, 2.6)][..]];
        assert_eq!(check(&written, &[OneThreeS, RFourS]), NONE);
        assert_eq!(verdict(&written, &[OneThreeS, RFourS]).status, QcStatus::Accepted);
        assert_eq!(verdict(&written, &[TwoTwoS]).status, QcStatus::Rejected);
    }

    #[test]
    fn a_violation_made_only_of_history_is_not_reported_again() {
        // Runs 1 and 2 already made a 2-2s on level 1; run 3 is clean.
        let written = [&[(1, 2.3), (2, 0.4)][..], &[(1, 2.1), (2, 0.2)], &[(1, 0.3), (2, -0.2)]];
        assert_eq!(verdict(&written, &RuleSet::classic().0).status, QcStatus::Accepted);
    }

    #[test]
    fn violations_follow_the_rule_set_order() {
        let v = verdict(&[&[(1, 3.4), (2, -2.4)]], &[RFourS, OneTwoS, OneThreeS]);
        let rules: Vec<_> = v.violations.iter().map(|v| v.rule).collect();
        assert_eq!(rules, [RFourS, OneTwoS, OneTwoS, OneThreeS]);
        assert_eq!(v.status, QcStatus::Rejected);
    }

    #[test]
    fn history_is_put_in_run_then_level_order() {
        let results = runs(&[&[(1, 1.2), (2, 1.5)], &[(1, 1.1), (2, 1.3)]]);
        let (history, run) = results.split_at(2);
        let reversed: Vec<_> = history.iter().rev().copied().collect();
        let rules = RuleSet::new([FourOneS]);
        assert_eq!(evaluate_run(&reversed, run, &rules), evaluate_run(history, run, &rules));
        assert_eq!(evaluate_run(history, run, &rules).violations[0].results, [1, 2, 3, 4]);
    }

    #[test]
    fn a_series_is_judged_run_by_run_and_marks_each_point() {
        let results = runs(&[
            &[(1, 2.3), (2, 0.4)],
            &[(1, 2.1), (2, 0.2)],
            &[(1, 0.3), (2, -0.2)],
            &[(1, 3.3), (2, -2.2)],
        ]);
        let evaluations = evaluate_series(&results, &RuleSet::classic());
        let statuses: Vec<_> = evaluations.iter().map(|e| (e.run, e.verdict.status)).collect();
        assert_eq!(
            statuses,
            [
                (1, QcStatus::Warning),
                (2, QcStatus::Rejected),
                (3, QcStatus::Accepted),
                (4, QcStatus::Rejected)
            ]
        );
        let marks = rules_by_result(&evaluations);
        assert_eq!(marks[&1], [OneTwoS, TwoTwoS]);
        assert_eq!(marks[&3], [OneTwoS, TwoTwoS]);
        assert_eq!(marks[&7], [OneTwoS, OneThreeS, RFourS]);
        assert_eq!(marks[&8], [OneTwoS, RFourS]);
        assert!(!marks.contains_key(&2) && !marks.contains_key(&5));
        // Each run judged as evaluate_run would have judged it then.
        for (i, e) in evaluations.iter().enumerate() {
            let (history, run) = results.split_at(2 * i);
            assert_eq!(e.verdict, evaluate_run(history, &run[..2], &RuleSet::classic()));
        }
    }

    #[test]
    fn an_empty_run_is_accepted() {
        let v = evaluate_run(&runs(&[&[(1, 2.5), (2, 2.5)]]), &[], &RuleSet::classic());
        assert_eq!(v.status, QcStatus::Accepted);
        assert!(evaluate_series(&[], &RuleSet::classic()).is_empty());
    }

    #[test]
    fn a_missing_sd_violates_nothing_and_breaks_streaks() {
        // Ten results above the mean: 10x across levels.
        let mut results = runs(&as_runs(&steady(5, 0.4, 0.4)));
        let (history, run) = results.split_at(8);
        assert_eq!(evaluate_run(history, run, &RuleSet::classic()).status, QcStatus::Rejected);
        // The same with run 3's level 1 recorded without an SD.
        results[4].z = z_score(1.0, 1.0, 0.0);
        let (history, run) = results.split_at(8);
        assert!(evaluate_run(history, run, &RuleSet::classic()).violations.is_empty());
    }

    #[test]
    fn sigma_metric_is_allowable_error_less_bias_over_cv() {
        let sigma = sigma_metric(10.0, 2.0, 1.5).unwrap();
        assert!((sigma - 16.0 / 3.0).abs() < 1e-12);
        // The sign of the bias does not matter.
        assert_eq!(sigma_metric(10.0, -2.0, 1.5), Some(sigma));
        // A bias beyond the allowable error: negative sigma.
        assert_eq!(sigma_metric(5.0, 6.0, 1.0), Some(-1.0));
        assert_eq!(sigma_metric(10.0, 2.0, 0.0), None);
        assert_eq!(sigma_metric(10.0, 2.0, -1.0), None);
        assert_eq!(sigma_metric(10.0, f64::NAN, 1.0), None);
    }

    #[test]
    fn sigma_rules_for_two_levels() {
        let design = |sigma| {
            let r = recommend(sigma, 2);
            (r.rules.to_string(), r.controls_per_run, r.runs)
        };
        assert_eq!(design(7.5), ("1-3s".into(), 2, 1));
        assert_eq!(design(6.0), ("1-3s".into(), 2, 1));
        assert_eq!(design(5.99), ("1-3s,2-2s,R-4s".into(), 2, 1));
        assert_eq!(design(5.0), ("1-3s,2-2s,R-4s".into(), 2, 1));
        assert_eq!(design(4.0), ("1-3s,2-2s,R-4s,4-1s".into(), 4, 1));
        assert_eq!(design(3.0), ("1-3s,2-2s,R-4s,4-1s,8x".into(), 4, 2));
        assert_eq!(design(2.9), ("1-3s,2-2s,R-4s,4-1s,8x".into(), 4, 2));
        assert!(recommend(2.9, 2).note.contains("not fit for purpose"));
        assert!(recommend(f64::NAN, 2).note.contains("not fit for purpose"));
        assert!(!recommend(3.0, 2).note.contains("not fit"));
        // One level is judged with the 2-level table.
        assert_eq!(recommend(5.5, 1), recommend(5.5, 2));
    }

    #[test]
    fn sigma_rules_for_three_levels() {
        let design = |sigma| {
            let r = recommend(sigma, 3);
            (r.rules.to_string(), r.controls_per_run, r.runs)
        };
        assert_eq!(design(6.0), ("1-3s".into(), 3, 1));
        assert_eq!(design(5.0), ("1-3s,2of3-2s,R-4s".into(), 3, 1));
        assert_eq!(design(4.0), ("1-3s,2of3-2s,R-4s,3-1s".into(), 3, 1));
        assert_eq!(design(3.0), ("1-3s,2of3-2s,R-4s,3-1s,6x".into(), 3, 2));
        assert_eq!(design(1.0), ("1-3s,2of3-2s,R-4s,3-1s,6x".into(), 3, 2));
        assert!(recommend(1.0, 3).note.contains("not fit for purpose"));
    }

    #[test]
    fn statistics_use_the_sample_sd() {
        let s = statistics(&[98.0, 100.0, 102.0, 100.0], Some(95.0)).unwrap();
        assert_eq!(s.n, 4);
        assert_eq!(s.mean, 100.0);
        // Squared deviations 4 + 0 + 4 + 0 = 8 over n − 1 = 3.
        assert!((s.sd - (8.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((s.cv_percent - s.sd).abs() < 1e-12);
        assert!((s.bias_percent.unwrap() - 100.0 * 5.0 / 95.0).abs() < 1e-12);
        assert_eq!(statistics(&[], None), None);
        let one = statistics(&[4.2], None).unwrap();
        assert_eq!(
            (one.n, one.mean, one.sd, one.cv_percent, one.bias_percent),
            (1, 4.2, 0.0, 0.0, None)
        );
        assert_eq!(statistics(&[1.0, 2.0], Some(0.0)).unwrap().bias_percent, None);
        assert!(statistics(&[-1.0, 1.0], None).unwrap().cv_percent.is_nan());
    }

    #[test]
    fn statistics_keep_their_digits_for_a_tight_control() {
        // A large mean with a small SD: the one-pass formula returns garbage here.
        let s = statistics(&[1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0], None).unwrap();
        assert!((s.sd - 1.0).abs() < 1e-6);
    }

    #[test]
    fn a_new_lot_needs_twenty_results_for_its_target() {
        let values: Vec<f64> =
            (0..25).map(|i| if i < 20 { 100.0 + (i % 2) as f64 } else { 500.0 }).collect();
        assert_eq!(establish_target(&values[..19]), None);
        let (mean, sd) = establish_target(&values).unwrap();
        assert_eq!(mean, 100.5);
        // Ten at 100 and ten at 101: squared deviations 20 × 0.25 = 5 over 19.
        assert!((sd - (5.0f64 / 19.0).sqrt()).abs() < 1e-12);
        assert_eq!(establish_target(&values[..20]), Some((mean, sd)));
    }

    fn sodium_rule() -> MovingAverageRule {
        MovingAverageRule {
            window: 3,
            truncate_low: Some(130.0),
            truncate_high: Some(150.0),
            target: 140.0,
            lower_limit: 138.0,
            upper_limit: 142.0,
        }
    }

    #[test]
    fn the_moving_average_starts_once_the_window_is_full() {
        let points = moving_average(&sodium_rule(), &[139.0, 140.0, 141.0, 143.0, 145.0]);
        let seen: Vec<_> = points.iter().map(|p| (p.index, p.average, p.out_of_control)).collect();
        assert_eq!(seen, [(2, 140.0, false), (3, 424.0 / 3.0, false), (4, 143.0, true)]);
    }

    #[test]
    fn truncated_patient_results_do_not_enter_the_average() {
        // 120 and 165 are patients, not the method; 130 and 150 are on the limits and count.
        let values = [139.0, 120.0, 141.0, 165.0, 140.0, 130.0, 150.0, f64::NAN, 142.0];
        let points = moving_average(&sodium_rule(), &values);
        let seen: Vec<_> = points.iter().map(|p| (p.index, p.average)).collect();
        assert_eq!(seen, [(4, 140.0), (5, 137.0), (6, 140.0), (8, 422.0 / 3.0)]);
        assert_eq!(
            points.iter().map(|p| p.out_of_control).collect::<Vec<_>>(),
            [false, true, false, false]
        );
    }

    #[test]
    fn moving_average_limits_are_strict() {
        let rule = MovingAverageRule {
            window: 1,
            truncate_low: None,
            truncate_high: None,
            ..sodium_rule()
        };
        let flags: Vec<_> = moving_average(&rule, &[138.0, 142.0, 137.9, 142.1])
            .iter()
            .map(|p| p.out_of_control)
            .collect();
        assert_eq!(flags, [false, false, true, true]);
        assert!(moving_average(&MovingAverageRule { window: 0, ..rule }, &[140.0]).is_empty());
    }

    #[test]
    fn a_run_keeps_its_violations_readably_and_an_unknown_rule_is_refused() {
        let stored = r#"[{"rule":"1-3s","scope":"Result","results":[4],"detail":"1-3s: level 1 +3.75 SD"},
            {"rule":"10x","detail":"10x level 2 across runs: …"},
            {"rule":"MA","detail":"patient moving average"}]"#;
        let v: Vec<RecordedViolation> = serde_json::from_str(stored).unwrap();
        assert_eq!(v[0].rule, ControlRule::Westgard(WestgardRule::OneThreeS));
        assert_eq!(v[2].rule, ControlRule::MovingAverage);
        let details: Vec<&str> = v.iter().map(RecordedViolation::detail_without_rule).collect();
        assert_eq!(
            details,
            ["level 1 +3.75 SD", "level 2 across runs: …", "patient moving average"]
        );
        let again: Vec<RecordedViolation> =
            serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(again, v);
        assert!(
            serde_json::from_str::<Vec<RecordedViolation>>(r#"[{"rule":"1-9s","detail":""}]"#)
                .is_err()
        );
        assert_eq!(RunSource::parse("patient_average"), Some(RunSource::PatientAverage));
        assert_eq!(RunSource::parse("Manual"), None);
        assert_eq!(TargetSource::parse(TargetSource::Lab.code()), Some(TargetSource::Lab));
    }
}
