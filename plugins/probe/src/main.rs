//! Test probe: each input is a command naming one thing to try
//! (`read:/etc/shadow`, `socket`, `alloc:1024`, ...). The answer says what
//! happened; the integration tests judge by observable effect, not by this
//! plugin's word alone. Runs without the SDK's lockdown so that it meets
//! the host's own walls (Landlock, the host's seccomp filter, rlimits).
//!
//! With the argument `silent`, it never says hello.

use std::io::Write;

fn raw_stdout(bytes: &[u8]) {
    // SAFETY: writes a buffer we own to fd 1.
    unsafe { libc::write(1, bytes.as_ptr().cast(), bytes.len()) };
}

fn last_error() -> String {
    std::io::Error::last_os_error().to_string()
}

fn handle(input: &[u8]) -> Result<Vec<u8>, String> {
    let text = String::from_utf8_lossy(input).to_string();
    let (cmd, arg) = text.split_once(':').unwrap_or((text.as_str(), ""));
    match cmd {
        "echo" => Ok(arg.as_bytes().to_vec()),
        "read" => std::fs::read(arg).map_err(|e| format!("denied: {e}")),
        "write" => std::fs::write(arg, b"pwned")
            .map(|()| b"written".to_vec())
            .map_err(|e| format!("denied: {e}")),
        "exists" => match std::fs::symlink_metadata(arg) {
            Ok(_) => Ok(b"exists".to_vec()),
            Err(e) => Err(format!("missing: {e}")),
        },
        "listdir" => std::fs::read_dir(arg)
            .map(|d| {
                let names: Vec<String> = d
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.join("\n").into_bytes()
            })
            .map_err(|e| format!("denied: {e}")),
        "socket" => {
            // SAFETY: plain syscall with integer arguments.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            if fd < 0 {
                Err(format!("denied: {}", last_error()))
            } else {
                Ok(b"socket created".to_vec())
            }
        }
        "ptrace" => {
            let pid: i32 = arg.parse().map_err(|_| "bad pid")?;
            // SAFETY: plain syscall with integer arguments.
            let rc = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
            if rc < 0 {
                Err(format!("denied: {}", last_error()))
            } else {
                Ok(b"attached".to_vec())
            }
        }
        "kill" => {
            let pid: i32 = arg.parse().map_err(|_| "bad pid")?;
            // SAFETY: plain syscall with integer arguments.
            let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
            if rc < 0 {
                Err(format!("denied: {}", last_error()))
            } else {
                Ok(b"killed".to_vec())
            }
        }
        "status" => std::fs::read("/proc/self/status").map_err(|e| format!("denied: {e}")),
        "readlink" => std::fs::read_link(arg)
            .map(|t| t.to_string_lossy().into_owned().into_bytes())
            .map_err(|e| format!("denied: {e}")),
        "raise" => {
            // Tries to raise each limit above its hard limit, then to lower
            // the soft limit; reports what the kernel answered.
            let mut report = Vec::new();
            for (name, res) in [
                ("cpu", libc::RLIMIT_CPU),
                ("nofile", libc::RLIMIT_NOFILE),
                ("as", libc::RLIMIT_AS),
                ("data", libc::RLIMIT_DATA),
                ("stack", libc::RLIMIT_STACK),
                ("fsize", libc::RLIMIT_FSIZE),
            ] {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                // SAFETY: getrlimit/setrlimit read and write one stack struct.
                unsafe { libc::getrlimit(res, &mut lim) };
                let up = libc::rlimit {
                    rlim_cur: lim.rlim_max.saturating_add(1),
                    rlim_max: lim.rlim_max.saturating_add(1),
                };
                // SAFETY: as above.
                let raised = unsafe { libc::setrlimit(res, &up) } == 0;
                let up_err = last_error();
                let down = libc::rlimit {
                    rlim_cur: lim.rlim_cur / 2,
                    rlim_max: lim.rlim_max,
                };
                // SAFETY: as above.
                let lowered = unsafe { libc::setrlimit(res, &down) } == 0;
                report.push(format!(
                    "{name}: raise {}, lower {}",
                    if raised { "ok".to_string() } else { up_err },
                    if lowered {
                        "ok".to_string()
                    } else {
                        last_error()
                    }
                ));
            }
            Ok(report.join("; ").into_bytes())
        }
        "fds" => std::fs::read_dir("/proc/self/fd")
            .map(|d| {
                let mut names: Vec<String> = d
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                names.join(",").into_bytes()
            })
            .map_err(|e| format!("denied: {e}")),
        "tty" => match std::fs::File::open("/dev/tty") {
            Ok(_) => Ok(b"has a controlling terminal".to_vec()),
            Err(e) => Err(format!("no tty: {e}")),
        },
        "sid" => {
            // SAFETY: getsid/getpid have no memory effects.
            let (sid, pid) = unsafe { (libc::getsid(0), libc::getpid()) };
            Ok(format!("sid={sid} pid={pid}").into_bytes())
        }
        "alloc" => {
            let mib: usize = arg.parse().map_err(|_| "bad size")?;
            let n = mib << 20;
            let mut v: Vec<u8> = Vec::with_capacity(n);
            // SAFETY: memset over the capacity just reserved (fast even in a
            // debug build), then the length covers initialised bytes.
            unsafe {
                std::ptr::write_bytes(v.as_mut_ptr(), 1, n);
                v.set_len(n);
            }
            Ok(format!("allocated {}", v.len()).into_bytes())
        }
        "spin" => loop {
            std::hint::black_box(0u64);
        },
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(Vec::new())
        }
        "stubborn" => {
            // Ignores SIGTERM (and SIGINT), then sleeps: only SIGKILL ends it.
            // SAFETY: SIG_IGN installs no handler code.
            unsafe {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                libc::signal(libc::SIGINT, libc::SIG_IGN);
            }
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(Vec::new())
        }
        "stderr" => {
            // ARG MiB to stderr (a flood the host must bound), then a forged
            // verdict line and escape sequences, then an answer.
            let mib: usize = arg.parse().map_err(|_| "bad size")?;
            let junk = vec![b'x'; 1 << 20];
            let mut err = std::io::stderr();
            for _ in 0..mib {
                let _ = err.write_all(&junk);
            }
            let _ = err.write_all(b"\n\x1b]0;pwned\x07\x1b[2J\nok      /etc/shadow");
            Ok(b"flooded".to_vec())
        }
        "nap" => {
            let ms: u64 = arg.parse().map_err(|_| "bad duration")?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok(format!("napped {ms}").into_bytes())
        }
        "crash" => {
            // SAFETY: not safe at all: a read through a null pointer is the
            // point of this command (a real SIGSEGV, not a raised one).
            let v =
                unsafe { std::ptr::read_volatile(std::hint::black_box(std::ptr::null::<u8>())) };
            Ok(vec![v])
        }
        "exit" => std::process::exit(3),
        "garbage" => {
            raw_stdout(b"this is not a plugwarden frame at all, just garbage bytes");
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(Vec::new())
        }
        "hugelen" => {
            let h = plugwarden_sdk::protocol::encode_header(
                plugwarden_sdk::protocol::Kind::Done,
                1,
                u32::MAX,
            );
            raw_stdout(&h);
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(Vec::new())
        }
        "wrongid" => {
            let mut f = Vec::new();
            plugwarden_sdk::protocol::encode_frame(
                &mut f,
                plugwarden_sdk::protocol::Kind::Done,
                999_999,
                b"x",
            );
            raw_stdout(&f);
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(Vec::new())
        }
        "flood" => {
            let junk = vec![b'x'; 1 << 16];
            let mut err = std::io::stderr();
            for _ in 0..512 {
                let _ = err.write_all(&junk);
            }
            Ok(b"flooded".to_vec())
        }
        "forkbomb" => {
            // Forks sleeping children until refused; reports how many it got.
            let mut n = 0;
            while n < 1000 {
                // SAFETY: the child only sleeps and exits (raw syscalls).
                match unsafe { libc::fork() } {
                    // SAFETY: the forked child only sleeps and exits.
                    0 => unsafe {
                        libc::sleep(30);
                        libc::_exit(0)
                    },
                    -1 => return Ok(format!("forked {n} then {}", last_error()).into_bytes()),
                    _ => n += 1,
                }
            }
            Ok(format!("forked {n}").into_bytes())
        }
        "daemon" => {
            // Double fork + setsid; the grandchild reports its pid through a
            // pipe and then tries to outlive the job.
            let mut fds = [0i32; 2];
            // SAFETY: pipe writes two fds into our array.
            unsafe { libc::pipe(fds.as_mut_ptr()) };
            // SAFETY: fork; the children make raw syscalls only.
            if unsafe { libc::fork() } == 0 {
                // SAFETY: raw syscalls only in the forked children.
                unsafe {
                    libc::setsid();
                    if libc::fork() == 0 {
                        let pid = libc::getpid().to_ne_bytes();
                        libc::write(fds[1], pid.as_ptr().cast(), 4);
                        loop {
                            libc::sleep(60);
                        }
                    }
                    libc::_exit(0);
                }
            }
            let mut pid = [0u8; 4];
            // SAFETY: reads 4 bytes into our buffer.
            unsafe { libc::read(fds[0], pid.as_mut_ptr().cast(), 4) };
            Ok(i32::from_ne_bytes(pid).to_string().into_bytes())
        }
        "connect" => {
            let port: u16 = arg.parse().map_err(|_| "bad port")?;
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(_) => Ok(b"connected".to_vec()),
                Err(e) => Err(format!("denied: {e}")),
            }
        }
        "fail" => Err(format!("refused: {arg}")),
        other => Err(format!("unknown probe command {other:?}")),
    }
}

fn main() {
    if std::env::args().any(|a| a == "silent") {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
    plugwarden_sdk::serve_without_lockdown(handle);
}
