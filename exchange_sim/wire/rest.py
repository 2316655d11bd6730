"""The simulator's REST API under /api/v3, answering as Binance does."""

from __future__ import annotations

import time

from aiohttp import web


def now_ms() -> int:
    return int(time.time() * 1000)


async def ping(request: web.Request) -> web.Response:
    return web.json_response({})


async def server_time(request: web.Request) -> web.Response:
    return web.json_response({"serverTime": now_ms()})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v3/ping", ping)
    app.router.add_get("/api/v3/time", server_time)
