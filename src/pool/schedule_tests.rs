//! The pool's scheduling against stand-in plugins at the process
//! boundary ([`crate::sandbox::fake`]): dynamic dispatch, the recycling
//! triggers, retry then quarantine, cancel. Each stand-in is a test
//! thread speaking the wire protocol on real pipes; a real child process
//! stands for its life.

use super::*;
use crate::sandbox::fake::{self, Plugin};
use crate::sandbox::Enforce;

/// What the stand-ins of one pool share.
#[derive(Default)]
struct Seen {
    /// A `flaky` input has killed a stand-in.
    flaky: AtomicBool,
    /// A stand-in is holding a `hang` input.
    hanging: AtomicBool,
}

/// How a stand-in answers: `die` kills it, `hang` never answers, `slow`
/// answers after a second, `flaky` kills the first stand-in it reaches
/// (of this pool), anything else is echoed.
fn script(mut p: Plugin, seen: &Seen) {
    if p.read_frame().is_none() {
        return;
    }
    p.hello(0);
    while let Some(job) = p.read_frame() {
        match &job.payload[..] {
            b"die" => return p.die(),
            b"flaky" if !seen.flaky.swap(true, Ordering::SeqCst) => return p.die(),
            b"hang" => {
                seen.hanging.store(true, Ordering::SeqCst);
                while p.read_frame().is_some() {}
                return;
            }
            b"slow" => {
                std::thread::sleep(Duration::from_secs(1));
                p.send(crate::protocol::Kind::Done, 0, job.id, b"slow");
            }
            other => p.send(crate::protocol::Kind::Done, 0, job.id, other),
        }
    }
}

fn config(workers: usize, batch: u64) -> PoolConfig {
    PoolConfig {
        workers,
        batch,
        recycle_rss: u64::MAX,
        max_lifetime: Duration::from_secs(3600),
        retry: true,
        spill: None,
    }
}

fn start(config: PoolConfig) -> (Pool<usize>, Feeder<usize>) {
    start_seen(config, Arc::default())
}

fn start_seen(config: PoolConfig, seen: Arc<Seen>) -> (Pool<usize>, Feeder<usize>) {
    let mut policy = crate::policy::load("default").expect("the built-in policy");
    policy.limits.wall = Duration::from_secs(20);
    let policy = Arc::new(policy);
    let max_frame = policy.limits.max_frame;
    let stand_in = move || {
        let (proc, plugin) = fake::process(None);
        let seen = seen.clone();
        std::thread::spawn(move || script(plugin, &seen));
        Worker::with_process(proc, &policy, Enforce::Policy)
    };
    Pool::start_from(Source::Fake(Arc::new(stand_in), max_frame), config).expect("start the pool")
}

/// Runs `inputs` (tagged by position) and returns the results by tag.
fn run(config: PoolConfig, inputs: &[&[u8]]) -> (Vec<Finished<usize>>, PoolStats) {
    let (pool, feeder) = start(config);
    for (tag, input) in inputs.iter().enumerate() {
        let task = Task {
            tag,
            input: Ok(Input::Bytes(input.to_vec())),
            sink: None,
        };
        assert!(feeder.submit(task).is_ok());
    }
    drop(feeder);
    let mut results: Vec<_> = pool.results().iter().collect();
    results.sort_by_key(|f| f.tag);
    (results, pool.join())
}

#[test]
fn test_a_slow_input_holds_up_only_its_own_slot() {
    let (pool, feeder) = start(config(2, 1000));
    let mut inputs: Vec<&[u8]> = vec![b"slow"];
    inputs.extend([&b"fast"[..]; 8]);
    for (tag, input) in inputs.iter().enumerate() {
        let input = Ok(Input::Bytes(input.to_vec()));
        assert!(feeder
            .submit(Task {
                tag,
                input,
                sink: None
            })
            .is_ok());
    }
    drop(feeder);

    let order: Vec<usize> = pool.results().iter().map(|f| f.tag).collect();
    pool.join();

    assert_eq!(order.len(), 9);
    assert_eq!(
        order.last(),
        Some(&0),
        "the slow input ends last: {order:?}"
    );
}

