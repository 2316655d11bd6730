"""Server-side rate limiting for the simulator, as Binance does it (reference §4).

Pure code: no sockets, no clocks (``now_ms`` is an argument).

* Per IP: ``REQUEST_WEIGHT`` (default 6000 / 1 MINUTE) and ``RAW_REQUESTS``
  (default 300000 / 5 MINUTE) in fixed buckets aligned to the epoch clock (a 1-minute
  bucket resets at every :00, 1 DAY at 00:00 UTC).
* Per account: ``ORDERS`` (default 50 / 10 SECOND and 160000 / 1 DAY), counting
  *unfilled* new orders: +1 when an order is accepted, -1 on its first fill.
* Over a limit → 429 with ``Retry-After`` = seconds until that bucket resets and
  -1003 (IP) or -1015 (orders). An IP that keeps sending during its 429 window is
  banned: 418, -1003 "…IP banned until <ms>…", 2 minutes doubling per ban (capped).

Check before, charge after: `RateLimiter.check_request` runs on arrival (counts one
raw request, and by default charges the weight at once); order endpoints pass
``charge=False`` and call `RateLimiter.charge` once the outcome is known (0 when the
order/cancel succeeded, the documented weight when it failed).

REST shell, for every request::

    try:
        limiter.check_request(ip, now, weight=w, charge=not is_order_call)
    except RateLimitError as e:
        respond(e.http_status, e.to_json(), {**e.headers(), **limiter.response_headers(ip, now)})
    ...
    limiter.charge(ip, now, 0 if succeeded else w)          # order calls only
    respond(..., limiter.response_headers(ip, now, account_id=acct if new order accepted else None))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

__all__ = [
    "Interval",
    "RateLimitConfig",
    "RateLimitError",
    "RateLimitRule",
    "RateLimitType",
    "RateLimiter",
]

_SECOND_MS: Final = 1000


class RateLimitType(StrEnum):
    REQUEST_WEIGHT = "REQUEST_WEIGHT"
    RAW_REQUESTS = "RAW_REQUESTS"
    ORDERS = "ORDERS"


class Interval(StrEnum):
    SECOND = "SECOND"
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"

    @property
    def ms(self) -> int:
        return _INTERVAL_MS[self]

    @property
    def letter(self) -> str:
        return self.value[0]


_INTERVAL_MS: Final = {
    Interval.SECOND: 1_000,
    Interval.MINUTE: 60_000,
    Interval.HOUR: 3_600_000,
    Interval.DAY: 86_400_000,
}

JsonDict = dict[str, str | int]


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    kind: RateLimitType
    interval: Interval
    interval_num: int
    limit: int

    def __post_init__(self) -> None:
        if self.interval_num < 1 or self.limit < 1:
            raise ValueError(f"bad rate limit rule {self}")

    @property
    def window_ms(self) -> int:
        return self.interval.ms * self.interval_num

    @property
    def suffix(self) -> str:
        """Header suffix: ``1M``, ``10S``, ``1D``."""
        return f"{self.interval_num}{self.interval.letter}"

    @property
    def label(self) -> str:
        """As in messages: ``1 MINUTE``, ``10 SECOND``."""
        return f"{self.interval_num} {self.interval.value}"

    def bucket_start(self, now_ms: int) -> int:
        return now_ms - now_ms % self.window_ms

    def bucket_end(self, now_ms: int) -> int:
        return self.bucket_start(now_ms) + self.window_ms

    def to_json(self) -> JsonDict:
        """The ``exchangeInfo.rateLimits`` entry."""
        return {
            "rateLimitType": self.kind.value,
            "interval": self.interval.value,
            "intervalNum": self.interval_num,
            "limit": self.limit,
        }


def _weight(interval: Interval, num: int, limit: int) -> RateLimitRule:
    return RateLimitRule(RateLimitType.REQUEST_WEIGHT, interval, num, limit)


def _raw(interval: Interval, num: int, limit: int) -> RateLimitRule:
    return RateLimitRule(RateLimitType.RAW_REQUESTS, interval, num, limit)


def _orders(interval: Interval, num: int, limit: int) -> RateLimitRule:
    return RateLimitRule(RateLimitType.ORDERS, interval, num, limit)


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    weight_rules: tuple[RateLimitRule, ...] = (_weight(Interval.MINUTE, 1, 6000),)
    raw_rules: tuple[RateLimitRule, ...] = (_raw(Interval.MINUTE, 5, 300_000),)
    order_rules: tuple[RateLimitRule, ...] = (
        _orders(Interval.SECOND, 10, 50),
        _orders(Interval.DAY, 1, 160_000),
    )
    ban_initial_ms: int = 120_000
    """First ban lasts this long; each further ban of the same IP doubles it."""
    ban_max_ms: int = 3 * 86_400_000
    ban_after_ignored: int = 5
    """The n-th request arriving inside an IP's 429 window (after the 429) gets it banned."""
    max_tracked: int = 100_000
    """Idle IP/account states are pruned once more than this many are tracked."""

    def __post_init__(self) -> None:
        for rules, kind in (
            (self.weight_rules, RateLimitType.REQUEST_WEIGHT),
            (self.raw_rules, RateLimitType.RAW_REQUESTS),
            (self.order_rules, RateLimitType.ORDERS),
        ):
            if any(rule.kind is not kind for rule in rules):
                raise ValueError(f"{kind.value} rules must all have kind {kind.value}")
        if self.ban_initial_ms < 1 or self.ban_max_ms < self.ban_initial_ms or self.ban_after_ignored < 1:
            raise ValueError("bad ban settings")

    @classmethod
    def small(
        cls,
        *,
        weight_per_minute: int = 6000,
        raw_per_5_minutes: int = 300_000,
        orders_per_10_seconds: int = 50,
        orders_per_day: int = 160_000,
        ban_initial_ms: int = 120_000,
        ban_after_ignored: int = 5,
    ) -> RateLimitConfig:
        """The Binance layout with different numbers (handy in tests)."""
        return cls(
            weight_rules=(_weight(Interval.MINUTE, 1, weight_per_minute),),
            raw_rules=(_raw(Interval.MINUTE, 5, raw_per_5_minutes),),
            order_rules=(
                _orders(Interval.SECOND, 10, orders_per_10_seconds),
                _orders(Interval.DAY, 1, orders_per_day),
            ),
            ban_initial_ms=ban_initial_ms,
            ban_after_ignored=ban_after_ignored,
        )

    def exchange_info_rate_limits(self) -> list[JsonDict]:
        """``exchangeInfo.rateLimits``: REQUEST_WEIGHT, ORDERS…, RAW_REQUESTS (Binance's order)."""
        return [rule.to_json() for rule in (*self.weight_rules, *self.order_rules, *self.raw_rules)]


