"""Account tools (scope `account`): balances, open orders and the caller's own trades.

Balances, prices and quantities are the exchange's decimal strings; totals the gateway adds up are
exact decimals (never floats). The order model here is shared with the trading tools.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from decimal import Decimal
from typing import Annotated, TypeVar

import grpc
from binance.provider.v1 import account_pb2 as ac
from binance.provider.v1 import account_pb2_grpc as ac_grpc
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as t
from binance.provider.v1 import trading_pb2_grpc as t_grpc
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from gateway_mcp.render import decimal_text, explain_private_error, table, utc_minute, utc_second
from gateway_mcp.tools_market import (
    CALL_TIMEOUT_S,
    MAX_ROWS,
    READ_ONLY,
    SYMBOL_PATTERN,
    Freshness,
    Symbol,
    source_name,
    tool_result,
)
from provider_client.errors import decode_rpc_error

T = TypeVar("T")

MAX_BALANCES = 100
MAX_ORDERS = 100
ASSET_PATTERN = r"^[A-Za-z0-9]{1,20}$"


# --- output models --------------------------------------------------------------------------------


class BalanceRow(BaseModel):
    asset: str
    free: str
    locked: str = Field(description="held by open orders")
    total: str = Field(description="free + locked (exact)")


class Balances(BaseModel):
    balances: list[BalanceRow] = Field(description="in asset-name order")
    omitted: int = Field(description="balances left out beyond the cap")
    freshness: Freshness


class OrderView(BaseModel):
    symbol: str
    order_id: int = Field(description="0 while the status is UNKNOWN and the exchange has not confirmed it")
    client_order_id: str
    side: str
    type: str
    time_in_force: str | None
    status: str = Field(
        description="NEW, PARTIALLY_FILLED, FILLED, CANCELED, REJECTED, EXPIRED, EXPIRED_IN_MATCH, "
        "PENDING_NEW, PENDING_CANCEL, or UNKNOWN (outcome not learnt: query it by client_order_id, never resend)"
    )
    price: str | None
    stop_price: str | None
    quantity: str | None = Field(description="original base quantity")
    executed_quantity: str
    cumulative_quote_quantity: str
    quote_order_quantity: str | None
    time_ms: int | None
    update_time_ms: int | None
    expiry_reason: str | None


class OpenOrders(BaseModel):
    orders: list[OrderView] = Field(description="newest first")
    omitted: int
    freshness: Freshness


class MyTrade(BaseModel):
    symbol: str
    id: int
    order_id: int
    side: str = Field(description="BUY or SELL: this account's side")
    maker: bool
    price: str
    quantity: str
    quote_quantity: str
    commission: str
    commission_asset: str
    time_ms: int


class MyTradesSummary(BaseModel):
    bought: str = Field(description="base quantity bought (exact)")
    sold: str
    spent_quote: str = Field(description="quote spent on buys (exact)")
    received_quote: str
    commissions: dict[str, str] = Field(description="commission paid, by asset (exact)")
    first_time_ms: int
    last_time_ms: int


class MyTrades(BaseModel):
    symbol: str
    trades: list[MyTrade] = Field(description="oldest first")
    summary: MyTradesSummary | None = Field(description="null when there are no trades")
    next_from_id: int | None = Field(description="pass as from_id for the next page; null when done")
    freshness: Freshness


# --- pure conversions -----------------------------------------------------------------------------


def _optional(text: str) -> str | None:
    return text if text and Decimal(text) != 0 else None


def balance_rows(balances: Sequence[ac.Balance], assets: Sequence[str] | None) -> tuple[list[BalanceRow], int]:
    """Rows for the wanted assets (all when None), by asset name (amounts in different units do not
    rank against each other); then the cap."""
    wanted = {a.upper() for a in assets} if assets else None
    rows = [
        BalanceRow(asset=b.asset, free=b.free, locked=b.locked, total=decimal_text(Decimal(b.free) + Decimal(b.locked)))
        for b in balances
        if wanted is None or b.asset in wanted
    ]
    rows.sort(key=lambda r: r.asset)
    return rows[:MAX_BALANCES], max(0, len(rows) - MAX_BALANCES)


def order_view(o: t.Order) -> OrderView:
    return OrderView(
        symbol=o.symbol,
        order_id=o.order_id,
        client_order_id=o.client_order_id,
        side=c.Side.Name(o.side).removeprefix("SIDE_"),
        type=c.OrderType.Name(o.type).removeprefix("ORDER_TYPE_"),
        time_in_force=c.TimeInForce.Name(o.time_in_force).removeprefix("TIME_IN_FORCE_") if o.time_in_force else None,
        status=c.OrderStatus.Name(o.status).removeprefix("ORDER_STATUS_"),
        price=_optional(o.price),
        stop_price=_optional(o.stop_price),
        quantity=_optional(o.original_quantity),
        executed_quantity=o.executed_quantity or "0",
        cumulative_quote_quantity=o.cumulative_quote_quantity or "0",
        quote_order_quantity=_optional(o.original_quote_order_quantity),
        time_ms=o.time_ms or None,
        update_time_ms=o.update_time_ms or None,
        expiry_reason=o.expiry_reason or None,
    )


def my_trade(m: ac.MyTrade) -> MyTrade:
    return MyTrade(
        symbol=m.symbol,
        id=m.id,
        order_id=m.order_id,
        side="BUY" if m.is_buyer else "SELL",
        maker=m.is_maker,
        price=m.price,
        quantity=m.quantity,
        quote_quantity=m.quote_quantity,
        commission=m.commission,
        commission_asset=m.commission_asset,
        time_ms=m.time_ms,
    )


def my_trades_summary(trades: Sequence[MyTrade]) -> MyTradesSummary | None:
    if not trades:
        return None
    zero = Decimal(0)
    bought = sum((Decimal(x.quantity) for x in trades if x.side == "BUY"), zero)
    sold = sum((Decimal(x.quantity) for x in trades if x.side == "SELL"), zero)
    spent = sum((Decimal(x.quote_quantity) for x in trades if x.side == "BUY"), zero)
    received = sum((Decimal(x.quote_quantity) for x in trades if x.side == "SELL"), zero)
    commissions: dict[str, Decimal] = {}
    for x in trades:
        if x.commission_asset:
            commissions[x.commission_asset] = commissions.get(x.commission_asset, zero) + Decimal(x.commission)
    return MyTradesSummary(
        bought=decimal_text(bought),
        sold=decimal_text(sold),
        spent_quote=decimal_text(spent),
        received_quote=decimal_text(received),
        commissions={asset: decimal_text(total) for asset, total in sorted(commissions.items())},
        first_time_ms=min(x.time_ms for x in trades),
        last_time_ms=max(x.time_ms for x in trades),
    )


def rest_freshness(as_of_ms: int, source: c.DataSource.ValueType, now_ms: int) -> Freshness:
    """Freshness of an account answer: where it came from and how old the provider's view was."""
    return Freshness(
        source=source_name(source) if source else "EXCHANGE_REST",
        fetched_at_ms=now_ms,
        event_time_ms=as_of_ms or None,
        age_ms=max(0, now_ms - as_of_ms) if as_of_ms else None,
    )


