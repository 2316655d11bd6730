"""`python -m provider`: the gRPC provider."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

import aiohttp
from aiohttp import web

from provider.binance.rest import RestClient
from provider.binance.signing import load_signer
from provider.binance.streams import StreamPool, StreamPoolConfig
from provider.binance.user_data import UserDataClient, UserDataConfig
from provider.config import ProviderConfig, load_config
from provider.history.store import HistoryStore
from provider.history.writer import HistoryWriter
from provider.marketdata.hub import MarketConfig, MarketDataHub
from provider.metrics import metrics_app
from provider.recording.recorder import Recorder
from provider.service.account import AccountServicer
from provider.service.analytics import AnalyticsServicer
from provider.service.market_data import MarketDataServicer
from provider.service.server import ProviderServer
from provider.service.trading import TradingServicer
from provider.trading.journal import PlacementJournal
from provider.trading.orders import OrderManager, TradingLimits
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
                audit_interval_s=config.audit_interval_s,
                idle_release_s=config.idle_release_s,
            ),
        )
        store = HistoryStore(
            config.data_dir / "history",
            levels=config.snapshot_levels,
            retention_ms=int(config.retention_days * 86_400_000),
            max_bytes=None if config.history_max_mb is None else int(config.history_max_mb * 1_000_000),
        )
        writer = HistoryWriter(store)
        recorder = Recorder(store, writer, rest, levels=config.snapshot_levels)
        hub.attach_recorder(recorder)
        # User data over the WS API needs credentials; without them account calls are refused.
        user_data = UserDataClient(session, rest, signer, UserDataConfig(config.urls.ws_api)) if signer else None
        journal = PlacementJournal(config.data_dir / "orders")
        orders = OrderManager(
            rest,
            hub,
            TradingLimits(config.trading, config.max_order_notional, config.max_symbol_notional),
            journal=journal,
        )
        server = ProviderServer(
            config.grpc_addr,
            market_data=MarketDataServicer(hub, rest),
            account=AccountServicer(rest, user_data),
            trading=TradingServicer(orders),
            analytics=AnalyticsServicer(hub, store),
        )
        # Every component is registered for shutdown as soon as it runs, so an early exit unwinds
        # too. Shutdown is the reverse: stop gRPC, let placements whose callers left finish, then
        # user data, recording, streams, then flush the history and close it.
        async with contextlib.AsyncExitStack() as running:
            running.callback(journal.close)
            running.callback(store.close)
            await writer.start()
            running.push_async_callback(writer.close)  # flushes what the recorder handed over
            if config.metrics_addr is not None:
                metrics_runner = web.AppRunner(
                    metrics_app(hub, rest, store=store, writer=writer, recorder=recorder),
                    access_log=None,
                    handle_signals=False,
                )
                await metrics_runner.setup()
                running.push_async_callback(metrics_runner.cleanup)
                try:
                    await web.TCPSite(metrics_runner, config.metrics_addr.host, config.metrics_addr.port).start()
                except OSError as exc:
                    log.error("PROVIDER_METRICS_ADDR: cannot listen on %s: %s", config.metrics_addr, exc)
                    return 2
            await hub.start()
            running.push_async_callback(hub.close)
            await recorder.start()
            running.push_async_callback(recorder.close)
            if user_data is not None:
                user_data.start()
                running.push_async_callback(user_data.close)
            running.push_async_callback(orders.close)
            try:
                await server.start()
            except OSError as exc:
                log.error("%s", exc)
                return 2
            running.push_async_callback(server.stop)
            pending: set[asyncio.Task[None]] = set()

            def on_venue_change(status: VenueStatus) -> None:
                task = asyncio.create_task(server.set_venue_reachable(status.reachable))
                pending.add(task)
                task.add_done_callback(pending.discard)

            monitor = VenueMonitor(rest, on_change=on_venue_change)
            monitor.start()
            running.push_async_callback(monitor.stop)
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