#[test]
fn test_a_worker_is_recycled_after_its_batch() {
    let (results, stats) = run(config(1, 3), &[&b"a"[..]; 7]);

    let generations: Vec<_> = results.iter().map(|f| f.generation).collect();
    let reasons: Vec<_> = results.iter().map(|f| f.recycle_reason).collect();
    let first = generations[0].expect("a worker ran it");
    let g = |k: u64| Some(first + k);
    assert_eq!(generations, [g(0), g(0), g(0), g(1), g(1), g(1), g(2)]);
    let batch = Some(RecycleReason::Batch);
    assert_eq!(reasons, [None, None, batch, None, None, batch, None]);
    assert_eq!(
        stats.recycles_by_reason().next(),
        Some((RecycleReason::Batch, 2))
    );
    assert!(results.iter().all(|f| f.outcome.output == b"a"));
}

#[test]
fn test_a_worker_past_recycle_rss_is_recycled() {
    let config = PoolConfig {
        recycle_rss: 1,
        ..config(1, 1000)
    };

    let (results, _) = run(config, &[b"a", b"b"]);

    let reasons: Vec<_> = results.iter().map(|f| f.recycle_reason).collect();
    assert_eq!(reasons, [Some(RecycleReason::Rss); 2]);
    assert_ne!(results[0].generation, results[1].generation);
}

#[test]
fn test_a_worker_past_max_lifetime_is_recycled() {
    let config = PoolConfig {
        max_lifetime: Duration::ZERO,
        ..config(1, 1000)
    };

    let (results, _) = run(config, &[b"a"]);

    assert_eq!(results[0].recycle_reason, Some(RecycleReason::Lifetime));
}

#[test]
fn test_a_crash_is_retried_once_then_quarantined() {
    let (results, stats) = run(config(1, 1000), &[b"die", b"after"]);

    let died = &results[0];
    assert!(
        matches!(
            died.outcome.verdict,
            Verdict::Crashed { signal, .. } if signal.number() == libc::SIGKILL
        ),
        "{:?}",
        died.outcome.verdict
    );
    assert_eq!((died.attempt, died.poison), (2, true));
    assert_eq!(died.recycle_reason, Some(RecycleReason::Tainted));
    assert!(
        died.notes[0].contains("retried on a fresh worker"),
        "{:?}",
        died.notes
    );
    assert_eq!(results[1].outcome.output, b"after");
    assert_eq!(stats.recycles[RecycleReason::Tainted.index()], 2);
}

#[test]
fn test_a_crash_that_passes_on_retry_is_not_poison() {
    let (results, _) = run(config(1, 1000), &[b"flaky"]);

    let f = &results[0];
    assert_eq!(f.outcome.output, b"flaky");
    assert_eq!((f.attempt, f.poison), (2, false));
}

#[test]
fn test_without_retry_a_crash_is_final_at_once() {
    let config = PoolConfig {
        retry: false,
        ..config(1, 1000)
    };

    let (results, _) = run(config, &[b"die"]);

    assert_eq!((results[0].attempt, results[0].poison), (1, false));
}

#[test]
fn test_jobs_behind_one_that_killed_the_worker_run_again() {
    let mut inputs: Vec<&[u8]> = vec![b"a"; 20];
    inputs[10] = b"die";

    let (results, _) = run(config(1, 1000), &inputs);

    assert_eq!(results.len(), 20);
    for f in results.iter().filter(|f| f.tag != 10) {
        assert_eq!(
            (f.outcome.verdict.clone(), f.attempt),
            (Verdict::Ok, 1),
            "{}",
            f.tag
        );
    }
    assert!(results[10].poison);
}

#[test]
fn test_cancel_kills_the_job_in_flight_and_it_ends_cancelled() {
    let seen = Arc::new(Seen::default());
    let (pool, feeder) = start_seen(config(1, 1000), seen.clone());
    let input = Ok(Input::Bytes(b"hang".to_vec()));
    assert!(feeder
        .submit(Task {
            tag: 0,
            input,
            sink: None
        })
        .is_ok());
    // The job is in flight once the stand-in holds it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.hanging.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }

    pool.cancel();
    let results: Vec<_> = pool.results().iter().collect();
    pool.join();

    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome.verdict, Verdict::Cancelled);
    assert!(feeder.is_stopped());
}
