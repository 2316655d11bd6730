"""Prometheus metrics of one application (its own registry, so apps in one process never mix).

GET /metrics needs no token: it carries no secrets and no token names (labels are the route
template, method and status only), the gateway binds to loopback unless told otherwise, and
Prometheus scrapers are simplest without credentials.

With GATEWAY_HTTP_WORKERS > 1 every worker writes its values to files in the directory the
supervisor names in PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode, chosen when
the library is imported), and whichever worker answers GET /metrics reports the sum over all of
them: counters and histograms summed, gauges summed over the live workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from gateway_http.openapi import Api
from service_runtime.loop_lag import LOOP_LAG_BUCKETS_S, LOOP_LAG_HELP

UNMATCHED_ROUTE = "unmatched"  # one label for every 404, so scanners cannot grow the label set


class Metrics:
    def __init__(self, multiprocess_dir: str | None = None) -> None:
        """:param multiprocess_dir: the workers' shared PROMETHEUS_MULTIPROC_DIR, or None in one process."""
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_http_request_duration_seconds",
            "time to answer a request (for WebSockets: the whole connection), by route template and method",
            ["route", "method"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "gateway_http_requests_in_flight",
            "requests being handled now (WebSocket connections included), by route template and method",
            ["route", "method"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.ws_clients = Gauge(
            "gateway_http_ws_clients",
            "WebSocket clients connected now",
            ["route"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.loop_lag = Histogram(
            "gateway_http_event_loop_lag_seconds", LOOP_LAG_HELP, buckets=LOOP_LAG_BUCKETS_S, registry=self.registry
        )

    @contextlib.contextmanager
    def ws_client(self, route: str) -> Iterator[None]:
        """Count one connected WebSocket client for the duration of the block."""
        gauge = self.ws_clients.labels(route=route)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(every_worker)


METRICS = web.AppKey("metrics", Metrics)


def route_label(request: web.Request) -> str:
    if request.match_info.http_exception is not None:
        return UNMATCHED_ROUTE
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def metrics_middleware(metrics: Metrics) -> Middleware:
    """Outermost: sees the final status of every request, errors included."""

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        route = route_label(request)
        in_flight = metrics.in_flight.labels(route=route, method=request.method)
        in_flight.inc()
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away first (nginx's convention)
            raise
        finally:
            in_flight.dec()
            metrics.requests.labels(route=route, method=request.method, status=str(status)).inc()
            metrics.latency.labels(route=route, method=request.method).observe(time.perf_counter() - started)

    return measure


async def metrics_endpoint(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_metrics_route(api: Api) -> None:
    api.route(
        "GET",
        "/metrics",
        metrics_endpoint,
        scope=None,
        summary="Prometheus metrics (no token needed; no secrets or token names inside)",
        response={"type": "string"},
        response_media_type="text/plain",
        tags=("meta",),
        calls_provider=False,
    )
