"""The vault reads of /info, ``vaultDetails`` and ``userVaultEquities``, rendered from
the vault's LP ledger and account as its risk partition last committed them.

Hyperliquid's shapes, filled with what this venue has: an LP's equity is its shares at
NAV (vault value at the marks / total shares, rounded down), its PnL is that equity plus
what it took out less what it put in. There is no performance history here, so
``portfolio`` is empty and ``apr`` 0; the venue's own stake (the vault's equity before
its first LP) is the ``Leader``'s and takes no commission. Fractions and amounts are
decimal strings, never floats.
"""

from __future__ import annotations

from typing import Any

from libs.common.margin import AccountSummary
from libs.common.markets import MarketRegistry
from libs.common.money import format_ratio, format_usd
from libs.common.state import AccountState, VaultShares, VaultStake

VAULT_NAME = "Backstop Vault"
DESCRIPTION = (
    "The venue's LP-funded backstop: takes liquidated positions over at the mark and "
    "earns a share of trading and liquidation fees. Deposits are locked for the lock-up "
    "after each deposit."
)
DAY_MS = 86_400_000


def usd_text(micro: int) -> str:
    return format_usd(micro) if micro else "0.0"


class VaultView:
    """A vault at its marks: value, free collateral and every stake's worth."""

    def __init__(
        self,
        address: str,
        ledger: VaultShares | None,
        account: AccountState | None,
        marks: dict[str, int],
        markets: MarketRegistry,
    ) -> None:
        self.address = address
        self.ledger = ledger or VaultShares(vault=address)
        summary = AccountSummary(account, marks, markets) if account is not None else None
        self.equity = summary.account_value if summary else 0
        self.free = summary.withdrawable if summary else 0

    def worth(self, stake: VaultStake) -> int:
        return self.ledger.worth(stake.shares, self.equity)

    def follower(self, user: str, stake: VaultStake, now: int) -> dict[str, Any]:
        equity = self.worth(stake)
        pnl = equity + stake.withdrawn - stake.deposited
        return {
            "user": "Leader" if user == self.address else user,
            "vaultEquity": usd_text(equity),
            "pnl": usd_text(pnl),
            "allTimePnl": usd_text(pnl),
            "daysFollowing": max(0, now - stake.entered) // DAY_MS,
            "vaultEntryTime": stake.entered,
            "lockupUntil": stake.locked_until,
        }

    def details(self, user: str | None, now: int) -> dict[str, Any]:
        stakes = self.ledger.stakes
        total = self.ledger.total_shares
        leader = stakes.get(self.address)
        mine = stakes.get(user) if user else None
        open_to_deposits = self.equity > 0 or (total == 0 and self.equity == 0)
        return {
            "name": VAULT_NAME,
            "vaultAddress": self.address,
            "leader": self.address,
            "description": DESCRIPTION,
            "portfolio": [],
            "apr": 0,
            "followerState": self.follower(user, mine, now) if user and mine else None,
            "leaderFraction": format_ratio(leader.shares, total, 0) if leader and total else "0.0",
            "leaderCommission": 0,
            "followers": [self.follower(a, stakes[a], now) for a in sorted(stakes)],
            "maxDistributable": usd_text(self.free),
            "maxWithdrawable": usd_text(self.free),
            "isClosed": False,
            "relationship": {"type": "normal"},
            "allowDeposits": open_to_deposits,
            "alwaysCloseOnWithdraw": False,
            "totalShares": str(total),
            "navPerShare": format_ratio(self.equity, total, 0) if total else "1.0",
        }

    def user_equity(self, user: str) -> dict[str, Any] | None:
        stake = self.ledger.stakes.get(user)
        if stake is None:
            return None
        return {
            "vaultAddress": self.address,
            "equity": usd_text(self.worth(stake)),
            "lockedUntilTimestamp": stake.locked_until,
        }
