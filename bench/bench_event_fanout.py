"""What one ticker/bookTicker/trade event costs gateway_http before its flush, by the number of clients.

Run from the repo root:  .venv/bin/python bench/bench_event_fanout.py [--clients 50,500,2000]

Baseline, in the same run: the event offered to each client in turn (`Subscriber.offer`, still the
path of depth and /ws/user frames), which is how event streams were sent before they shared one
batch. Measured: `EventFanOut.on_message`, which encodes the event once and adds it to the batch
shared by every client. Transports are stand-ins that take every write, so only the gateway's own
Python work is timed; the flush (one socket write per client) is left out of both. Its Python part,
the shared batch handed to each client's stand-in transport, is reported beside them per client.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web
from binance.provider.v1 import market_data_pb2 as md

from gateway_http.convert import encode, ws_trade
from gateway_http.streams import (
    DirectWriter,
    EventFanOut,
    StreamChannel,
    StreamKey,
    Subscriber,
    WriteBatcher,
    trade_frames,
)

KEY = StreamKey(StreamChannel.TRADES, "BTCUSDT")
ROUNDS = 300


class TakingTransport:
    """What DirectWriter uses of a transport: never backed up, every write taken."""

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return 16384, 65536

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> object:
        return None  # no socket: every flush goes through `write`

    def write(self, data: bytes) -> None:
        pass


class OpenWs:
    closed = False


def clients(n: int, batcher: WriteBatcher) -> list[Subscriber]:
    subs = []
    for _ in range(n):
        sub = Subscriber(KEY)
        transport = cast(asyncio.Transport, TakingTransport())
        sub.direct = DirectWriter(cast(web.WebSocketResponse, OpenWs()), transport, batcher)
        subs.append(sub)
    return subs


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


async def measure(n: int) -> tuple[float, float, float]:
    """Median µs per event: offered to each client in turn, and added to the shared batch; and the
    median µs per client of the shared batch's flush."""
    message = md.StreamTradesResponse(trades=[md.Trade(symbol="BTCUSDT", id=1, price="1", quantity="1", time_ms=1)])
    batcher = WriteBatcher()
    subs = clients(n, batcher)
    offered = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        frame = encode(ws_trade(message.trades[0]))
        for sub in subs:
            sub.offer(frame)
        offered.append(time.perf_counter() - started)
        batcher.flush()
    fanout = EventFanOut(KEY, trade_frames, batcher=batcher)
    for sub in clients(n, batcher):
        fanout.join(sub)
    shared, flushed = [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        fanout.on_message(message)
        shared.append(time.perf_counter() - started)
        started = time.perf_counter()
        batcher.flush()
        flushed.append((time.perf_counter() - started) / n)
    return median_us(offered), median_us(shared), median_us(flushed)


async def run(sizes: list[int]) -> None:
    print(f"one trade event, median of {ROUNDS} (µs), before its flush")
    print("| clients | offered to each client (baseline) | shared batch | ratio | its flush, per client |")
    print("|---|---|---|---|---|")
    for n in sizes:
        offered, shared, flushed = await measure(n)
        print(f"| {n:,} | {offered:,.1f} | {shared:,.1f} | {offered / shared:,.0f}x | {flushed:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", default="50,500,2000", help="comma-separated client counts")
    args = parser.parse_args()
    asyncio.run(run([int(n) for n in args.clients.split(",")]))


if __name__ == "__main__":
    main()
