"""The backstop vault's LPs, across the four risk partitions: deposits priced at NAV,
lock-ups, withdrawals within the vault's free collateral, and the liquidation fee's
share for the LPs. Every amount is worked by hand below.

Alice puts $1,000 into an empty vault: 1 share per micro-dollar, 1,000,000,000 shares
(NAV 1). The vault takes 0.1 BTC over at 100,000 and the mark falls to 98,000: equity
$1,000 - $200 = $800, NAV 0.8. Bob's $400 then buys 400 / 0.8 = 500,000,000 shares
(NAV stays 0.8: $1,200 over 1.5e9 shares). At 104,000 the position gains $400: equity
$1,800, NAV 1.2; Alice's stake is worth $1,200, Bob's $600."""

from __future__ import annotations

from libs.common import topics
from libs.common.runtime import Output
from libs.common.schemas import (
    ActionResult,
    BalanceUpdate,
    Deposit,
    FillLeg,
    MarkUpdate,
    Message,
    TransferIn,
    VaultTransfer,
    VaultUpdate,
)
from libs.common.state import (
    BACKSTOP_VAULT_ACCOUNT,
    INSURANCE_FUND_ACCOUNT,
    AccountState,
    VaultShares,
    liquidation_order_id,
)
from libs.common.topics import partition_for
from services.risk.config import RiskConfig
from services.risk.engine import RiskCore
from tests.unit.cores import Bus, of_type
from tests.unit.risk.support import ALICE, BOB, CAROL, MARKETS, lots, px, usd

VAULT = BACKSTOP_VAULT_ACCOUNT
FUND = INSURANCE_FUND_ACCOUNT
DAY = 86_400_000
LOCKUP = 4 * DAY
DAVE = "0x" + "d4" * 20


def venue(config: RiskConfig | None = None) -> Bus:
    bus = Bus()
    bus.attach(topics.RISK_IN, lambda p: RiskCore(MARKETS, p, config))
    return bus


def cores(bus: Bus) -> list[RiskCore]:
    return [d.core for (t, _), d in sorted(bus.drivers.items())]  # type: ignore[misc]


def send(bus: Bus, key: str, message: Message) -> list[Output]:
    return bus.publish(topics.RISK_IN, key, message)


def broadcast(bus: Bus, message: Message) -> None:
    for p in range(4):
        d = bus.drivers[(topics.RISK_IN, p)]
        for out in d.send(message):
            bus.log.append(out)


def acct(bus: Bus, address: str) -> AccountState:
    core = cores(bus)[partition_for(address, 4)]
    return core.accounts[address]


def ledger(bus: Bus) -> VaultShares:
    found = cores(bus)[partition_for(VAULT, 4)].vaults.get(VAULT)
    assert found is not None
    return found


def shares(bus: Bus, lp: str) -> int:
    stake = ledger(bus).stakes.get(lp)
    return stake.shares if stake else 0


def money(bus: Bus) -> int:
    """Every micro-dollar: accounts with positions at cost, and every partition's ledger."""
    total = 0
    for core in cores(bus):
        total += core.venue.total
        for a in core.accounts.values():
            total += a.collateral
            for pos in a.positions.values():
                basis = pos.entry_ntl if pos.szi > 0 else -pos.entry_ntl
                total += pos.isolated_margin - basis
    return total


def vault_transfer(lp: str, amount: str, ts: int, deposit: bool = True) -> VaultTransfer:
    return VaultTransfer(
        ts=ts, account=lp, vault=VAULT, is_deposit=deposit, usd=usd(amount), req_id=f"v{ts}"
    )


def answer(outs: list[Output]) -> str | None:
    (result,) = [r for r in of_type(outs, ActionResult) if r.action == "vaultTransfer"]
    return result.error


def mark(bus: Bus, price: str, ts: int) -> None:
    broadcast(bus, MarkUpdate(ts=ts, market="BTC", mark_px=px(price), index_px=px(price)))


def takeover(bus: Bus, price: str, size: str, ts: int) -> None:
    """The vault takes a long over from Carol (both legs of a backstop fill)."""
    for who, buys in ((VAULT, True), (CAROL, False)):
        leg = FillLeg(
            ts=ts,
            account=who,
            market="BTC",
            oid=0,
            is_buy=buys,
            px=px(price),
            sz=lots(size),
            is_maker=False,
            tid=ts,
            order_closed=True,
            kind="backstop",
        )
        send(bus, who, leg)


