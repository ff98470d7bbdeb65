//! The hostile-plugin suite (issue 5): every attack in plugins/hostile,
//! each written to succeed without a sandbox, is run
//!
//! 1. **unsandboxed** first, through a tiny protocol driver, to prove that
//!    the attack works and that its effect is observable (skipped, with the
//!    reason printed, where that would harm the machine or the test);
//! 2. under `strict` and under `default`, through the library and ONE fork
//!    server, and judged by its observable effect (the secret never shows,
//!    files are unchanged, listeners get nothing, the host is alive,
//!    untraced and has no stray process) and by the exact verdict word the
//!    host reports, with the part of its detail that names the wall.
//!
//! Then the host's survival (item 2): the test process's fds, threads and
//! RSS are where they started, it has no zombie, and nothing the suite
//! started is alive. The last line says how many attacks were tried and
//! how many were contained; `cargo test --test hostile -- --nocapture`
//! prints the table (attack, layer, verdict under strict and default).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{SocketAddr, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};
use plugwarden::worker::{JobOutcome, Worker};
use plugwarden::ForkServer;
use plugwarden_proto::{self as protocol, FrameDecoder, Kind};

/// Wall-clock limit of every sandboxed job.
const WALL: Duration = Duration::from_secs(2);
/// How long an unsandboxed run may take before the driver stops it.
const BARE_WAIT: Duration = Duration::from_millis(1000);
/// Bytes of an unsandboxed run's stdout or stderr kept for inspection.
const BARE_KEEP: usize = 1 << 20;

/// Everything the attacks aim at: secrets, victims, listeners, pids.
struct Ctx {
    dir: tempfile::TempDir,
    secret: PathBuf,
    secret_text: String,
    /// World-writable file the file attacks try to change.
    victim: PathBuf,
    victim_text: String,
    /// A secret that lives only in this process's memory.
    mem_secret: Box<[u8]>,
    /// One entry of this process's environment.
    env_entry: String,
    tcp: TcpListener,
    udp: UdpSocket,
    unix: UnixListener,
    unix_path: PathBuf,
    abstract_name: String,
    abstract_sock: UnixListener,
    /// A root-owned process standing in for the host when an attack is run
    /// unsandboxed (stdin: the secret).
    sleeper: std::process::Child,
    fs_pid: u32,
    setuid_bin: PathBuf,
    handle: (i32, String),
}

impl Ctx {
    fn new(fs_pid: u32) -> Ctx {
        let dir = scratch();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let nonce = format!(
            "{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ 0x5eed
        );
        let secret = dir.path().join("secret.txt");
        let secret_text = format!("pw-file-secret-{nonce}");
        std::fs::write(&secret, &secret_text).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let victim = dir.path().join("victim.txt");
        let victim_text = "original content".to_string();
        std::fs::write(&victim, &victim_text).unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o666)).unwrap();
        std::fs::create_dir(dir.path().join("jail")).unwrap();
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        let environ = std::fs::read("/proc/self/environ").unwrap();
        let env_entry = environ
            .split(|&b| b == 0)
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .find(|e| e.len() > 12)
            .expect("an environment entry");
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        let unix_path = dir.path().join("sock");
        let unix = UnixListener::bind(&unix_path).unwrap();
        unix.set_nonblocking(true).unwrap();
        std::fs::set_permissions(&unix_path, std::fs::Permissions::from_mode(0o777)).unwrap();
        let abstract_name = format!("pw-hostile-{nonce}");
        let abstract_sock =
            UnixListener::bind_addr(&SocketAddr::from_abstract_name(&abstract_name).unwrap())
                .unwrap();
        abstract_sock.set_nonblocking(true).unwrap();
        let sleeper = Command::new("sleep")
            .arg("120")
            .stdin(std::fs::File::open(&secret).unwrap())
            .spawn()
            .unwrap();
        let setuid_bin = dir.path().join("suid-id");
        copy_executable(Path::new("/usr/bin/id"), &setuid_bin);
        std::fs::set_permissions(&setuid_bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let handle = file_handle(&secret);
        Ctx {
            dir,
            secret,
            secret_text,
            victim,
            victim_text,
            mem_secret: format!("pw-memory-secret-{nonce}")
                .into_bytes()
                .into_boxed_slice(),
            env_entry,
            tcp,
            udp,
            unix,
            unix_path,
            abstract_name,
            abstract_sock,
            sleeper,
            fs_pid,
            setuid_bin,
            handle,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn secret_s(&self) -> String {
        self.secret.display().to_string()
    }

    fn mem_secret_text(&self) -> String {
        String::from_utf8_lossy(&self.mem_secret).into_owned()
    }

    /// `pid`, address and length of the in-memory secret.
    fn mem_input(&self) -> String {
        format!(
            "{}\n{:x}\n{}",
            std::process::id(),
            self.mem_secret.as_ptr() as usize,
            self.mem_secret.len()
        )
    }

    /// Connections or datagrams that reached a listener, drained.
    fn listener_hits(&self) -> Vec<String> {
        let mut hits = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok((mut s, _)) = self.tcp.accept() {
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let n = s.read(&mut buf).unwrap_or(0);
            hits.push(format!("tcp: {:?}", String::from_utf8_lossy(&buf[..n])));
        }
        while let Ok(n) = self.udp.recv(&mut buf) {
            hits.push(format!("udp: {:?}", String::from_utf8_lossy(&buf[..n])));
        }
        for (name, l) in [("unix", &self.unix), ("abstract", &self.abstract_sock)] {
            while let Ok((mut s, _)) = l.accept() {
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                let n = s.read(&mut buf).unwrap_or(0);
                hits.push(format!("{name}: {:?}", String::from_utf8_lossy(&buf[..n])));
            }
        }
        hits
    }

    /// Puts the victim file back as it was.
    fn restore_victim(&self) {
        let _ = std::fs::remove_file(&self.victim);
        std::fs::write(&self.victim, &self.victim_text).unwrap();
        std::fs::set_permissions(&self.victim, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
}

/// name_to_handle_at(secret): (handle type, handle bytes in hex).
fn file_handle(path: &Path) -> (i32, String) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = [0u8; 8 + 128];
    buf[..4].copy_from_slice(&128u32.to_ne_bytes());
    let mut mount_id = 0i32;
    // SAFETY: buf is a struct file_handle with room for 128 handle bytes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            c.as_ptr(),
            buf.as_mut_ptr(),
            &mut mount_id,
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "name_to_handle_at: {}",
        std::io::Error::last_os_error()
    );
    let len = u32::from_ne_bytes(buf[..4].try_into().unwrap()) as usize;
    let kind = i32::from_ne_bytes(buf[4..8].try_into().unwrap());
    (
        kind,
        buf[8..8 + len].iter().map(|b| format!("{b:02x}")).collect(),
    )
}

/// What an unsandboxed run produced.
struct BareRun {
    /// The answer to job 1: output or error message.
    reply: Option<Result<String, String>>,
    /// Raw stdout after the hello frame (first [`BARE_KEEP`] bytes).
    stdout: Vec<u8>,
    stdout_total: usize,
    stdout_eof: bool,
    stderr_total: usize,
    /// The process state letter when the driver gave up (`None`: it had exited).
    state_at_deadline: Option<char>,
}

impl BareRun {
    fn escaped(&self) -> Result<&str, String> {
        match &self.reply {
            Some(Ok(out)) if out.starts_with("ESCAPED") => Ok(out),
            other => Err(format!("the attack failed unsandboxed: {other:?}")),
        }
    }
}

/// What a drain thread has read so far: (first bytes, total, EOF seen).
type Drained = Arc<Mutex<(Vec<u8>, usize, bool)>>;

/// Reads `r` to its end on a thread of its own.
fn drain(mut r: impl Read + Send + 'static) -> (Drained, std::thread::JoinHandle<()>) {
    let shared: Drained = Arc::new(Mutex::new((Vec::new(), 0usize, false)));
    let s = shared.clone();
    let t = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut g = s.lock().unwrap();
                    let room = BARE_KEEP.saturating_sub(g.0.len()).min(n);
                    g.0.extend_from_slice(&buf[..room]);
                    g.1 += n;
                }
            }
        }
        s.lock().unwrap().2 = true;
    });
    (shared, t)
}

