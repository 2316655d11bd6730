"""Analytics RPCs end to end over gRPC, on one hour of recorded history (issue #6).

Run from the repo root:  .venv/bin/python bench/bench_analytics_rpc.py [--runs 50]

An LMDB history store is filled with one synthetic hour of BTCUSDT (3,600 top-20 snapshots, 3,600
activity bars, ~100,000 aggregate trades); the provider's Analytics servicer serves it from an
in-process gRPC server on loopback, and a gRPC client calls each RPC over that hour. p50/p99 per
RPC; the goal is p99 under 50 ms. Baseline in the same run: a bare unary gRPC call (GetSnapshots
of one second), to show the transport's share.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from binance.provider.v1 import analytics_pb2 as an  # noqa: E402
from binance.provider.v1 import analytics_pb2_grpc as an_grpc  # noqa: E402

from provider.binance.budget import WeightBudget  # noqa: E402
from provider.history.codec import ActivityRecord, SnapshotRecord, TradeRecord  # noqa: E402
from provider.history.store import HistoryStore, WriteBatch  # noqa: E402
from provider.marketdata.hub import MarketConfig, MarketDataHub  # noqa: E402
from provider.marketdata.model import (  # noqa: E402
    DepthSnapshot,
    ExchangeInfo,
    FilterType,
    LotSizeFilter,
    PriceFilter,
    SymbolRules,
    SymbolStatus,
)
from provider.service.analytics import AnalyticsServicer  # noqa: E402

HOUR_MS = 3_600_000
START = 1_800_000_000_000


def fill(store: HistoryStore, rng: random.Random) -> int:
    mid = 60_000.0
    trades = 0
    agg_id = 1
    for minute in range(60):
        snaps, bars, tape = [], [], []
        for s in range(60):
            t = START + (minute * 60 + s) * 1000
            mid += rng.gauss(0, 3)
            bid = round(mid - 0.005, 2)
            bids = [(f"{bid - i * 0.01:.2f}", f"{rng.uniform(0.01, 2):.5f}") for i in range(20)]
            asks = [(f"{bid + 0.01 + i * 0.01:.2f}", f"{rng.uniform(0.01, 2):.5f}") for i in range(20)]
            snaps.append(SnapshotRecord("BTCUSDT", t, agg_id, bids, asks))
            n = rng.randint(15, 40)
            buy = sell = 0.0
            for k in range(n):
                qty = rng.uniform(0.001, 0.5)
                maker = rng.random() < 0.5
                sell, buy = (sell + qty, buy) if maker else (sell, buy + qty)
                price = bid if maker else bid + 0.01
                tape.append(TradeRecord("BTCUSDT", agg_id, f"{price:.2f}", f"{qty:.5f}", agg_id, agg_id, t + k, maker))
                agg_id += 1
            trades += n
            bars.append(
                ActivityRecord("BTCUSDT", t, rng.uniform(1, 5), rng.uniform(0, 4), sell, rng.randint(20, 80),
                               rng.uniform(1, 5), rng.uniform(0, 4), buy, rng.randint(20, 80), n, buy, sell, False)
            )  # fmt: skip
        store.write(WriteBatch(snapshots=snaps, activity=bars, trades=tape))
    return trades


class _Pool:
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def subscribe(self, streams: object) -> None: ...
    def unsubscribe(self, streams: object) -> None: ...


class _Rest:
    budget = WeightBudget()

    async def exchange_info(self, symbols: object = None) -> ExchangeInfo:
        rules = SymbolRules(
            "BTCUSDT", SymbolStatus.TRADING, "BTC", 8, "USDT", 8, 8, 8, (), False, False, False, False, False,
            False, False, False, True, False,
            (PriceFilter("0.01", "1000000", "0.01"), LotSizeFilter(FilterType.LOT_SIZE, "0.00001", "9000", "0.00001")),
            (), None, (),
        )  # fmt: skip
        return ExchangeInfo("UTC", 0, (), (), (rules,))

    async def depth(self, symbol: str, limit: int) -> DepthSnapshot:
        raise OSError("no venue in this benchmark")


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = HistoryStore(Path(tmp) / "history", levels=20, retention_ms=10 * 365 * 86_400_000)
        started = time.perf_counter()
        trades = fill(store, random.Random(5))
        print(f"1 hour of BTCUSDT written ({trades:,} trades) in {time.perf_counter() - started:.1f} s")
        hub = MarketDataHub(_Rest(), lambda handler: _Pool(), MarketConfig())  # type: ignore[arg-type,return-value]
        await hub.start()
        await hub.wait_ready(5)
        server = grpc.aio.server()
        an_grpc.add_AnalyticsServicer_to_server(AnalyticsServicer(hub, store, wall_ms=lambda: START + HOUR_MS), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        window = an.WindowSpec(start_ms=START, end_ms=START + HOUR_MS)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = an_grpc.AnalyticsStub(channel)

                async def snapshots_1s() -> object:
                    req = an.GetSnapshotsRequest(symbol="BTCUSDT", start_ms=START, end_ms=START + 1000, levels=1)
                    return [m async for m in stub.GetSnapshots(req)]

                calls: dict[str, Callable[[], Awaitable[object]]] = {
                    "baseline: GetSnapshots of 1 s": snapshots_1s,
                    "GetOrderFlow": lambda: stub.GetOrderFlow(an.GetOrderFlowRequest(symbol="BTCUSDT", window=window)),
                    "GetVolumeProfile": lambda: stub.GetVolumeProfile(
                        an.GetVolumeProfileRequest(symbol="BTCUSDT", window=window)
                    ),
                    "GetAnomalies": lambda: stub.GetAnomalies(an.GetAnomaliesRequest(symbol="BTCUSDT", window=window)),
                    "GetMicrostructureHealth": lambda: stub.GetMicrostructureHealth(
                        an.GetMicrostructureHealthRequest(symbol="BTCUSDT", window=window)
                    ),
                    "GetLiquidityMap": lambda: stub.GetLiquidityMap(
                        an.GetLiquidityMapRequest(symbol="BTCUSDT", window=window)
                    ),
                }
                print(f"{'RPC over 1 hour':32s}{'p50 ms':>9s}{'p99 ms':>9s}   goal p99 < 50 ms ({runs} runs)")
                for name, call in calls.items():
                    await call()  # warm-up
                    times = []
                    for _ in range(runs):
                        t0 = time.perf_counter()
                        await call()
                        times.append((time.perf_counter() - t0) * 1000)
                    times.sort()
                    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
                    verdict = "" if name.startswith("baseline") else ("ok" if p99 < 50 else "OVER")
                    print(f"{name:32s}{statistics.median(times):9.2f}{p99:9.2f}   {verdict}")
        finally:
            await server.stop(0)
            await hub.close()
            store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    asyncio.run(main(parser.parse_args().runs))
