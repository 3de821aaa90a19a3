"""Versioned schemas of every message on every topic.

Each message is a frozen msgspec struct, encoded as MessagePack with a ``type`` tag
that carries the schema version (``"place_order.v1"``). Compatible growth adds fields
with defaults under the same tag (old readers ignore them, new readers fill defaults);
an incompatible change gets a new tag (``.v2``) that consumers decode side by side.

Units: ``usd`` fields are micro-USDC; ``px`` fields are integer ticks of the market's
``10**-(6 - sz_decimals)`` USDC; ``sz`` fields are integer lots of ``10**-sz_decimals``
coins (see ``config/markets.toml``). Times are event times in epoch milliseconds.
A record's deterministic id travels in its ``id`` header (see ``libs.common.runtime``).
"""

from __future__ import annotations

from typing import Literal

import msgspec

Tif = Literal["Gtc", "Ioc", "Alo"]


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every bus message; ``ts`` is the event time that state machines read."""

    ts: int


# ---------------------------------------------------------------- risk.in


class Deposit(Message, frozen=True, tag="deposit.v1"):
    account: str
    usd: int
    req_id: str = ""


class Withdraw(Message, frozen=True, tag="withdraw.v1"):
    account: str
    usd: int
    req_id: str = ""


class PlaceOrder(Message, frozen=True, tag="place_order.v1"):
    """A user's order as validated by the gateway (units already checked)."""

    account: str
    market: str
    is_buy: bool
    px: int
    sz: int
    tif: Tif = "Gtc"
    reduce_only: bool = False
    cloid: str | None = None
    req_id: str = ""


class CancelOrder(Message, frozen=True, tag="cancel_order.v1"):
    account: str
    market: str
    oid: int
    req_id: str = ""


class FillLeg(Message, frozen=True, tag="fill_leg.v1"):
    """One side of a trade, from the matcher to the account's risk partition."""

    account: str
    market: str
    oid: int
    is_buy: bool
    px: int
    sz: int
    is_maker: bool
    tid: int
    order_closed: bool


class OrderResult(Message, frozen=True, tag="order_result.v1"):
    """The matcher's outcome for an order: resting, filled, or closed with a reason."""

    account: str
    market: str
    oid: int
    status: str
    filled_sz: int
    resting_sz: int
    filled_ntl: int = 0
    error: str | None = None
    req_id: str = ""
    cloid: str | None = None


class MarkUpdate(Message, frozen=True, tag="mark_update.v1"):
    """The mark price, broadcast by the market's matcher to every risk partition."""

    market: str
    mark_px: int
    index_px: int


RiskIn = Deposit | Withdraw | PlaceOrder | CancelOrder | FillLeg | OrderResult | MarkUpdate


# ---------------------------------------------------------------- matcher.in


class NewOrder(Message, frozen=True, tag="new_order.v1"):
    """An order risk accepted (its hold is reserved), for the market's book."""

    oid: int
    account: str
    market: str
    is_buy: bool
    px: int
    sz: int
    tif: Tif = "Gtc"
    reduce_only: bool = False
    cloid: str | None = None
    req_id: str = ""


class CancelRequest(Message, frozen=True, tag="cancel_request.v1"):
    oid: int
    account: str
    market: str
    req_id: str = ""


class SourceQuote(msgspec.Struct, frozen=True, kw_only=True):
    """One source's contribution to an index price."""

    source: str
    px: int
    weight: int
    age_ms: int


class IndexTick(Message, frozen=True, tag="index_tick.v1"):
    """The oracle's index price for a market, with its validity.

    ``status`` is one of ``valid``, ``stale``, ``insufficient_sources``, ``too_volatile``,
    ``halted``; while it is not ``valid`` the price is the last valid one and the
    matcher lets orders only reduce positions, and risk does not liquidate on it.
    """

    market: str
    px: int
    status: str = "valid"
    sources: tuple[SourceQuote, ...] = ()


MatcherIn = NewOrder | CancelRequest | IndexTick


# ---------------------------------------------------------------- account.events


class OrderUpdate(Message, frozen=True, tag="order_update.v1"):
    """What a client sees of its order: the API status plus the request it answers."""

    account: str
    market: str
    oid: int | None
    status: str
    filled_sz: int = 0
    resting_sz: int = 0
    filled_ntl: int = 0
    error: str | None = None
    req_id: str = ""
    cloid: str | None = None


class AccountFill(Message, frozen=True, tag="account_fill.v1"):
    account: str
    market: str
    oid: int
    is_buy: bool
    px: int
    sz: int
    fee: int
    is_maker: bool
    tid: int
    closed_pnl: int
    start_position: int


class BalanceUpdate(Message, frozen=True, tag="balance_update.v1"):
    account: str
    collateral: int
    delta: int
    reason: str
    req_id: str = ""
    error: str | None = None


AccountEvent = OrderUpdate | AccountFill | BalanceUpdate


# ---------------------------------------------------------------- market.events


class Trade(Message, frozen=True, tag="trade.v1"):
    market: str
    px: int
    sz: int
    taker_is_buy: bool
    buyer: str
    seller: str
    tid: int


class MarkPrice(Message, frozen=True, tag="mark_price.v1"):
    market: str
    mark_px: int
    index_px: int


MarketEvent = Trade | MarkPrice


# ---------------------------------------------------------------- oracle.prices


class OraclePrice(Message, frozen=True, tag="oracle_price.v1"):
    """The public index price record: price, validity and who contributed (weights)."""

    market: str
    px: int
    status: str
    sources: tuple[SourceQuote, ...] = ()
    reason: str = ""


class OracleOverride(Message, frozen=True, tag="oracle_override.v1"):
    """An operator's freeze, release or set-price of a market's index, for audit."""

    market: str
    action: str
    px: int = 0
    operator: str = ""
    reason: str = ""


OracleEvent = OraclePrice | OracleOverride


# ---------------------------------------------------------------- liquidations, audit


class LiquidationTrigger(Message, frozen=True, tag="liquidation_trigger.v1"):
    """Risk found an account below maintenance: equity and requirement in micro-USDC."""

    account: str
    equity: int
    maintenance: int


class LiquidationStep(Message, frozen=True, tag="liquidation_step.v1"):
    account: str
    stage: str
    detail: str


# ---------------------------------------------------------------- dead letters


class DeadLetter(Message, frozen=True, tag="dead_letter.v1"):
    """An input record that could not be decoded or applied, kept with its bytes."""

    topic: str
    partition: int
    offset: int
    error: str
    payload: bytes
