"""Server-side rate limits: clock-aligned buckets, 429/418 escalation, order counts, headers."""

from __future__ import annotations

import pytest

from exchange_sim.wire.ratelimit import (
    Interval,
    RateLimitConfig,
    RateLimiter,
    RateLimitError,
    RateLimitRule,
    RateLimitType,
)

MIN = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z: a day, minute and 10 s boundary
IP = "10.0.0.1"
ACCT = 7
WEIGHT_MSG = (
    "Too much request weight used; current limit is 10 request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)


def small(**kwargs: int) -> RateLimiter:
    return RateLimiter(RateLimitConfig.small(**kwargs))


def refused(limiter: RateLimiter, now_ms: int, weight: int = 1, ip: str = IP) -> RateLimitError:
    with pytest.raises(RateLimitError) as info:
        limiter.check_request(ip, now_ms, weight)
    return info.value


def ban_msg(until_ms: int) -> str:
    return (
        f"Way too much request weight used; IP banned until {until_ms}. "
        "Please use WebSocket Streams for live updates to avoid bans."
    )


# --------------------------------------------------------------------------- buckets


@pytest.mark.parametrize(
    ("interval", "num", "now", "start", "end"),
    [
        (Interval.MINUTE, 1, T0, T0, T0 + MIN),
        (Interval.MINUTE, 1, T0 + MIN - 1, T0, T0 + MIN),
        (Interval.MINUTE, 1, T0 + MIN, T0 + MIN, T0 + 2 * MIN),
        (Interval.MINUTE, 5, T0 + 4 * MIN + 59_999, T0, T0 + 5 * MIN),
        (Interval.MINUTE, 5, T0 + 7 * MIN, T0 + 5 * MIN, T0 + 10 * MIN),
        (Interval.SECOND, 10, T0 + 19_999, T0 + 10_000, T0 + 20_000),
        (Interval.HOUR, 1, T0 + 90 * MIN, T0 + 60 * MIN, T0 + 120 * MIN),
        (Interval.DAY, 1, T0 + 86_399_999, T0, T0 + 86_400_000),  # 00:00 UTC
    ],
)
def test_buckets_are_aligned_to_the_clock(interval: Interval, num: int, now: int, start: int, end: int) -> None:
    rule = RateLimitRule(RateLimitType.REQUEST_WEIGHT, interval, num, 1)
    assert (rule.bucket_start(now), rule.bucket_end(now)) == (start, end)


def test_weight_resets_exactly_at_the_minute_boundary() -> None:
    limiter = small(weight_per_minute=10)
    limiter.check_request(IP, T0 + 30_000, 6)
    limiter.check_request(IP, T0 + MIN - 1, 4)
    assert limiter.used_weight(IP, T0 + MIN - 1) == {"1M": 10}
    assert limiter.response_headers(IP, T0 + MIN - 1) == {"X-MBX-USED-WEIGHT-1M": "10"}
    assert limiter.used_weight(IP, T0 + MIN) == {"1M": 0}  # a sliding window would still say 10
    limiter.check_request(IP, T0 + MIN, 10)
    assert limiter.response_headers(IP, T0 + MIN + 1) == {"X-MBX-USED-WEIGHT-1M": "10"}


def test_headers_for_unknown_ip_and_ips_are_separate() -> None:
    limiter = small(weight_per_minute=10)
    limiter.check_request("a", T0, 7)
    assert limiter.response_headers("b", T0) == {"X-MBX-USED-WEIGHT-1M": "0"}
    limiter.check_request("b", T0, 10)


# --------------------------------------------------------------------------- 429


@pytest.mark.parametrize(
    ("now", "retry_after_s"),
    [(T0, 60), (T0 + 1, 60), (T0 + 58_999, 2), (T0 + 59_000, 1), (T0 + 59_999, 1)],
)
def test_429_retry_after_is_seconds_until_the_bucket_resets(now: int, retry_after_s: int) -> None:
    limiter = small(weight_per_minute=10)
    limiter.check_request(IP, now, 10)
    error = refused(limiter, now)
    assert (error.http_status, error.code, error.msg) == (429, -1003, WEIGHT_MSG)
    assert error.retry_after_s == retry_after_s
    assert error.retry_at_ms == T0 + MIN
    assert error.headers() == {"Retry-After": str(retry_after_s)}
    assert error.to_json() == {"code": -1003, "msg": WEIGHT_MSG}


def test_limit_is_inclusive_and_rejected_requests_are_not_charged() -> None:
    limiter = small(weight_per_minute=10)
    limiter.check_request(IP, T0, 4)
    limiter.check_request(IP, T0, 4)
    assert refused(limiter, T0, 4).http_status == 429  # 12 > 10
    assert limiter.used_weight(IP, T0) == {"1M": 8}


def test_client_that_waits_out_retry_after_is_not_banned() -> None:
    limiter = small(weight_per_minute=10, ban_after_ignored=1)
    limiter.check_request(IP, T0 + 1000, 10)
    assert refused(limiter, T0 + 2000).http_status == 429
    limiter.check_request(IP, T0 + MIN, 10)  # the window ended: fresh bucket, no ban
    assert limiter.banned_until(IP, T0 + MIN) is None


def test_raw_request_limit() -> None:
    limiter = small(raw_per_5_minutes=3)
    for i in range(3):
        limiter.check_request(IP, T0 + i * MIN, 0)  # weight 0 still counts as a request
    error = refused(limiter, T0 + 4 * MIN, 0)
    assert (error.http_status, error.code) == (429, -1003)
    assert error.msg == (
        "Too many requests; current limit is 3 requests per 5 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API."
    )
    assert error.retry_after_s == 60
    limiter.check_request(IP, T0 + 5 * MIN, 0)


# --------------------------------------------------------------------------- 418


def test_escalation_from_429_to_418_and_ban_expiry() -> None:
    limiter = small(weight_per_minute=10, ban_initial_ms=120_000, ban_after_ignored=3)
    limiter.check_request(IP, T0, 10)
    first = refused(limiter, T0 + 1000)
    assert (first.http_status, first.retry_after_s) == (429, 59)
    # keeps sending during the 429 window
    assert refused(limiter, T0 + 2000).http_status == 429  # ignored 1
    assert refused(limiter, T0 + 3000).http_status == 429  # ignored 2
    ban = refused(limiter, T0 + 4000)  # ignored 3 -> banned
    until = T0 + 4000 + 120_000
    assert (ban.http_status, ban.code, ban.msg) == (418, -1003, ban_msg(until))
    assert (ban.retry_after_s, ban.retry_at_ms) == (120, until)
    assert limiter.banned_until(IP, T0 + 4000) == until
    # every request during the ban: 418 with the remaining time; the ban is not extended
    during = refused(limiter, T0 + 4000 + 119_500)
    assert (during.http_status, during.msg, during.retry_after_s) == (418, ban_msg(until), 1)
    # other IPs are unaffected
    limiter.check_request("10.0.0.2", T0 + 5000, 10)
    # expiry
    limiter.check_request(IP, until, 1)
    assert limiter.banned_until(IP, until) is None


def test_bans_double_on_repeat_and_are_capped() -> None:
    config = RateLimitConfig(
        weight_rules=(RateLimitRule(RateLimitType.REQUEST_WEIGHT, Interval.MINUTE, 1, 1),),
        ban_initial_ms=1000,
        ban_max_ms=5000,
        ban_after_ignored=1,
    )
    limiter = RateLimiter(config)
    durations = []
    now = T0
    for _ in range(5):
        now = (now // MIN + 1) * MIN  # start of a fresh minute
        limiter.check_request(IP, now, 1)
        assert refused(limiter, now).http_status == 429
        ban = refused(limiter, now)
        assert ban.http_status == 418
        durations.append(ban.retry_at_ms - now)
    assert durations == [1000, 2000, 4000, 5000, 5000]


def test_force_ban_for_fault_injection() -> None:
    limiter = small()
    assert limiter.force_ban(IP, T0, 10_000) == T0 + 10_000
    error = refused(limiter, T0 + 1)
    assert (error.http_status, error.retry_after_s) == (418, 10)
    assert limiter.force_ban("other", T0) == T0 + 120_000  # default: next escalation step


# --------------------------------------------------------------------------- order calls: check before, charge after


def test_successful_order_calls_weigh_zero_failed_ones_their_weight() -> None:
    limiter = small(weight_per_minute=10)
    limiter.check_request(IP, T0, 1, charge=False)
    limiter.charge(IP, T0, 0)  # placed
    limiter.check_request(IP, T0, 1, charge=False)
    limiter.charge(IP, T0, 1)  # rejected by the engine
    assert limiter.response_headers(IP, T0) == {"X-MBX-USED-WEIGHT-1M": "1"}


def test_order_call_is_checked_against_its_documented_weight() -> None:
    limiter = small(weight_per_minute=10)
    limiter.check_request(IP, T0, 10)
    with pytest.raises(RateLimitError):
        limiter.check_request(IP, T0, 1, charge=False)


def test_negative_weights_are_bugs() -> None:
    limiter = small()
    with pytest.raises(ValueError, match="weight"):
        limiter.check_request(IP, T0, -1)
    with pytest.raises(ValueError, match="weight"):
        limiter.charge(IP, T0, -1)


# --------------------------------------------------------------------------- unfilled order count


def test_order_count_limit_and_headers() -> None:
    limiter = small(orders_per_10_seconds=3, orders_per_day=100)
    for _ in range(3):
        limiter.check_new_order(ACCT, T0 + 1000)
        limiter.record_new_order(ACCT, T0 + 1000)
    assert limiter.response_headers(IP, T0 + 1000, account_id=ACCT) == {
        "X-MBX-USED-WEIGHT-1M": "0",
        "X-MBX-ORDER-COUNT-10S": "3",
        "X-MBX-ORDER-COUNT-1D": "3",
    }
    with pytest.raises(RateLimitError) as info:
        limiter.check_new_order(ACCT, T0 + 2500)
    error = info.value
    assert (error.http_status, error.code) == (429, -1015)
    assert error.msg == "Too many new orders; current limit is 3 orders per 10 SECOND."
    assert (error.retry_at_ms, error.retry_after_s) == (T0 + 10_000, 8)
    limiter.check_new_order(ACCT, T0 + 10_000)  # next 10 s bucket
    assert limiter.order_counts(ACCT, T0 + 10_000) == {"10S": 0, "1D": 3}
    limiter.check_new_order(ACCT + 1, T0 + 2500)  # per account


def test_first_fill_decrements_the_unfilled_order_count() -> None:
    limiter = small(orders_per_10_seconds=2, orders_per_day=100)
    limiter.record_new_order(ACCT, T0 + 1000)
    limiter.record_new_order(ACCT, T0 + 1000)
    with pytest.raises(RateLimitError):
        limiter.check_new_order(ACCT, T0 + 1500)
    limiter.record_first_fill(ACCT, placed_at_ms=T0 + 1000, now_ms=T0 + 2000)
    assert limiter.order_counts(ACCT, T0 + 2000) == {"10S": 1, "1D": 1}
    limiter.check_new_order(ACCT, T0 + 2000)


def test_fill_of_an_order_from_an_earlier_bucket_only_touches_buckets_that_hold_it() -> None:
    limiter = small(orders_per_10_seconds=5, orders_per_day=100)
    limiter.record_new_order(ACCT, T0 + 9_000)  # placed in the first 10 s bucket
    limiter.record_new_order(ACCT, T0 + 11_000)  # another one, second bucket
    limiter.record_first_fill(ACCT, placed_at_ms=T0 + 9_000, now_ms=T0 + 12_000)
    assert limiter.order_counts(ACCT, T0 + 12_000) == {"10S": 1, "1D": 1}
    # never below zero, unknown accounts ignored
    limiter.record_first_fill(ACCT, placed_at_ms=T0 + 11_000, now_ms=T0 + 12_000)
    limiter.record_first_fill(ACCT, placed_at_ms=T0 + 11_000, now_ms=T0 + 12_000)
    assert limiter.order_counts(ACCT, T0 + 12_000) == {"10S": 0, "1D": 0}
    limiter.record_first_fill(999, placed_at_ms=T0, now_ms=T0)
    assert limiter.order_counts(999, T0) == {"10S": 0, "1D": 0}


def test_daily_order_limit_resets_at_midnight_utc() -> None:
    limiter = small(orders_per_10_seconds=50, orders_per_day=2)
    limiter.record_new_order(ACCT, T0 + 3_600_000)
    limiter.record_new_order(ACCT, T0 + 7_200_000)
    with pytest.raises(RateLimitError) as info:
        limiter.check_new_order(ACCT, T0 + 86_399_000)
    assert info.value.msg == "Too many new orders; current limit is 2 orders per 1 DAY."
    assert info.value.retry_after_s == 1
    limiter.check_new_order(ACCT, T0 + 86_400_000)


# --------------------------------------------------------------------------- rendering


def test_exchange_info_rate_limits() -> None:
    assert RateLimiter().exchange_info_rate_limits() == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000},
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300000},
    ]


