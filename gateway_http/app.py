"""The HTTP gateway's aiohttp application: routes, and the provider channel owned by the app."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
from aiohttp import web

from gateway_http.config import HttpGatewayConfig
from provider_client.channel import open_channel
from provider_client.health import check_provider

CHANNEL = web.AppKey("channel", grpc.aio.Channel)
STARTED_AT = web.AppKey("started_at", float)


async def health(request: web.Request) -> web.Response:
    """No auth. 200 when the provider answers SERVING, 503 otherwise, with both sides' details."""
    provider = await check_provider(request.app[CHANNEL])
    body = {
        "status": "ok" if provider.serving else "degraded",
        "gateway": {"name": "gateway_http", "uptimeSeconds": round(time.monotonic() - request.app[STARTED_AT], 1)},
        "provider": provider.as_dict(),
    }
    return web.json_response(body, status=200 if provider.serving else 503)


def create_app(config: HttpGatewayConfig) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[STARTED_AT] = time.monotonic()

    async def provider_channel(app: web.Application) -> AsyncIterator[None]:
        app[CHANNEL] = open_channel(config.provider_addr)
        yield
        await app[CHANNEL].close(None)

    app.cleanup_ctx.append(provider_channel)
    app.router.add_get("/health", health)
    return app
