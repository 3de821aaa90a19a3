"""Portfolio margin as a pure function: hand-worked requirements of a hedged pair and of
a lone position, which scenario binds, the configuration that shapes the grid, and the
safety properties (never below the stress case, monotone in size)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.margin import margin_table, position_terms
from libs.common.markets import MarketRegistry, PortfolioGrid, load_markets
from libs.common.portfolio import (
    Leg,
    portfolio_margin,
    portfolio_margin_document,
    price_move,
    scenario_grid,
)
from libs.common.state import AccountState, PositionState
from tests.unit.risk.support import BTC, ETH, MARKETS, SOL, lots, px, usd

# 10 BTC long at 100,000 ($1M) against 250 ETH short at 4,000 ($1M)
PAIR = [Leg(BTC, lots("10"), px("100000")), Leg(ETH, -lots("250", "ETH"), px("4000", "ETH"))]
LONE_BTC = [Leg(BTC, lots("10"), px("100000"))]


def cross_initial(legs: list[Leg]) -> int:
    """The same positions under cross margin at each market's default leverage."""
    return sum(
        position_terms(leg.spec, leg.szi, 0, leg.spec.default_leverage, leg.px).initial
        for leg in legs
    )


def test_the_grid_has_correlated_idiosyncratic_moves_by_step_and_sign() -> None:
    grid = scenario_grid(MARKETS)
    names = [s.name for s in grid.scenarios]
    assert names[:6] == ["all+50", "all-50", "all+100", "all-100", "all+150", "all-150"]
    assert len(names) == 6 + 3 * 6  # and each market leading by step and sign
    moves = dict(grid.scenarios)
    # BTC 4% volatility, ETH 5%, SOL 8%; at 150% of it: 6%, 7.5%, 12%
    assert moves["all-150"] == (-60_000, -75_000, -120_000)
    # ETH leads by 7.5%; BTC follows by 6% x 0.95 x 0.9 = 5.13%, SOL by 12% x 0.8 x 0.9
    assert moves["ETH+150"] == (51_300, 75_000, 86_400)
    assert grid.stress_ppm == (20_000, 25_000, 40_000)  # 50% of each volatility


def test_a_hedged_btc_eth_pair_needs_32_percent_less_than_cross_margin() -> None:
    pm = portfolio_margin(PAIR, MARKETS)
    # stress: BTC -2% ($2,000) loses $20,000 and keeps 1% of $980,000 = $9,800; ETH +2.5%
    # ($100) loses $25,000 and keeps 1% of $1,025,000 = $10,250: $65,050
    assert pm.stress == usd("65050")
    # worst grid scenario: ETH +7.5% (-$75,000) with BTC following +5.13% (+$51,300)
    assert (pm.worst_loss, dict(pm.losses)["ETH+150"]) == (usd("23700"), usd("23700"))
    assert pm.floor == usd("40000")  # each leg at 50x: $20,000 + $20,000
    assert pm.provision == usd("2900")  # (450 ppm taker + 1000 ppm funding) x $2M
    assert (pm.initial, pm.binding) == (usd("67950"), "stress")
    assert pm.maintenance == usd("40770")  # 60% of $67,950, above cross's $20,000
    cross = cross_initial(PAIR)
    assert cross == usd("100000")  # $50,000 per leg at 20x
    assert cross - pm.initial == usd("32050")  # 32.05% less


def test_a_lone_position_needs_at_least_as_much_as_under_cross_margin() -> None:
    pm = portfolio_margin(LONE_BTC, MARKETS)
    # all markets -6%: 10 BTC lose $6,000 each; plus (450 + 1000) ppm of $1M
    assert (pm.worst_loss, pm.binding) == (usd("60000"), "all-150")
    assert pm.stress == usd("29800")  # -2% = $20,000, then 1% of $980,000
    assert pm.initial == usd("61450")
    assert pm.initial >= cross_initial(LONE_BTC) == usd("50000")
    short = portfolio_margin([Leg(BTC, -lots("10"), px("100000"))], MARKETS)
    assert (short.initial, short.binding) == (usd("61450"), "all+150")


def test_the_stress_case_binds_when_the_correlations_break() -> None:
    # correlated markets: the pair's grid losses stay small, the stress (every leg
    # against itself, no offsets) binds
    assert portfolio_margin(PAIR, MARKETS).binding == "stress"
    # a fully correlated grid (both at 100%) changes nothing: stress still binds at $65,050
    tight = _with(BTC=1_000_000, ETH=1_000_000)
    assert portfolio_margin(PAIR, tight)[:3] == (usd("67950"), usd("40770"), "stress")
    # uncorrelated markets: ETH +7.5% alone loses $75,000, above the stress's $65,050
    loose = _with(BTC=0, ETH=0, SOL=0)
    pm = portfolio_margin(PAIR, loose)
    assert (pm.worst_loss, pm.binding, pm.initial) == (usd("75000"), "ETH+150", usd("77900"))


