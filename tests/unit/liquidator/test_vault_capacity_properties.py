"""Whatever takeovers one liquidator partition decides, and in whatever order the vault
applies them, statuses reflect them or the matcher refuses them, the vault with all of
them applied keeps its equity at or above the safety factor times its maintenance, less
nothing but this partition's share of the headroom at the last status.

The vault is modelled exactly: its positions at fixed marks (a takeover at the mark
leaves its equity unchanged) and its maintenance from the markets' real tier tables."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common import topics
from libs.common.margin import margin_table
from libs.common.markets import load_markets
from libs.common.money import div_ceil
from libs.common.schemas import (
    LiquidatedPosition,
    LiquidationReport,
    LiquidationStatus,
    LiquidationTrigger,
    PositionTransfer,
    VaultMarketTerms,
    VaultStatus,
)
from libs.common.state import BACKSTOP_VAULT_ACCOUNT
from services.liquidator import waterfall
from services.liquidator.cases import LiquidatorCore
from services.liquidator.config import LiquidatorConfig
from tests.unit.cores import Driver, of_type

MARKETS = load_markets()
MARKS = {"BTC": 945_000, "ETH": 3_150_000}
PPM = 1_000_000
PARTITIONS = 4
SAFETY = LiquidatorConfig().vault_safety_ppm


def terms() -> tuple[VaultMarketTerms, ...]:
    found = []
    for market in sorted(MARKS):
        table = margin_table(MARKETS.by_name(market))
        found.append(
            VaultMarketTerms(
                market=market, maintenance_ppm=div_ceil(max(table.rates) * PPM, table.scale)
            )
        )
    return tuple(found)


def maintenance(positions: dict[str, int]) -> int:
    return sum(
        margin_table(MARKETS.by_name(m)).maintenance(abs(szi) * MARKS[m])
        for m, szi in positions.items()
    )


def notional(positions: dict[str, int]) -> int:
    return sum(abs(szi) * MARKS[m] for m, szi in positions.items())


def trigger(account: str, market: str, szi: int, ts: int) -> LiquidationTrigger:
    position = LiquidatedPosition(
        market=market,
        szi=szi,
        entry_ntl=abs(szi) * MARKS[market],
        mark_px=MARKS[market],
        maintenance=0,
    )
    status = LiquidationStatus(
        ts=ts,
        account=account,
        equity=1,
        maintenance=10**15,
        collateral=0,
        positions=(position,),
        below=True,
        reason="trigger",
        open_orders=False,
    )
    return LiquidationTrigger(ts=ts, account=account, equity=1, maintenance=10**15, status=status)


# sizes in tenths of a coin (hypothesis favours small integers), long or short
lots = st.builds(
    lambda tenths, long: tenths * 10_000 * (1 if long else -1), st.integers(1, 40), st.booleans()
)
case = st.tuples(st.just("case"), st.sampled_from(sorted(MARKS)), lots)
operation = st.one_of(
    case,
    case,
    st.tuples(st.just("apply"), st.integers(0, 1_000)),
    st.tuples(st.just("reject"), st.integers(0, 1_000)),
    st.tuples(st.just("status")),
)


@settings(max_examples=300, deadline=None)
@given(
    # an empty vault, or one already holding $113M of BTC (the 10x tier: what a takeover
    # adds is then exactly the top rate the need counts)
    start=st.sampled_from([0, 120_000_000, -120_000_000]),
    nudge=st.integers(-300_000, 300_000),
    stress=st.sampled_from([0, 100_000]),  # none, or a 10% move against the vault
    slack=st.integers(-20_000 * PPM, 150_000 * PPM),
    ops=st.lists(operation, min_size=8, max_size=40),
)
def test_the_vault_stays_above_its_safety_margin_whatever_the_takeovers(
    start: int, nudge: int, stress: int, slack: int, ops: list[tuple[Any, ...]]
) -> None:
    start += nudge

    def held_back(positions: dict[str, int]) -> int:
        """What the vault must keep: safety x maintenance and the stress move."""
        gross = notional(positions)
        return div_ceil(maintenance(positions) * SAFETY, PPM) + div_ceil(gross * stress, PPM)

    equity = held_back({"BTC": start}) + slack
    config = LiquidatorConfig(vault_stress_ppm=stress)
    d = Driver(LiquidatorCore(0, config), topics.LIQUIDATIONS, 0)
    held = {"BTC": start, "ETH": 0}  # the vault's positions with what it has applied
    in_flight: dict[str, tuple[str, int]] = {}  # req_id -> (market, lots to the vault)
    applied = 0
    ts = 1
    last = {"headroom": 0}

    def status() -> None:
        last["headroom"] = equity - held_back(held)
        d.send(
            VaultStatus(
                ts=ts,
                account=BACKSTOP_VAULT_ACCOUNT,
                equity=equity,
                maintenance=maintenance(held),
                notional=notional(held),
                takeovers=(applied,),
                terms=terms(),
            )
        )

    def record(outs: list[Any]) -> None:
        for t in of_type(outs, PositionTransfer):
            assert t.to_account == BACKSTOP_VAULT_ACCOUNT and t.px == MARKS[t.market]
            lots = t.sz if t.from_is_long else -t.sz
            in_flight[t.req_id] = (t.market, lots)

    status()
    for n, op in enumerate(ops):
        ts += 1
        if op[0] == "case":
            record(d.send(trigger(f"0x{n:040x}", op[1], op[2], ts)))
        elif op[0] == "status":
            status()
        elif in_flight:
            req_id = sorted(in_flight)[op[1] % len(in_flight)]
            market, lots = in_flight.pop(req_id)
            if op[0] == "apply":
                held[market] += lots
                applied += 1
            else:  # the matcher refused it; the case may ask again
                account = req_id.split(":")[1]
                report = LiquidationReport(
                    ts=ts,
                    account=account,
                    market=market,
                    oid=0,
                    status="transferRejected",
                    req_id=req_id,
                )
                record(d.send(report))
        everything = dict(held)
        for market, lots in in_flight.values():
            everything[market] += lots
        after = equity - held_back(everything)
        headroom = last["headroom"]
        share = max(0, headroom // PARTITIONS)
        # with every takeover in flight applied, this partition used at most its share
        assert after >= headroom - share
        if headroom >= 0:
            assert after >= 0  # equity >= 1.5 x maintenance (+ the stress move)


def test_the_need_bounds_what_the_tiers_add() -> None:
    """A takeover's maintenance, on top of a large position in a higher tier, stays
    within the top rate the need counts: 2 BTC on top of 150 BTC ($14.2M, 20x tier)."""
    table = margin_table(MARKETS.by_name("BTC"))
    before = table.maintenance(15_000_000 * MARKS["BTC"])
    after = table.maintenance(15_200_000 * MARKS["BTC"])
    pos = LiquidatedPosition(
        market="BTC", szi=200_000, entry_ntl=0, mark_px=MARKS["BTC"], maintenance=0
    )
    config = LiquidatorConfig(vault_safety_ppm=PPM)
    need = waterfall.takeover_need(pos, 200_000, MARKS["BTC"], list(terms()), config)
    # 1% (50x) of $189,000 would be $1,890; at 20x it adds $4,725; the need counts 5%
    assert after - before == 4_725_000_000
    assert need == 9_450_000_000 >= after - before
