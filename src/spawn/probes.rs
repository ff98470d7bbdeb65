//! What the fork server sets up once: the shared empty network namespace.

use std::os::fd::{AsRawFd, OwnedFd};

use super::server::wait4;

/// Opens a fresh, empty network namespace (only a downed loopback) that
/// every worker joins with `setns`: creating one per spawn would double the
/// spawn time, and an empty namespace holds nothing to share.
pub(super) fn empty_netns() -> Option<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    // SAFETY: single-threaded fork server; the child only makes raw syscalls.
    match unsafe { nix::unistd::fork() }.ok()? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: unshare/read/_exit are raw syscalls on our own state.
            unsafe {
                let ok = libc::unshare(libc::CLONE_NEWNET) == 0;
                drop(w);
                let mut b = [0u8; 1];
                libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), if ok { 1 } else { 0 });
                libc::_exit(if ok { 0 } else { 1 })
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(r);
            // Give the child a moment to unshare; then open its namespace.
            let path = format!("/proc/{}/ns/net", child.as_raw());
            let mine = std::fs::read_link("/proc/self/ns/net").ok();
            let mut fd = None;
            for _ in 0..1000 {
                if std::fs::read_link(&path)
                    .ok()
                    .is_some_and(|l| Some(&l) != mine.as_ref())
                {
                    fd = nix::fcntl::open(
                        path.as_str(),
                        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::empty(),
                    )
                    .ok();
                    break;
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            drop(w);
            let _ = wait4(child.as_raw(), 0);
            fd
        }
    }
}
