"""The loop-lag watcher reports how long the loop was kept from a due timer."""

from __future__ import annotations

import asyncio
import time

from service_runtime.loop_lag import watch_loop_lag


async def test_a_blocked_loop_shows_as_lag_and_an_idle_one_does_not() -> None:
    lags: list[float] = []
    seen = asyncio.Event()

    def observe(lag: float) -> None:
        lags.append(lag)
        seen.set()

    watcher = asyncio.create_task(watch_loop_lag(observe, every_s=0.01))
    try:
        await asyncio.wait_for(seen.wait(), 5)
        idle = lags[-1]
        seen.clear()
        time.sleep(0.2)  # noqa: ASYNC251  # on purpose: keeps the loop from the watcher's timer
        await asyncio.wait_for(seen.wait(), 5)
        assert lags[-1] >= 0.15
        assert idle < lags[-1]
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
