//! Autoverification: which results may leave the lab without a human looking at them.
//!
//! A rule set per test, after CLSI AUTO10-A / AUTO15 (DOMAIN.md §6): a result is released
//! automatically only when every rule passes or does not apply; any failure holds it for
//! manual review. Every rule is evaluated and recorded, never short-circuited, so the review
//! queue shows the whole picture (a hemolysed potassium that also fails its delta check shows
//! both reasons) and a lab validating its rules sees every branch taken.
//!
//! The rules reuse what [`evaluate`](crate::evaluation::evaluate) decided (critical, reference
//! and measurement-range flags) instead of judging the number again. Choices, each pinned by a
//! test:
//! - **Critical values are never silently released** (DOMAIN §6.6, §7): [`AutoverifyRules`]
//!   holds them by default. `hold_critical = false` exists only for a lab whose written policy
//!   releases critical results automatically *and* calls them: the trace still names the
//!   critical value, and the critical-call workflow starts from the evaluation's LL/HH flags,
//!   not from this module.
//! - **A rejected QC run always holds**, whatever `require_qc` says (42 CFR 493.1256(f): QC
//!   must be acceptable before patient results are reported; DOMAIN §6.2). `require_qc` only
//!   decides whether *missing* QC holds. A Westgard 1-2s warning is not a rejection (DOMAIN
//!   §4) and passes.
//! - **Unknown is not acceptable**: a serum-index limit with no index measured, a censored
//!   value ("<0.5") outside what the analyzer measured, a value that may lie beyond a critical
//!   or autoverification limit all hold. Autoverification errs towards a human.
//! - **Boundaries follow the catalog**: index limits, the measurement range and the
//!   autoverification range are inclusive (a value exactly at the limit passes); critical
//!   limits are strict, as in `evaluation`.
//! - Rules that need a number are [`Verdict::NotApplicable`] for coded and text results.
//!
//! Cross-test consistency rules (DOMAIN §6.9: anion gap, K high with Ca low) and specimen age
//! need more than one result and live with the use case that has them; this module judges one
//! result.

use std::collections::BTreeMap;
use std::fmt::Display;

use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::catalog::{ResultType, TestDefinition};
use crate::delta::{DELTA_WINDOW_HOURS_MAX, DeltaLimits, DeltaOutcome, PriorResult, delta_check};
use crate::evaluation::{Evaluation, Flag, Review};
use crate::value::{Comparator, Numeric, ReportedValue};

/// The version of the algorithm in [`autoverify`]. It is part of every
/// [`AutoverifyRules::fingerprint`]; bump it whenever a rule's meaning changes, so a stored
/// decision names the logic that made it (DOMAIN §6: the audit trail records the rule
/// version).
pub const RULES_VERSION: &str = "AV1";

/// The specimen condition codes that hold a result by default: hemolysed, clotted, quantity
/// not sufficient, lipemic, icteric (DOMAIN §9; HL7 table 0493 where a code exists).
pub const DEFAULT_HOLD_CODES: [&str; 5] = ["HEM", "CLOT", "QNS", "LIP", "ICT"];

/// The most specimen condition codes a rule set may hold on.
pub const HOLD_CODES_MAX: usize = 32;

/// The longest specimen condition code.
pub const HOLD_CODE_LEN_MAX: usize = 16;

/// One test's autoverification rules, as the lab validated them. Stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoverifyRules {
    /// Whether results of the test may be released automatically at all (DOMAIN §6.1). Off
    /// until the lab has validated the rules; switching it off is the rapid suspension AUTO10
    /// asks for.
    pub enabled: bool,
    /// Whether a result with no QC in the current interval is held. A rejected run always
    /// holds.
    pub require_qc: bool,
    /// Whether any instrument flag or error code holds the result (DOMAIN §6.3).
    pub block_instrument_flags: bool,
    /// Largest hemolysis index allowed (inclusive), from the package insert.
    #[serde(default)]
    pub hemolysis_max: Option<u32>,
    /// Largest icterus index allowed (inclusive).
    #[serde(default)]
    pub icterus_max: Option<u32>,
    /// Largest lipemia index allowed (inclusive).
    #[serde(default)]
    pub lipemia_max: Option<u32>,
    /// Whether a result outside the analytical measurement range, or censored ("<0.5"), is
    /// held (DOMAIN §6.5).
    pub check_measurement_range: bool,
    /// Whether a critical value is held. Always true in practice: see the module notes.
    pub hold_critical: bool,
    /// Delta check limits (DOMAIN §5, §6.7); `None` for no delta check.
    #[serde(default)]
    pub delta: Option<DeltaLimits>,
    /// Results below this are held (inclusive limit): the "autoverification range" of DOMAIN
    /// §6.8, usually wider than the reference interval.
    #[serde(default)]
    pub autoverify_low: Option<Decimal>,
    /// Results above this are held (inclusive limit).
    #[serde(default)]
    pub autoverify_high: Option<Decimal>,
    /// Whether a result outside the reference interval (L, H, or an abnormal coded value) is
    /// held, as is a numeric result no interval applies to.
    pub hold_outside_reference: bool,
    /// Specimen condition or comment codes that require review (DOMAIN §6.10), compared
    /// without regard to case.
    #[serde(default)]
    pub hold_comment_codes: Vec<String>,
}

