//! Arbitrary byte chunks and timeouts into an ASTM E1381 link.
//!
//! Input: one mode byte, then operations `[op, len, len bytes…]`. Mode 0 is a pure receiver;
//! mode 1 also queues messages to send, so arbitrary bytes become the peer's replies.
//! Invariants: no panic; every transmission is one control character or a valid frame of at
//! most `FRAME_BYTES_MAX` bytes; delivered messages respect `MESSAGE_BYTES_MAX`; a receiving
//! link is neutral after any input that ends with EOT.
#![no_main]

use std::time::{Duration, Instant};

use cuvette_astm::frame::{self, ACK, ENQ, EOT, FRAME_BYTES_MAX, NAK};
use cuvette_astm::link::MESSAGE_BYTES_MAX;
use cuvette_astm::{Config, Event, Link, Phase, Role};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let sending = mode & 1 == 1;
    let role = if mode & 2 == 0 { Role::Computer } else { Role::Instrument };
    let mut link = Link::new(Config::new(role));
    let mut now = Instant::now();
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, after) = tail.split_at(n);
        rest = after;
        match op % 4 {
            0 | 1 => {
                let was_sending = matches!(link.phase(), Phase::Sending | Phase::Establishing);
                link.handle_input(chunk, now);
                if !sending && !was_sending && chunk.last() == Some(&EOT) {
                    assert_eq!(link.phase(), Phase::Neutral, "EOT returns a receiver to neutral");
                }
            }
            2 => {
                now += Duration::from_millis(u64::from(*len) * 250);
                link.handle_timeout(now);
            }
            _ => {
                if sending && !chunk.is_empty() {
                    // Whatever `send` accepts, it frames within the limits.
                    let records: Vec<Vec<u8>> =
                        chunk.split(|&b| b == b'\r').map(<[u8]>::to_vec).collect();
                    let _ = link.send(records, now);
                } else if let Some(deadline) = link.poll_timeout() {
                    now = now.max(deadline);
                    link.handle_timeout(now);
                }
            }
        }
        while let Some(bytes) = link.poll_transmit() {
            match bytes[..] {
                [ACK] | [NAK] | [ENQ] | [EOT] => {}
                _ => {
                    assert!(bytes.len() <= FRAME_BYTES_MAX, "frame of {} bytes", bytes.len());
                    assert!(frame::decode(&bytes).is_ok(), "the link sends only valid frames");
                }
            }
        }
        while let Some(event) = link.poll_event() {
            if let Event::MessageReceived(records) | Event::ReceiveAborted { records, .. } = event {
                let total: usize = records.iter().map(|r| r.len() + 1).sum();
                assert!(total <= MESSAGE_BYTES_MAX);
                assert!(records.iter().all(|r| !r.is_empty() && !r.contains(&b'\r')));
            }
        }
    }
    // The connection closes wherever the input ends: a transfer being received is given up,
    // never reported as a message, and the line is not left receiving.
    link.connection_closed();
    while let Some(event) = link.poll_event() {
        assert!(
            !matches!(event, Event::MessageReceived(_) | Event::MessageComplete(_)),
            "a closed connection delivers no message"
        );
    }
    assert_ne!(link.phase(), cuvette_astm::Phase::Receiving);
});
