"""The backstop vault takes a case over only within its headroom.

Worked numbers (BTC's top tier is 10x: a takeover adds at most 5% of its notional to the
vault's maintenance; safety factor 1.5x; four liquidator partitions). The vault's status
says $100,000 of equity and no maintenance: its headroom is $100,000, a partition's share
$25,000. Alice's 2 BTC at 94,500 ($189,000) need 1.5 x 5% x $189,000 = $14,175: the vault
takes them, $10,825 left to the partition. Bob's 3 BTC need $21,262.50: refused, ADL
closes them at the mark; Dave takes 0.5 and Carol 2 BTC, the 0.5 left ($3,543.75) fits
in the vault.
"""

from __future__ import annotations

from typing import Any

import msgspec

from libs.common import topics
from libs.common.markets import load_markets
from libs.common.schemas import (
    AdlCandidate,
    AdlCandidates,
    AdlQuery,
    InsuranceAnswer,
    InsuranceClaim,
    LiquidatedPosition,
    LiquidationReport,
    LiquidationStatus,
    LiquidationStep,
    LiquidationTrigger,
    NewOrder,
    PositionTransfer,
    VaultMarketTerms,
    VaultStatus,
)
from libs.common.state import BACKSTOP_VAULT_ACCOUNT
from services.liquidator import waterfall
from services.liquidator.cases import LiquidatorCore
from services.liquidator.config import LiquidatorConfig
from tests.unit.cores import Driver, comparable, of_type, only

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
CAROL = "0x" + "c3" * 20
DAVE = "0x" + "d4" * 20
VAULT = BACKSTOP_VAULT_ACCOUNT
BTC = VaultMarketTerms(market="BTC", maintenance_ppm=50_000)
USD = 1_000_000


def test_btc_terms_are_its_top_tier() -> None:
    """The 5% the worked numbers use is what risk derives from the market table."""
    from libs.common.margin import margin_table

    table = margin_table(load_markets().by_name("BTC"))
    assert max(table.rates) * USD // table.scale == BTC.maintenance_ppm


def core(partition: int = 0) -> Driver:
    return Driver(LiquidatorCore(partition), topics.LIQUIDATIONS, partition)


def vault_status(
    ts: int,
    equity: int,
    maintenance: int = 0,
    takeovers: tuple[int, ...] = (),
    notional: int = 0,
) -> VaultStatus:
    return VaultStatus(
        ts=ts,
        account=VAULT,
        equity=equity,
        maintenance=maintenance,
        notional=notional,
        takeovers=takeovers,
        terms=(BTC,),
    )


def long_btc(lots: int, mark: int) -> LiquidatedPosition:
    return LiquidatedPosition(
        market="BTC", szi=lots, entry_ntl=lots * 1_000_000, mark_px=mark, maintenance=0
    )


def below(
    account: str, ts: int, equity: int, maintenance: int, lots: int, mark: int, reason: str
) -> LiquidationStatus:
    """Risk's status of an account with one long BTC position, below maintenance."""
    return LiquidationStatus(
        ts=ts,
        account=account,
        equity=equity,
        maintenance=maintenance,
        collateral=0,
        positions=(long_btc(lots, mark),),
        below=True,
        reason=reason,
        open_orders=False,
    )


def trigger(account: str, ts: int, equity: int, maintenance: int, lots: int, mark: int) -> Any:
    status = below(account, ts, equity, maintenance, lots, mark, "trigger")
    return LiquidationTrigger(
        ts=ts, account=account, equity=equity, maintenance=maintenance, status=status
    )


def room(d: Driver) -> int:
    return d.core._room(d.ctx)  # type: ignore[attr-defined, no-any-return]


def transfers(outs: list[Any]) -> list[tuple[str, str, int, int, str]]:
    return [
        (t.from_account, t.to_account, t.sz, t.px, t.kind) for t in of_type(outs, PositionTransfer)
    ]


