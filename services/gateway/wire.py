"""Request models of the public API, validated at the edge (pydantic)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ADDRESS = re.compile(r"^0x[0-9a-f]{40}$")


def normalize_address(value: str) -> str:
    value = value.lower()
    if not ADDRESS.match(value):
        raise ValueError("address must be 0x followed by 40 hex digits")
    return value


class LimitSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tif: Literal["Gtc", "Ioc", "Alo"]


class OrderType(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: LimitSpec


class OrderWire(BaseModel):
    """One order as the SDK sends it: asset, side, price and size strings, reduce-only."""

    model_config = ConfigDict(extra="forbid")
    a: Annotated[int, Field(ge=0)]
    b: bool
    p: str
    s: str
    r: bool = False
    t: OrderType
    c: str | None = None

    @field_validator("c")
    @classmethod
    def _cloid(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"0x[0-9a-fA-F]{32}", v):
            raise ValueError("cloid must be 0x followed by 32 hex digits")
        return v.lower() if v else v


class OrderAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["order"]
    orders: list[OrderWire] = Field(min_length=1, max_length=100)
    grouping: Literal["na"] = "na"


class CancelWire(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: Annotated[int, Field(ge=0)]
    o: Annotated[int, Field(ge=0)]


class CancelAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["cancel"]
    cancels: list[CancelWire] = Field(min_length=1, max_length=100)


class ExchangeRequest(BaseModel):
    """The /exchange envelope. Until signatures land (#7) the signer is named in ``account``."""

    action: Annotated[OrderAction | CancelAction, Field(discriminator="type")]
    nonce: int
    account: str
    signature: dict[str, Any] | None = None
    vaultAddress: str | None = None
    expiresAfter: int | None = None

    _norm = field_validator("account")(classmethod(lambda cls, v: normalize_address(v)))


class DepositRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str
    usd: str

    _norm = field_validator("user")(classmethod(lambda cls, v: normalize_address(v)))
