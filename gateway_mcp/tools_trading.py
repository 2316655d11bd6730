"""Trading tools (scope `trade`): place (preview, then confirm_order), cancel, cancel all, get order.

With order previews on (the default), place_order places nothing: it validates the order with the
provider's TestOrder (the symbol's filters, the provider's caps, the exchange's own checks) and
answers with a preview and a single-use confirmation id bound to the caller and to that exact
order; confirm_order with the id places it, once. GATEWAY_MCP_ORDER_PREVIEW=off makes place_order
place at once, for bots that do not need a second step.

They are listed only to a caller whose token has the `trade` scope (ScopeGuard) and only while the
provider reports trading enabled (TradingGate asks Trading/GetTradingStatus on each tools/list).
Every order carries a client order id, generated here when the caller gives none, so that an
outcome the exchange did not confirm can be checked with get_order instead of being sent again.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import grpc
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import market_data_pb2 as md
from binance.provider.v1 import market_data_pb2_grpc as md_grpc
from binance.provider.v1 import trading_pb2 as t
from binance.provider.v1 import trading_pb2_grpc as t_grpc
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from gateway_mcp.auth import caller_identity
from gateway_mcp.confirmations import ConfirmationBook, ConfirmationRefused
from gateway_mcp.render import check_order_hint, decimal_text, derived_price, table, unknown_symbol_text
from gateway_mcp.tools_account import (
    ORDER_HEADERS,
    OrderView,
    call_private,
    fresh_text,
    now_ms,
    order_row,
    order_view,
)
from gateway_mcp.tools_market import CALL_TIMEOUT_S, Freshness, Symbol, SymbolRules, symbol_rules, tool_result

# Placing may wait for the provider to reconcile an ambiguous answer (several queries with delays).
PLACE_TIMEOUT_S = 30.0
STATUS_TIMEOUT_S = 3.0
CLIENT_ORDER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,36}$"
DECIMAL_PATTERN = r"^[0-9]{1,20}(\.[0-9]{1,20})?$"
CLIENT_ID_PREFIX = "mcp-"
MAX_FILLS = 20

TRADING_TOOLS = ("place_order", "cancel_order", "cancel_all_orders", "get_order")
CONFIRM_TOOL = "confirm_order"  # listed only while order previews are on


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderKind(StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    LIMIT_MAKER = "LIMIT_MAKER"
    STOP_LOSS = "STOP_LOSS"
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


_PB_SIDE = {OrderSide.BUY: c.SIDE_BUY, OrderSide.SELL: c.SIDE_SELL}
_PB_TYPE: dict[OrderKind, c.OrderType.ValueType] = {
    OrderKind.LIMIT: c.ORDER_TYPE_LIMIT,
    OrderKind.MARKET: c.ORDER_TYPE_MARKET,
    OrderKind.LIMIT_MAKER: c.ORDER_TYPE_LIMIT_MAKER,
    OrderKind.STOP_LOSS: c.ORDER_TYPE_STOP_LOSS,
    OrderKind.STOP_LOSS_LIMIT: c.ORDER_TYPE_STOP_LOSS_LIMIT,
    OrderKind.TAKE_PROFIT: c.ORDER_TYPE_TAKE_PROFIT,
    OrderKind.TAKE_PROFIT_LIMIT: c.ORDER_TYPE_TAKE_PROFIT_LIMIT,
}
_PB_TIF = {
    TimeInForce.GTC: c.TIME_IN_FORCE_GTC,
    TimeInForce.IOC: c.TIME_IN_FORCE_IOC,
    TimeInForce.FOK: c.TIME_IN_FORCE_FOK,
}
# The exchange requires a time in force on these types; GTC is what a caller who names none means.
_NEEDS_TIF = frozenset({OrderKind.LIMIT, OrderKind.STOP_LOSS_LIMIT, OrderKind.TAKE_PROFIT_LIMIT})

Decimal_ = Annotated[str, Field(pattern=DECIMAL_PATTERN)]


@dataclass(frozen=True)
class OrderParams:
    """One order exactly as it will be sent, every default resolved: what a preview shows and what
    its confirmation places."""

    symbol: str
    side: OrderSide
    kind: OrderKind
    client_order_id: str
    quantity: str | None = None
    quote_order_quantity: str | None = None
    price: str | None = None
    stop_price: str | None = None
    time_in_force: TimeInForce | None = None

    @classmethod
    def of(
        cls,
        symbol: str,
        side: OrderSide,
        kind: OrderKind,
        client_order_id: str | None,
        *,
        quantity: str | None = None,
        quote_order_quantity: str | None = None,
        price: str | None = None,
        stop_price: str | None = None,
        time_in_force: TimeInForce | None = None,
    ) -> OrderParams:
        return cls(
            symbol=symbol.upper(),
            side=side,
            kind=kind,
            client_order_id=client_order_id or new_client_order_id(),
            quantity=quantity,
            quote_order_quantity=quote_order_quantity,
            price=price,
            stop_price=stop_price,
            time_in_force=time_in_force
            if time_in_force is not None
            else (TimeInForce.GTC if kind in _NEEDS_TIF else None),
        )

    def spec(self) -> t.OrderSpec:
        return order_spec(
            self.symbol,
            self.side,
            self.kind,
            self.client_order_id,
            quantity=self.quantity,
            quote_order_quantity=self.quote_order_quantity,
            price=self.price,
            stop_price=self.stop_price,
            time_in_force=self.time_in_force,
        )


# --- output models --------------------------------------------------------------------------------


class FillView(BaseModel):
    price: str
    quantity: str
    commission: str
    commission_asset: str
    trade_id: int


class PlacedOrder(BaseModel):
    order: OrderView
    fills: list[FillView] = Field(description=f"fills of the order's immediate execution (first {MAX_FILLS})")
    fills_omitted: int
    average_fill_price: str | None = Field(description="volume-weighted price of the fills; null without fills")
    reconciled: bool = Field(
        description="the exchange's first answer was ambiguous; the outcome was learnt by querying"
    )
    outcome_unknown: bool = Field(
        description="true: the order may or may not exist. Never place it again; get_order by its client_order_id"
    )
    freshness: Freshness


class OrderResult(BaseModel):
    order: OrderView
    freshness: Freshness


class ProposedOrder(BaseModel):
    symbol: str
    side: str
    type: str
    quantity: str | None
    quote_order_quantity: str | None
    price: str | None
    stop_price: str | None
    time_in_force: str | None
    client_order_id: str = Field(description="the id the order will carry; get_order finds it by this id")


class CommissionRatesView(BaseModel):
    maker: str
    taker: str


class OrderPreview(BaseModel):
    order: ProposedOrder = Field(description="exactly what confirm_order will place; it cannot be changed")
    quote_asset: str
    notional: str | None = Field(
        description="price x quantity in the quote asset (MARKET by quantity: at the average price); null if unknown"
    )
    current_price: str | None = Field(description="the symbol's last price; null if unavailable")
    commission_rates: CommissionRatesView | None = Field(description="the account's standard rates, if reported")
    fees_estimate: str | None = Field(
        description="notional x the taker rate (maker rate for LIMIT_MAKER), valued in the quote asset; "
        "an upper bound for a LIMIT order that rests; null if unknown"
    )
    checks_passed: list[str] = Field(description="the rules checked, all passed (nothing is placed by a preview)")
    confirmation_id: str = Field(description="pass to confirm_order to place this order; single use, this caller only")
    expires_at_ms: int = Field(description="gateway clock (epoch ms) after which confirmation_id is refused")
    expires_in_s: int
    freshness: Freshness


class CancelledOrders(BaseModel):
    symbol: str
    orders: list[OrderView] = Field(description="the orders cancelled")
    freshness: Freshness


# --- pure parts -----------------------------------------------------------------------------------


def new_client_order_id() -> str:
    return f"{CLIENT_ID_PREFIX}{secrets.token_hex(12)}"


def order_spec(
    symbol: str,
    side: OrderSide,
    kind: OrderKind,
    client_order_id: str,
    *,
    quantity: str | None = None,
    quote_order_quantity: str | None = None,
    price: str | None = None,
    stop_price: str | None = None,
    time_in_force: TimeInForce | None = None,
) -> t.OrderSpec:
    """The provider's order spec. The provider checks which fields a type needs (and the symbol's
    filters); only the time-in-force default is decided here."""
    tif = time_in_force if time_in_force is not None else (TimeInForce.GTC if kind in _NEEDS_TIF else None)
    return t.OrderSpec(
        symbol=symbol,
        side=_PB_SIDE[side],
        type=_PB_TYPE[kind],
        time_in_force=_PB_TIF[tif] if tif is not None else c.TIME_IN_FORCE_UNSPECIFIED,
        quantity=quantity or "",
        quote_order_quantity=quote_order_quantity or "",
        price=price or "",
        stop_price=stop_price or "",
        client_order_id=client_order_id,
    )


def average_fill_price(fills: Sequence[t.Fill]) -> str | None:
    quantity = sum((Decimal(f.quantity) for f in fills), Decimal(0))
    if not quantity:
        return None
    notional = sum((Decimal(f.price) * Decimal(f.quantity) for f in fills), Decimal(0))
    return derived_price(notional / quantity, [f.price for f in fills])


def placed_order(response: t.PlaceOrderResponse, fetched_at_ms: int) -> PlacedOrder:
    order = order_view(response.order)
    return PlacedOrder(
        order=order,
        fills=[
            FillView(
                price=f.price,
                quantity=f.quantity,
                commission=f.commission,
                commission_asset=f.commission_asset,
                trade_id=f.trade_id,
            )
            for f in response.fills[:MAX_FILLS]
        ],
        fills_omitted=max(0, len(response.fills) - MAX_FILLS),
        average_fill_price=average_fill_price(response.fills),
        reconciled=response.reconciled,
        outcome_unknown=order.status == "UNKNOWN",
        freshness=exchange_freshness(fetched_at_ms),
    )


def exchange_freshness(fetched_at_ms: int) -> Freshness:
    return Freshness(source="EXCHANGE_REST", fetched_at_ms=fetched_at_ms)


def order_text(o: OrderView) -> str:
    what = f"{o.side} {o.type} {o.quantity or o.quote_order_quantity or ''} {o.symbol}".replace("  ", " ")
    at = f" @ {o.price}" if o.price else ""
    stop = f" stop {o.stop_price}" if o.stop_price else ""
    return (
        f"{what}{at}{stop}: status {o.status}, filled {o.executed_quantity} (quote {o.cumulative_quote_quantity}), "
        f"order id {o.order_id}, client_order_id {o.client_order_id}"
    )


def render_placed(p: PlacedOrder) -> str:
    lines = [f"Order {order_text(p.order)}"]
    if p.outcome_unknown:
        lines.append(f"Outcome UNKNOWN: the exchange has not confirmed it. {check_order_hint(p.order.client_order_id)}")
    elif p.reconciled:
        lines.append("(the exchange's first answer was ambiguous; this state was confirmed by querying the order)")
    if p.fills:
        more = f" (+{p.fills_omitted} more)" if p.fills_omitted else ""
        lines.append(f"fills: {len(p.fills)}{more}, average price {p.average_fill_price}")
        rows = [[f.price, f.quantity, f"{f.commission} {f.commission_asset}"] for f in p.fills]
        lines.append(table(["price", "qty", "commission"], rows))
    lines.append(f"({fresh_text(p.freshness)})")
    return "\n".join(lines)


def render_order(r: OrderResult) -> str:
    extra = f"\n{check_order_hint(r.order.client_order_id)}" if r.order.status == "UNKNOWN" else ""
    return f"Order {order_text(r.order)}{extra}\n({fresh_text(r.freshness)})"


def render_cancelled(r: CancelledOrders) -> str:
    rows = [order_row(o) for o in r.orders]
    body = table(ORDER_HEADERS, rows) if rows else "none were open"
    return f"{r.symbol}: cancelled {len(rows)} orders\n{body}\n({fresh_text(r.freshness)})"


def proposed_order(p: OrderParams) -> ProposedOrder:
    return ProposedOrder(
        symbol=p.symbol,
        side=p.side.value,
        type=p.kind.value,
        quantity=p.quantity,
        quote_order_quantity=p.quote_order_quantity,
        price=p.price,
        stop_price=p.stop_price,
        time_in_force=p.time_in_force.value if p.time_in_force is not None else None,
        client_order_id=p.client_order_id,
    )


def fees_estimate(notional: str | None, rates: CommissionRatesView | None, kind: OrderKind) -> str | None:
    if not notional or rates is None:
        return None
    rate = rates.maker if kind is OrderKind.LIMIT_MAKER else rates.taker
    return decimal_text(Decimal(notional) * Decimal(rate))


def checks_passed(rules: SymbolRules, p: OrderParams) -> list[str]:
    """The symbol rules that applied to this order (the provider checked each before the exchange's
    own test order), as short lines with the values checked against."""

    def within(low: str | None, high: str | None) -> str:
        return f" within {low or '0'}..{high or 'any'}" if low or high else ""

    checks = [f"symbol {rules.symbol} is {rules.status}, {p.kind.value} orders allowed"]
    if rules.tick_size:
        for label, value in (("price", p.price), ("stop_price", p.stop_price)):
            if value is not None:
                checks.append(
                    f"PRICE_FILTER: {label} {value} on tick {rules.tick_size}{within(rules.min_price, rules.max_price)}"
                )
    if p.quantity is not None and rules.step_size:
        checks.append(
            f"LOT_SIZE: quantity {p.quantity} on step {rules.step_size}{within(rules.min_quantity, rules.max_quantity)}"
        )
    if p.quantity is not None and p.kind is OrderKind.MARKET and rules.market_max_quantity:
        checks.append(f"MARKET_LOT_SIZE: quantity at most {rules.market_max_quantity}")
    if rules.min_notional or rules.max_notional:
        checks.append(f"NOTIONAL{within(rules.min_notional, rules.max_notional)}")
    checks.append("provider notional caps and the exchange's test order (POST /api/v3/order/test)")
    return checks


def order_preview(
    p: OrderParams,
    tested: t.TestOrderResponse,
    rules: SymbolRules,
    current_price: str | None,
    confirmation_id: str,
    expires_at_ms: int,
    now: int,
) -> OrderPreview:
    rates = (
        CommissionRatesView(maker=tested.standard_commission.maker, taker=tested.standard_commission.taker)
        if tested.HasField("standard_commission")
        else None
    )
    notional = tested.notional or None
    return OrderPreview(
        order=proposed_order(p),
        quote_asset=rules.quote_asset,
        notional=notional,
        current_price=current_price,
        commission_rates=rates,
        fees_estimate=fees_estimate(notional, rates, p.kind),
        checks_passed=checks_passed(rules, p),
        confirmation_id=confirmation_id,
        expires_at_ms=expires_at_ms,
        expires_in_s=max(0, (expires_at_ms - now) // 1000),
        freshness=exchange_freshness(now),
    )


def render_preview(v: OrderPreview) -> str:
    o = v.order
    what = " ".join(x for x in (o.side, o.type, o.quantity or o.quote_order_quantity or "", o.symbol) if x)
    at = f" @ {o.price}" if o.price else ""
    stop = f" stop {o.stop_price}" if o.stop_price else ""
    tif = f" {o.time_in_force}" if o.time_in_force else ""
    money = [f"notional {v.notional} {v.quote_asset}" if v.notional else "notional unknown"]
    if v.fees_estimate is not None:
        money.append(f"fees about {v.fees_estimate} {v.quote_asset}")
    if v.current_price is not None:
        money.append(f"current price {v.current_price}")
    return "\n".join(
        [
            f"PREVIEW, nothing placed yet: {what}{at}{stop}{tif}, client_order_id {o.client_order_id}",
            "; ".join(money),
            "checks passed: " + "; ".join(v.checks_passed),
            f"To place exactly this order call confirm_order with confirmation_id={v.confirmation_id!r} within "
            f"{v.expires_in_s} s (single use). Show the user this preview first; to change anything call "
            "place_order again.",
            f"({fresh_text(v.freshness)})",
        ]
    )


def order_reference(order_id: int | None, client_order_id: str | None) -> tuple[int, str]:
    """Exactly one of the two ids, as the provider's request fields (0 / "" for the unused one)."""
    if (order_id is None) == (client_order_id is None):
        raise ToolError("Give exactly one of 'order_id' or 'client_order_id' (get_open_orders lists both).")
    return order_id or 0, client_order_id or ""


