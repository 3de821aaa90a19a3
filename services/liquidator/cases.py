"""The liquidator's core: one case per account (or isolated position) in trouble, each
walked down the waterfall from its own input log.

1. cancel the account's orders in its markets (``liquidatedCanceled``);
2. reduce-only IOC orders into the book, the largest position first, in slices with a
   cooldown above the size threshold (risk charges the liquidation fee to the fund);
3. if the book cannot absorb a slice, or equity is under 2/3 of maintenance: the
   backstop vault takes every position over at the mark, after the insurance fund
   has covered the negative equity this leaves, if the vault can carry them (its
   equity stays at or above a safety factor times its maintenance, each partition
   within its share of that headroom: ``VaultStatus``);
4. if the fund cannot cover it: ADL closes the largest position against the ranked
   opposite positions at the bankruptcy price (the rest goes to the vault at the mark);
   if the vault cannot carry the positions, ADL closes the largest at the mark.

Every move is a request: orders and transfers to the market's matcher, claims and ADL
queries to risk. What comes back (risk's statuses after each fill and mark, the
matcher's results, the fund's answer, each risk partition's ADL candidates) arrives on
this partition's log keyed by the account, so one liquidator acts on an account and
its decisions are a pure function of the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from libs.common import metrics, topics
from libs.common.runtime import ChangeTracked, Context
from libs.common.schemas import (
    AdlCandidate,
    AdlCandidates,
    AdlQuery,
    BadDebtNotice,
    CancelAll,
    CollateralSale,
    InsuranceAnswer,
    InsuranceClaim,
    LiquidatedPosition,
    LiquidationReport,
    LiquidationStatus,
    LiquidationStep,
    LiquidationTrigger,
    NewOrder,
    PositionTransfer,
    VaultStatus,
)
from libs.common.state import (
    BACKSTOP_VAULT_ACCOUNT,
    INSURANCE_FUND_ACCOUNT,
    ORDER_SLOTS,
    liquidation_order_id,
)
from services.liquidator import adl, unwind, waterfall
from services.liquidator.config import LiquidatorConfig
from services.liquidator.structs import (
    LiquidationCase,
    VaultCapacity,
    VaultReservation,
    VaultUnwind,
)

CASE_PREFIX = "case:"
UNWIND_PREFIX = "unwind:"
VAULT_KEY = "vault"
MAX_UNWIND_ORDERS = 15  # oid slots 1..15 of one record (slot 0 is a case's order)
METERED_STAGES = frozenset({"stale", "cancel", "book", "backstop", "convert", "insurance", "adl"})
# The counter's child of each stage, looked up once: ``labels()`` hashes and validates
# its arguments under a lock at every call, a few microseconds per liquidation step.
_STAGE_COUNTERS: dict[str, Any] = {}


def _count_stages(counts: dict[str, int]) -> None:
    """Add a batch's steps to the counter, one ``inc`` per stage (each takes a lock)."""
    for stage, steps in counts.items():
        counter = _STAGE_COUNTERS.get(stage)
        if counter is None:
            counter = _STAGE_COUNTERS[stage] = metrics.LIQUIDATIONS.labels(stage)
        counter.inc(steps)
    counts.clear()


def _owes(msg: LiquidationStatus) -> bool:
    """A cross account's USDC below zero behind collateral assets (risk keeps it in
    liquidation until they repay it, with or without positions)."""
    return not msg.market and msg.collateral < 0 and msg.asset_value > 0


def case_key(account: str, market: str) -> str:
    return f"{account}/{market}" if market else account


