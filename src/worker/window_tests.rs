//! The worker's life against a stand-in plugin at the process boundary
//! ([`crate::sandbox::fake`]): a test thread reads the host's frames from
//! real pipes and answers them, a real child process stands for the
//! plugin's life. Greeting, the arena offer, a late or double answer,
//! death in the middle of a window.

use super::*;
use crate::policy::Policy;
use crate::protocol::{self, Frame, Kind};
use crate::sandbox::fake::{self, Plugin};
use std::io::Write;
use std::thread::JoinHandle;

/// A worker on a stand-in plugin run by `script` on its own thread.
fn worker(
    arena: Option<usize>,
    tune: impl FnOnce(&mut Policy),
    script: impl FnOnce(Plugin) + Send + 'static,
) -> (Worker, JoinHandle<()>) {
    let mut policy = crate::policy::load("default").expect("the built-in policy");
    policy.limits.wall = Duration::from_secs(10);
    tune(&mut policy);
    let (proc, plugin) = fake::process(arena);
    let worker = Worker::with_process(proc, &Arc::new(policy), Enforce::Policy);
    (worker, std::thread::spawn(move || script(plugin)))
}

/// Reads the host's hello and answers with `flags`.
fn greet(p: &mut Plugin, flags: u8) {
    let hello = p.read_frame().expect("the host's hello");
    assert_eq!(hello.kind, Kind::Hello);
    p.hello(flags);
}

/// Answers the next `n` jobs with their own input.
fn echo(p: &mut Plugin, n: usize) {
    for _ in 0..n {
        let job = p.read_frame().expect("a job");
        assert_eq!(job.kind, Kind::Job);
        p.send(Kind::Done, 0, job.id, &job.payload);
    }
}

fn end(w: Worker, plugin: JoinHandle<()>) {
    drop(w);
    plugin.join().expect("the stand-in's script");
}

#[test]
fn test_fresh_worker_reads_the_hello_with_its_first_answer() {
    let (mut w, p) = worker(
        None,
        |_| {},
        |mut p| {
            greet(&mut p, 0);
            echo(&mut p, 2);
        },
    );
    assert_eq!(w.life, Life::Fresh);

    let first = w.run_job(b"one");
    let second = w.run_job(b"two");

    assert_eq!(
        (first.verdict, first.output),
        (Verdict::Ok, b"one".to_vec())
    );
    assert_eq!(
        (second.verdict, second.output),
        (Verdict::Ok, b"two".to_vec())
    );
    assert_eq!(
        w.life,
        Life::Greeted {
            arena: false,
            parts: false
        }
    );
    assert_eq!(w.jobs, 2);
    end(w, p);
}

#[test]
fn test_an_answer_before_the_hello_ends_the_worker() {
    let (mut w, p) = worker(
        None,
        |_| {},
        |mut p| {
            let _ = p.read_frame();
            p.send(Kind::Done, 0, 1, b"too early");
            let _ = p.read_frame();
        },
    );

    let o = w.run_job(b"x");

    assert!(
        matches!(&o.verdict, Verdict::ProtocolError(m) if m.contains("expected hello")),
        "{:?}",
        o.verdict
    );
    assert_eq!(w.life, Life::Dead);
    end(w, p);
}

#[test]
fn test_a_dead_worker_runs_nothing() {
    let (mut w, p) = worker(
        None,
        |_| {},
        |mut p| {
            greet(&mut p, 0);
            let _ = p.read_frame();
            p.send(Kind::Done, 0, 9, b"");
            let _ = p.read_frame();
        },
    );
    assert!(!w.run_job(b"x").verdict.is_ok());

    let again = w.run_job(b"y");
    let window = w.run_batch(&[b"a", b"b"]);

    assert!(!w.is_alive());
    assert_eq!(
        again.verdict,
        Verdict::ProtocolError("the worker is no longer running".into())
    );
    assert!(window.is_empty());
    end(w, p);
}

