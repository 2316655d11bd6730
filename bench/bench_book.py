"""Order book ingestion benchmark on the real recorded BTCUSDT depth frames.

Run from the repo root:  .venv/bin/python bench/bench_book.py [--seconds 3] [--runs 5] [--file PATH]

Frames are the raw JSON text of each diff's ``data`` part, byte for byte as received (the 3,449
diffs from the one that bridges the recorded REST snapshot), replayed in passes so one run does a few seconds of work.
Every pass of (b)-(d) starts again from the snapshot (1000 levels a side), so the book evolves
exactly as the real one did. Measured, each as the median of ``--runs`` runs:

  (a) baseline: orjson.loads + float() of every price and quantity
  (b) orjson.loads + OrderBook.apply (exact parse + book update)
  (c) (b) plus a top-20 read of both sides after every diff
  (d) (c) through BookSync.on_diff (the full §8 rules: checks, counters, audit history)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exchange_sim.market.recorded import RecordKind, read_hftbacktest  # noqa: E402
from provider.book import OrderBook  # noqa: E402
from provider.sync import BookSync  # noqa: E402

SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))


DEFAULT_FILE = SHARED / "data" / "binance-recorded" / "hftbacktest_spot_btcusdt_20240808.gz"


def load(path: Path) -> tuple[dict[str, Any], list[bytes], int]:
    """(snapshot body, raw `data` texts of the diffs it is bridged to, level updates per pass)."""
    snapshot: dict[str, Any] | None = None
    diffs: list[tuple[int, bytes, int]] = []
    for rec in read_hftbacktest(path):
        if rec.kind is RecordKind.DEPTH_SNAPSHOT:
            snapshot = rec.payload
        elif rec.kind is RecordKind.DEPTH_DIFF:
            start = rec.raw.index('"data":') + len('"data":')
            data = rec.raw[start:-1].encode()  # the data object's text, byte for byte
            diffs.append((rec.payload["u"], data, len(rec.payload["b"]) + len(rec.payload["a"])))
    if snapshot is None:
        raise SystemExit(f"no snapshot in {path}")
    # The bridging diff may arrive before the snapshot (it does in the BTCUSDT file): keep every
    # diff with u > lastUpdateId, wherever it is in the file.
    kept = [(data, n) for u, data, n in diffs if u > snapshot["lastUpdateId"]]
    return snapshot, [data for data, _ in kept], sum(n for _, n in kept)


def run_baseline(snapshot: dict[str, Any], frames: list[bytes], reps: int) -> None:
    loads = orjson.loads
    for _ in range(reps):
        for raw in frames:
            d = loads(raw)
            for p, q in d["b"]:
                float(p)
                float(q)
            for p, q in d["a"]:
                float(p)
                float(q)


def run_apply(snapshot: dict[str, Any], frames: list[bytes], reps: int) -> None:
    start = OrderBook()
    start.load_snapshot(snapshot["bids"], snapshot["asks"])
    book = OrderBook()
    loads = orjson.loads
    apply = book.apply
    for _ in range(reps):
        book.replace_with(start)  # each pass replays from the snapshot (a dict copy: ~1% of a pass)
        for raw in frames:
            d = loads(raw)
            apply(d["b"], d["a"])


def run_apply_top(snapshot: dict[str, Any], frames: list[bytes], reps: int) -> None:
    start = OrderBook()
    start.load_snapshot(snapshot["bids"], snapshot["asks"])
    book = OrderBook()
    loads = orjson.loads
    apply = book.apply
    top = book.top
    for _ in range(reps):
        book.replace_with(start)
        for raw in frames:
            d = loads(raw)
            apply(d["b"], d["a"])
            top(20)


def run_sync_top(snapshot: dict[str, Any], frames: list[bytes], reps: int) -> None:
    loads = orjson.loads
    sync = BookSync("BTCUSDT", snapshot_limit=None)
    top = sync.book.top
    on_diff = sync.on_diff
    for _ in range(reps):
        # Each pass: reset() and reload the 2000-level snapshot (~2% of a pass), as after a reconnect.
        sync.reset()
        sync.on_snapshot(snapshot["lastUpdateId"], snapshot["bids"], snapshot["asks"])
        for raw in frames:
            d = loads(raw)
            on_diff(d["U"], d["u"], d["b"], d["a"], d["E"])
            top(20)
        if not (sync.in_sync and sync.counters.diffs_applied % len(frames) == 0):
            raise RuntimeError(f"replay lost sync: {sync.counters}")


def median_time(
    fn: Callable[[dict[str, Any], list[bytes], int], None],
    args: tuple[dict[str, Any], list[bytes], int],
    runs: int,
) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE)
    ap.add_argument("--seconds", type=float, default=3.0, help="target duration of one baseline run")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not args.file.exists():
        raise SystemExit(f"recorded file not found: {args.file} (set SHARED_DIR)")

    snapshot, frames, levels = load(args.file)
    t0 = time.perf_counter()
    run_baseline(snapshot, frames, 1)
    one = time.perf_counter() - t0
    reps = max(1, round(args.seconds / one))
    n_frames, n_levels = len(frames) * reps, levels * reps
    print(f"{args.file.name}: {len(frames)} diffs, {levels} level updates per pass, x{reps} passes")
    print(f"python {sys.version.split()[0]}, orjson {orjson.__version__}, median of {args.runs} runs")
    print(f"{'case':52s} {'frames/s':>10s} {'levels/s':>12s} {'vs (a)':>7s}")
    cases: list[tuple[str, Callable[[dict[str, Any], list[bytes], int], None]]] = [
        ("(a) baseline: orjson.loads + float() of each p, q", run_baseline),
        ("(b) orjson.loads + OrderBook.apply", run_apply),
        ("(c) (b) + top-20 read after every diff", run_apply_top),
        ("(d) (c) via BookSync.on_diff (full §8 rules)", run_sync_top),
    ]
    base = 0.0
    for name, fn in cases:
        t = median_time(fn, (snapshot, frames, reps), args.runs)
        rate = n_levels / t
        base = base or rate
        print(f"{name:52s} {n_frames / t:10,.0f} {rate:12,.0f} {rate / base:7.2f}")


if __name__ == "__main__":
    main()
