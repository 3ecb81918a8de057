//! Parser throughput on a corpus of HL7 v2 files: reads every file into memory, then parses
//! every message and reads every OBX-5 decoded (escapes resolved, as text), over and over for
//! about `SECONDS` seconds, and prints messages/s and MB/s (10^6 bytes).
//!
//! Then, in the same run, the parser against a plain `memchr` split of the same bytes (segments
//! on CR, fields on `|`, repetitions on `~`, components on `^`; no lenient reading, no checks,
//! no index), on two workloads that read raw bytes only, so that the ratio is the cost of the
//! parser's structure and nothing else:
//!
//! - **every OBX-5**: find the OBX segments and read field 5, as a result interface does;
//! - **every field and component**: every field of every segment by its number
//!   (`segment.field(n)`, as the ingest reads OBX-3, OBX-5, OBX-6…), and every repetition and
//!   component of it.
//!
//! Each side gets about `SECONDS` seconds per workload, in alternating slices so that a noisy
//! machine slows both alike; each ratio is Cuvette's messages/s over the split's.
//!
//! `cargo run --release -p cuvette-hl7 --example parse_corpus -- DIR [SECONDS]`
//!
//! The last two lines are for scripts (`bench/hl7_parse.sh`):
//! `RESULT impl=cuvette messages=… bytes=… seconds=… msg_per_s=… mb_per_s=… obx_per_pass=…
//! obx5_text_bytes_per_pass=…` and `SPLIT obx5_ratio=… full_ratio=…`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cuvette_hl7::Message;
use memchr::memchr;

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

/// What a comparison pass read: elements and their raw bytes, so that both sides are seen to
/// do the same work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Read {
    elements: usize,
    bytes: usize,
}

impl Read {
    fn add(&mut self, raw: &[u8]) {
        self.elements += 1;
        self.bytes += black_box(raw).len();
    }
}

fn cuvette_obx5(corpus: &[Vec<u8>]) -> Read {
    let mut read = Read::default();
    for bytes in corpus {
        let message = Message::parse(black_box(bytes)).expect("every corpus file parses");
        for segment in message.segments_with_id("OBX") {
            read.add(segment.field(5).raw());
        }
    }
    read
}

fn cuvette_full(corpus: &[Vec<u8>]) -> Read {
    let mut read = Read::default();
    for bytes in corpus {
        let message = Message::parse(black_box(bytes)).expect("every corpus file parses");
        for segment in message.segments() {
            for n in 1..=segment.field_count() {
                for repetition in segment.field(n).repetitions() {
                    for component in repetition.components() {
                        read.add(component.raw());
                    }
                }
            }
        }
    }
    read
}

/// `slice::split` on one byte with `memchr`.
fn split(raw: &[u8], separator: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(raw);
    std::iter::from_fn(move || {
        let now = rest?;
        match memchr(separator, now) {
            Some(at) => {
                rest = Some(&now[at + 1..]);
                Some(&now[..at])
            }
            None => {
                rest = None;
                Some(now)
            }
        }
    })
}

/// The segments: split on CR, the empty piece after the last CR dropped.
fn split_segments(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    split(message, b'\r').filter(|segment| !segment.is_empty())
}

fn split_obx5(corpus: &[Vec<u8>]) -> Read {
    let mut read = Read::default();
    for bytes in corpus {
        for segment in split_segments(black_box(bytes)) {
            if segment.starts_with(b"OBX|") {
                read.add(split(segment, b'|').nth(5).unwrap_or_default());
            }
        }
    }
    read
}

fn split_full(corpus: &[Vec<u8>]) -> Read {
    let mut read = Read::default();
    for bytes in corpus {
        for segment in split_segments(black_box(bytes)) {
            let mut fields = split(segment, b'|');
            fields.next(); // The segment ID.
            if segment.starts_with(b"MSH|") {
                // MSH-1 and MSH-2 are read whole, as the parser reads them.
                read.add(&segment[3..4]);
                read.add(fields.next().unwrap_or_default());
            }
            for field in fields {
                for repetition in split(field, b'~') {
                    for component in split(repetition, b'^') {
                        read.add(component);
                    }
                }
            }
        }
    }
    read
}

/// Runs both sides for about `seconds` each, alternating in slices; returns each side's
/// messages/s.
fn compare(
    corpus: &[Vec<u8>],
    seconds: f64,
    cuvette: fn(&[Vec<u8>]) -> Read,
    split: fn(&[Vec<u8>]) -> Read,
) -> (f64, f64) {
    let (expected, got) = (split(corpus), cuvette(corpus));
    assert_eq!(got, expected, "the parser and the split did not read the same elements");
    const SLICES: u32 = 20;
    let slice = Duration::from_secs_f64(seconds) / SLICES;
    let (mut times, mut passes) = ([Duration::ZERO; 2], [0usize; 2]);
    for _ in 0..SLICES {
        for (side, run) in [cuvette, split].into_iter().enumerate() {
            let started = Instant::now();
            while started.elapsed() < slice {
                black_box(run(corpus));
                passes[side] += 1;
            }
            times[side] += started.elapsed();
        }
    }
    let rate = |side: usize| (passes[side] * corpus.len()) as f64 / times[side].as_secs_f64();
    (rate(0), rate(1))
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

    let (obx5, obx5_split) = compare(&corpus, seconds, cuvette_obx5, split_obx5);
    let (full, full_split) = compare(&corpus, seconds, cuvette_full, split_full);
    println!("against a plain memchr split of the same bytes, same run (raw bytes, messages/s):");
    for (workload, cuvette, split) in
        [("every OBX-5", obx5, obx5_split), ("every field and component", full, full_split)]
    {
        println!(
            "  {workload:<26} cuvette-hl7 {cuvette:>9.0}   split {split:>9.0}   ratio {:.2}",
            cuvette / split
        );
    }
    println!(
        "RESULT impl=cuvette messages={messages} bytes={bytes} seconds={elapsed:.4} msg_per_s={msg_per_s:.1} mb_per_s={mb_per_s:.3} obx_per_pass={obx_per_pass} obx5_text_bytes_per_pass={text_bytes_per_pass}"
    );
    println!("SPLIT obx5_ratio={:.3} full_ratio={:.3}", obx5 / obx5_split, full / full_split);
}
