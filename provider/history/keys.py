"""LMDB key layout of the history store: symbol, then big-endian block start time. Pure.

Every key is ``<symbol ASCII> 0x00 <block start ms, unsigned 64-bit big-endian>``. LMDB orders
keys bytewise, so all keys of one symbol are contiguous and in time order: a time range is one
cursor scan from :func:`block_key` of its first block to that of its last. The NUL separator
keeps ``BTCUSDT`` keys apart from ``BTCUSDTX`` keys (NUL sorts below every symbol character).

Values hold one block of :data:`BLOCK_MS` (one minute) of one symbol: up to 60 snapshots or
activity bars, or every aggregate trade of that minute.
"""

from __future__ import annotations

import struct

__all__ = [
    "BLOCK_MS",
    "block_key",
    "block_start",
    "parse_key",
    "symbol_end",
    "symbol_prefix",
]

BLOCK_MS = 60_000
"""Span of one stored value: one symbol-minute."""

_TIME = struct.Struct(">Q")
_SEP = b"\x00"
_MAX_SYMBOL = 32


def _symbol_bytes(symbol: str) -> bytes:
    if not symbol or len(symbol) > _MAX_SYMBOL or not (symbol.isascii() and symbol.isalnum()):
        raise ValueError(f"not a symbol: {symbol!r}")
    return symbol.encode("ascii")


def block_start(time_ms: int) -> int:
    """Start (ms) of the block that holds ``time_ms``."""
    if time_ms < 0:
        raise ValueError(f"negative time: {time_ms}")
    return time_ms - time_ms % BLOCK_MS


def block_key(symbol: str, block_ms: int) -> bytes:
    """The key of ``symbol``'s block starting at ``block_ms`` (any time is rounded down to its block)."""
    return _symbol_bytes(symbol) + _SEP + _TIME.pack(block_start(block_ms))


def symbol_prefix(symbol: str) -> bytes:
    """Every key of ``symbol`` starts with this (and no other symbol's key does)."""
    return _symbol_bytes(symbol) + _SEP


def symbol_end(symbol: str) -> bytes:
    """The smallest key above every key of ``symbol`` (seek here to reach the next symbol)."""
    return _symbol_bytes(symbol) + b"\x01"


def parse_key(key: bytes) -> tuple[str, int]:
    """``(symbol, block start ms)`` of a key made by :func:`block_key`."""
    if len(key) < 10 or key[-9:-8] != _SEP:
        raise ValueError(f"not a history key: {key!r}")
    return key[:-9].decode("ascii"), _TIME.unpack(key[-8:])[0]
