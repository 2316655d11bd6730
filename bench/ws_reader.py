"""The native WebSocket load client (`bench/ws_reader.c`): building it, its command line, its output.

bench_gateway_http's fan-out runs put thousands of WebSocket clients on the machine that runs the
gateway. In Python each read costs the clients 10-30 µs of the same cores the gateway needs; this
C client does the same job in a few µs, so the figures say more about the gateway than about its
clients. It speaks the bench's worker protocol (see the C source) and writes its records as raw
arrays, which `to_npz` turns into the .npz the Python clients write.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

SOURCE = Path(__file__).resolve().parent / "ws_reader.c"
# The output's arrays after its two int64 counts (records n, clients): name, dtype, which count.
_ARRAYS = (("sym", np.int64, 0), ("u", np.int64, 0), ("t", np.float64, 0), ("e", np.int64, 0), ("frames", np.int64, 1))


def compiler() -> str | None:
    """The C compiler the client is built with, if the machine has one."""
    return shutil.which("gcc")


def build(directory: Path) -> Path:
    """Compiles the client into `directory` (once) and returns the binary."""
    binary = directory / "ws_reader"
    if not binary.exists():
        cc = compiler()
        if cc is None:
            raise RuntimeError("the native WebSocket client needs gcc")
        subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary), str(SOURCE)], check=True)
    return binary


def command(
    binary: Path, port: int, token: str, clients: Sequence[tuple[str, int]], connect_timeout_s: float, out: Path
) -> list[str]:
    """The command line for these clients ([path, symbol index] each, listed in a file beside `out`)."""
    listing = out.with_suffix(".clients")
    listing.write_text("".join(f"{path} {sym}\n" for path, sym in clients))
    return [str(binary), str(port), token, str(listing), f"{connect_timeout_s:g}", str(out)]


def load(raw: Path) -> dict[str, NDArray[Any]]:
    """The client's records: sym, u, t, e per event, frames per client."""
    data = raw.read_bytes()
    if len(data) < 16:
        raise ValueError(f"{raw}: {len(data)} bytes, shorter than its header")
    counts = [int(n) for n in np.frombuffer(data, dtype=np.int64, count=2)]
    expected = 16 + 8 * sum(counts[which] for _, _, which in _ARRAYS)
    if len(data) != expected:
        records, clients = counts
        raise ValueError(f"{raw}: {len(data)} bytes, expected {expected} for {records} records of {clients} clients")
    arrays: dict[str, NDArray[Any]] = {}
    at = 16
    for name, dtype, which in _ARRAYS:
        arrays[name] = np.frombuffer(data, dtype=dtype, count=counts[which], offset=at)
        at += 8 * counts[which]
    return arrays


def to_npz(raw: Path, npz: Path) -> None:
    """The client's records as the .npz the Python clients write."""
    savez: Callable[..., None] = np.savez  # its stubs type **kwds as its own keyword options
    savez(str(npz), **load(raw))
