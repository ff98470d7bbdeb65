//! A plugin's stderr: relayed live within its budget, logged escaped.

use super::{StderrBudget, StderrRelay, STDERR_LIMIT};
use crate::verdict::stderr_detail;

/// Writes what the relay's budget allows of `chunk` to the relay. The
/// budget counts bytes written (escaped, a control byte takes four), so
/// the limit bounds what reaches the terminal whatever the plugin writes.
pub(super) fn relay(relay: &mut Option<StderrRelay>, b: &mut StderrBudget, chunk: &[u8]) {
    let Some(r) = relay else { return };
    if b.relay_dropped > 0 {
        // Cut once: nothing after the first byte dropped is shown.
        b.relay_dropped += chunk.len() as u64;
        return;
    }
    let mut data = std::mem::take(&mut b.carry);
    data.extend_from_slice(chunk);
    if !r.raw {
        let whole = data.len() - incomplete_tail(&data);
        b.carry = data.split_off(whole);
    }
    let mut rest = &data[..];
    while !rest.is_empty() {
        let piece = &rest[..char_boundary(rest, 4096)];
        let text = if r.raw {
            piece.to_vec()
        } else {
            crate::escape::escape_lines(piece).into_bytes()
        };
        if b.relayed + text.len() as u64 > r.limit {
            break;
        }
        // A closed stderr is the caller's business, not the job's.
        let _ = r.out.write_all(&text);
        b.relayed += text.len() as u64;
        b.line_open = text.last().is_some_and(|&c| c != b'\n');
        rest = &rest[piece.len()..];
    }
    if !rest.is_empty() {
        b.relay_dropped += (rest.len() + b.carry.len()) as u64;
        b.carry.clear();
    }
    let _ = r.out.flush();
}

/// The largest end `<= max` of a prefix of `data` that does not split a
/// UTF-8 character (`data.len()` when shorter).
pub(super) fn char_boundary(data: &[u8], max: usize) -> usize {
    if data.len() <= max {
        return data.len();
    }
    let mut end = max;
    while end > max.saturating_sub(3) && data[end] & 0xc0 == 0x80 {
        end -= 1;
    }
    end
}

/// Length of a UTF-8 character cut short at the end of `data` (0 to 3).
pub(super) fn incomplete_tail(data: &[u8]) -> usize {
    for back in 1..=data.len().min(3) {
        let b = data[data.len() - back];
        if b & 0xc0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let need = match b {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return 0,
        };
        return if need > back { back } else { 0 };
    }
    0
}

/// Logs `chunk` line by line at debug level, escaped, within the job's
/// log budget.
pub(super) fn log_stderr(b: &mut StderrBudget, pid: i32, chunk: &[u8]) {
    if !tracing::enabled!(target: "plugwarden::plugin", tracing::Level::DEBUG) {
        return;
    }
    let take = chunk
        .len()
        .min(STDERR_LIMIT.saturating_sub(b.logged) as usize);
    b.logged += take as u64;
    b.log_dropped += (chunk.len() - take) as u64;
    for line in chunk[..take]
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
    {
        // A line without end costs the log 4 KiB, not its length.
        let shown = &line[..char_boundary(line, 4096)];
        let more = if shown.len() < line.len() { " …" } else { "" };
        let line = crate::escape::escape(shown);
        tracing::debug!(target: "plugwarden::plugin", pid, "{line}{more}");
    }
}

/// `: stderr "…"` (see [`stderr_detail`]), or nothing.
pub(super) fn suffix(tail: &[u8]) -> String {
    stderr_detail(tail).map_or_else(String::new, |d| format!(": {d}"))
}
