"""Self-trade prevention: the taker's mode decides (scenarios follow Binance's STP FAQ)."""

from __future__ import annotations

from exchange_sim.matching import MatchingEngine, PreventedMatch, SelfTradePreventionMode

from . import SYMBOL, D, bal, limit, make_engine, reports, xs


def three_bids(engine: MatchingEngine) -> list[int]:
    """Alice's resting bids from the FAQ: 1.2 @ 1.2, 1.3 @ 1.1, 8.1 @ 1."""
    return [
        limit(engine, "alice", "BUY", price, qty, now=1).order_id
        for price, qty in (("1.2", "1.2"), ("1.1", "1.3"), ("1", "8.1"))
    ]


def test_none_lets_the_account_trade_with_itself() -> None:
    engine = make_engine()
    limit(engine, "alice", "BUY", "100", "1")
    result = limit(engine, "alice", "SELL", "100", "1", self_trade_prevention_mode="NONE")
    assert [t.qty for t in result.trades] == [D("1")]
    assert xs(result, "alice") == [("NEW", "NEW"), ("TRADE", "FILLED"), ("TRADE", "FILLED")]
    # pays the maker commission in BTC (buy side) and the taker commission in USDT (sell side)
    assert bal(engine, "alice", "BTC") == (D("9.999"), D("0"))
    assert bal(engine, "alice", "USDT") == (D("9999.8"), D("0"))


def test_expire_taker() -> None:
    engine = make_engine()
    makers = three_bids(engine)
    result = limit(engine, "alice", "SELL", "1", "3", self_trade_prevention_mode="EXPIRE_TAKER", now=2)
    order = result.order
    assert (order.status, order.executed_qty, order.prevented_quantity, order.prevented_match_id) == (
        "EXPIRED_IN_MATCH",
        D("0"),
        D("3"),
        0,
    )
    assert result.prevented_matches == (
        PreventedMatch(0, order.order_id, makers[0], D("1.2"), D("3"), None, SelfTradePreventionMode.EXPIRE_TAKER, 2),
    )
    assert result.trades == () and result.book_changes == ()
    assert [engine.get_order("alice", SYMBOL, order_id=m).status for m in makers] == ["NEW"] * 3
    assert xs(result) == [("NEW", "NEW"), ("TRADE_PREVENTION", "EXPIRED_IN_MATCH")]
    prevention = reports(result)[1]
    assert (prevention.prevented_match_id, prevention.prevented_quantity, prevention.last_prevented_quantity) == (
        0,
        D("3"),
        D("3"),
    )
    assert (prevention.counter_order_id, prevention.counter_symbol, prevention.trade_group_id) == (
        makers[0],
        SYMBOL,
        -1,
    )
    assert (prevention.prevented_execution_qty, prevention.prevented_execution_price) == (D("1.2"), D("1.2"))
    assert prevention.prevented_execution_quote_qty == D("1.44")
    assert (prevention.last_executed_qty, prevention.last_executed_price, prevention.last_quote_qty) == (
        D("0"),
        D("0"),
        D("0"),
    )
    assert prevention.is_working is False
    assert bal(engine, "alice", "BTC") == (D("10"), D("0"))
    assert bal(engine, "alice", "USDT")[1] == D("10.97")


