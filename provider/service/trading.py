"""The Trading gRPC service: a thin shell over `provider.trading.orders.OrderManager`."""

from __future__ import annotations

from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as t
from binance.provider.v1 import trading_pb2_grpc as t_grpc

from provider.errors import InvalidArgument
from provider.service import trading_convert as convert
from provider.service.errors import Context, translate_unary
from provider.trading.orders import OrderManager


def _optional(value: int) -> int | None:
    return value or None


def _spec(request: t.PlaceOrderRequest | t.TestOrderRequest) -> t.OrderSpec:
    if not request.HasField("order"):
        raise InvalidArgument("order", "order is required")
    return request.order


class TradingServicer(t_grpc.TradingServicer):
    def __init__(self, manager: OrderManager) -> None:
        self._manager = manager

    @translate_unary
    async def PlaceOrder(self, request: t.PlaceOrderRequest, context: Context) -> t.PlaceOrderResponse:
        placed = await self._manager.place(convert.order_request(_spec(request), request.response_type))
        return convert.placed_to_pb(placed)

    @translate_unary
    async def TestOrder(self, request: t.TestOrderRequest, context: Context) -> t.TestOrderResponse:
        tested = await self._manager.test(
            convert.order_request(_spec(request)), compute_commission=request.compute_commission_rates
        )
        return convert.tested_to_pb(tested)

    @translate_unary
    async def CancelOrder(self, request: t.CancelOrderRequest, context: Context) -> t.CancelOrderResponse:
        order = await self._manager.cancel(
            request.symbol,
            _optional(request.order_id),
            request.client_order_id or None,
            request.cancel_client_order_id or None,
        )
        return t.CancelOrderResponse(order=convert.order_to_pb(order))

    @translate_unary
    async def CancelAllOrders(self, request: t.CancelAllOrdersRequest, context: Context) -> t.CancelAllOrdersResponse:
        orders = await self._manager.cancel_all(request.symbol)
        return t.CancelAllOrdersResponse(orders=[convert.order_to_pb(o) for o in orders])

    @translate_unary
    async def GetOrder(self, request: t.GetOrderRequest, context: Context) -> t.GetOrderResponse:
        order = await self._manager.get(request.symbol, _optional(request.order_id), request.client_order_id or None)
        return t.GetOrderResponse(order=convert.order_to_pb(order))

    @translate_unary
    async def GetOpenOrders(self, request: t.GetOpenOrdersRequest, context: Context) -> t.GetOpenOrdersResponse:
        orders, as_of = await self._manager.open_orders_as_of(request.symbol or None)
        return t.GetOpenOrdersResponse(
            orders=[convert.order_to_pb(o) for o in orders], as_of_ms=as_of, source=c.DATA_SOURCE_EXCHANGE_REST
        )

    @translate_unary
    async def GetAllOrders(self, request: t.GetAllOrdersRequest, context: Context) -> t.GetAllOrdersResponse:
        page = await self._manager.all_orders(
            request.symbol,
            _optional(request.from_order_id),
            _optional(request.start_time_ms),
            _optional(request.end_time_ms),
            request.limit,
        )
        return t.GetAllOrdersResponse(
            orders=[convert.order_to_pb(o) for o in page.orders], next_from_order_id=page.next_from_order_id
        )

    @translate_unary
    async def GetTradingStatus(
        self, request: t.GetTradingStatusRequest, context: Context
    ) -> t.GetTradingStatusResponse:
        return convert.status_to_pb(self._manager.status())

    @translate_unary
    async def SetKillSwitch(self, request: t.SetKillSwitchRequest, context: Context) -> t.SetKillSwitchResponse:
        result = await self._manager.set_kill_switch(request.engaged, request.reason)
        return convert.kill_switch_to_pb(result)
