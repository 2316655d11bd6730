"""The simulator's fault plan: which test-only faults are armed, what each injected answer looks like,
and how many of each were injected. Pure: no sockets, no asyncio; the wall clock is read only by
`SimClock.now_ms` (the one clock of the whole simulator, shifted by the clock fault).

Who calls what:

* the REST endpoint wrapper (`exchange_sim.wire.rest.endpoint`) calls `FaultPlan.take_rest(path)` on
  every call and answers with `rest_fault_answer` (None means the TIMEOUT fault: hold, never answer);
* the order endpoints (REST ``POST /api/v3/order``, WS API ``order.place``) call
  `FaultPlan.take_order_unknown()` right after the order executed; True means answer
  `ORDER_UNKNOWN` (HTTP/WS status 503, -1007) instead of the real result;
* REST ``POST /api/v3/order`` then calls `FaultPlan.take_order_slow()`: seconds to hold the real
  answer of the order that just executed (a venue slow to answer; the caller may give up first);
* the WS API registers with `FaultPlan.on_user_terminate(callback)`: the callback ends every user-data
  subscription it serves by sending ``{"subscriptionId":N,"event":{"e":"eventStreamTerminated",
  "E":<ms>}}`` and returns how many it ended; `FaultPlan.terminate_user_streams()` calls them all;
* everything that needs "now" (serverTime, event times, timestamp/recvWindow checks) reads
  `FaultPlan.clock.now_ms()`;
* the control API (`exchange_sim.wire.control`) arms faults, reads `counters()`, calls `reset()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Final

import orjson

log = logging.getLogger("exchange_sim.faults")

DEFAULT_RETRY_AFTER_S: Final = 60
DEFAULT_TIMEOUT_HOLD_S: Final = 300.0  # longer than any sane client timeout; released at shutdown
WEIGHT_LIMIT_TEXT: Final = "6000 request weight per 1 MINUTE"


class FaultKind(StrEnum):
    """Every fault the plan counts; the values are the keys of `counters()["injected"]`."""

    WS_DISCONNECT = "ws_disconnect"
    WS_GAP = "ws_gap"
    WS_REORDER = "ws_reorder"
    WS_STALL = "ws_stall"
    WS_STOP_PINGS = "ws_stop_pings"
    WS_RESUME_PINGS = "ws_resume_pings"
    WS_IGNORE_PONGS = "ws_ignore_pongs"
    WS_SERVER_SHUTDOWN = "ws_server_shutdown"
    USER_TERMINATE = "user_terminate"
    REST_429 = "rest_429"
    REST_418 = "rest_418"
    REST_403 = "rest_403"
    REST_500 = "rest_500"
    REST_503 = "rest_503"
    REST_TIMEOUT = "rest_timeout"
    ORDER_UNKNOWN = "order_unknown"
    ORDER_SLOW = "order_slow"
    CLOCK_SHIFT = "clock_shift"
    PATTERN_QUOTE_STUFFING = "pattern_quote_stuffing"
    PATTERN_ICEBERG = "pattern_iceberg"
    PATTERN_FLASH_CRASH = "pattern_flash_crash"


class RestFault(Enum):
    """What an armed REST fault answers. The value is the HTTP status (None: no answer at all)."""

    TOO_MANY_REQUESTS = 429
    BANNED = 418
    WAF_BLOCKED = 403
    INTERNAL_ERROR = 500
    SERVICE_UNAVAILABLE = 503
    TIMEOUT = None

    @property
    def kind(self) -> FaultKind:
        return _REST_KINDS[self]


_REST_KINDS: Final = {
    RestFault.TOO_MANY_REQUESTS: FaultKind.REST_429,
    RestFault.BANNED: FaultKind.REST_418,
    RestFault.WAF_BLOCKED: FaultKind.REST_403,
    RestFault.INTERNAL_ERROR: FaultKind.REST_500,
    RestFault.SERVICE_UNAVAILABLE: FaultKind.REST_503,
    RestFault.TIMEOUT: FaultKind.REST_TIMEOUT,
}


class ErrorBody(StrEnum):
    """Body of a 5xx fault: Binance's JSON error, a gateway's HTML page, or nothing."""

    JSON = "json"
    HTML = "html"
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class BinanceError:
    """An error answer: HTTP status (WS API ``status``), Binance code and message."""

    status: int
    code: int
    msg: str

    def to_json(self) -> dict[str, int | str]:
        return {"code": self.code, "msg": self.msg}


# §4.6: the order executed but the answer says its execution status is unknown.
ORDER_UNKNOWN: Final = BinanceError(
    503, -1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
)
# §4.6 / §5.1: the 5xx answers' JSON bodies (the exact status per code is not pinned by the docs).
_INTERNAL_ERROR: Final = BinanceError(
    500, -1006, "An unexpected response was received from the message bus. Execution status unknown."
)
_SERVER_BUSY: Final = BinanceError(
    503, -1008, "Server is currently overloaded with other requests. Please try again in a few minutes."
)


@dataclass(frozen=True, slots=True)
class RestFaultRule:
    """An armed REST fault: answers the next `remaining` calls whose path starts with `path_prefix`."""

    fault: RestFault
    remaining: int
    path_prefix: str | None = None
    retry_after_s: int = DEFAULT_RETRY_AFTER_S
    body: ErrorBody = ErrorBody.JSON
    hold_s: float = DEFAULT_TIMEOUT_HOLD_S

    def matches(self, path: str) -> bool:
        return self.path_prefix is None or path.startswith(self.path_prefix)


@dataclass(frozen=True, slots=True)
class FaultAnswer:
    """A ready HTTP answer of an injected REST fault."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    binance_headers: bool = True
    """Whether Binance's own headers (X-MBX-USED-WEIGHT-*) go with it: not on a gateway's HTML page."""


