"""The WebSocket fan-out core without a network: one upstream per key shared by its clients, each
event encoded once, bounded queues, slow clients lagged (depth) or closed (events), upstream
failures turned into resync/gap notices and reconnects; plus the thin WebSocket shell over a
local aiohttp server with a fake upstream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from decimal import Decimal

import grpc
import orjson
import pytest
from aiohttp import ClientWSTimeout, WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import market_data_pb2 as md

from gateway_http import streams
from gateway_http.errors import errors_middleware
from gateway_http.metrics import METRICS, Metrics
from gateway_http.openapi import API, Api
from gateway_http.streams import (
    SHUTDOWN,
    SLOW_CONSUMER,
    STREAM_HUB,
    Backoff,
    Close,
    CloseCode,
    DepthFanOut,
    DepthSpeed,
    EventFanOut,
    StreamChannel,
    StreamHub,
    StreamKey,
    Subscriber,
    UpstreamMessage,
    add_stream_routes,
    close_streams,
    trade_frames,
)

DEPTH = StreamKey(StreamChannel.DEPTH, "BTCUSDT", DepthSpeed.MS_100)
TRADES = StreamKey(StreamChannel.TRADES, "BTCUSDT")
FAST_BACKOFF = Backoff(initial_s=0.01, maximum_s=0.02, attempts=2)
TIMEOUT = 3.0
WS_TIMEOUT = ClientWSTimeout(ws_receive=TIMEOUT, ws_close=TIMEOUT)


def lv(price: str, qty: str) -> c.PriceLevel:
    return c.PriceLevel(price=price, quantity=qty)


def snapshot(
    last_id: int,
    bids: list[c.PriceLevel],
    asks: list[c.PriceLevel],
    reason: int = md.SNAPSHOT_REASON_INITIAL,
    *,
    bid_floor: str = "",
    ask_ceiling: str = "",
) -> md.StreamDepthResponse:
    return md.StreamDepthResponse(
        symbol="BTCUSDT",
        snapshot=md.DepthSnapshot(
            reason=reason,  # type: ignore[arg-type]  # an enum value
            bids=bids,
            asks=asks,
            freshness=c.Freshness(last_update_id=last_id, event_time_ms=1000 + last_id, in_sync=True),
            bid_floor=bid_floor,
            ask_ceiling=ask_ceiling,
        ),
    )


def void() -> md.StreamDepthResponse:
    """The provider's "discard your copy": an empty RESYNC snapshot, not in sync."""
    return md.StreamDepthResponse(
        symbol="BTCUSDT",
        snapshot=md.DepthSnapshot(reason=md.SNAPSHOT_REASON_RESYNC, freshness=c.Freshness(in_sync=False)),
    )


def diff(
    first: int, last: int, bids: Sequence[c.PriceLevel] = (), asks: Sequence[c.PriceLevel] = ()
) -> md.StreamDepthResponse:
    return md.StreamDepthResponse(
        symbol="BTCUSDT",
        diff=md.DepthDiff(first_update_id=first, last_update_id=last, event_time_ms=1000 + last, bids=bids, asks=asks),
    )


def trades(*ids: int) -> md.StreamTradesResponse:
    return md.StreamTradesResponse(
        trades=[md.Trade(symbol="BTCUSDT", id=i, price="100.5", quantity="0.1", time_ms=1000 + i) for i in ids]
    )


