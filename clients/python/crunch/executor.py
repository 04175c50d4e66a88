"""crunch.Executor: a concurrent.futures.Executor whose workers are crunchd's.

Design. An Executor owns one channel per daemon, used from an asyncio event
loop on a thread of its own ("crunch.Executor loop", one for all the executors
of a process; see _shared_loop). Every task goes over one of a few RunBatches
calls (`streams`, default 4: RunStream with several tasks per message each
way), tagged with a number unique to the executor; its result comes back with
the tag, in completion order. With several daemons the
streams are dealt to them in turn (stream i to daemon i % n, at least one
each), and since every sender takes the next task from the one outbox, each
daemon gets tasks as fast as it answers them: equal hosts share evenly, a
faster one takes more (as crunchctl's batch does).

  submit()   (any thread) builds the TaskRequest, registers the Future under
             its tag and appends it to the outbox (a deque). It never blocks;
             it wakes the loop only when every sender is idle. map() queues
             all its tasks at once, each with a light _MapTask in place of a
             Future, and yields their results in order (_MapRun).
  senders    (one coroutine per stream, on the loop) take tasks from the outbox
             in order, within max_in_flight (for all streams) and the stream's
             even share of it (so that with several daemons each gets its
             share of the tasks in flight, and a faster one finishes more),
             mark the Futures running and write them as one TaskBatch. A
             stream with nothing in flight sends at once, so a lone task never
             waits; one with more than half its share in flight waits until
             it is down to half, then fills its share in one message. Without
             that low-water mark a backlog went out one task per message (each
             result freed one slot, which the next task took at once: about
             1.07 tasks per message for 20,000 noops), and grpc.aio's cost per
             message capped the executor. A Future cancelled before this
             point is dropped here; one marked running can no longer be
             cancelled (see Future.cancel below).
  receivers  (one coroutine per stream) read result batches, resolve each
             Future by tag (set_result(output) or set_exception(the TaskError
             subclass)) and give the batch's slots back, waking a sender that
             waits for room.

Why a loop and several streams, not a sender and a receiver thread on one
stream: grpc's blocking API hands every message between Python threads (its
request-consumer thread, its channel-spin thread, ours), which measured about
10 context switches and 60 futex calls per noop task (perf stat, strace -c);
one loop thread needs about half. And gRPC allows one write in flight per
call, so one stream's rate is one write-completion round trip per task; four
streams overlap them (README.md, "Throughput", has the figures).

The slots keep at most max_in_flight tasks in the daemon, so a burst of
submits cannot overflow its queue (RESOURCE_EXHAUSTED). shutdown() marks the
outbox closed behind the last accepted task; each sender half-closes its
stream when it finds the outbox empty, the daemon finishes what it has and the
streams end. If a stream fails (daemon gone or draining), every unresolved
Future gets that error, the other streams are cancelled and submit() raises
BrokenExecutor. With several daemons that includes one of them failing: the
executor does not move tasks between daemons (a task sent may have run).

Future.cancel() returns True only for a task still in the outbox. A sent task
is not cancelled: its daemon task id is unknown until its result arrives, so
there is nothing to send Cancel for; use Client.submit/cancel for long tasks
that may need cancelling.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Union

import grpc
import grpc.aio

from crunch import errors
from crunch._address import Address, parse_address_list
from crunch._channel import ChannelOptions, channel_args, open_aio_channel, security
from crunch._convert import Payload, payload_bytes, status_code, task_request
from crunch._stubs import pb, pb_grpc

# The most tasks sent in one RunBatches message.
_MAX_BATCH = 256


class Executor(concurrent.futures.Executor):
    """Runs crunchd tasks as Futures, pipelined over a few streams.

    `address` as for crunch.Client: one target, or several (a comma-separated
    string or a sequence) whose daemons share the tasks. At most
    `max_in_flight` tasks are sent ahead of their results; the rest wait in
    this process. `streams` RunStream calls share them (1 for strictly one
    stream; with several daemons, at least one per daemon).
    `channel_options` and the security arguments (`token`, `credentials`,
    `root_certificates`, `private_key`, `certificate_chain`) as for
    crunch.Client. Methods are thread-safe.
    """

    def __init__(
        self,
        address: Address = None,
        max_in_flight: int = 256,
        *,
        streams: int = 4,
        channel_options: ChannelOptions = (),
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if streams < 1:
            raise ValueError(f"streams must be at least 1, got {streams}")
        self.addresses: tuple[str, ...] = tuple(parse_address_list(address))
        self.address = ",".join(self.addresses)
        self._channel_options = channel_args(channel_options)
        self._security = security(
            token, credentials, root_certificates, private_key, certificate_chain
        )
        self._max_in_flight = max_in_flight
        self._streams = max(min(streams, max_in_flight), len(self.addresses))
        self._in_flight = 0  # Sent and not answered, all streams (loop thread only).
        self._lanes: list[_Lane] = []
        # What the senders did, for tests (loop thread only): TaskBatch
        # messages written, and the most tasks in flight at once.
        self._batches_sent = 0
        self._peak_in_flight = 0
        self._tags = itertools.count()
        # A task is a submit()'s Future or a map()'s _MapTask, with its request.
        self._outbox: collections.deque[tuple[_Task, Any]] = collections.deque()
        self._pending: dict[int, _Task] = {}  # tag -> unresolved
        self._lock = threading.Lock()  # Orders submit() against shutdown() and failure.
        self._closing = False  # Set under _lock: no task will join the outbox any more.
        self._broken: errors.TaskError | None = None  # Set under _lock.
        self._idle = False  # A sender may be waiting for _kick (read and written under the GIL).
        self._calls: list[Any] = []
        # Loop objects; they bind to the loop when first used there.
        self._kick = asyncio.Event()
        self._loop, self._loop_thread = _shared_loop()
        self._served = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)

    def submit(  # type: ignore[override]  # kind, not a callable
        self,
        kind: str,
        payload: Payload = b"",
        *,
        timeout_ms: int = 0,
        priority: int = 0,
        **params: Any,
    ) -> concurrent.futures.Future[bytes]:
        """Schedules one task; the Future's result() is its output or raises its TaskError.

        Arguments as for Client.run. Raises RuntimeError after shutdown() and
        concurrent.futures.BrokenExecutor once a stream has failed.
        """
        tag = next(self._tags)
        request = task_request(kind, payload, params, tag=tag, timeout_ms=timeout_ms,
                               priority=priority)
        future: concurrent.futures.Future[bytes] = concurrent.futures.Future()
        with self._lock:
            self._check_open()
            self._pending[tag] = future
            self._outbox.append((future, request))
        if self._idle:
            self._wake_senders()
        return future

    def _check_open(self) -> None:
        """Raises if no task may be queued now (call under _lock)."""
        if self._broken is not None:
            raise concurrent.futures.BrokenExecutor(
                f"the stream to crunchd failed: {self._broken}"
            ) from self._broken
        if self._closing:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def map(  # type: ignore[override]  # kind, not a callable
        self,
        kind: str,
        *iterables: Iterable[Any],
        param: str | tuple[str, ...] | None = None,
        timeout: float | None = None,
        chunksize: int = 1,
        **params: Any,
    ) -> Iterator[bytes]:
        """Runs `kind` once per item and yields the outputs in the items' order.

        With `param`, items are values of that parameter:
            ex.map("fib", [28, 30, 32], param="n")  # fib n=28, n=30, n=32
        (several iterables with param=("a", "b") are zipped, as in map()).
        Without it, each item is a payload (bytes or str), a mapping of
        parameters, or a (payload, parameters) pair. `params` are added to
        every task's parameters. Every task is submitted before this returns;
        a failed task raises its TaskError when its output is reached;
        `timeout` (seconds, from this call) and the cancellation of the rest
        when the iterator is closed early behave as in Executor.map.
        `chunksize` is accepted for compatibility and ignored: tasks are
        already pipelined.
        """
        del chunksize
        end = None if timeout is None else time.monotonic() + timeout
        items = _map_tasks(iterables, param, params)
        # Every item is checked before any task is queued.
        tasks = [task_request(kind, payload, kw) for payload, kw in items]
        run = _MapRun(len(tasks))
        with self._lock:
            self._check_open()
            pending, outbox, tags = self._pending, self._outbox, self._tags
            for index, request in enumerate(tasks):
                request.tag = tag = next(tags)
                entry = _MapTask(run, index)
                pending[tag] = entry
                outbox.append((entry, request))
        if self._idle:
            self._wake_senders()
        return run.outputs(end)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Accepts no more tasks; the ones accepted still run (unless `cancel_futures`).

        `cancel_futures` cancels the tasks not sent yet. With `wait`, returns
        once every sent task's result is in and the connection is closed.
        """
        with self._lock:
            if not self._closing:
                self._closing = True
                if cancel_futures:
                    for future in list(self._pending.values()):
                        future.cancel()  # False for the sent ones: they are running.
        self._wake_senders()
        if wait and threading.current_thread() is not self._loop_thread:
            self._served.result()

    # --- the loop thread ---------------------------------------------------

    def _wake_senders(self) -> None:
        self._idle = False
        self._loop.call_soon_threadsafe(self._kick.set)

    async def _serve(self) -> None:
        channels = [
            open_aio_channel(target, self._channel_options, self._security)
            for target in self.addresses
        ]
        try:
            stubs = [pb_grpc.CrunchStub(channel) for channel in channels]
            # Stream i goes to daemon i % n: round-robin, and every daemon gets one.
            targets = [i % len(stubs) for i in range(self._streams)]
            self._calls = [stubs[i].RunBatches(metadata=self._security.metadata) for i in targets]
            # Each stream's even share of max_in_flight, so that one stream's
            # batch cannot take every task from the others (and their daemons).
            share = -(-self._max_in_flight // self._streams)
            self._lanes = [_Lane(share) for _ in self._calls]
            await asyncio.gather(
                *(
                    self._stream(call, lane, self.addresses[i])
                    for call, lane, i in zip(self._calls, self._lanes, targets)
                )
            )
        except BaseException as e:  # noqa: BLE001 - a bug here must not strand the futures.
            self._fail(errors.TaskError(f"crunch.Executor failed: {e!r}"))
        finally:
            if self._pending:
                self._fail(errors.TaskError("the streams ended before every task was answered"))
            await asyncio.gather(*(channel.close() for channel in channels))

    async def _stream(self, call: Any, lane: _Lane, target: str) -> None:
        sender = asyncio.ensure_future(self._send(call, lane))
        pending, ok, eof = self._pending, 0, grpc.aio.EOF
        try:
            while True:
                batch = await call.read()
                if batch is eof:
                    break
                for r in batch.results:
                    future = pending.pop(r.tag)
                    if r.code == ok:
                        future.set_result(r.output)
                    else:
                        future.set_exception(errors.error_for(status_code(r.code), r.error))
                answered = len(batch.results)
                lane.in_flight -= answered
                self._in_flight -= answered
                self._wake_lanes()
        except grpc.RpcError as e:
            self._fail(errors.from_rpc_error(e, target))
        except asyncio.CancelledError:
            if self._broken is None:  # Not cancelled by _fail: someone else's cancellation.
                raise
        finally:
            sender.cancel()

    def _room(self, lane: _Lane) -> int:
        """How many tasks `lane` may send now: 0 while it should wait (see the module doc)."""
        if lane.in_flight > lane.low_water:
            return 0
        return min(lane.share - lane.in_flight, self._max_in_flight - self._in_flight, _MAX_BATCH)

    def _wake_lanes(self) -> None:
        for lane in self._lanes:
            if lane.waiting and self._room(lane) > 0:
                lane.waiting = False
                lane.room.set()

    async def _send(self, call: Any, lane: _Lane) -> None:
        try:
            await self._send_all(call, lane)
        except (grpc.RpcError, asyncio.InvalidStateError):
            pass  # The call ended; its receiver reports why.
        except Exception as e:  # noqa: BLE001 - a bug here must not strand the futures.
            self._fail(errors.TaskError(f"crunch.Executor sender failed: {e!r}"))

    async def _send_all(self, call: Any, lane: _Lane) -> None:
        outbox, pending, kick = self._outbox, self._pending, self._kick
        while self._broken is None:
            if not outbox:
                if self._closing:
                    await call.done_writing()
                    return
                # submit() appends, then reads _idle; we set _idle, then read the
                # outbox: under the GIL one of us sees the other, so no task waits
                # while every sender sleeps.
                self._idle = True
                if not outbox and not self._closing:
                    await kick.wait()
                    kick.clear()
                continue
            room = self._room(lane)
            if room == 0:
                lane.room.clear()
                lane.waiting = True
                await lane.room.wait()
                continue
            batch = pb.TaskBatch()
            tasks = batch.tasks
            while outbox and len(tasks) < room:
                future, request = outbox.popleft()
                try:
                    running = future.set_running_or_notify_cancel()
                except RuntimeError:  # Already failed by _fail.
                    running = False
                if running:
                    tasks.append(request)
                else:
                    pending.pop(request.tag, None)
            if tasks:
                lane.in_flight += len(tasks)
                self._in_flight += len(tasks)
                self._batches_sent += 1
                self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
                await call.write(batch)

    def _fail(self, failure: errors.TaskError) -> None:
        # On the loop thread. The first failure wins; later ones are its echoes.
        with self._lock:
            if self._broken is None:
                self._broken = failure
            failure = self._broken
            self._outbox.clear()
        for future in list(self._pending.values()):
            try:
                future.set_exception(failure)
            except concurrent.futures.InvalidStateError:
                pass  # Resolved or cancelled meanwhile.
        self._pending.clear()
        for call in self._calls:
            call.cancel()
        self._kick.set()
        for lane in self._lanes:
            lane.room.set()


_MISSING: Any = object()
_Task = Union["concurrent.futures.Future[bytes]", "_MapTask"]


class _MapRun:
    """The results of one Executor.map call, in the items' order.

    map() does not make a concurrent.futures.Future per task: a Future's
    Condition, taken to mark it running, to set its result and to read it,
    was about half of the executor's own CPU per noop task (yappi). Each task
    is a _MapTask in the executor's outbox and pending map instead; its result
    goes straight into `results`, and the consumer is woken only when it waits
    for that very result.
    """

    __slots__ = ("results", "lock", "cond", "waiting", "closed")

    def __init__(self, n: int) -> None:
        self.results: list[Any] = [_MISSING] * n  # Output bytes, or the exception to raise.
        self.lock = threading.Lock()  # Orders sending against cancelling (_MapTask).
        self.cond = threading.Condition(threading.Lock())
        self.waiting = -1  # The index the consumer waits for, under cond.
        self.closed = False  # The consumer is gone: tasks not sent yet are dropped.

    def put(self, index: int, value: Any) -> None:
        """Stores a result (any thread; the first one stored stays)."""
        if self.results[index] is not _MISSING:
            return
        self.results[index] = value
        # The consumer sets `waiting` under cond before it checks the result,
        # so either it sees the value or we see it waiting.
        if self.waiting == index:
            with self.cond:
                self.cond.notify()

    def outputs(self, end: float | None) -> Iterator[bytes]:
        results = self.results
        try:
            for index in range(len(results)):
                value = results[index]
                if value is _MISSING:
                    value = self._wait(index, end)
                results[index] = None  # Drops the output as it goes.
                if isinstance(value, BaseException):
                    raise value
                yield value
        finally:
            self.closed = True

    def _wait(self, index: int, end: float | None) -> Any:
        with self.cond:
            self.waiting = index
            try:
                while self.results[index] is _MISSING:
                    left = None if end is None else end - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError()
                    self.cond.wait(left)
            finally:
                self.waiting = -1
        return self.results[index]


class _MapTask:
    """One task of a map(), where submit() has a Future (same methods, as used here)."""

    __slots__ = ("run", "index", "state")

    _UNSENT, _SENT, _CANCELLED = 0, 1, 2

    def __init__(self, run: _MapRun, index: int) -> None:
        self.run = run
        self.index = index
        self.state = _MapTask._UNSENT

    def set_running_or_notify_cancel(self) -> bool:
        with self.run.lock:
            if self.state == _MapTask._CANCELLED:
                return False
            if self.run.closed:  # Nobody will read it.
                self.state = _MapTask._CANCELLED
                return False
            self.state = _MapTask._SENT
            return True

    def cancel(self) -> bool:
        with self.run.lock:
            if self.state == _MapTask._SENT:
                return False
            self.state = _MapTask._CANCELLED
        self.run.put(self.index, concurrent.futures.CancelledError())
        return True

    def set_result(self, output: bytes) -> None:
        self.run.put(self.index, output)

    def set_exception(self, error: BaseException) -> None:
        self.run.put(self.index, error)


class _Lane:
    """One stream's share of the tasks in flight (loop thread only)."""

    __slots__ = ("share", "low_water", "in_flight", "waiting", "room")

    def __init__(self, share: int) -> None:
        self.share = share
        self.low_water = share // 2  # Refill once down to this many in flight.
        self.in_flight = 0
        self.waiting = False  # The sender waits on `room`.
        self.room = asyncio.Event()


_loop_lock = threading.Lock()
_loop_state: tuple[int, asyncio.AbstractEventLoop, threading.Thread] | None = None


def _shared_loop() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """Returns the event loop every Executor of this process uses, and its thread.

    One loop, not one per executor: grpc.aio wakes every loop that has used it
    on each gRPC event, and all but one of them then log a spurious
    BlockingIOError (grpc/grpc#25364). The thread is a daemon and lives until
    the process exits; a forked child starts its own.
    """
    global _loop_state
    with _loop_lock:
        if _loop_state is None or _loop_state[0] != os.getpid():
            loop = asyncio.new_event_loop()
            loop.set_exception_handler(_quiet_poller_errors)
            thread = threading.Thread(
                target=loop.run_forever, name="crunch.Executor loop", daemon=True
            )
            thread.start()
            _loop_state = (os.getpid(), loop, thread)
        return _loop_state[1], _loop_state[2]


def _quiet_poller_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Drops grpc#25364's harmless BlockingIOError (another loop uses grpc.aio too)."""
    error, handle = context.get("exception"), str(context.get("handle", ""))
    if isinstance(error, BlockingIOError) and "PollerCompletionQueue" in handle:
        return
    loop.default_exception_handler(context)


def _map_tasks(
    iterables: tuple[Iterable[Any], ...],
    param: str | tuple[str, ...] | None,
    fixed: Mapping[str, Any],
) -> Iterator[tuple[Payload, dict[str, Any]]]:
    """Yields (payload, params) for each item of Executor.map's iterables."""
    if not iterables:
        raise TypeError("map() needs at least one iterable")
    if param is not None:
        names = (param,) if isinstance(param, str) else tuple(param)
        if len(names) != len(iterables):
            raise TypeError(f"map() got {len(iterables)} iterables for params {names}")
        for values in zip(*iterables):
            yield b"", {**fixed, **dict(zip(names, values))}
        return
    if len(iterables) != 1:
        raise TypeError("map() takes one iterable unless param= names a parameter for each")
    for item in iterables[0]:
        if isinstance(item, Mapping):
            yield b"", {**fixed, **item}
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Mapping):
            yield item[0], {**fixed, **item[1]}
        else:
            payload_bytes(item)  # TypeError now, in the caller, for anything else.
            yield item, dict(fixed)
