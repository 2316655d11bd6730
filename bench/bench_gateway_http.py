"""gateway_http throughput and latency (issue #7): REST requests/s, WebSocket fan-out, end-to-end latency.

Run from the repo root:  .venv/bin/python bench/bench_gateway_http.py [--quick] [--parts rest,fanout]

Simulator, provider and gateway_http run as real processes (`launcher.system`, free loopback ports,
a read-scope bearer token, the per-token rate limit off and the WebSocket cap raised for the load).
Every load generator and baseline runs in processes of its own (this script with `--worker ROLE`,
under uvloop; the fan-out's WebSocket clients are, where gcc is found, the native client
bench/ws_reader.c, so that reading thousands of sockets takes little of the cores the gateway
needs); they measure over one wall-clock window given by the parent, which samples every
process's CPU (servers and clients) from /proc over that window (mean, peak per 0.2 s, and time
its main thread waited for a core) and says what limits the figure. Other work on the machine
shows as "machine" CPU beyond these processes.

1. REST: `GET /api/v1/ticker/price?symbol=BTCUSDT` at 64 connections (keep-alive, one request in
   flight each; a minimal HTTP/1.1 client on asyncio protocols, so the client stays light),
   against (a) a bare aiohttp app in its own process answering the same JSON body with no gRPC call
   and (b) the gRPC call the route makes, MarketData/GetTickerPrice, straight to the provider at 64
   calls in flight. A gRPC StreamTicker for BTCUSDT is held open throughout, so the provider
   answers from its live ticker (without a ticker listener every call would be a venue REST call).
   Targets interleaved in rounds.
2. WebSocket fan-out to N clients: depth@100ms (`/ws/depth/{symbol}`) spread over synthetic
   symbols, and bookTicker (`/ws/bookTicker/BTCUSDT`) of the recorded BTCUSDT session replayed by
   the simulator at its recorded pace (~80 events/s on average, in bursts: the fastest stream the
   simulator offers; its synthetic market is fixed at 40 book operations/s per symbol, so a
   depth@100ms stream carries ~10 diffs/s and no SIM_* setting raises that).
   Baseline: a bare gRPC client of the provider holding the stream the gateway's upstream holds
   (StreamDepth limit 1000 / StreamBookTicker); for the same event (symbol and update id u),
   added latency = WS client's receive time - the gRPC client's (time.time() in each process).
3. End to end (depth runs): receive time - the diff's "E". The simulator sets E to its market
   tick's clock reading, taken before that tick's order flow is generated and the diffs sent, so
   E is slightly earlier than the emit (and truncated to the ms). A raw WebSocket client of the
   simulator itself is measured beside the gRPC and gateway clients to show that floor.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Worker processes are started with fork+exec while gRPC threads run: its fork handlers only add noise.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import aiohttp  # noqa: E402
import grpc  # noqa: E402
import numpy as np  # noqa: E402
import orjson  # noqa: E402
import uvloop  # noqa: E402
from aiohttp import web  # noqa: E402
from binance.provider.v1 import common_pb2 as common  # noqa: E402
from binance.provider.v1 import market_data_pb2 as md  # noqa: E402
from binance.provider.v1 import market_data_pb2_grpc as md_grpc  # noqa: E402
from numpy.typing import NDArray  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from bench import ws_reader  # noqa: E402
from gateway_auth.tokens import Scope, TokenStore  # noqa: E402
from launcher.processes import ManagedProcess, child_pids, free_port  # noqa: E402
from launcher.system import Ports, System, build_system  # noqa: E402
from service_runtime.lifecycle import wait_for_stop_signal  # noqa: E402

REST_SYMBOL = "BTCUSDT"
REST_PATH = f"/api/v1/ticker/price?symbol={REST_SYMBOL}"
REPLAY_SYMBOL = "BTCUSDT"
RECORDED_BTCUSDT = ROOT.parent / "shared" / "data" / "binance-recorded" / "hftbacktest_spot_btcusdt_20240808.gz"
RECORDED_SECONDS = 346.0  # the file's span: its replay (from the first subscription) must cover the bookTicker runs
UPSTREAM_DEPTH_LEVELS = 1000  # what gateway_http.streams asks the provider for; the baseline asks the same
SAMPLE_S = 0.2  # CPU sampling slice (the clock ticks at 100 Hz: 5 % resolution)
SATURATED_CORE = 0.85  # a single-threaded process at or above this share of one core is the limit
STARVED_SHARE = 0.10  # an event loop that waited this share of the window for a CPU was slowed by contention
READY_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 30.0  # one WebSocket handshake
RESULT_TIMEOUT_S = 60.0
KEY_SHIFT = 40  # event key = symbol index << 40 | update id (ids stay far below 2**40 here)
GATEWAY_ENV = {
    "GATEWAY_HTTP_RATE_LIMIT": "off",  # 20 req/s per token by default: the bench measures the gateway, not the limiter
    "GATEWAY_HTTP_MAX_WS_CLIENTS": "8192,8192",  # default 4096 in all, 1024 per token
}


# --------------------------------------------------------------------------- measuring helpers


def pct(values: NDArray[Any] | Sequence[float], q: float) -> float:
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if len(ordered) == 0:
        return float("nan")
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * q))])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine so far (every core, every process)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_delay_seconds(pid: int) -> float:
    """Time the process's main thread (the event loop) spent runnable but waiting for a CPU."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


