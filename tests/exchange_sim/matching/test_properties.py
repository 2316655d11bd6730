"""Property test: random order flow between ordinary accounts never makes a balance
negative, never leaves a crossed book, conserves every asset (free + locked over accounts
+ commission collected), keeps locks equal to what open orders need, keeps book update ids
contiguous (the changes rebuild the book), and leaves everything unchanged on a rejection."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_sim.matching import (
    EngineError,
    LotSizeFilter,
    MatchingEngine,
    OrderView,
    PriceFilter,
    SelfTradePreventionMode,
    Side,
    SymbolSpec,
)

from . import D, make_spec

ACCOUNTS = ("a", "b", "c")
SYMBOL = "BTCUSDT"

# Funds are small so that insufficient balance happens. "exact": every notional fits the
# quote precision. "rounding": tickSize * stepSize has 9 decimals and the commission rates
# are odd, so notional and commission are floored.
SPECS = {
    "exact": (make_spec(), D("100"), D("0.01"), D("0.001"), {"USDT": "25", "BTC": "0.25"}),
    "rounding": (
        SymbolSpec(
            SYMBOL,
            "BTC",
            "USDT",
            PriceFilter(D("0.00001"), D("1000"), D("0.00001")),
            LotSizeFilter(D("0.0001"), D("1000"), D("0.0001")),
            maker_commission=D("0.00075"),
            taker_commission=D("0.000123"),
        ),
        D("0.05"),
        D("0.00001"),
        D("0.0001"),
        {"USDT": "0.0006", "BTC": "0.012"},
    ),
}

STP_MODES = st.sampled_from([None, *SelfTradePreventionMode])
account_ = st.sampled_from(ACCOUNTS)
side_ = st.sampled_from(["BUY", "SELL"])
offset = st.integers(-8, 8)
lots = st.integers(1, 60)

OPS = st.one_of(
    st.tuples(
        st.just("limit"), account_, side_, offset, lots, st.sampled_from(["GTC", "GTC", "IOC", "FOK"]), STP_MODES
    ),
    st.tuples(st.just("maker"), account_, side_, offset, lots),
    st.tuples(st.just("market"), account_, side_, lots, STP_MODES),
    st.tuples(st.just("quote"), account_, side_, st.integers(1, 60), STP_MODES),
    st.tuples(
        st.just("stop"),
        account_,
        side_,
        st.sampled_from(["STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]),
        offset,
        offset,
        lots,
    ),
    st.tuples(st.just("cancel"), account_, st.integers(0, 50)),
    st.tuples(st.just("cancel_all"), account_),
)


def state(engine: MatchingEngine) -> Any:
    return (
        [engine.balances(a) for a in ACCOUNTS],
        engine.depth(SYMBOL, 5000),
        [engine.open_orders(a) for a in ACCOUNTS],
        engine.fees_collected(),
        engine.last_price(SYMBOL),
    )


def run_op(engine: MatchingEngine, op: tuple[Any, ...], mid: Decimal, tick: Decimal, step: Decimal, now: int) -> Any:
    kind = op[0]
    if kind == "limit":
        _, account, side, off, n, tif, stp = op
        return engine.place_order(
            account,
            SYMBOL,
            side,
            "LIMIT",
            price=mid + off * tick,
            quantity=n * step,
            time_in_force=tif,
            self_trade_prevention_mode=stp,
            now_ms=now,
        )
    if kind == "maker":
        _, account, side, off, n = op
        return engine.place_order(
            account, SYMBOL, side, "LIMIT_MAKER", price=mid + off * tick, quantity=n * step, now_ms=now
        )
    if kind == "market":
        _, account, side, n, stp = op
        return engine.place_order(
            account, SYMBOL, side, "MARKET", quantity=n * step, self_trade_prevention_mode=stp, now_ms=now
        )
    if kind == "quote":
        _, account, side, n, stp = op
        return engine.place_order(
            account,
            SYMBOL,
            side,
            "MARKET",
            quote_order_qty=n * mid * step / 4,
            self_trade_prevention_mode=stp,
            now_ms=now,
        )
    if kind == "stop":
        _, account, side, order_type, stop_off, price_off, n = op
        extra: dict[str, Any] = {}
        if order_type.endswith("_LIMIT"):
            extra = {"price": mid + price_off * tick, "time_in_force": "GTC"}
        return engine.place_order(
            account,
            SYMBOL,
            side,
            order_type,
            stop_price=mid + stop_off * tick,
            quantity=n * step,
            now_ms=now,
            **extra,
        )
    if kind == "cancel":
        _, account, pick = op
        open_orders = engine.open_orders(account, SYMBOL)
        if not open_orders:
            return None
        return engine.cancel_order(account, SYMBOL, order_id=open_orders[pick % len(open_orders)].order_id, now_ms=now)
    _, account = op
    return engine.cancel_open_orders(account, SYMBOL, now_ms=now)


def lock_needed(order: OrderView, quote_exp: Decimal) -> tuple[str, Decimal]:
    remaining = order.orig_qty - order.executed_qty - order.prevented_quantity
    if order.side is Side.SELL:
        return "BTC", remaining
    if order.type in ("STOP_LOSS", "TAKE_PROFIT"):  # not triggered yet (else it is not open)
        return "USDT", (order.stop_price * remaining).quantize(quote_exp, rounding=ROUND_CEILING)
    return "USDT", (order.price * remaining).quantize(quote_exp, rounding=ROUND_CEILING)


@pytest.mark.parametrize("spec_name", list(SPECS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OPS, min_size=30, max_size=100))
def test_random_order_flow_keeps_the_invariants(spec_name: str, ops: list[tuple[Any, ...]]) -> None:
    spec, mid, tick, step, funds = SPECS[spec_name]
    engine = MatchingEngine([spec])
    for account in ACCOUNTS:
        engine.open_account(account, funds)
    initial = {asset: D(amount) * len(ACCOUNTS) for asset, amount in funds.items()}
    quote_exp = Decimal(1).scaleb(-spec.quote_asset_precision)
    mirror: dict[tuple[Side, Decimal], Decimal] = {}
    last_update_id = 0

    for now, op in enumerate(ops, start=1):
        before = state(engine)
        try:
            result = run_op(engine, op, mid, tick, step, now * 1000)
        except EngineError:
            assert state(engine) == before, f"rejected {op} changed the state"
            continue
        if result is None:
            continue

        # Book changes: contiguous update ids that rebuild the book exactly.
        for change in result.book_changes:
            assert change.update_id == last_update_id + 1
            last_update_id = change.update_id
            if change.qty == 0:
                del mirror[(change.side, change.price)]
            else:
                mirror[(change.side, change.price)] = change.qty
        update_id, bids, asks = engine.depth(SYMBOL, 5000)
        assert update_id == last_update_id
        assert {(Side.BUY, p): q for p, q in bids} | {(Side.SELL, p): q for p, q in asks} == mirror

        # Never crossed.
        if bids and asks:
            assert bids[0][0] < asks[0][0]

        # Nothing negative; locks are exactly what the open orders need.
        totals = dict.fromkeys(initial, D(0))
        for account in ACCOUNTS:
            needed = dict.fromkeys(initial, D(0))
            for order in engine.open_orders(account, SYMBOL):
                assert order.status in ("NEW", "PARTIALLY_FILLED")
                assert D(0) <= order.executed_qty + order.prevented_quantity < order.orig_qty
                asset, amount = lock_needed(order, quote_exp)
                needed[asset] += amount
            for balance in engine.balances(account):
                assert balance.free >= 0 and balance.locked >= 0, (account, balance)
                assert balance.locked == needed[balance.asset], (account, balance, needed)
                totals[balance.asset] += balance.free + balance.locked

        # Conservation: what the accounts hold plus the commission collected.
        fees = engine.fees_collected()
        for asset, amount in initial.items():
            assert totals[asset] + fees.get(asset, D(0)) == amount, (asset, totals, fees)

    # Every trade is between two of these accounts: one buyer entry per public trade id.
    assert engine.last_trade_id(SYMBOL) == sum(
        1 for a in ACCOUNTS for t in engine.my_trades(a, SYMBOL, limit=1000) if t.is_buyer
    )
