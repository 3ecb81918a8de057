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
