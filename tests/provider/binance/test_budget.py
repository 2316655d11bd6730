"""Client weight budget: waits before a 429 would happen, reconciles headers, obeys 429/418."""

from __future__ import annotations

import pytest

from exchange_sim.wire.ratelimit import RateLimitConfig, RateLimiter, RateLimitError
from provider.binance.budget import (
    BudgetConfig,
    Permit,
    ThrottleReason,
    WeightBudget,
    WeightWindow,
)

MIN = 60_000
T0 = 1_704_067_200_000  # a minute boundary
GUARD = 250


def budget(limit: int = 100, margin: float = 0.1, guard: int = GUARD) -> WeightBudget:
    return WeightBudget(
        BudgetConfig(windows=(WeightWindow("MINUTE", 1, limit),), safety_margin=margin, boundary_guard_ms=guard)
    )


def ok() -> Permit:
    return Permit(ThrottleReason.NONE, 0)


# --------------------------------------------------------------------------- local budget


def test_defaults_are_6000_per_minute_with_a_margin() -> None:
    state = WeightBudget().state(T0)
    assert (state.limit, state.effective_limit, state.used) == (6000, 5700, 0)
    assert state.windows[0].suffix == "1M"
    assert state.windows[0].resets_at_ms == T0 + MIN


def test_waits_before_the_limit_minus_margin_is_crossed() -> None:
    b = budget(limit=100, margin=0.1)  # effective 90
    for _ in range(9):
        assert b.try_acquire(10, T0 + 1000) == ok()
    permit = b.try_acquire(10, T0 + 1000)
    assert permit == Permit(ThrottleReason.LOCAL_LIMIT, MIN - 1000 + GUARD)
    assert not permit.allowed and not permit.banned
    assert b.try_acquire(0, T0 + 1000).allowed  # weightless calls still pass
    assert b.state(T0 + 1000).used == 90
    assert b.state(T0 + 1000).throttled == 1


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0 + MIN - 1, Permit(ThrottleReason.LOCAL_LIMIT, 1 + GUARD)),  # still the old bucket
        (T0 + MIN, Permit(ThrottleReason.LOCAL_LIMIT, GUARD)),  # new bucket, but server clock may lag
        (T0 + MIN + GUARD - 1, Permit(ThrottleReason.LOCAL_LIMIT, 1)),
        (T0 + MIN + GUARD, Permit(ThrottleReason.NONE, 0)),
    ],
)
def test_bucket_boundary_with_guard(now: int, expected: Permit) -> None:
    b = budget(limit=100, margin=0.1)
    assert b.try_acquire(90, T0 + 30_000).allowed
    assert b.peek(10, now) == expected


def test_small_request_just_after_the_boundary_passes_if_it_fits_the_old_bucket() -> None:
    b = budget(limit=100, margin=0.1)
    assert b.try_acquire(50, T0 + 30_000).allowed
    assert b.peek(10, T0 + MIN + 1).allowed


def test_a_request_bigger_than_the_budget_is_allowed_into_an_empty_bucket() -> None:
    b = budget(limit=100, margin=0.1)
    assert b.try_acquire(95, T0 + 1000).allowed
    assert b.try_acquire(1, T0 + 1000).reason is ThrottleReason.LOCAL_LIMIT


def test_peek_does_not_spend() -> None:
    b = budget()
    assert b.peek(50, T0).allowed
    assert b.state(T0).used == 0


def test_refund_for_successful_order_calls() -> None:
    b = budget()
    b.try_acquire(1, T0 + 10, order=True)
    b.try_acquire(1, T0 + 20, order=True)
    b.refund(1, spent_at_ms=T0 + 10, now_ms=T0 + 30)
    assert b.state(T0 + 30).used == 1
    b.refund(5, spent_at_ms=T0 + 10, now_ms=T0 + 30)
    assert b.state(T0 + 30).used == 0  # never negative
    b.try_acquire(3, T0 + 40)
    b.refund(3, spent_at_ms=T0 - 1, now_ms=T0 + 50)  # spent in an earlier bucket: nothing to give back
    assert b.state(T0 + 50).used == 3


def test_negative_weight_is_a_bug() -> None:
    with pytest.raises(ValueError, match="weight"):
        budget().peek(-1, T0)


# --------------------------------------------------------------------------- header reconciliation


