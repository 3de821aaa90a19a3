"""The venue a simulation runs against: its own risk, matcher, liquidator, oracle and
gateway processes over a given Kafka and Redis, in a namespace of its own (topic
prefix, consumer groups, Redis hash tags), so a run starts from empty books and
accounts and never touches the local stack's data or another run's.

The oracle runs the scenario's price path: its configuration file is written from the
scenario (``sim.scenario.oracle_doc``), and the ``EXCHANGE_ORACLE_*`` variables that
would override the file are left out of its environment.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from libs.common.admin import ensure_topics
from libs.common.markets import load_markets
from libs.common.settings import Settings
from libs.localstack import ROOT, free_ports
from libs.localstack.procs import settings_env
from services.oracle.config import load_oracle_config
from sim.scenario import Scenario, markets_doc, oracle_doc, to_toml

SERVICES = ("risk", "matcher", "liquidator", "oracle", "gateway")
# Variables that win over the oracle file (services/oracle/config.py): not for a sim.
_ORACLE_OVERRIDES = (
    "EXCHANGE_ORACLE_SEED",
    "EXCHANGE_ORACLE_VOLATILITY_BPS",
    "EXCHANGE_ORACLE_START_PRICES",
    "EXCHANGE_ORACLE_INTERVAL_MS",
)


@dataclass
class SimVenue:
    """The processes of one run; ``start`` and ``stop`` are idempotent."""

    settings: Settings
    run_dir: Path
    gateway_port: int = 0
    operator_port: int = 0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def operator_url(self) -> str:
        return f"http://127.0.0.1:{self.operator_port}"

    @classmethod
    def create(
        cls, scenario: Scenario, run_dir: Path, kafka: str, redis_url: str, namespace: str
    ) -> SimVenue:
        """Writes the run's oracle and market files into ``run_dir``; raises
        ``services.oracle.config.ConfigError`` naming the entry the oracle would refuse."""
        run_dir.mkdir(parents=True, exist_ok=True)
        oracle_file = run_dir / "oracle.toml"
        oracle_file.write_text(to_toml(oracle_doc(scenario)))
        markets_file = run_dir / "markets.toml"
        markets_file.write_text(to_toml(markets_doc(scenario)))
        # checked here as the oracle will check them, for an error before any process
        load_oracle_config(Settings(), oracle_file, markets=load_markets(markets_file))
        gateway_port, operator_port = free_ports(2)
        settings = Settings(
            kafka_bootstrap=kafka,
            redis_url=redis_url,
            namespace=namespace,
            markets_file=markets_file,
            oracle_config_file=oracle_file,
            gateway_port=gateway_port,
            operator_port=operator_port,
            metrics_port=0,
            ip_weight_per_minute=1_000_000_000,  # every agent trades from 127.0.0.1
            session_timeout_ms=3000,
            heartbeat_interval_ms=500,
            poll_timeout_ms=20,
        )
        return cls(settings, run_dir, gateway_port, operator_port)

    def _env(self, name: str) -> dict[str, str]:
        env = settings_env(self.settings, instance_id=f"sim-{name}")
        if name == "oracle":
            for var in _ORACLE_OVERRIDES:
                env.pop(var, None)
        return env

    async def start(self, timeout_s: float = 60.0) -> None:
        """Create the namespace's topics, start the services, wait for the gateway."""
        await ensure_topics(self.settings)
        await asyncio.to_thread(self.launch)
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(self._healthy):
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not answer within {timeout_s:.0f} s")
            await asyncio.sleep(0.2)

    def launch(self) -> None:
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            if name in self.procs:
                continue
            with (logs / f"{name}.log").open("ab") as log:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"],
                    cwd=ROOT,
                    env=self._env(name),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )

    def _healthy(self) -> bool:
        try:
            urllib.request.urlopen(self.url + "/health", timeout=1).read()
            return True
        except OSError:
            return False

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.run_dir / "logs" / f"{name}.log"
        try:
            return "\n".join(path.read_text().splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, name: str, timeout_s: float = 20.0) -> int | None:
        """SIGTERM one service and wait (SIGKILL if it does not stop in time)."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def stop_all(self) -> dict[str, int | None]:
        return {name: self.stop(name) for name in reversed(list(self.procs))}
