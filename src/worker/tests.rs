//! The stderr relay: escaping, UTF-8 across reads, its budget.

use super::stderr::relay;
use super::*;
use std::io::Write;
use std::sync::Mutex;

/// A writer whose bytes the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn relayed(raw: bool, limit: u64, chunks: &[&[u8]]) -> (String, StderrBudget) {
    let out = Shared::default();
    let mut r = Some(StderrRelay {
        out: Box::new(out.clone()),
        limit,
        raw,
    });
    let mut b = StderrBudget::default();
    for c in chunks {
        relay(&mut r, &mut b, c);
    }
    let text = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
    (text, b)
}

#[test]
fn test_relay_escapes_control_characters_but_keeps_lines() {
    let (text, b) = relayed(false, 1 << 20, &[b"warn:\tx\n\x1b]0;pwned\x07\x1b[2J\n"]);
    assert_eq!(text, "warn:\tx\n\\x1b]0;pwned\\x07\\x1b[2J\n");
    assert!(!b.line_open);
}

#[test]
fn test_relay_utf8_split_across_reads_stays_one_character() {
    let e = "é".as_bytes();
    let (text, b) = relayed(false, 1 << 20, &[&[b'a', e[0]], &[e[1], b'!']]);
    assert_eq!(text, "aé!");
    assert!(b.carry.is_empty() && b.line_open);
}

#[test]
fn test_relay_past_the_limit_counts_what_it_drops() {
    let (text, b) = relayed(true, 4, &[b"abc", b"defg", b"\x1b"]);
    assert_eq!(text, "abc");
    assert_eq!((b.relayed, b.relay_dropped), (3, 5));
}

#[test]
fn test_relay_limit_counts_escaped_bytes() {
    let flood = vec![0x1bu8; 64 << 10];
    let (text, b) = relayed(false, 16 << 10, &[&flood]);
    assert_eq!(text.len(), 16 << 10);
    assert_eq!(b.relay_dropped, (60 << 10) as u64);
}
