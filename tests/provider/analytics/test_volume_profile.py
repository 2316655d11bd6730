from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from provider.analytics.volume_profile import VolumeProfile, find_vacuums, value_area, volume_profile
from provider.analytics.window import AnalyticsInputError, DataQualityFlag, Severity, Window
from provider.history.arrays import TradeArrays
from tests.provider.analytics import T0, make_bars, make_trades, seconds

REQ = Window(T0, T0 + 10_000)


def trades_at(volumes: dict[float, tuple[float, float]]) -> TradeArrays:
    """One buy and one sell trade per price: ``{price: (buy_qty, sell_qty)}``."""
    rows = []
    for i, (p, (b, s)) in enumerate(volumes.items()):
        if b:
            rows.append((T0 + 100 * i, p, b, False))
        if s:
            rows.append((T0 + 100 * i + 50, p, s, True))
    return make_trades(rows)


def profile(trades: TradeArrays, tick: str | Decimal | float = "1", bin_size: str | None = "1") -> VolumeProfile:
    return volume_profile(
        symbol="X", requested=REQ, now_ms=REQ.end_ms, trades=trades, tick_size=tick, bin_size=bin_size,
        activity=make_bars(seconds(10)),
    )  # fmt: skip


def test_hand_checked_profile() -> None:
    r = profile(trades_at({100: (6, 4), 101: (20, 0), 102: (0, 40), 103: (25, 0), 104: (5, 0)}))
    assert [(b.price_low, b.price_high, b.buy_volume, b.sell_volume, b.total_volume) for b in r.bins] == [
        ("100", "101", 6, 4, 10),
        ("101", "102", 20, 0, 20),
        ("102", "103", 0, 40, 40),
        ("103", "104", 25, 0, 25),
        ("104", "105", 5, 0, 5),
    ]
    assert r.bin_size == "1"
    assert r.point_of_control == "102"
    # 40 (POC) + 25 (above beats 20 below) = 65 < 70, + 20 (below beats 5 above) = 85 >= 70.
    assert (r.value_area_low, r.value_area_high, r.value_area_fraction) == ("101", "104", 0.70)
    assert r.high_volume_nodes == ("102",)  # > 1.5 x median(10, 20, 40, 25, 5) = 30, and a peak
    assert r.low_volume_nodes == ()
    assert r.vacuums == ()
    assert r.meta.trade_count == 6
    assert DataQualityFlag.FEW_SAMPLES in r.meta.flags


def test_vacuum_and_low_volume_nodes() -> None:
    r = profile(trades_at({100: (10, 0), 103: (5, 5), 104: (10, 0)}))
    assert [b.total_volume for b in r.bins] == [10, 0, 0, 10, 10]
    assert r.low_volume_nodes == ("101", "102")
    assert [(v.price_low, v.price_high, v.severity, v.volume_ratio) for v in r.vacuums] == [
        ("101", "103", Severity.HIGH, 0.0)
    ]


@pytest.mark.parametrize(
    ("volumes", "expected"),
    [
        ([10, 0, 0, 0, 0, 0, 10], [(1, 5, Severity.CRITICAL, 0.0)]),  # five empty bins
        ([10, 0.4, 10], [(1, 1, Severity.HIGH, 0.04)]),  # ratio < 0.05
        ([10, 0.5, 10], [(1, 1, Severity.MEDIUM, 0.05)]),  # exactly 0.05: not < 0.05
        ([10, 0.7, 10], [(1, 1, Severity.MEDIUM, 0.07)]),  # 0.05 <= ratio < 0.1
        ([10, 1.5, 10], [(1, 1, Severity.LOW, 0.15)]),  # 0.1 <= ratio < 0.2
        ([10, 2.0, 10], []),  # exactly 20 %: not under
        ([10, 1.0, 10, 0.0, 10], [(1, 1, Severity.LOW, 0.1), (3, 3, Severity.HIGH, 0.0)]),  # 0.1: not < 0.1
    ],
)
def test_vacuum_severity(volumes: list[float], expected: list[tuple[int, int, Severity, float]]) -> None:
    v = np.array(volumes)
    got = find_vacuums(v, float(np.median(v[v > 0])))
    assert [(x.first, x.last, x.severity) for x in got] == [e[:3] for e in expected]
    assert [x.volume_ratio for x in got] == pytest.approx([e[3] for e in expected])


@pytest.mark.parametrize(
    ("volumes", "expected"),
    [
        ([5, 40, 5], (1, 1, 1)),  # 40/50 = 80 %: the POC alone is enough
        ([10, 10, 30, 10, 10], (2, 1, 3)),  # tie: both neighbours added at once: 50/70
        ([30, 10, 40, 10, 10], (2, 0, 3)),  # 40, tie +20 = 60, then 30 below vs 10 above: 90
        ([1, 1, 1, 1, 10, 30], (5, 4, 5)),  # POC at the top edge: only the side below remains
        ([40, 40, 20], (0, 0, 1)),  # POC tie: the lowest price
    ],
)
def test_value_area_expansion(volumes: list[float], expected: tuple[int, int, int]) -> None:
    assert value_area(np.array(volumes, dtype=np.float64)) == expected


