#!/usr/bin/python3
"""Suite 5 of docs/benchmarks.md: the article's workload, fib 28, 30 and 32.

    bench/article_bench.py --build-dir build                 # 5 repetitions
    bench/article_bench.py --build-dir build --quick         # smoke test (fib 20, 22, 24)

The article's CPU example computes fib(28), fib(30) and fib(32) (naive recursion)
in parallel. Two ways, each timed as a whole command, from its start to its exit:

  crunchctl   three `crunchctl run fib -p n=N` started at once (one per number),
              against a crunchd --workers 2 that is already running (a daemon
              is started once, as it would be on a host)
  Python      the article's program under /usr/bin/python3: a
              multiprocessing.Pool() (2 processes on this machine) and
              pool.map(fib, [28, 30, 32]); it also reports the time of pool.map
              alone, without the interpreter's start and the pool's

Repetitions alternate which goes first; medians over them. The ratio is Python's
wall time over crunchctl's (how many times faster crunchd answers). No target
in issue 7: the figure says what moving this workload to crunchd buys.
"""
import argparse
import os
import subprocess
import tempfile
import time

from benchlib import (add_common_args, command, crunchd, crunchd_command, loadavg, logger, median,
                      now)

SUITE = "5. The article's workload"
log = logger("article_bench")

ARTICLE_PROGRAM = '''\
import sys, time
from multiprocessing import Pool


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


if __name__ == "__main__":
    with Pool() as pool:
        start = time.perf_counter()
        results = pool.map(fib, [{numbers}])
        print(time.perf_counter() - start, file=sys.stderr)
    print(results)
'''


def run_crunchctl(args, server, numbers, kind="fib"):
    """Wall time of len(numbers) concurrent crunchctl processes; kind noop measures their start."""
    crunchctl = os.path.join(args.build_dir, "bin", "crunchctl")
    task = (lambda n: ["fib", "-p", f"n={n}"]) if kind == "fib" else (lambda n: ["noop"])
    start = time.perf_counter()
    procs = [subprocess.Popen([crunchctl, "--address", server.address, "run"] + task(n),
                              stdout=subprocess.PIPE, text=True) for n in numbers]
    outputs = [p.communicate()[0].strip() for p in procs]
    seconds = time.perf_counter() - start
    if any(p.returncode != 0 for p in procs):
        raise RuntimeError(f"crunchctl run fib failed: {outputs}")
    return seconds, outputs


def run_python(program):
    start = time.perf_counter()
    out = subprocess.run(["/usr/bin/python3", program], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"the article's program failed: {out.stderr.strip()[-2000:]}")
    return seconds, float(out.stderr.strip().splitlines()[-1]), out.stdout.strip()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--repetitions", type=int, default=5)
    args = p.parse_args()
    numbers = [20, 22, 24] if args.quick else [28, 30, 32]
    if args.quick:
        args.repetitions = 1

    cc, py, py_map, floor = [], [], [], []
    load_before, started = loadavg(), now()
    with tempfile.TemporaryDirectory(prefix="crunch-article-") as tmp:
        program = os.path.join(tmp, "article.py")
        with open(program, "w") as f:
            f.write(ARTICLE_PROGRAM.format(numbers=", ".join(map(str, numbers))))
        with crunchd(args.build_dir, tmp, 2) as server:
            run_crunchctl(args, server, numbers)  # Warm-up: workers up, pages in.
            for rep in range(args.repetitions):
                for who in (("crunchctl", "python") if rep % 2 == 0 else ("python", "crunchctl")):
                    if who == "crunchctl":
                        seconds, outputs = run_crunchctl(args, server, numbers)
                        cc.append(seconds)
                        floor.append(run_crunchctl(args, server, numbers, kind="noop")[0])
                    else:
                        seconds, map_seconds, printed = run_python(program)
                        py.append(seconds)
                        py_map.append(map_seconds)
                    log(f"rep {rep + 1}/{args.repetitions} {who:9} {seconds * 1000:8.1f} ms")
        expected = f"[{', '.join(outputs)}]"
        if printed != expected:
            raise RuntimeError(f"results differ: crunchd {expected}, Python {printed}")
    load_after = os.getloadavg()

    c, pw, pm, fl = median(cc), median(py), median(py_map), median(floor)
    ratios = [b / a for a, b in zip(cc, py)]
    label = ", ".join(map(str, numbers))
    print(f"Measured {started} on {os.cpu_count()} CPUs; medians of {args.repetitions} "
          f"repetitions. Load average (1/5/15 min) {load_before} before, "
          f"{'{:.2f} / {:.2f} / {:.2f}'.format(*load_after)} after.\n")
    print(f"Command: `{command('bench/article_bench.py')}`\n")
    print(f"crunchctl: `for n in {' '.join(map(str, numbers))}; do crunchctl --address "
          f"unix:SOCKET run fib -p n=$n & done; wait` against `{crunchd_command(2)}`, started "
          f"beforehand. Python: `/usr/bin/python3 article.py` (the program is in "
          f"`bench/article_bench.py`), `Pool()` = {os.cpu_count()} processes.\n")
    print(f"| fib({label}) | wall time | Python / crunchctl (range) |")
    print("|---|---|---|")
    print(f"| three crunchctl processes against crunchd | {c * 1000:,.1f} ms | 1.00x |")
    print(f"| for scale: three `crunchctl run noop` (the processes' start and connect) | "
          f"{fl * 1000:,.1f} ms | |")
    print(f"| the article's Python program, whole | {pw * 1000:,.1f} ms | {pw / c:.2f}x "
          f"({min(ratios):.2f}-{max(ratios):.2f}) |")
    print(f"| the article's `pool.map` alone | {pm * 1000:,.1f} ms | {pm / c:.2f}x |")


if __name__ == "__main__":
    main()
