"""An order placed through the provider, partially filled then filled by another account, with the
matching order updates and balance updates seen on StreamUserData, in order (issue #5).

ETHUSDT is served by the simulator's replay configuration, so it has no synthetic flow: the only
liquidity is ours, and the only counterparty is the test's taker account.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import grpc
import pytest
from binance.provider.v1 import account_pb2 as a
from binance.provider.v1 import account_pb2_grpc as a_grpc
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as tr
from binance.provider.v1 import trading_pb2_grpc as tr_grpc

from launcher.system import System
from tests.e2e.conftest import running_system

pytestmark = pytest.mark.timeout(120)

ETH_FILE = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "binance-recorded"
    / "hftbacktest_spot_ethusdt_20240808.gz"
)
TAKER_KEY, TAKER_SECRET = "takerKey01", "takerSecretForTheFillTest0000000000000000000000000000000000000000"


@pytest.fixture(scope="module")
def fill_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("fills")
    accounts = root / "accounts.json"
    accounts.write_text(json.dumps([{"api_key": TAKER_KEY, "secret": TAKER_SECRET, "balances": {"USDT": "10000"}}]))
    env = {
        "PROVIDER_TRADING": "on",
        "PROVIDER_SYMBOLS": "BTCUSDT",
        "SIM_SYMBOLS": "BTCUSDT",
        "SIM_REPLAY": str(ETH_FILE),
        "SIM_ACCOUNTS_FILE": str(accounts),
    }
    with running_system(root, env) as system:
        yield system


async def take(sim: aiohttp.ClientSession, quantity: str) -> None:
    """The taker buys `quantity` ETH at 2500.00 (IOC), hitting our resting sell."""
    params = {"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC", "quantity": quantity,
              "price": "2500.00", "timestamp": str(int(time.time() * 1000))}  # fmt: skip
    query = urlencode(params)
    signature = hmac.new(TAKER_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    async with sim.post(f"/api/v3/order?{query}&signature={signature}", headers={"X-MBX-APIKEY": TAKER_KEY}) as r:
        body = await r.json()
        assert r.status == 200, body
        assert body["status"] == "FILLED", body


@pytest.fixture
async def channel(fill_system: System) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fill_system.ports.provider}") as ch:
        yield ch


async def test_partial_then_full_fill_arrive_in_order_with_balances(
    fill_system: System, channel: grpc.aio.Channel
) -> None:
    account = a_grpc.AccountStub(channel)
    trading = tr_grpc.TradingStub(channel)
    events: list[a.StreamUserDataResponse] = []
    ready = asyncio.Event()
    arrived = asyncio.Event()

    async def consume() -> None:
        async for event in account.StreamUserData(a.StreamUserDataRequest()):
            events.append(event)
            arrived.set()
            if event.HasField("status") and event.status.state in (
                a.USER_STREAM_STATE_CONNECTED,
                a.USER_STREAM_STATE_RECONCILED,
            ):
                ready.set()

    consumer = asyncio.create_task(consume())
    try:
        await asyncio.wait_for(ready.wait(), 20)
        before = {
            b.asset: Decimal(b.free) for b in (await account.GetBalances(a.GetBalancesRequest(), timeout=10)).balances
        }
        spec = tr.OrderSpec(
            symbol="ETHUSDT", side=c.SIDE_SELL, type=c.ORDER_TYPE_LIMIT, time_in_force=c.TIME_IN_FORCE_GTC,
            quantity="0.2000", price="2500.00", client_order_id="fill-test-1",
        )  # fmt: skip
        placed = await trading.PlaceOrder(tr.PlaceOrderRequest(order=spec), timeout=10)
        assert placed.order.status == c.ORDER_STATUS_NEW
        async with aiohttp.ClientSession(f"http://127.0.0.1:{fill_system.ports.sim}") as sim:
            await take(sim, "0.0500")
            await take(sim, "0.1500")

        def ours() -> list[a.OrderUpdate]:
            return [
                e.order_update
                for e in events
                if e.HasField("order_update") and e.order_update.order.client_order_id == "fill-test-1"
            ]

        def complete() -> bool:
            """Three updates of our order, and an account position after the last one."""
            if len(ours()) < 3:
                return False
            last = max(i for i, e in enumerate(events) if e.HasField("order_update"))
            return any(e.HasField("account_position") for e in events[last + 1 :])

        deadline = time.monotonic() + 15
        while not complete() and time.monotonic() < deadline:
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), max(0.0, deadline - time.monotonic()))
        updates = ours()
        assert [(u.execution_type, u.order.status) for u in updates] == [
            (c.EXECUTION_TYPE_NEW, c.ORDER_STATUS_NEW),
            (c.EXECUTION_TYPE_TRADE, c.ORDER_STATUS_PARTIALLY_FILLED),
            (c.EXECUTION_TYPE_TRADE, c.ORDER_STATUS_FILLED),
        ]
        assert [Decimal(u.order.executed_quantity) for u in updates] == [0, Decimal("0.05"), Decimal("0.2")]
        assert [Decimal(u.last_executed_quantity) for u in updates[1:]] == [Decimal("0.05"), Decimal("0.15")]
        assert all(u.is_maker for u in updates[1:])

        # After each fill, an account position follows its order update (Binance's order).
        sequence = [
            "fill" if e.HasField("order_update") and e.order_update.execution_type == c.EXECUTION_TYPE_TRADE
            else "position" if e.HasField("account_position") else "other"
            for e in events
        ]  # fmt: skip
        fills = [i for i, kind in enumerate(sequence) if kind == "fill"]
        assert len(fills) == 2 and all("position" in sequence[i + 1 :] for i in fills)
        last_position = next(e.account_position for e in reversed(events) if e.HasField("account_position"))
        final = {b.asset: Decimal(b.free) for b in last_position.balances}
        assert final["ETH"] == before["ETH"] - Decimal("0.2")
        commission = sum((Decimal(u.commission) for u in updates[1:] if u.commission_asset == "USDT"), Decimal(0))
        assert final["USDT"] == before["USDT"] + Decimal("500") - commission
        after = {
            b.asset: Decimal(b.free) for b in (await account.GetBalances(a.GetBalancesRequest(), timeout=10)).balances
        }
        assert after["ETH"] == final["ETH"] and after["USDT"] == final["USDT"]
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
