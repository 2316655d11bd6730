"""How far a WebSocket client may fall behind: the GATEWAY_HTTP_WS_BACKLOG setting, the bounded
socket buffering that lets a stalled client's queue fill at all, and the counter of lagged clients."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from gateway_http.config import load_config
from gateway_http.metrics import Metrics
from gateway_http.streams import (
    CLIENT_QUEUE_FRAMES,
    CLIENT_SEND_BUFFER_BYTES,
    SLOW_CONSUMER,
    DepthFanOut,
    StreamHub,
    WsBacklog,
    bound_send_buffering,
    parse_ws_backlog,
)
from tests.gateway_http.test_streams import DEPTH, FAST_BACKOFF, TRADES, FakeProvider, diff, lv, snapshot, trades, until


def lagged_total(metrics: Metrics, channel: str) -> float:
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == "gateway_http_ws_lagged_total" and sample.labels == {"channel": channel}:
                return float(sample.value)
    return 0.0


def test_the_backlog_setting_is_frames_and_send_buffer_bytes() -> None:
    assert load_config([], {}).ws_backlog == WsBacklog(CLIENT_QUEUE_FRAMES, CLIENT_SEND_BUFFER_BYTES)
    assert load_config([], {"GATEWAY_HTTP_WS_BACKLOG": "16,4096"}).ws_backlog == WsBacklog(16, 4096)
    assert parse_ws_backlog("32") == WsBacklog(32, CLIENT_SEND_BUFFER_BYTES)
    assert parse_ws_backlog("32,0") == WsBacklog(32, 0)  # 0: the OS default buffers
    for bad in ("1,4096", "16,-1", "x", "16,4k"):
        with pytest.raises(ValueError, match="FRAMES,SEND_BUFFER_BYTES"):
            parse_ws_backlog(bad)


async def test_the_hub_counts_each_overflow_by_channel_and_not_the_clients_that_keep_up() -> None:
    metrics = Metrics()
    fake = FakeProvider()
    hub = StreamHub(fake, capacity=2, backoff=FAST_BACKOFF, registry=metrics.registry)
    try:
        fast, slow = hub.subscribe(DEPTH, limit=5), hub.subscribe(DEPTH, limit=5)
        await until(lambda: len(fake.feeds) == 1, "the depth upstream")
        upstream = hub.upstream(DEPTH)
        assert upstream is not None
        fanout = upstream.fanout
        assert isinstance(fanout, DepthFanOut)
        fake.push(snapshot(10, [lv("100", "1")], [lv("101", "1")]))
        for update_id in range(11, 15):
            fast.replace([])  # the fast client has written everything out
            fake.push(diff(update_id, update_id, bids=[lv("100", str(update_id))]))
            await until(lambda: fanout.last_update_id == update_id, f"diff {update_id} applied")  # noqa: B023
        # The slow queue (2 frames) held the snapshot and diff 11; 12, 13 and 14 each overflowed it.
        assert slow.lags == 3 and fast.lags == 0
        assert lagged_total(metrics, "depth") == 3

        closed = hub.subscribe(TRADES)
        await until(lambda: len(fake.feeds) == 2, "the trades upstream")
        fake.push(trades(1, 2, 3))
        await until(lambda: closed.closed is not None, "the slow trades client closed")
        assert closed.closed == SLOW_CONSUMER
        assert lagged_total(metrics, "trades") == 1 and lagged_total(metrics, "depth") == 3
    finally:
        await hub.close()


async def _bounded_buffers(limit: int) -> tuple[int, int, tuple[int, int]]:
    """(SO_SNDBUF before, after, the transport's write-buffer limits) of a loopback connection bounded to `limit`."""
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        sock = transport.get_extra_info("socket")
        before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        bound_send_buffering(transport, limit)
        after = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        limits = transport.get_write_buffer_limits()
        transport.close()
        return before, after, limits
    finally:
        server.close()
        await server.wait_closed()


LoopFactory = Callable[[], asyncio.AbstractEventLoop]


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_send_buffering_is_bounded_in_the_kernel_and_the_transport(loop_factory: LoopFactory) -> None:
    # The gateway runs under uvloop, whose transports are not asyncio.WriteTransport subclasses.
    def run(coroutine: Coroutine[Any, Any, tuple[int, int, tuple[int, int]]]) -> tuple[int, int, tuple[int, int]]:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(coroutine)

    before, after, (low, high) = run(_bounded_buffers(4096))
    assert after < before and 4096 <= after <= 2 * 4096  # Linux grants twice what is asked
    assert high == 4096 and low <= high
    before, after, (_, high) = run(_bounded_buffers(0))  # 0: the OS defaults stay
    assert after == before and high > 4096
