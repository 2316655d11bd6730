"""`python -m gateway_mcp`: MCP for AI assistants, over Streamable HTTP (/mcp) or stdio (--stdio)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
from collections.abc import Iterator

import uvicorn

from gateway_mcp.auth import AccessPolicy
from gateway_mcp.config import McpGatewayConfig, load_config
from gateway_mcp.server import build_http_app, build_server
from provider_client.channel import open_channel
from service_runtime.config import ConfigError
from service_runtime.http_serving import HANDLER_GRACE_S
from service_runtime.lifecycle import run_main, wait_for_stop_signal
from service_runtime.logs import configure_logging

log = logging.getLogger("gateway_mcp")


class _CutAtShutdown(logging.Filter):
    """uvicorn reports each request it cancels at the end of its bounded graceful shutdown (an
    assistant's open event stream, most often) as an exception of the ASGI app, with a traceback.
    Those cancellations are the bound working: its own "Cancel N running task(s)" line says enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: this process's run loop decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(config: McpGatewayConfig) -> int:
    channel = open_channel(config.provider_addr)
    # GATEWAY_MCP_AUTH=off is only accepted on loopback (config.py refuses it otherwise).
    access = AccessPolicy.bearer(config.tokens) if config.auth else AccessPolicy.without_tokens()
    server_url = f"http://{config.addr}"
    mcp = build_server(channel, access, base_url=server_url, order_preview_ttl_ms=config.order_preview_ttl_ms)
    app = build_http_app(mcp, config.addr)
    server = _Server(
        uvicorn.Config(
            app,
            host=config.addr.host,
            port=config.addr.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # Without a bound uvicorn waits for every connection to close, and a client's open event
            # stream (GET /mcp) never does: the process would outlast its stop timeout and be killed.
            timeout_graceful_shutdown=math.ceil(HANDLER_GRACE_S),
        )
    )
    logging.getLogger("uvicorn.error").addFilter(_CutAtShutdown())
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    stop = asyncio.create_task(wait_for_stop_signal(), name="stop-signal")
    done, _ = await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
    if serving in done:  # failed to start (for example the port is taken)
        stop.cancel()
        await channel.close(None)
        log.error("GATEWAY_MCP_ADDR: could not serve on %s", config.addr)
        return 2
    log.info("stopping")
    server.should_exit = True
    await serving
    await channel.close(None)
    log.info("stopped")
    return 0


async def serve_stdio(config: McpGatewayConfig) -> int:
    channel = open_channel(config.provider_addr)
    try:
        # A local pipe to whoever started the process: no tokens, read-only tools.
        mcp = build_server(channel, AccessPolicy.without_tokens(), order_preview_ttl_ms=config.order_preview_ttl_ms)
        await mcp.run_stdio_async()
    finally:
        await channel.close(None)
    return 0


async def main() -> int:
    configure_logging("gateway_mcp")
    try:
        config = load_config(sys.argv[1:])
    except ConfigError as exc:
        log.error("configuration: %s", exc)
        return 2
    if config.stdio:
        return await serve_stdio(config)
    log.info("listening on http://%s/mcp, provider at %s", config.addr, config.provider_addr)
    return await serve_http(config)


if __name__ == "__main__":
    run_main(main)
