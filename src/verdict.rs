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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The plugin produced an output.
    Ok,
    /// The plugin refused the input with a message, or a filter exited non-zero.
    PluginError(String),
    /// The plugin died from a signal.
    Crashed { signal: i32, detail: String },
    /// The plugin missed a deadline.
    Timeout(TimeoutKind),
    /// The plugin hit its memory limit.
    Memory(String),
    /// The plugin made a system call its policy denies, named with its arguments.
    Violation(String),
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
            Verdict::PluginError(s)
            | Verdict::Memory(s)
            | Verdict::Violation(s)
            | Verdict::ProtocolError(s)
            | Verdict::SetupError(s)
            | Verdict::InputError(s)
            | Verdict::Unsupported(s) => s.clone(),
            Verdict::Crashed { signal, detail } => {
                let name = signal_name(*signal);
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
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {sig}"),
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
    }

    #[test]
    fn test_display_crash_names_signal() {
        let v = Verdict::Crashed {
            signal: 11,
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
                signal: 9,
                detail: String::new(),
            },
            Verdict::Timeout(TimeoutKind::Wall),
            Verdict::Memory(String::new()),
            Verdict::Violation(String::new()),
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
