"""Process entry: logging, metrics endpoint, uvloop, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

import uvloop

from libs.common import logs, metrics
from libs.common.runtime import heap
from libs.common.runtime.core import CoreFactory
from libs.common.runtime.processor import Processor
from libs.common.settings import Settings

log = logging.getLogger(__name__)

Main = Callable[[Settings, asyncio.Event], Awaitable[None]]


def launch(service: str, main: Main, settings: Settings | None = None) -> None:
    """Run ``main(settings, stop)`` until it returns; SIGTERM and SIGINT set ``stop``."""
    settings = settings or Settings()
    heap.tune()
    logs.configure(service, settings.instance_id, settings.log_level)
    metrics.serve(settings.metrics_port, settings.metrics_host)

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("starting", extra={"kafka": settings.kafka_bootstrap})
        beats = None
        if not getattr(main, "beats_itself", False):
            beats = asyncio.create_task(_heartbeat(stop))
        await main(settings, stop)
        if beats is not None:
            beats.cancel()
        log.info("stopped")

    uvloop.run(runner())


async def _heartbeat(stop: asyncio.Event) -> None:
    """Beat while the event loop runs; a blocked loop makes /health report stalled."""
    while not stop.is_set():
        metrics.HEALTH.beat()
        await asyncio.sleep(1.0)


def processor_main(
    service: str, input_topic: str, factory: Callable[[Settings], CoreFactory]
) -> Main:
    """A ``main`` that runs one core on the processor runtime until stopped."""

    async def main(settings: Settings, stop: asyncio.Event) -> None:
        processor = Processor(
            service=service,
            input_topic=input_topic,
            core_factory=factory(settings),
            settings=settings,
        )
        await processor.start()
        run = asyncio.create_task(processor.run())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({run, stopper}, return_when=asyncio.FIRST_COMPLETED)
        processor.request_stop()
        if run in done:
            run.result()  # re-raise a crash of the loop
        else:
            await run
        stopper.cancel()
        await processor.stop()

    main.beats_itself = True  # type: ignore[attr-defined]  # the processor's loop beats
    return main