DEPOSITS = usd("10000") + usd("20000") + usd("50000")


def funded() -> Bus:
    bus = venue()
    for who, amount in ((ALICE, "10000"), (BOB, "20000"), (CAROL, "50000")):
        send(bus, who, Deposit(ts=1, account=who, usd=usd(amount)))
    mark(bus, "100000", 2)
    return bus


def alice_then_bob() -> Bus:
    """Alice at NAV 1, a $200 loss, Bob at NAV 0.8 (the module's story)."""
    bus = funded()
    assert answer(send(bus, ALICE, vault_transfer(ALICE, "1000", 1_000))) is None
    takeover(bus, "100000", "0.1", 1_100)
    mark(bus, "98000", 1_200)
    assert answer(send(bus, BOB, vault_transfer(BOB, "400", 2_000))) is None
    return bus


def test_the_first_deposit_buys_one_share_per_micro_dollar_and_is_locked_four_days() -> None:
    bus = funded()
    outs = send(bus, ALICE, vault_transfer(ALICE, "1000", 1_000))
    assert answer(outs) is None
    assert acct(bus, ALICE).collateral == usd("9000")
    assert acct(bus, VAULT).collateral == usd("1000")
    assert shares(bus, ALICE) == 1_000_000_000 == ledger(bus).total_shares
    assert ledger(bus).stakes[ALICE].locked_until == 1_000 + LOCKUP
    (update,) = of_type(outs, VaultUpdate)
    assert (update.usd, update.shares, update.vault_equity, update.total_shares) == (
        usd("1000"),
        1_000_000_000,
        usd("1000"),
        1_000_000_000,
    )
    assert update.locked_until == 345_601_000
    # the LP's debit and the vault's credit are both on account.events
    moves = [(b.account, b.delta, b.reason) for b in of_type(outs, BalanceUpdate)]
    assert moves == [(ALICE, -usd("1000"), "vaultDeposit"), (VAULT, usd("1000"), "vaultDeposit")]
    assert money(bus) == DEPOSITS


def test_a_loss_moves_nav_and_the_second_lp_gets_more_shares_per_dollar() -> None:
    bus = alice_then_bob()
    assert shares(bus, ALICE) == 1_000_000_000
    assert shares(bus, BOB) == 500_000_000  # $400 at NAV 0.8
    assert ledger(bus).total_shares == 1_500_000_000
    (update,) = of_type(bus.log, VaultUpdate)[1:]
    assert (update.vault_equity, update.total_shares) == (usd("1200"), 1_500_000_000)
    assert acct(bus, BOB).collateral == usd("19600")
    assert money(bus) == DEPOSITS


def test_a_withdrawal_inside_the_lock_up_is_refused_and_changes_nothing() -> None:
    bus = alice_then_bob()
    before = (acct(bus, ALICE).collateral, acct(bus, VAULT).collateral, shares(bus, ALICE))
    outs = send(bus, ALICE, vault_transfer(ALICE, "100", 1_000 + DAY, deposit=False))
    assert answer(outs) == "Vault deposit is locked until 345601000."
    after = (acct(bus, ALICE).collateral, acct(bus, VAULT).collateral, shares(bus, ALICE))
    assert after == before
    # a later deposit pushes the lock-up out to four days after it
    send(bus, ALICE, vault_transfer(ALICE, "1", 3 * DAY))
    assert ledger(bus).stakes[ALICE].locked_until == 7 * DAY


def test_a_withdrawal_after_a_gain_is_paid_at_nav() -> None:
    bus = alice_then_bob()
    mark(bus, "104000", 3_000)  # +$400: equity $1,800 over 1.5e9 shares, NAV 1.2
    outs = send(bus, ALICE, vault_transfer(ALICE, "600", 1_000 + LOCKUP, deposit=False))
    assert answer(outs) is None
    # $600 at NAV 1.2 burns 500,000,000 of Alice's 1,000,000,000 shares
    assert shares(bus, ALICE) == 500_000_000
    assert ledger(bus).total_shares == 1_000_000_000
    assert acct(bus, ALICE).collateral == usd("9600")
    assert acct(bus, VAULT).collateral == usd("800")  # 1,000 + 400 - 600
    (update,) = of_type(outs, VaultUpdate)
    assert (update.usd, update.shares, update.vault_equity) == (
        -usd("600"),
        -500_000_000,
        usd("1200"),
    )
    # everyone else's stake is worth what it was: Bob's 5e8 shares of $1,200 / 1e9
    assert update.vault_equity * shares(bus, BOB) // update.total_shares == usd("600")
    assert money(bus) == DEPOSITS