def rest_fault_answer(rule: RestFaultRule, now_ms: int) -> FaultAnswer | None:
    """The answer Binance gives for `rule` (§4.3, §4.6); None for TIMEOUT (hold and never answer)."""
    fault = rule.fault
    if fault is RestFault.TIMEOUT:
        return None
    retry = {"Retry-After": str(rule.retry_after_s)}
    if fault is RestFault.TOO_MANY_REQUESTS:
        msg = (
            f"Too much request weight used; current limit is {WEIGHT_LIMIT_TEXT}. "
            "Please use WebSocket Streams for live updates to avoid polling the API."
        )
        return _json_answer(BinanceError(429, -1003, msg), retry)
    if fault is RestFault.BANNED:
        until = now_ms + rule.retry_after_s * 1000
        msg = (
            f"Way too much request weight used; IP banned until {until}. "
            "Please use WebSocket Streams for live updates to avoid bans."
        )
        return _json_answer(BinanceError(418, -1003, msg), retry)
    if fault is RestFault.WAF_BLOCKED:  # the WAF answers before the API: an HTML page, no Binance headers
        return FaultAnswer(403, _html(403, "Forbidden"), "text/html", binance_headers=False)
    error = _INTERNAL_ERROR if fault is RestFault.INTERNAL_ERROR else _SERVER_BUSY
    if rule.body is ErrorBody.JSON:
        return _json_answer(error, {})
    reason = "Internal Server Error" if error.status == 500 else "Service Unavailable"
    body = _html(error.status, reason) if rule.body is ErrorBody.HTML else b""
    return FaultAnswer(error.status, body, "text/html", binance_headers=False)


def _json_answer(error: BinanceError, headers: dict[str, str]) -> FaultAnswer:
    return FaultAnswer(error.status, orjson.dumps(error.to_json()), "application/json", headers)


def _html(status: int, reason: str) -> bytes:
    return f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>".encode()


class SimClock:
    """The simulator's one clock: wall time plus an offset the clock fault sets (ms)."""

    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms


UserTerminateHook = Callable[[], int]
"""Ends every user-data subscription its owner serves (sending eventStreamTerminated); returns how many."""


