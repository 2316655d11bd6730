"""UserDataClient against the simulator's real app on 127.0.0.1: subscribe, events, reconnect, reconcile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from exchange_sim.accounts import DEMO_API_KEY, DEMO_API_SECRET
from exchange_sim.app import create_app
from exchange_sim.config import SimConfig
from exchange_sim.wire.ws_api import WS_API
from provider.account.model import (
    AccountPositionEvent,
    ExecutionReport,
    ExecutionType,
    StreamState,
    StreamStatus,
    UserEvent,
)
from provider.binance.rest import RestClient
from provider.binance.signing import HmacSigner
from provider.binance.user_data import Subscription, UserDataClient, UserDataConfig, fetch_account, fetch_open_orders
from service_runtime.config import Address

WAIT = 5.0


@dataclass
class Env:
    server: TestServer
    rest: RestClient
    client: UserDataClient


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    config = SimConfig(addr=Address("127.0.0.1", 0), symbols=("BTCUSDT",), seed=3)
    server = TestServer(create_app(config))
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        base = str(server.make_url("/")).rstrip("/")
        rest = RestClient(base, session, signer=HmacSigner(DEMO_API_KEY, DEMO_API_SECRET))
        ws_url = base.replace("http://", "ws://") + "/ws-api/v3"
        client = UserDataClient(session, rest, HmacSigner(DEMO_API_KEY, DEMO_API_SECRET), UserDataConfig(ws_url))
        client.start()
        try:
            yield Env(server, rest, client)
        finally:
            await client.close()
            await server.close()


async def until(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def next_matching(sub: Subscription, pred: Callable[[UserEvent], bool]) -> UserEvent:
    async with asyncio.timeout(WAIT):
        while True:
            event = await sub.get()
            if pred(event):
                return event


async def place(rest: RestClient, side: str, price: str, qty: str = "0.001", **extra: str) -> object:
    params = {"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": "GTC", "price": price}
    params.update(quantity=qty, **extra)
    return await rest.signed("POST", "/api/v3/order", params, weight=1, order=True)


async def far_price(rest: RestClient, below: bool) -> str:
    ticker = (await rest.book_ticker(["BTCUSDT"]))[0]
    price = int(float(ticker.bid_price) * (0.8 if below else 1.2))
    return f"{price}.00"


async def test_subscribes_reconciles_and_streams_order_updates(env: Env) -> None:
    sub = env.client.subscribe()
    await asyncio.wait_for(env.client.reconciled.wait(), WAIT)
    assert env.client.state.balance("USDT") is not None
    price = await far_price(env.rest, below=True)
    await place(env.rest, "BUY", price, newClientOrderId="ud-new-1")
    new = await next_matching(sub, lambda e: isinstance(e, ExecutionReport) and e.order.client_order_id == "ud-new-1")
    assert isinstance(new, ExecutionReport) and new.execution_type is ExecutionType.NEW
    await next_matching(
        sub, lambda e: isinstance(e, AccountPositionEvent) and any(b.asset == "USDT" for b in e.balances)
    )
    assert [o.client_order_id for o in env.client.state.open_orders()] == ["ud-new-1"]
    await env.rest.signed(
        "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": new.order.order_id}, weight=1, order=True
    )
    cancel = await next_matching(
        sub, lambda e: isinstance(e, ExecutionReport) and e.execution_type is ExecutionType.CANCELED
    )
    assert isinstance(cancel, ExecutionReport) and cancel.original_client_order_id == "ud-new-1"
    await until(lambda: not env.client.state.open_orders(), "the canceled order to leave the view")
    account = await fetch_account(env.rest)
    await until(
        lambda: env.client.state.balance("USDT") == next(b for b in account.balances if b.asset == "USDT"), "balances"
    )


async def test_reconnects_after_termination_and_drop_without_missing_a_fill(env: Env) -> None:
    sub = env.client.subscribe()
    await asyncio.wait_for(env.client.reconciled.wait(), WAIT)
    ws_api = env.server.app[WS_API]
    # The stream ends; while it is down an order is placed and a market order fills.
    ws_api.terminate_all()
    await next_matching(sub, lambda e: isinstance(e, StreamStatus) and e.state is StreamState.DISCONNECTED)
    price = await far_price(env.rest, below=True)
    await place(env.rest, "BUY", price, newClientOrderId="ud-gap")
    market = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
    await env.rest.signed("POST", "/api/v3/order", market, weight=1, order=True)
    await next_matching(sub, lambda e: isinstance(e, StreamStatus) and e.state is StreamState.RECONCILED)
    account = await fetch_account(env.rest)
    orders = await fetch_open_orders(env.rest)

    def matches() -> bool:
        state = env.client.state
        return state.balances() == tuple(
            sorted(account.balances, key=lambda b: b.asset)
        ) and state.open_orders() == tuple(sorted(orders, key=lambda o: (o.symbol, o.order_id)))

    await until(matches, "the reconciled view to match REST")
    assert any(o.client_order_id == "ud-gap" for o in env.client.state.open_orders())
    # An abrupt connection loss: the client reconnects and reconciles again.
    before = env.client.reconciliations
    for conn in list(ws_api.connections):
        conn.abort()
    await until(lambda: env.client.reconciliations > before and env.client.live, "a second reconciliation")
    assert env.client.connects >= 3


async def test_slow_subscriber_is_told_it_lagged_and_others_are_not_held_up(env: Env) -> None:
    await asyncio.wait_for(env.client.reconciled.wait(), WAIT)
    slow = Subscription(2, env.client._lag_snapshot, lambda s: None)
    fast = env.client.subscribe()
    env.client._subs.add(slow)
    price = await far_price(env.rest, below=True)
    for i in range(3):
        await place(env.rest, "BUY", price, newClientOrderId=f"lag-{i}")
    await next_matching(fast, lambda e: isinstance(e, ExecutionReport) and e.order.client_order_id == "lag-2")
    assert slow.lagged >= 1
    first = await slow.get()
    assert isinstance(first, StreamStatus) and first.state is StreamState.LAGGED
    snapshot = await slow.get()
    assert isinstance(snapshot, AccountPositionEvent) and any(b.asset == "BTC" for b in snapshot.balances)
