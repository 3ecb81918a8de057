//! Whole conversations between an instrument and the LIS, in virtual time, with faults
//! injected on the wire (CLSI LIS01-A2 / ASTM E1381-02 §6).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use cuvette_astm::link::{
    ACK_TIMEOUT, BUSY_BACKOFF, CONTENTION_BACKOFF_COMPUTER, CONTENTION_BACKOFF_INSTRUMENT,
    ESTABLISHMENT_TIMEOUT, EVENTS_QUEUED_MAX, RECEIVE_TIMEOUT, RETRANSMISSIONS_MAX,
};
use cuvette_astm::{
    Delimiters, Event, Message, MessageBuilder, MessageId, ReceiveAbort, RecordBuilder, SendAbort,
};

use crate::support::{Pair, Side, data_dir, records_of, show};

const ACK: u8 = 0x06;
const NAK: u8 = 0x15;
const STX: u8 = 0x02;

fn cepheid_records() -> Vec<Vec<u8>> {
    let path = data_dir().join("ok/astm-e1394_cepheid-genexpert_hivvl-quantified.astm");
    records_of(&std::fs::read(path).unwrap())
}

fn received(events: &[(Duration, Event)]) -> Vec<Vec<Vec<u8>>> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::MessageReceived(records) => Some(records.clone()),
            _ => None,
        })
        .collect()
}

fn is_frame(bytes: &[u8]) -> bool {
    bytes.first() == Some(&STX)
}

/// Flips a checksum digit, so the receiver rejects the frame.
fn corrupt(frame: &[u8]) -> Vec<u8> {
    let mut bad = frame.to_vec();
    let at = bad.len() - 3;
    bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
    bad
}

#[test]
fn a_whole_session_delivers_every_record() {
    let records = cepheid_records();
    let mut pair = Pair::new();
    let id = pair.instrument.send(records.clone(), pair.now).unwrap();
    pair.drive();

    assert_eq!(received(&pair.lis_events), std::slice::from_ref(&records));
    assert!(matches!(pair.instrument_events[..], [(_, Event::MessageSent(sent))] if sent == id));
    pair.assert_neutral();
    // Establishment, one frame per record each acknowledged, termination (E1381-02 §6.1).
    let transcript = pair.transcript();
    assert_eq!(transcript.first().unwrap(), "I> <ENQ>");
    assert_eq!(transcript[1], "L> <ACK>");
    assert_eq!(transcript.last().unwrap(), "I> <EOT>");
    assert_eq!(transcript.len(), 2 + 2 * records.len() + 1);
    assert!(transcript[2].starts_with("I> <STX>1H|@^\\\\|URM-PFaJUTYA-07"));
    // The records form the message the instrument meant.
    let message = Message::from_records(&received(&pair.lis_events)[0]).unwrap();
    assert_eq!(message.results().count(), 14);
    assert!(pair.elapsed().is_zero(), "no timer was needed");
}

#[test]
fn host_query_and_answer() {
    // The instrument asks for the orders of a specimen; the LIS answers in its own session
    // after the instrument's EOT, with O-26 = Q (LIS02-A2 §8.4.26, §11).
    let query = records_of(b"H|\\^&|||Analyzer\rQ|1|^SID123||^^^ALL||||||||O\rL|1|N\r");
    let mut pair = Pair::new();
    pair.instrument.send(query, pair.now).unwrap();
    pair.drive();
    let asked = Message::from_records(&received(&pair.lis_events)[0]).unwrap();
    let specimen = asked.queries().next().unwrap().specimen_ids().next().unwrap().text();
    assert_eq!(specimen, "SID123");

    let answer = MessageBuilder::new(Delimiters::STANDARD)
        .record(RecordBuilder::header().field(5, "Cuvette"))
        .record(RecordBuilder::patient(1))
        .record(RecordBuilder::order(1, &specimen, ["GLU", "K"]).field(26, "Q"))
        .record(RecordBuilder::terminator("N"))
        .encode();
    pair.lis.send(answer, pair.now).unwrap();
    pair.drive();

    let answered = Message::from_records(&received(&pair.instrument_events)[0]).unwrap();
    let order = answered.orders().next().unwrap();
    assert_eq!(order.specimen_id().text(), "SID123");
    assert_eq!(order.test_ids().map(|t| t.code().text()).collect::<Vec<_>>(), ["GLU", "K"]);
    assert_eq!(order.report_type().text(), "Q");
    pair.assert_neutral();
}