def answers(
    account: str, case_id: str, candidates: list[AdlCandidate], ts: int = 2
) -> list[AdlCandidates]:
    """Every risk partition's answer; the candidates come from partition 2."""
    return [
        AdlCandidates(
            ts=ts,
            account=account,
            market="BTC",
            partition=p,
            mark_px=945_000,
            candidates=tuple(candidates) if p == 2 else (),
            case_id=case_id,
        )
        for p in range(4)
    ]


def test_a_vault_with_room_takes_the_case_over_at_the_mark() -> None:
    d = core()
    d.send(vault_status(1, 100_000 * USD))
    assert room(d) == 25_000 * USD
    outs = d.send(trigger(ALICE, 1, 910 * USD, 1_890 * USD, 200_000, 945_000))
    assert transfers(outs) == [(ALICE, VAULT, 200_000, 945_000, "backstop")]
    step = next(s for s in of_type(outs, LiquidationStep) if s.stage == "backstop")
    assert step.detail == (
        "vault takes 200000 lots at 945000 (equity 910000000, maintenance 1890000000; "
        "uses 14175000000 of the vault's headroom)"
    )
    assert room(d) == 10_825 * USD  # $25,000 - $14,175, until a status reflects it


def test_a_vault_without_room_sends_the_case_to_adl_at_the_mark() -> None:
    d = core()
    d.send(vault_status(1, 100_000 * USD))
    d.send(trigger(ALICE, 1, 910 * USD, 1_890 * USD, 200_000, 945_000))
    # Bob: 3 BTC at 94,500, equity $1,000 >= 0, under 2/3 of maintenance
    outs = d.send(trigger(BOB, 2, 1_000 * USD, 2_835 * USD, 300_000, 945_000))
    assert transfers(outs) == []
    assert len(of_type(outs, AdlQuery)) == 4  # one per risk partition
    adl = next(s for s in of_type(outs, LiquidationStep) if s.stage == "adl")
    assert adl.detail == (
        "vault headroom 10825000000, needs 21262500000: deleverage 300000 lots at the mark 945000"
    )
    assert (adl.px, adl.counterparty) == (945_000, VAULT)
    request = of_type(outs, AdlQuery)[0].case_id
    carol = AdlCandidate(
        account=CAROL, szi=-200_000, entry_ntl=200_000 * USD, account_value=50_000 * USD
    )
    dave = AdlCandidate(
        account=DAVE, szi=-50_000, entry_ntl=49_000 * USD, account_value=10_000 * USD
    )
    outs = d.send_all(answers(BOB, request, [carol, dave]))
    # Dave (score 4.9) before Carol (4.0), both at the mark; the 0.5 BTC nobody took
    # ($3,543.75 of headroom) fits in the $10,825 left
    assert transfers(outs) == [
        (DAVE, BOB, 50_000, 945_000, "adl"),
        (CAROL, BOB, 200_000, 945_000, "adl"),
        (BOB, VAULT, 50_000, 945_000, "backstop"),
    ]
    closes = [s.detail for s in of_type(outs, LiquidationStep) if s.stage == "adl"]
    assert closes[0] == f"{DAVE} closes 50000 lots against {BOB} at the mark 945000"
    assert room(d) == 10_825 * USD - 3_543_750_000


