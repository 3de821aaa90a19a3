"""Margin formulas shared by risk (its decisions) and the gateway (its views).

Tiers, initial and maintenance margin, unrealized PnL, order holds, the account summary
(equity, margin used, withdrawable, liquidation prices) and the ``clearinghouseState``
document. Money is integer micro-USDC; requirements round up (the venue's side), equity
is exact. A position without a mark yet is valued at its cost: no gain, no loss.
See docs/risk.md for every formula with worked numbers.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, NamedTuple

from libs.common.markets import MarginTier, MarketRegistry, MarketSpec
from libs.common.money import div_ceil, format_ratio, format_usd, mul_ratio
from libs.common.state import AccountState, PositionState

PPM = 1_000_000
PPB = 1_000_000_000
TRANSFER_MARGIN_DIVISOR = 10  # withdrawals keep at least 10% of position value


class MarginTable:
    """A market's tiers in integer form.

    Tier ``n`` (from ``bounds[n]`` of position value on) allows ``max_leverage[n]`` and
    has the maintenance rate ``1 / (2 x max_leverage[n]) = rates[n] / scale``; its
    deduction is ``deductions[n] / scale`` micro-USDC, where ``deduction(n) =
    deduction(n-1) + bound(n) x (rate(n) - rate(n-1))`` keeps maintenance continuous at
    every bound. Maintenance = ceil((value x rate - deduction)), exactly in integers."""

    __slots__ = ("bounds", "deductions", "max_leverage", "rates", "scale")

    def __init__(self, tiers: Sequence[MarginTier]) -> None:
        if not tiers or tiers[0].lower_bound != 0:
            raise ValueError("a margin table starts at a lower bound of 0")
        self.bounds = tuple(t.lower_bound for t in tiers)
        self.max_leverage = tuple(t.max_leverage for t in tiers)
        common = math.lcm(*self.max_leverage)
        self.scale = 2 * common
        self.rates = tuple(common // lev for lev in self.max_leverage)
        deductions = [0]
        for n in range(1, len(tiers)):
            step = self.bounds[n] * (self.rates[n] - self.rates[n - 1])
            deductions.append(deductions[-1] + step)
        self.deductions = tuple(deductions)

    def tier(self, notional: int) -> int:
        """The highest tier whose lower bound the position value reaches."""
        return bisect_right(self.bounds, notional) - 1

    def max_leverage_at(self, notional: int) -> int:
        return self.max_leverage[self.tier(notional)]

    def maintenance(self, notional: int) -> int:
        """Maintenance margin of a position worth ``notional``, rounded up."""
        n = bisect_right(self.bounds, notional) - 1
        return div_ceil(notional * self.rates[n] - self.deductions[n], self.scale)

    def maintenance_rate(self, tier: int) -> Fraction:
        return Fraction(self.rates[tier], self.scale)

    def deduction(self, tier: int) -> Fraction:
        """The tier's maintenance deduction in micro-USDC."""
        return Fraction(self.deductions[tier], self.scale)


_TABLES: dict[tuple[int, tuple[MarginTier, ...]], MarginTable] = {}


def margin_table(spec: MarketSpec) -> MarginTable:
    """The market's table (one tier at its max leverage when it configures none)."""
    key = (spec.max_leverage, spec.margin_tiers)
    table = _TABLES.get(key)
    if table is None:
        tiers = spec.margin_tiers or (MarginTier(lower_bound=0, max_leverage=spec.max_leverage),)
        table = _TABLES[key] = MarginTable(tiers)
    return table


def initial_margin(notional: int, leverage: int) -> int:
    """``notional / leverage``, rounded up."""
    return div_ceil(notional, leverage)


def maintenance_margin(notional: int, spec: MarketSpec) -> int:
    return margin_table(spec).maintenance(notional)


def fee_amount(notional: int, ppm: int) -> int:
    """A fee at ``ppm`` of notional: rounded up when charged, a rebate (negative ppm)
    rounded toward zero; either way in the venue's favour."""
    return mul_ratio(notional, ppm, round_up=True)


def signed_basis(pos: PositionState) -> int:
    """The cost basis with the position's sign: what a long paid, minus what a short got."""
    return pos.entry_ntl if pos.szi > 0 else -pos.entry_ntl


def chosen_leverage(pos: PositionState, spec: MarketSpec) -> int:
    return pos.leverage or spec.default_leverage


class PositionTerms(NamedTuple):
    """A position at a mark: signed value, notional, and its requirements."""

    value: int
    notional: int
    initial: int
    maintenance: int
    leverage: int


def position_terms(
    spec: MarketSpec, szi: int, entry_ntl: int, leverage: int, mark: int | None
) -> PositionTerms:
    """Value at the mark (at cost without one), initial margin at the chosen leverage
    capped by the tier's, and the tier's maintenance."""
    if mark:
        value = szi * mark
        notional = abs(value)
    else:
        notional = entry_ntl
        value = entry_ntl if szi > 0 else -entry_ntl
    table = margin_table(spec)
    n = bisect_right(table.bounds, notional) - 1
    lev = min(leverage, table.max_leverage[n])
    return PositionTerms(
        value,
        notional,
        div_ceil(notional, lev),
        div_ceil(notional * table.rates[n] - table.deductions[n], table.scale),
        lev,
    )