class CpuWindow:
    """CPU of named processes (and of the machine) over a window, in cores: the mean, the peak over
    `SAMPLE_S` slices (a process can saturate during bursts yet average well below a core), and the
    share of the window its main thread waited for a CPU (contention from everything else)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self.cores: dict[str, float] = {}
        self.peaks: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.waited: dict[str, float] = {}
        self.machine = 0.0

    def _read(self) -> tuple[dict[str, float], dict[str, float], float]:
        cpu = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        delay = {name: run_delay_seconds(pid) for name, pid in self._pids.items()}
        return cpu, delay, machine_busy_seconds()

    async def sample(self, start: float, end: float) -> None:
        await sleep_until(start)
        first = last = self._read()
        t_first = t_last = time.monotonic()
        while time.time() < end:
            await asyncio.sleep(min(SAMPLE_S, max(0.0, end - time.time())))
            now, t_now = self._read(), time.monotonic()
            if t_now - t_last >= SAMPLE_S / 2:  # a short last slice would make a coarse peak
                for name in self.peaks:
                    self.peaks[name] = max(self.peaks[name], (now[0][name] - last[0][name]) / (t_now - t_last))
            last, t_last = now, t_now
        elapsed = max(1e-3, t_last - t_first)
        self.cores = {name: (last[0][name] - first[0][name]) / elapsed for name in self._pids}
        self.waited = {name: (last[1][name] - first[1][name]) / elapsed for name in self._pids}
        self.machine = (last[2] - first[2]) / elapsed


CPU_LEGEND = f"mean; peak over {SAMPLE_S} s; share of the window its main thread waited for a core"


def fmt_cores(window: CpuWindow) -> str:
    return ", ".join(
        f"{name} {mean:.2f} (peak {window.peaks[name]:.2f}, waited {window.waited[name]:.0%})"
        for name, mean in window.cores.items()
    )


# --------------------------------------------------------------------------- worker processes
#
# A worker prints one JSON line {"ready": ...} once connected, reads one line {"start", "end"}
# (wall-clock seconds) from stdin, measures in that window and prints one line {"result": ...}.
# Bulky per-event data goes to an .npz file named in its config.


class Worker:
    """The parent's handle on one worker process."""

    def __init__(self, name: str, role: str, config: dict[str, Any], command: Sequence[str] = ()) -> None:
        self.name = name  # in the CPU figures
        self.role = role
        # A program of its own speaking the same protocol (the native WebSocket client), else this script.
        self.command = list(command) or [
            sys.executable,
            "-m",
            "bench.bench_gateway_http",
            "--worker",
            role,
            json.dumps(config),
        ]
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

    async def _line(self, key: str, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            code = await asyncio.wait_for(self.proc.wait(), 5)
            raise RuntimeError(f"{self.role} worker exited with {code} before sending {key!r}")
        message: dict[str, Any] = json.loads(line)[key]
        return message

    async def ready(self, timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
        return await self._line("ready", timeout)

    def go(self, start: float, end: float) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"start": start, "end": end}).encode() + b"\n")

    async def result(self, timeout: float = RESULT_TIMEOUT_S) -> dict[str, Any]:
        outcome = await self._line("result", timeout)
        assert self.proc is not None
        await asyncio.wait_for(self.proc.wait(), 10)
        return outcome

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), 10)


async def run_workers(
    workers: Sequence[Worker],
    lead_s: float,
    seconds: float,
    pids: dict[str, int],
    ready_timeout: float,
    at_edges: Callable[[], Coroutine[Any, Any, None]] | None = None,
    not_before: float = 0.0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], CpuWindow, float]:
    """Start the workers (in order: earlier ones are ready before later ones start), run one window,
    starting `lead_s` after all are ready and not before the wall time `not_before`; `at_edges` is
    awaited as the window starts and as it ends.

    Returns each worker's ready and result messages, the CPU window and the window's start time.
    """
    try:
        readies = []
        for worker in workers:
            await worker.start()
            readies.append(await worker.ready(ready_timeout))
        for worker in workers:
            assert worker.proc is not None
            pids[worker.name] = worker.proc.pid
        start = max(time.time() + lead_s, not_before)
        end = start + seconds
        window = CpuWindow(pids)
        for worker in workers:
            worker.go(start, end)

        async def edges() -> None:
            if at_edges is not None:
                await sleep_until(start)
                await at_edges()
                await sleep_until(end)
                await at_edges()

        await asyncio.gather(window.sample(start, end), edges())
        results = [await worker.result(RESULT_TIMEOUT_S + seconds) for worker in workers]
        return readies, results, window, start
    finally:
        for worker in workers:
            await worker.stop()


async def _stdin_line(timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    line = await asyncio.wait_for(reader.readline(), timeout)
    if not line:
        raise SystemExit("the parent closed stdin")
    message: dict[str, Any] = json.loads(line)
    return message


async def handshake(ready: dict[str, Any], timeout: float = 600.0) -> tuple[float, float]:
    print(json.dumps({"ready": ready}), flush=True)
    window = await _stdin_line(timeout)
    return float(window["start"]), float(window["end"])


def report(result: dict[str, Any]) -> None:
    print(json.dumps({"result": result}), flush=True)


async def sleep_until(wall: float) -> None:
    await asyncio.sleep(max(0.0, wall - time.time()))


# --- the bare aiohttp baseline server


async def bare_http_server(config: dict[str, Any]) -> None:
    """The REST baseline: aiohttp answering the gateway's JSON body, no auth, no middlewares, no gRPC."""
    body = config["body"].encode()

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get(config["path"], answer)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)  # as service_runtime.http_serving
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", config["port"]).start()
    await wait_for_stop_signal()
    await runner.cleanup()


# --- REST load: a minimal keep-alive HTTP/1.1 client


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection with one request in flight; answers must carry Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self._buffer[:head_end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self._fail(ConnectionError(f"an answer without Content-Length: {head[:200]!r}"))
            return
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end >= 0 else len(head)])
        total = head_end + 4 + length
        if len(self._buffer) < total:
            return
        status = int(self._buffer[9:12])
        body = bytes(self._buffer[head_end + 4 : total])
        del self._buffer[:total]
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((status, body))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the server closed the connection"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self._waiter


async def http_load(config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    request = config["request"].encode()
    conns = []
    for _ in range(config["connections"]):
        _, conn = await asyncio.wait_for(
            loop.create_connection(HttpConnection, "127.0.0.1", config["port"]), READY_TIMEOUT_S
        )
        conns.append(conn)
    status, body = await asyncio.wait_for(conns[0].request(request), 10)
    if status != 200 or orjson.loads(body).get("symbol") != config["symbol"]:
        raise SystemExit(f"unexpected first answer {status}: {body[:200]!r}")
    start, end = await handshake({"connections": len(conns)})
    latencies = array.array("d")
    statuses: dict[int, int] = {}

    async def drive(conn: HttpConnection) -> None:
        while True:
            sent_wall = time.time()
            if sent_wall >= end:
                return
            t0 = time.perf_counter()
            status, _ = await asyncio.wait_for(conn.request(request), 30)
            if sent_wall >= start:
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(drive(c) for c in conns))
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    np.save(config["out"], np.frombuffer(latencies, dtype=np.float64))
    report({"statuses": statuses})


async def grpc_load(config: dict[str, Any]) -> None:
    async with grpc.aio.insecure_channel(config["addr"]) as channel:
        stub = md_grpc.MarketDataStub(channel)
        request = md.GetTickerPriceRequest(symbols=[config["symbol"]])
        first = await stub.GetTickerPrice(request, timeout=10)
        if [p.symbol for p in first.prices] != [config["symbol"]]:
            raise SystemExit(f"unexpected first answer {first}")
        start, end = await handshake({"source": common.DataSource.Name(first.source)})
        latencies = array.array("d")
        errors: dict[str, int] = {}

        async def drive() -> None:
            while True:
                sent_wall = time.time()
                if sent_wall >= end:
                    return
                t0 = time.perf_counter()
                try:
                    await stub.GetTickerPrice(request, timeout=30)
                except grpc.aio.AioRpcError as exc:
                    errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                    continue
                if sent_wall >= start:
                    latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(drive() for _ in range(config["inflight"])))
    np.save(config["out"], np.frombuffer(latencies, dtype=np.float64))
    report({"statuses": {"OK": len(latencies), **errors}})


# --- stream clients


