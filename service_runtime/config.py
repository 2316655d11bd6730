"""Configuration from environment variables, each also a CLI flag.

A setting is named once (its environment variable); the flag is derived from it
(`PROVIDER_GRPC_ADDR` -> `--provider-grpc-addr`). A bad value fails at start-up with a
message that names the variable, never later.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_address(text: str) -> Address:
    """Parse `host:port` (IPv6 as `[::1]:port`)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected host:port, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port must be a number, got {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0..65535, got {port}")
    return Address(host, port)


def parse_on_off(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("on", "true", "1", "yes"):
        return True
    if lowered in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"expected on or off, got {text!r}")


def parse_symbols(text: str) -> tuple[str, ...]:
    symbols = tuple(s.strip().upper() for s in text.split(",") if s.strip())
    for symbol in symbols:
        if not symbol.isalnum():
            raise ValueError(f"symbol {symbol!r} is not alphanumeric")
    return symbols


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return value

    return parse


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One setting: its environment variable, default (as text, None for unset), parser, help."""

    env: str
    default: str | None
    parse: Callable[[str], T]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.env.lower().replace("_", "-")

    @property
    def dest(self) -> str:
        return self.env.lower()


class Settings:
    """Parses a set of `Setting`s from argv and the environment (flags win over variables)."""

    def __init__(self, prog: str, description: str, settings: Sequence[Setting[object]]) -> None:
        self._settings = list(settings)
        self._parser = argparse.ArgumentParser(prog=prog, description=description)
        for setting in self._settings:
            default = f" (default: {setting.default})" if setting.default is not None else ""
            self._parser.add_argument(
                setting.flag, dest=setting.dest, default=None, help=f"{setting.help}; env {setting.env}{default}"
            )

    @property
    def parser(self) -> argparse.ArgumentParser:
        return self._parser

    def parse(
        self, argv: Sequence[str] | None, environ: Mapping[str, str] | None = None
    ) -> tuple[dict[str, object], argparse.Namespace]:
        """Return {ENV_NAME: parsed value or None} and the argparse namespace (for extra args)."""
        env = os.environ if environ is None else environ
        namespace = self._parser.parse_args(argv)
        values: dict[str, object] = {}
        for setting in self._settings:
            raw = getattr(namespace, setting.dest)
            source = f"{setting.flag} ({setting.env})"
            if raw is None:
                raw = env.get(setting.env) or None
                source = setting.env
            if raw is None:
                raw = setting.default
                source = f"{setting.env} (default)"
            if raw is None:
                values[setting.env] = None
                continue
            try:
                values[setting.env] = setting.parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{source}: {exc}") from None
        return values, namespace
