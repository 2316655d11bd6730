"""The pure fault plan: arming, matching, counting, and the answers Binance gives (§4.3, §4.6)."""

from __future__ import annotations

import time

import orjson
import pytest

from exchange_sim.faults import (
    ORDER_UNKNOWN,
    ErrorBody,
    FaultKind,
    FaultPlan,
    RestFault,
    RestFaultRule,
    SimClock,
    rest_fault_answer,
)

NOW = 1_700_000_000_000


def test_nothing_is_armed_by_default() -> None:
    plan = FaultPlan()
    assert plan.take_rest("/api/v3/depth") is None
    assert plan.take_order_unknown() is False
    assert set(plan.injected.values()) == {0}


def test_rest_rule_answers_count_matching_calls_then_disarms() -> None:
    plan = FaultPlan()
    plan.arm_rest(RestFaultRule(RestFault.TOO_MANY_REQUESTS, 2, "/api/v3/depth"))
    assert plan.take_rest("/api/v3/time") is None  # another path: untouched
    first = plan.take_rest("/api/v3/depth")
    second = plan.take_rest("/api/v3/depth")
    assert first is not None and second is not None
    assert (first.remaining, second.remaining) == (2, 1)
    assert plan.take_rest("/api/v3/depth") is None
    assert plan.injected[FaultKind.REST_429] == 2
    assert plan.armed[FaultKind.REST_429] == 1


def test_rules_apply_oldest_first_and_without_prefix_match_everything() -> None:
    plan = FaultPlan()
    plan.arm_rest(RestFaultRule(RestFault.INTERNAL_ERROR, 1))
    plan.arm_rest(RestFaultRule(RestFault.BANNED, 1))
    taken = [plan.take_rest("/api/v3/ping"), plan.take_rest("/api/v3/klines"), plan.take_rest("/api/v3/ping")]
    assert [r.fault if r else None for r in taken] == [RestFault.INTERNAL_ERROR, RestFault.BANNED, None]


def test_count_must_be_positive() -> None:
    plan = FaultPlan()
    with pytest.raises(ValueError, match="count"):
        plan.arm_rest(RestFaultRule(RestFault.TIMEOUT, 0))
    with pytest.raises(ValueError, match="count"):
        plan.arm_order_unknown(0)


@pytest.mark.parametrize(
    ("fault", "status", "code", "text"),
    [
        (RestFault.TOO_MANY_REQUESTS, 429, -1003, "Too much request weight used; current limit is 6000"),
        (RestFault.BANNED, 418, -1003, f"IP banned until {NOW + 7000}."),
        (RestFault.INTERNAL_ERROR, 500, -1006, "Execution status unknown."),
        (RestFault.SERVICE_UNAVAILABLE, 503, -1008, "Server is currently overloaded"),
    ],
)
def test_json_answers(fault: RestFault, status: int, code: int, text: str) -> None:
    answer = rest_fault_answer(RestFaultRule(fault, 1, retry_after_s=7), NOW)
    assert answer is not None
    assert answer.status == status and answer.content_type == "application/json" and answer.binance_headers
    body = orjson.loads(answer.body)
    assert body["code"] == code and text in body["msg"]
    if status in (418, 429):
        assert answer.headers == {"Retry-After": "7"}  # seconds to wait (§4.2)
    else:
        assert "Retry-After" not in answer.headers


def test_5xx_html_and_empty_bodies_and_the_waf_page() -> None:
    html = rest_fault_answer(RestFaultRule(RestFault.SERVICE_UNAVAILABLE, 1, body=ErrorBody.HTML), NOW)
    empty = rest_fault_answer(RestFaultRule(RestFault.INTERNAL_ERROR, 1, body=ErrorBody.EMPTY), NOW)
    waf = rest_fault_answer(RestFaultRule(RestFault.WAF_BLOCKED, 1), NOW)
    assert html is not None and empty is not None and waf is not None
    assert (html.status, html.content_type, html.binance_headers) == (503, "text/html", False)
    assert b"503 Service Unavailable" in html.body
    assert (empty.status, empty.body) == (500, b"")
    assert (waf.status, waf.content_type) == (403, "text/html")


def test_timeout_has_no_answer() -> None:
    assert rest_fault_answer(RestFaultRule(RestFault.TIMEOUT, 1), NOW) is None


def test_order_unknown_is_taken_count_times() -> None:
    plan = FaultPlan()
    plan.arm_order_unknown(2)
    assert [plan.take_order_unknown() for _ in range(3)] == [True, True, False]
    assert plan.injected[FaultKind.ORDER_UNKNOWN] == 2
    assert (ORDER_UNKNOWN.status, ORDER_UNKNOWN.code) == (503, -1007)
    assert ORDER_UNKNOWN.to_json()["msg"] == (
        "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
    )


def test_clock_shift_and_reset() -> None:
    plan = FaultPlan(SimClock())
    before = int(time.time() * 1000)
    plan.shift_clock(-90_000)
    shifted = plan.clock.now_ms()
    assert before - 90_000 <= shifted <= int(time.time() * 1000) - 90_000
    plan.arm_rest(RestFaultRule(RestFault.TIMEOUT, 3))
    plan.arm_order_unknown(1)
    plan.reset()
    assert plan.clock.offset_ms == 0 and plan.take_rest("/x") is None and not plan.take_order_unknown()
    assert plan.armed[FaultKind.CLOCK_SHIFT] == 1  # counts survive a reset


def test_user_terminate_hooks() -> None:
    plan = FaultPlan()
    calls: list[str] = []

    def first() -> int:
        calls.append("first")
        return 2

    def broken() -> int:
        raise RuntimeError("a hook that fails does not stop the others")

    remove = plan.on_user_terminate(first)
    plan.on_user_terminate(broken)
    assert plan.terminate_user_streams() == 2
    remove()
    assert plan.terminate_user_streams() == 0
    assert calls == ["first"]
    assert plan.injected[FaultKind.USER_TERMINATE] == 2 and plan.armed[FaultKind.USER_TERMINATE] == 2


def test_counters_report_pending_faults() -> None:
    plan = FaultPlan()
    plan.arm_rest(RestFaultRule(RestFault.TIMEOUT, 2, "/api/v3/depth"))
    report = plan.counters()
    assert report["pending"] == {
        "rest": [{"status": "timeout", "count": 2, "path": "/api/v3/depth"}],
        "order_unknown": 0,
    }
    assert report["armed"] == {**dict.fromkeys((str(k) for k in FaultKind), 0), "rest_timeout": 1}
