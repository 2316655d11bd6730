"""The soak's order flow: LIMIT BUYs far below the market (they never fill), each cancelled at once,
placed in turn through gateway_http's REST routes, gateway_mcp's preview → confirm tools and the
provider's gRPC Trading service, as the three kinds of client do.

Every order has a client order id of its own, so the venue's order list (read at the end) says
whether any was placed twice or left open, whatever a route answered. A route's answer is only
sorted into confirmed, refused (definitely not placed) or uncertain (it may exist).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp
import grpc
import orjson
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as t
from binance.provider.v1 import trading_pb2_grpc as t_grpc

QUANTITY = "0.001"
CALL_TIMEOUT_S = 15.0
MCP_PROTOCOL = "2025-06-18"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class Placed(Enum):
    CONFIRMED = "confirmed"  # the route answered with the venue's order
    UNCERTAIN = "uncertain"  # an error or an unknown outcome: the order may or may not be on the venue
    REFUSED = "refused"  # a definite refusal: nothing was placed


@dataclass
class SentOrder:
    client_order_id: str
    symbol: str
    route: str
    sent_at: float  # monotonic time the placement was sent
    placed: Placed = Placed.UNCERTAIN
    placed_at: float | None = None  # monotonic time a placement was confirmed
    settled_at: float | None = None  # monotonic time a cancel was confirmed (the order is then done)


class OrderRoute(Protocol):
    name: str

    async def place(self, symbol: str, price: str, client_order_id: str) -> Placed: ...

    async def cancel(self, symbol: str, client_order_id: str) -> bool:
        """True when the order is now known to be cancelled."""
        ...


class GrpcRoute:
    """The provider's Trading service, as a bot in the same trust zone calls it."""

    name = "grpc"
    # Codes that say the order was not placed.
    DEFINITE = frozenset(
        {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED}
    )

    def __init__(self, provider_addr: str, errors: Counter[str]) -> None:
        self.addr, self.errors = provider_addr, errors

    async def place(self, symbol: str, price: str, client_order_id: str) -> Placed:
        spec = t.OrderSpec(
            symbol=symbol,
            side=c.SIDE_BUY,
            type=c.ORDER_TYPE_LIMIT,
            time_in_force=c.TIME_IN_FORCE_GTC,
            quantity=QUANTITY,
            price=price,
            client_order_id=client_order_id,
        )
        async with grpc.aio.insecure_channel(self.addr) as channel:
            try:
                placed = await t_grpc.TradingStub(channel).PlaceOrder(
                    t.PlaceOrderRequest(order=spec), timeout=CALL_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as error:
                self.errors[f"grpc {error.code().name}"] += 1
                return Placed.REFUSED if error.code() in self.DEFINITE else Placed.UNCERTAIN
        return Placed.UNCERTAIN if placed.order.status == c.ORDER_STATUS_UNKNOWN else Placed.CONFIRMED

    async def cancel(self, symbol: str, client_order_id: str) -> bool:
        async with grpc.aio.insecure_channel(self.addr) as channel:
            try:
                await t_grpc.TradingStub(channel).CancelOrder(
                    t.CancelOrderRequest(symbol=symbol, client_order_id=client_order_id), timeout=CALL_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as error:
                self.errors[f"grpc cancel {error.code().name}"] += 1
                return False
        return True


class HttpRoute:
    """gateway_http's POST and DELETE /api/v1/order with a trade-scoped token, a form body as Binance's."""

    name = "http"

    def __init__(self, gateway: aiohttp.ClientSession, token: str, errors: Counter[str]) -> None:
        self.http, self.headers, self.errors = gateway, {"Authorization": f"Bearer {token}"}, errors

    async def place(self, symbol: str, price: str, client_order_id: str) -> Placed:
        form = {
            "symbol": symbol,
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": QUANTITY,
            "price": price,
            "newClientOrderId": client_order_id,
        }
        try:
            async with self.http.post("/api/v1/order", data=form, headers=self.headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            self.errors[f"http {type(error).__name__}"] += 1
            return Placed.UNCERTAIN
        if status == 200:
            return Placed.CONFIRMED
        self.errors[f"http {status}"] += 1
        # 202: the outcome is not known yet; 5xx: it may have been sent. 4xx refusals placed nothing.
        return Placed.REFUSED if 400 <= status < 500 else Placed.UNCERTAIN

    async def cancel(self, symbol: str, client_order_id: str) -> bool:
        params = {"symbol": symbol, "origClientOrderId": client_order_id}
        try:
            async with self.http.delete("/api/v1/order", params=params, headers=self.headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            self.errors[f"http cancel {type(error).__name__}"] += 1
            return False
        if status != 200:
            self.errors[f"http cancel {status}"] += 1
        return status == 200


def rpc_result(content_type: str, body: bytes) -> dict[str, Any] | None:
    """The JSON-RPC `result` of a Streamable HTTP answer (plain JSON or an SSE stream); None if absent."""
    messages: list[bytes] = [body]
    if content_type.startswith("text/event-stream"):
        messages = [line[5:].strip() for line in body.splitlines() if line.startswith(b"data:")]
    for raw in messages:
        with contextlib.suppress(orjson.JSONDecodeError):
            message = orjson.loads(raw)
            result = message.get("result") if isinstance(message, dict) else None
            if isinstance(result, dict):
                return result
    return None


class McpRoute:
    """gateway_mcp's place_order (a preview) then confirm_order, and cancel_order, as an assistant calls them."""

    name = "mcp"

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str, errors: Counter[str]) -> None:
        self.http, self.url, self.token, self.errors = http, url, token, errors
        self.session: dict[str, str] | None = None
        self.next_id = 1

    async def _open(self) -> dict[str, str]:
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {self.token}"}
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": MCP_PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "soak-orders", "version": "1"},
            },
        }
        async with self.http.post(self.url, json=init, headers=headers) as response:
            await response.read()
            response.raise_for_status()
            session = {**headers, "Mcp-Session-Id": response.headers["Mcp-Session-Id"]}
        session["MCP-Protocol-Version"] = MCP_PROTOCOL
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with self.http.post(self.url, json=note, headers=session) as response:
            await response.read()
        return session

    async def _call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
        """The tool's result, or None when the call did not complete (HTTP or session failure)."""
        try:
            if self.session is None:
                self.session = await self._open()
            self.next_id += 1
            call = {
                "jsonrpc": "2.0",
                "id": self.next_id,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            }
            async with self.http.post(self.url, json=call, headers=self.session) as response:
                body = await response.read()
                if response.status != 200:
                    self.errors[f"mcp {tool} {response.status}"] += 1
                    self.session = None  # e.g. 404 after a restart: the session is gone
                    return None
                result = rpc_result(response.headers.get("Content-Type", ""), body)
        except (aiohttp.ClientError, TimeoutError, KeyError) as error:
            self.errors[f"mcp {tool} {type(error).__name__}"] += 1
            self.session = None
            return None
        if result is None:
            self.errors[f"mcp {tool} no result"] += 1
        elif result.get("isError"):
            self.errors[f"mcp {tool} tool error"] += 1
        return result

    async def place(self, symbol: str, price: str, client_order_id: str) -> Placed:
        preview = await self._call(
            "place_order",
            {
                "symbol": symbol,
                "side": "BUY",
                "type": "LIMIT",
                "quantity": QUANTITY,
                "price": price,
                "time_in_force": "GTC",
                "client_order_id": client_order_id,
            },
        )
        # A preview places nothing, whatever happened to it.
        confirmation = (preview or {}).get("structuredContent", {}).get("confirmation_id")
        if preview is None or preview.get("isError") or not confirmation:
            return Placed.REFUSED
        placed = await self._call("confirm_order", {"confirmation_id": confirmation})
        if placed is None or placed.get("isError"):
            return Placed.UNCERTAIN  # a failed confirm may have sent the order
        outcome = placed.get("structuredContent", {})
        return Placed.UNCERTAIN if outcome.get("outcome_unknown", True) else Placed.CONFIRMED

    async def cancel(self, symbol: str, client_order_id: str) -> bool:
        result = await self._call("cancel_order", {"symbol": symbol, "client_order_id": client_order_id})
        return result is not None and not result.get("isError")


class OrderLoop:
    """Places an order through each route in turn and cancels it through the same route."""

    def __init__(self, routes: list[OrderRoute], sim: aiohttp.ClientSession, symbol: str, prefix: str) -> None:
        if not routes:
            raise ValueError("at least one route is needed")
        self.routes, self.sim, self.symbol, self.prefix = routes, sim, symbol, prefix
        self.sent: list[SentOrder] = []

    async def _far_price(self) -> str:
        async with self.sim.get("/api/v3/ticker/bookTicker", params={"symbol": self.symbol}) as response:
            bid = Decimal((await response.json())["bidPrice"])
        return str((bid / 2).quantize(Decimal("0.01")))

    def route_of(self, order: SentOrder) -> OrderRoute:
        return next(r for r in self.routes if r.name == order.route)

    async def run(self, pause: float) -> None:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                await self.cycle(self.routes[len(self.sent) % len(self.routes)], await self._far_price())
            await asyncio.sleep(pause)

    async def cycle(self, route: OrderRoute, price: str) -> None:
        order = SentOrder(f"{self.prefix}{len(self.sent)}", self.symbol, route.name, time.monotonic())
        self.sent.append(order)
        order.placed = await route.place(order.symbol, price, order.client_order_id)
        if order.placed is Placed.REFUSED:
            return
        if order.placed is Placed.CONFIRMED:
            order.placed_at = time.monotonic()
        await self.cancel(order)

    async def cancel(self, order: SentOrder) -> None:
        if await self.route_of(order).cancel(order.symbol, order.client_order_id):
            order.settled_at = time.monotonic()

    async def clean_up(self, deadline_s: float) -> None:
        """Cancel every order whose cancel was not confirmed, through its own route."""
        deadline = time.monotonic() + deadline_s
        for order in self.sent:
            if order.settled_at is None and order.placed is not Placed.REFUSED and time.monotonic() < deadline:
                await self.cancel(order)


# --- the venue's own view (the simulator's signed REST, as the auditor reads it) --------------------


async def venue_time_ms(sim: aiohttp.ClientSession) -> int:
    """The venue's clock: the soak shifts it, so signed reads are stamped with it, not with ours."""
    async with sim.get("/api/v3/time") as response:
        return int((await response.json())["serverTime"])


async def signed_get(sim: aiohttp.ClientSession, path: str, params: dict[str, str], api_key: str, secret: str) -> Any:
    query = urlencode({**params, "timestamp": str(await venue_time_ms(sim)), "recvWindow": "60000"})
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    async with sim.get(f"{path}?{query}&signature={signature}", headers={"X-MBX-APIKEY": api_key}) as response:
        body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}: {body}")
        return body


async def venue_orders(sim: aiohttp.ClientSession, symbol: str, api_key: str, secret: str) -> list[dict[str, Any]]:
    """Every order of the account on `symbol`, from the simulator (GET /api/v3/allOrders, paged)."""
    orders: list[dict[str, Any]] = []
    from_id = 1  # always given: without orderId, allOrders answers the most recent 1,000, not the first
    while True:
        params = {"symbol": symbol, "limit": "1000", "orderId": str(from_id)}
        page = await signed_get(sim, "/api/v3/allOrders", params, api_key, secret)
        orders += page
        if len(page) < 1000:
            return orders
        from_id = max(o["orderId"] for o in page) + 1


async def venue_balances(sim: aiohttp.ClientSession, api_key: str, secret: str) -> dict[str, tuple[Decimal, Decimal]]:
    """asset -> (free, locked) of the account, from the simulator (GET /api/v3/account)."""
    account = await signed_get(sim, "/api/v3/account", {}, api_key, secret)
    return {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in account["balances"]}
