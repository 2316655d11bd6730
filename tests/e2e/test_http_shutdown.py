"""gateway_http stops within its stop timeout even while a request waits on a provider that does not
answer: after the shutdown hooks the request gets HANDLER_GRACE_S to finish, then it is cut off
and its connection closed. Without that bound aiohttp waits up to 60 s for it, and the gateway is
killed by whoever stopped it (the launcher after 10 s, the supervisor after 8 s, Docker after its
grace period)."""

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

pytestmark = pytest.mark.timeout(120)

ROUTE = "/api/v1/ticker/price"
STOP_TIMEOUT_S = 9.0  # what the test allows, under the launcher's 10 s


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[System, str]]:
    root = tmp_path_factory.mktemp("shutdown")
    store, token = TokenStore().issue("reader", frozenset({Scope.READ}))
    store.save(root / "tokens.json")
    env = {"GATEWAY_TOKENS_FILE": str(root / "tokens.json")}
    with running_system(root, env, without={"gateway_mcp"}) as system:  # MCP is not under test
        yield system, token


async def test_a_request_stuck_on_a_silent_provider_does_not_hold_the_gateway_past_its_stop_timeout(
    reader: tuple[System, str],
) -> None:
    system, token = reader
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
