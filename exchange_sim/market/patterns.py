"""Scheduled anomaly patterns on the synthetic market, for end-to-end tests of anomaly detection.

The control API (``POST /control/pattern``, SIM_CONTROL=on) starts a pattern on one symbol for a
number of seconds; the market clock calls :meth:`PatternRunner.step` every tick (100 ms) after the
synthetic market's own step. Patterns act only through the matching engine, as ordinary
participants (two market-maker accounts: unlimited balances, no user events), and every result
goes through the same apply path as the market's, so the depth and trade streams show them.

* QUOTE_STUFFING: every tick the stuffer cancels its previous burst and places a new one of
  minimum-size orders a few ticks behind the touch on both sides, on alternating price grids, so
  every 100 ms diff changes ~100 levels (~1,000 level updates a second) while almost nothing trades.
* ICEBERG: a hidden seller some ticks above the best ask shows a tip. Aggressive buyers walk the
  book up to it (each sweep takes the asks up to a few ticks above the touch, so the levels on the
  way are traded through once and left behind), then keep sweeping it every 700 ms. Whoever
  empties the tip (the sweepers or the market's own buyers), the seller re-adds it on the next
  tick, so the trades and the refill are in different depth@100ms diffs: the stream shows the
  level emptied, then a new quantity at the same price, as a refilling order does on Binance
  (refilled in the trades' own window, the diff would net the two and show no change at all).
  The tip is re-added as a GTC limit sell, so bids that moved into the emptied level are sold
  into, as the hidden quantity would have been, rather than blocking the refill. Refills stop
  when its hidden size is spent. (A level that refills is only unusual against levels that do
  not: the walk gives the book those.) :attr:`PatternStatus.price` is its price once placed.
* FLASH_CRASH: bid liquidity providers pull every bid within ``band`` ticks under the best ask and
  keep pulling as it moves, so near-touch bid depth collapses and the spread gapes; aggressive
  sellers hit what is left.

Pure-ish: no IO, no clock of its own (every call takes ``now_ms``), deterministic.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from exchange_sim.market.synthetic import MARKET_MAKER
from exchange_sim.matching import (
    EngineError,
    MatchingEngine,
    OrderResult,
    OrderType,
    SelfTradePreventionMode,
    Side,
    SymbolSpec,
    TimeInForce,
)

__all__ = [
    "MAX_PATTERN_SECONDS",
    "PATTERN_MAKER",
    "PATTERN_TAKER",
    "PatternError",
    "PatternKind",
    "PatternRunner",
    "PatternStatus",
]

PATTERN_MAKER = "pattern-maker"  # resting side of the patterns: the stuffer, the iceberg
PATTERN_TAKER = "pattern-taker"  # their aggressive flow
MAX_PATTERN_SECONDS = 600.0
KEEP_FINISHED = 16  # finished patterns kept for the status report

STUFFING_ORDERS_PER_SIDE = 25  # per tick, on each side: ~100 changed levels per diff with the cancels
STUFFING_FIRST_OFFSET = 2  # ticks behind the touch: close, but not the best price itself
# A sweep every 7 ticks: the level is traded through in every second, and 7 is prime to the 10
# ticks of a second, so a 1-second snapshot catches the level between a sweep and its refill (the
# tick after) 1 time in 7 whatever the start's phase. With a period dividing 10 (5 was tried)
# the sweep and the snapshot lock in phase: from some starts every snapshot sees the level emptied.
ICEBERG_SWEEP_EVERY_TICKS = 7
ICEBERG_DISTANCE_TICKS = 30  # the hidden seller's price above the best ask at the start
ICEBERG_WALK_TICKS = 3  # a sweep on the way up takes the asks up to this many ticks above the touch
# (walking fast leaves levels behind unrefilled: the book's contrast the detector's test needs)
ICEBERG_TIP_SHARE = Decimal("0.05")  # tip = 5% of the near-touch ask depth (a modest visible size)
ICEBERG_REFILLS = 4  # hidden size in tips per second of the pattern: lasts the whole pattern
FLASH_BAND_TICKS = 40  # bids pulled within this many ticks under the best ask: spread >= 40 ticks
FLASH_SELL_EVERY_TICKS = 5
FLASH_SELL_LEVELS = 2  # each aggressive sale takes out about this many of the remaining bid levels
NEAR_LEVELS = 5
_NOTIONAL_SLACK = Decimal("1.2")  # minimum-size orders stay clear of the MIN_NOTIONAL filter


class PatternKind(enum.StrEnum):
    QUOTE_STUFFING = "quote_stuffing"
    ICEBERG = "iceberg"
    FLASH_CRASH = "flash_crash"


class PatternError(Exception):
    """A pattern that cannot start; ``field`` names the request field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True, slots=True)
