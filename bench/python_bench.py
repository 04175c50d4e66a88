#!/usr/bin/python3
"""Suite 3 of docs/benchmarks.md: crunch.Executor against Python's own process pools.

    bench/python_bench.py --build-dir build                  # 20,000 tasks, 3 repetitions
    bench/python_bench.py --build-dir build --quick          # smoke test, about 15 s

What Python users run today against the project's Python client, on the same
tasks: `noop` (return the input) and `fib(20)` (the naive recursion), N of each,
every result consumed in order:

  crunch.Executor            ex.map("noop", items) / ex.map("fib", [20] * N, param="n")
                             against crunchd --workers 2, started once by this script
  ProcessPoolExecutor(2)     ex.map(f, items)                     (chunksize 1, its default)
  multiprocessing.Pool(2)    pool.imap(f, items, chunksize=1)
  crunch_load (C++)          one RunStream with 64 noop tasks in flight (noop only:
                             crunch_load sends no parameters)

f is the same task in Python: `noop(x) = x`, `fib(n)` by the same recursion as
crunchd's fib kind. Each measurement runs in a fresh interpreter (this script
with --one), so no pool forks a process that holds gRPC's threads and no run
inherits another's heap; the pool or executor is started and warmed up before
the clock starts. Repetitions are interleaved (each repetition runs every
contender, in an order rotated by one each time), so load from elsewhere on the
machine hits all alike. Figures are medians over the repetitions; each ratio is
of the medians, with its range over the per-repetition ratios.

Targets (issue 7): Executor >= 3x ProcessPoolExecutor and >= 1x Pool.imap;
crunch_load over RunStream >= 3x Pool.imap (noop).
"""
import argparse
import concurrent.futures
import json
import multiprocessing
import os
import shlex
import subprocess
import sys
import tempfile
import time

from benchlib import (add_common_args, by_how_much, command, crunchd, crunchd_command, loadavg,
                      logger, median, now, record_target, run_json)

SUITE = "3. Python framework overhead"
WORKERS = 2
FIB_N = 20
CONTENDERS = ["executor", "ppe", "imap", "load"]
NAMES = {
    "executor": "crunch.Executor",
    "ppe": "ProcessPoolExecutor(2).map",
    "imap": "multiprocessing.Pool(2).imap(chunksize=1)",
    "load": "crunch_load, RunStream, 64 in flight (C++)",
}
TARGETS = [  # (contender, baseline, workload, at least)
    ("executor", "ppe", "noop", 3.0),
    ("executor", "imap", "noop", 1.0),
    ("executor", "ppe", "fib", 3.0),
    ("executor", "imap", "fib", 1.0),
    ("load", "imap", "noop", 3.0),
]
log = logger("python_bench")


def noop(x):
    return x


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


# --- one measurement, in a fresh interpreter ---------------------------------

def measure_one(contender, workload, n, address):
    """Tasks/s of one contender on one workload; the clock covers map and consuming the results."""
    if workload == "noop":
        items, func, expected = [b""] * n, noop, b""
    else:
        items, func, expected = [FIB_N] * n, fib, fib(FIB_N)
    if contender == "executor":
        import crunch  # Only here: the pools' children never import grpc.
        with crunch.Executor(address) as ex:
            if workload == "noop":
                run = lambda xs: ex.map("noop", xs)  # noqa: E731
            else:
                run = lambda xs: ex.map("fib", xs, param="n")  # noqa: E731
                expected = str(expected).encode()
            return timed(run, items, expected)
    if contender == "ppe":
        with concurrent.futures.ProcessPoolExecutor(WORKERS) as ex:
            return timed(lambda xs: ex.map(func, xs), items, expected)
    if contender == "imap":
        with multiprocessing.Pool(WORKERS) as pool:
            return timed(lambda xs: pool.imap(func, xs, chunksize=1), items, expected)
    raise ValueError(contender)


def timed(run, items, expected):
    for r in run(items[:64]):  # Warm-up: start the processes, open the streams.
        assert r == expected, (r, expected)
    start = time.perf_counter()
    last = None
    for last in run(items):
        pass
    seconds = time.perf_counter() - start
    assert last == expected, (last, expected)
    return {"tasks": len(items), "seconds": seconds, "tasks_per_s": len(items) / seconds}


# --- the suite ---------------------------------------------------------------

