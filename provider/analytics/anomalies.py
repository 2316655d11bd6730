"""Anomalies in a window: quote stuffing, icebergs and flash-crash risk.

Each anomaly carries a severity, a confidence in ``[0, 1]``, the evidence it rests on (named
numbers) and a recommended action. Coverage clocks: the activity bars and the snapshots (the part
of the window where both exist). Consecutive flagged seconds (samples at most ``GAP_STEP_MS``
apart) form one *episode* and one anomaly; ``detected_at_ms`` is the episode's first second.

**Quote stuffing** (activity bars). A second is flagged when ``u = bid_updates + ask_updates >
500`` and ``trade_count < 0.10 · u``. Severity from the episode's peak ``u``: MEDIUM for
``500 < u <= 750``, HIGH for ``750 < u <= 1000``, CRITICAL above 1,000. Confidence
``0.5 + 0.5 · min(1, (seconds - 1) / 4)``: one second 0.5, five or more sustained seconds 1.0.

**Icebergs** (snapshots + trades). For each pair of consecutive snapshots ``i, i+1`` and each
visible level ``(side, P)`` of snapshot ``i`` with quantity ``q_i``: ``traded`` is the volume of
trades in ``(t_i, t_{i+1}]`` at exactly ``P`` that hit that side (aggressor buys hit asks,
aggressor sells hit bids). When ``traded > 0`` and the level's next quantity is known, the
interval is a *traded interval* of the level, and it is a *refill* when
``q_{i+1} > max(q_i - traded, 0)``; the refilled quantity is the difference. ``q_{i+1}`` is known
when ``P`` is visible in snapshot ``i+1``, or absent but inside its visible range (then 0: the
level was emptied or the price moved through it); beyond the deepest visible level it is unknown
and the interval is skipped. An emptied level that is visible again in snapshot ``i+2`` was
refilled after snapshot ``i+1`` (a refill lands in a later depth diff than the trades, and the
snapshot can fall between them): its quantity there stands for ``q_{i+1}``. Per level over the
window: ``n`` traded intervals, ``k`` refills, ``R`` refilled quantity, ``s`` snapshots the level
was visible in (≈ seconds), refill rate ``r = R / s``. A level is an iceberg when

* ``r > 5 × median(r)`` over every level of that side traded through in the window, and
* ``k >= 3``, and
* a one-sided binomial test rejects "this level refills no more often than the side's pooled
  refill probability ``p0 = Σk / Σn``": ``p = P[X >= k]``, ``X ~ Binomial(n, p0)``, Bonferroni-
  adjusted over the number of levels tested; confidence ``= 1 - min(1, p × levels)`` must be
  ``>= 0.99``.

Severity from ``R`` over the mean displayed quantity before those trades: ``>= 10×`` HIGH,
``>= 3×`` MEDIUM, else LOW. What it can see: refills at 1-second resolution on the top-N levels.
What it cannot: several refills inside one second (netted into one), trades deeper than the
recorded levels, and *who* refilled (another participant adding at the same price looks the same;
the statistical test only says the refills are unusually frequent for this book).

**Flash-crash risk** (snapshots + activity bars). Per snapshot and side: near-touch depth ``d`` =
summed quantity of the best ``NEAR_LEVELS`` (5) levels; *drained* when ``d < (1 - 0.8) ×`` the
window's median ``d`` of that side; *wide spread* when best ask - best bid ``> 10 ×`` the window's
median spread; *cancel-heavy* when over the trailing ``CANCEL_WINDOW_S`` (10) seconds of bars that
side's ``removed / (removed + traded) > 0.9`` (with some removal). A second is at risk when the
side is drained *and* the spread is wide: HIGH, CRITICAL when cancel-heavy too; confidence
``= signals / 3`` (the episode's maximum). Drained plus cancel-heavy alone is not enough: market
makers requote all the time (cancellations dominate removals in any healthy book) and near-touch
size swings, so that pair fires on quiet markets; a hollowed book with a normal spread is no crash.
Needs at least ``MIN_SNAPSHOTS`` (60) snapshots for baselines, else it is skipped and
``FEW_SAMPLES`` is flagged.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from provider.analytics.window import (
    GAP_STEP_MS,
    DataQualityFlag,
    Meta,
    Severity,
    TickGrid,
    Window,
    activity_in,
    coverage,
    make_meta,
    snapshots_in,
    storage_freshness,
    trades_in,
)
from provider.history.arrays import ActivityArrays, SnapshotArrays, TradeArrays

__all__ = [
    "Anomalies",
    "Anomaly",
    "AnomalyType",
    "Evidence",
    "anomalies",
    "binomial_sf",
    "detect_flash_crash_risk",
    "detect_icebergs",
    "detect_quote_stuffing",
]

STUFFING_RATE = 500.0
STUFFING_HIGH_RATE = 750.0
STUFFING_CRITICAL_RATE = 1000.0
STUFFING_FILL_RATIO = 0.10
STUFFING_FULL_CONFIDENCE_SECONDS = 5
ICEBERG_RATE_FACTOR = 5.0
ICEBERG_MIN_REFILLS = 3
ICEBERG_MIN_CONFIDENCE = 0.99
ICEBERG_HIGH_RATIO = 10.0
ICEBERG_MEDIUM_RATIO = 3.0
NEAR_LEVELS = 5
DRAIN_FRACTION = 0.8
SPREAD_FACTOR = 10.0
CANCEL_RATIO = 0.9
CANCEL_WINDOW_S = 10
MIN_SNAPSHOTS = 60


class AnomalyType(enum.IntEnum):
    """Values equal the proto's ``AnomalyType`` numbers."""

    QUOTE_STUFFING = 1
    ICEBERG = 2
    FLASH_CRASH_RISK = 3


