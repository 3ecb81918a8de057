//! Delta checks: is this result plausible next to the patient's previous one?
//!
//! DOMAIN.md §5 (guidance: CLSI EP33-Ed1): the current result x₂ (collected at t₂) is compared
//! with the patient's previous result x₁ (t₁) for the same analyte, only when the two were
//! collected within the window. A failed check holds the result for review (a possible
//! mislabelled, diluted or contaminated specimen); it never rejects it.
//!
//! Choices, each pinned by a test below:
//! - **Limits are strict.** A limit is exceeded when the magnitude of the change is *greater*
//!   than it (`|Δ| > L_abs`, `|Δ%| > L_pct`, `|Δ/day| > L_rate`); a change exactly at the limit
//!   passes, as in DOMAIN §5 and like the strict critical limits of `evaluation`.
//! - **The window is inclusive** (DOMAIN §5: "only if t₂ − t₁ ≤ window") and symmetric: a prior
//!   result collected *after* the current one (results reach the LIS out of order, e.g. a
//!   recollection analysed before the original) is compared when the two are at most the window
//!   apart, because two specimens that close in time must agree whichever came first. Δ is
//!   always `current − prior`.
//! - **Percent from a prior of zero** has no finite value. A change from 0 to anything else is
//!   larger than any percentage, so a percent limit counts as exceeded (when in doubt, hold);
//!   0 → 0 is a change of 0 %. No division by zero happens.
//! - **Rate with no time in between** (same collection time, or the prior collected later) is
//!   undefined, so the rate limit is *not judged*: the absolute and percent limits still judge
//!   the pair. A rate limit alone therefore never flags such a pair.
//! - **Combined rules** ([`DeltaLimits::require_all`]): the check fails only when every limit
//!   that could be judged is exceeded (e.g. creatinine absolute AND percent, so a change from
//!   0.2 to 0.4 mg/dL is not flagged for being +100 %); otherwise any exceeded limit fails it.
//!
//! Explanations are written the way the bench says them: `delta K +1.9 mmol/L in 6 h, limit
//! 1.0`, `delta CREAT +62% in 20 h, limit 50%`, `delta HGB −3.1 g/dL/day, limit 2.0`. The sign
//! is always written (`+`, or the minus sign U+2212); elapsed time is in hours below 48 h and in
//! days from there on, to one decimal at most.

use std::cmp::Ordering;

use jiff::{SignedDuration, Timestamp};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::catalog::TestDefinition;

/// The window used when a test has delta limits but no window: DOMAIN §5 gives 24 h–7 days as
/// typical, and the bundled catalog's chemistry windows are 48–72 h.
pub const DELTA_WINDOW_HOURS_DEFAULT: u32 = 72;

/// The longest window a rule set may use: 90 days, the longest DOMAIN §5 mentions (MCV as an
/// identification marker).
pub const DELTA_WINDOW_HOURS_MAX: u32 = 90 * 24;

/// Elapsed times below this many hours are written in hours, longer ones in days.
const ELAPSED_IN_HOURS_BELOW: i64 = 48;

/// How far the current result may move from the prior one. Every limit is a magnitude in the
/// test's unit (absolute), in percent of the prior result, or in the test's unit per day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaLimits {
    /// Largest allowed |x₂ − x₁|, in the test's unit.
    #[serde(default)]
    pub absolute: Option<Decimal>,
    /// Largest allowed |x₂ − x₁| / |x₁| × 100.
    #[serde(default)]
    pub percent: Option<Decimal>,
    /// Largest allowed |x₂ − x₁| per day between the collections, in the test's unit per day.
    #[serde(default)]
    pub rate_per_day: Option<Decimal>,
    /// Results further apart than this are not compared (inclusive: exactly the window apart
    /// is compared).
    pub window_hours: u32,
    /// Fail only when every judged limit is exceeded (a combined rule, DOMAIN §5), instead of
    /// when any one is.
    #[serde(default)]
    pub require_all: bool,
}

