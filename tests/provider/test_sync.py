"""Table tests of the §8 snapshot/diff rules (provider.sync.BookSync)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from provider.sync import Action, BookSync, Decision, SyncState

L = list[list[str]]
SNAP_BIDS: L = [["100", "1"], ["99", "2"], ["98", "3"]]
SNAP_ASKS: L = [["101", "1"], ["102", "2"], ["103", "3"]]


def diff(sync: BookSync, first: int, last: int, bids: L | None = None, asks: L | None = None) -> Decision:
    return sync.on_diff(first, last, bids or [], asks or [], 1_000 + last)


def snap(sync: BookSync, last_update_id: int, bids: L = SNAP_BIDS, asks: L = SNAP_ASKS) -> Decision:
    return sync.on_snapshot(last_update_id, bids, asks)


def synced(last_update_id: int = 10, **kw: int | None) -> BookSync:
    """A book in sync at ``last_update_id`` (snapshot at id-? then a bridging diff)."""
    s = BookSync("TEST", **kw)  # type: ignore[arg-type]
    assert snap(s, last_update_id - 1).action is Action.SNAPSHOT_LOADED
    assert diff(s, last_update_id, last_update_id).action is Action.SYNCED
    return s


def test_decision_constants() -> None:
    d = Decision(Action.APPLIED)
    assert (d.request_snapshot, d.resync, d.updated) == (False, False, False)


# --------------------------------------------------------------------------- buffering
def test_initial_state() -> None:
    s = BookSync("BTCUSDT")
    assert s.state is SyncState.AWAITING_SNAPSHOT
    assert not s.in_sync
    assert s.last_update_id is None
    assert s.last_event_time is None
    assert s.buffered == 0
    assert not s.snapshot_outstanding
    top = s.top(5)
    assert (top.symbol, top.in_sync, top.bids, top.asks, top.last_update_id) == ("BTCUSDT", False, (), (), None)


def test_first_diff_requests_one_snapshot() -> None:
    s = BookSync()
    assert diff(s, 5, 7) == Decision(Action.REQUEST_SNAPSHOT, request_snapshot=True)
    assert s.snapshot_outstanding
    assert diff(s, 8, 9) == Decision(Action.BUFFERED)
    assert diff(s, 10, 10) == Decision(Action.BUFFERED)
    assert s.buffered == 3
    assert s.counters.snapshots_requested == 1
    assert s.counters.diffs_buffered == 3


def test_duplicate_while_buffering_is_stale() -> None:
    s = BookSync()
    diff(s, 5, 7)
    assert diff(s, 5, 7).action is Action.IGNORED_STALE
    assert diff(s, 6, 6).action is Action.IGNORED_STALE
    assert s.buffered == 1
    assert s.counters.stale_dropped == 2


def test_gap_while_buffering_restarts_buffer() -> None:
    s = BookSync()
    diff(s, 5, 7)
    diff(s, 8, 9)
    d = diff(s, 11, 12)  # 10 missing
    assert d == Decision(Action.GAP_DETECTED)  # a snapshot is already outstanding: no new fetch
    assert s.buffered == 1
    assert s.counters.gaps == 1
    # the outstanding snapshot is now judged against U=11
    assert snap(s, 9).action is Action.SNAPSHOT_TOO_OLD
    assert snap(s, 11).action is Action.SYNCED
    assert s.last_update_id == 12


def test_buffer_overflow_restarts_buffer() -> None:
    s = BookSync(max_buffer=3)
    for i in range(3):
        diff(s, 10 + i, 10 + i)
    d = diff(s, 13, 13)
    assert d == Decision(Action.BUFFER_OVERFLOW, resync=True)  # fetch still outstanding
    assert s.buffered == 1
    assert (s.counters.buffer_overflows, s.counters.resyncs) == (1, 1)
    assert s.last_resync is Action.BUFFER_OVERFLOW
    # the snapshot requested before the overflow is too old for the restarted buffer
    assert snap(s, 12) == Decision(Action.SNAPSHOT_TOO_OLD, request_snapshot=True)
    assert snap(s, 13).action is Action.SNAPSHOT_LOADED  # [13..13] dropped: wait for the bridge
    assert diff(s, 14, 14).action is Action.SYNCED


def test_buffer_overflow_without_outstanding_fetch_requests_one() -> None:
    s = BookSync(max_buffer=1)
    diff(s, 1, 1)
    s.on_snapshot_failed()  # -> REQUEST again (buffer not empty) ...
    s.on_snapshot_failed()
    assert s.snapshot_outstanding
    assert diff(s, 2, 2) == Decision(Action.BUFFER_OVERFLOW, resync=True)


def test_max_buffer_validated() -> None:
    with pytest.raises(ValueError, match="max_buffer"):
        BookSync(max_buffer=0)


def test_diff_with_first_after_last_rejected() -> None:
    with pytest.raises(ValueError, match="U"):
        diff(BookSync(), 5, 4)


# --------------------------------------------------------------------------- snapshot rules
@dataclass(frozen=True)
class SnapCase:
    name: str
    buffered: list[tuple[int, int]]
    snapshot_id: int
    action: Action
    request: bool
    state: SyncState
    last_update_id: int | None
    stale: int


BRIDGE = SyncState.AWAITING_BRIDGE
SNAP_CASES = [
    # The bridging diff arrives BEFORE the snapshot (the BTCUSDT recording): it must be buffered and
    # applied after the snapshot; the ones wholly before it are dropped.
    SnapCase("bridge-buffered", [(1, 5), (6, 9), (10, 20)], 15, Action.SYNCED, False, SyncState.SYNCED, 20, 2),
    # U <= lastUpdateId+1 <= u with U exactly lastUpdateId+1
    SnapCase("bridge-exact-start", [(1, 5), (6, 9), (10, 20)], 9, Action.SYNCED, False, SyncState.SYNCED, 20, 2),
    # lastUpdateId == u of a buffered diff: that one is dropped, the next one starts at id+1
    SnapCase("bridge-at-u", [(1, 5), (6, 9), (10, 20)], 5, Action.SYNCED, False, SyncState.SYNCED, 20, 1),
    # snapshot at the very first U: not too old (only strictly less is)
    SnapCase("first-U", [(1, 5), (6, 9)], 1, Action.SYNCED, False, SyncState.SYNCED, 9, 0),
    # snapshot strictly older than the first buffered U: too old, fetch another
    SnapCase("too-old", [(10, 12)], 9, Action.SNAPSHOT_TOO_OLD, True, SyncState.AWAITING_SNAPSHOT, None, 0),
    SnapCase("too-old-far", [(10, 12)], 3, Action.SNAPSHOT_TOO_OLD, True, SyncState.AWAITING_SNAPSHOT, None, 0),
    # snapshot newer than every buffered diff (the ETHUSDT recording): all dropped, wait for the bridge
    SnapCase("newer-than-buffer", [(1, 5), (6, 9)], 12, Action.SNAPSHOT_LOADED, False, BRIDGE, 12, 2),
    SnapCase("at-last-u", [(1, 5), (6, 9)], 9, Action.SNAPSHOT_LOADED, False, BRIDGE, 9, 2),
    # no buffered diff at all: load it and wait
    SnapCase("empty-buffer", [], 50, Action.SNAPSHOT_LOADED, False, BRIDGE, 50, 0),
]


@pytest.mark.parametrize("case", SNAP_CASES, ids=[c.name for c in SNAP_CASES])
def test_snapshot_rules(case: SnapCase) -> None:
    s = BookSync()
    for first, last in case.buffered:
        diff(s, first, last, [["100", str(last)]])
    d = snap(s, case.snapshot_id)
    assert d.action is case.action
    assert d.request_snapshot is case.request
    assert s.state is case.state
    assert s.last_update_id == case.last_update_id
    assert s.counters.stale_dropped == case.stale
    assert d.updated is (case.state is SyncState.SYNCED)
    if case.state is SyncState.SYNCED:
        last = case.buffered[-1][1]
        assert s.book.best_bid() == ("100", str(last))  # buffered diffs applied on the snapshot
        assert s.last_event_time == 1_000 + last


def test_bridging_diff_before_snapshot_content() -> None:
    """The BTCUSDT shape: buffered [8..12] bridges snapshot 10; its levels land on the snapshot."""
    s = BookSync()
    diff(s, 3, 7, [["99", "9"]])  # before the snapshot: must NOT be applied
    diff(s, 8, 12, [["100", "0"], ["99.5", "4"]], [["101", "1.5"]])
    d = snap(s, 10)
    assert d == Decision(Action.SYNCED, updated=True)
    assert s.book.bids() == [("99.5", "4"), ("99", "2"), ("98", "3")]
    assert s.book.asks() == [("101", "1.5"), ("102", "2"), ("103", "3")]
    assert s.last_update_id == 12


def test_snapshot_first_then_diff_at_exactly_id_plus_one() -> None:
    """The ETHUSDT shape: older buffered diffs dropped; the next diff starts at lastUpdateId+1."""
    s = BookSync()
    diff(s, 1, 4, [["99", "9"]])
    diff(s, 5, 8, [["99", "8"]])
    assert snap(s, 8).action is Action.SNAPSHOT_LOADED
    assert not s.in_sync
    assert s.top(1).in_sync is False
    assert s.top(1).bids == (("100", "1"),)  # the loaded book is visible, flagged not in sync
    d = diff(s, 9, 11, [["100", "7"]])
    assert d == Decision(Action.SYNCED, updated=True)
    assert s.in_sync
    assert s.book.best_bid() == ("100", "7")
    assert s.book.bid_qty("99") == "2"


@pytest.mark.parametrize(
    ("diffs", "action", "state", "gaps", "too_old"),
    [
        # bridging: U <= id+1 <= u
        ([(8, 12)], Action.SYNCED, SyncState.SYNCED, 0, 0),
        ([(11, 11)], Action.SYNCED, SyncState.SYNCED, 0, 0),
        ([(10, 10)], Action.IGNORED_STALE, SyncState.AWAITING_BRIDGE, 0, 0),  # u <= lastUpdateId: drop
        ([(3, 10), (11, 12)], Action.SYNCED, SyncState.SYNCED, 0, 0),
        # first diff after the snapshot starts past id+1 and nothing was seen: snapshot too old
        ([(12, 15)], Action.SNAPSHOT_TOO_OLD, SyncState.AWAITING_SNAPSHOT, 0, 1),
        # a diff was seen (stale) and the next skips ids: a gap in the stream
        ([(9, 10), (12, 15)], Action.GAP_DETECTED, SyncState.AWAITING_SNAPSHOT, 1, 0),
    ],
)
def test_awaiting_bridge(
    diffs: list[tuple[int, int]], action: Action, state: SyncState, gaps: int, too_old: int
) -> None:
    s = BookSync()
    assert snap(s, 10).action is Action.SNAPSHOT_LOADED
    for first, last in diffs:
        d = diff(s, first, last)
    assert d.action is action
    assert s.state is state
    assert (s.counters.gaps, s.counters.snapshots_too_old) == (gaps, too_old)
    if state is SyncState.AWAITING_SNAPSHOT:
        assert d.request_snapshot
        assert d.resync
        assert s.buffered == 1  # the diff that revealed the problem starts the new buffer
        assert len(s.book) == 0


def test_snapshot_while_awaiting_bridge_is_ignored() -> None:
    s = BookSync()
    snap(s, 10)
    assert snap(s, 20) == Decision(Action.SNAPSHOT_IGNORED)
    assert s.last_update_id == 10
    assert s.counters.snapshots_ignored == 1


def test_unsolicited_snapshot_before_any_diff_is_used() -> None:
    s = BookSync()
    assert snap(s, 10).action is Action.SNAPSHOT_LOADED
    assert diff(s, 11, 11).action is Action.SYNCED


def test_snapshot_failed() -> None:
    s = BookSync()
    assert s.on_snapshot_failed() == Decision(Action.SNAPSHOT_FAILED)  # nothing buffered yet
    diff(s, 1, 1)
    assert s.snapshot_outstanding
    assert s.on_snapshot_failed() == Decision(Action.REQUEST_SNAPSHOT, request_snapshot=True)
    assert s.snapshot_outstanding
    assert s.counters.snapshots_requested == 2


def test_malformed_snapshot_rejected() -> None:
    s = BookSync()
    diff(s, 1, 3)
    d = s.on_snapshot(2, [["1e5", "1"]], [])
    assert d == Decision(Action.MALFORMED, request_snapshot=True)
    assert s.state is SyncState.AWAITING_SNAPSHOT
    assert len(s.book) == 0
    assert s.buffered == 1
    assert snap(s, 2).action is Action.SYNCED


# --------------------------------------------------------------------------- in sync
@pytest.mark.parametrize(
    ("first", "last", "action", "book_id"),
    [
        (11, 11, Action.APPLIED, 11),  # U == id + 1
        (11, 15, Action.APPLIED, 15),
        (8, 12, Action.APPLIED, 12),  # overlapping: U <= id+1 <= u is fine
        (10, 10, Action.APPLIED, 10),  # u == id: re-delivery; absolute quantities, idempotent
        (5, 9, Action.IGNORED_STALE, 10),  # u < id
        (9, 9, Action.IGNORED_STALE, 10),
        (12, 13, Action.GAP_DETECTED, None),  # U > id + 1: missed id 11
    ],
)
def test_update_procedure(first: int, last: int, action: Action, book_id: int | None) -> None:
    s = synced(10)
    d = diff(s, first, last, [["100", "5"]])
    assert d.action is action
    assert s.last_update_id == book_id
    if action is Action.APPLIED:
        assert d == Decision(Action.APPLIED, updated=True)
        assert s.book.best_bid() == ("100", "5")
        assert s.last_event_time == 1_000 + last
    elif action is Action.IGNORED_STALE:
        assert d == Decision(Action.IGNORED_STALE)
        assert s.book.best_bid() == ("100", "1")
        assert s.counters.stale_dropped == 1
    else:
        assert d == Decision(Action.GAP_DETECTED, request_snapshot=True, resync=True)
        assert s.state is SyncState.AWAITING_SNAPSHOT
        assert (s.counters.gaps, s.counters.resyncs) == (1, 1)
        assert s.last_resync is Action.GAP_DETECTED
        assert s.buffered == 1


def test_gap_resync_then_recover() -> None:
    s = synced(10)
    diff(s, 11, 12)
    d = diff(s, 14, 16, [["100", "9"]])
    assert d.request_snapshot
    assert diff(s, 17, 18) == Decision(Action.BUFFERED)
    assert snap(s, 16).action is Action.SYNCED  # [14..16] dropped, [17..18] bridges
    assert s.last_update_id == 18
    assert s.book.best_bid() == ("100", "1")  # from the new snapshot; the gap diff was dropped


def test_gap_resync_then_snapshot_bridged_by_gap_diff() -> None:
    s = synced(10)
    diff(s, 14, 16, [["100", "9"]])
    assert snap(s, 15).action is Action.SYNCED  # the diff that revealed the gap bridges 15
    assert s.book.best_bid() == ("100", "9")


def test_crossed_book_resyncs() -> None:
    s = synced(10)
    d = diff(s, 11, 11, [["101.5", "1"]])
    assert d == Decision(Action.CROSSED_BOOK, request_snapshot=True, resync=True)
    assert s.state is SyncState.AWAITING_SNAPSHOT
    assert s.counters.crossed_books == 1
    assert s.last_resync is Action.CROSSED_BOOK
    assert len(s.book) == 0


def test_crossed_book_when_bridging() -> None:
    s = BookSync()
    diff(s, 5, 12, [["102", "1"]])
    d = snap(s, 10)
    assert d == Decision(Action.CROSSED_BOOK, request_snapshot=True, resync=True)
    assert s.state is SyncState.AWAITING_SNAPSHOT


def test_malformed_diff_resyncs() -> None:
    s = synced(10)
    d = diff(s, 11, 11, [["abc", "1"]])
    assert d == Decision(Action.MALFORMED, request_snapshot=True, resync=True)
    assert s.counters.malformed == 1
    assert s.buffered == 0


def test_only_one_fetch_outstanding() -> None:
    s = synced(10)
    assert diff(s, 13, 13).request_snapshot  # gap
    assert diff(s, 15, 16) == Decision(Action.GAP_DETECTED)  # gap in the buffer: fetch outstanding
    assert s.counters.snapshots_requested == 1
    assert snap(s, 14) == Decision(Action.SNAPSHOT_TOO_OLD, request_snapshot=True)  # 14 < U 15
    assert snap(s, 15).action is Action.SYNCED
    assert s.counters.snapshots_requested == 2


def test_reset() -> None:
    s = synced(10)
    assert s.reset() == Decision(Action.RESET, resync=True)
    assert s.state is SyncState.AWAITING_SNAPSHOT
    assert s.last_update_id is None
    assert s.last_resync is Action.RESET
    assert s.reset() == Decision(Action.RESET)  # nothing to discard
    assert diff(s, 100, 101).request_snapshot
    assert snap(s, 100).action is Action.SYNCED


def test_counters_and_event_time() -> None:
    s = BookSync()
    diff(s, 1, 3, [["100", "1"]], [["101", "1"]])
    snap(s, 2)
    diff(s, 4, 5, [["99", "1"]])
    diff(s, 1, 2)
    c = s.counters
    assert (c.diffs_applied, c.levels_applied, c.stale_dropped, c.snapshots_loaded) == (2, 3, 1, 1)
    assert s.last_event_time == 1_005
    top = s.top(2)
    assert (top.last_update_id, top.event_time, top.in_sync) == (5, 1_005, True)
    assert top.bids == (("100", "1"), ("99", "1"))


# --------------------------------------------------------------------------- depth bounds
def test_truncated_snapshot_bounds_the_book() -> None:
    s = BookSync(snapshot_limit=3, refresh_depth=0)
    snap(s, 10)
    top = s.top(5)
    assert (top.bid_floor, top.ask_ceiling) == ("98.00000000", "103.00000000")
    diff(s, 11, 11, [["97", "1"], ["98.5", "1"]], [["104", "1"], ["101.5", "1"]])
    assert s.book.bids() == [("100", "1"), ("99", "2"), ("98.5", "1"), ("98", "3")]
    assert s.book.asks() == [("101", "1"), ("101.5", "1"), ("102", "2"), ("103", "3")]


def test_complete_snapshot_side_is_not_bounded() -> None:
    s = BookSync(snapshot_limit=4)  # 3 levels < limit: the side is complete
    snap(s, 10)
    assert (s.book.bid_floor, s.book.ask_ceiling) == (None, None)
    diff(s, 11, 11, [["50", "1"]])
    assert s.book.worst_bid() == ("50", "1")


def test_unbounded_when_limit_is_none() -> None:
    s = BookSync(snapshot_limit=None)
    snap(s, 10, [[str(100 - i), "1"] for i in range(5000)], [["101", "1"]])
    assert s.book.bid_floor is None


def test_thin_bounded_side_requests_refresh() -> None:
    s = BookSync(snapshot_limit=3, refresh_depth=3)
    snap(s, 10)
    assert diff(s, 11, 11).action is Action.SYNCED
    d = diff(s, 12, 12, [["100", "0"]])  # 2 bids left in the known region
    assert d == Decision(Action.REFRESH_DEPTH, request_snapshot=True, updated=True)
    assert s.counters.depth_refreshes == 1
    assert diff(s, 13, 13, [["99", "0"]]) == Decision(Action.APPLIED, updated=True)  # already asked
    # the refresh snapshot (taken at 12, delivered at 13) re-bounds the book around the price
    d = s.on_snapshot(12, [["99", "2"], ["98", "3"], ["97", "4"]], SNAP_ASKS)
    assert d == Decision(Action.AUDIT_OK, updated=True)
    assert s.book.bids() == [("98", "3"), ("97", "4")]  # 99 deleted at 13 (re-applied), 97 filled
    assert s.book.bid_floor == "97.00000000"
    assert s.in_sync


def test_refresh_when_bridging_diff_thins_the_book() -> None:
    s = BookSync(snapshot_limit=3, refresh_depth=3)
    diff(s, 9, 11, [["100", "0"]])
    assert snap(s, 10) == Decision(Action.SYNCED, request_snapshot=True, updated=True)
    s2 = BookSync(snapshot_limit=3, refresh_depth=3)
    snap(s2, 10)
    assert diff(s2, 11, 11, [["100", "0"]]) == Decision(Action.SYNCED, request_snapshot=True, updated=True)


# --------------------------------------------------------------------------- audit
def audited(**kw: int | None) -> BookSync:
    s = synced(10, **kw)
    assert s.request_audit() == Decision(Action.REQUEST_SNAPSHOT, request_snapshot=True)
    assert s.snapshot_outstanding
    return s


def test_audit_ok_with_snapshot_behind_the_book() -> None:
    s = audited()
    diff(s, 11, 11, [["100", "4"]])
    diff(s, 12, 14, [["99", "0"]], [["101", "0"]])
    # taken at 11 (after the first diff), delivered at 14: advanced by re-applying [12..14]
    d = s.on_snapshot(11, [["100", "4"], ["99", "2"], ["98", "3"]], SNAP_ASKS)
    assert d == Decision(Action.AUDIT_OK, updated=True)
    assert s.counters.audits_ok == 1
    assert s.last_audit_mismatches == []
    assert not s.snapshot_outstanding
    assert s.book.bids() == [("100", "4"), ("98", "3")]


def test_audit_snapshot_spanned_by_a_diff() -> None:
    s = audited()
    diff(s, 11, 15, [["100", "4"]])
    # taken at 13, inside [11..15]: advanced by re-applying that whole diff
    assert s.on_snapshot(13, [["100", "3"], ["99", "2"], ["98", "3"]], SNAP_ASKS).action is Action.AUDIT_OK


def test_audit_at_the_book_id_needs_no_recording() -> None:
    s = synced(10)
    assert snap(s, 10) == Decision(Action.AUDIT_OK, updated=True)


def test_audit_behind_without_recording_is_inconclusive() -> None:
    s = synced(10)
    diff(s, 11, 12)
    assert snap(s, 11) == Decision(Action.AUDIT_INCONCLUSIVE)
    assert s.counters.audits_inconclusive == 1
    assert s.in_sync


def test_audit_recording_overflow_is_inconclusive() -> None:
    s = audited(audit_history=2)
    for i in range(11, 15):
        diff(s, i, i)
    assert snap(s, 11) == Decision(Action.AUDIT_INCONCLUSIVE)


def test_audit_snapshot_ahead_is_checked_when_the_book_reaches_it() -> None:
    s = audited()
    diff(s, 11, 11)
    d = s.on_snapshot(13, [["100", "6"], ["99", "2"], ["98", "3"]], SNAP_ASKS)
    assert d == Decision(Action.AUDIT_PENDING)
    assert diff(s, 12, 12) == Decision(Action.APPLIED, updated=True)
    assert s.counters.audits_ok == 0
    assert diff(s, 13, 14, [["100", "7"]]) == Decision(Action.APPLIED, updated=True)
    assert s.counters.audits_ok == 1
    assert s.book.best_bid() == ("100", "7")


def test_audit_pending_mismatch_resyncs_in_on_diff() -> None:
    s = synced(10)
    assert snap(s, 12, [["100", "6"], ["99", "2"], ["98", "3"]]).action is Action.AUDIT_PENDING
    d = diff(s, 11, 12)  # the book still says 100 -> 1: it missed a change
    assert d == Decision(Action.AUDIT_MISMATCH, request_snapshot=True, resync=True)
    assert s.counters.audits_failed == 1
    assert s.buffered == 1
    assert s.last_resync is Action.AUDIT_MISMATCH


@pytest.mark.parametrize(
    ("bids", "asks"),
    [
        ([["100", "1"], ["99", "2"], ["98", "3.5"]], SNAP_ASKS),  # quantity differs
        ([["100", "1"], ["99", "2"]], SNAP_ASKS),  # level missing in the exchange's book
        ([["100", "1"], ["99.5", "1"], ["99", "2"], ["98", "3"]], SNAP_ASKS),  # level the book lacks
        (SNAP_BIDS, [["101", "1"], ["102", "2"], ["104", "3"]]),
    ],
)
def test_audit_mismatch_within_depth_resyncs(bids: L, asks: L) -> None:
    s = synced(10, snapshot_limit=None)
    d = s.on_snapshot(10, bids, asks)
    assert d == Decision(Action.AUDIT_MISMATCH, request_snapshot=True, resync=True)
    assert s.last_audit_mismatches
    assert s.state is SyncState.AWAITING_SNAPSHOT


def test_audit_ignores_and_prunes_levels_outside_snapshot_depth() -> None:
    s = synced(10, snapshot_limit=2, refresh_depth=0)
    # the first snapshot had 3 levels a side, >= the limit of 2: truncated, bounded at 98 / 103
    assert s.book.bid_floor == "98.00000000"
    # an audit snapshot of 2 levels a side: the book's 98 and 103 lie outside it
    d = s.on_snapshot(10, [["100", "1"], ["99", "2"]], [["101", "1"], ["102", "2"]])
    assert d == Decision(Action.AUDIT_OK, updated=True)
    assert s.book.bids() == [("100", "1"), ("99", "2")]
    assert s.book.asks() == [("101", "1"), ("102", "2")]
    assert (s.book.bid_floor, s.book.ask_ceiling) == ("99.00000000", "102.00000000")


def test_audit_compares_only_within_the_books_known_depth() -> None:
    s = synced(10, snapshot_limit=3, refresh_depth=0)
    assert s.book.bid_floor == "98.00000000"
    # the exchange's snapshot reaches deeper than the book knows: compared down to 98 only,
    # then the deeper levels are filled in
    bids = [["100", "1"], ["99", "2"], ["98", "3"], ["97", "4"], ["96", "5"]]
    assert s.on_snapshot(10, bids, SNAP_ASKS) == Decision(Action.AUDIT_OK, updated=True)
    assert s.book.worst_bid() == ("96", "5")
    assert s.book.bid_floor == "96.00000000"


def test_audit_of_complete_side_sees_missing_deep_levels() -> None:
    s = synced(10, snapshot_limit=5)  # 3 < 5 levels: the book's sides were complete
    bids = [["100", "1"], ["99", "2"], ["98", "3"], ["97", "4"], ["96", "5"]]
    assert s.on_snapshot(10, bids, SNAP_ASKS).action is Action.AUDIT_MISMATCH


def test_audit_not_possible() -> None:
    s = BookSync()
    assert s.request_audit() == Decision(Action.AUDIT_NOT_POSSIBLE)
    s = synced(10, audit_history=0)
    assert s.request_audit() == Decision(Action.AUDIT_NOT_POSSIBLE)
    assert snap(s, 10) == Decision(Action.AUDIT_INCONCLUSIVE)
    s = audited()
    assert s.request_audit() == Decision(Action.AUDIT_NOT_POSSIBLE)  # one already outstanding


def test_audit_fetch_failure_stops_recording() -> None:
    s = audited()
    assert s.on_snapshot_failed() == Decision(Action.SNAPSHOT_FAILED)
    diff(s, 11, 12)
    assert snap(s, 11) == Decision(Action.AUDIT_INCONCLUSIVE)
    assert s.request_audit().request_snapshot


def test_audit_fetch_outstanding_during_resync_serves_as_sync_snapshot() -> None:
    s = audited()
    d = diff(s, 12, 13)  # gap: resync, but a fetch is already under way
    assert d == Decision(Action.GAP_DETECTED, resync=True)
    assert snap(s, 12).action is Action.SYNCED


def test_second_audit_snapshot_replaces_a_pending_one() -> None:
    s = audited()
    assert snap(s, 12).action is Action.AUDIT_PENDING
    assert snap(s, 10).action is Action.AUDIT_OK  # at the book's id: checked at once
    diff(s, 11, 12, [["100", "9"]])  # the older pending snapshot (100 -> 1 at 12) is gone
    assert (s.counters.audits_ok, s.counters.audits_failed) == (1, 0)
    assert s.in_sync
