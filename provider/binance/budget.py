"""The provider's shared request-weight budget (client side of reference §4).

Pure code: no sockets, no asyncio, no clock of its own. Every method takes ``now_ms``,
which must be the provider's estimate of *server* time (local clock + offset), since
Binance's buckets are aligned to its own clock.

How the REST shell uses it (single event loop, so each call is atomic)::

    while True:
        permit = budget.try_acquire(weight, now_ms())
        if permit.allowed:
            break
        if permit.banned or permit.delay_ms > deadline_left:
            raise Throttled(permit)               # refuse with the remaining delay
        await asyncio.sleep(permit.delay_ms / 1000)
    sent_at = now_ms()
    response = await send(...)
    budget.on_response(response.status, response.headers, sent_at_ms=sent_at, now_ms=now_ms())
    if is_order_call and response.status == 200:
        budget.refund(weight, spent_at_ms=sent_at, now_ms=now_ms())   # successful orders weigh 0

Policy:

* Local spend is tracked per window (default 6000 / 1 MINUTE) from documented weights
  and never allowed past ``limit - safety margin``; a request that would cross it waits
  for the bucket to reset plus a small guard for clock error.
* ``X-MBX-USED-WEIGHT-<n><S|M|H|D>`` headers (case-insensitive) raise the local count
  when the server saw more (other processes on the same IP); a response whose request
  was sent in an earlier bucket is ignored.
* 429: every request waits until ``Retry-After`` (or the bucket reset). A -1015 (order
  count) 429 only pauses order calls.
* 418: global ban until ``Retry-After`` (or the time in the message); every request is
  refused with the remaining delay.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "BudgetConfig",
    "BudgetState",
    "Permit",
    "ThrottleReason",
    "WeightBudget",
    "WeightWindow",
    "WindowState",
]

_INTERVAL_MS: Final = {"SECOND": 1_000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
_BANNED_UNTIL_RE: Final = re.compile(r"banned until (\d+)")
_HEADER_PREFIX: Final = "x-mbx-used-weight-"
ORDER_LIMIT_CODE: Final = -1015


class ThrottleReason(StrEnum):
    NONE = "none"
    LOCAL_LIMIT = "local_limit"
    """Our own budget (limit minus safety margin) is spent for this bucket."""
    RETRY_AFTER = "retry_after"
    """Binance said 429; waiting out its Retry-After."""
    BANNED = "banned"
    """Binance said 418; nothing may be sent until the ban ends."""


@dataclass(frozen=True, slots=True)
class WeightWindow:
    """One REQUEST_WEIGHT limit: ``limit`` per ``interval_num`` × interval."""

    interval: str = "MINUTE"
    interval_num: int = 1
    limit: int = 6000

    def __post_init__(self) -> None:
        if self.interval not in _INTERVAL_MS or self.interval_num < 1 or self.limit < 1:
            raise ValueError(f"bad weight window {self}")

    @property
    def window_ms(self) -> int:
        return _INTERVAL_MS[self.interval] * self.interval_num

    @property
    def suffix(self) -> str:
        """``1M``, ``10S``… as in ``X-MBX-USED-WEIGHT-1M``."""
        return f"{self.interval_num}{self.interval[0]}"


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    windows: tuple[WeightWindow, ...] = (WeightWindow(),)
    safety_margin: float = 0.05
    """Fraction of each limit this client never spends (headroom for other users of the IP)."""
    boundary_guard_ms: int = 250
    """After a bucket reset, wait this much longer before spending a full bucket's worth again."""
    default_ban_ms: int = 120_000
    """418 without Retry-After and without a parsable ``banned until`` time."""

    def __post_init__(self) -> None:
        if not self.windows:
            raise ValueError("at least one weight window is required")
        if not 0.0 <= self.safety_margin < 1.0:
            raise ValueError("safety_margin must be in [0, 1)")
        if self.boundary_guard_ms < 0 or self.default_ban_ms < 0:
            raise ValueError("durations must be >= 0")


@dataclass(frozen=True, slots=True)
class Permit:
    """Answer to "may I send a request of this weight now?"."""

    reason: ThrottleReason
    delay_ms: int
    """0 when allowed; otherwise how long until asking again makes sense."""

    @property
    def allowed(self) -> bool:
        return self.reason is ThrottleReason.NONE

    @property
    def banned(self) -> bool:
        return self.reason is ThrottleReason.BANNED


_ALLOWED: Final = Permit(ThrottleReason.NONE, 0)


@dataclass(frozen=True, slots=True)
class WindowState:
    suffix: str
    used: int
    limit: int
    effective_limit: int
    resets_at_ms: int


