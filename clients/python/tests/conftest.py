"""Starts the real crunchd once for the whole session and hands its address to the tests.

`daemon` is the session's crunchd; `other_daemon` a second one, started on
first use, for the tests of address lists (test_address_list.py).

CRUNCHD names the binary (CTest passes build/bin/crunchd); without it the
tests look for <repo>/build/bin/crunchd. grpc and the crunch package are
imported here unguarded: a machine without python3-grpcio or without the
generated stubs fails this test instead of skipping it.
"""

from __future__ import annotations

import dataclasses
import http.server
import os
import pathlib
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc  # noqa: F401 - a missing python3-grpcio must fail, not skip
import pytest

import crunch

REPO = pathlib.Path(__file__).resolve().parents[3]
HTTP_BODY = b"hello from the test's http.server\n"


@dataclasses.dataclass
class Daemon:
    """A running crunchd: its address, its temporary directory and its log."""

    address: str
    dir: pathlib.Path
    data_dir: pathlib.Path
    log_path: pathlib.Path
    process: subprocess.Popen

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# The session's daemons while they run, by fixture name, for pytest_runtest_makereport.
_running: dict[str, Daemon] = {}


def _crunchd_path() -> str:
    path = os.environ.get("CRUNCHD") or str(REPO / "build/bin/crunchd")
    if not os.access(path, os.X_OK):
        pytest.fail(f"crunchd not found at {path}: build it, or set CRUNCHD to its path")
    return path


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    with _crunchd("daemon") as d:
        yield d


@pytest.fixture(scope="session")
def other_daemon() -> Iterator[Daemon]:
    with _crunchd("other_daemon") as d:
        yield d


@contextmanager
def _crunchd(name: str) -> Iterator[Daemon]:
    """Runs a crunchd in a temporary directory; SIGTERM at the end must make it exit 0."""
    with tempfile.TemporaryDirectory(prefix="crunchd-py-") as tmp:
        root = pathlib.Path(tmp)
        data_dir = root / "data"
        data_dir.mkdir()
        config = root / "crunchd.toml"
        config.write_text(
            "[server]\ndrain_grace_ms = 5000\n"
            f'[io]\nhttp_allow = ["127.0.0.1"]\ndata_dir = "{data_dir}"\n'
            "[limits]\nmax_payload_bytes = 1048576\n"
        )
        socket = root / "crunchd.sock"
        log_path = root / "crunchd.log"
        # No proxy: http.get must reach the test's own server directly.
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [_crunchd_path(), "--listen", f"unix:{socket}", "--workers", "2",
                 "--config", str(config)],
                stdout=subprocess.DEVNULL, stderr=log, env=env,
            )
        d = Daemon(f"unix:{socket}", root, data_dir, log_path, process)
        _running[name] = d
        try:
            _wait_until_ready(d)
            yield d
        finally:
            del _running[name]
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            assert code == 0, f"crunchd exited with {code} after SIGTERM; log:\n{d.log()}"


def _wait_until_ready(d: Daemon) -> None:
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        if d.process.poll() is not None:
            pytest.fail(f"crunchd exited at start ({d.process.returncode}):\n{d.log()}")
        if d.dir.joinpath("crunchd.sock").exists():
            # A fresh channel each time: a failed one waits out gRPC's reconnect backoff.
            with crunch.Client(d.address, timeout=1) as c:
                try:
                    workers = c.status()["workers"]
                    if workers and all(w["state"] == "idle" for w in workers):
                        return
                except crunch.TaskError:
                    pass
        time.sleep(0.02)
    pytest.fail(f"crunchd did not answer Status within 30 s:\n{d.log()}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Attaches the end of each crunchd's log to a failed test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, d in _running.items():
            tail = "\n".join(d.log().splitlines()[-40:])
            report.sections.append((f"crunchd log of {name} (last 40 lines)", tail))


@pytest.fixture
def client(daemon: Daemon) -> Iterator[crunch.Client]:
    with crunch.Client(daemon.address) as c:
        yield c


@pytest.fixture(scope="session")
def http_url() -> Iterator[str]:
    """The URL of a tiny HTTP server on 127.0.0.1 that answers HTTP_BODY to any GET."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Length", str(len(HTTP_BODY)))
            self.end_headers()
            self.wfile.write(HTTP_BODY)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
