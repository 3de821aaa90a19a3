"""Chaos drills as one command: faults under load, then the audit after each.

    python -m sim.chaos [--quick] [--drills kill:risk,restart:kafka,...] [--load mod:fn]

Brings up a private local stack (its own Kafka broker and Redis on free ports, in a run
directory of its own) and the six services as processes, runs a trading load of signed
orders through the public API, and in turn: SIGKILLs and restarts each service, restarts
the Kafka broker, restarts Redis, and silences the oracle (an operator freeze). After
each drill, with the load stopped and the venue settled, the auditor must pass
(``services.auditor``: every partition's Redis state equals the state rebuilt from its
input log, every state proof recomputes, money is conserved to the micro-dollar, every
fill is on the logs exactly once), and the time to recover is measured: from the fault
to the service answering its health check, its input lag back to where the log stood at
the fault, and a probe order round-tripping through gateway, risk and matcher. Prints a
table; exit status 1 if any drill fails. A process that dies of a fault (say, the broker
going away) is restarted the way a supervisor would, and the table says so.

The load is pluggable: ``--load package.module:function``, a function taking
``(client, stop, stats)`` like :func:`seeded_orders`'s result (the agent simulator drops
in here).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from libs.common import topics
from libs.common.admin import ensure_topics
from libs.common.runtime import SnapshotStore
from libs.common.settings import Settings
from libs.localstack import ROOT, LocalStack, free_ports
from libs.localstack.procs import ServiceProcess
from services.auditor.audit import AuditReport, audit
from sim.client import VenueClient, wallet

SERVICES = ("risk", "matcher", "liquidator", "oracle", "gateway", "marketdata")
PROCESSORS = {
    "risk": topics.RISK_IN,
    "matcher": topics.MATCHER_IN,
    "liquidator": topics.LIQUIDATIONS,
}
DRILLS = (
    *(f"kill:{name}" for name in SERVICES),
    "restart:kafka",
    "restart:redis",
    "oracle:freeze",
)
MARKET = "BTC"
MID_USD = 100_000
OVERRIDE_TIMEOUT_S = 10.0


@dataclass
class LoadStats:
    """What the load did, for the report (answers include refusals)."""

    sent: int = 0
    answered: int = 0
    filled: int = 0
    failed: int = 0


Load = Callable[[VenueClient, asyncio.Event, LoadStats], Awaitable[None]]


def now_ms() -> int:
    return int(time.time() * 1000)


def seeded_orders(seed: int = 7, traders: int = 4, pause_s: float = 0.05) -> Load:
    """A small reproducible book: traders post GTC orders around the mid and take them
    with IOC orders, each funded by the operator faucet, until ``stop`` is set."""

    signers = [wallet(0xC4A05000 + seed * 100 + i) for i in range(traders)]
    funded: list[int] = []  # the asset id, once the traders are funded

    async def load(client: VenueClient, stop: asyncio.Event, stats: LoadStats) -> None:
        if not funded:
            meta = await client.info("meta")
            await asyncio.gather(*(client.deposit(s.address, "100000") for s in signers))
            funded.append(next(i for i, m in enumerate(meta["universe"]) if m["name"] == MARKET))
        asset = funded[0]

        async def trade(index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            signer = signers[index]
            while not stop.is_set():
                is_buy = rng.random() < 0.5
                take = rng.random() < 0.4
                offset = rng.randint(0, 200)
                px = MID_USD + (offset if is_buy == take else -offset)
                sz = f"0.00{rng.randint(1, 9)}"
                stats.sent += 1
                try:
                    status = await client.limit_order(
                        signer, asset, is_buy, str(px), sz, now_ms(), tif="Ioc" if take else "Gtc"
                    )
                except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                    stats.failed += 1  # the gateway is down or restarting
                    await asyncio.sleep(0.2)
                    continue
                stats.answered += 1
                stats.filled += isinstance(status, dict) and "filled" in status
                await asyncio.sleep(pause_s)

        await asyncio.gather(*(trade(i) for i in range(traders)))

    return load


def load_from(spec: str) -> Load:
    """``package.module:function``: a function returning a :data:`Load` (or one itself)."""
    module, _, name = spec.partition(":")
    made: Any = getattr(importlib.import_module(module), name)
    try:
        return made()  # type: ignore[no-any-return]
    except TypeError:
        return made  # type: ignore[no-any-return]


class Venue:
    """The six services as processes on one local stack, each restartable on its own."""

    def __init__(self, stack: LocalStack, settings: Settings, log_dir: Path) -> None:
        self.stack = stack
        self.settings = settings
        self.log_dir = log_dir
        gateway, operator, control, *metric = free_ports(3 + len(SERVICES))
        self.url = f"http://127.0.0.1:{gateway}"
        self.operator_url = f"http://127.0.0.1:{operator}"
        self.oracle_url = f"http://127.0.0.1:{control}"
        self.metrics = dict(zip(SERVICES, metric, strict=True))
        log_dir.mkdir(parents=True, exist_ok=True)
        oracle_config = log_dir / "oracle.toml"
        text = (ROOT / "config" / "oracle.toml").read_text()
        oracle_config.write_text(text.replace("port = 19110", f"port = {control}", 1))
        self.procs = {
            name: ServiceProcess(
                name,
                settings,
                log_dir,
                gateway_port=gateway,
                operator_port=operator,
                metrics_port=self.metrics[name],
                oracle_volatility_bps=0,
                oracle_interval_ms=200,
                oracle_config_file=oracle_config,
            )
            for name in SERVICES
        }

    def start(self) -> None:
        for proc in self.procs.values():
            proc.start()

    def stop(self) -> dict[str, int | None]:
        """Stop every service at once (each gets its own grace period); exit statuses."""
        with ThreadPoolExecutor(len(self.procs)) as pool:
            codes = pool.map(ServiceProcess.stop, self.procs.values())
            return dict(zip(self.procs, codes, strict=True))

    def revive(self) -> list[str]:
        """Restart every process that died, as a supervisor would; returns their names."""
        dead = [name for name, proc in self.procs.items() if not proc.alive()]
        for name in dead:
            self.procs[name].start()
        return dead

    async def healthy(self, session: aiohttp.ClientSession, name: str) -> bool:
        url = f"http://127.0.0.1:{self.metrics[name]}/health"
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


class Positions:
    """Where each processor stands: its Redis offsets against its input log's ends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Redis restarts under it: a dropped connection is retried, not fatal.
        self.redis = aioredis.Redis.from_url(
            settings.redis_url,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=20),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=None,
            isolation_level="read_committed",
            enable_auto_commit=False,
        )

    async def start(self) -> None:
        await self.consumer.start()

    async def close(self) -> None:
        await self.consumer.stop()
        await self.redis.aclose()

    async def ends(self, service: str) -> dict[int, int]:
        topic = PROCESSORS[service]
        name = self.settings.topics.name(topic)
        parts = [TopicPartition(name, p) for p in range(self.settings.topics.partitions(topic))]
        found = await self.consumer.end_offsets(parts)
        return {tp.partition: int(offset) for tp, offset in found.items()}

    async def stored(self, service: str) -> dict[int, int]:
        store = SnapshotStore(self.redis, self.settings.namespace, service)
        count = self.settings.topics.partitions(PROCESSORS[service])
        return {p: await store.stored_offset(p) for p in range(count)}

    async def caught_up(self, service: str, ends: dict[int, int]) -> bool:
        stored = await self.stored(service)
        return all(stored[p] >= end for p, end in ends.items())

    async def settle(self, timeout_s: float) -> None:
        """Wait until every processor applied everything its upstream had produced:
        matcher, then risk, then liquidator, twice (outputs of one are inputs of the
        next). Oracle ticks keep coming; they move no money."""
        deadline = time.monotonic() + timeout_s
        for service in ("matcher", "risk", "liquidator", "matcher", "risk"):
            ends = await self.ends(service)
            while not await self.caught_up(service, ends):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service} did not catch up with {ends}")
                await asyncio.sleep(0.1)


