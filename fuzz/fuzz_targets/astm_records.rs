//! Arbitrary bytes into the ASTM E1394 record parser: no panic, and every field of whatever
//! parses can be read, decoded and re-split.
#![no_main]

use cuvette_astm::Message;
use cuvette_astm::records::{Charset, View};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(messages) = Message::parse_all(data) else { return };
    for message in &messages {
        for record in message.records() {
            for n in 0..record.field_count() + 1 {
                let field = record.field(n);
                let decoded = field.decode();
                // Escape sequences only ever shorten a value.
                assert!(decoded.len() <= field.raw().len());
                let _ = field.text_as(Charset::Windows1252);
                for repeat in field.repeats() {
                    for component in repeat.components() {
                        let _ = component.text();
                    }
                }
            }
            if let View::Result(result) = record.view() {
                let _ = (result.test_id().code().text(), result.value_text());
            }
        }
        let _ = message.order_groups();
        // The same records, as the link layer would deliver them, parse the same way.
        let records: Vec<&[u8]> = message.records().iter().map(|r| r.as_bytes()).collect();
        assert_eq!(Message::from_records(records).as_ref(), Ok(message));
    }
});
