//! What this kernel offers, probed once per process, and the switches that
//! make plugwarden behave as on an older kernel.
//!
//! plugwarden runs from Linux 5.15 ([`FLOOR`]) with whatever Landlock ABI
//! (1 to 7) the kernel has. Every feature it uses past the floor, and the
//! few below it that a kernel may still lack, is probed here — never guessed
//! from the version where a probe is cheap — and each has a fallback, a
//! named weakening, or (for the three the supervisor is built on) a
//! refusal naming the feature ([`Feature::without`]).
//!
//! To test those paths on a new kernel, environment variables lower what
//! the probes found (never raise it): `PLUGWARDEN_LANDLOCK_ABI=N`,
//! `PLUGWARDEN_KERNEL=5.10` (the release the floor check reads), one
//! `PLUGWARDEN_NO_<FEATURE>=1` per feature ([`Feature::switch`]) and
//! `PLUGWARDEN_NO_USERNS=1` for the user-namespace probe
//! (`userns_available`). The host passes them on to its fork server, so
//! both see the same kernel.

use std::sync::OnceLock;

/// The oldest kernel plugwarden runs on: Ubuntu 22.04 LTS's.
pub const FLOOR: (u32, u32) = (5, 15);

/// The newest Landlock ABI plugwarden knows (Linux 6.15).
pub const LANDLOCK_NEWEST: u8 = 7;

/// The variable that lowers the Landlock ABI.
pub const LANDLOCK_SWITCH: &str = "PLUGWARDEN_LANDLOCK_ABI";
/// The variable that lowers the kernel release the floor check reads.
pub const RELEASE_SWITCH: &str = "PLUGWARDEN_KERNEL";
/// The variable that makes an ordinary user's host act as if user
/// namespaces were blocked.
pub const USERNS_SWITCH: &str = "PLUGWARDEN_NO_USERNS";

/// A kernel feature probed at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Seccomp user notification (Linux 5.0): violations are named.
    UserNotif,
    /// The notification's CONTINUE flag (Linux 5.5): log and observe modes.
    NotifContinue,
    /// `pidfd_open` (Linux 5.3).
    PidfdOpen,
    /// `PIDFD_GET_INFO` with the exit status (Linux 6.15).
    PidfdInfo,
    /// `CLONE_INTO_CGROUP` (Linux 5.7).
    CloneIntoCgroup,
    /// `close_range` (Linux 5.9).
    CloseRange,
    /// `cgroup.kill` (Linux 5.14).
    CgroupKill,
    /// `MFD_NOEXEC_SEAL` for memfds (Linux 6.3).
    MfdNoexecSeal,
    /// `RLIMIT_NPROC` counted per user namespace (Linux 5.14).
    NprocPerUserns,
}

impl Feature {
    /// Every feature, in probing order.
    pub const ALL: [Feature; 9] = [
        Feature::UserNotif,
        Feature::NotifContinue,
        Feature::PidfdOpen,
        Feature::PidfdInfo,
        Feature::CloneIntoCgroup,
        Feature::CloseRange,
        Feature::CgroupKill,
        Feature::MfdNoexecSeal,
        Feature::NprocPerUserns,
    ];

