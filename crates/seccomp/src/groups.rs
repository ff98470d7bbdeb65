//! Named syscall groups: the one place where `@basic-io`, `@startup` and the
//! other `@names` that a policy may list in `[syscalls] allow` are defined,
//! together with `RISKY`, the syscalls whose grant a reviewer must be shown.
//!
//! Groups hold syscall *names*, never numbers. Numbers differ per
//! architecture (`read` is 0 on x86_64 and 63 on aarch64), so a table of names
//! is right for x86_64 and aarch64 by construction: `number` resolves a name
//! for one architecture, and the filter compiler skips names that do not
//! exist there (`open`, `fork`, `stat` on aarch64, whose libc uses `openat`,
//! `clone` and `newfstatat` instead).
//!
//! The split follows systemd's SystemCallFilter sets in spirit, narrowed to
//! what a sandboxed plugin needs. `ioctl` is in no group on purpose: the
//! policy code grants it per request number, never wholesale.

use std::collections::BTreeSet;

use syscalls::{aarch64, x86_64};

/// A named set of syscalls that a policy can allow as a whole.
#[derive(Debug)]
pub struct Group {
    /// The name a policy uses, e.g. `"@basic-io"`.
    pub name: &'static str,
    /// One line for `policy explain`.
    pub description: &'static str,
    /// Syscall names, or names of other groups (starting with `@`).
    pub syscalls: &'static [&'static str],
}

