"""The HTTP gateway's aiohttp application: routes, middlewares, and the provider channel owned by the app.

Middlewares, outermost first: metrics (sees every final status), CORS (decorates error answers
too), errors (one JSON shape, no tracebacks), auth (per-route scope), per-token rate limit.
Routes are registered through `app[API].route(...)` (gateway_http.openapi), which declares the
scope, parameters and OpenAPI operation in one place.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
from aiohttp import web

from gateway_http.account_routes import add_account_routes
from gateway_http.analytics_routes import add_analytics_routes
from gateway_http.config import HttpGatewayConfig
from gateway_http.errors import errors_middleware
from gateway_http.market_routes import add_market_routes
from gateway_http.metrics import METRICS, Metrics, add_metrics_route, metrics_middleware
from gateway_http.openapi import API, Api, add_openapi_routes
from gateway_http.security import (
    ConnectionCounter,
    RateLimiter,
    RequestLimiter,
    WsConnections,
    auth_middleware,
    cors_middleware,
    rate_limit_middleware,
)
from gateway_http.streams import (
    LIVE_SOCKETS,
    STREAM_HUB,
    WS_BACKLOG,
    WS_CONNECTIONS,
    LiveSockets,
    StreamHub,
    add_stream_routes,
    close_streams,
    provider_source,
)
from gateway_http.trading_routes import add_trading_routes
from provider_client.channel import open_channel
from provider_client.health import check_provider
from service_runtime.loop_lag import loop_lag_context

CHANNEL = web.AppKey("channel", grpc.aio.Channel)
STARTED_AT = web.AppKey("started_at", float)
WORKER = web.AppKey("worker", int)

API_TITLE = "Binance Spot gateway"
API_VERSION = "0.1.0"
API_DESCRIPTION = (
    "REST and WebSocket access to Binance Spot market data, analytics, account and trading, "
    "through a provider that owns the exchange connection."
)

HEALTH_SCHEMA: dict[str, object] = {
    "type": "object",
    "required": ["status", "gateway", "provider"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded"]},
        "gateway": {
            "type": "object",
            "required": ["name", "uptimeSeconds", "worker"],
            "properties": {
                "name": {"type": "string"},
                "uptimeSeconds": {"type": "number"},
                "worker": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "the worker process that answered (0..GATEWAY_HTTP_WORKERS-1)",
                },
            },
        },
        "provider": {
            "type": "object",
            "required": ["status", "latencyMs", "services"],
            "properties": {
                "status": {"type": "string", "description": "SERVING, NOT_SERVING or UNREACHABLE"},
                "latencyMs": {"type": "number"},
                "services": {"type": "object", "additionalProperties": {"type": "string"}},
                "error": {"type": "string"},
            },
        },
    },
}


async def health(request: web.Request) -> web.Response:
    """No auth. 200 when the provider answers SERVING, 503 otherwise, with both sides' details."""
    provider = await check_provider(request.app[CHANNEL])
    body = {
        "status": "ok" if provider.serving else "degraded",
        "gateway": {
            "name": "gateway_http",
            "uptimeSeconds": round(time.monotonic() - request.app[STARTED_AT], 1),
            "worker": request.app[WORKER],
        },
        "provider": provider.as_dict(),
    }
    return web.json_response(body, status=200 if provider.serving else 503)


def create_app(
    config: HttpGatewayConfig,
    *,
    worker: int = 0,
    rate_limiter: RequestLimiter | None = None,
    ws_connections: ConnectionCounter | None = None,
    metrics: Metrics | None = None,
) -> web.Application:
    """The app of one process. A worker of several (gateway_http.workers) passes the limiters and
    metrics it shares with the others; by default they are this process's own."""
    app = web.Application(client_max_size=64 * 1024)
    app[STARTED_AT] = time.monotonic()
    app[WORKER] = worker
    api = app[API] = Api(app, API_TITLE, API_VERSION, API_DESCRIPTION)
    metrics = app[METRICS] = metrics if metrics is not None else Metrics()
    app[WS_CONNECTIONS] = ws_connections if ws_connections is not None else WsConnections(config.ws_limits)
    app[WS_BACKLOG] = config.ws_backlog
    app[LIVE_SOCKETS] = LiveSockets()
    app.middlewares.extend(
        [
            metrics_middleware(metrics),
            cors_middleware(config.cors_origins),
            errors_middleware,
            auth_middleware(config.tokens, api),
        ]
    )
    if rate_limiter is None and config.rate_limit is not None:
        rate_limiter = RateLimiter(config.rate_limit)
    if rate_limiter is not None:
        app.middlewares.append(rate_limit_middleware(rate_limiter))

    async def provider_channel(app: web.Application) -> AsyncIterator[None]:
        app[CHANNEL] = open_channel(config.provider_addr)
        yield
        await app[CHANNEL].close(None)

    app.cleanup_ctx.append(provider_channel)

    async def market_streams(app: web.Application) -> AsyncIterator[None]:
        # After the channel (so closed before it); on_shutdown closes the clients even earlier.
        hub = app[STREAM_HUB] = StreamHub(
            provider_source(app[CHANNEL]),
            capacity=config.ws_backlog.frames,
            registry=app[METRICS].registry,
            write_threads=config.ws_write_threads,
        )
        yield
        await hub.close()

    app.cleanup_ctx.append(market_streams)
    app.cleanup_ctx.append(loop_lag_context(metrics.loop_lag.observe))
    app.on_shutdown.append(close_streams)
    api.route(
        "GET",
        "/health",
        health,
        scope=None,
        summary="Health of the gateway and of the provider behind it (no token needed)",
        response=HEALTH_SCHEMA,
        tags=("meta",),
        calls_provider=False,
        extra_responses={503: ("the provider is not serving; same body", HEALTH_SCHEMA)},
    )
    add_metrics_route(api)
    add_openapi_routes(api)
    add_market_routes(api, CHANNEL)
    add_stream_routes(api)
    add_trading_routes(api, CHANNEL)
    add_account_routes(api, CHANNEL)
    add_analytics_routes(api, CHANNEL)
    return app
