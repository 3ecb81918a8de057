//! Tidy checks that keep the project honest about itself.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn architecture_md_describes_every_crate() {
    let architecture =
        std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md exists");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !architecture.contains(&format!("`crates/{name}`")) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "ARCHITECTURE.md has no section for: {missing:?}");
}

#[test]
fn the_readme_gives_the_two_commands_and_ci_runs_the_test_one() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(readme.contains("cargo run --release -p cuvette -- demo"));
    assert!(readme.contains("cargo test --workspace"));
    assert!(ci.contains("cargo test --workspace"), ".ci/run runs the README's test command");
}

/// The crates that must reach data only through the app: the server, the binary, and the test
/// support both of their suites use.
const FACES: &[&str] = &["cuvette-server", "cuvette", "cuvette-testkit"];

#[test]
fn the_server_and_the_cli_reach_data_only_through_the_app() {
    let mut found = Vec::new();
    for krate in FACES {
        let dir = root().join("crates").join(krate);
        // The manifest: no dependency on the store, however it is spelled, except a
        // dev-dependency for examples that measure the store beneath the app.
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let mut section = "";
        for (n, line) in manifest.lines().enumerate() {
            let code = line.split('#').next().unwrap_or_default().trim();
            if code.starts_with('[') {
                section = code;
            }
            let names_store = code.contains("cuvette-store") || code.contains("cuvette_store");
            if names_store && section != "[dev-dependencies]" {
                found.push(format!("crates/{krate}/Cargo.toml:{}: {line} (in {section})", n + 1));
            }
        }
        // The code: no path into the store, no handle on it.
        for sub in ["src", "tests", "benches"] {
            for file in rust_files(&dir.join(sub)) {
                // This file spells out what it looks for.
                // The tidy test names the store to find it; the server's fixtures write rows
                // no use case makes (an audit event of every action), and say so.
                if file.ends_with("cuvette-testkit/tests/tidy.rs")
                    || file.ends_with("cuvette-server/tests/it/fixtures.rs")
                {
                    continue;
                }
                let text = std::fs::read_to_string(&file).unwrap();
                for (n, line) in text.lines().enumerate() {
                    if reaches_the_store(line) {
                        let path = file.strip_prefix(root()).unwrap_or(&file).display().to_string();
                        found.push(format!("{path}:{}: {}", n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "only cuvette-app may use cuvette-store; use the app's use cases and read models \
         (`cuvette_app::records`, `cuvette_app::Database`) instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_store_check_recognises_each_way_in() {
    for line in [
        "use cuvette_store::Store;",
        "use cuvette_app::store::{PatientRow, ResultRow};",
        "let rows = lab.store().materials().await?;",
        "    .store()",
        "fn sent_as(r: &store::ResultRow) -> String {",
    ] {
        assert!(reaches_the_store(line), "{line}");
    }
    for line in [
        "use cuvette_app::records::PatientRow;",
        "let restored = restore::from(backup);",
        "// the result is stored once",
        "let stored = lab.test(&patient, \"K\").await;",
    ] {
        assert!(!reaches_the_store(line), "{line}");
    }
}

/// Whether a line of Rust names the store crate, a `store::` path, or calls `.store()`.
fn reaches_the_store(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or_default();
    let path = code.match_indices("store::").any(|(at, _)| {
        !code[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_')
    });
    path || code.contains("cuvette_store") || code.contains(".store()")
}

/// Every `.rs` file under `dir`, in a stable order; none when `dir` does not exist.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return files };
    let mut entries: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every code the domain's enums store and send: statuses, flags, priorities, reviews, QC
/// statuses and rules, roles, protocols, directions, outcomes, quarantine and outbox states,
/// conditions and audit actions. Built from each enum's `ALL`, so it grows with them.
fn domain_codes() -> std::collections::BTreeSet<&'static str> {
    use cuvette_app::records::{Direction, MessageOutcome, OutboxStatus, Protocol, Quarantine};
    use cuvette_domain::audit::AuditAction;
    use cuvette_domain::qc::{CorrectiveAction, QcStatus, WestgardRule};
    use cuvette_domain::workflow::{
        Priority, ReleaseStatus, SpecimenCondition, SpecimenStatus, TestStatus,
    };
    use cuvette_domain::{Flag, Review, Role};
    let mut codes = std::collections::BTreeSet::new();
    codes.extend(SpecimenStatus::ALL.map(SpecimenStatus::code));
    codes.extend(TestStatus::ALL.map(TestStatus::code));
    codes.extend(ReleaseStatus::ALL.map(ReleaseStatus::code));
    codes.extend(Priority::ALL.map(Priority::code));
    codes.extend(Flag::ALL.map(Flag::code));
    codes.extend(Review::ALL.map(Review::code));
    codes.extend(QcStatus::ALL.map(QcStatus::code));
    codes.extend(WestgardRule::ALL.map(WestgardRule::code));
    codes.extend(CorrectiveAction::ALL.map(CorrectiveAction::code));
    codes.extend(SpecimenCondition::ALL.map(SpecimenCondition::code));
    codes.extend(Role::ALL.map(Role::code));
    codes.extend(AuditAction::ALL.map(AuditAction::code));
    codes.extend(Protocol::ALL.iter().map(|c| c.code()));
    codes.extend(Direction::ALL.iter().map(|c| c.code()));
    codes.extend(MessageOutcome::ALL.iter().map(|c| c.code()));
    codes.extend(Quarantine::ALL.iter().map(|c| c.code()));
    codes.extend(OutboxStatus::ALL.iter().map(|c| c.code()));
    codes
}

#[test]
fn the_app_and_the_server_compare_no_code_as_a_string() {
    let codes = domain_codes();
    let mut found = Vec::new();
    for krate in ["cuvette-app", "cuvette-server"] {
        for file in rust_files(&root().join("crates").join(krate).join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            // A module's own tests may look for a code in what it wrote.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (n, line) in code.lines().enumerate() {
                for literal in compared_literals(line) {
                    if codes.contains(literal.as_str()) {
                        let path = file.strip_prefix(root()).unwrap_or(&file).display().to_string();
                        found.push(format!("{path}:{}: {:?} in {}", n + 1, literal, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a code of the domain is compared as a string; parse it to its enum where it comes in \
         and match on that instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_code_check_recognises_each_comparison() {
    for (line, literal) in [
        (r#"if r.status == "W" {"#, "W"),
        (r#"let stat = "stat" == priority;"#, "stat"),
        (r#"if role != "technologist" {"#, "technologist"),
        (r#"if flags.contains("LL") {"#, "LL"),
        (r#"rules.split(',').any(|r| r.starts_with("R-4s"))"#, "R-4s"),
        (r#"if code.eq_ignore_ascii_case("final") {"#, "final"),
    ] {
        assert_eq!(compared_literals(line), vec![literal.to_owned()], "{line}");
    }
    for line in [
        r#"let label = "final";"#,
        r#"// if r.status == "W" {"#,
        r#"match status { TestStatus::Final => "final" }"#,
        r#"s.code() == code"#,
    ] {
        assert!(compared_literals(line).is_empty(), "{line}");
    }
    let codes = domain_codes();
    for code in ["stat", "LL", "technologist", "final", "rejected", "hl7", "1-3s"] {
        assert!(codes.contains(code), "{code} is a code of the domain");
    }
}

/// The string literals a line of Rust compares something with: either side of `==` or `!=`,
/// or the argument of `contains`, `starts_with`, `ends_with` or `eq_ignore_ascii_case`.
fn compared_literals(line: &str) -> Vec<String> {
    let code = match line.find("//") {
        Some(at) if !line[..at].ends_with(':') => &line[..at],
        _ => line,
    };
    let mut found = Vec::new();
    for op in ["== \"", "!= \""] {
        for (at, _) in code.match_indices(op) {
            found.extend(literal_at(&code[at + op.len() - 1..]));
        }
    }
    for op in ["\" ==", "\" !="] {
        for (at, _) in code.match_indices(op) {
            let before = &code[..=at];
            if let Some(open) = before[..before.len() - 1].rfind('"') {
                found.extend(literal_at(&before[open..]));
            }
        }
    }
    for call in ["contains(\"", "starts_with(\"", "ends_with(\"", "eq_ignore_ascii_case(\""] {
        for (at, _) in code.match_indices(call) {
            found.extend(literal_at(&code[at + call.len() - 1..]));
        }
    }
    found
}

/// The string literal `s` starts with (at its opening quote), without escapes.
fn literal_at(s: &str) -> Option<String> {
    let rest = s.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(rest[..end].to_owned())
}
