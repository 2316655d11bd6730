"""The market-stream client: pure planning rules (tables), then the pool against the real simulator.

The simulator app runs on an AppRunner on 127.0.0.1:0 with a few symbols; its StreamHub's fault
hooks break connections. Every wait polls a condition under a deadline; nothing sleeps to
synchronise.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from exchange_sim.app import HUB, create_app
from exchange_sim.config import SimConfig
from exchange_sim.hub import StreamHub, Subscriber
from provider.binance.stream_plan import (
    Backoff,
    Deduper,
    FrameKind,
    Pacer,
    assign_streams,
    backoff_delay,
    chunked,
    classify,
    pacing_interval,
    sequence_key,
    valid_stream_name,
    was_healthy,
)
from provider.binance.streams import StreamPool, StreamPoolConfig
from service_runtime.config import Address

WAIT = 8.0  # upper bound of every wait

BTC_TRADE = "btcusdt@trade"
BTC_DEPTH = "btcusdt@depth@100ms"
ETH_TRADE = "ethusdt@trade"


# =========================================================================== pure rules


@pytest.mark.parametrize(
    ("streams", "free", "capacity", "expected"),
    [
        ([], [], 3, []),
        (["a", "b"], [], 3, [["a", "b"]]),
        (["c", "a", "b", "d"], [], 3, [["a", "b", "c"], ["d"]]),
        (["a", "b", "c"], [1, 0, 2], 3, [["a"], [], ["b", "c"]]),
        (["a", "b", "c", "d"], [1], 2, [["a"], ["b", "c"], ["d"]]),
        (["a", "a", "b"], [5], 5, [["a", "b"]]),
        (["a"], [-1], 1, [[], ["a"]]),  # an over-full connection takes nothing
    ],
)
def test_assign_streams(streams: list[str], free: list[int], capacity: int, expected: list[list[str]]) -> None:
    assert assign_streams(streams, free, capacity) == expected


def test_assign_streams_never_exceeds_capacity() -> None:
    names = [f"s{i:04d}" for i in range(2500)]
    groups = assign_streams(names, [1000, 24], 1024)
    assert [len(g) for g in groups] == [1000, 24, 1024, 452]
    assert sorted(n for g in groups for n in g) == names


def test_chunked() -> None:
    assert chunked([], 2) == []
    assert chunked(["c", "a", "b", "a"], 2) == [("a", "b"), ("c",)]
    assert chunked(["x"], 200) == [("x",)]
    with pytest.raises(ValueError, match="size"):
        chunked(["x"], 0)


@pytest.mark.parametrize(
    ("name", "ok"),
    [("btcusdt@trade", True), ("btcusdt@kline_1m@+08:00", True), ("", False), ("a/b", False), ("a b", False)],
)
def test_valid_stream_name(name: str, ok: bool) -> None:
    assert valid_stream_name(name) is ok


def test_pacer_spaces_messages_under_the_limit() -> None:
    interval = pacing_interval(5.0)
    assert interval == pytest.approx(0.25)  # 4 per second: a pong and jitter still fit under 5
    pacer = Pacer(interval)
    assert pacer.reserve(10.0) == 10.0
    assert pacer.reserve(10.0) == 10.25
    assert pacer.reserve(10.1) == 10.5
    assert pacer.reserve(20.0) == 20.0  # idle time is not banked into a burst
    sends = [pacer.reserve(20.0) for _ in range(20)]
    # Binance's rule: no more than 5 in any one-second window, and we stay under it.
    for i in range(len(sends) - 4):
        assert sends[i + 4] - sends[i] >= 1.0
    with pytest.raises(ValueError, match="positive"):
        pacing_interval(0)


@pytest.mark.parametrize(
    ("attempt", "draw", "expected"),
    [
        (0, 0.0, 0.05),
        (0, 0.999999, 0.1),
        (1, 0.0, 0.1),
        (3, 0.5, 0.6),
        (8, 0.0, 12.8),
        (9, 0.0, 15.0),  # 25.6 capped at 30, lower half from 15
        (50, 0.999999, 30.0),
        (10_000, 0.0, 15.0),  # no overflow
    ],
)
def test_backoff_delay(attempt: int, draw: float, expected: float) -> None:
    assert backoff_delay(attempt, 0.1, 30.0, draw) == pytest.approx(expected, rel=1e-5)


def test_backoff_schedule_bounds_jitter_cap_reset() -> None:
    rng = random.Random(7)
    backoff = Backoff(0.1, 2.0)
    delays = [backoff.next_delay(rng.random()) for _ in range(12)]
    for attempt, delay in enumerate(delays):
        ceiling = min(2.0, 0.1 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 2.0
    assert len({round(d, 9) for d in delays[6:]}) > 1  # capped, yet jittered
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay(0.0) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="initial"):
        Backoff(1.0, 0.5)


@pytest.mark.parametrize(
    ("confirmed_at", "lost_at", "expected"),
    [(None, 100.0, False), (10.0, 39.9, False), (10.0, 40.0, True), (10.0, 1000.0, True)],
)
def test_was_healthy(confirmed_at: float | None, lost_at: float, expected: bool) -> None:
    assert was_healthy(confirmed_at, lost_at, 30.0) is expected


@pytest.mark.parametrize(
    ("doc", "kind"),
    [
        ({"stream": "btcusdt@trade", "data": {"e": "trade"}}, FrameKind.DATA),
        ({"stream": "!miniTicker@arr", "data": [{"e": "24hrMiniTicker"}]}, FrameKind.DATA),
        ({"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1}}, FrameKind.SHUTDOWN),
        ({"e": "serverShutdown", "E": 1}, FrameKind.SHUTDOWN),
        ({"result": None, "id": 1}, FrameKind.REPLY),
        ({"code": 2, "msg": "Invalid request", "id": None}, FrameKind.REPLY),
        ({"e": "trade", "t": 1}, FrameKind.OTHER),
        ([1, 2], FrameKind.OTHER),
        (None, FrameKind.OTHER),
    ],
)
def test_classify(doc: object, kind: FrameKind) -> None:
    assert classify(doc) is kind


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"e": "depthUpdate", "E": 5, "U": 157, "u": 160}, 160),
        ({"e": "trade", "E": 5, "t": 12345}, 12345),
        ({"e": "aggTrade", "E": 5, "a": 77, "f": 100, "l": 105}, 77),
        ({"u": 400900217, "s": "BNBUSDT", "b": "1"}, 400900217),  # bookTicker: no "e"
        ({"lastUpdateId": 160, "bids": [], "asks": []}, 160),  # partial depth
        ({"e": "kline", "E": 1672515782136, "k": {}}, 1672515782136),
        ({"e": "24hrTicker", "E": 9}, 9),
        ({"e": "trade", "t": "12"}, None),
        ({"e": "avgPrice"}, None),
        ([{"e": "24hrMiniTicker", "E": 1}], None),
    ],
)
def test_sequence_key(data: object, key: int | None) -> None:
    assert sequence_key(data) == key


def test_deduper_drops_the_overlap_then_stops_filtering() -> None:
    dedupe = Deduper({"t": 10, "d": 100})

    def trade(t: int) -> dict[str, Any]:
        return {"e": "trade", "t": t}

    assert [dedupe.admit("t", trade(t)) for t in (9, 10, 11, 12)] == [False, False, True, True]
    assert dedupe.admit("other", trade(1))  # not delivered by the old connection: everything passes
    assert not dedupe.done
    assert not dedupe.admit("d", {"e": "depthUpdate", "U": 95, "u": 100})
    assert dedupe.admit("d", {"e": "depthUpdate", "U": 101, "u": 104})
    assert dedupe.done
    assert dedupe.admit("d", {"e": "depthUpdate", "U": 90, "u": 90})  # done: no more filtering


# =========================================================================== against the simulator


@dataclass
class Recorder:
    """A StreamHandler that records everything, in order."""

    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    changes: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    live: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)  # contract violations, checked after each test

    def on_message(self, stream: str, data: dict[str, Any]) -> None:
        if stream not in self.live:
            self.errors.append(f"event for {stream}, which is not up")
        self.events.setdefault(stream, []).append(data)

    def on_streams_down(self, streams: frozenset[str]) -> None:
        self.changes.append(("down", streams))
        self.live -= streams

    def on_streams_up(self, streams: frozenset[str]) -> None:
        if streams & self.live:
            self.errors.append(f"reported up twice: {sorted(streams & self.live)}")
        self.changes.append(("up", streams))
        self.live |= streams

    def count(self, stream: str) -> int:
        return len(self.events.get(stream, ()))

    def downs(self) -> list[frozenset[str]]:
        return [s for kind, s in self.changes if kind == "down"]


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Sim:
    hub: StreamHub
    url: str
    session: aiohttp.ClientSession
    pools: list[StreamPool] = field(default_factory=list)
    recorders: list[Recorder] = field(default_factory=list)

    async def pool(self, config: StreamPoolConfig, streams: Iterable[str] = ()) -> tuple[StreamPool, Recorder]:
        recorder = Recorder()
        pool = StreamPool(self.url, self.session, recorder, config, rng=random.Random(1))
        self.pools.append(pool)
        self.recorders.append(recorder)
        pool.subscribe(streams)
        await pool.start()
        return pool, recorder


def our_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("stream-")]


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    app = create_app(SimConfig(addr=Address("127.0.0.1", 0), symbols=("BTCUSDT", "ETHUSDT", "BNBUSDT"), seed=3))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    session = aiohttp.ClientSession()
    state = Sim(app[HUB], f"http://127.0.0.1:{port}", session)
    try:
        yield state
    finally:
        for pool in state.pools:
            await asyncio.wait_for(pool.close(), WAIT)
        assert our_tasks() == []
        assert [r.errors for r in state.recorders if r.errors] == []
        await session.close()
        await asyncio.wait_for(runner.cleanup(), 15.0)


FAST = StreamPoolConfig(backoff_initial_s=0.05, backoff_max_s=0.5, connect_timeout_s=3.0)


def streams_up(recorder: Recorder, streams: Iterable[str]) -> Callable[[], bool]:
    wanted = set(streams)
    return lambda: wanted <= recorder.live


def flowing(recorder: Recorder, stream: str, more: int) -> Callable[[], bool]:
    """`more` events of `stream` beyond what it has now."""
    target = recorder.count(stream) + more
    return lambda: recorder.count(stream) >= target


async def test_subscribe_and_unsubscribe_at_runtime(sim: Sim) -> None:
    pool, rec = await sim.pool(FAST, [BTC_TRADE])
    await until(streams_up(rec, [BTC_TRADE]), "trade up")
    assert pool.live(BTC_TRADE) and not pool.live(BTC_DEPTH)
    await until(flowing(rec, BTC_TRADE, 3), "trades")
    trade = rec.events[BTC_TRADE][0]
    assert trade["e"] == "trade" and trade["s"] == "BTCUSDT"

    pool.subscribe([BTC_DEPTH, BTC_TRADE])  # runtime add; the trade stream is already there
    pool.subscribe([BTC_DEPTH])  # idempotent
    await until(streams_up(rec, [BTC_DEPTH]), "depth up")
    await until(flowing(rec, BTC_DEPTH, 3), "depth events")
    assert pool.subscribed == {BTC_TRADE, BTC_DEPTH}
    assert [kind for kind, _ in rec.changes] == ["up", "up"]
    stats = pool.stats()
    assert stats.connections == 1 and stats.per_connection_streams == (2,)
    assert stats.messages > 0 and stats.bytes > stats.messages and stats.last_message_age_s is not None

    pool.unsubscribe([BTC_DEPTH])
    pool.unsubscribe([BTC_DEPTH, "never@subscribed"])  # idempotent
    depth_seen = rec.count(BTC_DEPTH)
    assert not pool.live(BTC_DEPTH) and pool.subscribed == {BTC_TRADE}
    await until(lambda: not sim.hub.has_subscribers(BTC_DEPTH), "server-side unsubscribe")
    await until(flowing(rec, BTC_TRADE, 3), "more trades")
    assert rec.count(BTC_DEPTH) == depth_seen  # nothing delivered after unsubscribe()
    assert rec.downs() == []  # explicit unsubscribes are not losses

    with pytest.raises(ValueError, match="invalid stream"):
        pool.subscribe(["btcusdt@trade/ethusdt@trade"])


async def test_more_streams_than_one_connection_carries(sim: Sim) -> None:
    streams = [f"{s}@{kind}" for s in ("btcusdt", "ethusdt") for kind in ("trade", "depth@100ms", "bookticker")]
    streams.append("bnbusdt@trade")
    pool, rec = await sim.pool(StreamPoolConfig(max_streams_per_connection=3, backoff_initial_s=0.05), streams)
    await until(streams_up(rec, streams), "every stream up")
    assert pool.stats().connections == 3
    assert sorted(pool.stats().per_connection_streams) == [1, 3, 3]
    assert sorted(len(sub.streams) for sub in sim.hub.subscribers) == [1, 3, 3]
    await until(lambda: all(rec.count(s) > 0 for s in streams if "depth" in s), "depth from two connections")

    # A freed place is reused before a new connection is opened.
    pool.unsubscribe(["btcusdt@trade"])
    pool.subscribe(["bnbusdt@depth@100ms"])
    await until(streams_up(rec, ["bnbusdt@depth@100ms"]), "reused place")
    assert pool.stats().connections == 3

    pool.unsubscribe(pool.subscribed)
    await until(lambda: not sim.hub.subscribers, "every connection closed")
    assert pool.stats().connections == 0 and rec.downs() == []


async def test_control_messages_are_paced(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    seen: list[float] = []
    subscribe = sim.hub.subscribe

    def spy(sub: Subscriber, names: Iterable[str]) -> None:
        seen.append(loop.time())  # when the server processes each SUBSCRIBE
        subscribe(sub, names)

    monkeypatch.setattr(sim.hub, "subscribe", spy)
    streams = [f"{s}@{kind}" for s in ("btcusdt", "ethusdt") for kind in ("trade", "depth@100ms", "aggtrade", "ticker")]
    config = StreamPoolConfig(max_streams_per_message=1, max_messages_per_second=5.0)
    pool, rec = await sim.pool(config, streams)
    await until(streams_up(rec, streams), "every stream up", timeout=10.0)
    assert len(seen) == len(streams)  # one message per stream, as configured
    assert sim.hub.counters["rate_limit_closes"] == 0
    # The server's rule is at most 5 in any second; we keep to 4 (0.25 s apart).
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert min(gaps) > 0.2
    for i in range(len(seen) - 4):
        assert seen[i + 4] - seen[i] >= 0.95
    assert pool.stats().control_messages >= len(streams)


async def test_disconnect_all_reports_down_then_recovers(sim: Sim) -> None:
    streams = [BTC_TRADE, BTC_DEPTH, ETH_TRADE]
    pool, rec = await sim.pool(FAST, streams)
    await until(streams_up(rec, streams), "up")
    await until(flowing(rec, BTC_DEPTH, 2), "depth")

    assert sim.hub.disconnect_all() == 1
    await until(lambda: rec.downs() == [frozenset(streams)], "down reported")
    assert not any(pool.live(s) for s in streams)
    await until(streams_up(rec, streams), "up again")
    await until(flowing(rec, BTC_DEPTH, 3), "depth after reconnect")
    assert [kind for kind, _ in rec.changes] == ["up", "down", "up"]
    assert pool.stats().reconnects == 1
    assert len(sim.hub.subscribers) == 1


async def test_server_shutdown_event_reconnects_at_once(sim: Sim) -> None:
    pool, rec = await sim.pool(FAST, [BTC_TRADE])
    await until(streams_up(rec, [BTC_TRADE]), "up")
    sim.hub.server_shutdown(grace=30.0)  # we must not wait for the server to close us
    await until(lambda: rec.downs() == [frozenset({BTC_TRADE})], "down on serverShutdown")
    await until(streams_up(rec, [BTC_TRADE]), "up again")
    await until(flowing(rec, BTC_TRADE, 2), "trades again")
    assert sim.hub.counters["shutdown_closes"] == 0
    assert pool.stats().reconnects == 1


def reconnect_attempts(pool: StreamPool) -> int:
    """How far the slot's reconnect backoff has escalated (its attempts since the last reset)."""
    return pool._slots[0].backoff.attempt  # the policy under test has no public face


