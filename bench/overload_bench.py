#!/usr/bin/python3
"""Suite 7 of docs/benchmarks.md: crunchd offered twice what it can serve.

    bench/overload_bench.py --build-dir build                # 60 s of overload, about 80 s
    bench/overload_bench.py --build-dir build --quick        # smoke test, about 15 s

One crunchd (`--workers 2`, `[cpu] queue_capacity = 256`) runs `spin` tasks of
5 ms. First its capacity C is measured in the same run, closed loop
(`crunch_load --in-flight 32`: always enough waiting that no worker idles).
Then `crunch_load --rate 2C` starts Run calls on a fixed schedule, whether or
not earlier ones ended (open loop), for 60 s. The queue fills, and from then on
about half the calls are refused with RESOURCE_EXHAUSTED. Meanwhile the
daemon's resident memory (VmRSS of crunchd itself, not its workers) is read
from /proc every 100 ms.

Baseline in the same run: crunch_echo_server (bench/echo_server.cc, a bare
gRPC server that answers every call at once) under the same open-loop client at
the same rate: the latency of an answer that costs nothing, on this machine,
now. On the 2-vCPU VMs its p99 is itself about 1 ms.

What it checks (issue 6, "Overload"; issue 7, suite 7):
  - a refused call hears RESOURCE_EXHAUSTED within 1 ms (p99 of the refusals,
    measured by the client: the round trip over the Unix socket included);
  - an admitted call's latency stays bounded: at most what the tasks ahead of
    it take, queue_capacity / C, plus its own run time; the target allows 1.5x
    that plus 50 ms for the noise of a shared machine;
  - crunchd's RSS stays under its idle RSS + 64 MiB. The bound that matters in
    production is docs/limits.md's: queued payload bytes are capped by
    [limits] max_queued_bytes, and the arena is a fixed mapping.
"""
import argparse
import os
import tempfile
import threading
import time

from benchlib import (Server, add_common_args, by_how_much, command, crunchd, crunchd_command,
                      loadavg, logger, now, record_target, run_json)

