"""Live market data over WebSocket: one provider stream per (channel, symbol[, speed]), fanned out.

    /ws/ticker/{symbol}  /ws/bookTicker/{symbol}  /ws/trades/{symbol}
    /ws/depth/{symbol}?speed=100ms|1000ms&limit=N

The core (`StreamHub`, `Upstream`, the fan-outs, `Subscriber`) has no sockets: an upstream
reads messages from a `Source` (the provider's gRPC stream in production, a plain async
generator in tests), encodes each event to JSON text once and offers that same str to every
client. A client that keeps up gets it straight on its connection: the WebSocket frame is
encoded once for all clients and each connection gets what arrived in one burst in one write
(`DirectWriter`, `WriteBatcher`). A client whose connection is backed up gets it in its bounded
queue instead, which the WebSocket handler at the bottom (a thin shell) writes to its socket as
the socket drains. Frames are never compressed (permessage-deflate is not offered).

Slow clients never delay others: a full queue is handled at once, without waiting. A client's
queue only fills once its socket stops taking frames, so `WsBacklog` also bounds what the socket
may hold unsent (kernel send buffer and transport buffer); with the OS defaults a loopback
socket alone absorbs megabytes, minutes of depth diffs, before a stalled client is noticed.
- depth: the queue is replaced by {"type":"lagged"} and a fresh snapshot of the upstream's own
  copy of the book, at the copy's current update id; the next diff continues from that id.
- ticker, bookTicker, trades: the client is closed with 1008 "slow consumer".

The upstream keeps its own book from the provider's snapshot + diffs (continuity checked), so
every snapshot it serves (initial or after a lag) carries the exact lastUpdateId it reflects.
When the provider says the book is void (an empty RESYNC snapshot, in_sync false), or the
provider stream breaks, depth clients are told {"type":"resync"} at once and get a new
snapshot when the book is back; other clients get {"type":"gap"}. A broken provider stream is
reopened with capped exponential backoff; after `Backoff.attempts` consecutive failures the
clients are closed with 1011. The provider stream is cancelled when its last client leaves.
Close codes: 1000 gateway shutdown, 1008 policy (slow consumer, unknown symbol), 1011 upstream
failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Protocol, TypeVar

import grpc
from aiohttp import WSMsgType, web
from binance.provider.v1 import account_pb2 as acc
from binance.provider.v1 import account_pb2_grpc as acc_grpc
from binance.provider.v1 import market_data_pb2 as md
from binance.provider.v1 import market_data_pb2_grpc as md_grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway_auth.tokens import Scope
from gateway_http import convert
from gateway_http.convert import SnapshotReason
from gateway_http.metrics import METRICS, route_label
from gateway_http.openapi import PARAMS, Api, Param, ParamIn
from gateway_http.security import PRINCIPAL, ConnectionCounter, websocket_protocols
from gateway_http.socket_writes import SocketWrites
from provider.book import OrderBook, cut_edge
from provider_client.errors import decode_rpc_error

log = logging.getLogger("gateway_http.streams")

UpstreamMessage = (
    md.StreamTickerResponse
    | md.StreamBookTickerResponse
    | md.StreamTradesResponse
    | md.StreamDepthResponse
    | acc.StreamUserDataResponse
)

CLIENT_QUEUE_FRAMES = 256
CLIENT_SEND_BUFFER_BYTES = 64 * 1024
AIOHTTP_WRITER_LIMIT = 2**16  # aiohttp's default writer_limit, kept when the OS buffers are left alone
UPSTREAM_DEPTH_LEVELS = 1000  # levels per side the gateway's book copy is seeded with (the provider's default)
MAX_CLIENT_DEPTH_LEVELS = UPSTREAM_DEPTH_LEVELS
DEFAULT_CLIENT_DEPTH_LEVELS = 100
# Keepalive as Binance's: a ping every PING_EVERY_S, and a client heard nothing from (not even a
# pong) for SILENT_CLIENT_LIMIT_S is closed. Generous on purpose: a ping waits behind whatever the
# client's socket still holds, so a client that reads slowly answers late; aiohttp's own heartbeat
# (pong within 10 s) would drop such clients abnormally before their queue could lag them.
PING_EVERY_S = 20.0
SILENT_CLIENT_LIMIT_S = 60.0
CLOSE_WAIT_S = 5.0  # for the closing handshake with a client that stopped answering; then the socket is dropped
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's reason fits in 123 bytes
SYMBOL_PATTERN = "^[A-Z0-9]{2,20}$"


class StreamChannel(StrEnum):
    TICKER = "ticker"
    BOOK_TICKER = "bookTicker"
    TRADES = "trades"
    DEPTH = "depth"
    USER = "user"  # the account's user data; one upstream for every /ws/user client (symbol "")


class DepthSpeed(StrEnum):
    MS_100 = "100ms"
    MS_1000 = "1000ms"


_GRPC_SPEED = {DepthSpeed.MS_100: md.DEPTH_SPEED_100MS, DepthSpeed.MS_1000: md.DEPTH_SPEED_1000MS}


@dataclass(frozen=True)
class StreamKey:
    """What one upstream serves; clients with equal keys share it."""

    channel: StreamChannel
    symbol: str
    speed: DepthSpeed | None = None  # depth only

    def __post_init__(self) -> None:
        if (self.channel is StreamChannel.DEPTH) != (self.speed is not None):
            raise ValueError("a speed is given for depth streams, and only for them")

    def __str__(self) -> str:
        return " ".join(part for part in (self.channel.value, self.symbol, self.speed and self.speed.value) if part)


class CloseCode(IntEnum):
    NORMAL = 1000
    POLICY = 1008
    UPSTREAM_FAILED = 1011


@dataclass(frozen=True)
class Close:
    """Why and how a client's socket is closed."""

    code: CloseCode
    reason: str

    def reason_bytes(self) -> bytes:
        return self.reason.encode()[:MAX_CLOSE_REASON_BYTES]


