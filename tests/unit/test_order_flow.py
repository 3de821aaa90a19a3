"""Risk and matcher cores wired by an in-memory bus: an order's whole life, end to end.

Every partition of risk.in and matcher.in gets its own core, and records are routed with
the production partitioner, so accounts and markets land where they would in Kafka.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common import topics
from libs.common.markets import load_markets
from libs.common.money import usd_to_units
from libs.common.schemas import (
    AccountFill,
    CancelOrder,
    Deposit,
    IndexTick,
    NewOrder,
    OrderUpdate,
    PlaceOrder,
    Tif,
    Trade,
)
from libs.common.state import AccountState
from services.matcher.engine import MatcherCore
from services.risk.engine import RiskCore
from tests.unit.cores import Bus, of_type

MARKETS = load_markets()
BTC = MARKETS.by_name("BTC")
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
CAROL = "0x" + "c3" * 20
ACCOUNTS = [ALICE, BOB, CAROL]


def exchange() -> Bus:
    bus = Bus()
    bus.attach(topics.RISK_IN, lambda p: RiskCore(MARKETS, p))
    bus.attach(topics.MATCHER_IN, lambda p: MatcherCore(MARKETS, p))
    return bus


def accounts(bus: Bus) -> dict[str, AccountState]:
    found: dict[str, AccountState] = {}
    for (topic, _), driver in bus.drivers.items():
        if topic == topics.RISK_IN:
            core: RiskCore = driver.core  # type: ignore[assignment]
            found.update({a: core.accounts[a] for a in core.accounts.keys()})
    return found


def venue_fees(bus: Bus) -> int:
    return sum(
        d.core.venue.fees  # type: ignore[attr-defined]
        for (topic, _), d in bus.drivers.items()
        if topic == topics.RISK_IN
    )


def resting(bus: Bus) -> dict[str, dict[int, int]]:
    """Each account's resting orders in the books: oid to remaining lots."""
    found: dict[str, dict[int, int]] = {}
    for (topic, _), driver in bus.drivers.items():
        if topic == topics.MATCHER_IN:
            core: MatcherCore = driver.core  # type: ignore[assignment]
            for engine in core.engines.values():
                for order in engine.book.resting():
                    found.setdefault(order.account, {})[order.oid] = order.sz
    return found


def place_order(
    account: str,
    side: str,
    price: str,
    size: str,
    req_id: str,
    *,
    tif: Tif = "Gtc",
    reduce_only: bool = False,
) -> PlaceOrder:
    return PlaceOrder(
        ts=1,
        account=account,
        market="BTC",
        is_buy=side == "buy",
        px=BTC.price_units(price),
        sz=BTC.size_units(size),
        tif=tif,
        reduce_only=reduce_only,
        req_id=req_id,
    )


def place(
    bus: Bus,
    account: str,
    side: str,
    price: str,
    size: str,
    req_id: str,
    *,
    tif: Tif = "Gtc",
    reduce_only: bool = False,
) -> OrderUpdate:
    """Send an order through risk and return the one update that answers it."""
    msg = place_order(account, side, price, size, req_id, tif=tif, reduce_only=reduce_only)
    outs = bus.publish(topics.RISK_IN, account, msg)
    (answer,) = [u for u in of_type(outs, OrderUpdate) if u.req_id == req_id]
    return answer


def only_trade(bus: Bus) -> Trade:
    (trade,) = of_type(bus.log, Trade)
    return trade


def test_alices_resting_buy_taken_by_bob_settles_both_accounts() -> None:
    bus = exchange()
    for who in (ALICE, BOB):
        bus.publish(topics.RISK_IN, who, Deposit(ts=0, account=who, usd=usd_to_units("10000")))

    ack = place(bus, ALICE, "buy", "100000", "0.1", "a1")
    assert (ack.status, ack.resting_sz) == ("resting", 10_000)
    assert accounts(bus)[ALICE].holds == usd_to_units("504.5")

    done = place(bus, BOB, "sell", "99000", "0.1", "b1")
    assert (done.status, done.filled_sz, done.filled_ntl) == ("filled", 10_000, 10_000_000_000)
    trade = only_trade(bus)
    assert (trade.px, trade.buyer, trade.seller) == (1_000_000, ALICE, BOB)

    alice, bob = accounts(bus)[ALICE], accounts(bus)[BOB]
    assert alice.collateral == usd_to_units("9998.5")
    assert bob.collateral == usd_to_units("9995.5")
    assert (alice.holds, bob.holds) == (0, 0)
    assert (alice.positions["BTC"].szi, bob.positions["BTC"].szi) == (10_000, -10_000)
    assert resting(bus) == {}
    fills = of_type(bus.log, AccountFill)
    assert sorted((f.account, f.fee) for f in fills) == sorted(
        [(ALICE, 1_500_000), (BOB, 4_500_000)]
    )


