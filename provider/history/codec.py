"""Compact, exact encoding of one symbol-minute of history (snapshots, activity bars, trades). Pure.

Numbers. Prices and quantities arrive as decimal strings with at most 8 decimals; they are kept as
exact integers of 1e-8 units (:func:`provider.book.decimal_to_units`), so the decimal strings come
back exactly (formatted with 8 decimals, as Binance sends them). Float arrays for analytics are
computed as ``units / 1e8``: one correctly rounded division, so each float equals
``float(decimal string)`` exactly while ``units < 2**53`` (values below 90,071,992.54740992) and is
within one ulp above that. Activity bars are analytics values (sums of floats) and are stored as
float64 as given.

Layout of a value. A msgpack array: a small header of plain integers (format version,
compression, row count, block start, the first row's absolute values, the greatest common divisor
of the prices and of the quantities, the width of each packed column) then one payload. The
payload holds every numeric column as a little-endian integer array of the narrowest width that
fits (1, 2, 4 or 8 bytes), the lot compressed with zstd. Before packing, values become small numbers:

* times are offsets from the block start; update ids, trade ids and best prices are deltas from the
  previous row;
* a snapshot's deeper levels are price gaps to the level above, in ticks (``price / gcd``), mostly 1;
* quantities are ``qty / gcd`` (the lot step of the minute).

``bench/bench_history.py`` measures the alternatives on the recorded BTCUSDT book (value bytes per
top-20 snapshot): msgpack of the decimal strings ~1,100, raw float64 656, this layout without zstd
~245, with zstd ~100 (~140 on disk with LMDB's pages). Byte-shuffling the columns before zstd saved
only ~3% and slowed reads, so it is not done. Snapshots are stored a minute per value because
reading 3,600 one-second values costs more in LMDB and Python calls than decoding 60 minutes.

Every ``decode_*`` takes a list of values and decodes them together with a handful of numpy calls
for the lot (not per row and few per block), which is what makes reading a day fast.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack
import numpy as np
import zstandard
from numpy.typing import NDArray

from provider.book import decimal_to_units, units_to_decimal
from provider.history.arrays import ActivityArrays, SnapshotArrays, TradeArrays
from provider.history.keys import BLOCK_MS, block_start

__all__ = [
    "FORMAT_VERSION",
    "ActivityRecord",
    "CodecError",
    "Compression",
    "SnapshotInts",
    "SnapshotRecord",
    "TradeInts",
    "TradeRecord",
    "activity_records_to_arrays",
    "block_times",
    "decode_activity",
    "decode_activity_blocks",
    "decode_snapshots",
    "decode_trade_blocks",
    "decode_trades",
    "encode_activity",
    "encode_snapshots",
    "encode_trades",
    "merge_activity",
    "merge_snapshots",
    "merge_trades",
    "snapshot_arrays",
    "snapshot_ints",
    "snapshot_records",
    "take_activity",
    "trade_arrays",
    "trade_ints",
]

FORMAT_VERSION = 1
UNITS = 10**8  # 1e-8 units per whole unit (Binance's finest precision)
_FUNITS = float(UNITS)


class CodecError(ValueError):
    """A stored value is not in a format this code can read."""


class Compression(IntEnum):
    NONE = 0
    ZSTD = 1


# ------------------------------------------------------------------------------------------ records
@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """One top-N book snapshot as the book gives it: decimal strings, best level first."""

    symbol: str
    time_ms: int
    last_update_id: int
    bids: Sequence[tuple[str, str]]
    asks: Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    """One 1-second activity bar (fields as in :class:`ActivityArrays`); ``time_ms`` is the bar start."""

    symbol: str
    time_ms: int
    bid_added: float
    bid_removed: float
    bid_traded: float
    bid_updates: int
    ask_added: float
    ask_removed: float
    ask_traded: float
    ask_updates: int
    trade_count: int
    buy_volume: float
    sell_volume: float
    resynced: bool


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One aggregate trade (``GET /api/v3/aggTrades`` / ``<sym>@aggTrade``): a, p, q, f, l, T, m."""

    symbol: str
    agg_id: int
    price: str
    qty: str
    first_trade_id: int
    last_trade_id: int
    time_ms: int
    buyer_is_maker: bool


