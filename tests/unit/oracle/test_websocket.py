"""The live adapters' connection loop against a WebSocket server on loopback that speaks
each exchange's protocol from the sample messages, then drops the connection: the
adapter answers heartbeats and pings, shrugs off error frames, reconnects with backoff
and resubscribes, and delivers the exact prices from both connections."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from libs.localstack import free_ports
from services.oracle.config import SourceRule, WebSocketConfig
from services.oracle.sources.base import QuoteBatch
from services.oracle.sources.catalog import PROTOCOLS, exchange_symbols
from services.oracle.sources.websocket import Backoff, WebSocketFeed

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "oracle"
FAST = WebSocketConfig(
    backoff_initial_ms=20,
    backoff_max_ms=100,
    idle_timeout_ms=2000,
    connect_timeout_ms=2000,
    ping_interval_ms=50,
)
BTC_PRICE = {
    "binance": "67432.15000000",
    "okx": "67431.9",
    "bybit": "67433.5",
    "coinbase": "67440.01",
    "kraken": "67435.2",
}
ACK = {
    "binance": "subscribe_ack.json",
    "okx": "subscribe_ack.json",
    "bybit": "subscribe_ack.json",
    "coinbase": "subscriptions.json",
    "kraken": "subscribe_ack.json",
}
HEARTBEAT = {"coinbase": "heartbeat.json", "kraken": "heartbeat.json"}
PONG = {"okx": "pong.txt", "bybit": "pong.json", "kraken": "pong.json"}


def fixture(exchange: str, name: str) -> str:
    return (FIXTURES / exchange / name).read_text().strip()


Script = Callable[["Loopback", web.WebSocketResponse, web.Request], Awaitable[None]]


class Loopback:
    """A WebSocket server on 127.0.0.1 that runs ``script`` for every connection."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.received: list[str] = []
        self.pongs: list[bytes] = []
        self.url = ""
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        self.connections += 1
        try:
            await self.script(self, ws, request)
        except (ConnectionError, TimeoutError, RuntimeError):
            pass
        return ws

    async def receive(self, ws: web.WebSocketResponse) -> aiohttp.WSMessage:
        """The client's next text frame or pong, recorded."""
        msg = await ws.receive(timeout=5)
        if msg.type is aiohttp.WSMsgType.PONG:
            self.pongs.append(msg.data)
        elif msg.type is aiohttp.WSMsgType.TEXT:
            self.received.append(msg.data)
        else:
            raise ConnectionError(f"client went away: {msg.type}")
        return msg


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Script], Awaitable[Loopback]]]:
    runners: list[web.AppRunner] = []

    async def start(script: Script) -> Loopback:
        server = Loopback(script)
        app = web.Application()
        app.router.add_get("/ws", server.handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        (port,) = free_ports(1)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        server.url = f"ws://127.0.0.1:{port}/ws"
        runners.append(runner)
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


def feed_for(exchange: str, url: str, config: WebSocketConfig = FAST) -> WebSocketFeed:
    symbols = exchange_symbols(SourceRule(name=exchange, weight=1), ["BTC", "ETH"])
    return WebSocketFeed(
        exchange,
        PROTOCOLS[exchange](),
        symbols,
        config,
        clock=lambda: 1_717_000_000_000,
        url=url,
        rng=random.Random(1),
    )


async def until(predicate: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("exchange", sorted(PROTOCOLS))
async def test_an_adapter_survives_a_dropped_connection_and_delivers_exact_prices(
    exchange: str, serve: Callable[[Script], Awaitable[Loopback]]
) -> None:
    async def script(server: Loopback, ws: web.WebSocketResponse, request: web.Request) -> None:
        first = server.connections == 1
        await server.receive(ws)  # the subscription
        await ws.send_str(fixture(exchange, ACK[exchange]))
        if first:
            error = "error.json"
            await ws.send_str(fixture(exchange, error))
        if exchange in HEARTBEAT:
            await ws.send_str(fixture(exchange, HEARTBEAT[exchange]))
        if exchange in PONG:
            await server.receive(ws)  # the client's own ping
            await ws.send_str(fixture(exchange, PONG[exchange]))
        if exchange == "binance":  # a WebSocket ping frame the client must answer
            await ws.ping(fixture("binance", "ping_payload.txt").encode())
            while not server.pongs:
                await server.receive(ws)
        await ws.send_str(fixture(exchange, "ticker.json"))
        if first:
            assert request.transport is not None
            request.transport.abort()  # dropped: no close frame
            return
        await server.release.wait()

    server = await serve(script)
    feed = feed_for(exchange, server.url)
    batches: list[QuoteBatch] = []
    task = asyncio.create_task(feed.run(batches.append))
    try:
        await until(lambda: len(batches) == 2)
    finally:
        server.release.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    assert server.connections == feed.connections == 2
    subscription = PROTOCOLS[exchange]().subscribe(sorted(feed.markets_by_symbol))
    assert server.received.count(subscription[0]) == 2  # subscribed again after the drop
    prices = [(p.source, p.market, p.price, p.ts) for b in batches for p in b.prices]
    expected = (exchange, "BTC", Decimal(BTC_PRICE[exchange]), 1_717_000_000_000)
    assert prices == [expected, expected]
    assert feed.frames["error"] == 1 and feed.last_error
    assert feed.frames["ack"] == 2
    if exchange in HEARTBEAT:
        assert feed.frames["heartbeat"] == 2
    if exchange in PONG:
        assert feed.frames["pong"] >= 2
        pings = [t for t in server.received if t not in subscription]
        first_ping = {
            "okx": "ping",
            "bybit": '{"op":"ping"}',
            "kraken": '{"method":"ping","req_id":1}',
        }
        assert pings[0] == first_ping[exchange] and len(pings) == 2
    if exchange == "binance":
        assert server.pongs[0] == b"1717000000789"


async def test_a_silent_connection_counts_as_dead_and_is_replaced(
    serve: Callable[[Script], Awaitable[Loopback]],
) -> None:
    async def script(server: Loopback, ws: web.WebSocketResponse, request: web.Request) -> None:
        await server.receive(ws)
        await server.release.wait()  # says nothing at all

    server = await serve(script)
    idle = WebSocketConfig(backoff_initial_ms=10, backoff_max_ms=20, idle_timeout_ms=150)
    feed = feed_for("coinbase", server.url, idle)
    task = asyncio.create_task(feed.run(lambda batch: None))
    started = time.monotonic()
    try:
        # the server counts a connection at the handshake, the feed once it completes
        await until(lambda: server.connections >= 3 and feed.connections >= 3, within_s=5)
    finally:
        server.release.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert time.monotonic() - started >= 0.3  # two idle periods of 150 ms
    assert feed.connections >= 3


async def test_an_unreachable_exchange_is_retried_with_growing_waits() -> None:
    (port,) = free_ports(1)  # nothing listens there
    config = WebSocketConfig(backoff_initial_ms=10, backoff_max_ms=80, connect_timeout_ms=500)
    feed = feed_for("okx", f"ws://127.0.0.1:{port}/ws", config)
    started = time.monotonic()
    task = asyncio.create_task(feed.run(lambda batch: None))
    try:
        await until(lambda: feed.backoff.attempt >= 5, within_s=10)
        elapsed = time.monotonic() - started
        assert not task.done()  # still trying, no crash
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert feed.connections == 0
    # four waits of at least 5, 10, 20 and 40 ms (half of 10, 20, 40, 80) before the fifth try
    assert elapsed >= 0.075


def test_backoff_doubles_with_jitter_up_to_the_ceiling_and_resets() -> None:
    backoff = Backoff(500, 30_000, random.Random(3))
    waits = [backoff.next_ms() for _ in range(10)]
    ceilings = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
    assert all(c // 2 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert len(set(waits)) == 10  # jittered
    backoff.reset()
    assert 250 <= backoff.next_ms() <= 500
