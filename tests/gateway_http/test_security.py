"""Auth with per-route scopes (header and WebSocket subprotocol), CORS, rate limits, parameter
checks and metrics, through the real application factory with dummy routes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from gateway_auth.tokens import Scope, TokenStore
from gateway_http.app import create_app
from gateway_http.config import HttpGatewayConfig, load_config
from gateway_http.metrics import METRICS
from gateway_http.openapi import API, PARAMS, Param
from gateway_http.security import (
    PRINCIPAL,
    RateLimit,
    RateLimiter,
    TokenBucket,
    parse_origins,
    parse_rate_limit,
    websocket_protocols,
)
from launcher.processes import free_port
from service_runtime.config import Address, ConfigError

ALLOWED_ORIGIN = "https://app.example.com"
Client = TestClient[web.Request, web.Application]
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=10, ws_close=10)


async def echo(request: web.Request) -> web.Response:
    params = request[PARAMS]
    return web.json_response(
        {
            "symbol": params.get("symbol", str),
            "limit": params.get("limit", int),
            "fast": params.optional("fast", bool),
            "principal": request[PRINCIPAL].name,
        }
    )


async def place(request: web.Request) -> web.Response:
    return web.json_response({"placed": True})


async def stream(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=websocket_protocols(request))
    await ws.prepare(request)
    with request.app[METRICS].ws_client("/api/v1/stream"):
        await ws.send_json({"hello": request[PRINCIPAL].name})
        async for _ in ws:  # until the client closes
            pass
    return ws


async def unregistered(request: web.Request) -> web.Response:
    return web.json_response({"raw": True})


@pytest.fixture(scope="module")
def issued() -> tuple[TokenStore, dict[str, str]]:
    store = TokenStore()
    tokens: dict[str, str] = {}
    for name, scopes in (
        ("reader", {Scope.READ}),
        ("trader", {Scope.TRADE}),
        ("admin", {Scope.READ, Scope.ACCOUNT, Scope.TRADE}),
    ):
        store, tokens[name] = store.issue(name, frozenset(scopes))
    return store, tokens


def build_app(store: TokenStore, rate_limit: RateLimit | None) -> web.Application:
    config = HttpGatewayConfig(
        addr=Address("127.0.0.1", 0),
        provider_addr=Address("127.0.0.1", free_port()),  # nothing listens: routes here never call it
        tokens=store,
        cors_origins=(ALLOWED_ORIGIN,),
        rate_limit=rate_limit,
    )
    app = create_app(config)
    api = app[API]
    api.route(
        "GET",
        "/api/v1/echo",
        echo,
        scope=Scope.READ,
        summary="echo",
        params=[
            Param("symbol", str, required=True, pattern="^[A-Z0-9]{2,20}$"),
            Param("limit", int, minimum=1, maximum=5000, default=100),
            Param("fast", bool),
        ],
    )
    api.route("POST", "/api/v1/fake/order", place, scope=Scope.TRADE, summary="place")
    api.route("GET", "/api/v1/stream", stream, scope=Scope.READ, summary="stream", websocket=True)
    app.router.add_get("/raw", unregistered)
    return app


@pytest.fixture
async def client(issued: tuple[TokenStore, dict[str, str]]) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(issued[0], rate_limit=None))) as test_client:
        yield test_client


@pytest.fixture
def tokens(issued: tuple[TokenStore, dict[str, str]]) -> dict[str, str]:
    return issued[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_with_the_scope_gets_through_with_parsed_params(client: Client, tokens: dict[str, str]) -> None:
    response = await client.get("/api/v1/echo", params={"symbol": "BTCUSDT"}, headers=bearer(tokens["reader"]))
    assert response.status == 200
    assert await response.json() == {"symbol": "BTCUSDT", "limit": 100, "fast": None, "principal": "reader"}
    response = await client.get(
        "/api/v1/echo", params={"symbol": "ETHUSDT", "limit": "5000", "fast": "true"}, headers=bearer(tokens["admin"])
    )
    assert await response.json() == {"symbol": "ETHUSDT", "limit": 5000, "fast": True, "principal": "admin"}


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, None),
        ({"Authorization": "Bearer bsg_not_a_real_token"}, "invalid_token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_request"),
        ({"Authorization": "Bearer"}, "invalid_request"),
    ],
)
async def test_missing_unknown_or_malformed_tokens_are_401(
    client: Client, headers: dict[str, str], error: str | None
) -> None:
    response = await client.get("/api/v1/echo", params={"symbol": "BTCUSDT"}, headers=headers)
    assert response.status == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)
    body = await response.json()
    assert body["reason"] == "UNAUTHENTICATED" and body["retryable"] is False


async def test_a_token_in_the_url_is_never_accepted(client: Client, tokens: dict[str, str]) -> None:
    for name in ("token", "access_token"):
        response = await client.get("/api/v1/echo", params={"symbol": "BTCUSDT", name: tokens["admin"]})
        assert response.status == 401


async def test_a_missing_scope_is_403_naming_it(client: Client, tokens: dict[str, str]) -> None:
    response = await client.post("/api/v1/fake/order", headers=bearer(tokens["reader"]))
    assert response.status == 403
    assert 'error="insufficient_scope", scope="trade"' in response.headers["WWW-Authenticate"]
    assert (await response.json())["reason"] == "INSUFFICIENT_SCOPE"
    response = await client.get("/api/v1/echo", params={"symbol": "BTCUSDT"}, headers=bearer(tokens["trader"]))
    assert response.status == 403  # trade does not imply read
    response = await client.post("/api/v1/fake/order", headers=bearer(tokens["trader"]))
    assert response.status == 200


async def test_routes_added_outside_the_registry_fail_closed(client: Client, tokens: dict[str, str]) -> None:
    assert (await client.get("/raw")).status == 401
    assert (await client.get("/raw", headers=bearer(tokens["reader"]))).status == 403
    assert (await client.get("/raw", headers=bearer(tokens["admin"]))).status == 200


async def test_public_routes_need_no_token(client: Client) -> None:
    for path in ("/openapi.json", "/docs", "/metrics"):
        assert (await client.get(path)).status == 200, path


async def test_websocket_token_in_the_subprotocol_and_only_bearer_is_echoed(
    client: Client, tokens: dict[str, str]
) -> None:
    async with client.ws_connect("/api/v1/stream", protocols=("bearer", tokens["reader"]), timeout=WS_TIMEOUT) as ws:
        assert ws.protocol == "bearer"
        assert await ws.receive_json(timeout=10) == {"hello": "reader"}
    async with client.ws_connect("/api/v1/stream", headers=bearer(tokens["admin"]), timeout=WS_TIMEOUT) as ws:
        assert ws.protocol is None
        assert await ws.receive_json(timeout=10) == {"hello": "admin"}


@pytest.mark.parametrize("protocols", [(), ("bearer",), ("bearer", "bsg_unknown"), ("chat",)])
async def test_websocket_without_a_valid_token_is_refused_before_the_upgrade(
    client: Client, protocols: tuple[str, ...]
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as raised:
        await client.ws_connect("/api/v1/stream", protocols=protocols, timeout=WS_TIMEOUT)
    assert raised.value.status == 401


async def test_the_subprotocol_is_not_a_token_outside_websocket_upgrades(
    client: Client, tokens: dict[str, str]
) -> None:
    response = await client.get(
        "/api/v1/echo", params={"symbol": "BTCUSDT"}, headers={"Sec-WebSocket-Protocol": f"bearer, {tokens['admin']}"}
    )
    assert response.status == 401


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({}, "symbol", "is required"),
        ({"symbol": "btc usdt"}, "symbol", "does not match"),
        ({"symbol": "BTCUSDT", "limit": "0"}, "limit", "at least 1"),
        ({"symbol": "BTCUSDT", "limit": "5001"}, "limit", "at most 5000"),
        ({"symbol": "BTCUSDT", "limit": "ten"}, "limit", "expected an integer"),
        ({"symbol": "BTCUSDT", "fast": "yes"}, "fast", "expected true or false"),
        ({"symbol": "BTCUSDT", "limt": "5"}, "limt", "unknown parameter"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    client: Client, tokens: dict[str, str], query: dict[str, str], field: str, message: str
) -> None:
    response = await client.get("/api/v1/echo", params=query, headers=bearer(tokens["reader"]))
    assert response.status == 400
    body = await response.json()
    assert (body["reason"], body["field"]) == ("INVALID_PARAMETER", field)
    assert message in body["msg"]


async def test_repeated_parameter_is_400(client: Client, tokens: dict[str, str]) -> None:
    response = await client.get("/api/v1/echo?symbol=BTCUSDT&symbol=ETHUSDT", headers=bearer(tokens["reader"]))
    assert response.status == 400
    assert (await response.json())["field"] == "symbol"


async def test_cors_preflight_is_answered_without_auth_for_listed_origins_only(client: Client) -> None:
    preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    response = await client.options("/api/v1/echo", headers={"Origin": ALLOWED_ORIGIN, **preflight})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in response.headers
    response = await client.options("/api/v1/echo", headers={"Origin": "https://evil.example", **preflight})
    assert response.status == 204
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_headers_on_answers_and_on_errors(client: Client, tokens: dict[str, str]) -> None:
    response = await client.get(
        "/api/v1/echo", params={"symbol": "BTCUSDT"}, headers={"Origin": ALLOWED_ORIGIN, **bearer(tokens["reader"])}
    )
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "Origin" in response.headers.getall("Vary")
    response = await client.get("/api/v1/echo", headers={"Origin": ALLOWED_ORIGIN})
    assert response.status == 401  # the browser can read why
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "WWW-Authenticate" in response.headers["Access-Control-Expose-Headers"]
    response = await client.get("/api/v1/echo", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Origin" in response.headers.getall("Vary")


async def test_rate_limit_is_per_token_with_429_and_retry_after(issued: tuple[TokenStore, dict[str, str]]) -> None:
    store, tokens = issued
    # one request per 100 s after a burst of 2: the third request is refused however slow the machine
    async with TestClient(TestServer(build_app(store, RateLimit(per_second=0.01, burst=2)))) as client:
        query = {"symbol": "BTCUSDT"}
        for _ in range(2):
            assert (await client.get("/api/v1/echo", params=query, headers=bearer(tokens["reader"]))).status == 200
        response = await client.get("/api/v1/echo", params=query, headers=bearer(tokens["reader"]))
        assert response.status == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 100
        body = await response.json()
        assert body["reason"] == "TOO_MANY_REQUESTS" and body["retryable"] is True
        assert 0 < body["retryAfterMs"] <= 100_000
        assert (await client.get("/api/v1/echo", params=query, headers=bearer(tokens["admin"]))).status == 200
        assert (await client.get("/openapi.json")).status == 200  # public routes are not limited per token


def test_token_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    bucket = TokenBucket(RateLimit(per_second=2.0, burst=3), tokens=3.0, updated=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0  # one token back after 1/rate seconds
    assert bucket.take(0.5) == pytest.approx(0.5)
    assert [bucket.take(100.0) for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # never more than the burst
    assert bucket.take(100.0) > 0


def test_rate_limiter_keeps_one_bucket_per_token() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimit(per_second=1.0, burst=1), clock=lambda: now[0])
    assert limiter.wait_seconds("a") == 0.0
    assert limiter.wait_seconds("a") == pytest.approx(1.0)
    assert limiter.wait_seconds("b") == 0.0
    now[0] = 1.0
    assert limiter.wait_seconds("a") == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("20,40", RateLimit(20.0, 40)), ("0.5,1", RateLimit(0.5, 1)), ("5", RateLimit(5.0, 5)), ("off", None)],
)
def test_parse_rate_limit(text: str, expected: RateLimit | None) -> None:
    assert parse_rate_limit(text) == expected


@pytest.mark.parametrize("text", ["fast", "0,10", "10,0", "10,x"])
def test_parse_rate_limit_refuses_bad_values(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any message; the setting's name is added by Settings
        parse_rate_limit(text)


def test_parse_origins() -> None:
    assert parse_origins("https://a.example, http://localhost:3000/") == ("https://a.example", "http://localhost:3000")
    assert parse_origins("") == ()
    for bad in ("a.example", "https://a.example/path", "ftp://a.example", "*"):
        with pytest.raises(ValueError, match="expected origins"):
            parse_origins(bad)


def test_settings_are_parsed_and_bad_values_name_the_variable(tmp_path: Path) -> None:
    config = load_config([], {"GATEWAY_HTTP_CORS_ORIGINS": "https://a.example", "GATEWAY_HTTP_RATE_LIMIT": "2,4"})
    assert config.cors_origins == ("https://a.example",)
    assert config.rate_limit == RateLimit(2.0, 4)
    assert config.tokens == TokenStore() and config.venue == "sim"
    assert load_config([], {"GATEWAY_HTTP_RATE_LIMIT": "off"}).rate_limit is None
    with pytest.raises(ConfigError, match="GATEWAY_HTTP_RATE_LIMIT"):
        load_config([], {"GATEWAY_HTTP_RATE_LIMIT": "lots"})
    with pytest.raises(ConfigError, match="GATEWAY_HTTP_CORS_ORIGINS"):
        load_config([], {"GATEWAY_HTTP_CORS_ORIGINS": "example.com"})
    with pytest.raises(ConfigError, match="GATEWAY_TOKENS_FILE"):
        load_config([], {"GATEWAY_TOKENS_FILE": str(tmp_path / "missing.json")})


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def metrics_when(client: Client, ready: Callable[[str], bool], timeout: float = 5.0) -> str:
    """/metrics once `ready` holds (a WebSocket handler records its request when it returns)."""
    deadline = time.monotonic() + timeout
    while True:
        text = await (await client.get("/metrics")).text()
        if ready(text) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.02)


async def test_metrics_count_requests_by_route_template_and_status(client: Client, tokens: dict[str, str]) -> None:
    await client.get("/api/v1/echo", params={"symbol": "BTCUSDT"}, headers=bearer(tokens["reader"]))
    await client.get("/api/v1/echo")
    await client.get("/no/such/path/1")
    await client.get("/no/such/path/2")
    async with client.ws_connect("/api/v1/stream", protocols=("bearer", tokens["reader"]), timeout=WS_TIMEOUT) as ws:
        await ws.receive_json(timeout=10)
        text = await (await client.get("/metrics")).text()
        assert samples(text, "gateway_http_ws_clients") == {(("route", "/api/v1/stream"),): 1.0}
    ws_answered = (("method", "GET"), ("route", "/api/v1/stream"), ("status", "101"))
    text = await metrics_when(client, lambda text: ws_answered in samples(text, "gateway_http_requests_total"))
    counts = samples(text, "gateway_http_requests_total")
    assert counts[(("method", "GET"), ("route", "/api/v1/echo"), ("status", "200"))] == 1
    assert counts[(("method", "GET"), ("route", "/api/v1/echo"), ("status", "401"))] == 1
    assert counts[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 2
    assert counts[ws_answered] == 1
    assert tokens["reader"] not in text and "reader" not in text  # no secrets, no token names
    latency = samples(text, "gateway_http_request_duration_seconds_count")
    assert latency[(("method", "GET"), ("route", "/api/v1/echo"))] == 2
    assert samples(text, "gateway_http_ws_clients") == {(("route", "/api/v1/stream"),): 0.0}