impl AutoverifyRules {
    /// Conservative defaults for a test: disabled until the lab validates them; QC required;
    /// instrument flags, the measurement range, critical values and results outside the
    /// reference interval held; the catalog's delta limits; the [`DEFAULT_HOLD_CODES`]. The
    /// catalog has no serum-index thresholds (they come from each package insert), so the
    /// index limits start unset.
    pub fn default_for(test: &TestDefinition) -> AutoverifyRules {
        AutoverifyRules {
            enabled: false,
            require_qc: true,
            block_instrument_flags: true,
            hemolysis_max: None,
            icterus_max: None,
            lipemia_max: None,
            check_measurement_range: true,
            hold_critical: true,
            delta: DeltaLimits::from_definition(test),
            autoverify_low: None,
            autoverify_high: None,
            hold_outside_reference: true,
            hold_comment_codes: DEFAULT_HOLD_CODES.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    /// The rule set as one stable line: every field in a fixed order, decimals without
    /// trailing zeros, hold codes in capitals, sorted and deduplicated. Two rule sets that
    /// decide alike have the same line.
    pub fn canonical(&self) -> String {
        let opt = |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let dec =
            |v: Option<Decimal>| v.map_or_else(|| "-".to_owned(), |v| v.normalize().to_string());
        let mut codes: Vec<String> =
            self.hold_comment_codes.iter().map(|c| c.trim().to_ascii_uppercase()).collect();
        codes.sort();
        codes.dedup();
        format!(
            "{RULES_VERSION};enabled={};qc={};instrument_flags={};hemolysis_max={};\
             icterus_max={};lipemia_max={};range={};critical={};delta={};autoverify_low={};\
             autoverify_high={};reference={};hold_codes={}",
            u8::from(self.enabled),
            u8::from(self.require_qc),
            u8::from(self.block_instrument_flags),
            opt(self.hemolysis_max),
            opt(self.icterus_max),
            opt(self.lipemia_max),
            u8::from(self.check_measurement_range),
            u8::from(self.hold_critical),
            self.delta.as_ref().map_or_else(|| "-".to_owned(), DeltaLimits::canonical),
            dec(self.autoverify_low),
            dec(self.autoverify_high),
            u8::from(self.hold_outside_reference),
            codes.join(",")
        )
    }

    /// A short stable name for this rule set, stored with every decision: [`RULES_VERSION`]
    /// and the 64-bit FNV-1a hash of [`canonical`](Self::canonical), e.g. `AV1-9c2f…`.
    /// FNV-1a is fixed by its definition, so the name never changes between builds or
    /// platforms (unlike `std`'s `DefaultHasher`).
    pub fn fingerprint(&self) -> String {
        format!("{RULES_VERSION}-{:016x}", fnv1a64(self.canonical().as_bytes()))
    }

    /// Checks what a supervisor's edit or a stored JSON could get wrong. [`autoverify`] does
    /// not need it (it judges any rule set), but the store should refuse to save a rule set
    /// that fails it.
    pub fn validate(&self) -> Result<(), RulesError> {
        let non_negative = |field: &'static str, value: Option<Decimal>| match value {
            Some(value) if value.is_sign_negative() && !value.is_zero() => {
                Err(RulesError::NegativeLimit { field, value })
            }
            _ => Ok(()),
        };
        if let Some(d) = &self.delta {
            non_negative("delta absolute", d.absolute)?;
            non_negative("delta percent", d.percent)?;
            non_negative("delta rate per day", d.rate_per_day)?;
            if d.is_empty() {
                return Err(RulesError::EmptyDelta);
            }
            if d.window_hours == 0 || d.window_hours > DELTA_WINDOW_HOURS_MAX {
                return Err(RulesError::DeltaWindow {
                    hours: d.window_hours,
                    max: DELTA_WINDOW_HOURS_MAX,
                });
            }
        }
        if let (Some(low), Some(high)) = (self.autoverify_low, self.autoverify_high)
            && low > high
        {
            return Err(RulesError::InvertedRange { low, high });
        }
        if self.hold_comment_codes.len() > HOLD_CODES_MAX {
            return Err(RulesError::TooManyHoldCodes {
                count: self.hold_comment_codes.len(),
                max: HOLD_CODES_MAX,
            });
        }
        for code in &self.hold_comment_codes {
            let code = code.trim();
            if code.is_empty()
                || code.len() > HOLD_CODE_LEN_MAX
                || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(RulesError::BadHoldCode {
                    code: code.to_owned(),
                    max: HOLD_CODE_LEN_MAX,
                });
            }
        }
        Ok(())
    }
}