def test_negative_equity_goes_to_adl_at_bankruptcy_and_what_nobody_takes_stays() -> None:
    d = core()
    # $10,000 of equity against $8,000 of maintenance: 1.5x needs $12,000, no headroom
    d.send(vault_status(1, 10_000 * USD, 8_000 * USD))
    assert room(d) == -500 * USD
    outs = d.send(trigger(ALICE, 1, -90 * USD, 1_880 * USD, 200_000, 940_000))
    claim = only(outs, InsuranceClaim)
    assert claim.usd == 90 * USD
    empty = InsuranceAnswer(
        ts=2, account=ALICE, usd=90 * USD, granted=False, balance=0, case_id=claim.case_id
    )
    outs = d.send(empty)
    adl = next(s for s in of_type(outs, LiquidationStep) if s.stage == "adl")
    # as before: the bankruptcy price 94,045 leaves Alice at exactly zero
    assert adl.detail == (
        "fund cannot cover 90000000: deleverage 200000 lots at bankruptcy price 940450 "
        "(mark 940000)"
    )
    request = of_type(outs, AdlQuery)[0].case_id
    outs = d.send_all(answers(ALICE, request, []))
    assert transfers(outs) == []  # no candidate, and the vault cannot carry it
    step = only(outs, LiquidationStep)
    # 200,000 lots at 94,045 against a mark of 94,000: $90 of loss, plus 1.5 x 5% of
    # $188,000 = $14,100
    assert (step.stage, step.detail) == (
        "capacity",
        "vault headroom -500000000, needs 14190000000: 200000 lots stay with the account "
        "until the vault has room or ADL finds candidates",
    )
    case = d.core.cases[ALICE]  # type: ignore[attr-defined]
    assert (case.parked, case.parked_need) == (2, 14_190 * USD)
    # a status with room retries the case: the fund, ADL, then the vault at 94,045
    outs = d.send(vault_status(3, 100_000 * USD))
    claim = only(outs, InsuranceClaim)
    outs = d.send(
        InsuranceAnswer(
            ts=3, account=ALICE, usd=90 * USD, granted=False, balance=0, case_id=claim.case_id
        )
    )
    request = of_type(outs, AdlQuery)[0].case_id
    outs = d.send_all(answers(ALICE, request, []))
    assert transfers(outs) == [(ALICE, VAULT, 200_000, 940_450, "backstop")]
    assert room(d) == 25_000 * USD - 14_190 * USD


def test_a_parked_case_waits_for_the_cooldown_without_a_status() -> None:
    d = core()
    d.send(vault_status(1, 10_000 * USD, 8_000 * USD))
    outs = d.send(trigger(ALICE, 1_000, 500 * USD, 1_880 * USD, 200_000, 940_000))
    request = of_type(outs, AdlQuery)[0].case_id
    d.send_all(answers(ALICE, request, [], 1_000))
    mark = below(ALICE, 1_500, 400 * USD, 1_880 * USD, 200_000, 939_500, "mark")
    assert d.send(mark) == []  # within the cooldown (1 s): nothing asked again
    later = msgspec.structs.replace(mark, ts=2_000)
    assert len(of_type(d.send(later), AdlQuery)) == 4  # ADL is asked again


def test_the_partitions_together_stay_within_the_headroom() -> None:
    drivers = [core(p) for p in range(4)]
    sent = 0
    config = LiquidatorConfig()
    for p, d in enumerate(drivers):
        d.send(vault_status(1, 100_000 * USD))
        for n, account in enumerate((f"0x{p}" + "e" * 39, f"0x{p}" + "f" * 39)):
            outs = d.send(trigger(account, 1, 910 * USD, 1_890 * USD, 200_000, 945_000))
            for t in of_type(outs, PositionTransfer):
                sent += waterfall.takeover_need(long_btc(t.sz, t.px), t.sz, t.px, [BTC], config)
            assert len(of_type(outs, PositionTransfer)) == (1 if n == 0 else 0)
    # each partition took one case ($14,175) of its $25,000 and refused the second
    assert sent == 4 * 14_175 * USD <= 100_000 * USD


