"""Schemathesis fuzzes every operation of the running gateway's /openapi.json with a read+account
token: no answer may be a 5xx, and every answer (status, content type, headers, body) must match
the document. Order placing and cancelling are fuzzed too: the token lacks the trade scope (and
the provider's trading is off), so they must fail cleanly with a documented 4xx.

The run is bounded (a fixed seed, few examples per operation, a time budget) to keep CI short.
Every operation is fuzzed, none excluded. Random symbols are almost never listed, so half of the
generated `symbol` values are drawn from listed ones: success answers get schema-checked too, and
the klines operation must have had some (its tuple schema was once excluded from the run).

Not run: negative_data_rejection (an empty query value is read as an absent parameter, by design)
and positive_data_acceptance (the schema cannot say which symbols are listed, nor that symbol and
symbols exclude each other)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_auth.tokens import Scope, TokenStore
from launcher.system import System
from tests.e2e.conftest import running_system

pytestmark = pytest.mark.timeout(240)

MAX_EXAMPLES = 20
TIME_BUDGET_S = 45
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
LISTED_SYMBOLS = ("BTCUSDT", "ETHUSDT")  # listed by the simulator
# Schemathesis reads dictionaries and parameter bindings from its TOML config file only.
CONFIG = f"""
[dictionaries.listed]
values = [{", ".join(f'"{symbol}"' for symbol in LISTED_SYMBOLS)}]

[parameters]
"query.symbol" = {{ dictionary = "listed", probability = 0.5 }}
"""


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[System, str, Path]]:
    root = tmp_path_factory.mktemp("schemathesis")
    store, token = TokenStore().issue("fuzz", frozenset({Scope.READ, Scope.ACCOUNT}))
    store.save(root / "tokens.json")
    # No rate limit: a fuzzer's burst would otherwise be mostly 429s and test little else.
    env = {
        "GATEWAY_TOKENS_FILE": str(root / "tokens.json"),
        "GATEWAY_HTTP_RATE_LIMIT": "off",
        "SIM_WEIGHT_PER_MINUTE": "1000000",  # nor may the venue's request weight limit answer for the gateway
    }
    with running_system(root, env, without={"gateway_mcp"}) as system:  # MCP is not under test
        yield system, token, root


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzzed: tuple[System, str, Path]) -> None:
    system, token, root = fuzzed
    config = root / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(config),
        "run",
        f"http://127.0.0.1:{system.ports.http}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(TIME_BUDGET_S),
        "--seed",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--no-color",
        "--report",
        "har",
        "--report-dir",
        str(root / "report"),
    ]
    # Run in the module's directory: schemathesis keeps a crash cache (.schemathesis/) in its working directory.
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIME_BUDGET_S + 90, check=False, cwd=root)
    output = result.stdout + result.stderr
    (root / "schemathesis.txt").write_text(output)  # the whole report, kept beside the logs
    assert result.returncode == 0, output[output.find("FAILURES") :][:12000]
    assert "No issues found" in output or " passed" in output, output[-4000:]
    # Proof that success answers were schema-checked: listed symbols reached the klines operation.
    (har,) = (root / "report").glob("har-*.json")
    statuses = [
        entry["response"]["status"]
        for entry in json.loads(har.read_text())["log"]["entries"]
        if entry["request"]["method"] == "GET" and "/api/v1/klines?" in entry["request"]["url"]
    ]
    assert statuses.count(200) >= 5, f"klines answered {statuses.count(200)} times 200 of {len(statuses)}"
    gateway_log = (root / "gateway_http.log").read_text()
    assert "unhandled error" not in gateway_log, gateway_log[-4000:]
