//! One link against a scripted peer: the rules of CLSI LIS01-A2 / ASTM E1381-02 §6 one at a
//! time, including the ones a conforming peer never triggers.

use std::time::{Duration, Instant};

use cuvette_astm::frame::{self, FrameEnd};
use cuvette_astm::link::{
    CONTENTION_BACKOFF_COMPUTER, CONTENTION_BACKOFF_INSTRUMENT, MESSAGE_BYTES_MAX, RECEIVE_TIMEOUT,
    SEND_QUEUE_MAX,
};
use cuvette_astm::{Config, Event, Link, Phase, ReceiveAbort, Role, SendError};

use crate::support::{show, t0};

const ENQ: u8 = 0x05;
const ACK: u8 = 0x06;
const EOT: u8 = 0x04;

fn lis() -> Link {
    Link::new(Config::new(Role::Computer))
}

fn instrument() -> Link {
    Link::new(Config::new(Role::Instrument))
}

fn frame(number: u8, text: &[u8], end: FrameEnd) -> Vec<u8> {
    frame::encode(number, text, end).unwrap()
}

fn end_frame(number: u8, text: &[u8]) -> Vec<u8> {
    frame(number, text, FrameEnd::Final)
}

fn transmits(link: &mut Link) -> Vec<String> {
    std::iter::from_fn(|| link.poll_transmit()).map(|b| show(&b)).collect()
}

fn events(link: &mut Link) -> Vec<Event> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

/// A receiving LIS that has granted the line at `now`.
fn receiving(now: Instant) -> Link {
    let mut link = lis();
    link.handle_input(&[ENQ], now);
    assert_eq!(transmits(&mut link), ["<ACK>"]);
    assert_eq!(link.phase(), Phase::Receiving);
    link
}

#[test]
fn eot_in_reply_to_a_frame_is_a_receiver_interrupt_taken_as_ack() {
    // E1381-02 §6.3.5: the receiver may answer EOT; the frame counts as accepted and the
    // sender may continue.
    let now = t0();
    let mut link = instrument();
    link.send(vec![b"H|\\^&".to_vec(), b"L|1|N".to_vec()], now).unwrap();
    assert_eq!(transmits(&mut link), ["<ENQ>"]);
    link.handle_input(&[ACK], now);
    assert_eq!(transmits(&mut link), ["<STX>1H|\\\\^&<CR><ETX>E5<CR><LF>"]);
    link.handle_input(&[EOT], now);
    assert_eq!(transmits(&mut link), ["<STX>2L|1|N<CR><ETX>05<CR><LF>"]);
    link.handle_input(&[ACK], now);
    assert_eq!(transmits(&mut link), ["<EOT>"]);
    assert!(matches!(events(&mut link)[..], [Event::MessageSent(_)]));
    assert_eq!(link.phase(), Phase::Neutral);
}

#[test]
fn the_computer_yields_on_contention_and_waits_twenty_seconds() {
    let start = t0();
    let mut link = lis();
    link.send(vec![b"H|\\^&".to_vec(), b"L|1".to_vec()], start).unwrap();
    assert_eq!(transmits(&mut link), ["<ENQ>"]);
    // The instrument's ENQ crosses ours: stop bidding, answer nothing (E1381-02 §6.2.7.1).
    link.handle_input(&[ENQ], start);
    assert_eq!(transmits(&mut link), Vec::<String>::new());
    assert_eq!(link.phase(), Phase::Neutral);
    assert_eq!(link.poll_timeout(), Some(start + CONTENTION_BACKOFF_COMPUTER));
    // The instrument bids again after 1 s: granted, and its message received.
    let later = start + CONTENTION_BACKOFF_INSTRUMENT;
    link.handle_input(&[ENQ], later);
    assert_eq!(transmits(&mut link), ["<ACK>"]);
    link.handle_input(&end_frame(1, b"H|\\^&\r"), later);
    link.handle_input(&end_frame(2, b"L|1\r"), later);
    link.handle_input(&[EOT], later);
    assert_eq!(transmits(&mut link), ["<ACK>", "<ACK>"]);
    assert_eq!(
        events(&mut link),
        [Event::MessageReceived(vec![b"H|\\^&".to_vec(), b"L|1".to_vec()])]
    );
    // Our own bid waits for the 20 s.
    assert_eq!(link.poll_timeout(), Some(start + CONTENTION_BACKOFF_COMPUTER));
    link.handle_timeout(start + CONTENTION_BACKOFF_COMPUTER - Duration::from_millis(1));
    assert_eq!(transmits(&mut link), Vec::<String>::new());
    link.handle_timeout(start + CONTENTION_BACKOFF_COMPUTER);
    assert_eq!(transmits(&mut link), ["<ENQ>"]);
}