# --- who sees the trading tools -------------------------------------------------------------------


class TradingGate(ServerMiddleware[Any]):
    """Hides the trading tools from tools/list unless the provider reports trading enabled.

    Runs outside ScopeGuard, so the provider is asked only when the caller's scopes left a trading
    tool in the list. A provider that cannot answer counts as disabled (fail closed). Calls are not
    gated here: with trading off the provider refuses them with a reason the tool error explains."""

    def __init__(self, channel: grpc.aio.Channel, tools: Sequence[str] = TRADING_TOOLS) -> None:
        self._stub = t_grpc.TradingStub(channel)
        self._tools = frozenset(tools)

    async def trading_enabled(self) -> bool:
        try:
            status = await self._stub.GetTradingStatus(t.GetTradingStatusRequest(), timeout=STATUS_TIMEOUT_S)
        except grpc.aio.AioRpcError:
            return False
        return status.trading_enabled

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/list" or not isinstance(result, dict):
            return result
        listed = result.get("tools")
        if not isinstance(listed, list):
            return result
        if not any(isinstance(x, dict) and x.get("name") in self._tools for x in listed):
            return result
        if await self.trading_enabled():
            return result
        return {**result, "tools": [x for x in listed if not (isinstance(x, dict) and x.get("name") in self._tools)]}


