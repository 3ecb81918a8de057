//! Acknowledging after commit ([`Config::defer_final_ack`]): the LIS holds back the ACK of
//! the frame that completes a message's terminator record until the application has stored
//! the message, refuses it (NAK, so the instrument retransmits) when it could not, and gives
//! the message up when no decision comes in time. In virtual time, against a real instrument
//! link and against a scripted one.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use cuvette_astm::frame::{self, FrameEnd};
use cuvette_astm::link::{ACK_TIMEOUT, RECEIVE_TIMEOUT, RETRANSMISSIONS_MAX};
use cuvette_astm::{Config, Event, Link, NothingPending, Phase, ReceiveAbort, Role, SendAbort};

use crate::support::{Pair, Side, data_dir, records_of, show, t0};

const ENQ: u8 = 0x05;
const ACK: u8 = 0x06;
const EOT: u8 = 0x04;

fn cepheid_records() -> Vec<Vec<u8>> {
    let path = data_dir().join("ok/astm-e1394_cepheid-genexpert_hivvl-quantified.astm");
    records_of(&std::fs::read(path).unwrap())
}

fn complete(events: &[(Duration, Event)]) -> Vec<Vec<Vec<u8>>> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::MessageComplete(records) => Some(records.clone()),
            _ => None,
        })
        .collect()
}

fn transmits(link: &mut Link) -> Vec<String> {
    std::iter::from_fn(|| link.poll_transmit()).map(|b| show(&b)).collect()
}

fn events(link: &mut Link) -> Vec<Event> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

fn end_frame(number: u8, text: &[u8]) -> Vec<u8> {
    frame::encode(number, text, FrameEnd::Final).unwrap()
}

/// A deferring LIS that has granted the line at `now`.
fn receiving(now: Instant) -> Link {
    let mut link = Link::new(Config::new(Role::Computer).defer_final_ack(true));
    link.handle_input(&[ENQ], now);
    assert_eq!(transmits(&mut link), ["<ACK>"]);
    link
}

#[test]
fn the_last_frame_is_acknowledged_only_after_the_commit() {
    let records = cepheid_records();
    let mut pair = Pair::deferring();
    let id = pair.instrument.send(records.clone(), pair.now).unwrap();
    pair.drive_to_decision();

    // Every frame but the last was acknowledged; the last waits for the application.
    assert_eq!(complete(&pair.lis_events), std::slice::from_ref(&records));
    let transcript = pair.transcript();
    assert!(transcript.last().unwrap().starts_with("I> <STX>"), "{transcript:#?}");
    assert!(transcript.last().unwrap().contains("L|1|N"), "the terminator's frame");
    assert_eq!(transcript.iter().filter(|l| *l == "L> <ACK>").count(), records.len());
    assert!(pair.lis.awaits_decision());
    assert_eq!(pair.lis.phase(), Phase::Receiving);
    assert_eq!(pair.lis.poll_timeout(), Some(pair.now + RECEIVE_TIMEOUT));
    assert!(pair.instrument_events.is_empty(), "the instrument does not know yet");

    // The application commits the records, then acknowledges.
    let committed = complete(&pair.lis_events).remove(0);
    pair.lis.acknowledge(pair.now).unwrap();
    assert!(!pair.lis.awaits_decision());
    pair.drive();

    assert_eq!(committed, records);
    let transcript = pair.transcript();
    assert_eq!(&transcript[transcript.len() - 2..], ["L> <ACK>", "I> <EOT>"]);
    assert!(matches!(pair.instrument_events[..], [(_, Event::MessageSent(sent))] if sent == id));
    assert_eq!(pair.lis_events.len(), 1, "no second delivery at EOT: {:?}", pair.lis_events);
    pair.assert_neutral();
    assert_eq!(pair.lis.acknowledge(pair.now), Err(NothingPending));
    assert!(pair.elapsed().is_zero());
}

#[test]
fn a_refused_message_is_retransmitted_and_delivered_again() {
    let records = cepheid_records();
    let mut pair = Pair::deferring();
    let id = pair.instrument.send(records.clone(), pair.now).unwrap();
    pair.drive_to_decision();
    let final_frame = pair.transcript().last().unwrap().clone();

    // The database failed: NAK. The instrument sends the same frame again (E1381-02
    // §6.5.1.2), which completes the message again.
    pair.lis.refuse(pair.now).unwrap();
    pair.drive_to_decision();
    assert_eq!(complete(&pair.lis_events), [records.clone(), records.clone()]);
    let transcript = pair.transcript();
    assert_eq!(&transcript[transcript.len() - 2..], ["L> <NAK>".to_string(), final_frame]);
    assert!(pair.lis.awaits_decision());

    // Stored this time.
    pair.lis.acknowledge(pair.now).unwrap();
    pair.drive();
    assert!(matches!(pair.instrument_events[..], [(_, Event::MessageSent(sent))] if sent == id));
    assert_eq!(pair.lis_events.len(), 2);
    pair.assert_neutral();
}

