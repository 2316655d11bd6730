"""Watches the venue: is it reachable, and how far is its clock from ours.

The result drives the provider's health status, so health reflects a real round trip to the
exchange (or simulator), not just "the process is up".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from provider.binance.rest import RestClient
from provider.errors import ProviderError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VenueStatus:
    reachable: bool
    clock_offset_ms: int  # venue time minus local time, corrected by half the round trip
    round_trip_ms: float
    checked_at_ms: int
    error: str = ""


class VenueMonitor:
    """Probes `GET /api/v3/time` every `interval` seconds; calls `on_change` when reachability flips."""

    def __init__(
        self,
        rest: RestClient,
        interval: float = 5.0,
        on_change: Callable[[VenueStatus], None] | None = None,
    ) -> None:
        self._rest = rest
        self._interval = interval
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None
        self.status = VenueStatus(False, 0, 0.0, 0, "not checked yet")

    async def check_once(self) -> VenueStatus:
        started = time.monotonic()
        local_before = time.time() * 1000
        try:
            server_ms = await self._rest.server_time()
        except ProviderError as exc:  # also RateLimited/IpBanned: the venue is not usable now
            status = VenueStatus(False, self.status.clock_offset_ms, 0.0, int(local_before), exc.message)
        else:
            round_trip = (time.monotonic() - started) * 1000
            offset = int(server_ms - (local_before + round_trip / 2))
            status = VenueStatus(True, offset, round_trip, int(local_before))
        changed = status.reachable != self.status.reachable
        self.status = status
        if changed:
            if status.reachable:
                log.info("venue reachable (clock offset %d ms)", status.clock_offset_ms)
            else:
                log.warning("venue unreachable: %s", status.error)
            if self._on_change is not None:
                self._on_change(status)
        return status

    async def _run(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="venue-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
