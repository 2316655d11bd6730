"""LMDB history storage benchmark: bytes per snapshot, range reads into numpy, commit cost.

Run from the repo root:  .venv/bin/python bench/bench_history.py [--runs 7] [--file PATH]

Snapshots are real: the top 20 levels a side of the recorded BTCUSDT book (one per second of its
event time, the book kept by BookSync from the recorded diffs), ~5 minutes of them, repeated with
shifted times to fill 24 hours (86,400 snapshots). Measured in one run, in temporary directories:

  size   bytes per stored snapshot: LMDB pages in use / snapshots, for this store and for the
         raw baseline; and the value bytes of the alternatives (msgpack of the decimal strings,
         raw float64, this codec without zstd, this codec)
  read   1 hour (3,600) and 24 hours (86,400) into numpy arrays (median of --runs):
         (a) raw-LMDB baseline: one key per second, the value 82 raw float64s (time, update id, 4x20
             levels); a cursor scan, one join, frombuffer, split into the same arrays
         (b) HistoryStore.snapshots(): minute blocks decoded by the codec
  write  one commit of one second of data (snapshot + activity bar + 10 trades per symbol), as the
         writer makes it every second, durable (LMDB sync, the store's setting) and without fsync
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import lmdb
import msgpack
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exchange_sim.market.recorded import RecordKind, read_hftbacktest  # noqa: E402
from provider.book import units_to_decimal  # noqa: E402
from provider.history.codec import (  # noqa: E402
    ActivityRecord,
    Compression,
    SnapshotRecord,
    TradeRecord,
    encode_snapshots,
    snapshot_ints,
)
from provider.history.store import HistoryStore, WriteBatch  # noqa: E402
from provider.sync import BookSync  # noqa: E402

SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
DEFAULT_FILE = SHARED / "data" / "binance-recorded" / "hftbacktest_spot_btcusdt_20240808.gz"
LEVELS = 20
T0 = 1_723_161_600_000  # a minute start
DAY = 86_400


def recorded_snapshots(path: Path) -> list[SnapshotRecord]:
    """One top-20 snapshot per second of the recorded book (whole minutes only)."""
    sync = BookSync("BTCUSDT", snapshot_limit=None)
    snapshot = None
    out: list[SnapshotRecord] = []
    for rec in read_hftbacktest(path):
        if rec.kind is RecordKind.DEPTH_SNAPSHOT:
            snapshot = rec.payload
        elif rec.kind is RecordKind.DEPTH_DIFF:
            d = rec.payload
            if snapshot is not None and not sync.in_sync:
                sync.on_snapshot(snapshot["lastUpdateId"], snapshot["bids"], snapshot["asks"])
            sync.on_diff(d["U"], d["u"], d["b"], d["a"], d["E"])
            second = d["E"] // 1000 * 1000
            if sync.in_sync and (not out or out[-1].time_ms < second):
                top = sync.top(LEVELS)
                out.append(SnapshotRecord("BTCUSDT", second, top.last_update_id or 0, top.bids, top.asks))
    whole = len(out) // 60 * 60
    return out[:whole]


def day_of(snaps: list[SnapshotRecord], count: int) -> list[SnapshotRecord]:
    """``count`` snapshots one second apart from T0, cycling through the recorded ones."""
    return [
        SnapshotRecord("BTCUSDT", T0 + 1000 * i, s.last_update_id, s.bids, s.asks)
        for i, s in zip(range(count), (snaps[i % len(snaps)] for i in range(count)), strict=True)
    ]


def used_bytes(env: lmdb.Environment, db: lmdb._Database) -> int:
    with env.begin() as txn:
        s = txn.stat(db)
    return int((s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"]) * s["psize"])


def raw_row(s: SnapshotRecord) -> bytes:
    row = np.full(2 + 4 * LEVELS, np.nan)
    row[0], row[1] = s.time_ms, s.last_update_id
    for k, side in enumerate((s.bids, s.asks)):
        for j, (p, q) in enumerate(side[:LEVELS]):
            row[2 + 2 * k * LEVELS + j] = float(p)
            row[2 + (2 * k + 1) * LEVELS + j] = float(q)
    return row.tobytes()


def raw_read(env: lmdb.Environment, db: lmdb._Database, start_ms: int, end_ms: int) -> tuple[np.ndarray, ...]:
    lo, hi = b"BTCUSDT\x00" + struct.pack(">Q", start_ms), b"BTCUSDT\x00" + struct.pack(">Q", end_ms)
    values = []
    with env.begin(db=db) as txn:
        cursor = txn.cursor()
        if cursor.set_range(lo):
            for key, value in cursor.iternext():
                if key >= hi:
                    break
                values.append(value)
    a = np.frombuffer(b"".join(values), np.float64).reshape(-1, 2 + 4 * LEVELS)
    n = LEVELS
    return (
        a[:, 0].astype(np.int64),
        a[:, 1].astype(np.int64),
        *(a[:, 2 + k * n : 2 + (k + 1) * n].copy() for k in range(4)),
    )


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def one_second(symbols: list[str], t: int, agg: int) -> WriteBatch:
    snaps, bars, trades = [], [], []
    for sym in symbols:
        snaps.append(SnapshotRecord(sym, t, agg, (("61837.63000000", "1.00000000"),) * 20, (("61837.64", "2"),) * 20))
        bars.append(ActivityRecord(sym, t, 1.5, 0.25, 0.125, 40, 2.0, 0.5, 0.25, 35, 10, 0.75, 0.5, False))
        for k in range(10):
            trades.append(
                TradeRecord(
                    sym, agg + k, units_to_decimal(6_183_763_000_000 + k), "0.01", agg + k, agg + k, t + k, k % 2 == 0
                )
            )
    return WriteBatch(snaps, bars, trades)


def commit_ms(path: Path, durable: bool, symbols: int, seconds: int) -> float:
    names = [f"SYM{i}USDT" for i in range(symbols)]
    times = []
    with HistoryStore(path, durable=durable, map_size=1 << 30) as store:
        for s in range(seconds):
            batch = one_second(names, T0 + 1000 * s, 10 * s)
            t0 = time.perf_counter()
            store.write(batch)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    if not args.file.exists():
        raise SystemExit(f"recorded file not found: {args.file} (set SHARED_DIR)")
    recorded = recorded_snapshots(args.file)
    day = day_of(recorded, DAY)
    print(f"{args.file.name}: {len(recorded)} recorded top-{LEVELS} snapshots, cycled to {DAY:,} (24 h)")
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, lmdb {lmdb.__version__}, median of {args.runs} runs"
    )

    tmp = Path(tempfile.mkdtemp(prefix="bench_history_"))
    try:
        # -- load: raw baseline and the store (bulk load without fsync; the layout is the same)
        raw_env = lmdb.open(str(tmp / "raw"), map_size=1 << 30, max_dbs=2, sync=False)
        raw_db = raw_env.open_db(b"raw")
        with raw_env.begin(write=True) as txn:
            for s in day:
                txn.put(b"BTCUSDT\x00" + struct.pack(">Q", s.time_ms), raw_row(s), db=raw_db)
        store = HistoryStore(tmp / "store", levels=LEVELS, map_size=1 << 30, durable=False)
        t0 = time.perf_counter()
        for k in range(0, DAY, 60):
            store.write(WriteBatch(snapshots=day[k : k + 60]))
        load_s = time.perf_counter() - t0

        # -- size
        minute = recorded[:60]
        print("\nbytes per top-20 snapshot")
        print(
            f"  {'msgpack of the decimal strings (value only)':52s} "
            f"{len(msgpack.packb([[s.time_ms, s.last_update_id, s.bids, s.asks] for s in minute])) / 60:8.0f}"
        )
        print(f"  {'raw float64 (value only)':52s} {8 * (2 + 4 * LEVELS):8.0f}")
        for name, comp in (
            ("codec, no zstd (value only)", Compression.NONE),
            ("codec + zstd (value only)", Compression.ZSTD),
        ):
            size = sum(
                len(encode_snapshots(snapshot_ints(day[k : k + 60], LEVELS), comp)) for k in range(0, len(recorded), 60)
            )
            print(f"  {name:52s} {size / len(recorded):8.1f}")
        print(f"  {'(a) raw baseline on disk (LMDB pages in use)':52s} {used_bytes(raw_env, raw_db) / DAY:8.1f}")
        print(f"  {'(b) HistoryStore on disk (LMDB pages in use)':52s} {store.used_bytes() / DAY:8.1f}   goal < 400")

        # -- reads
        print("\nread into numpy            snapshots    (a) raw ms   (b) store ms   (b)/(a)")
        for label, count in (("1 hour", 3600), ("24 hours", DAY)):
            start = T0 if count == DAY else T0 + 6 * 3_600_000  # 1 hour: 06:00 to 07:00
            end = start + 1000 * count
            raw = median_ms(partial(raw_read, raw_env, raw_db, start, end), args.runs)
            got = store.snapshots("BTCUSDT", start, end)
            if len(got) != count or len(raw_read(raw_env, raw_db, start, end)[0]) != count:
                raise RuntimeError(f"read {len(got)} snapshots, expected {count}")
            ours = median_ms(partial(store.snapshots, "BTCUSDT", start, end), args.runs)
            goal = "goal < 5 ms" if count < DAY else "goal (b)/(a) < 2"
            print(f"  {label:24s} {count:9,d} {raw:12.2f} {ours:14.2f} {ours / raw:9.2f}   {goal}")
        store.close()
        raw_env.close()
        print(f"\nwrite: bulk load of 24 h in minute batches (no fsync): {DAY / load_s:,.0f} snapshots/s")

        # -- per-second commit cost
        print("one commit of 1 s of data      symbols   durable ms   no-fsync ms")
        for symbols in (2, 20):
            durable = commit_ms(tmp / f"d{symbols}", True, symbols, 60)
            fast = commit_ms(tmp / f"f{symbols}", False, symbols, 60)
            print(f"  {'':28s} {symbols:7d} {durable:12.2f} {fast:13.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
