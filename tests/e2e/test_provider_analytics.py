"""Recording and the Analytics service, end to end: the provider records the simulator's synthetic
market into LMDB every second and answers every Analytics RPC from it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from binance.provider.v1 import analytics_pb2 as an
from binance.provider.v1 import analytics_pb2_grpc as an_grpc

from launcher.system import System
from tests.e2e.conftest import running_system

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def recording_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("analytics")
    with running_system(root, {"PROVIDER_SYMBOLS": "BTCUSDT"}) as system:
        yield system


@pytest.fixture
async def stub(recording_system: System) -> AsyncIterator[an_grpc.AnalyticsAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{recording_system.ports.provider}") as channel:
        yield an_grpc.AnalyticsStub(channel)


async def snapshots(stub: an_grpc.AnalyticsAsyncStub, start_ms: int, end_ms: int) -> list[an.BookSnapshot]:
    out: list[an.BookSnapshot] = []
    async for batch in stub.GetSnapshots(
        an.GetSnapshotsRequest(symbol="BTCUSDT", start_ms=start_ms, end_ms=end_ms, levels=5), timeout=10
    ):
        out.extend(batch.snapshots)
    return out


async def recorded_seconds(stub: an_grpc.AnalyticsAsyncStub, want: int, timeout: float) -> list[an.BookSnapshot]:
    deadline = time.monotonic() + timeout
    while True:
        now = int(time.time() * 1000)
        got = await snapshots(stub, now - 60_000, now)
        if len(got) >= want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.5)


async def test_one_snapshot_per_second_is_recorded(stub: an_grpc.AnalyticsAsyncStub) -> None:
    got = await recorded_seconds(stub, 5, 30)
    assert len(got) >= 5
    times = [s.time_ms for s in got]
    assert all(t % 1000 == 0 for t in times)
    assert times == sorted(times) and len(set(times)) == len(times)
    ids = [s.last_update_id for s in got]
    assert ids == sorted(ids) and ids[-1] > ids[0]
    last = got[-1]
    assert 1 <= len(last.bids) <= 5 and 1 <= len(last.asks) <= 5
    assert float(last.bids[0].price) < float(last.asks[0].price)


async def test_every_analytics_rpc_answers_with_its_coverage(stub: an_grpc.AnalyticsAsyncStub) -> None:
    await recorded_seconds(stub, 5, 30)
    window = an.WindowSpec(lookback_seconds=60)
    flow = await stub.GetOrderFlow(an.GetOrderFlowRequest(symbol="BTCUSDT", window=window), timeout=10)
    profile = await stub.GetVolumeProfile(an.GetVolumeProfileRequest(symbol="BTCUSDT", window=window), timeout=10)
    anomalies = await stub.GetAnomalies(an.GetAnomaliesRequest(symbol="BTCUSDT", window=window), timeout=10)
    health = await stub.GetMicrostructureHealth(
        an.GetMicrostructureHealthRequest(symbol="BTCUSDT", window=window), timeout=10
    )
    liquidity = await stub.GetLiquidityMap(an.GetLiquidityMapRequest(symbol="BTCUSDT", window=window), timeout=10)
    for meta in (flow.meta, profile.meta, anomalies.meta, health.meta, liquidity.meta):
        assert meta.symbol == "BTCUSDT"
        assert meta.requested.end_ms - meta.requested.start_ms == 60_000
        assert meta.requested.start_ms <= meta.covered.start_ms <= meta.covered.end_ms <= meta.requested.end_ms
        assert meta.thresholds, "every answer states the thresholds it used"
    assert flow.meta.trade_count > 0 and flow.buy_volume + flow.sell_volume > 0
    assert flow.direction != an.FLOW_DIRECTION_UNSPECIFIED
    assert profile.bins and profile.point_of_control
    assert 0 <= health.score <= 100 and len(health.components) == 4
    assert health.meta.snapshot_count > 0
    # The synthetic market is quiet: no anomaly.
    assert list(anomalies.anomalies) == []


async def test_bad_parameters_name_the_field(stub: an_grpc.AnalyticsAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetOrderFlow(
            an.GetOrderFlowRequest(symbol="BTCUSDT", window=an.WindowSpec(start_ms=5, end_ms=1)), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetOrderFlow(an.GetOrderFlowRequest(symbol="NOPEUSDT"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_history_survives_kill_9_and_recording_continues(
    recording_system: System, stub: an_grpc.AnalyticsAsyncStub
) -> None:
    before = await recorded_seconds(stub, 3, 30)
    provider = recording_system.process("provider")
    provider.kill()
    provider.start()
    provider.wait_ready(30)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{recording_system.ports.provider}") as channel:
        fresh = an_grpc.AnalyticsStub(channel)
        deadline = time.monotonic() + 30
        while True:
            now = int(time.time() * 1000)
            after = await snapshots(fresh, before[0].time_ms, now)
            new = [s for s in after if s.time_ms > before[-1].time_ms + 1000]
            if new or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    kept = {s.time_ms for s in after}
    # Everything flushed before the kill is there (the last second or two may not have been flushed).
    assert {s.time_ms for s in before[:-2]} <= kept
    assert new, "recording did not continue after the restart"
