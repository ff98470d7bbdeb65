//! Shared memory: a plugin that maps the host's arena (fd 3) and abuses it,
//! speaking the protocol by hand. Each job's input is one command:
//!
//! - `resize`: shrinks, grows and fallocates fd 3 beyond its size (the
//!   seals must refuse all three), then answers its report in the arena;
//! - `slice <offset> <len>`: answers `done` naming that arena slice, honest
//!   or not;
//! - `fill <byte> <len>`: writes `len` bytes into the output region and
//!   answers them in the arena;
//! - `rewrite <byte>`: overwrites the first MiB of the output region, then
//!   answers `rewritten` through the pipe.
//!
//! With the argument `unannounced` its hello does not claim the arena, so
//! any answer in the arena is one the host never offered.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

use plugwarden_sdk::protocol::{
    encode_frame_flags, ArenaSlice, FrameDecoder, HostHello, Kind, FLAG_ARENA,
};

struct Arena {
    base: *mut u8,
    region: usize,
}

fn main() {
    let announce = std::env::args().nth(1).as_deref() != Some("unannounced");
    // SAFETY: fd 0 is the host's pipe, open for the life of the process.
    let stdin = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
    let mut input = BufReader::new(&*stdin);
    let mut decoder = FrameDecoder::new(64 << 20);
    let Some(hello) = next_frame(&mut input, &mut decoder) else {
        return;
    };
    let Ok(host) = HostHello::parse(&hello.payload) else {
        return;
    };
    let region = host.arena_region.unwrap_or(0) as usize;
    // SAFETY: maps fd 3 shared; the result is checked below.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            2 * region,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            3,
            0,
        )
    };
    if region == 0 || base == libc::MAP_FAILED {
        eprintln!("hostile-arena: no arena to abuse");
        std::process::exit(3);
    }
    let arena = Arena {
        base: base.cast(),
        region,
    };
    let flags = if announce { FLAG_ARENA } else { 0 };
    let mut reply = Vec::new();
    encode_frame_flags(&mut reply, Kind::Hello, flags, 0, &1u32.to_le_bytes());
    pw_hostile::raw_stdout(&reply);
    decoder = FrameDecoder::new(host.max_frame);
    while let Some(job) = next_frame(&mut input, &mut decoder) {
        let command = String::from_utf8_lossy(&job.payload).into_owned();
        pw_hostile::raw_stdout(&answer(&arena, job.id, command.trim()));
    }
}

/// The frames answering one command.
fn answer(arena: &Arena, id: u64, command: &str) -> Vec<u8> {
    let words: Vec<&str> = command.split(' ').collect();
    let number = |i: usize| {
        words
            .get(i)
            .and_then(|w| w.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    match words[0] {
        "resize" => {
            let report = resize(arena.region);
            fill(arena, &report);
            in_arena(&mut out, id, arena.region as u64, report.len() as u64);
        }
        "slice" => in_arena(&mut out, id, number(1), number(2)),
        "fill" => {
            let bytes = vec![number(1) as u8; number(2) as usize];
            fill(arena, &bytes);
            in_arena(&mut out, id, arena.region as u64, bytes.len() as u64);
        }
        "rewrite" => {
            fill(arena, &vec![number(1) as u8; (1 << 20).min(arena.region)]);
            encode_frame_flags(&mut out, Kind::Done, 0, id, b"rewritten");
        }
        _ => encode_frame_flags(&mut out, Kind::Error, 0, id, b"unknown command"),
    }
    out
}

/// Tries to change the size of fd 3; the report names each errno.
fn resize(region: usize) -> Vec<u8> {
    let big = (4 * region) as libc::off_t;
    // SAFETY: ftruncate and fallocate on fd 3 with integer arguments.
    let attempts = [
        ("ftruncate 0", unsafe { libc::ftruncate(3, 0) }),
        // SAFETY: as above.
        ("ftruncate grow", unsafe { libc::ftruncate(3, big) }),
        // SAFETY: as above.
        ("fallocate grow", unsafe { libc::fallocate(3, 0, 0, big) }),
    ];
    let report: Vec<String> = attempts
        .iter()
        .map(|(what, rc)| match rc {
            0 => format!("ESCAPED: {what} worked"),
            _ => format!("{what}: {}", pw_hostile::errno()),
        })
        .collect();
    report.join("; ").into_bytes()
}

/// Writes `bytes` at the start of the output region.
fn fill(arena: &Arena, bytes: &[u8]) {
    let len = bytes.len().min(arena.region);
    // SAFETY: [region, region + len) lies inside the 2 × region mapping.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), arena.base.add(arena.region), len) };
}

/// A `done` frame naming `[offset, offset + len)` of the arena.
fn in_arena(out: &mut Vec<u8>, id: u64, offset: u64, len: u64) {
    let slice = ArenaSlice { offset, len }.encode();
    encode_frame_flags(out, Kind::Done, FLAG_ARENA, id, &slice);
}

fn next_frame(
    input: &mut impl BufRead,
    decoder: &mut FrameDecoder,
) -> Option<plugwarden_sdk::protocol::Frame> {
    loop {
        let buf = input.fill_buf().ok()?;
        if buf.is_empty() {
            return None;
        }
        let (used, frame) = decoder.push(buf).ok()?;
        input.consume(used);
        if frame.is_some() {
            return frame;
        }
    }
}
