//! The plugwarden wire protocol, version 1 (docs/PROTOCOL.md).
//!
//! Every byte a plugin writes is hostile. Frames are length-prefixed with a
//! fixed 16-byte header and a hard size limit that is checked before a
//! single payload byte is buffered, so a huge length prefix, garbage or a
//! flood ends in a [`FrameError`], never in a panic or unbounded memory.
//! The decoder is push-based and does no I/O, so the host can feed it from
//! non-blocking pipes under a deadline and the fuzzer can feed it anything.
//!
//! ```
//! use plugwarden_proto::{encode_frame, FrameDecoder, Kind};
//!
//! let mut bytes = Vec::new();
//! encode_frame(&mut bytes, Kind::Job, 7, b"input");
//! let mut decoder = FrameDecoder::new(1 << 20);
//! let (used, frame) = decoder.push(&bytes).unwrap();
//! let frame = frame.expect("one whole frame");
//! assert_eq!(used, bytes.len());
//! assert_eq!((frame.kind, frame.id), (Kind::Job, 7));
//! assert_eq!(frame.payload, b"input");
//! ```

#![deny(missing_docs)]

pub mod arena;

use std::fmt;

/// Protocol version spoken by this host and SDK.
pub const VERSION: u32 = 1;
/// Size of a frame header in bytes.
pub const HEADER_LEN: usize = 16;
/// Default limit on one frame's payload.
pub const DEFAULT_MAX_FRAME: u32 = 64 << 20;
/// The two bytes every header starts with.
pub const MAGIC: [u8; 2] = *b"PW";

/// Header flag: the payload is an [`ArenaSlice`] (16 bytes) naming where
/// the bytes are in the shared arena (job, part, done); on the plugin's
/// hello, "this plugin maps the arena".
pub const FLAG_ARENA: u8 = 0x01;
/// Header flag, job only: the plugin may answer this job in the arena's
/// output region.
pub const FLAG_REPLY_IN_ARENA: u8 = 0x02;
/// Header flag, the plugin's hello only: "this plugin takes a job's input
/// in several frames" (host → plugin `part` frames, then the `job` frame
/// with the last part), so an input larger than one frame can reach it.
pub const FLAG_INPUT_PARTS: u8 = 0x02;
/// Length of an [`ArenaSlice`] payload.
pub const ARENA_SLICE_LEN: usize = 16;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Host → plugin first: `u32 version, u32 max_frame`. Plugin → host
    /// reply: `u32 version`, then an optional UTF-8 plugin name.
    Hello = 1,
    /// Host → plugin: one job's input.
    Job = 2,
    /// Plugin → host: one part of a job's output; more follow. Host →
    /// plugin (only to a plugin whose hello set [`FLAG_INPUT_PARTS`]): one
    /// part of a job's input; the job frame with the same id ends it.
    Part = 3,
    /// Plugin → host: the last (possibly empty) part of a job's output.
    Done = 4,
    /// Plugin → host: the job failed; payload is a UTF-8 message.
    Error = 5,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Job,
            3 => Kind::Part,
            4 => Kind::Done,
            5 => Kind::Error,
            _ => return None,
        })
    }

    /// The flags a frame of this kind may carry.
    fn allowed_flags(self) -> u8 {
        match self {
            Kind::Hello => FLAG_ARENA | FLAG_INPUT_PARTS,
            Kind::Part | Kind::Done => FLAG_ARENA,
            Kind::Job => FLAG_ARENA | FLAG_REPLY_IN_ARENA,
            Kind::Error => 0,
        }
    }
}

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the frame carries.
    pub kind: Kind,
    /// Its `FLAG_*` bits (valid for `kind`).
    pub flags: u8,
    /// Payload length in bytes (at most the decoder's `max_frame`).
    pub len: u32,
    /// The job it belongs to (0 for hellos).
    pub id: u64,
}

/// Encodes a header with no flags: `"PW", kind u8, flags u8 (0), len u32
/// LE, id u64 LE`.
pub fn encode_header(kind: Kind, id: u64, len: u32) -> [u8; HEADER_LEN] {
    encode_header_flags(kind, 0, id, len)
}

/// Encodes a header with `flags` (the caller picks flags valid for `kind`).
pub fn encode_header_flags(kind: Kind, flags: u8, id: u64, len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..2].copy_from_slice(&MAGIC);
    h[2] = kind as u8;
    h[3] = flags;
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[8..16].copy_from_slice(&id.to_le_bytes());
    h
}

/// Appends a whole frame with no flags to `out`. Panics only if `payload`
/// exceeds 4 GiB, which the callers rule out by their own limits.
pub fn encode_frame(out: &mut Vec<u8>, kind: Kind, id: u64, payload: &[u8]) {
    encode_frame_flags(out, kind, 0, id, payload);
}