/// Decodes the frames in `bytes`: the hello's length and the answer to job 1.
fn decode(bytes: &[u8]) -> (usize, Option<Result<String, String>>) {
    let mut d = FrameDecoder::new(protocol::DEFAULT_MAX_FRAME);
    let mut frames = Vec::new();
    let _ = d.push_all(bytes, &mut frames);
    let hello_len = frames
        .first()
        .filter(|f| f.kind == Kind::Hello)
        .map_or(0, |f| protocol::HEADER_LEN + f.payload.len());
    let mut out = Vec::new();
    for f in frames.iter().filter(|f| f.id == 1) {
        match f.kind {
            Kind::Part => out.extend_from_slice(&f.payload),
            Kind::Done => {
                out.extend_from_slice(&f.payload);
                return (
                    hello_len,
                    Some(Ok(String::from_utf8_lossy(&out).into_owned())),
                );
            }
            Kind::Error => {
                return (
                    hello_len,
                    Some(Err(String::from_utf8_lossy(&f.payload).into_owned())),
                )
            }
            _ => {}
        }
    }
    (hello_len, None)
}

/// Runs `exe` with no sandbox at all: hello, one job, then whatever it does
/// within [`BARE_WAIT`]. `leak`: the secret is open at fd 5, as a careless
/// host would leave it.
fn run_bare(ctx: &Ctx, exe: &Path, input: &str, leak: bool, pids: &mut Vec<i32>) -> BareRun {
    let mut cmd = Command::new(exe);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if leak {
        let f = std::fs::File::open(&ctx.secret).unwrap();
        // SAFETY: dup2 is async-signal-safe; `f` outlives the spawn.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(f.as_raw_fd(), 5) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
    }
    let mut child = cmd.spawn().unwrap();
    pids.push(child.id() as i32);
    let (out, t_out) = drain(child.stdout.take().unwrap());
    let (err, t_err) = drain(child.stderr.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let mut msg = Vec::new();
    protocol::encode_frame(
        &mut msg,
        Kind::Hello,
        0,
        &protocol::host_hello(protocol::DEFAULT_MAX_FRAME),
    );
    protocol::encode_frame(&mut msg, Kind::Job, 1, input.as_bytes());
    let _ = stdin.write_all(&msg);
    let deadline = Instant::now() + BARE_WAIT;
    let mut state = None;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if decode(&out.lock().unwrap().0).1.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
            state = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(stdin);
    // A stopped or exec'd child is gone now; its pipes end with it (the
    // shell of exec-sh exits by itself).
    t_out.join().unwrap();
    t_err.join().unwrap();
    let (stdout, stdout_total, stdout_eof) = out.lock().unwrap().clone();
    let stderr_total = err.lock().unwrap().1;
    let (hello_len, reply) = decode(&stdout);
    BareRun {
        reply,
        stdout: stdout[hello_len.min(stdout.len())..].to_vec(),
        stdout_total,
        stdout_eof,
        stderr_total,
        state_at_deadline: state,
    }
}

/// What the unsandboxed run must show; `Ok(Some(reason))` = not applicable.
type BareCheck = fn(&Ctx, &BareRun) -> Result<Option<String>, String>;

enum Bare {
    /// Run with the same input as the sandboxed runs.
    Same(BareCheck),
    /// Run with its own input (e.g. the sleeper instead of the host).
    With(fn(&Ctx) -> String, BareCheck),
    /// Run with the secret leaked at fd 5.
    Leaky(BareCheck),
    /// Not run unsandboxed, for this reason.
    Skip(&'static str),
}

/// One attack and what containing it looks like.
struct Attack {
    bin: &'static str,
    /// The layer that stops it (for SECURITY.md).
    layer: &'static str,
    input: fn(&Ctx) -> String,
    bare: Bare,
    /// (verdict word, a part of its detail; `a|b`: either) under strict and
    /// default. Alternatives exist only where the outcome depends on a layer
    /// being present (EACCES from Landlock or ENOENT from the minimal root)
    /// or on a known host race (hostile-close-stdout-early).
    strict: (&'static str, &'static str),
    default: (&'static str, &'static str),
    /// The attack's own effect is absent after a sandboxed run.
    effect: fn(&Ctx, &JobOutcome) -> Result<(), String>,
}

fn no_input(_: &Ctx) -> String {
    String::new()
}

fn no_effect(_: &Ctx, _: &JobOutcome) -> Result<(), String> {
    Ok(())
}

fn escaped(_: &Ctx, r: &BareRun) -> Result<Option<String>, String> {
    r.escaped().map(|_| None)
}

/// For privileged calls: the attack works, or this kernel lacks the call or
/// refuses it even to root (a sysctl, a container): then the unsandboxed
/// half is not applicable here, and the sandboxed half still runs.
fn escaped_or_refused(_: &Ctx, r: &BareRun) -> Result<Option<String>, String> {
    match &r.reply {
        Some(Err(e)) if e.contains("ENOSYS") => Ok(Some(format!(
            "the unsandboxed half: this kernel lacks the call ({e})"
        ))),
        Some(Err(e)) if e.contains("EPERM") || e.contains("EACCES") => Ok(Some(format!(
            "the unsandboxed half: this machine refuses it even to uid {} ({e})",
            nix::unistd::geteuid()
        ))),
        _ => r.escaped().map(|_| None),
    }
}

fn escaped_with_secret(c: &Ctx, r: &BareRun) -> Result<Option<String>, String> {
    let out = r.escaped()?;
    if out.contains(&c.secret_text) {
        Ok(None)
    } else {
        Err(format!("no secret in {out:?}"))
    }
}

fn escaped_with_mem_secret(c: &Ctx, r: &BareRun) -> Result<Option<String>, String> {
    let out = r.escaped()?;
    if out.contains(&c.mem_secret_text()) {
        Ok(None)
    } else {
        Err(format!("no secret in {out:?}"))
    }
}

fn connected(c: &Ctx, r: &BareRun) -> Result<Option<String>, String> {
    r.escaped()?;
    let hits = c.listener_hits();
    if hits.iter().any(|h| h.contains("pwned")) {
        Ok(None)
    } else {
        Err(format!("the listener got {hits:?}"))
    }
}

fn still_running(_: &Ctx, r: &BareRun) -> Result<Option<String>, String> {
    match r.state_at_deadline {
        Some('R' | 'S') if r.reply.is_none() => Ok(None),
        s => Err(format!(
            "expected a live process without an answer, state {s:?}, reply {:?}",
            r.reply
        )),
    }
}

fn victim_unchanged(c: &Ctx, _: &JobOutcome) -> Result<(), String> {
    let meta = std::fs::metadata(&c.victim).map_err(|e| format!("victim: {e}"))?;
    let text = std::fs::read_to_string(&c.victim).map_err(|e| format!("victim: {e}"))?;
    if text != c.victim_text || meta.mode() & 0o7777 != 0o666 {
        c.restore_victim();
        return Err(format!(
            "victim changed: {text:?}, mode {:o}",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

fn absent(p: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(p) {
        Ok(_) => {
            let _ = std::fs::remove_file(p);
            Err(format!("{} was created", p.display()))
        }
        Err(_) => Ok(()),
    }
}

/// The block device under `/`, then the kernel log: devices root may read.
fn raw_devices() -> Vec<String> {
    let dev = std::fs::metadata("/").unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let uevent = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent"))
        .unwrap_or_default();
    let mut out: Vec<String> = uevent
        .lines()
        .filter_map(|l| l.strip_prefix("DEVNAME="))
        .map(|d| format!("/dev/{d}"))
        .collect();
    out.push("/dev/kmsg".into());
    out
}

/// The C library this process (and every plugin) has mapped.
fn libc_path() -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        .expect("libc in /proc/self/maps")
        .to_string()
}

/// The candidate directories of the file-size bomb.
const BOMB_DIRS: [&str; 3] = ["/tmp", "/dev/shm", "/var/tmp"];

fn bombs(c: &Ctx) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for d in std::iter::once(c.dir.path()).chain(BOMB_DIRS.iter().map(Path::new)) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with("hostile-bomb-") {
                found.push(e.path());
            }
        }
    }
    found
}

fn limits_core(pid: &str) -> String {
    let l = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    l.lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or("")
        .to_string()
}

fn mountinfo_has(dir: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&dir.display().to_string())
}

const BASE: Attack = Attack {
    bin: "",
    layer: "",
    input: no_input,
    bare: Bare::Same(escaped_or_refused),
    strict: ("", ""),
    default: ("", ""),
    effect: no_effect,
};

fn attacks() -> Vec<Attack> {
    // EACCES from Landlock where the path exists in the plugin's view; ENOENT
    // where the minimal root (mount namespace) does not even show it.
    let eacces = ("plugin_error", "EACCES|ENOENT");
    let wall = ("timeout", "wall");
    vec![
        // ---- files ----
        Attack {
            bin: "hostile-read-secret",
            layer: "mount namespace (minimal root: the path does not exist); Landlock (no read right)",
            input: |c| c.secret_s(),
            bare: Bare::Same(escaped_with_secret),
            strict: eacces,
            default: eacces,
            ..BASE
        },
        Attack {
            bin: "hostile-create-outside",
            layer: "mount namespace (minimal root); Landlock (no make_reg right); RLIMIT_FSIZE 0",
            input: |c| c.path("created").display().to_string(),
            bare: Bare::Same(|c, r| {
                r.escaped()?;
                absent(&c.path("created")).err().map(|_| None).ok_or("no file was created".into())
            }),
            strict: eacces,
            default: eacces,
            effect: |c, _| absent(&c.path("created")),
        },
        Attack {
            bin: "hostile-write-outside",
            layer: "mount namespace (minimal root); Landlock (no write_file right)",
            input: |c| c.victim.display().to_string(),
            bare: Bare::Same(|c, r| {
                r.escaped()?;
                let changed = victim_unchanged(c, &dummy_outcome()).is_err();
                changed.then_some(None).ok_or("the victim is unchanged".into())
            }),
            strict: eacces,
            default: eacces,
            effect: victim_unchanged,
        },
        Attack {
            bin: "hostile-truncate-outside",
            layer: "seccomp (truncate is in no allowed group)",
            input: |c| c.victim.display().to_string(),
            bare: Bare::Same(|c, r| {
                r.escaped()?;
                let changed = victim_unchanged(c, &dummy_outcome()).is_err();
                changed.then_some(None).ok_or("the victim is unchanged".into())
            }),
            strict: ("violation", "truncate("),
            default: ("violation", "truncate("),
            effect: victim_unchanged,
        },
        Attack {
            bin: "hostile-chmod-outside",
            layer: "seccomp (@file-write is not allowed)",
            input: |c| c.victim.display().to_string(),
            bare: Bare::Same(|c, r| {
                r.escaped()?;
                let changed = victim_unchanged(c, &dummy_outcome()).is_err();
                changed.then_some(None).ok_or("the victim is unchanged".into())
            }),
            strict: ("violation", "chmod("),
            default: ("violation", "chmod("),
            effect: victim_unchanged,
        },
        Attack {
            bin: "hostile-rename-outside",
            layer: "seccomp (strict: rename is not allowed); default: the minimal root (the victim is not there) and Landlock (nothing but the private /tmp is writable)",
            input: |c| format!("{}\n{}", c.victim.display(), c.path("renamed").display()),
            bare: Bare::Same(|c, r| {
                r.escaped()?;
                let moved = c.path("renamed").exists() && !c.victim.exists();
                let _ = std::fs::rename(c.path("renamed"), &c.victim);
                moved.then_some(None).ok_or("nothing was renamed".into())
            }),
            strict: ("violation", "rename("),
            default: ("plugin_error", "ENOENT|EACCES"),
            effect: |c, o| {
                absent(&c.path("renamed"))?;
                victim_unchanged(c, o)
            },
        },
        Attack {
            bin: "hostile-hardlink",
            layer: "seccomp (link is in @file-write); Landlock (no make_reg right)",
            input: |c| format!("{}\n{}", c.secret.display(), c.path("hardlink").display()),
            bare: Bare::Same(|c, r| {
                escaped_with_secret(c, r)?;
                absent(&c.path("hardlink")).err().map(|_| None).ok_or("no link was made".into())
            }),
            strict: ("violation", "link("),
            default: ("violation", "link("),
            effect: |c, _| {
                absent(&c.path("hardlink"))?;
                let n = std::fs::metadata(&c.secret).map_err(|e| e.to_string())?.nlink();
                (n == 1).then_some(()).ok_or(format!("the secret has {n} links"))
            },
        },
        Attack {
            bin: "hostile-symlink",
            layer: "seccomp (symlink is in @file-write); Landlock (no make_sym right)",
            input: |c| format!("{}\n{}", c.secret.display(), c.path("symlink").display()),
            bare: Bare::Same(|c, r| {
                escaped_with_secret(c, r)?;
                absent(&c.path("symlink")).err().map(|_| None).ok_or("no link was made".into())
            }),
            strict: ("violation", "symlink("),
            default: ("violation", "symlink("),
            effect: |c, _| absent(&c.path("symlink")),
        },
        Attack {
            bin: "hostile-proc-root",
            layer: "mount namespace (/proc/self/root is the minimal root); Landlock (checks the file reached)",
            input: |c| c.secret_s(),
            bare: Bare::Same(escaped_with_secret),
            strict: eacces,
            default: eacces,
            ..BASE
        },
        Attack {
            bin: "hostile-dotdot",
            layer: "mount namespace (`..` stops at the minimal root); Landlock (checks the file reached)",
            input: |c| c.secret_s(),
            bare: Bare::Same(escaped_with_secret),
            strict: eacces,
            default: eacces,
            ..BASE
        },
        Attack {
            bin: "hostile-open-by-handle",
            layer: "seccomp (open_by_handle_at is in @privileged); capabilities (CAP_DAC_READ_SEARCH dropped)",
            input: |c| format!("{}\n{}", c.handle.0, c.handle.1),
            bare: Bare::Same(escaped_with_secret),
            strict: ("violation", "open_by_handle_at("),
            default: ("violation", "open_by_handle_at("),
            ..BASE
        },
        Attack {
            bin: "hostile-mknod",
            layer: "seccomp (mknod is in @file-write); capabilities (CAP_MKNOD dropped)",
            input: |c| c.path("mem").display().to_string(),
            bare: Bare::Same(|c, r| {
                r.escaped()?;
                let dev = std::fs::symlink_metadata(c.path("mem")).map(|m| m.file_type().is_char_device());
                let _ = std::fs::remove_file(c.path("mem"));
                (dev.ok() == Some(true)).then_some(None).ok_or("no device node".into())
            }),
            strict: ("violation", "mknod"),
            default: ("violation", "mknod"),
            effect: |c, _| absent(&c.path("mem")),
        },
        Attack {
            bin: "hostile-raw-disk",
            layer: "mount namespace (minimal /dev: null, zero, urandom); Landlock; capabilities",
            input: |_| raw_devices().join("\n"),
            bare: Bare::Same(|_, r| {
                let out = r.escaped()?;
                out.contains("bytes of /dev/").then_some(None).ok_or(out.to_string())
            }),
            strict: eacces,
            default: eacces,
            ..BASE
        },
        Attack {
            bin: "hostile-trojan-lib",
            layer: "Landlock (read-only grant); behind it, the read-only bind of the minimal root (EROFS)",
            input: |_| libc_path(),
            strict: ("plugin_error", "EACCES|EROFS"),
            default: ("plugin_error", "EACCES|EROFS"),
            bare: Bare::Same(escaped),
            ..BASE
        },
        // ---- exec ----
        Attack {
            bin: "hostile-exec-sh",
            layer: "Landlock (no execute right on /bin/sh)",
            input: |c| c.path("sh-marker").display().to_string(),
            bare: Bare::Same(|c, _| {
                absent(&c.path("sh-marker")).err().map(|_| None).ok_or("/bin/sh did not run".into())
            }),
            strict: eacces,
            default: eacces,
            effect: |c, _| absent(&c.path("sh-marker")),
        },
        Attack {
            bin: "hostile-exec-setuid",
            layer: "mount namespace (minimal root); Landlock (no execute right); no_new_privs (setuid bits ignored)",
            input: |c| c.setuid_bin.display().to_string(),
            bare: Bare::Same(|c, r| {
                // The plugin exec'd it; and as uid 65534 it does give euid 0.
                if !String::from_utf8_lossy(&r.stdout).contains('0') {
                    return Err(format!("id did not run: {:?}", String::from_utf8_lossy(&r.stdout)));
                }
                let o = Command::new(&c.setuid_bin).arg("-u").uid(65534).gid(65534).output().unwrap();
                match String::from_utf8_lossy(&o.stdout).trim() {
                    "0" => Ok(None),
                    other => Err(format!("the setuid binary gives euid {other}")),
                }
            }),
            strict: eacces,
            default: eacces,
            ..BASE
        },
        Attack {
            bin: "hostile-exec-memfd",
            layer: "seccomp (memfd_create: absent from strict; only with MFD_NOEXEC_SEAL in default)",
            bare: Bare::Same(escaped),
            strict: ("violation", "memfd_create("),
            default: ("violation", "memfd_create("),
            ..BASE
        },
        Attack {
            bin: "hostile-reexec-self",
            layer: "every layer survives execve (the new image is as confined: root, Landlock, seccomp, uid)",
            input: |c| c.secret_s(),
            bare: Bare::Same(escaped_with_secret),
            strict: eacces,
            default: eacces,
            ..BASE
        },
        // ---- network ----
        Attack {
            bin: "hostile-tcp-connect",
            layer: "seccomp (no socket); Landlock (no TCP connect port)",
            input: |c| c.tcp.local_addr().unwrap().port().to_string(),
            bare: Bare::Same(connected),
            strict: ("violation", "socket(AF_INET, SOCK_STREAM"),
            default: ("violation", "socket(AF_INET, SOCK_STREAM"),
            ..BASE
        },
        Attack {
            bin: "hostile-udp-send",
            layer: "seccomp (no socket)",
            input: |c| c.udp.local_addr().unwrap().port().to_string(),
            bare: Bare::Same(connected),
            strict: ("violation", "socket(AF_INET, SOCK_DGRAM"),
            default: ("violation", "socket(AF_INET, SOCK_DGRAM"),
            ..BASE
        },
        Attack {
            bin: "hostile-raw-socket",
            layer: "seccomp (no socket); capabilities (CAP_NET_RAW dropped)",
            strict: ("violation", "socket(AF_INET, SOCK_RAW"),
            default: ("violation", "socket(AF_INET, SOCK_RAW"),
            ..BASE
        },
        Attack {
            bin: "hostile-unix-abstract",
            layer: "seccomp (socket(AF_UNIX) answered EACCES: glibc's nscd probe); Landlock abstract-unix scope; the network namespace",
            input: |c| c.abstract_name.clone(),
            bare: Bare::Same(connected),
            strict: ("plugin_error", "socket(AF_UNIX): EACCES"),
            default: ("plugin_error", "socket(AF_UNIX): EACCES"),
            ..BASE
        },
        Attack {
            bin: "hostile-unix-path",
            layer: "seccomp (socket(AF_UNIX) answered EACCES: glibc's nscd probe); Landlock (no path access)",
            input: |c| c.unix_path.display().to_string(),
            bare: Bare::Same(connected),
            strict: ("plugin_error", "socket(AF_UNIX): EACCES"),
            default: ("plugin_error", "socket(AF_UNIX): EACCES"),
            ..BASE
        },
        // ---- processes ----
        Attack {
            bin: "hostile-fork-bomb",
            layer: "seccomp (clone without CLONE_THREAD, processes = 0)",
            bare: Bare::Skip("it would start 255 processes outside any sandbox"),
            strict: ("violation", "clone("),
            default: ("violation", "clone("),
            ..BASE
        },
        Attack {
            bin: "hostile-daemon",
            layer: "seccomp (clone without CLONE_THREAD); fork-server subreaper",
            bare: Bare::Skip("it leaves a daemon behind by design"),
            strict: ("violation", "clone("),
            default: ("violation", "clone("),
            ..BASE
        },
        Attack {
            bin: "hostile-kill-all",
            layer: "PID namespace (nothing in it but the plugin and its init, which kill(-1) spares); Landlock signal scope",
            bare: Bare::Skip("kill(-1, SIGKILL) as root would kill every process on the machine"),
            strict: ("plugin_error", "ESRCH"),
            default: ("plugin_error", "ESRCH"),
            ..BASE
        },
        Attack {
            bin: "hostile-kill-parent",
            layer: "PID namespace (the fork server's pid does not exist inside); Landlock signal scope",
            input: |c| c.fs_pid.to_string(),
            bare: Bare::Skip("its parent would be this test process"),
            strict: ("plugin_error", "ESRCH"),
            default: ("plugin_error", "ESRCH"),
            ..BASE
        },
        Attack {
            bin: "hostile-ptrace-host",
            layer: "seccomp (ptrace is in @debug); credentials (other uid)",
            input: |_| std::process::id().to_string(),
            bare: Bare::With(|c| c.sleeper.id().to_string(), escaped),
            strict: ("violation", "ptrace(16, "),
            default: ("violation", "ptrace(16, "),
            ..BASE
        },
        Attack {
            bin: "hostile-vm-readv",
            layer: "seccomp (process_vm_readv is in @debug); credentials",
            input: Ctx::mem_input,
            bare: Bare::Same(escaped_with_mem_secret),
            strict: ("violation", "process_vm_readv("),
            default: ("violation", "process_vm_readv("),
            ..BASE
        },
        Attack {
            bin: "hostile-proc-environ",
            layer: "PID namespace and private /proc (the host's pid does not exist); Landlock (/proc not granted)",
            input: |_| std::process::id().to_string(),
            bare: Bare::Same(|c, r| {
                let out = r.escaped()?;
                out.contains(&c.env_entry).then_some(None).ok_or("no environment".into())
            }),
            strict: eacces,
            default: eacces,
            effect: |c, o| {
                let seen = o.output.windows(c.env_entry.len()).any(|w| w == c.env_entry.as_bytes())
                    || o.stderr_tail.contains(&c.env_entry)
                    || o.verdict.detail().contains(&c.env_entry);
                (!seen).then_some(()).ok_or("the host's environment leaked".into())
            },
        },
        Attack {
            bin: "hostile-proc-mem",
            layer: "PID namespace and private /proc (the host's pid does not exist); Landlock (/proc not granted)",
            input: Ctx::mem_input,
            bare: Bare::Same(escaped_with_mem_secret),
            strict: eacces,
            default: eacces,
            ..BASE
        },
        Attack {
            bin: "hostile-sigstop-self",
            layer: "wall deadline (the plugin stops, as it would outside; the host kills it at the deadline)",
            bare: Bare::Same(|_, r| match r.state_at_deadline {
                Some('T') => Ok(None),
                s => Err(format!("not stopped: state {s:?}")),
            }),
            strict: ("timeout", "wall"),
            default: ("timeout", "wall"),
            ..BASE
        },
        Attack {
            bin: "hostile-pidfd-getfd",
            layer: "seccomp (pidfd_open is in @process, pidfd_getfd in @debug)",
            input: |c| format!("{}\n3", c.fs_pid),
            bare: Bare::With(|c| format!("{}\n0", c.sleeper.id()), escaped_with_secret),
            strict: ("violation", "pidfd_open("),
            default: ("violation", "pidfd_open("),
            ..BASE
        },
        Attack {
            bin: "hostile-fd-scan",
            layer: "child road (close_range: only fds 0-2 survive exec)",
            bare: Bare::Leaky(escaped_with_secret),
            strict: ("plugin_error", "no descriptor open beyond 0-2"),
            default: ("plugin_error", "no descriptor open beyond 0-2"),
            ..BASE
        },
        // ---- privilege ----
        Attack {
            bin: "hostile-setuid-root",
            layer: "seccomp (@credentials); credentials (uid 65534, no capabilities)",
            strict: ("violation", "setuid(0"),
            default: ("violation", "setuid(0"),
            ..BASE
        },
        Attack {
            bin: "hostile-capset",
            layer: "seccomp (@credentials); empty bounding set",
            strict: ("violation", "capset("),
            default: ("violation", "capset("),
            ..BASE
        },
        Attack {
            bin: "hostile-rlimit-raise",
            layer: "seccomp (prlimit64 only reads limits unless @resources is allowed); rlimits (hard = soft)",
            strict: ("violation", "prlimit64("),
            default: ("violation", "prlimit64("),
            ..BASE
        },
        Attack {
            bin: "hostile-prlimit-host",
            layer: "seccomp (prlimit64 only reads limits unless @resources is allowed); PID namespace (the host's pid does not exist inside)",
            input: |_| std::process::id().to_string(),
            bare: Bare::With(
                |c| c.sleeper.id().to_string(),
                |c, r| {
                    r.escaped()?;
                    let l = limits_core(&c.sleeper.id().to_string());
                    l.contains("4242").then_some(None).ok_or(format!("limits unchanged: {l}"))
                },
            ),
            strict: ("violation", "prlimit64("),
            default: ("violation", "prlimit64("),
            effect: |_, _| {
                let l = limits_core("self");
                (!l.contains("4242")).then_some(()).ok_or(format!("the host's limit changed: {l}"))
            },
        },
        Attack {
            bin: "hostile-userns-mount",
            layer: "seccomp (unshare is in @namespace; clone namespace flags refused)",
            input: |c| c.path("mnt").display().to_string(),
            strict: ("violation", "unshare("),
            default: ("violation", "unshare("),
            effect: |c, _| (!mountinfo_has(&c.path("mnt"))).then_some(()).ok_or("a mount appeared".into()),
            ..BASE
        },
        Attack {
            bin: "hostile-chroot-escape",
            layer: "seccomp (chroot is in @mount); capabilities (CAP_SYS_CHROOT dropped)",
            input: |c| format!("{}\n{}", c.path("jail").display(), c.secret.display()),
            bare: Bare::Same(escaped_with_secret),
            strict: ("violation", "chroot("),
            default: ("violation", "chroot("),
            ..BASE
        },
        Attack {
            bin: "hostile-keyctl",
            layer: "seccomp (@keyring)",
            strict: ("violation", "keyctl("),
            default: ("violation", "keyctl("),
            ..BASE
        },
        Attack {
            bin: "hostile-bpf",
            layer: "seccomp (bpf is in @privileged)",
            strict: ("violation", "bpf("),
            default: ("violation", "bpf("),
            ..BASE
        },
        Attack {
            bin: "hostile-perf-event",
            layer: "seccomp (perf_event_open is in @debug)",
            strict: ("violation", "perf_event_open("),
            default: ("violation", "perf_event_open("),
            ..BASE
        },
        Attack {
            bin: "hostile-io-uring",
            layer: "seccomp (@io-uring)",
            strict: ("violation", "io_uring_setup("),
            default: ("violation", "io_uring_setup("),
            ..BASE
        },
        Attack {
            bin: "hostile-userfaultfd",
            layer: "seccomp (userfaultfd is in no allowed group)",
            strict: ("violation", "userfaultfd("),
            default: ("violation", "userfaultfd("),
            ..BASE
        },
        Attack {
            bin: "hostile-personality",
            layer: "seccomp (personality is in no allowed group)",
            strict: ("violation", "personality("),
            default: ("violation", "personality("),
            ..BASE
        },
        Attack {
            bin: "hostile-seccomp-listener",
            layer: "seccomp (a plugin's own filters must use flags 0)",
            strict: ("violation", "seccomp("),
            default: ("violation", "seccomp("),
            ..BASE
        },
        Attack {
            bin: "hostile-x32-syscall",
            layer: "seccomp (exact syscall numbers: x32 numbers match no rule)",
            bare: Bare::Same(|_, r| match &r.reply {
                Some(Err(e)) if e.contains("ENOSYS") => {
                    Ok(Some("the unsandboxed half: this kernel is built without CONFIG_X86_X32_ABI".into()))
                }
                _ => r.escaped().map(|_| None),
            }),
            strict: ("violation", "x32 ABI"),
            default: ("violation", "x32 ABI"),
            ..BASE
        },
        Attack {
            bin: "hostile-int80",
            layer: "seccomp (architecture check: i386 calls go to the host, which names them)",
            bare: Bare::Same(|_, r| match &r.reply {
                Some(Err(e)) if e.contains("ENOSYS") => {
                    Ok(Some("the unsandboxed half: this kernel has no 32-bit emulation".into()))
                }
                _ => r.escaped().map(|_| None),
            }),
            strict: ("violation", "i386 syscall 359 (socket) through int 0x80"),
            default: ("violation", "i386 syscall 359 (socket) through int 0x80"),
            ..BASE
        },
        Attack {
            bin: "hostile-tiocsti",
            layer: "seccomp (ioctl request allowlist); new session without a terminal",
            bare: Bare::Skip("it would push keystrokes into the terminal running the tests"),
            strict: ("violation", "ioctl(0, TIOCSTI, 0x"),
            default: ("violation", "ioctl(0, TIOCSTI, 0x"),
            ..BASE
        },
        Attack {
            bin: "hostile-tioclinux",
            layer: "seccomp (ioctl request allowlist); new session without a terminal",
            bare: Bare::Skip("it would paste into the console running the tests"),
            strict: ("violation", "ioctl(0, TIOCLINUX, 0x"),
            default: ("violation", "ioctl(0, TIOCLINUX, 0x"),
            ..BASE
        },
        // ---- resources ----
        Attack {
            bin: "hostile-memory-bomb",
            layer: "memory limit (cgroup memory.max, RLIMIT_AS where no cgroup)",
            input: |_| "4096".into(),
            bare: Bare::With(|_| "64".into(), |_, r| {
                let out = r.escaped()?;
                out.contains("holds 64 MiB").then_some(None).ok_or(out.to_string())
            }),
            strict: ("memory", "limit reached"),
            default: ("memory", "limit reached"),
            ..BASE
        },
        Attack {
            bin: "hostile-cpu-spin",
            layer: "host wall-clock deadline (RLIMIT_CPU and the CPU budget as backstops)",
            bare: Bare::Same(still_running),
            strict: wall,
            default: wall,
            ..BASE
        },
        Attack {
            bin: "hostile-fsize-bomb",
            layer: "mount namespace (only a private /tmp exists: read-only under strict, 64MiB under default, so ENOSPC); Landlock; RLIMIT_FSIZE",
            input: |c| format!("1024\n{}\n{}", c.dir.path().display(), BOMB_DIRS.join("\n")),
            bare: Bare::With(|c| format!("16\n{}", c.dir.path().display()), |c, r| {
                let out = r.escaped()?.to_string();
                let found = bombs(c);
                let big = found.iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == 16 << 20));
                found.iter().for_each(|p| drop(std::fs::remove_file(p)));
                big.then_some(None).ok_or(out)
            }),
            strict: eacces,
            default: ("plugin_error", "ENOSPC"),
            effect: |c, _| {
                let found = bombs(c);
                found.iter().for_each(|p| drop(std::fs::remove_file(p)));
                found.is_empty().then_some(()).ok_or(format!("bomb files: {found:?}"))
            },
        },
        Attack {
            bin: "hostile-stdout-flood",
            layer: "host output limit (bounded buffering); the wall deadline when the limit takes longer to reach",
            bare: Bare::Same(|_, r| {
                (r.stdout_total > 16 << 20).then_some(None).ok_or(format!("only {} bytes", r.stdout_total))
            }),
            // Which comes first depends on the machine's speed: 64 MiB
            // (strict) or 256 MiB (default) of output, or the 2 s deadline.
            strict: ("output_limit|timeout", "output exceeds|wall"),
            default: ("output_limit|timeout", "output exceeds|wall"),
            ..BASE
        },
        Attack {
            bin: "hostile-stderr-flood",
            layer: "host (stderr drained into a bounded tail) and wall deadline",
            bare: Bare::Same(|_, r| {
                (r.stderr_total > 16 << 20).then_some(None).ok_or(format!("only {} bytes", r.stderr_total))
            }),
            strict: wall,
            default: wall,
            effect: |_, o| {
                (o.stderr_tail.len() <= 4096).then_some(()).ok_or(format!("stderr tail of {} bytes", o.stderr_tail.len()))
            },
            ..BASE
        },
        Attack {
            bin: "hostile-close-stdout",
            layer: "host protocol (EOF on stdout ends the job, the process is killed)",
            bare: Bare::Same(|_, r| match (r.stdout_eof, r.state_at_deadline) {
                (true, Some(_)) => Ok(None),
                other => Err(format!("stdout EOF and still running expected: {other:?}")),
            }),
            strict: ("protocol_error", "closed stdout before answering"),
            default: ("protocol_error", "closed stdout before answering"),
            ..BASE
        },
        Attack {
            bin: "hostile-close-stdout-early",
            layer: "host protocol check, or by a known race the wall deadline",
            bare: Bare::Same(|_, r| match (r.stdout_eof, r.state_at_deadline) {
                (true, Some(_)) => Ok(None),
                other => Err(format!("stdout EOF and still running expected: {other:?}")),
            }),
            // The hello and the end of stdout may arrive in one read: the
            // job must still see the closed stdout at once.
            strict: ("protocol_error", "closed stdout before answering"),
            default: ("protocol_error", "closed stdout before answering"),
            ..BASE
        },
        // ---- protocol ----
        Attack {
            bin: "hostile-huge-length",
            layer: "host frame decoder (length checked before buffering)",
            bare: Bare::Same(|_, r| {
                let h = protocol::encode_header(Kind::Done, 1, u32::MAX);
                r.stdout.starts_with(&h).then_some(None).ok_or("no 4 GiB header".into())
            }),
            strict: ("protocol_error", "frame of 4294967295 bytes exceeds the limit"),
            default: ("protocol_error", "frame of 4294967295 bytes exceeds the limit"),
            ..BASE
        },
        Attack {
            bin: "hostile-random-bytes",
            layer: "host frame decoder",
            bare: Bare::Same(|_, r| {
                (r.stdout.len() == 64 << 10).then_some(None).ok_or(format!("{} bytes", r.stdout.len()))
            }),
            strict: ("protocol_error", "bad frame magic"),
            default: ("protocol_error", "bad frame magic"),
            ..BASE
        },
        Attack {
            bin: "hostile-frame-then-garbage",
            layer: "host protocol (nothing may follow an answer)",
            bare: Bare::Same(|_, r| {
                let s = String::from_utf8_lossy(&r.stdout).into_owned();
                (r.reply.is_some() && s.contains("garbage that pretends")).then_some(None).ok_or(s)
            }),
            strict: ("protocol_error", ""),
            default: ("protocol_error", ""),
            ..BASE
        },
        Attack {
            bin: "hostile-wrong-id",
            layer: "host protocol (answers are matched to the job in flight)",
            bare: Bare::Same(|_, r| {
                let f = protocol::encode_header(Kind::Done, 999_999, 36);
                r.stdout.starts_with(&f).then_some(None).ok_or("no frame for job 999999".into())
            }),
            strict: ("protocol_error", "answered job 999999 which was never sent"),
            default: ("protocol_error", "answered job 999999 which was never sent"),
            ..BASE
        },
        Attack {
            bin: "hostile-endless-reply",
            layer: "host wall deadline; decoder buffers only bytes that arrived",
            bare: Bare::Same(still_running),
            strict: wall,
            default: wall,
            ..BASE
        },
        Attack {
            bin: "hostile-silence",
            layer: "host wall deadline",
            bare: Bare::Same(still_running),
            strict: wall,
            default: wall,
            ..BASE
        },
    ]
}

