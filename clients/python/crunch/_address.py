"""Where crunchd listens when nobody says otherwise."""

from __future__ import annotations

import os


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
