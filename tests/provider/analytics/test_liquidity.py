from __future__ import annotations

import math

import pytest

from bench.bench_analytics import synthetic_market
from provider.analytics.liquidity import LiquidityMap, Side, liquidity_map
from provider.analytics.window import AnalyticsInputError, DataQualityFlag, Severity, Window
from provider.history.arrays import SnapshotArrays, TradeArrays
from tests.provider.analytics import T0, make_snaps, make_trades, seconds

REQ = Window(T0, T0 + 30_000)
BIDS = [100.00, 99.99, 99.98, 99.90, 99.89]
ASKS = [100.01, 100.02, 100.03, math.nan, math.nan]


def run(trades: TradeArrays, snaps: SnapshotArrays, depth_levels: int = 0) -> LiquidityMap:
    return liquidity_map(
        symbol="X", requested=REQ, now_ms=REQ.end_ms, trades=trades, snapshots=snaps, tick_size="0.01",
        depth_levels=depth_levels,
    )  # fmt: skip


def book(m: int = 30, wall_rows: int = 0, best_ask_from: dict[int, float] | None = None) -> SnapshotArrays:
    """Bids 100.00 99.99 99.98 (3.0) 99.90 99.89, asks 100.01 100.02 (2.0) 100.03; the bid at 99.99
    is a 10.0 wall in the last ``wall_rows`` rows; ``best_ask_from`` shifts the asks up from a row."""
    bid_qty, ask_px = [], []
    for i in range(m):
        bid_qty.append([1.0, 10.0 if i >= m - wall_rows else 1.0, 3.0, 1.0, 1.0])
        shift = max((v for k, v in (best_ask_from or {}).items() if i >= k), default=0.0)
        ask_px.append([p + shift for p in ASKS])
    return make_snaps(seconds(m), [BIDS] * m, bid_qty, ask_px, [[1.0, 2.0, 1.0, 0.0, 0.0]] * m)


@pytest.mark.parametrize(("wall_rows", "persisted"), [(30, 30), (12, 12), (10, 10), (9, None), (0, None)])
def test_walls_must_persist(wall_rows: int, persisted: int | None) -> None:
    r = run(TradeArrays.empty(), book(wall_rows=wall_rows))
    if persisted is None:
        assert r.walls == ()
        return
    [w] = r.walls
    assert (w.side, w.price, w.quantity, w.persisted_seconds) == (Side.BUY, "99.99", "10", persisted)
    assert w.size_vs_median == 10.0  # the median bid level is 1.0


def absorption_trades() -> TradeArrays:
    rows = [(T0 + 5000 + 100 * i, 100.01, 1.0, False) for i in range(6)]  # 6.0 bought at the ask
    rows += [(T0 + 6000, 100.02, 1.0, False), (T0 + 6100, 100.00, 1.0, True), (T0 + 6200, 99.99, 1.0, True)]
    return make_trades(sorted(rows))


@pytest.mark.parametrize(("break_row", "held"), [(None, 23), (20, 14), (15, None)])
def test_absorption_needs_the_price_to_hold(break_row: int | None, held: int | None) -> None:
    shifts = {break_row: 0.02} if break_row is not None else None
    r = run(absorption_trades(), book(best_ask_from=shifts))
    if held is None:
        assert r.absorptions == ()
        return
    [a] = r.absorptions
    # median group volume is 1.0; 6.0 >= 5 x 1.0. Last trade at 5.5 s; held until the break or 29 s.
    assert (a.aggressor_side, a.price, a.traded_volume, a.time_ms, a.held_seconds) == (
        Side.BUY, "100.01", 6.0, T0 + 5500, held,
    )  # fmt: skip


def test_book_vacuum_and_stops_that_avoid_it() -> None:
    r = run(TradeArrays.empty(), book())
    # Bid side: 1-tick bins from 99.89 to 100.00; 99.91 .. 99.97 are empty (7 bins).
    assert [(v.price_low, v.price_high, v.severity, v.volume_ratio) for v in r.vacuums] == [
        ("99.91", "99.98", Severity.CRITICAL, 0.0)
    ]
    long, short = r.stop_suggestions
    # Largest bid 99.98 -> 99.97 would sit in the vacuum, so it moves below it.
    assert (long.position_side, long.stop_price) == (Side.BUY, "99.90")
    assert "thin zone 99.91-99.98" in long.rationale
    assert (short.position_side, short.stop_price) == (Side.SELL, "100.03")
    assert "largest visible ask (2 at 100.02)" in short.rationale


def test_depth_levels_limit_what_is_seen() -> None:
    r = run(TradeArrays.empty(), book(), depth_levels=3)
    assert r.vacuums == ()  # the deep bids beyond the gap are not looked at
    assert r.stop_suggestions[0].stop_price == "99.97"
    assert {t.name: t.value for t in r.meta.thresholds}["depth_levels"] == 3


def test_empty_window() -> None:
    r = run(TradeArrays.empty(), SnapshotArrays.empty(20))
    assert (r.walls, r.absorptions, r.vacuums, r.stop_suggestions) == ((), (), (), ())
    assert {DataQualityFlag.NO_TRADES, DataQualityFlag.FEW_SAMPLES} <= set(r.meta.flags)


def test_one_sided_book_has_one_stop() -> None:
    nan = [math.nan] * 5
    snaps = make_snaps(seconds(30), [BIDS] * 30, [[1.0] * 5] * 30, [nan] * 30, [[0.0] * 5] * 30)
    r = run(make_trades([(T0 + 1, 100.0, 1.0, True)]), snaps)
    assert [s.position_side for s in r.stop_suggestions] == [Side.BUY]


def test_negative_depth_levels_rejected() -> None:
    with pytest.raises(AnalyticsInputError):
        run(TradeArrays.empty(), book(), depth_levels=-1)


def test_quiet_synthetic_market() -> None:
    m = synthetic_market(seconds=600, seed=9)
    r = liquidity_map(
        symbol="X", requested=m.window, now_ms=m.window.end_ms, trades=m.trades, snapshots=m.snapshots,
        tick_size="0.01",
    )  # fmt: skip
    assert r.walls == ()  # sizes are lognormal(0, 0.5): nothing near 5x the median persists
    assert len(r.stop_suggestions) == 2
    assert r.meta.snapshot_count == 600
