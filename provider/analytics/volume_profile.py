"""Volume profile: where in price the window's volume traded, by aggressor side.

Definitions (``v[k]`` is bin ``k``'s total volume, bins in ascending price):

* **Bin size.** The caller's ``bin_size`` (a positive multiple of the tick size), or
  ``max(tick × 10, range / 100)`` rounded *up* to a whole number of ticks, where ``range`` is the
  highest minus the lowest traded price. Prices are mapped to integer tick counts first
  (``round(price / tick)``), so binning is exact; bins lie on the absolute grid
  ``[j·bin, (j+1)·bin)`` and every bin from the lowest to the highest traded one is listed, empty
  ones included. At most ``MAX_BINS`` (10,000) bins.
* **Point of control (POC)**: the bin with the largest total volume (ties: the lowest price). It
  is reported as the bin's midpoint, rounded down to the tick grid.
* **Value area** (``VALUE_AREA`` = 70 %): start with the POC bin; repeatedly compare the single
  next bin above and the single next bin below the area and add the one with more volume (both
  when equal; only the remaining side once one runs out), until the area holds ``>= 70 %`` of the
  total. ``value_area_low`` is the low edge of its lowest bin, ``value_area_high`` the high edge of
  its highest bin.
* **Reference volume** ``M``: the median volume of the *non-empty* bins (a sparse profile would
  otherwise have a median of 0 and no thresholds at all).
* **High-volume node (HVN)**: a bin with ``v > 1.5·M`` that is ``>=`` both neighbours (a missing
  neighbour counts as 0). **Low-volume node (LVN)**: an interior bin (not the first or last) with
  ``v < 0.5·M`` that is ``<=`` both neighbours. Both are reported as bin midpoints.
* **Liquidity vacuum**: a maximal run of consecutive bins with ``v < 0.2·M``. Its
  ``volume_ratio`` is the run's mean volume over ``M``. Severity: ``LOW`` for ratio ``>= 0.1``,
  ``MEDIUM`` for ``0.05 <= ratio < 0.1``, ``HIGH`` below ``0.05``, raised to ``CRITICAL`` when it
  is also at least ``5`` bins long. (The first and last bins hold the extreme trades, so a vacuum
  is always inside the traded range.)
* **Coverage clock**: the activity bars when given (gaps detected); otherwise the traded span
  rounded out to whole seconds, and gaps cannot be seen. ``NO_TRADES`` when empty,
  ``FEW_SAMPLES`` below ``MIN_TRADES`` (50).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from provider.analytics.window import (
    AnalyticsInputError,
    Coverage,
    DataQualityFlag,
    Meta,
    Severity,
    TickGrid,
    Window,
    activity_in,
    coverage,
    make_meta,
    storage_freshness,
    to_decimal,
    trades_in,
)
from provider.history.arrays import ActivityArrays, SnapshotArrays, TradeArrays

__all__ = [
    "PriceRange",
    "Vacuum",
    "VolumeBin",
    "VolumeProfile",
    "find_vacuums",
    "reference_volume",
    "value_area",
    "volume_profile",
]

VALUE_AREA = 0.70
AUTO_MIN_TICKS = 10
AUTO_RANGE_DIVISOR = 100
HVN_FACTOR = 1.5
LVN_FACTOR = 0.5
VACUUM_FACTOR = 0.2
VACUUM_HIGH_RATIO = 0.05
VACUUM_MEDIUM_RATIO = 0.1
VACUUM_CRITICAL_BINS = 5
MAX_BINS = 10_000
MIN_TRADES = 50


@dataclass(frozen=True, slots=True)
class VolumeBin:
    price_low: str
    price_high: str
    buy_volume: float
    sell_volume: float
    total_volume: float


@dataclass(frozen=True, slots=True)
class PriceRange:
    price_low: str
    price_high: str
    severity: Severity
    volume_ratio: float


@dataclass(frozen=True, slots=True)
class VolumeProfile:
    """Proto ``GetVolumeProfileResponse``, field for field ("" where there is no value)."""

    meta: Meta
    bin_size: str
    bins: tuple[VolumeBin, ...]
    point_of_control: str
    value_area_high: str
    value_area_low: str
    value_area_fraction: float
    high_volume_nodes: tuple[str, ...]
    low_volume_nodes: tuple[str, ...]
    vacuums: tuple[PriceRange, ...]


@dataclass(frozen=True, slots=True)
class Vacuum:
    """A run ``[first, last]`` of bin indices (inclusive)."""

    first: int
    last: int
    severity: Severity
    volume_ratio: float


def reference_volume(v: NDArray[np.float64]) -> float:
    nonzero = v[v > 0]
    return float(np.median(nonzero)) if len(nonzero) else 0.0


def find_vacuums(v: NDArray[np.float64], reference: float) -> list[Vacuum]:
    """Maximal runs of ``v < VACUUM_FACTOR × reference`` with their severity (see module doc)."""
    if reference <= 0 or len(v) == 0:
        return []
    low = np.concatenate(([False], v < VACUUM_FACTOR * reference, [False]))
    edges = np.flatnonzero(np.diff(low.astype(np.int8)))
    out = []
    for a, b in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):
        ratio = float(v[a:b].mean()) / reference
        if ratio < VACUUM_HIGH_RATIO:
            sev = Severity.CRITICAL if b - a >= VACUUM_CRITICAL_BINS else Severity.HIGH
        elif ratio < VACUUM_MEDIUM_RATIO:
            sev = Severity.MEDIUM
        else:
            sev = Severity.LOW
        out.append(Vacuum(a, b - 1, sev, ratio))
    return out


def value_area(v: NDArray[np.float64], fraction: float = VALUE_AREA) -> tuple[int, int, int]:
    """``(poc, lo, hi)`` bin indices of the value area by single-bin expansion (module doc)."""
    poc = int(np.argmax(v))
    target = fraction * float(v.sum()) * (1 - 1e-12)  # tolerate float summation error at exactly 70 %
    lo = hi = poc
    acc = float(v[poc])
    n = len(v)
    while acc < target and (lo > 0 or hi < n - 1):
        up = float(v[hi + 1]) if hi < n - 1 else -1.0
        down = float(v[lo - 1]) if lo > 0 else -1.0
        if up >= down:
            hi += 1
            acc += up
        if down >= up:
            lo -= 1
            acc += down
    return poc, lo, hi


def _nodes(v: NDArray[np.float64], reference: float) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    padded = np.concatenate(([0.0], v, [0.0]))
    left, right = padded[:-2], padded[2:]
    hvn = np.flatnonzero((v > HVN_FACTOR * reference) & (v >= left) & (v >= right))
    interior = np.zeros(len(v), dtype=np.bool_)
    interior[1:-1] = True
    lvn = np.flatnonzero(interior & (v < LVN_FACTOR * reference) & (v <= left) & (v <= right))
    return hvn, lvn


def _bin_ticks(grid: TickGrid, bin_size: str | Decimal | float | None, range_ticks: int) -> int:
    if bin_size is None or bin_size == "":
        return max(AUTO_MIN_TICKS, math.ceil(range_ticks / AUTO_RANGE_DIVISOR))
    size = to_decimal(bin_size, "bin_size")
    ratio = size / grid.tick
    if ratio != ratio.to_integral_value():
        raise AnalyticsInputError("bin_size", f"{bin_size} is not a multiple of the tick size {grid.tick}")
    return int(ratio)


def _span_coverage(requested: Window, times: NDArray[np.int64]) -> Coverage:
    """Coverage when only trade times are known: their span in whole seconds, no gap detection."""
    if len(times) == 0:
        return coverage(requested, [times])
    first = int(times[0]) // 1000 * 1000
    last = int(times[-1]) // 1000 * 1000
    return coverage(requested, [np.arange(first, last + 1000, 1000, dtype=np.int64)])


def volume_profile(
    *,
    symbol: str,
    requested: Window,
    now_ms: int,
    trades: TradeArrays,
    tick_size: str | Decimal | float,
    bin_size: str | Decimal | float | None = None,
    activity: ActivityArrays | None = None,
) -> VolumeProfile:
    grid = TickGrid(tick_size)
    tr = trades_in(trades, requested)
    if activity is not None:
        bars = activity_in(activity, requested)
        cov = coverage(requested, [bars.time_ms], bars.resynced)
        updates = int(bars.bid_updates.sum() + bars.ask_updates.sum())
    else:
        cov = _span_coverage(requested, tr.time_ms)
        updates = 0

    flags: list[DataQualityFlag] = []
    if len(tr) < MIN_TRADES:
        flags.append(DataQualityFlag.FEW_SAMPLES)
    ticks = grid.ticks(tr.price)
    lowest, highest = (int(ticks.min()), int(ticks.max())) if len(tr) else (0, 0)
    range_ticks = highest - lowest
    bin_t = _bin_ticks(grid, bin_size, range_ticks)
    thresholds: dict[str, float] = {
        "bin_ticks": bin_t,
        "value_area_fraction": VALUE_AREA,
        "hvn_factor": HVN_FACTOR,
        "lvn_factor": LVN_FACTOR,
        "vacuum_factor": VACUUM_FACTOR,
        "min_trades": MIN_TRADES,
    }
    freshness = storage_freshness(SnapshotArrays.empty(), now_ms, None, int(tr.time_ms[-1]) if len(tr) else 0)

    def meta() -> Meta:
        return make_meta(
            symbol=symbol,
            requested=requested,
            cov=cov,
            trade_count=len(tr),
            snapshot_count=0,
            book_update_count=updates,
            thresholds=thresholds,
            flags=flags,
            freshness=freshness,
            now_ms=now_ms,
        )

    if len(tr) == 0:
        flags.append(DataQualityFlag.NO_TRADES)
        return VolumeProfile(
            meta=meta(),
            bin_size=grid.fmt(bin_t),
            bins=(),
            point_of_control="",
            value_area_high="",
            value_area_low="",
            value_area_fraction=VALUE_AREA,
            high_volume_nodes=(),
            low_volume_nodes=(),
            vacuums=(),
        )

    base = lowest // bin_t  # floor division is monotonic: the extreme trades give the extreme bins
    n = highest // bin_t - base + 1
    if n > MAX_BINS:
        raise AnalyticsInputError("bin_size", f"gives {n} bins over this price range (at most {MAX_BINS})")
    idx = ticks // bin_t
    idx -= base
    sell_qty = tr.qty * tr.buyer_is_maker  # 0.0 for buys; ~6x faster than np.where, same values
    sell = np.bincount(idx, weights=sell_qty, minlength=n)
    total: NDArray[np.float64] = np.bincount(idx, weights=tr.qty, minlength=n).astype(np.float64, copy=False)
    buy = total - sell

    def low(k: int) -> int:
        return (base + k) * bin_t

    def mid(k: int) -> str:
        return grid.fmt(low(k) + bin_t // 2)

    bins = tuple(
        VolumeBin(grid.fmt(low(k)), grid.fmt(low(k) + bin_t), b, s, t)
        for k, (b, s, t) in enumerate(zip(buy.tolist(), sell.tolist(), total.tolist(), strict=True))
    )
    poc, va_lo, va_hi = value_area(total)
    ref = reference_volume(total)
    hvn, lvn = _nodes(total, ref)
    vacuums = tuple(
        PriceRange(grid.fmt(low(v.first)), grid.fmt(low(v.last) + bin_t), v.severity, v.volume_ratio)
        for v in find_vacuums(total, ref)
    )
    thresholds["reference_volume"] = ref
    return VolumeProfile(
        meta=meta(),
        bin_size=grid.fmt(bin_t),
        bins=bins,
        point_of_control=mid(poc),
        value_area_high=grid.fmt(low(va_hi) + bin_t),
        value_area_low=grid.fmt(low(va_lo)),
        value_area_fraction=VALUE_AREA,
        high_volume_nodes=tuple(mid(int(k)) for k in hvn),
        low_volume_nodes=tuple(mid(int(k)) for k in lvn),
        vacuums=vacuums,
    )