impl DeltaLimits {
    /// The delta limits the catalog gives a test, or `None` when it gives none. The catalog
    /// says a change fails when it "exceeds either limit", so `require_all` is off; it has no
    /// rate field yet, so `rate_per_day` is `None`. A test with limits but no window gets
    /// [`DELTA_WINDOW_HOURS_DEFAULT`].
    pub fn from_definition(test: &TestDefinition) -> Option<DeltaLimits> {
        if test.delta_abs.is_none() && test.delta_percent.is_none() {
            return None;
        }
        Some(DeltaLimits {
            absolute: test.delta_abs,
            percent: test.delta_percent,
            rate_per_day: None,
            window_hours: test.delta_window_hours.unwrap_or(DELTA_WINDOW_HOURS_DEFAULT),
            require_all: false,
        })
    }

    /// Whether no limit is set (such a check always passes).
    pub fn is_empty(&self) -> bool {
        self.absolute.is_none() && self.percent.is_none() && self.rate_per_day.is_none()
    }

    /// The limits as one stable line, for rule fingerprints: decimals without trailing zeros,
    /// `-` for an absent limit.
    pub fn canonical(&self) -> String {
        format!(
            "abs:{},pct:{},rate:{},window_h:{},all:{}",
            canonical_decimal(self.absolute),
            canonical_decimal(self.percent),
            canonical_decimal(self.rate_per_day),
            self.window_hours,
            u8::from(self.require_all)
        )
    }
}

/// The patient's previous numeric result for the same test, and when its specimen was
/// collected. The caller excludes priors that were corrected or in error (DOMAIN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorResult {
    /// The prior value, in the same unit as the current one.
    pub value: Decimal,
    /// When the prior specimen was collected.
    pub at: Timestamp,
}

/// Which kind of limit a [`LimitCheck`] judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeltaLimitKind {
    /// |Δ| in the test's unit.
    Absolute,
    /// |Δ| in percent of the prior result.
    Percent,
    /// |Δ| per day.
    RatePerDay,
}

/// What one limit said about the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitStatus {
    /// The change is at or within the limit.
    Within,
    /// The change is beyond the limit (or unbounded, see the module notes).
    Exceeded,
    /// The limit could not be applied (a rate with no time between the collections).
    NotJudged,
}

/// One configured limit and what it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitCheck {
    /// Which limit.
    pub kind: DeltaLimitKind,
    /// Its value.
    pub limit: Decimal,
    /// What it said.
    pub status: LimitStatus,
}

/// The numbers of a delta check that compared two results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaMeasure {
    /// The test code, as written in explanations.
    pub test_code: String,
    /// The test's unit ("" when it has none).
    pub unit: String,
    /// The prior value.
    pub prior: Decimal,
    /// The current value.
    pub current: Decimal,
    /// `current − prior`, with the larger of the two scales.
    pub delta: Decimal,
    /// Δ in percent of |prior|; `None` when unbounded (prior 0, current not 0).
    pub percent: Option<Decimal>,
    /// Δ per day; `None` when no time passed between the collections (or the prior was
    /// collected later), or when the rate is too large to represent.
    pub rate_per_day: Option<Decimal>,
    /// `current.at − prior.at`; negative when the prior was collected later.
    pub elapsed: SignedDuration,
    /// Whether the check needed every judged limit exceeded.
    pub require_all: bool,
    /// One entry per configured limit, in the order absolute, percent, rate.
    pub checks: Vec<LimitCheck>,
}

impl DeltaMeasure {
    /// The kinds of limit that were exceeded.
    pub fn exceeded(&self) -> Vec<DeltaLimitKind> {
        self.checks.iter().filter(|c| c.status == LimitStatus::Exceeded).map(|c| c.kind).collect()
    }
}

/// What a delta check found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeltaOutcome {
    /// The patient has no prior numeric result for the test.
    NoPrior {
        /// The test code.
        test_code: String,
    },
    /// The prior result was collected further from this one than the window.
    OutsideWindow {
        /// The test code.
        test_code: String,
        /// `current.at − prior.at`.
        elapsed: SignedDuration,
        /// The window.
        window_hours: u32,
    },
    /// The results were compared and the change is plausible.
    Passed(DeltaMeasure),
    /// The results were compared and the change is beyond the limits: hold for review.
    Failed(DeltaMeasure),
}

impl DeltaOutcome {
    /// Whether the check failed (the result must be reviewed).
    pub fn is_failed(&self) -> bool {
        matches!(self, DeltaOutcome::Failed(_))
    }

    /// The numbers, when the results were compared.
    pub fn measure(&self) -> Option<&DeltaMeasure> {
        match self {
            DeltaOutcome::Passed(m) | DeltaOutcome::Failed(m) => Some(m),
            DeltaOutcome::NoPrior { .. } | DeltaOutcome::OutsideWindow { .. } => None,
        }
    }

