"""The book and the §8 rules, proven on real Binance recordings (../shared/data/binance-recorded/).

Oracle: a ``bookTicker`` carries the order book update id ``u`` of the best bid/ask it reports.
Whenever a diff's last id ``u`` equals a bookTicker's ``u``, the book right after that diff must show
exactly that best bid and ask, price and quantity. bookTicker is real-time while the diff stream is
batched every 100 ms, so the bookTicker usually arrives *before* the diff that ends at its ``u``:
tickers are held until the book reaches (checkpoint) or passes (not checkable) their id.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from exchange_sim.market.recorded import Record, RecordKind, read_recorded
from provider.sync import Action, BookSync, Decision, SyncState

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SHARED_DIR") or REPO / ".." / "shared")
DATA = SHARED / "data" / "binance-recorded"
BTC = DATA / "hftbacktest_spot_btcusdt_20240808.gz"
ETH = DATA / "hftbacktest_spot_ethusdt_20240808.gz"
CRYPTOFEED = DATA / "cryptofeed_BINANCE.jsonl.zst"

pytestmark = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"recorded data folder {DATA} is absent (set SHARED_DIR to the shared folder)"
)


@dataclass
class Oracle:
    """Checks a book against the bookTickers of its symbol."""

    allow_exhausted: bool = False  # bounded books: a side may have run out of known levels
    pending: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: int = 0
    exhausted: int = 0
    mismatches: list[str] = field(default_factory=list)

    def ticker(self, sync: BookSync, t: dict[str, Any]) -> None:
        book_id = sync.last_update_id
        if sync.in_sync and t["u"] == book_id:
            self._check(sync, t)
        elif book_id is None or t["u"] > book_id:
            self.pending.append(t)

    def book_moved(self, sync: BookSync) -> None:
        book_id = sync.last_update_id
        assert book_id is not None
        for t in self.pending:
            if t["u"] == book_id and sync.in_sync:
                self._check(sync, t)
        self.pending = [t for t in self.pending if t["u"] > book_id]

    def _check(self, sync: BookSync, t: dict[str, Any]) -> None:
        self.checkpoints += 1
        book = sync.book
        bid, ask = book.best_bid(), book.best_ask()
        if bid == (t["b"], t["B"]) and ask == (t["a"], t["A"]):
            return
        if self.allow_exhausted:
            # A bounded side may only be wrong by being empty, when the true best lies beyond the
            # region the book knows: it must never show a wrong level.
            floor, ceiling = book.bid_floor, book.ask_ceiling
            bid_ok = bid == (t["b"], t["B"]) or (bid is None and floor is not None and Decimal(t["b"]) < Decimal(floor))
            ask_ok = ask == (t["a"], t["A"]) or (
                ask is None and ceiling is not None and Decimal(t["a"]) > Decimal(ceiling)
            )
            if bid_ok and ask_ok:
                self.exhausted += 1
                return
        self.mismatches.append(f"u={t['u']}: book {bid} / {ask}, bookTicker {t}")


def feed(sync: BookSync, rec: Record) -> Decision | None:
    """Feed a depth record to the sync (None for other kinds)."""
    p = rec.payload
    if rec.kind is RecordKind.DEPTH_DIFF:
        return sync.on_diff(p["U"], p["u"], p["b"], p["a"], p["E"])
    if rec.kind is RecordKind.DEPTH_SNAPSHOT:
        return sync.on_snapshot(p["lastUpdateId"], p["bids"], p["asks"])
    return None


@dataclass
class Result:
    syncs: dict[str, BookSync]
    oracles: dict[str, Oracle]
    decisions: dict[str, list[tuple[Record, Decision]]]


def replay(
    path: Path,
    make: Callable[[str], BookSync],
    *,
    allow_exhausted: bool = False,
    hook: Callable[[str, Record, Decision], None] | None = None,
) -> Result:
    syncs: dict[str, BookSync] = {}
    oracles: dict[str, Oracle] = {}
    decisions: dict[str, list[tuple[Record, Decision]]] = {}
    for rec in read_recorded(path):
        if rec.symbol is None or rec.kind not in (
            RecordKind.DEPTH_DIFF,
            RecordKind.DEPTH_SNAPSHOT,
            RecordKind.BOOK_TICKER,
        ):
            continue
        sym = rec.symbol
        if sym not in syncs:
            syncs[sym] = make(sym)
            oracles[sym] = Oracle(allow_exhausted=allow_exhausted)
            decisions[sym] = []
        sync, oracle = syncs[sym], oracles[sym]
        if rec.kind is RecordKind.BOOK_TICKER:
            oracle.ticker(sync, rec.payload)
            continue
        d = feed(sync, rec)
        assert d is not None
        decisions[sym].append((rec, d))
        if d.updated:
            oracle.book_moved(sync)
        if hook is not None:
            hook(sym, rec, d)
    return Result(syncs, oracles, decisions)


# --------------------------------------------------------------------------- hftbacktest files
def test_btcusdt_bridging_diff_before_snapshot_matches_every_checkpoint() -> None:
    r = replay(BTC, lambda s: BookSync(s, snapshot_limit=None))
    sync, oracle = r.syncs["BTCUSDT"], r.oracles["BTCUSDT"]
    assert oracle.mismatches == []
    assert oracle.checkpoints == 564
    c = sync.counters
    assert (c.gaps, c.resyncs, c.crossed_books, c.snapshots_too_old) == (0, 0, 0, 0)
    assert c.snapshots_loaded == 1
    assert c.stale_dropped == 2  # the two buffered diffs wholly before lastUpdateId
    assert c.diffs_applied == 3449  # the bridging diff + every diff after the snapshot
    assert sync.state is SyncState.SYNCED
    # The bridging diff (U=50093239208, u=50093239224) arrived before the snapshot (lastUpdateId
    # 50093239218): buffered, then applied by the snapshot itself.
    decisions = r.decisions["BTCUSDT"]
    actions = [d.action for _, d in decisions[:4]]
    assert actions == [Action.REQUEST_SNAPSHOT, Action.BUFFERED, Action.BUFFERED, Action.SYNCED]
    snap_rec = decisions[3][0]
    assert snap_rec.kind is RecordKind.DEPTH_SNAPSHOT
    assert snap_rec.payload["lastUpdateId"] == 50093239218
    bridge = decisions[2][0].payload
    assert (bridge["U"], bridge["u"]) == (50093239208, 50093239224)
    assert all(d.action is Action.APPLIED for _, d in decisions[4:])
    assert sync.book.bid_count > 1000  # diffs add levels beyond the snapshot's 1000


def test_ethusdt_snapshot_first_then_diff_at_last_update_id_plus_one() -> None:
    r = replay(ETH, lambda s: BookSync(s, snapshot_limit=None))
    sync, oracle = r.syncs["ETHUSDT"], r.oracles["ETHUSDT"]
    assert oracle.mismatches == []
    assert oracle.checkpoints == 577
    c = sync.counters
    assert (c.gaps, c.resyncs, c.crossed_books, c.snapshots_too_old, c.snapshots_loaded) == (0, 0, 0, 0, 1)
    assert c.stale_dropped == 2  # every diff buffered before the snapshot is discarded
    decisions = r.decisions["ETHUSDT"]
    i = next(i for i, (rec, _) in enumerate(decisions) if rec.kind is RecordKind.DEPTH_SNAPSHOT)
    snap_rec, d = decisions[i]
    assert snap_rec.payload["lastUpdateId"] == 35346513512
    assert d.action is Action.SNAPSHOT_LOADED
    nxt, d = decisions[i + 1]
    assert nxt.payload["U"] == 35346513512 + 1
    assert d.action is Action.SYNCED
    assert c.diffs_applied == len(decisions) - i - 1


@pytest.mark.parametrize(("path", "sym"), [(BTC, "BTCUSDT"), (ETH, "ETHUSDT")])
def test_bounded_book_is_never_wrong(path: Path, sym: str) -> None:
    """Bounded at the 1000-level snapshot's depth, with nobody answering the refresh request: the
    book asks for a fresh snapshot as its known region thins, and never shows a level it does not
    know (in the BTCUSDT file the price falls through the bid bound: the bid side then runs empty)."""
    first_refresh: list[int] = []

    def hook(_: str, rec: Record, d: Decision) -> None:
        if d.action is Action.REFRESH_DEPTH and not first_refresh:
            first_refresh.append(rec.line_no)

    r = replay(path, lambda s: BookSync(s, snapshot_limit=1000), allow_exhausted=True, hook=hook)
    oracle, sync = r.oracles[sym], r.syncs[sym]
    assert oracle.mismatches == []
    assert oracle.checkpoints == {"BTCUSDT": 564, "ETHUSDT": 577}[sym]
    assert sync.counters.resyncs == 0
    worst_bid, worst_ask = sync.book.worst_bid(), sync.book.worst_ask()
    floor, ceiling = sync.book.bid_floor, sync.book.ask_ceiling
    assert floor is not None and ceiling is not None
    assert worst_bid is None or Decimal(worst_bid[0]) >= Decimal(floor)
    assert worst_ask is not None and Decimal(worst_ask[0]) <= Decimal(ceiling)
    if oracle.exhausted:
        assert first_refresh, "the book ran out of known levels without asking for a snapshot"
    if sym == "BTCUSDT":
        assert oracle.exhausted > 0  # the data does go beyond the first snapshot's bid depth
        assert sync.counters.depth_refreshes == 1


class Exchange:
    """Serves depth snapshots of the recorded symbol, cut (``limit`` levels a side) from a second,
    unbounded replay of the same file, at any diff index, ahead of the replay under test or behind it."""

    def __init__(self, path: Path, limit: int = 1000) -> None:
        self.records = [r for r in read_recorded(path) if r.kind in (RecordKind.DEPTH_DIFF, RecordKind.DEPTH_SNAPSHOT)]
        self.ref = BookSync(snapshot_limit=None)
        self.pos = 0
        self.limit = limit

    def snapshot_at(self, index: int) -> tuple[int, list[list[str]], list[list[str]]]:
        """The exchange's book right after depth record ``index``."""
        index = min(index, len(self.records) - 1)
        assert self.pos <= index + 1, "snapshots must be asked for in order"
        while self.pos <= index:
            feed(self.ref, self.records[self.pos])
            self.pos += 1
        assert self.ref.in_sync and self.ref.last_update_id is not None
        bids = [list(x) for x in self.ref.book.bids(self.limit)]
        asks = [list(x) for x in self.ref.book.asks(self.limit)]
        return self.ref.last_update_id, bids, asks


