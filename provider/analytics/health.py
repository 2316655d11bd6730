"""Microstructure health, 0–100: a weighted sum of four component scores, each 0–100.

``score = 0.25·spread_stability + 0.35·liquidity_depth + 0.25·flow_balance + 0.15·update_rate``

* **spread_stability** (25 %). ``value = CV`` of the spread (best ask - best bid) over the window's
  snapshots with both sides present: population standard deviation over the mean.
  ``score = 100 · clip(1 - CV, 0, 1)``: a constant spread scores 100, a spread that varies as much
  as its own mean scores 0.
* **liquidity_depth** (35 %). Near-touch depth ``D`` = summed quantity of the best
  ``DEPTH_LEVELS`` (10) levels of both sides, per snapshot. ``value = mean(D over the last tenth of
  the snapshots, at least one) / median(D over the window)``; ``score = 100 · clip(value, 0, 1)``:
  is the book now as deep as it typically was in this window.
* **flow_balance** (25 %). ``value = |buy - sell| / (buy + sell)`` of aggressor volume over the
  window's trades; ``score = 100 · (1 - value)``.
* **update_rate** (15 %). ``value = r`` = book level updates per recorded second (activity bars).
  ``score = 100 · r`` for ``r < 1`` (a frozen book is not healthy), ``100`` for ``1 <= r <= 200``,
  ``100 · (1000 - r) / 800`` for ``200 < r < 1000`` and ``0`` from 1,000/s (the quote-stuffing
  critical rate).

A component without data (no snapshots, no trades, no activity bars, a zero median) scores 0 with
value 0 (missing data never inflates the score), its formula says so, and ``FEW_SAMPLES`` (or
``NO_TRADES``) is flagged. Coverage clocks: snapshots and activity bars.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from provider.analytics.window import (
    DataQualityFlag,
    Meta,
    Window,
    activity_in,
    coverage,
    make_meta,
    snapshots_in,
    storage_freshness,
    trades_in,
)
from provider.history.arrays import ActivityArrays, SnapshotArrays, TradeArrays

__all__ = ["ComponentName", "Health", "HealthComponent", "health", "update_rate_score"]

DEPTH_LEVELS = 10
RECENT_FRACTION = 0.1
RATE_FLOOR = 1.0
RATE_OK = 200.0
RATE_MAX = 1000.0


class ComponentName(enum.StrEnum):
    SPREAD_STABILITY = "spread_stability"
    LIQUIDITY_DEPTH = "liquidity_depth"
    FLOW_BALANCE = "flow_balance"
    UPDATE_RATE = "update_rate"


WEIGHTS = {
    ComponentName.SPREAD_STABILITY: 0.25,
    ComponentName.LIQUIDITY_DEPTH: 0.35,
    ComponentName.FLOW_BALANCE: 0.25,
    ComponentName.UPDATE_RATE: 0.15,
}
FORMULAS = {
    ComponentName.SPREAD_STABILITY: "value = std(spread)/mean(spread); score = 100*clip(1 - value, 0, 1)",
    ComponentName.LIQUIDITY_DEPTH: (
        f"D = qty of best {DEPTH_LEVELS} levels, both sides; value = mean(D, last 10% of snapshots)/median(D); "
        "score = 100*clip(value, 0, 1)"
    ),
    ComponentName.FLOW_BALANCE: "value = |buy - sell|/(buy + sell) aggressor volume; score = 100*(1 - value)",
    ComponentName.UPDATE_RATE: (
        "value = book updates per second; score = 100*value below 1, 100 up to 200, "
        "100*(1000 - value)/800 up to 1000, 0 above"
    ),
}
NO_DATA = " (no data: scored 0)"


@dataclass(frozen=True, slots=True)
class HealthComponent:
    name: ComponentName
    weight: float
    value: float
    score: float
    formula: str


@dataclass(frozen=True, slots=True)
class Health:
    """Proto ``GetMicrostructureHealthResponse``."""

    meta: Meta
    score: float
    components: tuple[HealthComponent, ...]


def update_rate_score(rate: float) -> float:
    if rate < RATE_FLOOR:
        return 100.0 * rate / RATE_FLOOR
    if rate <= RATE_OK:
        return 100.0
    if rate < RATE_MAX:
        return 100.0 * (RATE_MAX - rate) / (RATE_MAX - RATE_OK)
    return 0.0


def _component(name: ComponentName, value: float | None, score: float) -> HealthComponent:
    if value is None:
        return HealthComponent(name, WEIGHTS[name], 0.0, 0.0, FORMULAS[name] + NO_DATA)
    return HealthComponent(name, WEIGHTS[name], value, score, FORMULAS[name])


def health(
    *,
    symbol: str,
    requested: Window,
    now_ms: int,
    trades: TradeArrays,
    snapshots: SnapshotArrays,
    activity: ActivityArrays,
) -> Health:
    tr = trades_in(trades, requested)
    sn = snapshots_in(snapshots, requested)
    bars = activity_in(activity, requested)
    cov = coverage(requested, [bars.time_ms, sn.time_ms], bars.resynced)
    flags: list[DataQualityFlag] = []

    spread = sn.ask_px[:, 0] - sn.bid_px[:, 0] if sn.ask_px.shape[1] and sn.bid_px.shape[1] else np.empty(0)
    spread = spread[np.isfinite(spread)]
    cv: float | None = None
    if len(spread) >= 2 and float(spread.mean()) > 0:
        cv = float(spread.std() / spread.mean())
    spread_c = _component(ComponentName.SPREAD_STABILITY, cv, 100.0 * min(1.0, max(0.0, 1.0 - (cv or 0.0))))

    depth = sn.bid_qty[:, :DEPTH_LEVELS].sum(axis=1) + sn.ask_qty[:, :DEPTH_LEVELS].sum(axis=1)
    depth_ratio: float | None = None
    if len(depth) and float(np.median(depth)) > 0:
        recent = max(1, int(np.ceil(len(depth) * RECENT_FRACTION)))
        depth_ratio = float(depth[-recent:].mean() / np.median(depth))
    depth_c = _component(ComponentName.LIQUIDITY_DEPTH, depth_ratio, 100.0 * min(1.0, max(0.0, depth_ratio or 0.0)))

    sell = float(tr.qty[tr.buyer_is_maker].sum())
    total = float(tr.qty.sum())
    imbalance = abs(total - 2 * sell) / total if total > 0 else None
    flow_c = _component(ComponentName.FLOW_BALANCE, imbalance, 100.0 * (1.0 - (imbalance or 0.0)))

    rate = float((bars.bid_updates.sum() + bars.ask_updates.sum()) / len(bars)) if len(bars) else None
    rate_c = _component(ComponentName.UPDATE_RATE, rate, update_rate_score(rate or 0.0))

    components = (spread_c, depth_c, flow_c, rate_c)
    if len(tr) == 0:
        flags.append(DataQualityFlag.NO_TRADES)
    if any(c.formula.endswith(NO_DATA) for c in components):
        flags.append(DataQualityFlag.FEW_SAMPLES)
    meta = make_meta(
        symbol=symbol,
        requested=requested,
        cov=cov,
        trade_count=len(tr),
        snapshot_count=len(sn),
        book_update_count=int(bars.bid_updates.sum() + bars.ask_updates.sum()),
        thresholds={
            **{f"weight_{n.value}": w for n, w in WEIGHTS.items()},
            "depth_levels": DEPTH_LEVELS,
            "recent_fraction": RECENT_FRACTION,
            "update_rate_ok": RATE_OK,
            "update_rate_max": RATE_MAX,
        },
        flags=flags,
        freshness=storage_freshness(sn, now_ms),
        now_ms=now_ms,
    )
    return Health(meta, sum(c.weight * c.score for c in components), components)
