"""The pattern generator: each pattern's shape, and that the provider's own recording and anomaly
detection (run in-process on the engine's output, as the provider would record it) flags it,
while the same synthetic market without a pattern raises nothing.

Everything runs on a simulated clock (explicit ``now_ms`` values, 100 ms ticks, a snapshot after
every tenth), so each case is deterministic; the iceberg is checked from every phase of its start
within the second and on several market seeds, since its sweep cycle against the 1-second
snapshots is what decides whether a snapshot sees the level between a sweep and its refill."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pytest

from exchange_sim.market.patterns import (
    PATTERN_MAKER,
    PatternError,
    PatternKind,
    PatternRunner,
)
from exchange_sim.market.synthetic import SyntheticMarket
from exchange_sim.matching import MatchingEngine, OrderResult, Side
from exchange_sim.symbols import symbol_setup
from provider.analytics.anomalies import Anomalies, Anomaly, AnomalyType, anomalies
from provider.analytics.window import Severity, Window
from provider.history.arrays import SnapshotArrays, TradeArrays
from provider.history.codec import ActivityRecord, activity_records_to_arrays
from provider.recording.activity import ActivityAccumulator, BookSide

T0 = 1_700_000_000_000
LEVELS = 20


@dataclass
class _Tape:
    """What the provider would record of one symbol: 100 ms netted diffs into activity bars,
    aggregate trades, and a top-20 snapshot every second."""

    symbol: str
    engine: MatchingEngine
    acc: ActivityAccumulator = field(init=False)
    window: dict[tuple[Side, Decimal], Decimal] = field(default_factory=dict)
    diffs: list[tuple[int, dict[tuple[Side, Decimal], Decimal]]] = field(default_factory=list)  # per tick
    book: dict[tuple[Side, Decimal], float] = field(default_factory=dict)
    trades: list[tuple[int, float, float, bool]] = field(default_factory=list)
    bars: list[ActivityRecord] = field(default_factory=list)
    snaps: list[tuple[int, list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.acc = ActivityAccumulator(self.symbol)

    def apply(self, result: OrderResult) -> None:
        if result.symbol != self.symbol:
            return
        for change in result.book_changes:
            self.window[(change.side, change.price)] = change.qty
        by_price: dict[tuple[Decimal, bool], Decimal] = defaultdict(Decimal)
        for t in result.trades:  # one aggregate trade per taker order and price
            by_price[(t.price, t.is_buyer_maker)] += t.qty
        for (price, maker_buys), qty in by_price.items():
            self.trades.append((result.transact_time, float(price), float(qty), maker_buys))
            self.acc.on_trade(result.transact_time, str(price), float(qty), maker_buys)

    def sync(self) -> None:
        """Start from the engine's book as the provider does (a snapshot, not diffs)."""
        _, bids, asks = self.engine.depth(self.symbol, 5000)
        self.book = {(Side.BUY, p): float(q) for p, q in bids} | {(Side.SELL, p): float(q) for p, q in asks}
        self.window = {}

    def flush(self, now_ms: int) -> None:
        self.diffs.append((now_ms, self.window))
        for (side, price), qty in self.window.items():
            prev = self.book.get((side, price), 0.0)
            self.book[(side, price)] = float(qty)
            book_side = BookSide.BID if side is Side.BUY else BookSide.ASK
            self.acc.on_level(now_ms, book_side, str(price), prev, float(qty))
        self.window = {}
        if now_ms % 1000 == 0:
            self.bars.append(self.acc.close(now_ms - 1000))
            _, bids, asks = self.engine.depth(self.symbol, LEVELS)
            self.snaps.append((now_ms, bids, asks))

    def anomalies(self, start_ms: int, end_ms: int) -> Anomalies:
        m = len(self.snaps)
        px = {s: np.full((m, LEVELS), np.nan) for s in ("b", "a")}
        qty = {s: np.zeros((m, LEVELS)) for s in ("b", "a")}
        for i, (_, bids, asks) in enumerate(self.snaps):
            for s, levels in (("b", bids), ("a", asks)):
                for j, (p, q) in enumerate(levels):
                    px[s][i, j], qty[s][i, j] = float(p), float(q)
        snaps = SnapshotArrays(
            np.array([t for t, _, _ in self.snaps], dtype=np.int64),
            np.arange(m, dtype=np.int64),
            px["b"],
            qty["b"],
            px["a"],
            qty["a"],
        )
        tr = self.trades
        trades = TradeArrays(
            np.array([t[0] for t in tr], dtype=np.int64),
            np.array([t[1] for t in tr], dtype=np.float64),
            np.array([t[2] for t in tr], dtype=np.float64),
            np.array([t[3] for t in tr], dtype=np.bool_),
            np.arange(len(tr), dtype=np.int64),
        )
        return anomalies(
            symbol=self.symbol,
            requested=Window(start_ms, end_ms),
            now_ms=end_ms,
            trades=trades,
            snapshots=snaps,
            activity=activity_records_to_arrays(self.bars),
            tick_size=self.engine.spec(self.symbol).price_filter.tick_size,
        )


@dataclass
class _Sim:
    """The synthetic market, the pattern runner and one symbol's tape, on a simulated clock."""

    symbol: str = "ETHUSDT"
    now_ms: int = T0
    engine: MatchingEngine = field(default_factory=MatchingEngine)
    seed: int = 7

    def __post_init__(self) -> None:
        self.tape = _Tape(self.symbol, self.engine)
        self.market = SyntheticMarket(self.engine, self.seed, self.tape.apply)
        self.runner = PatternRunner(self.engine, self.tape.apply)
        spec, profile = symbol_setup(self.symbol)
        self.engine.add_symbol(spec)
        self.market.add(spec, profile, self.now_ms)
        self.runner.add_symbol(spec)
        self.tape.sync()

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds * 10)):
            self.now_ms += 100
            self.market.step(self.now_ms, 0.1)
            self.runner.step(self.now_ms)
            self.tape.flush(self.now_ms)


