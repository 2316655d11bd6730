"""The soak's load: WebSocket clients through gateway_http (depth, ticker, user) and REST and MCP pollers.

Every client reconnects after a break (the gateway and the provider are restarted mid-run) and
counts what it saw; none of them raises on a protocol violation, they count it for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from soak.auditor import AuditedBook
from soak.user_audit import UserView

WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=30, ws_close=5)
RECONNECT_MAX_S = 2.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class DepthClient(AuditedBook):
    """A /ws/depth client: rebuilds the book, checks U == previous u + 1 and the resync protocol."""

    def __init__(self, symbol: str, token: str, *, audited: bool) -> None:
        super().__init__(symbol)
        self.book.keep_history = self.book.track_levels = audited
        self.token = token
        self.frames = 0
        self.connects = 0
        self.notices = 0  # resync and lagged frames
        self.lagged = 0
        self.snapshots_not_in_sync = 0
        self.diffs_while_void = 0  # after a notice and before its snapshot: a protocol violation

    async def run(self, http: aiohttp.ClientSession) -> None:
        backoff = 0.1
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.ws_connect(
                    f"/ws/depth/{self.symbol}",
                    params={"limit": "1000" if self.book.keep_history else "100"},
                    headers=bearer(self.token),
                    timeout=WS_TIMEOUT,
                ) as ws:
                    self.connects += 1
                    backoff = 0.1
                    async for message in ws:
                        if message.type is aiohttp.WSMsgType.TEXT:
                            self.on(orjson.loads(message.data))
            self.mark_void()  # the connection ended: the client knows its copy is void
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    def on(self, frame: dict[str, Any]) -> None:
        self.frames += 1
        kind = frame.get("type")
        if kind == "snapshot":
            if frame.get("inSync") is True:
                self.book.snapshot(frame["bids"], frame["asks"], frame["lastUpdateId"], str(frame.get("reason", "")))
            else:
                self.snapshots_not_in_sync += 1
                self.mark_void()
        elif kind == "diff":
            if not self.book.valid:
                self.diffs_while_void += 1
            elif not self.book.diff(frame["U"], frame["u"], frame["b"], frame["a"]):
                self.continuity_breaks += 1  # served as continuous, it was not: silently wrong
        elif kind in ("resync", "lagged"):
            self.notices += 1
            self.lagged += kind == "lagged"
            self.mark_void()
        self.progress.set()


class SlowDepthClient(DepthClient):
    """A depth client on a consumer that cannot keep up: it reads one frame every `pause_s` from a
    socket with a tiny receive buffer, so its backlog is held by the gateway rather than absorbed by
    loopback's large kernel buffers, and the gateway must tell it so (lagged, or a close) while it
    never delays the other clients."""

    RECEIVE_BUFFER = 4096

    def __init__(self, symbol: str, token: str, *, pause_s: float) -> None:
        super().__init__(symbol, token, audited=False)
        self.pause_s = pause_s
        self.closes: Counter[str] = Counter()  # how the gateway ended its connections, by close code

    async def run_slow(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.1
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RECEIVE_BUFFER)  # before connect: sets the window
            sock.setblocking(False)
            opened = False
            try:
                async with asyncio.timeout(10):  # not wait_for: it can swallow a cancellation on 3.11
                    await loop.sock_connect(sock, (host, port))
                async with ws_connect(
                    f"ws://{host}:{port}/ws/depth/{self.symbol}?limit=100",
                    sock=sock,
                    additional_headers=bearer(self.token),
                    compression=None,
                    max_queue=1,  # read no further ahead than the application
                    ping_interval=None,
                    open_timeout=10,
                ) as ws:
                    self.connects += 1
                    opened, backoff = True, 0.1
                    async for data in ws:
                        self.on(orjson.loads(data))
                        await asyncio.sleep(self.pause_s)
            except ConnectionClosed as closed:
                self.closes[f"close {closed.rcvd.code}" if closed.rcvd else "closed without a close frame"] += 1
            except InvalidStatus as refused:
                self.closes[f"refused: HTTP {refused.response.status_code}"] += 1
            except (OSError, TimeoutError, InvalidHandshake) as error:
                self.closes[f"{'dropped' if opened else 'connect failed'}: {type(error).__name__}"] += 1
            finally:
                sock.close()
            self.mark_void()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)


class UserClient:
    """A /ws/user client (account scope): feeds what it sees into a `UserView` for the user audit."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.view = UserView()
        self.connects = 0
        self.frames = 0

    async def run(self, http: aiohttp.ClientSession) -> None:
        backoff = 0.1
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.ws_connect("/ws/user", headers=bearer(self.token), timeout=WS_TIMEOUT) as ws:
                    self.connects += 1
                    backoff = 0.1
                    async for message in ws:
                        if message.type is aiohttp.WSMsgType.TEXT:
                            self.frames += 1
                            self.view.on(orjson.loads(message.data), time.monotonic())
            self.view.doubt(time.monotonic())  # the connection ended: events may be missing from here
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)


