"""Where crunchd listens when nobody says otherwise, and how an address becomes gRPC targets.

An address is one gRPC target ("unix:/path", "host:port", "dns:///name:port")
or several, one per daemon: a comma-separated string or a sequence of strings.
The rules are those of crunchctl (clients/cli/target_list.cc) and the Node
client (clients/node/lib/address.js); change the three together.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Union

# What every client's `address` argument accepts (None: default_address()).
Address = Union[str, Sequence[str], None]
# A task id: the daemon's number, or "ID@TARGET" as submit() returns with an address list.
TaskId = Union[int, str]

_SOCKADDR_SCHEMES = ("unix-abstract", "unix", "ipv4", "ipv6")
_TASK_ID = re.compile(r"(\d+)(?:@(.+))?")


def default_address_for(euid: int, xdg_runtime_dir: str | None) -> str:
    """Returns crunchd's default gRPC address for a user.

    The same rule as crunch::rpc::DefaultAddressFor in rpc/default_address.cc
    (crunchd and crunchctl use that one); change both together.
    """
    if euid == 0:
        return "unix:/run/crunchd/crunchd.sock"
    if xdg_runtime_dir and xdg_runtime_dir.startswith("/"):
        return f"unix:{xdg_runtime_dir}/crunchd.sock"
    return f"unix:/tmp/crunchd-{euid}/crunchd.sock"


def default_address() -> str:
    """Returns the address a crunchd started by this user listens on by default."""
    return default_address_for(os.geteuid(), os.environ.get("XDG_RUNTIME_DIR"))


def _classify(item: str) -> tuple[str, str]:
    """Splits an entry into a sockaddr scheme and the rest; ("", item) for other targets."""
    for scheme in _SOCKADDR_SCHEMES:
        if item.startswith(scheme + ":") and len(item) > len(scheme) + 1:
            rest = item[len(scheme) + 1 :]
            # "unix:///a.sock" is the URI spelling of "unix:/a.sock".
            if scheme == "unix" and rest.startswith("///"):
                rest = rest[2:]
            return scheme, rest
    if item.startswith("/"):
        return "unix", item
    return "", item


def parse_address_list(address: Address) -> list[str]:
    """Returns one gRPC target per daemon that `address` names, in the order given.

    None means default_address(). A bare path means a unix socket; a
    comma-separated string or a sequence of strings names several daemons
    ("unix:/a.sock,unix:/b.sock", and gRPC's own spellings "unix:/a.sock,b.sock"
    and "ipv4:10.0.0.1:1,10.0.0.2:1"). Raises ValueError for an empty address
    or an empty entry, TypeError for anything but a string or strings.
    """
    if address is None:
        return [default_address()]
    if isinstance(address, str):
        whole = address.strip()
    elif isinstance(address, Sequence) and not isinstance(address, (bytes, bytearray)):
        for entry in address:
            if not isinstance(entry, str):
                raise TypeError(
                    f"crunch: an address list holds strings such as 'unix:/path/to/crunchd.sock' "
                    f"or 'host:port', got {type(entry).__name__} {entry!r}"
                )
        if not address:
            raise ValueError(
                "crunch: the address list is empty; give at least one gRPC target such as "
                "unix:/path/to/crunchd.sock or host:port"
            )
        whole = ",".join(entry.strip() for entry in address)
    else:
        raise TypeError(
            "crunch: address must be a gRPC target string, a comma-separated list of them or a "
            f"sequence of strings (None: crunch.default_address()), got {type(address).__name__}"
        )
    if not whole:
        raise ValueError(
            "crunch: the address is empty; give a gRPC target such as "
            "unix:/path/to/crunchd.sock or host:port (None: crunch.default_address())"
        )
    targets = []
    previous_scheme = ""
    for raw in whole.split(","):
        item = raw.strip()
        if not item:
            raise ValueError(
                f"crunch: empty entry in the address list '{whole}'; "
                "separate addresses with single commas"
            )
        scheme, rest = _classify(item)
        # gRPC's list form "unix:/a.sock,b.sock": a relative path after a unix entry.
        if previous_scheme.startswith("unix") and not scheme and ":" not in item:
            scheme = previous_scheme
        previous_scheme = scheme
        targets.append(f"{scheme}:{rest}" if scheme else rest)
    return targets


def split_task_id(task_id: TaskId) -> tuple[int, str | None]:
    """Splits 42, "42" or "42@unix:/b.sock" into the daemon's id and the target (or None)."""
    if isinstance(task_id, int) and not isinstance(task_id, bool) and task_id >= 0:
        return task_id, None
    match = _TASK_ID.fullmatch(task_id) if isinstance(task_id, str) else None
    if match is None:
        raise ValueError(
            "crunch: a task id is an unsigned integer, or 'ID@ADDRESS' as submit() returns "
            f"with an address list; got {task_id!r}"
        )
    return int(match[1]), match[2]


def task_location(targets: Sequence[str], task_id: TaskId) -> tuple[int, int]:
    """Returns the daemon's task id and the index in `targets` of the daemon that has it.

    A plain id is enough with one target; with several it must be "ID@ADDRESS"
    as submit() returns it, since task ids are per daemon (ValueError otherwise).
    """
    number, target = split_task_id(task_id)
    if target is None:
        if len(targets) > 1:
            raise ValueError(
                f"crunch: task id {task_id!r} does not say which daemon has the task; with "
                "several addresses give it as submit() returned it, 'ID@ADDRESS'"
            )
        return number, 0
    return number, target_index(targets, target, what=f"task id {task_id!r}")


def target_index(targets: Sequence[str], address: str | None, *, what: str) -> int:
    """Returns the index in `targets` of the daemon `address` names.

    None names the first daemon. `what` says what the address came with, for
    the error: a ValueError when `address` is not one of `targets`.
    """
    if address is None:
        return 0
    wanted = parse_address_list(address)
    if len(wanted) == 1 and wanted[0] in targets:
        return targets.index(wanted[0])
    raise ValueError(
        f"crunch: {what} names {address!r}, which is not one of this client's addresses "
        f"({', '.join(targets)})"
    )