    /// One line in the bench's words. A failure names only the exceeded limits
    /// (`delta K +1.9 mmol/L in 6 h, limit 1.0`); a pass names every limit with "within limit".
    pub fn explain(&self) -> String {
        match self {
            DeltaOutcome::NoPrior { test_code } => format!("delta {test_code}: no prior result"),
            DeltaOutcome::OutsideWindow { test_code, elapsed, window_hours } => {
                let when = if elapsed.is_negative() { "later" } else { "earlier" };
                format!(
                    "delta {test_code}: prior result {} {when}, outside the {window_hours} h window",
                    elapsed_text(*elapsed)
                )
            }
            DeltaOutcome::Failed(m) => m
                .checks
                .iter()
                .filter(|c| c.status == LimitStatus::Exceeded)
                .map(|c| clause(m, c))
                .collect::<Vec<_>>()
                .join("; "),
            DeltaOutcome::Passed(m) if m.checks.is_empty() => format!(
                "delta {} {} in {}, no limits set",
                m.test_code,
                quantity(&signed(m.delta, m.delta.scale()), &m.unit),
                elapsed_text(m.elapsed)
            ),
            DeltaOutcome::Passed(m) => {
                let mut text = m.checks.iter().map(|c| clause(m, c)).collect::<Vec<_>>().join("; ");
                if m.require_all && !m.exceeded().is_empty() {
                    text.push_str("; held only when every limit is exceeded");
                }
                text
            }
        }
    }
}

/// Compares the `current` result of test `test_code`, collected `at`, with the patient's
/// `prior` result (DOMAIN §5). `unit` is only used in the explanation.
pub fn delta_check(
    test_code: &str,
    unit: &str,
    limits: &DeltaLimits,
    current: Decimal,
    at: Timestamp,
    prior: Option<&PriorResult>,
) -> DeltaOutcome {
    let Some(prior) = prior else {
        return DeltaOutcome::NoPrior { test_code: test_code.to_owned() };
    };
    let elapsed = at.duration_since(prior.at);
    let window = SignedDuration::from_hours(i64::from(limits.window_hours));
    if elapsed.abs() > window {
        return DeltaOutcome::OutsideWindow {
            test_code: test_code.to_owned(),
            elapsed,
            window_hours: limits.window_hours,
        };
    }
    // Saturating: only absurd stored values reach Decimal's bounds, and a saturated change is
    // still beyond every limit, so it holds rather than panics.
    let delta = current.saturating_sub(prior.value);
    let percent = if prior.value.is_zero() {
        // 0 → 0 is no change; 0 → anything else is an unbounded relative change.
        delta.is_zero().then_some(Decimal::ZERO)
    } else {
        delta.checked_mul(Decimal::ONE_HUNDRED).and_then(|d| d.checked_div(prior.value.abs()))
    };
    let elapsed_positive = elapsed.is_positive();
    let rate_per_day = if elapsed_positive {
        // Multiply before dividing so whole fractions of a day stay exact (12 h → ×2).
        delta.checked_mul(Decimal::from(86_400)).and_then(|d| d.checked_div(seconds(elapsed)))
    } else {
        None
    };

    let judge = |measure: Option<Decimal>, limit: Decimal| match measure {
        Some(m) if m.abs() > limit => LimitStatus::Exceeded,
        Some(_) => LimitStatus::Within,
        None => LimitStatus::Exceeded,
    };
    let mut checks = Vec::new();
    if let Some(limit) = limits.absolute {
        checks.push(LimitCheck {
            kind: DeltaLimitKind::Absolute,
            limit,
            status: judge(Some(delta), limit),
        });
    }
    if let Some(limit) = limits.percent {
        checks.push(LimitCheck {
            kind: DeltaLimitKind::Percent,
            limit,
            status: judge(percent, limit),
        });
    }
    if let Some(limit) = limits.rate_per_day {
        let status =
            if elapsed_positive { judge(rate_per_day, limit) } else { LimitStatus::NotJudged };
        checks.push(LimitCheck { kind: DeltaLimitKind::RatePerDay, limit, status });
    }

    let exceeded = checks.iter().filter(|c| c.status == LimitStatus::Exceeded).count();
    let within = checks.iter().filter(|c| c.status == LimitStatus::Within).count();
    let failed = if limits.require_all { exceeded > 0 && within == 0 } else { exceeded > 0 };
    let measure = DeltaMeasure {
        test_code: test_code.to_owned(),
        unit: unit.to_owned(),
        prior: prior.value,
        current,
        delta,
        percent,
        rate_per_day,
        elapsed,
        require_all: limits.require_all,
        checks,
    };
    if failed { DeltaOutcome::Failed(measure) } else { DeltaOutcome::Passed(measure) }
}

