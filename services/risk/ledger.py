"""The venue's side of every account movement in one risk partition.

Fees (net of maker rebates) accrue here, split into the insurance fund, backstop vault
and venue shares; so do each market's funding rounding residual and the deficits of
isolated positions that closed below zero. With the accounts it closes the books:
accounts + ``total`` = deposits - withdrawals (transfers in flight aside). The insurance
fund and vault balances are accrual buckets that the liquidator (#6) will draw on.
"""

from __future__ import annotations

import msgspec

PPM = 1_000_000


class VenueLedger(msgspec.Struct, kw_only=True):
    """Accrual buckets in micro-USDC. ``fees = insurance + vault + venue``; rebates are
    paid out of the venue's share; ``bad_debt`` is a loss nobody has covered yet;
    ``insurance_paid`` and ``vault_paid`` are the shares already moved to the fund's and
    the vault's accounts. ``open_bad_debt`` holds the liquidation cases with negative
    equity not yet absorbed (case id to deficit, from the liquidator's notices): while
    any is open, withdrawals and transfers out wait. ``insurance_peak`` is the highest
    balance the fund's account reached (on the fund's partition), for its drawdown.
    On the vault's partition, ``vault_takeovers[p]`` counts the backstop takeovers the
    vault received from the cases of liquidator partition ``p`` and ``vault_reported``
    is what its last ``VaultStatus`` said (equity, maintenance, counts, terms), so a
    status goes out only when one of them changed."""

    fees: int = 0
    insurance: int = 0
    vault: int = 0
    venue: int = 0
    funding_residual: dict[str, int] = msgspec.field(default_factory=dict)
    bad_debt: int = 0
    insurance_paid: int = 0
    vault_paid: int = 0
    open_bad_debt: dict[str, int] = msgspec.field(default_factory=dict)
    insurance_peak: int = 0
    vault_takeovers: list[int] = msgspec.field(default_factory=list)
    vault_reported: list[int] = msgspec.field(default_factory=list)

    def accrue_fee(self, fee: int, insurance_ppm: int, vault_ppm: int) -> None:
        self.fees += fee
        if fee <= 0:
            self.venue += fee  # a maker rebate comes out of the venue's share
            return
        insurance = fee * insurance_ppm // PPM
        vault = fee * vault_ppm // PPM
        self.insurance += insurance
        self.vault += vault
        self.venue += fee - insurance - vault

    def keep_funding_residual(self, market: str, amount: int) -> None:
        self.funding_residual[market] = self.funding_residual.get(market, 0) + amount

    @property
    def total(self) -> int:
        """Everything that left the accounts for the venue, net."""
        return (
            self.fees
            + sum(self.funding_residual.values())
            - self.bad_debt
            - self.insurance_paid
            - self.vault_paid
        )