#[test]
fn the_instrument_bids_again_after_one_second_on_contention() {
    let start = t0();
    let mut link = instrument();
    link.send(vec![b"H|\\^&".to_vec()], start).unwrap();
    assert_eq!(transmits(&mut link), ["<ENQ>"]);
    link.handle_input(&[ENQ], start);
    assert_eq!(transmits(&mut link), Vec::<String>::new());
    assert_eq!(link.poll_timeout(), Some(start + CONTENTION_BACKOFF_INSTRUMENT));
    link.handle_timeout(start + CONTENTION_BACKOFF_INSTRUMENT);
    assert_eq!(transmits(&mut link), ["<ENQ>"]);
    assert_eq!(link.phase(), Phase::Establishing);
}

#[test]
fn a_new_enq_after_a_lost_eot_closes_the_session_and_opens_the_next() {
    let now = t0();
    let mut link = receiving(now);
    link.handle_input(&end_frame(1, b"H|\\^&\r"), now);
    link.handle_input(&end_frame(2, b"L|1\r"), now);
    link.handle_input(&[ENQ], now);
    assert_eq!(transmits(&mut link), ["<ACK>", "<ACK>", "<ACK>"]);
    assert_eq!(
        events(&mut link),
        [Event::MessageReceived(vec![b"H|\\^&".to_vec(), b"L|1".to_vec()])]
    );
    assert_eq!(link.phase(), Phase::Receiving);
}

#[test]
fn frames_out_of_sequence_are_rejected() {
    // E1381-02 §6.3.2: the first frame of a transfer is numbered 1; any number other than the
    // expected one or the previous one is rejected.
    let now = t0();
    let mut link = receiving(now);
    link.handle_input(&end_frame(2, b"H|\\^&\r"), now);
    link.handle_input(&end_frame(1, b"H|\\^&\r"), now);
    link.handle_input(&end_frame(3, b"L|1\r"), now);
    link.handle_input(&end_frame(1, b"H|\\^&\r"), now);
    link.handle_input(&end_frame(2, b"L|1\r"), now);
    link.handle_input(&[EOT], now);
    assert_eq!(transmits(&mut link), ["<NAK>", "<ACK>", "<NAK>", "<ACK>", "<ACK>"]);
    assert_eq!(
        events(&mut link),
        [Event::MessageReceived(vec![b"H|\\^&".to_vec(), b"L|1".to_vec()])]
    );
}

#[test]
fn an_overlong_frame_is_rejected_and_the_next_one_read() {
    let now = t0();
    let mut link = receiving(now);
    let mut long = vec![0x02, b'1'];
    long.extend(std::iter::repeat_n(b'x', 300));
    long.extend_from_slice(b"\r\x0300\r\n");
    link.handle_input(&long, now);
    link.handle_input(&end_frame(1, b"H|\\^&\r"), now);
    assert_eq!(transmits(&mut link), ["<NAK>", "<ACK>"]);
}

#[test]
fn frames_with_bad_trailers_are_rejected() {
    let now = t0();
    let mut link = receiving(now);
    let good = end_frame(1, b"H|\\^&\r");
    let mut no_cr = good.clone();
    let cr = no_cr.len() - 2;
    no_cr[cr] = b'x';
    let mut bad_checksum = good.clone();
    let digit = bad_checksum.len() - 3;
    bad_checksum[digit] = b'0';
    let mut lowercase = good.clone();
    lowercase[digit - 1] = lowercase[digit - 1].to_ascii_lowercase();
    link.handle_input(&no_cr, now);
    link.handle_input(&bad_checksum, now);
    link.handle_input(&lowercase, now);
    assert_eq!(transmits(&mut link), ["<NAK>", "<NAK>", "<ACK>"]);
    assert_eq!(show(&good), "<STX>1H|\\\\^&<CR><ETX>E5<CR><LF>");
}

#[test]
fn eot_after_an_intermediate_frame_is_a_sender_abort() {
    let now = t0();
    let mut link = receiving(now);
    link.handle_input(&end_frame(1, b"H|\\^&\r"), now);
    link.handle_input(&frame(2, b"R|1|^^^GLU|", FrameEnd::Intermediate), now);
    link.handle_input(&[EOT], now);
    assert_eq!(
        events(&mut link),
        [Event::ReceiveAborted {
            reason: ReceiveAbort::SenderAborted,
            records: vec![b"H|\\^&".to_vec()]
        }]
    );
    assert_eq!(link.phase(), Phase::Neutral);
}

#[test]
fn eot_inside_a_frame_ends_the_transfer() {
    let now = t0();
    let mut link = receiving(now);
    link.handle_input(&end_frame(1, b"H|\\^&\r"), now);
    link.handle_input(b"\x022L|1\r\x04", now);
    assert_eq!(link.phase(), Phase::Neutral);
    assert_eq!(events(&mut link), [Event::MessageReceived(vec![b"H|\\^&".to_vec()])]);
}

#[test]
fn several_records_in_one_frame_and_a_missing_last_cr() {
    // Tolerated although LIS02-A2 wants one record per frame start; an ETX ends a record.
    let now = t0();
    let mut link = receiving(now);
    link.handle_input(&end_frame(1, b"H|\\^&\rP|1\rL|1"), now);
    link.handle_input(&[EOT], now);
    assert_eq!(
        events(&mut link),
        [Event::MessageReceived(vec![b"H|\\^&".to_vec(), b"P|1".to_vec(), b"L|1".to_vec()])]
    );
}

