"""Frames written straight to a client's connection: encoded once as WebSocket frames, batched per
connection, never reordered against the client's queue, never written after a close, written as
soon as their upstream message is handled, and batched for longer only while flushes are costly.
Event streams batch once for all their clients: one joined write, the same bytes, to each."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncGenerator
from typing import cast

import orjson
import pytest
from aiohttp import web
from binance.provider.v1 import market_data_pb2 as md

from gateway_http.streams import (
    SLOW_CONSUMER,
    DirectWriter,
    EventFanOut,
    StreamChannel,
    StreamHub,
    StreamKey,
    Subscriber,
    UpstreamMessage,
    WriteBatcher,
    text_frame,
    trade_frames,
)

KEY = StreamKey(StreamChannel.TRADES, "BTCUSDT")
HIGH_WATER = 1000


class FakeTransport:
    """What DirectWriter uses of a transport; `unsent` stands for bytes the socket has not taken."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.unsent = 0
        self.closing = False

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return HIGH_WATER // 4, HIGH_WATER

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> object:
        return None  # no socket of its own: every write goes through `write`

    def write(self, data: bytes) -> None:
        self.writes.append(data)


class FakeWs:
    closed = False


def parse_frames(data: bytes) -> list[str]:
    """Server-to-client text frames (unmasked, final) back into their texts."""
    texts = []
    while data:
        assert data[0] == 0x81 and data[1] & 0x80 == 0
        n, at = data[1], 2
        if n == 126:
            (n,), at = struct.unpack("!H", data[2:4]), 4
        elif n == 127:
            (n,), at = struct.unpack("!Q", data[2:10]), 10
        texts.append(data[at : at + n].decode())
        data = data[at + n :]
    return texts


def client(batcher: WriteBatcher) -> tuple[Subscriber, FakeTransport, FakeWs]:
    transport, ws = FakeTransport(), FakeWs()
    sub = Subscriber(KEY, capacity=4)
    sub.direct = DirectWriter(cast(web.WebSocketResponse, ws), cast(asyncio.Transport, transport), batcher)
    return sub, transport, ws


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frames_use_the_shortest_length_form(size: int) -> None:
    text = "x" * size
    frame = text_frame(text.encode())
    header = 2 if size < 126 else 4 if size < 65536 else 10
    assert len(frame) == header + size
    assert parse_frames(frame) == [text]


async def test_a_burst_reaches_each_connection_in_one_write_in_order() -> None:
    batcher = WriteBatcher()
    (a, ta, _), (b, tb, _) = client(batcher), client(batcher)
    for text in ("one", "two", "three"):
        for sub in (a, b):
            assert sub.offer(text)
    assert ta.writes == [] and tb.writes == []  # nothing before the loop gets to the flush
    await asyncio.sleep(0)  # one loop iteration: the flush was scheduled with call_soon
    assert len(ta.writes) == 1 and len(tb.writes) == 1
    assert parse_frames(ta.writes[0]) == parse_frames(tb.writes[0]) == ["one", "two", "three"]
    assert a.queued() == [] and batcher.flushes == 1


async def test_a_backed_up_connection_gets_its_batch_before_anything_queued() -> None:
    sub, transport, _ = client(WriteBatcher())
    assert sub.offer("batched")
    transport.unsent = HIGH_WATER  # the socket stopped taking data
    assert sub.offer("queued")
    # The batch went out at once, ahead of the frame now waiting in the queue for the pump.
    assert [parse_frames(w) for w in transport.writes] == [["batched"]]
    assert sub.queued() == ["queued"]
    transport.unsent = 0
    assert sub.offer("after")  # the queue is not empty: the frame waits its turn behind it
    assert sub.queued() == ["queued", "after"] and len(transport.writes) == 1


