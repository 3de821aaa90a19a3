"""The gateway service: the HTTP API on aiohttp, until SIGTERM."""

from __future__ import annotations

import asyncio

from aiohttp import web

from libs.common.runtime.launcher import launch
from libs.common.settings import Settings
from services.gateway.app import build_app

SERVICE = "gateway"


async def run(settings: Settings, stop: asyncio.Event) -> None:
    runner = web.AppRunner(build_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.gateway_host, settings.gateway_port)
    await site.start()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    launch(SERVICE, run)
