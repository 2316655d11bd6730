"""The soak's memory and CPU samples count a process with its children: gateway_http with workers
is a supervisor whose workers hold the memory and use the CPU."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

from launcher.processes import ManagedProcess, child_pids, wait_until
from launcher.system import Ports, System
from soak.__main__ import cpu_seconds, process_cpu, process_rss, rss_kb

HOLDER = "import time; held = bytearray(64 << 20); held[::4096] = b'x' * len(held[::4096]); time.sleep(60)"
BUSY = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\ntime.sleep(60)"


@contextlib.contextmanager
def parent_of(child_code: str) -> Iterator[ManagedProcess]:
    """A 'gateway_http' process whose one child runs `child_code`; both killed at the end."""
    parent = ManagedProcess("gateway_http", "unused")
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child_code!r}]); time.sleep(60)"
    parent.popen = subprocess.Popen([sys.executable, "-c", code])
    try:
        yield parent
    finally:
        for victim in [*child_pids(parent.popen.pid), parent.popen.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        parent.popen.wait(10)


def test_a_process_is_sampled_with_its_child_pids() -> None:
    with parent_of(HOLDER) as parent:
        assert parent.popen is not None
        pid = parent.popen.pid
        wait_until(lambda: len(child_pids(pid)) == 1 and (rss_kb(child_pids(pid)[0]) or 0) > 64 << 10, 20, "the child")
        sampled_pid, kb = process_rss(System(Ports(0, 0, 0, 0), [parent]))["gateway_http"]
        assert sampled_pid == pid
        assert kb >= (rss_kb(pid) or 0) + (64 << 10)  # the child's 64 MiB, touched page by page


def test_a_process_cpu_includes_its_child_pids() -> None:
    with parent_of(BUSY) as parent:
        assert parent.popen is not None
        pid = parent.popen.pid
        wait_until(lambda: len(child_pids(pid)) == 1 and (cpu_seconds(child_pids(pid)[0]) or 0) >= 0.5, 20, "the child")
        sampled_pid, used = process_cpu(System(Ports(0, 0, 0, 0), [parent]))["gateway_http"]
        assert sampled_pid == pid
        assert used >= (cpu_seconds(pid) or 0) + 0.5  # the child's half second spinning
