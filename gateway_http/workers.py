"""GATEWAY_HTTP_WORKERS > 1: a supervisor process and N worker processes on one listening socket.

Why: one event loop writes every WebSocket frame to every client, one `send` per connection per
flush; past about one core of those writes the provider streams are read late and every client
falls behind (docs/benchmarks.md). Workers spread the connections, and their writes, over cores.

The supervisor binds the listening socket once and starts each worker with it (an inherited file
descriptor, so no SO_REUSEPORT: the kernel gives a connection to whichever worker accepts first,
and a busy worker accepts less). It also owns what the workers must share:

* per-token rate limits and WebSocket caps: one shared-memory segment (gateway_http.shared_limits),
  so the limits hold over all workers together, exactly as in one process;
* prometheus_client's multiprocess directory: GET /metrics on any worker reports the sum over all;
* the bearer tokens it read at start (a worker started later must not see another tokens file).

Each worker is a whole gateway otherwise: its own provider channel and upstream streams.

A worker that dies is restarted: the WebSocket clients it counted are released, its gauges dropped.
More than RESTART_LIMIT deaths within RESTART_WINDOW_S stop everything with exit status 1, so the
orchestrator sees a gateway that cannot stay up rather than one that flaps. SIGTERM/SIGINT go to
the supervisor; it forwards SIGTERM, the workers close their clients in order, and stragglers are
killed after STOP_TIMEOUT_S. Workers run in their own session (a terminal's Ctrl-C reaches only the
supervisor, which stops them in order) and stop by themselves if the supervisor disappears: they
hold the read end of a pipe only the supervisor writes to, and its end of file means it is gone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

from gateway_auth.tokens import TokenStore
from gateway_http.app import create_app
from gateway_http.config import HttpGatewayConfig
from gateway_http.metrics import Metrics
from gateway_http.shared_limits import SharedLimits
from service_runtime.config import Address
from service_runtime.http_serving import serve_aiohttp
from service_runtime.lifecycle import wait_for_stop_signal

WORKER_ENV = "_GATEWAY_HTTP_WORKER"  # set by the supervisor only: index and inherited fds (WorkerSlot)
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when imported
LISTEN_BACKLOG = 1024
RESTART_LIMIT = 5
RESTART_WINDOW_S = 60.0
STOP_TIMEOUT_S = 8.0  # within the launcher's 10 s before it kills the supervisor


@dataclass(frozen=True)
class WorkerSlot:
    """What the supervisor hands a worker: its index and the inherited file descriptors."""

    index: int
    listen_fd: int
    limits_fd: int
    tokens_fd: int
    parent_fd: int

    def encode(self) -> str:
        return f"{self.index},{self.listen_fd},{self.limits_fd},{self.tokens_fd},{self.parent_fd}"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WorkerSlot | None:
        text = environ.get(WORKER_ENV)
        if text is None:
            return None
        try:
            index, listen_fd, limits_fd, tokens_fd, parent_fd = (int(part) for part in text.split(","))
        except ValueError:
            raise ValueError(f"{WORKER_ENV}={text!r}: set by the gateway's supervisor only") from None
        return cls(index, listen_fd, limits_fd, tokens_fd, parent_fd)

    def tokens(self) -> TokenStore:
        """The tokens the supervisor serves (its copy of GATEWAY_TOKENS_FILE as read at its start); read
        once, at the worker's start: the fd is closed after."""
        size = os.fstat(self.tokens_fd).st_size
        text = os.pread(self.tokens_fd, size, 0).decode("utf-8")
        os.close(self.tokens_fd)
        return TokenStore.parse(text, Path(f"the supervisor's tokens (fd {self.tokens_fd})"))


def tokens_copy(tokens: TokenStore) -> int:
    """An anonymous in-memory file holding `tokens`, for the workers to inherit."""
    fd = os.memfd_create("gateway_http-tokens", os.MFD_CLOEXEC)
    try:
        os.write(fd, tokens.to_json().encode("utf-8"))
    except BaseException:
        os.close(fd)
        raise
    return fd


# --- a worker -----------------------------------------------------------------------------------


async def serve_worker(config: HttpGatewayConfig, slot: WorkerSlot, log: logging.Logger) -> int:
    """Serve the inherited listening socket with limits and metrics shared with the other workers."""
    metrics_dir = os.environ.get(METRICS_DIR_ENV)
    if metrics_dir is None:
        log.error("%s is not set: a worker is started by the supervisor only", METRICS_DIR_ENV)
        return 2
    try:
        limits = SharedLimits.attach(
            slot.limits_fd, config.tokens.names(), config.workers, config.rate_limit, config.ws_limits
        )
    except ValueError as exc:
        log.error("the shared limits: %s", exc)
        return 2
    sock = socket.socket(fileno=slot.listen_fd)
    loop = asyncio.get_running_loop()
    # The supervisor's end of the pipe closes when it exits, however it exits: then stop as on SIGTERM.
    os.set_blocking(slot.parent_fd, False)
    loop.add_reader(slot.parent_fd, _stop_when_supervisor_is_gone, slot.parent_fd, log)
    try:
        app = create_app(
            config,
            worker=slot.index,
            rate_limiter=limits.rate_limiter() if config.rate_limit is not None else None,
            ws_connections=limits.ws_connections(slot.index),
            metrics=Metrics(multiprocess_dir=metrics_dir),
        )
        return await serve_aiohttp(app, config.addr, "GATEWAY_HTTP_ADDR", log, sock=sock)
    finally:
        loop.remove_reader(slot.parent_fd)
        limits.close()


