"""Risk's core: the accounts of one risk.in partition.

Pre-trade it reserves a hold and forwards the order to the market's matcher; post-trade
it applies fill legs to collateral and positions, releases holds, answers the client on
account.events, and raises a liquidation trigger when equity falls below maintenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from libs.common import topics
from libs.common.markets import MarketRegistry
from libs.common.money import UnitError, mul_ratio
from libs.common.runtime import ChangeTracked, Context
from libs.common.schemas import (
    AccountFill,
    BalanceUpdate,
    CancelOrder,
    CancelRequest,
    Deposit,
    FillLeg,
    LiquidationTrigger,
    MarkUpdate,
    NewOrder,
    OrderResult,
    OrderUpdate,
    PlaceOrder,
    Withdraw,
)
from libs.common.state import (
    ACCOUNT_PREFIX,
    MARK_PREFIX,
    AccountState,
    MarkState,
    OpenOrderState,
    PositionState,
)
from services.risk.margin import MarginView, order_hold
from services.risk.position import apply_fill

VENUE_KEY = "v:venue"
MAX_PARTITIONS = 1024


class VenueLedger(msgspec.Struct, kw_only=True):
    """Money that left accounts for the venue in this partition (fees so far)."""

    fees: int = 0


class RiskCore:
    """Applies user actions, fills, order results and marks for one partition."""

    def __init__(self, markets: MarketRegistry, partition: int) -> None:
        self.markets = markets
        self.partition = partition
        self.accounts: ChangeTracked[AccountState] = ChangeTracked(ACCOUNT_PREFIX, AccountState)
        self.marks: ChangeTracked[MarkState] = ChangeTracked(MARK_PREFIX, MarkState)
        self.venue = VenueLedger()
        self._venue_dirty = False
        self._encoder = msgspec.msgpack.Encoder()

    # ------------------------------------------------------------ runtime protocol

    def apply(self, message: Any, ctx: Context) -> None:
        if isinstance(message, FillLeg):
            self._fill(message, ctx)
        elif isinstance(message, OrderResult):
            self._order_result(message, ctx)
        elif isinstance(message, PlaceOrder):
            self._place(message, ctx)
        elif isinstance(message, MarkUpdate):
            self._mark(message, ctx)
        elif isinstance(message, CancelOrder):
            self._cancel(message, ctx)
        elif isinstance(message, Deposit):
            self._deposit(message, ctx)
        elif isinstance(message, Withdraw):
            self._withdraw(message, ctx)

    def take_changes(self) -> dict[str, bytes | None]:
        changes: dict[str, bytes | None] = {}
        self.accounts.take_changes(changes)
        self.marks.take_changes(changes)
        if self._venue_dirty:
            changes[VENUE_KEY] = self._encoder.encode(self.venue)
            self._venue_dirty = False
        return changes

    def restore(self, entries: Mapping[str, bytes]) -> None:
        self.accounts.restore(entries)
        self.marks.restore(entries)
        raw = entries.get(VENUE_KEY)
        self.venue = msgspec.msgpack.decode(raw, type=VenueLedger) if raw else VenueLedger()

    # ------------------------------------------------------------ helpers

    def _account(self, address: str) -> AccountState:
        acct = self.accounts.get(address)
        if acct is None:
            acct = AccountState(address=address)
            self.accounts.put(address, acct)
        return acct

    def _mark_prices(self) -> dict[str, int]:
        return {m.market: m.mark_px for m in self.marks.values()}

    def _answer(self, ctx: Context, msg: PlaceOrder, status: str, error: str) -> None:
        ctx.emit(
            topics.ACCOUNT_EVENTS,
            msg.account,
            OrderUpdate(
                ts=msg.ts,
                account=msg.account,
                market=msg.market,
                oid=None,
                status=status,
                error=error,
                req_id=msg.req_id,
                cloid=msg.cloid,
            ),
        )

    # ------------------------------------------------------------ user actions

    def _deposit(self, msg: Deposit, ctx: Context) -> None:
        if msg.usd <= 0:
            self._balance(ctx, msg.account, 0, "deposit", msg, error="Deposit must be positive.")
            return
        acct = self._account(msg.account)
        acct.collateral += msg.usd
        acct.updated = msg.ts
        self.accounts.touch(msg.account)
        self._balance(ctx, msg.account, msg.usd, "deposit", msg)

    def _withdraw(self, msg: Withdraw, ctx: Context) -> None:
        acct = self.accounts.get(msg.account)
        if msg.usd <= 0 or acct is None:
            self._balance(ctx, msg.account, 0, "withdraw", msg, error="Insufficient balance.")
            return
        view = MarginView(acct, self._mark_prices(), self.markets)
        if msg.usd > min(view.withdrawable, acct.collateral):
            self._balance(ctx, msg.account, 0, "withdraw", msg, error="Insufficient balance.")
            return
        acct.collateral -= msg.usd
        acct.updated = msg.ts
        self.accounts.touch(msg.account)
        self._balance(ctx, msg.account, -msg.usd, "withdraw", msg)

    def _balance(
        self,
        ctx: Context,
        address: str,
        delta: int,
        reason: str,
        msg: Deposit | Withdraw,
        error: str | None = None,
    ) -> None:
        acct = self.accounts.get(address)
        ctx.emit(
            topics.ACCOUNT_EVENTS,
            address,
            BalanceUpdate(
                ts=msg.ts,
                account=address,
                collateral=acct.collateral if acct else 0,
                delta=delta,
                reason=reason,
                req_id=msg.req_id,
                error=error,
            ),
        )

    def _place(self, msg: PlaceOrder, ctx: Context) -> None:
        try:
            spec = self.markets.by_name(msg.market)
        except UnitError as exc:
            self._answer(ctx, msg, "rejected", str(exc))
            return
        if msg.px <= 0 or msg.sz <= 0:
            self._answer(ctx, msg, "rejected", "Order has invalid price or size.")
            return
        mark = self.marks.get(msg.market)
        mark_px = mark.mark_px if mark else 0
        ref_px = mark_px or msg.px
        if ref_px * msg.sz < spec.min_order_usd and not msg.reduce_only:
            self._answer(
                ctx,
                msg,
                "minTradeNtlRejected",
                f"Order must have minimum value of ${spec.min_order_usd // 1_000_000}.",
            )
            return
        acct = self.accounts.get(msg.account) or AccountState(address=msg.account)
        pos = acct.positions.get(msg.market)
        hold = 0
        if msg.reduce_only:
            size = pos.szi if pos else 0
            if size == 0 or (size > 0) == msg.is_buy:
                self._answer(
                    ctx, msg, "reduceOnlyRejected", "Reduce only order would increase position."
                )
                return
        else:
            leverage = pos.leverage if pos and pos.leverage else spec.default_leverage
            hold = order_hold(spec, leverage, msg.px, msg.sz, mark_px)
            view = MarginView(acct, self._mark_prices(), self.markets)
            if hold > view.available:
                self._answer(
                    ctx,
                    msg,
                    "perpMarginRejected",
                    f"Insufficient margin to place order. asset={spec.asset}",
                )
                return
        oid = ctx.offset * MAX_PARTITIONS + ctx.partition
        acct = self._account(msg.account)
        acct.orders[oid] = OpenOrderState(
            oid=oid,
            market=msg.market,
            is_buy=msg.is_buy,
            px=msg.px,
            sz=msg.sz,
            orig_sz=msg.sz,
            hold=hold,
            reduce_only=msg.reduce_only,
            cloid=msg.cloid,
            ts=msg.ts,
        )
        acct.updated = msg.ts
        self.accounts.touch(msg.account)
        ctx.emit(
            topics.MATCHER_IN,
            msg.market,
            NewOrder(
                ts=msg.ts,
                oid=oid,
                account=msg.account,
                market=msg.market,
                is_buy=msg.is_buy,
                px=msg.px,
                sz=msg.sz,
                tif=msg.tif,
                reduce_only=msg.reduce_only,
                cloid=msg.cloid,
                req_id=msg.req_id,
            ),
        )

    def _cancel(self, msg: CancelOrder, ctx: Context) -> None:
        acct = self.accounts.get(msg.account)
        order = acct.orders.get(msg.oid) if acct else None
        if order is None or order.market != msg.market:
            ctx.emit(
                topics.ACCOUNT_EVENTS,
                msg.account,
                OrderUpdate(
                    ts=msg.ts,
                    account=msg.account,
                    market=msg.market,
                    oid=msg.oid,
                    status="cancelRejected",
                    error="Order was never placed, already canceled, or filled.",
                    req_id=msg.req_id,
                ),
            )
            return
        ctx.emit(
            topics.MATCHER_IN,
            msg.market,
            CancelRequest(
                ts=msg.ts, oid=msg.oid, account=msg.account, market=msg.market, req_id=msg.req_id
            ),
        )

    # ------------------------------------------------------------ from the matcher

    def _fill(self, msg: FillLeg, ctx: Context) -> None:
        spec = self.markets.by_name(msg.market)
        acct = self._account(msg.account)
        pos = acct.positions.get(msg.market)
        if pos is None:
            pos = acct.positions[msg.market] = PositionState(market=msg.market)
        notional = msg.px * msg.sz
        rate = spec.maker_fee_ppm if msg.is_maker else spec.taker_fee_ppm
        fee = mul_ratio(notional, rate, round_up=True)
        start = pos.szi
        pnl = apply_fill(pos, msg.is_buy, msg.px, msg.sz)
        acct.collateral += pnl - fee
        self.venue.fees += fee
        self._venue_dirty = True
        if pos.szi == 0 and not pos.leverage:
            del acct.positions[msg.market]
        order = acct.orders.get(msg.oid)
        order_filled_sz, order_filled_ntl = msg.sz, notional
        if order is not None:
            order.filled_ntl += notional
            order_filled_sz = order.orig_sz - order.sz + msg.sz
            order_filled_ntl = order.filled_ntl
            if msg.order_closed or msg.sz >= order.sz:
                del acct.orders[msg.oid]
            else:
                keep = order.hold * (order.sz - msg.sz) // order.sz
                order.hold = keep
                order.sz -= msg.sz
        acct.updated = msg.ts
        self.accounts.touch(msg.account)
        ctx.emit(
            topics.ACCOUNT_EVENTS,
            msg.account,
            AccountFill(
                ts=msg.ts,
                account=msg.account,
                market=msg.market,
                oid=msg.oid,
                is_buy=msg.is_buy,
                px=msg.px,
                sz=msg.sz,
                fee=fee,
                is_maker=msg.is_maker,
                tid=msg.tid,
                closed_pnl=pnl,
                start_position=start,
            ),
        )
        if msg.is_maker and msg.order_closed:
            ctx.emit(
                topics.ACCOUNT_EVENTS,
                msg.account,
                OrderUpdate(
                    ts=msg.ts,
                    account=msg.account,
                    market=msg.market,
                    oid=msg.oid,
                    status="filled",
                    filled_sz=order_filled_sz,
                    filled_ntl=order_filled_ntl,
                ),
            )

    def _order_result(self, msg: OrderResult, ctx: Context) -> None:
        acct = self.accounts.get(msg.account)
        if acct is not None and msg.status != "resting" and msg.oid in acct.orders:
            del acct.orders[msg.oid]
            acct.updated = msg.ts
            self.accounts.touch(msg.account)
        ctx.emit(
            topics.ACCOUNT_EVENTS,
            msg.account,
            OrderUpdate(
                ts=msg.ts,
                account=msg.account,
                market=msg.market,
                oid=msg.oid,
                status=msg.status,
                filled_sz=msg.filled_sz,
                resting_sz=msg.resting_sz,
                filled_ntl=msg.filled_ntl,
                error=msg.error,
                req_id=msg.req_id,
                cloid=msg.cloid,
            ),
        )

    def _mark(self, msg: MarkUpdate, ctx: Context) -> None:
        if msg.mark_px <= 0:
            return
        self.marks.put(
            msg.market,
            MarkState(market=msg.market, mark_px=msg.mark_px, index_px=msg.index_px, ts=msg.ts),
        )
        marks = self._mark_prices()
        for acct in self.accounts.values():
            if msg.market not in acct.positions:
                continue
            view = MarginView(acct, marks, self.markets)
            below = view.maintenance > 0 and view.equity < view.maintenance
            if below and not acct.liquidating:
                acct.liquidating = True
                self.accounts.touch(acct.address)
                ctx.emit(
                    topics.LIQUIDATIONS,
                    acct.address,
                    LiquidationTrigger(
                        ts=msg.ts,
                        account=acct.address,
                        equity=view.equity,
                        maintenance=view.maintenance,
                    ),
                )
            elif not below and acct.liquidating:
                acct.liquidating = False
                self.accounts.touch(acct.address)