def _with(**correlations: int) -> MarketRegistry:
    specs = [
        msgspec.structs.replace(
            s, pm_correlation_ppm=correlations.get(s.name, s.pm_correlation_ppm)
        )
        for s in MARKETS
    ]
    return MarketRegistry(specs, MARKETS.portfolio)


def test_the_floor_binds_when_every_shock_is_small() -> None:
    grid = PortfolioGrid(shock_steps_pct=(10,), stress_step_pct=1, maintenance_ppm=500_000)
    calm = MarketRegistry(list(MARKETS), grid)
    pm = portfolio_margin(LONE_BTC, calm)
    # 0.4% grid shock = $4,000; stress 0.04% + 1% ~ $10,396; floor 2% = $20,000
    assert (pm.binding, pm.floor, pm.initial) == ("floor", usd("20000"), usd("21450"))
    assert pm.maintenance == usd("10725")


def test_a_move_in_ticks_rounds_away_from_zero() -> None:
    assert price_move(1_000_001, 20_000) == 20_001  # 20,000.02 ticks
    assert price_move(1_000_001, -20_000) == -20_001
    assert price_move(1_000_000, 0) == 0


def test_no_positions_need_nothing() -> None:
    pm = portfolio_margin([], MARKETS)
    assert (pm.initial, pm.maintenance, pm.binding) == (0, 0, "")


# ------------------------------------------------------------------ safety properties

LEG = st.tuples(
    st.sampled_from(["BTC", "ETH", "SOL"]),
    st.integers(-(10**8), 10**8).filter(bool),
    st.integers(1_000, 5_000_000),
)


def _legs(rows: list[tuple[str, int, int]]) -> list[Leg]:
    found: dict[str, Leg] = {}
    for market, szi, price in rows:
        found[market] = Leg(MARKETS.by_name(market), szi, price)
    return list(found.values())


@settings(max_examples=200, deadline=None)
@given(st.lists(LEG, min_size=1, max_size=3))
def test_never_below_the_stress_loss_nor_cross_maintenance_under_stress(
    rows: list[tuple[str, int, int]],
) -> None:
    legs = _legs(rows)
    pm = portfolio_margin(legs, MARKETS)
    stress_loss = under_stress = current_maintenance = 0
    for leg in legs:
        q = abs(leg.szi)
        ppm = leg.spec.pm_volatility_ppm * MARKETS.portfolio.stress_step_pct // 100
        move = -(-leg.px * ppm // 1_000_000)
        stressed = leg.px - move if leg.szi > 0 else leg.px + move
        stress_loss += q * move
        under_stress += margin_table(leg.spec).maintenance(q * max(stressed, 0))
        current_maintenance += margin_table(leg.spec).maintenance(q * leg.px)
    assert pm.initial >= stress_loss + under_stress
    assert pm.initial >= max(loss for _, loss in pm.losses)
    assert pm.maintenance >= current_maintenance  # liquidation never later than cross
    assert pm.initial >= pm.maintenance


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["BTC", "ETH", "SOL"]),
    st.integers(1, 10**8),
    st.integers(0, 10**7),
    st.integers(1_000, 5_000_000),
    st.booleans(),
)
def test_one_leg_needs_more_as_it_grows_and_never_less_than_cross(
    market: str, size: int, more: int, price: int, long: bool
) -> None:
    spec = MARKETS.by_name(market)
    sign = 1 if long else -1
    small = portfolio_margin([Leg(spec, sign * size, price)], MARKETS)
    large = portfolio_margin([Leg(spec, sign * (size + more), price)], MARKETS)
    assert small.initial <= large.initial
    assert small.maintenance <= large.maintenance
    lone = [Leg(spec, sign * size, price)]
    assert small.initial >= cross_initial(lone)


# ------------------------------------------------------------------ configuration


def _market_file(tmp_path: Path, portfolio: str = "", extra: str = "") -> Path:
    path = tmp_path / "markets.toml"
    path.write_text(
        f'{portfolio}\n[[market]]\nname = "DOGE"\nsz_decimals = 0\nmax_leverage = 10\n'
        f"default_leverage = 5\ntaker_fee_ppm = 500\nmaker_fee_ppm = 100\n{extra}"
    )
    return path


