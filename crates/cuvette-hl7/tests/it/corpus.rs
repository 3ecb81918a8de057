//! Every sample message of `test_data/` (copied from the shared corpus, see PROVENANCE.md
//! there) against its `NAME.expected`: what lenient parsing finds, what strict parsing says,
//! and what strict parsing says once the terminators are normalised to CR (which shows the
//! problems an LF file hides behind its first LF).
//!
//! `UPDATE_EXPECT=1 cargo test -p cuvette-hl7 --test it corpus` rewrites the expected files;
//! review the diff.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cuvette_hl7::Message;

fn test_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data")
}

#[test]
fn every_fixture_reads_as_expected() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(test_data())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "hl7"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 21, "the corpus has 21 HL7 samples, found {}", fixtures.len());

    let mut mismatches = Vec::new();
    for fixture in &fixtures {
        let bytes = std::fs::read(fixture).unwrap();
        let actual = describe(&bytes);
        let expected_path = fixture.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            if update {
                std::fs::write(&expected_path, &actual).unwrap();
            } else {
                mismatches.push(format!(
                    "{}:\n--- expected\n{expected}--- actual\n{actual}",
                    fixture.display()
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_expected_file_has_its_fixture() {
    for entry in std::fs::read_dir(test_data()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "expected") {
            assert!(path.with_extension("hl7").exists(), "{} is orphaned", path.display());
        }
    }
}

/// The strict reading of a file whose only sins are a BOM and LF line ends.
fn normalised(bytes: &[u8]) -> Vec<u8> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut out = Vec::with_capacity(bytes.len() + 1);
    let mut previous = 0;
    for &b in bytes {
        match b {
            b'\n' if previous == b'\r' => {}
            b'\n' => out.push(b'\r'),
            _ => out.push(b),
        }
        previous = b;
    }
    if out.last() != Some(&b'\r') {
        out.push(b'\r');
    }
    out
}

fn describe(bytes: &[u8]) -> String {
    let mut out = String::new();
    match Message::parse(bytes) {
        Err(error) => writeln!(out, "lenient: error: {error}").unwrap(),
        Ok(message) => {
            writeln!(out, "lenient: ok").unwrap();
            let s = message.separators();
            // Delimiters are printable ASCII (checked by the parser).
            let declared = [&[s.field()], s.encoding_characters()].concat();
            writeln!(out, "separators: {}", String::from_utf8_lossy(&declared)).unwrap();
            let ids: Vec<String> =
                message.segments().map(|seg| seg.id().escape_ascii().to_string()).collect();
            writeln!(out, "segments ({}): {}", ids.len(), ids.join(" ")).unwrap();
            let msh = message.msh();
            writeln!(out, "MSH index: {}", msh.segment().index()).unwrap();
            for (name, field) in [
                ("MSH-3 sending application", msh.sending_application()),
                ("MSH-4 sending facility", msh.sending_facility()),
                ("MSH-9 message type", msh.message_type().field()),
                ("MSH-10 control ID", msh.control_id()),
                ("MSH-11 processing ID", msh.processing_id()),
                ("MSH-12 version", msh.version()),
            ] {
                writeln!(out, "{name}: {}", field.raw().escape_ascii()).unwrap();
            }
            writeln!(out, "MSH-18 charset: {:?}", msh.charset()).unwrap();
            let obx: Vec<_> = message.segments_with_id("OBX").collect();
            writeln!(out, "OBX count: {}", obx.len()).unwrap();
            if let Some(first) = obx.first() {
                writeln!(out, "first OBX-5 decoded: {}", first.field(5).decoded().escape_ascii())
                    .unwrap();
            }
        }
    }
    let strict = |bytes: &[u8]| match Message::parse_strict(bytes) {
        Ok(message) => format!("ok ({} segments)", message.segment_count()),
        Err(error) => format!("error: {error}"),
    };
    writeln!(out, "strict: {}", strict(bytes)).unwrap();
    writeln!(out, "strict, BOM dropped and LF/CRLF made CR: {}", strict(&normalised(bytes)))
        .unwrap();
    out
}
