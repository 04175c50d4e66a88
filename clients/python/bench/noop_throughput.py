#!/usr/bin/env python3
"""Noop tasks per second: crunch.Executor against Python's own process pools, in one run.

Each contender maps N no-op tasks and consumes the results in order:

  crunch.Executor     ex.map("noop", payloads)      (streams=1 and the default)
  ProcessPoolExecutor ex.map(noop, items)           (max_workers = crunchd's worker count)
  multiprocessing     pool.imap(noop, items)        (processes = the same)

Needs a running crunchd (--address, default crunch.default_address()). The pools
are created before the clock starts; each figure is the best of --repeat runs.

Run: python3 bench/noop_throughput.py [--address A] [-n 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import time
from collections.abc import Callable, Iterable

import crunch


def noop(x: bytes) -> bytes:
    """The Python pools' task: return the input, like crunchd's noop kind."""
    return x


def best_rate(n: int, repeat: int, run: Callable[[list[bytes]], Iterable[bytes]]) -> float:
    """Returns the best tasks/s over `repeat` runs of consuming run(items)."""
    items = [b""] * n
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in run(items):
            pass
        best = max(best, n / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="crunchd's address (default: crunch.default_address())")
    parser.add_argument("-n", type=int, default=20000, help="tasks per run (default 20000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (default 3)")
    args = parser.parse_args()

    with crunch.Client(args.address) as client:
        workers = len(client.status()["workers"])
    print(f"{args.n} noop tasks, best of {args.repeat}; pools of {workers} processes")
    rows: list[tuple[str, float]] = []
    for streams in (1, 4):
        with crunch.Executor(args.address, streams=streams) as ex:
            rows.append((f"crunch.Executor(streams={streams}).map",
                         best_rate(args.n, args.repeat, lambda xs: ex.map("noop", xs))))
    with concurrent.futures.ProcessPoolExecutor(workers) as ex:
        list(ex.map(noop, [b""] * workers))  # Start the workers.
        rows.append(("ProcessPoolExecutor.map",
                     best_rate(args.n, args.repeat, lambda xs: ex.map(noop, xs))))
    with multiprocessing.Pool(workers) as pool:
        rows.append(("multiprocessing.Pool.imap",
                     best_rate(args.n, args.repeat, lambda xs: pool.imap(noop, xs))))
    for name, rate in rows:
        print(f"  {name:<34} {rate:>9,.0f} tasks/s")


if __name__ == "__main__":
    main()
