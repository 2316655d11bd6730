"""Balances, locks and commissions to the last decimal; client order ids; cancel and
cancel-all; order and trade queries."""

from __future__ import annotations

import pytest

from exchange_sim.matching import EngineError, ExecutionReport

from . import SYMBOL, D, bal, limit, make_engine, make_spec, market, xs


def test_resting_orders_lock_and_cancel_unlocks() -> None:
    engine = make_engine()
    buy = limit(engine, "alice", "BUY", "100.01", "1.5")
    assert bal(engine, "alice", "USDT") == (D("9849.985"), D("150.015"))
    sell = limit(engine, "alice", "SELL", "105", "2.5")
    assert bal(engine, "alice", "BTC") == (D("7.5"), D("2.5"))
    engine.cancel_order("alice", SYMBOL, order_id=buy.order_id, now_ms=2)
    engine.cancel_order("alice", SYMBOL, order_id=sell.order_id, now_ms=3)
    assert bal(engine, "alice", "USDT") == (D("10000"), D("0"))
    assert bal(engine, "alice", "BTC") == (D("10"), D("0"))
    assert engine.fees_collected() == {}


def test_fill_moves_funds_and_charges_maker_and_taker_commission_on_received_asset() -> None:
    engine = make_engine()
    limit(engine, "bob", "SELL", "100", "1")  # maker, 0.1 % of the USDT received
    result = limit(engine, "alice", "BUY", "100.5", "1")  # taker, 0.2 % of the BTC received
    (fill,) = result.fills
    assert (fill.price, fill.qty, fill.commission, fill.commission_asset) == (D("100"), D("1"), D("0.002"), "BTC")
    assert bal(engine, "alice", "USDT") == (D("9900"), D("0"))  # locked 100.5, paid 100, got 0.5 back
    assert bal(engine, "alice", "BTC") == (D("10.998"), D("0"))
    assert bal(engine, "bob", "USDT") == (D("10099.9"), D("0"))
    assert bal(engine, "bob", "BTC") == (D("9"), D("0"))
    assert engine.fees_collected() == {"BTC": D("0.002"), "USDT": D("0.1")}


def test_partial_fill_keeps_the_lock_of_the_remainder() -> None:
    engine = make_engine()
    limit(engine, "alice", "BUY", "100", "2")
    assert bal(engine, "alice", "USDT") == (D("9800"), D("200"))
    market(engine, "bob", "SELL", "0.5")
    assert bal(engine, "alice", "USDT") == (D("9800"), D("150"))
    assert bal(engine, "alice", "BTC") == (D("10.4995"), D("0"))  # maker 0.1 % of 0.5
    assert bal(engine, "bob", "USDT") == (D("10049.9"), D("0"))  # taker 0.2 % of 50
    assert bal(engine, "bob", "BTC") == (D("9.5"), D("0"))
    engine.cancel_order("alice", SYMBOL, order_id=1, now_ms=5)
    assert bal(engine, "alice", "USDT") == (D("9950"), D("0"))


def test_commission_is_floored_to_the_asset_precision() -> None:
    engine = make_engine(make_spec(taker_commission=D("0.000123"), maker_commission=D("0.00077")))
    limit(engine, "bob", "SELL", "1000.01", "0.003")
    result = market(engine, "alice", "BUY", "0.003")
    # taker: 0.003 BTC * 0.000123 = 0.000000369 -> 0.00000036
    assert result.fills[0].commission == D("0.00000036")
    # maker: 3.00003 USDT * 0.00077 = 0.0023100231 -> 0.00231002
    assert bal(engine, "bob", "USDT") == (D("10000") + D("3.00003") - D("0.00231002"), D("0"))
    assert bal(engine, "alice", "BTC") == (D("10.003") - D("0.00000036"), D("0"))
    assert engine.fees_collected() == {"BTC": D("0.00000036"), "USDT": D("0.00231002")}