class TickerClient:
    """A /ws/ticker or /ws/bookTicker client: counts frames, gap notices and reconnects."""

    def __init__(self, channel: str, symbol: str, token: str) -> None:
        self.channel, self.symbol, self.token = channel, symbol, token
        self.frames = 0
        self.gaps = 0
        self.connects = 0

    async def run(self, http: aiohttp.ClientSession) -> None:
        backoff = 0.1
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.ws_connect(
                    f"/ws/{self.channel}/{self.symbol}", headers=bearer(self.token), timeout=WS_TIMEOUT
                ) as ws:
                    self.connects += 1
                    backoff = 0.1
                    async for message in ws:
                        if message.type is aiohttp.WSMsgType.TEXT:
                            self.frames += 1
                            self.gaps += b'"type":"gap"' in message.data.encode()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic time the request started
    latency_s: float
    ok: bool


@dataclass
class Poller:
    """Polls one REST or MCP endpoint; keeps every (time, latency, ok) sample."""

    name: str
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=200_000))

    def record(self, started: float, ok: bool) -> None:
        self.samples.append(Sample(started, time.monotonic() - started, ok))


async def rest_poll(poller: Poller, http: aiohttp.ClientSession, token: str, symbols: list[str], pause: float) -> None:
    """GET /api/v1/depth and /api/v1/ticker/price through the gateway, round-robin over symbols."""
    n = 0
    while True:
        symbol = symbols[n % len(symbols)]
        path, params = (
            ("/api/v1/depth", {"symbol": symbol, "limit": "5"})
            if n % 2 == 0
            else ("/api/v1/ticker/price", {"symbol": symbol})
        )
        n += 1
        started = time.monotonic()
        ok = False
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(path, params=params, headers=bearer(token)) as response:
                await response.read()
                ok = response.status == 200
        poller.record(started, ok)
        await asyncio.sleep(pause)


MCP_ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MCP_PROTOCOL = "2025-06-18"


async def _mcp_session(http: aiohttp.ClientSession, url: str, token: str) -> dict[str, str]:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": MCP_PROTOCOL, "capabilities": {}, "clientInfo": {"name": "soak", "version": "1"}},
    }
    headers = {**MCP_ACCEPT, **bearer(token)}
    async with http.post(url, json=init, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise aiohttp.ClientResponseError(response.request_info, (), status=response.status)
        session = {
            **headers,
            "Mcp-Session-Id": response.headers["Mcp-Session-Id"],
            "MCP-Protocol-Version": MCP_PROTOCOL,
        }
    async with http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session) as r:
        await r.read()
    return session


async def mcp_poll(poller: Poller, http: aiohttp.ClientSession, url: str, token: str, symbols: list[str]) -> None:
    """tools/call get_order_book_summary over one MCP session, reopened when it fails."""
    session: dict[str, str] | None = None
    n = 0
    while True:
        started = time.monotonic()
        ok = False
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, KeyError):
            if session is None:
                session = await _mcp_session(http, url, token)
            call = {
                "jsonrpc": "2.0",
                "id": n + 2,
                "method": "tools/call",
                "params": {"name": "get_order_book_summary", "arguments": {"symbol": symbols[n % len(symbols)]}},
            }
            async with http.post(url, json=call, headers=session) as response:
                body = await response.read()
                ok = response.status == 200 and b'"result"' in body and b'"isError":true' not in body
                if response.status != 200:
                    session = None
        n += 1
        poller.record(started, ok)
        await asyncio.sleep(0.5)