@pytest.mark.parametrize(("path", "sym"), [(BTC, "BTCUSDT"), (ETH, "ETHUSDT")])
@pytest.mark.parametrize(
    ("take", "deliver", "audit_every"),
    [
        (2, 5, 200),  # taken 2 diffs after the request, delivered after 5: advanced with recorded diffs
        (0, 0, 200),  # taken and delivered at once: exactly at the book's id
        (4, 1, 200),  # delivered before the book reaches its id: checked when it does (AUDIT_PENDING)
        (2, 5, None),  # no periodic audit: only the book's own REFRESH_DEPTH requests are answered
    ],
)
def test_bounded_book_refreshed_and_audited(
    path: Path, sym: str, take: int, deliver: int, audit_every: int | None
) -> None:
    """Refresh and periodic audit snapshots keep the bounded book matching every checkpoint; every
    audit passes. (The snapshots come from an unbounded replay, which the first test proves right at
    the top; deep levels are as good as the recording allows.)"""
    exchange = Exchange(path)
    sync = BookSync(sym, snapshot_limit=1000)
    oracle = Oracle()
    audits: Counter[Action] = Counter()
    index = -1  # depth records fed so far
    request: tuple[int, int] | None = None  # (take at, deliver at) depth record indexes
    for rec in read_recorded(path):
        if rec.kind is RecordKind.BOOK_TICKER:
            oracle.ticker(sync, rec.payload)
            continue
        if rec.kind not in (RecordKind.DEPTH_DIFF, RecordKind.DEPTH_SNAPSHOT):
            continue
        index += 1
        d = feed(sync, rec)
        assert d is not None
        if d.updated:
            oracle.book_moved(sync)
        if d.request_snapshot and sync.in_sync:
            assert request is None
            request = (index + take, index + deliver)
        elif audit_every and request is None and sync.in_sync and index % audit_every == 0:
            audit = sync.request_audit()
            assert audit == Decision(Action.REQUEST_SNAPSHOT, request_snapshot=True)
            request = (index + take, index + deliver)
        if request is not None and index == request[1]:
            delivered = sync.on_snapshot(*exchange.snapshot_at(request[0]))
            request = None
            audits[delivered.action] += 1
            assert not delivered.resync, sync.last_audit_mismatches
            if delivered.updated:
                oracle.book_moved(sync)
    assert oracle.mismatches == []
    assert oracle.checkpoints == {"BTCUSDT": 564, "ETHUSDT": 577}[sym]
    c = sync.counters
    assert (c.audits_failed, c.audits_inconclusive, c.resyncs) == (0, 0, 0)
    assert audits[Action.AUDIT_PENDING] == (c.audits_ok if deliver < take else 0)
    if audit_every:
        assert c.audits_ok >= 15  # re-bounded around the price every 200 diffs: never thin
    elif sym == "BTCUSDT":  # the price falls through the first snapshot's bid depth
        assert c.depth_refreshes >= 1
        assert c.audits_ok == c.depth_refreshes
        assert c.snapshots_requested == 1 + c.depth_refreshes


