"""STOP_LOSS, STOP_LOSS_LIMIT, TAKE_PROFIT, TAKE_PROFIT_LIMIT: trigger direction, the
"would trigger immediately" rejection, triggering by the last trade price, cancel, locks."""

from __future__ import annotations

from typing import Any

import pytest

from exchange_sim.matching import EngineError, MatchingEngine, OrderResult

from . import SYMBOL, D, bal, limit, make_engine, market, xs


def trade_at(engine: MatchingEngine, price: str, now: int = 1000) -> OrderResult:
    """A market-maker trade at ``price`` (0.1 lot): rest one side, hit it with a MARKET order."""
    last = engine.last_price(SYMBOL)
    if last is None or D(price) >= last:
        limit(engine, "mm", "SELL", price, "0.1", now=now)
        return market(engine, "mm", "BUY", "0.1", now=now)
    limit(engine, "mm", "BUY", price, "0.1", now=now)
    return market(engine, "mm", "SELL", "0.1", now=now)


def stop(engine: MatchingEngine, account: str, side: str, order_type: str, stop_price: str, **kw: Any) -> OrderResult:
    extra: dict[str, Any] = {"quantity": "1", "stop_price": stop_price, "now_ms": kw.pop("now", 1000)}
    if order_type.endswith("_LIMIT"):
        extra["price"] = kw.pop("price", stop_price)
        extra["time_in_force"] = kw.pop("tif", "GTC")
    return engine.place_order(account, SYMBOL, side, order_type, **extra, **kw)


@pytest.mark.parametrize(
    ("order_type", "side", "stop_price", "accepted"),
    [
        # above the market: STOP_LOSS BUY, TAKE_PROFIT SELL
        ("STOP_LOSS", "BUY", "100.01", True),
        ("STOP_LOSS", "BUY", "100", False),
        ("STOP_LOSS", "BUY", "99", False),
        ("STOP_LOSS_LIMIT", "BUY", "101", True),
        ("STOP_LOSS_LIMIT", "BUY", "100", False),
        ("TAKE_PROFIT", "SELL", "101", True),
        ("TAKE_PROFIT", "SELL", "100", False),
        ("TAKE_PROFIT_LIMIT", "SELL", "101", True),
        ("TAKE_PROFIT_LIMIT", "SELL", "99", False),
        # below the market: STOP_LOSS SELL, TAKE_PROFIT BUY
        ("STOP_LOSS", "SELL", "99.99", True),
        ("STOP_LOSS", "SELL", "100", False),
        ("STOP_LOSS", "SELL", "101", False),
        ("STOP_LOSS_LIMIT", "SELL", "99", True),
        ("STOP_LOSS_LIMIT", "SELL", "100", False),
        ("TAKE_PROFIT", "BUY", "99", True),
        ("TAKE_PROFIT", "BUY", "100", False),
        ("TAKE_PROFIT_LIMIT", "BUY", "99", True),
        ("TAKE_PROFIT_LIMIT", "BUY", "101", False),
    ],
)
def test_trigger_direction_and_would_trigger_immediately(
    order_type: str, side: str, stop_price: str, accepted: bool
) -> None:
    engine = make_engine()
    trade_at(engine, "100")
    if accepted:
        result = stop(engine, "alice", side, order_type, stop_price)
        order = result.order
        assert (order.status, order.is_working, order.working_time) == ("NEW", False, -1)
        assert (order.type, order.stop_price) == (order_type, D(stop_price))
        assert result.trades == () and result.book_changes == ()
        assert [o.order_id for o in engine.open_orders("alice")] == [result.order_id]
    else:
        before = engine.balances("alice")
        with pytest.raises(EngineError) as info:
            stop(engine, "alice", side, order_type, stop_price)
        assert (info.value.code, info.value.msg) == (-2010, "Order would trigger immediately.")
        assert engine.balances("alice") == before
        assert engine.open_orders("alice") == []


def test_without_a_last_price_any_stop_is_accepted() -> None:
    engine = make_engine()
    assert stop(engine, "alice", "SELL", "STOP_LOSS", "200").order.status == "NEW"
    assert stop(engine, "alice", "BUY", "TAKE_PROFIT", "200").order.status == "NEW"