@dataclass(frozen=True, slots=True)
class BudgetState:
    """For metrics. ``used``/``limit`` are the first (normally 1-minute) window's."""

    used: int
    limit: int
    effective_limit: int
    paused_until_ms: int | None
    orders_paused_until_ms: int | None
    banned_until_ms: int | None
    throttled: int
    """try_acquire answers that were not "send now" (any reason)."""
    rate_limited: int
    """429 responses seen."""
    bans: int
    """418 responses seen."""
    header_corrections: int
    """Times a used-weight header showed more spend than we had counted."""
    windows: tuple[WindowState, ...]


class _Window:
    __slots__ = ("effective", "prev_used", "spec", "start", "used")

    def __init__(self, spec: WeightWindow, safety_margin: float) -> None:
        self.spec = spec
        self.effective = max(1, spec.limit - math.ceil(spec.limit * safety_margin))
        self.start = -1
        self.used = 0
        self.prev_used = 0

    def bucket_start(self, now_ms: int) -> int:
        return now_ms - now_ms % self.spec.window_ms

    def roll(self, now_ms: int) -> None:
        start = self.bucket_start(now_ms)
        if start != self.start:
            self.prev_used = self.used if start == self.start + self.spec.window_ms else 0
            self.start = start
            self.used = 0

    def delay(self, weight: int, now_ms: int, guard_ms: int) -> int:
        self.roll(now_ms)
        end = self.start + self.spec.window_ms
        # Near a boundary the server may still be in the previous (full) bucket.
        if now_ms < self.start + guard_ms and self.prev_used + weight > self.effective:
            return self.start + guard_ms - now_ms
        if self.used + weight > self.effective and self.used > 0:
            return end + guard_ms - now_ms
        return 0