def test_audit_with_a_wrong_snapshot_resyncs_and_recovers() -> None:
    """A snapshot that disagrees within the depth makes the book resync at once; the next good
    snapshot brings it back, and the checkpoints after that still match."""
    exchange = Exchange(ETH)
    sync = BookSync("ETHUSDT", snapshot_limit=1000)
    oracle = Oracle()
    phase = "before"
    index = -1
    for rec in read_recorded(ETH):
        if rec.kind is RecordKind.BOOK_TICKER:
            oracle.ticker(sync, rec.payload)
            continue
        if rec.kind not in (RecordKind.DEPTH_DIFF, RecordKind.DEPTH_SNAPSHOT):
            continue
        index += 1
        d = feed(sync, rec)
        assert d is not None
        if d.updated:
            oracle.book_moved(sync)
        if phase == "before" and index == 1000:
            assert sync.in_sync
            snap_id, bids, asks = exchange.snapshot_at(index)
            bids[5][1] = str(Decimal(bids[5][1]) + 1)  # the 6th bid is wrong
            d = sync.on_snapshot(snap_id, bids, asks)
            assert d == Decision(Action.AUDIT_MISMATCH, request_snapshot=True, resync=True)
            assert [m.price for m in sync.last_audit_mismatches] == [bids[5][0]]
            assert sync.state is SyncState.AWAITING_SNAPSHOT
            resync_at = index
            phase = "resyncing"
        elif phase == "resyncing" and index == resync_at + 3:
            assert sync.state is SyncState.AWAITING_SNAPSHOT
            assert sync.buffered == 3
            d = sync.on_snapshot(*exchange.snapshot_at(index - 1))  # taken one diff ago
            assert d == Decision(Action.SYNCED, updated=True)
            oracle.book_moved(sync)
            phase = "after"
    assert phase == "after"
    assert sync.in_sync
    assert oracle.mismatches == []
    assert 560 <= oracle.checkpoints <= 577  # those while out of sync (if any) cannot be checked
    assert (sync.counters.audits_failed, sync.counters.resyncs) == (1, 1)


