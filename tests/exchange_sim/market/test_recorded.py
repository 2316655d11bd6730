"""The recorded-data reader (exchange_sim.market.recorded): synthetic lines, then the real files."""

from __future__ import annotations

import gzip
import itertools
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard

from exchange_sim.market.recorded import (
    Record,
    RecordKind,
    classify_payload,
    parse_cryptofeed_line,
    parse_hftbacktest_line,
    read_cryptofeed,
    read_hftbacktest,
    read_recorded,
    symbol_from_filename,
)

REPO = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("SHARED_DIR") or REPO / ".." / "shared")
DATA = SHARED / "data" / "binance-recorded"
BTC = DATA / "hftbacktest_spot_btcusdt_20240808.gz"
ETH = DATA / "hftbacktest_spot_ethusdt_20240808.gz"
CRYPTOFEED = DATA / "cryptofeed_BINANCE.jsonl.zst"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"recorded data folder {DATA} is absent (set SHARED_DIR to the shared folder)"
)

DIFF = {"e": "depthUpdate", "E": 5, "s": "BTCUSDT", "U": 1, "u": 2, "b": [["1.0", "2"]], "a": []}
TICKER = {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "4"}


# --------------------------------------------------------------------------- classification
@pytest.mark.parametrize(
    ("stream", "data", "kind", "symbol"),
    [
        ("btcusdt@depth@100ms", DIFF, RecordKind.DEPTH_DIFF, "BTCUSDT"),
        ("bnbusdt@bookTicker", TICKER, RecordKind.BOOK_TICKER, "BNBUSDT"),
        (None, TICKER, RecordKind.BOOK_TICKER, "BNBUSDT"),  # no stream name: by its keys
        ("x@trade", {"e": "trade", "s": "BNBBTC", "t": 1}, RecordKind.TRADE, "BNBBTC"),
        ("x@aggTrade", {"e": "aggTrade", "s": "BNBBTC", "a": 1}, RecordKind.AGG_TRADE, "BNBBTC"),
        ("x@kline_1m", {"e": "kline", "s": "BNBBTC", "k": {}}, RecordKind.KLINE, "BNBBTC"),
        ("ethbtc@depth5@100ms", {"lastUpdateId": 1, "bids": [], "asks": []}, RecordKind.PARTIAL_DEPTH, "ETHBTC"),
        ("x@avgPrice", {"e": "avgPrice", "s": "BTCUSDT"}, RecordKind.OTHER, "BTCUSDT"),
        (None, {"foo": 1}, RecordKind.OTHER, None),
    ],
)
def test_classify_payload(stream: str | None, data: dict[str, Any], kind: RecordKind, symbol: str | None) -> None:
    assert classify_payload(stream, data) == (kind, symbol)


def test_parse_hftbacktest_stream_line() -> None:
    raw = orjson.dumps({"stream": "btcusdt@depth@100ms", "data": DIFF}).decode()
    rec = parse_hftbacktest_line(f"1723161253937085768 {raw}\n", line_no=7)
    assert rec == Record(
        1723161253937085768, RecordKind.DEPTH_DIFF, "BTCUSDT", DIFF, raw, "btcusdt@depth@100ms", None, 7
    )


def test_parse_hftbacktest_snapshot_line_takes_given_symbol() -> None:
    raw = '{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[]}'
    rec = parse_hftbacktest_line(f"5 {raw}", symbol="BNBBTC")
    assert (rec.kind, rec.symbol, rec.stream, rec.raw) == (RecordKind.DEPTH_SNAPSHOT, "BNBBTC", None, raw)
    assert rec.payload["lastUpdateId"] == 160
    assert parse_hftbacktest_line(f"5 {raw}").symbol is None


def test_parse_hftbacktest_raw_ws_frame() -> None:
    rec = parse_hftbacktest_line("5 " + orjson.dumps(TICKER).decode())
    assert (rec.kind, rec.symbol, rec.stream, rec.payload) == (RecordKind.BOOK_TICKER, "BNBUSDT", None, TICKER)


