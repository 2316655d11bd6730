"""Trading end to end: a real simulator and provider, orders over gRPC, faults from the control API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import aiohttp
import grpc
import pytest
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as t
from binance.provider.v1 import trading_pb2_grpc as t_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from launcher.system import System
from tests.e2e.conftest import running_system

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def trading_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("trading")
    env = {"SIM_CONTROL": "on", "PROVIDER_TRADING": "on", "PROVIDER_SYMBOLS": "BTCUSDT"}
    with running_system(root, env) as system:
        yield system


@pytest.fixture
async def clients(trading_system: System) -> AsyncIterator[tuple[t_grpc.TradingAsyncStub, aiohttp.ClientSession]]:
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{trading_system.ports.provider}") as channel,
        aiohttp.ClientSession(f"http://127.0.0.1:{trading_system.ports.sim}") as sim,
    ):
        await sim.post("/control/reset", json={})
        yield t_grpc.TradingStub(channel), sim


async def best_bid(sim: aiohttp.ClientSession) -> Decimal:
    async with sim.get("/api/v3/ticker/bookTicker", params={"symbol": "BTCUSDT"}) as response:
        return Decimal((await response.json())["bidPrice"])


def resting_buy(bid: Decimal, client_order_id: str = "") -> t.OrderSpec:
    """A LIMIT BUY 10 % under the bid: rests on the book."""
    price = (bid * Decimal("0.9")).quantize(Decimal("0.01"))
    return t.OrderSpec(
        symbol="BTCUSDT",
        side=c.SIDE_BUY,
        type=c.ORDER_TYPE_LIMIT,
        time_in_force=c.TIME_IN_FORCE_GTC,
        quantity="0.001",
        price=str(price),
        client_order_id=client_order_id,
    )


def error_info(error: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo, grpc.StatusCode]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info, error.code()
    raise AssertionError(f"no ErrorInfo in {status}")


async def test_place_get_open_cancel(clients: tuple[t_grpc.TradingAsyncStub, aiohttp.ClientSession]) -> None:
    stub, sim = clients
    placed = await stub.PlaceOrder(t.PlaceOrderRequest(order=resting_buy(await best_bid(sim))))
    order = placed.order
    assert order.status == c.ORDER_STATUS_NEW and order.order_id > 0 and not placed.reconciled
    assert order.client_order_id.startswith("pv-")
    got = await stub.GetOrder(t.GetOrderRequest(symbol="BTCUSDT", client_order_id=order.client_order_id))
    assert got.order.order_id == order.order_id and got.order.price == order.price
    open_orders = await stub.GetOpenOrders(t.GetOpenOrdersRequest(symbol="BTCUSDT"))
    assert order.order_id in [o.order_id for o in open_orders.orders]
    assert open_orders.source == c.DATA_SOURCE_EXCHANGE_REST and open_orders.as_of_ms > 0
    cancelled = await stub.CancelOrder(t.CancelOrderRequest(symbol="BTCUSDT", client_order_id=order.client_order_id))
    assert cancelled.order.status == c.ORDER_STATUS_CANCELED
    assert cancelled.order.client_order_id == order.client_order_id
    page = await stub.GetAllOrders(t.GetAllOrdersRequest(symbol="BTCUSDT", from_order_id=order.order_id, limit=1))
    assert [o.order_id for o in page.orders] == [order.order_id] and page.next_from_order_id == order.order_id + 1


async def test_filter_violation_names_nearest_valid(
    clients: tuple[t_grpc.TradingAsyncStub, aiohttp.ClientSession],
) -> None:
    stub, sim = clients
    spec = resting_buy(await best_bid(sim))
    spec.price = spec.price + "3"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PlaceOrder(t.PlaceOrderRequest(order=spec))
    info, code = error_info(caught.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and info.reason == "ERROR_REASON_FILTER_VIOLATION"
    assert "not a multiple of tickSize 0.01; nearest valid:" in (caught.value.details() or "")
    assert info.metadata["nearest_valid"] == spec.price[:-1]


async def test_unknown_execution_is_reconciled_and_placed_once(
    clients: tuple[t_grpc.TradingAsyncStub, aiohttp.ClientSession],
) -> None:
    stub, sim = clients
    async with sim.post("/control/order_unknown", json={"count": 1}) as response:
        assert response.status == 200
    spec = t.OrderSpec(
        symbol="BTCUSDT", side=c.SIDE_BUY, type=c.ORDER_TYPE_MARKET, quantity="0.001", client_order_id="e2e-unknown-1"
    )
    placed = await stub.PlaceOrder(t.PlaceOrderRequest(order=spec))
    assert placed.reconciled and placed.order.status == c.ORDER_STATUS_FILLED and placed.order.order_id > 0
    again = await stub.PlaceOrder(t.PlaceOrderRequest(order=spec))  # a caller's blind retry
    assert again.order.order_id == placed.order.order_id
    page = await stub.GetAllOrders(t.GetAllOrdersRequest(symbol="BTCUSDT", limit=1000))
    assert [o.client_order_id for o in page.orders].count("e2e-unknown-1") == 1


async def test_a_caller_that_gives_up_on_a_slow_venue_never_gets_its_order_placed_twice(
    clients: tuple[t_grpc.TradingAsyncStub, aiohttp.ClientSession],
) -> None:
    # The venue executes the order but answers late; the caller's deadline passes first and it
    # retries with the same client order id. The provider's placement goes on without its caller,
    # so the retry learns the order instead of sending it again.
    stub, sim = clients
    async with sim.post("/control/order_slow", json={"count": 1, "hold_seconds": 2}) as response:
        assert response.status == 200
    spec = t.OrderSpec(
        symbol="BTCUSDT", side=c.SIDE_BUY, type=c.ORDER_TYPE_MARKET, quantity="0.001", client_order_id="e2e-slow-1"
    )
    with pytest.raises(grpc.aio.AioRpcError) as gave_up:
        await stub.PlaceOrder(t.PlaceOrderRequest(order=spec), timeout=0.5)
    assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    again = await stub.PlaceOrder(t.PlaceOrderRequest(order=spec), timeout=15)
    assert again.reconciled and again.order.status == c.ORDER_STATUS_FILLED and again.order.order_id > 0
    page = await stub.GetAllOrders(t.GetAllOrdersRequest(symbol="BTCUSDT", limit=1000))
    assert [o.client_order_id for o in page.orders].count("e2e-slow-1") == 1


async def test_insufficient_balance_and_test_order(
    clients: tuple[t_grpc.TradingAsyncStub, aiohttp.ClientSession],
) -> None:
    stub, sim = clients
    spec = resting_buy(await best_bid(sim))
    spec.quantity = "8"  # ~8 x 0.9 x bid USDT: far above the demo account's 100000 USDT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PlaceOrder(t.PlaceOrderRequest(order=spec))
    info, code = error_info(caught.value)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and info.reason == "ERROR_REASON_INSUFFICIENT_BALANCE"
    assert info.metadata["asset"] == "USDT" and Decimal(info.metadata["available"]) > 0
    assert info.metadata["binance_code"] == "-2010"
    tested = await stub.TestOrder(
        t.TestOrderRequest(order=resting_buy(await best_bid(sim)), compute_commission_rates=True)
    )
    assert tested.valid and Decimal(tested.notional) > 0 and tested.standard_commission.taker


async def test_kill_switch(clients: tuple[t_grpc.TradingAsyncStub, aiohttp.ClientSession]) -> None:
    stub, sim = clients
    placed = await stub.PlaceOrder(t.PlaceOrderRequest(order=resting_buy(await best_bid(sim))))
    engaged = await stub.SetKillSwitch(t.SetKillSwitchRequest(engaged=True, reason="e2e drill"))
    assert engaged.kill_switch_engaged and not engaged.failures
    assert placed.order.order_id in [o.order_id for o in engaged.cancelled_orders]
    assert not (await stub.GetOpenOrders(t.GetOpenOrdersRequest(symbol="BTCUSDT"))).orders
    status = await stub.GetTradingStatus(t.GetTradingStatusRequest())
    assert status.trading_enabled and status.kill_switch_engaged and status.kill_switch_reason == "e2e drill"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PlaceOrder(t.PlaceOrderRequest(order=resting_buy(await best_bid(sim))))
    assert error_info(caught.value)[0].reason == "ERROR_REASON_TRADING_DISABLED"
    await stub.SetKillSwitch(t.SetKillSwitchRequest(engaged=False))
    again = await stub.PlaceOrder(t.PlaceOrderRequest(order=resting_buy(await best_bid(sim))))
    assert again.order.status == c.ORDER_STATUS_NEW
    cancelled = await stub.CancelAllOrders(t.CancelAllOrdersRequest(symbol="BTCUSDT"))
    assert [o.order_id for o in cancelled.orders] == [again.order.order_id]


async def test_trading_off_by_default(system: System) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{system.ports.provider}") as channel:
        stub: t_grpc.TradingAsyncStub = t_grpc.TradingStub(channel)
        spec = t.OrderSpec(
            symbol="BTCUSDT", side=c.SIDE_BUY, type=c.ORDER_TYPE_MARKET, quantity="0.001", client_order_id="off-1"
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.PlaceOrder(t.PlaceOrderRequest(order=spec))
        info, code = error_info(caught.value)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and info.reason == "ERROR_REASON_TRADING_DISABLED"
        assert not (await stub.GetTradingStatus(t.GetTradingStatusRequest())).trading_enabled


async def test_an_order_sent_when_the_provider_was_killed_is_not_placed_again_by_the_retry(
    trading_system: System, clients: tuple[t_grpc.TradingAsyncStub, aiohttp.ClientSession]
) -> None:
    # kill -9 while the venue holds the answer of an order it executed. The provider journaled the
    # client order id before sending; once restarted it asks the venue before sending it again.
    stub, sim = clients

    async def slow_answers() -> int:  # counted when the venue executes the order and starts holding
        async with sim.get("/control/counters") as response:
            return int((await response.json())["injected"]["order_slow"])

    held_before = await slow_answers()
    async with sim.post("/control/order_slow", json={"count": 1, "hold_seconds": 5}) as response:
        assert response.status == 200
    spec = t.OrderSpec(
        symbol="BTCUSDT", side=c.SIDE_BUY, type=c.ORDER_TYPE_MARKET, quantity="0.001", client_order_id="e2e-kill-1"
    )

    async def place() -> t.PlaceOrderResponse:
        return await stub.PlaceOrder(t.PlaceOrderRequest(order=spec), timeout=30)

    first = asyncio.create_task(place())
    deadline = time.monotonic() + 15
    while await slow_answers() == held_before:  # until the venue executed the order and holds its answer
        assert not first.done() and time.monotonic() < deadline, "the order never reached the venue"
        await asyncio.sleep(0.05)
    provider = trading_system.process("provider")
    await asyncio.to_thread(provider.kill)
    with pytest.raises(grpc.aio.AioRpcError):
        await first
    await asyncio.to_thread(provider.stop)  # reaps it and closes its log
    provider.start()
    await asyncio.to_thread(provider.wait_ready, 60.0)
    deadline = time.monotonic() + 30
    while True:  # the caller's retry; UNAVAILABLE until the new provider has loaded the exchange's rules
        try:
            again = await stub.PlaceOrder(t.PlaceOrderRequest(order=spec), timeout=30, wait_for_ready=True)
            break
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    assert again.reconciled and again.order.status == c.ORDER_STATUS_FILLED and again.order.order_id > 0
    page = await stub.GetAllOrders(t.GetAllOrdersRequest(symbol="BTCUSDT", limit=1000))
    assert [o.client_order_id for o in page.orders].count("e2e-kill-1") == 1
