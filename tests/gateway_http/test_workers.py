"""The gateway's supervisor and workers as real processes (`python -m gateway_http` with
GATEWAY_HTTP_WORKERS=2; no provider is needed for what is checked here): workers that lose their
supervisor stop by themselves, a stop signal stops everything with status 0, and a worker that
keeps dying stops the gateway with status 1 instead of flapping forever; a bad
GATEWAY_HTTP_WORKERS is refused at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway_http.config import load_config
from gateway_http.workers import RESTART_LIMIT
from launcher.processes import REPO_ROOT, child_pids, free_port, port_open, wait_until
from service_runtime.config import ConfigError

pytestmark = pytest.mark.timeout(90)

WAIT_S = 20.0


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    workers: set[int] = set()  # every worker seen, for the clean-up (they run in their own sessions)
    log_path = tmp_path / "gateway_http.log"

    def start() -> subprocess.Popen[bytes]:
        port = free_port()
        env = {
            **os.environ,
            "GATEWAY_HTTP_ADDR": f"127.0.0.1:{port}",
            "PROVIDER_GRPC_ADDR": f"127.0.0.1:{free_port()}",
            "GATEWAY_HTTP_WORKERS": "2",
        }
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway_http"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        started.append(process)
        wait_until(lambda: port_open("127.0.0.1", port) and len(child_pids(process.pid)) == 2, WAIT_S, "2 workers")
        workers.update(child_pids(process.pid))
        return process

    yield start
    for process in started:
        workers.update(child_pids(process.pid))
        if process.poll() is None:
            process.kill()
            process.wait(WAIT_S)
    for pid in workers:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def replaced(supervisor: int, victim: int) -> Callable[[], bool]:
    """Two workers again, the victim not among them."""
    return lambda: len(now := child_pids(supervisor)) == 2 and victim not in now


def test_workers_stop_by_themselves_when_the_supervisor_is_killed(
    gateway: Callable[[], subprocess.Popen[bytes]],
) -> None:
    supervisor = gateway()
    workers = child_pids(supervisor.pid)
    supervisor.kill()
    supervisor.wait(WAIT_S)
    wait_until(lambda: not any(alive(pid) for pid in workers), WAIT_S, "the orphaned workers to stop")


def test_a_stop_signal_stops_every_worker_and_exits_0(gateway: Callable[[], subprocess.Popen[bytes]]) -> None:
    supervisor = gateway()
    workers = child_pids(supervisor.pid)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(WAIT_S) == 0
    assert not any(alive(pid) for pid in workers)


def test_a_worker_that_keeps_dying_stops_the_gateway_with_status_1(
    gateway: Callable[[], subprocess.Popen[bytes]],
) -> None:
    supervisor = gateway()
    seen = set(child_pids(supervisor.pid))
    for death in range(RESTART_LIMIT + 1):
        victim = child_pids(supervisor.pid)[0]
        os.kill(victim, signal.SIGKILL)
        if death < RESTART_LIMIT:
            wait_until(replaced(supervisor.pid, victim), WAIT_S, "a replacement")
            seen |= set(child_pids(supervisor.pid))
    assert supervisor.wait(WAIT_S) == 1
    assert not any(alive(pid) for pid in seen)  # the last one was stopped before the supervisor exited


def test_the_workers_setting_is_checked_at_start() -> None:
    assert load_config([], {}).workers == 1
    assert load_config([], {"GATEWAY_HTTP_WORKERS": "4"}).workers == 4
    for bad, says in (("0", "1..64"), ("65", "1..64"), ("two", "a number of worker processes")):
        with pytest.raises(ConfigError, match=f"GATEWAY_HTTP_WORKERS.*{says}"):
            load_config([], {"GATEWAY_HTTP_WORKERS": bad})