class WeightBudget:
    """Shared request-weight budget for one IP (REST and WS API draw on it alike)."""

    def __init__(self, config: BudgetConfig | None = None) -> None:
        self.config = config or BudgetConfig()
        self._windows = [_Window(spec, self.config.safety_margin) for spec in self.config.windows]
        self._paused_until = 0
        self._orders_paused_until = 0
        self._banned_until = 0
        self._throttled = 0
        self._rate_limited = 0
        self._bans = 0
        self._corrections = 0

    # ------------------------------------------------------------------ limits

    def set_limits(self, windows: Iterable[WeightWindow]) -> None:
        """Replace the limits; spend already counted in matching windows is kept."""
        new = [_Window(spec, self.config.safety_margin) for spec in windows]
        if not new:
            return
        old = {w.spec.window_ms: w for w in self._windows}
        for window in new:
            previous = old.get(window.spec.window_ms)
            if previous is not None:
                window.start, window.used, window.prev_used = previous.start, previous.used, previous.prev_used
        self._windows = new

    def set_limits_from_exchange_info(self, rate_limits: Iterable[Mapping[str, object]]) -> None:
        """Take the REQUEST_WEIGHT entries of ``exchangeInfo.rateLimits`` (others ignored)."""
        windows = []
        for entry in rate_limits:
            if entry.get("rateLimitType") != "REQUEST_WEIGHT":
                continue
            interval, num, limit = entry.get("interval"), entry.get("intervalNum"), entry.get("limit")
            if isinstance(interval, str) and isinstance(num, int) and isinstance(limit, int):
                try:
                    windows.append(WeightWindow(interval, num, limit))
                except ValueError:
                    continue
        self.set_limits(windows)

    # ------------------------------------------------------------------ asking

    def _permit(self, weight: int, now_ms: int, *, order: bool) -> Permit:
        if weight < 0:
            raise ValueError("weight must be >= 0")
        if now_ms < self._banned_until:
            return Permit(ThrottleReason.BANNED, self._banned_until - now_ms)
        pause = self._paused_until
        if order:
            pause = max(pause, self._orders_paused_until)
        if now_ms < pause:
            return Permit(ThrottleReason.RETRY_AFTER, pause - now_ms)
        delay = max(w.delay(weight, now_ms, self.config.boundary_guard_ms) for w in self._windows)
        return Permit(ThrottleReason.LOCAL_LIMIT, delay) if delay > 0 else _ALLOWED

    def peek(self, weight: int, now_ms: int, *, order: bool = False) -> Permit:
        """How long a request of `weight` must wait before it may be sent (no spend recorded)."""
        return self._permit(weight, now_ms, order=order)

    def try_acquire(self, weight: int, now_ms: int, *, order: bool = False) -> Permit:
        """Like `peek`, but when allowed the weight is spent at once (reserve before sending).

        ``order=True`` for order placement/cancel calls (also blocked by a -1015 pause).
        """
        permit = self._permit(weight, now_ms, order=order)
        if permit.allowed:
            for window in self._windows:
                window.used += weight  # _permit rolled every window to now
        else:
            self._throttled += 1
        return permit

    def refund(self, weight: int, *, spent_at_ms: int, now_ms: int) -> None:
        """Give back spend that Binance did not charge (successful order/cancel: weight 0)."""
        for window in self._windows:
            window.roll(now_ms)
            if window.bucket_start(spent_at_ms) == window.start:
                window.used = max(0, window.used - weight)

    # ------------------------------------------------------------------ learning

    def _observe_used(self, window: _Window, used: int, sent_at_ms: int, now_ms: int) -> None:
        window.roll(now_ms)
        if window.bucket_start(sent_at_ms) != window.start:
            return  # the count belongs to an earlier bucket
        if used > window.used:
            window.used = used
            self._corrections += 1

    def _pause(self, until_ms: int, *, orders_only: bool) -> None:
        self._rate_limited += 1
        if orders_only:
            self._orders_paused_until = max(self._orders_paused_until, until_ms)
        else:
            self._paused_until = max(self._paused_until, until_ms)

    def _ban(self, until_ms: int) -> None:
        self._bans += 1
        self._banned_until = max(self._banned_until, until_ms)

    def _next_reset(self, now_ms: int) -> int:
        window = self._windows[0]
        return window.bucket_start(now_ms) + window.spec.window_ms + self.config.boundary_guard_ms

    def on_response(
        self,
        status: int,
        headers: Mapping[str, str],
        *,
        sent_at_ms: int,
        now_ms: int,
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        """Learn from a REST response: used-weight headers, 429 and 418.

        `headers` may be any mapping (aiohttp's ``CIMultiDictProxy`` too); names are
        matched case-insensitively. `code`/`message` are the error body's, if parsed.
        """
        lowered: dict[str, str] = {}
        for name, value in headers.items():
            lowered.setdefault(name.lower(), value)
        for window in self._windows:
            raw = lowered.get(_HEADER_PREFIX + window.spec.suffix.lower())
            used = _parse_int(raw)
            if used is not None:
                self._observe_used(window, used, sent_at_ms, now_ms)

        if status not in (418, 429):
            return
        retry_after_s = _parse_int(lowered.get("retry-after"))  # seconds; never an HTTP-date here
        if status == 429:
            until = now_ms + retry_after_s * 1000 if retry_after_s is not None else self._next_reset(now_ms)
            self._pause(until, orders_only=code == ORDER_LIMIT_CODE)
            return
        if retry_after_s is not None:
            until = now_ms + retry_after_s * 1000
        else:
            match = _BANNED_UNTIL_RE.search(message or "")
            until = int(match.group(1)) if match else now_ms + self.config.default_ban_ms
        self._ban(until)

    def on_ws_response(
        self,
        status: int,
        *,
        sent_at_ms: int,
        now_ms: int,
        rate_limits: Iterable[Mapping[str, object]] | None = None,
        retry_after_ms: int | None = None,
        code: int | None = None,
    ) -> None:
        """Learn from a WS API response: its ``rateLimits`` counts, and on 429/418 the
        ``error.data.retryAfter`` (an epoch-ms time, unlike REST's seconds)."""
        for entry in rate_limits or ():
            if entry.get("rateLimitType") != "REQUEST_WEIGHT":
                continue
            interval, num, count = entry.get("interval"), entry.get("intervalNum"), entry.get("count")
            if not (isinstance(interval, str) and isinstance(num, int) and isinstance(count, int)):
                continue
            for window in self._windows:
                if window.spec.interval == interval and window.spec.interval_num == num:
                    self._observe_used(window, count, sent_at_ms, now_ms)
        if status == 429:
            until = retry_after_ms if retry_after_ms is not None else self._next_reset(now_ms)
            self._pause(until, orders_only=code == ORDER_LIMIT_CODE)
        elif status == 418:
            self._ban(retry_after_ms if retry_after_ms is not None else now_ms + self.config.default_ban_ms)

    # ------------------------------------------------------------------ metrics

    def state(self, now_ms: int) -> BudgetState:
        windows = []
        for window in self._windows:
            window.roll(now_ms)
            windows.append(
                WindowState(
                    suffix=window.spec.suffix,
                    used=window.used,
                    limit=window.spec.limit,
                    effective_limit=window.effective,
                    resets_at_ms=window.start + window.spec.window_ms,
                )
            )
        first = windows[0]
        return BudgetState(
            used=first.used,
            limit=first.limit,
            effective_limit=first.effective_limit,
            paused_until_ms=self._paused_until if now_ms < self._paused_until else None,
            orders_paused_until_ms=self._orders_paused_until if now_ms < self._orders_paused_until else None,
            banned_until_ms=self._banned_until if now_ms < self._banned_until else None,
            throttled=self._throttled,
            rate_limited=self._rate_limited,
            bans=self._bans,
            header_corrections=self._corrections,
            windows=tuple(windows),
        )


def _parse_int(value: str | None) -> int | None:
    """A non-negative decimal header value, or None."""
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None