#[test]
fn a_record_longer_than_a_frame_is_split_and_reassembled() {
    // E1381-02 §6.3.1: at most 240 text characters per frame; a longer record goes out as
    // intermediate (ETB) frames and one end (ETX) frame.
    let long: Vec<u8> = (0..600).map(|i| b'a' + (i % 26) as u8).collect();
    let mut comment = b"C|1|I|".to_vec();
    comment.extend_from_slice(&long);
    let records = vec![b"H|\\^&".to_vec(), comment.clone(), b"L|1|N".to_vec()];
    let mut pair = Pair::new();
    pair.instrument.send(records.clone(), pair.now).unwrap();
    pair.drive();

    assert_eq!(received(&pair.lis_events), [records]);
    let frames: Vec<&Vec<u8>> = pair
        .wire
        .iter()
        .filter(|(_, s, b)| *s == Side::Instrument && is_frame(b))
        .map(|(_, _, b)| b)
        .collect();
    let shapes: Vec<(usize, u8, u8)> =
        frames.iter().map(|f| (f.len(), f[1], f[f.len() - 5])).collect();
    // 606 characters of the C record plus its CR: 240 + 240 + 127.
    assert_eq!(
        shapes,
        [
            (6 + 7, b'1', 0x03),
            (247, b'2', 0x17),
            (247, b'3', 0x17),
            (127 + 7, b'4', 0x03),
            (6 + 7, b'5', 0x03),
        ]
    );
}

#[test]
fn frame_numbers_wrap_after_seven() {
    // python-astm's frame-number vector: ten one-letter records, frames 1..7, 0, 1, 2.
    let records: Vec<Vec<u8>> = b"ABCDEFGHIJ".iter().map(|&b| vec![b]).collect();
    let mut pair = Pair::new();
    pair.instrument.send(records.clone(), pair.now).unwrap();
    pair.drive();

    let frames: Vec<String> = pair
        .wire
        .iter()
        .filter(|(_, side, bytes)| *side == Side::Instrument && is_frame(bytes))
        .map(|(_, _, bytes)| show(bytes))
        .collect();
    let expected: Vec<String> = [
        "1A<CR><ETX>82",
        "2B<CR><ETX>84",
        "3C<CR><ETX>86",
        "4D<CR><ETX>88",
        "5E<CR><ETX>8A",
        "6F<CR><ETX>8C",
        "7G<CR><ETX>8E",
        "0H<CR><ETX>88",
        "1I<CR><ETX>8A",
        "2J<CR><ETX>8C",
    ]
    .iter()
    .map(|f| format!("<STX>{f}<CR><LF>"))
    .collect();
    assert_eq!(frames, expected);
    assert_eq!(received(&pair.lis_events), [records]);
}

#[test]
fn rejected_frames_are_retransmitted_with_the_same_number() {
    // Corrupt the checksum of the second frame twice: the LIS NAKs it, the instrument sends
    // the same frame again (E1381-02 §6.5.1.2), the third copy is accepted.
    let frames_seen = Rc::new(Cell::new(0));
    let seen = frames_seen.clone();
    let mut pair = Pair::with_fault(move |side, bytes| {
        if side == Side::Instrument && is_frame(bytes) {
            seen.set(seen.get() + 1);
            if (2..=3).contains(&seen.get()) {
                return Some(corrupt(bytes));
            }
        }
        Some(bytes.to_vec())
    });
    let records = cepheid_records();
    pair.instrument.send(records.clone(), pair.now).unwrap();
    pair.drive();

    assert_eq!(received(&pair.lis_events), [records]);
    let transcript = pair.transcript();
    assert_eq!(transcript[4], transcript[6], "the same frame, the same frame number");
    assert_eq!(transcript[6], transcript[8]);
    assert!(transcript[4].starts_with("I> <STX>2P|1"));
    assert_eq!(
        [&transcript[5], &transcript[7], &transcript[9]],
        ["L> <NAK>", "L> <NAK>", "L> <ACK>"]
    );
}

