"""Streaming reader of the recorded Binance spot market data (../shared/data/binance-recorded/).

Two formats (see that folder's README):

* hftbacktest ``.gz``: gzip text, one ``<recv_time_ns> <raw payload>`` per line; a WebSocket frame is
  the verbatim combined-stream text ``{"stream": ..., "data": {...}}``, a REST depth snapshot is the
  verbatim response body ``{"lastUpdateId": ..., "bids": ..., "asks": ...}``. One symbol per file.
* cryptofeed ``.jsonl.zst``: zstd JSON Lines; ``{"t": "recv", "ts": <unix s>, "data": "<raw WS frame>"}``
  and ``{"t": "http", "ts": ..., "url": ..., "data": "<raw response body>"}`` carry the payloads
  (``header`` and ``connect`` lines carry none and are skipped).

Both yield :class:`Record` values in file order, one at a time (nothing is read ahead), so the
simulator can replay a file over WebSocket as it reads it. Pure: no clocks, no sockets.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import zstandard

__all__ = [
    "Record",
    "RecordKind",
    "classify_payload",
    "parse_cryptofeed_line",
    "parse_hftbacktest_line",
    "read_cryptofeed",
    "read_hftbacktest",
    "read_recorded",
    "symbol_from_filename",
]


class RecordKind(Enum):
    DEPTH_DIFF = "depth_diff"  # <sym>@depth[@100ms] depthUpdate
    DEPTH_SNAPSHOT = "depth_snapshot"  # REST GET /api/v3/depth body
    PARTIAL_DEPTH = "partial_depth"  # <sym>@depth<N>[@100ms] (top-N snapshot over WS)
    BOOK_TICKER = "book_ticker"
    TRADE = "trade"
    AGG_TRADE = "agg_trade"
    KLINE = "kline"
    EXCHANGE_INFO = "exchange_info"  # REST GET /api/v3/exchangeInfo body
    OTHER = "other"  # any other stream event or REST body (kept, never dropped)


@dataclass(frozen=True, slots=True)
class Record:
    recv_time_ns: int
    """Local receive time of the recorder, ns since the epoch (NOT comparable with ``E``)."""
    kind: RecordKind
    symbol: str | None
    """Upper-case symbol; None when unknown (exchangeInfo, or a snapshot of an unnamed file)."""
    payload: dict[str, Any]
    """The Binance payload: the ``data`` of a stream frame, or a REST response body."""
    raw: str
    """Exact text as received: the whole WebSocket frame (combined-stream wrapper included), or the
    REST response body."""
    stream: str | None = None
    """Combined-stream name (``btcusdt@depth@100ms``) of a WebSocket frame; None for REST."""
    url: str | None = None
    """Request URL of a REST record when recorded (cryptofeed); None otherwise."""
    line_no: int = 0
    """1-based line number in the decompressed file."""


_EVENT_KINDS = {
    "depthUpdate": RecordKind.DEPTH_DIFF,
    "trade": RecordKind.TRADE,
    "aggTrade": RecordKind.AGG_TRADE,
    "kline": RecordKind.KLINE,
}


def classify_payload(stream: str | None, data: dict[str, Any]) -> tuple[RecordKind, str | None]:
    """Kind and upper-case symbol of one stream payload (``data``) given its stream name."""
    symbol = data.get("s")
    if not isinstance(symbol, str):
        symbol = stream.split("@", 1)[0].upper() if stream else None
    event = data.get("e")
    if isinstance(event, str):
        return _EVENT_KINDS.get(event, RecordKind.OTHER), symbol
    if "lastUpdateId" in data:  # partial depth: no e/E/s
        return RecordKind.PARTIAL_DEPTH, symbol
    if (stream is not None and stream.endswith("@bookTicker")) or {"u", "b", "B", "a", "A"} <= data.keys():
        return RecordKind.BOOK_TICKER, symbol
    return RecordKind.OTHER, symbol


def _rest_record(
    recv_time_ns: int, body: dict[str, Any], raw: str, url: str | None, symbol: str | None, line_no: int
) -> Record:
    path = urlsplit(url).path if url else ""
    if url:
        query = parse_qs(urlsplit(url).query)
        if "symbol" in query:
            symbol = query["symbol"][0].upper()
    if path.endswith("/exchangeInfo") or (not path and "symbols" in body and "rateLimits" in body):
        return Record(recv_time_ns, RecordKind.EXCHANGE_INFO, None, body, raw, None, url, line_no)
    if "lastUpdateId" in body and (not path or path.endswith("/depth")):
        return Record(recv_time_ns, RecordKind.DEPTH_SNAPSHOT, symbol, body, raw, None, url, line_no)
    return Record(recv_time_ns, RecordKind.OTHER, symbol, body, raw, None, url, line_no)


def _ws_record(recv_time_ns: int, frame: dict[str, Any], raw: str, line_no: int) -> Record:
    stream = frame.get("stream")
    data = frame.get("data")
    if isinstance(stream, str) and isinstance(data, dict):
        kind, symbol = classify_payload(stream, data)
        return Record(recv_time_ns, kind, symbol, data, raw, stream, None, line_no)
    # A raw (/ws) frame, without the combined-stream wrapper.
    kind, symbol = classify_payload(None, frame)
    return Record(recv_time_ns, kind, symbol, frame, raw, None, None, line_no)


def parse_hftbacktest_line(line: str, symbol: str | None = None, line_no: int = 0) -> Record:
    """Parse one ``<recv_time_ns> <raw json>`` line. ``symbol`` names REST snapshots (they carry none)."""
    head, sep, raw = line.rstrip("\r\n").partition(" ")
    if not sep or not head.isdigit():
        raise ValueError(f"line {line_no}: expected '<recv_time_ns> <json>'")
    obj = orjson.loads(raw)
    if not isinstance(obj, dict):
        raise ValueError(f"line {line_no}: payload is not a JSON object")
    if "lastUpdateId" in obj and "stream" not in obj:
        return _rest_record(int(head), obj, raw, None, symbol, line_no)
    return _ws_record(int(head), obj, raw, line_no)


_FILE_SYMBOL = re.compile(r"(?:^|_)([a-z0-9]+)_\d{8}\.gz$", re.IGNORECASE)


def symbol_from_filename(path: str | Path) -> str | None:
    """``hftbacktest_spot_btcusdt_20240808.gz`` -> ``BTCUSDT``."""
    m = _FILE_SYMBOL.search(Path(path).name)
    return m.group(1).upper() if m else None


def _lines(stream: Iterable[str]) -> Iterator[tuple[int, str]]:
    for line_no, line in enumerate(stream, 1):
        if line.strip():
            yield line_no, line


def read_hftbacktest(path: str | Path, symbol: str | None = None) -> Iterator[Record]:
    """Records of an hftbacktest ``.gz`` file in file order.

    A REST snapshot carries no symbol: it gets ``symbol``, else the one in the file name, else the
    symbol of the last stream frame read before it.
    """
    sym = symbol or symbol_from_filename(path)
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
        for line_no, line in _lines(f):
            rec = parse_hftbacktest_line(line, sym, line_no)
            if sym is None and rec.stream is not None:
                sym = rec.symbol
            yield rec


def _seconds_to_ns(ts: object) -> int:
    if isinstance(ts, int):
        return ts * 1_000_000_000
    if isinstance(ts, float):
        # repr() is the shortest text that round-trips, i.e. what was written: convert it exactly.
        return int(Decimal(repr(ts)) * 1_000_000_000)
    raise ValueError(f"bad timestamp {ts!r}")


def parse_cryptofeed_line(line: str, line_no: int = 0) -> Record | None:
    """Parse one cryptofeed JSON line; None for lines without a payload (header, connect, ...)."""
    obj = orjson.loads(line)
    if not isinstance(obj, dict):
        raise ValueError(f"line {line_no}: not a JSON object")
    t = obj.get("t")
    if t not in ("recv", "http"):
        return None
    raw = obj.get("data")
    if not isinstance(raw, str):
        raise ValueError(f"line {line_no}: 'data' is not a string")
    recv = _seconds_to_ns(obj.get("ts"))
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        raise ValueError(f"line {line_no}: payload is not a JSON object")
    if t == "http":
        url = obj.get("url")
        return _rest_record(recv, body, raw, url if isinstance(url, str) else None, None, line_no)
    return _ws_record(recv, body, raw, line_no)


def read_cryptofeed(path: str | Path) -> Iterator[Record]:
    """Records of a cryptofeed ``.jsonl.zst`` file in file order (payload-less lines skipped)."""
    with (
        open(path, "rb") as fh,
        zstandard.ZstdDecompressor().stream_reader(fh) as reader,
        io.TextIOWrapper(reader, encoding="utf-8", newline="\n") as text,
    ):
        for line_no, line in _lines(text):
            rec = parse_cryptofeed_line(line, line_no)
            if rec is not None:
                yield rec


def read_recorded(path: str | Path) -> Iterator[Record]:
    """Dispatch on the file name: ``*.zst`` is cryptofeed, ``*.gz`` hftbacktest."""
    name = Path(path).name
    if name.endswith(".zst"):
        return read_cryptofeed(path)
    if name.endswith(".gz"):
        return read_hftbacktest(path)
    raise ValueError(f"unknown recorded format: {name}")
