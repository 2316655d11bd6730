"""The order manager: the one path orders take to the exchange.

It decides nothing about filters itself (`provider.trading.validation` does); it owns what needs
state or IO around them:

* **Safety switches.** Placement is refused (`TradingDisabled`) unless ``PROVIDER_TRADING=on`` and
  the kill switch is released; the per-order and per-symbol notional caps (quote asset units)
  are checked before anything is sent. Engaging the kill switch refuses new orders at once, waits
  for placements already on the wire, then cancels every open order on every symbol.
* **Idempotency.** Every order carries a client order id (generated when the caller gives none).
  The manager remembers the ids it has sent: a second placement with an id already placed, or
  whose outcome is unknown, is answered by querying that id, never by sending it again.
* **Reconciliation.** A placement whose answer is ambiguous (`ExecutionUnknown`: timeout, 5xx,
  -1006/-1007) is never retried: the order is queried by its client id a few times with backoff;
  the answer is the real order (``reconciled``) or an explicit UNKNOWN the caller can query later.
  An id whose placement stayed unknown is sent again only once the exchange has said "no such
  order" for longer than `ReconcilePolicy.absent_after_ms` (reference §4.6 step 4).
* **Insufficient balance** is not pre-checked (a pre-check would race fills and cannot know the
  exchange's exact cost): the exchange's -2010 "insufficient balance" answer is turned into
  `InsufficientBalance` carrying the free amount read from ``GET /api/v3/account`` (weight 20).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final, Protocol, TypeVar

from provider.binance import wire
from provider.binance.signing import ParamValue
from provider.binance.wire import ApiPath, Method, Weight, WireFormatError
from provider.errors import (
    CODE_CANCEL_REJECTED,
    CODE_NEW_ORDER_REJECTED,
    CODE_NO_SUCH_ORDER,
    BinanceError,
    ExecutionUnknown,
    InsufficientBalance,
    InvalidArgument,
    NotionalLimit,
    ProviderError,
    TradingDisabled,
    UnexpectedResponse,
)
from provider.marketdata.model import AvgPrice, SymbolRules
from provider.trading.journal import PlacementJournal, SentRecord, SentState
from provider.trading.model import (
    KillSwitchResult,
    Order,
    OrderRequest,
    OrdersPage,
    OrderStatus,
    OrderType,
    PlacedOrder,
    Side,
    TestedOrder,
    TradingStatus,
)
from provider.trading.validation import check_order, fmt

__all__ = [
    "OrderManager",
    "ReconcilePolicy",
    "RulesSource",
    "TradingLimits",
    "TradingRest",
    "new_client_order_id",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ALL_ORDERS_LIMIT: Final = 1000
DEFAULT_ALL_ORDERS_LIMIT: Final = 500
MAX_WINDOW_MS: Final = 24 * 60 * 60 * 1000
_INSUFFICIENT: Final = "insufficient balance"


class RulesSource(Protocol):
    """Symbol rules from exchangeInfo (`provider.marketdata.hub.MarketDataHub` is one)."""

    def validate(self, symbol: str) -> str: ...

    def rules(self, symbol: str) -> SymbolRules: ...


class _Clock(Protocol):
    def now_ms(self) -> int: ...


class TradingRest(Protocol):
    """What the manager needs of `provider.binance.rest.RestClient`."""

    @property
    def has_credentials(self) -> bool: ...

    @property
    def clock(self) -> _Clock: ...

    async def avg_price(self, symbol: str) -> AvgPrice: ...

    async def signed(
        self, method: str, path: str, params: Mapping[str, ParamValue], *, weight: int, order: bool = False
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class TradingLimits:
    enabled: bool
    """``PROVIDER_TRADING=on``."""
    max_order_notional: Decimal | None = None
    max_symbol_notional: Decimal | None = None
    """Open orders' remaining notional on one symbol plus the new order's, in its quote asset."""


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    delays_s: tuple[float, ...] = (0.25, 0.5, 1.0)
    """Backoff between order queries after an ambiguous answer (one query first, at once)."""
    absent_after_ms: int = 30_000
    """After this long with "no such order", an unknown placement is taken as never made."""
    drain_timeout_s: float = 15.0
    """How long the kill switch waits for placements already on the wire."""


def new_client_order_id() -> str:
    """A fresh id within Binance's ``^[a-zA-Z0-9-_]{1,36}$``."""
    return f"pv-{secrets.token_hex(12)}"


