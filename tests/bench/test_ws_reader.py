"""The native WebSocket load client of the fan-out bench (bench/ws_reader.c), against a scripted server.

The server speaks raw WebSocket over asyncio streams, so the test decides exactly which bytes go out:
frames of all three length encodings, written in small pieces so that frames span reads, a ping,
a close; and an upgrade that is refused.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from bench import ws_reader
from gateway_http.streams import text_frame

pytestmark = pytest.mark.skipif(ws_reader.compiler() is None, reason="the native client needs gcc")

TOKEN = "tok-123"
STEP_S = 10.0  # every wait on the client or the server


class ScriptedServer:
    """Upgrades /ws/feed (refuses anything else with 401), sends one frame before the window opens,
    then, once `go` is set, the script's frames."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.pong = asyncio.get_running_loop().create_future()
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(request)
        if not request.startswith(b"GET /ws/feed ") or f"Authorization: Bearer {TOKEN}".encode() not in request:
            writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        writer.write(text_frame(b'{"type":"snapshot","lastUpdateId":4}'))  # before the window: not recorded
        await writer.drain()
        await self.go.wait()
        small = (
            text_frame(b'{"type":"lagged"}')
            + text_frame(b'{"type":"bookTicker","s":"BTCUSDT","u":5,"b":"1.5"}')
            + text_frame(b'{"type":"diff","U":9,"u":10,"E":123,"b":[],"a":[]}')
        )
        for at in range(0, len(small), 7):  # frames and their headers split over many segments
            writer.write(small[at : at + 7])
            await writer.drain()
        medium = text_frame(b'{"type":"diff","U":11,"u":11,"E":-1,"pad":"' + b"m" * 300 + b'"}')  # 16-bit length
        large = text_frame(b'{"type":"diff","U":12,"u":12,"pad":"' + b"x" * 70_000 + b'"}')  # 64-bit length
        for frame in (medium, large):
            for at in range(0, len(frame), 4096):
                writer.write(frame[at : at + 4096])
                await writer.drain()
        writer.write(bytes((0x89, 2)) + b"hi")  # ping
        await writer.drain()
        pong = await reader.readexactly(2 + 4 + 2)
        self.pong.set_result(pong)
        writer.write(bytes((0x88, 2)) + (1008).to_bytes(2, "big"))  # close, code 1008
        await writer.drain()
        await reader.read()  # the client closes its end
        writer.close()


async def line(stream: asyncio.StreamReader) -> dict[str, object]:
    text = await asyncio.wait_for(stream.readline(), STEP_S)
    assert text, "the client exited early"
    message: dict[str, object] = json.loads(text)
    return message


async def test_records_the_window_frames_answers_pings_and_counts_closes_and_failures(tmp_path: Path) -> None:
    server = ScriptedServer()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    out = tmp_path / "records.bin"
    argv = ws_reader.command(ws_reader.build(tmp_path), port, TOKEN, [("/ws/feed", 7), ("/ws/other", 3)], 5.0, out)
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        ready = await line(proc.stdout)
        assert ready == {"ready": {"live": 1, "failed": {"ConnectionError": 1}}}
        start = time.time()
        end = start + 3.0
        proc.stdin.write(json.dumps({"start": start, "end": end}).encode() + b"\n")
        await proc.stdin.drain()
        server.go.set()
        pong = await asyncio.wait_for(server.pong, STEP_S)
        assert pong[:2] == bytes((0x8A, 0x80 | 2)) and pong[2:] == bytes(4) + b"hi"  # masked, key 0
        result = await line(proc.stdout)
        assert await asyncio.wait_for(proc.wait(), STEP_S) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        listener.close()
        await listener.wait_closed()

    assert result == {"result": {"kinds": {"lagged": 1}, "closes": {"1008": 1}}}
    records = ws_reader.load(out)
    assert records["sym"].tolist() == [7, 7, 7, 7]
    assert records["u"].tolist() == [5, 10, 11, 12]
    assert records["e"].tolist() == [0, 123, -1, 0]
    assert all(start <= t < end for t in records["t"].tolist())
    assert records["frames"].tolist() == [5, 0]  # the refused client got none
    assert all(b"Sec-WebSocket-Version: 13" in r for r in server.requests)


def test_load_refuses_a_truncated_file(tmp_path: Path) -> None:
    raw = tmp_path / "short.bin"
    raw.write_bytes((2).to_bytes(8, "little") + (1).to_bytes(8, "little") + bytes(8 * 4))
    with pytest.raises(ValueError, match="expected 88 for 2 records of 1 clients"):
        ws_reader.load(raw)
