//! Verdicts: exactly one per input, always.
//!
//! The enum is what the library returns; [`Verdict::word`] is the one word
//! the command line, the audit log and scripts rely on, and `Display` adds
//! the detail, e.g. `violation: socket(AF_INET, SOCK_STREAM, 0)`.

use std::fmt;

/// Which deadline a job missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutKind {
    /// The wall-clock deadline of the job.
    Wall,
    /// The CPU-seconds limit (RLIMIT_CPU).
    Cpu,
}

/// The outcome of one input.
///
/// ```
/// use plugwarden::{Signal, Verdict};
///
/// let v = Verdict::Crashed { signal: Signal::from_raw(11), detail: String::new() };
/// assert_eq!((v.word(), v.to_string().as_str()), ("crashed", "crashed: killed by SIGSEGV"));
/// assert!(v.is_retryable() && v.taints_worker());
/// let v = Verdict::Violation("socket(AF_INET, SOCK_STREAM, 0)".into());
/// assert_eq!(v.to_string(), "violation: socket(AF_INET, SOCK_STREAM, 0)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The plugin produced an output.
    Ok,
    /// The plugin refused the input with a message, or a filter exited non-zero.
    PluginError(String),
    /// The plugin died from a signal.
    Crashed {
        /// The signal that ended it.
        signal: Signal,
        /// What else is known (a core dump, the last line of its stderr);
        /// may be empty.
        detail: String,
    },
    /// The plugin missed a deadline.
    Timeout(TimeoutKind),
    /// The plugin hit its memory limit.
    Memory(String),
    /// The plugin made a system call its policy denies, named with its
    /// arguments ([`Violation::syscall`] gives it as a typed value).
    Violation(Violation),
    /// The plugin broke the wire protocol.
    ProtocolError(String),
    /// The output exceeded the output size limit.
    OutputLimit(u64),
    /// The sandbox could not be set up; the step and the error.
    SetupError(String),
    /// The input could not be read.
    InputError(String),
    /// The run was interrupted before the job finished.
    Cancelled,
    /// The input is of a type the command does not handle.
    Unsupported(String),
}

impl Verdict {
    /// The one-word name of the verdict.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::PluginError(_) => "plugin_error",
            Verdict::Crashed { .. } => "crashed",
            Verdict::Timeout(_) => "timeout",
            Verdict::Memory(_) => "memory",
            Verdict::Violation(_) => "violation",
            Verdict::ProtocolError(_) => "protocol_error",
            Verdict::OutputLimit(_) => "output_limit",
            Verdict::SetupError(_) => "setup_error",
            Verdict::InputError(_) => "input_error",
            Verdict::Cancelled => "cancelled",
            Verdict::Unsupported(_) => "unsupported",
        }
    }

    /// The detail after the word, empty for `ok` and `cancelled`.
    pub fn detail(&self) -> String {
        match self {
            Verdict::Ok | Verdict::Cancelled => String::new(),
            Verdict::Violation(v) => v.detail.clone(),
            Verdict::PluginError(s)
            | Verdict::Memory(s)
            | Verdict::ProtocolError(s)
            | Verdict::SetupError(s)
            | Verdict::InputError(s)
            | Verdict::Unsupported(s) => s.clone(),
            Verdict::Crashed { signal, detail } => {
                let name = signal.to_string();
                if detail.is_empty() {
                    format!("killed by {name}")
                } else {
                    format!("killed by {name}: {detail}")
                }
            }
            Verdict::Timeout(TimeoutKind::Wall) => "wall".into(),
            Verdict::Timeout(TimeoutKind::Cpu) => "cpu".into(),
            Verdict::OutputLimit(limit) => format!("output exceeds {limit} bytes"),
        }
    }

    /// Whether the worker that produced this verdict may be corrupted and
    /// must be recycled.
    pub fn taints_worker(&self) -> bool {
        matches!(
            self,
            Verdict::Crashed { .. }
                | Verdict::Timeout(_)
                | Verdict::Memory(_)
                | Verdict::Violation(_)
                | Verdict::ProtocolError(_)
                | Verdict::SetupError(_)
                | Verdict::OutputLimit(_)
        )
    }

    /// Whether a fresh worker might give another outcome (crash, timeout,
    /// memory): such inputs are retried once, then quarantined.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Verdict::Crashed { .. } | Verdict::Timeout(_) | Verdict::Memory(_)
        )
    }

    /// Whether the verdict is `ok`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Verdict::Ok)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = self.detail();
        if detail.is_empty() {
            f.write_str(self.word())
        } else {
            write!(f, "{}: {}", self.word(), detail)
        }
    }
}

/// How a detail shows what the plugin wrote to stderr: `stderr "…"`, its
/// last non-blank line (at most 300 bytes) escaped and quoted, so nothing
/// the plugin prints can end the verdict line or pass for another one;
/// `None` when it wrote nothing.
pub fn stderr_detail(tail: &[u8]) -> Option<String> {
    let line = tail
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .rfind(|l| !l.is_empty())?;
    Some(format!(
        "stderr {}",
        crate::escape::quote(&line[..line.len().min(300)])
    ))
}

/// `SIGSEGV` for 11, `signal 77` for unknown numbers.
pub fn signal_name(sig: i32) -> String {
    Signal::from_raw(sig).to_string()
}

/// A signal that ended a plugin: its number, and its name when this
/// platform has one. Displays as `SIGSEGV`, or `signal 77` for a number
/// without a name.
///
/// ```
/// use plugwarden::Signal;
/// let s = Signal::from_raw(11);
/// assert_eq!((s.number(), s.name()), (11, Some("SIGSEGV")));
/// assert_eq!(Signal::from_raw(77).to_string(), "signal 77");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Signal(i32);

