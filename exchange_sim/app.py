"""Assembles the simulator: engine, venue, synthetic market, REST and stream routes, and the
market clock task (owned by the app, cancelled on cleanup)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from exchange_sim.config import SimConfig
from exchange_sim.hub import StreamHub
from exchange_sim.market.synthetic import SyntheticMarket
from exchange_sim.matching import MatchingEngine
from exchange_sim.symbols import symbol_setup
from exchange_sim.venue import Venue
from exchange_sim.wire import rest
from exchange_sim.wire.ratelimit import RateLimiter
from exchange_sim.wire.streams import add_stream_routes

log = logging.getLogger(__name__)

TICK_SECONDS = 0.1  # the depth@100ms cadence; 1000 ms streams flush every tenth tick
MARKET = web.AppKey("market", SyntheticMarket)
HUB = web.AppKey("hub", StreamHub)


async def run_market_clock(venue: Venue, market: SyntheticMarket) -> None:
    """Advance the synthetic market and flush timed streams at Binance's cadences."""
    ticks = 0
    next_at = time.monotonic()
    while True:
        now = int(time.time() * 1000)
        market.step(now, TICK_SECONDS)
        venue.flush_100ms(now)
        ticks += 1
        if ticks % 10 == 0:
            venue.flush_1000ms(now)
        next_at += TICK_SECONDS
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def create_app(config: SimConfig) -> web.Application:
    app = web.Application()
    engine = MatchingEngine()
    hub = StreamHub()
    venue = Venue(engine, hub)
    now = int(time.time() * 1000)
    market = SyntheticMarket(engine, config.seed, venue.apply)
    for symbol in config.symbols:
        spec, profile = symbol_setup(symbol)
        venue.add_symbol(spec)
        market.add(spec, profile, now)
    app[rest.VENUE] = venue
    app[rest.LIMITER] = RateLimiter()
    app[MARKET] = market
    app[HUB] = hub

    async def market_clock(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run_market_clock(venue, market), name="market-clock")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(market_clock)
    rest.add_routes(app)
    add_stream_routes(app, hub)
    return app