SHUTDOWN = Close(CloseCode.NORMAL, "server shutdown")
SLOW_CONSUMER = Close(CloseCode.POLICY, "slow consumer: the client did not keep up and events were dropped")
SILENT_CLIENT = Close(CloseCode.POLICY, f"no pong or other frame from the client for {SILENT_CLIENT_LIMIT_S:.0f} s")


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: initial_s doubling up to maximum_s; give up after `attempts` failures in a row."""

    initial_s: float = 0.2
    maximum_s: float = 5.0
    attempts: int = 8

    def delay(self, failures: int) -> float:
        return float(min(self.maximum_s, self.initial_s * 2 ** max(0, failures - 1)))


@dataclass(frozen=True)
class WsBacklog:
    """How far one WebSocket client may fall behind before it is lagged (depth, user) or closed (others).

    frames: the client's queue in the gateway. send_buffer_bytes: what its socket may hold unsent,
    asked of the kernel (SO_SNDBUF, which Linux doubles) and used as the transport's high-water
    mark; 0 leaves the OS defaults (autotuned up to net.ipv4.tcp_wmem's maximum).
    """

    frames: int = CLIENT_QUEUE_FRAMES
    send_buffer_bytes: int = CLIENT_SEND_BUFFER_BYTES

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError("a client queue holds at least 2 frames (lagged notice and snapshot)")
        if self.send_buffer_bytes < 0:
            raise ValueError("the send buffer is 0 (OS default) or a number of bytes")


def parse_ws_backlog(text: str) -> WsBacklog:
    """`FRAMES,SEND_BUFFER_BYTES` (e.g. `256,65536`); a single number sets the frames only."""
    frames_text, sep, bytes_text = text.partition(",")
    try:
        return WsBacklog(int(frames_text), int(bytes_text) if sep else CLIENT_SEND_BUFFER_BYTES)
    except ValueError as exc:
        raise ValueError(f"expected FRAMES,SEND_BUFFER_BYTES (per WebSocket client), got {text!r}: {exc}") from None


# --- one client ---------------------------------------------------------------------------------


def text_frame(payload: bytes) -> bytes:
    """An unmasked, uncompressed, final WebSocket text frame (RFC 6455 §5.2): what a server sends."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


class _WireCache:
    """The wire form of the last frame text: a fan-out offers one str object to every client, so it
    is encoded once per event, not once per client."""

    __slots__ = ("_text", "_wire")

    def __init__(self) -> None:
        self._text: str | None = None
        self._wire = b""

    def wire(self, text: str) -> bytes:
        if text is not self._text:
            self._wire = text_frame(text.encode())
            self._text = text
        return self._wire


_WIRE = _WireCache()


class Flushable(Protocol):
    """Something holding frames for the next flush: one client's `DirectWriter`, or an `EventFanOut`'s
    batch shared by all its clients."""

    def flush(self) -> None: ...


class WriteBatcher:
    """Coalesces what each connection is sent within one burst into one write.

    A socket write costs far more than the bytes it carries (on loopback 2-15 us, and up to ~100 us
    when it wakes a sleeping reader: bench/bench_loopback_writes.py), most of a frame's fan-out
    cost, so frames are collected per connection and flushed together. While the
    gateway keeps up, what one upstream message produced is written as soon as that message is
    handled (`settle`), before the next upstream's message: the upstreams of different symbols
    tick together, and a client should not wait for the others' work. That costs no extra writes,
    because a connection follows one upstream and a provider stream yields at most one message per
    loop iteration. Once a flush takes longer than BUSY_FLUSH_S (thousands of connections), the
    next one waits half as long as the last took (at most MAX_BATCH_DELAY_S), leaving the loop time
    to read the upstreams, and each connection gets everything that arrived meanwhile in one
    write. So the cost per frame falls as the load grows, instead of a backlog building up.
    """

    BUSY_FLUSH_S = 0.005
    MAX_BATCH_DELAY_S = 0.01

    def __init__(
        self, on_flush: Callable[[float, float], None] | None = None, sockets: SocketWrites | None = None
    ) -> None:
        self.sockets = sockets if sockets is not None else SocketWrites(1)  # a shared run to many clients
        self._pending: dict[Flushable, None] = {}
        self._handle: asyncio.Handle | None = None
        self._delayed = False  # the scheduled flush waits to collect more (the last one was costly)
        self._started = 0.0  # perf_counter when the first frame of the pending batch came
        self._last_flush_s = 0.0
        self._on_flush = on_flush  # (flush duration, first frame's wait until written), in seconds
        self.flushes = 0

    def add(self, writer: Flushable) -> None:
        self._pending[writer] = None
        if self._handle is None:
            self._started = time.perf_counter()
            loop = asyncio.get_running_loop()
            cost = self._last_flush_s
            self._delayed = cost > self.BUSY_FLUSH_S
            if self._delayed:
                self._handle = loop.call_later(min(cost / 2, self.MAX_BATCH_DELAY_S), self.flush)
            else:
                self._handle = loop.call_soon(self.flush)

    def settle(self) -> None:
        """One upstream message is handled: write what it produced now, unless flushes are costly
        (then the delayed flush collects more)."""
        if self._handle is not None and not self._delayed:
            self.flush()

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        started = time.perf_counter()
        pending, self._pending = self._pending, {}
        for writer in pending:
            writer.flush()
        ended = time.perf_counter()
        self._last_flush_s = ended - started
        self.flushes += 1
        if self._on_flush is not None and pending:
            self._on_flush(self._last_flush_s, ended - self._started)


class DirectWriter:
    """Writes a client's frames onto its connection, batched (`WriteBatcher`), while it keeps up:
    no task wake-up and no queue. Once the connection holds its high-water mark unsent, `write`
    refuses and the subscriber queues instead (its pump then waits for the socket to drain).

    Order (kept by `Subscriber`): a frame is batched only while the subscriber's queue is empty,
    and the batch is flushed before anything is queued, so batched frames always reach the socket
    before queued ones; the pump writes each queued frame in the same step that takes it off the
    queue (uncompressed frames: aiohttp writes them without awaiting first)."""

    __slots__ = ("_batch", "_batch_bytes", "_batcher", "_fd", "_high_water", "_transport", "_ws")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport, batcher: WriteBatcher) -> None:
        self._ws = ws
        self._transport = transport
        self._batcher = batcher
        self._high_water = transport.get_write_buffer_limits()[1]
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        sock = transport.get_extra_info("socket")
        plain = sock is not None and transport.get_extra_info("sslcontext") is None
        self._fd: int = sock.fileno() if plain else -1

    def raw_fd(self) -> int:
        """The socket's descriptor while bytes may go straight to it (`SocketWrites`), else -1: the
        connection is open, so the descriptor is still this connection's (a closing transport may
        have released it for reuse), and nothing is batched or buffered that must go first."""
        transport = self._transport
        if self._fd < 0 or self._batch or self._ws.closed or transport.is_closing():
            return -1
        return self._fd if not transport.get_write_buffer_size() else -1

    def write_rest(self, wire: bytes, sent: int) -> None:
        """After a raw write of `wire` that took `sent` bytes: the transport takes the rest (buffers
        it, or meets the connection's error and closes)."""
        if sent < len(wire):
            self._transport.write(wire[sent:])

    def _takes_more(self) -> bool:
        """The connection is open and holds less than its high-water mark unsent, batch included."""
        transport = self._transport
        if self._ws.closed or transport.is_closing():
            return False
        return transport.get_write_buffer_size() + self._batch_bytes < self._high_water

    def write(self, text: str) -> bool:
        """Batch the frame for the next flush; False (nothing batched) if the connection is closing
        or backed up."""
        if not self._takes_more():
            return False
        wire = _WIRE.wire(text)
        if not self._batch:
            self._batcher.add(self)
        self._batch.append(wire)
        self._batch_bytes += len(wire)
        return True

    def flush(self) -> None:
        batch = self._batch
        if not batch:
            return
        self._batch, self._batch_bytes = [], 0
        transport = self._transport
        if self._ws.closed or transport.is_closing():
            return  # never data after a close frame
        transport.write(batch[0] if len(batch) == 1 else b"".join(batch))

    def write_now(self, wire: bytes) -> bool:
        """Write frames already in wire form now, after anything batched; False (nothing written) if
        the connection is closing or backed up, as `write`."""
        if not self._takes_more():
            return False
        if self._batch:
            self._batch.append(wire)
            self.flush()
        else:
            self._transport.write(wire)
        return True


