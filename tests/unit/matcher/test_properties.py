"""Properties of random order flow through the matcher core.

Every order type, cancels (by id and client id), modifies, oracle ticks (valid or not),
backstop/ADL transfers, cancel-all, dead man's switches and halts, at random event
times, from four accounts in BTC. After every record: the book is not crossed, every
fill is at the resting order's price and within the taker's limit, price-time priority
held, the published deltas rebuild the book, and positions are the sum of the fills;
reduce-only fills never grow a position. Over a whole run: every lot submitted is
filled, resting or reported canceled; a second run is byte-for-byte identical, and a
restart from persisted state anywhere continues identically.
"""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.runtime import Output
from libs.common.schemas import (
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelRequest,
    ChildOrder,
    FillLeg,
    IndexTick,
    Level,
    MarketControl,
    Message,
    ModifyRequest,
    NewOrder,
    OrderResult,
    PositionTransfer,
    ScheduleCancel,
)
from services.matcher.book import Book
from services.matcher.engine import MatcherCore
from services.matcher.market import MarketEngine
from services.matcher.structs import OrderRecord
from tests.unit.cores import Driver, of_type, restart_midway
from tests.unit.matcher.scenario import ALICE, BOB, CAROL, DAVE, MARKETS, T0

ACCOUNTS = [ALICE, BOB, CAROL, DAVE]
MID = 1_000_000  # 100,000.0 in ticks
ANSWERED = (NewOrder, CancelRequest, ModifyRequest)
NOT_ABOUT_THE_ORDER = {"cancelRejected", "modifyRejected", "transferRejected"}

KINDS = (
    ["limit"] * 8
    + ["market", "trigger", "cancel"] * 2
    + ["tick"] * 3
    + ["transfer"] * 2
    + ["parent", "cancel_cloid", "modify", "cancel_all", "schedule", "control"]
)


def _price(draw: st.DrawFn, is_buy: bool | None = None) -> int:
    """Eleven prices a dollar apart around 100,000; buyers lean up, sellers down, so
    orders cross often."""
    low, high = (-3, 5) if is_buy else (-5, 3) if is_buy is False else (-5, 5)
    return MID + 10 * draw(st.integers(low, high))


def _size(draw: st.DrawFn) -> int:
    return 100 * draw(st.integers(1, 30))  # 0.001 to 0.03 BTC, $100 to $3,000


