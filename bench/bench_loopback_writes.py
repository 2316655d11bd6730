"""What one small write to a loopback TCP connection costs the writer, by how long the reader slept.

Run from the repo root:
  .venv/bin/python bench/bench_loopback_writes.py [--connections 5,50] [--writes 2000] [--readers 1]

The gateway's WebSocket fan-out spends most of its time in `transport.write`, one per connection
per flush, so this cost sets its floor. A uvloop server in this process writes one 100-byte message to
each of N connections in turn, then waits a gap; the reader, a plain epoll loop in another process,
takes whatever arrives. Reported: the writer's wall time per `transport.write`, median over rounds,
for each gap. A reader that was asleep must be woken by the write, and the writer pays for that; on
a virtual machine with idle cores it can be several times the cost of the write itself.

A second table times one whole flush (the message to every connection, 25 ms apart, as the gateway's
fan-out at thousands of clients): through each transport, and straight to the sockets with the
gateway's `SocketWrites` on one thread and on two, rounds of the three interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway_http.socket_writes import SocketWrites

MESSAGE = b"x" * 100
GAPS_S = (0.0005, 0.01, 0.1)


def read_until_closed(port: int, connections: int) -> None:
    """The reader (a forked child): take everything from every connection until all are closed."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    poller = select.epoll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    left = connections
    while left:
        for fd, _ in poller.poll():
            if not by_fd[fd].recv(65536):
                poller.unregister(fd)
                left -= 1


FLUSH_GAP_S = 0.025
FLUSH_ROUNDS = 60


async def flush_ms(transports: list[asyncio.Transport]) -> dict[str, float]:
    """Median ms per flush to every connection, for each way of writing (interleaved rounds).
    `SocketWrites` splits a flush only from 2 x PARALLEL_MIN_SOCKETS connections up."""
    fds = [transport.get_extra_info("socket").fileno() for transport in transports]
    one, two = SocketWrites(threads=1), SocketWrites(threads=2)

    def through_transports() -> None:
        for transport in transports:
            transport.write(MESSAGE)

    writers: dict[str, Callable[[], object]] = {
        "transport.write": through_transports,
        "SocketWrites, 1 thread": lambda: one.write(fds, MESSAGE),
        "SocketWrites, 2 threads": lambda: two.write(fds, MESSAGE),
    }
    times: dict[str, list[float]] = {name: [] for name in writers}
    try:
        for _ in range(FLUSH_ROUNDS):
            for name, flush in writers.items():
                await asyncio.sleep(FLUSH_GAP_S)
                started = time.perf_counter()
                flush()
                times[name].append((time.perf_counter() - started) * 1000)
    finally:
        two.close()
    return {name: statistics.median(values) for name, values in times.items()}


async def per_write_us(connections: int, writes: int, readers: int = 1) -> tuple[dict[float, float], dict[str, float]]:
    """Median µs per transport.write over rounds, for each gap between rounds; and `flush_ms`."""
    transports: list[asyncio.Transport] = []
    connected = asyncio.Event()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transports.append(cast(asyncio.Transport, transport))  # uvloop's do not subclass it
            if len(transports) == connections:
                connected.set()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Accept, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    children = []
    for reader in range(readers):  # each takes its share of the connections
        share = connections // readers + (reader < connections % readers)
        child = os.fork()
        if child == 0:
            read_until_closed(port, share)
            os._exit(0)
        children.append(child)
    try:
        await asyncio.wait_for(connected.wait(), 10)
        results = {}
        for gap in GAPS_S:
            rounds = max(20, min(writes // connections, int(5 / gap)))  # at most ~5 s per gap
            costs = []
            for _ in range(rounds):
                started = time.perf_counter()
                for transport in transports:
                    transport.write(MESSAGE)
                costs.append((time.perf_counter() - started) / connections * 1e6)
                await asyncio.sleep(gap)
            results[gap] = statistics.median(costs)
        return results, await flush_ms(transports)
    finally:
        for transport in transports:
            transport.close()
        server.close()
        for child in children:
            await asyncio.to_thread(os.waitpid, child, 0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", default="5,50", help="comma-separated connection counts")
    parser.add_argument("--writes", type=int, default=2000, help="writes per gap, at most (rounds x connections)")
    parser.add_argument("--readers", type=int, default=1, help="reader processes sharing the connections")
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"loopback writes; {os.cpu_count()} cores; {args.readers} reader processes; load average {load}")
    print("| connections | " + " | ".join(f"reader idle {gap * 1000:g} ms: µs per write" for gap in GAPS_S) + " |")
    print("|---|" + "---|" * len(GAPS_S))
    flushes: dict[int, dict[str, float]] = {}
    for n in (int(x) for x in args.connections.split(",")):
        results, flushes[n] = await per_write_us(n, args.writes, args.readers)
        print(f"| {n} | " + " | ".join(f"{results[gap]:.1f}" for gap in GAPS_S) + " |", flush=True)
    names = list(next(iter(flushes.values())))
    print(f"One flush to every connection, {FLUSH_GAP_S * 1000:g} ms apart, ms (median of {FLUSH_ROUNDS}):")
    print("| connections | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for n, by_name in flushes.items():
        print(f"| {n} | " + " | ".join(f"{by_name[name]:.2f}" for name in names) + " |")


if __name__ == "__main__":
    uvloop.run(main())
