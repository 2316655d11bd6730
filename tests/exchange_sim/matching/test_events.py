"""User events: executionReport fields and the reference's typical sequences (§9.2), each
followed by an outboundAccountPosition of the assets that changed."""

from __future__ import annotations

from exchange_sim.matching import AccountPosition, ExecutionReport, fmt

from . import SYMBOL, D, limit, make_engine, market, positions, reports, xs


def test_new_report_carries_every_field() -> None:
    engine = make_engine()
    result = limit(engine, "alice", "BUY", "100", "1", new_client_order_id="c-1", now=1234)
    assert len(result.events) == 2
    report, position = result.events
    assert isinstance(report, ExecutionReport)
    assert isinstance(position, AccountPosition)
    got = {key: getattr(report, name) for name, key in ExecutionReport.WIRE_KEYS.items()}
    assert got == {
        "E": 1234,
        "s": SYMBOL,
        "c": "c-1",
        "S": "BUY",
        "o": "LIMIT",
        "f": "GTC",
        "q": D("1"),
        "p": D("100"),
        "P": D("0"),
        "F": D("0"),
        "g": -1,
        "C": "",
        "x": "NEW",
        "X": "NEW",
        "r": "NONE",
        "i": result.order_id,
        "l": D("0"),
        "z": D("0"),
        "L": D("0"),
        "n": D("0"),
        "N": None,
        "T": 1234,
        "t": -1,
        "I": report.execution_id,
        "w": True,
        "m": False,
        "O": 1234,
        "Z": D("0"),
        "Y": D("0"),
        "Q": D("0"),
        "W": 1234,
        "V": "NONE",
        "eR": "NONE",
        "v": None,
        "A": None,
        "B": None,
        "u": None,
        "U": None,
        "Cs": None,
        "pl": None,
        "pL": None,
        "pY": None,
    }
    assert report.account_id == "alice"
    # Wire strings: fixed point at the asset's precision; a commission without fill is "0".
    assert (fmt(report.quantity), fmt(report.price), fmt(report.stop_price), fmt(report.commission)) == (
        "1.00000000",
        "100.00000000",
        "0.00000000",
        "0",
    )
    assert (position.account_id, position.event_time, position.update_time) == ("alice", 1234, 1234)
    assert [(b.asset, fmt(b.free), fmt(b.locked)) for b in position.balances] == [
        ("USDT", "9900.00000000", "100.00000000")
    ]


def test_limit_rests_then_fills_in_two_trades() -> None:
    engine = make_engine()
    placed = limit(engine, "alice", "BUY", "100", "1", now=1)
    assert xs(placed, "alice") == [("NEW", "NEW")]
    first = market(engine, "bob", "SELL", "0.4", now=2)
    second = market(engine, "bob", "SELL", "0.6", now=3)
    assert xs(first, "alice") == [("TRADE", "PARTIALLY_FILLED")]
    assert xs(second, "alice") == [("TRADE", "FILLED")]
    r1 = reports(first, "alice")[0]
    assert (r1.last_executed_qty, r1.cumulative_filled_qty, r1.last_executed_price) == (D("0.4"), D("0.4"), D("100"))
    assert (r1.commission, r1.commission_asset, r1.trade_id, r1.is_maker, r1.is_working) == (
        D("0.0004"),
        "BTC",
        1,
        True,
        True,
    )
    assert (r1.last_quote_qty, r1.cumulative_quote_qty, r1.working_time) == (D("40"), D("40"), 1)
    r2 = reports(second, "alice")[0]
    assert (r2.cumulative_filled_qty, r2.cumulative_quote_qty, r2.trade_id, r2.is_working) == (
        D("1"),
        D("100"),
        2,
        False,
    )
    # The taker's own reports are in the same result, routed by account.
    assert xs(first, "bob") == [("NEW", "NEW"), ("TRADE", "FILLED")]
    bob_trade = reports(first, "bob")[1]
    assert (bob_trade.is_maker, bob_trade.commission, bob_trade.commission_asset) == (False, D("0.08"), "USDT")
    # One position per account, after that account's reports, with the assets that changed.
    (alice_pos,) = positions(first, "alice")
    assert [(b.asset, b.free, b.locked) for b in alice_pos.balances] == [
        ("BTC", D("10.3996"), D("0")),
        ("USDT", D("9900"), D("60")),
    ]
    (bob_pos,) = positions(first, "bob")
    assert [(b.asset, b.free, b.locked) for b in bob_pos.balances] == [
        ("BTC", D("9.6"), D("0")),
        ("USDT", D("10039.92"), D("0")),
    ]
    assert isinstance(first.events[-1], AccountPosition) and isinstance(first.events[-2], AccountPosition)


