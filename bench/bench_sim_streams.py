"""Simulator stream server throughput: depth diff events per second delivered over loopback.

Run from the repo root:  .venv/bin/python bench/bench_sim_streams.py [--seconds 3] [--runs 3] [--connections 1,100]

The server (StreamHub + the aiohttp stream routes) runs in this process on a free 127.0.0.1 port; the
clients run in a separate process (a plain aiohttp client), each connection on
``/stream?streams=btcusdt@depth@100ms`` (combined framing). The publisher calls ``hub.publish`` with
pre-encoded ~300-byte depthUpdate payloads as fast as it can for ``--seconds``, yielding to the loop
after each batch and holding back while any connection has more than half its queue waiting (so the
run measures throughput, not the slow-consumer rule). Each client connection counts frames from its
first to its last; reported per run: events/s received by one connection (median over connections)
and in total, then the median of the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from exchange_sim.hub import StreamHub  # noqa: E402
from exchange_sim.wire.streams import add_stream_routes  # noqa: E402

STREAM = "btcusdt@depth@100ms"
END = b'{"end":true}'
BATCH = 64


def depth_payloads(n: int) -> list[bytes]:
    """`n` depthUpdate events shaped like BTCUSDT's, ~300 bytes each, with contiguous update ids."""
    out: list[bytes] = []
    update_id = 50_000_000_000
    for i in range(n):
        bid = 60_000 + (i % 50) * 0.01
        first = update_id + 1
        update_id += 4
        event = {
            "e": "depthUpdate",
            "E": 1_723_100_000_000 + i,
            "s": "BTCUSDT",
            "U": first,
            "u": update_id,
            "b": [[f"{bid - k * 0.01:.8f}", f"{0.1 + k * 0.013 + (i % 7) * 0.001:.8f}"] for k in range(3)],
            "a": [[f"{bid + 0.01 + k * 0.01:.8f}", f"{0.2 + k * 0.017 + (i % 5) * 0.001:.8f}"] for k in range(3)],
        }
        out.append(orjson.dumps(event))
    return out


# --------------------------------------------------------------------------- client process


async def client_main(url: str, connections: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(url, autoping=True, max_msg_size=0) for _ in range(connections)]
        print("ready", flush=True)

        async def count(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, float, float]:
            n = 0
            first = last = 0.0
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                if msg.data.endswith('"data":{"end":true}}'):
                    break
                last = time.perf_counter()
                if n == 0:
                    first = last
                n += 1
            return n, first, last

        results = await asyncio.gather(*(count(ws) for ws in sockets))
        for ws in sockets:
            await ws.close()
    print(orjson.dumps(results).decode(), flush=True)


# --------------------------------------------------------------------------- server side


async def one_run(connections: int, seconds: float, payloads: list[bytes]) -> tuple[float, float]:
    hub = StreamHub()
    app = web.Application()
    add_stream_routes(app, hub)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}/stream?streams={STREAM}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        url,
        "--connections",
        str(connections),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise SystemExit(f"client failed to start: {line!r}")
        high = hub.queue_limit // 2
        publish = hub.publish
        count = len(payloads)
        i = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if max(sub.pending for sub in hub.subscribers) < high:
                for _ in range(BATCH):
                    publish(STREAM, payloads[i % count])
                    i += 1
            await asyncio.sleep(0)
        publish(STREAM, END)
        out = await asyncio.wait_for(proc.stdout.readline(), 120)
        await asyncio.wait_for(proc.wait(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await runner.cleanup()
    results = orjson.loads(out)
    if hub.counters["slow_consumer_closes"]:
        raise SystemExit("a client was closed as a slow consumer")
    rates = [n / (last - first) for n, first, last in results if n > 1 and last > first]
    total = sum(n for n, _, _ in results) / (max(r[2] for r in results) - min(r[1] for r in results))
    return statistics.median(rates), total


async def bench(connection_counts: list[int], seconds: float, runs: int) -> None:
    payloads = depth_payloads(4096)
    size = statistics.mean(len(p) for p in payloads)
    print(f"payload: depthUpdate, {size:.0f} bytes on average; combined framing; {seconds:g} s per run")
    for connections in connection_counts:
        per_conn: list[float] = []
        totals: list[float] = []
        for _ in range(runs):
            one, total = await one_run(connections, seconds, payloads)
            per_conn.append(one)
            totals.append(total)
        print(
            f"{connections:4d} connection(s): {statistics.median(per_conn):>10,.0f} events/s per connection, "
            f"{statistics.median(totals):>10,.0f} events/s in total "
            f"(median of {runs}; per connection runs: {', '.join(f'{r:,.0f}' for r in per_conn)})",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", default="1,100", help="comma-separated connection counts")
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client_main(args.client, int(args.connections)))
        return 0
    asyncio.run(bench([int(n) for n in args.connections.split(",")], args.seconds, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
