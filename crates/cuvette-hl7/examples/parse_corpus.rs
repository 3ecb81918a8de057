//! Parser throughput on a corpus of HL7 v2 files: reads every file into memory, then parses
//! every message and reads every OBX-5 decoded (escapes resolved, as text), over and over for
//! about `SECONDS` seconds, and prints messages/s and MB/s (10^6 bytes).
//!
//! `cargo run --release -p cuvette-hl7 --example parse_corpus -- DIR [SECONDS]`
//!
//! The last line is for scripts (`bench/hl7_parse.sh`):
//! `RESULT impl=cuvette messages=… bytes=… seconds=… msg_per_s=… mb_per_s=… obx_per_pass=…
//! obx5_text_bytes_per_pass=…`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cuvette_hl7::Message;

/// Parses every message and reads every OBX-5 as decoded text; returns (OBX read, UTF-8 bytes
/// of the OBX-5 texts).
fn pass(corpus: &[Vec<u8>]) -> (usize, usize) {
    let (mut obx, mut chars) = (0, 0);
    for bytes in corpus {
        let message = Message::parse(black_box(bytes)).expect("every corpus file parses");
        for segment in message.segments_with_id("OBX") {
            obx += 1;
            chars += black_box(segment.field(5).text()).len();
        }
    }
    (obx, chars)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: parse_corpus DIR [SECONDS]");
        std::process::exit(2);
    };
    let seconds: f64 = args.next().map_or(2.0, |s| s.parse().expect("SECONDS is a number"));
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let corpus: Vec<Vec<u8>> =
        paths.iter().map(|p| std::fs::read(p).expect("a corpus file reads")).collect();
    assert!(!corpus.is_empty(), "no files in {dir}");
    let corpus_bytes: usize = corpus.iter().map(Vec::len).sum();

    // One pass to warm caches and to count what a pass reads.
    let (obx_per_pass, text_bytes_per_pass) = pass(&corpus);

    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut passes = 0usize;
    while started.elapsed() < budget {
        black_box(pass(&corpus));
        passes += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let messages = passes * corpus.len();
    let bytes = passes * corpus_bytes;
    let msg_per_s = messages as f64 / elapsed;
    let mb_per_s = bytes as f64 / elapsed / 1e6;
    println!(
        "cuvette-hl7: {} files, {} passes in {elapsed:.2} s: {msg_per_s:.0} messages/s, {mb_per_s:.1} MB/s",
        corpus.len(),
        passes
    );
    println!(
        "RESULT impl=cuvette messages={messages} bytes={bytes} seconds={elapsed:.4} msg_per_s={msg_per_s:.1} mb_per_s={mb_per_s:.3} obx_per_pass={obx_per_pass} obx5_text_bytes_per_pass={text_bytes_per_pass}"
    );
}