# ------------------------------------------------------------------------------- integer forms
I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class SnapshotInts:
    """Snapshots as exact integers: prices and quantities in 1e-8 units; a missing level is 0/0."""

    time_ms: I64  # (m,)
    last_update_id: I64  # (m,)
    bid_px: I64  # (m, N) best first
    bid_qty: I64
    ask_px: I64
    ask_qty: I64

    def __len__(self) -> int:
        return int(self.time_ms.shape[0])

    @property
    def levels(self) -> int:
        return int(self.bid_px.shape[1])

    def take(self, index: NDArray[np.intp] | slice) -> SnapshotInts:
        return SnapshotInts(
            self.time_ms[index],
            self.last_update_id[index],
            self.bid_px[index],
            self.bid_qty[index],
            self.ask_px[index],
            self.ask_qty[index],
        )


@dataclass(frozen=True, slots=True)
class TradeInts:
    """Aggregate trades as exact integers (price and qty in 1e-8 units), time-ordered."""

    agg_id: I64
    time_ms: I64
    price: I64
    qty: I64
    first_trade_id: I64
    last_trade_id: I64
    buyer_is_maker: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.agg_id.shape[0])

    def take(self, index: NDArray[np.intp] | slice) -> TradeInts:
        return TradeInts(
            self.agg_id[index],
            self.time_ms[index],
            self.price[index],
            self.qty[index],
            self.first_trade_id[index],
            self.last_trade_id[index],
            self.buyer_is_maker[index],
        )


# ---------------------------------------------------------------------------- packing helpers
_INT_DTYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype("<i1"),
    2: np.dtype("<i2"),
    4: np.dtype("<i4"),
    8: np.dtype("<i8"),
}
_F8 = np.dtype("<f8")
_U2 = np.dtype("<u2")
_local = threading.local()  # zstd contexts are not safe to share between threads


def _zstd() -> tuple[Any, Any]:
    ctx: tuple[Any, Any] | None = getattr(_local, "zstd", None)
    if ctx is None:
        ctx = _local.zstd = (zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor())
    return ctx


def _width(a: I64) -> int:
    """Bytes per element of the narrowest signed integer type holding every value of ``a``."""
    if a.size == 0:
        return 1
    lo, hi = int(a.min()), int(a.max())
    for width in (1, 2, 4):
        bound = 1 << (8 * width - 1)
        if -bound <= lo and hi < bound:
            return width
    return 8


def _packed(a: NDArray[Any], dtype: np.dtype[Any]) -> bytes:
    """``a`` cast to ``dtype``, C order. (Byte-shuffling saved only ~3% after zstd and cost read time.)"""
    return np.ascontiguousarray(a, dtype=dtype).tobytes()


def _pack_int(parts: list[bytes], a: I64) -> int:
    width = _width(a)
    parts.append(_packed(a, _INT_DTYPES[width]))
    return width


