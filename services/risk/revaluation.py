"""Mark to market for a whole partition at once: the exposure index.

Beside the canonical ``AccountState`` structs, every account's cross aggregates
(collateral less cross cost bases, value, notional, initial and maintenance margin,
holds) and every position (one slot per account and market) live in numpy int64
arrays. A mark tick revalues a market's slots in a handful of vector operations, moves
the accounts' aggregates by the deltas, and returns only the accounts whose state may
change: a liquidation trigger or recovery, a margin-call level, a margin cancel. Risk
reviews those one by one in exact integers.

Accounts in portfolio margin also keep their cross sizes and prices per market (one
row of a matrix each) and their portfolio requirements; a tick recomputes those for
the portfolio accounts holding the market with one integer matrix product over the
scenario grid (``libs.common.portfolio``), and their decisions use them in place of
the cross initial and maintenance margin.

The index is derived, never persisted: rebuilt from the accounts on restore and updated
whenever an account changes. Every number in it is what ``libs.common.margin`` computes
from the account at the same marks (the property tests hold it to that).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from libs.common.collateral import haircut_value
from libs.common.margin import PPM, chosen_leverage, margin_table, position_terms, signed_basis
from libs.common.markets import MarketRegistry, MarketSpec
from libs.common.portfolio import PORTFOLIO, Leg, leg_terms, portfolio_margin, scenario_grid
from libs.common.state import AccountState

I64 = np.int64
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
INT64_MAX = 2**63 - 1


def call_level(equity: int, maintenance: int, levels: Sequence[int]) -> int:
    """The highest margin-call level (percent) that maintenance usage has reached:
    ``maintenance >= level% x equity``; every level once equity is gone."""
    if maintenance <= 0:
        return 0
    reached = 0
    for level in levels:
        if maintenance * 100 >= equity * level:
            reached = level
    return reached


def call_levels(equity: Ints, maintenance: Ints, levels: Sequence[int]) -> Ints:
    """``call_level`` over arrays."""
    reached = np.zeros(len(equity), dtype=I64)
    used = maintenance > 0
    scaled = maintenance * 100
    for level in levels:
        reached[used & (scaled >= equity * level)] = level
    return reached


class PortfolioParams(NamedTuple):
    """The portfolio grid and the per-market rates of a registry, as arrays."""

    moves: Ints  # markets x scenarios, signed ppm
    stress: Ints  # per market, ppm
    maintenance_ppm: int
    taker: Ints
    funding: Ints
    safe_notional: int  # notional x rate stays in int64 below this
    safe_px: int  # price x move stays in int64 below this


class MarketSlots:
    """The positions of one market, one slot per account, as parallel arrays."""

    _INT_FIELDS = (
        "rows",
        "szi",
        "basis",
        "lev",
        "iso_base",
        "value",
        "notional",
        "initial",
        "maintenance",
        "level",
    )
    _BOOL_FIELDS = ("cross", "liq")

    def __init__(self, spec: MarketSpec) -> None:
        table = margin_table(spec)
        self.spec = spec
        self.bounds = np.array(table.bounds, dtype=I64)
        self.rates = np.array(table.rates, dtype=I64)
        self.deductions = np.array(table.deductions, dtype=I64)
        self.max_lev = np.array(table.max_leverage, dtype=I64)
        self.scale = table.scale
        self.safe_notional = INT64_MAX // max(table.rates) // 2
        self.count = 0
        self.slot_of: dict[int, int] = {}
        self.rows: Ints = np.zeros(0, dtype=I64)
        self.szi: Ints = np.zeros(0, dtype=I64)
        self.basis: Ints = np.zeros(0, dtype=I64)  # signed cost basis
        self.lev: Ints = np.zeros(0, dtype=I64)  # chosen leverage
        self.iso_base: Ints = np.zeros(0, dtype=I64)  # isolated margin less basis
        self.value: Ints = np.zeros(0, dtype=I64)  # signed value at the mark
        self.notional: Ints = np.zeros(0, dtype=I64)
        self.initial: Ints = np.zeros(0, dtype=I64)
        self.maintenance: Ints = np.zeros(0, dtype=I64)
        self.level: Ints = np.zeros(0, dtype=I64)  # isolated: margin-call level
        self.cross: Bools = np.zeros(0, dtype=np.bool_)
        self.liq: Bools = np.zeros(0, dtype=np.bool_)  # isolated: liquidating
        self._grow(16)

    def _grow(self, capacity: int) -> None:
        for name in self._INT_FIELDS + self._BOOL_FIELDS:
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[: self.count] = old[: self.count]
            setattr(self, name, new)

    def slot(self, row: int) -> int:
        found = self.slot_of.get(row)
        if found is None:
            found = self.count
            if found == len(self.rows):
                self._grow(2 * found)
            self.slot_of[row] = found
            self.rows[found] = row
            self.count += 1
        return found

    def remove(self, row: int) -> None:
        slot = self.slot_of.pop(row, None)
        if slot is None:
            return
        last = self.count - 1
        if slot != last:
            for name in self._INT_FIELDS + self._BOOL_FIELDS:
                array = getattr(self, name)
                array[slot] = array[last]
            self.slot_of[int(self.rows[slot])] = slot
        self.count = last


class Exposures:
    """The exposure index of one risk partition."""

    _ROW_FIELDS = (
        "base",
        "value",
        "notional",
        "initial",
        "maintenance",
        "holds",
        "active_holds",
        "level",
        "asset_equity",
        "asset_usable",
    )

    def __init__(self, markets: MarketRegistry, levels: Sequence[int]) -> None:
        self.registry = markets
        self.levels = tuple(levels)
        self.marks: dict[str, int] = {}
        self.markets: dict[str, MarketSlots] = {}
        self.row_of: dict[str, int] = {}
        self.addresses: list[str] = []
        self.held: list[tuple[str, ...]] = []
        self.base: Ints = np.zeros(0, dtype=I64)  # collateral less cross signed bases
        self.value: Ints = np.zeros(0, dtype=I64)  # cross positions' signed value
        self.notional: Ints = np.zeros(0, dtype=I64)
        self.initial: Ints = np.zeros(0, dtype=I64)
        self.maintenance: Ints = np.zeros(0, dtype=I64)
        self.holds: Ints = np.zeros(0, dtype=I64)
        self.active_holds: Ints = np.zeros(0, dtype=I64)  # holds not being canceled
        self.level: Ints = np.zeros(0, dtype=I64)  # cross margin-call level
        self.liq: Bools = np.zeros(0, dtype=np.bool_)
        # collateral assets: their value in equity, and toward new risk (0 while the
        # oracle is not valid); per asset the lots of each row holding it
        self.asset_equity: Ints = np.zeros(0, dtype=I64)
        self.asset_usable: Ints = np.zeros(0, dtype=I64)
        self.prices: dict[str, tuple[int, bool]] = {}
        self.asset_lots: dict[str, dict[int, int]] = {}
        self.asset_rows: set[int] = set()
        # portfolio margin: flag, requirements, and per market the cross size and price
        self.column = {spec.name: j for j, spec in enumerate(markets)}
        self.pm: Bools = np.zeros(0, dtype=np.bool_)
        self.pm_initial: Ints = np.zeros(0, dtype=I64)
        self.pm_maintenance: Ints = np.zeros(0, dtype=I64)
        self.pm_szi: Ints = np.zeros((0, len(self.column)), dtype=I64)
        self.pm_px: Ints = np.zeros((0, len(self.column)), dtype=I64)
        # each leg's terms outside the grid (``portfolio.LegTerms``), per market
        # (stress, floor, provision, cross maintenance) of each market's leg
        self.pm_terms: Ints = np.zeros((0, len(self.column), 4), dtype=I64)
        self.pm_sums: Ints = np.zeros((0, 4), dtype=I64)  # the terms summed over markets
        self.portfolio_count = 0
        self._deferred = False
        self._params_key: tuple[object, ...] = ()
        self._params = self._portfolio_params()
        self.clear()

    def clear(self) -> None:
        """Forget every account and mark."""
        self.marks = {}
        self.prices = {}
        self.asset_lots = {asset: {} for asset in self.registry.collateral}
        self.asset_rows = set()
        self.markets = {spec.name: MarketSlots(spec) for spec in self.registry}
        self.row_of = {}
        self.addresses = []
        self.held = []
        for name in (*self._ROW_FIELDS, "liq", *self._PM_FIELDS):
            old = getattr(self, name)
            setattr(self, name, np.zeros((0, *old.shape[1:]), dtype=old.dtype))
        self.portfolio_count = 0
        self._grow(64)

    _PM_FIELDS = (
        "pm",
        "pm_initial",
        "pm_maintenance",
        "pm_szi",
        "pm_px",
        "pm_terms",
        "pm_sums",
    )

    def _grow(self, capacity: int) -> None:
        count = len(self.addresses)
        for name in (*self._ROW_FIELDS, "liq", *self._PM_FIELDS):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[:count] = old[:count]
            setattr(self, name, new)

    def row(self, address: str) -> int:
        found = self.row_of.get(address)
        if found is None:
            found = len(self.addresses)
            if found == len(self.base):
                self._grow(2 * found)
            self.row_of[address] = found
            self.addresses.append(address)
            self.held.append(())
        return found

    # ------------------------------------------------------------ one account

    def sync(self, acct: AccountState) -> None:
        """Recompute an account's row and slots from its state."""
        row = self.row(acct.address)
        base = acct.collateral
        value = notional = initial = maintenance = 0
        held: list[str] = []
        for market, pos in acct.positions.items():
            if pos.szi == 0:
                continue
            slots = self.markets[market]
            spec = slots.spec
            lev = chosen_leverage(pos, spec)
            terms = position_terms(spec, pos.szi, pos.entry_ntl, lev, self.marks.get(market))
            basis = signed_basis(pos)
            s = slots.slot(row)
            slots.szi[s] = pos.szi
            slots.basis[s] = basis
            slots.lev[s] = lev
            slots.cross[s] = pos.is_cross
            slots.iso_base[s] = pos.isolated_margin - basis
            slots.value[s] = terms.value
            slots.notional[s] = terms.notional
            slots.initial[s] = terms.initial
            slots.maintenance[s] = terms.maintenance
            slots.liq[s] = pos.liquidating
            slots.level[s] = pos.margin_call_pct
            held.append(market)
            if pos.is_cross:
                base -= basis
                value += terms.value
                notional += terms.notional
                initial += terms.initial
                maintenance += terms.maintenance
        for market in self.held[row]:
            if market not in held:
                self.markets[market].remove(row)
        self.held[row] = tuple(held)
        holds = active = 0
        for order in acct.orders.values():
            holds += order.hold
            if not order.canceling:
                active += order.hold
        self.base[row] = base
        self.value[row] = value
        self.notional[row] = notional
        self.initial[row] = initial
        self.maintenance[row] = maintenance
        self.holds[row] = holds
        self.active_holds[row] = active
        self.level[row] = acct.margin_call_pct
        self.liq[row] = acct.liquidating
        self._sync_portfolio(acct, row)
        if acct.assets or row in self.asset_rows:
            self._sync_assets(acct, row)

    def _sync_assets(self, acct: AccountState, row: int) -> None:
        for asset, holders in self.asset_lots.items():
            lots = acct.assets.get(asset, 0)
            if lots > 0:
                holders[row] = lots
            else:
                holders.pop(row, None)
        if any(v > 0 for v in acct.assets.values()):
            self.asset_rows.add(row)
        else:
            self.asset_rows.discard(row)
        self._value_assets(row)

    def _value_assets(self, row: int) -> None:
        equity = usable = 0
        for asset, holders in self.asset_lots.items():
            lots = holders.get(row, 0)
            px, valid = self.prices.get(asset, (0, False))
            if lots and px > 0:
                value = haircut_value(self.registry.collateral[asset], lots * px)
                equity += value
                usable += value if valid else 0
        self.asset_equity[row] = equity
        self.asset_usable[row] = usable

    def reprice_assets(self, market: str, index_px: int, valid: bool) -> Ints:
        """A new oracle price (and validity) of a collateral asset: revalue the rows
        holding it; returns those whose cross decisions may change."""
        self.prices[market] = (index_px, valid)
        holders = self.asset_lots.get(market)
        if not holders:
            return np.zeros(0, dtype=I64)
        rows = np.array(sorted(holders), dtype=I64)
        for row in rows:
            self._value_assets(int(row))
        return self._cross_candidates(rows)

    def _sync_portfolio(self, acct: AccountState, row: int) -> None:
        portfolio = acct.margin_mode == PORTFOLIO
        if not portfolio and not self.pm[row]:
            return  # a cross account: nothing to keep
        if portfolio != bool(self.pm[row]):
            self.portfolio_count += 1 if portfolio else -1
            self.pm[row] = portfolio
        for name in self._PM_FIELDS[3:]:
            getattr(self, name)[row] = 0
        if not portfolio:
            self.pm_initial[row] = self.pm_maintenance[row] = 0
            return
        for market, pos in acct.positions.items():
            if pos.szi and pos.is_cross:
                j = self.column[market]
                self.pm_szi[row, j] = pos.szi
                self.pm_px[row, j] = self.marks.get(market) or pos.entry_ntl // abs(pos.szi)
        if not self._deferred:
            self._portfolio_exact(row)  # one account: the scalar formulas are quicker

    def sync_flags(self, acct: AccountState) -> None:
        """Bring only an account's liquidation flags and margin-call levels up to date
        (what a review changes when it sends no margin cancel)."""
        row = self.row(acct.address)
        self.level[row] = acct.margin_call_pct
        self.liq[row] = acct.liquidating
        for market in self.held[row]:
            pos = acct.positions[market]
            if not pos.is_cross:
                slots = self.markets[market]
                s = slots.slot_of[row]
                slots.liq[s] = pos.liquidating
                slots.level[s] = pos.margin_call_pct

    def equity(self, row: int) -> int:
        return int(self.base[row] + self.value[row] + self.asset_equity[row])

    def usable_equity(self, row: int) -> int:
        """Equity toward new risk: collateral assets only while their oracle is valid."""
        return int(self.base[row] + self.value[row] + self.asset_usable[row])

    def initial_of(self, row: int) -> int:
        """The cross account's initial requirement: portfolio or cross margin."""
        return int(self.pm_initial[row] if self.pm[row] else self.initial[row])

    def maintenance_of(self, row: int) -> int:
        """The cross account's maintenance requirement: portfolio or cross margin."""
        return int(self.pm_maintenance[row] if self.pm[row] else self.maintenance[row])

    def available(self, row: int) -> int:
        """Cross equity toward new risk less the initial requirement and all holds."""
        return self.usable_equity(row) - self.initial_of(row) - int(self.holds[row])

    def rebuild(
        self,
        accounts: Iterable[AccountState],
        marks: dict[str, int],
        prices: dict[str, tuple[int, bool]] | None = None,
    ) -> None:
        self.clear()
        self.marks = dict(marks)
        self.prices = dict(prices or {})
        self._deferred = True  # portfolio requirements: all at once in vectors below
        try:
            for acct in accounts:
                self.sync(acct)
        finally:
            self._deferred = False
        count = len(self.addresses)
        if self.portfolio_count:
            self._reprice_portfolio(np.flatnonzero(self.pm[:count]).astype(I64))

    # ------------------------------------------------------------ a mark tick

    def reprice(self, market: str, mark: int) -> tuple[Ints, Ints]:
        """Revalue every position in ``market`` at ``mark``. Returns the rows whose cross
        account, and the rows whose isolated position there, may need a decision."""
        self.marks[market] = mark
        slots = self.markets[market]
        n = slots.count
        if n == 0:
            return np.zeros(0, dtype=I64), np.zeros(0, dtype=I64)
        szi = slots.szi[:n]
        if int(np.abs(szi).max()) * mark > slots.safe_notional:
            value, notional, initial, maintenance = self._terms_exact(slots, mark)
        else:
            value = szi * mark
            notional = np.abs(value)
            tier = np.searchsorted(slots.bounds, notional, side="right") - 1
            lev = np.minimum(slots.lev[:n], slots.max_lev[tier])
            initial = -((-notional) // lev)
            maintenance = -((slots.deductions[tier] - notional * slots.rates[tier]) // slots.scale)
        cross = slots.cross[:n]
        all_cross = bool(cross.all())
        rows = slots.rows[:n] if all_cross else slots.rows[:n][cross]
        if len(rows):
            if all_cross:
                d_value = value - slots.value[:n]
                d_notional = notional - slots.notional[:n]
                d_initial = initial - slots.initial[:n]
                d_maintenance = maintenance - slots.maintenance[:n]
            else:
                d_value = (value - slots.value[:n])[cross]
                d_notional = (notional - slots.notional[:n])[cross]
                d_initial = (initial - slots.initial[:n])[cross]
                d_maintenance = (maintenance - slots.maintenance[:n])[cross]
            # one slot per account and market: the rows are distinct, += is exact
            self.value[rows] += d_value
            self.notional[rows] += d_notional
            self.initial[rows] += d_initial
            self.maintenance[rows] += d_maintenance
        slots.value[:n] = value
        slots.notional[:n] = notional
        slots.initial[:n] = initial
        slots.maintenance[:n] = maintenance
        if self.portfolio_count and len(rows):
            pm_rows = rows[self.pm[rows]]
            if len(pm_rows):
                column = self.column[market]
                self.pm_px[pm_rows, column] = mark
                self._reprice_portfolio(pm_rows, column)
        cross_rows = self._cross_candidates(rows)
        if all_cross:
            return cross_rows, np.zeros(0, dtype=I64)
        iso = ~cross
        equity = slots.iso_base[:n][iso] + value[iso]
        maint = maintenance[iso]
        below = (maint > 0) & (equity < maint)
        flag = below != slots.liq[:n][iso]
        flag |= call_levels(equity, maint, self.levels) != slots.level[:n][iso]
        return cross_rows, slots.rows[:n][iso][flag]

    def _cross_candidates(self, rows: Ints) -> Ints:
        if not len(rows):
            return rows
        equity = self.base[rows] + self.value[rows] + self.asset_equity[rows]
        maintenance = self.maintenance[rows]
        initial = self.initial[rows]
        if self.portfolio_count:
            pm = self.pm[rows]
            maintenance = np.where(pm, self.pm_maintenance[rows], maintenance)
            initial = np.where(pm, self.pm_initial[rows], initial)
        below = (maintenance > 0) & (equity < maintenance)
        # a USDC liability behind collateral assets with no cross position is a case too
        below |= (self.notional[rows] == 0) & (self.base[rows] < 0) & (self.asset_equity[rows] > 0)
        flag = below != self.liq[rows]
        flag |= call_levels(equity, maintenance, self.levels) != self.level[rows]
        active = self.active_holds[rows]
        flag |= (active > 0) & (active > equity - initial)
        found: Ints = rows[flag]
        return found

    # ------------------------------------------------------------ portfolio margin

    @property
    def specs(self) -> list[MarketSpec]:
        """The markets as the registry has them now (a run-time change replaces one)."""
        return list(self.registry)

    def _portfolio_params(self) -> PortfolioParams:
        """The grid and per-market rates as arrays, rebuilt when a market changes."""
        specs = self.specs
        key = (self.registry.portfolio, *specs)
        if key == self._params_key:
            return self._params
        grid = scenario_grid(self.registry)
        moves = np.array([sc.moves_ppm for sc in grid.scenarios], dtype=I64).T
        taker = np.array([max(s.taker_fee_ppm, 0) for s in specs], dtype=I64)
        funding = np.array([s.pm_funding_provision_ppm for s in specs], dtype=I64)
        rates = [max(margin_table(s).rates) for s in specs]
        most = max([1, *rates, *taker.tolist(), *funding.tolist()])
        self._params_key = key
        self._params = PortfolioParams(
            moves,
            np.array(grid.stress_ppm, dtype=I64),
            grid.maintenance_ppm,
            taker,
            funding,
            INT64_MAX // most // 4,
            INT64_MAX // max(1, int(np.abs(moves).max(initial=0))) // 4,
        )
        return self._params

    def _reprice_portfolio(self, rows: Ints, column: int | None = None) -> None:
        """The portfolio requirements of these rows from their sizes and prices: the
        grid's P&L as one matrix product (``szi @ moves``) and each leg's stress, floor
        and provision in vectors (only ``column``'s when one market moved); what
        ``portfolio_margin`` computes exactly."""
        params = self._portfolio_params()
        szi = self.pm_szi[rows]
        px = self.pm_px[rows]
        qty = np.abs(szi)
        notional = qty * px
        if len(rows) and (
            int(notional.max(initial=0)) > params.safe_notional
            or int(px.max(initial=0)) > params.safe_px
        ):
            for row in rows:
                self._portfolio_exact(int(row))
            return
        grid = params.moves  # markets x scenarios, signed ppm
        at_mark = self._mark_row()
        if bool(((px == at_mark) | (szi == 0)).all()):
            # every row at the same marks: one move per market and scenario
            steps = -((-at_mark[:, None] * np.abs(grid)) // PPM)
            moves = np.where(grid < 0, -steps, steps)
            pnl = moves.T @ szi.T  # scenarios x rows: the minimum runs along rows
        else:
            steps = -((-px[:, :, None] * np.abs(grid)[None, :, :]) // PPM)
            pnl = np.einsum("nm,nmk->kn", szi, np.where(grid < 0, -steps, steps))
        worst = np.maximum(-pnl.min(axis=0, initial=0), 0)
        specs = self.specs
        for j in range(len(specs)) if column is None else (column,):
            slots = self.markets[specs[j].name]
            terms = self._leg_terms(slots, params, j, szi[:, j], px[:, j], notional[:, j])
            if column is None:
                self.pm_terms[rows, j] = terms
            else:  # one market moved: its terms change, the others' sums stand
                sums = self.pm_sums[rows] + (terms - self.pm_terms[rows, j])
                self.pm_terms[rows, j] = terms
        if column is None:
            sums = self.pm_terms[rows].sum(axis=1)
        self.pm_sums[rows] = sums
        stress, floor, provision, cross_maintenance = sums.T
        self._settle_portfolio(rows, worst, stress, floor, provision, cross_maintenance)

    @staticmethod
    def _leg_terms(
        slots: MarketSlots, params: PortfolioParams, j: int, szi: Ints, px: Ints, ntl: Ints
    ) -> Ints:
        """Each row's (stress, floor, provision, cross maintenance) in market ``j``, as
        ``portfolio.leg_terms``; rows x 4."""
        q = np.abs(szi)
        move = -((-px * params.stress[j]) // PPM)
        stressed = np.maximum(np.where(szi > 0, px - move, px + move), 0) * q
        out = np.empty((len(szi), 4), dtype=I64)
        if len(slots.bounds) == 1 or int(max(ntl.max(initial=0), stressed.max(initial=0))) < int(
            slots.bounds[1]
        ):  # every leg in the first tier: scalars, no lookups
            rate, deduction = int(slots.rates[0]), int(slots.deductions[0])
            out[:, 0] = q * move - ((deduction - stressed * rate) // slots.scale)
            out[:, 1] = -((-ntl) // int(slots.max_lev[0]))
            out[:, 3] = -((deduction - ntl * rate) // slots.scale)
        else:
            tier = np.searchsorted(slots.bounds, ntl, side="right") - 1
            out[:, 0] = q * move + Exposures._tier_maintenance(slots, stressed)
            out[:, 1] = -((-ntl) // slots.max_lev[tier])
            out[:, 3] = -((slots.deductions[tier] - ntl * slots.rates[tier]) // slots.scale)
        out[:, 2] = -((-ntl * params.taker[j]) // PPM) - ((-ntl * params.funding[j]) // PPM)
        return out

    def _settle_portfolio(
        self,
        rows: Ints,
        worst: Ints,
        stress: Ints,
        floor: Ints,
        provision: Ints,
        cross_maintenance: Ints,
    ) -> None:
        initial = np.maximum(np.maximum(worst, stress), floor) + provision
        whole, part = np.divmod(initial, PPM)
        fraction_ppm = self._params.maintenance_ppm
        fraction = whole * fraction_ppm - ((-part * fraction_ppm) // PPM)
        self.pm_initial[rows] = initial
        self.pm_maintenance[rows] = np.maximum(fraction, cross_maintenance)

    def _mark_row(self) -> Ints:
        return np.array([self.marks.get(spec.name, 0) for spec in self.specs], dtype=I64)

    @staticmethod
    def _tier_maintenance(slots: MarketSlots, notional: Ints) -> Ints:
        tier = np.searchsorted(slots.bounds, notional, side="right") - 1
        found: Ints = -((slots.deductions[tier] - notional * slots.rates[tier]) // slots.scale)
        return found

    def _portfolio_exact(self, row: int) -> None:
        """One row with the scalar formulas (also its per-market terms)."""
        legs = []
        for j, spec in enumerate(self.specs):
            szi = int(self.pm_szi[row, j])
            if szi:
                leg = Leg(spec, szi, int(self.pm_px[row, j]))
                legs.append(leg)
                terms = leg_terms(leg, int(self._portfolio_params().stress[j]))
                self.pm_terms[row, j] = terms
        self.pm_sums[row] = self.pm_terms[row].sum(axis=0)
        found = portfolio_margin(legs, self.registry)
        self.pm_initial[row] = found.initial
        self.pm_maintenance[row] = found.maintenance

    @staticmethod
    def _terms_exact(slots: MarketSlots, mark: int) -> tuple[Ints, Ints, Ints, Ints]:
        """The slow path for positions so large that int64 products could overflow."""
        n = slots.count
        out = np.zeros((4, n), dtype=I64)
        spec = slots.spec
        for s in range(n):
            t = position_terms(spec, int(slots.szi[s]), 0, int(slots.lev[s]), mark)
            out[0, s], out[1, s], out[2, s], out[3, s] = (
                t.value,
                t.notional,
                t.initial,
                (t.maintenance),
            )
        return out[0], out[1], out[2], out[3]