    /// What it is, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Feature::UserNotif => "seccomp user notification",
            Feature::NotifContinue => "seccomp notification CONTINUE flag",
            Feature::PidfdOpen => "pidfd_open",
            Feature::PidfdInfo => "PIDFD_GET_INFO with PIDFD_INFO_EXIT",
            Feature::CloneIntoCgroup => "CLONE_INTO_CGROUP",
            Feature::CloseRange => "close_range",
            Feature::CgroupKill => "cgroup.kill",
            Feature::MfdNoexecSeal => "MFD_NOEXEC_SEAL",
            Feature::NprocPerUserns => "RLIMIT_NPROC per user namespace",
        }
    }

    /// The Linux release that brought it.
    pub fn since(self) -> (u32, u32) {
        match self {
            Feature::UserNotif => (5, 0),
            Feature::NotifContinue => (5, 5),
            Feature::PidfdOpen => (5, 3),
            Feature::PidfdInfo => (6, 15),
            Feature::CloneIntoCgroup => (5, 7),
            Feature::CloseRange => (5, 9),
            Feature::CgroupKill => (5, 14),
            Feature::MfdNoexecSeal => (6, 3),
            Feature::NprocPerUserns => (5, 14),
        }
    }

    /// The variable that makes plugwarden act as if it were missing.
    pub fn switch(self) -> &'static str {
        match self {
            Feature::UserNotif => "PLUGWARDEN_NO_USER_NOTIF",
            Feature::NotifContinue => "PLUGWARDEN_NO_NOTIF_CONTINUE",
            Feature::PidfdOpen => "PLUGWARDEN_NO_PIDFD_OPEN",
            Feature::PidfdInfo => "PLUGWARDEN_NO_PIDFD_INFO",
            Feature::CloneIntoCgroup => "PLUGWARDEN_NO_CLONE_INTO_CGROUP",
            Feature::CloseRange => "PLUGWARDEN_NO_CLOSE_RANGE",
            Feature::CgroupKill => "PLUGWARDEN_NO_CGROUP_KILL",
            Feature::MfdNoexecSeal => "PLUGWARDEN_NO_MFD_NOEXEC_SEAL",
            Feature::NprocPerUserns => "PLUGWARDEN_NO_NPROC_USERNS",
        }
    }

    /// Sandboxes cannot be built without it: the supervisor names
    /// violations through the listener it takes with these.
    pub fn required(self) -> bool {
        matches!(self, Feature::UserNotif | Feature::PidfdOpen)
    }

    /// What plugwarden does without it.
    pub fn without(self) -> &'static str {
        match self {
            Feature::UserNotif => "refused: the supervisor names every violation through it",
            Feature::NotifContinue => {
                "log-only mode (--enforce log, learn) is refused; enforcing runs are unchanged"
            }
            Feature::PidfdOpen => "refused: workers are watched and killed through pidfds",
            Feature::PidfdInfo => {
                "fallback: the plugin's pid is read from its pidfd's fdinfo, and its exit status is the sandbox's init's report alone (not checked against the kernel's record)"
            }
            Feature::CloneIntoCgroup => {
                "not needed: the fork server moves each child into its cgroup before the child may exec"
            }
            Feature::CloseRange => "fallback: the child closes fds one by one",
            Feature::CgroupKill => {
                "fallback: a worker's tree is killed by pid from its cgroup's list"
            }
            Feature::MfdNoexecSeal => {
                "fallback: the arena memfd is not sealed against exec; seccomp still forbids executable mappings and exec of a memfd, and plugins cannot create memfds"
            }
            Feature::NprocPerUserns => {
                "weakened without root and a pids cgroup: no process limit but seccomp's rule for limits.processes = 0"
            }
        }
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }

    fn probe(self, release: (u32, u32)) -> bool {
        match self {
            Feature::UserNotif => std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
                .is_ok_and(|a| a.split_whitespace().any(|w| w == "user_notif")),
            Feature::PidfdOpen => probe_pidfd().is_some(),
            // The ioctl (6.13) is probed; its exit record (6.15) shows only
            // on a reaped process, so that part is read from the release.
            Feature::PidfdInfo => {
                release >= self.since()
                    && probe_pidfd()
                        .is_some_and(|pidfd| pidfd_info(pidfd.0, PIDFD_INFO_PID).is_some())
            }
            Feature::CloseRange => {
                // SAFETY: closes fds from u32::MAX - 1 up: none can be open.
                let rc = unsafe { libc::syscall(libc::SYS_close_range, u32::MAX - 1, u32::MAX, 0) };
                rc == 0
            }
            Feature::MfdNoexecSeal => {
                // SAFETY: the name is NUL-terminated; the fd, if any, is closed at once.
                let fd = unsafe {
                    libc::memfd_create(c"plugwarden-probe".as_ptr(), libc::MFD_CLOEXEC | 0x0008)
                };
                if fd >= 0 {
                    // SAFETY: closes the fd just created.
                    unsafe { libc::close(fd) };
                }
                fd >= 0
            }
            // No probe without a side effect (a filter installed, a cgroup
            // made, a user namespace forked): read from the release. The
            // cgroup backend still checks that cgroup.kill exists.
            Feature::NotifContinue
            | Feature::CloneIntoCgroup
            | Feature::CgroupKill
            | Feature::NprocPerUserns => release >= self.since(),
        }
    }
}

