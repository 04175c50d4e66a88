"""crunch.Client: blocking calls to crunchd.

One Client holds one gRPC channel (one connection, multiplexed) and is
thread-safe: share it between threads rather than making one per call. For many
small tasks from one thread, Client.stream or crunch.Executor pipeline them over
one RunStream call instead of paying a round trip each.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

import grpc

from crunch import errors
from crunch._address import default_address
from crunch._channel import CHANNEL_OPTIONS, QUICK_CALL_TIMEOUT
from crunch._convert import (
    Payload,
    TaskResult,
    TaskSpec,
    message_to_dict,
    spec_request,
    task_request,
    task_result,
)
from crunch._stubs import pb, pb_grpc


class Client:
    """A connection to crunchd.

    `address` is a gRPC target ("unix:/path", "host:port"); None means the
    default rule crunchd uses (crunch.default_address()). `timeout` is the
    deadline in seconds of every call; None means none for run, wait and
    stream, and QUICK_CALL_TIMEOUT for the others. Every method raises a
    crunch.TaskError subclass on failure, DaemonUnreachableError when no
    connection could be made.
    """

    def __init__(self, address: str | None = None, timeout: float | None = None) -> None:
        self.address = address or default_address()
        self.timeout = timeout
        self._channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.CrunchStub(self._channel)

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
        return task_result(self._call(self._stub.Run, request, self.timeout))

    def submit(
        self,
        kind: str,
        payload: Payload = b"",
        *,
        timeout_ms: int = 0,
        priority: int = 0,
        idempotency_key: str = "",
        **params: Any,
    ) -> int:
        """Queues one task and returns its id at once; wait() collects the result.

        The daemon keeps a finished task's result for [server] result_ttl_ms. The
        same non-empty `idempotency_key` returns the same task while it is kept.
        """
        request = task_request(kind, payload, params, timeout_ms=timeout_ms, priority=priority)
        request.idempotency_key = idempotency_key
        return self._call(self._stub.Submit, request, self._quick_timeout()).task_id

    def wait(self, task_id: int, timeout: float | None = None) -> bytes:
        """Waits for a submitted task and returns its output.

        A failed task raises like run(). `timeout` (seconds; None: the client's)
        bounds this call only: DeadlineExceededError when it passes, and the
        task keeps running.
        """
        deadline = self.timeout if timeout is None else timeout
        return self._call(self._stub.Wait, pb.TaskRef(task_id=task_id), deadline).output

    def cancel(self, task_id: int) -> str:
        """Cancels a queued or running task; returns the state it had: queued, running or done.

        "done" means it had already ended and its result stands. An unknown id
        raises NotFoundError.
        """
        reply = self._call(self._stub.Cancel, pb.TaskRef(task_id=task_id), self._quick_timeout())
        return reply.state

    def status(self) -> dict[str, Any]:
        """Returns the daemon's status as plain data, keys as in crunch.v1.DaemonStatus.

        {"version", "pid", "uptime_ms", "draining", "workers": [{"slot", "pid",
        "state", ...}], "pools": [{"name", "size", "busy", "queued",
        "queue_capacity", "latency": {"p50_us", ...}}], "counters": {"accepted",
        ..., "failed_by_code": {"CANCELLED": 3}}}
        """
        reply = self._call(self._stub.Status, pb.StatusRequest(), self._quick_timeout())
        return message_to_dict(reply)

    def kinds(self) -> list[dict[str, Any]]:
        """Returns what the daemon can run: [{"name", "pool", "description", "params": [...]}]."""
        reply = self._call(self._stub.ListKinds, pb.ListKindsRequest(), self._quick_timeout())
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
        """
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

        call.append(self._stub.RunStream(wire_requests(), timeout=self.timeout))
        try:
            for r in call[0]:
                slots.release()
                yield task_result(r)
        except grpc.RpcError as e:
            if bad_request:
                raise bad_request[0] from None
            raise errors.from_rpc_error(e, self.address) from None
        finally:
            closed.set()
            slots.release(max_in_flight)  # Unblocks the sender if it waits for a slot.
            call[0].cancel()

    def close(self) -> None:
        """Closes the channel; calls in progress fail."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _quick_timeout(self) -> float:
        return QUICK_CALL_TIMEOUT if self.timeout is None else self.timeout

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, self.address) from None
