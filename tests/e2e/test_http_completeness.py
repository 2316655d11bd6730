"""The HTTP gateway's remaining end-to-end guarantees, on a system of this module's own (simulator
with its control API on, a low rate limit and low WebSocket connection limits): CORS preflight,
rate limits with Retry-After, connection limits, depth continuity across a provider resync caused
by a sequence gap at the venue, a stalled WebSocket client that does not hold up a fast one, and
the mapping of errors to statuses and bodies."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from gateway_auth.tokens import Scope, TokenStore
from launcher.system import System
from tests.e2e.conftest import running_system
from tests.e2e.test_http_market_data import ClientBook, bearer, until

pytestmark = pytest.mark.timeout(120)

TIMEOUT = aiohttp.ClientTimeout(total=15)
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=15, ws_close=5)
ORIGIN = "https://app.example.com"
RATE = "5,5"  # per token: 5 requests/s, burst 5
WS_TOTAL, WS_PER_TOKEN = 4, 2
TOKEN_NAMES = ("main", "limited", "ws-a", "ws-b", "ws-c", "slow", "fast", "account")


@dataclass(frozen=True)
class Completeness:
    system: System
    tokens: dict[str, str]  # name -> token in clear (all read, "account" account)


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Completeness]:
    root = tmp_path_factory.mktemp("completeness")
    store, tokens = TokenStore(), {}
    for name in TOKEN_NAMES:
        store, tokens[name] = store.issue(name, frozenset({Scope.ACCOUNT if name == "account" else Scope.READ}))
    store.save(root / "tokens.json")
    env = {
        "SIM_CONTROL": "on",
        "GATEWAY_TOKENS_FILE": str(root / "tokens.json"),
        "GATEWAY_HTTP_CORS_ORIGINS": ORIGIN,
        "GATEWAY_HTTP_RATE_LIMIT": RATE,
        "GATEWAY_HTTP_MAX_WS_CLIENTS": f"{WS_TOTAL},{WS_PER_TOKEN}",
    }
    with running_system(root, env, without={"gateway_mcp"}) as system:  # MCP is not under test
        yield Completeness(system, tokens)


@pytest.fixture
async def http(own: Completeness) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{own.system.ports.http}", timeout=TIMEOUT) as session:
        yield session


ERROR_KEYS = {"code", "msg", "reason", "retryable", "retryAfterMs", "field"}


async def test_cors_preflight_and_headers_for_the_listed_origin_only(http: aiohttp.ClientSession) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    async with http.options("/api/v1/ticker/price", headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "GET" in response.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
        assert "Access-Control-Allow-Credentials" not in response.headers
    other = {**preflight, "Origin": "https://evil.example.com"}
    async with http.options("/api/v1/ticker/price", headers=other) as response:
        assert response.status == 204 and "Access-Control-Allow-Origin" not in response.headers
    # An error answer (401) still carries CORS headers, so the browser lets the page read it.
    async with http.get("/api/v1/ticker/price", headers={"Origin": ORIGIN}) as response:
        assert response.status == 401
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]


async def test_rate_limit_answers_429_with_retry_after_per_token(
    http: aiohttp.ClientSession, own: Completeness
) -> None:
    limited = bearer(own.tokens["limited"])
    statuses: list[int] = []
    refused: dict[str, Any] = {}
    retry_after = ""
    for _ in range(12):  # burst 5 at 5/s: a quick run of 12 must be refused at least once
        async with http.get("/api/v1/ticker/price", params={"symbol": "BTCUSDT"}, headers=limited) as response:
            statuses.append(response.status)
            if response.status == 429:
                refused, retry_after = await response.json(), response.headers["Retry-After"]
    assert statuses[:5] == [200] * 5, statuses
    assert 429 in statuses, statuses
    assert set(refused) >= ERROR_KEYS and refused["reason"] == "TOO_MANY_REQUESTS" and refused["retryable"] is True
    assert int(retry_after) >= 1 and refused["retryAfterMs"] > 0
    # Another token is not affected by this one's bucket.
    async with http.get(
        "/api/v1/ticker/price", params={"symbol": "BTCUSDT"}, headers=bearer(own.tokens["main"])
    ) as response:
        assert response.status == 200
    # After Retry-After the token is served again.
    await asyncio.sleep(refused["retryAfterMs"] / 1000)  # the wait the gateway asked for, not synchronisation
    async with http.get("/api/v1/ticker/price", params={"symbol": "BTCUSDT"}, headers=limited) as response:
        assert response.status == 200


async def ws_refusal(http: aiohttp.ClientSession, token: str) -> tuple[int, dict[str, str]]:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect("/ws/trades/BTCUSDT", headers=bearer(token), timeout=WS_TIMEOUT)
    return refused.value.status, dict(refused.value.headers or {})


async def test_websocket_connection_limits_per_token_and_in_total(
    http: aiohttp.ClientSession, own: Completeness
) -> None:
    a, b, c = own.tokens["ws-a"], own.tokens["ws-b"], own.tokens["ws-c"]
    opened: list[aiohttp.ClientWebSocketResponse] = []
    try:
        for token in (a, a):
            opened.append(await http.ws_connect("/ws/trades/BTCUSDT", headers=bearer(token), timeout=WS_TIMEOUT))
        status, headers = await ws_refusal(http, a)  # this token is at its limit of 2
        assert status == 429 and int(headers["Retry-After"]) >= 1
        for token in (b, b):
            opened.append(await http.ws_connect("/ws/trades/BTCUSDT", headers=bearer(token), timeout=WS_TIMEOUT))
        status, headers = await ws_refusal(http, c)  # 4 open: the gateway is full for everyone
        assert status == 503 and int(headers["Retry-After"]) >= 1
        # REST is not affected by the WebSocket limits.
        async with http.get("/api/v1/ticker/price", params={"symbol": "BTCUSDT"}, headers=bearer(c)) as response:
            assert response.status == 200
        await opened.pop().close()
        # The slot frees once the server has seen the close; poll until a new client is accepted.
        deadline = time.monotonic() + 10
        while True:
            try:
                opened.append(await http.ws_connect("/ws/trades/BTCUSDT", headers=bearer(c), timeout=WS_TIMEOUT))
                break
            except aiohttp.WSServerHandshakeError as exc:
                status = exc.status
            assert status == 503 and time.monotonic() < deadline, status
            await asyncio.sleep(0.05)
    finally:
        for ws in opened:
            await ws.close()


async def read_into(ws: aiohttp.ClientWebSocketResponse, book: ClientBook, kinds: list[str]) -> None:
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            body = orjson.loads(message.data)
            kinds.append(body["type"] if body["type"] != "snapshot" else f"snapshot:{body['reason']}")
            book.on(body)  # asserts U == previous u + 1 on every diff


async def test_depth_continuity_across_a_provider_resync_after_a_venue_gap(
    http: aiohttp.ClientSession, own: Completeness
) -> None:
    book, kinds = ClientBook(), list[str]()
    async with (
        aiohttp.ClientSession(f"http://127.0.0.1:{own.system.ports.sim}", timeout=TIMEOUT) as sim,
        http.ws_connect("/ws/depth/BTCUSDT", headers=bearer(own.tokens["main"]), timeout=WS_TIMEOUT) as ws,
    ):
        reader = asyncio.create_task(read_into(ws, book, kinds))
        try:
            await until(lambda: book.diffs >= 3 or reader.done(), "diffs before the gap")
            async with sim.post("/control/ws/gap", json={"symbol": "BTCUSDT", "count": 1}) as response:
                assert response.status == 200, await response.text()
            await until(lambda: "snapshot:resync" in kinds or reader.done(), "a resync snapshot after the gap", 30)
            assert "resync" in kinds, kinds  # the copy was declared void before the new snapshot
            diffs = book.diffs
            await until(lambda: book.diffs >= diffs + 3 or reader.done(), "diffs continuing after the resync")
            assert not reader.done(), reader  # a continuity failure inside the reader would have ended it
            assert book.valid
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def test_a_stalled_client_does_not_hold_up_a_fast_one(http: aiohttp.ClientSession, own: Completeness) -> None:
    # In these few seconds the stalled client only fills socket buffers; test_http_lag takes one as far
    # as its lagged notice and the snapshot that restarts it.
    port = own.system.ports.http
    # The stalled client: a raw socket with a tiny receive buffer that completes the upgrade and then never reads.
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(10)
    try:
        raw.connect(("127.0.0.1", port))
        raw.sendall(
            (
                f"GET /ws/depth/BTCUSDT?limit=1000 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: Bearer {own.tokens['slow']}\r\n\r\n"
            ).encode()
        )
        assert raw.recv(12) == b"HTTP/1.1 101"
        book, kinds = ClientBook(), list[str]()
        latencies: list[float] = []
        async with http.ws_connect("/ws/depth/BTCUSDT", headers=bearer(own.tokens["fast"]), timeout=WS_TIMEOUT) as ws:

            async def fast() -> None:
                async for message in ws:
                    body = orjson.loads(message.data)
                    if body["type"] == "diff":
                        latencies.append(time.time() * 1000 - body["E"])
                    kinds.append(body["type"])
                    book.on(body)

            reader = asyncio.create_task(fast())
            try:
                await until(lambda: book.diffs >= 30 or reader.done(), "30 diffs on the fast client", 30)
                assert not reader.done(), reader
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        assert p99 < 1000, f"the fast client's p99 latency is {p99:.0f} ms while another client is stalled"
        assert "lagged" not in kinds and "resync" not in kinds, kinds
    finally:
        raw.close()


async def test_errors_map_to_statuses_and_one_body_shape(http: aiohttp.ClientSession, own: Completeness) -> None:
    read, account = bearer(own.tokens["main"]), bearer(own.tokens["account"])
    cases: list[tuple[str, str, dict[str, str], dict[str, str], int, str]] = [
        ("GET", "/nowhere", {}, {}, 404, "NOT_FOUND"),
        ("DELETE", "/api/v1/ticker/price", {}, read, 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/api/v1/ticker/price", {}, {}, 401, "UNAUTHENTICATED"),
        ("GET", "/api/v1/ticker/price", {}, {"Authorization": "Basic abc"}, 401, "UNAUTHENTICATED"),
        ("GET", "/api/v1/ticker/price", {}, bearer("bsg_unknown"), 401, "UNAUTHENTICATED"),
        ("GET", "/api/v1/ticker/price", {}, account, 403, "INSUFFICIENT_SCOPE"),
        ("GET", "/api/v1/depth", {"symbol": "BTCUSDT", "limit": "0"}, read, 400, "INVALID_PARAMETER"),
        ("GET", "/api/v1/avgPrice", {"symbol": "NOPEUSDT"}, read, 400, ""),  # the provider's refusal, translated
        ("GET", "/ws/depth/BTCUSDT", {}, read, 400, ""),  # a WebSocket route without the upgrade
    ]
    for method, path, params, headers, status, reason in cases:
        async with http.request(method, path, params=params, headers=headers) as response:
            body = await response.json()
            assert response.status == status, (method, path, response.status, body)
            assert set(body) >= ERROR_KEYS, body
            assert body["reason"] == reason or not reason, (path, body)
            assert "Traceback" not in body["msg"]
        await asyncio.sleep(0.25)  # stay under this system's low rate limit (5/s), so 429 does not mask the case


async def read_frames(ws: aiohttp.ClientWebSocketResponse, frames: list[dict[str, Any]]) -> None:
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.TEXT:
            frames.append(orjson.loads(msg.data))


def trade_ids_accounted_for(frames: list[dict[str, Any]]) -> None:
    """Between two trades in a row, either the ids follow on or a gap notice stands between them."""
    previous, gap_since = None, False
    for frame in frames:
        if frame["type"] == "gap":
            gap_since = True
        elif frame["type"] == "trade":
            if previous is not None and not gap_since:
                assert frame["t"] == previous + 1, f"trade {frame['t']} after {previous} without a gap notice"
            previous, gap_since = frame["t"], False


async def test_trade_clients_are_told_of_trades_the_provider_did_not_get(
    http: aiohttp.ClientSession, own: Completeness
) -> None:
    # Last in this module: the disconnect below also resynchronises books over the same connection.
    frames: list[dict[str, Any]] = []

    def trades_after(index: int) -> int:
        return sum(1 for f in frames[index:] if f["type"] == "trade")

    def first_gap_after(index: int) -> int | None:
        return next((i for i in range(index, len(frames)) if frames[i]["type"] == "gap"), None)

    async with (
        aiohttp.ClientSession(f"http://127.0.0.1:{own.system.ports.sim}", timeout=TIMEOUT) as sim,
        http.ws_connect("/ws/trades/BTCUSDT", headers=bearer(own.tokens["main"]), timeout=WS_TIMEOUT) as ws,
    ):
        reader = asyncio.create_task(read_frames(ws, frames))
        try:
            await until(lambda: trades_after(0) >= 3 or reader.done(), "trades before the venue drops some", 30)
            # The venue loses two trade events on their way to the provider.
            async with sim.post("/control/ws/gap", json={"stream": "btcusdt@trade", "count": 2}) as response:
                assert response.status == 200, await response.text()
            await until(
                lambda: ((g := first_gap_after(0)) is not None and trades_after(g) >= 1) or reader.done(),
                "a gap notice, then trades again",
                30,
            )
            gap_at = first_gap_after(0)
            assert gap_at is not None
            before = [f["t"] for f in frames[:gap_at] if f["type"] == "trade"][-1]
            after = next(f["t"] for f in frames[gap_at:] if f["type"] == "trade")
            assert after == before + 3, (before, after)
            assert frames[gap_at] == {
                "type": "gap",
                "s": "BTCUSDT",
                "reason": f"trade ids {before + 1} to {before + 2} did not arrive from the exchange",
                "firstId": before + 1,
                "lastId": before + 2,
            }
            # The client fetches what it missed, as the notice says.
            query = {"symbol": "BTCUSDT", "fromId": str(before + 1), "limit": "2"}
            async with http.get("/api/v1/trades", params=query, headers=bearer(own.tokens["main"])) as response:
                assert response.status == 200, await response.text()
                missed = await response.json()
            assert [t["id"] for t in missed] == [before + 1, before + 2]
            times = [next(f["T"] for f in frames if f.get("t") == trade_id) for trade_id in (before, after)]
            assert times[0] <= missed[0]["time"] <= missed[1]["time"] <= times[1]
            # The provider's connection to the venue drops: its clients hear of it at once.
            mark = len(frames)
            async with sim.post("/control/ws/disconnect", json={"stream": "btcusdt@trade"}) as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["disconnected"] >= 1
            await until(
                lambda: ((g := first_gap_after(mark)) is not None and trades_after(g) >= 1) or reader.done(),
                "a gap notice for the dropped connection, then trades again",
                30,
            )
            gap_at = first_gap_after(mark)
            assert gap_at is not None
            assert "interrupted" in frames[gap_at]["reason"], frames[gap_at]
            assert not reader.done(), reader
            trade_ids_accounted_for(frames)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
