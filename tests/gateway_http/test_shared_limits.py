"""Limits shared by the gateway's worker processes: the same answers as the in-process RateLimiter and
WsConnections, one segment seen by every mapping, exact totals when processes race, and nothing stuck
after a worker is SIGKILLed."""

from __future__ import annotations

import fcntl
import json
import os
import random
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import pytest

from gateway_http.errors import ApiError, ErrorAnswer
from gateway_http.security import (
    ConnectionCounter,
    RateLimit,
    RateLimiter,
    RequestLimiter,
    WsConnections,
    WsLimits,
)
from gateway_http.shared_limits import SharedLimits, SharedRateLimiter

ROOT = Path(__file__).resolve().parents[2]
TOKENS = ("alice", "bob", "carol")
WORKERS = 3
RATE = RateLimit(per_second=2.0, burst=3)
WS = WsLimits(total=5, per_token=3)
CHILD_CODE = "import sys; from tests.gateway_http.test_shared_limits import child; child(*sys.argv[1:])"
CHILD_TIMEOUT_S = 60.0


class ClientCounter(ConnectionCounter, Protocol):
    """What the WebSocket routes use, and the rest of WsConnections' surface: both counters must fit it."""

    @property
    def limits(self) -> WsLimits: ...

    def open_for(self, key: str) -> int: ...

    @property
    def open_total(self) -> int: ...


@pytest.fixture
def shared() -> Iterator[SharedLimits]:
    with SharedLimits.create(TOKENS, WORKERS, RATE, WS) as limits:
        yield limits


def outcome(call: Callable[[str], object], key: str) -> object:
    """What a call answered, refusals included, in a form two implementations can be compared by."""
    try:
        return call(key)
    except ApiError as refused:
        return refused.answer
    except ValueError as error:
        return f"ValueError: {error}"


# --- the same answers as in one process ----------------------------------------------------------


@pytest.mark.parametrize(
    "limit", [RATE, RateLimit(per_second=0.5, burst=1), RateLimit(per_second=7.5, burst=2)], ids=str
)
def test_the_rate_limiter_answers_exactly_as_the_in_process_one(limit: RateLimit) -> None:
    now = [100.0]
    with SharedLimits.create(TOKENS, WORKERS, limit, WS) as limits:
        pair: tuple[RequestLimiter, RequestLimiter] = (
            RateLimiter(limit, clock=lambda: now[0]),
            limits.rate_limiter(clock=lambda: now[0]),
        )
        rng = random.Random(7)
        answers: tuple[list[float], list[float]] = ([], [])
        for _ in range(3000):
            now[0] += rng.choice([0.0, 0.0, 0.0, 0.001, 0.1, 0.37, 1.0, 30.0])
            key = rng.choice(TOKENS)
            for limiter, answered in zip(pair, answers, strict=True):
                answered.append(limiter.wait_seconds(key))
        assert answers[0] == answers[1]  # exactly: the same floats
        assert 0.0 in answers[1] and any(wait > 0 for wait in answers[1])


def test_the_rate_limiter_keeps_one_bucket_per_token() -> None:
    now = [0.0]
    with SharedLimits.create(TOKENS, WORKERS, RateLimit(per_second=1.0, burst=1), WS) as limits:
        limiter: SharedRateLimiter = limits.rate_limiter(clock=lambda: now[0])
        assert limiter.limit == RateLimit(per_second=1.0, burst=1)
        assert limiter.wait_seconds("alice") == 0.0
        assert limiter.wait_seconds("alice") == pytest.approx(1.0)
        assert limiter.wait_seconds("bob") == 0.0
        now[0] = 1.0
        assert limiter.wait_seconds("alice") == 0.0


