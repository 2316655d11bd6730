"""Per-tool scopes: the token verifier, the scope map, and the guard seen through a real MCP client
(in process, so no token: the policy's anonymous scopes apply)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from mcp.client.client import Client
from mcp.types import TextContent

from gateway_auth.tokens import Scope, TokenStore, hash_token
from gateway_mcp.auth import AccessPolicy, TokenFileVerifier, ToolScopes
from gateway_mcp.server import build_server

READ_TOOLS = {
    "get_market_summary",
    "get_klines",
    "get_recent_trades",
    "get_symbol_rules",
    "get_order_book_summary",
    "get_order_book",
    "get_analytics",
}


async def test_the_verifier_knows_tokens_by_the_tokens_file() -> None:
    store, token = TokenStore().issue("bot", frozenset({Scope.READ, Scope.TRADE}))
    verifier = TokenFileVerifier(store)
    access = await verifier.verify_token(token)
    assert access is not None
    assert (access.client_id, access.scopes) == ("bot", ["read", "trade"])
    assert access.token == hash_token(token)  # the secret itself is not kept
    assert await verifier.verify_token(token + "x") is None
    assert await verifier.verify_token("") is None


def test_tool_scopes_fail_closed() -> None:
    scopes = ToolScopes({"status": None, "book": Scope.READ})
    assert scopes.allows("status", frozenset())
    assert scopes.allows("book", frozenset({Scope.READ}))
    assert not scopes.allows("book", frozenset({Scope.ACCOUNT, Scope.TRADE}))
    assert not scopes.allows("unregistered", frozenset({Scope.READ, Scope.ACCOUNT}))
    assert scopes.allows("unregistered", frozenset(Scope))
    assert "'read' scope" in scopes.refusal("book")
    assert scopes.refusal("unregistered").startswith("Unknown or unavailable tool 'unregistered'")


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    # Never connected: these tests stop at the guard or list tools only.
    async with grpc.aio.insecure_channel("127.0.0.1:9") as chan:
        yield chan


async def test_without_tokens_the_read_tools_are_listed_and_annotated(channel: grpc.aio.Channel) -> None:
    async with Client(build_server(channel, AccessPolicy.without_tokens())) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == READ_TOOLS | {"service_status"}
    for name in READ_TOOLS:
        tool = tools[name]
        assert tool.annotations is not None and tool.annotations.read_only_hint
        assert tool.annotations.idempotent_hint and tool.output_schema is not None
        assert tool.description and "symbol" in str(tool.input_schema)


async def test_a_caller_without_read_sees_and_may_call_none_of_the_read_tools(channel: grpc.aio.Channel) -> None:
    nothing = AccessPolicy(tokens=None, anonymous_scopes=frozenset())
    async with Client(build_server(channel, nothing)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("get_order_book", {"symbol": "BTCUSDT"})
    assert names == {"service_status"}
    assert result.is_error
    assert isinstance(result.content[0], TextContent)
    assert "needs the 'read' scope" in result.content[0].text
