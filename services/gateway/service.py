"""The gateway service: the public API, the operator API and the history projector."""

from __future__ import annotations

import asyncio

from aiohttp import web

from libs.common.runtime.launcher import launch
from libs.common.settings import Settings
from services.gateway.app import Gateway
from services.gateway.history import run_projector

SERVICE = "gateway"


async def run(settings: Settings, stop: asyncio.Event) -> None:
    gateway = Gateway(settings)
    await gateway.start()
    runners = [
        web.AppRunner(gateway.public_app(), access_log=None),
        web.AppRunner(gateway.operator.app(), access_log=None),
    ]
    for runner in runners:
        await runner.setup()
    # The operator API first: the public /health answering means both are up.
    await web.TCPSite(runners[1], settings.gateway_host, settings.operator_port).start()
    await web.TCPSite(runners[0], settings.gateway_host, settings.gateway_port).start()
    projector = asyncio.create_task(run_projector(gateway.history, stop))
    try:
        await stop.wait()
    finally:
        await projector
        for runner in runners:
            await runner.cleanup()
        await gateway.stop()


def main() -> None:
    launch(SERVICE, run)
