"""The risk dashboard's reads: ``venueState`` and ``whatIf`` (our extensions to /info),
and the page itself (static files served at GET /dashboard).

``whatIf`` values an account at prices the caller picks (explicit prices per market, a
named scenario of the portfolio-margin grid, or both: the scenario first, then the
prices) with ``libs.common.valuation``, the formulas and trigger rule risk decides with.
Prices are decimal strings in the market's ticks; answers are decimal strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from aiohttp import web

from libs.common.collateral import VALID, oracle_prices
from libs.common.markets import MarketRegistry, MarketSpec
from libs.common.money import UnitError, format_ppb, format_ratio, format_usd, to_units
from libs.common.state import AccountState, MarketContext, MarkState
from libs.common.valuation import AccountValue, account_value, scenario_marks, scenario_names

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {
    "dashboard.js": "application/javascript",
    "dashboard.css": "text/css",
}
MAX_PRICES = 64


class WhatIfError(ValueError):
    """A what-if request that cannot be answered; the message is shown to the client."""


def _usd(micro: int) -> str:
    return format_usd(micro) if micro else "0.0"


def _px(spec: MarketSpec, ticks: int) -> str:
    return spec.format_price(ticks) if ticks else "0.0"


def _fraction_px(spec: MarketSpec, px: Fraction | None) -> str | None:
    if px is None:
        return None
    text = format_ratio(px.numerator, px.denominator, spec.px_decimals)
    return "0.0" if text in ("0", "0.0") else text


def parse_price(spec: MarketSpec, raw: Any) -> int:
    """A what-if price: a positive decimal string (or integer) on the market's tick."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise WhatIfError(f"price of {spec.name} must be a decimal string, got {raw!r}")
    try:
        ticks = to_units(raw, spec.px_decimals, what=f"price of {spec.name}")
    except UnitError as exc:
        raise WhatIfError(str(exc)) from None
    if ticks <= 0:
        raise WhatIfError(f"price of {spec.name} must be positive, got {raw!r}")
    return ticks


def what_if_marks(
    body: Mapping[str, Any], markets: MarketRegistry, marks: Mapping[str, int]
) -> tuple[dict[str, int], str | None]:
    """The marks a what-if values at: the current ones, moved by ``scenario`` (if any),
    then set by ``prices`` (if any). Refuses unknown markets, scenarios and bad prices."""
    moved = dict(marks)
    scenario = body.get("scenario")
    if scenario is not None:
        if not isinstance(scenario, str):
            raise WhatIfError("scenario must be a scenario name (see venueState.scenarios)")
        try:
            moved = scenario_marks(moved, markets, scenario)
        except ValueError as exc:
            raise WhatIfError(str(exc)) from None
    prices = body.get("prices", {})
    if not isinstance(prices, dict):
        raise WhatIfError('prices must be an object of market to price, e.g. {"BTC": "90000"}')
    if len(prices) > MAX_PRICES:
        raise WhatIfError(f"at most {MAX_PRICES} prices")
    for name, raw in prices.items():
        if name not in markets.names:
            raise WhatIfError(f"unknown market {name!r}")
        moved[name] = parse_price(markets.by_name(name), raw)
    return moved, scenario


def what_if_prices(
    states: Mapping[str, MarkState], marks: Mapping[str, int]
) -> dict[str, tuple[int, bool]]:
    """Oracle prices (and validity) for valuing collateral assets: risk's own, except
    where the what-if moves a market's mark, whose asset then moves to the same price."""
    prices = oracle_prices(states)
    for name, px in marks.items():
        state = states.get(name)
        if state is None or px != state.mark_px:
            prices[name] = (px, state is None or state.oracle_status == VALID)
    return prices


def distance_pct(szi: int, mark: int, liquidation: Fraction | None) -> str | None:
    """How far the mark may move against the position before liquidation, percent of
    the mark (negative once past it)."""
    if liquidation is None or not mark:
        return None
    gap = (mark - liquidation) if szi > 0 else (liquidation - mark)
    share = gap * 100 / mark
    return format_ratio(share.numerator, share.denominator, 0)