@dataclass(frozen=True, slots=True)
class Evidence:
    name: str
    value: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Proto ``Anomaly``, field for field (``price`` is "" when no single level is concerned)."""

    type: AnomalyType
    severity: Severity
    confidence: float
    detected_at_ms: int
    window: Window
    price: str
    evidence: tuple[Evidence, ...]
    recommended_action: str


@dataclass(frozen=True, slots=True)
class Anomalies:
    """Proto ``GetAnomaliesResponse``."""

    meta: Meta
    anomalies: tuple[Anomaly, ...]


def _episodes(times: NDArray[np.int64], flagged: NDArray[np.bool_]) -> list[NDArray[np.intp]]:
    """Indices of flagged samples, split into runs of samples at most GAP_STEP_MS apart."""
    idx = np.flatnonzero(flagged)
    if len(idx) == 0:
        return []
    breaks = np.flatnonzero(np.diff(times[idx]) > GAP_STEP_MS) + 1
    return list(np.split(idx, breaks))


def detect_quote_stuffing(bars: ActivityArrays) -> list[Anomaly]:
    updates = (bars.bid_updates + bars.ask_updates).astype(np.float64)
    flagged = (updates > STUFFING_RATE) & (bars.trade_count < STUFFING_FILL_RATIO * updates)
    out = []
    for ep in _episodes(bars.time_ms, flagged):
        u = updates[ep]
        peak = float(u.max())
        if peak > STUFFING_CRITICAL_RATE:
            sev = Severity.CRITICAL
        elif peak > STUFFING_HIGH_RATE:
            sev = Severity.HIGH
        else:
            sev = Severity.MEDIUM
        fills = float(bars.trade_count[ep].sum())
        n = len(ep)
        start, end = int(bars.time_ms[ep[0]]), int(bars.time_ms[ep[-1]]) + 1000
        out.append(
            Anomaly(
                type=AnomalyType.QUOTE_STUFFING,
                severity=sev,
                confidence=0.5 + 0.5 * min(1.0, (n - 1) / (STUFFING_FULL_CONFIDENCE_SECONDS - 1)),
                detected_at_ms=start,
                window=Window(start, end),
                price="",
                evidence=(
                    Evidence("peak_updates_per_second", peak),
                    Evidence("mean_updates_per_second", float(u.mean())),
                    Evidence("fill_ratio", fills / float(u.sum()), "trades / book updates over the episode"),
                    Evidence("seconds", float(n)),
                ),
                recommended_action=(
                    "Treat the top of book as unreliable during the burst: avoid market orders and chasing quotes; "
                    f"use limit prices with slack or wait until updates fall below {STUFFING_RATE:.0f}/s."
                ),
            )
        )
    return out


def binomial_sf(k: int, n: int, p: float) -> float:
    """``P[X >= k]`` for ``X ~ Binomial(n, p)``, summed exactly in log space."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_fact = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))))
    xs = np.arange(k, n + 1)
    log_pmf = log_fact[n] - log_fact[xs] - log_fact[n - xs] + xs * math.log(p) + (n - xs) * math.log1p(-p)
    return float(min(1.0, np.exp(log_pmf).sum()))


