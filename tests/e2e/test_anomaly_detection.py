"""The simulator injects a quote-stuffing burst and a flash-crash pattern, each on its own symbol;
the provider records them and its Analytics service detects each, while a quiet symbol over the
same period raises nothing (issue #6).

The iceberg pattern is detected in-process (tests/exchange_sim/market/test_patterns.py) but not
reliably end to end yet: its sweeps and refills often fall in one depth@100ms window, where the
diff stream nets them out. It is left out here rather than made a flaky test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import grpc
import pytest
from binance.provider.v1 import analytics_pb2 as an
from binance.provider.v1 import analytics_pb2_grpc as an_grpc

from launcher.processes import free_port
from launcher.system import Ports, System, build_system

pytestmark = pytest.mark.timeout(240)

SYMBOLS = ("BTCUSDT", "BNBUSDT", "SOLUSDT")
QUIET, STUFFING, CRASH = SYMBOLS
FLASH_AFTER_S = 55  # the flash-crash rule needs a baseline of about a minute of snapshots


@pytest.fixture(scope="module")
def pattern_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("patterns")
    ports = Ports(sim=free_port(), provider=free_port(), http=free_port(), mcp=free_port(), metrics=free_port())
    env = {"SIM_CONTROL": "on", "SIM_SYMBOLS": ",".join(SYMBOLS), "PROVIDER_SYMBOLS": ",".join(SYMBOLS)}
    system = build_system(ports, data_dir=root / "data", log_dir=root, extra_env=env)
    system.start()
    try:
        yield system
    finally:
        codes = system.stop()
        assert codes == dict.fromkeys(codes, 0), f"unclean exit codes {codes}"


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

        quiet = await anomalies(stub, QUIET, start, end)
        assert quiet == [], "\n".join(str(a) for a in quiet)
        async with sim.get("/control/counters") as r:
            counters = await r.json()
        assert "pattern" in str(counters).lower()
