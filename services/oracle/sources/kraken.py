"""Kraken spot WebSocket v2: the ``ticker`` channel.

Subscribes with ``{"method": "subscribe", "params": {"channel": "ticker", "symbol":
["BTC/USD"]}}`` and reads ``last`` of each entry of ``data`` in ``snapshot`` and
``update`` messages. Prices come as JSON numbers, read exactly (never through float).
The server sends ``{"channel": "heartbeat"}`` about once a second when idle; the client
may ping with ``{"method": "ping", "req_id": n}`` and gets ``{"method": "pong", ...}``.
Request answers carry ``success``, with ``error`` when it is false.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from services.oracle.sources.websocket import (
    ExchangeProtocol,
    Frame,
    dump_json,
    load_json,
    prices_frame,
)


class KrakenProtocol(ExchangeProtocol):
    exchange = "kraken"
    default_url = "wss://ws.kraken.com/v2"
    symbol_template = "{market}/USD"
    sends_pings = True

    def __init__(self) -> None:
        self._req_ids = itertools.count(1)

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        params = {"channel": "ticker", "symbol": list(symbols)}
        return [dump_json({"method": "subscribe", "params": params})]

    def ping(self) -> str:
        return dump_json({"method": "ping", "req_id": next(self._req_ids)})

    def parse(self, text: str) -> Frame:
        doc = load_json(text)
        if not isinstance(doc, dict):
            return Frame("malformed", detail=text[:200])
        channel = doc.get("channel")
        if channel == "heartbeat":
            return Frame("heartbeat")
        if channel == "ticker":
            data = doc.get("data")
            if not isinstance(data, list) or not data:
                return Frame("malformed", detail=text[:200])
            entries = [d for d in data if isinstance(d, dict)]
            if len(entries) != len(data):
                return Frame("malformed", detail=text[:200])
            return prices_frame([(d.get("symbol"), d.get("last")) for d in entries])
        if channel == "status":
            return Frame("info", detail=str(doc.get("data", "")))
        method = doc.get("method")
        if method == "pong":
            return Frame("pong")
        if "success" in doc:
            if doc.get("success") is True:
                return Frame("ack", detail=str(doc.get("result", "")))
            return Frame("error", detail=str(doc.get("error", "request failed")))
        if "error" in doc:
            return Frame("error", detail=str(doc["error"]))
        return Frame("info", detail=f"ignored message {text[:80]}")
