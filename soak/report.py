"""The soak's figures, its goals and its Markdown report; pure (the runner gathers the inputs)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from soak.auditor import Compared, Comparison
from soak.faults import SoakFault

VOID_WAIT_S = 5.0  # a fault that voids no audited copy within this long is timed to the first match
RECOVERY_LIMIT_S = 60.0  # a fault not recovered from within this long is unrecovered


class CounterTotals:
    """Prometheus counters summed across restarts: a value lower than the last one means the process
    started again from 0, so what it had counted before is kept."""

    def __init__(self) -> None:
        self._base: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def observe(self, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            last = self._last.get(name, 0.0)
            if value < last:
                self._base[name] = self._base.get(name, 0.0) + last
            self._last[name] = value

    def total(self, name: str) -> float:
        return self._base.get(name, 0.0) + self._last.get(name, 0.0)

    def total_of(self, prefix: str) -> float:
        """Sum over every labelled series of a family, e.g. `provider_book_resyncs_total{`."""
        names = set(self._base) | set(self._last)
        return sum(self.total(n) for n in names if n == prefix or n.startswith(prefix + "{"))


def parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with_value = value.strip()
            if name and with_value:
                try:
                    out[name] = float(with_value)
                except ValueError:
                    continue
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class InjectedFault:
    at: float  # monotonic time of injection
    kind: SoakFault
    symbol: str


def recovery_time(fault: InjectedFault, voids: Sequence[float], comparisons: Iterable[Comparison]) -> float | None:
    """Seconds from the fault until the audited copy of its symbol matched the venue again, counting
    only matches of venue books fetched after the copy was last voided because of the fault (after
    the fault itself when no void followed within VOID_WAIT_S). None: not recovered."""
    void_after = [v for v in voids if fault.at <= v <= fault.at + VOID_WAIT_S]
    # The last void of the burst that followed the fault: recovery is counted from after it.
    since = fault.at
    for v in void_after:
        since = v
    for comparison in comparisons:
        if comparison.outcome is Compared.MATCH and comparison.fetched_at >= since:
            took = comparison.done_at - fault.at
            return took if took <= RECOVERY_LIMIT_S else None
    return None


@dataclass(frozen=True)
class Latencies:
    quiet_p99_s: float | None
    faults_p99_s: float | None
    quiet_n: int
    faults_n: int
    failed: int


@dataclass(frozen=True)
class SoakFigures:
    command: str
    profile: str
    seed: int
    duration_s: float
    symbols: int
    ws_clients: int
    slow_clients: int
    injected: Mapping[str, int]  # the simulator's counters, by its FaultKind value
    scheduled: Mapping[str, int]  # by SoakFault
    resyncs: float
    reconnects: float
    gaps: float
    watchdog_trips: float
    provider_bans: float
    injected_bans: int
    grpc_compared: int
    grpc_diverged: int
    grpc_continuity_breaks: int
    ws_compared: int
    ws_diverged: int
    ws_notices: int
    ws_lagged: int
    ws_reconnects: int
    ws_clients_broken: int  # saw a continuity break with no resync notice
    ws_diffs_while_void: int
    orders_sent: int
    orders_confirmed: int
    orders_uncertain: int
    orders_refused: int
    orders_duplicated: int
    orders_unresolved: int
    order_errors: Mapping[str, int]
    recoveries: Sequence[tuple[str, float | None]]  # (SoakFault value, seconds or None)
    rss_kb: Mapping[str, tuple[int | None, int | None]]  # process -> (start, end)
    rest: Latencies
    mcp: Latencies
    notes: Sequence[str] = field(default_factory=tuple)

    @property
    def unrecovered(self) -> int:
        return sum(1 for _, took in self.recoveries if took is None)

    @property
    def excess_bans(self) -> int:
        return max(0, int(self.provider_bans) - self.injected_bans)

    def violations(self) -> list[str]:
        goals = [
            (self.grpc_diverged, "gRPC books served in sync that diverged from the venue"),
            (self.ws_diverged, "WS depth books served in sync that diverged from the venue"),
            (self.grpc_continuity_breaks, "gRPC diffs that broke continuity with no void snapshot"),
            (self.ws_clients_broken, "WS clients that saw a continuity break without a resync notice"),
            (self.orders_duplicated, "orders placed twice (same client order id on the venue)"),
            (self.orders_unresolved, "orders unresolved at the end"),
            (self.excess_bans, "418 bans caused by the provider"),
            (self.unrecovered, f"faults not recovered from within {RECOVERY_LIMIT_S:.0f} s"),
        ]
        out = [f"{what}: {count}" for count, what in goals if count]
        if self.grpc_compared == 0 or self.ws_compared == 0:
            out.append("no audit comparison made: the run proved nothing")
        if self.orders_confirmed == 0:
            out.append("no order was placed")
        return out


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def render(f: SoakFigures) -> str:
    times = [took for _, took in f.recoveries if took is not None]
    lines = [
        "# Soak report",
        "",
        f"Command: `{f.command}`",
        "",
        f"Profile `{f.profile}`, seed {f.seed}, {f.duration_s:.0f} s, {f.symbols} symbols, "
        f"{f.ws_clients} WebSocket clients ({f.slow_clients} deliberately slow).",
        "",
        "## Goals",
        "",
    ]
    violations = f.violations()
    lines += [f"- VIOLATED: {v}" for v in violations] or ["- all goals met"]
    lines += [
        "",
        "## Faults",
        "",
        "| kind | scheduled |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in sorted(f.scheduled.items())),
        "",
        "Injected, by the simulator's counters: "
        + ", ".join(f"{k} {v}" for k, v in sorted(f.injected.items()) if v)
        + ".",
        "",
        f"Provider: {f.resyncs:.0f} book resyncs, {f.gaps:.0f} gaps detected, {f.reconnects:.0f} stream "
        f"reconnects, {f.watchdog_trips:.0f} watchdog trips; 418 answers {f.provider_bans:.0f} "
        f"(injected {f.injected_bans}, caused by the provider {f.excess_bans}).",
        "",
        f"Fault to recovery (audited book back in sync and matching the venue): p50 "
        f"{_s(percentile(times, 50))}, p99 {_s(percentile(times, 99))}, max {_s(max(times, default=None))}; "
        f"{f.unrecovered} of {len(f.recoveries)} not recovered.",
        "",
        "| fault | recovery |",
        "|---|---|",
        *(f"| {k} | {_s(v)} |" for k, v in f.recoveries),
        "",
        "## Audit",
        "",
        f"- gRPC StreamDepth: {f.grpc_compared} comparisons at shared update ids, {f.grpc_diverged} "
        f"divergences served as in sync, {f.grpc_continuity_breaks} continuity breaks.",
        f"- WS depth through gateway_http: {f.ws_compared} comparisons, {f.ws_diverged} divergences; "
        f"{f.ws_clients_broken} clients saw a continuity break without a resync notice; {f.ws_notices} "
        f"resync/lagged notices ({f.ws_lagged} lagged), {f.ws_reconnects} reconnects, "
        f"{f.ws_diffs_while_void} diffs received while void.",
        "",
        "## Orders",
        "",
        f"Sent {f.orders_sent} (confirmed {f.orders_confirmed}, outcome unknown at first {f.orders_uncertain}, "
        f"refused {f.orders_refused}); duplicated {f.orders_duplicated}; unresolved {f.orders_unresolved}. "
        "Errors: " + (", ".join(f"{k} {v}" for k, v in sorted(f.order_errors.items())) or "none") + ".",
        "",
        "## Resident memory (VmRSS)",
        "",
        "| process | start | end |",
        "|---|---|---|",
        *(f"| {name} | {_kb(start)} | {_kb(end)} |" for name, (start, end) in sorted(f.rss_kb.items())),
        "",
        "## Latency (p99)",
        "",
        "| client | quiet phase | under faults | failed |",
        "|---|---|---|---|",
        f"| REST via gateway_http | {_s(f.rest.quiet_p99_s)} (n={f.rest.quiet_n}) | "
        f"{_s(f.rest.faults_p99_s)} (n={f.rest.faults_n}) | {f.rest.failed} |",
        f"| MCP via gateway_mcp | {_s(f.mcp.quiet_p99_s)} (n={f.mcp.quiet_n}) | "
        f"{_s(f.mcp.faults_p99_s)} (n={f.mcp.faults_n}) | {f.mcp.failed} |",
    ]
    if f.notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in f.notes)]
    return "\n".join(lines) + "\n"


def _kb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 1024:.1f} MiB"