#[test]
fn six_refusals_make_the_instrument_give_the_message_up() {
    let records = cepheid_records();
    let mut pair = Pair::deferring();
    let id = pair.instrument.send(records.clone(), pair.now).unwrap();
    for _ in 0..RETRANSMISSIONS_MAX {
        pair.drive_to_decision();
        pair.lis.refuse(pair.now).unwrap();
    }
    pair.drive();

    assert_eq!(complete(&pair.lis_events).len(), RETRANSMISSIONS_MAX as usize);
    assert_eq!(
        pair.instrument_events,
        [(
            Duration::ZERO,
            Event::SendAborted { id, reason: SendAbort::FrameRejected, records: records.clone() }
        )]
    );
    // What was accepted before the refused frame is reported lost, never as received.
    let (_, last) = pair.lis_events.last().unwrap();
    assert_eq!(
        *last,
        Event::ReceiveAborted {
            reason: ReceiveAbort::SenderAborted,
            records: records[..records.len() - 1].to_vec()
        }
    );
    pair.assert_neutral();
}

#[test]
fn no_decision_in_time_the_instrument_gives_up_and_the_message_is_not_acknowledged() {
    // The application hangs. The instrument waits 15 s for the reply (E1381-02 §6.5.2.1),
    // then aborts with EOT; the LIS reports the message lost and a late decision does
    // nothing.
    let records = cepheid_records();
    let mut pair = Pair::deferring();
    let id = pair.instrument.send(records.clone(), pair.now).unwrap();
    pair.drive_to_decision();
    pair.drive();

    assert_eq!(
        pair.instrument_events,
        [(
            ACK_TIMEOUT,
            Event::SendAborted { id, reason: SendAbort::ReplyTimeout, records: records.clone() }
        )]
    );
    assert_eq!(
        pair.lis_events,
        [
            (Duration::ZERO, Event::MessageComplete(records.clone())),
            (ACK_TIMEOUT, Event::ReceiveAborted { reason: ReceiveAbort::SenderAborted, records }),
        ]
    );
    pair.assert_neutral();
    assert_eq!(pair.lis.acknowledge(pair.now), Err(NothingPending));
    assert_eq!(pair.lis.refuse(pair.now), Err(NothingPending));
    assert_eq!(pair.lis.poll_transmit(), None);
}

#[test]
fn no_decision_within_the_receive_timeout_returns_the_line_to_neutral() {
    // The line went dead as well: nothing comes from the instrument. 30 s after the frame
    // (E1381-02 §6.5.2.2) the LIS gives the message up without replying.
    let start = t0();
    let mut link = receiving(start);
    link.handle_input(&end_frame(1, b"H|\\^&\r"), start);
    let at = start + Duration::from_secs(5);
    link.handle_input(&end_frame(2, b"L|1|N\r"), at);
    assert_eq!(transmits(&mut link), ["<ACK>"], "the terminator's frame is held back");
    let message = vec![b"H|\\^&".to_vec(), b"L|1|N".to_vec()];
    assert_eq!(events(&mut link), [Event::MessageComplete(message.clone())]);
    assert_eq!(link.poll_timeout(), Some(at + RECEIVE_TIMEOUT));

    link.handle_timeout(at + RECEIVE_TIMEOUT - Duration::from_millis(1));
    assert!(link.awaits_decision());
    link.handle_timeout(at + RECEIVE_TIMEOUT);
    assert_eq!(link.phase(), Phase::Neutral);
    assert_eq!(transmits(&mut link), Vec::<String>::new());
    assert_eq!(
        events(&mut link),
        [Event::ReceiveAborted { reason: ReceiveAbort::Timeout, records: message }]
    );
    assert_eq!(link.acknowledge(at + RECEIVE_TIMEOUT), Err(NothingPending));
    assert_eq!(transmits(&mut link), Vec::<String>::new());
}

