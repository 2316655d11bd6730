"""Price-time matching, time-in-force, MARKET by quantity and by quoteOrderQty, LIMIT_MAKER,
public trades, book changes (update ids) and book queries."""

from __future__ import annotations

from decimal import Decimal

import pytest

from exchange_sim.matching import (
    BookChange,
    EngineError,
    LotSizeFilter,
    MatchingEngine,
    OrderResult,
    Side,
    fmt,
)

from . import SYMBOL, D, bal, limit, make_engine, make_spec, market


def fills(result: OrderResult) -> list[tuple[Decimal, Decimal]]:
    return [(f.price, f.qty) for f in result.fills]


def book(engine: MatchingEngine) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    _, bids, asks = engine.depth(SYMBOL, 100)
    return [(fmt(p), fmt(q)) for p, q in bids], [(fmt(p), fmt(q)) for p, q in asks]


def test_price_time_priority_across_accounts_and_levels() -> None:
    engine = make_engine()
    o1 = limit(engine, "bob", "SELL", "101", "0.5").order_id
    o2 = limit(engine, "bob", "SELL", "100", "1").order_id
    o3 = limit(engine, "mm", "SELL", "100", "0.3").order_id
    o4 = limit(engine, "bob", "SELL", "100", "0.2").order_id
    result = limit(engine, "alice", "BUY", "101", "1.6")
    assert fills(result) == [(D("100"), D("1")), (D("100"), D("0.3")), (D("100"), D("0.2")), (D("101"), D("0.1"))]
    assert [f.trade_id for f in result.fills] == [1, 2, 3, 4]
    assert result.order.status == "FILLED"
    assert result.order.cummulative_quote_qty == D("160.1")
    assert engine.get_order("bob", SYMBOL, order_id=o2).status == "FILLED"
    assert engine.get_order("bob", SYMBOL, order_id=o4).status == "FILLED"
    partial = engine.get_order("bob", SYMBOL, order_id=o1)
    assert (partial.status, partial.executed_qty) == ("PARTIALLY_FILLED", D("0.1"))
    assert o3 not in [o.order_id for o in engine.open_orders("mm")]  # market maker's orders: open ones only
    assert book(engine) == ([], [("101.00000000", "0.40000000")])


def test_same_price_is_first_in_first_out_for_bids_too() -> None:
    engine = make_engine()
    first = limit(engine, "alice", "BUY", "99", "1").order_id
    second = limit(engine, "bob", "BUY", "99", "1").order_id
    better = limit(engine, "bob", "BUY", "99.5", "1").order_id
    result = market(engine, "mm", "SELL", "2.5")
    assert fills(result) == [(D("99.5"), D("1")), (D("99"), D("1")), (D("99"), D("0.5"))]
    assert engine.get_order("bob", SYMBOL, order_id=better).status == "FILLED"
    assert engine.get_order("alice", SYMBOL, order_id=first).status == "FILLED"
    assert engine.get_order("bob", SYMBOL, order_id=second).executed_qty == D("0.5")


def test_partial_fill_across_levels_then_rest() -> None:
    engine = make_engine()
    limit(engine, "bob", "SELL", "100", "1")
    limit(engine, "bob", "SELL", "101", "0.5")
    limit(engine, "bob", "SELL", "102", "1")
    result = limit(engine, "alice", "BUY", "101", "2")
    assert fills(result) == [(D("100"), D("1")), (D("101"), D("0.5"))]
    assert (result.order.status, result.order.executed_qty) == ("PARTIALLY_FILLED", D("1.5"))
    assert book(engine) == ([("101.00000000", "0.50000000")], [("102.00000000", "1.00000000")])
    assert engine.open_orders("alice")[0].order_id == result.order_id


