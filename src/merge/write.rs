//! Writing the merged log: a `merge` record, then every shard's input
//! records relinked into one chain.

use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::audit::{self, ChainWriter, JobRecord, Line, MergedSource, VerifySummary, MAX_LINE};
use crate::escape;

use super::ShardLog;
use super::{check, MergeError, Origin, Report};

/// Checks the logs and, when they prove every input judged exactly once,
/// writes them as one chain to `out`: a `merge` record citing each shard
/// log, then each log's input records in shard order. Returns the report
/// and, if it wrote, what `audit verify` says of the merged log.
pub fn merge(
    origins: &[Origin<'_>],
    inputs: Option<&[PathBuf]>,
    out: &Path,
) -> Result<(Report, Option<VerifySummary>), MergeError> {
    let write_error = |source| MergeError::Write {
        path: out.to_owned(),
        source,
    };
    if out.symlink_metadata().is_ok() {
        return Err(MergeError::Exists {
            path: out.to_owned(),
        });
    }
    let report = check(origins, inputs)?;
    if !report.proves_exactly_once() {
        return Ok((report, None));
    }
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".plugwarden-merge-")
        .tempfile_in(dir)
        .map_err(write_error)?;
    let writer = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
    let (writer, summary) = write_merged(origins, &report, writer)?;
    writer
        .into_inner()
        .map_err(|e| write_error(e.into_error()))?;
    tmp.as_file().sync_all().map_err(write_error)?;
    tmp.persist_noclobber(out)
        .map_err(|e| match e.error.kind() {
            io::ErrorKind::AlreadyExists => MergeError::Exists {
                path: out.to_owned(),
            },
            _ => write_error(e.error),
        })?;
    Ok((report, Some(summary)))
}

/// The merged chain: the `merge` record, then every input record of each
/// log in shard order, each log verified again as it is copied. Returns
/// the writer and what `audit verify` will say of the chain.
pub fn write_merged<W: Write>(
    origins: &[Origin<'_>],
    report: &Report,
    out: W,
) -> Result<(W, VerifySummary), MergeError> {
    let mut chain = ChainWriter::new(out);
    let sources = report
        .shards
        .iter()
        .map(|s| MergedSource {
            file: escape::name(&s.file),
            shard: s.shard,
            records: s.records,
            last_hash: s.last_hash.clone(),
            copied: s.input_records,
        })
        .collect();
    let mut head = Line::Job(JobRecord {
        time: audit::now(),
        event: audit::MERGE.to_owned(),
        job: report.job.clone(),
        inputs: Some(report.done()),
        sources,
        ..JobRecord::default()
    });
    let out_error = |source| MergeError::Write {
        path: PathBuf::from("the merged log"),
        source,
    };
    chain.push(&mut head).map_err(out_error)?;
    for log in &report.shards {
        let origin = origins
            .iter()
            .find(|o| o.name() == log.file)
            .ok_or_else(|| MergeError::Changed {
                file: log.file.clone(),
            })?;
        copy_inputs(origin, log, &mut chain)?;
    }
    Ok(chain.finish())
}

/// Appends the input records of `log` to `chain`, from the bytes the first
/// pass verified: they must chain to the same final hash. A reader thread
/// follows the old chain while this one seals the new one, so the two
/// hashes of each record are computed on two cores.
pub(super) fn copy_inputs<W: Write>(
    origin: &Origin<'_>,
    log: &ShardLog,
    chain: &mut ChainWriter<W>,
) -> Result<(), MergeError> {
    let changed = || MergeError::Changed {
        file: log.file.clone(),
    };
    let (lines, batches) = std::sync::mpsc::sync_channel(16);
    std::thread::scope(|s| {
        let reader = s.spawn(|| relinked_inputs(origin, log, lines));
        let written = batches.into_iter().flatten().try_for_each(|line: Vec<u8>| {
            chain
                .push_verified(&line)
                .ok_or_else(changed)?
                .map_err(|source| MergeError::Write {
                    path: PathBuf::from("the merged log"),
                    source,
                })
        });
        let read = reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        read.and(written)
    })
}

/// Reads `log` again, checks each line still chains as the first pass
/// found it, and sends its input records in batches; fails when the file
/// does not end at the same hash. Stops early if the receiver is gone.
pub(super) fn relinked_inputs(
    origin: &Origin<'_>,
    log: &ShardLog,
    lines: std::sync::mpsc::SyncSender<Vec<Vec<u8>>>,
) -> Result<(), MergeError> {
    const BATCH: usize = 256;
    let changed = || MergeError::Changed {
        file: log.file.clone(),
    };
    let mut reader = origin.reader()?;
    let mut jobs = log.job_lines.iter().peekable();
    let mut buf = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut line = 0u64;
    let mut last_hash = audit::GENESIS.to_owned();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| MergeError::Read {
                file: log.file.clone(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line += 1;
        let content = buf.strip_suffix(b"\n").ok_or_else(changed)?;
        let hash = audit::relink(content, &last_hash).ok_or_else(changed)?;
        hash.clone_into(&mut last_hash);
        if jobs.next_if_eq(&&line).is_some() {
            continue;
        }
        batch.push(content.to_vec());
        if batch.len() == BATCH && lines.send(std::mem::take(&mut batch)).is_err() {
            return Ok(());
        }
    }
    if line != log.records || last_hash != log.last_hash {
        return Err(changed());
    }
    let _ = lines.send(batch);
    Ok(())
}
