"""The matcher's core: the markets of one matcher.in partition.

Every position change in a market is sequenced here: each execution becomes a fill leg
for the taker's and the maker's risk partitions plus a public trade, all emitted while
applying one input record, so the runtime commits them in one transaction. The core
also runs each account's dead man's switch (scheduled cancel) by event time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from libs.common.markets import MarketRegistry
from libs.common.money import UnitError
from libs.common.runtime import Context
from libs.common.schemas import (
    CancelAll,
    CancelRequest,
    ConfigureMarket,
    IndexTick,
    MarketControl,
    ModifyRequest,
    NewOrder,
    OrderResult,
    PositionTransfer,
    ScheduleCancel,
)
from libs.common.state import L2_PREFIX, MARKET_CTX_PREFIX, MARKET_SPEC_PREFIX
from services.matcher.market import MarketEngine
from services.matcher.structs import (
    MarketSnapshot,
    OrderRecord,
    PendingChildren,
    Schedules,
    TriggerOrder,
)

# A market's state is persisted in pieces, so a batch writes only what it changed: the
# header (everything but the orders) under HEADER_PREFIX + market, and each resting order,
# trigger and pending TP/SL group under its own field, e.g. "o:BTC:17".
HEADER_PREFIX: Final = "mkt:"
ORDER_PREFIX: Final = "o:"
TRIGGER_PREFIX: Final = "t:"
PENDING_PREFIX: Final = "p:"
# The old layout: a market's whole snapshot in one field (still read; replaced on the
# market's next write).
BOOK_PREFIX: Final = "book:"

# Commands a market engine handles itself, by message type.
_HANDLERS: dict[type, Callable[[MarketEngine, Any, Context], None]] = {
    NewOrder: MarketEngine.new_order,
    CancelRequest: MarketEngine.cancel,
    ModifyRequest: MarketEngine.modify,
    IndexTick: MarketEngine.index_tick,
    MarketControl: MarketEngine.control,
    PositionTransfer: MarketEngine.transfer,
    ConfigureMarket: MarketEngine.configure,
}
SCHEDULE_KEY: Final = "schedule"
# Compiled, a Final module name is a C static; an imported name costs a dict lookup per use.
_NewOrder: Final = NewOrder
_CancelRequest: Final = CancelRequest
_ModifyRequest: Final = ModifyRequest
_ScheduleCancel: Final = ScheduleCancel


class MatcherCore:
    """Applies order commands, transfers and index ticks for one partition's markets."""

    def __init__(self, markets: MarketRegistry, partition: int) -> None:
        self.markets = markets
        self.partition = partition
        self.engines: dict[str, MarketEngine] = {}
        self.schedules = Schedules()
        self._deadlines: list[tuple[int, str]] = []
        self._dirty: dict[str, None] = {}
        self._legacy: dict[str, None] = {}  # markets restored from the old layout
        self._schedules_dirty = False
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(MarketSnapshot)

    # ------------------------------------------------------------ runtime protocol

    def apply(self, message: Any, ctx: Context) -> None:
        ts = message.ts
        if self._deadlines and self._deadlines[0][0] <= ts:
            scheduled = self._run_schedules(ts, ctx)
            try:
                self._dispatch(message, ctx)
            finally:  # one delta per market per record, whatever changed its book
                for name in scheduled:
                    self.engines[name].flush_book(ctx)
        else:
            self._dispatch(message, ctx)

    def _dispatch(self, message: Any, ctx: Context) -> None:
        kind = type(message)
        if kind is _ScheduleCancel:
            self._schedule(message)
            return
        market = message.market
        engine = self.engines.get(market)
        if engine is None:
            if kind is CancelAll and not market:
                for name in sorted(self.engines):
                    self._cancel_all(self.engines[name], message, ctx)
                return
            try:
                engine = self._engine(market)
            except UnitError as exc:
                self._unknown_market(message, str(exc), ctx)
                return
        # Almost every record is one of the first three: direct calls once compiled.
        if kind is _NewOrder:
            engine.new_order(message, ctx)
        elif kind is _CancelRequest:
            engine.cancel(message, ctx)
        elif kind is _ModifyRequest:
            engine.modify(message, ctx)
        elif (handler := _HANDLERS.get(kind)) is not None:
            handler(engine, message, ctx)
        elif kind is CancelAll:
            self._cancel_all(engine, message, ctx)
        engine.flush_book(ctx)
        self._dirty[market] = None
        if kind is IndexTick and ctx.live:
            engine.export_metrics()

    def take_changes(self) -> dict[str, bytes | None]:
        changes: dict[str, bytes | None] = {}
        encode = self._encoder.encode
        for market in self._dirty:
            engine = self.engines[market]
            changes[HEADER_PREFIX + market] = encode(engine.header())
            if market in self._legacy:
                self._convert(engine, changes)
            else:
                self._pieces(engine, changes)
            changes[MARKET_CTX_PREFIX + market] = encode(engine.context())
            if engine.l2_dirty:
                changes[L2_PREFIX + market] = encode(engine.l2_view())
                engine.l2_dirty = False
            if engine.spec_dirty:  # the gateway's view of a market changed at run time
                changes[MARKET_SPEC_PREFIX + market] = encode(engine.spec)
                engine.spec_dirty = False
        self._dirty.clear()
        if self._schedules_dirty:
            changes[SCHEDULE_KEY] = encode(self.schedules)
            self._schedules_dirty = False
        return changes

    def _pieces(self, engine: MarketEngine, changes: dict[str, bytes | None]) -> None:
        """The orders, triggers and pending groups the batch changed (None: gone)."""
        encode = self._encoder.encode
        name = engine.market + ":"
        book = engine.book
        if book.dirty:
            orders = book.orders
            for oid in book.take_dirty():
                order = orders.get(oid)
                changes[ORDER_PREFIX + name + str(oid)] = (
                    None if order is None else encode(order.record())
                )
        if engine.dirty_triggers:
            for oid in engine.dirty_triggers:
                trigger = engine.triggers.get(oid)
                changes[TRIGGER_PREFIX + name + str(oid)] = (
                    None if trigger is None else encode(trigger)
                )
            engine.dirty_triggers.clear()
        if engine.dirty_pending:
            for oid in engine.dirty_pending:
                group = engine.pending.get(oid)
                changes[PENDING_PREFIX + name + str(oid)] = None if group is None else encode(group)
            engine.dirty_pending.clear()

    def _convert(self, engine: MarketEngine, changes: dict[str, bytes | None]) -> None:
        """Write a market restored from the old layout in pieces, and drop its old field."""
        encode = self._encoder.encode
        market = engine.market
        for order in engine.book.resting():
            changes[f"{ORDER_PREFIX}{market}:{order.oid}"] = encode(order.record())
        for oid in sorted(engine.triggers):
            changes[f"{TRIGGER_PREFIX}{market}:{oid}"] = encode(engine.triggers[oid])
        for oid in sorted(engine.pending):
            changes[f"{PENDING_PREFIX}{market}:{oid}"] = encode(engine.pending[oid])
        changes[BOOK_PREFIX + market] = None
        engine.book.take_dirty()
        engine.dirty_triggers.clear()
        engine.dirty_pending.clear()
        del self._legacy[market]

    def restore(self, entries: Mapping[str, bytes]) -> None:
        self.engines.clear()
        self._dirty.clear()
        self._legacy.clear()
        headers: dict[str, MarketSnapshot] = {}
        legacy: dict[str, MarketSnapshot] = {}
        for field, raw in entries.items():
            if field.startswith(HEADER_PREFIX):
                snap = self._decoder.decode(raw)
                headers[snap.market] = snap
            elif field.startswith(BOOK_PREFIX):
                snap = self._decoder.decode(raw)
                legacy[snap.market] = snap
        if headers:
            self._gather(headers, entries)
        for market in sorted(headers.keys() | legacy.keys()):
            snap = headers.get(market) or legacy[market]
            if market not in headers:
                self._legacy[market] = None
            spec = self.markets.by_name(market)
            self.engines[market] = MarketEngine.restore(spec, snap)
        raw_schedules = entries.get(SCHEDULE_KEY)
        self.schedules = (
            msgspec.msgpack.decode(raw_schedules, type=Schedules) if raw_schedules else Schedules()
        )
        self._deadlines = sorted((at, account) for account, at in self.schedules.at.items())

    @staticmethod
    def _gather(headers: dict[str, MarketSnapshot], entries: Mapping[str, bytes]) -> None:
        """Fill each market header with its persisted orders (in rest order), triggers and
        pending groups (by oid)."""
        orders: dict[str, list[OrderRecord]] = {m: [] for m in headers}
        triggers: dict[str, list[TriggerOrder]] = {m: [] for m in headers}
        pending: dict[str, list[tuple[int, PendingChildren]]] = {m: [] for m in headers}
        order_decoder = msgspec.msgpack.Decoder(OrderRecord)
        trigger_decoder = msgspec.msgpack.Decoder(TriggerOrder)
        pending_decoder = msgspec.msgpack.Decoder(PendingChildren)
        for field, raw in entries.items():
            kind, sep, rest = field.partition(":")
            if not sep or kind not in ("o", "t", "p"):
                continue
            market, _, oid = rest.rpartition(":")
            if market not in headers:
                raise RuntimeError(f"matcher state: {field} has no market header")
            if kind == "o":
                orders[market].append(order_decoder.decode(raw))
            elif kind == "t":
                triggers[market].append(trigger_decoder.decode(raw))
            else:
                pending[market].append((int(oid), pending_decoder.decode(raw)))
        for market, snap in headers.items():
            snap.orders = sorted(orders[market], key=lambda r: r.seq)
            snap.triggers = sorted(triggers[market], key=lambda t: t.oid)
            snap.pending = dict(sorted(pending[market], key=lambda item: item[0]))

    # ------------------------------------------------------------ helpers

    def _engine(self, market: str) -> MarketEngine:
        engine = self.engines.get(market)
        if engine is None:
            engine = self.engines[market] = MarketEngine(self.markets.by_name(market))
        return engine

    def _unknown_market(self, message: Any, error: str, ctx: Context) -> None:
        account = getattr(message, "account", None) or getattr(message, "from_account", None)
        if account is None:
            return  # an index tick or control for a market this venue does not list
        from libs.common import topics

        ctx.emit(
            topics.RISK_IN,
            account,
            OrderResult(
                ts=message.ts,
                account=account,
                market=getattr(message, "market", ""),
                oid=getattr(message, "oid", 0),
                status="rejected",
                filled_sz=0,
                resting_sz=0,
                error=error,
                req_id=getattr(message, "req_id", ""),
            ),
        )

    def _cancel_all(self, engine: MarketEngine, msg: CancelAll, ctx: Context) -> None:
        engine.cancel_all(msg.account, msg.status, msg.ts, ctx)
        engine.flush_book(ctx)
        self._dirty[engine.market] = None

    def _schedule(self, msg: ScheduleCancel) -> None:
        if msg.at:
            self.schedules.at[msg.account] = msg.at
            heapq.heappush(self._deadlines, (msg.at, msg.account))
        else:
            self.schedules.at.pop(msg.account, None)
        self._schedules_dirty = True

    def _run_schedules(self, ts: int, ctx: Context) -> list[str]:
        """Cancel the orders of every account whose switch time has come; returns the
        markets whose books changed (flushed with the record that triggered them)."""
        changed: dict[str, None] = {}
        while self._deadlines and self._deadlines[0][0] <= ts:
            at, account = heapq.heappop(self._deadlines)
            if self.schedules.at.get(account) != at:
                continue  # replaced or cleared since
            del self.schedules.at[account]
            self._schedules_dirty = True
            for name in sorted(self.engines):
                if self.engines[name].cancel_all(account, "scheduledCancel", ts, ctx):
                    self._dirty[name] = None
                    changed[name] = None
        return list(changed)