# --- the tools ------------------------------------------------------------------------------------

PLACE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)
CANCEL = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)
LOOKUP = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)

OrderId = Annotated[int | None, Field(ge=1, description="the exchange's order id")]
ClientOrderId = Annotated[str | None, Field(pattern=CLIENT_ORDER_ID_PATTERN, description="the order's client id")]


PLACE_DESCRIPTION = (
    "LIMIT and LIMIT_MAKER need price and quantity; MARKET needs quantity (base) or quote_order_quantity (quote "
    "to spend/receive); STOP_LOSS/TAKE_PROFIT need stop_price, and their _LIMIT forms also price. Prices and "
    "quantities are decimal strings that must respect the symbol's tick size, step size and minimum notional "
    "(get_symbol_rules). Give a client_order_id (or one is generated and returned). "
)
PREVIEW_DESCRIPTION = (
    "Step 1 of 2 for a spot order with real funds: validates the order against the symbol's rules and the "
    "exchange's test order and returns a PREVIEW (the exact order, notional, fees estimate, current price, checks "
    "passed) with a confirmation_id. Nothing is placed. Show the preview to the user; only if they agree, call "
    "confirm_order with the confirmation_id (step 2) before it expires. To change the order, preview again. "
)
DIRECT_DESCRIPTION = (
    "Place a spot order with real funds. If the outcome is UNKNOWN or the call fails without a clear refusal, do "
    "NOT place again: call get_order with that client_order_id. "
)


