"""Liquidity map: walls, absorption events, vacuums in the book, and stop placements that avoid them.

Computed from the window's snapshots (the best ``depth_levels`` levels per side, 0 = 20) and
trades. "The current book" below is the window's *last* snapshot, so a past window is answered as
it was then. Coverage clock: the snapshots. ``FEW_SAMPLES`` below ``MIN_SNAPSHOTS`` (10).

* **Walls.** Per side, ``median`` = the median quantity of every visible level (all snapshots,
  best ``depth_levels``). A level of the current book is a wall when its quantity is
  ``>= WALL_FACTOR (5) × median`` and it has been so *continuously* (same price, in the visible
  levels, at least that large, in every snapshot) for ``>= WALL_MIN_SECONDS`` (10) seconds up to the
  current book: ``persisted_seconds = (t_last + 1000 - t_first_of_run) / 1000``.
* **Absorption.** Trades are grouped by (aggressor side, price). ``median`` = the median traded
  volume of the groups; a group with volume ``>= ABSORB_FACTOR (5) × median`` (the
  ``MAX_ABSORPTIONS`` (20) largest at most) is an absorption when the price then *held*: after its
  last trade, the best ask stayed ``<= price`` (aggressor buys) or the best bid ``>= price``
  (aggressor sells) for ``>= ABSORB_MIN_HOLD_SECONDS`` (10) s. ``held_seconds`` counts from the last
  trade to the first snapshot that broke the price, or to the last snapshot when none did.
* **Vacuums (book).** Per side of the current book, from the best to the deepest visible level,
  bins of ``max(1, ceil(range_ticks / 20))`` ticks hold the visible quantity; the vacuum rule of
  :mod:`provider.analytics.volume_profile` applies (runs of bins under 20 % of the median non-empty
  bin, same severities), ``volume_ratio`` being depth relative to that median.
* **Stop suggestions.** Long (``position_side`` BUY): one tick below the largest bid of the current
  book (ties: nearest the touch). If that price falls inside a bid-side vacuum, the stop moves to
  one tick below the vacuum, so it rests where there is liquidity to fill it rather than in a thin
  zone that price can gap through. Short (SELL): mirrored above the largest ask. No suggestion for
  an empty side.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from provider.analytics.volume_profile import PriceRange, Vacuum, find_vacuums, reference_volume
from provider.analytics.window import (
    AnalyticsInputError,
    DataQualityFlag,
    Meta,
    TickGrid,
    Window,
    coverage,
    make_meta,
    snapshots_in,
    storage_freshness,
    trades_in,
)
from provider.history.arrays import SnapshotArrays, TradeArrays

__all__ = [
    "AbsorptionEvent",
    "LiquidityMap",
    "Side",
    "StopSuggestion",
    "Wall",
    "liquidity_map",
]

DEFAULT_DEPTH_LEVELS = 20
WALL_FACTOR = 5.0
WALL_MIN_SECONDS = 10
ABSORB_FACTOR = 5.0
ABSORB_MIN_HOLD_SECONDS = 10
MAX_ABSORPTIONS = 20
BOOK_VACUUM_BINS = 20
MIN_SNAPSHOTS = 10


class Side(enum.IntEnum):
    """Values equal the proto's ``Side`` numbers."""

    BUY = 1
    SELL = 2


@dataclass(frozen=True, slots=True)
class Wall:
    side: Side
    price: str
    quantity: str
    size_vs_median: float
    persisted_seconds: int


@dataclass(frozen=True, slots=True)
class AbsorptionEvent:
    aggressor_side: Side
    price: str
    traded_volume: float
    time_ms: int
    held_seconds: int


@dataclass(frozen=True, slots=True)
class StopSuggestion:
    position_side: Side
    stop_price: str
    rationale: str


@dataclass(frozen=True, slots=True)
class LiquidityMap:
    """Proto ``GetLiquidityMapResponse``, field for field."""

    meta: Meta
    walls: tuple[Wall, ...]
    absorptions: tuple[AbsorptionEvent, ...]
    vacuums: tuple[PriceRange, ...]
    stop_suggestions: tuple[StopSuggestion, ...]


