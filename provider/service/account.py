"""The Account gRPC service: account and balances, trade history, and the user data stream.

Balances are served from the kept view while the user data stream is live and reconciled
(source LOCAL_STREAM), otherwise read from REST (EXCHANGE_REST). Every answer says when it
was current. Without credentials every call is refused with NO_CREDENTIALS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from binance.provider.v1 import account_pb2 as a
from binance.provider.v1 import account_pb2_grpc as a_grpc
from binance.provider.v1 import common_pb2 as c

from provider.account.model import AccountPositionEvent, StreamState, StreamStatus
from provider.binance.rest import RestClient
from provider.binance.user_data import UserDataClient, fetch_account, fetch_my_trades
from provider.errors import CredentialsMissing, InvalidArgument
from provider.service import account_convert as conv
from provider.service.errors import Context, translate_stream, translate_unary

__all__ = ["AccountServicer"]

_DEFAULT_TRADES: Final = 500
_MAX_TRADES: Final = 1000
_MAX_SPAN_MS: Final = 24 * 3600 * 1000


class AccountServicer(a_grpc.AccountServicer):
    def __init__(self, rest: RestClient, user_data: UserDataClient | None) -> None:
        self._rest = rest
        self._user_data = user_data

    def _client(self) -> UserDataClient:
        if self._user_data is None or not self._rest.has_credentials:
            raise CredentialsMissing("account calls need API credentials (BINANCE_API_KEY and a secret or key file)")
        return self._user_data

    @translate_unary
    async def GetAccount(self, request: a.GetAccountRequest, context: Context) -> a.GetAccountResponse:
        self._client()
        info = await fetch_account(self._rest)
        return conv.account_pb(info, as_of_ms=self._rest.clock.now_ms())

    @translate_unary
    async def GetBalances(self, request: a.GetBalancesRequest, context: Context) -> a.GetBalancesResponse:
        client = self._client()
        if client.live:
            balances = client.state.balances(non_zero_only=request.non_zero_only)
            return a.GetBalancesResponse(
                balances=[conv.balance_pb(b) for b in balances],
                as_of_ms=client.state.as_of_ms,
                source=c.DATA_SOURCE_LOCAL_STREAM,
            )
        info = await fetch_account(self._rest)
        rest_balances = [b for b in info.balances if not (request.non_zero_only and b.is_zero)]
        return a.GetBalancesResponse(
            balances=[conv.balance_pb(b) for b in rest_balances],
            as_of_ms=self._rest.clock.now_ms(),
            source=c.DATA_SOURCE_EXCHANGE_REST,
        )

    @translate_unary
    async def GetMyTrades(self, request: a.GetMyTradesRequest, context: Context) -> a.GetMyTradesResponse:
        self._client()
        symbol = request.symbol.strip().upper()
        if not symbol:
            raise InvalidArgument("symbol", "symbol is required")
        if not 0 <= request.limit <= _MAX_TRADES:
            raise InvalidArgument(
                "limit", f"limit must be 1 to {_MAX_TRADES} (0 for {_DEFAULT_TRADES}); got {request.limit}"
            )
        for name in ("order_id", "from_id", "start_time_ms", "end_time_ms"):
            if getattr(request, name) < 0:
                raise InvalidArgument(name, f"{name} must not be negative")
        timed = request.start_time_ms or request.end_time_ms
        if request.from_id and timed:
            raise InvalidArgument("from_id", "from_id cannot be combined with start_time_ms/end_time_ms")
        if request.order_id and timed:
            raise InvalidArgument("order_id", "order_id cannot be combined with start_time_ms/end_time_ms")
        if request.start_time_ms and request.end_time_ms:
            span = request.end_time_ms - request.start_time_ms
            if span < 0 or span > _MAX_SPAN_MS:
                raise InvalidArgument("end_time_ms", "end_time_ms must be within 24 h after start_time_ms")
        limit = request.limit or _DEFAULT_TRADES
        trades = await fetch_my_trades(
            self._rest,
            symbol,
            order_id=request.order_id or None,
            from_id=request.from_id or None,
            start_ms=request.start_time_ms or None,
            end_ms=request.end_time_ms or None,
            limit=limit,
        )
        # A full page may have more behind it: continue from the id after the last one.
        next_from_id = trades[-1].id + 1 if len(trades) == limit else 0
        return a.GetMyTradesResponse(trades=[conv.my_trade_pb(t) for t in trades], next_from_id=next_from_id)

    @translate_stream
    async def StreamUserData(
        self, request: a.StreamUserDataRequest, context: Context
    ) -> AsyncIterator[a.StreamUserDataResponse]:
        client = self._client()
        sub = client.subscribe()
        try:
            now = self._rest.clock.now_ms()
            # Start with where the stream stands and, when live, the current balances.
            if client.live:
                yield conv.user_event_pb(StreamStatus(StreamState.CONNECTED, "subscribed and reconciled", now))
                balances = client.state.balances()
                yield conv.user_event_pb(AccountPositionEvent(balances, client.state.as_of_ms, now))
            else:
                yield conv.user_event_pb(StreamStatus(StreamState.DISCONNECTED, "user data stream connecting", now))
            while True:
                yield conv.user_event_pb(await sub.get())
        finally:
            sub.close()
