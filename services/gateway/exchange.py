"""POST /exchange: signed actions, admitted in a fixed order and answered from the bus.

Admission: IP weight, then the signer recovered from the signature, then the account
it acts for (itself, or the master that approved it as an agent), then the signer's
nonce, then the account's request budget. Only then does anything reach the bus, so a
refused request changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec
from pydantic import ValidationError

from libs.common import signing
from libs.common.markets import MarketRegistry, MarketSpec
from libs.common.money import UnitError, format_ratio, usd_to_units
from libs.common.schemas import (
    ActionResult,
    BalanceUpdate,
    CancelOrder,
    Message,
    ModifyOrder,
    OrderIntent,
    OrderUpdate,
    PlaceOrder,
    ScheduleCancel,
    SetMarginMode,
    UpdateIsolatedMargin,
    UpdateLeverage,
    UsdTransfer,
    VaultTransfer,
    Withdraw,
)
from libs.common.settings import Settings
from services.gateway.agents import AgentError, AgentStore
from services.gateway.bus import Bus
from services.gateway.hot import HotState
from services.gateway.nonces import NonceError, NonceStore
from services.gateway.ratelimit import (
    AddressRateLimiter,
    IpRateLimiter,
    RateLimited,
    exchange_weight,
)
from services.gateway.wire import (
    USER_SIGNED,
    ActionModel,
    ApproveAgentAction,
    BatchModifyAction,
    CancelAction,
    CancelByCloidAction,
    Envelope,
    ModifyAction,
    OrderAction,
    OrderWire,
    ScheduleCancelAction,
    SetMarginModeAction,
    UpdateIsolatedMarginAction,
    UpdateLeverageAction,
    UsdSendAction,
    VaultTransferAction,
    WithdrawAction,
    normalize_address,
)

Clock = Callable[[], int]
TIMEOUT = "Timed out waiting for the outcome; query orderStatus or clearinghouseState."
MIN_SCHEDULE_AHEAD_MS = 5_000


class ExchangeError(Exception):
    """A refused request: ``{"status": "err", "response": message}``, nothing changed."""


def ok(kind: str, data: Any = None) -> dict[str, Any]:
    response: dict[str, Any] = {"type": kind}
    if data is not None:
        response["data"] = data
    return {"status": "ok", "response": response}


class ExchangeApi:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        hot: HotState,
        nonces: NonceStore,
        agents: AgentStore,
        ip_limits: IpRateLimiter,
        address_limits: AddressRateLimiter,
        clock: Clock,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.settings = settings
        self.markets: MarketRegistry = settings.markets
        self.bus = bus
        self.hot = hot
        self.nonces = nonces
        self.agents = agents
        self.ip_limits = ip_limits
        self.address_limits = address_limits
        self.clock = clock
        self.new_id = new_id
        self.handlers: dict[str, Callable[[str, Any], Awaitable[dict[str, Any]]]] = {
            "order": self.order,
            "cancel": self.cancel,
            "cancelByCloid": self.cancel_by_cloid,
            "modify": self.modify,
            "batchModify": self.batch_modify,
            "updateLeverage": self.update_leverage,
            "updateIsolatedMargin": self.update_isolated_margin,
            "setMarginMode": self.set_margin_mode,
            "scheduleCancel": self.schedule_cancel,
            "usdSend": self.usd_send,
            "withdraw3": self.withdraw,
            "vaultTransfer": self.vault_transfer,
        }

    # ------------------------------------------------------------ admission

    async def handle(self, body: Any, ip: str) -> dict[str, Any]:
        """Admit and execute one request; raises ExchangeError or RateLimited."""
        try:
            envelope = Envelope.model_validate(body)
        except ValidationError as exc:
            raise ExchangeError(describe(exc)) from None
        raw = envelope.action
        await self.ip_limits.admit(ip, exchange_weight(raw))
        try:
            action = ActionModel.model_validate({"action": raw}).action
        except ValidationError as exc:
            raise ExchangeError(describe(exc)) from None
        now = self.clock()
        if envelope.expiresAfter is not None and envelope.expiresAfter < now:
            raise ExchangeError(f"Action expired: expiresAfter {envelope.expiresAfter} < {now}")
        if envelope.vaultAddress is not None:
            raise ExchangeError("Vault trading is not supported on this venue.")
        kind = raw["type"]
        try:
            if kind in USER_SIGNED:
                signer = signing.recover_user_action(
                    raw, envelope.signature, chain=self.settings.signature_chain
                )
                account = signer
            else:
                signer = signing.recover_l1_signer(
                    raw,
                    envelope.nonce,
                    None,
                    envelope.expiresAfter,
                    envelope.signature,
                    source=self.settings.signature_source,  # type: ignore[arg-type]
                )
                account, exists = await self._acting_for(signer, now)
                if account == signer and not exists:
                    raise ExchangeError(f"User or API Wallet {signer} does not exist.")
        except signing.SignatureError as exc:
            raise ExchangeError(str(exc)) from None
        try:
            await self.nonces.claim(signer, envelope.nonce, now)
        except NonceError as exc:
            raise ExchangeError(str(exc)) from None
        await self.address_limits.admit(account, raw)
        if isinstance(action, ApproveAgentAction):
            return await self.approve_agent(account, action, now)
        return await self.handlers[kind](account, action)

    async def _acting_for(self, signer: str, now: int) -> tuple[str, bool]:
        """The account an L1 signer acts for, and whether the signer has an account.

        The signer's agent claim and its account are read in one round trip (an agent
        costs one more, to check its master still lists it): the same answer as
        ``agents.acting_for`` then ``hot.account_exists``, at half the round trips.
        """
        key, field = self.hot.account_field(signer)
        async with self.hot.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.agents.claim_key(signer))
            pipe.hexists(key, field)
            claim, exists = await pipe.execute()
        master = await self.agents.master_by_claim(signer, claim, now)
        return master or signer.lower(), bool(exists)

    # ------------------------------------------------------------ orders

    def _spec(self, asset: int) -> MarketSpec:
        try:
            return self.markets.by_asset(asset)
        except UnitError as exc:
            raise ExchangeError(str(exc)) from None

    def _place(self, account: str, wire: OrderWire, grouping: str, now: int) -> PlaceOrder:
        spec = self.markets.by_asset(wire.a)
        sz = spec.size_units(wire.s)
        common: dict[str, Any] = {
            "ts": now,
            "account": account,
            "market": spec.name,
            "is_buy": wire.b,
            "sz": sz,
            "reduce_only": wire.r,
            "cloid": wire.c,
            "req_id": self.new_id(),
            "grouping": grouping if grouping == "positionTpsl" else "na",
        }
        if wire.t.trigger is not None:
            trigger = wire.t.trigger
            return PlaceOrder(
                **common,
                kind="trigger",
                px=spec.price_units(wire.p),
                trigger_px=spec.price_units(trigger.triggerPx),
                tpsl=trigger.tpsl,
                trigger_is_market=trigger.isMarket,
            )
        assert wire.t.limit is not None
        return PlaceOrder(**common, px=spec.price_units(wire.p), tif=wire.t.limit.tif)

    def order_status(self, spec: MarketSpec, outcome: Any) -> Any:
        if outcome is None:
            return {"error": TIMEOUT}
        assert isinstance(outcome, OrderUpdate)
        if outcome.status == "resting":
            resting: dict[str, Any] = {"oid": outcome.oid}
            if outcome.cloid:
                resting["cloid"] = outcome.cloid
            return {"resting": resting}
        if outcome.status == "filled":
            filled: dict[str, Any] = {
                "totalSz": spec.format_size(outcome.filled_sz),
                "avgPx": format_ratio(outcome.filled_ntl, outcome.filled_sz, spec.px_decimals),
                "oid": outcome.oid,
            }
            if outcome.cloid:
                filled["cloid"] = outcome.cloid
            return {"filled": filled}
        return {"error": outcome.error or outcome.status}

    async def order(self, account: str, action: OrderAction) -> dict[str, Any]:
        now = self.clock()
        if action.grouping == "normalTpsl":
            return await self._normal_tpsl(account, action, now)
        statuses: list[Any] = [None] * len(action.orders)
        messages: list[PlaceOrder] = []
        slots: list[int] = []
        for i, wire in enumerate(action.orders):
            try:
                messages.append(self._place(account, wire, action.grouping, now))
                slots.append(i)
            except UnitError as exc:
                statuses[i] = {"error": f"Order has invalid price or size: {exc}."}
        outcomes = await self.bus.submit(account, messages)
        for i, message, outcome in zip(slots, messages, outcomes, strict=True):
            spec = self.markets.by_name(message.market)
            statuses[i] = self.order_status(spec, outcome)
            await self._count_volume(account, outcome)
        return ok("order", {"statuses": statuses})

    async def _normal_tpsl(self, account: str, action: OrderAction, now: int) -> dict[str, Any]:
        parent_wire, *children = action.orders
        if parent_wire.t.limit is None or any(c.t.trigger is None for c in children):
            raise ExchangeError("normalTpsl needs a limit order followed by TP/SL triggers")
        if any(c.a != parent_wire.a for c in children):
            raise ExchangeError("TP/SL orders must be for the parent order's asset")
        try:
            parent = self._place(account, parent_wire, "na", now)
            spec = self.markets.by_asset(parent_wire.a)
            intents = tuple(
                OrderIntent(
                    is_buy=c.b,
                    px=spec.price_units(c.p),
                    sz=spec.size_units(c.s),
                    trigger_px=spec.price_units(c.t.trigger.triggerPx),  # type: ignore[union-attr]
                    tpsl=c.t.trigger.tpsl,  # type: ignore[union-attr]
                    trigger_is_market=c.t.trigger.isMarket,  # type: ignore[union-attr]
                    cloid=c.c,
                )
                for c in children
            )
        except UnitError as exc:
            raise ExchangeError(f"Order has invalid price or size: {exc}.") from None
        message = msgspec.structs.replace(parent, grouping="normalTpsl", children=intents)
        (outcome,) = await self.bus.submit(account, [message])
        first = self.order_status(spec, outcome)
        await self._count_volume(account, outcome)
        return ok("order", {"statuses": [first] + ["waitingForFill"] * len(children)})

    async def _count_volume(self, account: str, outcome: Any) -> None:
        if isinstance(outcome, OrderUpdate) and outcome.filled_ntl:
            await self.address_limits.record_traded(account, outcome.filled_ntl)

    async def cancel(self, account: str, action: CancelAction) -> dict[str, Any]:
        now = self.clock()
        messages: list[Message] = []
        for c in action.cancels:
            spec = self._spec(c.a)
            messages.append(
                CancelOrder(
                    ts=now, account=account, market=spec.name, oid=c.o, req_id=self.new_id()
                )
            )
        return ok(
            "cancel", {"statuses": self._cancel_statuses(await self.bus.submit(account, messages))}
        )

    async def cancel_by_cloid(self, account: str, action: CancelByCloidAction) -> dict[str, Any]:
        now = self.clock()
        messages: list[Message] = []
        for c in action.cancels:
            spec = self._spec(c.asset)
            messages.append(
                CancelOrder(
                    ts=now,
                    account=account,
                    market=spec.name,
                    oid=0,
                    cloid=c.cloid,
                    req_id=self.new_id(),
                )
            )
        return ok(
            "cancel", {"statuses": self._cancel_statuses(await self.bus.submit(account, messages))}
        )

    @staticmethod
    def _cancel_statuses(outcomes: list[Any]) -> list[Any]:
        statuses: list[Any] = []
        for outcome in outcomes:
            if outcome is None:
                statuses.append({"error": TIMEOUT})
            elif outcome.status == "canceled":
                statuses.append("success")
            else:
                statuses.append(
                    {
                        "error": outcome.error
                        or "Order was never placed, already canceled, or filled."
                    }
                )
        return statuses

    def _modify(self, account: str, ref: int | str, wire: OrderWire, now: int) -> ModifyOrder:
        if wire.t.limit is None:
            raise ExchangeError("Only limit orders can be modified.")
        spec = self._spec(wire.a)
        try:
            px, sz = spec.price_units(wire.p), spec.size_units(wire.s)
        except UnitError as exc:
            raise ExchangeError(f"Order has invalid price or size: {exc}.") from None
        by_cloid = ref.lower() if isinstance(ref, str) else None
        return ModifyOrder(
            ts=now,
            account=account,
            market=spec.name,
            oid=ref if isinstance(ref, int) else 0,
            is_buy=wire.b,
            px=px,
            sz=sz,
            tif=wire.t.limit.tif,
            reduce_only=wire.r,
            cloid=wire.c,
            by_cloid=by_cloid,
            req_id=self.new_id(),
        )

    async def modify(self, account: str, action: ModifyAction) -> dict[str, Any]:
        message = self._modify(account, action.oid, action.order, self.clock())
        (outcome,) = await self.bus.submit(account, [message])
        status = self.order_status(self.markets.by_name(message.market), outcome)
        if "error" in status:
            raise ExchangeError(status["error"])
        return ok("default")

    async def batch_modify(self, account: str, action: BatchModifyAction) -> dict[str, Any]:
        now = self.clock()
        messages = [self._modify(account, m.oid, m.order, now) for m in action.modifies]
        outcomes = await self.bus.submit(account, messages)
        statuses = [
            self.order_status(self.markets.by_name(m.market), o)
            for m, o in zip(messages, outcomes, strict=True)
        ]
        return ok("order", {"statuses": statuses})

    # ------------------------------------------------------------ account actions

    async def _default(self, account: str, message: Message) -> dict[str, Any]:
        (outcome,) = await self.bus.submit(account, [message])
        if outcome is None:
            raise ExchangeError(TIMEOUT)
        error = getattr(outcome, "error", None)
        if error:
            raise ExchangeError(error)
        return ok("default")

    async def update_leverage(self, account: str, action: UpdateLeverageAction) -> dict[str, Any]:
        spec = self._spec(action.asset)
        return await self._default(
            account,
            UpdateLeverage(
                ts=self.clock(),
                account=account,
                market=spec.name,
                leverage=action.leverage,
                is_cross=action.isCross,
                req_id=self.new_id(),
            ),
        )

    async def update_isolated_margin(
        self, account: str, action: UpdateIsolatedMarginAction
    ) -> dict[str, Any]:
        spec = self._spec(action.asset)
        return await self._default(
            account,
            UpdateIsolatedMargin(
                ts=self.clock(),
                account=account,
                market=spec.name,
                usd=action.ntli,
                req_id=self.new_id(),
            ),
        )

    async def set_margin_mode(self, account: str, action: SetMarginModeAction) -> dict[str, Any]:
        """Our extension: switch between cross and portfolio margin; risk refuses a switch
        that would leave the account below the new requirement."""
        return await self._default(
            account,
            SetMarginMode(ts=self.clock(), account=account, mode=action.mode, req_id=self.new_id()),
        )

    async def schedule_cancel(self, account: str, action: ScheduleCancelAction) -> dict[str, Any]:
        now = self.clock()
        at = action.time or 0
        if at and at < now + MIN_SCHEDULE_AHEAD_MS:
            raise ExchangeError(
                "Scheduled cancel time too early, must be at least 5 seconds from now."
            )
        return await self._default(
            account, ScheduleCancel(ts=now, account=account, at=at, req_id=self.new_id())
        )

    async def approve_agent(
        self, master: str, action: ApproveAgentAction, now: int
    ) -> dict[str, Any]:
        try:
            await self.agents.approve(
                master, action.agentAddress, action.agentName or "", action.nonce, now
            )
        except AgentError as exc:
            raise ExchangeError(str(exc)) from None
        return ok("default")

    def _usd(self, amount: str) -> int:
        try:
            usd = usd_to_units(Decimal(amount))
        except (UnitError, ArithmeticError) as exc:
            raise ExchangeError(f"Invalid amount: {exc}") from None
        if usd <= 0:
            raise ExchangeError("Amount must be positive.")
        return usd

    async def usd_send(self, account: str, action: UsdSendAction) -> dict[str, Any]:
        try:
            destination = normalize_address(action.destination)
        except ValueError as exc:
            raise ExchangeError(f"destination: {exc}") from None
        return await self._default(
            account,
            UsdTransfer(
                ts=self.clock(),
                account=account,
                destination=destination,
                usd=self._usd(action.amount),
                req_id=self.new_id(),
            ),
        )

    async def withdraw(self, account: str, action: WithdrawAction) -> dict[str, Any]:
        return await self._default(
            account,
            Withdraw(
                ts=self.clock(), account=account, usd=self._usd(action.amount), req_id=self.new_id()
            ),
        )

    async def vault_transfer(self, account: str, action: VaultTransferAction) -> dict[str, Any]:
        """An LP's deposit into or withdrawal from a vault, answered by the vault's risk
        partition once the shares are minted or burnt (or with its reason)."""
        try:
            vault = normalize_address(action.vaultAddress)
        except ValueError as exc:
            raise ExchangeError(f"vaultAddress: {exc}") from None
        return await self._default(
            account,
            VaultTransfer(
                ts=self.clock(),
                account=account,
                vault=vault,
                is_deposit=action.isDeposit,
                usd=action.usd,
                req_id=self.new_id(),
            ),
        )


def describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"Invalid request: {first.get('msg', 'invalid')} at {where or 'body'}"


__all__ = ["ActionResult", "BalanceUpdate", "ExchangeApi", "ExchangeError", "RateLimited"]
