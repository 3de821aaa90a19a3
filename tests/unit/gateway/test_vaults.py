"""vaultDetails and userVaultEquities rendered from a vault's ledger and account.

The vault holds $1,400 of collateral and 0.1 BTC bought at 100,000, marked at 104,000:
equity $1,800 over 1.5e9 shares (NAV 1.2). Alice holds 1e9 shares ($1,200, she put in
$1,000), Bob 5e8 ($600 for his $400); the position keeps 10% of its $10,400 in the
vault: $760 is free."""

from __future__ import annotations

from libs.common.markets import load_markets
from libs.common.state import (
    BACKSTOP_VAULT_ACCOUNT,
    AccountState,
    PositionState,
    VaultShares,
    VaultStake,
)
from services.gateway.vaults import VaultView

MARKETS = load_markets()
BTC = MARKETS.by_name("BTC")
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
DAY = 86_400_000


def view() -> VaultView:
    ledger = VaultShares(
        vault=BACKSTOP_VAULT_ACCOUNT,
        total_shares=1_500_000_000,
        stakes={
            ALICE: VaultStake(
                shares=1_000_000_000,
                locked_until=1_000 + 4 * DAY,
                entered=1_000,
                deposited=1_000_000_000,
            ),
            BOB: VaultStake(
                shares=500_000_000,
                locked_until=2_000 + 4 * DAY,
                entered=2_000,
                deposited=400_000_000,
            ),
        },
    )
    account = AccountState(
        address=BACKSTOP_VAULT_ACCOUNT,
        collateral=1_400_000_000,
        positions={
            "BTC": PositionState(
                market="BTC", szi=BTC.size_units("0.1"), entry_ntl=10_000_000_000, leverage=20
            )
        },
    )
    marks = {"BTC": BTC.price_units("104000")}
    return VaultView(BACKSTOP_VAULT_ACCOUNT, ledger, account, marks, MARKETS)


def test_an_lps_equity_is_its_shares_at_nav() -> None:
    v = view()
    assert v.user_equity(ALICE) == {
        "vaultAddress": BACKSTOP_VAULT_ACCOUNT,
        "equity": "1200",
        "lockedUntilTimestamp": 345_601_000,
    }
    assert v.user_equity("0x" + "c3" * 20) is None


def test_vault_details_in_hyperliquids_shape() -> None:
    details = view().details(BOB, 2_000 + 5 * DAY)
    assert details["followerState"] == {
        "user": BOB,
        "vaultEquity": "600",
        "pnl": "200",
        "allTimePnl": "200",
        "daysFollowing": 5,
        "vaultEntryTime": 2_000,
        "lockupUntil": 345_602_000,
    }
    assert [f["user"] for f in details["followers"]] == [ALICE, BOB]
    assert (details["maxWithdrawable"], details["navPerShare"], details["totalShares"]) == (
        "760",
        "1.2",
        "1500000000",
    )
    assert details["leaderFraction"] == "0.0"
    assert details["allowDeposits"] is True
    assert view().details(None, 0)["followerState"] is None
