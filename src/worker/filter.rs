//! Filters: a fresh process per job, input on stdin, output on stdout.

use std::time::{Duration, Instant};

use super::stderr::suffix;
use super::supervise::looks_like_oom;
use super::{Attach, Conn, JobOutcome, Payload, Stop};
use crate::input::Input;
use crate::sandbox::{Mode, Sandbox};
use crate::sink::{OutputBuf, OutputSink};
use crate::verdict::Verdict;

/// Runs one job through a filter: a fresh process, input on stdin, output
/// from stdout, exit status 0 = ok.
pub fn run_filter(sandbox: &Sandbox, input: &[u8]) -> JobOutcome {
    filter_job(sandbox, Payload::Bytes(input), Attach::default(), None)
}

/// [`run_filter`] for an input that may be a file, streamed to the
/// filter's stdin in bounded chunks, with what the caller attaches; with
/// a `sink`, stdout goes to it as it is read (see [`Worker::run_input`]).
pub fn run_filter_input(
    sandbox: &Sandbox,
    input: &Input,
    attach: Attach,
    sink: Option<&mut dyn OutputSink>,
) -> JobOutcome {
    filter_job(sandbox, input.into(), attach, sink)
}

pub(super) fn filter_job(
    sandbox: &Sandbox,
    input: Payload,
    attach: Attach,
    sink: Option<&mut dyn OutputSink>,
) -> JobOutcome {
    if let Err(e) = sandbox.expect_mode(Mode::Filter, "a filter job") {
        return JobOutcome::failed(Verdict::SetupError(e.to_string()));
    }
    let started = Instant::now();
    let proc = match sandbox.spawn() {
        Ok(p) => p,
        Err(e) => return JobOutcome::failed(Verdict::SetupError(e.to_string())),
    };
    debug_assert_eq!(sandbox.plugin.mode, Mode::Filter);
    let limits = sandbox.policy.limits.clone();
    let mut held = OutputBuf::new(attach.spill.clone());
    let mut conn = Conn::new(proc, &sandbox.policy, sandbox.enforce, false);
    let sink = sink.unwrap_or(&mut held);
    if let Some(cancel) = &attach.cancel {
        sink.set_cancel(cancel.clone());
    }
    conn.raw = Some(sink);
    conn.attach = attach;
    conn.queue_input(input);
    let verdict = filter_verdict(&mut conn, started + limits.wall, limits.cpu);
    let info = conn.proc.terminate().unwrap_or_default();
    conn.end_stderr();
    let sink = conn.raw.take().expect("set above");
    let (verdict, saved) = match verdict {
        Verdict::Ok => match sink.end() {
            Ok(()) => (Verdict::Ok, sink.take_saved()),
            Err(v) => (v, None),
        },
        v => (v, None),
    };
    let notes = sink.take_notes();
    let mut outcome = JobOutcome {
        verdict,
        output: Vec::new(),
        saved,
        wall: started.elapsed(),
        cpu_ms: info.cpu_ms(),
        max_rss_kib: info.maxrss_kib,
        pid: conn.proc.pid,
        denied: std::mem::take(&mut conn.denied),
        paths: std::mem::take(&mut conn.paths),
        stderr_tail: conn.stderr_text(),
        notes,
    };
    drop(conn);
    if outcome.verdict.is_ok() {
        outcome.output = held.into_bytes();
    }
    outcome
}

/// Writes the input, closes stdin so the filter sees EOF, reads stdout
/// to its end and waits for the exit within `deadline`: exit status 0 is
/// ok.
fn filter_verdict(conn: &mut Conn, deadline: Instant, cpu_limit: Duration) -> Verdict {
    // Write everything, then close stdin so the filter sees EOF.
    let stop = conn.pump(deadline, None, |c| {
        if c.all_sent() {
            c.proc.stdin = None;
        }
        c.proc.stdin.is_none() && c.proc.stdout.is_none() && c.proc.has_exited()
    });
    match stop {
        Stop::Ready | Stop::Exited | Stop::StdoutClosed => {
            // stdout is at EOF; wait for the exit within the deadline.
            let stop = if conn.proc.has_exited() {
                Stop::Ready
            } else {
                conn.pump(deadline, None, |c| c.proc.has_exited())
            };
            match stop {
                Stop::Ready | Stop::Exited => match conn.proc.wait() {
                    Ok(info) if info.code() == Some(0) && conn.violation.is_none() => Verdict::Ok,
                    Ok(info) if info.code().is_some() && conn.violation.is_none() => {
                        let code = info.code().unwrap_or(-1);
                        let stderr = conn.stderr_text();
                        if looks_like_oom(&stderr) {
                            Verdict::Memory(format!(
                                "address-space limit reached (exit status {code})"
                            ))
                        } else {
                            Verdict::PluginError(format!(
                                "exit status {code}{}",
                                suffix(&conn.stderr_tail)
                            ))
                        }
                    }
                    Ok(info) => conn.exit_verdict(info, cpu_limit),
                    Err(e) => Verdict::ProtocolError(format!("cannot reap the plugin: {e}")),
                },
                other => conn.verdict_for(other, cpu_limit),
            }
        }
        other => conn.verdict_for(other, cpu_limit),
    }
}
