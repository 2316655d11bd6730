"""What every analytics answer says about itself: the window it covered, gaps, flags, thresholds.

Pure: the caller passes ``now_ms`` and the window; nothing here reads a clock.

Definitions (shared by every analytic):

* **Requested window** ``[start_ms, end_ms)``: either explicit, or ``[now - lookback, now)``
  (:func:`resolve_window`).
* **Clocks.** Each analytic names the 1-second series it relies on (activity bars, snapshots).
  A recorded sample at ``t`` stands for the second ``[t, t + 1000)``.
* **Recording gap**: two consecutive samples of one clock more than ``GAP_STEP_MS`` (1,500 ms)
  apart; the gap is ``[prev + 1000, next)``. 1.5 s tolerates the jitter of snapshots taken "every
  second" while still catching one missing second of the exactly aligned activity bars.
* **Covered window**: per clock, ``[first sample, last sample + 1000)`` clipped to the request;
  with several clocks, the intersection (the part where *all* the inputs existed). Gaps are the
  union of every clock's gaps inside it. No samples: the covered window is empty
  (``start == end == requested.start``).
* **Flags**: ``PARTIAL_WINDOW`` when the covered window starts or ends more than ``EDGE_SLACK_MS``
  (2,000 ms) inside the request (history does not reach back to the start, or stopped before the
  end); ``RECORDING_GAP`` when there are gaps; ``BOOK_RESYNCED`` when an activity bar of the
  window says so; each analytic adds ``NO_TRADES``, ``FEW_SAMPLES`` and ``BOOK_OUT_OF_SYNC`` by
  its own stated thresholds.
* **Prices in answers** are decimal strings on the symbol's tick grid (:class:`TickGrid`);
  analytics computes in floats and integer tick counts, never formats with binary floats.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np
from numpy.typing import NDArray

from provider.errors import ProviderError
from provider.history.arrays import ActivityArrays, SnapshotArrays, TradeArrays

__all__ = [
    "EDGE_SLACK_MS",
    "GAP_STEP_MS",
    "AnalyticsInputError",
    "BookTop",
    "Coverage",
    "DataQualityFlag",
    "DataSource",
    "Freshness",
    "Meta",
    "Severity",
    "Threshold",
    "TickGrid",
    "Window",
    "activity_in",
    "coverage",
    "make_meta",
    "resolve_window",
    "snapshots_in",
    "storage_freshness",
    "to_decimal",
    "trades_in",
]

GAP_STEP_MS = 1500
EDGE_SLACK_MS = 2000


class AnalyticsInputError(ProviderError):
    """A request argument analytics cannot work with (the servicer answers INVALID_ARGUMENT)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class DataQualityFlag(enum.IntEnum):
    """Values equal the proto's ``DataQualityFlag`` numbers."""

    PARTIAL_WINDOW = 1
    RECORDING_GAP = 2
    BOOK_RESYNCED = 3
    NO_TRADES = 4
    FEW_SAMPLES = 5
    BOOK_OUT_OF_SYNC = 6


class Severity(enum.IntEnum):
    """Values equal the proto's ``Severity`` numbers."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class DataSource(enum.IntEnum):
    """Values equal the proto's ``DataSource`` numbers."""

    LOCAL_BOOK = 1
    STORAGE = 4


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time range ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        return max(0, self.end_ms - self.start_ms)


@dataclass(frozen=True, slots=True)
class Threshold:
    name: str
    value: float


@dataclass(frozen=True, slots=True)
class Freshness:
    """How fresh an answer is (proto ``Freshness``): the newest book state it reflects."""

    last_update_id: int
    event_time_ms: int
    age_ms: int
    in_sync: bool
    source: DataSource


@dataclass(frozen=True, slots=True)
class Meta:
    """Proto ``AnalysisMeta``, field for field."""

    symbol: str
    requested: Window
    covered: Window
    trade_count: int
    snapshot_count: int
    book_update_count: int
    thresholds: tuple[Threshold, ...]
    flags: tuple[DataQualityFlag, ...]
    gaps: tuple[Window, ...]
    freshness: Freshness
    computed_at_ms: int


@dataclass(frozen=True, slots=True)
class BookTop:
    """The current local book's top levels (best first), as the caller read them.

    ``in_sync=False`` (or passing no book at all) makes book-based parts be omitted and flagged
    ``BOOK_OUT_OF_SYNC``.
    """

    bid_px: NDArray[np.float64]
    bid_qty: NDArray[np.float64]
    ask_px: NDArray[np.float64]
    ask_qty: NDArray[np.float64]
    last_update_id: int
    event_time_ms: int
    in_sync: bool


