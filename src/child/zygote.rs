//! The init as a warm zygote (docs/decisions/zygote.md): between two
//! inputs it ends everything the last one started, checks that nothing
//! of it is left where the next could see it, and takes the next input's
//! stdio from the fork server. Raw syscalls only, like the rest of the
//! road.

use std::os::fd::RawFd;

use super::{check, errno, Stage};

/// The *_INFO commands of shmctl, semctl and msgctl.
const SHM_INFO: i32 = 14;
const SEM_INFO: i32 = 19;
const MSG_INFO: i32 = 12;

/// Ends an input whose plugin has been reaped: kills every other process
/// of the namespace (as PID 1, `kill(-1)` spares only us; a process with
/// SIGKILL pending cannot fork) and reaps them all. Returns whether the
/// next input would find nothing of this one: an empty private `/tmp` and
/// no System V IPC object in the sandbox's IPC namespace (POSIX message
/// queues cannot be counted without a mount: the fork server keeps no
/// zygote for a policy that allows `mq_open`).
pub(super) fn end_input() -> bool {
    // SAFETY: kill and wait4 take integers and null out-pointers.
    unsafe {
        libc::kill(-1, libc::SIGKILL);
        loop {
            let pid = libc::wait4(-1, std::ptr::null_mut(), libc::__WALL, std::ptr::null_mut());
            if pid < 0 && errno() != libc::EINTR {
                break;
            }
        }
    }
    tmp_is_empty() && sysv_is_empty()
}

/// Whether `/tmp` (the sandbox's private tmpfs) holds no entry.
fn tmp_is_empty() -> bool {
    // SAFETY: opens a directory by a static C string.
    let fd = unsafe {
        libc::open(
            c"/tmp".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return false;
    }
    let mut buf = [0u64; 128];
    let mut empty = true;
    'read: loop {
        // SAFETY: getdents64 writes at most `len` bytes into our buffer.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd,
                buf.as_mut_ptr(),
                std::mem::size_of_val(&buf),
            )
        };
        if n < 0 {
            empty = false;
            break;
        }
        if n == 0 {
            break;
        }
        // SAFETY: the kernel wrote `n` bytes of linux_dirent64 records.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
        let mut at = 0;
        while at + 19 < bytes.len() {
            // d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
            let reclen = u16::from_ne_bytes([bytes[at + 16], bytes[at + 17]]) as usize;
            let name = &bytes[at + 19..(at + reclen).min(bytes.len())];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                empty = false;
                break 'read;
            }
            if reclen == 0 {
                break 'read;
            }
            at += reclen;
        }
    }
    // SAFETY: closes the fd opened above.
    unsafe { libc::close(fd) };
    empty
}

/// Whether the IPC namespace holds no System V shared memory segment,
/// semaphore set or message queue.
fn sysv_is_empty() -> bool {
    // Large enough for struct shm_info, seminfo and msginfo.
    let mut buf = [0i32; 32];
    // SAFETY: each *_INFO call writes one small struct into `buf`.
    unsafe {
        let p = buf.as_mut_ptr();
        if libc::syscall(libc::SYS_shmctl, 0, SHM_INFO, p) < 0 || buf[0] != 0 {
            // shm_info.used_ids
            return false;
        }
        if libc::syscall(libc::SYS_semctl, 0, 0, SEM_INFO, p) < 0 || buf[7] != 0 {
            // seminfo.semusz: the sets in use
            return false;
        }
        if libc::syscall(libc::SYS_msgctl, 0, MSG_INFO, p) < 0 || buf[0] != 0 {
            // msginfo.msgpool: the queues in use
            return false;
        }
    }
    true
}

/// Waits for the fork server's next input: one byte with the plugin's
/// stdio (and arena) fds, which become fds 0, 1, 2 (and 3). `Ok(false)`
/// when the fork server closed the socket (this zygote is retired).
pub(super) fn next_input(report: RawFd) -> Result<bool, (Stage, i32)> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // Room for one cmsghdr carrying four fds, 8-byte aligned.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    let n = loop {
        // SAFETY: every pointer in `msg` points to live stack memory.
        let n = unsafe { libc::recvmsg(report, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 || errno() != libc::EINTR {
            break n;
        }
    };
    if n <= 0 {
        return Ok(false);
    }
    let mut fds = [-1; 4];
    let mut count = 0;
    // SAFETY: the kernel filled `control` with well-formed headers; the
    // data of an SCM_RIGHTS header is an array of ints inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            let len = (*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize;
            count = (len / std::mem::size_of::<RawFd>()).min(4);
            std::ptr::copy_nonoverlapping(
                libc::CMSG_DATA(cmsg).cast::<RawFd>(),
                fds.as_mut_ptr(),
                count,
            );
        }
    }
    if !(3..=4).contains(&count) {
        return Err((Stage::Stdio, libc::EBADF));
    }
    // Every fd of ours but the report socket, the exec fd and the ruleset
    // (all above 3) is closed, so the new fds are 0, 1, 2 (3) in order.
    for (target, &fd) in fds[..count].iter().enumerate() {
        let target = target as RawFd;
        // SAFETY: fcntl, dup2 and close on fds of our own table.
        let rc = unsafe {
            if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                let rc = libc::dup2(fd, target);
                libc::close(fd);
                rc
            }
        };
        check(Stage::Stdio, rc as libc::c_long)?;
    }
    Ok(true)
}

/// Moves `fd` above the stdio slots 0-3 (which each input's fds take),
/// close-on-exec; returns its new number.
pub(super) fn above_stdio(fd: RawFd) -> Result<RawFd, (Stage, i32)> {
    if !(0..4).contains(&fd) {
        return Ok(fd);
    }
    // SAFETY: fcntl and close on an fd of our own table.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 4) };
    check(Stage::Fds, new as libc::c_long)?;
    // SAFETY: closes the old number, now duplicated.
    unsafe { libc::close(fd) };
    Ok(new)
}
