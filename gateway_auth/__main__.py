"""`python -m gateway_auth tokens add NAME --scopes read,account [--file PATH]` and `tokens list`."""

from __future__ import annotations

import sys

from gateway_auth.cli import tokens_main

if __name__ == "__main__":
    if sys.argv[1:2] != ["tokens"]:
        print("usage: python -m gateway_auth tokens {add,list} ...", file=sys.stderr)
        sys.exit(2)
    sys.exit(tokens_main(sys.argv[2:], prog="python -m gateway_auth tokens"))
