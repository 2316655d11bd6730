"""`python -m exchange_sim`: a local Binance-compatible spot exchange."""

from __future__ import annotations

import logging
import sys

from exchange_sim.app import create_app
from exchange_sim.config import load_config
from service_runtime.config import ConfigError
from service_runtime.http_serving import serve_aiohttp
from service_runtime.lifecycle import run_main
from service_runtime.logs import configure_logging

log = logging.getLogger("exchange_sim")


async def main() -> int:
    configure_logging("exchange_sim")
    try:
        config = load_config(sys.argv[1:])
    except ConfigError as exc:
        log.error("configuration: %s", exc)
        return 2
    log.info("symbols %s, seed %d", ",".join(config.symbols), config.seed)
    return await serve_aiohttp(create_app(config), config.addr, "EXCHANGE_SIM_ADDR", log)


if __name__ == "__main__":
    run_main(main)
