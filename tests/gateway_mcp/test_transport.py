"""The HTTP transport served in process: idle sessions expire (404 afterwards), and Host/Origin
settings for each kind of bind address."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
import uvicorn

from gateway_auth.tokens import Scope, TokenStore
from gateway_mcp.auth import AccessPolicy
from gateway_mcp.server import build_http_app, build_server, transport_security
from service_runtime.config import Address

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
IDLE_S = 0.5


def test_loopback_binds_allow_only_loopback_names() -> None:
    settings = transport_security(Address("127.0.0.1", 8765))
    assert settings.enable_dns_rebinding_protection
    assert "127.0.0.1:*" in settings.allowed_hosts and "localhost:*" in settings.allowed_hosts
    assert "http://localhost:*" in settings.allowed_origins
    assert not any("evil" in origin for origin in settings.allowed_origins)


def test_a_specific_address_is_allowed_as_host_and_origin() -> None:
    settings = transport_security(Address("10.1.2.3", 8765))
    assert "10.1.2.3:*" in settings.allowed_hosts
    assert "https://10.1.2.3:*" in settings.allowed_origins
    assert "[fd00::1]:*" in transport_security(Address("fd00::1", 1)).allowed_hosts


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, str]]:
    """A gateway app with a short idle timeout on a free port; yields (url, token)."""
    store, token = TokenStore().issue("reader", frozenset({Scope.READ}))
    async with grpc.aio.insecure_channel("127.0.0.1:9") as channel:
        app = build_http_app(
            build_server(channel, AccessPolicy.bearer(store)), Address("127.0.0.1", 0), session_idle_timeout=IDLE_S
        )
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
        task = asyncio.create_task(server.serve())
        deadline = time.monotonic() + 10
        while not server.started:
            assert not task.done(), "uvicorn stopped before it started"
            assert time.monotonic() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}/mcp", token
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)


async def test_an_idle_session_expires_and_then_answers_404(served: tuple[str, str]) -> None:
    url, token = served
    headers = {**ACCEPT, "Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        async with http.post(url, json=INIT, headers=headers) as resp:
            assert resp.status == 200
            session_id = resp.headers["Mcp-Session-Id"]
            await resp.read()
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        session = {**headers, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-06-18"}
        async with http.post(url, json=ping, headers=session) as resp:
            assert resp.status == 200  # the session is alive while used
            await resp.read()
        statuses: list[int] = []
        deadline = time.monotonic() + 10 * IDLE_S + 5
        while not statuses or statuses[-1] != 404:
            assert time.monotonic() < deadline, f"the session never expired: {statuses}"
            await asyncio.sleep(2 * IDLE_S)  # the behaviour under test: a client away past the timeout
            async with http.post(url, json=ping, headers=session) as resp:
                statuses.append(resp.status)
                await resp.read()
        assert statuses[-1] == 404