class Subscriber:
    """One client's bounded queue of JSON frames, written to its socket by the handler (straight
    away through a `DirectWriter` when one is attached and nothing is queued)."""

    def __init__(self, key: StreamKey, *, capacity: int = CLIENT_QUEUE_FRAMES, limit: int = 0) -> None:
        if capacity < 2:
            raise ValueError("a client queue holds at least 2 frames (lagged notice and snapshot)")
        self.key = key
        self.capacity = capacity
        self.limit = limit  # depth: levels per side in its snapshots
        self.closed: Close | None = None
        self.snapshots = 0  # depth: snapshots queued so far
        self.has_book = False  # depth: its copy is valid (a snapshot queued since the last resync)
        self.lags = 0
        self.direct: DirectWriter | None = None
        self._frames: deque[str] = deque()
        self._ready = asyncio.Event()

    def offer(self, frame: str) -> bool:
        """Send a frame (batched for the next flush) while the client keeps up, else queue it; False
        (nothing queued) when the queue is full. Closed clients drop frames."""
        direct = self.direct
        if direct is not None and self.closed is None and not self._frames and direct.write(frame):
            return True
        return self._queue((frame,))

    def raw_writer(self) -> tuple[DirectWriter, int] | None:
        """Its direct writer and socket while the next frames may go straight to the socket
        (`DirectWriter.raw_fd`)."""
        direct = self.direct
        if direct is None or self.closed is not None or self._frames:
            return None
        fd = direct.raw_fd()
        return (direct, fd) if fd >= 0 else None

    def deliver(self, frames: Sequence[str], wire: bytes) -> bool:
        """Send a run of frames whose wire form, joined, is `wire` (built once for every client): in one
        write while the client keeps up, else queued. False when they overflowed the queue."""
        direct = self.direct
        if direct is not None and self.closed is None and not self._frames and direct.write_now(wire):
            return True
        return self._queue(frames)

    def _queue(self, frames: Sequence[str]) -> bool:
        """Queue frames for the pump, after whatever the direct writer holds; False if not all fit."""
        if self.closed is not None:
            return True
        if self.direct is not None:
            self.direct.flush()  # what it holds goes out ahead of what is queued
        room = self.capacity - len(self._frames)
        self._frames.extend(frames[:room])
        self._ready.set()
        return len(frames) <= room

    def replace(self, frames: Sequence[str]) -> None:
        """Drop everything queued and queue `frames` instead (they supersede it)."""
        if self.closed is not None:
            return
        if self.direct is not None:
            self.direct.flush()
        self._frames.clear()
        self._frames.extend(frames[: self.capacity])
        self._ready.set()

    def close(self, close: Close) -> None:
        if self.closed is None:
            self.closed = close
            self._frames.clear()
            self._ready.set()

    def queued(self) -> list[str]:
        return list(self._frames)

    async def next(self) -> str | Close:
        """The next frame to send, or the Close to send once the client is closed."""
        while True:
            if self.closed is not None:
                return self.closed
            if self._frames:
                return self._frames.popleft()
            self._ready.clear()
            await self._ready.wait()


# --- fan-out: upstream messages -> frames -> clients --------------------------------------------


class UpstreamBroken(Exception):
    """The upstream's messages broke the protocol (a diff gap): reconnect and resynchronise."""


def _ignore() -> None:
    pass


class FanOut(ABC):
    """The clients of one upstream and what each upstream message becomes for them."""

    def __init__(self, key: StreamKey, on_lagged: Callable[[], None] = _ignore) -> None:
        self.key = key
        self.subscribers: list[Subscriber] = []
        self.on_lagged = on_lagged  # called once per client whose queue overflowed

    def join(self, sub: Subscriber) -> None:
        self.subscribers.append(sub)

    def leave(self, sub: Subscriber) -> None:
        with contextlib.suppress(ValueError):
            self.subscribers.remove(sub)

    def close_all(self, close: Close) -> None:
        for sub in self.subscribers:
            sub.close(close)

    def live(self) -> list[Subscriber]:
        return [sub for sub in self.subscribers if sub.closed is None]

    @abstractmethod
    def on_message(self, message: UpstreamMessage) -> None: ...

    @abstractmethod
    def on_lost(self, reason: str) -> None:
        """The upstream broke and is being re-established."""


