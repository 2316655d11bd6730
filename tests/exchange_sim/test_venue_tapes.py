"""The venue's trade tapes behind GET /api/v3/trades and /api/v3/aggTrades.

The answers, and the @trade and @aggTrade events, are pinned to a recording (sha256 of each body, in
`tape_answers.json`) made from a deterministic venue, so a change in how the tapes are stored cannot
change a single byte on the wire. After an intended change of the answers, record again with
``SIM_TAPE_ANSWERS=record`` and review the diff.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exchange_sim import venue as venue_module
from exchange_sim.hub import StreamHub
from exchange_sim.matching import Trade
from exchange_sim.venue import TAPE_LENGTH, Venue
from exchange_sim.wire import rest
from exchange_sim.wire.ratelimit import RateLimitConfig, RateLimiter
from tests.exchange_sim.matching import SYMBOL, make_engine, make_spec

ANSWERS = Path(__file__).with_name("tape_answers.json")
T0 = 1_800_000_000_000
EMPTY = "ETHUSDT"  # a listed symbol that never trades
SMALL_TAPE = 128  # shorter than the history, so the oldest trades have left the tapes


def trading_venue(hub: StreamHub | None = None) -> Venue:
    """BTCUSDT traded by three market-maker accounts (no balances to run out), and EMPTY beside it."""
    venue = Venue(make_engine(), hub or StreamHub())
    venue.engine.open_account("maker2", market_maker=True)
    venue.engine.open_account("taker", market_maker=True)
    venue.add_symbol(make_spec(symbol=EMPTY, base_asset="ETH"))
    return venue


def trade_round(
    venue: Venue, rng: random.Random, now: int, levels: int, makers: int, ticks: int = 20_000
) -> list[Trade]:
    """Makers rest 1..`levels` price levels of 1..`makers` orders each, the best one of `ticks` prices
    from 19900.00; one market order takes them all, so it yields one aggregate trade per level and one
    trade per maker order."""
    engine = venue.engine
    taker_side = rng.choice(("BUY", "SELL"))
    maker_side, step = ("SELL", 1) if taker_side == "BUY" else ("BUY", -1)
    best = rng.randrange(1_990_000, 1_990_000 + ticks)  # price in ticks of 0.01
    total = 0
    for level in range(rng.randint(1, levels)):
        price = f"{(best + step * level * rng.randint(1, 3)) / 100:.2f}"
        for _ in range(rng.randint(1, makers)):
            qty = rng.randrange(1, 5_000)  # in steps of 0.001
            total += qty
            maker = rng.choice(("mm", "maker2"))
            quantity = f"{qty / 1000:.3f}"
            venue.apply(
                engine.place_order(
                    maker, SYMBOL, maker_side, "LIMIT", price=price, quantity=quantity, now_ms=now, time_in_force="GTC"
                )
            )
    taken = engine.place_order("taker", SYMBOL, taker_side, "MARKET", quantity=f"{total / 1000:.3f}", now_ms=now)
    venue.apply(taken)
    return list(taken.trades)


def trade_history(venue: Venue, rounds: int, seed: int = 11) -> list[Trade]:
    """A few hundred trades over about a minute: several per millisecond at times, gaps of a second at others."""
    rng = random.Random(seed)
    now, trades = T0, []
    for _ in range(rounds):
        now += rng.choice((0, 1, 7, 250, 1000))
        trades += trade_round(venue, rng, now, levels=3, makers=3)
    return trades


def queries(trades: list[Trade], aggs: int) -> list[str]:
    """Every parameter combination the two handlers tell apart, around the edges of the history."""
    first, mid, last = trades[0].time, trades[len(trades) // 2].time, trades[-1].time
    middle = aggs // 2
    recent = [f"symbol={SYMBOL}"] + [f"symbol={SYMBOL}&limit={n}" for n in (1, 250, 1000, 5000, 0, "x")]
    recent += [f"symbol={SYMBOL}&fromId=5", f"symbol={SYMBOL.lower()}&limit=3", f"symbol={EMPTY}"]
    agg = [f"symbol={SYMBOL}"] + [f"symbol={SYMBOL}&limit={n}" for n in (1, 37, 1000, 5000, 0)]
    agg += [f"symbol={SYMBOL}&fromId={n}" for n in (0, 1, middle, aggs, aggs + 1, -1, "x")]
    agg += [
        f"symbol={SYMBOL}&fromId={middle}&limit=10",
        f"symbol={SYMBOL}&fromId={middle}&limit=5000",
        f"symbol={SYMBOL}&fromId={middle}&startTime={first}&endTime={mid}",  # fromId wins
        f"symbol={SYMBOL}&startTime={mid}",
        f"symbol={SYMBOL}&startTime={mid}&limit=5",
        f"symbol={SYMBOL}&endTime={mid}",
        f"symbol={SYMBOL}&endTime={mid}&limit=5",
        f"symbol={SYMBOL}&startTime={first}&endTime={last}&limit=1000",
        f"symbol={SYMBOL}&startTime={mid}&endTime={mid}",
        f"symbol={SYMBOL}&startTime={last}&endTime={last}",  # several aggregates in that millisecond
        f"symbol={SYMBOL}&startTime={mid}&endTime={mid + 1000}&limit=3",
        f"symbol={SYMBOL}&startTime={first - 1}&limit=2",
        f"symbol={SYMBOL}&startTime={last + 1}",
        f"symbol={SYMBOL}&endTime={first - 1}",
        f"symbol={SYMBOL}&endTime={last}&limit=4",
        f"symbol={SYMBOL}&startTime=x",
        f"symbol={EMPTY}&startTime={first}",
        f"symbol={EMPTY}",
    ]
    return [f"/api/v3/trades?{q}" for q in recent] + [f"/api/v3/aggTrades?{q}" for q in agg]


def recording(answers: dict[str, str], prefix: str) -> dict[str, str]:
    """The recorded answers whose keys start with `prefix` (with SIM_TAPE_ANSWERS=record: `answers`, now recorded)."""
    recorded: dict[str, str] = json.loads(ANSWERS.read_text()) if ANSWERS.exists() else {}
    if os.environ.get("SIM_TAPE_ANSWERS") == "record":
        recorded = {k: v for k, v in recorded.items() if not k.startswith(prefix)} | answers
        ANSWERS.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    return {k: v for k, v in recorded.items() if k.startswith(prefix)}


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Venue], TestClient[web.Request, web.Application]]]:
    clients: list[TestClient[web.Request, web.Application]] = []

    def _serve(venue: Venue) -> TestClient[web.Request, web.Application]:
        app = web.Application()
        app[rest.VENUE] = venue
        app[rest.LIMITER] = RateLimiter(RateLimitConfig.small(weight_per_minute=10**9))
        rest.add_routes(app)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        clients.append(client)
        return client

    yield _serve
    for client in clients:
        await client.close()


@pytest.mark.parametrize("tape_length", [TAPE_LENGTH, SMALL_TAPE])
async def test_tape_answers_are_byte_for_byte_the_recorded_ones(
    tape_length: int,
    serve: Callable[[Venue], TestClient[web.Request, web.Application]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(venue_module, "TAPE_LENGTH", tape_length)
    venue = trading_venue()
    trades = trade_history(venue, rounds=150)
    aggs = venue.feeds[SYMBOL].next_agg_id - 1
    assert 400 <= len(trades) <= 1000 and SMALL_TAPE < aggs < len(trades)
    client = serve(venue)
    await client.start_server()
    answers: dict[str, str] = {}
    for query in queries(trades, aggs):
        async with client.get(query) as resp:
            answers[f"{tape_length} {query}"] = f"{resp.status} {hashlib.sha256(await resp.read()).hexdigest()}"
    assert answers == recording(answers, prefix=f"{tape_length} ")


async def test_historical_trades_start_at_the_id_asked_for(
    serve: Callable[[Venue], TestClient[web.Request, web.Application]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(venue_module, "TAPE_LENGTH", SMALL_TAPE)  # the oldest trades have left the tape
    venue = trading_venue()
    trades = trade_history(venue, rounds=150)
    client = serve(venue)
    await client.start_server()

    async def ids(query: str) -> list[int]:
        async with client.get(f"/api/v3/historicalTrades?symbol={SYMBOL}&{query}") as resp:
            assert resp.status == 200, await resp.text()
            return [t["id"] for t in await resp.json()]

    kept = [t.trade_id for t in trades[-SMALL_TAPE:]]
    middle = kept[len(kept) // 2]
    assert await ids(f"fromId={middle}&limit=3") == [middle, middle + 1, middle + 2]
    assert await ids(f"fromId={kept[-1]}") == [kept[-1]]
    assert await ids(f"fromId={kept[-1] + 1}") == []
    assert await ids("fromId=1&limit=2") == kept[:2]  # as far back as the tape still holds
    assert await ids("limit=4") == kept[-4:]  # no fromId: the latest, as /api/v3/trades
    async with (
        client.get(f"/api/v3/historicalTrades?symbol={SYMBOL}&fromId={middle}&limit=2") as historical,
        client.get(f"/api/v3/trades?symbol={SYMBOL}&limit={SMALL_TAPE}") as recent,
    ):
        same = [t for t in await recent.json() if t["id"] in (middle, middle + 1)]
        assert await historical.json() == same
    async with client.get(f"/api/v3/historicalTrades?symbol={SYMBOL}&fromId=x") as resp:
        assert resp.status == 400 and (await resp.json())["code"] == -1100


class TradeStreamHub(StreamHub):
    """Someone listens to the trade streams of SYMBOL; keeps every payload published to them."""

    def __init__(self) -> None:
        super().__init__()
        self.payloads: dict[str, list[bytes]] = {f"{SYMBOL.lower()}@trade": [], f"{SYMBOL.lower()}@aggTrade": []}

    def has_subscribers(self, stream: str) -> bool:
        return stream in self.payloads

    def publish(self, stream: str, payload: bytes) -> None:
        self.payloads[stream].append(payload)


def test_trade_stream_events_are_byte_for_byte_the_recorded_ones() -> None:
    """The @aggTrade events are built from the tape entries too."""
    hub = TradeStreamHub()
    venue = trading_venue(hub)
    trade_history(venue, rounds=150)
    assert len(hub.payloads[f"{SYMBOL.lower()}@aggTrade"]) == venue.feeds[SYMBOL].next_agg_id - 1
    answers = {f"stream {name}": hashlib.sha256(b"\n".join(sent)).hexdigest() for name, sent in hub.payloads.items()}
    assert answers == recording(answers, prefix="stream ")


def fill_tapes(venue: Venue) -> None:
    """Trade until both tapes of SYMBOL hold TAPE_LENGTH entries."""
    rng = random.Random(5)
    now = T0
    feed = venue.feeds[SYMBOL]
    while len(feed.agg_trades) < TAPE_LENGTH:
        now += rng.choice((0, 1, 100))
        trade_round(venue, rng, now, levels=2, makers=2, ticks=5)  # a few prices, as in the synthetic market


def test_full_tapes_hold_atomic_tuples_the_gc_does_not_track() -> None:
    """Millions of GC-tracked tape entries made the simulator's full collections slow (201 symbols)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        venue = trading_venue()
        fill_tapes(venue)
        feed = venue.feeds[SYMBOL]
        gc.collect()
        full = tracemalloc.get_traced_memory()[0]
        assert len(feed.trades) == len(feed.agg_trades) == TAPE_LENGTH
        for tape in (feed.trades, feed.agg_trades):
            assert {type(entry) for entry in tape} == {tuple}
            assert {type(value) for entry in tape for value in entry} == {int, str, bool}
            assert not any(gc.is_tracked(entry) for entry in tape)
        feed.trades.clear()
        feed.agg_trades.clear()
        gc.collect()
        freed = full - tracemalloc.get_traced_memory()[0]
    finally:
        if started:
            tracemalloc.stop()
    # Generous (about 4.4 MiB here), yet below the 5.8 MiB the same tapes took as dataclasses of Decimals.
    assert freed < 5.5 * 2**20