def test_no_trades() -> None:
    r = profile(TradeArrays.empty())
    assert (r.bins, r.point_of_control, r.value_area_high, r.value_area_low) == ((), "", "", "")
    assert {DataQualityFlag.NO_TRADES, DataQualityFlag.FEW_SAMPLES} <= set(r.meta.flags)


def test_one_price() -> None:
    r = profile(make_trades([(T0 + 1, 50.01, 1.0, False), (T0 + 2, 50.01, 2.0, True)]), tick="0.01", bin_size=None)
    assert r.bin_size == "0.10"  # max(10 ticks, 0 / 100)
    assert [(b.price_low, b.price_high, b.total_volume) for b in r.bins] == [("50.00", "50.10", 3.0)]
    assert (r.point_of_control, r.value_area_low, r.value_area_high) == ("50.05", "50.00", "50.10")
    assert (r.high_volume_nodes, r.low_volume_nodes, r.vacuums) == ((), (), ())


@pytest.mark.parametrize(
    ("low", "high", "tick", "bin_size"),
    [
        (100.00, 100.05, "0.01", "0.10"),  # range 5 ticks: the 10-tick floor
        (100.00, 150.00, "0.01", "0.50"),  # 5,000 ticks / 100
        (100.00, 150.01, "0.01", "0.51"),  # 5,001 ticks / 100, rounded up to a whole tick
        (0.001, 0.002, "0.00000100", "0.000010"),
    ],
)
def test_auto_bin_size(low: float, high: float, tick: str, bin_size: str) -> None:
    r = profile(make_trades([(T0 + 1, low, 1.0, False), (T0 + 2, high, 1.0, False)]), tick=tick, bin_size=None)
    assert r.bin_size == bin_size
    assert len(r.bins) <= 102


def test_bins_are_exact_on_the_tick_grid() -> None:
    # 0.1 + 0.2 style float noise must not move a trade into the wrong bin.
    r = profile(make_trades([(T0 + 1, 0.3, 1.0, False), (T0 + 2, 0.7, 1.0, True)]), tick="0.1", bin_size="0.2")
    assert [(b.price_low, b.total_volume) for b in r.bins] == [("0.2", 1.0), ("0.4", 0.0), ("0.6", 1.0)]


def test_recording_gap_is_reported() -> None:
    bars = make_bars([t for t in seconds(10) if t != T0 + 5000])
    r = volume_profile(
        symbol="X", requested=REQ, now_ms=REQ.end_ms, trades=trades_at({1: (1, 1)}), tick_size="1", activity=bars
    )
    assert [(g.start_ms - T0, g.end_ms - T0) for g in r.meta.gaps] == [(5000, 6000)]


def test_without_bars_coverage_is_the_traded_span() -> None:
    trades = make_trades([(T0 + 2500, 1, 1, False), (T0 + 7200, 1, 1, False)])
    r = volume_profile(symbol="X", requested=REQ, now_ms=REQ.end_ms, trades=trades, tick_size="1")
    assert r.meta.covered == Window(T0 + 2000, T0 + 8000)
    assert r.meta.gaps == ()


@pytest.mark.parametrize("bin_size", ["0.015", "0", "-1", "x"])
def test_bad_bin_size(bin_size: str) -> None:
    with pytest.raises(AnalyticsInputError) as e:
        profile(trades_at({1: (1, 1)}), tick="0.01", bin_size=bin_size)
    assert e.value.field == "bin_size"


def test_too_many_bins() -> None:
    with pytest.raises(AnalyticsInputError):
        profile(make_trades([(T0 + 1, 1.0, 1.0, False), (T0 + 2, 1000.0, 1.0, False)]), tick="0.01", bin_size="0.01")


def test_large_profile_matches_a_direct_count() -> None:
    rng = np.random.default_rng(3)
    n = 50_000
    price = np.round(rng.normal(100, 2, n), 2)
    qty = rng.random(n)
    sold = rng.random(n) < 0.4
    tr = TradeArrays(np.sort(rng.integers(T0, T0 + 10_000, n)), price, qty, sold, np.arange(n))
    r = profile(tr, tick="0.01", bin_size=None)
    step = float(r.bin_size)
    lows = np.array([float(b.price_low) for b in r.bins])
    assert sum(b.total_volume for b in r.bins) == pytest.approx(qty.sum())
    k = 17  # any bin: recount it directly
    inside = (price >= lows[k] - 1e-9) & (price < lows[k] + step - 1e-9)
    assert r.bins[k].sell_volume == pytest.approx(qty[inside & sold].sum())
    va = [b for b in r.bins if float(r.value_area_low) <= float(b.price_low) < float(r.value_area_high)]
    assert sum(b.total_volume for b in va) >= 0.7 * qty.sum()
