"""Replay of recorded Binance market data (``SIM_REPLAY``) through the simulator's own endpoints.

Each recorded stream frame is published to the hub under its recorded stream name with its ``data``
bytes exactly as recorded (the hub re-wraps them for ``/ws`` vs ``/stream``). REST depth of a replayed
symbol answers from `ReplayBook`: the recorded snapshot until the replay has delivered a diff past
its ``lastUpdateId`` (a snapshot ahead of the stream, as Binance's often is), then the book built
from that snapshot and every diff delivered so far, with the recorded decimal strings.

A file's replay starts when the first client subscribes to a stream of one of its symbols (so that
client sees the whole file), or on `Replay.start`. Pace: the recorded receive times divided by
``speed``; ``speed == 0`` is as fast as the slowest subscriber reads. At the end of a file its
streams stay open and quiet.

Pure core: `ReplayBook`, `scan_file`, `replay_spec`. Shell: `Replay` (owns one task per file).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import web

from exchange_sim.hub import StreamHub
from exchange_sim.market.recorded import Record, RecordKind, read_recorded
from exchange_sim.matching import LotSizeFilter, PriceFilter, SymbolSpec
from exchange_sim.symbols import symbol_setup

log = logging.getLogger("exchange_sim.replay")

_YIELD_EVERY: Final = 64  # at speed 0, let the writers run this often
_BACKPRESSURE_PAUSE_S: Final = 0.002
_BACKPRESSURE_MAX_PAUSES: Final = 15_000  # 30 s

Level = tuple[str, str]


# --------------------------------------------------------------------------- pure core


class ReplayBook:
    """One replayed symbol's order book: the recorded snapshot plus the diffs delivered so far.

    Prices are keyed by exact `Decimal` value; the strings served are those recorded.
    """

    def __init__(self, symbol: str, snapshot: dict[str, Any]) -> None:
        self.symbol = symbol
        self.snapshot_id: int = snapshot["lastUpdateId"]
        self._snapshot = snapshot
        self._bids: dict[Decimal, Level] | None = None  # None until a diff passes the snapshot
        self._asks: dict[Decimal, Level] = {}
        self.last_update_id = self.snapshot_id
        self.diffs_applied = 0
        self.gaps = 0  # diffs whose U skipped ids (a gap in the recording itself)

    @property
    def built(self) -> bool:
        """True once the replay passed the recorded snapshot (REST answers the simulator's own book)."""
        return self._bids is not None

    def apply(self, diff: dict[str, Any]) -> None:
        """A depthUpdate the replay delivered (§8 update procedure on top of the recorded snapshot)."""
        first, last = diff["U"], diff["u"]
        if last <= self.last_update_id:
            return  # covered by the snapshot (or stale)
        if self._bids is None:
            self._bids = {Decimal(p): (p, q) for p, q in self._snapshot["bids"]}
            self._asks = {Decimal(p): (p, q) for p, q in self._snapshot["asks"]}
        if first > self.last_update_id + 1:
            self.gaps += 1
            log.warning("%s: recorded diffs skip ids %d..%d", self.symbol, self.last_update_id + 1, first - 1)
        bids, asks = self._bids, self._asks
        for side, levels in ((bids, diff["b"]), (asks, diff["a"])):
            for price, qty in levels:
                key = Decimal(price)
                if Decimal(qty) == 0:
                    side.pop(key, None)
                else:
                    side[key] = (price, qty)
        self.last_update_id = last
        self.diffs_applied += 1

    def depth(self, limit: int) -> dict[str, Any]:
        """The ``GET /api/v3/depth`` body with at most `limit` levels a side."""
        if self._bids is None:
            snap = self._snapshot
            return {"lastUpdateId": self.snapshot_id, "bids": snap["bids"][:limit], "asks": snap["asks"][:limit]}
        bids = [list(self._bids[p]) for p in heapq.nlargest(limit, self._bids)]
        asks = [list(self._asks[p]) for p in heapq.nsmallest(limit, self._asks)]
        return {"lastUpdateId": self.last_update_id, "bids": bids, "asks": asks}


@dataclass(frozen=True)
class FileScan:
    """What a recorded file holds, learnt before replaying it."""

    path: Path
    symbols: tuple[str, ...]
    """Symbols with a recorded depth snapshot: the ones the simulator serves from this file."""
    snapshots: dict[str, dict[str, Any]]
    symbol_info: dict[str, dict[str, Any]]
    """The recorded exchangeInfo entry of each served symbol, when the file has one."""
    records: int
    unserved: tuple[str, ...]
    """Symbols streamed in the file but without a snapshot (their frames are still published)."""


def scan_file(path: Path, records: Iterable[Record]) -> FileScan:
    snapshots: dict[str, dict[str, Any]] = {}
    streamed: dict[str, None] = {}
    info: dict[str, dict[str, Any]] = {}
    count = 0
    for rec in records:
        count += 1
        if rec.kind is RecordKind.DEPTH_SNAPSHOT and rec.symbol is not None:
            snapshots.setdefault(rec.symbol, rec.payload)
        elif rec.kind is RecordKind.EXCHANGE_INFO:
            for entry in rec.payload.get("symbols", ()):
                if isinstance(entry, dict) and isinstance(entry.get("symbol"), str):
                    info[entry["symbol"]] = entry
        elif rec.stream is not None and rec.symbol is not None:
            streamed[rec.symbol] = None
    served = tuple(snapshots)
    return FileScan(
        path=path,
        symbols=served,
        snapshots=snapshots,
        symbol_info={s: info[s] for s in served if s in info},
        records=count,
        unserved=tuple(s for s in streamed if s not in snapshots),
    )


def replay_spec(symbol: str, recorded_info: dict[str, Any] | None) -> SymbolSpec:
    """The symbol's spec: the simulator's own setup, with the recorded PRICE_FILTER and LOT_SIZE when
    the file carries an exchangeInfo (so tick sizes match the recorded prices)."""
    spec, _ = symbol_setup(symbol)
    if recorded_info is None:
        return spec
    filters = {f.get("filterType"): f for f in recorded_info.get("filters", ()) if isinstance(f, dict)}
    try:
        price, lot = filters["PRICE_FILTER"], filters["LOT_SIZE"]
        return dataclasses.replace(
            spec,
            base_asset=recorded_info.get("baseAsset", spec.base_asset),
            quote_asset=recorded_info.get("quoteAsset", spec.quote_asset),
            price_filter=PriceFilter(
                Decimal(price["minPrice"]), Decimal(price["maxPrice"]), Decimal(price["tickSize"])
            ),
            lot_size=LotSizeFilter(Decimal(lot["minQty"]), Decimal(lot["maxQty"]), Decimal(lot["stepSize"])),
        )
    except (KeyError, ValueError, ArithmeticError) as exc:
        log.warning("%s: recorded filters unusable (%s); using the simulator's own", symbol, exc)
        return spec


def frame_data(rec: Record) -> bytes:
    """The ``data`` bytes of a combined-stream frame exactly as recorded."""
    assert rec.stream is not None
    prefix = '{"stream":' + orjson.dumps(rec.stream).decode() + ',"data":'
    if rec.raw.startswith(prefix) and rec.raw.endswith("}"):
        return rec.raw[len(prefix) : -1].encode()
    return orjson.dumps(rec.payload)  # another spelling of the wrapper: same data, re-encoded


def due_offset_s(recv_time_ns: int, first_recv_ns: int, speed: float) -> float:
    """Seconds after the replay start at which a record is due (0 at speed 0: as fast as possible)."""
    if speed <= 0:
        return 0.0
    return max(0, recv_time_ns - first_recv_ns) / 1e9 / speed


# --------------------------------------------------------------------------- shell


class ReplayFile:
    """One recorded file being replayed: its books and progress."""

    def __init__(self, scan: FileScan) -> None:
        self.scan = scan
        self.books = {s: ReplayBook(s, scan.snapshots[s]) for s in scan.symbols}
        self._prefixes = tuple(s.lower() + "@" for s in (*scan.symbols, *scan.unserved))
        self.task: asyncio.Task[None] | None = None
        self.started = False
        self.done = False
        self.records_read = 0
        self.events_sent = 0  # frames delivered to at least one subscriber
        self.events_published = 0
        self.line_no = 0

    def wanted_by(self, streams: Iterable[str]) -> bool:
        return any(key.startswith(self._prefixes) for key in streams)

    def status(self) -> dict[str, object]:
        return {
            "file": self.scan.path.name,
            "symbols": list(self.scan.symbols),
            "started": self.started,
            "done": self.done,
            "records": self.scan.records,
            "records_read": self.records_read,
            "line": self.line_no,
            "events_published": self.events_published,
            "events_sent": self.events_sent,
            "position": {
                s: {"lastUpdateId": b.last_update_id, "snapshotPassed": b.built, "diffs": b.diffs_applied}
                for s, b in self.books.items()
            },
        }


class Replay:
    """Replays recorded files into `hub`; owns one task per started file (cancelled by `stop`)."""

    def __init__(
        self,
        scans: Sequence[FileScan],
        hub: StreamHub,
        speed: float = 1.0,
        reader: Callable[[Path], Iterator[Record]] = read_recorded,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.hub = hub
        self.speed = speed
        self._reader = reader
        self.files = [ReplayFile(scan) for scan in scans]
        self._books: dict[str, ReplayBook] = {}
        for file in self.files:
            for symbol, book in file.books.items():
                if symbol in self._books:
                    raise ValueError(f"{symbol} is in more than one replayed file")
                self._books[symbol] = book
        self._unlisten: Callable[[], None] | None = None

    @classmethod
    def load(cls, paths: Sequence[Path], hub: StreamHub, speed: float = 1.0) -> Replay:
        """Scan each file (reads it once, ~0.2 s per MB) and prepare its replay."""
        return cls([scan_file(Path(p), read_recorded(p)) for p in paths], hub, speed)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._books)

    def serves(self, symbol: str) -> bool:
        return symbol in self._books

    def spec(self, symbol: str) -> SymbolSpec:
        for file in self.files:
            if symbol in file.books:
                return replay_spec(symbol, file.scan.symbol_info.get(symbol))
        raise KeyError(symbol)

    def depth(self, symbol: str, limit: int) -> dict[str, Any]:
        return self._books[symbol].depth(limit)

    def status(self) -> dict[str, object]:
        return {"speed": self.speed, "files": [f.status() for f in self.files], "done": all(f.done for f in self.files)}

    # ---- lifecycle

    def listen(self) -> None:
        """Start each file when a client first subscribes to one of its symbols' streams."""
        self._unlisten = self.hub.on_subscriptions_changed(self._subscriptions_changed)

    def _subscriptions_changed(self) -> None:
        streams = self.hub.subscribed_streams()
        for file in self.files:
            if not file.started and file.wanted_by(streams):
                self._start(file)

    def start(self, symbol: str | None = None) -> list[str]:
        """Start the files not yet started (only the one holding `symbol`, if given); their names."""
        started = []
        for file in self.files:
            if not file.started and (symbol is None or symbol in file.books):
                self._start(file)
                started.append(file.scan.path.name)
        return started

    def _start(self, file: ReplayFile) -> None:
        file.started = True
        file.task = asyncio.get_running_loop().create_task(self._run(file), name=f"replay-{file.scan.path.name}")
        log.info("replaying %s at speed %s", file.scan.path.name, self.speed)

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        tasks = [f.task for f in self.files if f.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, file: ReplayFile) -> None:
        hub = self.hub
        loop = asyncio.get_running_loop()
        first_ns: int | None = None
        started_at = loop.time()
        records = self._reader(file.scan.path)
        try:
            for rec in records:
                file.records_read += 1
                file.line_no = rec.line_no
                if rec.stream is None:
                    continue  # REST bodies (snapshot, exchangeInfo) were taken by the scan
                if first_ns is None:
                    first_ns = rec.recv_time_ns
                if self.speed > 0:
                    delay = started_at + due_offset_s(rec.recv_time_ns, first_ns, self.speed) - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif file.records_read % _YIELD_EVERY == 0:
                    await self._let_readers_catch_up()
                if rec.kind is RecordKind.DEPTH_DIFF and rec.symbol in file.books:
                    file.books[rec.symbol].apply(rec.payload)
                file.events_published += 1
                if hub.has_subscribers(rec.stream):
                    file.events_sent += 1
                    hub.publish(rec.stream, frame_data(rec))
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()  # the generator's open file
        file.done = True
        log.info(
            "replay of %s done after %.1f s (%d events sent)",
            file.scan.path.name,
            loop.time() - started_at,
            file.events_sent,
        )

    async def _let_readers_catch_up(self) -> None:
        # Speed 0 means as fast as the slowest subscriber reads, not faster: never fill its queue.
        await asyncio.sleep(0)
        high = self.hub.queue_limit // 2
        for _ in range(_BACKPRESSURE_MAX_PAUSES):  # a reader stuck longer is left to the hub's slow-consumer rule
            if not any(sub.pending > high for sub in self.hub.subscribers):
                return
            await asyncio.sleep(_BACKPRESSURE_PAUSE_S)


REPLAY = web.AppKey("replay", Replay)
