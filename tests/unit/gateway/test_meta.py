"""meta and marginTable: every market's real leverage tiers, by Hyperliquid's table ids."""

from __future__ import annotations

from typing import Any

import pytest

from libs.common.markets import load_markets
from services.gateway.info import InfoApi, InfoError


def api() -> InfoApi:
    none: Any = None
    return InfoApi(none, none, load_markets(), none, lambda: 0)


async def test_meta_lists_each_market_on_its_tiered_table() -> None:
    meta = await api().answer({"type": "meta"})
    assert meta["universe"][0] == {
        "name": "BTC",
        "szDecimals": 5,
        "maxLeverage": 50,
        "marginTableId": 1000,
    }
    tables = dict(meta["marginTables"])
    assert sorted(tables) == [1000, 1001, 1002]
    assert tables[1000]["marginTiers"] == [
        {"lowerBound": "0.0", "maxLeverage": 50},
        {"lowerBound": "10000000.0", "maxLeverage": 20},
        {"lowerBound": "100000000.0", "maxLeverage": 10},
    ]
    assert tables[1002]["marginTiers"] == [
        {"lowerBound": "0.0", "maxLeverage": 20},
        {"lowerBound": "2000000.0", "maxLeverage": 10},
    ]


async def test_margin_table_answers_by_id_and_refuses_an_unknown_one() -> None:
    info = api()
    sol = await info.answer({"type": "marginTable", "id": 1002})
    assert sol["marginTiers"][1] == {"lowerBound": "2000000.0", "maxLeverage": 10}
    with pytest.raises(InfoError, match="unknown margin table id 7"):
        await info.answer({"type": "marginTable", "id": 7})