/// Why a rule set was refused by [`AutoverifyRules::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// A limit that is a magnitude is negative.
    #[error("{field} limit {value} must not be negative")]
    NegativeLimit {
        /// Which limit.
        field: &'static str,
        /// Its value.
        value: Decimal,
    },
    /// A delta check with no limit set.
    #[error(
        "the delta check has no limit: set an absolute, percent or per-day limit, or remove it"
    )]
    EmptyDelta,
    /// The delta window is zero or longer than [`DELTA_WINDOW_HOURS_MAX`].
    #[error("the delta window of {hours} h must be between 1 and {max} h")]
    DeltaWindow {
        /// The window given.
        hours: u32,
        /// The longest allowed.
        max: u32,
    },
    /// The autoverification range's low limit is above its high limit.
    #[error("autoverification low {low} is above autoverification high {high}")]
    InvertedRange {
        /// Low limit.
        low: Decimal,
        /// High limit.
        high: Decimal,
    },
    /// More than [`HOLD_CODES_MAX`] hold codes.
    #[error("{count} specimen condition codes; the limit is {max}")]
    TooManyHoldCodes {
        /// Codes given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A hold code that is empty, too long or not letters, digits and underscores.
    #[error("specimen condition code {code:?} must be 1 to {max} letters, digits or underscores")]
    BadHoldCode {
        /// The code given.
        code: String,
        /// The longest allowed.
        max: usize,
    },
}

/// The state of QC for the test, instrument and reagent lot that produced the result
/// (DOMAIN §6.2, §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum QcState {
    /// The latest QC run in the current interval was accepted.
    Acceptable,
    /// Accepted with a warning (a Westgard 1-2s): not a rejection, so it passes; the trace
    /// records the warning.
    Warning {
        /// The rule that warned, e.g. "1-2s".
        rule: String,
    },
    /// No QC was run in the current interval.
    NoQc,
    /// The latest QC run was rejected and not yet resolved: results produced after it are
    /// never autoverified.
    Rejected {
        /// Why, e.g. "1-3s on level 2".
        reason: String,
    },
}

/// Serum indices measured on the specimen (hemolysis, icterus, lipemia), in the analyzer's
/// index units; `None` when not measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerumIndices {
    /// H index.
    pub hemolysis: Option<u32>,
    /// I index.
    pub icterus: Option<u32>,
    /// L index.
    pub lipemia: Option<u32>,
}

/// One result waiting for a decision, with everything the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The test definition the result was evaluated with.
    pub test: &'a TestDefinition,
    /// The value as reported.
    pub value: &'a ReportedValue,
    /// What [`evaluate`](crate::evaluation::evaluate) said about it.
    pub evaluation: &'a Evaluation,
    /// Instrument flags and error codes sent with the result (OBX-8, ASTM R-7, `***`).
    pub instrument_flags: &'a [String],
    /// QC state for the run.
    pub qc: &'a QcState,
    /// The specimen's serum indices.
    pub indices: SerumIndices,
    /// The patient's previous result for the test, if any (see [`PriorResult`]).
    pub prior: Option<&'a PriorResult>,
    /// When this result's specimen was collected.
    pub at: Timestamp,
    /// Specimen condition and comment codes ("HEM", "CLOT").
    pub specimen_comments: &'a [String],
}

/// One autoverification rule, in the order AUTO10 lists them (DOMAIN §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AvRule {
    /// §6.1: autoverification is enabled for the test.
    #[serde(rename = "ENABLED")]
    Enabled,
    /// §6.2: QC is acceptable.
    #[serde(rename = "QC")]
    QcAcceptable,
    /// §6.3: no instrument flags or error codes.
    #[serde(rename = "INSTR")]
    InstrumentFlags,
    /// §6.4: serum indices within the test's interference limits.
    #[serde(rename = "HIL")]
    SerumIndices,
    /// The value is readable: a number for a numeric test, a listed code for a coded one.
    #[serde(rename = "VALUE")]
    ValidValue,
    /// §6.5: within the analytical measurement range.
    #[serde(rename = "AMR")]
    MeasurementRange,
    /// §6.6: not critical.
    #[serde(rename = "CRIT")]
    Critical,
    /// §6.7: delta check passed.
    #[serde(rename = "DELTA")]
    Delta,
    /// §6.8: within the reference interval (or a normal coded value).
    #[serde(rename = "REF")]
    ReferenceInterval,
    /// §6.8: within the autoverification range.
    #[serde(rename = "AVR")]
    AutoverifyRange,
    /// §6.10: no specimen condition that requires review.
    #[serde(rename = "SPEC")]
    SpecimenComments,
}

impl AvRule {
    /// Every rule, in evaluation (and trace) order.
    pub const ALL: [AvRule; 11] = [
        AvRule::Enabled,
        AvRule::QcAcceptable,
        AvRule::InstrumentFlags,
        AvRule::SerumIndices,
        AvRule::ValidValue,
        AvRule::MeasurementRange,
        AvRule::Critical,
        AvRule::Delta,
        AvRule::ReferenceInterval,
        AvRule::AutoverifyRange,
        AvRule::SpecimenComments,
    ];

