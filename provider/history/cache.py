"""Decoded history blocks kept for the next read, checked against the stored bytes on every hit.

A block (one symbol-minute) is decoded by a pure function of its stored value, so a cached decode
is handed out again only for the very same bytes: a minute rewritten since (the current minute
every second, a backfill, a merge) is a miss and is decoded afresh, and nothing ever needs to be
invalidated. Comparing ~5 KB of bytes costs microseconds; decoding them (zstd and numpy) costs
~85 µs per minute of a busy BTCUSDT tape (~1,650 trades), which is most of reading an hour.

Bounded by ``max_bytes`` (the decoded arrays plus the kept values), least recently used first out.
Safe to use from several reader threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BlockCache"]

_T = TypeVar("_T")


class BlockCache(Generic[_T]):
    def __init__(self, max_bytes: int, size_of: Callable[[_T], int]) -> None:
        """
        :param max_bytes: bound of the cached decodes and their values; 0 caches nothing.
        :param size_of: bytes a decoded block holds.
        """
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._entries: OrderedDict[bytes, tuple[bytes, _T, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: bytes, value: bytes) -> _T | None:
        """The decode cached for ``key`` if it was made from exactly ``value``, else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != value:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: bytes, value: bytes, decoded: _T) -> None:
        """Keep ``decoded`` (made from ``value``) for ``key``, replacing what was kept for it."""
        size = len(value) + self._size_of(decoded)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            if size > self.max_bytes or not self.max_bytes:
                return
            self._entries[key] = (value, decoded, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, _, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def used_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
