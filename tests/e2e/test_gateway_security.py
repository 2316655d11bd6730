"""Gateway security as an operator meets it: the start-up rule for tokens, a gateway running with a
tokens file against the real provider, and the public endpoints of the running system."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from gateway_auth.tokens import Scope, TokenStore
from launcher.processes import REPO_ROOT, ManagedProcess, free_port
from launcher.system import System

TIMEOUT = aiohttp.ClientTimeout(total=10)


def environment_without_tokens(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_TOKENS_FILE"}
    return {**env, **overrides}


@pytest.mark.parametrize(
    ("module", "addr_variable"), [("gateway_http", "GATEWAY_HTTP_ADDR"), ("gateway_mcp", "GATEWAY_MCP_ADDR")]
)
def test_a_gateway_refuses_a_real_venue_without_a_tokens_file(module: str, addr_variable: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module],
        env=environment_without_tokens(VENUE="live", **{addr_variable: f"127.0.0.1:{free_port()}"}),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "GATEWAY_TOKENS_FILE is required with VENUE=live" in result.stderr


def test_a_malformed_tokens_file_fails_at_start_naming_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text('[{"name": "bot", "sha256": "short", "scopes": ["read"]}]')
    result = subprocess.run(
        [sys.executable, "-m", "gateway_http"],
        env=environment_without_tokens(GATEWAY_TOKENS_FILE=str(path), GATEWAY_HTTP_ADDR=f"127.0.0.1:{free_port()}"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert f"GATEWAY_TOKENS_FILE: {path}: entry 0 ('bot'): sha256" in result.stderr


async def test_a_gateway_with_tokens_on_a_real_venue_serves_its_public_endpoints(
    system: System, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    store, _ = TokenStore().issue("ops", frozenset({Scope.READ}))
    store.save(path)
    port = free_port()
    gateway = ManagedProcess(
        "gateway_http_live_rule",
        "gateway_http",
        env=environment_without_tokens(
            VENUE="live",  # the rule only: this gateway talks to the simulator-backed provider
            GATEWAY_TOKENS_FILE=str(path),
            GATEWAY_HTTP_ADDR=f"127.0.0.1:{port}",
            PROVIDER_GRPC_ADDR=f"127.0.0.1:{system.ports.provider}",
        ),
        ready_port=port,
        log_path=tmp_path / "gateway_http.log",
    )
    gateway.start()
    try:
        gateway.wait_ready(30)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", timeout=TIMEOUT) as session:
            async with session.get("/health") as response:
                assert response.status == 200
            async with session.get("/openapi.json") as response:
                assert response.status == 200
                assert (await response.json())["openapi"] == "3.1.0"
            async with session.get("/nowhere") as response:
                assert response.status == 404
                assert (await response.json())["reason"] == "NOT_FOUND"
            async with session.get("/metrics") as response:
                text = await response.text()
                assert 'gateway_http_requests_total{method="GET",route="/health",status="200"} 1.0' in text
    finally:
        assert gateway.stop() == 0


async def test_the_running_system_serves_docs_and_metrics_without_a_token(system: System) -> None:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{system.ports.http}", timeout=TIMEOUT) as session:
        async with session.get("/docs") as response:
            assert response.status == 200
            assert "/openapi.json" in await response.text()
        async with session.get("/metrics") as response:
            assert response.status == 200
            assert "gateway_http_requests_total" in await response.text()
