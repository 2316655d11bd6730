"""The analytics and account tools over MCP against the default running system (trading off): every
answer validates against its tool's output schema and states its coverage and freshness."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs installed
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from gateway_auth.tokens import Scope
from launcher.system import System
from tests.e2e.conftest import GatewayTokens

pytestmark = pytest.mark.timeout(120)

ACCOUNT_TOOLS = {"get_balances", "get_open_orders", "get_my_trades"}
TRADING_TOOLS = {"place_order", "cancel_order", "cancel_all_orders", "get_order"}


@asynccontextmanager
async def mcp(system: System, token: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(15)) as http,
        Client(
            streamable_http_client(f"http://127.0.0.1:{system.ports.mcp}/mcp", http_client=http), mode="legacy"
        ) as c,
    ):
        yield c


def text_of(result: CallToolResult) -> str:
    assert result.content and isinstance(result.content[0], TextContent)
    return result.content[0].text


def assert_valid(schemas: dict[str, Any], name: str, result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, f"{name}: {text_of(result)}"
    content = result.structured_content
    assert content is not None
    errors = list(Draft202012Validator(schemas[name]).iter_errors(content))
    assert errors == [], f"{name}: {errors[:1]}"
    assert text_of(result).splitlines()[-1].startswith("(source ")
    return dict(content)


async def recorded(client: Client, seconds: int, timeout: float) -> dict[str, Any]:
    """Poll order flow until the provider's history of BTCUSDT covers `seconds` and holds trades."""
    deadline = time.monotonic() + timeout
    while True:
        result = await client.call_tool(
            "get_analytics", {"symbol": "BTCUSDT", "kind": "order_flow", "lookback_seconds": 60}
        )
        content = result.structured_content
        covered = content["coverage"]["covered"] if content is not None else None
        if content is not None and covered and covered["end_ms"] - covered["start_ms"] >= seconds * 1000:
            return dict(content)
        assert time.monotonic() < deadline, f"no {seconds} recorded seconds in time: {text_of(result)}"
        await asyncio.sleep(0.5)


async def test_every_analytics_kind_validates_and_states_its_coverage(
    system: System, gateway_tokens: GatewayTokens
) -> None:
    async with mcp(system, gateway_tokens.by_scope[Scope.READ]) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        schemas = {name: tool.output_schema for name, tool in tools.items()}
        flow = await recorded(client, 3, 30)
        results = {
            kind: await client.call_tool("get_analytics", {"symbol": "btcusdt", "kind": kind, "lookback_seconds": 60})
            for kind in ("order_flow", "volume_profile", "anomalies", "health", "liquidity_map")
        }
    assert ACCOUNT_TOOLS.isdisjoint(tools) and TRADING_TOOLS.isdisjoint(tools)
    assert tools["get_analytics"].annotations is not None and tools["get_analytics"].annotations.read_only_hint
    assert flow["order_flow"]["buy_count"] + flow["order_flow"]["sell_count"] == flow["coverage"]["trade_count"]
    for kind, result in results.items():
        content = assert_valid(schemas, "get_analytics", result)
        assert content["kind"] == kind and content["symbol"] == "BTCUSDT"
        assert content[kind] is not None
        others = {"order_flow", "volume_profile", "anomalies", "health", "liquidity_map"} - {kind}
        assert all(content[other] is None for other in others)
        coverage = content["coverage"]
        requested = coverage["requested"]
        assert 59_000 <= requested["end_ms"] - requested["start_ms"] <= 61_000
        assert coverage["covered"] is not None and coverage["trade_count"] > 0
        assert content["freshness"]["source"] in ("LOCAL_BOOK", "STORAGE")
        assert text_of(result).startswith(f"BTCUSDT {kind.replace('_', ' ')}; covered ")
    health = results["health"].structured_content
    assert health is not None and 0 <= health["health"]["score"] <= 100 and health["health"]["components"]


async def test_analytics_errors_a_model_can_correct(system: System, gateway_tokens: GatewayTokens) -> None:
    async with mcp(system, gateway_tokens.by_scope[Scope.READ]) as client:
        unknown = await client.call_tool("get_analytics", {"symbol": "NOPEUSDT", "kind": "health"})
        bad_kind = await client.call_tool("get_analytics", {"symbol": "BTCUSDT", "kind": "vibes"})
        too_long = await client.call_tool(
            "get_analytics", {"symbol": "BTCUSDT", "kind": "health", "lookback_seconds": 10**7}
        )
        backwards = await client.call_tool(
            "get_analytics", {"symbol": "BTCUSDT", "kind": "health", "start_time_ms": 2_000, "end_time_ms": 1_000}
        )
    assert unknown.is_error and "Unknown symbol 'NOPEUSDT'" in text_of(unknown)
    for result, parameter in ((bad_kind, "kind"), (too_long, "lookback_seconds"), (backwards, "start_time_ms")):
        assert result.is_error and parameter in text_of(result)


async def test_account_tools_need_the_account_scope_and_validate(system: System, gateway_tokens: GatewayTokens) -> None:
    async with mcp(system, gateway_tokens.by_scope[Scope.READ]) as client:
        refused = await client.call_tool("get_balances", {})
    assert refused.is_error and "needs the 'account' scope" in text_of(refused)
    async with mcp(system, gateway_tokens.by_scope[Scope.ACCOUNT]) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        schemas = {name: tool.output_schema for name, tool in tools.items()}
        balances = await client.call_tool("get_balances", {})
        some = await client.call_tool("get_balances", {"assets": ["usdt", "BTC"], "non_zero_only": False})
        orders = await client.call_tool("get_open_orders", {"symbol": "BTCUSDT"})
        trades = await client.call_tool("get_my_trades", {"symbol": "BTCUSDT", "limit": 5})
        place = await client.call_tool(
            "place_order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"}
        )
    assert set(tools) >= ACCOUNT_TOOLS and TRADING_TOOLS.isdisjoint(tools) and "get_analytics" not in tools
    for name in ACCOUNT_TOOLS:
        annotations = tools[name].annotations
        assert annotations is not None and annotations.read_only_hint
    all_balances = assert_valid(schemas, "get_balances", balances)
    assert all_balances["balances"], "the simulator's demo account is funded"
    assert all(float(b["free"]) + float(b["locked"]) > 0 for b in all_balances["balances"])
    assert {b["asset"] for b in assert_valid(schemas, "get_balances", some)["balances"]} == {"USDT", "BTC"}
    assert assert_valid(schemas, "get_open_orders", orders)["freshness"]["source"] == "EXCHANGE_REST"
    assert assert_valid(schemas, "get_my_trades", trades)["symbol"] == "BTCUSDT"
    assert place.is_error and "needs the 'trade' scope" in text_of(place)