    /// The code stored with a decision.
    pub fn code(self) -> &'static str {
        match self {
            AvRule::Enabled => "ENABLED",
            AvRule::QcAcceptable => "QC",
            AvRule::InstrumentFlags => "INSTR",
            AvRule::SerumIndices => "HIL",
            AvRule::ValidValue => "VALUE",
            AvRule::MeasurementRange => "AMR",
            AvRule::Critical => "CRIT",
            AvRule::Delta => "DELTA",
            AvRule::ReferenceInterval => "REF",
            AvRule::AutoverifyRange => "AVR",
            AvRule::SpecimenComments => "SPEC",
        }
    }

    /// The rule's name on the review screen.
    pub fn label(self) -> &'static str {
        match self {
            AvRule::Enabled => "autoverification enabled",
            AvRule::QcAcceptable => "QC acceptable",
            AvRule::InstrumentFlags => "instrument flags",
            AvRule::SerumIndices => "serum indices",
            AvRule::ValidValue => "valid result",
            AvRule::MeasurementRange => "measurement range",
            AvRule::Critical => "critical value",
            AvRule::Delta => "delta check",
            AvRule::ReferenceInterval => "reference interval",
            AvRule::AutoverifyRange => "autoverification range",
            AvRule::SpecimenComments => "specimen condition",
        }
    }
}

/// What one rule said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Verdict {
    /// The rule was checked and is satisfied.
    Passed,
    /// The rule was checked and holds the result.
    Failed,
    /// The rule is switched off, or does not apply to this result.
    NotApplicable,
}

/// One line of a decision's trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleOutcome {
    /// The rule.
    pub rule: AvRule,
    /// What it said.
    pub verdict: Verdict,
    /// Why, with the numbers ("hemolysis index 120 > limit 50").
    pub detail: String,
}

/// The decision on one result, with the trace of every rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the result is released without review (no rule failed).
    pub release: bool,
    /// The [`AutoverifyRules::fingerprint`] of the rule set that decided.
    pub fingerprint: String,
    /// One outcome per rule, in [`AvRule::ALL`] order.
    pub trace: Vec<RuleOutcome>,
}

impl Decision {
    /// The rules that failed, in trace order.
    pub fn failed_rules(&self) -> Vec<AvRule> {
        self.failures().map(|o| o.rule).collect()
    }

    /// The failed rules' details joined with "; " (empty when released).
    pub fn held_reasons(&self) -> String {
        self.failures().map(|o| o.detail.as_str()).collect::<Vec<_>>().join("; ")
    }

    /// One line for the result list: "released automatically (7 rules passed, 4 not
    /// applicable)" or "held: hemolysis index 120 > limit 50; …".
    pub fn summary(&self) -> String {
        if self.release {
            let passed = self.trace.iter().filter(|o| o.verdict == Verdict::Passed).count();
            let not_applicable = self.trace.len() - passed;
            format!(
                "released automatically ({passed} rules passed, {not_applicable} not applicable)"
            )
        } else {
            format!("held: {}", self.held_reasons())
        }
    }

    /// The outcome of one rule.
    pub fn outcome(&self, rule: AvRule) -> Option<&RuleOutcome> {
        self.trace.iter().find(|o| o.rule == rule)
    }

    fn failures(&self) -> impl Iterator<Item = &RuleOutcome> {
        self.trace.iter().filter(|o| o.verdict == Verdict::Failed)
    }
}

/// Decides whether a result is released automatically, evaluating every rule (DOMAIN §6).
pub fn autoverify(rules: &AutoverifyRules, c: &Candidate<'_>) -> Decision {
    let trace: Vec<RuleOutcome> = AvRule::ALL
        .into_iter()
        .map(|rule| {
            let (verdict, detail) = match rule {
                AvRule::Enabled => enabled(rules, c),
                AvRule::QcAcceptable => qc(rules, c),
                AvRule::InstrumentFlags => instrument_flags(rules, c),
                AvRule::SerumIndices => serum_indices(rules, c),
                AvRule::ValidValue => valid_value(c),
                AvRule::MeasurementRange => measurement_range(rules, c),
                AvRule::Critical => critical(rules, c),
                AvRule::Delta => delta(rules, c),
                AvRule::ReferenceInterval => reference_interval(rules, c),
                AvRule::AutoverifyRange => autoverify_range(rules, c),
                AvRule::SpecimenComments => specimen_comments(rules, c),
            };
            RuleOutcome { rule, verdict, detail }
        })
        .collect();
    let release = trace.iter().all(|o| o.verdict != Verdict::Failed);
    Decision { release, fingerprint: rules.fingerprint(), trace }
}

