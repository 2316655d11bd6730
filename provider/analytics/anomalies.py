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
* a one-sided Fisher exact test rejects "this level refills no more often than the side's other
  levels": of the side's ``Σn`` traded intervals, ``Σk`` were refills; ``p = P[X >= k]`` for ``X ~
  Hypergeometric(Σn, Σk, n)``, the chance that this level's ``n`` intervals hold ``k`` or more of
  the refills were they spread regardless of level. Bonferroni-adjusted over the number of levels
  tested: confidence ``= 1 - min(1, p × levels)`` must be ``>= 0.99``. (A binomial test against the
  pooled probability ``Σk / Σn`` counts the level's own refills in the bar it is tested against and
  missed icebergs on books with few traded levels; against the other levels' probability alone it
  took their estimate as exact and called a market maker's level an iceberg when the other levels
  had traded only a few times. Fisher's test weighs both samples by their size.)

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
    "detect_flash_crash_risk",
    "detect_icebergs",
    "detect_quote_stuffing",
    "fisher_greater",
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


def log_factorials(n: int) -> NDArray[np.float64]:
    """``log(i!)`` for ``i`` in ``0..n``."""
    return np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))))


def fisher_greater(k: int, n: int, k_other: int, n_other: int, log_fact: NDArray[np.float64] | None = None) -> float:
    """One-sided Fisher exact test of a 2x2 table (this level: ``k`` refills in ``n`` traded intervals;
    the other levels: ``k_other`` in ``n_other``): ``P[X >= k]`` for ``X ~ Hypergeometric(n + n_other,
    k + k_other, n)``, summed exactly in log space. 1.0 when nothing else traded: no comparison.
    ``log_fact``: :func:`log_factorials` up to at least ``n + n_other``, shared by the calls of a side."""
    total, refills = n + n_other, k + k_other
    lowest, highest = max(0, n - (total - refills)), min(n, refills)  # the values X can take
    if k <= lowest:
        return 1.0
    if k > highest:
        return 0.0
    if log_fact is None:
        log_fact = log_factorials(total)
    xs = np.arange(k, highest + 1)
    log_pmf = (
        (log_fact[refills] - log_fact[xs] - log_fact[refills - xs])  # choose x of the refills
        + (log_fact[total - refills] - log_fact[n - xs] - log_fact[total - refills - n + xs])  # the rest
        - (log_fact[total] - log_fact[n] - log_fact[total - n])
    )
    return float(min(1.0, np.exp(log_pmf).sum()))


@dataclass(frozen=True, slots=True)
class _SideBook:
    name: str  # "bid" / "ask"
    px: NDArray[np.float64]
    qty: NDArray[np.float64]
    hit_by_sells: bool  # bids are hit by aggressor sells


def _trade_intervals(times: NDArray[np.int64], trade_times: NDArray[np.int64]) -> NDArray[np.intp]:
    """``searchsorted(times, trade_times) - 1``: the interval ``(t_i, t_{i+1}]`` each trade falls in
    (-1 before the first snapshot, ``m - 1`` after the last)."""
    if not (np.all(times[1:] >= times[:-1]) and np.all(trade_times[1:] >= trade_times[:-1])):
        out: NDArray[np.intp] = np.searchsorted(times, trade_times, side="left") - 1
        return out
    # Both time-ordered (as stored): placing the few snapshots among the many trades is ~15x faster.
    ends = np.searchsorted(trade_times, times, side="right")
    return np.repeat(np.arange(-1, len(times)), np.diff(ends, prepend=0, append=len(trade_times)))


def _traded_levels(
    px: NDArray[np.float64], ti: NDArray[np.intp], tp: NDArray[np.float64], tq: NDArray[np.float64]
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """The levels trades hit: each trade's price is looked up in snapshot ``ti`` (the first level
    showing exactly that price; trades at prices not shown are dropped). Returns the cells
    ``(rows, cols)`` with a positive traded quantity, in row-major order, and that quantity (summed
    in trade order). Consecutive trades of one interval at one price hit the same level, so each
    run is compared once: thousands of runs instead of ~50k trades a side in an hour."""
    n_levels = px.shape[1]
    if len(ti) == 0 or n_levels == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.float64)
    head = np.flatnonzero(np.concatenate(([True], (ti[1:] != ti[:-1]) | (tp[1:] != tp[:-1]))))
    same = px[ti[head]] == tp[head][:, None]
    cell = np.where(same.any(axis=1), ti[head] * n_levels + same.argmax(axis=1), -1)
    cells, run_cell = np.unique(cell, return_inverse=True)
    runs = np.repeat(run_cell, np.diff(head, append=len(ti)))
    traded = np.asarray(np.bincount(runs, weights=tq, minlength=len(cells)), np.float64)
    keep = np.flatnonzero((cells >= 0) & (traded > 0))
    rows, cols = np.divmod(cells[keep], n_levels)
    return rows, cols, traded[keep]


