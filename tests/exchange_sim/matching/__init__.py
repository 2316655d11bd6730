"""Shared helpers for the matching-engine tests (small, hand-checkable setups)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from exchange_sim.matching import (
    AccountPosition,
    Balance,
    ExecutionReport,
    LotSizeFilter,
    MatchingEngine,
    NotionalFilter,
    OrderResult,
    PriceFilter,
    SymbolSpec,
)

D = Decimal
SYMBOL = "BTCUSDT"


def make_spec(**overrides: Any) -> SymbolSpec:
    """BTCUSDT: tick 0.01, step 0.001 (min 0.001, max 1000), NOTIONAL min 1 (not for MARKET),
    maker 0.1 %, taker 0.2 % (different, so tests can tell them apart)."""
    fields: dict[str, Any] = {
        "symbol": SYMBOL,
        "base_asset": "BTC",
        "quote_asset": "USDT",
        "price_filter": PriceFilter(D("0.01"), D("100000"), D("0.01")),
        "lot_size": LotSizeFilter(D("0.001"), D("1000"), D("0.001")),
        "notional": NotionalFilter(D("1"), False, D("1000000"), False, 5),
        "maker_commission": D("0.001"),
        "taker_commission": D("0.002"),
    }
    fields.update(overrides)
    return SymbolSpec(**fields)


def make_engine(spec: SymbolSpec | None = None, **balances: dict[str, str]) -> MatchingEngine:
    """An engine with a market-maker account "mm" and funded ordinary accounts.

    Default: alice and bob each hold 10000 USDT and 10 BTC."""
    engine = MatchingEngine([spec or make_spec()])
    engine.open_account("mm", market_maker=True)
    if not balances:
        balances = {"alice": {"USDT": "10000", "BTC": "10"}, "bob": {"USDT": "10000", "BTC": "10"}}
    for account, amounts in balances.items():
        engine.open_account(account, amounts)
    return engine


def limit(
    engine: MatchingEngine,
    account: str,
    side: str,
    price: str,
    qty: str,
    tif: str = "GTC",
    now: int = 1000,
    **kwargs: Any,
) -> OrderResult:
    return engine.place_order(
        account, SYMBOL, side, "LIMIT", price=price, quantity=qty, time_in_force=tif, now_ms=now, **kwargs
    )


def market(
    engine: MatchingEngine,
    account: str,
    side: str,
    qty: str | None = None,
    quote: str | None = None,
    now: int = 1000,
    **kwargs: Any,
) -> OrderResult:
    return engine.place_order(
        account, SYMBOL, side, "MARKET", quantity=qty, quote_order_qty=quote, now_ms=now, **kwargs
    )


def bal(engine: MatchingEngine, account: str, asset: str) -> tuple[Decimal, Decimal]:
    b = engine.balance(account, asset)
    return b.free, b.locked


def reports(result: Any, account: str | None = None) -> list[ExecutionReport]:
    return [e for e in result.events if isinstance(e, ExecutionReport) and (account is None or e.account_id == account)]


def xs(result: Any, account: str | None = None) -> list[tuple[str, str]]:
    """(execution type, order status) of each execution report, in order."""
    return [(str(r.execution_type), str(r.order_status)) for r in reports(result, account)]


def positions(result: Any, account: str) -> list[AccountPosition]:
    return [e for e in result.events if isinstance(e, AccountPosition) and e.account_id == account]


def snapshot_balances(engine: MatchingEngine, accounts: list[str]) -> dict[str, list[Balance]]:
    return {a: engine.balances(a) for a in accounts}
