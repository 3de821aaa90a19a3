"""One market's matching engine: order types, rules, triggers, mark price and funding.

Pure: it reads time only from messages and emits everything through the context:
fill legs and order results to the accounts' risk partitions, trades, book deltas,
marks and funding to market.events, marks and funding to every risk partition.
"""

from __future__ import annotations

from typing import Final

from mypy_extensions import mypyc_attr

from libs.common import metrics, topics
from libs.common.markets import (
    MarketParams,
    MarketSpec,
    differences,
    reconfigure,
    with_overrides,
)
from libs.common.runtime import Context
from libs.common.schemas import (
    BookDelta,
    BookSnapshot,
    CancelRequest,
    ChildOrder,
    ConfigureMarket,
    FillLeg,
    FundingRate,
    FundingUpdate,
    IndexTick,
    Level,
    MarketConfigured,
    MarketControl,
    MarketStatus,
    MarkPrice,
    MarkUpdate,
    ModifyRequest,
    NewOrder,
    OrderResult,
    PositionTransfer,
    Trade,
)
from libs.common.state import L2_DEPTH, L2View, MarketContext
from services.matcher import structs
from services.matcher.book import Book, RestingOrder
from services.matcher.funding import PPB, align_next, interval_rate, premium_ppb
from services.matcher.mark import mark_price, update_basis
from services.matcher.positions import Positions
from services.matcher.structs import (
    FundingState,
    MarketSnapshot,
    MarkState,
    PendingChildren,
    TriggerOrder,
)

PPM: Final = 1_000_000
# Compiled, a Final module name is a C static, where an imported name or a module attribute
# costs a dict lookup per use: the names of the hot path.
RISK_IN: Final = topics.RISK_IN
MARKET_EVENTS: Final = topics.MARKET_EVENTS
VALID: Final = structs.VALID
_NewOrder: Final = NewOrder
_OrderResult: Final = OrderResult
_BookDelta: Final = BookDelta
_Level: Final = Level


@mypyc_attr(acyclic=True, free_list_len=1)  # not tracked by the GC (see book.RestingOrder)
class Execution:
    """What happened to an incoming order: filled size and notional, and its status."""

    __slots__ = ("error", "filled", "filled_ntl", "resting", "status")

    def __init__(
        self,
        *,
        status: str,
        filled: int = 0,
        filled_ntl: int = 0,
        resting: int = 0,
        error: str | None = None,
    ) -> None:
        self.status = status
        self.filled = filled
        self.filled_ntl = filled_ntl
        self.resting = resting
        self.error = error