def test_a_status_reflecting_a_takeover_releases_it_so_does_a_refused_transfer() -> None:
    d = core()
    d.send(vault_status(1, 100_000 * USD))
    outs = d.send(trigger(ALICE, 1, 910 * USD, 1_890 * USD, 200_000, 945_000))
    req_id = only(outs, PositionTransfer).req_id
    d.send(vault_status(2, 99_000 * USD))  # a mark: the takeover is not in it yet
    assert room(d) == 24_750 * USD - 14_175 * USD
    # the vault's fill: 2 BTC at 94,500 add $1,890 of maintenance (50x tier, 1%)
    d.send(vault_status(3, 100_000 * USD, 1_890 * USD, (1, 0, 0, 0)))
    assert room(d) == (100_000 * USD - 2_835 * USD) // 4  # $24,291.25
    # Bob's takeover is refused by the matcher: its reservation goes at once
    d.send(trigger(BOB, 4, 910 * USD, 1_890 * USD, 200_000, 945_000))
    assert room(d) == 24_291_250_000 - 14_175 * USD
    bob = [m for m in d.core.vault.pending]  # type: ignore[attr-defined]
    assert [r.need for r in bob] == [14_175 * USD] and bob[0].req_id != req_id
    refused = LiquidationReport(
        ts=5,
        account=BOB,
        market="BTC",
        oid=0,
        status="transferRejected",
        error="Cannot transfer 200000 lots: the position holds 0.",
        req_id=bob[0].req_id,
    )
    outs = d.send(refused)
    # released, and the case (nothing outstanding now) asks again with a new request
    again = only(outs, PositionTransfer)
    pending = d.core.vault.pending  # type: ignore[attr-defined]
    assert [r.req_id for r in pending] == [again.req_id] != [bob[0].req_id]
    assert room(d) == 24_291_250_000 - 14_175 * USD


def test_takeovers_reflected_out_of_order_release_the_smallest_first() -> None:
    d = core()
    d.send(vault_status(1, 100_000 * USD))
    d.send(trigger(ALICE, 1, 500 * USD, 1_890 * USD, 100_000, 945_000))  # $7,087.50
    d.send(trigger(BOB, 1, 500 * USD, 1_890 * USD, 200_000, 945_000))  # $14,175
    assert room(d) == 25_000 * USD - 21_262_500_000
    # one of the two is in the vault, the status does not say which: the larger stays
    d.send(vault_status(2, 100_000 * USD, 945 * USD, (1,)))
    share = (100_000 * USD - 1_417_500_000) // 4
    assert room(d) == share - 14_175 * USD


def test_the_capacity_and_parked_cases_survive_a_restart() -> None:
    def factory(partition: int) -> LiquidatorCore:
        return LiquidatorCore(partition)

    d = core()
    d.send(vault_status(1, 10_000 * USD, 8_000 * USD))
    outs = d.send(trigger(ALICE, 1_000, 500 * USD, 1_880 * USD, 200_000, 940_000))
    request = of_type(outs, AdlQuery)[0].case_id
    d.send_all(answers(ALICE, request, [], 1_000))
    d.send(vault_status(1_100, 10_000 * USD, 8_000 * USD))  # still no room
    d.commit()
    restarted = d.restarted(factory)
    assert restarted.core.vault == d.core.vault  # type: ignore[attr-defined]
    assert restarted.core._parked == {ALICE}  # type: ignore[attr-defined]
    room_now = vault_status(1_200, 100_000 * USD)
    outs = d.send(room_now)
    assert comparable(restarted.send(room_now)) == comparable(outs)
    # the parked case retried on both: the vault now carries its $14,100
    assert transfers(outs) == [(ALICE, VAULT, 200_000, 940_000, "backstop")]
    assert restarted.core.take_changes() == d.core.take_changes()


def test_no_status_means_no_room() -> None:
    d = core()
    outs = d.send(trigger(ALICE, 1, 910 * USD, 1_890 * USD, 200_000, 945_000))
    assert transfers(outs) == []
    adl = next(s for s in of_type(outs, LiquidationStep) if s.stage == "adl")
    # no terms either: the whole $189,000 counts as maintenance, x 1.5
    assert adl.detail.startswith("vault headroom 0, needs 283500000000: deleverage")