@pytest.mark.parametrize("line", ["", "abc {}", "12{}", "12 [1,2]", "12 {bad json"])
def test_parse_hftbacktest_rejects(line: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - orjson.JSONDecodeError is a ValueError too
        parse_hftbacktest_line(line)


def test_parse_cryptofeed_lines() -> None:
    assert parse_cryptofeed_line('{"t":"header","format":2}') is None
    assert parse_cryptofeed_line('{"t":"connect","conn":"x","ts":1.5,"addr":"wss://x"}') is None
    frame = orjson.dumps({"stream": "nknusdt@depth@100ms", "data": DIFF}).decode()
    line = orjson.dumps({"t": "recv", "conn": "c", "ts": 1633998512.0633569, "data": frame}).decode()
    rec = parse_cryptofeed_line(line, line_no=3)
    assert rec is not None
    assert (rec.kind, rec.symbol, rec.raw, rec.line_no) == (RecordKind.DEPTH_DIFF, "BTCUSDT", frame, 3)
    assert rec.recv_time_ns == 1633998512063356900  # the text's digits, converted exactly
    body = '{"lastUpdateId":7,"bids":[],"asks":[]}'
    url = "https://api.binance.com/api/v3/depth?symbol=nknusdt&limit=1000"
    rec = parse_cryptofeed_line(orjson.dumps({"t": "http", "ts": 2, "url": url, "data": body}).decode())
    assert rec is not None
    assert (rec.kind, rec.symbol, rec.url, rec.recv_time_ns) == (RecordKind.DEPTH_SNAPSHOT, "NKNUSDT", url, 2 * 10**9)
    info = orjson.dumps({"timezone": "UTC", "rateLimits": [], "symbols": []}).decode()
    url = "https://api.binance.com/api/v3/exchangeInfo"
    rec = parse_cryptofeed_line(orjson.dumps({"t": "http", "ts": 2.5, "url": url, "data": info}).decode())
    assert rec is not None
    assert (rec.kind, rec.symbol) == (RecordKind.EXCHANGE_INFO, None)


@pytest.mark.parametrize(
    "line",
    [
        '{"t":"recv","ts":1,"data":{"a":1}}',  # data must be the raw text
        '{"t":"recv","ts":"x","data":"{}"}',
        '{"t":"recv","ts":1,"data":"[1]"}',
        "[1]",
    ],
)
def test_parse_cryptofeed_rejects(line: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        parse_cryptofeed_line(line)


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("hftbacktest_spot_btcusdt_20240808.gz", "BTCUSDT"),
        ("ethusdt_20240809.gz", "ETHUSDT"),
        ("/a/b/spot_1000satsusdt_20240808.gz", "1000SATSUSDT"),
        ("BINANCE.jsonl.zst", None),
        ("btcusdt.gz", None),
    ],
)
def test_symbol_from_filename(name: str, symbol: str | None) -> None:
    assert symbol_from_filename(name) == symbol


# --------------------------------------------------------------------------- files (synthetic)
def write_gz(path: Path, lines: list[str]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def test_read_hftbacktest_file(tmp_path: Path) -> None:
    frame = orjson.dumps({"stream": "bnbbtc@depth@100ms", "data": DIFF | {"s": "BNBBTC"}}).decode()
    path = tmp_path / "unnamed.gz"
    write_gz(path, [f"1 {frame}", "", '2 {"lastUpdateId":1,"bids":[],"asks":[]}'])
    recs = list(read_hftbacktest(path))
    assert [(r.recv_time_ns, r.kind, r.symbol, r.line_no) for r in recs] == [
        (1, RecordKind.DEPTH_DIFF, "BNBBTC", 1),
        (2, RecordKind.DEPTH_SNAPSHOT, "BNBBTC", 3),  # named after the stream read before it
    ]
    assert [r.symbol for r in read_hftbacktest(path, symbol="XYZ")] == ["BNBBTC", "XYZ"]


def test_read_cryptofeed_file(tmp_path: Path) -> None:
    frame = orjson.dumps({"stream": "bnbusdt@bookTicker", "data": TICKER}).decode()
    lines = [
        '{"t":"header","format":2}',
        orjson.dumps({"t": "recv", "conn": "c", "ts": 1.25, "data": frame}).decode(),
    ]
    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress("\n".join(lines).encode() + b"\n"))
    recs = list(read_recorded(path))
    assert [(r.recv_time_ns, r.kind, r.symbol, r.stream, r.line_no) for r in recs] == [
        (1_250_000_000, RecordKind.BOOK_TICKER, "BNBUSDT", "bnbusdt@bookTicker", 2)
    ]


def test_read_recorded_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown"):
        read_recorded(tmp_path / "x.csv")


def test_reader_is_lazy(tmp_path: Path) -> None:
    """Records come one at a time: a bad line far down does not stop the first records."""
    frame = orjson.dumps({"stream": "bnbbtc@trade", "data": {"e": "trade", "s": "BNBBTC"}}).decode()
    path = tmp_path / "x_20240101.gz"
    write_gz(path, [f"1 {frame}", f"2 {frame}", "garbage"])
    it = read_hftbacktest(path)
    assert isinstance(it, Iterator)
    assert next(it).recv_time_ns == 1
    assert next(it).recv_time_ns == 2
    with pytest.raises(ValueError, match="line 3"):
        next(it)


