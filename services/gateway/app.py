"""The gateway's HTTP surface: public /info and /exchange, and the operator app.

``Gateway`` holds the connections (Redis, the bus) and the APIs built on them; the
route functions only translate between HTTP and those APIs.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from libs.common import metrics, topics
from libs.common.schemas import MarketConfigured
from libs.common.settings import Settings
from services.gateway import dashboard
from services.gateway.agents import AgentStore
from services.gateway.bus import Bus
from services.gateway.exchange import ExchangeApi, ExchangeError
from services.gateway.history import History
from services.gateway.hot import HotState
from services.gateway.info import InfoApi, InfoError
from services.gateway.nonces import NonceStore
from services.gateway.operator import OperatorApi
from services.gateway.ratelimit import (
    AddressRateLimiter,
    IpRateLimiter,
    RateLimited,
    info_weight,
)
from services.gateway.ws import Hub

log = logging.getLogger(__name__)


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


REDIS_UNAVAILABLE = "state store unavailable; retry shortly"


def refuse(message: str, status: int = 200) -> web.Response:
    return web.json_response({"status": "err", "response": message}, status=status)


@web.middleware
async def contain_failures(request: web.Request, handler: Any) -> web.StreamResponse:
    """A bug must not leak a stack trace or an HTML page: log it, answer JSON."""
    try:
        return cast(web.StreamResponse, await handler(request))
    except web.HTTPException:
        raise
    except (RedisConnectionError, RedisTimeoutError) as exc:
        # Redis away (restarting): a clear, retryable answer rather than a stack trace
        log.warning("Redis unavailable on %s %s: %r", request.method, request.path, exc)
        metrics.HTTP_REQUESTS.labels(request.path.strip("/") or "root", "503").inc()
        return refuse(REDIS_UNAVAILABLE, 503)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        metrics.HTTP_REQUESTS.labels(request.path.strip("/") or "root", "500").inc()
        return refuse("internal error; the request may not have been applied", 500)


class Gateway:
    """Everything one gateway process needs, wired once."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], int] = wall_clock_ms,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.settings = settings
        self.clock = clock
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=settings.gateway_redis_connections, timeout=None
        )
        self.redis = aioredis.Redis.from_pool(pool)
        ns = settings.namespace
        self.bus = Bus(settings)
        self.hot = HotState(self.redis, settings)
        self.bus.reflected = self.hot.reflects
        self.history = History(self.redis, settings)
        self.ip_limits = IpRateLimiter(self.redis, ns, clock, limit=settings.ip_weight_per_minute)
        self.address_limits = AddressRateLimiter(self.redis, ns, clock)
        self.nonces = NonceStore(self.redis, ns)
        self.agents = AgentStore(self.redis, ns)
        self.info = InfoApi(self.hot, self.history, settings.markets, self.address_limits, clock)
        self.exchange = ExchangeApi(
            settings,
            self.bus,
            self.hot,
            self.nonces,
            self.agents,
            self.ip_limits,
            self.address_limits,
            clock,
            new_id,
        )
        self.operator = OperatorApi(settings, self.bus, clock, new_id, self.hot)
        self.hub = Hub(self.info, self.exchange, self.history, settings.markets, clock)
        self.bus.replies.listeners.append(self.hub.on_event)
        self.bus.replies.listeners.append(self.on_market_event)

    async def start(self, app: web.Application | None = None) -> None:
        await self.bus.start()
        # Markets changed at run time before this start; later changes arrive as events.
        for spec in await self.hot.changed_specs():
            self.settings.markets.update(spec)
        self.hub.start()

    def on_market_event(self, topic: str, event: Any) -> None:
        """Every API of this gateway sees a market's parameters as its matcher set them."""
        if topic == topics.MARKET_EVENTS and type(event) is MarketConfigured and not event.error:
            self.settings.markets.update(event.spec)

    async def stop(self, app: web.Application | None = None) -> None:
        await self.hub.stop()
        await self.bus.stop()
        await self.redis.aclose()

    # ------------------------------------------------------------ routes

    async def post_info(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            body = await request.json()
        except ValueError:
            return self._done("info", refuse("request body must be JSON", 400), started)
        try:
            kind = body.get("type") if isinstance(body, dict) else None
            await self.ip_limits.admit(request.remote or "?", info_weight(str(kind)))
            answer: Any = await self.info.answer(body)
        except RateLimited as exc:
            return self._done("info", refuse(str(exc), 429), started)
        except InfoError as exc:
            return self._done("info", refuse(str(exc), 400), started)
        return self._done("info", web.json_response(answer), started)

    async def post_exchange(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            body = await request.json()
        except ValueError:
            return self._done("exchange", refuse("request body must be JSON", 400), started)
        try:
            answer = await self.exchange.handle(body, request.remote or "?")
        except RateLimited as exc:
            return self._done("exchange", refuse(str(exc), 429), started)
        except ExchangeError as exc:
            return self._done("exchange", refuse(str(exc)), started)
        return self._done("exchange", web.json_response(answer), started)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    @staticmethod
    def _done(route: str, response: web.Response, started: float) -> web.Response:
        metrics.HTTP_REQUESTS.labels(route, str(response.status)).inc()
        metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
        return response

    def public_app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20, middlewares=[contain_failures])
        app.router.add_post("/info", self.post_info)
        app.router.add_post("/exchange", self.post_exchange)
        app.router.add_get("/health", self.health)
        app.router.add_get("/ws", self.hub.handle)
        dashboard.add_routes(app)
        return app
