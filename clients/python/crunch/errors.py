"""Exceptions for tasks that failed and daemons that could not be reached.

Every failure is a TaskError carrying the gRPC status code crunchd answered
with (see the table at the top of rpc/crunch/v1/crunch.proto) and its message;
the subclass says which code it was, so callers catch what they can handle:

    try:
        client.run("fib", n=99)
    except crunch.InvalidArgumentError as e:
        print(e.message)  # param 'n' must be an integer in 0..45, got '99'
"""

from __future__ import annotations

import grpc

_Code = grpc.StatusCode


class TaskError(Exception):
    """A task or call failed. `code` is a grpc.StatusCode, `message` crunchd's explanation."""

    code: grpc.StatusCode = _Code.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    def __reduce__(self):  # Picklable although __init__ takes two arguments.
        return (type(self), (self.message, self.code))


class NotFoundError(TaskError):
    """Unknown kind or task id."""

    code = _Code.NOT_FOUND


class InvalidArgumentError(TaskError):
    """A bad parameter; the message names it and its allowed range."""

    code = _Code.INVALID_ARGUMENT


class ResourceExhaustedError(TaskError):
    """Payload or output too large, or the daemon's queue is full."""

    code = _Code.RESOURCE_EXHAUSTED


class DeadlineExceededError(TaskError):
    """The task ran past its timeout_ms, or the call past its deadline."""

    code = _Code.DEADLINE_EXCEEDED


class AbortedError(TaskError):
    """The worker process died while running the task."""

    code = _Code.ABORTED


class TaskCancelledError(TaskError):
    """The task was cancelled with Cancel (not concurrent.futures.CancelledError)."""

    code = _Code.CANCELLED


class PermissionDeniedError(TaskError):
    """A path, URL or caller (unix uid/gid) crunchd's configuration does not allow."""

    code = _Code.PERMISSION_DENIED


class UnauthenticatedError(TaskError):
    """crunchd wants a bearer token ([server] token_file) and got none or a wrong one."""

    code = _Code.UNAUTHENTICATED


class UnavailableError(TaskError):
    """crunchd is draining for shutdown, an I/O task's peer failed, or crunchd is unreachable."""

    code = _Code.UNAVAILABLE


class DaemonUnreachableError(UnavailableError):
    """No connection to crunchd at `address`."""

    def __init__(self, message: str, address: str = "") -> None:
        super().__init__(message)
        self.address = address

    def __reduce__(self):
        return (type(self), (self.message, self.address))


_BY_CODE: dict[grpc.StatusCode, type[TaskError]] = {
    cls.code: cls
    for cls in (
        NotFoundError,
        InvalidArgumentError,
        ResourceExhaustedError,
        DeadlineExceededError,
        AbortedError,
        TaskCancelledError,
        PermissionDeniedError,
        UnauthenticatedError,
        UnavailableError,
    )
}

# grpc core's own words when no connection could be made (not crunchd's).
_UNREACHABLE_MARKERS = ("failed to connect", "Socket closed", "Connection reset", "Broken pipe")


def error_for(code: grpc.StatusCode, message: str) -> TaskError:
    """Returns the TaskError subclass instance for `code` (TaskError itself for other codes)."""
    cls = _BY_CODE.get(code)
    return cls(message) if cls is not None else TaskError(message, code)


def from_rpc_error(error: grpc.RpcError, address: str) -> TaskError:
    """Translates a failed gRPC call to `address` into a TaskError."""
    code = error.code()
    message = error.details() or ""
    if code == _Code.UNAVAILABLE and any(m in message for m in _UNREACHABLE_MARKERS):
        return DaemonUnreachableError(
            f"cannot reach crunchd at {address} ({message}); is it running? "
            "Try `systemctl status crunchd`, or pass the address it listens on",
            address,
        )
    return error_for(code, message)
