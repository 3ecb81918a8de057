//! `catalog/SOURCES.md` lists every reference interval and every limit of the bundled catalog
//! with its source, in a table written from the catalog files themselves, so the two cannot
//! drift apart: when the catalog changes, this test fails until the table is written again.
//!
//! To write it again: `UPDATE_SOURCES=1 cargo test -p cuvette-domain --test sources`, then read
//! the difference and commit it.

use std::fmt::Write as _;
use std::path::PathBuf;

use toml::Value;

const BEGIN: &str = "<!-- every interval and limit: written by tests/sources.rs -->";
const END: &str = "<!-- end of the written table -->";

fn catalog_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("catalog").join(name)
}

fn entries(file: &str, key: &str) -> Vec<toml::Table> {
    let text = std::fs::read_to_string(catalog_file(file)).expect("the catalog file reads");
    let table: toml::Table = text.parse().expect("the catalog file parses");
    table[key]
        .as_array()
        .expect("a list of entries")
        .iter()
        .map(|e| e.as_table().unwrap().clone())
        .collect()
}

fn number(entry: &toml::Table, key: &str) -> Option<String> {
    match entry.get(key)? {
        Value::Integer(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

fn text(entry: &toml::Table, key: &str) -> Option<String> {
    entry
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// "low–high", "≥low", "≤high"; empty when neither is set.
fn bounds(low: Option<String>, high: Option<String>) -> String {
    match (low, high) {
        (Some(l), Some(h)) => format!("{l}–{h}"),
        (Some(l), None) => format!("≥{l}"),
        (None, Some(h)) => format!("≤{h}"),
        (None, None) => String::new(),
    }
}

/// A partition as the table prints it: "F P1Y–P18Y", "* from P18Y".
fn partition(r: &toml::Table) -> String {
    let sex = text(r, "sex").unwrap_or_else(|| "*".into());
    let ages = match (text(r, "age_min"), text(r, "age_max")) {
        (Some(a), Some(b)) => format!("{a}–{b}"),
        (Some(a), None) => format!("from {a}"),
        (None, Some(b)) => format!("under {b}"),
        (None, None) => "all ages".into(),
    };
    format!("{sex} {ages}")
}

fn intervals(entry: &toml::Table) -> String {
    let Some(Value::Array(list)) = entry.get("reference") else { return String::new() };
    let mut out = Vec::new();
    for r in list.iter().filter_map(Value::as_table) {
        out.push(format!("{}: {}", partition(r), bounds(number(r, "low"), number(r, "high"))));
    }
    out.join("; ")
}

/// The age-partitioned critical limits: "* P0D–P28D: <2.8 >7.8; …".
fn critical_by_age(entry: &toml::Table) -> String {
    let Some(Value::Array(list)) = entry.get("critical_by_age") else { return String::new() };
    let mut out = Vec::new();
    for r in list.iter().filter_map(Value::as_table) {
        let limits: Vec<String> =
            [number(r, "low").map(|l| format!("<{l}")), number(r, "high").map(|h| format!(">{h}"))]
                .into_iter()
                .flatten()
                .collect();
        out.push(format!("{}: {}", partition(r), limits.join(" ")));
    }
    out.join("; ")
}

/// `value (source)`, the source being the entry's own or the section of SOURCES.md that
/// covers the whole family; empty when there is no value.
fn with_source(value: String, own: Option<String>, family: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    format!("{value} ({})", own.unwrap_or_else(|| family.to_owned()))
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn table() -> String {
    let mut out = String::new();
    out.push_str(
        "| Code | Reference intervals (sex, ages) | Source of the intervals | Critical limits | Measurement range | Allowable error | Delta check |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    for (file, key) in [("tests.toml", "test"), ("calculations.toml", "calc")] {
        for e in entries(file, key) {
            let code = text(&e, "code").expect("every entry has a code");
            let reference = intervals(&e);
            let source = if reference.is_empty() {
                String::new()
            } else {
                text(&e, "ref_source")
                    .unwrap_or_else(|| panic!("{code}: intervals without ref_source"))
            };
            let limits: Vec<String> = [
                number(&e, "critical_low").map(|l| format!("<{l}")),
                number(&e, "critical_high").map(|h| format!(">{h}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            let by_age = critical_by_age(&e);
            // With limits by age, critical_source tells where those come from; the test's
            // own limits, at every other age, are the family's of §4.
            let critical = if by_age.is_empty() {
                with_source(limits.join(" "), text(&e, "critical_source"), "§4")
            } else {
                let own = with_source(limits.join(" "), None, "§4");
                let own = if own.is_empty() { own } else { format!("{own} at other ages; ") };
                format!("{own}{}", with_source(by_age, text(&e, "critical_source"), "§4"))
            };
            let amr = with_source(
                bounds(number(&e, "amr_low"), number(&e, "amr_high")),
                text(&e, "amr_source"),
                "§5",
            );
            let tea = {
                let parts: Vec<String> = [
                    number(&e, "tea_percent").map(|p| format!("±{p}%")),
                    number(&e, "tea_absolute").map(|a| format!("±{a}")),
                ]
                .into_iter()
                .flatten()
                .collect();
                with_source(parts.join(" or "), text(&e, "tea_source"), "§6")
            };
            let delta = {
                let parts: Vec<String> =
                    [number(&e, "delta_abs"), number(&e, "delta_percent").map(|p| format!("{p}%"))]
                        .into_iter()
                        .flatten()
                        .collect();
                let window = number(&e, "delta_window_hours")
                    .map(|h| format!(" in {h} h"))
                    .unwrap_or_default();
                let value =
                    if parts.is_empty() { String::new() } else { parts.join(" or ") + &window };
                with_source(value, text(&e, "delta_source"), "§7")
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell(&code),
                cell(&reference),
                cell(&source),
                cell(&critical),
                cell(&amr),
                cell(&tea),
                cell(&delta)
            );
        }
    }
    out
}

#[test]
fn sources_lists_every_interval_and_limit_of_the_catalog_with_its_source() {
    let path = catalog_file("SOURCES.md");
    let sources = std::fs::read_to_string(&path).expect("SOURCES.md reads");
    let (Some(begin), Some(end)) = (sources.find(BEGIN), sources.find(END)) else {
        panic!("SOURCES.md has no table between {BEGIN} and {END}");
    };
    let written = &sources[begin + BEGIN.len()..end];
    let wanted = format!("\n{}", table());
    if written == wanted {
        return;
    }
    if std::env::var_os("UPDATE_SOURCES").is_some() {
        let updated = format!("{}{BEGIN}{wanted}{}", &sources[..begin], &sources[end..]);
        std::fs::write(&path, updated).expect("SOURCES.md is written");
        return;
    }
    panic!(
        "SOURCES.md does not list the catalog's intervals and limits as they now are: run \
         `UPDATE_SOURCES=1 cargo test -p cuvette-domain --test sources`, read the difference and commit it"
    );
}
