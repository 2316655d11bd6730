"""Trading, account, user-stream and analytics payloads: Binance's keys, exact decimals, valid per their schemas."""

from __future__ import annotations

import math

import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import orjson
import pytest
from binance.provider.v1 import account_pb2 as a
from binance.provider.v1 import analytics_pb2 as an
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as t

from gateway_http import convert
from gateway_http.convert import OrderResponseType
from gateway_http.streams import StreamChannel, StreamKey, Subscriber, UserFanOut
from gateway_http.trading_routes import PLACE_FIELDS, http_field

ORDER = t.Order(
    symbol="BTCUSDT",
    order_id=7,
    client_order_id="bot-1",
    side=c.SIDE_BUY,
    type=c.ORDER_TYPE_LIMIT,
    time_in_force=c.TIME_IN_FORCE_GTC,
    status=c.ORDER_STATUS_NEW,
    price="45000.10",
    original_quantity="0.00100000",
    executed_quantity="0",
    cumulative_quote_quantity="0",
    time_ms=1000,
    update_time_ms=1001,
    working_time_ms=1001,
    is_working=True,
    self_trade_prevention_mode=c.SELF_TRADE_PREVENTION_MODE_EXPIRE_MAKER,
)


def test_order_object_has_binance_keys_and_exact_decimals() -> None:
    body = convert.order(ORDER)
    jsonschema.validate(body, convert.ORDER_SCHEMA)
    assert body["price"] == "45000.10" and body["origQty"] == "0.00100000"
    assert body["cummulativeQuoteQty"] == "0" and body["stopPrice"] == "0"
    assert (body["side"], body["type"], body["timeInForce"], body["status"]) == ("BUY", "LIMIT", "GTC", "NEW")
    assert body["orderListId"] == -1 and body["selfTradePreventionMode"] == "EXPIRE_MAKER"
    assert "expiryReason" not in body