/// What a rule set would have done to a batch of (historical) results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunReport {
    /// The fingerprint of the rule set run.
    pub fingerprint: String,
    /// Results judged.
    pub evaluated: usize,
    /// Results that would have been released.
    pub would_release: usize,
    /// Results that would have been held.
    pub would_hold: usize,
    /// For each rule, how many results it failed (a result held by two rules counts twice).
    pub held_by_rule: BTreeMap<AvRule, usize>,
    /// For each rule, how many results it alone held: what relaxing that one rule would
    /// release.
    pub held_only_by_rule: BTreeMap<AvRule, usize>,
}

/// Runs a rule set over results without deciding anything, so a lab can validate it over
/// historical results before switching it on (DOMAIN §6, validation). The rules are run as if
/// enabled — that is the point of a dry run — so [`AvRule::Enabled`] never holds here.
pub fn dry_run<'a>(
    rules: &AutoverifyRules,
    candidates: impl IntoIterator<Item = Candidate<'a>>,
) -> DryRunReport {
    let rules = AutoverifyRules { enabled: true, ..rules.clone() };
    let mut report = DryRunReport { fingerprint: rules.fingerprint(), ..DryRunReport::default() };
    for candidate in candidates {
        let decision = autoverify(&rules, &candidate);
        report.evaluated += 1;
        if decision.release {
            report.would_release += 1;
        } else {
            report.would_hold += 1;
        }
        let failed = decision.failed_rules();
        for rule in &failed {
            *report.held_by_rule.entry(*rule).or_default() += 1;
        }
        if let [only] = failed.as_slice() {
            *report.held_only_by_rule.entry(*only).or_default() += 1;
        }
    }
    report
}

// The rules, in `AvRule::ALL` order. Each returns its verdict and a detail with the numbers.

type Judged = (Verdict, String);

fn pass(detail: impl Into<String>) -> Judged {
    (Verdict::Passed, detail.into())
}

fn fail(detail: impl Into<String>) -> Judged {
    (Verdict::Failed, detail.into())
}

fn not_applicable(detail: impl Into<String>) -> Judged {
    (Verdict::NotApplicable, detail.into())
}

fn enabled(rules: &AutoverifyRules, c: &Candidate<'_>) -> Judged {
    if rules.enabled {
        pass(format!("autoverification enabled for {}", c.test.code))
    } else {
        fail("autoverification not enabled for this test")
    }
}

fn qc(rules: &AutoverifyRules, c: &Candidate<'_>) -> Judged {
    match c.qc {
        QcState::Acceptable => pass("QC acceptable"),
        QcState::Warning { rule } => pass(format!("QC accepted with a {rule} warning")),
        QcState::Rejected { reason } => fail(format!("QC rejected: {reason}")),
        QcState::NoQc if rules.require_qc => fail("no QC in the current interval"),
        QcState::NoQc => not_applicable("no QC in the current interval; not required"),
    }
}

fn instrument_flags(rules: &AutoverifyRules, c: &Candidate<'_>) -> Judged {
    let flags: Vec<&str> =
        c.instrument_flags.iter().map(|f| f.trim()).filter(|f| !f.is_empty()).collect();
    match (rules.block_instrument_flags, flags.is_empty()) {
        (true, true) => pass("no instrument flags"),
        (true, false) => fail(format!("instrument flags: {}", flags.join(", "))),
        (false, true) => not_applicable("instrument flags not checked"),
        (false, false) => {
            not_applicable(format!("instrument flags not checked (sent: {})", flags.join(", ")))
        }
    }
}

fn serum_indices(rules: &AutoverifyRules, c: &Candidate<'_>) -> Judged {
    let indices = [
        ("hemolysis", rules.hemolysis_max, c.indices.hemolysis),
        ("icterus", rules.icterus_max, c.indices.icterus),
        ("lipemia", rules.lipemia_max, c.indices.lipemia),
    ];
    let mut failures = Vec::new();
    let mut passes = Vec::new();
    for (name, limit, index) in indices {
        let Some(limit) = limit else { continue };
        match index {
            // An index limit exists because the test is sensitive to it: unmeasured, a human
            // looks at the tube.
            None => failures.push(format!("{name} index not measured (limit {limit})")),
            Some(index) if index > limit => {
                failures.push(format!("{name} index {index} > limit {limit}"));
            }
            Some(index) => passes.push(format!("{name} index {index} ≤ limit {limit}")),
        }
    }
    if !failures.is_empty() {
        fail(failures.join("; "))
    } else if passes.is_empty() {
        not_applicable(format!("no serum index limits for {}", c.test.code))
    } else {
        pass(passes.join("; "))
    }
}

fn valid_value(c: &Candidate<'_>) -> Judged {
    let kind = match c.test.result_type {
        ResultType::Numeric => "numeric",
        ResultType::Coded => "coded",
        ResultType::Text => "text",
        ResultType::Organism => "organism",
    };
    if c.evaluation.flags.contains(&Flag::Invalid) {
        fail(format!("{:?} is not a valid {kind} result for {}", c.value.text, c.test.code))
    } else if c.value.no_value().is_some() {
        fail(format!("{:?} is a comment in place of a result: a person reads it", c.value.text))
    } else {
        pass(format!("valid {kind} result"))
    }
}