def test_ws_rate_limits_and_order_rate_limit_endpoint() -> None:
    limiter = small(weight_per_minute=10, orders_per_10_seconds=3, orders_per_day=100)
    limiter.check_request(IP, T0, 4)
    limiter.record_new_order(ACCT, T0)
    assert limiter.ws_rate_limits(IP, T0) == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 10, "count": 4}
    ]
    assert limiter.ws_rate_limits(IP, T0, account_id=ACCT)[1:] == limiter.order_rate_limits(ACCT, T0)
    assert limiter.order_rate_limits(ACCT, T0) == [
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 3, "count": 1},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 100, "count": 1},
    ]


# --------------------------------------------------------------------------- config and housekeeping


def test_config_validation() -> None:
    orders = RateLimitRule(RateLimitType.ORDERS, Interval.SECOND, 10, 50)
    with pytest.raises(ValueError, match="REQUEST_WEIGHT"):
        RateLimitConfig(weight_rules=(orders,))
    with pytest.raises(ValueError, match="ban"):
        RateLimitConfig(ban_after_ignored=0)
    with pytest.raises(ValueError, match="bad rate limit rule"):
        RateLimitRule(RateLimitType.ORDERS, Interval.SECOND, 0, 50)
    assert (orders.suffix, orders.label, orders.window_ms) == ("10S", "10 SECOND", 10_000)


def test_idle_state_is_pruned_but_ban_history_is_kept() -> None:
    limiter = small()
    limiter.check_request("a", T0, 1)
    limiter.force_ban("b", T0, 1000)
    limiter.record_new_order(ACCT, T0)
    assert limiter.tracked() == (2, 1)
    assert limiter.prune(T0 + 86_400_000) == 2  # "a" and the account
    assert limiter.tracked() == (1, 0)


def test_tracking_is_bounded() -> None:
    limiter = RateLimiter(RateLimitConfig(max_tracked=3))
    for i in range(3):
        limiter.check_request(f"ip{i}", T0, 1)
    limiter.check_request("late", T0 + 10 * MIN, 1)  # the old ones are idle by now
    assert limiter.tracked() == (1, 0)
