"""Book copies rebuilt from snapshot + diffs, and the auditor that compares them with the venue.

`BookCopy` is the pure core both kinds of client keep (gRPC StreamDepth and the gateway's WS depth):
it checks U == previous u + 1 and remembers the top levels at each update id it reached, so a copy
can be compared with the simulator's own book (`GET /api/v3/depth`) at the same update id. A copy
served as in sync that differs there is a divergence (the goal is none).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

import aiohttp
import grpc
from binance.provider.v1 import market_data_pb2 as md
from binance.provider.v1 import market_data_pb2_grpc as md_grpc

Levels = tuple[tuple[Decimal, Decimal], ...]
TOP = 20  # levels per side compared
HISTORY = 3000  # update ids remembered per copy (a few minutes of 100 ms diffs)


class Compared(Enum):
    MATCH = "match"
    DIVERGED = "diverged"
    UNAVAILABLE = "unavailable"  # the copy never held that update id (void, or behind)


@dataclass(frozen=True)
class Comparison:
    fetched_at: float  # monotonic time the venue's book was requested
    done_at: float
    update_id: int
    outcome: Compared


@dataclass(frozen=True)
class Held:
    """What a copy held at one update id, and where that copy came from."""

    top: tuple[Levels, Levels]
    snapshot_id: int  # the update id of the snapshot the copy was rebuilt from
    snapshot_origin: str  # why that snapshot was sent (the stream's reason), for the report
    snapshot_at: float  # monotonic time it was received


@dataclass(frozen=True)
class Divergence:
    """A copy served as in sync that differed from the venue at the same update id."""

    at: float  # monotonic time the venue's book was requested
    update_id: int
    held: Held
    differences: tuple[tuple[str, Decimal, Decimal | None, Decimal | None], ...]  # side, price, copy, venue

    def describe(self, started: float) -> str:
        levels = "; ".join(
            f"{side} {price}: copy {'absent' if mine is None else mine}, venue {'absent' if theirs is None else theirs}"
            for side, price, mine, theirs in self.differences
        )
        wall = time.time() - (time.monotonic() - self.at)  # for the processes' logs
        clock = time.strftime("%H:%M:%S", time.gmtime(wall))
        return (
            f"at update id {self.update_id}, {self.at - started:.1f} s into the run ({clock} UTC); "
            f"the copy was rebuilt from a "
            f"{self.held.snapshot_origin} snapshot at id {self.held.snapshot_id} received "
            f"{self.at - self.held.snapshot_at:.1f} s before; {levels}"
        )


def differences(
    held: tuple[Levels, Levels], venue: tuple[Levels, Levels]
) -> tuple[tuple[str, Decimal, Decimal | None, Decimal | None], ...]:
    """The levels where two tops differ, by side and price (None: absent from that top)."""
    out: list[tuple[str, Decimal, Decimal | None, Decimal | None]] = []
    for side, mine, theirs in (("bid", held[0], venue[0]), ("ask", held[1], venue[1])):
        a, b = dict(mine), dict(theirs)
        for price in sorted(a.keys() | b.keys(), reverse=side == "bid"):
            if a.get(price) != b.get(price):
                out.append((side, price, a.get(price), b.get(price)))
    return tuple(out)


class BookCopy:
    """A client's copy of one book. `diff` returns False on a continuity break (the copy is then void).

    With `track_levels` False only the update ids are followed (continuity and validity): the
    soak's hundreds of unaudited clients need no more, and parsing every level of every frame into
    Decimals would make the soak's own process the bottleneck of what it measures."""

    def __init__(self, keep_history: bool, track_levels: bool = True) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.last_id = 0
        self.valid = False
        self.keep_history = keep_history
        self.track_levels = track_levels or keep_history
        self.history: dict[int, Held] = {}
        self._order: deque[int] = deque()
        self._snapshot_id = 0
        self._snapshot_origin = ""
        self._snapshot_at = 0.0

    def snapshot(
        self, bids: Iterable[tuple[str, str]], asks: Iterable[tuple[str, str]], last_id: int, origin: str = "initial"
    ) -> None:
        if self.track_levels:
            self.bids = {Decimal(p): Decimal(q) for p, q in bids}
            self.asks = {Decimal(p): Decimal(q) for p, q in asks}
        self.last_id = last_id
        self.valid = True
        self._snapshot_id, self._snapshot_origin, self._snapshot_at = last_id, origin, time.monotonic()
        self._remember()

    def void(self) -> None:
        self.valid = False

    def diff(self, first: int, last: int, bids: Iterable[tuple[str, str]], asks: Iterable[tuple[str, str]]) -> bool:
        if not self.valid or first != self.last_id + 1:
            self.valid = False
            return False
        for side, levels in ((self.bids, bids), (self.asks, asks)) if self.track_levels else ():
            for price, qty in levels:
                amount = Decimal(qty)
                if amount == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = amount
        self.last_id = last
        self._remember()
        return True

    def top(self) -> tuple[Levels, Levels]:
        bids = tuple((p, self.bids[p]) for p in heapq.nlargest(TOP, self.bids))
        asks = tuple((p, self.asks[p]) for p in heapq.nsmallest(TOP, self.asks))
        return bids, asks

    def _remember(self) -> None:
        if not self.keep_history:
            return
        self.history[self.last_id] = Held(self.top(), self._snapshot_id, self._snapshot_origin, self._snapshot_at)
        self._order.append(self.last_id)
        while len(self._order) > HISTORY:
            self.history.pop(self._order.popleft(), None)


