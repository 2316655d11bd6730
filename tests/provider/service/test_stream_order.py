"""What a ticker, book ticker or trade stream sends for the items polled from its feeds: events and
gaps in their order, never a gap inside a response of events."""

from __future__ import annotations

from binance.provider.v1 import market_data_pb2 as md

from provider.marketdata.model import StreamGap
from provider.service.market_data import in_order

GAP = StreamGap("why")


def test_events_run_together_across_symbols_and_a_gap_splits_them_in_place() -> None:
    parts = in_order([("AAA", [1, 2, GAP, 3]), ("BBB", [4]), ("CCC", [GAP]), ("DDD", [5, 6])])
    assert parts == [
        [("AAA", 1), ("AAA", 2)],
        md.StreamGap(symbol="AAA", reason="why"),
        [("AAA", 3), ("BBB", 4)],
        md.StreamGap(symbol="CCC", reason="why"),
        [("DDD", 5), ("DDD", 6)],
    ]


def test_newest_only_keeps_the_last_event_of_each_symbols_run() -> None:
    parts = in_order([("AAA", [1, 2, GAP, 3, 4]), ("BBB", [5, 6])], newest_only=True)
    assert parts == [[("AAA", 2)], md.StreamGap(symbol="AAA", reason="why"), [("AAA", 4), ("BBB", 6)]]


def test_nothing_polled_sends_nothing() -> None:
    assert in_order([("AAA", []), ("BBB", [])]) == []
    assert in_order([("AAA", [GAP, GAP])]) == [md.StreamGap(symbol="AAA", reason="why")] * 2


def test_a_gap_of_skipped_trade_ids_names_them() -> None:
    gap = StreamGap("trade ids 9 to 10 did not arrive from the exchange", 9, 10)
    assert in_order([("AAA", [8, gap, 11])]) == [
        [("AAA", 8)],
        md.StreamGap(symbol="AAA", reason=gap.reason, first_missing_trade_id=9, last_missing_trade_id=10),
        [("AAA", 11)],
    ]
