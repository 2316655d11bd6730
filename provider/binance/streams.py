"""The provider's WebSocket market-stream client: a pool of combined-stream connections (§7).

Streams are added and removed at runtime with SUBSCRIBE/UNSUBSCRIBE on ``<base>/stream``; each
connection carries at most `max_streams_per_connection` of them, and more connections are opened
as needed. The planning rules (which connection, message pacing, backoff, duplicate detection)
are pure and live in `provider.binance.stream_plan`; this module is the shell that obeys them.

One *slot* is one logical connection: a set of wanted streams and one controller task that
connects, subscribes, keeps the connection alive (our own pings when it goes quiet, a silence
watchdog), reconnects with backoff after a loss and rolls the connection over before Binance's
24 h cut. Each physical connection has a reader task that parses frames and delivers events to the
handler synchronously, in arrival order.

Consumer-visible state per stream: *up* once its SUBSCRIBE ack arrived on the connection that
delivers it (`on_streams_up`), *down* when that connection is lost (`on_streams_down`). Events are
delivered only for streams that are up. A rollover never reports streams down: the replacement
connection subscribes everything first, a barrier request on the old connection proves every
event published before the replacement subscribed has been read, then delivery switches over and
the replacement's events already delivered by the old connection are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import aiohttp
import orjson
from aiohttp import WSMsgType

from provider.binance.stream_plan import (
    Backoff,
    Deduper,
    FrameKind,
    Pacer,
    assign_streams,
    chunked,
    classify,
    pacing_interval,
    sequence_key,
    valid_stream_name,
    was_healthy,
)

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S: Final = 2.0  # how long closing a socket waits for the server's close frame
ROLLOVER_BUFFER_LIMIT: Final = 20_000  # events a replacement connection holds before the switch
MAX_INCOMING_MESSAGE: Final = 16 << 20  # a large partial-depth or array frame fits
MIN_WAIT_S: Final = 0.005  # floor of the controller's sleep, so a deadline just passed cannot spin


class StreamHandler(Protocol):
    def on_message(self, stream: str, data: dict[str, Any]) -> None:
        """One parsed event, in order per stream; synchronous, fast."""

    def on_streams_down(self, streams: frozenset[str]) -> None:
        """These streams stopped being delivered (connection lost or closed, watchdog, shutdown)."""

    def on_streams_up(self, streams: frozenset[str]) -> None:
        """These streams are confirmed subscribed and delivering from now on."""


@dataclass(frozen=True)
class StreamPoolConfig:
    max_streams_per_connection: int = 1024
    max_messages_per_second: float = 5.0  # outgoing control messages per connection (stay a bit under)
    max_streams_per_message: int = 200  # split SUBSCRIBE params
    silence_timeout_s: float = 10.0  # watchdog: no frame at all on a connection for this long -> dead
    # Stall watchdog: a connection carrying streams that gets pongs but no event for this long is
    # stuck server-side (a stalled feed): dead too. None disables it (for connections of quiet streams).
    data_silence_timeout_s: float | None = 60.0
    max_connection_age_s: float = 23.5 * 3600  # rollover before Binance's 24 h cut
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 30.0
    # A connection that carried confirmed streams this long proved the endpoint works: losing it
    # resets the reconnect backoff (every book waits for the reconnect). One that dies sooner counts
    # as a failure, so a server that keeps dropping us is retried less and less often (Binance allows
    # 300 connection attempts per 5 minutes per IP: at most 30 per slot here).
    healthy_after_s: float = 10.0
    connect_timeout_s: float = 10.0


@dataclass(frozen=True)
class StreamPoolStats:
    connections: int  # open sockets, replacements during a rollover included
    reconnects: int  # connections re-established after a loss
    messages: int  # text frames received
    bytes: int  # their size
    rollovers: int  # completed switches to a replacement connection
    watchdog_trips: int
    per_connection_streams: tuple[int, ...]  # wanted streams of each slot, in slot order
    last_message_age_s: float | None  # since the last text frame on any connection; None before any
    duplicates_dropped: int  # replacement-connection events already delivered by the old one
    control_messages: int  # SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS and pings sent


class Method(enum.Enum):
    SUBSCRIBE = "SUBSCRIBE"
    UNSUBSCRIBE = "UNSUBSCRIBE"
    LIST_SUBSCRIPTIONS = "LIST_SUBSCRIPTIONS"


class Loss(enum.Enum):
    CLOSED = "closed by the server"
    ERROR = "connection error"
    SERVER_SHUTDOWN = "serverShutdown event"
    WATCHDOG = "silent for too long"
    REQUEST_TIMEOUT = "control request unanswered"


@dataclass(frozen=True)
class _Request:
    method: Method
    streams: frozenset[str]
    sent_at: float


class _Conn:
    """One WebSocket connection and what the server has confirmed on it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, now: float, interval: float) -> None:
        self.ws = ws
        self.opened_at = now
        self.last_frame_at = now
        self.last_data_at = now  # last event, or when streams were last confirmed
        self.pacer = Pacer(interval)
        self.reader: asyncio.Task[None] | None = None
        self.confirmed: set[str] = set()  # acked by the server
        self.requested: set[str] = set()  # what the server will carry once every request is processed
        self.inflight: dict[int, _Request] = {}
        self.busy: dict[str, int] = {}  # stream -> requests in flight naming it
        self.rejected: dict[str, float] = {}  # stream -> when to ask again after an error reply
        self.confirmed_at: float | None = None  # first ack: start of "healthy"
        self.ping_sent_at: float | None = None
        self.lost: Loss | None = None
        self.retired = False  # replaced by a rollover: its frames are ignored
        # rollover, on the replacement: events held until the switch, then the duplicate filter
        self.held: deque[tuple[str, Any]] | None = None
        self.held_overflow = False
        self.dedupe: Deduper | None = None
        # rollover, on the old connection: last key delivered per stream and the barrier request
        self.last_key: dict[str, int] = {}
        self.barrier_id: int | None = None
        self.barrier_covers: frozenset[str] = frozenset()
        self.barrier_done = False

    def ping_pending(self) -> bool:
        return self.ping_sent_at is not None and self.ping_sent_at >= self.last_frame_at

    def ready_for(self, streams: set[str]) -> bool:
        """Every one of `streams` is acked and has no request in flight."""
        return all(s in self.confirmed and s not in self.busy for s in streams)