def test_a_refused_takeover_a_status_had_counted_releases_one_that_landed() -> None:
    d = core()
    d.send(vault_status(1, 100_000 * USD))
    alice = only(
        d.send(trigger(ALICE, 1, 500 * USD, 1_890 * USD, 100_000, 945_000)), PositionTransfer
    )
    d.send(trigger(BOB, 1, 500 * USD, 1_890 * USD, 200_000, 945_000))
    # Bob's 2 BTC land ($1,890 of maintenance); the count alone cannot say whose: the
    # smaller, Alice's $7,087.50, is released and Bob's $14,175 stays reserved
    d.send(vault_status(2, 100_000 * USD, 1_890 * USD, (1,)))
    vault = d.core.vault  # type: ignore[attr-defined]
    assert vault.reserved == 14_175 * USD
    refused = LiquidationReport(
        ts=3,
        account=ALICE,
        market="BTC",
        oid=0,
        status="transferRejected",
        req_id=alice.req_id,
    )
    outs = d.send(refused)
    # Alice's was never in the vault: the one that landed (Bob's) is released; Alice's
    # case asks again and reserves its $7,087.50 anew
    again = only(outs, PositionTransfer)
    assert [(r.req_id, r.need) for r in vault.pending] == [(again.req_id, 7_087_500_000)]
    assert vault.reserved == 7_087_500_000


def test_through_risk_and_the_matcher_a_full_vault_sends_the_case_to_adl_at_the_mark() -> None:
    """The whole loop in-process: the vault's partition reports $1,000 of equity (a
    partition's share $250); Alice's 0.5 BTC at 94,300 need 1.5 x 5% x $47,150 =
    $3,536.25, so Bob's short closes them at the mark and Alice keeps her $142.50."""
    from tests.unit.liquidator import support

    bus = support.exchange()
    for who, cash in ((ALICE, "3000"), (BOB, "12000"), (VAULT, "1000")):
        support.deposit(bus, who, cash)
    deposits = support.usd("16000")
    support.place(bus, ALICE, "buy", "100000", "0.5")
    support.place(bus, BOB, "sell", "100000", "0.5", tif="Ioc")
    got = support.mark(bus, "94300", 1_000)
    adl = [s for s in got if s.stage == "adl" and s.account == ALICE]
    assert adl[0].detail == (
        "vault headroom 250000000, needs 3536250000: deleverage 50000 lots at the mark 943000"
    )
    assert adl[1].detail == f"{BOB} closes 50000 lots against {ALICE} at the mark 943000"
    assert [support.szi(bus, who) for who in (ALICE, BOB, VAULT)] == [0, 0, 0]
    assert support.collateral(bus, ALICE) == support.usd("142.5")
    assert support.collateral(bus, VAULT) == support.usd("1000")  # untouched
    assert support.money(bus) == deposits
    assert support.open_cases(bus) == []


def test_a_stress_move_counts_against_what_the_vault_holds_and_takes() -> None:
    """With a 10% stress move: Alice's 2 BTC need $14,175 + 10% of $189,000 = $33,075,
    more than the $25,000 share: ADL. Bob's 1 BTC needs $7,087.50 + $9,450 = $16,537.50
    and fits. Once the vault holds it (maintenance $945, notional $94,500), the headroom
    is $100,000 - $1,417.50 - $9,450: a share of $22,283.125."""
    d = Driver(LiquidatorCore(0, LiquidatorConfig(vault_stress_ppm=100_000)), topics.LIQUIDATIONS)
    d.send(vault_status(1, 100_000 * USD))
    outs = d.send(trigger(ALICE, 1, 910 * USD, 1_890 * USD, 200_000, 945_000))
    assert transfers(outs) == []
    adl = next(s for s in of_type(outs, LiquidationStep) if s.stage == "adl")
    assert adl.detail.startswith("vault headroom 25000000000, needs 33075000000: deleverage")
    outs = d.send(trigger(BOB, 1, 500 * USD, 945 * USD, 100_000, 945_000))
    assert transfers(outs) == [(BOB, VAULT, 100_000, 945_000, "backstop")]
    d.send(vault_status(2, 100_000 * USD, 945 * USD, (1,), notional=94_500 * USD))
    assert room(d) == 22_283_125_000


