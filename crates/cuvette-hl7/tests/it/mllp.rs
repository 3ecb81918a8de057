//! MLLP framing: `VT message FS CR`, read from a stream that splits and coalesces frames.

use cuvette_hl7::mllp::{MllpDeframer, MllpError, frame};
use cuvette_hl7::{AckBuilder, AckCode, Message};

use crate::parse::fixture;

const VT: u8 = 0x0B;
const FS: u8 = 0x1C;
const CR: u8 = 0x0D;

fn drain(deframer: &mut MllpDeframer) -> Vec<Result<Vec<u8>, MllpError>> {
    deframer.frames().collect()
}

#[test]
fn frame_wraps_in_vt_and_fs_cr() {
    assert_eq!(frame(b"MSH|^~\\&\r"), b"\x0bMSH|^~\\&\r\x1c\x0d");
}

#[test]
fn a_frame_split_at_every_position_arrives_whole() {
    let message = fixture("hl7v24-oru-r01_python-hl7_sample-hl7-sn-values.hl7");
    let wire = frame(&message);
    for split in 0..=wire.len() {
        let mut deframer = MllpDeframer::new();
        deframer.push(&wire[..split]);
        let early = drain(&mut deframer);
        deframer.push(&wire[split..]);
        let mut all = early;
        all.extend(drain(&mut deframer));
        assert_eq!(all, [Ok(message.clone())], "split at {split}");
    }
    // One byte per read.
    let mut deframer = MllpDeframer::new();
    let mut frames = Vec::new();
    for byte in &wire {
        deframer.push(std::slice::from_ref(byte));
        frames.extend(drain(&mut deframer));
    }
    assert_eq!(frames, [Ok(message)]);
}

#[test]
fn coalesced_frames_come_out_in_order() {
    let messages: [&[u8]; 3] = [b"MSH|^~\\&|1\r", b"MSH|^~\\&|2\r", b"MSH|^~\\&|3\r"];
    let wire: Vec<u8> = messages.iter().flat_map(|m| frame(m)).collect();
    let mut deframer = MllpDeframer::new();
    deframer.push(&wire);
    let frames: Vec<_> = drain(&mut deframer).into_iter().map(Result::unwrap).collect();
    assert_eq!(frames, messages);
    assert!(!deframer.is_mid_frame());
    assert_eq!(deframer.discarded_bytes(), 0);
}

#[test]
fn bytes_outside_frames_are_discarded_and_counted() {
    let mut deframer = MllpDeframer::new();
    deframer.push(b"\r\n garbage");
    deframer.push(&frame(b"A"));
    deframer.push(b"\r\n");
    deframer.push(&frame(b"B"));
    assert_eq!(drain(&mut deframer), [Ok(b"A".to_vec()), Ok(b"B".to_vec())]);
    assert_eq!(deframer.discarded_bytes(), 10 + 2);
}

#[test]
fn a_start_block_inside_a_frame_drops_it_and_restarts() {
    let mut deframer = MllpDeframer::new();
    deframer.push(&[b"xx".as_slice(), &[VT], b"abc", &[VT], b"def", &[FS, CR]].concat());
    assert_eq!(
        drain(&mut deframer),
        [Err(MllpError::StartBlockInFrame { offset: 6, dropped: 3 }), Ok(b"def".to_vec())]
    );
    assert_eq!(deframer.discarded_bytes(), 2 + 3);
}

#[test]
fn fs_at_the_end_of_a_read_waits_for_its_cr() {
    let mut deframer = MllpDeframer::new();
    deframer.push(&[VT, b'a', FS]);
    assert_eq!(deframer.next_frame(), None);
    assert!(deframer.is_mid_frame());
    deframer.push(&[CR]);
    assert_eq!(deframer.next_frame(), Some(Ok(b"a".to_vec())));
    assert!(!deframer.is_mid_frame());
}

#[test]
fn fs_without_cr_is_a_protocol_error() {
    let mut deframer = MllpDeframer::new();
    deframer.push(&[VT, b'a', FS, b'x', VT, b'b', FS, CR]);
    assert_eq!(
        drain(&mut deframer),
        [
            Err(MllpError::MissingCarriageReturn { offset: 3, found: b'x', dropped: 1 }),
            Ok(b"b".to_vec())
        ]
    );
    // FS followed directly by the next frame's VT: that frame still arrives.
    let mut deframer = MllpDeframer::new();
    deframer.push(&[VT, b'a', FS, VT, b'b', FS, CR]);
    assert_eq!(
        drain(&mut deframer),
        [
            Err(MllpError::MissingCarriageReturn { offset: 3, found: VT, dropped: 1 }),
            Ok(b"b".to_vec())
        ]
    );
}

