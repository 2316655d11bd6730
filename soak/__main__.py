"""`python -m soak --duration 120`: the whole system under load and a seeded fault schedule.

Starts simulator, provider and both gateways; runs WS clients, gRPC auditors, REST/MCP pollers and
an order loop while the schedule injects faults; prints the report, writes it to docs/soak.md and
exits 1 when any goal is violated (see soak/report.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from exchange_sim.accounts import DEMO_API_KEY, DEMO_API_SECRET
from exchange_sim.venue import TAPE_LENGTH
from gateway_auth.tokens import Scope, TokenStore
from launcher.processes import REPO_ROOT, child_pids, free_port
from launcher.system import Ports, System, build_system
from soak.auditor import AuditedBook, Compared, GrpcAuditor, audit_loop
from soak.clients import DepthClient, Poller, SlowDepthClient, TickerClient, UserClient, mcp_poll, rest_poll
from soak.faults import ORDER_FAULTS, USER_FAULTS, Fault, ScheduleConfig, SoakFault, build_schedule
from soak.orders import (
    GrpcRoute,
    HttpRoute,
    McpRoute,
    OrderLoop,
    OrderRoute,
    Placed,
    SentOrder,
    venue_balances,
    venue_orders,
)
from soak.report import (
    RECOVERY_LIMIT_S,
    CounterTotals,
    CpuSample,
    InjectedFault,
    Latencies,
    RssSample,
    SoakFigures,
    parse_metrics,
    percentile,
    recovery_time,
    render,
)
from soak.user_audit import DoneOrder, balance_mismatches, checked, missed, stream_recovery

STALL_S = 3.0  # the provider's stream watchdog in the soak (PROVIDER_STREAM_STALL_S)
ORDER_SYMBOL = "BTCUSDT"
USER_GRACE_S = 5.0  # after an order's cancel, for its last event to reach every /ws/user client
FINAL_CHECK_S = 20.0  # at the end, for events and balances to settle before they are judged
RSS_EVERY_S = 5.0  # memory and CPU samples
LAG_TIMER_S = 0.05
CLIENTS_PER_TOKEN = 10
# A smaller backlog than the default (256 frames, 64 KiB) so the slow clients, which read half as
# fast as depth diffs arrive, are lagged within a 2-minute run rather than after several minutes.
SOAK_WS_BACKLOG = "64,16384"
SLOW_READ_PAUSE_S = 0.2
# Real Binance data beside the synthetic market: the recorded ETHUSDT session (346 s) is replayed in
# place of ETHUSDT's synthetic flow, paced to last the whole run.
RECORDED_ETHUSDT = REPO_ROOT.parent / "shared" / "data" / "binance-recorded" / "hftbacktest_spot_ethusdt_20240808.gz"
RECORDED_SECONDS = 346.0
STARTUP_ALLOWANCE_S = 120.0  # the replay starts when the provider subscribes, before the load does


@dataclass(frozen=True)
class Profile:
    name: str
    symbols: int
    ws_clients: int  # in all: 60 % depth (slow ones among them), 10 % user, the rest ticker and bookTicker
    slow_clients: int
    audited: int  # symbols audited over gRPC and through one WS depth client each

    @property
    def user_clients(self) -> int:
        return self.ws_clients // 10


PROFILES = {
    "ci": Profile("ci", symbols=50, ws_clients=100, slow_clients=3, audited=5),
    "full": Profile("full", symbols=201, ws_clients=1000, slow_clients=10, audited=10),
}


def symbol_names(count: int) -> list[str]:
    """The three listed symbols, then generic ones (SKAAUSDT, SKABUSDT, ...) the simulator derives."""
    names = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    i = 0
    while len(names) < count:
        names.append(f"SK{letters[i // 26 % 26]}{letters[i % 26]}USDT")
        i += 1
    return names[:count]


def rss_kb(pid: int | None) -> int | None:
    if pid is None:
        return None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (utime and stime of /proc/<pid>/stat)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return None


T = TypeVar("T", int, float)


def with_children(system: System, read: Callable[[int], T | None], zero: T) -> dict[str, tuple[int, T]]:
    """process name -> (pid, `read` of it plus its live children's) for every running process: gateway_http
    with GATEWAY_HTTP_WORKERS > 1 is a supervisor whose workers hold the memory and use the CPU."""
    out = {}
    for p in system.processes:
        pid = p.popen.pid if p.popen is not None and p.running else None
        own = None if pid is None else read(pid)
        if pid is not None and own is not None:
            out[p.name] = (pid, sum((read(child) or zero for child in child_pids(pid)), own))
    return out


def process_cpu(system: System) -> dict[str, tuple[int, float]]:
    """process name -> (pid, CPU seconds), children included."""
    return with_children(system, cpu_seconds, 0.0)


def process_rss(system: System) -> dict[str, tuple[int, int]]:
    """process name -> (pid, VmRSS kB), children included."""
    return with_children(system, rss_kb, 0)


def done_orders(sent: list[SentOrder], on_venue: list[dict[str, Any]]) -> list[DoneOrder]:
    """Orders whose cancel was confirmed, with the execution reports the venue issued for them
    (NEW, then CANCELED: they rest far from the market, so they never trade)."""
    final = {o["clientOrderId"]: o["status"] for o in on_venue}
    return [
        DoneOrder(s.client_order_id, s.sent_at, s.settled_at, frozenset({"NEW", "CANCELED"}))
        for s in sent
        if s.settled_at is not None and final.get(s.client_order_id) == "CANCELED"
    ]


def bearer_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def order_recovery(fault: InjectedFault, sent: list[SentOrder]) -> float | None:
    """Seconds from the fault until an order sent after it was confirmed; None if none within the limit."""
    for order in sent:
        if order.sent_at >= fault.at and order.placed_at is not None:
            took = order.placed_at - fault.at
            return took if took <= RECOVERY_LIMIT_S else None
    return None


def latencies(poller: Poller, quiet_until: float, faults_until: float) -> Latencies:
    quiet = [s.latency_s for s in poller.samples if s.ok and s.at < quiet_until]
    faulty = [s.latency_s for s in poller.samples if s.ok and quiet_until <= s.at < faults_until]
    failed = sum(1 for s in poller.samples if not s.ok)
    return Latencies(percentile(quiet, 99), percentile(faulty, 99), len(quiet), len(faulty), failed)


@dataclass(frozen=True)
class SoakTokens:
    """Bearer tokens as real clients hold them: each token is shared by at most CLIENTS_PER_TOKEN
    WebSocket clients, so the gateway's per-token rate limit meets the load of a few clients, not of
    all of them (a thousand clients reconnecting after a restart on one token would be throttled for
    a minute, and rightly so). The pollers and the order flow have tokens of their own."""

    readers: tuple[str, ...]
    accounts: tuple[str, ...]
    poller: str
    trade: str

    def read(self, i: int) -> str:
        return self.readers[i % len(self.readers)]

    def account(self, i: int) -> str:
        return self.accounts[i % len(self.accounts)]

    @staticmethod
    def issue(profile: Profile) -> tuple[TokenStore, SoakTokens]:
        store = TokenStore()

        def one(name: str, scope: Scope) -> str:
            nonlocal store
            store, token = store.issue(name, frozenset({scope}))
            return token

        readers = tuple(one(f"soak-read-{i}", Scope.READ) for i in range(-(-profile.ws_clients // CLIENTS_PER_TOKEN)))
        accounts = tuple(
            one(f"soak-account-{i}", Scope.ACCOUNT) for i in range(-(-profile.user_clients // CLIENTS_PER_TOKEN))
        )
        tokens = SoakTokens(readers, accounts, one("soak-poller", Scope.READ), one("soak-trade", Scope.TRADE))
        return store, tokens


class Soak:
    def __init__(self, system: System, profile: Profile, seed: int, duration_s: float, tokens: SoakTokens):
        self.system, self.profile, self.seed, self.duration_s = system, profile, seed, duration_s
        self.tokens = tokens
        self.rss: dict[str, list[RssSample]] = {}
        self.cpu: dict[str, list[CpuSample]] = {}
        self.loop_lag: list[tuple[float, float]] = []
        self.marks: dict[str, float] = {}
        self.in_sync: list[tuple[float, float]] = []
        self.started = 0.0  # monotonic time the load started
        self.symbols = symbol_names(profile.symbols)
        self.audited_symbols = self.symbols[: profile.audited]
        self.totals = CounterTotals()
        self.injected: list[InjectedFault] = []
        self.notes: list[str] = []
        self.tasks: list[asyncio.Task[None]] = []
        ports = system.ports
        self.provider_addr = f"127.0.0.1:{ports.provider}"
        self.sim_url, self.http_url = f"http://127.0.0.1:{ports.sim}", f"http://127.0.0.1:{ports.http}"
        self.metrics_url = f"http://127.0.0.1:{ports.metrics}/metrics"

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(coroutine))

    async def scrape(self, http: aiohttp.ClientSession) -> dict[str, float]:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(self.metrics_url) as response:
                values = parse_metrics(await response.text())
                self.totals.observe(values)
                if self.started and "provider_symbols_in_sync" in values:
                    self.in_sync.append((time.monotonic() - self.started, values["provider_symbols_in_sync"]))
                return values
        return {}

    async def scrape_loop(self, http: aiohttp.ClientSession) -> None:
        while True:
            await self.scrape(http)
            await asyncio.sleep(0.5)

    def sample_processes(self, started: float) -> None:
        at = time.monotonic() - started
        for name, (pid, kb) in process_rss(self.system).items():
            self.rss.setdefault(name, []).append(RssSample(at, pid, kb))
        for name, (pid, used) in process_cpu(self.system).items():
            self.cpu.setdefault(name, []).append(CpuSample(at, pid, used))
        self.cpu.setdefault("soak", []).append(CpuSample(at, os.getpid(), time.process_time()))

    async def sample_loop(self, started: float) -> None:
        while True:
            await asyncio.sleep(RSS_EVERY_S)
            self.sample_processes(started)

    async def lag_loop(self, started: float) -> None:
        """How late this process's own event loop runs a timer: the soak's clients and auditors
        share it, so a late loop delays what they measure."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(LAG_TIMER_S)
            after = time.monotonic()
            self.loop_lag.append((after - started, max(0.0, after - before - LAG_TIMER_S)))

    async def wait_in_sync(self, http: aiohttp.ClientSession, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (await self.scrape(http)).get("provider_symbols_in_sync", 0) < len(self.symbols):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the provider's {len(self.symbols)} books not all in sync within {timeout:.0f} s")
            await asyncio.sleep(0.5)

    async def control(self, sim: aiohttp.ClientSession, fault: Fault) -> None:
        for call in fault.calls:
            async with sim.post(f"/control/{call.path}", json=call.body) as response:
                if response.status != 200:
                    self.notes.append(f"control {call.path} {call.body} answered {response.status}")

    async def rest_fault_taken(self, sim: aiohttp.ClientSession, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            async with sim.get("/control/counters") as response:
                if not (await response.json())["pending"]["rest"]:
                    return True
            await asyncio.sleep(0.05)
        return False

    async def inject(self, sim: aiohttp.ClientSession, fault: Fault) -> None:
        self.injected.append(InjectedFault(time.monotonic(), fault.kind, fault.symbol))
        await self.control(sim, fault)
        if any(call.path == "rest" for call in fault.calls) and not await self.rest_fault_taken(sim, 30):
            self.notes.append(f"{fault.kind.value} at {fault.at_s} s was never met by the provider")
        if fault.kind in (SoakFault.PROVIDER_KILL, SoakFault.GATEWAY_RESTART):
            self.marks[fault.kind.value] = time.monotonic() - self.started
        if fault.kind is SoakFault.PROVIDER_KILL:
            provider = self.system.process("provider")
            await asyncio.to_thread(provider.kill)
            await asyncio.to_thread(provider.stop)  # reaps it and closes its log
            provider.start()
            await asyncio.to_thread(provider.wait_ready, 60.0)
        elif fault.kind is SoakFault.GATEWAY_RESTART:
            gateway = self.system.process("gateway_http")
            code = await asyncio.to_thread(gateway.stop)
            if code != 0:
                self.notes.append(f"gateway_http exited with {code} when stopped mid-run")
            gateway.start()
            await asyncio.to_thread(gateway.wait_ready, 60.0)

    async def fault_runner(self, sim: aiohttp.ClientSession, schedule: tuple[Fault, ...], started: float) -> None:
        for fault in schedule:
            await asyncio.sleep(max(0.0, started + fault.at_s - time.monotonic()))
            await self.inject(sim, fault)

    async def run(self, command: str) -> tuple[SoakFigures, str]:
        profile = self.profile
        timeout = aiohttp.ClientTimeout(total=20)
        connector = aiohttp.TCPConnector(limit=0)
        ports = self.system.ports
        async with (
            aiohttp.ClientSession(self.sim_url, timeout=timeout) as sim,
            aiohttp.ClientSession(self.http_url, timeout=timeout, connector=connector) as gateway,
            aiohttp.ClientSession(timeout=timeout) as plain,
        ):
            await self.wait_in_sync(plain, 120)
            config = ScheduleConfig.for_duration(self.duration_s, STALL_S)
            schedule = build_schedule(self.seed, config, self.audited_symbols)
            if not schedule:
                raise SystemExit(f"{self.duration_s:.0f} s is too short to hold every fault; give at least 120")
            grpc_books = [GrpcAuditor(s, self.provider_addr) for s in self.audited_symbols]
            tokens = self.tokens
            ws_audited = [DepthClient(s, tokens.read(i), audited=True) for i, s in enumerate(self.audited_symbols)]
            depth = int(profile.ws_clients * 0.6)
            slow = [
                SlowDepthClient(self.symbols[i % len(self.symbols)], tokens.read(i), pause_s=SLOW_READ_PAUSE_S)
                for i in range(profile.slow_clients)
            ]
            ws_depth: list[DepthClient] = ws_audited + [
                DepthClient(self.symbols[i % len(self.symbols)], tokens.read(i), audited=False)
                for i in range(depth - len(ws_audited) - len(slow))
            ]
            users = [UserClient(tokens.account(i)) for i in range(profile.user_clients)]
            tickers = [
                TickerClient("ticker" if i % 2 else "bookTicker", self.symbols[i % len(self.symbols)], tokens.read(i))
                for i in range(profile.ws_clients - depth - len(users))
            ]
            rest = Poller("rest")
            mcp = Poller("mcp")
            mcp_url = f"http://127.0.0.1:{ports.mcp}/mcp"
            errors: Counter[str] = Counter()
            routes: list[OrderRoute] = [
                HttpRoute(gateway, tokens.trade, errors),
                McpRoute(plain, mcp_url, tokens.trade, errors),
                GrpcRoute(self.provider_addr, errors),
            ]
            orders = OrderLoop(routes, sim, ORDER_SYMBOL, f"soak{self.seed}x{int(time.time())}n")
            started = self.started = time.monotonic()
            self.sample_processes(started)
            for book in grpc_books:
                self.spawn(book.run())
            for client in ws_depth:
                self.spawn(client.run(gateway))
            for slow_client in slow:
                self.spawn(slow_client.run_slow("127.0.0.1", ports.http))
            for user in users:
                self.spawn(user.run(gateway))
            for ticker in tickers:
                self.spawn(ticker.run(gateway))
            for audited_book in [*grpc_books, *ws_audited]:
                self.spawn(audit_loop(audited_book, sim, 0.3))
            self.spawn(rest_poll(rest, gateway, tokens.poller, self.symbols, 0.1))
            self.spawn(mcp_poll(mcp, plain, mcp_url, tokens.poller, self.symbols))
            self.spawn(self.scrape_loop(plain))
            self.spawn(self.sample_loop(started))
            self.spawn(self.lag_loop(started))
            order_task = asyncio.create_task(orders.run(0.3))
            faults_task = asyncio.create_task(self.fault_runner(sim, schedule, started))
            try:
                await asyncio.sleep(self.duration_s)
                await asyncio.wait_for(faults_task, 90)  # a process restart may still be under way
            finally:
                order_task.cancel()
                faults_task.cancel()
                await asyncio.gather(order_task, faults_task, return_exceptions=True)
            await orders.clean_up(60)
            venue = await venue_orders(sim, ORDER_SYMBOL, DEMO_API_KEY, DEMO_API_SECRET)
            prefix = orders.prefix
            ours = [o for o in venue if str(o.get("clientOrderId", "")).startswith(prefix)]
            done = done_orders(orders.sent, ours)
            user_missed, balances_off, open_off = await self.final_checks(
                gateway, sim, users, done, ORDER_SYMBOL, prefix
            )
            await self.scrape(plain)
            self.sample_processes(started)
            async with sim.get("/control/counters") as response:
                counters = await response.json()
            stuck = await stop_tasks(self.tasks)
            if stuck:
                print(f"soak: {len(stuck)} load tasks did not stop when cancelled: {stuck}", file=sys.stderr)
            venue = await venue_orders(sim, ORDER_SYMBOL, DEMO_API_KEY, DEMO_API_SECRET)

        ours = [o for o in venue if str(o.get("clientOrderId", "")).startswith(prefix)]
        seen = Counter(o["clientOrderId"] for o in ours)
        on_venue = {o["clientOrderId"]: o for o in ours}
        confirmed_missing = [
            s.client_order_id for s in orders.sent if s.placed is Placed.CONFIRMED and s.client_order_id not in on_venue
        ]
        still_open = [o["clientOrderId"] for o in ours if o["status"] in ("NEW", "PARTIALLY_FILLED", "PENDING_NEW")]
        if confirmed_missing:
            self.notes.append(f"confirmed but absent from the venue: {confirmed_missing[:10]}")
        if still_open:
            self.notes.append(f"left open on the venue: {still_open[:10]}")

        by_symbol_grpc = {b.symbol: b for b in grpc_books}
        by_symbol_ws = {b.symbol: b for b in ws_audited}
        recoveries: list[tuple[str, float | None]] = []
        for fault in self.injected:
            if fault.kind in ORDER_FAULTS:
                recoveries.append((fault.kind.value, order_recovery(fault, orders.sent)))
            elif fault.kind in USER_FAULTS:
                recoveries.append(
                    (fault.kind.value, stream_recovery((u.view for u in users), fault.at, RECOVERY_LIMIT_S))
                )
            else:
                audited: AuditedBook = (
                    by_symbol_ws[fault.symbol]
                    if fault.kind is SoakFault.GATEWAY_RESTART
                    else by_symbol_grpc[fault.symbol]
                )
                recoveries.append((fault.kind.value, recovery_time(fault, audited.voids, audited.comparisons)))

        for copy in [*grpc_books, *ws_audited]:
            outcomes = Counter(c.outcome.value for c in copy.comparisons)
            via = "gRPC" if isinstance(copy, GrpcAuditor) else "WS"
            self.notes.append(
                f"{copy.symbol} via {via}: {dict(outcomes)}, voided {len(copy.voids)} times, "
                f"last update id {copy.book.last_id}, in sync at the end: {copy.book.valid}"
            )
            for divergence in copy.divergences:
                self.notes.append(f"**{copy.symbol} via {via} diverged** {divergence.describe(started)}")

        audits_ok = self.totals.total_of("provider_book_audits_ok_total")
        audits_failed = self.totals.total_of("provider_book_audits_failed_total")
        self.notes.append(
            f"The provider's own audits of its books against venue snapshots: {audits_ok:.0f} agreed, "
            f"{audits_failed:.0f} found a mismatch."
        )

        def compared(books: list[GrpcAuditor] | list[DepthClient], outcome: Compared) -> int:
            return sum(1 for b in books for c in b.comparisons if c.outcome is outcome)

        every_depth = [*ws_depth, *slow]
        injected = counters.get("injected", {})
        quiet_until = started + (schedule[0].at_s if schedule else self.duration_s)
        faults_until = started + self.duration_s
        figures = SoakFigures(
            command=command,
            profile=profile.name,
            seed=self.seed,
            duration_s=self.duration_s,
            symbols=len(self.symbols),
            ws_clients=len(every_depth) + len(tickers) + len(users),
            slow_clients=len(slow),
            injected={str(k): int(v) for k, v in injected.items()},
            scheduled=dict(Counter(f.kind.value for f in schedule)),
            resyncs=self.totals.total_of("provider_book_resyncs_total"),
            reconnects=self.totals.total("provider_ws_reconnects_total"),
            gaps=self.totals.total_of("provider_book_gaps_total"),
            watchdog_trips=self.totals.total("provider_ws_watchdog_trips_total"),
            provider_bans=self.totals.total("provider_rest_bans_total"),
            injected_bans=int(injected.get("rest_418", 0)),
            grpc_compared=compared(grpc_books, Compared.MATCH) + compared(grpc_books, Compared.DIVERGED),
            grpc_diverged=compared(grpc_books, Compared.DIVERGED),
            grpc_continuity_breaks=sum(b.continuity_breaks for b in grpc_books),
            ws_compared=compared(ws_audited, Compared.MATCH) + compared(ws_audited, Compared.DIVERGED),
            ws_diverged=compared(ws_audited, Compared.DIVERGED),
            ws_notices=sum(c.notices for c in every_depth),
            ws_lagged=sum(c.lagged for c in every_depth),
            ws_reconnects=sum(max(0, c.connects - 1) for c in every_depth)
            + sum(max(0, t.connects - 1) for t in tickers),
            ws_clients_broken=sum(1 for c in every_depth if c.continuity_breaks),
            ws_diffs_while_void=sum(c.diffs_while_void for c in every_depth),
            user_clients=len(users),
            user_checked=sum(checked(u.view, done, USER_GRACE_S) for u in users),
            user_missed=user_missed,
            user_notices=sum(u.view.notices for u in users),
            user_reconnects=sum(max(0, u.connects - 1) for u in users),
            balance_mismatches=balances_off,
            open_orders_mismatch=open_off,
            slow_client_closes=dict(sum((c.closes for c in slow), Counter())),
            orders_sent=len(orders.sent),
            orders_by_route=dict(Counter(s.route for s in orders.sent)),
            orders_confirmed=sum(1 for s in orders.sent if s.placed is Placed.CONFIRMED),
            orders_uncertain=sum(1 for s in orders.sent if s.placed is Placed.UNCERTAIN),
            orders_refused=sum(1 for s in orders.sent if s.placed is Placed.REFUSED),
            orders_duplicated=sum(1 for n in seen.values() if n > 1),
            orders_unresolved=len(still_open) + len(confirmed_missing),
            order_errors=dict(errors),
            recoveries=recoveries,
            rss=self.rss,
            cpu=self.cpu,
            loop_lag=self.loop_lag,
            marks=self.marks,
            in_sync=self.in_sync,
            rest=latencies(rest, quiet_until, faults_until),
            mcp=latencies(mcp, quiet_until, faults_until),
            notes=(
                *self.notes,
                "Orders go in turn through gateway_http (REST), gateway_mcp (preview, then confirm) and the "
                "provider's gRPC Trading service.",
                "The provider was restarted (kill -9) once: its RSS at the end is the new process's.",
                f"gateway_http runs with GATEWAY_HTTP_WS_BACKLOG={SOAK_WS_BACKLOG} so that the slow clients "
                "are lagged within the run.",
                f"exchange_sim keeps per symbol the last {TAPE_LENGTH:,} trades and aggregate trades (for "
                "REST) and its candles (1-second ones for 20 minutes, then 1-minute ones): bounded stores that "
                "a run this short is still filling, so its RSS grows with them.",
            ),
        )
        return figures, render(figures)

    async def final_checks(
        self,
        gateway: aiohttp.ClientSession,
        sim: aiohttp.ClientSession,
        users: list[UserClient],
        done: list[DoneOrder],
        symbol: str,
        prefix: str,
    ) -> tuple[list[str], list[str], list[str]]:
        """User events missed, balances and open orders that differ from the venue's, each given up to
        FINAL_CHECK_S to settle (events in flight, a reconciliation under way) before it is judged."""
        account = bearer_headers(self.tokens.account(0))
        deadline = time.monotonic() + FINAL_CHECK_S
        while True:
            venue_open = sorted(
                o["clientOrderId"]
                for o in await venue_orders(sim, symbol, DEMO_API_KEY, DEMO_API_SECRET)
                if o["status"] in ("NEW", "PARTIALLY_FILLED") and str(o["clientOrderId"]).startswith(prefix)
            )
            venue_balance = await venue_balances(sim, DEMO_API_KEY, DEMO_API_SECRET)
            user_missed = [
                f"client {i}: {order_id} {execution}"
                for i, u in enumerate(users)
                for order_id, execution in missed(u.view, done, USER_GRACE_S)
            ]
            balances_off: list[str] = []
            open_off: list[str] = []
            try:
                async with gateway.get("/api/v1/account", headers=account) as response:
                    body = await response.json()
                provider_balances = {
                    b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in body.get("balances", ())
                }
                balances_off += balance_mismatches("provider", provider_balances, venue_balance)
                async with gateway.get("/api/v1/openOrders", params={"symbol": symbol}, headers=account) as response:
                    provider_open = sorted(
                        o["clientOrderId"] for o in await response.json() if str(o["clientOrderId"]).startswith(prefix)
                    )
                if provider_open != venue_open:
                    open_off.append(f"provider {provider_open[:10]} vs venue {venue_open[:10]}")
            except (aiohttp.ClientError, TimeoutError, KeyError, TypeError) as error:
                balances_off.append(f"provider account not read: {error!r}")
            for i, u in enumerate(users):
                if u.view.trusting:
                    balances_off += balance_mismatches(f"/ws/user client {i}", u.view.balances, venue_balance)
            if not (user_missed or balances_off or open_off) or time.monotonic() > deadline:
                return user_missed, balances_off, open_off
            await asyncio.sleep(0.5)


async def stop_tasks(tasks: list[asyncio.Task[None]], rounds: int = 3, wait_s: float = 10.0) -> list[str]:
    """Cancel the tasks and wait for them, cancelling again those still running (a cancellation can be
    lost in a race); the reprs of any still running after `rounds` tries, which are left behind."""
    pending = {task for task in tasks if not task.done()}
    for _ in range(rounds):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=wait_s)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # seen: a load task that failed is reported by its own figures
    return [repr(task.get_coro()) for task in pending]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=float(os.environ.get("DURATION", "120")))
    parser.add_argument("--profile", choices=sorted(PROFILES), default=os.environ.get("SOAK_PROFILE") or None)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "1")))
    parser.add_argument("--report", type=Path, default=REPO_ROOT / "docs" / "soak.md")
    parser.add_argument("--command", default=None, help="the command line shown in the report")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile or ("ci" if args.duration <= 300 else "full")]
    command = args.command or f"make soak DURATION={args.duration:.0f} SOAK_PROFILE={profile.name}"
    if not RECORDED_ETHUSDT.is_file():
        raise SystemExit(f"recorded data not found: {RECORDED_ETHUSDT}")
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    store, tokens = SoakTokens.issue(profile)
    store.save(root / "tokens.json")
    symbols = ",".join(symbol_names(profile.symbols))
    env = {
        "SIM_CONTROL": "on",
        "SIM_SYMBOLS": symbols,
        "SIM_SEED": str(args.seed),
        "SIM_REPLAY": str(RECORDED_ETHUSDT),
        "SIM_REPLAY_SPEED": f"{min(1.0, RECORDED_SECONDS / (args.duration + STARTUP_ALLOWANCE_S)):.3f}",
        # The soak's own signed venue reads (orders, balances) share the provider's IP budget, and
        # 201 books resynchronised at once after a disconnect fault would pass Binance's 6,000 anyway.
        "SIM_WEIGHT_PER_MINUTE": "1000000",
        "PROVIDER_TRADING": "on",
        "PROVIDER_SYMBOLS": symbols,
        "PROVIDER_STREAM_STALL_S": str(STALL_S),
        "GATEWAY_TOKENS_FILE": str(root / "tokens.json"),
        "GATEWAY_HTTP_WS_BACKLOG": SOAK_WS_BACKLOG,
    }
    ports = Ports(sim=free_port(), provider=free_port(), http=free_port(), mcp=free_port(), metrics=free_port())
    system = build_system(ports, data_dir=root / "data", log_dir=root, extra_env=env)
    print(f"soak: profile {profile.name}, {args.duration:.0f} s, logs in {root}", file=sys.stderr)
    system.start(timeout=60)
    try:
        figures, text = asyncio.run(Soak(system, profile, args.seed, args.duration, tokens).run(command))
    finally:
        codes = system.stop()
    if any(code not in (0, None) for code in codes.values()):
        text += f"\nUnclean exit codes at the end: {codes}\n"
    print(text)
    args.report.write_text(text)
    violations = figures.violations()
    if any(code not in (0, None) for code in codes.values()):
        violations.append(f"unclean exit codes {codes}")
    if violations:
        print("soak: goals violated:\n  " + "\n  ".join(violations), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