@dataclass(frozen=True, slots=True)
class Coverage:
    covered: Window
    gaps: tuple[Window, ...]
    flags: tuple[DataQualityFlag, ...]

    @property
    def recorded_seconds(self) -> float:
        """Seconds of the covered window that are not inside a gap."""
        missing = sum(g.duration_ms for g in self.gaps)
        return max(0, self.covered.duration_ms - missing) / 1000.0


def make_meta(
    *,
    symbol: str,
    requested: Window,
    cov: Coverage,
    trade_count: int,
    snapshot_count: int,
    book_update_count: int,
    thresholds: dict[str, float],
    flags: Sequence[DataQualityFlag],
    freshness: Freshness,
    now_ms: int,
) -> Meta:
    """A :class:`Meta` from the coverage plus an analytic's own counts, thresholds and flags."""
    merged = tuple(sorted(set(cov.flags) | set(flags)))
    return Meta(
        symbol=symbol,
        requested=requested,
        covered=cov.covered,
        trade_count=trade_count,
        snapshot_count=snapshot_count,
        book_update_count=book_update_count,
        thresholds=tuple(Threshold(k, float(v)) for k, v in thresholds.items()),
        flags=merged,
        gaps=cov.gaps,
        freshness=freshness,
        computed_at_ms=now_ms,
    )


def resolve_window(lookback_seconds: int, start_ms: int, end_ms: int, now_ms: int) -> Window:
    """Proto ``WindowSpec`` to a window: an explicit ``[start_ms, end_ms)`` wins over a lookback."""
    if start_ms or end_ms:
        if lookback_seconds:
            raise AnalyticsInputError("window", "give either lookback_seconds or start_ms/end_ms, not both")
        end = end_ms or now_ms
        if start_ms <= 0 or end <= start_ms:
            raise AnalyticsInputError("window.start_ms", "need 0 < start_ms < end_ms")
        return Window(start_ms, end)
    if lookback_seconds <= 0:
        raise AnalyticsInputError("window.lookback_seconds", "must be > 0 (or give start_ms/end_ms)")
    return Window(now_ms - lookback_seconds * 1000, now_ms)


def _span(times: NDArray[np.int64], lo: int, hi: int) -> tuple[int, int]:
    """Index range of ``lo <= times < hi`` in a sorted array."""
    a, b = np.searchsorted(times, [lo, hi], side="left")
    return int(a), int(b)


def trades_in(trades: TradeArrays, window: Window) -> TradeArrays:
    """Trades with ``start <= time < end`` (views, no copy)."""
    a, b = _span(trades.time_ms, window.start_ms, window.end_ms)
    return TradeArrays(
        trades.time_ms[a:b], trades.price[a:b], trades.qty[a:b], trades.buyer_is_maker[a:b], trades.agg_id[a:b]
    )


def snapshots_in(snaps: SnapshotArrays, window: Window) -> SnapshotArrays:
    """Snapshots with ``start <= time < end`` (views, no copy)."""
    a, b = _span(snaps.time_ms, window.start_ms, window.end_ms)
    return SnapshotArrays(
        snaps.time_ms[a:b],
        snaps.last_update_id[a:b],
        snaps.bid_px[a:b],
        snaps.bid_qty[a:b],
        snaps.ask_px[a:b],
        snaps.ask_qty[a:b],
    )


def activity_in(bars: ActivityArrays, window: Window) -> ActivityArrays:
    """Activity bars whose start lies in ``[start, end)`` (views, no copy)."""
    a, b = _span(bars.time_ms, window.start_ms, window.end_ms)
    return ActivityArrays(
        bars.time_ms[a:b],
        bars.bid_added[a:b],
        bars.bid_removed[a:b],
        bars.bid_traded[a:b],
        bars.bid_updates[a:b],
        bars.ask_added[a:b],
        bars.ask_removed[a:b],
        bars.ask_traded[a:b],
        bars.ask_updates[a:b],
        bars.trade_count[a:b],
        bars.buy_volume[a:b],
        bars.sell_volume[a:b],
        bars.resynced[a:b],
    )