class PatternStatus:
    kind: PatternKind
    symbol: str
    started_ms: int
    ends_ms: int
    operations: int  # engine calls the pattern made (orders and cancels)
    running: bool
    price: Decimal | None = None  # the level the pattern acts at (the iceberg's), once it has one


Apply = Callable[[OrderResult], None]


@dataclass
class _Actor:
    """One pattern's access to the engine: places and cancels, applied and counted."""

    engine: MatchingEngine
    apply: Apply
    spec: SymbolSpec
    operations: int = 0

    @property
    def tick(self) -> Decimal:
        return self.spec.price_filter.tick_size

    def touch(self) -> tuple[int | None, int | None]:
        """Best bid and ask in ticks (None: that side is empty)."""
        t = self.engine.book_ticker(self.spec.symbol)
        bid = None if t.bid_price is None else int(t.bid_price / self.tick)
        ask = None if t.ask_price is None else int(t.ask_price / self.tick)
        return bid, ask

    def min_size(self, price_ticks: int) -> Decimal:
        """The smallest quantity the filters accept at this price (with some notional slack)."""
        step, lot = self.spec.lot_size.step_size, self.spec.lot_size.min_qty
        notional = self.spec.notional.min_notional if self.spec.notional is not None else Decimal(0)
        lots = (notional * _NOTIONAL_SLACK / (price_ticks * self.tick) / step).to_integral_value(ROUND_CEILING)
        return max(lots * step, lot, step)

    def lots(self, qty: Decimal) -> Decimal:
        """``qty`` rounded down to the step and capped by the maximum quantity."""
        step = self.spec.lot_size.step_size
        return min((qty / step).to_integral_value(rounding="ROUND_FLOOR") * step, self.spec.lot_size.max_qty)

    def place(
        self,
        account: str,
        side: Side,
        qty: Decimal,
        price_ticks: int,
        now_ms: int,
        *,
        time_in_force: TimeInForce | None = None,
    ) -> OrderResult | None:
        """A resting LIMIT_MAKER, or a limit order with ``time_in_force`` (IOC: takes only; GTC: takes
        what crosses it, rests the rest); None when the engine refuses it."""
        if price_ticks <= 0 or qty <= 0:
            return None
        self.operations += 1
        try:
            result = self.engine.place_order(
                account,
                self.spec.symbol,
                side,
                OrderType.LIMIT_MAKER if time_in_force is None else OrderType.LIMIT,
                time_in_force=time_in_force,
                quantity=qty,
                price=price_ticks * self.tick,
                self_trade_prevention_mode=SelfTradePreventionMode.NONE,
                now_ms=now_ms,
            )
        except EngineError:
            return None  # would cross (the touch moved) or breaks a filter: skip it, as a trader would
        self.apply(result)
        return result

    def cancel(self, account: str, order_id: int, now_ms: int) -> None:
        self.operations += 1
        with contextlib.suppress(EngineError):  # already filled
            self.apply(self.engine.cancel_order(account, self.spec.symbol, order_id=order_id, now_ms=now_ms))

    def open_ids(self, account: str) -> set[int]:
        return {o.order_id for o in self.engine.open_orders(account, self.spec.symbol)}


class _Pattern:
    def __init__(self, actor: _Actor) -> None:
        self.actor = actor
        self.ticks = 0

    def tick(self, now_ms: int) -> None:
        raise NotImplementedError

    def level(self) -> Decimal | None:
        """The one price the pattern acts at, if it has one."""
        return None

    def finish(self, now_ms: int) -> None:
        """Leave nothing of the pattern resting (the market keeps what it did)."""