fn measurement_range(rules: &AutoverifyRules, c: &Candidate<'_>) -> Judged {
    if !rules.check_measurement_range {
        return not_applicable("measurement range not checked");
    }
    let Some(n) = numeric(c) else { return not_applicable("not a numeric result") };
    let test = c.test;
    if test.amr_low.is_none() && test.amr_high.is_none() {
        return not_applicable(format!("no measurement range for {}", test.code));
    }
    let range = range_text(test.amr_low, test.amr_high);
    let value = quantity(&c.value.text, &test.unit);
    let flags = &c.evaluation.flags;
    if let (true, Some(high)) = (flags.contains(&Flag::AboveRange), test.amr_high) {
        fail(format!("{value} > measurement range high {high}"))
    } else if let (true, Some(low)) = (flags.contains(&Flag::BelowRange), test.amr_low) {
        fail(format!("{value} < measurement range low {low}"))
    } else if n.comparator.is_some() {
        // A censored value is what the analyzer could not measure: dilute, rerun or report
        // with a comment (DOMAIN §6.5) — a technologist's call.
        fail(format!("reported as {value}: not a measured value (range {range})"))
    } else {
        pass(format!("{value} within measurement range {range}"))
    }
}

fn critical(rules: &AutoverifyRules, c: &Candidate<'_>) -> Judged {
    let test = c.test;
    // The limits `evaluate` applied for this patient's age and sex (a newborn's differ).
    let (critical_low, critical_high) = (c.evaluation.critical_low, c.evaluation.critical_high);
    let value = quantity(&c.value.text, &test.unit);
    let flags = &c.evaluation.flags;
    let detail = if flags.contains(&Flag::CriticalLow) {
        Some(format!("critical LL: {value} < {}", opt_text(critical_low)))
    } else if flags.contains(&Flag::CriticalHigh) {
        Some(format!("critical HH: {value} > {}", opt_text(critical_high)))
    } else {
        numeric(c).and_then(|n| match (n.comparator, critical_low, critical_high) {
            // A censored value open towards a critical limit may be beyond it even when
            // `evaluate` could not flag it ("<3.0" potassium, critical below 2.8).
            (Some(Comparator::Less | Comparator::LessOrEqual), Some(low), _) => {
                Some(format!("{value} may be below the critical limit {low}"))
            }
            (Some(Comparator::Greater | Comparator::GreaterOrEqual), _, Some(high)) => {
                Some(format!("{value} may be above the critical limit {high}"))
            }
            _ => None,
        })
    };
    match detail {
        Some(detail) if rules.hold_critical => fail(detail),
        Some(detail) => not_applicable(format!(
            "{detail}; not held (hold_critical is off): the critical call (DOMAIN §7) starts \
             from the LL/HH flag"
        )),
        None if numeric(c).is_none() => not_applicable("not a numeric result"),
        None => match (critical_low, critical_high) {
            (None, None) => not_applicable(format!("no critical limits for {}", test.code)),
            (Some(low), Some(high)) => {
                pass(format!("not critical (critical below {low} or above {high})"))
            }
            (Some(low), None) => pass(format!("not critical (critical below {low})")),
            (None, Some(high)) => pass(format!("not critical (critical above {high})")),
        },
    }
}

fn delta(rules: &AutoverifyRules, c: &Candidate<'_>) -> Judged {
    let Some(limits) = &rules.delta else {
        return not_applicable(format!("no delta limits for {}", c.test.code));
    };
    let Some(n) = numeric(c) else { return not_applicable("not a numeric result") };
    if n.comparator.is_some() {
        // The change from a censored value is not a number; the measurement-range rule holds
        // censored values.
        return not_applicable(format!("censored value {}: no delta computed", c.value.text));
    }
    let outcome = delta_check(&c.test.code, &c.test.unit, limits, n.value, c.at, c.prior);
    let detail = outcome.explain();
    match outcome {
        DeltaOutcome::Failed(_) => fail(detail),
        DeltaOutcome::Passed(_) => pass(detail),
        DeltaOutcome::NoPrior { .. } | DeltaOutcome::OutsideWindow { .. } => not_applicable(detail),
    }
}