class OrderManager:
    def __init__(
        self,
        rest: TradingRest,
        rules: RulesSource,
        limits: TradingLimits,
        *,
        policy: ReconcilePolicy = ReconcilePolicy(),
        new_id: Callable[[], str] = new_client_order_id,
        journal: PlacementJournal | None = None,
    ) -> None:
        """:param journal: what was sent under each client order id; in memory only by default."""
        self._rest = rest
        self._rules = rules
        self._limits = limits
        self._policy = policy
        self._new_id = new_id
        self._kill_reason: str | None = None
        self._journal = journal if journal is not None else PlacementJournal()
        self._locks: dict[str, asyncio.Lock] = {}
        self._placements: set[asyncio.Task[PlacedOrder]] = set()  # in flight, their callers waiting or not
        self._idle = asyncio.Event()  # set while none is
        self._idle.set()

    # ------------------------------------------------------------------ switches

    def status(self) -> TradingStatus:
        limits = self._limits
        return TradingStatus(
            trading_enabled=limits.enabled,
            kill_switch_engaged=self._kill_reason is not None,
            kill_switch_reason=self._kill_reason or "",
            credentials_configured=self._rest.has_credentials,
            max_order_notional=None if limits.max_order_notional is None else fmt(limits.max_order_notional),
            max_symbol_notional=None if limits.max_symbol_notional is None else fmt(limits.max_symbol_notional),
        )

    def _require_enabled(self) -> None:
        if not self._limits.enabled:
            raise TradingDisabled("trading is disabled: start the provider with PROVIDER_TRADING=on to place orders")
        if self._kill_reason is not None:
            raise TradingDisabled(
                f"trading is halted by the kill switch ({self._kill_reason}); release it with SetKillSwitch"
            )

    async def set_kill_switch(self, engaged: bool, reason: str) -> KillSwitchResult:
        """Engage: refuse new orders, then cancel every open order. Release: accept orders again."""
        if not engaged:
            self._kill_reason = None
            log.warning("kill switch released")
            return KillSwitchResult(False, (), ())
        self._kill_reason = reason or "engaged"
        log.warning("kill switch engaged: %s", self._kill_reason)
        try:
            await asyncio.wait_for(self._idle.wait(), self._policy.drain_timeout_s)
        except TimeoutError:
            log.error("kill switch: placements still in flight after %.0f s", self._policy.drain_timeout_s)
        open_orders = await self.open_orders(None)
        cancelled: list[Order] = []
        failures: list[str] = []
        for symbol in sorted({o.symbol for o in open_orders}):
            try:
                cancelled.extend(await self._cancel_all(symbol))
            except ProviderError as exc:
                failures.append(f"{symbol}: {exc.message}")
        return KillSwitchResult(True, tuple(cancelled), tuple(failures))

    # ------------------------------------------------------------------ checks

    async def _checked(self, request: OrderRequest) -> tuple[OrderRequest, SymbolRules, Decimal | None]:
        symbol = self._rules.validate(request.symbol)
        rules = self._rules.rules(symbol)
        request = replace(request, symbol=symbol)
        reference: Decimal | None = None
        if request.type is OrderType.MARKET and request.quantity is not None:
            # Notional of a MARKET order by quantity is priced like the exchange does: average price.
            reference = Decimal((await self._rest.avg_price(symbol)).price)
        notional = check_order(request, rules, reference_price=reference)
        cap = self._limits.max_order_notional
        if cap is not None and notional is not None and notional > cap:
            raise NotionalLimit(
                symbol,
                f"order notional {fmt(notional)} {rules.quote_asset} is above the provider's per-order cap "
                f"{fmt(cap)} (PROVIDER_MAX_ORDER_NOTIONAL)",
            )
        return request, rules, notional

    async def _check_symbol_cap(self, symbol: str, quote: str, notional: Decimal | None) -> None:
        cap = self._limits.max_symbol_notional
        if cap is None or notional is None:
            return
        resting = Decimal(0)
        for order in await self.open_orders(symbol):
            price = order.price if order.price and Decimal(order.price) > 0 else order.stop_price
            if price and order.orig_qty:
                remaining = Decimal(order.orig_qty) - Decimal(order.executed_qty or "0")
                resting += remaining * Decimal(price)
        if resting + notional > cap:
            raise NotionalLimit(
                symbol,
                f"open orders on {symbol} ({fmt(resting)} {quote}) plus this order ({fmt(notional)} {quote}) "
                f"exceed the provider's per-symbol cap {fmt(cap)} (PROVIDER_MAX_SYMBOL_NOTIONAL)",
            )

    # ------------------------------------------------------------------ placing

    async def place(self, request: OrderRequest) -> PlacedOrder:
        """Check and place an order. Once checked, the placement runs to its end even if the caller
        stops waiting (a gRPC call cancelled by its client, its deadline or the server's shutdown):
        cut off while the exchange handles the order, its outcome would never be remembered, and a
        retry with the same client order id would place the order a second time."""
        self._require_enabled()
        request, rules, notional = await self._checked(request)
        client_id = request.client_order_id or self._new_id()
        request = replace(request, client_order_id=client_id)
        task = asyncio.create_task(self._place(request, rules, notional), name=f"order {client_id}")
        self._placements.add(task)
        self._idle.clear()
        task.add_done_callback(self._placed)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                log.warning("order %s: the caller stopped waiting; the placement goes on", client_id)
                task.add_done_callback(_log_outcome)
            raise

    def _placed(self, task: asyncio.Task[PlacedOrder]) -> None:
        self._placements.discard(task)
        if not self._placements:
            self._idle.set()

    @property
    def in_flight(self) -> int:
        """Placements not finished yet, their callers waiting or not."""
        return len(self._placements)

    async def close(self, timeout_s: float = 2.0) -> None:
        """At shutdown, after the gRPC server stopped: let placements in flight finish for up to
        `timeout_s`, then cancel the rest (their outcome stays unknown; retries reconcile it)."""
        if not self._placements:
            return
        _, pending = await asyncio.wait(set(self._placements), timeout=timeout_s)
        for task in pending:
            log.error("%s: still in flight at shutdown; cancelled, its outcome unknown", task.get_name())
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _place(self, request: OrderRequest, rules: SymbolRules, notional: Decimal | None) -> PlacedOrder:
        client_id = request.client_order_id
        assert client_id is not None
        lock = self._locks.setdefault(client_id, asyncio.Lock())
        try:
            async with lock:
                self._require_enabled()  # the kill switch may have been engaged while waiting
                earlier = await self._earlier_outcome(request)
                if earlier is not None:
                    return earlier
                await self._check_symbol_cap(request.symbol, rules.quote_asset, notional)
                return await self._send(request, rules, notional)
        finally:
            if not lock.locked() and self._locks.get(client_id) is lock:
                del self._locks[client_id]

    async def _earlier_outcome(self, request: OrderRequest) -> PlacedOrder | None:
        """An earlier placement with this client id, learnt by querying; None if it may be sent."""
        client_id = request.client_order_id
        assert client_id is not None
        record = self._journal.get(client_id)
        if record is None:
            return None
        if record.symbol != request.symbol:
            raise InvalidArgument(
                "client_order_id", f"client_order_id {client_id} was already used for an order on {record.symbol}"
            )
        found = await self._query_by_client_id(request.symbol, client_id, attempts=1)
        if found is not None:
            self._remember(client_id, SentState.PLACED, request.symbol)
            return PlacedOrder(found, reconciled=True)
        now = self._rest.clock.now_ms()
        # UNKNOWN, or SENDING from before a restart: the outcome was never learnt.
        if record.state is not SentState.PLACED and now - record.since_ms >= self._policy.absent_after_ms:
            log.info("order %s: absent %d ms after an unknown outcome; sending it", client_id, now - record.since_ms)
            return None
        if record.state is SentState.PLACED:
            # Placed, yet the exchange has no such order now (archived): never place it again.
            raise InvalidArgument("client_order_id", f"client_order_id {client_id} was already used")
        return PlacedOrder(_unknown_order(request), reconciled=True)

    async def _send(self, request: OrderRequest, rules: SymbolRules, notional: Decimal | None) -> PlacedOrder:
        client_id = request.client_order_id
        assert client_id is not None
        params = wire.new_order_params(request, client_id)
        # On record before the request leaves: if the provider stops before the answer comes, the
        # next attempt with this id asks the exchange first.
        self._remember(client_id, SentState.SENDING, request.symbol)
        try:
            body = await self._rest.signed(Method.POST, ApiPath.ORDER, params, weight=Weight.ORDER, order=True)
        except ExecutionUnknown as exc:
            self._remember(client_id, SentState.UNKNOWN, request.symbol)
            log.warning("order %s: %s; reconciling by client order id", client_id, exc.message)
            return await self._reconcile(request)
        except Exception as exc:
            # Refused, or never sent: for an order call the REST client raises ExecutionUnknown
            # whenever the request may have left. Nothing was placed under this id.
            self._journal.drop(client_id)
            if (
                isinstance(exc, BinanceError)
                and exc.code == CODE_NEW_ORDER_REJECTED
                and _INSUFFICIENT in exc.msg.lower()
            ):
                raise await self._insufficient(request, rules, notional, exc) from exc
            raise
        try:
            placed = wire.parse_placed_order(body)
        except WireFormatError as exc:
            # The order exists but the answer is unreadable: learn its state by querying.
            self._remember(client_id, SentState.UNKNOWN, request.symbol)
            log.warning("order %s: unreadable answer (%s); reconciling", client_id, exc)
            return await self._reconcile(request)
        self._remember(client_id, SentState.PLACED, request.symbol)
        return placed

    async def _reconcile(self, request: OrderRequest) -> PlacedOrder:
        assert request.client_order_id is not None
        attempts = 1 + len(self._policy.delays_s)
        found = await self._query_by_client_id(request.symbol, request.client_order_id, attempts=attempts)
        if found is None:
            log.warning("order %s: outcome still unknown; reported as UNKNOWN", request.client_order_id)
            return PlacedOrder(_unknown_order(request), reconciled=True)
        self._remember(request.client_order_id, SentState.PLACED, request.symbol)
        return PlacedOrder(found, reconciled=True)

    async def _query_by_client_id(self, symbol: str, client_id: str, *, attempts: int) -> Order | None:
        """The order with `client_id`, or None if the exchange did not confirm it within `attempts`."""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._policy.delays_s[min(attempt - 1, len(self._policy.delays_s) - 1)])
            try:
                return await self.get(symbol, None, client_id)
            except BinanceError as exc:
                if exc.code != CODE_NO_SUCH_ORDER:
                    log.warning("order %s: query failed: %s", client_id, exc.message)
            except ProviderError as exc:
                log.warning("order %s: query failed: %s", client_id, exc.message)
        return None

    def _remember(self, client_id: str, state: SentState, symbol: str) -> None:
        self._journal.put(client_id, SentRecord(state, symbol, self._rest.clock.now_ms()))

    async def _insufficient(
        self, request: OrderRequest, rules: SymbolRules, notional: Decimal | None, error: BinanceError
    ) -> ProviderError:
        buying = request.side is Side.BUY
        asset = rules.quote_asset if buying else rules.base_asset
        needed = notional if buying else Decimal(request.quantity) if request.quantity else None
        available: str | None = None
        try:
            body = await self._rest.signed(Method.GET, ApiPath.ACCOUNT, {}, weight=Weight.ACCOUNT)
            account = wire.parse_account(body)
            available = next((b.free for b in account.balances if b.asset == asset), "0")
        except (ProviderError, WireFormatError) as exc:
            message = exc.message if isinstance(exc, ProviderError) else str(exc)
            log.warning("balance not read after -2010: %s", message)
        what = f"insufficient {asset} balance"
        if available is not None:
            what += f": available {fmt(Decimal(available))} {asset}"
        if needed is not None:
            what += f", this order needs about {fmt(needed)} {asset} before fees"
        return InsufficientBalance(asset, available, f"{what} ({error.msg})", code=error.code, msg=error.msg)

    async def test(self, request: OrderRequest, *, compute_commission: bool) -> TestedOrder:
        """Validate like `place` (filters, caps, then the exchange's own checks); places nothing.

        Not refused when trading is off: it cannot place an order, and lets callers check orders first.
        """
        request, _, notional = await self._checked(request)
        params = wire.new_order_params(request, request.client_order_id or self._new_id())
        weight = Weight.ORDER_TEST
        if compute_commission:
            params["computeCommissionRates"] = "true"
            weight = Weight.ORDER_TEST_WITH_COMMISSION
        body = await self._rest.signed(Method.POST, ApiPath.ORDER_TEST, params, weight=weight)
        tested = _parse(wire.parse_test_order, body, ApiPath.ORDER_TEST)
        return replace(tested, notional=None if notional is None else fmt(notional))

    # ------------------------------------------------------------------ cancelling

    async def cancel(
        self, symbol: str, order_id: int | None, client_order_id: str | None, cancel_client_order_id: str | None
    ) -> Order:
        """Cancel one order. Allowed whatever the switches say: cancelling only lowers risk."""
        symbol = self._rules.validate(symbol)
        _need_reference(order_id, client_order_id)
        params = wire.order_ref_params(symbol, order_id, client_order_id)
        params["newClientOrderId"] = cancel_client_order_id or self._new_id()
        try:
            body = await self._rest.signed(Method.DELETE, ApiPath.ORDER, params, weight=Weight.ORDER, order=True)
        except ExecutionUnknown as exc:
            log.warning("cancel on %s: %s; querying the order", symbol, exc.message)
            try:
                return await self.get(symbol, order_id, client_order_id)
            except ProviderError:
                raise exc from None
        return _parse(wire.parse_order, body, ApiPath.ORDER)

    async def cancel_all(self, symbol: str) -> list[Order]:
        return await self._cancel_all(self._rules.validate(symbol))

    async def _cancel_all(self, symbol: str) -> list[Order]:
        try:
            body = await self._rest.signed(
                Method.DELETE, ApiPath.OPEN_ORDERS, {"symbol": symbol}, weight=Weight.ORDER, order=True
            )
        except BinanceError as exc:
            if exc.code == CODE_CANCEL_REJECTED and "unknown order" in exc.msg.lower():
                return []  # nothing was open
            raise
        return _parse(wire.parse_orders, body, ApiPath.OPEN_ORDERS)

    # ------------------------------------------------------------------ queries

    async def get(self, symbol: str, order_id: int | None, client_order_id: str | None) -> Order:
        symbol = self._rules.validate(symbol)
        _need_reference(order_id, client_order_id)
        params = wire.order_ref_params(symbol, order_id, client_order_id)
        body = await self._rest.signed(Method.GET, ApiPath.ORDER, params, weight=Weight.QUERY_ORDER)
        return _parse(wire.parse_order, body, ApiPath.ORDER)

    async def open_orders(self, symbol: str | None) -> list[Order]:
        params: dict[str, ParamValue] = {}
        weight = Weight.OPEN_ORDERS_ALL
        if symbol:
            params["symbol"] = self._rules.validate(symbol)
            weight = Weight.OPEN_ORDERS_SYMBOL
        body = await self._rest.signed(Method.GET, ApiPath.OPEN_ORDERS, params, weight=weight)
        return _parse(wire.parse_orders, body, ApiPath.OPEN_ORDERS)

    async def open_orders_as_of(self, symbol: str | None) -> tuple[list[Order], int]:
        """Open orders and the (server-clock) time the answer was current."""
        orders = await self.open_orders(symbol)
        return orders, self._rest.clock.now_ms()

    async def all_orders(
        self, symbol: str, from_order_id: int | None, start_ms: int | None, end_ms: int | None, limit: int
    ) -> OrdersPage:
        """One page of the symbol's orders (oldest first); ``next_from_order_id`` continues it."""
        symbol = self._rules.validate(symbol)
        if limit < 0 or limit > MAX_ALL_ORDERS_LIMIT:
            raise InvalidArgument("limit", f"limit must be 1 to {MAX_ALL_ORDERS_LIMIT} (0 for 500); got {limit}")
        limit = limit or DEFAULT_ALL_ORDERS_LIMIT
        if start_ms is not None and end_ms is not None:
            if end_ms < start_ms:
                raise InvalidArgument("end_time_ms", "end_time_ms is before start_time_ms")
            if end_ms - start_ms > MAX_WINDOW_MS:
                raise InvalidArgument("end_time_ms", "end_time_ms must be at most 24 h after start_time_ms")
        params = wire.all_orders_params(symbol, from_order_id, start_ms, end_ms, limit)
        body = await self._rest.signed(Method.GET, ApiPath.ALL_ORDERS, params, weight=Weight.ALL_ORDERS)
        orders = _parse(wire.parse_orders, body, ApiPath.ALL_ORDERS)
        next_id = orders[-1].order_id + 1 if len(orders) >= limit else 0
        return OrdersPage(tuple(orders), next_id)


