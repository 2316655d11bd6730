"""Micro-benchmark of the matching engine (plain script).

One symbol, about 500 price levels a side around a fixed mid, all orders from a
market-maker account (the synthetic market's case). Operation mix: 70 % limit placements
near the touch (passive; 3/4 within an exponential of mean 8 ticks of the mid,
1/4 uniform over the 500 levels so the book keeps its depth), 25 % cancels of
a random live order, 5 % marketable orders (half IOC limits a few ticks through the mid,
half MARKET). Operations are generated before timing; each run uses a fresh, freshly
seeded engine. Prints operations/s per run and the median of 5 runs.

    .venv/bin/python bench/bench_matching.py [operations per run]
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exchange_sim.matching import (
    EngineError,
    LotSizeFilter,
    MatchingEngine,
    NotionalFilter,
    OrderStatus,
    OrderType,
    PriceFilter,
    Side,
    SymbolSpec,
    TimeInForce,
)

SYMBOL = "BTCUSDT"
MID_TICKS = 1_000_000  # 10000.00 with a 0.01 tick
LEVELS = 500
TICK = Decimal("0.01")
STEP = Decimal("0.001")

SPEC = SymbolSpec(
    SYMBOL,
    "BTC",
    "USDT",
    PriceFilter(Decimal("0.01"), Decimal("1000000"), TICK),
    LotSizeFilter(Decimal("0.001"), Decimal("9000"), STEP),
    notional=NotionalFilter(Decimal("5"), True, Decimal("9000000"), False, 5),
)

Op = tuple[str, Side, Decimal, Decimal, int]  # kind, side, price, qty, cancel pick


def _price(ticks: int) -> Decimal:
    return Decimal(ticks) * TICK


def _qty(rng: random.Random) -> Decimal:
    return Decimal(rng.randint(1, 50)) * STEP


def make_ops(n: int, seed: int) -> list[Op]:
    rng = random.Random(seed)
    ops: list[Op] = []
    for _ in range(n):
        r = rng.random()
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        if r < 0.70:
            near = rng.random() < 0.75  # else: refill the deeper book so it keeps its depth
            depth = 1 + min(int(rng.expovariate(1 / 8)), LEVELS - 1) if near else rng.randint(1, LEVELS)
            ticks = MID_TICKS - depth if side is Side.BUY else MID_TICKS + depth
            ops.append(("place", side, _price(ticks), _qty(rng), 0))
        elif r < 0.95:
            ops.append(("cancel", side, Decimal(0), Decimal(0), rng.getrandbits(30)))
        elif r < 0.975:
            through = rng.randint(1, 5)
            ticks = MID_TICKS + through if side is Side.BUY else MID_TICKS - through
            ops.append(("ioc", side, _price(ticks), _qty(rng), 0))
        else:
            ops.append(("market", side, Decimal(0), _qty(rng), 0))
    return ops


def seeded_engine(seed: int) -> tuple[MatchingEngine, list[int]]:
    rng = random.Random(seed)
    engine = MatchingEngine([SPEC])
    engine.open_account("mm", market_maker=True)
    live: list[int] = []
    now = 0
    for depth in range(1, LEVELS + 1):
        for side, ticks in ((Side.BUY, MID_TICKS - depth), (Side.SELL, MID_TICKS + depth)):
            for _ in range(rng.randint(1, 3)):
                result = engine.place_order(
                    "mm",
                    SYMBOL,
                    side,
                    OrderType.LIMIT,
                    quantity=_qty(rng),
                    price=_price(ticks),
                    time_in_force=TimeInForce.GTC,
                    now_ms=now,
                )
                live.append(result.order_id)
    return engine, live


def run(ops: list[Op], seed: int) -> tuple[float, int, int, int]:
    engine, live = seeded_engine(seed)
    place = engine.place_order
    cancel = engine.cancel_order
    trades = misses = 0
    now = 1
    started = time.perf_counter()
    for kind, side, price, qty, pick in ops:
        now += 1
        if kind == "place":
            result = place(
                "mm",
                SYMBOL,
                side,
                OrderType.LIMIT,
                quantity=qty,
                price=price,
                time_in_force=TimeInForce.GTC,
                now_ms=now,
            )
            live.append(result.order_id)
        elif kind == "cancel":
            if not live:
                continue
            i = pick % len(live)
            oid = live[i]
            live[i] = live[-1]
            live.pop()
            try:
                cancel("mm", SYMBOL, order_id=oid, now_ms=now)
            except EngineError:
                misses += 1  # already filled by a marketable order
        elif kind == "ioc":
            result = place(
                "mm",
                SYMBOL,
                side,
                OrderType.LIMIT,
                quantity=qty,
                price=price,
                time_in_force=TimeInForce.IOC,
                now_ms=now,
            )
            trades += len(result.trades)
        else:
            result = place("mm", SYMBOL, side, OrderType.MARKET, quantity=qty, now_ms=now)
            trades += len(result.trades)
            assert result.status in (OrderStatus.FILLED, OrderStatus.EXPIRED)
    elapsed = time.perf_counter() - started
    _, bids, asks = engine.depth(SYMBOL, 5000)
    return len(ops) / elapsed, trades, misses, min(len(bids), len(asks))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rates: list[float] = []
    for run_no in range(5):
        ops = make_ops(n, seed=1000 + run_no)
        rate, trades, misses, levels = run(ops, seed=run_no)
        rates.append(rate)
        print(
            f"run {run_no + 1}: {rate:,.0f} ops/s  ({n:,} ops, {trades:,} trades, {misses:,} cancels of "
            f"already-filled orders, {levels} levels on the thinner side at the end)"
        )
    print(f"median of 5 runs: {statistics.median(rates):,.0f} ops/s")


if __name__ == "__main__":
    main()