# --------------------------------------------------------------------------- the real files
@needs_data
@pytest.mark.parametrize(
    ("path", "sym", "lines", "counts", "snapshot_line", "snapshot_id"),
    [
        (BTC, "BTCUSDT", 41249, (3451, 28040, 9757), 8, 50093239218),
        (ETH, "ETHUSDT", 33618, (3434, 24077, 6106), 6, 35346513512),
    ],
)
def test_hftbacktest_files(
    path: Path, sym: str, lines: int, counts: tuple[int, int, int], snapshot_line: int, snapshot_id: int
) -> None:
    recs = list(read_recorded(path))
    assert len(recs) == lines
    diffs_n, tickers_n, trades_n = counts
    assert Counter(r.kind for r in recs) == {
        RecordKind.DEPTH_DIFF: diffs_n,
        RecordKind.BOOK_TICKER: tickers_n,
        RecordKind.TRADE: trades_n,
        RecordKind.DEPTH_SNAPSHOT: 1,
    }
    assert {r.symbol for r in recs} == {sym}
    assert [r.line_no for r in recs] == list(range(1, lines + 1))  # file order, nothing skipped
    snap = next(r for r in recs if r.kind is RecordKind.DEPTH_SNAPSHOT)
    assert (snap.line_no, snap.payload["lastUpdateId"]) == (snapshot_line, snapshot_id)
    assert len(snap.payload["bids"]) == len(snap.payload["asks"]) == 1000
    assert orjson.loads(snap.raw) == snap.payload
    streams = {r.stream for r in recs if r.stream is not None}
    assert streams == {f"{sym.lower()}@depth@100ms", f"{sym.lower()}@bookTicker", f"{sym.lower()}@trade"}
    assert all(orjson.loads(r.raw) == {"stream": r.stream, "data": r.payload} for r in recs[:200] if r.stream)
    # contiguous diffs
    diffs = [r.payload for r in recs if r.kind is RecordKind.DEPTH_DIFF]
    assert all(b["U"] == a["u"] + 1 for a, b in itertools.pairwise(diffs))
    # the recorder's clock ran ~1.27 s behind Binance: recv_time < E is normal
    lag = [(r.payload["E"] * 1_000_000 - r.recv_time_ns) / 1e6 for r in recs if r.kind is RecordKind.DEPTH_DIFF]
    assert 1200 < min(lag) <= max(lag) < 1300


@needs_data
def test_hftbacktest_btc_first_lines() -> None:
    it = read_hftbacktest(BTC)
    first = next(it)
    assert first.recv_time_ns == 1723161253937085768
    assert (first.payload["U"], first.payload["u"]) == (50093239189, 50093239202)
    kinds = [first.kind] + [next(it).kind for _ in range(7)]
    assert kinds == [
        RecordKind.DEPTH_DIFF,
        RecordKind.DEPTH_DIFF,
        RecordKind.BOOK_TICKER,
        RecordKind.TRADE,
        RecordKind.BOOK_TICKER,
        RecordKind.DEPTH_DIFF,
        RecordKind.BOOK_TICKER,
        RecordKind.DEPTH_SNAPSHOT,
    ]


@needs_data
def test_cryptofeed_file() -> None:
    recs = list(read_cryptofeed(CRYPTOFEED))
    assert len(recs) == 270  # 272 lines minus the header and the connect line
    kinds = Counter((r.kind.value, r.symbol) for r in recs)
    assert kinds == {
        ("exchange_info", None): 1,
        ("depth_snapshot", "NKNUSDT"): 1,
        ("depth_snapshot", "BLZETH"): 1,
        ("depth_snapshot", "LRCBTC"): 1,
        ("depth_snapshot", "RUNEEUR"): 1,
        ("depth_diff", "NKNUSDT"): 150,
        ("depth_diff", "BLZETH"): 10,
        ("depth_diff", "LRCBTC"): 15,
        ("depth_diff", "RUNEEUR"): 2,
        ("book_ticker", "NKNUSDT"): 74,
        ("book_ticker", "BLZETH"): 1,
        ("book_ticker", "LRCBTC"): 9,
        ("agg_trade", "NKNUSDT"): 1,
        ("agg_trade", "LRCBTC"): 1,
        ("kline", "NKNUSDT"): 1,
        ("kline", "LRCBTC"): 1,
    }
    info = recs[0]
    assert info.kind is RecordKind.EXCHANGE_INFO
    assert info.url == "https://api.binance.com/api/v3/exchangeInfo"
    assert len(info.raw) > 1_800_000
    assert any(s["symbol"] == "NKNUSDT" for s in info.payload["symbols"])
    snaps = {r.symbol: r.payload["lastUpdateId"] for r in recs if r.kind is RecordKind.DEPTH_SNAPSHOT}
    assert snaps == {"NKNUSDT": 499869752, "BLZETH": 281916627, "LRCBTC": 259345543, "RUNEEUR": 15602511}
    ws = [r for r in recs if r.stream is not None]
    assert len(ws) == 265
    assert all(orjson.loads(r.raw)["data"] == r.payload for r in ws)
    assert [r.line_no for r in recs] == sorted(r.line_no for r in recs)
    assert 1633998511 * 10**9 < recs[-1].recv_time_ns < 1633998543 * 10**9
