"""One run of bytes written to many sockets, split over threads: every socket gets the bytes, whole
and in order, what a socket cannot take goes through its transport after them, and a broken
connection costs nothing but itself."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import cast

import pytest
from aiohttp import web
from binance.provider.v1 import market_data_pb2 as md

from gateway_http import socket_writes
from gateway_http.config import load_config
from gateway_http.socket_writes import PARALLEL_MIN_SOCKETS, SocketWrites, write_each
from gateway_http.streams import (
    DirectWriter,
    EventFanOut,
    StreamChannel,
    StreamKey,
    Subscriber,
    WriteBatcher,
    text_frame,
    trade_frames,
)
from service_runtime.config import ConfigError

KEY = StreamKey(StreamChannel.TRADES, "BTCUSDT")


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made: list[tuple[socket.socket, socket.socket]] = []
    yield made
    for ours, theirs in made:
        ours.close()
        theirs.close()


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """The threads `SocketWrites` wrote from."""
    seen: set[int] = set()

    def recording(fds: Sequence[int], data: bytes) -> list[int]:
        seen.add(threading.get_ident())
        return write_each(fds, data)

    monkeypatch.setattr(socket_writes, "write_each", recording)
    return seen


def socket_pairs(made: list[tuple[socket.socket, socket.socket]], n: int) -> list[tuple[socket.socket, socket.socket]]:
    for _ in range(n):
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.setblocking(False)
        made.append((ours, theirs))
    return made[-n:]


def test_each_socket_gets_the_bytes_and_the_count_it_took(pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    made = socket_pairs(pairs, 3)
    assert write_each([ours.fileno() for ours, _ in made], b"frame") == [5, 5, 5]
    assert [theirs.recv(100) for _, theirs in made] == [b"frame"] * 3


def test_a_full_socket_takes_what_fits_and_a_broken_one_nothing(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    (full, _), (broken, peer), (fine, reader) = socket_pairs(pairs, 3)
    full.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer.close()
    data = b"x" * 1_000_000
    took_full, took_broken, took_fine = write_each([full.fileno(), broken.fileno(), fine.fileno()], data)
    assert 0 < took_full < len(data)
    assert took_broken == 0
    assert 0 < took_fine <= len(data)
    assert reader.recv(10) == b"x" * 10


def test_many_sockets_are_split_over_threads_and_answered_in_order(
    pairs: list[tuple[socket.socket, socket.socket]], threads: set[int]
) -> None:
    made = socket_pairs(pairs, 2 * PARALLEL_MIN_SOCKETS + 3)
    for index in (1, PARALLEL_MIN_SOCKETS + 5, len(made) - 1):  # broken, in both threads' parts
        made[index][1].close()
    writes = SocketWrites(threads=2)
    try:
        sent = writes.write([ours.fileno() for ours, _ in made], b"abc")
    finally:
        writes.close()
    assert len(threads) == 2
    assert [i for i, took in enumerate(sent) if took != 3] == [1, PARALLEL_MIN_SOCKETS + 5, len(made) - 1]


def test_few_sockets_stay_on_the_callers_thread(
    pairs: list[tuple[socket.socket, socket.socket]], threads: set[int]
) -> None:
    made = socket_pairs(pairs, PARALLEL_MIN_SOCKETS + 1)
    writes = SocketWrites(threads=4)
    assert writes.write([ours.fileno() for ours, _ in made], b"a") == [1] * len(made)
    writes.close()
    assert threads == {threading.get_ident()}


def test_at_least_one_thread() -> None:
    with pytest.raises(ValueError, match="threads must be at least 1, not 0"):
        SocketWrites(threads=0)


class _Ws:
    closed = False


class _Accepted(asyncio.Protocol):
    def __init__(self) -> None:
        self.lost = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


async def test_a_large_fan_out_reaches_every_client_whole_and_in_order(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    # More clients than one thread writes, some with sockets too small for a batch (the transport
    # sends the rest, and the next batch after it) and some already gone.
    loop = asyncio.get_running_loop()
    made = socket_pairs(pairs, 2 * PARALLEL_MIN_SOCKETS + 10)
    small = set(range(0, len(made), 7))
    gone = {3, PARALLEL_MIN_SOCKETS + 4}
    batcher = WriteBatcher(sockets=SocketWrites(threads=2))
    fanout = EventFanOut(KEY, trade_frames, batcher=batcher)
    transports: list[asyncio.Transport] = []
    protocols: list[_Accepted] = []
    for index, (ours, _) in enumerate(made):
        if index in small:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        transport, protocol = await loop.connect_accepted_socket(_Accepted, ours)
        transports.append(transport)
        protocols.append(protocol)
        sub = Subscriber(KEY)
        sub.direct = DirectWriter(cast(web.WebSocketResponse, _Ws()), transport, batcher)
        fanout.join(sub)
    for index in gone:
        made[index][1].close()

    def burst(first_id: int) -> md.StreamTradesResponse:
        trades = [md.Trade(symbol="BTCUSDT", id=first_id + i, price="1.5", quantity="2") for i in range(400)]
        return md.StreamTradesResponse(trades=trades)

    expected = b""
    early: dict[int, bytes] = {}  # read before the loop ran: room in the socket, the rest still buffered
    try:
        for first_id in (1, 1000):
            message = burst(first_id)
            expected += b"".join(text_frame(text.encode()) for text in trade_frames(message))
            fanout.on_message(message)
            batcher.flush()
            if first_id == 1:
                backed_up = [i for i in small if transports[i].get_write_buffer_size()]
                assert backed_up, "no socket was too small for the batch: the test proves nothing"
                early = {i: made[i][1].recv(1 << 16) for i in backed_up}

        async def read_all(index: int, theirs: socket.socket) -> bytes:
            got = early.get(index, b"")
            while len(got) < len(expected):
                chunk = await loop.sock_recv(theirs, 1 << 16)
                if not chunk:
                    break
                got += chunk
            return got

        received = await asyncio.wait_for(
            asyncio.gather(*(read_all(i, theirs) for i, (_, theirs) in enumerate(made) if i not in gone)), 20
        )
        assert all(got == expected for got in received)
        await asyncio.wait_for(asyncio.gather(*(protocols[i].lost for i in gone)), 5)
        assert all(transports[i].is_closing() for i in gone)
    finally:
        for transport in transports:
            transport.abort()
        batcher.sockets.close()


def test_the_write_threads_setting_is_checked_at_start() -> None:
    assert load_config([], {}).ws_write_threads == 2
    assert load_config([], {"GATEWAY_HTTP_WS_WRITE_THREADS": "1"}).ws_write_threads == 1
    for bad, says in (("0", "1..16"), ("17", "1..16"), ("many", "a number of threads")):
        with pytest.raises(ConfigError, match=f"GATEWAY_HTTP_WS_WRITE_THREADS.*{says}"):
            load_config([], {"GATEWAY_HTTP_WS_WRITE_THREADS": bad})
