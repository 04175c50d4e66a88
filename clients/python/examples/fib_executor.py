#!/usr/bin/env python3
"""The process-pool Fibonacci program, with crunchd's workers as the pool.

The original runs fib in a ProcessPoolExecutor:

    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    with ProcessPoolExecutor() as ex:
        results = ex.map(fib, [28, 30, 32])

Here the one changed line names crunchd's built-in `fib` kind and the
parameter the numbers go to; the workers are crunchd's, already running:

    with crunch.Executor() as ex:
        results = ex.map("fib", [28, 30, 32], param="n")

Run: python3 fib_executor.py [--address unix:/path/to/crunchd.sock]
"""

from __future__ import annotations

import argparse
import time

import crunch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="crunchd's address (default: crunch.default_address())")
    args = parser.parse_args()

    numbers = [28, 30, 32]
    start = time.perf_counter()
    with crunch.Executor(args.address) as ex:
        results = ex.map("fib", numbers, param="n")
        for n, output in zip(numbers, results):
            print(f"fib({n}) = {int(output)}")
    print(f"{len(numbers)} tasks in {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
