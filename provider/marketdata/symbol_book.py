"""The IO shell around one symbol's :class:`~provider.sync.BookSync`: feeds it the diff stream and
REST snapshots, obeys every :class:`~provider.sync.Decision`, and publishes depth events.

Subscribers see a protocol that lets them hold an exact copy of the book:

* :class:`BookSynced`: the book is (again) in sync; take a snapshot of it now.
* :class:`DepthDiffEvent`: one applied diff; ``first_update_id == previous last_update_id + 1``.
* :class:`BookOutOfSync`: the book was discarded (gap, reconnect, crossed book, failed audit);
  whatever copy a subscriber holds is no longer valid until the next :class:`BookSynced`.
* :class:`BookRefreshed`: still in sync, but an audit adopted a fresh exchange snapshot and the
  edges of what the book knows moved (a book cut at its snapshot's depth regains depth this way
  as the price moves): a copy taken before has stale edges; take a snapshot of it now.

Everything runs on the event loop; a snapshot fetch is one owned task at a time (BookSync never
asks for a second while one is outstanding). Failed fetches back off (or wait as the exchange
told: 429/418) before BookSync is told, so a failing venue is never hammered.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from provider.errors import ProviderError
from provider.marketdata.feeds import Feed
from provider.sync import Action, BookSync, BookTop, Decision, Levels

log = logging.getLogger(__name__)

SNAPSHOT_BACKOFF_INITIAL_S = 0.2
SNAPSHOT_BACKOFF_MAX_S = 5.0


class SnapshotSource(Protocol):
    """What a snapshot fetch returns (provider.marketdata.model.DepthSnapshot fits)."""

    @property
    def last_update_id(self) -> int: ...
    @property
    def bids(self) -> Sequence[tuple[str, str]]: ...
    @property
    def asks(self) -> Sequence[tuple[str, str]]: ...


FetchSnapshot = Callable[[str, int], Awaitable[SnapshotSource]]
"""``fetch(symbol, limit)``: a REST depth snapshot."""


class BookObserver(Protocol):
    """Told of every applied diff with each level's quantity before it (None: no level), and of
    every discard or rebuild of the book. Called on the event loop; must not block."""

    def on_applied(
        self, bids: Levels, asks: Levels, prev_bids: Sequence[str | None], prev_asks: Sequence[str | None]
    ) -> None: ...

    def on_resync(self) -> None: ...


@dataclass(frozen=True, slots=True, eq=False)
class DepthDiffEvent:
    first_update_id: int
    last_update_id: int
    event_time_ms: int
    bids: Levels
    asks: Levels


@dataclass(frozen=True, slots=True, eq=False)
class BookSynced:
    last_update_id: int


@dataclass(frozen=True, slots=True, eq=False)
class BookOutOfSync:
    reason: str  # the BookSync action that discarded the book, e.g. "gap_detected"


_DIFF_ACTIONS = frozenset({Action.APPLIED, Action.REFRESH_DEPTH})


@dataclass(frozen=True, slots=True)
class BookView:
    """A read of the book: top levels plus everything a caller needs to judge it."""

    symbol: str
    bids: tuple[tuple[str, str], ...]
    asks: tuple[tuple[str, str], ...]
    last_update_id: int
    event_time_ms: int
    age_ms: int  # now minus when the last applied update was received (0 if none yet)
    in_sync: bool
    bid_floor: str | None = None  # bids below it are unknown (the snapshot was cut); None: side complete
    ask_ceiling: str | None = None  # asks above it are unknown


@dataclass(frozen=True, slots=True, eq=False)
class BookRefreshed:
    """The whole book as it was when its edges moved, so that every subscriber's refresh is taken
    at this event's place in the stream: the diffs before it are in it, the ones after follow on."""

    view: BookView


DepthEvent = DepthDiffEvent | BookSynced | BookOutOfSync | BookRefreshed


@dataclass
class BookStats:
    snapshot_fetches: int = 0
    snapshot_failures: int = 0
    stream_resets: int = 0
    malformed_events: int = 0
    out_of_sync_events: int = 0
    refreshes: int = 0  # BookRefreshed events: an audit moved the edges of the known book