fn reference_interval(rules: &AutoverifyRules, c: &Candidate<'_>) -> Judged {
    let e = c.evaluation;
    let test = c.test;
    // A result that no interval of its test covers (a neonate, a child where only adult
    // intervals are carried) cannot be called normal by anyone, so it holds even where the
    // lab releases results outside the interval automatically.
    if e.no_interval_applies && !e.flags.contains(&Flag::Invalid) {
        return fail(format!("{}: {} is held for a technologist", e.interval, test.code));
    }
    if !rules.hold_outside_reference {
        return not_applicable("reference interval not checked");
    }
    if e.flags.contains(&Flag::Invalid) {
        return not_applicable("no valid result to compare");
    }
    match test.result_type {
        ResultType::Text | ResultType::Organism => not_applicable("free-text result"),
        ResultType::Coded if e.flags.contains(&Flag::Abnormal) => fail(format!(
            "abnormal result {} (normal: {})",
            e.report_text,
            test.normal_values.join(", ")
        )),
        ResultType::Coded => pass(format!("normal result {}", e.report_text)),
        ResultType::Numeric => {
            let value = quantity(&c.value.text, &test.unit);
            let interval = &e.interval;
            if e.flags.contains(&Flag::Low) {
                fail(format!("{value} below the reference interval {interval}"))
            } else if e.flags.contains(&Flag::High) {
                fail(format!("{value} above the reference interval {interval}"))
            } else if interval.is_empty() {
                not_applicable(format!("no reference interval for {}", test.code))
            } else if c.value.number.is_some_and(|n| n.comparator.is_some())
                && e.review == Review::Technologist
            {
                // `evaluate` sends a censored value that straddles a limit to a technologist
                // without a flag: it cannot be placed in the interval.
                fail(format!("{value} cannot be placed in the reference interval {interval}"))
            } else {
                pass(format!("{value} within the reference interval {interval}"))
            }
        }
    }
}

fn autoverify_range(rules: &AutoverifyRules, c: &Candidate<'_>) -> Judged {
    let (low, high) = (rules.autoverify_low, rules.autoverify_high);
    if low.is_none() && high.is_none() {
        return not_applicable(format!("no autoverification range for {}", c.test.code));
    }
    let Some(n) = numeric(c) else { return not_applicable("not a numeric result") };
    let value = quantity(&c.value.text, &c.test.unit);
    let censored = n.comparator.is_some();
    let verb = |surely: &'static str, maybe: &'static str| if censored { maybe } else { surely };
    if let Some(low) = low.filter(|&low| may_be_below(n, low)) {
        fail(format!("{value} {} autoverification low {low}", verb("<", "may be below")))
    } else if let Some(high) = high.filter(|&high| may_be_above(n, high)) {
        fail(format!("{value} {} autoverification high {high}", verb(">", "may be above")))
    } else {
        pass(format!("{value} within autoverification range {}", range_text(low, high)))
    }
}

fn specimen_comments(rules: &AutoverifyRules, c: &Candidate<'_>) -> Judged {
    if rules.hold_comment_codes.is_empty() {
        return not_applicable("no specimen condition holds this test");
    }
    let holding: Vec<&str> = c
        .specimen_comments
        .iter()
        .map(|s| s.trim())
        .filter(|s| rules.hold_comment_codes.iter().any(|code| code.trim().eq_ignore_ascii_case(s)))
        .collect();
    if !holding.is_empty() {
        fail(format!("specimen condition {} requires review", holding.join(", ")))
    } else if c.specimen_comments.is_empty() {
        pass("no specimen condition")
    } else {
        pass(format!("no holding specimen condition ({})", c.specimen_comments.join(", ")))
    }
}

/// The number of a numeric test's readable result.
fn numeric(c: &Candidate<'_>) -> Option<Numeric> {
    if c.test.result_type != ResultType::Numeric || c.evaluation.flags.contains(&Flag::Invalid) {
        return None;
    }
    c.value.number
}

/// Whether any value `n` stands for is below the inclusive limit `low`.
fn may_be_below(n: Numeric, low: Decimal) -> bool {
    match n.comparator {
        Some(Comparator::Less | Comparator::LessOrEqual) => true,
        None | Some(Comparator::Greater | Comparator::GreaterOrEqual) => n.value < low,
    }
}

/// Whether any value `n` stands for is above the inclusive limit `high`.
fn may_be_above(n: Numeric, high: Decimal) -> bool {
    match n.comparator {
        Some(Comparator::Greater | Comparator::GreaterOrEqual) => true,
        None | Some(Comparator::Less | Comparator::LessOrEqual) => n.value > high,
    }
}

fn quantity(value: &str, unit: &str) -> String {
    if unit.is_empty() { value.to_owned() } else { format!("{value} {unit}") }
}

fn range_text(low: Option<Decimal>, high: Option<Decimal>) -> String {
    match (low, high) {
        (Some(l), Some(h)) => format!("{l}–{h}"),
        (Some(l), None) => format!("≥{l}"),
        (None, Some(h)) => format!("≤{h}"),
        (None, None) => String::new(),
    }
}

fn opt_text(v: Option<impl Display>) -> String {
    v.map_or_else(|| "?".to_owned(), |v| v.to_string())
}