def _stop_when_supervisor_is_gone(parent_fd: int, log: logging.Logger) -> None:
    with contextlib.suppress(BlockingIOError, InterruptedError):
        if os.read(parent_fd, 1):
            return  # the supervisor never writes; tolerate it rather than stop
    asyncio.get_running_loop().remove_reader(parent_fd)
    log.error("the supervisor is gone: stopping")
    os.kill(os.getpid(), signal.SIGTERM)


# --- the supervisor -----------------------------------------------------------------------------


def bind_listener(addr: Address) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
    sock = socket.create_server((addr.host, addr.port), family=family, backlog=LISTEN_BACKLOG)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Starts the workers, restarts one that dies, stops them all on a stop signal."""

    def __init__(
        self,
        config: HttpGatewayConfig,
        listener: socket.socket,
        limits: SharedLimits,
        metrics_dir: str,
        log: logging.Logger,
    ) -> None:
        self.config = config
        self.listener = listener
        self.limits = limits
        self.metrics_dir = metrics_dir
        self.log = log
        self.workers: dict[int, asyncio.subprocess.Process] = {}
        self._deaths: collections.deque[float] = collections.deque()
        self._parent_r, self._parent_w = os.pipe()  # the workers watch the read end for end of file
        self._tokens_fd = tokens_copy(config.tokens)

    def close(self) -> None:
        os.close(self._parent_r)
        os.close(self._parent_w)
        os.close(self._tokens_fd)

    async def _start(self, index: int) -> asyncio.subprocess.Process:
        slot = WorkerSlot(index, self.listener.fileno(), self.limits.fd, self._tokens_fd, self._parent_r)
        env = {**os.environ, WORKER_ENV: slot.encode(), METRICS_DIR_ENV: self.metrics_dir}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway_http",
            *sys.argv[1:],
            env=env,
            pass_fds=(slot.listen_fd, slot.limits_fd, slot.tokens_fd, slot.parent_fd),
            start_new_session=True,
        )
        self.workers[index] = process
        self.log.info("worker %d started (pid %d)", index, process.pid)
        return process

    def _buried(self, index: int, process: asyncio.subprocess.Process) -> None:
        """A worker that exited while the gateway runs: release what it held."""
        released = self.limits.release_worker(index)
        multiprocess.mark_process_dead(process.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
        self.log.error(
            "worker %d (pid %d) exited with status %s; %d WebSocket client(s) it served were dropped",
            index,
            process.pid,
            process.returncode,
            released,
        )

    def _may_restart(self) -> bool:
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - RESTART_WINDOW_S:
            self._deaths.popleft()
        return len(self._deaths) <= RESTART_LIMIT

    async def run(self) -> int:
        stop = asyncio.create_task(wait_for_stop_signal())
        exits: dict[asyncio.Task[Any], int] = {}  # a worker's exit, by its index
        failed = False
        try:
            for index in range(self.config.workers):
                exits[asyncio.create_task((await self._start(index)).wait())] = index
            self.log.info("listening on http://%s with %d workers", self.config.addr, self.config.workers)
            while not stop.done():
                done, _ = await asyncio.wait([stop, *exits], return_when=asyncio.FIRST_COMPLETED)
                for task in done - {stop}:
                    index = exits.pop(task)
                    self._buried(index, self.workers.pop(index))
                    if not self._may_restart():
                        self.log.error(
                            "%d worker deaths within %.0f s: stopping the gateway", len(self._deaths), RESTART_WINDOW_S
                        )
                        failed = True
                        stop.cancel()
                        break
                    exits[asyncio.create_task((await self._start(index)).wait())] = index
        finally:
            stop.cancel()
            codes = await self._stop_all(set(exits))
        if codes:
            self.log.info("workers stopped with status %s", codes)
        # A worker still starting when told to stop has no handler yet and ends by the signal itself.
        return 1 if failed or any(code not in (0, -signal.SIGTERM) for code in codes.values()) else 0

    async def _stop_all(self, exits: set[asyncio.Task[Any]]) -> dict[int, int | None]:
        """SIGTERM to every worker; `exits` (their wait tasks) are awaited, stragglers killed."""
        self.log.info("stopping %d workers", len(self.workers))
        for process in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if exits:
            await asyncio.wait(exits, timeout=STOP_TIMEOUT_S)
        for index, process in self.workers.items():
            if process.returncode is None:
                self.log.error(
                    "worker %d (pid %d) did not stop within %.0f s: killed", index, process.pid, STOP_TIMEOUT_S
                )
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        return {index: process.returncode for index, process in self.workers.items()}


async def supervise(config: HttpGatewayConfig, log: logging.Logger) -> int:
    try:
        listener = bind_listener(config.addr)
    except OSError as exc:
        log.error("GATEWAY_HTTP_ADDR: cannot listen on %s: %s", config.addr, exc)
        return 2
    limits = SharedLimits.create(config.tokens.names(), config.workers, config.rate_limit, config.ws_limits)
    metrics_dir = tempfile.mkdtemp(prefix="gateway_http-metrics-")
    supervisor = Supervisor(config, listener, limits, metrics_dir, log)
    try:
        return await supervisor.run()
    finally:
        supervisor.close()
        limits.close()
        listener.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("stopped")
