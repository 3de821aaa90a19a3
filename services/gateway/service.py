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
    # The operator API first: the public /health answering means both are up. Several
    # gateway processes on one host may share the ports (SO_REUSEPORT): the kernel
    # spreads the connections over them, and each answers its own requests (every
    # instance reads all of account.events; nonces and rate limits are in Redis).
    host = settings.gateway_host
    await web.TCPSite(runners[1], host, settings.operator_port, reuse_port=True).start()
    await web.TCPSite(runners[0], host, settings.gateway_port, reuse_port=True).start()
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