# --- text renderings ------------------------------------------------------------------------------


def fresh_text(f: Freshness) -> str:
    parts = [f"source {f.source}"]
    if f.event_time_ms:
        parts.append(f"as of {utc_second(f.event_time_ms)} UTC")
    if f.age_ms is not None:
        parts.append(f"age {f.age_ms} ms")
    return ", ".join(parts)


def render_balances(b: Balances) -> str:
    rows = [[r.asset, r.free, r.locked] for r in b.balances]
    body = table(["asset", "free", "locked"], rows) if rows else "no balances"
    more = f"\n... {b.omitted} more" if b.omitted else ""
    return f"balances: {len(rows)}\n{body}{more}\n({fresh_text(b.freshness)})"


def order_row(o: OrderView) -> list[str]:
    filled = f"{o.executed_quantity}/{o.quantity}" if o.quantity else o.executed_quantity
    return [o.symbol, str(o.order_id), o.client_order_id, o.side, o.type, o.price or "-", filled, o.status]


ORDER_HEADERS = ["symbol", "order id", "client id", "side", "type", "price", "filled/qty", "status"]


def render_open_orders(result: OpenOrders) -> str:
    rows = [order_row(o) for o in result.orders]
    body = table(ORDER_HEADERS, rows) if rows else "no open orders"
    more = f"\n... {result.omitted} more" if result.omitted else ""
    return f"open orders: {len(rows)}\n{body}{more}\n({fresh_text(result.freshness)})"


def render_my_trades(result: MyTrades) -> str:
    head = f"{result.symbol} my trades: {len(result.trades)}"
    s = result.summary
    if s is not None:
        fees = ", ".join(f"{v} {k}" for k, v in s.commissions.items()) or "none"
        head += (
            f" from {utc_minute(s.first_time_ms)} to {utc_minute(s.last_time_ms)} UTC; bought {s.bought} for "
            f"{s.spent_quote}, sold {s.sold} for {s.received_quote}; commission {fees}"
        )
    rows = [
        [utc_minute(x.time_ms), x.side, x.price, x.quantity, "maker" if x.maker else "taker", str(x.order_id)]
        for x in result.trades
    ]
    body = table(["time UTC", "side", "price", "qty", "role", "order id"], rows) if rows else "no trades"
    more = f"\nmore: call again with from_id={result.next_from_id}" if result.next_from_id else ""
    return f"{head}\n{body}{more}\n({fresh_text(result.freshness)})"


