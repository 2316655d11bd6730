"""A seeded, deterministic synthetic market: resting liquidity and order flow for each symbol.

A market-maker account (unlimited balances, no user events) keeps a book of a few hundred levels
a side around a fair price that random-walks through trending and quiet regimes; each step it
adds orders near the touch, cancels resting ones, or sends a marketable order that trades. All of
it goes through the matching engine, so user orders meet this liquidity and vice versa.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from exchange_sim.matching import EngineError, MatchingEngine, OrderResult, OrderType, Side, SymbolSpec, TimeInForce

MARKET_MAKER = "market-maker"


@dataclass(frozen=True)
class SyntheticProfile:
    """How one symbol's synthetic market behaves."""

    start_price: Decimal
    levels_per_side: int = 300
    ops_per_second: float = 40.0
    add_share: float = 0.6  # of operations: new resting orders near the touch
    cancel_share: float = 0.3  # cancellations of resting market-maker orders
    # the rest: marketable orders that trade
    base_size: Decimal = Decimal("0.5")  # typical order size in base units


RESTING_CAP_FACTOR = 4  # resting market-maker orders kept per symbol: this many times levels_per_side


@dataclass
class _SymbolFlow:
    spec: SymbolSpec
    profile: SyntheticProfile
    tick: Decimal
    step: Decimal
    fair_ticks: int
    trend: float = 0.0
    resting: list[int] = field(default_factory=list)  # market-maker order ids, oldest first
    ops_owed: float = 0.0


class SyntheticMarket:
    def __init__(self, engine: MatchingEngine, seed: int, apply: Callable[[OrderResult], None]) -> None:
        self._engine = engine
        self._rng = random.Random(seed)
        self._apply = apply
        self._flows: dict[str, _SymbolFlow] = {}
        engine.open_account(MARKET_MAKER, market_maker=True)
        self.operations = 0

    def add(self, spec: SymbolSpec, profile: SyntheticProfile, now_ms: int) -> None:
        """Start driving `spec.symbol`, seeding its book with `levels_per_side` levels a side."""
        tick, step = spec.price_filter.tick_size, spec.lot_size.step_size
        flow = _SymbolFlow(spec, profile, tick, step, int(profile.start_price / tick))
        self._flows[spec.symbol] = flow
        for depth in range(1, profile.levels_per_side + 1):
            for side in (Side.BUY, Side.SELL):
                offset = _offset(depth)
                self._rest(
                    flow, side, flow.fair_ticks - offset if side is Side.BUY else flow.fair_ticks + offset, now_ms
                )

    def _size(self, flow: _SymbolFlow, scale: float = 1.0) -> Decimal:
        raw = Decimal(str(round(self._rng.expovariate(1.0) * scale, 6))) * flow.profile.base_size
        lots = max(1, int(raw / flow.step))
        min_lots = int(flow.spec.lot_size.min_qty / flow.step) or 1
        return max(lots, min_lots) * flow.step

    def _rest(self, flow: _SymbolFlow, side: Side, price_ticks: int, now_ms: int) -> None:
        if price_ticks <= 0:
            return
        try:
            result = self._engine.place_order(
                MARKET_MAKER,
                flow.spec.symbol,
                side,
                OrderType.LIMIT_MAKER,
                quantity=self._size(flow),
                price=price_ticks * flow.tick,
                now_ms=now_ms,
            )
        except EngineError:
            return  # would cross (the touch moved) or breaks a filter: skip, as a real maker would
        flow.resting.append(result.order_id)
        self._apply(result)
        # Bounded book: past the cap the oldest order goes (it has drifted furthest from the price),
        # so a long run cannot accumulate resting orders (and memory) without limit.
        while len(flow.resting) > flow.profile.levels_per_side * RESTING_CAP_FACTOR:
            stale = flow.resting.pop(0)
            with contextlib.suppress(EngineError):  # already filled
                self._apply(self._engine.cancel_order(MARKET_MAKER, flow.spec.symbol, order_id=stale, now_ms=now_ms))

    def step(self, now_ms: int, seconds: float) -> None:
        """Advance every symbol by `seconds` of simulated activity."""
        for flow in self._flows.values():
            flow.ops_owed += flow.profile.ops_per_second * seconds
            while flow.ops_owed >= 1:
                flow.ops_owed -= 1
                self._operate(flow, now_ms)

    def _operate(self, flow: _SymbolFlow, now_ms: int) -> None:
        rng = self._rng
        self.operations += 1
        # Regimes: mostly quiet, sometimes trending; the fair price drifts with the trend.
        if rng.random() < 0.002:
            flow.trend = rng.choice((0.0, 0.0, 0.3, -0.3))
        flow.fair_ticks += round(rng.gauss(flow.trend, 1.0))
        ticker = self._engine.book_ticker(flow.spec.symbol)
        bid = int(ticker.bid_price / flow.tick) if ticker.bid_price is not None else flow.fair_ticks - 1
        ask = int(ticker.ask_price / flow.tick) if ticker.ask_price is not None else flow.fair_ticks + 1
        roll = rng.random()
        profile = flow.profile
        if roll < profile.add_share:
            side = Side.BUY if rng.random() < 0.5 + 0.1 * flow.trend else Side.SELL
            distance = int(rng.expovariate(0.3))
            price = min(bid + 1, ask - 1) - distance if side is Side.BUY else max(ask - 1, bid + 1) + distance
            self._rest(flow, side, price, now_ms)
        elif roll < profile.add_share + profile.cancel_share:
            if flow.resting:
                order_id = flow.resting.pop(rng.randrange(len(flow.resting)))
                with contextlib.suppress(EngineError):  # already filled by a marketable order
                    self._apply(
                        self._engine.cancel_order(MARKET_MAKER, flow.spec.symbol, order_id=order_id, now_ms=now_ms)
                    )
        else:
            # Aggressors lean with the trend and with the fair price's position in the spread.
            lean = 0.2 if flow.fair_ticks > ask else -0.2 if flow.fair_ticks < bid else 0.0
            buy_bias = 0.5 + 0.2 * flow.trend + lean
            side = Side.BUY if rng.random() < buy_bias else Side.SELL
            limit_ticks = ask + 2 if side is Side.BUY else max(1, bid - 2)
            try:
                result = self._engine.place_order(
                    MARKET_MAKER,
                    flow.spec.symbol,
                    side,
                    OrderType.LIMIT,
                    time_in_force=TimeInForce.IOC,
                    quantity=self._size(flow, 0.6),
                    price=limit_ticks * flow.tick,
                    now_ms=now_ms,
                )
            except EngineError:
                return
            self._apply(result)
        # Keep the book deep: adds cluster at the touch and the resting cap retires the oldest (deep)
        # orders first, so without this a side thins to a few dozen levels within minutes.
        bid_levels, ask_levels = self._engine.level_counts(flow.spec.symbol)
        if min(bid_levels, ask_levels) < profile.levels_per_side and rng.random() < 0.25:
            offset = _offset(rng.randint(5, profile.levels_per_side))
            if bid_levels <= ask_levels:
                self._rest(flow, Side.BUY, bid - offset, now_ms)
            else:
                self._rest(flow, Side.SELL, ask + offset, now_ms)


def _offset(depth: int) -> int:
    """Ticks from the touch of the `depth`-th level of a fresh book: tight near the touch, sparser deeper."""
    return depth + (depth // 20) ** 2
