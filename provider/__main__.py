"""`python -m provider`: the gRPC provider."""

from __future__ import annotations

import asyncio
import logging
import sys

import aiohttp

from provider.binance.rest import RestClient
from provider.config import ProviderConfig, load_config
from provider.service.server import ProviderServer
from provider.venue import VenueMonitor, VenueStatus
from service_runtime.config import ConfigError
from service_runtime.lifecycle import run_main, wait_for_stop_signal
from service_runtime.logs import configure_logging

log = logging.getLogger("provider")


async def serve(config: ProviderConfig) -> int:
    server = ProviderServer(config.grpc_addr)
    try:
        await server.start()
    except OSError as exc:
        log.error("%s", exc)
        return 2
    async with aiohttp.ClientSession() as session:
        rest = RestClient(config.urls.rest, session)
        pending: set[asyncio.Task[None]] = set()

        def on_venue_change(status: VenueStatus) -> None:
            task = asyncio.create_task(server.set_venue_reachable(status.reachable))
            pending.add(task)
            task.add_done_callback(pending.discard)

        monitor = VenueMonitor(rest, on_change=on_venue_change)
        monitor.start()
        log.info(
            "venue %s (REST %s), symbols %s, trading %s, credentials %s",
            config.venue,
            config.urls.rest,
            ",".join(config.symbols),
            "on" if config.trading else "off",
            "configured" if config.credentials else "none",
        )
        await wait_for_stop_signal()
        log.info("stopping: no new calls, draining streams")
        await server.stop()
        await monitor.stop()
        await asyncio.gather(*pending, return_exceptions=True)
    log.info("stopped")
    return 0


async def main() -> int:
    configure_logging("provider")
    try:
        config = load_config(sys.argv[1:])
    except ConfigError as exc:
        log.error("configuration: %s", exc)
        return 2
    return await serve(config)


if __name__ == "__main__":
    run_main(main)
