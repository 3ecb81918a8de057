//! The Westgard evaluator checked against a second, deliberately naive reading of DOMAIN.md §4.
//!
//! The reference below shares no code with `cuvette_domain::qc` beyond its public types. It
//! rebuilds every series from scratch for every run (no look-back limit), orders results by an
//! explicit (run, level, position) key instead of a stable sort, and enumerates every window of
//! every series literally: "at least `need` of `window` consecutive results beyond the same
//! limit", which reads 2-2s, 4-1s, 3-1s and the mean rules as `need == window` and 2of3-2s as
//! 2 of 3. R-4s pairs every two results of the run. Where the evaluator counts streaks and
//! pairs, the reference counts windows, so a shared misreading is unlikely to hide.
//!
//! The two are compared over thousands of random QC histories from a seeded generator, with
//! z-scores drawn to land exactly on ±1, ±2 and ±3 SD and on the mean, and with long same-side
//! streaks so that 10x and 12x fire.

use std::collections::{BTreeMap, BTreeSet};

use cuvette_domain::qc::WestgardRule::{OneThreeS, OneTwoS, TenX};
use cuvette_domain::qc::{
    ControlResult, QcStatus, RuleSet, Scope, WestgardRule, evaluate_run, evaluate_series,
};

/// One violation as both implementations can name it: rule code, scope, sorted result ids.
type Key = (&'static str, Scope, Vec<i64>);

/// Which series a windowed rule is read on, straight from the "Scope" column.
#[derive(Clone, Copy)]
enum Where {
    /// The current run only; the results found must span at least two levels.
    WithinRun,
    /// Each level's own chronological series.
    EachLevel,
    /// Every level merged (run, then level); the results found must span at least two levels.
    Merged,
}

/// A windowed rule: at least `need` of `window` consecutive results beyond the same limit
/// (above `+limit` or below `-limit`).
struct Windowed {
    window: usize,
    need: usize,
    limit: f64,
    scopes: &'static [Where],
}

/// The DOMAIN.md §4 table, as the reference reads it.
enum Definition {
    /// One result beyond ±limit.
    Single(f64),
    /// One result above +2 SD and another below −2 SD in the same run.
    Range,
    Windowed(Windowed),
}

fn definition(rule: WestgardRule) -> Definition {
    use Where::*;
    let w = |window, need, limit, scopes| {
        Definition::Windowed(Windowed { window, need, limit, scopes })
    };
    match rule.code() {
        "1-2s" => Definition::Single(2.0),
        "1-3s" => Definition::Single(3.0),
        "R-4s" => Definition::Range,
        "2-2s" => w(2, 2, 2.0, &[WithinRun, EachLevel]),
        "4-1s" => w(4, 4, 1.0, &[EachLevel, Merged]),
        "10x" => w(10, 10, 0.0, &[EachLevel, Merged]),
        "8x" => w(8, 8, 0.0, &[EachLevel, Merged]),
        "12x" => w(12, 12, 0.0, &[EachLevel, Merged]),
        "2of3-2s" => w(3, 2, 2.0, &[WithinRun, EachLevel]),
        "3-1s" => w(3, 3, 1.0, &[WithinRun, EachLevel]),
        "6x" => w(6, 6, 0.0, &[EachLevel, Merged]),
        "9x" => w(9, 9, 0.0, &[EachLevel, Merged]),
        other => panic!("the reference does not know {other}"),
    }
}

/// The reference verdict on the run `current` of `results`: every run before it is history.
fn reference(results: &[ControlResult], current: i64, rules: &RuleSet) -> BTreeSet<Key> {
    let mut order: Vec<usize> = (0..results.len()).filter(|&i| results[i].run <= current).collect();
    order.sort_by_key(|&i| (results[i].run, results[i].level, i));
    let merged: Vec<ControlResult> = order.iter().map(|&i| results[i]).collect();
    let is_current = |r: &ControlResult| r.run == current;
    let within: Vec<ControlResult> = merged.iter().copied().filter(|r| is_current(r)).collect();
    let levels: BTreeSet<u8> = merged.iter().map(|r| r.level).collect();
    // Each scope as (scope, series, whether the results found must span two levels).
    let within_run = [(Scope::WithinRun, within.clone(), true)];
    let across_levels = [(Scope::AcrossLevels, merged.clone(), true)];
    let each_level: Vec<(Scope, Vec<ControlResult>, bool)> = levels
        .iter()
        .map(|&level| {
            let series = merged.iter().copied().filter(|r| r.level == level).collect();
            (Scope::Level(level), series, false)
        })
        .collect();

    let mut found = BTreeSet::new();
    for &rule in rules.rules() {
        match definition(rule) {
            Definition::Single(limit) => {
                for r in within.iter().filter(|r| r.z.abs() > limit) {
                    found.insert((rule.code(), Scope::Result, vec![r.id]));
                }
            }
            Definition::Range => {
                let mut ids = BTreeSet::new();
                for a in &within {
                    for b in &within {
                        if a.z > 2.0 && b.z < -2.0 {
                            ids.insert(a.id);
                            ids.insert(b.id);
                        }
                    }
                }
                if !ids.is_empty() {
                    found.insert((rule.code(), Scope::WithinRun, ids.into_iter().collect()));
                }
            }
            Definition::Windowed(def) => {
                for scope in def.scopes {
                    let series: &[(Scope, Vec<ControlResult>, bool)] = match scope {
                        Where::WithinRun => &within_run,
                        Where::EachLevel => &each_level,
                        Where::Merged => &across_levels,
                    };
                    for (scope, series, mixed) in series {
                        let ids = windows(&def, series, *mixed, &is_current);
                        if !ids.is_empty() {
                            found.insert((rule.code(), *scope, ids.into_iter().collect()));
                        }
                    }
                }
            }
        }
    }
    found
}

/// Every window of `def.window` consecutive results ending at each position of the current run
/// (shorter at the start of the series), the results in it beyond the same limit, kept when there are at
/// least `def.need` of them, they span two levels if `mixed`, and one is from the current run.
fn windows(
    def: &Windowed,
    series: &[ControlResult],
    mixed: bool,
    is_current: &dyn Fn(&ControlResult) -> bool,
) -> BTreeSet<i64> {
    let mut ids = BTreeSet::new();
    // The series is in run order and ends with the current run, so a window ending before
    // the current run's first result holds none of its results: start there.
    let first_current = series.iter().position(is_current).unwrap_or(series.len());
    for end in first_current..series.len() {
        let start = (end + 1).saturating_sub(def.window);
        let window = &series[start..=end];
        let above: Vec<&ControlResult> = window.iter().filter(|r| r.z > def.limit).collect();
        let below: Vec<&ControlResult> = window.iter().filter(|r| r.z < -def.limit).collect();
        for beyond in [above, below] {
            let levels = || beyond.iter().map(|r| r.level).collect::<BTreeSet<u8>>().len();
            if beyond.len() >= def.need
                && beyond.iter().any(|r| is_current(r))
                && (!mixed || levels() >= 2)
            {
                ids.extend(beyond.iter().map(|r| r.id));
            }
        }
    }
    ids
}

fn status(found: &BTreeSet<Key>) -> QcStatus {
    if found.iter().any(|(code, _, _)| *code != "1-2s") {
        QcStatus::Rejected
    } else if found.is_empty() {
        QcStatus::Accepted
    } else {
        QcStatus::Warning
    }
}

/// SplitMix64: small, seeded, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// A random QC history: 1 to 3 levels, 1 to 20 runs, 0 to 2 results per level per run, z on
/// the half-SD grid (hitting every limit exactly) or anywhere in ±3.5 SD, with a tendency to
/// stay on one side of the mean so the long rules fire. The results come back shuffled.
fn history(rng: &mut Rng) -> Vec<ControlResult> {
    let levels = rng.pick(&[1u8, 2, 2, 2, 3, 3, 3]);
    let runs = 1 + rng.below(20) as i64;
    let side = if rng.chance(0.5) { 1.0 } else { -1.0 };
    let stay = rng.pick(&[0.5, 0.8, 0.95, 1.0]);
    let mut results = Vec::new();
    let mut id = 100;
    for run in 0..runs {
        let mut measured = 0;
        for level in 1..=levels {
            let replicates = rng.pick(&[0, 1, 1, 1, 1, 1, 1, 2, 2]);
            let replicates =
                if level == levels && measured == 0 { replicates.max(1) } else { replicates };
            for _ in 0..replicates {
                let magnitude = if rng.chance(0.8) {
                    rng.pick(&[0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 3.5])
                } else {
                    rng.below(3_500_001) as f64 / 1e6
                };
                let sign = if rng.chance(stay) { side } else { -side };
                id += 1 + rng.below(3) as i64;
                results.push(ControlResult { id, run: 10 * run + 7, level, z: sign * magnitude });
                measured += 1;
            }
        }
    }
    rng.shuffle(&mut results);
    results
}

fn rule_set(rng: &mut Rng) -> RuleSet {
    if rng.chance(0.5) {
        RuleSet::new(WestgardRule::ALL)
    } else {
        let mut rules = WestgardRule::ALL.to_vec();
        rng.shuffle(&mut rules);
        RuleSet::new(rules.into_iter().filter(|_| rng.chance(0.5)))
    }
}

fn keys(verdict: &cuvette_domain::qc::RunVerdict) -> BTreeSet<Key> {
    verdict
        .violations
        .iter()
        .map(|v| {
            let mut ids = v.results.clone();
            ids.sort();
            (v.rule.code(), v.scope, ids)
        })
        .collect()
}

#[test]
fn the_evaluator_agrees_with_the_reference_on_random_histories() {
    const SEQUENCES: usize = 5_000;
    let mut rng = Rng(0x5EED_C0FF_EE15_2026);
    let mut fired: BTreeMap<(&'static str, &'static str), usize> = BTreeMap::new();
    let mut runs_judged = 0;
    for sequence in 0..SEQUENCES {
        let results = history(&mut rng);
        let rules = rule_set(&mut rng);
        let evaluations = evaluate_series(&results, &rules);
        let runs: BTreeSet<i64> = results.iter().map(|r| r.run).collect();
        assert_eq!(
            evaluations.iter().map(|e| e.run).collect::<Vec<_>>(),
            runs.into_iter().collect::<Vec<_>>()
        );
        for evaluation in &evaluations {
            let expected = reference(&results, evaluation.run, &rules);
            let actual = keys(&evaluation.verdict);
            assert_eq!(
                actual, expected,
                "sequence {sequence}, run {}, rules {rules}\nresults: {results:?}",
                evaluation.run
            );
            assert_eq!(evaluation.verdict.status, status(&expected), "sequence {sequence}");
            for (code, scope, _) in &expected {
                let kind = match scope {
                    Scope::Result => "result",
                    Scope::WithinRun => "within run",
                    Scope::Level(_) => "level",
                    Scope::AcrossLevels => "across levels",
                };
                *fired.entry((code, kind)).or_default() += 1;
            }
            runs_judged += 1;
        }

        // The last run judged on its own, with the history handed over in shuffled order:
        // whole (run, level) groups are shuffled, since the order of replicates of one level
        // within a run is the order they were given in.
        let last = evaluations.last().expect("every history has a run").run;
        let mut earlier: Vec<ControlResult> =
            results.iter().copied().filter(|r| r.run < last).collect();
        let mut groups: Vec<(i64, u8)> = earlier.iter().map(|r| (r.run, r.level)).collect();
        groups.sort();
        groups.dedup();
        rng.shuffle(&mut groups);
        earlier.sort_by_key(|r| groups.iter().position(|g| *g == (r.run, r.level)));
        let run: Vec<ControlResult> = results.iter().copied().filter(|r| r.run == last).collect();
        let verdict = evaluate_run(&earlier, &run, &rules);
        assert_eq!(keys(&verdict), reference(&results, last, &rules), "sequence {sequence}");
    }

    // The comparison means something only if every rule fired in every scope it has.
    let expected_scopes = [
        ("1-2s", "result"),
        ("1-3s", "result"),
        ("R-4s", "within run"),
        ("2-2s", "within run"),
        ("2-2s", "level"),
        ("2of3-2s", "within run"),
        ("2of3-2s", "level"),
        ("3-1s", "within run"),
        ("3-1s", "level"),
        ("4-1s", "level"),
        ("4-1s", "across levels"),
        ("6x", "level"),
        ("6x", "across levels"),
        ("8x", "level"),
        ("8x", "across levels"),
        ("9x", "level"),
        ("9x", "across levels"),
        ("10x", "level"),
        ("10x", "across levels"),
        ("12x", "level"),
        ("12x", "across levels"),
    ];
    for key in expected_scopes {
        let times = fired.get(&key).copied().unwrap_or(0);
        assert!(times >= 500, "{key:?} fired only {times} times in {runs_judged} runs: {fired:?}");
    }
    assert_eq!(fired.len(), expected_scopes.len(), "unexpected scopes: {fired:?}");
}

/// The reference is only worth comparing against if it reads the table right on cases worked
/// by hand.
#[test]
fn the_reference_reads_the_table_right() {
    let r = |id, run, level, z| ControlResult { id, run, level, z };
    let codes = |results: &[ControlResult], run, rules: &[WestgardRule]| -> Vec<Key> {
        reference(results, run, &RuleSet::new(rules.iter().copied())).into_iter().collect()
    };
    let all = &WestgardRule::ALL;

    // 2-2s across runs on level 1; 2of3-2s sees the same pair (2 of the last 3 of level 1).
    let results = [r(1, 1, 1, 2.5), r(2, 1, 2, 0.0), r(3, 2, 1, 2.5), r(4, 2, 2, 0.0)];
    assert_eq!(
        codes(&results, 2, all),
        [
            ("1-2s", Scope::Result, vec![3]),
            ("2-2s", Scope::Level(1), vec![1, 3]),
            ("2of3-2s", Scope::Level(1), vec![1, 3]),
        ]
    );
    // Exactly on the limits: nothing at all. 2.0 is not beyond 2 SD, 1.0 not beyond 1 SD.
    let results = [r(1, 1, 1, 2.0), r(2, 1, 2, -2.0), r(3, 1, 3, 1.0)];
    assert_eq!(codes(&results, 1, all), Vec::<Key>::new());
    // Exactly 3.0 SD is a 1-2s warning, not 1-3s; exactly at the mean is on neither side.
    let mut results: Vec<_> = (1..=9).map(|i| r(i, i, 1, 0.5)).collect();
    results.push(r(10, 10, 1, 3.0));
    assert_eq!(
        codes(&results, 10, &[OneTwoS, OneThreeS, TenX]),
        [("1-2s", Scope::Result, vec![10]), ("10x", Scope::Level(1), (1..=10).collect())]
    );
    results[4].z = 0.0;
    assert_eq!(
        codes(&results, 10, &[OneTwoS, OneThreeS, TenX]),
        [("1-2s", Scope::Result, vec![10])]
    );
    // A pair that is only history is not reported with a clean current run.
    let results = [r(1, 1, 1, 2.5), r(2, 2, 1, 2.5), r(3, 3, 1, 0.5)];
    assert_eq!(codes(&results, 3, all), Vec::<Key>::new());
    // 4-1s across levels over two runs of two levels, and nothing per level.
    let results = [r(1, 1, 1, 1.5), r(2, 1, 2, 1.5), r(3, 2, 1, 1.5), r(4, 2, 2, 1.5)];
    assert_eq!(codes(&results, 2, all), [("4-1s", Scope::AcrossLevels, vec![1, 2, 3, 4])]);
    // R-4s within the run, never across runs.
    let results = [r(1, 1, 1, 2.5), r(2, 2, 1, -2.5), r(3, 2, 2, 0.0)];
    assert!(codes(&results, 2, all).iter().all(|(c, _, _)| *c != "R-4s"));
}
