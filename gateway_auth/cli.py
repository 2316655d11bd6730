"""`python -m gateway_http tokens add|list` (also `python -m gateway_auth tokens ...`).

`add` prints the new token once, on stdout, and stores only its hash; `list` shows names and
scopes, never hashes. The file defaults to GATEWAY_TOKENS_FILE.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from gateway_auth.tokens import TokenFileError, TokenStore, parse_scopes, sorted_scopes


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="manage the gateways' bearer tokens")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create a token, store its hash, print it once")
    add.add_argument("name", help="who or what the token is for (unique in the file)")
    add.add_argument("--scopes", required=True, help="comma-separated: read, account, trade")
    add.add_argument("--file", type=Path, help="tokens file (default: GATEWAY_TOKENS_FILE)")
    show = commands.add_parser("list", help="show token names and scopes (never hashes)")
    show.add_argument("--file", type=Path, help="tokens file (default: GATEWAY_TOKENS_FILE)")
    return parser


def tokens_main(
    argv: Sequence[str],
    prog: str = "python -m gateway_http tokens",
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    env = os.environ if environ is None else environ
    stdout = out or sys.stdout
    stderr = err or sys.stderr
    args = _parser(prog).parse_args(list(argv))
    path: Path | None = args.file or (Path(env["GATEWAY_TOKENS_FILE"]) if env.get("GATEWAY_TOKENS_FILE") else None)
    if path is None:
        print("no tokens file: pass --file PATH or set GATEWAY_TOKENS_FILE", file=stderr)
        return 2
    try:
        store = TokenStore.load(path) if path.exists() or args.command == "list" else TokenStore()
    except TokenFileError as exc:
        print(str(exc), file=stderr)
        return 2
    if args.command == "list":
        for entry in store.entries:
            print(f"{entry.name}\t{','.join(sorted_scopes(entry.scopes))}", file=stdout)
        return 0
    try:
        updated, token = store.issue(args.name, parse_scopes(args.scopes))
    except ValueError as exc:
        print(f"{path}: {exc}", file=stderr)
        return 2
    updated.save(path)
    print(f"token for {args.name!r} ({args.scopes}) added to {path}; it is shown only now:", file=stderr)
    print(token, file=stdout)
    return 0
