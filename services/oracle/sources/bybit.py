"""Bybit v5 public spot: the ``tickers.<symbol>`` topic.

Subscribes with ``{"op": "subscribe", "args": ["tickers.BTCUSDT"]}`` (at most 10 topics
per request on spot) and reads ``data.lastPrice``. The client sends ``{"op": "ping"}``
every 20 s; the spot server answers ``{"success": true, "ret_msg": "pong", "op": "ping"}``.
Subscription answers carry ``success`` and, on failure, the reason in ``ret_msg``.
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

TOPICS_PER_REQUEST = 10


class BybitProtocol(ExchangeProtocol):
    exchange = "bybit"
    default_url = "wss://stream.bybit.com/v5/public/spot"
    symbol_template = "{market}USDT"
    sends_pings = True

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        topics = [f"tickers.{s}" for s in symbols]
        return [
            dump_json({"op": "subscribe", "args": topics[i : i + TOPICS_PER_REQUEST]})
            for i in range(0, len(topics), TOPICS_PER_REQUEST)
        ]

    def ping(self) -> str:
        return dump_json({"op": "ping"})

    def parse(self, text: str) -> Frame:
        doc = load_json(text)
        if not isinstance(doc, dict):
            return Frame("malformed", detail=text[:200])
        topic = doc.get("topic")
        if isinstance(topic, str) and topic.startswith("tickers."):
            data = doc.get("data")
            if not isinstance(data, dict):
                return Frame("malformed", detail=text[:200])
            return prices_frame([(data.get("symbol"), data.get("lastPrice"))])
        op = doc.get("op")
        if op in ("ping", "pong") and (doc.get("ret_msg") == "pong" or op == "pong"):
            return Frame("pong")
        if op == "subscribe" or "success" in doc:
            if doc.get("success") is True:
                return Frame("ack", detail=str(doc.get("req_id", "")))
            return Frame("error", detail=str(doc.get("ret_msg", "request failed")))
        return Frame("info", detail=f"ignored message {text[:80]}")
