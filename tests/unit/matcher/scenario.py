"""A matcher core driven the way traders see it: prices and sizes as decimal strings.

``Venue`` wraps one ``MatcherCore`` in a :class:`~tests.unit.cores.Driver`, stamps each
command one millisecond after the previous one (or at a given event time), numbers orders
itself, and returns what each input record emitted as a :class:`Sent`.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import msgspec

from libs.common import topics
from libs.common.markets import MarketRegistry, MarketSpec, load_markets
from libs.common.runtime import Output
from libs.common.schemas import (
    BookDelta,
    CancelAll,
    CancelRequest,
    ChildOrder,
    FillLeg,
    IndexTick,
    MarketControl,
    ModifyRequest,
    NewOrder,
    OrderResult,
    PositionTransfer,
    ScheduleCancel,
    Tif,
    Trade,
)
from services.matcher.engine import MatcherCore
from services.matcher.market import MarketEngine
from tests.unit.cores import Driver, of_type

MARKETS = load_markets()
BTC = MARKETS.by_name("BTC")
ETH = MARKETS.by_name("ETH")

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
CAROL = "0x" + "c3" * 20
DAVE = "0x" + "d4" * 20
VAULT = "0x" + "fe" * 20

HOUR = 3_600_000
T0 = 1_699_999_200_000  # on the hour, in epoch milliseconds

M = TypeVar("M", bound=msgspec.Struct)
Side = Literal["buy", "sell"]


def px(text: str, spec: MarketSpec = BTC) -> int:
    """A price as the trader writes it, in ticks (BTC: 100000.5 is 1,000,005 ticks)."""
    return spec.price_units(text)


def sz(text: str, spec: MarketSpec = BTC) -> int:
    """A size as the trader writes it, in lots (BTC: 0.1 is 10,000 lots)."""
    return spec.size_units(text)


def price(ticks: int, spec: MarketSpec = BTC) -> str:
    return spec.format_price(ticks)


def size(lots: int, spec: MarketSpec = BTC) -> str:
    return spec.format_size(lots)


def registry(**overrides: int) -> MarketRegistry:
    """The configured markets with some BTC parameters replaced (e.g. a short funding
    interval or a small order limit)."""
    markets = [
        msgspec.structs.replace(spec, **overrides) if spec.name == "BTC" else spec
        for spec in MARKETS
    ]
    return MarketRegistry(markets)


class Sent:
    """What one input record emitted, with the views tests read most."""

    def __init__(self, outputs: list[Output], oid: int = 0, req_id: str = "") -> None:
        self.outputs = outputs
        self.oid = oid
        self.req_id = req_id

    def of(self, kind: type[M]) -> list[M]:
        return of_type(self.outputs, kind)

    @property
    def result(self) -> OrderResult:
        """The one order result that answers this request."""
        answers = [r for r in self.results if r.req_id == self.req_id and self.req_id]
        assert len(answers) == 1, f"expected one answer to {self.req_id}, got {self.results}"
        return answers[0]

    @property
    def results(self) -> list[OrderResult]:
        return self.of(OrderResult)

    @property
    def statuses(self) -> list[tuple[int, str]]:
        """(oid, status) of every order result, in emission order."""
        return [(r.oid, r.status) for r in self.results]

    @property
    def fills(self) -> list[FillLeg]:
        return self.of(FillLeg)

    @property
    def trades(self) -> list[Trade]:
        return self.of(Trade)

    def traded(self, spec: MarketSpec = BTC) -> list[tuple[str, str, str, str]]:
        """Each trade as (buyer, seller, price, size) in the trader's units."""
        return [(t.buyer, t.seller, price(t.px, spec), size(t.sz, spec)) for t in self.trades]

    @property
    def deltas(self) -> list[BookDelta]:
        return self.of(BookDelta)


