//! The plugwarden side of every row, through the library as a host uses
//! it: a fork server running the real plugwarden binary, the built-in
//! `strict` policy, `/bin/true` as a filter and `pw-echo` as a worker.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};
use plugwarden::worker::Worker;
use plugwarden::ForkServer;

/// The binaries a bench needs, from one target directory.
pub struct Binaries {
    pub plugwarden: PathBuf,
    pub echo: PathBuf,
}

impl Binaries {
    /// `plugwarden` and `pw-echo` next to `exe` (this binary), built with
    /// `cargo build` of the same profile when missing and cargo is at hand.
    pub fn beside(exe: &Path) -> Result<Binaries> {
        let dir = exe.parent().context("binary has no directory")?;
        let b = Binaries {
            plugwarden: dir.join("plugwarden"),
            echo: dir.join("pw-echo"),
        };
        if b.plugwarden.exists() && b.echo.exists() {
            return Ok(b);
        }
        let cargo = std::env::var_os("CARGO").context(
            "plugwarden or pw-echo is missing beside this binary: run `cargo build --release --workspace` first",
        )?;
        let release = dir.file_name().is_some_and(|n| n == "release");
        eprintln!(
            "note: building plugwarden and pw-echo (missing beside {})",
            exe.display()
        );
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-q", "-p", "plugwarden", "-p", "pw-echo"]);
        if release {
            cmd.arg("--release");
        }
        if !cmd.status()?.success() {
            bail!("cargo build of plugwarden and pw-echo failed");
        }
        Ok(b)
    }
}

/// A fork server with the two sandboxes the bench uses.
pub struct Host {
    pub fs: Arc<ForkServer>,
    pub true_filter: Sandbox,
    /// `/bin/true` under a strict-derived policy with every namespace off
    /// (net, ipc, uts, pid, mount), to show what the namespaces cost.
    pub true_filter_no_ns: Sandbox,
    /// `/bin/true` under strict on a fork server without zygotes
    /// (`PLUGWARDEN_NO_ZYGOTE=1`): a fresh init per spawn, as before them.
    pub true_filter_cold: Sandbox,
    /// The plugwarden binary (for the CLI rows).
    pub plugwarden: PathBuf,
    pub echo: Arc<Sandbox>,
    /// Instructions in the strict policy's seccomp program.
    pub filter_insns: usize,
    /// The strict policy's program (a list, as the install probe takes).
    pub filters: Vec<Vec<libc::sock_filter>>,
    /// The Rust SDK's lockdown program (every SDK plugin installs it).
    pub lockdown: Vec<libc::sock_filter>,
}

impl Host {
    pub fn start(bins: &Binaries) -> Result<Host> {
        let fs = Arc::new(ForkServer::start(&bins.plugwarden)?);
        let policy = Arc::new(plugwarden::policy::load("strict")?);
        let spec = |exe: &Path, mode| PluginSpec {
            exe: exe.to_path_buf(),
            args: Vec::new(),
            mode,
            env: Vec::new(),
            cwd: None,
        };
        let true_filter = Sandbox::new(
            fs.clone(),
            spec(Path::new("/bin/true"), Mode::Filter),
            policy.clone(),
            Enforce::Policy,
        )?;
        let true_filter_no_ns = Sandbox::new(
            fs.clone(),
            spec(Path::new("/bin/true"), Mode::Filter),
            Arc::new(strict_without_namespaces()?),
            Enforce::Policy,
        )?;
        // The bench is single-threaded here: nothing reads the environment
        // while the variable is set for the one fork server that inherits it.
        std::env::set_var("PLUGWARDEN_NO_ZYGOTE", "1");
        let cold = ForkServer::start(&bins.plugwarden);
        std::env::remove_var("PLUGWARDEN_NO_ZYGOTE");
        let true_filter_cold = Sandbox::new(
            Arc::new(cold?),
            spec(Path::new("/bin/true"), Mode::Filter),
            policy.clone(),
            Enforce::Policy,
        )?;
        let echo = Arc::new(Sandbox::new(
            fs.clone(),
            spec(&bins.echo, Mode::Worker),
            policy.clone(),
            Enforce::Policy,
        )?);
        let arch = plugwarden::policy::groups::Arch::native();
        let f =
            plugwarden::seccomp::compile(&policy.syscalls, policy.limits.processes, arch, None)?;
        let filters = vec![f
            .iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect()];
        Ok(Host {
            fs,
            true_filter,
            true_filter_no_ns,
            true_filter_cold,
            plugwarden: bins.plugwarden.clone(),
            echo,
            filter_insns: f.len(),
            filters,
            lockdown: plugwarden_sdk::lockdown_program()
                .map_err(|e| anyhow::anyhow!("lockdown program: {e}"))?
                .iter()
                .map(|i| libc::sock_filter {
                    code: i.code,
                    jt: i.jt,
                    jf: i.jf,
                    k: i.k,
                })
                .collect(),
        })
    }
}

