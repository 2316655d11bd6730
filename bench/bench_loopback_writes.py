"""What one small write to a loopback TCP connection costs the writer, by how long the reader slept.

Run from the repo root:  .venv/bin/python bench/bench_loopback_writes.py [--connections 5,50] [--writes 2000]

The gateway's WebSocket fan-out spends most of its time in `transport.write`, one per connection
per flush, so this cost sets its floor. A uvloop server in this process writes one 100-byte message to
each of N connections in turn, then waits a gap; the reader, a plain epoll loop in another process,
takes whatever arrives. Reported: the writer's wall time per `transport.write`, median over rounds,
for each gap. A reader that was asleep must be woken by the write, and the writer pays for that; on
a virtual machine with idle cores it can be several times the cost of the write itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import socket
import statistics
import time
from typing import cast

import uvloop

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


async def per_write_us(connections: int, writes: int) -> dict[float, float]:
    """Median µs per transport.write over rounds, for each gap between rounds."""
    transports: list[asyncio.Transport] = []
    connected = asyncio.Event()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transports.append(cast(asyncio.Transport, transport))  # uvloop's do not subclass it
            if len(transports) == connections:
                connected.set()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    child = os.fork()
    if child == 0:
        read_until_closed(port, connections)
        os._exit(0)
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
        return results
    finally:
        for transport in transports:
            transport.close()
        server.close()
        await asyncio.to_thread(os.waitpid, child, 0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", default="5,50", help="comma-separated connection counts")
    parser.add_argument("--writes", type=int, default=2000, help="writes per gap, at most (rounds x connections)")
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"loopback writes; {os.cpu_count()} cores; load average {load}")
    print("| connections | " + " | ".join(f"reader idle {gap * 1000:g} ms: µs per write" for gap in GAPS_S) + " |")
    print("|---|" + "---|" * len(GAPS_S))
    for n in (int(x) for x in args.connections.split(",")):
        results = await per_write_us(n, args.writes)
        print(f"| {n} | " + " | ".join(f"{results[gap]:.1f}" for gap in GAPS_S) + " |", flush=True)


if __name__ == "__main__":
    uvloop.run(main())
