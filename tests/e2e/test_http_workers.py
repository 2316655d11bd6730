"""The HTTP gateway with GATEWAY_HTTP_WORKERS=2 (one supervisor, two workers on one listening
socket), on a system of this module's own: both workers serve; the per-token rate limit, the
WebSocket caps and /metrics hold over the two together; a killed worker is replaced and the
WebSocket clients it held no longer count; the whole gateway stops cleanly (the fixture checks
every exit status)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import pytest

from gateway_auth.tokens import Scope, TokenStore
from launcher.system import System
from tests.e2e.conftest import running_system
from tests.e2e.test_http_market_data import bearer

pytestmark = pytest.mark.timeout(120)

WORKERS = 2
TIMEOUT = aiohttp.ClientTimeout(total=15)
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=15, ws_close=5)
BURST = 6
RATE = f"0.5,{BURST}"  # so slow that a quick run gets the burst and nothing more
WS_TOTAL, WS_PER_TOKEN = 5, 2
TOKEN_NAMES = ("main", "limited", "ws-a", "ws-b", "ws-c", "ws-d", "ws-kill")  # WS handshakes count for the rate too
PIN_ATTEMPTS = 200


@dataclass(frozen=True)
class Workers:
    system: System
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.system.ports.http}"

    def log(self) -> str:
        path = self.system.process("gateway_http").log_path
        assert path is not None
        return path.read_text(errors="replace")


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    root = tmp_path_factory.mktemp("workers")
    store, tokens = TokenStore(), {}
    for name in TOKEN_NAMES:
        store, tokens[name] = store.issue(name, frozenset({Scope.READ}))
    store.save(root / "tokens.json")
    env = {
        "GATEWAY_TOKENS_FILE": str(root / "tokens.json"),
        "GATEWAY_HTTP_WORKERS": str(WORKERS),
        "GATEWAY_HTTP_RATE_LIMIT": RATE,
        "GATEWAY_HTTP_MAX_WS_CLIENTS": f"{WS_TOTAL},{WS_PER_TOKEN}",
    }
    with running_system(root, env, without={"gateway_mcp"}) as system:
        yield Workers(system, tokens)


async def health_worker(session: aiohttp.ClientSession) -> int:
    async with session.get("/health") as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    worker = body["gateway"]["worker"]
    assert isinstance(worker, int)
    return worker


@pytest.fixture
async def pinned(workers: Workers) -> AsyncIterator[dict[int, aiohttp.ClientSession]]:
    """One keep-alive session per worker: a session of one connection, kept if /health on it was
    answered by a worker not yet pinned. Its requests and its next WebSocket go to that worker."""
    sessions: dict[int, aiohttp.ClientSession] = {}
    try:
        for _ in range(PIN_ATTEMPTS):
            session = await pin_one(workers)
            worker = await health_worker(session)
            if worker in sessions:
                await session.close()
                continue
            sessions[worker] = session
            if len(sessions) == WORKERS:
                break
        assert sorted(sessions) == list(range(WORKERS)), f"only workers {sorted(sessions)} answered"
        yield sessions
    finally:
        for session in sessions.values():
            await session.close()


async def pin_one(workers: Workers) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(workers.url, timeout=TIMEOUT, connector=aiohttp.TCPConnector(limit=1))


async def session_on(workers: Workers, worker: int) -> aiohttp.ClientSession:
    """A fresh one-connection session whose connection a given worker accepted."""
    for _ in range(PIN_ATTEMPTS):
        session = await pin_one(workers)
        try:
            if await health_worker(session) == worker:
                return session
        except aiohttp.ClientError:
            pass  # a worker being replaced: try another connection
        await session.close()
    raise AssertionError(f"worker {worker} accepted none of {PIN_ATTEMPTS} connections")


async def test_the_rate_limit_holds_over_both_workers(
    workers: Workers, pinned: dict[int, aiohttp.ClientSession]
) -> None:
    limited = bearer(workers.tokens["limited"])
    statuses: dict[int, list[int]] = {w: [] for w in pinned}
    for _ in range(BURST):  # alternate: with a bucket per worker all 2 x BURST would pass
        for worker, session in pinned.items():
            async with session.get("/api/v1/ticker/price", params={"symbol": "BTCUSDT"}, headers=limited) as r:
                statuses[worker].append(r.status)
                if r.status == 429:
                    assert int(r.headers["Retry-After"]) >= 1
    passed = sum(s.count(200) for s in statuses.values())
    assert passed in (BURST, BURST + 1), statuses  # + the 0.5/s refill, if the run took over 2 s
    assert all(200 in s and 429 in s for s in statuses.values()), statuses  # both served, both refused


async def test_websocket_caps_hold_over_both_workers(workers: Workers) -> None:
    a, b, c = (bearer(workers.tokens[n]) for n in ("ws-a", "ws-b", "ws-c"))
    opened: list[aiohttp.ClientWebSocketResponse] = []
    sessions: list[aiohttp.ClientSession] = []

    async def connect(worker: int, headers: dict[str, str]) -> aiohttp.ClientWebSocketResponse:
        session = await session_on(workers, worker)
        sessions.append(session)
        ws = await session.ws_connect("/ws/trades/BTCUSDT", headers=headers, timeout=WS_TIMEOUT)
        opened.append(ws)
        return ws

    async def refused(worker: int, headers: dict[str, str]) -> int:
        session = await session_on(workers, worker)
        sessions.append(session)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refusal:
            await session.ws_connect("/ws/trades/BTCUSDT", headers=headers, timeout=WS_TIMEOUT)
        return refusal.value.status

    try:
        await connect(0, a)
        await connect(1, a)
        assert await refused(0, a) == 429 and await refused(1, a) == 429  # 2 for this token, over both
        await connect(0, b)
        await connect(1, b)
        await connect(1, c)  # 5 open: the total
        assert await refused(0, bearer(workers.tokens["ws-d"])) == 503
    finally:
        for ws in opened:
            await ws.close()
        for session in sessions:
            await session.close()


def metric(text: str, name: str, labels: str) -> float:
    found = re.search(rf"^{re.escape(name)}{{{re.escape(labels)}}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_metrics_sum_over_both_workers(workers: Workers, pinned: dict[int, aiohttp.ClientSession]) -> None:
    labels = 'method="GET",route="/api/v1/exchangeInfo",status="200"'
    main = bearer(workers.tokens["main"])

    async def scrape(session: aiohttp.ClientSession) -> str:
        async with session.get("/metrics") as response:
            assert response.status == 200
            return await response.text()

    before = metric(await scrape(pinned[0]), "gateway_http_requests_total", labels)
    for worker, count in ((0, 2), (1, 3)):
        for _ in range(count):
            async with pinned[worker].get("/api/v1/exchangeInfo", params={"symbol": "BTCUSDT"}, headers=main) as r:
                assert r.status == 200, await r.text()
    for session in pinned.values():
        assert metric(await scrape(session), "gateway_http_requests_total", labels) == before + 5


def worker_pid(log: str, worker: int) -> int:
    started = re.findall(rf"worker {worker} started \(pid (\d+)\)", log)
    assert started, log[-2000:]
    return int(started[-1])


async def test_a_killed_worker_is_replaced_and_its_clients_no_longer_count(workers: Workers) -> None:
    a = bearer(workers.tokens["ws-kill"])
    sessions: list[aiohttp.ClientSession] = []
    doomed: list[aiohttp.ClientWebSocketResponse] = []
    try:
        for _ in range(WS_PER_TOKEN):  # the token's whole allowance, on worker 1
            session = await session_on(workers, 1)
            sessions.append(session)
            doomed.append(await session.ws_connect("/ws/trades/BTCUSDT", headers=a, timeout=WS_TIMEOUT))
        pid = worker_pid(workers.log(), 1)
        os.kill(pid, signal.SIGKILL)
        for ws in doomed:  # the clients see their connection end
            async with asyncio.timeout(15):
                async for _ in ws:
                    pass
            assert ws.closed
        # The replacement serves as worker 1, and the token's allowance is whole again, on either worker.
        replacement = await session_on(workers, 1)
        sessions.append(replacement)
        assert worker_pid(workers.log(), 1) != pid
        for worker in (0, 1):
            session = await session_on(workers, worker)
            sessions.append(session)
            doomed.append(await session.ws_connect("/ws/trades/BTCUSDT", headers=a, timeout=WS_TIMEOUT))
        dropped = rf"worker 1 \(pid {pid}\) exited with status -9; {WS_PER_TOKEN} WebSocket client\(s\)"
        assert re.search(dropped, workers.log()), workers.log()[-2000:]
    finally:
        for ws in doomed:
            await ws.close()
        for session in sessions:
            await session.close()
