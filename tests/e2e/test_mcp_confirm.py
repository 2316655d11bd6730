"""Preview-then-confirm over MCP: a system of its own with PROVIDER_TRADING=on, order previews on and a
short confirmation TTL. place_order places nothing and answers a preview; confirm_order places that
exact order once; a second confirmation, another caller's confirmation and an expired one are refused
as tool errors and place nothing. Every structured answer validates against its output schema."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

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

SYMBOL = "BTCUSDT"
CONFIRM_TTL_S = 5  # long enough for a preview and its confirmation on a slow machine; short to test expiry


@dataclass(frozen=True)
class Traders:
    system: System
    alice: str
    bob: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.system.ports.mcp}/mcp"


@pytest.fixture(scope="module")
def traders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traders]:
    root = tmp_path_factory.mktemp("mcp_confirm")
    store = TokenStore()
    store, alice = store.issue("alice", frozenset(Scope))
    store, bob = store.issue("bob", frozenset(Scope))
    store.save(root / "tokens.json")
    env = {
        "PROVIDER_TRADING": "on",
        "PROVIDER_SYMBOLS": SYMBOL,
        "GATEWAY_TOKENS_FILE": str(root / "tokens.json"),
        "GATEWAY_MCP_ORDER_PREVIEW": "on",
        "GATEWAY_MCP_CONFIRM_TTL": str(CONFIRM_TTL_S),
    }
    with running_system(root, env) as system:
        yield Traders(system, alice, bob)


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
        return dict(result.structured_content)

    async def refused(self, name: str, args: dict[str, Any]) -> str:
        result = await self.client.call_tool(name, args)
        assert result.is_error, f"{name} should have been refused: {text_of(result)}"
        return text_of(result)


@asynccontextmanager
async def session(traders: Traders, token: str) -> AsyncIterator[Checked]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(40)) as http,
        Client(streamable_http_client(traders.url, http_client=http), mode="legacy") as client,
    ):
        tools = (await client.list_tools()).tools
        yield Checked(client, {t.name: t.output_schema for t in tools})


async def resting_order(calls: Checked) -> dict[str, str]:
    """A BUY 10 % under the best bid, on the tick grid: it rests on the book if placed."""
    book = await calls.ok("get_order_book_summary", {"symbol": SYMBOL, "depth": 1})
    price = str((Decimal(book["best_bid"]["price"]) * Decimal("0.9")).quantize(Decimal("0.01")))
    return {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "quantity": "0.001", "price": price}


async def orders_with_id(calls: Checked, client_order_id: str) -> list[dict[str, Any]]:
    listed = await calls.ok("get_open_orders", {"symbol": SYMBOL})
    return [o for o in listed["orders"] if o["client_order_id"] == client_order_id]


async def test_the_tools_describe_the_two_steps(traders: Traders) -> None:
    async with session(traders, traders.alice) as calls:
        tools = {t.name: t for t in (await calls.client.list_tools()).tools}
    assert {"place_order", "confirm_order"} <= set(tools) and len(tools) <= 20
    assert "confirm_order" in (tools["place_order"].description or "")
    assert "Nothing is placed" in (tools["place_order"].description or "")
    assert "place_order" in (tools["confirm_order"].description or "")


async def test_a_preview_places_nothing_and_confirming_twice_places_once(traders: Traders) -> None:
    async with session(traders, traders.alice) as calls:
        order = await resting_order(calls)
        preview = await calls.ok("place_order", order)
        client_id = preview["order"]["client_order_id"]
        assert preview["order"]["price"] == order["price"] and preview["order"]["time_in_force"] == "GTC"
        assert Decimal(preview["notional"]) == Decimal(order["price"]) * Decimal("0.001")
        assert preview["quote_asset"] == "USDT" and preview["current_price"] is not None
        assert any(c.startswith("PRICE_FILTER") for c in preview["checks_passed"])
        assert await orders_with_id(calls, client_id) == []  # previewing placed nothing
        first, second = await asyncio.gather(
            calls.client.call_tool("confirm_order", {"confirmation_id": preview["confirmation_id"]}),
            calls.client.call_tool("confirm_order", {"confirmation_id": preview["confirmation_id"]}),
        )
        outcomes = sorted([first, second], key=lambda r: bool(r.is_error))
        assert not outcomes[0].is_error and outcomes[1].is_error, [text_of(r) for r in outcomes]
        assert "already used" in text_of(outcomes[1])
        placed = outcomes[0].structured_content
        assert placed is not None and placed["order"]["client_order_id"] == client_id
        assert placed["order"]["status"] == "NEW" and Decimal(placed["order"]["price"]) == Decimal(order["price"])
        third = await calls.refused("confirm_order", {"confirmation_id": preview["confirmation_id"]})
        assert "already used" in third and "get_order" in third
        resting = await orders_with_id(calls, client_id)
        assert len(resting) == 1
        await calls.ok("cancel_order", {"symbol": SYMBOL, "client_order_id": client_id})


async def test_another_callers_confirmation_is_refused(traders: Traders) -> None:
    async with session(traders, traders.alice) as alice, session(traders, traders.bob) as bob:
        preview = await alice.ok("place_order", await resting_order(alice))
        text = await bob.refused("confirm_order", {"confirmation_id": preview["confirmation_id"]})
        assert "another caller" in text and "no order was placed" in text
        client_id = preview["order"]["client_order_id"]
        assert await orders_with_id(alice, client_id) == []
        # Bob's attempt did not use it up: Alice can still confirm her own preview.
        placed = await alice.ok("confirm_order", {"confirmation_id": preview["confirmation_id"]})
        assert placed["order"]["client_order_id"] == client_id
        await alice.ok("cancel_order", {"symbol": SYMBOL, "client_order_id": client_id})


async def test_an_expired_confirmation_is_refused(traders: Traders) -> None:
    async with session(traders, traders.alice) as calls:
        preview = await calls.ok("place_order", await resting_order(calls))
        # The gateway runs on this machine's clock: wait (bounded) until the preview's expiry has passed.
        deadline = time.monotonic() + CONFIRM_TTL_S + 5
        while time.time() * 1000 <= preview["expires_at_ms"] + 50:
            assert time.monotonic() < deadline, "the preview's expiry never came"
            await asyncio.sleep(0.1)
        text = await calls.refused("confirm_order", {"confirmation_id": preview["confirmation_id"]})
        assert "expired" in text and "no order was placed" in text
        assert await orders_with_id(calls, preview["order"]["client_order_id"]) == []


async def test_an_invalid_order_is_refused_at_preview_with_the_fix(traders: Traders) -> None:
    async with session(traders, traders.alice) as calls:
        order = await resting_order(calls)
        text = await calls.refused("place_order", {**order, "price": order["price"] + "3"})
    assert "Order not sent" in text and "nearest valid" in text