def unrealized_pnl(pos: PositionState, mark_px: int | None) -> int:
    """Value at mark minus cost basis, signed by side (0 without a mark)."""
    if not mark_px or pos.szi == 0:
        return 0
    return pos.szi * mark_px - signed_basis(pos)


def below_maintenance(equity: int, maintenance: int) -> bool:
    """Risk's liquidation rule: an account (or isolated position) with a requirement
    whose equity has fallen below it."""
    return maintenance > 0 and equity < maintenance


def hold_price(px: int, mark_px: int, trigger_px: int = 0) -> int:
    """The price an order's hold values it at: the worse (higher notional) of its limit
    or trigger price and the mark."""
    return max(px, trigger_px, mark_px)


def order_hold(
    spec: MarketSpec,
    leverage: int,
    open_sz: int,
    sz: int,
    hold_px: int,
    taker_ppm: int,
    position_ntl: int = 0,
) -> int:
    """Initial margin for the part of an order that can open exposure (``open_sz``) at
    the leverage its resulting position's tier allows, plus the taker fee on all of it."""
    opening = open_sz * hold_px
    lev = min(leverage, margin_table(spec).max_leverage_at(position_ntl + opening))
    return initial_margin(opening, lev) + fee_amount(sz * hold_px, max(taker_ppm, 0))


def liquidation_price(
    spec: MarketSpec, szi: int, px: Fraction | int, equity: int, other_maintenance: int
) -> Fraction | None:
    """The mark (in ticks) at which ``equity`` would fall to the maintenance of this
    position plus ``other_maintenance``, everything else unchanged.

    Equity moves by ``szi`` per tick; maintenance follows the tier table, so each tier
    is tried with its own rate and deduction and the root inside it is the answer (the
    difference is continuous and monotone in the price, so there is one). ``px`` is the
    current mark (or entry price). None when no positive price would do it."""
    if szi == 0:
        return None
    table = margin_table(spec)
    q = abs(szi)
    side = 1 if szi > 0 else -1
    tiers = len(table.bounds)
    for n in range(tiers):
        rate = Fraction(table.rates[n], table.scale)
        deduction = Fraction(table.deductions[n], table.scale)
        price = (other_maintenance - deduction - equity + side * q * px) / (q * (side - rate))
        notional = q * price
        upper = table.bounds[n + 1] if n + 1 < tiers else None
        if table.bounds[n] <= notional and (upper is None or notional < upper):
            return price if price > 0 else None
    return None


class PositionSummary(NamedTuple):
    """One position in the account summary."""

    spec: MarketSpec
    pos: PositionState
    terms: PositionTerms
    upnl: int
    margin_used: int  # cross: initial margin; isolated: its margin plus unrealized PnL
    raw_usd: int  # isolated: its margin less the signed cost basis
    liquidation_px: Fraction | None


class AccountSummary:
    """An account at the current marks: the cross account (collateral and cross
    positions) and each isolated position on its own margin."""

    __slots__ = (
        "collateral",
        "cross_equity",
        "cross_initial",
        "cross_maintenance",
        "cross_notional",
        "cross_raw_usd",
        "holds",
        "isolated_equity",
        "isolated_margin_used",
        "isolated_notional",
        "isolated_raw_usd",
        "positions",
    )

    def __init__(self, account: AccountState, marks: Mapping[str, int], markets: MarketRegistry):
        self.collateral = account.collateral
        self.holds = account.holds
        self.cross_raw_usd = account.collateral
        self.cross_equity = account.collateral
        self.cross_initial = self.cross_maintenance = self.cross_notional = 0
        self.isolated_equity = self.isolated_margin_used = 0
        self.isolated_notional = self.isolated_raw_usd = 0
        rows: list[tuple[MarketSpec, PositionState, PositionTerms, int | None]] = []
        for name, pos in account.positions.items():
            if pos.szi == 0:
                continue
            spec = markets.by_name(name)
            mark = marks.get(name) or None
            terms = position_terms(spec, pos.szi, pos.entry_ntl, chosen_leverage(pos, spec), mark)
            rows.append((spec, pos, terms, mark))
            basis = signed_basis(pos)
            if pos.is_cross:
                self.cross_raw_usd -= basis
                self.cross_equity += terms.value - basis
                self.cross_initial += terms.initial
                self.cross_maintenance += terms.maintenance
                self.cross_notional += terms.notional
            else:
                equity = pos.isolated_margin + terms.value - basis
                self.isolated_equity += equity
                self.isolated_margin_used += equity
                self.isolated_notional += terms.notional
                self.isolated_raw_usd += pos.isolated_margin - basis
        rows.sort(key=lambda row: row[0].asset)
        self.positions: list[PositionSummary] = []
        for spec, pos, terms, mark in rows:
            basis = signed_basis(pos)
            upnl = terms.value - basis
            px = Fraction(mark) if mark else Fraction(pos.entry_ntl, abs(pos.szi))
            if pos.is_cross:
                used = terms.initial
                raw = 0
                liq = liquidation_price(
                    spec,
                    pos.szi,
                    px,
                    self.cross_equity,
                    self.cross_maintenance - terms.maintenance,
                )
            else:
                used = pos.isolated_margin + upnl
                raw = pos.isolated_margin - basis
                liq = liquidation_price(spec, pos.szi, px, used, 0)
            self.positions.append(PositionSummary(spec, pos, terms, upnl, used, raw, liq))

    @property
    def available(self) -> int:
        """What new orders may reserve: cross equity less cross initial margin and holds."""
        return self.cross_equity - self.cross_initial - self.holds

    @property
    def transfer_requirement(self) -> int:
        """What must stay in the cross account: max(initial margin, 10% of position value)."""
        return max(self.cross_initial, div_ceil(self.cross_notional, TRANSFER_MARGIN_DIVISOR))

    @property
    def withdrawable(self) -> int:
        return max(0, self.cross_equity - self.holds - self.transfer_requirement)

    @property
    def account_value(self) -> int:
        return self.cross_equity + self.isolated_equity