@pytest.mark.parametrize(("path", "sym"), [(BTC, "BTCUSDT"), (ETH, "ETHUSDT")])
def test_lost_and_repeated_diffs(path: Path, sym: str) -> None:
    """Faults injected into the real stream: lost diffs are gaps (resync at once, never a wrong
    answer), repeated or late diffs are harmless; snapshots are served 2 diffs after each request."""
    exchange = Exchange(path)
    sync = BookSync(sym, snapshot_limit=1000)
    oracle = Oracle()
    drop = {500, 501, 1500, 2500}  # depth record indexes never delivered (two gaps: 500-501 is one)
    index = -1
    request_at: int | None = None
    previous: list[Record] = []
    gap_decisions = 0
    for rec in read_recorded(path):
        if rec.kind is RecordKind.BOOK_TICKER:
            oracle.ticker(sync, rec.payload)
            continue
        if rec.kind not in (RecordKind.DEPTH_DIFF, RecordKind.DEPTH_SNAPSHOT):
            continue
        index += 1
        if index in drop:
            continue
        deliveries = [rec]
        if index % 300 == 0 and len(previous) >= 3:
            deliveries += [previous[-1], previous[-3]]  # a repeat and a late one
        for r in deliveries:
            d = feed(sync, r)
            assert d is not None
            if d.action is Action.GAP_DETECTED:
                gap_decisions += 1
                assert d.resync and d.request_snapshot and not sync.in_sync
            if d.request_snapshot and request_at is None and sync.counters.snapshots_loaded:
                request_at = index
            if d.updated:
                oracle.book_moved(sync)
        previous.append(rec)
        if request_at is not None and index == request_at + 2:
            request_at = None
            d = sync.on_snapshot(*exchange.snapshot_at(index - 1))
            if d.updated:
                oracle.book_moved(sync)
    c = sync.counters
    assert oracle.mismatches == []
    assert gap_decisions == c.gaps == 3
    assert c.resyncs == 3
    assert c.stale_dropped >= 2 * 10  # the late re-deliveries (plus drops by the snapshots)
    assert sync.in_sync
    assert oracle.checkpoints > {"BTCUSDT": 540, "ETHUSDT": 550}[sym]