@dataclass(frozen=True, slots=True)
class _SideBook:
    name: str  # "bid" / "ask"
    px: NDArray[np.float64]
    qty: NDArray[np.float64]
    hit_by_sells: bool  # bids are hit by aggressor sells


def _iceberg_side(side: _SideBook, times: NDArray[np.int64], trades: TradeArrays, grid: TickGrid) -> list[Anomaly]:
    px, q = side.px, side.qty
    m, n_levels = px.shape
    if m < 2 or n_levels == 0:
        return []
    # Trades hitting this side, attributed to the interval (t_i, t_{i+1}] they fall in.
    mine = trades.buyer_is_maker if side.hit_by_sells else ~trades.buyer_is_maker
    i = np.searchsorted(times, trades.time_ms, side="left") - 1
    ok = mine & (i >= 0) & (i < m - 1)
    ti, tp, tq = i[ok], trades.price[ok], trades.qty[ok]
    match = px[ti] == tp[:, None]
    has = match.any(axis=1)
    j = match.argmax(axis=1)
    traded = np.bincount(ti[has] * n_levels + j[has], weights=tq[has], minlength=m * n_levels).reshape(m, n_levels)

    # The same price's quantity in the next snapshot, and whether it is known there.
    eq = px[:-1, :, None] == px[1:, None, :]
    next_q = np.einsum("ijk,ik->ij", eq, q[1:])
    present = eq.any(axis=2)
    # Deepest visible price of the next snapshot; an empty side gives ±inf, so nothing is inside.
    if side.hit_by_sells:
        worst = np.where(np.isnan(px[1:]), np.inf, px[1:]).min(axis=1)
        inside = px[:-1] >= worst[:, None]
    else:
        worst = np.where(np.isnan(px[1:]), -np.inf, px[1:]).max(axis=1)
        inside = px[:-1] <= worst[:, None]
    known = present | inside
    tr_iv = traded[:-1]
    event = (tr_iv > 0) & known
    if not event.any():
        return []
    rows, cols = np.nonzero(event)
    seen_q = next_q[rows, cols]
    seen_at = rows + 1  # the snapshot the level's next quantity is read from
    # A level the trades emptied that is shown again one snapshot later was refilled after the
    # snapshot between them (the refill came in a later depth diff): read it from that snapshot.
    emptied = np.flatnonzero(~present[rows, cols] & (rows + 2 < m))
    if len(emptied):
        later = rows[emptied] + 2
        same = px[later] == px[rows[emptied], cols[emptied]][:, None]
        back = same.any(axis=1)
        seen_q[emptied[back]] = (same * q[later]).sum(axis=1)[back]
        seen_at[emptied[back]] += 1
    q_before = q[:-1][rows, cols]
    residual = np.maximum(q_before - tr_iv[rows, cols], 0.0)
    refill = seen_q - residual
    refilled = refill > 1e-12
    level_ticks = grid.ticks(px[:-1][rows, cols])
    levels, inv = np.unique(level_ticks, return_inverse=True)
    g = len(levels)
    n_iv = np.bincount(inv, minlength=g)
    k = np.bincount(inv, weights=refilled, minlength=g)
    refill_qty = np.bincount(inv, weights=np.where(refilled, refill, 0.0), minlength=g)
    traded_qty = np.bincount(inv, weights=tr_iv[rows, cols], minlength=g)
    shown = np.bincount(inv, weights=q_before, minlength=g) / n_iv
    # Snapshots each level was visible in.
    finite = np.isfinite(px)
    all_ticks = grid.ticks(px[finite])
    pos = np.clip(np.searchsorted(levels, all_ticks), 0, g - 1)
    hit = levels[pos] == all_ticks
    visible = np.maximum(np.bincount(pos[hit], minlength=g), 1)
    rate = refill_qty / visible
    median_rate = float(np.median(rate))
    p0 = float(k.sum() / n_iv.sum())
    candidates = np.flatnonzero((rate > ICEBERG_RATE_FACTOR * median_rate) & (k >= ICEBERG_MIN_REFILLS))
    out = []
    for c in candidates.tolist():
        p_value = binomial_sf(int(k[c]), int(n_iv[c]), p0)
        confidence = 1.0 - min(1.0, p_value * g)
        if confidence < ICEBERG_MIN_CONFIDENCE:
            continue
        at = np.flatnonzero((inv == c) & refilled)
        first, last = int(times[rows[at[0]]]), int(times[seen_at[at[-1]]])
        ratio = float(refill_qty[c] / shown[c]) if shown[c] > 0 else math.inf
        sev = (
            Severity.HIGH
            if ratio >= ICEBERG_HIGH_RATIO
            else Severity.MEDIUM
            if ratio >= ICEBERG_MEDIUM_RATIO
            else Severity.LOW
        )
        price = grid.fmt(int(levels[c]))
        if side.hit_by_sells:
            action = (
                f"Hidden buy interest at {price}: expect support there; a sell breakdown below it needs more "
                "selling than the book shows, and stops just below it may be crowded."
            )
        else:
            action = (
                f"Hidden sell interest at {price}: expect resistance there; a breakout above it needs more "
                "buying than the book shows, and stops just above it may be crowded."
            )
        out.append(
            Anomaly(
                type=AnomalyType.ICEBERG,
                severity=sev,
                confidence=confidence,
                detected_at_ms=last,
                window=Window(first, last + 1000),
                price=price,
                evidence=(
                    Evidence("refills", float(k[c]), f"{side.name} side; refills after trades at this price"),
                    Evidence("traded_intervals", float(n_iv[c]), "snapshot intervals with trades at this price"),
                    Evidence("refilled_quantity", float(refill_qty[c])),
                    Evidence("traded_quantity", float(traded_qty[c])),
                    Evidence("mean_displayed_quantity", float(shown[c])),
                    Evidence("refill_rate", float(rate[c]), "refilled quantity per visible second"),
                    Evidence("median_refill_rate", median_rate, f"over {g} {side.name} levels traded through"),
                    Evidence("pooled_refill_probability", p0),
                    Evidence("p_value", p_value, "one-sided binomial, before Bonferroni adjustment"),
                ),
                recommended_action=action,
            )
        )
    return out


