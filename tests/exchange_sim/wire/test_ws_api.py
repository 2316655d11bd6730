"""The simulator's WebSocket API (§9.1, §9.2, §3.3) seen by a plain client written from the reference:
Ed25519 and HMAC signatures are computed here with `cryptography`/hmac, events are checked field by
field against the engine's own state. Every wait is bounded; nothing sleeps to synchronise."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType, web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange_sim.accounts import AccountDirectory, SimAccount
from exchange_sim.hub import StreamHub
from exchange_sim.matching import MatchingEngine
from exchange_sim.symbols import symbol_setup
from exchange_sim.venue import Venue
from exchange_sim.wire import rest
from exchange_sim.wire.ratelimit import RateLimiter
from exchange_sim.wire.trading import TradingDesk
from exchange_sim.wire.ws_api import WsApiServer, WsApiSettings, add_ws_api_routes
from tests.exchange_sim.wire.test_trading_rest import ACCOUNTS, MAKER, QUIET, TAKER, Sim, start_sim

WAIT = 5.0
ED_PRIVATE = Ed25519PrivateKey.generate()
ED_PEM = (
    ED_PRIVATE.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
ED_KEY = "edKey01"
WS_ACCOUNTS = [*ACCOUNTS, {"api_key": ED_KEY, "ed25519_public_key": ED_PEM, "balances": {"USDT": "500"}}]


def payload(params: dict[str, Any]) -> str:
    """§3.3: every param but signature, sorted by name, name=value joined by '&', no encoding."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")


def ed_signed(params: dict[str, Any]) -> dict[str, Any]:
    return {**params, "signature": base64.b64encode(ED_PRIVATE.sign(payload(params).encode())).decode()}


def hmac_signed(params: dict[str, Any], secret: str) -> dict[str, Any]:
    return {**params, "signature": hmac.new(secret.encode(), payload(params).encode(), hashlib.sha256).hexdigest()}


def now_ms() -> int:
    return int(time.time() * 1000)