class _Slot:
    """One logical connection: wanted streams, the streams reported up, its controller task."""

    def __init__(self, config: StreamPoolConfig) -> None:
        self.desired: set[str] = set()
        self.live: set[str] = set()
        self.active: _Conn | None = None
        self.incoming: _Conn | None = None  # the replacement during a rollover
        self.wake = asyncio.Event()
        self.closing = False
        self.ever_connected = False
        self.backoff = Backoff(config.backoff_initial_s, config.backoff_max_s)
        self.rollover_backoff = Backoff(config.backoff_initial_s, config.backoff_max_s)
        self.rollover_not_before = 0.0
        self.task: asyncio.Task[None] | None = None
        self.retiring: set[_Conn] = set()  # being closed

    def conns(self) -> list[_Conn]:
        return [c for c in (self.active, self.incoming) if c is not None]


class StreamPool:
    """Combined-stream connections carrying the wanted streams; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        handler: StreamHandler,
        config: StreamPoolConfig = StreamPoolConfig(),
        *,
        rng: random.Random | None = None,
    ) -> None:
        if config.max_streams_per_connection < 1 or config.max_streams_per_message < 1:
            raise ValueError("stream limits must be at least 1")
        self._url = base_url.rstrip("/") + "/stream"
        self._session = session
        self._handler = handler
        self._config = config
        self._rng = rng or random.Random()
        self._interval = pacing_interval(config.max_messages_per_second)
        self._ws_timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT_S)
        self._slots: list[_Slot] = []
        self._owner: dict[str, _Slot] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._started = False
        self._closed = False
        # counters
        self._reconnects = 0
        self._messages = 0
        self._bytes = 0
        self._rollovers = 0
        self._watchdog_trips = 0
        self._duplicates = 0
        self._control = 0
        self._last_message_at: float | None = None

    # ------------------------------------------------------------------ public API

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError("the stream pool is closed")
        if self._started:
            return
        self._started = True
        for slot in self._slots:
            self._spawn(slot)

    def subscribe(self, streams: Iterable[str]) -> None:
        names = set(streams)
        bad = sorted(n for n in names if not valid_stream_name(n))
        if bad:
            raise ValueError(f"invalid stream names: {bad}")
        if self._closed:
            raise RuntimeError("the stream pool is closed")
        new = [n for n in names if n not in self._owner]
        if not new:
            return
        cap = self._config.max_streams_per_connection
        slots = list(self._slots)
        groups = assign_streams(new, [cap - len(s.desired) for s in slots], cap)
        for index, group in enumerate(groups):
            if not group:
                continue
            if index < len(slots):
                slot = slots[index]
            else:
                slot = _Slot(self._config)
                self._slots.append(slot)
                if self._started:
                    self._spawn(slot)
            slot.desired.update(group)
            for name in group:
                self._owner[name] = slot
            slot.wake.set()

    def unsubscribe(self, streams: Iterable[str]) -> None:
        for name in set(streams):
            slot = self._owner.pop(name, None)
            if slot is None:
                continue
            slot.desired.discard(name)
            slot.live.discard(name)  # explicit: no on_streams_down
            slot.wake.set()
            if not slot.desired:
                slot.closing = True  # its controller closes the connection and ends
                self._slots.remove(slot)

    @property
    def subscribed(self) -> frozenset[str]:
        return frozenset(self._owner)

    def live(self, stream: str) -> bool:
        slot = self._owner.get(stream)
        return slot is not None and stream in slot.live

    def stats(self) -> StreamPoolStats:
        now = self._now()
        return StreamPoolStats(
            connections=sum(
                1 for slot in self._slots for conn in slot.conns() if conn.lost is None and not conn.retired
            ),
            reconnects=self._reconnects,
            messages=self._messages,
            bytes=self._bytes,
            rollovers=self._rollovers,
            watchdog_trips=self._watchdog_trips,
            per_connection_streams=tuple(len(slot.desired) for slot in self._slots),
            last_message_age_s=None if self._last_message_at is None else max(0.0, now - self._last_message_at),
            duplicates_dropped=self._duplicates,
            control_messages=self._control,
        )

    async def close(self) -> None:
        """Cancel and await every task; every socket is closed when this returns."""
        self._closed = True
        for slot in self._slots:
            slot.closing = True
        self._slots.clear()
        self._owner.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ tasks

    @staticmethod
    def _now() -> float:
        return time.monotonic()  # the event loop's clock too

    def _spawn(self, slot: _Slot) -> None:
        task = asyncio.create_task(self._run_slot(slot), name="stream-slot")
        slot.task = task
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("stream slot controller failed", exc_info=task.exception())

    async def _run_slot(self, slot: _Slot) -> None:
        try:
            while not slot.closing:
                if slot.active is None:
                    conn = await self._connect_with_backoff(slot)
                    if conn is None:
                        break
                    slot.active = conn
                await self._tick(slot)
                if slot.active is not None and not slot.closing:
                    await self._wait(slot)
        finally:
            # Also on cancellation: nothing the slot opened outlives it.
            for conn in [*slot.conns(), *slot.retiring]:
                await self._close_conn(conn)
            slot.active = slot.incoming = None
            slot.retiring.clear()

    async def _wait(self, slot: _Slot) -> None:
        slot.wake.clear()
        timeout = max(self._next_deadline(slot) - self._now(), MIN_WAIT_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(slot.wake.wait(), timeout)

    def _next_deadline(self, slot: _Slot) -> float:
        cfg = self._config
        times: list[float] = []
        for conn in slot.conns():
            if conn.lost is not None:
                return self._now()
            times.append(conn.last_frame_at + cfg.silence_timeout_s)
            if cfg.data_silence_timeout_s is not None and conn.confirmed:
                times.append(conn.last_data_at + cfg.data_silence_timeout_s)
            if not conn.ping_pending():
                times.append(conn.last_frame_at + cfg.silence_timeout_s / 2)
            if conn.inflight:
                times.append(min(r.sent_at for r in conn.inflight.values()) + cfg.connect_timeout_s)
        synced = slot.incoming or slot.active  # rejected streams are retried only there (see `_tick`)
        if synced is not None and synced.rejected:
            times.append(min(synced.rejected.values()))
        active = slot.active
        if active is not None and slot.incoming is None and not active.inflight:
            times.append(max(active.opened_at + cfg.max_connection_age_s, slot.rollover_not_before))
        if slot.incoming is not None:
            times.append(slot.incoming.opened_at + self._rollover_timeout())
        return min(times, default=self._now() + cfg.silence_timeout_s)

    def _rollover_timeout(self) -> float:
        # connect + subscribe everything at the paced rate + the barrier round trip
        cfg = self._config
        messages = -(-cfg.max_streams_per_connection // cfg.max_streams_per_message) + 2
        return 2 * cfg.connect_timeout_s + messages * self._interval

    # ------------------------------------------------------------------ connecting

    async def _connect_with_backoff(self, slot: _Slot) -> _Conn | None:
        wait = slot.ever_connected  # a new slot connects at once; after a loss or a failure, back off
        while not slot.closing:
            if wait:
                await asyncio.sleep(slot.backoff.next_delay(self._rng.random()))
                if slot.closing:
                    return None
            wait = True
            try:
                conn = await self._connect()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("stream connection to %s failed: %s: %s", self._url, type(exc).__name__, exc)
                continue
            if slot.ever_connected:
                self._reconnects += 1
            slot.ever_connected = True
            self._start_reader(slot, conn)
            return conn
        return None

    async def _connect(self) -> _Conn:
        ws = await asyncio.wait_for(
            self._session.ws_connect(
                self._url,
                autoping=False,  # we see pings: they are frames for the watchdog; we answer them ourselves
                max_msg_size=MAX_INCOMING_MESSAGE,
                timeout=self._ws_timeout,
            ),
            self._config.connect_timeout_s,
        )
        return _Conn(ws, self._now(), self._interval)

    def _start_reader(self, slot: _Slot, conn: _Conn) -> None:
        conn.reader = asyncio.create_task(self._read(slot, conn), name="stream-reader")

    async def _close_conn(self, conn: _Conn) -> None:
        reader = conn.reader
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if not conn.ws.closed:
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                await asyncio.wait_for(conn.ws.close(), CLOSE_TIMEOUT_S + 1.0)

    # ------------------------------------------------------------------ controller step

    async def _tick(self, slot: _Slot) -> None:
        active = slot.active
        assert active is not None
        cfg = self._config
        if active.lost is not None:
            await self._after_loss(slot, active)
            return
        incoming = slot.incoming
        if incoming is not None and (incoming.lost is not None or incoming.held_overflow):
            await self._abort_rollover(slot, "replacement lost" if incoming.lost else "replacement buffer full")
            incoming = None
        # Watchdog, keepalive pings, unanswered requests.
        now = self._now()
        for conn in slot.conns():
            silent = now - conn.last_frame_at
            if silent >= cfg.silence_timeout_s:
                self._watchdog_trips += 1
                log.warning("stream connection silent for %.1f s: dropping it", silent)
                self._lose(slot, conn, Loss.WATCHDOG)
            elif (
                cfg.data_silence_timeout_s is not None
                and conn.confirmed
                and now - conn.last_data_at >= cfg.data_silence_timeout_s
            ):
                self._watchdog_trips += 1
                log.warning("no stream event for %.1f s: feed stalled, dropping it", now - conn.last_data_at)
                self._lose(slot, conn, Loss.WATCHDOG)
            elif conn.inflight and now - min(r.sent_at for r in conn.inflight.values()) >= cfg.connect_timeout_s:
                self._lose(slot, conn, Loss.REQUEST_TIMEOUT)
            elif silent >= cfg.silence_timeout_s / 2 and not conn.ping_pending():
                await self._ping(slot, conn)
        if active.lost is not None:
            await self._after_loss(slot, active)
            return
        if incoming is not None and incoming.lost is not None:
            await self._abort_rollover(slot, "replacement lost")
            incoming = None
        # Subscriptions: during a rollover only the replacement follows changes (the old
        # connection's extra events are filtered out, and it closes soon).
        await self._sync(slot, incoming if incoming is not None else active)
        if slot.closing or active.lost is not None:
            return
        now = self._now()
        if incoming is None:
            due = now - active.opened_at >= cfg.max_connection_age_s and now >= slot.rollover_not_before
            if due and not active.inflight and slot.desired:
                await self._begin_rollover(slot)
        else:
            await self._advance_rollover(slot, active, incoming)

    async def _after_loss(self, slot: _Slot, conn: _Conn) -> None:
        """The active connection is gone (already reported down): close everything, reconnect."""
        log.info("stream connection lost (%s); reconnecting", conn.lost.value if conn.lost else "?")
        # A serverShutdown is the venue moving us (maintenance), not a failure; a connection that
        # served long enough proved the endpoint works. Either way the failures before it are history.
        healthy_after = 0.0 if conn.lost is Loss.SERVER_SHUTDOWN else self._config.healthy_after_s
        if was_healthy(conn.confirmed_at, self._now(), healthy_after):
            slot.backoff.reset()
        for other in slot.conns():
            await self._retire(slot, other)
        slot.active = slot.incoming = None
        slot.rollover_not_before = 0.0

    async def _retire(self, slot: _Slot, conn: _Conn) -> None:
        """Close `conn`; tracked meanwhile so a cancellation still closes it (see `_run_slot`)."""
        conn.retired = True
        slot.retiring.add(conn)
        try:
            await self._close_conn(conn)
        finally:
            slot.retiring.discard(conn)

    async def _request(self, slot: _Slot, conn: _Conn, method: Method, streams: Iterable[str] = ()) -> int | None:
        names = tuple(streams)
        delay = conn.pacer.reserve(self._now()) - self._now()
        if delay > 0:
            await asyncio.sleep(delay)
        if conn.lost is not None or conn.retired:
            return None
        req_id = next(self._ids)
        body: dict[str, Any] = {"method": method.value, "id": req_id}
        if names:
            body["params"] = list(names)
        conn.inflight[req_id] = _Request(method, frozenset(names), self._now())
        for name in names:
            conn.busy[name] = conn.busy.get(name, 0) + 1
        try:
            await conn.ws.send_str(orjson.dumps(body).decode())
        except (aiohttp.ClientError, ConnectionError) as exc:
            log.info("stream connection send failed: %s", exc)
            self._lose(slot, conn, Loss.ERROR)
            return None
        self._control += 1
        return req_id

    async def _ping(self, slot: _Slot, conn: _Conn) -> None:
        # The server answers a ping with a pong: a quiet but healthy connection stays non-silent.
        delay = conn.pacer.reserve(self._now()) - self._now()
        if delay > 0:
            await asyncio.sleep(delay)
        if conn.lost is not None or conn.retired:
            return
        conn.ping_sent_at = self._now()
        try:
            await conn.ws.ping(b"")
        except (aiohttp.ClientError, ConnectionError):
            self._lose(slot, conn, Loss.ERROR)
            return
        self._control += 1

    async def _sync(self, slot: _Slot, conn: _Conn) -> None:
        """Bring the server's subscriptions on `conn` to the slot's wanted streams.

        Unsubscribes go first so the server never counts more than the limit.
        """
        now = self._now()
        for name, at in list(conn.rejected.items()):
            if at <= now or name not in slot.desired:
                del conn.rejected[name]
        size = self._config.max_streams_per_message
        for group in chunked(conn.requested - slot.desired, size):
            conn.requested.difference_update(group)
            if await self._request(slot, conn, Method.UNSUBSCRIBE, group) is None:
                return
        for group in chunked(slot.desired - conn.requested - conn.rejected.keys(), size):
            # the wanted set may have shrunk while we waited for the pacer
            group = tuple(name for name in group if name in slot.desired)
            if not group:
                continue
            conn.requested.update(group)
            if await self._request(slot, conn, Method.SUBSCRIBE, group) is None:
                return

    # ------------------------------------------------------------------ rollover

    async def _begin_rollover(self, slot: _Slot) -> None:
        try:
            conn = await self._connect()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("stream rollover: connecting the replacement failed: %s: %s", type(exc).__name__, exc)
            slot.rollover_not_before = self._now() + slot.rollover_backoff.next_delay(self._rng.random())
            return
        if slot.closing or slot.active is None or slot.active.lost is not None:
            await self._retire(slot, conn)
            return
        conn.held = deque()
        slot.incoming = conn
        slot.active.last_key.clear()  # from here on, every delivered key is recorded
        self._start_reader(slot, conn)
        await self._sync(slot, conn)

    async def _advance_rollover(self, slot: _Slot, old: _Conn, new: _Conn) -> None:
        if self._now() - new.opened_at >= self._rollover_timeout():
            await self._abort_rollover(slot, "replacement not confirmed in time")
            return
        if not new.ready_for(slot.live):
            return
        if old.barrier_id is None:
            # Sent after every ack of the replacement: its reply follows, on the old connection,
            # every event published before the replacement subscribed.
            covers = frozenset(slot.live)
            req_id = await self._request(slot, old, Method.LIST_SUBSCRIPTIONS)
            if req_id is not None:
                old.barrier_id = req_id
                old.barrier_covers = covers
            return
        if not old.barrier_done:
            return
        if not slot.live <= old.barrier_covers:
            old.barrier_id = None  # a stream came up on the old connection since: barrier again
            old.barrier_done = False
            return
        self._switch(slot, old, new)
        await self._retire(slot, old)

    def _switch(self, slot: _Slot, old: _Conn, new: _Conn) -> None:
        """Delivery moves to `new` (no awaits: atomic with respect to both readers)."""
        new.dedupe = Deduper({s: k for s, k in old.last_key.items() if s in slot.live})
        old.retired = True
        slot.active = new
        slot.incoming = None
        held, new.held = new.held or deque(), None
        self._rollovers += 1
        slot.rollover_backoff.reset()
        self._refresh_up(slot, new)
        for stream, data in held:
            self._route(slot, new, stream, data)

    async def _abort_rollover(self, slot: _Slot, why: str) -> None:
        log.warning("stream rollover aborted: %s", why)
        conn = slot.incoming
        slot.incoming = None
        active = slot.active
        if active is not None:
            active.barrier_id = None
            active.barrier_done = False
        slot.rollover_not_before = self._now() + slot.rollover_backoff.next_delay(self._rng.random())
        if conn is not None:
            await self._retire(slot, conn)

    # ------------------------------------------------------------------ state changes (synchronous)

    def _lose(self, slot: _Slot, conn: _Conn, reason: Loss) -> None:
        if conn.lost is not None or conn.retired:
            return
        conn.lost = reason
        if conn is slot.active:
            down = frozenset(slot.live)
            slot.live.clear()
            if down:
                self._notify(self._handler.on_streams_down, down)
        slot.wake.set()

    @staticmethod
    def _notify(callback: Callable[[frozenset[str]], None], streams: frozenset[str]) -> None:
        # Called from the controller too: a failing handler must not take a connection slot down.
        try:
            callback(streams)
        except Exception:
            log.exception("stream handler failed on %s", sorted(streams)[:10])

    def _refresh_up(self, slot: _Slot, conn: _Conn) -> None:
        if conn is not slot.active or conn.lost is not None:
            return
        up = frozenset(s for s in conn.confirmed if s in slot.desired and s not in slot.live and s not in conn.busy)
        if up:
            slot.live.update(up)
            self._notify(self._handler.on_streams_up, up)

    # ------------------------------------------------------------------ reading

    async def _read(self, slot: _Slot, conn: _Conn) -> None:
        ws = conn.ws
        reason = Loss.CLOSED
        try:
            while True:
                msg = await ws.receive()
                conn.last_frame_at = self._now()
                kind = msg.type
                if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                    if not self._on_frame(slot, conn, msg.data):
                        reason = Loss.SERVER_SHUTDOWN
                        break
                elif kind is WSMsgType.PING:
                    await ws.pong(msg.data)  # the same payload, at once (§7.1)
                elif kind is WSMsgType.PONG:
                    continue
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    reason = Loss.ERROR if kind is WSMsgType.ERROR else Loss.CLOSED
                    break
        except (aiohttp.ClientError, ConnectionError) as exc:
            log.info("stream connection read failed: %s", exc)
            reason = Loss.ERROR
        except Exception:
            # A handler bug or a malformed frame must not leave the streams silently dead.
            log.exception("stream reader failed")
            reason = Loss.ERROR
        self._lose(slot, conn, reason)

    def _on_frame(self, slot: _Slot, conn: _Conn, raw: str | bytes) -> bool:
        """Handle one text frame; False when it announces a server shutdown."""
        self._messages += 1
        self._bytes += len(raw)
        self._last_message_at = conn.last_frame_at
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("stream frame is not JSON: %.200r", raw)
            return True
        kind = classify(doc)
        if kind is FrameKind.DATA:
            conn.last_data_at = conn.last_frame_at
            self._route(slot, conn, doc["stream"], doc["data"])
        elif kind is FrameKind.REPLY:
            self._on_reply(slot, conn, doc)
        elif kind is FrameKind.SHUTDOWN:
            log.info("serverShutdown received: reconnecting")
            return False
        else:
            log.debug("unexpected stream frame: %.200r", raw)
        return True

    def _route(self, slot: _Slot, conn: _Conn, stream: str, data: Any) -> None:
        if conn is slot.active:
            if stream not in slot.live:
                return
            dedupe = conn.dedupe
            if dedupe is not None:
                if not dedupe.admit(stream, data):
                    self._duplicates += 1
                    return
                if dedupe.done:
                    conn.dedupe = None
            if slot.incoming is not None:  # a rollover is under way: remember what was delivered
                key = sequence_key(data)
                if key is not None:
                    conn.last_key[stream] = key
            try:
                self._handler.on_message(stream, data)
            except Exception:
                # The consumer's bug: its state is its business; the connection and the other
                # streams carry on.
                log.exception("stream handler failed on %s", stream)
        elif conn is slot.incoming:
            held = conn.held
            if held is None:
                return
            if len(held) >= ROLLOVER_BUFFER_LIMIT:
                conn.held_overflow = True
                held.clear()
                conn.held = None
                slot.wake.set()
                return
            held.append((stream, data))
        # else: retired or lost, nothing to deliver

    def _on_reply(self, slot: _Slot, conn: _Conn, doc: dict[str, Any]) -> None:
        req_id = doc.get("id")
        req = conn.inflight.pop(req_id, None) if isinstance(req_id, int) else None
        if req is None:
            log.debug("reply to an unknown request: %r", doc)
            return
        for name in req.streams:
            left = conn.busy.get(name, 0) - 1
            if left > 0:
                conn.busy[name] = left
            else:
                conn.busy.pop(name, None)
        now = self._now()
        if "code" in doc:
            log.warning(
                "%s %s refused: code %s: %s", req.method.value, sorted(req.streams), doc.get("code"), doc.get("msg")
            )
            if req.method is Method.SUBSCRIBE:
                # Subscribing is all or none: none of them is on the server. Ask again later.
                conn.requested.difference_update(req.streams)
                for name in req.streams:
                    conn.rejected[name] = now + self._config.backoff_max_s
                if conn is slot.active:
                    wanted = frozenset(req.streams & slot.desired)
                    slot.live.difference_update(wanted)
                    if wanted:
                        self._notify(self._handler.on_streams_down, wanted)
            elif req.method is Method.UNSUBSCRIBE:
                conn.requested.update(req.streams & conn.confirmed)
            else:
                conn.barrier_done = req_id == conn.barrier_id  # the order of frames holds all the same
        elif req.method is Method.SUBSCRIBE:
            conn.confirmed.update(req.streams)
            conn.last_data_at = now  # newly confirmed streams get a full stall window
            if conn.confirmed_at is None:
                conn.confirmed_at = now
        elif req.method is Method.UNSUBSCRIBE:
            conn.confirmed.difference_update(req.streams)
        elif req_id == conn.barrier_id:
            conn.barrier_done = True
        self._refresh_up(slot, conn)
        slot.wake.set()
