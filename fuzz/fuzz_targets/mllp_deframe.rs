//! Arbitrary bytes through the MLLP deframer, cut into arbitrary reads.
//!
//! Invariants: nothing panics; no frame is larger than the limit or holds a block character;
//! how the stream is cut into reads never changes what comes out; data delivered plus data
//! discarded never exceeds data pushed.
#![no_main]

use cuvette_hl7::mllp::{MllpDeframer, MllpError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [limit, chunk, stream @ ..] = data else { return };
    let max = usize::from(*limit);
    let chunk = usize::from(*chunk).max(1);

    let mut cut = MllpDeframer::with_frame_bytes_max(max);
    let mut cut_out: Vec<Result<Vec<u8>, MllpError>> = Vec::new();
    for piece in stream.chunks(chunk) {
        cut.push(piece);
        cut_out.extend(cut.frames());
    }
    let mut whole = MllpDeframer::with_frame_bytes_max(max);
    whole.push(stream);
    let whole_out: Vec<_> = whole.frames().collect();

    assert_eq!(cut_out, whole_out, "the reads' boundaries changed the frames");
    assert_eq!(cut.discarded_bytes(), whole.discarded_bytes());
    let mut delivered = 0;
    for frame in cut_out.iter().flatten() {
        assert!(frame.len() <= max, "a frame of {} bytes passed a limit of {max}", frame.len());
        assert!(!frame.contains(&0x0B) && !frame.contains(&0x1C), "a block character in a frame");
        delivered += frame.len() as u64;
    }
    assert!(delivered + cut.discarded_bytes() <= stream.len() as u64);
});
