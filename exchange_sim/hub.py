"""Fan-out from the simulated market to WebSocket stream connections, plus test-only fault hooks.

Pure asyncio: no aiohttp types. The market calls `publish`, `has_subscribers` and `subscribed_streams`;
the connection side (`exchange_sim.wire.streams`) subclasses `Subscriber` and registers it with
`open`/`subscribe`/`unsubscribe`/`set_combined`/`close`; the simulator's control API calls the fault
hooks (`disconnect_all`, `disconnect`, `disconnect_stream`, `drop_next`, `reorder_next`, `stall`, `stop_pings`,
`ignore_pongs`, `server_shutdown`, `reset_faults`).

Stream names (§7): matched case-insensitively, but every connection sees them echoed exactly as it
subscribed them (in LIST_SUBSCRIPTIONS and in the combined wrapper). Internally each name maps to
one canonical key, Binance's own spelling: lowercase except the camel-case event names
(``bookTicker``, ``aggTrade``, ``miniTicker``, ``avgPrice`` …) and the kline interval, whose case
is significant (``kline_1m`` is one minute, ``kline_1M`` one month). `subscribed_streams` returns
canonical keys, so they compare equal to the names the market publishes under.

Delivery: `publish` looks the key up in a dict and appends the frame to each subscriber's bounded
queue; it never awaits and never encodes JSON. Raw connections get the payload object itself;
combined connections get ``{"stream":<name as subscribed>,"data":<payload>}`` built by byte
concatenation, once per distinct spelling per event. A subscriber whose queue is full is a slow
consumer: it is aborted (TCP dropped) and detached at once, and counted; nobody else waits for it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final

import orjson

log = logging.getLogger("exchange_sim.hub")

MAX_STREAMS_PER_CONNECTION: Final = 1024
DEFAULT_QUEUE_LIMIT: Final = 10_000
DEFAULT_SHUTDOWN_GRACE: Final = 1.0

# WebSocket control opcodes (RFC 6455 §5.5), so the hub need not import aiohttp.
OPCODE_PING: Final = 0x9
OPCODE_PONG: Final = 0xA

# Close codes used by the simulator (RFC 6455 §7.4.1).
CLOSE_GOING_AWAY: Final = 1001
CLOSE_POLICY_VIOLATION: Final = 1008

SERVER_SHUTDOWN_STREAM: Final = "!serverShutdown"

_CAMEL: Final = {
    "aggtrade": "aggTrade",
    "bookticker": "bookTicker",
    "miniticker": "miniTicker",
    "!miniticker": "!miniTicker",
    "avgprice": "avgPrice",
    "referenceprice": "referencePrice",
    "blocktrade": "blockTrade",
}


@functools.lru_cache(maxsize=16384)
def stream_key(name: str) -> str:
    """The canonical key of a stream name: Binance's spelling, whatever case the caller used."""
    parts = name.split("@")
    for i, part in enumerate(parts):
        low = part.lower()
        if low.startswith("kline_"):
            parts[i] = "kline_" + part[6:]  # the interval keeps its case: 1m (minute) ≠ 1M (month)
        else:
            parts[i] = _CAMEL.get(low, low)
    return "@".join(parts)


def combined_prefix(name: str) -> bytes:
    """The bytes before the payload in a combined-stream frame for `name` (the frame ends with ``}``)."""
    return b'{"stream":' + orjson.dumps(name) + b',"data":'


# --------------------------------------------------------------------------- microseconds

_TICKER_EVENTS: Final = frozenset({"24hrTicker", "1hTicker", "4hTicker", "1dTicker"})


def _event_to_micros(event: dict[str, Any]) -> None:
    for field in ("E", "T"):
        value = event.get(field)
        if type(value) is int:
            event[field] = value * 1000
    if event.get("e") in _TICKER_EVENTS:
        for field in ("O", "C"):
            value = event.get(field)
            if type(value) is int:
                event[field] = value * 1000
    kline = event.get("k")
    if isinstance(kline, dict):
        for field in ("t", "T"):
            value = kline.get(field)
            if type(value) is int:
                kline[field] = value * 1000