def test_a_withdrawal_is_refused_while_the_vaults_collateral_is_margin() -> None:
    bus = alice_then_bob()
    mark(bus, "104000", 3_000)
    send(bus, ALICE, vault_transfer(ALICE, "600", 1_000 + LOCKUP, deposit=False))
    # equity $1,200 must keep 10% of the $10,400 position: $160 is free, Bob's $600 is not
    outs = send(bus, BOB, vault_transfer(BOB, "600", 2_000 + LOCKUP, deposit=False))
    assert (
        answer(outs)
        == "The vault cannot pay $600 now: only $160 of its collateral is free of margin."
    )
    assert shares(bus, BOB) == 500_000_000
    assert acct(bus, BOB).collateral == usd("19600")
    assert answer(send(bus, BOB, vault_transfer(BOB, "160", 2_000 + LOCKUP, deposit=False))) is None
    # $160 at NAV 1.2 burns ceil(160 / 1.2) = 133,333,334 shares: the rounding is the vault's
    assert shares(bus, BOB) == 500_000_000 - 133_333_334
    assert money(bus) == DEPOSITS


def test_withdrawing_all_of_ones_equity_burns_every_share() -> None:
    bus = alice_then_bob()
    mark(bus, "104000", 3_000)
    over = send(bus, BOB, vault_transfer(BOB, "600.000001", 2_000 + LOCKUP, deposit=False))
    assert answer(over) == "Withdrawal of $600.000001 exceeds your vault equity of $600."
    mark(bus, "103000", 4_000)  # equity $1,700 over 1.5e9 shares, $670 of it free
    # Bob's 5e8 shares are worth floor(5e8 x 1,700e6 / 1.5e9) = $566.666666
    out = send(bus, BOB, vault_transfer(BOB, "566.666666", 2_000 + LOCKUP, deposit=False))
    assert answer(out) is None
    assert BOB not in ledger(bus).stakes
    assert ledger(bus).total_shares == 1_000_000_000
    assert acct(bus, BOB).collateral == usd("19600") + usd("566.666666")
    # the sub-micro-dollar Bob left behind is Alice's: her 1e9 shares were worth
    # $1,133.333333 before and are worth $1,700 - $566.666666 = $1,133.333334 now
    assert acct(bus, VAULT).collateral == usd("1400") - usd("566.666666")
    assert money(bus) == DEPOSITS


def test_equity_already_in_the_vault_becomes_the_venues_own_stake() -> None:
    bus = funded()
    send(bus, VAULT, Deposit(ts=3, account=VAULT, usd=usd("500")))  # the operator's seed
    send(bus, ALICE, vault_transfer(ALICE, "1000", 1_000))
    assert shares(bus, VAULT) == 500_000_000
    assert shares(bus, ALICE) == 1_000_000_000
    assert ledger(bus).stakes[VAULT].locked_until == 0


def test_bad_requests_are_refused_with_a_reason_and_change_nothing() -> None:
    bus = alice_then_bob()
    snapshot = {a: acct(bus, a).collateral for a in (ALICE, BOB, VAULT)}
    total = ledger(bus).total_shares
    cases = [
        (vault_transfer(ALICE, "9000.000001", 5_000), "Insufficient balance."),
        (vault_transfer(DAVE, "1", 5_000), "Insufficient balance."),
        (vault_transfer(ALICE, "0", 5_000), "Amount must be positive."),
        (
            VaultTransfer(ts=5_000, account=ALICE, vault=DAVE, is_deposit=True, usd=1, req_id="x"),
            f"Vault {DAVE} does not exist.",
        ),
        (vault_transfer(CAROL, "1", LOCKUP * 2, deposit=False), "No vault shares to withdraw."),
        (
            vault_transfer(ALICE, "800.000001", LOCKUP * 2, deposit=False),
            "Withdrawal of $800.000001 exceeds your vault equity of $800.",
        ),
    ]
    for message, error in cases:
        assert answer(send(bus, message.account, message)) == error
    assert {a: acct(bus, a).collateral for a in (ALICE, BOB, VAULT)} == snapshot
    assert ledger(bus).total_shares == total
    assert money(bus) == DEPOSITS


