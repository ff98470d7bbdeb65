//! The hash chain: sealing a record, checking a line again without
//! parsing it, and writing a new chain to any writer.

use std::io::{self, Write};
use std::time::SystemTime;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Line;
use super::{Link, VerifySummary, GENESIS};

/// The current time as records carry it.
pub(crate) fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Sets the record's hash from its `prev` and the rest of it, and returns
/// its line (without the newline). One serialization: the record is hashed
/// with `hash` empty, ending `"hash":""}`, and its line is that with the
/// 64 hex digits between the last two quotes.
pub(super) fn seal<T: Link>(rec: &mut T) -> Vec<u8> {
    rec.hash_mut().clear();
    let mut line = encode(rec);
    let hash = chain_hash(rec.prev(), &[&line]);
    let end = line.len() - 2;
    line.splice(end..end, hash.bytes());
    *rec.hash_mut() = hash;
    line
}

/// The bytes after `"prev":"` in a canonical record: `<prev>","hash":"<hash>"}`.
pub(super) const TAIL: usize = 64 + r#"","hash":""#.len() + 64 + r#""}"#.len();

/// Checks again a line of a chain verified before, without parsing it:
/// its `prev` is `prev` and its hash covers it. Returns its hash; `None`
/// when it is not so (it changed since, or is not a canonical record).
/// Walking a whole log this way and ending at the hash the verifier found
/// proves the bytes are the ones it verified.
pub(crate) fn relink<'l>(line: &'l [u8], prev: &str) -> Option<&'l str> {
    let body = line.len().checked_sub(TAIL)?;
    let (their_prev, rest) = line[body..].split_at(64);
    let hash = rest.get(r#"","hash":""#.len()..rest.len() - 2)?;
    let hash = std::str::from_utf8(hash).ok()?;
    let linked = their_prev == prev.as_bytes() && rest.starts_with(br#"","hash":""#);
    (linked && hash_of_line(prev, line, hash).as_deref() == Some(hash)).then_some(hash)
}

/// What the hash of a canonical `line` holding a hex `hash` must be: the
/// line with its hash cut out is the record as it was hashed ([`seal`]).
pub(super) fn hash_of_line(prev: &str, line: &[u8], hash: &str) -> Option<String> {
    let cut = line.len().checked_sub(hash.len() + 2)?;
    let hex = hash.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| chain_hash(prev, &[&line[..cut], b"\"}"]))
}

pub(super) fn chain_hash(prev: &str, canonical: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    for part in canonical {
        hasher.update(part);
    }
    let mut hex = [0u8; 64];
    // 32 bytes always fill 64 hex digits, which are ASCII.
    hex::encode_to_slice(hasher.finalize(), &mut hex).expect("64 digits for 32 bytes");
    String::from_utf8(hex.to_vec()).expect("hex digits are ASCII")
}

pub(super) fn encode<T: Serialize>(rec: &T) -> Vec<u8> {
    // Serializing strings, integers, options and vectors of them into a Vec
    // has no failure path; a Result here would be untestable noise.
    serde_json::to_vec(rec).expect("a record always serializes")
}

/// Writes a new chain to any writer, e.g. a merged log through a
/// `BufWriter`: no lock, no repair, no sync (the caller owns the file).
pub(crate) struct ChainWriter<W: Write> {
    out: W,
    next_seq: u64,
    last_hash: String,
}

impl<W: Write> ChainWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        ChainWriter {
            out,
            next_seq: 1,
            last_hash: GENESIS.to_owned(),
        }
    }

    /// Gives `line` the next place in the chain and writes it.
    pub(crate) fn push(&mut self, line: &mut Line) -> io::Result<()> {
        let bytes = match line {
            Line::Input(rec) => self.place(rec),
            Line::Job(rec) => self.place(rec),
        };
        self.out.write_all(&bytes)?;
        self.out.write_all(b"\n")
    }

    /// Writes `line`, a record already verified in a chain of its own, at
    /// the next place of this one without parsing it. A canonical record
    /// is `{"seq":N,` … `,"prev":"<64 hex>","hash":"<64 hex>"}`, so only
    /// the number, `prev` and the hash change: the bytes are those [`seal`]
    /// gives (a unit test holds them equal). `None` when `line` is not
    /// shaped so.
    pub(crate) fn push_verified(&mut self, line: &[u8]) -> Option<io::Result<()>> {
        let rest = line.strip_prefix(br#"{"seq":"#)?;
        let digits = rest.iter().position(|&b| b == b',')?;
        let body = rest.get(digits..rest.len().checked_sub(TAIL)?)?;
        let is_seq = digits > 0 && rest[..digits].iter().all(u8::is_ascii_digit);
        if !is_seq || !body.ends_with(br#","prev":""#) {
            return None;
        }
        let mut out = Vec::with_capacity(line.len() + 24);
        out.extend_from_slice(br#"{"seq":"#);
        out.extend_from_slice(self.next_seq.to_string().as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(self.last_hash.as_bytes());
        out.extend_from_slice(br#"","hash":""}"#);
        let hash = chain_hash(&self.last_hash, &[&out]);
        let end = out.len() - 2;
        out.splice(end..end, hash.bytes());
        out.push(b'\n');
        self.next_seq += 1;
        self.last_hash = hash;
        Some(self.out.write_all(&out))
    }

    fn place<T: Link>(&mut self, rec: &mut T) -> Vec<u8> {
        rec.set_position(self.next_seq, &self.last_hash);
        let line = seal(rec);
        self.next_seq += 1;
        rec.hash().clone_into(&mut self.last_hash);
        line
    }

    /// The writer, and what `verify` will say of what was written.
    pub(crate) fn finish(self) -> (W, VerifySummary) {
        let summary = VerifySummary {
            records: self.next_seq - 1,
            last_hash: self.last_hash,
        };
        (self.out, summary)
    }
}
