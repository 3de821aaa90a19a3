"""Every fill exactly once: the matcher's legs, its trades, and risk's account fills.

A position change is one ``tid`` of one market (tids are the matcher's, per market):
exactly two ``FillLeg`` records on risk.in, a buy and a sell of the same size at the same
price; if it came from the book (an order id, not a takeover or ADL transfer) exactly one
``Trade`` on market.events with that price and size; and for each leg exactly one
``AccountFill`` on account.events, once risk applied it. A lost or a doubled record of
any of the three breaks one of these counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from libs.common.schemas import AccountFill, FillLeg, Trade

Tid = tuple[str, int]  # market, tid


@dataclass
class FillLedger:
    legs: dict[Tid, list[FillLeg]] = field(default_factory=dict)
    trades: dict[Tid, list[Trade]] = field(default_factory=dict)
    account_fills: Counter[tuple[str, str, int, bool]] = field(default_factory=Counter)
    record_ids: Counter[str] = field(default_factory=Counter)

    def leg(self, msg: FillLeg) -> None:
        self.legs.setdefault((msg.market, msg.tid), []).append(msg)

    def trade(self, msg: Trade) -> None:
        self.trades.setdefault((msg.market, msg.tid), []).append(msg)

    def account_fill(self, msg: AccountFill) -> None:
        self.account_fills[(msg.account, msg.market, msg.tid, msg.is_buy)] += 1

    def record(self, topic: str, record_id: str) -> None:
        """A record's deterministic id (``id`` header): no output may exist twice."""
        if record_id:
            self.record_ids[f"{topic}:{record_id}"] += 1

    @property
    def fills(self) -> int:
        return len(self.legs)

    def problems(self, limit: int = 20) -> list[str]:
        found: list[str] = []
        for key, count in sorted(self.record_ids.items()):
            if count > 1:
                found.append(f"record {key} is on the log {count} times")
        for (market, tid), legs in sorted(self.legs.items()):
            where = f"fill {market}#{tid}"
            if len(legs) != 2:
                found.append(f"{where} has {len(legs)} legs on risk.in, not 2")
                continue
            buy, sell = sorted(legs, key=lambda leg: not leg.is_buy)
            if not buy.is_buy or sell.is_buy or (buy.px, buy.sz) != (sell.px, sell.sz):
                found.append(f"{where}: legs do not match ({buy} / {sell})")
            trades = self.trades.get((market, tid), [])
            if buy.oid or sell.oid:  # from the book: the public trade must exist, once
                if len(trades) != 1:
                    found.append(f"{where}: {len(trades)} trades on market.events, not 1")
                elif (trades[0].px, trades[0].sz) != (buy.px, buy.sz):
                    found.append(f"{where}: the trade's price or size differs from its legs")
            for leg in legs:
                count = self.account_fills[(leg.account, market, tid, leg.is_buy)]
                if count != 1:
                    found.append(f"{where}: {count} account fills of {leg.account}, not 1")
        for market, tid in sorted(self.trades):
            if (market, tid) not in self.legs:
                found.append(f"trade {market}#{tid} on market.events has no fill legs")
        sides = {(g.account, m, t, g.is_buy) for (m, t), group in self.legs.items() for g in group}
        for side in sorted(self.account_fills):
            if side not in sides:
                found.append(f"account fill {side} has no fill leg on risk.in")
        if len(found) > limit:
            found = [*found[:limit], f"... and {len(found) - limit} more"]
        return found
