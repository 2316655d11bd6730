"""The soak's user-stream audit, order bookkeeping and memory trend: pure parts, checked by hand."""

from __future__ import annotations

from decimal import Decimal

from soak.__main__ import done_orders, order_recovery
from soak.faults import CLOCK_STEP_MS, ScheduleConfig, SoakFault, build_schedule
from soak.orders import Placed, SentOrder, rpc_result
from soak.report import InjectedFault, RssSample, rss_trend
from soak.user_audit import DoneOrder, Trusted, UserView, balance_mismatches, checked, missed, stream_recovery


def status(state: str) -> dict[str, object]:
    return {"type": "status", "state": state, "detail": "", "E": 0}


def report(execution: str, own_id: str, cancel_id: str = "") -> dict[str, object]:
    if execution == "CANCELED":
        return {"type": "executionReport", "x": execution, "c": cancel_id or "cancel-1", "C": own_id}
    return {"type": "executionReport", "x": execution, "c": own_id, "C": ""}


def order(cid: str, sent: float, settled: float) -> DoneOrder:
    return DoneOrder(cid, sent, settled, frozenset({"NEW", "CANCELED"}))


def test_trust_starts_on_connected_or_reconciled_and_ends_on_a_notice() -> None:
    view = UserView()
    view.on(status("disconnected"), 1.0)  # not trusting yet: nothing to end
    view.on(status("connected"), 2.0)
    view.on(status("reconciled"), 3.0)  # already trusting: the stretch goes on from 2.0
    view.on(status("lagged"), 10.0)
    view.on(status("reconciled"), 12.0)
    assert view.stretches == [Trusted(2.0, 10.0), Trusted(12.0, None)]
    assert view.notices == 2 and view.trusting


def test_a_cancel_report_counts_for_the_order_not_for_the_cancel_id() -> None:
    view = UserView()
    view.on(report("NEW", "a1"), 1.0)
    view.on(report("CANCELED", "a1", cancel_id="web_x"), 2.0)
    assert view.seen == {"a1": {"NEW", "CANCELED"}}


def test_an_order_inside_a_trusting_stretch_must_be_seen_whole() -> None:
    view = UserView()
    view.on(status("reconciled"), 0.0)
    view.on(report("NEW", "a1"), 1.1)  # its cancel never arrives
    view.on(report("NEW", "a2"), 2.1)
    view.on(report("CANCELED", "a2"), 2.2)
    orders = [order("a1", 1.0, 1.5), order("a2", 2.0, 2.5)]
    assert missed(view, orders, grace_s=5) == [("a1", "CANCELED")]
    assert checked(view, orders, grace_s=5) == 2


def test_an_order_across_a_notice_is_not_the_clients_to_see() -> None:
    view = UserView()
    view.on(status("connected"), 0.0)
    view.on(status("disconnected"), 4.0)  # within the grace after a1's cancel, before a2 was sent
    view.on(status("reconciled"), 6.0)
    # a1 settled at 1.5 but its grace runs to 6.5, past the notice; a0 was sent before trust began.
    orders = [order("a0", -1.0, 0.5), order("a1", 1.0, 1.5), order("a2", 7.0, 7.5)]
    assert missed(view, orders, grace_s=5) == [("a2", "CANCELED"), ("a2", "NEW")]
    assert checked(view, orders, grace_s=5) == 1


def test_balances_are_those_of_the_current_stretch_only() -> None:
    view = UserView()
    position = {"type": "outboundAccountPosition", "B": [{"a": "USDT", "f": "90.5", "l": "9.5"}]}
    view.on(position, 0.5)  # not trusting: ignored
    assert view.balances == {}
    view.on(status("reconciled"), 1.0)
    view.on(position, 2.0)
    assert view.balances == {"USDT": (Decimal("90.5"), Decimal("9.5"))}
    view.doubt(3.0)
    assert view.balances == {} and not view.trusting


def test_balance_mismatches_name_the_asset_and_both_values() -> None:
    venue = {"USDT": (Decimal("100"), Decimal("0")), "BTC": (Decimal("1"), Decimal("0"))}
    assert balance_mismatches("x", {"USDT": (Decimal("100.00"), Decimal("0"))}, venue) == []
    (off,) = balance_mismatches("client 3", {"BTC": (Decimal("1"), Decimal("0.1"))}, venue)
    assert "client 3" in off and "BTC" in off and "0.1" in off
    assert balance_mismatches("x", {"ETH": (Decimal("1"), Decimal("0"))}, venue)  # the venue has none


