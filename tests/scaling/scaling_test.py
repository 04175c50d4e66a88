"""Beyond one machine: two crunchd, and every client given both addresses shares its tasks.

Starts two real crunchd (each on a unix socket in a temporary directory, one
worker each) as stand-ins for two hosts, then runs 200 tasks through each
client given both addresses as "A,B": crunchctl's batch run, crunch.Client
(8 threads), crunch.Executor and the Node client (8 at a time). Each daemon's
Status, read with `crunchctl status --json --address X` (not through the
client under test), must show it completed 40-60% of each client's tasks.

The task is `sleep ms=10` (the io pool): a fixed duration, so both daemons
answer at the same rate however busy the machine's CPUs are. That matters for
the clients that balance by pulling (crunchctl's batch and crunch.Executor
give each daemon a stream and an even share of the tasks in flight, and send
the next task on whichever stream has room), so a daemon that answers faster
takes more; crunch.Client and the Node client send each call to the next
daemon in turn, 100 and 100.

Paths come from the environment (CTest sets them, tests/scaling/CMakeLists.txt):
CRUNCHD, CRUNCHCTL, CRUNCH_NODE (node), CRUNCH_NODE_CLIENT (clients/node, with
node_modules), and PYTHONPATH with clients/python and the generated stubs.
By hand, from the repository root:

  PYTHONPATH=clients/python:build/clients/python/gen /usr/bin/python3 -m pytest -v tests/scaling
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest

import crunch

REPO = pathlib.Path(__file__).resolve().parents[2]
TASKS = 200
CONCURRENCY = 8
KIND, PARAMS = "sleep", {"ms": 10}
FAIR = (0.40, 0.60)  # Each daemon's share of one client's tasks.


def _tool(variable: str, default: str | None, hint: str = "build it") -> str:
    path = os.environ.get(variable) or default
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"{variable}={path!r} is not an executable: {hint}, or set {variable}")
    return path


@dataclasses.dataclass
class Daemon:
    """A running crunchd: its address, its temporary directory and its log."""

    address: str
    dir: pathlib.Path
    process: subprocess.Popen

    def log(self) -> str:
        return (self.dir / "crunchd.log").read_text(errors="replace")


def crunchctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_tool("CRUNCHCTL", str(REPO / "build/bin/crunchctl")), *args],
        capture_output=True, text=True, timeout=timeout,
    )


def completed(d: Daemon) -> int:
    """The daemon's count of completed tasks, from its Status."""
    r = crunchctl("--address", d.address, "status", "--json")
    assert r.returncode == 0, f"crunchctl status --address {d.address}: {r.stderr}\n{d.log()}"
    return int(json.loads(r.stdout)["counters"]["completed"])


@pytest.fixture(scope="module")
def daemons() -> Iterator[list[Daemon]]:
    crunchd = _tool("CRUNCHD", str(REPO / "build/bin/crunchd"))
    with tempfile.TemporaryDirectory(prefix="crunchd-scaling-") as tmp:
        started = []
        try:
            for name in ("host-a", "host-b"):
                root = pathlib.Path(tmp, name)
                root.mkdir()
                with open(root / "crunchd.log", "wb") as log:
                    process = subprocess.Popen(
                        [crunchd, "--listen", f"unix:{root}/crunchd.sock", "--workers", "1",
                         "--log-level", "warn"],
                        stdout=log, stderr=subprocess.STDOUT,
                    )
                started.append(Daemon(f"unix:{root}/crunchd.sock", root, process))
            for d in started:
                _wait_until_ready(d)
            yield started
        finally:
            exits = []
            for d in started:
                d.process.send_signal(signal.SIGTERM)
            for d in started:
                try:
                    exits.append(d.process.wait(timeout=30))
                except subprocess.TimeoutExpired:
                    d.process.kill()
                    exits.append(d.process.wait())
            for d, code in zip(started, exits):
                assert code == 0, f"crunchd {d.address} exited with {code}:\n{d.log()}"


def _wait_until_ready(d: Daemon) -> None:
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        if d.process.poll() is not None:
            pytest.fail(f"crunchd exited at start ({d.process.returncode}):\n{d.log()}")
        if crunchctl("--address", d.address, "--deadline", "1000", "status").returncode == 0:
            return
        time.sleep(0.05)
    pytest.fail(f"crunchd at {d.address} did not answer Status within 30 s:\n{d.log()}")


# --- the clients: each runs TASKS tasks given the address list -------------


def run_crunchctl(address: str) -> None:
    r = crunchctl("--address", address, "run", KIND,
                  *(f"--param={k}={v}" for k, v in PARAMS.items()),
                  "--repeat", str(TASKS), "--concurrency", str(CONCURRENCY))
    assert r.returncode == 0, f"crunchctl exited with {r.returncode}:\n{r.stdout}{r.stderr}"
    assert f"{TASKS} ({TASKS} ok, 0 failed)" in r.stdout, r.stdout


def run_python_client(address: str) -> None:
    with crunch.Client(address) as client:
        assert len(client.addresses) == address.count(",") + 1
        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
            outputs = list(pool.map(lambda _: client.run(KIND, **PARAMS), range(TASKS)))
    assert len(outputs) == TASKS


def run_python_executor(address: str) -> None:
    with crunch.Executor(address, max_in_flight=CONCURRENCY) as ex:
        outputs = list(ex.map(KIND, [PARAMS] * TASKS))
    assert len(outputs) == TASKS


def run_node_client(address: str) -> None:
    node = _tool("CRUNCH_NODE", shutil.which("node"),
                 "install Node.js >= 18 with npm (Debian: apt-get install nodejs npm)")
    client_dir = os.environ.get("CRUNCH_NODE_CLIENT") or str(REPO / "clients/node")
    if not pathlib.Path(client_dir, "node_modules").is_dir():
        pytest.fail(f"{client_dir}/node_modules is missing: run `npm ci` there (ctest's node.deps)")
    r = subprocess.run(
        [node, str(pathlib.Path(__file__).with_name("node_run.js")), client_dir, address,
         KIND, json.dumps(PARAMS), str(TASKS), str(CONCURRENCY)],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, f"node exited with {r.returncode}:\n{r.stdout}{r.stderr}"


CLIENTS: dict[str, Callable[[str], None]] = {
    "crunchctl": run_crunchctl,
    "python.Client": run_python_client,
    "python.Executor": run_python_executor,
    "node.Client": run_node_client,
}


@pytest.mark.parametrize("client", CLIENTS)
def test_both_daemons_do_a_fair_share(daemons: list[Daemon], client: str) -> None:
    address = ",".join(d.address for d in daemons)
    before = [completed(d) for d in daemons]
    CLIENTS[client](address)
    done = [completed(d) - b for d, b in zip(daemons, before)]

    summary = ", ".join(f"{d.address}: {n}" for d, n in zip(daemons, done))
    print(f"{client}: {summary}")
    assert sum(done) == TASKS, f"{client}: {TASKS} tasks sent, the daemons completed {summary}"
    low, high = (round(TASKS * share) for share in FAIR)
    for d, n in zip(daemons, done):
        assert low <= n <= high, (
            f"{client}: {d.address} completed {n} of {TASKS} tasks; a fair share is "
            f"{low}-{high} (both: {summary})"
        )
