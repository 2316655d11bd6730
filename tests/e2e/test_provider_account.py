"""Account service end to end: StreamUserData sees orders placed on the venue, and after the
simulator ends the user data subscription the provider resubscribes and reconciles so a fill
made during the outage still shows in the balances."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import aiohttp
import grpc
import pytest
from binance.provider.v1 import account_pb2 as a
from binance.provider.v1 import account_pb2_grpc as a_grpc
from binance.provider.v1 import common_pb2 as c

from launcher.system import System
from provider.config import SIM_DEMO_API_KEY, SIM_DEMO_API_SECRET
from tests.e2e.conftest import running_system

pytestmark = pytest.mark.timeout(120)
WAIT = 10.0


@pytest.fixture(scope="module")
def account_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("account")
    env = {"SIM_CONTROL": "on", "PROVIDER_TRADING": "on", "PROVIDER_SYMBOLS": "BTCUSDT"}
    with running_system(root, env) as system:
        yield system


async def signed(sim: aiohttp.ClientSession, method: str, path: str, params: dict[str, str]) -> object:
    query = urlencode({**params, "timestamp": str(int(time.time() * 1000))})
    sig = hmac.new(SIM_DEMO_API_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    headers = {"X-MBX-APIKEY": SIM_DEMO_API_KEY}
    async with sim.request(method, f"{path}?{query}&signature={sig}", headers=headers) as response:
        body = await response.json()
        assert response.status == 200, body
        return body


class Events:
    def __init__(self, stub: a_grpc.AccountAsyncStub) -> None:
        self.items: list[a.StreamUserDataResponse] = []
        self.changed = asyncio.Event()
        self._call = stub.StreamUserData(a.StreamUserDataRequest())
        self._task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for item in self._call:
            self.items.append(item)
            self.changed.set()

    async def wait_for(self, pred: Callable[[a.StreamUserDataResponse], bool], what: str) -> a.StreamUserDataResponse:
        deadline = time.monotonic() + WAIT
        seen = 0
        while True:
            for item in self.items[seen:]:
                if pred(item):
                    return item
            seen = len(self.items)
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                continue

    def close(self) -> None:
        self._call.cancel()
        self._task.cancel()


def status(state: int) -> Callable[[a.StreamUserDataResponse], bool]:
    return lambda m: m.HasField("status") and m.status.state == state


def order_update(client_id: str, exec_type: int) -> Callable[[a.StreamUserDataResponse], bool]:
    return lambda m: (
        m.HasField("order_update")
        and m.order_update.order.client_order_id == client_id
        and m.order_update.execution_type == exec_type
    )


async def test_stream_terminate_reconcile(account_system: System) -> None:
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{account_system.ports.provider}") as channel,
        aiohttp.ClientSession(f"http://127.0.0.1:{account_system.ports.sim}") as sim,
    ):
        stub: a_grpc.AccountAsyncStub = a_grpc.AccountStub(channel)
        # The provider subscribes at start; wait until it is live (balances from the stream).
        deadline = time.monotonic() + WAIT
        while (await stub.GetBalances(a.GetBalancesRequest())).source != c.DATA_SOURCE_LOCAL_STREAM:
            assert time.monotonic() < deadline, "user data stream never became live"
            await asyncio.sleep(0.1)
        events = Events(stub)
        try:
            await events.wait_for(status(a.USER_STREAM_STATE_CONNECTED), "initial status")
            async with sim.get("/api/v3/ticker/bookTicker", params={"symbol": "BTCUSDT"}) as response:
                bid = float((await response.json())["bidPrice"])
            price = f"{int(bid * 0.8)}.00"
            limit = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001"}
            await signed(sim, "POST", "/api/v3/order", {**limit, "price": price, "newClientOrderId": "e2e-1"})
            await events.wait_for(order_update("e2e-1", c.EXECUTION_TYPE_NEW), "NEW for e2e-1")

            async with sim.post("/control/user/terminate", json={}) as response:
                assert (await response.json())["terminated"] >= 1
            await signed(sim, "POST", "/api/v3/order", {**limit, "price": price, "newClientOrderId": "e2e-gap"})
            market = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
            await signed(sim, "POST", "/api/v3/order", market)
            await events.wait_for(status(a.USER_STREAM_STATE_DISCONNECTED), "DISCONNECTED")
            await events.wait_for(status(a.USER_STREAM_STATE_RECONCILED), "RECONCILED")

            truth = await signed(sim, "GET", "/api/v3/account", {"omitZeroBalances": "true"})
            assert isinstance(truth, dict)
            want = sorted((b["asset"], b["free"], b["locked"]) for b in truth["balances"])
            mine = await stub.GetBalances(a.GetBalancesRequest(non_zero_only=True))
            assert mine.source == c.DATA_SOURCE_LOCAL_STREAM and mine.as_of_ms > 0
            got = sorted((b.asset, b.free, b.locked) for b in mine.balances)
            assert got == want
            opened = await signed(sim, "GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
            assert isinstance(opened, list)
            assert {"e2e-1", "e2e-gap"} <= {o["clientOrderId"] for o in opened}
            account = await stub.GetAccount(a.GetAccountRequest())
            assert account.source == c.DATA_SOURCE_EXCHANGE_REST and account.can_trade and account.as_of_ms > 0
        finally:
            events.close()
