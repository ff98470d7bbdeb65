//! Fuzz check for the frame decoder: arbitrary bytes, fed in arbitrary
//! chunks, never make it panic, loop or hand out a frame over the limit, and
//! the frames it returns re-encode to exactly the bytes it consumed for them.
//!
//! Input layout: byte 0 picks the largest chunk (0 = the whole stream in one
//! `push_all`, otherwise chunks of 1..=byte0 bytes), byte 1 seeds the chunk
//! sizes; the rest is the stream a plugin would have written.

use plugwarden_proto::{encode_frame_flags, Frame, FrameDecoder, FrameError};

/// The decoder's payload limit here: small, so the fuzzer reaches it.
const MAX_FRAME: u32 = 4096;

/// Decodes `stream` in one call, as the reference for the chunked decode.
fn decode_at_once(stream: &[u8]) -> (Vec<Frame>, Option<FrameError>) {
    let mut decoder = FrameDecoder::new(MAX_FRAME);
    let mut frames = Vec::new();
    let error = decoder.push_all(stream, &mut frames).err();
    (frames, error)
}

/// Panics if the decoder misbehaves on `data` (see the module comment).
pub fn check(data: &[u8]) {
    let (control, stream) = data.split_at(data.len().min(2));
    let largest_chunk = control.first().map_or(0, |&b| usize::from(b));
    let mut seed = control.get(1).map_or(1, |&b| u32::from(b) | 1);

    let (reference_frames, reference_error) = decode_at_once(stream);
    if let Some(error) = &reference_error {
        // Rendering the message must not panic either.
        let _ = error.to_string();
    }
    if largest_chunk == 0 {
        check_frames(stream, &reference_frames);
        return;
    }

    let mut decoder = FrameDecoder::new(MAX_FRAME);
    let mut frames: Vec<Frame> = Vec::new();
    let mut error = None;
    // Bytes of `stream` the decoder has consumed, and where the last
    // returned frame ended.
    let mut consumed = 0usize;
    let mut frames_end = 0usize;
    let mut encoded = Vec::new();
    'feed: while consumed < stream.len() {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let size = 1 + (seed >> 16) as usize % largest_chunk;
        let chunk_end = (consumed + size).min(stream.len());
        while consumed < chunk_end {
            let chunk = &stream[consumed..chunk_end];
            match decoder.push(chunk) {
                Ok((n, frame)) => {
                    assert!(
                        n <= chunk.len(),
                        "push consumed {n} of {} bytes",
                        chunk.len()
                    );
                    assert!(
                        n > 0 || frame.is_some(),
                        "push made no progress: it would loop"
                    );
                    consumed += n;
                    if let Some(frame) = frame {
                        assert!(
                            frame.payload.len() <= MAX_FRAME as usize,
                            "frame of {} bytes over the limit of {MAX_FRAME}",
                            frame.payload.len()
                        );
                        assert!(
                            decoder.is_idle(),
                            "decoder holds bytes right after a whole frame"
                        );
                        encoded.clear();
                        encode_frame_flags(
                            &mut encoded,
                            frame.kind,
                            frame.flags,
                            frame.id,
                            &frame.payload,
                        );
                        assert_eq!(
                            encoded[..],
                            stream[frames_end..consumed],
                            "re-encoding frame {} does not give the bytes consumed for it",
                            frames.len()
                        );
                        frames_end = consumed;
                        frames.push(frame);
                    }
                }
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    if error.is_none() {
        assert_eq!(
            consumed,
            stream.len(),
            "every byte is consumed when no error occurs"
        );
        assert_eq!(
            decoder.is_idle(),
            frames_end == stream.len(),
            "is_idle disagrees with whether a partial frame is buffered"
        );
    }
    assert_eq!(
        frames, reference_frames,
        "chunking changed the frames decoded"
    );
    assert_eq!(error, reference_error, "chunking changed the error");
    check_frames(&stream[..frames_end], &frames);
}

/// Asserts that `frames` are within the limit and re-encode to a prefix of
/// `stream`.
fn check_frames(stream: &[u8], frames: &[Frame]) {
    let mut encoded = Vec::new();
    for frame in frames {
        assert!(
            frame.payload.len() <= MAX_FRAME as usize,
            "frame over the limit"
        );
        encode_frame_flags(
            &mut encoded,
            frame.kind,
            frame.flags,
            frame.id,
            &frame.payload,
        );
    }
    assert!(
        stream.starts_with(&encoded),
        "the frames do not re-encode to the stream's prefix"
    );
}