def _qty_str(q: float) -> str:
    """A quantity as a plain decimal string (the float's shortest repr: the recorded decimal)."""
    return f"{Decimal(repr(q)).normalize():f}"


def _walls(sn: SnapshotArrays, levels: int, grid: TickGrid) -> list[Wall]:
    out = []
    m = len(sn)
    for side, px_all, qty_all in ((Side.BUY, sn.bid_px, sn.bid_qty), (Side.SELL, sn.ask_px, sn.ask_qty)):
        px, qty = px_all[:, :levels], qty_all[:, :levels]
        visible = np.isfinite(px)
        if not visible.any():
            continue
        median = float(np.median(qty[visible]))
        threshold = WALL_FACTOR * median
        for j in np.flatnonzero(visible[-1] & (qty[-1] >= threshold) & (qty[-1] > 0)).tolist():
            price = px[-1, j]
            big = ((px == price) & (qty >= threshold)).any(axis=1)
            broken = np.flatnonzero(~big)
            first = int(broken[-1]) + 1 if len(broken) else 0
            persisted = (int(sn.time_ms[m - 1]) + 1000 - int(sn.time_ms[first])) // 1000
            if persisted >= WALL_MIN_SECONDS:
                q = float(qty[-1, j])
                out.append(Wall(side, grid.fmt_price(float(price)), _qty_str(q), q / median, persisted))
    return out


def _absorptions(sn: SnapshotArrays, tr: TradeArrays, grid: TickGrid) -> list[AbsorptionEvent]:
    if len(tr) == 0 or len(sn) == 0:
        return []
    ticks = grid.ticks(tr.price)
    lo = int(ticks.min())
    span = int(ticks.max()) - lo + 1
    key = tr.buyer_is_maker.astype(np.int64) * span + (ticks - lo)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(ks)) + 1))
    ends = np.concatenate((starts[1:], [len(ks)]))
    volume = np.add.reduceat(tr.qty[order], starts)
    last_idx = order[ends - 1]  # stable sort: the last trade of each group in time
    threshold = ABSORB_FACTOR * float(np.median(volume))
    big = np.flatnonzero(volume >= threshold)
    big = big[np.argsort(-volume[big], kind="stable")][:MAX_ABSORPTIONS]
    best_bid, best_ask = sn.bid_px[:, 0], sn.ask_px[:, 0]
    out = []
    for g in big.tolist():
        k = int(ks[starts[g]])
        sold = k >= span
        tick = lo + (k - span if sold else k)
        price = tick * grid.tick_f
        t_last = int(tr.time_ms[last_idx[g]])
        after = int(np.searchsorted(sn.time_ms, t_last, side="right"))
        if after >= len(sn):
            continue
        with np.errstate(invalid="ignore"):
            # Half a tick of slack: prices are floats parsed from decimal strings.
            broken = best_bid[after:] < price - grid.tick_f / 2 if sold else best_ask[after:] > price + grid.tick_f / 2
        hit = np.flatnonzero(broken)
        until = int(sn.time_ms[after + hit[0]]) if len(hit) else int(sn.time_ms[-1])
        held = (until - t_last) // 1000
        if held >= ABSORB_MIN_HOLD_SECONDS:
            side = Side.SELL if sold else Side.BUY
            out.append(AbsorptionEvent(side, grid.fmt(tick), float(volume[g]), t_last, held))
    return out


@dataclass(frozen=True, slots=True)
class _BookSide:
    side: Side
    ticks: NDArray[np.int64]  # visible levels, best first
    qty: NDArray[np.float64]
    bin_ticks: int
    base: int  # lowest bin index
    vacuums: list[Vacuum]

    def vacuum_at(self, tick: int) -> Vacuum | None:
        k = tick // self.bin_ticks - self.base
        return next((v for v in self.vacuums if v.first <= k <= v.last), None)

    def edges(self, v: Vacuum) -> tuple[int, int]:
        """``[low, high)`` tick range of a vacuum."""
        return (self.base + v.first) * self.bin_ticks, (self.base + v.last + 1) * self.bin_ticks