impl Signal {
    /// The signal with number `number`.
    pub fn from_raw(number: i32) -> Signal {
        Signal(number)
    }

    /// Its number.
    pub fn number(self) -> i32 {
        self.0
    }

    /// Its name (`SIGSEGV`), if this platform has one for the number.
    pub fn name(self) -> Option<&'static str> {
        nix::sys::signal::Signal::try_from(self.0)
            .ok()
            .map(|s| s.as_str())
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

/// A system call the plugin made, as the kernel reported it to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Syscall {
    number: i64,
    name: Option<&'static str>,
    audit_arch: u32,
}

impl Syscall {
    /// Its number in the calling ABI's table.
    pub fn number(&self) -> i64 {
        self.number
    }

    /// Its name (`socket`), when the call came through the plugin's own
    /// ABI and this build knows the number.
    pub fn name(&self) -> Option<&'static str> {
        self.name
    }

    /// The kernel's `AUDIT_ARCH_*` value of the ABI it came through.
    pub fn audit_arch(&self) -> u32 {
        self.audit_arch
    }
}

impl fmt::Display for Syscall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Some(name) => f.write_str(name),
            None => write!(f, "syscall {}", self.number),
        }
    }
}

/// What a [`Verdict::Violation`] says: the denied call as a typed value
/// (when the host's seccomp program caught it) and the text the verdict
/// shows, the call with its arguments (`socket(AF_INET, SOCK_STREAM, 0)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    syscall: Option<Syscall>,
    detail: String,
}

impl Violation {
    /// The denied call; `None` when the plugin was killed by a seccomp
    /// program of its own (`SIGSYS`), which names no call to the host.
    pub fn syscall(&self) -> Option<&Syscall> {
        self.syscall.as_ref()
    }

    /// The text the verdict shows after `violation: `.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// A call caught by the host's seccomp program: `nr` of the ABI
    /// `audit_arch`, described as `detail`.
    pub(crate) fn caught(audit_arch: u32, nr: i32, detail: String) -> Violation {
        let native = crate::policy::groups::Arch::native();
        let name = (audit_arch == crate::seccomp::audit_arch(native))
            .then(|| crate::policy::groups::name_of(native, i64::from(nr)))
            .flatten();
        Violation {
            syscall: Some(Syscall {
                number: i64::from(nr),
                name,
                audit_arch,
            }),
            detail,
        }
    }

    /// The same violation with `prefix: ` before its text (a later stage
    /// of a pipeline names itself).
    pub(crate) fn prefixed(self, prefix: &str) -> Violation {
        Violation {
            detail: format!("{prefix}: {}", self.detail),
            ..self
        }
    }
}

impl From<String> for Violation {
    /// A violation the host knows only as text (no typed call).
    fn from(detail: String) -> Violation {
        Violation {
            syscall: None,
            detail,
        }
    }
}

impl From<&str> for Violation {
    /// A violation the host knows only as text (no typed call).
    fn from(detail: &str) -> Violation {
        Violation::from(detail.to_string())
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// All verdict words, in the order summaries print them.
pub const WORDS: [&str; 12] = [
    "ok",
    "plugin_error",
    "crashed",
    "timeout",
    "memory",
    "violation",
    "protocol_error",
    "output_limit",
    "setup_error",
    "input_error",
    "cancelled",
    "unsupported",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_display_violation_shows_word_and_detail() {
        let v = Verdict::Violation("socket(AF_INET, SOCK_STREAM, 0)".into());
        assert_eq!(v.to_string(), "violation: socket(AF_INET, SOCK_STREAM, 0)");
        let native = crate::policy::groups::Arch::native();
        let nr = (0..512)
            .find(|n| crate::policy::groups::name_of(native, *n) == Some("socket"))
            .unwrap();
        let caught = Violation::caught(
            crate::seccomp::audit_arch(native),
            nr as i32,
            "socket(AF_INET, SOCK_STREAM, 0)".into(),
        );
        assert_eq!(caught.syscall().and_then(Syscall::name), Some("socket"));
        let v = Verdict::Violation(caught);
        assert_eq!(v.to_string(), "violation: socket(AF_INET, SOCK_STREAM, 0)");
    }

    #[test]
    fn test_display_crash_names_signal() {
        let v = Verdict::Crashed {
            signal: Signal::from_raw(11),
            detail: String::new(),
        };
        assert_eq!(v.to_string(), "crashed: killed by SIGSEGV");
    }

    #[test]
    fn test_stderr_detail_quotes_the_last_line_and_escapes_it() {
        let tail = b"warning\n\x1b]0;pwned\x07\x1b[2J\nok      /etc/shadow\n\n";
        assert_eq!(
            stderr_detail(tail).unwrap(),
            "stderr \"ok      /etc/shadow\""
        );
        assert_eq!(
            stderr_detail(b"\x1b[2J\xff").unwrap(),
            "stderr \"\\x1b[2J\\xff\""
        );
        assert_eq!(stderr_detail(b" \n\n"), None);
    }

    #[test]
    fn test_words_cover_every_variant() {
        let all = [
            Verdict::Ok,
            Verdict::PluginError(String::new()),
            Verdict::Crashed {
                signal: Signal::from_raw(9),
                detail: String::new(),
            },
            Verdict::Timeout(TimeoutKind::Wall),
            Verdict::Memory(String::new()),
            Verdict::Violation(String::new().into()),
            Verdict::ProtocolError(String::new()),
            Verdict::OutputLimit(1),
            Verdict::SetupError(String::new()),
            Verdict::InputError(String::new()),
            Verdict::Cancelled,
            Verdict::Unsupported(String::new()),
        ];
        let words: Vec<_> = all.iter().map(Verdict::word).collect();
        assert_eq!(words, WORDS);
    }
}