def test_market_buy_needs_the_cost_of_what_it_can_fill() -> None:
    engine = make_engine(alice={"USDT": "150"})
    limit(engine, "mm", "SELL", "100", "1")
    limit(engine, "mm", "SELL", "200", "1")
    with pytest.raises(EngineError) as info:
        market(engine, "alice", "BUY", "1.5")  # 100 + 100 = 200 > 150
    assert (info.value.code, info.value.msg) == (-2010, "Account has insufficient balance for requested action.")
    assert bal(engine, "alice", "USDT") == (D("150"), D("0"))
    assert engine.depth(SYMBOL)[2] == [(D("100"), D("1")), (D("200"), D("1"))]
    result = market(engine, "alice", "BUY", "1.25")  # 100 + 50 = 150
    assert (result.order.status, result.order.cummulative_quote_qty) == ("FILLED", D("150"))
    assert bal(engine, "alice", "USDT") == (D("0"), D("0"))
    assert bal(engine, "alice", "BTC") == (D("1.2475"), D("0"))  # 1.25 - 0.2 %


def test_insufficient_quote_balance_for_quote_order_qty() -> None:
    engine = make_engine(alice={"USDT": "50"})
    limit(engine, "mm", "SELL", "100", "1")
    with pytest.raises(EngineError) as info:
        market(engine, "alice", "BUY", quote="60")
    assert info.value.code == -2010
    assert market(engine, "alice", "BUY", quote="50").order.executed_qty == D("0.5")


def test_duplicate_client_order_id_among_open_orders_and_reuse_after_close() -> None:
    engine = make_engine()
    first = limit(engine, "alice", "BUY", "90", "1", new_client_order_id="my-order-1")
    assert first.order.client_order_id == "my-order-1"
    before = engine.balances("alice")
    with pytest.raises(EngineError) as info:
        limit(engine, "alice", "BUY", "91", "1", new_client_order_id="my-order-1")
    assert (info.value.code, info.value.msg) == (-2010, "Duplicate order sent.")
    assert engine.balances("alice") == before
    # Another account may use the same id.
    assert limit(engine, "bob", "SELL", "110", "1", new_client_order_id="my-order-1").order.status == "NEW"
    engine.cancel_order("alice", SYMBOL, orig_client_order_id="my-order-1", now_ms=2)
    second = limit(engine, "alice", "SELL", "109", "1", new_client_order_id="my-order-1")  # reuse once closed
    assert engine.get_order("alice", SYMBOL, orig_client_order_id="my-order-1").order_id == second.order_id
    assert engine.get_order("alice", SYMBOL, order_id=first.order_id).status == "CANCELED"
    # A filled order frees its id too.
    market(engine, "mm", "BUY", "1")  # best ask: alice's 109
    assert engine.get_order("alice", SYMBOL, order_id=second.order_id).status == "FILLED"
    third = limit(engine, "alice", "BUY", "90", "1", new_client_order_id="my-order-1")
    assert third.order.status == "NEW"


def test_generated_client_order_ids_are_unique() -> None:
    engine = make_engine()
    ids = {limit(engine, "alice", "BUY", str(90 + i), "0.1").client_order_id for i in range(5)}
    assert len(ids) == 5
    assert all(1 <= len(i) <= 36 for i in ids)


def test_cancel_by_id_or_client_id() -> None:
    engine = make_engine()
    order = limit(engine, "alice", "BUY", "90", "1", new_client_order_id="abc")
    result = engine.cancel_order("alice", SYMBOL, orig_client_order_id="abc", new_client_order_id="cxl-1", now_ms=7)
    assert result.cancel_client_order_id == "cxl-1"
    view = result.order
    assert (view.order_id, view.client_order_id, view.status, view.update_time) == (
        order.order_id,
        "abc",
        "CANCELED",
        7,
    )
    assert xs(result, "alice") == [("CANCELED", "CANCELED")]
    generated = engine.cancel_order(
        "alice", SYMBOL, order_id=limit(engine, "alice", "BUY", "90", "1").order_id, now_ms=8
    )
    assert generated.cancel_client_order_id


