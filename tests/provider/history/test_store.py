"""HistoryStore over a real LMDB environment in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import lmdb
import numpy as np
import pytest

from provider.history.codec import SnapshotRecord, activity_records_to_arrays
from provider.history.keys import BLOCK_MS
from provider.history.store import HistoryError, HistoryStore, Kind, WriteBatch
from tests.provider.history.test_codec import T0, make_bar, make_snapshot, make_trades


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(tmp_path / "db", map_size=64 << 20) as s:
        yield s


def seconds(symbol: str, first: int, count: int, step: int = 1) -> list[SnapshotRecord]:
    return [make_snapshot(symbol, T0 + 1000 * (first + k * step)) for k in range(count)]


def test_snapshots_range_reads_are_half_open_and_exact(store: HistoryStore) -> None:
    snaps = seconds("BTCUSDT", 0, 300) + seconds("ETHUSDT", 0, 300)
    store.write(WriteBatch(snapshots=snaps[::-1]))  # any order
    got = store.snapshots("BTCUSDT", T0 + 30_000, T0 + 150_000)
    assert got.time_ms.tolist() == [T0 + 1000 * s for s in range(30, 150)]
    assert got.bid_px.shape == (120, 20)
    assert got.ask_px[0].tolist() == [float(p) for p, _ in snaps[30].asks]
    assert store.snapshot_records("ETHUSDT", T0 + 299_000, T0 + 10**9) == [snaps[-1]]
    assert store.snapshot_records("BTCUSDT", T0, T0 + 2000, levels=3) == [
        replace(s, bids=s.bids[:3], asks=s.asks[:3]) for s in snaps[:2]
    ]
    assert store.snapshots("BTCUSDT", T0, T0 + 1000, levels=30).bid_px.shape == (1, 30)
    assert len(store.snapshots("BTCUSDT", T0 + 300_000, T0 + 400_000)) == 0
    assert len(store.snapshots("XRPUSDT", T0, T0 + 400_000)) == 0
    assert len(store.snapshots("BTCUSDT", T0 + 5000, T0 + 5000)) == 0


def test_writes_merge_into_minutes_and_rewrites_are_idempotent(store: HistoryStore) -> None:
    snaps = seconds("BTCUSDT", 0, 120)
    for k in range(0, 120, 7):  # second by second batches, as the writer commits them
        store.write(WriteBatch(snapshots=snaps[k : k + 7]))
    store.write(WriteBatch(snapshots=snaps[10:20]))
    assert store.snapshot_records("BTCUSDT", T0, T0 + 120_000) == snaps
    assert store.stats().blocks == {"snapshots": 2, "activity": 0, "trades": 0}


def test_data_survives_reopen(tmp_path: Path) -> None:
    snaps = seconds("BTCUSDT", 0, 10)
    with HistoryStore(tmp_path, map_size=32 << 20) as s:
        s.write(WriteBatch(snapshots=snaps, trades=make_trades("BTCUSDT", T0, 5)))
    with HistoryStore(tmp_path, map_size=32 << 20) as s:
        assert s.snapshot_records("BTCUSDT", T0, T0 + 10_000) == snaps
        assert s.last_trade_id("BTCUSDT") == 3_000_000_004


def test_gaps_are_reported_as_missing_second_windows(store: HistoryStore) -> None:
    present = [0, 1, 2, 5, 6, 61, 62, 200]
    store.write(WriteBatch(snapshots=[make_snapshot("BTCUSDT", T0 + 1000 * s + 123) for s in present]))
    s = 1000
    assert store.gaps("BTCUSDT", T0, T0 + 7 * s) == [(T0 + 3 * s, T0 + 5 * s)]
    assert store.gaps("BTCUSDT", T0, T0 + 201 * s) == [
        (T0 + 3 * s, T0 + 5 * s),
        (T0 + 7 * s, T0 + 61 * s),
        (T0 + 63 * s, T0 + 200 * s),
    ]
    # Clipped to the range, including a range that starts or ends inside a second.
    assert store.gaps("BTCUSDT", T0 + 2500, T0 + 5500) == [(T0 + 3000, T0 + 5000)]
    assert store.gaps("BTCUSDT", T0 + 300 * s, T0 + 302 * s + 1) == [(T0 + 300 * s, T0 + 302 * s + 1)]
    assert store.gaps("BTCUSDT", T0, T0 + 3 * s) == []
    assert store.gaps("ETHUSDT", T0, T0 + 2 * s) == [(T0, T0 + 2 * s)]


def test_trades_are_idempotent_on_agg_id_and_give_the_last_id(store: HistoryStore) -> None:
    trades = make_trades("BTCUSDT", T0, 3000)  # spans several minutes
    store.write(WriteBatch(trades=trades[:2000]))
    store.write(WriteBatch(trades=trades[1500:]))  # a backfill that overlaps what is there
    store.write(WriteBatch(trades=trades[:100]))
    got = store.trades("BTCUSDT", T0, T0 + 10**9)
    assert got.agg_id.tolist() == [t.agg_id for t in trades]
    assert got.price.tolist() == [float(t.price) for t in trades]
    assert got.time_ms.tolist() == [t.time_ms for t in trades]
    part = store.trades("BTCUSDT", trades[10].time_ms, trades[20].time_ms)
    assert part.agg_id.tolist() == [t.agg_id for t in trades if trades[10].time_ms <= t.time_ms < trades[20].time_ms]
    # The last id of a symbol followed by another symbol, of the last symbol, and of none.
    store.write(WriteBatch(trades=make_trades("BTCUSDTX", T0, 3, first_agg=7)))
    assert store.last_trade_id("BTCUSDT") == trades[-1].agg_id
    assert store.last_trade_id("BTCUSDTX") == 9
    assert store.last_trade_id("AAAUSDT") is None
    assert store.last_trade_id("ZZZUSDT") is None


def test_activity_round_trip(store: HistoryStore) -> None:
    bars = [make_bar("BTCUSDT", T0 + 1000 * s) for s in range(0, 130, 3)]
    store.write(WriteBatch(activity=bars))
    got = store.activity("BTCUSDT", T0 + 3000, T0 + 121_000)
    want = activity_records_to_arrays([b for b in bars if T0 + 3000 <= b.time_ms < T0 + 121_000])
    for name in type(got).__slots__:
        assert getattr(got, name).tolist() == getattr(want, name).tolist(), name


def test_retention_deletes_whole_old_minutes(store: HistoryStore) -> None:
    day = 86_400_000
    store.retention_ms = day
    old = [make_snapshot("BTCUSDT", T0 + 1000 * s) for s in range(0, 180, 10)]
    store.write(WriteBatch(snapshots=old, activity=[make_bar("ETHUSDT", T0)], trades=make_trades("BTCUSDT", T0, 10)))
    report = store.enforce_retention(T0 + day + BLOCK_MS + 30_000)  # cutoff inside the second minute
    assert report.cutoff_ms == T0 + BLOCK_MS
    assert report.expired_blocks == 3  # first snapshot minute, the activity minute, the trade minute
    assert store.snapshots("BTCUSDT", 0, T0 + day).time_ms.tolist() == [r.time_ms for r in old[6:]]
    assert len(store.activity("ETHUSDT", 0, T0 + day)) == 0
    assert store.last_trade_id("BTCUSDT") is None
    assert store.stats().last_retention == report


def test_size_cap_evicts_oldest_minutes_first(tmp_path: Path) -> None:
    with HistoryStore(tmp_path, map_size=64 << 20, max_bytes=10 << 30) as store:
        for minute in range(40):
            store.write(WriteBatch(snapshots=seconds("BTCUSDT", 60 * minute, 60) + seconds("ETHUSDT", 60 * minute, 60)))
        full = store.used_bytes()
        store.max_bytes = full // 2
        report = store.enforce_retention(T0 + 40 * BLOCK_MS)
        assert report.expired_blocks == 0 and report.evicted_blocks > 0
        assert report.used_bytes_after <= full // 2 < report.used_bytes_before
        assert report.evicted_before_ms is not None
        first = store.snapshots("BTCUSDT", 0, T0 + 10**9).time_ms[0]
        assert first == report.evicted_before_ms  # everything older went, nothing newer
        assert store.snapshots("ETHUSDT", 0, T0 + 10**9).time_ms[-1] == T0 + 40 * BLOCK_MS - 1000
        assert store.gaps("BTCUSDT", int(first), T0 + 40 * BLOCK_MS) == []


def test_stats_for_health_details(store: HistoryStore) -> None:
    store.write(WriteBatch(snapshots=seconds("BTCUSDT", 5, 100), trades=make_trades("ETHUSDT", T0 + 500, 20)))
    stats = store.stats()
    by_key = {(r.symbol, r.kind): (r.first_ms, r.last_ms) for r in stats.ranges}
    assert by_key[("BTCUSDT", Kind.SNAPSHOTS)] == (T0 + 5000, T0 + 104_000)
    trades = make_trades("ETHUSDT", T0 + 500, 20)
    assert by_key[("ETHUSDT", Kind.TRADES)] == (trades[0].time_ms, trades[-1].time_ms)
    assert stats.levels == 20 and stats.file_bytes >= stats.used_bytes > 0
    assert stats.max_bytes == int(0.8 * (64 << 20))


def test_other_formats_and_closed_stores_are_refused(tmp_path: Path) -> None:
    HistoryStore(tmp_path, map_size=16 << 20).close()
    env = lmdb.open(str(tmp_path), max_dbs=4)
    with env.begin(write=True) as txn:
        txn.put(b"format", b"2", db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(HistoryError, match="format"):
        HistoryStore(tmp_path, map_size=16 << 20)
    other = HistoryStore(tmp_path / "other", map_size=16 << 20)
    other.close()
    with pytest.raises(HistoryError, match="closed"):
        other.snapshots("BTCUSDT", 0, 1)


def test_a_bad_record_fails_the_whole_batch(store: HistoryStore) -> None:
    good = make_snapshot("BTCUSDT", T0)
    bad = replace(make_snapshot("BTCUSDT", T0 + 1000), bids=(("1.5", "-2"),))
    with pytest.raises(ValueError, match="decimal"):
        store.write(WriteBatch(snapshots=[good, bad]))
    assert len(store.snapshots("BTCUSDT", 0, T0 + 10**6)) == 0
    assert np.array_equal(store.snapshots("BTCUSDT", 0, 1).bid_px, np.empty((0, 20)))


def test_cached_reads_follow_rewrites_and_match_uncached_reads(tmp_path: Path) -> None:
    trades = make_trades("BTCUSDT", T0 + 700, 6000)  # ~2 trades a 40 ms: a few minutes
    bars = [make_bar("BTCUSDT", T0 + 1000 * s) for s in range(0, 300, 2)]
    with (
        HistoryStore(tmp_path / "cached", map_size=64 << 20) as cached,
        HistoryStore(tmp_path / "plain", map_size=64 << 20, read_cache_bytes=0) as plain,
    ):

        def same_answers() -> None:
            end = trades[-1].time_ms + 1
            windows = [(T0, end), (T0 + 61_234, T0 + 179_999), (T0 + 60_000, T0 + 120_000), (T0 + 59_999, T0 + 60_001)]
            for start_ms, end_ms in windows:
                a, b = cached.trades("BTCUSDT", start_ms, end_ms), plain.trades("BTCUSDT", start_ms, end_ms)
                for name in type(a).__slots__:
                    assert getattr(a, name).tolist() == getattr(b, name).tolist(), (name, start_ms, end_ms)
                x, y = cached.activity("BTCUSDT", start_ms, end_ms), plain.activity("BTCUSDT", start_ms, end_ms)
                for name in type(x).__slots__:
                    assert getattr(x, name).tolist() == getattr(y, name).tolist(), (name, start_ms, end_ms)

        for store in (cached, plain):
            store.write(WriteBatch(trades=trades[:4000], activity=bars[:100]))
        same_answers()
        assert len(cached._read_cache) > 0
        # A backfill into minutes already read and cached, a replaced trade and replaced bars.
        moved = replace(trades[10], price="1.00000000", qty="9.00000000")
        changed_bars = [replace(b, trade_count=777, resynced=True) for b in bars[5:8]]
        for store in (cached, plain):
            store.write(WriteBatch(trades=[*trades[3000:], moved], activity=[*bars[100:], *changed_bars]))
        same_answers()
        got = cached.trades("BTCUSDT", T0, T0 + 10**9)
        assert got.agg_id.tolist() == [t.agg_id for t in trades]
        assert got.price[10] == 1.0 and got.qty[10] == 9.0
        assert cached.activity("BTCUSDT", T0, T0 + 10**9).trade_count[5:8].tolist() == [777] * 3


def test_reads_hand_out_new_arrays_the_cache_does_not_share(store: HistoryStore) -> None:
    store.write(WriteBatch(trades=make_trades("BTCUSDT", T0, 50), activity=[make_bar("BTCUSDT", T0)]))
    first = store.trades("BTCUSDT", T0, T0 + BLOCK_MS)
    first.price[:] = -1.0  # a caller may work in place on what it was given
    bars = store.activity("BTCUSDT", T0, T0 + BLOCK_MS)
    bars.trade_count[:] = -1
    assert (store.trades("BTCUSDT", T0, T0 + BLOCK_MS).price > 0).all()
    assert (store.activity("BTCUSDT", T0, T0 + BLOCK_MS).trade_count >= 0).all()