#[test]
fn a_decision_after_the_receive_timeout_is_too_late() {
    // The application took longer than the receive timeout: the link gives the message up
    // then and there rather than acknowledge a frame the instrument stopped waiting for.
    let start = t0();
    let mut link = receiving(start);
    link.handle_input(&end_frame(1, b"H|\\^&\rL|1\r"), start);
    assert!(matches!(events(&mut link)[..], [Event::MessageComplete(_)]));
    assert_eq!(link.acknowledge(start + RECEIVE_TIMEOUT), Err(NothingPending));
    assert_eq!(transmits(&mut link), Vec::<String>::new());
    assert_eq!(
        events(&mut link),
        [Event::ReceiveAborted {
            reason: ReceiveAbort::Timeout,
            records: records_of(b"H|\\^&\rL|1")
        }]
    );
    assert_eq!(link.phase(), Phase::Neutral);
}

#[test]
fn the_receive_timer_restarts_with_the_decision() {
    let start = t0();
    let mut link = receiving(start);
    link.handle_input(&end_frame(1, b"H|\\^&\rL|1\r"), start);
    assert!(link.awaits_decision());
    let decided = start + Duration::from_secs(2);
    link.acknowledge(decided).unwrap();
    assert_eq!(transmits(&mut link), ["<ACK>"]);
    assert_eq!(link.poll_timeout(), Some(decided + RECEIVE_TIMEOUT));
    link.handle_input(&[EOT], decided);
    assert_eq!(link.phase(), Phase::Neutral);
    assert_eq!(events(&mut link), [Event::MessageComplete(records_of(b"H|\\^&\rL|1"))]);
}

#[test]
fn a_refused_frame_that_closed_an_open_record_is_forgotten_whole() {
    // The refused frame ends a record begun in an intermediate frame and carries the
    // terminator: its retransmission must rebuild both exactly.
    let now = t0();
    let mut link = receiving(now);
    link.handle_input(&end_frame(1, b"H|\\^&\r"), now);
    link.handle_input(&frame::encode(2, b"R|1|^^^GLU|", FrameEnd::Intermediate).unwrap(), now);
    let last = end_frame(3, b"5.5|mmol/L\rL|1|N\r");
    link.handle_input(&last, now);
    let message = vec![b"H|\\^&".to_vec(), b"R|1|^^^GLU|5.5|mmol/L".to_vec(), b"L|1|N".to_vec()];
    assert_eq!(events(&mut link), [Event::MessageComplete(message.clone())]);
    link.refuse(now).unwrap();
    assert_eq!(transmits(&mut link), ["<ACK>", "<ACK>", "<NAK>"]);

    link.handle_input(&last, now);
    assert_eq!(events(&mut link), [Event::MessageComplete(message)]);
    link.acknowledge(now).unwrap();
    link.handle_input(&[EOT], now);
    assert_eq!(transmits(&mut link), ["<ACK>"]);
    assert_eq!(events(&mut link), []);
    assert_eq!(link.phase(), Phase::Neutral);
}

#[test]
fn while_waiting_the_line_is_not_read_except_for_eot_and_enq() {
    let now = t0();
    let mut link = receiving(now);
    link.handle_input(&end_frame(1, b"H|\\^&\rL|1|N\r"), now);
    assert!(matches!(events(&mut link)[..], [Event::MessageComplete(_)]));
    // Noise, and even a whole frame, get no reply while the application decides.
    link.handle_input(b"noise\r\n", now);
    link.handle_input(&end_frame(2, b"H|\\^&\r"), now);
    assert_eq!(transmits(&mut link), Vec::<String>::new());
    assert!(link.awaits_decision());
    // A new bid means the instrument gave up on the reply: the message is reported lost and
    // the bid granted.
    link.handle_input(&[ENQ], now);
    assert_eq!(
        events(&mut link),
        [Event::ReceiveAborted {
            reason: ReceiveAbort::SenderAborted,
            records: records_of(b"H|\\^&\rL|1|N")
        }]
    );
    assert_eq!(transmits(&mut link), ["<ACK>"]);
    assert!(!link.awaits_decision());
    assert_eq!(link.phase(), Phase::Receiving);
}