def test_alices_buy_expires_her_own_resting_sell_and_releases_its_hold() -> None:
    bus = exchange()
    bus.publish(topics.RISK_IN, ALICE, Deposit(ts=0, account=ALICE, usd=usd_to_units("10000")))
    place(bus, ALICE, "sell", "100000", "0.1", "a1")
    assert accounts(bus)[ALICE].holds == usd_to_units("504.5")

    outs = bus.publish(topics.RISK_IN, ALICE, place_order(ALICE, "buy", "100000", "0.1", "a2"))
    updates = [(u.req_id, u.status) for u in of_type(outs, OrderUpdate)]
    assert updates == [("", "selfTradeCanceled"), ("a2", "resting")]
    assert of_type(bus.log, Trade) == []
    alice = accounts(bus)[ALICE]
    assert [(o.is_buy, o.sz) for o in alice.orders.values()] == [(True, 10_000)]
    assert alice.holds == usd_to_units("504.5")  # only the new bid holds margin
    assert alice.collateral == usd_to_units("10000")
    assert resting(bus) == {ALICE: {o: 10_000 for o in alice.orders}}


def test_a_reduce_only_sell_closes_alices_long_and_no_more() -> None:
    bus = exchange()
    for who in (ALICE, BOB, CAROL):
        bus.publish(topics.RISK_IN, who, Deposit(ts=0, account=who, usd=usd_to_units("10000")))
    place(bus, BOB, "sell", "100000", "0.1", "b1")
    place(bus, ALICE, "buy", "100000", "0.1", "a1")
    place(bus, CAROL, "buy", "100000", "1", "c1")

    done = place(bus, ALICE, "sell", "100000", "0.3", "a2", tif="Ioc", reduce_only=True)
    assert (done.status, done.filled_sz) == ("filled", 10_000)
    assert "BTC" not in accounts(bus)[ALICE].positions
    assert accounts(bus)[CAROL].positions["BTC"].szi == 10_000
    assert resting(bus)[CAROL] == {o: 90_000 for o in accounts(bus)[CAROL].orders}


@st.composite
def sessions(draw: Any) -> list[tuple[Any, ...]]:
    """Orders near the touch in BTC and ETH, cancels of earlier orders, index ticks."""
    actions: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["place", "place", "place", "cancel", "tick"]))
        market = draw(st.sampled_from(["BTC", "ETH"]))
        if kind == "place":
            actions.append(
                (
                    "place",
                    draw(st.sampled_from(ACCOUNTS)),
                    market,
                    draw(st.booleans()),
                    draw(st.integers(-3, 3)),
                    draw(st.integers(1_000, 30_000)),
                    draw(st.sampled_from(["Gtc", "Gtc", "Ioc", "Alo"])),
                )
            )
        elif kind == "cancel":
            actions.append(("cancel", draw(st.integers(0, 1000))))
        else:
            actions.append(("tick", market, draw(st.integers(-3000, 3000))))
    return actions


BASE_PX = {"BTC": 1_000_000, "ETH": 350_000}  # 100000.0 and 3500.00, in ticks
DEPOSIT = usd_to_units("1000")


def _check_books_and_money(bus: Bus) -> None:
    accts = accounts(bus)
    books = resting(bus)
    for address, acct in accts.items():
        # risk holds margin for exactly the orders resting in the books, at their sizes
        assert {oid: o.sz for oid, o in acct.orders.items()} == books.get(address, {})
    for market in ("BTC", "ETH"):
        assert sum(a.positions[market].szi for a in accts.values() if market in a.positions) == 0
    signed_basis = sum(
        p.entry_ntl if p.szi > 0 else -p.entry_ntl
        for a in accts.values()
        for p in a.positions.values()
    )
    collateral = sum(a.collateral for a in accts.values())
    assert collateral - signed_basis + venue_fees(bus) == DEPOSIT * len(ACCOUNTS)


@given(session=sessions())
@settings(max_examples=60, deadline=None)
def test_holds_books_positions_and_money_stay_consistent(session: list[tuple[Any, ...]]) -> None:
    bus = exchange()
    for who in ACCOUNTS:
        bus.publish(topics.RISK_IN, who, Deposit(ts=0, account=who, usd=DEPOSIT))
    for step, action in enumerate(session, start=1):
        if action[0] == "place":
            _, who, market, is_buy, offset, size, tif = action
            req_id = f"req-{step}"
            msg = PlaceOrder(
                ts=step,
                account=who,
                market=market,
                is_buy=is_buy,
                px=BASE_PX[market] + 10 * offset,
                sz=size,
                tif=tif,
                req_id=req_id,
            )
            outs = bus.publish(topics.RISK_IN, who, msg)
            answers = [u for u in of_type(outs, OrderUpdate) if u.req_id == req_id]
            assert len(answers) == 1, answers
        elif action[0] == "cancel":
            placed = of_type(bus.log, NewOrder)
            if placed:
                order = placed[action[1] % len(placed)]
                cancel = CancelOrder(
                    ts=step,
                    account=order.account,
                    market=order.market,
                    oid=order.oid,
                    req_id=f"req-{step}",
                )
                bus.publish(topics.RISK_IN, order.account, cancel)
        else:
            _, market, offset = action
            px = BASE_PX[market] + 10 * offset
            bus.publish(topics.MATCHER_IN, market, IndexTick(ts=step, market=market, px=px))
        _check_books_and_money(bus)

    for address, acct in list(accounts(bus).items()):
        for oid, order in list(acct.orders.items()):
            cancel = CancelOrder(ts=999, account=address, market=order.market, oid=oid)
            bus.publish(topics.RISK_IN, address, cancel)
    assert resting(bus) == {}
    assert all(a.holds == 0 and a.orders == {} for a in accounts(bus).values())
    _check_books_and_money(bus)
