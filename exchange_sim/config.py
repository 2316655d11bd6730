"""The simulator's configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service_runtime.config import Address, Setting, Settings, parse_address


@dataclass(frozen=True)
class SimConfig:
    addr: Address


SETTINGS: list[Setting[object]] = [
    Setting(
        "EXCHANGE_SIM_ADDR",
        "127.0.0.1:8900",
        parse_address,
        "where the simulator serves REST (/api/v3), streams (/ws, /stream) and the WS API (/ws-api/v3)",
    ),
]


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> SimConfig:
    values, _ = Settings("python -m exchange_sim", "Local Binance-compatible spot exchange", SETTINGS).parse(
        argv, environ
    )
    addr = values["EXCHANGE_SIM_ADDR"]
    assert isinstance(addr, Address)
    return SimConfig(addr=addr)
