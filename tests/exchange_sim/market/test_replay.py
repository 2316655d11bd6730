"""Replay of the recorded files (../shared/data/binance-recorded/): the pure book and scan, then the
simulator over real sockets with a client written from the reference (§7, §8), not provider code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType, web

from exchange_sim.app import create_app
from exchange_sim.config import SimConfig, load_config
from exchange_sim.market.recorded import RecordKind, read_recorded
from exchange_sim.market.replay import ReplayBook, due_offset_s, replay_spec, scan_file
from service_runtime.config import Address, ConfigError

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "binance-recorded"
BTC = DATA / "hftbacktest_spot_btcusdt_20240808.gz"
ETH = DATA / "hftbacktest_spot_ethusdt_20240808.gz"
CRYPTOFEED = DATA / "cryptofeed_BINANCE.jsonl.zst"
WAIT = 10.0
TIMEOUT = aiohttp.ClientTimeout(total=WAIT)

pytestmark = pytest.mark.skipif(not BTC.is_file(), reason="recorded data not present")


# --------------------------------------------------------------------------- pure core

SNAPSHOT = {
    "lastUpdateId": 100,
    "bids": [["10.00", "1.0"], ["9.00", "2.0"]],
    "asks": [["11.00", "1.5"], ["12.00", "3"]],
}


def diff(first: int, last: int, bids: list[list[str]], asks: list[list[str]]) -> dict[str, Any]:
    return {"e": "depthUpdate", "E": 1, "s": "X", "U": first, "u": last, "b": bids, "a": asks}


def test_book_serves_the_recorded_snapshot_until_a_diff_passes_it() -> None:
    book = ReplayBook("X", SNAPSHOT)
    book.apply(diff(90, 100, [["10.00", "0"]], []))  # covered by the snapshot
    assert book.depth(100) == SNAPSHOT and not book.built
    book.apply(diff(95, 103, [["10.00", "0.00000000"], ["9.50", "4.10"]], [["11.00", "2.5"]]))  # bridges 101
    assert book.built and book.last_update_id == 103
    assert book.depth(100) == {
        "lastUpdateId": 103,
        "bids": [["9.50", "4.10"], ["9.00", "2.0"]],  # the recorded strings, best first
        "asks": [["11.00", "2.5"], ["12.00", "3"]],
    }
    assert book.depth(1) == {"lastUpdateId": 103, "bids": [["9.50", "4.10"]], "asks": [["11.00", "2.5"]]}
    book.apply(diff(110, 111, [], [["11.0", "0"]]))  # 104..109 missing in the recording; 11.0 == 11.00
    assert book.gaps == 1 and book.depth(5)["asks"] == [["12.00", "3"]]


def test_snapshot_depth_respects_the_limit() -> None:
    assert ReplayBook("X", SNAPSHOT).depth(1) == {
        "lastUpdateId": 100,
        "bids": [["10.00", "1.0"]],
        "asks": [["11.00", "1.5"]],
    }


def test_pace() -> None:
    assert due_offset_s(3_000_000_000, 1_000_000_000, 1.0) == 2.0
    assert due_offset_s(3_000_000_000, 1_000_000_000, 4.0) == 0.5
    assert due_offset_s(3_000_000_000, 1_000_000_000, 0.0) == 0.0


def test_scan_finds_symbols_snapshots_and_recorded_filters() -> None:
    btc = scan_file(BTC, read_recorded(BTC))
    assert btc.symbols == ("BTCUSDT",) and btc.snapshots["BTCUSDT"]["lastUpdateId"] == 50093239218
    feed = scan_file(CRYPTOFEED, read_recorded(CRYPTOFEED))
    assert set(feed.symbols) == {"NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"}
    nkn = replay_spec("NKNUSDT", feed.symbol_info["NKNUSDT"])
    assert str(nkn.price_filter.tick_size.normalize()) == "0.0001"
    assert replay_spec("BTCUSDT", None).price_filter.tick_size == Decimal("0.01")


def test_settings() -> None:
    config = load_config(["--sim-replay", f"{BTC},{ETH}", "--sim-replay-speed", "0"], {})
    assert config.replay == (BTC, ETH) and config.replay_speed == 0.0
    assert load_config([], {}).replay == () and load_config([], {}).replay_speed == 1.0
    with pytest.raises(ConfigError, match="SIM_REPLAY"):
        load_config([], {"SIM_REPLAY": "/nonexistent/x.gz"})
    with pytest.raises(ConfigError, match="SIM_REPLAY_SPEED"):
        load_config([], {"SIM_REPLAY_SPEED": "-1"})


# --------------------------------------------------------------------------- over the wire


class ReferenceBook:
    """§8 with exact decimals, as a client written from the reference keeps it."""

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


Start = Callable[..., Awaitable[str]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    runners: list[web.AppRunner] = []

    async def _start(*files: Path, speed: float = 0.0) -> str:
        config = SimConfig(
            Address("127.0.0.1", 0), ("BTCUSDT", "BNBUSDT"), 1, control=True, replay=files, replay_speed=speed
        )
        runner = web.AppRunner(create_app(config), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield _start
    for runner in runners:
        await asyncio.wait_for(runner.cleanup(), WAIT)


async def get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=TIMEOUT) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_client_rebuilds_the_replayed_book_and_matches_book_ticker(start: Start) -> None:
    base = await start(BTC)
    first_record = next(r for r in read_recorded(BTC) if r.stream is not None)
    async with aiohttp.ClientSession() as session:
        info = await get(session, base + "/api/v3/exchangeInfo")
        symbols = {s["symbol"]: s for s in info["symbols"]}
        assert set(symbols) == {"BTCUSDT", "BNBUSDT"}
        price_filter = next(f for f in symbols["BTCUSDT"]["filters"] if f["filterType"] == "PRICE_FILTER")
        assert price_filter["tickSize"] == "0.01000000"
        status = await get(session, base + "/control/replay")
        assert status["files"][0]["started"] is False  # nobody subscribed yet
        before = await get(session, base + "/api/v3/depth?symbol=BTCUSDT&limit=5000")
        assert before["lastUpdateId"] == 50093239218 and len(before["bids"]) == 1000  # the recorded snapshot
        ticker = await get(session, base + "/api/v3/ticker/bookTicker?symbol=BTCUSDT")
        assert ticker["bidPrice"] == ticker["askPrice"] == "0.00000000"  # no synthetic flow on a replayed symbol

        ws = await session.ws_connect(base + "/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker")
        buffered: list[dict[str, Any]] = []
        book: ReferenceBook | None = None
        tickers: dict[int, dict[str, Any]] = {}  # bookTicker by u: it usually arrives before its diff
        checkpoints = 0
        first_frame: str | None = None

        def check(book: ReferenceBook, ticker: dict[str, Any]) -> None:
            best_bid, best_ask = max(book.bids), min(book.asks)
            assert (best_bid, book.bids[best_bid]) == (Decimal(ticker["b"]), Decimal(ticker["B"]))
            assert (best_ask, book.asks[best_ask]) == (Decimal(ticker["a"]), Decimal(ticker["A"]))

        while checkpoints < 300:
            msg = await asyncio.wait_for(ws.receive(), WAIT)
            assert msg.type is WSMsgType.TEXT, msg
            first_frame = first_frame or msg.data
            frame = orjson.loads(msg.data)
            stream, data = frame["stream"], frame["data"]
            if stream == "btcusdt@depth@100ms":
                if book is None:
                    buffered.append(data)
                    snapshot = await get(session, base + "/api/v3/depth?symbol=BTCUSDT&limit=5000")
                    assert snapshot["lastUpdateId"] >= buffered[0]["U"] - 1  # §8 step 4: not too old
                    book = ReferenceBook(snapshot)
                    pending = [e for e in buffered if e["u"] > book.id]  # §8 step 5
                    if pending:
                        assert pending[0]["U"] <= book.id + 1 <= pending[0]["u"]
                    for event in pending:
                        book.apply(event)
                elif data["u"] > book.id:
                    assert data["U"] == book.id + 1, "gap in the replayed diffs"
                    book.apply(data)
                if book is not None:
                    ticker = tickers.pop(book.id, None)
                    if ticker is not None:
                        check(book, ticker)
                        checkpoints += 1
                    tickers = {u: t for u, t in tickers.items() if u > book.id}
            elif book is not None and data["u"] == book.id:
                check(book, data)
                checkpoints += 1
            elif book is None or data["u"] > book.id:
                tickers[data["u"]] = data
        await ws.close()
        # The client connected first, so it saw the file from its first frame, byte for byte.
        assert first_frame == first_record.raw

        deadline = time.monotonic() + WAIT
        while not (status := await get(session, base + "/control/replay"))["done"]:
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.05)
        position = status["files"][0]["position"]["BTCUSDT"]
        end = await get(session, base + "/api/v3/depth?symbol=BTCUSDT&limit=5")
        assert end["lastUpdateId"] == position["lastUpdateId"] > 50093239218


async def test_replay_started_by_control_ends_on_the_recorded_book(start: Start) -> None:
    base = await start(CRYPTOFEED)
    # The book a client rebuilds from the whole file, independently of the simulator.
    books: dict[str, ReferenceBook] = {}
    for rec in read_recorded(CRYPTOFEED):
        if rec.kind is RecordKind.DEPTH_SNAPSHOT and rec.symbol is not None:
            books[rec.symbol] = ReferenceBook(rec.payload)
        elif rec.kind is RecordKind.DEPTH_DIFF and rec.symbol in books and rec.payload["u"] > books[rec.symbol].id:
            books[rec.symbol].apply(rec.payload)
    async with aiohttp.ClientSession() as session:
        async with session.post(base + "/control/replay/start", json={}, timeout=TIMEOUT) as resp:
            assert resp.status == 200 and (await resp.json())["started"] == [CRYPTOFEED.name]
        deadline = time.monotonic() + WAIT
        while not (await get(session, base + "/control/replay"))["done"]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        for symbol, expected in books.items():
            depth = await get(session, base + f"/api/v3/depth?symbol={symbol}&limit=5000")
            assert depth["lastUpdateId"] == expected.id
            assert {Decimal(p): Decimal(q) for p, q in depth["bids"]} == expected.bids
            assert {Decimal(p): Decimal(q) for p, q in depth["asks"]} == expected.asks
            assert [Decimal(p) for p, _ in depth["bids"]] == sorted(expected.bids, reverse=True)
        status, body = 0, None
        async with session.post(base + "/control/replay/start", json={"symbol": "BNBUSDT"}) as resp:
            status, body = resp.status, await resp.json()
        assert status == 400 and body["field"] == "symbol"


async def test_replay_keeps_the_recorded_pace_scaled_by_speed(start: Start) -> None:
    records = [r for r in read_recorded(CRYPTOFEED) if r.stream is not None]
    span = (records[-1].recv_time_ns - records[0].recv_time_ns) / 1e9
    speed = span / 0.6  # the whole file in 0.6 s
    base = await start(CRYPTOFEED, speed=speed)
    async with aiohttp.ClientSession() as session:
        # Timed from before the connect: the first subscriber starts the replay, and the handshake's
        # answer can come late under load (a clock started after it saw 0.45 s of a 0.6 s replay).
        started = time.monotonic()
        ws = await session.ws_connect(base + "/ws/nknusdt@depth@100ms")  # the first subscriber starts it
        while not (await get(session, base + "/control/replay"))["done"]:
            assert time.monotonic() - started < WAIT
            await asyncio.sleep(0.02)
        assert time.monotonic() - started >= 0.5
        frames = 0
        while True:
            try:
                msg = await asyncio.wait_for(ws.receive(), 0.2)
            except TimeoutError:
                break  # quiet after the end, and still open
            assert msg.type is WSMsgType.TEXT and orjson.loads(msg.data)["e"] == "depthUpdate"
            frames += 1
        assert frames == sum(1 for r in records if r.stream == "nknusdt@depth@100ms") and not ws.closed
        await ws.close()
