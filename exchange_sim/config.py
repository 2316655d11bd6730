"""The simulator's configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from exchange_sim.accounts import DEMO_API_KEY, DEMO_API_SECRET, SimAccount, load_accounts_file
from exchange_sim.symbols import symbol_setup
from service_runtime.config import Address, Setting, Settings, parse_address, parse_on_off, parse_symbols


def _symbols(text: str) -> tuple[str, ...]:
    symbols = parse_symbols(text)
    if not symbols:
        raise ValueError("at least one symbol is needed")
    for symbol in symbols:
        symbol_setup(symbol)  # raises ValueError naming the symbol
    return symbols


def _replay_files(text: str) -> tuple[Path, ...]:
    paths = tuple(Path(p.strip()) for p in text.split(",") if p.strip())
    for path in paths:
        if not path.name.endswith((".gz", ".zst")):
            raise ValueError(f"{path}: expected an hftbacktest .gz or a cryptofeed .jsonl.zst file")
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
    return paths


def _speed(text: str) -> float:
    speed = float(text)
    if not speed >= 0 or speed == float("inf"):
        raise ValueError(f"expected a finite number >= 0, got {text!r}")
    return speed


@dataclass(frozen=True)
class SimConfig:
    addr: Address
    symbols: tuple[str, ...]
    seed: int
    control: bool = False
    replay: tuple[Path, ...] = ()
    replay_speed: float = 1.0
    accounts: tuple[SimAccount, ...] = ()  # from SIM_ACCOUNTS_FILE (format: exchange_sim.accounts)
    api_key: str = DEMO_API_KEY  # the demo account's HMAC key (SIM_API_KEY / SIM_API_SECRET)
    api_secret: str = field(default=DEMO_API_SECRET, repr=False)
    weight_per_minute: int = 6000  # REQUEST_WEIGHT limit per IP (Binance's is 6000)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


SETTINGS: list[Setting[object]] = [
    Setting(
        "EXCHANGE_SIM_ADDR",
        "127.0.0.1:8900",
        parse_address,
        "where the simulator serves REST (/api/v3), streams (/ws, /stream) and the WS API (/ws-api/v3)",
    ),
    Setting("SIM_SYMBOLS", "BTCUSDT,ETHUSDT,BNBUSDT", _symbols, "symbols with a synthetic market"),
    Setting("SIM_WEIGHT_PER_MINUTE", "6000", _positive_int, "REQUEST_WEIGHT limit per minute (load tests raise it)"),
    Setting("SIM_SEED", "1", int, "seed of the synthetic market (same seed, same market)"),
    Setting("SIM_CONTROL", "off", parse_on_off, "on: serve the test-only fault-injection API under /control"),
    Setting(
        "SIM_REPLAY",
        None,
        _replay_files,
        "comma-separated recorded files to replay (their symbols get no synthetic flow)",
    ),
    Setting(
        "SIM_REPLAY_SPEED", "1.0", _speed, "replay pace: 1.0 as recorded, 2.0 twice as fast, 0 as fast as possible"
    ),
    Setting("SIM_API_KEY", DEMO_API_KEY, str, "API key of the funded demo account (HMAC)"),
    Setting("SIM_API_SECRET", DEMO_API_SECRET, str, "HMAC secret of the demo account"),
    Setting(
        "SIM_ACCOUNTS_FILE",
        None,
        load_accounts_file,
        "JSON list of extra accounts {api_key, secret | ed25519_public_key, balances} (see exchange_sim/accounts.py)",
    ),
]


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> SimConfig:
    values, _ = Settings("python -m exchange_sim", "Local Binance-compatible spot exchange", SETTINGS).parse(
        argv, environ
    )
    addr, symbols, seed = values["EXCHANGE_SIM_ADDR"], values["SIM_SYMBOLS"], values["SIM_SEED"]
    assert isinstance(addr, Address) and isinstance(symbols, tuple) and isinstance(seed, int)
    control, replay, speed = values["SIM_CONTROL"], values["SIM_REPLAY"] or (), values["SIM_REPLAY_SPEED"]
    assert isinstance(control, bool) and isinstance(replay, tuple) and isinstance(speed, float)
    accounts, api_key, api_secret = values["SIM_ACCOUNTS_FILE"] or (), values["SIM_API_KEY"], values["SIM_API_SECRET"]
    assert isinstance(accounts, tuple) and isinstance(api_key, str) and isinstance(api_secret, str)
    return SimConfig(
        addr=addr,
        symbols=symbols,
        seed=seed,
        control=control,
        replay=replay,
        replay_speed=speed,
        accounts=accounts,
        api_key=api_key,
        api_secret=api_secret,
        weight_per_minute=int(str(values["SIM_WEIGHT_PER_MINUTE"])),
    )
