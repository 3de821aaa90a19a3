"""The live adapters' shared loop: connect, subscribe, read frames, keep the connection
alive, and reconnect with exponential backoff when it drops or goes silent.

An exchange contributes only its protocol (``ExchangeProtocol``): the endpoint, the
subscribe and ping messages, and ``parse`` from one text frame to a ``Frame``. Parsing is
pure, so each adapter is tested offline against sample messages; the loop is tested
against a WebSocket server on loopback that drops connections.

Prices are stamped with the local receipt time (the staleness clock), not the exchange's
event time, so a skewed exchange clock cannot make a price look fresher than it is.
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Literal

import aiohttp
import msgspec

from libs.common.money import UnitError, parse_decimal
from services.oracle.config import WebSocketConfig
from services.oracle.sources.base import Clock, Emit, QuoteBatch, SourcePrice

log = logging.getLogger(__name__)

FrameKind = Literal["prices", "heartbeat", "ack", "pong", "error", "info", "malformed"]


class Frame(msgspec.Struct, frozen=True):
    """What one text frame meant: prices as (exchange symbol, price), or a control frame
    with a human-readable detail (the exchange's own error text for errors)."""

    kind: FrameKind
    prices: tuple[tuple[str, Decimal], ...] = ()
    detail: str = ""


_JSON = msgspec.json.Decoder(float_hook=Decimal)  # JSON numbers stay exact
_ENCODE = msgspec.json.Encoder()


def load_json(text: str) -> Any:
    """A frame's JSON with every number exact, or None if it is not JSON."""
    try:
        return _JSON.decode(text)
    except msgspec.DecodeError:
        return None


def dump_json(doc: Any) -> str:
    return _ENCODE.encode(doc).decode()


def price_of(value: Any) -> Decimal | None:
    """A positive finite price from a JSON string or number, else None."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        return None
    try:
        price = parse_decimal(value)
    except UnitError:
        return None
    return price if price > 0 else None


def prices_frame(pairs: Sequence[tuple[Any, Any]]) -> Frame:
    """A prices frame from (symbol, raw price) pairs; malformed if any pair is unusable."""
    out = []
    for symbol, raw in pairs:
        price = price_of(raw)
        if not isinstance(symbol, str) or price is None:
            return Frame("malformed", detail=f"no usable price for {symbol!r}: {raw!r}")
        out.append((symbol, price))
    return Frame("prices", tuple(out))


class ExchangeProtocol(ABC):
    """One exchange's public ticker stream, as messages in and out."""

    exchange: ClassVar[str]
    default_url: ClassVar[str]
    symbol_template: ClassVar[str]
    """How a market name becomes the exchange's symbol (``{market}`` is replaced)."""
    sends_pings: ClassVar[bool] = False
    """Whether the client must ping (``ping()``) to keep the connection open."""

    @abstractmethod
    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        """The text frames that subscribe to the ticker of ``symbols``."""

    @abstractmethod
    def parse(self, text: str) -> Frame:
        """What one text frame from the exchange means."""

    def ping(self) -> str | None:
        """An application-level ping to send periodically; None if the exchange relies
        on WebSocket ping frames (answered by the client automatically)."""
        return None


class Backoff:
    """Exponential backoff with jitter: the n-th retry waits between half and all of
    ``min(max, initial * 2**n)``; ``reset`` after a connection that delivered prices."""

    def __init__(self, initial_ms: int, max_ms: int, rng: random.Random) -> None:
        self.initial_ms = initial_ms
        self.max_ms = max_ms
        self.rng = rng
        self.attempt = 0

    def next_ms(self) -> int:
        ceiling: int = min(self.max_ms, self.initial_ms << min(self.attempt, 30))
        self.attempt += 1
        return ceiling // 2 + int(self.rng.random() * (ceiling - ceiling // 2))

    def reset(self) -> None:
        self.attempt = 0


class WebSocketFeed:
    """One source's live feed: a protocol over a reconnecting WebSocket connection."""

    def __init__(
        self,
        source: str,
        protocol: ExchangeProtocol,
        symbols: Mapping[str, str],
        config: WebSocketConfig,
        clock: Clock,
        *,
        url: str = "",
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.protocol = protocol
        self.url = url or protocol.default_url
        self.markets_by_symbol = {symbol: market for market, symbol in symbols.items()}
        self.config = config
        self.clock = clock
        self.backoff = Backoff(
            config.backoff_initial_ms, config.backoff_max_ms, rng or random.Random(source)
        )
        self.connections = 0
        self.frames: Counter[str] = Counter()
        self.last_error = ""

    @property
    def name(self) -> str:
        return self.source

    async def run(self, emit: Emit) -> None:
        """Connect and read until cancelled; every drop is followed by a backoff wait."""
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.config.connect_timeout_ms / 1000
        )
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                delivered = False
                try:
                    delivered = await self._connection(session, emit)
                    reason = "closed by the server"
                except TimeoutError:
                    reason = f"silent for {self.config.idle_timeout_ms} ms"
                except (aiohttp.ClientError, OSError) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                if delivered:
                    self.backoff.reset()
                delay = self.backoff.next_ms()
                log.warning(
                    "price feed disconnected",
                    extra={"source": self.source, "reason": reason, "retry_ms": delay},
                )
                await asyncio.sleep(delay / 1000)

    async def _connection(self, session: aiohttp.ClientSession, emit: Emit) -> bool:
        """One connection's life; True if it delivered at least one price."""
        delivered = False
        async with session.ws_connect(
            self.url, autoping=True, timeout=aiohttp.ClientWSTimeout(ws_close=5.0)
        ) as ws:
            self.connections += 1
            log.info("price feed connected", extra={"source": self.source, "url": self.url})
            for text in self.protocol.subscribe(sorted(self.markets_by_symbol)):
                await ws.send_str(text)
            pinger = asyncio.create_task(self._ping(ws)) if self.protocol.sends_pings else None
            try:
                idle = self.config.idle_timeout_ms / 1000
                while True:
                    msg = await ws.receive(timeout=idle)
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        delivered |= self._frame(msg.data, emit)
                    elif msg.type is aiohttp.WSMsgType.BINARY:
                        delivered |= self._frame(msg.data.decode("utf-8", "replace"), emit)
                    elif msg.type is aiohttp.WSMsgType.ERROR:
                        raise aiohttp.ClientError(str(ws.exception()))
                    elif msg.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED,
                    ):
                        return delivered
            finally:
                if pinger is not None:
                    pinger.cancel()

    def _frame(self, text: str, emit: Emit) -> bool:
        try:
            frame = self.protocol.parse(text)
        except Exception as exc:  # one odd frame must not end the feed
            log.exception("price feed frame not understood", extra={"source": self.source})
            frame = Frame("malformed", detail=f"{type(exc).__name__}: {text[:200]}")
        self.frames[frame.kind] += 1
        if frame.kind == "prices":
            now = self.clock()
            prices = tuple(
                SourcePrice(ts=now, source=self.source, market=market, price=price)
                for symbol, price in frame.prices
                if (market := self.markets_by_symbol.get(symbol)) is not None
            )
            if prices:
                emit(QuoteBatch(now=now, prices=prices))
                return True
        elif frame.kind in ("error", "malformed"):
            self.last_error = frame.detail
            log.warning(
                "price feed error frame",
                extra={"source": self.source, "kind": frame.kind, "detail": frame.detail},
            )
        return False

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            await asyncio.sleep(self.config.ping_interval_ms / 1000)
            text = self.protocol.ping()
            if text is None or ws.closed:
                return
            await ws.send_str(text)
