//! Fuzz check for the protocol's fixed-layout messages: the plugin's hello
//! payload (all of the input) and a frame header (the first 16 bytes,
//! checked against several limits). Neither parser may panic, and what
//! they accept must say exactly what the bytes say.

use plugwarden::protocol::{
    decode_header, encode_header, FrameError, HelloError, PluginHello, DEFAULT_MAX_FRAME,
    HEADER_LEN, MAGIC,
};

/// Longest name the host keeps from a hello, in bytes of the payload.
const NAME_BYTES: usize = 256;

/// Panics if `PluginHello::parse` or `decode_header` misbehave on `data`.
pub fn check(data: &[u8]) {
    check_hello(data);
    if let Some(h) = data.get(..HEADER_LEN) {
        let h: &[u8; HEADER_LEN] = h.try_into().expect("HEADER_LEN bytes");
        for max_frame in [0, 4096, DEFAULT_MAX_FRAME, u32::MAX] {
            check_header(h, max_frame);
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
                &encode_header(header.kind, header.id, header.len),
                h,
                "an accepted header does not re-encode to its bytes"
            );
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
                FrameError::TooLarge { len, max } => {
                    assert_eq!(max, max_frame);
                    assert!(len > max, "length {len} within {max} reported as too large");
                }
            }
        }
    }
}
