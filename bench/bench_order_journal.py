"""What the order journal costs a placement: one `PlacementJournal.put` on disk (LMDB, no fsync).

Run from the repo root:  .venv/bin/python bench/bench_order_journal.py [--puts 20000]

A placement writes two records (before the request leaves, then its outcome). Baseline, in the same
run: the same puts into a journal kept in memory only. Past the journal's capacity (10,000) every
put also evicts the oldest record, as in a long-running provider.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provider.trading.journal import PlacementJournal, SentRecord, SentState


def put_times_us(journal: PlacementJournal, puts: int) -> list[float]:
    times = []
    for i in range(puts):
        record = SentRecord(SentState.SENDING, "BTCUSDT", 1_700_000_000_000 + i)
        started = time.perf_counter()
        journal.put(f"pv-{i:024x}", record)
        times.append((time.perf_counter() - started) * 1e6)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--puts", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        on_disk = PlacementJournal(Path(tmp) / "orders")
        disk = put_times_us(on_disk, args.puts)
        on_disk.close()
    memory = put_times_us(PlacementJournal(), args.puts)
    print(f"PlacementJournal.put, {args.puts:,} puts (µs)")
    print("| journal | median | p99 |")
    print("|---|---|---|")
    for name, times in (("in memory (baseline)", memory), ("LMDB on disk", disk)):
        print(f"| {name} | {statistics.median(times):.1f} | {sorted(times)[int(len(times) * 0.99)]:.1f} |")


if __name__ == "__main__":
    main()
