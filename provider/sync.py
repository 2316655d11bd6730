"""Snapshot/diff synchronisation of one local order book: Binance's documented procedure, IO-free.

This is the pure core of the provider's depth handling (binance-spot-reference.md §8). It owns an
:class:`~provider.book.OrderBook` and decides everything; the IO shell (WebSocket reader, REST
snapshot fetcher) only feeds it events and obeys the :class:`Decision` each call returns::

    sync = BookSync("BTCUSDT", snapshot_limit=5000)
    # for every depthUpdate of the (already open) diff stream, in order:
    d = sync.on_diff(ev["U"], ev["u"], ev["b"], ev["a"], ev["E"])
    # when a snapshot fetch completes, or fails:
    d = sync.on_snapshot(body["lastUpdateId"], body["bids"], body["asks"])   # / sync.on_snapshot_failed()
    # now and then, to audit the book against the exchange (within the REST weight budget):
    d = sync.request_audit()
    # after every call:
    if d.request_snapshot: start ONE snapshot fetch with limit=snapshot_limit (the shell rate-limits)
    if d.resync:           tell subscribers the book is out of sync (it was discarded)
    if d.updated:          publish the book (it changed and is in sync)
    # when the diff stream reconnects:
    sync.reset()

Rules (and nothing else):

* Before a snapshot, diffs are buffered; the first buffered diff asks for a snapshot. The buffer is
  bounded: an overflow restarts it (a resync). A gap between buffered diffs restarts the buffer at
  the diff after the gap (the outstanding snapshot is then judged against that diff).
* Snapshot ``lastUpdateId < U`` of the first buffered diff: too old, ask for another.
* Otherwise load it (book id := lastUpdateId) and drop buffered diffs with ``u <= lastUpdateId``.
  The first applied diff must satisfy ``U <= lastUpdateId + 1 <= u`` (it may be buffered already,
  or arrive later; until it does the state is AWAITING_BRIDGE, not in sync).
* In sync: ``u < id`` is stale and ignored; ``U > id + 1`` is a gap: resync at once (the diff that
  revealed it starts the new buffer, and a snapshot is requested); otherwise apply, ``id := u``.
* A crossed book after a diff, or a malformed diff, is a resync.
* Depth: a snapshot side with ``snapshot_limit`` levels was truncated, so levels beyond its worst
  price are unknown: the book is bounded there (such levels are removed and never inserted). When
  the price drifts towards a bound and a bounded side holds fewer than ``refresh_depth`` levels,
  a snapshot is requested (REFRESH_DEPTH): taken while in sync, it is an audit.
* Audit (a snapshot given while in sync): the snapshot, taken at ``L``, is advanced to the book's
  id by re-applying the diffs with ``u > L`` (recorded from the moment the audit was requested, or,
  if ``L`` is ahead of the book, by waiting for the diffs that reach it), then compared with the
  book level by level within both depths. A mismatch is a resync. Otherwise the book adopts the
  advanced snapshot: its known region becomes the new snapshot's depth (levels outside it are
  pruned, deeper ones filled in). Diffs are only recorded while an audit is under way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from provider.book import Level, LevelMismatch, OrderBook

__all__ = ["Action", "BookSync", "BookTop", "Decision", "Levels", "SyncCounters", "SyncState"]

Levels = Sequence[Sequence[str]]
"""Wire levels: ``[[price, qty], ...]`` decimal strings, as in ``b``/``a``/``bids``/``asks``."""
# (U, u, bids, asks, E) of one diff, as received.
_Diff = tuple[int, int, Levels, Levels, int]


class SyncState(Enum):
    AWAITING_SNAPSHOT = "awaiting_snapshot"
    """No book: diffs are buffered until a usable snapshot arrives."""
    AWAITING_BRIDGE = "awaiting_bridge"
    """Snapshot loaded; no diff yet with ``U <= lastUpdateId+1 <= u``. Not in sync."""
    SYNCED = "synced"
    """The book equals the exchange's at ``last_update_id`` (within its known depth)."""