def venue_top(body: dict[str, object]) -> tuple[int, tuple[Levels, Levels]]:
    """The simulator's /api/v3/depth answer as (lastUpdateId, top levels)."""
    bids, asks, last = body["bids"], body["asks"], body["lastUpdateId"]
    assert isinstance(bids, list) and isinstance(asks, list) and isinstance(last, int)
    return last, (
        tuple((Decimal(p), Decimal(q)) for p, q in bids[:TOP]),
        tuple((Decimal(p), Decimal(q)) for p, q in asks[:TOP]),
    )


class AuditedBook:
    """A book copy plus a signal on progress, compared with the venue on request."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.book = BookCopy(keep_history=True)
        self.progress = asyncio.Event()
        self.voids: list[float] = []  # monotonic times the copy was declared void (or its stream broke)
        self.comparisons: deque[Comparison] = deque(maxlen=20000)
        self.divergences: list[Divergence] = []
        self.continuity_breaks = 0  # diffs that did not follow, with no void before them

    def mark_void(self) -> None:
        self.book.void()
        self.voids.append(time.monotonic())
        self.progress.set()

    async def compare(self, sim: aiohttp.ClientSession, wait_s: float = 3.0) -> Comparison:
        fetched_at = time.monotonic()
        # The control API's read of the venue's book: the REST faults aimed at the provider's
        # snapshot fetches never answer it, and it costs no request weight.
        async with sim.get("/control/depth", params={"symbol": self.symbol, "limit": str(TOP)}) as response:
            response.raise_for_status()
            body = await response.json()
        target, want = venue_top(body)
        deadline = time.monotonic() + wait_s
        while target not in self.book.history and self.book.last_id < target and time.monotonic() < deadline:
            self.progress.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that lands as
            # the wait ends, and this loop's task would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self.progress.wait()
        seen = self.book.history.get(target)
        outcome = Compared.UNAVAILABLE if seen is None else Compared.MATCH if seen.top == want else Compared.DIVERGED
        if seen is not None and outcome is Compared.DIVERGED:
            self.divergences.append(Divergence(fetched_at, target, seen, differences(seen.top, want)))
        result = Comparison(fetched_at, time.monotonic(), target, outcome)
        self.comparisons.append(result)
        return result


class GrpcAuditor(AuditedBook):
    """StreamDepth over gRPC for one symbol, reopened after every break (the provider may be killed)."""

    def __init__(self, symbol: str, provider_addr: str) -> None:
        super().__init__(symbol)
        self.addr = provider_addr
        self.stream_breaks = 0
        self.snapshots = 0

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                async with grpc.aio.insecure_channel(self.addr) as channel:
                    stub = md_grpc.MarketDataStub(channel)
                    async for message in stub.StreamDepth(md.StreamDepthRequest(symbol=self.symbol, limit=1000)):
                        self._on(message)
                        backoff = 0.2
            except grpc.aio.AioRpcError:
                pass
            self.stream_breaks += 1
            self.mark_void()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _on(self, message: md.StreamDepthResponse) -> None:
        if message.HasField("snapshot"):
            snap = message.snapshot
            self.snapshots += 1
            if snap.freshness.in_sync:
                self.book.snapshot(
                    ((lv.price, lv.quantity) for lv in snap.bids),
                    ((lv.price, lv.quantity) for lv in snap.asks),
                    snap.freshness.last_update_id,
                    md.SnapshotReason.Name(snap.reason).removeprefix("SNAPSHOT_REASON_").lower(),
                )
            else:
                self.mark_void()
        else:
            diff = message.diff
            was_valid = self.book.valid
            ok = self.book.diff(
                diff.first_update_id,
                diff.last_update_id,
                ((lv.price, lv.quantity) for lv in diff.bids),
                ((lv.price, lv.quantity) for lv in diff.asks),
            )
            if not ok and was_valid:
                self.continuity_breaks += 1
        self.progress.set()


async def audit_loop(audited: AuditedBook, sim: aiohttp.ClientSession, interval_s: float) -> None:
    """Compare one copy with the venue, again and again, until cancelled."""
    while True:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            await audited.compare(sim)
        await asyncio.sleep(interval_s)
