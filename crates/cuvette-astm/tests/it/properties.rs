//! Properties over generated messages, byte streams and field values.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;

use cuvette_astm::frame::{self, FRAME_TEXT_MAX, FrameEnd};
use cuvette_astm::records::Charset;
use cuvette_astm::{
    Config, Delimiters, Event, Link, Message, MessageBuilder, Phase, RecordBuilder, RecordType,
    Role,
};

use crate::support::{Pair, Side, t0};

/// Bytes E1394 allows in record data, CR excluded (LIS02-A2 §5).
fn data_byte() -> impl Strategy<Value = u8> {
    prop_oneof![Just(7u8), Just(9), Just(11), Just(12), 32u8..=126, 128u8..=254]
}

fn record() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(data_byte(), 1..700)
}

fn records() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(record(), 1..6)
}

fn delimiters() -> impl Strategy<Value = Delimiters> {
    let set = b"|\\^&@!#$%*~".to_vec();
    Just(set).prop_shuffle().prop_map(|d| Delimiters {
        field: d[0],
        repeat: d[1],
        component: d[2],
        escape: d[3],
    })
}

/// A session as the sender writes it when every reply is ACK: ENQ, frames, EOT.
fn session_bytes(records: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = vec![0x05];
    let mut number = 1u8;
    for record in records {
        let mut text = record.clone();
        text.push(b'\r');
        let count = text.len().div_ceil(FRAME_TEXT_MAX);
        for (i, chunk) in text.chunks(FRAME_TEXT_MAX).enumerate() {
            let end = if i + 1 == count { FrameEnd::Final } else { FrameEnd::Intermediate };
            bytes.extend(frame::encode(number, chunk, end).unwrap());
            number = (number + 1) % 8;
        }
    }
    bytes.push(0x04);
    bytes
}

