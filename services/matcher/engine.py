"""The matcher's core: the books of the markets of one matcher.in partition.

Every position change in a market is sequenced here: each execution becomes a fill leg
for the taker's and the maker's risk partitions plus a public trade, all emitted while
applying one input record, so the runtime commits them in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from libs.common import topics
from libs.common.markets import MarketRegistry
from libs.common.money import UnitError
from libs.common.runtime import Context
from libs.common.schemas import (
    CancelRequest,
    FillLeg,
    IndexTick,
    MarkPrice,
    MarkUpdate,
    NewOrder,
    OrderResult,
    Trade,
)
from services.matcher.book import Book, RestingOrder

BOOK_PREFIX = "book:"


class MarketSnapshot(msgspec.Struct, kw_only=True):
    """What is persisted per market: resting orders in priority order and the clocks."""

    market: str
    orders: list[RestingOrder]
    index_px: int = 0
    mark_px: int = 0
    next_tid: int = 1
    last_px: int = 0


class MarketState:
    def __init__(self, market: str, asset: int) -> None:
        self.market = market
        self.asset = asset
        self.book = Book(market)
        self.index_px = 0
        self.mark_px = 0
        self.next_tid = 1
        self.last_px = 0


class MatcherCore:
    """Applies orders, cancels and index ticks for the markets of one partition."""

    def __init__(self, markets: MarketRegistry, partition: int) -> None:
        self.markets = markets
        self.partition = partition
        self.states: dict[str, MarketState] = {}
        self._dirty: dict[str, None] = {}
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(MarketSnapshot)

    # ------------------------------------------------------------ runtime protocol

    def apply(self, message: Any, ctx: Context) -> None:
        if isinstance(message, NewOrder):
            self._new_order(message, ctx)
        elif isinstance(message, CancelRequest):
            self._cancel(message, ctx)
        elif isinstance(message, IndexTick):
            self._index_tick(message, ctx)

    def take_changes(self) -> dict[str, bytes | None]:
        changes: dict[str, bytes | None] = {}
        for market in self._dirty:
            st = self.states[market]
            snap = MarketSnapshot(
                market=market,
                orders=st.book.resting(),
                index_px=st.index_px,
                mark_px=st.mark_px,
                next_tid=st.next_tid,
                last_px=st.last_px,
            )
            changes[BOOK_PREFIX + market] = self._encoder.encode(snap)
        self._dirty.clear()
        return changes

    def restore(self, entries: Mapping[str, bytes]) -> None:
        self.states.clear()
        self._dirty.clear()
        for field, raw in entries.items():
            if not field.startswith(BOOK_PREFIX):
                continue
            snap = self._decoder.decode(raw)
            st = self._state(snap.market)
            st.index_px, st.mark_px = snap.index_px, snap.mark_px
            st.next_tid, st.last_px = snap.next_tid, snap.last_px
            for order in snap.orders:
                st.book.rest(order)

    # ------------------------------------------------------------ handlers

    def _state(self, market: str) -> MarketState:
        st = self.states.get(market)
        if st is None:
            st = self.states[market] = MarketState(market, self.markets.by_name(market).asset)
        return st

    def _reject(self, msg: NewOrder, ctx: Context, status: str, error: str) -> None:
        ctx.emit(
            topics.RISK_IN,
            msg.account,
            OrderResult(
                ts=msg.ts,
                account=msg.account,
                market=msg.market,
                oid=msg.oid,
                status=status,
                filled_sz=0,
                resting_sz=0,
                error=error,
                req_id=msg.req_id,
                cloid=msg.cloid,
            ),
        )

    def _new_order(self, msg: NewOrder, ctx: Context) -> None:
        try:
            st = self._state(msg.market)
        except UnitError as exc:
            self._reject(msg, ctx, "rejected", str(exc))
            return
        book = st.book
        if msg.sz <= 0 or msg.px <= 0:
            self._reject(msg, ctx, "rejected", "Order has invalid price or size.")
            return
        if msg.tif == "Alo" and book.would_cross(msg.is_buy, msg.px):
            best = book.best_ask() if msg.is_buy else book.best_bid()
            bbo = self.markets.by_name(msg.market).format_price(best or 0)
            self._reject(
                msg,
                ctx,
                "badAloPxRejected",
                f"Post only order would have immediately matched, bbo was {bbo}. asset={st.asset}",
            )
            return
        self._dirty[msg.market] = None
        matches, remaining = book.match(msg.is_buy, msg.px, msg.sz)
        filled = filled_ntl = 0
        for m in matches:
            tid = st.next_tid
            st.next_tid += 1
            st.last_px = m.px
            filled += m.sz
            filled_ntl += m.px * m.sz
            maker = m.maker
            ctx.emit(
                topics.RISK_IN,
                msg.account,
                FillLeg(
                    ts=msg.ts,
                    account=msg.account,
                    market=msg.market,
                    oid=msg.oid,
                    is_buy=msg.is_buy,
                    px=m.px,
                    sz=m.sz,
                    is_maker=False,
                    tid=tid,
                    order_closed=False,
                ),
            )
            ctx.emit(
                topics.RISK_IN,
                maker.account,
                FillLeg(
                    ts=msg.ts,
                    account=maker.account,
                    market=msg.market,
                    oid=maker.oid,
                    is_buy=maker.is_buy,
                    px=m.px,
                    sz=m.sz,
                    is_maker=True,
                    tid=tid,
                    order_closed=m.maker_done,
                ),
            )
            buyer, seller = (
                (msg.account, maker.account) if msg.is_buy else (maker.account, msg.account)
            )
            ctx.emit(
                topics.MARKET_EVENTS,
                msg.market,
                Trade(
                    ts=msg.ts,
                    market=msg.market,
                    px=m.px,
                    sz=m.sz,
                    taker_is_buy=msg.is_buy,
                    buyer=buyer,
                    seller=seller,
                    tid=tid,
                ),
            )
        if remaining and msg.tif in ("Gtc", "Alo"):
            book.rest(
                RestingOrder(
                    oid=msg.oid,
                    account=msg.account,
                    is_buy=msg.is_buy,
                    px=msg.px,
                    sz=remaining,
                    orig_sz=msg.sz,
                    ts=msg.ts,
                    cloid=msg.cloid,
                )
            )
            status, error = "resting", None
        elif remaining == 0:
            status, error = "filled", None
        elif filled:
            status, error = "filled", None
        else:
            status = "iocCancelRejected"
            error = (
                f"Order could not immediately match against any resting orders. asset={st.asset}"
            )
        resting = remaining if status == "resting" else 0
        ctx.emit(
            topics.RISK_IN,
            msg.account,
            OrderResult(
                ts=msg.ts,
                account=msg.account,
                market=msg.market,
                oid=msg.oid,
                status=status,
                filled_sz=filled,
                resting_sz=resting,
                filled_ntl=filled_ntl,
                error=error,
                req_id=msg.req_id,
                cloid=msg.cloid,
            ),
        )

    def _cancel(self, msg: CancelRequest, ctx: Context) -> None:
        st = self.states.get(msg.market)
        order = st.book.orders.get(msg.oid) if st else None
        if st is None or order is None or order.account != msg.account:
            ctx.emit(
                topics.RISK_IN,
                msg.account,
                OrderResult(
                    ts=msg.ts,
                    account=msg.account,
                    market=msg.market,
                    oid=msg.oid,
                    status="cancelRejected",
                    filled_sz=0,
                    resting_sz=0,
                    error="Order was never placed, already canceled, or filled.",
                    req_id=msg.req_id,
                ),
            )
            return
        st.book.cancel(msg.oid)
        self._dirty[msg.market] = None
        ctx.emit(
            topics.RISK_IN,
            msg.account,
            OrderResult(
                ts=msg.ts,
                account=msg.account,
                market=msg.market,
                oid=msg.oid,
                status="canceled",
                filled_sz=order.orig_sz - order.sz,
                resting_sz=0,
                req_id=msg.req_id,
                cloid=order.cloid,
            ),
        )

    def _index_tick(self, msg: IndexTick, ctx: Context) -> None:
        try:
            st = self._state(msg.market)
        except UnitError:
            return
        if msg.px <= 0:
            return
        st.index_px = msg.px
        st.mark_px = msg.px  # the full mark (EMA of premium, book median) lands with #3
        self._dirty[msg.market] = None
        ctx.broadcast(
            topics.RISK_IN,
            msg.market,
            MarkUpdate(ts=msg.ts, market=msg.market, mark_px=st.mark_px, index_px=st.index_px),
        )
        ctx.emit(
            topics.MARKET_EVENTS,
            msg.market,
            MarkPrice(ts=msg.ts, market=msg.market, mark_px=st.mark_px, index_px=st.index_px),
        )
