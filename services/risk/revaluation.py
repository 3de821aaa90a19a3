"""Mark to market for a whole partition at once: the exposure index.

Beside the canonical ``AccountState`` structs, every account's cross aggregates
(collateral less cross cost bases, value, notional, initial and maintenance margin,
holds) and every position (one slot per account and market) live in numpy int64
arrays. A mark tick revalues a market's slots in a handful of vector operations, moves
the accounts' aggregates by the deltas, and returns only the accounts whose state may
change: a liquidation trigger or recovery, a margin-call level, a margin cancel. Risk
reviews those one by one in exact integers.

The index is derived, never persisted: rebuilt from the accounts on restore and updated
whenever an account changes. Every number in it is what ``libs.common.margin`` computes
from the account at the same marks (the property tests hold it to that).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from libs.common.margin import chosen_leverage, margin_table, position_terms, signed_basis
from libs.common.markets import MarketRegistry, MarketSpec
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
        self.clear()

    def clear(self) -> None:
        """Forget every account and mark."""
        self.marks = {}
        self.markets = {spec.name: MarketSlots(spec) for spec in self.registry}
        self.row_of = {}
        self.addresses = []
        self.held = []
        for name in (*self._ROW_FIELDS, "liq"):
            setattr(self, name, np.zeros(0, dtype=getattr(self, name).dtype))
        self._grow(64)

    def _grow(self, capacity: int) -> None:
        count = len(self.addresses)
        for name in (*self._ROW_FIELDS, "liq"):
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
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
        return int(self.base[row] + self.value[row])

    def available(self, row: int) -> int:
        """Cross equity less cross initial margin and all holds."""
        return int(self.base[row] + self.value[row] - self.initial[row] - self.holds[row])

    def rebuild(self, accounts: Iterable[AccountState], marks: dict[str, int]) -> None:
        self.clear()
        self.marks = dict(marks)
        for acct in accounts:
            self.sync(acct)

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
        equity = self.base[rows] + self.value[rows]
        maintenance = self.maintenance[rows]
        below = (maintenance > 0) & (equity < maintenance)
        flag = below != self.liq[rows]
        flag |= call_levels(equity, maintenance, self.levels) != self.level[rows]
        active = self.active_holds[rows]
        flag |= (active > 0) & (active > equity - self.initial[rows])
        found: Ints = rows[flag]
        return found

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