@pytest.mark.parametrize(
    ("tif", "price", "qty", "status", "executed", "reason", "asks_after"),
    [
        ("IOC", "100", "1.5", "EXPIRED", "1", "UNFILLED_IOC_QUANTITY_EXPIRED", [("101.00000000", "0.50000000")]),
        ("IOC", "101", "1.2", "FILLED", "1.2", "NONE", [("101.00000000", "0.30000000")]),
        (
            "IOC",
            "99",
            "1",
            "EXPIRED",
            "0",
            "UNFILLED_IOC_QUANTITY_EXPIRED",
            [("100.00000000", "1.00000000"), ("101.00000000", "0.50000000")],
        ),
        (
            "FOK",
            "100",
            "1.5",
            "EXPIRED",
            "0",
            "UNFILLED_FOK_ORDER_EXPIRED",
            [("100.00000000", "1.00000000"), ("101.00000000", "0.50000000")],
        ),
        (
            "FOK",
            "101",
            "1.6",
            "EXPIRED",
            "0",
            "UNFILLED_FOK_ORDER_EXPIRED",
            [("100.00000000", "1.00000000"), ("101.00000000", "0.50000000")],
        ),
        ("FOK", "101", "1.5", "FILLED", "1.5", "NONE", []),
    ],
)
def test_ioc_and_fok(
    tif: str, price: str, qty: str, status: str, executed: str, reason: str, asks_after: list[tuple[str, str]]
) -> None:
    engine = make_engine()
    limit(engine, "bob", "SELL", "100", "1")
    limit(engine, "bob", "SELL", "101", "0.5")
    before = bal(engine, "alice", "USDT")
    result = limit(engine, "alice", "BUY", price, qty, tif=tif)
    order = result.order
    assert (order.status, order.executed_qty, order.expiry_reason) == (status, D(executed), reason)
    assert order.time_in_force == tif
    assert book(engine) == ([], asks_after)
    assert engine.open_orders("alice") == []
    free, locked = bal(engine, "alice", "USDT")
    assert locked == 0
    assert free == before[0] - order.cummulative_quote_qty
    if status == "EXPIRED" and executed == "0":
        assert result.trades == () and result.book_changes == ()


def test_market_buy_by_quantity_walks_levels() -> None:
    engine = make_engine()
    limit(engine, "bob", "SELL", "100", "1")
    limit(engine, "bob", "SELL", "101", "1")
    result = market(engine, "alice", "BUY", "1.2")
    assert fills(result) == [(D("100"), D("1")), (D("101"), D("0.2"))]
    order = result.order
    assert (order.status, order.price, order.cummulative_quote_qty) == ("FILLED", D("0"), D("120.2"))
    assert (order.type, order.time_in_force) == ("MARKET", "GTC")
    assert bal(engine, "alice", "USDT") == (D("9879.8"), D("0"))


@pytest.mark.parametrize(
    ("bids", "qty", "status", "executed", "reason"),
    [
        ([("99", "0.5")], "1", "EXPIRED", "0.5", "INSUFFICIENT_LIQUIDITY"),
        ([], "1", "EXPIRED", "0", "INSUFFICIENT_LIQUIDITY"),
        ([("99", "0.5"), ("98", "0.5")], "1", "FILLED", "1", "NONE"),
    ],
)
def test_market_sell_on_thin_book_expires(
    bids: list[tuple[str, str]], qty: str, status: str, executed: str, reason: str
) -> None:
    engine = make_engine()
    for price, q in bids:
        limit(engine, "mm", "BUY", price, q)
    result = market(engine, "alice", "SELL", qty)
    order = result.order
    assert (order.status, order.executed_qty, order.expiry_reason) == (status, D(executed), reason)
    assert order.orig_qty == D(qty)
    assert bal(engine, "alice", "BTC") == (D("10") - D(executed), D("0"))


@pytest.mark.parametrize(
    ("side", "book_orders", "quote", "status", "orig_qty", "spent", "reason"),
    [
        # exact: 1 @ 100 + 0.5 @ 101 = 150.5
        ("BUY", [("100", "1"), ("101", "1")], "150.5", "FILLED", "1.5", "150.5", "NONE"),
        # 50 / 101 = 0.495049... -> 0.495 (LOT_SIZE step 0.001) -> 49.995
        ("BUY", [("100", "1"), ("101", "1")], "150", "FILLED", "1.495", "149.995", "NONE"),
        # thin book: everything there is, then EXPIRED
        ("BUY", [("100", "1")], "500", "EXPIRED", "1", "100", "INSUFFICIENT_LIQUIDITY"),
        # sell to receive 149.5: 1 @ 100 + 0.5 @ 99
        ("SELL", [("100", "1"), ("99", "1")], "149.5", "FILLED", "1.5", "149.5", "NONE"),
        ("SELL", [("100", "0.25")], "100", "EXPIRED", "0.25", "25", "INSUFFICIENT_LIQUIDITY"),
    ],
)
def test_market_by_quote_order_qty(
    side: str, book_orders: list[tuple[str, str]], quote: str, status: str, orig_qty: str, spent: str, reason: str
) -> None:
    engine = make_engine()
    for price, q in book_orders:
        limit(engine, "mm", "SELL" if side == "BUY" else "BUY", price, q)
    result = market(engine, "alice", side, quote=quote)
    order = result.order
    assert (order.status, order.orig_qty, order.executed_qty) == (status, D(orig_qty), D(orig_qty))
    assert (order.orig_quote_order_qty, order.cummulative_quote_qty) == (D(quote), D(spent))
    assert order.expiry_reason == reason
    usdt = bal(engine, "alice", "USDT")
    if side == "BUY":
        assert usdt == (D("10000") - D(spent), D("0"))
    else:  # taker commission 0.2 % of the quote received
        assert usdt == (D("10000") + D(spent) - D(spent) * D("0.002"), D("0"))


