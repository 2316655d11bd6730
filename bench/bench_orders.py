"""Order round-trip latency through the provider vs calling the simulator directly (issue #5).

Run from the repo root:  .venv/bin/python bench/bench_orders.py [--orders 150]

Simulator and provider run as real processes (PROVIDER_TRADING=on). Each round trip places a
LIMIT BUY far below the market (it rests, no fill) and cancels it: once through the provider's
gRPC Trading service (validation, client order id, signing, weight budget), once with a signed
REST request straight to the simulator (the baseline, same machine, same run). Reported: p50/p99
of place and of cancel for both, and the provider's added latency.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import grpc  # noqa: E402
from binance.provider.v1 import common_pb2 as c  # noqa: E402
from binance.provider.v1 import trading_pb2 as tr  # noqa: E402
from binance.provider.v1 import trading_pb2_grpc as tr_grpc  # noqa: E402

from exchange_sim.accounts import DEMO_API_KEY, DEMO_API_SECRET  # noqa: E402
from launcher.processes import free_port  # noqa: E402
from launcher.system import Ports, build_system  # noqa: E402

PACE_S = 0.22  # one order per 0.22 s: under the venue's 50 orders / 10 s per account
PRICE = "30000.00"  # BTCUSDT trades near 60,000 in the simulator: this rests
QTY = "0.001"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def direct(session: aiohttp.ClientSession, base: str, n: int) -> tuple[list[float], list[float]]:
    places, cancels = [], []

    async def signed(method: str, params: dict[str, str]) -> dict[str, object]:
        params = {**params, "timestamp": str(int(time.time() * 1000))}
        query = urlencode(params)
        signature = hmac.new(DEMO_API_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
        url = f"{base}/api/v3/order?{query}&signature={signature}"
        async with session.request(method, url, headers={"X-MBX-APIKEY": DEMO_API_KEY}) as response:
            body: dict[str, object] = await response.json()
            if response.status != 200:
                raise SystemExit(f"direct {method}: {response.status} {body}")
            return body

    for i in range(n):
        cid = f"direct-{i}-{time.monotonic_ns()}"
        started = time.perf_counter()
        await signed(
            "POST",
            {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": QTY, "price": PRICE, "newClientOrderId": cid},
        )  # fmt: skip
        places.append((time.perf_counter() - started) * 1000)
        next_at = started + PACE_S
        started = time.perf_counter()
        await signed("DELETE", {"symbol": "BTCUSDT", "origClientOrderId": cid})
        cancels.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    return places, cancels


async def provider(stub: tr_grpc.TradingAsyncStub, n: int) -> tuple[list[float], list[float]]:
    places, cancels = [], []
    for i in range(n):
        cid = f"prov-{i}-{time.monotonic_ns()}"
        spec = tr.OrderSpec(
            symbol="BTCUSDT", side=c.SIDE_BUY, type=c.ORDER_TYPE_LIMIT, time_in_force=c.TIME_IN_FORCE_GTC,
            quantity=QTY, price=PRICE, client_order_id=cid,
        )  # fmt: skip
        started = time.perf_counter()
        placed = await stub.PlaceOrder(tr.PlaceOrderRequest(order=spec), timeout=10)
        places.append((time.perf_counter() - started) * 1000)
        if placed.order.status != c.ORDER_STATUS_NEW:
            raise SystemExit(f"provider place: unexpected status {placed.order.status}")
        next_at = started + PACE_S
        started = time.perf_counter()
        await stub.CancelOrder(tr.CancelOrderRequest(symbol="BTCUSDT", client_order_id=cid), timeout=10)
        cancels.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    return places, cancels


async def main(orders: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ports = Ports(sim=free_port(), provider=free_port(), http=0, mcp=0, metrics=free_port())
        env = {"PROVIDER_TRADING": "on", "SIM_WEIGHT_PER_MINUTE": "1000000", "PROVIDER_SYMBOLS": "BTCUSDT"}
        system = build_system(ports, Path(tmp) / "data", Path(tmp), env)
        procs = [p for p in system.processes if p.name in ("exchange_sim", "provider")]
        for p in procs:
            p.start()
            p.wait_ready(60)
        try:
            async with (
                aiohttp.ClientSession() as session,
                grpc.aio.insecure_channel(f"127.0.0.1:{ports.provider}") as channel,
            ):
                stub = tr_grpc.TradingStub(channel)
                await provider(stub, 20)  # warm-up: connections, clock offset, exchange info
                await direct(session, f"http://127.0.0.1:{ports.sim}", 20)
                results: dict[str, list[float]] = {"pp": [], "pc": [], "dp": [], "dc": []}
                for _ in range(3):  # interleaved rounds, so machine noise hits both alike
                    pp, pc = await provider(stub, orders // 3)
                    dp, dc = await direct(session, f"http://127.0.0.1:{ports.sim}", orders // 3)
                    results["pp"] += pp
                    results["pc"] += pc
                    results["dp"] += dp
                    results["dc"] += dc
        finally:
            for p in reversed(procs):
                p.stop()
    print(f"order round trips: {len(results['pp'])} place + cancel each way (LIMIT resting, BTCUSDT)")
    print(f"{'':28s}{'p50 ms':>9s}{'p99 ms':>9s}")
    for label, key in (
        ("direct to simulator: place", "dp"),
        ("via provider gRPC: place", "pp"),
        ("direct to simulator: cancel", "dc"),
        ("via provider gRPC: cancel", "pc"),
    ):
        print(f"{label:28s}{statistics.median(results[key]):9.2f}{pct(results[key], 0.99):9.2f}")
    for what, ours, base in (("place", "pp", "dp"), ("cancel", "pc", "dc")):
        added = statistics.median(results[ours]) - statistics.median(results[base])
        print(f"added by the provider ({what}), p50: {added:.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=150)
    asyncio.run(main(parser.parse_args().orders))