@st.composite
def flows(draw: st.DrawFn, *, modify: bool = True) -> list[Message]:
    """Up to 60 records at random event times (1 ms to 10 min apart)."""
    kinds = [k for k in KINDS if modify or k != "modify"]
    messages: list[Message] = []
    ts = T0
    resume_in = 0  # a halt is lifted a few records later
    for step in range(draw(st.integers(1, 60))):
        ts += draw(st.sampled_from([1, 1_000, 5_000, 600_000]))
        oid = step + 1
        account = draw(st.sampled_from(ACCOUNTS))
        kind = draw(st.sampled_from(kinds))
        if resume_in:
            resume_in -= 1
            if not resume_in:
                kind = "resume"
        cloid = f"0x{oid:x}" if draw(st.booleans()) else None
        is_buy = draw(st.booleans())
        if kind in ("limit", "parent"):
            children: tuple[ChildOrder, ...] = ()
            if kind == "parent":
                children = (
                    ChildOrder(
                        oid=100_000 + oid,
                        is_buy=draw(st.booleans()),
                        px=0,
                        sz=_size(draw),
                        trigger_px=_price(draw),
                        tpsl=draw(st.sampled_from(["tp", "sl"])),
                    ),
                )
            messages.append(
                NewOrder(
                    ts=ts,
                    oid=oid,
                    account=account,
                    market="BTC",
                    is_buy=is_buy,
                    px=_price(draw, is_buy),
                    sz=_size(draw),
                    tif=draw(st.sampled_from(["Gtc", "Gtc", "Ioc", "Alo"])),
                    reduce_only=draw(st.integers(0, 4)) == 0,
                    cloid=cloid,
                    req_id=f"r{oid}",
                    grouping="normalTpsl" if children else "na",
                    children=children,
                )
            )
        elif kind == "market":
            messages.append(
                NewOrder(
                    ts=ts,
                    oid=oid,
                    account=account,
                    market="BTC",
                    is_buy=draw(st.booleans()),
                    px=draw(st.sampled_from([0, _price(draw)])),
                    sz=_size(draw),
                    tif="Ioc",
                    kind="market",
                    reduce_only=draw(st.integers(0, 4)) == 0,
                    slippage_ppm=draw(st.sampled_from([0, 10, 100])),
                    req_id=f"r{oid}",
                )
            )
        elif kind == "trigger":
            is_market = draw(st.booleans())
            messages.append(
                NewOrder(
                    ts=ts,
                    oid=oid,
                    account=account,
                    market="BTC",
                    is_buy=draw(st.booleans()),
                    px=0 if is_market else _price(draw),
                    sz=_size(draw),
                    kind="trigger",
                    trigger_px=_price(draw),
                    tpsl=draw(st.sampled_from(["tp", "sl"])),
                    trigger_is_market=is_market,
                    reduce_only=True,
                    grouping=draw(st.sampled_from(["na", "positionTpsl"])),
                    cloid=cloid,
                    req_id=f"r{oid}",
                )
            )
        elif kind == "cancel":
            target = draw(st.integers(1, oid))
            messages.append(
                CancelRequest(ts=ts, oid=target, account=account, market="BTC", req_id=f"r{oid}")
            )
        elif kind == "cancel_cloid":
            target = draw(st.integers(1, oid))
            messages.append(
                CancelRequest(
                    ts=ts,
                    oid=0,
                    account=account,
                    market="BTC",
                    req_id=f"r{oid}",
                    cloid=f"0x{target:x}",
                )
            )
        elif kind == "modify":
            messages.append(
                ModifyRequest(
                    ts=ts,
                    oid=draw(st.integers(1, oid)),
                    account=account,
                    market="BTC",
                    is_buy=draw(st.booleans()),
                    px=_price(draw),
                    sz=_size(draw),
                    tif=draw(st.sampled_from(["Gtc", "Alo", "Ioc"])),
                    req_id=f"r{oid}",
                )
            )
        elif kind == "tick":
            messages.append(
                IndexTick(
                    ts=ts,
                    market="BTC",
                    px=MID + 10 * draw(st.integers(-15, 15)),
                    status=draw(st.sampled_from(["valid"] * 5 + ["stale"])),
                    external_perp_mid=draw(st.sampled_from([0, 0, _price(draw)])),
                )
            )
        elif kind == "transfer":
            messages.append(
                PositionTransfer(
                    ts=ts,
                    market="BTC",
                    from_account=account,
                    to_account=draw(st.sampled_from(ACCOUNTS)),
                    from_is_long=draw(st.booleans()),
                    sz=100 * draw(st.integers(1, 3)),
                    px=_price(draw),
                    kind=draw(st.sampled_from(["backstop", "adl"])),
                    req_id=f"r{oid}",
                )
            )
        elif kind == "cancel_all":
            messages.append(
                CancelAll(
                    ts=ts,
                    account=account,
                    market=draw(st.sampled_from(["BTC", ""])),
                    status=draw(st.sampled_from(["canceled", "liquidatedCanceled"])),
                )
            )
        elif kind == "schedule":
            at = draw(st.sampled_from([0, ts + 1_000, ts + 600_000]))
            messages.append(ScheduleCancel(ts=ts, account=account, at=at))
        elif kind == "control":
            resume_in = draw(st.integers(1, 3))
            messages.append(MarketControl(ts=ts, market="BTC", action="halt"))
        else:
            messages.append(MarketControl(ts=ts, market="BTC", action="resume"))
    return messages


def _matcher() -> Driver:
    return Driver(MatcherCore(MARKETS, 0), "matcher.in")


def _engine(driver: Driver) -> MarketEngine | None:
    core = driver.core
    assert isinstance(core, MatcherCore)
    return core.engines.get("BTC")


