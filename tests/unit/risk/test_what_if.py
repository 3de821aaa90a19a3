"""The what-if valuation (``libs.common.valuation``) decides as risk does: at any mark,
its equity and maintenance are risk's own, and it says "liquidated" exactly when risk
then raises a liquidation trigger."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.collateral import oracle_prices
from libs.common.schemas import LiquidationTrigger, MarkUpdate
from libs.common.valuation import account_value
from tests.unit.cores import Driver, of_type
from tests.unit.risk.support import ALICE, account, core, deposit, leg, mark, px, risk, usd


def long_btc(collateral: str) -> Driver:
    """Alice long 0.1 BTC from $100,000 (maker fee paid) with ``collateral`` of USDC."""
    r = risk()
    r.send(mark("100000"))
    r.send(deposit(ALICE, collateral))
    r.send(leg(ALICE, "buy", "100000", "0.1", maker=True))
    return r


def what_if(r: Driver, price: int) -> tuple[int, int, bool]:
    c = core(r)
    states = {m.market: m for m in c.marks.values()}
    marks = {name: state.mark_px for name, state in states.items()}
    marks["BTC"] = price
    prices = oracle_prices(states)
    prices["BTC"] = (price, True)
    v = account_value(account(r, ALICE), marks, c.markets, prices)
    return v.equity, v.maintenance, v.liquidated


def test_the_what_if_liquidation_price_is_where_risk_triggers() -> None:
    r = long_btc("700")
    # $700 less the $1.5 maker fee: equity 698.5 + 0.1 (p - 100,000) = p / 1,000 at
    # p = 9,301.5 / 0.099 = 93,954.54...: at 93,955 equity is $94.0 against $93.955,
    # at 93,954 it is $93.9 against $93.954
    assert what_if(r, px("93955"))[2] is False
    assert what_if(r, px("93954"))[2] is True
    assert of_type(r.send(mark("93955")), LiquidationTrigger) == []
    (trigger,) = of_type(r.send(mark("93954")), LiquidationTrigger)
    equity, maintenance, _ = what_if(r, px("93954"))
    assert (equity, maintenance) == (usd("93.9"), usd("93.954"))
    assert (trigger.equity, trigger.maintenance) == (equity, maintenance)


@settings(max_examples=60, deadline=None)
@given(collateral=st.integers(300, 5000), price=st.integers(800_000, 1_100_000))
def test_at_any_mark_the_what_if_agrees_with_risks_decision(collateral: int, price: int) -> None:
    r = long_btc(str(collateral))
    expected = what_if(r, price)
    tick = MarkUpdate(ts=5, market="BTC", mark_px=price, index_px=price)
    triggers = of_type(r.send(tick), LiquidationTrigger)
    ex = core(r).exposures
    row = ex.row_of[ALICE]
    assert (ex.equity(row), ex.maintenance_of(row)) == expected[:2]
    assert bool(triggers) is expected[2]
