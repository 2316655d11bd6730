"""End-to-end fixtures: the real processes on free loopback ports, stopped after the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.processes import free_port
from launcher.system import Ports, System, build_system


def fresh_ports() -> Ports:
    return Ports(sim=free_port(), provider=free_port(), http=free_port(), mcp=free_port(), metrics=free_port())


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """Simulator, provider and both gateways, as `make run` starts them."""
    root = tmp_path_factory.mktemp("system")
    running = build_system(fresh_ports(), data_dir=root / "data", log_dir=root)
    running.start()
    try:
        yield running
    finally:
        codes = running.stop()
        assert all(not p.running for p in running.processes), "a process outlived the test session"
        assert codes == dict.fromkeys(codes, 0), f"unclean exit codes {codes}"


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path