def detect_icebergs(snaps: SnapshotArrays, trades: TradeArrays, grid: TickGrid) -> list[Anomaly]:
    sides = (
        _SideBook("bid", snaps.bid_px, snaps.bid_qty, hit_by_sells=True),
        _SideBook("ask", snaps.ask_px, snaps.ask_qty, hit_by_sells=False),
    )
    return [a for s in sides for a in _iceberg_side(s, snaps.time_ms, trades, grid)]


def _trailing_sum(
    bar_times: NDArray[np.int64], values: NDArray[np.float64], at: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Sum of ``values`` over bars starting in ``[at - CANCEL_WINDOW_S s, at)`` for each ``at``."""
    cs = np.concatenate(([0.0], np.cumsum(values)))
    hi = np.searchsorted(bar_times, at, side="left")
    lo = np.searchsorted(bar_times, at - CANCEL_WINDOW_S * 1000, side="left")
    out: NDArray[np.float64] = cs[hi] - cs[lo]
    return out


def detect_flash_crash_risk(snaps: SnapshotArrays, bars: ActivityArrays, grid: TickGrid) -> list[Anomaly]:
    if len(snaps) < MIN_SNAPSHOTS:
        return []
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = snaps.ask_px[:, 0] - snaps.bid_px[:, 0]
        base_spread = float(np.nanmedian(spread)) if np.isfinite(spread).any() else math.nan
        spread_ratio = np.nan_to_num(spread / base_spread, nan=0.0)
    wide = spread_ratio > SPREAD_FACTOR
    out = []
    for name, px, qty, removed, traded in (
        ("bid", snaps.bid_px, snaps.bid_qty, bars.bid_removed, bars.bid_traded),
        ("ask", snaps.ask_px, snaps.ask_qty, bars.ask_removed, bars.ask_traded),
    ):
        depth = qty[:, :NEAR_LEVELS].sum(axis=1)
        base_depth = float(np.median(depth))
        if base_depth <= 0:
            continue
        drained_frac = 1.0 - depth / base_depth
        drained = drained_frac > DRAIN_FRACTION
        rem = _trailing_sum(bars.time_ms, removed, snaps.time_ms)
        total = rem + _trailing_sum(bars.time_ms, traded, snaps.time_ms)
        cancel_ratio = np.divide(rem, total, out=np.zeros_like(rem), where=total > 0)
        heavy = cancel_ratio > CANCEL_RATIO
        signals = drained.astype(np.int64) + wide + heavy
        for ep in _episodes(snaps.time_ms, drained & wide):
            worst = int(signals[ep].max())
            start, end = int(snaps.time_ms[ep[0]]), int(snaps.time_ms[ep[-1]]) + 1000
            touch = float(px[ep[0], 0])
            direction = "down" if name == "bid" else "up"
            evidence = (
                Evidence("depth_drained_fraction", float(drained_frac[ep].max()), f"{name}, best {NEAR_LEVELS} levels"),
                Evidence("baseline_depth", base_depth, "window median"),
                Evidence("spread_ratio", float(spread_ratio[ep].max()), "vs the window's median spread"),
                Evidence("baseline_spread", base_spread),
                Evidence("cancel_ratio", float(cancel_ratio[ep].max()), f"trailing {CANCEL_WINDOW_S}s"),
                Evidence("signals", float(worst), "of 3: drained depth, wide spread, cancel-heavy"),
            )
            out.append(
                Anomaly(
                    type=AnomalyType.FLASH_CRASH_RISK,
                    severity=Severity.CRITICAL if worst >= 3 else Severity.HIGH,
                    confidence=worst / 3.0,
                    detected_at_ms=start,
                    window=Window(start, end),
                    price=grid.fmt_price(touch) if math.isfinite(touch) else "",
                    evidence=evidence,
                    recommended_action=(
                        f"Near-touch {name} liquidity has collapsed (risk of a fast move {direction}): avoid "
                        "market and stop-market orders on that side, use limit orders, cut size, or stand aside "
                        "until depth returns."
                    ),
                )
            )
    return out


def anomalies(
    *,
    symbol: str,
    requested: Window,
    now_ms: int,
    trades: TradeArrays,
    snapshots: SnapshotArrays,
    activity: ActivityArrays,
    tick_size: str | Decimal | float,
) -> Anomalies:
    grid = TickGrid(tick_size)
    tr = trades_in(trades, requested)
    sn = snapshots_in(snapshots, requested)
    bars = activity_in(activity, requested)
    cov = coverage(requested, [bars.time_ms, sn.time_ms], bars.resynced)
    flags: list[DataQualityFlag] = []
    if len(tr) == 0:
        flags.append(DataQualityFlag.NO_TRADES)
    if len(sn) < MIN_SNAPSHOTS:
        flags.append(DataQualityFlag.FEW_SAMPLES)
    found = detect_quote_stuffing(bars) + detect_icebergs(sn, tr, grid) + detect_flash_crash_risk(sn, bars, grid)
    found.sort(key=lambda a: (a.detected_at_ms, a.type))
    meta = make_meta(
        symbol=symbol,
        requested=requested,
        cov=cov,
        trade_count=len(tr),
        snapshot_count=len(sn),
        book_update_count=int(bars.bid_updates.sum() + bars.ask_updates.sum()),
        thresholds={
            "stuffing_updates_per_second": STUFFING_RATE,
            "stuffing_high_updates_per_second": STUFFING_HIGH_RATE,
            "stuffing_critical_updates_per_second": STUFFING_CRITICAL_RATE,
            "stuffing_max_fill_ratio": STUFFING_FILL_RATIO,
            "iceberg_refill_rate_factor": ICEBERG_RATE_FACTOR,
            "iceberg_min_refills": ICEBERG_MIN_REFILLS,
            "iceberg_min_confidence": ICEBERG_MIN_CONFIDENCE,
            "flash_near_levels": NEAR_LEVELS,
            "flash_depth_drained_fraction": DRAIN_FRACTION,
            "flash_spread_factor": SPREAD_FACTOR,
            "flash_cancel_ratio": CANCEL_RATIO,
            "flash_cancel_window_seconds": CANCEL_WINDOW_S,
            "min_snapshots": MIN_SNAPSHOTS,
        },
        flags=flags,
        freshness=storage_freshness(sn, now_ms),
        now_ms=now_ms,
    )
    return Anomalies(meta, tuple(found))
