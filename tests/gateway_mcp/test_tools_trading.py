"""Trading tools: order specs, results and their text, errors a model can act on, and who gets to see
the tools (trade scope AND the provider reporting trading enabled), against an in-process Trading
service that answers GetTradingStatus only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as t
from mcp.client.client import Client
from mcp.types import TextContent

from gateway_auth.tokens import Scope
from gateway_mcp.auth import AccessPolicy
from gateway_mcp.render import explain_private_error
from gateway_mcp.server import build_server
from gateway_mcp.tools_trading import (
    CLIENT_ID_PREFIX,
    TRADING_TOOLS,
    OrderKind,
    OrderSide,
    TimeInForce,
    average_fill_price,
    new_client_order_id,
    order_reference,
    order_spec,
    placed_order,
    render_placed,
)
from provider_client.errors import FieldViolation, ProviderCallError


def test_order_spec_maps_enums_and_defaults_gtc_only_where_required() -> None:
    limit = order_spec("BTCUSDT", OrderSide.BUY, OrderKind.LIMIT, "id-1", quantity="0.001", price="100.01")
    assert (limit.side, limit.type, limit.time_in_force) == (c.SIDE_BUY, c.ORDER_TYPE_LIMIT, c.TIME_IN_FORCE_GTC)
    assert (limit.price, limit.quantity, limit.client_order_id, limit.quote_order_quantity) == (
        "100.01",
        "0.001",
        "id-1",
        "",
    )
    market = order_spec("BTCUSDT", OrderSide.SELL, OrderKind.MARKET, "id-2", quote_order_quantity="50")
    assert market.time_in_force == c.TIME_IN_FORCE_UNSPECIFIED and market.quote_order_quantity == "50"
    ioc = order_spec(
        "BTCUSDT", OrderSide.BUY, OrderKind.LIMIT, "id-3", price="1", quantity="1", time_in_force=TimeInForce.IOC
    )
    assert ioc.time_in_force == c.TIME_IN_FORCE_IOC


def test_generated_client_ids_are_unique_and_valid_for_the_exchange() -> None:
    ids = {new_client_order_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith(CLIENT_ID_PREFIX) and len(i) <= 36 for i in ids)


def test_average_fill_price_is_volume_weighted_and_exact() -> None:
    fills = [t.Fill(price="100.00", quantity="1"), t.Fill(price="101.00", quantity="3")]
    assert average_fill_price(fills) == "100.75"  # (100 + 303) / 4
    assert average_fill_price([]) is None


def test_an_unknown_outcome_says_to_query_by_client_order_id_not_to_resend() -> None:
    response = t.PlaceOrderResponse(
        order=t.Order(
            symbol="BTCUSDT",
            client_order_id="mcp-abc",
            side=c.SIDE_BUY,
            type=c.ORDER_TYPE_MARKET,
            status=c.ORDER_STATUS_UNKNOWN,
            original_quantity="0.001",
        ),
        reconciled=True,
    )
    result = placed_order(response, 5)
    assert result.outcome_unknown and result.order.order_id == 0
    text = render_placed(result)
    assert "Outcome UNKNOWN" in text and "Do NOT place it again" in text and "client_order_id='mcp-abc'" in text


def test_order_reference_wants_exactly_one_id() -> None:
    assert order_reference(5, None) == (5, "")
    assert order_reference(None, "x") == (0, "x")
    for ids in ((None, None), (5, "x")):
        with pytest.raises(Exception, match="exactly one of 'order_id' or 'client_order_id'"):
            order_reference(*ids)


def test_a_filter_violation_names_the_field_tick_size_and_nearest_valid_price() -> None:
    description = "price 100.013 is not a multiple of tickSize 0.01; nearest valid: 100.01 (PRICE_FILTER)"
    error = ProviderCallError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "ERROR_REASON_FILTER_VIOLATION",
        description,
        field_violations=(FieldViolation("price", description),),
    )
    text = explain_private_error(error, symbol="BTCUSDT", client_order_id="mcp-1")
    assert text.startswith("Order not sent") and "parameter 'price'" in text
    assert "tickSize 0.01" in text and "nearest valid: 100.01" in text and "get_symbol_rules" in text


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (grpc.StatusCode.UNAVAILABLE, "ERROR_REASON_EXECUTION_UNKNOWN"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "ERROR_REASON_UNSPECIFIED"),
        (grpc.StatusCode.UNAVAILABLE, "ERROR_REASON_EXCHANGE_UNAVAILABLE"),
    ],
)
def test_a_lost_answer_on_placing_points_to_get_order(code: grpc.StatusCode, reason: str) -> None:
    text = explain_private_error(ProviderCallError(code, reason, "timed out"), client_order_id="mcp-9")
    assert "may exist" in text and "get_order with client_order_id='mcp-9'" in text


def test_other_refusals_say_what_to_do() -> None:
    disabled = ProviderCallError(
        grpc.StatusCode.FAILED_PRECONDITION, "ERROR_REASON_TRADING_DISABLED", "kill switch engaged"
    )
    assert "kill switch engaged" in explain_private_error(disabled) and "do not retry" in explain_private_error(
        disabled
    )
    missing = ProviderCallError(
        grpc.StatusCode.NOT_FOUND,
        "ERROR_REASON_EXCHANGE_REJECTED",
        "gone",
        binance_code=-2013,
        binance_msg="Order does not exist.",
    )
    assert explain_private_error(missing, symbol="BTCUSDT").startswith("No such order on BTCUSDT (Binance -2013")
    # Not order-specific: the market wording
    unknown = ProviderCallError(grpc.StatusCode.INVALID_ARGUMENT, "ERROR_REASON_UNKNOWN_SYMBOL", "unknown")
    assert explain_private_error(unknown, symbol="NOPE").startswith("Unknown symbol 'NOPE'")


# --- who sees the trading tools -------------------------------------------------------------------


class StatusOnly:
    def __init__(self) -> None:
        self.enabled = True
        self.calls = 0

    async def GetTradingStatus(self, request: t.GetTradingStatusRequest, context: Any) -> t.GetTradingStatusResponse:
        self.calls += 1
        return t.GetTradingStatusResponse(trading_enabled=self.enabled)


@pytest.fixture
async def provider() -> AsyncIterator[tuple[StatusOnly, grpc.aio.Channel]]:
    servicer = StatusOnly()
    server = grpc.aio.server()
    status = grpc.unary_unary_rpc_method_handler(
        servicer.GetTradingStatus,
        request_deserializer=t.GetTradingStatusRequest.FromString,
        response_serializer=t.GetTradingStatusResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("binance.provider.v1.Trading", {"GetTradingStatus": status}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield servicer, channel
    finally:
        await server.stop(None)


async def listed(channel: grpc.aio.Channel, scopes: frozenset[Scope]) -> dict[str, Any]:
    async with Client(build_server(channel, AccessPolicy(tokens=None, anonymous_scopes=scopes))) as client:
        return {tool.name: tool for tool in (await client.list_tools()).tools}


async def test_trading_tools_need_the_trade_scope_and_trading_on(provider: tuple[StatusOnly, grpc.aio.Channel]) -> None:
    servicer, channel = provider
    everything = await listed(channel, frozenset(Scope))
    assert set(TRADING_TOOLS) <= set(everything)
    assert len(everything) <= 20  # the budget for a model's context
    servicer.enabled = False
    assert set(TRADING_TOOLS).isdisjoint(await listed(channel, frozenset(Scope)))
    servicer.enabled, servicer.calls = True, 0
    read_account = await listed(channel, frozenset({Scope.READ, Scope.ACCOUNT}))
    assert set(TRADING_TOOLS).isdisjoint(read_account) and {"get_balances", "get_analytics"} <= set(read_account)
    assert servicer.calls == 0  # not asked about trading for a caller who may not trade


async def test_annotations_of_the_trading_tools(provider: tuple[StatusOnly, grpc.aio.Channel]) -> None:
    _, channel = provider
    tools = await listed(channel, frozenset(Scope))
    for name in ("place_order", "cancel_order", "cancel_all_orders"):
        a = tools[name].annotations
        assert a is not None and a.destructive_hint and not a.read_only_hint
    assert tools["place_order"].annotations.idempotent_hint is False
    assert tools["cancel_order"].annotations.idempotent_hint is True
    assert tools["get_order"].annotations.read_only_hint is True
    for name, tool in tools.items():
        assert tool.output_schema is not None, name
        assert "freshness" in tool.output_schema["properties"] or name == "service_status", name


async def test_a_read_only_caller_is_refused_a_trading_tool(provider: tuple[StatusOnly, grpc.aio.Channel]) -> None:
    _, channel = provider
    async with Client(build_server(channel, AccessPolicy.without_tokens())) as client:
        refused = await client.call_tool("cancel_all_orders", {"symbol": "BTCUSDT"})
    assert refused.is_error and isinstance(refused.content[0], TextContent)
    assert "needs the 'trade' scope" in refused.content[0].text