class FaultPlan:
    """What is armed, and counts of what was injected. Off until the control API arms something."""

    def __init__(self, clock: SimClock | None = None) -> None:
        self.clock = clock or SimClock()
        self.injected: dict[FaultKind, int] = dict.fromkeys(FaultKind, 0)
        self.armed: dict[FaultKind, int] = dict.fromkeys(FaultKind, 0)
        self._rest: list[RestFaultRule] = []
        self._order_unknown = 0
        self._order_slow = 0
        self._order_slow_hold_s = 0.0
        self._user_hooks: list[UserTerminateHook] = []

    # ---- arming (control API)

    def arm(self, kind: FaultKind) -> None:
        """Count a fault the caller applies itself (the stream faults live in the hub)."""
        self.armed[kind] += 1

    def arm_rest(self, rule: RestFaultRule) -> None:
        if rule.remaining < 1:
            raise ValueError("count must be at least 1")
        self._rest.append(rule)
        self.armed[rule.fault.kind] += 1

    def arm_order_unknown(self, count: int) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self._order_unknown += count
        self.armed[FaultKind.ORDER_UNKNOWN] += 1

    def arm_order_slow(self, count: int, hold_s: float) -> None:
        """The next `count` REST placements execute, then answer only after `hold_s` seconds (arming
        again adds to the count and sets the hold for every placement still to come)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        if hold_s <= 0:
            raise ValueError("hold_seconds must be above 0")
        self._order_slow += count
        self._order_slow_hold_s = hold_s
        self.armed[FaultKind.ORDER_SLOW] += 1

    def shift_clock(self, offset_ms: int) -> None:
        """Set (not add to) the server clock's offset from wall time."""
        self.clock.offset_ms = offset_ms
        self.armed[FaultKind.CLOCK_SHIFT] += 1

    def reset(self) -> None:
        """Disarm every fault and put the clock back; the counts are kept."""
        self._rest.clear()
        self._order_unknown = 0
        self._order_slow = 0
        self.clock.offset_ms = 0

    # ---- consulted by the endpoints

    def take_rest(self, path: str) -> RestFaultRule | None:
        """The armed fault that answers this call (counted as injected), or None. Oldest rule first."""
        if not self._rest:
            return None
        for i, rule in enumerate(self._rest):
            if rule.matches(path):
                if rule.remaining <= 1:
                    del self._rest[i]
                else:
                    self._rest[i] = RestFaultRule(
                        rule.fault, rule.remaining - 1, rule.path_prefix, rule.retry_after_s, rule.body, rule.hold_s
                    )
                self.injected[rule.fault.kind] += 1
                return rule
        return None

    def take_order_unknown(self) -> bool:
        """True if this (already executed) order placement must answer `ORDER_UNKNOWN`."""
        if self._order_unknown <= 0:
            return False
        self._order_unknown -= 1
        self.injected[FaultKind.ORDER_UNKNOWN] += 1
        return True

    def take_order_slow(self) -> float:
        """Seconds to hold the answer of this (already executed) REST placement; 0.0 to answer now."""
        if self._order_slow <= 0:
            return 0.0
        self._order_slow -= 1
        self.injected[FaultKind.ORDER_SLOW] += 1
        return self._order_slow_hold_s

    # ---- user-data termination hook (the WS API subscribes)

    def on_user_terminate(self, hook: UserTerminateHook) -> Callable[[], None]:
        """Register `hook`; returns a function that removes it (call it when its owner stops)."""
        self._user_hooks.append(hook)

        def remove() -> None:
            if hook in self._user_hooks:
                self._user_hooks.remove(hook)

        return remove

    def terminate_user_streams(self) -> int:
        """Ask every registered WS API to end its user-data subscriptions; how many were ended."""
        self.armed[FaultKind.USER_TERMINATE] += 1
        ended = 0
        for hook in list(self._user_hooks):
            try:
                ended += hook()
            except Exception:
                log.exception("user-data terminate hook failed")
        self.injected[FaultKind.USER_TERMINATE] += ended
        return ended

    def record(self, kind: FaultKind, count: int = 1) -> None:
        """Count faults injected by someone else (the hub's stream faults)."""
        self.injected[kind] += count

    # ---- reporting

    @property
    def pending_rest(self) -> tuple[RestFaultRule, ...]:
        return tuple(self._rest)

    @property
    def pending_order_unknown(self) -> int:
        return self._order_unknown

    def counters(self) -> dict[str, object]:
        return {
            "armed": {str(k): v for k, v in self.armed.items()},
            "injected": {str(k): v for k, v in self.injected.items()},
            "pending": {
                "rest": [
                    {
                        "status": r.fault.value if r.fault.value is not None else "timeout",
                        "count": r.remaining,
                        "path": r.path_prefix,
                    }
                    for r in self._rest
                ],
                "order_unknown": self._order_unknown,
            },
            "clock_offset_ms": self.clock.offset_ms,
        }
