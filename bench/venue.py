"""A private trading venue for the HTTP benchmarks: its own Kafka and Redis, risk,
matcher and gateway as processes, and accounts funded through the operator API."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from libs.common.admin import ensure_topics
from libs.common.settings import Settings
from libs.localstack import LocalStack, free_ports
from libs.localstack.procs import ServiceProcess, wait_http
from sim.client import VenueClient


@dataclass(frozen=True)
class BenchVenue:
    settings: Settings
    url: str
    gateway_port: int


@asynccontextmanager
async def bench_venue(
    name: str,
    accounts: Sequence[LocalAccount],
    usd: str,
    gateways: int = 1,
    **settings: Any,
) -> AsyncIterator[BenchVenue]:
    """Start everything, fund ``accounts`` with ``usd`` each, and stop it all on exit.
    ``gateways`` processes share the gateway's ports (the kernel spreads connections
    over them). ``settings`` override the services' settings (one benchmark host sends
    everything, so the IP weight budget is lifted by default)."""
    stack = LocalStack.private(Path(tempfile.mkdtemp(prefix=f"bench-{name}-")))
    stack.start()
    procs: list[ServiceProcess] = []
    try:
        gateway_port, operator_port = free_ports(2)
        config = Settings(
            kafka_bootstrap=stack.bootstrap,
            redis_url=stack.redis_url,
            namespace=f"bench{name[:1]}{uuid.uuid4().hex[:8]}.",
            gateway_port=gateway_port,
            operator_port=operator_port,
            oracle_volatility_bps=0,
            **{"ip_weight_per_minute": 1_000_000_000, **settings},
        )
        await ensure_topics(config)
        logs = Path(tempfile.mkdtemp(prefix=f"bench-{name}-logs-"))
        procs = [ServiceProcess(n, config, logs).start() for n in ("risk", "matcher", "gateway")]
        # more gateways on the same public port, each with an operator port of its own
        # so that each one's readiness can be seen
        extra = free_ports(gateways - 1) if gateways > 1 else []
        for n, port in enumerate(extra, start=2):
            own = config.model_copy(update={"operator_port": port})
            procs.append(ServiceProcess("gateway", own, logs / f"gateway-{n}").start())
        url = f"http://127.0.0.1:{gateway_port}"
        wait_http(url + "/health")
        for port in extra:
            wait_http(f"http://127.0.0.1:{port}/health")
        async with VenueClient(url, f"http://127.0.0.1:{operator_port}") as client:
            await asyncio.gather(*(client.deposit(k.address, usd) for k in accounts))
        yield BenchVenue(config, url, gateway_port)
    finally:
        for proc in procs:
            proc.stop()
        stack.stop()
