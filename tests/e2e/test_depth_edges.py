"""Books cut at their snapshot's depth, end to end: the provider's own snapshots are 100 levels
while the simulator's books hold about 300 a side, and it audits every second.

* A gRPC StreamDepth subscriber is told where each snapshot's knowledge ends, and gets a REFRESH
  snapshot when an audit moves the provider's edges; the diffs go straight on from it.
* gateway_http's book copy keeps to those edges. A WebSocket client that joins late gets a book
  that equals the venue's over every price it covers (no holes from deep levels that changed while
  their unchanged neighbours were never known), and a client there from the start is never
  disturbed by the refreshes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
import pytest
from binance.provider.v1 import market_data_pb2 as md
from binance.provider.v1 import market_data_pb2_grpc as md_grpc

from gateway_auth.tokens import Scope
from launcher.system import System
from tests.e2e.conftest import GatewayTokens, running_system

pytestmark = pytest.mark.timeout(180)

TIMEOUT = aiohttp.ClientTimeout(total=15)
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=15, ws_close=5)
SYMBOL = "BTCUSDT"
Book = tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]


@pytest.fixture(scope="module")
def cut_system(tmp_path_factory: pytest.TempPathFactory, gateway_tokens: GatewayTokens) -> Iterator[System]:
    root: Path = tmp_path_factory.mktemp("cut")
    env = {
        "GATEWAY_TOKENS_FILE": str(gateway_tokens.path),
        "PROVIDER_SNAPSHOT_LIMIT": "100",
        "PROVIDER_AUDIT_INTERVAL_S": "1",
    }
    with running_system(root, env, without=("gateway_mcp",)) as running:
        yield running


@pytest.fixture
async def sim(cut_system: System) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{cut_system.ports.sim}", timeout=TIMEOUT) as session:
        yield session


async def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def within(book: Book, floor: Decimal, ceiling: Decimal) -> Book:
    bids, asks = book
    return {p: q for p, q in bids.items() if p >= floor}, {p: q for p, q in asks.items() if p <= ceiling}


class EdgedCopy:
    """A WebSocket depth client's copy, limited to the prices its first snapshot covered, with the
    copy remembered at every update id it reached."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.floor = self.ceiling = Decimal(0)
        self.last_id = 0
        self.snapshots = 0
        self.notices: list[str] = []
        self.history: dict[int, Book] = {}

    def on(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "snapshot":
            self.snapshots += 1
            self.bids = {Decimal(p): Decimal(q) for p, q in frame["bids"]}
            self.asks = {Decimal(p): Decimal(q) for p, q in frame["asks"]}
            if self.snapshots == 1:
                self.floor, self.ceiling = min(self.bids), max(self.asks)
                # The gateway says where its knowledge ends: the provider's edges, here.
                assert frame["bidFloor"] is not None and Decimal(frame["bidFloor"]) <= self.floor
                assert frame["askCeiling"] is not None and Decimal(frame["askCeiling"]) >= self.ceiling
            self.last_id = frame["lastUpdateId"]
        elif kind == "diff":
            assert frame["U"] == self.last_id + 1, f"continuity broken: U={frame['U']} after u={self.last_id}"
            for side, levels in ((self.bids, frame["b"]), (self.asks, frame["a"])):
                for price, qty in levels:
                    if Decimal(qty) == 0:
                        side.pop(Decimal(price), None)
                    else:
                        side[Decimal(price)] = Decimal(qty)
            self.last_id = frame["u"]
        else:
            self.notices.append(kind)
        self.history[self.last_id] = within((dict(self.bids), dict(self.asks)), self.floor, self.ceiling)


async def follow(ws: aiohttp.ClientWebSocketResponse, copy: EdgedCopy) -> None:
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            copy.on(orjson.loads(message.data))


async def reading(reader: asyncio.Task[None], condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """`until`, failing at once with the reader's own error if it stopped."""
    await until(lambda: condition() or reader.done(), what, timeout)
    if reader.done():
        reader.result()
        raise AssertionError(f"the connection ended while waiting for {what}")


async def test_stream_subscribers_get_the_edges_and_a_refresh_when_they_move(cut_system: System) -> None:
    refreshes: list[md.DepthSnapshot] = []
    diffs_after_refresh = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{cut_system.ports.provider}") as channel:
        stream = md_grpc.MarketDataStub(channel).StreamDepth(md.StreamDepthRequest(symbol=SYMBOL, limit=1000))
        last_id = 0
        async with asyncio.timeout(60):
            async for message in stream:
                if message.HasField("snapshot"):
                    snap = message.snapshot
                    assert snap.freshness.in_sync
                    # 1,000 levels asked for, the provider knows about 100: the edges say where that ends.
                    assert len(snap.bids) < 1000 and snap.bid_floor and snap.ask_ceiling
                    assert all(Decimal(lv.price) >= Decimal(snap.bid_floor) for lv in snap.bids)
                    assert all(Decimal(lv.price) <= Decimal(snap.ask_ceiling) for lv in snap.asks)
                    if snap.reason == md.SNAPSHOT_REASON_REFRESH:
                        assert snap.freshness.last_update_id == last_id, "a refresh continues the stream"
                        refreshes.append(snap)
                    last_id = snap.freshness.last_update_id
                else:
                    assert message.diff.first_update_id == last_id + 1
                    last_id = message.diff.last_update_id
                    diffs_after_refresh += bool(refreshes)
                if len(refreshes) >= 3 and diffs_after_refresh >= 10:
                    break
        stream.cancel()
    edges = {(s.bid_floor, s.ask_ceiling) for s in refreshes}
    assert len(edges) == len(refreshes), "each refresh moved an edge"


async def test_a_late_websocket_client_gets_a_book_without_holes(
    cut_system: System, sim: aiohttp.ClientSession, gateway_tokens: GatewayTokens
) -> None:
    token = gateway_tokens.by_scope[Scope.READ]
    headers = {"Authorization": f"Bearer {token}"}
    early, late = EdgedCopy(), EdgedCopy()
    async with aiohttp.ClientSession(f"http://127.0.0.1:{cut_system.ports.http}", timeout=TIMEOUT) as gateway:
        params = {"limit": "1000"}
        async with gateway.ws_connect(f"/ws/depth/{SYMBOL}", params=params, headers=headers, timeout=WS_TIMEOUT) as ws:
            early_reader = asyncio.create_task(follow(ws, early))
            try:
                await reading(early_reader, lambda: early.snapshots == 1, "the first client's snapshot")
                # Let the copy live through deep changes and several of the provider's audits.
                first_id = early.last_id
                await reading(early_reader, lambda: early.last_id >= first_id + 100, "100 more update ids", 60)
                async with gateway.ws_connect(
                    f"/ws/depth/{SYMBOL}", params=params, headers=headers, timeout=WS_TIMEOUT
                ) as late_ws:
                    late_reader = asyncio.create_task(follow(late_ws, late))
                    try:
                        await reading(late_reader, lambda: late.snapshots == 1, "the late client's snapshot")
                        assert len(late.bids) < 1000, "the gateway serves only what the provider knows"
                        compared = 0
                        deadline = time.monotonic() + 40
                        while compared < 3 and time.monotonic() < deadline:
                            async with sim.get("/api/v3/depth", params={"symbol": SYMBOL, "limit": "5000"}) as answer:
                                venue = await answer.json()
                            target: int = venue["lastUpdateId"]

                            def caught_up(t: int = target) -> bool:
                                return late.last_id >= t

                            await reading(late_reader, caught_up, "the late client to catch up", 10)
                            seen = late.history.get(target)
                            if seen is None:
                                continue  # the venue's id fell inside a diff's range
                            truth = within(
                                (
                                    {Decimal(p): Decimal(q) for p, q in venue["bids"]},
                                    {Decimal(p): Decimal(q) for p, q in venue["asks"]},
                                ),
                                late.floor,
                                late.ceiling,
                            )
                            assert seen[0] == truth[0], f"bids differ from the venue at {target}"
                            assert seen[1] == truth[1], f"asks differ from the venue at {target}"
                            compared += 1
                        assert compared == 3, f"only {compared} comparisons at shared ids"
                    finally:
                        late_reader.cancel()
                        await asyncio.gather(late_reader, return_exceptions=True)
                assert early.snapshots == 1 and early.notices == [], "the refreshes disturbed a client"
                assert not early_reader.done(), early_reader
            finally:
                early_reader.cancel()
                await asyncio.gather(early_reader, return_exceptions=True)
