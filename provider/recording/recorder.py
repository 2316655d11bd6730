"""Records every tracked symbol into the history store, once a second.

At each wall-clock second boundary ``B``, per tracked symbol:

* a :class:`SnapshotRecord` of the top ``levels`` of the book, stamped ``B``, only when the book
  is in sync (no snapshot otherwise: the gap is visible in the history);
* the activity bar of ``[B - 1000, B)`` (:mod:`provider.recording.activity`), when the book is in
  sync at ``B`` or was resynchronised during that second;
* the aggregate trades received from ``<symbol>@aggTrade`` since the previous boundary.

All go to the :class:`HistoryWriter` (non-blocking submit; it commits off the loop).

Backfill: when a symbol starts being tracked (pinned ones at start), one owned task fetches the
aggregate trade tape missed since the last stored trade (``fromId`` = last stored id + 1), or the
last ``backfill_ms`` when nothing is stored, page by page, until it meets the live stream's first
trade. Pages wait while the REST weight budget is short (market data never starves orders), and
the store keeps one row per agg id, so a repeated backfill is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from provider.binance.rest import RestClient
from provider.binance.wire import Weight
from provider.errors import ProviderError
from provider.history.codec import SnapshotRecord, TradeRecord
from provider.history.store import HistoryStore
from provider.history.writer import HistoryWriter, Record
from provider.marketdata.hub import TrackedSymbol
from provider.marketdata.model import AggTrade
from provider.recording.activity import ActivityAccumulator, BookSide
from provider.sync import Levels

__all__ = ["Recorder", "RecorderStats"]

log = logging.getLogger(__name__)

BACKFILL_PAGE = 1000  # Binance's maximum aggTrades limit
BACKFILL_WINDOW_MS = 3_600_000 - 1  # startTime..endTime may span at most an hour
BUDGET_HEADROOM = 4  # a page waits until the budget has room for this many pages
BUDGET_WAIT_S = 1.0
BACKFILL_RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class RecorderStats:
    symbols: int
    ticks: int
    snapshots: int
    bars: int
    trades: int
    backfilled_trades: int
    backfill_pages: int
    backfill_failures: int
    refused: int  # records the writer refused (queue full)
    tape_holes: int  # jumps in the live aggregate-trade ids, each backfilled from REST


def trade_record(symbol: str, t: AggTrade) -> TradeRecord:
    return TradeRecord(symbol, t.agg_id, t.price, t.qty, t.first_trade_id, t.last_trade_id, t.time_ms, t.is_buyer_maker)


@dataclass
class _Recording:
    """One symbol's state between ticks; also its book's observer."""

    tracked: TrackedSymbol
    wall_ms: Callable[[], int]
    activity: ActivityAccumulator
    trades: list[TradeRecord] = field(default_factory=list)
    first_live_id: int | None = None  # backfill stops at the live stream's first trade
    last_live_id: int | None = None  # aggregate ids are consecutive: a jump is a hole (a reconnect)

    def on_applied(
        self, bids: Levels, asks: Levels, prev_bids: Sequence[str | None], prev_asks: Sequence[str | None]
    ) -> None:
        now = self.wall_ms()
        on_level = self.activity.on_level
        for (price, qty, *_), prev in zip(bids, prev_bids, strict=True):
            on_level(now, BookSide.BID, price, float(prev) if prev is not None else 0.0, float(qty))
        for (price, qty, *_), prev in zip(asks, prev_asks, strict=True):
            on_level(now, BookSide.ASK, price, float(prev) if prev is not None else 0.0, float(qty))

    def on_resync(self) -> None:
        self.activity.on_resync(self.wall_ms())


class Recorder:
    """The hub's :class:`~provider.marketdata.hub.SymbolRecorder`; ticks once a second when started."""

    def __init__(
        self,
        store: HistoryStore,
        writer: HistoryWriter,
        rest: RestClient,
        *,
        levels: int = 20,
        backfill_ms: int = 900_000,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        if levels < 1:
            raise ValueError("levels must be >= 1")
        self._store = store
        self._writer = writer
        self._rest = rest
        self._levels = levels
        self._backfill_ms = backfill_ms
        self._wall_ms = wall_ms
        self._symbols: dict[str, _Recording] = {}
        # (symbol, from_id, until_id): from_id None = since the last stored trade, up to the live stream.
        self._backfill_queue: asyncio.Queue[tuple[str, int | None, int | None]] = asyncio.Queue(maxsize=10_000)
        self._tasks: list[asyncio.Task[None]] = []
        self._ticks = self._snapshots = self._bars = self._trades = 0
        self._backfilled = self._pages = self._backfill_failures = self._refused = 0
        self._holes = 0

    # ------------------------------------------------------------------ SymbolRecorder
    def on_tracked(self, tracked: TrackedSymbol) -> None:
        rec = _Recording(tracked, self._wall_ms, ActivityAccumulator(tracked.symbol))
        self._symbols[tracked.symbol] = rec
        tracked.book.observer = rec
        with contextlib.suppress(asyncio.QueueFull):  # 10,000 symbols queued: the rest catch up next time
            self._backfill_queue.put_nowait((tracked.symbol, None, None))

    def on_released(self, symbol: str) -> None:
        rec = self._symbols.pop(symbol, None)
        if rec is not None:
            rec.tracked.book.observer = None
            self._submit_all(rec.trades)

    def on_agg_trade(self, symbol: str, trade: AggTrade) -> None:
        rec = self._symbols.get(symbol)
        if rec is None:
            return
        if rec.first_live_id is None:
            rec.first_live_id = trade.agg_id
        last = rec.last_live_id
        if last is not None and trade.agg_id > last + 1:
            # Trades the stream did not deliver (it reconnected): fetch exactly those from REST.
            self._holes += 1
            with contextlib.suppress(asyncio.QueueFull):
                self._backfill_queue.put_nowait((symbol, last + 1, trade.agg_id))
        if last is None or trade.agg_id > last:
            rec.last_live_id = trade.agg_id
        rec.activity.on_trade(self._wall_ms(), trade.price, float(trade.qty), trade.is_buyer_maker)
        rec.trades.append(trade_record(symbol, trade))

    # ------------------------------------------------------------------ per second
    def tick(self, boundary_ms: int) -> None:
        """Record the second ending at ``boundary_ms`` (a multiple of 1000) for every symbol."""
        self._ticks += 1
        for symbol, rec in self._symbols.items():
            book = rec.tracked.book
            bar = rec.activity.close(boundary_ms - 1000)
            records: list[Record] = []
            if book.in_sync:
                top = book.top(self._levels)
                records.append(
                    SnapshotRecord(symbol, boundary_ms, top.last_update_id or 0, list(top.bids), list(top.asks))
                )
                self._snapshots += 1
            if book.in_sync or bar.resynced:
                records.append(bar)
                self._bars += 1
            self._trades += len(rec.trades)
            records.extend(rec.trades)
            rec.trades = []
            self._submit_all(records)

    def _submit_all(self, records: Sequence[Record]) -> None:
        for record in records:
            if not self._writer.submit(record):
                self._refused += 1

    # ------------------------------------------------------------------ backfill
    async def backfill(self, symbol: str, from_id: int | None = None, until_id: int | None = None) -> int:
        """Fetch missed trades; returns the number of trades submitted.

        Without `from_id`: since the last stored trade (or the last `backfill_ms`) up to the live
        stream's first trade. With it: the hole ``[from_id, until_id)`` the live stream skipped.
        """
        now = self._wall_ms()
        start_ms: int | None = None
        if from_id is None:
            last = await asyncio.to_thread(self._store.last_trade_id, symbol)
            from_id = None if last is None else last + 1
            start_ms = now - self._backfill_ms if last is None else None
        total = 0
        while True:
            rec = self._symbols.get(symbol)
            if rec is None:
                return total  # released meanwhile
            await self._wait_for_budget()
            if from_id is not None:
                page = await self._rest.agg_trades(symbol, from_id=from_id, limit=BACKFILL_PAGE)
            else:
                assert start_ms is not None
                end_ms = min(now, start_ms + BACKFILL_WINDOW_MS)
                page = await self._rest.agg_trades(symbol, start_ms=start_ms, end_ms=end_ms, limit=BACKFILL_PAGE)
                if not page and end_ms < now:
                    start_ms = end_ms + 1  # a quiet hour: move on to the next
                    continue
            self._pages += 1
            live = rec.first_live_id if until_id is None else until_id
            fresh = [t for t in page if live is None or t.agg_id < live]
            self._submit_all([trade_record(symbol, t) for t in fresh])
            total += len(fresh)
            self._backfilled += len(fresh)
            if len(page) < BACKFILL_PAGE or len(fresh) < len(page):
                return total  # reached the present or the live stream
            from_id = page[-1].agg_id + 1

    async def _wait_for_budget(self) -> None:
        budget = self._rest.budget
        while True:
            if budget.peek(Weight.AGG_TRADES * BUDGET_HEADROOM, self._wall_ms()).allowed:
                return
            await asyncio.sleep(BUDGET_WAIT_S)

    async def _backfill_loop(self) -> None:
        while True:
            symbol, from_id, until_id = await self._backfill_queue.get()
            try:
                count = await self.backfill(symbol, from_id, until_id)
            except ProviderError as exc:
                self._backfill_failures += 1
                log.warning("%s: trade backfill failed (%s); retrying in %.0f s", symbol, exc.message, BACKFILL_RETRY_S)
                await asyncio.sleep(BACKFILL_RETRY_S)
                if symbol in self._symbols:
                    with contextlib.suppress(asyncio.QueueFull):
                        self._backfill_queue.put_nowait((symbol, from_id, until_id))
                continue
            if count:
                log.info("%s: backfilled %d aggregate trades", symbol, count)

    # ------------------------------------------------------------------ lifecycle
    async def _tick_loop(self) -> None:
        while True:
            now = self._wall_ms()
            boundary = now - now % 1000 + 1000
            await asyncio.sleep((boundary - now) / 1000)
            early = boundary - self._wall_ms()
            if early > 0:  # the loop's timer may fire a hair early
                await asyncio.sleep(early / 1000)
            self.tick(boundary)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._tick_loop(), name="recorder-tick"),
            asyncio.create_task(self._backfill_loop(), name="recorder-backfill"),
        ]

    async def close(self) -> None:
        """Stop ticking and backfilling; hand the trades received since the last tick to the writer."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for rec in self._symbols.values():
            rec.tracked.book.observer = None
            self._submit_all(rec.trades)
            rec.trades = []

    def stats(self) -> RecorderStats:
        return RecorderStats(
            symbols=len(self._symbols),
            ticks=self._ticks,
            snapshots=self._snapshots,
            bars=self._bars,
            trades=self._trades,
            backfilled_trades=self._backfilled,
            backfill_pages=self._pages,
            backfill_failures=self._backfill_failures,
            refused=self._refused,
            tape_holes=self._holes,
        )
