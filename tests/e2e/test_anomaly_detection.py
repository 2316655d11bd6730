"""The simulator injects a quote-stuffing burst, an iceberg and a flash-crash pattern, each on its
own symbol; the provider records them off the wire (depth@100ms diffs, aggregate trades) and its
Analytics service detects each, the iceberg at the price and on the side it was injected, while a
quiet symbol over the same period raises nothing (issue #6).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal

import aiohttp
import grpc
import pytest
from binance.provider.v1 import analytics_pb2 as an
from binance.provider.v1 import analytics_pb2_grpc as an_grpc

from launcher.system import System
from tests.e2e.conftest import running_system

pytestmark = pytest.mark.timeout(240)

SYMBOLS = ("BTCUSDT", "BNBUSDT", "SOLUSDT", "ETHUSDT")
QUIET, STUFFING, CRASH, ICEBERG = SYMBOLS
FLASH_AFTER_S = 55  # the flash-crash rule needs a baseline of about a minute of snapshots
ICEBERG_S = 50  # the walk up to the level takes ~10 s; the rest are ~40 seconds of refills (ends before FLASH_AFTER_S)
ICEBERG_EVIDENCE = {
    "refills",
    "traded_intervals",
    "refilled_quantity",
    "traded_quantity",
    "mean_displayed_quantity",
    "refill_rate",
    "median_refill_rate",
    "pooled_refill_probability",
    "p_value",
}


@pytest.fixture(scope="module")
def pattern_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("patterns")
    env = {"SIM_CONTROL": "on", "SIM_SYMBOLS": ",".join(SYMBOLS), "PROVIDER_SYMBOLS": ",".join(SYMBOLS)}
    with running_system(root, env) as system:
        yield system


async def last_recorded_ms(stub: an_grpc.AnalyticsAsyncStub, symbol: str) -> int:
    now = int(time.time() * 1000)
    request = an.GetSnapshotsRequest(symbol=symbol, start_ms=now - 120_000, end_ms=now + 1000, levels=1)
    last = 0
    async for batch in stub.GetSnapshots(request, timeout=10):
        if batch.snapshots:
            last = batch.snapshots[-1].time_ms
    return last


async def recorded_until(stub: an_grpc.AnalyticsAsyncStub, target_ms: int, timeout: float) -> None:
    """Waits (polling the provider's history) until every symbol has a snapshot at `target_ms` or later."""
    deadline = time.monotonic() + timeout
    while True:
        lasts = [await last_recorded_ms(stub, s) for s in SYMBOLS]
        if min(lasts) >= target_ms:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"history did not reach {target_ms}: {dict(zip(SYMBOLS, lasts, strict=True))}")
        await asyncio.sleep(min(1.0, max(0.05, (target_ms - min(lasts)) / 1000)))


async def inject(sim: aiohttp.ClientSession, kind: str, symbol: str, seconds: int) -> None:
    async with sim.post("/control/pattern", json={"kind": kind, "symbol": symbol, "seconds": seconds}) as r:
        assert r.status == 200, await r.text()


async def anomalies(stub: an_grpc.AnalyticsAsyncStub, symbol: str, start_ms: int, end_ms: int) -> list[an.Anomaly]:
    answer = await stub.GetAnomalies(
        an.GetAnomaliesRequest(symbol=symbol, window=an.WindowSpec(start_ms=start_ms, end_ms=end_ms)), timeout=20
    )
    return list(answer.anomalies)


async def level_history(
    stub: an_grpc.AnalyticsAsyncStub, symbol: str, price: Decimal, start_ms: int, end_ms: int
) -> str:
    """The ask quantity at `price` in each recorded snapshot ('.' beyond the visible asks, '0' inside
    them but absent; gaps named): what the detector saw of the iceberg, for a failure's message."""
    request = an.GetSnapshotsRequest(symbol=symbol, start_ms=start_ms, end_ms=end_ms, levels=0)
    cells = []
    async for batch in stub.GetSnapshots(request, timeout=20):
        cells += [f"gap {g.start_ms}-{g.end_ms}" for g in batch.gaps]
        for snap in batch.snapshots:
            asks = {Decimal(level.price): level.quantity for level in snap.asks}
            deepest = max(asks, default=Decimal(0))
            cells.append(asks.get(price, "0" if price < deepest else "."))
    return " ".join(cells)


async def test_injected_patterns_are_detected_and_the_quiet_symbol_raises_nothing(
    pattern_system: System,
) -> None:
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{pattern_system.ports.provider}") as channel,
        aiohttp.ClientSession(f"http://127.0.0.1:{pattern_system.ports.sim}") as sim,
    ):
        stub = an_grpc.AnalyticsStub(channel)
        start = int(time.time() * 1000) // 1000 * 1000 + 1000
        await recorded_until(stub, start, 60)  # every symbol is being recorded
        injected = int(time.time() * 1000) // 1000 * 1000
        await inject(sim, "quote_stuffing", STUFFING, 5)
        iceberg_from = int(time.time() * 1000) // 1000 * 1000
        await inject(sim, "iceberg", ICEBERG, ICEBERG_S)
        await recorded_until(stub, start + FLASH_AFTER_S * 1000, 120)
        crash_start = int(time.time() * 1000)
        await inject(sim, "flash_crash", CRASH, 5)
        end = crash_start + 8_000
        await recorded_until(stub, end, 60)

        stuffing = await anomalies(stub, STUFFING, injected, injected + 10_000)
        assert any(a.type == an.ANOMALY_TYPE_QUOTE_STUFFING for a in stuffing), f"stuffing: {stuffing}"
        hit = next(a for a in stuffing if a.type == an.ANOMALY_TYPE_QUOTE_STUFFING)
        assert hit.severity >= an.SEVERITY_MEDIUM and hit.evidence and hit.recommended_action

        crashes = await anomalies(stub, CRASH, start, end)
        flash = [a for a in crashes if a.type == an.ANOMALY_TYPE_FLASH_CRASH_RISK]
        assert flash, crashes
        assert any(e.detail for a in flash for e in a.evidence)

        async with sim.get("/control/counters") as r:
            counters = await r.json()
        [iceberg] = [p for p in counters["patterns"] if p["kind"] == "iceberg"]
        assert not iceberg["running"] and iceberg["price"] is not None, iceberg
        price = Decimal(iceberg["price"])
        found = await anomalies(stub, ICEBERG, iceberg_from, iceberg["endMs"] + 1000)
        if [(a.type, Decimal(a.price)) for a in found] != [(an.ANOMALY_TYPE_ICEBERG, price)]:
            seen = await level_history(stub, ICEBERG, price, iceberg_from, iceberg["endMs"] + 1000)
            raise AssertionError(f"iceberg {iceberg}, found {found}; the level per snapshot: {seen}")
        [hit] = found
        evidence = {e.name: e for e in hit.evidence}
        value = {name: e.value for name, e in evidence.items()}
        assert set(evidence) == ICEBERG_EVIDENCE, hit
        assert evidence["refills"].detail.startswith("ask side")  # the hidden seller
        assert "sell interest" in hit.recommended_action
        assert hit.confidence >= 0.99 and hit.severity >= an.SEVERITY_LOW
        assert value["refills"] >= 15 and value["refill_rate"] > 5 * value["median_refill_rate"]
        assert value["refilled_quantity"] > 0 and value["traded_quantity"] > 0

        quiet = await anomalies(stub, QUIET, start, end)
        assert quiet == [], "\n".join(str(a) for a in quiet)
        assert {p["symbol"] for p in counters["patterns"]} == {STUFFING, ICEBERG, CRASH}
