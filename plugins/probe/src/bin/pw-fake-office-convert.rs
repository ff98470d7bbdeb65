//! A stand-in for pw-office-convert in the tests: a document that makes
//! LibreOffice crash, hang, fill its /tmp or leave a process behind cannot
//! be written on demand, so this filter does it when the document holds a
//! marker, and otherwise answers with a small valid PDF. It runs under the
//! shipped `office` policy, where the real converter runs.
//!
//! Markers: `PW-CRASH` (abort), `PW-HANG` (sleep), `PW-FILL-TMP` (write
//! /tmp until it is full, then exit 3 as the real converter does),
//! `PW-LINGER` (leave an orphaned grandchild running, then answer).

use std::io::{Read, Write};

const PDF: &[u8] = include_bytes!("../../../../samples/benign.pdf");

fn has(input: &[u8], marker: &str) -> bool {
    input.windows(marker.len()).any(|w| w == marker.as_bytes())
}

/// Leaves a grandchild running, an orphan once its parent exits (what a
/// daemonising helper does); this process goes on at once.
fn linger() {
    // SAFETY: fork in a single-threaded process; the children only call
    // async-signal-safe functions (fork, sleep, _exit, waitpid).
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: as above, in the child.
            unsafe {
                if libc::fork() == 0 {
                    libc::sleep(3600);
                }
                libc::_exit(0);
            }
        }
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        child => {
            // SAFETY: waits for our own child, which exits at once.
            unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
        }
    }
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
        linger();
    }
    std::io::stdout().write_all(PDF).expect("stdout");
}
