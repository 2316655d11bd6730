"""kill -9 during heavy writes: the store reopens, history up to the last flush is there, recording goes on."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from provider.history.store import HistoryStore, Kind
from provider.history.writer import HistoryWriter, Record
from tests.provider.history.test_codec import T0, make_bar, make_snapshot, make_trades

ROOT = Path(__file__).resolve().parents[3]
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
FLUSH_EVERY = 30  # seconds of data between reported flushes
WANTED_FLUSHES = 6


def records_for(second: int) -> list[Record]:
    t = T0 + 1000 * second
    out: list[Record] = []
    for symbol in SYMBOLS:
        out += [make_snapshot(symbol, t), make_bar(symbol, t)]
        out += make_trades(symbol, t, 5, first_agg=10 * second)  # agg ids 10*s .. 10*s+4, times in [t, t+200)
    return out


async def _child(path: Path) -> None:
    store = HistoryStore(path, map_size=256 << 20)
    # The queue never fills: between reported flushes at most FLUSH_EVERY seconds of records are queued.
    writer = HistoryWriter(store, flush_interval_s=0.05, max_queue=100_000, retention_interval_s=None)
    await writer.start()
    second = 0
    while True:  # runs until killed
        for record in records_for(second):
            if not writer.submit(record):
                raise SystemExit("history queue full")
        if second % FLUSH_EVERY == FLUSH_EVERY - 1:
            await writer.flush()
            print(f"flushed {second}", flush=True)
        second += 1
        await asyncio.sleep(0)


def child(path: str) -> None:
    asyncio.run(_child(Path(path)))


def _lines(stream: object, out: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        out.put(line.strip())
    out.put(None)


def test_kill_9_during_heavy_writes(tmp_path: Path) -> None:
    code = "import sys; from tests.provider.history.test_crash import child; child(sys.argv[1])"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    flushed: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(flushed) < WANTED_FLUSHES:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, f"child exited: {proc.stderr.read() if proc.stderr else ''}"
            flushed.append(int(line.split()[1]))
        os.kill(proc.pid, signal.SIGKILL)  # mid-write: the child never stops writing
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    while (line := lines.get_nowait()) is not None:  # flushes reported before the kill, read after it
        flushed.append(int(line.split()[1]))
    last = flushed[-1]
    end = T0 + 1000 * (last + 1)

    with HistoryStore(tmp_path, map_size=256 << 20) as store:
        stats = store.stats()
        for symbol in SYMBOLS:
            # Everything up to the last reported flush is there, exactly.
            assert store.gaps(symbol, T0, end) == []
            assert store.snapshot_records(symbol, T0, end) == [
                make_snapshot(symbol, T0 + 1000 * s) for s in range(last + 1)
            ]
            assert len(store.activity(symbol, T0, end)) == last + 1
            assert store.trades(symbol, T0, end).agg_id.tolist() == [
                10 * s + k for s in range(last + 1) for k in range(5)
            ]
            # Whatever was committed after it decodes and is right too (every stored block is read).
            later = store.snapshot_records(symbol, T0, T0 + 10**9)
            assert later == [make_snapshot(symbol, r.time_ms) for r in later]
            assert len(store.trades(symbol, T0, T0 + 10**9)) >= 5 * (last + 1)
        assert {r.symbol for r in stats.ranges if r.kind is Kind.SNAPSHOTS} == set(SYMBOLS)
        recorded = len(store.snapshots("BTCUSDT", T0, T0 + 10**9))

        # Recording continues where it stopped.
        async def more() -> None:
            writer = HistoryWriter(store, flush_interval_s=0.05, retention_interval_s=None)
            await writer.start()
            try:
                for second in range(recorded, recorded + 30):
                    for record in records_for(second):
                        assert writer.submit(record)
                await asyncio.wait_for(writer.flush(), 10)
            finally:
                await asyncio.wait_for(writer.close(), 10)

        asyncio.run(more())
        for symbol in SYMBOLS:
            assert store.gaps(symbol, T0, T0 + 1000 * (recorded + 30)) == []
            assert store.snapshot_records(symbol, T0 + 1000 * recorded, T0 + 10**9) == [
                make_snapshot(symbol, T0 + 1000 * s) for s in range(recorded, recorded + 30)
            ]