/// `strict` with every namespace turned off, through a policy file as a
/// user would write it.
fn strict_without_namespaces() -> Result<plugwarden::policy::Policy> {
    let mut file = tempfile::Builder::new()
        .prefix("pw-bench-strict-no-ns-")
        .suffix(".toml")
        .tempfile()?;
    std::io::Write::write_all(
        &mut file,
        b"extends = \"strict\"\n\n[namespaces]\nnet = false\nipc = false\nuts = false\npid = false\nmount = false\n",
    )?;
    let path = file.path().to_str().context("temp path is not UTF-8")?;
    let policy = plugwarden::policy::load(path)?;
    if policy.namespaces.flags() != 0 {
        bail!("the no-namespace policy still asks for namespaces");
    }
    Ok(policy)
}

/// Forks `n` children one at a time; each sets no_new_privs, installs
/// `filters` when `install` (the last with a user-notification listener,
/// as the child road does) and exits. µs per child.
fn fork_install_exit(
    filters: &[Vec<libc::sock_filter>],
    install: bool,
    listener: bool,
    n: usize,
) -> Result<f64> {
    let progs: Vec<libc::sock_fprog> = filters
        .iter()
        .map(|f| libc::sock_fprog {
            len: f.len() as u16,
            filter: f.as_ptr() as *mut libc::sock_filter,
        })
        .collect();
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: the child makes raw syscalls only (prctl, seccomp, _exit) on
        // memory prepared before the fork, and never returns.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: prctl and seccomp read only `progs`, alive in this copy of the address space.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if install {
                    for (i, p) in progs.iter().enumerate() {
                        let flags = if listener && i + 1 == progs.len() {
                            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
                        } else {
                            0
                        };
                        if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, p)
                            < 0
                        {
                            libc::_exit(1);
                        }
                    }
                }
                libc::_exit(0)
            }
        }
        if pid < 0 {
            bail!("fork: {}", std::io::Error::last_os_error());
        }
        let mut status = 0;
        // SAFETY: waits for our own child; writes only `status`.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            bail!("seccomp install in a forked child failed (status {status:#x})");
        }
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// What installing the programs (the last with a listener when
/// `listener`) adds to a child, in µs.
pub fn seccomp_install_us(
    filters: &[Vec<libc::sock_filter>],
    listener: bool,
    n: usize,
) -> Result<f64> {
    let with = fork_install_exit(filters, true, listener, n)?;
    let without = fork_install_exit(filters, false, listener, n)?;
    Ok(with - without)
}

/// Per-launch means of one spawn round, in µs.
pub struct SpawnRound {
    /// `Sandbox::spawn` + `Process::wait`.
    pub total: f64,
    /// `Sandbox::spawn` alone (returns once the child has exec'd).
    pub spawn: f64,
    /// `Process::wait` alone (the child runs, exits, is reaped through the fork server).
    pub wait: f64,
}

/// `n` sandboxed launches of /bin/true, one at a time.
pub fn spawn_round(sb: &Sandbox, n: usize) -> Result<SpawnRound> {
    let (mut spawn, mut wait) = (0.0, 0.0);
    for _ in 0..n {
        let t0 = Instant::now();
        let mut p = sb.spawn()?;
        let t1 = Instant::now();
        let info = p.wait()?;
        let t2 = Instant::now();
        if info.code() != Some(0) {
            bail!("sandboxed /bin/true ended with status {:#x}", info.status);
        }
        spawn += (t1 - t0).as_secs_f64();
        wait += (t2 - t1).as_secs_f64();
    }
    let us = |s: f64| s * 1e6 / n as f64;
    Ok(SpawnRound {
        total: us(spawn + wait),
        spawn: us(spawn),
        wait: us(wait),
    })
}

