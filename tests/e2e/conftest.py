"""End-to-end fixtures: the real processes on free loopback ports, stopped after the session."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway_auth.tokens import Scope, TokenStore
from launcher.processes import free_port
from launcher.system import Ports, System, build_system


def fresh_ports() -> Ports:
    return Ports(sim=free_port(), provider=free_port(), http=free_port(), mcp=free_port(), metrics=free_port())


@contextlib.contextmanager
def running_system(
    root: Path, env: Mapping[str, str] | None = None, *, without: Collection[str] = ()
) -> Iterator[System]:
    """The system as `make run` starts it, less the processes named in `without`, on fresh loopback
    ports with its data and logs under `root`; stopped at the end, and every process must exit cleanly."""
    whole = build_system(fresh_ports(), data_dir=root / "data", log_dir=root, extra_env=env)
    system = System(whole.ports, [p for p in whole.processes if p.name not in without])
    system.start()
    try:
        yield system
    finally:
        codes = system.stop()
        assert all(not p.running for p in system.processes), "a process outlived its test module"
        assert codes == dict.fromkeys(codes, 0), f"unclean exit codes {codes}"


@dataclass(frozen=True)
class GatewayTokens:
    """The gateways' tokens file, and in clear one token per scope holding that scope only."""

    path: Path
    by_scope: Mapping[Scope, str]


@pytest.fixture(scope="session")
def gateway_tokens(tmp_path_factory: pytest.TempPathFactory) -> GatewayTokens:
    path = tmp_path_factory.mktemp("tokens") / "tokens.json"
    store, by_scope = TokenStore(), {}
    for scope in Scope:
        store, by_scope[scope] = store.issue(f"e2e-{scope.value}", frozenset({scope}))
    store.save(path)
    return GatewayTokens(path, by_scope)


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory, gateway_tokens: GatewayTokens) -> Iterator[System]:
    """Simulator, provider and both gateways, as `make run` starts them."""
    root = tmp_path_factory.mktemp("system")
    with running_system(root, {"GATEWAY_TOKENS_FILE": str(gateway_tokens.path)}) as running:
        yield running


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path
