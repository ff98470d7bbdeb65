//! plugwarden-bench: what the sandbox costs, as ratios against the floor
//! (bare fork+exec, raw pipes) and the peers (Python's process pool,
//! bubblewrap and firejail when installed), measured side by side in one
//! run: every section alternates plugwarden and its baseline round by
//! round, so machine noise lands on both. Each ratio is the median of the
//! per-round ratios, with p10 and p90.
//!
//!     cargo build --release --workspace
//!     cargo run --release -p pw-bench --bin plugwarden-bench [-- --quick] [-- --only spawn,rt,...]
//!
//! docs/PERFORMANCE.md explains every row.

mod files;
mod floor;
mod host;
mod office;
mod sanitize;
mod scaling;
mod shards;
mod stats;

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Result};
use sanitize::InProcess;
use stats::{ratios, summarize, Summary};

/// How much to measure.
struct Config {
    quick: bool,
    rounds: usize,
    spawn_n: usize,
    rt_iters: usize,
    bulk_mib: usize,
    bulk_rounds: usize,
    batch_jobs: usize,
    batch1_jobs: usize,
    batch_rounds: usize,
    py1_tasks: usize,
    mem_jobs: (usize, usize),
    /// Largest input streamed through echo (MiB).
    stream_max_mib: u64,
    sanitize_copies: usize,
    sanitize_rounds: usize,
    office_copies: usize,
    office_rounds: usize,
    shard_inputs: usize,
    shard_rounds: usize,
    merge_records: usize,
    /// 4 KiB files per `run --out` round, rounds, and files for `--durability each`.
    files: usize,
    files_rounds: usize,
    files_each: usize,
    /// Files per size in the cost-per-job rows: 1 KiB, 64 KiB, 1 MiB, 16 MiB.
    files_by_size: [usize; 4],
    /// Jobs per size in the library pool's scaling rows (same sizes).
    pool_by_size: [usize; 4],
    only: Option<Vec<String>>,
}

impl Config {
    fn from_args() -> Result<Config> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut c = if quick {
            Config {
                quick,
                rounds: 5,
                spawn_n: 40,
                rt_iters: 2000,
                bulk_mib: 64,
                bulk_rounds: 3,
                batch_jobs: 4000,
                batch1_jobs: 600,
                batch_rounds: 3,
                py1_tasks: 300,
                mem_jobs: (1_000, 10_000),
                stream_max_mib: 256,
                sanitize_copies: 2,
                sanitize_rounds: 2,
                office_copies: 2,
                office_rounds: 1,
                shard_inputs: 4_000,
                shard_rounds: 2,
                merge_records: 100_000,
                files: 4_000,
                files_rounds: 2,
                files_each: 200,
                files_by_size: [1_000, 200, 40, 4],
                pool_by_size: [2_000, 1_000, 100, 8],
                only: None,
            }
        } else {
            Config {
                quick,
                rounds: 11,
                spawn_n: 200,
                rt_iters: 10_000,
                bulk_mib: 64,
                bulk_rounds: 7,
                batch_jobs: 20_000,
                batch1_jobs: 2_000,
                batch_rounds: 3,
                py1_tasks: 1_000,
                mem_jobs: (1_000, 100_000),
                stream_max_mib: 4096,
                sanitize_copies: 5,
                sanitize_rounds: 5,
                office_copies: 4,
                office_rounds: 3,
                shard_inputs: 20_000,
                shard_rounds: 5,
                merge_records: 1_000_000,
                files: 20_000,
                files_rounds: 3,
                files_each: 500,
                files_by_size: [4_000, 1_000, 100, 8],
                pool_by_size: [20_000, 4_000, 400, 32],
                only: None,
            }
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => {}
                "--rounds" => {
                    c.rounds = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(c.rounds)
                        .max(1)
                }
                "--only" => {
                    c.only = it
                        .next()
                        .map(|v| v.split(',').map(str::to_string).collect())
                }
                "-h" | "--help" => {
                    println!(
                        "usage: plugwarden-bench [--quick] [--rounds N] [--only spawn,rt,bulk,batch,scaling,files,memory,streaming,sanitize,office,shards]"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} (try --help)"),
            }
        }
        Ok(c)
    }

    fn wants(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == section))
    }
}

#[derive(Clone, Copy)]
enum Target {
    AtMost(f64),
    AtLeast(f64),
}

/// One line of the table.
struct Row {
    name: String,
    unit: &'static str,
    pw: Summary,
    base_name: String,
    base: Option<Summary>,
    ratio: Option<Summary>,
    target: Option<Target>,
}

impl Row {
    fn info(name: &str, unit: &'static str, pw: &[f64]) -> Row {
        Row {
            name: name.into(),
            unit,
            pw: summarize(pw),
            base_name: String::new(),
            base: None,
            ratio: None,
            target: None,
        }
    }

    /// Ratio = plugwarden / baseline, round by round.
    fn versus(name: &str, unit: &'static str, pw: &[f64], base_name: &str, base: &[f64]) -> Row {
        let r = ratios(pw, base);
        Row {
            name: name.into(),
            unit,
            pw: summarize(pw),
            base_name: base_name.into(),
            base: Some(summarize(base)),
            ratio: Some(summarize(&r)),
            target: None,
        }
    }