class LiquidatorCore:
    def __init__(self, partition: int, config: LiquidatorConfig | None = None) -> None:
        self.partition = partition
        self.config = config or LiquidatorConfig()
        self.cases: ChangeTracked[LiquidationCase] = ChangeTracked(CASE_PREFIX, LiquidationCase)
        self.unwinds: ChangeTracked[VaultUnwind] = ChangeTracked(UNWIND_PREFIX, VaultUnwind)
        # Live steps per stage since the last batch, for the counter (see take_changes).
        self._stage_counts: dict[str, int] = {}
        self.vault = VaultCapacity()
        self._vault_dirty = False
        # Cases waiting for room in the vault (derived from the cases' ``parked``).
        self._parked: set[str] = set()
        self._headroom_gauge: Any = None

    # ------------------------------------------------------------ runtime protocol

    def apply(self, message: Any, ctx: Context) -> None:
        if isinstance(message, LiquidationStatus):
            self._status(message, ctx)
        elif isinstance(message, LiquidationTrigger):
            self._trigger(message, ctx)
        elif isinstance(message, LiquidationReport):
            self._report(message, ctx)
        elif isinstance(message, InsuranceAnswer):
            self._insurance_answer(message, ctx)
        elif isinstance(message, AdlCandidates):
            self._adl_candidates(message, ctx)
        elif isinstance(message, VaultStatus):
            self._vault_status(message, ctx)

    def take_changes(self) -> dict[str, bytes | None]:
        changes: dict[str, bytes | None] = {}
        self.cases.take_changes(changes)
        self.unwinds.take_changes(changes)
        if self._vault_dirty:
            changes[VAULT_KEY] = msgspec.msgpack.encode(self.vault)
            self._vault_dirty = False
        if self._stage_counts:  # the runtime takes the changes once per batch
            _count_stages(self._stage_counts)
        return changes

    def restore(self, entries: Mapping[str, bytes]) -> None:
        self.cases.restore(entries)
        self.unwinds.restore(entries)
        raw = entries.get(VAULT_KEY)
        self.vault = msgspec.msgpack.decode(raw, type=VaultCapacity) if raw else VaultCapacity()
        self._parked = {key for key in self.cases.keys() if self.cases[key].parked >= 0}

    # ------------------------------------------------------------ inputs

    def _trigger(self, msg: LiquidationTrigger, ctx: Context) -> None:
        account, market, ts = msg.account, msg.market, msg.ts
        equity, maintenance = msg.equity, msg.maintenance
        key = case_key(account, market)
        case = self.cases.get(key)
        if case is None:
            case = LiquidationCase(
                account=account,
                market=market,
                case_id=ctx.source_id,
                opened=ts,
                equity=equity,
                maintenance=maintenance,
            )
            self.cases.put(key, case)
        else:
            case.triggers += 1
            case.equity, case.maintenance = equity, maintenance
            self.cases.touch(key)
        self._audit(ctx, case, "triggered", ts, f"equity={equity} maintenance={maintenance}")
        self._watch_debt(ctx, case, ts)
        if msg.status is not None:  # the first status, in the same record
            self._status(msg.status, ctx)

    def _status(self, msg: LiquidationStatus, ctx: Context) -> None:
        if msg.account == BACKSTOP_VAULT_ACCOUNT:
            self._unwind(msg, ctx)
            return
        key = case_key(msg.account, msg.market)
        case = self.cases.get(key)
        if case is None:
            return
        self.cases.touch(key)
        equity, below, ts, reason = msg.equity, msg.below, msg.ts, msg.reason
        first = case.stage == "triggered"
        owes = _owes(msg)
        if first and equity >= 0 and not (below and (msg.positions or owes)):
            self._stale(ctx, case, key, msg)
            return
        positions = list(msg.positions)
        case.equity, case.maintenance = equity, msg.maintenance
        case.collateral, case.positions = msg.collateral, positions
        case.asset_value = msg.asset_value
        if reason in ("backstop", "adl", "convert") and case.awaiting:
            case.awaiting -= 1
        if reason == "credit":
            case.credit_seen = True
        self._watch_debt(ctx, case, ts)
        if not below:
            if case.awaiting:
                # a transfer of the case is still on its way: its landing (a status) or
                # its refusal (a report) must find the case, or a refused takeover's
                # reservation would never be released; the case ends once they are in
                case.recovered = True
                return
            self._settle(ctx, case, key, ts)
            return
        case.recovered = False
        if first:
            self._cancel_orders(ctx, case, ts, msg.open_orders)
        self._advance(ctx, case, key, ts)

    def _settle(self, ctx: Context, case: LiquidationCase, key: str, ts: int) -> None:
        """The account is no longer below maintenance and nothing of the case is on its
        way. Risk reports a liability behind assets as below (the sale is `_advance`'s);
        not below with one means its sale found the oracle not valid: the case ends."""
        if case.positions or case.equity >= 0:
            self._close(ctx, case, key, "recovered" if case.positions else "closed", ts)
        elif not case.claim:  # flat but below zero: the fund's turn
            self._claim(ctx, case, ts)

    def _report(self, msg: LiquidationReport, ctx: Context) -> None:
        if msg.account == BACKSTOP_VAULT_ACCOUNT:
            self._unwind_report(msg, ctx)
            return
        case = self._case_of_report(msg)
        if case is None:
            return
        key = case_key(case.account, case.market)
        self.cases.touch(key)
        if msg.oid and msg.oid == case.pending_oid:
            if msg.filled_sz < case.pending_sz:
                case.book_failed = True
            self._audit(
                ctx,
                case,
                "book",
                msg.ts,
                f"order {msg.status}: filled {msg.filled_sz} of {case.pending_sz}",
                sz=msg.filled_sz,
                before=case.order_equity,
            )
            case.pending_oid = case.pending_sz = 0
        elif msg.status == "transferRejected" and case.awaiting:
            case.awaiting -= 1
            if msg.req_id in case.vault_requests:
                case.vault_requests.remove(msg.req_id)
                self._release(msg.req_id, ctx)
            self._audit(ctx, case, case.stage, msg.ts, f"transfer refused: {msg.error}")
            if case.recovered and not case.awaiting:
                self._settle(ctx, case, key, msg.ts)
                return
        else:
            return
        self._advance(ctx, case, key, msg.ts)

    def _case_of_report(self, msg: LiquidationReport) -> LiquidationCase | None:
        if msg.oid:
            for key in (msg.account, case_key(msg.account, msg.market)):
                case = self.cases.get(key)
                if case is not None and case.pending_oid == msg.oid:
                    return case
            return None
        parts = msg.req_id.split(":")  # liq:<account>:<market>:<n>
        if len(parts) != 4:
            return None
        return self.cases.get(case_key(parts[1], parts[2]))

    def _insurance_answer(self, msg: InsuranceAnswer, ctx: Context) -> None:
        key = case_key(msg.account, msg.market)
        case = self.cases.get(key)
        if case is None or not case.claim or msg.case_id != case.case_id:
            return
        self.cases.touch(key)
        paid = msg.usd if msg.granted else min(max(msg.paid, 0), msg.usd)
        if case.credit_seen:  # the credit's own status came first: equity includes it
            before = case.equity - paid
        else:
            before = case.equity
            case.equity += paid
        case.claim = 0
        if msg.granted:
            verdict = f"covered {msg.usd}"
        elif paid:
            verdict = f"paid {paid} of {msg.usd}, {msg.usd - paid} left"
        else:
            verdict = f"cannot cover {msg.usd}"
        self._audit(
            ctx,
            case,
            "insurance",
            msg.ts,
            f"fund {verdict}; fund balance {msg.balance}",
            shortfall=msg.usd,
            counterparty=INSURANCE_FUND_ACCOUNT,
            before=before,
        )
        if msg.granted:
            if case.equity < 0 and case.positions:  # the mark fell further since the claim
                self._claim(ctx, case, msg.ts, -case.equity)
                return
            if case.positions:
                self._take_over(ctx, case, case.positions, msg.ts)
            else:
                self._close(ctx, case, key, "closed", msg.ts)
        elif case.positions:
            self._ask_adl(ctx, case, msg.ts)
        else:
            self._close(ctx, case, key, "closed", msg.ts)

    def _adl_candidates(self, msg: AdlCandidates, ctx: Context) -> None:
        for key in (msg.account, case_key(msg.account, msg.market)):
            case = self.cases.get(key)
            if case is not None and case.adl_px and case.adl_request == msg.case_id:
                break
        else:
            return
        self.cases.touch(key)
        if all(a.partition != msg.partition for a in case.adl_answers):
            case.adl_answers.append(msg)
        if len(case.adl_answers) < ctx.topics.partitions(topics.RISK_IN):
            return
        self._deleverage(ctx, case, msg.ts)

    # ------------------------------------------------------------ the vault's unwind

    def _unwind(self, msg: LiquidationStatus, ctx: Context) -> None:
        """The vault's positions after a fill or a mark: each market without an order
        in flight gets its next reduce-only IOC slice, within the interval's cap."""
        cfg = self.config
        if not cfg.unwind_slice_ppm:
            return
        held = {p.market for p in msg.positions if p.szi}
        for market in self.unwinds.keys():
            if market not in held and not self.unwinds[market].pending_oid:
                self.unwinds.delete(market)
        slot = 0
        for pos in sorted(msg.positions, key=lambda p: p.market):
            if not pos.szi or pos.mark_px <= 0 or slot == MAX_UNWIND_ORDERS:
                continue
            state = self.unwinds.get(pos.market)
            if state is None:
                state = VaultUnwind(market=pos.market)
                self.unwinds.put(pos.market, state)
            if state.pending_oid or (
                state.last_ts >= 0 and msg.ts < state.last_ts + cfg.cooldown_ms
            ):
                continue
            sz = unwind.slice_lots(pos, state, msg.ts, cfg)
            if sz == 0:
                continue
            window = msg.ts // cfg.unwind_interval_ms
            if window != state.window:
                state.window, state.window_ntl = window, 0
            slot += 1
            px = unwind.limit_px(pos, cfg)
            oid = liquidation_order_id(ctx.offset, ctx.partition, slot)
            state.pending_oid, state.pending_sz, state.pending_mark = oid, sz, pos.mark_px
            state.window_ntl += sz * pos.mark_px
            state.orders, state.last_ts = state.orders + 1, msg.ts
            self.unwinds.touch(pos.market)
            ctx.emit(
                topics.MATCHER_IN,
                pos.market,
                NewOrder(
                    ts=msg.ts,
                    oid=oid,
                    account=BACKSTOP_VAULT_ACCOUNT,
                    market=pos.market,
                    is_buy=pos.szi < 0,
                    px=px,
                    sz=sz,
                    tif="Ioc",
                    reduce_only=True,
                    req_id=f"unwind:{pos.market}:{state.orders}",
                ),
            )
            self._unwind_audit(
                ctx,
                state,
                msg.ts,
                f"reduce-only IOC {sz} of {abs(pos.szi)} lots, limit {px}, mark {pos.mark_px}; "
                f"{state.window_ntl} of {cfg.unwind_max_notional} this interval",
                px=px,
                sz=sz,
                equity=msg.equity,
            )
            if ctx.live:
                self._count_stage("unwind")

    def _unwind_report(self, msg: LiquidationReport, ctx: Context) -> None:
        state = self.unwinds.get(msg.market)
        if state is None or not msg.oid or msg.oid != state.pending_oid:
            return
        self._unwind_audit(
            ctx,
            state,
            msg.ts,
            f"order {msg.status}: filled {msg.filled_sz} of {state.pending_sz}",
            sz=msg.filled_sz,
        )
        if msg.ts // self.config.unwind_interval_ms == state.window:
            unfilled = max(0, state.pending_sz - msg.filled_sz)
            state.window_ntl = max(0, state.window_ntl - unfilled * state.pending_mark)
        state.pending_oid = state.pending_sz = state.pending_mark = 0
        self.unwinds.touch(msg.market)

    def _unwind_audit(
        self,
        ctx: Context,
        state: VaultUnwind,
        ts: int,
        detail: str,
        *,
        px: int = 0,
        sz: int = 0,
        equity: int = 0,
    ) -> None:
        state.steps += 1
        ctx.emit(
            topics.LIQUIDATION_AUDIT,
            BACKSTOP_VAULT_ACCOUNT,
            LiquidationStep(
                ts=ts,
                account=BACKSTOP_VAULT_ACCOUNT,
                stage="unwind",
                detail=detail,
                market=state.market,
                case_id=f"unwind/{state.market}",
                px=px,
                sz=sz,
                equity=equity,
                equity_after=equity,
                step=state.steps,
            ),
        )

    # ------------------------------------------------------------ the waterfall

    def _advance(
        self, ctx: Context, case: LiquidationCase, key: str, ts: int, slot: int = 0
    ) -> None:
        """The next step, once nothing the case asked for is outstanding (``slot``: the
        oid slot of a book order it sends, when one record advances several cases)."""
        if case.pending_oid or case.awaiting or case.claim or case.adl_px:
            return
        # compiled, each read of a struct's field is a Python attribute lookup: read once
        positions, equity = case.positions, case.equity
        if not positions:
            if case.collateral < 0 and case.asset_value > 0 and not case.converted:
                self._sell_collateral(ctx, case, ts)
            elif equity < 0:
                self._claim(ctx, case, ts)
            else:
                self._close(ctx, case, key, "closed", ts)
            return
        cfg = self.config
        if case.parked >= 0:
            if ts < case.parked + cfg.cooldown_ms:
                return  # waits for room in the vault (a status) or the cooldown
            self._unpark(case, key)
        if case.book_failed or waterfall.below_backstop(equity, case.maintenance, cfg):
            if equity < 0:
                self._claim(ctx, case, ts)
            else:
                self._take_over(ctx, case, positions, ts)
            return
        last_slice_ts = case.last_slice_ts
        if last_slice_ts >= 0 and ts < last_slice_ts + cfg.cooldown_ms:
            return  # the next status at or after the cooldown sends the next slice
        pos = waterfall.largest(positions)
        market, szi, mark = pos.market, pos.szi, pos.mark_px
        sz = waterfall.slice_size(pos, cfg)
        capped = ""
        max_book_notional = cfg.max_book_notional
        if max_book_notional:
            window = ts // cfg.book_interval_ms
            if window != case.window:
                case.window, case.window_ntl = window, 0
            room = waterfall.lots_within(max_book_notional - case.window_ntl, mark)
            if room < sz:
                if room == 0:
                    self._hold(ctx, case, pos, window, ts)
                    return
                sz, capped = room, f", capped at {max_book_notional} per interval"
        px = waterfall.limit_px(pos, sz, equity, cfg)
        if px == 0:  # no price the book could give leaves the account solvent
            case.book_failed = True
            self._take_over(ctx, case, positions, ts)
            return
        oid = liquidation_order_id(ctx.offset, ctx.partition, slot)
        case.stage, case.pending_oid, case.pending_sz, case.last_slice_ts = "book", oid, sz, ts
        case.order_equity = equity
        if max_book_notional:
            case.window_ntl += sz * mark
        ctx.emit(
            topics.MATCHER_IN,
            market,
            NewOrder(
                ts=ts,
                oid=oid,
                account=case.account,
                market=market,
                is_buy=szi < 0,
                px=px,
                sz=sz,
                tif="Ioc",
                reduce_only=True,
                req_id=self._next_request(case),
            ),
        )
        self._audit(
            ctx,
            case,
            "book",
            ts,
            f"reduce-only IOC {sz} of {abs(szi)} lots, limit {px}, mark {mark}" + capped,
            market=market,
            px=px,
            sz=sz,
        )

    def _hold(
        self, ctx: Context, case: LiquidationCase, pos: LiquidatedPosition, window: int, ts: int
    ) -> None:
        """The interval's cap is used up: the rest waits for the next interval (audited
        once per interval)."""
        if case.held_window == window:
            return
        case.held_window = window
        resume = (window + 1) * self.config.book_interval_ms
        self._audit(
            ctx,
            case,
            "capped",
            ts,
            f"{case.window_ntl} of {self.config.max_book_notional} sent this interval: "
            f"{abs(pos.szi)} lots wait until {resume}",
            market=pos.market,
            sz=abs(pos.szi),
        )

    def _cancel_orders(
        self, ctx: Context, case: LiquidationCase, ts: int, open_orders: bool = True
    ) -> None:
        """The first step, audited either way; the cancel-all goes only to an account
        risk knows orders of (an order placed after this status races the cancel-all
        through Kafka in any case: the matcher may see it before or after)."""
        positions = case.positions
        if len(positions) == 1:
            markets = [positions[0].market]
        else:
            markets = sorted({p.market for p in positions})
        case.stage = "cancel"
        if not markets:  # a USDC liability behind collateral assets, no position
            self._audit(ctx, case, "cancel", ts, "no position: no orders to cancel")
            return
        if not open_orders:
            self._audit(ctx, case, "cancel", ts, "no open orders in " + ",".join(markets))
            return
        for market in markets:
            ctx.emit(
                topics.MATCHER_IN,
                market,
                CancelAll(ts=ts, account=case.account, market=market, status="liquidatedCanceled"),
            )
        self._audit(ctx, case, "cancel", ts, "open orders canceled in " + ",".join(markets))

    def _sell_collateral(self, ctx: Context, case: LiquidationCase, ts: int) -> None:
        """No position left, USDC below zero and collateral assets behind it: risk sells
        them to the vault to repay the liability (once per case); the account's next
        status (reason ``convert``) says what came of it."""
        owed = -case.collateral
        case.stage, case.converted = "convert", True
        case.awaiting += 1
        ctx.emit(
            topics.RISK_IN,
            case.account,
            CollateralSale(ts=ts, account=case.account, usd=owed, case_id=case.case_id),
        )
        self._audit(
            ctx,
            case,
            "convert",
            ts,
            f"sell collateral assets (worth {case.asset_value}) to the vault for the "
            f"USDC liability {owed}",
            shortfall=owed,
            counterparty=BACKSTOP_VAULT_ACCOUNT,
        )

    def _claim(self, ctx: Context, case: LiquidationCase, ts: int, usd: int = 0) -> None:
        """Ask the fund for ``usd`` (by default the whole negative equity)."""
        case.stage, case.claim, case.credit_seen = "insurance", usd or -case.equity, False
        ctx.emit(
            topics.RISK_IN,
            INSURANCE_FUND_ACCOUNT,
            InsuranceClaim(
                ts=ts,
                account=INSURANCE_FUND_ACCOUNT,
                beneficiary=case.account,
                usd=case.claim,
                market=case.market,
                case_id=case.case_id,
            ),
        )
        self._audit(
            ctx,
            case,
            "insurance",
            ts,
            f"claim {case.claim} for negative equity at the mark",
            shortfall=case.claim,
            counterparty=INSURANCE_FUND_ACCOUNT,
        )

    def _to_vault(
        self,
        ctx: Context,
        case: LiquidationCase,
        positions: list[LiquidatedPosition],
        ts: int,
        px: int = 0,
        sz: int = 0,
    ) -> None:
        """The backstop vault takes positions over, at their marks (or at ``px`` for
        ``sz`` lots of a single position ADL could not place); each takeover's need is
        reserved from this partition's share of the vault's headroom."""
        case.stage = "backstop"
        vault, cfg = self.vault, self.config
        for pos in positions:
            lots = sz or abs(pos.szi)
            price = px or pos.mark_px
            need = waterfall.takeover_need(pos, lots, price, vault.terms, cfg)
            req_id = self._transfer(
                ctx,
                case,
                pos.market,
                case.account,
                BACKSTOP_VAULT_ACCOUNT,
                pos.szi > 0,
                lots,
                price,
                "backstop",
                ts,
            )
            self._reserve(VaultReservation(req_id=req_id, need=need))
            case.vault_requests.append(req_id)
            self._audit(
                ctx,
                case,
                "backstop",
                ts,
                f"vault takes {lots} lots at {price} (equity {case.equity}, "
                f"maintenance {case.maintenance}; uses {need} of the vault's headroom)",
                market=pos.market,
                px=price,
                sz=lots,
                counterparty=BACKSTOP_VAULT_ACCOUNT,
            )

    def _ask_adl(self, ctx: Context, case: LiquidationCase, ts: int, why: str = "") -> None:
        """Ask every risk partition for the opposite positions of the largest position:
        at the bankruptcy price when equity is negative (what the fund did not pay), at
        the mark otherwise (the vault cannot carry it: ``why``)."""
        pos = waterfall.largest(case.positions)
        case.stage, case.adl_market = "adl", pos.market
        at_mark = case.equity >= 0
        case.adl_px = pos.mark_px if at_mark else waterfall.bankruptcy_px(pos, case.equity)
        case.adl_at_mark = at_mark
        case.adl_answers = []
        case.adl_request = self._next_request(case)
        ctx.broadcast(
            topics.RISK_IN,
            case.account,
            AdlQuery(
                ts=ts,
                account=case.account,
                market=pos.market,
                counterparty_is_long=pos.szi < 0,
                case_id=case.adl_request,
            ),
        )
        if at_mark:
            why = why or f"no deficit left (equity {case.equity})"
            detail = f"{why}: deleverage {abs(pos.szi)} lots at the mark {case.adl_px}"
        else:
            detail = (
                f"fund cannot cover {-case.equity}: deleverage {abs(pos.szi)} lots "
                f"at bankruptcy price {case.adl_px} (mark {pos.mark_px})"
            )
        self._audit(
            ctx,
            case,
            "adl",
            ts,
            detail,
            market=pos.market,
            px=case.adl_px,
            sz=abs(pos.szi),
            shortfall=max(0, -case.equity),
            counterparty=BACKSTOP_VAULT_ACCOUNT if at_mark else "",
        )

    def _deleverage(self, ctx: Context, case: LiquidationCase, ts: int) -> None:
        """Every partition answered: close the position against the ranked candidates at
        the ADL price (bankruptcy, or the mark); what they cannot take, and the other
        positions at their marks, go to the vault as far as it can carry them. What it
        cannot stays with the account; the case waits (parked) for room or the
        cooldown when nothing at all moved."""
        market, px = case.adl_market, case.adl_px
        price_kind = "the mark" if case.adl_at_mark else "bankruptcy price"
        candidates: list[AdlCandidate] = []
        mark = 0
        for answer in sorted(case.adl_answers, key=lambda a: a.partition):
            candidates.extend(answer.candidates)
            mark = mark or answer.mark_px
        case.adl_px, case.adl_answers, case.adl_request = 0, [], ""
        target = next(p for p in case.positions if p.market == market)
        closes, left = adl.allocate(candidates, mark or target.mark_px, abs(target.szi))
        for close in closes:
            self._transfer(
                ctx,
                case,
                market,
                close.account,
                case.account,
                close.counterparty_is_long,
                close.sz,
                px,
                "adl",
                ts,
            )
            for account in (case.account, close.account):
                self._audit(
                    ctx,
                    case,
                    "adl",
                    ts,
                    f"{close.account} closes {close.sz} lots against {case.account} "
                    f"at {price_kind} {px}",
                    market=market,
                    px=px,
                    sz=close.sz,
                    counterparty=close.account,
                    to=account,
                )
            if ctx.live:
                metrics.ADL_EVENTS.labels(market).inc()
        moved = bool(closes)
        stuck = 0  # headroom the positions left with the account would need
        cfg = self.config
        if left:
            room = self._room(ctx)
            fit = waterfall.lots_that_fit(target, left, px, self.vault.terms, cfg, room)
            if fit:
                self._to_vault(ctx, case, [target], ts, px=px, sz=fit)
                moved = True
            if fit < left:
                rest = left - fit
                stuck = waterfall.takeover_need(target, rest, px, self.vault.terms, cfg)
                self._stays(ctx, case, target, rest, px, stuck, ts)
        others = [p for p in case.positions if p.market != market]
        if others:
            need = sum(
                waterfall.takeover_need(p, abs(p.szi), p.mark_px, self.vault.terms, cfg)
                for p in others
            )
            if need <= self._room(ctx):
                self._to_vault(ctx, case, others, ts)
                moved = True
            else:
                stuck += need
                for pos in others:  # the next status tries the vault, then ADL, for each
                    one = waterfall.takeover_need(
                        pos, abs(pos.szi), pos.mark_px, self.vault.terms, cfg
                    )
                    self._stays(ctx, case, pos, abs(pos.szi), pos.mark_px, one, ts)
        case.stage = "adl"
        if not moved:
            self._park(case, case_key(case.account, case.market), stuck, ts)

    # ------------------------------------------------------------ the vault's capacity

    def _vault_status(self, msg: VaultStatus, ctx: Context) -> None:
        """The vault's capacity from its risk partition: the takeovers of this partition
        it reflects stop being reserved, and parked cases whose need now fits (or whose
        cooldown passed) try again, in key order."""
        vault = self.vault
        counts = msg.takeovers
        vault.known, vault.ts = True, msg.ts
        vault.equity, vault.maintenance, vault.notional = msg.equity, msg.maintenance, msg.notional
        terms = msg.terms
        if len(terms) != len(vault.terms) or any(
            a != b for a, b in zip(terms, vault.terms, strict=True)
        ):
            vault.terms = list(terms)
        applied = counts[self.partition] if self.partition < len(counts) else 0
        # cumulative: a count below the last one (a status from before it, or counts
        # re-hashed over a new number of partitions) releases nothing twice
        for _ in range(applied - vault.applied):  # that many more landed: which, unsaid
            self._release_smallest()
        vault.applied = max(applied, vault.applied)
        self._vault_dirty = True
        # each case advanced here may send a book order from this one record: each gets
        # its own oid slot, so at most ORDER_SLOTS of them per status (the rest stay
        # parked for the next status, in key order)
        slot = 0
        for key in sorted(self._parked) if self._parked else ():
            if slot == ORDER_SLOTS:
                break
            case = self.cases.get(key)
            if case is None:
                self._parked.discard(key)
                continue
            cooled = msg.ts >= case.parked + self.config.cooldown_ms
            if cooled or case.parked_need <= self._room(ctx):
                self._unpark(case, key)
                self.cases.touch(key)
                self._advance(ctx, case, key, msg.ts, slot)
                slot += 1
        self._export_room(ctx)

    def _reserve(self, reservation: VaultReservation) -> None:
        """Reserve a takeover's need; ``pending`` stays sorted by need, largest first
        (equal needs in the order sent)."""
        pending = self.vault.pending
        need = reservation.need
        low, high = 0, len(pending)
        while low < high:
            middle = (low + high) // 2
            if pending[middle].need >= need:
                low = middle + 1
            else:
                high = middle
        pending.insert(low, reservation)
        self.vault.reserved += need
        self._vault_dirty = True

    def _release_smallest(self) -> None:
        """One more of this partition's takeovers landed on the vault, the status does
        not say which: the smallest reservation goes, the larger ones stay (so what is
        still reserved is never less than what is really in flight)."""
        pending = self.vault.pending
        if pending:
            self.vault.reserved -= pending.pop().need
            self._vault_dirty = True

    def _release(self, req_id: str, ctx: Context) -> None:
        """A takeover the matcher refused never reaches the vault: no longer reserved. If
        a status had already counted it as landed (it released the smallest then), one
        that did land is still reserved: the smallest goes now."""
        pending = self.vault.pending
        for index, reservation in enumerate(pending):
            if reservation.req_id == req_id:
                del pending[index]
                self.vault.reserved -= reservation.need
                self._vault_dirty = True
                break
        else:
            self._release_smallest()
        self._export_room(ctx)

    def _room(self, ctx: Context) -> int:
        """What this partition may still take over: its share of the vault's headroom at
        the last status, less its takeovers the status does not reflect yet (nothing
        before a first status)."""
        vault = self.vault
        share = 0
        if vault.known:
            share = waterfall.vault_share(
                vault.equity,
                vault.maintenance,
                vault.notional,
                self.config,
                ctx.topics.partitions(topics.LIQUIDATIONS),
            )
        return share - vault.reserved

    def _export_room(self, ctx: Context) -> None:
        if ctx.live:
            gauge = self._headroom_gauge
            if gauge is None:  # ``labels()`` costs a few microseconds: looked up once
                gauge = self._headroom_gauge = metrics.VAULT_HEADROOM.labels(str(self.partition))
            gauge.set(self._room(ctx) / 1_000_000)

    def _take_over(
        self,
        ctx: Context,
        case: LiquidationCase,
        positions: list[LiquidatedPosition],
        ts: int,
    ) -> None:
        """The vault takes the positions over at their marks if it can carry them all;
        otherwise the largest goes to ADL at the mark (the account's equity is not
        negative here: the fund has paid)."""
        need = 0
        for pos in positions:
            need += waterfall.takeover_need(
                pos, abs(pos.szi), pos.mark_px, self.vault.terms, self.config
            )
        room = self._room(ctx)
        if need <= room:
            self._to_vault(ctx, case, positions, ts)
            self._export_room(ctx)
            return
        self._refused(ctx, waterfall.largest(positions).market)
        self._ask_adl(ctx, case, ts, f"vault headroom {room}, needs {need}")

    def _stays(
        self,
        ctx: Context,
        case: LiquidationCase,
        pos: LiquidatedPosition,
        lots: int,
        px: int,
        need: int,
        ts: int,
    ) -> None:
        """Lots neither ADL nor the vault could take stay with the account (audited)."""
        self._refused(ctx, pos.market)
        self._audit(
            ctx,
            case,
            "capacity",
            ts,
            f"vault headroom {self._room(ctx)}, needs {need}: {lots} lots stay with "
            f"the account until the vault has room or ADL finds candidates",
            market=pos.market,
            px=px,
            sz=lots,
            counterparty=BACKSTOP_VAULT_ACCOUNT,
        )

    def _refused(self, ctx: Context, market: str) -> None:
        if ctx.live:
            metrics.VAULT_TAKEOVERS_REFUSED.labels(market).inc()

    def _park(self, case: LiquidationCase, key: str, need: int, ts: int) -> None:
        case.parked, case.parked_need = ts, need
        self._parked.add(key)

    def _unpark(self, case: LiquidationCase, key: str) -> None:
        case.parked, case.parked_need = -1, 0
        self._parked.discard(key)

    def _transfer(
        self,
        ctx: Context,
        case: LiquidationCase,
        market: str,
        from_account: str,
        to_account: str,
        from_is_long: bool,
        sz: int,
        px: int,
        kind: str,
        ts: int,
    ) -> str:
        case.awaiting += 1
        req_id = self._next_request(case)
        ctx.emit(
            topics.MATCHER_IN,
            market,
            PositionTransfer(
                ts=ts,
                market=market,
                from_account=from_account,
                to_account=to_account,
                from_is_long=from_is_long,
                sz=sz,
                px=px,
                kind="adl" if kind == "adl" else "backstop",
                case_id=case.case_id,
                req_id=req_id,
            ),
        )
        return req_id

    def _next_request(self, case: LiquidationCase) -> str:
        case.requests += 1
        return f"liq:{case.account}:{case.market}:{case.requests}"

    def _close(self, ctx: Context, case: LiquidationCase, key: str, stage: str, ts: int) -> None:
        detail = f"equity={case.equity} maintenance={case.maintenance}"
        if case.equity < 0:
            detail += f"; bad debt {-case.equity}"
        if case.collateral < 0 and case.asset_value > 0 and not case.positions:
            detail += f"; USDC liability {-case.collateral} left: its assets could not be sold"
        self._audit(ctx, case, stage, ts, detail, shortfall=max(0, -case.equity))
        self._end(ctx, case, key, ts)

    def _stale(self, ctx: Context, case: LiquidationCase, key: str, msg: LiquidationStatus) -> None:
        """The account recovered (or has nothing to liquidate) before its case was
        handled: the trigger is dropped and no order goes out."""
        why = "above maintenance" if not msg.below else "no position"
        before = case.equity
        case.equity, case.maintenance = msg.equity, msg.maintenance
        self._audit(
            ctx,
            case,
            "stale",
            msg.ts,
            f"trigger dropped: {why} (equity={msg.equity} maintenance={msg.maintenance})",
            before=before,
        )
        self._end(ctx, case, key, msg.ts)

    def _end(self, ctx: Context, case: LiquidationCase, key: str, ts: int) -> None:
        if case.debt_open:
            ctx.broadcast(
                topics.RISK_IN,
                case.account,
                BadDebtNotice(
                    ts=ts,
                    account=case.account,
                    case_id=case.case_id,
                    open=False,
                    usd=max(0, -case.equity),
                ),
            )
        self._parked.discard(key)
        self.cases.delete(key)

    def _watch_debt(self, ctx: Context, case: LiquidationCase, ts: int) -> None:
        """The first time a case's equity is negative, every risk partition holds
        withdrawals until the case ends."""
        if case.equity >= 0 or case.debt_open:
            return
        case.debt_open = True
        ctx.broadcast(
            topics.RISK_IN,
            case.account,
            BadDebtNotice(
                ts=ts, account=case.account, case_id=case.case_id, open=True, usd=-case.equity
            ),
        )

    def _audit(
        self,
        ctx: Context,
        case: LiquidationCase,
        stage: str,
        ts: int,
        detail: str,
        *,
        market: str = "",
        px: int = 0,
        sz: int = 0,
        shortfall: int = 0,
        counterparty: str = "",
        to: str = "",
        before: int | None = None,
        after: int | None = None,
    ) -> None:
        own = case.account
        account = to or own
        step = case.steps + 1
        case.steps = step
        equity, maintenance = case.equity, case.maintenance
        ctx.emit(
            topics.LIQUIDATION_AUDIT,
            account,
            LiquidationStep(
                ts=ts,
                account=account,
                stage=stage,
                detail=detail,
                market=market or case.market,
                case_id=case.case_id,
                px=px,
                sz=sz,
                equity=equity if before is None else before,
                maintenance=maintenance,
                shortfall=shortfall or max(0, maintenance - equity),
                counterparty=counterparty,
                equity_after=equity if after is None else after,
                step=step,
            ),
        )
        if ctx.live and stage in METERED_STAGES and account == own:
            self._count_stage(stage)

    def _count_stage(self, stage: str) -> None:
        counts = self._stage_counts
        counts[stage] = counts.get(stage, 0) + 1