# --- the tools ------------------------------------------------------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


async def call_private(call: Awaitable[T], symbol: str | None, client_order_id: str | None = None) -> T:
    """Await a provider call of the account or trading services; failures become tool errors."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        error = decode_rpc_error(exc)
        raise ToolError(explain_private_error(error, symbol=symbol, client_order_id=client_order_id)) from None


def register_account_tools(server: MCPServer, channel: grpc.aio.Channel) -> list[str]:
    """Add the account tools; returns their names (all need scope `account`)."""
    account = ac_grpc.AccountStub(channel)
    trading = t_grpc.TradingStub(channel)

    @server.tool(
        name="get_balances",
        title="Account balances",
        description=(
            "Free and locked (held by open orders) balances of the trading account, by asset. "
            "By default only assets with a non-zero balance."
        ),
        annotations=READ_ONLY,
    )
    async def get_balances(
        assets: Annotated[
            list[Annotated[str, Field(pattern=ASSET_PATTERN)]] | None,
            Field(max_length=50, description='only these assets, e.g. ["BTC", "USDT"]; default all'),
        ] = None,
        non_zero_only: Annotated[bool, Field(description="leave out assets with nothing free or locked")] = True,
    ) -> Annotated[CallToolResult, Balances]:
        response = await call_private(
            account.GetBalances(ac.GetBalancesRequest(non_zero_only=non_zero_only), timeout=CALL_TIMEOUT_S), None
        )
        rows, omitted = balance_rows(response.balances, assets)
        result = Balances(
            balances=rows, omitted=omitted, freshness=rest_freshness(response.as_of_ms, response.source, now_ms())
        )
        return tool_result(result, render_balances(result))

    @server.tool(
        name="get_open_orders",
        title="Open orders",
        description="The account's open orders (all symbols, or one), newest first, with their fill progress.",
        annotations=READ_ONLY,
    )
    async def get_open_orders(
        symbol: Annotated[
            str | None, Field(pattern=SYMBOL_PATTERN, description="only this symbol, e.g. BTCUSDT; default all")
        ] = None,
    ) -> Annotated[CallToolResult, OpenOrders]:
        name = symbol.upper() if symbol else None
        response = await call_private(
            trading.GetOpenOrders(t.GetOpenOrdersRequest(symbol=name or ""), timeout=CALL_TIMEOUT_S), name
        )
        orders = sorted((order_view(o) for o in response.orders), key=lambda o: -(o.time_ms or 0))
        result = OpenOrders(
            orders=orders[:MAX_ORDERS],
            omitted=max(0, len(orders) - MAX_ORDERS),
            freshness=rest_freshness(response.as_of_ms, response.source, now_ms()),
        )
        return tool_result(result, render_open_orders(result))

    @server.tool(
        name="get_my_trades",
        title="My trades (fills)",
        description=(
            "This account's own trades (fills) on a symbol, oldest first, with totals bought/sold and commission "
            "paid. Without times returns the most recent; page with from_id. A time window may span at most 24 h."
        ),
        annotations=READ_ONLY,
    )
    async def get_my_trades(
        symbol: Symbol,
        limit: Annotated[int, Field(ge=1, le=MAX_ROWS, description="number of trades")] = 50,
        order_id: Annotated[int | None, Field(ge=1, description="only the fills of this order")] = None,
        from_id: Annotated[int | None, Field(ge=1, description="trades with id >= this (paging)")] = None,
        start_time_ms: Annotated[int | None, Field(ge=1, description="epoch ms")] = None,
        end_time_ms: Annotated[int | None, Field(ge=1, description="epoch ms, at most 24 h after start")] = None,
    ) -> Annotated[CallToolResult, MyTrades]:
        name = symbol.upper()
        if start_time_ms is not None and end_time_ms is not None and start_time_ms > end_time_ms:
            raise ToolError("Invalid parameter 'start_time_ms': it is after 'end_time_ms'.")
        request = ac.GetMyTradesRequest(
            symbol=name,
            order_id=order_id or 0,
            from_id=from_id or 0,
            start_time_ms=start_time_ms or 0,
            end_time_ms=end_time_ms or 0,
            limit=limit,
        )
        response = await call_private(account.GetMyTrades(request, timeout=CALL_TIMEOUT_S), name)
        trades = sorted((my_trade(m) for m in response.trades), key=lambda x: (x.time_ms, x.id))
        fetched = now_ms()
        result = MyTrades(
            symbol=name,
            trades=trades,
            summary=my_trades_summary(trades),
            next_from_id=response.next_from_id or None,
            freshness=Freshness(source="EXCHANGE_REST", fetched_at_ms=fetched),
        )
        return tool_result(result, render_my_trades(result))

    return ["get_balances", "get_open_orders", "get_my_trades"]
