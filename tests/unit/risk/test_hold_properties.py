"""Holds over random order flow: never stale.

Risk reprices only what a change can move (``services.risk.holds.Holds``): one order's
hold when it alone appeared, changed or went away, the whole market when the position,
leverage or fees changed. Two accounts with deep pockets trade BTC and ETH with orders
on both sides of long and short positions, reduce-only and trigger orders, modifies and
their answers, partial and full fills, cancels, leverage and fee changes; after every
step a recomputation from scratch changes no hold, and none is negative.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.schemas import (
    FeeTier,
    FillLeg,
    ModifyOrder,
    NewOrder,
    OrderResult,
    PlaceOrder,
    UpdateLeverage,
)
from libs.common.state import AccountState
from services.risk.holds import reprice_holds
from tests.unit.risk.support import ALICE, BOB, MARKETS, core, deposit, mark, risk

WHO = [ALICE, BOB]
BASE = {"BTC": 1_000_000, "ETH": 350_000}
# lots: a few sizes of 0.01 to 0.08 BTC, so that orders and positions often claim the
# same lots; now and then 120 BTC ($12M: the second margin tier)
SIZES = st.sampled_from([1_000, 2_000, 3_000, 5_000, 8_000, 1_000, 2_000, 12_000_000])

who = st.sampled_from([ALICE, ALICE, ALICE, BOB])
side = st.sampled_from(["buy", "sell", "reduce", "reduce"])  # reduce: against the position
market = st.sampled_from(["BTC", "BTC", "BTC", "ETH"])
pick = st.integers(0, 40)  # which of the account's orders so far

place = st.tuples(
    st.just("place"),
    who,
    market,
    side,
    st.integers(-3_000, 3_000),
    SIZES,
    st.sampled_from([False, False, False, True]),
    st.sampled_from(["limit", "limit", "limit", "trigger", "market"]),
)
rest = st.tuples(st.just("rest"), who, pick, SIZES)
end = st.tuples(
    st.just("end"),
    who,
    pick,
    st.sampled_from(["canceled", "filled", "marginCanceled", "iocCancelRejected"]),
)
modify = st.tuples(
    st.just("modify"),
    who,
    pick,
    side,
    st.integers(-3_000, 3_000),
    SIZES,
    st.sampled_from([False, False, True]),
)
answer = st.tuples(
    st.just("answer"),
    who,
    pick,
    st.sampled_from(["resting", "resting", "modifyRejected", "canceled"]),
    SIZES,
)
fill = st.tuples(
    st.just("fill"), who, market, pick, st.booleans(), SIZES, st.booleans(), st.booleans()
)
leverage = st.tuples(st.just("leverage"), who, market, st.integers(1, 50))
fee = st.tuples(st.just("fee"), who, st.integers(0, 800))
# mostly order flow, which is what the fast paths handle
KINDS = {"place": place, "rest": rest, "end": end, "modify": modify, "answer": answer}
KINDS |= {"fill": fill, "leverage": leverage, "fee": fee}
WEIGHTS = ["place"] * 6 + ["rest", "end", "end", "modify", "modify", "modify", "answer"]
WEIGHTS += ["fill", "fill", "leverage", "fee"]
steps = st.sampled_from(WEIGHTS).flatmap(KINDS.__getitem__)


class Flow:
    """One risk core and the oids each account has been given."""

    def __init__(self) -> None:
        self.driver = risk()
        self.oids: dict[str, list[int]] = {a: [] for a in WHO}
        for address in WHO:
            self.driver.send(deposit(address, "50000000"))
        self.driver.send(mark("100000"))
        self.driver.send(mark("3500", "ETH"))

    def oid(self, address: str, index: int) -> int:
        """One of the account's open orders (by age), or of those it ever had."""
        acct = core(self.driver).accounts[address]
        oids = sorted(acct.orders) if acct.orders and index % 5 else self.oids[address]
        return oids[index % len(oids)] if oids else 1

    def buys(self, address: str, name: str, side: str) -> bool:
        """Whether an order on ``side`` buys; "reduce" is the side against the position."""
        if side != "reduce":
            return side == "buy"
        pos = core(self.driver).accounts[address].positions.get(name)
        return pos is not None and pos.szi < 0

    def order_market(self, address: str, oid: int) -> str:
        found = core(self.driver).accounts[address].orders.get(oid)
        return found.market if found is not None else "BTC"

    def run(self, ts: int, step: tuple[Any, ...]) -> None:
        kind, address = step[0], step[1]
        message: Any
        if kind == "place":
            _, _, name, way, offset, sz, reduce_only, order_kind = step
            px = BASE[name] + offset
            message = PlaceOrder(
                ts=ts,
                account=address,
                market=name,
                is_buy=self.buys(address, name, way),
                px=0 if order_kind == "market" else px,
                sz=sz,
                reduce_only=reduce_only,
                kind=order_kind,
                trigger_px=px if order_kind == "trigger" else 0,
            )
        elif kind in ("rest", "end"):
            _, _, index, detail = step
            oid = self.oid(address, index)
            status = "resting" if kind == "rest" else detail
            message = OrderResult(
                ts=ts,
                account=address,
                market=self.order_market(address, oid),
                oid=oid,
                status=status,
                filled_sz=0,
                resting_sz=detail if kind == "rest" else 0,
            )
        elif kind == "modify":
            _, _, index, way, offset, sz, reduce_only = step
            oid = self.oid(address, index)
            name = self.order_market(address, oid)
            message = ModifyOrder(
                ts=ts,
                account=address,
                market=name,
                oid=oid,
                is_buy=self.buys(address, name, way),
                px=BASE[name] + offset,
                sz=sz,
                reduce_only=reduce_only,
                req_id=f"m{ts}",
            )
        elif kind == "answer":  # the matcher's answer to the order's pending modify
            _, _, index, status, resting = step
            oid = self.oid(address, index)
            order = core(self.driver).accounts[address].orders.get(oid)
            pending = order.modify if order is not None else None
            message = OrderResult(
                ts=ts,
                account=address,
                market=order.market if order is not None else "BTC",
                oid=oid,
                status=status,
                filled_sz=0,
                resting_sz=resting if status == "resting" else 0,
                req_id=pending.req_id if pending is not None else "",
            )
        elif kind == "fill":
            _, _, name, index, is_buy, sz, maker, closed = step
            oid = self.oid(address, index) if maker else 0
            order = core(self.driver).accounts[address].orders.get(oid)
            if order is not None:  # a maker leg trades the order as it rests
                name, is_buy = order.market, order.is_buy
            message = FillLeg(
                ts=ts,
                account=address,
                market=name,
                oid=oid,
                is_buy=is_buy,
                px=BASE[name],
                sz=sz,
                is_maker=maker,
                tid=ts,
                order_closed=closed,
            )
        elif kind == "leverage":
            _, _, name, leverage = step
            message = UpdateLeverage(
                ts=ts, account=address, market=name, leverage=leverage, is_cross=True
            )
        else:
            taker = step[2]
            message = FeeTier(ts=ts, account=address, taker_ppm=taker, maker_ppm=taker // 3)
        for out in self.driver.send(message):
            if isinstance(out.message, NewOrder):
                self.oids[address].append(out.message.oid)


def _stale(flow: Flow) -> dict[int, tuple[int, int]]:
    """Orders whose hold a recomputation from scratch would change: oid -> (kept, fresh)."""
    c = core(flow.driver)
    wrong: dict[int, tuple[int, int]] = {}
    for address in WHO:
        acct = c.accounts[address]
        fresh = msgspec.msgpack.decode(msgspec.msgpack.encode(acct), type=AccountState)
        for name in sorted({o.market for o in fresh.orders.values()}):
            spec = MARKETS.by_name(name)
            reprice_holds(fresh, spec, *c._hold_terms(fresh, spec))
        for oid, order in acct.orders.items():
            assert order.hold >= 0
            if fresh.orders[oid].hold != order.hold:
                wrong[oid] = (order.hold, fresh.orders[oid].hold)
    return wrong


@given(history=st.lists(steps, min_size=10, max_size=80))
@settings(max_examples=300, deadline=None)
def test_holds_are_never_stale_whatever_the_order_flow(history: list[tuple[Any, ...]]) -> None:
    flow = Flow()
    for ts, step in enumerate(history, start=10):
        flow.run(ts, step)
        assert _stale(flow) == {}, f"stale holds after {step}"
