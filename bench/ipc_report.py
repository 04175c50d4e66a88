#!/usr/bin/python3
"""The transport suite of docs/benchmarks.md: ipc_bench's JSON as a markdown table.

    bench/ipc_report.py --build-dir build [--quick]    # runs build/bin/ipc_bench itself
    build/bin/ipc_bench --benchmark_format=json --benchmark_repetitions=5 > ipc.json
    bench/ipc_report.py ipc.json "<the command>"  > table.md

Medians of the repetitions; every ratio is against a baseline from the same run.
Prints the section on stdout (see bench/benchlib.py for the suite protocol).
"""
import argparse
import json
import os
import subprocess
import sys

from benchlib import add_common_args, by_how_much, loadavg, logger, record_target

REPETITIONS, MIN_TIME = 5, 0.5
QUICK_REPETITIONS, QUICK_MIN_TIME = 2, 0.01


def medians(report):
    out = {}
    for b in report["benchmarks"]:
        if b.get("aggregate_name") == "median":
            out[b["run_name"]] = b
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("json", nargs="?", help="ipc_bench's JSON output (else ipc_bench is run)")
    p.add_argument("command", nargs="?", help="the command that produced the JSON")
    args = p.parse_args()
    load_note = ""
    if args.json:
        report = json.load(open(args.json))
        command = args.command or "?"
    else:
        reps, min_time = ((QUICK_REPETITIONS, QUICK_MIN_TIME) if args.quick
                          else (REPETITIONS, MIN_TIME))
        flags = ["--benchmark_format=json", f"--benchmark_repetitions={reps}",
                 f"--benchmark_min_time={min_time}"]
        binary = os.path.join(args.build_dir, "bin", "ipc_bench")
        logger("ipc_report")(f"running {binary} {' '.join(flags)}")
        before = loadavg()
        out = subprocess.run([binary] + flags, stdout=subprocess.PIPE, text=True)
        load_note = f" Load average (1/5/15 min) {before} before, {loadavg()} after."
        if out.returncode != 0:
            sys.exit(f"ipc_report: ipc_bench failed with {out.returncode}")
        report = json.loads(out.stdout)
        command = " ".join(["build/bin/ipc_bench"] + flags)
    table(report, command, args.targets, load_note)


def table(report, command, targets, load_note=""):
    m = medians(report)

    def ns(name):
        return m[name]["real_time"]  # time_unit is ns

    spin = ns("BM_RingRoundTrip/spin/real_time")
    sleep = ns("BM_RingRoundTrip/sleep/real_time")
    pipe = ns("BM_PipeRoundTrip/real_time")
    sock = ns("BM_SocketpairRoundTrip/real_time")
    tput = m["BM_RingThroughput/64/real_time"]["items_per_second"]
    loop = ns("BM_RingRoundTripEventLoop/real_time")
    pipe_loop = ns("BM_PipeRoundTripEventLoop/real_time")
    floor = ns("BM_CacheLinePingPong/real_time")
    ctx = report["context"]

    spin_verdict = ("met" if spin <= 1000 and pipe / spin >= 20 else
                    f"**missed** (+{max(spin - 1000, 0) / 1000:.2f} us; "
                    f"{pipe / spin / 20:.2f} of the 20x)")

    print(f"Measured {ctx['date']} on {ctx['num_cpus']} CPUs; medians of "
          f"{report['benchmarks'][0].get('repetitions', '?')} repetitions.{load_note}\n")
    print(f"Command: `{command}`\n")
    print("| benchmark | median | vs baseline (same run) | target | |")
    print("|---|---|---|---|---|")
    print(f"| ring round trip, spinning | {spin / 1000:.2f} us | {pipe / spin:.1f}x faster than pipe "
          f"| <= 1 us and >= 20x pipe | {spin_verdict} |")
    print(f"| ring round trip, both sides sleeping (futex) | {sleep / 1000:.1f} us | {pipe / sleep:.2f}x pipe's speed "
          f"| no slower than pipe | {by_how_much(pipe / sleep, 1.0)} |")
    print(f"| pipe round trip (baseline) | {pipe / 1000:.1f} us | 1.00x | | |")
    print(f"| socketpair round trip (baseline) | {sock / 1000:.1f} us | {pipe / sock:.2f}x pipe's speed | | |")
    print(f"| ring round trip, daemon waiting in epoll as crunchd does | {loop / 1000:.1f} us | "
          f"{pipe_loop / loop:.2f}x the pipe's speed waited for the same way ({pipe_loop / 1000:.1f} us) | | |")
    print(f"| ring one-way throughput, batches of 64 | {tput / 1e6:.1f} M descriptors/s | | >= 20 M/s "
          f"| {by_how_much(tput / 1e6, 20.0)} |")
    record_target(targets, "1. transport", "ring round trip, spinning", f"{spin / 1000:.2f} us, "
                  f"{pipe / spin:.1f}x pipe", "<= 1 us and >= 20x pipe",
                  spin <= 1000 and pipe / spin >= 20, spin_verdict)
    record_target(targets, "1. transport", "ring round trip, sleeping, vs pipe",
                  f"{pipe / sleep:.2f}x pipe's speed", ">= 1x", sleep <= pipe,
                  by_how_much(pipe / sleep, 1.0))
    record_target(targets, "1. transport", "ring one-way throughput", f"{tput / 1e6:.1f} M/s",
                  ">= 20 M/s", tput >= 20e6, by_how_much(tput / 1e6, 20.0))
    print(f"| floor: one cache line bounced between two processes | {floor:.0f} ns | "
          f"spin round trip = {spin / floor:.1f}x the floor | | |")


if __name__ == "__main__":
    main()
