from __future__ import annotations

import pytest

from bench.bench_analytics import synthetic_market
from provider.analytics.health import ComponentName, Health, health, update_rate_score
from provider.analytics.window import DataQualityFlag, Window
from provider.history.arrays import ActivityArrays, SnapshotArrays, TradeArrays
from tests.provider.analytics import T0, make_bars, make_snaps, make_trades, seconds

REQ = Window(T0, T0 + 10_000)
C = ComponentName


def run(trades: TradeArrays, snaps: SnapshotArrays, bars: ActivityArrays, window: Window = REQ) -> Health:
    return health(symbol="X", requested=window, now_ms=window.end_ms, trades=trades, snapshots=snaps, activity=bars)


def hand_snaps() -> SnapshotArrays:
    """Spread alternates 1 and 3 (CV 0.5); depth 2 x 10 per row, halved in the last row."""
    asks = [[101.0 if i % 2 == 0 else 103.0] for i in range(10)]
    depth = [[10.0]] * 9 + [[5.0]]
    return make_snaps(seconds(10), [[100.0]] * 10, depth, asks, depth)


def test_hand_checked_score() -> None:
    trades = make_trades([(T0 + 1, 100, 3.0, False), (T0 + 2, 100, 1.0, True)])
    r = run(trades, hand_snaps(), make_bars(seconds(10), bid_updates=[60] * 10, ask_updates=[40] * 10))
    assert [c.name for c in r.components] == [C.SPREAD_STABILITY, C.LIQUIDITY_DEPTH, C.FLOW_BALANCE, C.UPDATE_RATE]
    assert [c.weight for c in r.components] == [0.25, 0.35, 0.25, 0.15]
    # spread CV 0.5; depth: last tenth (1 row) has 10 vs median 20; flow |3 - 1| / 4; 100 updates/s.
    assert [c.value for c in r.components] == pytest.approx([0.5, 0.5, 0.5, 100.0])
    assert [c.score for c in r.components] == pytest.approx([50.0, 50.0, 50.0, 100.0])
    assert r.score == pytest.approx(0.25 * 50 + 0.35 * 50 + 0.25 * 50 + 0.15 * 100)
    assert all(c.formula and "no data" not in c.formula for c in r.components)
    assert r.meta.flags == ()
    assert (r.meta.trade_count, r.meta.snapshot_count, r.meta.book_update_count) == (2, 10, 1000)


@pytest.mark.parametrize(
    ("rate", "score"),
    [(0.0, 0.0), (0.5, 50.0), (1.0, 100.0), (200.0, 100.0), (600.0, 50.0), (999.0, 0.125), (1000.0, 0.0), (5e3, 0.0)],
)
def test_update_rate_score(rate: float, score: float) -> None:
    assert update_rate_score(rate) == pytest.approx(score)


def test_empty_window_scores_zero_not_perfect() -> None:
    r = run(TradeArrays.empty(), SnapshotArrays.empty(20), ActivityArrays.empty())
    assert r.score == 0.0
    assert all(c.score == 0.0 and c.formula.endswith("(no data: scored 0)") for c in r.components)
    assert {DataQualityFlag.NO_TRADES, DataQualityFlag.FEW_SAMPLES} <= set(r.meta.flags)


def test_no_trades_scores_only_flow_zero() -> None:
    r = run(TradeArrays.empty(), hand_snaps(), make_bars(seconds(10), bid_updates=[50] * 10))
    scores = {c.name: c.score for c in r.components}
    assert scores[C.FLOW_BALANCE] == 0.0
    assert scores[C.UPDATE_RATE] == 100.0
    assert DataQualityFlag.NO_TRADES in r.meta.flags


def test_one_price_constant_book_is_perfectly_stable() -> None:
    snaps = make_snaps(seconds(10), [[100.0]] * 10, [[1.0]] * 10, [[100.5]] * 10, [[1.0]] * 10)
    trades = make_trades([(T0 + 1, 100.5, 1.0, False), (T0 + 2, 100.5, 1.0, True)])
    r = run(trades, snaps, make_bars(seconds(10), bid_updates=[10] * 10))
    assert r.score == pytest.approx(100.0)


def test_quiet_synthetic_market_is_healthy() -> None:
    m = synthetic_market(seconds=600, seed=4)
    r = run(m.trades, m.snapshots, m.activity, m.window)
    assert r.score > 90
