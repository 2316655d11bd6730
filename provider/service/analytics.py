"""The Analytics gRPC service: history from the LMDB store, the pure analytics, proto answers.

Every RPC resolves its window, reads the store's arrays for it in a worker thread (LMDB reads
never block the event loop), calls the analytic and converts the result field for field. Bad
parameters answer INVALID_ARGUMENT naming the field. The current book (order flow's book
imbalance) comes from the hub when in sync; otherwise the analytic flags BOOK_OUT_OF_SYNC.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from binance.provider.v1 import analytics_pb2 as an
from binance.provider.v1 import analytics_pb2_grpc as an_grpc
from binance.provider.v1 import common_pb2 as c
from numpy.typing import NDArray

from provider.analytics.anomalies import anomalies
from provider.analytics.health import health
from provider.analytics.liquidity import liquidity_map
from provider.analytics.order_flow import IMBALANCE_LEVELS, order_flow
from provider.analytics.volume_profile import volume_profile
from provider.analytics.window import AnalyticsInputError, BookTop, Window, resolve_window
from provider.errors import InvalidArgument
from provider.history.arrays import ActivityArrays, SnapshotArrays, TradeArrays
from provider.history.codec import SnapshotRecord
from provider.history.store import HistoryStore
from provider.marketdata.hub import MarketDataHub
from provider.service import analytics_convert as convert
from provider.service.errors import Context, translate_stream, translate_unary

__all__ = ["SNAPSHOT_BATCH_MS", "AnalyticsServicer"]

SNAPSHOT_BATCH_MS = 60_000  # one stored minute per streamed batch
MAX_SNAPSHOT_LEVELS = 5000

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _History:
    trades: TradeArrays
    snapshots: SnapshotArrays
    activity: ActivityArrays


class AnalyticsServicer(an_grpc.AnalyticsServicer):
    def __init__(
        self,
        hub: MarketDataHub,
        store: HistoryStore,
        *,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._hub = hub
        self._store = store
        self._wall_ms = wall_ms

    # ------------------------------------------------------------------ helpers
    def _symbol(self, symbol: str) -> str:
        return self._hub.validate(symbol)

    def _tick_size(self, symbol: str) -> str:
        price_filter = self._hub.rules(symbol).price_filter
        # No PRICE_FILTER: Binance's finest precision is the grid.
        return (
            price_filter.tick_size if price_filter is not None and float(price_filter.tick_size) > 0 else "0.00000001"
        )

    def _window(self, spec: an.WindowSpec, now_ms: int) -> Window:
        return _checked(lambda: resolve_window(spec.lookback_seconds, spec.start_ms, spec.end_ms, now_ms))

    async def _history(
        self, symbol: str, window: Window, *, snapshots: bool = True, levels: int | None = None
    ) -> _History:
        def read() -> _History:
            s = self._store
            return _History(
                s.trades(symbol, window.start_ms, window.end_ms),
                s.snapshots(symbol, window.start_ms, window.end_ms, levels)
                if snapshots
                else SnapshotArrays.empty(s.levels),
                s.activity(symbol, window.start_ms, window.end_ms),
            )

        return await asyncio.to_thread(read)

    def _book(self, symbol: str) -> BookTop | None:
        tracked = self._hub.tracked(symbol)
        if tracked is None or not tracked.book.in_sync:
            return None
        top = tracked.book.top(IMBALANCE_LEVELS)

        def side(levels: tuple[tuple[str, str], ...]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
            return (
                np.array([float(p) for p, _ in levels], np.float64),
                np.array([float(q) for _, q in levels], np.float64),
            )

        bid_px, bid_qty = side(top.bids)
        ask_px, ask_qty = side(top.asks)
        return BookTop(bid_px, bid_qty, ask_px, ask_qty, top.last_update_id or 0, top.event_time or 0, top.in_sync)

    def _read_batch(
        self, symbol: str, start_ms: int, end_ms: int, levels: int | None
    ) -> tuple[list[SnapshotRecord], list[tuple[int, int]]]:
        return self._store.snapshot_records(symbol, start_ms, end_ms, levels), self._store.gaps(
            symbol, start_ms, end_ms
        )

    # ------------------------------------------------------------------ RPCs
    @translate_unary
    async def GetOrderFlow(self, request: an.GetOrderFlowRequest, context: Context) -> an.GetOrderFlowResponse:
        symbol = self._symbol(request.symbol)
        now = self._wall_ms()
        window = self._window(request.window, now)
        if request.bucket_seconds < 0:
            raise InvalidArgument("bucket_seconds", "must be >= 0 (0: chosen from the window)")
        h = await self._history(symbol, window, snapshots=False)
        book = self._book(symbol)
        result = _checked(
            lambda: order_flow(
                symbol=symbol,
                requested=window,
                now_ms=now,
                trades=h.trades,
                activity=h.activity,
                book=book,
                bucket_seconds=request.bucket_seconds,
            )
        )
        return convert.order_flow(result)

    @translate_unary
    async def GetVolumeProfile(
        self, request: an.GetVolumeProfileRequest, context: Context
    ) -> an.GetVolumeProfileResponse:
        symbol = self._symbol(request.symbol)
        now = self._wall_ms()
        window = self._window(request.window, now)
        tick = self._tick_size(symbol)
        h = await self._history(symbol, window, snapshots=False)
        result = _checked(
            lambda: volume_profile(
                symbol=symbol,
                requested=window,
                now_ms=now,
                trades=h.trades,
                tick_size=tick,
                bin_size=request.bin_size or None,
                activity=h.activity,
            )
        )
        return convert.volume_profile(result)

    @translate_unary
    async def GetAnomalies(self, request: an.GetAnomaliesRequest, context: Context) -> an.GetAnomaliesResponse:
        symbol = self._symbol(request.symbol)
        now = self._wall_ms()
        window = self._window(request.window, now)
        tick = self._tick_size(symbol)
        h = await self._history(symbol, window)
        result = _checked(
            lambda: anomalies(
                symbol=symbol,
                requested=window,
                now_ms=now,
                trades=h.trades,
                snapshots=h.snapshots,
                activity=h.activity,
                tick_size=tick,
            )
        )
        return convert.anomalies(result)

    @translate_unary
    async def GetMicrostructureHealth(
        self, request: an.GetMicrostructureHealthRequest, context: Context
    ) -> an.GetMicrostructureHealthResponse:
        symbol = self._symbol(request.symbol)
        now = self._wall_ms()
        window = self._window(request.window, now)
        h = await self._history(symbol, window)
        result = _checked(
            lambda: health(
                symbol=symbol,
                requested=window,
                now_ms=now,
                trades=h.trades,
                snapshots=h.snapshots,
                activity=h.activity,
            )
        )
        return convert.health(result)

    @translate_unary
    async def GetLiquidityMap(self, request: an.GetLiquidityMapRequest, context: Context) -> an.GetLiquidityMapResponse:
        symbol = self._symbol(request.symbol)
        now = self._wall_ms()
        window = self._window(request.window, now)
        if request.depth_levels < 0:
            raise InvalidArgument("depth_levels", "must be >= 0 (0: 20)")
        tick = self._tick_size(symbol)
        h = await self._history(symbol, window)
        result = _checked(
            lambda: liquidity_map(
                symbol=symbol,
                requested=window,
                now_ms=now,
                trades=h.trades,
                snapshots=h.snapshots,
                tick_size=tick,
                depth_levels=request.depth_levels,
            )
        )
        return convert.liquidity_map(result)

    @translate_stream
    async def GetSnapshots(
        self, request: an.GetSnapshotsRequest, context: Context
    ) -> AsyncIterator[an.GetSnapshotsResponse]:
        symbol = self._symbol(request.symbol)
        start, end = request.start_ms, request.end_ms or self._wall_ms()
        if start <= 0 or end <= start:
            raise InvalidArgument("start_ms", "need 0 < start_ms < end_ms (end_ms 0: now)")
        if request.levels < 0 or request.levels > MAX_SNAPSHOT_LEVELS:
            raise InvalidArgument("levels", f"must be 0 (all recorded) to {MAX_SNAPSHOT_LEVELS}")
        levels = request.levels or None
        pending: tuple[int, int] | None = None  # a gap reaching the batch's end may continue in the next
        batch_start = start
        while batch_start < end:
            batch_end = min(end, batch_start - batch_start % SNAPSHOT_BATCH_MS + SNAPSHOT_BATCH_MS)
            records, gaps = await asyncio.to_thread(self._read_batch, symbol, batch_start, batch_end, levels)
            out: list[tuple[int, int]] = []
            carried, pending = pending, None
            for gap in gaps:
                if carried is not None:
                    if gap[0] == carried[1]:  # the previous batch's closing gap goes on
                        gap = (carried[0], gap[1])
                    else:
                        out.append(carried)
                    carried = None
                if gap[1] == batch_end and batch_end < end:
                    pending = gap
                else:
                    out.append(gap)
            if carried is not None:
                out.insert(0, carried)
            if records or out:
                yield an.GetSnapshotsResponse(
                    snapshots=[convert.snapshot(r) for r in records],
                    gaps=[c.TimeWindow(start_ms=a, end_ms=b) for a, b in out],
                )
            batch_start = batch_end
        if pending is not None:
            yield an.GetSnapshotsResponse(gaps=[c.TimeWindow(start_ms=pending[0], end_ms=pending[1])])


def _checked(compute: Callable[[], _T]) -> _T:
    """Run an analytic; its input errors become INVALID_ARGUMENT naming the field."""
    try:
        return compute()
    except AnalyticsInputError as exc:
        raise InvalidArgument(exc.field, exc.message) from None
