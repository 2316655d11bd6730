"""The soak's fault schedule: which fault, when, on which symbol; pure and seeded (same seed, same run).

A fault is one or more calls to the simulator's ``/control`` API (see exchange_sim/wire/control.py),
or a process action (kill -9 of the provider, stop/start of gateway_http) that the runner performs.
REST faults on ``/api/v3/depth`` only bite when the provider fetches a snapshot, so each is paired
with a sequence gap on its symbol, which forces that fetch. Clock shifts only move the venue's clock
forward (each one a further `CLOCK_STEP_MS`, more than the provider's recvWindow, so its signed
requests are refused with -1021 until it re-measures the offset): a venue clock that went backwards
would also rewrite the market's own timestamps, which no real venue does.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

DEPTH_PATH = "/api/v3/depth"


class SoakFault(StrEnum):
    WS_DISCONNECT = "ws_disconnect"
    WS_GAP = "ws_gap"
    WS_STALL = "ws_stall"
    WS_SERVER_SHUTDOWN = "ws_server_shutdown"
    WS_REORDER = "ws_reorder"  # two depth diffs swapped: out of sequence
    REST_429 = "rest_429"
    REST_418 = "rest_418"
    REST_500 = "rest_500"
    REST_503 = "rest_503"
    REST_TIMEOUT = "rest_timeout"
    ORDER_UNKNOWN = "order_unknown"
    USER_TERMINATE = "user_terminate"  # eventStreamTerminated on the user-data subscription
    CLOCK_SHIFT = "clock_shift"  # the venue's clock jumps forward by CLOCK_STEP_MS
    PROVIDER_KILL = "provider_kill"  # kill -9, then start again
    GATEWAY_RESTART = "gateway_restart"  # gateway_http stopped, then started again


# Faults the simulator injects (the others are process actions of the runner).
CONTROL_FAULTS = tuple(f for f in SoakFault if f not in (SoakFault.PROVIDER_KILL, SoakFault.GATEWAY_RESTART))
# Faults felt by orders and the user-data stream rather than by a book: recovery is timed on those.
ORDER_FAULTS = (SoakFault.ORDER_UNKNOWN, SoakFault.CLOCK_SHIFT)
USER_FAULTS = (SoakFault.USER_TERMINATE,)
CLOCK_STEP_MS = 7_000  # more than the provider's 5,000 ms recvWindow


@dataclass(frozen=True)
class ControlCall:
    path: str  # under /control, e.g. "ws/gap"
    body: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Fault:
    at_s: float  # seconds after the start of the run
    kind: SoakFault
    symbol: str  # the symbol whose book shows the effect (recovery is timed on it)
    calls: tuple[ControlCall, ...]


@dataclass(frozen=True)
class ScheduleConfig:
    duration_s: float
    quiet_s: float  # no faults at first: the baseline for latencies
    settle_s: float  # no faults at the end: everything must recover before the final checks
    min_spacing_s: float  # between two faults
    stall_s: float  # the provider's stream stall watchdog (PROVIDER_STREAM_STALL_S)

    @staticmethod
    def for_duration(duration_s: float, stall_s: float) -> ScheduleConfig:
        quiet = max(15.0, duration_s * 0.15)
        settle = max(15.0, duration_s * 0.1)
        return ScheduleConfig(duration_s, quiet, settle, min_spacing_s=4.0, stall_s=stall_s)


def control_calls(kind: SoakFault, symbol: str, stall_s: float, clock_offset_ms: int = 0) -> tuple[ControlCall, ...]:
    """The control API calls that inject one fault of `kind` felt on `symbol`; a clock shift sets the
    venue's clock `clock_offset_ms` ahead of wall time."""
    gap = ControlCall("ws/gap", {"symbol": symbol, "count": 1})

    def on_depth(status: int | str, **extra: object) -> tuple[ControlCall, ...]:
        return ControlCall("rest", {"status": status, "count": 1, "path": DEPTH_PATH, **extra}), gap

    match kind:
        case SoakFault.WS_DISCONNECT:
            return (ControlCall("ws/disconnect", {"scope": "all"}),)
        case SoakFault.WS_GAP:
            return (gap,)
        case SoakFault.WS_STALL:
            return (ControlCall("ws/stall", {"seconds": stall_s * 2}),)
        case SoakFault.WS_SERVER_SHUTDOWN:
            return (ControlCall("ws/server_shutdown", {"grace": 1}),)
        case SoakFault.WS_REORDER:
            return (ControlCall("ws/reorder", {"symbol": symbol}),)
        case SoakFault.REST_429:
            return on_depth(429, retry_after=2)
        case SoakFault.REST_418:
            return on_depth(418, retry_after=3)
        case SoakFault.REST_500:
            return on_depth(500)
        case SoakFault.REST_503:
            return on_depth(503)
        case SoakFault.REST_TIMEOUT:
            return on_depth("timeout", hold_seconds=3)
        case SoakFault.ORDER_UNKNOWN:
            return (ControlCall("order_unknown", {"count": 1}),)
        case SoakFault.USER_TERMINATE:
            return (ControlCall("user/terminate"),)
        case SoakFault.CLOCK_SHIFT:
            return (ControlCall("clock", {"offset_ms": clock_offset_ms}),)
        case SoakFault.PROVIDER_KILL | SoakFault.GATEWAY_RESTART:
            return ()


def build_schedule(seed: int, config: ScheduleConfig, symbols: Sequence[str]) -> tuple[Fault, ...]:
    """Every control fault at least once, then random ones, spaced at least `min_spacing_s` apart in
    the window between the quiet start and the settling end; one provider kill and one gateway
    restart at fixed fractions of that window. Empty when the window cannot hold them all."""
    if not symbols:
        raise ValueError("at least one symbol is needed")
    rng = random.Random(seed)
    start, end = config.quiet_s, config.duration_s - config.settle_s
    slots = int((end - start) // config.min_spacing_s)
    needed = len(CONTROL_FAULTS) + 2
    if slots < needed:
        return ()
    kinds: list[SoakFault] = list(CONTROL_FAULTS)
    kinds += [rng.choice(CONTROL_FAULTS) for _ in range(slots - needed)]
    rng.shuffle(kinds)
    # Process actions at about 40 % and 70 % of the window: both well inside it, far apart.
    kinds.insert(int(slots * 0.4), SoakFault.PROVIDER_KILL)
    kinds.insert(int(slots * 0.7), SoakFault.GATEWAY_RESTART)
    faults = []
    clock_offset_ms = 0
    for slot, kind in enumerate(kinds):
        jitter = rng.uniform(0.0, config.min_spacing_s * 0.25)
        symbol = rng.choice(list(symbols))
        at = round(start + slot * config.min_spacing_s + jitter, 3)
        if kind is SoakFault.CLOCK_SHIFT:
            clock_offset_ms += CLOCK_STEP_MS
        faults.append(Fault(at, kind, symbol, control_calls(kind, symbol, config.stall_s, clock_offset_ms)))
    return tuple(faults)
