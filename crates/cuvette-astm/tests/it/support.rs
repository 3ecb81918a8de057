//! Shared test support: the two-link `Pair` in virtual time, expect files, byte display.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cuvette_astm::{Config, Event, Link, Phase, Role};

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data")
}

/// Files of one folder of `test_data` with the given extension, sorted.
pub fn inputs(folder: &str, extension: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(data_dir().join(folder))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no .{extension} files in test_data/{folder}");
    paths
}

/// Compares `actual` with the `.expected` file beside `input`; `UPDATE_EXPECT=1` rewrites it.
pub fn check_expected(input: &Path, actual: &str) {
    let path = input.with_extension("expected");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing; run with UPDATE_EXPECT=1", path.display()));
    assert_eq!(expected, actual, "{} differs", path.display());
}

/// Bytes for a human: printable ASCII as is, control characters by name, others as `\xNN`.
pub fn show(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            0x02 => out.push_str("<STX>"),
            0x03 => out.push_str("<ETX>"),
            0x04 => out.push_str("<EOT>"),
            0x05 => out.push_str("<ENQ>"),
            0x06 => out.push_str("<ACK>"),
            0x0A => out.push_str("<LF>"),
            0x0D => out.push_str("<CR>"),
            0x15 => out.push_str("<NAK>"),
            0x17 => out.push_str("<ETB>"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7E => out.push(char::from(b)),
            _ => write!(out, "\\x{b:02X}").unwrap(),
        }
    }
    out
}

/// A fixed starting point for virtual time. `Instant` has no constructor, so one reading of
/// the clock anchors it; everything after is that instant plus durations the test chooses.
pub fn t0() -> Instant {
    Instant::now()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Instrument,
    Lis,
}

/// What a fault injector does to one transmission.
pub type Fault = Box<dyn FnMut(Side, &[u8]) -> Option<Vec<u8>>>;

/// An instrument and an LIS joined by a wire with no delay, driven in virtual time (quinn's
/// test `Pair`). A fault injector may drop or change any transmission.
pub struct Pair {
    pub instrument: Link,
    pub lis: Link,
    pub start: Instant,
    pub now: Instant,
    /// Every transmission as sent (before faults), with when and by whom.
    pub wire: Vec<(Duration, Side, Vec<u8>)>,
    pub instrument_events: Vec<(Duration, Event)>,
    pub lis_events: Vec<(Duration, Event)>,
    /// Whether `drive` drains the LIS's events (false lets them pile up, to make it busy).
    pub drain_lis_events: bool,
    fault: Option<Fault>,
}

impl Pair {
    pub fn new() -> Pair {
        let start = t0();
        Pair {
            instrument: Link::new(Config::new(Role::Instrument)),
            lis: Link::new(Config::new(Role::Computer)),
            start,
            now: start,
            wire: Vec::new(),
            instrument_events: Vec::new(),
            lis_events: Vec::new(),
            drain_lis_events: true,
            fault: None,
        }
    }

    pub fn with_fault(fault: impl FnMut(Side, &[u8]) -> Option<Vec<u8>> + 'static) -> Pair {
        Pair { fault: Some(Box::new(fault)), ..Pair::new() }
    }

    /// A pair whose LIS holds back the final ACK until the test decides
    /// ([`Config::defer_final_ack`]).
    pub fn deferring() -> Pair {
        Pair { lis: Link::new(Config::new(Role::Computer).defer_final_ack(true)), ..Pair::new() }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Runs both links until nothing is left to send and no timer is pending.
    pub fn drive(&mut self) {
        self.run(false);
    }

    /// Like [`Pair::drive`], but stops without moving the clock as soon as the line is quiet
    /// and the LIS awaits the application's decision on a complete message.
    pub fn drive_to_decision(&mut self) {
        self.run(true);
    }

    fn run(&mut self, stop_at_decision: bool) {
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some(bytes) = self.instrument.poll_transmit() {
                moved = true;
                if let Some(bytes) = self.transmit(Side::Instrument, bytes) {
                    self.lis.handle_input(&bytes, self.now);
                }
            }
            while let Some(bytes) = self.lis.poll_transmit() {
                moved = true;
                if let Some(bytes) = self.transmit(Side::Lis, bytes) {
                    self.instrument.handle_input(&bytes, self.now);
                }
            }
            let elapsed = self.elapsed();
            while let Some(event) = self.instrument.poll_event() {
                self.instrument_events.push((elapsed, event));
            }
            while self.drain_lis_events
                && let Some(event) = self.lis.poll_event()
            {
                self.lis_events.push((elapsed, event));
            }
            if moved {
                continue;
            }
            if stop_at_decision && self.lis.awaits_decision() {
                return;
            }
            let next = [self.instrument.poll_timeout(), self.lis.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next else { return };
            self.now = self.now.max(next);
            self.instrument.handle_timeout(self.now);
            self.lis.handle_timeout(self.now);
        }
        panic!("the pair did not settle");
    }

    fn transmit(&mut self, side: Side, bytes: Vec<u8>) -> Option<Vec<u8>> {
        assert!(bytes.len() <= cuvette_astm::frame::FRAME_BYTES_MAX, "{}", show(&bytes));
        self.wire.push((self.elapsed(), side, bytes.clone()));
        match &mut self.fault {
            Some(fault) => fault(side, &bytes),
            None => Some(bytes),
        }
    }

    /// The wire as lines `I> …` / `L> …`.
    pub fn transcript(&self) -> Vec<String> {
        self.wire
            .iter()
            .map(|(_, side, bytes)| {
                let who = match side {
                    Side::Instrument => "I>",
                    Side::Lis => "L>",
                };
                format!("{who} {}", show(bytes))
            })
            .collect()
    }

    pub fn assert_neutral(&self) {
        assert_eq!(self.instrument.phase(), Phase::Neutral);
        assert_eq!(self.lis.phase(), Phase::Neutral);
    }
}

/// The records of a message file, split on CR/LF, as a link sends them.
pub fn records_of(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|&b| b == b'\r' || b == b'\n')
        .filter(|r| !r.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}
