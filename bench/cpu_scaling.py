#!/usr/bin/python3
"""Suite 4 of docs/benchmarks.md: CPU scaling from 1 to 2 worker processes.

    bench/cpu_scaling.py --build-dir build                   # 400 tasks, 3 repetitions
    bench/cpu_scaling.py --build-dir build --quick           # smoke test, about 10 s

400 `spin` tasks of 5 ms and 400 `sha256` tasks of 1 MiB (random bytes), each as
one batch through crunchctl (`crunchctl run KIND --repeat 400 --concurrency 8`,
one RunStream), against crunchd --workers 1 and crunchd --workers 2. Throughput
is tasks over crunchctl's own wall time (first request to last result).
Efficiency = 2-worker throughput / (2 x 1-worker throughput). Repetitions are
interleaved: each starts one daemon, runs both kinds, stops it and starts the
other, alternating which goes first. Medians over the repetitions; the
efficiency is of the medians, its range over the per-repetition ratios.

Target (issue 7): efficiency >= 0.9 for both kinds.
"""
import argparse
import os
import re
import shlex
import subprocess
import tempfile

from benchlib import (add_common_args, by_how_much, command, crunchd, crunchd_command, loadavg,
                      logger, median, now, record_target)

SUITE = "4. CPU scaling"
TARGET = 0.9
CONCURRENCY = 8
log = logger("cpu_scaling")


def batch(args, server, kind, input_file):
    """Tasks/s of one crunchctl batch, from crunchctl's own summary."""
    argv = [os.path.join(args.build_dir, "bin", "crunchctl"), "--address", server.address, "run"]
    argv += kind_args(kind, input_file) + ["--repeat", str(args.tasks),
                                           "--concurrency", str(CONCURRENCY)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({out.returncode}): "
                           f"{(out.stdout + out.stderr).strip()[-2000:]}")
    ok = re.search(r"^tasks\s+(\d+) \((\d+) ok", out.stdout, re.M)
    wall = re.search(r"^wall time\s+([0-9.]+) s", out.stdout, re.M)
    if not ok or not wall or ok.group(1) != ok.group(2):
        raise RuntimeError(f"unexpected crunchctl output: {out.stdout}")
    return int(ok.group(1)) / float(wall.group(1))


def kind_args(kind, input_file):
    if kind == "spin":
        return ["spin", "-p", "ms=5"]
    return ["sha256", "--input", input_file]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--tasks", type=int, default=400)
    p.add_argument("--repetitions", type=int, default=3)
    args = p.parse_args()
    if args.quick:
        args.tasks, args.repetitions = 40, 1

    kinds = ["spin", "sha256"]
    results = {(k, w): [] for k in kinds for w in (1, 2)}
    load_before, started = loadavg(), now()
    with tempfile.TemporaryDirectory(prefix="crunch-cpu-scaling-") as tmp:
        input_file = os.path.join(tmp, "1MiB")
        with open(input_file, "wb") as f:
            f.write(os.urandom(1 << 20))
        for rep in range(args.repetitions):
            for workers in ((1, 2) if rep % 2 == 0 else (2, 1)):
                with crunchd(args.build_dir, tmp, workers, name=f"crunchd{workers}") as server:
                    batch(args, server, "spin", input_file)  # Warm-up: workers up, pages in.
                    for kind in kinds:
                        rate = batch(args, server, kind, input_file)
                        results[(kind, workers)].append(rate)
                        log(f"rep {rep + 1}/{args.repetitions} {kind:6} --workers {workers}: "
                            f"{rate:8.1f} tasks/s")
    load_after = os.getloadavg()

    print(f"Measured {started} on {os.cpu_count()} CPUs; medians of {args.repetitions} "
          f"repetitions of {args.tasks} tasks per kind and worker count. Load average (1/5/15 "
          f"min) {load_before} before, {'{:.2f} / {:.2f} / {:.2f}'.format(*load_after)} after.\n")
    print(f"Command: `{command('bench/cpu_scaling.py')}`\n")
    print(f"Each batch: `crunchctl --address unix:SOCKET run spin -p ms=5 --repeat {args.tasks} "
          f"--concurrency {CONCURRENCY}` and `crunchctl --address unix:SOCKET run sha256 --input "
          f"1MiB-FILE --repeat {args.tasks} --concurrency {CONCURRENCY}`; crunchd started as "
          f"`{crunchd_command('N')}` with N = 1 and 2.\n")
    print("| task | 1 worker tasks/s | 2 workers tasks/s | speed-up | efficiency (range) "
          "| ideal 2-worker tasks/s | target | |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        one, two = median(results[(kind, 1)]), median(results[(kind, 2)])
        eff = two / (2 * one)
        effs = [b / (2 * a) for a, b in zip(results[(kind, 1)], results[(kind, 2)])]
        label = "spin, 5 ms" if kind == "spin" else "sha256, 1 MiB"
        ideal = "400" if kind == "spin" else f"{2 * one:,.0f}"
        print(f"| {label} | {one:,.1f} | {two:,.1f} | {two / one:.2f}x | {eff:.2f} "
              f"({min(effs):.2f}-{max(effs):.2f}) | {ideal} | >= {TARGET} | "
              f"{by_how_much(eff, TARGET)} |")
        record_target(args.targets, SUITE, f"efficiency, {label}", f"{eff:.2f}", f">= {TARGET}",
                      eff >= TARGET, by_how_much(eff, TARGET))


if __name__ == "__main__":
    main()