class Observer:
    """Checks one record's outputs against the book before and after it."""

    def __init__(self) -> None:
        self.l2: dict[bool, dict[int, tuple[int, int]]] = {True: {}, False: {}}
        self.positions: dict[str, int] = {}
        self.reduce_only: set[int] = set()
        self.seq = 0

    def check(
        self,
        msg: Message,
        outputs: list[Output],
        before: list[OrderRecord],
        engine: MarketEngine | None,
    ) -> None:
        if isinstance(msg, NewOrder) and (msg.reduce_only or msg.kind == "trigger"):
            self.reduce_only.add(msg.oid)
            self.reduce_only.update(c.oid for c in msg.children)
        elif isinstance(msg, NewOrder):
            self.reduce_only.update(c.oid for c in msg.children)  # children are reduce-only
        results = of_type(outputs, OrderResult)
        if isinstance(msg, ANSWERED):
            assert len([r for r in results if r.req_id == msg.req_id]) == 1, results
        if isinstance(msg, PositionTransfer):  # two legs, or a refusal
            legs = [o.message.kind for o in outputs if isinstance(o.message, FillLeg)]
            refused = [r.status for r in results if r.req_id == msg.req_id]
            assert (legs, refused) in (([msg.kind] * 2, []), ([], ["transferRejected"]))
        if engine is None:
            return
        book = engine.book
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask, "the book is crossed"
        self._fills(outputs, results, before, book)
        self._deltas(outputs, book)

    def _fills(
        self,
        outputs: list[Output],
        results: list[OrderResult],
        before: list[OrderRecord],
        book: Book,
    ) -> None:
        legs = of_type(outputs, FillLeg)
        resting_px = {o.oid: o.px for o in before}
        resting_px.update({r.oid: r.px for r in results if r.status == "resting"})
        limit_of = {r.oid: r.px for r in results if r.px}
        still = set(book.orders)
        taker_groups: list[tuple[FillLeg, list[FillLeg]]] = []
        for leg in legs:
            if leg.kind == "trade":
                if not leg.is_maker:
                    taker_groups.append((leg, []))
                else:
                    assert taker_groups and taker_groups[-1][0].tid == leg.tid
                    taker_groups[-1][1].append(leg)
            self._position(leg)
        merged: list[tuple[FillLeg, list[FillLeg]]] = []
        for taker, makers in taker_groups:
            if merged and merged[-1][0].oid == taker.oid:
                merged[-1][1].extend(makers)
            else:
                merged.append((taker, list(makers)))
        for taker, makers in merged:
            prices = [m.px for m in makers]
            assert prices == sorted(prices, reverse=not taker.is_buy), "worse price first"
            for m in makers:
                assert m.account != taker.account, "a self-trade"
                assert m.px == resting_px[m.oid], "a fill away from the resting price"
                limit = limit_of.get(taker.oid)
                if limit:
                    assert m.px <= limit if taker.is_buy else m.px >= limit
            # Whatever rested ahead of the last order it took (a better price, or the same
            # price earlier) must be gone: filled, or expired by self-trade prevention.
            last = next((o for o in before if o.oid == makers[-1].oid), None)
            if last is not None:
                sign = 1 if taker.is_buy else -1
                ahead = [
                    o.oid
                    for o in before
                    if o.is_buy != taker.is_buy
                    and (sign * o.px, o.ts, o.oid) < (sign * last.px, last.ts, last.oid)
                ]
                assert not [oid for oid in ahead if oid in still], "price-time priority"

    def _position(self, leg: FillLeg) -> None:
        start = self.positions.get(leg.account, 0)
        end = start + (leg.sz if leg.is_buy else -leg.sz)
        if leg.oid in self.reduce_only:
            assert abs(end) < abs(start) and (end == 0 or (end > 0) == (start > 0)), leg
        self.positions[leg.account] = end

    def _deltas(self, outputs: list[Output], book: Book) -> None:
        for delta in of_type(outputs, BookDelta):
            assert delta.seq == self.seq + 1
            self.seq = delta.seq
            for is_bid, levels in ((True, delta.bids), (False, delta.asks)):
                for level in levels:
                    if level.sz:
                        self.l2[is_bid][level.px] = (level.sz, level.n)
                    else:
                        self.l2[is_bid].pop(level.px, None)
        bids, asks = book.depth(1 << 30)
        for is_bid, depth in ((True, bids), (False, asks)):
            assert sorted(self.l2[is_bid].items()) == sorted((p, (s, n)) for p, s, n in depth)
        for snapshot in of_type(outputs, BookSnapshot):
            assert (snapshot.bids, snapshot.asks) == (
                tuple(Level(*level) for level in bids),
                tuple(Level(*level) for level in asks),
            )


