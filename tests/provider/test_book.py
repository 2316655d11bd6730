"""Table tests of the pure order book (provider.book)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import provider.book as book_mod
from provider.book import (
    LevelMismatch,
    OrderBook,
    cut_edge,
    decimal_to_units,
    is_zero_qty,
    units_to_decimal,
)


def make(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> OrderBook:
    b = OrderBook()
    b.load_snapshot([list(x) for x in bids], [list(x) for x in asks])
    return b


# --------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("61837.63000000", 6_183_763_000_000),
        ("61837.63", 6_183_763_000_000),
        ("0.00000001", 1),
        ("0.00001000", 1000),
        ("5", 500_000_000),
        ("5.", 500_000_000),
        (".5", 50_000_000),
        ("0", 0),
        ("0.00000000", 0),
        ("000123.4", 12_340_000_000),
        ("1.123456780000", 112_345_678),  # extra zero digits are fine
        ("99999999999999.99999999", 9_999_999_999_999_999_999_999),
    ],
)
def test_decimal_to_units_exact(text: str, units: int) -> None:
    assert decimal_to_units(text) == units
    assert Decimal(units) / 10**8 == Decimal(text)


@pytest.mark.parametrize(
    "text",
    ["", ".", "-1", "+1", "1e-8", "1E5", " 1", "1 ", "1_000", "1.2.3", "abc", "0x10", "1.123456789", "٣", "NaN"],
)
def test_decimal_to_units_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"decimal"):
        decimal_to_units(text)


def test_decimal_to_units_other_scale() -> None:
    assert decimal_to_units("1.5", decimals=2) == 150
    assert decimal_to_units("1.50", decimals=2) == 150
    with pytest.raises(ValueError, match="decimals"):
        decimal_to_units("1.505", decimals=2)


@pytest.mark.parametrize(
    ("units", "text"),
    [(0, "0.00000000"), (1, "0.00000001"), (6_183_763_000_000, "61837.63000000"), (10**8, "1.00000000")],
)
def test_units_to_decimal(units: int, text: str) -> None:
    assert units_to_decimal(units) == text
    assert decimal_to_units(text) == units


def test_units_to_decimal_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        units_to_decimal(-1)


@pytest.mark.parametrize(
    ("text", "zero"),
    [
        ("0", True),
        ("0.0", True),
        ("0.00000000", True),
        ("00.000", True),
        (".0", True),
        ("0.00000001", False),
        ("1", False),
        ("10.00000000", False),
        ("100", False),
        ("0.10000000", False),
    ],
)
def test_is_zero_qty(text: str, zero: bool) -> None:
    assert is_zero_qty(text) is zero


# --------------------------------------------------------------------------- apply
def test_empty_book() -> None:
    b = OrderBook()
    assert b.best_bid() is None
    assert b.best_ask() is None
    assert b.worst_bid() is None
    assert b.top(5) == ([], [])
    assert b.bids() == []
    assert len(b) == 0
    assert not b.is_crossed()


def test_snapshot_load_orders_and_skips_zero() -> None:
    b = make(
        [("99.00", "1"), ("100.00", "2"), ("98.00", "0.00000000"), ("97.5", "3")],
        [("102.00", "4"), ("101.00", "5"), ("103.00", "0")],
    )
    assert b.bids() == [("100.00", "2"), ("99.00", "1"), ("97.5", "3")]
    assert b.asks() == [("101.00", "5"), ("102.00", "4")]
    assert b.best_bid() == ("100.00", "2")
    assert b.best_ask() == ("101.00", "5")
    assert b.worst_bid() == ("97.5", "3")
    assert b.worst_ask() == ("102.00", "4")
    assert (b.bid_count, b.ask_count, len(b)) == (3, 2, 5)


def test_snapshot_replaces_everything() -> None:
    b = make([("1", "1")], [("2", "1")])
    b.apply([["0.5", "1"]], [])
    b.load_snapshot([["10", "1"]], [["11", "1"]])
    assert b.bids() == [("10", "1")]
    assert b.asks() == [("11", "1")]


@pytest.mark.parametrize(
    ("bids", "asks", "exp_bids", "exp_asks"),
    [
        # set a new level (absolute quantity)
        ([["99.50", "7"]], [], [("100", "1"), ("99.50", "7"), ("99", "2")], [("101", "3"), ("102", "4")]),
        # update an existing level: absolute, not a delta
        ([["100", "0.5"]], [], [("100", "0.5"), ("99", "2")], [("101", "3"), ("102", "4")]),
        # delete with every zero form
        ([["100", "0"]], [["101", "0.00000000"]], [("99", "2")], [("102", "4")]),
        ([["100", "0.0"]], [["102", "00.000"]], [("99", "2")], [("101", "3")]),
        # deleting an absent level is normal
        ([["50", "0.00000000"]], [["500", "0"]], [("100", "1"), ("99", "2")], [("101", "3"), ("102", "4")]),
        # another spelling of the same price is the same level (exact keys)
        ([["100.00000000", "9"]], [["101.0", "0"]], [("100.00000000", "9"), ("99", "2")], [("102", "4")]),
        # several changes in one diff, applied in order (last one wins)
        ([["98", "1"], ["98", "2"], ["99", "0"]], [], [("100", "1"), ("98", "2")], [("101", "3"), ("102", "4")]),
        # empty diff
        ([], [], [("100", "1"), ("99", "2")], [("101", "3"), ("102", "4")]),
    ],
)
def test_apply_table(
    bids: list[list[str]],
    asks: list[list[str]],
    exp_bids: list[tuple[str, str]],
    exp_asks: list[tuple[str, str]],
) -> None:
    b = make([("100", "1"), ("99", "2")], [("101", "3"), ("102", "4")])
    b.apply(bids, asks)
    assert b.bids() == exp_bids
    assert b.asks() == exp_asks


def test_apply_accepts_tuples_and_lists() -> None:
    b = OrderBook()
    b.apply((("1.0", "2"),), [("3.0", "4")])
    assert b.top(1) == ([("1.0", "2")], [("3.0", "4")])


def test_malformed_price_raises() -> None:
    b = make([("100", "1")], [])
    with pytest.raises(ValueError, match="decimal"):
        b.apply([["1e5", "1"]], [])


def test_top_n() -> None:
    b = make([(str(100 - i), "1") for i in range(10)], [(str(101 + i), "2") for i in range(10)])
    bids, asks = b.top(3)
    assert bids == [("100", "1"), ("99", "1"), ("98", "1")]
    assert asks == [("101", "2"), ("102", "2"), ("103", "2")]
    assert b.top(0) == ([], [])
    assert b.top(-1) == ([], [])
    assert len(b.bids(50)) == 10
    assert b.asks(2) == [("101", "2"), ("102", "2")]


def test_qty_lookup() -> None:
    b = make([("100", "1.5")], [("101", "2")])
    assert b.bid_qty("100.00") == "1.5"
    assert b.bid_qty("99") is None
    assert b.ask_qty("101") == "2"


@pytest.mark.parametrize(
    ("bids", "asks", "crossed"),
    [
        ([("100", "1")], [("101", "1")], False),
        ([("100", "1")], [("100", "1")], True),  # locked is impossible on the exchange too
        ([("100.00000001", "1")], [("100", "1")], True),
        ([("100", "1")], [], False),
        ([], [("100", "1")], False),
        ([], [], False),
    ],
)
def test_is_crossed(bids: list[tuple[str, str]], asks: list[tuple[str, str]], crossed: bool) -> None:
    assert make(bids, asks).is_crossed() is crossed


def test_is_crossed_after_diff() -> None:
    b = make([("100", "1")], [("101", "1")])
    b.apply([["101.5", "1"]], [])
    assert b.is_crossed()


# --------------------------------------------------------------------------- depth
def test_bounds_prune_and_block_inserts() -> None:
    b = make([("100", "1"), ("99", "1"), ("98", "1")], [("101", "1"), ("102", "1"), ("103", "1")])
    removed = b.set_bounds("99", "102")
    assert removed == 2
    assert b.bids() == [("100", "1"), ("99", "1")]
    assert b.asks() == [("101", "1"), ("102", "1")]
    assert (b.bid_floor, b.ask_ceiling) == ("99.00000000", "102.00000000")
    # outside the bounds: new levels are ignored (unknown region)
    b.apply([["98.5", "5"], ["97", "5"]], [["102.5", "5"], ["110", "5"]])
    assert b.bids() == [("100", "1"), ("99", "1")]
    assert b.asks() == [("101", "1"), ("102", "1")]
    # inside: everything works, including at the bound itself
    b.apply([["99.5", "2"], ["99", "3"], ["100", "0"]], [["101.5", "2"], ["102", "0"]])
    assert b.bids() == [("99.5", "2"), ("99", "3")]
    assert b.asks() == [("101", "1"), ("101.5", "2")]
    # removing the bounds lets deep levels in again
    assert b.set_bounds(None, None) == 0
    assert (b.bid_floor, b.ask_ceiling) == (None, None)
    b.apply([["90", "1"]], [["120", "1"]])
    assert b.bids()[-1] == ("90", "1")
    assert b.asks()[-1] == ("120", "1")


def test_snapshot_load_clears_bounds() -> None:
    b = make([("100", "1")], [("101", "1")])
    b.set_bounds("100", "101")
    b.load_snapshot([["90", "1"]], [["120", "1"]])
    assert (b.bid_floor, b.ask_ceiling) == (None, None)
    assert b.top(1) == ([("90", "1")], [("120", "1")])


@pytest.mark.parametrize(("depth", "removed", "left"), [(0, 10, 0), (2, 6, 2), (5, 0, 5), (9, 0, 5)])
def test_prune_depth(depth: int, removed: int, left: int) -> None:
    b = make([(str(100 - i), "1") for i in range(5)], [(str(101 + i), "1") for i in range(5)])
    assert b.prune(depth) == removed
    assert b.bid_count == b.ask_count == left
    if left:
        assert b.best_bid() == ("100", "1")
        assert b.best_ask() == ("101", "1")


def test_prune_negative_rejected() -> None:
    with pytest.raises(ValueError, match="depth"):
        OrderBook().prune(-1)


# --------------------------------------------------------------------------- compare / copy
def test_compare_identical_and_numeric_qty() -> None:
    a = make([("100", "1.5")], [("101", "2")])
    b = make([("100.00000000", "1.50000000")], [("101.0", "2.0")])
    assert a.compare(b) == []


def test_compare_reports_mismatches() -> None:
    a = make([("100", "1"), ("99", "1")], [("101", "1")])
    b = make([("100", "2"), ("98", "1")], [("101", "1"), ("102", "1")])
    assert a.compare(b) == [
        LevelMismatch("bid", "98", None, "1"),
        LevelMismatch("bid", "99", "1", None),
        LevelMismatch("bid", "100", "1", "2"),
        LevelMismatch("ask", "102", None, "1"),
    ]
    assert len(a.compare(b, limit=2)) == 2


def test_compare_only_within_both_bounds() -> None:
    a = make([("100", "1"), ("99", "1"), ("90", "7")], [("101", "1"), ("150", "9")])
    b = make([("100", "1"), ("99", "1")], [("101", "1"), ("102", "1")])
    b.set_bounds("99", "101")  # b only knows bids >= 99 and asks <= 101
    assert a.compare(b) == []
    assert b.compare(a) == []
    a.apply([["99", "3"]], [])
    assert a.compare(b) == [LevelMismatch("bid", "99", "3", "1")]


def test_copy_and_replace_are_independent() -> None:
    a = make([("100", "1")], [("101", "1")])
    a.set_bounds("100", None)
    c = a.copy()
    a.apply([["100", "5"]], [])
    assert c.best_bid() == ("100", "1")
    assert c.bid_floor == "100.00000000"
    d = OrderBook()
    d.replace_with(a)
    a.apply([["100", "0"]], [])
    assert d.best_bid() == ("100", "5")
    a.clear()
    assert len(a) == 0
    assert a.bid_floor is None
    assert len(d) == 2


# --------------------------------------------------------------------------- model check
# The book keeps only the top of each side in a sorted list and the rest in a dict; a tiny "hot"
# target makes the random sequences below cross every refill/trim path many times.
_prices = st.integers(min_value=1, max_value=400).map(lambda t: units_to_decimal(t * 500_000))  # 0.005 ticks
_qtys = st.sampled_from(["0", "0.00000000", "1", "2.5", "0.00000001", "10.00000000"])
_levels = st.lists(st.tuples(_prices, _qtys), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    snapshot=st.tuples(_levels, _levels),
    diffs=st.lists(st.tuples(_levels, _levels, st.integers(0, 8)), max_size=30),
    bound=st.one_of(st.none(), _prices),
)
def test_matches_reference_model(
    snapshot: tuple[list[tuple[str, str]], list[tuple[str, str]]],
    diffs: list[tuple[list[tuple[str, str]], list[tuple[str, str]], int]],
    bound: str | None,
) -> None:
    old = book_mod._HOT_TARGET
    book_mod._HOT_TARGET = 3
    try:
        b = OrderBook()
        b.load_snapshot(snapshot[0], snapshot[1])
        model: list[dict[Decimal, str]] = [{}, {}]
        for side, levels in zip(model, snapshot, strict=True):
            for p, q in levels:
                if Decimal(q):
                    side[Decimal(p)] = q
                else:
                    side.pop(Decimal(p), None)
        lim = Decimal(bound or 0)
        if bound is not None:
            b.set_bounds(bound, bound)
            model[0] = {p: q for p, q in model[0].items() if p >= lim}
            model[1] = {p: q for p, q in model[1].items() if p <= lim}
        for bids, asks, n in diffs:
            b.apply(bids, asks)
            for i, levels in enumerate((bids, asks)):
                side = model[i]
                for p, q in levels:
                    key = Decimal(p)
                    if not Decimal(q):
                        side.pop(key, None)
                    elif key in side or bound is None or (key >= lim if i == 0 else key <= lim):
                        side[key] = q
            exp_bids = [q for _, q in sorted(model[0].items(), reverse=True)]
            exp_asks = [q for _, q in sorted(model[1].items())]
            got_bids, got_asks = b.top(n)
            assert [q for _, q in got_bids] == exp_bids[:n]
            assert [q for _, q in got_asks] == exp_asks[:n]
            assert [Decimal(p) for p, _ in got_bids] == sorted(model[0], reverse=True)[:n]
            assert [Decimal(p) for p, _ in got_asks] == sorted(model[1])[:n]
            assert (b.bid_count, b.ask_count) == (len(model[0]), len(model[1]))
            best_b = max(model[0]) if model[0] else None
            best_a = min(model[1]) if model[1] else None
            assert (None if b.best_bid() is None else Decimal(b.best_bid()[0])) == best_b  # type: ignore[index]
            assert (None if b.best_ask() is None else Decimal(b.best_ask()[0])) == best_a  # type: ignore[index]
            crossed = best_b is not None and best_a is not None and best_b >= best_a
            assert b.is_crossed() is crossed
            assert [Decimal(p) for p, _ in b.bids()] == sorted(model[0], reverse=True)
            worst = b.worst_ask()
            assert (None if worst is None else Decimal(worst[0])) == (max(model[1]) if model[1] else None)
    finally:
        book_mod._HOT_TARGET = old


def test_a_cut_side_ends_at_its_last_level_or_where_the_book_ends() -> None:
    levels = [("100", "1"), ("99", "1")]
    assert cut_edge(levels, 2, None) == "99"  # cut at the limit
    assert cut_edge(levels, 5, "98") == "98"  # all the book has, and the book ends at 98
    assert cut_edge(levels, 5, None) is None  # the book knows the whole side