def test_expire_maker_expires_each_own_maker_and_the_taker_rests() -> None:
    engine = make_engine()
    makers = three_bids(engine)
    result = limit(engine, "alice", "SELL", "1", "3", self_trade_prevention_mode="EXPIRE_MAKER", now=2)
    assert (result.order.status, result.order.prevented_quantity) == ("NEW", D("0"))
    assert [
        (p.prevented_match_id, p.maker_order_id, p.price, p.maker_prevented_quantity) for p in result.prevented_matches
    ] == [
        (0, makers[0], D("1.2"), D("1.2")),
        (1, makers[1], D("1.1"), D("1.3")),
        (2, makers[2], D("1"), D("8.1")),
    ]
    assert all(p.taker_prevented_quantity is None for p in result.prevented_matches)
    views = [engine.get_order("alice", SYMBOL, order_id=m) for m in makers]
    assert [(v.status, v.prevented_quantity, v.prevented_match_id) for v in views] == [
        ("EXPIRED_IN_MATCH", D("1.2"), 0),
        ("EXPIRED_IN_MATCH", D("1.3"), 1),
        ("EXPIRED_IN_MATCH", D("8.1"), 2),
    ]
    assert xs(result) == [("NEW", "NEW")] + [("TRADE_PREVENTION", "EXPIRED_IN_MATCH")] * 3
    assert [(str(c.side), c.price, c.qty) for c in result.book_changes] == [
        ("BUY", D("1.2"), D("0")),
        ("BUY", D("1.1"), D("0")),
        ("BUY", D("1"), D("0")),
        ("SELL", D("1"), D("3")),
    ]
    assert bal(engine, "alice", "USDT") == (D("10000"), D("0"))
    assert bal(engine, "alice", "BTC") == (D("7"), D("3"))


def test_expire_maker_skips_own_orders_and_trades_with_others() -> None:
    engine = make_engine()
    limit(engine, "bob", "BUY", "1.2", "1")
    own = limit(engine, "alice", "BUY", "1.1", "1").order_id
    limit(engine, "bob", "BUY", "1", "1")
    result = limit(engine, "alice", "SELL", "1", "3", self_trade_prevention_mode="EXPIRE_MAKER")
    assert [(t.price, t.qty) for t in result.trades] == [(D("1.2"), D("1")), (D("1"), D("1"))]
    assert (result.order.status, result.order.executed_qty) == ("PARTIALLY_FILLED", D("2"))
    assert engine.get_order("alice", SYMBOL, order_id=own).status == "EXPIRED_IN_MATCH"
    assert engine.depth(SYMBOL)[2] == [(D("1"), D("1"))]


def test_expire_both() -> None:
    engine = make_engine()
    maker = limit(engine, "alice", "BUY", "1", "1").order_id
    result = limit(engine, "alice", "SELL", "1", "3", self_trade_prevention_mode="EXPIRE_BOTH", now=5)
    assert (result.order.status, result.order.prevented_quantity) == ("EXPIRED_IN_MATCH", D("3"))
    maker_view = engine.get_order("alice", SYMBOL, order_id=maker)
    assert (maker_view.status, maker_view.prevented_quantity, maker_view.prevented_match_id) == (
        "EXPIRED_IN_MATCH",
        D("1"),
        0,
    )
    assert result.prevented_matches == (
        PreventedMatch(0, result.order_id, maker, D("1"), D("3"), D("1"), SelfTradePreventionMode.EXPIRE_BOTH, 5),
    )
    assert xs(result) == [("NEW", "NEW")] + [("TRADE_PREVENTION", "EXPIRED_IN_MATCH")] * 2
    assert engine.depth(SYMBOL)[1:] == ([], [])
    assert bal(engine, "alice", "USDT") == (D("10000"), D("0"))
    assert bal(engine, "alice", "BTC") == (D("10"), D("0"))


def test_the_takers_mode_decides() -> None:
    engine = make_engine()
    maker = limit(engine, "alice", "BUY", "1", "1", self_trade_prevention_mode="EXPIRE_MAKER").order_id
    result = limit(engine, "alice", "SELL", "1", "1", self_trade_prevention_mode="EXPIRE_TAKER")
    assert result.order.status == "EXPIRED_IN_MATCH"
    assert engine.get_order("alice", SYMBOL, order_id=maker).status == "NEW"


