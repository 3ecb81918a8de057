//! What changed between two versions of a test definition, in the catalog's words: fields,
//! limits, and reference intervals added, removed or changed (an interval is the same
//! partition when its sex and ages are the same).

use rust_decimal::Decimal;

use crate::catalog::{ReferenceInterval, TestDefinition};
use crate::partition::Band;

/// The changes from one version to another, each list in the catalog's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DefinitionDiff {
    /// Descriptive fields: name, LOINC, unit, container, formula, …
    pub fields: Vec<Change>,
    /// Critical limits, measurement range, allowable error and delta-check limits.
    pub limits: Vec<Change>,
    /// Reference intervals, by partition.
    pub intervals: Vec<IntervalChange>,
}

impl DefinitionDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.limits.is_empty() && self.intervals.is_empty()
    }
}

/// One field's value before and after, as the catalog shows it ("" for none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What the catalog calls it: "critical low", "unit".
    pub field: &'static str,
    /// Before.
    pub before: String,
    /// After.
    pub after: String,
}

/// A reference interval added, removed or changed, by its partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntervalChange {
    /// A partition the earlier version did not have.
    Added {
        /// Sex and ages: "female, 1 month–1 year".
        partition: String,
        /// The interval as printed.
        interval: String,
    },
    /// A partition the later version no longer has.
    Removed {
        /// Sex and ages.
        partition: String,
        /// The interval as printed.
        interval: String,
    },
    /// The same partition with other limits.
    Changed {
        /// Sex and ages.
        partition: String,
        /// Before, as printed.
        before: String,
        /// After, as printed.
        after: String,
    },
}

