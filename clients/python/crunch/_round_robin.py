"""RoundRobin: which daemon of an address list the next call goes to.

Each client keeps one channel per daemon and balances calls itself, as
crunchctl (clients/cli/connection.h) and the Node client do: gRPC's own
round_robin policy over one channel suits a short-lived client badly (the
channel is READY with the first subchannel that connects, and the first calls
all go there). A daemon whose channel is failing to connect is skipped while
another is not, so a dead host costs at most the calls made before gRPC
noticed; when all are failing, the turn goes on as usual and the call reports
the failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class RoundRobin:
    """Hands out daemon indexes 0..count-1 in turn. Thread-safe.

    `failing(index)` says whether that daemon's channel is failing to connect
    (gRPC's TRANSIENT_FAILURE); it is called under the lock, so it must be quick.
    """

    def __init__(self, count: int, failing: Callable[[int], bool]) -> None:
        self._count = count
        self._failing = failing
        self._next = 0
        self._lock = threading.Lock()

    def pick(self) -> int:
        """Returns the next daemon's index, skipping failing ones while another is not."""
        if self._count == 1:
            return 0
        with self._lock:
            for i in range(self._count):
                index = (self._next + i) % self._count
                if not self._failing(index):
                    break
            else:
                index = self._next
            self._next = (index + 1) % self._count
            return index