fn dummy_outcome() -> JobOutcome {
    JobOutcome::failed(plugwarden::Verdict::Ok)
}

/// fds, threads and RSS (KiB) of this process.
fn host_usage() -> (usize, usize, u64) {
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        let v = status.lines().find_map(|l| l.strip_prefix(name)).unwrap();
        v.trim().trim_end_matches(" kB").trim().parse().unwrap()
    };
    (fds, field("Threads:") as usize, field("VmRSS:"))
}

/// Children of `pid` (all its threads).
fn children_of(pid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    out
}

fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rfind(')').and_then(|i| stat[i + 2..].chars().next())
}

/// Live processes whose argv[0] names a hostile plugin.
/// Only this process's descendants and orphans (reparented to init) count,
/// so a hostile suite run by someone else at the same time is not blamed.
fn hostile_processes(names: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        if !descends_from_me_or_orphan(pid) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let argv0 =
            String::from_utf8_lossy(cmdline.split(|&b| b == 0).next().unwrap_or(&[])).into_owned();
        let base = argv0.rsplit('/').next().unwrap_or("");
        if names.contains(&base) {
            found.push(format!("{name} {argv0}"));
        }
    }
    found
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rfind(')')
        .and_then(|i| stat[i + 2..].split(' ').nth(1))
        .and_then(|p| p.parse().ok())
}

