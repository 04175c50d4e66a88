#!/usr/bin/python3
"""Who uses the CPUs during one crunchctl batch (suite 4's "where the CPU goes").

    bench/cpu_accounting.py --build-dir build --kind sha256 --workers 2 [--concurrency 8]

Starts crunchd --workers N, runs one warm-up batch, then one measured batch of
the same `crunchctl run ... --repeat TASKS --concurrency C` as bench/cpu_scaling.py,
and prints the CPU time (user + system) that the workers, crunchd itself and
crunchctl used for it: crunchd's and the workers' from /proc/PID/stat before
and after, crunchctl's from wait4. Not a suite of scripts/bench: a profile for
reading suite 4's figures.
"""
import argparse
import os
import subprocess
import tempfile
import time

from benchlib import children, cpu_ticks, crunchd
from cpu_scaling import kind_args

TICK = os.sysconf("SC_CLK_TCK")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build-dir", default="build")
    p.add_argument("--kind", choices=["spin", "sha256"], default="sha256")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tasks", type=int, default=400)
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        input_file = os.path.join(tmp, "1MiB")
        with open(input_file, "wb") as f:
            f.write(os.urandom(1 << 20))
        with crunchd(args.build_dir, tmp, args.workers) as server:
            argv = [os.path.join(args.build_dir, "bin", "crunchctl"), "--address",
                    server.address, "run"] + kind_args(args.kind, input_file) + [
                        "--repeat", str(args.tasks), "--concurrency", str(args.concurrency)]
            subprocess.run(argv, capture_output=True, check=True)  # Warm up.
            daemon = server.proc.pid
            workers = children(daemon)
            before = {pid: cpu_ticks(pid) for pid in [daemon] + workers}
            start = time.monotonic()
            ctl = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
            _, status, usage = os.wait4(ctl.pid, 0)
            wall = time.monotonic() - start
            if status != 0:
                raise SystemExit(f"crunchctl failed: {' '.join(argv)}")
            used = {pid: (cpu_ticks(pid) - before[pid]) / TICK for pid in before}
    worker_s = sum(used[pid] for pid in workers)
    daemon_s = used[daemon]
    ctl_s = usage.ru_utime + usage.ru_stime
    cpus = os.cpu_count() or 1
    total = cpus * wall
    n = args.tasks
    print(f"{args.kind}, {args.workers} worker(s), concurrency {args.concurrency}: "
          f"{n / wall:,.0f} tasks/s; of {total:.2f} CPU-s ({cpus} CPUs x {wall:.2f} s): "
          f"workers {worker_s:.2f}, crunchd {daemon_s:.2f}, crunchctl {ctl_s:.2f} "
          f"({(worker_s + daemon_s + ctl_s) / total:.0%} used); per task: "
          f"worker {worker_s / n * 1e3:.2f} ms, crunchd {daemon_s / n * 1e3:.2f} ms, "
          f"crunchctl {ctl_s / n * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
