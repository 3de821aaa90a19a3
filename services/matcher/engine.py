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
from services.matcher.structs import MarketSnapshot, Schedules

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
            changes[BOOK_PREFIX + market] = encode(engine.snapshot())
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

    def restore(self, entries: Mapping[str, bytes]) -> None:
        self.engines.clear()
        self._dirty.clear()
        for field, raw in entries.items():
            if field.startswith(BOOK_PREFIX):
                snap = self._decoder.decode(raw)
                spec = self.markets.by_name(snap.market)
                self.engines[snap.market] = MarketEngine.restore(spec, snap)
        raw_schedules = entries.get(SCHEDULE_KEY)
        self.schedules = (
            msgspec.msgpack.decode(raw_schedules, type=Schedules) if raw_schedules else Schedules()
        )
        self._deadlines = sorted((at, account) for account, at in self.schedules.at.items())

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