class EventFanOut(FanOut):
    """Ticker, bookTicker, trades: each event is a frame for every client; a client that cannot keep
    up is closed.

    Every client gets the same frames, so the frames are collected once per batch, not per client,
    and at the batcher's flush their joined wire form, one bytes object, is written to each client
    that keeps up (straight to the sockets of those with nothing unsent, by the batcher's
    `SocketWrites`). An event costs the same whatever the number of clients; only the flush's one
    write per client grows with them. Without a batcher each event is delivered at once."""

    def __init__(
        self,
        key: StreamKey,
        frames: Callable[[UpstreamMessage], list[str]],
        on_lagged: Callable[[], None] = _ignore,
        batcher: WriteBatcher | None = None,
    ) -> None:
        super().__init__(key, on_lagged)
        self._frames = frames
        self._batcher = batcher
        self._texts: list[str] = []  # the batch not yet flushed, as text (for clients' queues)
        self._wires: list[bytes] = []  # and as WebSocket frames (for clients that keep up)
        self._joined_mid_batch: dict[Subscriber, int] = {}  # sends only the batch's frames after its join
        self.slow_closed = 0

    def join(self, sub: Subscriber) -> None:
        super().join(sub)
        if self._texts:
            self._joined_mid_batch[sub] = len(self._texts)

    def on_message(self, message: UpstreamMessage) -> None:
        for frame in self._frames(message):
            self._send(frame)

    def on_lost(self, reason: str) -> None:
        self._send(convert.encode(convert.ws_gap(self.key.symbol, reason)))

    def _send(self, frame: str) -> None:
        if not self._texts and self._batcher is not None:
            self._batcher.add(self)
        self._texts.append(frame)
        self._wires.append(text_frame(frame.encode()))
        if self._batcher is None:
            self.flush()

    def flush(self) -> None:
        texts, wires, late = self._texts, self._wires, self._joined_mid_batch
        if not texts:
            return
        self._texts, self._wires, self._joined_mid_batch = [], [], {}
        wire = wires[0] if len(wires) == 1 else b"".join(wires)
        sockets = self._batcher.sockets if self._batcher is not None else None
        raw: list[DirectWriter] = []  # clients the whole batch goes to in one `SocketWrites.write`
        fds: list[int] = []
        for sub in self.live():
            start = late.get(sub, 0) if late else 0
            writable = sub.raw_writer() if start == 0 and sockets is not None else None
            if writable is not None:
                raw.append(writable[0])
                fds.append(writable[1])
                continue
            delivered = sub.deliver(texts, wire) if start == 0 else sub.deliver(texts[start:], b"".join(wires[start:]))
            if not delivered:
                sub.close(SLOW_CONSUMER)
                self.slow_closed += 1
                self.on_lagged()
        if raw and sockets is not None:
            for writer, took in zip(raw, sockets.write(fds, wire), strict=True):
                writer.write_rest(wire, took)


# A provider stream message carries events or gaps (StreamGap: the provider's own stream from the
# exchange was interrupted, or trade ids skipped), never both: either list below is empty.


def _gap_frames(gaps: Sequence[md.StreamGap]) -> list[str]:
    return [
        convert.encode(convert.ws_gap(g.symbol, g.reason, g.first_missing_trade_id, g.last_missing_trade_id))
        for g in gaps
    ]


def ticker_frames(message: UpstreamMessage) -> list[str]:
    assert isinstance(message, md.StreamTickerResponse)
    return [convert.encode(convert.ws_ticker(t)) for t in message.tickers] + _gap_frames(message.gaps)


def book_ticker_frames(message: UpstreamMessage) -> list[str]:
    assert isinstance(message, md.StreamBookTickerResponse)
    return [convert.encode(convert.ws_book_ticker(t)) for t in message.tickers] + _gap_frames(message.gaps)


def trade_frames(message: UpstreamMessage) -> list[str]:
    assert isinstance(message, md.StreamTradesResponse)
    return [convert.encode(convert.ws_trade(t)) for t in message.trades] + _gap_frames(message.gaps)


