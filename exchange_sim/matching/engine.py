"""The matching engine: accounts, orders, price-time matching, STP, stops, queries.

Pure: no IO, no clock (callers pass ``now_ms``), no randomness. Single-threaded; every
mutating call is atomic (all checks run before the first change, so a rejected call changes
nothing) and returns a result listing what happened, in order.

Internally every amount is an exact int (see filters.py for the units); ``Decimal`` appears
only at the API boundary. Rounding, where a product does not fit the quote precision
(only with symbols whose tickSize * stepSize has more decimals than the quote asset):
notional paid/received is floored, a resting BUY locks ``ceil(price * remaining)``.
Commissions are floored to the received asset's precision.
"""

from __future__ import annotations

import enum
import re
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from decimal import Context, Decimal, Inexact
from typing import TypeVar

from .book import BookSide
from .filters import Rules
from .spec import SymbolSpec, exact_units
from .state import Account, Order, OrderSnapshot
from .types import (
    AccountPosition,
    AccountTrade,
    Balance,
    BookChange,
    BookTicker,
    CancelAllResult,
    CanceledOrder,
    EngineError,
    ExecutionReport,
    ExecutionType,
    ExpiryReason,
    Fill,
    OrderResult,
    OrderStatus,
    OrderType,
    OrderView,
    PreventedMatch,
    RejectReason,
    SelfTradePreventionMode,
    Side,
    TimeInForce,
    Trade,
    UserEvent,
    units_to_decimal,
)

__all__ = ["DecimalInput", "MatchingEngine"]

DecimalInput = Decimal | str | int

_NEW = OrderStatus.NEW
_PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
_FILLED = OrderStatus.FILLED
_CANCELED = OrderStatus.CANCELED
_EXPIRED = OrderStatus.EXPIRED
_EXPIRED_IN_MATCH = OrderStatus.EXPIRED_IN_MATCH
_OPEN = (_NEW, _PARTIALLY_FILLED)
_GTC = TimeInForce.GTC
_BUY = Side.BUY
_SELL = Side.SELL
_STP_NONE = SelfTradePreventionMode.NONE
_ALGO_TYPES = frozenset(
    {OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT}
)
_MARKET_TYPES = frozenset({OrderType.MARKET, OrderType.STOP_LOSS, OrderType.TAKE_PROFIT})
_STOP_LOSS_TYPES = frozenset({OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT})
_ZERO = Decimal(0)

_MSG_INSUFFICIENT = "Account has insufficient balance for requested action."
_MSG_UNKNOWN_ORDER = "Unknown order sent."
_MSG_NO_SUCH_ORDER = "Order does not exist."
_MSG_BOTH_IDS_EMPTY = "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
_UNSUPPORTED_TYPE = {
    OrderType.LIMIT: "Unsupported order combination",
    OrderType.LIMIT_MAKER: "Unsupported order combination",
    OrderType.MARKET: "Market orders are not supported for this symbol.",
    OrderType.STOP_LOSS: "Stop loss orders are not supported for this symbol.",
    OrderType.STOP_LOSS_LIMIT: "Stop loss limit orders are not supported for this symbol.",
    OrderType.TAKE_PROFIT: "Take profit orders are not supported for this symbol.",
    OrderType.TAKE_PROFIT_LIMIT: "Take profit limit orders are not supported for this symbol.",
}

_DECIMAL_PATTERN = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_DECIMAL_RE = re.compile(_DECIMAL_PATTERN)
_CLIENT_ID_PATTERN = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
_CLIENT_ID_RE = re.compile(_CLIENT_ID_PATTERN)
_DAY_MS = 24 * 60 * 60 * 1000
_scaleb = Context(prec=100, traps=[Inexact]).scaleb

# Plan steps and plan ends.
_FILL, _EXPIRE_MAKER, _EXPIRE_TAKER, _EXPIRE_BOTH, _DECREMENT = range(5)
_END_FILLED, _END_BUDGET, _END_PRICE, _END_BOOK, _END_STP = range(5)


# --------------------------------------------------------------------------- parsing


def _units(value: DecimalInput, exp: int, name: str) -> int:
    """A non-negative decimal parameter as an int of ``10**-exp`` (-1100 / -1111 otherwise)."""
    if isinstance(value, Decimal):
        if not value.is_finite() or value < 0 or value.adjusted() >= 20:
            raise _illegal(name)
        d = value
    elif isinstance(value, str):
        if _DECIMAL_RE.match(value) is None:
            if value == "":
                raise EngineError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
            raise _illegal(name)
        d = Decimal(value)
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**20:
        d = Decimal(value)
    else:
        raise _illegal(name)
    try:
        scaled = _scaleb(d, exp)
    except Inexact:  # more digits than even 100 significant ones
        raise EngineError(-1111, f"Parameter '{name}' has too much precision.") from None
    units = int(scaled)
    if units != scaled:
        raise EngineError(-1111, f"Parameter '{name}' has too much precision.")
    return units


def _illegal(name: str) -> EngineError:
    return EngineError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{_DECIMAL_PATTERN}'.")


def _need(value: object, name: str) -> None:
    if value is None or value == "":
        raise EngineError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _deny(value: object, name: str) -> None:
    if value is not None:
        raise EngineError(-1106, f"Parameter '{name}' sent when not required.")


def _check_client_id(value: str | None, name: str, empty_code: int, empty_msg: str) -> None:
    if value is None:
        return
    if value == "":
        raise EngineError(empty_code, empty_msg)
    if _CLIENT_ID_RE.match(value) is None:
        raise EngineError(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '{_CLIENT_ID_PATTERN}'."
        )


def _check_params(
    otype: OrderType,
    tif: TimeInForce | None,
    quantity: DecimalInput | None,
    quote_order_qty: DecimalInput | None,
    price: DecimalInput | None,
    stop_price: DecimalInput | None,
) -> None:
    """-1102 / -1106 / -1114 for parameters the order type needs or does not take."""
    if otype is OrderType.LIMIT:
        _need(tif, "timeInForce")
        _need(quantity, "quantity")
        _need(price, "price")
        _deny(quote_order_qty, "quoteOrderQty")
        _deny(stop_price, "stopPrice")
    elif otype is OrderType.MARKET:
        if (quantity is None or quantity == "") and (quote_order_qty is None or quote_order_qty == ""):
            raise EngineError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
        if quantity is not None:
            _deny(quote_order_qty, "quoteOrderQty")
        if tif is not None:
            raise EngineError(-1114, "TimeInForce parameter sent when not required.")
        _deny(price, "price")
        _deny(stop_price, "stopPrice")
    elif otype is OrderType.LIMIT_MAKER:
        _need(quantity, "quantity")
        _need(price, "price")
        if tif is not None:
            raise EngineError(-1114, "TimeInForce parameter sent when not required.")
        _deny(quote_order_qty, "quoteOrderQty")
        _deny(stop_price, "stopPrice")
    elif otype in _MARKET_TYPES:  # STOP_LOSS, TAKE_PROFIT
        _need(quantity, "quantity")
        _need(stop_price, "stopPrice")
        if tif is not None:
            raise EngineError(-1114, "TimeInForce parameter sent when not required.")
        _deny(price, "price")
        _deny(quote_order_qty, "quoteOrderQty")
    else:  # STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT
        _need(tif, "timeInForce")
        _need(quantity, "quantity")
        _need(price, "price")
        _need(stop_price, "stopPrice")
        _deny(quote_order_qty, "quoteOrderQty")