# (type, side, stop, limit price, market-maker book before the trigger, expected
#  (status, executed, fills as (price, qty)), resting remainder as (side, price, qty) or None)
TRIGGERS: list[tuple[str, str, str, str | None, list[tuple[str, str, str]], tuple[str, str], list[tuple[str, str]]]] = [
    ("STOP_LOSS", "SELL", "95", None, [("BUY", "94", "5")], ("FILLED", "1"), [("94", "1")]),
    ("STOP_LOSS", "BUY", "105", None, [("SELL", "106", "5")], ("FILLED", "1"), [("106", "1")]),
    ("TAKE_PROFIT", "SELL", "105", None, [("BUY", "104", "5")], ("FILLED", "1"), [("104", "1")]),
    ("TAKE_PROFIT", "BUY", "95", None, [("SELL", "96", "5")], ("FILLED", "1"), [("96", "1")]),
    ("STOP_LOSS", "SELL", "95", None, [("BUY", "94", "0.25")], ("EXPIRED", "0.25"), [("94", "0.25")]),
    (
        "STOP_LOSS_LIMIT",
        "SELL",
        "95",
        "94.5",
        [("BUY", "94.5", "0.4"), ("BUY", "94", "5")],
        ("PARTIALLY_FILLED", "0.4"),
        [("94.5", "0.4")],
    ),
    (
        "STOP_LOSS_LIMIT",
        "BUY",
        "105",
        "105.5",
        [("SELL", "105.5", "0.4"), ("SELL", "106", "5")],
        ("PARTIALLY_FILLED", "0.4"),
        [("105.5", "0.4")],
    ),
    ("TAKE_PROFIT_LIMIT", "SELL", "105", "104.5", [("BUY", "104.5", "2")], ("FILLED", "1"), [("104.5", "1")]),
    ("TAKE_PROFIT_LIMIT", "BUY", "95", "95.5", [("SELL", "95.5", "2")], ("FILLED", "1"), [("95.5", "1")]),
    ("TAKE_PROFIT_LIMIT", "BUY", "95", "94", [("SELL", "95.5", "2")], ("NEW", "0"), []),
]


@pytest.mark.parametrize(("order_type", "side", "stop_price", "price", "setup", "expected", "expected_fills"), TRIGGERS)
def test_each_stop_type_triggers_on_the_last_trade_price(
    order_type: str,
    side: str,
    stop_price: str,
    price: str | None,
    setup: list[tuple[str, str, str]],
    expected: tuple[str, str],
    expected_fills: list[tuple[str, str]],
) -> None:
    engine = make_engine()
    trade_at(engine, "100", now=1)
    kwargs: dict[str, Any] = {"now": 2}
    if price is not None:
        kwargs["price"] = price
    placed = stop(engine, "alice", side, order_type, stop_price, **kwargs)
    for book_side, book_price, qty in setup:
        limit(engine, "mm", book_side, book_price, qty, now=3)
    # A trade one tick short of the stop does not trigger it.
    near = D(stop_price) + (D("0.01") if D(stop_price) < 100 else D("-0.01"))
    assert xs(trade_at(engine, str(near), now=4), "alice") == []
    assert engine.get_order("alice", SYMBOL, order_id=placed.order_id).working_time == -1

    result = trade_at(engine, stop_price, now=5)
    order = engine.get_order("alice", SYMBOL, order_id=placed.order_id)
    assert (order.status, order.executed_qty) == (expected[0], D(expected[1]))
    assert (order.is_working, order.working_time, order.type) == (True, 5, order_type)
    alice_trades = [(t.price, t.qty) for t in engine.my_trades("alice", SYMBOL)]
    assert alice_trades == [(D(p), D(q)) for p, q in expected_fills]
    sequence = xs(result, "alice")
    assert sequence[0] == ("NEW", "NEW")  # became working
    assert [x for x, _ in sequence[1:]] == ["TRADE"] * len(expected_fills) + (
        ["EXPIRED"] if expected[0] == "EXPIRED" else []
    )
    if order.status in ("NEW", "PARTIALLY_FILLED"):
        assert [o.order_id for o in engine.open_orders("alice")] == [placed.order_id]
        _, bids, asks = engine.depth(SYMBOL)
        own_side = bids if side == "BUY" else asks
        assert (D(price or "0"), D("1") - order.executed_qty) in own_side
    else:
        assert engine.open_orders("alice") == []
    still_open = order.status in ("NEW", "PARTIALLY_FILLED")
    assert bal(engine, "alice", "BTC")[1] == (D("1") - order.executed_qty if side == "SELL" and still_open else 0)