def test_the_ws_counter_answers_exactly_as_the_in_process_one(shared: SharedLimits) -> None:
    pair: tuple[ClientCounter, ClientCounter] = (WsConnections(WS), shared.ws_connections(0))
    rng = random.Random(11)
    answers: tuple[list[object], list[object]] = ([], [])
    for _ in range(2000):
        key = rng.choice(TOKENS)
        operation = rng.choices(["acquire", "release", "open_for", "open_total"], weights=[6, 4, 1, 1])[0]
        for counter, answered in zip(pair, answers, strict=True):
            if operation == "acquire":
                answered.append(outcome(counter.acquire, key))
            elif operation == "release":
                answered.append(outcome(counter.release, key))
            elif operation == "open_for":
                answered.append(counter.open_for(key))
            else:
                answered.append(counter.open_total)
    assert answers[0] == answers[1]
    refusals = [answer for answer in answers[1] if isinstance(answer, ErrorAnswer)]
    assert {answer.status for answer in refusals} == {429, 503}
    assert "ValueError: no WebSocket client of 'alice' is counted" in answers[1]


def test_workers_together_answer_as_one_in_process_counter(shared: SharedLimits) -> None:
    """Clients spread over workers are limited as if one process served them all."""
    alone = WsConnections(WS)
    workers = [shared.ws_connections(worker) for worker in range(WORKERS)]
    held = {(worker, key): 0 for worker in range(WORKERS) for key in TOKENS}
    refused: set[int] = set()
    rng = random.Random(13)
    for _ in range(2000):
        key = rng.choice(TOKENS)
        if rng.random() < 0.6:
            worker = rng.randrange(WORKERS)
            answered = outcome(alone.acquire, key), outcome(workers[worker].acquire, key)
            held[worker, key] += answered[1] is None
        else:  # a client leaves the worker that serves it (worker 0 when none is open: both refuse)
            worker = next((w for w in range(WORKERS) if held[w, key]), 0)
            answered = outcome(alone.release, key), outcome(workers[worker].release, key)
            held[worker, key] -= held[worker, key] > 0
        assert answered[0] == answered[1]
        refused |= {answered[1].status} if isinstance(answered[1], ErrorAnswer) else set()
        assert alone.open_for(key) == workers[rng.randrange(WORKERS)].open_for(key)
        assert alone.open_total == workers[rng.randrange(WORKERS)].open_total
    assert refused == {429, 503}


def test_the_token_limit_is_429_and_the_gateway_limit_503_over_all_workers(shared: SharedLimits) -> None:
    first, second = shared.ws_connections(0), shared.ws_connections(1)
    first.acquire("alice")
    second.acquire("alice")
    first.acquire("alice")
    with pytest.raises(ApiError) as per_token:
        second.acquire("alice")
    assert per_token.value.answer.status == 429
    assert per_token.value.answer.all_headers()["Retry-After"] == "1"
    second.acquire("bob")
    first.acquire("bob")
    with pytest.raises(ApiError) as total:
        second.acquire("carol")
    assert (total.value.answer.status, total.value.answer.reason) == (503, "TOO_MANY_CONNECTIONS")
    assert (first.open_for("alice"), second.open_total, first.limits) == (3, 5, WS)
    first.release("alice")
    second.acquire("carol")  # a slot freed on one worker is usable on another


def test_a_worker_releases_only_its_own_clients(shared: SharedLimits) -> None:
    shared.ws_connections(0).acquire("alice")
    with pytest.raises(ValueError, match=r"^no WebSocket client of 'alice' is counted$"):
        shared.ws_connections(1).release("alice")
    shared.ws_connections(0).release("alice")
    assert shared.ws_connections(2).open_total == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda limits: limits.rate_limiter().wait_seconds("mallory"),
        lambda limits: limits.ws_connections(0).acquire("mallory"),
        lambda limits: limits.ws_connections(0).release("mallory"),
        lambda limits: limits.ws_connections(0).open_for("mallory"),
    ],
    ids=["wait_seconds", "acquire", "release", "open_for"],
)
def test_a_name_outside_the_tokens_is_a_key_error(shared: SharedLimits, call: Callable[[SharedLimits], object]) -> None:
    with pytest.raises(KeyError, match="'mallory'"):
        call(shared)