def _found(result: Anomalies, kind: AnomalyType) -> list[Anomaly]:
    return [a for a in result.anomalies if a.type is kind]


def test_quiet_market_raises_nothing() -> None:
    sim = _Sim()
    sim.run(90)
    result = sim.tape.anomalies(T0, sim.now_ms)
    assert result.anomalies == ()


def _evidence(a: Anomaly) -> dict[str, float]:
    return {e.name: e.value for e in a.evidence}


def _inject(kind: PatternKind, before: float, seconds: float, after: float = 3, seed: int = 7) -> tuple[_Sim, int]:
    sim = _Sim(seed=seed)
    sim.run(before)
    start = sim.now_ms
    sim.runner.start(kind, sim.symbol, seconds, start)
    sim.run(seconds + after)
    return sim, start


def test_quote_stuffing_is_detected_with_few_fills() -> None:
    sim, start = _inject(PatternKind.QUOTE_STUFFING, 10, 5)
    result = sim.tape.anomalies(T0, sim.now_ms)
    [found] = result.anomalies
    assert found.type is AnomalyType.QUOTE_STUFFING
    assert found.severity >= Severity.HIGH and found.confidence == 1.0
    assert start <= found.detected_at_ms <= start + 1000
    ev = _evidence(found)
    assert ev["peak_updates_per_second"] > 750 and ev["fill_ratio"] < 0.05 and ev["seconds"] == 5
    [status] = sim.runner.status()
    assert not status.running and status.operations > 4000  # hundreds of orders and cancels a second
    assert sim.engine.open_orders(PATTERN_MAKER, sim.symbol) == []  # nothing left resting


@pytest.mark.parametrize("seed", [7, 11, 23])
@pytest.mark.parametrize("phase_ms", range(0, 1000, 100))
def test_iceberg_is_detected_at_its_price(seed: int, phase_ms: int) -> None:
    sim, start = _inject(PatternKind.ICEBERG, 20 + phase_ms / 1000, 40, seed=seed)
    [status] = sim.runner.status()
    assert status.price is not None and not status.running
    price = status.price
    # The stream shows it as a refilling order: the level emptied in the diff of the trades that
    # took the tip, and a new quantity at that price in the next diff.
    emptied = [i for i, (t, d) in enumerate(sim.tape.diffs) if t < status.ends_ms and d.get((Side.SELL, price)) == 0]
    refilled_next = sum(sim.tape.diffs[i + 1][1].get((Side.SELL, price), 0) > 0 for i in emptied)
    assert len(emptied) >= 30 and refilled_next >= 0.9 * len(emptied)

    result = sim.tape.anomalies(start, sim.now_ms)
    [found] = result.anomalies
    assert found.type is AnomalyType.ICEBERG and found.confidence >= 0.99
    assert Decimal(found.price) == price and "sell interest" in found.recommended_action
    ask_then = [asks for t, _, asks in sim.tape.snaps if t <= start][-1][0][0]
    assert price > ask_then  # the hidden seller sat above the touch the walk started from
    ev = _evidence(found)
    assert ev["refills"] >= 20 and ev["refills"] >= 0.9 * ev["traded_intervals"]
    assert ev["refill_rate"] > 5 * ev["median_refill_rate"]
    assert start < found.window.start_ms < found.detected_at_ms  # refilled from the walk's end on
    assert sim.engine.open_orders(PATTERN_MAKER, sim.symbol) == []


def test_flash_crash_is_detected_on_the_bid_side() -> None:
    sim, start = _inject(PatternKind.FLASH_CRASH, 60, 5)
    result = sim.tape.anomalies(T0, sim.now_ms)
    found = _found(result, AnomalyType.FLASH_CRASH_RISK)
    assert found and {a.type for a in result.anomalies} == {AnomalyType.FLASH_CRASH_RISK}
    first = found[0]
    assert first.severity is Severity.CRITICAL and start <= first.detected_at_ms <= start + 2000
    ev = _evidence(first)
    assert ev["depth_drained_fraction"] > 0.8 and ev["spread_ratio"] > 10 and ev["cancel_ratio"] > 0.9
    assert "bid" in first.evidence[0].detail


def test_runner_refuses_bad_starts_and_counts_what_ran() -> None:
    sim = _Sim()
    with pytest.raises(PatternError) as err:
        sim.runner.start(PatternKind.ICEBERG, "XRPUSDT", 5, sim.now_ms)
    assert err.value.field == "symbol"
    for bad in (0, -1, 601):
        with pytest.raises(PatternError) as err:
            sim.runner.start(PatternKind.ICEBERG, sim.symbol, bad, sim.now_ms)
        assert err.value.field == "seconds"
    sim.runner.start(PatternKind.QUOTE_STUFFING, sim.symbol, 1, sim.now_ms)
    with pytest.raises(PatternError) as err:
        sim.runner.start(PatternKind.ICEBERG, sim.symbol, 1, sim.now_ms)
    assert err.value.field == "symbol"
    assert sim.runner.started[PatternKind.QUOTE_STUFFING] == 0  # not before the clock runs it
    sim.run(0.5)
    assert sim.runner.started[PatternKind.QUOTE_STUFFING] == 1
    assert sim.engine.open_orders(PATTERN_MAKER, sim.symbol)
    assert sim.runner.stop_all(sim.now_ms) == 1
    assert sim.engine.open_orders(PATTERN_MAKER, sim.symbol) == []
    sim.runner.start(PatternKind.ICEBERG, sim.symbol, 1, sim.now_ms)  # the symbol is free again