def to_microseconds(payload: bytes) -> bytes:
    """The payload with its time fields in µs (`timeUnit=MICROSECOND`, §3.5).

    Converts the documented time fields of the stream events (§7.3): ``E`` and ``T`` everywhere,
    ``O``/``C`` of the rolling tickers, ``k.t``/``k.T`` of klines; ids and prices are untouched.
    Precision stays at the millisecond (the market keeps ms clocks): the value is ms × 1000.
    Done once per event for all µs subscribers of that event, never per connection.
    """
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload
    if isinstance(doc, dict):
        _event_to_micros(doc)
    elif isinstance(doc, list):
        for item in doc:
            if isinstance(item, dict):
                _event_to_micros(item)
    else:
        return payload
    return orjson.dumps(doc)


# --------------------------------------------------------------------------- subscriber


class TooManyStreams(ValueError):
    """A subscription would take a connection past the per-connection stream limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} streams per connection")
        self.limit = limit


class Subscriber(abc.ABC):
    """One connection as the hub sees it: its streams, framing flags and bounded send queue.

    The connection side subclasses it, implements `close` and `abort`, and runs one writer task
    that loops on `wait()` → `take_control()` → `take()` and sends what it got, in that order.
    """

    def __init__(self, *, combined: bool, micro: bool = False) -> None:
        self.combined = combined  # set through StreamHub.set_combined
        self.micro = micro  # timeUnit=MICROSECOND
        self.streams: dict[str, str] = {}  # canonical key -> name as subscribed, in subscription order
        self.close_request: tuple[int, str] | None = None
        self.finished = False
        self._queue: deque[bytes] = deque()
        self._control: list[tuple[int, bytes]] = []
        self._limit = DEFAULT_QUEUE_LIMIT
        self._waiter: asyncio.Future[None] | None = None

    # ---- called by the hub

    @abc.abstractmethod
    def close(self, code: int, reason: str) -> None:
        """Close cleanly (queued frames, then a close frame with `code`); must not block."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Drop the TCP connection at once, without a close frame; must not block."""

    def push(self, frame: bytes) -> bool:
        """Queue a data frame; False when the queue is full (the subscriber is a slow consumer)."""
        queue = self._queue
        if len(queue) >= self._limit:
            return False
        queue.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    # ---- called by the connection side

    @property
    def pending(self) -> int:
        """Data frames queued and not yet taken by the writer."""
        return len(self._queue)

    def push_reply(self, frame: bytes) -> None:
        """Queue a text frame that must not be refused (control responses, serverShutdown)."""
        self._queue.append(frame)
        self._wake()

    def push_control(self, opcode: int, data: bytes) -> None:
        """Queue a ping or pong frame; the writer sends these before data frames."""
        self._control.append((opcode, data))
        self._wake()

    def request_close(self, code: int, reason: str) -> bool:
        """Ask the writer to send what is queued, then a close frame. False if already asked."""
        if self.close_request is not None or self.finished:
            return False
        self.close_request = (code, reason)
        self._wake()
        return True

    def finish(self) -> None:
        """The connection is over: the writer stops without closing."""
        self.finished = True
        self._wake()

    async def wait(self) -> None:
        """Until there is something to send, or a close was requested, or the connection finished."""
        while not (self._queue or self._control or self.close_request is not None or self.finished):
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None

    def take(self) -> deque[bytes]:
        """Every queued data frame, oldest first; the queue starts again empty."""
        frames = self._queue
        self._queue = deque()
        return frames

    def take_control(self) -> list[tuple[int, bytes]]:
        frames = self._control
        self._control = []
        return frames

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


# --------------------------------------------------------------------------- hub

_COUNTERS: Final = (
    "connections_opened",
    "connections_closed",
    "events_published",  # events that had at least one subscriber
    "messages_sent",  # text frames written by the connection side (data, replies, serverShutdown)
    "slow_consumer_closes",
    "rate_limit_closes",
    "pong_timeout_closes",
    "lifetime_closes",
    "shutdown_closes",
)

_FAULT_COUNTERS: Final = (
    # one per call of each hook
    "disconnect_all",
    "disconnect",
    "drop_next",
    "reorder_next",
    "stall",
    "stop_pings",
    "resume_pings",
    "ignore_pongs",
    "heed_pongs",
    "server_shutdown",
    "reset_faults",
    # their effects
    "connections_aborted",
    "events_dropped",
    "events_reordered",
    "events_stalled",
    "events_stall_dropped",
    "pings_skipped",
    "pongs_ignored",
    "shutdown_events_sent",
)


def _wall_ms() -> int:
    return int(time.time() * 1000)


