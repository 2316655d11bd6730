"""How late the event loop runs what is due: the first sign that a process is saturated.

A process whose loop is busy reads its sockets late, so everything it serves gets older with no
error anywhere; this makes that visible.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web

LOOP_LAG_EVERY_S = 0.25
LOOP_LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LOOP_LAG_HELP = (
    f"how much later than due the event loop ran a timer (sampled every {LOOP_LAG_EVERY_S:g} s): while it is "
    "high, the process reads its sockets late"
)


async def watch_loop_lag(observe: Callable[[float], None], every_s: float = LOOP_LAG_EVERY_S) -> None:
    """Until cancelled: sleep `every_s`, then `observe` how much later than due the loop woke us (s)."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + every_s
        await asyncio.sleep(every_s)
        observe(max(0.0, loop.time() - due))


def loop_lag_context(observe: Callable[[float], None]) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp `cleanup_ctx` entry that runs `watch_loop_lag` for as long as the application runs."""

    async def watching(app: web.Application) -> AsyncIterator[None]:
        watcher = asyncio.create_task(watch_loop_lag(observe), name="event loop lag")
        yield
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    return watching
