"""Debian's Prometheus scrapes the five services and sees the venue move when orders trade.

The services run as processes against the session's Kafka and Redis. Prometheus runs on
a free loopback port with the compose scrape config (deploy/prometheus/prometheus.yml:
one job per service) pointed at their metrics ports, a 1 s scrape and evaluation
interval, and the venue's alert rules loaded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from libs.common import metrics as catalog
from libs.common import topics
from libs.common.admin import ensure_topics
from libs.common.settings import Settings
from libs.localstack import ROOT, LocalStack, free_ports
from libs.localstack.procs import ServiceProcess, wait_http
from sim.client import VenueClient, wallet
from tests.conftest import make_settings
from tests.unit.deploy.promql import RULES_DIR, panel_queries, plain

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

PROMETHEUS = shutil.which("prometheus")
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
SERVICES = ("risk", "matcher", "liquidator", "oracle", "gateway")
PROCESSOR_INPUT = {
    "risk": topics.RISK_IN,
    "matcher": topics.MATCHER_IN,
    "liquidator": topics.LIQUIDATIONS,
}
ALICE, BOB = wallet(0xA11CE), wallet(0xB0B)
WAIT_S = 30.0

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a private loop in a thread, away from pytest-asyncio's loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=120)


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single sample ``expr`` returns now, or None when it returns nothing."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} returned {len(result)} series"
        return float(result[0]["value"][1]) if result else None

    def wait_until(self, expr: str, holds: Callable[[float | None], bool]) -> float | None:
        """Poll ``expr`` until ``holds(value)``; the last value either way."""
        deadline = time.monotonic() + WAIT_S
        value = self.value(expr)
        while not holds(value) and time.monotonic() < deadline:
            time.sleep(0.25)
            value = self.value(expr)
        return value

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text().splitlines()[-lines:])


@dataclass
class Venue:
    settings: Settings
    gateway_url: str
    metrics_ports: dict[str, int]
    prometheus: Prometheus
    before: dict[str, float]


def scrape_config(metrics_ports: dict[str, int]) -> dict[str, Any]:
    """The compose scrape config with each job's targets replaced by its service on
    loopback, and 1 s scrapes and evaluations."""
    config: dict[str, Any] = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["global"].pop("external_labels", None)
    config["rule_files"] = [str(path) for path in sorted(RULES_DIR.glob("*.yml"))]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(SERVICES) <= set(jobs), sorted(jobs)
    config["scrape_configs"] = [
        {
            **{k: v for k, v in jobs[name].items() if not k.endswith("_sd_configs")},
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
        }
        for name, port in metrics_ports.items()
    ]
    return config


def start_prometheus(work: Path, metrics_ports: dict[str, int]) -> Prometheus:
    assert PROMETHEUS is not None
    (port,) = free_ports(1)
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(metrics_ports)))
    log = work / "prometheus.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        wait_http(f"{prometheus.url}/-/ready", timeout_s=30)
    except OSError:
        stop_process(proc)
        raise AssertionError(f"prometheus did not become ready:\n{prometheus.tail()}") from None
    return prometheus


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def pipeline_series(settings: Settings) -> dict[str, tuple[str, int]]:
    """Runtime series the trade moves, with the least it moves them. Risk routes to the
    matcher on orders alone; what risk and the matcher apply also grows with index ticks
    and marks, so those are lower bounds: 2 deposits, 2 orders and 2 fill legs for risk,
    the 2 orders for the matcher."""
    matcher_in = settings.topics.name(topics.MATCHER_IN)
    return {
        "risk routed to matcher": (
            f'sum(exchange_messages_out_total{{job="risk", topic="{matcher_in}"}})',
            2,
        ),
        "risk applied": ('sum(exchange_messages_in_total{job="risk", service="risk"})', 6),
        "matcher applied": ('sum(exchange_messages_in_total{job="matcher", service="matcher"})', 2),
    }


async def trade(gateway_url: str, operator_url: str) -> None:
    """Two deposits, a resting bid and an IOC sell that fills it: 0.1 BTC at 100000."""
    async with VenueClient(gateway_url, operator_url) as client:
        for trader in (ALICE, BOB):
            deposited = await client.deposit(trader.address, "10000")
            assert deposited["response"]["collateral"] == "10000", deposited
        now = int(time.time() * 1000)
        resting = await client.limit_order(ALICE, 0, True, "100000", "0.1", now)
        assert "resting" in resting, resting
        filled = await client.limit_order(BOB, 0, False, "99000", "0.1", now, tif="Ioc")
        assert filled["filled"]["totalSz"] == "0.1", filled


@pytest.fixture(scope="module")
def venue(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    if PROMETHEUS is None:
        pytest.skip("Debian's prometheus is not installed (deploy/local/prometheus.sh install)")
    work = tmp_path_factory.mktemp("prometheus")
    settings = make_settings(stack)
    run_async(ensure_topics(settings))
    gateway_port, operator_port, *ports = free_ports(2 + len(SERVICES))
    metrics_ports = dict(zip(SERVICES, ports, strict=True))
    procs = [
        ServiceProcess(
            name,
            settings,
            work / "logs",
            gateway_port=gateway_port,
            operator_port=operator_port,
            metrics_port=metrics_ports[name],
            oracle_volatility_bps=0,
            oracle_interval_ms=500,
        ).start()
        for name in SERVICES
    ]
    prometheus: Prometheus | None = None
    try:
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        try:
            wait_http(f"{gateway_url}/health", timeout_s=60)
            prometheus = start_prometheus(work, metrics_ports)
            wait_for_targets(prometheus)
            # Every processor owns all its partitions before the trade: nothing is replay.
            for name, topic in PROCESSOR_INPUT.items():
                count = topics.spec(topic).partitions
                expr = f'sum(exchange_partitions_owned{{job="{name}"}})'
                owned = prometheus.wait_until(expr, lambda v, c=count: v == c)
                assert owned == count, f"{name} owns {owned} of {count} partitions"
        except (AssertionError, OSError) as exc:
            dead = "\n".join(f"{p.name} exited:\n{p.tail()}" for p in procs if not p.alive())
            raise AssertionError(f"{exc}\n{dead}") from exc
        expressions = [expr for expr, _ in pipeline_series(settings).values()]
        before = {
            expr: prometheus.value(expr) or 0.0
            for expr in [*expressions, *(c.expr for c in BUSINESS)]
        }
        run_async(trade(gateway_url, f"http://127.0.0.1:{operator_port}"))
        yield Venue(settings, gateway_url, metrics_ports, prometheus, before)
        for p in procs:
            assert p.alive(), f"{p.name} died:\n{p.tail()}"
    finally:
        if prometheus is not None:
            stop_process(prometheus.proc)
        codes = {p.name: p.stop() for p in procs}
    assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"


def wait_for_targets(prometheus: Prometheus) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_S
    while True:
        targets: list[dict[str, Any]] = prometheus.api("targets", state="active")["activeTargets"]
        if len(targets) == len(SERVICES) and all(t["health"] == "up" for t in targets):
            return targets
        if time.monotonic() > deadline:
            raise AssertionError(f"targets not all up: {targets}")
        time.sleep(0.25)


def test_prometheus_scrapes_every_service(venue: Venue) -> None:
    targets = wait_for_targets(venue.prometheus)
    by_job = {t["labels"]["job"]: t for t in targets}
    assert set(by_job) == set(SERVICES)
    for name, port in venue.metrics_ports.items():
        assert by_job[name]["scrapeUrl"] == f"http://127.0.0.1:{port}/metrics"
        assert by_job[name]["lastError"] == ""
    up = {s["metric"]["job"]: float(s["value"][1]) for s in venue.prometheus.query("up")}
    assert up == dict.fromkeys(SERVICES, 1.0)


def test_pipeline_series_rise_when_orders_trade(venue: Venue) -> None:
    prometheus = venue.prometheus
    for what, (expr, least) in pipeline_series(venue.settings).items():
        wanted = venue.before[expr] + least
        now = prometheus.wait_until(expr, lambda v, w=wanted: v is not None and v >= w)
        assert now is not None and now >= wanted, f"{what}: {venue.before[expr]} -> {now}"
    assert prometheus.value('sum(exchange_batch_seconds_count{job="risk"})')
    assert prometheus.value('sum(exchange_messages_out_total{job="oracle"})')
    assert not prometheus.value("sum(exchange_transaction_aborts_total)")
    assert not prometheus.value("sum(exchange_dead_letters_total)")


# ------------------------------------------------------------------ business series


@dataclass(frozen=True)
class Expectation:
    """A business series and what one 0.1 BTC trade at 100000 does to it."""

    series: str
    expr: str
    rises_by: float | None = None
    equals: float | None = None

    def met(self, before: float, value: float | None) -> bool:
        if value is None:
            return False
        if self.rises_by is not None:
            return value - before >= self.rises_by
        return value == pytest.approx(self.equals)


BUSINESS = (
    Expectation("exchange_trades_total", 'sum(exchange_trades_total{market="BTC"})', rises_by=1),
    Expectation(
        "exchange_traded_notional_usd_total",
        'sum(exchange_traded_notional_usd_total{market="BTC"})',
        rises_by=10000,
    ),
    Expectation(
        "exchange_order_outcomes_total",
        'sum(exchange_order_outcomes_total{market="BTC"})',
        rises_by=2,
    ),
    # The two orders; deposits go to the operator API, which is not counted.
    Expectation(
        "exchange_http_requests_total",
        'sum(exchange_http_requests_total{job="gateway"})',
        rises_by=2,
    ),
    Expectation(
        "exchange_http_request_seconds_count",
        'sum(exchange_http_request_seconds_count{job="gateway"})',
        rises_by=2,
    ),
    Expectation(
        "exchange_open_interest_coins",
        'max(exchange_open_interest_coins{market="BTC"})',
        equals=0.1,
    ),
    Expectation(
        "exchange_index_price_usd", 'max(exchange_index_price_usd{market="BTC"})', equals=100000
    ),
    Expectation(
        "exchange_oracle_status",
        'max(exchange_oracle_status{market="BTC", status="valid"})',
        equals=1,
    ),
)


def wired(series: str) -> bool:
    """True when service code sets the catalog metric behind ``series``."""
    family = re.sub(r"_(total|count|sum|bucket)$", "", series)
    constants = [
        name
        for name, value in vars(catalog).items()
        if getattr(value, "_name", None) == family and name.isupper()
    ]
    assert constants, f"{series} is not in libs/common/metrics.py"
    sources = [*(ROOT / "services").rglob("*.py"), *(ROOT / "libs").rglob("*.py")]
    pattern = re.compile(rf"\b({'|'.join(constants)})\b")
    return any(
        pattern.search(path.read_text())
        for path in sources
        if path != ROOT / "libs" / "common" / "metrics.py"
    )


@pytest.mark.parametrize("expectation", BUSINESS, ids=lambda e: e.series)
def test_business_series_follow_the_trade(venue: Venue, expectation: Expectation) -> None:
    if not wired(expectation.series):
        pytest.skip(f"{expectation.series} is in the catalog but no service sets it yet")
    before = venue.before[expectation.expr]
    value = venue.prometheus.wait_until(expectation.expr, lambda v: expectation.met(before, v))
    assert expectation.met(before, value), f"{expectation.expr}: {before} -> {value}"


# ------------------------------------------------------------------ rules and panels


def test_alert_rules_evaluate_against_the_live_series(venue: Venue) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        rules = [
            rule for group in venue.prometheus.api("rules")["groups"] for rule in group["rules"]
        ]
        if rules and all(rule["health"] == "ok" for rule in rules):
            break
        bad = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert time.monotonic() < deadline, f"rules not evaluating cleanly: {bad}"
        time.sleep(0.25)
    files = {Path(group["file"]).name for group in venue.prometheus.api("rules")["groups"]}
    assert files == {path.name for path in RULES_DIR.glob("*.yml")}
    firing = [
        alert["labels"]
        for alert in venue.prometheus.api("alerts")["alerts"]
        if alert["state"] == "firing"
    ]
    assert firing == [], f"alerts firing on a healthy venue: {firing}"


def test_every_dashboard_query_runs_on_prometheus(venue: Venue) -> None:
    failures = []
    for query in panel_queries():
        expr = re.sub(r"\$\w+", ".+", plain(query.expr, "1m"))
        try:
            venue.prometheus.api("query", query=expr)
        except (AssertionError, OSError) as exc:
            failures.append(f"{query.dashboard} / {query.panel}: {expr}: {exc}")
    assert not failures, "\n".join(failures)