def test_stop_sell_locks_base_and_cancel_releases_and_untriggers() -> None:
    engine = make_engine()
    trade_at(engine, "100")
    placed = stop(engine, "alice", "SELL", "STOP_LOSS_LIMIT", "95", price="94")
    assert bal(engine, "alice", "BTC") == (D("9"), D("1"))
    result = engine.cancel_order("alice", SYMBOL, order_id=placed.order_id, now_ms=2000)
    assert result.order.status == "CANCELED"
    assert result.book_changes == ()
    assert bal(engine, "alice", "BTC") == (D("10"), D("0"))
    limit(engine, "mm", "BUY", "94", "5")
    trade_at(engine, "95")
    assert engine.my_trades("alice", SYMBOL) == []


def test_stop_market_buy_locks_at_stop_price_then_pays_the_fill() -> None:
    engine = make_engine()
    trade_at(engine, "100")
    stop(engine, "alice", "BUY", "STOP_LOSS", "105")
    assert bal(engine, "alice", "USDT") == (D("9895"), D("105"))
    limit(engine, "mm", "SELL", "106", "5")
    trade_at(engine, "105")
    assert bal(engine, "alice", "USDT") == (D("9894"), D("0"))
    assert bal(engine, "alice", "BTC") == (D("10.998"), D("0"))


def test_triggered_stop_market_buy_that_cannot_pay_expires() -> None:
    engine = make_engine(alice={"USDT": "106"})
    trade_at(engine, "100")
    placed = stop(engine, "alice", "BUY", "STOP_LOSS", "105")
    limit(engine, "mm", "SELL", "110", "5")
    result = trade_at(engine, "105")
    assert xs(result, "alice") == [("NEW", "NEW"), ("EXPIRED", "EXPIRED")]
    order = engine.get_order("alice", SYMBOL, order_id=placed.order_id)
    assert (order.status, order.expiry_reason, order.executed_qty) == ("EXPIRED", "REJECTED", D("0"))
    assert bal(engine, "alice", "USDT") == (D("106"), D("0"))


def test_triggered_stops_cascade_in_one_call() -> None:
    engine = make_engine()
    trade_at(engine, "100", now=1)
    first = stop(engine, "alice", "SELL", "STOP_LOSS", "95", now=2)
    second = stop(engine, "bob", "SELL", "STOP_LOSS", "94", now=3)
    limit(engine, "mm", "BUY", "94", "1", now=4)
    limit(engine, "mm", "BUY", "93", "5", now=4)
    result = trade_at(engine, "95", now=5)
    assert [t.price for t in result.trades] == [D("95"), D("94"), D("93")]
    assert engine.get_order("alice", SYMBOL, order_id=first.order_id).status == "FILLED"
    assert engine.get_order("bob", SYMBOL, order_id=second.order_id).status == "FILLED"
    assert {e.account_id for e in result.events} == {"alice", "bob"}
    assert engine.last_price(SYMBOL) == D("93")


def test_stops_trigger_in_order_id_order() -> None:
    engine = make_engine()
    trade_at(engine, "100", now=1)
    alice_stop = stop(engine, "alice", "SELL", "STOP_LOSS", "95", now=2)
    bob_stop = stop(engine, "bob", "SELL", "STOP_LOSS", "96", now=2)  # higher stop, later order id
    limit(engine, "mm", "BUY", "90", "0.5", now=3)
    limit(engine, "mm", "BUY", "89", "5", now=3)
    trade_at(engine, "95", now=4)  # both fire on the same trade; the lower order id goes first
    assert [t.price for t in engine.my_trades("alice", SYMBOL)] == [D("90"), D("89")]
    assert [t.price for t in engine.my_trades("bob", SYMBOL)] == [D("89")]
    assert alice_stop.order_id < bob_stop.order_id


def test_level_created_and_emptied_in_one_call_is_not_reported() -> None:
    """A triggered stop-limit rests a new level and the next triggered stop takes it, all in
    one call: no observer ever saw that level, so no change (and no update id) for it."""
    engine = make_engine()
    limit(engine, "bob", "SELL", "100.01", "0.01")  # update id 1
    stop(engine, "alice", "SELL", "TAKE_PROFIT_LIMIT", "100", price="100")  # no last price yet: accepted
    stop(engine, "alice", "BUY", "STOP_LOSS", "100")
    result = market(engine, "alice", "BUY", "0.001")  # trades at 100.01: both stops fire
    assert [t.price for t in result.trades] == [D("100.01"), D("100")]
    assert [(c.update_id, str(c.side), c.price, c.qty) for c in result.book_changes] == [
        (2, "SELL", D("100.01"), D("0.009"))
    ]
    assert engine.depth(SYMBOL) == (2, [], [(D("100.01"), D("0.009"))])