class RateLimitError(Exception):
    """429 (-1003 / -1015) or 418 (-1003, banned). ``retry_at_ms`` is for the WS API's
    ``error.data.retryAfter`` (epoch ms); ``retry_after_s`` for the REST header."""

    def __init__(self, http_status: int, code: int, msg: str, *, retry_at_ms: int, now_ms: int) -> None:
        super().__init__(http_status, code, msg)
        self.http_status = http_status
        self.code = code
        self.msg = msg
        self.retry_at_ms = retry_at_ms
        self.retry_after_s = max(1, -(-(retry_at_ms - now_ms) // _SECOND_MS))

    def to_json(self) -> dict[str, int | str]:
        return {"code": self.code, "msg": self.msg}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}

    def __str__(self) -> str:
        return f"HTTP {self.http_status} {self.code}: {self.msg} (retry after {self.retry_after_s}s)"


def _limit_message(rule: RateLimitRule) -> str:
    if rule.kind is RateLimitType.REQUEST_WEIGHT:
        return (
            f"Too much request weight used; current limit is {rule.limit} request weight per "
            f"{rule.label}. Please use WebSocket Streams for live updates to avoid polling the API."
        )
    if rule.kind is RateLimitType.RAW_REQUESTS:
        return (
            f"Too many requests; current limit is {rule.limit} requests per {rule.label}. "
            "Please use WebSocket Streams for live updates to avoid polling the API."
        )
    return f"Too many new orders; current limit is {rule.limit} orders per {rule.label}."


def _ban_message(until_ms: int) -> str:
    return (
        f"Way too much request weight used; IP banned until {until_ms}. "
        "Please use WebSocket Streams for live updates to avoid bans."
    )


class _Bucket:
    """A fixed, clock-aligned counter for one rule."""

    __slots__ = ("count", "rule", "start")

    def __init__(self, rule: RateLimitRule) -> None:
        self.rule = rule
        self.start = -1
        self.count = 0

    def current(self, now_ms: int) -> int:
        start = self.rule.bucket_start(now_ms)
        if start != self.start:
            self.start = start
            self.count = 0
        return self.count

    def peek(self, now_ms: int) -> int:
        return self.count if self.rule.bucket_start(now_ms) == self.start else 0

    def add(self, now_ms: int, amount: int) -> None:
        self.current(now_ms)
        self.count += amount

    def idle(self, now_ms: int) -> bool:
        return self.peek(now_ms) == 0


@dataclass(slots=True)
class _IpState:
    weight: list[_Bucket]
    raw: list[_Bucket]
    penalty_until_ms: int = 0
    penalty_msg: str = ""
    ignored: int = 0
    ban_until_ms: int = 0
    bans: int = 0

    def idle(self, now_ms: int) -> bool:
        return (
            self.bans == 0
            and now_ms >= self.penalty_until_ms
            and all(bucket.idle(now_ms) for bucket in (*self.weight, *self.raw))
        )


@dataclass(slots=True)
class _AccountState:
    orders: list[_Bucket] = field(default_factory=list)


class RateLimiter:
    """Per-IP weight/raw-request limits with 429→418 escalation, per-account order counts."""

    def __init__(self, config: RateLimitConfig | None = None) -> None:
        self.config = config or RateLimitConfig()
        self._ips: dict[str, _IpState] = {}
        self._accounts: dict[int, _AccountState] = {}

    # ------------------------------------------------------------------ IP side

    def _ip(self, ip: str, now_ms: int) -> _IpState:
        state = self._ips.get(ip)
        if state is None:
            if len(self._ips) >= self.config.max_tracked:
                self.prune(now_ms)
            state = _IpState(
                weight=[_Bucket(rule) for rule in self.config.weight_rules],
                raw=[_Bucket(rule) for rule in self.config.raw_rules],
            )
            self._ips[ip] = state
        return state

    def _ban(self, state: _IpState, now_ms: int) -> RateLimitError:
        duration = min(self.config.ban_initial_ms * 2**state.bans, self.config.ban_max_ms)
        state.bans += 1
        state.ban_until_ms = now_ms + duration
        state.penalty_until_ms = 0
        state.ignored = 0
        return RateLimitError(
            418, -1003, _ban_message(state.ban_until_ms), retry_at_ms=state.ban_until_ms, now_ms=now_ms
        )

    def check_request(self, ip: str, now_ms: int, weight: int, *, charge: bool = True) -> None:
        """Admit one request of `weight` from `ip` or raise `RateLimitError`.

        Counts one RAW_REQUESTS hit when admitted, and charges `weight` too unless
        ``charge=False`` (order place/cancel: charge after the outcome is known).
        Rejected requests are not charged. Requests inside the IP's 429 window are
        refused with 429 and counted; the ``ban_after_ignored``-th one is banned (418).
        """
        if weight < 0:
            raise ValueError("weight must be >= 0")
        state = self._ip(ip, now_ms)
        if now_ms < state.ban_until_ms:
            raise RateLimitError(
                418, -1003, _ban_message(state.ban_until_ms), retry_at_ms=state.ban_until_ms, now_ms=now_ms
            )
        if now_ms < state.penalty_until_ms:
            state.ignored += 1
            if state.ignored >= self.config.ban_after_ignored:
                raise self._ban(state, now_ms)
            raise RateLimitError(429, -1003, state.penalty_msg, retry_at_ms=state.penalty_until_ms, now_ms=now_ms)

        exceeded: list[RateLimitRule] = [
            bucket.rule for bucket in state.weight if bucket.current(now_ms) + weight > bucket.rule.limit
        ]
        exceeded += [bucket.rule for bucket in state.raw if bucket.current(now_ms) + 1 > bucket.rule.limit]
        if exceeded:
            rule = max(exceeded, key=lambda r: r.bucket_end(now_ms))
            state.penalty_until_ms = rule.bucket_end(now_ms)
            state.penalty_msg = _limit_message(rule)
            state.ignored = 0
            raise RateLimitError(429, -1003, state.penalty_msg, retry_at_ms=state.penalty_until_ms, now_ms=now_ms)
        for bucket in state.raw:
            bucket.add(now_ms, 1)
        if charge:
            for bucket in state.weight:
                bucket.add(now_ms, weight)

    def charge(self, ip: str, now_ms: int, weight: int) -> None:
        """Add `weight` to the IP's current buckets (after the outcome is known)."""
        if weight < 0:
            raise ValueError("weight must be >= 0")
        if weight == 0:
            return
        for bucket in self._ip(ip, now_ms).weight:
            bucket.add(now_ms, weight)

    def force_ban(self, ip: str, now_ms: int, duration_ms: int | None = None) -> int:
        """Fault injection: ban `ip` now (default: the next escalation step). Returns ban end (ms)."""
        state = self._ip(ip, now_ms)
        if duration_ms is None:
            self._ban(state, now_ms)
        else:
            state.bans += 1
            state.ban_until_ms = now_ms + duration_ms
        return state.ban_until_ms

    def banned_until(self, ip: str, now_ms: int) -> int | None:
        state = self._ips.get(ip)
        return state.ban_until_ms if state is not None and now_ms < state.ban_until_ms else None

    def used_weight(self, ip: str, now_ms: int) -> dict[str, int]:
        """Current weight per interval suffix, e.g. ``{"1M": 1234}``."""
        state = self._ips.get(ip)
        return {
            rule.suffix: (0 if state is None else state.weight[i].peek(now_ms))
            for i, rule in enumerate(self.config.weight_rules)
        }

    # ------------------------------------------------------------------ account side

    def _account(self, account_id: int, now_ms: int) -> _AccountState:
        state = self._accounts.get(account_id)
        if state is None:
            if len(self._accounts) >= self.config.max_tracked:
                self.prune(now_ms)
            state = _AccountState([_Bucket(rule) for rule in self.config.order_rules])
            self._accounts[account_id] = state
        return state

    def check_new_order(self, account_id: int, now_ms: int) -> None:
        """Before placing: 429 -1015 if any ORDERS interval is full (Retry-After = its reset)."""
        state = self._account(account_id, now_ms)
        full = [bucket.rule for bucket in state.orders if bucket.current(now_ms) >= bucket.rule.limit]
        if full:
            rule = max(full, key=lambda r: r.bucket_end(now_ms))
            raise RateLimitError(429, -1015, _limit_message(rule), retry_at_ms=rule.bucket_end(now_ms), now_ms=now_ms)

    def record_new_order(self, account_id: int, now_ms: int) -> None:
        """An order was accepted (or rejected at the last-moment recvWindow check): +1 everywhere."""
        for bucket in self._account(account_id, now_ms).orders:
            bucket.add(now_ms, 1)

    def record_first_fill(self, account_id: int, placed_at_ms: int, now_ms: int) -> None:
        """An order placed at `placed_at_ms` got its first fill: -1 in every interval whose
        current bucket still contains the placement (never below zero)."""
        state = self._accounts.get(account_id)
        if state is None:
            return
        for bucket in state.orders:
            same_bucket = bucket.rule.bucket_start(placed_at_ms) == bucket.rule.bucket_start(now_ms)
            if same_bucket and bucket.current(now_ms) > 0:
                bucket.count -= 1

    def order_counts(self, account_id: int, now_ms: int) -> dict[str, int]:
        """Unfilled order count per interval suffix, e.g. ``{"10S": 3, "1D": 17}``."""
        state = self._accounts.get(account_id)
        return {
            rule.suffix: (0 if state is None else state.orders[i].peek(now_ms))
            for i, rule in enumerate(self.config.order_rules)
        }

    # ------------------------------------------------------------------ views

    def response_headers(self, ip: str, now_ms: int, *, account_id: int | None = None) -> dict[str, str]:
        """``X-MBX-USED-WEIGHT-1M`` (every response) and, with `account_id` (accepted
        orders), ``X-MBX-ORDER-COUNT-10S`` / ``-1D``."""
        headers = {f"X-MBX-USED-WEIGHT-{suffix}": str(used) for suffix, used in self.used_weight(ip, now_ms).items()}
        if account_id is not None:
            for suffix, count in self.order_counts(account_id, now_ms).items():
                headers[f"X-MBX-ORDER-COUNT-{suffix}"] = str(count)
        return headers

    def ws_rate_limits(self, ip: str, now_ms: int, *, account_id: int | None = None) -> list[JsonDict]:
        """WS API response ``rateLimits``: REQUEST_WEIGHT (+ ORDERS with `account_id`), with ``count``."""
        used = self.used_weight(ip, now_ms)
        out = [{**rule.to_json(), "count": used[rule.suffix]} for rule in self.config.weight_rules]
        if account_id is not None:
            out += self.order_rate_limits(account_id, now_ms)
        return out

    def order_rate_limits(self, account_id: int, now_ms: int) -> list[JsonDict]:
        """``GET /api/v3/rateLimit/order`` body."""
        counts = self.order_counts(account_id, now_ms)
        return [{**rule.to_json(), "count": counts[rule.suffix]} for rule in self.config.order_rules]

    def exchange_info_rate_limits(self) -> list[JsonDict]:
        return self.config.exchange_info_rate_limits()

    def prune(self, now_ms: int) -> int:
        """Forget idle IPs (never banned) and accounts with empty buckets. Returns how many."""
        idle_ips = [ip for ip, state in self._ips.items() if state.idle(now_ms)]
        idle_accounts = [acct for acct, state in self._accounts.items() if all(b.idle(now_ms) for b in state.orders)]
        for ip in idle_ips:
            del self._ips[ip]
        for acct in idle_accounts:
            del self._accounts[acct]
        return len(idle_ips) + len(idle_accounts)

    def tracked(self) -> tuple[int, int]:
        """(IPs, accounts) currently tracked."""
        return len(self._ips), len(self._accounts)
