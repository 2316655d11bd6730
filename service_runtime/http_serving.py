"""Serving an aiohttp application until SIGTERM/SIGINT (simulator and HTTP gateway)."""

from __future__ import annotations

import logging
import socket

from aiohttp import web

from service_runtime.config import Address
from service_runtime.lifecycle import wait_for_stop_signal

# After a stop signal and the app's on_shutdown hooks, requests still being handled get this long to
# finish; aiohttp then cuts their payload and waits as long again before cancelling the handler. Its
# default (60 s, twice) would outlast every stop timeout: the launcher's 10 s, the gateway
# supervisor's 8 s for its workers (after up to 5 s of closing WebSockets), Docker's stop_grace_period.
HANDLER_GRACE_S = 1.0


async def serve_aiohttp(
    app: web.Application, addr: Address, addr_setting: str, log: logging.Logger, sock: socket.socket | None = None
) -> int:
    """Listen on `addr` (or accept on `sock`, a listening socket bound to it and shared with other
    processes), run until a stop signal, then close listeners and connections in order: the app's
    on_shutdown hooks, then up to twice HANDLER_GRACE_S for requests in flight, which are then cancelled."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=HANDLER_GRACE_S)
    await runner.setup()
    site: web.BaseSite = web.TCPSite(runner, addr.host, addr.port) if sock is None else web.SockSite(runner, sock)
    try:
        await site.start()
    except OSError as exc:
        log.error("%s: cannot listen on %s: %s", addr_setting, addr, exc)
        await runner.cleanup()
        return 2
    log.info("listening on http://%s", addr)
    await wait_for_stop_signal()
    log.info("stopping")
    await runner.cleanup()
    log.info("stopped")
    return 0
