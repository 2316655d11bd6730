"""The tokens file: hashing, constant-time lookup, scopes, atomic 0600 writes, malformed files,
the `tokens` command, and the start-up rule shared by both gateways."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_auth.cli import tokens_main
from gateway_auth.tokens import (
    TOKEN_PREFIX,
    Principal,
    Scope,
    TokenEntry,
    TokenFileError,
    TokenStore,
    create_dev_tokens,
    hash_token,
    load_gateway_tokens,
    parse_scopes,
)
from gateway_http.config import load_config as load_http_config
from gateway_mcp.config import load_config as load_mcp_config
from launcher.processes import REPO_ROOT
from service_runtime.config import ConfigError

GOOD_DIGEST = "a" * 64


def test_an_issued_token_authenticates_with_its_scopes_and_only_its_hash_is_kept() -> None:
    store, token = TokenStore().issue("bot", frozenset({Scope.READ, Scope.ACCOUNT}))
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40
    assert store.authenticate(token) == Principal("bot", frozenset({Scope.READ, Scope.ACCOUNT}))
    assert store.entries[0].sha256 == hash_token(token)
    assert token not in store.to_json()


def test_each_token_maps_to_its_own_entry() -> None:
    store, first = TokenStore().issue("first", frozenset({Scope.READ}))
    store, second = store.issue("second", frozenset({Scope.TRADE}))
    assert store.authenticate(first) == Principal("first", frozenset({Scope.READ}))
    assert store.authenticate(second) == Principal("second", frozenset({Scope.TRADE}))


@pytest.mark.parametrize("presented", ["", "bsg_wrong", "x" * 10_000])
def test_unknown_empty_or_oversized_tokens_are_refused(presented: str) -> None:
    store, token = TokenStore().issue("bot", frozenset({Scope.READ}))
    assert store.authenticate(presented) is None
    assert store.authenticate(token + "x") is None
    assert store.authenticate(token[:-1]) is None


def test_scopes_are_independent() -> None:
    principal = Principal("p", frozenset({Scope.TRADE}))
    assert principal.allows(Scope.TRADE)
    assert not principal.allows(Scope.READ)
    assert not principal.allows(Scope.ACCOUNT)


def test_parse_scopes() -> None:
    assert parse_scopes("read, ACCOUNT,") == frozenset({Scope.READ, Scope.ACCOUNT})
    with pytest.raises(ValueError, match="unknown scope 'write'"):
        parse_scopes("read,write")
    with pytest.raises(ValueError, match="at least one scope"):
        parse_scopes(" , ")


def test_duplicate_names_and_empty_scopes_are_refused_when_issuing() -> None:
    store, _ = TokenStore().issue("bot", frozenset({Scope.READ}))
    with pytest.raises(ValueError, match="already exists"):
        store.issue("bot", frozenset({Scope.READ}))
    with pytest.raises(ValueError, match="at least one scope"):
        store.issue("other", frozenset())


def test_save_is_atomic_0600_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "tokens.json"
    store, token = TokenStore().issue("bot", frozenset({Scope.READ, Scope.TRADE}))
    store.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["tokens.json"]  # no temp file left behind
    assert json.loads(path.read_text()) == [{"name": "bot", "sha256": hash_token(token), "scopes": ["read", "trade"]}]
    assert TokenStore.load(path).authenticate(token) == Principal("bot", frozenset({Scope.READ, Scope.TRADE}))
    # overwriting keeps the mode
    store.with_entry(TokenEntry("other", GOOD_DIGEST, frozenset({Scope.READ}))).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert TokenStore.load(path).names() == ["bot", "other"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('{"name": "a"}', "expected a JSON list"),
        ('["a"]', "entry 0: expected an object"),
        ('[{"name": "a", "scopes": ["read"]}]', "entry 0 ('a'): sha256 must be 64 lower-case hex"),
        (f'[{{"name": "a", "sha256": "{"A" * 64}", "scopes": ["read"]}}]', "entry 0 ('a'): sha256"),
        (f'[{{"name": "", "sha256": "{GOOD_DIGEST}", "scopes": ["read"]}}]', "entry 0: name must be"),
        (f'[{{"name": "a", "sha256": "{GOOD_DIGEST}", "scopes": []}}]', "entry 0 ('a'): scopes must be"),
        (f'[{{"name": "a", "sha256": "{GOOD_DIGEST}", "scopes": ["write"]}}]', "unknown scope 'write'"),
        (f'[{{"name": "a", "sha256": "{GOOD_DIGEST}", "scopes": ["read"], "sha265": "x"}}]', "unknown keys"),
        (
            f'[{{"name": "a", "sha256": "{GOOD_DIGEST}", "scopes": ["read"]}},'
            f' {{"name": "a", "sha256": "{"b" * 64}", "scopes": ["read"]}}]',
            "name 'a' appears more than once",
        ),
        (
            f'[{{"name": "a", "sha256": "{GOOD_DIGEST}", "scopes": ["read"]}},'
            f' {{"name": "b", "sha256": "{GOOD_DIGEST}", "scopes": ["read"]}}]',
            "same sha256",
        ),
    ],
)
def test_malformed_files_are_refused_naming_the_file_and_entry(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content)
    with pytest.raises(TokenFileError) as raised:
        TokenStore.load(path)
    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match=r"missing\.json: cannot read"):
        TokenStore.load(tmp_path / "missing.json")


def test_real_venue_without_tokens_file_is_refused_naming_the_variable(tmp_path: Path) -> None:
    for venue in ("testnet", "live"):
        with pytest.raises(ConfigError, match="GATEWAY_TOKENS_FILE is required with VENUE="):
            load_gateway_tokens(None, venue)
    assert load_gateway_tokens(None, "sim") == TokenStore()  # runs, but nothing authenticates
    assert load_gateway_tokens(None, "live", required=False) == TokenStore()
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    with pytest.raises(ConfigError, match=r"GATEWAY_TOKENS_FILE: .*bad\.json: entry 0"):
        load_gateway_tokens(bad, "sim")


def test_both_gateways_apply_the_rule(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_TOKENS_FILE"):
        load_http_config([], {"VENUE": "live"})
    with pytest.raises(ConfigError, match="GATEWAY_TOKENS_FILE"):
        load_mcp_config([], {"VENUE": "testnet"})
    assert load_mcp_config(["--stdio"], {"VENUE": "live"}).tokens == TokenStore()  # a local pipe, no HTTP auth
    path = tmp_path / "tokens.json"
    store, token = TokenStore().issue("bot", frozenset({Scope.READ}))
    store.save(path)
    env = {"VENUE": "live", "GATEWAY_TOKENS_FILE": str(path)}
    assert load_http_config([], env).tokens.authenticate(token) is not None
    assert load_mcp_config([], env).tokens.authenticate(token) is not None


def test_dev_tokens_cover_each_scope_set(tmp_path: Path) -> None:
    path = tmp_path / "dev-tokens.json"
    issued = create_dev_tokens(path)
    store = TokenStore.load(path)
    assert [(name, set(scopes)) for name, scopes, _ in issued] == [
        ("dev-read", {Scope.READ}),
        ("dev-account", {Scope.READ, Scope.ACCOUNT}),
        ("dev-trade", {Scope.READ, Scope.ACCOUNT, Scope.TRADE}),
    ]
    for name, scopes, token in issued:
        assert store.authenticate(token) == Principal(name, scopes)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def run_cli(*argv: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = tokens_main(list(argv), environ=environ or {}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_add_prints_the_token_once_and_list_never_shows_hashes(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    code, out, _ = run_cli("add", "alice", "--scopes", "read,account", "--file", str(path))
    assert code == 0
    token = out.strip()
    assert TokenStore.load(path).authenticate(token) == Principal("alice", frozenset({Scope.READ, Scope.ACCOUNT}))
    code, out, _ = run_cli("add", "bob", "--scopes", "trade", environ={"GATEWAY_TOKENS_FILE": str(path)})
    assert code == 0
    code, out, _ = run_cli("list", "--file", str(path))
    assert code == 0
    assert out.splitlines() == ["alice\tread,account", "bob\ttrade"]
    for entry in TokenStore.load(path).entries:
        assert entry.sha256 not in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("add", "alice", "--scopes", "read"), "no tokens file"),
        (("add", "alice", "--scopes", "write", "--file", "{path}"), "unknown scope"),
        (("add", "dup", "--scopes", "read", "--file", "{path}"), "already exists"),
    ],
)
def test_cli_errors_exit_2_with_a_message(tmp_path: Path, argv: tuple[str, ...], expected: str) -> None:
    path = tmp_path / "tokens.json"
    TokenStore().issue("dup", frozenset({Scope.READ}))[0].save(path)
    code, out, err = run_cli(*(a.replace("{path}", str(path)) for a in argv))
    assert code == 2
    assert out == ""
    assert expected in err


def test_python_m_gateway_http_tokens_add(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    result = subprocess.run(
        [sys.executable, "-m", "gateway_http", "tokens", "add", "ci", "--scopes", "read", "--file", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert TokenStore.load(path).authenticate(result.stdout.strip()) == Principal("ci", frozenset({Scope.READ}))


def test_make_run_creates_dev_tokens_once_and_prints_them_once(tmp_path: Path) -> None:
    from launcher.__main__ import DEV_TOKENS_FILE, _dev_tokens_note

    path = tmp_path / DEV_TOKENS_FILE
    first = _dev_tokens_note(path)
    store = TokenStore.load(path)
    shown = [line.split()[-1] for line in first.splitlines() if line.strip().startswith("dev-")]
    assert len(shown) == 3
    principals = [store.authenticate(token) for token in shown]
    assert [p.name if p else None for p in principals] == ["dev-read", "dev-account", "dev-trade"]
    again = _dev_tokens_note(path)
    assert "delete it for new ones" in again
    assert not any(token in again for token in shown)
    assert TokenStore.load(path) == store
