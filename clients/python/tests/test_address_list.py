"""Address lists: every client balanced round-robin over two real daemons."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import pytest

import crunch
import crunch.aio
from crunch._address import parse_address_list, split_task_id
from conftest import Daemon


@pytest.mark.parametrize(
    ("address", "targets"),
    [
        ("unix:/a.sock", ["unix:/a.sock"]),
        ("/a.sock", ["unix:/a.sock"]),
        ("unix:///a.sock", ["unix:/a.sock"]),
        ("localhost:50051", ["localhost:50051"]),
        ("dns:///crunchd.example:50051", ["dns:///crunchd.example:50051"]),
        (" unix:/a.sock , unix:/b.sock ", ["unix:/a.sock", "unix:/b.sock"]),
        ("unix:/a.sock,b.sock", ["unix:/a.sock", "unix:b.sock"]),
        ("/a.sock,/b.sock", ["unix:/a.sock", "unix:/b.sock"]),
        ("ipv4:10.0.0.1:1,10.0.0.2:1", ["ipv4:10.0.0.1:1", "10.0.0.2:1"]),
        ("unix:/a.sock,host:5000", ["unix:/a.sock", "host:5000"]),
        (["unix:/a.sock", "/b.sock"], ["unix:/a.sock", "unix:/b.sock"]),
        (("h1:1", "h2:1"), ["h1:1", "h2:1"]),
    ],
)
def test_addresses_split_like_crunchctls(address: str | Sequence[str], targets: list[str]) -> None:
    assert parse_address_list(address) == targets


@pytest.mark.parametrize(
    ("address", "error", "says"),
    [
        ("", ValueError, "the address is empty; give a gRPC target such as"),
        ("  ", ValueError, "the address is empty"),
        ("unix:/a.sock,,unix:/b.sock", ValueError, "empty entry in the address list"),
        ("unix:/a.sock,", ValueError, "separate addresses with single commas"),
        ([], ValueError, "the address list is empty"),
        (["unix:/a.sock", ""], ValueError, "empty entry in the address list"),
        (["unix:/a.sock", 5], TypeError, "an address list holds strings"),
        (b"unix:/a.sock", TypeError, "address must be a gRPC target string"),
    ],
)
def test_bad_addresses_say_what_is_allowed(address: object, error: type, says: str) -> None:
    with pytest.raises(error, match=says):
        parse_address_list(address)  # type: ignore[arg-type]
    with pytest.raises(error, match=says):
        crunch.Client(address)  # type: ignore[arg-type]
    with pytest.raises(error, match=says):
        crunch.Executor(address)  # type: ignore[arg-type]


def test_task_ids_split_into_number_and_address() -> None:
    assert split_task_id(42) == (42, None)
    assert split_task_id("42") == (42, None)
    assert split_task_id("42@unix:/b.sock") == (42, "unix:/b.sock")
    for bad in ("x", "42@", "-1", -1, 4.2, True):
        with pytest.raises(ValueError, match="a task id is an unsigned integer, or 'ID@ADDRESS'"):
            split_task_id(bad)  # type: ignore[arg-type]


@pytest.fixture
def two(daemon: Daemon, other_daemon: Daemon) -> list[str]:
    """The two daemons' addresses."""
    return [daemon.address, other_daemon.address]


@pytest.fixture
def pair(two: list[str]) -> Iterator[crunch.Client]:
    with crunch.Client(",".join(two)) as c:
        yield c


def completed(client: crunch.Client) -> list[int]:
    """Each daemon's count of completed tasks, in the client's order."""
    return [client.status(address=a)["counters"]["completed"] for a in client.addresses]


def delta(after: list[int], before: list[int]) -> list[int]:
    return [a - b for a, b in zip(after, before)]


def test_runs_alternate_between_the_daemons(pair: crunch.Client, two: list[str]) -> None:
    assert pair.addresses == tuple(two)
    assert pair.address == ",".join(two)
    before = completed(pair)
    outputs = [pair.run("fib", n=i % 25) for i in range(200)]
    assert outputs[24] == b"46368"
    assert delta(completed(pair), before) == [100, 100]


