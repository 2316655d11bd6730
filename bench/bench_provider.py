"""Provider market-data benchmarks (issue #4).

Run from the repo root:  .venv/bin/python bench/bench_provider.py [--symbols 250,500,1000,2000]

1. Ingestion: depth-diff frames captured from the simulator's WebSocket (200 symbols), fed through
   the provider's own path (orjson parse → hub routing → SymbolBook/BookSync → exact book) versus
   the baseline `json.loads` + `float()` of every price and quantity of the same frames.
2. Capacity: simulator and provider as real processes; the provider tracks N symbols (all of the
   simulator's synthetic symbols: their depth@100ms streams, plus whatever the provider subscribes
   for tracked symbols); once every book is in sync, the provider
   process's CPU use (from /proc) and message rate are sampled for 10 s. The goal is 2,000 symbols
   under half a core.
3. Latency: at 100 symbols, a gRPC StreamDepth subscriber per symbol; latency = receive time minus
   the diff's exchange event time E (same host clock), p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import grpc  # noqa: E402
import orjson  # noqa: E402
from aiohttp import web  # noqa: E402
from binance.provider.v1 import market_data_pb2 as md  # noqa: E402
from binance.provider.v1 import market_data_pb2_grpc as md_grpc  # noqa: E402

from exchange_sim.app import create_app  # noqa: E402
from exchange_sim.config import SimConfig  # noqa: E402
from launcher.processes import free_port  # noqa: E402
from launcher.system import Ports, build_system  # noqa: E402
from provider.marketdata.hub import MarketConfig, MarketDataHub  # noqa: E402
from provider.marketdata.model import DepthSnapshot, ExchangeInfo  # noqa: E402
from service_runtime.config import Address  # noqa: E402


def symbols(n: int) -> list[str]:
    return [f"S{i:04d}USDT" for i in range(n)]


# --------------------------------------------------------------------------- 1. ingestion


class _Pool:
    """Stands in for the stream pool: the frames are fed by the benchmark itself."""

    def subscribe(self, streams: object) -> None: ...
    def unsubscribe(self, streams: object) -> None: ...
    async def start(self) -> None: ...
    async def close(self) -> None: ...


async def capture(n_symbols: int, seconds: float) -> tuple[list[str], dict[str, DepthSnapshot]]:
    names = symbols(n_symbols)
    config = SimConfig(addr=Address("127.0.0.1", 0), symbols=tuple(names), seed=7)
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    frames: list[str] = []
    snapshots: dict[str, DepthSnapshot] = {}
    try:
        async with aiohttp.ClientSession() as session:
            streams = "/".join(f"{s.lower()}@depth@100ms" for s in names)
            ws = await session.ws_connect(f"http://127.0.0.1:{port}/stream?streams={streams}", max_msg_size=0)
            first = await ws.receive()
            frames.append(first.data)
            for s in names:  # snapshots taken after the stream started: the documented procedure
                async with session.get(
                    f"http://127.0.0.1:{port}/api/v3/depth", params={"symbol": s, "limit": "100"}
                ) as r:
                    body = await r.json()
                snapshots[s] = DepthSnapshot(
                    body["lastUpdateId"],
                    tuple((p, q) for p, q in body["bids"]),
                    tuple((p, q) for p, q in body["asks"]),
                )
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                msg = await ws.receive()
                frames.append(msg.data)
            await ws.close()
    finally:
        await runner.cleanup()
    return frames, snapshots


def baseline(frames: list[str]) -> int:
    levels = 0
    for frame in frames:
        data = json.loads(frame)["data"]
        for side in (data["b"], data["a"]):
            for price, qty in side:
                float(price)
                float(qty)
                levels += 1
    return levels


async def ingestion(n_symbols: int = 200, seconds: float = 6.0, runs: int = 5) -> None:
    frames, snapshots = await capture(n_symbols, seconds)
    warm, timed = frames[: len(frames) // 5], frames[len(frames) // 5 :]
    levels = sum(len(orjson.loads(f)["data"]["b"]) + len(orjson.loads(f)["data"]["a"]) for f in timed)
    base_rates, our_rates = [], []
    for _ in range(runs):

        async def fetch(symbol: str, limit: int) -> DepthSnapshot:
            return snapshots[symbol]

        async def no_info() -> ExchangeInfo:
            return ExchangeInfo("UTC", 0, (), (), ())

        class Rest:
            depth = staticmethod(fetch)
            exchange_info = staticmethod(no_info)

        hub = MarketDataHub(Rest(), lambda handler: _Pool(), MarketConfig(snapshot_limit=100))  # type: ignore[arg-type,return-value]
        await hub.start()
        for s in snapshots:
            hub.use(s)
        on_message = hub.on_message
        loads = orjson.loads
        for frame in warm:
            doc = loads(frame)
            on_message(doc["stream"], doc["data"])
        for _ in range(5):
            await asyncio.sleep(0.01)  # let the snapshot tasks deliver
        for frame in warm[-50:]:
            doc = loads(frame)
            on_message(doc["stream"], doc["data"])
        started = time.perf_counter()
        for frame in timed:
            doc = loads(frame)
            on_message(doc["stream"], doc["data"])
        ours = time.perf_counter() - started
        in_sync = sum(t.book.in_sync for t in hub.tracked_symbols())
        await hub.close()
        started = time.perf_counter()
        baseline(timed)
        base = time.perf_counter() - started
        base_rates.append(len(timed) / base)
        our_rates.append(len(timed) / ours)
        if in_sync != n_symbols:
            raise SystemExit(f"only {in_sync}/{n_symbols} books in sync after the pass")
    b, o = statistics.median(base_rates), statistics.median(our_rates)
    per_frame = levels / len(timed)
    print(f"ingestion: {len(timed)} frames of {n_symbols} symbols, {per_frame:.1f} levels/frame, median of {runs}")
    print(f"  baseline json.loads+float : {b:10,.0f} frames/s {b * per_frame:12,.0f} levels/s  1.00")
    print(f"  provider path into books  : {o:10,.0f} frames/s {o * per_frame:12,.0f} levels/s  {o / b:.2f}")


# --------------------------------------------------------------------------- 2. capacity


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def scrape(port: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def start_system(n: int, root: Path) -> Any:
    ports = Ports(sim=free_port(), provider=free_port(), http=0, mcp=0, metrics=free_port())
    names = ",".join(symbols(n))
    env = {
        "SIM_SYMBOLS": names,
        "PROVIDER_SYMBOLS": names,
        "PROVIDER_SNAPSHOT_LIMIT": "100",
        "SIM_WEIGHT_PER_MINUTE": "1000000",
        "PROVIDER_STREAM_STALL_S": "60",
    }
    system = build_system(ports, root / "data", root, env)
    procs = [p for p in system.processes if p.name in ("exchange_sim", "provider")]
    for p in procs:
        p.start()
        p.wait_ready(120)
    return ports, procs


async def capacity(n: int, sample_s: float = 10.0) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        ports, procs = start_system(n, Path(tmp))
        try:
            started = time.monotonic()
            deadline = started + 300
            while True:
                m = await scrape(ports.metrics)
                if m.get("provider_symbols_in_sync", 0) >= n:
                    break
                if time.monotonic() > deadline:
                    print(f"  {n:5d} symbols: only {m.get('provider_symbols_in_sync', 0):.0f} in sync after 300 s")
                    return False
                await asyncio.sleep(1)
            sync_s = time.monotonic() - started
            pid = procs[1].popen.pid
            sim_pid = procs[0].popen.pid
            m0, c0, s0, t0 = await scrape(ports.metrics), cpu_seconds(pid), cpu_seconds(sim_pid), time.monotonic()
            await asyncio.sleep(sample_s)
            m1, c1, s1, t1 = await scrape(ports.metrics), cpu_seconds(pid), cpu_seconds(sim_pid), time.monotonic()
            elapsed = t1 - t0
            msgs = (m1["provider_stream_messages_total"] - m0["provider_stream_messages_total"]) / elapsed
            diffs = sum(v for k, v in m1.items() if k.startswith("provider_book_diffs_applied_total")) - sum(
                v for k, v in m0.items() if k.startswith("provider_book_diffs_applied_total")
            )
            resyncs = sum(v for k, v in m1.items() if k.startswith("provider_book_resyncs_total"))
            print(
                f"  {n:5d} symbols: all in sync after {sync_s:5.1f} s; {msgs:8,.0f} events/s "
                f"({diffs / elapsed / n:4.1f} diffs/s per symbol); provider CPU {(c1 - c0) / elapsed:.2f} core; "
                f"simulator CPU {(s1 - s0) / elapsed:.2f} core; in sync at end {m1['provider_symbols_in_sync']:.0f}; "
                f"resyncs {resyncs:.0f}"
            )
            return True
        finally:
            for p in reversed(procs):
                p.stop()


# --------------------------------------------------------------------------- 3. latency


async def latency(n: int = 100, sample_s: float = 10.0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ports, procs = start_system(n, Path(tmp))
        try:
            lat: list[float] = []
            async with grpc.aio.insecure_channel(f"127.0.0.1:{ports.provider}") as channel:
                stub = md_grpc.MarketDataStub(channel)
                stop_at = time.monotonic() + 60 + sample_s

                async def follow(symbol: str) -> None:
                    measuring = False
                    call = stub.StreamDepth(md.StreamDepthRequest(symbol=symbol, limit=100))
                    async for message in call:
                        now_ms = time.time() * 1000
                        if message.HasField("snapshot"):
                            measuring = message.snapshot.freshness.in_sync
                        elif measuring and time.monotonic() > stop_at - sample_s:
                            lat.append(now_ms - message.diff.event_time_ms)
                        if time.monotonic() > stop_at:
                            break
                    call.cancel()

                # Wait for every book first, so the sample is steady state (polling another process).
                give_up = time.monotonic() + 120
                while (await scrape(ports.metrics)).get("provider_symbols_in_sync", 0) < n:
                    if time.monotonic() > give_up:
                        raise SystemExit(f"the {n} books were not all in sync within 120 s")
                    await asyncio.sleep(0.5)
                stop_at = time.monotonic() + 5 + sample_s
                await asyncio.gather(*(follow(s) for s in symbols(n)))
            lat.sort()
            print(
                f"latency at {n} symbols ({len(lat)} diffs): p50 {lat[len(lat) // 2]:.1f} ms, "
                f"p99 {lat[int(len(lat) * 0.99)]:.1f} ms (simulator emit → gRPC subscriber)"
            )
        finally:
            for p in reversed(procs):
                p.stop()


async def main(args: argparse.Namespace) -> None:
    await ingestion()
    print("capacity (every tracked symbol's streams, snapshot limit 100):")
    for n in args.symbols:
        if not await capacity(n):
            break
    await latency()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", default="250,1000,2000", type=lambda s: [int(x) for x in s.split(",")])
    asyncio.run(main(parser.parse_args()))
