//! A stand-in for a plugin process, for the unit tests of the middle
//! floor (worker, pool). The host side is a real [`Process`]: pipes, and
//! the pidfd of a real child process (`sleep`) that stands for the
//! plugin's life; the test drives the other ends of the pipes itself,
//! speaking the wire protocol. Nothing of the kernel is mocked; only the
//! sandbox and the fork server are left out (this process reaps the
//! child).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::time::Instant;

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{set_nonblocking, Process, Reaper};
use crate::arena::Arena;
use crate::protocol::{self, Frame, FrameDecoder, Kind};
use crate::spawn::ExitInfo;

/// The plugin's ends: what the host wrote, and where the plugin answers.
pub(crate) struct Plugin {
    pub pid: i32,
    /// The host's writes (the plugin's stdin).
    pub input: File,
    pub output: File,
    pub stderr: File,
    /// The plugin's own mapping of the arena, when the host made one.
    pub arena: Option<Arena>,
    decoder: FrameDecoder,
    /// Read from the pipe, not decoded yet.
    unread: Vec<u8>,
}

/// A process with fresh pipes whose life is a `sleep` child's; with
/// `arena_region`, an arena of two regions of that size as well.
pub(crate) fn process(arena_region: Option<usize>) -> (Process, Plugin) {
    let flags = OFlag::O_CLOEXEC;
    let (in_r, in_w) = nix::unistd::pipe2(flags).expect("pipe");
    let (out_r, out_w) = nix::unistd::pipe2(flags).expect("pipe");
    let (err_r, err_w) = nix::unistd::pipe2(flags).expect("pipe");
    for fd in [&in_w, &out_r, &err_r] {
        set_nonblocking(fd).expect("O_NONBLOCK");
    }
    let child = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("start sleep(1), the stand-in's life");
    let pid = child.id() as i32;
    // The child is reaped by `reap` (waitpid), not by std.
    drop(child);
    let (arena, plugin_arena) = match arena_region {
        Some(region) => {
            let host = Arena::create(region, false).expect("memfd arena");
            let dup = host.fd().try_clone_to_owned().expect("dup the arena fd");
            let raw = dup.into_raw_fd();
            // SAFETY: `raw` is a fresh fd of our own, handed over to the
            // plugin's mapping, which alone closes it.
            let mine = unsafe { Arena::attach(raw, region) }.expect("map the arena");
            (Some(host), Some(mine))
        }
        None => (None, None),
    };
    let proc = Process {
        pid,
        leader: pid,
        pidfd: pidfd(pid),
        plugin_pidfd: pidfd(pid),
        listener: None,
        stdin: Some(in_w),
        stdout: Some(out_r),
        stderr: Some(err_r),
        exit: None,
        reaper: Reaper::Host,
        started: Instant::now(),
        stat_file: Default::default(),
        statm_file: Default::default(),
        arena,
    };
    let plugin = Plugin {
        pid,
        input: File::from(in_r),
        output: File::from(out_w),
        stderr: File::from(err_w),
        arena: plugin_arena,
        decoder: FrameDecoder::new(64 << 20),
        unread: Vec::new(),
    };
    (proc, plugin)
}

fn pidfd(pid: i32) -> OwnedFd {
    // SAFETY: pidfd_open takes a pid and flags; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Reaps the stand-in (its pidfd is readable).
pub(super) fn reap(pid: i32) -> ExitInfo {
    let mut status = 0;
    // SAFETY: waitpid writes one int into `status`.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    ExitInfo {
        status,
        ..ExitInfo::default()
    }
}

impl Plugin {
    /// The next frame the host sent (blocking); None at EOF.
    pub fn read_frame(&mut self) -> Option<Frame> {
        loop {
            while !self.unread.is_empty() {
                let (used, frame) = self
                    .decoder
                    .push(&self.unread)
                    .expect("the host's frames are valid");
                self.unread.drain(..used);
                if frame.is_some() {
                    return frame;
                }
            }
            let mut buf = vec![0u8; 64 << 10];
            match self.input.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.unread.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Writes one frame to the host.
    pub fn send(&mut self, kind: Kind, flags: u8, id: u64, payload: &[u8]) {
        let mut out = Vec::new();
        protocol::encode_frame_flags(&mut out, kind, flags, id, payload);
        let _ = self.output.write_all(&out);
    }

    /// The plugin's hello, with `flags` (FLAG_ARENA, FLAG_INPUT_PARTS).
    pub fn hello(&mut self, flags: u8) {
        let mut payload = protocol::VERSION.to_le_bytes().to_vec();
        payload.extend_from_slice(b"fake");
        self.send(Kind::Hello, flags, 0, &payload);
    }

    /// Dies: the stand-in is killed and the pipes are closed.
    pub fn die(self) {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
    }
}
