//! Whether a test's reference intervals and critical limits hold together as a set.
//!
//! A lab's catalog is partitioned by sex and age. What "covered" means here: for each sex, the
//! partitions that apply to it (its own and those for both sexes) must follow one another
//! without a gap and without overlapping, from the youngest age they start at up to the
//! oldest they reach. A test may deliberately have no interval below some age (the source
//! gives none for neonates): such patients are shown "No reference interval for this age" and
//! sent to a technologist. But a hole in the middle (an interval up to 18 years and the next
//! from 19) or two intervals for the same age (which one would judge the result?) is a mistake
//! of the file, and is refused naming the ages. A critical limit must lie outside every
//! reference interval: a result cannot be both within the interval and critical.
//!
//! Ages are compared on the calendar, as a patient's age is counted (`ReferenceInterval::
//! applies_to`): years as twelve months and weeks as seven days, so "P1Y" and "P12M" are the
//! same age, but a month and thirty days are not the same age on every birthday, and two
//! partitions meeting there are refused with the fix.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use jiff::Span;
use rust_decimal::Decimal;

use crate::catalog::{ReferenceInterval, TestDefinition};
use crate::patient::Sex;

/// Why a test's partitions or limits do not hold together; its `Display` names the test, the
/// sex and the ages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionGap {
    /// No interval between two ages, for a sex (or for both, `sex` absent).
    Uncovered {
        /// The test's name.
        test: String,
        /// The sex whose partitions leave the gap; absent when the test has intervals for
        /// both sexes only.
        sex: Option<Sex>,
        /// Where the earlier partition ends.
        from: Age,
        /// Where the next begins.
        to: Age,
    },
    /// Two partitions apply to the same ages.
    Overlap {
        /// The test's name.
        test: String,
        /// The sex both apply to.
        sex: Option<Sex>,
        /// The earlier partition.
        first: Band,
        /// The one it overlaps.
        second: Band,
    },
    /// Two partitions meet at ages written in units that are not the same age on every
    /// birthday (a month and 30 days): on some calendars a gap, on others an overlap.
    UnlikeUnits {
        /// The test's name.
        test: String,
        /// The sex both apply to.
        sex: Option<Sex>,
        /// Where the earlier partition ends.
        end: Age,
        /// Where the next begins.
        start: Age,
    },
    /// A partition that ends where or before it starts.
    Backwards {
        /// The test's name.
        test: String,
        /// The partition.
        band: Band,
    },
    /// Two age partitions of critical limits apply to the same ages.
    CriticalOverlap {
        /// The test's name.
        test: String,
        /// The sex both apply to.
        sex: Option<Sex>,
        /// The earlier partition.
        first: Band,
        /// The one it overlaps.
        second: Band,
    },
    /// A critical limit on the normal side of a reference interval's limit.
    CriticalInside {
        /// The test's name.
        test: String,
        /// The partition whose interval contains the limit.
        band: Band,
        /// Which critical limit.
        side: Side,
        /// The limit.
        limit: Decimal,
        /// The test's unit.
        unit: String,
        /// The reference interval as printed ("45–95").
        interval: String,
    },
}

/// The low or the high critical limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Critical low (LL below it).
    Low,
    /// Critical high (HH above it).
    High,
}

impl fmt::Display for PartitionGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionGap::Uncovered { test, sex, from, to } => {
                write!(f, "{}: no reference interval from {from} to {to}", who(test, *sex))
            }
            PartitionGap::Overlap { test, sex, first, second } => write!(
                f,
                "{}: partitions {} and {} overlap",
                who(test, *sex),
                first.ages(),
                second.ages()
            ),
            PartitionGap::CriticalOverlap { test, sex, first, second } => write!(
                f,
                "{}: critical limits for {} and for {} apply to the same ages: keep one",
                who(test, *sex),
                first.ages(),
                second.ages()
            ),
            PartitionGap::UnlikeUnits { test, sex, end, start } => write!(
                f,
                "{}: one partition ends at {end} and the next starts at {start}, which are not \
                 the same age on every birthday: write both in the same unit",
                who(test, *sex)
            ),
            PartitionGap::Backwards { test, band } => {
                write!(f, "{test}, {band}: the partition ends before it starts")
            }
            PartitionGap::CriticalInside { test, band, side, limit, unit, interval } => {
                let side = match side {
                    Side::Low => "critical low",
                    Side::High => "critical high",
                };
                let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
                write!(
                    f,
                    "{test}, {band}: {side} {limit}{unit} is inside the reference interval {interval}{unit}"
                )
            }
        }
    }
}