def test_cancel_report_carries_cancel_id_and_original_id() -> None:
    engine = make_engine()
    limit(engine, "alice", "SELL", "110", "1", new_client_order_id="orig-1", now=1)
    result = engine.cancel_order("alice", SYMBOL, order_id=1, new_client_order_id="cancel-1", now_ms=5)
    assert xs(result) == [("CANCELED", "CANCELED")]
    (report,) = reports(result)
    assert (report.client_order_id, report.orig_client_order_id, report.is_working, report.transaction_time) == (
        "cancel-1",
        "orig-1",
        False,
        5,
    )
    (pos,) = positions(result, "alice")
    assert [(b.asset, b.free, b.locked) for b in pos.balances] == [("BTC", D("10"), D("0"))]


def test_market_buy_that_exhausts_the_book() -> None:
    engine = make_engine()
    limit(engine, "mm", "SELL", "100", "0.5")
    limit(engine, "mm", "SELL", "101", "0.5")
    result = market(engine, "alice", "BUY", "2", now=9)
    assert xs(result, "alice") == [
        ("NEW", "NEW"),
        ("TRADE", "PARTIALLY_FILLED"),
        ("TRADE", "PARTIALLY_FILLED"),
        ("EXPIRED", "EXPIRED"),
    ]
    new, t1, t2, expired = reports(result, "alice")
    assert (new.is_working, new.working_time) == (True, 9)
    assert [(r.trade_id, r.commission, r.commission_asset, r.is_working) for r in (t1, t2)] == [
        (1, D("0.001"), "BTC", False),
        (2, D("0.001"), "BTC", False),
    ]
    assert (expired.expiry_reason, expired.trade_id, expired.commission_asset, expired.is_working) == (
        "INSUFFICIENT_LIQUIDITY",
        -1,
        None,
        False,
    )
    assert (expired.cumulative_filled_qty, expired.cumulative_quote_qty) == (D("1"), D("100.5"))
    assert isinstance(result.events[-1], AccountPosition)
    assert [e.execution_id for e in reports(result)] == sorted({e.execution_id for e in reports(result)})


def test_ioc_remainder_and_fok_miss_end_with_expired() -> None:
    engine = make_engine()
    limit(engine, "mm", "SELL", "100", "0.5")
    ioc = limit(engine, "alice", "BUY", "100", "1", tif="IOC")
    assert xs(ioc, "alice") == [("NEW", "NEW"), ("TRADE", "PARTIALLY_FILLED"), ("EXPIRED", "EXPIRED")]
    assert reports(ioc)[-1].expiry_reason == "UNFILLED_IOC_QUANTITY_EXPIRED"
    limit(engine, "mm", "SELL", "100", "0.5")
    fok = limit(engine, "alice", "BUY", "100", "1", tif="FOK")
    assert xs(fok, "alice") == [("NEW", "NEW"), ("EXPIRED", "EXPIRED")]
    assert reports(fok)[-1].expiry_reason == "UNFILLED_FOK_ORDER_EXPIRED"
    # The FOK locked 100 USDT and gave it back: the position shows the net result.
    (pos,) = positions(fok, "alice")
    assert [(b.asset, b.free, b.locked) for b in pos.balances] == [("USDT", D("9950"), D("0"))]


def test_execution_ids_increase_across_calls() -> None:
    engine = make_engine()
    ids: list[int] = []
    ids += [r.execution_id for r in reports(limit(engine, "alice", "BUY", "100", "1"))]
    ids += [r.execution_id for r in reports(market(engine, "bob", "SELL", "1"))]
    ids += [r.execution_id for r in reports(limit(engine, "alice", "SELL", "120", "1"))]
    ids += [r.execution_id for r in reports(engine.cancel_order("alice", SYMBOL, order_id=3, now_ms=2))]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 6


def test_quote_order_qty_report_carries_q() -> None:
    engine = make_engine()
    limit(engine, "mm", "SELL", "100", "1")
    result = market(engine, "alice", "BUY", quote="50")
    new = reports(result)[0]
    assert (new.quote_order_qty, new.quantity) == (D("50"), D("0.5"))
    assert xs(result) == [("NEW", "NEW"), ("TRADE", "FILLED")]


def test_stop_order_reports_not_working_then_working_on_trigger() -> None:
    engine = make_engine()
    limit(engine, "mm", "SELL", "100", "0.1")
    market(engine, "mm", "BUY", "0.1")
    placed = engine.place_order("alice", SYMBOL, "SELL", "STOP_LOSS", quantity="1", stop_price="95", now_ms=10)
    (new,) = reports(placed)
    assert (new.execution_type, new.is_working, new.working_time, new.stop_price) == ("NEW", False, None, D("95"))
    limit(engine, "mm", "BUY", "95", "2", now=20)
    triggered = market(engine, "mm", "SELL", "0.1", now=20)
    assert xs(triggered, "alice") == [("NEW", "NEW"), ("TRADE", "FILLED")]
    assert (reports(triggered)[0].is_working, reports(triggered)[0].working_time) == (True, 20)
