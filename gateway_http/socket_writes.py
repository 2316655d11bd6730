"""One run of bytes written to many sockets at once, the loop's thread and helper threads sharing them.

A WebSocket fan-out flush writes the same bytes to every client of a stream, one `send` each. On
loopback most of a send is the kernel's (the sender's CPU also runs the receiver's side of TCP:
6-12 us per write on this project's 2-core test machine, bench/bench_loopback_writes.py), so with
thousands of clients one thread spends tens of milliseconds per flush and every frame behind it
waits. `os.write` releases the GIL for the system call, so helper threads can send at the same
time as the loop's own thread, on other cores (two threads: a fifth off the flush there,
docs/benchmarks.md, session 10).

The caller vouches for each descriptor (`DirectWriter.raw_fd`): the connection is open and nothing
is buffered in its transport ahead of these bytes. The event loop's thread blocks until every
part is written, so no loop callback runs meanwhile, and nothing can close one of the sockets (and
let its number be reused) or write to one out of order. What a socket did not take (full, or
failing) is handed back to the caller, who gives it to the transport: it buffers the rest, or meets
the connection's error and closes it, as for any write.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

# Each thread gets at least this many sockets, so a batch is split from twice as many up: smaller
# flushes stay on the caller's thread, without waking a helper for them. Not tuned: at 500 loopback
# connections one thread took 3.4-4.6 ms per flush (bench/bench_loopback_writes.py).
PARALLEL_MIN_SOCKETS = 256


def write_each(fds: Sequence[int], data: bytes) -> list[int]:
    """Write `data` once to each non-blocking socket; the bytes each took (0 if it took none or
    failed: its transport will meet the error again and handle it)."""
    write = os.write
    sent: list[int] = []
    for fd in fds:
        try:
            sent.append(write(fd, data))
        except OSError:  # EAGAIN (full) or the connection's error
            sent.append(0)
    return sent


class SocketWrites:
    """Writes one run of bytes to many sockets, split over `threads` threads: the caller's and
    `threads - 1` helpers (started at the first large write, ended by `close`)."""

    def __init__(self, threads: int = 2) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self.threads = threads
        self._helpers: ThreadPoolExecutor | None = None
        self._closed = False  # from then on everything is written on the caller's thread

    def write(self, fds: Sequence[int], data: bytes) -> list[int]:
        """`write_each` over `fds`, in parallel when there are many; returns in the order of `fds`."""
        parts = min(self.threads, len(fds) // PARALLEL_MIN_SOCKETS)
        if parts < 2 or self._closed:
            return write_each(fds, data)
        if self._helpers is None:
            self._helpers = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="ws-writes")
        size = -(-len(fds) // parts)
        futures = [
            self._helpers.submit(write_each, fds[start : start + size], data) for start in range(size, len(fds), size)
        ]
        sent = write_each(fds[:size], data)
        for future in futures:
            sent.extend(future.result())
        return sent

    def close(self) -> None:
        self._closed = True
        if self._helpers is not None:
            self._helpers.shutdown(wait=True)
            self._helpers = None