def _clock_gaps(times: NDArray[np.int64]) -> list[tuple[int, int]]:
    steps = np.diff(times)
    at = np.flatnonzero(steps > GAP_STEP_MS)
    return [(int(times[i]) + 1000, int(times[i + 1])) for i in at]


def coverage(
    requested: Window, clocks: Sequence[NDArray[np.int64]], resynced: NDArray[np.bool_] | None = None
) -> Coverage:
    """Covered window, gaps and window flags of ``clocks`` (each already cut to ``requested``)."""
    start, end = requested.start_ms, requested.end_ms
    raw_gaps: list[tuple[int, int]] = []
    if not clocks or any(len(c) == 0 for c in clocks):
        covered = Window(start, start)
    else:
        for c in clocks:
            start = max(start, int(c[0]))
            end = min(end, int(c[-1]) + 1000)
            raw_gaps.extend(_clock_gaps(c))
        covered = Window(start, max(start, end))
    # Union of the clocks' gaps, clipped to the covered window.
    gaps: list[Window] = []
    for lo, hi in sorted(raw_gaps):
        lo, hi = max(lo, covered.start_ms), min(hi, covered.end_ms)
        if hi <= lo:
            continue
        if gaps and lo <= gaps[-1].end_ms:
            gaps[-1] = Window(gaps[-1].start_ms, max(gaps[-1].end_ms, hi))
        else:
            gaps.append(Window(lo, hi))
    flags: list[DataQualityFlag] = []
    if covered.start_ms - requested.start_ms > EDGE_SLACK_MS or requested.end_ms - covered.end_ms > EDGE_SLACK_MS:
        flags.append(DataQualityFlag.PARTIAL_WINDOW)
    if gaps:
        flags.append(DataQualityFlag.RECORDING_GAP)
    if resynced is not None and bool(resynced.any()):
        flags.append(DataQualityFlag.BOOK_RESYNCED)
    return Coverage(covered, tuple(gaps), tuple(flags))


def storage_freshness(
    snaps: SnapshotArrays, now_ms: int, book: BookTop | None = None, last_time_ms: int = 0
) -> Freshness:
    """The current book's freshness when one is used, else the newest snapshot's, else the newest
    other sample's time (``last_time_ms``, update id 0); all zero when there is no data."""
    if book is not None:
        return Freshness(
            book.last_update_id, book.event_time_ms, max(0, now_ms - book.event_time_ms), book.in_sync,
            DataSource.LOCAL_BOOK,
        )  # fmt: skip
    if len(snaps):
        t = int(snaps.time_ms[-1])
        return Freshness(int(snaps.last_update_id[-1]), t, max(0, now_ms - t), True, DataSource.STORAGE)
    if last_time_ms:
        return Freshness(0, last_time_ms, max(0, now_ms - last_time_ms), True, DataSource.STORAGE)
    return Freshness(0, 0, 0, False, DataSource.STORAGE)


def to_decimal(value: str | Decimal | float, field: str) -> Decimal:
    """A positive decimal from a string, Decimal or float (floats via their shortest repr)."""
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise AnalyticsInputError(field, f"not a decimal number: {value!r}") from None
    if not d.is_finite() or d <= 0:
        raise AnalyticsInputError(field, f"must be a positive number, got {value!r}")
    return d


class TickGrid:
    """The symbol's price grid: float prices to integer tick counts and tick counts to strings."""

    __slots__ = ("decimals", "tick", "tick_f")

    def __init__(self, tick_size: str | Decimal | float) -> None:
        self.tick = to_decimal(tick_size, "tick_size").normalize()
        exponent = self.tick.as_tuple().exponent
        assert isinstance(exponent, int)  # finite by to_decimal
        self.decimals = max(0, -exponent)
        self.tick_f = float(self.tick)

    def ticks(self, prices: NDArray[np.float64]) -> NDArray[np.int64]:
        """Nearest tick count of each price (exact for prices that are on the grid)."""
        out: NDArray[np.int64] = np.rint(prices / self.tick_f).astype(np.int64)
        return out

    def tick_of(self, price: float) -> int:
        return round(price / self.tick_f)

    def fmt(self, ticks: int) -> str:
        """``ticks × tick`` as a decimal string with the tick's number of decimals."""
        return f"{Decimal(ticks) * self.tick:.{self.decimals}f}"

    def fmt_price(self, price: float) -> str:
        return self.fmt(self.tick_of(price))
