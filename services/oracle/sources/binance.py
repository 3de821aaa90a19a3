"""Binance spot: the ``<symbol>@ticker`` stream (24-hour rolling ticker, every second).

Subscribes with ``{"method": "SUBSCRIBE", "params": ["btcusdt@ticker"], "id": 1}`` on
``/ws`` and reads the last price ``c`` of ``24hrTicker`` events, raw or wrapped as a
combined stream (``{"stream": ..., "data": ...}``). Keep-alive is the server's WebSocket
ping frame (every 20 s), answered with a pong by the client. Answers to requests are
``{"result": null, "id": 1}``; errors are ``{"code": 2, "msg": "Invalid request: ..."}``.
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


class BinanceProtocol(ExchangeProtocol):
    exchange = "binance"
    default_url = "wss://stream.binance.com:9443/ws"
    symbol_template = "{market}USDT"

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        streams = [f"{s.lower()}@ticker" for s in symbols]
        return [dump_json({"method": "SUBSCRIBE", "params": streams, "id": 1})]

    def parse(self, text: str) -> Frame:
        doc = load_json(text)
        if not isinstance(doc, dict):
            return Frame("malformed", detail=text[:200])
        if isinstance(doc.get("data"), dict) and "stream" in doc:
            doc = doc["data"]
        event = doc.get("e")
        if event == "24hrTicker":
            return prices_frame([(doc.get("s"), doc.get("c"))])
        if "result" in doc and "id" in doc:
            return Frame("ack", detail=f"request {doc['id']}")
        if "code" in doc and "msg" in doc:
            return Frame("error", detail=f"{doc['code']}: {doc['msg']}")
        if isinstance(doc.get("error"), dict):
            err = doc["error"]
            return Frame("error", detail=f"{err.get('code')}: {err.get('msg')}")
        if event == "serverShutdown":
            return Frame("info", detail="server shutting down")
        return Frame("info", detail=f"ignored event {event!r}")
