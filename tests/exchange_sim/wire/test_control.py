"""The control API (SIM_CONTROL=on): every fault seen on the wire by a plain aiohttp client written from
the reference, and in GET /control/counters. The simulator runs in-process on 127.0.0.1:0 with its
synthetic market (BNBUSDT), so depth diffs flow every 100 ms. Every wait is bounded."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType, web

from exchange_sim.accounts import DEMO_API_KEY, DEMO_API_SECRET
from exchange_sim.app import create_app
from exchange_sim.config import SimConfig, load_config
from exchange_sim.faults import FaultKind, FaultPlan
from exchange_sim.wire import rest
from exchange_sim.wire.auth import AuthError, KeyRegistry, verify_rest
from service_runtime.config import Address

WAIT = 5.0
DEPTH = "bnbusdt@depth@100ms"


@dataclass
class Sim:
    app: web.Application
    base: str
    session: aiohttp.ClientSession

    @property
    def plan(self) -> FaultPlan:
        return self.app[rest.FAULTS]

    async def post(self, path: str, body: object | None = None) -> tuple[int, Any]:
        data = b"" if body is None else orjson.dumps(body)
        async with self.session.post(self.base + path, data=data, timeout=aiohttp.ClientTimeout(WAIT)) as resp:
            raw = await resp.read()
            return resp.status, (orjson.loads(raw) if resp.content_type == "application/json" else raw)

    async def get(self, path: str) -> tuple[int, Any, Any]:
        async with self.session.get(self.base + path, timeout=aiohttp.ClientTimeout(WAIT)) as resp:
            body = await resp.read()
            return resp.status, (orjson.loads(body) if resp.content_type == "application/json" else body), resp.headers

    async def counters(self) -> dict[str, Any]:
        status, body, _ = await self.get("/control/counters")
        assert status == 200
        return dict(body)

    async def ws(self, path: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        return await asyncio.wait_for(self.session.ws_connect(self.base + path, **kwargs), WAIT)


Start = Callable[..., Awaitable[Sim]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    runners: list[tuple[web.AppRunner, aiohttp.ClientSession]] = []

    async def _start(control: bool = True) -> Sim:
        app = create_app(SimConfig(Address("127.0.0.1", 0), ("BNBUSDT",), 1, control=control))
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        session = aiohttp.ClientSession()
        runners.append((runner, session))
        return Sim(app, f"http://127.0.0.1:{runner.addresses[0][1]}", session)

    yield _start
    for runner, session in runners:
        await session.close()
        await asyncio.wait_for(runner.cleanup(), 3 * WAIT)


@pytest.fixture
async def sim(start: Start) -> Sim:
    return await start()


async def next_event(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type is WSMsgType.TEXT, msg
    event: dict[str, Any] = orjson.loads(msg.data)
    return event


# --------------------------------------------------------------------------- switch and errors


async def test_control_routes_do_not_exist_when_off(start: Start) -> None:
    sim = await start(control=False)
    status, _, _ = await sim.get("/control/counters")
    assert status == 404
    status, _ = await sim.post("/control/rest", {"status": 429})
    assert status == 404
    status, _, _ = await sim.get("/control/depth?symbol=BNBUSDT")
    assert status == 404


def test_setting_parses() -> None:
    assert load_config([], {}).control is False
    assert load_config(["--sim-control", "on"], {}).control is True
    assert load_config([], {"SIM_CONTROL": "on"}).control is True


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/control/rest", {"status": 404}, "status"),
        ("/control/rest", {"status": 429, "count": 0}, "count"),
        ("/control/rest", {"status": 429, "path": "api/v3"}, "path"),
        ("/control/rest", {"status": 500, "body": "xml"}, "body"),
        ("/control/ws/stall", {}, "seconds"),
        ("/control/ws/stall", {"seconds": "1"}, "seconds"),
        ("/control/ws/gap", {}, "symbol"),
        ("/control/ws/disconnect", {"scope": "some"}, "scope"),
        ("/control/order_unknown", {"count": -1}, "count"),
        ("/control/order_slow", {"count": 1}, "hold_seconds"),
        ("/control/order_slow", {"count": 1, "hold_seconds": 0}, "hold_seconds"),
        ("/control/order_slow", {"count": 0, "hold_seconds": 1}, "count"),
        ("/control/clock", {"offset_ms": 1.5}, "offset_ms"),
        ("/control/clock", [1], None),
    ],
)
async def test_bad_requests_name_the_field(sim: Sim, path: str, body: object, field: str | None) -> None:
    status, answer = await sim.post(path, body)
    assert status == 400
    assert answer["field"] == field and answer["error"]


# --------------------------------------------------------------------------- REST faults


async def test_rest_429_then_418_with_headers(sim: Sim) -> None:
    status, _ = await sim.post("/control/rest", {"status": 429, "count": 2, "path": "/api/v3/depth", "retry_after": 7})
    assert status == 200
    status, _, _ = await sim.get("/api/v3/time")
    assert status == 200  # another path
    for _ in range(2):
        status, body, headers = await sim.get("/api/v3/depth?symbol=BNBUSDT")
        assert status == 429
        assert headers["Retry-After"] == "7" and "X-MBX-USED-WEIGHT-1M" in headers
        assert body["code"] == -1003 and body["msg"].startswith("Too much request weight used")
    status, _, _ = await sim.get("/api/v3/depth?symbol=BNBUSDT")
    assert status == 200  # the fault answered its count and disarmed

    await sim.post("/control/rest", {"status": 418, "retry_after": 120})
    before = int(time.time() * 1000)
    status, body, headers = await sim.get("/api/v3/exchangeInfo")
    assert status == 418 and headers["Retry-After"] == "120"
    until = int(body["msg"].split("IP banned until ")[1].split(".")[0])
    assert body["code"] == -1003 and before + 119_000 <= until <= int(time.time() * 1000) + 120_000
    injected = (await sim.counters())["injected"]
    assert (injected["rest_429"], injected["rest_418"]) == (2, 1)


async def test_rest_5xx_bodies(sim: Sim) -> None:
    await sim.post("/control/rest", {"status": 500})
    await sim.post("/control/rest", {"status": 503, "body": "html"})
    await sim.post("/control/rest", {"status": 503, "body": "empty"})
    status, body, _ = await sim.get("/api/v3/ping")
    assert status == 500 and body["code"] == -1006
    status, body, headers = await sim.get("/api/v3/ping")
    assert status == 503 and headers["Content-Type"].startswith("text/html") and b"503" in body
    status, body, _ = await sim.get("/api/v3/ping")
    assert status == 503 and body == b""
    status, body, _ = await sim.get("/api/v3/ping")
    assert status == 200 and body == {}
    injected = (await sim.counters())["injected"]
    assert (injected["rest_500"], injected["rest_503"]) == (1, 2)


async def raw_get(sim: Sim, path: str) -> bytes:
    """Everything the server sends for one GET before closing the connection. (A raw socket: aiohttp's
    client silently retries a GET whose connection drops, which would hide the fault.)"""
    host, port = sim.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        return await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()


async def test_rest_timeout_holds_and_never_answers(sim: Sim) -> None:
    await sim.post("/control/rest", {"status": "timeout", "count": 2, "path": "/api/v3/time", "hold_seconds": 0.3})
    # A client with a shorter timeout gives up...
    with pytest.raises(asyncio.TimeoutError):
        async with sim.session.get(sim.base + "/api/v3/time", timeout=aiohttp.ClientTimeout(total=0.1)) as resp:
            await resp.read()
    # ...and one that waits longer sees the connection dropped without an answer.
    started = time.monotonic()
    assert await raw_get(sim, "/api/v3/time") == b""
    assert time.monotonic() - started >= 0.25
    status, _, _ = await sim.get("/api/v3/time")
    assert status == 200
    assert (await sim.counters())["injected"]["rest_timeout"] == 2


async def test_a_held_request_is_released_at_shutdown(start: Start) -> None:
    sim = await start()
    await sim.post("/control/rest", {"status": "timeout"})  # default hold: far longer than this test
    held = asyncio.create_task(raw_get(sim, "/api/v3/time"))
    for _ in range(int(WAIT / 0.01)):  # until the handler holds the request
        if sim.plan.injected[FaultKind.REST_TIMEOUT]:
            break
        await asyncio.sleep(0.01)
    assert sim.plan.injected[FaultKind.REST_TIMEOUT] == 1
    started = time.monotonic()
    await sim.app.shutdown()  # on_shutdown releases the held handler, which drops the connection
    assert await asyncio.wait_for(held, WAIT) == b""
    assert time.monotonic() - started < 1.0


# --------------------------------------------------------------------------- order unknown, clock


async def test_order_unknown_arms_the_plan(sim: Sim) -> None:
    status, body = await sim.post("/control/order_unknown", {"count": 2})
    assert (status, body) == (200, {"pending": 2})
    assert [sim.plan.take_order_unknown() for _ in range(3)] == [True, True, False]
    assert (await sim.counters())["injected"]["order_unknown"] == 2


async def test_the_venue_book_read_through_control_meets_no_fault_and_pays_no_weight(sim: Sim) -> None:
    status, _ = await sim.post("/control/rest", {"status": 503, "count": 1, "path": "/api/v3/depth"})
    assert status == 200
    _, _, before = await sim.get("/api/v3/time")
    status, book, _ = await sim.get("/control/depth?symbol=BNBUSDT&limit=5")
    assert status == 200 and len(book["bids"]) == 5 and len(book["asks"]) == 5 and book["lastUpdateId"] > 0
    _, _, after = await sim.get("/api/v3/time")
    used = "X-MBX-USED-WEIGHT-1M"
    assert int(after[used]) == int(before[used]) + 1  # /api/v3/time's own weight: the read cost none
    status, _, _ = await sim.get("/api/v3/depth?symbol=BNBUSDT&limit=5")
    assert status == 503  # the fault was still armed for the venue's own clients
    status, error, _ = await sim.get("/control/depth?symbol=NOPEUSDT")
    assert (status, error["code"]) == (400, -1121)


async def test_order_slow_arms_the_plan(sim: Sim) -> None:
    status, body = await sim.post("/control/order_slow", {"count": 2, "hold_seconds": 1.5})
    assert (status, body) == (200, {"count": 2, "hold_seconds": 1.5})
    assert [sim.plan.take_order_slow() for _ in range(3)] == [1.5, 1.5, 0.0]
    assert (await sim.counters())["injected"]["order_slow"] == 2


async def test_clock_shift_moves_server_time_and_fails_old_timestamps(sim: Sim) -> None:
    _, before, _ = await sim.get("/api/v3/time")
    registry = KeyRegistry()
    registry.add_hmac("demoKey", "demoSecret", 1)
    query = f"symbol=BNBUSDT&timestamp={before['serverTime']}&recvWindow=5000"
    signed = query + "&signature=" + hmac.new(b"demoSecret", query.encode(), hashlib.sha256).hexdigest()
    verify_rest(registry, api_key="demoKey", raw_query=signed, now_ms=sim.plan.clock.now_ms())  # fine now

    status, body = await sim.post("/control/clock", {"offset_ms": 60_000})
    assert status == 200 and body["offset_ms"] == 60_000
    _, after, _ = await sim.get("/api/v3/time")
    assert after["serverTime"] - before["serverTime"] >= 60_000
    with pytest.raises(AuthError) as err:
        verify_rest(registry, api_key="demoKey", raw_query=signed, now_ms=sim.plan.clock.now_ms())
    assert err.value.code == -1021

    # The same over the wire: a signed call stamped with the client's (now 60 s behind) clock.
    query = f"timestamp={int(time.time() * 1000)}"
    signature = hmac.new(DEMO_API_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    url = f"{sim.base}/api/v3/account?{query}&signature={signature}"
    async with sim.session.get(
        url, headers={"X-MBX-APIKEY": DEMO_API_KEY}, timeout=aiohttp.ClientTimeout(WAIT)
    ) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == -1021

    await sim.post("/control/reset")
    _, reset, _ = await sim.get("/api/v3/time")
    assert reset["serverTime"] < after["serverTime"]
    query = f"timestamp={int(time.time() * 1000)}"
    signature = hmac.new(DEMO_API_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    url = f"{sim.base}/api/v3/account?{query}&signature={signature}"
    async with sim.session.get(
        url, headers={"X-MBX-APIKEY": DEMO_API_KEY}, timeout=aiohttp.ClientTimeout(WAIT)
    ) as resp:
        assert resp.status == 200
    assert (await sim.counters())["armed"]["clock_shift"] == 1


# --------------------------------------------------------------------------- stream faults


async def test_disconnect_all_and_by_stream(sim: Sim) -> None:
    depth = await sim.ws(f"/ws/{DEPTH}")
    trade = await sim.ws("/stream?streams=bnbusdt@trade")
    status, body = await sim.post("/control/ws/disconnect", {"stream": DEPTH})
    assert (status, body) == (200, {"disconnected": 1})
    msg = await asyncio.wait_for(depth.receive(), WAIT)
    while msg.type is WSMsgType.TEXT:  # frames already on the wire, then the drop (no close frame)
        msg = await asyncio.wait_for(depth.receive(), WAIT)
    assert msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR)
    assert not trade.closed
    _, body = await sim.post("/control/ws/disconnect", {"scope": "all"})
    assert body == {"disconnected": 1}
    msg = await asyncio.wait_for(trade.receive(), WAIT)
    while msg.type is WSMsgType.TEXT:
        msg = await asyncio.wait_for(trade.receive(), WAIT)
    assert msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR)
    counters = await sim.counters()
    assert counters["injected"]["ws_disconnect"] == 2 and counters["hub"]["connections_aborted"] == 2


async def test_gap_skips_one_depth_event(sim: Sim) -> None:
    ws = await sim.ws(f"/ws/{DEPTH}")
    previous = await next_event(ws)
    status, body = await sim.post("/control/ws/gap", {"symbol": "bnbusdt"})
    assert (status, body["streams"]) == (200, [DEPTH])
    gaps = []
    for _ in range(6):
        event = await next_event(ws)
        if event["U"] != previous["u"] + 1:
            gaps.append((previous["u"], event["U"]))
        previous = event
    assert len(gaps) == 1 and gaps[0][1] > gaps[0][0] + 1
    assert (await sim.counters())["injected"]["ws_gap"] == 1
    await ws.close()


async def test_reorder_swaps_two_depth_events(sim: Sim) -> None:
    ws = await sim.ws(f"/ws/{DEPTH}")
    previous = await next_event(ws)
    await sim.post("/control/ws/reorder", {"symbol": "BNBUSDT"})
    backwards = 0
    for _ in range(6):
        event = await next_event(ws)
        backwards += event["u"] < previous["U"]
        previous = event
    assert backwards == 1
    assert (await sim.counters())["injected"]["ws_reorder"] == 1
    await ws.close()


async def test_stall_holds_events_then_delivers_them_in_order(sim: Sim) -> None:
    ws = await sim.ws(f"/ws/{DEPTH}")
    previous = await next_event(ws)
    arrivals = [time.monotonic()]
    await sim.post("/control/ws/stall", {"seconds": 0.6})
    for _ in range(10):
        event = await next_event(ws)
        arrivals.append(time.monotonic())
        assert event["U"] == previous["u"] + 1  # held, not lost
        previous = event
    # Diffs come every 100 ms; the stall shows as one long silence, then the held ones in a burst.
    assert max(b - a for a, b in itertools.pairwise(arrivals)) >= 0.4
    assert (await sim.counters())["injected"]["ws_stall"] >= 3
    await ws.close()


async def test_stop_pings_leaves_client_pings_unanswered(sim: Sim) -> None:
    ws = await sim.ws(f"/ws/{DEPTH}", autoping=False)
    await sim.post("/control/ws/stop_pings")
    await ws.ping(b"first")
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # nothing but data frames during the window
        try:
            msg = await asyncio.wait_for(ws.receive(), deadline - time.monotonic())
        except TimeoutError:
            break
        assert msg.type is WSMsgType.TEXT
    await sim.post("/control/ws/resume_pings")
    await ws.ping(b"second")
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    while msg.type is WSMsgType.TEXT:
        msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert (msg.type, msg.data) == (WSMsgType.PONG, b"second")
    counters = await sim.counters()
    assert counters["injected"]["ws_stop_pings"] == 1 and counters["armed"]["ws_resume_pings"] == 1
    await ws.close()


async def test_server_shutdown_event_then_close(sim: Sim) -> None:
    await sim.post("/control/clock", {"offset_ms": -3_600_000})
    raw = await sim.ws("/ws/bnbusdt@trade")
    combined = await sim.ws("/stream?streams=bnbusdt@trade")
    status, body = await sim.post("/control/ws/server_shutdown", {"grace": 0.2})
    assert (status, body["notified"]) == (200, 2)
    wall = int(time.time() * 1000)
    for ws, wrapped in ((raw, False), (combined, True)):
        event = await next_event(ws)
        while event.get("e", event.get("data", {}).get("e")) == "trade":
            event = await next_event(ws)
        if wrapped:
            assert event["stream"] == "!serverShutdown"
            event = event["data"]
        assert event["e"] == "serverShutdown"
        assert abs(event["E"] - (wall - 3_600_000)) < 60_000  # the simulator's (shifted) clock
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        while msg.type is WSMsgType.TEXT:  # data keeps flowing during the grace period
            msg = await asyncio.wait_for(ws.receive(), WAIT)
        assert msg.type is WSMsgType.CLOSE and msg.data == 1001
    counters = await sim.counters()
    assert counters["injected"]["ws_server_shutdown"] == 2 and counters["hub"]["shutdown_events_sent"] == 2


async def test_user_terminate_calls_the_registered_hooks(sim: Sim) -> None:
    _, body = await sim.post("/control/user/terminate")
    assert body == {"terminated": 0}
    sim.plan.on_user_terminate(lambda: 3)
    _, body = await sim.post("/control/user/terminate")
    assert body == {"terminated": 3}
    counters = await sim.counters()
    assert counters["armed"]["user_terminate"] == 2 and counters["injected"]["user_terminate"] == 3


async def test_reset_disarms_everything(sim: Sim) -> None:
    await sim.post("/control/rest", {"status": 503, "count": 5})
    await sim.post("/control/order_unknown", {"count": 1})
    await sim.post("/control/ws/stop_pings")
    assert (await sim.counters())["pending"]["rest"][0]["count"] == 5
    status, _ = await sim.post("/control/reset")
    assert status == 200
    status, _, _ = await sim.get("/api/v3/ping")
    assert status == 200
    assert not sim.plan.take_order_unknown()
    counters = await sim.counters()
    assert counters["pending"] == {"rest": [], "order_unknown": 0}
    assert counters["hub"]["reset_faults"] == 1
