"""OKX v5 public: the ``tickers`` channel.

Subscribes with ``{"op": "subscribe", "args": [{"channel": "tickers", "instId":
"BTC-USDT"}]}`` and reads ``last`` from each entry of ``data``. The connection closes
after 30 s without traffic, so the client sends the text ``ping`` and the server answers
``pong``. Acknowledgements are ``{"event": "subscribe", ...}``; errors are ``{"event":
"error", "code": "60012", "msg": ...}``; ``notice`` events announce disconnections.
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


class OkxProtocol(ExchangeProtocol):
    exchange = "okx"
    default_url = "wss://ws.okx.com:8443/ws/v5/public"
    symbol_template = "{market}-USDT"
    sends_pings = True

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        args = [{"channel": "tickers", "instId": s} for s in symbols]
        return [dump_json({"op": "subscribe", "args": args})]

    def ping(self) -> str:
        return "ping"

    def parse(self, text: str) -> Frame:
        if text == "pong":
            return Frame("pong")
        doc = load_json(text)
        if not isinstance(doc, dict):
            return Frame("malformed", detail=text[:200])
        event = doc.get("event")
        if event == "subscribe":
            return Frame("ack", detail=str(doc.get("arg")))
        if event == "error":
            return Frame("error", detail=f"{doc.get('code')}: {doc.get('msg')}")
        if event is not None:
            return Frame("info", detail=f"{event} {doc.get('code', '')}: {doc.get('msg', '')}")
        arg = doc.get("arg")
        data = doc.get("data")
        if isinstance(arg, dict) and arg.get("channel") == "tickers" and isinstance(data, list):
            entries = [d for d in data if isinstance(d, dict)]
            if len(entries) != len(data) or not entries:
                return Frame("malformed", detail=text[:200])
            return prices_frame([(d.get("instId"), d.get("last")) for d in entries])
        return Frame("info", detail=f"ignored message {text[:80]}")