/// Every group, ordinary ones first, then the dangerous ones that exist only
/// so that `policy explain` can tell a reviewer what a name is.
pub static GROUPS: &[Group] = &[
    Group {
        name: "@default",
        description: "calls every process makes whatever it does; refusing them only turns exits and signal returns into crashes",
        syscalls: &[
            "exit",
            "exit_group",
            "rt_sigreturn",    // the kernel's way back from any signal handler
            "restart_syscall", // the kernel resumes an interrupted sleep through it
            "getpid",
            "gettid",
            "sched_yield",
            // Normally answered by the vDSO without entering the kernel, but
            // libc falls back to the real syscall when the clock source has no
            // vDSO support (common in VMs).
            "clock_gettime",
            "clock_getres",
            "gettimeofday",
            "time",
        ],
    },
    Group {
        name: "@startup",
        description: "what the dynamic loader, glibc and Rust std do between execve and main",
        syscalls: &[
            // The host installs its filter before exec, so the exec itself
            // must pass; a plugin SDK later installs a tighter filter without
            // these two.
            "execve",
            "execveat",
            "brk",
            "arch_prctl", // x86_64: the loader sets the thread pointer and queries CET
            "set_tid_address",
            "set_robust_list",
            "rseq", // glibc registers restartable sequences at start-up
            "prlimit64", // glibc reads RLIMIT_STACK
            "access", // ld.so looks for /etc/ld.so.preload
            "faccessat", // what access() becomes on aarch64
            // Opening libraries; that they are opened read-only is enforced
            // by Landlock, not here.
            "openat",
            "newfstatat",
            "fstat",
            "read",
            "pread64", // ld.so reads ELF program headers and notes
            "writev",  // ld.so and glibc print fatal errors with writev
            "close",
            "mmap",
            "mprotect", // ld.so makes relocations read-only (RELRO)
            "munmap",
            "readlink",   // ld.so expands $ORIGIN from /proc/self/exe
            "readlinkat", // what readlink() becomes on aarch64
            // glibc seeds malloc and Rust seeds its HashMap hasher.
            "getrandom",
            // Rust std's stack-overflow handler: an alternate signal stack,
            // a SIGSEGV handler, and SIGPIPE set to ignored.
            "sigaltstack",
            "rt_sigaction",
            "rt_sigprocmask",
            // Rust std checks that fds 0-2 are open (poll on x86_64, ppoll on
            // aarch64).
            "poll",
            "ppoll",
            // glibc's pthread_getattr_np, called by Rust std for the main
            // thread's stack guard, asks for the CPU mask.
            "sched_getaffinity",
        ],
    },
    Group {
        name: "@basic-io",
        description: "reading, writing and closing file descriptors the plugin already holds",
        syscalls: &[
            "read",
            "write",
            "readv",
            "writev", // glibc and ld.so print fatal errors with writev
            "pread64",
            "pwrite64",
            "preadv",
            "pwritev",
            "preadv2",
            "pwritev2",
            "close",
            "close_range",
            "lseek",
            "dup",
            "dup2",
            "dup3",
            "fcntl",
            // Rust's std::io::copy tries these in-kernel copies first.
            "copy_file_range",
            "sendfile",
            "splice",
        ],
    },
    Group {
        name: "@memory",
        description: "mapping, unmapping and protecting the plugin's own memory",
        syscalls: &[
            "brk",
            "mmap",
            "munmap",
            "mremap", // Rust's allocator grows large buffers with realloc
            "mprotect",
            "madvise", // allocators return freed pages to the kernel
            "msync",
            "mincore",
            "pkey_alloc",
            "pkey_free",
            "pkey_mprotect",
            "map_shadow_stack", // glibc allocates a shadow stack per thread when CET/GCS is on
            "mseal",            // can only remove rights from a mapping
        ],
    },
    Group {
        name: "@memlock",
        description: "pinning memory in RAM (bounded by RLIMIT_MEMLOCK)",
        syscalls: &["mlock", "mlock2", "munlock", "mlockall", "munlockall"],
    },
    Group {
        name: "@file-read",
        description: "opening, inspecting and listing files; which paths may be opened, and how, is Landlock's job",
        syscalls: &[
            "open", // x86_64 only; static or old binaries still use it
            "openat",
            "openat2",
            "stat",
            "lstat",
            "fstat",
            "newfstatat",
            "statx", // Rust std's fs::metadata
            "statfs",
            "fstatfs",
            "getdents",
            "getdents64",
            "readlink",
            "readlinkat",
            "access",
            "faccessat",
            "faccessat2",
            "getcwd",
            "chdir",
            "fchdir",
            "fadvise64", // a read-ahead hint; cat issues it
            "readahead",
            "getxattr",
            "lgetxattr",
            "fgetxattr",
            "getxattrat",
            "listxattr",
            "llistxattr",
            "flistxattr",
            "listxattrat",
            "file_getattr",
            "inotify_init",
            "inotify_init1",
            "inotify_add_watch",
            "inotify_rm_watch",
        ],
    },
    Group {
        name: "@file-write",
        description: "creating, changing, renaming and deleting files; which paths may be touched is Landlock's job",
        syscalls: &[
            "creat",
            "mkdir",
            "mkdirat",
            "rmdir",
            "unlink",
            "unlinkat",
            "rename",
            "renameat",
            "renameat2",
            "link",
            "linkat",
            "symlink",
            "symlinkat",
            "truncate",
            "ftruncate",
            "fallocate",
            "fsync",
            "fdatasync",
            "sync_file_range",
            "chmod",
            "fchmod",
            "fchmodat",
            "fchmodat2",
            "utime",
            "utimes",
            "futimesat",
            "utimensat",
            "mknod", // device nodes need CAP_MKNOD; unprivileged, only FIFOs and sockets
            "mknodat",
            "setxattr",
            "lsetxattr",
            "fsetxattr",
            "setxattrat",
            "removexattr",
            "lremovexattr",
            "fremovexattr",
            "removexattrat",
            "file_setattr",
            "umask",
        ],
    },
    Group {
        name: "@chown",
        description: "changing the owner or group of files",
        syscalls: &["chown", "fchown", "fchownat", "lchown"],
    },
    Group {
        name: "@process",
        description: "creating, executing, waiting for and signalling processes",
        syscalls: &[
            "clone", // its flags are argument-filtered by the policy code
            // Its flags sit in memory the filter cannot read; see RISKY.
            "clone3",
            "fork",
            "vfork",
            "execve",
            "execveat",
            "wait4",
            "waitid",
            // Landlock's signal scope keeps these inside the sandbox.
            "kill",
            "tkill",
            "tgkill",
            "rt_sigqueueinfo",
            "rt_tgsigqueueinfo",
            "pidfd_open",
            "pidfd_send_signal",
            "process_mrelease",
            "getppid",
            "getpgid",
            "getpgrp",
            "setpgid",
            "getsid",
            "setsid",
            // Options that could loosen the sandbox need capabilities the
            // plugin does not hold; the rest affect only the caller.
            "prctl",
        ],
    },
    Group {
        name: "@signal",
        description: "handling, blocking and waiting for signals",
        syscalls: &[
            "rt_sigaction",
            "rt_sigprocmask",
            "rt_sigpending",
            "rt_sigsuspend",
            "rt_sigtimedwait",
            "rt_sigreturn",
            "sigaltstack",
            // abort() raises SIGABRT at itself with tgkill, and programs
            // signal themselves with kill(getpid(), ...). Landlock's signal
            // scope keeps both from reaching any process outside the
            // sandbox, and its PID namespace shows no other.
            "tgkill",
            "kill",
            "signalfd",
            "signalfd4",
            "pause",
        ],
    },
    Group {
        name: "@time",
        description: "reading clocks, sleeping and timers",
        syscalls: &[
            "clock_gettime",
            "clock_getres",
            "clock_nanosleep", // Rust's thread::sleep
            "nanosleep",
            "gettimeofday",
            "time",
            "timer_create",
            "timer_settime",
            "timer_gettime",
            "timer_getoverrun",
            "timer_delete",
            "timerfd_create",
            "timerfd_settime",
            "timerfd_gettime",
            "getitimer",
            "setitimer",
            "alarm",
        ],
    },
    Group {
        name: "@thread",
        description: "starting threads and synchronising them",
        syscalls: &[
            // glibc tries clone3 first and falls back to clone when clone3
            // fails with ENOSYS, which is how the policy should answer it.
            "clone",
            "futex",
            "futex_waitv",
            "futex_wait",
            "futex_wake",
            "futex_requeue",
            "set_robust_list", // glibc registers each new thread's robust mutex list
            "get_robust_list",
            "rseq",
            "gettid",
            "sched_getaffinity", // Rust's available_parallelism
            "sched_yield",
            "membarrier", // user-space RCU and JITs order memory across threads with it
            // Rust std names spawned threads with PR_SET_NAME (tokio does).
            "prctl",
        ],
    },
    Group {
        name: "@network",
        description: "sockets; the policy code restricts address families and Landlock restricts TCP ports",
        syscalls: &[
            "socket",
            "socketpair",
            "connect",
            "bind",
            "listen",
            "accept",
            "accept4",
            "sendto",
            "recvfrom",
            "sendmsg",
            "recvmsg",
            "sendmmsg",
            "recvmmsg",
            "shutdown",
            "getsockname",
            "getpeername",
            "getsockopt",
            "setsockopt",
        ],
    },
    Group {
        name: "@ipc",
        description: "pipes, event fds, polling and shared memory files",
        syscalls: &[
            "pipe",
            "pipe2",
            "eventfd",
            "eventfd2",
            "epoll_create",
            "epoll_create1",
            "epoll_ctl",
            "epoll_wait",
            "epoll_pwait",
            "epoll_pwait2",
            "poll",
            "ppoll",
            "select",
            "pselect6",
            "memfd_create", // ipc-channel's shared memory regions are memfds
        ],
    },
    Group {
        name: "@sysv-ipc",
        description: "System V IPC and POSIX message queues: objects that outlive the process and are shared by uid unless an IPC namespace separates them",
        syscalls: &[
            "shmget",
            "shmat",
            "shmdt",
            "shmctl",
            "semget",
            "semop",
            "semtimedop",
            "semctl",
            "msgget",
            "msgsnd",
            "msgrcv",
            "msgctl",
            "mq_open",
            "mq_unlink",
            "mq_timedsend",
            "mq_timedreceive",
            "mq_notify",
            "mq_getsetattr",
        ],
    },
    Group {
        name: "@system-info",
        description: "read-only questions about the process's identity, limits and the machine",
        syscalls: &[
            "uname",
            "sysinfo",
            "getrusage",
            "times",
            "getuid",
            "geteuid",
            "getgid",
            "getegid",
            "getgroups",
            "getresuid",
            "getresgid",
            "getppid",
            "getpriority",
            "getrlimit",
            "getcpu",
            "capget",
            "sched_getparam",
            "sched_getscheduler",
            "sched_getattr",
            "sched_get_priority_max",
            "sched_get_priority_min",
            "sched_rr_get_interval",
            "ioprio_get",
        ],
    },
    Group {
        name: "@resources",
        description: "changing the process's own limits, priority, CPU set and NUMA placement",
        syscalls: &[
            "setrlimit", // soft limits only go up to the hard limits the host set
            "prlimit64",
            "setpriority",
            "sched_setaffinity",
            "sched_setparam",
            "sched_setscheduler",
            "sched_setattr",
            "ioprio_set",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
            "get_mempolicy",
            "migrate_pages",
            "move_pages",
        ],
    },
    Group {
        name: "@aio",
        description: "Linux native asynchronous I/O (io_uring is in @io-uring)",
        syscalls: &[
            "io_setup",
            "io_destroy",
            "io_submit",
            "io_cancel",
            "io_getevents",
            "io_pgetevents",
        ],
    },
    Group {
        name: "@sandbox",
        description: "confining oneself further; every call here can only remove rights",
        syscalls: &[
            "seccomp",
            // seccompiler sets PR_SET_NO_NEW_PRIVS before installing a filter.
            "prctl",
            "landlock_create_ruleset",
            "landlock_add_rule",
            "landlock_restrict_self",
        ],
    },
    // Dangerous groups from here on. No shipped policy grants them.
    Group {
        name: "@privileged",
        description: "calls that need capabilities a plugin never holds",
        syscalls: &[
            "@clock",
            "@credentials",
            "@module",
            "@mount",
            "@raw-io",
            "@reboot",
            "@swap",
            "acct",
            "bpf", // unprivileged BPF is off by default on current kernels
            "fanotify_init",
            "lookup_dcookie",
            "open_by_handle_at",
            "quotactl",
            "quotactl_fd",
            "sethostname",
            "setdomainname",
            "syslog",
            "vhangup",
        ],
    },
    Group {
        name: "@clock",
        description: "setting or adjusting the system clock",
        syscalls: &["settimeofday", "clock_settime", "clock_adjtime", "adjtimex"],
    },
    Group {
        name: "@credentials",
        description: "changing user ids, group ids and capabilities",
        syscalls: &[
            "setuid",
            "setgid",
            "setreuid",
            "setregid",
            "setresuid",
            "setresgid",
            "setfsuid",
            "setfsgid",
            "setgroups",
            "capset",
        ],
    },
    Group {
        name: "@module",
        description: "loading and unloading kernel modules",
        syscalls: &["init_module", "finit_module", "delete_module"],
    },
    Group {
        name: "@mount",
        description: "mounting, unmounting and changing the root of the filesystem tree",
        syscalls: &[
            "mount",
            "umount2",
            "pivot_root",
            "chroot",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "open_tree_attr",
            "mount_setattr",
            // Read-only and unprivileged, but they only describe mounts.
            "statmount",
            "listmount",
        ],
    },
    Group {
        name: "@raw-io",
        description: "direct access to hardware I/O ports (x86_64 only)",
        syscalls: &["iopl", "ioperm"],
    },
    Group {
        name: "@reboot",
        description: "rebooting the machine or replacing the running kernel",
        syscalls: &["reboot", "kexec_load", "kexec_file_load"],
    },
    Group {
        name: "@swap",
        description: "turning swap space on and off",
        syscalls: &["swapon", "swapoff"],
    },
    Group {
        name: "@namespace",
        description: "creating and joining namespaces (clone's namespace flags are left to the policy code's clone rule)",
        syscalls: &["unshare", "setns"],
    },
    Group {
        name: "@keyring",
        description: "the kernel key management facility, which namespaces do not isolate",
        syscalls: &["add_key", "request_key", "keyctl"],
    },
    Group {
        name: "@debug",
        description: "inspecting or changing other processes, and performance monitoring",
        syscalls: &[
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "process_madvise",
            "pidfd_getfd",
            "kcmp",
            "perf_event_open",
        ],
    },
    Group {
        name: "@io-uring",
        description: "io_uring, whose operations run without passing through seccomp",
        syscalls: &["io_uring_setup", "io_uring_enter", "io_uring_register"],
    },
    Group {
        name: "@attack-surface",
        description: "unprivileged calls no plugin needs that open rarely used kernel paths favoured by exploits",
        syscalls: &[
            "@io-uring",
            "userfaultfd",
            "personality",
            "modify_ldt",
            "name_to_handle_at",
        ],
    },
    Group {
        name: "@obsolete",
        description: "calls that are removed, unimplemented or kept only for old binaries",
        syscalls: &[
            "_sysctl",
            "afs_syscall",
            "create_module",
            "get_kernel_syms",
            "query_module",
            "getpmsg",
            "putpmsg",
            "security",
            "tuxcall",
            "vserver",
            "uselib",
            "ustat",
            "sysfs",
            "nfsservctl",
            "remap_file_pages",
            "lookup_dcookie",
            "epoll_ctl_old",
            "epoll_wait_old",
        ],
    },
];