/// A pidfd of this process, closed on drop.
struct Pidfd(i32);

impl Drop for Pidfd {
    fn drop(&mut self) {
        // SAFETY: closes the fd this value owns.
        unsafe { libc::close(self.0) };
    }
}

fn probe_pidfd() -> Option<Pidfd> {
    // SAFETY: pidfd_open takes a pid and flags; our own pid is alive.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    (fd >= 0).then(|| Pidfd(fd as i32))
}

/// `struct pidfd_info` (PIDFD_INFO_SIZE_VER0, 64 bytes).
#[repr(C)]
#[derive(Default)]
pub(crate) struct PidfdInfo {
    pub mask: u64,
    pub cgroupid: u64,
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub ruid: u32,
    pub rgid: u32,
    pub euid: u32,
    pub egid: u32,
    pub suid: u32,
    pub sgid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    pub exit_code: i32,
}

pub(crate) const PIDFD_INFO_PID: u64 = 1 << 0;
pub(crate) const PIDFD_INFO_EXIT: u64 = 1 << 3;

/// `PIDFD_GET_INFO` on `pidfd` asking for `mask`; `None` when the kernel
/// lacks the ioctl or did not fill in what was asked. Callers check
/// [`Feature::PidfdInfo`] first (so that it can be switched off).
pub(crate) fn pidfd_info(pidfd: i32, mask: u64) -> Option<PidfdInfo> {
    // _IOWR(PIDFS_IOCTL_MAGIC 0xFF, 11, struct pidfd_info)
    const PIDFD_GET_INFO: libc::c_ulong =
        (3 << 30) | ((std::mem::size_of::<PidfdInfo>() as libc::c_ulong) << 16) | (0xFF << 8) | 11;
    let mut info = PidfdInfo {
        mask,
        ..PidfdInfo::default()
    };
    // SAFETY: the kernel reads and writes one pidfd_info on our stack.
    let rc = unsafe { libc::ioctl(pidfd, PIDFD_GET_INFO, &mut info) };
    (rc == 0 && info.mask & mask == mask).then_some(info)
}

/// What this kernel offers, after the simulation switches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// (major, minor) of the release, or of `PLUGWARDEN_KERNEL`.
    pub release: (u32, u32),
    /// The Landlock ABI in use: the kernel's, lowered by
    /// `PLUGWARDEN_LANDLOCK_ABI`, at most [`LANDLOCK_NEWEST`]; 0 = none.
    pub landlock_abi: u8,
    /// What the kernel itself reports (0 = Landlock disabled or absent).
    pub landlock_abi_kernel: i64,
    present: u16,
    simulated: u16,
    /// What the switches changed, and switches with values that make no
    /// sense (named, then ignored).
    pub switches: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
/// Why this kernel cannot run sandboxes.
pub enum KernelError {
    #[error("this is Linux {}.{}, older than plugwarden's floor, Linux {}.{} (Ubuntu 22.04 LTS): the features the sandbox is built on may be missing, and best_effort does not stand in for a whole kernel; run on Linux {}.{} or later", .release.0, .release.1, FLOOR.0, FLOOR.1, FLOOR.0, FLOOR.1)]
    /// Older than plugwarden's floor ([`FLOOR`]).
    TooOld {
        /** The running release (major, minor). */
        release: (u32, u32),
    },
    #[error("this kernel lacks {} (Linux {}.{}+){}: sandboxes are {}", .feature.name(), .feature.since().0, .feature.since().1, if *.simulated { format!(" (simulated by {}=1)", .feature.switch()) } else { String::new() }, .feature.without())]
    /// A feature the sandbox cannot do without is missing.
    Missing {
        /** Which. */
        feature: Feature,
        /** Missing only because a `PLUGWARDEN_NO_*` switch says so. */
        simulated: bool,
    },
}

