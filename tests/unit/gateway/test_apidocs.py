"""The committed API documents are exactly what the code generates."""

from __future__ import annotations

import json

from services.gateway.apidocs import OUT, render


def test_committed_api_documents_match_the_code() -> None:
    for name, text in render().items():
        committed = (OUT / name).read_text()
        assert committed == text, (
            f"docs/api/{name} is stale: run python -m services.gateway.apidocs"
        )


def test_the_documents_cover_every_action_and_public_topic() -> None:
    docs = {name: json.loads(text) for name, text in render().items()}
    actions = docs["openapi.json"]["components"]["schemas"]["Action"]["discriminator"]["mapping"]
    assert set(actions) == {
        "order",
        "cancel",
        "cancelByCloid",
        "modify",
        "batchModify",
        "updateLeverage",
        "updateIsolatedMargin",
        "setMarginMode",
        "scheduleCancel",
        "approveAgent",
        "usdSend",
        "withdraw3",
        "vaultTransfer",
    }
    channels = docs["asyncapi.json"]["channels"]
    assert {"market.events", "account.events", "oracle.prices", "liquidation.audit"} <= set(
        channels
    )
    trade = docs["asyncapi.json"]["components"]["schemas"]["Trade"]
    assert {"px", "sz", "buyer", "seller", "tid"} <= set(trade["properties"])