def test_without_a_rate_there_is_no_rate_limiter() -> None:
    with (
        SharedLimits.create(TOKENS, WORKERS, None, WS) as limits,
        pytest.raises(ValueError, match="rate limits are off"),
    ):
        limits.rate_limiter()


# --- one segment, many mappings -------------------------------------------------------------------


def attach_copy(shared: SharedLimits) -> SharedLimits:
    """A second mapping of the segment, as a worker's: its own fd, since `attach` owns the fd it is given."""
    fd = os.dup(shared.fd)
    try:
        return SharedLimits.attach(fd, shared.token_names, shared.workers, shared.rate, shared.ws)
    except BaseException:
        os.close(fd)
        raise


def test_an_attached_mapping_sees_and_changes_the_same_state(shared: SharedLimits) -> None:
    now = [5.0]
    with attach_copy(shared) as worker:
        supervisor_view = shared.rate_limiter(clock=lambda: now[0])
        worker_view = worker.rate_limiter(clock=lambda: now[0])
        assert [supervisor_view.wait_seconds("alice"), worker_view.wait_seconds("alice")] == [0.0, 0.0]
        assert supervisor_view.wait_seconds("alice") == 0.0
        assert worker_view.wait_seconds("alice") == pytest.approx(0.5)  # the burst of 3 is spent by both
        worker.ws_connections(1).acquire("bob")
        assert shared.ws_connections(0).open_for("bob") == 1
    assert shared.ws_connections(0).open_for("bob") == 1  # closing a worker's mapping changes nothing


def test_release_worker_drops_the_clients_of_that_worker_only(shared: SharedLimits) -> None:
    dead, alive = shared.ws_connections(1), shared.ws_connections(2)
    dead.acquire("alice")
    dead.acquire("alice")
    dead.acquire("carol")
    alive.acquire("alice")
    assert shared.release_worker(1) == 3
    assert (alive.open_for("alice"), alive.open_for("carol"), alive.open_total) == (1, 0, 1)
    assert shared.release_worker(1) == 0
    alive.release("alice")
    for worker in (-1, WORKERS):
        with pytest.raises(ValueError, match=r"worker -?\d is not one of 0\.\.2"):
            shared.release_worker(worker)
        with pytest.raises(ValueError, match=r"worker -?\d is not one of 0\.\.2"):
            shared.ws_connections(worker)


@pytest.mark.parametrize(
    ("tokens", "workers", "rate", "ws", "message"),
    [
        (("alice", "bob"), WORKERS, RATE, WS, "is for 3 tokens, this worker has 2: was it started with another"),
        (("alice", "bob", "dave"), WORKERS, RATE, WS, "other token names or limits"),
        (("bob", "alice", "carol"), WORKERS, RATE, WS, "other token names or limits"),  # the slots differ
        (TOKENS, 2, RATE, WS, "is for 3 workers, this worker was told 2"),
        (TOKENS, WORKERS, RateLimit(per_second=2.0, burst=4), WS, "other token names or limits"),
        (TOKENS, WORKERS, None, WS, "other token names or limits"),
        (TOKENS, WORKERS, RATE, WsLimits(total=5, per_token=2), "other token names or limits"),
    ],
)
def test_attach_refuses_a_segment_made_for_another_config(
    shared: SharedLimits,
    tokens: Sequence[str],
    workers: int,
    rate: RateLimit | None,
    ws: WsLimits,
    message: str,
) -> None:
    fd = os.dup(shared.fd)
    try:
        with pytest.raises(ValueError, match=message):
            SharedLimits.attach(fd, tokens, workers, rate, ws)
    finally:
        os.close(fd)