impl Kernel {
    fn probe() -> Kernel {
        let mut switches = Vec::new();
        let real = kernel_release();
        let release = match std::env::var(RELEASE_SWITCH) {
            Ok(v) => match parse_release(&v) {
                Some(r) if r <= real => {
                    switches.push(format!(
                        "{RELEASE_SWITCH}={v}: behaving as Linux {}.{}",
                        r.0, r.1
                    ));
                    r
                }
                _ => {
                    switches.push(format!("{RELEASE_SWITCH}={v} ignored: give a release no newer than this kernel's {}.{}, e.g. 5.10", real.0, real.1));
                    real
                }
            },
            Err(_) => real,
        };
        let landlock_abi_kernel = landlock_kernel_abi();
        let mut landlock_abi = landlock_abi_kernel.clamp(0, i64::from(LANDLOCK_NEWEST)) as u8;
        if let Ok(v) = std::env::var(LANDLOCK_SWITCH) {
            match v.trim().parse::<u8>() {
                Ok(n) if n <= LANDLOCK_NEWEST => {
                    landlock_abi = landlock_abi.min(n);
                    switches.push(format!(
                        "{LANDLOCK_SWITCH}={v}: using Landlock ABI {landlock_abi}"
                    ));
                }
                _ => switches.push(format!(
                    "{LANDLOCK_SWITCH}={v} ignored: give a number from 0 to {LANDLOCK_NEWEST}"
                )),
            }
        }
        let (mut present, mut simulated) = (0, 0);
        for f in Feature::ALL {
            let on = f.probe(release);
            let off = std::env::var_os(f.switch()).is_some_and(|v| v == "1");
            if off {
                simulated |= f.bit();
                switches.push(format!(
                    "{}=1: behaving as without {}",
                    f.switch(),
                    f.name()
                ));
            }
            if on && !off {
                present |= f.bit();
            }
        }
        Kernel {
            release,
            landlock_abi,
            landlock_abi_kernel,
            present,
            simulated,
            switches,
        }
    }

    /// Whether the kernel has `f` (a simulated absence counts as absent).
    pub fn has(&self, f: Feature) -> bool {
        self.present & f.bit() != 0
    }

    /// Switched off by its `PLUGWARDEN_NO_*` variable.
    pub fn simulated(&self, f: Feature) -> bool {
        self.simulated & f.bit() != 0
    }

    /// The floor and the features no sandbox can be built without.
    pub fn check(&self) -> Result<(), KernelError> {
        if self.release < FLOOR {
            return Err(KernelError::TooOld {
                release: self.release,
            });
        }
        match Feature::ALL
            .into_iter()
            .find(|f| f.required() && !self.has(*f))
        {
            Some(feature) => Err(KernelError::Missing {
                feature,
                simulated: self.simulated(feature),
            }),
            None => Ok(()),
        }
    }

    /// The Landlock ABI as the landlock crate names it.
    pub fn landlock(&self) -> landlock::ABI {
        landlock::ABI::from(i32::from(self.landlock_abi))
    }

    /// Names of every `PLUGWARDEN_*` variable the fork server must see too.
    pub fn switch_names() -> impl Iterator<Item = &'static str> {
        [LANDLOCK_SWITCH, RELEASE_SWITCH, USERNS_SWITCH]
            .into_iter()
            .chain(Feature::ALL.into_iter().map(Feature::switch))
    }
}

/// This process's view of the kernel, probed on first use.
pub fn kernel() -> &'static Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    KERNEL.get_or_init(|| {
        let k = Kernel::probe();
        for s in &k.switches {
            tracing::info!("kernel simulation: {s}");
        }
        k
    })
}

