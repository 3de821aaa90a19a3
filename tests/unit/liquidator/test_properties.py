"""Properties of the waterfall over random books, positions and mark paths: money is
conserved exactly, an account with no position never loses, and one liquidator (the
partition of the account) acts on an account."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.common import topics
from libs.common.schemas import (
    CancelOrder,
    InsuranceClaim,
    LiquidationStep,
    NewOrder,
    PositionTransfer,
)
from libs.common.state import is_liquidation_order
from libs.common.topics import partition_for
from services.liquidator.config import LiquidatorConfig
from tests.unit.cores import Bus
from tests.unit.liquidator.support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    FUND,
    VAULT,
    collateral,
    deposit,
    exchange,
    mark,
    money,
    open_cases,
    place,
    px,
    risk_cores,
    usd,
)

EVE = "0x" + "e5" * 20  # deposits and never trades
TRADERS = [ALICE, BOB, DAVE]


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    return {
        "cash": [draw(st.integers(800, 12_000)) for _ in TRADERS],
        "trades": draw(
            st.lists(
                st.tuples(
                    st.sampled_from(TRADERS),
                    st.sampled_from(TRADERS),
                    st.integers(1, 6),  # tenths of a BTC
                ),
                min_size=1,
                max_size=8,
            )
        ),
        "bids": draw(st.lists(st.integers(1, 8), max_size=4)),  # tenths at 1% steps
        "asks": draw(st.lists(st.integers(1, 8), max_size=4)),
        "fund": draw(st.integers(0, 2_000)),
        "marks": draw(st.lists(st.integers(90_000, 110_000), min_size=1, max_size=8)),
        "slices": draw(st.booleans()),
        "cap": draw(st.sampled_from([0, 15_000, 60_000])),  # USD per second, 0: none
        "unwind": draw(st.booleans()),  # the vault sends what it took over to the book
        # no vault (everything it cannot carry goes to ADL), a thin one, a deep one
        "vault": draw(st.sampled_from([0, 500, 1_000_000])),
    }


def run(case: dict[str, Any]) -> tuple[Bus, int]:
    config = LiquidatorConfig(
        slice_threshold=usd("50000") if case["slices"] else usd("10000000"),
        max_book_notional=usd(str(case["cap"])),
        book_interval_ms=1_000,
        unwind_slice_ppm=250_000 if case["unwind"] else 0,
        unwind_max_notional=usd("50000"),
        unwind_interval_ms=2_000,
        unwind_max_distance_ppm=20_000,
    )
    bus = exchange(config)
    deposits = 0
    for who, cash in zip(TRADERS, case["cash"], strict=True):
        deposit(bus, who, str(cash))
        deposits += usd(str(cash))
    for who, cash in ((CAROL, 500_000), (EVE, 1_000), (FUND, case["fund"]), (VAULT, case["vault"])):
        if cash:
            deposit(bus, who, str(cash))
            deposits += usd(str(cash))
    for buyer, seller, tenths in case["trades"]:
        if buyer != seller:
            size = f"{tenths / 10:.1f}"
            bid = place(bus, buyer, "buy", "100000", size)
            if bid.status == "resting" and bid.oid is not None:
                place(bus, seller, "sell", "100000", size, tif="Ioc")
                cancel = CancelOrder(ts=1, account=buyer, market="BTC", oid=bid.oid)
                bus.publish(topics.RISK_IN, buyer, cancel)  # whatever did not trade
    for i, tenths in enumerate(case["bids"]):
        place(bus, CAROL, "buy", str(99_000 - 1_000 * i), f"{tenths / 10:.1f}")
    for i, tenths in enumerate(case["asks"]):
        place(bus, CAROL, "sell", str(101_000 + 1_000 * i), f"{tenths / 10:.1f}")
    return bus, deposits


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_waterfall_conserves_money_and_spares_accounts_without_positions(
    case: dict[str, Any],
) -> None:
    bus, deposits = run(case)
    assert money(bus) == deposits
    ts = 1_000
    for price in case["marks"]:
        for _ in range(3):  # the mark holds for a few seconds: slices go on
            mark(bus, str(price), ts)
            assert money(bus) == deposits  # trader + vault + fund + ADL + fees, exactly
            ts += 1_000
    assert collateral(bus, EVE) == usd("1000")
    assert collateral(bus, CAROL) >= 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_no_account_pushes_more_than_the_cap_into_the_book_in_one_interval(
    case: dict[str, Any],
) -> None:
    bus, _ = run(case)
    ts, marks = 1_000, {}
    for price in case["marks"]:
        for _ in range(3):
            mark(bus, str(price), ts)
            marks[ts] = px(str(price))
            ts += 1_000
    sent: dict[tuple[str, int], int] = {}
    for out in bus.log:
        msg = out.message
        if isinstance(msg, NewOrder) and is_liquidation_order(msg.oid) and msg.account != VAULT:
            window = (msg.account, msg.ts // 1_000)
            sent[window] = sent.get(window, 0) + msg.sz * marks[msg.ts]
    if case["cap"]:
        assert all(ntl <= usd(str(case["cap"])) for ntl in sent.values())
    # withdrawals wait only while a case is open: none is left holding them
    still_open = {key.split("/")[0] for key in open_cases(bus)}
    for core in risk_cores(bus):
        assert len(core.venue.open_bad_debt) <= len(still_open)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_only_the_accounts_own_partition_acts_on_it(case: dict[str, Any]) -> None:
    bus, _ = run(case)
    ts = 1_000
    for price in case["marks"]:
        mark(bus, str(price), ts)
        ts += 1_000
    for out in bus.log:
        if not out.id.startswith(topics.LIQUIDATIONS + "/"):
            continue
        source = int(out.id.split("/")[1])
        msg = out.message
        if isinstance(msg, NewOrder):
            assert source == partition_for(msg.account, 4)
        elif isinstance(msg, InsuranceClaim):
            assert source == partition_for(msg.beneficiary, 4)
        elif isinstance(msg, PositionTransfer):
            owner = msg.to_account if msg.kind == "adl" else msg.from_account
            assert source == partition_for(owner, 4)
        elif isinstance(msg, LiquidationStep) and msg.stage == "unwind":
            assert source == partition_for(VAULT, 4)  # the vault's own partition
        elif isinstance(msg, LiquidationStep):
            assert int(msg.case_id.split("/")[1]) == source
    # and every case sits on its account's partition
    for (topic, partition), driver in bus.drivers.items():
        if topic == topics.LIQUIDATIONS:
            for key in driver.core.cases.keys():  # type: ignore[attr-defined]
                assert partition_for(key.split("/")[0], 4) == partition
    assert all(isinstance(k, str) for k in open_cases(bus))