fn who(test: &str, sex: Option<Sex>) -> String {
    match sex {
        Some(sex) => format!("{test}, {}", sex.to_string().to_lowercase()),
        None => test.to_owned(),
    }
}

/// An age bound of a partition, as written in the catalog ("P18Y").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Age {
    /// Months (years counted as twelve).
    months: i64,
    /// Days (weeks counted as seven).
    days: i64,
}

impl Age {
    /// Reads an ISO-8601 duration of years, months, weeks and days; `None` for anything else
    /// (hours, or text that is not a duration), which `validate_definition` refuses first.
    pub fn parse(text: &str) -> Option<Age> {
        if !text.starts_with('P') || text.contains('T') {
            return None;
        }
        let span = Span::from_str(text).ok()?;
        Some(Age {
            months: i64::from(span.get_years()) * 12 + i64::from(span.get_months()),
            days: i64::from(span.get_weeks()) * 7 + i64::from(span.get_days()),
        })
    }

    const BIRTH: Age = Age { months: 0, days: 0 };

    /// Whether this age comes before, at or after `other` on every birthday; `None` when it
    /// depends on the calendar (one month against 30 days).
    fn compare(&self, other: &Age) -> Option<Ordering> {
        match (self.months.cmp(&other.months), self.days.cmp(&other.days)) {
            (m, d) if m == d => Some(m),
            (Ordering::Equal, d) => Some(d),
            (m, Ordering::Equal) => Some(m),
            // Months against days: a month is 28 to 31 days on any calendar, so 28 days comes
            // before one year on every birthday, while 30 days and one month may fall either way.
            _ if self.most_days() < other.fewest_days() => Some(Ordering::Less),
            _ if self.fewest_days() > other.most_days() => Some(Ordering::Greater),
            _ => None,
        }
    }

    /// Whether this age comes at or before `other` on every birthday (28 days and one month:
    /// yes, the same day in a February).
    fn at_or_before(&self, other: &Age) -> bool {
        matches!(self.compare(other), Some(Ordering::Less | Ordering::Equal))
            || self.most_days() <= other.fewest_days()
    }

    fn fewest_days(&self) -> i64 {
        self.months * 28 + self.days
    }

    fn most_days(&self) -> i64 {
        self.months * 31 + self.days
    }
}

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: i64, one: &str| {
            if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") }
        };
        let mut parts = Vec::new();
        // Whole years read as years; anything else in months, as the sources write infants'.
        if self.months != 0 && self.months % 12 == 0 {
            parts.push(plural(self.months / 12, "year"));
        } else if self.months != 0 {
            parts.push(plural(self.months, "month"));
        }
        if self.days != 0 || parts.is_empty() {
            parts.push(plural(self.days, "day"));
        }
        f.write_str(&parts.join(" "))
    }
}

/// A partition: its sex and ages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    /// "M", "F" or "*".
    sex: String,
    /// From (inclusive); birth when the catalog gives none.
    min: Age,
    /// To (exclusive); absent for no upper age.
    max: Option<Age>,
}

impl Band {
    /// The partition of an interval; `None` when an age does not read as one.
    pub fn of(interval: &ReferenceInterval) -> Option<Band> {
        let min = match interval.age_min.as_deref() {
            Some(text) => Age::parse(text)?,
            None => Age::BIRTH,
        };
        let max = match interval.age_max.as_deref() {
            Some(text) => Some(Age::parse(text)?),
            None => None,
        };
        Some(Band { sex: interval.sex.clone(), min, max })
    }

