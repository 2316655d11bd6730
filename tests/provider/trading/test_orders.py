"""The order manager against a fake exchange REST: switches, idempotency and reconciliation."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from provider.binance.signing import ParamValue
from provider.errors import (
    BinanceError,
    ExchangeUnavailable,
    ExecutionUnknown,
    FilterViolation,
    InsufficientBalance,
    NotionalLimit,
    TradingDisabled,
)
from provider.marketdata.model import AvgPrice, SymbolRules
from provider.trading.journal import PlacementJournal
from provider.trading.model import OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from provider.trading.orders import OrderManager, ReconcilePolicy, TradingLimits
from tests.provider.trading.rules import btcusdt


class Rules:
    def __init__(self) -> None:
        self._rules = btcusdt()

    def validate(self, symbol: str) -> str:
        return symbol.upper()

    def rules(self, symbol: str) -> SymbolRules:
        return self._rules


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def now_ms(self) -> int:
        return self.now


@dataclass
class FakeRest:
    """A tiny exchange: POST places (or fakes an unknown outcome), GET finds by client id."""

    unknown_outcomes: int = 0  # next N placements execute but answer -1007
    query_failures: int = 0  # next N queries fail with ExchangeUnavailable
    reject: BinanceError | None = None
    clock: Clock = field(default_factory=Clock)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, ParamValue]]] = field(default_factory=list)
    has_credentials: bool = True
    answer_after: asyncio.Event | None = None  # POST executes the order at once but answers only once set
    posted: asyncio.Event = field(default_factory=asyncio.Event)  # an order reached the exchange

    def posts(self) -> int:
        return sum(1 for method, path, _ in self.calls if (method, path) == ("POST", "/api/v3/order"))

    async def avg_price(self, symbol: str) -> AvgPrice:
        return AvgPrice(5, "50000.00", None)

    async def signed(
        self, method: str, path: str, params: Mapping[str, ParamValue], *, weight: int, order: bool = False
    ) -> Any:
        self.calls.append((str(method), str(path), dict(params)))
        key = (str(method), str(path))
        if key == ("POST", "/api/v3/order"):
            if self.reject is not None:
                raise self.reject
            client_id = str(params["newClientOrderId"])
            self.orders[client_id] = {
                "symbol": params["symbol"],
                "orderId": len(self.orders) + 1,
                "clientOrderId": client_id,
                "price": params.get("price", "0"),
                "origQty": params.get("quantity", "0"),
                "executedQty": "0",
                "cummulativeQuoteQty": "0",
                "status": "NEW",
                "timeInForce": params.get("timeInForce", "GTC"),
                "type": params["type"],
                "side": params["side"],
                "time": self.clock.now,
                "updateTime": self.clock.now,
                "isWorking": True,
            }
            if self.unknown_outcomes:
                self.unknown_outcomes -= 1
                raise ExecutionUnknown("POST /api/v3/order: -1007: Timeout", code=-1007, http_status=408)
            self.posted.set()
            if self.answer_after is not None:
                await self.answer_after.wait()
            return {**self.orders[client_id], "transactTime": self.clock.now, "fills": []}
        if key == ("GET", "/api/v3/order"):
            if self.query_failures:
                self.query_failures -= 1
                raise ExchangeUnavailable("GET /api/v3/order: HTTP 503")
            found = self.orders.get(str(params.get("origClientOrderId")))
            if found is None:
                raise BinanceError(-2013, "Order does not exist.", 400)
            return found
        if key == ("GET", "/api/v3/openOrders"):
            return [o for o in self.orders.values() if o["status"] == "NEW"]
        if key == ("DELETE", "/api/v3/openOrders"):
            cancelled = [o for o in self.orders.values() if o["status"] == "NEW" and o["symbol"] == params["symbol"]]
            for o in cancelled:
                o["status"] = "CANCELED"
            if not cancelled:
                raise BinanceError(-2011, "Unknown order sent.", 400)
            return cancelled
        if key == ("GET", "/api/v3/account"):
            return {
                "commissionRates": {"maker": "0.001", "taker": "0.001", "buyer": "0", "seller": "0"},
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "accountType": "SPOT",
                "updateTime": 1,
                "balances": [{"asset": "USDT", "free": "12.50000000", "locked": "0.00000000"}],
            }
        raise AssertionError(f"unexpected call {key}")


FAST = ReconcilePolicy(delays_s=(0.0, 0.0), absent_after_ms=30_000, drain_timeout_s=1.0)
LIMIT = OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, quantity="0.001", price="45000.12")


def manager(rest: FakeRest, *, enabled: bool = True, **caps: Decimal) -> OrderManager:
    return OrderManager(rest, Rules(), TradingLimits(enabled, **caps), policy=FAST)


async def test_refused_unless_enabled_and_nothing_sent() -> None:
    rest = FakeRest()
    with pytest.raises(TradingDisabled, match="PROVIDER_TRADING=on"):
        await manager(rest, enabled=False).place(LIMIT)
    assert rest.calls == []


async def test_place_generates_client_id_and_sends_once() -> None:
    rest = FakeRest()
    placed = await manager(rest).place(LIMIT)
    assert rest.posts() == 1
    sent = rest.calls[0][2]
    assert str(sent["newClientOrderId"]).startswith("pv-") and sent["newOrderRespType"] == "FULL"
    assert sent["price"] == "45000.12" and sent["quantity"] == "0.001"
    assert placed.order.status is OrderStatus.NEW and placed.order.client_order_id == sent["newClientOrderId"]
    assert not placed.reconciled


async def test_filter_violation_sends_nothing() -> None:
    rest = FakeRest()
    with pytest.raises(FilterViolation):
        await manager(rest).place(
            OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, "0.001", price="1.001")
        )
    assert rest.calls == []


async def test_unknown_execution_is_reconciled_to_the_real_outcome() -> None:
    rest = FakeRest(unknown_outcomes=1)
    request = OrderRequest(
        "BTCUSDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, "0.001", price="45000.12", client_order_id="abc-1"
    )
    placed = await manager(rest).place(request)
    assert placed.reconciled and placed.order.status is OrderStatus.NEW and placed.order.order_id == 1
    assert rest.posts() == 1


async def test_query_failing_answers_unknown_and_never_places_twice() -> None:
    rest = FakeRest(unknown_outcomes=1, query_failures=100)
    orders = manager(rest)
    request = OrderRequest(
        "BTCUSDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, "0.001", price="45000.12", client_order_id="abc-2"
    )
    placed = await orders.place(request)
    assert placed.order.status is OrderStatus.UNKNOWN and placed.order.order_id == 0 and placed.reconciled
    assert placed.order.client_order_id == "abc-2" and placed.order.price == "45000.12"
    # The caller retries with the same id while the exchange still cannot answer: still one placement.
    again = await orders.place(request)
    assert again.order.status is OrderStatus.UNKNOWN
    assert rest.posts() == 1
    # Once queries work, the retry learns the real order, and still nothing is sent again.
    rest.query_failures = 0
    learnt = await orders.place(request)
    assert learnt.order.status is OrderStatus.NEW and learnt.order.order_id == 1
    assert rest.posts() == 1


async def test_unknown_then_absent_long_enough_is_sent_again_once() -> None:
    rest = FakeRest(unknown_outcomes=1, query_failures=100)
    orders = manager(rest)
    request = OrderRequest(
        "BTCUSDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, "0.001", price="45000.12", client_order_id="abc-3"
    )
    await orders.place(request)
    rest.query_failures = 0
    await absent_then_sent_once_long_absent(orders, rest, request)


async def absent_then_sent_once_long_absent(orders: OrderManager, rest: FakeRest, request: OrderRequest) -> None:
    """After one POST whose outcome was never learnt, the exchange has no such order: a retry is not
    sent while the order may still appear, and is sent once it has been absent for 30 s."""
    rest.orders.clear()  # the exchange never executed it
    assert (await orders.place(request)).order.status is OrderStatus.UNKNOWN  # too early to call it absent
    assert rest.posts() == 1
    rest.clock.now += 30_000
    assert (await orders.place(request)).order.status is OrderStatus.NEW
    assert rest.posts() == 2


async def test_duplicate_client_order_id_is_answered_from_the_exchange() -> None:
    rest = FakeRest()
    orders = manager(rest)
    request = OrderRequest(
        "BTCUSDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, "0.001", price="45000.12", client_order_id="dup"
    )
    first = await orders.place(request)
    second = await orders.place(request)
    assert second.reconciled and second.order.order_id == first.order.order_id
    assert rest.posts() == 1


async def test_insufficient_balance_reports_available_amount() -> None:
    rest = FakeRest(reject=BinanceError(-2010, "Account has insufficient balance for requested action.", 400))
    with pytest.raises(InsufficientBalance) as info:
        await manager(rest).place(LIMIT)
    assert info.value.asset == "USDT" and info.value.available == "12.50000000"
    assert "available 12.5 USDT" in info.value.message and "45.00012" in info.value.message


async def test_notional_caps() -> None:
    rest = FakeRest()
    with pytest.raises(NotionalLimit, match="PROVIDER_MAX_ORDER_NOTIONAL"):
        await manager(rest, max_order_notional=Decimal(40)).place(LIMIT)
    # MARKET by quantity is priced at the average price (50000): 0.001 x 50000 = 50 > 40.
    with pytest.raises(NotionalLimit):
        await manager(rest, max_order_notional=Decimal(40)).place(
            OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, quantity="0.001")
        )
    assert rest.posts() == 0
    capped = manager(rest, max_symbol_notional=Decimal(100))
    await capped.place(LIMIT)
    await capped.place(LIMIT)
    with pytest.raises(NotionalLimit, match="PROVIDER_MAX_SYMBOL_NOTIONAL"):
        await capped.place(LIMIT)  # 2 x 45 resting + 45 > 100
    assert rest.posts() == 2


async def test_kill_switch_cancels_open_orders_and_refuses_until_released() -> None:
    rest = FakeRest()
    orders = manager(rest)
    await orders.place(LIMIT)
    result = await orders.set_kill_switch(True, "drill")
    assert result.engaged and [o.status for o in result.cancelled] == [OrderStatus.CANCELED] and not result.failures
    assert orders.status().kill_switch_engaged and orders.status().kill_switch_reason == "drill"
    with pytest.raises(TradingDisabled, match="kill switch"):
        await orders.place(LIMIT)
    await orders.set_kill_switch(False, "")
    assert (await orders.place(LIMIT)).order.status is OrderStatus.NEW


async def test_a_caller_that_stops_waiting_does_not_cut_the_placement_short() -> None:
    # A gRPC caller cancelled (its client left, its deadline passed) while the exchange executes the
    # order: the placement must still finish and remember its outcome, or a retry would place it twice.
    rest = FakeRest(answer_after=asyncio.Event())
    orders = manager(rest)
    request = OrderRequest(
        "BTCUSDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, "0.001", price="45000.12", client_order_id="left-1"
    )
    caller = asyncio.create_task(orders.place(request))
    await asyncio.wait_for(rest.posted.wait(), 5)  # the order is on the exchange; its answer is not back yet
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert rest.answer_after is not None
    rest.answer_after.set()
    retry = await asyncio.wait_for(orders.place(request), 5)
    assert retry.reconciled and retry.order.order_id == 1
    assert rest.posts() == 1


async def test_close_waits_for_placements_in_flight_then_cancels_what_is_left() -> None:
    rest = FakeRest(answer_after=asyncio.Event())
    orders = manager(rest)
    caller = asyncio.create_task(orders.place(LIMIT))
    await asyncio.wait_for(rest.posted.wait(), 5)
    caller.cancel()  # as the gRPC server does at the end of its shutdown grace
    await asyncio.wait_for(orders.close(timeout_s=0.05), 5)  # the answer never comes: cancelled
    assert orders.in_flight == 0
    with pytest.raises(asyncio.CancelledError):
        await caller
    finished = FakeRest(answer_after=asyncio.Event())
    orders = manager(finished)
    caller = asyncio.create_task(orders.place(LIMIT))
    await asyncio.wait_for(finished.posted.wait(), 5)
    assert finished.answer_after is not None
    finished.answer_after.set()
    await asyncio.wait_for(orders.close(timeout_s=5), 5)  # waits for it to finish
    assert (await caller).order.status is OrderStatus.NEW


def restarted(rest: FakeRest, journal: PlacementJournal) -> OrderManager:
    """An order manager of a provider started again on the same journal."""
    return OrderManager(rest, Rules(), TradingLimits(True), policy=FAST, journal=journal)


SLOW = OrderRequest(
    "BTCUSDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, "0.001", price="45000.12", client_order_id="crash-1"
)


async def crash_mid_placement(rest: FakeRest, journal_dir: Path) -> OrderManager:
    """SLOW placed, the provider stopped while the exchange held the answer, then started again."""
    rest.answer_after = asyncio.Event()
    journal = PlacementJournal(journal_dir)
    before = restarted(rest, journal)
    caller = asyncio.create_task(before.place(SLOW))
    await asyncio.wait_for(rest.posted.wait(), 5)  # on the exchange; the provider dies before the answer
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await before.close(timeout_s=0)  # the placement ends with its process, its outcome unlearnt
    assert before.in_flight == 0
    journal.close()
    rest.answer_after = None
    return restarted(rest, PlacementJournal(journal_dir))


async def test_an_id_sent_before_a_crash_is_asked_for_before_it_is_sent_again(tmp_path: Path) -> None:
    rest = FakeRest()
    after = await crash_mid_placement(rest, tmp_path / "orders")
    retry = await after.place(SLOW)
    assert retry.reconciled and retry.order.order_id == 1
    assert rest.posts() == 1


async def test_an_id_sent_before_a_crash_and_not_found_is_not_sent_until_long_absent(tmp_path: Path) -> None:
    rest = FakeRest()
    after = await crash_mid_placement(rest, tmp_path / "orders")
    await absent_then_sent_once_long_absent(after, rest, SLOW)


async def test_a_refused_order_leaves_no_record_so_it_may_be_sent_again() -> None:
    rest = FakeRest(reject=BinanceError(-2010, "Account has insufficient balance for requested action.", 400))
    journal = PlacementJournal()
    orders = restarted(rest, journal)
    with pytest.raises(InsufficientBalance):
        await orders.place(SLOW)
    assert journal.get("crash-1") is None
    rest.reject = None
    assert (await orders.place(SLOW)).order.status is OrderStatus.NEW
    assert rest.posts() == 2