def _need_reference(order_id: int | None, client_order_id: str | None) -> None:
    if not order_id and not client_order_id:
        raise InvalidArgument("order_id", "give order_id or client_order_id")


def _parse(parse: Callable[[Any], T], body: Any, what: str) -> T:
    try:
        return parse(body)
    except WireFormatError as exc:
        raise UnexpectedResponse(f"{what}: {exc}") from exc


def _unknown_order(request: OrderRequest) -> Order:
    """What is known of an order whose outcome the exchange has not told: the request itself."""
    assert request.client_order_id is not None
    return Order(
        symbol=request.symbol,
        order_id=0,
        client_order_id=request.client_order_id,
        side=request.side,
        type=request.type,
        time_in_force=request.time_in_force,
        status=OrderStatus.UNKNOWN,
        price=request.price,
        stop_price=request.stop_price,
        orig_qty=request.quantity,
        orig_quote_order_qty=request.quote_order_qty,
        iceberg_qty=request.iceberg_qty,
        stp_mode=request.stp_mode,
    )


def _log_outcome(task: asyncio.Task[PlacedOrder]) -> None:
    """The outcome of a placement whose caller left: nobody else will see it (and reading the
    exception here keeps asyncio from reporting it as never retrieved)."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.warning("%s: finished after its caller left: %s", task.get_name(), error)
    else:
        order = task.result().order
        status = order.status.name if order.status is not None else "status unknown"
        log.info("%s: finished after its caller left: %s, order id %d", task.get_name(), status, order.order_id)
