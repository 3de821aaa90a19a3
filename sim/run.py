"""Run a scenario end to end and write its report.

    python -m sim.run --scenario sim/scenarios/crash.toml [--duration S] [--seed N] [--out DIR]

Starts a venue of its own (risk, matcher, liquidator, oracle, gateway) over the local
stack's Kafka and Redis (``--kafka``, ``--redis``) in a fresh namespace, with the oracle
playing the scenario's price path and faults; funds the agents (and the insurance fund
and vault, if the scenario says so) through the operator faucet; runs every agent once
per tick for the duration, through the signed public API, with a progress bar; then
stops the oracle, waits until nothing moves and no liquidation is open, reads the logs
and the end state back, stops the venue and writes the report.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from eth_account.signers.local import LocalAccount
from tqdm import tqdm

from libs.common import topics
from libs.common.markets import MarketRegistry
from libs.common.money import usd_to_units
from libs.common.state import BACKSTOP_VAULT_ACCOUNT, INSURANCE_FUND_ACCOUNT
from services.oracle.config import ConfigError
from sim.agents import (
    AccountView,
    Agent,
    CancelAll,
    Intent,
    MarketView,
    Observation,
    Place,
    SetLeverage,
    make_agent,
)
from sim.client import VenueClient, wallet
from sim.collect import StateReader, read_topic
from sim.report import FundSample, RunData, console_summary, write_report
from sim.scenario import Scenario, ScenarioError, load_scenario, markets_doc
from sim.venue import SimVenue

log = logging.getLogger("sim")


def agent_key(seed: int, name: str) -> LocalAccount:
    """The agent's signing key, from the seed and its name: the same on every run."""
    digest = hashlib.sha256(f"sim/{seed}/{name}".encode()).digest()
    return wallet(int.from_bytes(digest[:16], "big") or 1)


def build_agents(scenario: Scenario) -> list[tuple[Agent, Decimal]]:
    """Every agent of the scenario with its deposit, numbered per kind in file order."""
    counts: Counter[str] = Counter()
    agents = []
    for group in scenario.agents:
        for _ in range(group.count):
            index = counts[group.kind]
            counts[group.kind] += 1
            agent = make_agent(group.kind, index, group.market, scenario.seed, group.params)
            agents.append((agent, group.deposit))
    return agents


@dataclass
class Trader:
    agent: Agent
    key: LocalAccount
    deposit: Decimal

    @property
    def address(self) -> str:
        return self.key.address.lower()