class ClientBook:
    """What a WebSocket depth client keeps; asserts the protocol as it goes."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, str] = {}
        self.asks: dict[Decimal, str] = {}
        self.last_id = 0
        self.valid = False
        self.kinds: list[str] = []

    def on(self, frame: str) -> None:
        message = orjson.loads(frame)
        self.kinds.append(message["type"] if message["type"] != "snapshot" else f"snapshot:{message['reason']}")
        if message["type"] == "snapshot":
            self.bids = {Decimal(p): q for p, q in message["bids"]}
            self.asks = {Decimal(p): q for p, q in message["asks"]}
            self.last_id = message["lastUpdateId"]
            self.valid = True
        elif message["type"] == "diff":
            assert self.valid, "a diff while the copy is void"
            assert message["U"] == self.last_id + 1, f"diff {message['U']} after {self.last_id}"
            for side, levels in ((self.bids, message["b"]), (self.asks, message["a"])):
                for price, qty in levels:
                    if Decimal(qty) == 0:
                        side.pop(Decimal(price), None)
                    else:
                        side[Decimal(price)] = qty
            self.last_id = message["u"]
        elif message["type"] == "resync":
            self.valid = False

    def drain(self, sub: Subscriber) -> None:
        for frame in sub.queued():
            self.on(frame)
        sub.replace([])


# --- pure fan-out -------------------------------------------------------------------------------


def test_a_queue_is_bounded_and_refuses_when_full() -> None:
    sub = Subscriber(TRADES, capacity=3)
    assert [sub.offer(str(i)) for i in range(5)] == [True, True, True, False, False]
    assert sub.queued() == ["0", "1", "2"]
    sub.close(SLOW_CONSUMER)
    assert sub.queued() == [] and sub.offer("late")  # a closed client drops frames quietly
    with pytest.raises(ValueError, match="at least 2 frames"):
        Subscriber(TRADES, capacity=1)


def test_each_event_is_encoded_once_and_the_same_text_goes_to_every_client() -> None:
    fanout = EventFanOut(TRADES, trade_frames)
    subs = [Subscriber(TRADES, capacity=8) for _ in range(3)]
    for sub in subs:
        fanout.join(sub)
    fanout.on_message(trades(1, 2))
    first, second, third = (sub.queued() for sub in subs)
    assert len(first) == 2
    assert all(a is b is c_ for a, b, c_ in zip(first, second, third, strict=True))  # one str object per event
    assert orjson.loads(first[0]) == {
        "type": "trade",
        "e": "trade",
        "E": 1001,
        "s": "BTCUSDT",
        "t": 1,
        "p": "100.5",
        "q": "0.1",
        "T": 1001,
        "m": False,
    }


def test_a_gap_from_the_provider_reaches_every_client_in_its_place() -> None:
    fanout = EventFanOut(TRADES, trade_frames)
    sub = Subscriber(TRADES, capacity=8)
    fanout.join(sub)
    fanout.on_message(trades(1))
    skipped = md.StreamGap(
        symbol="BTCUSDT", reason="trade id 2 did not arrive", first_missing_trade_id=2, last_missing_trade_id=2
    )
    fanout.on_message(md.StreamTradesResponse(gaps=[skipped]))
    fanout.on_message(trades(3))
    fanout.on_message(md.StreamTradesResponse(gaps=[md.StreamGap(symbol="BTCUSDT", reason="interrupted")]))
    frames = [orjson.loads(frame) for frame in sub.queued()]
    assert [f.get("t") for f in frames] == [1, None, 3, None]
    assert frames[1] == {
        "type": "gap",
        "s": "BTCUSDT",
        "reason": "trade id 2 did not arrive",
        "firstId": 2,
        "lastId": 2,
    }
    assert frames[3] == {"type": "gap", "s": "BTCUSDT", "reason": "interrupted"}  # no ids known


def test_a_slow_trade_client_is_closed_and_the_fast_one_is_unaffected() -> None:
    fanout = EventFanOut(TRADES, trade_frames)
    fast, slow = Subscriber(TRADES, capacity=4), Subscriber(TRADES, capacity=4)
    fanout.join(fast)
    fanout.join(slow)
    received: list[int] = []
    for trade_id in range(1, 11):
        fanout.on_message(trades(trade_id))
        received += [orjson.loads(frame)["t"] for frame in fast.queued()]
        fast.replace([])
    assert received == list(range(1, 11))
    assert slow.closed == SLOW_CONSUMER and slow.closed.code == CloseCode.POLICY
    assert fast.closed is None and fanout.slow_closed == 1


def test_depth_clients_get_a_snapshot_then_continuous_diffs() -> None:
    fanout = DepthFanOut(DEPTH)
    early = Subscriber(DEPTH, capacity=16, limit=2)
    fanout.join(early)
    assert early.queued() == []  # nothing to send before the upstream's snapshot
    fanout.on_message(snapshot(10, [lv("100", "1"), lv("99", "2"), lv("98", "3")], [lv("101", "1")]))
    fanout.on_message(diff(11, 12, bids=[lv("100", "0"), lv("97.5", "4")]))
    book = ClientBook()
    book.drain(early)
    assert book.kinds == ["snapshot:initial", "diff"]
    assert book.last_id == 12
    # Its snapshot had 2 levels; diffs carry every change (as Binance's do).
    assert book.bids == {Decimal("99"): "2", Decimal("97.5"): "4"}
    late = Subscriber(DEPTH, capacity=16, limit=5)
    fanout.join(late)
    first = orjson.loads(late.queued()[0])
    assert first["reason"] == "initial" and first["lastUpdateId"] == 12 and first["E"] == 1012
    assert first["bids"] == [["99", "2"], ["98", "3"], ["97.5", "4"]] and first["asks"] == [["101", "1"]]


def test_a_slow_depth_client_gets_lagged_and_an_exact_snapshot_while_a_fast_one_continues() -> None:
    fanout = DepthFanOut(DEPTH)
    fast, slow = Subscriber(DEPTH, capacity=4, limit=50), Subscriber(DEPTH, capacity=4, limit=50)
    fanout.join(fast)
    fanout.join(slow)
    fanout.on_message(snapshot(100, [lv("10", "1")], [lv("11", "1")]))
    fast_book, slow_book = ClientBook(), ClientBook()
    fast_book.drain(fast)
    update_id = 100
    for step in range(1, 12):
        fanout.on_message(diff(update_id + 1, update_id + 2, bids=[lv(f"9.{step:02d}", str(step))]))
        update_id += 2
        fast_book.drain(fast)  # the fast client keeps up; the slow one reads nothing
    assert fast_book.kinds == ["snapshot:initial"] + ["diff"] * 11
    assert slow.lags >= 1 and slow.closed is None
    slow_book.drain(slow)
    assert "lagged" in slow_book.kinds
    lagged_at = slow_book.kinds.index("lagged")
    assert slow_book.kinds[lagged_at + 1] == "snapshot:lagged"
    # The snapshot it got reflects an exact id, and the diffs after it continue from there (checked in
    # ClientBook), so both clients end with the same book at the same id.
    assert slow_book.last_id == fast_book.last_id == update_id
    assert slow_book.bids == fast_book.bids and slow_book.asks == fast_book.asks
    assert len(slow.queued()) <= slow.capacity


def test_a_void_from_the_provider_is_a_resync_then_a_resync_snapshot() -> None:
    fanout = DepthFanOut(DEPTH)
    sub = Subscriber(DEPTH, capacity=8, limit=10)
    fanout.join(sub)
    fanout.on_message(snapshot(5, [lv("10", "1")], [lv("11", "1")]))
    fanout.on_message(void())
    fanout.on_message(diff(6, 6))  # none should come while void; ignored if it does
    fanout.on_message(snapshot(40, [lv("10", "2")], [lv("12", "1")], reason=md.SNAPSHOT_REASON_RESYNC))
    fanout.on_message(diff(41, 41, asks=[lv("12", "0")]))
    book = ClientBook()
    book.drain(sub)
    # The resync snapshot supersedes anything still queued from before.
    assert book.kinds == ["snapshot:resync", "diff"]
    assert book.last_id == 41 and book.asks == {} and book.bids == {Decimal("10"): "2"}

    queued_resync = Subscriber(DEPTH, capacity=8, limit=10)
    fanout.join(queued_resync)
    fanout.on_message(void())
    assert [orjson.loads(f)["type"] for f in queued_resync.queued()] == ["snapshot", "resync"]


def test_the_snapshots_edges_bound_the_copy_so_it_never_grows_holes() -> None:
    fanout = DepthFanOut(DEPTH)
    sub = Subscriber(DEPTH, capacity=8, limit=2)
    fanout.join(sub)
    # The provider knows bids down to 9 only, however few levels it sent; asks are complete.
    fanout.on_message(snapshot(1, [lv("10", "1"), lv("9", "1")], [lv("11", "1")], bid_floor="9"))
    fanout.on_message(diff(2, 2, bids=[lv("8", "5"), lv("10", "0")], asks=[lv("15", "1")]))
    # Bid 8 lies beyond what is known (levels between may exist): not kept.
    assert fanout.book.bids() == [("9", "1")]
    assert fanout.book.asks() == [("11", "1"), ("15", "1")]


def test_a_refresh_moves_the_copys_edges_without_disturbing_its_clients() -> None:
    fanout = DepthFanOut(DEPTH)
    sub = Subscriber(DEPTH, capacity=8, limit=5)
    fanout.join(sub)
    fanout.on_message(snapshot(1, [lv("10", "1"), lv("9", "1")], [lv("11", "1")], bid_floor="9"))
    fanout.on_message(diff(2, 2, bids=[lv("10", "2")]))
    before = sub.queued()
    # An audit gave the provider depth down to 7, at the id the clients are at: only the copy changes.
    refresh = snapshot(2, [lv("10", "2"), lv("9", "1"), lv("7", "4")], [lv("11", "1")], md.SNAPSHOT_REASON_REFRESH)
    refresh.snapshot.bid_floor = "7"
    fanout.on_message(refresh)
    assert sub.queued() == before
    fanout.on_message(diff(3, 3, bids=[lv("8", "3")]))
    assert fanout.book.bids() == [("10", "2"), ("9", "1"), ("8", "3"), ("7", "4")]
    late = Subscriber(DEPTH, capacity=8, limit=5)
    fanout.join(late)
    first = orjson.loads(late.queued()[0])
    assert first["lastUpdateId"] == 3 and [p for p, _ in first["bids"]] == ["10", "9", "8", "7"]

    # A refresh at another id than the copy's cannot continue the clients' streams: they restart.
    fanout.on_message(snapshot(9, [lv("10", "1")], [lv("11", "1")], md.SNAPSHOT_REASON_REFRESH))
    assert orjson.loads(sub.queued()[-1])["type"] == "snapshot"
    assert orjson.loads(sub.queued()[-1])["lastUpdateId"] == 9


# --- the hub: sharing, lifecycle, failures ------------------------------------------------------


class FakeProvider:
    """A Source: each opened stream reads what the test pushes (a message, an exception, or END)."""

    END = object()

    def __init__(self) -> None:
        self.feeds: list[asyncio.Queue[object]] = []
        self.closed = 0

    def __call__(self, key: StreamKey) -> AsyncGenerator[UpstreamMessage, None]:
        return self._stream()

    async def _stream(self) -> AsyncGenerator[UpstreamMessage, None]:
        feed: asyncio.Queue[object] = asyncio.Queue()
        self.feeds.append(feed)
        try:
            while True:
                item = await feed.get()
                if item is self.END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, UpstreamMessage)
                yield item
        finally:
            self.closed += 1

    def push(self, item: object) -> None:
        self.feeds[-1].put_nowait(item)


async def until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def next_json(sub: Subscriber) -> dict[str, object]:
    item = await asyncio.wait_for(sub.next(), TIMEOUT)
    assert isinstance(item, str), item
    message = orjson.loads(item)
    assert isinstance(message, dict)
    return message


def unavailable() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "provider down", None
    )


@pytest.fixture
async def provider() -> AsyncIterator[tuple[FakeProvider, StreamHub]]:
    fake = FakeProvider()
    hub = StreamHub(fake, capacity=8, backoff=FAST_BACKOFF)
    yield fake, hub
    await hub.close()


async def test_clients_of_one_key_share_one_upstream_which_ends_with_the_last(
    provider: tuple[FakeProvider, StreamHub],
) -> None:
    fake, hub = provider
    first, second = hub.subscribe(TRADES), hub.subscribe(TRADES)
    other = hub.subscribe(StreamKey(StreamChannel.TRADES, "ETHUSDT"))
    await until(lambda: len(fake.feeds) == 2, "two upstreams (BTCUSDT and ETHUSDT)")
    assert hub.upstreams_open.labels(channel="trades")._value.get() == 2
    upstream = hub.upstream(TRADES)
    assert upstream is not None and len(upstream.fanout.subscribers) == 2
    fake.feeds[0].put_nowait(trades(7))
    a, b = await next_json(first), await next_json(second)
    assert a == b and a["t"] == 7
    hub.unsubscribe(first)
    assert upstream.task is not None and not upstream.task.done()
    hub.unsubscribe(second)
    await until(lambda: fake.closed == 1, "the upstream's provider stream to be closed")
    assert hub.upstream(TRADES) is None and upstream.task.done()
    hub.unsubscribe(second)  # idempotent
    again = hub.subscribe(TRADES)  # a new client opens a new upstream
    await until(lambda: len(fake.feeds) == 3, "a fresh upstream")
    hub.unsubscribe(again)
    hub.unsubscribe(other)
    await until(lambda: fake.closed == 3, "every provider stream closed")
    assert hub.upstreams_open.labels(channel="trades")._value.get() == 0


async def test_upstream_failure_resyncs_depth_clients_then_serves_a_new_snapshot(
    provider: tuple[FakeProvider, StreamHub],
) -> None:
    fake, hub = provider
    sub = hub.subscribe(DEPTH, limit=10)
    await until(lambda: len(fake.feeds) == 1, "the upstream")
    fake.push(snapshot(10, [lv("10", "1")], [lv("11", "1")]))
    assert (await next_json(sub))["reason"] == "initial"
    fake.push(unavailable())
    resync = await next_json(sub)
    assert resync["type"] == "resync" and "UNAVAILABLE" in str(resync["reason"])
    await until(lambda: len(fake.feeds) == 2, "the reconnect")
    fake.push(snapshot(50, [lv("10", "3")], [lv("11", "1")]))
    again = await next_json(sub)
    assert again["type"] == "snapshot" and again["reason"] == "resync" and again["lastUpdateId"] == 50
    fake.push(diff(52, 53))  # a gap in the provider's diffs: resync and reconnect, never a silent skip
    assert (await next_json(sub))["type"] == "resync"
    await until(lambda: len(fake.feeds) == 3, "the reconnect after the gap")
    assert hub.upstream_opens.labels(channel="depth")._value.get() == 3


async def test_after_repeated_failures_clients_are_closed_with_1011(provider: tuple[FakeProvider, StreamHub]) -> None:
    fake, hub = provider
    sub = hub.subscribe(TRADES)
    for attempt in range(FAST_BACKOFF.attempts + 1):
        await until(lambda n=attempt: len(fake.feeds) == n + 1, f"attempt {attempt + 1}")  # type: ignore[misc]
        fake.push(unavailable())
    closed = await asyncio.wait_for(sub.next(), TIMEOUT)
    # Before giving up, the client was told events may be missing.
    assert isinstance(closed, Close) and closed.code == CloseCode.UPSTREAM_FAILED
    assert "unavailable" in closed.reason
    replacement = hub.subscribe(TRADES)  # the dead upstream is replaced, not joined
    await until(lambda: len(fake.feeds) == FAST_BACKOFF.attempts + 2, "a new upstream")
    hub.unsubscribe(replacement)


async def test_a_gap_notice_tells_event_clients_when_the_upstream_reconnects(
    provider: tuple[FakeProvider, StreamHub],
) -> None:
    fake, hub = provider
    sub = hub.subscribe(TRADES)
    await until(lambda: len(fake.feeds) == 1, "the upstream")
    fake.push(FakeProvider.END)  # the provider ended the stream
    gap = await next_json(sub)
    assert gap["type"] == "gap" and gap["s"] == "BTCUSDT"
    await until(lambda: len(fake.feeds) == 2, "the reconnect")
    fake.push(trades(9))
    assert (await next_json(sub))["t"] == 9


async def test_an_unknown_symbol_closes_its_clients_with_1008_and_the_reason(
    provider: tuple[FakeProvider, StreamHub],
) -> None:
    fake, hub = provider
    sub = hub.subscribe(StreamKey(StreamChannel.TICKER, "NOPEUSDT"))
    await until(lambda: len(fake.feeds) == 1, "the upstream")
    fake.push(
        grpc.aio.AioRpcError(
            grpc.StatusCode.INVALID_ARGUMENT, grpc.aio.Metadata(), grpc.aio.Metadata(), "unknown symbol NOPEUSDT", None
        )
    )
    closed = await asyncio.wait_for(sub.next(), TIMEOUT)
    assert closed == Close(CloseCode.POLICY, "unknown symbol NOPEUSDT")
    assert len(fake.feeds) == 1  # not retried


async def test_closing_the_hub_closes_clients_with_1000_and_ends_every_upstream() -> None:
    fake = FakeProvider()
    hub = StreamHub(fake, backoff=FAST_BACKOFF)
    subs = [hub.subscribe(TRADES), hub.subscribe(DEPTH, limit=5)]
    await until(lambda: len(fake.feeds) == 2, "both upstreams")
    await asyncio.wait_for(hub.close(), TIMEOUT)
    assert fake.closed == 2
    for sub in subs:
        assert await asyncio.wait_for(sub.next(), TIMEOUT) == SHUTDOWN
    assert hub.subscribe(TRADES).closed == SHUTDOWN  # nothing new after shutdown


# --- the WebSocket shell ------------------------------------------------------------------------


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeProvider, TestClient[web.Request, web.Application]]]:
    fake = FakeProvider()
    app = web.Application(middlewares=[errors_middleware])
    app[METRICS] = Metrics()
    app[API] = Api(app, "t", "1")
    app[STREAM_HUB] = StreamHub(fake, backoff=FAST_BACKOFF, registry=app[METRICS].registry)
    app.on_shutdown.append(close_streams)
    add_stream_routes(app[API])
    async with TestClient(TestServer(app)) as client:
        yield fake, client


async def test_a_websocket_client_gets_frames_and_a_1000_close_on_shutdown(
    served: tuple[FakeProvider, TestClient[web.Request, web.Application]],
) -> None:
    fake, client = served
    async with client.ws_connect("/ws/depth/BTCUSDT?speed=1000ms&limit=1", timeout=WS_TIMEOUT) as ws:
        await until(lambda: len(fake.feeds) == 1, "the upstream")
        fake.push(snapshot(3, [lv("10", "1"), lv("9", "1")], [lv("11", "2")]))
        first = await ws.receive_json(timeout=TIMEOUT)
        assert first["type"] == "snapshot" and first["bids"] == [["10", "1"]] and first["lastUpdateId"] == 3
        fake.push(diff(4, 4, bids=[lv("10", "0")]))
        assert (await ws.receive_json(timeout=TIMEOUT))["U"] == 4
        await close_streams(client.app)
        closing = await ws.receive(timeout=TIMEOUT)
        assert closing.type is WSMsgType.CLOSE and closing.data == CloseCode.NORMAL
        assert closing.extra == "server shutdown"
    await until(lambda: fake.closed == 1, "the upstream to end")


async def test_a_websocket_client_leaving_ends_the_upstream_and_bad_params_are_400(
    served: tuple[FakeProvider, TestClient[web.Request, web.Application]],
) -> None:
    fake, client = served
    async with client.ws_connect("/ws/trades/BTCUSDT", timeout=WS_TIMEOUT) as ws:
        await until(lambda: len(fake.feeds) == 1, "the upstream")
        fake.push(trades(1))
        assert (await ws.receive_json(timeout=TIMEOUT))["t"] == 1
    await until(lambda: fake.closed == 1, "the upstream to end with its only client")
    response = await client.get("/ws/depth/BTCUSDT", params={"speed": "10ms"})
    assert response.status == 400
    response = await client.get("/ws/trades/btcusdt")
    assert response.status == 400


async def test_the_gateway_pings_and_a_client_that_answers_stays_connected(
    served: tuple[FakeProvider, TestClient[web.Request, web.Application]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "PING_EVERY_S", 0.05)
    monkeypatch.setattr(streams, "SILENT_CLIENT_LIMIT_S", 0.3)
    fake, client = served
    async with client.ws_connect("/ws/trades/BTCUSDT", timeout=WS_TIMEOUT, autoping=False) as ws:
        await until(lambda: len(fake.feeds) == 1, "the upstream")
        pings = 0
        while pings < 12:  # 0.6 s of pings: twice the silence limit, and the client only ever sends pongs
            message = await ws.receive(timeout=TIMEOUT)
            assert message.type is WSMsgType.PING, message
            pings += 1
            await ws.pong(message.data)
        fake.push(trades(7))
        while (message := await ws.receive(timeout=TIMEOUT)).type is WSMsgType.PING:
            await ws.pong(message.data)
        assert message.type is WSMsgType.TEXT and orjson.loads(message.data)["t"] == 7


async def test_a_client_never_heard_from_is_closed_with_1008_and_the_reason(
    served: tuple[FakeProvider, TestClient[web.Request, web.Application]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "PING_EVERY_S", 0.05)
    monkeypatch.setattr(streams, "SILENT_CLIENT_LIMIT_S", 0.3)
    _, client = served
    async with client.ws_connect("/ws/trades/BTCUSDT", timeout=WS_TIMEOUT, autoping=False) as ws:
        pings = 0
        while True:
            message = await ws.receive(timeout=TIMEOUT)
            if message.type is WSMsgType.PING:
                pings += 1  # seen, never answered
                continue
            break
        assert pings >= 2
        assert message.type is WSMsgType.CLOSE and message.data == CloseCode.POLICY
        assert "no pong" in str(message.extra)


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


async def test_shutdown_drops_only_the_sockets_still_open_after_the_wait() -> None:
    live = streams.LiveSockets()
    gone, stuck = FakeTransport(), FakeTransport()
    live.add(gone)  # type: ignore[arg-type]
    live.add(stuck)  # type: ignore[arg-type]
    live.discard(gone)  # type: ignore[arg-type]  # its handler ended after the close frame
    assert await live.drop_after(0.05) == 1
    assert stuck.aborted and not gone.aborted


async def test_shutdown_does_not_wait_when_every_client_is_gone() -> None:
    live = streams.LiveSockets()
    assert await asyncio.wait_for(live.drop_after(60), 1) == 0
