"""The soak's load: WebSocket clients through gateway_http, REST and MCP pollers, and the order loop.

Every client reconnects after a break (the gateway and the provider are restarted mid-run) and
counts what it saw; none of them raises on a protocol violation, they count it for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any
from urllib.parse import urlencode

import aiohttp
import grpc
import orjson
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as t
from binance.provider.v1 import trading_pb2_grpc as t_grpc

from soak.auditor import AuditedBook

WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=30, ws_close=5)
RECONNECT_MAX_S = 2.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class DepthClient(AuditedBook):
    """A /ws/depth client: rebuilds the book, checks U == previous u + 1 and the resync protocol.

    A slow client sleeps after every frame, so the gateway's queue for it overflows and it must be
    told {"type":"lagged"} and given a fresh snapshot."""

    def __init__(self, symbol: str, token: str, *, audited: bool, slow_s: float = 0.0) -> None:
        super().__init__(symbol)
        self.book.keep_history = audited
        self.token = token
        self.slow_s = slow_s
        self.frames = 0
        self.connects = 0
        self.notices = 0  # resync and lagged frames
        self.lagged = 0
        self.snapshots_not_in_sync = 0
        self.diffs_while_void = 0  # after a notice and before its snapshot: a protocol violation

    async def run(self, http: aiohttp.ClientSession) -> None:
        backoff = 0.1
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.ws_connect(
                    f"/ws/depth/{self.symbol}",
                    params={"limit": "1000" if self.book.keep_history else "100"},
                    headers=bearer(self.token),
                    timeout=WS_TIMEOUT,
                ) as ws:
                    self.connects += 1
                    backoff = 0.1
                    async for message in ws:
                        if message.type is aiohttp.WSMsgType.TEXT:
                            self.on(orjson.loads(message.data))
                            if self.slow_s:
                                await asyncio.sleep(self.slow_s)
            self.mark_void()  # the connection ended: the client knows its copy is void
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    def on(self, frame: dict[str, Any]) -> None:
        self.frames += 1
        kind = frame.get("type")
        if kind == "snapshot":
            if frame.get("inSync") is True:
                self.book.snapshot(frame["bids"], frame["asks"], frame["lastUpdateId"])
            else:
                self.snapshots_not_in_sync += 1
                self.mark_void()
        elif kind == "diff":
            if not self.book.valid:
                self.diffs_while_void += 1
            elif not self.book.diff(frame["U"], frame["u"], frame["b"], frame["a"]):
                self.continuity_breaks += 1  # served as continuous, it was not: silently wrong
        elif kind in ("resync", "lagged"):
            self.notices += 1
            self.lagged += kind == "lagged"
            self.mark_void()
        self.progress.set()


class TickerClient:
    """A /ws/ticker or /ws/bookTicker client: counts frames, gap notices and reconnects."""

    def __init__(self, channel: str, symbol: str, token: str) -> None:
        self.channel, self.symbol, self.token = channel, symbol, token
        self.frames = 0
        self.gaps = 0
        self.connects = 0

    async def run(self, http: aiohttp.ClientSession) -> None:
        backoff = 0.1
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.ws_connect(
                    f"/ws/{self.channel}/{self.symbol}", headers=bearer(self.token), timeout=WS_TIMEOUT
                ) as ws:
                    self.connects += 1
                    backoff = 0.1
                    async for message in ws:
                        if message.type is aiohttp.WSMsgType.TEXT:
                            self.frames += 1
                            self.gaps += b'"type":"gap"' in message.data.encode()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic time the request started
    latency_s: float
    ok: bool


@dataclass
class Poller:
    """Polls one REST or MCP endpoint; keeps every (time, latency, ok) sample."""

    name: str
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=200_000))

    def record(self, started: float, ok: bool) -> None:
        self.samples.append(Sample(started, time.monotonic() - started, ok))


async def rest_poll(poller: Poller, http: aiohttp.ClientSession, token: str, symbols: list[str], pause: float) -> None:
    """GET /api/v1/depth and /api/v1/ticker/price through the gateway, round-robin over symbols."""
    n = 0
    while True:
        symbol = symbols[n % len(symbols)]
        path, params = (
            ("/api/v1/depth", {"symbol": symbol, "limit": "5"})
            if n % 2 == 0
            else ("/api/v1/ticker/price", {"symbol": symbol})
        )
        n += 1
        started = time.monotonic()
        ok = False
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(path, params=params, headers=bearer(token)) as response:
                await response.read()
                ok = response.status == 200
        poller.record(started, ok)
        await asyncio.sleep(pause)


MCP_ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MCP_PROTOCOL = "2025-06-18"


async def _mcp_session(http: aiohttp.ClientSession, url: str, token: str) -> dict[str, str]:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": MCP_PROTOCOL, "capabilities": {}, "clientInfo": {"name": "soak", "version": "1"}},
    }
    headers = {**MCP_ACCEPT, **bearer(token)}
    async with http.post(url, json=init, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise aiohttp.ClientResponseError(response.request_info, (), status=response.status)
        session = {
            **headers,
            "Mcp-Session-Id": response.headers["Mcp-Session-Id"],
            "MCP-Protocol-Version": MCP_PROTOCOL,
        }
    async with http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session) as r:
        await r.read()
    return session


async def mcp_poll(poller: Poller, http: aiohttp.ClientSession, url: str, token: str, symbols: list[str]) -> None:
    """tools/call get_order_book_summary over one MCP session, reopened when it fails."""
    session: dict[str, str] | None = None
    n = 0
    while True:
        started = time.monotonic()
        ok = False
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, KeyError):
            if session is None:
                session = await _mcp_session(http, url, token)
            call = {
                "jsonrpc": "2.0",
                "id": n + 2,
                "method": "tools/call",
                "params": {"name": "get_order_book_summary", "arguments": {"symbol": symbols[n % len(symbols)]}},
            }
            async with http.post(url, json=call, headers=session) as response:
                body = await response.read()
                ok = response.status == 200 and b'"result"' in body and b'"isError":true' not in body
                if response.status != 200:
                    session = None
        n += 1
        poller.record(started, ok)
        await asyncio.sleep(0.5)


# --- orders -----------------------------------------------------------------------------------------


class Placed(Enum):
    CONFIRMED = "confirmed"  # the provider answered with the venue's order
    UNCERTAIN = "uncertain"  # an error: the order may or may not be on the venue
    REFUSED = "refused"  # a definite refusal (INVALID_ARGUMENT, FAILED_PRECONDITION, ...)


@dataclass
class SentOrder:
    client_order_id: str
    symbol: str
    placed: Placed
    cancelled: bool = False


# Refusals that say the order was not placed.
_DEFINITE = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED}


class OrderLoop:
    """Places a small LIMIT BUY at half the bid (never fills) and cancels it, again and again, through
    the provider's Trading service. Every order has a client order id of its own."""

    def __init__(self, provider_addr: str, sim: aiohttp.ClientSession, symbol: str, prefix: str) -> None:
        self.addr, self.sim, self.symbol, self.prefix = provider_addr, sim, symbol, prefix
        self.sent: list[SentOrder] = []
        self.errors: dict[str, int] = {}

    async def _far_price(self) -> str:
        async with self.sim.get("/api/v3/ticker/bookTicker", params={"symbol": self.symbol}) as response:
            bid = Decimal((await response.json())["bidPrice"])
        return str((bid / 2).quantize(Decimal("0.01")))

    def _error(self, error: grpc.aio.AioRpcError) -> None:
        name = error.code().name
        self.errors[name] = self.errors.get(name, 0) + 1

    async def run(self, pause: float) -> None:
        while True:
            async with grpc.aio.insecure_channel(self.addr) as channel:
                stub = t_grpc.TradingStub(channel)
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    await self.cycle(stub, await self._far_price())
            await asyncio.sleep(pause)

    async def cycle(self, stub: t_grpc.TradingAsyncStub, price: str) -> None:
        cid = f"{self.prefix}{len(self.sent)}"
        spec = t.OrderSpec(
            symbol=self.symbol,
            side=c.SIDE_BUY,
            type=c.ORDER_TYPE_LIMIT,
            time_in_force=c.TIME_IN_FORCE_GTC,
            quantity="0.001",
            price=price,
            client_order_id=cid,
        )
        order = SentOrder(cid, self.symbol, Placed.UNCERTAIN)
        self.sent.append(order)
        try:
            await stub.PlaceOrder(t.PlaceOrderRequest(order=spec), timeout=15)
            order.placed = Placed.CONFIRMED
        except grpc.aio.AioRpcError as error:
            self._error(error)
            if error.code() in _DEFINITE:
                order.placed = Placed.REFUSED
                return
        await self.cancel(stub, order)

    async def cancel(self, stub: t_grpc.TradingAsyncStub, order: SentOrder) -> None:
        try:
            await stub.CancelOrder(
                t.CancelOrderRequest(symbol=order.symbol, client_order_id=order.client_order_id), timeout=15
            )
            order.cancelled = True
        except grpc.aio.AioRpcError as error:
            self._error(error)

    async def clean_up(self, deadline_s: float) -> None:
        """Cancel every order whose cancel was not confirmed (a NOT_FOUND answer settles it too)."""
        deadline = time.monotonic() + deadline_s
        async with grpc.aio.insecure_channel(self.addr) as channel:
            stub = t_grpc.TradingStub(channel)
            for order in self.sent:
                if order.cancelled or order.placed is Placed.REFUSED or time.monotonic() > deadline:
                    continue
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await stub.CancelOrder(
                        t.CancelOrderRequest(symbol=order.symbol, client_order_id=order.client_order_id), timeout=10
                    )
                    order.cancelled = True


def signed_query(params: dict[str, str], secret: str) -> str:
    query = urlencode(params)
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


async def venue_orders(sim: aiohttp.ClientSession, symbol: str, api_key: str, secret: str) -> list[dict[str, Any]]:
    """Every order of the demo account on `symbol`, from the simulator (GET /api/v3/allOrders, signed)."""
    orders: list[dict[str, Any]] = []
    from_id = 0
    while True:
        params = {"symbol": symbol, "limit": "1000", "timestamp": str(int(time.time() * 1000))}
        if from_id:
            params["orderId"] = str(from_id)
        query = signed_query(params, secret)
        async with sim.get(f"/api/v3/allOrders?{query}", headers={"X-MBX-APIKEY": api_key}) as response:
            page = await response.json()
            if response.status != 200:
                raise RuntimeError(f"allOrders answered {response.status}: {page}")
        orders += page
        if len(page) < 1000:
            return orders
        from_id = max(o["orderId"] for o in page) + 1