proptest! {
    #[test]
    fn any_message_crosses_the_line_intact_despite_rejections(
        records in records(),
        corrupt in prop::collection::vec(any::<bool>(), 0..64),
    ) {
        // Each frame may be corrupted up to five times: the sixth copy must get through
        // (E1381-02 §6.5.1.2 aborts only after six rejections).
        let mut copies: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut transmission = 0;
        let mut pair = Pair::with_fault(move |side, bytes| {
            if side == Side::Instrument && bytes[0] == 0x02 {
                let seen = copies.entry(bytes.to_vec()).or_default();
                let flip = corrupt.get(transmission).copied().unwrap_or(false) && *seen < 5;
                *seen += 1;
                transmission += 1;
                if flip {
                    let mut bad = bytes.to_vec();
                    let at = bad.len() - 3;
                    bad[at] ^= 0x01;
                    return Some(bad);
                }
            }
            Some(bytes.to_vec())
        });
        let id = pair.instrument.send(records.clone(), pair.now).unwrap();
        pair.drive();
        let lis: Vec<Event> = pair.lis_events.iter().map(|(_, e)| e.clone()).collect();
        prop_assert_eq!(lis, vec![Event::MessageReceived(records)]);
        let instrument: Vec<Event> = pair.instrument_events.iter().map(|(_, e)| e.clone()).collect();
        prop_assert_eq!(instrument, vec![Event::MessageSent(id)]);
        pair.assert_neutral();
    }

    #[test]
    fn any_split_of_a_session_gives_the_same_result(
        records in records(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let bytes = session_bytes(&records);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len())).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let now = t0();
        let mut link = Link::new(Config::new(Role::Computer));
        let mut from = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            link.handle_input(&bytes[from..cut], now);
            from = cut;
        }
        let replies: Vec<Vec<u8>> = std::iter::from_fn(|| link.poll_transmit()).collect();
        prop_assert!(replies.iter().all(|r| r == &[0x06]));
        let events: Vec<Event> = std::iter::from_fn(|| link.poll_event()).collect();
        prop_assert_eq!(events, vec![Event::MessageReceived(records)]);
        prop_assert_eq!(link.phase(), Phase::Neutral);
    }

    #[test]
    fn a_receiver_survives_any_bytes(
        reads in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..300), 0u64..40_000), 0..30),
    ) {
        let start = t0();
        let mut now = start;
        let mut link = Link::new(Config::new(Role::Computer));
        for (bytes, wait_ms) in &reads {
            now += Duration::from_millis(*wait_ms);
            link.handle_timeout(now);
            link.handle_input(bytes, now);
            while let Some(reply) = link.poll_transmit() {
                prop_assert!(reply == [0x06] || reply == [0x15], "a receiver only answers");
            }
            while let Some(event) = link.poll_event() {
                if let Event::MessageReceived(records) = event {
                    prop_assert!(records.iter().all(|r| !r.is_empty() && !r.contains(&b'\r')));
                }
            }
            if bytes.last() == Some(&0x04) {
                prop_assert_eq!(link.phase(), Phase::Neutral);
            }
        }
    }

    #[test]
    fn a_deferring_receiver_reports_the_same_message_after_every_refusal(
        mut records in records(),
        refusals in 0usize..5,
        corrupt in prop::collection::vec(any::<bool>(), 0..64),
    ) {
        // Whatever the frames went through and however often the application refused, each
        // report holds the whole message and the acknowledged one completes the transfer.
        // One corruption and four refusals of the final frame stay below the six rejections
        // that make the sender abort.
        prop_assume!(records.iter().all(|r| r[0] != b'L'), "one terminator, at the end");
        records.push(b"L|1|N".to_vec());
        let mut copies: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut transmission = 0;
        let mut pair = Pair::with_fault(move |side, bytes| {
            if side == Side::Instrument && bytes[0] == 0x02 {
                let seen = copies.entry(bytes.to_vec()).or_default();
                // Leave room for the refusals: the final frame may be rejected six times in
                // all, by the checksum or by the application.
                let flip = corrupt.get(transmission).copied().unwrap_or(false) && *seen == 0;
                *seen += 1;
                transmission += 1;
                if flip {
                    let mut bad = bytes.to_vec();
                    let at = bad.len() - 3;
                    bad[at] ^= 0x01;
                    return Some(bad);
                }
            }
            Some(bytes.to_vec())
        });
        pair.lis = Link::new(Config::new(Role::Computer).defer_final_ack(true));
        let id = pair.instrument.send(records.clone(), pair.now).unwrap();
        for _ in 0..refusals {
            pair.drive_to_decision();
            pair.lis.refuse(pair.now).unwrap();
        }
        pair.drive_to_decision();
        pair.lis.acknowledge(pair.now).unwrap();
        pair.drive();
        let lis: Vec<Event> = pair.lis_events.iter().map(|(_, e)| e.clone()).collect();
        prop_assert_eq!(lis, vec![Event::MessageComplete(records); refusals + 1]);
        let instrument: Vec<Event> = pair.instrument_events.iter().map(|(_, e)| e.clone()).collect();
        prop_assert_eq!(instrument, vec![Event::MessageSent(id)]);
        pair.assert_neutral();
    }

    #[test]
    fn a_deferring_receiver_survives_any_bytes_and_decisions(
        reads in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..300), 0u64..40_000, any::<Option<bool>>()),
            0..30,
        ),
    ) {
        let start = t0();
        let mut now = start;
        let mut link = Link::new(Config::new(Role::Computer).defer_final_ack(true));
        for (bytes, wait_ms, decision) in &reads {
            now += Duration::from_millis(*wait_ms);
            link.handle_timeout(now);
            link.handle_input(bytes, now);
            let awaits = link.awaits_decision();
            match decision {
                Some(true) => prop_assert_eq!(link.acknowledge(now).is_ok(), awaits),
                Some(false) => prop_assert_eq!(link.refuse(now).is_ok(), awaits),
                None => {}
            }
            while let Some(reply) = link.poll_transmit() {
                prop_assert!(reply == [0x06] || reply == [0x15], "a receiver only answers");
            }
            while let Some(event) = link.poll_event() {
                if let Event::MessageComplete(records) = event {
                    prop_assert!(records.iter().all(|r| !r.is_empty() && !r.contains(&b'\r')));
                    prop_assert!(records.last().is_some_and(|r| r[0] == b'L'));
                }
            }
            if bytes.last() == Some(&0x04) {
                prop_assert_eq!(link.phase(), Phase::Neutral);
            }
        }
    }

    #[test]
    fn any_value_survives_the_builder_and_the_parser(
        delimiters in delimiters(),
        specimen in prop::collection::vec(any::<u8>(), 0..40),
        code in prop::collection::vec(any::<u8>(), 1..20),
        comment in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let message = MessageBuilder::new(delimiters)
            .record(RecordBuilder::header())
            .record(RecordBuilder::order(1, &specimen, [&code]))
            .record(RecordBuilder::new(RecordType::Comment).field(2, "1").field(4, &comment))
            .record(RecordBuilder::terminator("N"));
        let records = message.encode();
        let parsed = Message::from_records(&records).unwrap();
        prop_assert_eq!(parsed.delimiters(), delimiters);
        let order = parsed.orders().next().unwrap();
        prop_assert_eq!(&*order.specimen_id().decode(), &specimen[..]);
        let tests: Vec<_> = order.test_ids().collect();
        prop_assert_eq!(tests.len(), 1);
        prop_assert_eq!(&*tests[0].manufacturer_code().decode(), &code[..]);
        prop_assert_eq!(&*parsed.comments().next().unwrap().text().decode(), &comment[..]);
        // What the builder writes, a link accepts.
        let mut link = Link::new(Config::new(Role::Computer));
        prop_assert!(link.send(records, t0()).is_ok());
    }

    #[test]
    fn parsing_any_bytes_never_panics(text in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(messages) = Message::parse_all(&text) {
            for message in &messages {
                for record in message.records() {
                    for n in 0..record.field_count() + 2 {
                        let field = record.field(n);
                        let _ = field.text_as(Charset::Windows1252);
                        for repeat in field.repeats() {
                            let _ = repeat.components().map(|c| c.decode().len()).sum::<usize>();
                        }
                    }
                }
                let _ = message.order_groups();
            }
        }
    }
}