@pytest.mark.parametrize(
    ("quote", "market_lot", "msg"),
    [
        ("0.05", None, "Order book liquidity is less than LOT_SIZE filter minimum quantity."),
        (
            "0.5",
            LotSizeFilter(D("0.01"), D("100"), D("0.001")),
            "Order book liquidity is less than MARKET_LOT_SIZE filter minimum quantity.",
        ),
    ],
)
def test_quote_order_qty_below_minimum_quantity_is_rejected(
    quote: str, market_lot: LotSizeFilter | None, msg: str
) -> None:
    engine = make_engine(make_spec(market_lot_size=market_lot))
    limit(engine, "mm", "SELL", "100", "1")
    with pytest.raises(EngineError) as info:
        market(engine, "alice", "BUY", quote=quote)
    assert (info.value.code, info.value.msg) == (-2010, msg)
    assert engine.all_orders("alice", SYMBOL) == []


def test_quote_order_qty_respects_max_qty_and_both_steps() -> None:
    engine = make_engine(make_spec(market_lot_size=LotSizeFilter(D("0"), D("1.05"), D("0.01"))))
    limit(engine, "mm", "SELL", "100", "5")
    result = market(engine, "alice", "BUY", quote="1000")
    assert (result.order.status, result.order.executed_qty) == ("FILLED", D("1.05"))
    result = market(engine, "alice", "BUY", quote="1.999")  # 0.01999 -> 0.01 (MARKET_LOT_SIZE step)
    assert result.order.executed_qty == D("0.01")


def test_limit_maker_rejected_if_it_would_take_else_rests() -> None:
    engine = make_engine()
    limit(engine, "bob", "SELL", "100", "1")
    limit(engine, "bob", "BUY", "99", "1")
    before = (engine.balances("alice"), engine.depth(SYMBOL))
    for side, price in (("BUY", "100"), ("BUY", "100.5"), ("SELL", "99"), ("SELL", "98")):
        with pytest.raises(EngineError) as info:
            engine.place_order("alice", SYMBOL, side, "LIMIT_MAKER", quantity="1", price=price, now_ms=5)
        assert (info.value.code, info.value.msg) == (-2010, "Order would immediately match and take.")
    assert (engine.balances("alice"), engine.depth(SYMBOL)) == before
    result = engine.place_order("alice", SYMBOL, "BUY", "LIMIT_MAKER", quantity="1", price="99.99", now_ms=5)
    assert (result.order.status, result.order.type, result.order.time_in_force) == ("NEW", "LIMIT_MAKER", "GTC")
    assert result.trades == ()
    assert engine.book_ticker(SYMBOL).bid_price == D("99.99")


def test_public_trades() -> None:
    engine = make_engine()
    limit(engine, "bob", "SELL", "100", "1", now=5)
    limit(engine, "bob", "BUY", "98", "1", now=6)
    buy = market(engine, "alice", "BUY", "0.4", now=7)
    sell = market(engine, "alice", "SELL", "0.25", now=8)
    (t1,) = buy.trades
    (t2,) = sell.trades
    assert (t1.trade_id, t1.price, t1.qty, t1.quote_qty, t1.time, t1.is_buyer_maker) == (
        1,
        D("100"),
        D("0.4"),
        D("40"),
        7,
        False,
    )
    assert (t2.trade_id, t2.price, t2.qty, t2.quote_qty, t2.time, t2.is_buyer_maker) == (
        2,
        D("98"),
        D("0.25"),
        D("24.5"),
        8,
        True,
    )
    assert (fmt(t1.price), fmt(t1.qty), fmt(t1.quote_qty)) == ("100.00000000", "0.40000000", "40.00000000")
    assert engine.last_price(SYMBOL) == D("98")
    assert engine.last_trade_id(SYMBOL) == 2


