"""The system as an operator and a client see it: health, reflection,
MCP over Streamable HTTP, configuration errors and clean shutdown."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from gateway_auth.tokens import Scope
from launcher.processes import ManagedProcess, free_port, wait_until
from launcher.system import Ports, System, build_system
from tests.e2e.conftest import GatewayTokens

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
PROVIDER_SERVICES = {
    "binance.provider.v1.MarketData",
    "binance.provider.v1.Trading",
    "binance.provider.v1.Account",
    "binance.provider.v1.Analytics",
}


def grpcurl(port: int, *args: str, data: str | None = None) -> subprocess.CompletedProcess[str]:
    """`grpcurl -plaintext [-d DATA] 127.0.0.1:PORT ARGS...`, as an operator would type it."""
    flags = ["-d", data] if data is not None else []
    return subprocess.run(
        [GRPCURL, "-plaintext", *flags, f"127.0.0.1:{port}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def get_json(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url, timeout=aiohttp.ClientTimeout(10)) as resp:
        return resp.status, await resp.json(content_type=None)


def test_grpcurl_lists_the_four_services_plus_health_and_reflection(system: System) -> None:
    result = grpcurl(system.ports.provider, "list")
    assert result.returncode == 0, result.stderr
    listed = set(result.stdout.split())
    assert listed >= PROVIDER_SERVICES
    assert "grpc.health.v1.Health" in listed
    assert "grpc.reflection.v1alpha.ServerReflection" in listed


def test_grpcurl_describes_a_method_through_reflection(system: System) -> None:
    result = grpcurl(system.ports.provider, "describe", "binance.provider.v1.MarketData")
    assert result.returncode == 0, result.stderr
    assert (
        "rpc StreamDepth ( .binance.provider.v1.StreamDepthRequest ) "
        "returns ( stream .binance.provider.v1.StreamDepthResponse );"
    ) in result.stdout


def test_health_check_reports_serving_when_the_venue_answers(system: System) -> None:
    result = grpcurl(system.ports.provider, "grpc.health.v1.Health/Check")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "SERVING"}


@pytest.mark.parametrize("service", sorted(PROVIDER_SERVICES))
def test_every_service_is_serving(system: System, service: str) -> None:
    result = grpcurl(system.ports.provider, "grpc.health.v1.Health/Check", data=json.dumps({"service": service}))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "SERVING"}


async def test_http_gateway_health_shows_gateway_and_provider(system: System) -> None:
    status, body = await get_json(f"http://127.0.0.1:{system.ports.http}/health")
    assert status == 200
    assert body["status"] == "ok"
    provider = body["provider"]
    assert isinstance(provider, dict)
    assert provider["status"] == "SERVING"
    assert set(provider["services"]) == PROVIDER_SERVICES


async def test_mcp_gateway_health(system: System) -> None:
    status, body = await get_json(f"http://127.0.0.1:{system.ports.mcp}/health")
    assert status == 200
    assert body["status"] == "ok"


async def test_mcp_client_lists_and_calls_the_status_tool(system: System, gateway_tokens: GatewayTokens) -> None:
    url = f"http://127.0.0.1:{system.ports.mcp}/mcp"
    headers = {"Authorization": f"Bearer {gateway_tokens.by_scope[Scope.READ]}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(15)) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        tools = await client.list_tools()
        status_tool = next(t for t in tools.tools if t.name == "service_status")
        assert status_tool.annotations is not None and status_tool.annotations.read_only_hint
        assert status_tool.output_schema is not None
        result = await client.call_tool("service_status", {})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["provider_status"] == "SERVING"


def _start(tmp_path: Path, ports: Ports, names: tuple[str, ...], **env: str) -> list[ManagedProcess]:
    processes = [p for p in build_system(ports, tmp_path / "data", tmp_path, env).processes if p.name in names]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.wait_ready()
    except BaseException:
        for process in processes:
            process.stop()
        raise
    return processes


async def test_health_is_degraded_when_the_venue_is_unreachable(tmp_path: Path) -> None:
    """Provider up but its venue down: the provider is NOT_SERVING and the gateway says 503."""
    ports = Ports(sim=free_port(), provider=free_port(), http=free_port(), mcp=free_port())
    processes = _start(tmp_path, ports, ("provider", "gateway_http"))  # no simulator on ports.sim
    try:
        status, body = await get_json(f"http://127.0.0.1:{ports.http}/health")
        assert status == 503
        assert body["status"] == "degraded"
        assert isinstance(body["provider"], dict) and body["provider"]["status"] == "NOT_SERVING"
    finally:
        for process in reversed(processes):
            assert process.stop() == 0


async def test_health_reports_an_unreachable_provider(tmp_path: Path) -> None:
    ports = Ports(sim=free_port(), provider=free_port(), http=free_port(), mcp=free_port())
    (gateway,) = _start(tmp_path, ports, ("gateway_http",))  # nothing on the provider port
    try:
        status, body = await get_json(f"http://127.0.0.1:{ports.http}/health")
        assert status == 503
        assert isinstance(body["provider"], dict) and body["provider"]["status"] == "UNREACHABLE"
    finally:
        assert gateway.stop() == 0


async def test_gateway_recovers_when_the_provider_comes_back(tmp_path: Path) -> None:
    """The gateway's channel reconnects by itself: no restart of the gateway is needed."""
    ports = Ports(sim=free_port(), provider=free_port(), http=free_port(), mcp=free_port())
    processes = _start(tmp_path, ports, ("exchange_sim", "gateway_http"))
    provider = next(p for p in build_system(ports, tmp_path / "data", tmp_path).processes if p.name == "provider")
    try:
        status, _ = await get_json(f"http://127.0.0.1:{ports.http}/health")
        assert status == 503
        provider.start()
        provider.wait_ready()
        # The channel's reconnect backoff is capped at 5 s, so 15 s is ample.
        deadline = time.monotonic() + 15
        while (await get_json(f"http://127.0.0.1:{ports.http}/health"))[0] != 200:
            assert time.monotonic() < deadline, "gateway never saw the provider come back"
            await asyncio.sleep(0.1)
    finally:
        assert provider.stop() == 0
        for process in reversed(processes):
            assert process.stop() == 0


@pytest.mark.parametrize(
    ("module", "args", "expected"),
    [
        ("provider", ["--provider-grpc-addr", "nonsense"], "PROVIDER_GRPC_ADDR"),
        ("provider", ["--venue", "moon"], "VENUE"),
        ("provider", ["--provider-trading", "maybe"], "PROVIDER_TRADING"),
        ("gateway_http", ["--gateway-http-addr", "127.0.0.1:99999"], "GATEWAY_HTTP_ADDR"),
        ("gateway_mcp", ["--gateway-mcp-addr", "0.0.0.0:8765", "--gateway-mcp-auth", "off"], "GATEWAY_MCP_AUTH"),
        ("exchange_sim", ["--exchange-sim-addr", "localhost"], "EXCHANGE_SIM_ADDR"),
    ],
)
def test_bad_configuration_fails_at_start_naming_the_variable(module: str, args: list[str], expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 2
    assert expected in result.stderr


def test_sigterm_stops_each_process_cleanly(tmp_path: Path) -> None:
    ports = Ports(sim=free_port(), provider=free_port(), http=free_port(), mcp=free_port())
    running = build_system(ports, tmp_path / "data", tmp_path)
    running.start()
    codes = running.stop()
    assert codes == {"gateway_mcp": 0, "gateway_http": 0, "provider": 0, "exchange_sim": 0}
    wait_until(lambda: not any(p.running for p in running.processes), 5, "all processes to exit")
