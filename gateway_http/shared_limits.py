"""Per-token rate limits and WebSocket caps that hold over every worker process of the gateway at once.

The workers are separate processes (spawned, not forked) sharing one listening socket, so limits kept
in each worker's memory would give every token N times its rate and N times its clients. Instead the
supervisor creates one shared-memory segment (`SharedLimits.create`) and passes its fd to every worker
(`pass_fds`); each worker maps it (`SharedLimits.attach`) and uses `SharedRateLimiter` and
`SharedWsConnections`, which answer exactly as `RateLimiter` and `WsConnections` do in one process.

Every read-modify-write holds a POSIX record lock on the segment (`fcntl.lockf`): the kernel drops it
when its holder dies, even by SIGKILL, and unlike `flock` it excludes processes that share one open
file description (the inherited fd). Record locks belong to a process, not to a thread, so a thread
lock is taken around it too. The locked sections are short and never await.

Layout (native byte order, every field 8-byte aligned; T tokens, W workers):

    header   magic 8s | layout version q | T q | W q | sha256 of the token names and limits 32s   64 bytes
    buckets  per token: tokens d, updated d (a `TokenBucket`; `updated` is time.monotonic)        16 T bytes
    clients  per token, per worker: open WebSocket clients q                                      8 T W bytes

A worker killed in the middle of an update leaves nothing inconsistent: a client count changes by one
aligned 8-byte store, and the per-token and gateway totals are summed under the lock rather than kept,
so they cannot disagree with the counts. A bucket is two stores, ordered so that a kill between them
is never more generous than if the killed call had not happened.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Literal

from gateway_http.security import RateLimit, TokenBucket, WsLimits, ws_gateway_full, ws_token_full

MAGIC = b"GWLIMITS"
LAYOUT_VERSION = 1
_HEADER = struct.Struct("=8sqqq32s")  # magic, layout version, tokens, workers, digest
_BUCKET_DOUBLES = 2  # tokens, updated
_Refusal = Literal["token", "gateway"]


def _segment_size(tokens: int, workers: int) -> int:
    return _HEADER.size + 8 * _BUCKET_DOUBLES * tokens + 8 * tokens * workers


def _digest(token_names: Sequence[str], rate: RateLimit | None, ws: WsLimits) -> bytes:
    """What a worker must agree on with the supervisor: what each slot means (the names, in order) and the limits."""
    described = {
        "tokens": list(token_names),
        "rate": None if rate is None else [float(rate.per_second), rate.burst],
        "ws": [ws.total, ws.per_token],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).digest()


def _check_shape(token_names: Sequence[str], workers: int) -> None:
    if workers < 1:
        raise ValueError(f"at least one worker is needed, got {workers}")
    if len(set(token_names)) != len(token_names):
        repeated = sorted({name for name in token_names if list(token_names).count(name) > 1})
        raise ValueError(f"token names must be unique; repeated: {', '.join(map(repr, repeated))}")


class SharedLimits:
    """Token buckets and WebSocket counts in one shared-memory segment, for every worker of the gateway.

    Made by `create` (supervisor) or `attach` (worker), not directly. Keys are token names; a name
    that is not in `token_names` is a programming error (KeyError).
    """

    def __init__(
        self,
        fd: int,
        token_names: Sequence[str],
        workers: int,
        rate: RateLimit | None,
        ws: WsLimits,
    ) -> None:
        self.token_names = tuple(token_names)
        self.workers = workers
        self.rate = rate
        self.ws = ws
        self._fd = fd
        self._slot_of = {name: index for index, name in enumerate(self.token_names)}
        self._thread_lock = threading.Lock()
        size = _segment_size(len(self.token_names), workers)
        clients_at = size - 8 * len(self.token_names) * workers
        self._map = mmap.mmap(fd, size)
        whole = memoryview(self._map)
        self._buckets = whole[_HEADER.size : clients_at].cast("d")  # [2t]: tokens, [2t + 1]: updated
        self._clients = whole[clients_at:size].cast("q")  # [t W + w]: clients of token t on worker w
        whole.release()
        self._closed = False

    @classmethod
    def create(cls, token_names: Sequence[str], workers: int, rate: RateLimit | None, ws: WsLimits) -> SharedLimits:
        """Supervisor side: allocates the segment as an anonymous memory file (memfd: in RAM only, never
        written back to a disk, and gone with the last process holding it), sized for these tokens and
        workers, buckets full."""
        _check_shape(token_names, workers)
        fd = os.memfd_create("gateway_http-limits", os.MFD_CLOEXEC)
        try:
            # Zeros (no client open), and pages reserved now: writing through the mapping into a hole when
            # memory is short would be a SIGBUS in a worker later, instead of an error here.
            os.posix_fallocate(fd, 0, _segment_size(len(token_names), workers))
            shared = cls(fd, token_names, workers, rate, ws)
        except BaseException:
            os.close(fd)
            raise
        if rate is not None:
            for slot in range(len(shared.token_names)):
                # A full bucket stays full whatever time passes, so `updated` does not matter until the first
                # take, which then answers as RateLimiter's freshly made bucket does.
                shared._buckets[_BUCKET_DOUBLES * slot] = float(rate.burst)
                shared._buckets[_BUCKET_DOUBLES * slot + 1] = 0.0
        _HEADER.pack_into(
            shared._map, 0, MAGIC, LAYOUT_VERSION, len(token_names), workers, _digest(token_names, rate, ws)
        )
        return shared

    @property
    def fd(self) -> int:
        """What the supervisor passes to workers (subprocess `pass_fds`)."""
        return self._fd

    @classmethod
    def attach(
        cls, fd: int, token_names: Sequence[str], workers: int, rate: RateLimit | None, ws: WsLimits
    ) -> SharedLimits:
        """Worker side: maps the inherited fd (and owns it from then on: `close` closes it). Refuses a segment
        made for other token names, workers or limits: a worker started with another tokens file or config
        would count its clients in the wrong slots or against other limits."""
        _check_shape(token_names, workers)
        header = os.pread(fd, _HEADER.size, 0)
        if len(header) < _HEADER.size:
            raise ValueError(f"fd {fd} is not a shared limits segment (only {len(header)} bytes)")
        magic, version, tokens_found, workers_found, digest = _HEADER.unpack(header)
        if magic != MAGIC:
            raise ValueError(f"fd {fd} is not a shared limits segment (no {MAGIC.decode()} header)")
        if version != LAYOUT_VERSION:
            raise ValueError(
                f"the shared limits segment has layout version {version}, this worker reads {LAYOUT_VERSION}:"
                " the supervisor and the worker run different versions of the gateway"
            )
        if tokens_found != len(token_names):
            raise ValueError(
                f"the shared limits segment is for {tokens_found} tokens, this worker has {len(token_names)}:"
                " was it started with another tokens file?"
            )
        if workers_found != workers:
            raise ValueError(
                f"the shared limits segment is for {workers_found} workers, this worker was told {workers}"
            )
        if digest != _digest(token_names, rate, ws):
            raise ValueError(
                "the shared limits segment was made for other token names or limits than this worker's:"
                " was it started with another tokens file or config?"
            )
        size = os.fstat(fd).st_size
        if size != _segment_size(len(token_names), workers):
            raise ValueError(
                f"the shared limits segment is {size} bytes, expected {_segment_size(len(token_names), workers)}"
            )
        return cls(fd, token_names, workers, rate, ws)

    def rate_limiter(self, clock: Callable[[], float] = time.monotonic) -> SharedRateLimiter:
        """This process's view of the shared token buckets. `clock` must be comparable across processes:
        time.monotonic (CLOCK_MONOTONIC) is system-wide on Linux; tests pass a fake one."""
        if self.rate is None:
            raise ValueError("rate limits are off (rate None): there are no buckets to take from")
        return SharedRateLimiter(self, self.rate, clock)

    def ws_connections(self, worker: int) -> SharedWsConnections:
        """The WebSocket counter of worker `worker` (0 .. workers - 1): it counts its clients in its own slots."""
        self._check_worker(worker)
        return SharedWsConnections(self, worker)

    def release_worker(self, worker: int) -> int:
        """Supervisor, after worker `worker` died: drop every WebSocket client it counted; returns how many.
        Call it before a replacement starts in the same slot, or the replacement's clients are dropped too."""
        self._check_worker(worker)
        dropped = 0
        with self._locked():
            for slot in range(worker, len(self._clients), self.workers):
                dropped += self._clients[slot]
                self._clients[slot] = 0
        return dropped

    def close(self) -> None:
        """Unmap the segment and close the fd. Other processes' mappings are unaffected."""
        if self._closed:
            return
        self._closed = True
        self._buckets.release()  # the mapping cannot be closed while views of it exist
        self._clients.release()
        self._map.close()
        os.close(self._fd)

    def __enter__(self) -> SharedLimits:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # --- for SharedRateLimiter and SharedWsConnections ---------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def _slot(self, key: str) -> int:
        try:
            return self._slot_of[key]
        except KeyError:
            raise KeyError(f"{key!r} is not one of the token names the shared limits were made for") from None

    def _check_worker(self, worker: int) -> None:
        if not 0 <= worker < self.workers:
            raise ValueError(f"worker {worker} is not one of 0..{self.workers - 1}")

    def _take(self, key: str, limit: RateLimit, clock: Callable[[], float]) -> float:
        at = _BUCKET_DOUBLES * self._slot(key)
        with self._locked():
            now = clock()  # read under the lock, so the stored times only move forward
            bucket = TokenBucket(limit, self._buckets[at], self._buckets[at + 1])
            wait = bucket.take(now)
            # `updated` first: killed before `tokens` is stored, the bucket keeps its old tokens without their
            # refill, which is never more than it would hold had this call not happened.
            self._buckets[at + 1] = bucket.updated
            self._buckets[at] = bucket.tokens
        return wait

    def _open_for_slot(self, slot: int) -> int:
        return sum(self._clients[slot * self.workers : (slot + 1) * self.workers])

    def _acquire(self, key: str, worker: int) -> _Refusal | None:
        slot = self._slot(key)
        with self._locked():
            if self._open_for_slot(slot) >= self.ws.per_token:
                return "token"
            if sum(self._clients) >= self.ws.total:
                return "gateway"
            self._clients[slot * self.workers + worker] += 1
        return None

    def _release(self, key: str, worker: int) -> bool:
        at = self._slot(key) * self.workers + worker
        with self._locked():
            count = self._clients[at]
            if count <= 0:
                return False
            self._clients[at] = count - 1
        return True

    def _open_for(self, key: str) -> int:
        slot = self._slot(key)
        with self._locked():
            return self._open_for_slot(slot)

    def _open_total(self) -> int:
        with self._locked():
            return sum(self._clients)