    /// Whether some patient's sex is covered by both partitions.
    fn shares_sex(&self, other: &Band) -> bool {
        self.sex == "*" || other.sex == "*" || self.sex == other.sex
    }

    /// Whether some age may fall in both, on some calendar.
    fn may_overlap(&self, other: &Band) -> bool {
        let surely_not_after = |end: &Option<Age>, start: &Age| {
            end.as_ref().is_some_and(|end| end.at_or_before(start))
        };
        !surely_not_after(&self.max, &other.min) && !surely_not_after(&other.max, &self.min)
    }

    /// Whether every patient of `other`'s sexes and ages is surely in this partition.
    fn contains(&self, other: &Band) -> bool {
        let sex = self.sex == "*" || self.sex == other.sex;
        let starts = self.min.at_or_before(&other.min);
        let ends = match (&self.max, &other.max) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs.at_or_before(mine),
        };
        sex && starts && ends
    }

    /// The ages only: "1 month–1 year", "18 years and over".
    pub fn ages(&self) -> String {
        match &self.max {
            Some(max) => format!("{}–{max}", self.min),
            None => format!("{} and over", self.min),
        }
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sex.as_str() {
            "F" => write!(f, "female, {}", self.ages()),
            "M" => write!(f, "male, {}", self.ages()),
            _ => f.write_str(&self.ages()),
        }
    }
}

