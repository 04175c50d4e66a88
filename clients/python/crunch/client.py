"""crunch.Client: blocking calls to crunchd.

One Client holds one gRPC channel per daemon (one connection each, multiplexed)
and is thread-safe: share it between threads rather than making one per call.
For many small tasks from one thread, Client.stream or crunch.Executor pipeline
them over one RunStream call instead of paying a round trip each.

Given several daemons, each call and each stream goes to the next one in turn
(crunch/_round_robin.py says why the client balances, not gRPC).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import grpc

from crunch import errors
from crunch._address import Address, TaskId, parse_address_list, target_index, task_location
from crunch._channel import (
    QUICK_CALL_TIMEOUT,
    ChannelOptions,
    channel_args,
    open_channel,
    security,
)
from crunch._convert import (
    Payload,
    TaskResult,
    TaskSpec,
    message_to_dict,
    spec_request,
    task_request,
    task_result,
)
from crunch._round_robin import RoundRobin
from crunch._stubs import pb, pb_grpc


class Client:
    """A connection to crunchd, or to several balanced round-robin.

    `address` is a gRPC target ("unix:/path", "host:port", "dns:///host:port";
    a bare path means a unix socket); None means the default rule crunchd uses
    (crunch.default_address()). A comma-separated string or a sequence of
    targets names several daemons: each call and each stream() then goes to the
    next in turn, skipping one failing to connect while another is not;
    submit() returns "ID@ADDRESS" (task ids are per daemon), and status() and
    kinds() ask the first daemon unless told which. `addresses` holds the
    targets, one per daemon; `address` them joined with commas.

    `timeout` is the deadline in seconds of every call; None means none for
    run, wait and stream, and QUICK_CALL_TIMEOUT for the others.
    `channel_options` are extra gRPC channel arguments for every channel, such
    as a service config (docs/scaling.md).

    Security (docs/operations.md, "Security"): `token` is sent with every call
    as "authorization: Bearer TOKEN" (crunchd's [server] token_file). Targets
    other than unix sockets use TLS when given `credentials` (e.g.
    grpc.ssl_channel_credentials(...)) or the PEM bytes `root_certificates`
    (the CA that signed crunchd's certificate; None: the system's) and, for a
    crunchd that wants client certificates, `private_key` with
    `certificate_chain`. A missing or wrong token raises UnauthenticatedError,
    a uid crunchd does not allow PermissionDeniedError.

    Every method raises a crunch.TaskError subclass on failure,
    DaemonUnreachableError (naming the daemon tried) when no connection could
    be made; a malformed address or task id raises ValueError.
    """

    def __init__(
        self,
        address: Address = None,
        timeout: float | None = None,
        *,
        channel_options: ChannelOptions = (),
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
    ) -> None:
        self.addresses: tuple[str, ...] = tuple(parse_address_list(address))
        self.address = ",".join(self.addresses)
        self.timeout = timeout
        options = channel_args(channel_options)
        sec = security(token, credentials, root_certificates, private_key, certificate_chain)
        self._metadata = sec.metadata
        self._channels = [open_channel(target, options, sec) for target in self.addresses]
        self._stubs = [pb_grpc.CrunchStub(channel) for channel in self._channels]
        # Written by gRPC's connectivity threads, read by RoundRobin.pick().
        states = [grpc.ChannelConnectivity.IDLE] * len(self._channels)
        if len(self._channels) > 1:
            for index, channel in enumerate(self._channels):
                channel.subscribe(functools.partial(states.__setitem__, index))
        self._turn = RoundRobin(
            len(self._channels),
            lambda index: states[index] is grpc.ChannelConnectivity.TRANSIENT_FAILURE,
        )

    def run(
        self,
        kind: str,
        payload: Payload = b"",
        *,
        timeout_ms: int = 0,
        priority: int = 0,
        **params: Any,
    ) -> bytes:
        """Runs one task and returns its output.

        `params` are the kind's parameters (values converted with str());
        `timeout_ms` is the task's own time limit (0: the pool's default);
        higher `priority` runs first.
        """
        return self.run_result(
            kind, payload, timeout_ms=timeout_ms, priority=priority, **params
        ).output

    def run_result(
        self,
        kind: str,
        payload: Payload = b"",
        *,
        timeout_ms: int = 0,
        priority: int = 0,
        **params: Any,
    ) -> TaskResult:
        """Like run, but returns the whole TaskResult (output, ids, timings, pool)."""
        request = task_request(kind, payload, params, timeout_ms=timeout_ms, priority=priority)
        return task_result(self._call(self._turn.pick(), "Run", request, self.timeout))

    def submit(
        self,
        kind: str,
        payload: Payload = b"",
        *,
        timeout_ms: int = 0,
        priority: int = 0,
        idempotency_key: str = "",
        **params: Any,
    ) -> TaskId:
        """Queues one task and returns its id at once; wait() collects the result.

        The id is the daemon's task id (an int), or with several addresses
        "ID@ADDRESS" (a str) naming the daemon that has the task. The daemon
        keeps a finished task's result for [server] result_ttl_ms. The same
        non-empty `idempotency_key` returns the same task while it is kept (on
        the same daemon: with several, send retries to the id's address).
        """
        request = task_request(kind, payload, params, timeout_ms=timeout_ms, priority=priority)
        request.idempotency_key = idempotency_key
        index = self._turn.pick()
        task_id = self._call(index, "Submit", request, self._quick_timeout()).task_id
        return task_id if len(self.addresses) == 1 else f"{task_id}@{self.addresses[index]}"

    def wait(self, task_id: TaskId, timeout: float | None = None) -> bytes:
        """Waits for a submitted task and returns its output.

        `task_id` as submit() returned it. A failed task raises like run().
        `timeout` (seconds; None: the client's) bounds this call only:
        DeadlineExceededError when it passes, and the task keeps running.
        """
        number, index = task_location(self.addresses, task_id)
        deadline = self.timeout if timeout is None else timeout
        return self._call(index, "Wait", pb.TaskRef(task_id=number), deadline).output

    def cancel(self, task_id: TaskId) -> str:
        """Cancels a queued or running task; returns the state it had: queued, running or done.

        `task_id` as submit() returned it. "done" means it had already ended
        and its result stands. An unknown id raises NotFoundError.
        """
        number, index = task_location(self.addresses, task_id)
        reply = self._call(index, "Cancel", pb.TaskRef(task_id=number), self._quick_timeout())
        return reply.state

    def status(self, *, address: str | None = None) -> dict[str, Any]:
        """Returns a daemon's status as plain data, keys as in crunch.v1.DaemonStatus.

        {"version", "pid", "uptime_ms", "draining", "workers": [{"slot", "pid",
        "state", ...}], "pools": [{"name", "size", "busy", "queued",
        "queue_capacity", "latency": {"p50_us", ...}}], "counters": {"accepted",
        ..., "failed_by_code": {"CANCELLED": 3}}}

        With several addresses, the first daemon's unless `address` names
        another of `addresses` (each one's: [c.status(address=a) for a in c.addresses]).
        """
        index = target_index(self.addresses, address, what="status(address=...)")
        reply = self._call(index, "Status", pb.StatusRequest(), self._quick_timeout())
        return message_to_dict(reply)

    def kinds(self, *, address: str | None = None) -> list[dict[str, Any]]:
        """Returns what a daemon can run: [{"name", "pool", "description", "params": [...]}].

        With several addresses, the first daemon's unless `address` names another.
        """
        index = target_index(self.addresses, address, what="kinds(address=...)")
        reply = self._call(index, "ListKinds", pb.ListKindsRequest(), self._quick_timeout())
        return [message_to_dict(k) for k in reply.kinds]

    def stream(
        self, requests: Iterable[TaskSpec], *, max_in_flight: int = 1024
    ) -> Iterator[TaskResult]:
        """Runs many tasks over one RunStream and yields their results as they complete.

        Each request is (kind,), (kind, payload), (kind, payload, params) or a
        mapping with "kind" and optionally "payload", "params", "timeout_ms",
        "priority". A result's `tag` is its request's index in `requests`. A
        failed task is a result with `ok` False (output_or_raise() raises it);
        it does not end the stream. At most `max_in_flight` tasks are sent
        ahead of the results read, so the daemon's queue does not overflow and
        `requests` may be endless. Leaving the loop early cancels the rest.
        With several addresses the whole stream goes to one daemon, the next
        in turn.
        """
        index = self._turn.pick()
        slots = threading.Semaphore(max_in_flight)
        closed = threading.Event()
        bad_request: list[BaseException] = []
        call: list[Any] = []

        def wire_requests() -> Iterator[Any]:
            # Runs on gRPC's sender thread: any exception here must reach the caller.
            try:
                for tag, spec in enumerate(requests):
                    slots.acquire()
                    if closed.is_set():
                        return
                    yield spec_request(spec, tag)
            except Exception as e:  # noqa: BLE001 - re-raised in the caller's thread
                bad_request.append(e)
                call[0].cancel()

        call.append(self._stubs[index].RunStream(
                wire_requests(), timeout=self.timeout, metadata=self._metadata
            ))
        try:
            for r in call[0]:
                slots.release()
                yield task_result(r)
        except grpc.RpcError as e:
            if bad_request:
                raise bad_request[0] from None
            raise errors.from_rpc_error(e, self.addresses[index]) from None
        finally:
            closed.set()
            slots.release(max_in_flight)  # Unblocks the sender if it waits for a slot.
            call[0].cancel()

    def close(self) -> None:
        """Closes the channels; calls in progress fail."""
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _quick_timeout(self) -> float:
        return QUICK_CALL_TIMEOUT if self.timeout is None else self.timeout

    def _call(self, index: int, method: str, request: Any, timeout: float | None) -> Any:
        """Calls unary `method` on daemon `index`; a failure becomes a TaskError."""
        try:
            return getattr(self._stubs[index], method)(
                request, timeout=timeout, metadata=self._metadata
            )
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, self.addresses[index]) from None
