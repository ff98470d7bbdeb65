//! A stand-in for pw-office-convert in the tests: a document that makes
//! LibreOffice crash, hang, fill its /tmp or leave a process behind cannot
//! be written on demand, so this filter does it when the document holds a
//! marker, and otherwise answers with a small valid PDF. It runs under the
//! shipped `office` policy, where the real converter runs.
//!
//! Markers: `PW-CRASH` (abort), `PW-HANG` (sleep), `PW-FILL-TMP` (write
//! /tmp until it is full, then exit 3 as the real converter does),
//! `PW-LINGER` (start a process in a session of its own that outlives
//! this one, then answer).

use std::io::{Read, Write};

const PDF: &[u8] = include_bytes!("../../../../samples/benign.pdf");

fn has(input: &[u8], marker: &str) -> bool {
    input.windows(marker.len()).any(|w| w == marker.as_bytes())
}

fn main() {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).expect("stdin");
    if has(&input, "PW-CRASH") {
        std::process::abort();
    }
    if has(&input, "PW-HANG") {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    if has(&input, "PW-FILL-TMP") {
        let mut f = std::fs::File::create("/tmp/fill").expect("create /tmp/fill");
        let block = vec![0x55u8; 1 << 20];
        while f.write_all(&block).is_ok() {}
        eprintln!("pw-fake-office-convert: the private /tmp is full");
        std::process::exit(3);
    }
    if has(&input, "PW-LINGER") {
        // SAFETY: fork in a single-threaded process; the child only calls
        // async-signal-safe functions (setsid, sleep, _exit).
        match unsafe { libc::fork() } {
            0 => {
                // SAFETY: plain syscalls in the child.
                unsafe {
                    libc::setsid();
                    libc::sleep(3600);
                    libc::_exit(0);
                }
            }
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            _ => {}
        }
    }
    std::io::stdout().write_all(PDF).expect("stdout");
}
