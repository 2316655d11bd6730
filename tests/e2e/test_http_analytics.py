"""Analytics through the HTTP gateway over the default running system: each endpoint answers the
shape its /openapi.json entry documents, once the provider has recorded a few seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest

from gateway_auth.tokens import Scope
from launcher.system import System
from tests.e2e.conftest import GatewayTokens

pytestmark = pytest.mark.timeout(120)

TIMEOUT = aiohttp.ClientTimeout(total=30)


@pytest.fixture
async def http(system: System) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{system.ports.http}", timeout=TIMEOUT) as session:
        yield session


def response_schema(doc: dict[str, Any], path: str) -> dict[str, Any]:
    found: dict[str, Any] = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return found


async def recorded(http: aiohttp.ClientSession, headers: dict[str, str], want: int) -> dict[str, Any]:
    """The last minute's snapshots once at least `want` seconds are recorded (polled with a deadline)."""
    deadline = time.monotonic() + 40
    while True:
        now = int(time.time() * 1000)
        params = {"symbol": "BTCUSDT", "startTime": str(now - 60_000), "endTime": str(now), "levels": "5"}
        async with http.get("/api/v1/analytics/snapshots", params=params, headers=headers) as response:
            body: dict[str, Any] = await response.json()
            assert response.status == 200, body
        if len(body["snapshots"]) >= want or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.5)


async def test_every_analytics_endpoint_answers_its_documented_shape(
    http: aiohttp.ClientSession, gateway_tokens: GatewayTokens
) -> None:
    headers = {"Authorization": f"Bearer {gateway_tokens.by_scope[Scope.READ]}"}
    async with http.get("/openapi.json") as response:
        doc = await response.json()
    snaps = await recorded(http, headers, 3)
    jsonschema.validate(snaps, response_schema(doc, "/api/v1/analytics/snapshots"))
    assert len(snaps["snapshots"]) >= 3
    times = [s["time"] for s in snaps["snapshots"]]
    assert times == sorted(times) and all(1 <= len(s["bids"]) <= 5 for s in snaps["snapshots"])

    for name, extra in [
        ("orderFlow", {"bucketSeconds": "5"}),
        ("volumeProfile", {}),
        ("anomalies", {}),
        ("health", {}),
        ("liquidity", {"depthLevels": "10"}),
    ]:
        path = f"/api/v1/analytics/{name}"
        params = {"symbol": "BTCUSDT", "lookbackSeconds": "60", **extra}
        async with http.get(path, params=params, headers=headers) as response:
            body = await response.json()
            assert response.status == 200, (path, body)
        jsonschema.validate(body, response_schema(doc, path))
        meta = body["meta"]
        assert meta["symbol"] == "BTCUSDT" and meta["requested"]["endMs"] - meta["requested"]["startMs"] == 60_000
        assert meta["computedAtMs"] > 0

    now = int(time.time() * 1000)
    explicit = {"symbol": "BTCUSDT", "startTime": str(now - 30_000), "endTime": str(now)}
    async with http.get("/api/v1/analytics/health", params=explicit, headers=headers) as response:
        body = await response.json()
        assert response.status == 200, body
    assert body["meta"]["requested"] == {"startMs": now - 30_000, "endMs": now}


async def test_analytics_parameter_errors_and_scope(http: aiohttp.ClientSession, gateway_tokens: GatewayTokens) -> None:
    headers = {"Authorization": f"Bearer {gateway_tokens.by_scope[Scope.READ]}"}
    both = {"symbol": "BTCUSDT", "lookbackSeconds": "60", "startTime": "1"}
    async with http.get("/api/v1/analytics/orderFlow", params=both, headers=headers) as response:
        assert response.status == 400 and (await response.json())["field"] == "startTime"
    too_long = {"symbol": "BTCUSDT", "startTime": "1000", "endTime": str(1000 + 3_600_001)}
    async with http.get("/api/v1/analytics/snapshots", params=too_long, headers=headers) as response:
        assert response.status == 400 and (await response.json())["field"] == "endTime"
    async with http.get("/api/v1/analytics/health", params={"symbol": "NOPE1"}, headers=headers) as response:
        assert response.status in (400, 404)
    account_only = {"Authorization": f"Bearer {gateway_tokens.by_scope[Scope.ACCOUNT]}"}
    async with http.get("/api/v1/analytics/health", params={"symbol": "BTCUSDT"}, headers=account_only) as response:
        assert response.status == 403
