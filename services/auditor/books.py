"""Money conservation across every account, exact to the micro-dollar.

Every USDC that came in and did not go out is somewhere: in an account's cross
collateral, in an isolated position's margin, in a partition's venue ledger (fees,
funding residuals, less bad debt and the shares already paid to the fund and the
vault), or in the positions' cost bases. A long's basis is what it paid and a short's
what it received; as every position change has a buyer and a seller of the same size,
sizes net to zero per market, so at any common mark the positions' unrealized PnL sums
to minus the sum of signed bases. Hence, whenever nothing is in flight between
partitions (fill legs, transfers), exactly:

    deposits - withdrawals = sum(collateral) + sum(isolated margin)
                             - sum(signed basis) + sum(venue ledger total)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from libs.common.runtime import Output
from libs.common.schemas import BalanceUpdate
from libs.common.state import ACCOUNT_PREFIX, AccountState
from services.risk.engine import VENUE_KEY
from services.risk.ledger import VenueLedger

_ACCOUNT = msgspec.msgpack.Decoder(AccountState)
_LEDGER = msgspec.msgpack.Decoder(VenueLedger)


@dataclass
class Books:
    """The terms of the identity, summed over every risk partition given."""

    deposits: int = 0
    withdrawals: int = 0
    collateral: int = 0
    isolated_margin: int = 0
    basis: int = 0
    venue: int = 0
    accounts: int = 0
    # lots per market, longs minus shorts: zero when every fill has both legs applied
    net_size: dict[str, int] = field(default_factory=dict)

    def watch(self, out: Output) -> None:
        """Count an accepted USDC deposit or withdrawal among a replay's outputs."""
        msg = out.message
        if type(msg) is not BalanceUpdate or msg.error is not None or msg.asset:
            return
        if msg.reason == "deposit":
            self.deposits += msg.delta
        elif msg.reason == "withdraw":
            self.withdrawals -= msg.delta

    def add_partition(self, entries: Mapping[str, bytes]) -> None:
        """Add one risk partition's persisted state."""
        for name in sorted(entries):
            if name.startswith(ACCOUNT_PREFIX):
                acct = _ACCOUNT.decode(entries[name])
                self.accounts += 1
                self.collateral += acct.collateral
                for market, pos in sorted(acct.positions.items()):
                    self.isolated_margin += pos.isolated_margin
                    self.basis += pos.entry_ntl if pos.szi > 0 else -pos.entry_ntl
                    self.net_size[market] = self.net_size.get(market, 0) + pos.szi
            elif name == VENUE_KEY:
                self.venue += _LEDGER.decode(entries[name]).total

    @property
    def held(self) -> int:
        """Where the money is: the right-hand side of the identity."""
        return self.collateral + self.isolated_margin - self.basis + self.venue

    @property
    def imbalance(self) -> int:
        """Held minus net deposits: 0 to the micro-dollar when the books close."""
        return self.held - (self.deposits - self.withdrawals)

    def problems(self) -> list[str]:
        found = []
        if self.imbalance:
            found.append(
                f"money not conserved: held {self.held} != deposits {self.deposits} - "
                f"withdrawals {self.withdrawals} (imbalance {self.imbalance} micro-USDC)"
            )
        for market, net in sorted(self.net_size.items()):
            if net:
                found.append(f"positions in {market} do not net to zero: {net} lots")
        return found