def test_a_deposit_into_a_vault_without_equity_is_refunded() -> None:
    bus = alice_then_bob()
    mark(bus, "80000", 3_000)  # the position lost $2,000: equity -$600
    outs = send(bus, CAROL, vault_transfer(CAROL, "1000", 4_000))
    assert answer(outs) == "The vault's equity is not positive: deposits are closed."
    refunds = [(b.account, b.delta, b.reason) for b in of_type(outs, BalanceUpdate)]
    assert refunds == [(CAROL, -usd("1000"), "vaultDeposit"), (CAROL, usd("1000"), "vaultRefund")]
    assert shares(bus, CAROL) == 0
    assert money(bus) == DEPOSITS


def test_a_deposit_worth_less_than_a_share_is_refunded() -> None:
    bus = alice_then_bob()
    mark(bus, "200000", 3_000)  # +$10,000 at cost: equity $11,400 over 1.5e9 shares
    # 7 micro-dollars buy floor(7 x 1.5e9 / 11,400e6) = floor(0.92) = no share
    outs = send(bus, CAROL, vault_transfer(CAROL, "0.000007", 4_000))
    assert answer(outs) == "Deposit is worth less than one vault share."
    assert acct(bus, CAROL).collateral == usd("50000")
    assert shares(bus, CAROL) == 0
    assert money(bus) == DEPOSITS


def test_the_vault_gets_its_share_of_every_liquidation_fee() -> None:
    bus = funded()
    # Dave long 0.1 BTC from 100,000; the liquidator sells it at 95,000 ($9,500)
    send(bus, DAVE, Deposit(ts=3, account=DAVE, usd=usd("1000")))
    for who, buys, oid in ((DAVE, True, 7), (CAROL, False, 8)):
        send(bus, who, _trade(who, buys, "100000", oid, 4))
    oid = liquidation_order_id(1, 0)
    outs = send(bus, DAVE, _trade(DAVE, False, "95000", oid, 5))
    send(bus, CAROL, _trade(CAROL, True, "95000", 9, 5))
    # 0.25% of $9,500 = $23.75: half to the vault, half to the fund
    fees = [(t.account, t.usd) for t in of_type(outs, TransferIn)]
    assert fees == [(FUND, usd("11.875")), (VAULT, usd("11.875"))]
    assert acct(bus, VAULT).collateral == usd("11.875")
    assert acct(bus, FUND).collateral == usd("11.875")
    assert money(bus) == DEPOSITS + usd("1000")


def test_the_liquidation_fee_share_is_configurable() -> None:
    bus = venue(RiskConfig(vault_liquidation_fee_share_ppm=0))
    send(bus, DAVE, Deposit(ts=3, account=DAVE, usd=usd("1000")))
    send(bus, CAROL, Deposit(ts=3, account=CAROL, usd=usd("50000")))
    for who, buys, oid in ((DAVE, True, 7), (CAROL, False, 8)):
        send(bus, who, _trade(who, buys, "100000", oid, 4))
    outs = send(bus, DAVE, _trade(DAVE, False, "95000", liquidation_order_id(1, 0), 5))
    assert [(t.account, t.usd) for t in of_type(outs, TransferIn)] == [(FUND, usd("23.75"))]


def _trade(who: str, buys: bool, price: str, oid: int, ts: int) -> FillLeg:
    return FillLeg(
        ts=ts,
        account=who,
        market="BTC",
        oid=oid,
        is_buy=buys,
        px=px(price),
        sz=lots("0.1"),
        is_maker=True,
        tid=ts,
        order_closed=True,
    )


def test_usdc_borrowed_against_collateral_assets_cannot_buy_vault_shares() -> None:
    bus = funded()
    # Dave holds 1 BTC (worth $95,000 after its haircut) and $100 of USDC: only the
    # USDC he owns may leave his account, as for a withdrawal or a transfer
    send(bus, DAVE, Deposit(ts=3, account=DAVE, usd=0, asset="BTC", amount=lots("1")))
    send(bus, DAVE, Deposit(ts=3, account=DAVE, usd=usd("100")))
    assert answer(send(bus, DAVE, vault_transfer(DAVE, "100.000001", 1_000))) == (
        "Insufficient balance."
    )
    assert acct(bus, DAVE).collateral == usd("100")
    assert answer(send(bus, DAVE, vault_transfer(DAVE, "100", 1_001))) is None
    assert (acct(bus, DAVE).collateral, shares(bus, DAVE)) == (0, 100_000_000)
