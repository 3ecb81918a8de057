//! Arbitrary bytes through both parsers, every accessor, and the builder.
//!
//! Invariants: nothing panics; what strict mode accepts, lenient mode accepts with the same
//! segments; a strictly valid message copied field by field through `MessageBuilder` parses
//! back to the same decoded values.
#![no_main]

use cuvette_hl7::{FieldValue, Message, MessageBuilder, Segment, SegmentBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lenient = Message::parse(data);
    if let Ok(message) = &lenient {
        walk(message);
    }
    let Ok(strict) = Message::parse_strict(data) else { return };
    let lenient = lenient.expect("strict success implies lenient success");
    let raws = |m: &Message<'_>| m.segments().map(|s| s.raw().to_vec()).collect::<Vec<_>>();
    assert_eq!(raws(&strict), raws(&lenient), "strict and lenient disagree on segments");
    assert_eq!(strict.separators(), lenient.separators());
    walk(&strict);
    rebuild_round_trip(&strict);
});

/// Touches every element the way a careless caller would.
fn walk(message: &Message<'_>) {
    let msh = message.msh();
    let _ = (msh.charset(), msh.control_id().text(), msh.message_type().trigger().decoded());
    for segment in message.segments() {
        let _ = (segment.id(), segment.field_count(), segment.field(0).raw());
        for field in segment.fields() {
            let _ = (field.text(), field.is_null(), field.text_in(msh.charset()));
            for repetition in field.repetitions() {
                for component in repetition.components() {
                    for sub in component.subcomponents() {
                        let _ = sub.decoded();
                    }
                }
            }
        }
    }
    for path in ["MSH-9-2", "PID-3(2)-1-1", "OBX(2)-5", "MSH-2"] {
        let _ = message.get(path).map(|v| v.decoded().len());
    }
}

/// Copies every field of a strictly valid message into a builder and compares what comes back.
fn rebuild_round_trip(message: &Message<'_>) {
    let mut builder = MessageBuilder::with_separators(message.separators());
    for segment in message.segments() {
        let id = std::str::from_utf8(segment.id()).expect("strict IDs are ASCII");
        let mut out = SegmentBuilder::new(id);
        let first = if segment.is_header() { 3 } else { 1 };
        for n in first..=segment.field_count() {
            out.set(n, FieldValue::from(segment.field(n)));
        }
        builder.push(out);
    }
    let bytes = match builder.finish() {
        Ok(bytes) => bytes,
        // A field number above what the builder accepts; nothing to compare.
        Err(_) => return,
    };
    let again = Message::parse(&bytes).expect("a rebuilt message parses");
    assert_eq!(again.segment_count(), message.segment_count());
    for (a, b) in message.segments().zip(again.segments()) {
        assert_eq!(a.id(), b.id());
        let count = a.field_count().max(b.field_count());
        for n in 3..=count {
            same_values(a, b, n);
        }
    }
}

fn same_values(a: Segment<'_>, b: Segment<'_>, n: usize) {
    let (fa, fb) = (a.field(n), b.field(n));
    let reps = fa.repetitions().count().max(fb.repetitions().count());
    for r in 1..=reps {
        let (ra, rb) = (fa.repetition(r), fb.repetition(r));
        let comps = ra.components().count().max(rb.components().count());
        for c in 1..=comps {
            let (ca, cb) = (ra.component(c), rb.component(c));
            let subs = ca.subcomponents().count().max(cb.subcomponents().count());
            for s in 1..=subs {
                assert_eq!(
                    ca.subcomponent(s).decoded(),
                    cb.subcomponent(s).decoded(),
                    "field {n} repetition {r} component {c} subcomponent {s}"
                );
            }
        }
    }
}
