"""The simulator's market data as a Binance client sees it, with a client written from the
reference (§7, §8), not with the provider's code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from launcher.processes import ManagedProcess, free_port

TIMEOUT = aiohttp.ClientTimeout(total=10)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = ManagedProcess(
        "exchange_sim",
        "exchange_sim",
        env={"EXCHANGE_SIM_ADDR": f"127.0.0.1:{port}"},
        ready_port=port,
        log_path=tmp_path_factory.mktemp("sim") / "sim.log",
    )
    process.start()
    try:
        process.wait_ready()
        yield f"127.0.0.1:{port}"
    finally:
        assert process.stop() == 0


async def get(session: aiohttp.ClientSession, sim: str, path: str) -> tuple[int, Any, Any]:
    async with session.get(f"http://{sim}{path}", timeout=TIMEOUT) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


class ReferenceBook:
    """§8 exactly: prices and quantities as Decimal, keyed by exact value."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.id: int = snapshot["lastUpdateId"]
        self.bids = {Decimal(p): Decimal(q) for p, q in snapshot["bids"]}
        self.asks = {Decimal(p): Decimal(q) for p, q in snapshot["asks"]}

    def apply(self, event: dict[str, Any]) -> None:
        for side, levels in ((self.bids, event["b"]), (self.asks, event["a"])):
            for price, qty in levels:
                if Decimal(qty) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = Decimal(qty)
        self.id = event["u"]


async def test_rest_market_data_shapes_and_weights(sim: str) -> None:
    async with aiohttp.ClientSession() as session:
        status, info, headers = await get(session, sim, "/api/v3/exchangeInfo?symbol=BTCUSDT")
        assert status == 200 and int(headers["X-MBX-USED-WEIGHT-1M"]) >= 20
        (symbol,) = info["symbols"]
        filters = {f["filterType"]: f for f in symbol["filters"]}
        assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
        assert {"LOT_SIZE", "MARKET_LOT_SIZE", "NOTIONAL"} <= filters.keys()
        assert any(r["rateLimitType"] == "REQUEST_WEIGHT" for r in info["rateLimits"])

        before = int(headers["X-MBX-USED-WEIGHT-1M"])
        status, book, headers = await get(session, sim, "/api/v3/depth?symbol=BTCUSDT&limit=500")
        assert status == 200 and int(headers["X-MBX-USED-WEIGHT-1M"]) == before + 25
        bids = [Decimal(p) for p, _ in book["bids"]]
        asks = [Decimal(p) for p, _ in book["asks"]]
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
        assert len(bids) >= 250  # a realistic book: hundreds of levels a side

        status, klines, _ = await get(session, sim, "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=5")
        assert status == 200 and all(len(row) == 12 for row in klines)
        status, error, _ = await get(session, sim, "/api/v3/klines?symbol=BTCUSDT&interval=2m")
        assert status == 400 and error["code"] == -1120
        status, error, _ = await get(session, sim, "/api/v3/depth?symbol=NOPEUSDT")
        assert status == 400 and error["code"] == -1121
        status, error, _ = await get(session, sim, "/api/v3/depth")
        assert status == 400 and error["code"] == -1102
        status, tickers, _ = await get(session, sim, '/api/v3/ticker/price?symbols=["BTCUSDT","ETHUSDT"]')
        assert status == 200 and [t["symbol"] for t in tickers] == ["BTCUSDT", "ETHUSDT"]
        status, ticker, _ = await get(session, sim, "/api/v3/ticker/24hr?symbol=ETHUSDT")
        assert status == 200 and ticker["symbol"] == "ETHUSDT" and "weightedAvgPrice" in ticker
        status, retired, _ = await get(session, sim, "/api/v3/time")
        assert status == 200 and abs(retired["serverTime"] - time.time() * 1000) < 5000
        async with session.post(f"http://{sim}/api/v3/userDataStream", timeout=TIMEOUT) as resp:
            assert resp.status == 410  # listenKey streams are retired


async def test_book_rebuilt_from_diffs_matches_book_ticker(sim: str) -> None:
    """Buffer diffs, fetch the snapshot, bridge, apply with strict continuity; at every
    bookTicker whose u equals the book's id, best bid and ask (price and quantity) must match."""
    streams = "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://{sim}/stream?streams={streams}", timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws,
    ):
        buffered: list[dict[str, Any]] = []
        tickers: dict[int, dict[str, Any]] = {}
        trades = 0

        async def receive() -> tuple[str, dict[str, Any]]:
            message = await asyncio.wait_for(ws.receive(), timeout=5)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            frame = orjson.loads(message.data)
            return frame["stream"], frame["data"]

        while len(buffered) < 3:  # buffer before the snapshot (step 2)
            stream, data = await receive()
            if stream.endswith("@depth@100ms"):
                buffered.append(data)
        status, snapshot, _ = await get(session, sim, "/api/v3/depth?symbol=BTCUSDT&limit=5000")
        assert status == 200 and snapshot["lastUpdateId"] >= buffered[0]["U"]
        book = ReferenceBook(snapshot)
        pending = [e for e in buffered if e["u"] > book.id]
        checkpoints = mismatches = 0
        deadline = time.monotonic() + 8
        applied = 0
        while time.monotonic() < deadline:
            while pending:
                event = pending.pop(0)
                if applied == 0:
                    assert event["U"] <= book.id + 1 <= event["u"], "first diff must bridge the snapshot"
                else:
                    assert event["U"] == book.id + 1, f"gap: U={event['U']} after u={book.id}"
                assert event["e"] == "depthUpdate" and event["s"] == "BTCUSDT"
                book.apply(event)
                applied += 1
                ticker = tickers.pop(book.id, None)
                if ticker is not None:
                    checkpoints += 1
                    best_bid = max(book.bids)
                    best_ask = min(book.asks)
                    expected = (Decimal(ticker["b"]), Decimal(ticker["B"]), Decimal(ticker["a"]), Decimal(ticker["A"]))
                    mismatches += (best_bid, book.bids[best_bid], best_ask, book.asks[best_ask]) != expected
                assert max(book.bids) < min(book.asks), "crossed book"
            stream, data = await receive()
            if stream.endswith("@depth@100ms"):
                pending.append(data)
            elif stream.endswith("@bookTicker"):
                assert set(data) == {"u", "s", "b", "B", "a", "A"}  # no e/E, as Binance sends it
                tickers[data["u"]] = data
            else:
                assert data["e"] == "trade" and {"t", "p", "q", "T", "m"} <= data.keys()
                trades += 1
        assert applied >= 40, "the synthetic market should produce ~10 diffs a second"
        assert trades > 0
        assert checkpoints >= 3, "too few bookTicker checkpoints to judge the book"
        assert mismatches == 0


async def test_partial_depth_and_kline_streams(sim: str) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(f"ws://{sim}/ws/ethusdt@depth5@100ms") as ws:
        message = await asyncio.wait_for(ws.receive(), timeout=5)
        data = orjson.loads(message.data)
        assert set(data) == {"lastUpdateId", "bids", "asks"} and len(data["bids"]) == 5
        await ws.send_str(orjson.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@kline_1s"], "id": 7}).decode())
        while True:
            data = orjson.loads((await asyncio.wait_for(ws.receive(), timeout=5)).data)
            if data.get("e") == "kline":
                assert data["k"]["i"] == "1s" and data["s"] == "ETHUSDT"
                break


def test_unknown_symbol_configuration_is_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "exchange_sim", "--sim-symbols", "FOO"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 2 and "SIM_SYMBOLS" in result.stderr
