"""REST orders in Binance's shapes, answered by the provider's Trading service.

    POST /api/v1/order  POST /api/v1/order/test  DELETE /api/v1/order  GET /api/v1/order
    GET /api/v1/openOrders  DELETE /api/v1/openOrders  GET /api/v1/allOrders

Scopes: placing and cancelling need `trade`; reading orders needs `account` (like balances and
fills), so a monitoring token can watch orders without being able to place any.

Parameters have Binance's names and may come in the query string or a form body (what Binance
clients send) or a JSON object body (for browsers); each name at most once across them.
Binance's `timestamp`, `recvWindow` and `signature` are accepted and ignored (the bearer token
authenticates). Decimals stay text end to end: JSON numbers are read as their exact decimal text
and never pass through a binary float.

Provider errors keep errors_middleware's shape; the provider's field names are given back in
Binance's (time_in_force -> timeInForce). An order whose outcome the exchange has not told yet
(the provider reconciled by client order id and still does not know) is answered 202 with
`status: "UNKNOWN"`: the order may exist; query it by `origClientOrderId`, never resend blindly.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Awaitable, Mapping, Sequence
from decimal import Decimal
from typing import TypeVar

import grpc
import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as t
from binance.provider.v1 import trading_pb2_grpc as t_grpc
from multidict import MultiDict

from gateway_auth.tokens import Scope
from gateway_http import convert
from gateway_http.errors import ApiError, GatewayReason, provider_error_answer
from gateway_http.openapi import PARAMS, Api, JsonSchema, Param, ParamError, Params, parse_params
from gateway_http.provider_stub import ProviderStub
from provider_client.errors import decode_rpc_error

CALL_TIMEOUT_S = 30.0  # placement may reconcile an ambiguous answer by querying a few times
SYMBOL_PATTERN = "^[A-Z0-9]{2,20}$"
CLIENT_ORDER_ID_PATTERN = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"  # Binance's
CANCEL_ID_PREFIX = "gwc-"
TAGS = ("orders",)
AS_OF_HEADER = "X-As-Of-Ms"
SOURCE_HEADER = "X-Data-Source"
NEXT_ORDER_ID_HEADER = "X-Next-Order-Id"
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

R = TypeVar("R")
ChannelKey = web.AppKey[grpc.aio.Channel]

SIDES: Mapping[str, c.Side.ValueType] = {"BUY": c.SIDE_BUY, "SELL": c.SIDE_SELL}
ORDER_TYPES: Mapping[str, c.OrderType.ValueType] = {
    convert.order_type(value): value for value in c.OrderType.values() if value != c.ORDER_TYPE_UNSPECIFIED
}
TIME_IN_FORCE: Mapping[str, c.TimeInForce.ValueType] = {
    "GTC": c.TIME_IN_FORCE_GTC,
    "IOC": c.TIME_IN_FORCE_IOC,
    "FOK": c.TIME_IN_FORCE_FOK,
}
STP_MODES: Mapping[str, c.SelfTradePreventionMode.ValueType] = {
    convert.stp_mode(value): value
    for value in c.SelfTradePreventionMode.values()
    if value != c.SELF_TRADE_PREVENTION_MODE_UNSPECIFIED
}
RESPONSE_TYPES: Mapping[convert.OrderResponseType, t.OrderResponseType.ValueType] = {
    convert.OrderResponseType.ACK: t.ORDER_RESPONSE_TYPE_ACK,
    convert.OrderResponseType.RESULT: t.ORDER_RESPONSE_TYPE_RESULT,
    convert.OrderResponseType.FULL: t.ORDER_RESPONSE_TYPE_FULL,
}

# The provider's request field -> the HTTP parameter, per call (client_order_id differs).
PLACE_FIELDS: Mapping[str, str] = {
    "time_in_force": "timeInForce",
    "quote_order_quantity": "quoteOrderQty",
    "stop_price": "stopPrice",
    "iceberg_quantity": "icebergQty",
    "client_order_id": "newClientOrderId",
    "self_trade_prevention_mode": "selfTradePreventionMode",
    "response_type": "newOrderRespType",
}
QUERY_FIELDS: Mapping[str, str] = {
    "order_id": "orderId",
    "client_order_id": "origClientOrderId",
    "cancel_client_order_id": "newClientOrderId",
    "from_order_id": "orderId",
    "start_time_ms": "startTime",
    "end_time_ms": "endTime",
}


def http_field(provider_field: str | None, names: Mapping[str, str]) -> str | None:
    """The HTTP parameter a provider field violation is about (its own name when no mapping)."""
    if provider_field is None:
        return None
    name = provider_field.removeprefix("order.")
    return names.get(name, name)


def provider_error(exc: grpc.RpcError, names: Mapping[str, str]) -> ApiError:
    """errors_middleware's answer for a failed provider call, with the field in this API's name."""
    answer = provider_error_answer(decode_rpc_error(exc))
    return ApiError(dataclasses.replace(answer, field=http_field(answer.field, names)))


async def provider_call(call: Awaitable[R], names: Mapping[str, str]) -> R:
    """Await a provider call; a failure becomes `provider_error`."""
    try:
        return await call
    except grpc.RpcError as exc:
        raise provider_error(exc, names) from None


# --- parameters ---------------------------------------------------------------------------------


def _symbol(required: bool = True) -> Param:
    return Param("symbol", str, required=required, pattern=SYMBOL_PATTERN, description="e.g. BTCUSDT")


def _decimal(name: str, description: str) -> Param:
    return Param(name, Decimal, minimum=Decimal(0), description=description)


BINANCE_COMPAT = (
    Param("timestamp", int, minimum=0, description="accepted from Binance clients and ignored"),
    Param("recvWindow", int, minimum=0, maximum=60000, description="accepted from Binance clients and ignored"),
    Param("signature", str, description="accepted from Binance clients and ignored; the bearer token authenticates"),
)
ORDER_ID = Param("orderId", int, minimum=1)
ORIG_CLIENT_ORDER_ID = Param(
    "origClientOrderId", str, pattern=CLIENT_ORDER_ID_PATTERN, description="the order's client id"
)

NEW_ORDER_PARAMS = (
    _symbol(),
    Param("side", str, required=True, choices=tuple(SIDES)),
    Param("type", str, required=True, choices=tuple(ORDER_TYPES)),
    Param("timeInForce", str, choices=tuple(TIME_IN_FORCE), description="LIMIT, STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT"),
    _decimal("quantity", "base asset amount"),
    _decimal("quoteOrderQty", "MARKET only: spend (BUY) or receive (SELL) this much quote asset"),
    _decimal("price", "limit price"),
    _decimal("stopPrice", "STOP_LOSS*, TAKE_PROFIT*"),
    _decimal("icebergQty", "visible part of an iceberg (needs timeInForce GTC)"),
    Param(
        "newClientOrderId",
        str,
        pattern=CLIENT_ORDER_ID_PATTERN,
        description="send your own so an order of unknown outcome can be found; generated when absent",
    ),
    Param(
        "newOrderRespType",
        str,
        choices=tuple(convert.OrderResponseType),
        description="default FULL for MARKET and LIMIT, ACK otherwise (Binance's)",
    ),
    Param("selfTradePreventionMode", str, choices=tuple(STP_MODES), description="default: the symbol's"),
    *BINANCE_COMPAT,
)
TEST_ORDER_PARAMS = (
    *NEW_ORDER_PARAMS,
    Param("computeCommissionRates", bool, default=False, description="answer the commission rates too"),
)
CANCEL_PARAMS = (
    _symbol(),
    ORDER_ID,
    ORIG_CLIENT_ORDER_ID,
    Param(
        "newClientOrderId",
        str,
        pattern=CLIENT_ORDER_ID_PATTERN,
        description="id of the cancel itself; generated when absent",
    ),
    *BINANCE_COMPAT,
)
CANCEL_ALL_PARAMS = (_symbol(), *BINANCE_COMPAT)
GET_ORDER_PARAMS = (_symbol(), ORDER_ID, ORIG_CLIENT_ORDER_ID, *BINANCE_COMPAT)
OPEN_ORDERS_PARAMS = (_symbol(required=False), *BINANCE_COMPAT)
ALL_ORDERS_PARAMS = (
    _symbol(),
    Param("orderId", int, minimum=1, description="orders with id >= this (pagination: see X-Next-Order-Id)"),
    Param("startTime", int, minimum=1, description="ms since the epoch"),
    Param("endTime", int, minimum=1, description="ms since the epoch; at most 24 h after startTime"),
    Param("limit", int, minimum=1, maximum=1000, default=500),
    *BINANCE_COMPAT,
)


def as_query(params: Sequence[Param]) -> list[Param]:
    """What the registry checks in the query string: every parameter may instead be in the body."""
    return [dataclasses.replace(p, required=False) for p in params]


def body_schema(params: Sequence[Param]) -> JsonSchema:
    """The JSON (or form) body carrying the same parameters."""
    return {
        "type": "object",
        "required": [p.name for p in params if p.required],
        "properties": {p.name: p.schema() for p in params},
        "additionalProperties": False,
        "description": "the same parameters as the query string, which they may replace; decimals as strings",
    }


def _json_text(name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)  # JSON numbers arrive as int or Decimal (never float): exact text
    raise ParamError(name, f"expected a string or a number, got {type(value).__name__}")


async def body_items(request: web.Request) -> list[tuple[str, str]]:
    """The parameters in a form or JSON body; none without a body."""
    if not request.body_exists:
        return []
    if request.content_type in _FORM_TYPES:
        form = await request.post()
        items = []
        for name, value in form.items():
            if not isinstance(value, str):
                raise ParamError(name, "file uploads are not parameters")
            items.append((name, value))
        return items
    if request.content_type == "application/json":
        try:
            body = json.loads(await request.read(), parse_float=Decimal)
        except ValueError as exc:
            raise ApiError.of(400, GatewayReason.BAD_REQUEST, f"the JSON body is malformed: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError.of(400, GatewayReason.BAD_REQUEST, "the JSON body must be an object of parameters")
        return [(name, _json_text(name, value)) for name, value in body.items()]
    raise ApiError.of(
        400,
        GatewayReason.BAD_REQUEST,
        f"unsupported body type {request.content_type}: send application/x-www-form-urlencoded or application/json",
    )


async def request_params(request: web.Request, params: Sequence[Param]) -> Params:
    """The query string and the body's parameters together, checked (400 naming the field)."""
    merged: MultiDict[str] = MultiDict(request.query)
    try:
        for name, value in await body_items(request):
            merged.add(name, value)
        return parse_params(params, merged)
    except ParamError as exc:
        raise ApiError.of(400, GatewayReason.INVALID_PARAMETER, str(exc), field=exc.name) from None


