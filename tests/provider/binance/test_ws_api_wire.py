"""WS API frames: signed requests as the simulator verifies them, events parsed per type."""

from __future__ import annotations

import orjson
import pytest

from exchange_sim.wire.auth import KeyRegistry, Security, verify_ws
from provider.account.model import AccountPositionEvent, BalanceDeltaEvent, ExecutionReport, ExecutionType
from provider.binance import ws_api_wire as w
from provider.binance.signing import HmacSigner
from provider.binance.wire import WireFormatError
from provider.trading.model import OrderStatus, SelfTradePreventionMode

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"

REPORT = {
    "e": "executionReport", "E": 2, "s": "BTCUSDT", "c": "cancel1", "S": "BUY", "o": "LIMIT", "f": "GTC",
    "q": "1.00000000", "p": "100.00", "P": "0.00", "F": "0.00", "g": -1, "C": "orig1", "x": "CANCELED",
    "X": "CANCELED", "r": "NONE", "i": 7, "l": "0.00", "z": "0.00", "L": "0.00", "n": "0", "N": None,
    "T": 3, "t": -1, "I": 9, "w": False, "m": False, "M": False, "O": 1, "Z": "0.00", "Y": "0.00",
    "Q": "0.00", "V": "EXPIRE_MAKER", "eR": "NONE", "zz": "unknown keys are ignored",
}  # fmt: skip


def test_subscribe_signature_request_is_signed_per_ws_rule() -> None:
    frame = orjson.loads(w.subscribe_signature_request(5, HmacSigner(KEY, SECRET), timestamp_ms=1747385641636))
    assert frame["id"] == 5 and frame["method"] == "userDataStream.subscribe.signature"
    assert set(frame["params"]) == {"apiKey", "timestamp", "signature"}
    registry = KeyRegistry()
    registry.add_hmac(KEY, SECRET, account_id=1)
    auth = verify_ws(registry, frame["params"], now_ms=1747385641636, security=Security.USER_STREAM)
    assert auth.account_id == 1


def test_execution_report_and_other_events() -> None:
    frame = w.parse_frame(orjson.dumps({"subscriptionId": 0, "event": REPORT}))
    assert isinstance(frame, w.WsEventFrame) and frame.subscription_id == 0
    event = frame.event
    assert isinstance(event, ExecutionReport)
    assert event.execution_type is ExecutionType.CANCELED and event.order.status is OrderStatus.CANCELED
    assert event.original_client_order_id == "orig1" and event.commission_asset == ""
    assert event.order.stp_mode is SelfTradePreventionMode.EXPIRE_MAKER and event.trade_id == -1
    odd = w.parse_event({**REPORT, "x": "SOMETHING_NEW", "X": "WHO_KNOWS", "S": "SHORT"})
    assert isinstance(odd, ExecutionReport) and odd.execution_type is ExecutionType.UNKNOWN
    assert odd.order.status is OrderStatus.UNKNOWN and odd.order.side is None
    pos = w.parse_event({"e": "outboundAccountPosition", "E": 5, "u": 4, "B": [{"a": "BTC", "f": "1.0", "l": "0.5"}]})
    assert isinstance(pos, AccountPositionEvent) and pos.balances[0].locked == "0.5"
    delta = w.parse_event({"e": "balanceUpdate", "E": 5, "a": "BTC", "d": "-1.5", "T": 4})
    assert delta == BalanceDeltaEvent("BTC", "-1.5", 4, 5)
    assert w.parse_event({"e": "eventStreamTerminated", "E": 8}) == w.EventStreamTerminated(8)
    assert w.parse_event({"e": "serverShutdown", "E": 8}) == w.ServerShutdown(8)
    assert w.parse_event({"e": "listStatus", "E": 8}) == w.OtherEvent("listStatus", 8)


def test_responses_and_bad_frames() -> None:
    ok = w.parse_frame(b'{"id":3,"status":200,"result":{"subscriptionId":0}}')
    assert isinstance(ok, w.WsResponse) and ok.ok and ok.result == {"subscriptionId": 0}
    err = w.parse_frame(b'{"id":null,"status":401,"error":{"code":-2015,"msg":"Invalid API-key"}}')
    assert isinstance(err, w.WsResponse) and not err.ok and err.error_code == -2015
    with pytest.raises(WireFormatError):
        w.parse_frame(b"not json")
    with pytest.raises(WireFormatError, match="executionReport"):
        w.parse_event({**REPORT, "p": 100.0})
