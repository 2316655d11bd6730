"""Pure planning rules of the market-stream client (`provider.binance.streams`).

No sockets, no asyncio, no clocks: times and random draws are passed in. The connection code obeys:

* `assign_streams` — which connection carries a new stream (first fit, never more than the
  per-connection limit, §7.1: 1024);
* `chunked` — how a SUBSCRIBE/UNSUBSCRIBE is split into messages;
* `Pacer` — when the next control message may go out (§7.1: at most 5 incoming messages per
  second per connection, pings and pongs included, so we stay under it);
* `Backoff` — capped, jittered exponential reconnect delays;
* `classify` / `sequence_key` / `Deduper` — what a frame is, and which events of a replacement
  connection were already delivered by the connection it replaces.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Any, Final

SERVER_SHUTDOWN_STREAM: Final = "!serverShutdown"

# Fraction of the server's message limit we use: the server also counts our pong replies to its
# pings, and loop jitter can bunch two sends slightly closer than planned.
PACING_MARGIN: Final = 0.8


# --------------------------------------------------------------------------- assignment


def assign_streams(streams: Iterable[str], free: Sequence[int], capacity: int) -> list[list[str]]:
    """Spread `streams` over connections: entry i < len(free) is what connection i (which has
    `free[i]` slots left) takes; entries past that are new connections of at most `capacity`.

    First fit in connection order, streams in sorted order, so the answer is deterministic.
    """
    if capacity < 1:
        raise ValueError("capacity must be at least 1")
    groups: list[list[str]] = [[] for _ in free]
    room = [max(n, 0) for n in free]
    index = 0
    for stream in sorted(set(streams)):
        while index < len(room) and room[index] == 0:
            index += 1
        if index == len(room):
            groups.append([])
            room.append(capacity)
        groups[index].append(stream)
        room[index] -= 1
    return groups


def chunked(streams: Iterable[str], size: int) -> list[tuple[str, ...]]:
    """`streams` in sorted order, cut into messages of at most `size` names."""
    if size < 1:
        raise ValueError("size must be at least 1")
    ordered = sorted(set(streams))
    return [tuple(ordered[i : i + size]) for i in range(0, len(ordered), size)]


def valid_stream_name(name: str) -> bool:
    """What the server accepts as one name in SUBSCRIBE params (and in a combined URL)."""
    return bool(name) and "/" not in name and not any(ch.isspace() for ch in name)


# --------------------------------------------------------------------------- pacing


def pacing_interval(max_messages_per_second: float) -> float:
    """Seconds between two control messages on one connection, a margin under the server's limit."""
    if max_messages_per_second <= 0:
        raise ValueError("max_messages_per_second must be positive")
    return 1.0 / (max_messages_per_second * PACING_MARGIN)


class Pacer:
    """Even spacing of outgoing control messages on one connection.

    Plain spacing rather than a token bucket with a burst: a burst of b at rate r puts b + r
    messages in some one-second window, and the server's window is strict.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: float | None = None

    def reserve(self, now: float) -> float:
        """Book the next send: the time (≥ `now`) at which it may go out."""
        at = now if self._last is None else max(now, self._last + self.interval)
        self._last = at
        return at


# --------------------------------------------------------------------------- backoff


def backoff_delay(attempt: int, initial: float, maximum: float, draw: float) -> float:
    """The delay before reconnect attempt `attempt` (0-based), given a uniform `draw` in [0, 1).

    The ceiling doubles from `initial` and is capped at `maximum`; the delay is drawn from the
    upper half of it ("equal jitter"), so connections that fell together do not retry together
    yet never retry much sooner than planned.
    """
    ceiling = min(maximum, initial * 2.0 ** min(attempt, 64))
    return ceiling * (0.5 + 0.5 * draw)


class Backoff:
    """Reconnect attempts of one connection slot; `reset` after a connection proved healthy."""

    def __init__(self, initial: float, maximum: float) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("need 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0

    def next_delay(self, draw: float) -> float:
        delay = backoff_delay(self.attempt, self.initial, self.maximum, draw)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


def was_healthy(confirmed_at: float | None, lost_at: float, healthy_after: float) -> bool:
    """A connection counts as healthy (its loss resets the backoff) once it carried confirmed
    streams for `healthy_after` seconds."""
    return confirmed_at is not None and lost_at - confirmed_at >= healthy_after


# --------------------------------------------------------------------------- frames


class FrameKind(enum.Enum):
    DATA = "data"  # {"stream": …, "data": …}
    SHUTDOWN = "shutdown"  # the serverShutdown event (§7.1)
    REPLY = "reply"  # an answer to a control message: has "id" and "result" or "code" (§7.2)
    OTHER = "other"


def classify(doc: object) -> FrameKind:
    """What a parsed combined-stream frame is."""
    if not isinstance(doc, dict):
        return FrameKind.OTHER
    stream = doc.get("stream")
    if isinstance(stream, str) and "data" in doc:
        return FrameKind.SHUTDOWN if stream == SERVER_SHUTDOWN_STREAM else FrameKind.DATA
    if "id" in doc and ("result" in doc or "code" in doc):
        return FrameKind.REPLY
    if doc.get("e") == "serverShutdown":  # a raw-framed notice, should the server send one
        return FrameKind.SHUTDOWN
    return FrameKind.OTHER


# Per event type, the field that increases with every event of one stream (§7.3).
_KEY_BY_EVENT: Final = {"depthUpdate": "u", "trade": "t", "aggTrade": "a"}


def sequence_key(data: object) -> int | None:
    """The monotonic key of one event of a stream, or None when it has none.

    depthUpdate ``u``, trade ``t``, aggTrade ``a``; bookTicker (no ``e``) ``u``; partial depth
    (no ``e``) ``lastUpdateId``; every other event (kline, tickers, avgPrice …) ``E``.
    """
    if not isinstance(data, dict):
        return None
    event = data.get("e")
    if event is None:
        field = "u" if "u" in data else "lastUpdateId"
    else:
        field = _KEY_BY_EVENT.get(event, "E") if isinstance(event, str) else "E"
    value = data.get(field)
    return value if type(value) is int else None


class Deduper:
    """Drops the events of a replacement connection that the old one already delivered.

    Built at the switch from the last key delivered per stream. Per stream, events with a key at
    or below it are duplicates; the first event past it ends the filtering of that stream (events
    of one stream arrive in order on one connection).
    """

    def __init__(self, delivered: dict[str, int]) -> None:
        self._last = dict(delivered)

    @property
    def done(self) -> bool:
        return not self._last

    def admit(self, stream: str, data: Any) -> bool:
        last = self._last.get(stream)
        if last is None:
            return True
        key = sequence_key(data)
        if key is not None and key <= last:
            return False
        del self._last[stream]  # past the overlap (or unkeyed: cannot tell, deliver)
        return True