def _text(params: Params, name: str) -> str:
    value = params.optional(name, Decimal)
    return "" if value is None else str(value)  # str() of a Decimal parsed from text gives that text


def order_spec(params: Params) -> t.OrderSpec:
    tif = params.optional("timeInForce", str)
    stp = params.optional("selfTradePreventionMode", str)
    return t.OrderSpec(
        symbol=params.get("symbol", str),
        side=SIDES[params.get("side", str)],
        type=ORDER_TYPES[params.get("type", str)],
        time_in_force=TIME_IN_FORCE[tif] if tif else c.TIME_IN_FORCE_UNSPECIFIED,
        quantity=_text(params, "quantity"),
        quote_order_quantity=_text(params, "quoteOrderQty"),
        price=_text(params, "price"),
        stop_price=_text(params, "stopPrice"),
        iceberg_quantity=_text(params, "icebergQty"),
        client_order_id=params.optional("newClientOrderId", str) or "",
        self_trade_prevention_mode=STP_MODES[stp] if stp else c.SELF_TRADE_PREVENTION_MODE_UNSPECIFIED,
    )


def response_type(params: Params) -> convert.OrderResponseType:
    chosen = params.optional("newOrderRespType", str)
    return convert.OrderResponseType(chosen) if chosen else convert.default_response_type(params.get("type", str))