#[test]
fn a_retransmitted_frame_is_acknowledged_and_discarded() {
    // The LIS's ACK to frame 2 arrives garbled: the instrument takes it as a NAK and sends
    // frame 2 again; the LIS recognises the repeated frame number, ACKs it and keeps one copy
    // (E1381-02 §6.3.2).
    let acks = Rc::new(Cell::new(0));
    let seen = acks.clone();
    let mut pair = Pair::with_fault(move |side, bytes| {
        if side == Side::Lis && bytes == [ACK] {
            seen.set(seen.get() + 1);
            if seen.get() == 3 {
                return Some(vec![b'?']);
            }
        }
        Some(bytes.to_vec())
    });
    let records = cepheid_records();
    pair.instrument.send(records.clone(), pair.now).unwrap();
    pair.drive();

    assert_eq!(received(&pair.lis_events), [records]);
    let transcript = pair.transcript();
    assert_eq!(transcript[4], transcript[6]);
    assert_eq!(transcript[7], "L> <ACK>");
}

#[test]
fn six_rejections_abort_the_message() {
    let mut pair = Pair::with_fault(|side, bytes| {
        Some(if side == Side::Instrument && is_frame(bytes) {
            corrupt(bytes)
        } else {
            bytes.to_vec()
        })
    });
    let records = cepheid_records();
    let id = pair.instrument.send(records.clone(), pair.now).unwrap();
    pair.drive();

    let transcript = pair.transcript();
    let copies = transcript.iter().filter(|l| l.starts_with("I> <STX>1H")).count();
    assert_eq!(copies, RETRANSMISSIONS_MAX as usize);
    assert_eq!(transcript.iter().filter(|l| *l == "L> <NAK>").count(), 6);
    assert_eq!(transcript.last().unwrap(), "I> <EOT>");
    assert_eq!(
        pair.instrument_events,
        [(Duration::ZERO, Event::SendAborted { id, reason: SendAbort::FrameRejected, records })]
    );
    assert_eq!(
        pair.lis_events,
        [(
            Duration::ZERO,
            Event::ReceiveAborted { reason: ReceiveAbort::SenderAborted, records: vec![] }
        )]
    );
    pair.assert_neutral();
}

#[test]
fn a_sender_that_goes_silent_is_timed_out_by_the_receiver() {
    // The line dies after the first frame. The instrument gives up 15 s after its second
    // frame (E1381-02 §6.5.2.1); the LIS 30 s after its last ACK (§6.5.2.2), discarding the
    // incomplete message.
    let sent = Rc::new(Cell::new(0));
    let count = sent.clone();
    let mut pair = Pair::with_fault(move |side, bytes| {
        if side == Side::Instrument {
            count.set(count.get() + 1);
            if count.get() > 2 {
                return None;
            }
        }
        Some(bytes.to_vec())
    });
    let records = cepheid_records();
    let id = pair.instrument.send(records.clone(), pair.now).unwrap();
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
        [(
            RECEIVE_TIMEOUT,
            Event::ReceiveAborted {
                reason: ReceiveAbort::Timeout,
                records: vec![records[0].clone()]
            }
        )]
    );
    assert_eq!(pair.transcript().last().unwrap(), "I> <EOT>");
    pair.assert_neutral();
}

#[test]
fn no_answer_to_enq_gives_the_bid_up() {
    let mut pair = Pair::with_fault(|side, bytes| (side == Side::Lis).then(|| bytes.to_vec()));
    let records = cepheid_records();
    let id = pair.instrument.send(records.clone(), pair.now).unwrap();
    pair.drive();
    assert_eq!(pair.transcript(), ["I> <ENQ>", "I> <EOT>"]);
    assert_eq!(
        pair.instrument_events,
        [(
            ESTABLISHMENT_TIMEOUT,
            Event::SendAborted { id, reason: SendAbort::EstablishmentTimeout, records }
        )]
    );
    assert!(pair.lis_events.is_empty());
}

