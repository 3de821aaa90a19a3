"""The exposure index: vectorized revaluation equals the shared formulas, exactly."""

from __future__ import annotations

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.margin import AccountSummary
from libs.common.markets import MarketRegistry
from libs.common.state import AccountState, PositionState
from services.risk import telemetry
from services.risk.revaluation import Exposures, call_level, call_levels
from tests.unit.risk.support import MARKETS

positions = st.lists(
    st.tuples(
        st.sampled_from(["BTC", "ETH", "SOL"]),
        st.integers(-(10**9), 10**9).filter(bool),  # lots: up to 10,000 BTC
        st.integers(1, 3_000_000),  # entry price in ticks
        st.integers(1, 50),  # chosen leverage
        st.booleans(),  # cross
        st.integers(0, 10**12),  # isolated margin
    ),
    max_size=12,
)


def _accounts(rows: list[tuple[str, int, int, int, bool, int]]) -> list[AccountState]:
    accounts: dict[str, AccountState] = {}
    for n, (market, szi, entry, lev, cross, margin) in enumerate(rows):
        address = f"0x{n % 5:040x}"
        acct = accounts.setdefault(address, AccountState(address=address, collateral=10**10))
        acct.positions[market] = PositionState(
            market=market,
            szi=szi,
            entry_ntl=abs(szi) * entry,
            leverage=lev,
            is_cross=cross,
            isolated_margin=0 if cross else margin,
        )
    return list(accounts.values())


def _agrees(ex: Exposures, accounts: list[AccountState], marks: dict[str, int]) -> None:
    for acct in accounts:
        s = AccountSummary(acct, marks, MARKETS)
        row = ex.row_of[acct.address]
        assert (
            ex.equity(row),
            int(ex.initial[row]),
            int(ex.maintenance[row]),
            int(ex.notional[row]),
        ) == (s.cross_equity, s.cross_initial, s.cross_maintenance, s.cross_notional)
        for p in s.positions:
            slots = ex.markets[p.spec.name]
            slot = slots.slot_of[row]
            assert int(slots.maintenance[slot]) == p.terms.maintenance
            assert int(slots.initial[slot]) == p.terms.initial
            if not p.pos.is_cross:
                assert int(slots.iso_base[slot] + slots.value[slot]) == p.margin_used


@given(
    rows=positions,
    ticks=st.lists(
        st.tuples(st.sampled_from(["BTC", "ETH", "SOL"]), st.integers(1, 5_000_000)),
        max_size=6,
    ),
)
@settings(max_examples=300, deadline=None)
def test_revaluing_a_market_in_vectors_gives_the_exact_scalar_numbers(
    rows: list[tuple[str, int, int, int, bool, int]], ticks: list[tuple[str, int]]
) -> None:
    accounts = _accounts(rows)
    ex = Exposures(MARKETS, (50, 80))
    ex.rebuild(accounts, {})
    marks: dict[str, int] = {}
    _agrees(ex, accounts, marks)
    for market, mark in ticks:
        ex.reprice(market, mark)
        marks[market] = mark
        _agrees(ex, accounts, marks)


def test_positions_too_large_for_int64_products_take_the_exact_path() -> None:
    huge = MarketRegistry(
        [msgspec.structs.replace(MARKETS.by_name("BTC"), margin_tiers=())]
    )  # one tier at 50x: rate 1 / 100
    acct = AccountState(
        address="0x01",
        collateral=0,
        positions={"BTC": PositionState(market="BTC", szi=10**12, entry_ntl=10**18)},
    )
    ex = Exposures(huge, (50, 80))
    ex.rebuild([acct], {})
    ex.reprice("BTC", 9 * 10**6)  # 9e18 micro-dollars of notional
    s = AccountSummary(acct, {"BTC": 9 * 10**6}, huge)
    row = ex.row_of["0x01"]
    assert int(ex.maintenance[row]) == s.cross_maintenance == 9 * 10**16


def test_only_accounts_whose_decisions_may_change_are_returned() -> None:
    safe = AccountState(
        address="0x01",
        collateral=10**12,
        positions={"BTC": PositionState(market="BTC", szi=10_000, entry_ntl=10**10)},
    )
    thin = AccountState(
        address="0x02",
        collateral=6 * 10**8,
        positions={"BTC": PositionState(market="BTC", szi=10_000, entry_ntl=10**10)},
    )
    ex = Exposures(MARKETS, (50, 80))
    ex.rebuild([safe, thin], {})
    cross, isolated = ex.reprice("BTC", 949_000)  # thin: equity $90, maintenance $94.9
    assert [ex.addresses[int(r)] for r in cross] == ["0x02"]
    assert len(isolated) == 0


def test_margin_call_levels() -> None:
    levels = (50, 80)
    assert call_level(100, 49, levels) == 0
    assert call_level(100, 50, levels) == 50
    assert call_level(100, 80, levels) == 80
    assert call_level(-5, 1, levels) == 80  # no equity left: every level
    assert call_level(-5, 0, levels) == 0  # nothing to maintain
    equity = np.array([100, 100, 100, -5, -5], dtype=np.int64)
    maintenance = np.array([49, 50, 80, 1, 0], dtype=np.int64)
    assert call_levels(equity, maintenance, levels).tolist() == [0, 50, 80, 80, 0]


def test_accounts_near_liquidation_are_counted_for_the_dashboard() -> None:
    accounts = [
        AccountState(
            address=f"0x0{n}",
            collateral=collateral,
            positions={"BTC": PositionState(market="BTC", szi=10_000, entry_ntl=10**10)},
        )
        for n, collateral in enumerate((10**9, 115 * 10**6, 90 * 10**6))
    ]
    ex = Exposures(MARKETS, (50, 80))
    ex.rebuild(accounts, {"BTC": 1_000_000})
    # maintenance $100 each: equity $1,000 is safe, $115 and $90 are within 120%
    assert telemetry.near_liquidation(ex) == 2
