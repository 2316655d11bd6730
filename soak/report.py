"""The soak's figures, its goals and its Markdown report; pure (the runner gathers the inputs)."""

from __future__ import annotations

import itertools
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
class RssSample:
    at_s: float  # seconds since the load started
    pid: int
    kb: int


@dataclass(frozen=True)
class RssTrend:
    start_kb: int
    peak_kb: int
    end_kb: int
    slope_kb_per_min: float | None  # least squares over the second half of the run, last process only


def rss_trend(samples: Sequence[RssSample]) -> RssTrend | None:
    """Start, peak and end, and the growth rate over the second half of the run of the process that
    was running at the end (a restarted process starts again from its own baseline)."""
    if not samples:
        return None
    last = samples[-1]
    tail = [s for s in samples if s.pid == last.pid and s.at_s >= last.at_s / 2]
    slope = None
    if len(tail) >= 3 and tail[-1].at_s - tail[0].at_s >= 30:
        mean_t = sum(s.at_s for s in tail) / len(tail)
        mean_kb = sum(s.kb for s in tail) / len(tail)
        spread = sum((s.at_s - mean_t) ** 2 for s in tail)
        slope = sum((s.at_s - mean_t) * (s.kb - mean_kb) for s in tail) / spread * 60
    return RssTrend(samples[0].kb, max(s.kb for s in samples), last.kb, slope)


@dataclass(frozen=True)
class CpuSample:
    at_s: float  # seconds since the load started
    pid: int
    cpu_s: float  # user + system CPU seconds the process (and its children) used since it started