@dataclass
class DrillResult:
    name: str
    recovery_s: float | None = None
    probe_ms: float | None = None
    restarted: list[str] = field(default_factory=list)
    audit: AuditReport | None = None
    error: str | None = None
    orders: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.audit is not None and self.audit.ok


class Drills:
    """Runs drills one after the other on one venue under one load."""

    def __init__(
        self,
        venue: Venue,
        load: Load,
        *,
        warmup_s: float,
        after_s: float,
        recover_timeout_s: float,
    ) -> None:
        self.venue = venue
        self.load = load
        self.warmup_s = warmup_s
        self.after_s = after_s
        self.recover_timeout_s = recover_timeout_s
        self.positions = Positions(venue.settings)
        self.probe_signer = wallet(0x9B0BE)
        self.stats = LoadStats()
        self.asset = 0

    async def run(self, names: list[str]) -> list[DrillResult]:
        await self.positions.start()
        try:
            async with VenueClient(self.venue.url, self.venue.operator_url) as client:
                await self.ready(client)
                return [await self.drill(client, name) for name in names]
        finally:
            await self.positions.close()

    async def ready(self, client: VenueClient) -> None:
        """Wait for the gateway, fund the probe account, and see a probe round-trip."""
        started = time.monotonic()
        while True:
            try:
                meta = await client.info("meta")
                break
            except aiohttp.ClientError:
                if time.monotonic() - started > self.recover_timeout_s:
                    raise
                await asyncio.sleep(0.2)
        self.asset = next(i for i, m in enumerate(meta["universe"]) if m["name"] == MARKET)
        await client.deposit(self.probe_signer.address, "10000")
        while await self.probe(client) is None:
            if time.monotonic() - started > self.recover_timeout_s:
                raise TimeoutError("the venue never answered a probe order")
            await asyncio.sleep(0.3)

    async def probe(self, client: VenueClient) -> float | None:
        """A GTC bid far below the mid, then its cancel: both answered by the matcher
        through risk and the gateway. Milliseconds for both, or None."""
        meta_started = time.perf_counter()
        try:
            status = await client.limit_order(
                self.probe_signer, self.asset, True, str(MID_USD * 9 // 10), "0.001", now_ms()
            )
            oid = status.get("resting", {}).get("oid") if isinstance(status, dict) else None
            if oid is None:
                return None
            action = {"type": "cancel", "cancels": [{"a": self.asset, "o": oid}]}
            reply = await client.action(self.probe_signer, action, now_ms())
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, AttributeError):
            return None
        if reply.get("status") != "ok":
            return None
        return (time.perf_counter() - meta_started) * 1000

    async def drill(self, client: VenueClient, name: str) -> DrillResult:
        result = DrillResult(name)
        stop = asyncio.Event()
        sent_before = self.stats.sent
        load = asyncio.create_task(self._run_load(client, stop))
        try:
            await asyncio.sleep(self.warmup_s)
            started, service, ends = await self.fault(client, name)
            result.recovery_s, result.probe_ms = await self.recover(
                client, started, service, ends, result
            )
            await asyncio.sleep(self.after_s)
        except Exception as exc:  # the drill failed; the report says how
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            stop.set()
            await asyncio.gather(load, return_exceptions=True)
            result.orders = self.stats.sent - sent_before
        if result.error is None:
            try:
                result.restarted += self.venue.revive()
                await self.positions.settle(self.recover_timeout_s)
                result.audit = await audit(self.venue.settings)
            except Exception as exc:
                result.error = f"audit: {type(exc).__name__}: {exc}"
        return result

    async def load_for(self, client: VenueClient, seconds: float, fills: int = 0) -> None:
        """Run the load for a while and until it has ``fills`` more fills (within the
        recovery timeout), then stop it and let the venue settle."""
        stop = asyncio.Event()
        wanted = self.stats.filled + fills
        load = asyncio.create_task(self._run_load(client, stop))
        await asyncio.sleep(seconds)
        deadline = time.monotonic() + self.recover_timeout_s
        while True:
            if self.stats.filled >= wanted or time.monotonic() > deadline or load.done():
                break
            await asyncio.sleep(0.1)
        stop.set()
        await load
        await self.positions.settle(self.recover_timeout_s)

    async def _run_load(self, client: VenueClient, stop: asyncio.Event) -> None:
        try:
            await self.load(client, stop, self.stats)
        except (aiohttp.ClientError, TimeoutError):
            pass  # the gateway went away mid-setup; the next drill's load starts again

    async def fault(
        self, client: VenueClient, name: str
    ) -> tuple[float, str | None, dict[int, int]]:
        """Inject the fault; returns when recovery starts being measured, the service
        concerned and its input log's ends at the fault."""
        kind, _, target = name.partition(":")
        venue = self.venue
        if kind == "kill":
            ends = await self.positions.ends(target) if target in PROCESSORS else {}
            started = time.monotonic()
            proc = venue.procs[target]
            proc.kill()
            proc.start()
            return started, target, ends
        if kind == "restart" and target in ("kafka", "redis"):
            script = f"{target}.sh"
            started = time.monotonic()
            await asyncio.to_thread(venue.stack.script, script, "stop")
            await asyncio.to_thread(venue.stack.script, script, "start")
            return started, None, {}
        if name == "oracle:freeze":
            self.venue.revive()
            await self._override(client, "freeze")
            await asyncio.sleep(self.warmup_s)
            started = time.monotonic()
            await self._override(client, "release")
            return started, "oracle", {}
        raise ValueError(f"unknown drill {name!r}; known: {', '.join(DRILLS)}")

    async def _override(self, client: VenueClient, action: str) -> None:
        body = {"market": MARKET, "action": action, "operator": "chaos", "reason": "drill"}
        assert client._session is not None
        try:
            async with client._session.post(
                self.venue.oracle_url + "/operator/override",
                json=body,
                headers={"Authorization": f"Bearer {self.venue.settings.operator_token}"},
                timeout=aiohttp.ClientTimeout(total=OVERRIDE_TIMEOUT_S),
            ) as resp:
                answer = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RuntimeError(
                f"oracle {action}: no answer within {OVERRIDE_TIMEOUT_S:.0f} s ({exc!r})"
            ) from exc
        if answer.get("status") != "ok":
            raise RuntimeError(f"oracle {action} refused: {answer}")

    async def recover(
        self,
        client: VenueClient,
        started: float,
        service: str | None,
        ends: dict[int, int],
        result: DrillResult,
    ) -> tuple[float, float]:
        """Seconds from the fault until the service answers, has caught up with its log
        as it stood at the fault, and a probe order round-trips; the probe's ms."""
        deadline = started + self.recover_timeout_s
        assert client._session is not None
        healthy = caught_up = False
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"not recovered after {self.recover_timeout_s} s "
                    f"(healthy {healthy}, caught up {caught_up})"
                )
            result.restarted += self.venue.revive()
            healthy = service is None or await self.venue.healthy(client._session, service)
            try:
                caught_up = not ends or await self.positions.caught_up(service or "", ends)
            except Exception:  # Redis or Kafka not back yet
                caught_up = False
            if healthy and caught_up:
                probe = await self.probe(client)
                if probe is not None:
                    return time.monotonic() - started, probe
            await asyncio.sleep(0.1)