class Client:
    """One WS API connection; frames that are not the awaited answer are kept as events."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.answers: dict[object, dict[str, Any]] = {}
        self._seq = 0

    async def _read_one(self) -> None:
        msg = await asyncio.wait_for(self.ws.receive(), WAIT)
        assert msg.type is WSMsgType.TEXT, msg
        frame = orjson.loads(msg.data)
        if "event" in frame:
            self.events.append(frame)
        else:
            self.answers[frame.get("id")] = frame

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._seq += 1
        req_id = f"r{self._seq}"
        body: dict[str, Any] = {"id": req_id, "method": method}
        if params is not None:
            body["params"] = params
        await self.ws.send_str(orjson.dumps(body).decode())
        while req_id not in self.answers:
            await self._read_one()
        return self.answers.pop(req_id)

    async def events_until(self, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + WAIT
        while not done(self.events):
            assert asyncio.get_running_loop().time() < deadline, self.events
            await self._read_one()
        return self.events


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    started, runner = await start_sim(tmp_path, WS_ACCOUNTS)
    try:
        yield started
    finally:
        await started.session.close()
        await asyncio.wait_for(runner.cleanup(), 15)


@pytest.fixture
async def connect(sim: Sim) -> AsyncIterator[Callable[..., Any]]:
    clients: list[aiohttp.ClientWebSocketResponse] = []

    async def _connect(query: str = "") -> Client:
        ws = await asyncio.wait_for(sim.session.ws_connect(f"{sim.base}/ws-api/v3{query}"), WAIT)
        clients.append(ws)
        return Client(ws)

    yield _connect
    for ws in clients:
        await asyncio.wait_for(ws.close(), WAIT)


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"]["e"] + (":" + e["event"]["x"] if e["event"]["e"] == "executionReport" else "") for e in events]


# --------------------------------------------------------------------------- framing and session


async def test_ping_time_framing_and_rate_limits(connect: Callable[..., Any]) -> None:
    client = await connect()
    ping = await client.request("ping")
    assert ping["status"] == 200 and ping["result"] == {}
    (limit,) = ping["rateLimits"]
    assert limit["rateLimitType"] == "REQUEST_WEIGHT" and limit["count"] >= 3  # 2 to connect + 1
    server_time = await client.request("v3/time")
    assert abs(server_time["result"]["serverTime"] - now_ms()) < 5000
    quiet = await connect("?returnRateLimits=false")
    answer = await quiet.request("ping")
    assert "rateLimits" not in answer and answer["result"] == {}
    unknown = await client.request("nope.method")
    assert unknown["status"] == 400 and unknown["error"]["code"] < 0
    await client.ws.send_str("{not json")
    await client._read_one()
    assert client.answers.pop(None)["status"] == 400


async def test_logon_subscribe_and_events_from_placement_to_fill(sim: Sim, connect: Callable[..., Any]) -> None:
    client = await connect()
    logon = await client.request("session.logon", ed_signed({"apiKey": ED_KEY, "timestamp": now_ms()}))
    assert logon["status"] == 200, logon
    assert logon["result"]["apiKey"] == ED_KEY and logon["result"]["userDataStream"] is False
    sub = await client.request("userDataStream.subscribe")
    assert sub["result"] == {"subscriptionId": 0}
    status = await client.request("session.status")
    assert status["result"]["userDataStream"] is True and status["result"]["authorizedSince"] is not None
    again = await client.request("userDataStream.subscribe")
    assert again["error"]["code"] == -2035

    # After logon the signed calls need only a timestamp.
    placed = await client.request(
        "order.place",
        {"symbol": QUIET, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "2", "price": "10",
         "newClientOrderId": "edOrder1", "timestamp": now_ms()},
    )  # fmt: skip
    assert placed["status"] == 200, placed
    order_id = placed["result"]["orderId"]
    assert {r["rateLimitType"] for r in placed["rateLimits"]} == {"REQUEST_WEIGHT", "ORDERS"}
    await sim.limit(MAKER, "SELL", "1", "10")  # two fills, from another account, over REST
    await sim.limit(MAKER, "SELL", "1", "9.5")  # trades at the resting bid's price, 10

    events = await client.events_until(lambda ev: kinds(ev).count("outboundAccountPosition") >= 3)
    assert {e["subscriptionId"] for e in events} == {0}
    assert kinds(events) == [
        "executionReport:NEW",
        "outboundAccountPosition",
        "executionReport:TRADE",
        "outboundAccountPosition",
        "executionReport:TRADE",
        "outboundAccountPosition",
    ]
    new, trade1, trade2 = (e["event"] for e in events if e["event"]["e"] == "executionReport")
    expected_keys = set("EscSofqpPFgCxXrilzLnNTtIwmMOZYQWV") | {"e", "eR"}
    assert expected_keys <= new.keys()
    assert (new["X"], new["c"], new["C"], new["i"], new["z"], new["N"], new["t"]) == (
        "NEW", "edOrder1", "", order_id, "0.00000000", None, -1
    )  # fmt: skip
    assert new["w"] is True and new["q"] == "2.00000000" and new["p"] == "10.00000000"
    assert (trade1["X"], trade1["l"], trade1["z"], trade1["L"], trade1["m"]) == (
        "PARTIALLY_FILLED", "1.00000000", "1.00000000", "10.00000000", True
    )  # fmt: skip
    assert (trade2["X"], trade2["l"], trade2["z"], trade2["Z"]) == ("FILLED", "1.00000000", "2.00000000", "20.00000000")
    assert trade1["N"] == "TST" and trade1["n"] == "0.00100000" and trade2["t"] == trade1["t"] + 1
    assert trade1["I"] > new["I"] and trade2["E"] >= trade1["E"]
    last_position = {b["a"]: (b["f"], b["l"]) for b in events[-1]["event"]["B"]}
    free, locked = sim.balance((ED_KEY, ""), "USDT")
    assert last_position["USDT"] == (f"{free:f}", f"{locked:f}") == ("480.00000000", "0.00000000")
    assert last_position["TST"] == ("1.99800000", "0.00000000")

    logout = await client.request("session.logout")
    assert logout["result"]["apiKey"] is None and logout["result"]["userDataStream"] is False
    terminated = client.events[-1]
    assert terminated["subscriptionId"] == 0 and terminated["event"]["e"] == "eventStreamTerminated"


async def test_subscribe_signature_hmac_ws_orders_and_unsubscribe(sim: Sim, connect: Callable[..., Any]) -> None:
    client = await connect()
    refused = await client.request("session.logon", hmac_signed({"apiKey": TAKER[0], "timestamp": now_ms()}, TAKER[1]))
    assert (refused["status"], refused["error"]["code"]) == (401, -2015)  # logon is Ed25519 only
    no_session = await client.request("userDataStream.subscribe")
    assert no_session["status"] == 401
    bad = await client.request(
        "userDataStream.subscribe.signature", hmac_signed({"apiKey": TAKER[0], "timestamp": now_ms()}, "wrong")
    )
    assert (bad["status"], bad["error"]["code"]) == (400, -1022)
    sub = await client.request(
        "userDataStream.subscribe.signature", hmac_signed({"apiKey": TAKER[0], "timestamp": now_ms()}, TAKER[1])
    )
    assert sub["result"] == {"subscriptionId": 0}, sub
    maker_sub = await client.request(
        "userDataStream.subscribe.signature", hmac_signed({"apiKey": MAKER[0], "timestamp": now_ms()}, MAKER[1])
    )
    assert maker_sub["result"] == {"subscriptionId": 1}
    listed = await client.request("session.subscriptions")
    assert listed["result"] == [{"subscriptionId": 0}, {"subscriptionId": 1}]

    await sim.limit(MAKER, "SELL", "3", "10")
    # JSON numbers keep their text in the signature payload (§3.3).
    market = await client.request(
        "order.place",
        hmac_signed({"apiKey": TAKER[0], "symbol": QUIET, "side": "BUY", "type": "MARKET", "quantity": 1.5,
                     "timestamp": now_ms()}, TAKER[1]),
    )  # fmt: skip
    assert market["status"] == 200, market
    assert market["result"]["status"] == "FILLED" and market["result"]["executedQty"] == "1.50000000"
    events = await client.events_until(
        lambda ev: (
            sum(1 for e in ev if e["subscriptionId"] == 0 and e["event"]["e"] == "outboundAccountPosition") >= 1
            and sum(1 for e in ev if e["subscriptionId"] == 1 and e["event"]["e"] == "outboundAccountPosition") >= 2
        )
    )
    taker_events = [e["event"] for e in events if e["subscriptionId"] == 0]
    assert [(e["e"], e.get("x"), e.get("X")) for e in taker_events] == [
        ("executionReport", "NEW", "NEW"),
        ("executionReport", "TRADE", "FILLED"),
        ("outboundAccountPosition", None, None),
    ]
    assert taker_events[1]["z"] == "1.50000000" and taker_events[1]["m"] is False
    maker_trades = [e["event"] for e in events if e["subscriptionId"] == 1 and e["event"].get("x") == "TRADE"]
    assert [(t["X"], t["z"]) for t in maker_trades] == [("PARTIALLY_FILLED", "1.50000000")]

    status = await client.request(
        "order.status",
        hmac_signed({"apiKey": TAKER[0], "symbol": QUIET, "orderId": market["result"]["orderId"],
                     "timestamp": now_ms()}, TAKER[1]),
    )  # fmt: skip
    assert status["result"]["status"] == "FILLED"
    account = await client.request("account.status", hmac_signed({"apiKey": TAKER[0], "timestamp": now_ms()}, TAKER[1]))
    usdt = next(b for b in account["result"]["balances"] if b["asset"] == "USDT")
    assert usdt == {"asset": "USDT", "free": "985.00000000", "locked": "0.00000000"}

    gone = await client.request("userDataStream.unsubscribe", {"subscriptionId": 0})
    assert gone["status"] == 200 and gone["result"] == {}
    assert client.events[-1] == {"subscriptionId": 0, "event": {"e": "eventStreamTerminated", "E": pytest.approx(
        now_ms(), abs=5000)}}  # fmt: skip
    twice = await client.request("userDataStream.unsubscribe", {"subscriptionId": 0})
    assert twice["error"]["code"] == -2036
    count = len(client.events)
    await sim.limit(TAKER, "BUY", "1", "5")  # no longer subscribed: no event for the taker
    rest_all = await client.request("userDataStream.unsubscribe")
    assert rest_all["result"] == {}
    assert [e["subscriptionId"] for e in client.events[count:]] == [1]
    assert client.events[-1]["event"]["e"] == "eventStreamTerminated"
    assert sim.desk.accounts.listeners(1) == 0


# --------------------------------------------------------------------------- keepalive and slow consumers


@pytest.fixture
async def small_server() -> AsyncIterator[tuple[str, WsApiServer]]:
    """A bare WS API (no synthetic market) with short keepalive timers and a tiny send queue."""
    spec = symbol_setup(QUIET)[0]
    engine = MatchingEngine([spec])
    venue = Venue(engine, StreamHub())
    accounts = AccountDirectory(engine)
    accounts.open(SimAccount(api_key=TAKER[0], balances={"USDT": Decimal(1000)}, hmac_secret=TAKER[1]))
    desk = TradingDesk(venue, RateLimiter(), accounts)
    app = web.Application()
    app[rest.LIMITER] = desk.limiter
    server = add_ws_api_routes(app, desk, settings=WsApiSettings(ping_interval=0.2, pong_timeout=0.4, queue_limit=20))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}", server
    finally:
        await asyncio.wait_for(runner.cleanup(), 15)


async def test_ping_pong_keepalive(small_server: tuple[str, WsApiServer]) -> None:
    address, _ = small_server
    async with aiohttp.ClientSession() as session:
        answering = await session.ws_connect(f"http://{address}/ws-api/v3", autoping=False)
        for _ in range(4):  # 4 pings, 0.2 s apart: well past the 0.4 s pong deadline
            ping = await asyncio.wait_for(answering.receive(), WAIT)
            assert ping.type is WSMsgType.PING and abs(int(ping.data.split(b".")[0]) - now_ms()) < 5000
            await answering.pong(ping.data)  # the same payload (§7.1)
        await answering.send_str('{"id":1,"method":"ping"}')
        while (msg := await asyncio.wait_for(answering.receive(), WAIT)).type is WSMsgType.PING:
            await answering.pong(msg.data)
        assert orjson.loads(msg.data)["result"] == {}  # still open
        await answering.close()

        silent = await session.ws_connect(f"http://{address}/ws-api/v3", autoping=False)
        while (msg := await asyncio.wait_for(silent.receive(), WAIT)).type is WSMsgType.PING:
            pass  # never answered
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        assert silent.close_code == 1008
        await silent.close()


async def test_slow_consumer_is_dropped(small_server: tuple[str, WsApiServer]) -> None:
    """A client that sends requests but never reads: its send queue fills and the server drops it."""
    address, server = small_server
    host, port = address.split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window: the server's writes stall
    sock.connect((host, int(port)))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    try:
        key = base64.b64encode(b"0123456789abcdef").decode()
        writer.write(
            f"GET /ws-api/v3 HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        request = orjson.dumps({"id": "x" * 36, "method": "time"})
        frame = bytes((0x81, 0x80 | len(request))) + b"\0\0\0\0" + request  # masked with a zero key
        deadline = asyncio.get_running_loop().time() + WAIT
        while server.slow_consumer_closes == 0:
            assert asyncio.get_running_loop().time() < deadline, "never dropped"
            try:
                writer.write(frame * 100)
                await asyncio.wait_for(writer.drain(), 0.5)
            except (ConnectionError, TimeoutError):
                await asyncio.sleep(0)  # let the server's tasks run; the loop condition decides
        assert not server.connections or all(conn.pending <= 20 for conn in server.connections)
    finally:
        writer.close()