class SymbolBook:
    def __init__(
        self,
        symbol: str,
        fetch_snapshot: FetchSnapshot,
        *,
        snapshot_limit: int = 1000,
        feed_capacity: int = 4096,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.symbol = symbol
        self._fetch = fetch_snapshot
        self._limit = snapshot_limit
        self._wall_ms = wall_ms
        self.sync = BookSync(symbol, snapshot_limit=snapshot_limit)
        self.feed: Feed[DepthEvent] = Feed(feed_capacity)
        self.stats = BookStats()
        self._fetch_task: asyncio.Task[None] | None = None
        self._want_fetch = False
        self._received_ms = 0  # wall time the last applied update was received
        self._synced = asyncio.Event()
        self._audits_seen = 0  # BookSync's audits_ok when the edges were last compared
        self._edges: tuple[str | None, str | None] = (None, None)  # (bid floor, ask ceiling) as last published
        self._closed = False
        self.observer: BookObserver | None = None  # set by the recorder; None costs nothing

    # ------------------------------------------------------------------ stream input
    def on_diff(self, data: Mapping[str, Any]) -> None:
        """One ``depthUpdate`` event of this symbol's diff stream, in stream order."""
        sync = self.sync
        prev_id = sync.last_update_id if sync.in_sync else None
        try:
            first, last, bids, asks, event_time = data["U"], data["u"], data["b"], data["a"], data["E"]
            observer = self.observer
            if observer is not None and prev_id is not None:
                # Quantities before BookSync applies the diff (only when someone records them).
                book = sync.book
                prev_bids = [book.bid_qty(level[0]) for level in bids]
                prev_asks = [book.ask_qty(level[0]) for level in asks]
            decision = sync.on_diff(int(first), int(last), bids, asks, int(event_time))
        except (KeyError, TypeError, ValueError) as exc:
            # A frame we cannot read may have carried changes: the book can no longer be trusted.
            self.stats.malformed_events += 1
            log.warning("%s: unreadable depth event (%s); resynchronising", self.symbol, exc)
            self._obey(sync.reset())
            return
        if decision.updated:
            self._received_ms = self._wall_ms()
            feed = self.feed
            if feed and prev_id is not None and decision.action in _DIFF_ACTIONS:
                feed.publish(DepthDiffEvent(max(int(first), prev_id + 1), int(last), int(event_time), bids, asks))
            if observer is not None and prev_id is not None and decision.action in _DIFF_ACTIONS:
                observer.on_applied(bids, asks, prev_bids, prev_asks)
        if decision.resync or decision.request_snapshot or decision.action is Action.SYNCED:
            self._obey(decision)
        if sync.counters.audits_ok != self._audits_seen:  # an audit ran inside this diff
            self._after_audit()

    def stream_down(self) -> None:
        """The diff stream stopped (reconnecting): the book cannot be kept, discard it now."""
        self.stats.stream_resets += 1
        self._obey(self.sync.reset())

    def request_audit(self) -> bool:
        """Check the book against a fresh snapshot; False when not possible now."""
        decision = self.sync.request_audit()
        self._obey(decision)
        return decision.request_snapshot

    # ------------------------------------------------------------------ read side
    @property
    def in_sync(self) -> bool:
        return self.sync.in_sync

    def top(self, n: int) -> BookTop:
        return self.sync.top(n)

    def view(self, n: int) -> BookView:
        top = self.sync.top(n)
        age = max(0, self._wall_ms() - self._received_ms) if self._received_ms else 0
        return BookView(
            self.symbol,
            top.bids,
            top.asks,
            top.last_update_id or 0,
            top.event_time or 0,
            age,
            top.in_sync,
            top.bid_floor,
            top.ask_ceiling,
        )

    async def wait_synced(self, timeout: float) -> bool:
        if self.sync.in_sync:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._synced.wait(), timeout)
        return self.sync.in_sync

    # ------------------------------------------------------------------ decisions
    def _obey(self, decision: Decision) -> None:
        if decision.resync:
            self.stats.out_of_sync_events += 1
            self._synced.clear()
            if self.observer is not None:
                self.observer.on_resync()
            self.feed.publish(BookOutOfSync(decision.action.value))
            log.info("%s: book out of sync (%s)", self.symbol, decision.action.value)
        if decision.action is Action.AUDIT_OK:
            self._after_audit()
        if decision.action is Action.SYNCED:
            self._received_ms = self._wall_ms()
            self._audits_seen = self.sync.counters.audits_ok
            self._edges = self._current_edges()
            self._synced.set()
            if self.observer is not None:
                self.observer.on_resync()
            self.feed.publish(BookSynced(self.sync.last_update_id or 0))
        if decision.request_snapshot and not self._closed:
            self._want_fetch = True
            if self._fetch_task is None:
                self._fetch_task = asyncio.create_task(self._fetch_snapshots(), name=f"snapshot-{self.symbol}")

    def _current_edges(self) -> tuple[str | None, str | None]:
        book = self.sync.book
        return book.bid_floor, book.ask_ceiling

    def _after_audit(self) -> None:
        """An audit agreed with the book and the book adopted its snapshot: if that moved the edges
        of what the book knows, subscribers' copies must be refreshed."""
        self._audits_seen = self.sync.counters.audits_ok
        edges = self._current_edges()
        if edges != self._edges and self.sync.in_sync:
            self._edges = edges
            self.stats.refreshes += 1
            # Every level, read without top(): a deep top() read would grow the book's sorted "hot"
            # part for good, and with it the cost of every later change.
            book = self.sync.book
            whole = dataclasses.replace(self.view(0), bids=tuple(book.bids()), asks=tuple(book.asks()))
            self.feed.publish(BookRefreshed(whole))

    async def _fetch_snapshots(self) -> None:
        backoff = SNAPSHOT_BACKOFF_INITIAL_S
        try:
            while self._want_fetch and not self._closed:
                self._want_fetch = False
                self.stats.snapshot_fetches += 1
                try:
                    snapshot = await self._fetch(self.symbol, self._limit)
                except ProviderError as exc:
                    self.stats.snapshot_failures += 1
                    retry_ms = getattr(exc, "retry_after_ms", None)
                    wait = retry_ms / 1000 if isinstance(retry_ms, int) and retry_ms > 0 else backoff
                    backoff = min(backoff * 2, SNAPSHOT_BACKOFF_MAX_S)
                    log.warning("%s: snapshot failed (%s); retrying in %.1f s", self.symbol, exc.message, wait)
                    await asyncio.sleep(wait)
                    self._obey(self.sync.on_snapshot_failed())
                    continue
                backoff = SNAPSHOT_BACKOFF_INITIAL_S
                self._obey(self.sync.on_snapshot(snapshot.last_update_id, snapshot.bids, snapshot.asks))
        finally:
            self._fetch_task = None

    async def close(self) -> None:
        self._closed = True
        task = self._fetch_task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.feed.close()
