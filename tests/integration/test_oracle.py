"""The oracle against the session's real Kafka: index ticks land in each market's
matcher.in partition and on oracle.prices, a replayed file gives the same records byte
for byte, and an operator override over HTTP is audited on the bus."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer, TopicPartition

from libs.common import topics
from libs.common.admin import ensure_topics
from libs.common.markets import load_markets
from libs.common.metrics import REGISTRY
from libs.common.schemas import IndexTick, OracleOverride, OraclePrice
from libs.common.settings import Settings
from libs.common.topics import partition_for
from libs.localstack import free_ports
from libs.localstack.procs import ServiceProcess
from services.oracle.aggregator import Override
from services.oracle.config import DEFAULT_ORACLE_FILE, OracleConfig, load_oracle_config
from services.oracle.publisher import Publisher, new_producer
from services.oracle.service import OracleService
from services.oracle.sources.replay import ReplayFeed
from tests.support.bus import Record, read_topic, wait_for
from tests.unit.oracle.reference import T0, aggregator, everyone, feed

pytestmark = pytest.mark.kafka

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "oracle"
MARKETS = load_markets()
START_TICKS = {"BTC": 1_000_000, "ETH": 350_000, "SOL": 1_500_000}  # 100000, 3500, 150


def config_file(tmp_path: Path, *edits: tuple[str, str], extra: str = "") -> Path:
    text = DEFAULT_ORACLE_FILE.read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new, 1)
    text = text.replace('file = "../tests/fixtures', f'file = "{FIXTURES.parent}', 1)
    path = tmp_path / "oracle.toml"
    path.write_text(text + "\n" + extra)
    return path


NO_CONTROL = ("port = 19110", "port = 0")


def rejections(market: str, source: str, reason: str) -> float:
    labels = {"market": market, "source": source, "reason": reason}
    return REGISTRY.get_sample_value("exchange_oracle_rejections_total", labels) or 0.0


async def test_a_still_simulated_market_publishes_its_exact_start_price_to_its_partition(
    settings: Settings, tmp_path: Path
) -> None:
    # Kraken reports BTC 50% high all along; the other markets are untouched.
    spike = (
        '[[simulator.fault]]\nkind = "spike"\nsource = "kraken"\nmarket = "BTC"\n'
        "start_ms = 0\nbps = 5000\n"
    )
    path = config_file(tmp_path, NO_CONTROL, extra=spike)
    s = settings.model_copy(update={"oracle_volatility_bps": 0, "oracle_interval_ms": 200})
    config = load_oracle_config(s, path)
    before = rejections("BTC", "kraken", "outlier")
    service = OracleService(s, config)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))

    async def eight_steps() -> bool:
        return service.published >= 3 * 8

    assert await wait_for(eight_steps, timeout_s=30)
    stop.set()
    await asyncio.wait_for(task, 30)

    ticks = await read_topic(s, topics.MATCHER_IN, expect=24)
    prices = await read_topic(s, topics.ORACLE_PRICES, expect=24)
    assert len(ticks) == len(prices) == service.published
    for name in ("BTC", "ETH", "SOL"):
        mine = [r for r in ticks if r.value.market == name]
        assert len(mine) >= 8
        assert {r.partition for r in mine} == {partition_for(name, 4)}
        assert {(r.value.px, r.value.status) for r in mine} == {(START_TICKS[name], "valid")}
        # one index per simulator step, on an exact 200 ms grid (a stalled process would
        # skip steps, never stamp them off the grid)
        gaps = [b.value.ts - a.value.ts for a, b in itertools.pairwise(mine)]
        assert all(g > 0 and g % 200 == 0 for g in gaps), gaps
        assert gaps.count(200) >= len(gaps) - 1, gaps
        contributors = [(q.source, q.weight) for q in mine[-1].value.sources]
        expected = [("binance", 3), ("okx", 2), ("bybit", 2), ("coinbase", 1), ("kraken", 1)]
        if name == "BTC":
            expected.remove(("kraken", 1))
        assert contributors == expected
        public = [r.value for r in prices if r.value.market == name]
        assert {r.partition for r in prices if r.value.market == name} == {partition_for(name, 4)}
        assert [p.ts for p in public] == [r.value.ts for r in mine]
        assert all(isinstance(p, OraclePrice) and p.px == START_TICKS[name] for p in public)
    assert all(isinstance(r.value, IndexTick) for r in ticks)
    assert rejections("BTC", "kraken", "outlier") - before == len(
        [r for r in prices if r.value.market == "BTC"]
    )


async def replay_once(settings: Settings, config: OracleConfig) -> tuple[list[Record], ...]:
    service = OracleService(settings, config)
    (feed,) = service.sources
    assert isinstance(feed, ReplayFeed)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(feed.done.wait(), 30)

    async def all_published() -> bool:
        return service.published >= 180  # 3 markets x 60 s

    assert await wait_for(all_published, timeout_s=30)
    stop.set()
    await asyncio.wait_for(task, 30)
    ticks = await read_topic(settings, topics.MATCHER_IN, expect=180, quiet_s=0.5)
    prices = await read_topic(settings, topics.ORACLE_PRICES, expect=180, quiet_s=0.5)
    return ticks, prices


def renamed(settings: Settings, namespace: str) -> Settings:
    """The same settings in another namespace (a fresh object: topic names are cached)."""
    return Settings(**{**settings.model_dump(), "namespace": namespace})


def by_partition(records: list[Record]) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        out.setdefault(r.partition, []).append(r.raw)
    return out


async def test_a_replayed_tick_file_gives_the_same_index_ticks_byte_for_byte(
    settings: Settings, tmp_path: Path
) -> None:
    path = config_file(
        tmp_path,
        NO_CONTROL,
        ('feed = "simulated"', 'feed = "replay"'),
        ("speed = 1.0", "speed = 0"),
    )
    config = load_oracle_config(settings, path)
    first = await replay_once(settings, config)
    other = renamed(settings, settings.namespace + "again.")
    await ensure_topics(other)
    second = await replay_once(other, config)
    for one, two in zip(first, second, strict=True):
        assert len(one) == len(two) == 180  # 3 markets x 60 s of recorded ticks
        assert by_partition(one) == by_partition(two)
    _, prices = first
    sol = [r.value for r in prices if r.value.market == "SOL"]
    assert [p.status for p in sol].count("too_volatile") == 5  # the recorded +20% jump
    assert sol[0].ts == 1_767_225_600_000  # the file's time, not the wall clock


async def test_live_adapters_feed_the_index_through_kafka(
    settings: Settings, tmp_path: Path
) -> None:
    """Five loopback 'exchanges' stream their sample tickers; the oracle in live mode
    (wall clock, cadence timer) turns them into a BTC index on the bus."""
    weights = {"binance": 3, "okx": 2, "bybit": 2, "coinbase": 1, "kraken": 1}
    ack = {"coinbase": "subscriptions.json"}

    async def exchange(request: web.Request) -> web.WebSocketResponse:
        name = request.match_info["name"]
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()  # the subscription
        await ws.send_str((FIXTURES / name / ack.get(name, "subscribe_ack.json")).read_text())
        ticker = (FIXTURES / name / "ticker.json").read_text()
        while not ws.closed:
            await ws.send_str(ticker)
            await asyncio.sleep(0.1)
        return ws

    app = web.Application()
    app.router.add_get("/{name}", exchange)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    (port,) = free_ports(1)
    await web.TCPSite(runner, "127.0.0.1", port).start()
    lines = ['feed = "exchanges"', "[control]", "port = 0"]
    for name, weight in weights.items():
        url = f"ws://127.0.0.1:{port}/{name}"
        lines += ["[[source]]", f'name = "{name}"', f"weight = {weight}", f'url = "{url}"']
    path = tmp_path / "oracle.toml"
    path.write_text("\n".join(lines) + "\n")
    service = OracleService(settings, load_oracle_config(settings, path))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))

    async def btc_valid() -> bool:
        update = service.core.last_update("BTC")
        return update is not None and update.status == "valid"

    try:
        assert await wait_for(btc_valid, timeout_s=30)
        await asyncio.sleep(1.2)  # and at least one cadence tick after
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await runner.cleanup()

    ticks = [r.value for r in await read_topic(settings, topics.MATCHER_IN, expect=2)]
    assert ticks and {t.market for t in ticks} == {"BTC"}  # the only market in the samples
    # 67431.9 (2), 67432.15 (3), 67433.5 (2), 67435.2 (1), 67440.01 (1): the weighted
    # median is Binance's 67432.15, published with five significant figures. (Before
    # every adapter is connected, a quorum of the others may give a price among theirs.)
    assert (ticks[-1].px, ticks[-1].status) == (674_320, "valid")
    assert [(q.source, q.weight) for q in ticks[-1].sources] == list(weights.items())
    assert all(t.status == "valid" and 674_319 <= t.px <= 674_400 for t in ticks)
    prices = [r.value for r in await read_topic(settings, topics.ORACLE_PRICES, expect=6)]
    eth = [p for p in prices if p.market == "ETH"]
    assert eth and {(p.status, p.px) for p in eth} == {("stale", 0)}  # no source has ETH


def start_oracle(settings: Settings, tmp_path: Path) -> tuple[ServiceProcess, str]:
    """The oracle as a process on free ports, its simulated source steady (no
    volatility), an index every 200 ms; with the URL of its control API."""
    control, metrics_port = free_ports(2)
    path = config_file(tmp_path, ("port = 19110", f"port = {control}"))
    proc = ServiceProcess(
        "oracle",
        settings,
        tmp_path / "logs",
        oracle_config_file=path,
        oracle_volatility_bps=0,
        oracle_interval_ms=200,
        metrics_port=metrics_port,
        operator_token="ops-token",
    ).start()
    return proc, f"http://127.0.0.1:{control}"


@pytest.fixture
def oracle_process(settings: Settings, tmp_path: Path) -> Iterator[tuple[ServiceProcess, str]]:
    proc, url = start_oracle(settings, tmp_path)
    try:
        yield proc, url
    finally:
        proc.stop()


def call(url: str, body: Any = None, token: str = "ops-token") -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_an_operator_freeze_is_audited_and_halts_the_index_until_released(
    settings: Settings, oracle_process: tuple[ServiceProcess, str]
) -> None:
    proc, url = oracle_process

    async def ready() -> bool:
        try:
            status, body = await asyncio.to_thread(call, f"{url}/oracle/status")
        except OSError:
            return False
        return status == 200 and body["response"][0].get("status") == "valid"

    assert await wait_for(ready, timeout_s=30), proc.tail()
    override = {"market": "BTC", "action": "freeze", "operator": "alice", "reason": "drill"}
    assert (await asyncio.to_thread(call, f"{url}/operator/override", override, "wrong"))[0] == 401
    status, body = await asyncio.to_thread(call, f"{url}/operator/override", override)
    assert status == 200 and body["response"]["status"] == "halted", body
    await asyncio.sleep(1.0)  # a few halted cadence ticks
    release = {"market": "BTC", "action": "release", "operator": "alice"}
    status, body = await asyncio.to_thread(call, f"{url}/operator/override", release)
    assert (status, body["response"]["status"]) == (200, "valid"), body
    await asyncio.sleep(0.3)
    assert proc.stop() == 0, proc.tail()  # SIGTERM: a clean exit

    prices = [r.value for r in await read_topic(settings, topics.ORACLE_PRICES, expect=10)]
    btc = [p for p in prices if p.market == "BTC"]
    audits = [p for p in btc if isinstance(p, OracleOverride)]
    assert [(a.action, a.px, a.operator, a.reason) for a in audits] == [
        ("freeze", 1_000_000, "alice", "drill"),
        ("release", 1_000_000, "alice", ""),
    ]
    freeze_at, release_at = btc.index(audits[0]), btc.index(audits[1])
    # right after each audit event comes the index it caused
    assert btc[freeze_at + 1].status == "halted" and btc[release_at + 1].status == "valid"
    halted = [p for p in btc[freeze_at + 1 : release_at] if isinstance(p, OraclePrice)]
    assert len(halted) >= 2 and {(p.status, p.px) for p in halted} == {("halted", 1_000_000)}
    assert halted[0].reason == "frozen at 100000 by alice: drill"
    assert {p.status for p in btc[:freeze_at]} == {"valid"}
    ticks = [r.value for r in await read_topic(settings, topics.MATCHER_IN, expect=10)]
    statuses = [t.status for t in ticks if t.market == "BTC"]
    assert statuses.count("halted") == len(halted)  # the matcher sees every halted index


async def test_a_freeze_survives_a_crash_of_the_oracle(
    settings: Settings, oracle_process: tuple[ServiceProcess, str]
) -> None:
    """An operator's freeze is not lifted by a SIGKILL and restart: the index stays
    halted at the frozen price until someone releases it."""
    proc, url = oracle_process

    async def status_of_btc() -> str | None:
        try:
            code, body = await asyncio.to_thread(call, f"{url}/oracle/status")
        except OSError:
            return None
        rows = body["response"] if code == 200 else []
        return next((r.get("status") for r in rows if r.get("market") == "BTC"), None)

    async def is_(wanted: str) -> bool:
        return await status_of_btc() == wanted

    assert await wait_for(lambda: is_("valid"), timeout_s=30), proc.tail()
    freeze = {"market": "BTC", "action": "freeze", "operator": "alice", "reason": "drill"}
    status, body = await asyncio.to_thread(call, f"{url}/operator/override", freeze)
    assert status == 200 and body["response"]["status"] == "halted", body
    proc.kill()
    proc.start()
    assert await wait_for(lambda: is_("halted"), timeout_s=30), proc.tail()
    await asyncio.sleep(1.0)
    release = {"market": "BTC", "action": "release", "operator": "alice"}
    status, body = await asyncio.to_thread(call, f"{url}/operator/override", release)
    assert (status, body["response"]["status"]) == (200, "valid"), body
    assert proc.stop() == 0, proc.tail()
    prices = [r.value for r in await read_topic(settings, topics.ORACLE_PRICES, expect=10)]
    after_restart = [
        p
        for p in prices
        if isinstance(p, OraclePrice) and p.market == "BTC" and p.status == "halted"
    ]
    assert after_restart and {p.px for p in after_restart} == {1_000_000}


class PrivateRedis:
    """A Redis server of this test's own (the session's is shared), to stop and restart."""

    def __init__(self, port: int, run_dir: Path) -> None:
        self.port = port
        self.run_dir = run_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.run_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise RuntimeError(f"private redis on {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


async def test_the_oracle_rides_out_a_redis_restart(settings: Settings, tmp_path: Path) -> None:
    """Redis goes away under a running oracle: an override is answered 503 at once (not
    applied), the index keeps flowing, the process lives; once Redis is back (empty: it
    kept nothing) the next override is applied and kept, and survives a crash."""
    (redis_port,) = free_ports(1)
    redis = PrivateRedis(redis_port, tmp_path / "redis")
    redis.start()
    private = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{redis_port}/0"})
    proc, url = start_oracle(private, tmp_path)
    freeze = {"market": "BTC", "action": "freeze", "operator": "alice", "reason": "drill"}

    async def btc_is(wanted: str) -> bool:
        try:
            code, body = await asyncio.to_thread(call, f"{url}/oracle/status")
        except OSError:
            return False
        rows = body["response"] if code == 200 else []
        return any(r.get("market") == "BTC" and r.get("status") == wanted for r in rows)

    try:
        assert await wait_for(lambda: btc_is("valid"), timeout_s=30), proc.tail()
        redis.stop()
        started = time.monotonic()
        status, body = await asyncio.to_thread(call, f"{url}/operator/override", freeze)
        took = time.monotonic() - started
        assert status == 503, body
        assert body["response"].startswith("override not applied, try again: hold store (Redis)")
        assert took < 8, took  # bounded, never a hang
        assert await btc_is("valid") and proc.alive(), proc.tail()
        ts_before = await asyncio.to_thread(call, f"{url}/oracle/status")
        await asyncio.sleep(0.6)  # the index keeps being published while Redis is away
        ts_after = await asyncio.to_thread(call, f"{url}/oracle/status")
        assert ts_after[1]["response"][0]["ts"] > ts_before[1]["response"][0]["ts"]

        redis.start()
        status, body = await asyncio.to_thread(call, f"{url}/operator/override", freeze)
        assert (status, body["response"]["status"], body["response"]["px"]) == (
            200,
            "halted",
            "100000",
        ), body
        proc.kill()  # the hold was kept in the restarted Redis: a crash does not lift it
        proc.start()
        assert await wait_for(lambda: btc_is("halted"), timeout_s=30), proc.tail()
        release = {"market": "BTC", "action": "release", "operator": "alice"}
        status, body = await asyncio.to_thread(call, f"{url}/operator/override", release)
        assert (status, body["response"]["status"]) == (200, "valid"), body
        assert proc.stop() == 0, proc.tail()
    finally:
        proc.stop()
        redis.stop()

    prices = [r.value for r in await read_topic(settings, topics.ORACLE_PRICES, expect=10)]
    audits = [(p.action, p.px) for p in prices if isinstance(p, OracleOverride)]
    assert audits == [("freeze", 1_000_000), ("release", 1_000_000)]  # the refused one: none


async def test_a_producer_out_of_sequence_with_the_broker_is_replaced(settings: Settings) -> None:
    """What a broker restart did to the oracle once: the broker's idea of the producer's
    sequence no longer matches, every send fails with OutOfOrderSequenceNumber. Here the
    real producer is put out of step with the real broker (its next sequence number on
    the oracle.prices partition jumps ahead); the publisher replaces it, the freeze's
    audit event goes out on the fresh producer, and the halted index follows."""
    made: list[AIOKafkaProducer] = []

    def renew() -> AIOKafkaProducer:
        made.append(new_producer(settings))
        return made[-1]

    publisher = Publisher(settings, renew(), renew)
    resets = {"error": "OutOfOrderSequenceNumber"}
    before = REGISTRY.get_sample_value("exchange_oracle_producer_resets_total", resets) or 0
    await publisher.start()
    try:
        agg = aggregator()
        await publisher.publish(feed(agg, 0, everyone("100000")))
        await publisher.flush()
        assert publisher.failures == 0
        btc = partition_for("BTC", publisher.prices_partitions)
        txn = made[0]._txn_manager  # the idempotent producer's sequence numbers
        txn.increment_sequence_number(TopicPartition(publisher.prices_topic, btc), 5)
        freeze = Override(ts=T0 + 500, market="BTC", action="freeze", operator="alice")
        audit, halted = agg.override(freeze)
        await publisher.publish([audit, halted])

        tick = itertools.count(1)

        async def replaced() -> bool:
            await publisher.publish(feed(agg, 1000 * next(tick), everyone("100000")))
            return publisher.resets == 1 and publisher.broken is None

        assert await wait_for(replaced, timeout_s=30), publisher.failures
        assert len(made) == 2 and publisher.producer is made[1]
        count = REGISTRY.get_sample_value("exchange_oracle_producer_resets_total", resets)
        assert count == before + 1
        await publisher.publish(feed(agg, 1000 * next(tick), everyone("100000")))
        await publisher.flush()
    finally:
        await publisher.stop()

    prices = [r.value for r in await read_topic(settings, topics.ORACLE_PRICES, expect=3)]
    btc_prices = [p for p in prices if p.market == "BTC"]
    audits = [p for p in btc_prices if isinstance(p, OracleOverride)]
    assert [(a.action, a.px, a.ts) for a in audits] == [("freeze", 1_000_000, T0 + 500)]
    after = btc_prices[btc_prices.index(audits[0]) + 1 :]
    assert after and {(p.status, p.px) for p in after} == {("halted", 1_000_000)}
    assert btc_prices[0].status == "valid"
