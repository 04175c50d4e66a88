"""Channel settings every client uses, and how a client proves who it is.

Security: unix sockets are plaintext (crunchd checks the caller's uid/gid
there); any other target uses TLS when the client is given TLS settings
(crunchd serves TCP only over TLS). A bearer token, if given, goes with every
call as the metadata "authorization: Bearer TOKEN".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import grpc

# Extra gRPC channel arguments a caller may pass (the clients' `channel_options`),
# e.g. (("grpc.service_config", '{"loadBalancingConfig": [{"round_robin": {}}]}'),).
ChannelOptions = Sequence[tuple[str, Any]]

# crunchd allows payloads and outputs far beyond gRPC's 4 MiB default
# ([limits] max_payload_bytes, max_output_bytes) and enforces its own limits,
# so the client lifts gRPC's (crunchctl does the same).
CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
)

# Deadline in seconds for the calls that answer at once (Submit, Cancel,
# ListKinds, Status) when the client has no timeout of its own, so a wedged
# daemon cannot hang a script. Run, Wait and streams have none by default: they
# last as long as their tasks.
QUICK_CALL_TIMEOUT = 10.0


def channel_args(extra: ChannelOptions) -> tuple[tuple[str, Any], ...]:
    """Returns CHANNEL_OPTIONS and `extra`; for a key in both, `extra`'s value.

    The defaults are dropped rather than overridden: with a key given twice,
    gRPC takes the first.
    """
    extra = tuple(extra)
    given = {key for key, _ in extra}
    return tuple(o for o in CHANNEL_OPTIONS if o[0] not in given) + extra


@dataclasses.dataclass(frozen=True)
class Security:
    """What a client sends to prove who it is; see the module docstring."""

    credentials: grpc.ChannelCredentials | None = None  # TLS for non-unix targets.
    metadata: tuple[tuple[str, str], ...] | None = None  # Sent with every call.


def security(
    token: str | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    root_certificates: bytes | None = None,
    private_key: bytes | None = None,
    certificate_chain: bytes | None = None,
) -> Security:
    """Checks the clients' security arguments and combines them.

    `token` is crunchd's bearer token ([server] token_file; surrounding
    whitespace is dropped). For TLS, give either `credentials` (e.g. from
    grpc.ssl_channel_credentials) or the PEM bytes: `root_certificates` to
    verify crunchd (None: the system's), and `private_key` with
    `certificate_chain` when crunchd wants client certificates.
    """
    metadata = None
    if token is not None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError("token must be a non-empty str (the text of crunchd's token_file)")
        metadata = (("authorization", f"Bearer {token.strip()}"),)
    pem = (root_certificates, private_key, certificate_chain)
    if credentials is not None and any(p is not None for p in pem):
        raise ValueError(
            "give either credentials or root_certificates/private_key/certificate_chain, not both"
        )
    if (private_key is None) != (certificate_chain is None):
        raise ValueError("private_key and certificate_chain go together: give both or neither")
    if credentials is None and any(p is not None for p in pem):
        credentials = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
    return Security(credentials, metadata)


def open_channel(target: str, options: Sequence[tuple[str, Any]], sec: Security) -> grpc.Channel:
    """A channel to `target`: TLS if `sec` has credentials and it is not a unix socket."""
    if sec.credentials is not None and not target.startswith("unix"):
        return grpc.secure_channel(target, sec.credentials, options=options)
    return grpc.insecure_channel(target, options=options)


def open_aio_channel(
    target: str, options: Sequence[tuple[str, Any]], sec: Security
) -> grpc.aio.Channel:
    """open_channel for asyncio."""
    if sec.credentials is not None and not target.startswith("unix"):
        return grpc.aio.secure_channel(target, sec.credentials, options=options)
    return grpc.aio.insecure_channel(target, options=options)
