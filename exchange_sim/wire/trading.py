"""Signed trading and account calls (reference §6.3, §6.4), served by REST under ``/api/v3`` and
reused by the WS API (`exchange_sim.wire.ws_api`).

* `TradingDesk` is the one place engine results go through — REST and WS API orders and the
  synthetic market's own flow alike: `Venue.apply` (market streams), the unfilled-order count
  (first fills give an order back, §4.1) and the owners' user data listeners.
* `Operation`s are the calls, each with its security type, weight and the parameters it reads; the
  REST shell (`add_routes`) and the WS API authenticate, rate-limit and then call ``run`` with the
  decoded text parameters. Answers are Binance's JSON shapes; errors are `EngineError`,
  `ApiError` or `AuthError` with Binance's code, message and HTTP status.

REST pipeline per request: IP weight check at receipt (order place/cancel calls are charged after
the outcome: 0 when successful, the documented weight when not) → key, signature, recvWindow and
timestamp (`verify_rest`) → ORDERS limit (new orders) → parameters (-1104 for parameters the call
does not read) → recvWindow re-check just before the engine → engine. Headers:
``X-MBX-USED-WEIGHT-1M`` on every answer, ``X-MBX-ORDER-COUNT-10S``/``-1D`` on accepted orders.

Simulator choices where the reference is silent: ``trailingDelta``, ``icebergQty`` and peg
parameters are refused with -2010 (exchangeInfo advertises them as not allowed); ``strategyId`` /
``strategyType`` are kept by this layer and echoed in responses, order queries and execution
reports; ``order/test`` checks parameters and filters on an empty copy of the symbol, so it
reports no engine-state errors (balance, duplicate id, would trigger/match).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Final

import orjson
from aiohttp import web

from exchange_sim.accounts import AccountDirectory
from exchange_sim.faults import ORDER_UNKNOWN
from exchange_sim.matching import (
    AccountPosition,
    AccountTrade,
    CancelAllResult,
    EngineError,
    ExecutionType,
    ExpiryReason,
    MatchingEngine,
    OrderResult,
    OrderStatus,
    OrderType,
    OrderView,
    PreventedMatch,
    UserEvent,
    fmt,
)
from exchange_sim.venue import Venue
from exchange_sim.wire.auth import (
    API_KEY_HEADER,
    AuthenticatedRequest,
    AuthError,
    Security,
    parse_params,
    verify_rest,
)
from exchange_sim.wire.ratelimit import RateLimiter, RateLimitError
from exchange_sim.wire.rest import FAULTS, LIMITER, ApiError
from exchange_sim.wire.rest import _injected_fault as answer_injected_fault

__all__ = [
    "DESK",
    "OPERATIONS",
    "REST_ROUTES",
    "Operation",
    "Outcome",
    "RespType",
    "TradingDesk",
    "add_routes",
    "render_order",
]

Params = Mapping[str, str]
Clock = Callable[[], int]

_INT_PATTERN: Final = "^[0-9]{1,20}$"
_INT_RE: Final = re.compile(r"[0-9]{1,20}")
_STOP_TYPES: Final = frozenset(
    {OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT}
)
_OPEN: Final = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
_MICROSECONDS: Final = 10**14  # time parameters at or above this are µs (§3.5)
_SCRATCH_ACCOUNT: Final = "order-test"
_SCRATCH_FUNDS: Final = "1" + "0" * 15
_ZERO_RATE: Final = "0.00000000"


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class RespType(StrEnum):
    ACK = "ACK"
    RESULT = "RESULT"
    FULL = "FULL"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A successful call's JSON body; `new_order` when it placed an order (ORDER-COUNT headers)."""

    body: object
    new_order: bool = False


# --------------------------------------------------------------------------- parameters


def _mandatory(name: str) -> ApiError:
    return ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _invalid(name: str) -> ApiError:
    return ApiError(400, -1130, f"Data sent for parameter '{name}' is not valid.")


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if not value:
        raise _mandatory(name)
    return value


