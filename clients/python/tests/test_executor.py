"""crunch.Executor against the real daemon."""

from __future__ import annotations

import concurrent.futures
import time

import pytest

import crunch
from conftest import Daemon


@pytest.fixture
def executor(daemon: Daemon):
    with crunch.Executor(daemon.address) as ex:
        yield ex


def test_is_a_concurrent_futures_executor(executor: crunch.Executor) -> None:
    assert isinstance(executor, concurrent.futures.Executor)


def test_submit_resolves_futures(executor: crunch.Executor) -> None:
    futures = {executor.submit("fib", n=n): n for n in (10, 20, 30)}
    done = {futures[f]: f.result(timeout=10) for f in concurrent.futures.as_completed(futures)}
    assert done == {10: b"55", 20: b"6765", 30: b"832040"}
    assert executor.submit("sha256", b"abc").result().startswith(b"ba7816bf")


def test_failures_come_through_the_future(executor: crunch.Executor) -> None:
    unknown = executor.submit("nope")
    bad = executor.submit("fib", n=99)
    late = executor.submit("sleep", ms=2000, timeout_ms=20)
    with pytest.raises(crunch.NotFoundError):
        unknown.result(timeout=10)
    assert isinstance(bad.exception(timeout=10), crunch.InvalidArgumentError)
    with pytest.raises(crunch.DeadlineExceededError):
        late.result(timeout=10)
    assert executor.submit("noop", b"after").result(timeout=10) == b"after"


def test_map_with_a_parameter(executor: crunch.Executor) -> None:
    assert list(executor.map("fib", [28, 30, 32], param="n")) == [b"317811", b"832040", b"2178309"]


def test_map_with_payloads_dicts_and_fixed_params(executor: crunch.Executor) -> None:
    blobs = [b"a" * 100, b"b" * 1000, b"c" * 10000]
    packed = list(executor.map("zstd.compress", blobs, level=5))
    assert list(executor.map("zstd.decompress", packed)) == blobs
    assert list(executor.map("fib", [{"n": 1}, {"n": 2}, {"n": 3}])) == [b"1", b"1", b"2"]
    assert list(executor.map("noop", [(b"p", {})])) == [b"p"]
    with pytest.raises(TypeError):
        executor.map("noop", [object()])


def test_map_raises_at_the_failing_item(executor: crunch.Executor) -> None:
    results = executor.map("fib", [5, 99, 6], param="n")
    assert next(results) == b"5"
    with pytest.raises(crunch.InvalidArgumentError):
        next(results)


def test_shutdown_waits_and_refuses_new_tasks(daemon: Daemon) -> None:
    ex = crunch.Executor(daemon.address)
    slow = ex.submit("sleep", ms=200)
    ex.shutdown(wait=True)
    assert slow.done() and slow.result() == b""
    with pytest.raises(RuntimeError):
        ex.submit("noop")
    ex.shutdown()  # Idempotent.


def _wait_until_sent(future: concurrent.futures.Future) -> None:
    give_up = time.monotonic() + 10
    while not future.running() and time.monotonic() < give_up:
        time.sleep(0.005)
    assert future.running()


def test_cancel_of_an_unsent_task(daemon: Daemon) -> None:
    with crunch.Executor(daemon.address, max_in_flight=1) as ex:
        first = ex.submit("sleep", ms=1000)  # Holds the only slot.
        second = ex.submit("noop", b"never")
        _wait_until_sent(first)
        assert not first.cancel()  # Sent: running.
        assert second.cancel()
        assert first.result(timeout=10) == b""
        assert second.cancelled()


def test_shutdown_cancel_futures(daemon: Daemon) -> None:
    ex = crunch.Executor(daemon.address, max_in_flight=1)
    first = ex.submit("sleep", ms=1000)  # Holds the only slot.
    rest = [ex.submit("noop") for _ in range(10)]
    _wait_until_sent(first)
    ex.shutdown(wait=True, cancel_futures=True)
    assert first.result() == b""
    assert all(f.cancelled() for f in rest)


