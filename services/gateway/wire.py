"""Request models of the public API, validated at the edge (pydantic).

The signature covers the action exactly as sent, so the raw JSON dict is kept for
hashing and these models validate a copy; nothing here changes what was signed.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

ADDRESS = re.compile(r"^0x[0-9a-f]{40}$")
CLOID = re.compile(r"^0x[0-9a-fA-F]{32}$")
MAX_BATCH = 1000

Oid = Annotated[StrictInt, Field(ge=0, lt=2**63)]
Asset = Annotated[StrictInt, Field(ge=0, lt=10_000)]
Decimal = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^-?[0-9]+(\.[0-9]+)?$")]


def normalize_address(value: str) -> str:
    value = value.lower()
    if not ADDRESS.match(value):
        raise ValueError("address must be 0x followed by 40 hex digits")
    return value


def normalize_cloid(value: str) -> str:
    if not CLOID.match(value):
        raise ValueError("cloid must be 0x followed by 32 hex digits")
    return value.lower()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitSpec(Strict):
    tif: Literal["Gtc", "Ioc", "Alo"]


class TriggerSpec(Strict):
    isMarket: StrictBool
    triggerPx: Decimal
    tpsl: Literal["tp", "sl"]


class OrderType(Strict):
    limit: LimitSpec | None = None
    trigger: TriggerSpec | None = None

    @field_validator("trigger")
    @classmethod
    def _one_kind(cls, v: TriggerSpec | None, info: Any) -> TriggerSpec | None:
        if (v is None) == (info.data.get("limit") is None):
            raise ValueError("order type must be exactly one of limit or trigger")
        return v


class OrderWire(Strict):
    """One order as the SDK sends it: asset, side, price and size strings, reduce-only."""

    a: Asset
    b: StrictBool
    p: Decimal
    s: Decimal
    r: StrictBool = False
    t: OrderType
    c: str | None = None

    _cloid = field_validator("c")(
        classmethod(lambda cls, v: normalize_cloid(v) if v is not None else None)
    )


class OrderAction(Strict):
    type: Literal["order"]
    orders: list[OrderWire] = Field(min_length=1, max_length=MAX_BATCH)
    grouping: Literal["na", "normalTpsl", "positionTpsl"] = "na"
    builder: dict[str, Any] | None = None


class CancelWire(Strict):
    a: Asset
    o: Oid


class CancelAction(Strict):
    type: Literal["cancel"]
    cancels: list[CancelWire] = Field(min_length=1, max_length=MAX_BATCH)


class CancelByCloidWire(Strict):
    asset: Asset
    cloid: str

    _cloid = field_validator("cloid")(classmethod(lambda cls, v: normalize_cloid(v)))


class CancelByCloidAction(Strict):
    type: Literal["cancelByCloid"]
    cancels: list[CancelByCloidWire] = Field(min_length=1, max_length=MAX_BATCH)


class ModifyWire(Strict):
    oid: Oid | str
    order: OrderWire


class ModifyAction(Strict):
    type: Literal["modify"]
    oid: Oid | str
    order: OrderWire


class BatchModifyAction(Strict):
    type: Literal["batchModify"]
    modifies: list[ModifyWire] = Field(min_length=1, max_length=MAX_BATCH)


class UpdateLeverageAction(Strict):
    type: Literal["updateLeverage"]
    asset: Asset
    isCross: StrictBool
    leverage: Annotated[StrictInt, Field(ge=1, le=1000)]


class UpdateIsolatedMarginAction(Strict):
    type: Literal["updateIsolatedMargin"]
    asset: Asset
    isBuy: StrictBool
    ntli: Annotated[StrictInt, Field(ge=-(10**15), le=10**15)]


class SetMarginModeAction(Strict):
    """Our extension: the account's cross positions in ``cross`` or ``portfolio`` margin
    (docs/risk.md, "Portfolio margin"). An L1 action like updateLeverage."""

    type: Literal["setMarginMode"]
    mode: Literal["cross", "portfolio"]


class ScheduleCancelAction(Strict):
    type: Literal["scheduleCancel"]
    time: Annotated[StrictInt, Field(ge=0, lt=2**63)] | None = None


class VaultTransferAction(Strict):
    """Deposit into or withdraw from a vault: ``usd`` is micro-USDC (the SDK's
    ``vault_usd_transfer`` sends an integer, 1 USDC = 1,000,000)."""

    type: Literal["vaultTransfer"]
    vaultAddress: str
    isDeposit: StrictBool
    usd: Annotated[StrictInt, Field(ge=1, lt=2**63)]


class UserSigned(Strict):
    signatureChainId: str
    hyperliquidChain: Literal["Mainnet", "Testnet"]


class ApproveAgentAction(UserSigned):
    type: Literal["approveAgent"]
    agentAddress: str
    agentName: str | None = None
    nonce: Annotated[StrictInt, Field(ge=0, lt=2**63)]


class UsdSendAction(UserSigned):
    type: Literal["usdSend"]
    destination: str
    amount: Decimal
    time: Annotated[StrictInt, Field(ge=0, lt=2**63)]


class WithdrawAction(UserSigned):
    type: Literal["withdraw3"]
    destination: str
    amount: Decimal
    time: Annotated[StrictInt, Field(ge=0, lt=2**63)]


Action = Annotated[
    OrderAction
    | CancelAction
    | CancelByCloidAction
    | ModifyAction
    | BatchModifyAction
    | UpdateLeverageAction
    | UpdateIsolatedMarginAction
    | SetMarginModeAction
    | ScheduleCancelAction
    | VaultTransferAction
    | ApproveAgentAction
    | UsdSendAction
    | WithdrawAction,
    Field(discriminator="type"),
]

USER_SIGNED = frozenset({"approveAgent", "usdSend", "withdraw3"})


class Envelope(BaseModel):
    """The /exchange body. ``action`` stays a raw dict: it is what was signed."""

    model_config = ConfigDict(extra="forbid")
    action: dict[str, Any]
    nonce: Annotated[StrictInt, Field(ge=0, lt=2**63)]
    signature: dict[str, Any]
    vaultAddress: str | None = None
    expiresAfter: Annotated[StrictInt, Field(ge=0, lt=2**63)] | None = None


class ActionModel(BaseModel):
    action: Action


class DepositRequest(Strict):
    """USDC (``usd``), or a collateral asset: ``asset`` (e.g. "BTC") and ``amount`` of
    it in coins (our extension, see docs/risk.md "Multi-asset collateral")."""

    user: str
    usd: Decimal | None = None
    asset: str | None = Field(None, max_length=20)
    amount: Decimal | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> DepositRequest:
        if (self.usd is None) == (self.asset is None) or (self.asset is None) != (
            self.amount is None
        ):
            raise ValueError("give either usd, or asset with amount")
        return self

    _norm = field_validator("user")(classmethod(lambda cls, v: normalize_address(v)))


class ConfigureMarketRequest(Strict):
    """Operator change of a listed market: ``changes`` in the market table's keys and
    units (config/markets.toml), for example ``{"taker_fee_ppm": 400,
    "min_order_usd": "20"}``."""

    coin: str
    changes: dict[str, Any]
    reason: str = Field("", max_length=500)


class MarketControlRequest(Strict):
    coin: str
    reason: str = Field("", max_length=500)
