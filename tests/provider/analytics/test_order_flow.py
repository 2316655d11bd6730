from __future__ import annotations

import math

import numpy as np
import pytest

from provider.analytics.order_flow import FlowDirection, book_imbalance, classify_ratio, order_flow
from provider.analytics.window import AnalyticsInputError, BookTop, DataQualityFlag, DataSource, Window
from provider.history.arrays import ActivityArrays, TradeArrays
from tests.provider.analytics import T0, make_bars, make_trades, seconds

D = FlowDirection
REQ = Window(T0, T0 + 10_000)


def book(bids: list[float], asks: list[float], in_sync: bool = True) -> BookTop:
    return BookTop(
        np.arange(100.0, 100.0 - len(bids), -1.0), np.array(bids), np.arange(101.0, 101.0 + len(asks)),
        np.array(asks), last_update_id=77, event_time_ms=T0 + 9_900, in_sync=in_sync,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("ratio", "direction"),
    [
        (math.inf, D.STRONG_BUY),
        (2.0001, D.STRONG_BUY),
        (2.0, D.MODERATE_BUY),
        (1.21, D.MODERATE_BUY),
        (1.2, D.NEUTRAL),
        (1.0, D.NEUTRAL),
        (0.8, D.NEUTRAL),
        (0.79, D.MODERATE_SELL),
        (0.5, D.MODERATE_SELL),
        (0.49, D.STRONG_SELL),
        (0.0, D.STRONG_SELL),
    ],
)
def test_direction_thresholds(ratio: float, direction: FlowDirection) -> None:
    assert classify_ratio(ratio) is direction


def flow(trades: TradeArrays, bars: ActivityArrays, **kw: object) -> object:
    return order_flow(symbol="BTCUSDT", requested=REQ, now_ms=T0 + 10_000, trades=trades, activity=bars, **kw)  # type: ignore[arg-type]


def test_hand_checked_window() -> None:
    trades = make_trades(
        [
            (T0 + 1000, 100.0, 1.0, False),
            (T0 + 2000, 100.0, 0.5, True),
            (T0 + 6000, 101.0, 2.0, False),
            (T0 + 7500, 99.0, 1.0, True),
            (T0 + 10_000, 99.0, 9.0, True),  # at the window's end: excluded (half-open)
        ]
    )
    bars = make_bars(
        seconds(10), bid_added=[2.0] * 10, ask_added=[1.0] * 10, bid_updates=[3] * 10, ask_updates=[1] * 10
    )
    r = order_flow(
        symbol="BTCUSDT", requested=REQ, now_ms=T0 + 10_000, trades=trades, activity=bars,
        book=book([3.0, 1.0], [1.0, 1.0]), bucket_seconds=5,
    )  # fmt: skip
    assert (r.buy_volume, r.sell_volume, r.buy_count, r.sell_count) == (3.0, 1.5, 2, 2)
    assert r.delta == 1.5
    assert r.buy_sell_ratio == 2.0
    assert r.direction is D.MODERATE_BUY
    assert [(b.start_ms - T0, b.buy_volume, b.sell_volume, b.delta, b.cumulative_delta) for b in r.series] == [
        (0, 1.0, 0.5, 0.5, 0.5),
        (5000, 2.0, 1.0, 1.0, 1.5),
    ]
    assert (r.bid_added_per_second, r.ask_added_per_second, r.net_flow_per_second) == (2.0, 1.0, 1.0)
    assert r.book_imbalance == pytest.approx(1 / 3)
    m = r.meta
    assert (m.trade_count, m.snapshot_count, m.book_update_count) == (4, 0, 40)
    assert m.covered == REQ
    assert m.flags == (DataQualityFlag.FEW_SAMPLES,)
    assert {t.name: t.value for t in m.thresholds}["bucket_seconds"] == 5
    assert m.freshness.source is DataSource.LOCAL_BOOK
    assert (m.freshness.last_update_id, m.freshness.age_ms) == (77, 100)