#[test]
fn a_retransmitted_final_frame_after_the_ack_is_not_delivered_twice() {
    // The ACK sent after the commit arrives garbled: the instrument sends the final frame
    // again; the LIS recognises its number, acknowledges it at once and keeps one copy.
    let acks = Rc::new(Cell::new(0));
    let seen = acks.clone();
    let records = cepheid_records();
    let garble_at = records.len() + 1; // the ENQ's ACK, then one per record
    let mut pair = Pair::with_fault(move |side, bytes| {
        if side == Side::Lis && bytes == [ACK] {
            seen.set(seen.get() + 1);
            if seen.get() == garble_at {
                return Some(vec![b'?']);
            }
        }
        Some(bytes.to_vec())
    });
    pair.lis = Link::new(Config::new(Role::Computer).defer_final_ack(true));
    pair.instrument.send(records.clone(), pair.now).unwrap();
    pair.drive_to_decision();
    pair.lis.acknowledge(pair.now).unwrap();
    pair.drive();

    assert_eq!(complete(&pair.lis_events), [records]);
    assert_eq!(pair.lis_events.len(), 1);
    let transcript = pair.transcript();
    let n = transcript.len();
    // The wire as sent: final frame, ACK (garbled on the way), final frame, ACK, EOT.
    assert!(transcript[n - 5].contains("L|1|N"));
    assert_eq!(transcript[n - 5], transcript[n - 3], "the final frame, sent twice");
    assert_eq!(
        [&transcript[n - 4], &transcript[n - 2], &transcript[n - 1]],
        ["L> <ACK>", "L> <ACK>", "I> <EOT>"]
    );
    assert!(matches!(pair.instrument_events[..], [(_, Event::MessageSent(_))]));
}

#[test]
fn a_message_without_a_terminator_is_delivered_at_eot_as_before() {
    let now = t0();
    let mut link = receiving(now);
    link.handle_input(&end_frame(1, b"H|\\^&\r"), now);
    link.handle_input(&end_frame(2, b"R|1|^^^GLU|5.5\r"), now);
    link.handle_input(&[EOT], now);
    assert_eq!(transmits(&mut link), ["<ACK>", "<ACK>"]);
    assert_eq!(events(&mut link), [Event::MessageReceived(records_of(b"H|\\^&\rR|1|^^^GLU|5.5"))]);
}

#[test]
fn two_messages_in_one_transfer_are_decided_one_by_one() {
    // A record whose type merely starts with L is not a terminator; each L is.
    let now = t0();
    let mut link = receiving(now);
    link.handle_input(&end_frame(1, b"H|\\^&\r"), now);
    link.handle_input(&end_frame(2, b"LX|not a terminator\r"), now);
    link.handle_input(&end_frame(3, b"L|1|N\r"), now);
    assert!(link.awaits_decision());
    link.acknowledge(now).unwrap();
    link.handle_input(&end_frame(4, b"H|\\^&\r"), now);
    link.handle_input(&end_frame(5, b"L\r"), now);
    link.acknowledge(now).unwrap();
    link.handle_input(&[EOT], now);
    assert_eq!(transmits(&mut link), ["<ACK>"; 5]);
    assert_eq!(
        events(&mut link),
        [
            Event::MessageComplete(records_of(b"H|\\^&\rLX|not a terminator\rL|1|N")),
            Event::MessageComplete(records_of(b"H|\\^&\rL")),
        ]
    );
}

#[test]
fn without_the_option_the_final_frame_is_acknowledged_at_once() {
    let now = t0();
    let mut link = Link::new(Config::new(Role::Computer));
    link.handle_input(&[ENQ], now);
    link.handle_input(&end_frame(1, b"H|\\^&\rL|1|N\r"), now);
    assert_eq!(transmits(&mut link), ["<ACK>", "<ACK>"]);
    assert!(!link.awaits_decision());
    assert_eq!(link.acknowledge(now), Err(NothingPending));
    assert_eq!(transmits(&mut link), Vec::<String>::new());
}

#[test]
fn a_connection_closed_mid_transfer_gives_the_records_up() {
    // The instrument's cable is pulled after the order record: what arrived is handed over
    // only to be logged, and the line is neutral for the reconnection.
    let start = t0();
    let mut link = receiving(start);
    link.handle_input(&end_frame(1, b"H|\\^&\r"), start);
    link.handle_input(&end_frame(2, b"P|1\r"), start);
    link.handle_input(&end_frame(3, b"O|1|26-0000012-3||^^^GLUC\r"), start);
    assert_eq!(transmits(&mut link), ["<ACK>", "<ACK>", "<ACK>"]);
    assert!(events(&mut link).is_empty());

    link.connection_closed();
    assert_eq!(link.phase(), Phase::Neutral);
    assert_eq!(transmits(&mut link), Vec::<String>::new());
    assert_eq!(
        events(&mut link),
        [Event::ReceiveAborted {
            reason: ReceiveAbort::ConnectionClosed,
            records: records_of(b"H|\\^&\rP|1\rO|1|26-0000012-3||^^^GLUC"),
        }]
    );
    // Closing a neutral link reports nothing.
    link.connection_closed();
    assert!(events(&mut link).is_empty());
}
