"""Prometheus metrics of the provider, read from live state at scrape time (nothing to keep in step).

Served as Prometheus text on ``PROVIDER_METRICS_ADDR`` (``GET /metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from provider.binance.rest import RestClient
from provider.history.store import HistoryStore
from provider.history.writer import HistoryWriter
from provider.marketdata.hub import MarketDataHub
from provider.recording.recorder import Recorder
from service_runtime.loop_lag import LOOP_LAG_BUCKETS_S, LOOP_LAG_HELP, loop_lag_context


class ProviderCollector(Collector):
    def __init__(
        self,
        hub: MarketDataHub,
        rest: RestClient,
        *,
        store: HistoryStore | None = None,
        writer: HistoryWriter | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self._hub = hub
        self._rest = rest
        self._store = store
        self._writer = writer
        self._recorder = recorder

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now_ms = int(time.time() * 1000)
        labels = ["symbol"]
        in_sync = GaugeMetricFamily("provider_book_in_sync", "1 when the local book is in sync", labels=labels)
        age = GaugeMetricFamily("provider_book_age_seconds", "time since the book's last applied update", labels=labels)
        last_id = GaugeMetricFamily("provider_book_last_update_id", "last applied update id", labels=labels)
        resyncs = CounterMetricFamily("provider_book_resyncs", "books discarded and rebuilt", labels=labels)
        gaps = CounterMetricFamily("provider_book_gaps", "sequence gaps detected in the diff stream", labels=labels)
        diffs = CounterMetricFamily("provider_book_diffs_applied", "depth diffs applied", labels=labels)
        snapshots = CounterMetricFamily("provider_book_snapshot_fetches", "REST snapshots fetched", labels=labels)
        failures = CounterMetricFamily("provider_book_snapshot_failures", "REST snapshot fetches failed", labels=labels)
        audits_ok = CounterMetricFamily("provider_book_audits_ok", "audits that agreed with the book", labels=labels)
        audits_bad = CounterMetricFamily("provider_book_audits_failed", "audits that found a mismatch", labels=labels)
        for tracked in self._hub.tracked_symbols():
            book = tracked.book
            counters = book.sync.counters
            view = book.view(0)
            sym = [tracked.symbol]
            in_sync.add_metric(sym, 1.0 if view.in_sync else 0.0)
            age.add_metric(sym, view.age_ms / 1000)
            last_id.add_metric(sym, float(view.last_update_id))
            resyncs.add_metric(sym, counters.resyncs)
            gaps.add_metric(sym, counters.gaps)
            diffs.add_metric(sym, counters.diffs_applied)
            snapshots.add_metric(sym, book.stats.snapshot_fetches)
            failures.add_metric(sym, book.stats.snapshot_failures)
            audits_ok.add_metric(sym, counters.audits_ok)
            audits_bad.add_metric(sym, counters.audits_failed)
        yield from (in_sync, age, last_id, resyncs, gaps, diffs, snapshots, failures, audits_ok, audits_bad)

        hub = self._hub.stats()
        yield GaugeMetricFamily("provider_symbols_tracked", "symbols tracked", value=hub.tracked)
        yield GaugeMetricFamily("provider_symbols_in_sync", "tracked symbols whose book is in sync", value=hub.in_sync)
        yield CounterMetricFamily("provider_stream_messages", "market stream events received", value=hub.messages)
        yield CounterMetricFamily(
            "provider_stream_malformed", "market stream events that could not be read", value=hub.malformed
        )
        pool = self._hub.pool_stats()
        if pool is not None:
            yield GaugeMetricFamily("provider_ws_connections", "market stream connections open", value=pool.connections)
            yield CounterMetricFamily("provider_ws_reconnects", "market stream reconnects", value=pool.reconnects)
            yield CounterMetricFamily("provider_ws_rollovers", "24 h connection rollovers", value=pool.rollovers)
            yield CounterMetricFamily(
                "provider_ws_watchdog_trips", "streams declared dead for silence", value=pool.watchdog_trips
            )
        budget = self._rest.budget.state(now_ms)
        yield GaugeMetricFamily(
            "provider_rest_weight_used", "REST request weight used in the current window", value=budget.used
        )
        yield GaugeMetricFamily(
            "provider_rest_weight_limit", "REST request weight limit of the window", value=budget.limit
        )
        yield CounterMetricFamily(
            "provider_rest_throttled", "REST calls delayed by the weight budget", value=budget.throttled
        )
        yield CounterMetricFamily("provider_rest_rate_limited", "HTTP 429 answers received", value=budget.rate_limited)
        yield CounterMetricFamily("provider_rest_bans", "HTTP 418 answers received", value=budget.bans)
        banned = max(0, (budget.banned_until_ms or 0) - now_ms) / 1000
        yield GaugeMetricFamily("provider_rest_banned_seconds", "seconds until an IP ban ends (0: none)", value=banned)
        yield from self._history()

    def _history(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        if self._store is not None:
            yield GaugeMetricFamily(
                "provider_history_used_bytes", "LMDB pages holding live history", value=self._store.used_bytes()
            )
        if self._writer is not None:
            w = self._writer.stats()
            yield GaugeMetricFamily("provider_history_queued", "records waiting for the writer", value=w.queued)
            yield CounterMetricFamily("provider_history_written", "records committed to LMDB", value=w.written)
            yield CounterMetricFamily("provider_history_dropped", "records refused: writer queue full", value=w.dropped)
            yield CounterMetricFamily("provider_history_failed", "records lost with a failed commit", value=w.failed)
            age = 0.0 if w.last_flush_ms is None else max(0.0, time.time() - w.last_flush_ms / 1000)
            yield GaugeMetricFamily("provider_history_last_flush_age_seconds", "since the last commit", value=age)
        if self._recorder is not None:
            r = self._recorder.stats()
            yield CounterMetricFamily("provider_recorded_snapshots", "1-second snapshots recorded", value=r.snapshots)
            yield CounterMetricFamily(
                "provider_backfilled_trades", "aggregate trades backfilled", value=r.backfilled_trades
            )
            yield CounterMetricFamily("provider_tape_holes", "gaps in the live trade tape", value=r.tape_holes)


def metrics_app(
    hub: MarketDataHub,
    rest: RestClient,
    *,
    store: HistoryStore | None = None,
    writer: HistoryWriter | None = None,
    recorder: Recorder | None = None,
) -> web.Application:
    registry = CollectorRegistry()
    registry.register(ProviderCollector(hub, rest, store=store, writer=writer, recorder=recorder))
    loop_lag = Histogram(
        "provider_event_loop_lag_seconds", LOOP_LAG_HELP, buckets=LOOP_LAG_BUCKETS_S, registry=registry
    )

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.cleanup_ctx.append(loop_lag_context(loop_lag.observe))
    return app
