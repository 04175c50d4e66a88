#!/usr/bin/env python3
"""Fetches URLs concurrently through crunchd's I/O pool, from asyncio.

Each URL is one http.get task; asyncio.gather runs them at once over one
connection, and crunchd's I/O threads do the blocking fetches. The hosts must
be in crunchd's [io] http_allow.

Run: python3 http_asyncio.py [--address ADDRESS] URL [URL ...]
Exits 1 if any fetch failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import crunch
import crunch.aio


async def fetch(client: crunch.aio.Client, url: str) -> bool:
    """Prints what fetching `url` gave; returns whether it worked."""
    start = time.perf_counter()
    try:
        body = await client.run("http.get", url=url)
    except crunch.TaskError as e:
        print(f"{url}: {e}")
        return False
    print(f"{url}: {len(body)} bytes in {(time.perf_counter() - start) * 1000:.0f} ms")
    return True


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="crunchd's address (default: crunch.default_address())")
    parser.add_argument("urls", nargs="+", metavar="URL")
    args = parser.parse_args()

    start = time.perf_counter()
    async with crunch.aio.Client(args.address) as client:
        ok = await asyncio.gather(*(fetch(client, url) for url in args.urls))
    print(f"{len(args.urls)} URLs in {time.perf_counter() - start:.3f} s")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