/// Syscalls whose grant a reviewer must see, with the reason in one line.
pub static RISKY: &[(&str, &str)] = &[
    ("ptrace", "lets the plugin inspect and control other processes"),
    ("process_vm_readv", "reads the memory of another process"),
    ("process_vm_writev", "writes the memory of another process"),
    ("process_madvise", "acts on the memory of another process"),
    ("pidfd_getfd", "copies a file descriptor out of another process"),
    (
        "kcmp",
        "tells whether two processes share kernel objects, leaking their layout",
    ),
    (
        "perf_event_open",
        "opens the perf subsystem, a frequent source of kernel exploits and address leaks",
    ),
    ("bpf", "loads programs into the kernel"),
    (
        "userfaultfd",
        "lets the plugin stall the kernel at a page fault of its choosing, a standard tool for winning kernel races",
    ),
    (
        "io_uring_setup",
        "io_uring runs I/O that seccomp never sees, through a large and often exploited interface",
    ),
    (
        "io_uring_enter",
        "io_uring runs I/O that seccomp never sees, through a large and often exploited interface",
    ),
    (
        "io_uring_register",
        "io_uring runs I/O that seccomp never sees, through a large and often exploited interface",
    ),
    (
        "clone3",
        "takes its flags in memory the filter cannot read, so it can create the namespaces a clone rule refuses",
    ),
    (
        "unshare",
        "creates namespaces; a user namespace opens kernel interfaces normally closed to the plugin",
    ),
    ("setns", "joins another process's namespaces"),
    ("mount", "changes the filesystem tree"),
    ("umount2", "changes the filesystem tree"),
    ("fsopen", "starts building a new mount"),
    ("fsconfig", "configures a new mount"),
    ("fsmount", "creates a new mount"),
    ("fspick", "reconfigures an existing mount"),
    ("move_mount", "changes the filesystem tree"),
    ("open_tree", "copies part of the filesystem tree for mounting elsewhere"),
    ("open_tree_attr", "copies part of the filesystem tree for mounting elsewhere"),
    ("mount_setattr", "changes mount options such as read-only or noexec"),
    ("pivot_root", "changes the root filesystem"),
    (
        "chroot",
        "changes the root directory, a classic step in escaping a jail",
    ),
    ("kexec_load", "replaces the running kernel"),
    ("kexec_file_load", "replaces the running kernel"),
    ("init_module", "loads code into the kernel"),
    ("finit_module", "loads code into the kernel"),
    ("delete_module", "unloads code from the kernel"),
    ("reboot", "reboots or halts the machine"),
    ("swapon", "changes where the kernel swaps memory"),
    ("swapoff", "changes where the kernel swaps memory"),
    ("iopl", "gives direct access to hardware I/O ports"),
    ("ioperm", "gives direct access to hardware I/O ports"),
    (
        "keyctl",
        "reaches the kernel keyrings, which namespaces do not isolate",
    ),
    (
        "add_key",
        "adds keys to the kernel keyrings, which namespaces do not isolate",
    ),
    (
        "request_key",
        "can make the kernel run a user-space helper on the plugin's behalf",
    ),
    (
        "personality",
        "can turn off address-space randomisation and make readable memory executable",
    ),
    (
        "modify_ldt",
        "edits the x86 local descriptor table, a rarely used path with a history of kernel bugs",
    ),
    (
        "open_by_handle_at",
        "opens any file of a filesystem by handle, skipping directory checks (the Shocker container escape)",
    ),
    (
        "name_to_handle_at",
        "hands out file handles, the other half of open_by_handle_at",
    ),
    (
        "acct",
        "switches process accounting on, writing records to a file of the caller's choice",
    ),
    (
        "syslog",
        "reads or clears the kernel log, which can leak kernel addresses",
    ),
    ("quotactl", "changes disk quotas"),
    ("quotactl_fd", "changes disk quotas"),
    ("fanotify_init", "watches file access across a whole filesystem"),
    (
        "lookup_dcookie",
        "resolves kernel directory cookies of the profiling interface",
    ),
    ("sethostname", "renames the machine"),
    ("setdomainname", "renames the machine's NIS domain"),
    ("settimeofday", "sets the system clock"),
    ("clock_settime", "sets the system clock"),
    ("clock_adjtime", "adjusts the system clock"),
    ("adjtimex", "adjusts the system clock"),
    ("vhangup", "hangs up the controlling terminal"),
    ("capset", "changes the process's capabilities"),
    ("setuid", "changes the process's user id"),
    ("setgid", "changes the process's group id"),
    ("setreuid", "changes the process's user ids"),
    ("setregid", "changes the process's group ids"),
    ("setresuid", "changes the process's user ids"),
    ("setresgid", "changes the process's group ids"),
    ("setfsuid", "changes the user id used for file access"),
    ("setfsgid", "changes the group id used for file access"),
    ("setgroups", "changes the process's supplementary groups"),
];