async def drop_and_recover(sim: Sim, rec: Recorder, streams: list[str], losses: int) -> None:
    sim.hub.disconnect_all()
    await until(lambda: len(rec.downs()) == losses, "down reported")
    await until(streams_up(rec, streams), "up again")
    await until(flowing(rec, streams[0], 2), "events again")


async def test_losing_a_connection_that_served_resets_the_backoff(sim: Sim) -> None:
    """A venue that keeps dropping connections which worked (as in a burst of disconnects) is
    reconnected to promptly each time; the backoff is for connections that fail or die at once."""
    streams = [BTC_TRADE]
    proved = StreamPoolConfig(backoff_initial_s=0.05, backoff_max_s=5.0, healthy_after_s=0.0)
    pool, rec = await sim.pool(proved, streams)
    await until(streams_up(rec, streams), "up")
    for losses in range(1, 5):
        await drop_and_recover(sim, rec, streams, losses)
        assert reconnect_attempts(pool) == 1  # reset by the loss, then one delay drawn


async def test_connections_that_die_young_back_off_further_each_time(sim: Sim) -> None:
    streams = [BTC_TRADE]
    young = StreamPoolConfig(backoff_initial_s=0.05, backoff_max_s=0.2, healthy_after_s=60.0)
    pool, rec = await sim.pool(young, streams)
    await until(streams_up(rec, streams), "up")
    for losses in range(1, 4):
        await drop_and_recover(sim, rec, streams, losses)
        assert reconnect_attempts(pool) == losses

    # A serverShutdown is the venue moving us, not a failure: it resets the backoff however young.
    sim.hub.server_shutdown(grace=30.0)
    await until(lambda: len(rec.downs()) == 4, "down on serverShutdown")
    await until(streams_up(rec, streams), "up after serverShutdown")
    assert reconnect_attempts(pool) == 1