def cpu_by_window(samples: Sequence[CpuSample], window_s: float) -> dict[int, float]:
    """Window index -> cores used on average over the time sampled in it (1.0: one core all the
    time), from the CPU seconds between consecutive samples of the same process (a restart starts
    a new count). An interval counts in the window it ends in."""
    used: dict[int, list[float]] = {}  # window -> [CPU seconds, seconds covered]
    for before, after in itertools.pairwise(samples):
        if after.pid == before.pid and after.at_s > before.at_s:
            window = used.setdefault(int(after.at_s // window_s), [0.0, 0.0])
            window[0] += max(0.0, after.cpu_s - before.cpu_s)
            window[1] += after.at_s - before.at_s
    return {w: cpu / covered for w, (cpu, covered) in used.items()}


def mean_by_window(samples: Sequence[tuple[float, float]], window_s: float) -> dict[int, float]:
    """Window index -> the mean of the values sampled in it, from (at_s, value) pairs."""
    sums: dict[int, list[float]] = {}
    for at_s, value in samples:
        acc = sums.setdefault(int(at_s // window_s), [0.0, 0.0])
        acc[0] += value
        acc[1] += 1
    return {window: total / n for window, (total, n) in sums.items()}


def max_by_window(samples: Sequence[tuple[float, float]], window_s: float) -> dict[int, float]:
    """Window index -> the largest value sampled in it, from (at_s, value) pairs."""
    out: dict[int, float] = {}
    for at_s, value in samples:
        window = int(at_s // window_s)
        out[window] = max(out.get(window, 0.0), value)
    return out


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
    user_clients: int
    user_checked: int  # (order, client) pairs whose events a trusting client had to see
    user_missed: Sequence[str]  # events a trusting client never saw, with no notice
    user_notices: int  # "disconnected"/"lagged" status frames seen by /ws/user clients
    user_reconnects: int
    balance_mismatches: Sequence[str]  # provider or /ws/user balances that differ from the venue's at the end
    open_orders_mismatch: Sequence[str]  # the provider's open orders vs the venue's at the end
    slow_client_closes: Mapping[str, int]  # how the gateway ended the slow clients' connections
    orders_sent: int
    orders_by_route: Mapping[str, int]
    orders_confirmed: int
    orders_uncertain: int
    orders_refused: int
    orders_duplicated: int
    orders_unresolved: int
    order_errors: Mapping[str, int]
    recoveries: Sequence[tuple[str, float | None]]  # (SoakFault value, seconds or None)
    rss: Mapping[str, Sequence[RssSample]]  # process -> samples through the run
    rest: Latencies
    mcp: Latencies
    cpu: Mapping[str, Sequence[CpuSample]] = field(default_factory=dict)  # process ("soak": this one) -> samples
    loop_lag: Sequence[tuple[float, float]] = ()  # (at_s, s): how late the soak's own loop woke a timer
    marks: Mapping[str, float] = field(default_factory=dict)  # process action -> seconds since the load started
    in_sync: Sequence[tuple[float, float]] = ()  # (at_s, the provider's books in sync), every scrape
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
            (len(self.user_missed), "user events missed by a /ws/user client without a notice"),
            (len(self.balance_mismatches), "balances that differ from the venue's at the end"),
            (len(self.open_orders_mismatch), "open orders of the provider that differ from the venue's"),
            (self.excess_bans, "418 bans caused by the provider"),
            (self.unrecovered, f"faults not recovered from within {RECOVERY_LIMIT_S:.0f} s"),
        ]
        out = [f"{what}: {count}" for count, what in goals if count]
        if self.grpc_compared == 0 or self.ws_compared == 0:
            out.append("no audit comparison made: the run proved nothing")
        if self.orders_confirmed == 0:
            out.append("no order was placed")
        if self.user_clients and self.user_checked == 0:
            out.append("no user event was checked: the user audit proved nothing")
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
        "Fault to recovery (book faults: the audited book back in sync and matching the venue; "
        "order_unknown and clock_shift: the next order confirmed; user_terminate: a /ws/user client "
        f"trusting its stream again): p50 "
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
        f"- Slow depth clients (tiny receive buffer, one frame read per 0.2 s): {f.ws_lagged} lagged notices; "
        "connections ended by the gateway, by close code: "
        + (", ".join(f"{k} {v}" for k, v in sorted(f.slow_client_closes.items())) or "none")
        + ".",
        f"- /ws/user: {f.user_clients} clients, {f.user_checked} (order, client) pairs checked, "
        f"{len(f.user_missed)} events missed without a notice; {f.user_notices} disconnected/lagged notices, "
        f"{f.user_reconnects} reconnects.",
        *(f"  - missed: {m}" for m in f.user_missed[:20]),
        f"- Balances at the end (provider via gateway_http, and every trusting /ws/user client, vs the venue): "
        f"{len(f.balance_mismatches)} mismatches.",
        *(f"  - {m}" for m in f.balance_mismatches[:20]),
        f"- Open orders at the end (provider vs venue): {len(f.open_orders_mismatch)} mismatches.",
        *(f"  - {m}" for m in f.open_orders_mismatch[:20]),
        "",
        "## Orders",
        "",
        f"Sent {f.orders_sent} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(f.orders_by_route.items()))
        + f"; confirmed {f.orders_confirmed}, outcome unknown at first {f.orders_uncertain}, "
        f"refused {f.orders_refused}); duplicated {f.orders_duplicated}; unresolved {f.orders_unresolved}. "
        "Errors: " + (", ".join(f"{k} {v}" for k, v in sorted(f.order_errors.items())) or "none") + ".",
        "",
        "## Resident memory (VmRSS)",
        "",
        "Sampled every 5 s. Growth: least-squares slope over the second half of the run, of the process "
        "running at the end (the provider and gateway_http are restarted mid-run).",
        "",
        "| process | start | peak | end | growth, second half |",
        "|---|---|---|---|---|",
        *(_rss_row(name, rss_trend(samples)) for name, samples in sorted(f.rss.items())),
        "",
        *_load_section(f),
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


LOAD_WINDOW_S = 60.0


def _load_section(f: SoakFigures) -> list[str]:
    """Cores used by each process, and the soak's own loop lag, minute by minute: whether a slow
    stretch was the system under test or the machine (and the soak itself) out of CPU."""
    if not f.cpu:
        return []
    names = sorted(f.cpu)
    cpu = {name: cpu_by_window(f.cpu[name], LOAD_WINDOW_S) for name in names}
    lag = max_by_window(f.loop_lag, LOAD_WINDOW_S)
    in_sync = mean_by_window(f.in_sync, LOAD_WINDOW_S)
    windows = sorted({w for per in cpu.values() for w in per} | set(lag))
    marks: dict[int, list[str]] = {}
    for what, at_s in f.marks.items():
        marks.setdefault(int(at_s // LOAD_WINDOW_S), []).append(what)
    lines = [
        "## Machine load",
        "",
        "Cores used by each process (its children included), averaged over each minute of the load; the "
        "soak's own loop lag is the longest a 50 ms timer of its event loop fired late in that minute; and the "
        "provider's books in sync, on average over its scrapes (every 0.5 s) in that minute.",
        "",
        "| minute | " + " | ".join(names) + " | total | soak loop lag | books in sync, mean | |",
        "|---|" + "---|" * (len(names) + 4),
    ]
    for w in windows:
        shares = [cpu[name].get(w) for name in names]
        total = sum(x for x in shares if x is not None)
        cells = " | ".join("n/a" if x is None else f"{x:.2f}" for x in shares)
        late = lag.get(w)
        fewest = in_sync.get(w)
        lines.append(
            f"| {w + 1} | {cells} | {total:.2f} | {'n/a' if late is None else f'{late * 1000:.0f} ms'} | "
            f"{'n/a' if fewest is None else f'{fewest:.0f}'} | "
            f"{', '.join(marks.get(w, []))} |"
        )
    return [*lines, ""]


def _rss_row(name: str, trend: RssTrend | None) -> str:
    if trend is None:
        return f"| {name} | n/a | n/a | n/a | n/a |"
    slope = "n/a" if trend.slope_kb_per_min is None else f"{trend.slope_kb_per_min / 1024:+.2f} MiB/min"
    return f"| {name} | {_kb(trend.start_kb)} | {_kb(trend.peak_kb)} | {_kb(trend.end_kb)} | {slope} |"


def _kb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 1024:.1f} MiB"