/// The group called `name` (with its `@`).
pub fn find(name: &str) -> Option<&'static Group> {
    GROUPS.iter().find(|group| group.name == name)
}

/// A name [`expand`] does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// No group has this name (with its `@`).
    #[error("unknown syscall group {0:?}")]
    UnknownGroup(String),
    /// Not a syscall on x86_64 or aarch64.
    #[error("unknown syscall {0:?}: not a Linux syscall on x86_64 or aarch64")]
    UnknownSyscall(String),
}

impl ExpandError {
    /// The name that is not known.
    pub fn name(&self) -> &str {
        match self {
            ExpandError::UnknownGroup(name) | ExpandError::UnknownSyscall(name) => name,
        }
    }
}

/// Expands group names recursively into syscall names (sorted, deduplicated).
/// Plain syscall names pass through. An unknown group, or a plain name that
/// is a syscall on neither x86_64 nor aarch64, is an error naming it.
pub fn expand(names: &[&str]) -> Result<Vec<&'static str>, ExpandError> {
    let mut syscalls = BTreeSet::new();
    let mut expanded_groups = BTreeSet::new();
    let mut pending = names.to_vec();
    while let Some(name) = pending.pop() {
        if name.starts_with('@') {
            let group = find(name).ok_or_else(|| ExpandError::UnknownGroup(name.to_owned()))?;
            // A group reached twice (diamond, or a cycle) is expanded once.
            if expanded_groups.insert(group.name) {
                pending.extend_from_slice(group.syscalls);
            }
        } else {
            let syscall =
                static_name(name).ok_or_else(|| ExpandError::UnknownSyscall(name.to_owned()))?;
            syscalls.insert(syscall);
        }
    }
    Ok(syscalls.into_iter().collect())
}

