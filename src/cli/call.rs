//! `plugwarden call`: one input from stdin through a plugin; the output on
//! stdout when the verdict is ok, the verdict on stderr, and the plugin's
//! own stderr relayed live in between (bounded, escaped on a terminal).
//!
//! Ctrl-C or SIGTERM ends the job at once: the plugin is killed, the
//! verdict `cancelled` is printed and the exit status is 130 or 143. A
//! second signal exits without waiting for anything.

use std::io::{IsTerminal, Seek, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use clap::Args;
use plugwarden::input::{self, Input, InputError};
use plugwarden::sink::{Spill, SPILL_OVER};
use plugwarden::worker::{Attach, StderrRelay, STDERR_LIMIT};
use plugwarden::Verdict;

use super::run::{self, Signals};
use super::{parse_size, SandboxArgs, Usage, EXIT_INTERNAL, EXIT_OK, EXIT_VERDICT};

#[derive(Args)]
pub struct CallArgs {
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Largest input, e.g. 4GiB (overrides the policy's limits.input).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_input: Option<u64>,
    /// Relay the plugin's stderr byte for byte, escape sequences included
    /// (by default control characters are escaped when stderr is a terminal).
    #[arg(long)]
    raw_stderr: bool,
    /// Most of the plugin's stderr relayed per job; the rest is dropped with a note.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value_t = STDERR_LIMIT)]
    stderr_limit: u64,
}

pub fn call(a: CallArgs) -> Result<u8, Usage> {
    // Our handler first: the fork server ignores SIGINT itself, so a
    // Ctrl-C while it starts and prepares the profile ends the call too.
    let signals = Signals::register()?;
    let sandbox = a.sandbox.build()?;
    if signals.received().is_some() {
        return Ok(finish(&Verdict::Cancelled, &signals));
    }
    let limit = a.max_input.unwrap_or(sandbox.policy.limits.input);
    let input = match read_stdin(limit, &signals)? {
        Ok(input) => input,
        Err(verdict) => return Ok(finish(&verdict, &signals)),
    };
    let relay = StderrRelay {
        out: Box::new(std::io::stderr()),
        limit: a.stderr_limit,
        raw: a.raw_stderr || !std::io::stderr().is_terminal(),
    };
    let attach = Attach {
        cancel: Some(signals.any()),
        relay: Some(relay),
        spill: Some(Spill {
            over: SPILL_OVER,
            dir: Some(std::env::temp_dir()),
        }),
    };
    let outcome = run::run_one(&sandbox, &input, attach);
    for d in &outcome.denied {
        eprintln!("plugwarden: denied: {d}");
    }
    if outcome.verdict.is_ok() {
        let mut out = std::io::stdout().lock();
        let written = match outcome.saved.and_then(|s| s.file) {
            Some(mut file) => file
                .seek(std::io::SeekFrom::Start(0))
                .and_then(|_| std::io::copy(&mut file, &mut out))
                .map(drop),
            None => out.write_all(&outcome.output),
        };
        if let Err(e) = written.and_then(|()| out.flush()) {
            eprintln!("plugwarden: cannot write the output: {e}");
            return Ok(EXIT_INTERNAL);
        }
    }
    Ok(finish(&outcome.verdict, &signals))
}

/// Prints the verdict; the exit status for it.
fn finish(verdict: &Verdict, signals: &Signals) -> u8 {
    eprintln!("{verdict}");
    match (verdict, signals.received()) {
        (Verdict::Ok, _) => EXIT_OK,
        (Verdict::Cancelled, Some(code)) => code,
        _ => EXIT_VERDICT,
    }
}

/// The input from stdin, at most `limit` bytes: a regular file (`< file`)
/// is checked by size and streamed; a pipe is read (a big input into a
/// temporary file) on a thread while this one watches for signals (a read
/// that never ends cannot keep Ctrl-C from working).
fn read_stdin(limit: u64, signals: &Signals) -> Result<Result<Input, Verdict>, Usage> {
    let stdin = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Usage(format!("cannot use stdin: {e}")))?;
    let file = std::fs::File::from(stdin);
    let is_file = file.metadata().is_ok_and(|m| m.is_file());
    if is_file {
        return Ok(input::from_file(file, PathBuf::from("stdin"), limit)
            .and_then(Input::from_source)
            .map_err(|e| Verdict::InputError(e.to_string())));
    }
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("pw-stdin".into())
        .spawn(move || {
            let _ = tx.send(input::read_stream(file, limit));
        })
        .map_err(|e| Usage(format!("cannot start the stdin reader: {e}")))?;
    loop {
        if signals.received().is_some() {
            return Ok(Err(Verdict::Cancelled));
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok(Ok(input))) => return Ok(Ok(input)),
            Ok(Ok(Err(e))) => return Ok(Err(Verdict::InputError(e.to_string()))),
            Ok(Err(e)) => return Err(Usage(format!("cannot read the input from stdin: {e}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Ok(Err(Verdict::InputError(
                    InputError::StreamTooLarge { limit }.to_string(),
                )))
            }
        }
    }
}
