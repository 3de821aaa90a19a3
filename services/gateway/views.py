"""The API's read shapes, computed from the hot state that risk keeps in Redis.

``clearinghouseState`` is rendered by the venue's shared margin code, so the gateway
shows exactly the numbers risk decides with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libs.common.margin import clearinghouse_state as render_clearinghouse_state
from libs.common.markets import MarketRegistry
from libs.common.state import AccountState


def clearinghouse_state(
    account: AccountState | None, marks: Mapping[str, int], markets: MarketRegistry, now_ms: int
) -> dict[str, Any]:
    """``clearinghouseState``: positions, margin summaries and withdrawable, as decimal
    strings (see ``libs.common.margin.clearinghouse_state``)."""
    return render_clearinghouse_state(account, marks, markets, now_ms)
