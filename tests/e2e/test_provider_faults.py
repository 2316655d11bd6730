"""Faults injected by the simulator's control API; the provider recovers and never serves a bad book.

Throughout, a gRPC StreamDepth client rebuilds the BTCUSDT book (asserting continuity) and is
compared with the simulator's own book at shared update ids: a book served as in sync that
differs from the venue's would fail the test, whatever the provider believes about itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal

import aiohttp
import grpc
import pytest
from binance.provider.v1 import market_data_pb2 as md
from binance.provider.v1 import market_data_pb2_grpc as md_grpc

from launcher.system import System
from tests.e2e.conftest import running_system
from tests.e2e.test_provider_market_data import ClientBook

pytestmark = pytest.mark.timeout(180)

STALL_S = 2.0  # the provider's stall watchdog in this system


@pytest.fixture(scope="module")
def fault_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("faults")
    env = {"SIM_CONTROL": "on", "PROVIDER_SYMBOLS": "BTCUSDT", "PROVIDER_STREAM_STALL_S": str(STALL_S)}
    with running_system(root, env) as system:
        yield system


class Observer:
    """A StreamDepth client plus the venue's truth, compared at shared update ids."""

    def __init__(self, stub: md_grpc.MarketDataAsyncStub, sim: aiohttp.ClientSession) -> None:
        self.stub, self.sim = stub, sim
        self.book = ClientBook()
        self.history: dict[int, tuple[object, object]] = {}
        self.voids = 0
        self.snapshots = 0
        self.compared = 0
        self.mismatches: list[int] = []
        self.progress = asyncio.Event()  # set on every message
        self._call = stub.StreamDepth(md.StreamDepthRequest(symbol="BTCUSDT", limit=1000))
        self._task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for message in self._call:
            if message.HasField("snapshot"):
                self.snapshots += 1
                self.voids += not message.snapshot.freshness.in_sync
            self.book.on(message)
            self.progress.set()
            if self.book.valid:
                self.history[self.book.last_id] = self.book.top(20)
                if len(self.history) > 2000:
                    del self.history[min(self.history)]

    async def compare_once(self) -> bool:
        async with self.sim.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": "100"}) as response:
            truth = await response.json()
        target = truth["lastUpdateId"]
        deadline = time.monotonic() + 3
        while target not in self.history and self.book.last_id < target and time.monotonic() < deadline:
            self.progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.progress.wait(), max(0.0, deadline - time.monotonic()))
        if target not in self.history:
            return False
        bids, asks = self.history[target]
        want = (
            [(Decimal(p), Decimal(q)) for p, q in truth["bids"][:20]],
            [(Decimal(p), Decimal(q)) for p, q in truth["asks"][:20]],
        )
        self.compared += 1
        if (bids, asks) != want:
            self.mismatches.append(target)
        return True

    async def close(self) -> None:
        self._call.cancel()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._task.done() and not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]


@pytest.fixture
async def clients(fault_system: System) -> AsyncIterator[tuple[md_grpc.MarketDataAsyncStub, aiohttp.ClientSession]]:
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{fault_system.ports.provider}") as channel,
        aiohttp.ClientSession(f"http://127.0.0.1:{fault_system.ports.sim}") as sim,
    ):
        await sim.post("/control/reset", json={})
        yield md_grpc.MarketDataStub(channel), sim


async def metrics(system: System) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{system.ports.metrics}/metrics") as response,
    ):
        text = await response.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def control(sim: aiohttp.ClientSession, path: str, body: dict[str, object]) -> None:
    async with sim.post(f"/control/{path}", json=body) as response:
        assert response.status == 200, await response.text()


async def in_sync(stub: md_grpc.MarketDataAsyncStub) -> bool:
    try:
        answer = await stub.GetOrderBook(md.GetOrderBookRequest(symbol="BTCUSDT", limit=5), timeout=0.5)
    except grpc.aio.AioRpcError as exc:
        if exc.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise
        return False
    assert answer.freshness.in_sync
    return True


