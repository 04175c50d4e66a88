"""crunch.aio.Client: crunch.Client for asyncio, on grpc.aio.

The same methods as crunch.Client, as coroutines (stream() is an async
iterator), and the same exceptions. Make the Client inside a running event
loop (grpc.aio binds its channel to the loop) and close it there:

    async with crunch.aio.Client() as client:
        outputs = await asyncio.gather(*(client.run("fib", n=n) for n in range(30, 35)))

Every call is a coroutine on the loop's thread; many concurrent calls share
one connection per daemon (several daemons: round-robin, as crunch.Client).
Not thread-safe: use it from its loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import grpc
import grpc.aio

from crunch import errors
from crunch._address import Address, TaskId, parse_address_list, target_index, task_location
from crunch._channel import (
    QUICK_CALL_TIMEOUT,
    ChannelOptions,
    channel_args,
    open_aio_channel,
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
    """An asyncio connection to crunchd, or to several balanced round-robin.

    Arguments (`address`, `timeout`, `channel_options`, and the security ones:
    `token`, `credentials`, `root_certificates`, `private_key`,
    `certificate_chain`), attributes
    (`address`, `addresses`), task ids and errors as for crunch.Client.
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
        self._channels = [open_aio_channel(target, options, sec) for target in self.addresses]
        self._stubs = [pb_grpc.CrunchStub(channel) for channel in self._channels]
        channels = self._channels
        self._turn = RoundRobin(
            len(channels),
            lambda index: channels[index].get_state(try_to_connect=False)
            is grpc.ChannelConnectivity.TRANSIENT_FAILURE,
        )

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
        return task_result(await self._call(self._turn.pick(), "Run", request, self.timeout))

    async def submit(
        self,
        kind: str,
        payload: Payload = b"",
        *,
        timeout_ms: int = 0,
        priority: int = 0,
        idempotency_key: str = "",
        **params: Any,
    ) -> TaskId:
        """Queues one task and returns its id: an int, or "ID@ADDRESS" with several addresses."""
        request = task_request(kind, payload, params, timeout_ms=timeout_ms, priority=priority)
        request.idempotency_key = idempotency_key
        index = self._turn.pick()
        reply = await self._call(index, "Submit", request, self._quick_timeout())
        if len(self.addresses) == 1:
            return reply.task_id
        return f"{reply.task_id}@{self.addresses[index]}"

    async def wait(self, task_id: TaskId, timeout: float | None = None) -> bytes:
        """Waits for a submitted task and returns its output (see crunch.Client.wait)."""
        number, index = task_location(self.addresses, task_id)
        deadline = self.timeout if timeout is None else timeout
        result = await self._call(index, "Wait", pb.TaskRef(task_id=number), deadline)
        return result.output

    async def cancel(self, task_id: TaskId) -> str:
        """Cancels a task; returns the state it had: queued, running or done."""
        number, index = task_location(self.addresses, task_id)
        reply = await self._call(
            index, "Cancel", pb.TaskRef(task_id=number), self._quick_timeout()
        )
        return reply.state

    async def status(self, *, address: str | None = None) -> dict[str, Any]:
        """Returns a daemon's status as plain data (see crunch.Client.status)."""
        index = target_index(self.addresses, address, what="status(address=...)")
        reply = await self._call(index, "Status", pb.StatusRequest(), self._quick_timeout())
        return message_to_dict(reply)

    async def kinds(self, *, address: str | None = None) -> list[dict[str, Any]]:
        """Returns what a daemon can run (see crunch.Client.kinds)."""
        index = target_index(self.addresses, address, what="kinds(address=...)")
        reply = await self._call(
            index, "ListKinds", pb.ListKindsRequest(), self._quick_timeout()
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
        `max_in_flight` sent ahead, leaving early cancels the rest, the whole
        stream to the next daemon in turn).
        """
        index = self._turn.pick()
        slots = asyncio.Semaphore(max_in_flight)
        call = self._stubs[index].RunStream(timeout=self.timeout, metadata=self._metadata)
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
                raise errors.from_rpc_error(e, self.addresses[index]) from None
            raise
        finally:
            writer.cancel()
            call.cancel()

    async def close(self) -> None:
        """Closes the channels; calls in progress fail."""
        await asyncio.gather(*(channel.close() for channel in self._channels))

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _quick_timeout(self) -> float:
        return QUICK_CALL_TIMEOUT if self.timeout is None else self.timeout

    async def _call(self, index: int, method: str, request: Any, timeout: float | None) -> Any:
        """Calls unary `method` on daemon `index`; a failure becomes a TaskError."""
        try:
            return await getattr(self._stubs[index], method)(
                request, timeout=timeout, metadata=self._metadata
            )
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, self.addresses[index]) from None


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
