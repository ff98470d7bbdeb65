//! The minimal root: a fresh tmpfs (or the host's tree) with what the
//! policy grants, pivoted into, or a copy of a template built once.

use std::ffi::{c_char, CStr, CString};
use std::os::fd::RawFd;

use super::{check, errno, Stage};

/// One step of building the minimal root. Destinations are relative to
/// the new root (the child stands in it when they run); bind sources are
/// host paths.
pub enum RootOp {
    Mkdir(CString),
    /// Creates an empty file to bind a file onto.
    Touch(CString),
    /// Read-only (or read-write) recursive bind mount.
    /// `flags` are the remount flags: MS_RDONLY unless writable, MS_NOSUID,
    /// MS_NODEV except for device nodes, plus the source mount's own flags
    /// (inside a user namespace they are locked and dropping one fails).
    Bind {
        src: CString,
        dst: CString,
        flags: libc::c_ulong,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    /// Per child: a fresh, bounded, noexec tmpfs (the private /tmp).
    Tmpfs {
        dst: CString,
        opts: CString,
    },
    /// Per child: a /proc of the child's PID namespace.
    Proc(CString),
}

impl RootOp {
    /// Whether every child needs its own (not part of a template).
    pub fn per_child(&self) -> bool {
        matches!(self, RootOp::Tmpfs { .. } | RootOp::Proc(_))
    }
}

/// A minimal root: a fresh tmpfs with read-only binds of what the policy
/// grants and what loading the executable needs, a bounded private /tmp, a
/// /proc of the plugin's PID namespace and a minimal /dev.
pub struct RootPlan {
    /// An empty host directory the tmpfs is mounted on (in the child's
    /// own mount namespace only).
    pub mountpoint: CString,
    pub opts: CString,
    /// The policy grants `/`: the root is the host's whole tree bound
    /// (every mount below it read-only, unless `/` is granted for writing:
    /// `Some(true)`) instead of a tmpfs; the ops then only mount the private
    /// /tmp and /proc over the host's.
    pub host_root: Option<bool>,
    pub ops: Vec<RootOp>,
    /// A mount namespace holding this root already built (everything but
    /// the per-child ops), or -1. The child joins a copy of it instead of
    /// building the root: a handful of syscalls instead of dozens.
    pub template: RawFd,
}

fn mount(
    src: *const c_char,
    dst: &CStr,
    fstype: *const c_char,
    flags: libc::c_ulong,
    data: *const c_char,
) -> Result<(), (Stage, i32)> {
    // SAFETY: every pointer is NULL or a NUL-terminated string that outlives the call.
    let rc = unsafe { libc::mount(src, dst.as_ptr(), fstype, flags, data.cast()) };
    check(Stage::Mount, rc as libc::c_long)
}

fn chdir(path: &CStr) -> Result<(), (Stage, i32)> {
    // SAFETY: path is NUL-terminated.
    check(Stage::Mount, unsafe { libc::chdir(path.as_ptr()) }
        as libc::c_long)
}

pub(super) fn enter_root(r: &RootPlan) -> Result<(), (Stage, i32)> {
    if r.template >= 0 {
        // A private copy of the template (its mounts are private already),
        // then what is each child's own.
        // SAFETY: setns takes an fd and flags.
        let rc = unsafe { libc::setns(r.template, libc::CLONE_NEWNS) };
        check(Stage::Mount, rc as libc::c_long)?;
        // SAFETY: unshare takes flags only.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
        check(Stage::Mount, rc as libc::c_long)?;
        chdir(c"/")?;
        for op in r.ops.iter().filter(|op| op.per_child()) {
            apply(op)?;
        }
        return Ok(());
    }
    build_root(r, true)
}

/// Builds the root in a new mount namespace and pivots into it; with
/// `per_child` false, leaves out the per-child ops (a template).
pub fn build_root(r: &RootPlan, per_child: bool) -> Result<(), (Stage, i32)> {
    let null = std::ptr::null();
    // SAFETY: unshare takes flags only.
    check(Stage::Mount, unsafe { libc::unshare(libc::CLONE_NEWNS) }
        as libc::c_long)?;
    // Nothing we mount may propagate back to the host.
    mount(null, c"/", null, libc::MS_REC | libc::MS_PRIVATE, null)?;
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
    if let Some(writable) = r.host_root {
        bind_tree(c"/", &r.mountpoint, writable)?;
        chdir(&r.mountpoint)?;
    } else {
        mount(
            c"tmpfs".as_ptr(),
            &r.mountpoint,
            c"tmpfs".as_ptr(),
            nosuid,
            r.opts.as_ptr(),
        )?;
        chdir(&r.mountpoint)?;
    }
    for op in r.ops.iter().filter(|op| per_child || !op.per_child()) {
        apply(op)?;
    }
    if r.host_root.is_none() {
        // The root itself becomes read-only, then we move into it and
        // detach the old root (pivot_root(".", ".") as runc does).
        mount(
            null,
            &r.mountpoint,
            null,
            libc::MS_REMOUNT | libc::MS_RDONLY | nosuid,
            null,
        )?;
    }
    // SAFETY: pivot_root/umount2 take NUL-terminated paths.
    unsafe {
        check(
            Stage::Mount,
            libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()),
        )?;
        check(
            Stage::Mount,
            libc::umount2(c".".as_ptr(), libc::MNT_DETACH) as libc::c_long,
        )?;
    }
    chdir(c"/")
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Binds `src` and every mount below it on `dst`, all nosuid and, unless
/// `writable`, read-only (one `mount_setattr` for the whole tree).
fn bind_tree(src: &CStr, dst: &CStr, writable: bool) -> Result<(), (Stage, i32)> {
    let null = std::ptr::null();
    mount(src.as_ptr(), dst, null, libc::MS_BIND | libc::MS_REC, null)?;
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NOSUID: u64 = 0x2;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_NOSUID | if writable { 0 } else { MOUNT_ATTR_RDONLY },
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the kernel reads one mount_attr from our stack and a
    // NUL-terminated path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            dst.as_ptr(),
            0x8000u32, // AT_RECURSIVE
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(Stage::Mount, rc)
}

fn apply(op: &RootOp) -> Result<(), (Stage, i32)> {
    let null = std::ptr::null();
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
    match op {
        RootOp::Mkdir(p) => {
            // SAFETY: p is a NUL-terminated path.
            if unsafe { libc::mkdir(p.as_ptr(), 0o755) } != 0 && errno() != libc::EEXIST {
                return Err((Stage::Mount, errno()));
            }
        }
        RootOp::Touch(p) => {
            // SAFETY: p is a NUL-terminated path; the fd is closed at once.
            let fd = unsafe {
                libc::open(
                    p.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                )
            };
            check(Stage::Mount, fd as libc::c_long)?;
            // SAFETY: closing the fd just opened.
            unsafe { libc::close(fd) };
        }
        RootOp::Bind { src, dst, flags } => {
            mount(src.as_ptr(), dst, null, libc::MS_BIND | libc::MS_REC, null)?;
            mount(
                null,
                dst,
                null,
                libc::MS_BIND | libc::MS_REMOUNT | flags,
                null,
            )?;
        }
        RootOp::Symlink { target, link } => {
            // SAFETY: both are NUL-terminated paths.
            let rc = unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) };
            check(Stage::Mount, rc as libc::c_long)?;
        }
        RootOp::Tmpfs { dst, opts } => {
            // Nothing written there is ever executed or mapped executable.
            mount(
                c"tmpfs".as_ptr(),
                dst,
                c"tmpfs".as_ptr(),
                nosuid | libc::MS_NOEXEC,
                opts.as_ptr(),
            )?;
        }
        RootOp::Proc(dst) => {
            mount(
                c"proc".as_ptr(),
                dst,
                c"proc".as_ptr(),
                nosuid | libc::MS_NOEXEC,
                null,
            )?;
        }
    }
    Ok(())
}