/// One limit's clause: `delta K +1.9 mmol/L in 6 h, limit 1.0`.
fn clause(m: &DeltaMeasure, c: &LimitCheck) -> String {
    let code = &m.test_code;
    let limit_word = match c.status {
        LimitStatus::Exceeded => "limit",
        LimitStatus::Within | LimitStatus::NotJudged => "within limit",
    };
    let span = span_text(m.elapsed);
    match (c.kind, c.status) {
        (DeltaLimitKind::Absolute, _) => format!(
            "delta {code} {} {span}, {limit_word} {}",
            quantity(&shown(m.delta, m.delta.scale(), c.limit), &m.unit),
            limit_text(c.limit, m.delta.scale())
        ),
        (DeltaLimitKind::Percent, _) => match m.percent {
            Some(p) => {
                format!("delta {code} {}% {span}, {limit_word} {}%", shown(p, 0, c.limit), c.limit)
            }
            None => format!(
                "delta {code} {} from {} {span}, {limit_word} {}%",
                quantity(&signed(m.delta, m.delta.scale()), &m.unit),
                m.prior,
                c.limit
            ),
        },
        (DeltaLimitKind::RatePerDay, LimitStatus::NotJudged) => {
            let why = if m.elapsed.is_zero() {
                "no time between the collections"
            } else {
                "the prior result was collected later"
            };
            format!("delta {code} per day not judged ({why}), limit {}", c.limit)
        }
        (DeltaLimitKind::RatePerDay, _) => match m.rate_per_day {
            Some(r) => format!(
                "delta {code} {}/day, {limit_word} {}",
                quantity(&shown(r, m.delta.scale(), c.limit), &m.unit),
                limit_text(c.limit, m.delta.scale())
            ),
            None => format!(
                "delta {code} {} {span}: rate too large to compute, limit {}",
                quantity(&signed(m.delta, m.delta.scale()), &m.unit),
                c.limit
            ),
        },
    }
}

/// `value` rounded for display to `dp` places, or more when rounding would put it on the
/// other side of (or onto) `limit`: a failed 50.3 % is never printed as "50%, limit 50%".
fn shown(value: Decimal, dp: u32, limit: Decimal) -> String {
    let side = value.abs().cmp(&limit);
    // Six more places are enough for any limit written with the catalog's precision; past
    // that the exact value is printed.
    for places in dp..=dp + 6 {
        let rounded = value.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero);
        if rounded.abs().cmp(&limit) == side {
            return signed(rounded, places);
        }
    }
    signed(value, value.scale())
}

/// `+1.9`, `−3.1` (U+2212), `0`, with exactly `dp` places.
fn signed(value: Decimal, dp: u32) -> String {
    let body = format!("{:.*}", dp as usize, value.abs());
    match value.cmp(&Decimal::ZERO) {
        Ordering::Greater => format!("+{body}"),
        Ordering::Less => format!("\u{2212}{body}"),
        Ordering::Equal => body,
    }
}

/// A limit in the test's unit, written with at least the result's decimals: the catalog's
/// `delta_abs = 1.0` is read as 1 (a TOML float), but the bench reads "limit 1.0" beside
/// "+1.9".
fn limit_text(limit: Decimal, dp: u32) -> String {
    format!("{:.*}", limit.scale().max(dp) as usize, limit)
}

/// "+1.9 mmol/L", or "+1.9" for a test without a unit.
fn quantity(number: &str, unit: &str) -> String {
    if unit.is_empty() { number.to_owned() } else { format!("{number} {unit}") }
}

/// "in 6 h", or "6 h before the prior result" when the prior was collected later.
fn span_text(elapsed: SignedDuration) -> String {
    if elapsed.is_negative() {
        format!("{} before the prior result", elapsed_text(elapsed))
    } else {
        format!("in {}", elapsed_text(elapsed))
    }
}