/// What changed from `before` to `after`.
pub fn compare(before: &TestDefinition, after: &TestDefinition) -> DefinitionDiff {
    let mut diff = DefinitionDiff::default();
    let text = |s: &str| s.to_owned();
    let list = |v: &[String]| v.join(" | ");
    let number = |d: Option<Decimal>| d.map(|d| d.to_string()).unwrap_or_default();
    let whole = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    let mut field = |name, b: String, a: String| {
        if b != a {
            diff.fields.push(Change { field: name, before: b, after: a });
        }
    };
    field("name", text(&before.name), text(&after.name));
    field("LOINC", text(&before.loinc), text(&after.loinc));
    field("discipline", text(&before.discipline), text(&after.discipline));
    field("complexity", before.complexity.code().to_owned(), after.complexity.code().to_owned());
    field("specimen", text(&before.specimen), text(&after.specimen));
    field("container", text(&before.container), text(&after.container));
    field("unit", text(&before.unit), text(&after.unit));
    field(
        "result type",
        format!("{:?}", before.result_type).to_lowercase(),
        format!("{:?}", after.result_type).to_lowercase(),
    );
    field("allowed values", list(&before.allowed_values), list(&after.allowed_values));
    field("normal values", list(&before.normal_values), list(&after.normal_values));
    field("decimals", whole(before.decimals), whole(after.decimals));
    field("orderable", yes_no(before.orderable), yes_no(after.orderable));
    let rule = |t: &TestDefinition| t.calculation.clone().unwrap_or_default();
    let (b, a) = (rule(before), rule(after));
    field("inputs", b.inputs.join(", "), a.inputs.join(", "));
    field("formula", b.formula.clone(), a.formula.clone());
    let coefficients = |r: &crate::catalog::CalculationRule| {
        r.coefficients.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")
    };
    field("coefficients", coefficients(&b), coefficients(&a));
    field("valid when", b.valid_when.join("; "), a.valid_when.join("; "));
    field(
        "comment when not valid",
        b.invalid_comment.clone().unwrap_or_default(),
        a.invalid_comment.clone().unwrap_or_default(),
    );

    let mut limit = |name, b: String, a: String| {
        if b != a {
            diff.limits.push(Change { field: name, before: b, after: a });
        }
    };
    limit("critical low", number(before.critical_low), number(after.critical_low));
    limit("critical high", number(before.critical_high), number(after.critical_high));
    // Age-partitioned critical limits read as one line each side: "both sexes, 0 days–28
    // days: 2.8–7.8"; a partition added, removed or changed shows as the whole set changing.
    let by_age = |t: &TestDefinition| {
        t.critical_by_age
            .iter()
            .map(|r| format!("{}: {}", partition(r), r.display()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    limit("critical limits by age", by_age(before), by_age(after));
    limit("measurement range low", number(before.amr_low), number(after.amr_low));
    limit("measurement range high", number(before.amr_high), number(after.amr_high));
    limit("allowable error %", number(before.tea_percent), number(after.tea_percent));
    limit("allowable error, absolute", number(before.tea_absolute), number(after.tea_absolute));
    limit("delta check, absolute", number(before.delta_abs), number(after.delta_abs));
    limit("delta check %", number(before.delta_percent), number(after.delta_percent));
    limit(
        "delta check window (hours)",
        whole(before.delta_window_hours),
        whole(after.delta_window_hours),
    );

    let key = |r: &ReferenceInterval| (r.sex.clone(), r.age_min.clone(), r.age_max.clone());
    for old in &before.reference {
        match after.reference.iter().find(|r| key(r) == key(old)) {
            None => diff.intervals.push(IntervalChange::Removed {
                partition: partition(old),
                interval: old.display(),
            }),
            Some(new) if (new.low, new.high) != (old.low, old.high) => {
                diff.intervals.push(IntervalChange::Changed {
                    partition: partition(old),
                    before: old.display(),
                    after: new.display(),
                })
            }
            Some(_) => {}
        }
    }
    for new in after.reference.iter().filter(|n| !before.reference.iter().any(|o| key(o) == key(n)))
    {
        diff.intervals
            .push(IntervalChange::Added { partition: partition(new), interval: new.display() });
    }
    diff
}

fn yes_no(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

/// "female, 1 month–1 year", "both sexes, 18 years and over"; the catalog's own text when
/// an age does not read (which validation refuses before anything is stored).
fn partition(r: &ReferenceInterval) -> String {
    match (Band::of(r), r.sex.as_str()) {
        (Some(band), "*") => format!("both sexes, {band}"),
        (Some(band), _) => band.to_string(),
        (None, _) => format!(
            "{} {}–{}",
            r.sex,
            r.age_min.as_deref().unwrap_or(""),
            r.age_max.as_deref().unwrap_or("")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn a_changed_limit_an_interval_and_a_name_are_listed_apart() {
        let before = Catalog::bundled().test("K").unwrap().clone();
        let mut after = before.clone();
        after.name = "Potassium, serum".into();
        after.critical_high = Some(Decimal::new(65, 1));
        after.reference[3].high = Some(Decimal::new(53, 1)); // adults
        after.reference.remove(0); // neonates
        after.reference.push(ReferenceInterval {
            sex: "F".into(),
            age_min: Some("P0D".into()),
            age_max: Some("P1M".into()),
            low: Some(Decimal::new(37, 1)),
            high: Some(Decimal::new(59, 1)),
        });
        let diff = compare(&before, &after);
        assert_eq!(
            diff.fields,
            [Change {
                field: "name",
                before: "Potassium".into(),
                after: "Potassium, serum".into()
            }]
        );
        assert_eq!(
            diff.limits,
            [Change { field: "critical high", before: "6.2".into(), after: "6.5".into() }]
        );
        assert_eq!(
            diff.intervals,
            [
                IntervalChange::Removed {
                    partition: "both sexes, 0 days–1 month".into(),
                    interval: "3.7–5.9".into()
                },
                IntervalChange::Changed {
                    partition: "both sexes, 18 years and over".into(),
                    before: "3.5–5.1".into(),
                    after: "3.5–5.3".into()
                },
                IntervalChange::Added {
                    partition: "female, 0 days–1 month".into(),
                    interval: "3.7–5.9".into()
                },
            ]
        );
        assert!(compare(&before, &before).is_empty());
    }
}
