"""Channel settings every client uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
