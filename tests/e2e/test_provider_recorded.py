"""Correctness on real data: the recorded BTCUSDT and ETHUSDT sessions, replayed by the simulator
over the wire, rebuild books (provider → gRPC StreamDepth → this client) whose best bid and ask
match the recorded bookTicker at every shared update id, bridging cases included.

The provider starts tracking the symbols only when this test asks for them, and the simulator
starts a replay when its first stream subscriber arrives: so the client sees the whole session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from binance.provider.v1 import market_data_pb2 as md
from binance.provider.v1 import market_data_pb2_grpc as md_grpc

from exchange_sim.market.recorded import RecordKind, read_recorded
from launcher.system import System
from tests.e2e.conftest import running_system
from tests.e2e.test_provider_market_data import ClientBook

RECORDED = Path(__file__).resolve().parents[3] / "shared" / "data" / "binance-recorded"
FILES = {
    "BTCUSDT": RECORDED / "hftbacktest_spot_btcusdt_20240808.gz",
    "ETHUSDT": RECORDED / "hftbacktest_spot_ethusdt_20240808.gz",
}
SPEED = 20.0  # 346 s of recording in about 17 s

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def replay_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    missing = [str(p) for p in FILES.values() if not p.is_file()]
    assert not missing, f"recorded data not found: {missing}"
    root = tmp_path_factory.mktemp("replay")
    env = {
        "SIM_REPLAY": ",".join(str(p) for p in FILES.values()),
        "SIM_REPLAY_SPEED": str(SPEED),
        "SIM_SYMBOLS": "BNBUSDT",
        "PROVIDER_SYMBOLS": "BNBUSDT",  # the replayed symbols are tracked on demand, by the test
    }
    with running_system(root, env) as system:
        yield system


def checkpoints(path: Path) -> dict[int, tuple[Decimal, Decimal, Decimal, Decimal]]:
    """bookTicker u -> (bid, bid qty, ask, ask qty) from the recording."""
    out = {}
    for record in read_recorded(path):
        if record.kind is RecordKind.BOOK_TICKER:
            d = record.payload
            out[int(d["u"])] = (Decimal(d["b"]), Decimal(d["B"]), Decimal(d["a"]), Decimal(d["A"]))
    return out


def diff_ids(path: Path) -> list[int]:
    """The final update id u of every depth diff in the recording, in order."""
    return [int(r.payload["u"]) for r in read_recorded(path) if r.kind is RecordKind.DEPTH_DIFF]


@dataclass(frozen=True)
class Rebuilt:
    matched: int  # checkpoints where the client's best bid and ask equal the recorded bookTicker
    mismatched: int
    snapshots: int  # the initial one, and any after a resync or a lag
    refreshes: int  # REFRESH snapshots: the provider's book, cut at 1,000 levels, regained depth
    reachable: int  # checkpoints at a diff's u from the client's first snapshot on
    shared: int  # checkpoints at a diff's u in the whole recording


async def rebuild_and_check(stub: md_grpc.MarketDataAsyncStub, symbol: str) -> Rebuilt:
    expected = checkpoints(FILES[symbol])
    ids = diff_ids(FILES[symbol])
    shared = sorted(set(ids) & set(expected))
    book = ClientBook()
    matched = mismatched = snapshots = refreshes = 0
    synced_from: int | None = None
    call = stub.StreamDepth(md.StreamDepthRequest(symbol=symbol, limit=1000))
    async for message in call:
        refresh = message.HasField("snapshot") and message.snapshot.reason == md.SNAPSHOT_REASON_REFRESH
        if refresh:
            # It continues the stream: taken at the id of the last diff, the next diff follows it.
            assert book.valid and message.snapshot.freshness.last_update_id == book.last_id
            before = book.top(1)
            refreshes += 1
        elif message.HasField("snapshot"):
            snapshots += 1
        book.on(message)
        if refresh:
            assert book.top(1) == before, "a refresh changed the top of the book"
            continue  # the same update id: its checkpoint, if any, is already counted
        if not book.valid:
            continue
        if synced_from is None:
            synced_from = book.last_id
        truth = expected.get(book.last_id)
        if truth is not None:
            bids, asks = book.top(1)
            got = (bids[0][0], bids[0][1], asks[0][0], asks[0][1])
            if got == truth:
                matched += 1
            else:
                mismatched += 1
        if book.last_id >= ids[-1]:
            break
    call.cancel()
    assert synced_from is not None
    # The replay starts with the provider's stream subscription; its depth snapshot comes a moment
    # later (more events later under load), and checkpoints before it are not the client's to see.
    reachable = sum(1 for u in shared if u >= synced_from)
    return Rebuilt(matched, mismatched, snapshots, refreshes, reachable, len(shared))


async def test_recorded_sessions_rebuild_exactly_over_the_wire(replay_system: System) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{replay_system.ports.provider}") as channel:
        stub = md_grpc.MarketDataStub(channel)
        btc, eth = await asyncio.wait_for(
            asyncio.gather(rebuild_and_check(stub, "BTCUSDT"), rebuild_and_check(stub, "ETHUSDT")), 150
        )
    # Every bookTicker whose u equals an applied diff's u (README: 564 BTC, 577 ETH), less those
    # before the client's snapshot: a few at most, as the replay starts with the subscription.
    for rebuilt, shared in ((btc, 564), (eth, 577)):
        assert rebuilt.shared == shared, rebuilt
        assert (rebuilt.matched, rebuilt.mismatched, rebuilt.snapshots) == (rebuilt.reachable, 0, 1), rebuilt
        assert rebuilt.reachable >= shared - 10, rebuilt