#[test]
fn oversized_frames_are_refused_and_reading_resynchronises() {
    let mut deframer = MllpDeframer::with_frame_bytes_max(10);
    assert_eq!(deframer.frame_bytes_max(), 10);
    deframer.push(&frame(b"0123456789"));
    assert_eq!(deframer.next_frame(), Some(Ok(b"0123456789".to_vec())), "exactly the limit passes");

    let wire = [frame(b"0123456789A"), frame(b"ok")].concat();
    deframer.push(&wire);
    assert_eq!(
        drain(&mut deframer),
        [Err(MllpError::FrameTooLarge { offset: 13, max: 10 }), Ok(b"ok".to_vec())]
    );

    // Across reads, the error comes as soon as the limit is passed, before the frame ends.
    let mut deframer = MllpDeframer::with_frame_bytes_max(10);
    deframer.push(&[VT]);
    deframer.push(b"01234567");
    assert_eq!(deframer.next_frame(), None);
    deframer.push(b"89AB");
    assert_eq!(deframer.next_frame(), Some(Err(MllpError::FrameTooLarge { offset: 0, max: 10 })));
    deframer.push(&[b"CD".as_slice(), &[FS], b"x", &[FS, CR]].concat());
    deframer.push(&frame(b"next"));
    assert_eq!(drain(&mut deframer), [Ok(b"next".to_vec())], "a stray FS inside is skipped too");
    assert_eq!(deframer.discarded_bytes(), 10 + 2 + 2 + 1);

    // An oversized frame that never ends is left at the next VT.
    let mut deframer = MllpDeframer::with_frame_bytes_max(4);
    deframer.push(&[&[VT], b"too long and then".as_slice(), &frame(b"ok")].concat());
    assert_eq!(
        drain(&mut deframer),
        [Err(MllpError::FrameTooLarge { offset: 0, max: 4 }), Ok(b"ok".to_vec())]
    );
}

#[test]
fn an_empty_frame_is_yielded_and_the_parser_refuses_it() {
    let mut deframer = MllpDeframer::new();
    deframer.push(&[VT, FS, CR]);
    let empty = deframer.next_frame().unwrap().unwrap();
    assert!(empty.is_empty());
    assert!(Message::parse(&empty).is_err());
}

#[test]
fn reset_drops_a_partial_frame() {
    let mut deframer = MllpDeframer::new();
    deframer.push(&[VT, b'a', b'b']);
    assert!(deframer.is_mid_frame());
    assert_eq!(deframer.partial_frame(), b"ab", "what a closed connection cut off");
    deframer.push(&[FS]);
    assert_eq!(deframer.partial_frame(), b"ab", "FS without its CR has not ended the frame");
    assert_eq!(deframer.reset(), 2);
    assert_eq!(deframer.partial_frame(), b"");
    assert!(!deframer.is_mid_frame());
    deframer.push(&[b'c', FS, CR]);
    assert_eq!(deframer.next_frame(), None, "the rest of the dropped frame is outside any frame");
    assert_eq!(deframer.discarded_bytes(), 2 + 3);
}

#[test]
fn errors_read_like_sentences() {
    let error = MllpError::FrameTooLarge { offset: 13, max: 10 };
    assert_eq!(error.to_string(), "frame starting at byte 13 exceeds 10 bytes");
}

/// A whole exchange in memory: a sender frames an ORU, the reads arrive in odd pieces, the
/// receiver parses it and answers with a framed ACK that the sender matches by control ID.
#[test]
fn a_message_and_its_ack_over_mllp() {
    let message = fixture("hl7v251-oru-r01_fhir-converter_nist-lri-cbc-lf.hl7");
    let wire = frame(&message);

    let mut receiver = MllpDeframer::new();
    let mut received = Vec::new();
    for piece in wire.chunks(1000) {
        receiver.push(piece);
        received.extend(receiver.frames().map(Result::unwrap));
    }
    assert_eq!(received.len(), 1);
    let original = Message::parse(&received[0]).unwrap();
    let ack = AckBuilder::new(&original, AckCode::ApplicationAccept, "ACK-1", "20240501120000")
        .build()
        .unwrap();

    let mut sender = MllpDeframer::new();
    sender.push(&frame(&ack));
    let reply = sender.next_frame().unwrap().unwrap();
    let reply = Message::parse_strict(&reply).unwrap();
    assert_eq!(reply.get("MSA-1").unwrap().text(), "AA");
    assert_eq!(reply.get("MSA-2").unwrap().text(), original.msh().control_id().text());
}
