//! The feeder: walks the inputs, reads each, and queues it for the pool
//! (skipping what `--resume` finds recorded).

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use plugwarden::input::{self, Entry, Input, InputError};
use plugwarden::pool::{Feeder, Task};
use plugwarden::sink::OutputSink;
use plugwarden::verdict::Verdict;
use sha2::{Digest, Sha256};

use crate::cli::shard::Sharding;

/// What travels with an input through the pool.
pub struct Item {
    /// The input's path as walked, exact (the audit `input`).
    pub(super) path: PathBuf,
    pub(super) rel: PathBuf,
    pub(super) sha256: Option<String>,
    /// Which pool (and plugin) the input went to.
    pub(super) route: usize,
}

/// Picks the pool for an input from its first bytes (at least
/// [`plugwarden::input::HEAD`], or all of a shorter input) and, when they
/// are not enough (a container's directory), the input itself; or gives
/// its verdict without running it (e.g. `unsupported`).
pub type Router = dyn Fn(&[u8], &Input) -> Result<usize, Verdict> + Send + Sync;

/// Turns an ok output of route `r` into the bytes and the relative name to
/// write; an error becomes the input's verdict.
pub type Converter = dyn Fn(usize, &Path, Vec<u8>) -> Result<(Vec<u8>, PathBuf), Verdict>;

/// Gives a routed input of route `r` (named `rel`) its final form and,
/// when its output should be written as it arrives, a sink for it.
pub type Preparer =
    dyn Fn(usize, &Path, Input) -> (Input, Option<Box<dyn OutputSink>>) + Send + Sync;

pub(in crate::cli) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub(in crate::cli) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Counts the feeder shares with the consumer.
#[derive(Default)]
pub(super) struct FeedState {
    pub(super) submitted: AtomicU64,
    pub(super) skipped: AtomicU64,
    pub(super) walk_done: AtomicBool,
}

/// Walks, opens and queues every input; skips those already recorded.
pub(super) fn feed(
    inputs: &[PathBuf],
    sharding: &Sharding,
    feeders: &[Feeder<Item>],
    routing: &Routing,
    recorded: &HashSet<(Vec<u8>, String)>,
    state: &FeedState,
) {
    for entry in input::walk(inputs).filter(|e| sharding.owns(inputs, e)) {
        if feeders.iter().any(Feeder::is_stopped) {
            return;
        }
        let Some(task) = task_for(entry, routing, recorded) else {
            state.skipped.fetch_add(1, Ordering::SeqCst);
            continue;
        };
        let route = task.tag.route.min(feeders.len() - 1);
        if feeders[route].submit(task).is_err() {
            return;
        }
        state.submitted.fetch_add(1, Ordering::SeqCst);
    }
    state.walk_done.store(true, Ordering::SeqCst);
}

/// How the feeder turns an input into a task for one of the pools.
pub(super) struct Routing {
    pub(super) router: Box<Router>,
    pub(super) prepare: Option<Box<Preparer>>,
    /// The largest input each route takes.
    pub(super) limits: Vec<u64>,
}

/// One walked entry as a task: opened within the largest route's limit,
/// hashed, routed by its first bytes, checked against its route's limit
/// and prepared for it; `None` when `--resume` skips it.
pub(super) fn task_for(
    entry: Result<Entry, InputError>,
    routing: &Routing,
    recorded: &HashSet<(Vec<u8>, String)>,
) -> Option<Task<Item>> {
    let limits = &routing.limits;
    let (path, rel) = match &entry {
        Ok(e) => (e.path.clone(), e.rel.clone()),
        Err(InputError::Io { path, .. }) => (path.clone(), PathBuf::new()),
        Err(_) => (PathBuf::new(), PathBuf::new()),
    };
    let mut tag = Item {
        path,
        rel,
        sha256: None,
        route: 0,
    };
    let largest = limits.iter().copied().max().unwrap_or(0);
    let (input, sha, head) = match entry.and_then(|e| read_input(&e, largest)) {
        Ok(read) => read,
        Err(e) => {
            let input = Err(Verdict::InputError(e.to_string()));
            return Some(Task {
                tag,
                input,
                sink: None,
            });
        }
    };
    let key = (tag.path.as_os_str().as_bytes().to_vec(), sha);
    if recorded.contains(&key) {
        return None;
    }
    tag.sha256 = Some(key.1);
    let input = (routing.router)(&head, &input).and_then(|route| {
        tag.route = route;
        let limit = limits.get(route).copied().unwrap_or(largest);
        if input.len() > limit {
            let too_large = InputError::TooLarge {
                len: input.len(),
                limit,
            };
            return Err(Verdict::InputError(too_large.to_string()));
        }
        Ok(input)
    });
    let (input, sink) = match (input, &routing.prepare) {
        (Ok(input), Some(prepare)) => {
            let (input, sink) = prepare(tag.route, &tag.rel, input);
            (Ok(input), sink)
        }
        (input, _) => (input, None),
    };
    Some(Task { tag, input, sink })
}

/// Opens one input within `limit`: the input (read whole when small), its
/// sha256 and its first bytes for the router.
pub(super) fn read_input(
    entry: &Entry,
    limit: u64,
) -> Result<(Input, String, Vec<u8>), InputError> {
    let src = input::open(entry, limit)?;
    match Input::from_source(src)? {
        Input::Bytes(b) => {
            let sha = sha256_hex(&b);
            let head = b[..b.len().min(input::HEAD)].to_vec();
            Ok((Input::Bytes(b), sha, head))
        }
        Input::File(src) => {
            let sha = src.sha256()?;
            let head = src.head()?;
            Ok((Input::File(src), sha, head))
        }
    }
}