def test_market_order_with_expire_maker_on_a_book_of_own_orders() -> None:
    engine = make_engine()
    maker = limit(engine, "alice", "BUY", "1", "1").order_id
    result = engine.place_order(
        "alice", SYMBOL, "SELL", "MARKET", quantity="1", self_trade_prevention_mode="EXPIRE_MAKER", now_ms=2
    )
    assert (result.order.status, result.order.expiry_reason, result.order.executed_qty) == (
        "EXPIRED",
        "INSUFFICIENT_LIQUIDITY",
        D("0"),
    )
    assert engine.get_order("alice", SYMBOL, order_id=maker).status == "EXPIRED_IN_MATCH"
    assert xs(result) == [("NEW", "NEW"), ("TRADE_PREVENTION", "EXPIRED_IN_MATCH"), ("EXPIRED", "EXPIRED")]


def test_decrement_expires_the_smaller_order() -> None:
    engine = make_engine()
    maker = limit(engine, "alice", "BUY", "2", "6").order_id
    assert bal(engine, "alice", "USDT")[1] == D("12")
    result = limit(engine, "alice", "SELL", "2", "2", self_trade_prevention_mode="DECREMENT")
    assert (result.order.status, result.order.prevented_quantity) == ("EXPIRED_IN_MATCH", D("2"))
    view = engine.get_order("alice", SYMBOL, order_id=maker)
    assert (view.status, view.prevented_quantity, view.prevented_match_id, view.executed_qty) == (
        "NEW",
        D("2"),
        0,
        D("0"),
    )
    assert engine.depth(SYMBOL)[1] == [(D("2"), D("4"))]
    assert bal(engine, "alice", "USDT") == (D("9992"), D("8"))
    assert bal(engine, "alice", "BTC") == (D("10"), D("0"))
    assert xs(result) == [("NEW", "NEW"), ("TRADE_PREVENTION", "NEW"), ("TRADE_PREVENTION", "EXPIRED_IN_MATCH")]
    maker_report = reports(result)[1]
    assert (maker_report.is_working, maker_report.last_prevented_quantity) == (True, D("2"))
    (pm,) = result.prevented_matches
    assert (pm.taker_prevented_quantity, pm.maker_prevented_quantity) == (D("2"), D("2"))


def test_decrement_smaller_maker_expires_and_the_taker_goes_on() -> None:
    engine = make_engine()
    maker = limit(engine, "alice", "BUY", "2", "1").order_id
    limit(engine, "bob", "BUY", "1.9", "1")
    result = limit(engine, "alice", "SELL", "1.9", "3", self_trade_prevention_mode="TRANSFER")  # same account
    order = result.order
    assert (order.status, order.executed_qty, order.prevented_quantity, order.orig_qty) == (
        "PARTIALLY_FILLED",
        D("1"),
        D("1"),
        D("3"),
    )
    assert engine.get_order("alice", SYMBOL, order_id=maker).status == "EXPIRED_IN_MATCH"
    assert engine.depth(SYMBOL)[1:] == ([], [(D("1.9"), D("1"))])
    assert bal(engine, "alice", "BTC") == (D("8"), D("1"))  # 3 locked, 1 prevented back, 1 sold


def test_other_accounts_are_not_affected() -> None:
    engine = make_engine()
    limit(engine, "bob", "BUY", "100", "1")
    result = limit(engine, "alice", "SELL", "100", "1", self_trade_prevention_mode="EXPIRE_BOTH")
    assert result.order.status == "FILLED"
    assert result.prevented_matches == ()


def test_symbol_default_mode_applies_when_none_is_given() -> None:
    from . import make_spec

    engine = make_engine(make_spec(default_stp_mode=SelfTradePreventionMode.EXPIRE_MAKER))
    maker = limit(engine, "alice", "BUY", "100", "1").order_id
    result = limit(engine, "alice", "SELL", "100", "1")
    assert result.order.self_trade_prevention_mode == "EXPIRE_MAKER"
    assert engine.get_order("alice", SYMBOL, order_id=maker).status == "EXPIRED_IN_MATCH"
