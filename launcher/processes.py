"""Child processes with readiness checks and ordered, bounded shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def child_pids(pid: int) -> list[int]:
    """A process's children (Linux /proc), e.g. gateway_http's workers; [] once it is gone."""
    with contextlib.suppress(OSError):
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


class ProcessFailed(RuntimeError):
    pass


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `condition` until true; raise TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class ManagedProcess:
    """One `python -m <module>` child in its own session (so a terminal's Ctrl-C reaches only the
    supervisor, which then stops children in order)."""

    name: str
    module: str
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    ready_port: int | None = None
    log_path: Path | None = None
    popen: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **self.env}
        output: IO[bytes] | None = None
        if self.log_path is not None:
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            output = self._log_file
        self.popen = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        if self.ready_port is None:
            return

        def ready() -> bool:
            if self.popen is None or self.popen.poll() is not None:
                raise ProcessFailed(f"{self.name} exited with {self.returncode} before it was ready{self.log_tail()}")
            return port_open("127.0.0.1", self.ready_port or 0)

        wait_until(ready, timeout, f"{self.name} to listen on port {self.ready_port}")

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n--- " + self.name + " log ---\n" + "\n".join(tail)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.popen.returncode

    def kill(self) -> None:
        """kill -9, for crash tests."""
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
