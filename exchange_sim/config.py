"""The simulator's configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from exchange_sim.symbols import symbol_setup
from service_runtime.config import Address, Setting, Settings, parse_address, parse_symbols


def _symbols(text: str) -> tuple[str, ...]:
    symbols = parse_symbols(text)
    if not symbols:
        raise ValueError("at least one symbol is needed")
    for symbol in symbols:
        symbol_setup(symbol)  # raises ValueError naming the symbol
    return symbols


@dataclass(frozen=True)
class SimConfig:
    addr: Address
    symbols: tuple[str, ...]
    seed: int


SETTINGS: list[Setting[object]] = [
    Setting(
        "EXCHANGE_SIM_ADDR",
        "127.0.0.1:8900",
        parse_address,
        "where the simulator serves REST (/api/v3), streams (/ws, /stream) and the WS API (/ws-api/v3)",
    ),
    Setting("SIM_SYMBOLS", "BTCUSDT,ETHUSDT,BNBUSDT", _symbols, "symbols with a synthetic market"),
    Setting("SIM_SEED", "1", int, "seed of the synthetic market (same seed, same market)"),
]


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> SimConfig:
    values, _ = Settings("python -m exchange_sim", "Local Binance-compatible spot exchange", SETTINGS).parse(
        argv, environ
    )
    addr, symbols, seed = values["EXCHANGE_SIM_ADDR"], values["SIM_SYMBOLS"], values["SIM_SEED"]
    assert isinstance(addr, Address) and isinstance(symbols, tuple) and isinstance(seed, int)
    return SimConfig(addr=addr, symbols=symbols, seed=seed)
