"""WebSocket /ws: Hyperliquid's subscription protocol over the gateway's live feed.

Each client has a bounded outbound queue drained by its own writer task; a client
whose queue fills up is disconnected, so one slow reader never delays the others.
Book, mid, context and account snapshots are read from Redis and pushed at most every
``FLUSH_S`` per key, so a burst of deltas costs one message per subscriber. Candles come
from the marketdata service's Redis sets: a trade marks its market's candle keys, and every
``CANDLE_POLL_S`` all subscribed candle keys are re-read (the service writes after the
trade is seen here); a candle is pushed only when it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from libs.common import topics
from libs.common.markets import MarketRegistry
from libs.common.money import UnitError, format_usd
from libs.common.schemas import (
    CANDLE_INTERVALS,
    AccountFill,
    BookDelta,
    FundingPayment,
    FundingRate,
    LiquidationStep,
    MarginCall,
    MarkPrice,
    OrderUpdate,
    Trade,
)
from services.gateway.exchange import ExchangeApi, ExchangeError
from services.gateway.history import History, rate
from services.gateway.info import InfoApi, InfoError
from services.gateway.ratelimit import RateLimited
from services.gateway.wire import normalize_address

log = logging.getLogger(__name__)
_JSON = msgspec.json.Encoder()
IDLE_TIMEOUT_S = 60.0
QUEUE_LIMIT = 2_000
FLUSH_S = 0.05
CANDLE_POLL_S = 1.0
USER_TYPES = frozenset(
    {
        "orderUpdates",
        "userEvents",
        "userFills",
        "userFundings",
        "notification",
        "clearinghouseState",
    }
)
COIN_TYPES = frozenset({"l2Book", "trades", "bbo", "activeAssetCtx"})
VENUE_TYPES = frozenset({"liquidations"})  # our extension: venue-wide feeds
RECENT_LIQUIDATION_STEPS = 100  # sent as the snapshot of a new liquidations subscription


class SubscriptionError(ValueError):
    pass


class Client:
    """One connection: its subscriptions and a bounded outbound queue."""

    def __init__(self, ws: web.WebSocketResponse, on_drop: Callable[[Client], None]) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_LIMIT)
        self.keys: set[str] = set()
        self.alive = True
        self.on_drop = on_drop

    def send(self, channel: str, data: Any) -> None:
        self.send_message({"channel": channel, "data": data})

    def send_message(self, message: dict[str, Any]) -> None:
        if not self.alive:
            return
        try:
            self.queue.put_nowait(_JSON.encode(message))
        except asyncio.QueueFull:
            log.warning("dropping a slow WebSocket client (%d messages queued)", QUEUE_LIMIT)
            self.alive = False
            self.on_drop(self)
            asyncio.get_running_loop().create_task(
                self.ws.close(code=1013, message=b"slow consumer: too many messages queued")
            )

    async def writer(self) -> None:
        while self.alive:
            payload = await self.queue.get()
            await self.ws.send_str(payload.decode())


def key_of(sub: dict[str, Any], markets: MarketRegistry) -> str:
    """The hub's key for a subscription; validates coins and users."""
    kind = sub.get("type")
    if kind == "allMids" or kind in VENUE_TYPES:
        return str(kind)
    if kind in COIN_TYPES:
        coin = sub.get("coin")
        if not isinstance(coin, str):
            raise SubscriptionError(f"{kind} needs a coin")
        try:
            markets.by_name(coin)
        except UnitError as exc:
            raise SubscriptionError(str(exc)) from None
        return f"{kind}:{coin}"
    if kind == "candle":
        coin, interval = sub.get("coin"), sub.get("interval")
        if not isinstance(coin, str):
            raise SubscriptionError("candle needs a coin")
        if interval not in CANDLE_INTERVALS:
            raise SubscriptionError(f"candle interval must be one of {', '.join(CANDLE_INTERVALS)}")
        try:
            markets.by_name(coin)
        except UnitError as exc:
            raise SubscriptionError(str(exc)) from None
        return f"candle:{coin}:{interval}"
    if kind in USER_TYPES:
        try:
            user = normalize_address(str(sub.get("user", "")))
        except ValueError as exc:
            raise SubscriptionError(f"{kind}: user {exc}") from None
        return f"{kind}:{user}"
    raise SubscriptionError(f"unsupported subscription type {kind!r}")


