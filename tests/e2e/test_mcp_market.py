"""The MCP gateway as an assistant's client meets it: bearer tokens and scopes, the Streamable HTTP
transport's rules on the wire, and the market-data and order-book tools against the running system.

The system's gateway uses the session's tokens file; a gateway with GATEWAY_MCP_AUTH=off and a
stdio one are started here, pointing at the system's provider.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs installed
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from gateway_auth.tokens import Scope
from launcher.processes import REPO_ROOT, ManagedProcess, free_port
from launcher.system import System
from tests.e2e.conftest import GatewayTokens

pytestmark = pytest.mark.timeout(120)

READ_TOOLS = {
    "get_market_summary",
    "get_klines",
    "get_recent_trades",
    "get_symbol_rules",
    "get_order_book_summary",
    "get_order_book",
    "get_analytics",
}
PROTOCOL = "2025-06-18"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}},
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
TIMEOUT = aiohttp.ClientTimeout(total=15)


@dataclass(frozen=True)
class Gateway:
    url: str
    read_token: str
    account_token: str


def _environment(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_TOKENS_FILE"}
    return {**env, **overrides}


@pytest.fixture(scope="module")
def gateway(system: System, gateway_tokens: GatewayTokens) -> Gateway:
    """The system's own MCP gateway, which shares the session's tokens file with gateway_http."""
    return Gateway(
        f"http://127.0.0.1:{system.ports.mcp}/mcp",
        read_token=gateway_tokens.by_scope[Scope.READ],
        account_token=gateway_tokens.by_scope[Scope.ACCOUNT],
    )


@asynccontextmanager
async def mcp(url: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(15)) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        yield client


def text_of(result: CallToolResult) -> str:
    assert result.content and isinstance(result.content[0], TextContent)
    return result.content[0].text


# --- auth and scopes ------------------------------------------------------------------------------


async def test_a_read_token_sees_the_read_tools(gateway: Gateway) -> None:
    async with mcp(gateway.url, gateway.read_token) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert names == READ_TOOLS | {"service_status"}


async def test_a_token_without_read_sees_none_of_them_and_is_refused_if_it_calls_one(gateway: Gateway) -> None:
    async with mcp(gateway.url, gateway.account_token) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        refused = await client.call_tool("get_order_book", {"symbol": "BTCUSDT"})
    assert names & READ_TOOLS == set()
    assert refused.is_error
    assert "needs the 'read' scope" in text_of(refused)


async def test_no_token_or_an_unknown_one_is_401(gateway: Gateway) -> None:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        for headers in ({}, {"Authorization": "Bearer bsg_not-a-token"}, {"Authorization": "Basic eDp5"}):
            async with http.post(gateway.url, json=INIT, headers={**ACCEPT, **headers}) as resp:
                assert resp.status == 401
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")


# --- the transport on the wire --------------------------------------------------------------------


async def _open_session(http: aiohttp.ClientSession, gateway: Gateway) -> dict[str, str]:
    """initialize + initialized; returns the headers of every later request of the session."""
    auth = {**ACCEPT, "Authorization": f"Bearer {gateway.read_token}"}
    async with http.post(gateway.url, json=INIT, headers=auth) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")  # POST answered over SSE
        session = {**auth, "Mcp-Session-Id": resp.headers["Mcp-Session-Id"], "MCP-Protocol-Version": PROTOCOL}
        assert b'"protocolVersion":"2025-06-18"' in await resp.read()
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    async with http.post(gateway.url, json=initialized, headers=session) as resp:
        assert resp.status == 202
    return session


async def test_sessions_the_get_stream_and_delete(gateway: Gateway) -> None:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        session = await _open_session(http, gateway)
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        async with http.post(gateway.url, json=ping, headers=session) as resp:
            assert resp.status == 200
        stream_headers = {**session, "Accept": "text/event-stream"}
        async with http.get(gateway.url, headers=stream_headers) as resp:  # server-to-client stream
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
        async with http.delete(gateway.url, headers=session) as resp:
            assert resp.status == 200
        async with http.post(gateway.url, json=ping, headers=session) as resp:
            assert resp.status == 404  # ended by DELETE


async def test_a_session_is_bound_to_the_token_that_opened_it(gateway: Gateway) -> None:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        session = await _open_session(http, gateway)
        other = {**session, "Authorization": f"Bearer {gateway.account_token}"}
        async with http.post(gateway.url, json={"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers=other) as resp:
            assert resp.status == 404
        async with http.delete(gateway.url, headers=session) as resp:
            assert resp.status == 200


async def test_an_unknown_session_is_404(gateway: Gateway) -> None:
    headers = {**ACCEPT, "Authorization": f"Bearer {gateway.read_token}", "MCP-Protocol-Version": PROTOCOL}
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        body = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        async with http.post(gateway.url, json=body, headers={**headers, "Mcp-Session-Id": "f" * 32}) as resp:
            assert resp.status == 404


async def test_an_unsupported_protocol_version_is_400(gateway: Gateway) -> None:
    headers = {**ACCEPT, "Authorization": f"Bearer {gateway.read_token}", "MCP-Protocol-Version": "1999-01-01"}
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as http,
        http.post(gateway.url, json=ping, headers=headers) as resp,
    ):
        assert resp.status == 400
        body = await resp.json()
    assert "1999-01-01" in body["error"]["message"]
    assert PROTOCOL in body["error"]["data"]["supported"]


async def test_a_foreign_origin_is_403_and_a_foreign_host_is_refused(gateway: Gateway) -> None:
    auth = {**ACCEPT, "Authorization": f"Bearer {gateway.read_token}"}
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        async with http.post(gateway.url, json=INIT, headers={**auth, "Origin": "https://evil.example"}) as resp:
            assert resp.status == 403
        async with http.post(gateway.url, json=INIT, headers={**auth, "Host": "evil.example:80"}) as resp:
            assert resp.status == 421
        async with http.post(gateway.url, json=INIT, headers={**auth, "Origin": "http://localhost:3000"}) as resp:
            assert resp.status == 200
            await resp.read()


async def test_the_2026_protocol_answers_json_and_filters_by_scope_too(gateway: Gateway) -> None:
    # The stateless 2026-07-28 exchange bypasses sessions: the same auth and scope rules must hold.
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": meta}}
    modern = {**ACCEPT, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        listed: dict[str, set[str]] = {}
        for token in (gateway.read_token, gateway.account_token):
            async with http.post(
                gateway.url, json=body, headers={**modern, "Authorization": f"Bearer {token}"}
            ) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("application/json")
                listed[token] = {t["name"] for t in (await resp.json())["result"]["tools"]}
        async with http.post(gateway.url, json=body, headers=modern) as resp:
            assert resp.status == 401
    assert listed[gateway.read_token] >= READ_TOOLS
    assert listed[gateway.account_token] & READ_TOOLS == set()


# --- the tools ------------------------------------------------------------------------------------

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get_market_summary", {"symbols": ["BTCUSDT", "ethusdt"]}),
    ("get_klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 5}),
    ("get_recent_trades", {"symbol": "ETHUSDT", "limit": 10}),
    ("get_symbol_rules", {"symbol": "ETHUSDT"}),
    ("get_order_book_summary", {"symbol": "BTCUSDT", "depth": 10, "walls_per_side": 2}),
    ("get_order_book", {"symbol": "BTCUSDT", "limit": 5}),
    ("get_order_book", {"symbol": "ETHUSDT"}),
]


async def test_every_tool_answers_with_structured_content_valid_against_its_schema(gateway: Gateway) -> None:
    async with mcp(gateway.url, gateway.read_token) as client:
        schemas = {t.name: t.output_schema for t in (await client.list_tools()).tools}
        results = [(name, args, await client.call_tool(name, args)) for name, args in CALLS]
    for name, args, result in results:
        assert not result.is_error, f"{name}: {text_of(result)}"
        assert result.structured_content is not None
        schema = schemas[name]
        assert schema is not None
        errors = list(Draft202012Validator(schema).iter_errors(result.structured_content))
        assert errors == [], f"{name}{args}: {errors[:1]}"
        freshness = result.structured_content["freshness"]
        assert freshness["source"] in ("LOCAL_BOOK", "LOCAL_STREAM", "EXCHANGE_REST")
        assert text_of(result).splitlines()[-1].startswith("(source ")


async def test_book_tools_carry_freshness_and_respect_the_level_limit(gateway: Gateway) -> None:
    async with mcp(gateway.url, gateway.read_token) as client:
        book = await client.call_tool("get_order_book", {"symbol": "BTCUSDT", "limit": 3})
        default = await client.call_tool("get_order_book", {"symbol": "BTCUSDT"})
        summary = await client.call_tool("get_order_book_summary", {"symbol": "BTCUSDT", "depth": 5})
    assert book.structured_content is not None and default.structured_content is not None
    assert len(book.structured_content["bids"]) == 3 and len(book.structured_content["asks"]) == 3
    assert len(default.structured_content["bids"]) == 20
    fresh = book.structured_content["freshness"]
    assert fresh["source"] == "LOCAL_BOOK" and fresh["in_sync"] is True and fresh["last_update_id"] > 0
    assert fresh["age_ms"] is not None
    s = summary.structured_content
    assert s is not None and s["depth_levels"] == 5
    best_bid, best_ask = s["best_bid"]["price"], s["best_ask"]["price"]
    assert float(best_bid) < float(s["mid"]) < float(best_ask)
    assert float(best_bid) <= float(s["microprice"]) <= float(best_ask)
    assert -1 <= s["imbalance_top"] <= 1


async def test_tool_errors_a_model_can_correct(gateway: Gateway) -> None:
    async with mcp(gateway.url, gateway.read_token) as client:
        unknown = await client.call_tool("get_order_book_summary", {"symbol": "NOPEUSDT"})
        unknown_rules = await client.call_tool("get_symbol_rules", {"symbol": "NOPEUSDT"})
        badly_written = await client.call_tool("get_klines", {"symbol": "BTC/USDT"})
        too_deep = await client.call_tool("get_order_book", {"symbol": "BTCUSDT", "limit": 500})
        bad_interval = await client.call_tool("get_klines", {"symbol": "BTCUSDT", "interval": "7m"})
        backwards = await client.call_tool(
            "get_klines", {"symbol": "BTCUSDT", "start_time_ms": 2_000, "end_time_ms": 1_000}
        )
    for result in (unknown, unknown_rules):
        assert result.is_error
        assert "Unknown symbol 'NOPEUSDT'" in text_of(result) and "symbol format" in text_of(result)
    for result, parameter in (
        (badly_written, "symbol"),
        (too_deep, "limit"),
        (bad_interval, "interval"),
        (backwards, "start_time_ms"),
    ):
        assert result.is_error
        assert parameter in text_of(result)


# --- without tokens -------------------------------------------------------------------------------


async def test_auth_off_on_loopback_lists_the_read_only_tools_without_a_token(system: System, tmp_path: Path) -> None:
    port = free_port()
    process = ManagedProcess(
        "gateway_mcp_open",
        "gateway_mcp",
        env=_environment(
            GATEWAY_MCP_AUTH="off",
            GATEWAY_MCP_ADDR=f"127.0.0.1:{port}",
            PROVIDER_GRPC_ADDR=f"127.0.0.1:{system.ports.provider}",
        ),
        ready_port=port,
        log_path=tmp_path / "gateway_mcp_open.log",
    )
    process.start()
    try:
        process.wait_ready(30)
        async with mcp(f"http://127.0.0.1:{port}/mcp", None) as client:
            tools = (await client.list_tools()).tools
            price = await client.call_tool("get_market_summary", {"symbols": ["BTCUSDT"]})
    finally:
        assert process.stop() == 0, process.log_tail()
    assert {t.name for t in tools} == READ_TOOLS | {"service_status"}
    assert all(t.annotations is not None and t.annotations.read_only_hint for t in tools)
    assert not price.is_error


async def test_stdio_serves_the_read_tools(system: System) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "gateway_mcp", "--stdio"],
        env=_environment(PROVIDER_GRPC_ADDR=f"127.0.0.1:{system.ports.provider}"),
        cwd=str(REPO_ROOT),
    )
    async with Client(params, mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        rules = await client.call_tool("get_symbol_rules", {"symbol": "BTCUSDT"})
    assert names == READ_TOOLS | {"service_status"}
    assert rules.structured_content is not None and rules.structured_content["tick_size"]