def test_no_trades_is_neutral_and_flagged() -> None:
    r = order_flow(
        symbol="X", requested=REQ, now_ms=T0 + 10_000, trades=TradeArrays.empty(), activity=make_bars(seconds(10)),
        bucket_seconds=5,
    )  # fmt: skip
    assert (r.buy_volume, r.sell_volume, r.buy_sell_ratio, r.direction) == (0.0, 0.0, 1.0, D.NEUTRAL)
    assert [(b.delta, b.cumulative_delta) for b in r.series] == [(0.0, 0.0), (0.0, 0.0)]
    assert set(r.meta.flags) == {
        DataQualityFlag.NO_TRADES,
        DataQualityFlag.FEW_SAMPLES,
        DataQualityFlag.BOOK_OUT_OF_SYNC,
    }


def test_empty_window() -> None:
    r = order_flow(symbol="X", requested=REQ, now_ms=T0, trades=TradeArrays.empty(), activity=ActivityArrays.empty())
    assert r.series == ()
    assert (r.bid_added_per_second, r.book_imbalance) == (0.0, 0.0)
    assert r.meta.covered.duration_ms == 0
    assert DataQualityFlag.PARTIAL_WINDOW in r.meta.flags


def test_only_buys_is_an_unbounded_strong_buy() -> None:
    r = order_flow(
        symbol="X", requested=REQ, now_ms=T0 + 10_000, trades=make_trades([(T0 + 1, 1.0, 2.0, False)]),
        activity=make_bars(seconds(10)),
    )  # fmt: skip
    assert r.buy_sell_ratio == math.inf
    assert r.direction is D.STRONG_BUY


def test_recording_gap_does_not_dilute_rates() -> None:
    times = [t for t in seconds(10) if t not in (T0 + 3000, T0 + 4000)]
    bars = make_bars(times, bid_added=[4.0] * 8, ask_added=[2.0] * 8)
    r = order_flow(symbol="X", requested=REQ, now_ms=T0 + 10_000, trades=TradeArrays.empty(), activity=bars)
    assert (r.bid_added_per_second, r.ask_added_per_second, r.net_flow_per_second) == (4.0, 2.0, 2.0)
    assert [(g.start_ms - T0, g.end_ms - T0) for g in r.meta.gaps] == [(3000, 5000)]
    assert DataQualityFlag.RECORDING_GAP in r.meta.flags


def test_out_of_sync_book_is_omitted() -> None:
    r = order_flow(
        symbol="X", requested=REQ, now_ms=T0 + 10_000, trades=TradeArrays.empty(), activity=make_bars(seconds(10)),
        book=book([5.0], [1.0], in_sync=False),
    )  # fmt: skip
    assert r.book_imbalance == 0.0
    assert DataQualityFlag.BOOK_OUT_OF_SYNC in r.meta.flags
    assert r.meta.freshness.in_sync is False


@pytest.mark.parametrize(
    ("bids", "asks", "expected"), [([1.0], [1.0], 0.0), ([3.0, 1.0], [0.0], 1.0), ([], [], 0.0), ([1.0], [3.0], -0.5)]
)
def test_book_imbalance(bids: list[float], asks: list[float], expected: float) -> None:
    assert book_imbalance(book(bids, asks)) == expected


def test_book_imbalance_uses_ten_levels() -> None:
    assert book_imbalance(book([1.0] * 10 + [100.0], [1.0] * 10)) == 0.0


@pytest.mark.parametrize(("lookback_s", "bucket"), [(10, 1), (120, 1), (121, 5), (3600, 30), (86_400, 900)])
def test_auto_bucket(lookback_s: int, bucket: int) -> None:
    w = Window(T0, T0 + lookback_s * 1000)
    r = order_flow(
        symbol="X", requested=w, now_ms=w.end_ms, trades=TradeArrays.empty(), activity=ActivityArrays.empty()
    )
    assert r.bucket_seconds == bucket


@pytest.mark.parametrize("bucket", [-1, 1])
def test_bad_bucket_is_rejected(bucket: int) -> None:
    w = Window(T0, T0 + 86_400_000)
    with pytest.raises(AnalyticsInputError) as e:
        order_flow(
            symbol="X", requested=w, now_ms=w.end_ms, trades=TradeArrays.empty(), activity=ActivityArrays.empty(),
            bucket_seconds=bucket,
        )  # fmt: skip
    assert e.value.field == "bucket_seconds"