/// Appends a whole frame with `flags` to `out` (panics as [`encode_frame`]).
pub fn encode_frame_flags(out: &mut Vec<u8>, kind: Kind, flags: u8, id: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("payload over 4 GiB");
    out.extend_from_slice(&encode_header_flags(kind, flags, id, len));
    out.extend_from_slice(payload);
}

/// Parses a header; `max_frame` bounds the announced length.
pub fn decode_header(h: &[u8; HEADER_LEN], max_frame: u32) -> Result<Header, FrameError> {
    if h[0..2] != MAGIC {
        return Err(FrameError::BadMagic([h[0], h[1]]));
    }
    let kind = Kind::from_u8(h[2]).ok_or(FrameError::UnknownKind(h[2]))?;
    let flags = h[3];
    if flags & !kind.allowed_flags() != 0 {
        return Err(FrameError::BadFlags(flags));
    }
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if len > max_frame {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame,
        });
    }
    if flags & FLAG_ARENA != 0 && kind != Kind::Hello && len as usize != ARENA_SLICE_LEN {
        return Err(FrameError::BadArenaSlice(len));
    }
    let id = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
    Ok(Header {
        kind,
        flags,
        len,
        id,
    })
}

/// A whole frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What the frame carries.
    pub kind: Kind,
    /// Its `FLAG_*` bits.
    pub flags: u8,
    /// The job it belongs to (0 for hellos).
    pub id: u64,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// Why a byte stream is not a valid frame sequence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header does not start with [`MAGIC`].
    #[error("bad frame magic {0:02x?} (expected \"PW\"): the plugin wrote something that is not a plugwarden frame")]
    BadMagic([u8; 2]),
    /// No [`Kind`] has this number.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Flags reserved, or not valid for the frame's kind.
    #[error("frame flags {0:#04x} are reserved or not valid for this kind of frame")]
    BadFlags(u8),
    /// An arena frame whose payload is not one [`ArenaSlice`].
    #[error("arena frame with a payload of {0} bytes (an arena slice is 16 bytes)")]
    BadArenaSlice(u32),
    /// The announced length exceeds the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced payload length.
        len: u32,
        /// The decoder's limit.
        max: u32,
    },
}

/// Incremental, bounded frame decoder.
///
/// Memory held is at most one header plus one payload of at most
/// `max_frame` bytes, and the payload buffer grows only as bytes arrive, so
/// a peer that announces 64 MiB and sends 10 bytes costs 10 bytes.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame: u32,
    header: [u8; HEADER_LEN],
    header_fill: usize,
    current: Option<Header>,
    payload: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder that refuses frames over `max_frame` payload bytes.
    pub fn new(max_frame: u32) -> Self {
        FrameDecoder {
            max_frame,
            header: [0; HEADER_LEN],
            header_fill: 0,
            current: None,
            payload: Vec::new(),
        }
    }

    /// True when no partial frame is buffered.
    pub fn is_idle(&self) -> bool {
        self.header_fill == 0 && self.current.is_none()
    }

    /// Feeds bytes; returns how many were consumed and the frame completed
    /// by them, if any. Call again with the rest until all are consumed.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(usize, Option<Frame>), FrameError> {
        let start = data.len();
        if self.current.is_none() {
            let take = (HEADER_LEN - self.header_fill).min(data.len());
            self.header[self.header_fill..self.header_fill + take].copy_from_slice(&data[..take]);
            self.header_fill += take;
            data = &data[take..];
            if self.header_fill < HEADER_LEN {
                return Ok((start - data.len(), None));
            }
            let header = decode_header(&self.header, self.max_frame)?;
            self.header_fill = 0;
            self.current = Some(header);
            self.payload = Vec::new();
        }
        let header = self.current.expect("set above");
        let want = header.len as usize - self.payload.len();
        let take = want.min(data.len());
        self.payload.extend_from_slice(&data[..take]);
        data = &data[take..];
        let consumed = start - data.len();
        if self.payload.len() < header.len as usize {
            return Ok((consumed, None));
        }
        self.current = None;
        let frame = Frame {
            kind: header.kind,
            flags: header.flags,
            id: header.id,
            payload: std::mem::take(&mut self.payload),
        };
        Ok((consumed, Some(frame)))
    }

    /// Feeds all of `data`, collecting every completed frame.
    pub fn push_all(&mut self, mut data: &[u8], out: &mut Vec<Frame>) -> Result<(), FrameError> {
        while !data.is_empty() {
            let (n, frame) = self.push(data)?;
            data = &data[n..];
            out.extend(frame);
        }
        Ok(())
    }
}

