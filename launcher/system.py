"""The whole system: simulator, provider and both gateways, wired to each other."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from launcher.processes import ManagedProcess


@dataclass(frozen=True)
class Ports:
    sim: int
    provider: int
    http: int
    mcp: int
    metrics: int = 0  # the provider's Prometheus port; 0: any free one


@dataclass
class System:
    ports: Ports
    processes: list[ManagedProcess] = field(default_factory=list)

    def start(self, timeout: float = 30.0) -> None:
        """Start in dependency order, each ready before the next; stop everything on failure."""
        try:
            for process in self.processes:
                process.start()
                process.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> dict[str, int | None]:
        """Stop in reverse order (gateways first, simulator last); returns each exit code."""
        return {p.name: p.stop() for p in reversed(self.processes)}

    def process(self, name: str) -> ManagedProcess:
        return next(p for p in self.processes if p.name == name)


def build_system(
    ports: Ports,
    data_dir: Path,
    log_dir: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> System:
    """The four processes on loopback, the provider using the simulator as its venue."""
    provider_addr = f"127.0.0.1:{ports.provider}"
    sim_http = f"http://127.0.0.1:{ports.sim}"
    sim_ws = f"ws://127.0.0.1:{ports.sim}"
    env = {
        "VENUE": "sim",
        "BINANCE_REST_URL": sim_http,
        "BINANCE_WS_URL": sim_ws,
        "BINANCE_WS_API_URL": f"{sim_ws}/ws-api/v3",
        "EXCHANGE_SIM_ADDR": f"127.0.0.1:{ports.sim}",
        "PROVIDER_GRPC_ADDR": provider_addr,
        "PROVIDER_DATA_DIR": str(data_dir),
        "PROVIDER_METRICS_ADDR": f"127.0.0.1:{ports.metrics}",
        "GATEWAY_HTTP_ADDR": f"127.0.0.1:{ports.http}",
        "GATEWAY_MCP_ADDR": f"127.0.0.1:{ports.mcp}",
        **(extra_env or {}),
    }

    def log(name: str) -> Path | None:
        return None if log_dir is None else log_dir / f"{name}.log"

    return System(
        ports,
        [
            ManagedProcess(name, name, env=env, ready_port=port, log_path=log(name))
            for name, port in (
                ("exchange_sim", ports.sim),
                ("provider", ports.provider),
                ("gateway_http", ports.http),
                ("gateway_mcp", ports.mcp),
            )
        ],
    )