def test_a_python_list_is_an_address_list(two: list[str]) -> None:
    with crunch.Client(two) as c:
        before = completed(c)
        assert [c.run("noop", str(i)) for i in range(10)] == [str(i).encode() for i in range(10)]
        assert delta(completed(c), before) == [5, 5]


def test_submitted_ids_name_their_daemon(pair: crunch.Client, two: list[str]) -> None:
    ids = [pair.submit("fib", n=20) for _ in range(4)]
    assert all(isinstance(i, str) for i in ids)
    assert sorted({str(i).split("@", 1)[1] for i in ids}) == sorted(two)
    assert [pair.wait(i) for i in ids] == [b"6765"] * 4
    assert pair.cancel(ids[0]) == "done"

    number = str(ids[0]).split("@")[0]
    with pytest.raises(ValueError, match="does not say which daemon has the task; .* 'ID@ADDRESS'"):
        pair.wait(number)
    with pytest.raises(ValueError, match="not one of this client's addresses"):
        pair.wait(f"{number}@unix:/not/in/the/list.sock")
    with crunch.Client(two[0]) as one:  # One address: plain ints, and its own ID@ADDRESS.
        task = one.submit("noop", b"x")
        assert isinstance(task, int)
        assert one.wait(task) == b"x"
        assert one.wait(f"{task}@{two[0]}") == b"x"


def test_status_and_kinds_ask_the_daemon_named(pair: crunch.Client, two: list[str]) -> None:
    pids = [pair.status(address=a)["pid"] for a in two]
    assert len(set(pids)) == 2
    assert pair.status()["pid"] == pids[0]  # Unnamed: the first.
    assert {k["name"] for k in pair.kinds(address=two[1])} >= {"fib", "noop"}
    with pytest.raises(ValueError, match=r"status\(address=...\) names 'unix:/x.sock', which is"):
        pair.status(address="unix:/x.sock")


def test_streams_alternate_between_the_daemons(pair: crunch.Client) -> None:
    before = completed(pair)
    for _ in range(2):
        results = list(pair.stream([("noop", b"x")] * 10))
        assert len(results) == 10 and all(r.ok for r in results)
    assert delta(completed(pair), before) == [10, 10]


def test_a_dead_address_is_skipped_once_it_has_failed(daemon: Daemon) -> None:
    with crunch.Client(["unix:/nonexistent/crunchd.sock", daemon.address]) as c:
        failed = 0
        for _ in range(10):
            try:
                assert c.run("noop", b"x") == b"x"
            except crunch.DaemonUnreachableError as e:
                assert e.address == "unix:/nonexistent/crunchd.sock"
                failed += 1
        assert 1 <= failed <= 5
        # Now that the dead one is known to fail, every call goes to the live one.
        assert [c.run("noop", b"y") for _ in range(6)] == [b"y"] * 6


def test_aio_client_balances_too(two: list[str]) -> None:
    async def main() -> None:
        async with crunch.aio.Client(",".join(two)) as c:
            assert c.addresses == tuple(two)
            before = [(await c.status(address=a))["counters"]["completed"] for a in two]
            outputs = await asyncio.gather(*(c.run("noop", str(i)) for i in range(20)))
            assert outputs == [str(i).encode() for i in range(20)]
            ids = [await c.submit("fib", n=10) for _ in range(2)]
            assert sorted(str(i).split("@", 1)[1] for i in ids) == sorted(two)
            assert [await c.wait(i) for i in ids] == [b"55", b"55"]
            async for r in c.stream([("noop",)] * 4):
                assert r.ok
            after = [(await c.status(address=a))["counters"]["completed"] for a in two]
            # 10 runs and a submit each; the stream went to one of them.
            assert sorted(delta(after, before)) == [11, 15]
            with pytest.raises(ValueError, match="does not say which daemon"):
                await c.cancel(1)

    asyncio.run(asyncio.wait_for(main(), 30))


def test_executor_shares_the_tasks(pair: crunch.Client, two: list[str]) -> None:
    before = completed(pair)
    with crunch.Executor(two, streams=2) as ex:
        assert ex.addresses == tuple(two)
        outputs = list(ex.map("fib", [20] * 200, param="n"))
    assert outputs == [b"6765"] * 200
    shares = delta(completed(pair), before)
    assert sum(shares) == 200
    assert min(shares) >= 40, f"each daemon should do a fair share of 200, did {shares}"