class DepthFanOut(FanOut):
    """Depth: keeps its own copy of the book so any client can be (re)started exactly."""

    def __init__(self, key: StreamKey, on_lagged: Callable[[], None] = _ignore) -> None:
        super().__init__(key, on_lagged)
        self.book = OrderBook()
        self.last_update_id = 0
        self.event_time_ms = 0
        self.valid = False
        self._snapshot_frames: dict[tuple[int, SnapshotReason], str] = {}  # at the current id only

    def join(self, sub: Subscriber) -> None:
        super().join(sub)
        if self.valid:
            self._restart(sub, SnapshotReason.INITIAL)

    def snapshot_frame(self, limit: int, reason: SnapshotReason) -> str:
        frame = self._snapshot_frames.get((limit, reason))
        if frame is None:
            bids, asks = self.book.top(limit)
            payload = convert.ws_depth_snapshot(
                self.key.symbol,
                reason,
                self.last_update_id,
                self.event_time_ms,
                bids,
                asks,
                cut_edge(bids, limit, self.book.bid_floor),
                cut_edge(asks, limit, self.book.ask_ceiling),
            )
            frame = self._snapshot_frames[(limit, reason)] = convert.encode(payload)
        return frame

    def _restart(self, sub: Subscriber, reason: SnapshotReason, *, lagged: bool = False) -> None:
        """Replace whatever the client has queued with a snapshot at the copy's current id."""
        frames = [convert.encode(convert.ws_lagged(self.key.symbol))] if lagged else []
        frames.append(self.snapshot_frame(sub.limit, reason))
        sub.replace(frames)
        sub.snapshots += 1
        sub.has_book = True

    def on_message(self, message: UpstreamMessage) -> None:
        assert isinstance(message, md.StreamDepthResponse)
        kind = message.WhichOneof("event")
        if kind == "snapshot":
            self._on_snapshot(message.snapshot)
        elif kind == "diff":
            self._on_diff(message.diff)

    def _on_snapshot(self, snap: md.DepthSnapshot) -> None:
        if not snap.freshness.in_sync:
            self._void("the provider's book is resynchronising")
            return
        # A refresh continues the stream the clients already follow: only the copy's edges moved.
        continues = (
            snap.reason == md.SNAPSHOT_REASON_REFRESH
            and self.valid
            and snap.freshness.last_update_id == self.last_update_id
        )
        bids = convert.levels(snap.bids)
        asks = convert.levels(snap.asks)
        self.book.load_snapshot(bids, asks)
        # Never insert beyond what the snapshot knows (the provider says where that ends): a level
        # there that changed would be inserted while its unchanged neighbours stay missing.
        self.book.set_bounds(snap.bid_floor or None, snap.ask_ceiling or None)
        self.last_update_id = snap.freshness.last_update_id
        self.event_time_ms = snap.freshness.event_time_ms
        self.valid = True
        self._snapshot_frames.clear()
        if continues:
            return
        upstream_lagged = convert.SNAPSHOT_REASONS[snap.reason] is SnapshotReason.LAGGED
        for sub in self.live():
            if sub.snapshots == 0:
                self._restart(sub, SnapshotReason.INITIAL)
            else:
                self._restart(sub, SnapshotReason.LAGGED if upstream_lagged else SnapshotReason.RESYNC)

    def _on_diff(self, diff: md.DepthDiff) -> None:
        if not self.valid:
            return  # the provider sends none while void; nothing to apply them to
        if diff.first_update_id != self.last_update_id + 1:
            raise UpstreamBroken(f"depth diff {diff.first_update_id} does not follow {self.last_update_id}")
        bids, asks = convert.levels(diff.bids), convert.levels(diff.asks)
        self.book.apply(bids, asks)
        self.last_update_id = diff.last_update_id
        self.event_time_ms = diff.event_time_ms
        self._snapshot_frames.clear()
        frame = convert.encode(convert.ws_depth_diff(self.key.symbol, diff, bids, asks))
        for sub in self.live():
            if sub.has_book and not sub.offer(frame):
                sub.lags += 1
                self.on_lagged()
                self._restart(sub, SnapshotReason.LAGGED, lagged=True)

    def _void(self, reason: str) -> None:
        self.valid = False
        self.book.clear()
        self.last_update_id = 0
        self._snapshot_frames.clear()
        frame = convert.encode(convert.ws_resync(self.key.symbol, reason))
        for sub in self.live():
            if sub.has_book:
                sub.has_book = False
                if not sub.offer(frame):
                    sub.replace([frame])  # what is queued is void anyway; the notice must get through

    def on_lost(self, reason: str) -> None:
        self._void(reason)


class UserFanOut(FanOut):
    """/ws/user: events as Binance's user-data frames, plus {"type":"status"} whenever events may be missing.

    A client that cannot keep up loses what it had queued and gets a "lagged" status instead (it
    re-reads open orders and balances over REST); a late joiner first gets the latest status.
    """

    def __init__(self, key: StreamKey, on_lagged: Callable[[], None] = _ignore) -> None:
        super().__init__(key, on_lagged)
        self.last_status: str | None = None
        self.lagged = 0

    def join(self, sub: Subscriber) -> None:
        super().join(sub)
        if self.last_status is not None:
            sub.offer(self.last_status)

    def _send(self, frame: str) -> None:
        for sub in self.live():
            if not sub.offer(frame):
                sub.lags += 1
                self.lagged += 1
                self.on_lagged()
                sub.replace([self._status(convert.UserStreamState.LAGGED, "this client fell behind; events dropped")])

    def _status(self, state: convert.UserStreamState, detail: str) -> str:
        return convert.encode(convert.ws_user_status(state, detail, int(time.time() * 1000)))

    def on_message(self, message: UpstreamMessage) -> None:
        assert isinstance(message, acc.StreamUserDataResponse)
        payload = convert.ws_user_event(message)
        if payload is None:
            return
        frame = convert.encode(payload)
        if message.WhichOneof("event") == "status":
            self.last_status = frame
        self._send(frame)

    def on_lost(self, reason: str) -> None:
        self.last_status = self._status(convert.UserStreamState.DISCONNECTED, reason)
        self._send(self.last_status)


def new_fanout(key: StreamKey, on_lagged: Callable[[], None] = _ignore, batcher: WriteBatcher | None = None) -> FanOut:
    if key.channel is StreamChannel.DEPTH:
        return DepthFanOut(key, on_lagged=on_lagged)
    if key.channel is StreamChannel.USER:
        return UserFanOut(key, on_lagged)
    frames = {
        StreamChannel.TICKER: ticker_frames,
        StreamChannel.BOOK_TICKER: book_ticker_frames,
        StreamChannel.TRADES: trade_frames,
    }[key.channel]
    return EventFanOut(key, frames, on_lagged, batcher)


# --- upstream: one provider stream, reopened on failure ------------------------------------------

Source = Callable[[StreamKey], AsyncGenerator[UpstreamMessage, None]]

# The request itself is wrong: retrying cannot help, and the client is told why.
_CLIENT_ERRORS = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND})
# The provider will not serve this stream at all.
_FATAL_ERRORS = frozenset({grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.PERMISSION_DENIED})