    fn target(mut self, t: Target) -> Row {
        self.target = Some(t);
        self
    }
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn fmt_summary(s: &Summary, unit: &str) -> String {
    if s.n <= 1 {
        format!("{} {unit}", fmt_num(s.median))
    } else {
        format!(
            "{} {unit} [{}–{}]",
            fmt_num(s.median),
            fmt_num(s.p10),
            fmt_num(s.p90)
        )
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| measure | plugwarden median [p10–p90] | baseline median [p10–p90] | ratio median [p10–p90] | target | result |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let base = match &r.base {
            Some(b) => format!("{}: {}", r.base_name, fmt_summary(b, r.unit)),
            None if r.base_name.is_empty() => "—".into(),
            None => r.base_name.clone(),
        };
        let ratio = r.ratio.as_ref().map_or("—".into(), |s| fmt_summary(s, "×"));
        let (target, result) = match (r.target, &r.ratio) {
            (Some(Target::AtMost(t)), Some(s)) => (format!("≤ {t}×"), pass(s.median <= t)),
            (Some(Target::AtLeast(t)), Some(s)) => (format!("≥ {t}×"), pass(s.median >= t)),
            _ => ("—".into(), "info"),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.name,
            fmt_summary(&r.pw, r.unit),
            base,
            ratio,
            target,
            result
        );
    }
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

fn progress(msg: &str) {
    eprintln!(
        "[{:>6.1} s] {msg}",
        START.with(|s| s.elapsed().as_secs_f64())
    );
}

thread_local! {
    static START: Instant = Instant::now();
}

/// spawn_bench variants measured each round; the breakdown is derived from them.
const SPAWN_VARIANTS: &[&str] = &[
    "fork_exec",
    "vfork_exec",
    "fork_hardened_exec",
    "fork_full_exec",
    "fork_full_nofilter_exec",
    "fork_full_nolandlock_exec",
    "fork_full_llchild_exec",
    "vfork_full_exec",
];

/// Spawn, peers and the setup breakdown. Returns the rows and the median floor (fork+exec, µs).
fn spawn_section(
    c: &Config,
    h: &host::Host,
    fl: &floor::Floors,
    rows: &mut Vec<Row>,
) -> Result<f64> {
    let (mut pw, mut pw_no_ns) = (Vec::new(), Vec::new());
    let (mut pw_spawn, mut pw_wait, mut pw_ipc, mut cmd) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut c_vals: HashMap<&str, Vec<f64>> = HashMap::new();
    let peers: Vec<(String, std::result::Result<Vec<String>, String>)> = [
        (
            "bwrap --unshare-all --die-with-parent",
            "bwrap",
            vec![
                "--ro-bind",
                "/",
                "/",
                "--unshare-all",
                "--die-with-parent",
                "/bin/true",
            ],
        ),
        (
            "firejail --noprofile",
            "firejail",
            vec!["--quiet", "--noprofile", "/bin/true"],
        ),
    ]
    .into_iter()
    .map(|(label, bin, args)| {
        let argv = floor::peer(bin).map(|p| {
            std::iter::once(p.to_string_lossy().into_owned())
                .chain(args.iter().map(|s| s.to_string()))
                .collect()
        });
        (label.to_string(), argv)
    })
    .collect();
    let mut peer_vals: Vec<Vec<f64>> = vec![Vec::new(); peers.len()];
    let (mut filter_install, mut lockdown_install) = (Vec::new(), Vec::new());
    host::spawn_round(&h.true_filter, 5)?; // warm-up
    host::spawn_round(&h.true_filter_no_ns, 5)?;
    host::spawn_round(&h.true_filter_cold, 5)?;
    let (mut pw_cold, mut batch1) = (Vec::new(), Vec::new());
    let inputs = tempfile::tempdir()?;
    for i in 0..c.spawn_n {
        std::fs::write(inputs.path().join(format!("{i:05}")), [b'x'; 64])?;
    }
    for round in 0..c.rounds {
        progress(&format!("spawn round {}/{}", round + 1, c.rounds));
        let r = host::spawn_round(&h.true_filter, c.spawn_n)?;
        pw.push(r.total);
        pw_spawn.push(r.spawn);
        pw_wait.push(r.wait);
        pw_no_ns.push(host::spawn_round(&h.true_filter_no_ns, c.spawn_n)?.total);
        pw_cold.push(host::spawn_round(&h.true_filter_cold, c.spawn_n)?.total);
        batch1.push(host::filter_batch_us(
            &h.plugwarden,
            inputs.path(),
            c.spawn_n,
        )?);
        pw_ipc.push(host::fork_server_request_us(&h.fs, c.spawn_n));
        for (k, v) in fl.spawn_round(c.spawn_n, SPAWN_VARIANTS)? {
            if let Some(name) = SPAWN_VARIANTS.iter().find(|n| **n == k) {
                c_vals.entry(name).or_default().push(v);
            }
        }
        let t = Instant::now();
        for _ in 0..c.spawn_n {
            std::process::Command::new("/bin/true").status()?;
        }
        cmd.push(t.elapsed().as_secs_f64() * 1e6 / c.spawn_n as f64);
        filter_install.push(host::seccomp_install_us(&h.filters, true, c.spawn_n)?);
        lockdown_install.push(host::seccomp_install_us(
            std::slice::from_ref(&h.lockdown),
            false,
            c.spawn_n,
        )?);
        for (i, (_, argv)) in peers.iter().enumerate() {
            if let Ok(argv) = argv {
                peer_vals[i].push(floor::peer_round(argv, (c.spawn_n / 10).max(3))?);
            }
        }
    }
    let cv = |n: &str| c_vals.get(n).cloned().unwrap_or_default();
    let floor = cv("fork_exec");
    rows.push(
        Row::versus(
            "spawn /bin/true under strict (spawn + wait)",
            "µs",
            &pw,
            "fork+exec+wait (C)",
            &floor,
        )
        .target(Target::AtMost(1.5)),
    );
    rows.push(
        Row::versus(
            "run --mode filter --batch 1 --workers 1: /bin/cat under strict, per input (CLI start and end included)",
            "µs",
            &batch1,
            "fork+exec+wait (C)",
            &floor,
        )
        .target(Target::AtMost(1.5)),
    );
    rows.push(Row::versus(
        "spawn /bin/true under strict without the zygote (PLUGWARDEN_NO_ZYGOTE=1)",
        "µs",
        &pw_cold,
        "fork+exec+wait (C)",
        &floor,
    ));
    rows.push(Row::versus(
        "spawn: the zygote vs a fresh init per spawn",
        "µs",
        &pw,
        "strict without the zygote",
        &pw_cold,
    ));
    rows.push(Row::versus(
        "spawn /bin/true under strict with every namespace off (net, ipc, uts, pid, mount)",
        "µs",
        &pw_no_ns,
        "fork+exec+wait (C)",
        &floor,
    ));
    rows.push(Row::versus(
        "spawn: all namespaces on (strict) vs all off",
        "µs",
        &pw,
        "strict with every namespace off",
        &pw_no_ns,
    ));
    rows.push(Row::versus(
        "spawn vs vfork+exec",
        "µs",
        &pw,
        "vfork+exec+wait (C)",
        &cv("vfork_exec"),
    ));
    rows.push(Row::versus(
        "spawn vs every hardening step in C",
        "µs",
        &pw,
        "fork + all steps + exec (C)",
        &cv("fork_full_exec"),
    ));
    rows.push(Row::versus(
        "spawn vs std::process::Command",
        "µs",
        &pw,
        "Command /bin/true from this process",
        &cmd,
    ));
    for ((label, argv), vals) in peers.iter().zip(&peer_vals) {
        match argv {
            Ok(_) => rows.push(Row::versus(
                &format!("spawn vs {label}"),
                "µs",
                &pw,
                label,
                vals,
            )),
            Err(note) => {
                let mut row = Row::info(&format!("spawn vs {label}"), "µs", &pw);
                row.base_name = note.clone();
                rows.push(row);
            }
        }
    }
    // Per-step costs, from differences of variants measured in the same rounds.
    let diff = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>();
    let full = cv("fork_full_exec");
    let seccomp = diff(&full, &cv("fork_full_nofilter_exec"));
    let landlock = diff(&full, &cv("fork_full_nolandlock_exec"));
    let rest: Vec<f64> = full
        .iter()
        .zip(&floor)
        .zip(seccomp.iter().zip(&landlock))
        .map(|((f, b), (s, l))| f - b - s - l)
        .collect();
    rows.push(Row::info(
        "step (C): fork + exec + wait of /bin/true",
        "µs",
        &floor,
    ));
    rows.push(Row::info(
        "step (C): session, pdeathsig, close_range, 6 rlimits, drop to 65534, nnp",
        "µs",
        &rest,
    ));
    rows.push(Row::info(
        "step (C): landlock_restrict_self (ruleset prepared once)",
        "µs",
        &landlock,
    ));
    rows.push(Row::info(
        "step (C): seccomp allowlist install (203 insns, linear)",
        "µs",
        &seccomp,
    ));
    rows.push(Row::info(
        "step (C): building the Landlock ruleset in the child instead",
        "µs",
        &diff(&cv("fork_full_llchild_exec"), &full),
    ));
    rows.push(Row::info(
        "step (C): clone(VM|VFORK) instead of fork, all steps",
        "µs",
        &diff(&cv("vfork_full_exec"), &full),
    ));
    rows.push(Row::info(
        "step (plugwarden): installing strict's program + listener (fork+nnp+install+exit minus fork+nnp+exit)",
        "µs",
        &filter_install,
    ));
    rows.push(Row::info(
        &format!(
            "step (plugin): the SDK's lockdown program ({} insns), installed by every Rust plugin at start",
            h.lockdown.len()
        ),
        "µs",
        &lockdown_install,
    ));
    rows.push(Row::info(
        "plugwarden: Sandbox::spawn (pipes, request, fork, road, exec)",
        "µs",
        &pw_spawn,
    ));
    rows.push(Row::info(
        "plugwarden: Process::wait (run, exit, reap via fork server)",
        "µs",
        &pw_wait,
    ));
    rows.push(Row::info(
        "plugwarden: one fork-server request round trip",
        "µs",
        &pw_ipc,
    ));
    rows.push(Row::info(
        "plugwarden: strict seccomp program, instructions",
        "insns",
        &[h.filter_insns as f64],
    ));
    Ok(summarize(&floor).median)
}

fn round_trip_section(
    c: &Config,
    h: &host::Host,
    fl: &floor::Floors,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let mut w = host::warm_worker(&h.echo, 200)?;
    let (mut pw, mut pipe) = (Vec::new(), Vec::new());
    for round in 0..c.rounds {
        progress(&format!("round trip round {}/{}", round + 1, c.rounds));
        pw.push(host::round_trip_us(&mut w, 1024, c.rt_iters)?);
        pipe.push(fl.pipe_round_trip_us(1024, c.rt_iters)?);
    }
    // Where the host's time goes: its own CPU per job, and the /proc reads
    // the worker makes per job through kept-open fds (cpu_ms: once per job,
    // at the outcome, and at most every 100 ms of a long job; rss_kib: once
    // at the outcome, once more in the pool for `recycle_rss`).
    let cpu0 = host::thread_cpu_us();
    host::round_trip_us(&mut w, 1024, c.rt_iters)?;
    let host_cpu = (host::thread_cpu_us() - cpu0) / c.rt_iters as f64;
    let stat = host::time_us(c.rt_iters, || {
        std::hint::black_box(w.process().cpu_ms());
    });
    let status = host::time_us(c.rt_iters, || {
        std::hint::black_box(w.process().rss_kib());
    });
    w.shutdown();
    rows.push(
        Row::versus(
            "round trip, 1 KiB job, warm pw-echo",
            "µs",
            &pw,
            "pipe ping-pong 1 KiB (C)",
            &pipe,
        )
        .target(Target::AtMost(2.0)),
    );
    rows.push(Row::info(
        "round trip: host CPU per 1 KiB job (host thread)",
        "µs",
        &[host_cpu],
    ));
    rows.push(Row::info(
        "round trip: Process::cpu_ms (pread of /proc/<pid>/stat), 1 per job",
        "µs",
        &[stat],
    ));
    rows.push(Row::info(
        "round trip: Process::rss_kib (pread of /proc/<pid>/statm), 1 per job (2 in the pool)",
        "µs",
        &[status],
    ));
    Ok(())
}

fn bulk_section(c: &Config, h: &host::Host, fl: &floor::Floors, rows: &mut Vec<Row>) -> Result<()> {
    let input = vec![0xa5u8; c.bulk_mib << 20];
    let mut w = host::warm_worker(&h.echo, 10)?;
    host::bulk_gbs(&mut w, &input)?; // warm-up: the worker's buffers grow once
    let (mut pw, mut pipe) = (Vec::new(), Vec::new());
    for round in 0..c.bulk_rounds {
        progress(&format!("bulk round {}/{}", round + 1, c.bulk_rounds));
        pw.push(host::bulk_gbs(&mut w, &input)?);
        pipe.push(fl.pipe_throughput_gbs(2 * c.bulk_mib, 1 << 20)?);
    }
    w.shutdown();
    rows.push(
        Row::versus(
            &format!(
                "bulk, {} MiB in + {} MiB out, warm pw-echo",
                c.bulk_mib, c.bulk_mib
            ),
            "GB/s",
            &pw,
            &format!("pipe, {} MiB one way, 1 MiB writes (C)", 2 * c.bulk_mib),
            &pipe,
        )
        .target(Target::AtLeast(1.0)),
    );
    Ok(())
}

fn batch_section(
    c: &Config,
    h: &host::Host,
    fl: &floor::Floors,
    floor_us: f64,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let (mut b100, mut b1, mut py100, mut py1) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut lat100, mut lat1, mut latp) = (Vec::new(), Vec::new(), Vec::new());
    let (mut piped, mut fresh) = (Vec::new(), Vec::new());
    let python = fl.has_python();
    for round in 0..c.batch_rounds {
        progress(&format!("batch round {}/{}", round + 1, c.batch_rounds));
        let r = host::pool_batch(&h.echo, c.batch_jobs, 100, 2)?;
        b100.push(r.jobs_per_s);
        lat100.extend(r.latencies_us);
        let r = host::pool_batch(&h.echo, c.batch1_jobs, 1, 2)?;
        b1.push(r.jobs_per_s);
        fresh.push(host::fresh_worker_us(&h.echo, 50)?);
        lat1.extend(r.latencies_us);
        let r = host::batch(&h.echo, c.batch_jobs, 100, 2, true)?;
        piped.push(r.jobs_per_s);
        latp.extend(r.latencies_us);
        if python {
            py100.push(fl.python_pool(100, c.batch_jobs)?);
            py1.push(fl.python_pool(1, c.py1_tasks)?);
        }
    }
    if python {
        rows.push(
            Row::versus(
                &format!(
                    "batch 100: {} 4 KiB jobs, plugwarden::pool, 2 workers",
                    c.batch_jobs
                ),
                "jobs/s",
                &b100,
                "Python Pool(2, maxtasksperchild=100)",
                &py100,
            )
            .target(Target::AtLeast(10.0)),
        );
        rows.push(Row::versus(
            "batch 100 pipelined: Worker::run_batch, 100 jobs in flight, 2 threads",
            "jobs/s",
            &piped,
            "Python Pool(2, maxtasksperchild=100)",
            &py100,
        ));
    } else {
        let mut row = Row::info("batch 100, 2 workers", "jobs/s", &b100);
        row.base_name = "skipped: python3 not installed".into();
        rows.push(row);
    }
    // The bound, workers / spawn time: what 2 slots could do if
    // every fresh worker's start were hidden perfectly, with the spawn
    // time measured in the same round (start, hello, one job).
    let spawn_limit: Vec<f64> = fresh.iter().map(|us| 2.0 * 1e6 / us).collect();
    rows.push(
        Row::versus(
            &format!(
                "batch 1: {} 4 KiB jobs, plugwarden::pool, 2 workers",
                c.batch1_jobs
            ),
            "jobs/s",
            &b1,
            "2 workers / fresh pw-echo start-to-first-answer time",
            &spawn_limit,
        )
        .target(Target::AtLeast(0.75)),
    );
    rows.push(Row::info(
        "batch 1: a fresh pw-echo worker, start to first answer (spawn time)",
        "µs",
        &fresh,
    ));
    let limit = 2.0 * 1e6 / floor_us;
    rows.push(Row::versus(
        "batch 1 vs the physical limit",
        "jobs/s",
        &b1,
        "2 cores / fork+exec floor",
        &vec![limit; b1.len()],
    ));
    if python {
        rows.push(Row::versus(
            "batch 1 vs Python",
            "jobs/s",
            &b1,
            &format!("Python Pool(2, maxtasksperchild=1), {} tasks", c.py1_tasks),
            &py1,
        ));
    }
    for (name, lat) in [
        ("batch 100", &lat100),
        ("batch 1", &lat1),
        ("batch 100 pipelined", &latp),
    ] {
        let s = stats::sorted(lat);
        let q = |p| stats::quantile(&s, p);
        let mut row = Row::info(
            &format!("{name}: job latency p50 / p95 / p99"),
            "µs",
            &[q(0.5)],
        );
        row.name = format!(
            "{name}: job latency p50 / p95 / p99 = {} / {} / {} µs",
            fmt_num(q(0.5)),
            fmt_num(q(0.95)),
            fmt_num(q(0.99))
        );
        rows.push(row);
    }
    Ok(())
}

/// `plugwarden run --out` over 4 KiB files with `--audit` (durability
/// group, none, each) against Python's pool writing the same files; 1 and
/// 2 workers; the cost of a job for inputs of 1 KiB to 16 MiB.
fn files_section(
    c: &Config,
    bins: &host::Binaries,
    fl: &floor::Floors,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let (pw, echo) = (&bins.plugwarden, &bins.echo);
    let two = ["--workers", "2", "--batch", "100"];
    let none = ["--workers", "2", "--batch", "100", "--durability", "none"];
    let one = ["--workers", "1", "--batch", "100"];
    let mut corpus = files::Corpus::new(c.files, 4096)?;
    let (mut group_rate, mut none_rate, mut one_rate, mut py_rate, mut no_out) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..c.files_rounds {
        progress(&format!("files round {}/{}", round + 1, c.files_rounds));
        // Rotated, so that no side always runs right after the same one.
        for turn in 0..5 {
            match (turn + round) % 5 {
                0 => group_rate.push(corpus.plugwarden(pw, echo, "strict", true, &two)?),
                1 => none_rate.push(corpus.plugwarden(pw, echo, "strict", true, &none)?),
                2 => one_rate.push(corpus.plugwarden(pw, echo, "strict", true, &one)?),
                3 => no_out.push(corpus.plugwarden(pw, echo, "strict", false, &two)?),
                _ => {
                    if let Some((python, script)) = fl.python_script() {
                        py_rate.push(corpus.python(python, script)?);
                    }
                }
            }
        }
    }
    let what = format!(
        "`run --out` {} 4 KiB files through pw-echo, --audit, 2 workers, batch 100",
        c.files
    );
    let py_name =
        "Python Pool(2, maxtasksperchild=100) reading and writing the same files (no fsync)";
    if fl.python_script().is_some() {
        rows.push(
            Row::versus(
                &format!("{what}, --durability group"),
                "files/s",
                &group_rate,
                py_name,
                &py_rate,
            )
            .target(Target::AtLeast(3.0)),
        );
        rows.push(
            Row::versus(
                &format!("{what}, --durability none"),
                "files/s",
                &none_rate,
                py_name,
                &py_rate,
            )
            .target(Target::AtLeast(5.0)),
        );
    } else {
        let mut row = Row::info(&what, "files/s", &group_rate);
        row.base_name = "skipped: python3 not installed".into();
        rows.push(row);
    }
    if fl.python_script().is_some() {
        rows.push(Row::versus(
            "the ceiling: the same `run --audit` without `--out`, vs Python writing the files",
            "files/s",
            &no_out,
            py_name,
            &py_rate,
        ));
    }
    rows.push(Row::versus(
        "`run --out --durability group` vs the same `run` without `--out` (what writing the outputs costs)",
        "files/s",
        &group_rate,
        "`run --audit`, no --out",
        &no_out,
    ));
    rows.push(Row::versus(
        "`run --out`: 2 workers vs 1 worker (same files, --durability group)",
        "files/s",
        &group_rate,
        "1 worker",
        &one_rate,
    ));
    progress("files: --durability each");
    let mut each = files::Corpus::new(c.files_each, 4096)?;
    let each_rate = each.plugwarden(
        pw,
        echo,
        "strict",
        true,
        &["--workers", "2", "--durability", "each"],
    )?;
    rows.push(Row::info(
        &format!(
            "`run --out --durability each`: {} 4 KiB files, 2 workers (three syncs per job)",
            c.files_each
        ),
        "files/s",
        &[each_rate],
    ));
    let policy_dir = tempfile::tempdir()?;
    let policy = files::big_policy(policy_dir.path())?;
    let mut kept = Vec::new();
    // The cost of one more job: a run over `count` inputs minus a run over
    // one (the start-up: fork server, first worker, the plugin's hash).
    for (size, count) in [1 << 10, 64 << 10, 1 << 20, 16 << 20]
        .into_iter()
        .zip(c.files_by_size)
    {
        let kib = size >> 10;
        progress(&format!("files: {count} inputs of {kib} KiB"));
        let mut many = files::Corpus::new(count, size)?;
        let mut one = files::Corpus::new(1, size)?;
        let mut us = Vec::new();
        for _ in 0..3 {
            let t_many = count as f64 / many.plugwarden(pw, echo, &policy, true, &two)?;
            let t_one = 1.0 / one.plugwarden(pw, echo, &policy, true, &two)?;
            us.push((t_many - t_one).max(0.0) * 1e6 / (count - 1) as f64);
        }
        // Deleted with the others at the end (see Corpus::fresh).
        kept.extend([many, one]);
        let mib_s = size as f64 / f64::from(1 << 20) / (stats::summarize(&us).median / 1e6);
        rows.push(Row::info(
            &format!(
                "`run --out`: cost of one more job, {kib} KiB inputs ({count} vs 1 per run, 2 workers, --audit; {mib_s:.0} MiB/s)"
            ),
            "µs",
            &us,
        ));
    }
    Ok(())
}

fn memory_section(c: &Config, h: &host::Host, rows: &mut Vec<Row>) -> Result<()> {
    let (small, big) = c.mem_jobs;
    // One pool, as one long `plugwarden run`; the checkpoints show the
    // trend, not just two points: flat means no growth per job.
    let mut checkpoints = vec![small, big / 10, big / 2, big];
    checkpoints.dedup();
    progress(&format!("memory: {big} jobs in one pool"));
    let (_, rss) = host::pool_batch_rss(&h.echo, big, 100, 2, 4096, &checkpoints)?;
    let trend: Vec<String> = checkpoints
        .iter()
        .zip(&rss)
        .map(|(n, r)| format!("{n}: {r:.0}"))
        .collect();
    rows.push(
        Row::versus(
            &format!(
                "host RSS after {big} echo jobs (KiB at {})",
                trend.join(", ")
            ),
            "KiB",
            &rss[rss.len().saturating_sub(1)..],
            &format!("after {small} jobs"),
            &rss[..1],
        )
        .target(Target::AtMost(1.1)),
    );
    Ok(())
}

/// Host peak RSS while one input of 1 MiB … 4 GiB streams through
/// `pw-echo` (`plugwarden run`, output hashed, not kept): flat means the
/// host never holds an input or an output whole.
fn streaming_section(c: &Config, bins: &host::Binaries, rows: &mut Vec<Row>) -> Result<()> {
    const BOUND_KIB: f64 = 100.0 * 1024.0;
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("big.toml");
    std::fs::write(
        &policy,
        "extends = \"strict\"\n[limits]\ninput = \"8GiB\"\noutput = \"8GiB\"\nwall = \"1h\"\ncpu = \"1h\"\n",
    )?;
    let mut mib = 1u64;
    while mib <= c.stream_max_mib {
        progress(&format!("streaming: {mib} MiB through pw-echo"));
        // Sparse: the page cache serves zeros, so the disk is not measured.
        let input = dir.path().join(format!("in-{mib}"));
        std::fs::File::create(&input)?.set_len(mib << 20)?;
        let t0 = Instant::now();
        let o = std::process::Command::new(&bins.plugwarden)
            .args(["run", "--plugin"])
            .arg(&bins.echo)
            .arg("--policy")
            .arg(&policy)
            .args(["--workers", "1", "--json"])
            .arg(&input)
            .output()?;
        let secs = t0.elapsed().as_secs_f64();
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout)?;
        if summary["verdicts"]["ok"] != 1 {
            bail!(
                "streaming {mib} MiB: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let rss = summary["host_max_rss_kib"].as_f64().unwrap_or(f64::NAN);
        let name = format!(
            "streaming: host peak RSS, one {mib} MiB input through pw-echo (`run`, {:.0} MiB/s)",
            mib as f64 / secs
        );
        rows.push(
            Row::versus(&name, "KiB", &[rss], "100 MiB", &[BOUND_KIB]).target(Target::AtMost(1.0)),
        );
        std::fs::remove_file(&input)?;
        mib *= 16;
    }
    Ok(())
}

/// Pages per second through `plugwarden sanitize` against hayro in this
/// process without a sandbox, both on 2 CPUs' worth of workers.
fn sanitize_section(c: &Config, bins: &host::Binaries, rows: &mut Vec<Row>) -> Result<()> {
    const WORKERS: usize = 2;
    let plugin = bins.plugwarden.with_file_name("pw-pdf-sanitize");
    let skip = |rows: &mut Vec<Row>, why: String| {
        let mut row = Row::info("sanitize, pages/s", "pages/s", &[]);
        row.base_name = format!("skipped: {why}");
        rows.push(row);
    };
    let Some(sample) = sanitize::sample_path() else {
        skip(rows, format!("{} not found", sanitize::SAMPLE));
        return Ok(());
    };
    if !plugin.is_file() {
        skip(
            rows,
            format!(
                "{} missing (cargo build --release --workspace)",
                plugin.display()
            ),
        );
        return Ok(());
    }
    let inputs = sanitize::Inputs::new(&sample, c.sanitize_copies)?;
    let pages = sanitize::pages_per_copy(&inputs)?;
    let total = pages as usize * inputs.copies;
    let (mut cli, mut render, mut full) = (Vec::new(), Vec::new(), Vec::new());
    let (mut small, mut fast_bytes, mut small_bytes) = (Vec::new(), Vec::new(), Vec::new());
    let mut streamed = Vec::new();
    let small_arg = ["--compress", "small"];
    sanitize::cli_pages_per_s(&bins.plugwarden, &inputs, pages, WORKERS, &[])?; // warm-up
    for round in 0..c.sanitize_rounds {
        progress(&format!(
            "sanitize round {}/{}",
            round + 1,
            c.sanitize_rounds
        ));
        let (rate, bytes) =
            sanitize::cli_pages_per_s(&bins.plugwarden, &inputs, pages, WORKERS, &[])?;
        cli.push(rate);
        fast_bytes.push(bytes as f64 / total as f64 / 1024.0);
        render.push(sanitize::in_process_pages_per_s(
            &inputs,
            WORKERS,
            InProcess::Render,
        )?);
        full.push(sanitize::in_process_pages_per_s(
            &inputs,
            WORKERS,
            InProcess::RenderThenWrite,
        )?);
        streamed.push(sanitize::in_process_pages_per_s(
            &inputs,
            WORKERS,
            InProcess::Streamed,
        )?);
        let (rate, bytes) =
            sanitize::cli_pages_per_s(&bins.plugwarden, &inputs, pages, WORKERS, &small_arg)?;
        small.push(rate);
        small_bytes.push(bytes as f64 / total as f64 / 1024.0);
    }
    let what = format!(
        "sanitize: {} × {pages}-page PDF = {total} pages at {} dpi",
        inputs.copies,
        pw_pdf_sanitize::DEFAULT_DPI
    );
    rows.push(
        Row::versus(
            &format!("{what}, `plugwarden sanitize --workers {WORKERS}` end to end"),
            "pages/s",
            &cli,
            &format!("hayro in-process, no sandbox, {WORKERS} threads (render only)"),
            &render,
        )
        .target(Target::AtLeast(0.9)),
    );
    rows.push(
        Row::versus(
            "sanitize pipeline vs 50 pages/s",
            "pages/s",
            &cli,
            "50 pages/s",
            &vec![50.0; cli.len()],
        )
        .target(Target::AtLeast(1.0)),
    );
    rows.push(
        Row::versus(
            "sanitize vs the same work in-process (render + validate + write PDF)",
            "pages/s",
            &cli,
            &format!("in-process, no sandbox, {WORKERS} threads"),
            &full,
        )
        .target(Target::AtLeast(0.9)),
    );
    rows.push(Row::versus(
        "sanitize vs in-process with each page written as it is rendered (one thread per copy)",
        "pages/s",
        &cli,
        &format!("in-process streamed, no sandbox, {WORKERS} threads"),
        &streamed,
    ));
    rows.push(Row::versus(
        "sanitize `--compress small` vs `--compress fast` (the default), end to end",
        "pages/s",
        &small,
        "--compress fast",
        &cli,
    ));
    rows.push(Row::versus(
        "sanitize: safe PDF bytes per page, `--compress small` vs `fast`",
        "KiB",
        &small_bytes,
        "--compress fast",
        &fast_bytes,
    ));
    for compress in [
        plugwarden::sanitize::Compress::Fast,
        plugwarden::sanitize::Compress::Small,
    ] {
        let (mb_s, bytes, rgb) = sanitize::writer_mb_s(&inputs, compress)?;
        rows.push(Row::info(
            &format!(
                "sanitize: the host's PDF writer alone, `--compress {}`, one thread ({:.0} KiB a page, {:.0}× smaller than the RGB)",
                compress.name(),
                bytes as f64 / f64::from(pages) / 1024.0,
                rgb as f64 / bytes as f64
            ),
            "MB/s",
            &[mb_s],
        ));
    }
    rows.push(Row::versus(
        "sanitize vs Dangerzone (order of magnitude: ~0.5 s per page)",
        "pages/s",
        &cli,
        "Dangerzone ~2 pages/s",
        &vec![2.0; cli.len()],
    ));
    // Pages stream from the plugin to the output file: the host's memory
    // must not grow with the document (one run each: RSS is not noisy).
    for pages in [10, 100, 1000] {
        progress(&format!("sanitize host RSS, {pages} pages"));
        let rss = sanitize::host_rss_mib(&bins.plugwarden, pages)?;
        rows.push(
            Row::versus(
                &format!("sanitize: host peak RSS on a {pages}-page PDF (150 dpi, `--workers 1`)"),
                "MiB",
                &[rss],
                "200 MiB",
                &[200.0],
            )
            .target(Target::AtMost(1.0)),
        );
    }
    Ok(())
}

/// A 10-page docx through `plugwarden sanitize` end to end, where its
/// time goes, with OCR, and what a warm LibreOffice would save.
fn office_section(c: &Config, bins: &host::Binaries, rows: &mut Vec<Row>) -> Result<()> {
    const WORKERS: usize = 2;
    let skip = |rows: &mut Vec<Row>, why: String| {
        let mut row = Row::info("office, pages/s", "pages/s", &[]);
        row.base_name = format!("skipped: {why}");
        rows.push(row);
    };
    let Some(sample) = office::sample_path() else {
        skip(rows, format!("{} not found", office::SAMPLE));
        return Ok(());
    };
    if let Some(why) = office::missing() {
        skip(rows, why);
        return Ok(());
    }
    let copies = c.office_copies;
    let input = office::inputs(&sample, copies)?;
    let ocr = !office::tesseract_missing();
    let (mut cli, mut cli_ocr, mut cold, mut warm) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut ready = Vec::new();
    let (mut convert, mut render, mut ocr_share, mut sandboxed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..c.office_rounds {
        progress(&format!("office round {}/{}", round + 1, c.office_rounds));
        cli.push(
            office::cli_run(&bins.plugwarden, input.path(), copies, WORKERS, false)?.pages_per_s,
        );
        // One worker: the stages' shares, and the sandbox's cost against
        // LibreOffice alone, without two documents competing for the CPUs.
        let run = office::cli_run(&bins.plugwarden, input.path(), copies, 1, false)?;
        let total = run.convert_ms + run.render_write_ms;
        convert.push(100.0 * run.convert_ms / total);
        render.push(100.0 * run.render_write_ms / total);
        sandboxed.push(run.convert_ms / 1000.0 / copies as f64);
        if ocr {
            let run = office::cli_run(&bins.plugwarden, input.path(), copies, WORKERS, true)?;
            cli_ocr.push(run.pages_per_s);
            // With two workers the stages overlap across documents: the
            // share is of the summed stage times.
            ocr_share
                .push(100.0 * run.ocr_ms / (run.convert_ms + run.render_write_ms + run.ocr_ms));
        }
        cold.push(office::libreoffice_s_per_doc(
            input.path(),
            copies,
            office::Start::Fresh,
        )?);
        ready.push(office::libreoffice_s_per_doc(
            input.path(),
            copies,
            office::Start::ReadyProfile,
        )?);
        warm.push(office::libreoffice_s_per_doc(
            input.path(),
            copies,
            office::Start::Warm,
        )?);
    }
    let what = format!("office: {copies} × {}-page docx", office::PAGES);
    rows.push(Row::versus(
        &format!("{what}, `plugwarden sanitize --workers {WORKERS}` end to end, vs Dangerzone (order of magnitude: ~0.5 s a page, its LibreOffice step not counted)"),
        "pages/s",
        &cli,
        "Dangerzone ~2 pages/s",
        &vec![2.0; cli.len()],
    ));
    rows.push(Row::info(
        &format!("{what}, `--workers 1`: share of LibreOffice in the office sandbox"),
        "%",
        &convert,
    ));
    rows.push(Row::info(
        &format!(
            "{what}, `--workers 1`: share of rendering (pdf sandbox) and writing the safe PDF"
        ),
        "%",
        &render,
    ));
    if ocr {
        rows.push(Row::versus(
            &format!("{what}, `--ocr eng` vs without"),
            "pages/s",
            &cli_ocr,
            "without --ocr",
            &cli,
        ));
        rows.push(Row::info(
            &format!("{what}, `--ocr eng`: share of Tesseract in the ocr sandbox"),
            "%",
            &ocr_share,
        ));
    } else {
        let mut row = Row::info(&format!("{what}, `--ocr eng`"), "pages/s", &[]);
        row.base_name = "skipped: tesseract-ocr-eng is not installed".into();
        rows.push(row);
    }
    rows.push(Row::versus(
        "LibreOffice a document, outside any sandbox: a fresh process and profile each (the sandbox's way) vs one warm process for all",
        "s",
        &cold,
        "warm, one process and profile",
        &warm,
    ));
    rows.push(Row::versus(
        "LibreOffice a document, outside any sandbox: a fresh process and profile each vs a fresh process on a copy of a profile made beforehand (no first-start restart)",
        "s",
        &cold,
        "fresh process, ready profile",
        &ready,
    ));
    rows.push(Row::versus(
        "LibreOffice a document: in the office sandbox (`--workers 1`) vs a fresh process and profile outside",
        "s",
        &sandboxed,
        "fresh process outside",
        &cold,
    ));
    Ok(())
}

/// N shards with one worker each against one run with N workers (N = the
/// CPUs, at least 2), alternating round by round; then the merge of shard
/// logs holding `merge_records` records.
fn shards_section(c: &Config, bins: &host::Binaries, rows: &mut Vec<Row>) -> Result<()> {
    let n = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    let (dir, root) = shards::inputs(c.shard_inputs)?;
    let (mut sharded, mut one) = (Vec::new(), Vec::new());
    for round in 0..c.shard_rounds {
        progress(&format!("shards round {}/{}", round + 1, c.shard_rounds));
        let (pw, echo) = (&bins.plugwarden, &bins.echo);
        sharded.push(shards::shards_jobs_per_s(
            pw,
            echo,
            &root,
            c.shard_inputs,
            n,
        )?);
        one.push(shards::one_run_jobs_per_s(
            pw,
            echo,
            &root,
            c.shard_inputs,
            n,
        )?);
    }
    rows.push(
        Row::versus(
            &format!(
                "{n} shards × 1 worker (`run --shard i/{n}` at once) vs one run, {n} workers: {} 4 KiB pw-echo jobs, audit on",
                c.shard_inputs
            ),
            "jobs/s",
            &sharded,
            &format!("one `run --workers {n}`"),
            &one,
        )
        .target(Target::AtLeast(0.9)),
    );
    progress(&format!(
        "merge: writing {n} shard logs of {} records in all",
        c.merge_records
    ));
    let logs = shards::synthetic_logs(dir.path(), c.merge_records, n as u32)?;
    progress("merge: plugwarden audit merge");
    let secs = shards::merge_secs(&bins.plugwarden, &logs, &dir.path().join("merged.jsonl"))?;
    rows.push(
        Row::versus(
            &format!(
                "`audit merge` of {n} shard logs, {} records in all (verify, check, write the merged chain)",
                c.merge_records
            ),
            "s",
            &[secs],
            "1 minute",
            &[60.0],
        )
        // Seconds, not minutes.
        .target(Target::AtMost(0.25)),
    );
    Ok(())
}

fn main() -> Result<()> {
    START.with(|_| ());
    let c = Config::from_args()?;
    let exe = std::env::current_exe()?;
    let bins = host::Binaries::beside(&exe)?;
    if cfg!(debug_assertions) {
        eprintln!("note: this is a debug build; numbers only mean something with --release");
    }
    progress("compiling the C floors");
    let fl = floor::Floors::build()?;
    let h = host::Host::start(&bins)?;
    let mut rows = Vec::new();
    let mut floor_us = f64::NAN;
    if c.wants("spawn") || c.wants("batch") {
        floor_us = spawn_section(&c, &h, &fl, &mut rows)?;
    }
    if c.wants("rt") {
        round_trip_section(&c, &h, &fl, &mut rows)?;
    }
    if c.wants("bulk") {
        bulk_section(&c, &h, &fl, &mut rows)?;
    }
    if c.wants("batch") {
        batch_section(&c, &h, &fl, floor_us, &mut rows)?;
    }
    if c.wants("scaling") {
        scaling::section(&c, &h, &mut rows)?;
    }
    if c.wants("files") {
        files_section(&c, &bins, &fl, &mut rows)?;
    }
    if c.wants("memory") {
        memory_section(&c, &h, &mut rows)?;
    }
    if c.wants("streaming") {
        streaming_section(&c, &bins, &mut rows)?;
    }
    if c.wants("sanitize") {
        sanitize_section(&c, &bins, &mut rows)?;
    }
    if c.wants("office") {
        office_section(&c, &bins, &mut rows)?;
    }
    if c.wants("shards") {
        shards_section(&c, &bins, &mut rows)?;
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# plugwarden-bench{}: {cpus} CPUs, {} rounds per ratio; ratio = plugwarden / baseline, \
         per round (times: lower is better; rates: higher is better)",
        if c.quick { " --quick" } else { "" },
        c.rounds
    );
    print_table(&rows);
    Ok(())
}
