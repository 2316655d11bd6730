"""Trading tools (scope `trade`): place, cancel, cancel all, get order.

They are listed only to a caller whose token has the `trade` scope (ScopeGuard) and only while the
provider reports trading enabled (TradingGate asks Trading/GetTradingStatus on each tools/list).
Every order carries a client order id, generated here when the caller gives none, so that an
outcome the exchange did not confirm can be checked with get_order instead of being sent again.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import grpc
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as t
from binance.provider.v1 import trading_pb2_grpc as t_grpc
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from gateway_mcp.render import check_order_hint, derived_price, table
from gateway_mcp.tools_account import (
    ORDER_HEADERS,
    OrderView,
    call_private,
    fresh_text,
    now_ms,
    order_row,
    order_view,
)
from gateway_mcp.tools_market import CALL_TIMEOUT_S, Freshness, Symbol, tool_result

# Placing may wait for the provider to reconcile an ambiguous answer (several queries with delays).
PLACE_TIMEOUT_S = 30.0
STATUS_TIMEOUT_S = 3.0
CLIENT_ORDER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,36}$"
DECIMAL_PATTERN = r"^[0-9]{1,20}(\.[0-9]{1,20})?$"
CLIENT_ID_PREFIX = "mcp-"
MAX_FILLS = 20

TRADING_TOOLS = ("place_order", "cancel_order", "cancel_all_orders", "get_order")


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


def register_trading_tools(server: MCPServer, channel: grpc.aio.Channel) -> list[str]:
    """Add the trading tools; returns their names (all need scope `trade`; TradingGate hides them while
    the provider has trading off)."""
    stub = t_grpc.TradingStub(channel)

    @server.tool(
        name="place_order",
        title="Place an order",
        description=(
            "Place a spot order with real funds. LIMIT and LIMIT_MAKER need price and quantity; MARKET needs "
            "quantity (base) or quote_order_quantity (quote to spend/receive); STOP_LOSS/TAKE_PROFIT need "
            "stop_price, and their _LIMIT forms also price. Prices and quantities are decimal strings that must "
            "respect the symbol's tick size, step size and minimum notional (get_symbol_rules). Give a "
            "client_order_id (or one is generated and returned). If the outcome is UNKNOWN or the call fails "
            "without a clear refusal, do NOT place again: call get_order with that client_order_id."
        ),
        annotations=PLACE,
    )
    async def place_order(
        symbol: Symbol,
        side: Annotated[OrderSide, Field(description="BUY or SELL")],
        type: Annotated[OrderKind, Field(description="order type")],
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
    ) -> Annotated[CallToolResult, PlacedOrder]:
        name = symbol.upper()
        client_id = client_order_id or new_client_order_id()
        spec = order_spec(
            name,
            side,
            type,
            client_id,
            quantity=quantity,
            quote_order_quantity=quote_order_quantity,
            price=price,
            stop_price=stop_price,
            time_in_force=time_in_force,
        )
        response = await call_private(
            stub.PlaceOrder(t.PlaceOrderRequest(order=spec), timeout=PLACE_TIMEOUT_S), name, client_id
        )
        result = placed_order(response, now_ms())
        return tool_result(result, render_placed(result))

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

    return list(TRADING_TOOLS)