async def test_frames_batched_so_far_count_toward_the_high_water_mark() -> None:
    sub, transport, _ = client(WriteBatcher())
    big = "y" * (HIGH_WATER // 2)
    assert sub.offer(big) and sub.offer(big)
    assert not transport.writes
    assert sub.offer(big)  # a third would pass the mark: the batch is written, this one queued
    assert [len(parse_frames(w)) for w in transport.writes] == [2]
    assert sub.queued() == [big]


async def test_a_replacement_goes_out_after_what_was_batched() -> None:
    sub, transport, _ = client(WriteBatcher())
    assert sub.offer("old diff")
    sub.replace(["lagged", "snapshot"])
    assert [parse_frames(w) for w in transport.writes] == [["old diff"]]
    assert sub.queued() == ["lagged", "snapshot"]


async def test_nothing_is_written_once_the_connection_closes() -> None:
    batcher = WriteBatcher()
    sub, transport, ws = client(batcher)
    assert sub.offer("before close")
    ws.closed = True  # aiohttp began its closing handshake: the close frame is the last frame
    await asyncio.sleep(0)
    assert transport.writes == []
    assert sub.offer("after close")  # refused by the writer, so queued (the pump sends the Close)
    assert transport.writes == [] and sub.queued() == ["after close"]


async def test_batches_wait_longer_only_after_a_costly_flush() -> None:
    batcher = WriteBatcher()
    sub, transport, _ = client(batcher)
    assert sub.offer("cheap")
    await asyncio.sleep(0)
    assert len(transport.writes) == 1
    # A flush that took long (thousands of connections): the next waits, collecting more frames.
    batcher._last_flush_s = 4 * WriteBatcher.BUSY_FLUSH_S
    assert sub.offer("a") and sub.offer("b")
    await asyncio.sleep(0)
    assert len(transport.writes) == 1
    batcher.flush()
    assert parse_frames(transport.writes[1]) == ["a", "b"]


async def test_each_upstream_message_is_written_before_the_next_is_read() -> None:
    # Upstreams of many symbols tick together: a client's frame goes out as soon as its own
    # message is handled, not after the whole burst.
    writes_when_resumed: list[int] = []
    transport = FakeTransport()
    done = asyncio.Event()

    async def source(key: StreamKey) -> AsyncGenerator[UpstreamMessage, None]:
        for trade_id in (1, 2, 3):
            yield md.StreamTradesResponse(trades=[md.Trade(symbol=key.symbol, id=trade_id, price="1", quantity="1")])
            writes_when_resumed.append(len(transport.writes))  # the loop has not run in between
        done.set()
        await asyncio.Event().wait()
        yield md.StreamTradesResponse()  # never reached: makes this an async generator

    hub = StreamHub(source)
    try:
        sub = hub.subscribe(KEY)
        sub.direct = DirectWriter(
            cast(web.WebSocketResponse, FakeWs()), cast(asyncio.Transport, transport), hub.batcher
        )
        await asyncio.wait_for(done.wait(), 3.0)
        assert writes_when_resumed == [1, 2, 3]
        assert [len(parse_frames(w)) for w in transport.writes] == [1, 1, 1]
    finally:
        await hub.close()


async def test_a_costly_flush_makes_the_next_collect_across_messages() -> None:
    batcher = WriteBatcher()
    sub, transport, _ = client(batcher)
    assert sub.offer("cheap")
    batcher.settle()  # the message is handled: written without waiting for the loop
    assert len(transport.writes) == 1
    batcher._last_flush_s = 4 * WriteBatcher.BUSY_FLUSH_S
    assert sub.offer("a")
    batcher.settle()
    assert sub.offer("b")
    batcher.settle()
    assert len(transport.writes) == 1  # still collecting for the delayed flush
    batcher.flush()
    assert parse_frames(transport.writes[1]) == ["a", "b"]


async def test_each_flush_reports_its_duration_and_how_long_its_first_frame_waited() -> None:
    flushes: list[tuple[float, float]] = []
    batcher = WriteBatcher(on_flush=lambda duration, delay: flushes.append((duration, delay)))
    (a, _, _), (b, _, _) = client(batcher), client(batcher)
    assert a.offer("first")
    time.sleep(0.02)  # noqa: ASYNC251  # on purpose: the first frame waits while the batch is open
    assert b.offer("second")
    batcher.settle()
    [(duration, delay)] = flushes
    assert 0 <= duration <= delay and delay >= 0.02
    batcher.flush()  # nothing pending: no flush to report
    assert len(flushes) == 1


def trades(*ids: int) -> md.StreamTradesResponse:
    return md.StreamTradesResponse(
        trades=[md.Trade(symbol="BTCUSDT", id=i, price="1", quantity="1", time_ms=1000 + i) for i in ids]
    )


def trade_ids(data: bytes) -> list[int]:
    return [int(text.split('"t":')[1].split(",")[0]) for text in parse_frames(data)]


async def test_an_event_batch_is_joined_once_and_the_same_bytes_go_to_every_client() -> None:
    batcher = WriteBatcher()
    fanout = EventFanOut(KEY, trade_frames, batcher=batcher)
    clients = [client(batcher) for _ in range(3)]
    for sub, _, _ in clients:
        fanout.join(sub)
    fanout.on_message(trades(1, 2))
    fanout.on_message(trades(3))
    assert all(not transport.writes for _, transport, _ in clients)  # collected, not yet written
    batcher.flush()
    writes = [transport.writes for _, transport, _ in clients]
    assert all(len(w) == 1 for w in writes)
    assert writes[0][0] is writes[1][0] is writes[2][0]  # one bytes object for all of them
    assert trade_ids(writes[0][0]) == [1, 2, 3]


async def test_a_client_that_joins_mid_batch_gets_only_what_came_after_it() -> None:
    batcher = WriteBatcher()
    fanout = EventFanOut(KEY, trade_frames, batcher=batcher)
    (early, early_t, _), (late, late_t, _) = client(batcher), client(batcher)
    fanout.join(early)
    fanout.on_message(trades(1))
    fanout.join(late)
    fanout.on_message(trades(2, 3))
    batcher.flush()
    assert trade_ids(early_t.writes[0]) == [1, 2, 3]
    assert trade_ids(late_t.writes[0]) == [2, 3]
    fanout.on_message(trades(4))  # the next batch: both from its start
    batcher.flush()
    assert trade_ids(early_t.writes[1]) == trade_ids(late_t.writes[1]) == [4]


async def test_a_backed_up_event_client_queues_the_batch_and_keeps_its_order() -> None:
    batcher = WriteBatcher()
    fanout = EventFanOut(KEY, trade_frames, batcher=batcher)
    (fast, fast_t, _), (slow, slow_t, _) = client(batcher), client(batcher)
    fanout.join(fast)
    fanout.join(slow)
    fanout.on_message(trades(1))
    batcher.flush()
    slow_t.unsent = HIGH_WATER  # its socket stopped taking data
    fanout.on_message(trades(2, 3))
    batcher.flush()
    assert [trade_ids(w) for w in slow_t.writes] == [[1]]
    assert [orjson.loads(f)["t"] for f in slow.queued()] == [2, 3]  # for its pump, in order
    slow_t.unsent = 0
    fanout.on_message(trades(4))  # its queue is not empty: the frame waits its turn behind it
    batcher.flush()
    assert [orjson.loads(f)["t"] for f in slow.queued()] == [2, 3, 4] and len(slow_t.writes) == 1
    assert [trade_ids(w) for w in fast_t.writes] == [[1], [2, 3], [4]]


async def test_an_event_client_whose_queue_overflows_is_closed_and_the_others_are_not() -> None:
    batcher = WriteBatcher()
    fanout = EventFanOut(KEY, trade_frames, batcher=batcher)
    (fast, fast_t, _), (slow, slow_t, _) = client(batcher), client(batcher)  # queues of 4 frames
    fanout.join(fast)
    fanout.join(slow)
    slow_t.unsent = HIGH_WATER
    fanout.on_message(trades(1, 2, 3))
    batcher.flush()
    assert slow.closed is None and len(slow.queued()) == 3
    fanout.on_message(trades(4, 5))  # 5 frames for a queue of 4
    batcher.flush()
    assert slow.closed == SLOW_CONSUMER and fanout.slow_closed == 1
    assert fast.closed is None and [trade_ids(w) for w in fast_t.writes] == [[1, 2, 3], [4, 5]]


async def test_event_batches_are_written_as_their_upstream_message_is_handled() -> None:
    batcher = WriteBatcher()
    fanout = EventFanOut(KEY, trade_frames, batcher=batcher)
    sub, transport, _ = client(batcher)
    fanout.join(sub)
    fanout.on_message(trades(1))
    batcher.settle()
    assert [trade_ids(w) for w in transport.writes] == [[1]]
