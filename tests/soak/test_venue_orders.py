"""The soak reads every order of the account from the simulator, the oldest included: without an
orderId, allOrders answers only the most recent 1,000 (a 20-minute soak that placed 1,101 orders
found its first 101 "absent from the venue")."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import aiohttp

from exchange_sim.matching import OrderType, SelfTradePreventionMode, Side, TimeInForce
from soak.orders import venue_orders
from tests.exchange_sim.wire.test_trading_rest import MAKER, QUIET, start_sim

ORDERS = 1_005  # over one page of 1,000


async def test_every_order_is_read_over_pages_from_the_oldest(tmp_path: Path) -> None:
    sim, runner = await start_sim(tmp_path)
    try:
        account, now = sim.engine_id(MAKER), int(time.time() * 1000)
        for _ in range(ORDERS):  # each cancelled at once, as the soak's are (MAX_NUM_ORDERS caps open ones)
            placed = sim.engine.place_order(
                account,
                QUIET,
                Side.BUY,
                OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                quantity=Decimal("12"),
                price=Decimal("0.5"),
                self_trade_prevention_mode=SelfTradePreventionMode.NONE,
                now_ms=now,
            )
            sim.engine.cancel_order(account, QUIET, order_id=placed.order_id, now_ms=now)
        async with aiohttp.ClientSession(sim.base) as session:
            orders = await venue_orders(session, QUIET, *MAKER)
        assert [o["orderId"] for o in orders] == list(range(1, ORDERS + 1))
    finally:
        await sim.session.close()
        await runner.cleanup()