class Venue:
    """One matcher partition holding every configured market."""

    def __init__(self, markets: MarketRegistry = MARKETS, *, start: int = T0) -> None:
        self.markets = markets
        self.driver = Driver(MatcherCore(markets, 0), topics.MATCHER_IN)
        self.now = start
        self.next_oid = 1
        self.inputs: list[msgspec.Struct] = []
        self.log: list[Output] = []

    @property
    def core(self) -> MatcherCore:
        core = self.driver.core
        assert isinstance(core, MatcherCore)
        return core

    def engine(self, market: str = "BTC") -> MarketEngine:
        return self.core.engines[market]

    # ------------------------------------------------------------ commands

    def _stamp(self, at: int | None) -> int:
        self.now = self.now + 1 if at is None else at
        return self.now

    def send(self, message: msgspec.Struct, oid: int = 0, req_id: str = "") -> Sent:
        outputs = self.driver.send(message)
        self.inputs.append(message)
        self.log += outputs
        return Sent(outputs, oid, req_id)

    def take_oid(self) -> int:
        oid = self.next_oid
        self.next_oid += 1
        return oid

    def order(
        self,
        account: str,
        side: Side,
        price_text: str,
        size_text: str,
        *,
        tif: Tif = "Gtc",
        reduce_only: bool = False,
        cloid: str | None = None,
        market: str = "BTC",
        children: tuple[ChildOrder, ...] = (),
        at: int | None = None,
    ) -> Sent:
        """A limit order."""
        spec = self.markets.by_name(market)
        return self.new(
            account,
            side,
            px(price_text, spec),
            sz(size_text, spec),
            tif=tif,
            reduce_only=reduce_only,
            cloid=cloid,
            market=market,
            grouping="normalTpsl" if children else "na",
            children=children,
            at=at,
        )

    def buy(
        self,
        account: str,
        price_text: str,
        size_text: str,
        *,
        tif: Tif = "Gtc",
        reduce_only: bool = False,
        cloid: str | None = None,
        market: str = "BTC",
        children: tuple[ChildOrder, ...] = (),
        at: int | None = None,
    ) -> Sent:
        return self.order(
            account,
            "buy",
            price_text,
            size_text,
            tif=tif,
            reduce_only=reduce_only,
            cloid=cloid,
            market=market,
            children=children,
            at=at,
        )

    def sell(
        self,
        account: str,
        price_text: str,
        size_text: str,
        *,
        tif: Tif = "Gtc",
        reduce_only: bool = False,
        cloid: str | None = None,
        market: str = "BTC",
        children: tuple[ChildOrder, ...] = (),
        at: int | None = None,
    ) -> Sent:
        return self.order(
            account,
            "sell",
            price_text,
            size_text,
            tif=tif,
            reduce_only=reduce_only,
            cloid=cloid,
            market=market,
            children=children,
            at=at,
        )

    def market_order(
        self,
        account: str,
        side: Side,
        size_text: str,
        *,
        limit: str | None = None,
        slippage_ppm: int = 0,
        reduce_only: bool = False,
        market: str = "BTC",
    ) -> Sent:
        spec = self.markets.by_name(market)
        return self.new(
            account,
            side,
            px(limit, spec) if limit else 0,
            sz(size_text, spec),
            kind="market",
            tif="Ioc",
            slippage_ppm=slippage_ppm,
            reduce_only=reduce_only,
            market=market,
        )

    def trigger(
        self,
        account: str,
        side: Side,
        size_text: str,
        *,
        trigger: str,
        tpsl: Literal["tp", "sl"],
        limit: str | None = None,
        reduce_only: bool = True,
        position: bool = False,
        cloid: str | None = None,
    ) -> Sent:
        """A stop-loss or take-profit: a market order when it fires, or a limit at ``limit``."""
        return self.new(
            account,
            side,
            px(limit) if limit else 0,
            sz(size_text),
            kind="trigger",
            trigger_px=px(trigger),
            tpsl=tpsl,
            trigger_is_market=limit is None,
            reduce_only=reduce_only,
            grouping="positionTpsl" if position else "na",
            cloid=cloid,
        )

    def new(
        self,
        account: str,
        side: Side,
        px_ticks: int,
        sz_lots: int,
        *,
        at: int | None = None,
        oid: int | None = None,
        market: str = "BTC",
        **fields: object,
    ) -> Sent:
        """A raw NewOrder in ticks and lots; ``fields`` are NewOrder's optional fields."""
        oid = self.take_oid() if oid is None else oid
        req_id = f"req-{oid}"
        msg = NewOrder(
            ts=self._stamp(at),
            oid=oid,
            account=account,
            market=market,
            is_buy=side == "buy",
            px=px_ticks,
            sz=sz_lots,
            req_id=req_id,
            **fields,  # type: ignore[arg-type]
        )
        return self.send(msg, oid, req_id)

    def child(
        self,
        side: Side,
        size_text: str,
        *,
        trigger: str,
        tpsl: Literal["tp", "sl"],
        limit: str | None = None,
        cloid: str | None = None,
    ) -> ChildOrder:
        """A TP/SL child of a normalTpsl parent, with its own order id."""
        return ChildOrder(
            oid=self.take_oid(),
            is_buy=side == "buy",
            px=px(limit) if limit else 0,
            sz=sz(size_text),
            trigger_px=px(trigger),
            tpsl=tpsl,
            trigger_is_market=limit is None,
            cloid=cloid,
        )

    def cancel(
        self, account: str, oid: int = 0, *, cloid: str | None = None, market: str = "BTC"
    ) -> Sent:
        req_id = f"cancel-{self.now + 1}"
        msg = CancelRequest(
            ts=self._stamp(None),
            oid=oid,
            account=account,
            market=market,
            req_id=req_id,
            cloid=cloid,
        )
        return self.send(msg, oid, req_id)

    def modify(
        self,
        account: str,
        oid: int,
        side: Side,
        price_text: str,
        size_text: str,
        *,
        tif: Tif = "Gtc",
        reduce_only: bool = False,
        by_cloid: str | None = None,
        cloid: str | None = None,
    ) -> Sent:
        ts = self._stamp(None)
        req_id = f"modify-{ts}"
        msg = ModifyRequest(
            ts=ts,
            oid=oid,
            account=account,
            market="BTC",
            is_buy=side == "buy",
            px=px(price_text),
            sz=sz(size_text),
            tif=tif,
            reduce_only=reduce_only,
            by_cloid=by_cloid,
            cloid=cloid,
            req_id=req_id,
        )
        return self.send(msg, oid, req_id)

    def cancel_all(self, account: str, *, status: str = "canceled", market: str = "BTC") -> Sent:
        msg = CancelAll(ts=self._stamp(None), account=account, market=market, status=status)
        return self.send(msg)

    def schedule_cancel(self, account: str, at: int) -> Sent:
        return self.send(ScheduleCancel(ts=self._stamp(None), account=account, at=at))

    def tick(
        self,
        price_text: str,
        *,
        status: str = "valid",
        external: str | None = None,
        market: str = "BTC",
        at: int | None = None,
    ) -> Sent:
        spec = self.markets.by_name(market)
        msg = IndexTick(
            ts=self._stamp(at),
            market=market,
            px=px(price_text, spec),
            status=status,
            external_perp_mid=px(external, spec) if external else 0,
        )
        return self.send(msg)

    def control(self, action: Literal["halt", "resume"], reason: str = "") -> Sent:
        msg = MarketControl(
            ts=self._stamp(None), market="BTC", action=action, operator="ops", reason=reason
        )
        return self.send(msg)

    def transfer(
        self,
        from_account: str,
        to_account: str,
        *,
        from_is_long: bool,
        size_text: str,
        price_text: str,
        kind: Literal["backstop", "adl"] = "backstop",
    ) -> Sent:
        ts = self._stamp(None)
        req_id = f"transfer-{ts}"
        msg = PositionTransfer(
            ts=ts,
            market="BTC",
            from_account=from_account,
            to_account=to_account,
            from_is_long=from_is_long,
            sz=sz(size_text),
            px=px(price_text),
            kind=kind,
            req_id=req_id,
        )
        return self.send(msg, 0, req_id)

    def trade(self, buyer: str, seller: str, price_text: str, size_text: str) -> None:
        """Open positions: the seller rests, the buyer takes it."""
        self.sell(seller, price_text, size_text)
        taken = self.buy(buyer, price_text, size_text, tif="Ioc")
        assert taken.result.status == "filled", taken.results

    # ------------------------------------------------------------ reading

    def position(self, account: str, market: str = "BTC") -> str:
        """Signed position in coins, as the trader reads it ("-0.1")."""
        lots = self.engine(market).positions.get(account)
        return size(lots, self.markets.by_name(market))

    def resting(self, market: str = "BTC") -> list[tuple[int, str, str]]:
        """Resting orders, bids then asks, each side in priority: (oid, price, size)."""
        spec = self.markets.by_name(market)
        if market not in self.core.engines:
            return []
        return [
            (o.oid, price(o.px, spec), size(o.sz, spec)) for o in self.engine(market).book.resting()
        ]

    def levels(self, market: str = "BTC") -> tuple[list[tuple[str, str, int]], ...]:
        """The aggregated book (price, size, orders) per side, best first."""
        spec = self.markets.by_name(market)
        bids, asks = self.engine(market).book.depth(1 << 30)
        return tuple(
            [(price(p, spec), size(s, spec), n) for p, s, n in side] for side in (bids, asks)
        )

    def trigger_oids(self, market: str = "BTC") -> list[int]:
        return sorted(self.engine(market).triggers)
