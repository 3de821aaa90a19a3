"""The operator's control of the oracle: a small HTTP API next to the metrics endpoint.

    POST /operator/override   Authorization: Bearer <EXCHANGE_OPERATOR_TOKEN>
        {"market": "BTC", "action": "freeze" | "set" | "release",
         "px": "101000" (set only, a valid price), "operator": "alice", "reason": "..."}
    GET  /oracle/status       every market's last published index, validity and sources
    GET  /health

Every accepted override publishes an ``OracleOverride`` audit event on oracle.prices,
then the index it causes (``halted`` under freeze or set). Answers follow the gateway's
shape: ``{"status": "ok", "response": ...}`` or ``{"status": "err", "response": "why"}``
with 400 (invalid request), 401 (token), 409 (override cannot apply) or 503 (the hold
store, Redis, is unreachable: the override was not applied and changed nothing).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from libs.common.markets import MarketRegistry
from libs.common.money import UnitError
from libs.common.schemas import OracleOverride
from services.oracle.aggregator import IndexUpdate, Override, OverrideRefused
from services.oracle.holds import HoldStoreUnavailable

log = logging.getLogger(__name__)

ApplyOverride = Callable[[Override], Awaitable[tuple[OracleOverride, IndexUpdate]]]
LastUpdate = Callable[[str], IndexUpdate | None]


class OverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    market: str
    action: Literal["freeze", "set", "release"]
    px: str | None = None
    operator: str = Field(min_length=1, max_length=64)
    reason: str = Field("", max_length=500)


def _err(message: str, status: int) -> web.Response:
    return web.json_response({"status": "err", "response": message}, status=status)


def describe(update: IndexUpdate, markets: MarketRegistry) -> dict[str, Any]:
    spec = markets.by_name(update.market)
    return {
        "market": update.market,
        "px": spec.format_price(update.px) if update.px else None,
        "status": update.status,
        "reason": update.reason,
        "ts": update.ts,
        "sources": [
            {
                "source": q.source,
                "px": spec.format_price(q.px),
                "weight": q.weight,
                "ageMs": q.age_ms,
            }
            for q in update.sources
        ],
    }


class ControlApi:
    """Routes of the control endpoint; the override itself runs in the oracle's loop."""

    def __init__(
        self, markets: MarketRegistry, token: str, apply: ApplyOverride, last: LastUpdate
    ) -> None:
        self.markets = markets
        self.token = token
        self.apply = apply
        self.last = last

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/operator/override", self.override)
        app.router.add_get("/oracle/status", self.status)
        app.router.add_get("/health", self.health)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def status(self, request: web.Request) -> web.Response:
        out = []
        for name in self.markets.names:
            update = self.last(name)
            out.append(describe(update, self.markets) if update else {"market": name})
        return web.json_response({"status": "ok", "response": out})

    async def override(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return _err("operator token required", 401)
        try:
            body = OverrideRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            first = exc.errors()[0]
            return _err(f"invalid request: {first['msg']} at {first['loc']}", 400)
        try:
            spec = self.markets.by_name(body.market)
            if body.action == "set":
                if body.px is None:
                    return _err("set needs px", 400)
                px = spec.price_units(body.px)
            elif body.px is not None:
                return _err(f"px is only for set, not {body.action}", 400)
            else:
                px = 0
        except UnitError as exc:
            return _err(str(exc), 400)
        command = Override(
            ts=0,
            market=body.market,
            action=body.action,
            px=px,
            operator=body.operator,
            reason=body.reason,
        )
        try:
            audit, update = await self.apply(command)
        except OverrideRefused as exc:
            return _err(str(exc), 409)
        except HoldStoreUnavailable as exc:
            log.error("operator override not applied", extra={"error": str(exc)})
            return _err(f"override not applied, try again: {exc}", 503)
        log.warning(
            "operator override",
            extra={"market": audit.market, "action": audit.action, "operator": audit.operator},
        )
        return web.json_response(
            {"status": "ok", "response": {"action": audit.action, **describe(update, self.markets)}}
        )


async def serve(api: ControlApi, host: str, port: int) -> web.AppRunner | None:
    """Start the endpoint; a busy port is logged and the oracle runs on without it."""
    runner = web.AppRunner(api.app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        log.error(
            "operator endpoint not started", extra={"host": host, "port": port, "error": str(exc)}
        )
        await runner.cleanup()
        return None
    log.info("operator endpoint listening", extra={"host": host, "port": port})
    return runner
