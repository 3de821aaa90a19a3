"""What-if valuation: an account at prices of our choosing, by hand-worked numbers, and
equal to ``clearinghouseState`` at the current prices."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.margin import below_maintenance
from libs.common.markets import load_markets
from libs.common.money import format_usd, usd_to_units
from libs.common.portfolio import clearinghouse_document
from libs.common.state import AccountState, PositionState
from libs.common.valuation import account_value, scenario_marks, scenario_names

MARKETS = load_markets()
BTC = MARKETS.by_name("BTC")
ETH = MARKETS.by_name("ETH")


def usd(text: str) -> int:
    return usd_to_units(text)


def marks(**prices: str) -> dict[str, int]:
    return {name: MARKETS.by_name(name).price_units(px) for name, px in prices.items()}


def valid(prices: dict[str, int]) -> dict[str, tuple[int, bool]]:
    return {name: (px, True) for name, px in prices.items()}


def alice() -> AccountState:
    """$10,000 of USDC, long 1 BTC from $100,000 (cross, 20x), short 10 ETH from $3,000
    isolated with $1,500 of margin."""
    btc_lots = BTC.size_units("1")
    eth_lots = ETH.size_units("10")
    return AccountState(
        address="0x" + "a1" * 20,
        collateral=usd("10000"),
        positions={
            "BTC": PositionState(
                market="BTC", szi=btc_lots, entry_ntl=btc_lots * BTC.price_units("100000")
            ),
            "ETH": PositionState(
                market="ETH",
                szi=-eth_lots,
                entry_ntl=eth_lots * ETH.price_units("3000"),
                is_cross=False,
                isolated_margin=usd("1500"),
            ),
        },
    )


def test_at_entry_prices_the_cross_account_and_the_isolated_short_are_safe() -> None:
    at = marks(BTC="100000", ETH="3000")
    v = account_value(alice(), at, MARKETS, valid(at))
    # cross: $10,000 equity; 1 BTC = $100,000 needs $5,000 initial (20x), $1,000
    # maintenance (tier 0 of 50x: 1%); withdrawals keep max($5,000, 10% = $10,000)
    assert (v.equity, v.initial, v.maintenance) == (usd("10000"), usd("5000"), usd("1000"))
    assert v.withdrawable == 0
    # the whole account adds the isolated ETH: its $1,500 margin, no PnL yet
    assert v.account_value == usd("11500")
    assert v.margin_used == usd("6500")
    btc, eth = v.positions
    assert not v.liquidated and not btc.liquidated and not eth.liquidated
    # BTC liquidates where 10,000 + (p - 100,000) = p / 100: p = 90,000 / 0.99
    assert btc.liquidation_px == Fraction(90_000 * 100, 99) * 10  # ticks of $0.1
    # ETH short: 1,500 - 10 (p - 3,000) = 10 p / 100, p = 31,500 / 10.1
    assert eth.liquidation_px == Fraction(31_500 * 10, 101) * 100  # ticks of $0.01
    assert (eth.equity, eth.maintenance) == (usd("1500"), usd("300"))


def test_btc_at_91000_leaves_the_account_above_maintenance() -> None:
    at = marks(BTC="91000", ETH="3000")
    v = account_value(alice(), at, MARKETS, valid(at))
    # equity 10,000 - 9,000 = $1,000 against $910 of maintenance
    assert (v.equity, v.maintenance) == (usd("1000"), usd("910"))
    assert not v.liquidated
    assert v.positions[0].upnl == usd("-9000")


def test_btc_at_90000_liquidates_the_cross_account_but_not_the_isolated_short() -> None:
    at = marks(BTC="90000", ETH="3000")
    v = account_value(alice(), at, MARKETS, valid(at))
    assert (v.equity, v.maintenance) == (0, usd("900"))
    btc, eth = v.positions
    assert v.liquidated and btc.liquidated
    assert not eth.liquidated
    assert v.withdrawable == 0


def test_eth_at_3130_liquidates_only_the_isolated_short() -> None:
    at = marks(BTC="100000", ETH="3130")
    v = account_value(alice(), at, MARKETS, valid(at))
    btc, eth = v.positions
    # 1,500 - 10 x 130 = $200 of margin left against 1% of $31,300 = $313
    assert (eth.equity, eth.maintenance, eth.upnl) == (usd("200"), usd("313"), usd("-1300"))
    assert eth.liquidated
    assert not v.liquidated and not btc.liquidated


def test_a_scenario_moves_each_market_by_its_own_volatility() -> None:
    current = marks(BTC="100000", ETH="3000")
    assert {"all-100", "BTC+50", "ETH-150"} <= set(scenario_names(MARKETS))
    # all-100: every market down one full shock, BTC 4% and ETH 5%
    moved = scenario_marks(current, MARKETS, "all-100")
    assert moved == marks(BTC="96000", ETH="2850")
    v = account_value(alice(), moved, MARKETS, valid(moved))
    assert v.equity == usd("6000")
    assert v.positions[1].upnl == usd("1500")  # the short gains 10 x $150


def test_an_unknown_scenario_is_refused() -> None:
    try:
        scenario_marks({}, MARKETS, "everything-99")
    except ValueError as exc:
        assert "everything-99" in str(exc)
    else:
        raise AssertionError("an unknown scenario was accepted")


def test_the_liquidation_rule_is_strictly_below_a_positive_requirement() -> None:
    assert below_maintenance(usd("899.999999"), usd("900"))
    assert not below_maintenance(usd("900"), usd("900"))
    assert not below_maintenance(usd("-5"), 0)  # nothing required: nothing to liquidate


@settings(max_examples=200, deadline=None)
@given(
    collateral=st.integers(-usd("5000"), usd("50000")),
    btc=st.integers(-300_000, 300_000),
    eth=st.integers(-500_000, 500_000),
    eth_margin=st.integers(0, usd("5000")),
    btc_entry=st.integers(500_000, 1_500_000),
    eth_entry=st.integers(150_000, 450_000),
    btc_mark=st.integers(1, 2_000_000),
    eth_mark=st.integers(1, 600_000),
    btc_assets=st.integers(0, 200_000),
    mode=st.sampled_from(["cross", "portfolio"]),
    btc_oracle_valid=st.booleans(),
)
def test_at_the_current_prices_it_equals_the_clearinghouse_state(
    collateral: int,
    btc: int,
    eth: int,
    eth_margin: int,
    btc_entry: int,
    eth_entry: int,
    btc_mark: int,
    eth_mark: int,
    btc_assets: int,
    mode: str,
    btc_oracle_valid: bool,
) -> None:
    positions = {}
    if btc:
        positions["BTC"] = PositionState(market="BTC", szi=btc, entry_ntl=abs(btc) * btc_entry)
    if eth:
        positions["ETH"] = PositionState(
            market="ETH",
            szi=eth,
            entry_ntl=abs(eth) * eth_entry,
            is_cross=False,
            isolated_margin=eth_margin,
        )
    acct = AccountState(
        address="0x" + "a1" * 20,
        collateral=collateral,
        positions=positions,
        margin_mode=mode,
        assets={"BTC": btc_assets} if btc_assets else {},
    )
    at = {"BTC": btc_mark, "ETH": eth_mark}
    prices = {"BTC": (btc_mark, btc_oracle_valid), "ETH": (eth_mark, True)}
    v = account_value(acct, at, MARKETS, prices)
    doc = clearinghouse_document(acct, at, MARKETS, 0, prices)

    def text(micro: int) -> str:
        return format_usd(micro) if micro else "0.0"

    assert text(v.equity) == doc["crossMarginSummary"]["accountValue"]
    assert text(v.initial) == doc["crossMarginSummary"]["totalMarginUsed"]
    assert text(v.maintenance) == doc["crossMaintenanceMarginUsed"]
    assert text(v.withdrawable) == doc["withdrawable"]
    assert text(v.account_value) == doc["marginSummary"]["accountValue"]
    assert text(v.margin_used) == doc["marginSummary"]["totalMarginUsed"]
    rows = [p["position"] for p in doc["assetPositions"]]
    assert [p.spec.name for p in v.positions] == [r["coin"] for r in rows]
    for p, row in zip(v.positions, rows, strict=True):
        assert text(p.upnl) == row["unrealizedPnl"]
        assert text(p.value) == row["positionValue"]


def test_a_usdc_liability_behind_assets_with_no_position_is_a_liquidation() -> None:
    # the engine opens a case for it (tests/unit/risk/test_collateral.py): so does the
    # what-if, and only while no cross position is left
    owing = AccountState(
        address="0x" + "e5" * 20, collateral=-4_029_400_000, assets={"BTC": 500_000}
    )
    prices = {"BTC": (960_000, True)}
    flat = account_value(owing, {"BTC": 960_000}, MARKETS, prices)
    assert (flat.equity, flat.maintenance, flat.liquidated) == (451_970_600_000, 0, True)
    paid = AccountState(address=owing.address, collateral=0, assets={"BTC": 500_000})
    assert account_value(paid, {"BTC": 960_000}, MARKETS, prices).liquidated is False