def render(results: list[DrillResult], stats: LoadStats) -> str:
    lines = [
        f"{'drill':<16} {'recovery s':>10} {'probe ms':>9} {'orders':>7} {'state':>6} "
        f"{'proofs':>6} {'fills':>6} {'imbalance':>9}  verdict",
    ]
    for r in results:
        a = r.audit
        state = "-" if a is None else ("=log" if not a.differences else "DIFF")
        books = a.books if a is not None else None
        fills = a.fills.fills if a is not None and a.fills is not None else 0
        lines.append(
            f"{r.name:<16} {_num(r.recovery_s, 2):>10} {_num(r.probe_ms, 0):>9} {r.orders:>7} "
            f"{state:>6} {a.proofs_checked if a else 0:>6} {fills:>6} "
            f"{books.imbalance if books else '-':>9}  {'pass' if r.ok else 'FAIL'}"
            + (f" (restarted {', '.join(r.restarted)})" if r.restarted else "")
        )
        if r.error:
            lines.append(f"    error: {r.error}")
        if a is not None and not a.ok:
            lines += [f"    {line}" for line in a.render().splitlines() if line[:7] in _BAD]
    lines.append(
        f"load: {stats.sent} orders sent, {stats.answered} answered, {stats.filled} filled, "
        f"{stats.failed} failed in flight (service down)"
    )
    return "\n".join(lines)