class Upstream:
    """Reads one provider stream into its fan-out; owned (started and cancelled) by the hub."""

    def __init__(
        self,
        key: StreamKey,
        source: Source,
        backoff: Backoff,
        on_open: Callable[[], None],
        on_lagged: Callable[[], None] = _ignore,
        batcher: WriteBatcher | None = None,
    ) -> None:
        self.key = key
        self.fanout = new_fanout(key, on_lagged, batcher)
        self._source = source
        self._backoff = backoff
        self._on_open = on_open
        self._after_message = batcher.settle if batcher is not None else _ignore
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"upstream {self.key}")

    @property
    def finished(self) -> bool:
        return self.task is not None and self.task.done()

    async def run(self) -> None:
        try:
            await self._run()
        except Exception:
            # A bug or a malformed message: the clients must not be left waiting on a dead upstream.
            log.exception("%s: upstream failed", self.key)
            self.fanout.close_all(Close(CloseCode.UPSTREAM_FAILED, "internal error in the gateway's upstream"))

    async def _run(self) -> None:
        failures = 0
        while True:
            retry_after_s = 0.0
            try:
                self._on_open()
                messages = self._source(self.key)
                async with contextlib.aclosing(messages):
                    async for message in messages:
                        failures = 0
                        self.fanout.on_message(message)
                        self._after_message()
                reason = "the provider ended the stream"
            except grpc.RpcError as exc:
                error = decode_rpc_error(exc)
                if error.status_code in _CLIENT_ERRORS:
                    self.fanout.close_all(Close(CloseCode.POLICY, error.message or error.status_code.name))
                    return
                if error.status_code in _FATAL_ERRORS:
                    self.fanout.close_all(Close(CloseCode.UPSTREAM_FAILED, error.message or error.status_code.name))
                    return
                reason = f"the provider stream failed ({error.status_code.name})"
                retry_after_s = (error.retry_after_ms or 0) / 1000
            except UpstreamBroken as exc:
                reason = str(exc)
            failures += 1
            if failures > self._backoff.attempts:
                log.warning("%s: giving up after %d failures: %s", self.key, failures - 1, reason)
                self.fanout.close_all(Close(CloseCode.UPSTREAM_FAILED, f"upstream unavailable: {reason}"))
                return
            log.info("%s: %s; reconnecting", self.key, reason)
            self.fanout.on_lost(f"{reason}; reconnecting")
            await asyncio.sleep(max(self._backoff.delay(failures), retry_after_s))


_FAN_OUT_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
)