def child_env(build_dir):
    env = dict(os.environ)
    paths = [os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "clients", "python"),
             os.path.join(build_dir, "clients", "python", "gen")]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_contender(args, contender, workload, server):
    if contender == "load":
        return run_json([os.path.join(args.build_dir, "bin", "crunch_load"), "--address",
                         server.address, "--mode", "stream", "--in-flight", "64",
                         "--tasks", str(args.tasks), "--warmup", "0.3"])
    argv = [sys.executable, os.path.abspath(__file__), "--one", contender, "--workload", workload,
            "--tasks", str(args.tasks), "--address", server.address]
    out = subprocess.run(argv, capture_output=True, text=True, env=child_env(args.build_dir),
                         timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({out.returncode}): "
                           f"{out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--tasks", type=int, default=20000, help="tasks per run (default 20000)")
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--one", choices=CONTENDERS, help=argparse.SUPPRESS)
    p.add_argument("--workload", choices=["noop", "fib"], help=argparse.SUPPRESS)
    p.add_argument("--address", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.workload, args.tasks, args.address)))
        return
    if args.quick:
        args.tasks, args.repetitions = 300, 1

    runs = [(c, w) for w in ("noop", "fib") for c in CONTENDERS if not (c == "load" and w == "fib")]
    results = {run: [] for run in runs}
    load_before, started = loadavg(), now()
    with tempfile.TemporaryDirectory(prefix="crunch-python-bench-") as tmp:
        with crunchd(args.build_dir, tmp, WORKERS) as server:
            for rep in range(args.repetitions):
                order = runs[rep % len(runs):] + runs[:rep % len(runs)]
                for contender, workload in order:
                    r = run_contender(args, contender, workload, server)
                    results[(contender, workload)].append(r["tasks_per_s"])
                    log(f"rep {rep + 1}/{args.repetitions} {workload:4} {NAMES[contender]:45} "
                        f"{r['tasks_per_s']:9,.0f} tasks/s")
    load_after = os.getloadavg()

    def rate(c, w):
        return median(results[(c, w)])

    print(f"Measured {started} on {os.cpu_count()} CPUs; medians of {args.repetitions} "
          f"repetitions of {args.tasks:,} tasks per contender and task. Load average (1/5/15 min) "
          f"{load_before} before, {'{:.2f} / {:.2f} / {:.2f}'.format(*load_after)} after.\n")
    print(f"Command: `{command('bench/python_bench.py')}`\n")
    print(f"crunchd started as `{crunchd_command(WORKERS)}`; the Python side runs under "
          f"`/usr/bin/python3` ({sys.version.split()[0]}) with "
          f"`PYTHONPATH=clients/python:BUILD/clients/python/gen`; the C++ load tool as "
          f"`crunch_load --address unix:SOCKET --mode stream --in-flight 64 --tasks {args.tasks} "
          f"--warmup 0.3`.\n")
    print("| task | contender | tasks/s | vs ProcessPoolExecutor (range) | vs Pool.imap (range) |")
    print("|---|---|---|---|---|")
    for workload, label in (("noop", "noop"), ("fib", f"fib({FIB_N})")):
        for c in CONTENDERS:
            if (c, workload) not in results:
                continue
            cells = []
            for base in ("ppe", "imap"):
                ratios = [a / b for a, b in zip(results[(c, workload)], results[(base, workload)])]
                cells.append(f"{rate(c, workload) / rate(base, workload):.2f}x "
                             f"({min(ratios):.2f}-{max(ratios):.2f})")
            print(f"| {label} | {NAMES[c]} | {rate(c, workload):,.0f} | {cells[0]} | {cells[1]} |")

    print("\n| target | figure | target | |")
    print("|---|---|---|---|")
    for c, base, workload, target in TARGETS:
        ratio = rate(c, workload) / rate(base, workload)
        label = "noop" if workload == "noop" else f"fib({FIB_N})"
        what = f"{NAMES[c].split(',')[0]} vs {NAMES[base].split('(')[0]}, {label}"
        if base == "imap":
            what = f"{NAMES[c].split(',')[0]} vs Pool.imap, {label}"
        print(f"| {what} | {ratio:.2f}x | >= {target:g}x | {by_how_much(ratio, target)} |")
        record_target(args.targets, SUITE, what, f"{ratio:.2f}x", f">= {target:g}x",
                      ratio >= target, by_how_much(ratio, target))


if __name__ == "__main__":
    main()
