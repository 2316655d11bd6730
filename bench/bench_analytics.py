"""Analytics benchmark: every analytic over 1 hour of synthetic arrays, and a 24 h volume profile.

The 1-hour input is what the issue budgets for: 3,600 one-second snapshots of 20 levels a side,
~100k aggregate trades and 3,600 activity bars of a quiet synthetic market
(:func:`synthetic_market`; the same generator backs the "quiet market raises no anomaly" test).
Each analytic runs ``--runs`` times on the same arrays (after one warm-up); p50 and p99 of the
wall time are printed next to the 50 ms budget. Then the volume profile over 24 h of 2,000,000
trades.

Run from the repo root:  .venv/bin/python bench/bench_analytics.py [--runs 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provider.analytics.anomalies import anomalies
from provider.analytics.health import health
from provider.analytics.liquidity import liquidity_map
from provider.analytics.order_flow import order_flow
from provider.analytics.volume_profile import volume_profile
from provider.analytics.window import BookTop, Window
from provider.history.arrays import ActivityArrays, SnapshotArrays, TradeArrays

T0_MS = 1_700_000_000_000
TICK = "0.01"
BUDGET_MS = 50.0


@dataclass(frozen=True, slots=True)
class Market:
    trades: TradeArrays
    snapshots: SnapshotArrays
    activity: ActivityArrays
    window: Window


def synthetic_market(
    seconds: int = 3600, trades_per_second: float = 28.0, levels: int = 20, seed: int = 7, start_ms: int = T0_MS
) -> Market:
    """A quiet market: a random-walk mid, a fresh random ladder every second, balanced flow.

    Prices sit on a 0.01 grid around 50,000; each side has ``levels`` levels 1–3 ticks apart with
    lognormal sizes; trades hit the best bid or ask of their second at Poisson counts; activity
    bars add ~40 level updates a second and are consistent with the trades.
    """
    rng = np.random.default_rng(seed)
    mid = 5_000_000 + np.cumsum(rng.integers(-2, 3, seconds))  # in ticks
    best_bid = mid - 1
    best_ask = mid + 1
    gaps = rng.integers(1, 4, (seconds, levels))
    gaps[:, 0] = 0
    bid_ticks = best_bid[:, None] - np.cumsum(gaps, axis=1)
    ask_ticks = best_ask[:, None] + np.cumsum(rng.integers(1, 4, (seconds, levels)) * (np.arange(levels) > 0), axis=1)
    secs = start_ms + np.arange(seconds, dtype=np.int64) * 1000
    snapshots = SnapshotArrays(
        time_ms=secs + rng.integers(0, 50, seconds),
        last_update_id=np.cumsum(rng.integers(20, 60, seconds)).astype(np.int64),
        bid_px=np.round(bid_ticks * 0.01, 2),
        bid_qty=np.round(rng.lognormal(0.0, 0.5, (seconds, levels)), 5),
        ask_px=np.round(ask_ticks * 0.01, 2),
        ask_qty=np.round(rng.lognormal(0.0, 0.5, (seconds, levels)), 5),
    )
    counts = rng.poisson(trades_per_second, seconds)
    n = int(counts.sum())
    sec = np.repeat(np.arange(seconds), counts)
    time_ms = secs[sec] + rng.integers(0, 1000, n)
    order = np.argsort(time_ms, kind="stable")
    sec, time_ms = sec[order], time_ms[order]
    sold = rng.random(n) < 0.5
    price = np.round(np.where(sold, best_bid[sec], best_ask[sec]) * 0.01, 2)
    qty = np.round(rng.lognormal(-4.0, 1.0, n), 5)
    trades = TradeArrays(time_ms, price, qty, sold, np.arange(n, dtype=np.int64))
    buy_v = np.bincount(sec, weights=np.where(sold, 0.0, qty), minlength=seconds).astype(np.float64)
    sell_v = np.bincount(sec, weights=np.where(sold, qty, 0.0), minlength=seconds).astype(np.float64)
    activity = ActivityArrays(
        time_ms=secs,
        bid_added=rng.gamma(2.0, 1.0, seconds),
        bid_removed=rng.gamma(2.0, 0.8, seconds),
        bid_traded=sell_v,
        bid_updates=rng.poisson(20, seconds).astype(np.int64),
        ask_added=rng.gamma(2.0, 1.0, seconds),
        ask_removed=rng.gamma(2.0, 0.8, seconds),
        ask_traded=buy_v,
        ask_updates=rng.poisson(20, seconds).astype(np.int64),
        trade_count=counts.astype(np.int64),
        buy_volume=buy_v,
        sell_volume=sell_v,
        resynced=np.zeros(seconds, np.bool_),
    )
    return Market(trades, snapshots, activity, Window(start_ms, start_ms + seconds * 1000))


def measure(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    p50, p99 = np.percentile(times, [50, 99])
    return float(p50), float(p99)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--profile-runs", type=int, default=20)
    args = ap.parse_args()

    m = synthetic_market()
    w, now = m.window, m.window.end_ms
    last = m.snapshots
    book = BookTop(last.bid_px[-1], last.bid_qty[-1], last.ask_px[-1], last.ask_qty[-1], 1, now - 100, True)
    print(
        f"1 h: {len(m.snapshots)} snapshots x {m.snapshots.bid_px.shape[1]} levels, {len(m.trades):,} trades, "
        f"{len(m.activity)} bars; {args.runs} runs; python {sys.version.split()[0]}, numpy {np.__version__}"
    )
    cases: list[tuple[str, Callable[[], object]]] = [
        ("GetOrderFlow", lambda: order_flow(symbol="X", requested=w, now_ms=now, trades=m.trades,
                                            activity=m.activity, book=book)),
        ("GetVolumeProfile", lambda: volume_profile(symbol="X", requested=w, now_ms=now, trades=m.trades,
                                                    tick_size=TICK, activity=m.activity)),
        ("GetAnomalies", lambda: anomalies(symbol="X", requested=w, now_ms=now, trades=m.trades,
                                           snapshots=m.snapshots, activity=m.activity, tick_size=TICK)),
        ("GetMicrostructureHealth", lambda: health(symbol="X", requested=w, now_ms=now, trades=m.trades,
                                                   snapshots=m.snapshots, activity=m.activity)),
        ("GetLiquidityMap", lambda: liquidity_map(symbol="X", requested=w, now_ms=now, trades=m.trades,
                                                  snapshots=m.snapshots, tick_size=TICK)),
    ]  # fmt: skip
    print(f"{'analytic':26s} {'p50 ms':>8s} {'p99 ms':>8s}  budget p99 {BUDGET_MS:.0f} ms")
    for name, fn in cases:
        p50, p99 = measure(fn, args.runs)
        print(f"{name:26s} {p50:8.2f} {p99:8.2f}  {'ok' if p99 < BUDGET_MS else 'OVER'}")

    day = synthetic_market(seconds=86_400, trades_per_second=2_000_000 / 86_400, levels=1, seed=11)
    dw = day.window
    p50, p99 = measure(
        lambda: volume_profile(
            symbol="X", requested=dw, now_ms=dw.end_ms, trades=day.trades, tick_size=TICK, activity=day.activity
        ),
        args.profile_runs,
    )
    print(
        f"{'GetVolumeProfile 24 h':26s} {p50:8.2f} {p99:8.2f}  ({len(day.trades):,} trades, {args.profile_runs} runs)"
    )


if __name__ == "__main__":
    main()