class _QuoteStuffing(_Pattern):
    def __init__(self, actor: _Actor) -> None:
        super().__init__(actor)
        self.live: list[int] = []

    def _cancel_all(self, now_ms: int) -> None:
        for order_id in self.live:
            self.actor.cancel(PATTERN_MAKER, order_id, now_ms)
        self.live = []

    def tick(self, now_ms: int) -> None:
        a = self.actor
        self._cancel_all(now_ms)
        bid, ask = a.touch()
        parity = self.ticks % 2  # alternate grids: this burst's levels differ from the last one's
        offsets = [STUFFING_FIRST_OFFSET + parity + 2 * j for j in range(STUFFING_ORDERS_PER_SIDE)]
        for side, touch in ((Side.BUY, bid), (Side.SELL, ask)):
            if touch is None:
                continue
            for off in offsets:
                price = touch - off if side is Side.BUY else touch + off
                result = a.place(PATTERN_MAKER, side, a.min_size(max(price, 1)), price, now_ms)
                if result is not None:
                    self.live.append(result.order_id)

    def finish(self, now_ms: int) -> None:
        self._cancel_all(now_ms)


class _Iceberg(_Pattern):
    def __init__(self, actor: _Actor, seconds: float) -> None:
        super().__init__(actor)
        self.price: int | None = None
        self.tip_size = Decimal(0)
        self.hidden = Decimal(0)
        self.tip: int | None = None
        self.refill_due = False  # the tip was found gone at the end of an earlier tick
        self.seconds = seconds

    def level(self) -> Decimal | None:
        return None if self.price is None else self.price * self.actor.tick

    def _start(self) -> bool:
        a = self.actor
        _, asks = a.engine.depth(a.spec.symbol, NEAR_LEVELS)[1:]
        if not asks:
            return False
        self.price = int(asks[0][0] / a.tick) + ICEBERG_DISTANCE_TICKS
        near = sum((q for _, q in asks), Decimal(0))
        self.tip_size = max(a.lots(near * ICEBERG_TIP_SHARE), a.min_size(self.price))
        self.hidden = self.tip_size * int(ICEBERG_REFILLS * self.seconds + 1)
        return True

    def _refill(self, now_ms: int) -> None:
        a, price = self.actor, self.price
        assert price is not None
        if self.tip is not None and self.tip in a.open_ids(PATTERN_MAKER):
            return
        size = min(self.tip_size, self.hidden)
        if size <= 0:
            self.tip = None
            return
        result = a.place(PATTERN_MAKER, Side.SELL, size, price, now_ms, time_in_force=TimeInForce.GTC)
        self.tip = None if result is None else result.order_id
        if result is not None:
            self.hidden -= size

    def tick(self, now_ms: int) -> None:
        if self.price is None and not self._start():
            return
        a, price = self.actor, self.price
        assert price is not None
        if self.ticks == 0 or self.refill_due:
            self._refill(now_ms)  # before the sweep: the sweepers find the new tip
        if self.ticks and self.ticks % ICEBERG_SWEEP_EVERY_TICKS == 0:
            # Buyers aimed at the level: walk up to it, then take everything offered up to it, not beyond.
            _, ask = a.touch()
            limit = price if ask is None else min(price, ask + ICEBERG_WALK_TICKS)
            _, asks = a.engine.depth(a.spec.symbol, 50)[1:]
            qty = a.lots(sum((q for p, q in asks if p / a.tick <= limit), Decimal(0)))
            a.place(PATTERN_TAKER, Side.BUY, qty, limit, now_ms, time_in_force=TimeInForce.IOC)
        # Whoever took the tip in this tick, the seller re-adds it in a later one (a later depth diff).
        self.refill_due = self.tip is None or self.tip not in a.open_ids(PATTERN_MAKER)

    def finish(self, now_ms: int) -> None:
        if self.tip is not None:
            self.actor.cancel(PATTERN_MAKER, self.tip, now_ms)
            self.tip = None