class EventLog:
    """Events received in the window: symbol index, update id, wall receive time, event time E (ms)."""

    def __init__(self) -> None:
        self.sym = array.array("q")
        self.u = array.array("q")
        self.t = array.array("d")
        self.e = array.array("q")

    def add(self, sym: int, u: int, t: float, e: int) -> None:
        self.sym.append(sym)
        self.u.append(u)
        self.t.append(t)
        self.e.append(e)

    def save(self, path: str, **extra: NDArray[Any]) -> None:
        arrays = {
            "sym": np.frombuffer(self.sym, dtype=np.int64),
            "u": np.frombuffer(self.u, dtype=np.int64),
            "t": np.frombuffer(self.t, dtype=np.float64),
            "e": np.frombuffer(self.e, dtype=np.int64),
            **extra,
        }
        savez: Callable[..., None] = np.savez  # its stubs type **kwds as its own keyword options
        savez(path, **arrays)


@dataclass
class Window:
    """The recording window; unknown (never) until the parent's start line arrives."""

    start: float = float("inf")
    end: float = float("inf")

    def __contains__(self, t: float) -> bool:
        return self.start <= t < self.end


class LightWebSocket(asyncio.Protocol):
    """A minimal WebSocket client on an asyncio protocol, so the load generator stays light (as the
    REST one): the upgrade request, then the server's frames parsed straight from the bytes, with
    one receive time per read; pings answered. The gateway never fragments, masks or compresses."""

    def __init__(
        self, request: bytes, on_text: Callable[[bytes, float], None], closed: asyncio.Future[int | None]
    ) -> None:
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._request = request
        self._on_text = on_text
        self._closed = closed  # the close code the server sent; None if the connection just ended
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self._buffer
        buf += data
        if not self.upgraded.done():
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(ConnectionError(bytes(buf[:12]).decode(errors="replace")))
                self._close(None)
                return
            del buf[: head_end + 4]
            self.upgraded.set_result(None)
        at, size = 0, len(buf)
        while size - at >= 2:
            opcode, length, head = buf[at] & 0x0F, buf[at + 1] & 0x7F, 2
            if length == 126:
                if size - at < 4:
                    break
                length, head = int.from_bytes(buf[at + 2 : at + 4], "big"), 4
            elif length == 127:
                if size - at < 10:
                    break
                length, head = int.from_bytes(buf[at + 2 : at + 10], "big"), 10
            end = at + head + length
            if end > size:
                break
            payload = bytes(buf[at + head : end])
            at = end
            if opcode == 0x1:
                self._on_text(payload, now)
            elif opcode == 0x9 and self.transport is not None:  # ping: a masked pong (key 0) with its payload
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + bytes(4) + payload)
            elif opcode == 0x8:
                self._close(int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005)
                return
        del buf[:at]

    def _close(self, code: int | None) -> None:
        if not self._closed.done():
            self._closed.set_result(code)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed before the upgrade"))
        if not self._closed.done():
            self._closed.set_result(None)


def upgrade_request(port: int, path: str, token: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()


async def ws_clients(config: dict[str, Any]) -> None:
    """WebSocket clients of the gateway: [path, symbol index] each; records every diff/bookTicker frame.

    Ready once every client has had its first frame, failed to connect or been closed, or after
    `connect_timeout`; the ready message says how many are live (an overloaded gateway may not
    let them all in, and that is a result, not an error).
    """
    window = Window()
    log = EventLog()
    clients: list[tuple[str, int]] = [(p, s) for p, s in config["clients"]]
    frames = [0] * len(clients)  # frames of any type received in the window
    live = [False] * len(clients)  # had its first frame and is not closed
    settled = [asyncio.Event() for _ in clients]
    kinds: dict[str, int] = {}
    closes: dict[str, int] = {}
    failures: dict[str, int] = {}
    loads = orjson.loads
    headers = {"Authorization": f"Bearer {config['token']}"}
    connect_gate = asyncio.Semaphore(32)

    def receive(index: int, sym: int, text: str | bytes, now: float) -> None:
        if not live[index]:
            live[index] = True
            settled[index].set()
        if now not in window:
            return
        frames[index] += 1
        doc = loads(text)
        kind = doc.get("type", "?")
        if kind == "diff" or kind == "bookTicker":
            log.add(sym, doc["u"], now, doc.get("E", 0))
        else:
            kinds[kind] = kinds.get(kind, 0) + 1

    def ended(index: int, code: int | None) -> None:
        live[index] = False
        settled[index].set()
        if time.time() < window.end:
            closes[str(code)] = closes.get(str(code), 0) + 1

    async def aiohttp_client(index: int, path: str, sym: int, session: aiohttp.ClientSession) -> None:
        try:
            async with connect_gate:
                ws = await asyncio.wait_for(
                    session.ws_connect(
                        f"http://127.0.0.1:{config['port']}{path}", headers=headers, max_msg_size=0, heartbeat=None
                    ),
                    CONNECT_TIMEOUT_S,
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            settled[index].set()
            return
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                receive(index, sym, msg.data, time.time())
        ended(index, ws.close_code)

    async def light_client(index: int, path: str, sym: int, session: aiohttp.ClientSession) -> None:
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[int | None] = loop.create_future()
        request = upgrade_request(config["port"], path, config["token"])
        protocol: LightWebSocket | None = None
        try:
            try:
                async with connect_gate:
                    _, made = await asyncio.wait_for(
                        loop.create_connection(
                            lambda: LightWebSocket(request, lambda data, now: receive(index, sym, data, now), closed),
                            "127.0.0.1",
                            config["port"],
                        ),
                        CONNECT_TIMEOUT_S,
                    )
                    protocol = made
                    await asyncio.wait_for(made.upgraded, CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
                settled[index].set()
                return
            ended(index, await closed)
        finally:
            if protocol is not None and protocol.transport is not None:
                protocol.transport.close()

    client = light_client if config["client"] == "light" else aiohttp_client

    async def all_settled() -> None:
        for event in settled:
            await event.wait()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(client(i, p, s, session)) for i, (p, s) in enumerate(clients)]
        try:
            waiter = asyncio.create_task(all_settled())
            await asyncio.wait([waiter], timeout=config["connect_timeout"])
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            broken = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
            if broken:
                raise SystemExit(f"a WebSocket client failed: {broken[0]!r}")
            window.start, window.end = await handshake({"live": sum(live), "failed": failures})
            await sleep_until(window.end)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    log.save(config["out"], frames=np.array(frames, dtype=np.int64))
    report({"kinds": kinds, "closes": closes})


async def stream_baseline(config: dict[str, Any]) -> None:
    """The bare gRPC client (the stream the gateway's upstream holds, one call per symbol), plus a raw
    WebSocket client of the simulator on the same streams. Records from its start until
    end + margin (a backlogged gateway delivers events seconds old: they must still be matched)."""
    window = Window(start=0.0)
    grpc_log, sim_log = EventLog(), EventLog()
    symbols: list[str] = config["symbols"]
    depth = config["kind"] == "depth"
    ready = {s: asyncio.Event() for s in symbols}
    margin = config["margin"]

    async def follow(stub: md_grpc.MarketDataAsyncStub, index: int, symbol: str) -> None:
        if depth:
            depth_call = stub.StreamDepth(
                md.StreamDepthRequest(symbol=symbol, limit=UPSTREAM_DEPTH_LEVELS, speed=md.DEPTH_SPEED_100MS)
            )
            async for message in depth_call:
                now = time.time()
                if message.HasField("snapshot"):
                    if message.snapshot.freshness.in_sync:
                        ready[symbol].set()
                elif now in window:
                    grpc_log.add(index, message.diff.last_update_id, now, message.diff.event_time_ms)
        else:
            ticker_call = stub.StreamBookTicker(md.StreamBookTickerRequest(symbols=[symbol]))
            async for tickers in ticker_call:
                now = time.time()
                ready[symbol].set()
                if now in window:
                    for ticker in tickers.tickers:
                        grpc_log.add(index, ticker.update_id, now, 0)

    async def all_ready() -> None:
        for event in ready.values():
            await event.wait()

    async def simulator(session: aiohttp.ClientSession) -> None:
        suffix = "@depth@100ms" if depth else "@bookTicker"
        index = {f"{s.lower()}{suffix}": i for i, s in enumerate(symbols)}
        url = f"http://127.0.0.1:{config['sim_port']}/stream?streams=" + "/".join(index)
        async with session.ws_connect(url, max_msg_size=0) as ws:
            async for msg in ws:
                now = time.time()
                if msg.type is aiohttp.WSMsgType.TEXT and now in window:
                    doc = orjson.loads(msg.data)
                    data = doc["data"]
                    sim_log.add(index[doc["stream"]], data["u"], now, data.get("E", 0))

    async with (
        grpc.aio.insecure_channel(config["provider"]) as channel,
        aiohttp.ClientSession() as session,
    ):
        stub = md_grpc.MarketDataStub(channel)
        tasks = [asyncio.create_task(follow(stub, i, s)) for i, s in enumerate(symbols)]
        tasks.append(asyncio.create_task(simulator(session)))
        try:
            waiter = asyncio.create_task(asyncio.wait_for(all_ready(), READY_TIMEOUT_S))
            done, _ = await asyncio.wait([waiter, *tasks], return_when="FIRST_COMPLETED")
            broken = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
            if broken or waiter not in done or waiter.exception() is not None:
                waiter.cancel()
                await asyncio.gather(waiter, return_exceptions=True)
                why = repr(broken[0]) if broken else f"not all live within {READY_TIMEOUT_S:.0f} s"
                raise SystemExit(f"the baseline streams failed: {why}")
            _, end = await handshake({"symbols": len(symbols)})
            window.end = end + margin
            await sleep_until(window.end)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    grpc_log.save(config["out"])
    sim_log.save(config["out_sim"])
    report({})


ROLES: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, None]]] = {
    "bare-http": bare_http_server,
    "http-load": http_load,
    "grpc-load": grpc_load,
    "ws-clients": ws_clients,
    "stream-baseline": stream_baseline,
}


