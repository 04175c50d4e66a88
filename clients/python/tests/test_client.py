"""crunch.Client against the real daemon."""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import time

import grpc
import pytest

import crunch
from crunch._address import default_address_for
from conftest import HTTP_BODY, Daemon


def test_default_address_follows_the_daemons_rule() -> None:
    assert default_address_for(0, "/run/user/0") == "unix:/run/crunchd/crunchd.sock"
    assert default_address_for(1000, "/run/user/1000") == "unix:/run/user/1000/crunchd.sock"
    assert default_address_for(1000, None) == "unix:/tmp/crunchd-1000/crunchd.sock"
    assert default_address_for(1000, "relative") == "unix:/tmp/crunchd-1000/crunchd.sock"


def test_run_returns_known_answers(client: crunch.Client) -> None:
    assert client.run("fib", n=30) == b"832040"
    assert client.run("sha256", b"abc") == hashlib.sha256(b"abc").hexdigest().encode()
    assert client.run("noop", b"\x00payload\xff") == b"\x00payload\xff"
    assert client.run("noop", "text") == b"text"
    assert client.run("primes", n=100) == b"25"
    blob = b"crunch " * 1000
    packed = client.run("zstd.compress", blob, level=3)
    assert len(packed) < len(blob)
    assert client.run("zstd.decompress", packed) == blob


def test_run_result_describes_the_run(client: crunch.Client) -> None:
    r = client.run_result("fib", n=20)
    assert r.ok and r.output == b"6765"
    assert r.pool == "cpu" and r.task_id > 0 and r.worker_pid > 0
    assert r.queue_us >= 0 and r.run_us >= 0
    assert r.worker_pid in {w["pid"] for w in client.status()["workers"]}
    assert client.run_result("sleep", ms=1).pool == "io"


def test_file_write_then_read(client: crunch.Client, daemon: Daemon) -> None:
    client.run("file.write", b"stored", path="note.txt")
    assert (daemon.data_dir / "note.txt").read_bytes() == b"stored"
    assert client.run("file.read", path="note.txt") == b"stored"


def test_http_get_reaches_an_allowed_host(client: crunch.Client, http_url: str) -> None:
    assert client.run("http.get", url=http_url) == HTTP_BODY


@pytest.mark.parametrize(
    ("kind", "payload", "params", "error", "says"),
    [
        ("nope", b"", {}, crunch.NotFoundError, "unknown kind 'nope'; known kinds: noop"),
        ("fib", b"", {"n": 99}, crunch.InvalidArgumentError, "param 'n' must be"),
        ("fib", b"", {"x": 1}, crunch.InvalidArgumentError, "unknown param 'x'"),
        ("spin", b"", {"ms": 5000, "timeout_ms": 50}, crunch.DeadlineExceededError, ""),
        ("sleep", b"", {"ms": 5000, "timeout_ms": 50}, crunch.DeadlineExceededError, ""),
        ("noop", b"x" * (1048576 + 1), {}, crunch.ResourceExhaustedError, "payload"),
        ("file.read", b"", {"path": "/etc/passwd"}, crunch.PermissionDeniedError, "data_dir"),
        ("http.get", b"", {"url": "http://example.com/"}, crunch.PermissionDeniedError,
         "http_allow"),
    ],
)
def test_failures_raise_their_subclass(
    client: crunch.Client, kind: str, payload: bytes, params: dict, error: type, says: str
) -> None:
    with pytest.raises(error) as caught:
        client.run(kind, payload, **params)
    assert caught.value.code == error.code
    assert says in caught.value.message
    assert isinstance(caught.value, crunch.TaskError)


def test_submit_then_wait(client: crunch.Client) -> None:
    task_id = client.submit("fib", n=25)
    assert client.wait(task_id) == b"75025"
    assert client.wait(task_id) == b"75025"  # Kept for result_ttl_ms.
    assert client.cancel(task_id) == "done"


def test_cancel_a_running_task(client: crunch.Client) -> None:
    task_id = client.submit("sleep", ms=10000)
    time.sleep(0.05)
    assert client.cancel(task_id) in ("queued", "running")
    with pytest.raises(crunch.TaskCancelledError) as caught:
        client.wait(task_id, timeout=5)
    assert caught.value.code == grpc.StatusCode.CANCELLED
    assert client.cancel(task_id) == "done"


def test_wait_deadline_leaves_the_task_running(client: crunch.Client) -> None:
    task_id = client.submit("sleep", ms=10000)
    with pytest.raises(crunch.DeadlineExceededError):
        client.wait(task_id, timeout=0.1)
    assert client.cancel(task_id) in ("queued", "running")


def test_unknown_task_id(client: crunch.Client) -> None:
    with pytest.raises(crunch.NotFoundError):
        client.wait(987654321)
    with pytest.raises(crunch.NotFoundError):
        client.cancel(987654321)