@pytest.mark.parametrize(
    ("detail", "keys"),
    [
        (OrderResponseType.ACK, {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime", "reconciled"}),
        (OrderResponseType.RESULT, {"status", "executedQty", "workingTime"}),
        (OrderResponseType.FULL, {"status", "fills"}),
    ],
)
def test_placed_order_detail_follows_new_order_resp_type(detail: OrderResponseType, keys: set[str]) -> None:
    fill = t.Fill(price="45000.10", quantity="0.001", commission="0.000001", commission_asset="BTC", trade_id=3)
    body = convert.placed_order(t.PlaceOrderResponse(order=ORDER, fills=[fill]), detail)
    jsonschema.validate(body, convert.PLACED_ORDER_SCHEMA)
    assert keys <= set(body)
    assert ("fills" in body) is (detail is OrderResponseType.FULL)
    assert ("status" in body) is (detail is not OrderResponseType.ACK)


def test_an_unknown_outcome_always_shows_its_status_even_for_ack() -> None:
    unknown = t.Order(symbol="BTCUSDT", client_order_id="bot-2", status=c.ORDER_STATUS_UNKNOWN, side=c.SIDE_SELL)
    body = convert.placed_order(t.PlaceOrderResponse(order=unknown, reconciled=True), OrderResponseType.ACK)
    jsonschema.validate(body, convert.PLACED_ORDER_SCHEMA)
    assert body["status"] == "UNKNOWN" and body["orderId"] == 0 and body["clientOrderId"] == "bot-2"
    assert body["reconciled"] is True


def test_default_response_type_is_binances() -> None:
    assert convert.default_response_type("MARKET") is OrderResponseType.FULL
    assert convert.default_response_type("LIMIT") is OrderResponseType.FULL
    assert convert.default_response_type("STOP_LOSS") is OrderResponseType.ACK


def test_cancel_names_both_ids() -> None:
    body = convert.canceled_order(ORDER, "cancel-1")
    jsonschema.validate(body, convert.CANCELED_ORDER_SCHEMA)
    assert body["origClientOrderId"] == "bot-1" and body["clientOrderId"] == "cancel-1"


def test_account_omits_zero_balances_by_decimal_comparison() -> None:
    answer = a.GetAccountResponse(
        commission_rates=t.CommissionRates(maker="0.001", taker="0.001"),
        can_trade=True,
        account_type="SPOT",
        balances=[
            a.Balance(asset="BTC", free="0.00000000", locked="0.00000000"),
            a.Balance(asset="USDT", free="0.00000001", locked="0"),
        ],
        as_of_ms=5,
        source=c.DATA_SOURCE_EXCHANGE_REST,
    )
    body = convert.account(answer, omit_zero_balances=True)
    jsonschema.validate(body, convert.ACCOUNT_SCHEMA)
    assert body["balances"] == [{"asset": "USDT", "free": "0.00000001", "locked": "0"}]
    assert body["asOf"] == 5 and body["source"] == "EXCHANGE_REST"
    assert len(convert.account(answer, omit_zero_balances=False)["balances"]) == 2  # type: ignore[arg-type]


def test_execution_report_keys() -> None:
    update = a.OrderUpdate(
        order=ORDER,
        execution_type=c.EXECUTION_TYPE_TRADE,
        last_executed_quantity="0.0005",
        last_executed_price="45000.10",
        trade_id=9,
        event_time_ms=2000,
        transaction_time_ms=1999,
    )
    frame = convert.ws_user_event(a.StreamUserDataResponse(order_update=update))
    assert frame is not None
    assert frame["type"] == frame["e"] == "executionReport"
    assert (frame["x"], frame["X"], frame["c"], frame["C"]) == ("TRADE", "NEW", "bot-1", "")
    assert (frame["l"], frame["L"], frame["t"], frame["N"], frame["r"]) == ("0.0005", "45000.10", 9, None, "NONE")


def test_status_and_balance_frames() -> None:
    status = a.StreamUserDataResponse(
        status=a.UserStreamStatus(state=a.USER_STREAM_STATE_RECONCILED, detail="back", time_ms=3)
    )
    assert convert.ws_user_event(status) == {"type": "status", "state": "reconciled", "detail": "back", "E": 3}
    position = a.StreamUserDataResponse(
        account_position=a.AccountPosition(balances=[a.Balance(asset="BTC", free="1", locked="0")], event_time_ms=4)
    )
    frame = convert.ws_user_event(position)
    assert frame is not None and frame["B"] == [{"a": "BTC", "f": "1", "l": "0"}]
    assert convert.ws_user_event(a.StreamUserDataResponse()) is None


async def test_user_fanout_replays_status_and_tells_a_slow_client_it_lagged() -> None:
    fan = UserFanOut(StreamKey(StreamChannel.USER, ""))
    fast, slow = Subscriber(fan.key, capacity=8), Subscriber(fan.key, capacity=2)
    fan.join(fast)
    fan.join(slow)
    fan.on_message(a.StreamUserDataResponse(status=a.UserStreamStatus(state=a.USER_STREAM_STATE_CONNECTED)))
    for i in range(3):
        fan.on_message(a.StreamUserDataResponse(order_update=a.OrderUpdate(order=ORDER, event_time_ms=i)))
    assert len(fast.queued()) == 4
    # What it had queued is dropped for one lagged notice; later events follow it.
    assert [orjson.loads(f)["type"] for f in slow.queued()] == ["status", "executionReport"]
    assert orjson.loads(slow.queued()[0])["state"] == "lagged" and fan.lagged == 1
    late = Subscriber(fan.key)
    fan.join(late)
    assert [orjson.loads(f)["state"] for f in late.queued()] == ["connected"]
    fan.on_lost("provider stream failed")
    assert orjson.loads(late.queued()[-1])["state"] == "disconnected"


def test_provider_field_names_come_back_in_binances() -> None:
    assert http_field("time_in_force", PLACE_FIELDS) == "timeInForce"
    assert http_field("order.quote_order_quantity", PLACE_FIELDS) == "quoteOrderQty"
    assert http_field("price", PLACE_FIELDS) == "price"
    assert http_field(None, PLACE_FIELDS) is None


def test_analytics_payloads_turn_non_finite_numbers_into_null() -> None:
    meta = an.AnalysisMeta(
        symbol="BTCUSDT",
        thresholds=[an.Threshold(name="min_trades", value=10)],
        flags=[an.DATA_QUALITY_FLAG_NO_TRADES],
        gaps=[c.TimeWindow(start_ms=1, end_ms=2)],
    )
    flow = an.GetOrderFlowResponse(meta=meta, buy_sell_ratio=math.inf, direction=an.FLOW_DIRECTION_STRONG_BUY)
    body = convert.order_flow(flow)
    jsonschema.validate(orjson.loads(orjson.dumps(body)), convert.ORDER_FLOW_SCHEMA)
    assert body["buySellRatio"] is None and body["direction"] == "STRONG_BUY"
    assert body["meta"]["flags"] == ["NO_TRADES"]  # type: ignore[index]
    assert body["meta"]["thresholds"] == {"min_trades": 10.0}  # type: ignore[index]
    snaps = convert.snapshots(
        "BTCUSDT",
        [
            an.GetSnapshotsResponse(
                snapshots=[
                    an.BookSnapshot(time_ms=1000, last_update_id=5, bids=[c.PriceLevel(price="1.0", quantity="2")])
                ]
            ),
            an.GetSnapshotsResponse(gaps=[c.TimeWindow(start_ms=2000, end_ms=3000)]),
        ],
    )
    jsonschema.validate(snaps, convert.SNAPSHOTS_SCHEMA)
    assert snaps["snapshots"] == [{"time": 1000, "lastUpdateId": 5, "bids": [["1.0", "2"]], "asks": []}]
    assert snaps["gaps"] == [{"startMs": 2000, "endMs": 3000}]