/// The magnitude of `elapsed`: "6 h", "6.5 h" below 48 h, else "3 d", "3.3 d".
fn elapsed_text(elapsed: SignedDuration) -> String {
    let secs = seconds(elapsed.abs());
    let (amount, unit) = if elapsed.abs() < SignedDuration::from_hours(ELAPSED_IN_HOURS_BELOW) {
        (secs / Decimal::from(3_600), "h")
    } else {
        (secs / Decimal::from(86_400), "d")
    };
    let amount = amount.round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero);
    format!("{} {unit}", amount.normalize())
}

/// A duration in seconds, exact to the nanosecond.
fn seconds(d: SignedDuration) -> Decimal {
    Decimal::from(d.as_secs()) + Decimal::new(i64::from(d.subsec_nanos()), 9)
}

fn canonical_decimal(d: Option<Decimal>) -> String {
    d.map(|d| d.normalize().to_string()).unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn t0() -> Timestamp {
        "2026-11-24T08:00:00Z".parse().unwrap()
    }

    fn limits(abs: Option<&str>, pct: Option<&str>, rate: Option<&str>) -> DeltaLimits {
        DeltaLimits {
            absolute: abs.map(dec),
            percent: pct.map(dec),
            rate_per_day: rate.map(dec),
            window_hours: 48,
            require_all: false,
        }
    }

    /// Runs a check of `current` against `prior` collected `minutes_before`; returns
    /// (failed, explanation).
    fn check(
        code: &str,
        unit: &str,
        limits: &DeltaLimits,
        prior: &str,
        current: &str,
        minutes_before: i64,
    ) -> (bool, String) {
        let prior =
            PriorResult { value: dec(prior), at: t0() - SignedDuration::from_mins(minutes_before) };
        let outcome = delta_check(code, unit, limits, dec(current), t0(), Some(&prior));
        (outcome.is_failed(), outcome.explain())
    }

    fn failed(text: &str) -> (bool, String) {
        (true, text.to_owned())
    }

    fn passed(text: &str) -> (bool, String) {
        (false, text.to_owned())
    }

    #[test]
    fn absolute_limit_is_strict() {
        let k = limits(Some("1.0"), None, None);
        assert_eq!(
            check("K", "mmol/L", &k, "4.2", "6.1", 6 * 60),
            failed("delta K +1.9 mmol/L in 6 h, limit 1.0")
        );
        // Exactly at the limit passes (strict >), both directions.
        assert_eq!(
            check("K", "mmol/L", &k, "4.2", "5.2", 6 * 60),
            passed("delta K +1.0 mmol/L in 6 h, within limit 1.0")
        );
        assert!(!check("K", "mmol/L", &k, "4.2", "3.2", 6 * 60).0);
        assert_eq!(
            check("K", "mmol/L", &k, "4.2", "3.1", 90).1,
            "delta K \u{2212}1.1 mmol/L in 1.5 h, limit 1.0"
        );
    }

    #[test]
    fn percent_limit_is_relative_to_the_prior_result() {
        let creat = limits(None, Some("50"), None);
        assert_eq!(
            check("CREAT", "mg/dL", &creat, "0.50", "0.81", 20 * 60),
            failed("delta CREAT +62% in 20 h, limit 50%")
        );
        // 0.60 → 0.90 is exactly +50 %: passes.
        assert_eq!(
            check("CREAT", "mg/dL", &creat, "0.60", "0.90", 20 * 60),
            passed("delta CREAT +50% in 20 h, within limit 50%")
        );
        // A falling result: 1.00 → 0.49 is −51 %.
        assert!(check("CREAT", "mg/dL", &creat, "1.00", "0.49", 60).0);
        // Rounding never prints a failure as the limit itself: +50.3 % is not "+50%".
        assert_eq!(
            check("CREAT", "mg/dL", &creat, "1.000", "1.503", 60).1,
            "delta CREAT +50.3% in 1 h, limit 50%"
        );
    }

    #[test]
    fn percent_from_a_negative_prior_keeps_the_direction_of_the_change() {
        // Base excess −4 → −1 rose by 3, which is +75 % of |−4|.
        let be = limits(None, Some("50"), None);
        assert_eq!(
            check("BE", "mmol/L", &be, "-4", "-1", 60),
            failed("delta BE +75% in 1 h, limit 50%")
        );
    }

    #[test]
    fn rate_limit_is_per_day_between_collections() {
        let hgb = limits(None, None, Some("2.0"));
        // −3.1 g/dL over 24 h.
        assert_eq!(
            check("HGB", "g/dL", &hgb, "13.1", "10.0", 24 * 60),
            failed("delta HGB \u{2212}3.1 g/dL/day, limit 2.0")
        );
        // −1.0 g/dL over 12 h is −2.0/day: at the limit, passes.
        assert_eq!(
            check("HGB", "g/dL", &hgb, "13.0", "12.0", 12 * 60),
            passed("delta HGB \u{2212}2.0 g/dL/day, within limit 2.0")
        );
        // The same change over 11 h is faster than the limit.
        assert!(check("HGB", "g/dL", &hgb, "13.0", "12.0", 11 * 60).0);
    }

    #[test]
    fn rate_is_not_judged_without_time_between_the_collections() {
        let rate_only = limits(None, None, Some("2.0"));
        assert_eq!(
            check("HGB", "g/dL", &rate_only, "13.0", "9.0", 0),
            passed("delta HGB per day not judged (no time between the collections), limit 2.0")
        );
        // The absolute limit still judges the pair.
        let both = limits(Some("3.0"), None, Some("2.0"));
        assert_eq!(
            check("HGB", "g/dL", &both, "13.0", "9.0", 0),
            failed("delta HGB \u{2212}4.0 g/dL in 0 h, limit 3.0")
        );
    }

    #[test]
    fn a_prior_collected_later_is_compared_within_the_window() {
        let k = limits(Some("1.0"), None, Some("1.0"));
        let (is_failed, text) = check("K", "mmol/L", &k, "4.0", "5.5", -6 * 60);
        assert!(is_failed);
        assert_eq!(text, "delta K +1.5 mmol/L 6 h before the prior result, limit 1.0");
        // The rate is not computed for it.
        let k_rate = limits(None, None, Some("1.0"));
        assert_eq!(
            check("K", "mmol/L", &k_rate, "4.0", "5.5", -6 * 60).1,
            "delta K per day not judged (the prior result was collected later), limit 1.0"
        );
    }

    #[test]
    fn the_window_is_inclusive() {
        let k = limits(Some("1.0"), None, None); // 48 h
        assert!(check("K", "mmol/L", &k, "4.0", "5.5", 48 * 60).0);
        assert_eq!(
            check("K", "mmol/L", &k, "4.0", "5.5", 48 * 60 + 1),
            passed("delta K: prior result 2 d earlier, outside the 48 h window")
        );
        assert_eq!(
            check("K", "mmol/L", &k, "4.0", "5.5", -(48 * 60 + 1)).1,
            "delta K: prior result 2 d later, outside the 48 h window"
        );
        let one_second_past = PriorResult {
            value: dec("4.0"),
            at: t0() - SignedDuration::from_hours(48) - SignedDuration::from_secs(1),
        };
        let outcome = delta_check("K", "mmol/L", &k, dec("5.5"), t0(), Some(&one_second_past));
        assert!(matches!(outcome, DeltaOutcome::OutsideWindow { window_hours: 48, .. }));
    }

    #[test]
    fn elapsed_time_is_written_in_days_from_48_hours() {
        let mcv = DeltaLimits { window_hours: 168, ..limits(Some("3.0"), None, None) };
        assert_eq!(
            check("MCV", "fL", &mcv, "88", "93", 80 * 60).1,
            "delta MCV +5 fL in 3.3 d, limit 3.0"
        );
        assert_eq!(
            check("MCV", "fL", &mcv, "88", "93", 47 * 60 + 30).1,
            "delta MCV +5 fL in 47.5 h, limit 3.0"
        );
    }

    #[test]
    fn any_exceeded_limit_fails_unless_all_are_required() {
        let any = limits(Some("0.5"), Some("50"), None);
        // 0.20 → 0.40: +0.20 mg/dL (within 0.5) but +100 % (beyond 50 %).
        assert_eq!(
            check("CREAT", "mg/dL", &any, "0.20", "0.40", 60),
            failed("delta CREAT +100% in 1 h, limit 50%")
        );
        let all = DeltaLimits { require_all: true, ..any };
        assert_eq!(
            check("CREAT", "mg/dL", &all, "0.20", "0.40", 60),
            passed(
                "delta CREAT +0.20 mg/dL in 1 h, within limit 0.50; delta CREAT +100% in 1 h, \
                 limit 50%; held only when every limit is exceeded"
            )
        );
        // 1.00 → 2.10: both exceeded, so the combined rule fails too.
        assert_eq!(
            check("CREAT", "mg/dL", &all, "1.00", "2.10", 60),
            failed(
                "delta CREAT +1.10 mg/dL in 1 h, limit 0.50; delta CREAT +110% in 1 h, limit 50%"
            )
        );
    }

    #[test]
    fn a_rate_that_is_not_judged_does_not_block_a_combined_rule() {
        let all = DeltaLimits { require_all: true, ..limits(Some("1.0"), None, Some("2.0")) };
        let (is_failed, _) = check("K", "mmol/L", &all, "4.0", "5.5", 0);
        assert!(is_failed, "the only judged limit (absolute) is exceeded");
    }

    #[test]
    fn a_prior_of_zero_never_divides_by_zero() {
        let pct = limits(None, Some("50"), None);
        // 0 → 0 is no change.
        assert_eq!(
            check("X", "", &pct, "0", "0", 60),
            passed("delta X 0% in 1 h, within limit 50%")
        );
        // 0 → 2 is an unbounded relative change: exceeded.
        assert_eq!(
            check("X", "", &pct, "0", "2", 60),
            failed("delta X +2 from 0 in 1 h, limit 50%")
        );
        // In a combined rule the absolute limit decides.
        let all = DeltaLimits { require_all: true, ..limits(Some("3"), Some("50"), None) };
        assert!(!check("X", "", &all, "0", "2", 60).0);
        assert!(check("X", "", &all, "0", "4", 60).0);
    }

    #[test]
    fn no_prior_and_no_limits() {
        let k = limits(Some("1.0"), None, None);
        let outcome = delta_check("K", "mmol/L", &k, dec("4.0"), t0(), None);
        assert_eq!(outcome, DeltaOutcome::NoPrior { test_code: "K".into() });
        assert_eq!(outcome.explain(), "delta K: no prior result");
        assert_eq!(
            check("K", "mmol/L", &limits(None, None, None), "4.0", "9.0", 60),
            passed("delta K +5.0 mmol/L in 1 h, no limits set")
        );
    }

    #[test]
    fn the_measure_carries_the_numbers() {
        let l = limits(Some("1.0"), Some("20"), Some("2.0"));
        let prior = PriorResult { value: dec("4.0"), at: t0() - SignedDuration::from_hours(12) };
        let outcome = delta_check("K", "mmol/L", &l, dec("5.5"), t0(), Some(&prior));
        let m = outcome.measure().unwrap();
        assert_eq!(m.delta, dec("1.5"));
        assert_eq!(m.percent, Some(dec("37.5")));
        assert_eq!(m.rate_per_day, Some(dec("3")));
        assert_eq!(m.elapsed, SignedDuration::from_hours(12));
        assert_eq!(
            m.exceeded(),
            [DeltaLimitKind::Absolute, DeltaLimitKind::Percent, DeltaLimitKind::RatePerDay]
        );
    }

    #[test]
    fn limits_come_from_the_catalog() {
        let catalog = Catalog::bundled();
        let from = |code: &str| DeltaLimits::from_definition(catalog.test(code).unwrap());
        assert_eq!(from("K"), Some(limits(Some("1.0"), None, None)));
        let creat = from("CREAT").unwrap();
        assert_eq!(
            (creat.absolute, creat.percent, creat.window_hours, creat.require_all),
            (Some(dec("0.5")), Some(dec("50")), 72, false)
        );
        assert_eq!(from("GLU"), None);
        let mut no_window = catalog.test("K").unwrap().clone();
        no_window.delta_window_hours = None;
        assert_eq!(
            DeltaLimits::from_definition(&no_window).unwrap().window_hours,
            DELTA_WINDOW_HOURS_DEFAULT
        );
    }

    #[test]
    fn canonical_form_ignores_trailing_zeros() {
        let a = limits(Some("1.0"), Some("50"), None);
        let b = limits(Some("1.00"), Some("50.0"), None);
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.canonical(), "abs:1,pct:50,rate:-,window_h:48,all:0");
    }
}
