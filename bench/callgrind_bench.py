#!/usr/bin/python3
"""Suite 8 of docs/benchmarks.md: instructions the daemon executes per task.

    bench/callgrind_bench.py --build-dir build               # about 3 minutes
    bench/callgrind_bench.py --build-dir build --quick       # smoke test (unary only), about 40 s

The server runs under `valgrind --tool=callgrind` (its own process only: the
worker processes are not traced). crunch_load, outside valgrind, sends noop
tasks; the server stops on SIGTERM and callgrind writes its totals. Each
server is run twice, with N1 and N2 tasks, and the cost per task is
(Ir(N2) - Ir(N1)) / (N2 - N1): start-up, shutdown and everything else that does
not grow with the task count cancel out. Instruction counts do not depend on
the machine's load, so this is the figure that tracks regressions from run to
run (timers that fire during the run add a little noise: compare differences
of a few percent with care).

Baseline in the same run: crunch_echo_server (a bare async gRPC server built
from the same gRPC, answering Run at once; bench/echo_server.cc) under the
same client, which is what gRPC itself costs per call. The table also lists
the functions with the most instructions of their own per task in crunchd.
"""
import argparse
import os
import re
import signal
import subprocess
import tempfile

from benchlib import (Server, add_common_args, command, loadavg, logger, now, record_target,
                      run_json)

SUITE = "8. Cost per task"
log = logger("callgrind")

MODES = [("unary", ["--mode", "unary", "--in-flight", "8"], "Run, 8 in flight"),
         ("stream", ["--mode", "stream", "--in-flight", "64"], "RunStream, 64 in flight")]


def server_argv(build_dir, which, sock):
    bindir = os.path.join(build_dir, "bin")
    if which == "crunchd":
        return [os.path.join(bindir, "crunchd"), "--listen", f"unix:{sock}", "--workers", "1",
                "--log-level", "warn"]
    return [os.path.join(bindir, "crunch_echo_server"), "--listen", f"unix:{sock}",
            "--threads", "2"]


def measure(args, tmp, which, mode_args, tasks):
    """Total Ir of one server process that served `tasks` noop tasks, and its profile file."""
    sock = os.path.join(tmp, f"{which}.sock")
    out = os.path.join(tmp, f"{which}-{tasks}-{mode_args[1]}.callgrind")
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            "--trace-children=no"] + server_argv(args.build_dir, which, sock)
    server = Server(which, argv, sock)
    server.start()
    try:
        if tasks:
            run_json([os.path.join(args.build_dir, "bin", "crunch_load"), "--address",
                      server.address, "--tasks", str(tasks), "--warmup", "0"] + mode_args)
    finally:
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=300)
        server.log.close()
    text = open(out).read()
    m = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
    if not m:
        raise RuntimeError(f"no totals in {out}")
    return int(m.group(1)), out


def top_functions(profile, tasks_delta, small_profile, n=8):
    """The n functions with the most self instructions per task (difference of two runs)."""
    def self_costs(path):
        out = subprocess.run(["callgrind_annotate", "--threshold=100", path],
                             capture_output=True, text=True, check=True).stdout
        costs = {}
        for line in out.splitlines():
            m = re.match(r"\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(.+?)\s*$", line)
            if m and ":" in m.group(2):
                costs[m.group(2)] = costs.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
        return costs
    big, small = self_costs(profile), self_costs(small_profile)
    per_task = {f: (c - small.get(f, 0)) / tasks_delta for f, c in big.items()}
    return sorted(per_task.items(), key=lambda kv: -kv[1])[:n]


def short(function):
    """`file:function` as callgrind_annotate prints it, with the argument list dropped."""
    where, _, name = function.partition(":")
    name = re.sub(r"\(.*", "", name).strip()
    return f"{name} ({os.path.basename(where)})" if where != "???" else name


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--tasks", type=int, nargs=2, default=[2000, 12000], metavar=("N1", "N2"))
    args = p.parse_args()
    modes = MODES
    if args.quick:
        args.tasks, modes = [200, 1200], MODES[:1]
    n1, n2 = args.tasks

    load_before, started = loadavg(), now()
    rows, profiles = [], {}
    with tempfile.TemporaryDirectory(prefix="crunch-callgrind-") as tmp:
        for mode, mode_args, label in modes:
            cost = {}
            for which in ("crunch_echo_server", "crunchd"):
                (ir1, prof1), (ir2, prof2) = (measure(args, tmp, which, mode_args, n)
                                              for n in (n1, n2))
                cost[which] = (ir2 - ir1) / (n2 - n1)
                log(f"{label}: {which} {cost[which]:,.0f} instructions per task")
                if which == "crunchd" and mode == "unary":
                    profiles = {"top": top_functions(prof2, n2 - n1, prof1)}
            rows.append((label, cost["crunch_echo_server"], cost["crunchd"]))

    print(f"Measured {started}; instruction counts, so the machine's load (1/5/15 min "
          f"{load_before} before, {loadavg()} after) does not change them.\n")
    print(f"Command: `{command('bench/callgrind_bench.py')}`. Each server runs under "
          f"`valgrind --tool=callgrind` twice, serving {n1:,} and {n2:,} noop tasks from "
          f"`crunch_load --tasks N` (outside valgrind); per task = the difference of the totals "
          f"/ {n2 - n1:,}. crunchd as `crunchd --listen unix:SOCKET --workers 1 --log-level warn` "
          f"(its worker process not traced), the echo server as `crunch_echo_server --listen "
          f"unix:SOCKET --threads 2`.\n")
    print("| calls | echo server, instructions per task | crunchd, instructions per task "
          "| crunchd / echo |")
    print("|---|---|---|---|")
    for label, echo, daemon in rows:
        print(f"| {label} | {echo:,.0f} | {daemon:,.0f} | {daemon / echo:.2f}x |")
        record_target(args.targets, SUITE, f"daemon instructions per noop task, {label}",
                      f"{daemon:,.0f} ({daemon / echo:.2f}x the echo server)",
                      "tracked (no target)", None, "tracked")
    if profiles.get("top"):
        print(f"\nWhere crunchd's instructions go, unary Run (self instructions per task, the "
              f"{len(profiles['top'])} largest; from `callgrind_annotate`):\n")
        print("| function | instructions per task |")
        print("|---|---|")
        for function, per_task in profiles["top"]:
            print(f"| `{short(function)}` | {per_task:,.0f} |")


if __name__ == "__main__":
    main()