class Hub:
    """Subscriptions, event fan-out and the WebSocket route."""

    def __init__(
        self,
        info: InfoApi,
        exchange: ExchangeApi,
        history: History,
        markets: MarketRegistry,
        clock: Callable[[], int],
    ) -> None:
        self.info = info
        self.exchange = exchange
        self.history = history
        self.markets = markets
        self.clock = clock
        self.subs: dict[str, dict[Client, None]] = {}
        self.dirty: dict[str, None] = {}
        self.last_candle: dict[str, Any] = {}
        self.recent_liquidations: deque[dict[str, Any]] = deque(maxlen=RECENT_LIQUIDATION_STEPS)
        self._flusher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def stop(self) -> None:
        if self._flusher:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    def drop(self, client: Client) -> None:
        for key in list(client.keys):
            self.subs.get(key, {}).pop(client, None)
            if key.startswith("candle:") and not self.subs.get(key):
                self.last_candle.pop(key, None)
        client.keys.clear()

    # ------------------------------------------------------------ events from the bus

    def _push(self, key: str, channel: str, data: Any) -> None:
        for client in list(self.subs.get(key, ())):
            client.send(channel, data)

    def _mark(self, key: str) -> None:
        if key in self.subs:
            self.dirty[key] = None

    def on_event(self, topic: str, event: Any) -> None:
        if topic == topics.MARKET_EVENTS:
            self._market_event(event)
        elif topic == topics.LIQUIDATION_AUDIT:
            self._liquidation_event(event)
        else:
            self._account_event(event)

    def _market_event(self, event: Any) -> None:
        market = getattr(event, "market", "")
        if isinstance(event, Trade):
            spec = self.markets.by_name(market)
            self._push(
                f"trades:{market}",
                "trades",
                [
                    {
                        "coin": market,
                        "side": "B" if event.taker_is_buy else "A",
                        "px": spec.format_price(event.px),
                        "sz": spec.format_size(event.sz),
                        "hash": f"0x{event.tid:064x}",
                        "time": event.ts,
                        "tid": event.tid,
                        "users": [event.buyer, event.seller],
                    }
                ],
            )
            for interval in CANDLE_INTERVALS:
                self._mark(f"candle:{market}:{interval}")
        elif isinstance(event, BookDelta):
            self._mark(f"l2Book:{market}")
            self._mark(f"bbo:{market}")
        elif isinstance(event, MarkPrice | FundingRate):
            self._mark("allMids")
            self._mark(f"activeAssetCtx:{market}")

    def _liquidation_event(self, event: Any) -> None:
        """Every liquidation and ADL step of the venue, as ``liquidationHistory`` rows with
        the account (``user``) they are about."""
        if not isinstance(event, LiquidationStep):
            return
        row = {"user": event.account, **self.history.liquidation_row(event)}
        self.recent_liquidations.append(row)
        self._push("liquidations", "liquidations", {"isSnapshot": False, "events": [row]})
        self._mark(f"clearinghouseState:{event.account}")

    def _account_event(self, event: Any) -> None:
        user = getattr(event, "account", "")
        if isinstance(event, OrderUpdate) and event.oid is not None:
            spec = self.markets.by_name(event.market)
            order: dict[str, Any] = {
                "coin": event.market,
                "oid": event.oid,
                "sz": spec.format_size(event.resting_sz),
                "origSz": spec.format_size(event.resting_sz + event.filled_sz),
                "timestamp": event.ts,
            }
            if event.cloid:
                order["cloid"] = event.cloid
            status = "open" if event.status == "resting" else event.status
            self._push(
                f"orderUpdates:{user}",
                "orderUpdates",
                [{"order": order, "status": status, "statusTimestamp": event.ts}],
            )
        elif isinstance(event, AccountFill):
            row = self.history.fill_row(event)
            self._push(
                f"userFills:{user}",
                "userFills",
                {"isSnapshot": False, "user": user, "fills": [row]},
            )
            self._push(f"userEvents:{user}", "user", {"fills": [row]})
        elif isinstance(event, FundingPayment):
            spec = self.markets.by_name(event.market)
            funding = {
                "time": event.ts,
                "coin": event.market,
                "usdc": format_usd(event.usd),
                "szi": spec.format_size(event.szi),
                "fundingRate": rate(event.rate_ppb),
            }
            self._push(
                f"userFundings:{user}",
                "userFundings",
                {"isSnapshot": False, "user": user, "fundings": [funding]},
            )
            self._push(f"userEvents:{user}", "user", {"funding": funding})
        elif isinstance(event, MarginCall):
            self._push(
                f"notification:{user}",
                "notification",
                {"notification": self._margin_call_text(event)},
            )
        if user:
            self._mark(f"clearinghouseState:{user}")

    @staticmethod
    def _margin_call_text(event: MarginCall) -> str:
        return (
            f"Margin call: maintenance margin is {event.level_pct}% of account value "
            f"({format_usd(event.maintenance)} of {format_usd(event.equity)})."
        )

    # ------------------------------------------------------------ snapshots

    async def snapshot(self, key: str) -> tuple[str, Any] | None:
        """The current value of a key's channel, or None for event-only channels."""
        kind, _, arg = key.partition(":")
        if kind == "l2Book":
            return "l2Book", await self.info.l2_book({"coin": arg})
        if kind == "bbo":
            book = await self.info.l2_book({"coin": arg})
            bids, asks = book["levels"]
            return "bbo", {
                "coin": arg,
                "time": book["time"],
                "bbo": [bids[0] if bids else None, asks[0] if asks else None],
            }
        if kind == "allMids":
            return "allMids", {"mids": await self.info.all_mids({})}
        if kind == "activeAssetCtx":
            _, ctxs = await self.info.meta_and_asset_ctxs({})
            index = self.markets.by_name(arg).asset
            return "activeAssetCtx", {"coin": arg, "ctx": ctxs[index]}
        if kind == "clearinghouseState":
            state = await self.info.clearinghouse_state({"user": arg})
            return "clearinghouseState", {"dex": "", "user": arg, "clearinghouseState": state}
        if kind == "candle":
            coin, _, interval = arg.partition(":")
            latest = await self.info.candles(coin, interval, 0, 2**62, 1)
            return ("candle", self.info.candle_row(latest[0])) if latest else None
        return None

    async def initial(self, client: Client, key: str) -> None:
        kind, _, arg = key.partition(":")
        if kind == "liquidations":
            events = list(self.recent_liquidations)
            client.send("liquidations", {"isSnapshot": True, "events": events})
        elif kind == "userFills":
            fills = await self.history.fills(arg, 0, self.clock(), limit=2000)
            client.send("userFills", {"isSnapshot": True, "user": arg, "fills": fills})
        elif kind == "userFundings":
            fundings = await self.history.fundings(arg, 0, self.clock())
            rows = [
                {"time": f["time"], **{k: v for k, v in f["delta"].items() if k != "type"}}
                for f in fundings
            ]
            client.send("userFundings", {"isSnapshot": True, "user": arg, "fundings": rows})
        else:
            snap = await self.snapshot(key)
            if snap is not None:
                if kind == "candle":
                    self.last_candle[key] = snap[1]
                client.send(*snap)

    async def _flush_loop(self) -> None:
        ticks_per_poll = max(1, round(CANDLE_POLL_S / FLUSH_S))
        tick = 0
        while True:
            await asyncio.sleep(FLUSH_S)
            tick += 1
            if tick % ticks_per_poll == 0:
                for key in self.subs:
                    if key.startswith("candle:"):
                        self._mark(key)
            keys, self.dirty = list(self.dirty), {}
            for key in keys:
                if not self.subs.get(key):
                    continue
                try:
                    snap = await self.snapshot(key)
                except Exception:
                    log.exception("snapshot of %s failed", key)
                    continue
                if snap is None:
                    continue
                if key.startswith("candle:"):
                    if self.last_candle.get(key) == snap[1]:
                        continue
                    self.last_candle[key] = snap[1]
                self._push(key, *snap)

    # ------------------------------------------------------------ the route

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        client = Client(ws, self.drop)
        writer = asyncio.get_running_loop().create_task(client.writer())
        ip = request.remote or "?"
        try:
            while client.alive:
                try:
                    msg = await ws.receive(timeout=IDLE_TIMEOUT_S)
                except TimeoutError:
                    await ws.close(code=1000, message=b"idle for 60 s")
                    break
                if msg.type != WSMsgType.TEXT:
                    break
                await self._on_message(client, msg.data, ip)
        finally:
            client.alive = False
            self.drop(client)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _on_message(self, client: Client, text: str, ip: str) -> None:
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            client.send("error", "Message is not JSON.")
            return
        method = msg.get("method") if isinstance(msg, dict) else None
        if method == "ping":
            client.send_message({"channel": "pong"})
        elif method in ("subscribe", "unsubscribe"):
            sub = msg.get("subscription")
            try:
                key = key_of(sub if isinstance(sub, dict) else {}, self.markets)
            except SubscriptionError as exc:
                client.send("error", f"Invalid subscription: {exc}")
                return
            if method == "subscribe":
                self.subs.setdefault(key, {})[client] = None
                client.keys.add(key)
            else:
                self.subs.get(key, {}).pop(client, None)
                client.keys.discard(key)
            client.send("subscriptionResponse", {"method": method, "subscription": sub})
            if method == "subscribe":
                await self.initial(client, key)
        elif method == "post":
            await self._post(client, msg, ip)
        else:
            client.send("error", f"Unknown method {method!r}.")

    async def _post(self, client: Client, msg: dict[str, Any], ip: str) -> None:
        post_id = msg.get("id")
        request = msg.get("request")
        kind = request.get("type") if isinstance(request, dict) else None
        payload = request.get("payload") if isinstance(request, dict) else None
        try:
            if kind == "info" and isinstance(payload, dict):
                answer = await self.info.answer(payload)
                response: dict[str, Any] = {
                    "type": "info",
                    "payload": {"type": payload.get("type"), "data": answer},
                }
            elif kind == "action":
                response = {"type": "action", "payload": await self.exchange.handle(payload, ip)}
            else:
                response = {"type": "error", "payload": "request type must be info or action"}
        except (InfoError, ExchangeError, RateLimited) as exc:
            response = {"type": "error", "payload": str(exc)}
        client.send("post", {"id": post_id, "response": response})