class Action(Enum):
    """What a call did. The :class:`Decision` flags say what the shell must do about it."""

    REQUEST_SNAPSHOT = "request_snapshot"  # fetch a snapshot now (first diff buffered, retry, audit)
    BUFFERED = "buffered"  # diff buffered; a snapshot fetch is already outstanding
    SNAPSHOT_LOADED = "snapshot_loaded"  # snapshot loaded; waiting for the diff that bridges it
    SYNCED = "synced"  # this call brought the book in sync
    APPLIED = "applied"  # diff applied, still in sync
    REFRESH_DEPTH = "refresh_depth"  # diff applied; a bounded side is thin: fetch a snapshot
    IGNORED_STALE = "ignored_stale"  # diff older than the book, or a duplicate while buffering
    GAP_DETECTED = "gap_detected"  # missed events: book discarded, or buffer restarted
    CROSSED_BOOK = "crossed_book"  # best bid >= best ask after a diff: book discarded
    MALFORMED = "malformed"  # levels that do not parse: book discarded / snapshot rejected
    BUFFER_OVERFLOW = "buffer_overflow"  # too many diffs without a snapshot: buffer restarted
    SNAPSHOT_TOO_OLD = "snapshot_too_old"  # snapshot cannot be bridged to the stream
    SNAPSHOT_IGNORED = "snapshot_ignored"  # snapshot not needed now (waiting for the bridge diff)
    SNAPSHOT_FAILED = "snapshot_failed"  # fetch failure noted; nothing to fetch for now
    AUDIT_OK = "audit_ok"  # snapshot agrees with the book; book re-bounded to its depth
    AUDIT_PENDING = "audit_pending"  # snapshot newer than the book: checked when the book reaches it
    AUDIT_MISMATCH = "audit_mismatch"  # snapshot disagrees with the book: book discarded
    AUDIT_INCONCLUSIVE = "audit_inconclusive"  # cannot be compared (diffs since it not recorded)
    AUDIT_NOT_POSSIBLE = "audit_not_possible"  # request_audit(): not in sync, or a fetch is outstanding
    RESET = "reset"  # stream restarted: book and buffer discarded


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to every call. Instances are shared constants: compare fields, not identity."""

    action: Action
    request_snapshot: bool = False
    """Start exactly one snapshot fetch now; report it with on_snapshot() or on_snapshot_failed()."""
    resync: bool = False
    """A loaded or synced book was discarded by this call (tell subscribers)."""
    updated: bool = False
    """The book changed and is in sync: publish it."""


_DECISIONS: dict[tuple[Action, bool, bool, bool], Decision] = {}


def _decision(action: Action, request: bool = False, resync: bool = False, updated: bool = False) -> Decision:
    key = (action, request, resync, updated)
    d = _DECISIONS.get(key)
    if d is None:
        d = _DECISIONS[key] = Decision(action, request, resync, updated)
    return d


_APPLIED = _decision(Action.APPLIED, updated=True)
_SYNCED = _decision(Action.SYNCED, updated=True)
_SYNCED_REFRESH = _decision(Action.SYNCED, request=True, updated=True)
_REFRESH = _decision(Action.REFRESH_DEPTH, request=True, updated=True)
_STALE = _decision(Action.IGNORED_STALE)
_BUFFERED = _decision(Action.BUFFERED)
_REQUEST = _decision(Action.REQUEST_SNAPSHOT, request=True)


@dataclass(slots=True)
class SyncCounters:
    """Monotonic counters since construction (for metrics and tests)."""

    diffs_applied: int = 0
    levels_applied: int = 0
    diffs_buffered: int = 0
    stale_dropped: int = 0  # stale diffs ignored + buffered diffs dropped by a snapshot
    gaps: int = 0
    resyncs: int = 0  # a loaded/synced book (or an overflowing buffer) discarded; see last_resync
    snapshots_requested: int = 0
    snapshots_loaded: int = 0
    snapshots_too_old: int = 0
    snapshots_ignored: int = 0
    buffer_overflows: int = 0
    crossed_books: int = 0
    malformed: int = 0
    depth_refreshes: int = 0
    audits_ok: int = 0
    audits_failed: int = 0
    audits_inconclusive: int = 0


@dataclass(frozen=True, slots=True)
class BookTop:
    """The best ``n`` levels of each side, with everything needed to judge them."""

    symbol: str
    last_update_id: int | None
    event_time: int | None  # E (ms) of the last applied diff; None before the first one
    in_sync: bool
    bids: tuple[Level, ...]  # best first
    asks: tuple[Level, ...]
    bid_floor: str | None  # bids below it are unknown (truncated snapshot); None: side complete
    ask_ceiling: str | None  # asks above it are unknown


class BookSync:
    """The §8 state machine for one symbol's diff stream and its REST snapshots. No IO, no clock."""

    __slots__ = (
        "_audit_history",
        "_book",
        "_buffer",
        "_id",
        "_last_event_time",
        "_last_seen_u",
        "_max_buffer",
        "_outstanding",
        "_pending_audit",
        "_recording",
        "_refresh_depth",
        "_snapshot_limit",
        "_state",
        "_watch_asks",
        "_watch_bids",
        "counters",
        "last_audit_mismatches",
        "last_resync",
        "symbol",
    )

    def __init__(
        self,
        symbol: str = "",
        *,
        max_buffer: int = 1000,
        snapshot_limit: int | None = 5000,
        refresh_depth: int | None = None,
        audit_history: int = 1000,
    ) -> None:
        """
        :param max_buffer: diffs held while waiting for a snapshot; one more is an overflow.
        :param snapshot_limit: the ``limit`` the shell fetches snapshots with. A snapshot side with
            that many levels was truncated: the book is bounded at its worst price. ``None``:
            snapshots are complete, never bound the book.
        :param refresh_depth: request a snapshot (an audit) when a bounded side holds fewer levels
            than this. Default ``snapshot_limit // 4``; 0 never (nor when audits are disabled).
        :param audit_history: most diffs recorded while an audit is under way (0: audits disabled,
            a snapshot given in sync is then AUDIT_INCONCLUSIVE).
        """
        if max_buffer < 1:
            raise ValueError("max_buffer must be >= 1")
        self.symbol = symbol
        self._max_buffer = max_buffer
        self._snapshot_limit = snapshot_limit
        if refresh_depth is None:
            refresh_depth = 0 if snapshot_limit is None else snapshot_limit // 4
        self._refresh_depth = refresh_depth
        self._audit_history = audit_history
        self._book = OrderBook()
        self._state = SyncState.AWAITING_SNAPSHOT
        self._buffer: list[_Diff] = []
        self._outstanding = False  # a snapshot was requested and not reported yet
        self._id = 0  # book id: snapshot id, then last applied u (unused while AWAITING_SNAPSHOT)
        self._last_event_time: int | None = None
        self._last_seen_u: int | None = None  # last u seen since the snapshot was loaded
        self._watch_bids = False  # bid side is bounded and refresh_depth > 0
        self._watch_asks = False
        self._recording: deque[_Diff] | None = None  # applied diffs, while an audit is under way
        self._pending_audit: tuple[int, Levels, Levels] | None = None  # snapshot ahead of the book
        self.counters = SyncCounters()
        self.last_resync: Action | None = None
        self.last_audit_mismatches: list[LevelMismatch] = []

    # ----------------------------------------------------------------- read side
    @property
    def book(self) -> OrderBook:
        """The book: read it, never mutate it. Only meaningful when :attr:`in_sync`."""
        return self._book

    @property
    def state(self) -> SyncState:
        return self._state

    @property
    def in_sync(self) -> bool:
        return self._state is SyncState.SYNCED

    @property
    def last_update_id(self) -> int | None:
        """Book id: last applied ``u`` (SYNCED), snapshot id (AWAITING_BRIDGE), else None."""
        return None if self._state is SyncState.AWAITING_SNAPSHOT else self._id

    @property
    def last_event_time(self) -> int | None:
        """``E`` (ms) of the last applied diff; None until one is applied after a snapshot."""
        return self._last_event_time

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def snapshot_outstanding(self) -> bool:
        """A snapshot was requested and not yet reported (on_snapshot / on_snapshot_failed)."""
        return self._outstanding

    def top(self, n: int) -> BookTop:
        """The best ``n`` levels per side and the book's id, event time and sync flag."""
        has_book = self._state is not SyncState.AWAITING_SNAPSHOT
        bids, asks = self._book.top(n) if has_book else ([], [])
        return BookTop(
            self.symbol,
            self.last_update_id,
            self._last_event_time,
            self._state is SyncState.SYNCED,
            tuple(bids),
            tuple(asks),
            self._book.bid_floor,
            self._book.ask_ceiling,
        )

    # ---------------------------------------------------------------- write side
    def on_diff(self, first_id: int, last_id: int, bids: Levels, asks: Levels, event_time: int) -> Decision:
        """Feed one ``depthUpdate`` (``U``, ``u``, ``b``, ``a``, ``E``), in stream order."""
        if first_id > last_id:
            raise ValueError(f"diff with U {first_id} > u {last_id}")
        state = self._state
        if state is SyncState.SYNCED:
            book_id = self._id
            if last_id < book_id:
                self.counters.stale_dropped += 1
                return _STALE
            if first_id > book_id + 1:
                self.counters.gaps += 1
                return self._resync(Action.GAP_DETECTED, (first_id, last_id, bids, asks, event_time))
            return self._apply(first_id, last_id, bids, asks, event_time)

        if state is SyncState.AWAITING_BRIDGE:
            snap_id = self._id
            seen_before = self._last_seen_u is not None
            self._last_seen_u = last_id
            if last_id <= snap_id:
                self.counters.stale_dropped += 1
                return _STALE
            if first_id > snap_id + 1:
                diff = (first_id, last_id, bids, asks, event_time)
                if seen_before:  # the stream itself skipped ids
                    self.counters.gaps += 1
                    return self._resync(Action.GAP_DETECTED, diff)
                # The first diff after the snapshot starts past it: the snapshot is too old.
                self.counters.snapshots_too_old += 1
                return self._resync(Action.SNAPSHOT_TOO_OLD, diff, count=False)
            decision = self._apply(first_id, last_id, bids, asks, event_time)
            if decision.updated:  # APPLIED or REFRESH_DEPTH: the bridge is made
                self._state = SyncState.SYNCED
                return _SYNCED if decision is _APPLIED else _SYNCED_REFRESH
            return decision

        # AWAITING_SNAPSHOT: buffer.
        buf = self._buffer
        diff = (first_id, last_id, bids, asks, event_time)
        if buf:
            prev_u = buf[-1][1]
            if last_id <= prev_u:
                self.counters.stale_dropped += 1
                return _STALE
            if first_id > prev_u + 1:
                self.counters.gaps += 1
                buf.clear()
                buf.append(diff)
                self.counters.diffs_buffered += 1
                return _decision(Action.GAP_DETECTED, request=self._want_snapshot())
            if len(buf) >= self._max_buffer:
                self.counters.buffer_overflows += 1
                self.counters.resyncs += 1
                self.last_resync = Action.BUFFER_OVERFLOW
                buf.clear()
                buf.append(diff)
                self.counters.diffs_buffered += 1
                return _decision(Action.BUFFER_OVERFLOW, request=self._want_snapshot(), resync=True)
        buf.append(diff)
        self.counters.diffs_buffered += 1
        return _REQUEST if self._want_snapshot() else _BUFFERED

    def on_snapshot(self, last_update_id: int, bids: Levels, asks: Levels) -> Decision:
        """Feed a REST depth snapshot (``lastUpdateId``, ``bids``, ``asks``).

        Awaiting a snapshot: load it, or reject it as too old. In sync: audit the book with it.
        Awaiting the bridge diff: ignored.
        """
        self._outstanding = False
        state = self._state
        if state is SyncState.SYNCED:
            return self._audit(last_update_id, bids, asks)
        if state is SyncState.AWAITING_BRIDGE:
            self.counters.snapshots_ignored += 1
            return _decision(Action.SNAPSHOT_IGNORED)

        buf = self._buffer
        if buf and last_update_id < buf[0][0]:
            self.counters.snapshots_too_old += 1
            return _decision(Action.SNAPSHOT_TOO_OLD, request=self._want_snapshot())
        book = self._book
        try:
            book.load_snapshot(bids, asks)
        except ValueError:
            book.clear()
            self.counters.malformed += 1
            return _decision(Action.MALFORMED, request=self._want_snapshot())
        self._bound(book, bids, asks)
        self.counters.snapshots_loaded += 1
        self._state = SyncState.AWAITING_BRIDGE
        self._id = last_update_id
        self._last_event_time = None
        self._last_seen_u = None
        pending = buf[:]
        buf.clear()
        if not pending:
            return _decision(Action.SNAPSHOT_LOADED)
        # Feed the buffered diffs through the normal path: those with u <= lastUpdateId are dropped
        # as stale, the next must bridge, the rest must follow on. Report the first failure.
        first_failure: Decision | None = None
        request = False
        for diff in pending:
            d = self.on_diff(*diff)
            request = request or d.request_snapshot
            if first_failure is None and d.resync:
                first_failure = d
        if first_failure is not None:
            return _decision(first_failure.action, request=request, resync=True)
        if self._state is SyncState.SYNCED:
            return _SYNCED_REFRESH if request else _SYNCED
        return _decision(Action.SNAPSHOT_LOADED)  # every buffered diff was at or before the snapshot

    def on_snapshot_failed(self) -> Decision:
        """The requested snapshot fetch failed or was cancelled. Asks again if one is still needed."""
        self._outstanding = False
        if self._recording is not None and self._pending_audit is None:
            self._recording = None  # the audit it was for will not happen
        if self._state is SyncState.AWAITING_SNAPSHOT and self._buffer and self._want_snapshot():
            return _REQUEST
        return _decision(Action.SNAPSHOT_FAILED)

    def request_audit(self) -> Decision:
        """Ask for a snapshot to audit the book with (do it within the REST weight budget).

        Starts recording applied diffs, so that the snapshot, whenever it was taken after this call,
        can be advanced to the book's id and compared.
        """
        if self._state is not SyncState.SYNCED or self._outstanding or self._audit_history <= 0:
            return _decision(Action.AUDIT_NOT_POSSIBLE)
        self._start_recording()
        self._want_snapshot()
        return _REQUEST

    def reset(self) -> Decision:
        """The diff stream was (re)connected: discard the book and buffer; the next diff starts over.

        A snapshot fetch already outstanding stays outstanding (its result is still judged by ids).
        """
        had_book = self._state is not SyncState.AWAITING_SNAPSHOT
        self._discard()
        self._buffer.clear()
        if had_book:
            self.counters.resyncs += 1
            self.last_resync = Action.RESET
        return _decision(Action.RESET, resync=had_book)

    # ----------------------------------------------------------------- internals
    def _want_snapshot(self) -> bool:
        """Mark a snapshot as requested unless one is outstanding; True if the shell must fetch."""
        if self._outstanding:
            return False
        self._outstanding = True
        self.counters.snapshots_requested += 1
        return True

    def _start_recording(self) -> None:
        if self._recording is None and self._audit_history > 0:
            self._recording = deque(maxlen=self._audit_history)

    def _discard(self) -> None:
        self._book.clear()
        self._state = SyncState.AWAITING_SNAPSHOT
        self._id = 0
        self._last_event_time = None
        self._last_seen_u = None
        self._watch_bids = self._watch_asks = False
        self._recording = None
        self._pending_audit = None

    def _resync(self, action: Action, diff: _Diff | None, *, count: bool = True) -> Decision:
        """Discard the book; buffer ``diff`` (a valid event after the problem); ask for a snapshot."""
        self._discard()
        if count:
            self.counters.resyncs += 1
            self.last_resync = action
        self._buffer.clear()
        if diff is not None:
            self._buffer.append(diff)
            self.counters.diffs_buffered += 1
        return _decision(action, request=self._want_snapshot(), resync=True)

    def _apply(self, first_id: int, last_id: int, bids: Levels, asks: Levels, event_time: int) -> Decision:
        book = self._book
        try:
            book.apply(bids, asks)
        except ValueError:
            self.counters.malformed += 1
            return self._resync(Action.MALFORMED, None)
        if book.is_crossed():
            self.counters.crossed_books += 1
            return self._resync(Action.CROSSED_BOOK, (first_id, last_id, bids, asks, event_time))
        self._id = last_id
        self._last_event_time = event_time
        c = self.counters
        c.diffs_applied += 1
        c.levels_applied += len(bids) + len(asks)
        recording = self._recording
        if recording is not None:
            recording.append((first_id, last_id, bids, asks, event_time))
            pending = self._pending_audit
            if pending is not None and last_id >= pending[0]:
                self._pending_audit = None
                d = self._run_audit(*pending, (first_id, last_id, bids, asks, event_time))
                if d.resync:
                    return d
        depth = self._refresh_depth
        thin = (self._watch_bids and book.bid_count < depth) or (self._watch_asks and book.ask_count < depth)
        if thin and not self._outstanding and self._audit_history > 0:
            self._start_recording()
            self._want_snapshot()
            c.depth_refreshes += 1
            return _REFRESH
        return _APPLIED

    def _bound(self, book: OrderBook, bids: Levels, asks: Levels) -> None:
        """Bound each side that a truncated snapshot (``snapshot_limit`` levels) left incomplete."""
        limit = self._snapshot_limit
        if limit is None:
            return
        worst_bid = book.worst_bid() if len(bids) >= limit else None
        worst_ask = book.worst_ask() if len(asks) >= limit else None
        self._watch_bids = worst_bid is not None and self._refresh_depth > 0
        self._watch_asks = worst_ask is not None and self._refresh_depth > 0
        book.set_bounds(
            None if worst_bid is None else worst_bid[0],
            None if worst_ask is None else worst_ask[0],
        )

    def _audit(self, snap_id: int, bids: Levels, asks: Levels) -> Decision:
        if self._audit_history <= 0:
            self.counters.audits_inconclusive += 1
            return _decision(Action.AUDIT_INCONCLUSIVE)
        if snap_id > self._id:  # taken after the book's id: wait for the diffs that reach it
            self._start_recording()
            self._pending_audit = (snap_id, bids, asks)
            return _decision(Action.AUDIT_PENDING)
        return self._run_audit(snap_id, bids, asks)

    def _run_audit(self, snap_id: int, bids: Levels, asks: Levels, diff: _Diff | None = None) -> Decision:
        """Compare the book with a snapshot taken at ``snap_id <= book id``.

        ``diff``: the diff just applied, when the audit runs inside on_diff (it starts the new
        buffer if the audit fails).
        """
        recorded = self._recording if self._recording is not None else ()
        self._recording = None
        self._pending_audit = None
        later = [d for d in recorded if d[1] > snap_id]
        # Conclusive only if every diff after the snapshot was recorded: the first one must start
        # at or before snap_id + 1 (or there is none because the snapshot is exactly at the book).
        reachable = (later[0][0] <= snap_id + 1) if later else (snap_id == self._id)
        ref = OrderBook()
        try:
            ref.load_snapshot(bids, asks)
        except ValueError:
            reachable = False
        if not reachable:
            self.counters.audits_inconclusive += 1
            return _decision(Action.AUDIT_INCONCLUSIVE)
        self._bound(ref, bids, asks)
        for d in later:  # advance the snapshot to the book's id
            ref.apply(d[2], d[3])
        mismatches = self._book.compare(ref)
        self.last_audit_mismatches = mismatches
        if mismatches:
            self.counters.audits_failed += 1
            return self._resync(Action.AUDIT_MISMATCH, diff)
        self.counters.audits_ok += 1
        self._book.replace_with(ref)
        return _decision(Action.AUDIT_OK, updated=True)
