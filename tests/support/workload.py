"""Seeded risk.in workloads and the reference run of the pure core over them."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from libs.common import codec, topics
from libs.common.runtime import Context, Core
from libs.common.runtime.processor import emit_dead_letter
from libs.common.schemas import (
    CancelAll,
    CancelRequest,
    Deposit,
    FillLeg,
    IndexTick,
    MarketControl,
    MarkUpdate,
    ModifyRequest,
    NewOrder,
    PlaceOrder,
    PositionTransfer,
    ScheduleCancel,
    Withdraw,
)
from libs.common.settings import Settings
from libs.common.topics import partition_for
from services.risk.engine import RiskCore
from tests.support.bus import Record

Item = tuple[str, msgspec.Struct | bytes, int | None]


def risk_workload(seed: int, count: int, accounts: int = 40) -> list[Item]:
    """Deposits, orders (accepted and rejected), fill legs, marks on every partition,
    withdrawals and a few undecodable records, in a reproducible order."""
    rng = random.Random(seed)
    users = [f"0x{rng.getrandbits(160):040x}" for _ in range(accounts)]
    marks = {"BTC": 1_000_000, "ETH": 350_000}  # ticks: 100000.0 and 3500.00
    items: list[Item] = [
        (u, Deposit(ts=1, account=u, usd=rng.randint(1, 50) * 1_000_000_000), None) for u in users
    ]
    ts = 1
    while len(items) < count:
        ts += rng.randint(1, 50)
        user = rng.choice(users)
        market = rng.choice(("BTC", "ETH"))
        roll = rng.random()
        if roll < 0.35:
            px = marks[market] + rng.randint(-2000, 2000)
            items.append(
                (
                    user,
                    PlaceOrder(
                        ts=ts,
                        account=user,
                        market=market,
                        is_buy=rng.random() < 0.5,
                        px=px,
                        sz=rng.randint(1, 400) * 1000,
                        tif=rng.choice(("Gtc", "Ioc", "Alo")),
                    ),
                    None,
                )
            )
        elif roll < 0.70:
            items.append(
                (
                    user,
                    FillLeg(
                        ts=ts,
                        account=user,
                        market=market,
                        oid=rng.randint(1, 10_000),
                        is_buy=rng.random() < 0.5,
                        px=marks[market] + rng.randint(-500, 500),
                        sz=rng.randint(1, 300) * 1000,
                        is_maker=rng.random() < 0.5,
                        tid=len(items),
                        order_closed=rng.random() < 0.3,
                    ),
                    None,
                )
            )
        elif roll < 0.80:
            marks[market] = max(1000, marks[market] + rng.randint(-30_000, 30_000))
            mark = MarkUpdate(ts=ts, market=market, mark_px=marks[market], index_px=marks[market])
            for p in range(4):
                items.append((market, mark, p))
        elif roll < 0.90:
            items.append((user, Deposit(ts=ts, account=user, usd=rng.randint(1, 10**9)), None))
        elif roll < 0.99:
            items.append((user, Withdraw(ts=ts, account=user, usd=rng.randint(1, 10**10)), None))
        else:
            items.append((user, b"\x00garbage" + bytes([rng.randrange(256)]), None))
    return items


@dataclass
class Reference:
    """What a run with no crash must produce: outputs by id, and the final state."""

    outputs: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    sequences: dict[tuple[str, int, int], list[str]] = field(default_factory=dict)
    state: dict[int, dict[str, bytes]] = field(default_factory=dict)
    offsets: dict[int, int] = field(default_factory=dict)


def reference_run(
    settings: Settings,
    inputs: list[Record],
    input_topic: str = topics.RISK_IN,
    factory: Callable[[int], Core] | None = None,
) -> Reference:
    """Apply the recorded input log to fresh cores in-process, as a crash-free run would.

    Undecodable records become dead letters, exactly as the runtime does."""
    markets = settings.markets
    make = factory or (lambda p: RiskCore(markets, p))
    ref = Reference()
    decoder = codec.decoder(input_topic)
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for r in inputs:
        by_partition[r.partition].append(r)
    for p, records in sorted(by_partition.items()):
        core = make(p)
        ctx = Context(settings.topics, input_topic, p)
        state: dict[str, bytes] = {}
        for r in sorted(records, key=lambda r: r.offset):
            ctx.at(r.offset, live=True)
            try:
                message = decoder.decode(r.raw)
            except codec.DecodeError as exc:
                emit_dead_letter(
                    ctx,
                    input_topic,
                    r.topic,
                    r.partition,
                    r.offset,
                    r.timestamp,
                    r.raw,
                    f"decode: {exc}",
                )
            else:
                core.apply(message, ctx)
            for out in ctx.drain():
                ref.outputs[out.id] = (out.topic, codec.encode(out.message))
                ref.sequences.setdefault((out.topic, out.partition, p), []).append(out.id)
        for k, v in core.take_changes().items():
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        ref.state[p] = state
        ref.offsets[p] = records[-1].offset + 1
    return ref


def partition_of(account: str, settings: Settings) -> int:
    return partition_for(account, settings.topics.partitions(topics.RISK_IN))


def matcher_workload(seed: int, count: int, accounts: int = 30) -> list[Item]:
    """Order flow for the matcher: limit (GTC, IOC, ALO), market, reduce-only and TP/SL
    orders, cancels by oid and cloid, modifies, cancel-alls, dead man's switches,
    transfers, halts, and index ticks (some not valid), in a reproducible order."""
    rng = random.Random(seed)
    users = [f"0x{rng.getrandbits(160):040x}" for _ in range(accounts)]
    index = {"BTC": 1_000_000, "ETH": 350_000}
    live: list[tuple[str, str, int, str | None]] = []
    items: list[Item] = []
    ts = 1_700_000_000_000
    oid = 0
    while len(items) < count:
        ts += rng.randint(1, 400)
        market = rng.choice(("BTC", "ETH"))
        user = rng.choice(users)
        roll = rng.random()
        oid += 1
        if roll < 0.45:
            kind = rng.choice(("limit", "limit", "limit", "market", "trigger"))
            is_buy = rng.random() < 0.5
            px = index[market] + rng.randint(-400, 400) * (10 if market == "BTC" else 1)
            cloid = f"0x{rng.getrandbits(128):032x}" if rng.random() < 0.3 else None
            order = NewOrder(
                ts=ts,
                oid=oid,
                account=user,
                market=market,
                is_buy=is_buy,
                px=0 if kind == "market" else px,
                sz=rng.randint(1, 50) * 100,
                tif=rng.choice(("Gtc", "Gtc", "Ioc", "Alo")),
                reduce_only=rng.random() < 0.1,
                cloid=cloid,
                kind=kind,
                trigger_px=px if kind == "trigger" else 0,
                tpsl=rng.choice(("tp", "sl")) if kind == "trigger" else "",
            )
            items.append((market, order, None))
            live.append((user, market, oid, cloid))
        elif roll < 0.60 and live:
            user, market, target, cloid = live.pop(rng.randrange(len(live)))
            by_cloid = cloid if cloid and rng.random() < 0.5 else None
            items.append(
                (
                    market,
                    CancelRequest(ts=ts, oid=target, account=user, market=market, cloid=by_cloid),
                    None,
                )
            )
        elif roll < 0.75 and live:
            user, market, target, _ = rng.choice(live)
            px = index[market] + rng.randint(-400, 400) * (10 if market == "BTC" else 1)
            items.append(
                (
                    market,
                    ModifyRequest(
                        ts=ts,
                        oid=target,
                        account=user,
                        market=market,
                        is_buy=rng.random() < 0.5,
                        px=px,
                        sz=rng.randint(1, 50) * 100,
                    ),
                    None,
                )
            )
        elif roll < 0.90:
            index[market] = max(1000, index[market] + rng.randint(-3000, 3000))
            status = "valid" if rng.random() < 0.9 else "stale"
            items.append(
                (market, IndexTick(ts=ts, market=market, px=index[market], status=status), None)
            )
        elif roll < 0.93:
            items.append(
                (
                    market,
                    CancelAll(ts=ts, account=user, market=market, status="liquidatedCanceled"),
                    None,
                )
            )
        elif roll < 0.95:
            items.append((market, ScheduleCancel(ts=ts, account=user, at=ts + 2000), None))
        elif roll < 0.98:
            other = rng.choice(users)
            items.append(
                (
                    market,
                    PositionTransfer(
                        ts=ts,
                        market=market,
                        from_account=user,
                        to_account=other,
                        from_is_long=rng.random() < 0.5,
                        sz=rng.randint(1, 20) * 100,
                        px=index[market],
                        kind=rng.choice(("backstop", "adl")),
                    ),
                    None,
                )
            )
        else:
            action = rng.choice(("halt", "resume", "resume"))
            items.append((market, MarketControl(ts=ts, market=market, action=action), None))
    return items


def liquidator_workload(seed: int, count: int) -> list[Item]:
    """The liquidations log of real waterfalls: risk, matcher and liquidator cores run
    in-process over seeded rounds (traders open positions against each other and a
    market maker, then the mark gaps or drifts), and every record that reached the
    liquidations topic is kept in order: triggers, statuses, order and transfer reports,
    insurance answers, ADL candidates."""
    from libs.common.state import BACKSTOP_VAULT_ACCOUNT, INSURANCE_FUND_ACCOUNT
    from services.liquidator.cases import LiquidatorCore
    from services.matcher.engine import MatcherCore
    from tests.unit.cores import Bus

    rng = random.Random(seed)
    markets = Settings().markets
    bus = Bus()
    bus.attach(topics.RISK_IN, lambda p: RiskCore(markets, p))
    bus.attach(topics.MATCHER_IN, lambda p: MatcherCore(markets, p))
    bus.attach(topics.LIQUIDATIONS, LiquidatorCore)
    keys = {partition_for(f"k{i}", 4): f"k{i}" for i in range(64)}
    maker = f"0x{rng.getrandbits(160):040x}"
    ts = 1
    for who, usd in ((maker, 10**13), (INSURANCE_FUND_ACCOUNT, 2 * 10**9)):
        bus.publish(topics.RISK_IN, who, Deposit(ts=ts, account=who, usd=usd))
    bus.publish(
        topics.RISK_IN,
        BACKSTOP_VAULT_ACCOUNT,
        Deposit(ts=ts, account=BACKSTOP_VAULT_ACCOUNT, usd=10**13),
    )

    def mark(px: int) -> None:
        for p in range(4):
            bus.publish(
                topics.RISK_IN, keys[p], MarkUpdate(ts=ts, market="BTC", mark_px=px, index_px=0)
            )

    def place(account: str, is_buy: bool, px: int, sz: int, tif: str) -> None:
        bus.publish(
            topics.RISK_IN,
            account,
            PlaceOrder(ts=ts, account=account, market="BTC", is_buy=is_buy, px=px, sz=sz, tif=tif),  # type: ignore[arg-type]
        )

    def liquidations() -> list[Item]:
        return [
            (o.key.decode(), o.message, o.partition)
            for o in bus.log
            if o.topic == topics.LIQUIDATIONS
        ]

    while len(found := liquidations()) < count:
        price = 1_000_000
        mark(price)
        traders = [f"0x{rng.getrandbits(160):040x}" for _ in range(6)]
        for t in traders:
            bus.publish(
                topics.RISK_IN, t, Deposit(ts=ts, account=t, usd=rng.randint(1, 12) * 10**9)
            )
        for _ in range(8):
            seller, buyer = rng.sample(traders, 2)
            sz = rng.randint(1, 6) * 10_000
            place(seller, False, price, sz, "Gtc")
            place(buyer, True, price, sz, "Ioc")
        for step in range(4):
            place(maker, True, price - 5_000 * (step + 1), rng.randint(1, 4) * 10_000, "Gtc")
        for _ in range(rng.randint(3, 8)):
            ts += 500
            price = max(800_000, min(1_200_000, price + rng.randint(-50_000, 30_000)))
            mark(price)
        ts += 10_000
    return found[:count]
