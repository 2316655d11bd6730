"""Trading over MCP: a system of its own with PROVIDER_TRADING=on and its own tokens file. Only a
token with the trade scope sees the trading tools; orders go place -> get -> cancel; a price off the
tick grid comes back as a tool error naming the nearest valid price; an ambiguous exchange answer is
reconciled by client order id; every structured answer validates against its tool's output schema."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import httpx2
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs installed
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from gateway_auth.tokens import Scope, TokenStore
from launcher.system import System
from tests.e2e.conftest import running_system

pytestmark = pytest.mark.timeout(120)

TRADING_TOOLS = {"place_order", "cancel_order", "cancel_all_orders", "get_order"}
SYMBOL = "BTCUSDT"


@dataclass(frozen=True)
class Trading:
    system: System
    trader: str  # read, account and trade
    trade_only: str
    read_only: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.system.ports.mcp}/mcp"


@pytest.fixture(scope="module")
def trading(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trading]:
    root = tmp_path_factory.mktemp("mcp_trading")
    store = TokenStore()
    store, trader = store.issue("trader", frozenset(Scope))
    store, trade_only = store.issue("trade-only", frozenset({Scope.TRADE}))
    store, read_only = store.issue("reader", frozenset({Scope.READ}))
    store.save(root / "tokens.json")
    env = {
        "PROVIDER_TRADING": "on",
        "GATEWAY_MCP_ORDER_PREVIEW": "off",  # place_order places at once here; test_mcp_confirm covers previews
        "SIM_CONTROL": "on",
        "PROVIDER_SYMBOLS": SYMBOL,
        "GATEWAY_TOKENS_FILE": str(root / "tokens.json"),
    }
    with running_system(root, env) as system:
        yield Trading(system, trader, trade_only, read_only)


@asynccontextmanager
async def mcp(trading: Trading, token: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(40)) as http,
        Client(streamable_http_client(trading.url, http_client=http), mode="legacy") as client,
    ):
        yield client


def text_of(result: CallToolResult) -> str:
    assert result.content and isinstance(result.content[0], TextContent)
    return result.content[0].text


class Checked:
    """Tool calls whose structured output must validate against the tool's own output schema."""

    def __init__(self, client: Client, schemas: dict[str, Any]) -> None:
        self.client = client
        self.schemas = schemas

    async def ok(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(name, args)
        assert not result.is_error, f"{name}: {text_of(result)}"
        assert result.structured_content is not None
        errors = list(Draft202012Validator(self.schemas[name]).iter_errors(result.structured_content))
        assert errors == [], f"{name}: {errors[:1]}"
        assert text_of(result).splitlines()[-1].startswith("(source ")
        return dict(result.structured_content)


@asynccontextmanager
async def checked(trading: Trading) -> AsyncIterator[Checked]:
    async with mcp(trading, trading.trader) as client:
        tools = (await client.list_tools()).tools
        yield Checked(client, {t.name: t.output_schema for t in tools})


async def resting_price(calls: Checked) -> str:
    """A BUY price 10 % under the best bid, on the tick grid: it rests on the book."""
    book = await calls.ok("get_order_book_summary", {"symbol": SYMBOL, "depth": 1})
    return str((Decimal(book["best_bid"]["price"]) * Decimal("0.9")).quantize(Decimal("0.01")))


async def test_only_a_trade_token_sees_the_trading_tools(trading: Trading) -> None:
    async with mcp(trading, trading.trade_only) as client:
        trade_names = {t.name for t in (await client.list_tools()).tools}
    async with mcp(trading, trading.read_only) as client:
        read_names = {t.name for t in (await client.list_tools()).tools}
        refused = await client.call_tool(
            "place_order", {"symbol": SYMBOL, "side": "BUY", "type": "MARKET", "quantity": "0.001"}
        )
    assert trade_names == TRADING_TOOLS | {"service_status"}
    assert read_names.isdisjoint(TRADING_TOOLS) and "get_analytics" in read_names
    assert refused.is_error and "needs the 'trade' scope" in text_of(refused)


async def test_place_get_cancel(trading: Trading) -> None:
    async with checked(trading) as calls:
        price = await resting_price(calls)
        placed = await calls.ok(
            "place_order", {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "quantity": "0.001", "price": price}
        )
        order = placed["order"]
        client_id = order["client_order_id"]
        assert client_id.startswith("mcp-") and order["status"] == "NEW" and order["order_id"] > 0
        assert not placed["outcome_unknown"] and placed["fills"] == [] and Decimal(order["price"]) == Decimal(price)
        got = await calls.ok("get_order", {"symbol": SYMBOL, "client_order_id": client_id})
        assert got["order"]["order_id"] == order["order_id"] and got["order"]["status"] == "NEW"
        open_orders = await calls.ok("get_open_orders", {"symbol": SYMBOL})
        assert order["order_id"] in [o["order_id"] for o in open_orders["orders"]]
        cancelled = await calls.ok("cancel_order", {"symbol": SYMBOL, "order_id": order["order_id"]})
        assert cancelled["order"]["status"] == "CANCELED" and cancelled["order"]["client_order_id"] == client_id
        after = await calls.ok("get_order", {"symbol": SYMBOL, "order_id": order["order_id"]})
        assert after["order"]["status"] == "CANCELED"
        again = await calls.client.call_tool("cancel_order", {"symbol": SYMBOL, "order_id": order["order_id"]})
        assert again.is_error  # nothing left to cancel; the text says what happened
        for _ in range(2):
            await calls.ok(
                "place_order", {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "quantity": "0.001", "price": price}
            )
        cleared = await calls.ok("cancel_all_orders", {"symbol": SYMBOL})
        assert len(cleared["orders"]) == 2 and all(o["status"] == "CANCELED" for o in cleared["orders"])


async def test_a_price_off_the_tick_grid_names_the_nearest_valid_price(trading: Trading) -> None:
    async with checked(trading) as calls:
        price = await resting_price(calls)
        result = await calls.client.call_tool(
            "place_order",
            {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "quantity": "0.001", "price": price + "3"},
        )
        missing_id = await calls.client.call_tool("get_order", {"symbol": SYMBOL})
    assert result.is_error
    text = text_of(result)
    assert "Order not sent" in text and "parameter 'price'" in text and "tickSize 0.01" in text
    nearest = re.search(r"nearest valid: ([0-9.]+)", text)
    assert nearest is not None and Decimal(nearest.group(1)) == Decimal(price), text
    assert missing_id.is_error and "exactly one of 'order_id' or 'client_order_id'" in text_of(missing_id)


async def test_an_ambiguous_answer_is_reconciled_and_a_retry_does_not_place_twice(trading: Trading) -> None:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{trading.system.ports.sim}") as sim:
        async with sim.post("/control/order_unknown", json={"count": 1}) as response:
            assert response.status == 200
        async with checked(trading) as calls:
            args = {
                "symbol": SYMBOL,
                "side": "BUY",
                "type": "MARKET",
                "quantity": "0.001",
                "client_order_id": "e2e-mcp-unknown-1",
            }
            first = await calls.ok("place_order", args)
            retry = await calls.ok("place_order", args)
    assert first["reconciled"] and first["order"]["status"] == "FILLED" and not first["outcome_unknown"]
    assert first["order"]["client_order_id"] == "e2e-mcp-unknown-1"
    assert retry["order"]["order_id"] == first["order"]["order_id"]