#[test]
fn test_an_answer_to_a_job_never_sent_is_a_protocol_error() {
    let (mut w, p) = worker(
        None,
        |_| {},
        |mut p| {
            greet(&mut p, 0);
            let _ = p.read_frame();
            p.send(Kind::Done, 0, 7, b"");
            let _ = p.read_frame();
        },
    );

    let o = w.run_job(b"x");

    assert!(
        matches!(&o.verdict, Verdict::ProtocolError(m) if m.contains("job 7 which was never sent")),
        "{:?}",
        o.verdict
    );
    assert!(!w.is_alive());
    end(w, p);
}

#[test]
fn test_a_plugin_error_keeps_the_worker() {
    let (mut w, p) = worker(
        None,
        |_| {},
        |mut p| {
            greet(&mut p, 0);
            let job = p.read_frame().expect("a job");
            p.send(Kind::Error, 0, job.id, b"no\x1b[2J");
            echo(&mut p, 1);
        },
    );

    let refused = w.run_job(b"bad");
    let next = w.run_job(b"good");

    assert_eq!(refused.verdict, Verdict::PluginError("no\\x1b[2J".into()));
    assert_eq!(next.output, b"good");
    assert!(w.is_alive());
    end(w, p);
}

#[test]
fn test_a_double_answer_to_a_job_alone_is_bytes_after_its_answer() {
    let (mut w, p) = worker(
        None,
        |_| {},
        |mut p| {
            greet(&mut p, 0);
            let job = p.read_frame().expect("a job");
            // Both answers in one write: the host reads them together.
            let mut both = Vec::new();
            protocol::encode_frame(&mut both, Kind::Done, job.id, b"a");
            protocol::encode_frame(&mut both, Kind::Done, job.id, b"b");
            let _ = p.output.write_all(&both);
            let _ = p.read_frame();
        },
    );

    let o = w.run_job(b"x");

    assert_eq!(
        o.verdict,
        Verdict::ProtocolError("the plugin sent bytes after its answer".into())
    );
    assert!(!w.is_alive());
    end(w, p);
}

#[test]
fn test_a_late_answer_in_a_window_blames_the_job_answered_twice() {
    let (mut w, p) = worker(
        None,
        |_| {},
        |mut p| {
            greet(&mut p, 0);
            let jobs: Vec<Frame> = (0..3).filter_map(|_| p.read_frame()).collect();
            p.send(Kind::Done, 0, jobs[0].id, b"first");
            p.send(Kind::Done, 0, jobs[0].id, b"first, again");
            p.send(Kind::Done, 0, jobs[1].id, b"second");
            let _ = p.read_frame();
        },
    );

    let out = w.run_batch(&[b"1", b"2", b"3"]);

    // The job answered twice broke the protocol; the one awaited then
    // and the rest have no outcome (a pool resends them).
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].verdict,
        Verdict::ProtocolError("the plugin sent bytes after its answer".into())
    );
    assert!(out[0].output.is_empty());
    assert!(!w.is_alive());
    end(w, p);
}

#[test]
fn test_death_in_the_middle_of_a_window_ends_it_at_the_job_it_killed() {
    let (mut w, p) = worker(
        None,
        |_| {},
        |mut p| {
            greet(&mut p, 0);
            let jobs: Vec<Frame> = (0..3).filter_map(|_| p.read_frame()).collect();
            p.send(Kind::Done, 0, jobs[0].id, b"first");
            let _ = p.stderr.write_all(b"dying\n");
            p.die();
        },
    );

    let out = w.run_batch(&[b"1", b"2", b"3"]);

    assert_eq!(
        out.len(),
        2,
        "no outcome for the job behind the one that died"
    );
    assert_eq!(out[1].stderr_tail, "dying");
    assert_eq!(out[0].output, b"first");
    assert!(
        matches!(
            out[1].verdict,
            Verdict::Crashed { signal, .. } if signal.number() == libc::SIGKILL
        ),
        "{:?}",
        out[1].verdict
    );
    assert!(!w.is_alive());
    end(w, p);
}