class _FlashCrash(_Pattern):
    def tick(self, now_ms: int) -> None:
        a = self.actor
        _, ask = a.touch()
        if ask is not None:
            ceiling = ask - FLASH_BAND_TICKS
            for account in (MARKET_MAKER, PATTERN_MAKER):
                for o in a.engine.open_orders(account, a.spec.symbol):
                    if o.side is Side.BUY and o.price / a.tick > ceiling:
                        a.cancel(account, o.order_id, now_ms)
        if self.ticks % FLASH_SELL_EVERY_TICKS == 2:
            _, bids = a.engine.depth(a.spec.symbol, FLASH_SELL_LEVELS)[1:]
            if bids:
                qty = a.lots(sum((q for _, q in bids), Decimal(0)))
                a.place(PATTERN_TAKER, Side.SELL, qty, int(bids[-1][0] / a.tick), now_ms, time_in_force=TimeInForce.IOC)


@dataclass
class _Running:
    kind: PatternKind
    symbol: str
    started_ms: int
    ends_ms: int
    pattern: _Pattern
    running: bool = True


class PatternRunner:
    """Starts patterns on request and advances them on every market-clock tick."""

    def __init__(self, engine: MatchingEngine, apply: Apply) -> None:
        self.engine = engine
        self.apply = apply
        self._specs: dict[str, SymbolSpec] = {}
        self._runs: list[_Running] = []
        self.started: dict[PatternKind, int] = dict.fromkeys(PatternKind, 0)  # patterns that began acting
        for account in (PATTERN_MAKER, PATTERN_TAKER):
            engine.open_account(account, market_maker=True)

    def add_symbol(self, spec: SymbolSpec) -> None:
        """Allow patterns on `spec.symbol` (a symbol with a synthetic market)."""
        self._specs[spec.symbol] = spec

    def start(self, kind: PatternKind, symbol: str, seconds: float, now_ms: int) -> PatternStatus:
        spec = self._specs.get(symbol)
        if spec is None:
            raise PatternError("symbol", f"{symbol} has no synthetic market to run a pattern on")
        if not 0 < seconds <= MAX_PATTERN_SECONDS:
            raise PatternError("seconds", f"'seconds' must be within (0, {MAX_PATTERN_SECONDS:.0f}]")
        if any(r.running and r.symbol == symbol for r in self._runs):
            raise PatternError("symbol", f"a pattern is already running on {symbol}")
        actor = _Actor(self.engine, self.apply, spec)
        pattern: _Pattern
        if kind is PatternKind.QUOTE_STUFFING:
            pattern = _QuoteStuffing(actor)
        elif kind is PatternKind.ICEBERG:
            pattern = _Iceberg(actor, seconds)
        else:
            pattern = _FlashCrash(actor)
        run = _Running(kind, symbol, now_ms, now_ms + round(seconds * 1000), pattern)
        self._runs = [r for r in self._runs if r.running] + [r for r in self._runs if not r.running][-KEEP_FINISHED:]
        self._runs.append(run)
        return _status(run)

    def step(self, now_ms: int) -> None:
        """One market-clock tick: advance every running pattern; finish those whose time is up."""
        for run in self._runs:
            if not run.running:
                continue
            if now_ms >= run.ends_ms:
                run.pattern.finish(now_ms)
                run.running = False
                continue
            if run.pattern.ticks == 0:
                self.started[run.kind] += 1
            run.pattern.tick(now_ms)
            run.pattern.ticks += 1

    def stop_all(self, now_ms: int) -> int:
        """Finish every running pattern now; how many were stopped."""
        stopped = 0
        for run in self._runs:
            if run.running:
                run.pattern.finish(now_ms)
                run.running = False
                stopped += 1
        return stopped

    def status(self) -> list[PatternStatus]:
        return [_status(r) for r in self._runs]


def _status(run: _Running) -> PatternStatus:
    return PatternStatus(
        run.kind,
        run.symbol,
        run.started_ms,
        run.ends_ms,
        run.pattern.actor.operations,
        run.running,
        run.pattern.level(),
    )