class StreamHub:
    """Fan-out from the simulated market to WebSocket connections. Pure asyncio, no aiohttp types."""

    def __init__(
        self,
        *,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        max_streams: int = MAX_STREAMS_PER_CONNECTION,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.queue_limit = queue_limit
        self._now_ms = clock or _wall_ms  # the simulator's clock (shifted by the clock fault)
        self.max_streams = max_streams
        self.shutdown_grace = shutdown_grace
        self.counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self.fault_counters: dict[str, int] = dict.fromkeys(_FAULT_COUNTERS, 0)
        # read by the connection side
        self.pings_stopped = False
        self.pongs_ignored = False
        self._subs: dict[Subscriber, None] = {}  # open connections, oldest first
        self._topics: dict[str, dict[Subscriber, bytes]] = {}  # key -> subscriber -> its combined prefix
        self._subscribed: frozenset[str] | None = None
        self._listeners: list[Callable[[], None]] = []
        # faults
        self._faulty = False
        self._drops: dict[str, int] = {}
        self._reorder_armed: set[str] = set()
        self._reorder_held: dict[str, bytes] = {}
        self._stalls: dict[str | None, asyncio.TimerHandle] = {}
        self._stall_drop: dict[str | None, bool] = {}
        self._held: list[tuple[str, bytes]] = []
        self._timers: set[asyncio.TimerHandle] = set()

    # ------------------------------------------------------------------ market side

    def publish(self, stream: str, payload: bytes) -> None:
        """Deliver one event (the bare event JSON, encoded once) to every subscriber of `stream`."""
        subs = self._topics.get(stream)
        if subs is None:
            key = stream_key(stream)
            if key == stream:
                return
            subs = self._topics.get(key)
            if subs is None:
                return
            stream = key
        self.counters["events_published"] += 1
        if self._faulty:
            self._publish_with_faults(stream, payload)
        else:
            self._fanout(subs, payload)

    def has_subscribers(self, stream: str) -> bool:
        return stream in self._topics or stream_key(stream) in self._topics

    def subscribed_streams(self) -> frozenset[str]:
        """Canonical keys of every stream with at least one subscriber."""
        if self._subscribed is None:
            self._subscribed = frozenset(self._topics)
        return self._subscribed

    def on_subscriptions_changed(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback()` whenever `subscribed_streams()` changes (a stream gains its first
        subscriber or loses its last). Returns a function that removes the callback."""
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    def _changed(self) -> None:
        self._subscribed = None
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                log.exception("subscription listener failed")

    # ------------------------------------------------------------------ connection side

    @property
    def subscribers(self) -> tuple[Subscriber, ...]:
        """Open connections, oldest first."""
        return tuple(self._subs)

    def open(self, sub: Subscriber) -> None:
        sub._limit = self.queue_limit
        self._subs[sub] = None
        self.counters["connections_opened"] += 1

    def close(self, sub: Subscriber) -> None:
        """Detach a connection from every stream; idempotent. Counted as closed the first time."""
        if sub not in self._subs:
            return
        del self._subs[sub]
        for key in sub.streams:
            self._leave(key, sub)
        self.counters["connections_closed"] += 1

    def subscribe(self, sub: Subscriber, names: Iterable[str]) -> None:
        """Add streams (all or none); raises TooManyStreams past `max_streams` distinct streams."""
        wanted: dict[str, str] = {}
        for name in names:
            wanted[stream_key(name)] = name
        if len(sub.streams.keys() | wanted.keys()) > self.max_streams:
            raise TooManyStreams(self.max_streams)
        for key, name in wanted.items():
            if sub.streams.get(key) == name:
                continue
            sub.streams[key] = name
            topic = self._topics.get(key)
            created = topic is None
            if topic is None:
                topic = self._topics[key] = {}
            topic[sub] = combined_prefix(name)
            if created:
                self._changed()

    def unsubscribe(self, sub: Subscriber, names: Iterable[str]) -> None:
        """Remove streams; names not subscribed are ignored."""
        for name in names:
            key = stream_key(name)
            if sub.streams.pop(key, None) is not None:
                self._leave(key, sub)

    def set_combined(self, sub: Subscriber, combined: bool) -> None:
        sub.combined = combined

    def close_all(self, code: int, reason: str) -> int:
        """Ask every connection to close cleanly with `code`; the number asked."""
        subs = list(self._subs)
        for sub in subs:
            sub.close(code, reason)
        return len(subs)

    def shutdown(self) -> None:
        """Cancel the fault timers and forget held events (the app is stopping)."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for handle in self._stalls.values():
            handle.cancel()
        self._stalls.clear()
        self._stall_drop.clear()
        self._held.clear()
        self._update_faulty()

    def _leave(self, key: str, sub: Subscriber) -> None:
        topic = self._topics.get(key)
        if topic is None:
            return
        topic.pop(sub, None)
        if not topic:
            del self._topics[key]
            self._drops.pop(key, None)
            self._reorder_armed.discard(key)
            self._reorder_held.pop(key, None)
            self._update_faulty()
            self._changed()

    # ------------------------------------------------------------------ delivery

    def _fanout(self, subs: dict[Subscriber, bytes], payload: bytes) -> None:
        frames: dict[bytes, bytes] | None = None
        micro: bytes | None = None
        micro_frames: dict[bytes, bytes] | None = None
        slow: list[Subscriber] | None = None
        for sub, prefix in subs.items():
            if sub.micro:
                if micro is None:
                    micro = to_microseconds(payload)
                if sub.combined:
                    if micro_frames is None:
                        micro_frames = {}
                    frame = micro_frames.get(prefix)
                    if frame is None:
                        frame = micro_frames[prefix] = prefix + micro + b"}"
                else:
                    frame = micro
            elif sub.combined:
                if frames is None:
                    frames = {}
                frame = frames.get(prefix)
                if frame is None:
                    frame = frames[prefix] = prefix + payload + b"}"
            else:
                frame = payload
            if not sub.push(frame):
                if slow is None:
                    slow = []
                slow.append(sub)
        if slow is not None:
            for sub in slow:
                self._close_slow(sub)

    def _close_slow(self, sub: Subscriber) -> None:
        log.info("closing a slow consumer (%d frames queued)", sub.pending)
        self.counters["slow_consumer_closes"] += 1
        self.close(sub)
        sub.abort()

    def _emit(self, key: str, payload: bytes) -> None:
        """Deliver unless a stall holds the stream back."""
        if self._stalls and (None in self._stalls or key in self._stalls):
            self._held.append((key, payload))
            self.fault_counters["events_stalled"] += 1
            return
        subs = self._topics.get(key)
        if subs:
            self._fanout(subs, payload)

    def _publish_with_faults(self, key: str, payload: bytes) -> None:
        left = self._drops.get(key)
        if left is not None:
            if left <= 1:
                del self._drops[key]
                self._update_faulty()
            else:
                self._drops[key] = left - 1
            self.fault_counters["events_dropped"] += 1
            return
        if key in self._reorder_armed:
            first = self._reorder_held.pop(key, None)
            if first is None:
                self._reorder_held[key] = payload
                return
            self._reorder_armed.discard(key)
            self._update_faulty()
            self.fault_counters["events_reordered"] += 2
            self._emit(key, payload)
            self._emit(key, first)
            return
        self._emit(key, payload)

    def _update_faulty(self) -> None:
        self._faulty = bool(self._drops or self._reorder_armed or self._stalls)

    # ------------------------------------------------------------------ fault hooks (test-only)

    def disconnect_all(self) -> int:
        """Drop every connection abruptly (TCP closed, no close frame). Returns how many."""
        self.fault_counters["disconnect_all"] += 1
        return self._abort(list(self._subs))

    def disconnect(self, n: int) -> int:
        """Drop the `n` oldest connections abruptly (no close frame). Returns how many."""
        self.fault_counters["disconnect"] += 1
        return self._abort(list(self._subs)[: max(n, 0)])

    def disconnect_stream(self, stream: str) -> int:
        """Drop every connection subscribed to `stream` abruptly (no close frame). Returns how many."""
        self.fault_counters["disconnect"] += 1
        return self._abort(list(self._topics.get(stream_key(stream), ())))

    def _abort(self, subs: list[Subscriber]) -> int:
        for sub in subs:
            self.close(sub)
            sub.abort()
        self.fault_counters["connections_aborted"] += len(subs)
        return len(subs)

    def drop_next(self, stream: str, count: int = 1) -> None:
        """Swallow the next `count` events of `stream` for every subscriber (a gap in diff depth).

        Only events published while the stream has subscribers count; arming again adds up.
        """
        self.fault_counters["drop_next"] += 1
        if count <= 0:
            return
        key = stream_key(stream)
        self._drops[key] = self._drops.get(key, 0) + count
        self._update_faulty()

    def reorder_next(self, stream: str) -> None:
        """Deliver the next two events of `stream` swapped (the first is held until the second comes)."""
        self.fault_counters["reorder_next"] += 1
        self._reorder_armed.add(stream_key(stream))
        self._update_faulty()

    def stall(self, stream: str | None, seconds: float, *, drop: bool = False) -> None:
        """Hold back delivery of `stream` (None: every stream) for `seconds`.

        Events published meanwhile are kept, in order, and delivered when the stall ends
        (default) — or, with ``drop=True``, discarded then. Frames already queued for a connection
        before the call still go out. Stalling a stream that is already stalled restarts its timer.
        """
        self.fault_counters["stall"] += 1
        key = None if stream is None else stream_key(stream)
        old = self._stalls.pop(key, None)
        if old is not None:
            old.cancel()
        self._stalls[key] = asyncio.get_running_loop().call_later(seconds, self._end_stall, key)
        self._stall_drop[key] = drop
        self._update_faulty()

    def _end_stall(self, key: str | None) -> None:
        self._stalls.pop(key, None)
        drop = self._stall_drop.pop(key, False)
        self._update_faulty()
        held, self._held = self._held, []
        for event_key, payload in held:
            if None in self._stalls or event_key in self._stalls:
                self._held.append((event_key, payload))  # still held by another stall
            elif drop and (key is None or key == event_key):
                self.fault_counters["events_stall_dropped"] += 1
            else:
                subs = self._topics.get(event_key)
                if subs:
                    self._fanout(subs, payload)

    def stop_pings(self) -> None:
        """The server goes quiet on the control channel: it stops sending pings and stops answering
        the client's pings with pongs. Data keeps flowing. This exercises the *client's* keepalive
        watchdog (no ping for > 20 s, or no pong to its own ping); the server's own pong deadline is
        suspended meanwhile (pings already unanswered are forgiven). Undo with `resume_pings`."""
        self.fault_counters["stop_pings"] += 1
        self.pings_stopped = True

    def resume_pings(self) -> None:
        self.fault_counters["resume_pings"] += 1
        self.pings_stopped = False

    def ignore_pongs(self) -> None:
        """The server keeps pinging but disregards every pong, so its own pong deadline (1 min by
        default) closes each connection — what a client with a stuck read loop would see.
        Undo with `heed_pongs`."""
        self.fault_counters["ignore_pongs"] += 1
        self.pongs_ignored = True

    def heed_pongs(self) -> None:
        self.fault_counters["heed_pongs"] += 1
        self.pongs_ignored = False

    def server_shutdown(self, grace: float | None = None) -> int:
        """Send the serverShutdown event to every connection, then close them all (code 1001) after
        `grace` seconds (default `shutdown_grace`). Raw: ``{"e":"serverShutdown","E":<ms>}``;
        combined: ``{"stream":"!serverShutdown","data":{…}}``. The event is queued behind data
        already queued and is never refused. Returns how many connections were notified."""
        self.fault_counters["server_shutdown"] += 1
        body = orjson.dumps({"e": "serverShutdown", "E": self._now_ms()})
        micro_body = to_microseconds(body)
        prefix = combined_prefix(SERVER_SHUTDOWN_STREAM)
        subs = list(self._subs)
        for sub in subs:
            event = micro_body if sub.micro else body
            sub.push_reply(prefix + event + b"}" if sub.combined else event)
        self.fault_counters["shutdown_events_sent"] += len(subs)
        delay = self.shutdown_grace if grace is None else grace
        handle: asyncio.TimerHandle | None = None

        def close_them() -> None:
            if handle is not None:
                self._timers.discard(handle)
            for sub in subs:
                if sub in self._subs:
                    self.counters["shutdown_closes"] += 1
                    sub.close(CLOSE_GOING_AWAY, "Server shutdown")

        handle = asyncio.get_running_loop().call_later(delay, close_them)
        self._timers.add(handle)
        return len(subs)

    def reset_faults(self) -> None:
        """Disarm every fault: pending drops and reorders, stalls (held events are delivered now),
        stopped pings and ignored pongs. Counters are kept."""
        self.fault_counters["reset_faults"] += 1
        self._drops.clear()
        self._reorder_armed.clear()
        held_first = list(self._reorder_held.items())
        self._reorder_held.clear()
        for key in list(self._stalls):
            handle = self._stalls.pop(key)
            handle.cancel()
            self._stall_drop.pop(key, None)
        self._update_faulty()
        held, self._held = self._held, []
        for key, payload in [*held, *held_first]:
            subs = self._topics.get(key)
            if subs:
                self._fanout(subs, payload)
        self.pings_stopped = False
        self.pongs_ignored = False
