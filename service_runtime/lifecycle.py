"""Running a process until SIGTERM/SIGINT, then shutting down in order."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any


def install_event_loop_policy() -> None:
    """Use uvloop where available (faster streams); plain asyncio otherwise."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def wait_for_stop_signal() -> None:
    """Return when SIGTERM or SIGINT arrives."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_main(main: Callable[[], Coroutine[Any, Any, int]]) -> None:
    """Run an async main under uvloop and exit with its status."""
    install_event_loop_policy()
    sys.exit(asyncio.run(main()))
