"""The liquidation waterfall through the real pipeline: risk, matcher and liquidator as
processes over the session's Kafka and Redis.

The test is the oracle: it writes the index ticks to matcher.in itself (no oracle
process, so nothing else moves the price), one tick per second of event time, without
waiting a second of wall time between them. A market maker quotes bids under the index
and pulls them at every tick (a cancel-all to the matcher, new orders through risk).

What is checked is what holds whatever the waterfall's details (how much the fund
covers at once, per-interval caps, the vault's own unwinding): every account that fell
below maintenance had its case, and every case ended; nobody is left below zero; the
sum of every account's value at the mark (traders, maker, fund, vault, ADL
counterparties) and every partition's fee ledger equals the deposits to the
micro-dollar; accounts without a position are never touched; ADL takes only profitable
opposite positions, in rank order; a liquidator SIGKILLed mid-case finishes the case
exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from libs.common import codec, topics
from libs.common.margin import summarize
from libs.common.runtime import SnapshotStore
from libs.common.schemas import (
    AdlCandidates,
    CancelOrder,
    Deposit,
    FillLeg,
    IndexTick,
    InsuranceCredit,
    LiquidationStep,
    LiquidationTrigger,
    NewOrder,
    PlaceOrder,
    TransferIn,
    UpdateLeverage,
)
from libs.common.settings import Settings
from libs.common.state import (
    ACCOUNT_PREFIX,
    BACKSTOP_VAULT_ACCOUNT,
    INSURANCE_FUND_ACCOUNT,
    L2_PREFIX,
    MARK_PREFIX,
    AccountState,
    L2View,
    MarkState,
    is_liquidation_order,
    order_id,
)
from libs.common.topics import partition_for
from libs.localstack.procs import ServiceProcess
from services.liquidator.service import core_factory as liquidator_factory
from services.risk.engine import VENUE_KEY, VenueLedger
from tests.support.bus import Record, read_topic
from tests.support.workload import reference_run

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

USD = 1_000_000
T0 = 1_700_000_000_000
START = 1_000_000  # BTC 100000.0 in ticks
BTC_LOT = 100_000  # lots per BTC (sz_decimals 5)
FUND, VAULT = INSURANCE_FUND_ACCOUNT, BACKSTOP_VAULT_ACCOUNT
# The waterfall's settings, pinned so the scenarios below mean the same on every branch.
PINNED: dict[str, object] = {
    "liquidator_slice_threshold_usd": 100_000,
    "liquidator_slice_ppm": 200_000,
    "liquidator_cooldown_ms": 1_000,
    "liquidator_max_slippage_ppm": 50_000,
    "risk_liquidation_fee_ppm": 2_500,
    "risk_insurance_fee_share_ppm": 200_000,
    "risk_vault_fee_share_ppm": 300_000,
}
FINAL = frozenset({"recovered", "closed"})


def address(rng: random.Random) -> str:
    return f"0x{rng.getrandbits(160):040x}"


def whole_dollars(px: int) -> int:
    """A BTC price in ticks, rounded down to $10 (valid at 5 significant figures)."""
    return px // 100 * 100


# ---------------------------------------------------------------- the pipeline


class Pipeline:
    """Risk, matcher and liquidator as processes, a producer for the test's inputs, and
    readers of the state the services keep in Redis."""

    SERVICES = ("risk", "matcher", "liquidator")

    def __init__(self, settings: Settings, redis: aioredis.Redis, log_dir: Path) -> None:
        self.settings = settings
        self.redis = redis
        self.procs = {name: ServiceProcess(name, settings, log_dir) for name in self.SERVICES}
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all"
        )
        self.deposits = 0

    async def send(
        self, topic: str, items: Iterable[tuple[str, msgspec.Struct]]
    ) -> list[tuple[int, int]]:
        """Produce in order; returns each record's (partition, offset)."""
        name = self.settings.topics.name(topic)
        count = self.settings.topics.partitions(topic)
        futures = []
        for key, message in items:
            part = partition_for(key, count)
            value = codec.encode(message)
            futures.append(await self.producer.send(name, value, key=key.encode(), partition=part))
        return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]

    async def deposit(self, who: str, usd: int, ts: int = T0) -> None:
        self.deposits += usd
        await self.send(topics.RISK_IN, [(who, Deposit(ts=ts, account=who, usd=usd))])

    async def index(self, px: int, ts: int) -> None:
        await self.send(topics.MATCHER_IN, [("BTC", IndexTick(ts=ts, market="BTC", px=px))])

    def alive(self) -> None:
        for proc in self.procs.values():
            assert proc.alive(), f"{proc.name} died:\n{proc.tail()}"

    async def state(self, service: str) -> dict[int, tuple[int, dict[str, bytes]]]:
        store = SnapshotStore(self.redis, self.settings.namespace, service)
        return {p: await store.load(p) for p in range(4)}

    async def offsets(self) -> tuple[int, ...]:
        found = []
        for service in self.SERVICES:
            store = SnapshotStore(self.redis, self.settings.namespace, service)
            found.extend([await store.stored_offset(p) for p in range(4)])
        return tuple(found)

    async def open_cases(self) -> int:
        count = 0
        for _, entries in (await self.state("liquidator")).values():
            count += sum(1 for k in entries if k.startswith("case:"))
        return count

    async def book(self) -> L2View | None:
        store = SnapshotStore(self.redis, self.settings.namespace, "matcher")
        p = partition_for("BTC", 4)
        raw: bytes | None = await self.redis.hget(store.state_key(p), L2_PREFIX + "BTC")
        return msgspec.msgpack.decode(raw, type=L2View) if raw else None

    async def risk_state(self) -> RiskState:
        view = RiskState()
        for _, entries in (await self.state("risk")).values():
            for key, raw in entries.items():
                if key.startswith(ACCOUNT_PREFIX):
                    acct = msgspec.msgpack.decode(raw, type=AccountState)
                    view.accounts[acct.address] = acct
                elif key == VENUE_KEY:
                    view.venues.append(msgspec.msgpack.decode(raw, type=VenueLedger))
                elif key.startswith(MARK_PREFIX):
                    mark = msgspec.msgpack.decode(raw, type=MarkState)
                    view.marks[mark.market] = mark.mark_px
        return view

    async def until(self, what: str, predicate: object, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not await predicate():  # type: ignore[operator]
            self.alive()
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)

    async def quiet(self, timeout_s: float = 60.0, still_s: float = 1.0) -> None:
        """Until no case is open and no service has moved for ``still_s``."""
        deadline = time.monotonic() + timeout_s
        last, since = await self.offsets(), time.monotonic()
        while True:
            self.alive()
            await asyncio.sleep(0.1)
            now = await self.offsets()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= still_s and not await self.open_cases():
                return
            assert time.monotonic() < deadline, "the pipeline never went quiet"


