"""Pre-trade checks: what refuses an order before it reaches the matcher.

Each check returns the API status and the reason a client sees, or None. The margin
check itself (the order's hold against the account's free margin) lives in the engine,
which reprices the holds with the order in place (``services.risk.holds``).
"""

from __future__ import annotations

from typing import NamedTuple

from libs.common.markets import MarketSpec
from libs.common.schemas import OrderIntent, PlaceOrder
from libs.common.state import ORDER_SLOTS, AccountState, MarkState

PPM = 1_000_000


class Refusal(NamedTuple):
    status: str
    error: str


def _asset(spec: MarketSpec) -> str:
    return f"asset={spec.asset}"


INVALID = "Order has invalid price or size."


def shape_error(msg: PlaceOrder, spec: MarketSpec) -> Refusal | None:
    """Sizes, prices, trigger terms and TP/SL children that cannot make an order."""
    is_market = msg.kind == "market" or (msg.kind == "trigger" and msg.trigger_is_market)
    if msg.sz <= 0 or msg.px < 0 or (msg.px == 0 and not is_market):
        return Refusal("rejected", INVALID)
    if msg.kind == "trigger" and msg.trigger_px <= 0:
        return Refusal("rejected", "Trigger order needs a positive trigger price.")
    if msg.grouping == "positionTpsl" and msg.kind != "trigger":
        return Refusal("rejected", "Position TP/SL orders must be trigger orders.")
    if msg.children:
        if msg.grouping != "normalTpsl":
            return Refusal("rejected", "TP/SL children need the normalTpsl grouping.")
        if len(msg.children) >= ORDER_SLOTS:
            return Refusal("rejected", f"At most {ORDER_SLOTS - 1} TP/SL orders per order.")
        for child in msg.children:
            refusal = _child_error(child, msg.is_buy)
            if refusal is not None:
                return refusal
    return None


def _child_error(child: OrderIntent, parent_is_buy: bool) -> Refusal | None:
    if child.sz <= 0 or child.px < 0 or (child.px == 0 and not child.trigger_is_market):
        return Refusal("rejected", INVALID)
    if child.trigger_px <= 0:
        return Refusal("rejected", "Trigger order needs a positive trigger price.")
    if child.is_buy == parent_is_buy:
        return Refusal("rejected", "A TP/SL order must close its parent: the other side.")
    return None


def market_price(msg: PlaceOrder, spec: MarketSpec, mark: int) -> int | Refusal:
    """The price an order is valued at before the mark: its limit, or for a market order
    without one the mark (a trigger's trigger price) moved by its slippage, as the
    matcher will bound it."""
    if msg.px:
        return msg.px
    if msg.kind == "trigger":
        mark = msg.trigger_px
    if not mark:
        return Refusal(
            "marketOrderNoLiquidityRejected",
            f"No reference price for a market order. {_asset(spec)}",
        )
    move = mark * (msg.slippage_ppm or spec.market_slippage_ppm) // PPM
    return mark + move if msg.is_buy else max(1, mark - move)


def min_notional_error(spec: MarketSpec, px: int, sz: int, mark: int) -> Refusal | None:
    """An order (that can add exposure) worth less than the market's minimum at the
    mark, or at its price while there is no mark."""
    if (mark or px) * sz < spec.min_order_usd:
        return Refusal(
            "minTradeNtlRejected",
            f"Order must have minimum value of ${spec.min_order_usd // 1_000_000}.",
        )
    return None


def reduce_only_error(szi: int, is_buy: bool) -> Refusal | None:
    """A reduce-only order needs a position on the other side."""
    if szi == 0 or (szi > 0) == is_buy:
        return Refusal("reduceOnlyRejected", "Reduce only order would increase position.")
    return None


def limit_error(
    acct: AccountState,
    spec: MarketSpec,
    is_buy: bool,
    sz: int,
    hold_px: int,
    mark: MarkState | None,
    exclude_oid: int = 0,
) -> Refusal | None:
    """The market's position and open-interest limits for an order that can add
    exposure. The position counts every resting order on the same side as filled (the
    worst case); open interest is the market's, as the matcher last reported it."""
    market = spec.name
    pos = acct.positions.get(market)
    szi = pos.szi if pos else 0
    same_side = 0
    for order in acct.orders.values():
        if (
            order.market == market
            and order.is_buy == is_buy
            and not order.reduce_only
            and order.oid != exclude_oid
        ):
            same_side += order.sz
    sign = 1 if is_buy else -1
    reducible = abs(szi) if szi and (szi > 0) != is_buy else 0
    opening = max(0, same_side + sz - reducible) if reducible else sz
    if opening == 0:
        return None
    if spec.max_position_usd:
        worst = abs(szi + sign * (same_side + sz))
        if worst * hold_px > spec.max_position_usd:
            cap = spec.max_position_usd // 1_000_000
            return Refusal(
                "perpMaxPositionRejected",
                f"Order would take the position past the maximum of ${cap}. {_asset(spec)}",
            )
    if spec.open_interest_cap and mark is not None:
        added = min(opening, sz)
        if (mark.open_interest + added) * (mark.mark_px or hold_px) > spec.open_interest_cap:
            return Refusal(
                "openInterestIncreaseRejected",
                "Cannot increase position when open interest is at cap. " + _asset(spec),
            )
    return None


def margin_refusal(spec: MarketSpec) -> Refusal:
    return Refusal("perpMarginRejected", f"Insufficient margin to place order. {_asset(spec)}")
