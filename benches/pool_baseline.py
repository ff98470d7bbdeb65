#!/usr/bin/env python3
"""Python process-pool baseline for the plugin host.

2000 trivial tasks; each task ships a 4 KiB bytes payload plus an int to a
worker and gets (x*x, payload) back, so 4 KiB moves each way.  Workers are
recycled after K tasks (maxtasksperchild / max_tasks_per_child).  Time is
wall clock from pool creation to pool shutdown (so worker start-up and
recycling are included).  Reports tasks/second: median, min, max over rounds.

Usage: pool_baseline.py [--tasks 2000] [--rounds 5]
       pool_baseline.py --only K [--tasks N]   (for plugwarden-bench: one
           timed run of multiprocessing.Pool(2, maxtasksperchild=K), fork
           context, after a 50-task warm-up; prints "RESULT <tasks/s>")
       pool_baseline.py --files IN OUT --only K   (for plugwarden-bench:
           what `plugwarden run --out OUT IN` does, the Python way: list IN,
           then Pool(2, maxtasksperchild=K) reads each file and writes it
           under the same name in OUT with plain open/write/close, no fsync;
           prints "RESULT <files/s>", timed from the listing to the pool's end)

plugwarden-bench embeds this file and runs it with --only.
"""
import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
import statistics
import sys
import time

PAYLOAD = os.urandom(4096)


def task(arg):
    x, payload = arg
    return x * x, payload


def run_pool(n_tasks, k, ctx_name):
    ctx = mp.get_context(ctx_name)
    args = [(i, PAYLOAD) for i in range(n_tasks)]
    t0 = time.perf_counter()
    with ctx.Pool(2, maxtasksperchild=k) as pool:
        out = pool.map(task, args, chunksize=1)
        pool.close()
        pool.join()
    dt = time.perf_counter() - t0
    assert out[-1][0] == (n_tasks - 1) ** 2 and len(out[-1][1]) == 4096
    return n_tasks / dt


def copy_file(arg):
    src, dst = arg
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data)
    return len(data)


def run_files(src_dir, out_dir, k):
    t0 = time.perf_counter()
    names = sorted(os.listdir(src_dir))
    os.makedirs(out_dir, exist_ok=True)
    args = [(os.path.join(src_dir, n), os.path.join(out_dir, n)) for n in names]
    with mp.get_context("fork").Pool(2, maxtasksperchild=k) as pool:
        done = sum(1 for _ in pool.imap_unordered(copy_file, args, chunksize=1))
    return done / (time.perf_counter() - t0)


def run_executor(n_tasks, k, ctx_name, inflight=None):
    """inflight=None: executor.map (whole backlog queued at once).
    inflight=N: at most N tasks submitted and not yet finished; this dodges
    CPython gh-115634 (executor stops replacing workers recycled by
    max_tasks_per_child while a backlog is queued -> hangs forever)."""
    ctx = mp.get_context(ctx_name) if ctx_name else None
    args = [(i, PAYLOAD) for i in range(n_tasks)]
    t0 = time.perf_counter()
    kw = {"max_workers": 2, "mp_context": ctx}
    if k is not None:
        kw["max_tasks_per_child"] = k
    with cf.ProcessPoolExecutor(**kw) as ex:
        if inflight is None:
            out = list(ex.map(task, args, chunksize=1))
            last = out[-1][0]
        else:
            pend, nxt, done, last = set(), 0, 0, None
            while done < n_tasks:
                while nxt < n_tasks and len(pend) < inflight:
                    pend.add(ex.submit(task, args[nxt]))
                    nxt += 1
                fin, pend = cf.wait(pend, timeout=30, return_when=cf.FIRST_COMPLETED)
                if not fin:
                    raise RuntimeError(f"no task finished in 30 s after {done} tasks")
                for f in fin:
                    r = f.result()
                    if r[0] == (n_tasks - 1) ** 2:
                        last = r[0]
                done += len(fin)
    dt = time.perf_counter() - t0
    assert last == (n_tasks - 1) ** 2
    return n_tasks / dt


