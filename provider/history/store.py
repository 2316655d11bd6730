"""The LMDB history store: one environment in PROVIDER_DATA_DIR, one named database per kind.

Databases ``snapshots``, ``activity`` and ``trades`` map :mod:`provider.history.keys` keys
(symbol, big-endian minute) to one :mod:`provider.history.codec` value per symbol-minute; ``meta``
holds the format version. A write batch is one LMDB transaction: each touched minute is read,
merged with the new rows (same second or same agg trade id: the new one wins, so writes are
idempotent) and written back.

Durability: the environment uses LMDB's default durable commit (``sync`` and ``metasync`` on, no
``writemap``): a commit returns after its pages reached the disk, and LMDB's copy-on-write B-tree
never overwrites live pages, so a process killed at any point (kill -9) leaves the last committed
transaction intact. With the writer committing once a second, at most the last second is lost.
Stale reader slots of a killed process are cleared on open (``reader_check``).

Thread use: :meth:`write` and :meth:`enforce_retention` from one thread at a time (the writer
thread); the read methods from any thread (each uses its own short read transaction).

Reads of trades and activity keep each decoded minute in a bounded cache checked against the stored
bytes (:mod:`provider.history.cache`): reading the same hour again skips decoding, and the answers
are always what decoding the stored values gives.

Ranges are half-open, ``[start_ms, end_ms)``.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import lmdb
import numpy as np

from provider.history.arrays import ActivityArrays, SnapshotArrays, TradeArrays
from provider.history.cache import BlockCache
from provider.history.codec import (
    ActivityRecord,
    Compression,
    SnapshotRecord,
    TradeRecord,
    activity_records_to_arrays,
    block_times,
    decode_activity,
    decode_activity_blocks,
    decode_snapshots,
    decode_trade_blocks,
    decode_trades,
    encode_activity,
    encode_snapshots,
    encode_trades,
    merge_activity,
    merge_snapshots,
    merge_trades,
    snapshot_arrays,
    snapshot_ints,
    snapshot_records,
    trade_ints,
)
from provider.history.keys import BLOCK_MS, block_key, block_start, parse_key, symbol_end, symbol_prefix

__all__ = [
    "DEFAULT_MAP_SIZE",
    "DEFAULT_READ_CACHE_BYTES",
    "DEFAULT_RETENTION_MS",
    "HistoryError",
    "HistoryStore",
    "Kind",
    "RetentionReport",
    "StoreStats",
    "SymbolRange",
    "WriteBatch",
]

DEFAULT_MAP_SIZE = 8 << 30  # address space only: the file grows with the data
DEFAULT_RETENTION_MS = 7 * 86_400_000
DEFAULT_READ_CACHE_BYTES = 64 << 20  # decoded trade and activity minutes (~16 h of BTCUSDT at ~100k trades/h)
_FORMAT = b"1"
_SIZE_CAP_SHARE = 0.8  # default cap: 80% of the map, so commits never hit MapFullError first
_MAX_EVICTION_ROUNDS = 64


class HistoryError(Exception):
    """The store cannot be used (wrong format, closed)."""


class Kind(Enum):
    SNAPSHOTS = "snapshots"
    ACTIVITY = "activity"
    TRADES = "trades"


@dataclass(frozen=True, slots=True)
class WriteBatch:
    """Records committed together in one transaction (any order, any symbols)."""

    snapshots: Sequence[SnapshotRecord] = ()
    activity: Sequence[ActivityRecord] = ()
    trades: Sequence[TradeRecord] = ()

    def __len__(self) -> int:
        return len(self.snapshots) + len(self.activity) + len(self.trades)


@dataclass(frozen=True, slots=True)
class RetentionReport:
    now_ms: int
    cutoff_ms: int  # whole minutes before this were deleted for age
    expired_blocks: int
    evicted_blocks: int  # minutes deleted, oldest first, to get under the size cap
    evicted_before_ms: int | None  # everything before this was deleted for size (None: nothing)
    used_bytes_before: int
    used_bytes_after: int
    max_bytes: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class SymbolRange:
    symbol: str
    kind: Kind
    first_ms: int  # time of the first stored row
    last_ms: int  # time of the last stored row


@dataclass(frozen=True, slots=True)
class StoreStats:
    path: str
    file_bytes: int  # data file on disk (LMDB never shrinks it; freed pages are reused)
    used_bytes: int  # pages holding live data: what the size cap limits
    max_bytes: int
    map_size: int
    retention_ms: int
    levels: int
    blocks: dict[str, int]  # stored symbol-minutes per kind
    ranges: tuple[SymbolRange, ...]
    last_retention: RetentionReport | None


_T = TypeVar("_T")
_Block = TypeVar("_Block", TradeArrays, ActivityArrays)  # a decoded minute of a kind the read cache keeps


def _by_block(records: Sequence[_T], symbol_of: Any, time_of: Any) -> dict[tuple[str, int], list[_T]]:
    groups: dict[tuple[str, int], list[_T]] = defaultdict(list)
    for r in records:
        groups[(symbol_of(r), block_start(time_of(r)))].append(r)
    return groups


class HistoryStore:
    """Recorded snapshots, activity bars and aggregate trades of every tracked symbol."""

    def __init__(
        self,
        path: Path,
        *,
        levels: int = 20,
        map_size: int = DEFAULT_MAP_SIZE,
        retention_ms: int = DEFAULT_RETENTION_MS,
        max_bytes: int | None = None,
        compression: Compression = Compression.ZSTD,
        durable: bool = True,
        read_cache_bytes: int = DEFAULT_READ_CACHE_BYTES,
    ) -> None:
        """
        :param levels: snapshot depth stored per side (deeper levels are dropped on write).
        :param max_bytes: size cap of the live data; default 80% of ``map_size``.
        :param durable: LMDB's synchronous commits. ``False`` (no fsync) only for benchmarks.
        :param read_cache_bytes: bound of the decoded minutes that :meth:`trades` and :meth:`activity`
            keep for the next read (0: none; see :mod:`provider.history.cache`).
        """
        if levels < 1:
            raise ValueError("levels must be >= 1")
        if retention_ms <= 0:
            raise ValueError("retention_ms must be > 0")
        self.path = Path(path)
        self.levels = levels
        self.retention_ms = retention_ms
        self.max_bytes = int(map_size * _SIZE_CAP_SHARE) if max_bytes is None else max_bytes
        self.compression = compression
        self.path.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(
            str(self.path), map_size=map_size, max_dbs=4, sync=durable, metasync=durable, writemap=False
        )
        self._env.reader_check()  # reader slots left behind by a killed process
        self._dbs = {kind: self._env.open_db(kind.value.encode()) for kind in Kind}
        self._meta = self._env.open_db(b"meta")
        self._closed = False
        self._read_cache: BlockCache[TradeArrays | ActivityArrays] = BlockCache(read_cache_bytes, _nbytes)
        self.last_retention: RetentionReport | None = None
        with self._env.begin(write=True) as txn:
            found = txn.get(b"format", db=self._meta)
            if found is None:
                txn.put(b"format", _FORMAT, db=self._meta)
            elif found != _FORMAT:
                self._env.close()
                raise HistoryError(f"{self.path}: history format {found!r}, this code reads {_FORMAT!r}")

    # ------------------------------------------------------------------------------- writes
    def write(self, batch: WriteBatch) -> None:
        """Commit ``batch`` in one transaction (durable when this returns)."""
        self._check_open()
        with self._env.begin(write=True) as txn:
            db = self._dbs[Kind.SNAPSHOTS]
            for (symbol, block), snaps in _by_block(batch.snapshots, _symbol, _time).items():
                key = block_key(symbol, block)
                old = txn.get(key, db=db)
                rows = snapshot_ints(snaps, self.levels)
                if old is not None:
                    rows = merge_snapshots(decode_snapshots([old]), rows)
                else:
                    rows = merge_snapshots(rows.take(slice(0, 0)), rows)  # sorts, drops repeats
                txn.put(key, encode_snapshots(rows, self.compression), db=db)
            db = self._dbs[Kind.ACTIVITY]
            for (symbol, block), bars in _by_block(batch.activity, _symbol, _time).items():
                key = block_key(symbol, block)
                old = txn.get(key, db=db)
                base = ActivityArrays.empty() if old is None else decode_activity([old])
                merged = merge_activity(base, activity_records_to_arrays(bars))
                txn.put(key, encode_activity(merged, self.compression), db=db)
            db = self._dbs[Kind.TRADES]
            for (symbol, block), trades in _by_block(batch.trades, _symbol, _time).items():
                key = block_key(symbol, block)
                old = txn.get(key, db=db)
                new = trade_ints(trades)
                tape = merge_trades(new.take(slice(0, 0)) if old is None else decode_trades([old]), new)
                txn.put(key, encode_trades(tape, self.compression), db=db)

    # -------------------------------------------------------------------------------- reads
    def snapshots(self, symbol: str, start_ms: int, end_ms: int, levels: int | None = None) -> SnapshotArrays:
        """Snapshots with ``start_ms <= time_ms < end_ms`` as float arrays of ``levels`` (default: stored) columns."""
        rows = decode_snapshots(self._values(Kind.SNAPSHOTS, symbol, start_ms, end_ms))
        rows = rows.take(_window(rows.time_ms, start_ms, end_ms))
        return snapshot_arrays(rows, self.levels if levels is None else levels)

    def snapshot_records(
        self, symbol: str, start_ms: int, end_ms: int, levels: int | None = None
    ) -> list[SnapshotRecord]:
        """Snapshots in ``[start_ms, end_ms)`` with decimal strings (8 decimals), at most ``levels`` a side.

        Builds a list: stream a long range in pieces (e.g. an hour at a time).
        """
        rows = decode_snapshots(self._values(Kind.SNAPSHOTS, symbol, start_ms, end_ms))
        rows = rows.take(_window(rows.time_ms, start_ms, end_ms))
        records = snapshot_records(symbol, rows)
        if levels is not None:
            records = [
                SnapshotRecord(r.symbol, r.time_ms, r.last_update_id, r.bids[:levels], r.asks[:levels]) for r in records
            ]
        return records

    def activity(self, symbol: str, start_ms: int, end_ms: int) -> ActivityArrays:
        """Bars with ``start_ms <= time_ms < end_ms``; minutes decoded before come from the read cache."""
        blocks = self._cached_blocks(Kind.ACTIVITY, symbol, start_ms, end_ms, ActivityArrays, decode_activity_blocks)
        return _joined(ActivityArrays, blocks, start_ms, end_ms)

    def trades(self, symbol: str, start_ms: int, end_ms: int) -> TradeArrays:
        """Trades with ``start_ms <= time_ms < end_ms``; minutes decoded before come from the read cache."""
        blocks = self._cached_blocks(Kind.TRADES, symbol, start_ms, end_ms, TradeArrays, decode_trade_blocks)
        return _joined(TradeArrays, blocks, start_ms, end_ms)

    def last_trade_id(self, symbol: str) -> int | None:
        """The newest stored agg trade id of ``symbol`` (backfill resumes after it), None if none."""
        self._check_open()
        with self._env.begin(db=self._dbs[Kind.TRADES]) as txn:
            cursor = txn.cursor()
            # The symbol's last key is just before the first key past it (or the last key of all).
            found = cursor.prev() if cursor.set_range(symbol_end(symbol)) else cursor.last()
            if not found or not cursor.key().startswith(symbol_prefix(symbol)):
                return None
            trades = decode_trades([cursor.value()])
        return int(trades.agg_id.max())

    def gaps(self, symbol: str, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """Windows ``(start_ms, end_ms)`` within the range whose seconds hold no snapshot.

        A second is recorded when a snapshot's time falls in it. Windows are clipped to the range;
        the still-unflushed current second of a live symbol shows as a gap until it is written.
        """
        if end_ms <= start_ms:
            return []
        first_s, last_s = start_ms // 1000, (end_ms - 1) // 1000
        present = np.zeros(last_s - first_s + 1, np.bool_)
        for value in self._values(Kind.SNAPSHOTS, symbol, start_ms, end_ms):
            s = block_times(value) // 1000  # a second is recorded even if its snapshot is outside the range
            present[s[(s >= first_s) & (s <= last_s)] - first_s] = True
        edges = np.diff(np.concatenate(([1], present.view(np.int8), [1])))
        starts = np.flatnonzero(edges == -1)
        ends = np.flatnonzero(edges == 1)
        return [
            (max(start_ms, (first_s + int(a)) * 1000), min(end_ms, (first_s + int(b)) * 1000))
            for a, b in zip(starts, ends, strict=True)
        ]

    # ---------------------------------------------------------------------------- retention
    def enforce_retention(self, now_ms: int) -> RetentionReport:
        """Delete minutes older than the retention, then the oldest minutes until under ``max_bytes``."""
        self._check_open()
        t0 = time.perf_counter()
        before = self.used_bytes()
        cutoff = block_start(max(0, now_ms - self.retention_ms))
        with self._env.begin(write=True) as txn:
            expired = self._delete_before(txn, cutoff)
        evicted = 0
        evicted_before: int | None = None
        used = self.used_bytes()
        for _ in range(_MAX_EVICTION_ROUNDS):
            if used <= self.max_bytes:
                break
            span = self._time_span()
            if span is None:
                break
            oldest, newest = span
            # Delete the share of the time span that matches the excess, at least one minute.
            share = (used - self.max_bytes) / used
            step = max(BLOCK_MS, math.ceil((newest - oldest) * share / BLOCK_MS) * BLOCK_MS)
            evicted_before = oldest + step
            with self._env.begin(write=True) as txn:
                evicted += self._delete_before(txn, evicted_before)
            used = self.used_bytes()
        report = RetentionReport(
            now_ms=now_ms,
            cutoff_ms=cutoff,
            expired_blocks=expired,
            evicted_blocks=evicted,
            evicted_before_ms=evicted_before,
            used_bytes_before=before,
            used_bytes_after=used,
            max_bytes=self.max_bytes,
            duration_s=time.perf_counter() - t0,
        )
        self.last_retention = report
        return report

    def _delete_before(self, txn: Any, before_ms: int) -> int:
        """Delete every block starting before ``before_ms`` (a block start), all kinds and symbols."""
        deleted = 0
        for db in self._dbs.values():
            for symbol in list(self._symbols(txn, db)):
                limit = block_key(symbol, before_ms)
                cursor = txn.cursor(db=db)
                doomed = []
                if cursor.set_range(symbol_prefix(symbol)):
                    for key in cursor.iternext(keys=True, values=False):
                        if key >= limit:
                            break
                        doomed.append(key)
                for key in doomed:
                    txn.delete(key, db=db)
                deleted += len(doomed)
        return deleted

    def _time_span(self) -> tuple[int, int] | None:
        """(oldest block start, newest block start) over every kind and symbol."""
        firsts, lasts = [], []
        with self._env.begin() as txn:
            for db in self._dbs.values():
                for _symbol, first, last, _, _ in self._block_ranges(txn, db):
                    firsts.append(first)
                    lasts.append(last)
        return (min(firsts), max(lasts)) if firsts else None

    # -------------------------------------------------------------------------------- stats
    def used_bytes(self) -> int:
        with self._env.begin() as txn:
            stats = [txn.stat(db) for db in (*self._dbs.values(), self._meta)]
        main = self._env.stat()
        pages = sum(s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"] for s in [*stats, main])
        return int(pages * main["psize"])

    def stats(self) -> StoreStats:
        """Sizes, blocks per kind and each symbol's first/last row time per kind (for health details)."""
        self._check_open()
        ranges = []
        blocks = {}
        with self._env.begin() as txn:
            for kind, db in self._dbs.items():
                blocks[kind.value] = int(txn.stat(db)["entries"])
                for symbol, _, _, first_v, last_v in self._block_ranges(txn, db):
                    if kind is Kind.TRADES:
                        t0, t1 = decode_trades([first_v]).time_ms[0], decode_trades([last_v]).time_ms[-1]
                    else:
                        t0, t1 = block_times(first_v)[0], block_times(last_v)[-1]
                    ranges.append(SymbolRange(symbol, kind, int(t0), int(t1)))
        data_file = self.path / "data.mdb"
        return StoreStats(
            path=str(self.path),
            file_bytes=data_file.stat().st_size if data_file.exists() else 0,
            used_bytes=self.used_bytes(),
            max_bytes=self.max_bytes,
            map_size=int(self._env.info()["map_size"]),
            retention_ms=self.retention_ms,
            levels=self.levels,
            blocks=blocks,
            ranges=tuple(ranges),
            last_retention=self.last_retention,
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._env.close()
            self._read_cache.clear()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ helpers
    def _check_open(self) -> None:
        if self._closed:
            raise HistoryError("history store is closed")

    def _values(self, kind: Kind, symbol: str, start_ms: int, end_ms: int) -> list[bytes]:
        """The values of every block that overlaps ``[start_ms, end_ms)``, in time order: one cursor scan."""
        return [value for _, value in self._items(kind, symbol, start_ms, end_ms)]

    def _items(self, kind: Kind, symbol: str, start_ms: int, end_ms: int) -> list[tuple[bytes, bytes]]:
        """``(key, value)`` of every block that overlaps ``[start_ms, end_ms)``, in time order."""
        self._check_open()
        if end_ms <= start_ms:
            return []
        lo, hi = block_key(symbol, max(0, start_ms)), block_key(symbol, end_ms - 1)
        out = []
        with self._env.begin(db=self._dbs[kind]) as txn:
            cursor = txn.cursor()
            if cursor.set_range(lo):
                for key, value in cursor.iternext():
                    if key > hi:
                        break
                    out.append((key, value))
        return out

    def _cached_blocks(
        self,
        kind: Kind,
        symbol: str,
        start_ms: int,
        end_ms: int,
        block_type: type[_Block],
        decode: Callable[[list[bytes]], list[_Block]],
    ) -> list[_Block]:
        """The decoded blocks overlapping the range, in time order: cached ones, the rest decoded together."""
        prefix = kind.value.encode() + b"/"  # one cache holds every kind
        items = [(prefix + key, value) for key, value in self._items(kind, symbol, start_ms, end_ms)]
        blocks: list[_Block | None] = []
        for key, value in items:
            hit = self._read_cache.get(key, value)
            blocks.append(hit if isinstance(hit, block_type) else None)
        missing = [i for i, block in enumerate(blocks) if block is None]
        for i, block in zip(missing, decode([items[i][1] for i in missing]), strict=True):
            self._read_cache.put(*items[i], block)
            blocks[i] = block
        return [b for b in blocks if b is not None]

    @staticmethod
    def _symbols(txn: Any, db: Any) -> Iterator[str]:
        cursor = txn.cursor(db=db)
        found = cursor.first()
        while found:
            symbol = parse_key(cursor.key())[0]
            yield symbol
            found = cursor.set_range(symbol_end(symbol))

    def _block_ranges(self, txn: Any, db: Any) -> Iterator[tuple[str, int, int, bytes, bytes]]:
        """(symbol, first block start, last block start, first value, last value) per symbol in ``db``."""
        cursor = txn.cursor(db=db)
        for symbol in list(self._symbols(txn, db)):
            cursor.set_range(symbol_prefix(symbol))
            first, first_value = parse_key(cursor.key())[1], cursor.value()
            if cursor.set_range(symbol_end(symbol)):
                cursor.prev()
            else:
                cursor.last()
            yield symbol, first, parse_key(cursor.key())[1], first_value, cursor.value()


def _symbol(r: SnapshotRecord | ActivityRecord | TradeRecord) -> str:
    return r.symbol


def _time(r: SnapshotRecord | ActivityRecord | TradeRecord) -> int:
    return r.time_ms


def _nbytes(block: TradeArrays | ActivityArrays) -> int:
    return sum(getattr(block, name).nbytes for name in type(block).__slots__)


def _joined(block_type: type[_Block], blocks: Sequence[_Block], start_ms: int, end_ms: int) -> _Block:
    """The rows of time-ordered ``blocks`` within ``[start_ms, end_ms)``, in new arrays (the blocks
    stay as they are: they may be cached)."""
    if not blocks:
        return block_type.empty()
    # Only the first and the last minute can reach outside the range: the ones between lie inside it.
    head = _window(blocks[0].time_ms, start_ms, end_ms)
    tail = _window(blocks[-1].time_ms, start_ms, end_ms)
    columns = {}
    for name in block_type.__slots__:
        parts = [getattr(b, name) for b in blocks]
        parts[0] = parts[0][head]
        if len(parts) > 1:
            parts[-1] = parts[-1][tail]
        columns[name] = np.concatenate(parts)
    return block_type(**columns)


def _window(times: np.ndarray[Any, Any], start_ms: int, end_ms: int) -> slice:
    """The rows of time-ordered ``times`` within ``[start_ms, end_ms)``."""
    return slice(int(np.searchsorted(times, start_ms, "left")), int(np.searchsorted(times, end_ms, "left")))