fn descends_from_me_or_orphan(pid: i32) -> bool {
    let me = std::process::id() as i32;
    let mut p = pid;
    for depth in 0..64 {
        match parent_of(p) {
            Some(pp) if pp == me => return true,
            Some(1) => return depth == 0,
            Some(pp) if pp > 1 => p = pp,
            _ => return false,
        }
    }
    false
}

/// Waits up to 1 s for the fork server to have no child left.
fn fork_server_children(fs_pid: u32) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let c = children_of(fs_pid);
        if c.is_empty() || Instant::now() >= deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Everything that must hold after any sandboxed run.
fn contained(ctx: &Ctx, o: &JobOutcome) -> Result<(), String> {
    let text = format!(
        "{}\n{}\n{}",
        o.verdict,
        String::from_utf8_lossy(&o.output),
        o.stderr_tail
    );
    for (what, needle) in [
        ("ESCAPED", "ESCAPED".to_string()),
        ("the file secret", ctx.secret_text.clone()),
        ("the memory secret", ctx.mem_secret_text()),
    ] {
        if text.contains(&needle) {
            return Err(format!("{what} reached the host's output: {text:?}"));
        }
    }
    if o.wall > WALL + Duration::from_millis(1500) {
        return Err(format!("the job took {:?}", o.wall));
    }
    let hits = ctx.listener_hits();
    if !hits.is_empty() {
        return Err(format!("a listener was reached: {hits:?}"));
    }
    if Path::new(&format!("/proc/{}", o.pid)).exists() && o.pid > 0 {
        return Err(format!("worker {} is still alive", o.pid));
    }
    let left = fork_server_children(ctx.fs_pid);
    if !left.is_empty() {
        return Err(format!("processes left under the fork server: {left:?}"));
    }
    // Alive is anything but gone or a zombie: on a loaded machine the fork
    // server may be caught in uninterruptible sleep (D) mid cgroup write.
    let state = state_of(ctx.fs_pid as i32);
    if matches!(state, None | Some('Z' | 'X')) {
        return Err(format!("the fork server is gone (state {state:?})"));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    if !status.contains("TracerPid:\t0\n") {
        return Err("the host is being traced".into());
    }
    if !Path::new(&ctx.secret).exists() {
        return Err("the secret is gone".into());
    }
    Ok(())
}

/// Runs one job of `attack` under `policy` in a fresh worker.
fn run_sandboxed(
    fs: &Arc<ForkServer>,
    exe: &Path,
    policy: &str,
    input: &str,
) -> Result<JobOutcome, String> {
    let mut p = plugwarden::policy::load(policy).map_err(|e| e.to_string())?;
    p.limits.wall = WALL;
    let spec = PluginSpec {
        exe: exe.to_path_buf(),
        args: Vec::new(),
        mode: Mode::Worker,
        env: Vec::new(),
        cwd: None,
    };
    let sb =
        Sandbox::new(fs.clone(), spec, Arc::new(p), Enforce::Policy).map_err(|e| e.to_string())?;
    let mut w = Worker::start(&sb).map_err(|e| e.to_string())?;
    let o = w.run_job(input.as_bytes());
    w.shutdown();
    Ok(o)
}

/// (a) Runs `a` without the sandbox and checks it works; `Err` if it does not.
fn check_unsandboxed(ctx: &Ctx, a: &Attack, exe: &Path, pids: &mut Vec<i32>) -> Result<(), String> {
    let (run, check) = match &a.bare {
        Bare::Skip(why) => {
            println!("{}: not run unsandboxed: {why}", a.bin);
            return Ok(());
        }
        Bare::Same(check) => (run_bare(ctx, exe, &(a.input)(ctx), false, pids), check),
        Bare::With(input, check) => (run_bare(ctx, exe, &input(ctx), false, pids), check),
        Bare::Leaky(check) => (run_bare(ctx, exe, &(a.input)(ctx), true, pids), check),
    };
    let result = check(ctx, &run);
    ctx.restore_victim();
    let _ = ctx.listener_hits();
    match result {
        Ok(None) => println!("{}: works unsandboxed", a.bin),
        Ok(Some(reason)) => println!("{}: not applicable: {reason}", a.bin),
        // The root run proves these work; as an ordinary user the
        // privileged ones fail even unsandboxed. The sandboxed half runs.
        Err(e) if !is_root() => println!(
            "{}: not applicable as uid {}: the unsandboxed half needs root ({e})",
            a.bin,
            nix::unistd::geteuid()
        ),
        Err(e) => return Err(format!("{}: unsandboxed: {e}", a.bin)),
    }
    Ok(())
}

/// (b) Runs `a` under one policy; returns the verdict shown and any failures.
fn check_sandboxed(
    fs: &Arc<ForkServer>,
    ctx: &Ctx,
    a: &Attack,
    exe: &Path,
    policy: &str,
    (word, detail): (&str, &str),
    pids: &mut Vec<i32>,
) -> (String, Vec<String>) {
    let o = match run_sandboxed(fs, exe, policy, &(a.input)(ctx)) {
        Ok(o) => o,
        Err(e) => {
            return (
                String::new(),
                vec![format!("{} under {policy}: cannot run: {e}", a.bin)],
            )
        }
    };
    pids.push(o.pid);
    let mut failures = Vec::new();
    let word_ok = word.split('|').any(|w| o.verdict.word() == w);
    let detail_ok = detail.split('|').any(|d| o.verdict.detail().contains(d));
    if !word_ok || !detail_ok {
        failures.push(format!(
            "{} under {policy}: verdict {:?}, expected {word} with {detail:?} (stderr: {})",
            a.bin,
            o.verdict.to_string(),
            o.stderr_tail.chars().take(300).collect::<String>()
        ));
    }
    if let Err(e) = contained(ctx, &o).and_then(|()| (a.effect)(ctx, &o)) {
        failures.push(format!("{} under {policy}: ESCAPED or leaked: {e}", a.bin));
    }
    ctx.restore_victim();
    (o.verdict.to_string(), failures)
}

/// Item 2: after the suite, the host is as it was and nothing is left.
fn check_host_survived(before: (usize, usize, u64), fs_pid: u32, pids: &[i32]) -> Vec<String> {
    let mut failures = Vec::new();
    // The floods made the host hold up to a job's output limit at a time;
    // glibc keeps freed arena memory for reuse. Hand it back first, so that
    // what remains is what the host still holds (a leak), not a cache.
    // SAFETY: malloc_trim only releases free memory of this process's heap.
    unsafe { libc::malloc_trim(0) };
    let after = host_usage();
    println!("host before: {before:?} (fds, threads, RSS KiB), after: {after:?}");
    if after.0 != before.0 {
        failures.push(format!(
            "host fd count changed: {} -> {}",
            before.0, after.0
        ));
    }
    if after.1 != before.1 {
        failures.push(format!(
            "host thread count changed: {} -> {}",
            before.1, after.1
        ));
    }
    if after.2 > before.2 + 32 * 1024 {
        failures.push(format!(
            "host RSS grew: {} KiB -> {} KiB",
            before.2, after.2
        ));
    }
    for child in children_of(std::process::id()) {
        if child as u32 != fs_pid {
            failures.push(format!(
                "the host has a child {child} (state {:?})",
                state_of(child)
            ));
        }
    }
    if !fork_server_children(fs_pid).is_empty() {
        failures.push(format!(
            "the fork server has children: {:?}",
            children_of(fs_pid)
        ));
    }
    // Killed processes are gone within a moment; on a loaded machine the
    // last one may still be on its way out (or a zombie about to be reaped)
    // when the suite ends, so give them a second before blaming anyone.
    let alive = |pids: &[i32]| -> Vec<(i32, Option<char>)> {
        pids.iter()
            .copied()
            .filter(|p| *p > 0)
            .filter_map(|p| state_of(p).map(|s| (p, Some(s))))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(1);
    while !alive(pids).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = alive(pids);
    if !left.is_empty() {
        failures.push(format!(
            "processes started by the suite are alive (pid, state): {left:?}"
        ));
    }
    let names: Vec<&str> = attacks().iter().map(|a| a.bin).collect();
    let stray = hostile_processes(&names);
    if !stray.is_empty() {
        failures.push(format!("hostile processes still running: {stray:?}"));
    }
    failures
}

/// The suite checks that the host has no stray child or hostile process:
/// its two runs (as root, as uid 65534 in a child) must not overlap.
static ONE_SUITE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn test_hostile_suite_every_attack_is_contained_and_host_survives() {
    let _one = ONE_SUITE_AT_A_TIME
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    println!(
        "host: uid {}, Landlock ABI {}",
        nix::unistd::geteuid(),
        plugwarden::kernel::kernel().landlock_abi
    );
    let fs = Arc::new(ForkServer::start(&plugwarden()).unwrap());
    let fs_pid = fs.pid();
    let mut ctx = Ctx::new(fs_pid);
    check_harness_sees_a_granted_read(&fs, &ctx).unwrap();
    let before = host_usage();
    let (mut failures, mut pids, mut table) = (Vec::new(), Vec::new(), Vec::new());
    let (mut tried, mut held) = (0, 0);
    let started = Instant::now();
    for a in attacks() {
        if cfg!(not(target_arch = "x86_64"))
            && matches!(a.bin, "hostile-x32-syscall" | "hostile-int80")
        {
            println!(
                "not applicable: {}: the attack exists only on x86_64",
                a.bin
            );
            continue;
        }
        let exe = plugin(a.bin);
        failures.extend(check_unsandboxed(&ctx, &a, &exe, &mut pids).err());
        tried += 1;
        let (strict, mut failed) =
            check_sandboxed(&fs, &ctx, &a, &exe, "strict", a.strict, &mut pids);
        let (default, more) = check_sandboxed(&fs, &ctx, &a, &exe, "default", a.default, &mut pids);
        failed.extend(more);
        held += usize::from(failed.is_empty());
        failures.extend(failed);
        table.push(format!(
            "| {} | {} | {strict} | {default} |",
            a.bin, a.layer
        ));
    }
    println!("\n| attack | layer that stops it | strict | default |\n|---|---|---|---|");
    for row in &table {
        println!("{row}");
    }
    println!("suite ran in {:?}", started.elapsed());
    let _ = ctx.sleeper.kill();
    let _ = ctx.sleeper.wait();
    pids.push(ctx.sleeper.id() as i32);
    failures.extend(check_host_survived(before, fs_pid, &pids));
    println!("hostile suite: {tried} attacks tried, {held} contained");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(held, tried);
}

/// The whole suite again with the host as uid 65534: this test binary,
/// plugwarden and the attacks are copied into a world-readable directory
/// and the suite above runs there as an ordinary user (no identity drop,
/// no cgroup here: the walls doctor names for a non-root host).
#[test]
fn test_hostile_suite_as_uid_65534() {
    if !is_root() {
        println!(
            "not applicable: switching to uid 65534 needs root; the suite above already runs as uid {}",
            nix::unistd::geteuid()
        );
        return;
    }
    let _one = ONE_SUITE_AT_A_TIME
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let names: Vec<&str> = attacks().iter().map(|a| a.bin).collect();
    let (dir, test_bin) = stage_binaries(&names);
    let o = Command::new(&test_bin)
        .args([
            "--exact",
            "test_hostile_suite_every_attack_is_contained_and_host_survives",
            "--nocapture",
        ])
        .env(BIN_DIR, dir.path())
        .current_dir(dir.path())
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    println!(
        "{out}
{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "the suite failed as uid 65534");
    assert!(out.contains("host: uid 65534"), "{out}");
    let tally = out
        .lines()
        .find(|l| l.starts_with("hostile suite: "))
        .expect("the suite's tally");
    let tried = tally.split(' ').nth(2).unwrap();
    assert_eq!(
        tally,
        format!("hostile suite: {tried} attacks tried, {tried} contained")
    );
}

/// The negative control: the same harness, given a policy that grants the
/// secret's directory, must see the secret leak. A suite that could not
/// notice an escape would prove nothing. (The directory is under the target
/// directory: the minimal root mounts a private /tmp over any grant there.)
fn check_harness_sees_a_granted_read(fs: &Arc<ForkServer>, ctx: &Ctx) -> Result<(), String> {
    // Staged as another user, the target directory may be out of reach:
    // the temporary directory stands in for it.
    let parent = match std::env::var_os(BIN_DIR) {
        Some(_) => std::env::temp_dir(),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    };
    let dir = tempfile::Builder::new()
        .prefix("pw-hostile-")
        .tempdir_in(&parent)
        .unwrap();
    for d in [parent.as_path(), dir.path()] {
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
    }
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, &ctx.secret_text).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let grant = format!(
        "description = \"default plus one directory\"\nextends = \"default\"\n[filesystem]\nread = [\"{}\"]\n",
        dir.path().display()
    );
    let file = policy(dir.path(), "leaky.toml", &grant);
    let exe = plugin("hostile-read-secret");
    let o = run_sandboxed(
        fs,
        &exe,
        file.to_str().unwrap(),
        &secret.display().to_string(),
    )?;
    if o.verdict != plugwarden::Verdict::Ok {
        return Err(format!(
            "negative control: the granted read failed: {}",
            o.verdict
        ));
    }
    match contained(ctx, &o) {
        Err(e) if e.contains("ESCAPED") => Ok(()),
        other => Err(format!(
            "negative control: the harness did not notice the leak: {other:?}"
        )),
    }
}
