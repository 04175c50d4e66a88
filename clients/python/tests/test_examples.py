"""The examples in clients/python/examples run against the real daemon."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from conftest import HTTP_BODY, Daemon

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, env=os.environ
    )


def test_fib_executor(daemon: Daemon) -> None:
    done = _run(str(EXAMPLES / "fib_executor.py"), "--address", daemon.address)
    assert done.returncode == 0, done.stderr
    assert "fib(28) = 317811" in done.stdout
    assert "fib(32) = 2178309" in done.stdout


def test_http_asyncio(daemon: Daemon, http_url: str) -> None:
    done = _run(str(EXAMPLES / "http_asyncio.py"), "--address", daemon.address,
                http_url, http_url + "a", http_url + "b")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(f"{len(HTTP_BODY)} bytes") == 3, done.stdout
