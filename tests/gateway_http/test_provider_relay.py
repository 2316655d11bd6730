"""The relay of a provider stream (`_relay`): every message in order while the next read is already
on its way, the stream's end and its errors as the call gives them, and the call cancelled when the
reader stops early. Against a real grpc.aio server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from binance.provider.v1 import market_data_pb2 as md

from gateway_http.streams import _relay

SERVICE, METHOD = "test.Relay", "Stream"


def trades(trade_id: int) -> md.StreamTradesResponse:
    return md.StreamTradesResponse(trades=[md.Trade(symbol="BTCUSDT", id=trade_id, price="1", quantity="1")])


class Server:
    def __init__(self) -> None:
        self.count = 0
        self.fail_after: int | None = None
        self.cancelled = asyncio.Event()

    async def stream(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> AsyncIterator[bytes]:
        try:
            for i in range(self.count):
                yield trades(i).SerializeToString()
            if self.fail_after is not None:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "provider going away")
            if request == b"hold":
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


@pytest.fixture
async def served() -> AsyncIterator[tuple[Server, grpc.aio.Channel]]:
    server = grpc.aio.server()
    impl = Server()
    handler = grpc.unary_stream_rpc_method_handler(impl.stream)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {METHOD: handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield impl, channel
    finally:
        await channel.close(None)
        await server.stop(None)


def opener(channel: grpc.aio.Channel, request: bytes = b"") -> grpc.aio.UnaryStreamCall[bytes, md.StreamTradesResponse]:
    call = channel.unary_stream(
        f"/{SERVICE}/{METHOD}", request_serializer=None, response_deserializer=md.StreamTradesResponse.FromString
    )
    return call(request)


async def collect(relay: AsyncIterator[md.StreamTradesResponse], into: list[md.StreamTradesResponse]) -> None:
    async for message in relay:
        into.append(message)


async def test_every_message_in_order_then_the_end(served: tuple[Server, grpc.aio.Channel]) -> None:
    impl, channel = served
    impl.count = 500
    got = [m async for m in _relay(lambda: opener(channel))]
    assert got == [trades(i) for i in range(500)]


async def test_an_error_status_follows_the_messages_sent_before_it(served: tuple[Server, grpc.aio.Channel]) -> None:
    impl, channel = served
    impl.count, impl.fail_after = 3, 3
    got: list[md.StreamTradesResponse] = []
    with pytest.raises(grpc.RpcError) as raised:
        await collect(_relay(lambda: opener(channel)), got)
    assert got == [trades(0), trades(1), trades(2)]
    assert isinstance(raised.value, grpc.aio.AioRpcError) and raised.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_reader_that_stops_early_cancels_the_call(served: tuple[Server, grpc.aio.Channel]) -> None:
    impl, channel = served
    impl.count = 2
    relay = _relay(lambda: opener(channel, b"hold"))
    assert await anext(relay) == trades(0)  # the read of the next message is already under way
    await relay.aclose()
    await asyncio.wait_for(impl.cancelled.wait(), 5)
