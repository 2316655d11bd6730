"""The provider's estimate of the exchange's clock (reference §3.4).

Signed requests are stamped with ``local now + offset``, and the weight budget's buckets are
aligned to the server's clock, so both read time from here. The offset is measured from
``GET /api/v3/time``: the server read its clock, on average, half a round trip after we sent.
No IO of its own; the local clock is injectable for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wall_ms() -> float:
    return time.time() * 1000


class ServerClock:
    """``offset = server - local``, corrected by half the round trip of the last measurement."""

    __slots__ = ("_local_ms", "_measured", "_offset_ms", "_round_trip_ms")

    def __init__(self, local_ms: Callable[[], float] = wall_ms) -> None:
        self._local_ms = local_ms
        self._offset_ms = 0
        self._round_trip_ms = 0.0
        self._measured = False

    def observe(self, server_ms: int, sent_local_ms: float, recv_local_ms: float) -> None:
        """Record one ``/api/v3/time`` answer and the local times around its request."""
        if recv_local_ms < sent_local_ms:
            raise ValueError("recv_local_ms must not be before sent_local_ms")
        round_trip = recv_local_ms - sent_local_ms
        self._offset_ms = round(server_ms - (sent_local_ms + round_trip / 2))
        self._round_trip_ms = round_trip
        self._measured = True

    def offset_ms(self) -> int:
        return self._offset_ms

    def now_ms(self) -> int:
        """Estimated server time now (epoch ms)."""
        return int(self._local_ms() + self._offset_ms)

    def local_ms(self) -> float:
        """The local clock this estimate is based on (for timing a measurement)."""
        return self._local_ms()

    @property
    def round_trip_ms(self) -> float:
        """Round trip of the last measurement: the offset's uncertainty is half of it."""
        return self._round_trip_ms

    @property
    def measured(self) -> bool:
        return self._measured
