"""Account value types → account.proto / trading.proto messages.

An order inside an update is converted by `trading_convert.order_to_pb`, which holds the order
enum tables; the tables here are the account's own. Unknown values map to ``*_UNSPECIFIED`` (0).
"""

from __future__ import annotations

from typing import Final

from binance.provider.v1 import account_pb2 as a
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as t

from provider.account.model import (
    AccountInfo,
    AccountPositionEvent,
    Balance,
    BalanceDeltaEvent,
    ExecutionReport,
    ExecutionType,
    MyTrade,
    StreamState,
    StreamStatus,
    UserEvent,
)
from provider.service.trading_convert import order_to_pb

EXECUTION_TYPES: Final = {
    ExecutionType.NEW: c.EXECUTION_TYPE_NEW,
    ExecutionType.CANCELED: c.EXECUTION_TYPE_CANCELED,
    ExecutionType.REPLACED: c.EXECUTION_TYPE_REPLACED,
    ExecutionType.REJECTED: c.EXECUTION_TYPE_REJECTED,
    ExecutionType.TRADE: c.EXECUTION_TYPE_TRADE,
    ExecutionType.EXPIRED: c.EXECUTION_TYPE_EXPIRED,
    ExecutionType.TRADE_PREVENTION: c.EXECUTION_TYPE_TRADE_PREVENTION,
}
STREAM_STATES: Final = {
    StreamState.CONNECTED: a.USER_STREAM_STATE_CONNECTED,
    StreamState.DISCONNECTED: a.USER_STREAM_STATE_DISCONNECTED,
    StreamState.RECONCILED: a.USER_STREAM_STATE_RECONCILED,
    StreamState.LAGGED: a.USER_STREAM_STATE_LAGGED,
}


def balance_pb(balance: Balance) -> a.Balance:
    return a.Balance(asset=balance.asset, free=balance.free, locked=balance.locked)


def order_update_pb(report: ExecutionReport) -> a.OrderUpdate:
    return a.OrderUpdate(
        order=order_to_pb(report.order),
        execution_type=EXECUTION_TYPES.get(report.execution_type, c.EXECUTION_TYPE_UNSPECIFIED),
        reject_reason=report.reject_reason,
        last_executed_quantity=report.last_executed_quantity,
        last_executed_price=report.last_executed_price,
        last_quote_quantity=report.last_quote_quantity,
        commission=report.commission,
        commission_asset=report.commission_asset,
        trade_id=report.trade_id,
        is_maker=report.is_maker,
        event_time_ms=report.event_time_ms,
        transaction_time_ms=report.transaction_time_ms,
        original_client_order_id=report.original_client_order_id,
    )


def user_event_pb(event: UserEvent) -> a.StreamUserDataResponse:
    if isinstance(event, ExecutionReport):
        return a.StreamUserDataResponse(order_update=order_update_pb(event))
    if isinstance(event, AccountPositionEvent):
        position = a.AccountPosition(
            balances=[balance_pb(b) for b in event.balances],
            last_update_time_ms=event.last_update_time_ms,
            event_time_ms=event.event_time_ms,
        )
        return a.StreamUserDataResponse(account_position=position)
    if isinstance(event, BalanceDeltaEvent):
        delta = a.BalanceDelta(
            asset=event.asset, delta=event.delta, clear_time_ms=event.clear_time_ms, event_time_ms=event.event_time_ms
        )
        return a.StreamUserDataResponse(balance_delta=delta)
    return a.StreamUserDataResponse(status=status_pb(event))


def status_pb(status: StreamStatus) -> a.UserStreamStatus:
    return a.UserStreamStatus(state=STREAM_STATES[status.state], detail=status.detail, time_ms=status.time_ms)


def account_pb(info: AccountInfo, *, as_of_ms: int) -> a.GetAccountResponse:
    # CommissionRates (trading.proto) carries maker/taker only; buyer/seller are not exposed.
    rates = t.CommissionRates(maker=info.maker_commission, taker=info.taker_commission)
    return a.GetAccountResponse(
        commission_rates=rates,
        can_trade=info.can_trade,
        can_withdraw=info.can_withdraw,
        can_deposit=info.can_deposit,
        account_type=info.account_type,
        balances=[balance_pb(b) for b in info.balances],
        update_time_ms=info.update_time_ms,
        as_of_ms=as_of_ms,
        source=c.DATA_SOURCE_EXCHANGE_REST,
    )


def my_trade_pb(trade: MyTrade) -> a.MyTrade:
    return a.MyTrade(
        symbol=trade.symbol,
        id=trade.id,
        order_id=trade.order_id,
        price=trade.price,
        quantity=trade.quantity,
        quote_quantity=trade.quote_quantity,
        commission=trade.commission,
        commission_asset=trade.commission_asset,
        time_ms=trade.time_ms,
        is_buyer=trade.is_buyer,
        is_maker=trade.is_maker,
    )
