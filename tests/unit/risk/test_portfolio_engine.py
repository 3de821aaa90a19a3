"""Portfolio margin in the risk core: switching modes, pre-trade checks against the
portfolio requirement, margin calls and liquidation triggers on its maintenance, and
the vector index agreeing with the exact formulas."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.portfolio import account_portfolio_margin
from libs.common.schemas import (
    ActionResult,
    LiquidationStatus,
    LiquidationTrigger,
    MarginCall,
    NewOrder,
    OrderUpdate,
    SetMarginMode,
)
from libs.common.state import AccountState, PositionState
from services.risk.revaluation import Exposures
from services.risk.telemetry import near_liquidation
from tests.unit.cores import Driver, of_type, only
from tests.unit.risk.support import (
    ALICE,
    BOB,
    MARKETS,
    account,
    core,
    deposit,
    leg,
    mark,
    place,
    risk,
    usd,
)


def mode(address: str, wanted: str, ts: int = 6) -> SetMarginMode:
    return SetMarginMode(ts=ts, account=address, mode=wanted, req_id="mode")


def _pair(*addresses: str, funds: str = "75300") -> Driver:
    """Each account long 10 BTC at 100,000 and short 250 ETH at 4,000 as maker ($150 of
    fees per leg): $75,000 of equity behind $2M of gross notional."""
    r = risk()
    r.send(mark("100000"))
    r.send(mark("4000", "ETH"))
    for address in addresses:
        r.send(deposit(address, funds))
        r.send(leg(address, "buy", "100000", "10", maker=True))
        r.send(leg(address, "sell", "4000", "250", maker=True, market="ETH"))
    return r


def _requirements(r: Driver, address: str) -> tuple[int, int]:
    ex = core(r).exposures
    row = ex.row_of[address]
    return ex.initial_of(row), ex.maintenance_of(row)


def test_switching_to_portfolio_margin_lowers_the_requirement_of_a_hedged_pair() -> None:
    r = _pair(ALICE)
    assert _requirements(r, ALICE) == (usd("100000"), usd("20000"))  # cross, 20x
    (answer,) = of_type(r.send(mode(ALICE, "portfolio")), ActionResult)
    assert (answer.action, answer.error) == ("setMarginMode", None)
    assert account(r, ALICE).margin_mode == "portfolio"
    assert _requirements(r, ALICE) == (usd("67950"), usd("40770"))


def test_a_switch_that_would_leave_the_account_short_is_refused() -> None:
    r = _pair(ALICE, funds="60300")  # $60,000 of equity: below $67,950
    (answer,) = of_type(r.send(mode(ALICE, "portfolio")), ActionResult)
    assert answer.error == (
        "Insufficient margin for portfolio margin: equity $60000 is below the requirement "
        "$67950 (initial margin and holds)."
    )
    assert account(r, ALICE).margin_mode == "cross"
    assert _requirements(r, ALICE) == (usd("100000"), usd("20000"))
    # in portfolio margin with $75,000, going back to cross needs $100,000: refused
    r = _pair(ALICE)
    r.send(mode(ALICE, "portfolio"))
    (back,) = of_type(r.send(mode(ALICE, "cross")), ActionResult)
    assert back.error is not None and "below the requirement $100000" in back.error
    assert account(r, ALICE).margin_mode == "portfolio"


def test_an_unknown_mode_is_refused_and_changes_nothing() -> None:
    r = _pair(ALICE)
    (answer,) = of_type(r.send(mode(ALICE, "isolated")), ActionResult)
    assert answer.error == "Unknown margin mode 'isolated': use 'cross' or 'portfolio'."
    assert account(r, ALICE).margin_mode == "cross"


def test_an_order_the_cross_account_cannot_afford_passes_in_portfolio_margin() -> None:
    r = _pair(ALICE, BOB, funds="110300")  # $110,000 of equity each
    r.send(mode(ALICE, "portfolio"))
    # 0.5 BTC at 100,000 at 20x holds $2,500 + $22.5 taker fee. Bob (cross) has
    # $110,000 - $100,000 = $10,000 free; Alice $110,000 - $67,950 = $42,050
    big = "4"  # 4 BTC holds $20,000 + $180: more than Bob's $10,000
    refused = only(r.send(place(BOB, "buy", "100000", big)), OrderUpdate)
    assert refused.status == "perpMarginRejected"
    accepted = only(r.send(place(ALICE, "buy", "100000", big)), NewOrder)
    assert accepted.account == ALICE
    assert account(r, ALICE).holds == usd("20180")


def test_a_breaking_hedge_raises_the_requirement_on_the_next_mark_and_triggers() -> None:
    r = _pair(ALICE, BOB)
    r.send(mode(ALICE, "portfolio"))
    # ETH rallies to 4,100 while BTC stays: the short loses $25,000 (equity $50,000).
    # Stress now: BTC $20,000 + $9,800; ETH +$102.5 = $25,625 + 1% x $1,050,625 =
    # $10,506.25; provision 1450 ppm x $2,025,000 = $2,936.25: initial $68,867.5,
    # maintenance 60% = $41,320.5, 83% of equity: the 80% margin call
    outs = r.send(mark("4100", "ETH"))
    assert _requirements(r, ALICE) == (usd("68867.5"), usd("41320.5"))
    calls = of_type(outs, MarginCall)
    assert [(c.account, c.level_pct, c.maintenance) for c in calls] == [(ALICE, 80, usd("41320.5"))]
    # ETH 4,200: equity $25,000. Portfolio maintenance $41,871 (initial $69,785): Alice
    # is triggered; Bob in cross keeps $20,500 of maintenance and is not
    outs = r.send(mark("4200", "ETH"))
    assert _requirements(r, ALICE) == (usd("69785"), usd("41871"))
    (trigger,) = of_type(outs, LiquidationTrigger)
    assert (trigger.account, trigger.equity, trigger.maintenance) == (
        ALICE,
        usd("25000"),
        usd("41871"),
    )
    status = trigger.status  # the first status, in the trigger's record
    assert status is not None and of_type(outs, LiquidationStatus) == []
    assert (status.account, status.maintenance, status.below) == (ALICE, usd("41871"), True)
    assert not account(r, BOB).liquidating
    # while the case is open the mode cannot change
    (answer,) = of_type(r.send(mode(ALICE, "cross")), ActionResult)
    assert answer.error == "Cannot change the margin mode while the account is being liquidated."


def test_closing_one_leg_changes_the_requirement_at_once() -> None:
    r = _pair(ALICE)
    r.send(mode(ALICE, "portfolio"))
    r.send(leg(ALICE, "buy", "4000", "250", maker=True, market="ETH"))
    # the lone BTC long: all markets -6% = $60,000 plus $1,450 of provision
    assert _requirements(r, ALICE) == (usd("61450"), usd("36870"))


def test_a_restarted_core_keeps_the_mode_and_the_requirement() -> None:
    r = _pair(ALICE)
    r.send(mode(ALICE, "portfolio"))
    r.commit()
    restored = r.restarted(lambda p: type(core(r))(MARKETS, p))
    assert _requirements(restored, ALICE) == (usd("67950"), usd("40770"))


# ------------------------------------------------------------------ vectors = formulas

ROWS = st.lists(
    st.tuples(
        st.sampled_from(["BTC", "ETH", "SOL"]),
        st.integers(-(10**9), 10**9).filter(bool),
        st.integers(1, 3_000_000),
        st.booleans(),
    ),
    max_size=12,
)


@settings(max_examples=100, deadline=None)
@given(
    ROWS,
    st.dictionaries(st.sampled_from(["BTC", "ETH", "SOL"]), st.integers(1, 3_000_000)),
    st.sampled_from(["BTC", "ETH", "SOL"]),
    st.integers(1, 3_000_000),
)
def test_the_index_computes_the_exact_portfolio_requirement(
    rows: list[tuple[str, int, int, bool]], marks: dict[str, int], market: str, tick: int
) -> None:
    accounts: dict[str, AccountState] = {}
    for n, (name, szi, entry, cross) in enumerate(rows):
        address = f"0x{n % 4:040x}"
        acct = accounts.setdefault(
            address, AccountState(address=address, collateral=10**10, margin_mode="portfolio")
        )
        acct.positions[name] = PositionState(
            market=name, szi=szi, entry_ntl=abs(szi) * entry, leverage=10, is_cross=cross
        )
    ex = Exposures(MARKETS, (50, 80))
    ex.rebuild(accounts.values(), marks)
    for acct in accounts.values():
        pm = account_portfolio_margin(acct, marks, MARKETS)
        row = ex.row_of[acct.address]
        assert (ex.initial_of(row), ex.maintenance_of(row)) == (pm.initial, pm.maintenance)
    ex.reprice(market, tick)
    moved = {**marks, market: tick}
    for acct in accounts.values():
        pm = account_portfolio_margin(acct, moved, MARKETS)
        row = ex.row_of[acct.address]
        assert (ex.initial_of(row), ex.maintenance_of(row)) == (pm.initial, pm.maintenance)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["BTC", "ETH"]), st.integers(-150_000, 150_000)),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from(["60300", "75300", "110300"]),
)
def test_after_every_mark_a_portfolio_account_is_flagged_exactly_when_below_its_maintenance(
    moves: list[tuple[str, int]], funds: str
) -> None:
    r = _pair(ALICE, BOB, funds=funds)
    r.send(mode(ALICE, "portfolio"))  # refused with $60,000: then both stay cross
    prices = {"BTC": 100_000, "ETH": 4_000}
    c = core(r)
    for n, (market, ppm) in enumerate(moves):
        prices[market] = max(1, prices[market] + prices[market] * ppm // 1_000_000)
        r.send(mark(str(prices[market]), market, ts=10 + n))
        marks = {m.market: m.mark_px for m in c.marks.values()}
        for address in (ALICE, BOB):
            acct = account(r, address)
            row = c.exposures.row_of[address]
            equity, maintenance = c.exposures.equity(row), c.exposures.maintenance_of(row)
            assert acct.liquidating == (equity < maintenance)
            if acct.margin_mode == "portfolio":
                pm = account_portfolio_margin(acct, marks, MARKETS)
                assert (c.exposures.initial_of(row), maintenance) == (pm.initial, pm.maintenance)


def test_the_near_liquidation_gauge_counts_against_the_portfolio_maintenance() -> None:
    r = _pair(ALICE, BOB)
    r.send(mode(ALICE, "portfolio"))
    # ETH 4,110: Alice's equity $47,500 against a portfolio maintenance of $41,375.55
    # (within 120%); under cross her maintenance would be $20,275. Bob gained.
    r.send(mark("4110", "ETH"))
    ex = core(r).exposures
    row = ex.row_of[ALICE]
    assert (ex.equity(row), ex.maintenance_of(row)) == (usd("47500"), usd("41375.55"))
    assert near_liquidation(ex) == 1
