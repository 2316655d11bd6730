"""`python -m gateway_http`: REST and WebSocket gateway in front of the provider.

`python -m gateway_http tokens add NAME --scopes read,account [--file PATH]` and
`python -m gateway_http tokens list` manage the bearer tokens file (see gateway_auth.cli).
"""

from __future__ import annotations

import logging
import os
import sys

from gateway_auth.cli import tokens_main
from gateway_http.app import create_app
from gateway_http.config import load_config
from gateway_http.workers import WorkerSlot, serve_worker, supervise
from service_runtime.config import ConfigError
from service_runtime.http_serving import serve_aiohttp
from service_runtime.lifecycle import run_main
from service_runtime.logs import configure_logging

log = logging.getLogger("gateway_http")


async def main() -> int:
    slot = WorkerSlot.from_environ(os.environ)
    configure_logging("gateway_http" if slot is None else f"gateway_http[{slot.index}]")
    try:
        config = load_config(sys.argv[1:], tokens=None if slot is None else slot.tokens())
    except ConfigError as exc:
        log.error("configuration: %s", exc)
        return 2
    if slot is not None:
        return await serve_worker(config, slot, log)
    log.info(
        "provider at %s, venue %s, %d bearer token(s)", config.provider_addr, config.venue, len(config.tokens.entries)
    )
    if not config.tokens.entries:
        log.warning(
            "no bearer tokens (GATEWAY_TOKENS_FILE): every route except /health, /metrics and the docs answers 401"
        )
    if config.workers > 1:
        return await supervise(config, log)
    return await serve_aiohttp(create_app(config), config.addr, "GATEWAY_HTTP_ADDR", log)


if __name__ == "__main__":
    if sys.argv[1:2] == ["tokens"]:
        sys.exit(tokens_main(sys.argv[2:]))
    run_main(main)