def test_book_changes_have_contiguous_update_ids_and_rebuild_the_book() -> None:
    engine = make_engine()
    mirror: dict[tuple[Side, Decimal], Decimal] = {}
    last = engine.last_update_id(SYMBOL)
    assert last == 0

    def apply(changes: tuple[BookChange, ...]) -> None:
        nonlocal last
        for change in changes:
            assert change.update_id == last + 1
            last = change.update_id
            if change.qty == 0:
                del mirror[(change.side, change.price)]
            else:
                mirror[(change.side, change.price)] = change.qty
        assert engine.last_update_id(SYMBOL) == last
        update_id, bids, asks = engine.depth(SYMBOL, 5000)
        assert update_id == last
        assert dict(((Side.BUY, p), q) for p, q in bids) | dict(((Side.SELL, p), q) for p, q in asks) == mirror

    r = limit(engine, "bob", "SELL", "100", "1")
    assert r.book_changes == (BookChange(1, Side.SELL, D("100"), D("1")),)
    apply(r.book_changes)
    r = limit(engine, "mm", "SELL", "100", "0.5")
    assert r.book_changes == (BookChange(2, Side.SELL, D("100"), D("1.5")),)
    apply(r.book_changes)
    apply(limit(engine, "mm", "SELL", "101", "2").book_changes)
    apply(limit(engine, "alice", "BUY", "99", "1").book_changes)
    # Sweeps two orders at 100 (merged into one change: level removed), then part of 101,
    # then the remainder rests at 101 on the bid side.
    r = limit(engine, "alice", "BUY", "101", "4")
    assert [(c.side, c.price, c.qty) for c in r.book_changes] == [
        (Side.SELL, D("100"), D("0")),
        (Side.SELL, D("101"), D("0")),
        (Side.BUY, D("101"), D("0.5")),
    ]
    apply(r.book_changes)
    apply(engine.cancel_order("alice", SYMBOL, order_id=4, now_ms=2000).book_changes)
    apply(market(engine, "bob", "SELL", "0.2").book_changes)
    r = market(engine, "bob", "SELL", "5")  # takes the rest, expires
    apply(r.book_changes)
    assert mirror == {}
    # Calls that do not touch the book produce no change and no id.
    r = market(engine, "bob", "SELL", "1")
    assert r.book_changes == ()
    assert engine.last_update_id(SYMBOL) == last


def test_depth_aggregates_and_orders_best_first() -> None:
    engine = make_engine()
    for price, qty in (("99", "1"), ("98", "2"), ("99", "0.5"), ("97", "1")):
        limit(engine, "mm", "BUY", price, qty)
    for price, qty in (("101", "1"), ("102", "2"), ("101", "0.25")):
        limit(engine, "mm", "SELL", price, qty)
    update_id, bids, asks = engine.depth(SYMBOL, 2)
    assert update_id == 7
    assert bids == [(D("99"), D("1.5")), (D("98"), D("2"))]
    assert asks == [(D("101"), D("1.25")), (D("102"), D("2"))]
    assert len(engine.depth(SYMBOL, 10_000)[1]) == 3
    with pytest.raises(EngineError) as info:
        engine.depth(SYMBOL, 0)
    assert info.value.code == -1130
    ticker = engine.book_ticker(SYMBOL)
    assert (ticker.update_id, ticker.bid_price, ticker.bid_qty, ticker.ask_price, ticker.ask_qty) == (
        7,
        D("99"),
        D("1.5"),
        D("101"),
        D("1.25"),
    )
    empty = make_engine().book_ticker(SYMBOL)
    assert (empty.update_id, empty.bid_price, empty.ask_qty) == (0, None, None)


def test_market_maker_orders_are_cheap_but_complete() -> None:
    engine = make_engine()
    r = limit(engine, "mm", "SELL", "100", "1")
    assert (r.order_id, r.status, r.events, r.fills) == (1, "NEW", (), ())
    assert r.client_order_id == r.order.client_order_id != ""
    r = market(engine, "mm", "BUY", "0.4")  # the market maker trades with itself (STP NONE)
    assert [(t.price, t.qty) for t in r.trades] == [(D("100"), D("0.4"))]
    assert r.events == ()
    assert [(f.price, f.qty, f.commission, f.commission_asset) for f in r.fills] == [
        (D("100"), D("0.4"), D("0"), "BTC")
    ]
    assert engine.balances("mm") == []
    assert engine.all_orders("mm", SYMBOL) == []
    assert engine.my_trades("mm", SYMBOL) == []
    assert [o.order_id for o in engine.open_orders("mm")] == [1]
    engine.cancel_order("mm", SYMBOL, order_id=1, now_ms=2)
    with pytest.raises(EngineError) as info:
        engine.get_order("mm", SYMBOL, order_id=1)  # closed market-maker orders are forgotten
    assert info.value.code == -2013


def test_avg_price_over_minute_buckets() -> None:
    engine = make_engine()
    assert engine.avg_price(SYMBOL, now_ms=0) is None
    limit(engine, "mm", "SELL", "100", "1", now=0)
    market(engine, "mm", "BUY", "1", now=0)  # minute 0: 1 @ 100
    limit(engine, "mm", "SELL", "110", "3", now=120_000)
    market(engine, "mm", "BUY", "3", now=120_000)  # minute 2: 3 @ 110
    assert engine.avg_price(SYMBOL, now_ms=120_000) == D("107.5")  # (100 + 330) / 4
    assert engine.avg_price(SYMBOL, now_ms=120_000, mins=1) == D("110")
    assert engine.avg_price(SYMBOL, now_ms=600_000, mins=5) == D("110")  # none in window: last price
    assert engine.avg_price(SYMBOL, now_ms=120_000, mins=0) == D("110")