class SharedRateLimiter:
    """`RateLimiter` over all workers together: one `TokenBucket` per token, kept in the shared segment."""

    def __init__(self, shared: SharedLimits, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._shared = shared

    def wait_seconds(self, key: str) -> float:
        """0.0 if a request of `key` may pass now (and counts it), else seconds until one may."""
        return self._shared._take(key, self.limit, self.clock)


class SharedWsConnections:
    """`WsConnections` for one worker: counts its own clients, checks the limits over all workers' clients."""

    def __init__(self, shared: SharedLimits, worker: int) -> None:
        self.limits = shared.ws
        self.worker = worker
        self._shared = shared

    def acquire(self, key: str) -> None:
        """Count one client of `key`, or raise 429 (this token is at its limit) / 503 (the gateway is full)."""
        refusal = self._shared._acquire(key, self.worker)
        if refusal == "token":
            raise ws_token_full(self.limits)
        if refusal == "gateway":
            raise ws_gateway_full(self.limits)

    def release(self, key: str) -> None:
        """Undo one `acquire` of `key` made by this worker."""
        if not self._shared._release(key, self.worker):
            raise ValueError(f"no WebSocket client of {key!r} is counted")

    def open_for(self, key: str) -> int:
        """Clients of `key` open on all workers."""
        return self._shared._open_for(key)

    @property
    def open_total(self) -> int:
        """Clients open on all workers."""
        return self._shared._open_total()
