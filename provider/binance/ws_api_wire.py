"""Binance WebSocket API on the wire (reference §9): request frames, responses, user data events.

Pure code. Requests are ``{"id", "method", "params"}`` text frames; signed params follow the WS
API rule (`signing.sign_ws_params`). Incoming frames are either a response (has ``id``/``status``)
or a wrapped user data event ``{"subscriptionId", "event"}``. Event parsers read the keys per
event type (the same letter means different things in different events).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeAlias

import orjson

from provider.account.model import (
    AccountPositionEvent,
    Balance,
    BalanceDeltaEvent,
    ExecutionReport,
    ExecutionType,
)
from provider.binance.signing import ParamValue, Signer, sign_ws_params
from provider.binance.wire import WireFormatError, _bool, _dec, _each, _enum, _get, _int, _member, _obj, _opt_enum, _str
from provider.trading import model as tm

__all__ = [
    "EventStreamTerminated",
    "OtherEvent",
    "ServerShutdown",
    "WsEvent",
    "WsEventFrame",
    "WsMethod",
    "WsResponse",
    "logon_request",
    "parse_event",
    "parse_frame",
    "request_frame",
    "subscribe_request",
    "subscribe_signature_request",
]


class WsMethod(StrEnum):
    PING = "ping"
    SESSION_LOGON = "session.logon"
    SUBSCRIBE = "userDataStream.subscribe"
    SUBSCRIBE_SIGNATURE = "userDataStream.subscribe.signature"
    UNSUBSCRIBE = "userDataStream.unsubscribe"


def request_frame(req_id: int, method: WsMethod, params: Mapping[str, ParamValue] | None = None) -> bytes:
    body: dict[str, Any] = {"id": req_id, "method": method.value}
    if params:
        body["params"] = dict(params)
    return orjson.dumps(body)


def subscribe_signature_request(
    req_id: int, signer: Signer, *, timestamp_ms: int, recv_window_ms: int | None = None
) -> bytes:
    """``userDataStream.subscribe.signature``: any key type, no logon (signs apiKey+timestamp)."""
    params = sign_ws_params(signer, {}, timestamp_ms=timestamp_ms, recv_window_ms=recv_window_ms)
    return request_frame(req_id, WsMethod.SUBSCRIBE_SIGNATURE, params)


def logon_request(req_id: int, signer: Signer, *, timestamp_ms: int, recv_window_ms: int | None = None) -> bytes:
    """``session.logon`` (Ed25519 keys only)."""
    params = sign_ws_params(signer, {}, timestamp_ms=timestamp_ms, recv_window_ms=recv_window_ms)
    return request_frame(req_id, WsMethod.SESSION_LOGON, params)


def subscribe_request(req_id: int) -> bytes:
    """``userDataStream.subscribe`` on a logged-on session."""
    return request_frame(req_id, WsMethod.SUBSCRIBE)


# ----------------------------------------------------------------------- incoming


@dataclass(frozen=True, slots=True)
class WsResponse:
    id: object
    status: int
    result: object
    error_code: int | None = None
    error_msg: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(frozen=True, slots=True)
class EventStreamTerminated:
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class ServerShutdown:
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """An event this build does not act on (``listStatus``, ``externalLockUpdate``, …)."""

    name: str
    event_time_ms: int


WsEvent: TypeAlias = (
    ExecutionReport | AccountPositionEvent | BalanceDeltaEvent | EventStreamTerminated | ServerShutdown | OtherEvent
)


@dataclass(frozen=True, slots=True)
class WsEventFrame:
    subscription_id: int | None
    event: WsEvent


def parse_frame(data: str | bytes) -> WsResponse | WsEventFrame:
    """One text frame; raises `WireFormatError` on anything that is not a documented shape."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireFormatError(f"WS API frame is not JSON: {exc}") from None
    obj = _obj(body, "WS API frame")
    if "event" in obj:
        sub = obj.get("subscriptionId")
        if sub is not None and (isinstance(sub, bool) or not isinstance(sub, int)):
            raise WireFormatError(f"subscriptionId: expected an integer, got {sub!r}")
        return WsEventFrame(sub, parse_event(obj["event"]))
    status = _int(obj, "status")
    error = obj.get("error")
    if status != 200 and isinstance(error, Mapping):
        code = error.get("code")
        msg = error.get("msg")
        return WsResponse(
            obj.get("id"),
            status,
            None,
            code if isinstance(code, int) and not isinstance(code, bool) else None,
            msg if isinstance(msg, str) else "",
        )
    return WsResponse(obj.get("id"), status, obj.get("result"))