@dataclass
class Session:
    """One run's agents, their order counts and the fund samples."""

    venue: VenueClient
    markets: MarketRegistry
    traders: list[Trader]
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[FundSample] = field(default_factory=list)
    last_px: dict[str, str] = field(default_factory=dict)

    async def observe_markets(self) -> dict[str, MarketView]:
        meta, ctxs = await self.venue.info("metaAndAssetCtxs")
        views = {}
        for asset, ctx in zip(meta["universe"], ctxs, strict=True):
            spec = self.markets.by_name(asset["name"])
            oracle = Decimal(ctx["oraclePx"] or "0")
            if oracle <= 0:
                continue
            views[spec.name] = MarketView(
                spec=spec,
                oracle_px=oracle,
                mark_px=Decimal(ctx["markPx"] or ctx["oraclePx"]),
                funding_rate=Decimal(ctx["funding"] or "0"),
            )
            self.last_px[spec.name] = ctx["oraclePx"]
        return views

    async def sample_funds(self, now_ms: int) -> None:
        reply = await self.venue.funds()
        funds = reply.get("response", {})
        if not funds:
            return
        self.samples.append(
            FundSample(
                now_ms,
                usd_to_units(funds["insuranceFund"]["marginSummary"]["accountValue"]),
                usd_to_units(funds["backstopVault"]["marginSummary"]["accountValue"]),
            )
        )

    async def act(self, trader: Trader, views: dict[str, MarketView], now_ms: int) -> None:
        """One agent's tick; an answer the agent cannot read (a timeout, an HTTP error
        page) costs it the tick and is counted, it does not end the run."""
        if trader.agent.market not in views:
            return
        try:
            await self._act(trader, views, now_ms)
        except (TimeoutError, aiohttp.ClientError, KeyError, TypeError, ValueError) as exc:
            self.statuses["tick lost"] += 1
            self.errors[f"{type(exc).__name__}: {exc}"[:80]] += 1

    async def _act(self, trader: Trader, views: dict[str, MarketView], now_ms: int) -> None:
        state = await self.venue.info("clearinghouseState", user=trader.address)
        positions = {
            p["position"]["coin"]: Decimal(p["position"]["szi"]) for p in state["assetPositions"]
        }
        account = AccountView(Decimal(state["marginSummary"]["accountValue"]), positions)
        intents = trader.agent.decide(Observation(now_ms, views, account))
        await self.send(trader, intents, now_ms)

    async def send(self, trader: Trader, intents: list[Intent], now_ms: int) -> None:
        places = [i for i in intents if isinstance(i, Place)]
        for intent in intents:
            if isinstance(intent, CancelAll):
                await self._cancel_all(trader, intent.market, now_ms)
            elif isinstance(intent, SetLeverage):
                asset = self.markets.by_name(intent.market).asset
                reply = await self.venue.update_leverage(
                    trader.key, asset, intent.leverage, now_ms, intent.is_cross
                )
                self._count("leverage", reply)
        if places:
            orders = [
                {
                    "a": self.markets.by_name(p.market).asset,
                    "b": p.is_buy,
                    "p": p.px,
                    "s": p.sz,
                    "r": p.reduce_only,
                    "t": {"limit": {"tif": p.tif}},
                }
                for p in places
            ]
            for status in await self.venue.orders(trader.key, orders, now_ms):
                if isinstance(status, dict) and "error" in status:
                    self.statuses["error"] += 1
                    self.errors[str(status["error"])[:80]] += 1
                elif isinstance(status, dict):
                    self.statuses[next(iter(status), "unknown")] += 1

    async def _cancel_all(self, trader: Trader, market: str, now_ms: int) -> None:
        open_orders = await self.venue.info("openOrders", user=trader.address)
        asset = self.markets.by_name(market).asset
        oids = [(asset, o["oid"]) for o in open_orders if o["coin"] == market]
        if oids:
            self._count("cancel", await self.venue.cancel(trader.key, oids, now_ms))

    def _count(self, what: str, reply: Any) -> None:
        if isinstance(reply, dict) and reply.get("status") == "ok":
            self.statuses[what] += 1
        else:
            self.statuses[f"{what} error"] += 1
            text = reply.get("response") if isinstance(reply, dict) else reply
            self.errors[str(text)[:80]] += 1


def now_ms() -> int:
    return int(time.time() * 1000)


async def fund(session: Session, scenario: Scenario) -> None:
    """Faucet deposits: the venue's funds first, then every agent."""
    for address, usd in (
        (INSURANCE_FUND_ACCOUNT, scenario.insurance_fund),
        (BACKSTOP_VAULT_ACCOUNT, scenario.backstop_vault),
        *((t.address, t.deposit) for t in session.traders),
    ):
        if usd > 0:
            reply = await session.venue.deposit(address, str(usd))
            if reply.get("status") != "ok":
                raise RuntimeError(f"deposit of {usd} to {address} failed: {reply}")


async def trade(
    session: Session, scenario: Scenario, progress: bool, check: Callable[[], None]
) -> None:
    """Every agent once per tick until the duration is over; ``check`` raises if the
    venue has lost a process (the run stops rather than report on half a venue)."""
    tick_s = scenario.tick_ms / 1000
    started = time.monotonic()
    end = started + scenario.duration_s
    bar = tqdm(
        total=round(scenario.duration_s),
        desc=scenario.name,
        unit="s",
        disable=not progress,
        file=sys.stderr,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total} s{postfix}",
    )
    next_tick = started
    views: dict[str, MarketView] = {}
    with bar:
        while time.monotonic() < end:
            check()
            ts = now_ms()
            try:
                views = await session.observe_markets()
                await asyncio.gather(*(session.act(t, views, ts) for t in session.traders))
                await session.sample_funds(ts)
            except (TimeoutError, aiohttp.ClientError, KeyError, TypeError) as exc:
                session.statuses["tick lost"] += 1
                session.errors[f"{type(exc).__name__}: {exc}"[:80]] += 1
            bar.n = min(bar.total, round(time.monotonic() - started))
            bar.set_postfix_str(
                " ".join(f"{m} {session.last_px[m]}" for m in scenario.markets if m in views)
                + f", actions {sum(session.statuses.values())}"
            )
            next_tick = max(next_tick + tick_s, time.monotonic())
            await asyncio.sleep(max(0.0, min(next_tick, end) - time.monotonic()))
        bar.n = bar.total
        bar.refresh()


