//! Fuzz check for the protocol's fixed-layout messages: the plugin's hello
//! payload and the host's hello payload (all of the input), a frame header
//! (the first 16 bytes, checked against several limits) and an arena slice
//! (the first 16 bytes) checked against a region (the next 16 bytes). No
//! parser may panic, and what they accept must say exactly what the bytes
//! say; an accepted arena slice lies inside its region.

use plugwarden_proto::{
    decode_header, encode_header_flags, ArenaSlice, FrameError, HelloError, HostHello, Kind,
    PluginHello, ARENA_SLICE_LEN, DEFAULT_MAX_FRAME, FLAG_ARENA, HEADER_LEN, MAGIC,
};

/// Longest name the host keeps from a hello, in bytes of the payload.
const NAME_BYTES: usize = 256;

/// Panics if `PluginHello::parse` or `decode_header` misbehave on `data`.
pub fn check(data: &[u8]) {
    check_hello(data);
    check_host_hello(data);
    if let Some(h) = data.get(..HEADER_LEN) {
        let h: &[u8; HEADER_LEN] = h.try_into().expect("HEADER_LEN bytes");
        for max_frame in [0, 4096, DEFAULT_MAX_FRAME, u32::MAX] {
            check_header(h, max_frame);
        }
    }
    check_arena_slice(data);
}

fn word(data: &[u8], at: usize) -> Option<u64> {
    data.get(at..at + 8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

fn check_host_hello(data: &[u8]) {
    match HostHello::parse(data) {
        Ok(hello) => {
            assert!(
                data.len() >= 8,
                "a host hello of {} bytes was accepted",
                data.len()
            );
            assert_eq!(
                u64::from(hello.version) | u64::from(hello.max_frame) << 32,
                word(data, 0).expect("8 bytes")
            );
            let region = word(data, 8).filter(|&r| r > 0);
            assert_eq!(
                hello.arena_region, region,
                "arena region is not bytes 8..16"
            );
        }
        Err(error) => {
            assert_eq!(error, HelloError::Short(data.len()), "wrong error");
            assert!(
                data.len() < 8,
                "a host hello of {} bytes was refused",
                data.len()
            );
        }
    }
}

/// Bytes 0..16: a slice payload; 16..32: the region's start and size.
fn check_arena_slice(data: &[u8]) {
    let slice = ArenaSlice::parse(data.get(..ARENA_SLICE_LEN).unwrap_or(data));
    let Some(slice) = slice else {
        assert!(data.len() < ARENA_SLICE_LEN, "a 16-byte slice was refused");
        return;
    };
    assert_eq!(
        &slice.encode()[..],
        &data[..ARENA_SLICE_LEN],
        "slice does not re-encode"
    );
    let start = word(data, 16).unwrap_or(0);
    let size = word(data, 24).unwrap_or(u64::MAX);
    // The reference in u128: nothing overflows there.
    let (o, l, s, z) = (
        u128::from(slice.offset),
        u128::from(slice.len),
        u128::from(start),
        u128::from(size),
    );
    let inside = o >= s && o + l <= s + z && s + z <= u128::from(u64::MAX);
    match slice.within(start, size) {
        Ok((offset, len)) => {
            assert!(
                inside,
                "slice {slice:?} accepted outside [{start}, +{size})"
            );
            assert_eq!((offset as u64, len as u64), (slice.offset, slice.len));
        }
        Err(error) => {
            let _ = error.to_string();
            // Only a slice that does not fit in usize may be refused inside.
            assert!(
                !inside
                    || usize::try_from(slice.offset).is_err()
                    || usize::try_from(slice.len).is_err(),
                "slice {slice:?} refused inside [{start}, +{size})"
            );
        }
    }
}

fn check_hello(data: &[u8]) {
    match PluginHello::parse(data) {
        Ok(hello) => {
            assert!(
                data.len() >= 4,
                "a hello of {} bytes was accepted",
                data.len()
            );
            let version = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            assert_eq!(
                hello.version, version,
                "version is not the first 4 bytes, little-endian"
            );
            let name = &data[4..data.len().min(4 + NAME_BYTES)];
            // Each invalid byte becomes at most one U+FFFD (3 bytes).
            assert!(
                hello.name.len() <= 3 * NAME_BYTES,
                "name of {} bytes kept",
                hello.name.len()
            );
            if let Ok(valid) = std::str::from_utf8(name) {
                assert_eq!(hello.name, valid, "a valid UTF-8 name was altered");
            }
        }
        Err(error) => {
            assert_eq!(error, HelloError::Short(data.len()), "wrong error");
            assert!(
                data.len() < 4,
                "a hello of {} bytes was refused",
                data.len()
            );
            let _ = error.to_string();
        }
    }
}

fn check_header(h: &[u8; HEADER_LEN], max_frame: u32) {
    match decode_header(h, max_frame) {
        Ok(header) => {
            assert!(
                header.len <= max_frame,
                "length {} over the limit {max_frame}",
                header.len
            );
            assert_eq!(
                &encode_header_flags(header.kind, header.flags, header.id, header.len),
                h,
                "an accepted header does not re-encode to its bytes"
            );
            assert!(
                header.flags & !3 == 0,
                "unknown flags {:#x} accepted",
                header.flags
            );
            if header.flags & FLAG_ARENA != 0 {
                assert_ne!(header.kind, Kind::Error, "an error frame flagged arena");
                if header.kind != Kind::Hello {
                    assert_eq!(
                        header.len as usize, ARENA_SLICE_LEN,
                        "arena frame not a slice"
                    );
                }
            }
            let _ = header.kind.to_string();
        }
        Err(error) => {
            let _ = error.to_string();
            match error {
                FrameError::BadMagic(m) => {
                    assert_eq!(m, [h[0], h[1]]);
                    assert_ne!(m, MAGIC, "good magic reported as bad");
                }
                FrameError::UnknownKind(k) => assert_eq!(k, h[2]),
                FrameError::BadFlags(f) => {
                    assert_eq!(f, h[3]);
                    assert_ne!(f, 0, "zero flags reported as bad");
                }
                FrameError::BadArenaSlice(len) => {
                    assert_ne!(
                        h[3] & FLAG_ARENA,
                        0,
                        "slice length checked on a plain frame"
                    );
                    assert_ne!(len as usize, ARENA_SLICE_LEN, "a 16-byte slice refused");
                }
                FrameError::TooLarge { len, max } => {
                    assert_eq!(max, max_frame);
                    assert!(len > max, "length {len} within {max} reported as too large");
                }
            }
        }
    }
}
