"""A market's limits changed at run time: risk applies the matcher's MarketConfigured at
that point of its input, revalues positions with the new tiers at once, checks new
orders and leverage against the new limits, and keeps the change across a restart."""

from __future__ import annotations

from libs.common.markets import MarginTier, MarketParams, reconfigure
from libs.common.schemas import ActionResult, MarketConfigured, OrderUpdate, UpdateLeverage
from services.risk.engine import RiskCore
from tests.unit.cores import only
from tests.unit.risk.support import (
    ALICE,
    BTC,
    MARKETS,
    core,
    deposit,
    leg,
    mark,
    place,
    placed_oid,
    risk,
    usd,
)

TEN_X = MarketParams(
    max_leverage=10,
    default_leverage=10,
    margin_tiers=(MarginTier(lower_bound=0, max_leverage=10),),
)


def configured(params: MarketParams, ts: int = 10) -> MarketConfigured:
    return MarketConfigured(
        ts=ts, market="BTC", spec=reconfigure(BTC, params), overrides=params, operator="token"
    )


def test_lowering_max_leverage_raises_the_margin_of_open_positions_at_once() -> None:
    driver = risk()
    driver.send(deposit(ALICE, "1000"))
    oid = placed_oid(driver, place(ALICE, "buy", "100000", "0.1"))
    driver.send(leg(ALICE, "buy", "100000", "0.1", maker=False, oid=oid, closed=True))
    driver.send(mark("100000"))
    ex = core(driver).exposures
    row = ex.row_of[ALICE]
    # 0.1 BTC at 100,000 with 20x: $500 initial; the first tier (50x) keeps 1% = $100
    assert (int(ex.initial[row]), int(ex.maintenance[row])) == (usd("500"), usd("100"))

    driver.send(configured(TEN_X))

    ex = core(driver).exposures
    row = ex.row_of[ALICE]
    # now at most 10x: $1,000 initial and 5% = $500 maintenance; equity $995.50 (fee $4.50)
    assert (int(ex.initial[row]), int(ex.maintenance[row])) == (usd("1000"), usd("500"))
    assert ex.equity(row) == usd("995.5")
    refused = only(driver.send(place(ALICE, "buy", "100000", "0.001", ts=11)), OrderUpdate)
    assert refused.error == "Insufficient margin to place order. asset=0"
    answer = only(
        driver.send(
            UpdateLeverage(
                ts=12, account=ALICE, market="BTC", leverage=20, is_cross=True, req_id="lev"
            )
        ),
        ActionResult,
    )
    assert answer.error == "Invalid leverage value: 20x (at most 10x at this size)."


def test_the_change_survives_a_restart_on_top_of_the_market_table() -> None:
    driver = risk()
    driver.send(deposit(ALICE, "1000"))
    driver.send(configured(TEN_X))
    driver.commit()
    restarted = driver.restarted(lambda p: RiskCore(MARKETS, p))
    spec = core(restarted).markets.by_name("BTC")
    assert (spec.max_leverage, spec.margin_tiers) == (10, TEN_X.margin_tiers)
    assert MARKETS.by_name("BTC").max_leverage == 50  # the table itself is untouched


def test_a_refused_change_is_ignored() -> None:
    driver = risk()
    event = MarketConfigured(ts=10, market="BTC", spec=BTC, error="BTC: bad", operator="x")
    assert driver.send(event) == []
    assert core(driver).markets.by_name("BTC") == BTC