def _int(params: Params, name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not _INT_RE.fullmatch(raw):
        if raw == "":
            raise _mandatory(name)
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '{_INT_PATTERN}'.")
    return int(raw)


def _time(params: Params, name: str) -> int | None:
    value = _int(params, name)
    return value // 1000 if value is not None and value >= _MICROSECONDS else value


def _bool(params: Params, name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered not in ("true", "false"):
        raise _invalid(name)
    return lowered == "true"


def _symbol(params: Params) -> str:
    return _required(params, "symbol").upper()


def _check_read(params: Params, reads: frozenset[str], ignored: frozenset[str]) -> None:
    """-1104 when a parameter was sent that the call does not read."""
    sent = [name for name in params if name not in ignored]
    read = sum(1 for name in sent if name in reads)
    if read != len(sent):
        raise ApiError(
            400, -1104, f"Not all sent parameters were read; read '{read}' parameter(s) but was sent '{len(sent)}'."
        )


# --------------------------------------------------------------------------- rendering

Strategy = tuple[int | None, int | None]  # (strategyId, strategyType)


def _conditional(view: OrderView, out: dict[str, object], strategy: Strategy | None) -> None:
    if view.prevented_match_id is not None:
        out["preventedMatchId"] = view.prevented_match_id
        out["preventedQuantity"] = fmt(view.prevented_quantity)
    if strategy is not None:
        if strategy[0] is not None:
            out["strategyId"] = strategy[0]
        if strategy[1] is not None:
            out["strategyType"] = strategy[1]


def render_order(view: OrderView, strategy: Strategy | None = None) -> dict[str, object]:
    """The order object of ``GET /api/v3/order``, ``openOrders``, ``allOrders`` (§6.4)."""
    out: dict[str, object] = {
        "symbol": view.symbol,
        "orderId": view.order_id,
        "orderListId": view.order_list_id,
        "clientOrderId": view.client_order_id,
        "price": fmt(view.price),
        "origQty": fmt(view.orig_qty),
        "executedQty": fmt(view.executed_qty),
        "cummulativeQuoteQty": fmt(view.cummulative_quote_qty),
        "status": view.status.value,
        "timeInForce": view.time_in_force.value,
        "type": view.type.value,
        "side": view.side.value,
        "stopPrice": fmt(view.stop_price),
        "icebergQty": fmt(view.iceberg_qty),
        "time": view.time,
        "updateTime": view.update_time,
        "isWorking": view.is_working,
        "workingTime": view.working_time,
        "origQuoteOrderQty": fmt(view.orig_quote_order_qty),
        "selfTradePreventionMode": view.self_trade_prevention_mode.value,
    }
    _conditional(view, out, strategy)
    if view.expiry_reason is not ExpiryReason.NONE:
        out["expiryReason"] = view.expiry_reason.value
    return out


def _state_fields(view: OrderView) -> dict[str, object]:
    """The order-state part shared by RESULT/FULL and cancel answers (§6.3)."""
    return {
        "price": fmt(view.price),
        "origQty": fmt(view.orig_qty),
        "executedQty": fmt(view.executed_qty),
        "origQuoteOrderQty": fmt(view.orig_quote_order_qty),
        "cummulativeQuoteQty": fmt(view.cummulative_quote_qty),
        "status": view.status.value,
        "timeInForce": view.time_in_force.value,
        "type": view.type.value,
        "side": view.side.value,
    }


def _placement(result: OrderResult, resp_type: RespType, strategy: Strategy | None) -> dict[str, object]:
    view = result.order
    out: dict[str, object] = {
        "symbol": view.symbol,
        "orderId": view.order_id,
        "orderListId": view.order_list_id,
        "clientOrderId": view.client_order_id,
        "transactTime": result.transact_time,
    }
    if resp_type is RespType.ACK:
        return out
    out.update(_state_fields(view))
    out["workingTime"] = view.working_time
    out["selfTradePreventionMode"] = view.self_trade_prevention_mode.value
    if view.type in _STOP_TYPES:
        out["stopPrice"] = fmt(view.stop_price)
    _conditional(view, out, strategy)
    if view.expiry_reason is not ExpiryReason.NONE:
        out["expiryReason"] = view.expiry_reason.value
    if resp_type is RespType.FULL:
        out["fills"] = [
            {
                "price": fmt(f.price),
                "qty": fmt(f.qty),
                "commission": fmt(f.commission),
                "commissionAsset": f.commission_asset,
                "tradeId": f.trade_id,
            }
            for f in result.fills
        ]
        if result.prevented_matches:
            out["preventedMatches"] = [_prevented(p) for p in result.prevented_matches]
    return out


def _prevented(match: PreventedMatch) -> dict[str, object]:
    out: dict[str, object] = {
        "preventedMatchId": match.prevented_match_id,
        "takerOrderId": match.taker_order_id,
        "makerOrderId": match.maker_order_id,
        "tradeGroupId": -1,
        "selfTradePreventionMode": match.self_trade_prevention_mode.value,
        "price": fmt(match.price),
    }
    if match.taker_prevented_quantity is not None:
        out["takerPreventedQuantity"] = fmt(match.taker_prevented_quantity)
    if match.maker_prevented_quantity is not None:
        out["makerPreventedQuantity"] = fmt(match.maker_prevented_quantity)
    out["transactTime"] = match.transact_time
    return out


def _cancel(view: OrderView, cancel_id: str, transact_time: int, strategy: Strategy | None) -> dict[str, object]:
    out: dict[str, object] = {
        "symbol": view.symbol,
        "origClientOrderId": view.client_order_id,
        "orderId": view.order_id,
        "orderListId": view.order_list_id,
        "clientOrderId": cancel_id,
        "transactTime": transact_time,
        **_state_fields(view),
        "selfTradePreventionMode": view.self_trade_prevention_mode.value,
    }
    if view.type in _STOP_TYPES:
        out["stopPrice"] = fmt(view.stop_price)
    _conditional(view, out, strategy)
    return out


def _trade(trade: AccountTrade) -> dict[str, object]:
    return {
        "symbol": trade.symbol,
        "id": trade.id,
        "orderId": trade.order_id,
        "orderListId": trade.order_list_id,
        "price": fmt(trade.price),
        "qty": fmt(trade.qty),
        "quoteQty": fmt(trade.quote_qty),
        "commission": fmt(trade.commission),
        "commissionAsset": trade.commission_asset,
        "time": trade.time,
        "isBuyer": trade.is_buyer,
        "isMaker": trade.is_maker,
        "isBestMatch": trade.is_best_match,
    }


def _rate(value: Decimal) -> str:
    return f"{value:.8f}"


# --------------------------------------------------------------------------- desk


class TradingDesk:
    """The exchange as the signed calls see it: engine, venue, limiter and accounts, one clock."""

    def __init__(
        self, venue: Venue, limiter: RateLimiter, accounts: AccountDirectory, clock: Clock = wall_clock_ms
    ) -> None:
        self.venue = venue
        self.engine: MatchingEngine = venue.engine
        self.limiter = limiter
        self.accounts = accounts
        self.clock = clock
        self._strategies: dict[tuple[str, int], Strategy] = {}
        self._update_times: dict[int, int] = {}

    # ---- every engine result

    def apply(self, result: OrderResult | CancelAllResult) -> None:
        """Route one engine result: market data, first fills, account update times, user events."""
        self.venue.apply(result)
        if result.events:
            self._account_side(result.events, result.transact_time)
            self.accounts.publish(result.events)

    def _account_side(self, events: Iterable[UserEvent], now: int) -> None:
        for event in events:
            account_id = self.accounts.account_id(event.account_id)
            if account_id is None:
                continue
            if isinstance(event, AccountPosition):
                self._update_times[account_id] = event.update_time
            elif event.execution_type is ExecutionType.TRADE and event.cumulative_filled_qty == event.last_executed_qty:
                self.limiter.record_first_fill(account_id, event.creation_time, now)

    def strategy(self, symbol: str, order_id: int) -> Strategy | None:
        return self._strategies.get((symbol, order_id))

    # ---- calls

    def place_order(self, auth: AuthenticatedRequest, params: Params, *, test: bool = False) -> Outcome:
        symbol = _symbol(params)
        order_type = params.get("type")
        if not order_type:
            raise _mandatory("type")
        if not params.get("side"):
            raise _mandatory("side")
        for name, what in (("icebergQty", "Iceberg"), ("trailingDelta", "Trailing stop")):
            if params.get(name) and Decimal(0) != _decimal_or_none(params[name]):
                raise EngineError(-2010, f"{what} orders are not supported for this symbol.")
        if any(params.get(n) for n in ("pegPriceType", "pegOffsetValue", "pegOffsetType")):
            raise EngineError(-2010, "Pegged orders are not supported for this symbol.")
        strategy_id = _int(params, "strategyId")
        strategy_type = _int(params, "strategyType")
        if strategy_type is not None and strategy_type < 1_000_000:
            raise ApiError(400, -1134, "`strategyType` was less than 1000000.")
        resp_raw = params.get("newOrderRespType")
        if resp_raw is None:
            resp_type = RespType.FULL if order_type in (OrderType.MARKET, OrderType.LIMIT) else RespType.ACK
        else:
            try:
                resp_type = RespType(resp_raw)
            except ValueError:
                raise _invalid("newOrderRespType") from None
        order_args = {
            "quantity": params.get("quantity"),
            "quote_order_qty": params.get("quoteOrderQty"),
            "price": params.get("price"),
            "stop_price": params.get("stopPrice"),
            "time_in_force": params.get("timeInForce"),
            "new_client_order_id": params.get("newClientOrderId"),
            "self_trade_prevention_mode": params.get("selfTradePreventionMode"),
        }
        if test:
            self._test_order(symbol, params["side"], order_type, order_args)
            return Outcome(self._commission_rates(symbol) if _bool(params, "computeCommissionRates") else {})

        engine_id = self.accounts.engine_id(auth.account_id)
        now = self.clock()
        try:
            auth.recheck(now)  # the last check, just before the matching engine (§3.4)
        except AuthError:
            self.limiter.record_new_order(auth.account_id, now)  # this one counts toward ORDERS
            raise
        result = self.engine.place_order(engine_id, symbol, params["side"], order_type, now_ms=now, **order_args)
        strategy: Strategy | None = None
        if strategy_id is not None or strategy_type is not None:
            strategy = (strategy_id, strategy_type)
            self._strategies[(symbol, result.order_id)] = strategy
        self.limiter.record_new_order(auth.account_id, now)
        self.apply(result)
        return Outcome(_placement(result, resp_type, strategy), new_order=True)

    def _test_order(self, symbol: str, side: str, order_type: str, args: Mapping[str, str | None]) -> None:
        """Parameters and filters only: place it on an empty, well-funded copy of the symbol."""
        spec = self.engine.spec(symbol)
        scratch = MatchingEngine([spec])
        scratch.open_account(_SCRATCH_ACCOUNT, {spec.base_asset: _SCRATCH_FUNDS, spec.quote_asset: _SCRATCH_FUNDS})
        try:
            scratch.place_order(_SCRATCH_ACCOUNT, symbol, side, order_type, now_ms=self.clock(), **args)
        except EngineError as exc:
            # A quoteOrderQty order finds no liquidity on the empty copy: that is engine state, not the request.
            if not exc.msg.startswith("Order book liquidity"):
                raise

    def _commission_rates(self, symbol: str) -> dict[str, object]:
        spec = self.engine.spec(symbol)
        return {
            "standardCommissionForOrder": {
                "maker": _rate(spec.maker_commission),
                "taker": _rate(spec.taker_commission),
            },
            "specialCommissionForOrder": {"maker": _ZERO_RATE, "taker": _ZERO_RATE},
            "taxCommissionForOrder": {"maker": _ZERO_RATE, "taker": _ZERO_RATE},
            "discount": {
                "enabledForAccount": False,
                "enabledForSymbol": False,
                "discountAsset": "BNB",
                "discount": _ZERO_RATE,
            },
        }

    def cancel_order(self, auth: AuthenticatedRequest, params: Params) -> Outcome:
        symbol = _symbol(params)
        order_id = _int(params, "orderId")
        orig_id = params.get("origClientOrderId")
        engine_id = self.accounts.engine_id(auth.account_id)
        restriction = params.get("cancelRestrictions")
        if restriction is not None:
            if restriction not in ("ONLY_NEW", "ONLY_PARTIALLY_FILLED"):
                raise ApiError(400, -1145, "cancelRestrictions has to be either ONLY_NEW or ONLY_PARTIALLY_FILLED.")
            try:
                view = self.engine.get_order(engine_id, symbol, order_id=order_id, orig_client_order_id=orig_id)
            except EngineError:
                view = None  # let the cancel itself answer (-2011 / -1102 …)
            wanted = OrderStatus.NEW if restriction == "ONLY_NEW" else OrderStatus.PARTIALLY_FILLED
            if view is not None and view.status in _OPEN and view.status is not wanted:
                raise EngineError(-2011, "Order was not canceled due to cancel restrictions.")
        now = self.clock()
        auth.recheck(now)
        result = self.engine.cancel_order(
            engine_id,
            symbol,
            order_id=order_id,
            orig_client_order_id=orig_id,
            new_client_order_id=params.get("newClientOrderId"),
            now_ms=now,
        )
        self.apply(result)
        cancel_id = result.cancel_client_order_id or ""
        return Outcome(_cancel(result.order, cancel_id, result.transact_time, self.strategy(symbol, result.order_id)))

    def cancel_open_orders(self, auth: AuthenticatedRequest, params: Params) -> Outcome:
        symbol = _symbol(params)
        now = self.clock()
        auth.recheck(now)
        result = self.engine.cancel_open_orders(self.accounts.engine_id(auth.account_id), symbol, now_ms=now)
        self.apply(result)
        return Outcome(
            [
                _cancel(
                    c.order, c.cancel_client_order_id, result.transact_time, self.strategy(symbol, c.order.order_id)
                )
                for c in result.canceled
            ]
        )

    def get_order(self, auth: AuthenticatedRequest, params: Params) -> Outcome:
        symbol = _symbol(params)
        view = self.engine.get_order(
            self.accounts.engine_id(auth.account_id),
            symbol,
            order_id=_int(params, "orderId"),
            orig_client_order_id=params.get("origClientOrderId"),
        )
        return Outcome(render_order(view, self.strategy(symbol, view.order_id)))

    def open_orders(self, auth: AuthenticatedRequest, params: Params) -> Outcome:
        symbol = _symbol(params) if "symbol" in params else None
        views = self.engine.open_orders(self.accounts.engine_id(auth.account_id), symbol)
        return Outcome([render_order(v, self.strategy(v.symbol, v.order_id)) for v in views])

    def all_orders(self, auth: AuthenticatedRequest, params: Params) -> Outcome:
        symbol = _symbol(params)
        views = self.engine.all_orders(
            self.accounts.engine_id(auth.account_id),
            symbol,
            order_id=_int(params, "orderId"),
            start_time=_time(params, "startTime"),
            end_time=_time(params, "endTime"),
            limit=_int(params, "limit") or 500,
        )
        return Outcome([render_order(v, self.strategy(symbol, v.order_id)) for v in views])

    def my_trades(self, auth: AuthenticatedRequest, params: Params) -> Outcome:
        symbol = _symbol(params)
        trades = self.engine.my_trades(
            self.accounts.engine_id(auth.account_id),
            symbol,
            order_id=_int(params, "orderId"),
            from_id=_int(params, "fromId"),
            start_time=_time(params, "startTime"),
            end_time=_time(params, "endTime"),
            limit=_int(params, "limit") or 500,
        )
        return Outcome([_trade(t) for t in trades])

    def account(self, auth: AuthenticatedRequest, params: Params) -> Outcome:
        omit_zero = _bool(params, "omitZeroBalances")
        balances = self.engine.balances(self.accounts.engine_id(auth.account_id))
        entry = self.accounts.registry.get(auth.api_key)
        specs = self.engine.symbols()
        maker = specs[0].maker_commission if specs else Decimal(0)
        taker = specs[0].taker_commission if specs else Decimal(0)
        return Outcome(
            {
                "makerCommission": int(maker * 10_000),
                "takerCommission": int(taker * 10_000),
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": _rate(maker),
                    "taker": _rate(taker),
                    "buyer": _ZERO_RATE,
                    "seller": _ZERO_RATE,
                },
                "canTrade": entry is not None and entry.trading_enabled,
                "canWithdraw": False,  # no wallet in the simulator
                "canDeposit": False,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": self._update_times.get(auth.account_id, 0),
                "accountType": "SPOT",
                "balances": [
                    {"asset": b.asset, "free": fmt(b.free), "locked": fmt(b.locked)}
                    for b in balances
                    if not (omit_zero and b.free == 0 and b.locked == 0)
                ],
                "permissions": ["SPOT"],
                "uid": auth.account_id,
            }
        )


def _decimal_or_none(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except ArithmeticError:
        return None


# --------------------------------------------------------------------------- operations


class OpName(StrEnum):
    PLACE = "order.place"
    TEST = "order.test"
    CANCEL = "order.cancel"
    STATUS = "order.status"
    OPEN_ORDERS = "openOrders.status"
    CANCEL_ALL = "openOrders.cancelAll"
    ALL_ORDERS = "allOrders"
    MY_TRADES = "myTrades"
    ACCOUNT = "account.status"


@dataclass(frozen=True, slots=True)
class Operation:
    """One signed call: security type, weight (from the still unverified parameters), what it reads."""

    name: OpName
    security: Security
    weight: Callable[[Params], int]
    reads: frozenset[str]
    run: Callable[[TradingDesk, AuthenticatedRequest, Params], Outcome]
    order_call: bool = False  # weight 0 when successful (§4.1)
    places_order: bool = False  # subject to the ORDERS limit
    common: frozenset[str] = field(default=frozenset({"timestamp", "recvWindow"}))

    def call(self, desk: TradingDesk, auth: AuthenticatedRequest, ignored: frozenset[str] = frozenset()) -> Outcome:
        _check_read(auth.params, self.reads | self.common, ignored)
        return self.run(desk, auth, auth.params)


def _fixed(weight: int) -> Callable[[Params], int]:
    return lambda params: weight


_ORDER_PARAMS: Final = frozenset(
    {
        "symbol", "side", "type", "timeInForce", "quantity", "quoteOrderQty", "price", "newClientOrderId",
        "strategyId", "strategyType", "stopPrice", "trailingDelta", "icebergQty", "newOrderRespType",
        "selfTradePreventionMode", "pegPriceType", "pegOffsetValue", "pegOffsetType",
    }
)  # fmt: skip


OPERATIONS: Final[Mapping[OpName, Operation]] = {
    op.name: op
    for op in (
        Operation(OpName.PLACE, Security.TRADE, _fixed(1), _ORDER_PARAMS,
                  lambda d, a, p: d.place_order(a, p), order_call=True, places_order=True),
        Operation(OpName.TEST, Security.TRADE,
                  lambda p: 20 if p.get("computeCommissionRates", "").lower() == "true" else 1,
                  _ORDER_PARAMS | {"computeCommissionRates"}, lambda d, a, p: d.place_order(a, p, test=True)),
        Operation(OpName.CANCEL, Security.TRADE, _fixed(1),
                  frozenset({"symbol", "orderId", "origClientOrderId", "newClientOrderId", "cancelRestrictions"}),
                  lambda d, a, p: d.cancel_order(a, p), order_call=True),
        Operation(OpName.STATUS, Security.USER_DATA, _fixed(4),
                  frozenset({"symbol", "orderId", "origClientOrderId"}), lambda d, a, p: d.get_order(a, p)),
        Operation(OpName.OPEN_ORDERS, Security.USER_DATA, lambda p: 6 if "symbol" in p else 80,
                  frozenset({"symbol"}), lambda d, a, p: d.open_orders(a, p)),
        Operation(OpName.CANCEL_ALL, Security.TRADE, _fixed(1), frozenset({"symbol"}),
                  lambda d, a, p: d.cancel_open_orders(a, p), order_call=True),
        Operation(OpName.ALL_ORDERS, Security.USER_DATA, _fixed(20),
                  frozenset({"symbol", "orderId", "startTime", "endTime", "limit"}),
                  lambda d, a, p: d.all_orders(a, p)),
        Operation(OpName.MY_TRADES, Security.USER_DATA, lambda p: 5 if "orderId" in p else 20,
                  frozenset({"symbol", "orderId", "startTime", "endTime", "fromId", "limit"}),
                  lambda d, a, p: d.my_trades(a, p)),
        Operation(OpName.ACCOUNT, Security.USER_DATA, _fixed(20), frozenset({"omitZeroBalances"}),
                  lambda d, a, p: d.account(a, p)),
    )
}  # fmt: skip

REST_ROUTES: Final[Mapping[tuple[str, str], OpName]] = {
    ("POST", "/api/v3/order"): OpName.PLACE,
    ("POST", "/api/v3/order/test"): OpName.TEST,
    ("DELETE", "/api/v3/order"): OpName.CANCEL,
    ("GET", "/api/v3/order"): OpName.STATUS,
    ("GET", "/api/v3/openOrders"): OpName.OPEN_ORDERS,
    ("DELETE", "/api/v3/openOrders"): OpName.CANCEL_ALL,
    ("GET", "/api/v3/allOrders"): OpName.ALL_ORDERS,
    ("GET", "/api/v3/myTrades"): OpName.MY_TRADES,
    ("GET", "/api/v3/account"): OpName.ACCOUNT,
}

DESK = web.AppKey("trading_desk", TradingDesk)

_FORM: Final = "application/x-www-form-urlencoded"


def _answer(body: object, status: int, headers: Mapping[str, str]) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def _rest_handler(op: Operation) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        desk = request.app[DESK]
        limiter = request.app[LIMITER]
        ip = request.remote or "unknown"
        now = desk.clock()
        faults = request.app.get(FAULTS)
        if faults is not None and (rule := faults.take_rest(request.path)) is not None:
            return await answer_injected_fault(request, rule, ip, now)
        raw_query = request.raw_path.partition("?")[2].encode("utf-8")
        raw_body = await request.read() if request.content_type == _FORM else b""
        try:
            weight = op.weight(parse_params(raw_query, raw_body))
        except AuthError:
            weight = op.weight({})  # malformed parameters: verify_rest answers below
        try:
            limiter.check_request(ip, now, weight, charge=not op.order_call)
        except RateLimitError as exc:
            return _answer(exc.to_json(), exc.http_status, {**exc.headers(), **limiter.response_headers(ip, now)})
        account_id: int | None = None
        try:
            auth = verify_rest(
                desk.accounts.registry,
                api_key=request.headers.get(API_KEY_HEADER),
                raw_query=raw_query,
                raw_body=raw_body,
                now_ms=now,
                security=op.security,
            )
            account_id = auth.account_id
            if op.places_order:
                limiter.check_new_order(auth.account_id, now)
            outcome = op.call(desk, auth)
            if op.places_order and faults is not None and faults.take_order_unknown():
                # The order executed; the answer says its status is unknown (§4.6).
                return _answer(ORDER_UNKNOWN.to_json(), ORDER_UNKNOWN.status, limiter.response_headers(ip, now))
            hold_s = faults.take_order_slow() if op.places_order and faults is not None else 0.0
        except RateLimitError as exc:
            if op.order_call:
                limiter.charge(ip, now, weight)
            return _answer(exc.to_json(), exc.http_status, {**exc.headers(), **limiter.response_headers(ip, now)})
        except (AuthError, ApiError, EngineError) as exc:
            if op.order_call:
                limiter.charge(ip, now, weight)
            status = exc.http_status if isinstance(exc, AuthError) else exc.status if isinstance(exc, ApiError) else 400
            headers = limiter.response_headers(ip, now, account_id=account_id if op.places_order else None)
            return _answer({"code": exc.code, "msg": exc.msg}, status, headers)
        headers = limiter.response_headers(ip, now, account_id=account_id if outcome.new_order else None)
        if hold_s:
            await asyncio.sleep(hold_s)  # the order executed; its answer is slow to come
        return _answer(outcome.body, 200, headers)

    return handle


def add_routes(app: web.Application, desk: TradingDesk) -> None:
    """Serve the signed endpoints of `REST_ROUTES` from `desk` (the app must hold `rest.LIMITER`)."""
    app[DESK] = desk
    for (method, path), name in REST_ROUTES.items():
        app.router.add_route(method, path, _rest_handler(OPERATIONS[name]))