/// 64-bit FNV-1a (Fowler–Noll–Vo), with its published offset basis and prime.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn k_rules() -> AutoverifyRules {
        AutoverifyRules::default_for(Catalog::bundled().test("K").unwrap())
    }

    #[test]
    fn defaults_are_conservative() {
        let r = k_rules();
        assert!(!r.enabled);
        assert!(r.require_qc && r.block_instrument_flags && r.check_measurement_range);
        assert!(r.hold_critical && r.hold_outside_reference);
        assert_eq!(r.delta.as_ref().map(|d| d.window_hours), Some(48));
        assert_eq!(r.hold_comment_codes, ["HEM", "CLOT", "QNS", "LIP", "ICT"]);
        assert_eq!(r.validate(), Ok(()));
        let glu = AutoverifyRules::default_for(Catalog::bundled().test("GLU").unwrap());
        assert_eq!(glu.delta, None);
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_fingerprint_is_stable_and_follows_every_field() {
        let r = k_rules();
        assert_eq!(
            r.canonical(),
            "AV1;enabled=0;qc=1;instrument_flags=1;hemolysis_max=-;icterus_max=-;lipemia_max=-;\
             range=1;critical=1;delta=abs:1,pct:-,rate:-,window_h:48,all:0;autoverify_low=-;\
             autoverify_high=-;reference=1;hold_codes=CLOT,HEM,ICT,LIP,QNS"
        );
        // Pinned: a change here means every stored decision names a different rule set.
        assert_eq!(r.fingerprint(), "AV1-e25350f07da1fbf9");

        // Order, case and trailing zeros do not change what the rules decide, nor the name.
        let same = AutoverifyRules {
            hold_comment_codes: vec![
                "qns".into(),
                "HEM".into(),
                "CLOT".into(),
                "LIP".into(),
                "ICT".into(),
            ],
            delta: r
                .delta
                .clone()
                .map(|d| DeltaLimits { absolute: Some("1.00".parse().unwrap()), ..d }),
            ..r.clone()
        };
        assert_eq!(same.fingerprint(), r.fingerprint());

        let changes: [fn(&mut AutoverifyRules); 13] = [
            |r| r.enabled = true,
            |r| r.require_qc = false,
            |r| r.block_instrument_flags = false,
            |r| r.hemolysis_max = Some(50),
            |r| r.icterus_max = Some(50),
            |r| r.lipemia_max = Some(50),
            |r| r.check_measurement_range = false,
            |r| r.hold_critical = false,
            |r| r.delta = None,
            |r| r.autoverify_low = Some(Decimal::ONE),
            |r| r.autoverify_high = Some(Decimal::TEN),
            |r| r.hold_outside_reference = false,
            |r| {
                r.hold_comment_codes.pop();
            },
        ];
        let mut seen = vec![r.fingerprint()];
        for change in changes {
            let mut changed = r.clone();
            change(&mut changed);
            let fingerprint = changed.fingerprint();
            assert!(!seen.contains(&fingerprint), "{}", changed.canonical());
            seen.push(fingerprint);
        }
    }

    #[test]
    fn rules_survive_a_round_trip_through_storage() {
        let mut r = k_rules();
        r.hemolysis_max = Some(50);
        r.autoverify_high = Some("5.8".parse().unwrap());
        let stored = toml::to_string(&r).unwrap();
        let back: AutoverifyRules = toml::from_str(&stored).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.fingerprint(), r.fingerprint());
    }

    #[test]
    fn bad_rule_sets_are_refused_with_the_fix() {
        let check = |change: fn(&mut AutoverifyRules)| {
            let mut r = k_rules();
            change(&mut r);
            r.validate().unwrap_err().to_string()
        };
        assert_eq!(
            check(|r| r.delta.as_mut().unwrap().absolute = Some("-1".parse().unwrap())),
            "delta absolute limit -1 must not be negative"
        );
        assert_eq!(
            check(|r| r.delta.as_mut().unwrap().absolute = None),
            "the delta check has no limit: set an absolute, percent or per-day limit, or remove it"
        );
        assert_eq!(
            check(|r| r.delta.as_mut().unwrap().window_hours = 0),
            "the delta window of 0 h must be between 1 and 2160 h"
        );
        assert_eq!(
            check(|r| {
                r.autoverify_low = Some(Decimal::TEN);
                r.autoverify_high = Some(Decimal::ONE);
            }),
            "autoverification low 10 is above autoverification high 1"
        );
        assert_eq!(
            check(|r| r.hold_comment_codes.push("hem olysed".into())),
            "specimen condition code \"hem olysed\" must be 1 to 16 letters, digits or underscores"
        );
        assert_eq!(
            check(|r| r.hold_comment_codes = vec!["X".into(); HOLD_CODES_MAX + 1]),
            "33 specimen condition codes; the limit is 32"
        );
    }

    #[test]
    fn rule_codes_are_what_is_stored() {
        for rule in AvRule::ALL {
            let stored = toml::Value::try_from(rule).unwrap();
            assert_eq!(stored.as_str(), Some(rule.code()), "{rule:?}");
            assert!(!rule.label().is_empty());
        }
        let mut sorted = AvRule::ALL;
        sorted.sort();
        assert_eq!(sorted, AvRule::ALL, "trace order is the enum order");
    }
}
