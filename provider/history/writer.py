"""The async shell around :class:`HistoryStore`: records in from the event loop, commits off it.

``submit`` (event loop, never blocks) puts a record on a bounded queue; when the queue is full the
record is refused and counted. One thread owns every write: about once a second
(``flush_interval_s``) it drains the queue and commits everything in one transaction, so a crash
loses at most the records of the last interval. The same thread runs the scheduled retention job
(``retention_interval_s``), so retention never races a write. ``flush`` waits for a commit of
everything submitted before it; ``close`` flushes and stops the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import lmdb

from provider.history.codec import ActivityRecord, CodecError, SnapshotRecord, TradeRecord
from provider.history.store import HistoryError, HistoryStore, RetentionReport, WriteBatch

__all__ = ["HistoryWriteError", "HistoryWriter", "Record", "WriterStats"]

log = logging.getLogger(__name__)

Record = SnapshotRecord | ActivityRecord | TradeRecord


class HistoryWriteError(Exception):
    """A commit failed (its records are lost and counted in ``failed``)."""


@dataclass(frozen=True, slots=True)
class WriterStats:
    queued: int
    written: int  # records committed
    dropped: int  # records refused by submit: queue full or writer closed
    failed: int  # records lost with a failed commit
    flushes: int  # commits
    last_flush_ms: int | None  # wall clock of the last successful commit
    last_flush_duration_s: float | None
    max_flush_duration_s: float
    mean_flush_duration_s: float
    last_error: str | None
    last_retention: RetentionReport | None


class HistoryWriter:
    def __init__(
        self,
        store: HistoryStore,
        *,
        flush_interval_s: float = 1.0,
        max_queue: int = 100_000,
        retention_interval_s: float | None = 300.0,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        """
        :param retention_interval_s: how often the writer thread runs ``store.enforce_retention``
            (first at start-up); ``None`` never.
        """
        if flush_interval_s <= 0 or max_queue < 1:
            raise ValueError("flush_interval_s must be > 0 and max_queue >= 1")
        self._store = store
        self._interval = flush_interval_s
        self._retention_interval = retention_interval_s
        self._clock_ms = clock_ms
        self._queue: queue.Queue[Record] = queue.Queue(max_queue)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._stopped: asyncio.Future[None] | None = None
        # Counters: dropped is written on the loop thread only, the rest on the writer thread only.
        self._dropped = 0
        self._written = 0
        self._failed = 0
        self._flushes = 0
        self._flush_total_s = 0.0
        self._flush_max_s = 0.0
        self._last_flush_s: float | None = None
        self._last_flush_ms: int | None = None
        self._last_error: str | None = None

    async def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("writer already started")
        self._loop = asyncio.get_running_loop()
        self._stopped = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def submit(self, record: Record) -> bool:
        """Queue ``record`` for the next commit; False (and counted) when the queue is full or closed."""
        if self._closed:
            self._dropped += 1
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._dropped += 1
            return False
        return True

    async def flush(self) -> None:
        """Return once everything submitted before this call is committed (raises HistoryWriteError if not)."""
        if self._loop is None or self._stopped is None or self._stopped.done():
            raise RuntimeError("writer is not running")
        fut = self._loop.create_future()
        with self._lock:
            self._waiters.append(fut)
        self._wake.set()
        await fut

    async def close(self) -> None:
        """Refuse new records, commit what is queued, stop the thread."""
        self._closed = True
        if self._thread is None or self._stopped is None:
            return
        self._stopping = True
        self._wake.set()
        await asyncio.shield(self._stopped)
        self._thread.join()
        self._thread = None

    def stats(self) -> WriterStats:
        flushes = self._flushes
        return WriterStats(
            queued=self._queue.qsize(),
            written=self._written,
            dropped=self._dropped,
            failed=self._failed,
            flushes=flushes,
            last_flush_ms=self._last_flush_ms,
            last_flush_duration_s=self._last_flush_s,
            max_flush_duration_s=self._flush_max_s,
            mean_flush_duration_s=self._flush_total_s / flushes if flushes else 0.0,
            last_error=self._last_error,
            last_retention=self._store.last_retention,
        )

    # ------------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        next_retention = 0.0 if self._retention_interval is not None else float("inf")
        deadline = time.monotonic() + self._interval
        try:
            while True:
                if not self._stopping:
                    self._wake.wait(max(0.0, deadline - time.monotonic()))
                self._wake.clear()
                stopping = self._stopping
                with self._lock:  # taken before draining: all they wait for is in the queue now
                    waiters, self._waiters = self._waiters, []
                error = self._commit(self._drain())
                deadline = time.monotonic() + self._interval
                if time.monotonic() >= next_retention and self._retention_interval is not None:
                    next_retention = time.monotonic() + self._retention_interval
                    self._retention()
                self._resolve(waiters, error)
                if stopping and self._queue.empty():
                    break
        finally:
            self._resolve(self._take_waiters(), HistoryWriteError("writer stopped"))
            if self._stopped is not None:
                self._call(self._stopped, None)

    def _drain(self) -> list[Record]:
        records: list[Record] = []
        get = self._queue.get_nowait
        while True:
            try:
                records.append(get())
            except queue.Empty:
                return records

    def _commit(self, records: list[Record]) -> HistoryWriteError | None:
        if not records:
            return None
        batch = WriteBatch(
            snapshots=[r for r in records if isinstance(r, SnapshotRecord)],
            activity=[r for r in records if isinstance(r, ActivityRecord)],
            trades=[r for r in records if isinstance(r, TradeRecord)],
        )
        t0 = time.perf_counter()
        try:
            self._store.write(batch)
        except (lmdb.Error, HistoryError, CodecError, ValueError, OverflowError) as exc:
            # One bad record or a full map loses this commit, never the writer.
            self._failed += len(records)
            self._last_error = f"{type(exc).__name__}: {exc}"
            log.error("history commit of %d records failed: %s", len(records), self._last_error)
            return HistoryWriteError(self._last_error)
        took = time.perf_counter() - t0
        self._written += len(records)
        self._flushes += 1
        self._flush_total_s += took
        self._flush_max_s = max(self._flush_max_s, took)
        self._last_flush_s = took
        self._last_flush_ms = self._clock_ms()
        return None

    def _retention(self) -> None:
        try:
            report = self._store.enforce_retention(self._clock_ms())
        except (lmdb.Error, HistoryError) as exc:
            self._last_error = f"retention: {type(exc).__name__}: {exc}"
            log.error("history %s", self._last_error)
            return
        if report.expired_blocks or report.evicted_blocks:
            log.info(
                "history retention: %d minutes expired, %d evicted for size, %d -> %d bytes",
                report.expired_blocks,
                report.evicted_blocks,
                report.used_bytes_before,
                report.used_bytes_after,
            )

    def _take_waiters(self) -> list[asyncio.Future[None]]:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        return waiters

    def _resolve(self, waiters: list[asyncio.Future[None]], error: HistoryWriteError | None) -> None:
        for fut in waiters:
            self._call(fut, error)

    def _call(self, fut: asyncio.Future[None], error: BaseException | None) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, fut, error)


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():  # the waiter was cancelled
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)