def parse_event(value: object) -> WsEvent:
    event = _obj(value, "event")
    name = _str(event, "e")
    time_ms = _int(event, "E")
    try:
        if name == "executionReport":
            return _execution_report(event)
        if name == "outboundAccountPosition":
            balances = _each(_get(event, "B"), "B", _position_balance)
            return AccountPositionEvent(tuple(balances), _int(event, "u"), time_ms)
        if name == "balanceUpdate":
            return BalanceDeltaEvent(_str(event, "a"), _dec(event, "d"), _int(event, "T"), time_ms)
    except WireFormatError as exc:
        raise WireFormatError(f"{name}: {exc}") from None
    if name == "eventStreamTerminated":
        return EventStreamTerminated(time_ms)
    if name == "serverShutdown":
        return ServerShutdown(time_ms)
    return OtherEvent(name, time_ms)


def _position_balance(value: object) -> Balance:
    obj = _obj(value, "balance")
    return Balance(_str(obj, "a"), _dec(obj, "f"), _dec(obj, "l"))


def _opt_dec(obj: Mapping[str, Any], key: str, default: str = "0") -> str:
    return _dec(obj, key) if obj.get(key) is not None else default


def _execution_report(ev: Mapping[str, Any]) -> ExecutionReport:
    working = _bool(ev, "w", False)
    order = tm.Order(
        symbol=_str(ev, "s"),
        order_id=_int(ev, "i"),
        client_order_id=_str(ev, "c"),
        side=_member(tm.Side, _str(ev, "S")),
        type=_member(tm.OrderType, _str(ev, "o")),
        time_in_force=_member(tm.TimeInForce, _str(ev, "f")),
        status=_enum(tm.OrderStatus, _get(ev, "X"), tm.OrderStatus.UNKNOWN),
        price=_dec(ev, "p"),
        stop_price=_opt_dec(ev, "P"),
        orig_qty=_dec(ev, "q"),
        executed_qty=_dec(ev, "z"),
        cumulative_quote_qty=_dec(ev, "Z"),
        orig_quote_order_qty=_opt_dec(ev, "Q"),
        iceberg_qty=_opt_dec(ev, "F"),
        time_ms=_int(ev, "O"),
        update_time_ms=_int(ev, "T"),
        working_time_ms=_int(ev, "W") if ev.get("W") is not None else 0,
        is_working=working,
        stp_mode=_opt_enum(tm.SelfTradePreventionMode, ev, "V"),
        expiry_reason=ev["eR"] if isinstance(ev.get("eR"), str) else "",
    )
    commission_asset = ev.get("N")
    original = ev.get("C")
    reject = ev.get("r")
    return ExecutionReport(
        order=order,
        execution_type=_enum(ExecutionType, _get(ev, "x"), ExecutionType.UNKNOWN),
        reject_reason=reject if isinstance(reject, str) else "",
        last_executed_quantity=_dec(ev, "l"),
        last_executed_price=_dec(ev, "L"),
        last_quote_quantity=_opt_dec(ev, "Y"),
        commission=_opt_dec(ev, "n"),
        commission_asset=commission_asset if isinstance(commission_asset, str) else "",
        trade_id=_int(ev, "t"),
        is_maker=_bool(ev, "m", False),
        event_time_ms=_int(ev, "E"),
        transaction_time_ms=_int(ev, "T"),
        original_client_order_id=original if isinstance(original, str) else "",
    )