# Binance's error for an unknown value of each enum parameter.
_ENUM_ERRORS: dict[type[enum.StrEnum], tuple[int, str]] = {
    Side: (-1117, "Invalid side."),
    OrderType: (-1116, "Invalid orderType."),
    TimeInForce: (-1115, "Invalid timeInForce."),
    SelfTradePreventionMode: (-1130, "Data sent for parameter 'selfTradePreventionMode' is not valid."),
}

_E = TypeVar("_E", bound=enum.StrEnum)


def _parse_enum(kind: type[_E], value: _E | str) -> _E:
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        code, msg = _ENUM_ERRORS[kind]
        raise EngineError(code, msg) from None


def _parse_side(value: Side | str) -> Side:
    return _parse_enum(Side, value)


def _parse_type(value: OrderType | str) -> OrderType:
    return _parse_enum(OrderType, value)


def _parse_tif(value: TimeInForce | str) -> TimeInForce:
    return _parse_enum(TimeInForce, value)


def _parse_stp(value: SelfTradePreventionMode | str) -> SelfTradePreventionMode:
    return _parse_enum(SelfTradePreventionMode, value)


def _check_limit(limit: int, maximum: int) -> None:
    if not 1 <= limit <= maximum:
        raise EngineError(-1130, "Data sent for parameter 'limit' is not valid.")


def _check_span(start_time: int | None, end_time: int | None) -> None:
    if start_time is not None and end_time is not None and end_time - start_time > _DAY_MS:
        raise EngineError(-1127, "More than 24 hours between startTime and endTime.")


# --------------------------------------------------------------------------- internals


class _SymbolState:
    __slots__ = (
        "allowed_stp",
        "asks",
        "base",
        "bids",
        "last_price",
        "next_order_id",
        "next_prevented_match_id",
        "order_types",
        "orders",
        "price_cache",
        "quote",
        "rules",
        "spec",
        "stops_down",
        "stops_up",
        "symbol",
        "trade_id",
        "update_id",
        "vwap",
    )

    def __init__(self, spec: SymbolSpec) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.base = spec.base_asset
        self.quote = spec.quote_asset
        self.rules = Rules(spec)
        self.order_types = frozenset(spec.order_types)
        self.allowed_stp = frozenset(spec.allowed_stp_modes)
        self.bids = BookSide(True)
        self.asks = BookSide(False)
        self.update_id = 0
        self.next_order_id = 0
        self.trade_id = 0
        self.next_prevented_match_id = 0
        self.last_price: int | None = None
        # Every order of ordinary accounts; only the open ones of market-maker accounts.
        self.orders: dict[int, Order] = {}
        self.stops_up: list[tuple[int, int]] = []  # (stop, order id): trigger when last >= stop
        self.stops_down: list[tuple[int, int]] = []  # trigger when last <= stop
        self.vwap: deque[list[int]] = deque(maxlen=64)  # [minute, sum(price*qty), sum(qty)]
        self.price_cache: dict[int, Decimal] = {}


class _Plan:
    """The fills and STP actions a taker would do, computed before anything changes."""

    __slots__ = ("cost", "end", "filled", "prevented", "steps")

    def __init__(self) -> None:
        self.steps: list[tuple[int, Order, int]] = []
        self.filled = 0
        self.cost = 0  # quote units the fills move
        self.prevented = 0  # taker quantity STP would take away
        self.end = _END_BOOK


class _Call:
    """What one engine call did so far."""

    __slots__ = ("changes", "events", "fills", "main", "now", "prevented", "sym", "touched", "trades")

    def __init__(self, sym: _SymbolState, now: int, main: Order | None) -> None:
        self.sym = sym
        self.now = now
        self.main = main
        self.events: list[UserEvent] = []
        self.trades: list[Trade] = []
        self.changes: list[list[int]] = []  # [update id, is bid, price, new level total, created]
        self.fills: list[Fill] = []
        self.prevented: list[PreventedMatch] = []
        self.touched: dict[Account, dict[str, None]] = {}

    def change(self, is_bid: bool, price: int, total: int, created: bool = False) -> None:
        """Record a level's new total. Consecutive changes of one level merge into one; a
        level created and emptied within such a run was never visible, so it is dropped
        (and its update id given back, keeping ids contiguous)."""
        changes = self.changes
        if changes:
            last = changes[-1]
            if last[2] == price and last[1] == is_bid:
                if total == 0 and last[4]:
                    changes.pop()
                    self.sym.update_id -= 1
                else:
                    last[3] = total
                return
        sym = self.sym
        sym.update_id += 1
        changes.append([sym.update_id, is_bid, price, total, created])

    def touch(self, account: Account, asset: str) -> None:
        assets = self.touched.get(account)
        if assets is None:
            assets = self.touched[account] = {}
        assets[asset] = None


# --------------------------------------------------------------------------- engine


