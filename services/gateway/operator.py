"""The operator API, on its own port behind a bearer token: the local faucet, market
configuration, halt and resume, and the venue's funds. Every call, allowed or refused,
becomes an ``OperatorAudit`` event on the operator.audit topic."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web
from pydantic import ValidationError

from libs.common import codec, topics
from libs.common.margin import clearinghouse_state
from libs.common.markets import MarketRegistry, check_portfolio, parse_params, reconfigure
from libs.common.money import UnitError, format_usd, usd_to_units
from libs.common.schemas import (
    BalanceUpdate,
    ConfigureMarket,
    Deposit,
    MarketConfigured,
    MarketControl,
    OperatorAudit,
)
from libs.common.settings import Settings
from libs.common.state import BACKSTOP_VAULT_ACCOUNT, INSURANCE_FUND_ACCOUNT
from services.gateway.bus import Bus
from services.gateway.exchange import describe
from services.gateway.hot import HotState
from services.gateway.wire import ConfigureMarketRequest, DepositRequest, MarketControlRequest

Clock = Callable[[], int]
Route = Callable[[web.Request], Awaitable[web.Response]]
BODY = web.RequestKey("body", object)  # the request's JSON, read once by the guard


def err(message: str, status: int) -> web.Response:
    return web.json_response({"status": "err", "response": message}, status=status)


class OperatorApi:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        clock: Clock,
        new_id: Callable[[], str],
        hot: HotState | None = None,
    ) -> None:
        self.hot = hot
        self.settings = settings
        self.markets: MarketRegistry = settings.markets
        self.bus = bus
        self.clock = clock
        self.new_id = new_id

    async def audit(self, action: str, detail: Any, ok: bool) -> None:
        event = OperatorAudit(
            ts=self.clock(),
            operator="token",
            action=action,
            detail=msgspec.json.encode(detail).decode()[:4000],
            ok=ok,
        )
        await self.bus.producer.send_and_wait(
            self.settings.topics.name(topics.OPERATOR_AUDIT),
            codec.encode(event),
            key=b"operator",
        )

    def guarded(self, action: str, route: Route) -> Route:
        """Token check and audit around a route."""

        async def handler(request: web.Request) -> web.Response:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            body: Any = None
            if request.can_read_body:
                try:
                    body = await request.json()
                except ValueError:
                    body = "<not JSON>"
            if not hmac.compare_digest(token.encode(), self.settings.operator_token.encode()):
                await self.audit(action, {"refused": "bad token"}, ok=False)
                return err("operator token required", 401)
            request[BODY] = body
            response = await route(request)
            await self.audit(
                action, {"request": body, "status": response.status}, ok=response.status < 400
            )
            return response

        return handler

    async def deposit(self, request: web.Request) -> web.Response:
        try:
            req = DepositRequest.model_validate(request[BODY])
            usd = usd_to_units(Decimal(req.usd)) if req.usd is not None else 0
            asset, amount = "", 0
            if req.asset is not None and req.amount is not None:
                if req.asset not in self.markets.collateral:
                    return err(f"{req.asset!r} is not accepted as collateral.", 400)
                asset = req.asset
                amount = self.markets.by_name(asset).size_units(Decimal(req.amount))
        except ValidationError as exc:
            return err(describe(exc), 400)
        except (UnitError, ArithmeticError) as exc:
            return err(f"invalid amount: {exc}", 400)
        req_id = self.new_id()
        deposit = Deposit(
            ts=self.clock(), account=req.user, usd=usd, req_id=req_id, asset=asset, amount=amount
        )
        (outcome,) = await self.bus.submit(req.user, [deposit])
        if outcome is None:
            return err("timed out waiting for the deposit to apply", 504)
        assert isinstance(outcome, BalanceUpdate)
        if outcome.error:
            return err(outcome.error, 400)
        response = {"type": "deposit", "collateral": format_usd(outcome.collateral)}
        if asset:
            response["asset"] = asset
            response["balance"] = self.markets.by_name(asset).format_size(outcome.asset_balance)
        return web.json_response({"status": "ok", "response": response})

    async def list_markets(self, request: web.Request) -> web.Response:
        rows = [msgspec.to_builtins(m) for m in self.markets]
        return web.json_response({"status": "ok", "response": {"markets": rows}})

    async def configure_market(self, request: web.Request) -> web.Response:
        """Change a listed market's parameters. Checked here for a quick answer, applied
        by the market's matcher (which checks again on top of the market as it stands)
        and by every risk partition at the same point of their input."""
        try:
            req = ConfigureMarketRequest.model_validate(request[BODY])
            spec = self.markets.by_name(req.coin)
            params = parse_params(req.changes)
            # portfolio margin stays at least cross margin for a lone position
            check_portfolio(reconfigure(spec, params), self.markets.portfolio)
        except ValidationError as exc:
            return err(describe(exc), 400)
        except (UnitError, ValueError) as exc:
            return err(str(exc), 400)
        outcome = await self.bus.ask_market(
            spec.name,
            ConfigureMarket(
                ts=self.clock(),
                market=spec.name,
                params=params,
                operator="token",
                reason=req.reason,
                req_id=self.new_id(),
            ),
        )
        if outcome is None:
            return err("timed out waiting for the market's matcher to apply the change", 504)
        assert isinstance(outcome, MarketConfigured)
        if outcome.error:
            return err(outcome.error, 400)
        self.markets.update(outcome.spec)  # also done by the listener; now for this answer
        return web.json_response(
            {
                "status": "ok",
                "response": {
                    "type": "configure",
                    "market": msgspec.to_builtins(outcome.spec),
                    "overrides": msgspec.to_builtins(outcome.overrides),
                },
            }
        )

    def control(self, action: str) -> Route:
        async def route(request: web.Request) -> web.Response:
            try:
                req = MarketControlRequest.model_validate(request[BODY])
                spec = self.markets.by_name(req.coin)
            except ValidationError as exc:
                return err(describe(exc), 400)
            except UnitError as exc:
                return err(str(exc), 400)
            await self.bus.to_market(
                spec.name,
                MarketControl(
                    ts=self.clock(),
                    market=spec.name,
                    action=action,  # type: ignore[arg-type]
                    operator="token",
                    reason=req.reason,
                ),
            )
            return web.json_response({"status": "ok", "response": {"type": action}})

        return route

    async def funds(self, request: web.Request) -> web.Response:
        """The insurance fund and the backstop vault: balances, positions and value at
        mark, from the accounts risk keeps for them."""
        assert self.hot is not None
        funds = {}
        for name, address in (
            ("insuranceFund", INSURANCE_FUND_ACCOUNT),
            ("backstopVault", BACKSTOP_VAULT_ACCOUNT),
        ):
            account, marks = await self.hot.account(address)
            state = clearinghouse_state(account, marks, self.markets, self.clock())
            funds[name] = {"address": address, **state}
        return web.json_response({"status": "ok", "response": funds})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 16)
        app.router.add_post("/operator/deposit", self.guarded("deposit", self.deposit))
        app.router.add_get("/operator/markets", self.guarded("markets", self.list_markets))
        app.router.add_post(
            "/operator/markets/configure", self.guarded("configure", self.configure_market)
        )
        app.router.add_get("/operator/funds", self.guarded("funds", self.funds))
        app.router.add_post("/operator/halt", self.guarded("halt", self.control("halt")))
        app.router.add_post("/operator/resume", self.guarded("resume", self.control("resume")))
        app.router.add_get("/health", self.health)
        return app
