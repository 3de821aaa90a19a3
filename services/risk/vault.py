"""The backstop vault's LPs: shares priced at NAV, lock-ups, in exact integers.

NAV per share is the vault account's value at its marks (cross equity plus isolated
positions' equity, micro-USDC) over its total shares. Every rounding goes in the
vault's favour, so no deposit or withdrawal can take value from the other LPs:
a deposit mints ``floor(usd x shares / equity)`` shares, a withdrawal burns
``ceil(usd x shares / equity)``, and an LP's equity is ``floor(its shares x equity /
shares)``. The first deposit mints one share per micro-dollar; any equity the vault
already had (operator deposits, fee shares, takeovers before its first LP) becomes the
venue's own stake, held under the vault's address, so the first LP buys in at NAV 1
like everybody after it.
"""

from __future__ import annotations

from typing import NamedTuple

from libs.common.money import div_ceil, format_usd
from libs.common.state import VaultShares, VaultStake

NO_EQUITY = "The vault's equity is not positive: deposits are closed."
TOO_SMALL = "Deposit is worth less than one vault share."
NO_SHARES = "No vault shares to withdraw."


class Minted(NamedTuple):
    """A priced deposit: shares for the LP, and shares first given to the venue's stake."""

    shares: int
    seed: int


def price_deposit(usd: int, equity: int, total_shares: int) -> Minted | str:
    """The shares ``usd`` buys at NAV, or why it cannot be priced."""
    if total_shares == 0:
        if equity < 0:
            return NO_EQUITY
        return Minted(usd, equity)  # NAV 1: the venue's equity becomes its stake
    if equity <= 0:
        return NO_EQUITY
    shares = usd * total_shares // equity
    return Minted(shares, 0) if shares > 0 else TOO_SMALL


def price_withdrawal(
    usd: int, stake: VaultStake | None, equity: int, ledger: VaultShares, now: int
) -> int | str:
    """The shares to burn to pay ``usd`` to the stake's owner, or why it is refused.
    Taking the whole of one's equity burns every share (the sub-micro-dollar remainder
    stays with the vault)."""
    if stake is None or stake.shares <= 0:
        return NO_SHARES
    if now < stake.locked_until:
        return f"Vault deposit is locked until {stake.locked_until}."
    worth = ledger.worth(stake.shares, equity)
    if usd > worth:
        return (
            f"Withdrawal of ${format_usd(usd)} exceeds your vault equity of ${format_usd(worth)}."
        )
    if usd == worth:
        return stake.shares
    return div_ceil(usd * ledger.total_shares, equity)


def mint(
    ledger: VaultShares, lp: str, usd: int, minted: Minted, now: int, lockup_ms: int
) -> VaultStake:
    """Record a priced deposit: the venue's seed first, then the LP's shares and lock-up."""
    if minted.seed:
        seed = ledger.stakes.setdefault(ledger.vault, VaultStake(entered=now))
        seed.shares += minted.seed
        ledger.total_shares += minted.seed
    stake = ledger.stakes.get(lp)
    if stake is None:
        stake = ledger.stakes[lp] = VaultStake(entered=now)
    stake.shares += minted.shares
    stake.deposited += usd
    stake.locked_until = max(stake.locked_until, now + lockup_ms)
    ledger.total_shares += minted.shares
    ledger.updated = now
    return stake


def burn(ledger: VaultShares, lp: str, usd: int, shares: int, now: int) -> VaultStake:
    """Record a priced withdrawal; a stake with no shares left is dropped."""
    stake = ledger.stakes[lp]
    stake.shares -= shares
    stake.withdrawn += usd
    ledger.total_shares -= shares
    ledger.updated = now
    if stake.shares == 0:
        del ledger.stakes[lp]
    return stake
