"""`python -m launcher` (what `make run` runs): the whole system with the simulator as venue.

Bearer tokens: GATEWAY_TOKENS_FILE if set; otherwise a development file under the data
directory (dev-tokens.json), created on first run with one token per scope set and printed once.
Delete it to get new tokens.

Ports come from the usual variables (EXCHANGE_SIM_ADDR, PROVIDER_GRPC_ADDR, GATEWAY_HTTP_ADDR,
GATEWAY_MCP_ADDR) or their defaults. Ctrl-C (or SIGTERM) stops every process, gateways first,
and waits for each to exit; nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from gateway_auth.tokens import create_dev_tokens, sorted_scopes
from launcher.processes import ProcessFailed
from launcher.system import Ports, build_system
from service_runtime.config import ConfigError, parse_address


def _port(env: str, default: str) -> int:
    try:
        return parse_address(os.environ.get(env) or default).port
    except ValueError as exc:
        raise ConfigError(f"{env}: {exc}") from None


DEV_TOKENS_FILE = "dev-tokens.json"


def _dev_tokens_note(path: Path) -> str:
    """Create the development tokens file if missing; the lines telling the user about it."""
    if path.exists():
        return f"  bearer tokens in {path} (printed when it was created; delete it for new ones)\n"
    lines = [f"  development bearer tokens, shown only now (hashes in {path}):\n"]
    for name, scopes, token in create_dev_tokens(path):
        lines.append(f"    {name:<12} {','.join(sorted_scopes(scopes)):<20} {token}\n")
    lines.append('    e.g. curl -H "Authorization: Bearer <token>" ...\n')
    return "".join(lines)


def main() -> int:
    try:
        ports = Ports(
            sim=_port("EXCHANGE_SIM_ADDR", "127.0.0.1:8900"),
            provider=_port("PROVIDER_GRPC_ADDR", "127.0.0.1:50051"),
            http=_port("GATEWAY_HTTP_ADDR", "127.0.0.1:8080"),
            mcp=_port("GATEWAY_MCP_ADDR", "127.0.0.1:8765"),
            metrics=_port("PROVIDER_METRICS_ADDR", "127.0.0.1:9464"),
        )
    except ConfigError as exc:
        print(f"configuration: {exc}", file=sys.stderr)
        return 2
    data_dir = Path(os.environ.get("PROVIDER_DATA_DIR", "./data"))
    data_dir.mkdir(parents=True, exist_ok=True)
    tokens_file = os.environ.get("GATEWAY_TOKENS_FILE") or None
    tokens_note = f"  bearer tokens from {tokens_file}\n"
    if tokens_file is None:
        tokens_file = str(data_dir / DEV_TOKENS_FILE)
        tokens_note = _dev_tokens_note(data_dir / DEV_TOKENS_FILE)
    system = build_system(ports, data_dir, extra_env={"GATEWAY_TOKENS_FILE": tokens_file})
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        system.start()
    except (ProcessFailed, TimeoutError) as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 1
    print(
        "\nAll four processes are up (venue: the local simulator):\n"
        f"  exchange_sim   http://127.0.0.1:{ports.sim}   (REST /api/v3, streams /ws and /stream, WS API /ws-api/v3)\n"
        f"  provider       127.0.0.1:{ports.provider}      (gRPC: grpcurl -plaintext 127.0.0.1:{ports.provider} list)\n"
        f"  gateway_http   http://127.0.0.1:{ports.http}   (curl 127.0.0.1:{ports.http}/health)\n"
        f"  gateway_mcp    http://127.0.0.1:{ports.mcp}/mcp\n" + tokens_note + "Press Ctrl-C to stop.\n",
        flush=True,
    )
    while not stop.wait(0.5):
        for process in system.processes:
            if not process.running:
                print(f"{process.name} exited with {process.returncode}; stopping the rest", file=sys.stderr)
                stop.set()
                break
    codes = system.stop()
    print("stopped: " + ", ".join(f"{name} exit {code}" for name, code in codes.items()), flush=True)
    return 0 if all(code == 0 for code in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
