"""Five services as processes against the session's Kafka and Redis, per test."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from libs.common.settings import Settings
from libs.localstack import free_ports
from libs.localstack.procs import ServiceProcess, wait_http

SERVICES = ("risk", "matcher", "liquidator", "oracle", "gateway")


@dataclass
class Venue:
    url: str
    operator_url: str
    metrics: dict[str, int]

    def scrape(self, service: str) -> dict[str, float]:
        """The service's Prometheus samples, by series name with labels."""
        url = f"http://127.0.0.1:{self.metrics[service]}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
        return samples


@pytest.fixture
def venue(settings: Settings, tmp_path: Path) -> Iterator[Venue]:
    gateway_port, operator_port, *metric_ports = free_ports(2 + len(SERVICES))
    metrics = dict(zip(SERVICES, metric_ports, strict=True))
    procs = [
        ServiceProcess(
            name,
            settings,
            tmp_path / "logs",
            gateway_port=gateway_port,
            operator_port=operator_port,
            metrics_port=metrics[name],
            oracle_volatility_bps=0,
            oracle_interval_ms=200,
        ).start()
        for name in SERVICES
    ]
    try:
        wait_http(f"http://127.0.0.1:{gateway_port}/health")
        yield Venue(
            f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{operator_port}", metrics
        )
        for p in procs:
            assert p.alive(), f"{p.name} died:\n{p.tail()}"
    finally:
        codes = {p.name: p.stop() for p in procs}
    assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"