def test_stream_recovery_is_the_first_return_to_trust_after_the_fault() -> None:
    a, b, c = UserView(), UserView(), UserView()
    a.stretches = [Trusted(0.0, 10.2), Trusted(11.5, None)]
    b.stretches = [Trusted(0.0, 10.1), Trusted(10.9, None)]
    c.stretches = [Trusted(0.0, None)]  # never noticed
    took = stream_recovery([a, b, c], fault_at=10.0, limit_s=60)
    assert took is not None and abs(took - 0.9) < 1e-9
    assert stream_recovery([c], fault_at=10.0, limit_s=60) is None
    never_back = UserView(stretches=[Trusted(0.0, 10.5)])
    assert stream_recovery([never_back], fault_at=10.0, limit_s=60) is None


def test_done_orders_are_those_cancelled_on_the_venue_and_confirmed_by_us() -> None:
    sent = [
        SentOrder("p0", "BTCUSDT", "http", 1.0, Placed.CONFIRMED, 1.1, 1.2),
        SentOrder("p1", "BTCUSDT", "mcp", 2.0, Placed.UNCERTAIN, None, None),  # cancel never confirmed
        SentOrder("p2", "BTCUSDT", "grpc", 3.0, Placed.CONFIRMED, 3.1, 3.2),
    ]
    venue = [
        {"clientOrderId": "p0", "status": "CANCELED"},
        {"clientOrderId": "p1", "status": "CANCELED"},
        {"clientOrderId": "p2", "status": "NEW"},  # the venue disagrees: left to the open-order audit
    ]
    assert [o.client_order_id for o in done_orders(sent, venue)] == ["p0"]


def test_order_recovery_is_the_next_order_confirmed_after_the_fault() -> None:
    sent = [
        SentOrder("p0", "BTCUSDT", "http", 9.0, Placed.CONFIRMED, 9.1),
        SentOrder("p1", "BTCUSDT", "mcp", 10.5, Placed.REFUSED),  # e.g. -1021 while the clock is off
        SentOrder("p2", "BTCUSDT", "grpc", 11.0, Placed.CONFIRMED, 11.4),
    ]
    fault = InjectedFault(10.0, SoakFault.CLOCK_SHIFT, "BTCUSDT")
    took = order_recovery(fault, sent)
    assert took is not None and abs(took - 1.4) < 1e-9
    assert order_recovery(InjectedFault(12.0, SoakFault.CLOCK_SHIFT, "BTCUSDT"), sent) is None


def test_clock_shifts_only_move_the_venue_clock_forward_step_by_step() -> None:
    schedule = build_schedule(3, ScheduleConfig.for_duration(600, stall_s=3), ["BTCUSDT"])
    offsets = [f.calls[0].body["offset_ms"] for f in schedule if f.kind is SoakFault.CLOCK_SHIFT]
    assert offsets == [CLOCK_STEP_MS * (i + 1) for i in range(len(offsets))] and offsets


def test_rpc_result_reads_plain_json_and_event_streams() -> None:
    body = b'{"jsonrpc":"2.0","id":2,"result":{"isError":false}}'
    assert rpc_result("application/json", body) == {"isError": False}
    stream = b"event: message\r\ndata: " + body + b"\r\n\r\n"
    assert rpc_result("text/event-stream", stream) == {"isError": False}
    assert rpc_result("application/json", b'{"jsonrpc":"2.0","id":2,"error":{"code":-32602}}') is None
    assert rpc_result("application/json", b"not json") is None


def test_rss_trend_fits_the_second_half_of_the_last_process() -> None:
    # pid 1 grows fast, then is replaced by pid 2 that grows 60 kB per 60 s = 60 kB/min.
    samples = [RssSample(t, 1, int(1000 + 100 * t)) for t in (0.0, 10.0, 20.0)]
    samples += [RssSample(t, 2, 500 + int(t)) for t in (30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)]
    trend = rss_trend(samples)
    assert trend is not None
    assert (trend.start_kb, trend.peak_kb, trend.end_kb) == (1000, 3000, 600)
    assert trend.slope_kb_per_min is not None and abs(trend.slope_kb_per_min - 60) < 1e-6
    short = rss_trend(samples[:3])
    assert short is not None and short.slope_kb_per_min is None  # 20 s is too short to fit a trend
    assert rss_trend([]) is None
