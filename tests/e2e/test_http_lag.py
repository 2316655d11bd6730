"""The depth lag path end to end: a client that stops reading is noticed once its socket and its
queue are full, gets {"type":"lagged"} and a snapshot with reason "lagged", and continues from
there without a gap; a fast client on the same upstream is never lagged.

The gateway runs with a small GATEWAY_HTTP_WS_BACKLOG, and the stalled client asks for a tiny
receive buffer before connecting. How long the stall must last is computed from those buffers and
the diff rate measured on the fast client; the test waits on the gateway's lagged counter, not on
a clock."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from gateway_auth.tokens import Scope, TokenStore
from gateway_http.streams import SILENT_CLIENT_LIMIT_S
from launcher.system import System
from tests.e2e.conftest import running_system
from tests.e2e.test_http_market_data import ClientBook, bearer, metric, metrics_text, until

pytestmark = pytest.mark.timeout(120)

QUEUE_FRAMES, SEND_BUFFER_BYTES = 16, 4096  # the gateway's GATEWAY_HTTP_WS_BACKLOG for this module
CLIENT_RCVBUF = 4096  # asked for; Linux doubles it, and getsockopt reports what was granted
SYMBOL = "BTCUSDT"
RATE_SAMPLE_DIFFS = 30
DIFFS_AFTER_RESTART = 20
TIMEOUT = aiohttp.ClientTimeout(total=15)
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=15, ws_close=5)
WS_HEADER_BYTES = 4  # a server frame of 126..65535 bytes; smaller ones have 2
# The gateway closes a client it has heard nothing from (not even a pong) for this long: the stalled
# client must start reading (and answer the pings) before then.
HEARTBEAT_CLOSE_S = SILENT_CLIENT_LIMIT_S
READ_MARGIN_S = 3.0


@dataclass(frozen=True)
class LagSystem:
    system: System
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def lag_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LagSystem]:
    root = tmp_path_factory.mktemp("lag")
    store, tokens = TokenStore(), {}
    for name in ("slow", "fast"):
        store, tokens[name] = store.issue(name, frozenset({Scope.READ}))
    store.save(root / "tokens.json")
    env = {
        "GATEWAY_TOKENS_FILE": str(root / "tokens.json"),
        "GATEWAY_HTTP_WS_BACKLOG": f"{QUEUE_FRAMES},{SEND_BUFFER_BYTES}",
    }
    with running_system(root, env, without={"gateway_mcp"}) as system:  # MCP is not under test
        yield LagSystem(system, tokens)


@pytest.fixture
async def http(lag_system: LagSystem) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{lag_system.system.ports.http}", timeout=TIMEOUT) as session:
        yield session


@dataclass
class DiffRate:
    """Diffs the fast client received: how many and how many bytes, over how long."""

    frames: int = 0
    payload_bytes: int = 0
    largest: int = 0
    first_at: float = 0.0
    last_at: float = 0.0

    def add(self, size: int) -> None:
        now = time.monotonic()
        if self.frames == 0:
            self.first_at = now
        self.frames += 1
        self.payload_bytes += size + WS_HEADER_BYTES
        self.largest = max(self.largest, size + WS_HEADER_BYTES)
        self.last_at = now

    def per_second(self) -> tuple[float, float]:
        """(frames, bytes) per second between the first and the last diff."""
        elapsed = self.last_at - self.first_at
        assert self.frames > 1 and elapsed > 0, self
        return (self.frames - 1) / elapsed, (self.payload_bytes - self.largest) / elapsed


def stall_bound_s(rate: DiffRate, client_rcvbuf: int) -> float:
    """How long a client that reads nothing takes at most to overflow its queue, at the measured rate.

    Bytes first fill the client's receive buffer, the gateway's kernel send buffer (Linux grants
    twice SO_SNDBUF) and the transport's buffer (its high-water mark, plus up to one writer_limit
    more, since aiohttp checks for back-pressure only once per writer_limit bytes); then the
    queue takes QUEUE_FRAMES diffs and overflows on the next one.
    """
    frames_per_s, bytes_per_s = rate.per_second()
    buffered = client_rcvbuf + 2 * SEND_BUFFER_BYTES + 2 * SEND_BUFFER_BYTES + rate.largest
    return buffered / bytes_per_s + (QUEUE_FRAMES + 1) / frames_per_s


def open_stalled_client(port: int, token: str) -> tuple[socket.socket, bytes]:
    """A WebSocket upgrade on a blocking socket with a tiny receive buffer; returns what followed the headers."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)  # before connect: it sets the TCP window
    raw.settimeout(10)
    raw.connect(("127.0.0.1", port))
    raw.sendall(
        (
            f"GET /ws/depth/{SYMBOL} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = raw.recv(256)
        assert chunk, f"the gateway closed during the upgrade: {received!r}"
        received += chunk
    headers, _, rest = received.partition(b"\r\n\r\n")
    assert headers.startswith(b"HTTP/1.1 101"), headers
    return raw, rest


class FrameReader:
    """Server-to-client WebSocket frames (unmasked, unfragmented) from a stream; pings are answered."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pending: bytes) -> None:
        self._reader, self._writer, self._pending = reader, writer, pending

    async def _exactly(self, n: int) -> bytes:
        taken, self._pending = self._pending[:n], self._pending[n:]
        return taken + (await self._reader.readexactly(n - len(taken)) if len(taken) < n else b"")

    async def text(self) -> dict[str, Any]:
        while True:
            head = await self._exactly(2)
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(await self._exactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await self._exactly(8), "big")
            payload = await self._exactly(length)
            if opcode == 0x1:
                assert head[0] & 0x80, "a fragmented text frame"
                message = orjson.loads(payload)
                assert isinstance(message, dict)
                return message
            if opcode == 0x9:  # ping: a client must answer with a masked pong
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self._writer.write(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)
                continue
            raise AssertionError(f"unexpected frame opcode {opcode:#x} {payload[:120]!r}")


async def test_a_stalled_depth_client_is_lagged_restarted_and_continuous_while_a_fast_one_is_not(
    http: aiohttp.ClientSession, lag_system: LagSystem
) -> None:
    port, tokens = lag_system.system.ports.http, lag_system.tokens
    fast_book, fast_kinds, rate = ClientBook(), list[str](), DiffRate()
    async with http.ws_connect(f"/ws/depth/{SYMBOL}", headers=bearer(tokens["fast"]), timeout=WS_TIMEOUT) as ws:

        async def fast() -> None:
            async for message in ws:
                body = orjson.loads(message.data)
                if body["type"] == "diff":
                    rate.add(len(message.data))
                fast_kinds.append(body["type"])
                fast_book.on(body)  # asserts U == previous u + 1

        fast_reader = asyncio.create_task(fast())
        raw: socket.socket | None = None
        try:
            await until(lambda: rate.frames >= RATE_SAMPLE_DIFFS or fast_reader.done(), "the fast client's diffs", 30)
            lagged_before = metric(await metrics_text(http), "gateway_http_ws_lagged_total", channel="depth")
            raw, pending = open_stalled_client(port, tokens["slow"])
            granted_rcvbuf = raw.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            bound = stall_bound_s(rate, granted_rcvbuf)
            longest_stall = HEARTBEAT_CLOSE_S - READ_MARGIN_S
            assert bound < longest_stall, f"a stall of up to {bound:.1f} s would outlast the heartbeat"
            stalled_at, fast_diffs_before = time.monotonic(), fast_book.diffs

            async def lagged() -> bool:
                text = await metrics_text(http)
                return metric(text, "gateway_http_ws_lagged_total", channel="depth") > lagged_before

            deadline = stalled_at + min(2 * bound, longest_stall)  # twice the bound: the rate was only sampled
            while not await lagged():
                assert time.monotonic() < deadline, f"no lag within {deadline - stalled_at:.1f} s (bound {bound:.1f} s)"
                assert not fast_reader.done(), fast_reader
                await asyncio.sleep(0.1)  # the scrape interval; the deadline above bounds the wait
            stall_s = time.monotonic() - stalled_at
            assert fast_book.diffs - fast_diffs_before >= 5, "the fast client was held up by the stalled one"

            # Now read the stalled client: old diffs continuous from its initial snapshot, then the restart.
            reader, writer = await asyncio.open_connection(sock=raw)
            frames = FrameReader(reader, writer, pending)
            slow_book, slow_kinds = ClientBook(), list[str]()
            diffs_since_restart = 0
            async with asyncio.timeout(15):
                while "lagged" not in slow_kinds or diffs_since_restart < DIFFS_AFTER_RESTART:
                    body = await frames.text()
                    kind = body["type"] if body["type"] != "snapshot" else f"snapshot:{body['reason']}"
                    if slow_kinds and slow_kinds[-1] == "lagged":
                        assert kind in ("lagged", "snapshot:lagged"), [*slow_kinds[-3:], kind]
                    slow_kinds.append(kind)
                    slow_book.on(body)  # asserts continuity, and that no diff comes while the copy is void
                    if kind == "snapshot:lagged":
                        diffs_since_restart = 0
                    elif kind == "diff":
                        diffs_since_restart += 1
                raw = None  # the stream writer owns and closes it now
                writer.close()
                await writer.wait_closed()
            assert slow_kinds[0] == "snapshot:initial", slow_kinds[:3]
            assert "resync" not in slow_kinds, slow_kinds
            lags_seen = slow_kinds.count("lagged")
            # The counter may count more: a restart still queued is replaced by the next one unseen.
            lagged_total = metric(await metrics_text(http), "gateway_http_ws_lagged_total", channel="depth")
            assert 1 <= lags_seen <= lagged_total - lagged_before, (lags_seen, lagged_total, lagged_before)
            assert not fast_reader.done(), fast_reader
        finally:
            if raw is not None:
                raw.close()
            fast_reader.cancel()
            await asyncio.gather(fast_reader, return_exceptions=True)
    assert "lagged" not in fast_kinds and "resync" not in fast_kinds, fast_kinds
    frames_per_s, bytes_per_s = rate.per_second()
    print(
        f"diffs {frames_per_s:.1f}/s, {bytes_per_s:.0f} B/s; client rcvbuf {granted_rcvbuf} B; "
        f"computed bound {bound:.1f} s; lagged after {stall_s:.1f} s; lagged frames seen {lags_seen}, "
        f"counted {lagged_total - lagged_before:.0f}"
    )


async def test_the_gateway_stops_promptly_and_cleanly_while_a_stalled_client_blocks_its_socket(
    http: aiohttp.ClientSession, lag_system: LagSystem
) -> None:
    """Shutdown closes every client with 1000; one that stopped reading cannot take the close frame,
    so its socket is dropped after a few seconds instead of holding the process past its stop timeout."""
    system, tokens = lag_system.system, lag_system.tokens
    lagged_before = metric(await metrics_text(http), "gateway_http_ws_lagged_total", channel="depth")
    raw, _ = open_stalled_client(system.ports.http, tokens["slow"])
    try:

        async def lagged() -> bool:
            return metric(await metrics_text(http), "gateway_http_ws_lagged_total", channel="depth") > lagged_before

        deadline = time.monotonic() + 45  # the module's small backlog overflows in seconds (see above)
        while not await lagged():  # the gateway's write to this client is now blocked
            assert time.monotonic() < deadline, "the stalled client was never lagged"
            await asyncio.sleep(0.1)
        gateway = system.process("gateway_http")
        started = time.monotonic()
        code = await asyncio.to_thread(gateway.stop, 9.0)  # SIGKILL after 9 s would give -9
        took = time.monotonic() - started
        assert code == 0, f"gateway_http exited with {code} after {took:.1f} s"
        gateway.start()
        await asyncio.to_thread(gateway.wait_ready, 30.0)
    finally:
        raw.close()