# --------------------------------------------------------------------------- cryptofeed file
def test_cryptofeed_four_symbols() -> None:
    r = replay(CRYPTOFEED, lambda s: BookSync(s, snapshot_limit=None))
    assert set(r.syncs) == {"NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"}
    checkpoints = {s: o.checkpoints for s, o in r.oracles.items()}
    assert checkpoints == {"NKNUSDT": 19, "LRCBTC": 6, "BLZETH": 1, "RUNEEUR": 0}
    assert all(o.mismatches == [] for o in r.oracles.values())
    applied = {s: sync.counters.diffs_applied for s, sync in r.syncs.items()}
    assert applied == {"NKNUSDT": 149, "BLZETH": 9, "LRCBTC": 13, "RUNEEUR": 1}
    snapshot_ids = {s: d[0][0].payload["lastUpdateId"] for s, d in r.decisions.items()}
    assert snapshot_ids == {"NKNUSDT": 499869752, "BLZETH": 281916627, "LRCBTC": 259345543, "RUNEEUR": 15602511}
    for sync in r.syncs.values():
        assert sync.state is SyncState.SYNCED
        assert (sync.counters.gaps, sync.counters.resyncs) == (0, 0)
    # NKNUSDT: the snapshot comes first in the file; the diff ending exactly at lastUpdateId is
    # dropped and the next one starts at lastUpdateId + 1.
    nkn = r.decisions["NKNUSDT"]
    assert nkn[0][1].action is Action.SNAPSHOT_LOADED
    assert (nkn[1][0].payload["u"], nkn[1][1].action) == (499869752, Action.IGNORED_STALE)
    assert (nkn[2][0].payload["U"], nkn[2][1].action) == (499869753, Action.SYNCED)


def test_cryptofeed_bounded_books() -> None:
    r = replay(CRYPTOFEED, lambda s: BookSync(s, snapshot_limit=1000), allow_exhausted=True)
    assert all(o.mismatches == [] and o.exhausted == 0 for o in r.oracles.values())
    assert sum(o.checkpoints for o in r.oracles.values()) == 26