def _next_quantity(
    px: NDArray[np.float64],
    q: NDArray[np.float64],
    rows: NDArray[np.intp],
    cols: NDArray[np.intp],
    deeper_is_lower: bool,
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.intp]]:
    """For levels ``(rows, cols)`` traded in the interval after their snapshot: whether the next
    quantity is known, that quantity and the snapshot it is read from (the rules are in the module
    docstring). Only these cells are compared, n levels each: comparing every level of every pair
    of consecutive snapshots (O(m·n²)) was most of GetAnomalies' time."""
    m = len(px)
    price = px[rows, cols]
    nxt = px[rows + 1]
    same = nxt == price[:, None]
    present = same.any(axis=1)
    # einsum, not .sum(): with 3+ equal prices in a snapshot it adds them in the order the full
    # comparison did, so the answer stays bit-identical.
    seen_q: NDArray[np.float64] = np.einsum("ij,ij->i", same, q[rows + 1])
    # Deepest visible price of the next snapshot; an empty side gives ±inf, so nothing is inside.
    if deeper_is_lower:
        inside = price >= np.where(np.isnan(nxt), np.inf, nxt).min(axis=1)
    else:
        inside = price <= np.where(np.isnan(nxt), -np.inf, nxt).max(axis=1)
    known = present | inside
    seen_at = rows + 1
    # A level the trades emptied that is shown again one snapshot later was refilled after the
    # snapshot between them (the refill came in a later depth diff): read it from that snapshot.
    emptied = np.flatnonzero(known & ~present & (rows + 2 < m))
    if len(emptied):
        later = rows[emptied] + 2
        again = px[later] == price[emptied][:, None]
        back = again.any(axis=1)
        seen_q[emptied[back]] = (again * q[later]).sum(axis=1)[back]
        seen_at[emptied[back]] += 1
    return known, seen_q, seen_at


def _count_shown(ticks: NDArray[np.int64], levels: NDArray[np.int64]) -> NDArray[np.intp]:
    """How many of ``ticks`` equal each of the sorted, distinct ``levels``."""
    lo, hi = int(levels[0]), int(levels[-1])
    if hi - lo <= max(1 << 16, 4 * len(ticks)):  # a count per tick of the span: small enough to allocate
        near = ticks[(ticks >= lo) & (ticks <= hi)]
        per_tick = np.bincount(near - lo, minlength=hi - lo + 1)
        counts: NDArray[np.intp] = per_tick[levels - lo]
        return counts
    pos = np.clip(np.searchsorted(levels, ticks), 0, len(levels) - 1)
    return np.bincount(pos[levels[pos] == ticks], minlength=len(levels))


def _iceberg_side(
    side: _SideBook, times: NDArray[np.int64], trades: TradeArrays, interval: NDArray[np.intp], grid: TickGrid
) -> list[Anomaly]:
    px, q = side.px, side.qty
    m, n_levels = px.shape
    if m < 2 or n_levels == 0:
        return []
    # Trades hitting this side, attributed to the interval (t_i, t_{i+1}] they fall in. (Index
    # arrays and take(): a boolean mask over ~100k interleaved buys and sells is ~10x slower.)
    mine = trades.buyer_is_maker if side.hit_by_sells else ~trades.buyer_is_maker
    ok = np.flatnonzero(mine & (interval >= 0) & (interval < m - 1))
    ti, tp, tq = interval.take(ok), trades.price.take(ok), trades.qty.take(ok)
    rows, cols, traded = _traded_levels(px, ti, tp, tq)
    known, seen_q, seen_at = _next_quantity(px, q, rows, cols, deeper_is_lower=side.hit_by_sells)
    if not known.any():
        return []
    rows, cols, traded, seen_q, seen_at = rows[known], cols[known], traded[known], seen_q[known], seen_at[known]
    q_before = q[rows, cols]
    residual = np.maximum(q_before - traded, 0.0)
    refill = seen_q - residual
    refilled = refill > 1e-12
    level_ticks = grid.ticks(px[rows, cols])
    levels, inv = np.unique(level_ticks, return_inverse=True)
    g = len(levels)
    n_iv = np.bincount(inv, minlength=g)
    k = np.bincount(inv, weights=refilled, minlength=g)
    refill_qty = np.bincount(inv, weights=np.where(refilled, refill, 0.0), minlength=g)
    traded_qty = np.bincount(inv, weights=traded, minlength=g)
    shown = np.bincount(inv, weights=q_before, minlength=g) / n_iv
    # Snapshots each level was visible in.
    visible = np.maximum(_count_shown(grid.ticks(px[np.isfinite(px)]), levels), 1)
    rate = refill_qty / visible
    median_rate = float(np.median(rate))
    k_all, n_all = int(k.sum()), int(n_iv.sum())
    candidates = np.flatnonzero((rate > ICEBERG_RATE_FACTOR * median_rate) & (k >= ICEBERG_MIN_REFILLS))
    out = []
    log_fact = log_factorials(n_all) if len(candidates) else None
    for c in candidates.tolist():
        k_c, n_c = int(k[c]), int(n_iv[c])
        others = (k_all - k_c) / (n_all - n_c) if n_all > n_c else 0.0
        p_value = fisher_greater(k_c, n_c, k_all - k_c, n_all - n_c, log_fact)
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
                    Evidence(
                        "pooled_refill_probability", others, "refills per traded interval at the side's other levels"
                    ),
                    Evidence("p_value", p_value, "one-sided Fisher exact test, before Bonferroni adjustment"),
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
    interval = _trade_intervals(snaps.time_ms, trades.time_ms)
    return [a for s in sides for a in _iceberg_side(s, snaps.time_ms, trades, interval, grid)]


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
