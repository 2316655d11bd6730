"""Assembles the simulator: engine, venue, synthetic market, REST and stream routes, and the
market clock task (owned by the app, cancelled on cleanup)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from exchange_sim.accounts import AccountDirectory, demo_account
from exchange_sim.config import SimConfig
from exchange_sim.faults import FaultPlan
from exchange_sim.hub import StreamHub
from exchange_sim.market.patterns import PatternRunner
from exchange_sim.market.replay import REPLAY, Replay
from exchange_sim.market.synthetic import SyntheticMarket
from exchange_sim.matching import MatchingEngine
from exchange_sim.symbols import symbol_setup
from exchange_sim.venue import Venue
from exchange_sim.wire import rest, trading
from exchange_sim.wire.control import add_control_routes
from exchange_sim.wire.ratelimit import RateLimitConfig, RateLimiter
from exchange_sim.wire.streams import add_stream_routes
from exchange_sim.wire.trading import TradingDesk
from exchange_sim.wire.ws_api import add_ws_api_routes

log = logging.getLogger(__name__)

TICK_SECONDS = 0.1  # the depth@100ms cadence; 1000 ms streams flush every tenth tick
MARKET = web.AppKey("market", SyntheticMarket)
HUB = web.AppKey("hub", StreamHub)


async def run_market_clock(
    venue: Venue, market: SyntheticMarket, clock: Callable[[], int], patterns: PatternRunner | None = None
) -> None:
    """Advance the synthetic market (and any anomaly pattern) and flush timed streams at Binance's cadences."""
    ticks = 0
    next_at = time.monotonic()
    while True:
        now = clock()
        market.step(now, TICK_SECONDS)
        if patterns is not None:
            patterns.step(now)
        venue.flush_100ms(now)
        ticks += 1
        if ticks % 10 == 0:
            venue.flush_1000ms(now)
        next_at += TICK_SECONDS
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def create_app(config: SimConfig) -> web.Application:
    app = web.Application()
    engine = MatchingEngine()
    faults = FaultPlan()  # always present (nothing armed unless SIM_CONTROL=on); it holds the clock
    clock = faults.clock.now_ms
    hub = StreamHub(clock=clock)
    venue = Venue(engine, hub)
    now = clock()
    limiter = RateLimiter(RateLimitConfig.small(weight_per_minute=config.weight_per_minute))
    accounts = AccountDirectory(engine)
    # Every engine result, the market's own too, goes through the desk: user events and order counts.
    desk = TradingDesk(venue, limiter, accounts, clock)
    market = SyntheticMarket(engine, config.seed, desk.apply)
    patterns = PatternRunner(engine, desk.apply)
    replay = Replay.load(config.replay, hub, config.replay_speed) if config.replay else None
    for symbol in config.symbols:
        if replay is not None and replay.serves(symbol):
            continue  # a replayed symbol gets no synthetic flow
        spec, profile = symbol_setup(symbol)
        venue.add_symbol(spec)
        market.add(spec, profile, now)
        patterns.add_symbol(spec)
    if replay is not None:
        for symbol in replay.symbols:
            venue.add_symbol(replay.spec(symbol))
        app[REPLAY] = replay
    accounts.open_all(config.accounts, demo_account(config.api_key, config.api_secret))  # after the symbols
    app[rest.VENUE] = venue
    app[rest.LIMITER] = limiter
    app[rest.FAULTS] = faults
    app[MARKET] = market
    app[HUB] = hub

    async def market_clock(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run_market_clock(venue, market, clock, patterns), name="market-clock")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(market_clock)
    if replay is not None:
        running_replay = replay

        async def replay_tasks(app: web.Application) -> AsyncIterator[None]:
            running_replay.listen()
            yield
            await running_replay.stop()

        app.cleanup_ctx.append(replay_tasks)
    rest.add_routes(app)
    trading.add_routes(app, desk)
    add_ws_api_routes(app, desk, faults)
    add_stream_routes(app, hub)
    if config.control:
        add_control_routes(app, faults, hub, replay, patterns)
    return app
