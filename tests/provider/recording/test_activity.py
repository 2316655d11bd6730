"""Activity bars from hand-made diffs and trades."""

from __future__ import annotations

import pytest

from provider.recording.activity import ActivityAccumulator, BookSide

BID, ASK = BookSide.BID, BookSide.ASK


def test_quiet_second_is_an_all_zero_bar() -> None:
    bar = ActivityAccumulator("BTCUSDT").close(5000)
    assert (bar.symbol, bar.time_ms, bar.bid_updates, bar.trade_count, bar.resynced) == ("BTCUSDT", 5000, 0, 0, False)
    assert bar.bid_added == bar.ask_removed == bar.buy_volume == 0.0


@pytest.mark.parametrize(
    ("levels", "trades", "expected"),
    [
        # (side, price, prev, new) ; (price, qty, buyer_is_maker) ; (added, removed, traded) per side
        ([(BID, "100.00", 0.0, 2.0)], [], {"bid": (2.0, 0.0, 0.0), "ask": (0.0, 0.0, 0.0)}),
        ([(BID, "100.00", 5.0, 3.0)], [], {"bid": (0.0, 2.0, 0.0), "ask": (0.0, 0.0, 0.0)}),
        # a sell of 1.5 at the bid explains 1.5 of the 2.0 decrease; the rest was cancelled
        ([(BID, "100.00", 5.0, 3.0)], [("100.0", 1.5, True)], {"bid": (0.0, 0.5, 1.5), "ask": (0.0, 0.0, 0.0)}),
        # a buy (aggressor lifts asks) does not explain a bid decrease
        ([(BID, "100.00", 5.0, 3.0)], [("100.00", 1.5, False)], {"bid": (0.0, 2.0, 0.0), "ask": (0.0, 0.0, 0.0)}),
        # a trade at another price does not either
        ([(ASK, "101.00", 4.0, 0.0)], [("101.01", 4.0, False)], {"bid": (0.0, 0.0, 0.0), "ask": (0.0, 4.0, 0.0)}),
        # traded capped at the decrease (the level was refilled by an iceberg, say)
        ([(ASK, "101.00", 4.0, 3.0)], [("101", 6.0, False)], {"bid": (0.0, 0.0, 0.0), "ask": (0.0, 0.0, 1.0)}),
        # two diffs at one price, then an increase elsewhere
        (
            [(ASK, "101", 4.0, 3.0), (ASK, "101", 3.0, 1.0), (ASK, "102", 1.0, 1.5)],
            [("101", 2.5, False)],
            {"bid": (0.0, 0.0, 0.0), "ask": (0.5, 0.5, 2.5)},
        ),
    ],
)
def test_level_changes_split_into_added_removed_traded(
    levels: list[tuple[BookSide, str, float, float]],
    trades: list[tuple[str, float, bool]],
    expected: dict[str, tuple[float, float, float]],
) -> None:
    acc = ActivityAccumulator("X")
    for price, qty, maker in trades:  # trades first: order inside the second does not matter
        acc.on_trade(7_100, price, qty, maker)
    for side, price, prev, new in levels:
        acc.on_level(7_900, side, price, prev, new)
    bar = acc.close(7000)
    assert (bar.bid_added, bar.bid_removed, bar.bid_traded) == pytest.approx(expected["bid"])
    assert (bar.ask_added, bar.ask_removed, bar.ask_traded) == pytest.approx(expected["ask"])
    assert bar.bid_updates == sum(1 for s, *_ in levels if s is BID)
    assert bar.ask_updates == sum(1 for s, *_ in levels if s is ASK)


def test_trade_counts_and_aggressor_volumes() -> None:
    acc = ActivityAccumulator("X")
    acc.on_trade(1000, "10", 1.0, False)
    acc.on_trade(1500, "10", 2.0, False)
    acc.on_trade(1999, "9", 0.25, True)
    bar = acc.close(1000)
    assert (bar.trade_count, bar.buy_volume, bar.sell_volume) == (3, 3.0, 0.25)


def test_trade_in_another_second_does_not_match() -> None:
    acc = ActivityAccumulator("X")
    acc.on_level(1000, BID, "10", 3.0, 1.0)
    acc.on_trade(2000, "10", 2.0, True)
    first, second = acc.close(1000), acc.close(2000)
    assert (first.bid_removed, first.bid_traded, first.trade_count) == (2.0, 0.0, 0)
    assert (second.bid_removed, second.bid_traded, second.sell_volume) == (0.0, 0.0, 2.0)


def test_resynced_flag_and_seconds_kept_apart() -> None:
    acc = ActivityAccumulator("X")
    acc.on_resync(3_400)
    acc.on_level(4_000, ASK, "5", 0.0, 1.0)
    three = acc.close(3000)
    four = acc.close(4000)
    assert (three.resynced, three.ask_updates) == (True, 0)
    assert (four.resynced, four.ask_added, four.ask_updates) == (False, 1.0, 1)


def test_late_event_goes_to_the_next_bar_closed() -> None:
    acc = ActivityAccumulator("X")
    acc.close(1000)
    acc.on_level(1_500, BID, "10", 0.0, 4.0)  # its second is already stored
    assert acc.close(2000).bid_added == 4.0


def test_earlier_open_bars_fold_into_the_closed_one() -> None:
    acc = ActivityAccumulator("X")
    acc.on_level(1_000, BID, "10", 2.0, 0.0)
    acc.on_trade(2_200, "10", 2.0, True)
    acc.on_level(3_000, BID, "10", 0.0, 9.0)  # a later second stays open
    bar = acc.close(2000)
    assert (bar.bid_traded, bar.bid_removed, bar.bid_updates, bar.bid_added) == (2.0, 0.0, 1, 0.0)
    assert acc.close(3000).bid_added == 9.0


def test_close_needs_a_second_boundary() -> None:
    with pytest.raises(ValueError, match="boundary"):
        ActivityAccumulator("X").close(1234)