async def test_watchdog_trips_on_silence_and_keeps_quiet_connections(sim: Sim) -> None:
    config = StreamPoolConfig(silence_timeout_s=0.4, backoff_initial_s=0.05, backoff_max_s=0.3)
    pool, rec = await sim.pool(config, [BTC_TRADE])
    await until(streams_up(rec, [BTC_TRADE]), "up")

    # No data, but the server answers our pings: quiet is not dead.
    sim.hub.stall(None, 30.0, drop=True)
    sent = pool.stats().control_messages
    await until(lambda: pool.stats().control_messages >= sent + 3, "keepalive pings")
    assert pool.stats().watchdog_trips == 0 and rec.downs() == []

    # No data and no pongs: the watchdog declares the connection dead and reconnects.
    sim.hub.stop_pings()
    await until(lambda: pool.stats().watchdog_trips >= 1, "watchdog trip")
    await until(lambda: len(rec.downs()) >= 1, "down reported")
    sim.hub.reset_faults()
    await until(streams_up(rec, [BTC_TRADE]), "up again")
    await until(flowing(rec, BTC_TRADE, 2), "trades again")
    assert pool.stats().reconnects >= 1


async def test_rejected_subscribe_is_reported_and_retried(sim: Sim) -> None:
    sim.hub.max_streams = 2  # the server refuses a third stream on one connection
    config = StreamPoolConfig(max_streams_per_connection=3, backoff_initial_s=0.05, backoff_max_s=0.3)
    streams = [BTC_TRADE, BTC_DEPTH, ETH_TRADE]
    pool, rec = await sim.pool(config, streams)
    await until(lambda: rec.downs() != [], "refusal reported")
    assert rec.downs()[0] == frozenset(streams) and not rec.live
    sim.hub.max_streams = 1024
    await until(streams_up(rec, streams), "up after the retry")
    await until(flowing(rec, BTC_TRADE, 2), "trades")
    assert pool.stats().reconnects == 0


