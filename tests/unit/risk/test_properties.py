"""Properties of the risk cores over random histories, across all four partitions.

Deposits, withdrawals, transfers, orders and their outcomes, trades (both legs, some
with the backstop vault), leverage and isolated-margin changes, fee tiers, marks (some
with an invalid oracle), funding, and LPs' deposits into and withdrawals from the vault:
after every step the money is all accounted for, no hold is negative, every account below
maintenance has been flagged with a trigger, and the exposure index agrees with the
shared margin formulas; an LP's deposit or withdrawal never lowers the NAV per share of
the others' shares, and raises it by less than a share's worth or a micro-dollar (the
rounding, always the vault's). A core restarted from its snapshot behaves exactly the same.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common import topics
from libs.common.margin import AccountSummary
from libs.common.runtime import Output
from libs.common.schemas import (
    CancelOrder,
    Deposit,
    FeeTier,
    FillLeg,
    FundingPayment,
    FundingUpdate,
    LiquidationTrigger,
    MarkUpdate,
    Message,
    ModifyOrder,
    NewOrder,
    OrderResult,
    PlaceOrder,
    UpdateIsolatedMargin,
    UpdateLeverage,
    UsdTransfer,
    VaultTransfer,
    Withdraw,
)
from libs.common.state import BACKSTOP_VAULT_ACCOUNT, VENUE_ACCOUNTS, VaultShares
from libs.common.topics import partition_for
from services.risk.engine import RiskCore
from services.risk.holds import reprice_holds
from tests.unit.cores import Driver, restart_midway
from tests.unit.risk.support import MARKETS, core, risk

ACCOUNTS = ["0x" + c * 40 for c in "1234567"]
BASE = {"BTC": 1_000_000, "ETH": 350_000}  # 100000.0 and 3500.00 in ticks
PARTITIONS = 4
VAULT = BACKSTOP_VAULT_ACCOUNT
VAULT_PARTITION = partition_for(VAULT, PARTITIONS)
LOCKUP_MS = 4 * 86_400_000


class Venue:
    """Four risk partitions; records addressed to risk.in are delivered at once."""

    def __init__(self) -> None:
        self.drivers = [risk(p) for p in range(PARTITIONS)]
        self.net_deposits = 0
        self.oids: dict[str, list[int]] = defaultdict(list)
        self.outputs: list[Output] = []

    def driver(self, account: str) -> Driver:
        return self.drivers[partition_for(account, PARTITIONS)]

    def send(self, account: str, message: Message) -> list[Output]:
        return self._run([(self.driver(account), message)])

    def broadcast(self, message: Message) -> list[Output]:
        return self._run([(d, message) for d in self.drivers])

    def _run(self, queue: list[tuple[Driver, Message]]) -> list[Output]:
        out: list[Output] = []
        while queue:
            driver, message = queue.pop(0)
            for o in driver.send(message):
                out.append(o)
                if o.topic == topics.RISK_IN:
                    queue.append((self.drivers[o.partition], o.message))  # type: ignore[arg-type]
                if isinstance(o.message, NewOrder):
                    self.oids[o.message.account].append(o.message.oid)
        self.outputs.extend(out)
        return out

    def cores(self) -> list[RiskCore]:
        return [core(d) for d in self.drivers]


@st.composite
def histories(draw: Any) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 45))):
        who = draw(st.sampled_from(ACCOUNTS))
        market = draw(st.sampled_from(["BTC", "ETH"]))
        kind = draw(
            st.sampled_from(
                [
                    "deposit",
                    "deposit",
                    "withdraw",
                    "transfer",
                    "place",
                    "place",
                    "trade",
                    "trade",
                    "trade",
                    "result",
                    "modify",
                    "cancel",
                    "mark",
                    "mark",
                    "funding",
                    "leverage",
                    "isolated",
                    "fee",
                    "vault",
                    "vault",
                    "vault",
                    "vault",
                ]
            )
        )
        base = BASE[market]
        if kind == "deposit":
            steps.append((kind, (who, draw(st.integers(1, 50_000)) * 1_000_000)))
        elif kind == "withdraw":
            steps.append((kind, (who, draw(st.integers(1, 60_000)) * 1_000_000)))
        elif kind == "transfer":
            other = draw(st.sampled_from(ACCOUNTS))
            steps.append((kind, (who, other, draw(st.integers(1, 20_000)) * 1_000_000)))
        elif kind == "place":
            steps.append(
                (
                    kind,
                    (
                        who,
                        market,
                        draw(st.booleans()),
                        base + draw(st.integers(-3_000, 3_000)),
                        draw(st.integers(1, 40_000)),
                        draw(st.booleans()),
                        draw(st.sampled_from(["limit", "limit", "market", "trigger"])),
                    ),
                )
            )
        elif kind == "trade":
            other = draw(st.sampled_from([a for a in ACCOUNTS if a != who] + [VAULT]))
            steps.append(
                (
                    kind,
                    (
                        who,
                        other,
                        market,
                        base + draw(st.integers(-8_000, 8_000)),
                        draw(st.integers(1, 60_000)),
                        draw(st.booleans()),
                        draw(st.integers(0, 30)),
                        draw(st.booleans()),
                    ),
                )
            )
        elif kind in ("result", "modify", "cancel"):
            status = draw(
                st.sampled_from(
                    [
                        "resting",
                        "filled",
                        "canceled",
                        "triggered",
                        "marginCanceled",
                        "cancelRejected",
                        "badAloPxRejected",
                    ]
                )
            )
            extra = (base + draw(st.integers(-3_000, 3_000)), draw(st.integers(1, 40_000)))
            steps.append((kind, (who, market, draw(st.integers(0, 30)), status, extra)))
        elif kind == "mark":
            status = draw(st.sampled_from(["valid", "valid", "valid", "stale"]))
            steps.append((kind, (market, base + draw(st.integers(-150_000, 150_000)), status)))
        elif kind == "funding":
            steps.append(
                (
                    kind,
                    (
                        market,
                        draw(st.integers(-40_000, 40_000)),
                        base + draw(st.integers(-20_000, 20_000)),
                    ),
                )
            )
        elif kind == "vault":
            amount = draw(
                st.one_of(st.integers(1, 5_000).map(lambda n: n * 1_000_000), st.integers(1, 999))
            )
            lp = draw(st.sampled_from(ACCOUNTS[:3]))  # a few LPs, so they meet again
            whole = draw(st.sampled_from([False, False, True]))
            steps.append((kind, (lp, draw(st.booleans()), amount, draw(st.booleans()), whole)))
        elif kind == "leverage":
            steps.append((kind, (who, market, draw(st.integers(1, 50)), draw(st.booleans()))))
        elif kind == "isolated":
            steps.append((kind, (who, market, draw(st.integers(-5_000, 5_000)) * 1_000_000)))
        else:
            taker = draw(st.integers(0, 800))
            steps.append((kind, (who, taker, draw(st.integers(-taker, taker)))))
    return steps


def _pick(venue: Venue, who: str, index: int) -> int:
    oids = venue.oids.get(who)
    return oids[index % len(oids)] if oids else index + 1


def run_step(venue: Venue, ts: int, step: tuple[str, Any]) -> list[Output]:
    kind, args = step
    if kind == "deposit":
        who, amount = args
        venue.net_deposits += amount
        return venue.send(who, Deposit(ts=ts, account=who, usd=amount))
    if kind == "withdraw":
        who, amount = args
        outs = venue.send(who, Withdraw(ts=ts, account=who, usd=amount))
        if outs and outs[0].message.error is None:  # type: ignore[attr-defined]
            venue.net_deposits -= amount
        return outs
    if kind == "transfer":
        who, other, amount = args
        return venue.send(who, UsdTransfer(ts=ts, account=who, destination=other, usd=amount))
    if kind == "place":
        who, market, is_buy, px, sz, reduce_only, order_kind = args
        message = PlaceOrder(
            ts=ts,
            account=who,
            market=market,
            is_buy=is_buy,
            px=0 if order_kind == "market" else px,
            sz=sz,
            reduce_only=reduce_only,
            kind=order_kind,
            trigger_px=px if order_kind == "trigger" else 0,
        )
        return venue.send(who, message)
    if kind == "trade":
        who, other, market, px, sz, who_buys, index, who_makes = args
        legs = []
        for account, buys, maker in (
            (who, who_buys, who_makes),
            (other, not who_buys, not who_makes),
        ):
            legs.append(
                FillLeg(
                    ts=ts,
                    account=account,
                    market=market,
                    oid=_pick(venue, account, index),
                    is_buy=buys,
                    px=px,
                    sz=sz,
                    is_maker=maker,
                    tid=ts,
                    order_closed=index % 3 == 0,
                )
            )
        return venue.send(who, legs[0]) + venue.send(other, legs[1])
    if kind == "result":
        who, market, index, status, (px, sz) = args
        oid = _pick(venue, who, index)
        message = OrderResult(
            ts=ts,
            account=who,
            market=market,
            oid=oid,
            status=status,
            filled_sz=0,
            resting_sz=sz if status == "resting" else 0,
            px=px,
            req_id="m" if index % 2 else "",
        )
        return venue.send(who, message)
    if kind == "modify":
        who, market, index, _, (px, sz) = args
        message = ModifyOrder(
            ts=ts,
            account=who,
            market=market,
            oid=_pick(venue, who, index),
            is_buy=index % 2 == 0,
            px=px,
            sz=sz,
            req_id="m",
        )
        return venue.send(who, message)
    if kind == "cancel":
        who, market, index, _, _ = args
        return venue.send(
            who, CancelOrder(ts=ts, account=who, market=market, oid=_pick(venue, who, index))
        )
    if kind == "mark":
        market, px, status = args
        return venue.broadcast(
            MarkUpdate(ts=ts, market=market, mark_px=px, index_px=px, oracle_status=status)
        )
    if kind == "funding":
        market, rate, oracle = args
        outs = venue.broadcast(
            FundingUpdate(
                ts=ts, market=market, rate_ppb=rate, mark_px=oracle, cum_index=0, oracle_px=oracle
            )
        )
        return outs
    if kind == "vault":
        who, is_deposit, amount, unlocked, whole = args
        # a withdrawal either inside every lock-up or after all of them
        at = ts + LOCKUP_MS * 100 if unlocked and not is_deposit else ts
        value, ledger = _vault(venue)
        stake = ledger.stakes.get(who)
        if whole and not is_deposit and stake is not None and ledger.total_shares:
            amount = max(1, stake.shares * value // ledger.total_shares)  # all of it
        outs: list[Output] = []
        if is_deposit and unlocked:  # the LP brings the money along first
            venue.net_deposits += amount
            outs = venue.send(who, Deposit(ts=ts, account=who, usd=amount))
        message = VaultTransfer(ts=at, account=who, vault=VAULT, is_deposit=is_deposit, usd=amount)
        return outs + venue.send(who, message)
    if kind == "leverage":
        who, market, lev, cross = args
        return venue.send(
            who, UpdateLeverage(ts=ts, account=who, market=market, leverage=lev, is_cross=cross)
        )
    if kind == "isolated":
        who, market, amount = args
        return venue.send(who, UpdateIsolatedMargin(ts=ts, account=who, market=market, usd=amount))
    who, taker, maker = args
    return venue.send(who, FeeTier(ts=ts, account=who, taker_ppm=taker, maker_ppm=maker))


def _check(venue: Venue, outs: list[Output], step: tuple[str, Any]) -> None:
    total = 0
    sizes: dict[str, int] = defaultdict(int)
    triggered = {
        (o.message.account, o.message.market)
        for o in outs
        if isinstance(o.message, LiquidationTrigger)
    }
    for c in venue.cores():
        total += c.venue.total
        marks = {m.market: m.mark_px for m in c.marks.values()}
        statuses = {m.market: m.oracle_status for m in c.marks.values()}
        ex = c.exposures
        for acct in c.accounts.values():
            total += acct.collateral
            for order in acct.orders.values():
                assert order.hold >= 0
            # holds are never stale: repricing from scratch changes none of them (the
            # core reprices only what a change can move; this recomputes everything)
            fresh = msgspec.msgpack.decode(msgspec.msgpack.encode(acct), type=type(acct))
            for market in sorted({o.market for o in fresh.orders.values()}):
                spec = MARKETS.by_name(market)
                reprice_holds(fresh, spec, *c._hold_terms(fresh, spec))
            assert {o.oid: o.hold for o in fresh.orders.values()} == {
                o.oid: o.hold for o in acct.orders.values()
            }, f"stale holds at {step}"
            s = AccountSummary(acct, marks, MARKETS)
            row = ex.row_of[acct.address]
            # the vectorized index is exactly the shared formulas
            assert ex.equity(row) == s.cross_equity
            assert int(ex.initial[row]) == s.cross_initial
            assert int(ex.maintenance[row]) == s.cross_maintenance
            assert int(ex.notional[row]) == s.cross_notional
            assert int(ex.holds[row]) == s.holds
            below = s.cross_maintenance > 0 and s.cross_equity < s.cross_maintenance
            valid = all(
                statuses.get(m, "valid") == "valid" for m, p in acct.positions.items() if p.is_cross
            )
            if below and valid and acct.address not in VENUE_ACCOUNTS:
                assert acct.liquidating, "an account below maintenance was not flagged"
            if not below:
                assert not acct.liquidating
            if acct.liquidating and (acct.address, "") not in triggered:
                pass  # flagged by an earlier step's trigger
            for row_ in s.positions:
                pos = row_.pos
                sizes[pos.market] += pos.szi
                total += pos.isolated_margin - (pos.entry_ntl if pos.szi > 0 else -pos.entry_ntl)
                if not pos.is_cross:
                    equity = row_.margin_used
                    iso_below = row_.terms.maintenance > 0 and equity < row_.terms.maintenance
                    venue_owned = acct.address in VENUE_ACCOUNTS
                    if (
                        iso_below
                        and statuses.get(pos.market, "valid") == "valid"
                        and not venue_owned
                    ):
                        assert pos.liquidating
                    if not iso_below:
                        assert not pos.liquidating
    assert all(v == 0 for v in sizes.values())
    assert total == venue.net_deposits, f"money was created or lost at {step}"
    if step[0] == "funding":
        paid = sum(o.message.usd for o in outs if isinstance(o.message, FundingPayment))
        assert paid <= 0  # rounding never pays out more than it takes in


def _flagged_now(venue: Venue) -> set[tuple[str, str]]:
    flagged = set()
    for c in venue.cores():
        for acct in c.accounts.values():
            if acct.liquidating:
                flagged.add((acct.address, ""))
            for pos in acct.positions.values():
                if pos.liquidating:
                    flagged.add((acct.address, pos.market))
    return flagged


def _vault(venue: Venue) -> tuple[int, VaultShares]:
    """The vault's value at its marks and its LP ledger."""
    c = venue.cores()[VAULT_PARTITION]
    acct = c.accounts.get(VAULT)
    marks = {m.market: m.mark_px for m in c.marks.values()}
    value = AccountSummary(acct, marks, MARKETS).account_value if acct else 0
    ledger = c.vaults.get(VAULT) or VaultShares(vault=VAULT)
    return value, msgspec.msgpack.decode(msgspec.msgpack.encode(ledger), type=VaultShares)