def test_attach_refuses_what_is_not_a_segment_of_this_layout(shared: SharedLimits) -> None:
    with (
        tempfile.TemporaryFile() as empty,
        pytest.raises(ValueError, match=r"is not a shared limits segment \(only 0 bytes\)$"),
    ):
        SharedLimits.attach(empty.fileno(), TOKENS, WORKERS, RATE, WS)
    with tempfile.TemporaryFile() as other:
        other.write(b"x" * 4096)
        other.flush()
        with pytest.raises(ValueError, match=r"is not a shared limits segment \(no GWLIMITS header\)$"):
            SharedLimits.attach(other.fileno(), TOKENS, WORKERS, RATE, WS)
    fd = os.dup(shared.fd)
    try:
        os.pwrite(fd, struct.pack("=q", 99), 8)  # the layout version
        with pytest.raises(ValueError, match="layout version 99, this worker reads 1"):
            SharedLimits.attach(fd, TOKENS, WORKERS, RATE, WS)
        os.pwrite(fd, struct.pack("=q", 1), 8)
        os.ftruncate(fd, os.fstat(fd).st_size + 8)  # 64 + 3 buckets of 16 + 3 x 3 counts of 8 = 184
        with pytest.raises(ValueError, match=r"is 192 bytes, expected 184$"):
            SharedLimits.attach(fd, TOKENS, WORKERS, RATE, WS)
    finally:
        os.close(fd)


def test_create_refuses_repeated_names_and_no_workers() -> None:
    with pytest.raises(ValueError, match="repeated: 'alice'"):
        SharedLimits.create(("alice", "bob", "alice"), WORKERS, RATE, WS)
    with pytest.raises(ValueError, match="at least one worker"):
        SharedLimits.create(TOKENS, 0, RATE, WS)


def test_the_segment_has_no_name_and_close_closes_its_fd() -> None:
    limits = SharedLimits.create(TOKENS, WORKERS, RATE, WS)
    fd = limits.fd
    assert os.readlink(f"/proc/self/fd/{fd}").endswith("(deleted)")  # nothing to clean up after a crash
    worker = attach_copy(limits)
    worker_fd = worker.fd
    worker.close()
    worker.close()  # twice is harmless
    limits.close()
    for closed in (fd, worker_fd):
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(closed)


# --- real processes -------------------------------------------------------------------------------


def child(fd: str, worker: str, job: str, config: str) -> None:
    """A worker process of the tests below: attaches, says `ready`, waits for `go` on stdin, does `job`."""
    settings = json.loads(config)
    rate = None if settings["rate"] is None else RateLimit(*settings["rate"])
    shared = SharedLimits.attach(int(fd), settings["tokens"], settings["workers"], rate, WsLimits(*settings["ws"]))
    print("ready", flush=True)
    assert sys.stdin.readline() == "go\n"
    attempts = settings["attempts"]
    if job == "take":
        limiter = shared.rate_limiter()
        print(json.dumps({"passed": sum(limiter.wait_seconds("alice") == 0.0 for _ in range(attempts))}), flush=True)
    elif job == "acquire":  # clients of alice (and bob) until refused
        connections = shared.ws_connections(int(worker))
        counts = {"acquired": 0, "429": 0, "503": 0}
        for attempt in range(attempts):
            try:
                connections.acquire(settings["tokens"][attempt % settings["keys"]])
                counts["acquired"] += 1
            except ApiError as refused:
                counts[str(refused.answer.status)] += 1
        print(json.dumps(counts), flush=True)
    elif job == "hold":  # two clients, then the lock, held until the test kills this process
        connections = shared.ws_connections(int(worker))
        connections.acquire("alice")
        connections.acquire("bob")
        with shared._locked():
            print("locked", flush=True)
            sys.stdin.readline()
    else:
        raise ValueError(job)


def crowd_config(shared: SharedLimits, attempts: int = 0, keys: int = 1) -> str:
    """What a child needs to attach, and the size of its job."""
    rate = None if shared.rate is None else [shared.rate.per_second, shared.rate.burst]
    described = {
        "tokens": shared.token_names,
        "workers": shared.workers,
        "rate": rate,
        "ws": [shared.ws.total, shared.ws.per_token],
        "attempts": attempts,
        "keys": keys,
    }
    return json.dumps(described)