# --------------------------------------------------------------------------- the system


def start_processes(processes: Sequence[ManagedProcess], timeout: float = 60.0) -> None:
    for process in processes:
        process.start()
        process.wait_ready(timeout)


def stop_processes(processes: Sequence[ManagedProcess]) -> None:
    for process in reversed(processes):
        process.stop()


def issue_token(root: Path) -> str:
    store, token = TokenStore().issue("bench", frozenset({Scope.READ}))
    store.save(root / "tokens.json")
    return token


def build(root: Path, env: dict[str, str]) -> tuple[System, list[ManagedProcess]]:
    """Simulator, provider and gateway_http (gateway_mcp is not needed here)."""
    ports = Ports(sim=free_port(), provider=free_port(), http=free_port(), mcp=0, metrics=free_port())
    system = build_system(ports, data_dir=root / "data", log_dir=root, extra_env=env)
    return system, [p for p in system.processes if p.name != "gateway_mcp"]


def pids_of(processes: Sequence[ManagedProcess], gateway_workers: int = 1) -> dict[str, int]:
    """Each process's pid; with gateway workers, theirs too (as gateway_http[i]), once all have started."""
    pids = {p.name: p.popen.pid for p in processes if p.popen is not None}
    if gateway_workers > 1:
        supervisor = pids["gateway_http"]
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(found := child_pids(supervisor)) < gateway_workers:
            if time.monotonic() > deadline:
                raise SystemExit(f"gateway_http started {len(found)} of {gateway_workers} workers")
            time.sleep(0.05)
        pids |= {f"gateway_http[{i}]": pid for i, pid in enumerate(sorted(found))}
    return pids


def gateway_cores(window: CpuWindow) -> float:
    """The gateway's CPU: the process, or with workers the supervisor and every worker."""
    return sum(cores for name, cores in window.cores.items() if name.startswith("gateway_http"))


def limit_note(window: CpuWindow, clients: Sequence[str]) -> str:
    """Which process, or the machine, bounds the measured rate (from the window's CPU figures)."""
    cores, peaks = window.cores, window.peaks
    busiest = max(cores, key=lambda name: cores[name])
    always = [n for n, c in cores.items() if c >= SATURATED_CORE]
    bursts = [n for n, c in peaks.items() if c >= SATURATED_CORE and n not in always]
    notes = []
    if always:
        kind = "the load generator" if all(n in clients for n in always) else "one process"
        notes.append(f"{kind} at a full core: " + ", ".join(f"{n} {cores[n]:.2f}" for n in always))
    if bursts:
        notes.append("a full core in bursts: " + ", ".join(f"{n} (mean {cores[n]:.2f})" for n in bursts))
    starved = [n for n, w in window.waited.items() if w >= STARVED_SHARE]
    if starved:
        notes.append("CPU contention: waited for a core " + ", ".join(f"{n} {window.waited[n]:.0%}" for n in starved))
    if window.machine >= 1.8:
        notes.append(f"the machine's 2 cores busy ({window.machine:.2f}, other work included)")
    if not notes:
        notes.append(f"nothing saturated (busiest {busiest} {cores[busiest]:.2f}, machine {window.machine:.2f})")
    return "; ".join(notes)


# --------------------------------------------------------------------------- 1. REST