def _check_nav(before: tuple[int, VaultShares], after: tuple[int, VaultShares], lp: str) -> None:
    """Another LP's deposit or withdrawal leaves everyone else's NAV per share where it
    was, up to rounding that only ever favours the vault (less than a share's worth or a
    micro-dollar in all)."""
    (e0, v0), (e1, v1) = before, after
    t0, t1 = v0.total_shares, v1.total_shares
    if t0 == 0 or (e0, t0) == (e1, t1):
        return
    gained = e1 * t0 - e0 * t1  # (NAV1 - NAV0) x T0 x T1
    assert 0 <= gained < max(e0, t0), "an LP's move changed the others' NAV per share"
    for address, stake in v0.stakes.items():
        if address != lp:
            assert stake.shares * e1 // t1 >= stake.shares * e0 // t0


@given(history=histories())
@settings(max_examples=200, deadline=None)
def test_money_holds_triggers_and_the_index_stay_right_over_any_history(
    history: list[tuple[str, Any]],
) -> None:
    venue = Venue()
    for ts, step in enumerate(history, start=1):
        before = _flagged_now(venue)
        vault_before = _vault(venue)
        outs = run_step(venue, ts, step)
        _check(venue, outs, step)
        if step[0] == "vault":
            _check_nav(vault_before, _vault(venue), step[1][0])
        # every account newly flagged below maintenance had its trigger emitted now
        triggered = {
            (o.message.account, o.message.market)
            for o in outs
            if isinstance(o.message, LiquidationTrigger)
        }
        assert _flagged_now(venue) - before == triggered