/// Host → plugin hello payload.
pub fn host_hello(max_frame: u32) -> [u8; 8] {
    let mut p = [0u8; 8];
    p[..4].copy_from_slice(&VERSION.to_le_bytes());
    p[4..].copy_from_slice(&max_frame.to_le_bytes());
    p
}

/// Host → plugin hello payload when the plugin was given an arena of two
/// regions of `region` bytes as fd 3: the plain hello, then `u64 region`.
/// A plugin that does not know the arena reads the first 8 bytes only.
pub fn host_hello_arena(max_frame: u32, region: u64) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&host_hello(max_frame));
    p[8..].copy_from_slice(&region.to_le_bytes());
    p
}

/// The host's hello, parsed (by the SDK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostHello {
    /// The host's protocol version.
    pub version: u32,
    /// The largest payload the host sends or accepts.
    pub max_frame: u32,
    /// Size of each arena region, when the host handed over an arena.
    pub arena_region: Option<u64>,
}

impl HostHello {
    /// Parses the host's hello payload; bytes past the known fields are
    /// ignored (room for later additions).
    pub fn parse(payload: &[u8]) -> Result<HostHello, HelloError> {
        let word = |at: usize| {
            payload
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let (Some(version), Some(max_frame)) = (word(0), word(4)) else {
            return Err(HelloError::Short(payload.len()));
        };
        let arena_region = payload
            .get(8..16)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .filter(|&r| r > 0);
        Ok(HostHello {
            version,
            max_frame,
            arena_region,
        })
    }
}

/// Where a payload lies in the arena: `[offset, offset + len)` in bytes
/// from the start of the memfd. Sent as `u64 offset, u64 len` (LE) in the
/// payload of a job, part or done frame with [`FLAG_ARENA`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaSlice {
    /// Start, in bytes from the start of the memfd.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl ArenaSlice {
    /// The 16-byte payload naming this slice.
    pub fn encode(&self) -> [u8; ARENA_SLICE_LEN] {
        let mut p = [0u8; ARENA_SLICE_LEN];
        p[..8].copy_from_slice(&self.offset.to_le_bytes());
        p[8..].copy_from_slice(&self.len.to_le_bytes());
        p
    }

    /// Parses a slice payload; `None` unless it is exactly 16 bytes.
    pub fn parse(payload: &[u8]) -> Option<ArenaSlice> {
        let p: &[u8; ARENA_SLICE_LEN] = payload.try_into().ok()?;
        Some(ArenaSlice {
            offset: u64::from_le_bytes(p[..8].try_into().ok()?),
            len: u64::from_le_bytes(p[8..].try_into().ok()?),
        })
    }

    /// Checks that the slice lies within the region `[start, start + size)`
    /// (checked arithmetic: no overflow wraps into bounds) and returns
    /// `(offset, len)` as `usize`.
    pub fn within(&self, start: u64, size: u64) -> Result<(usize, usize), ArenaSliceError> {
        let out = || ArenaSliceError {
            slice: *self,
            start,
            size,
        };
        let end = self.offset.checked_add(self.len).ok_or_else(out)?;
        let region_end = start.checked_add(size).ok_or_else(out)?;
        if self.offset < start || end > region_end {
            return Err(out());
        }
        let offset = usize::try_from(self.offset).map_err(|_| out())?;
        let len = usize::try_from(self.len).map_err(|_| out())?;
        Ok((offset, len))
    }
}

/// An arena slice outside the region it must lie in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("arena slice at offset {} of {} bytes is outside the region [{start}, {start} + {size})", slice.offset, slice.len)]
pub struct ArenaSliceError {
    /// The slice as received.
    pub slice: ArenaSlice,
    /// Start of the region it had to lie in.
    pub start: u64,
    /// Size of that region.
    pub size: u64,
}

/// The plugin's hello reply, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginHello {
    /// The plugin's protocol version.
    pub version: u32,
    /// The name it gave (lossy UTF-8, at most 256 bytes), often its `argv[0]`.
    pub name: String,
}

impl PluginHello {
    /// Parses the plugin's reply; at most 256 bytes of name are kept.
    pub fn parse(payload: &[u8]) -> Result<PluginHello, HelloError> {
        let Some(v) = payload.get(..4) else {
            return Err(HelloError::Short(payload.len()));
        };
        let version = u32::from_le_bytes(v.try_into().expect("4 bytes"));
        let name = &payload[4..];
        let name = String::from_utf8_lossy(&name[..name.len().min(256)]).into_owned();
        Ok(PluginHello { version, name })
    }
}

