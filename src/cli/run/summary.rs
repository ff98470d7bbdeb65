//! The progress bar and the summary printed at the end of a run.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use plugwarden::pool::PoolStats;
use plugwarden::verdict::WORDS;
use serde_json::json;

use super::{print_line, Recorder};

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

pub(super) fn print_summary(
    rec: &Recorder,
    stats: &PoolStats,
    skipped: u64,
    elapsed: Duration,
    workers: usize,
    interrupted: Option<u8>,
) {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        rec.done as f64 / secs
    } else {
        0.0
    };
    let lat = |p| rec.latencies.percentile_ms(p);
    let recycles: BTreeMap<&str, u64> = stats
        .recycles_by_reason()
        .map(|(r, n)| (r.word(), n))
        .collect();
    let last_hash = rec.audit.as_ref().map(|a| a.last_hash().to_string());
    if rec.json {
        let summary = json!({
            "inputs": rec.done,
            "skipped": skipped,
            "verdicts": rec.counts,
            "poison": rec.poison,
            "poison_count": rec.poison_count,
            "recycles": recycles,
            "workers": workers,
            "workers_started": stats.workers_started,
            "latency_ms": { "p50": lat(50.0), "p95": lat(95.0), "p99": lat(99.0) },
            "elapsed_s": secs,
            "jobs_per_s": rate,
            "interrupted": interrupted.is_some(),
            "error": rec.fatal,
            "audit_last_hash": last_hash,
            "host_max_rss_kib": host_max_rss_kib(),
        });
        print_line(&summary.to_string());
        return;
    }
    let parts: Vec<String> = WORDS
        .iter()
        .filter_map(|w| rec.counts.get(w).map(|n| format!("{n} {w}")))
        .collect();
    eprintln!(
        "{} inputs in {secs:.2}s ({rate:.1} jobs/s, {workers} workers){}: {}",
        rec.done,
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
        lat(50.0),
        lat(95.0),
        lat(99.0)
    );
    let recycled: Vec<String> = recycles
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    if !recycled.is_empty() {
        eprintln!("recycled workers: {}", recycled.join(", "));
    }
    if rec.poison_count > 0 {
        eprintln!("poison (failed twice, quarantined): {}", rec.poison_count);
        for p in &rec.poison {
            eprintln!("  {p}");
        }
    }
    if let Some(hash) = last_hash {
        eprintln!("audit log ends with hash {hash}");
    }
    if interrupted.is_some() {
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
