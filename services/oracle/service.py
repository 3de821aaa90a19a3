"""The oracle service: price sources in, index ticks out to the matchers and oracle.prices.

One loop owns the aggregator. Sources (tasks) put batches of prices on a queue; the
operator endpoint puts overrides on the same queue; a timer puts a wake-up there when
the next cadence publication falls due. The loop takes everything queued, advances the
core and publishes what it returns, so the order on the bus is the order of decisions.

Time: the simulator and a replay bring their own clock, each batch's time (a simulator
step, a recorded instant): the core evaluates exactly there (a replay also catches up on
the cadence ticks in between), so a replay's output depends on the file alone and the
index follows the simulator step for step; an override takes the feed's latest time.
Live exchange feeds are judged on the wall clock when the loop runs, with a timer for
the cadence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Final

from aiokafka import AIOKafkaProducer

from libs.common.runtime.launcher import launch
from libs.common.schemas import OracleOverride
from libs.common.settings import Settings
from services.oracle.aggregator import Aggregator, IndexUpdate, Override
from services.oracle.config import OracleConfig, load_oracle_config
from services.oracle.control import ControlApi, serve
from services.oracle.holds import HoldStore, HoldStoreUnavailable
from services.oracle.publisher import SERVICE, Publisher, new_producer
from services.oracle.sources.base import Clock, PriceSource, QuoteBatch, SourcePrice
from services.oracle.sources.catalog import build_sources

log = logging.getLogger(__name__)


# An operator is answered once the broker acknowledged the override's audit event and
# index (a crash right after the answer loses neither), or after this long.
AUDIT_ACK_TIMEOUT_S: Final = 5.0


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclasses.dataclass
class _OverrideCall:
    command: Override
    answer: asyncio.Future[tuple[OracleOverride, IndexUpdate]]


class _Wake:
    """Queued by the timer: time has passed, evaluate what fell due."""


_WAKE: Final = _Wake()
_Item = QuoteBatch | _OverrideCall | _Wake | None


class OracleService:
    """Sources, core, publisher and control endpoint of one oracle process."""

    def __init__(
        self,
        settings: Settings,
        config: OracleConfig,
        *,
        clock: Clock = wall_clock_ms,
        sources: Sequence[PriceSource] | None = None,
        producer: AIOKafkaProducer | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.clock = clock
        markets = settings.markets
        self.core = Aggregator(config.rules, config.sources, list(markets))
        self.sources = list(
            sources if sources is not None else build_sources(config, markets.names, clock)
        )
        self.feed_clock = config.feed != "exchanges"
        self.catch_up = config.feed == "replay"  # a paused simulator skips, it does not burst
        self.publisher = Publisher(
            settings, producer or new_producer(settings), lambda: new_producer(settings)
        )
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.holds = HoldStore(settings)
        self.published = 0
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ inputs

    def emit(self, batch: QuoteBatch) -> None:
        """Where sources deliver their prices."""
        self.queue.put_nowait(batch)

    async def override(self, command: Override) -> tuple[OracleOverride, IndexUpdate]:
        """Apply an operator override in the loop's order; returns once it is published."""
        answer: asyncio.Future[tuple[OracleOverride, IndexUpdate]]
        answer = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(_OverrideCall(command, answer))
        return await answer

    # ------------------------------------------------------------ life

    async def run(self, stop: asyncio.Event) -> None:
        await self.publisher.start()
        holds = await self.holds.load_patiently(stop)
        if holds is None:  # stopped while Redis was away: nothing was published
            await self.publisher.stop()
            await self.holds.close()
            return
        for audit in holds:
            self.core.restore_hold(audit)
            log.warning(
                "override restored after restart",
                extra={"market": audit.market, "action": audit.action, "px": audit.px},
            )
        control = None
        if self.config.control.port:
            api = ControlApi(
                self.settings.markets,
                self.settings.operator_token,
                self.override,
                self.core.last_update,
            )
            control = await serve(api, self.settings.metrics_host, self.config.control.port)
        log.info(
            "oracle started",
            extra={
                "feed": self.config.feed,
                "sources": [f"{s.name}:{s.weight}" for s in self.config.sources],
                "markets": self.core.markets,
                "cadence_ms": self.config.rules.cadence_ms,
            },
        )
        feeds = [asyncio.create_task(self._feed(s)) for s in self.sources]
        watcher = asyncio.create_task(self._stop_on(stop))
        try:
            await self._loop()
        finally:
            if self._timer is not None:
                self._timer.cancel()
            for task in [*feeds, watcher]:
                task.cancel()
            await asyncio.gather(*feeds, watcher, return_exceptions=True)
            if control is not None:
                await control.cleanup()
            await self.publisher.flush()
            await self.publisher.stop()
            await self.holds.close()

    async def _stop_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.queue.put_nowait(None)

    async def _feed(self, source: PriceSource) -> None:
        try:
            await source.run(self.emit)
            log.info("price source finished", extra={"source": source.name})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("price source failed", extra={"source": source.name})

    # ------------------------------------------------------------ the loop

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        if not self.feed_clock:  # publish something (even "stale") within one cadence
            self._timer = loop.call_later(
                self.config.rules.cadence_ms / 1000, self.queue.put_nowait, _WAKE
            )
        while True:
            items = [await self.queue.get()]
            while not self.queue.empty():
                items.append(self.queue.get_nowait())
            stopping = None in items
            await self._handle([i for i in items if i is not None])
            if stopping:
                return
            if not self.feed_clock:
                self._schedule_wake(loop)

    def _schedule_wake(self, loop: asyncio.AbstractEventLoop) -> None:
        due = self.core.next_due()
        delay_ms = self.config.rules.cadence_ms if due is None else due - self.clock()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(max(0, delay_ms) / 1000, self.queue.put_nowait, _WAKE)

    async def _handle(self, items: list[QuoteBatch | _OverrideCall | _Wake]) -> None:
        out: list[IndexUpdate | OracleOverride] = []
        answered: list[tuple[_OverrideCall, tuple[OracleOverride, IndexUpdate]]] = []
        failed: list[tuple[_OverrideCall, Exception]] = []
        prices: list[SourcePrice] = []
        for item in items:
            if isinstance(item, QuoteBatch):
                if self.feed_clock:
                    out.extend(self.core.advance(item.now, item.prices, catch_up=self.catch_up))
                else:
                    prices.extend(item.prices)
            elif isinstance(item, _OverrideCall):
                if not self.feed_clock:
                    out.extend(self.core.advance(self.clock(), prices, catch_up=False))
                    prices = []
                now = self.core.now if self.feed_clock else self.clock()
                command = dataclasses.replace(item.command, ts=now)
                try:
                    # Kept before it is applied: an override Redis cannot keep (a
                    # restart would lift it) is refused, and changes nothing.
                    await self.holds.record(self.core.plan_override(command))
                    result = self.core.override(command)
                except (ValueError, HoldStoreUnavailable) as exc:
                    failed.append((item, exc))
                    continue
                out.extend(result)
                answered.append((item, result))
        if not self.feed_clock:
            out.extend(self.core.advance(self.clock(), prices, catch_up=False))
        if out:
            await self.publisher.publish(out)
            self.published += len(out)
        if answered and not await self.publisher.settle(AUDIT_ACK_TIMEOUT_S):
            # Applied and kept in Redis; the broker has not confirmed the audit yet.
            log.error("override audit not yet acknowledged by the broker")
        for call, result in answered:
            if not call.answer.done():
                call.answer.set_result(result)
        for call, error in failed:
            if not call.answer.done():
                call.answer.set_exception(error)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    await OracleService(settings, load_oracle_config(settings)).run(stop)


def main() -> None:
    launch(SERVICE, run)