def register_trading_tools(
    server: MCPServer, channel: grpc.aio.Channel, confirmations: ConfirmationBook[OrderParams] | None = None
) -> list[str]:
    """Add the trading tools; returns their names (all need scope `trade`; TradingGate hides them while
    the provider has trading off). With `confirmations`, place_order previews and confirm_order places;
    without, place_order places at once."""
    stub = t_grpc.TradingStub(channel)
    market = md_grpc.MarketDataStub(channel)

    async def place(params: OrderParams) -> CallToolResult:
        response = await call_private(
            stub.PlaceOrder(t.PlaceOrderRequest(order=params.spec()), timeout=PLACE_TIMEOUT_S),
            params.symbol,
            params.client_order_id,
        )
        result = placed_order(response, now_ms())
        return tool_result(result, render_placed(result))

    async def preview(params: OrderParams, caller: str, book: ConfirmationBook[OrderParams]) -> CallToolResult:
        name = params.symbol
        tested = await call_private(
            stub.TestOrder(
                t.TestOrderRequest(order=params.spec(), compute_commission_rates=True), timeout=CALL_TIMEOUT_S
            ),
            name,
        )
        info, prices = await asyncio.gather(
            call_private(
                market.GetExchangeInfo(md.GetExchangeInfoRequest(symbols=[name]), timeout=CALL_TIMEOUT_S), name
            ),
            call_private(market.GetTickerPrice(md.GetTickerPriceRequest(symbols=[name]), timeout=CALL_TIMEOUT_S), name),
            return_exceptions=True,  # neither is left running if the other fails; no price is not fatal
        )
        if isinstance(info, BaseException):
            raise info
        found = [x for x in info.symbols if x.symbol == name]
        if not found:
            raise ToolError(unknown_symbol_text(name))
        now = now_ms()
        rules = symbol_rules(found[0], info.server_time_ms, now)
        price = (
            next((x.price for x in prices.prices if x.symbol == name), None)
            if isinstance(prices, md.GetTickerPriceResponse)
            else None
        )
        confirmation = book.issue(caller, params, now)
        result = order_preview(
            params, tested, rules, price, confirmation.confirmation_id, confirmation.expires_at_ms, now
        )
        return tool_result(result, render_preview(result))

    # PLACE's hints either way: with previews the call places nothing, but hints stay conservative so a
    # client that asks its user before destructive tools still asks here.
    place_description = (DIRECT_DESCRIPTION if confirmations is None else PREVIEW_DESCRIPTION) + PLACE_DESCRIPTION

    async def place_order(
        symbol: Symbol,
        side: Annotated[OrderSide, Field(description="BUY or SELL")],
        type: Annotated[OrderKind, Field(description="order type")],
        ctx: Context[Any, Any],
        quantity: Annotated[Decimal_ | None, Field(description='base-asset quantity, e.g. "0.001"')] = None,
        quote_order_quantity: Annotated[
            Decimal_ | None, Field(description="MARKET only: quote amount to spend (BUY) or receive (SELL)")
        ] = None,
        price: Annotated[Decimal_ | None, Field(description='limit price, e.g. "65000.01"')] = None,
        stop_price: Annotated[Decimal_ | None, Field(description="trigger price of stop and take-profit types")] = None,
        time_in_force: Annotated[
            TimeInForce | None, Field(description="GTC (default for limit types), IOC or FOK")
        ] = None,
        client_order_id: Annotated[
            str | None,
            Field(pattern=CLIENT_ORDER_ID_PATTERN, description="your id for the order (1-36 of A-Z a-z 0-9 _ -)"),
        ] = None,
    ) -> Annotated[CallToolResult, OrderPreview]:
        params = OrderParams.of(
            symbol,
            side,
            type,
            client_order_id,
            quantity=quantity,
            quote_order_quantity=quote_order_quantity,
            price=price,
            stop_price=stop_price,
            time_in_force=time_in_force,
        )
        if confirmations is None:
            return await place(params)
        return await preview(params, caller_identity(ctx.request_context.request), confirmations)

    if confirmations is None:
        # Same inputs, but it places: the declared output is then the placed order.
        place_order.__annotations__["return"] = Annotated[CallToolResult, PlacedOrder]
    server.tool(name="place_order", title="Place an order", description=place_description, annotations=PLACE)(
        place_order
    )

    @server.tool(
        name="get_order",
        title="Get an order",
        description=(
            "Current state of one order by order_id or client_order_id (exactly one): status, fill progress, "
            "prices. Use it to resolve an UNKNOWN outcome of place_order."
        ),
        annotations=LOOKUP,
    )
    async def get_order(
        symbol: Symbol, order_id: OrderId = None, client_order_id: ClientOrderId = None
    ) -> Annotated[CallToolResult, OrderResult]:
        name = symbol.upper()
        numeric, client = order_reference(order_id, client_order_id)
        response = await call_private(
            stub.GetOrder(
                t.GetOrderRequest(symbol=name, order_id=numeric, client_order_id=client), timeout=CALL_TIMEOUT_S
            ),
            name,
        )
        result = OrderResult(order=order_view(response.order), freshness=exchange_freshness(now_ms()))
        return tool_result(result, render_order(result))

    @server.tool(
        name="cancel_order",
        title="Cancel an order",
        description="Cancel one open order by order_id or client_order_id (exactly one); returns its final state.",
        annotations=CANCEL,
    )
    async def cancel_order(
        symbol: Symbol, order_id: OrderId = None, client_order_id: ClientOrderId = None
    ) -> Annotated[CallToolResult, OrderResult]:
        name = symbol.upper()
        numeric, client = order_reference(order_id, client_order_id)
        response = await call_private(
            stub.CancelOrder(
                t.CancelOrderRequest(symbol=name, order_id=numeric, client_order_id=client), timeout=CALL_TIMEOUT_S
            ),
            name,
        )
        result = OrderResult(order=order_view(response.order), freshness=exchange_freshness(now_ms()))
        return tool_result(result, render_order(result))

    @server.tool(
        name="cancel_all_orders",
        title="Cancel all orders of a symbol",
        description="Cancel every open order of one symbol; returns the orders cancelled.",
        annotations=CANCEL,
    )
    async def cancel_all_orders(symbol: Symbol) -> Annotated[CallToolResult, CancelledOrders]:
        name = symbol.upper()
        response = await call_private(
            stub.CancelAllOrders(t.CancelAllOrdersRequest(symbol=name), timeout=CALL_TIMEOUT_S), name
        )
        result = CancelledOrders(
            symbol=name, orders=[order_view(o) for o in response.orders], freshness=exchange_freshness(now_ms())
        )
        return tool_result(result, render_cancelled(result))

    names = list(TRADING_TOOLS)
    if confirmations is not None:
        book = confirmations

        @server.tool(
            name=CONFIRM_TOOL,
            title="Confirm a previewed order",
            description=(
                "Step 2 of 2: place the order previewed by place_order, exactly as previewed, by its confirmation_id. "
                "Call it only after the user has agreed to that preview. Each confirmation_id places at most one "
                "order; an expired, used or unknown one is refused and nothing is placed. If the outcome is UNKNOWN "
                "or the call fails without a clear refusal, do NOT preview and confirm again: call get_order with "
                "the preview's client_order_id."
            ),
            annotations=PLACE,
        )
        async def confirm_order(
            confirmation_id: Annotated[
                str, Field(min_length=1, max_length=100, description="the confirmation_id from place_order's preview")
            ],
            ctx: Context[Any, Any],
        ) -> Annotated[CallToolResult, PlacedOrder]:
            try:
                params = book.redeem(confirmation_id, caller_identity(ctx.request_context.request), now_ms())
            except ConfirmationRefused as refused:
                raise ToolError(refused.message) from None
            return await place(params)

        names.append(CONFIRM_TOOL)
    return names