class StreamHub:
    """Every upstream of one gateway, keyed by StreamKey; shares them, and ends them when unused."""

    def __init__(
        self,
        source: Source,
        *,
        capacity: int = CLIENT_QUEUE_FRAMES,
        backoff: Backoff | None = None,
        registry: CollectorRegistry | None = None,
        write_threads: int = 1,
    ) -> None:
        self._source = source
        self._capacity = capacity
        self._backoff = backoff or Backoff()
        self._upstreams: dict[StreamKey, Upstream] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._closed = False
        registry = registry if registry is not None else CollectorRegistry()
        self.flush_seconds = Histogram(
            "gateway_http_ws_flush_seconds",
            "one flush of the WebSocket fan-out: a write to every connection with frames waiting; once a "
            f"flush takes over {WriteBatcher.BUSY_FLUSH_S * 1000:g} ms the next batch waits to collect more",
            buckets=_FAN_OUT_BUCKETS_S,
            registry=registry,
        )
        self.batch_delay_seconds = Histogram(
            "gateway_http_ws_batch_delay_seconds",
            "from the first frame of a batch to the end of the flush that wrote it: the longest any frame "
            "of that batch waited in the gateway's fan-out",
            buckets=_FAN_OUT_BUCKETS_S,
            registry=registry,
        )
        self.batcher = WriteBatcher(self._observe_flush, SocketWrites(write_threads))
        self.upstreams_open = Gauge(
            "gateway_http_ws_upstreams",
            "provider streams open now, one per channel, symbol and speed, shared by all its WebSocket clients",
            ["channel"],
            registry=registry,
            multiprocess_mode="livesum",  # with GATEWAY_HTTP_WORKERS > 1: over the live workers
        )
        self.upstream_opens = Counter(
            "gateway_http_ws_upstream_opens",
            "provider streams opened (first client of a key, and each reconnect)",
            ["channel"],
            registry=registry,
        )
        self.lagged = Counter(
            "gateway_http_ws_lagged",
            "WebSocket clients that fell behind (their queue overflowed): a depth client is restarted from a "
            "snapshot, a /ws/user client gets a lagged status, other clients are closed 1008",
            ["channel"],
            registry=registry,
        )

    def _observe_flush(self, duration_s: float, delay_s: float) -> None:
        self.flush_seconds.observe(duration_s)
        self.batch_delay_seconds.observe(delay_s)

    def upstream(self, key: StreamKey) -> Upstream | None:
        return self._upstreams.get(key)

    def subscribe(self, key: StreamKey, *, limit: int = 0) -> Subscriber:
        """A new client of `key`, sharing the upstream if one runs. Needs a running event loop."""
        sub = Subscriber(key, capacity=self._capacity, limit=limit)
        if self._closed:
            sub.close(SHUTDOWN)
            return sub
        upstream = self._upstreams.get(key)
        if upstream is not None and upstream.finished:  # it gave up; its clients are closed
            self._drop(upstream)
            upstream = None
        if upstream is None:
            channel = key.channel.value
            upstream = Upstream(
                key,
                self._source,
                self._backoff,
                self.upstream_opens.labels(channel=channel).inc,
                self.lagged.labels(channel=channel).inc,
                self.batcher,
            )
            self._upstreams[key] = upstream
            self.upstreams_open.labels(channel=channel).inc()
            upstream.start()
        upstream.fanout.join(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """The client is gone; the last client of an upstream ends it (its provider call is cancelled)."""
        upstream = self._upstreams.get(sub.key)
        if upstream is None or sub not in upstream.fanout.subscribers:
            return
        upstream.fanout.leave(sub)
        if not upstream.fanout.subscribers:
            self._drop(upstream)

    def _drop(self, upstream: Upstream) -> None:
        if self._upstreams.get(upstream.key) is upstream:
            del self._upstreams[upstream.key]
            self.upstreams_open.labels(channel=upstream.key.channel.value).dec()
        task = upstream.task
        if task is not None and not task.done():
            task.cancel()
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """Close every client (1000) and end every upstream; idempotent."""
        self._closed = True
        for upstream in list(self._upstreams.values()):
            upstream.fanout.close_all(SHUTDOWN)
            self._drop(upstream)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
        self.batcher.sockets.close()


Resp = TypeVar("Resp", bound=UpstreamMessage)


async def _relay(open_call: Callable[[], grpc.aio.UnaryStreamCall[Any, Resp]]) -> AsyncGenerator[Resp, None]:
    # The call is made inside the generator, so closing or cancelling the reader always cancels it.
    call = open_call()
    try:
        async for message in call:
            yield message
    finally:
        call.cancel()


def provider_source(channel: grpc.aio.Channel) -> Source:
    """Opens the provider's MarketData stream for a key; the call is cancelled when the reader stops."""
    stub = md_grpc.MarketDataStub(channel)
    account: acc_grpc.AccountAsyncStub = acc_grpc.AccountStub(channel)

    def open_stream(key: StreamKey) -> AsyncGenerator[UpstreamMessage, None]:
        if key.channel is StreamChannel.USER:
            return _relay(lambda: account.StreamUserData(acc.StreamUserDataRequest()))
        symbols = [key.symbol]
        if key.channel is StreamChannel.TICKER:
            return _relay(lambda: stub.StreamTicker(md.StreamTickerRequest(symbols=symbols)))
        if key.channel is StreamChannel.BOOK_TICKER:
            return _relay(lambda: stub.StreamBookTicker(md.StreamBookTickerRequest(symbols=symbols)))
        if key.channel is StreamChannel.TRADES:
            return _relay(lambda: stub.StreamTrades(md.StreamTradesRequest(symbols=symbols)))
        assert key.speed is not None
        depth = md.StreamDepthRequest(symbol=key.symbol, limit=UPSTREAM_DEPTH_LEVELS, speed=_GRPC_SPEED[key.speed])
        return _relay(lambda: stub.StreamDepth(depth))

    return open_stream


# --- the WebSocket shell ------------------------------------------------------------------------

STREAM_HUB = web.AppKey("stream_hub", StreamHub)
WS_CONNECTIONS: web.AppKey[ConnectionCounter] = web.AppKey("ws_connections")
WS_BACKLOG = web.AppKey("ws_backlog", WsBacklog)  # its frames must match the hub's capacity


class LiveSockets:
    """The transports of the open WebSocket stream clients, so shutdown can drop those that never
    took their close frame (a client that stopped reading holds its handler in a blocked write)."""

    def __init__(self) -> None:
        self._open: set[asyncio.Transport] = set()
        self._none_open = asyncio.Event()
        self._none_open.set()

    def add(self, transport: asyncio.Transport) -> None:
        self._open.add(transport)
        self._none_open.clear()

    def discard(self, transport: asyncio.Transport) -> None:
        self._open.discard(transport)
        if not self._open:
            self._none_open.set()

    async def drop_after(self, wait_s: float) -> int:
        """Wait up to `wait_s` for every client to be gone, then abort the sockets left; how many."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_open.wait(), wait_s)
        left = list(self._open)
        for transport in left:
            transport.abort()
        return len(left)


LIVE_SOCKETS = web.AppKey("live_sockets", LiveSockets)


def bound_send_buffering(transport: asyncio.Transport | None, limit: int) -> None:
    """Cap what the connection holds unsent, so a stalled reader fills its queue (and is lagged) soon."""
    if transport is None or limit == 0:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limit)  # also turns off the kernel's autotuning
    # Duck-typed: uvloop's transports have the method without subclassing asyncio.WriteTransport.
    transport.set_write_buffer_limits(high=limit)


async def _pump(sub: Subscriber, ws: web.WebSocketResponse) -> None:
    """Write the client's queue to its socket until it is closed."""
    while True:
        item = await sub.next()
        if isinstance(item, Close):
            await ws.close(code=item.code, message=item.reason_bytes())
            return
        await ws.send_str(item)


async def serve_stream(request: web.Request, key: StreamKey, limit: int = 0) -> web.WebSocketResponse:
    connections = request.app.get(WS_CONNECTIONS)
    if connections is None:  # an app without limits (tests of the shell alone)
        return await _serve_stream(request, key, limit)
    principal = request.get(PRINCIPAL)
    if principal is None:  # every WebSocket route requires a scope: clients are counted per token
        raise RuntimeError(f"{request.path}: a WebSocket stream reached without a token")
    holder = principal.name
    connections.acquire(holder)  # refused before the upgrade: a plain HTTP error answer
    try:
        return await _serve_stream(request, key, limit)
    finally:
        connections.release(holder)


async def _keepalive(ws: web.WebSocketResponse, heard: list[float], transport: asyncio.Transport | None) -> None:
    """Ping every PING_EVERY_S; close a client silent for SILENT_CLIENT_LIMIT_S (`heard[0]`: loop time
    the client was last heard from). A ping that waits behind a full socket does not hold this up."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(PING_EVERY_S)
        if loop.time() - heard[0] > SILENT_CLIENT_LIMIT_S:
            log.info("closing a WebSocket client: %s", SILENT_CLIENT.reason)
            with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
                await asyncio.wait_for(
                    ws.close(code=SILENT_CLIENT.code, message=SILENT_CLIENT.reason_bytes()), CLOSE_WAIT_S
                )
            if transport is not None:
                transport.abort()  # it never answered the close either
            return
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(ws.ping(), PING_EVERY_S)


async def _serve_stream(request: web.Request, key: StreamKey, limit: int) -> web.WebSocketResponse:
    send_buffer = request.app.get(WS_BACKLOG, WsBacklog()).send_buffer_bytes
    ws = web.WebSocketResponse(
        protocols=websocket_protocols(request),
        autoping=False,  # pings answered and pongs noted below, for the keepalive
        max_msg_size=4096,
        # Frames are encoded once for all clients and written as they are (DirectWriter); per-client
        # compression (permessage-deflate) would cost every client its own encoding of every frame.
        compress=False,
        # The writer waits for the transport to drain only after this many bytes since it last looked.
        writer_limit=send_buffer or AIOHTTP_WRITER_LIMIT,
    )
    await ws.prepare(request)
    bound_send_buffering(request.transport, send_buffer)
    hub = request.app[STREAM_HUB]
    loop = asyncio.get_running_loop()
    heard = [loop.time()]
    live, transport = request.app.get(LIVE_SOCKETS), request.transport
    if live is not None and transport is not None:
        live.add(transport)
    with request.app[METRICS].ws_client(route_label(request)):
        sub = hub.subscribe(key, limit=limit)
        if transport is not None:
            sub.direct = DirectWriter(ws, transport, hub.batcher)
        pump = asyncio.create_task(_pump(sub, ws), name=f"ws pump {key}")
        keepalive = asyncio.create_task(_keepalive(ws, heard, request.transport), name=f"ws keepalive {key}")
        try:
            # Reading answers pings and notices the client's close; clients send nothing else we act on.
            async for message in ws:
                heard[0] = loop.time()
                if message.type is WSMsgType.PING:
                    await ws.pong(message.data)
                elif message.type is WSMsgType.ERROR:
                    break
        finally:
            hub.unsubscribe(sub)
            pump.cancel()
            keepalive.cancel()
            await asyncio.gather(pump, keepalive, return_exceptions=True)
            if live is not None and transport is not None:
                live.discard(transport)
    return ws


def _key(request: web.Request, channel: StreamChannel, speed: DepthSpeed | None = None) -> StreamKey:
    return StreamKey(channel, request[PARAMS].get("symbol", str), speed)


async def ticker_stream(request: web.Request) -> web.StreamResponse:
    return await serve_stream(request, _key(request, StreamChannel.TICKER))


async def book_ticker_stream(request: web.Request) -> web.StreamResponse:
    return await serve_stream(request, _key(request, StreamChannel.BOOK_TICKER))


async def trades_stream(request: web.Request) -> web.StreamResponse:
    return await serve_stream(request, _key(request, StreamChannel.TRADES))


async def depth_stream(request: web.Request) -> web.StreamResponse:
    params = request[PARAMS]
    key = _key(request, StreamChannel.DEPTH, DepthSpeed(params.get("speed", str)))
    return await serve_stream(request, key, params.get("limit", int))


_SYMBOL = Param("symbol", str, required=True, location=ParamIn.PATH, pattern=SYMBOL_PATTERN, description="e.g. BTCUSDT")
_CLOSES = (
    "Close codes: 1000 gateway shutdown; 1008 policy (unknown symbol, a slow consumer whose queue, "
    f"{CLIENT_QUEUE_FRAMES} frames by default, overflowed, or no pong or other frame from the client for "
    f"{SILENT_CLIENT_LIMIT_S:.0f} s); 1011 the provider stream failed and reconnecting gave up. The gateway pings "
    f"every {PING_EVERY_S:.0f} s. "
    "Authenticate with `Authorization: Bearer <token>` or the subprotocols `bearer, <token>`."
)


def add_stream_routes(api: Api) -> None:
    api.route(
        "GET",
        "/ws/ticker/{symbol}",
        ticker_stream,
        scope=Scope.READ,
        summary="Live 24h rolling ticker (WebSocket)",
        description=(
            'Frames: Binance `<symbol>@ticker` events plus "type":"ticker"; {"type":"gap","s","reason"} where '
            "events may be missing: the gateway's stream from the provider, or the provider's from the "
            "exchange, was interrupted, or (trades) the exchange's trade ids skipped. The stream goes on. " + _CLOSES
        ),
        tags=("market data streams",),
        params=[_SYMBOL],
        websocket=True,
    )
    api.route(
        "GET",
        "/ws/bookTicker/{symbol}",
        book_ticker_stream,
        scope=Scope.READ,
        summary="Live best bid and ask (WebSocket)",
        description='Frames: Binance `<symbol>@bookTicker` events plus "type":"bookTicker"; {"type":"gap"} as for '
        "tickers. " + _CLOSES,
        tags=("market data streams",),
        params=[_SYMBOL],
        websocket=True,
    )
    api.route(
        "GET",
        "/ws/trades/{symbol}",
        trades_stream,
        scope=Scope.READ,
        summary="Live public trades (WebSocket)",
        description='Frames: Binance `<symbol>@trade` events plus "type":"trade"; {"type":"gap"} as for tickers. '
        'A gap of skipped trade ids also has "firstId" and "lastId": GET /api/v1/trades?fromId=firstId&limit='
        "lastId-firstId+1 fetches them. " + _CLOSES,
        tags=("market data streams",),
        params=[_SYMBOL],
        websocket=True,
    )
    api.route(
        "GET",
        "/ws/depth/{symbol}",
        depth_stream,
        scope=Scope.READ,
        summary="Live order book: a snapshot, then diffs (WebSocket)",
        description=(
            'First {"type":"snapshot","reason":"initial","lastUpdateId","bids","asks","bidFloor","askCeiling",'
            '"inSync":true}, then {"type":"diff","U","u","E","b","a"} with U == previous u + 1 (absolute '
            'quantities, "0" removes). The snapshot knows no bids below bidFloor and no asks above askCeiling '
            "(null: that side is complete); diffs carry changes there too, as Binance's do, so an exact copy "
            "ignores them. "
            '{"type":"resync","reason"} means the copy is void; a snapshot with reason "resync" follows when the '
            'book is back. A client that falls behind gets {"type":"lagged"} and a snapshot with reason '
            '"lagged" at once. ' + _CLOSES
        ),
        tags=("market data streams",),
        params=[
            _SYMBOL,
            Param("speed", str, default=DepthSpeed.MS_100.value, choices=tuple(s.value for s in DepthSpeed)),
            Param(
                "limit",
                int,
                minimum=1,
                maximum=MAX_CLIENT_DEPTH_LEVELS,
                default=DEFAULT_CLIENT_DEPTH_LEVELS,
                description="levels per side in snapshots (diffs carry every change, as Binance's)",
            ),
        ],
        websocket=True,
    )


# --- lifecycle ----------------------------------------------------------------------------------


async def close_streams(app: web.Application) -> None:
    """on_shutdown: close every client with 1000 so their handlers return before the server waits on
    them; after CLOSE_WAIT_S the sockets of clients that did not take their close frame are dropped."""
    hub = app.get(STREAM_HUB)
    if hub is not None:
        await hub.close()
    live = app.get(LIVE_SOCKETS)
    if live is not None:
        dropped = await live.drop_after(CLOSE_WAIT_S)
        if dropped:
            log.info("shutdown: dropped %d WebSocket clients that did not take their close frame", dropped)
