"""The gateway's HTTP API: Hyperliquid-style /info and /exchange, and the operator API.

Reads come from Redis (the hot state the state machines publish); actions go onto
risk.in and are answered once their outcome arrives on account.events.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from aiohttp import web
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from libs.common import codec, topics
from libs.common.money import UnitError, format_ratio, format_usd, usd_to_units
from libs.common.runtime.snapshot import SnapshotStore
from libs.common.schemas import (
    BalanceUpdate,
    CancelOrder,
    Deposit,
    Message,
    OrderUpdate,
    PlaceOrder,
)
from libs.common.settings import Settings
from libs.common.state import ACCOUNT_PREFIX, MARK_PREFIX, AccountState, MarkState
from libs.common.topics import partition_for
from services.gateway.replies import Replies
from services.gateway.views import clearinghouse_state
from services.gateway.wire import (
    CancelAction,
    DepositRequest,
    ExchangeRequest,
    OrderAction,
    normalize_address,
)

RISK_SERVICE = "risk"
_ACCOUNT = msgspec.msgpack.Decoder(AccountState)
_MARK = msgspec.msgpack.Decoder(MarkState)

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def err(message: str, status: int = 200) -> web.Response:
    return web.json_response({"status": "err", "response": message}, status=status)


class Gateway:
    """Holds the gateway's connections; the route handlers are its methods."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock = wall_clock_ms,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.settings = settings
        self.markets = settings.markets
        self.clock = clock
        self.new_id = new_id
        self.redis = aioredis.Redis.from_url(settings.redis_url)
        self.risk_state = SnapshotStore(self.redis, settings.namespace, RISK_SERVICE)
        self.replies = Replies(settings)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=1,
        )
        self.risk_topic = settings.topics.name(topics.RISK_IN)
        self.risk_partitions = settings.topics.partitions(topics.RISK_IN)

    async def start(self, app: web.Application) -> None:
        await self.producer.start()
        await self.replies.start()

    async def stop(self, app: web.Application) -> None:
        await self.replies.stop()
        await self.producer.stop()
        await self.redis.aclose()

    # ------------------------------------------------------------ bus

    def _partition(self, account: str) -> int:
        return partition_for(account, self.risk_partitions)

    async def _submit(self, account: str, message: Message, req_id: str) -> Any:
        """Put a command on risk.in and wait for its outcome; None on timeout."""
        future = self.replies.expect(req_id)
        try:
            await self.producer.send(
                self.risk_topic,
                codec.encode(message),
                key=account.encode(),
                partition=self._partition(account),
                headers=[("id", req_id.encode())],
            )
            timeout = self.settings.gateway_reply_timeout_ms / 1000
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            self.replies.forget(req_id)

    # ------------------------------------------------------------ reads

    async def _account(self, user: str) -> tuple[AccountState | None, dict[str, int]]:
        key = self.risk_state.state_key(self._partition(user))
        fields = [ACCOUNT_PREFIX + user] + [MARK_PREFIX + m for m in self.markets.names]
        raw = cast(list[bytes | None], await self.redis.hmget(key, fields))
        account = _ACCOUNT.decode(raw[0]) if raw[0] else None
        marks = {}
        for blob in raw[1:]:
            if blob:
                mark = _MARK.decode(blob)
                marks[mark.market] = mark.mark_px
        return account, marks

    async def info(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return err("request body must be JSON", 400)
        kind = body.get("type") if isinstance(body, dict) else None
        if kind == "meta":
            return web.json_response(self._meta())
        if kind == "clearinghouseState":
            try:
                user = normalize_address(str(body.get("user", "")))
            except ValueError as exc:
                return err(str(exc), 400)
            account, marks = await self._account(user)
            return web.json_response(
                clearinghouse_state(account, marks, self.markets, self.clock())
            )
        return err(f"unsupported info type {kind!r}", 400)

    def _meta(self) -> dict[str, Any]:
        return {
            "universe": [
                {"name": m.name, "szDecimals": m.sz_decimals, "maxLeverage": m.max_leverage}
                for m in self.markets
            ],
        }

    # ------------------------------------------------------------ actions

    async def exchange(self, request: web.Request) -> web.Response:
        try:
            req = ExchangeRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            return err(
                f"invalid request: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}", 400
            )
        action = req.action
        if isinstance(action, OrderAction):
            statuses = await asyncio.gather(*(self._order(req.account, o) for o in action.orders))
            return web.json_response(
                {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}
            )
        assert isinstance(action, CancelAction)
        statuses = await asyncio.gather(
            *(self._cancel(req.account, c.a, c.o) for c in action.cancels)
        )
        return web.json_response(
            {"status": "ok", "response": {"type": "cancel", "data": {"statuses": statuses}}}
        )

    async def _order(self, account: str, wire: Any) -> Any:
        try:
            spec = self.markets.by_asset(wire.a)
            px = spec.price_units(wire.p)
            sz = spec.size_units(wire.s)
        except UnitError as exc:
            return {"error": f"Order has invalid price or size: {exc}."}
        req_id = self.new_id()
        msg = PlaceOrder(
            ts=self.clock(),
            account=account,
            market=spec.name,
            is_buy=wire.b,
            px=px,
            sz=sz,
            tif=wire.t.limit.tif,
            reduce_only=wire.r,
            cloid=wire.c,
            req_id=req_id,
        )
        outcome = await self._submit(account, msg, req_id)
        if outcome is None:
            return {"error": "Timed out waiting for the order's outcome; check orderStatus."}
        assert isinstance(outcome, OrderUpdate)
        if outcome.status == "resting":
            return {
                "resting": {
                    "oid": outcome.oid,
                    **({"cloid": outcome.cloid} if outcome.cloid else {}),
                }
            }
        if outcome.status == "filled":
            return {
                "filled": {
                    "totalSz": spec.format_size(outcome.filled_sz),
                    "avgPx": format_ratio(outcome.filled_ntl, outcome.filled_sz, spec.px_decimals),
                    "oid": outcome.oid,
                }
            }
        return {"error": outcome.error or outcome.status}

    async def _cancel(self, account: str, asset: int, oid: int) -> Any:
        try:
            spec = self.markets.by_asset(asset)
        except UnitError as exc:
            return {"error": str(exc)}
        req_id = self.new_id()
        msg = CancelOrder(
            ts=self.clock(), account=account, market=spec.name, oid=oid, req_id=req_id
        )
        outcome = await self._submit(account, msg, req_id)
        if outcome is None:
            return {"error": "Timed out waiting for the cancel's outcome."}
        return "success" if outcome.status == "canceled" else {"error": outcome.error}

    # ------------------------------------------------------------ operator API

    async def deposit(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(token, self.settings.operator_token):
            return err("operator token required", 401)
        try:
            req = DepositRequest.model_validate_json(await request.read())
            usd = usd_to_units(Decimal(req.usd))
        except (ValidationError, UnitError, ArithmeticError) as exc:
            return err(f"invalid deposit: {exc}", 400)
        req_id = self.new_id()
        outcome = await self._submit(
            req.user, Deposit(ts=self.clock(), account=req.user, usd=usd, req_id=req_id), req_id
        )
        if outcome is None:
            return err("timed out waiting for the deposit to apply", 504)
        assert isinstance(outcome, BalanceUpdate)
        if outcome.error:
            return err(outcome.error, 400)
        return web.json_response(
            {
                "status": "ok",
                "response": {"type": "deposit", "collateral": format_usd(outcome.collateral)},
            }
        )

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


def build_app(settings: Settings) -> web.Application:
    gateway = Gateway(settings)
    app = web.Application(client_max_size=1 << 20)
    app.on_startup.append(gateway.start)
    app.on_cleanup.append(gateway.stop)
    app.router.add_post("/info", gateway.info)
    app.router.add_post("/exchange", gateway.exchange)
    app.router.add_post("/operator/deposit", gateway.deposit)
    app.router.add_get("/health", gateway.health)
    return app