async def run_fault(
    system: System,
    stub: md_grpc.MarketDataAsyncStub,
    sim: aiohttp.ClientSession,
    inject: Callable[[], Awaitable[None]],
    counter: str,
    recover_within: float,
) -> tuple[Observer, float]:
    await eventually(lambda: in_sync(stub), 20, "book in sync before the fault")
    observer = Observer(stub, sim)
    try:
        await eventually(lambda: observer.compare_once(), 10, "a first comparison with the venue")
        before = (await metrics(system)).get(counter, 0.0)
        await inject()

        async def counted() -> bool:
            return (await metrics(system)).get(counter, 0.0) > before

        await eventually(counted, recover_within, f"{counter} to count the fault")
        took = await eventually(lambda: in_sync(stub), recover_within, "book back in sync")
        for _ in range(5):
            await observer.compare_once()
            await asyncio.sleep(0.1)
        assert observer.voids >= 1, "the subscriber was not told its copy was void"
        assert observer.book.valid, "the subscriber did not get a fresh snapshot"
        assert observer.compared >= 3 and observer.mismatches == [], observer.mismatches
    finally:
        await observer.close()
    return observer, took


async def test_the_provider_samples_its_event_loop_lag(fault_system: System) -> None:
    async def sampled() -> bool:
        return (await metrics(fault_system)).get("provider_event_loop_lag_seconds_count", 0.0) > 0

    await eventually(sampled, 10, "the provider's event loop lag to be sampled")


async def test_sequence_gap_resyncs_within_one_snapshot_round_trip(
    fault_system: System, clients: tuple[md_grpc.MarketDataAsyncStub, aiohttp.ClientSession]
) -> None:
    stub, sim = clients
    await run_fault(
        fault_system,
        stub,
        sim,
        lambda: control(sim, "ws/gap", {"symbol": "BTCUSDT"}),
        'provider_book_gaps_total{symbol="BTCUSDT"}',
        recover_within=5,
    )


async def test_dropped_connection_reconnects_and_resubscribes(
    fault_system: System, clients: tuple[md_grpc.MarketDataAsyncStub, aiohttp.ClientSession]
) -> None:
    stub, sim = clients
    await run_fault(
        fault_system,
        stub,
        sim,
        lambda: control(sim, "ws/disconnect", {"scope": "all"}),
        "provider_ws_reconnects_total",
        recover_within=10,
    )


async def test_stalled_stream_is_detected_and_reconnected(
    fault_system: System, clients: tuple[md_grpc.MarketDataAsyncStub, aiohttp.ClientSession]
) -> None:
    stub, sim = clients
    await run_fault(
        fault_system,
        stub,
        sim,
        lambda: control(sim, "ws/stall", {"seconds": STALL_S * 3}),
        "provider_ws_watchdog_trips_total",
        recover_within=STALL_S * 6,
    )


@pytest.mark.parametrize(("status", "retry_after"), [(429, 2), (418, 3)])
async def test_rate_limit_and_ban_on_the_snapshot_are_waited_out(
    fault_system: System,
    clients: tuple[md_grpc.MarketDataAsyncStub, aiohttp.ClientSession],
    status: int,
    retry_after: int,
) -> None:
    stub, sim = clients

    async def inject() -> None:
        await control(sim, "rest", {"status": status, "count": 1, "path": "/api/v3/depth", "retry_after": retry_after})
        await control(sim, "ws/gap", {"symbol": "BTCUSDT"})  # forces a snapshot fetch, which meets the fault

    counter = "provider_rest_rate_limited_total" if status == 429 else "provider_rest_bans_total"
    _, took = await run_fault(fault_system, stub, sim, inject, counter, recover_within=retry_after + 8)
    async with sim.get("/control/counters") as response:
        counters = await response.json()
    assert str(counters).count(str(status)) >= 1, counters
    # The provider waited as told: the book was out of sync for at least the Retry-After period.
    assert took >= retry_after * 0.8, took