/// Why a hello payload cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// Shorter than its fixed fields.
    #[error("hello payload of {0} bytes is too short (needs a 4-byte version)")]
    Short(usize),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Kind::Hello => "hello",
            Kind::Job => "job",
            Kind::Part => "part",
            Kind::Done => "done",
            Kind::Error => "error",
        };
        f.write_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(bytes: &[u8], max: u32) -> Result<Vec<Frame>, FrameError> {
        let mut d = FrameDecoder::new(max);
        let mut out = Vec::new();
        d.push_all(bytes, &mut out)?;
        Ok(out)
    }

    #[test]
    fn test_decoder_round_trip_byte_by_byte_yields_frames() {
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, Kind::Job, 7, b"hello");
        encode_frame(&mut bytes, Kind::Done, 7, b"");
        let mut d = FrameDecoder::new(1024);
        let mut out = Vec::new();
        for b in &bytes {
            d.push_all(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].payload, b"hello");
        assert_eq!(out[1].kind, Kind::Done);
        assert!(d.is_idle());
    }

    #[test]
    fn test_decoder_huge_length_is_rejected_before_buffering() {
        let h = encode_header(Kind::Done, 1, u32::MAX);
        assert_eq!(
            frames_of(&h, DEFAULT_MAX_FRAME),
            Err(FrameError::TooLarge {
                len: u32::MAX,
                max: DEFAULT_MAX_FRAME
            })
        );
    }

    #[test]
    fn test_decoder_garbage_is_bad_magic() {
        assert!(matches!(
            frames_of(b"hello world, garbage!", 1024),
            Err(FrameError::BadMagic(_))
        ));
    }

    #[test]
    fn test_decoder_partial_payload_holds_only_received_bytes() {
        let h = encode_header(Kind::Done, 1, 1 << 20);
        let mut d = FrameDecoder::new(1 << 21);
        let (_, f) = d.push(&h).unwrap();
        assert!(f.is_none());
        d.push(&[0u8; 10]).unwrap();
        assert!(d.payload.capacity() < 4096);
        assert!(!d.is_idle());
    }

    #[test]
    fn test_decoder_arena_flags_round_trip_and_misuse_rejected() {
        let slice = ArenaSlice {
            offset: 4096,
            len: 10,
        }
        .encode();
        let mut bytes = Vec::new();
        encode_frame_flags(&mut bytes, Kind::Done, FLAG_ARENA, 3, &slice);
        let frames = frames_of(&bytes, 1024).unwrap();
        assert_eq!(frames[0].flags, FLAG_ARENA);
        assert_eq!(ArenaSlice::parse(&frames[0].payload).unwrap().offset, 4096);
        let error = encode_header_flags(Kind::Error, FLAG_ARENA, 3, 16);
        assert_eq!(frames_of(&error, 1024), Err(FrameError::BadFlags(1)));
        let reply_on_done = encode_header_flags(Kind::Done, FLAG_REPLY_IN_ARENA, 3, 0);
        assert_eq!(
            frames_of(&reply_on_done, 1024),
            Err(FrameError::BadFlags(2))
        );
        let short = encode_header_flags(Kind::Part, FLAG_ARENA, 3, 8);
        assert_eq!(frames_of(&short, 1024), Err(FrameError::BadArenaSlice(8)));
    }

    #[test]
    fn test_arena_slice_within_overflow_and_outside_rejected() {
        let s = |offset, len| ArenaSlice { offset, len };
        assert_eq!(s(100, 28).within(100, 28), Ok((100, 28)));
        assert!(s(99, 1).within(100, 28).is_err());
        assert!(s(100, 29).within(100, 28).is_err());
        assert!(s(u64::MAX, 2).within(0, u64::MAX).is_err());
        assert!(s(1, u64::MAX).within(0, 1 << 20).is_err());
    }

    #[test]
    fn test_host_hello_with_and_without_arena_parses() {
        let plain = HostHello::parse(&host_hello(4096)).unwrap();
        assert_eq!((plain.max_frame, plain.arena_region), (4096, None));
        let arena = HostHello::parse(&host_hello_arena(4096, 1 << 20)).unwrap();
        assert_eq!(arena.arena_region, Some(1 << 20));
        assert_eq!(HostHello::parse(&[1, 0, 0]), Err(HelloError::Short(3)));
    }

    #[test]
    fn test_hello_short_payload_is_error() {
        assert_eq!(PluginHello::parse(b"ab"), Err(HelloError::Short(2)));
        assert_eq!(PluginHello::parse(&[1, 0, 0, 0, b'x']).unwrap().name, "x");
    }
}