@pytest.mark.parametrize(
    ("headers", "used"),
    [
        ({"X-MBX-USED-WEIGHT-1M": "70"}, 70),
        ({"x-mbx-used-weight-1m": "70"}, 70),
        ({"X-Mbx-Used-Weight-1m": " 70 "}, 70),
        ({"X-MBX-USED-WEIGHT-1M": "5"}, 20),  # lower than ours (requests in flight): keep ours
        ({"X-MBX-USED-WEIGHT": "70"}, 20),  # legacy header: ignored
        ({"X-MBX-USED-WEIGHT-1M": "seventy"}, 20),
        ({"X-MBX-USED-WEIGHT-1M": "٧٠"}, 20),  # non-ASCII digits
        ({}, 20),
    ],
)
def test_used_weight_header_reconciliation(headers: dict[str, str], used: int) -> None:
    b = budget()
    b.try_acquire(20, T0 + 1000)
    b.on_response(200, headers, sent_at_ms=T0 + 1000, now_ms=T0 + 1100)
    assert b.state(T0 + 1100).used == used
    assert b.state(T0 + 1100).header_corrections == (1 if used == 70 else 0)


def test_header_from_a_request_sent_in_the_previous_bucket_is_ignored() -> None:
    b = budget()
    b.on_response(200, {"X-MBX-USED-WEIGHT-1M": "95"}, sent_at_ms=T0 - 10, now_ms=T0 + 5)
    assert b.state(T0 + 5).used == 0


def test_header_count_makes_the_client_wait() -> None:
    b = budget(limit=100, margin=0.1)
    # another process on the same IP has spent weight we never saw
    b.on_response(200, {"X-MBX-USED-WEIGHT-1M": "85"}, sent_at_ms=T0 + 1000, now_ms=T0 + 1001)
    assert b.peek(5, T0 + 1001).allowed
    assert b.peek(6, T0 + 1001).reason is ThrottleReason.LOCAL_LIMIT


def test_ws_rate_limits_reconcile_too() -> None:
    b = budget()
    entries: list[dict[str, object]] = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 100, "count": 42},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50, "count": 99},
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 100, "count": "x"},
    ]
    b.on_ws_response(200, sent_at_ms=T0, now_ms=T0 + 1, rate_limits=entries)
    assert b.state(T0 + 1).used == 42


# --------------------------------------------------------------------------- 429 and 418


def test_429_pauses_everything_until_retry_after() -> None:
    b = budget()
    b.on_response(429, {"Retry-After": "7"}, sent_at_ms=T0 + 1000, now_ms=T0 + 1000)
    assert b.peek(1, T0 + 1000) == Permit(ThrottleReason.RETRY_AFTER, 7000)
    assert b.try_acquire(1, T0 + 7999) == Permit(ThrottleReason.RETRY_AFTER, 1)
    assert b.try_acquire(1, T0 + 8000).allowed
    state = b.state(T0 + 1000)
    assert (state.rate_limited, state.throttled, state.bans) == (1, 1, 0)


def test_429_without_retry_after_waits_for_the_bucket_reset() -> None:
    b = budget()
    b.on_response(429, {}, sent_at_ms=T0 + 1000, now_ms=T0 + 1000)
    assert b.peek(1, T0 + 1000) == Permit(ThrottleReason.RETRY_AFTER, MIN - 1000 + GUARD)
    assert b.state(T0 + 1000).paused_until_ms == T0 + MIN + GUARD


def test_order_count_429_only_pauses_order_calls() -> None:
    b = budget()
    b.on_response(429, {"retry-after": "3"}, sent_at_ms=T0, now_ms=T0, code=-1015)
    assert b.peek(1, T0).allowed
    assert b.peek(1, T0, order=True) == Permit(ThrottleReason.RETRY_AFTER, 3000)
    assert b.state(T0).orders_paused_until_ms == T0 + 3000
    assert b.state(T0).paused_until_ms is None


@pytest.mark.parametrize(
    ("headers", "message", "until"),
    [
        ({"Retry-After": "120"}, None, T0 + 120_000),
        ({}, "Way too much request weight used; IP banned until 1704067500000. Please use …", 1_704_067_500_000),
        ({}, None, T0 + 120_000),  # default
    ],
)
def test_418_is_a_global_ban(headers: dict[str, str], message: str | None, until: int) -> None:
    b = budget()
    b.on_response(418, headers, sent_at_ms=T0, now_ms=T0, code=-1003, message=message)
    permit = b.try_acquire(1, T0 + 1000)
    assert permit == Permit(ThrottleReason.BANNED, until - T0 - 1000)
    assert permit.banned and not permit.allowed
    assert b.try_acquire(0, T0 + 1000, order=True).banned  # everything is refused
    state = b.state(T0 + 1000)
    assert (state.banned_until_ms, state.bans) == (until, 1)
    assert b.try_acquire(1, until).allowed  # ban over
    assert b.state(until).banned_until_ms is None