async def run(
    scenario: Scenario, out: Path, kafka: str, redis_url: str, progress: bool = True
) -> dict[str, Any]:
    """The whole run; returns the report's summary (also written to ``out``)."""
    namespace = f"sim-{scenario.name}-{scenario.seed}-{uuid.uuid4().hex[:6]}."
    venue = SimVenue.create(scenario, out, kafka, redis_url, namespace)
    reader = StateReader(venue.settings)
    markets = venue.settings.markets
    traders = [
        Trader(agent, agent_key(scenario.seed, agent.name), deposit)
        for agent, deposit in build_agents(scenario)
    ]
    try:
        await venue.start()
        async with VenueClient(venue.url, venue.operator_url) as client:
            session = Session(client, markets, traders)
            await _wait_for_prices(session, scenario)
            await fund(session, scenario)
            started = now_ms()
            for trader in traders:
                await session.send(trader, trader.agent.setup(), started)
            await trade(session, scenario, progress, venue.check_alive)
            ended = now_ms()
            venue.check_alive()
            venue.stop("oracle")  # no more marks: the books can settle
            quiet = await reader.quiet()
            await session.sample_funds(now_ms())
            end_state = await reader.end_state()
    finally:
        codes = venue.stop_all()
        await reader.close()
    if any(code not in (0, None) for code in codes.values()):
        log.warning("unclean exits: %s", codes)
    s = venue.settings
    data = RunData(
        name=scenario.name,
        seed=scenario.seed,
        started_ms=started,
        ended_ms=ended,
        markets=markets,
        market_events=await read_topic(s, topics.MARKET_EVENTS),
        account_events=await read_topic(s, topics.ACCOUNT_EVENTS),
        oracle_prices=await read_topic(s, topics.ORACLE_PRICES),
        audit=await read_topic(s, topics.LIQUIDATION_AUDIT),
        risk_in=await read_topic(s, topics.RISK_IN),
        liquidations=await read_topic(s, topics.LIQUIDATIONS),
        end=end_state,
        fund_samples=session.samples,
        order_statuses=session.statuses,
        errors=session.errors,
        agents={t.address: t.agent.name for t in traders},
        description=scenario.description,
        quiet=quiet,
        traded=scenario.markets,
    )
    return write_report(data, out)


async def _wait_for_prices(session: Session, scenario: Scenario, timeout_s: float = 30.0) -> None:
    """Until the oracle has a price for every market the agents trade."""
    deadline = time.monotonic() + timeout_s
    while True:
        views = await session.observe_markets()
        if all(m in views for m in scenario.markets):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no index price for {scenario.markets} after {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scenario", required=True, help="a scenario file (sim/scenarios/*.toml)")
    parser.add_argument("--duration", type=float, help="seconds of trading (default: the file's)")
    parser.add_argument("--seed", type=int, help="seed of the agents and the price path")
    parser.add_argument(
        "--out", type=Path, help="report directory (default .run/sim/NAME-SEED-TIME)"
    )
    parser.add_argument("--kafka", default="127.0.0.1:19092", help="Kafka bootstrap servers")
    parser.add_argument("--redis", default="redis://127.0.0.1:16379/0", help="Redis URL")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args()
    try:
        scenario = load_scenario(args.scenario).with_run(args.duration, args.seed)
        markets_doc(scenario)
    except (OSError, ScenarioError) as exc:
        parser.exit(2, f"sim.run: {exc}\n")
    out = (
        args.out
        or Path(".run/sim") / f"{scenario.name}-{scenario.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    logging.basicConfig(level=logging.WARNING)
    try:
        summary = asyncio.run(run(scenario, out, args.kafka, args.redis, not args.no_progress))
    except ConfigError as exc:
        parser.exit(2, f"sim.run: the oracle would refuse this scenario: {exc}\n")
    print(console_summary(summary))
    print(f"report: {out / 'report.md'}")
    sys.exit(0 if summary["all_invariants_hold"] and summary["trades"] > 0 else 1)


if __name__ == "__main__":
    main()
