"""`python -m provider`: the gRPC provider."""

from __future__ import annotations

import asyncio
import logging
import sys

import aiohttp
from aiohttp import web

from provider.binance.rest import RestClient
from provider.binance.signing import load_signer
from provider.binance.streams import StreamPool, StreamPoolConfig
from provider.config import ProviderConfig, load_config
from provider.marketdata.hub import MarketConfig, MarketDataHub
from provider.metrics import metrics_app
from provider.service.market_data import MarketDataServicer
from provider.service.server import ProviderServer
from provider.venue import VenueMonitor, VenueStatus
from service_runtime.config import ConfigError
from service_runtime.lifecycle import run_main, wait_for_stop_signal
from service_runtime.logs import configure_logging

log = logging.getLogger("provider")


async def serve(config: ProviderConfig) -> int:
    async with aiohttp.ClientSession() as session:
        creds = config.credentials
        signer = (
            load_signer(creds.api_key, secret=creds.api_secret, private_key_file=creds.private_key_file)
            if creds is not None
            else None
        )
        rest = RestClient(config.urls.rest, session, signer=signer)
        hub = MarketDataHub(
            rest,
            lambda handler: StreamPool(
                config.urls.ws, session, handler, StreamPoolConfig(data_silence_timeout_s=config.stream_stall_s)
            ),
            MarketConfig(
                pinned=config.symbols,
                snapshot_limit=config.snapshot_limit,
                idle_release_s=config.idle_release_s,
            ),
        )
        server = ProviderServer(config.grpc_addr, market_data=MarketDataServicer(hub, rest))
        try:
            await server.start()
        except OSError as exc:
            log.error("%s", exc)
            return 2
        metrics_runner: web.AppRunner | None = None
        if config.metrics_addr is not None:
            metrics_runner = web.AppRunner(metrics_app(hub, rest), access_log=None, handle_signals=False)
            await metrics_runner.setup()
            try:
                await web.TCPSite(metrics_runner, config.metrics_addr.host, config.metrics_addr.port).start()
            except OSError as exc:
                log.error("PROVIDER_METRICS_ADDR: cannot listen on %s: %s", config.metrics_addr, exc)
                await metrics_runner.cleanup()
                await server.stop(0)
                return 2
        await hub.start()
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
        await hub.close()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
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
