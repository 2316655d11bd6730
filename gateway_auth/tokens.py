"""The tokens file and the check of a presented bearer token.

The file (GATEWAY_TOKENS_FILE) is a JSON list of
`{"name": "...", "sha256": "<hex digest of the token>", "scopes": ["read", "account", "trade"]}`.
Tokens are never stored in clear: only their SHA-256 digest is kept, and a presented token is
compared against every entry in constant time so timing reveals neither which entry nor how
much of it matched. Scopes are independent: `trade` does not imply `account` or `read`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from service_runtime.config import ConfigError

TOKEN_PREFIX = "bsg_"  # recognisable in a leaked-secret scan ("binance spot gateway")
MAX_TOKEN_LENGTH = 256  # anything longer is not one of ours; refuse before hashing
_ENTRY_KEYS = frozenset({"name", "sha256", "scopes"})


class Scope(StrEnum):
    READ = "read"  # market data, analytics
    ACCOUNT = "account"  # balances, orders and fills (reading)
    TRADE = "trade"  # placing and cancelling orders


class TokenFileError(ValueError):
    """The tokens file is missing, unreadable or malformed; the message names the file and entry."""


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to."""

    name: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class TokenEntry:
    name: str
    sha256: str
    scopes: frozenset[Scope]

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "sha256": self.sha256, "scopes": sorted_scopes(self.scopes)}


def sorted_scopes(scopes: Iterable[Scope]) -> list[str]:
    order = list(Scope)
    return [scope.value for scope in sorted(set(scopes), key=order.index)]


def parse_scopes(text: str) -> frozenset[Scope]:
    """`read,account` -> {READ, ACCOUNT}; ValueError naming an unknown scope."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("at least one scope is needed (read, account, trade)")
    return frozenset(_scope(name) for name in names)


def _scope(name: str) -> Scope:
    try:
        return Scope(name)
    except ValueError:
        raise ValueError(f"unknown scope {name!r} (expected {', '.join(s.value for s in Scope)})") from None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits); only its hash is ever stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _parse_entry(raw: object, index: int, path: Path) -> TokenEntry:
    where = f"{path}: entry {index}"
    if not isinstance(raw, Mapping):
        raise TokenFileError(f"{where}: expected an object with name, sha256 and scopes")
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = f"{where} ({name!r})"
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise TokenFileError(f"{where}: unknown keys {sorted(unknown)} (expected name, sha256, scopes)")
    if not isinstance(name, str) or not name.strip():
        raise TokenFileError(f"{where}: name must be a non-empty string")
    digest = raw.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise TokenFileError(f"{where}: sha256 must be 64 lower-case hex characters (the token's SHA-256)")
    scopes = raw.get("scopes")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise TokenFileError(f"{where}: scopes must be a non-empty list of read, account, trade")
    try:
        parsed = frozenset(_scope(s) for s in scopes)
    except ValueError as exc:
        raise TokenFileError(f"{where}: scopes: {exc}") from None
    return TokenEntry(name=name, sha256=digest, scopes=parsed)


@dataclass(frozen=True)
class TokenStore:
    """The entries of one tokens file. Immutable: adding returns a new store."""

    entries: tuple[TokenEntry, ...] = ()

    @classmethod
    def parse(cls, text: str, path: Path) -> TokenStore:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TokenFileError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(raw, list):
            raise TokenFileError(f"{path}: expected a JSON list of token entries")
        store = cls(tuple(_parse_entry(item, index, path) for index, item in enumerate(raw)))
        names = [entry.name for entry in store.entries]
        for name in names:
            if names.count(name) > 1:
                raise TokenFileError(f"{path}: entry name {name!r} appears more than once")
        digests = [entry.sha256 for entry in store.entries]
        if len(set(digests)) != len(digests):
            raise TokenFileError(f"{path}: two entries have the same sha256")
        return store

    @classmethod
    def load(cls, path: Path) -> TokenStore:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
        return cls.parse(text, path)

    def authenticate(self, token: str) -> Principal | None:
        """The principal a token belongs to, or None. Every entry is compared, match or not."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        digest = hash_token(token).encode("ascii")
        found: TokenEntry | None = None
        for entry in self.entries:
            if hmac.compare_digest(digest, entry.sha256.encode("ascii")):
                found = entry
        return None if found is None else Principal(found.name, found.scopes)

    def names(self) -> list[str]:
        return [entry.name for entry in self.entries]

    def with_entry(self, entry: TokenEntry) -> TokenStore:
        if entry.name in self.names():
            raise ValueError(f"a token named {entry.name!r} already exists")
        return TokenStore((*self.entries, entry))

    def issue(self, name: str, scopes: frozenset[Scope]) -> tuple[TokenStore, str]:
        """A new store with a fresh token for `name`, and that token (shown once, never stored)."""
        if not name.strip():
            raise ValueError("the token name must not be empty")
        if not scopes:
            raise ValueError("at least one scope is needed (read, account, trade)")
        token = new_token()
        return self.with_entry(TokenEntry(name=name, sha256=hash_token(token), scopes=scopes)), token

    def to_json(self) -> str:
        return json.dumps([entry.as_json() for entry in self.entries], indent=2) + "\n"

    def save(self, path: Path) -> None:
        """Write atomically (temp file in the same directory, fsync, rename) with mode 0600."""
        directory = path.parent if str(path.parent) else Path(".")
        directory.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)


# `make run` with the simulator: one development token per scope set, from least to most power.
DEV_TOKEN_SCOPES: tuple[tuple[str, frozenset[Scope]], ...] = (
    ("dev-read", frozenset({Scope.READ})),
    ("dev-account", frozenset({Scope.READ, Scope.ACCOUNT})),
    ("dev-trade", frozenset({Scope.READ, Scope.ACCOUNT, Scope.TRADE})),
)


def create_dev_tokens(path: Path) -> list[tuple[str, frozenset[Scope], str]]:
    """Write a new development tokens file; returns (name, scopes, token) to show once."""
    store = TokenStore()
    issued: list[tuple[str, frozenset[Scope], str]] = []
    for name, scopes in DEV_TOKEN_SCOPES:
        store, token = store.issue(name, scopes)
        issued.append((name, scopes, token))
    store.save(path)
    return issued


def load_gateway_tokens(path: Path | None, venue: str, *, required: bool = True) -> TokenStore:
    """The tokens a gateway starts with, applying the start-up rule shared by both gateways.

    With a real venue (VENUE other than sim) a gateway that authenticates refuses to start
    without a tokens file. With VENUE=sim it starts with no tokens: auth is still enforced, so
    every protected route answers 401 until a file is given (`make run` creates one).
    """
    if path is None:
        if required and venue != "sim":
            raise ConfigError(
                f"GATEWAY_TOKENS_FILE is required with VENUE={venue}: create one with "
                "`python -m gateway_http tokens add NAME --scopes read --file PATH`"
            )
        return TokenStore()
    try:
        return TokenStore.load(path)
    except TokenFileError as exc:
        raise ConfigError(f"GATEWAY_TOKENS_FILE: {exc}") from None
