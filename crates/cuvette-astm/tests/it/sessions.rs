//! Recorded E1381 sessions replayed into a receiving link, whole and one byte at a time: the
//! link answers every frame and delivers the reassembled records.

use std::fmt::Write as _;
use std::time::Duration;

use cuvette_astm::{Config, Event, Link, Phase, Role};

use crate::support::{check_expected, inputs, show, t0};

#[test]
fn corpus_sessions_replay_as_expected() {
    for path in inputs("sessions", "bin") {
        let bytes = std::fs::read(&path).unwrap();
        let whole = replay(&[&bytes]);
        let single: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(whole, replay(&single), "{}: one byte at a time", path.display());
        let halves: Vec<&[u8]> = bytes.chunks(bytes.len().div_ceil(2)).collect();
        assert_eq!(whole, replay(&halves), "{}: two reads", path.display());
        check_expected(&path, &whole);
    }
}

/// Feeds the reads to a fresh LIS link, 100 ms apart, and writes down its replies and
/// events.
fn replay(reads: &[&[u8]]) -> String {
    let mut link = Link::new(Config::new(Role::Computer));
    let start = t0();
    let mut out = String::new();
    for (index, read) in reads.iter().enumerate() {
        link.handle_input(read, start + Duration::from_millis(100 * index as u64));
        while let Some(reply) = link.poll_transmit() {
            writeln!(out, "reply {}", show(&reply)).unwrap();
        }
    }
    assert_eq!(link.phase(), Phase::Neutral);
    while let Some(event) = link.poll_event() {
        match event {
            Event::MessageReceived(records) => {
                writeln!(out, "message received").unwrap();
                for record in records {
                    writeln!(out, "record {}", show(&record)).unwrap();
                }
            }
            other => writeln!(out, "{other:?}").unwrap(),
        }
    }
    out
}