@dataclass
class RestTarget:
    label: str
    port: int
    servers: list[str]  # process names whose CPU is reported for this target
    grpc: bool = False
    rps: list[float] = field(default_factory=list)
    latencies: list[NDArray[np.float64]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    windows: list[CpuWindow] = field(default_factory=list)
    source: str = ""


async def rest_round(
    target: RestTarget, args: argparse.Namespace, token: str, pids: dict[str, int], tmp: Path, provider: str
) -> None:
    per_proc = [
        args.rest_connections // args.rest_procs + (i < args.rest_connections % args.rest_procs)
        for i in range(args.rest_procs)
    ]
    workers = []
    for i, n in enumerate(per_proc):
        out = str(tmp / f"rest-{i}.npy")
        if target.grpc:
            config = {"addr": provider, "symbol": REST_SYMBOL, "inflight": n, "out": out}
            workers.append(Worker(f"client{i}", "grpc-load", config))
        else:
            request = (
                f"GET {REST_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\n"
                f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
            )
            workers.append(
                Worker(
                    f"client{i}",
                    "http-load",
                    {"port": target.port, "request": request, "connections": n, "symbol": REST_SYMBOL, "out": out},
                )
            )
    watched = {name: pids[name] for name in target.servers}
    readies, results, window, _ = await run_workers(workers, args.lead, args.rest_seconds, watched, READY_TIMEOUT_S)
    if target.grpc:
        target.source = readies[0]["source"]
    latencies = np.concatenate([np.load(str(tmp / f"rest-{i}.npy")) for i in range(len(workers))])
    target.latencies.append(latencies)
    target.rps.append(len(latencies) / args.rest_seconds)
    for result in results:
        for status, n in result["statuses"].items():
            target.statuses[status] = target.statuses.get(status, 0) + n
    target.windows.append(window)


async def rest_part(args: argparse.Namespace) -> None:
    print(f"## 1. REST GET {REST_PATH}, {args.rest_connections} concurrent; load average {load_average()}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        token = issue_token(tmp)
        env = {"PROVIDER_SYMBOLS": REST_SYMBOL, "GATEWAY_TOKENS_FILE": str(tmp / "tokens.json"), **GATEWAY_ENV}
        system, processes = build(tmp, env)
        bare_port = free_port()
        bare: ManagedProcess | None = None
        try:
            start_processes(processes)
            provider = f"127.0.0.1:{system.ports.provider}"
            async with grpc.aio.insecure_channel(provider) as channel:
                stub = md_grpc.MarketDataStub(channel)
                # A ticker listener keeps the provider's BTCUSDT ticker live (else each call is a venue REST call).
                ticker_stream = stub.StreamTicker(md.StreamTickerRequest(symbols=[REST_SYMBOL]))
                await asyncio.wait_for(ticker_stream.read(), READY_TIMEOUT_S)
                body = await gateway_body(system.ports.http, token)
                bare = ManagedProcess(
                    "bare_aiohttp",
                    "bench.bench_gateway_http",
                    args=[
                        "--worker",
                        "bare-http",
                        json.dumps({"port": bare_port, "path": REST_PATH.split("?")[0], "body": body}),
                    ],
                    ready_port=bare_port,
                    log_path=tmp / "bare_aiohttp.log",
                )
                start_processes([bare])
                pids = {**pids_of(processes), **pids_of([bare])}
                targets = [
                    RestTarget(
                        "gateway_http (auth, params, gRPC GetTickerPrice, JSON)",
                        system.ports.http,
                        ["gateway_http", "provider"],
                    ),
                    RestTarget("baseline (a): bare aiohttp, same body, no gRPC", bare_port, ["bare_aiohttp"]),
                    RestTarget("baseline (b): bare gRPC GetTickerPrice to the provider", 0, ["provider"], grpc=True),
                ]
                for r in range(args.rounds):
                    for target in targets[r % 3 :] + targets[: r % 3]:
                        await rest_round(target, args, token, pids, tmp, provider)
                ticker_stream.cancel()
        finally:
            if bare is not None:
                bare.stop()
            stop_processes(processes)
    print(
        f"{args.rounds} interleaved rounds of {args.rest_seconds:.0f} s per target; "
        f"{args.rest_procs} client processes (uvloop); load average after: {load_average()}"
    )
    print("| target | req/s (median; range) | p50 ms | p99 ms | answers |")
    print("|---|---|---|---|---|")
    for t in targets:
        lat = np.concatenate(t.latencies)
        print(
            f"| {t.label} | {statistics.median(t.rps):,.0f} ({min(t.rps):,.0f}–{max(t.rps):,.0f}) | "
            f"{pct(lat, 0.5):.2f} | {pct(lat, 0.99):.2f} | {fmt_statuses(t.statuses)} |"
        )
    print(f"CPU in cores over each target's median round ({CPU_LEGEND}), and what limits it:")
    for t in targets:
        mid = sorted(range(len(t.rps)), key=lambda i: t.rps[i])[len(t.rps) // 2]
        window = t.windows[mid]
        clients = [n for n in window.cores if n.startswith("client")]
        spent = {n: window.cores[n] for n in t.servers} | {"clients": sum(window.cores[n] for n in clients)}
        per_request = ", ".join(f"{n} {cores / t.rps[mid] * 1e6:.0f} µs" for n, cores in spent.items())
        print(
            f"- {t.label}: {fmt_cores(window)}; machine {window.machine:.2f}. CPU per request: {per_request}. "
            f"Limit: {limit_note(window, clients)}"
        )
    grpc_target = targets[2]
    print(f"provider answered GetTickerPrice from: {grpc_target.source}")


def fmt_statuses(statuses: dict[str, int]) -> str:
    return " ".join(f"{k}×{v:,}" for k, v in sorted(statuses.items()))


async def gateway_body(port: int, token: str) -> str:
    """The gateway's answer body (what the bare baseline serves), once the route answers 200."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        while True:
            async with session.get(f"http://127.0.0.1:{port}{REST_PATH}") as response:
                text = await response.text()
                if response.status == 200:
                    return text
            if time.monotonic() > deadline:
                raise SystemExit(f"the gateway's {REST_PATH} did not answer 200 in time: {response.status} {text}")
            await asyncio.sleep(0.2)


# --------------------------------------------------------------------------- 2./3. fan-out


@dataclass(frozen=True)
class Events:
    sym: NDArray[np.int64]
    u: NDArray[np.int64]
    t: NDArray[np.float64]
    e: NDArray[np.int64]

    @classmethod
    def load(cls, paths: Sequence[Path]) -> Events:
        loaded = [np.load(str(p)) for p in paths]
        return cls(*(np.concatenate([d[k] for d in loaded]) for k in ("sym", "u", "t", "e")))

    def keys(self) -> NDArray[np.int64]:
        if len(self.u) and int(self.u.max()) >= 1 << KEY_SHIFT:
            raise SystemExit("an update id does not fit the event key")
        return (self.sym << KEY_SHIFT) | self.u

    def within(self, start: float, end: float) -> Events:
        mask = (self.t >= start) & (self.t < end)
        return Events(self.sym[mask], self.u[mask], self.t[mask], self.e[mask])

    def age_ms(self) -> NDArray[np.float64]:
        """Receive time minus the event time E, in ms."""
        return self.t * 1000 - self.e


def match_events(ws: Events, base: Events) -> tuple[NDArray[np.intp], NDArray[np.bool_], NDArray[np.float64]]:
    """For each WS event: the index of its event among the baseline's distinct ones, whether the
    baseline had it at all, and (per distinct event) the baseline's first receive time."""
    keys, first = np.unique(base.keys(), return_index=True)
    wanted = ws.keys()
    at = np.clip(np.searchsorted(keys, wanted), 0, max(0, len(keys) - 1))
    found = (keys[at] == wanted) if len(keys) else np.zeros(len(wanted), dtype=bool)
    return at, found, base.t[first]


def added_latency_ms(ws: Events, base: Events) -> tuple[NDArray[np.float64], int]:
    """For each WS event, its receive time minus the baseline's first receive of the same event."""
    at, found, base_t = match_events(ws, base)
    return (ws.t[found] - base_t[at[found]]) * 1000, int((~found).sum())


FLUSH_HISTOGRAMS = ("gateway_http_ws_flush_seconds", "gateway_http_ws_batch_delay_seconds")


class FlushStats:
    """The gateway's own account of its fan-out over the window, from its /metrics histograms:
    how long each flush took (a write to every connection with frames waiting) and how long the
    first frame of each batch waited in the gateway until written."""

    def __init__(self, port: int) -> None:
        self._url = f"http://127.0.0.1:{port}/metrics"
        self.reads: list[dict[str, dict[float, float]]] = []
        self.sums: list[dict[str, float]] = []  # each histogram's _sum (seconds) at each read

    async def read(self) -> None:
        async with aiohttp.ClientSession() as session, session.get(self._url) as response:
            text = await response.text()
        buckets: dict[str, dict[float, float]] = {name: {} for name in FLUSH_HISTOGRAMS}
        sums = dict.fromkeys(FLUSH_HISTOGRAMS, 0.0)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                histogram = sample.name.removesuffix("_bucket")
                if sample.name.endswith("_bucket") and histogram in buckets:
                    le = float(sample.labels["le"])
                    buckets[histogram][le] = buckets[histogram].get(le, 0.0) + sample.value
                elif sample.name.endswith("_sum") and sample.name.removesuffix("_sum") in sums:
                    sums[sample.name.removesuffix("_sum")] += sample.value
        self.reads.append(buckets)
        self.sums.append(sums)

    def mean_ms(self, name: str) -> float:
        """The mean observation in the window (ms), exact where the quantiles are bucket edges."""
        count, _ = self.quantiles(name, ())
        if len(self.sums) < 2 or not count:
            return 0.0
        return (self.sums[-1][name] - self.sums[0][name]) / count * 1000

    def quantiles(self, name: str, qs: Sequence[float] = (0.5, 0.99)) -> tuple[int, list[float]]:
        """Observations in the window, and each quantile as the upper edge of its bucket (ms)."""
        if len(self.reads) < 2:
            return 0, []
        before, after = self.reads[0][name], self.reads[-1][name]
        edges = sorted(after)
        counts = [after[le] - before.get(le, 0.0) for le in edges]  # cumulative
        total = counts[-1] if counts else 0.0
        found = [next((le * 1000 for le, c in zip(edges, counts, strict=True) if c >= q * total), 0.0) for q in qs]
        return int(total), found


def first_and_last_ms(ws: Events, base: Events) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per event: the added latency of the first WS client to receive it, and of the last. The first
    shows the delay before the fan-out (reading the upstream, then one write); last minus first is
    the fan-out's own spread."""
    at, found, base_t = match_events(ws, base)
    event, t = at[found], ws.t[found]
    if not len(event):
        return np.zeros(0), np.zeros(0)
    order = np.lexsort((t, event))
    event, t = event[order], t[order]
    starts = np.flatnonzero(np.r_[True, event[1:] != event[:-1]])
    ends = np.r_[starts[1:], len(event)] - 1
    sent = base_t[event[starts]]
    return (t[starts] - sent) * 1000, (t[ends] - sent) * 1000


@dataclass(frozen=True)
class Stream:
    kind: str  # "depth" or "bookTicker"
    symbols: list[str]

    def path(self, symbol: str) -> str:
        if self.kind == "depth":
            return f"/ws/depth/{symbol}?speed=100ms"
        return f"/ws/bookTicker/{symbol}"


def depth_symbols(n: int) -> list[str]:
    """Synthetic symbols: two listed ones, then generic ones the simulator derives (BKAAUSDT, ...)."""
    names = ["ETHUSDT", "BNBUSDT"]
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    names += [f"BK{letters[i // 26 % 26]}{letters[i % 26]}USDT" for i in range(max(0, n - 2))]
    return names[:n]


@dataclass
class FanoutRun:
    stream: Stream
    clients: int
    live: int  # clients that had had their first frame, and were not closed, when their process was ready
    failed: dict[str, int]  # clients that could not connect, by error
    offered: float  # events/s of one stream, as the bare gRPC client received them
    delivered: float  # frames/s received by all WS clients together
    client_rates: tuple[float, float]  # frames/s received by the client that got fewest, and by the median one
    delivered_peak: float  # the busiest 1 s slice
    added: NDArray[np.float64]  # ms, per matched WS event
    flush_stats: FlushStats
    first_added: NDArray[np.float64]  # ms, per event: the first client to receive it
    last_added: NDArray[np.float64]  # ms, per event: the last client to receive it
    unmatched: int
    e2e_ws: NDArray[np.float64]
    e2e_grpc: NDArray[np.float64]
    e2e_sim: NDArray[np.float64]
    kinds: dict[str, int]  # frames other than events (snapshot, lagged, ...)
    closes: dict[str, int]  # clients closed before the window ended, by close code
    window: CpuWindow
    load: str
    start: float  # the window's wall-clock start
    replay_at: float | None = None  # bookTicker: the window's start, in seconds after the replay started


async def fanout_run(
    stream: Stream,
    clients: int,
    args: argparse.Namespace,
    ports: Ports,
    token: str,
    pids: dict[str, int],
    tmp: Path,
    not_before: float = 0.0,
) -> FanoutRun:
    tag = f"{stream.kind}-{clients}"
    baseline = Worker(
        "grpc-client",
        "stream-baseline",
        {
            "provider": f"127.0.0.1:{ports.provider}",
            "sim_port": ports.sim,
            "kind": stream.kind,
            "symbols": stream.symbols,
            "margin": 2.0,
            "out": str(tmp / f"{tag}-grpc.npz"),
            "out_sim": str(tmp / f"{tag}-sim.npz"),
        },
    )
    procs = min(args.ws_procs, clients)
    assigned: list[list[tuple[str, int]]] = [[] for _ in range(procs)]
    for i in range(clients):
        sym = i % len(stream.symbols)
        assigned[i % procs].append((stream.path(stream.symbols[sym]), sym))
    connect_timeout = 30 + 0.03 * clients
    ws_workers = [
        Worker(
            f"client{p}",
            "ws-clients",
            {
                "port": ports.http,
                "token": token,
                "clients": assigned[p],
                "connect_timeout": connect_timeout,
                "client": args.ws_client,
                "out": str(tmp / f"{tag}-ws{p}.npz"),
            },
            ws_reader.command(
                ws_reader.build(tmp), ports.http, token, assigned[p], connect_timeout, tmp / f"{tag}-ws{p}.bin"
            )
            if args.ws_client == "native"
            else (),
        )
        for p in range(procs)
    ]
    load_before = load_average()
    flush_stats = FlushStats(ports.http)
    readies, results, window, start = await run_workers(
        [baseline, *ws_workers],
        args.warmup,
        args.ws_seconds,
        dict(pids),
        READY_TIMEOUT_S + 0.05 * clients,
        flush_stats.read,
        not_before,
    )
    end = start + args.ws_seconds
    if args.ws_client == "native":
        for p in range(procs):
            ws_reader.to_npz(tmp / f"{tag}-ws{p}.bin", tmp / f"{tag}-ws{p}.npz")
    base = Events.load([tmp / f"{tag}-grpc.npz"])
    sim = Events.load([tmp / f"{tag}-sim.npz"])
    ws = Events.load([tmp / f"{tag}-ws{p}.npz" for p in range(procs)])
    per_client = np.concatenate([np.load(str(tmp / f"{tag}-ws{p}.npz"))["frames"] for p in range(procs)])
    frames = int(per_client.sum())
    added, unmatched = added_latency_ms(ws, base)
    first_added, last_added = first_and_last_ms(ws, base)
    per_second = np.histogram(ws.t, bins=np.arange(start, end + 0.5, 1.0))[0]
    kinds: dict[str, int] = {}
    closes: dict[str, int] = {}
    failed: dict[str, int] = {}
    for ready in readies[1:]:
        for k, n in ready["failed"].items():
            failed[k] = failed.get(k, 0) + n
    for result in results[1:]:
        for k, n in result["kinds"].items():
            kinds[k] = kinds.get(k, 0) + n
        for k, n in result["closes"].items():
            closes[k] = closes.get(k, 0) + n
    return FanoutRun(
        stream=stream,
        clients=clients,
        live=sum(ready["live"] for ready in readies[1:]),
        failed=failed,
        offered=len(base.within(start, end).u) / args.ws_seconds / len(stream.symbols),
        delivered=frames / args.ws_seconds,
        client_rates=(float(per_client.min()) / args.ws_seconds, float(np.median(per_client)) / args.ws_seconds),
        delivered_peak=float(per_second.max()) if len(per_second) else 0.0,
        added=added,
        flush_stats=flush_stats,
        first_added=first_added,
        last_added=last_added,
        unmatched=unmatched,
        e2e_ws=ws.age_ms(),
        e2e_grpc=base.within(start, end).age_ms(),
        e2e_sim=sim.within(start, end).age_ms(),
        kinds=kinds,
        closes=closes,
        window=window,
        load=f"{load_before} → {load_average()}",
        start=start,
    )


async def fanout_part(args: argparse.Namespace) -> None:
    print(f"## 2./3. WebSocket fan-out; load average {load_average()}")
    streams = [Stream("depth", depth_symbols(args.ws_symbols))]
    if "bookTicker" in args.ws_streams:
        if RECORDED_BTCUSDT.is_file():
            streams.insert(0, Stream("bookTicker", [REPLAY_SYMBOL]))  # first: the replay runs 346 s from its start
        else:
            print(f"bookTicker runs skipped: recorded data not found at {RECORDED_BTCUSDT}")
    if "depth" not in args.ws_streams:
        streams = [s for s in streams if s.kind != "depth"]
    runs: list[FanoutRun] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        token = issue_token(tmp)
        symbols = ",".join(depth_symbols(args.ws_symbols))
        env = {
            "SIM_SYMBOLS": symbols,
            "PROVIDER_SYMBOLS": symbols,  # not BTCUSDT: its replay starts when the bookTicker runs subscribe
            "GATEWAY_TOKENS_FILE": str(tmp / "tokens.json"),
            **GATEWAY_ENV,
            "GATEWAY_HTTP_WORKERS": str(args.gateway_workers),
            "GATEWAY_HTTP_WS_WRITE_THREADS": str(args.ws_write_threads),
        }
        if any(s.kind == "bookTicker" for s in streams):
            env |= {"SIM_REPLAY": str(RECORDED_BTCUSDT), "SIM_REPLAY_SPEED": str(args.replay_speed)}
        system, processes = build(tmp, env)
        try:
            start_processes(processes)
            pids = pids_of(processes, args.gateway_workers)
            replay_started = 0.0  # wall clock; a little before the replay's start (the first run's subscription)
            for stream in streams:
                for i, clients in enumerate(args.ws_clients):
                    not_before = 0.0
                    if stream.kind == "bookTicker":
                        replay_started = replay_started or time.time()
                        if time.time() - replay_started > RECORDED_SECONDS / args.replay_speed - 30:
                            print(f"bookTicker at {clients} clients skipped: the recorded session is nearly over")
                            continue
                        if args.replay_windows:
                            not_before = replay_started + args.replay_windows[i]
                    run = await fanout_run(stream, clients, args, system.ports, token, pids, tmp, not_before)
                    if stream.kind == "bookTicker":
                        run.replay_at = run.start - replay_started
                        if args.replay_windows and run.replay_at > args.replay_windows[i] + 1:
                            print(
                                f"  bookTicker at {clients} clients: window at replay +{run.replay_at:.0f} s, not "
                                f"+{args.replay_windows[i]:g} s (the clients were ready late)"
                            )
                    runs.append(run)
                    print(f"  {stream.kind} {clients} clients done (load average {run.load})", flush=True)
        finally:
            stop_processes(processes)
    print_fanout(runs, args)


def print_fanout(runs: list[FanoutRun], args: argparse.Namespace) -> None:
    print(
        f"{args.ws_seconds:.0f} s window after {args.warmup:.0f} s warm-up; clients in {args.ws_procs} processes "
        f"({args.ws_client} client); depth clients spread over {args.ws_symbols} synthetic symbols; "
        f"bookTicker: {REPLAY_SYMBOL} replayed at {args.replay_speed:g}x its recorded pace; "
        f"gateway_http workers: {args.gateway_workers}, each with {args.ws_write_threads} write threads"
    )
    print(
        "| stream | clients (live at start) | offered msgs/s per client | delivered msgs/s (per client) | "
        "busiest 1 s | added p50 ms | added p99 ms | lagged / closed early |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        trouble = f"{r.kinds.get('lagged', 0)} / {sum(r.closes.values())}"
        if r.closes:
            trouble += " (codes " + ", ".join(f"{code}×{n}" for code, n in r.closes.items()) + ")"
        if r.failed:
            trouble += "; not connected: " + ", ".join(f"{k}×{n}" for k, n in r.failed.items())
        print(
            f"| {r.stream.kind} | {r.clients:,} ({r.live:,}) | {r.offered:.1f} | "
            f"{r.delivered:,.0f} ({r.delivered / r.clients:.1f}) "
            f"| {r.delivered_peak:,.0f} | {pct(r.added, 0.5):.2f} | {pct(r.added, 0.99):.2f} | {trouble} |"
        )
    print(f"CPU in cores over each window ({CPU_LEGEND}), and what limits it:")
    for r in runs:
        clients = [n for n in r.window.cores if n.startswith("client")]
        per_frame = gateway_cores(r.window) / max(1.0, r.delivered) * 1e6
        replay = "" if r.replay_at is None else f" Window at replay +{r.replay_at:.0f} s."
        print(
            f"- {r.stream.kind} {r.clients:,}:{replay} {fmt_cores(r.window)}; machine {r.window.machine:.2f}; "
            f"load average {r.load}. gateway_http CPU per delivered frame {per_frame:.1f} µs. Frames/s per "
            f"client: fewest {r.client_rates[0]:.1f}, median {r.client_rates[1]:.1f}. {len(r.added):,} frames matched "
            f"to the gRPC client's ({r.unmatched:,} not). Limit: {limit_note(r.window, clients)}"
        )
    print(
        "Where the added latency builds (ms). Per event: the first client to receive it (the delay before the "
        "fan-out) and the last. The gateway's own histograms (bucket upper edges): each flush's duration, and "
        "how long the first frame of a batch waited in the gateway until written (and the exact means):"
    )
    print(
        "| stream | clients | first client p50 / p99 | last client p50 / p99 | flushes | flush p50 / p99 / mean "
        "| batch wait p50 / p99 / mean |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        cells = [f"{pct(v, 0.5):.2f} / {pct(v, 0.99):.2f}" for v in (r.first_added, r.last_added)]
        flushes, _ = r.flush_stats.quantiles(FLUSH_HISTOGRAMS[0])
        cells.append(f"{flushes:,}")
        for name in FLUSH_HISTOGRAMS:
            edges = " / ".join(f"≤{v:g}" for v in r.flush_stats.quantiles(name)[1])
            cells.append(f"{edges} / {r.flush_stats.mean_ms(name):.2f}")
        print(f"| {r.stream.kind} | {r.clients:,} | " + " | ".join(cells) + " |")
    depth_runs = [r for r in runs if r.stream.kind == "depth"]
    if depth_runs:
        print("End to end, simulator event time E → receive (ms; E is the tick's clock, before the diffs are built):")
        print("| clients | raw simulator WS p50 / p99 | gRPC StreamDepth p50 / p99 | gateway WS p50 / p99 |")
        print("|---|---|---|---|")
        for r in depth_runs:
            cells = [f"{pct(v, 0.5):.1f} / {pct(v, 0.99):.1f}" for v in (r.e2e_sim, r.e2e_grpc, r.e2e_ws)]
            print(f"| {r.clients:,} | " + " | ".join(cells) + " |")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short windows, 50 and 500 clients (a smoke run)")
    parser.add_argument("--parts", default="rest,fanout", help="rest, fanout or both (comma-separated)")
    parser.add_argument("--rounds", type=int, default=3, help="REST: interleaved rounds per target")
    parser.add_argument("--rest-seconds", type=float, default=5.0, help="REST: measured seconds per round and target")
    parser.add_argument("--rest-connections", type=int, default=64)
    parser.add_argument("--rest-procs", type=int, default=2, help="REST: client processes sharing the connections")
    parser.add_argument("--ws-clients", default="50,500,2000", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--ws-streams", default="depth,bookTicker", help="depth, bookTicker or both")
    parser.add_argument("--ws-symbols", type=int, default=10, help="synthetic symbols the depth clients spread over")
    parser.add_argument("--ws-seconds", type=float, default=10.0, help="fan-out: measured seconds per run")
    parser.add_argument(
        "--ws-client",
        choices=("native", "light", "aiohttp"),
        help="fan-out: WebSocket client. native (the default where gcc is found): bench/ws_reader.c, a few µs "
        "of CPU per read; light: a minimal one in Python on an asyncio protocol, as the REST clients",
    )
    parser.add_argument("--ws-procs", type=int, default=2, help="fan-out: client processes")
    parser.add_argument(
        "--gateway-workers", type=int, default=1, help="fan-out: gateway_http worker processes (GATEWAY_HTTP_WORKERS)"
    )
    parser.add_argument(
        "--ws-write-threads",
        type=int,
        default=2,
        help="fan-out: threads in each gateway_http worker that write a batch to its clients "
        "(GATEWAY_HTTP_WS_WRITE_THREADS)",
    )
    parser.add_argument(
        "--replay-speed",
        type=_positive_float,
        default=1.0,
        help="bookTicker: pace of the recorded session (SIM_REPLAY_SPEED; 1 as recorded)",
    )
    parser.add_argument(
        "--replay-windows",
        type=lambda text: [float(x) for x in text.split(",")],
        help="bookTicker: seconds after the replay's start at which each client count's window starts (one per "
        "--ws-clients entry, e.g. 60,150,240), so runs of different builds or options measure the same recorded "
        "stretch; by default each window starts as soon as its clients are ready",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="fan-out: seconds between ready and measuring")
    parser.add_argument("--lead", type=float, default=1.0, help="REST: warm-up seconds before each window")
    args = parser.parse_args(argv)
    if args.replay_windows is not None:
        if len(args.replay_windows) != len(args.ws_clients):
            parser.error("--replay-windows needs one offset per --ws-clients entry")
        replay_s = RECORDED_SECONDS / args.replay_speed
        if any(not 0 <= at <= replay_s - args.ws_seconds for at in args.replay_windows):
            parser.error(f"--replay-windows: each window must lie within the replay's {replay_s:.0f} s")
    if args.ws_client is None:
        args.ws_client = "native" if ws_reader.compiler() else "light"
    if args.quick:
        args.rounds, args.rest_seconds, args.ws_seconds, args.warmup = 2, 2.0, 4.0, 1.0
        args.ws_clients = [c for c in args.ws_clients if c <= 500] or args.ws_clients[:1]
    return args


async def run(args: argparse.Namespace) -> None:
    parts = set(args.parts.split(","))
    print(f"gateway_http bench; {os.cpu_count()} cores; load average {load_average()}")
    if "rest" in parts:
        await rest_part(args)
    if "fanout" in parts:
        await fanout_part(args)


def run_on_uvloop(main: Coroutine[Any, Any, None]) -> None:
    # Not the global policy: `make bench` runs the other benches in this process afterwards.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        role, config = sys.argv[2], json.loads(sys.argv[3])
        run_on_uvloop(ROLES[role](config))
        return
    run_on_uvloop(run(parse_args()))


if __name__ == "__main__":
    main()