class MarketEngine:
    """The matching state of one market and the handlers of its commands."""

    def __init__(self, spec: MarketSpec) -> None:
        self.base = spec  # the market table's entry
        self.spec = spec  # with the operator's run-time changes
        self.overrides = MarketParams()
        self.spec_dirty = False  # changed at run time since the last snapshot
        self.market = spec.name
        self.book = Book(spec.name)
        self.triggers: dict[int, TriggerOrder] = {}
        self.pending: dict[int, PendingChildren] = {}
        # Triggers and pending TP/SL groups placed or removed since the last persist.
        self.dirty_triggers: dict[int, None] = {}
        self.dirty_pending: dict[int, None] = {}
        self.positions = Positions()
        self.mark = MarkState()
        self.funding = FundingState()
        self.index_px = 0
        self.mark_px = 0
        self.last_px = 0
        self.external_mid = 0
        self.next_tid = 1
        self.seq = 0
        self.halted = False
        self.oracle_status = VALID
        self.last_snapshot_ts = 0
        self.ts = 0
        self.open_orders: dict[str, int] = {}
        self.cloids: dict[tuple[str, str], int] = {}
        self.book_ts = 0  # event time of the last book change
        self.l2_dirty = True
        # Telemetry is counted in plain integers and handed to Prometheus on index ticks:
        # a labelled counter per operation would cost more than the matching itself.
        self.outcomes: dict[str, int] = {}
        self.trades = 0
        self.traded_ntl = 0

    # ------------------------------------------------------------ persistence

    def snapshot(self) -> MarketSnapshot:
        """The whole market: header, resting orders, triggers and pending TP/SLs."""
        snap = self.header()
        snap.orders = [order.record() for order in self.book.resting()]
        snap.triggers = [self.triggers[oid] for oid in sorted(self.triggers)]
        snap.pending = dict(sorted(self.pending.items()))
        return snap

    def header(self) -> MarketSnapshot:
        """The market without its orders, triggers and pending TP/SLs (persisted one by
        one, as they change)."""
        return MarketSnapshot(
            market=self.market,
            orders=[],
            triggers=[],
            pending={},
            positions=dict(sorted(self.positions.sizes.items())),
            mark=self.mark,
            funding=self.funding,
            index_px=self.index_px,
            mark_px=self.mark_px,
            last_px=self.last_px,
            external_mid=self.external_mid,
            next_tid=self.next_tid,
            seq=self.seq,
            halted=self.halted,
            oracle_status=self.oracle_status,
            last_snapshot_ts=self.last_snapshot_ts,
            ts=self.ts,
            book_ts=self.book_ts,
            overrides=self.overrides,
            order_seq=self.book.next_seq,
        )

    @classmethod
    def restore(cls, spec: MarketSpec, snap: MarketSnapshot) -> MarketEngine:
        engine = cls(spec)
        try:
            engine.spec = with_overrides(spec, snap.overrides)
        except ValueError as exc:
            raise RuntimeError(
                f"{spec.name}: the operator's run-time changes no longer fit the market "
                f"table ({exc}); fix config/markets.toml"
            ) from None
        engine.overrides = snap.overrides
        book = engine.book
        for record in snap.orders:  # each level's queue in order
            order = RestingOrder.from_record(record)
            if snap.order_seq:
                book.insert(order)
            else:  # the old layout: numbered afresh, in priority order
                book.rest(order)
            engine._track(order.account, order.oid, order.cloid)
        if snap.order_seq:
            book.next_seq = snap.order_seq
        book.take_touched()
        book.take_dirty()
        for trigger in snap.triggers:
            engine.triggers[trigger.oid] = trigger
            engine._track(trigger.account, trigger.oid, trigger.cloid)
        engine.pending = dict(snap.pending)
        engine.positions = Positions(snap.positions)
        engine.mark, engine.funding = snap.mark, snap.funding
        engine.index_px, engine.mark_px, engine.last_px = snap.index_px, snap.mark_px, snap.last_px
        engine.external_mid, engine.next_tid, engine.seq = (
            snap.external_mid,
            snap.next_tid,
            snap.seq,
        )
        engine.halted, engine.oracle_status = snap.halted, snap.oracle_status
        engine.last_snapshot_ts, engine.ts = snap.last_snapshot_ts, snap.ts
        engine.book_ts = snap.book_ts
        engine.l2_dirty = False  # the view in Redis was written with this snapshot
        return engine

    def l2_view(self) -> L2View:
        bids, asks = self.book.depth(L2_DEPTH)
        return L2View(market=self.market, seq=self.seq, ts=self.book_ts, bids=bids, asks=asks)

    def context(self) -> MarketContext:
        bid, ask = self.book.best_bid(), self.book.best_ask()
        impact = self.spec.impact_notional_usd
        return MarketContext(
            market=self.market,
            ts=self.ts,
            mark_px=self.mark_px,
            index_px=self.index_px,
            mid_px=(bid + ask) // 2 if bid is not None and ask is not None else 0,
            last_px=self.last_px,
            impact_bid_px=self.book.impact_price(True, impact) or 0,
            impact_ask_px=self.book.impact_price(False, impact) or 0,
            premium_ppb=self.funding.last_premium_ppb,
            funding_rate_ppb=self.funding.rate_ppb,
            cum_funding_index=self.funding.cum_index,
            open_interest=self.positions.open_interest,
            state=self.state,
            oracle_status=self.oracle_status,
        )

    @property
    def state(self) -> str:
        if self.halted:
            return "halted"
        return "open" if self.oracle_status == VALID else "reduce_only"

    # ------------------------------------------------------------ bookkeeping

    def _track(self, account: str, oid: int, cloid: str | None) -> None:
        self.open_orders[account] = self.open_orders.get(account, 0) + 1
        if cloid:
            self.cloids[(account, cloid)] = oid

    def _untrack(self, account: str, oid: int, cloid: str | None) -> None:
        left = self.open_orders.get(account, 0) - 1
        if left > 0:
            self.open_orders[account] = left
        else:
            self.open_orders.pop(account, None)
        if cloid and self.cloids.get((account, cloid)) == oid:
            del self.cloids[(account, cloid)]

    def _result(
        self,
        ctx: Context,
        account: str,
        oid: int,
        status: str,
        *,
        execution: Execution | None = None,
        error: str | None = None,
        req_id: str = "",
        cloid: str | None = None,
        px: int = 0,
    ) -> None:
        if ctx.live:
            self.outcomes[status] = self.outcomes.get(status, 0) + 1
        if execution is None:
            filled = resting = filled_ntl = 0
        else:
            filled, resting, filled_ntl = execution.filled, execution.resting, execution.filled_ntl
            error = error or execution.error
        ctx.emit(
            RISK_IN,
            account,
            _OrderResult(
                ts=self.ts,
                account=account,
                market=self.market,
                oid=oid,
                status=status,
                filled_sz=filled,
                resting_sz=resting,
                filled_ntl=filled_ntl,
                error=error,
                req_id=req_id,
                cloid=cloid,
                px=px,
            ),
        )

    def _asset_note(self) -> str:
        return f"asset={self.spec.asset}"

    # ------------------------------------------------------------ rules

    def _admission_error(self, msg: NewOrder | ModifyRequest, px: int) -> tuple[str, str] | None:
        """The status and error that refuse an order, or None when it may proceed."""
        spec = self.spec
        if self.halted:
            return "rejected", f"Trading is halted for this market. {self._asset_note()}"
        if self.oracle_status != VALID and not msg.reduce_only:
            return (
                "rejected",
                "Only reduce-only orders are accepted while the oracle price is not valid. "
                + self._asset_note(),
            )
        is_market = isinstance(msg, _NewOrder) and (
            msg.kind == "market" or (msg.kind == "trigger" and msg.trigger_is_market)
        )
        sz = msg.sz
        if sz <= 0 or px < 0 or (px == 0 and not is_market):
            return "rejected", "Order has invalid price or size."
        if px and self.index_px:
            band = self.index_px * spec.price_band_ppm // PPM
            if abs(px - self.index_px) > band:
                pct = spec.price_band_ppm // 10_000
                return (
                    "oracleRejected",
                    f"Order price cannot be more than {pct}% away from the reference price",
                )
        reference = px or self.mark_px or self.index_px
        if not msg.reduce_only and reference and reference * sz < spec.min_order_usd:
            return (
                "minTradeNtlRejected",
                f"Order must have minimum value of ${spec.min_order_usd // 1_000_000}.",
            )
        return None

    # ------------------------------------------------------------ commands

    def new_order(self, msg: NewOrder, ctx: Context) -> None:
        self.ts = msg.ts
        account, kind, cloid, msg_px = msg.account, msg.kind, msg.cloid, msg.px
        refusal = self._admission_error(msg, msg_px)
        can_rest = kind == "trigger" or (kind == "limit" and msg.tif != "Ioc")
        if (
            refusal is None
            and can_rest
            and not msg.reduce_only
            and self.open_orders.get(account, 0) >= self.spec.max_open_orders
        ):
            refusal = ("rejected", f"Too many open orders ({self.spec.max_open_orders}).")
        if refusal is None and cloid and (account, cloid) in self.cloids:
            refusal = ("rejected", "Duplicate client order id.")
        if refusal is None and kind == "trigger" and msg.trigger_px <= 0:
            refusal = ("rejected", "Trigger order needs a positive trigger price.")
        if refusal is not None:
            status, error = refusal
            self._result(ctx, account, msg.oid, status, error=error, req_id=msg.req_id, cloid=cloid)
            for child in msg.children:
                self._result(
                    ctx,
                    account,
                    child.oid,
                    "canceled",
                    error="Parent order was rejected.",
                    cloid=child.cloid,
                )
            return
        if kind == "trigger":
            self._add_trigger(msg, ctx)
            return
        is_market = kind == "market"
        px = msg_px if msg_px else self._slippage_price(msg.is_buy, msg.slippage_ppm)
        tif = "Ioc" if is_market else msg.tif
        oid = msg.oid
        ex = self._execute(
            ctx,
            oid,
            account,
            msg.is_buy,
            px,
            msg.sz,
            tif,
            msg.reduce_only,
            cloid,
            is_market=is_market,
        )
        if msg.children:
            self._hold_children(oid, account, msg.children, ex, ctx)
        self._result(
            ctx,
            account,
            oid,
            ex.status,
            execution=ex,
            req_id=msg.req_id,
            cloid=cloid,
            px=px,
        )

    def _slippage_price(self, is_buy: bool, slippage_ppm: int) -> int:
        reference = self.mark_px or self.index_px or self.last_px
        slip = slippage_ppm or self.spec.market_slippage_ppm
        if not reference:
            return 0
        move = reference * slip // PPM
        return reference + move if is_buy else max(1, reference - move)

    def _execute(
        self,
        ctx: Context,
        oid: int,
        account: str,
        is_buy: bool,
        px: int,
        sz: int,
        tif: str,
        reduce_only: bool,
        cloid: str | None,
        *,
        is_market: bool = False,
        kind: str = "trade",
    ) -> Execution:
        """Match an incoming order and rest what a GTC or ALO order has left."""
        book = self.book
        if px <= 0:
            return Execution(
                status="marketOrderNoLiquidityRejected",
                error=f"No reference price for a market order. {self._asset_note()}",
            )
        if reduce_only:
            cap = self.positions.reducible(account, is_buy)
            if cap == 0:
                return Execution(
                    status="reduceOnlyRejected",
                    error=f"Reduce only order would increase position. {self._asset_note()}",
                )
            sz = min(sz, cap)
        if tif == "Alo" and book.would_cross(is_buy, px):
            best = book.best_ask() if is_buy else book.best_bid()
            bbo = self.spec.format_price(best or 0)
            return Execution(
                status="badAloPxRejected",
                error=f"Post only order would have immediately matched, bbo was {bbo}. "
                + self._asset_note(),
            )
        matches, remaining, removed = book.match(is_buy, px, sz, account, self.positions)
        filled = filled_ntl = 0
        for m in matches:
            filled += m.sz
            filled_ntl += m.px * m.sz
            self._fill_pair(ctx, account, oid, is_buy, m.maker, m.px, m.sz, m.maker_done, kind)
        for maker, status in removed:
            self._closed_resting(ctx, maker, status)
        if matches and (book.reduce_only_resting or self.triggers):
            self._after_position_change(ctx, account)
            for maker_account in sorted({m.maker.account for m in matches}):
                self._after_position_change(ctx, maker_account)
        if remaining and tif in ("Gtc", "Alo"):
            order = RestingOrder(
                oid=oid,
                account=account,
                is_buy=is_buy,
                px=px,
                sz=remaining,
                orig_sz=sz,
                ts=self.ts,
                cloid=cloid,
                reduce_only=reduce_only,
                filled_ntl=filled_ntl,
            )
            book.rest(order)
            self._track(account, oid, cloid)
            return Execution(
                status="resting", filled=filled, filled_ntl=filled_ntl, resting=remaining
            )
        if filled:
            return Execution(status="filled", filled=filled, filled_ntl=filled_ntl)
        if is_market:
            return Execution(
                status="marketOrderNoLiquidityRejected",
                error=f"No liquidity available for market order. {self._asset_note()}",
            )
        return Execution(
            status="iocCancelRejected",
            error="Order could not immediately match against any resting orders. "
            + self._asset_note(),
        )

    def _fill_pair(
        self,
        ctx: Context,
        taker: str,
        taker_oid: int,
        taker_is_buy: bool,
        maker: RestingOrder,
        px: int,
        sz: int,
        maker_done: bool,
        kind: str,
    ) -> None:
        tid = self.next_tid
        self.next_tid += 1
        self.last_px = px
        ts = self.ts
        market = self.market
        ctx.emit(
            RISK_IN,
            taker,
            FillLeg(
                ts=ts,
                account=taker,
                market=market,
                oid=taker_oid,
                is_buy=taker_is_buy,
                px=px,
                sz=sz,
                is_maker=False,
                tid=tid,
                order_closed=False,
                kind=kind,
            ),
        )
        ctx.emit(
            RISK_IN,
            maker.account,
            FillLeg(
                ts=ts,
                account=maker.account,
                market=market,
                oid=maker.oid,
                is_buy=maker.is_buy,
                px=px,
                sz=sz,
                is_maker=True,
                tid=tid,
                order_closed=maker_done,
                kind=kind,
            ),
        )
        if ctx.live:
            self.trades += 1
            self.traded_ntl += px * sz
        buyer, seller = (taker, maker.account) if taker_is_buy else (maker.account, taker)
        ctx.emit(
            MARKET_EVENTS,
            market,
            Trade(
                ts=ts,
                market=market,
                px=px,
                sz=sz,
                taker_is_buy=taker_is_buy,
                buyer=buyer,
                seller=seller,
                tid=tid,
            ),
        )
        if maker_done:
            self._untrack(maker.account, maker.oid, maker.cloid)
            self._release_children(ctx, maker.oid, maker.orig_sz)

    def _closed_resting(self, ctx: Context, order: RestingOrder, status: str) -> None:
        """Report a resting order that left the book without trading its remainder."""
        self._untrack(order.account, order.oid, order.cloid)
        filled = order.orig_sz - order.sz
        ex = Execution(status=status, filled=filled, filled_ntl=order.filled_ntl)
        self._result(ctx, order.account, order.oid, status, execution=ex, cloid=order.cloid)
        self._release_children(ctx, order.oid, filled)

    # ------------------------------------------------------------ TP/SL

    def _add_trigger(self, msg: NewOrder, ctx: Context) -> None:
        if (
            msg.grouping == "positionTpsl"
            and self.positions.reducible(msg.account, msg.is_buy) == 0
        ):
            self._result(
                ctx,
                msg.account,
                msg.oid,
                "rejected",
                error="Position TP/SL needs an open position it would close.",
                req_id=msg.req_id,
                cloid=msg.cloid,
            )
            return
        trigger = TriggerOrder(
            oid=msg.oid,
            account=msg.account,
            is_buy=msg.is_buy,
            px=msg.px,
            sz=msg.sz,
            trigger_px=msg.trigger_px,
            tpsl=msg.tpsl or "sl",
            is_market=msg.trigger_is_market,
            reduce_only=msg.reduce_only or msg.grouping == "positionTpsl",
            position_tpsl=msg.grouping == "positionTpsl",
            ts=msg.ts,
            cloid=msg.cloid,
        )
        self._place_trigger(trigger, ctx, req_id=msg.req_id)

    def _place_trigger(self, trigger: TriggerOrder, ctx: Context, req_id: str = "") -> None:
        """Rest a TP/SL off the book until the mark crosses it, and say so."""
        self.triggers[trigger.oid] = trigger
        self.dirty_triggers[trigger.oid] = None
        self._track(trigger.account, trigger.oid, trigger.cloid)
        self._result(
            ctx,
            trigger.account,
            trigger.oid,
            "resting",
            execution=Execution(status="resting", resting=trigger.sz),
            req_id=req_id,
            cloid=trigger.cloid,
            px=trigger.px,
        )

    def _hold_children(
        self,
        parent: int,
        account: str,
        children: tuple[ChildOrder, ...],
        ex: Execution,
        ctx: Context,
    ) -> None:
        if ex.status == "resting":  # placed when the parent leaves the book
            self.pending[parent] = PendingChildren(account=account, children=list(children))
            self.dirty_pending[parent] = None
            return
        if ex.filled:
            self.pending[parent] = PendingChildren(account=account, children=list(children))
            self.dirty_pending[parent] = None
            self._release_children(ctx, parent, ex.filled)
        else:
            for child in children:
                self._result(
                    ctx,
                    account,
                    child.oid,
                    "canceled",
                    error="Parent order did not fill.",
                    cloid=child.cloid,
                )

    def _release_children(self, ctx: Context, parent: int, parent_filled: int) -> None:
        """Place a closed parent's TP/SL children, sized to what the parent filled."""
        group = self.pending.pop(parent, None)
        if group is None:
            return
        self.dirty_pending[parent] = None
        for child in group.children:
            if parent_filled == 0:
                self._result(
                    ctx,
                    group.account,
                    child.oid,
                    "canceled",
                    error="Parent order did not fill.",
                    cloid=child.cloid,
                )
                continue
            trigger = TriggerOrder(
                oid=child.oid,
                account=group.account,
                is_buy=child.is_buy,
                px=child.px,
                sz=min(child.sz, parent_filled),
                trigger_px=child.trigger_px,
                tpsl=child.tpsl,
                is_market=child.trigger_is_market,
                reduce_only=True,
                position_tpsl=False,
                ts=self.ts,
                cloid=child.cloid,
            )
            self._place_trigger(trigger, ctx)

    def _fire_triggers(self, ctx: Context) -> None:
        mark = self.mark_px
        fired = [t for oid, t in sorted(self.triggers.items()) if t.fires_at(mark)]
        for t in fired:
            if t.oid not in self.triggers:
                continue  # canceled by an earlier trigger that closed its position
            del self.triggers[t.oid]
            self.dirty_triggers[t.oid] = None
            self._untrack(t.account, t.oid, t.cloid)
            self._result(ctx, t.account, t.oid, "triggered", cloid=t.cloid, px=t.px)
            sz = t.sz
            if t.position_tpsl:
                sz = self.positions.reducible(t.account, t.is_buy)
                if sz == 0:
                    self._result(
                        ctx,
                        t.account,
                        t.oid,
                        "canceled",
                        cloid=t.cloid,
                        error="No position left to close.",
                    )
                    continue
            px = self._slippage_price(t.is_buy, 0) if t.is_market else t.px
            tif = "Ioc" if t.is_market else "Gtc"
            ex = self._execute(
                ctx,
                t.oid,
                t.account,
                t.is_buy,
                px,
                sz,
                tif,
                t.reduce_only,
                t.cloid,
                is_market=t.is_market,
            )
            self._result(ctx, t.account, t.oid, ex.status, execution=ex, cloid=t.cloid, px=px)

    # ------------------------------------------------------------ management

    def _find(self, account: str, oid: int, cloid: str | None) -> int | None:
        if cloid:
            return self.cloids.get((account, cloid))
        return oid

    def cancel(self, msg: CancelRequest, ctx: Context) -> None:
        self.ts = msg.ts
        account = msg.account
        oid = self._find(account, msg.oid, msg.cloid)
        order = self.book.orders.get(oid) if oid is not None else None
        trigger = self.triggers.get(oid) if oid is not None and self.triggers else None
        if order is not None and order.account == account:
            oid, cloid = order.oid, order.cloid
            self.book.cancel(oid)
            self._untrack(account, oid, cloid)
            filled = order.orig_sz - order.sz
            ex = Execution(status="canceled", filled=filled, filled_ntl=order.filled_ntl)
            self._result(
                ctx,
                account,
                oid,
                "canceled",
                execution=ex,
                req_id=msg.req_id,
                cloid=cloid,
            )
            if self.pending:
                self._release_children(ctx, oid, filled)
        elif trigger is not None and trigger.account == account:
            del self.triggers[trigger.oid]
            self.dirty_triggers[trigger.oid] = None
            self._untrack(trigger.account, trigger.oid, trigger.cloid)
            self._result(
                ctx, account, trigger.oid, "canceled", req_id=msg.req_id, cloid=trigger.cloid
            )
        else:
            self._result(
                ctx,
                account,
                oid or msg.oid,
                "cancelRejected",
                error="Order was never placed, already canceled, or filled.",
                req_id=msg.req_id,
                cloid=msg.cloid,
            )

    def cancel_all(self, account: str, status: str, ts: int, ctx: Context) -> int:
        """Cancel every resting and trigger order of an account; returns how many."""
        self.ts = ts
        if not self.open_orders.get(account):  # nothing to cancel: skip scanning the book
            return 0
        count = 0
        for order in [o for o in self.book.resting() if o.account == account]:
            self.book.cancel(order.oid)
            self._closed_resting(ctx, order, status)
            count += 1
        for oid in [oid for oid, t in sorted(self.triggers.items()) if t.account == account]:
            trigger = self.triggers.pop(oid)
            self.dirty_triggers[oid] = None
            self._untrack(account, oid, trigger.cloid)
            self._result(ctx, account, oid, status, cloid=trigger.cloid)
            count += 1
        return count

    def modify(self, msg: ModifyRequest, ctx: Context) -> None:
        self.ts = msg.ts
        account = msg.account
        oid = self._find(account, msg.oid, msg.by_cloid)
        order = self.book.orders.get(oid) if oid is not None else None
        if order is None or order.account != account:
            self._result(
                ctx,
                account,
                oid or msg.oid,
                "modifyRejected",
                error="Cannot modify canceled or filled order",
                req_id=msg.req_id,
            )
            return
        px, is_buy, sz, tif, reduce_only = msg.px, msg.is_buy, msg.sz, msg.tif, msg.reduce_only
        oid = order.oid
        refusal = self._admission_error(msg, px)
        if (
            refusal is None
            and tif == "Alo"
            and (px != order.px)
            and self.book.would_cross(is_buy, px)
        ):
            refusal = ("badAloPxRejected", "Post only order would have immediately matched.")
        if refusal is None and msg.cloid and self.cloids.get((account, msg.cloid), oid) != oid:
            refusal = ("rejected", "Duplicate client order id.")
        if refusal is not None:
            # The order stays exactly as it was: the answer says the modify was refused.
            _, error = refusal
            filled = order.orig_sz - order.sz
            ex = Execution(
                status="modifyRejected",
                filled=filled,
                filled_ntl=order.filled_ntl,
                resting=order.sz,
            )
            self._result(
                ctx,
                account,
                oid,
                "modifyRejected",
                execution=ex,
                error=error,
                req_id=msg.req_id,
                cloid=order.cloid,
                px=order.px,
            )
            return
        same_place = px == order.px and is_buy == order.is_buy
        if same_place and sz <= order.sz and reduce_only == order.reduce_only:
            filled = order.orig_sz - order.sz
            order.orig_sz = filled + sz  # the new size; what filled stays filled
            self.book.shrink(oid, sz)
            ex = Execution(status="resting", filled=filled, filled_ntl=order.filled_ntl, resting=sz)
            self._result(
                ctx,
                account,
                oid,
                "resting",
                execution=ex,
                req_id=msg.req_id,
                cloid=order.cloid,
                px=px,
            )
            return
        # A new price, side or a larger size: the order goes to the back of the queue.
        self.book.cancel(oid)
        self._untrack(account, oid, order.cloid)
        filled_before = order.orig_sz - order.sz
        cloid = msg.cloid or order.cloid
        ex = self._execute(ctx, oid, account, is_buy, px, sz, tif, reduce_only, cloid)
        if ex.status != "resting" and self.pending:  # the parent left the book: its TP/SL
            self._release_children(ctx, oid, filled_before + ex.filled)
        self._result(
            ctx,
            account,
            oid,
            ex.status,
            execution=ex,
            req_id=msg.req_id,
            cloid=cloid,
            px=px,
        )

    def control(self, msg: MarketControl, ctx: Context) -> None:
        self.ts = msg.ts
        before = self.state
        self.halted = msg.action == "halt"
        if self.state != before:
            ctx.emit(
                MARKET_EVENTS,
                self.market,
                MarketStatus(
                    ts=msg.ts,
                    market=self.market,
                    state=self.state,
                    reason=msg.reason or f"{msg.action} by {msg.operator or 'operator'}",
                ),
            )

    def configure(self, msg: ConfigureMarket, ctx: Context) -> None:
        """An operator's change of the market's parameters, from this record on. Orders
        already resting stay; every new command meets the new rules. Risk partitions get
        the result in the same transaction and apply it at the same point."""
        self.ts = msg.ts
        error = ""
        try:
            spec = reconfigure(self.spec, msg.params)
        except ValueError as exc:
            error = str(exc)
        else:
            self.overrides = differences(self.base, spec)
            self.spec = spec
            self.spec_dirty = True
        event = MarketConfigured(
            ts=msg.ts,
            market=self.market,
            spec=self.spec,
            overrides=self.overrides,
            operator=msg.operator,
            reason=msg.reason,
            error=error,
            req_id=msg.req_id,
        )
        ctx.emit(topics.MARKET_EVENTS, self.market, event)
        if not error:
            ctx.broadcast(topics.RISK_IN, self.market, event)

    def transfer(self, msg: PositionTransfer, ctx: Context) -> None:
        """A backstop takeover or ADL close: two fill legs at the given price."""
        self.ts = msg.ts
        held = self.positions.reducible(msg.from_account, not msg.from_is_long)
        if msg.sz <= 0 or msg.px <= 0 or held < msg.sz or msg.from_account == msg.to_account:
            self._result(
                ctx,
                msg.from_account,
                0,
                "transferRejected",
                error=f"Cannot transfer {msg.sz} lots: the position holds {held}.",
                req_id=msg.req_id,
            )
            return
        from_buys = not msg.from_is_long  # closing a long is a sell
        self.positions.apply(msg.from_account, from_buys, msg.sz)
        self.positions.apply(msg.to_account, not from_buys, msg.sz)
        tid = self.next_tid
        self.next_tid += 1
        legs = (
            (msg.from_account, from_buys, msg.to_account),
            (msg.to_account, not from_buys, msg.from_account),
        )
        for account, is_buy, counterparty in legs:
            ctx.emit(
                RISK_IN,
                account,
                FillLeg(
                    ts=msg.ts,
                    account=account,
                    market=self.market,
                    oid=0,
                    is_buy=is_buy,
                    px=msg.px,
                    sz=msg.sz,
                    is_maker=account == msg.to_account,
                    tid=tid,
                    order_closed=False,
                    kind=msg.kind,
                    counterparty=counterparty,
                ),
            )
        self._after_position_change(ctx, msg.from_account)
        self._after_position_change(ctx, msg.to_account)

    def _after_position_change(self, ctx: Context, account: str) -> None:
        """Reduce-only orders and TP/SLs that can no longer reduce anything are canceled."""
        if self.book.reduce_only_resting:
            for order in [o for o in self.book.resting() if o.account == account and o.reduce_only]:
                if self.positions.reducible(account, order.is_buy) == 0:
                    self.book.cancel(order.oid)
                    self._closed_resting(ctx, order, "reduceOnlyCanceled")
        for oid, trigger in sorted(self.triggers.items()):
            if trigger.account != account or not trigger.reduce_only:
                continue
            if self.positions.reducible(account, trigger.is_buy) == 0:
                del self.triggers[oid]
                self.dirty_triggers[oid] = None
                self._untrack(account, oid, trigger.cloid)
                self._result(ctx, account, oid, "reduceOnlyCanceled", cloid=trigger.cloid)

    # ------------------------------------------------------------ the clock

    def index_tick(self, msg: IndexTick, ctx: Context) -> None:
        if msg.px <= 0:
            return  # a tick without a price carries nothing to act on
        self.ts = msg.ts
        before = self.state
        self.oracle_status = msg.status
        if self.state != before:
            ctx.emit(
                MARKET_EVENTS,
                self.market,
                MarketStatus(
                    ts=msg.ts,
                    market=self.market,
                    state=self.state,
                    reason=f"oracle {msg.status}",
                ),
            )
        self.index_px = msg.px
        self.external_mid = msg.external_perp_mid
        bid, ask = self.book.best_bid(), self.book.best_ask()
        mid = (bid + ask) // 2 if bid is not None and ask is not None else None
        update_basis(self.mark, mid, msg.px, msg.ts, self.spec.mark_ema_ms)
        self.mark_px = mark_price(
            self.mark, msg.px, bid, ask, self.last_px or None, self.external_mid or None
        )
        ctx.broadcast(
            RISK_IN,
            self.market,
            MarkUpdate(
                ts=msg.ts,
                market=self.market,
                mark_px=self.mark_px,
                index_px=msg.px,
                oracle_status=msg.status,
                open_interest=self.positions.open_interest,
            ),
        )
        ctx.emit(
            MARKET_EVENTS,
            self.market,
            MarkPrice(
                ts=msg.ts,
                market=self.market,
                mark_px=self.mark_px,
                index_px=msg.px,
            ),
        )
        if msg.status == VALID:
            self._funding_clock(ctx)
            if not self.halted:
                self._fire_triggers(ctx)
        if msg.ts - self.last_snapshot_ts >= self.spec.book_snapshot_ms:
            self.last_snapshot_ts = msg.ts
            bids, asks = self.book.depth(1 << 30)
            ctx.emit(
                MARKET_EVENTS,
                self.market,
                BookSnapshot(
                    ts=msg.ts,
                    market=self.market,
                    seq=self.seq,
                    bids=tuple(Level(*lv) for lv in bids),
                    asks=tuple(Level(*lv) for lv in asks),
                ),
            )

    def _funding_clock(self, ctx: Context) -> None:
        spec, state, ts = self.spec, self.funding, self.ts
        if state.next_sample_ts == 0:
            state.next_sample_ts = align_next(ts, spec.premium_sample_ms)
            state.next_funding_ts = align_next(ts, spec.funding_interval_ms)
            return
        if ts >= state.next_sample_ts:
            impact = spec.impact_notional_usd
            premium = premium_ppb(
                self.book.impact_price(True, impact),
                self.book.impact_price(False, impact),
                self.index_px,
            )
            state.premium_sum += premium
            state.samples += 1
            state.last_premium_ppb = premium
            state.next_sample_ts = align_next(ts, spec.premium_sample_ms)
        if ts >= state.next_funding_ts:
            average = state.premium_sum // state.samples if state.samples else 0
            rate = interval_rate(
                average,
                spec.interest_8h_ppb,
                spec.premium_clamp_ppb,
                spec.funding_cap_hourly_ppb,
                spec.funding_interval_ms,
            )
            recent = ([*state.recent_rates, rate])[-max(1, spec.funding_smoothing) :]
            state.recent_rates = recent
            rate = sum(recent) // len(recent) if rate >= 0 else -(-sum(recent) // len(recent))
            state.rate_ppb = rate
            state.cum_index += rate * self.mark_px
            state.premium_sum = state.samples = 0
            state.next_funding_ts = align_next(ts, spec.funding_interval_ms)
            ctx.broadcast(
                RISK_IN,
                self.market,
                FundingUpdate(
                    ts=ts,
                    market=self.market,
                    rate_ppb=rate,
                    mark_px=self.mark_px,
                    cum_index=state.cum_index,
                    oracle_px=self.index_px,
                ),
            )
            ctx.emit(
                MARKET_EVENTS,
                self.market,
                FundingRate(
                    ts=ts,
                    market=self.market,
                    rate_ppb=rate,
                    premium_ppb=average,
                    mark_px=self.mark_px,
                    index_px=self.index_px,
                    cum_index=state.cum_index,
                ),
            )

    def export_metrics(self) -> None:
        """Hand the counts since the last export, and the market's gauges, to Prometheus."""
        market = self.market
        for status, count in self.outcomes.items():
            metrics.ORDER_OUTCOMES.labels(market, status).inc(count)
        self.outcomes.clear()
        if self.trades:
            metrics.TRADES.labels(market).inc(self.trades)
            metrics.TRADED_NOTIONAL.labels(market).inc(self.traded_ntl / 1_000_000)
            self.trades = self.traded_ntl = 0
        metrics.BOOK_ORDERS.labels(market).set(len(self.book.orders))
        if self.mark_px:
            metrics.MARK_PRICE.labels(market).set(self.mark_px / 10**self.spec.px_decimals)
            metrics.FUNDING_RATE.labels(market).set(self.funding.rate_ppb / 1e9)
            metrics.OPEN_INTEREST.labels(market).set(
                self.positions.open_interest / 10**self.spec.sz_decimals
            )

    # ------------------------------------------------------------ book data

    def flush_book(self, ctx: Context) -> None:
        """Publish the levels the last command changed, as one delta."""
        touched = self.book.take_touched()
        if not touched:
            return
        self.seq += 1
        self.book_ts = self.ts
        self.l2_dirty = True
        bids: list[Level] = []
        asks: list[Level] = []
        bid_levels, ask_levels = self.book.bids.levels, self.book.asks.levels
        for is_bid, px in touched:
            level = (bid_levels if is_bid else ask_levels).get(px)
            entry = _Level(px, level.size, len(level.orders)) if level else _Level(px, 0, 0)
            (bids if is_bid else asks).append(entry)
        ctx.emit(
            MARKET_EVENTS,
            self.market,
            _BookDelta(
                ts=self.ts,
                market=self.market,
                seq=self.seq,
                bids=tuple(bids),
                asks=tuple(asks),
            ),
        )


__all__ = ["PPB", "MarketEngine", "MarketSnapshot", "TriggerOrder"]