async def test_rollover_switches_without_gap_or_duplicate(sim: Sim) -> None:
    streams = [BTC_TRADE, BTC_DEPTH, ETH_TRADE, "btcusdt@bookticker"]
    # A slow control rate delays the barrier on the old connection by about a second after the
    # replacement subscribed: both connections carry the same events meanwhile, so the switch
    # has an overlap to drop.
    config = StreamPoolConfig(max_connection_age_s=0.3, max_messages_per_second=1.0, backoff_initial_s=0.05)
    pool, rec = await sim.pool(config, streams)
    await until(streams_up(rec, streams), "up")
    await until(lambda: pool.stats().rollovers >= 3, "three rollovers", timeout=15.0)
    await until(flowing(rec, BTC_DEPTH, 3), "depth after the last switch")

    assert rec.downs() == [] and [kind for kind, _ in rec.changes] == ["up"]
    stats = pool.stats()
    assert stats.reconnects == 0
    assert stats.duplicates_dropped > 0  # the overlap was there, and filtered
    assert 1 <= stats.connections <= 2 and len(sim.hub.subscribers) <= 2  # old ones are closed
    for stream in (BTC_TRADE, ETH_TRADE):
        ids = [e["t"] for e in rec.events[stream]]
        assert ids == list(range(ids[0], ids[0] + len(ids))), f"{stream}: gap or duplicate"
    depth = rec.events[BTC_DEPTH]
    assert len(depth) > 10
    for before, after in itertools.pairwise(depth):
        assert after["U"] == before["u"] + 1, "depth: gap or duplicate across a switch"
    tickers = [e["u"] for e in rec.events["btcusdt@bookticker"]]
    assert tickers == sorted(set(tickers)), "bookTicker: duplicate or out of order"


async def test_close_leaves_no_task_and_no_socket(sim: Sim) -> None:
    pool, rec = await sim.pool(StreamPoolConfig(max_streams_per_connection=1), [BTC_TRADE, ETH_TRADE])
    await until(streams_up(rec, [BTC_TRADE, ETH_TRADE]), "up")
    assert len(our_tasks()) == 4  # a controller and a reader per connection
    await asyncio.wait_for(pool.close(), WAIT)
    assert our_tasks() == []
    await until(lambda: not sim.hub.subscribers, "server sees the sockets closed")
    await pool.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        pool.subscribe([BTC_TRADE])