/// `plugwarden run --mode filter --batch 1 --workers 1` of `/bin/cat`
/// under strict over `inputs` (a directory of small files), as a user
/// runs it: µs per input, the CLI's start and end included.
pub fn filter_batch_us(plugwarden: &Path, inputs: &Path, n: usize) -> Result<f64> {
    let t = Instant::now();
    let o = std::process::Command::new(plugwarden)
        .args(["run", "--mode", "filter", "--batch", "1", "--workers", "1"])
        .args(["--plugin", "/bin/cat", "--policy", "strict"])
        .arg(inputs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()?;
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    if !o.status.success() {
        bail!(
            "plugwarden run --mode filter failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(us)
}

/// `n` fork-server requests that do no work: µs per request.
pub fn fork_server_request_us(fs: &ForkServer, n: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        fs.release(u64::MAX);
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// Runs one job and checks the echo.
fn echo_job(w: &mut Worker, input: &[u8]) -> Result<()> {
    let o = w.run_job(input);
    if !o.verdict.is_ok() || o.output.len() != input.len() {
        bail!(
            "echo job of {} bytes: {} ({} bytes back) {}",
            input.len(),
            o.verdict,
            o.output.len(),
            o.stderr_tail
        );
    }
    Ok(())
}

/// `n` fresh `sb` workers, one at a time: µs from `Worker::start` until
/// the worker has answered one 4 KiB job (spawn, hello, job) — the work a
/// `--batch 1` job repeats. Killing and reaping each is not timed (the
/// pool does it on its reaper thread).
pub fn fresh_worker_us(sb: &Sandbox, n: usize) -> Result<f64> {
    let input = vec![0x5a; 4096];
    let mut total = 0.0;
    for _ in 0..n {
        let t = Instant::now();
        let mut w = Worker::start(sb)?;
        echo_job(&mut w, &input)?;
        total += t.elapsed().as_secs_f64();
        drop(w);
    }
    Ok(total * 1e6 / n as f64)
}

/// A started worker that has answered `warm` jobs.
pub fn warm_worker(sb: &Sandbox, warm: usize) -> Result<Worker> {
    let mut w = Worker::start(sb)?;
    let input = vec![0x5a; 1024];
    for _ in 0..warm.max(1) {
        echo_job(&mut w, &input)?;
    }
    Ok(w)
}

/// `iters` jobs of `size` bytes on a warm worker: µs per job.
pub fn round_trip_us(w: &mut Worker, size: usize, iters: usize) -> Result<f64> {
    let input = vec![0x5a; size];
    let t = Instant::now();
    for _ in 0..iters {
        echo_job(w, &input)?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / iters as f64)
}

/// CPU time (user + system) of the calling thread, in µs.
pub fn thread_cpu_us() -> f64 {
    // SAFETY: rusage is plain data; getrusage fills it and touches nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD with a valid pointer to our rusage.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// Average µs of `f` over `n` calls.
pub fn time_us(n: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// One job of `mib` MiB in and out: GB/s of bytes moved (input + output).
pub fn bulk_gbs(w: &mut Worker, input: &[u8]) -> Result<f64> {
    let t = Instant::now();
    echo_job(w, input)?;
    Ok(2.0 * input.len() as f64 / t.elapsed().as_secs_f64() / 1e9)
}

/// A batch run's throughput and per-job latencies.
pub struct BatchRun {
    pub jobs_per_s: f64,
    /// µs from handing the job to a worker to its answer.
    pub latencies_us: Vec<f64>,
}

/// `jobs` 4 KiB echo jobs on `workers` threads, each with its own worker
/// recycled every `batch` jobs (killed and reaped) and a spare started
/// ahead, so the next worker's exec and start-up overlap the current jobs.
pub fn batch(
    sb: &Sandbox,
    jobs: usize,
    batch: u64,
    workers: usize,
    pipelined: bool,
) -> Result<BatchRun> {
    let next = AtomicUsize::new(0);
    let payload = vec![0x42u8; 4096];
    let t0 = Instant::now();
    let results: Vec<Result<Vec<f64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (next, payload) = (&next, &payload);
                s.spawn(move || -> Result<Vec<f64>> {
                    let mut lat = Vec::with_capacity(jobs / workers + 1);
                    let mut cur = Worker::start(sb)?;
                    let mut spare = Worker::start(sb)?;
                    // Pipelined: a whole batch in flight (Worker::run_batch);
                    // otherwise one job at a time (Worker::run_job).
                    let take = if pipelined { batch as usize } else { 1 };
                    loop {
                        let first = next.fetch_add(take, Ordering::Relaxed);
                        if first >= jobs {
                            break;
                        }
                        let n = take.min(jobs - first);
                        if pipelined {
                            let inputs: Vec<&[u8]> = vec![payload.as_slice(); n];
                            let outs = cur.run_batch(&inputs);
                            if outs.len() != n
                                || outs
                                    .iter()
                                    .any(|o| !o.verdict.is_ok() || o.output.len() != payload.len())
                            {
                                bail!(
                                    "pipelined batch of {n}: {} answers, first verdict {:?}",
                                    outs.len(),
                                    outs.first().map(|o| o.verdict.to_string())
                                );
                            }
                            lat.extend(outs.iter().map(|o| o.wall.as_secs_f64() * 1e6));
                        } else {
                            let t = Instant::now();
                            echo_job(&mut cur, payload)?;
                            lat.push(t.elapsed().as_secs_f64() * 1e6);
                        }
                        if cur.jobs >= batch {
                            // Retire (kill and reap) before starting the next
                            // spare, so at most two workers per thread live.
                            drop(std::mem::replace(&mut cur, spare));
                            spare = Worker::start(sb)?;
                        }
                    }
                    Ok(lat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")))
            })
            .collect()
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let mut latencies_us = Vec::with_capacity(jobs);
    for r in results {
        latencies_us.extend(r?);
    }
    Ok(BatchRun {
        jobs_per_s: jobs as f64 / elapsed,
        latencies_us,
    })
}

/// `jobs` 4 KiB echo jobs through [`plugwarden::pool::Pool`] with `workers`
/// slots recycling every `batch` jobs (the pool's own warm spares and
/// reapers). Latency is each job's `JobOutcome::wall`.
pub fn pool_batch(sb: &Arc<Sandbox>, jobs: usize, batch: u64, workers: usize) -> Result<BatchRun> {
    pool_batch_rss(sb, jobs, batch, workers, 4096, &[]).map(|(run, _)| run)
}

/// [`pool_batch`] with inputs of `size` bytes.
pub fn pool_batch_sized(
    sb: &Arc<Sandbox>,
    jobs: usize,
    batch: u64,
    workers: usize,
    size: usize,
) -> Result<BatchRun> {
    pool_batch_rss(sb, jobs, batch, workers, size, &[]).map(|(run, _)| run)
}

/// [`pool_batch`] that also reads this process's RSS (KiB) when the
/// `checkpoints`-th results have come back, all in one pool.
pub fn pool_batch_rss(
    sb: &Arc<Sandbox>,
    jobs: usize,
    batch: u64,
    workers: usize,
    size: usize,
    checkpoints: &[usize],
) -> Result<(BatchRun, Vec<f64>)> {
    use plugwarden::pool::{Pool, PoolConfig, Task};
    let config = PoolConfig {
        workers,
        batch,
        recycle_rss: u64::MAX,
        max_lifetime: std::time::Duration::from_secs(24 * 3600),
        retry: false,
        spill: None,
    };
    let payload = vec![0x42u8; size];
    let t0 = Instant::now();
    let (pool, feeder) = Pool::<usize>::start(sb.clone(), config)?;
    let producer = std::thread::spawn(move || {
        for tag in 0..jobs {
            if feeder
                .submit(Task {
                    tag,
                    input: Ok(payload.clone().into()),
                    sink: None,
                })
                .is_err()
            {
                break;
            }
        }
    });
    // When measuring memory, keep no per-job record: a growing latency
    // vector would itself be the growth.
    let keep = checkpoints.is_empty();
    let mut latencies_us = Vec::with_capacity(if keep { jobs } else { 0 });
    let (mut done, mut rss) = (0, Vec::new());
    let mut bad = None;
    for f in pool.results().iter() {
        done += 1;
        if checkpoints.contains(&done) {
            rss.push(self_rss_kib() as f64);
        }
        let o = &f.outcome;
        if !o.verdict.is_ok() || o.output.len() != size {
            bad.get_or_insert_with(|| format!("job {}: {} {}", f.tag, o.verdict, o.stderr_tail));
        }
        if keep {
            latencies_us.push(o.wall.as_secs_f64() * 1e6);
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let _ = producer.join();
    pool.join();
    if let Some(b) = bad {
        bail!("pool batch: {b}");
    }
    if done != jobs {
        bail!("pool batch: {done} results for {jobs} jobs");
    }
    let run = BatchRun {
        jobs_per_s: jobs as f64 / elapsed,
        latencies_us,
    };
    Ok((run, rss))
}

/// This process's resident set size in KiB.
pub fn self_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