/// The architectures plugwarden compiles filters for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86_64 (`AUDIT_ARCH_X86_64`).
    X86_64,
    /// aarch64 (`AUDIT_ARCH_AARCH64`).
    Aarch64,
}

impl Arch {
    /// The architecture this binary runs on.
    pub fn native() -> Arch {
        #[cfg(target_arch = "x86_64")]
        return Arch::X86_64;
        #[cfg(target_arch = "aarch64")]
        return Arch::Aarch64;
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        compile_error!("plugwarden builds seccomp filters only for x86_64 and aarch64");
    }
}

// Two places where the aarch64 table of `syscalls` 0.8 differs from the
// kernel (and from seccompiler's table):
// - it calls number 79 `fstatat`; the kernel calls it `newfstatat`, as on
//   x86_64, and that is the name policies use;
const AARCH64_NEWFSTATAT: (&str, &str) = ("newfstatat", "fstatat");
// - it lists 403..=423, the 64-bit-time variants (`clock_gettime64`, ...) that
//   the kernel wires up only for 32-bit ABIs; on aarch64 they are ENOSYS.
const AARCH64_TIME64_ONLY_ON_32_BIT: std::ops::RangeInclusive<i64> = 403..=423;

/// Syscall number of `name` on `arch`, None when the syscall does not exist
/// there (e.g. `open`, `fork`, `stat` on aarch64).
pub fn number(arch: Arch, name: &str) -> Option<i64> {
    let id = match arch {
        Arch::X86_64 => name.parse::<x86_64::Sysno>().ok()?.id(),
        Arch::Aarch64 => {
            let crate_name = if name == AARCH64_NEWFSTATAT.0 {
                AARCH64_NEWFSTATAT.1
            } else {
                name
            };
            crate_name.parse::<aarch64::Sysno>().ok()?.id()
        }
    };
    let nr = i64::from(id);
    // Going back through name_of keeps the table quirks in one place: it
    // drops the 32-bit-only numbers and the crate's own name `fstatat`.
    (name_of(arch, nr) == Some(name)).then_some(nr)
}

/// Kernel name of syscall `nr` on `arch`, None when there is none.
pub fn name_of(arch: Arch, nr: i64) -> Option<&'static str> {
    let index = usize::try_from(nr).ok()?;
    match arch {
        Arch::X86_64 => x86_64::Sysno::new(index).map(|sysno| sysno.name()),
        Arch::Aarch64 => {
            if AARCH64_TIME64_ONLY_ON_32_BIT.contains(&nr) {
                return None;
            }
            let name = aarch64::Sysno::new(index)?.name();
            Some(if name == AARCH64_NEWFSTATAT.1 {
                AARCH64_NEWFSTATAT.0
            } else {
                name
            })
        }
    }
}

/// `name` as a `'static` string, if it is a syscall on any supported arch.
fn static_name(name: &str) -> Option<&'static str> {
    [Arch::X86_64, Arch::Aarch64]
        .into_iter()
        .find_map(|arch| name_of(arch, number(arch, name)?))
}

#[cfg(test)]
mod tests;