def what_if_document(
    user: str,
    valued: AccountValue,
    marks: Mapping[str, int],
    markets: MarketRegistry,
    scenario: str | None,
    now_ms: int,
) -> dict[str, Any]:
    positions = []
    for p in valued.positions:
        spec = p.spec
        positions.append(
            {
                "coin": spec.name,
                "szi": spec.format_size(p.szi),
                "marginType": "cross" if p.is_cross else "isolated",
                "markPx": _px(spec, p.mark_px),
                "entryPx": format_ratio(p.entry_ntl, abs(p.szi), spec.px_decimals),
                "positionValue": _usd(p.value),
                "unrealizedPnl": _usd(p.upnl),
                "maintenanceMargin": _usd(p.maintenance_own),
                "liquidationPx": _fraction_px(spec, p.liquidation_px),
                "liquidationDistancePct": distance_pct(p.szi, p.mark_px, p.liquidation_px),
                "equity": _usd(p.equity),
                "requirement": _usd(p.maintenance),
                "liquidated": p.liquidated,
            }
        )
    return {
        "user": user,
        "scenario": scenario,
        "marks": {
            spec.name: _px(spec, marks[spec.name]) for spec in markets if marks.get(spec.name)
        },
        "accountValue": _usd(valued.account_value),
        "crossAccountValue": _usd(valued.equity),
        "initialMargin": _usd(valued.initial),
        "maintenanceMargin": _usd(valued.maintenance),
        "marginUsed": _usd(valued.margin_used),
        "withdrawable": _usd(valued.withdrawable),
        "liquidated": valued.liquidated,
        "positions": positions,
        "time": now_ms,
    }


def what_if(
    user: str,
    body: Mapping[str, Any],
    account: AccountState | None,
    states: Mapping[str, MarkState],
    markets: MarketRegistry,
    now_ms: int,
) -> dict[str, Any]:
    """The ``whatIf`` answer for an account and risk's market states."""
    current = {name: state.mark_px for name, state in states.items()}
    marks, scenario = what_if_marks(body, markets, current)
    valued = account_value(account, marks, markets, what_if_prices(states, marks))
    return what_if_document(user, valued, marks, markets, scenario, now_ms)


def venue_document(
    markets: MarketRegistry,
    contexts: Mapping[str, MarketContext],
    funds: Mapping[str, tuple[str, AccountValue]],
    now_ms: int,
) -> dict[str, Any]:
    """``venueState``: every market's prices, oracle validity, funding and open interest,
    the venue's funds at mark, and the what-if scenarios."""
    rows = []
    for spec in markets:
        ctx = contexts.get(spec.name) or MarketContext(market=spec.name)
        rows.append(
            {
                "coin": spec.name,
                "oraclePx": _px(spec, ctx.index_px),
                "markPx": _px(spec, ctx.mark_px),
                "lastPx": _px(spec, ctx.last_px),
                "midPx": _px(spec, ctx.mid_px),
                "oracleStatus": ctx.oracle_status,
                "state": ctx.state,
                "funding": format_ppb(ctx.funding_rate_ppb),
                "openInterest": spec.format_size(ctx.open_interest) if ctx.open_interest else "0.0",
            }
        )
    return {
        "markets": rows,
        **{
            name: {
                "address": address,
                "accountValue": _usd(valued.account_value),
                "withdrawable": _usd(valued.withdrawable),
            }
            for name, (address, valued) in funds.items()
        },
        "scenarios": scenario_names(markets),
        "time": now_ms,
    }


async def page(request: web.Request) -> web.StreamResponse:
    """GET /dashboard: the page (no build step, no outside assets)."""
    return web.FileResponse(STATIC / "dashboard.html", headers={"Cache-Control": "no-cache"})


async def asset(request: web.Request) -> web.StreamResponse:
    """GET /dashboard/<file>: the page's script and stylesheet, nothing else."""
    name = request.match_info["name"]
    kind = ASSETS.get(name)
    if kind is None:
        raise web.HTTPNotFound(text=f"no dashboard asset {name!r}")
    return web.FileResponse(
        STATIC / name, headers={"Content-Type": kind, "Cache-Control": "no-cache"}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard", page)
    app.router.add_get("/dashboard/{name}", asset)


__all__ = [
    "WhatIfError",
    "add_routes",
    "distance_pct",
    "parse_price",
    "venue_document",
    "what_if",
    "what_if_document",
    "what_if_marks",
    "what_if_prices",
]
