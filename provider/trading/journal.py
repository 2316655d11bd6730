"""The order manager's memory of its placements, by client order id: kept on disk, so that a restart,
or a crash in the middle of a placement, does not forget an order that may be live on the exchange.

A record is written before the order request leaves (SENDING), then rewritten with what was learnt
(PLACED, UNKNOWN), or dropped when the exchange refused the order. A SENDING record found after a
restart means the provider stopped before it learnt the outcome. The order manager treats it as
UNKNOWN and asks the exchange before it sends that client order id again.

LMDB commits here without fsync: a record survives the provider's process (kill -9 included), not
a crash of the machine. The newest `capacity` records are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Final

import lmdb
import msgpack

DEFAULT_CAPACITY: Final = 10_000
_MAP_SIZE: Final = 64 << 20  # ~100 bytes a record: far more room than the capacity needs


class SentState(Enum):
    PLACED = 1  # the exchange confirmed the order
    UNKNOWN = 2  # the request may have executed; the exchange has not said
    SENDING = 3  # written before the request left; its outcome was never learnt


@dataclass(frozen=True, slots=True)
class SentRecord:
    state: SentState
    symbol: str
    since_ms: int


class PlacementJournal:
    """Client order id -> SentRecord, in memory and, given a directory, in LMDB there."""

    def __init__(self, path: Path | None = None, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the journal keeps at least one record")
        self._capacity = capacity
        self._records: OrderedDict[str, SentRecord] = OrderedDict()
        self._env: lmdb.Environment | None = None
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            self._env = lmdb.open(str(path), map_size=_MAP_SIZE, max_dbs=1, sync=False, metasync=False)
            self._env.reader_check()  # reader slots left behind by a killed process
            self._load()

    def _load(self) -> None:
        assert self._env is not None
        rows: list[tuple[int, str, SentRecord]] = []
        with self._env.begin() as txn:
            for key, value in txn.cursor():
                state, symbol, since_ms = msgpack.unpackb(value)
                rows.append((since_ms, bytes(key).decode(), SentRecord(SentState(state), symbol, since_ms)))
        for _, client_id, record in sorted(rows, key=lambda row: row[0]):  # oldest first, as they came
            self._records[client_id] = record
        self._write({}, self._evicted())

    def get(self, client_id: str) -> SentRecord | None:
        return self._records.get(client_id)

    def put(self, client_id: str, record: SentRecord) -> None:
        self._records[client_id] = record
        self._records.move_to_end(client_id)
        self._write({client_id: record}, self._evicted())

    def drop(self, client_id: str) -> None:
        if self._records.pop(client_id, None) is not None:
            self._write({}, [client_id])

    def _evicted(self) -> list[str]:
        """Forget the oldest records past the capacity; their ids."""
        evicted = []
        while len(self._records) > self._capacity:
            evicted.append(self._records.popitem(last=False)[0])
        return evicted

    def _write(self, records: dict[str, SentRecord], deleted: list[str]) -> None:
        """One LMDB transaction for a change of the records (nothing to do in memory only)."""
        if self._env is None or not (records or deleted):
            return
        with self._env.begin(write=True) as txn:
            for client_id, record in records.items():
                txn.put(client_id.encode(), msgpack.packb([record.state.value, record.symbol, record.since_ms]))
            for client_id in deleted:
                txn.delete(client_id.encode())

    def __len__(self) -> int:
        return len(self._records)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
