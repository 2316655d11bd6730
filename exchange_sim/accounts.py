"""Simulated accounts: who they are, their API keys, their funding, and the feed of their user events.

Accounts file (``SIM_ACCOUNTS_FILE``): a JSON list, one object per account, each with one API key::

    [
      {"api_key": "makerKey01", "secret": "an HMAC secret",
       "balances": {"USDT": "100000", "BTC": "1.5"}},
      {"api_key": "edKey01", "ed25519_public_key": "-----BEGIN PUBLIC KEY-----\\n…\\n-----END PUBLIC KEY-----\\n",
       "balances": {"USDT": "2500.5"}}
    ]

* ``api_key``: 1–128 ASCII letters/digits, unique across the file and the demo account.
* exactly one of ``secret`` (HMAC-SHA256 secret) or ``ed25519_public_key`` (PEM SubjectPublicKeyInfo).
* ``balances``: asset → free amount as a decimal *string* (never a JSON number: no binary floats on
  money paths); optional, default none. Amounts may not have more decimals than the asset's precision.
* optional ``trading_enabled`` (bool, default true): a key without it gets -2015 on TRADE endpoints.

Besides the file, the demo account (``SIM_API_KEY``/``SIM_API_SECRET``, defaults `DEMO_API_KEY` and
`DEMO_API_SECRET`, the values the provider uses with ``VENUE=sim``) is always there, funded with
`DEMO_BALANCES`, unless the file lists the same ``api_key`` (then the file's entry wins).
Account ids (``uid`` in ``GET /api/v3/account``) are 1, 2, … in that order, demo first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm

from exchange_sim.matching import MatchingEngine, UserEvent
from exchange_sim.wire.auth import KeyRegistry

__all__ = [
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "DEMO_BALANCES",
    "AccountDirectory",
    "SimAccount",
    "demo_account",
    "load_accounts_file",
    "parse_accounts",
]

# The same documented values as the provider's SIM_DEMO_API_KEY / SIM_DEMO_API_SECRET: the two
# processes share no code, only the wire, so the values are repeated here (a test checks they agree).
DEMO_API_KEY: Final = "simDemoApiKey0000000000000000000000000000000000000000000000000000"
DEMO_API_SECRET: Final = "simDemoApiSecretNotForRealVenues000000000000000000000000000000000"
DEMO_BALANCES: Final[Mapping[str, Decimal]] = {
    "USDT": Decimal("100000"),
    "BTC": Decimal("10"),
    "ETH": Decimal("100"),
    "BNB": Decimal("1000"),
}

_FIELDS: Final = frozenset({"api_key", "secret", "ed25519_public_key", "balances", "trading_enabled"})


@dataclass(frozen=True, slots=True)
class SimAccount:
    """One configured account and its key. Secrets stay out of ``repr``."""

    api_key: str = field(repr=False)
    balances: Mapping[str, Decimal]
    hmac_secret: str | None = field(default=None, repr=False)
    ed25519_public_key_pem: str | None = field(default=None, repr=False)
    trading_enabled: bool = True

    def __post_init__(self) -> None:
        if (self.hmac_secret is None) == (self.ed25519_public_key_pem is None):
            raise ValueError("give exactly one of 'secret' or 'ed25519_public_key'")


def demo_account(api_key: str = DEMO_API_KEY, secret: str = DEMO_API_SECRET) -> SimAccount:
    return SimAccount(api_key=api_key, balances=DEMO_BALANCES, hmac_secret=secret)


def _balances(raw: object, where: str) -> dict[str, Decimal]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: 'balances' must be an object of asset -> decimal string")
    out: dict[str, Decimal] = {}
    for asset, amount in raw.items():
        if not isinstance(amount, str):
            raise ValueError(f'{where}: balance of {asset} must be a decimal string, e.g. "100.5"')
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise ValueError(f"{where}: balance of {asset} is not a decimal: {amount!r}") from None
        if not value.is_finite() or value < 0:
            raise ValueError(f"{where}: balance of {asset} must be a non-negative decimal")
        out[asset] = value
    return out


def parse_accounts(text: str) -> tuple[SimAccount, ...]:
    """Parse the accounts file format (module docstring); ValueError says what and where."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, list):
        raise ValueError("expected a JSON list of accounts")
    accounts: list[SimAccount] = []
    seen: set[str] = set()
    for i, entry in enumerate(doc):
        where = f"account #{i + 1}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object")
        unknown = set(entry) - _FIELDS
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        api_key, secret, pem = entry.get("api_key"), entry.get("secret"), entry.get("ed25519_public_key")
        if not isinstance(api_key, str) or not api_key:
            raise ValueError(f"{where}: 'api_key' must be a non-empty string")
        if api_key in seen:
            raise ValueError(f"{where}: duplicate api_key")
        seen.add(api_key)
        if secret is not None and not isinstance(secret, str):
            raise ValueError(f"{where}: 'secret' must be a string")
        if pem is not None and not isinstance(pem, str):
            raise ValueError(f"{where}: 'ed25519_public_key' must be a PEM string")
        trading = entry.get("trading_enabled", True)
        if not isinstance(trading, bool):
            raise ValueError(f"{where}: 'trading_enabled' must be true or false")
        try:
            account = SimAccount(api_key, _balances(entry.get("balances"), where), secret, pem, trading)
            _register(KeyRegistry(), account, 0)  # fail at start-up, not at the first request
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"{where}: {exc}") from None
        accounts.append(account)
    return tuple(accounts)


