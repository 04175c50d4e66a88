"""Python client of crunchd, the compute daemon (API: rpc/crunch/v1/crunch.proto).

    import crunch

    with crunch.Client() as client:
        client.run("fib", n=30)                         # b"832040"

    with crunch.Executor() as ex:                       # a concurrent.futures.Executor
        list(ex.map("fib", [28, 30, 32], param="n"))

    async with crunch.aio.Client() as client:           # asyncio
        await client.run("sha256", b"abc")

    crunch.Client("unix:/a.sock,unix:/b.sock")          # several daemons, round-robin

Failures raise crunch.TaskError subclasses (crunch.errors).
"""

# The generated crunch.v1 modules live in another directory of the build tree
# (<build>/clients/python/gen/crunch/v1); this lets any `crunch/` directory on
# sys.path contribute submodules. After `cmake --install` they sit in crunch/v1/.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from crunch import aio  # noqa: E402  (after __path__, which the stubs need)
from crunch._address import default_address  # noqa: E402
from crunch._convert import TaskResult  # noqa: E402
from crunch.client import Client  # noqa: E402
from crunch.errors import (  # noqa: E402
    AbortedError,
    DaemonUnreachableError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    TaskCancelledError,
    TaskError,
    UnauthenticatedError,
    UnavailableError,
)
from crunch.executor import Executor  # noqa: E402

__all__ = [
    "AbortedError",
    "Client",
    "DaemonUnreachableError",
    "DeadlineExceededError",
    "Executor",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "TaskCancelledError",
    "TaskError",
    "TaskResult",
    "UnauthenticatedError",
    "UnavailableError",
    "aio",
    "default_address",
]