class MatchingEngine:
    """Spot matching engine for many symbols and accounts. See the module docstring."""

    def __init__(self, symbols: Iterable[SymbolSpec] = ()) -> None:
        self._symbols: dict[str, _SymbolState] = {}
        self._accounts: dict[str, Account] = {}
        self._asset_precision: dict[str, int] = {}
        self._fees: dict[str, int] = {}
        self._execution_id = 0
        self._cancel_seq = 0
        for spec in symbols:
            self.add_symbol(spec)

    # ----------------------------------------------------------------- setup

    def add_symbol(self, spec: SymbolSpec) -> None:
        if spec.symbol in self._symbols:
            raise ValueError(f"symbol {spec.symbol} already added")
        for asset, precision in (
            (spec.base_asset, spec.base_asset_precision),
            (spec.quote_asset, spec.quote_asset_precision),
        ):
            known = self._asset_precision.get(asset)
            if known is not None and known != precision:
                raise ValueError(f"asset {asset} has precision {known}, {spec.symbol} says {precision}")
        self._asset_precision[spec.base_asset] = spec.base_asset_precision
        self._asset_precision[spec.quote_asset] = spec.quote_asset_precision
        self._symbols[spec.symbol] = _SymbolState(spec)

    def open_account(
        self,
        account_id: str,
        balances: Mapping[str, DecimalInput] | None = None,
        *,
        market_maker: bool = False,
    ) -> None:
        """Create an account. ``market_maker`` accounts (the synthetic market's own flow) have
        unlimited balances, are exempt from MAX_NUM_ORDERS, keep no order/trade history and
        produce no user events. Assets not used by any symbol get 8 decimals."""
        if account_id in self._accounts:
            raise ValueError(f"account {account_id!r} already exists")
        account = Account(account_id, market_maker)
        if not market_maker:
            for asset, amount in (balances or {}).items():
                precision = self._asset_precision.setdefault(asset, 8)
                account.free[asset] = exact_units(Decimal(amount), precision, f"balance of {asset}")
                account.locked[asset] = 0
        self._accounts[account_id] = account

    def symbols(self) -> list[SymbolSpec]:
        return [s.spec for s in self._symbols.values()]

    def spec(self, symbol: str) -> SymbolSpec:
        return self._sym(symbol).spec

    # ----------------------------------------------------------------- trading

    def place_order(
        self,
        account_id: str,
        symbol: str,
        side: Side | str,
        order_type: OrderType | str,
        *,
        quantity: DecimalInput | None = None,
        quote_order_qty: DecimalInput | None = None,
        price: DecimalInput | None = None,
        stop_price: DecimalInput | None = None,
        time_in_force: TimeInForce | str | None = None,
        new_client_order_id: str | None = None,
        self_trade_prevention_mode: SelfTradePreventionMode | str | None = None,
        now_ms: int,
    ) -> OrderResult:
        """``POST /api/v3/order``. Raises EngineError with Binance's code and message."""
        sym = self._sym(symbol)
        account = self._account(account_id)
        side_ = _parse_side(side)
        otype = _parse_type(order_type)
        tif = None if time_in_force is None else _parse_tif(time_in_force)

        # Parameters the order type needs / does not take (fast path: a well-formed LIMIT).
        if not (
            otype is OrderType.LIMIT
            and tif is not None
            and quantity is not None
            and price is not None
            and quote_order_qty is None
            and stop_price is None
        ):
            _check_params(otype, tif, quantity, quote_order_qty, price, stop_price)
        if new_client_order_id is not None:
            _check_client_id(new_client_order_id, "newClientOrderId", -1118, "New client order ID was empty.")

        rules = sym.rules
        qp = rules.quote_precision
        bp = rules.base_precision
        qty = 0 if quantity is None else _units(quantity, bp, "quantity")
        px = 0 if price is None else _units(price, qp, "price")
        stop = 0 if stop_price is None else _units(stop_price, qp, "stopPrice")
        quote = 0 if quote_order_qty is None else _units(quote_order_qty, qp, "quoteOrderQty")
        by_quote = quote_order_qty is not None

        spec = sym.spec
        if otype not in sym.order_types:
            raise EngineError(-2010, _UNSUPPORTED_TYPE[otype])
        if by_quote and not spec.quote_order_qty_market_allowed:
            raise EngineError(-2010, "Quote order qty market orders are not support for this symbol.")
        if self_trade_prevention_mode is None:
            stp = spec.default_stp_mode
        else:
            stp = _parse_stp(self_trade_prevention_mode)
            if stp not in sym.allowed_stp:
                raise EngineError(-1013, "This symbol does not allow the specified self-trade prevention mode.")

        # Filters.
        is_market = otype in _MARKET_TYPES
        if price is not None:
            rules.check_price(px)
        if stop_price is not None:
            rules.check_price(stop)
        if quantity is not None:
            rules.check_lot(qty)
            if is_market:
                rules.check_market_lot(qty)
        if rules.notional_rules:
            if by_quote:
                rules.check_notional(market=True, quote_qty=quote)
            elif otype is OrderType.MARKET:
                rules.check_notional(market=True, qty=qty, avg_price=self._avg_fn(sym, now_ms))
            elif is_market:
                rules.check_notional(market=True, qty=qty, price=stop)
            else:
                rules.check_notional(market=False, qty=qty, price=px)
        if (quantity is not None and qty == 0) or (price is not None and px == 0) or (by_quote and quote == 0):
            raise EngineError(-2010, "Price * QTY is zero or less.")

        # Engine checks.
        acs = account.on(sym.symbol)
        if new_client_order_id is not None and new_client_order_id in acs.open_client_ids:
            raise EngineError(-2010, "Duplicate order sent.")
        is_algo = otype in _ALGO_TYPES
        if not account.is_mm:
            if spec.max_num_orders is not None and len(acs.open) >= spec.max_num_orders:
                raise EngineError(-1013, "Filter failure: MAX_NUM_ORDERS")
            if is_algo and spec.max_num_algo_orders is not None and acs.algo_open >= spec.max_num_algo_orders:
                raise EngineError(-1013, "Filter failure: MAX_NUM_ALGO_ORDERS")

        order = Order(
            sym.symbol,
            rules,
            account,
            acs,
            side_,
            otype,
            _GTC if tif is None else tif,
            px,
            stop,
            qty,
            quote,
            stp,
            is_market,
        )
        call = _Call(sym, now_ms, order)
        bscale = rules.bscale

        if is_algo:
            up = (otype in _STOP_LOSS_TYPES) == order.is_buy
            last = sym.last_price
            if last is not None and (last >= stop if up else last <= stop):
                raise EngineError(-2010, "Order would trigger immediately.")
            order.trigger_up = up
            lock = 0
            if not account.is_mm:
                lock = -(-((stop if is_market else px) * qty) // bscale) if order.is_buy else qty
                self._check_funds(account, sym.quote if order.is_buy else sym.base, lock)
            self._accept(call, order, new_client_order_id, lock)
            insort(sym.stops_up if up else sym.stops_down, (stop, order.order_id))
            return self._order_result(call, order)

        opposite = sym.asks if order.is_buy else sym.bids
        best = opposite.best_price()
        crosses = best is not None and (is_market or (best <= px if order.is_buy else best >= px))
        if otype is OrderType.LIMIT_MAKER and crosses:
            raise EngineError(-2010, "Order would immediately match and take.")
        plan: _Plan | None = None
        if crosses:
            plan = self._plan(sym, order, None if is_market else px, quote if by_quote else None)
            if by_quote:
                self._check_quote_liquidity(rules, plan.filled)
                order.qty = order.remaining = plan.filled + plan.prevented
                order.hold_open = plan.end == _END_BOOK
            elif order.tif is TimeInForce.FOK and plan.end != _END_FILLED:
                plan = None
        elif by_quote:
            raise EngineError(-2010, "Order book liquidity is less than symbol minimum quantity.")

        lock = 0
        if not account.is_mm:
            if order.is_buy:
                lock = (plan.cost if plan is not None else 0) if is_market else -(-(px * qty) // bscale)
            else:
                lock = order.qty
            self._check_funds(account, sym.quote if order.is_buy else sym.base, lock)

        self._accept(call, order, new_client_order_id, lock)
        if plan is not None:
            self._execute(call, order, plan)
        self._finish_taker(call, order)
        if call.trades and (sym.stops_up or sym.stops_down):
            self._run_triggers(call)
        return self._order_result(call, order)

    def cancel_order(
        self,
        account_id: str,
        symbol: str,
        *,
        order_id: int | None = None,
        orig_client_order_id: str | None = None,
        new_client_order_id: str | None = None,
        now_ms: int,
    ) -> OrderResult:
        """``DELETE /api/v3/order``. Unknown or closed order: -2011 "Unknown order sent."."""
        sym = self._sym(symbol)
        account = self._account(account_id)
        if order_id is None and orig_client_order_id is None:
            raise EngineError(-1102, _MSG_BOTH_IDS_EMPTY)
        _check_client_id(orig_client_order_id, "origClientOrderId", -1119, "Original client order ID was empty.")
        _check_client_id(new_client_order_id, "newClientOrderId", -1118, "New client order ID was empty.")
        acs = account.symbols.get(sym.symbol)
        order: Order | None = None
        if acs is not None:
            if order_id is not None:
                order = acs.open.get(order_id)
                if (
                    order is not None
                    and orig_client_order_id is not None
                    and order.client_order_id != orig_client_order_id
                ):
                    order = None
            else:
                assert orig_client_order_id is not None
                order = acs.open_client_ids.get(orig_client_order_id)
        if order is None:
            raise EngineError(-2011, _MSG_UNKNOWN_ORDER)
        cancel_id = new_client_order_id or self._cancel_id()
        call = _Call(sym, now_ms, order)
        self._cancel(call, order, cancel_id)
        return self._order_result(call, order, cancel_id)

    def cancel_open_orders(self, account_id: str, symbol: str, *, now_ms: int) -> CancelAllResult:
        """``DELETE /api/v3/openOrders``: cancels every open order of the account on the symbol,
        oldest first. None open: -2011 "Unknown order sent."."""
        sym = self._sym(symbol)
        account = self._account(account_id)
        acs = account.symbols.get(sym.symbol)
        if acs is None or not acs.open:
            raise EngineError(-2011, _MSG_UNKNOWN_ORDER)
        call = _Call(sym, now_ms, None)
        done: list[tuple[Order, str]] = []
        for order in list(acs.open.values()):
            cancel_id = self._cancel_id()
            self._cancel(call, order, cancel_id)
            done.append((order, cancel_id))
        events, changes = self._flush(call)
        return CancelAllResult(
            sym.symbol,
            now_ms,
            tuple(CanceledOrder(OrderSnapshot(o).view(), cid) for o, cid in done),
            events,
            changes,
        )

    # ----------------------------------------------------------------- queries

    def get_order(
        self,
        account_id: str,
        symbol: str,
        *,
        order_id: int | None = None,
        orig_client_order_id: str | None = None,
    ) -> OrderView:
        """``GET /api/v3/order``. Unknown: -2013; id and client id of different orders: -2039."""
        sym = self._sym(symbol)
        account = self._account(account_id)
        if order_id is None and orig_client_order_id is None:
            raise EngineError(-1102, _MSG_BOTH_IDS_EMPTY)
        _check_client_id(orig_client_order_id, "origClientOrderId", -1119, "Original client order ID was empty.")
        order: Order | None
        if order_id is not None:
            order = sym.orders.get(order_id)
            if order is None or order.account is not account:
                raise EngineError(-2013, _MSG_NO_SUCH_ORDER)
            if orig_client_order_id is not None and order.client_order_id != orig_client_order_id:
                raise EngineError(-2039, "Client order ID is not correct for this order ID.")
        else:
            assert orig_client_order_id is not None
            acs = account.symbols.get(sym.symbol)
            order = None
            if acs is not None:
                order = acs.by_client_id.get(orig_client_order_id) or acs.open_client_ids.get(orig_client_order_id)
            if order is None:
                raise EngineError(-2013, _MSG_NO_SUCH_ORDER)
        return OrderSnapshot(order).view()

    def open_orders(self, account_id: str, symbol: str | None = None) -> list[OrderView]:
        """``GET /api/v3/openOrders``: by symbol, or all symbols (symbols in the order added)."""
        account = self._account(account_id)
        names = [self._sym(symbol).symbol] if symbol is not None else list(self._symbols)
        out: list[OrderView] = []
        for name in names:
            acs = account.symbols.get(name)
            if acs is not None:
                out.extend(OrderSnapshot(o).view() for o in acs.open.values())
        return out

    def all_orders(
        self,
        account_id: str,
        symbol: str,
        *,
        order_id: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = 500,
    ) -> list[OrderView]:
        """``GET /api/v3/allOrders``, ascending by order id. With ``order_id``: orders with id
        >= it; with ``start_time``: from that time; both inclusive, the first ``limit``.
        Otherwise the most recent ``limit`` (up to ``end_time`` if given).
        Market-maker accounts keep no history: always empty."""
        sym = self._sym(symbol)
        account = self._account(account_id)
        _check_limit(limit, 1000)
        _check_span(start_time, end_time)
        acs = account.symbols.get(sym.symbol)
        if acs is None:
            return []
        history = acs.history
        if order_id is not None:
            history = history[bisect_left(history, order_id, key=lambda o: o.order_id) :]
        chosen = [
            o
            for o in history
            if (start_time is None or o.time >= start_time) and (end_time is None or o.time <= end_time)
        ]
        chosen = chosen[:limit] if (order_id is not None or start_time is not None) else chosen[-limit:]
        return [OrderSnapshot(o).view() for o in chosen]

    def my_trades(
        self,
        account_id: str,
        symbol: str,
        *,
        order_id: int | None = None,
        from_id: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = 500,
    ) -> list[AccountTrade]:
        """``GET /api/v3/myTrades``, ascending by trade id. Allowed combinations: none; orderId;
        startTime; endTime; fromId; startTime+endTime; orderId+fromId (else -1128).
        With ``from_id``/``order_id``/``start_time`` the first ``limit``, else the most recent."""
        sym = self._sym(symbol)
        account = self._account(account_id)
        _check_limit(limit, 1000)
        given = (order_id is not None, from_id is not None, start_time is not None, end_time is not None)
        allowed = {
            (False, False, False, False),
            (True, False, False, False),
            (False, False, True, False),
            (False, False, False, True),
            (False, True, False, False),
            (False, False, True, True),
            (True, True, False, False),
        }
        if given not in allowed:
            raise EngineError(-1128, "Combination of optional parameters invalid.")
        _check_span(start_time, end_time)
        acs = account.symbols.get(sym.symbol)
        if acs is None:
            return []
        chosen = [
            t
            for t in acs.trades
            if (order_id is None or t.order_id == order_id)
            and (from_id is None or t.id >= from_id)
            and (start_time is None or t.time >= start_time)
            and (end_time is None or t.time <= end_time)
        ]
        if from_id is not None or order_id is not None or start_time is not None:
            return chosen[:limit]
        return chosen[-limit:]

    def balances(self, account_id: str) -> list[Balance]:
        """Every asset the account has held, in first-seen order (empty for market makers)."""
        account = self._account(account_id)
        return [self._balance(account, asset) for asset in account.free]

    def balance(self, account_id: str, asset: str) -> Balance:
        return self._balance(self._account(account_id), asset)

    def fees_collected(self) -> dict[str, Decimal]:
        """Commission collected so far, per asset."""
        return {a: units_to_decimal(v, self._asset_precision[a]) for a, v in self._fees.items()}

    def depth(
        self, symbol: str, limit: int = 100
    ) -> tuple[int, list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """``GET /api/v3/depth``: (lastUpdateId, bids best first, asks best first), levels
        aggregated per price. ``limit`` above 5000 gives 5000 levels."""
        sym = self._sym(symbol)
        if limit < 1:
            raise EngineError(-1130, "Data sent for parameter 'limit' is not valid.")
        limit = min(limit, 5000)
        bp = sym.rules.base_precision
        bids = [(self._price(sym, p), units_to_decimal(q, bp)) for p, q in sym.bids.depth(limit)]
        asks = [(self._price(sym, p), units_to_decimal(q, bp)) for p, q in sym.asks.depth(limit)]
        return sym.update_id, bids, asks

    def level_counts(self, symbol: str) -> tuple[int, int]:
        """(bid levels, ask levels) on the book: how deep each side is, without listing it."""
        sym = self._sym(symbol)
        return len(sym.bids.levels), len(sym.asks.levels)

    def book_ticker(self, symbol: str) -> BookTicker:
        sym = self._sym(symbol)
        bp = sym.rules.base_precision
        bid = sym.bids.best_level()
        ask = sym.asks.best_level()
        return BookTicker(
            sym.update_id,
            None if bid is None else self._price(sym, bid.price),
            None if bid is None else units_to_decimal(bid.total, bp),
            None if ask is None else self._price(sym, ask.price),
            None if ask is None else units_to_decimal(ask.total, bp),
        )

    def last_update_id(self, symbol: str) -> int:
        return self._sym(symbol).update_id

    def last_price(self, symbol: str) -> Decimal | None:
        sym = self._sym(symbol)
        return None if sym.last_price is None else self._price(sym, sym.last_price)

    def last_trade_id(self, symbol: str) -> int:
        """0 before the first trade."""
        return self._sym(symbol).trade_id

    def avg_price(self, symbol: str, now_ms: int, mins: int = 5) -> Decimal | None:
        """Volume-weighted average trade price over the last ``mins`` minutes (minute buckets,
        at most 63 minutes); the last price if no trade in that window or ``mins`` is 0; None
        before the first trade."""
        sym = self._sym(symbol)
        units = self._avg_units(sym, now_ms, mins)
        return None if units is None else self._price(sym, units)

    # ----------------------------------------------------------------- helpers

    def _sym(self, symbol: str) -> _SymbolState:
        sym = self._symbols.get(symbol)
        if sym is None:
            raise EngineError(-1121, "Invalid symbol.")
        return sym

    def _account(self, account_id: str) -> Account:
        account = self._accounts.get(account_id)
        if account is None:
            raise EngineError(-2015, "Invalid API-key, IP, or permissions for action.")
        return account

    def _price(self, sym: _SymbolState, units: int) -> Decimal:
        cache = sym.price_cache
        value = cache.get(units)
        if value is None:
            value = units_to_decimal(units, sym.rules.quote_precision)
            if len(cache) >= 100_000:
                cache.clear()
            cache[units] = value
        return value

    def _balance(self, account: Account, asset: str) -> Balance:
        precision = self._asset_precision.get(asset, 8)
        return Balance(
            asset,
            units_to_decimal(account.free.get(asset, 0), precision),
            units_to_decimal(account.locked.get(asset, 0), precision),
        )

    def _avg_units(self, sym: _SymbolState, now_ms: int, mins: int) -> int | None:
        if mins <= 0:
            return sym.last_price
        cutoff = now_ms // 60_000 - mins
        pq = q = 0
        for minute, bucket_pq, bucket_q in reversed(sym.vwap):
            if minute <= cutoff:
                break
            pq += bucket_pq
            q += bucket_q
        if q == 0:
            return sym.last_price
        return pq // q

    def _avg_fn(self, sym: _SymbolState, now_ms: int) -> Callable[[int], int | None]:
        return lambda mins: self._avg_units(sym, now_ms, mins)

    def _cancel_id(self) -> str:
        self._cancel_seq += 1
        return f"cancel{self._cancel_seq:016d}"

    @staticmethod
    def _check_funds(account: Account, asset: str, amount: int) -> None:
        if amount and account.free.get(asset, 0) < amount:
            raise EngineError(-2010, _MSG_INSUFFICIENT)

    @staticmethod
    def _check_quote_liquidity(rules: Rules, qty: int) -> None:
        if qty == 0 or (rules.min_qty and qty < rules.min_qty):
            raise EngineError(-2010, "Order book liquidity is less than LOT_SIZE filter minimum quantity.")
        if rules.m_min_qty and qty < rules.m_min_qty:
            raise EngineError(-2010, "Order book liquidity is less than MARKET_LOT_SIZE filter minimum quantity.")

    def _move_to_locked(self, call: _Call, account: Account, asset: str, amount: int) -> None:
        account.free[asset] = account.free.get(asset, 0) - amount
        account.locked[asset] = account.locked.get(asset, 0) + amount
        call.touch(account, asset)

    def _release(self, call: _Call, order: Order, keep: int = 0) -> None:
        """Give back to free everything the order holds in locked beyond ``keep``."""
        amount = order.locked - keep
        if amount:
            account = order.account
            asset = call.sym.quote if order.is_buy else call.sym.base
            order.locked = keep
            account.locked[asset] = account.locked.get(asset, 0) - amount
            account.free[asset] = account.free.get(asset, 0) + amount
            call.touch(account, asset)

    def _lock_needed(self, order: Order) -> int:
        """What an open order must keep locked for its remaining quantity."""
        if order.remaining == 0 or order.status not in _OPEN:
            return 0
        if not order.is_buy:
            return order.remaining
        if order.is_market:
            return order.locked  # MARKET BUY: the planned cost, released at the end
        return -(-(order.price * order.remaining) // order.rules.bscale)

    def _open(self, sym: _SymbolState, order: Order) -> None:
        acs = order.acct_sym
        acs.open[order.order_id] = order
        acs.open_client_ids[order.client_order_id] = order
        if order.otype in _ALGO_TYPES:
            acs.algo_open += 1
        if order.account.is_mm:
            sym.orders[order.order_id] = order

    def _close(self, sym: _SymbolState, order: Order) -> None:
        acs = order.acct_sym
        if acs.open.pop(order.order_id, None) is None:
            return
        if acs.open_client_ids.get(order.client_order_id) is order:
            del acs.open_client_ids[order.client_order_id]
        if order.otype in _ALGO_TYPES:
            acs.algo_open -= 1
        if order.account.is_mm:
            del sym.orders[order.order_id]

    def _accept(self, call: _Call, order: Order, client_order_id: str | None, lock: int) -> None:
        """Give the order its ids, record it, lock its funds, report NEW."""
        sym = call.sym
        sym.next_order_id += 1
        oid = order.order_id = sym.next_order_id
        acs = order.acct_sym
        if client_order_id is None:
            client_order_id = f"sim{oid:019d}"
            while client_order_id in acs.open_client_ids:
                client_order_id += "x"
        order.client_order_id = client_order_id
        order.time = order.update_time = call.now
        if order.otype not in _ALGO_TYPES:
            order.working_time = call.now
        account = order.account
        if not account.is_mm:
            sym.orders[oid] = order
            acs.history.append(order)
            acs.by_client_id[client_order_id] = order
            if lock:
                self._move_to_locked(call, account, sym.quote if order.is_buy else sym.base, lock)
                order.locked = lock
            self._report(call, order, ExecutionType.NEW, order.working_time != -1)
        if order.otype in _ALGO_TYPES:
            self._open(sym, order)

    # ----------------------------------------------------------------- matching

    def _plan(self, sym: _SymbolState, taker: Order, limit: int | None, budget: int | None) -> _Plan:
        """Walk the opposite side as the taker would, without changing anything.

        ``limit``: the taker's price (None for market). ``budget``: quoteOrderQty in quote
        units (the taker's quantity is then unknown: capped by the lot filters' maxQty and
        kept a multiple of their step sizes)."""
        plan = _Plan()
        steps = plan.steps
        is_buy = taker.is_buy
        rules = sym.rules
        bscale = rules.bscale
        if budget is None:
            remaining = taker.remaining
            step = 1
        else:
            remaining = rules.quote_cap
            step = rules.quote_step
        account = taker.account
        stp = taker.stp
        stp_on = stp is not _STP_NONE
        filled = cost = prevented = 0
        end = _END_BOOK
        done = False
        for level in (sym.asks if is_buy else sym.bids).levels_best_first():
            price = level.price
            if limit is not None and (price > limit if is_buy else price < limit):
                end = _END_PRICE
                break
            for maker in level.orders:
                if not maker.on_book:
                    continue
                mrem = maker.remaining
                q = remaining if remaining < mrem else mrem
                if budget is not None:
                    afford = budget * bscale // price
                    afford -= afford % step
                    if afford < q:
                        q = afford
                    if q == 0:
                        end = _END_BUDGET
                        done = True
                        break
                if stp_on and maker.account is account:
                    if stp is SelfTradePreventionMode.EXPIRE_MAKER:
                        steps.append((_EXPIRE_MAKER, maker, q))
                        continue
                    if stp is SelfTradePreventionMode.EXPIRE_TAKER or stp is SelfTradePreventionMode.EXPIRE_BOTH:
                        kind = _EXPIRE_TAKER if stp is SelfTradePreventionMode.EXPIRE_TAKER else _EXPIRE_BOTH
                        steps.append((kind, maker, q))
                        prevented += remaining if budget is None else q
                        end = _END_STP
                        done = True
                        break
                    # DECREMENT, and TRANSFER (same account: behaves as DECREMENT)
                    steps.append((_DECREMENT, maker, q))
                    prevented += q
                    remaining -= q
                    if remaining == 0:
                        end = _END_STP
                        done = True
                        break
                    continue
                steps.append((_FILL, maker, q))
                filled += q
                notional = price * q // bscale
                cost += notional
                remaining -= q
                if remaining == 0:
                    end = _END_FILLED
                    done = True
                    break
                if budget is not None:
                    budget -= notional
                    if q < mrem:
                        end = _END_BUDGET
                        done = True
                        break
            if done:
                break
        plan.filled = filled
        plan.cost = cost
        plan.prevented = prevented
        plan.end = end
        return plan

    def _execute(self, call: _Call, taker: Order, plan: _Plan) -> None:
        for kind, maker, qty in plan.steps:
            if kind == _FILL:
                self._fill(call, taker, maker, qty)
            else:
                self._prevent(call, taker, maker, kind, qty)

    def _fill(self, call: _Call, taker: Order, maker: Order, q: int) -> None:
        sym = call.sym
        rules = sym.rules
        price = maker.price
        quote = price * q // rules.bscale
        now = call.now

        maker.remaining -= q
        maker.filled += q
        maker.quote_filled += quote
        maker.update_time = now
        maker_is_bid = maker.is_buy
        total = (sym.bids if maker_is_bid else sym.asks).reduce(maker, q)
        call.change(maker_is_bid, price, total)
        maker_done = maker.remaining == 0
        maker.status = _FILLED if maker_done else _PARTIALLY_FILLED

        taker.remaining -= q
        taker.filled += q
        taker.quote_filled += quote
        taker.update_time = now
        taker_done = taker.remaining == 0 and not taker.hold_open
        taker.status = _FILLED if taker_done else _PARTIALLY_FILLED

        sym.trade_id += 1
        trade_id = sym.trade_id
        sym.last_price = price
        minute = now // 60_000
        vwap = sym.vwap
        if vwap and vwap[-1][0] >= minute:
            bucket = vwap[-1]
            bucket[1] += price * q
            bucket[2] += q
        else:
            vwap.append([minute, price * q, q])
        bp = rules.base_precision
        qp = rules.quote_precision
        price_dec = self._price(sym, price)
        qty_dec = units_to_decimal(q, bp)
        quote_dec = units_to_decimal(quote, qp)
        call.trades.append(Trade(sym.symbol, trade_id, price_dec, qty_dec, quote_dec, now, maker_is_bid))

        taker_mm = taker.account.is_mm
        maker_mm = maker.account.is_mm
        if taker_mm:
            if taker is call.main:
                asset = sym.base if taker.is_buy else sym.quote
                call.fills.append(
                    Fill(price_dec, qty_dec, units_to_decimal(0, bp if taker.is_buy else qp), asset, trade_id)
                )
        else:
            comm, comm_dec, asset = self._settle(call, taker, q, quote, price_dec, qty_dec, quote_dec, trade_id, False)
            if taker is call.main:
                call.fills.append(Fill(price_dec, qty_dec, comm_dec, asset, trade_id))
            self._report(
                call,
                taker,
                ExecutionType.TRADE,
                not taker_done and not taker.is_market and taker.tif is _GTC and taker.status in _OPEN,
                last_qty=q,
                last_price=price,
                last_quote=quote,
                commission=comm,
                commission_asset=asset,
                trade_id=trade_id,
            )
        if not maker_mm:
            comm, _, asset = self._settle(call, maker, q, quote, price_dec, qty_dec, quote_dec, trade_id, True)
            self._report(
                call,
                maker,
                ExecutionType.TRADE,
                maker.on_book,
                last_qty=q,
                last_price=price,
                last_quote=quote,
                commission=comm,
                commission_asset=asset,
                trade_id=trade_id,
                is_maker=True,
            )
        if maker_done:
            self._close(sym, maker)
        if taker_done:
            self._close(sym, taker)

    def _settle(
        self,
        call: _Call,
        order: Order,
        q: int,
        quote: int,
        price_dec: Decimal,
        qty_dec: Decimal,
        quote_dec: Decimal,
        trade_id: int,
        is_maker: bool,
    ) -> tuple[int, Decimal, str]:
        """Move one fill's funds for an ordinary account; returns the commission (units,
        Decimal, asset)."""
        sym = call.sym
        rules = sym.rules
        account = order.account
        base = sym.base
        quote_asset = sym.quote
        free = account.free
        locked = account.locked
        if is_maker:
            num, den = rules.maker_num, rules.maker_den
        else:
            num, den = rules.taker_num, rules.taker_den
        if order.is_buy:
            comm = q * num // den
            # MARKET BUY pays from the planned cost it locked; a priced BUY keeps
            # ceil(price * remaining) locked and gets any price improvement back.
            release = quote if order.is_market else order.locked + (order.price * order.remaining) // -rules.bscale
            order.locked -= release
            locked[quote_asset] = locked.get(quote_asset, 0) - release
            free[quote_asset] = free.get(quote_asset, 0) + release - quote
            free[base] = free.get(base, 0) + q - comm
            asset = base
            comm_dec = units_to_decimal(comm, rules.base_precision)
        else:
            comm = quote * num // den
            order.locked -= q
            locked[base] = locked.get(base, 0) - q
            free[quote_asset] = free.get(quote_asset, 0) + quote - comm
            asset = quote_asset
            comm_dec = units_to_decimal(comm, rules.quote_precision)
        if comm:
            self._fees[asset] = self._fees.get(asset, 0) + comm
        call.touch(account, base)
        call.touch(account, quote_asset)
        order.acct_sym.trades.append(
            AccountTrade(
                sym.symbol,
                trade_id,
                order.order_id,
                -1,
                price_dec,
                qty_dec,
                quote_dec,
                comm_dec,
                asset,
                call.now,
                order.is_buy,
                is_maker,
                True,
            )
        )
        return comm, comm_dec, asset

    def _prevent(self, call: _Call, taker: Order, maker: Order, kind: int, pq: int) -> None:
        """Apply one STP action; ``pq`` is the quantity that would have traded."""
        sym = call.sym
        pm_id = sym.next_prevented_match_id
        sym.next_prevented_match_id += 1
        price = maker.price
        taker_amount: int | None = None
        maker_amount: int | None = None
        if kind == _DECREMENT:
            taker_amount = maker_amount = pq
        else:
            if kind != _EXPIRE_TAKER:
                maker_amount = maker.remaining
            if kind != _EXPIRE_MAKER:
                taker_amount = taker.remaining
        if maker_amount is not None:
            self._apply_prevention(call, maker, maker_amount, pm_id, taker, pq, price)
        if taker_amount is not None:
            self._apply_prevention(call, taker, taker_amount, pm_id, maker, pq, price)
        if taker is call.main:
            bp = sym.rules.base_precision
            call.prevented.append(
                PreventedMatch(
                    pm_id,
                    taker.order_id,
                    maker.order_id,
                    self._price(sym, price),
                    None if taker_amount is None else units_to_decimal(taker_amount, bp),
                    None if maker_amount is None else units_to_decimal(maker_amount, bp),
                    taker.stp,
                    call.now,
                )
            )

    def _apply_prevention(
        self, call: _Call, order: Order, amount: int, pm_id: int, counter: Order, pq: int, price: int
    ) -> None:
        sym = call.sym
        order.remaining -= amount
        order.prevented += amount
        order.prevented_match_id = pm_id
        order.update_time = call.now
        if order.on_book:
            total = (sym.bids if order.is_buy else sym.asks).reduce(order, amount)
            call.change(order.is_buy, order.price, total)
        if order.remaining == 0:
            order.status = _EXPIRED_IN_MATCH
            self._release(call, order)
            self._close(sym, order)
        else:
            self._release(call, order, self._lock_needed(order))
        if order.account.is_mm:
            return
        rules = sym.rules
        bp = rules.base_precision
        working = order.on_book or (order.status in _OPEN and not order.is_market and order.tif is _GTC)
        self._report(
            call,
            order,
            ExecutionType.TRADE_PREVENTION,
            working,
            stp=(
                pm_id,
                units_to_decimal(order.prevented, bp),
                units_to_decimal(amount, bp),
                counter.order_id,
                units_to_decimal(pq, bp),
                self._price(sym, price),
                units_to_decimal(price * pq // rules.bscale, rules.quote_precision),
            ),
        )

    def _finish_taker(self, call: _Call, order: Order) -> None:
        """After matching: rest a GTC limit remainder, or expire what is left."""
        sym = call.sym
        status = order.status
        if status is _FILLED or status is _EXPIRED_IN_MATCH:
            self._release(call, order)
            self._close(sym, order)
            return
        if order.remaining and not order.is_market and order.tif is _GTC:
            total = (sym.bids if order.is_buy else sym.asks).add(order)
            call.change(order.is_buy, order.price, total, total == order.remaining)
            if order.order_id not in order.acct_sym.open:
                self._open(sym, order)
            return
        if order.is_market:
            reason = ExpiryReason.INSUFFICIENT_LIQUIDITY
        elif order.tif is TimeInForce.FOK:
            reason = ExpiryReason.UNFILLED_FOK_ORDER_EXPIRED
        else:
            reason = ExpiryReason.UNFILLED_IOC_QUANTITY_EXPIRED
        self._expire(call, order, reason)

    def _expire(self, call: _Call, order: Order, reason: ExpiryReason) -> None:
        order.status = _EXPIRED
        order.expiry_reason = reason
        order.update_time = call.now
        self._release(call, order)
        self._close(call.sym, order)
        if not order.account.is_mm:
            self._report(call, order, ExecutionType.EXPIRED, False)

    def _cancel(self, call: _Call, order: Order, cancel_id: str) -> None:
        sym = call.sym
        if order.on_book:
            total = (sym.bids if order.is_buy else sym.asks).remove(order)
            call.change(order.is_buy, order.price, total)
        elif order.working_time == -1:
            stops = sym.stops_up if order.trigger_up else sym.stops_down
            i = bisect_left(stops, (order.stop_price, order.order_id))
            if i < len(stops) and stops[i][1] == order.order_id:
                del stops[i]
        order.status = _CANCELED
        order.update_time = call.now
        self._release(call, order)
        self._close(sym, order)
        if not order.account.is_mm:
            self._report(
                call,
                order,
                ExecutionType.CANCELED,
                False,
                client_order_id=cancel_id,
                orig_client_order_id=order.client_order_id,
            )

    def _run_triggers(self, call: _Call) -> None:
        """Trigger stops by the last trade price until none fires (each fires once)."""
        sym = call.sym
        while True:
            last = sym.last_price
            if last is None:
                return
            up = sym.stops_up
            down = sym.stops_down
            i = 0
            while i < len(up) and up[i][0] <= last:
                i += 1
            j = len(down)
            while j > 0 and down[j - 1][0] >= last:
                j -= 1
            if not i and j == len(down):
                return
            fired = up[:i] + down[j:]
            del up[:i]
            del down[j:]
            fired.sort(key=lambda entry: entry[1])
            for _, order_id in fired:
                self._activate(call, sym.orders[order_id])

    def _activate(self, call: _Call, order: Order) -> None:
        """A triggered stop becomes a working MARKET or LIMIT order and takes liquidity."""
        sym = call.sym
        order.working_time = order.update_time = call.now
        account = order.account
        if not account.is_mm:
            self._report(call, order, ExecutionType.NEW, True)
        opposite = sym.asks if order.is_buy else sym.bids
        best = opposite.best_price()
        plan: _Plan | None = None
        if best is not None and (order.is_market or (best <= order.price if order.is_buy else best >= order.price)):
            plan = self._plan(sym, order, None if order.is_market else order.price, None)
            if not order.is_market and order.tif is TimeInForce.FOK and plan.end != _END_FILLED:
                plan = None
        if order.is_market and order.is_buy and not account.is_mm:
            # Swap the lock taken at placement (stop price * qty) for the planned cost.
            need = plan.cost if plan is not None else 0
            self._release(call, order)
            if account.free.get(sym.quote, 0) < need:
                self._expire(call, order, ExpiryReason.REJECTED)
                return
            if need:
                self._move_to_locked(call, account, sym.quote, need)
                order.locked = need
        if plan is not None:
            self._execute(call, order, plan)
        self._finish_taker(call, order)

    # ----------------------------------------------------------------- events and results

    def _report(
        self,
        call: _Call,
        order: Order,
        execution_type: ExecutionType,
        working: bool,
        *,
        last_qty: int = 0,
        last_price: int = 0,
        last_quote: int = 0,
        commission: int = 0,
        commission_asset: str | None = None,
        trade_id: int = -1,
        is_maker: bool = False,
        client_order_id: str | None = None,
        orig_client_order_id: str = "",
        stp: tuple[int, Decimal, Decimal, int, Decimal, Decimal, Decimal] | None = None,
    ) -> None:
        """Append one executionReport (ordinary accounts only; callers check)."""
        rules = order.rules
        qp = rules.quote_precision
        bp = rules.base_precision
        self._execution_id += 1
        if commission_asset is None:
            commission_dec = _ZERO
        else:
            commission_dec = units_to_decimal(commission, bp if commission_asset == call.sym.base else qp)
        pm_id: int | None = None
        prevented: Decimal | None = None
        last_prevented: Decimal | None = None
        group_id: int | None = None
        counter_id: int | None = None
        counter_symbol: str | None = None
        p_qty: Decimal | None = None
        p_price: Decimal | None = None
        p_quote: Decimal | None = None
        if stp is not None:
            pm_id, prevented, last_prevented, counter_id, p_qty, p_price, p_quote = stp
            group_id = -1
            counter_symbol = order.symbol
        report = ExecutionReport(
            account_id=order.account.account_id,
            event_time=call.now,
            symbol=order.symbol,
            client_order_id=order.client_order_id if client_order_id is None else client_order_id,
            side=order.side,
            order_type=order.otype,
            time_in_force=order.tif,
            quantity=units_to_decimal(order.qty, bp),
            price=self._price(call.sym, order.price),
            stop_price=self._price(call.sym, order.stop_price),
            iceberg_qty=units_to_decimal(0, bp),
            order_list_id=-1,
            orig_client_order_id=orig_client_order_id,
            execution_type=execution_type,
            order_status=order.status,
            reject_reason=RejectReason.NONE,
            order_id=order.order_id,
            last_executed_qty=units_to_decimal(last_qty, bp),
            cumulative_filled_qty=units_to_decimal(order.filled, bp),
            last_executed_price=self._price(call.sym, last_price),
            commission=commission_dec,
            commission_asset=commission_asset,
            transaction_time=call.now,
            trade_id=trade_id,
            execution_id=self._execution_id,
            is_working=working,
            is_maker=is_maker,
            creation_time=order.time,
            cumulative_quote_qty=units_to_decimal(order.quote_filled, qp),
            last_quote_qty=units_to_decimal(last_quote, qp),
            quote_order_qty=units_to_decimal(order.quote_qty, qp),
            working_time=None if order.working_time == -1 else order.working_time,
            self_trade_prevention_mode=order.stp,
            expiry_reason=order.expiry_reason,
            prevented_match_id=pm_id,
            prevented_quantity=prevented,
            last_prevented_quantity=last_prevented,
            trade_group_id=group_id,
            counter_order_id=counter_id,
            counter_symbol=counter_symbol,
            prevented_execution_qty=p_qty,
            prevented_execution_price=p_price,
            prevented_execution_quote_qty=p_quote,
        )
        call.events.append(report)

    def _flush(self, call: _Call) -> tuple[tuple[UserEvent, ...], tuple[BookChange, ...]]:
        events = call.events
        now = call.now
        for account, assets in call.touched.items() if call.touched else ():
            events.append(
                AccountPosition(account.account_id, now, now, tuple(self._balance(account, a) for a in assets))
            )
        sym = call.sym
        bp = sym.rules.base_precision
        price_of = self._price
        changes = tuple(
            [
                BookChange(uid, _BUY if is_bid else _SELL, price_of(sym, price), units_to_decimal(total, bp))
                for uid, is_bid, price, total, _ in call.changes
            ]
        )
        return tuple(events), changes

    def _order_result(self, call: _Call, order: Order, cancel_id: str | None = None) -> OrderResult:
        events, changes = self._flush(call)
        return OrderResult(
            call.sym.symbol,
            call.now,
            OrderSnapshot(order),
            tuple(call.fills),
            tuple(call.prevented),
            events,
            tuple(call.trades),
            changes,
            cancel_id,
        )