@dataclass
class RiskState:
    accounts: dict[str, AccountState] = field(default_factory=dict)
    venues: list[VenueLedger] = field(default_factory=list)
    marks: dict[str, int] = field(default_factory=dict)


@pytest.fixture
async def pipeline(
    settings: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    pinned = settings.model_copy(update=PINNED)
    line = Pipeline(pinned, redis_client, tmp_path / "logs")
    await line.producer.start()
    for proc in line.procs.values():
        proc.start()
    try:
        yield line
        line.alive()
    finally:
        await line.producer.stop()
        codes = {name: proc.stop() for name, proc in line.procs.items()}
    assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"


# ---------------------------------------------------------------- the venue's users


@dataclass
class Population:
    maker: str
    longs: dict[str, int]  # address -> lots bought at 100,000
    shorts: dict[str, int]  # address -> lots sold (negative)
    isolated: dict[str, int]  # owner -> lots of the isolated long
    flat: list[str]
    trapped: str = ""  # a short opened at 60,000: in loss all the way down


def order(who: str, is_buy: bool, px: int, sz: int, tif: str, ts: int = T0) -> PlaceOrder:
    return PlaceOrder(
        ts=ts,
        account=who,
        market="BTC",
        is_buy=is_buy,
        px=px,
        sz=sz,
        tif=tif,  # type: ignore[arg-type]
    )


def leverage(who: str, lev: int, cross: bool = True) -> UpdateLeverage:
    return UpdateLeverage(ts=T0, account=who, market="BTC", leverage=lev, is_cross=cross)


async def open_positions(
    line: Pipeline,
    rng: random.Random,
    *,
    longs: int,
    isolated: int,
    shorts: int,
    flat: int,
    max_leverage: int,
    fund_usd: int,
    min_leverage: int = 2,
    trapped: bool = False,
) -> Population:
    """Deposits, leverage settings, and every long buying from the shorts at 100,000."""
    maker = address(rng)
    people = Population(maker, {}, {}, {}, [address(rng) for _ in range(flat)])
    await line.deposit(FUND, fund_usd)
    await line.deposit(VAULT, 50_000_000 * USD)
    await line.deposit(maker, 50_000_000 * USD)
    await line.send(topics.RISK_IN, [(maker, leverage(maker, 50))])
    for who in people.flat:
        await line.deposit(who, rng.randint(100, 5_000) * USD)
    await line.index(START, T0)
    setup: list[tuple[str, msgspec.Struct]] = []
    buys: list[tuple[str, msgspec.Struct]] = []
    for i in range(longs + isolated):
        who = address(rng)
        sz = rng.randint(1, 30) * 1_000  # 0.01-0.3 BTC
        if i == 0:
            sz = 3 * BTC_LOT  # $300,000: liquidated in slices
        lev = rng.randint(min_leverage, max_leverage)
        notional = sz * START
        cash = notional // lev + notional // 1_000
        is_cross = i < longs
        if is_cross:
            people.longs[who] = sz
        else:
            people.isolated[who] = sz
            cash += 5_000 * USD  # cross collateral that must never pay for it
        await line.deposit(who, cash)
        setup.append((who, leverage(who, lev, is_cross)))
        buys.append((who, order(who, True, START, sz, "Ioc")))
    total = sum(people.longs.values()) + sum(people.isolated.values())
    sellers = [address(rng) for _ in range(shorts)]
    for n, who in enumerate(sellers):
        sz = total // shorts + (1 if n < total % shorts else 0)
        people.shorts[who] = -sz
        await line.deposit(who, sz * START // rng.randint(2, 5))
        setup.append((who, leverage(who, 20)))
        setup.append((who, order(who, False, START, sz, "Gtc")))
    await line.send(topics.RISK_IN, setup)

    async def asks_rest() -> bool:
        view = await line.book()
        return view is not None and sum(sz for _, sz, _ in view.asks) == total

    await line.until("the shorts' asks", asks_rest)
    await line.send(topics.RISK_IN, buys)

    async def filled() -> bool:
        view = await line.risk_state()
        longs = [a for a in view.accounts.values() if a.positions.get("BTC", None)]
        return sum(a.positions["BTC"].szi > 0 for a in longs) == len(buys)

    await line.until("the longs' fills", filled)
    if trapped:  # a short in loss: it sold 1 BTC at 60,000 to a buyer in profit
        people.trapped, buyer = address(rng), address(rng)
        await line.deposit(people.trapped, 42_000 * USD)
        await line.deposit(buyer, 60_000 * USD)
        sell = order(people.trapped, False, START * 6 // 10, BTC_LOT, "Gtc")
        await line.send(topics.RISK_IN, [(people.trapped, sell)])

        async def rests() -> bool:
            view = await line.book()
            return view is not None and bool(view.asks)

        await line.until("the trapped short's ask", rests)
        buy = order(buyer, True, START * 6 // 10, BTC_LOT, "Ioc")
        await line.send(topics.RISK_IN, [(buyer, buy)])

        async def done() -> bool:
            pos = (await line.risk_state()).accounts.get(people.trapped)
            return pos is not None and "BTC" in pos.positions

        await line.until("the trapped short's fill", done)
    return people


class Maker:
    """A market maker quoting bids under the index. It pulls its last quotes and places
    the new ones in one go through risk, so the matcher sees the cancels first."""

    def __init__(self, line: Pipeline, address: str) -> None:
        self.line = line
        self.address = address
        self.live: list[int] = []  # oids of the last quotes (risk's deterministic oids)

    async def quote(self, index_px: int, ts: int, levels: int, gap: int, sz: int) -> None:
        """``levels`` bids of ``sz`` lots, ``gap`` ticks apart, under the index; returns
        once the new top bid leads the book (or, in a thin book, was already taken)."""
        who = self.address
        pulls = [(who, CancelOrder(ts=ts, account=who, market="BTC", oid=oid)) for oid in self.live]
        top = whole_dollars(index_px) - gap
        bids = [(who, order(who, True, top - n * gap, sz, "Gtc", ts)) for n in range(levels)]
        placed = await self.line.send(topics.RISK_IN, [*pulls, *bids])
        self.live = [order_id(offset, p) for p, offset in placed[len(pulls) :]]
        last = placed[-1]
        risk = SnapshotStore(self.line.redis, self.line.settings.namespace, "risk")
        since = time.monotonic()

        async def quoted() -> bool:
            view = await self.line.book()
            if view is not None and view.bids and view.bids[0][0] == top:
                return True
            # a thin ladder can be taken as soon as it lands: risk has passed it on
            done = await risk.stored_offset(last[0]) > last[1]
            return done and time.monotonic() - since > 0.5

        await self.line.until("the maker's quotes", quoted, timeout_s=20)


async def crash(
    line: Pipeline,
    maker: Maker,
    steps: int,
    step_ms: int,
    drop_pct: int,
    levels: int,
    sz: int,
) -> int:
    """The index falls ``drop_pct`` in ``steps`` ticks ``step_ms`` apart (event time),
    the maker requoting under each; then one tick a second at the bottom until no case
    is open. Returns the bottom price."""
    bottom = START * (100 - drop_pct) // 100
    ts = T0 + 1_000
    for step in range(1, steps + 1):
        px = whole_dollars(START - (START - bottom) * step // steps)
        await maker.quote(px, ts, levels, 200, sz)
        ts += step_ms
        await line.index(px, ts)
    for _ in range(40):
        await asyncio.sleep(0.5)
        if not await line.open_cases():
            break
        ts += 1_000
        await line.index(whole_dollars(bottom), ts)
    await line.quiet()
    return whole_dollars(bottom)


# ---------------------------------------------------------------- what must hold


@dataclass
class Logs:
    triggers: list[Record]
    steps: list[Record]
    liquidations: list[Record]
    risk_in: list[Record]
    matcher_in: list[Record]


async def logs(line: Pipeline) -> Logs:
    s = line.settings
    liquidations = await read_topic(s, topics.LIQUIDATIONS, quiet_s=0.5)
    return Logs(
        [r for r in liquidations if isinstance(r.value, LiquidationTrigger)],
        await read_topic(s, topics.LIQUIDATION_AUDIT, quiet_s=0.5),
        liquidations,
        await read_topic(s, topics.RISK_IN, quiet_s=0.5),
        await read_topic(s, topics.MATCHER_IN, quiet_s=0.5),
    )


async def check_caught_up(line: Pipeline, log: Logs) -> None:
    """Every service has applied its whole input log: what follows is the end state."""
    for service, records in (
        ("risk", log.risk_in),
        ("matcher", log.matcher_in),
        ("liquidator", log.liquidations),
    ):
        ends: dict[int, int] = {}
        for r in records:
            ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        store = SnapshotStore(line.redis, line.settings.namespace, service)
        for p, end in ends.items():
            assert await store.stored_offset(p) == end, f"{service} {p} is behind its log"


def check_every_case_ended(log: Logs) -> dict[str, list[LiquidationStep]]:
    """Each trigger opened a case whose steps end in exactly one final step."""
    by_case: dict[str, list[LiquidationStep]] = defaultdict(list)
    for r in log.steps:
        step: LiquidationStep = r.value
        by_case[step.case_id].append(step)
    ids = Counter(r.id for r in log.steps)
    assert not [i for i, n in ids.items() if n > 1], "an audit step was written twice"
    for r in log.triggers:
        trigger: LiquidationTrigger = r.value
        own = [s for s in by_case[case_id(r)] if s.account == trigger.account]
        assert own and own[0].stage == "triggered", f"no case for {trigger}"
        finals = [s.stage for s in own if s.stage in FINAL]
        assert len(finals) == 1, f"case {r.id} of {trigger.account} ended {finals}"
        assert own[-1].stage in FINAL
    return by_case


def case_id(trigger: Record) -> str:
    """A case is named by its trigger's place in the liquidations log."""
    return f"{topics.LIQUIDATIONS}/{trigger.partition}/{trigger.offset}"


def check_books_balance(view: RiskState, deposits: int, line: Pipeline) -> dict[str, int]:
    """Nobody below zero, nobody with a position left below maintenance, and every
    account's value at the mark plus every fee ledger equals the deposits exactly.
    Returns the account values."""
    markets = line.settings.markets
    values = {}
    for who, acct in view.accounts.items():
        summary = summarize(acct, view.marks, markets)
        values[who] = summary.account_value
        assert summary.cross_equity >= 0, f"{who} left at {summary.cross_equity}"
        for row in summary.positions:
            if not row.pos.is_cross:
                assert row.margin_used >= row.terms.maintenance, f"{who}'s isolated position"
        if who not in (FUND, VAULT) and summary.cross_maintenance:
            assert summary.cross_equity >= summary.cross_maintenance, f"{who} below maintenance"
    assert sum(a.positions["BTC"].szi for a in view.accounts.values() if "BTC" in a.positions) == 0
    assert all(v.bad_debt == 0 for v in view.venues), "a deficit nobody absorbed"
    fees = sum(v.total for v in view.venues)
    assert sum(values.values()) + fees == deposits
    return values


def check_untouched(before: RiskState, after: RiskState, people: Population, log: Logs) -> None:
    """Accounts without a position are exactly as they were (balance, orders, the whole
    record) and appear in no step, candidate list or order; an isolated position's
    liquidation never takes from its owner's cross collateral nor opens a cross case."""
    encode = msgspec.msgpack.encode
    for who in people.flat:
        assert encode(after.accounts[who]) == encode(before.accounts[who]), who
    bystanders = set(people.flat)
    assert not bystanders & {r.value.account for r in log.steps}
    assert not bystanders & {r.value.counterparty for r in log.steps}
    for r in log.liquidations:
        if isinstance(r.value, AdlCandidates):
            assert not bystanders & {c.account for c in r.value.candidates}
    for r in log.matcher_in:
        assert getattr(r.value, "account", "") not in bystanders
    for who in people.isolated:
        opened = before.accounts[who].collateral
        assert after.accounts[who].collateral >= opened, f"{who}'s cross collateral paid"
        for r in log.triggers:
            if r.value.account == who:
                assert r.value.market == "BTC", f"{who}'s cross account was liquidated"


def check_fund_flows(before: RiskState, after: RiskState, log: Logs) -> tuple[int, int]:
    """The fund's balance moved by exactly what it received (liquidation fees, fee
    shares) less what it paid out (credits to accounts below zero). Returns both."""
    received = sum(
        r.value.usd
        for r in log.risk_in
        if isinstance(r.value, TransferIn) and r.value.account == FUND
    )
    paid = sum(r.value.usd for r in log.risk_in if isinstance(r.value, InsuranceCredit))
    fund_before = before.accounts[FUND].collateral
    assert after.accounts[FUND].collateral == fund_before + received - paid
    return received, paid


def check_triggers_complete(
    before: RiskState, people: Population, log: Logs, bottom: int, line: Pipeline
) -> None:
    """Every long its own position would have left below maintenance at the bottom was
    triggered; every account never triggered still holds exactly what it opened."""
    triggered = {r.value.account for r in log.triggers}
    markets = line.settings.markets
    for who in [*people.longs, *people.isolated]:
        summary = summarize(before.accounts[who], {"BTC": bottom}, markets)
        (row,) = summary.positions
        equity = summary.cross_equity if row.pos.is_cross else row.margin_used
        if equity < row.terms.maintenance:
            assert who in triggered, f"{who} fell below maintenance with no case"


def adl_rounds(log: Logs) -> list[tuple[str, list[tuple[str, int]], list[AdlCandidates]]]:
    """Each ADL allocation: the trader, its closes in emission order (counterparty,
    lots) and the candidate lists every risk partition answered with. A trader's steps
    and answers each keep their order (one partition per account), so the n-th query
    (an ``adl`` step with a size and no counterparty) goes with the n-th request's
    answers."""
    closes: dict[str, list[list[tuple[str, int]]]] = defaultdict(list)
    for r in log.steps:
        step: LiquidationStep = r.value
        if step.stage != "adl":
            continue
        if not step.counterparty and step.sz:
            closes[step.account].append([])
        elif step.counterparty and step.account != step.counterparty:
            closes[step.account][-1].append((step.counterparty, step.sz))
    answers: dict[str, dict[str, list[AdlCandidates]]] = defaultdict(dict)
    for r in log.liquidations:
        if isinstance(r.value, AdlCandidates):
            answers[r.value.account].setdefault(r.value.case_id, []).append(r.value)
    rounds = []
    for trader, found in closes.items():
        asked = list(answers[trader].values())
        assert len(asked) == len(found), f"{trader}: {len(found)} ADL rounds, {len(asked)} queries"
        rounds.extend((trader, c, a) for c, a in zip(found, asked, strict=True))
    return rounds


def score(szi: int, entry_ntl: int, value: int, mark: int) -> Fraction:
    """(mark / entry) x (notional / account value) for a long, (entry / mark) x ... for a
    short (docs/liquidator.md)."""
    notional = abs(szi) * mark
    ratio = Fraction(notional, entry_ntl) if szi > 0 else Fraction(entry_ntl, notional)
    return ratio * Fraction(notional, value)


def check_adl(log: Logs, trapped: str) -> int:
    """Every ADL close took an opposite position in profit, in rank order, each up to its
    whole position; returns the number of closes."""
    count = 0
    for trader, closes, answers in adl_rounds(log):
        assert answers, f"ADL against {trader} without candidates"
        # the mark the allocation used: the first partition's that had one
        mark = next(a.mark_px for a in sorted(answers, key=lambda a: a.partition) if a.mark_px)
        offered = [c for a in answers for c in a.candidates]
        assert all(c.szi < 0 for c in offered), "a long was offered to close a long"
        in_profit = [c for c in offered if c.entry_ntl > abs(c.szi) * mark]
        ranked = sorted(
            in_profit, key=lambda c: (-score(c.szi, c.entry_ntl, c.account_value, mark), c.account)
        )
        assert [who for who, _ in closes] == [c.account for c in ranked[: len(closes)]], (
            f"ADL against {trader} out of rank order"
        )
        for (who, sz), c in zip(closes[:-1], ranked, strict=False):
            assert sz == abs(c.szi), f"{who} closed only {sz} of {abs(c.szi)} ahead of others"
        assert trapped not in {who for who, _ in closes}
        count += len(closes)
    return count


# ---------------------------------------------------------------- the scenarios


async def test_a_deep_book_crash_ends_every_case_and_the_books_balance(
    pipeline: Pipeline,
) -> None:
    """200 accounts (longs at 2x-45x, isolated longs, shorts, accounts that only
    deposited); the index falls 30% in 60 ticks over 60 s; the maker requotes 48 BTC of
    bids under each tick."""
    line = pipeline
    rng = random.Random(11)
    people = await open_positions(
        line, rng, longs=150, isolated=4, shorts=36, flat=10, max_leverage=45, fund_usd=USD * 10**6
    )
    before = await line.risk_state()
    bottom = await crash(
        line,
        Maker(line, people.maker),
        steps=60,
        step_ms=1_000,
        drop_pct=30,
        levels=12,
        sz=4 * BTC_LOT,
    )
    log = await logs(line)
    await check_caught_up(line, log)
    after = await line.risk_state()

    by_case = check_every_case_ended(log)
    check_triggers_complete(before, people, log, bottom, line)
    check_books_balance(after, line.deposits, line)
    check_untouched(before, after, people, log)
    received, paid = check_fund_flows(before, after, log)
    stages = Counter(s.stage for steps in by_case.values() for s in steps)
    # a user would see: many cases, a good share of them sold into the book (the rest
    # gapped under the backstop threshold between two ticks); the fund earned fees
    assert len(log.triggers) >= 60, stages
    into_book = [
        c for c, found in by_case.items() if any(s.stage == "book" and s.px for s in found)
    ]
    assert len(into_book) >= len(log.triggers) // 3, stages
    assert received > 0 and paid <= received + before.accounts[FUND].collateral
    # accounts never triggered hold exactly what they opened
    triggered = {r.value.account for r in log.triggers}
    for who, sz in [*people.longs.items(), *people.isolated.items(), *people.shorts.items()]:
        if who not in triggered:
            assert after.accounts[who].positions["BTC"].szi == sz


async def test_b_thin_book_gaps_go_to_the_vault_and_adl_takes_profitable_shorts_in_rank(
    pipeline: Pipeline,
) -> None:
    """The same crash in ten 3% gaps six seconds apart, a maker quoting 0.06 BTC under
    each, and an insurance fund of $1: the vault takes what the book cannot, and ADL
    closes the most profitable, most leveraged shorts; a short opened at 60,000 (in
    loss all the way down) is never deleveraged."""
    line = pipeline
    rng = random.Random(12)
    people = await open_positions(
        line,
        rng,
        longs=120,
        isolated=6,
        shorts=30,
        flat=10,
        max_leverage=50,
        fund_usd=USD,
        trapped=True,
    )
    before = await line.risk_state()
    bottom = await crash(
        line, Maker(line, people.maker), steps=10, step_ms=6_000, drop_pct=30, levels=3, sz=2_000
    )
    log = await logs(line)
    await check_caught_up(line, log)
    after = await line.risk_state()

    by_case = check_every_case_ended(log)
    check_triggers_complete(before, people, log, bottom, line)
    check_books_balance(after, line.deposits, line)
    check_untouched(before, after, people, log)
    check_fund_flows(before, after, log)
    stages = Counter(s.stage for steps in by_case.values() for s in steps)
    assert stages["backstop"] > 0 and after.accounts[VAULT].positions["BTC"].szi > 0, stages
    assert check_adl(log, people.trapped) > 0, stages
    assert after.accounts[people.trapped].positions["BTC"].szi == -BTC_LOT


async def test_c_isolated_liquidation_spares_the_cross_account_and_accounts_without_positions(
    pipeline: Pipeline,
) -> None:
    """Owners of isolated longs at 40x-50x with $5,000 of free cross collateral each, and
    accounts that only deposited, through a 3% gap with a $1 fund."""
    line = pipeline
    rng = random.Random(13)
    people = await open_positions(
        line,
        rng,
        longs=1,
        isolated=12,
        shorts=4,
        flat=20,
        min_leverage=30,
        max_leverage=50,
        fund_usd=USD,
    )
    before = await line.risk_state()
    await crash(
        line, Maker(line, people.maker), steps=2, step_ms=1_000, drop_pct=6, levels=3, sz=2_000
    )
    log = await logs(line)
    await check_caught_up(line, log)
    after = await line.risk_state()

    check_every_case_ended(log)
    check_books_balance(after, line.deposits, line)
    check_untouched(before, after, people, log)
    liquidated = {r.value.account for r in log.triggers if r.value.market == "BTC"}
    assert len(liquidated & set(people.isolated)) >= 6


async def test_d_a_liquidator_killed_mid_case_finishes_it_exactly_once(
    pipeline: Pipeline,
) -> None:
    """A 4 BTC long at 40x goes into the book in 20% slices a second apart; the
    liquidator is SIGKILLed between two slices, a tick arrives while it is down, and a
    new process finishes the case: every order, transfer and step of a crash-free run
    of its log exactly once, and the account ends where the fills say."""
    line = pipeline
    rng = random.Random(14)
    maker, whale, short = address(rng), address(rng), address(rng)
    await line.deposit(FUND, 10**6 * USD)
    await line.deposit(VAULT, 10**7 * USD)
    await line.deposit(maker, 10**8 * USD)
    size = 4 * BTC_LOT
    await line.deposit(whale, size * START // 40 + size * START // 1_000)
    await line.deposit(short, size * START // 3)
    await line.send(topics.RISK_IN, [(whale, leverage(whale, 40)), (maker, leverage(maker, 50))])
    await line.index(START, T0)
    await line.send(topics.RISK_IN, [(short, order(short, False, START, size, "Gtc"))])

    async def asks_rest() -> bool:
        view = await line.book()
        return view is not None and bool(view.asks)

    await line.until("the short's ask", asks_rest)
    await line.send(topics.RISK_IN, [(whale, order(whale, True, START, size, "Ioc"))])
    # a deep ladder: 1 BTC every $10 from 98,190 down
    ladder = [(maker, order(maker, True, 981_900 - n * 100, BTC_LOT, "Gtc")) for n in range(30)]
    await line.send(topics.RISK_IN, ladder)

    async def ladder_rests() -> bool:
        view = await line.book()
        return view is not None and len(view.bids) == 20 and not view.asks

    await line.until("the ladder", ladder_rests)
    audit = line.settings.topics.name(topics.LIQUIDATION_AUDIT)
    del audit

    async def book_steps() -> list[LiquidationStep]:
        found = await read_topic(line.settings, topics.LIQUIDATION_AUDIT, quiet_s=0.1, timeout_s=5)
        return [r.value for r in found if r.value.stage == "book" and "filled" in r.value.detail]

    ts, px = T0 + 1_000, 982_000  # equity $3,020 against $3,928 of maintenance: the book
    await line.index(px, ts)
    await line.until("the first slice", lambda: _nonempty(book_steps()), timeout_s=60)
    ts, px = ts + 1_000, px - 500
    await line.index(px, ts)
    await asyncio.sleep(0.05)
    line.procs["liquidator"].kill()
    killed_ms = int(time.time() * 1000)
    ts, px = ts + 1_000, px - 500
    await line.index(px, ts)  # statuses pile up while no liquidator runs
    restarted_ms = int(time.time() * 1000)
    line.procs["liquidator"].start()
    for _ in range(30):
        await asyncio.sleep(0.5)
        if not await line.open_cases() and len(await book_steps()) >= 2:
            break
        ts, px = ts + 1_000, px - 500
        await line.index(px, ts)
    await line.quiet()
    log = await logs(line)
    await check_caught_up(line, log)

    by_case = check_every_case_ended(log)
    (case,) = [case_id(r) for r in log.triggers]
    steps = by_case[case]
    orders = [
        r
        for r in log.matcher_in
        if isinstance(r.value, NewOrder) and is_liquidation_order(r.value.oid)
    ]
    story = [(s.ts, s.stage, s.detail) for s in steps]
    assert len({r.value.oid for r in orders}) == len(orders), "a liquidation order sent twice"
    # slices went into the book both before the kill and after the restart
    assert min(r.timestamp for r in orders) < killed_ms < restarted_ms, story
    assert max(r.timestamp for r in orders) > restarted_ms, story
    # the liquidator's outputs are those of a crash-free run of its log, each once
    inputs = await read_topic(line.settings, topics.LIQUIDATIONS, decode=False, quiet_s=0.5)
    ref = reference_run(
        line.settings, inputs, topics.LIQUIDATIONS, liquidator_factory(line.settings)
    )
    seen = [
        r
        for topic in (topics.MATCHER_IN, topics.RISK_IN, topics.LIQUIDATION_AUDIT)
        for r in await read_topic(line.settings, topic, decode=False, quiet_s=0.3)
        if r.id.startswith(topics.LIQUIDATIONS + "/")
    ]
    counts = Counter(r.id for r in seen)
    assert counts == Counter(list(ref.outputs)), "outputs missing, doubled or unexpected"
    assert all(r.raw == ref.outputs[r.id][1] for r in seen)
    for p, state in ref.state.items():
        assert (await SnapshotStore(line.redis, line.settings.namespace, "liquidator").load(p)) == (
            ref.offsets[p],
            state,
        )
    # and the account is where its fills put it: each order's fill applied once
    after = await line.risk_state()
    legs = [r.value for r in log.risk_in if isinstance(r.value, FillLeg)]
    sold = sum(f.sz for f in legs if f.account == whale and is_liquidation_order(f.oid))
    taken = sum(f.sz for f in legs if f.account == whale and f.oid == 0)
    left = after.accounts[whale].positions.get("BTC")
    assert (left.szi if left else 0) == size - sold - taken, story
    assert sold >= size // 5 + size * 4 // 25, story  # at least two slices filled
    check_books_balance(after, line.deposits, line)


async def _nonempty(found: object) -> bool:
    return bool(await found)  # type: ignore[misc]


async def test_e_a_usdc_liability_behind_collateral_is_repaid_by_selling_it_to_the_vault(
    pipeline: Pipeline,
) -> None:
    """A trader with 0.1 BTC of collateral and no USDC buys 1 BTC at 100,000 and sells it
    at 96,000: USDC -45 - 4,000 - $43.20 = -$4,088.20 with no position left. Risk opens
    a case with no maintenance, the liquidator asks for the sale, and risk sells the
    fewest lots at the index after the 5% haircut to the vault: 0.04483 BTC x 96,000 x
    95% = $4,088.496 (0.04482 BTC would fall short)."""
    line = pipeline
    rng = random.Random(15)
    trader, short, bidder = address(rng), address(rng), address(rng)
    await line.deposit(VAULT, 10**6 * USD)
    await line.deposit(short, 50_000 * USD)
    await line.deposit(bidder, 200_000 * USD)
    asset = Deposit(ts=T0, account=trader, usd=0, asset="BTC", amount=BTC_LOT // 10)
    await line.send(topics.RISK_IN, [(trader, asset)])
    await line.index(START, T0)
    await line.send(topics.RISK_IN, [(short, order(short, False, START, BTC_LOT, "Gtc"))])

    async def book_is(asks: int, bids: int) -> bool:
        view = await line.book()
        return view is not None and (len(view.asks), len(view.bids)) == (asks, bids)

    await line.until("the short's ask", lambda: book_is(1, 0))
    await line.send(topics.RISK_IN, [(trader, order(trader, True, START, BTC_LOT, "Ioc"))])
    await line.until("the long", lambda: book_is(0, 0))
    await line.send(topics.RISK_IN, [(bidder, order(bidder, True, 960_000, BTC_LOT, "Gtc"))])
    await line.until("the bid", lambda: book_is(0, 1))
    await line.index(960_000, T0 + 1_000)

    async def marked() -> bool:
        return (await line.risk_state()).marks.get("BTC", 0) != START

    await line.until("the mark", marked)
    sell = order(trader, False, 960_000, BTC_LOT, "Ioc", ts=T0 + 1_001)
    await line.send(topics.RISK_IN, [(trader, sell)])

    async def repaid() -> bool:
        acct = (await line.risk_state()).accounts.get(trader)
        return acct is not None and acct.collateral >= 0 and not acct.positions.get("BTC")

    await line.until("the sale", repaid)
    await line.quiet()
    log = await logs(line)
    await check_caught_up(line, log)
    view = await line.risk_state()
    acct, vault = view.accounts[trader], view.accounts[VAULT]
    assert (acct.collateral, acct.assets) == (296_000, {"BTC": 5_517})
    assert vault.assets == {"BTC": 4_483}
    steps = [r.value for r in log.steps if r.value.account == trader]
    assert [(s.stage, s.shortfall) for s in steps] == [
        ("triggered", 0),
        ("cancel", 0),
        ("convert", 4_088_200_000),
        ("closed", 0),
    ]
    check_every_case_ended(log)
    check_books_balance(view, line.deposits, line)
