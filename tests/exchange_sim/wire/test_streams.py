"""The simulator's WebSocket market streams (§1.1, §7) and the hub's fault hooks (§12 item 3).

The server runs on a real AppRunner on 127.0.0.1:0; clients are plain aiohttp WebSocket clients (and
one hand-written RFC 6455 handshake over a raw socket for the client that never reads). Every wait is
bounded by `asyncio.wait_for`; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType, web

from exchange_sim.hub import StreamHub, Subscriber, TooManyStreams, stream_key, to_microseconds
from exchange_sim.wire.streams import StreamSettings, add_stream_routes

WAIT = 5.0  # upper bound of every wait: a hang fails fast instead of hitting the pytest timeout
TRADE = "btcusdt@trade"
DEPTH = "btcusdt@depth@100ms"
TRADE_EVENT = {"e": "trade", "E": 1672515782136, "s": "BTCUSDT", "t": 12345, "p": "0.001", "q": "100"}
TRADE_EVENT.update({"T": 1672515782136, "m": True, "M": True})


def depth(u: int) -> bytes:
    return orjson.dumps({"e": "depthUpdate", "E": 1672515782136, "s": "BTCUSDT", "U": u, "u": u, "b": [], "a": []})


# --------------------------------------------------------------------------- harness


@dataclass
class Sim:
    hub: StreamHub
    runner: web.AppRunner
    port: int
    session: aiohttp.ClientSession
    clients: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def connect(self, path: str, *, autoping: bool = True) -> aiohttp.ClientWebSocketResponse:
        ws = await asyncio.wait_for(self.session.ws_connect(self.url(path), autoping=autoping), WAIT)
        self.clients.append(ws)
        return ws


Start = Callable[..., Awaitable[Sim]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    sims: list[Sim] = []

    async def _start(settings: StreamSettings | None = None, **hub_args: Any) -> Sim:
        hub = StreamHub(**hub_args)
        app = web.Application()
        add_stream_routes(app, hub, settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        sim = Sim(hub, runner, runner.addresses[0][1], aiohttp.ClientSession())
        sims.append(sim)
        return sim

    yield _start
    for sim in sims:
        for ws in sim.clients:
            await asyncio.wait_for(ws.close(), WAIT)
        await sim.session.close()
        await asyncio.wait_for(sim.runner.cleanup(), WAIT * 2)


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = WAIT) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), timeout)


async def recv_text(ws: aiohttp.ClientWebSocketResponse) -> str:
    msg = await recv(ws)
    assert msg.type is WSMsgType.TEXT, msg
    assert isinstance(msg.data, str)
    return msg.data


async def recv_json(ws: aiohttp.ClientWebSocketResponse) -> Any:
    return orjson.loads(await recv_text(ws))


async def call(ws: aiohttp.ClientWebSocketResponse, request: dict[str, Any] | str) -> Any:
    await ws.send_str(request if isinstance(request, str) else orjson.dumps(request).decode())
    return await recv_json(ws)


async def recv_close(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """The next frame that is not a ping or data must be a close frame; returns it."""
    while True:
        msg = await recv(ws)
        if msg.type in (WSMsgType.PING, WSMsgType.PONG, WSMsgType.TEXT):
            continue
        assert msg.type is WSMsgType.CLOSE, msg
        return msg


async def recv_dropped(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """The connection ends without a close frame (TCP dropped)."""
    while True:
        msg = await recv(ws)
        if msg.type in (WSMsgType.PING, WSMsgType.TEXT):
            continue
        assert msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR), msg
        assert ws.close_code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE
        return msg


def changed(hub: StreamHub) -> asyncio.Event:
    """An event set at the next change of `hub.subscribed_streams()`."""
    event = asyncio.Event()
    remove: Callable[[], None] | None = None

    def fire() -> None:
        event.set()
        if remove is not None:
            remove()

    remove = hub.on_subscriptions_changed(fire)
    return event


# --------------------------------------------------------------------------- framing


async def test_raw_stream_sends_the_bare_event_bytes(start: Start) -> None:
    sim = await start()
    ws = await sim.connect(f"/ws/{TRADE}")
    payload = orjson.dumps(TRADE_EVENT)
    sim.hub.publish(DEPTH, depth(1))  # nobody listens to it here
    sim.hub.publish(TRADE, payload)
    assert (await recv_text(ws)).encode() == payload


async def test_combined_stream_wraps_each_event_with_its_stream_name(start: Start) -> None:
    sim = await start()
    ws = await sim.connect(f"/stream?streams={TRADE}/{DEPTH}")
    trade = orjson.dumps(TRADE_EVENT)
    sim.hub.publish(TRADE, trade)
    sim.hub.publish(DEPTH, depth(7))
    assert (await recv_text(ws)).encode() == b'{"stream":"btcusdt@trade","data":' + trade + b"}"
    frame = await recv_json(ws)
    assert frame == {"stream": DEPTH, "data": orjson.loads(depth(7))}


async def test_url_encoded_stream_names_are_accepted(start: Start) -> None:
    sim = await start()
    raw = await sim.connect("/ws/btcusdt%40trade")
    combined = await sim.connect("/stream?streams=btcusdt%40trade%2Fbtcusdt%40depth%40100ms")
    sim.hub.publish(DEPTH, depth(1))
    sim.hub.publish(TRADE, b'{"e":"trade"}')
    assert await recv_json(combined) == {"stream": DEPTH, "data": orjson.loads(depth(1))}
    assert await recv_json(combined) == {"stream": TRADE, "data": {"e": "trade"}}
    assert await recv_json(raw) == {"e": "trade"}


async def test_a_plus_in_a_stream_name_is_literal(start: Start) -> None:
    sim = await start()
    combined = await sim.connect("/stream?streams=btcusdt@kline_1m@+08:00/btcusdt@kline_1m")
    raw = await sim.connect("/ws/btcusdt@kline_1m@+08:00")
    sim.hub.publish("btcusdt@kline_1m@+08:00", b'{"e":"kline"}')
    assert await recv_json(combined) == {"stream": "btcusdt@kline_1m@+08:00", "data": {"e": "kline"}}
    assert await recv_json(raw) == {"e": "kline"}


@pytest.mark.parametrize("path", ["/ws/btcusdt@trade/ethusdt@trade", "/stream/btcusdt@trade", "/streams"])
async def test_shapes_binance_does_not_serve_are_404(start: Start, path: str) -> None:
    sim = await start()
    async with sim.session.get(sim.url(path)) as resp:
        assert resp.status == 404


async def test_a_plain_get_is_refused(start: Start) -> None:
    sim = await start()
    async with sim.session.get(sim.url(f"/ws/{TRADE}")) as resp:
        assert resp.status == 400


async def test_names_match_case_insensitively_but_are_echoed_as_subscribed(start: Start) -> None:
    sim = await start()
    ws = await sim.connect("/stream?streams=BTCUSDT@BOOKTICKER/btcusdt@kline_1M")
    assert sim.hub.subscribed_streams() == {"btcusdt@bookTicker", "btcusdt@kline_1M"}
    assert sim.hub.has_subscribers("btcusdt@bookticker")
    sim.hub.publish("btcusdt@kline_1m", b'{"e":"kline","k":{"i":"1m"}}')  # minutes ≠ months: not delivered
    sim.hub.publish("btcusdt@bookTicker", b'{"u":400900217}')
    assert await recv_json(ws) == {"stream": "BTCUSDT@BOOKTICKER", "data": {"u": 400900217}}
    listed = await call(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})
    assert listed == {"result": ["BTCUSDT@BOOKTICKER", "btcusdt@kline_1M"], "id": 3}


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("btcusdt@trade", "btcusdt@trade"),
        ("BTCUSDT@Trade", "btcusdt@trade"),
        ("btcusdt@bookticker", "btcusdt@bookTicker"),
        ("BNBBTC@AGGTRADE", "bnbbtc@aggTrade"),
        ("!MINITICKER@ARR", "!miniTicker@arr"),
        ("btcusdt@depth5@100MS", "btcusdt@depth5@100ms"),
        ("BTCUSDT@KLINE_1m", "btcusdt@kline_1m"),
        ("btcusdt@kline_1M@+08:00", "btcusdt@kline_1M@+08:00"),
        ("ethusdt@avgprice", "ethusdt@avgPrice"),
    ],
)
def test_stream_keys_are_binance_spellings(name: str, key: str) -> None:
    assert stream_key(name) == key


# --------------------------------------------------------------------------- time unit


async def test_time_unit_microsecond_converts_time_fields(start: Start) -> None:
    sim = await start()
    micro = await sim.connect(f"/ws/{TRADE}?timeUnit=microsecond")
    micro_combined = await sim.connect(f"/stream?streams={TRADE}&timeUnit=MICROSECOND")
    milli = await sim.connect(f"/ws/{TRADE}?timeUnit=MilliSecond")
    sim.hub.publish(TRADE, orjson.dumps(TRADE_EVENT))
    expected = {**TRADE_EVENT, "E": TRADE_EVENT["E"] * 1000, "T": TRADE_EVENT["T"] * 1000}  # type: ignore[operator]
    assert await recv_json(micro) == expected
    assert await recv_json(micro_combined) == {"stream": TRADE, "data": expected}
    assert await recv_json(milli) == TRADE_EVENT


def test_microsecond_conversion_touches_only_time_fields() -> None:
    kline = {"e": "kline", "E": 5, "s": "X", "k": {"t": 1, "T": 2, "f": 100, "L": 200, "i": "1m", "x": False}}
    assert orjson.loads(to_microseconds(orjson.dumps(kline))) == {
        **kline,
        "E": 5000,
        "k": {"t": 1000, "T": 2000, "f": 100, "L": 200, "i": "1m", "x": False},
    }
    ticker = {"e": "24hrTicker", "E": 1, "O": 2, "C": 3, "F": 4, "L": 5}
    assert orjson.loads(to_microseconds(orjson.dumps(ticker))) == {**ticker, "E": 1000, "O": 2000, "C": 3000}
    book = b'{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[]}'
    assert orjson.loads(to_microseconds(book)) == orjson.loads(book)


@pytest.mark.parametrize("unit", ["NANOSECOND", "ms", ""])
async def test_an_invalid_time_unit_is_http_400_with_code_1194(start: Start, unit: str) -> None:
    sim = await start()
    async with sim.session.get(sim.url(f"/ws/{TRADE}?timeUnit={unit}")) as resp:
        assert resp.status == 400
        body = orjson.loads(await resp.read())
    assert body["code"] == -1194
    assert body["msg"].startswith("Invalid value for time unit")


# --------------------------------------------------------------------------- control messages


async def test_subscribe_and_unsubscribe_on_a_bare_ws_connection(start: Start) -> None:
    sim = await start()
    ws = await sim.connect("/ws")
    assert await call(ws, {"method": "SUBSCRIBE", "params": [TRADE, DEPTH], "id": 1}) == {"result": None, "id": 1}
    sim.hub.publish(DEPTH, depth(1))
    assert await recv_json(ws) == orjson.loads(depth(1))  # raw framing on /ws
    assert await call(ws, {"method": "UNSUBSCRIBE", "params": [DEPTH, "never@subscribed"], "id": 312}) == {
        "result": None,
        "id": 312,
    }
    sim.hub.publish(DEPTH, depth(2))  # no longer delivered
    sim.hub.publish(TRADE, b'{"e":"trade"}')
    assert await recv_json(ws) == {"e": "trade"}


async def test_list_subscriptions_in_subscription_order(start: Start) -> None:
    sim = await start()
    ws = await sim.connect(f"/stream?streams={DEPTH}")
    await call(ws, {"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade", TRADE], "id": 1})
    await call(ws, {"method": "UNSUBSCRIBE", "params": [DEPTH], "id": 2})
    assert await call(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3}) == {"result": ["ethusdt@aggTrade", TRADE], "id": 3}


async def test_combined_property_switches_the_framing(start: Start) -> None:
    sim = await start()
    raw = await sim.connect(f"/ws/{TRADE}")
    combined = await sim.connect(f"/stream?streams={TRADE}")
    assert await call(raw, {"method": "GET_PROPERTY", "params": ["combined"], "id": 2}) == {"result": False, "id": 2}
    assert await call(combined, {"method": "GET_PROPERTY", "params": ["combined"], "id": 2}) == {
        "result": True,
        "id": 2,
    }
    assert await call(raw, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}) == {
        "result": None,
        "id": 5,
    }
    assert await call(combined, {"method": "SET_PROPERTY", "params": ["combined", False], "id": 5}) == {
        "result": None,
        "id": 5,
    }
    sim.hub.publish(TRADE, b'{"e":"trade"}')
    assert await recv_json(raw) == {"stream": TRADE, "data": {"e": "trade"}}
    assert await recv_json(combined) == {"e": "trade"}
    assert await call(raw, {"method": "GET_PROPERTY", "params": ["combined"], "id": "x"}) == {"result": True, "id": "x"}


@pytest.mark.parametrize(
    "req_id", [0, 7, -(2**63), 2**63 - 1, "e2a85d9f-07a5-4f94-8d5f-789dc3deb097", "abc123", None, "a" * 36]
)
async def test_request_ids_are_echoed(start: Start, req_id: object) -> None:
    sim = await start()
    ws = await sim.connect("/ws")
    assert await call(ws, {"method": "LIST_SUBSCRIPTIONS", "id": req_id}) == {"result": [], "id": req_id}


VARIANTS = "expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"
BAD_ID = "Invalid request: request ID must be an unsigned integer"


@pytest.mark.parametrize(
    ("request_text", "code", "msg", "req_id"),
    [
        # code 0
        ('{"method":"GET_PROPERTY","params":["compressed"],"id":2}', 0, "Unknown property", 2),
        ('{"method":"SET_PROPERTY","params":["Combined",true],"id":5}', 0, "Unknown property", 5),
        # code 1
        ('{"method":"SET_PROPERTY","params":["combined","true"],"id":5}', 1, "Invalid value type: expected Boolean", 5),
        ('{"method":"SET_PROPERTY","params":["combined",1],"id":5}', 1, "Invalid value type: expected Boolean", 5),
        ('{"method":"SET_PROPERTY","params":["combined"],"id":5}', 1, "Invalid value type: expected Boolean", 5),
        # code 2: property name
        ('{"method":"GET_PROPERTY","params":[1],"id":2}', 2, "Invalid request: property name must be a string", 2),
        ('{"method":"GET_PROPERTY","params":[],"id":2}', 2, "Invalid request: property name must be a string", 2),
        ('{"method":"GET_PROPERTY","id":2}', 2, "Invalid request: property name must be a string", 2),
        # code 2: too many parameters
        ('{"method":"GET_PROPERTY","params":["combined",1],"id":2}', 2, "Invalid request: too many parameters", 2),
        ('{"method":"SET_PROPERTY","params":["combined",true,1],"id":5}', 2, "Invalid request: too many parameters", 5),
        ('{"method":"LIST_SUBSCRIPTIONS","params":["x"],"id":3}', 2, "Invalid request: too many parameters", 3),
        # code 2: id
        ('{"method":"LIST_SUBSCRIPTIONS"}', 2, BAD_ID, None),
        ('{"method":"LIST_SUBSCRIPTIONS","id":true}', 2, BAD_ID, None),
        ('{"method":"LIST_SUBSCRIPTIONS","id":1.5}', 2, BAD_ID, None),
        ('{"method":"LIST_SUBSCRIPTIONS","id":[1]}', 2, BAD_ID, None),
        ('{"method":"LIST_SUBSCRIPTIONS","id":"not alphanumeric!"}', 2, BAD_ID, None),
        ('{"method":"LIST_SUBSCRIPTIONS","id":"' + "a" * 37 + '"}', 2, BAD_ID, None),
        ('{"method":"LIST_SUBSCRIPTIONS","id":9223372036854775808}', 2, BAD_ID, None),
        # code 2: method
        ('{"method":"FOO","id":1}', 2, f"Invalid request: unknown variant `FOO`, {VARIANTS} at line 1 column 15", 1),
        (
            '{"method":"subscribe","params":[],"id":1}',
            2,
            f"Invalid request: unknown variant `subscribe`, {VARIANTS}",
            1,
        ),
        ('{"params":["btcusdt@trade"],"id":1}', 2, "Invalid request: missing field `method` at line 1 column 35", 1),
        ("[1,2]", 2, "Invalid request: invalid type", None),
        # code 2: stream names
        ('{"method":"SUBSCRIBE","params":[1],"id":1}', 2, "Invalid request: invalid type: 1, expected a string", 1),
        ('{"method":"SUBSCRIBE","params":"btcusdt@trade","id":1}', 2, "Invalid request: invalid type", 1),
        ('{"method":"SUBSCRIBE","params":["a/b"],"id":1}', 2, 'Invalid request: invalid stream name "a/b"', 1),
        # code 3
        ('{"method":', 3, "Invalid JSON: expected value at line 1 column 11", None),
        ('{"method":"SUBSCRIBE",\n"params":[x]}', 3, "Invalid JSON: expected value at line 2 column 11", None),
        ("", 3, "Invalid JSON: expected value at line 1 column 1", None),
    ],
)
async def test_control_errors(start: Start, request_text: str, code: int, msg: str, req_id: object) -> None:
    sim = await start()
    ws = await sim.connect(f"/ws/{TRADE}")
    reply = await call(ws, request_text)
    assert set(reply) == {"code", "msg", "id"}
    assert reply["code"] == code
    assert reply["msg"].startswith(msg)
    assert reply["id"] == req_id
    # an error leaves the connection and its subscriptions as they were
    assert await call(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 9}) == {"result": [TRADE], "id": 9}


async def test_1024_streams_per_connection(start: Start) -> None:
    sim = await start()
    ws = await sim.connect("/ws")
    names = [f"sym{i}usdt@trade" for i in range(1024)]
    assert await call(ws, {"method": "SUBSCRIBE", "params": names, "id": 1}) == {"result": None, "id": 1}
    refused = await call(ws, {"method": "SUBSCRIBE", "params": [names[0], "one@more"], "id": 2})
    assert refused["code"] == 2 and refused["id"] == 2
    assert await call(ws, {"method": "SUBSCRIBE", "params": [names[5].upper()], "id": 3}) == {"result": None, "id": 3}
    listed = await call(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 4})
    assert len(listed["result"]) == 1024 and "one@more" not in listed["result"]
    assert not sim.hub.has_subscribers("one@more")


async def test_more_than_1024_streams_in_the_url_is_refused(start: Start) -> None:
    sim = await start()
    ok = await sim.connect("/stream?streams=" + "/".join(f"x{i}" for i in range(1024)))
    assert len((await call(ok, {"method": "LIST_SUBSCRIPTIONS", "id": 1}))["result"]) == 1024
    async with sim.session.get(sim.url("/stream?streams=" + "/".join(f"x{i}" for i in range(1025)))) as resp:
        assert resp.status == 400
        assert orjson.loads(await resp.read())["code"] == 2


def test_subscribe_past_the_limit_changes_nothing() -> None:
    hub = StreamHub(max_streams=2)
    sub = FakeSubscriber()
    hub.open(sub)
    hub.subscribe(sub, ["a@trade"])
    with pytest.raises(TooManyStreams):
        hub.subscribe(sub, ["b@trade", "c@trade"])
    assert hub.subscribed_streams() == {"a@trade"}
    hub.subscribe(sub, ["A@TRADE", "b@trade"])
    assert hub.subscribed_streams() == {"a@trade", "b@trade"}


# --------------------------------------------------------------------------- incoming message limit


async def test_a_sixth_message_within_a_second_disconnects(start: Start) -> None:
    sim = await start()
    ws = await sim.connect("/ws")
    for i in range(5):
        await ws.send_str(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}).decode())
    for i in range(5):
        assert await recv_json(ws) == {"result": [], "id": i}
    await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":5}')
    closed = await recv_close(ws)
    assert closed.data == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert sim.hub.counters["rate_limit_closes"] == 1


async def test_pings_and_pongs_count_towards_the_limit(start: Start) -> None:
    sim = await start()
    ws = await sim.connect("/ws", autoping=False)
    for i in range(3):
        await ws.ping(b"p%d" % i)
        await ws.pong(b"")  # unsolicited pong: allowed, but counted
    answered = [await recv(ws) for _ in range(2)]
    assert [(m.type, m.data) for m in answered] == [(WSMsgType.PONG, b"p0"), (WSMsgType.PONG, b"p1")]
    closed = await recv_close(ws)
    assert closed.data == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert sim.hub.counters["rate_limit_closes"] == 1


# --------------------------------------------------------------------------- keepalive and lifetime

FAST_PINGS = StreamSettings(ping_interval=0.05, pong_timeout=0.3, messages_per_second=1000)


async def test_answered_pings_keep_the_connection_open(start: Start) -> None:
    sim = await start(FAST_PINGS)
    ws = await sim.connect(f"/ws/{TRADE}", autoping=False)
    payloads: list[bytes] = []
    while len(payloads) < 12:  # 12 pings ≈ 0.6 s, twice the pong deadline
        msg = await recv(ws)
        assert msg.type is WSMsgType.PING, msg
        payloads.append(msg.data)
        await ws.pong(msg.data)
    assert len(set(payloads)) == len(payloads)
    sim.hub.publish(TRADE, b'{"e":"trade"}')
    while (msg := await recv(ws)).type is WSMsgType.PING:
        await ws.pong(msg.data)
    assert msg.type is WSMsgType.TEXT and msg.data == '{"e":"trade"}'
    assert sim.hub.counters["pong_timeout_closes"] == 0


async def test_no_pong_within_the_deadline_disconnects(start: Start) -> None:
    sim = await start(FAST_PINGS)
    ws = await sim.connect(f"/ws/{TRADE}", autoping=False)
    loop = asyncio.get_running_loop()
    began = loop.time()
    closed = await recv_close(ws)  # pings arrive and go unanswered
    assert loop.time() - began >= 0.3 - 0.05
    assert closed.data == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert sim.hub.counters["pong_timeout_closes"] == 1


async def test_unsolicited_pongs_are_not_a_keepalive(start: Start) -> None:
    sim = await start(FAST_PINGS)
    ws = await sim.connect(f"/ws/{TRADE}", autoping=False)
    while True:
        msg = await recv(ws)
        if msg.type is WSMsgType.PING:
            await ws.pong(b"")  # not the ping's payload
            continue
        assert msg.type is WSMsgType.CLOSE
        break
    assert sim.hub.counters["pong_timeout_closes"] == 1


async def test_client_pings_are_answered_with_the_same_payload(start: Start) -> None:
    sim = await start()
    ws = await sim.connect("/ws", autoping=False)
    await ws.ping(b"hello")
    msg = await recv(ws)
    assert (msg.type, msg.data) == (WSMsgType.PONG, b"hello")


async def test_connections_are_closed_at_the_end_of_their_lifetime(start: Start) -> None:
    sim = await start(StreamSettings(max_lifetime=0.2))
    ws = await sim.connect(f"/ws/{TRADE}")
    closed = await recv_close(ws)
    assert closed.data == aiohttp.WSCloseCode.GOING_AWAY
    assert sim.hub.counters["lifetime_closes"] == 1


# --------------------------------------------------------------------------- slow consumers


async def connect_without_reading(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that completes the RFC 6455 handshake, then never reads (tiny receive buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), WAIT)
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def test_a_slow_consumer_is_closed_without_stalling_a_fast_one(start: Start) -> None:
    sim = await start(queue_limit=50)
    fast = await sim.connect(f"/ws/{DEPTH}")
    _, slow_writer = await connect_without_reading(sim.port, f"/ws/{DEPTH}")
    assert len(sim.hub.subscribers) == 2
    pad = b"x" * 16_000
    sent = 0
    while sim.hub.counters["slow_consumer_closes"] == 0:
        assert sent < 5_000, "the slow consumer was never closed"
        sent += 1
        sim.hub.publish(DEPTH, b'{"u":%d,"pad":"%s"}' % (sent, pad))
        assert orjson.loads(await recv_text(fast))["u"] == sent  # the fast one gets every event at once
    assert len(sim.hub.subscribers) == 1
    for _ in range(3):
        sent += 1
        sim.hub.publish(DEPTH, b'{"u":%d}' % sent)
        assert orjson.loads(await recv_text(fast))["u"] == sent
    slow_writer.close()


class FakeSubscriber(Subscriber):
    def __init__(self, *, combined: bool = False) -> None:
        super().__init__(combined=combined)
        self.aborted = False
        self.closed_with: tuple[int, str] | None = None

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)

    def abort(self) -> None:
        self.aborted = True


def test_publish_never_waits_for_a_full_queue() -> None:
    hub = StreamHub(queue_limit=2)
    slow, fast = FakeSubscriber(), FakeSubscriber(combined=True)
    for sub in (slow, fast):
        hub.open(sub)
        hub.subscribe(sub, [TRADE])
    for i in range(3):
        hub.publish(TRADE, b"%d" % i)
        fast.take()  # the fast one keeps up
    assert slow.aborted and not fast.aborted
    assert hub.counters["slow_consumer_closes"] == 1
    assert hub.subscribers == (fast,)


def test_combined_frames_are_built_once_per_event() -> None:
    hub = StreamHub()
    subs = [FakeSubscriber(combined=True) for _ in range(3)]
    raw = FakeSubscriber()
    for sub in [*subs, raw]:
        hub.open(sub)
        hub.subscribe(sub, [TRADE])
    payload = orjson.dumps(TRADE_EVENT)
    hub.publish(TRADE, payload)
    frames = [sub.take()[0] for sub in subs]
    assert frames[0] == b'{"stream":"btcusdt@trade","data":' + payload + b"}"
    assert frames[1] is frames[0] and frames[2] is frames[0]
    assert raw.take()[0] is payload


# --------------------------------------------------------------------------- has_subscribers


async def test_has_subscribers_follows_connections_and_subscriptions(start: Start) -> None:
    sim = await start()
    hub = sim.hub
    assert not hub.has_subscribers(TRADE) and hub.subscribed_streams() == frozenset()
    a = await sim.connect(f"/ws/{TRADE}")
    b = await sim.connect(f"/stream?streams={TRADE}/{DEPTH}")
    assert hub.has_subscribers(TRADE) and hub.has_subscribers(DEPTH)
    assert hub.subscribed_streams() == {TRADE, DEPTH}
    await call(b, {"method": "UNSUBSCRIBE", "params": [DEPTH, TRADE], "id": 1})
    assert hub.subscribed_streams() == {TRADE}
    await call(b, {"method": "SUBSCRIBE", "params": [DEPTH], "id": 2})
    assert hub.subscribed_streams() == {TRADE, DEPTH}
    gone = changed(hub)
    await a.close()
    await asyncio.wait_for(gone.wait(), WAIT)
    assert hub.subscribed_streams() == {DEPTH}
    gone = changed(hub)
    await b.close()
    await asyncio.wait_for(gone.wait(), WAIT)
    assert not hub.has_subscribers(DEPTH) and hub.subscribed_streams() == frozenset()


# --------------------------------------------------------------------------- faults


async def test_disconnect_all_drops_every_connection_without_a_close_frame(start: Start) -> None:
    sim = await start()
    clients = [await sim.connect(f"/ws/{TRADE}"), await sim.connect(f"/stream?streams={DEPTH}")]
    assert sim.hub.disconnect_all() == 2
    for ws in clients:
        await recv_dropped(ws)
    assert sim.hub.fault_counters["disconnect_all"] == 1
    assert sim.hub.fault_counters["connections_aborted"] == 2
    assert sim.hub.subscribed_streams() == frozenset()


async def test_disconnect_n_drops_the_oldest_connections(start: Start) -> None:
    sim = await start()
    clients = [await sim.connect(f"/ws/{TRADE}") for _ in range(3)]
    assert sim.hub.disconnect(2) == 2
    for ws in clients[:2]:
        await recv_dropped(ws)
    sim.hub.publish(TRADE, b'{"e":"trade"}')
    assert await recv_json(clients[2]) == {"e": "trade"}
    assert sim.hub.fault_counters["disconnect"] == 1
    assert sim.hub.fault_counters["connections_aborted"] == 2
    assert sim.hub.counters["connections_closed"] == 2


async def test_drop_next_leaves_a_sequence_gap(start: Start) -> None:
    sim = await start()
    ws = await sim.connect(f"/stream?streams={DEPTH}/{TRADE}")
    sim.hub.drop_next(DEPTH, 2)
    for u in range(1, 6):
        sim.hub.publish(DEPTH, depth(u))
    sim.hub.publish(TRADE, b'{"e":"trade"}')  # other streams are untouched
    received = [(await recv_json(ws))["data"].get("u") for _ in range(4)]
    assert received == [3, 4, 5, None]
    assert sim.hub.fault_counters["drop_next"] == 1
    assert sim.hub.fault_counters["events_dropped"] == 2


async def test_reorder_next_swaps_the_next_two_events(start: Start) -> None:
    sim = await start()
    ws = await sim.connect(f"/ws/{DEPTH}")
    sim.hub.reorder_next(DEPTH)
    for u in range(1, 5):
        sim.hub.publish(DEPTH, depth(u))
    assert [(await recv_json(ws))["u"] for _ in range(4)] == [2, 1, 3, 4]
    assert sim.hub.fault_counters["reorder_next"] == 1
    assert sim.hub.fault_counters["events_reordered"] == 2


async def test_stall_holds_one_stream_back_then_delivers_it(start: Start) -> None:
    sim = await start()
    ws = await sim.connect(f"/stream?streams={DEPTH}/{TRADE}")
    sim.hub.stall(DEPTH, 0.2)
    sim.hub.publish(DEPTH, depth(1))
    sim.hub.publish(DEPTH, depth(2))
    sim.hub.publish(TRADE, b'{"e":"trade"}')
    assert (await recv_json(ws))["stream"] == TRADE  # not held
    assert [(await recv_json(ws))["data"]["u"] for _ in range(2)] == [1, 2]  # after the stall, in order
    sim.hub.publish(DEPTH, depth(3))
    assert (await recv_json(ws))["data"]["u"] == 3
    assert sim.hub.fault_counters["stall"] == 1
    assert sim.hub.fault_counters["events_stalled"] == 2


async def test_stall_of_everything_with_drop_discards_what_was_held(start: Start) -> None:
    sim = await start()
    ws = await sim.connect(f"/stream?streams={DEPTH}/{TRADE}")
    sim.hub.stall(None, 0.2, drop=True)
    sim.hub.publish(DEPTH, depth(1))
    sim.hub.publish(TRADE, b'{"e":"trade"}')
    ended = asyncio.Event()
    asyncio.get_running_loop().call_later(0.25, ended.set)  # just after the stall's end
    await asyncio.wait_for(ended.wait(), WAIT)
    sim.hub.publish(DEPTH, depth(2))
    assert await recv_json(ws) == {"stream": DEPTH, "data": orjson.loads(depth(2))}
    assert sim.hub.fault_counters["events_stall_dropped"] == 2


async def test_reset_faults_delivers_what_was_held(start: Start) -> None:
    sim = await start()
    ws = await sim.connect(f"/ws/{DEPTH}")
    sim.hub.stall(None, 60)
    sim.hub.publish(DEPTH, depth(1))
    sim.hub.reset_faults()
    assert (await recv_json(ws))["u"] == 1


async def test_stop_pings_silences_the_control_channel(start: Start) -> None:
    sim = await start(FAST_PINGS)
    ws = await sim.connect(f"/ws/{TRADE}", autoping=False)
    assert (await recv(ws)).type is WSMsgType.PING
    sim.hub.stop_pings()
    sim.hub.publish(TRADE, b'{"e":"trade"}')
    while (msg := await recv(ws)).type is WSMsgType.PING:  # pings already queued go out first
        pass
    assert msg.data == '{"e":"trade"}'
    await ws.ping(b"anyone?")
    with pytest.raises(TimeoutError):  # no ping, and no pong to ours, for 8 ping intervals
        await recv(ws, timeout=0.4)
    assert sim.hub.counters["pong_timeout_closes"] == 0  # nothing outstanding: the server waits too
    sim.hub.resume_pings()
    assert (await recv(ws)).type is WSMsgType.PING
    assert sim.hub.fault_counters["stop_pings"] == 1
    assert sim.hub.fault_counters["pings_skipped"] >= 2


async def test_ignore_pongs_lets_the_server_pong_deadline_fire(start: Start) -> None:
    sim = await start(FAST_PINGS)
    ws = await sim.connect(f"/ws/{TRADE}")  # aiohttp answers every ping
    sim.hub.ignore_pongs()
    closed = await recv_close(ws)
    assert closed.data == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert sim.hub.counters["pong_timeout_closes"] == 1
    assert sim.hub.fault_counters["ignore_pongs"] == 1
    assert sim.hub.fault_counters["pongs_ignored"] >= 1


async def test_server_shutdown_announces_then_closes(start: Start) -> None:
    sim = await start()
    raw = await sim.connect(f"/ws/{TRADE}")
    combined = await sim.connect(f"/stream?streams={TRADE}")
    sim.hub.publish(TRADE, b'{"e":"trade"}')
    assert sim.hub.server_shutdown(grace=0.1) == 2
    assert await recv_json(raw) == {"e": "trade"}  # queued data goes out first
    event = await recv_json(raw)
    assert set(event) == {"e", "E"} and event["e"] == "serverShutdown" and isinstance(event["E"], int)
    assert await recv_json(combined) == {"stream": TRADE, "data": {"e": "trade"}}
    wrapped = await recv_json(combined)
    assert wrapped["stream"] == "!serverShutdown" and wrapped["data"]["e"] == "serverShutdown"
    for ws in (raw, combined):
        assert (await recv_close(ws)).data == aiohttp.WSCloseCode.GOING_AWAY
    assert sim.hub.fault_counters["server_shutdown"] == 1
    assert sim.hub.fault_counters["shutdown_events_sent"] == 2
    assert sim.hub.counters["shutdown_closes"] == 2


# --------------------------------------------------------------------------- counters and shutdown


async def test_counters(start: Start) -> None:
    sim = await start()
    ws = await sim.connect(f"/ws/{TRADE}")
    sim.hub.publish(TRADE, b"{}")
    sim.hub.publish(DEPTH, b"{}")  # no subscriber: not counted
    await recv_text(ws)
    await call(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1})
    assert sim.hub.counters["connections_opened"] == 1
    assert sim.hub.counters["events_published"] == 1
    assert sim.hub.counters["messages_sent"] == 2  # the event and the reply


async def test_app_shutdown_closes_every_connection_cleanly(start: Start) -> None:
    sim = await start()
    clients = [
        await sim.connect(f"/ws/{TRADE}"),
        await sim.connect(f"/stream?streams={TRADE}/{DEPTH}"),
        await sim.connect("/ws", autoping=False),
    ]
    closes = [asyncio.create_task(recv_close(ws)) for ws in clients]
    await asyncio.wait_for(sim.runner.cleanup(), WAIT)
    for task in closes:
        msg = await asyncio.wait_for(task, WAIT)
        assert msg.data == aiohttp.WSCloseCode.GOING_AWAY
    for ws in clients:
        await asyncio.wait_for(ws.close(), WAIT)
    assert sim.hub.counters["connections_opened"] == sim.hub.counters["connections_closed"] == 3
    assert sim.hub.subscribed_streams() == frozenset()
    assert asyncio.all_tasks() == {asyncio.current_task()}