def test_a_killed_worker_is_aborted(client: crunch.Client) -> None:
    task_id = client.submit("spin", ms=20000)
    give_up = time.monotonic() + 10
    while time.monotonic() < give_up:
        busy = [w for w in client.status()["workers"] if w["current_kind"] == "spin"]
        if busy:
            break
        time.sleep(0.01)
    assert busy, "no worker reported running the spin task"
    os.kill(busy[0]["pid"], signal.SIGKILL)
    with pytest.raises(crunch.AbortedError) as caught:
        client.wait(task_id, timeout=10)
    assert "SIGKILL" in caught.value.message or "signal" in caught.value.message
    _wait_for_idle_workers(client)


def _wait_for_idle_workers(client: crunch.Client) -> None:
    give_up = time.monotonic() + 15
    while time.monotonic() < give_up:
        if all(w["state"] == "idle" for w in client.status()["workers"]):
            return
        time.sleep(0.02)
    pytest.fail(f"workers not idle again: {client.status()['workers']}")


def test_status_shape(client: crunch.Client) -> None:
    s = client.status()
    assert s["version"] and s["pid"] > 0 and s["uptime_ms"] >= 0 and s["draining"] is False
    assert len(s["workers"]) == 2
    assert set(s["workers"][0]) >= {"slot", "pid", "state", "tasks_done", "restarts", "recycles",
                                     "rss_bytes"}
    assert {p["name"] for p in s["pools"]} == {"cpu", "io"}
    cpu = next(p for p in s["pools"] if p["name"] == "cpu")
    assert cpu["size"] == 2 and set(cpu["latency"]) >= {"p50_us", "p99_us", "samples"}
    assert s["counters"]["accepted"] >= s["counters"]["completed"] > 0
    assert isinstance(s["counters"]["failed_by_code"], dict)


def test_kinds_shape(client: crunch.Client) -> None:
    kinds = {k["name"]: k for k in client.kinds()}
    assert set(kinds) >= {
        "noop", "spin", "fib", "sha256", "zstd.compress", "zstd.decompress", "primes",
        "sleep", "http.get", "file.read", "file.write", "dns.resolve",
    }
    assert kinds["fib"]["pool"] == "cpu" and kinds["http.get"]["pool"] == "io"
    (n,) = kinds["fib"]["params"]
    assert (n["name"], n["type"], n["min"], n["max"], n["required"]) == ("n", "int", 0, 45, True)


def test_stream_answers_every_tag_once(client: crunch.Client) -> None:
    requests = [("noop", str(i).encode()) for i in range(1000)]
    results = list(client.stream(requests, max_in_flight=128))
    assert sorted(r.tag for r in results) == list(range(1000))
    assert all(r.ok and r.output == str(r.tag).encode() for r in results)


def test_stream_reports_failures_as_results(client: crunch.Client) -> None:
    requests = [
        {"kind": "fib", "params": {"n": 10}},
        ("nope",),
        {"kind": "sleep", "params": {"ms": 2000}, "timeout_ms": 20},
        ("sha256", b"abc", {}),
    ]
    results = {r.tag: r for r in client.stream(requests)}
    assert results[0].output_or_raise() == b"55"
    assert results[1].code == grpc.StatusCode.NOT_FOUND and not results[1].ok
    with pytest.raises(crunch.NotFoundError):
        results[1].output_or_raise()
    assert results[2].code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert results[3].ok


def test_stream_can_be_left_early(client: crunch.Client) -> None:
    endless = (("noop", b"x") for _ in itertools.count())
    taken = list(itertools.islice(client.stream(endless, max_in_flight=8), 20))
    assert len(taken) == 20
    assert client.run("noop", b"still fine") == b"still fine"


def test_stream_bad_request_raises_in_the_caller(client: crunch.Client) -> None:
    with pytest.raises(TypeError, match="task 1"):
        list(client.stream([("noop",), 42]))


def test_unreachable_daemon_names_the_address() -> None:
    with crunch.Client("unix:/nonexistent/crunchd.sock") as c:
        with pytest.raises(crunch.DaemonUnreachableError) as caught:
            c.status()
    assert caught.value.address == "unix:/nonexistent/crunchd.sock"
    assert "unix:/nonexistent/crunchd.sock" in str(caught.value)
    assert "systemctl status crunchd" in str(caught.value)
    assert isinstance(caught.value, crunch.UnavailableError)


def test_channel_options_reach_the_channel(daemon: Daemon) -> None:
    # A receive limit of 200 bytes instead of the client's own "unlimited".
    limit = [("grpc.max_receive_message_length", 200)]
    with crunch.Client(daemon.address, channel_options=limit) as c:
        assert c.run("noop", b"x") == b"x"
        with pytest.raises(crunch.ResourceExhaustedError):
            c.run("noop", b"x" * 1000)