def load_accounts_file(path: str) -> tuple[SimAccount, ...]:
    """`SIM_ACCOUNTS_FILE`'s parser: read and parse, ValueError naming the problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    return parse_accounts(text)


def _register(registry: KeyRegistry, account: SimAccount, account_id: int) -> None:
    if account.hmac_secret is not None:
        registry.add_hmac(account.api_key, account.hmac_secret, account_id, trading_enabled=account.trading_enabled)
    else:
        assert account.ed25519_public_key_pem is not None
        registry.add_ed25519(
            account.api_key, account.ed25519_public_key_pem, account_id, trading_enabled=account.trading_enabled
        )


UserEventSink = Callable[[UserEvent], None]


class AccountDirectory:
    """The simulator's ordinary accounts: engine accounts, their keys, and listeners to their events.

    Account ids are ints (the key registry's and rate limiter's); the engine's account ids are
    their decimal text. `publish` is called with every engine result's events; sinks must not
    block (they queue frames) and may remove themselves while called.
    """

    def __init__(self, engine: MatchingEngine, registry: KeyRegistry | None = None) -> None:
        self.engine = engine
        self.registry = registry or KeyRegistry()
        self._ids: dict[str, int] = {}  # engine account id -> account id
        self._sinks: dict[int, dict[int, UserEventSink]] = {}
        self._next_sink = 0

    def open_all(self, accounts: Iterable[SimAccount], demo: SimAccount | None = None) -> None:
        """Open `demo` (unless `accounts` lists its key) and then `accounts`, ids from 1."""
        accounts = tuple(accounts)
        if demo is not None and demo.api_key not in {a.api_key for a in accounts}:
            self.open(demo)
        for account in accounts:
            self.open(account)

    def open(self, account: SimAccount) -> int:
        """Fund a new engine account and register its key; returns its account id."""
        account_id = len(self._ids) + 1
        engine_id = str(account_id)
        _register(self.registry, account, account_id)
        try:
            self.engine.open_account(engine_id, account.balances)
        except ValueError:
            self.registry.remove(account.api_key)
            raise
        self._ids[engine_id] = account_id
        return account_id

    @staticmethod
    def engine_id(account_id: int) -> str:
        return str(account_id)

    def account_id(self, engine_id: str) -> int | None:
        """None for accounts not opened here (the synthetic market's market maker)."""
        return self._ids.get(engine_id)

    def listen(self, account_id: int, sink: UserEventSink) -> Callable[[], None]:
        """Call `sink(event)` for each user event of the account; returns the remover."""
        token = self._next_sink
        self._next_sink += 1
        self._sinks.setdefault(account_id, {})[token] = sink

        def remove() -> None:
            sinks = self._sinks.get(account_id)
            if sinks is not None:
                sinks.pop(token, None)
                if not sinks:
                    del self._sinks[account_id]

        return remove

    def listeners(self, account_id: int) -> int:
        return len(self._sinks.get(account_id, ()))

    def publish(self, events: Iterable[UserEvent]) -> None:
        """Deliver events, in order, to the listeners of the account each belongs to."""
        for event in events:
            account_id = self._ids.get(event.account_id)
            sinks = None if account_id is None else self._sinks.get(account_id)
            if sinks:
                for sink in list(sinks.values()):
                    sink(event)
