"""crunch.aio.Client against the real daemon."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine
from typing import Any

import pytest

import crunch
import crunch.aio
from conftest import HTTP_BODY, Daemon


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """asyncio.run with a deadline, so a hang fails the test instead of the whole run."""
    asyncio.run(asyncio.wait_for(coroutine, 30))


def test_run_and_gather(daemon: Daemon) -> None:
    async def main() -> None:
        async with crunch.aio.Client(daemon.address) as client:
            assert await client.run("fib", n=30) == b"832040"
            digest = hashlib.sha256(b"abc").hexdigest().encode()
            assert await client.run("sha256", b"abc") == digest
            outputs = await asyncio.gather(*(client.run("noop", str(i)) for i in range(20)))
            assert outputs == [str(i).encode() for i in range(20)]
            r = await client.run_result("fib", n=10)
            assert r.output == b"55" and r.pool == "cpu"

    run(main())


def test_errors(daemon: Daemon) -> None:
    async def main() -> None:
        async with crunch.aio.Client(daemon.address) as client:
            with pytest.raises(crunch.NotFoundError):
                await client.run("nope")
            with pytest.raises(crunch.InvalidArgumentError):
                await client.run("fib", n=-1)
            with pytest.raises(crunch.DeadlineExceededError):
                await client.run("sleep", ms=2000, timeout_ms=20)
        async with crunch.aio.Client("unix:/nonexistent/crunchd.sock") as client:
            with pytest.raises(crunch.DaemonUnreachableError):
                await client.status()

    run(main())


def test_submit_wait_cancel_status_kinds(daemon: Daemon) -> None:
    async def main() -> None:
        async with crunch.aio.Client(daemon.address) as client:
            assert await client.wait(await client.submit("fib", n=12)) == b"144"
            task_id = await client.submit("sleep", ms=10000)
            await asyncio.sleep(0.05)
            assert await client.cancel(task_id) in ("queued", "running")
            with pytest.raises(crunch.TaskCancelledError):
                await client.wait(task_id)
            assert len((await client.status())["workers"]) == 2
            assert "fib" in {k["name"] for k in await client.kinds()}

    run(main())


def test_stream_from_plain_and_async_iterables(daemon: Daemon) -> None:
    async def specs():
        for i in range(300):
            yield {"kind": "noop", "payload": str(i)}

    async def main() -> None:
        async with crunch.aio.Client(daemon.address) as client:
            plain = [r async for r in client.stream([("fib", b"", {"n": n}) for n in range(20)])]
            assert sorted(r.tag for r in plain) == list(range(20))
            assert {r.tag: r.output for r in plain}[20 - 1] == b"4181"
            results = [r async for r in client.stream(specs(), max_in_flight=32)]
            assert sorted(r.tag for r in results) == list(range(300))
            assert all(r.output == str(r.tag).encode() for r in results)
            mixed = [r async for r in client.stream([("nope",), ("noop", b"ok")])]
            assert {r.tag: r.ok for r in mixed} == {0: False, 1: True}

    run(main())


def test_http_get_concurrently(daemon: Daemon, http_url: str) -> None:
    async def main() -> None:
        async with crunch.aio.Client(daemon.address) as client:
            fetches = (client.run("http.get", url=http_url) for _ in range(5))
            bodies = await asyncio.gather(*fetches)
            assert bodies == [HTTP_BODY] * 5

    run(main())