def order_reference(params: Params) -> tuple[int, str]:
    order_id = params.optional("orderId", int) or 0
    client_id = params.optional("origClientOrderId", str) or ""
    if not order_id and not client_id:
        raise ApiError.of(400, GatewayReason.INVALID_PARAMETER, "give orderId or origClientOrderId", field="orderId")
    return order_id, client_id


def _json(body: object, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


# --- handlers -----------------------------------------------------------------------------------


class TradingRoutes:
    def __init__(self, channel_key: ChannelKey) -> None:
        self._stub: ProviderStub[t_grpc.TradingAsyncStub] = ProviderStub(channel_key, t_grpc.TradingStub)

    async def place(self, request: web.Request) -> web.Response:
        params = await request_params(request, NEW_ORDER_PARAMS)
        detail = response_type(params)
        call = self._stub(request).PlaceOrder(
            t.PlaceOrderRequest(order=order_spec(params), response_type=RESPONSE_TYPES[detail]),
            timeout=CALL_TIMEOUT_S,
        )
        placed = await provider_call(call, PLACE_FIELDS)
        unknown = placed.order.status == c.ORDER_STATUS_UNKNOWN
        return _json(convert.placed_order(placed, detail), status=202 if unknown else 200)

    async def test(self, request: web.Request) -> web.Response:
        params = await request_params(request, TEST_ORDER_PARAMS)
        call = self._stub(request).TestOrder(
            t.TestOrderRequest(
                order=order_spec(params), compute_commission_rates=params.get("computeCommissionRates", bool)
            ),
            timeout=CALL_TIMEOUT_S,
        )
        return _json(convert.tested_order(await provider_call(call, PLACE_FIELDS)))

    async def cancel(self, request: web.Request) -> web.Response:
        params = await request_params(request, CANCEL_PARAMS)
        order_id, client_id = order_reference(params)
        # Generated here, not by the provider, so the answer can name it as Binance's does.
        cancel_id = params.optional("newClientOrderId", str) or CANCEL_ID_PREFIX + secrets.token_hex(8)
        call = self._stub(request).CancelOrder(
            t.CancelOrderRequest(
                symbol=params.get("symbol", str),
                order_id=order_id,
                client_order_id=client_id,
                cancel_client_order_id=cancel_id,
            ),
            timeout=CALL_TIMEOUT_S,
        )
        answer = await provider_call(call, QUERY_FIELDS)
        return _json(convert.canceled_order(answer.order, cancel_id))

    async def cancel_all(self, request: web.Request) -> web.Response:
        params = await request_params(request, CANCEL_ALL_PARAMS)
        call = self._stub(request).CancelAllOrders(
            t.CancelAllOrdersRequest(symbol=params.get("symbol", str)), timeout=CALL_TIMEOUT_S
        )
        answer = await provider_call(call, QUERY_FIELDS)
        return _json([convert.canceled_order(o, "") for o in answer.orders])

    async def get_order(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        order_id, client_id = order_reference(params)
        call = self._stub(request).GetOrder(
            t.GetOrderRequest(symbol=params.get("symbol", str), order_id=order_id, client_order_id=client_id),
            timeout=CALL_TIMEOUT_S,
        )
        answer = await provider_call(call, QUERY_FIELDS)
        return _json(convert.order(answer.order))

    async def open_orders(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        call = self._stub(request).GetOpenOrders(
            t.GetOpenOrdersRequest(symbol=params.optional("symbol", str) or ""), timeout=CALL_TIMEOUT_S
        )
        answer = await provider_call(call, QUERY_FIELDS)
        headers = {AS_OF_HEADER: str(answer.as_of_ms), SOURCE_HEADER: convert.data_source(answer.source)}
        return _json([convert.order(o) for o in answer.orders], headers=headers)

    async def all_orders(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        start, end = params.optional("startTime", int) or 0, params.optional("endTime", int) or 0
        if start and end and start > end:
            raise ApiError.of(400, GatewayReason.INVALID_PARAMETER, "startTime is after endTime", field="startTime")
        call = self._stub(request).GetAllOrders(
            t.GetAllOrdersRequest(
                symbol=params.get("symbol", str),
                from_order_id=params.optional("orderId", int) or 0,
                start_time_ms=start,
                end_time_ms=end,
                limit=params.get("limit", int),
            ),
            timeout=CALL_TIMEOUT_S,
        )
        answer = await provider_call(call, QUERY_FIELDS)
        # The provider read the exchange for this call: the answer is current as of now.
        headers = {AS_OF_HEADER: str(int(time.time() * 1000)), SOURCE_HEADER: "EXCHANGE_REST"}
        if answer.next_from_order_id:
            headers[NEXT_ORDER_ID_HEADER] = str(answer.next_from_order_id)
        return _json([convert.order(o) for o in answer.orders], headers=headers)


PARAMS_NOTE = (
    "Parameters in the query string, a form body or a JSON object body (each at most once). "
    "timestamp, recvWindow and signature are accepted from Binance clients and ignored. "
)
_AS_OF_NOTE = f"Header {AS_OF_HEADER}: when the list was current (ms); {SOURCE_HEADER}: where it came from."


def add_trading_routes(api: Api, channel_key: ChannelKey) -> None:
    routes = TradingRoutes(channel_key)

    def with_body(
        method: str,
        path: str,
        handler: Handler,
        summary: str,
        params: Sequence[Param],
        response: JsonSchema,
        description: str,
        extra: Mapping[int, tuple[str, JsonSchema | None]] | None = None,
    ) -> None:
        api.route(
            method,
            path,
            handler,
            scope=Scope.TRADE,
            summary=summary,
            params=as_query(params),
            request_body=body_schema(params),
            request_body_required=False,
            request_body_media_types=("application/x-www-form-urlencoded", "application/json"),
            response=response,
            description=PARAMS_NOTE + description,
            tags=TAGS,
            extra_responses=extra,
        )

    with_body(
        "POST",
        "/api/v1/order",
        routes.place,
        "Place an order (Binance's POST /api/v3/order)",
        NEW_ORDER_PARAMS,
        convert.PLACED_ORDER_SCHEMA,
        "Required: symbol, side, type, and per type (LIMIT: timeInForce, quantity, price; MARKET: quantity or "
        "quoteOrderQty; ...). 400 ERROR_REASON_FILTER_VIOLATION carries details.filterType and "
        "details.nearestValid; 409 says why the state refuses it (ERROR_REASON_TRADING_DISABLED, "
        "ERROR_REASON_INSUFFICIENT_BALANCE with details.asset and details.available, "
        "ERROR_REASON_NOTIONAL_LIMIT, or an exchange rejection with Binance's code).",
        {
            202: (
                "the outcome is not known yet (status UNKNOWN, orderId 0): the order may exist. Query "
                "GET /api/v1/order?origClientOrderId=... or watch /ws/user; do not resend blindly",
                convert.PLACED_ORDER_SCHEMA,
            )
        },
    )
    with_body(
        "POST",
        "/api/v1/order/test",
        routes.test,
        "Validate an order without placing it (filters, caps, the exchange's checks)",
        TEST_ORDER_PARAMS,
        convert.TEST_ORDER_SCHEMA,
        "Errors as for POST /api/v1/order. Allowed while trading is off.",
    )
    with_body(
        "DELETE",
        "/api/v1/order",
        routes.cancel,
        "Cancel an order",
        CANCEL_PARAMS,
        convert.CANCELED_ORDER_SCHEMA,
        "orderId or origClientOrderId. 503 with reason ERROR_REASON_EXECUTION_UNKNOWN when the exchange's "
        "answer was ambiguous and a query could not settle it: query the order before cancelling again.",
    )
    with_body(
        "DELETE",
        "/api/v1/openOrders",
        routes.cancel_all,
        "Cancel every open order on a symbol",
        CANCEL_ALL_PARAMS,
        convert.CANCELED_ORDERS_SCHEMA,
        "clientOrderId (the cancels' ids) is empty: the provider generates them.",
    )

    def read(
        path: str, handler: Handler, summary: str, params: Sequence[Param], response: JsonSchema, description: str
    ) -> None:
        api.route(
            "GET",
            path,
            handler,
            scope=Scope.ACCOUNT,
            summary=summary,
            params=params,
            response=response,
            description=description + " Needs the account scope (reading orders), not trade.",
            tags=TAGS,
        )

    read(
        "/api/v1/order",
        routes.get_order,
        "One order, by orderId or origClientOrderId",
        GET_ORDER_PARAMS,
        convert.ORDER_SCHEMA,
        "404 when the exchange has no such order.",
    )
    read(
        "/api/v1/openOrders",
        routes.open_orders,
        "Open orders, of one symbol or all",
        OPEN_ORDERS_PARAMS,
        convert.ORDERS_SCHEMA,
        _AS_OF_NOTE,
    )
    read(
        "/api/v1/allOrders",
        routes.all_orders,
        "Orders of a symbol (open, cancelled, filled), oldest first",
        ALL_ORDERS_PARAMS,
        convert.ORDERS_SCHEMA,
        f"Next page: pass header {NEXT_ORDER_ID_HEADER} (absent on the last page) as orderId. " + _AS_OF_NOTE,
    )