@contextmanager
def children(shared: SharedLimits, job: str, config: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One child per worker, each ready (attached and waiting for `go`); killed and reaped on the way out."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for worker in range(shared.workers):
            command = [sys.executable, "-c", CHILD_CODE, str(shared.fd), str(worker), job, config]
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    pass_fds=[shared.fd],
                    bufsize=0,
                )
            )
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        for proc in procs:
            assert read_line(proc, deadline) == "ready"
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def read_line(proc: subprocess.Popen[bytes], deadline: float) -> str:
    """One line of the child's stdout, or fail by `deadline` (read unbuffered, so select tells the truth)."""
    assert proc.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        readable, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        assert readable, "the child did not answer in time"
        byte = os.read(proc.stdout.fileno(), 1)
        if not byte:
            proc.wait(timeout=10)
            raise AssertionError(f"the child exited ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''!r}")
        line += byte
    return line.decode().strip()


def run_to_the_end(procs: Sequence[subprocess.Popen[bytes]]) -> list[dict[str, int]]:
    """Start every child at once, then collect what each reported."""
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
        assert proc.returncode == 0, err.decode()
        reports.append(json.loads(out))
    return reports


def lock_is_free(fd: int) -> bool:
    """False while another process holds the segment's lock (never waits)."""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    fcntl.lockf(fd, fcntl.LOCK_UN)
    return True


PLACES = 12_000


@pytest.mark.parametrize(
    ("ws", "keys", "refused_as"),
    [(WsLimits(total=100_000, per_token=PLACES), 1, "429"), (WsLimits(total=PLACES, per_token=100_000), 2, "503")],
    ids=["per-token", "total"],
)
def test_racing_workers_open_exactly_the_limit(ws: WsLimits, keys: int, refused_as: str) -> None:
    attempts = 4000  # by each of 4 workers: 16000 tries for 12000 places, so they race for long
    with SharedLimits.create(TOKENS, 4, None, ws) as shared:
        with children(shared, "acquire", crowd_config(shared, attempts, keys)) as procs:
            reports = run_to_the_end(procs)
        assert sum(report["acquired"] for report in reports) == PLACES
        assert sum(report[refused_as] for report in reports) == 4 * attempts - PLACES
        # Each worker's clients were counted in its own slots, which is what release_worker drops.
        assert [shared.release_worker(worker) for worker in range(4)] == [report["acquired"] for report in reports]
        assert shared.ws_connections(0).open_total == 0


def test_racing_workers_pass_exactly_the_burst() -> None:
    burst = 1500  # a rate that refills nothing during the test: exactly the burst passes, over all workers
    with SharedLimits.create(TOKENS, 4, RateLimit(per_second=1e-9, burst=burst), WsLimits(1, 1)) as shared:
        with children(shared, "take", crowd_config(shared, attempts=1000)) as procs:
            reports = run_to_the_end(procs)
        assert sum(report["passed"] for report in reports) == burst
        assert shared.rate_limiter().wait_seconds("alice") > 0


def test_a_sigkilled_worker_leaves_its_clients_to_release_worker_and_no_lock_held() -> None:
    with SharedLimits.create(TOKENS, 2, None, WsLimits(total=10, per_token=1)) as shared:
        with children(shared, "hold", crowd_config(shared)) as procs:
            victim = procs[1]  # worker 1; worker 0 stays idle, waiting for `go`
            assert victim.stdin is not None
            victim.stdin.write(b"go\n")
            assert read_line(victim, time.monotonic() + CHILD_TIMEOUT_S) == "locked"
            assert not lock_is_free(shared.fd)
            victim.send_signal(signal.SIGKILL)
            assert victim.wait(timeout=10) == -signal.SIGKILL
        assert lock_is_free(shared.fd)  # the kernel dropped the dead worker's lock
        survivor = shared.ws_connections(0)
        assert (survivor.open_for("alice"), survivor.open_for("bob")) == (1, 1)
        with pytest.raises(ApiError):
            survivor.acquire("alice")  # the dead worker's client still counts, until...
        assert shared.release_worker(1) == 2
        survivor.acquire("alice")
        assert survivor.open_total == 1
