"""The API's read shapes, computed from the hot state that risk keeps in Redis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libs.common.markets import MarketRegistry
from libs.common.money import div_ceil, format_ratio, format_usd
from libs.common.state import AccountState


def clearinghouse_state(
    account: AccountState | None, marks: Mapping[str, int], markets: MarketRegistry, now_ms: int
) -> dict[str, Any]:
    """``clearinghouseState``: positions, margin summary and withdrawable, as decimal strings."""
    collateral = account.collateral if account else 0
    positions = []
    equity = collateral
    total_ntl = margin_used = maintenance = 0
    holds = account.holds if account else 0
    for name, pos in sorted(account.positions.items()) if account else []:
        if pos.szi == 0:
            continue
        spec = markets.by_name(name)
        size = abs(pos.szi)
        mark = marks.get(name)
        value = size * mark if mark else pos.entry_ntl  # no mark yet: valued at cost
        upnl = value - pos.entry_ntl if pos.szi > 0 else pos.entry_ntl - value
        leverage = pos.leverage or spec.default_leverage
        used = div_ceil(value, leverage)
        equity += upnl
        total_ntl += value
        margin_used += used
        maintenance += div_ceil(value, 2 * spec.max_leverage)
        positions.append(
            {
                "type": "oneWay",
                "position": {
                    "coin": name,
                    "szi": spec.format_size(pos.szi),
                    "entryPx": format_ratio(pos.entry_ntl, size, spec.px_decimals),
                    "positionValue": format_usd(value),
                    "unrealizedPnl": format_usd(upnl),
                    "returnOnEquity": format_ratio(upnl * leverage, pos.entry_ntl, 0)
                    if pos.entry_ntl
                    else "0.0",
                    "leverage": {"type": "cross", "value": leverage},
                    "marginUsed": format_usd(used),
                    "maxLeverage": spec.max_leverage,
                    "liquidationPx": None,
                    "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"},
                },
            }
        )
    withdrawable = max(0, equity - max(margin_used, div_ceil(total_ntl, 10)) - holds)
    summary = {
        "accountValue": format_usd(equity),
        "totalNtlPos": format_usd(total_ntl),
        "totalRawUsd": format_usd(collateral),
        "totalMarginUsed": format_usd(margin_used),
    }
    return {
        "assetPositions": positions,
        "marginSummary": summary,
        "crossMarginSummary": dict(summary),
        "crossMaintenanceMarginUsed": format_usd(maintenance),
        "withdrawable": format_usd(withdrawable),
        "time": now_ms,
    }