def test_ten_thousand_noops(executor: crunch.Executor) -> None:
    n = 10_000
    start = time.perf_counter()
    outputs = list(executor.map("noop", (str(i).encode() for i in range(n))))
    elapsed = time.perf_counter() - start
    assert outputs == [str(i).encode() for i in range(n)]
    print(f"\nExecutor: {n} noop tasks in {elapsed:.2f} s, {n / elapsed:.0f} tasks/s")


def test_a_backlog_goes_out_in_batches_within_max_in_flight(daemon: Daemon) -> None:
    # A lone task is sent at once; a backlog must not go one task per message
    # (each result freeing one slot that the next task takes at once), which
    # is what capped the executor at grpc.aio's cost per message.
    n = 5000
    with crunch.Executor(daemon.address, max_in_flight=64, streams=2) as ex:
        assert ex.submit("noop", b"alone").result(timeout=10) == b"alone"
        assert ex._batches_sent == 1
        outputs = list(ex.map("noop", (str(i).encode() for i in range(n))))
        assert outputs == [str(i).encode() for i in range(n)]
        assert ex._peak_in_flight <= 64
        # 32 tasks in flight per stream, refilled at 16: about 16 per message.
        assert ex._batches_sent < n / 8, f"{ex._batches_sent} messages for {n} tasks"


def _accepted(daemon: Daemon) -> int:
    with crunch.Client(daemon.address) as c:
        return c.status()["counters"]["accepted"]


def test_closing_a_map_early_drops_its_unsent_tasks(daemon: Daemon) -> None:
    before = _accepted(daemon)
    with crunch.Executor(daemon.address, max_in_flight=1) as ex:
        outputs = ex.map("sleep", [{"ms": 200}] * 6)
        assert next(outputs) == b""
        outputs.close()
        assert ex.submit("noop", b"after").result(timeout=10) == b"after"
    # The first, perhaps the second (sent as the first answered), and the noop.
    assert _accepted(daemon) - before <= 3


def test_map_timeout_and_cancelled_tasks(daemon: Daemon) -> None:
    with crunch.Executor(daemon.address, max_in_flight=1) as ex:
        outputs = ex.map("sleep", [{"ms": 1000}, {"ms": 0}], timeout=0.1)
        with pytest.raises(TimeoutError):
            next(outputs)
        outputs.close()
    ex = crunch.Executor(daemon.address, max_in_flight=1)
    first = ex.submit("sleep", ms=300)  # Holds the only slot.
    _wait_until_sent(first)
    outputs = ex.map("noop", [b"a", b"b"])
    ex.shutdown(wait=True, cancel_futures=True)
    assert first.result() == b""
    with pytest.raises(concurrent.futures.CancelledError):
        next(outputs)


def test_map_with_a_bad_item_submits_nothing(executor: crunch.Executor, daemon: Daemon) -> None:
    before = _accepted(daemon)
    with pytest.raises(TypeError):
        executor.map("noop", [b"fine", 42])
    assert list(executor.map("noop", [b"x"])) == [b"x"]
    assert _accepted(daemon) - before == 1


def test_unreachable_daemon_fails_the_futures() -> None:
    with crunch.Executor("unix:/nonexistent/crunchd.sock") as ex:
        try:
            future = ex.submit("noop")
        except concurrent.futures.BrokenExecutor as e:
            error = e.__cause__
        else:
            error = future.exception(timeout=10)
    assert isinstance(error, crunch.DaemonUnreachableError)
    assert "systemctl status crunchd" in str(error)


def test_executors_share_work_across_threads(daemon: Daemon) -> None:
    expected = [str(i).encode() for i in range(2000)]
    with crunch.Executor(daemon.address) as a, crunch.Executor(daemon.address, streams=1) as b:
        with concurrent.futures.ThreadPoolExecutor(4) as threads:
            runs = [threads.submit(lambda ex: list(ex.map("noop", expected)), ex)
                    for ex in (a, b, a, b)]
            assert all(run.result(timeout=60) == expected for run in runs)
