"""Both gateways stop within their stop timeout, whatever their clients are doing.

gateway_http: a request waiting on a provider that does not answer gets HANDLER_GRACE_S after the
shutdown hooks, then it is cut off and its connection closed. Without that bound aiohttp waits up
to 60 s for it, and the gateway is killed by whoever stopped it (the launcher after 10 s, the
supervisor after 8 s, Docker after its grace period).

gateway_mcp: an assistant holding the Streamable HTTP transport's event stream open (GET /mcp)
does not keep the process up: uvicorn would otherwise wait for that connection to close, forever.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import aiohttp
import pytest

from gateway_auth.tokens import Scope, TokenStore
from gateway_http.market_routes import CALL_TIMEOUT_S
from launcher.system import System
from service_runtime.http_serving import HANDLER_GRACE_S
from tests.e2e.conftest import running_system
from tests.e2e.test_http_market_data import bearer, metric, metrics_text
from tests.e2e.test_mcp_market import INIT, PROTOCOL

pytestmark = pytest.mark.timeout(120)

ROUTE = "/api/v1/ticker/price"
STOP_TIMEOUT_S = 9.0  # what the test allows, under the launcher's 10 s


@pytest.fixture(scope="module")
def system_and_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[System, str]]:
    root = tmp_path_factory.mktemp("shutdown")
    store, token = TokenStore().issue("reader", frozenset({Scope.READ}))
    store.save(root / "tokens.json")
    env = {"GATEWAY_TOKENS_FILE": str(root / "tokens.json")}
    with running_system(root, env) as system:
        yield system, token


async def test_a_request_stuck_on_a_silent_provider_does_not_hold_the_gateway_past_its_stop_timeout(
    system_and_token: tuple[System, str],
) -> None:
    system, token = system_and_token
    provider, gateway = system.process("provider"), system.process("gateway_http")
    assert provider.popen is not None
    base = f"http://127.0.0.1:{system.ports.http}"
    async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def stuck_request() -> int:
            async with http.get(ROUTE, params={"symbol": "BTCUSDT"}, headers=bearer(token)) as response:
                return response.status

        assert await stuck_request() == 200  # the gateway's channel to the provider is up
        os.kill(provider.popen.pid, signal.SIGSTOP)  # the provider stops answering, its socket stays open
        try:
            request = asyncio.create_task(stuck_request())
            deadline = time.monotonic() + 15
            while metric(await metrics_text(http), "gateway_http_requests_in_flight", route=ROUTE, method="GET") < 1:
                assert not request.done(), f"the request ended early: {request.result()}"
                assert time.monotonic() < deadline, "the request never reached its handler"
                await asyncio.sleep(0.05)
            started = time.monotonic()
            code = await asyncio.to_thread(gateway.stop, STOP_TIMEOUT_S)  # SIGKILL after that would give -9
            took = time.monotonic() - started
        finally:
            os.kill(provider.popen.pid, signal.SIGCONT)
        assert code == 0, f"gateway_http exited with {code} after {took:.1f} s"
        # It was the grace that ended the request, not the provider call's own deadline.
        assert took < min(CALL_TIMEOUT_S, 2 * HANDLER_GRACE_S + 3), f"stopping took {took:.1f} s"
        with pytest.raises(aiohttp.ClientError):  # cut off: its connection closed without an answer
            await asyncio.wait_for(request, 5)
    gateway.start()
    await asyncio.to_thread(gateway.wait_ready, 30.0)


async def test_an_open_mcp_event_stream_does_not_hold_the_mcp_gateway_past_its_stop_timeout(
    system_and_token: tuple[System, str],
) -> None:
    system, token = system_and_token
    gateway = system.process("gateway_mcp")
    url = f"http://127.0.0.1:{system.ports.mcp}/mcp"
    headers = {**bearer(token), "Accept": "application/json, text/event-stream"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(url, json=INIT, headers=headers) as response:
            assert response.status == 200, await response.text()
            session = {"Mcp-Session-Id": response.headers["Mcp-Session-Id"], "MCP-Protocol-Version": PROTOCOL}
            await response.read()
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with http.post(url, json=initialized, headers={**headers, **session}) as response:
            assert response.status == 202
        stream_headers = {**bearer(token), **session, "Accept": "text/event-stream"}
        async with http.get(url, headers=stream_headers) as stream:
            assert stream.status == 200 and stream.content_type == "text/event-stream"
            started = time.monotonic()
            code = await asyncio.to_thread(gateway.stop, STOP_TIMEOUT_S)
            took = time.monotonic() - started
            assert code == 0, f"gateway_mcp exited with {code} after {took:.1f} s"
            assert took < 2 * HANDLER_GRACE_S + 3, f"stopping took {took:.1f} s"
    assert gateway.log_path is not None
    stop_log = gateway.log_path.read_text().rsplit("gateway_mcp: stopping", 1)[-1]
    assert "Traceback" not in stop_log  # cutting the stream is expected: no exception report
    gateway.start()
    await asyncio.to_thread(gateway.wait_ready, 30.0)
