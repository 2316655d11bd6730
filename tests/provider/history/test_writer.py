"""HistoryWriter: bounded queue on the loop, one writer thread, flush / periodic commit / close."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from provider.history.store import HistoryStore, WriteBatch
from provider.history.writer import HistoryWriteError, HistoryWriter, Record
from tests.provider.history.test_codec import T0, make_bar, make_snapshot, make_trades


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[HistoryStore]:
    s = HistoryStore(tmp_path, map_size=64 << 20)
    yield s
    s.close()


async def test_flush_commits_everything_submitted_before_it(store: HistoryStore) -> None:
    # Only explicit flushes commit; no retention (the test data is from 2024: it would all expire).
    writer = HistoryWriter(store, flush_interval_s=60, retention_interval_s=None)
    await writer.start()
    try:
        snaps = [make_snapshot("BTCUSDT", T0 + 1000 * s) for s in range(90)]
        trades = make_trades("BTCUSDT", T0, 50)
        records: list[Record] = [*snaps, *trades, make_bar("BTCUSDT", T0)]
        for record in records:
            assert writer.submit(record)
        await asyncio.wait_for(writer.flush(), 10)
        assert store.snapshot_records("BTCUSDT", T0, T0 + 90_000) == snaps
        assert store.last_trade_id("BTCUSDT") == trades[-1].agg_id
        assert len(store.activity("BTCUSDT", T0, T0 + 1000)) == 1
        stats = writer.stats()
        assert (stats.written, stats.queued, stats.dropped, stats.failed) == (141, 0, 0, 0)
        assert stats.flushes == 1 and stats.last_flush_ms is not None and stats.max_flush_duration_s > 0
    finally:
        await asyncio.wait_for(writer.close(), 10)


async def test_commits_about_every_interval_without_being_asked(store: HistoryStore) -> None:
    writer = HistoryWriter(store, flush_interval_s=0.05, retention_interval_s=None)
    await writer.start()
    try:
        writer.submit(make_snapshot("ETHUSDT", T0))
        deadline = time.monotonic() + 10
        while not len(store.snapshots("ETHUSDT", T0, T0 + 1000)):
            assert time.monotonic() < deadline, "no periodic commit"
            await asyncio.sleep(0.01)
    finally:
        await asyncio.wait_for(writer.close(), 10)


async def test_a_full_queue_refuses_and_counts_without_blocking(store: HistoryStore) -> None:
    writer = HistoryWriter(store, flush_interval_s=60, max_queue=10, retention_interval_s=None)
    await writer.start()
    try:
        accepted = [writer.submit(make_snapshot("BTCUSDT", T0 + 1000 * s)) for s in range(25)]
        assert accepted == [True] * 10 + [False] * 15
        assert writer.stats().dropped == 15 and writer.stats().queued == 10
        await asyncio.wait_for(writer.flush(), 10)
        assert len(store.snapshots("BTCUSDT", T0, T0 + 60_000)) == 10
        assert writer.submit(make_snapshot("BTCUSDT", T0 + 50_000))  # room again
    finally:
        await asyncio.wait_for(writer.close(), 10)


async def test_close_commits_what_is_queued_and_refuses_more(store: HistoryStore) -> None:
    writer = HistoryWriter(store, flush_interval_s=60, retention_interval_s=None)
    await writer.start()
    for s in range(5):
        writer.submit(make_snapshot("BTCUSDT", T0 + 1000 * s))
    await asyncio.wait_for(writer.close(), 10)
    assert len(store.snapshots("BTCUSDT", T0, T0 + 60_000)) == 5
    assert not writer.submit(make_snapshot("BTCUSDT", T0 + 9000))
    assert writer.stats().dropped == 1
    with pytest.raises(RuntimeError):
        await writer.flush()
    await writer.close()  # twice is fine


async def test_a_failed_commit_is_counted_and_the_writer_goes_on(store: HistoryStore) -> None:
    writer = HistoryWriter(store, flush_interval_s=60, retention_interval_s=None)
    await writer.start()
    try:
        writer.submit(replace(make_snapshot("BTCUSDT", T0), asks=(("1", "not a number"),)))
        writer.submit(make_snapshot("BTCUSDT", T0 + 1000))
        with pytest.raises(HistoryWriteError, match="decimal"):
            await asyncio.wait_for(writer.flush(), 10)
        assert writer.stats().failed == 2 and "decimal" in (writer.stats().last_error or "")
        writer.submit(make_snapshot("BTCUSDT", T0 + 2000))
        await asyncio.wait_for(writer.flush(), 10)
        assert store.snapshots("BTCUSDT", T0, T0 + 60_000).time_ms.tolist() == [T0 + 2000]
    finally:
        await asyncio.wait_for(writer.close(), 10)


async def test_retention_runs_on_the_writer_thread_at_start(store: HistoryStore) -> None:
    store.write(WriteBatch(snapshots=[make_snapshot("BTCUSDT", T0)]))
    now = T0 + store.retention_ms + 10 * 60_000
    writer = HistoryWriter(store, flush_interval_s=0.02, retention_interval_s=3600, clock_ms=lambda: now)
    await writer.start()
    try:
        deadline = time.monotonic() + 10
        while writer.stats().last_retention is None:
            assert time.monotonic() < deadline, "retention never ran"
            await asyncio.sleep(0.01)
        report = writer.stats().last_retention
        assert report is not None and report.expired_blocks == 1 and report.now_ms == now
        assert len(store.snapshots("BTCUSDT", 0, now)) == 0
    finally:
        await asyncio.wait_for(writer.close(), 10)