#[test]
fn test_a_window_answers_every_job_in_order() {
    let (mut w, p) = worker(
        None,
        |_| {},
        |mut p| {
            greet(&mut p, 0);
            echo(&mut p, 4);
        },
    );

    let out = w.run_batch(&[b"a", b"b", b"c", b"d"]);

    let answers: Vec<&[u8]> = out.iter().map(|o| &o.output[..]).collect();
    assert_eq!(answers, [b"a", b"b", b"c", b"d"]);
    assert_eq!(w.jobs, 4);
    end(w, p);
}

#[test]
fn test_no_answer_within_the_wall_limit_kills_the_worker() {
    let tune = |p: &mut Policy| p.limits.wall = Duration::from_millis(300);
    let (mut w, p) = worker(None, tune, |mut p| {
        greet(&mut p, 0);
        while p.read_frame().is_some() {}
    });

    let o = w.run_job(b"x");

    assert_eq!(o.verdict, Verdict::Timeout(TimeoutKind::Wall));
    assert!(!w.is_alive());
    end(w, p);
}

#[test]
fn test_a_cancelled_job_ends_cancelled() {
    let (mut w, p) = worker(None, |_| {}, |mut p| while p.read_frame().is_some() {});
    let cancel = Arc::new(AtomicBool::new(true));
    w.attach(Attach {
        cancel: Some(cancel),
        ..Attach::default()
    });

    let o = w.run_job(b"x");

    assert_eq!(o.verdict, Verdict::Cancelled);
    end(w, p);
}

/// An arena of 256 KiB per region; inputs of at least 64 KiB go there.
const REGION: usize = 256 << 10;

#[test]
fn test_the_arena_is_offered_once_the_hello_says_it_is_mapped() {
    let (mut w, p) = worker(
        Some(REGION),
        |_| {},
        |mut p| {
            greet(&mut p, protocol::FLAG_ARENA);
            let job = p.read_frame().expect("a job");
            assert_eq!(
                job.flags,
                protocol::FLAG_ARENA | protocol::FLAG_REPLY_IN_ARENA
            );
            let slice = protocol::ArenaSlice::parse(&job.payload).expect("a slice");
            let arena = p.arena.as_ref().expect("mapped");
            let mut input = Vec::new();
            assert!(arena.read_into(slice.offset as usize, slice.len as usize, &mut input));
            input.reverse();
            assert!(arena.write(REGION, &input));
            let answer = protocol::ArenaSlice {
                offset: REGION as u64,
                len: input.len() as u64,
            };
            p.send(Kind::Done, protocol::FLAG_ARENA, job.id, &answer.encode());
            let _ = p.read_frame();
        },
    );
    let input: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();

    let o = w.run_job(&input);

    let mut reversed = input.clone();
    reversed.reverse();
    assert_eq!(o.verdict, Verdict::Ok);
    assert!(o.output == reversed);
    assert_eq!((w.arena_inputs, w.arena_parts), (1, 1));
    assert!(w.arena_on());
    end(w, p);
}

#[test]
fn test_an_arena_answer_the_host_did_not_offer_is_a_protocol_error() {
    // The plugin has an arena but does not say it maps it: no offer.
    let (mut w, p) = worker(
        Some(REGION),
        |_| {},
        |mut p| {
            greet(&mut p, 0);
            let job = p.read_frame().expect("a job");
            assert_eq!(job.flags, 0);
            let answer = protocol::ArenaSlice {
                offset: REGION as u64,
                len: 1,
            };
            p.send(Kind::Done, protocol::FLAG_ARENA, job.id, &answer.encode());
            let _ = p.read_frame();
        },
    );

    let o = w.run_job(b"small");

    assert!(
        matches!(&o.verdict, Verdict::ProtocolError(m) if m.contains("did not offer")),
        "{:?}",
        o.verdict
    );
    assert!(!w.is_alive());
    end(w, p);
}