def position(market: str, lots: int, mark: int) -> LiquidatedPosition:
    return LiquidatedPosition(
        market=market, szi=lots, entry_ntl=lots * mark, mark_px=mark, maintenance=0
    )


def test_a_takeover_refused_after_the_account_recovered_is_released_all_the_same() -> None:
    """Alice's 1 BTC at 94,500 ($94,500: needs 1.5 x 5% = $7,087.50) and 10 ETH at
    3,500 ($35,000: needs $2,625) both go to the vault. The BTC takeover lands and
    lifts her above maintenance while the ETH one is still on its way, then refused:
    the case waits for it, releases the ETH reservation by its id, and the next status
    counting the BTC takeover leaves the partition its whole share again ($25,000)."""
    eth = VaultMarketTerms(market="ETH", maintenance_ppm=50_000)
    d = core()
    d.send(VaultStatus(ts=1, account=VAULT, equity=100_000 * USD, maintenance=0, terms=(BTC, eth)))
    assert room(d) == 25_000 * USD
    both = (position("BTC", 100_000, 945_000), position("ETH", 1_000_000, 35_000))
    status = LiquidationStatus(
        ts=1,
        account=ALICE,
        equity=500 * USD,
        maintenance=2_000 * USD,
        collateral=0,
        positions=both,
        below=True,
        reason="trigger",
        open_orders=False,
    )
    outs = d.send(
        LiquidationTrigger(
            ts=1, account=ALICE, equity=500 * USD, maintenance=2_000 * USD, status=status
        )
    )
    sent = {t.market: t for t in of_type(outs, PositionTransfer)}
    assert sorted(sent) == ["BTC", "ETH"]
    assert room(d) == 25_000 * USD - 7_087_500_000 - 2_625 * USD
    # the BTC takeover lands: above maintenance, the ETH transfer still on its way
    landed = msgspec.structs.replace(
        status, ts=2, maintenance=300 * USD, positions=both[1:], below=False, reason="backstop"
    )
    outs = d.send(landed)
    assert not [s for s in of_type(outs, LiquidationStep) if s.stage == "recovered"]
    assert d.core.cases.get(ALICE) is not None
    refused = LiquidationReport(
        ts=3,
        account=ALICE,
        market="ETH",
        oid=0,
        status="transferRejected",
        filled_sz=0,
        error="no position",
        req_id=sent["ETH"].req_id,
    )
    outs = d.send(refused)
    assert [s.stage for s in of_type(outs, LiquidationStep)][-1] == "recovered"
    assert d.core.cases.get(ALICE) is None
    assert room(d) == 25_000 * USD - 7_087_500_000  # only BTC's need is still reserved
    d.send(
        VaultStatus(
            ts=4,
            account=VAULT,
            equity=100_000 * USD,
            maintenance=0,
            takeovers=(1,),
            terms=(BTC, eth),
        )
    )
    assert room(d) == 25_000 * USD


def test_cases_a_status_unparks_send_their_orders_under_distinct_oids() -> None:
    """Alice and Bob are parked (a full vault, no ADL candidate); the mark bounces to
    equity $1,500 against $1,890 of maintenance (above 2/3 of it: the book's turn);
    one status with room unparks both in the same record: two orders, two oids."""
    d = core()
    for who in (ALICE, BOB):
        outs = d.send(trigger(who, 1, 1_000 * USD, 1_890 * USD, 200_000, 945_000))
        query = of_type(outs, AdlQuery)[0]
        d.send_all(answers(who, query.case_id, [], ts=2))
        assert d.core.cases.get(who).parked >= 0  # type: ignore[attr-defined]
    for who in (ALICE, BOB):
        d.send(below(who, 3, 1_500 * USD, 1_890 * USD, 200_000, 945_000, "mark"))
    outs = d.send(vault_status(4, 10_000_000 * USD))
    orders = of_type(outs, NewOrder)
    assert sorted(o.account for o in orders) == [ALICE, BOB]
    assert len({o.oid for o in orders}) == 2
