#!/usr/bin/python3
"""Suite 6 of docs/benchmarks.md: sha256 of 1 KiB, 1 MiB and 64 MiB, through Run and in-process.

    bench/payload_bench.py --build-dir build                 # 3 repetitions
    bench/payload_bench.py --build-dir build --quick         # smoke test, about 10 s

Through Run: crunch_load sends unary Run calls of kind sha256, one at a time
(`--in-flight 1`), against crunchd --workers 2 with `[limits] max_payload_bytes`
raised to 64 MiB (the default is 16 MiB); crunch_load serializes the request once,
so the client's cost per task is sending the bytes. In-process: this script hashes
the same number of bytes of the same size with Python's hashlib.sha256, which on
Debian is OpenSSL's EVP SHA-256 (`hashlib.sha256` is `openssl_sha256`), the same
code crunchd's sha256 kind calls. Both are bytes hashed per second of wall time,
one hash at a time; the ratio is Run's speed over the in-process speed.
Repetitions alternate which goes first; medians over them.

Target (issue 7): at 64 MiB, Run at least 0.5x the in-process speed.
"""
import argparse
import hashlib
import os
import sys
import tempfile
import time

from benchlib import (add_common_args, by_how_much, command, crunchd, crunchd_command, loadavg,
                      logger, median, now, record_target, run_json)

SUITE = "6. Payload size"
TARGET_64M = 0.5
MAX_PAYLOAD = 64 << 20
# (label, bytes, Run calls per measurement in full mode, in quick mode)
SIZES = [("1 KiB", 1 << 10, 2000, 100), ("1 MiB", 1 << 20, 100, 5), ("64 MiB", 64 << 20, 5, 1)]
log = logger("payload_bench")


def through_run(args, server, size, tasks):
    r = run_json([os.path.join(args.build_dir, "bin", "crunch_load"), "--address", server.address,
                  "--mode", "unary", "--in-flight", "1", "--kind", "sha256",
                  "--payload-bytes", str(size), "--tasks", str(tasks), "--warmup", "0"])
    if r["errors"]:
        raise RuntimeError(f"sha256 of {size} bytes through Run: {r['errors']} errors")
    return r["tasks"] * size / r["seconds"]


def in_process(size, tasks):
    data = b"x" * size  # crunch_load's payload is size bytes of 'x' too.
    start = time.perf_counter()
    for _ in range(tasks):
        hashlib.sha256(data).digest()
    return tasks * size / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--repetitions", type=int, default=3)
    args = p.parse_args()
    if args.quick:
        args.repetitions = 1

    results = {(label, how): [] for label, *_ in SIZES for how in ("run", "local")}
    load_before, started = loadavg(), now()
    with tempfile.TemporaryDirectory(prefix="crunch-payload-") as tmp:
        with crunchd(args.build_dir, tmp, 2,
                     toml=f"[limits]\nmax_payload_bytes = {MAX_PAYLOAD}\n") as server:
            through_run(args, server, 1 << 20, 3)  # Warm-up: workers up, arena pages in.
            for rep in range(args.repetitions):
                for label, size, full, quick in SIZES:
                    tasks = quick if args.quick else full
                    for how in (("run", "local") if rep % 2 == 0 else ("local", "run")):
                        rate = (through_run(args, server, size, tasks) if how == "run"
                                else in_process(size, tasks))
                        results[(label, how)].append(rate)
                        log(f"rep {rep + 1}/{args.repetitions} {label:6} {how:5} "
                            f"{rate / 1e6:9.1f} MB/s")
    load_after = os.getloadavg()

    print(f"Measured {started} on {os.cpu_count()} CPUs; medians of {args.repetitions} "
          f"repetitions. Load average (1/5/15 min) {load_before} before, "
          f"{'{:.2f} / {:.2f} / {:.2f}'.format(*load_after)} after.\n")
    print(f"Command: `{command('bench/payload_bench.py')}`\n")
    counts = ", ".join(f"{quick if args.quick else full} of {label}"
                       for label, _, full, quick in SIZES)
    print(f"Through Run: `crunch_load --address unix:SOCKET --mode unary --in-flight 1 --kind "
          f"sha256 --payload-bytes SIZE --tasks N --warmup 0` ({counts}) against "
          f"`{crunchd_command(2, config=True)}`, CONFIG = `[limits] max_payload_bytes = "
          f"{MAX_PAYLOAD}`. In-process: `hashlib.sha256(data).digest()` N times "
          f"(OpenSSL {hashlib.sha256().name}, Python {sys.version.split()[0]}).\n")
    print("| payload | in-process MB/s | through Run MB/s | Run / in-process (range) | per task, "
          "in-process | per task, Run | target | |")
    print("|---|---|---|---|---|---|---|---|")
    for label, size, _, _ in SIZES:
        local, run = median(results[(label, "local")]), median(results[(label, "run")])
        ratios = [r / l for r, l in zip(results[(label, "run")], results[(label, "local")])]
        ratio = run / local
        target = f">= {TARGET_64M}x" if label == "64 MiB" else ""
        status = by_how_much(ratio, TARGET_64M) if label == "64 MiB" else ""
        print(f"| {label} | {local / 1e6:,.1f} | {run / 1e6:,.1f} | {ratio:.3f}x "
              f"({min(ratios):.3f}-{max(ratios):.3f}) | {fmt_time(size / local)} | "
              f"{fmt_time(size / run)} | {target} | {status} |")
        if label == "64 MiB":
            record_target(args.targets, SUITE, "sha256 of 64 MiB, Run / in-process speed",
                          f"{ratio:.3f}x", f">= {TARGET_64M}x", ratio >= TARGET_64M,
                          by_how_much(ratio, TARGET_64M))


def fmt_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:,.1f} us"
    return f"{seconds * 1e3:,.1f} ms"


if __name__ == "__main__":
    main()