_BAD = ("DIFFERS", "PROBLEM")


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class Plan:
    drills: list[str]
    warmup_s: float
    after_s: float
    recover_timeout_s: float
    proof_interval: int


QUICK = Plan(list(DRILLS), warmup_s=1.0, after_s=0.5, recover_timeout_s=60.0, proof_interval=25)
FULL = Plan(list(DRILLS), warmup_s=5.0, after_s=3.0, recover_timeout_s=120.0, proof_interval=200)


@dataclass
class Outcome:
    """Every drill's result, what the load did, and the services that did not stop
    cleanly at the end (exit status; a fault can leave a part of a process dead)."""

    results: list[DrillResult]
    stats: LoadStats
    unclean: dict[str, int | None]
    settings: Settings

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results) and not self.unclean

    def render(self) -> str:
        text = render(self.results, self.stats)
        if self.unclean:
            text += f"\nunclean exits at the end (see their logs): {self.unclean}"
        return text


async def run_drills(stack: LocalStack, plan: Plan, load: Load, log_dir: Path) -> Outcome:
    """Every drill of the plan on a fresh namespace of ``stack`` (whose broker and Redis
    the restart drills stop and start)."""
    settings = Settings(
        kafka_bootstrap=stack.bootstrap,
        redis_url=stack.redis_url,
        namespace=f"chaos{uuid.uuid4().hex[:8]}.",
        session_timeout_ms=3000,
        heartbeat_interval_ms=500,
        poll_timeout_ms=20,
        proof_interval=plan.proof_interval,
    )
    await ensure_topics(settings)
    venue = Venue(stack, settings, log_dir)
    venue.start()
    drills = Drills(
        venue,
        load,
        warmup_s=plan.warmup_s,
        after_s=plan.after_s,
        recover_timeout_s=plan.recover_timeout_s,
    )
    try:
        results = await drills.run(plan.drills)
    finally:
        codes = venue.stop()
    unclean: dict[str, int | None] = {
        name: code for name, code in codes.items() if code not in (0, None)
    }
    return Outcome(results, drills.stats, unclean, settings)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short drills (the test suite's)")
    parser.add_argument("--drills", help=f"comma-separated subset of {','.join(DRILLS)}")
    parser.add_argument("--seed", type=int, default=7, help="seed of the default load")
    parser.add_argument("--load", help="package.module:function giving the load")
    parser.add_argument("--run-dir", type=Path, help="where the stack and logs live")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.drills:
        plan = Plan(
            args.drills.split(","),
            plan.warmup_s,
            plan.after_s,
            plan.recover_timeout_s,
            plan.proof_interval,
        )
    load = load_from(args.load) if args.load else seeded_orders(args.seed)
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="chaos-"))
    stack = LocalStack.private(run_dir / "stack")
    stack.start()
    try:
        outcome = asyncio.run(run_drills(stack, plan, load, run_dir / "logs"))
    finally:
        stack.stop()
    print(outcome.render())
    print(f"logs in {run_dir / 'logs'}")
    sys.exit(0 if outcome.ok else 1)


if __name__ == "__main__":
    main()