def hang_check(ctx_name, k, n_tasks=200, timeout=30):
    """Run executor.map with max_tasks_per_child in a child interpreter with a
    timeout; returns a short verdict string."""
    import subprocess
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import pool_baseline as pb\n"
            f"if __name__ == '__main__':\n"
            f"    print(pb.run_executor({n_tasks}, {k}, {ctx_name!r}))\n")
    import signal
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-B", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # its own session: interpreter + workers + helpers
        p.communicate()
        return f"HUNG: no result after {timeout} s ({n_tasks} tasks; CPython gh-115634)"
    if p.returncode != 0:
        return "ERROR: " + (err.strip().splitlines() or ["?"])[-1]
    return f"completed in {time.perf_counter() - t0:.1f} s: {float(out):.0f} tasks/s"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", type=int, default=None)
    ap.add_argument("--files", nargs=2, metavar=("IN", "OUT"), default=None)
    a = ap.parse_args()
    if a.files is not None:
        print(f"RESULT {run_files(a.files[0], a.files[1], a.only or 100):.1f}", flush=True)
        return
    if a.only is not None:
        run_pool(50, a.only, "fork")  # warm-up
        print(f"RESULT {run_pool(a.tasks, a.only, 'fork'):.1f}", flush=True)
        return
    print(f"# python {sys.version.split()[0]} ({sys.executable}), {a.tasks} tasks of 4 KiB each way, "
          f"{a.rounds} rounds, 2 workers; tasks/s median [min-max]; us/task = 1e6/median")
    cases = []
    for k in (1, 10, 100, None):
        cases.append((f"multiprocessing.Pool(2, maxtasksperchild={k}) fork", run_pool, k, "fork"))
    cases.append(("multiprocessing.Pool(2, maxtasksperchild=10) forkserver", run_pool, 10, "forkserver"))
    cases.append(("multiprocessing.Pool(2, maxtasksperchild=10) spawn", run_pool, 10, "spawn"))
    # In 3.11 max_tasks_per_child with no mp_context makes the executor use
    # 'spawn'; 'fork' is refused with ValueError.  executor.map hangs
    # (gh-115634), so these run with at most 2 tasks in flight.
    bounded = lambda n, k, ctx: run_executor(n, k, ctx, inflight=2)
    cases.append(("ProcessPoolExecutor(2, max_tasks_per_child=10) default ctx(=spawn), <=2 in flight", bounded, 10, None))
    cases.append(("ProcessPoolExecutor(2, max_tasks_per_child=10) forkserver, <=2 in flight", bounded, 10, "forkserver"))
    cases.append(("ProcessPoolExecutor(2) no recycling, fork, <=2 in flight", bounded, None, "fork"))
    cases.append(("ProcessPoolExecutor(2) no recycling, fork, executor.map", run_executor, None, "fork"))
    for name, fn, k, ctx in cases:
        rounds = a.rounds
        if ctx in (None, "spawn"):  # spawn is slow; fewer rounds keep the run short
            rounds = min(rounds, 3)
        fn(min(a.tasks, 50), k, ctx)  # warm-up
        xs = sorted(fn(a.tasks, k, ctx) for _ in range(rounds))
        med = statistics.median(xs)
        print(f"{name:<70} {med:9.0f} tasks/s [{xs[0]:.0f}-{xs[-1]:.0f}] "
              f"{1e6 / med:8.0f} us/task  rounds={rounds}", flush=True)
    try:
        cf.ProcessPoolExecutor(2, mp_context=mp.get_context("fork"), max_tasks_per_child=10)
        verdict = "accepted"
    except ValueError as e:
        verdict = f"ValueError: {e}"
    print(f"ProcessPoolExecutor(2, max_tasks_per_child=10, fork ctx): {verdict}")
    for ctx in (None, "forkserver"):
        print(f"ProcessPoolExecutor(2, max_tasks_per_child=10, ctx={ctx or 'default(spawn)'}) + executor.map(200 tasks): "
              f"{hang_check(ctx, 10)}", flush=True)


if __name__ == "__main__":
    main()