def _book_side(side: Side, px: NDArray[np.float64], qty: NDArray[np.float64], grid: TickGrid) -> _BookSide | None:
    visible = np.isfinite(px)
    if not visible.any():
        return None
    ticks = grid.ticks(px[visible])
    q = qty[visible]
    range_ticks = int(ticks.max() - ticks.min())
    bin_t = max(1, math.ceil(range_ticks / BOOK_VACUUM_BINS))
    j = ticks // bin_t
    base = int(j.min())
    depth = np.bincount(j - base, weights=q, minlength=int(j.max()) - base + 1).astype(np.float64)
    return _BookSide(side, ticks, q, bin_t, base, find_vacuums(depth, reference_volume(depth)))


def _stop(book: _BookSide, grid: TickGrid) -> StopSuggestion:
    j = int(np.argmax(book.qty))  # first maximum: nearest the touch
    anchor = int(book.ticks[j])
    long = book.side is Side.BUY
    stop = anchor - 1 if long else anchor + 1
    what = "bid" if long else "ask"
    where = "below" if long else "above"
    rationale = f"1 tick {where} the largest visible {what} ({_qty_str(float(book.qty[j]))} at {grid.fmt(anchor)})"
    v = book.vacuum_at(stop)
    if v is not None:
        lo, hi = book.edges(v)
        stop = lo - 1 if long else hi
        rationale += (
            f"; moved {where} the thin zone {grid.fmt(lo)}-{grid.fmt(hi)} (depth {v.volume_ratio:.2f}x the median) "
            "so it rests where there is liquidity to fill it"
        )
    return StopSuggestion(book.side, grid.fmt(stop), rationale)


def liquidity_map(
    *,
    symbol: str,
    requested: Window,
    now_ms: int,
    trades: TradeArrays,
    snapshots: SnapshotArrays,
    tick_size: str | Decimal | float,
    depth_levels: int = 0,
) -> LiquidityMap:
    if depth_levels < 0:
        raise AnalyticsInputError("depth_levels", "must be >= 0")
    levels = depth_levels or DEFAULT_DEPTH_LEVELS
    grid = TickGrid(tick_size)
    tr = trades_in(trades, requested)
    sn = snapshots_in(snapshots, requested)
    cov = coverage(requested, [sn.time_ms])
    flags: list[DataQualityFlag] = []
    if len(tr) == 0:
        flags.append(DataQualityFlag.NO_TRADES)
    if len(sn) < MIN_SNAPSHOTS:
        flags.append(DataQualityFlag.FEW_SAMPLES)

    walls: list[Wall] = []
    vacuums: list[PriceRange] = []
    stops: list[StopSuggestion] = []
    if len(sn):
        walls = _walls(sn, levels, grid)
        for side, px, qty in ((Side.BUY, sn.bid_px, sn.bid_qty), (Side.SELL, sn.ask_px, sn.ask_qty)):
            book = _book_side(side, px[-1, :levels], qty[-1, :levels], grid)
            if book is None:
                continue
            for v in book.vacuums:
                lo, hi = book.edges(v)
                vacuums.append(PriceRange(grid.fmt(lo), grid.fmt(hi), v.severity, v.volume_ratio))
            stops.append(_stop(book, grid))
    meta = make_meta(
        symbol=symbol,
        requested=requested,
        cov=cov,
        trade_count=len(tr),
        snapshot_count=len(sn),
        book_update_count=0,
        thresholds={
            "depth_levels": levels,
            "wall_factor": WALL_FACTOR,
            "wall_min_seconds": WALL_MIN_SECONDS,
            "absorb_factor": ABSORB_FACTOR,
            "absorb_min_hold_seconds": ABSORB_MIN_HOLD_SECONDS,
            "book_vacuum_bins": BOOK_VACUUM_BINS,
        },
        flags=flags,
        freshness=storage_freshness(sn, now_ms),
        now_ms=now_ms,
    )
    return LiquidityMap(meta, tuple(walls), tuple(_absorptions(sn, tr, grid)), tuple(vacuums), tuple(stops))