SUITE = "7. Overload"
QUEUE_CAPACITY = 256
SPIN_MS = 5
REJECT_TARGET_US = 1000
RSS_HEADROOM = 64 << 20
log = logger("overload")


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """Peak VmRSS of one process, read every 100 ms until stop()."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self._done = pid, rss_bytes(pid), threading.Event()

    def run(self):
        while not self._done.wait(0.1):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def stop(self):
        self._done.set()
        self.join()
        return self.peak


def load(args, server, extra):
    argv = [os.path.join(args.build_dir, "bin", "crunch_load"), "--address", server.address,
            "--kind", "spin", "--param", f"ms={SPIN_MS}"] + extra
    return run_json(argv)


def mib(n):
    return f"{n / (1 << 20):,.1f} MiB"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--seconds", type=float, default=60)
    args = p.parse_args()
    capacity_seconds = 5
    if args.quick:
        args.seconds, capacity_seconds = 4, 2

    load_before, started = loadavg(), now()
    with tempfile.TemporaryDirectory(prefix="crunch-overload-") as tmp:
        with crunchd(args.build_dir, tmp, 2,
                     toml=f"[cpu]\nqueue_capacity = {QUEUE_CAPACITY}\n") as server:
            load(args, server, ["--in-flight", "8", "--seconds", "1", "--warmup", "0"])
            idle_rss = rss_bytes(server.proc.pid)
            closed = load(args, server, ["--in-flight", "32", "--seconds", str(capacity_seconds),
                                         "--warmup", "1"])
            capacity = closed["tasks_per_s"]
            log(f"capacity: {capacity:,.0f} tasks/s closed loop; now offering 2x for "
                f"{args.seconds:.0f} s")
            sampler = RssSampler(server.proc.pid)
            sampler.start()
            run = load(args, server, ["--rate", f"{2 * capacity:.1f}", "--in-flight", "100000",
                                      "--seconds", str(args.seconds), "--warmup", "2"])
            peak_rss = sampler.stop()
        sock = os.path.join(tmp, "echo.sock")
        echo = Server("crunch_echo_server",
                      [os.path.join(args.build_dir, "bin", "crunch_echo_server"), "--listen",
                       f"unix:{sock}", "--threads", "2"], sock)
        with echo:
            base = run_json([os.path.join(args.build_dir, "bin", "crunch_load"), "--address",
                             echo.address, "--rate", f"{2 * capacity:.1f}", "--in-flight",
                             "100000", "--seconds", str(min(args.seconds, 10)), "--warmup", "1"])
    load_after = loadavg()

    offered = run["rate"]
    accepted = run["tasks"] / run["seconds"]
    refused = run["rejected"] / run["seconds"]
    bound_ms = QUEUE_CAPACITY / capacity * 1000 + SPIN_MS
    latency_target_ms = 1.5 * bound_ms + 50
    rss_target = idle_rss + RSS_HEADROOM
    p99_ms, max_ms = run["p99_us"] / 1000, run["max_us"] / 1000

    print(f"Measured {started} on {os.cpu_count()} CPUs, {args.seconds:.0f} s of overload. "
          f"Load average (1/5/15 min) {load_before} before, {load_after} after.\n")
    print(f"Command: `{command('bench/overload_bench.py')}`; crunchd started as "
          f"`{crunchd_command(2, config=True)}` with `[cpu] queue_capacity = {QUEUE_CAPACITY}`; "
          f"tasks are `spin` with `ms={SPIN_MS}`. Capacity: `crunch_load --kind spin --param "
          f"ms={SPIN_MS} --in-flight 32 --seconds {capacity_seconds}`; overload: the same with "
          f"`--rate 2C --in-flight 100000 --seconds {args.seconds:.0f}`; baseline: "
          f"`crunch_echo_server --threads 2` driven by `crunch_load --rate 2C --in-flight 100000 "
          f"--seconds {min(args.seconds, 10):.0f}` (noop calls, all answered at once).\n")
    print("| measure | figure | baseline or bound (same run) | target | |")
    print("|---|---|---|---|---|")
    print(f"| capacity C, closed loop | {capacity:,.0f} tasks/s | 2 workers x "
          f"{1000 / SPIN_MS:.0f}/s = {2000 / SPIN_MS:.0f} ideal | | |")
    print(f"| offered (open loop) | {offered:,.0f} calls/s | {offered / capacity:.2f}x C | 2x C | |")
    print(f"| admitted and done | {accepted:,.0f} tasks/s | {accepted / capacity:.2f}x C | | |")
    print(f"| refused, RESOURCE_EXHAUSTED | {refused:,.0f} calls/s "
          f"({run['rejected']:,} in all) | | | |")
    print(f"| time to refuse, p50 / p99 / max | {run['reject_p50_us']:,.0f} / "
          f"{run['reject_p99_us']:,.0f} / {run['reject_max_us']:,.0f} us | echo server's answer "
          f"at the same rate: {base['p50_us']:,.0f} / {base['p99_us']:,.0f} / "
          f"{base['max_us']:,.0f} us | p99 <= "
          f"{REJECT_TARGET_US:,} us | "
          f"{by_how_much(run['reject_p99_us'], REJECT_TARGET_US, False, 'us')} |")
    print(f"| admitted latency, p50 / p99 / p99.9 / max | {run['p50_us'] / 1000:,.0f} / "
          f"{p99_ms:,.0f} / {run['p999_us'] / 1000:,.0f} / {max_ms:,.0f} ms | queue_capacity / C "
          f"+ {SPIN_MS} ms = {bound_ms:,.0f} ms | max <= {latency_target_ms:,.0f} ms | "
          f"{by_how_much(max_ms, latency_target_ms, False, 'ms')} |")
    print(f"| crunchd RSS, peak | {mib(peak_rss)} | idle {mib(idle_rss)} | <= "
          f"{mib(rss_target)} | {by_how_much(peak_rss / (1 << 20), rss_target / (1 << 20), False, 'MiB')} |")
    print(f"| other errors, calls held back by the client | {run['errors']}, {run['held']} | | 0, 0 "
          f"| {'met' if run['errors'] == 0 and run['held'] == 0 else '**missed**'} |")

    record_target(args.targets, SUITE, "time to refuse at 2x capacity, p99",
                  f"{run['reject_p99_us']:,.0f} us", f"<= {REJECT_TARGET_US:,} us",
                  run["reject_p99_us"] <= REJECT_TARGET_US,
                  by_how_much(run["reject_p99_us"], REJECT_TARGET_US, False, "us"))
    record_target(args.targets, SUITE, "admitted latency at 2x capacity, max",
                  f"{max_ms:,.0f} ms", f"<= {latency_target_ms:,.0f} ms",
                  max_ms <= latency_target_ms,
                  by_how_much(max_ms, latency_target_ms, False, "ms"))
    record_target(args.targets, SUITE, "crunchd RSS at 2x capacity, peak", mib(peak_rss),
                  f"<= idle + 64 MiB ({mib(rss_target)})", peak_rss <= rss_target,
                  by_how_much(peak_rss / (1 << 20), rss_target / (1 << 20), False, "MiB"))


if __name__ == "__main__":
    main()
