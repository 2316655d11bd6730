"""The HTTP gateway's market data over the running system (simulator -> provider -> gateway_http),
as a client sees it: REST answers valid against the gateway's own OpenAPI document, auth and
parameter errors, and live WebSocket streams; the depth stream's book is checked against the
gateway's REST book and the simulator's own book at shared update ids."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway_auth.tokens import Scope
from launcher.processes import ManagedProcess, free_port
from launcher.system import Ports, System, build_system
from tests.e2e.conftest import GatewayTokens

pytestmark = pytest.mark.timeout(120)

TIMEOUT = aiohttp.ClientTimeout(total=15)
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=15, ws_close=5)
Levels = list[tuple[Decimal, Decimal]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def read_token(gateway_tokens: GatewayTokens) -> str:
    return gateway_tokens.by_scope[Scope.READ]


@pytest.fixture
async def gateway(system: System) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{system.ports.http}", timeout=TIMEOUT) as session:
        yield session


@pytest.fixture
async def sim(system: System) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{system.ports.sim}", timeout=TIMEOUT) as session:
        yield session


async def until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# --- REST ---------------------------------------------------------------------------------------


async def test_every_market_endpoint_answers_its_documented_shape(
    gateway: aiohttp.ClientSession, read_token: str
) -> None:
    async with gateway.get("/openapi.json") as response:
        document = await response.json()
    paths = document["paths"]
    calls: list[tuple[str, dict[str, str], Callable[[Any], bool]]] = [
        ("/api/v1/ticker/price", {"symbol": "BTCUSDT"}, lambda b: b["symbol"] == "BTCUSDT"),
        (
            "/api/v1/ticker/price",
            {"symbols": '["BTCUSDT","ETHUSDT"]'},
            lambda b: {t["symbol"] for t in b} == {"BTCUSDT", "ETHUSDT"},
        ),
        ("/api/v1/ticker/price", {}, lambda b: {"BTCUSDT", "ETHUSDT"} <= {t["symbol"] for t in b}),
        ("/api/v1/ticker/24hr", {"symbol": "ETHUSDT"}, lambda b: b["symbol"] == "ETHUSDT"),
        ("/api/v1/ticker/24hr", {"symbols": '["BTCUSDT"]'}, lambda b: [t["symbol"] for t in b] == ["BTCUSDT"]),
        (
            "/api/v1/ticker/bookTicker",
            {"symbol": "BTCUSDT"},
            lambda b: Decimal(b["bidPrice"]) < Decimal(b["askPrice"]),
        ),
        ("/api/v1/avgPrice", {"symbol": "BTCUSDT"}, lambda b: Decimal(b["price"]) > 0),
        ("/api/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "3"}, lambda b: 1 <= len(b) <= 3),
        (
            "/api/v1/depth",
            {"symbol": "BTCUSDT", "limit": "5"},
            lambda b: len(b["bids"]) == 5 and len(b["asks"]) == 5 and b["inSync"] and b["lastUpdateId"] > 0,
        ),
        ("/api/v1/trades", {"symbol": "BTCUSDT", "limit": "5"}, lambda b: len(b) <= 5),
        ("/api/v1/aggTrades", {"symbol": "BTCUSDT", "limit": "5"}, lambda b: len(b) <= 5),
        (
            "/api/v1/exchangeInfo",
            {"symbol": "BTCUSDT"},
            lambda b: (
                [s["symbol"] for s in b["symbols"]] == ["BTCUSDT"]
                and any(f["filterType"] == "PRICE_FILTER" for f in b["symbols"][0]["filters"])
            ),
        ),
    ]
    for path, params, check in calls:
        async with gateway.get(path, params=params, headers=bearer(read_token)) as response:
            body = await response.json()
            assert response.status == 200, (path, params, body)
        schema = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        jsonschema.Draft202012Validator(schema).validate(body)
        assert check(body), (path, params, body)
    assert {path for path, _, _ in calls} | {"/ws/depth/{symbol}"} <= set(paths)


async def test_tokens_scopes_and_bad_parameters(gateway: aiohttp.ClientSession, gateway_tokens: GatewayTokens) -> None:
    read = bearer(gateway_tokens.by_scope[Scope.READ])
    async with gateway.get("/api/v1/depth", params={"symbol": "BTCUSDT"}) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    async with gateway.get("/api/v1/depth", params={"symbol": "BTCUSDT"}, headers=bearer("bsg_nope")) as response:
        assert response.status == 401
    account_only = bearer(gateway_tokens.by_scope[Scope.ACCOUNT])
    async with gateway.get("/api/v1/ticker/price", headers=account_only) as response:
        assert response.status == 403
        assert (await response.json())["reason"] == "INSUFFICIENT_SCOPE"
    cases = [
        ("/api/v1/depth", {"symbol": "BTCUSDT", "limit": "0"}, "limit"),
        ("/api/v1/depth", {"symbol": "BTCUSDT", "allowStale": "yes"}, "allowStale"),
        ("/api/v1/depth", {}, "symbol"),
        ("/api/v1/klines", {"symbol": "BTCUSDT", "interval": "1x"}, "interval"),
        ("/api/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": "5", "endTime": "4"}, "startTime"),
        ("/api/v1/ticker/price", {"symbols": '["BTCUSDT"'}, "symbols"),
        ("/api/v1/ticker/price", {"symbol": "BTCUSDT", "symbols": '["ETHUSDT"]'}, "symbols"),
        ("/api/v1/trades", {"symbol": "BTCUSDT", "limitt": "5"}, "limitt"),
        ("/api/v1/avgPrice", {"symbol": "NOPEUSDT"}, "symbol"),  # refused by the provider, translated here
    ]
    for path, params, field in cases:
        async with gateway.get(path, params=params, headers=read) as response:
            body = await response.json()
            assert response.status == 400, (path, params, body)
            assert body["field"] == field, (path, params, body)


async def test_a_websocket_needs_a_token(system: System, gateway: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await gateway.ws_connect("/ws/trades/BTCUSDT", timeout=WS_TIMEOUT)
    assert refused.value.status == 401


# --- WebSocket streams --------------------------------------------------------------------------


class ClientBook:
    """A depth client's book, rebuilt from the gateway's frames; asserts U == previous u + 1."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.last_id = 0
        self.valid = False
        self.diffs = 0
        self.history: dict[int, tuple[Levels, Levels]] = {}

    def on(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "snapshot":
            assert message["inSync"] is True
            self.bids = {Decimal(p): Decimal(q) for p, q in message["bids"]}
            self.asks = {Decimal(p): Decimal(q) for p, q in message["asks"]}
            self.last_id = message["lastUpdateId"]
            self.valid = True
        elif kind == "diff":
            assert self.valid, "a diff arrived while the copy is void"
            assert message["U"] == self.last_id + 1, f"continuity broken: U={message['U']} after u={self.last_id}"
            for side, levels in ((self.bids, message["b"]), (self.asks, message["a"])):
                for price, qty in levels:
                    if Decimal(qty) == 0:
                        side.pop(Decimal(price), None)
                    else:
                        side[Decimal(price)] = Decimal(qty)
            self.last_id = message["u"]
            self.diffs += 1
        elif kind in ("resync", "lagged"):
            self.valid = False
        if self.valid:
            self.history[self.last_id] = self.top(20)

    def top(self, n: int) -> tuple[Levels, Levels]:
        return sorted(self.bids.items(), reverse=True)[:n], sorted(self.asks.items())[:n]


def top(levels: list[list[str]], n: int) -> Levels:
    return [(Decimal(p), Decimal(q)) for p, q in levels[:n]]


async def follow(ws: aiohttp.ClientWebSocketResponse, book: ClientBook) -> None:
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            book.on(orjson.loads(message.data))


async def test_depth_stream_rebuilds_the_book_matching_rest_and_the_venue_at_shared_ids(
    gateway: aiohttp.ClientSession, sim: aiohttp.ClientSession, read_token: str
) -> None:
    book = ClientBook()
    async with gateway.ws_connect(
        "/ws/depth/BTCUSDT", params={"limit": "1000"}, headers=bearer(read_token), timeout=WS_TIMEOUT
    ) as ws:
        reader = asyncio.create_task(follow(ws, book))
        try:
            await until(lambda: book.valid, "the first snapshot")
            via_rest = via_sim = 0
            deadline = time.monotonic() + 25
            while (via_rest < 3 or via_sim < 3) and time.monotonic() < deadline:
                async with gateway.get(
                    "/api/v1/depth", params={"symbol": "BTCUSDT", "limit": "20"}, headers=bearer(read_token)
                ) as response:
                    rest = await response.json()
                async with sim.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": "20"}) as response:
                    truth = await response.json()
                # The stream reaches those ids within a few 100 ms windows.
                target = max(rest["lastUpdateId"], truth["lastUpdateId"])
                await until(lambda t=target: book.last_id >= t or reader.done(), "the stream to catch up", 5)  # type: ignore[misc]
                for answer, counted in ((rest, "rest"), (truth, "sim")):
                    seen = book.history.get(answer["lastUpdateId"])
                    if seen is None:
                        continue  # the venue's id fell inside a diff's range: no shared id this time
                    bids, asks = seen
                    assert bids == top(answer["bids"], 20), f"bids differ from {counted} at {answer['lastUpdateId']}"
                    assert asks == top(answer["asks"], 20), f"asks differ from {counted} at {answer['lastUpdateId']}"
                    if counted == "rest":
                        via_rest += 1
                    else:
                        via_sim += 1
                await asyncio.sleep(0.2)  # let the book move between comparisons
            assert not reader.done(), reader
            assert via_rest >= 3 and via_sim >= 3, f"compared {via_rest} times with REST, {via_sim} with the venue"
            assert book.diffs > 0
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def metrics_text(gateway: aiohttp.ClientSession) -> str:
    async with gateway.get("/metrics") as response:
        return await response.text()


async def first_frame(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        message = await ws.receive(timeout=20)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        body = orjson.loads(message.data)
        if body["type"] == kind:
            assert isinstance(body, dict)
            return body


async def test_two_depth_clients_share_one_upstream_and_the_token_may_ride_the_subprotocol(
    gateway: aiohttp.ClientSession, read_token: str
) -> None:
    text = ""

    async def refresh() -> None:
        nonlocal text
        text = await metrics_text(gateway)

    deadline = time.monotonic() + 10
    await refresh()
    while metric(text, "gateway_http_ws_upstreams", channel="depth") != 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # an earlier test's upstream may still be ending
        await refresh()
    assert metric(text, "gateway_http_ws_upstreams", channel="depth") == 0
    opens_before = metric(text, "gateway_http_ws_upstream_opens_total", channel="depth")
    protocols = ("bearer", read_token)
    async with (
        gateway.ws_connect("/ws/depth/ETHUSDT", protocols=protocols, timeout=WS_TIMEOUT) as first,
        gateway.ws_connect("/ws/depth/ETHUSDT?limit=5", protocols=protocols, timeout=WS_TIMEOUT) as second,
    ):
        assert first.protocol == second.protocol == "bearer"  # never the token
        a, b = await first_frame(first, "snapshot"), await first_frame(second, "snapshot")
        assert a["reason"] == b["reason"] == "initial" and len(b["bids"]) == 5
        await refresh()
        assert metric(text, "gateway_http_ws_upstreams", channel="depth") == 1
        assert metric(text, "gateway_http_ws_upstream_opens_total", channel="depth") == opens_before + 1
        assert metric(text, "gateway_http_ws_clients", route="/ws/depth/{symbol}") == 2
        diff_a, diff_b = await first_frame(first, "diff"), await first_frame(second, "diff")
        assert diff_a["s"] == diff_b["s"] == "ETHUSDT"
        # Diffs go out through the fan-out's batched writes, which are timed, and the event loop's lag
        # is sampled every 0.25 s.
        timed = (
            "gateway_http_ws_flush_seconds",
            "gateway_http_ws_batch_delay_seconds",
            "gateway_http_event_loop_lag_seconds",
        )
        deadline = time.monotonic() + 10
        await refresh()
        while any(metric(text, f"{name}_count") == 0 for name in timed) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await refresh()
        assert all(metric(text, f"{name}_count") > 0 for name in timed), text
    deadline = time.monotonic() + 10
    await refresh()
    while metric(text, "gateway_http_ws_upstreams", channel="depth") != 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        await refresh()
    assert metric(text, "gateway_http_ws_upstreams", channel="depth") == 0, "the upstream outlived its clients"


async def test_ticker_book_ticker_and_trade_streams_deliver(gateway: aiohttp.ClientSession, read_token: str) -> None:
    headers = bearer(read_token)
    async with (
        gateway.ws_connect("/ws/ticker/BTCUSDT", headers=headers, timeout=WS_TIMEOUT) as ticker,
        gateway.ws_connect("/ws/bookTicker/BTCUSDT", headers=headers, timeout=WS_TIMEOUT) as book_ticker,
        gateway.ws_connect("/ws/trades/BTCUSDT", headers=headers, timeout=WS_TIMEOUT) as trades,
    ):
        tick, best, trade = await asyncio.wait_for(
            asyncio.gather(
                first_frame(ticker, "ticker"), first_frame(book_ticker, "bookTicker"), first_frame(trades, "trade")
            ),
            30,
        )
    assert tick["e"] == "24hrTicker" and tick["s"] == "BTCUSDT" and Decimal(tick["c"]) > 0
    assert best["s"] == "BTCUSDT" and Decimal(best["b"]) < Decimal(best["a"]) and best["u"] > 0
    assert trade["e"] == "trade" and trade["s"] == "BTCUSDT" and Decimal(trade["p"]) > 0 and trade["t"] > 0


async def test_an_unknown_symbol_stream_is_closed_with_1008(gateway: aiohttp.ClientSession, read_token: str) -> None:
    async with gateway.ws_connect("/ws/trades/NOPEUSDT", headers=bearer(read_token), timeout=WS_TIMEOUT) as ws:
        message = await ws.receive(timeout=15)
    assert message.type is aiohttp.WSMsgType.CLOSE and message.data == 1008, message


async def test_provider_restart_resyncs_depth_clients_and_shutdown_closes_them_with_1000(
    system: System, gateway_tokens: GatewayTokens, tmp_path: Path
) -> None:
    """A provider and gateway of this test's own (the shared ones must keep running)."""
    ports = Ports(sim=system.ports.sim, provider=free_port(), http=free_port(), mcp=free_port(), metrics=free_port())
    env = {"GATEWAY_TOKENS_FILE": str(gateway_tokens.path)}

    def process(name: str) -> ManagedProcess:
        return next(p for p in build_system(ports, tmp_path / "data", tmp_path, env).processes if p.name == name)

    provider, gateway_process = process("provider"), process("gateway_http")
    started: list[ManagedProcess] = []
    try:
        for managed in (provider, gateway_process):
            managed.start()
            started.append(managed)
            await asyncio.to_thread(managed.wait_ready, 30)
        book = ClientBook()
        kinds: list[str] = []
        async with (
            aiohttp.ClientSession(f"http://127.0.0.1:{ports.http}", timeout=TIMEOUT) as session,
            session.ws_connect(
                "/ws/depth/BTCUSDT", headers=bearer(gateway_tokens.by_scope[Scope.READ]), timeout=WS_TIMEOUT
            ) as ws,
        ):

            async def read() -> None:
                async for message in ws:
                    body = orjson.loads(message.data)
                    kinds.append(body["type"] if body["type"] != "snapshot" else f"snapshot:{body['reason']}")
                    book.on(body)

            reader = asyncio.create_task(read())
            try:
                await until(lambda: book.valid, "the first snapshot")
                provider.kill()
                await until(lambda: "resync" in kinds, "the resync notice after the provider died")
                assert not book.valid
                provider = process("provider")
                provider.start()
                started.append(provider)
                await asyncio.to_thread(provider.wait_ready, 30)
                await until(lambda: "snapshot:resync" in kinds, "a resync snapshot from the restarted provider", 30)
                diffs = book.diffs
                await until(lambda: book.diffs > diffs, "diffs continuing after the resync snapshot")
                code = await asyncio.to_thread(gateway_process.stop)  # reading goes on meanwhile
                assert code == 0
                await asyncio.wait_for(reader, 10)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            assert ws.close_code == 1000
    finally:
        for managed in reversed(started):
            await asyncio.to_thread(managed.stop)
