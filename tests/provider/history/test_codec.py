"""Codec: exact round trips of snapshots, activity bars and trades, merging, and compactness."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import msgpack
import numpy as np
import pytest

from provider.book import units_to_decimal
from provider.history.arrays import ActivityArrays, TradeArrays
from provider.history.codec import (
    ActivityRecord,
    CodecError,
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
    trade_arrays,
    trade_ints,
)
from provider.history.keys import BLOCK_MS

T0 = 1_723_161_600_000  # a block start (2024-08-09 00:00 UTC)
RECORDED = Path(__file__).resolve().parents[4] / "shared" / "data" / "binance-recorded"


def make_snapshot(symbol: str, time_ms: int, levels: int = 20, tick: int = 10**6, lot: int = 1000) -> SnapshotRecord:
    """A deterministic, book-like snapshot: best prices walk, gaps of 1-3 ticks, varied quantities."""
    rng = random.Random(f"{symbol}:{time_ms}")
    mid = 6_183_763 + (time_ms // 1000) % 300
    bids, asks = [], []
    bid, ask = mid, mid + 1
    for _ in range(levels):
        bids.append((units_to_decimal(bid * tick), units_to_decimal(rng.randint(1, 400_000) * lot)))
        asks.append((units_to_decimal(ask * tick), units_to_decimal(rng.randint(1, 400_000) * lot)))
        bid -= rng.choice((1, 1, 1, 2, 3))
        ask += rng.choice((1, 1, 1, 2, 3))
    return SnapshotRecord(symbol, time_ms, 50_093_239_218 + time_ms // 100, tuple(bids), tuple(asks))


def make_trades(symbol: str, start_ms: int, count: int, first_agg: int = 3_000_000_000) -> list[TradeRecord]:
    rng = random.Random(f"{symbol}:{start_ms}:{count}")
    out, trade_id, t = [], 3_700_000_000 + first_agg, start_ms
    for k in range(count):
        span = rng.choice((0, 0, 0, 1, 5))
        gap = rng.choice((0, 0, 0, 0, 2))
        price = units_to_decimal((6_183_763 + rng.randint(-50, 50)) * 10**6)
        out.append(
            TradeRecord(symbol, first_agg + k, price, units_to_decimal(rng.randint(1, 10**6) * 1000),
                        trade_id + gap, trade_id + gap + span, t, rng.random() < 0.5)
        )  # fmt: skip
        trade_id += gap + span + 1
        t += rng.randint(0, 40)
    return out


def make_bar(symbol: str, time_ms: int) -> ActivityRecord:
    rng = random.Random(f"{symbol}:{time_ms}")
    return ActivityRecord(
        symbol, time_ms, rng.random() * 10, rng.random(), rng.random() / 3, rng.randint(0, 900),
        rng.random() * 10, rng.random(), rng.random() / 3, rng.randint(0, 900),
        rng.randint(0, 300), rng.random() * 5, rng.random() * 5, rng.random() < 0.1,
    )  # fmt: skip


def normalised(r: SnapshotRecord) -> SnapshotRecord:
    """The record as the store gives it back: tuples, zero-quantity levels left out."""
    keep = [(p, q) for p, q in r.bids if q.strip("0.")], [(p, q) for p, q in r.asks if q.strip("0.")]
    return replace(r, bids=tuple(keep[0]), asks=tuple(keep[1]))


def block(records: list[SnapshotRecord], levels: int = 20, compression: Compression = Compression.ZSTD) -> bytes:
    return encode_snapshots(snapshot_ints(records, levels), compression)


@pytest.mark.parametrize("compression", list(Compression))
def test_snapshots_round_trip_exactly(compression: Compression) -> None:
    records = [make_snapshot("BTCUSDT", T0 + 1000 * i + 7) for i in range(60)]
    value = block(records, compression=compression)
    rows = decode_snapshots([value])
    assert snapshot_records("BTCUSDT", rows) == records
    arrays = snapshot_arrays(rows)
    assert arrays.bid_px.shape == (60, 20)
    for i, r in enumerate(records):  # floats are exactly float(decimal string)
        assert arrays.bid_px[i].tolist() == [float(p) for p, _ in r.bids]
        assert arrays.ask_qty[i].tolist() == [float(q) for _, q in r.asks]
    assert arrays.time_ms.tolist() == [r.time_ms for r in records]
    assert arrays.last_update_id.tolist() == [r.last_update_id for r in records]
    assert block_times(value).tolist() == [r.time_ms for r in records]


def test_missing_levels_empty_sides_and_extreme_values() -> None:
    records = [
        SnapshotRecord("X", T0, 1, (("0.00000001", "92233720368.54775807"),), ()),  # int64 max units
        SnapshotRecord("X", T0 + 1000, 2, (), (("123456789.12345678", "0.00000001"), ("123456790.00000000", "1"))),
        SnapshotRecord("X", T0 + 2000, 9, (("5", "0.00000000"), ("4", "2.5")), (("6", "1.00000000"),)),
    ]
    rows = decode_snapshots([block(records, levels=3)])
    assert snapshot_records("X", rows) == [
        normalised(records[0]),
        replace(records[1], bids=(), asks=(("123456789.12345678", "0.00000001"), ("123456790.00000000", "1.00000000"))),
        replace(records[2], bids=(("4.00000000", "2.50000000"),), asks=(("6.00000000", "1.00000000"),)),
    ]
    arrays = snapshot_arrays(rows)
    assert np.isnan(arrays.bid_px[1]).all() and (arrays.bid_qty[1] == 0).all()
    assert arrays.ask_px[1].tolist()[:2] == [123456789.12345678, 123456790.0] and np.isnan(arrays.ask_px[1, 2])
    assert arrays.bid_px[2, 0] == 4.0  # a zero-quantity level is no level


def test_deeper_levels_are_cut_and_reads_pad_or_truncate() -> None:
    records = [make_snapshot("BTCUSDT", T0 + 1000 * i, levels=25) for i in range(3)]
    rows = decode_snapshots([block(records, levels=20)])
    assert rows.levels == 20
    assert snapshot_arrays(rows, 5).ask_px.tolist() == [[float(p) for p, _ in r.asks[:5]] for r in records]
    wide = snapshot_arrays(rows, 30)
    assert np.isnan(wide.bid_px[:, 20:]).all() and (wide.bid_qty[:, 20:] == 0).all()


def test_several_blocks_decode_together_like_one_by_one() -> None:
    # Blocks with different depths, ticks and lot sizes, some rows missing.
    values = [
        block([make_snapshot("ETHUSDT", T0 + 1000 * i) for i in range(0, 60, 2)]),
        block([make_snapshot("ETHUSDT", T0 + BLOCK_MS + 1000 * i, levels=5, tick=1, lot=1) for i in range(7)], 5),
        block([make_snapshot("ETHUSDT", T0 + 3 * BLOCK_MS + 999, tick=10**4, lot=10**7)]),
    ]
    together = snapshot_records("ETHUSDT", decode_snapshots(values))
    one_by_one = [r for v in values for r in snapshot_records("ETHUSDT", decode_snapshots([v]))]
    assert together == one_by_one
    assert len(together) == 30 + 7 + 1


def test_merge_sorts_and_new_rows_replace_old() -> None:
    old = snapshot_ints([make_snapshot("X", T0 + 2000), make_snapshot("X", T0 + 5000)], 20)
    newer = make_snapshot("X", T0 + 2000, tick=10**5)
    merged = merge_snapshots(old, snapshot_ints([make_snapshot("X", T0 + 1000), newer], 20))
    assert [r.time_ms for r in snapshot_records("X", merged)] == [T0 + 1000, T0 + 2000, T0 + 5000]
    assert snapshot_records("X", merged)[1] == newer


def test_rows_must_lie_in_one_block() -> None:
    with pytest.raises(ValueError, match="block"):
        block([make_snapshot("X", T0), make_snapshot("X", T0 + BLOCK_MS)])


def test_corrupt_and_foreign_values_are_refused() -> None:
    value = block([make_snapshot("X", T0)])
    with pytest.raises(CodecError):
        decode_snapshots([value[:-3]])
    with pytest.raises(CodecError):
        decode_snapshots([msgpack.packb([99, 1, 2])])
    with pytest.raises(CodecError):
        decode_snapshots([b"\xc1garbage"])
    with pytest.raises(CodecError):
        decode_trades([value])  # a snapshot value is not a trade value


def test_activity_round_trip_and_merge() -> None:
    bars = [make_bar("BTCUSDT", T0 + 1000 * i) for i in (0, 1, 2, 10, 59)]
    value = encode_activity(activity_records_to_arrays(bars))
    got = decode_activity([value, encode_activity(activity_records_to_arrays([make_bar("BTCUSDT", T0 + BLOCK_MS)]))])
    want = activity_records_to_arrays([*bars, make_bar("BTCUSDT", T0 + BLOCK_MS)])
    for name in ActivityArrays.__slots__:
        assert getattr(got, name).tolist() == getattr(want, name).tolist(), name
    replacement = replace(bars[1], trade_count=12345, resynced=True)
    merged = merge_activity(decode_activity([value]), activity_records_to_arrays([replacement]))
    assert merged.time_ms.tolist() == [b.time_ms for b in bars]
    assert merged.trade_count[1] == 12345 and bool(merged.resynced[1])


@pytest.mark.parametrize("compression", list(Compression))
def test_trades_round_trip_exactly(compression: Compression) -> None:
    trades = make_trades("BTCUSDT", T0, 400)
    trades = [t for t in trades if t.time_ms < T0 + BLOCK_MS]
    ints = decode_trades([encode_trades(trade_ints(trades), compression)])
    assert ints.agg_id.tolist() == [t.agg_id for t in trades]
    assert ints.first_trade_id.tolist() == [t.first_trade_id for t in trades]
    assert ints.last_trade_id.tolist() == [t.last_trade_id for t in trades]
    assert ints.time_ms.tolist() == [t.time_ms for t in trades]
    assert [units_to_decimal(p) for p in ints.price.tolist()] == [t.price for t in trades]
    assert [units_to_decimal(q) for q in ints.qty.tolist()] == [t.qty for t in trades]
    arrays = trade_arrays(ints)
    assert arrays.price.tolist() == [float(t.price) for t in trades]
    assert arrays.buyer_is_maker.tolist() == [t.buyer_is_maker for t in trades]


def test_trade_merge_is_idempotent_on_agg_id() -> None:
    trades = make_trades("BTCUSDT", T0, 50)
    first = merge_trades(trade_ints(trades[:30]).take(slice(0, 0)), trade_ints(trades[:30]))
    again = merge_trades(first, trade_ints(trades[20:]))  # overlaps 20..29
    assert again.agg_id.tolist() == [t.agg_id for t in trades]
    assert merge_trades(again, trade_ints(trades)).agg_id.tolist() == again.agg_id.tolist()


def test_several_trade_blocks_decode_together() -> None:
    a = make_trades("X", T0, 20, first_agg=100)
    b = make_trades("X", T0 + BLOCK_MS, 5, first_agg=900)
    ints = decode_trades([encode_trades(trade_ints(a)), encode_trades(trade_ints(b))])
    assert ints.agg_id.tolist() == [t.agg_id for t in a + b]
    assert ints.first_trade_id.tolist() == [t.first_trade_id for t in a + b]
    assert ints.last_trade_id.tolist() == [t.last_trade_id for t in a + b]


def test_trade_blocks_decode_together_like_one_by_one() -> None:
    # Blocks with other widths (a price jump, a big id gap), one trade alone, both compressions.
    a = make_trades("X", T0, 400)
    far = 10**12
    b = [
        replace(t, price="0.00000001", first_trade_id=t.first_trade_id + far, last_trade_id=t.last_trade_id + far)
        for t in make_trades("X", T0 + BLOCK_MS, 7, first_agg=900)
    ]
    c = make_trades("X", T0 + 5 * BLOCK_MS + 59_999, 1, first_agg=10**15)
    values = [
        encode_trades(trade_ints([t for t in a if t.time_ms < T0 + BLOCK_MS])),
        encode_trades(trade_ints(b), Compression.NONE),
        encode_trades(trade_ints(c)),
    ]
    blocks = decode_trade_blocks(values)
    assert len(blocks) == 3
    for got, value in zip(blocks, values, strict=True):
        want = trade_arrays(decode_trades([value]))
        for name in TradeArrays.__slots__:
            column = getattr(got, name)
            assert column.dtype == getattr(want, name).dtype, name
            assert column.tolist() == getattr(want, name).tolist(), name
            # Safe to cache: owns its memory (no view into a shared buffer) and cannot be changed.
            assert column.flags.owndata and not column.flags.writeable, name
    assert blocks[1].price.tolist() == [1e-8] * 7
    assert decode_trade_blocks([]) == []


def test_activity_blocks_decode_like_one_by_one() -> None:
    values = [
        encode_activity(activity_records_to_arrays([make_bar("X", T0 + 1000 * i) for i in (0, 3, 59)])),
        encode_activity(activity_records_to_arrays([make_bar("X", T0 + BLOCK_MS)]), Compression.NONE),
    ]
    blocks = decode_activity_blocks(values)
    assert len(blocks) == 2
    for got, value in zip(blocks, values, strict=True):
        want = decode_activity([value])
        for name in ActivityArrays.__slots__:
            column = getattr(got, name)
            assert column.tolist() == getattr(want, name).tolist(), name
            assert not column.flags.writeable, name
            # Its memory is its own array's, never a view into a decoded payload's bytes.
            assert column.flags.owndata or (isinstance(column.base, np.ndarray) and column.base.flags.owndata), name


def test_recorded_book_snapshots_are_small() -> None:
    """The issue's goal: a top-20 snapshot of a real book in under 400 bytes (measured: ~100)."""
    path = RECORDED / "hftbacktest_spot_btcusdt_20240808.gz"
    if not path.exists():
        pytest.skip(f"recorded data not found: {path}")
    from exchange_sim.market.recorded import RecordKind, read_hftbacktest
    from provider.sync import BookSync

    sync, snapshot = BookSync("BTCUSDT", snapshot_limit=None), None
    records: list[SnapshotRecord] = []
    for rec in read_hftbacktest(path):
        if rec.kind is RecordKind.DEPTH_SNAPSHOT:
            snapshot = rec.payload
        elif rec.kind is RecordKind.DEPTH_DIFF:
            d = rec.payload
            if snapshot is not None and not sync.in_sync:
                sync.on_snapshot(snapshot["lastUpdateId"], snapshot["bids"], snapshot["asks"])
            sync.on_diff(d["U"], d["u"], d["b"], d["a"], d["E"])
            second = d["E"] // 1000 * 1000
            if sync.in_sync and (not records or records[-1].time_ms < second):
                top = sync.top(20)
                records.append(SnapshotRecord("BTCUSDT", second, top.last_update_id or 0, top.bids, top.asks))
        if len(records) >= 180:
            break
    values = []
    for start in sorted({r.time_ms // BLOCK_MS * BLOCK_MS for r in records}):
        values.append(block([r for r in records if start <= r.time_ms < start + BLOCK_MS]))
    assert snapshot_records("BTCUSDT", decode_snapshots(values)) == records
    per_snapshot = sum(map(len, values)) / len(records)
    assert per_snapshot < 200, per_snapshot