#[test]
fn noise_on_a_neutral_line_is_ignored() {
    let now = t0();
    let mut link = lis();
    link.handle_input(b"noise\r\n\x06\x15\x04\x02garbage\x03", now);
    assert_eq!(transmits(&mut link), Vec::<String>::new());
    assert_eq!(link.phase(), Phase::Neutral);
    assert_eq!(link.poll_timeout(), None);
}

#[test]
fn noise_in_reply_to_enq_is_ignored() {
    let now = t0();
    let mut link = instrument();
    link.send(vec![b"H|\\^&".to_vec()], now).unwrap();
    assert_eq!(transmits(&mut link), ["<ENQ>"]);
    link.handle_input(b"?\r\n", now);
    assert_eq!(link.phase(), Phase::Establishing);
    link.handle_input(&[ACK], now);
    assert_eq!(link.phase(), Phase::Sending);
}

#[test]
fn the_receive_timer_restarts_with_each_reply() {
    // E1381-02 §6.5.2.2: 30 s from entering the transfer phase or from the last reply.
    let start = t0();
    let mut link = receiving(start);
    let reply_at = start + Duration::from_secs(25);
    link.handle_input(&end_frame(1, b"H|\\^&\r"), reply_at);
    link.handle_timeout(start + RECEIVE_TIMEOUT);
    assert_eq!(link.phase(), Phase::Receiving);
    assert_eq!(link.poll_timeout(), Some(reply_at + RECEIVE_TIMEOUT));
    link.handle_timeout(reply_at + RECEIVE_TIMEOUT);
    assert_eq!(link.phase(), Phase::Neutral);
    assert_eq!(
        events(&mut link),
        [Event::ReceiveAborted {
            reason: ReceiveAbort::Timeout,
            records: vec![b"H|\\^&".to_vec()]
        }]
    );
}

#[test]
fn a_message_beyond_the_limit_is_refused_frame_by_frame() {
    let now = t0();
    let mut link = receiving(now);
    let text = [b'x'; 239];
    let mut record = text.to_vec();
    record.push(b'\r');
    let frames_within = MESSAGE_BYTES_MAX / 240;
    for n in 0..frames_within {
        link.handle_input(&end_frame(((n + 1) % 8) as u8, &record), now);
    }
    assert!(transmits(&mut link).iter().all(|t| t == "<ACK>"));
    let next = ((frames_within + 1) % 8) as u8;
    link.handle_input(&end_frame(next, &record), now);
    assert_eq!(transmits(&mut link), ["<NAK>"]);
    link.handle_input(&[EOT], now);
    assert!(matches!(
        &events(&mut link)[..],
        [Event::ReceiveAborted { reason: ReceiveAbort::TooLarge, records }] if records.len() == frames_within
    ));
}

#[test]
fn send_refuses_what_it_cannot_frame() {
    let now = t0();
    let mut link = lis();
    assert_eq!(link.send(vec![], now), Err(SendError::Empty));
    assert_eq!(
        link.send(vec![b"H|\\^&".to_vec(), vec![]], now),
        Err(SendError::EmptyRecord { record: 2 })
    );
    assert_eq!(
        link.send(vec![b"H|\\^&".to_vec(), b"C|1|a\rb".to_vec()], now),
        Err(SendError::DisallowedByte { record: 2, offset: 5, byte: b'\r' })
    );
    assert_eq!(
        link.send(vec![b"\x02".to_vec()], now),
        Err(SendError::DisallowedByte { record: 1, offset: 0, byte: 0x02 })
    );
    assert!(matches!(
        link.send(vec![vec![b'x'; MESSAGE_BYTES_MAX]], now),
        Err(SendError::TooLarge { .. })
    ));
    for _ in 0..SEND_QUEUE_MAX {
        link.send(vec![b"H|\\^&".to_vec()], now).unwrap();
    }
    assert_eq!(
        link.send(vec![b"H|\\^&".to_vec()], now),
        Err(SendError::QueueFull { limit: SEND_QUEUE_MAX })
    );
    // Nothing refused was queued: one ENQ, for the first accepted message.
    assert_eq!(transmits(&mut link), ["<ENQ>"]);
}

#[test]
fn a_link_receives_while_its_own_message_waits() {
    // A message queued while the other side holds the line goes out after its EOT.
    let now = t0();
    let mut link = receiving(now);
    link.send(vec![b"H|\\^&".to_vec()], now).unwrap();
    assert_eq!(transmits(&mut link), Vec::<String>::new());
    link.handle_input(&end_frame(1, b"H|\\^&\r"), now);
    link.handle_input(&[EOT], now);
    assert_eq!(transmits(&mut link), ["<ACK>", "<ENQ>"]);
    assert_eq!(link.phase(), Phase::Establishing);
}