#[test]
fn test_a_window_offers_the_arena_to_its_first_bulk_input_only() {
    let (mut w, p) = worker(
        Some(REGION),
        |_| {},
        |mut p| {
            greet(&mut p, protocol::FLAG_ARENA);
            let jobs: Vec<Frame> = (0..3).filter_map(|_| p.read_frame()).collect();
            let flags: Vec<u8> = jobs.iter().map(|j| j.flags).collect();
            let both = protocol::FLAG_ARENA | protocol::FLAG_REPLY_IN_ARENA;
            assert_eq!(flags, [0, both, 0]);
            for j in &jobs {
                p.send(Kind::Done, 0, j.id, b"ok");
            }
            let _ = p.read_frame();
        },
    );
    let bulk = vec![7u8; 70_000];

    let out = w.run_batch(&[b"small", &bulk, &bulk]);

    assert!(out.iter().all(|o| o.output == b"ok"), "{out:?}");
    assert_eq!(w.arena_inputs, 1);
    end(w, p);
}

#[test]
fn test_an_input_over_one_frame_goes_in_parts_when_the_plugin_takes_them() {
    let tune = |p: &mut Policy| p.limits.max_frame = 1 << 10;
    let (mut w, p) = worker(None, tune, |mut p| {
        greet(&mut p, protocol::FLAG_INPUT_PARTS);
        let mut input = Vec::new();
        loop {
            let f = p.read_frame().expect("a part");
            input.extend_from_slice(&f.payload);
            if f.kind == Kind::Job {
                p.send(Kind::Done, 0, f.id, &(input.len() as u64).to_le_bytes());
                break;
            }
            assert_eq!(f.kind, Kind::Part);
        }
        let _ = p.read_frame();
    });
    let input = vec![1u8; 300 << 10];

    let o = w.run_job(&input);

    assert_eq!(o.verdict, Verdict::Ok);
    assert_eq!(o.output, (300u64 << 10).to_le_bytes());
    assert!(w.parts_on());
    end(w, p);
}

#[test]
fn test_an_input_over_one_frame_is_refused_when_the_plugin_takes_no_parts() {
    let tune = |p: &mut Policy| p.limits.max_frame = 1 << 10;
    let (mut w, p) = worker(None, tune, |mut p| {
        greet(&mut p, 0);
        echo(&mut p, 1);
    });

    let refused = w.run_job(&[0u8; 2 << 10]);
    let next = w.run_job(b"fits");

    assert!(
        matches!(&refused.verdict, Verdict::InputError(m) if m.contains("does not take inputs in parts")),
        "{:?}",
        refused.verdict
    );
    assert_eq!(next.output, b"fits");
    assert!(w.is_alive());
    end(w, p);
}

#[test]
fn test_a_job_alone_is_offered_the_arena_for_its_answer_a_pipelined_one_is_not() {
    let (mut w, p) = worker(
        Some(REGION),
        |_| {},
        |mut p| {
            greet(&mut p, protocol::FLAG_ARENA);
            let alone = p.read_frame().expect("a job");
            assert_eq!(alone.flags, protocol::FLAG_REPLY_IN_ARENA);
            p.send(Kind::Done, 0, alone.id, b"a");
            let pipelined = p.read_frame().expect("a job");
            assert_eq!(pipelined.flags, 0);
            p.send(Kind::Done, 0, pipelined.id, b"b");
            let _ = p.read_frame();
        },
    );

    let alone = w.run_job(b"small");
    let pipelined = w.run_batch(&[b"small"]);

    assert_eq!(alone.output, b"a");
    assert_eq!(pipelined[0].output, b"b");
    end(w, p);
}
