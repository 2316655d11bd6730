"""tools/call latency through gateway_mcp vs the same gRPC call made directly (issue #8).

Run from the repo root:  .venv/bin/python bench/bench_mcp.py [--calls 500] [--rounds 5]

Simulator, provider and gateways run as real processes (`launcher.system`, as `make run`). One MCP
session over Streamable HTTP with the official SDK client (bearer token, read scope) calls
`get_order_book_summary` for BTCUSDT with depth 20; the baseline is the gRPC call that tool makes,
MarketData/GetOrderBook(limit=20), straight to the provider on one channel. Both run in the same
process, interleaved in rounds, after a warm-up. Reported: p50/p99 of each and the gateway's added
latency (JSON-RPC over HTTP + SSE, auth, schema validation, the summary and its text rendering).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import httpx2  # noqa: E402
from binance.provider.v1 import market_data_pb2 as md  # noqa: E402
from binance.provider.v1 import market_data_pb2_grpc as md_grpc  # noqa: E402
from mcp.client.client import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from gateway_auth.tokens import Scope, TokenStore  # noqa: E402
from launcher.processes import free_port  # noqa: E402
from launcher.system import Ports, build_system  # noqa: E402

SYMBOL = "BTCUSDT"
DEPTH = 20
WARMUP = 50
BOOK_READY_TIMEOUT_S = 30.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def wait_for_book(stub: md_grpc.MarketDataAsyncStub) -> None:
    """The provider serves the book once it is in sync with the venue; measure only after that."""
    deadline = time.monotonic() + BOOK_READY_TIMEOUT_S
    while True:
        try:
            book = await stub.GetOrderBook(md.GetOrderBookRequest(symbol=SYMBOL, limit=DEPTH), timeout=5)
            if book.bids and book.asks:
                return
        except grpc.aio.AioRpcError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the provider's {SYMBOL} book was not ready within {BOOK_READY_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.2)


async def direct(stub: md_grpc.MarketDataAsyncStub, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await stub.GetOrderBook(md.GetOrderBookRequest(symbol=SYMBOL, limit=DEPTH), timeout=10)
        times.append((time.perf_counter() - start) * 1000)
    return times


async def through_gateway(client: Client, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        result = await client.call_tool("get_order_book_summary", {"symbol": SYMBOL, "depth": DEPTH})
        times.append((time.perf_counter() - start) * 1000)
        if result.is_error or result.structured_content is None:
            raise SystemExit(f"tools/call failed: {result.content}")
    return times


async def run(calls: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store, token = TokenStore().issue("bench", frozenset({Scope.READ}))
        store.save(root / "tokens.json")
        ports = Ports(sim=free_port(), provider=free_port(), http=free_port(), mcp=free_port(), metrics=free_port())
        env = {"PROVIDER_SYMBOLS": SYMBOL, "GATEWAY_TOKENS_FILE": str(root / "tokens.json")}
        system = build_system(ports, data_dir=root / "data", log_dir=root, extra_env=env)
        system.start()
        try:
            url = f"http://127.0.0.1:{ports.mcp}/mcp"
            async with (
                grpc.aio.insecure_channel(f"127.0.0.1:{ports.provider}") as channel,
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30)) as http,
                Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
            ):
                stub = md_grpc.MarketDataStub(channel)
                await wait_for_book(stub)
                await direct(stub, WARMUP)
                await through_gateway(client, WARMUP)
                grpc_ms: list[float] = []
                mcp_ms: list[float] = []
                per_round = max(1, calls // rounds)
                for _ in range(rounds):
                    grpc_ms += await direct(stub, per_round)
                    mcp_ms += await through_gateway(client, per_round)
        finally:
            system.stop()
    print(f"{len(mcp_ms)} calls each, {rounds} interleaved rounds, {SYMBOL} depth {DEPTH}")
    print("| | p50 ms | p99 ms | mean ms |")
    print("|---|---|---|---|")
    for label, values in (
        ("gRPC MarketData/GetOrderBook, direct to the provider", grpc_ms),
        ("MCP tools/call get_order_book_summary, through gateway_mcp", mcp_ms),
    ):
        print(f"| {label} | {pct(values, 0.5):.2f} | {pct(values, 0.99):.2f} | {statistics.fmean(values):.2f} |")
    print(f"added by the gateway at p50: {pct(mcp_ms, 0.5) - pct(grpc_ms, 0.5):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=500, help="measured calls per path")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds the calls are split into")
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.rounds))


if __name__ == "__main__":
    main()
