"""The account over REST and WebSocket, answered by the provider's Account service (scope `account`).

    GET /api/v1/account  GET /api/v1/account/balance  GET /api/v1/myTrades  GET /ws/user

Every answer says when it was current: `asOf` in objects, the X-As-Of-Ms header on arrays (kept
as Binance's plain arrays so existing parsers work). /ws/user shares one provider StreamUserData
among all its clients (gateway_http.streams, channel "user").
"""

from __future__ import annotations

import time

import grpc
import orjson
from aiohttp import web
from binance.provider.v1 import account_pb2 as acc
from binance.provider.v1 import account_pb2_grpc as acc_grpc

from gateway_auth.tokens import Scope
from gateway_http import convert
from gateway_http.openapi import PARAMS, Api, Param
from gateway_http.provider_stub import ProviderStub
from gateway_http.streams import CLIENT_QUEUE_FRAMES, StreamChannel, StreamKey, serve_stream
from gateway_http.trading_routes import (
    AS_OF_HEADER,
    BINANCE_COMPAT,
    QUERY_FIELDS,
    SOURCE_HEADER,
    SYMBOL_PATTERN,
    provider_call,
)

CALL_TIMEOUT_S = 10.0
TAGS = ("account",)
NEXT_FROM_ID_HEADER = "X-Next-From-Id"
USER_STREAM = StreamKey(StreamChannel.USER, "")
_TRADE_FIELDS = {**QUERY_FIELDS, "from_id": "fromId"}

ChannelKey = web.AppKey[grpc.aio.Channel]


def _json(body: object, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)


class AccountRoutes:
    def __init__(self, channel_key: ChannelKey) -> None:
        self._stub: ProviderStub[acc_grpc.AccountAsyncStub] = ProviderStub(channel_key, acc_grpc.AccountStub)

    async def account(self, request: web.Request) -> web.Response:
        omit_zero = request[PARAMS].get("omitZeroBalances", bool)
        answer = await provider_call(
            self._stub(request).GetAccount(acc.GetAccountRequest(), timeout=CALL_TIMEOUT_S), QUERY_FIELDS
        )
        return _json(convert.account(answer, omit_zero_balances=omit_zero))

    async def balances(self, request: web.Request) -> web.Response:
        non_zero = request[PARAMS].get("omitZeroBalances", bool)
        call = self._stub(request).GetBalances(acc.GetBalancesRequest(non_zero_only=non_zero), timeout=CALL_TIMEOUT_S)
        return _json(convert.balances(await provider_call(call, QUERY_FIELDS)))

    async def my_trades(self, request: web.Request) -> web.Response:
        params = request[PARAMS]
        call = self._stub(request).GetMyTrades(
            acc.GetMyTradesRequest(
                symbol=params.get("symbol", str),
                order_id=params.optional("orderId", int) or 0,
                from_id=params.optional("fromId", int) or 0,
                start_time_ms=params.optional("startTime", int) or 0,
                end_time_ms=params.optional("endTime", int) or 0,
                limit=params.get("limit", int),
            ),
            timeout=CALL_TIMEOUT_S,
        )
        answer = await provider_call(call, _TRADE_FIELDS)
        # The provider read the exchange for this call: the list is current as of now.
        headers = {AS_OF_HEADER: str(int(time.time() * 1000)), SOURCE_HEADER: "EXCHANGE_REST"}
        if answer.next_from_id:
            headers[NEXT_FROM_ID_HEADER] = str(answer.next_from_id)
        return _json([convert.my_trade(m) for m in answer.trades], headers)


async def user_stream(request: web.Request) -> web.StreamResponse:
    return await serve_stream(request, USER_STREAM)


def add_account_routes(api: Api, channel_key: ChannelKey) -> None:
    routes = AccountRoutes(channel_key)
    api.route(
        "GET",
        "/api/v1/account",
        routes.account,
        scope=Scope.ACCOUNT,
        summary="Account: commission rates, permissions and balances",
        params=[
            Param("omitZeroBalances", bool, default=False, description="leave out assets with free = locked = 0"),
            *BINANCE_COMPAT,
        ],
        response=convert.ACCOUNT_SCHEMA,
        description="Binance's field names; asOf says when it was current, source where it came from. "
        "409 ERROR_REASON_NO_CREDENTIALS when the provider has no API credentials.",
        tags=TAGS,
    )
    api.route(
        "GET",
        "/api/v1/account/balance",
        routes.balances,
        scope=Scope.ACCOUNT,
        summary="Balances (non-zero by default), from the user data stream when it is live",
        params=[
            Param("omitZeroBalances", bool, default=True, description="false: every asset, zero ones too"),
            *BINANCE_COMPAT,
        ],
        response=convert.BALANCES_SCHEMA,
        description="source LOCAL_STREAM while the user data stream is live and reconciled, else EXCHANGE_REST.",
        tags=TAGS,
    )
    api.route(
        "GET",
        "/api/v1/myTrades",
        routes.my_trades,
        scope=Scope.ACCOUNT,
        summary="The account's trades on a symbol, oldest first",
        params=[
            Param("symbol", str, required=True, pattern=SYMBOL_PATTERN, description="e.g. BTCUSDT"),
            Param("orderId", int, minimum=1, description="only this order's trades"),
            Param("fromId", int, minimum=1, description="trades with id >= this; not with startTime/endTime"),
            Param("startTime", int, minimum=1, description="ms since the epoch"),
            Param("endTime", int, minimum=1, description="ms since the epoch; at most 24 h after startTime"),
            Param("limit", int, minimum=1, maximum=1000, default=500),
            *BINANCE_COMPAT,
        ],
        response=convert.MY_TRADES_SCHEMA,
        description=f"Next page: pass header {NEXT_FROM_ID_HEADER} (absent on the last page) as fromId. "
        f"Header {AS_OF_HEADER}: when the list was current (ms).",
        tags=TAGS,
    )
    api.route(
        "GET",
        "/ws/user",
        user_stream,
        scope=Scope.ACCOUNT,
        summary="The account's order and balance updates (WebSocket)",
        description=(
            'Frames, each with a "type": "executionReport" (Binance\'s executionReport keys: x execution type, '
            "X order status, c client order id, C the cancelled order's own id on cancels, ...), "
            '"outboundAccountPosition" (B: absolute balances of the assets that changed), "balanceUpdate", and '
            '{"type":"status","state","detail","E"}. state "connected": events flow; "disconnected": events may '
            'be missing; "reconciled": back, and the provider re-read open orders and balances; "lagged": events '
            "were dropped. After anything but connected, re-read GET /api/v1/openOrders and "
            "/api/v1/account/balance. A new client first gets the latest status. A client whose queue of "
            f"{CLIENT_QUEUE_FRAMES} frames (by default) overflows loses it and gets a lagged status. Close codes: "
            "1000 gateway shutdown; 1008 no pong or other frame for 60 s; 1011 the provider stream failed and "
            "reconnecting gave up. Authenticate with "
            "`Authorization: Bearer <token>` or the subprotocols `bearer, <token>`."
        ),
        tags=("account streams",),
        websocket=True,
    )