/// Every way the test's partitions and critical limits fail to hold together, in the order
/// a reader would fix them; empty when they hold.
pub fn check(test: &TestDefinition) -> Vec<PartitionGap> {
    let mut gaps = Vec::new();
    let bands: Vec<(Band, &ReferenceInterval)> =
        test.reference.iter().filter_map(|r| Band::of(r).map(|b| (b, r))).collect();
    for (band, _) in &bands {
        if let Some(max) = &band.max
            && matches!(band.min.compare(max), Some(Ordering::Greater | Ordering::Equal))
        {
            gaps.push(PartitionGap::Backwards { test: test.name.clone(), band: band.clone() });
        }
    }
    if !gaps.is_empty() {
        return gaps;
    }
    let sex_specific = bands.iter().any(|(b, _)| b.sex != "*");
    let sexes: &[Option<Sex>] =
        if sex_specific { &[Some(Sex::Female), Some(Sex::Male)] } else { &[None] };
    for sex in sexes {
        let code = sex.map(|s| s.code());
        let mut of_sex: Vec<&Band> = bands
            .iter()
            .map(|(b, _)| b)
            .filter(|b| b.sex == "*" || Some(b.sex.as_str()) == code)
            .collect();
        of_sex.sort_by_key(|b| (b.min.months, b.min.days));
        for pair in of_sex.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            let test = test.name.clone();
            let gap = match &first.max {
                None => Some(PartitionGap::Overlap {
                    test,
                    sex: *sex,
                    first: first.clone(),
                    second: second.clone(),
                }),
                Some(end) => match end.compare(&second.min) {
                    Some(Ordering::Equal) => None,
                    Some(Ordering::Less) => Some(PartitionGap::Uncovered {
                        test,
                        sex: *sex,
                        from: end.clone(),
                        to: second.min.clone(),
                    }),
                    Some(Ordering::Greater) => Some(PartitionGap::Overlap {
                        test,
                        sex: *sex,
                        first: first.clone(),
                        second: second.clone(),
                    }),
                    None => Some(PartitionGap::UnlikeUnits {
                        test,
                        sex: *sex,
                        end: end.clone(),
                        start: second.min.clone(),
                    }),
                },
            };
            gaps.extend(gap);
        }
    }
    let critical: Vec<(Band, &ReferenceInterval)> =
        test.critical_by_age.iter().filter_map(|r| Band::of(r).map(|b| (b, r))).collect();
    for (band, _) in &critical {
        if let Some(max) = &band.max
            && matches!(band.min.compare(max), Some(Ordering::Greater | Ordering::Equal))
        {
            gaps.push(PartitionGap::Backwards { test: test.name.clone(), band: band.clone() });
        }
    }
    // Critical partitions may leave ages out (the test's own limits apply there), but two
    // for the same age would leave it unclear which limit calls the ward.
    for (i, (first, _)) in critical.iter().enumerate() {
        for (second, _) in &critical[i + 1..] {
            if first.shares_sex(second) && first.may_overlap(second) {
                let sex = match (first.sex.as_str(), second.sex.as_str()) {
                    ("*", "*") => None,
                    ("F", _) | (_, "F") => Some(Sex::Female),
                    _ => Some(Sex::Male),
                };
                gaps.push(PartitionGap::CriticalOverlap {
                    test: test.name.clone(),
                    sex,
                    first: first.clone(),
                    second: second.clone(),
                });
            }
        }
    }
    for (band, interval) in &bands {
        let inside = |side, limit| PartitionGap::CriticalInside {
            test: test.name.clone(),
            band: band.clone(),
            side,
            limit,
            unit: test.unit.clone(),
            interval: interval.display(),
        };
        // Every critical limit that may apply at some age of this band is checked: those of
        // the critical partitions it may overlap (on some calendar), and the test's own
        // unless one partition surely covers the whole band.
        let mut limits: Vec<(Option<Decimal>, Option<Decimal>)> = critical
            .iter()
            .filter(|(c, _)| c.shares_sex(band) && c.may_overlap(band))
            .map(|(_, r)| (r.low, r.high))
            .collect();
        if !critical.iter().any(|(c, _)| c.contains(band)) {
            limits.push((test.critical_low, test.critical_high));
        }
        for (critical_low, critical_high) in limits {
            // A limit equal to the interval's own limit is allowed: a result beyond it is
            // then both outside the interval and critical, never both inside and critical.
            if let (Some(critical), Some(low)) = (critical_low, interval.low)
                && critical > low
            {
                gaps.push(inside(Side::Low, critical));
            }
            if let (Some(critical), Some(high)) = (critical_high, interval.high)
                && critical < high
            {
                gaps.push(inside(Side::High, critical));
            }
        }
    }
    gaps.dedup();
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn interval(
        sex: &str,
        min: Option<&str>,
        max: Option<&str>,
        low: i64,
        high: i64,
    ) -> ReferenceInterval {
        ReferenceInterval {
            sex: sex.into(),
            age_min: min.map(Into::into),
            age_max: max.map(Into::into),
            low: Some(Decimal::from(low)),
            high: Some(Decimal::from(high)),
        }
    }

    fn test_with(name: &str, reference: Vec<ReferenceInterval>) -> TestDefinition {
        let mut t = Catalog::bundled().test("NA").unwrap().clone();
        t.name = name.into();
        t.reference = reference;
        t.critical_low = None;
        t.critical_high = None;
        t.critical_by_age = Vec::new();
        t
    }

    fn words(t: &TestDefinition) -> Vec<String> {
        check(t).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_test_of_the_shipped_catalog_holds_together() {
        let catalog = Catalog::bundled();
        let gaps: Vec<String> = catalog.tests().flat_map(check).map(|g| g.to_string()).collect();
        assert_eq!(gaps, Vec::<String>::new());
    }

    #[test]
    fn an_age_no_partition_covers_between_two_others_is_named_for_the_sex() {
        let sodium = test_with(
            "Sodium",
            vec![
                interval("*", Some("P1Y"), Some("P18Y"), 134, 143),
                interval("M", Some("P19Y"), None, 135, 145),
                interval("F", Some("P19Y"), None, 135, 145),
            ],
        );
        assert_eq!(
            words(&sodium),
            [
                "Sodium, female: no reference interval from 18 years to 19 years",
                "Sodium, male: no reference interval from 18 years to 19 years",
            ]
        );
    }

    #[test]
    fn a_test_may_start_its_intervals_at_any_age_but_not_leave_a_hole() {
        // No interval below one year is a choice (the source gives none), not a gap.
        let adult_only = test_with("Sodium", vec![interval("*", Some("P18Y"), None, 135, 145)]);
        assert_eq!(words(&adult_only), Vec::<String>::new());
        let from_one_year = test_with(
            "Sodium",
            vec![
                interval("*", Some("P1Y"), Some("P18Y"), 134, 143),
                interval("*", Some("P216M"), None, 135, 145),
            ],
        );
        assert_eq!(words(&from_one_year), Vec::<String>::new(), "P216M is P18Y");
    }

    #[test]
    fn overlapping_partitions_are_named() {
        let potassium = test_with(
            "Potassium",
            vec![
                interval("*", Some("P1M"), Some("P12M"), 4, 5),
                interval("*", Some("P6M"), Some("P24M"), 3, 5),
            ],
        );
        assert_eq!(
            words(&potassium),
            ["Potassium: partitions 1 month–1 year and 6 months–2 years overlap"]
        );
        let open_ended = test_with(
            "Potassium",
            vec![interval("F", None, None, 3, 5), interval("F", Some("P18Y"), None, 3, 5)],
        );
        assert_eq!(
            words(&open_ended),
            ["Potassium, female: partitions 0 days and over and 18 years and over overlap"]
        );
        // A partition for both sexes and one for a sex over the same ages: which would judge?
        let creatinine = test_with(
            "Creatinine",
            vec![interval("*", Some("P18Y"), None, 0, 1), interval("M", Some("P18Y"), None, 0, 1)],
        );
        assert_eq!(
            words(&creatinine),
            ["Creatinine, male: partitions 18 years and over and 18 years and over overlap"]
        );
    }

    #[test]
    fn a_month_and_thirty_days_are_not_the_same_boundary() {
        let potassium = test_with(
            "Potassium",
            vec![
                interval("*", Some("P0D"), Some("P1M"), 3, 5),
                interval("*", Some("P30D"), Some("P1Y"), 4, 5),
            ],
        );
        assert_eq!(
            words(&potassium),
            [
                "Potassium: one partition ends at 1 month and the next starts at 30 days, which are not the same age on every birthday: write both in the same unit"
            ]
        );
    }

    #[test]
    fn a_partition_that_ends_before_it_starts_is_named() {
        let potassium = test_with("Potassium", vec![interval("M", Some("P1Y"), Some("P1M"), 3, 5)]);
        assert_eq!(
            words(&potassium),
            ["Potassium, male, 1 year–1 month: the partition ends before it starts"]
        );
    }

    #[test]
    fn a_critical_limit_inside_a_reference_interval_is_named_with_the_partition() {
        let mut glucose = test_with(
            "Glucose",
            vec![
                interval("*", Some("P0D"), Some("P1D"), 40, 95),
                interval("*", Some("P1D"), None, 70, 99),
            ],
        );
        glucose.unit = "mg/dL".into();
        glucose.critical_low = Some(Decimal::from(45));
        glucose.critical_high = Some(Decimal::from(400));
        assert_eq!(
            words(&glucose),
            [
                "Glucose, 0 days–1 day: critical low 45 mg/dL is inside the reference interval 40–95 mg/dL"
            ]
        );
        glucose.critical_low = Some(Decimal::from(40));
        glucose.critical_high = Some(Decimal::from(98));
        assert_eq!(
            words(&glucose),
            [
                "Glucose, 1 day and over: critical high 98 mg/dL is inside the reference interval 70–99 mg/dL"
            ],
            "a critical low at the interval's own low is allowed"
        );
    }

    #[test]
    fn critical_limits_by_age_may_leave_ages_to_the_tests_own_but_not_overlap() {
        let mut potassium = test_with(
            "Potassium",
            vec![
                interval("*", Some("P0D"), Some("P1M"), 4, 6),
                interval("*", Some("P1M"), None, 3, 5),
            ],
        );
        potassium.critical_low = Some(Decimal::from(2));
        potassium.critical_high = Some(Decimal::from(7));
        potassium.critical_by_age = vec![interval("*", Some("P0D"), Some("P28D"), 2, 8)];
        assert_eq!(words(&potassium), Vec::<String>::new(), "from 28 days the test's own apply");
        potassium.critical_by_age.push(interval("F", Some("P14D"), Some("P1Y"), 2, 7));
        assert_eq!(
            words(&potassium),
            [
                "Potassium, female: critical limits for 0 days–28 days and for 14 days–1 year apply to the same ages: keep one"
            ]
        );
    }

    #[test]
    fn the_tests_own_critical_limits_are_checked_only_where_no_partition_surely_covers_a_band() {
        let mut potassium = test_with(
            "Potassium",
            vec![
                interval("*", Some("P0D"), Some("P1M"), 4, 6),
                interval("*", Some("P1M"), Some("P18Y"), 3, 5),
                interval("*", Some("P18Y"), None, 4, 5),
            ],
        );
        potassium.critical_by_age = vec![
            interval("*", Some("P0D"), Some("P28D"), 2, 8),
            interval("*", Some("P28D"), Some("P18Y"), 2, 7),
        ];
        // A month is at least 28 days, so the child's partition from 28 days surely covers
        // the band from one month: the test's own critical low, above that band's lower limit,
        // applies only from 18 years and is not checked against it.
        potassium.critical_low = Some(Decimal::from(4));
        assert_eq!(words(&potassium), Vec::<String>::new(), "equal to the interval's low");
        potassium.critical_low = Some(Decimal::new(45, 1));
        assert_eq!(
            words(&potassium),
            [
                "Potassium, 0 days–1 month: critical low 4.5 mmol/L is inside the reference interval 4–6 mmol/L",
                "Potassium, 18 years and over: critical low 4.5 mmol/L is inside the reference interval 4–5 mmol/L",
            ],
            "28 days and one month may fall either way, so the newborn band is checked too"
        );
    }

    #[test]
    fn a_critical_limit_by_age_inside_an_interval_it_may_meet_is_named() {
        let mut glucose = test_with(
            "Glucose",
            vec![
                interval("*", Some("P0D"), Some("P1M"), 40, 95),
                interval("*", Some("P1M"), None, 70, 99),
            ],
        );
        glucose.unit = "mg/dL".into();
        // 28 days and one month are not the same age on every calendar: the newborn's
        // limits are checked against both intervals they may meet.
        glucose.critical_by_age = vec![interval("*", Some("P0D"), Some("P28D"), 45, 300)];
        assert_eq!(
            words(&glucose),
            [
                "Glucose, 0 days–1 month: critical low 45 mg/dL is inside the reference interval 40–95 mg/dL"
            ]
        );
        // The test's own limits are checked wherever no single partition covers the band.
        glucose.critical_by_age = vec![interval("*", Some("P0D"), Some("P1M"), 30, 300)];
        glucose.critical_low = Some(Decimal::from(50));
        assert_eq!(words(&glucose), Vec::<String>::new(), "50 is below the 70 from one month");
        glucose.critical_low = Some(Decimal::from(75));
        assert_eq!(
            words(&glucose),
            [
                "Glucose, 1 month and over: critical low 75 mg/dL is inside the reference interval 70–99 mg/dL"
            ]
        );
    }

    #[test]
    fn ages_read_as_the_sources_write_them() {
        let age = |t: &str| Age::parse(t).unwrap().to_string();
        assert_eq!(age("P0D"), "0 days");
        assert_eq!(age("P1D"), "1 day");
        assert_eq!(age("P2W"), "14 days");
        assert_eq!(age("P18Y"), "18 years");
        assert_eq!(age("P12M"), "1 year");
        assert_eq!(age("P18M"), "18 months");
        assert_eq!(age("P1M15D"), "1 month 15 days");
        assert_eq!(Age::parse("PT48H"), None);
    }
}