/// Whether an ordinary user may create a user namespace here: probed in a
/// throwaway child. `PLUGWARDEN_NO_USERNS=1` pretends it may not (to test
/// the fallback, or to match a deployment where they are blocked).
pub(crate) fn userns_available() -> Result<(), String> {
    if std::env::var_os(USERNS_SWITCH).is_some_and(|v| v == "1") {
        return Err("disabled by PLUGWARDEN_NO_USERNS=1".into());
    }
    // What a child's road does with it: map our ids, then mount. An LSM
    // may allow the namespace but no capability in it (Ubuntu's
    // kernel.apparmor_restrict_unprivileged_userns), so creating one is
    // not enough of a probe.
    let plan = userns_plan();
    // SAFETY: single-threaded fork server (or doctor); the child makes raw
    // syscalls only, on strings prepared above.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let write = |path: &std::ffi::CStr, data: &std::ffi::CStr| {
                // SAFETY: NUL-terminated path and data owned by `plan`.
                unsafe {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
                    let len = data.to_bytes().len();
                    fd >= 0 && libc::write(fd, data.as_ptr().cast(), len) == len as isize
                }
            };
            // SAFETY: unshare, mount and _exit take integers or NUL-terminated strings.
            let code = unsafe {
                if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                    1
                } else if !(write(plan.setgroups_path, c"deny")
                    && write(plan.uid_map_path, &plan.uid_map)
                    && write(plan.gid_map_path, &plan.gid_map))
                {
                    2
                } else {
                    let null = std::ptr::null();
                    let flags = libc::MS_REC | libc::MS_PRIVATE;
                    if libc::mount(null, c"/".as_ptr(), null, flags, std::ptr::null()) != 0 {
                        2
                    } else {
                        0
                    }
                }
            };
            // SAFETY: _exit never returns and runs no destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => match nix::sys::wait::waitpid(child, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(nix::sys::wait::WaitStatus::Exited(_, 2)) => Err(
                "user namespaces are created but give no capability inside (an LSM restricts them, e.g. kernel.apparmor_restrict_unprivileged_userns = 1; allow plugwarden `userns` in its AppArmor profile)".into(),
            ),
            _ => Err(
                "this kernel refuses unprivileged user namespaces (see `plugwarden doctor`)".into(),
            ),
        },
        Err(e) => Err(format!("cannot probe user namespaces: {e}")),
    }
}

/// The Linux release in which Landlock ABI `abi` arrived.
pub fn landlock_since(abi: u8) -> (u32, u32) {
    match abi {
        0 | 1 => (5, 13),
        2 => (5, 19),
        3 => (6, 2),
        4 => (6, 7),
        5 => (6, 10),
        6 => (6, 12),
        _ => (6, 15),
    }
}

fn kernel_release() -> (u32, u32) {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| parse_release(&u.release().to_string_lossy()))
        .unwrap_or((0, 0))
}

/// "6.1.0-18-amd64" → (6, 1).
fn parse_release(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.trim().split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The Landlock ABI the kernel reports (0 when disabled or absent).
fn landlock_kernel_abi() -> i64 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    // only returns the ABI version; no memory is passed.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    v.max(0)
}

/// The uid and gid maps a child writes from inside a new user namespace:
/// this process's (unprivileged) ids appear as 65534 inside.
pub(crate) fn userns_plan() -> crate::child::UsernsPlan {
    let map = |id: u32| std::ffi::CString::new(format!("65534 {id} 1\n")).expect("no NUL");
    crate::child::UsernsPlan {
        uid_map: map(nix::unistd::getuid().as_raw()),
        gid_map: map(nix::unistd::getgid().as_raw()),
        setgroups_path: c"/proc/self/setgroups",
        uid_map_path: c"/proc/self/uid_map",
        gid_map_path: c"/proc/self/gid_map",
    }
}

/// The highest capability this kernel knows
/// (`/proc/sys/kernel/cap_last_cap`), read once by the fork server.
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40) // CAP_CHECKPOINT_RESTORE, the last one since Linux 5.9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_release_reads_major_and_minor() {
        assert_eq!(parse_release("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_release("5.15"), Some((5, 15)));
        assert_eq!(parse_release("x"), None);
    }

    #[test]
    fn test_landlock_since_matches_the_kernel_history() {
        assert_eq!(landlock_since(1), (5, 13));
        assert_eq!(landlock_since(4), (6, 7));
        assert_eq!(landlock_since(7), (6, 15));
    }

    #[test]
    fn test_feature_bits_and_switches_are_distinct() {
        let bits: std::collections::BTreeSet<u16> = Feature::ALL.iter().map(|f| f.bit()).collect();
        let names: std::collections::BTreeSet<&str> =
            Feature::ALL.iter().map(|f| f.switch()).collect();
        assert_eq!(bits.len(), Feature::ALL.len());
        assert_eq!(names.len(), Feature::ALL.len());
    }

    #[test]
    fn test_this_kernel_passes_the_floor() {
        let k = Kernel::probe();
        if k.release < FLOOR {
            println!("not applicable: this kernel is {:?}", k.release);
            return;
        }
        k.check().unwrap();
    }
}
