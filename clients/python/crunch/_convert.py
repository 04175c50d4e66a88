"""Conversions between Python values and crunch.v1 messages, shared by every client."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Union

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from crunch import errors
from crunch._stubs import pb

Payload = Union[bytes, bytearray, memoryview, str]
# What Client.stream and aio.Client.stream accept per task: (kind,), (kind, payload),
# (kind, payload, params), or a mapping with "kind" and optionally "payload",
# "params", "timeout_ms" and "priority".
TaskSpec = Union[tuple, Mapping]

_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
_SPEC_KEYS = frozenset(("kind", "payload", "params", "timeout_ms", "priority"))


@dataclasses.dataclass(frozen=True, slots=True)
class TaskResult:
    """The outcome of one task; `code` is grpc.StatusCode.OK unless it failed (see `error`)."""

    output: bytes
    task_id: int
    pool: str
    worker_pid: int
    queue_us: int
    run_us: int
    tag: int = 0
    code: grpc.StatusCode = grpc.StatusCode.OK
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the task succeeded."""
        return self.code is grpc.StatusCode.OK

    def output_or_raise(self) -> bytes:
        """Returns `output`, or raises the TaskError subclass for a failed task."""
        if self.code is grpc.StatusCode.OK:
            return self.output
        raise errors.error_for(self.code, self.error)


def payload_bytes(payload: Payload) -> bytes:
    """Returns the payload as bytes; a str is encoded as UTF-8."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    raise TypeError(f"payload must be bytes-like or str, got {type(payload).__name__}")


def task_request(
    kind: str,
    payload: Payload = b"",
    params: Mapping[str, Any] | None = None,
    *,
    tag: int = 0,
    timeout_ms: int = 0,
    priority: int = 0,
) -> Any:
    """Builds a crunch.v1.TaskRequest; parameter values are converted with str()."""
    return pb.TaskRequest(
        kind=kind,
        payload=payload_bytes(payload),
        params={k: str(v) for k, v in params.items()} if params else None,
        tag=tag,
        timeout_ms=timeout_ms,
        priority=priority,
    )


def spec_request(spec: TaskSpec, tag: int) -> Any:
    """Builds a TaskRequest from a TaskSpec (see above)."""
    if isinstance(spec, Mapping):
        unknown = spec.keys() - _SPEC_KEYS
        if unknown or "kind" not in spec:
            raise ValueError(
                f"task {tag}: a task mapping needs 'kind' and may have {sorted(_SPEC_KEYS)}, "
                f"got {sorted(spec)}"
            )
        return task_request(
            spec["kind"],
            spec.get("payload", b""),
            spec.get("params"),
            tag=tag,
            timeout_ms=spec.get("timeout_ms", 0),
            priority=spec.get("priority", 0),
        )
    if isinstance(spec, (tuple, list)) and 1 <= len(spec) <= 3:
        return task_request(*spec, tag=tag)
    raise TypeError(
        f"task {tag}: expected (kind, payload, params) or a mapping with 'kind', got {spec!r}"
    )


def status_code(number: int) -> grpc.StatusCode:
    """Returns the grpc.StatusCode with this number (UNKNOWN for numbers gRPC does not define)."""
    return _CODE_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def task_result(r: Any) -> TaskResult:
    """Converts a crunch.v1.TaskResult."""
    return TaskResult(
        output=r.output,
        task_id=r.task_id,
        pool=r.pool,
        worker_pid=r.worker_pid,
        queue_us=r.queue_us,
        run_us=r.run_us,
        tag=r.tag,
        code=_CODE_BY_NUMBER.get(r.code, grpc.StatusCode.UNKNOWN),
        error=r.error,
    )


def message_to_dict(message: Message) -> dict[str, Any]:
    """Converts a message to plain dicts, lists and scalars, every field present.

    Unlike json_format.MessageToDict, 64-bit integers stay ints and field names
    stay as in the .proto (snake_case).
    """
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is not None:
                out[field.name] = {k: message_to_dict(v) for k, v in value.items()}
            else:
                out[field.name] = dict(value)
        elif field.label == FieldDescriptor.LABEL_REPEATED:
            if field.message_type is not None:
                out[field.name] = [message_to_dict(v) for v in value]
            else:
                out[field.name] = list(value)
        elif field.message_type is not None:
            out[field.name] = message_to_dict(value)
        else:
            out[field.name] = value
    return out
