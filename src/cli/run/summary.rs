//! The progress bar and the summary printed at the end of a run.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use plugwarden::batch::Summary;
use plugwarden::verdict::WORDS;
use serde_json::json;

use super::print_line;

pub(super) fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template("{spinner} {pos} done [{elapsed}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    pb.set_style(style);
    pb.enable_steady_tick(Duration::from_millis(200));
    Some(pb)
}

/// Once the walk is over the total is known: a real bar with an ETA.
pub(super) fn show_total(pb: &ProgressBar, total: u64) {
    pb.set_length(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed}, eta {eta}] {msg}")
    {
        pb.set_style(style);
    }
}

/// The verdicts so far, for the progress bar.
pub(super) fn counts_text(counts: &BTreeMap<&'static str, u64>) -> String {
    let parts: Vec<String> = WORDS
        .iter()
        .filter_map(|w| counts.get(w).map(|n| format!("{w} {n}")))
        .collect();
    parts.join(" · ")
}

pub(super) fn print_summary(s: &Summary, json: bool, interrupted: bool) {
    let secs = s.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        s.inputs as f64 / secs
    } else {
        0.0
    };
    let [p50, p95, p99] = s.latency_ms;
    let workers = s.workers;
    let skipped = s.skipped;
    if json {
        let summary = json!({
            "inputs": s.inputs,
            "skipped": skipped,
            "verdicts": s.verdicts,
            "poison": s.poison,
            "poison_count": s.poison_count,
            "recycles": s.recycles,
            "workers": workers,
            "workers_started": s.workers_started,
            "latency_ms": { "p50": p50, "p95": p95, "p99": p99 },
            "elapsed_s": secs,
            "jobs_per_s": rate,
            "interrupted": interrupted,
            "error": s.error,
            "audit_last_hash": s.audit_last_hash,
            "host_max_rss_kib": host_max_rss_kib(),
        });
        print_line(&summary.to_string());
        return;
    }
    let parts: Vec<String> = WORDS
        .iter()
        .filter_map(|w| s.verdicts.get(w).map(|n| format!("{n} {w}")))
        .collect();
    eprintln!(
        "{} inputs in {secs:.2}s ({rate:.1} jobs/s, {workers} workers){}: {}",
        s.inputs,
        if skipped > 0 {
            format!(", {skipped} skipped (already recorded)")
        } else {
            String::new()
        },
        if parts.is_empty() {
            "nothing to do".into()
        } else {
            parts.join(", ")
        }
    );
    eprintln!(
        "latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        p50, p95, p99
    );
    let recycled: Vec<String> = s
        .recycles
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    if !recycled.is_empty() {
        eprintln!("recycled workers: {}", recycled.join(", "));
    }
    if s.poison_count > 0 {
        eprintln!("poison (failed twice, quarantined): {}", s.poison_count);
        for p in &s.poison {
            eprintln!("  {p}");
        }
    }
    if let Some(hash) = &s.audit_last_hash {
        eprintln!("audit log ends with hash {hash}");
    }
    if interrupted {
        eprintln!("interrupted: run again with --resume to finish");
    }
}

/// Peak RSS of this host process (not its plugins): `VmHWM`, the peak of
/// this program's own memory. `ru_maxrss` would also count the parent's
/// memory at the fork before our exec (the kernel carries it across exec).
pub(super) fn host_max_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
    hwm.unwrap_or_else(|| {
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
            .map_or(0, |u| u.max_rss() as u64)
    })
}