def test_ws_errors_carry_epoch_ms_retry_after() -> None:
    b = budget()
    b.on_ws_response(429, sent_at_ms=T0, now_ms=T0, retry_after_ms=T0 + 5000)
    assert b.peek(1, T0) == Permit(ThrottleReason.RETRY_AFTER, 5000)
    b.on_ws_response(418, sent_at_ms=T0, now_ms=T0, retry_after_ms=T0 + 60_000)
    assert b.peek(1, T0) == Permit(ThrottleReason.BANNED, 60_000)


# --------------------------------------------------------------------------- limits from exchangeInfo


def test_limits_from_exchange_info() -> None:
    b = WeightBudget(BudgetConfig(safety_margin=0.0))
    b.try_acquire(30, T0)
    b.set_limits_from_exchange_info(
        [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 40},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "FORTNIGHT", "intervalNum": 1, "limit": 1},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300000},
        ]
    )
    state = b.state(T0)
    assert (state.limit, state.used) == (40, 30)  # spend kept across the update
    assert b.peek(10, T0).allowed
    assert not b.peek(11, T0).allowed
    b.set_limits_from_exchange_info([])  # nothing usable: keep what we have
    assert b.state(T0).limit == 40


def test_several_windows_and_their_headers() -> None:
    b = WeightBudget(
        BudgetConfig(windows=(WeightWindow("MINUTE", 1, 100), WeightWindow("SECOND", 10, 20)), safety_margin=0.0)
    )
    assert b.try_acquire(20, T0).allowed
    assert b.peek(1, T0 + 5000) == Permit(ThrottleReason.LOCAL_LIMIT, 5000 + GUARD)
    b.on_response(200, {"X-MBX-USED-WEIGHT-1M": "90", "X-MBX-USED-WEIGHT-10S": "0"}, sent_at_ms=T0, now_ms=T0)
    assert [(w.suffix, w.used) for w in b.state(T0).windows] == [("1M", 90), ("10S", 20)]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="safety_margin"):
        BudgetConfig(safety_margin=1.0)
    with pytest.raises(ValueError, match="window"):
        BudgetConfig(windows=())
    with pytest.raises(ValueError, match="bad weight window"):
        WeightWindow("WEEK", 1, 10)


# --------------------------------------------------------------------------- against the simulator's limiter


@pytest.mark.parametrize("skew", [-1000, -100, 0, 100, GUARD - 1])
def test_a_client_obeying_the_budget_never_sees_a_429(skew: int) -> None:
    """Greedy client sending a 3-weight request every 50 ms for 3 minutes against a server
    allowing 100/minute; its idea of server time is off by `skew` ms (less than the guard)."""
    server = RateLimiter(RateLimitConfig.small(weight_per_minute=100, ban_after_ignored=1))
    client = budget(limit=100, margin=0.05)
    sent = 0
    for server_now in range(T0 + 7000, T0 + 3 * MIN, 50):
        client_now = server_now + skew
        if not client.try_acquire(3, client_now).allowed:
            continue
        server.check_request("ip", server_now, 3)  # raises on 429
        sent += 1
        headers = server.response_headers("ip", server_now)
        client.on_response(200, headers, sent_at_ms=client_now, now_ms=client_now + 5)
    assert sent == 3 * (95 // 3)  # full use of the budget in each of the three minutes


def test_a_client_ignoring_the_budget_is_throttled_then_banned_and_the_budget_follows() -> None:
    server = RateLimiter(RateLimitConfig.small(weight_per_minute=10, ban_after_ignored=2))
    client = budget(limit=10)
    now = T0 + 1000
    statuses = []
    for _ in range(14):
        try:
            server.check_request("ip", now, 1)
            statuses.append(200)
            client.on_response(200, server.response_headers("ip", now), sent_at_ms=now, now_ms=now)
        except RateLimitError as error:
            statuses.append(error.http_status)
            client.on_response(error.http_status, error.headers(), sent_at_ms=now, now_ms=now, message=error.msg)
    assert statuses == [200] * 10 + [429, 429, 418, 418]
    assert client.peek(1, now).banned
    assert client.state(now).banned_until_ms == now + 120_000