@pytest.mark.parametrize(
    ("kwargs", "code", "msg"),
    [
        ({}, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"),
        ({"order_id": 99}, -2011, "Unknown order sent."),
        ({"orig_client_order_id": "nope"}, -2011, "Unknown order sent."),
        ({"order_id": 1, "orig_client_order_id": "other"}, -2011, "Unknown order sent."),
        ({"order_id": 2}, -2011, "Unknown order sent."),  # bob's order
        ({"order_id": 3}, -2011, "Unknown order sent."),  # already canceled
        ({"order_id": 4}, -2011, "Unknown order sent."),  # filled
        ({"orig_client_order_id": ""}, -1119, "Original client order ID was empty."),
    ],
)
def test_cancel_rejections(kwargs: dict[str, object], code: int, msg: str) -> None:
    engine = make_engine()
    limit(engine, "alice", "BUY", "90", "1", new_client_order_id="mine")  # 1
    limit(engine, "bob", "BUY", "90", "1")  # 2
    limit(engine, "alice", "BUY", "80", "1")  # 3
    engine.cancel_order("alice", SYMBOL, order_id=3, now_ms=2)
    limit(engine, "alice", "SELL", "100", "1")  # 4
    market(engine, "bob", "BUY", "1")  # 5: fills 4
    with pytest.raises(EngineError) as info:
        engine.cancel_order("alice", SYMBOL, now_ms=3, **kwargs)  # type: ignore[arg-type]
    assert (info.value.code, info.value.msg) == (code, msg)


def test_cancel_open_orders_returns_each_canceled_order() -> None:
    engine = make_engine()
    a = limit(engine, "alice", "BUY", "90", "1").order_id
    b = limit(engine, "alice", "SELL", "110", "2").order_id
    c = engine.place_order("alice", SYMBOL, "SELL", "STOP_LOSS", quantity="1", stop_price="80", now_ms=1).order_id
    limit(engine, "bob", "BUY", "91", "1")
    result = engine.cancel_open_orders("alice", SYMBOL, now_ms=9)
    assert [(x.order.order_id, x.order.status) for x in result.canceled] == [
        (a, "CANCELED"),
        (b, "CANCELED"),
        (c, "CANCELED"),
    ]
    assert len({x.cancel_client_order_id for x in result.canceled}) == 3
    assert [(str(c.side), c.price, c.qty) for c in result.book_changes] == [
        ("BUY", D("90"), D("0")),
        ("SELL", D("110"), D("0")),
    ]
    assert [e.execution_type for e in result.events if isinstance(e, ExecutionReport)] == ["CANCELED"] * 3
    assert engine.open_orders("alice") == []
    assert len(engine.open_orders("bob")) == 1
    assert bal(engine, "alice", "USDT") == (D("10000"), D("0"))
    assert bal(engine, "alice", "BTC") == (D("10"), D("0"))
    with pytest.raises(EngineError) as info:
        engine.cancel_open_orders("alice", SYMBOL, now_ms=10)
    assert (info.value.code, info.value.msg) == (-2011, "Unknown order sent.")


def test_get_order_rejections() -> None:
    engine = make_engine()
    limit(engine, "alice", "BUY", "90", "1", new_client_order_id="a1")
    limit(engine, "bob", "BUY", "90", "1", new_client_order_id="b1")
    cases: list[tuple[dict[str, object], int, str]] = [
        ({}, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"),
        ({"order_id": 5}, -2013, "Order does not exist."),
        ({"order_id": 2}, -2013, "Order does not exist."),
        ({"orig_client_order_id": "b1"}, -2013, "Order does not exist."),
        ({"order_id": 1, "orig_client_order_id": "zz"}, -2039, "Client order ID is not correct for this order ID."),
    ]
    for kwargs, code, msg in cases:
        with pytest.raises(EngineError) as info:
            engine.get_order("alice", SYMBOL, **kwargs)  # type: ignore[arg-type]
        assert (info.value.code, info.value.msg) == (code, msg)
    view = engine.get_order("alice", SYMBOL, order_id=1, orig_client_order_id="a1")
    assert (view.order_id, view.client_order_id, view.account_id, view.order_list_id) == (1, "a1", "alice", -1)


def test_open_orders_and_all_orders() -> None:
    engine = make_engine()
    day = 24 * 60 * 60 * 1000
    for i, now in enumerate((1_000, 2_000, 3_000, 4_000, 5_000)):
        limit(engine, "alice", "BUY", str(90 + i), "0.1", now=now)
    engine.cancel_order("alice", SYMBOL, order_id=2, now_ms=6_000)
    assert [o.order_id for o in engine.open_orders("alice", SYMBOL)] == [1, 3, 4, 5]
    assert [o.order_id for o in engine.open_orders("alice")] == [1, 3, 4, 5]

    def ids(**kwargs: object) -> list[int]:
        return [o.order_id for o in engine.all_orders("alice", SYMBOL, **kwargs)]  # type: ignore[arg-type]

    assert ids() == [1, 2, 3, 4, 5]
    assert ids(limit=2) == [4, 5]
    assert ids(order_id=3) == [3, 4, 5]
    assert ids(order_id=2, limit=2) == [2, 3]
    assert ids(start_time=2_000, limit=2) == [2, 3]
    assert ids(start_time=2_000, end_time=4_000) == [2, 3, 4]
    assert ids(end_time=3_000, limit=2) == [2, 3]
    assert engine.all_orders("alice", SYMBOL)[1].status == "CANCELED"
    for kwargs, code in (
        ({"start_time": 0, "end_time": day + 1}, -1127),
        ({"limit": 0}, -1130),
        ({"limit": 1001}, -1130),
    ):
        with pytest.raises(EngineError) as info:
            engine.all_orders("alice", SYMBOL, **kwargs)
        assert info.value.code == code
    assert engine.all_orders("bob", SYMBOL) == []


def test_my_trades() -> None:
    engine = make_engine()
    limit(engine, "bob", "SELL", "100", "1", now=1_000)  # order 1
    market(engine, "alice", "BUY", "0.4", now=2_000)  # order 2, trade 1
    market(engine, "alice", "BUY", "0.5", now=3_000)  # order 3, trade 2
    limit(engine, "alice", "SELL", "99", "0.2", now=4_000)  # order 4, rests (no bid)
    market(engine, "bob", "BUY", "0.2", now=5_000)  # order 5, trade 3: alice is the maker seller
    trades = engine.my_trades("alice", SYMBOL)
    assert [(t.id, t.order_id, t.is_buyer, t.is_maker) for t in trades] == [
        (1, 2, True, False),
        (2, 3, True, False),
        (3, 4, False, True),
    ]
    t = trades[0]
    assert (t.symbol, t.price, t.qty, t.quote_qty, t.commission, t.commission_asset, t.time) == (
        SYMBOL,
        D("100"),
        D("0.4"),
        D("40"),
        D("0.0008"),
        "BTC",
        2_000,
    )
    assert (t.order_list_id, t.is_best_match) == (-1, True)
    assert (trades[2].commission, trades[2].commission_asset) == (D("0.0198"), "USDT")  # maker 0.1 % of 19.8

    def ids(**kwargs: object) -> list[int]:
        return [t.id for t in engine.my_trades("alice", SYMBOL, **kwargs)]  # type: ignore[arg-type]

    assert ids(limit=2) == [2, 3]
    assert ids(from_id=2) == [2, 3]
    assert ids(order_id=3) == [2]
    assert ids(order_id=2, from_id=2) == []
    assert ids(start_time=3_000) == [2, 3]
    assert ids(start_time=2_000, end_time=3_000) == [1, 2]
    assert ids(end_time=3_000, limit=1) == [2]
    with pytest.raises(EngineError) as info:
        ids(from_id=1, start_time=1)
    assert (info.value.code, info.value.msg) == (-1128, "Combination of optional parameters invalid.")
    assert [t.id for t in engine.my_trades("bob", SYMBOL)] == [1, 2, 3]


def test_balances_lists_every_asset() -> None:
    engine = make_engine(alice={"USDT": "5", "BNB": "1.5"})
    assert [(b.asset, b.free, b.locked) for b in engine.balances("alice")] == [
        ("USDT", D("5"), D("0")),
        ("BNB", D("1.5"), D("0")),
    ]
    assert engine.balance("alice", "ETH").free == 0
    with pytest.raises(ValueError, match="already exists"):
        engine.open_account("alice", {})
    with pytest.raises(ValueError, match="decimals"):
        engine.open_account("carol", {"USDT": "0.000000001"})
