#!/usr/bin/env python3
"""Turns ipc_bench's JSON (with repetitions) into the ipc table of docs/benchmarks.md.

    build/bin/ipc_bench --benchmark_format=json --benchmark_repetitions=5 > ipc.json
    bench/ipc_report.py ipc.json "<the command>"  > table.md

Medians of the repetitions; every ratio is against a baseline from the same run.
"""
import json
import sys


def medians(report):
    out = {}
    for b in report["benchmarks"]:
        if b.get("aggregate_name") == "median":
            out[b["run_name"]] = b
    return out


def main():
    report = json.load(open(sys.argv[1]))
    command = sys.argv[2]
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

    def ok(cond):
        return "met" if cond else "**missed**"

    print(f"Measured {ctx['date']} on {ctx['num_cpus']} CPUs; medians of "
          f"{report['benchmarks'][0].get('repetitions', '?')} repetitions.\n")
    print(f"Command: `{command}`\n")
    print("| benchmark | median | vs baseline (same run) | target | |")
    print("|---|---|---|---|---|")
    print(f"| ring round trip, spinning | {spin / 1000:.2f} us | {pipe / spin:.1f}x faster than pipe "
          f"| <= 1 us and >= 20x pipe | {ok(spin <= 1000 and pipe / spin >= 20)} |")
    print(f"| ring round trip, both sides sleeping (futex) | {sleep / 1000:.1f} us | {pipe / sleep:.2f}x pipe's speed "
          f"| no slower than pipe | {ok(sleep <= pipe)} |")
    print(f"| pipe round trip (baseline) | {pipe / 1000:.1f} us | 1.00x | | |")
    print(f"| socketpair round trip (baseline) | {sock / 1000:.1f} us | {pipe / sock:.2f}x pipe's speed | | |")
    print(f"| ring round trip, daemon waiting in epoll as crunchd does | {loop / 1000:.1f} us | "
          f"{pipe_loop / loop:.2f}x the pipe's speed waited for the same way ({pipe_loop / 1000:.1f} us) | | |")
    print(f"| ring one-way throughput, batches of 64 | {tput / 1e6:.1f} M descriptors/s | | >= 20 M/s "
          f"| {ok(tput >= 20e6)} |")
    print(f"| floor: one cache line bounced between two processes | {floor:.0f} ns | "
          f"spin round trip = {spin / floor:.1f}x the floor | | |")


if __name__ == "__main__":
    main()
