from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from bench.bench_analytics import synthetic_market
from provider.analytics.anomalies import (
    Anomalies,
    AnomalyType,
    _count_shown,
    _next_quantity,
    _trade_intervals,
    _traded_levels,
    anomalies,
    detect_flash_crash_risk,
    detect_icebergs,
    detect_quote_stuffing,
    fisher_greater,
)
from provider.analytics.window import DataQualityFlag, Severity, TickGrid, Window
from provider.history.arrays import ActivityArrays, SnapshotArrays, TradeArrays
from tests.provider.analytics import T0, make_bars, make_snaps, make_trades, seconds

GRID = TickGrid("0.01")


def run(trades: TradeArrays, snaps: SnapshotArrays, bars: ActivityArrays, window: Window) -> Anomalies:
    return anomalies(
        symbol="X", requested=window, now_ms=window.end_ms, trades=trades, snapshots=snaps, activity=bars,
        tick_size="0.01",
    )  # fmt: skip


# --- quote stuffing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("updates", "fills", "expected"),
    [
        ([100, 100, 100], [0, 0, 0], []),
        ([500, 501, 100], [0, 0, 0], [(1, 1, Severity.MEDIUM, 0.5)]),  # 500 is not above 500
        ([600, 100], [60, 0], []),  # fills exactly 10 %: not under
        ([600, 100], [59, 0], [(0, 0, Severity.MEDIUM, 0.5)]),
        ([750, 751, 1000], [0, 0, 0], [(0, 2, Severity.HIGH, 0.75)]),  # peak 1000: high, 3 s
        ([1001, 600, 600, 600, 600, 600], [0] * 6, [(0, 5, Severity.CRITICAL, 1.0)]),
        ([800, 10, 800], [0, 0, 0], [(0, 0, Severity.HIGH, 0.5), (2, 2, Severity.HIGH, 0.5)]),
    ],
)
def test_quote_stuffing(updates: list[int], fills: list[int], expected: list[tuple[int, int, Severity, float]]) -> None:
    n = len(updates)
    bars = make_bars(seconds(n), bid_updates=[u // 2 for u in updates], ask_updates=[u - u // 2 for u in updates],
                     trade_count=fills)  # fmt: skip
    got = detect_quote_stuffing(bars)
    assert [
        ((a.window.start_ms - T0) // 1000, (a.window.end_ms - T0) // 1000 - 1, a.severity, a.confidence) for a in got
    ] == expected
    for a in got:
        assert a.type is AnomalyType.QUOTE_STUFFING
        assert a.recommended_action
        assert {e.name for e in a.evidence} >= {"peak_updates_per_second", "fill_ratio"}


def test_stuffing_episode_ends_at_a_recording_gap() -> None:
    bars = make_bars([T0, T0 + 1000, T0 + 5000], bid_updates=[900, 900, 900])
    assert len(detect_quote_stuffing(bars)) == 2


# --- icebergs ---------------------------------------------------------------------------------


def iceberg_book(m: int, refill: bool) -> tuple[SnapshotArrays, TradeArrays]:
    """Asks 100.00 .. 100.03. 100.00 shows 1.0 and a buy of 1.0 trades it each second; with
    ``refill`` it shows 1.0 again every next snapshot, else it drains. 100.01-100.03 each trade
    0.01 a second and shrink by exactly that (never refill). Bids are static and untraded."""
    t = seconds(m)
    ask_px = [[100.00, 100.01, 100.02, 100.03]] * m
    drain = [1.0 - 0.01 * i for i in range(m)]
    ask_qty = [[1.0 if refill or i == 0 else 0.0, drain[i], drain[i], drain[i]] for i in range(m)]
    if not refill:  # an emptied best level disappears: the next ask is the new best
        ask_px = [ask_px[0]] + [[math.nan, 100.01, 100.02, 100.03]] * (m - 1)
    bid_px = [[99.99, 99.98]] * m
    bid_qty = [[1.0, 1.0]] * m
    rows = []
    for i in range(m - 1):
        if refill or i == 0:
            rows.append((t[i] + 500, 100.00, 1.0, False))
        rows += [(t[i] + 600, p, 0.01, False) for p in (100.01, 100.02, 100.03)]
    return make_snaps(t, bid_px, bid_qty, ask_px, ask_qty), make_trades(rows)


def test_iceberg_is_found_with_hand_checked_evidence() -> None:
    snaps, trades = iceberg_book(40, refill=True)
    found = detect_icebergs(snaps, trades, GRID)
    assert len(found) == 1
    a = found[0]
    assert (a.type, a.price) == (AnomalyType.ICEBERG, "100.00")
    ev = {e.name: e.value for e in a.evidence}
    assert (ev["refills"], ev["traded_intervals"]) == (39, 39)
    assert ev["refilled_quantity"] == pytest.approx(39.0)  # 1.0 re-shown after each 1.0 traded
    assert ev["median_refill_rate"] == 0.0  # the three draining levels never refill
    assert ev["pooled_refill_probability"] == 0.0  # the other three levels: 0 refills in 3 x 39 intervals
    assert ev["p_value"] == pytest.approx(1 / math.comb(156, 39))  # all 39 refills in this level's 39 of 156
    assert a.confidence == pytest.approx(1.0)
    assert a.severity is Severity.HIGH  # 39 refilled vs 1.0 displayed: >= 10x
    assert a.detected_at_ms == T0 + 39_000
    assert "resistance" in a.recommended_action


def refilling_book(m: int, others: Sequence[float], other_trades: int) -> tuple[SnapshotArrays, TradeArrays]:
    """Asks 100.00 .. 100.03. 100.00 shows 1.0, is bought out (1.0) every second and shown again.
    100.01-100.03 show ``others[i]`` in snapshot i and trade 0.05 in each of their first
    ``other_trades`` intervals; a level that shows more than it kept after the trade was refilled."""
    t = seconds(m)
    ask_qty = [[1.0, others[i], others[i], others[i]] for i in range(m)]
    snaps = make_snaps(t, [[99.99]] * m, [[1.0]] * m, [[100.00, 100.01, 100.02, 100.03]] * m, ask_qty)
    rows = []
    for i in range(m - 1):
        rows.append((t[i] + 500, 100.00, 1.0, False))
        if i < other_trades:
            rows += [(t[i] + 600, p, 0.05, False) for p in (100.01, 100.02, 100.03)]
    return snaps, make_trades(rows)


def test_an_iceberg_is_tested_against_the_other_levels() -> None:
    """The other levels are topped up every other second (18 refills in 36 intervals); 100.00 in all
    12 of its. Fisher: P = C(30, 12) / C(48, 12) = 0.00124, x 4 levels: confidence 0.995. (A
    binomial test against the pooled 30 / 48, its own refills included, gives 0.986: no iceberg.)"""
    m = 13
    snaps, trades = refilling_book(m, [0.1 if i % 2 == 0 else 0.05 for i in range(m)], m - 1)
    [found] = detect_icebergs(snaps, trades, GRID)
    ev = {e.name: e.value for e in found.evidence}
    assert (found.price, ev["refills"], ev["traded_intervals"]) == ("100.00", 12, 12)
    assert ev["pooled_refill_probability"] == pytest.approx(0.5)
    assert ev["p_value"] == pytest.approx(math.comb(30, 12) / math.comb(48, 12))
    assert found.confidence == pytest.approx(1 - 4 * math.comb(30, 12) / math.comb(48, 12))


def test_a_level_is_no_iceberg_against_too_few_other_intervals() -> None:
    """The other levels trade once each and never refill: 0 of 3 intervals. 100.00 refills in all
    10 of its, yet P = 1 / C(13, 10) = 0.0035, x 4 levels: confidence 0.986, under 0.99. (Taking
    the others' 0 of 3 as an exact refill probability would call it certain.)"""
    m = 11
    snaps, trades = refilling_book(m, [0.1 - 0.05 * min(i, 1) for i in range(m)], 1)
    assert detect_icebergs(snaps, trades, GRID) == []


def test_level_that_drains_is_no_iceberg() -> None:
    snaps, trades = iceberg_book(40, refill=False)
    assert detect_icebergs(snaps, trades, GRID) == []


def test_short_series_is_no_iceberg() -> None:
    snaps, trades = iceberg_book(3, refill=True)  # 2 refills: below the minimum of 3, and not significant
    assert detect_icebergs(snaps, trades, GRID) == []


def test_iceberg_on_bids_needs_aggressor_sells() -> None:
    snaps, trades = iceberg_book(40, refill=True)
    mirrored = make_snaps(snaps.time_ms.tolist(), snaps.ask_px * -1 + 200, snaps.ask_qty, snaps.bid_px * -1 + 200,
                          snaps.bid_qty)  # fmt: skip
    sells = TradeArrays(trades.time_ms, 200 - trades.price, trades.qty, ~trades.buyer_is_maker, trades.agg_id)
    found = detect_icebergs(mirrored, sells, GRID)
    assert [(a.price, "support" in a.recommended_action) for a in found] == [("100.00", True)]
    assert detect_icebergs(mirrored, trades, GRID) == []  # buys never hit bids


def late_refill_book(m: int, emptied: set[int]) -> tuple[SnapshotArrays, TradeArrays]:
    """Asks as in :func:`iceberg_book`; 100.00 is bought (1.0) in every second it is shown at the
    start of, is missing (emptied, inside the visible range) from the snapshots in ``emptied``, and
    shows 0.6 in a snapshot right after a missing one, 1.0 otherwise."""
    t = seconds(m)
    drain = [1.0 - 0.01 * i for i in range(m)]
    ask_px = [[math.nan if i in emptied else 100.00, 100.01, 100.02, 100.03] for i in range(m)]
    shown = [0.0 if i in emptied else 0.6 if i - 1 in emptied else 1.0 for i in range(m)]
    ask_qty = [[shown[i], drain[i], drain[i], drain[i]] for i in range(m)]
    rows = []
    for i in range(m - 1):
        if i not in emptied:
            rows.append((t[i] + 500, 100.00, 1.0, False))
        rows += [(t[i] + 600, p, 0.01, False) for p in (100.01, 100.02, 100.03)]
    return make_snaps(t, [[99.99]] * m, [[1.0]] * m, ask_px, ask_qty), make_trades(rows)


@pytest.mark.parametrize(
    ("emptied", "expected"),
    [
        # (refills, traded intervals, refilled quantity, second the last refill was seen in)
        # Intervals starting at a snapshot showing 100.00: 0-2, 4-5, 7-8. The two emptied by the
        # trades (2, 5) are shown again one snapshot later (0.6): refills read from there.
        ({3, 6}, (7, 7, 5 * 1.0 + 2 * 0.6, 9)),
        # Missing from two snapshots in a row: interval 2 drained; 0-1 and 5-8 refill.
        ({3, 4}, (6, 7, 6 * 1.0, 9)),
        # Interval 7's refill is seen late, in the last snapshot.
        ({8}, (8, 8, 7 * 1.0 + 0.6, 9)),
        # Missing from the last snapshot: nothing after it, so interval 8 drained.
        ({9}, (8, 9, 8 * 1.0, 8)),
        # Gone for good after snapshot 2: refills at 0 and 1 only, below the minimum of 3.
        (set(range(3, 10)), None),
    ],
)
def test_refill_a_snapshot_late_counts(emptied: set[int], expected: tuple[int, int, float, int] | None) -> None:
    snaps, trades = late_refill_book(10, emptied)
    found = detect_icebergs(snaps, trades, GRID)
    if expected is None:
        assert found == []
        return
    [a] = found
    assert a.price == "100.00"
    ev = {e.name: e.value for e in a.evidence}
    refills, intervals, quantity, seen = expected
    assert (ev["refills"], ev["traded_intervals"]) == (refills, intervals)
    assert ev["refilled_quantity"] == pytest.approx(quantity)
    assert a.detected_at_ms == T0 + 1000 * seen


def random_side(rng: np.random.Generator, m: int, n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """One side of ``m`` snapshots x ``n`` levels as the detector may meet it: prices on a narrow
    0.01 grid, so levels repeat across snapshots (and, unsorted, within one); NaN gaps; sometimes
    a whole snapshot empty; missing levels have quantity 0."""
    px = np.round(rng.integers(9_995, 10_005, (m, n)) * 0.01, 2)
    if rng.random() < 0.5:  # a proper ladder instead: ascending, distinct
        px = np.round((9_995 + np.cumsum(rng.integers(1, 3, (m, n)), axis=1)) * 0.01, 2)
    px[rng.random((m, n)) < rng.choice([0.0, 0.3, 0.7])] = math.nan
    px[rng.random(m) < 0.1] = math.nan
    qty = np.where(np.isnan(px), 0.0, rng.choice([0.5, 1.0, 1.5, 0.1, 0.3], (m, n)) * rng.integers(1, 4, (m, n)))
    return px, qty


def read_next_quantity(
    px: NDArray[np.float64], q: NDArray[np.float64], r: int, c: int, deeper_is_lower: bool
) -> tuple[bool, float, int]:
    """The module docstring's rule for one traded level, read off the rows one level at a time."""
    price = px[r, c]
    shown = [k for k in range(px.shape[1]) if px[r + 1, k] == price]
    visible = [float(x) for x in px[r + 1] if not math.isnan(x)]
    inside = bool(visible) and (price >= min(visible) if deeper_is_lower else price <= max(visible))
    if not shown and not inside:
        return False, 0.0, r + 1
    if not shown and r + 2 < len(px):
        again = [k for k in range(px.shape[1]) if px[r + 2, k] == price]
        if again:
            return True, sum(float(q[r + 2, k]) for k in again), r + 2
    return True, sum(float(q[r + 1, k]) for k in shown), r + 1


@pytest.mark.parametrize("seed", range(6))
def test_next_quantity_matches_a_level_by_level_reading(seed: int) -> None:
    rng = np.random.default_rng(seed)
    checked = {"late": 0, "unknown": 0, "duplicate": 0}
    for _ in range(60):
        m, n = int(rng.integers(2, 12)), int(rng.integers(1, 7))
        px, q = random_side(rng, m, n)
        rows, cols = np.nonzero(~np.isnan(px[:-1]))
        deeper_is_lower = bool(rng.random() < 0.5)
        known, seen_q, seen_at = _next_quantity(px, q, rows, cols, deeper_is_lower)
        for e, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
            is_known, quantity, at = read_next_quantity(px, q, r, c, deeper_is_lower)
            assert bool(known[e]) is is_known, (seed, r, c)
            if is_known:
                assert (seen_q[e], seen_at[e]) == (pytest.approx(quantity), at), (seed, r, c)
            checked["late"] += is_known and at == r + 2
            checked["unknown"] += not is_known
            checked["duplicate"] += int(np.sum(px[r + 1] == px[r, c]) > 1)
    assert min(checked.values()) > 0, checked  # every branch was met


@pytest.mark.parametrize("seed", range(6))
def test_traded_levels_match_a_trade_by_trade_count(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    for _ in range(60):
        m, n = int(rng.integers(1, 10)), int(rng.integers(1, 6))
        px, _ = random_side(rng, m, n)
        k = int(rng.integers(0, 80))
        ti = np.sort(rng.integers(0, m, k)) if rng.random() < 0.8 else rng.integers(0, m, k)
        tp = np.round(rng.integers(9_995, 10_010, k) * 0.01, 2)
        tq = rng.choice([0.0, 0.01, 0.5, 1.25], k)
        expected: dict[tuple[int, int], float] = {}
        for i, p, v in zip(ti.tolist(), tp.tolist(), tq.tolist(), strict=True):
            first = next((j for j in range(n) if px[i, j] == p), None)
            if first is not None:
                expected[i, first] = expected.get((i, first), 0.0) + v
        rows, cols, traded = _traded_levels(px, ti, tp, tq)
        got = list(zip(rows.tolist(), cols.tolist(), traded.tolist(), strict=True))
        assert got == sorted((i, j, v) for (i, j), v in expected.items() if v > 0), seed


@pytest.mark.parametrize("sorted_trades", [True, False])
def test_trade_intervals_match_a_binary_search(sorted_trades: bool) -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        times = np.sort(rng.integers(0, 10_000, int(rng.integers(0, 30))))
        trade_times = rng.integers(-1_000, 11_000, int(rng.integers(0, 200)))
        if len(times):
            trade_times[::3] = rng.choice(times, len(trade_times[::3]))  # exactly at snapshots
        if sorted_trades:
            trade_times.sort()
        expected = np.searchsorted(times, trade_times, side="left") - 1
        assert _trade_intervals(times, trade_times).tolist() == expected.tolist()


@pytest.mark.parametrize("span", [50, 10**9])  # a count per tick of the span, and binary search past it
def test_count_shown(span: int) -> None:
    rng = np.random.default_rng(span)
    ticks = rng.integers(0, span, 5_000)
    levels = np.unique(rng.choice(ticks, 20))
    assert _count_shown(ticks, levels).tolist() == [int(np.sum(ticks == v)) for v in levels]


@pytest.mark.parametrize(
    ("k", "n", "k_other", "n_other", "expected"),
    [
        (0, 5, 1, 5, 1.0),
        (2, 2, 0, 2, 1 / 6),  # both refills in this level's 2 of 4 intervals: 1 / C(4, 2)
        (2, 3, 1, 3, 0.5),  # (C(3,2) C(3,1) + C(3,3)) / C(6,3)
        (1, 3, 1, 1, 1.0),  # 3 of 4 intervals hold at least 1 of 2 refills, always
        (3, 3, 0, 0, 1.0),  # nothing else traded: no comparison
        (4, 3, 0, 3, 0.0),
    ],
)
def test_fisher_greater(k: int, n: int, k_other: int, n_other: int, expected: float) -> None:
    assert fisher_greater(k, n, k_other, n_other) == pytest.approx(expected)


# --- flash-crash risk -------------------------------------------------------------------------


def crash_market(drain: bool, widen: bool, cancels: bool, m: int = 120) -> tuple[SnapshotArrays, ActivityArrays]:
    """Five levels a side of 1.0, spread 0.02; seconds 100-104 stressed as asked."""
    t = seconds(m)
    bid_px, bid_qty, ask_px = [], [], []
    for i in range(m):
        stressed = 100 <= i < 105
        bid_px.append([99.99 - 0.01 * j for j in range(5)])
        bid_qty.append([0.1 if stressed and drain else 1.0] * 5)
        best_ask = 100.30 if stressed and widen else 100.01
        ask_px.append([best_ask + 0.01 * j for j in range(5)])
    removed = [10.0 if 95 <= i < 105 and cancels else 0.5 for i in range(m)]
    bars = make_bars(t, bid_removed=removed, bid_traded=[0.5] * m)
    return make_snaps(t, bid_px, bid_qty, ask_px, [[1.0] * 5] * m), bars


@pytest.mark.parametrize(
    ("drain", "widen", "cancels", "expected"),
    [
        (False, False, False, []),
        (True, False, False, []),  # drained alone is not reported
        (False, True, True, []),  # no drained side
        (True, True, False, [(Severity.HIGH, 2 / 3)]),
        (True, False, True, []),  # drained + cancels without a blown-out spread: a quiet book's requoting
        (True, True, True, [(Severity.CRITICAL, 1.0)]),
    ],
)
def test_flash_crash_risk(drain: bool, widen: bool, cancels: bool, expected: list[tuple[Severity, float]]) -> None:
    snaps, bars = crash_market(drain, widen, cancels)
    got = detect_flash_crash_risk(snaps, bars, GRID)
    assert [a.severity for a in got] == [e[0] for e in expected]
    assert [a.confidence for a in got] == pytest.approx([e[1] for e in expected])
    for a in got:
        assert (a.window.start_ms - T0, a.window.end_ms - T0) == (100_000, 105_000)
        assert a.price == "99.99"
        ev = {e.name: e.value for e in a.evidence}
        assert ev["depth_drained_fraction"] == pytest.approx(0.9)
        assert ev["baseline_depth"] == 5.0


def test_flash_crash_needs_a_baseline() -> None:
    snaps, bars = crash_market(True, True, True, m=59)
    assert detect_flash_crash_risk(snaps, bars, GRID) == []


# --- whole answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_quiet_synthetic_market_raises_no_anomaly(seed: int) -> None:
    m = synthetic_market(seconds=1800, seed=seed)
    r = run(m.trades, m.snapshots, m.activity, m.window)
    assert r.anomalies == ()
    assert r.meta.flags == ()
    assert r.meta.snapshot_count == 1800
    assert r.meta.trade_count == len(m.trades)


def test_empty_window() -> None:
    w = Window(T0, T0 + 60_000)
    r = run(TradeArrays.empty(), SnapshotArrays.empty(20), ActivityArrays.empty(), w)
    assert r.anomalies == ()
    assert {DataQualityFlag.NO_TRADES, DataQualityFlag.FEW_SAMPLES, DataQualityFlag.PARTIAL_WINDOW} <= set(r.meta.flags)


def test_one_price_and_a_gap() -> None:
    m = synthetic_market(seconds=300, seed=5)
    keep = np.ones(300, np.bool_)
    keep[100:110] = False  # ten seconds not recorded
    s, b = m.snapshots, m.activity
    snaps = SnapshotArrays(s.time_ms[keep], s.last_update_id[keep], s.bid_px[keep], s.bid_qty[keep], s.ask_px[keep],
                           s.ask_qty[keep])  # fmt: skip
    bars = make_bars(b.time_ms[keep].tolist(), bid_updates=b.bid_updates[keep].tolist())
    trades = TradeArrays(m.trades.time_ms, np.full(len(m.trades), 50_000.0), m.trades.qty, m.trades.buyer_is_maker,
                         m.trades.agg_id)  # fmt: skip
    r = run(trades, snaps, bars, m.window)
    assert r.anomalies == ()
    # The union of the bars' gap [100 s, 110 s) and the snapshots' [t_99 + 1 s, t_110) (jittered).
    assert [(g.start_ms, g.end_ms) for g in r.meta.gaps] == [(T0 + 100_000, int(s.time_ms[110]))]
    assert DataQualityFlag.RECORDING_GAP in r.meta.flags


def test_answer_combines_detectors_in_time_order() -> None:
    snaps, bars = crash_market(True, True, True)
    bars = make_bars(bars.time_ms.tolist(), bid_removed=bars.bid_removed.tolist(), bid_traded=bars.bid_traded.tolist(),
                     bid_updates=[800 if i == 10 else 10 for i in range(120)])  # fmt: skip
    r = run(TradeArrays.empty(), snaps, bars, Window(T0, T0 + 120_000))
    assert [a.type for a in r.anomalies] == [AnomalyType.QUOTE_STUFFING, AnomalyType.FLASH_CRASH_RISK]
    assert {t.name for t in r.meta.thresholds} >= {"stuffing_updates_per_second", "iceberg_refill_rate_factor"}