class _Reader:
    """Reads packed columns back out of a payload (as read-only views), in the order they were packed."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, count: int, dtype: np.dtype[Any]) -> NDArray[Any]:
        size = count * dtype.itemsize
        end = self.pos + size
        if end > len(self.buf):
            raise CodecError("payload too short")
        out = np.frombuffer(self.buf, dtype, count, self.pos)
        self.pos = end
        return out

    def int(self, count: int, width: int) -> NDArray[Any]:
        try:
            dtype = _INT_DTYPES[width]
        except KeyError:
            raise CodecError(f"bad column width {width}") from None
        return self.take(count, dtype)

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise CodecError("payload has trailing bytes")


def _compress(payload: bytes, compression: Compression) -> bytes:
    return _zstd()[0].compress(payload) if compression is Compression.ZSTD else payload


def _unpack(value: bytes, fields: int) -> list[Any]:
    """The header list of a value (payload decompressed, last), checked for version and shape."""
    try:
        head = msgpack.unpackb(value)
    except (ValueError, msgpack.ExtraData) as exc:
        raise CodecError(f"not a history value: {exc}") from exc
    if not isinstance(head, list) or len(head) != fields or head[0] != FORMAT_VERSION:
        raise CodecError("unknown history value format")
    payload = head[-1]
    if not isinstance(payload, bytes):
        raise CodecError("history value without payload")
    if head[1] == Compression.ZSTD:
        try:
            head[-1] = _zstd()[1].decompress(payload)
        except zstandard.ZstdError as exc:
            raise CodecError(f"corrupt payload: {exc}") from exc
    elif head[1] != Compression.NONE:
        raise CodecError(f"unknown compression {head[1]}")
    return head


def _gcd(a: I64) -> int:
    positive = a[a > 0]
    return int(np.gcd.reduce(positive)) if positive.size else 1


def _deltas(a: I64) -> I64:
    """Row-to-row differences, the first one 0 (its absolute value goes in the header)."""
    out = np.zeros_like(a)
    np.subtract(a[1:], a[:-1], out=out[1:])
    return out


def _undelta(deltas: I64, firsts: I64, counts: I64) -> I64:
    """Inverse of :func:`_deltas` for several blocks concatenated: cumsum restarted at each block."""
    sums = np.cumsum(deltas)
    starts = np.cumsum(counts) - counts
    out: I64 = sums + np.repeat(firsts - sums[starts], counts)
    return out


def _times(times_ms: I64, block_ms: int) -> bytes:
    offsets = times_ms - block_ms
    if offsets.size and (int(offsets.min()) < 0 or int(offsets.max()) >= BLOCK_MS):
        raise ValueError("row outside its block")
    return offsets.astype(_U2).tobytes()


def _check_block(times_ms: I64) -> int:
    if times_ms.size == 0:
        raise ValueError("an empty block is never stored")
    start = block_start(int(times_ms[0]))
    if int(times_ms[-1]) - start >= BLOCK_MS:
        raise ValueError("rows span more than one block")
    return start


def _latest_first_unique(keys: I64) -> NDArray[np.intp]:
    """Indices of the last occurrence of each distinct key, in key order (later rows replace earlier)."""
    reverse = keys[::-1]
    _, first = np.unique(reverse, return_index=True)
    out: NDArray[np.intp] = (keys.shape[0] - 1 - first).astype(np.intp)
    return out


# -------------------------------------------------------------------------------- snapshots
def snapshot_ints(records: Sequence[SnapshotRecord], levels: int) -> SnapshotInts:
    """Parse records (decimal strings) into exact integers, keeping at most ``levels`` per side."""
    m = len(records)
    px = np.zeros((2, m, levels), np.int64)
    qty = np.zeros((2, m, levels), np.int64)
    times = np.empty(m, np.int64)
    ids = np.empty(m, np.int64)
    for i, rec in enumerate(records):
        times[i] = rec.time_ms
        ids[i] = rec.last_update_id
        for side, book_levels in enumerate((rec.bids, rec.asks)):
            j = 0
            for p, q in book_levels:
                units = decimal_to_units(q)
                if units:  # a zero quantity is no level
                    px[side, i, j] = decimal_to_units(p)
                    qty[side, i, j] = units
                    j += 1
                    if j == levels:
                        break
    return SnapshotInts(times, ids, px[0], qty[0], px[1], qty[1])


def merge_snapshots(old: SnapshotInts, new: SnapshotInts) -> SnapshotInts:
    """Rows of both, time-ordered; a new row replaces an old one with the same ``time_ms``."""
    levels = max(old.levels, new.levels)
    a, b = _pad_levels(old, levels), _pad_levels(new, levels)
    both = SnapshotInts(
        *(np.concatenate((x, y)) for x, y in zip(_snapshot_fields(a), _snapshot_fields(b), strict=True))
    )
    return both.take(_latest_first_unique(both.time_ms))


def _snapshot_fields(s: SnapshotInts) -> tuple[I64, I64, I64, I64, I64, I64]:
    return s.time_ms, s.last_update_id, s.bid_px, s.bid_qty, s.ask_px, s.ask_qty


def _pad_levels(s: SnapshotInts, levels: int) -> SnapshotInts:
    if s.levels == levels:
        return s
    if s.levels > levels:
        return SnapshotInts(
            s.time_ms, s.last_update_id, *(x[:, :levels] for x in (s.bid_px, s.bid_qty, s.ask_px, s.ask_qty))
        )
    pad = ((0, 0), (0, levels - s.levels))
    return SnapshotInts(
        s.time_ms, s.last_update_id, *(np.pad(x, pad) for x in (s.bid_px, s.bid_qty, s.ask_px, s.ask_qty))
    )


def _filled(px: I64, qty: I64) -> I64:
    """Prices with each missing level given the price above it (so its gap is 0)."""
    present = qty > 0
    if present.all():
        return px
    idx = np.where(present, np.arange(px.shape[1]), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    out: I64 = np.take_along_axis(px, idx, axis=1)
    return out


_SNAPSHOT_FIELDS = 14


def encode_snapshots(block: SnapshotInts, compression: Compression = Compression.ZSTD) -> bytes:
    """One value holding ``block`` (time-ordered rows, all in one block)."""
    start = _check_block(block.time_ms)
    n = block.levels
    bid = _filled(block.bid_px, block.bid_qty)
    ask = _filled(block.ask_px, block.ask_qty)
    gp = math.gcd(_gcd(bid), _gcd(ask))
    gq = math.gcd(_gcd(block.bid_qty), _gcd(block.ask_qty))
    bid, ask = bid // gp, ask // gp
    px = np.empty((len(block), 2 * n), np.int64)
    if n:
        px[:, 0] = _deltas(bid[:, 0])
        np.subtract(bid[:, :-1], bid[:, 1:], out=px[:, 1:n])
        px[:, n] = _deltas(ask[:, 0])
        np.subtract(ask[:, 1:], ask[:, :-1], out=px[:, n + 1 :])
    qty = np.concatenate((block.bid_qty, block.ask_qty), axis=1) // gq
    parts: list[bytes] = []
    id_width = _pack_int(parts, _deltas(block.last_update_id))
    px_width = _pack_int(parts, px)
    qty_width = _pack_int(parts, qty)
    first = (int(bid[0, 0]), int(ask[0, 0])) if n else (0, 0)
    return bytes(
        msgpack.packb(
            [
                FORMAT_VERSION,
                int(compression),
                n,
                len(block),
                start,
                _times(block.time_ms, start),
                int(block.last_update_id[0]),
                gp,
                gq,
                *first,
                (id_width << 8) | px_width,
                qty_width,
                _compress(b"".join(parts), compression),
            ]
        )
    )


def block_times(value: bytes) -> I64:
    """The ``time_ms`` of each row of a snapshot or activity value, without decoding the rest."""
    try:
        head = msgpack.unpackb(value)
    except (ValueError, msgpack.ExtraData) as exc:
        raise CodecError(f"not a history value: {exc}") from exc
    if not isinstance(head, list) or len(head) < 6 or head[0] != FORMAT_VERSION:
        raise CodecError("unknown history value format")
    start, times = head[4], head[5]
    if not isinstance(times, bytes) or not isinstance(start, int):
        raise CodecError("value without row times")
    out: I64 = np.frombuffer(times, _U2).astype(np.int64) + start
    return out


def decode_snapshots(values: Sequence[bytes]) -> SnapshotInts:
    """All rows of several snapshot values, concatenated in the given order."""
    if not values:
        return _snapshot_empty(0)
    heads = [_unpack(v, _SNAPSHOT_FIELDS) for v in values]
    n = max(h[2] for h in heads)
    counts = np.fromiter((h[3] for h in heads), np.int64, len(heads))
    meta = np.array([(h[4], h[6], h[7], h[8], h[9], h[10]) for h in heads], np.int64).reshape(-1, 6)
    times, ids, pxs, qtys = [], [], [], []
    for h in heads:
        m, width = h[3], h[11]
        r = _Reader(h[-1])
        if len(h[5]) != 2 * m:
            raise CodecError("row times do not match the row count")
        times.append(np.frombuffer(h[5], _U2))
        ids.append(r.int(m, width >> 8))
        px = r.int(m * 2 * h[2], width & 0xFF).reshape(m, 2 * h[2])
        qty = r.int(m * 2 * h[2], h[12]).reshape(m, 2 * h[2])
        r.done()
        if h[2] != n:  # a block written with another depth: pad with missing levels
            px, qty = _widen(px, h[2], n), _widen(qty, h[2], n)
        pxs.append(px)
        qtys.append(qty)
    time_ms = np.concatenate(times, dtype=np.int64) + np.repeat(meta[:, 0], counts)
    last_ids = _undelta(np.concatenate(ids, dtype=np.int64), meta[:, 1], counts)
    px = np.concatenate(pxs, dtype=np.int64)
    qty = np.concatenate(qtys, dtype=np.int64)
    gp = np.repeat(meta[:, 2], counts)[:, None]
    qty *= np.repeat(meta[:, 3], counts)[:, None]
    bid, ask = px[:, :n], px[:, n:]
    if n:
        bid[:, 0] = _undelta(bid[:, 0], meta[:, 4], counts)
        bid[:, 1:] *= -1
        np.cumsum(bid, axis=1, out=bid)
        ask[:, 0] = _undelta(ask[:, 0], meta[:, 5], counts)
        np.cumsum(ask, axis=1, out=ask)
    px *= gp
    px[qty == 0] = 0  # canonical form of a missing level
    return SnapshotInts(time_ms, last_ids, bid, qty[:, :n], ask, qty[:, n:])


def _widen(a: NDArray[Any], n: int, wide: int) -> NDArray[Any]:
    out = np.zeros((a.shape[0], 2 * wide), a.dtype)
    out[:, :n] = a[:, :n]
    out[:, wide : wide + n] = a[:, n:]
    return out


def _snapshot_empty(levels: int) -> SnapshotInts:
    e, z = np.empty(0, np.int64), np.empty((0, levels), np.int64)
    return SnapshotInts(e, e.copy(), z, z.copy(), z.copy(), z.copy())


def _float_px(px: I64, qty: I64) -> NDArray[np.float64]:
    out: NDArray[np.float64] = px / _FUNITS
    out[qty == 0] = np.nan
    return out


def snapshot_arrays(s: SnapshotInts, levels: int | None = None) -> SnapshotArrays:
    """Float arrays for analytics, with exactly ``levels`` columns (default: as stored)."""
    if levels is not None:
        s = _pad_levels(s, levels)
    return SnapshotArrays(
        time_ms=s.time_ms,
        last_update_id=s.last_update_id,
        bid_px=_float_px(s.bid_px, s.bid_qty),
        bid_qty=s.bid_qty / _FUNITS,
        ask_px=_float_px(s.ask_px, s.ask_qty),
        ask_qty=s.ask_qty / _FUNITS,
    )


def snapshot_records(symbol: str, s: SnapshotInts) -> list[SnapshotRecord]:
    """Records with decimal strings (8 decimals, as Binance formats them); missing levels left out."""
    out = []
    fmt = units_to_decimal
    for t, uid, bp, bq, ap, aq in zip(
        s.time_ms.tolist(),
        s.last_update_id.tolist(),
        s.bid_px.tolist(),
        s.bid_qty.tolist(),
        s.ask_px.tolist(),
        s.ask_qty.tolist(),
        strict=True,
    ):
        bids = tuple((fmt(p), fmt(q)) for p, q in zip(bp, bq, strict=True) if q)
        asks = tuple((fmt(p), fmt(q)) for p, q in zip(ap, aq, strict=True) if q)
        out.append(SnapshotRecord(symbol, t, uid, bids, asks))
    return out


# --------------------------------------------------------------------------------- activity
_ACTIVITY_FLOATS = (
    "bid_added",
    "bid_removed",
    "bid_traded",
    "ask_added",
    "ask_removed",
    "ask_traded",
    "buy_volume",
    "sell_volume",
)
_ACTIVITY_INTS = ("bid_updates", "ask_updates", "trade_count")
_ACTIVITY_FIELDS = 8


def activity_records_to_arrays(records: Sequence[ActivityRecord]) -> ActivityArrays:
    """Records (in any order) as arrays, in the given order."""
    if not records:
        return ActivityArrays.empty()
    cols: dict[str, Any] = {"time_ms": np.fromiter((r.time_ms for r in records), np.int64, len(records))}
    for name in _ACTIVITY_FLOATS:
        cols[name] = np.fromiter((getattr(r, name) for r in records), np.float64, len(records))
    for name in _ACTIVITY_INTS:
        cols[name] = np.fromiter((getattr(r, name) for r in records), np.int64, len(records))
    cols["resynced"] = np.fromiter((r.resynced for r in records), np.bool_, len(records))
    return ActivityArrays(**cols)


def take_activity(a: ActivityArrays, index: NDArray[np.intp] | slice) -> ActivityArrays:
    """The rows ``index`` of ``a``."""
    return ActivityArrays(**{name: getattr(a, name)[index] for name in ActivityArrays.__slots__})


def merge_activity(old: ActivityArrays, new: ActivityArrays) -> ActivityArrays:
    """Rows of both, time-ordered; a new bar replaces an old one with the same ``time_ms``."""
    both = ActivityArrays(
        **{name: np.concatenate((getattr(old, name), getattr(new, name))) for name in ActivityArrays.__slots__}
    )
    return take_activity(both, _latest_first_unique(both.time_ms))


def encode_activity(a: ActivityArrays, compression: Compression = Compression.ZSTD) -> bytes:
    """One value holding the bars ``a`` (time-ordered, all in one block)."""
    start = _check_block(a.time_ms)
    floats = np.stack([getattr(a, name) for name in _ACTIVITY_FLOATS])
    parts = [_packed(floats, _F8)]
    int_width = _pack_int(parts, np.stack([getattr(a, name) for name in _ACTIVITY_INTS]))
    parts.append(np.packbits(a.resynced).tobytes())
    return bytes(
        msgpack.packb(
            [
                FORMAT_VERSION,
                int(compression),
                int_width,
                len(a),
                start,
                _times(a.time_ms, start),
                0,  # reserved
                _compress(b"".join(parts), compression),
            ]
        )
    )


def decode_activity(values: Sequence[bytes]) -> ActivityArrays:
    """All bars of several activity values, concatenated in the given order."""
    if not values:
        return ActivityArrays.empty()
    times, floats, ints, flags = [], [], [], []
    for v in values:
        h = _unpack(v, _ACTIVITY_FIELDS)
        m = h[3]
        if len(h[5]) != 2 * m:
            raise CodecError("row times do not match the row count")
        r = _Reader(h[-1])
        times.append(np.frombuffer(h[5], _U2).astype(np.int64) + h[4])
        floats.append(r.take(len(_ACTIVITY_FLOATS) * m, _F8).reshape(len(_ACTIVITY_FLOATS), m))
        ints.append(r.int(len(_ACTIVITY_INTS) * m, h[2]).reshape(len(_ACTIVITY_INTS), m))
        flags.append(np.unpackbits(r.take((m + 7) // 8, np.dtype(np.uint8)), count=m).astype(np.bool_))
        r.done()
    f = np.concatenate(floats, axis=1)
    i = np.concatenate(ints, axis=1, dtype=np.int64)
    cols: dict[str, Any] = {"time_ms": np.concatenate(times), "resynced": np.concatenate(flags)}
    cols.update({name: f[k] for k, name in enumerate(_ACTIVITY_FLOATS)})
    cols.update({name: i[k] for k, name in enumerate(_ACTIVITY_INTS)})
    return ActivityArrays(**cols)


def decode_activity_blocks(values: Sequence[bytes]) -> list[ActivityArrays]:
    """Each value's bars on their own (``decode_activity([v])`` for every ``v``), read-only so a block
    can be cached and handed out again. (Activity values are small: one per value costs no more.)"""
    out = []
    for v in values:
        bars = decode_activity([v])  # every column is a new array, none a view into the value
        for name in ActivityArrays.__slots__:
            getattr(bars, name).flags.writeable = False
        out.append(bars)
    return out


# ----------------------------------------------------------------------------------- trades
_TRADE_FIELDS = 12


def trade_ints(records: Sequence[TradeRecord]) -> TradeInts:
    """Parse records (decimal strings) into exact integers, in the given order."""
    m = len(records)
    return TradeInts(
        np.fromiter((r.agg_id for r in records), np.int64, m),
        np.fromiter((r.time_ms for r in records), np.int64, m),
        np.fromiter((decimal_to_units(r.price) for r in records), np.int64, m),
        np.fromiter((decimal_to_units(r.qty) for r in records), np.int64, m),
        np.fromiter((r.first_trade_id for r in records), np.int64, m),
        np.fromiter((r.last_trade_id for r in records), np.int64, m),
        np.fromiter((r.buyer_is_maker for r in records), np.bool_, m),
    )


def _trade_fields(t: TradeInts) -> tuple[NDArray[Any], ...]:
    return t.agg_id, t.time_ms, t.price, t.qty, t.first_trade_id, t.last_trade_id, t.buyer_is_maker


def merge_trades(old: TradeInts, new: TradeInts) -> TradeInts:
    """Trades of both, ordered by (time, agg id); a new trade replaces an old one with its agg id."""
    both = TradeInts(*(np.concatenate((x, y)) for x, y in zip(_trade_fields(old), _trade_fields(new), strict=True)))
    both = both.take(_latest_first_unique(both.agg_id))
    return both.take(np.lexsort((both.agg_id, both.time_ms)))


def _id_gaps(first: I64, last: I64) -> I64:
    out = np.zeros_like(first)
    np.subtract(first[1:], last[:-1] + 1, out=out[1:])
    return out


def encode_trades(t: TradeInts, compression: Compression = Compression.ZSTD) -> bytes:
    """One value holding the trades ``t`` (ordered by time, all in one block)."""
    start = _check_block(t.time_ms)
    gp, gq = _gcd(t.price), _gcd(t.qty)
    parts: list[bytes] = []
    widths = [
        _pack_int(parts, _deltas(t.agg_id)),
        _pack_int(parts, _deltas(t.time_ms)),
        _pack_int(parts, _deltas(t.price // gp)),
        _pack_int(parts, t.qty // gq),
        # Trade ids: usually each aggregate starts right after the previous one ends (gap 0).
        _pack_int(parts, _id_gaps(t.first_trade_id, t.last_trade_id)),
        _pack_int(parts, t.last_trade_id - t.first_trade_id),
    ]
    parts.append(np.packbits(t.buyer_is_maker).tobytes())
    width_code = sum(w << (8 * k) for k, w in enumerate(widths))
    return bytes(
        msgpack.packb(
            [
                FORMAT_VERSION,
                int(compression),
                len(t),
                start,
                int(t.agg_id[0]),
                int(t.time_ms[0]),
                int(t.price[0]) // gp,
                gp,
                gq,
                int(t.first_trade_id[0]),
                width_code,
                _compress(b"".join(parts), compression),
            ]
        )
    )


@dataclass(frozen=True, slots=True)
class _TradeColumns:
    """Trade values read together: absolute agg ids, times and 1e-8 units; row counts per value."""

    counts: I64
    agg_id: I64
    time_ms: I64
    price: I64
    qty: I64
    buyer_is_maker: NDArray[np.bool_]
    first_trade_id: I64 | None  # None when the trade ids were not asked for
    last_trade_id: I64 | None


def _trade_columns(values: Sequence[bytes], *, trade_ids: bool) -> _TradeColumns:
    heads = [_unpack(v, _TRADE_FIELDS) for v in values]
    counts = np.fromiter((h[2] for h in heads), np.int64, len(heads))
    meta = np.array([(h[4], h[5], h[6], h[7], h[8], h[9]) for h in heads], np.int64).reshape(-1, 6)
    kept = 6 if trade_ids else 4  # agg id, time, price, qty [, id gap, id span]
    cols: list[list[NDArray[Any]]] = [[] for _ in range(kept)]
    makers = []
    for h in heads:
        m, code = h[2], h[10]
        r = _Reader(h[-1])
        for k in range(6):
            col = r.int(m, (code >> (8 * k)) & 0xFF)  # every column is read: the reader must pass it
            if k < kept:
                cols[k].append(col)
        makers.append(np.unpackbits(r.take((m + 7) // 8, np.dtype(np.uint8)), count=m))
        r.done()
    agg, dt, dp, qty, *ids = (np.concatenate(c, dtype=np.int64) for c in cols)
    first = last = None
    if trade_ids:
        gap, span = ids
        # first[i] = last[i-1] + 1 + gap[i] = first[i-1] + span[i-1] + 1 + gap[i] (block starts: header)
        dfirst = gap + 1
        dfirst[1:] += span[:-1]
        first = _undelta(dfirst, meta[:, 5], counts)
        last = first + span
    return _TradeColumns(
        counts,
        _undelta(agg, meta[:, 0], counts),
        _undelta(dt, meta[:, 1], counts),
        _undelta(dp, meta[:, 2], counts) * np.repeat(meta[:, 3], counts),
        qty * np.repeat(meta[:, 4], counts),
        np.concatenate(makers).view(np.bool_),  # unpackbits gives 0/1 bytes
        first,
        last,
    )


def decode_trades(values: Sequence[bytes]) -> TradeInts:
    """All trades of several trade values, concatenated in the given order."""
    if not values:
        e = np.empty(0, np.int64)
        return TradeInts(e, e.copy(), e.copy(), e.copy(), e.copy(), e.copy(), np.empty(0, np.bool_))
    c = _trade_columns(values, trade_ids=True)
    assert c.first_trade_id is not None and c.last_trade_id is not None
    return TradeInts(c.agg_id, c.time_ms, c.price, c.qty, c.first_trade_id, c.last_trade_id, c.buyer_is_maker)


def decode_trade_blocks(values: Sequence[bytes]) -> list[TradeArrays]:
    """Each value's trades as analytics arrays: ``trade_arrays(decode_trades([v]))`` for every ``v``.

    Decoded together (one pass of numpy calls for the lot), skipping the trade ids analytics does
    not use. Each block owns its arrays (no view into a shared buffer) and they are read-only, so a
    block can be cached and handed out again.
    """
    if not values:
        return []
    c = _trade_columns(values, trade_ids=False)
    columns = (c.time_ms, c.price / _FUNITS, c.qty / _FUNITS, c.buyer_is_maker, c.agg_id)
    bounds = np.cumsum(c.counts)[:-1]
    pieces = [np.split(col, bounds) for col in columns]
    out = []
    for parts in zip(*pieces, strict=True):
        owned = [part.copy() for part in parts]
        for a in owned:
            a.flags.writeable = False
        out.append(TradeArrays(*owned))
    return out


def trade_arrays(t: TradeInts) -> TradeArrays:
    """Float arrays for analytics."""
    return TradeArrays(
        time_ms=t.time_ms,
        price=t.price / _FUNITS,
        qty=t.qty / _FUNITS,
        buyer_is_maker=t.buyer_is_maker,
        agg_id=t.agg_id,
    )