def test_the_grid_and_correlations_load_from_the_market_table(tmp_path: Path) -> None:
    path = _market_file(
        tmp_path,
        "[portfolio]\nshock_steps_pct = [100, 200]\nstress_step_pct = 80\n"
        "maintenance_ppm = 500000\n",
        "pm_volatility_ppm = 150000\npm_correlation_ppm = 700000\n",
    )
    markets = load_markets(path)
    (doge,) = markets
    assert markets.portfolio == PortfolioGrid(
        shock_steps_pct=(100, 200), stress_step_pct=80, maintenance_ppm=500_000
    )
    assert (doge.pm_volatility_ppm, doge.pm_correlation_ppm) == (150_000, 700_000)


def test_an_unconfigured_market_shocks_at_least_its_default_initial_margin(
    tmp_path: Path,
) -> None:
    (doge,) = load_markets(_market_file(tmp_path))
    # default 5x: the largest (150%) shock must be 20%, so the volatility is 13.3334%
    assert doge.pm_volatility_ppm == 133_334
    assert doge.pm_volatility_ppm * 150 // 100 >= 200_000


@pytest.mark.parametrize(
    ("portfolio", "extra", "problem"),
    [
        ("[portfolio]\nshock_steps_pct = []", "", "non-empty list"),
        ("[portfolio]\nshock_steps_pct = [100, 50]", "", "positive and rising"),
        ("[portfolio]\nstress_step_pct = 0", "", "stress_step_pct must be a positive"),
        ("[portfolio]\nmaintenance_ppm = 0", "", "maintenance_ppm must be within"),
        ("[portfolio]\nshock = 3", "", "unknown keys"),
        ("", "pm_volatility_ppm = 100000\n", "must be at least the initial margin"),
        ("", "pm_volatility_ppm = 900000\n", "must not exceed 100%"),
        ("", "pm_volatility_ppm = 300000\npm_correlation_ppm = 2000000\n", "correlation"),
    ],
)
def test_an_impossible_portfolio_configuration_is_refused(
    tmp_path: Path, portfolio: str, extra: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        load_markets(_market_file(tmp_path, portfolio, extra))


def test_sol_and_eth_scenarios_scale_with_their_own_volatility() -> None:
    pm = portfolio_margin([Leg(SOL, lots("1000", "SOL"), px("150", "SOL"))], MARKETS)
    # $150,000 of SOL: all -12% loses $18,000; (450 + 1000) ppm = $217.5
    assert (pm.worst_loss, pm.initial, pm.binding) == (usd("18000"), usd("18217.5"), "all-150")


def test_the_info_document_names_the_binding_scenario_and_every_loss() -> None:
    acct = AccountState(
        address="0x" + "a1" * 20,
        collateral=usd("75000"),
        margin_mode="portfolio",
        positions={
            "BTC": PositionState(market="BTC", szi=lots("10"), entry_ntl=usd("1000000")),
            "ETH": PositionState(market="ETH", szi=-lots("250", "ETH"), entry_ntl=usd("1000000")),
        },
    )
    marks = {"BTC": px("100000"), "ETH": px("4000", "ETH")}
    doc = portfolio_margin_document(acct, marks, MARKETS, 1_700_000_000_000)
    assert {k: v for k, v in doc.items() if k != "scenarios"} == {
        "marginMode": "portfolio",
        "accountValue": "75000",
        "initialMargin": "67950",
        "maintenanceMargin": "40770",
        "bindingScenario": "stress",
        "worstScenarioLoss": "23700",
        "stressRequirement": "65050",
        "floorRequirement": "40000",
        "provision": "2900",
        "crossInitialMargin": "100000",
        "crossMaintenanceMargin": "20000",
        "collateralAssets": [],
        "time": 1_700_000_000_000,
    }
    assert len(doc["scenarios"]) == 24
    assert {"name": "ETH+150", "loss": "23700"} in doc["scenarios"]
    assert {"name": "all-150", "loss": "0.0"} in doc["scenarios"]  # a gain: no loss
    empty = portfolio_margin_document(None, {}, MARKETS, 0)
    assert (empty["marginMode"], empty["initialMargin"], empty["bindingScenario"]) == (
        "cross",
        "0.0",
        None,
    )


def test_the_info_document_values_collateral_assets_at_the_oracle() -> None:
    acct = AccountState(address="0x" + "a1" * 20, collateral=-usd("600"), assets={"BTC": lots("5")})
    marks = {"BTC": px("100000")}
    doc = portfolio_margin_document(acct, marks, MARKETS, 0, {"BTC": (px("100000"), False)})
    # 5 BTC at 100,000 less 5%: $475,000, less the $600 USDC liability
    assert doc["accountValue"] == "474400"
    assert doc["collateralAssets"] == [
        {"asset": "BTC", "balance": "5", "value": "475000", "oracleValid": False}
    ]
