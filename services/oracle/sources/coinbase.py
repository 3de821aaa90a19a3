"""Coinbase Exchange: the ``ticker`` channel of the public WebSocket feed.

Subscribes with ``{"type": "subscribe", "product_ids": ["BTC-USD"], "channels":
["ticker", "heartbeat"]}`` and reads ``price`` of ``ticker`` messages. The ``heartbeat``
channel sends one message per product every second, which keeps the connection (and
the idle timer) alive. The server confirms with a ``subscriptions`` message and reports
problems as ``{"type": "error", "message": ..., "reason": ...}``.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.oracle.sources.websocket import (
    ExchangeProtocol,
    Frame,
    dump_json,
    load_json,
    prices_frame,
)


class CoinbaseProtocol(ExchangeProtocol):
    exchange = "coinbase"
    default_url = "wss://ws-feed.exchange.coinbase.com"
    symbol_template = "{market}-USD"

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        return [
            dump_json(
                {
                    "type": "subscribe",
                    "product_ids": list(symbols),
                    "channels": ["ticker", "heartbeat"],
                }
            )
        ]

    def parse(self, text: str) -> Frame:
        doc = load_json(text)
        if not isinstance(doc, dict):
            return Frame("malformed", detail=text[:200])
        kind = doc.get("type")
        if kind == "ticker":
            return prices_frame([(doc.get("product_id"), doc.get("price"))])
        if kind == "heartbeat":
            return Frame("heartbeat", detail=str(doc.get("product_id", "")))
        if kind == "subscriptions":
            return Frame("ack", detail=str(doc.get("channels", "")))
        if kind == "error":
            reason = doc.get("reason")
            detail = str(doc.get("message", "error"))
            return Frame("error", detail=f"{detail}: {reason}" if reason else detail)
        return Frame("info", detail=f"ignored type {kind!r}")
