"""crunch.aio.Client: crunch.Client for asyncio, on grpc.aio.

The same methods as crunch.Client, as coroutines (stream() is an async
iterator), and the same exceptions. Make the Client inside a running event
loop (grpc.aio binds its channel to the loop) and close it there:

    async with crunch.aio.Client() as client:
        outputs = await asyncio.gather(*(client.run("fib", n=n) for n in range(30, 35)))

Every call is a coroutine on the loop's thread; many concurrent calls share
one connection. Not thread-safe: use it from its loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import grpc
import grpc.aio

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
    """An asyncio connection to crunchd; arguments and errors as for crunch.Client."""

    def __init__(self, address: str | None = None, timeout: float | None = None) -> None:
        self.address = address or default_address()
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.CrunchStub(self._channel)

    async def run(
        self,
        kind: str,
        payload: Payload = b"",
        *,
        timeout_ms: int = 0,
        priority: int = 0,
        **params: Any,
    ) -> bytes:
        """Runs one task and returns its output (see crunch.Client.run)."""
        result = await self.run_result(
            kind, payload, timeout_ms=timeout_ms, priority=priority, **params
        )
        return result.output

    async def run_result(
        self,
        kind: str,
        payload: Payload = b"",
        *,
        timeout_ms: int = 0,
        priority: int = 0,
        **params: Any,
    ) -> TaskResult:
        """Runs one task and returns its whole TaskResult."""
        request = task_request(kind, payload, params, timeout_ms=timeout_ms, priority=priority)
        return task_result(await self._call(self._stub.Run, request, self.timeout))

    async def submit(
        self,
        kind: str,
        payload: Payload = b"",
        *,
        timeout_ms: int = 0,
        priority: int = 0,
        idempotency_key: str = "",
        **params: Any,
    ) -> int:
        """Queues one task and returns its id (see crunch.Client.submit)."""
        request = task_request(kind, payload, params, timeout_ms=timeout_ms, priority=priority)
        request.idempotency_key = idempotency_key
        reply = await self._call(self._stub.Submit, request, self._quick_timeout())
        return reply.task_id

    async def wait(self, task_id: int, timeout: float | None = None) -> bytes:
        """Waits for a submitted task and returns its output (see crunch.Client.wait)."""
        deadline = self.timeout if timeout is None else timeout
        result = await self._call(self._stub.Wait, pb.TaskRef(task_id=task_id), deadline)
        return result.output

    async def cancel(self, task_id: int) -> str:
        """Cancels a task; returns the state it had: queued, running or done."""
        reply = await self._call(
            self._stub.Cancel, pb.TaskRef(task_id=task_id), self._quick_timeout()
        )
        return reply.state

    async def status(self) -> dict[str, Any]:
        """Returns the daemon's status as plain data (see crunch.Client.status)."""
        reply = await self._call(self._stub.Status, pb.StatusRequest(), self._quick_timeout())
        return message_to_dict(reply)

    async def kinds(self) -> list[dict[str, Any]]:
        """Returns what the daemon can run (see crunch.Client.kinds)."""
        reply = await self._call(
            self._stub.ListKinds, pb.ListKindsRequest(), self._quick_timeout()
        )
        return [message_to_dict(k) for k in reply.kinds]

    async def stream(
        self,
        requests: Iterable[TaskSpec] | AsyncIterable[TaskSpec],
        *,
        max_in_flight: int = 1024,
    ) -> AsyncIterator[TaskResult]:
        """Runs many tasks over one RunStream; yields results as they complete.

        `requests` may be a plain or an async iterable; otherwise as
        crunch.Client.stream (tag = index, failed tasks are results, at most
        `max_in_flight` sent ahead, leaving early cancels the rest).
        """
        slots = asyncio.Semaphore(max_in_flight)
        call = self._stub.RunStream(timeout=self.timeout)
        bad_request: list[BaseException] = []

        async def write_all() -> None:
            try:
                tag = 0
                async for spec in _aiter(requests):
                    await slots.acquire()
                    await call.write(spec_request(spec, tag))
                    tag += 1
                await call.done_writing()
            except asyncio.CancelledError:
                raise
            except (grpc.RpcError, asyncio.InvalidStateError):
                return  # The call ended; the reader reports why.
            except Exception as e:  # noqa: BLE001 - re-raised by the reader
                bad_request.append(e)
                call.cancel()

        writer = asyncio.ensure_future(write_all())
        try:
            while True:
                r = await call.read()
                if r is grpc.aio.EOF:
                    break
                slots.release()
                yield task_result(r)
        except (grpc.RpcError, asyncio.CancelledError) as e:
            if bad_request:
                raise bad_request[0] from None
            if isinstance(e, grpc.RpcError):
                raise errors.from_rpc_error(e, self.address) from None
            raise
        finally:
            writer.cancel()
            call.cancel()

    async def close(self) -> None:
        """Closes the channel; calls in progress fail."""
        await self._channel.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _quick_timeout(self) -> float:
        return QUICK_CALL_TIMEOUT if self.timeout is None else self.timeout

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await method(request, timeout=timeout)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, self.address) from None


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