#[test]
fn contention_the_instrument_wins() {
    // Both bid at the same moment (E1381-02 §6.2.7.1): neither answers the other's ENQ. The
    // instrument bids again after 1 s and sends first; the LIS receives, and bids again only
    // 20 s after the contention.
    let instrument_records = records_of(b"H|\\^&|||Analyzer\rR|1|^^^GLU|5.5\rL|1|N");
    let lis_records = records_of(b"H|\\^&|||Cuvette\rO|1|SID1||^^^GLU\rL|1|N");
    let mut pair = Pair::new();
    let lis_id = pair.lis.send(lis_records.clone(), pair.now).unwrap();
    let instrument_id = pair.instrument.send(instrument_records.clone(), pair.now).unwrap();
    pair.drive();

    let timeline: Vec<(Duration, String)> =
        pair.wire.iter().zip(pair.transcript()).map(|((at, _, _), line)| (*at, line)).collect();
    let enqs: Vec<_> = timeline.iter().filter(|(_, l)| l.ends_with("<ENQ>")).cloned().collect();
    assert_eq!(
        enqs,
        [
            (Duration::ZERO, "I> <ENQ>".to_string()),
            (Duration::ZERO, "L> <ENQ>".to_string()),
            (CONTENTION_BACKOFF_INSTRUMENT, "I> <ENQ>".to_string()),
            (CONTENTION_BACKOFF_COMPUTER, "L> <ENQ>".to_string()),
        ]
    );
    assert_eq!(
        pair.lis_events,
        [
            (CONTENTION_BACKOFF_INSTRUMENT, Event::MessageReceived(instrument_records)),
            (CONTENTION_BACKOFF_COMPUTER, Event::MessageSent(lis_id)),
        ]
    );
    assert_eq!(
        pair.instrument_events,
        [
            (CONTENTION_BACKOFF_INSTRUMENT, Event::MessageSent(instrument_id)),
            (CONTENTION_BACKOFF_COMPUTER, Event::MessageReceived(lis_records)),
        ]
    );
    pair.assert_neutral();
}

#[test]
fn a_busy_receiver_answers_nak_and_the_sender_waits() {
    // The LIS application stops reading events; once EVENTS_QUEUED_MAX are waiting the LIS
    // answers ENQ with NAK (E1381-02 §6.2.5) and the instrument bids again every 10 s (§6.2.6).
    let mut pair = Pair::new();
    pair.drain_lis_events = false;
    for n in 0..EVENTS_QUEUED_MAX {
        let records =
            vec![b"H|\\^&".to_vec(), format!("R|1|^^^N|{n}").into_bytes(), b"L|1".to_vec()];
        pair.instrument.send(records, pair.now).unwrap();
        pair.drive();
    }
    assert!(pair.elapsed().is_zero());
    pair.instrument.send(cepheid_records(), pair.now).unwrap();
    // Drive for a while by hand: the NAKs and the 10 s bids.
    for _ in 0..3 {
        while let Some(bytes) = pair.instrument.poll_transmit() {
            assert_eq!(bytes, [0x05]);
            pair.lis.handle_input(&bytes, pair.now);
        }
        let reply = pair.lis.poll_transmit().unwrap();
        assert_eq!(reply, [NAK]);
        pair.instrument.handle_input(&reply, pair.now);
        let next = pair.instrument.poll_timeout().unwrap();
        assert_eq!(next - pair.now, BUSY_BACKOFF);
        pair.now = next;
        pair.instrument.handle_timeout(pair.now);
    }
    // The application catches up; the next bid is granted.
    while pair.lis.poll_event().is_some() {}
    pair.drain_lis_events = true;
    pair.drive();
    assert_eq!(received(&pair.lis_events), [cepheid_records()]);
    assert_eq!(pair.elapsed(), 3 * BUSY_BACKOFF);
}

#[test]
fn messages_queued_together_go_one_session_each() {
    let mut pair = Pair::new();
    let first = records_of(b"H|\\^&\rL|1|N");
    let second = records_of(b"H|\\^&\rP|1\rL|1|N");
    let a = pair.instrument.send(first.clone(), pair.now).unwrap();
    let b = pair.instrument.send(second.clone(), pair.now).unwrap();
    assert_eq!((a, b), (MessageId(1), MessageId(2)));
    pair.drive();
    assert_eq!(received(&pair.lis_events), [first, second]);
    let sessions = pair.transcript().iter().filter(|l| *l == "I> <ENQ>").count();
    assert_eq!(sessions, 2);
}