@given(
    history=histories(),
    split=st.integers(0, 45),
    commits=st.sets(st.integers(0, 45)),
    partition=st.sampled_from([0, VAULT_PARTITION]),
)
@settings(max_examples=100, deadline=None)
def test_a_restarted_risk_core_behaves_exactly_like_the_one_that_never_stopped(
    history: list[tuple[str, Any]], split: int, commits: set[int], partition: int
) -> None:
    # Record what one partition's core is fed in a full run, then replay it with a restart.
    venue = Venue()
    fed: list[Message] = []
    original_send = venue.drivers[partition].send

    def recording(message: Any, *, live: bool = True) -> list[Output]:
        fed.append(message)
        return original_send(message, live=live)

    venue.drivers[partition].send = recording  # type: ignore[method-assign]
    for ts, step in enumerate(history, start=1):
        run_step(venue, ts, step)
    original = risk(partition)
    restarted = restart_midway(original, lambda p: RiskCore(MARKETS, p), fed, split, commits)
    a, b = core(original), core(restarted)
    assert {k: a.accounts[k] for k in a.accounts.keys()} == {
        k: b.accounts[k] for k in b.accounts.keys()
    }
    assert a.venue == b.venue
    assert {k: a.marks[k] for k in a.marks.keys()} == {k: b.marks[k] for k in b.marks.keys()}
    assert {k: a.vaults[k] for k in a.vaults.keys()} == {k: b.vaults[k] for k in b.vaults.keys()}