def summarize(
    account: AccountState, marks: Mapping[str, int], markets: MarketRegistry
) -> AccountSummary:
    return AccountSummary(account, marks, markets)


def _usd(micro: int) -> str:
    """Micro-USDC as the API's decimal string; zero reads ``0.0`` as Hyperliquid sends it."""
    return format_usd(micro) if micro else "0.0"


def _ratio(numerator: int, denominator: int, decimals: int) -> str:
    text = format_ratio(numerator, denominator, decimals)
    return "0.0" if text in ("0", "0.0") else text


def _position_document(row: PositionSummary) -> dict[str, Any]:
    spec, pos, terms = row.spec, row.pos, row.terms
    lev = chosen_leverage(pos, spec)
    leverage: dict[str, Any]
    if pos.is_cross:
        leverage = {"type": "cross", "value": lev}
    else:
        leverage = {"rawUsd": _usd(row.raw_usd), "type": "isolated", "value": lev}
    liq = row.liquidation_px
    funding = pos.funding
    return {
        "coin": spec.name,
        "cumFunding": {
            # the API reports funding paid as positive; state keeps what was received
            "allTime": _usd(-funding.all_time),
            "sinceChange": _usd(-funding.since_change),
            "sinceOpen": _usd(-funding.since_open),
        },
        "entryPx": _ratio(pos.entry_ntl, abs(pos.szi), spec.px_decimals),
        "leverage": leverage,
        "liquidationPx": None
        if liq is None
        else _ratio(liq.numerator, liq.denominator, spec.px_decimals),
        "marginUsed": _usd(row.margin_used),
        "maxLeverage": spec.max_leverage,
        "positionValue": _usd(terms.notional),
        "returnOnEquity": _ratio(row.upnl * lev, pos.entry_ntl, 0) if pos.entry_ntl else "0.0",
        "szi": spec.format_size(pos.szi),
        "unrealizedPnl": _usd(row.upnl),
    }


def clearinghouse_state(
    account: AccountState | None, marks: Mapping[str, int], markets: MarketRegistry, now_ms: int
) -> dict[str, Any]:
    """``clearinghouseState``: positions, margin summaries and withdrawable, with every
    number as a decimal string, exactly as Hyperliquid shapes it."""
    summary = AccountSummary(account or AccountState(address=""), marks, markets)
    cross = {
        "accountValue": _usd(summary.cross_equity),
        "totalMarginUsed": _usd(summary.cross_initial),
        "totalNtlPos": _usd(summary.cross_notional),
        "totalRawUsd": _usd(summary.cross_raw_usd),
    }
    whole = {
        "accountValue": _usd(summary.account_value),
        "totalMarginUsed": _usd(summary.cross_initial + summary.isolated_margin_used),
        "totalNtlPos": _usd(summary.cross_notional + summary.isolated_notional),
        "totalRawUsd": _usd(summary.cross_raw_usd + summary.isolated_raw_usd),
    }
    return {
        "assetPositions": [
            {"position": _position_document(row), "type": "oneWay"} for row in summary.positions
        ],
        "crossMaintenanceMarginUsed": _usd(summary.cross_maintenance),
        "crossMarginSummary": cross,
        "marginSummary": whole,
        "time": now_ms,
        "withdrawable": _usd(summary.withdrawable),
    }


__all__ = [
    "PPB",
    "PPM",
    "AccountSummary",
    "MarginTable",
    "PositionSummary",
    "PositionTerms",
    "below_maintenance",
    "chosen_leverage",
    "clearinghouse_state",
    "fee_amount",
    "hold_price",
    "initial_margin",
    "liquidation_price",
    "maintenance_margin",
    "margin_table",
    "order_hold",
    "position_terms",
    "signed_basis",
    "summarize",
    "unrealized_pnl",
]
