"""Preview-then-confirm: the confirmation book (single use, bound to a caller, expiring, bounded), the
preview's figures and text, the config switch, and both tools against an in-process provider that
counts the orders it is asked to place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import market_data_pb2 as md
from binance.provider.v1 import trading_pb2 as t
from mcp.client.client import Client
from mcp.types import CallToolResult, TextContent

from gateway_auth.tokens import Scope
from gateway_mcp.auth import AccessPolicy
from gateway_mcp.config import load_config
from gateway_mcp.confirmations import ConfirmationBook, ConfirmationRefused, Refusal
from gateway_mcp.server import build_server
from gateway_mcp.tools_market import symbol_rules
from gateway_mcp.tools_trading import (
    CONFIRM_TOOL,
    CommissionRatesView,
    OrderKind,
    OrderParams,
    OrderSide,
    TimeInForce,
    checks_passed,
    fees_estimate,
    order_preview,
    render_preview,
)
from service_runtime.config import ConfigError

TTL = 1000


def refusal(book: ConfirmationBook[str], cid: str, caller: str, now: int) -> Refusal:
    with pytest.raises(ConfirmationRefused) as refused:
        book.redeem(cid, caller, now)
    return refused.value.reason


def test_a_confirmation_redeems_its_order_once() -> None:
    book = ConfirmationBook[str](TTL)
    issued = book.issue("alice", "order-1", 0)
    assert issued.expires_at_ms == TTL and issued.confirmation_id.startswith("cf-")
    assert book.redeem(issued.confirmation_id, "alice", 10) == "order-1"
    assert refusal(book, issued.confirmation_id, "alice", 11) is Refusal.USED
    assert len(book) == 0


def test_another_caller_is_refused_and_does_not_use_up_the_confirmation() -> None:
    book = ConfirmationBook[str](TTL)
    cid = book.issue("alice", "order-1", 0).confirmation_id
    assert refusal(book, cid, "mallory", 1) is Refusal.FOREIGN
    assert book.redeem(cid, "alice", 2) == "order-1"


def test_an_expired_confirmation_is_refused_as_expired_then_forgotten() -> None:
    book = ConfirmationBook[str](TTL)
    cid = book.issue("alice", "order-1", 0).confirmation_id
    assert refusal(book, cid, "alice", TTL) is Refusal.EXPIRED
    assert refusal(book, cid, "alice", TTL + 1) is Refusal.EXPIRED  # still explained for a while
    assert refusal(book, cid, "alice", 3 * TTL) is Refusal.UNKNOWN
    assert refusal(book, "cf-made-up", "alice", 0) is Refusal.UNKNOWN


def test_pending_confirmations_are_bounded_overall_and_per_caller() -> None:
    book = ConfirmationBook[str](TTL, max_pending=5, max_per_caller=2)
    first = book.issue("alice", "a1", 0).confirmation_id
    second = book.issue("alice", "a2", 0).confirmation_id
    book.issue("alice", "a3", 0)  # alice's oldest gives way
    assert refusal(book, first, "alice", 1) is Refusal.EXPIRED
    others = [book.issue(f"caller-{i}", "x", 0).confirmation_id for i in range(4)]
    assert len(book) == 5  # the oldest overall (alice's a2) gave way to the fourth
    assert refusal(book, second, "alice", 1) is Refusal.EXPIRED
    assert [book.redeem(cid, f"caller-{i}", 1) for i, cid in enumerate(others)] == ["x"] * 4
    with pytest.raises(ValueError, match="must be positive"):
        ConfirmationBook[str](0)


INFO = md.SymbolInfo(
    symbol="BTCUSDT",
    status=md.SYMBOL_STATUS_TRADING,
    base_asset="BTC",
    quote_asset="USDT",
    order_types=[c.ORDER_TYPE_LIMIT, c.ORDER_TYPE_MARKET],
    is_spot_trading_allowed=True,
    filters=[
        md.SymbolFilter(price=md.PriceFilter(min_price="0.01", max_price="1000000", tick_size="0.01")),
        md.SymbolFilter(lot_size=md.LotSizeFilter(min_quantity="0.00001", max_quantity="9000", step_size="0.00001")),
        md.SymbolFilter(notional=md.NotionalFilter(min_notional="5", max_notional="9000000")),
    ],
)
LIMIT = OrderParams.of("btcusdt", OrderSide.BUY, OrderKind.LIMIT, "e2e-1", quantity="0.001", price="60000.00")


def test_order_params_resolve_every_default() -> None:
    assert LIMIT.symbol == "BTCUSDT" and LIMIT.time_in_force is TimeInForce.GTC
    market = OrderParams.of("BTCUSDT", OrderSide.SELL, OrderKind.MARKET, None, quantity="1")
    assert market.time_in_force is None and market.client_order_id.startswith("mcp-")
    assert LIMIT.spec().time_in_force == c.TIME_IN_FORCE_GTC and LIMIT.spec().client_order_id == "e2e-1"


def test_fees_use_the_taker_rate_except_for_limit_maker() -> None:
    rates = CommissionRatesView(maker="0.0008", taker="0.001")
    assert fees_estimate("60", rates, OrderKind.LIMIT) == "0.06"
    assert fees_estimate("60", rates, OrderKind.LIMIT_MAKER) == "0.048"
    assert fees_estimate(None, rates, OrderKind.LIMIT) is None and fees_estimate("60", None, OrderKind.LIMIT) is None


def test_the_preview_shows_the_order_money_checks_and_how_to_confirm() -> None:
    rules = symbol_rules(INFO, 0, 5)
    checks = checks_passed(rules, LIMIT)
    assert any(x.startswith("PRICE_FILTER: price 60000.00 on tick 0.01") for x in checks)
    assert any(x.startswith("LOT_SIZE: quantity 0.001 on step 0.00001") for x in checks)
    assert "NOTIONAL within 5..9000000" in checks
    tested = t.TestOrderResponse(
        valid=True, notional="60.00000", standard_commission=t.CommissionRates(maker="0.001", taker="0.001")
    )
    preview = order_preview(LIMIT, tested, rules, "65000.10", "cf-x", 61_000, 1_000)
    assert (preview.notional, preview.fees_estimate, preview.expires_in_s) == ("60.00000", "0.06", 60)
    assert preview.order.client_order_id == "e2e-1" and preview.order.time_in_force == "GTC"
    text = render_preview(preview)
    assert text.startswith("PREVIEW, nothing placed yet: BUY LIMIT 0.001 BTCUSDT @ 60000.00 GTC")
    assert "confirm_order with confirmation_id='cf-x' within 60 s" in text
    assert text.splitlines()[-1].startswith("(source EXCHANGE_REST")


def test_the_switch_and_ttl_come_from_the_environment() -> None:
    base = {"GATEWAY_MCP_AUTH": "off"}
    assert load_config([], base).order_preview_ttl_ms == 120_000
    assert load_config([], {**base, "GATEWAY_MCP_CONFIRM_TTL": "5"}).order_preview_ttl_ms == 5000
    assert load_config([], {**base, "GATEWAY_MCP_ORDER_PREVIEW": "off"}).order_preview_ttl_ms is None
    with pytest.raises(ConfigError, match="GATEWAY_MCP_CONFIRM_TTL"):
        load_config([], {**base, "GATEWAY_MCP_CONFIRM_TTL": "0"})


# --- the tools against an in-process provider -------------------------------------------------


class Provider:
    def __init__(self) -> None:
        self.placed: list[t.OrderSpec] = []
        self.tested: list[t.TestOrderRequest] = []

    async def GetTradingStatus(self, request: t.GetTradingStatusRequest, context: Any) -> t.GetTradingStatusResponse:
        return t.GetTradingStatusResponse(trading_enabled=True)

    async def TestOrder(self, request: t.TestOrderRequest, context: Any) -> t.TestOrderResponse:
        self.tested.append(request)
        return t.TestOrderResponse(
            valid=True, notional="60", standard_commission=t.CommissionRates(maker="0.001", taker="0.001")
        )

    async def PlaceOrder(self, request: t.PlaceOrderRequest, context: Any) -> t.PlaceOrderResponse:
        self.placed.append(request.order)
        o = request.order
        order = t.Order(
            symbol=o.symbol,
            order_id=len(self.placed),
            client_order_id=o.client_order_id,
            side=o.side,
            type=o.type,
            status=c.ORDER_STATUS_NEW,
            price=o.price,
            original_quantity=o.quantity,
            executed_quantity="0",
            cumulative_quote_quantity="0",
        )
        return t.PlaceOrderResponse(order=order)

    async def GetExchangeInfo(self, request: md.GetExchangeInfoRequest, context: Any) -> md.GetExchangeInfoResponse:
        return md.GetExchangeInfoResponse(symbols=[INFO], server_time_ms=1)

    async def GetTickerPrice(self, request: md.GetTickerPriceRequest, context: Any) -> md.GetTickerPriceResponse:
        return md.GetTickerPriceResponse(prices=[md.TickerPrice(symbol="BTCUSDT", price="65000.10")])


def _handlers(service: str, methods: dict[str, tuple[Any, Any, Any]]) -> grpc.GenericRpcHandler[Any, Any]:
    return grpc.method_handlers_generic_handler(
        service,
        {
            name: grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=req.FromString, response_serializer=resp.SerializeToString
            )
            for name, (fn, req, resp) in methods.items()
        },
    )


@pytest.fixture
async def provider() -> AsyncIterator[tuple[Provider, grpc.aio.Channel]]:
    p = Provider()
    server = grpc.aio.server()
    trading = {
        "GetTradingStatus": (p.GetTradingStatus, t.GetTradingStatusRequest, t.GetTradingStatusResponse),
        "TestOrder": (p.TestOrder, t.TestOrderRequest, t.TestOrderResponse),
        "PlaceOrder": (p.PlaceOrder, t.PlaceOrderRequest, t.PlaceOrderResponse),
    }
    market = {
        "GetExchangeInfo": (p.GetExchangeInfo, md.GetExchangeInfoRequest, md.GetExchangeInfoResponse),
        "GetTickerPrice": (p.GetTickerPrice, md.GetTickerPriceRequest, md.GetTickerPriceResponse),
    }
    server.add_generic_rpc_handlers(
        (
            _handlers("binance.provider.v1.Trading", trading),
            _handlers("binance.provider.v1.MarketData", market),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield p, channel
    finally:
        await server.stop(None)


TRADER = AccessPolicy(tokens=None, anonymous_scopes=frozenset(Scope))
ORDER = {"symbol": "btcusdt", "side": "BUY", "type": "LIMIT", "quantity": "0.001", "price": "60000.00"}


def text_of(result: CallToolResult) -> str:
    assert isinstance(result.content[0], TextContent)
    return result.content[0].text


async def test_preview_places_nothing_and_confirming_twice_places_once(
    provider: tuple[Provider, grpc.aio.Channel],
) -> None:
    p, channel = provider
    async with Client(build_server(channel, TRADER)) as client:
        tools = {x.name: x for x in (await client.list_tools()).tools}
        assert CONFIRM_TOOL in tools and "confirm_order" in (tools["place_order"].description or "")
        preview = await client.call_tool("place_order", ORDER)
        assert not preview.is_error, text_of(preview)
        assert preview.structured_content is not None and p.placed == []
        assert p.tested[0].compute_commission_rates and p.tested[0].order.symbol == "BTCUSDT"
        cid = preview.structured_content["confirmation_id"]
        client_id = preview.structured_content["order"]["client_order_id"]
        first = await client.call_tool(CONFIRM_TOOL, {"confirmation_id": cid})
        second = await client.call_tool(CONFIRM_TOOL, {"confirmation_id": cid})
        made_up = await client.call_tool(CONFIRM_TOOL, {"confirmation_id": "cf-nothing"})
    assert not first.is_error and first.structured_content is not None
    assert first.structured_content["order"]["client_order_id"] == client_id
    assert [(s.symbol, s.price, s.quantity, s.client_order_id) for s in p.placed] == [
        ("BTCUSDT", "60000.00", "0.001", client_id)
    ]
    assert second.is_error and "already used" in text_of(second) and "get_order" in text_of(second)
    assert made_up.is_error and "Unknown confirmation_id" in text_of(made_up)


async def test_with_previews_off_place_order_places_at_once(provider: tuple[Provider, grpc.aio.Channel]) -> None:
    p, channel = provider
    async with Client(build_server(channel, TRADER, order_preview_ttl_ms=None)) as client:
        tools = {x.name: x for x in (await client.list_tools()).tools}
        placed = await client.call_tool("place_order", ORDER)
    assert CONFIRM_TOOL not in tools
    schema = tools["place_order"].output_schema
    assert schema is not None and "fills" in schema["properties"]
    assert not placed.is_error and len(p.placed) == 1 and p.tested == []