def _run(inputs: list[Message]) -> tuple[Driver, list[Output], Observer]:
    driver, observer = _matcher(), Observer()
    outputs: list[Output] = []
    for msg in inputs:
        engine = _engine(driver)
        before = [o.record() for o in engine.book.resting()] if engine else []
        out = driver.send(msg)
        observer.check(msg, out, before, _engine(driver))
        outputs += out
    return driver, outputs, observer


@given(inputs=flows())
@settings(max_examples=80, deadline=None)
def test_random_flow_keeps_the_book_sound_fills_fair_and_positions_exact(
    inputs: list[Message],
) -> None:
    driver, _, observer = _run(inputs)
    engine = _engine(driver)
    if engine is not None:
        positions = {a: s for a, s in observer.positions.items() if s}
        assert engine.positions.sizes == positions
        assert sum(positions.values()) == 0
        assert engine.positions.open_interest == sum(s for s in positions.values() if s > 0)


@given(inputs=flows(modify=False))
@settings(max_examples=80, deadline=None)
def test_every_lot_submitted_is_filled_resting_or_reported_canceled(
    inputs: list[Message],
) -> None:
    driver, outputs, _ = _run(inputs)
    engine = _engine(driver)
    core_book = {o.oid: o for o in engine.book.resting()} if engine else {}
    legs = of_type(outputs, FillLeg)
    results = [r for r in of_type(outputs, OrderResult) if r.status not in NOT_ABOUT_THE_ORDER]
    for msg in inputs:
        if not isinstance(msg, NewOrder) or msg.kind == "trigger":
            continue
        mine = [leg for leg in legs if leg.oid == msg.oid and leg.kind == "trade"]
        filled = sum(leg.sz for leg in mine)
        last = [r for r in results if r.oid == msg.oid][-1]
        if msg.oid in core_book:
            resting = core_book[msg.oid].sz
            assert last.status == "resting"
            assert not any(leg.order_closed for leg in mine)
            if msg.reduce_only:
                assert filled + resting <= msg.sz
            else:
                assert filled + resting == msg.sz
        elif last.status == "resting":  # it rested, then its last lot was taken
            assert any(leg.order_closed for leg in mine)
            assert filled <= msg.sz if msg.reduce_only else filled == msg.sz
        else:  # it closed with a report: what it had not filled was canceled
            assert last.filled_sz == filled
            assert last.resting_sz == 0
            canceled = msg.sz - filled
            assert canceled >= 0
            if last.status == "filled" and msg.tif != "Ioc" and msg.kind == "limit":
                assert canceled == 0 or msg.reduce_only


@given(inputs=flows())
@settings(max_examples=40, deadline=None)
def test_the_same_input_gives_the_same_output_byte_for_byte(inputs: list[Message]) -> None:
    encoder = msgspec.msgpack.Encoder()

    def run() -> tuple[list[tuple[str, int, bytes, bytes, str]], dict[str, bytes | None]]:
        driver = _matcher()
        out = [
            (o.topic, o.partition, o.key, encoder.encode(o.message), o.id)
            for msg in inputs
            for o in driver.send(msg)
        ]
        return out, driver.core.take_changes()

    assert run() == run()


@given(inputs=flows(), split=st.integers(0, 60), commits=st.sets(st.integers(0, 60)))
@settings(max_examples=60, deadline=None)
def test_a_restarted_matcher_behaves_exactly_like_the_one_that_never_stopped(
    inputs: list[Message], split: int, commits: set[int]
) -> None:
    original = _matcher()
    restarted = restart_midway(
        original, lambda p: MatcherCore(MARKETS, p), list(inputs), split, commits
    )
    a, b = _engine(original), _engine(restarted)
    if a is not None and b is not None:
        assert a.book.resting() == b.book.resting()
        assert a.positions.sizes == b.positions.sizes
        assert a.triggers == b.triggers
        assert a.snapshot() == b.snapshot()  # all of it: header, queues, TP/SLs
    assert original.core.take_changes() == restarted.core.take_changes()


@given(inputs=flows())
@settings(max_examples=30, deadline=None)
def test_a_replay_rebuilds_the_same_state_without_emitting(inputs: list[Message]) -> None:
    live, replay = _matcher(), _matcher()
    for msg in inputs:
        live.send(msg)
        assert replay.send(msg, live=False) == []
    assert live.core.take_changes() == replay.core.take_changes()
