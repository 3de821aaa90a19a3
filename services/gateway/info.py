"""POST /info: the Hyperliquid read API, answered from Redis.

Every answer is built from committed hot state (see ``hot.py``) or the event history
the gateway projects (``history.py``); the state machines are never asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec

from libs.common.collateral import oracle_prices
from libs.common.markets import MarginTier, MarketRegistry, MarketSpec
from libs.common.money import format_ppb, format_ratio, format_units, format_usd
from libs.common.portfolio import clearinghouse_document, portfolio_margin_document
from libs.common.schemas import (
    CANDLE_INTERVALS,
    CandleView,
    DayStatsView,
    candles_key,
    day_stats_key,
)
from libs.common.state import (
    BACKSTOP_VAULT_ACCOUNT,
    INSURANCE_FUND_ACCOUNT,
    AccountState,
    MarketContext,
    OpenOrderState,
)
from libs.common.valuation import AccountValue, account_value
from services.gateway.dashboard import WhatIfError, venue_document, what_if
from services.gateway.history import History
from services.gateway.hot import HotState
from services.gateway.ratelimit import AddressRateLimiter
from services.gateway.vaults import VaultView
from services.gateway.wire import normalize_address

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
VAULTS = (BACKSTOP_VAULT_ACCOUNT,)  # the venue's vaults LPs can deposit into
CANDLES_PER_REQUEST = 5000
_CANDLE = msgspec.msgpack.Decoder(CandleView)
_DAY_STATS = msgspec.msgpack.Decoder(DayStatsView)


class InfoError(ValueError):
    """A request the API cannot answer; the message is shown to the client."""


rate = format_ppb


def price(spec: MarketSpec, ticks: int) -> str:
    return spec.format_price(ticks) if ticks else "0.0"


class InfoApi:
    """One method per request type; ``answer`` dispatches on ``type``."""

    def __init__(
        self,
        hot: HotState,
        history: History,
        markets: MarketRegistry,
        address_limits: AddressRateLimiter,
        clock: Callable[[], int],
    ) -> None:
        self.hot = hot
        self.history = history
        self.markets = markets
        self.address_limits = address_limits
        self.clock = clock
        self.handlers: dict[str, Handler] = {
            "meta": self.meta,
            "marginTable": self.margin_table,
            "spotMeta": self.spot_meta,
            "metaAndAssetCtxs": self.meta_and_asset_ctxs,
            "allMids": self.all_mids,
            "l2Book": self.l2_book,
            "clearinghouseState": self.clearinghouse_state,
            "openOrders": self.open_orders,
            "frontendOpenOrders": self.frontend_open_orders,
            "orderStatus": self.order_status,
            "userFills": self.user_fills,
            "userFillsByTime": self.user_fills_by_time,
            "fundingHistory": self.funding_history,
            "userFunding": self.user_funding,
            "liquidationHistory": self.liquidation_history,
            "predictedFundings": self.predicted_fundings,
            "userFees": self.user_fees,
            "userRateLimit": self.user_rate_limit,
            "perpsAtOpenInterestCap": self.perps_at_open_interest_cap,
            "candleSnapshot": self.candle_snapshot,
            "vaultDetails": self.vault_details,
            "userVaultEquities": self.user_vault_equities,
            "portfolioMargin": self.portfolio_margin,
            "venueState": self.venue_state,
            "whatIf": self.what_if,
        }

    async def answer(self, body: Any) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            raise InfoError("request must be a JSON object with a string 'type'")
        handler = self.handlers.get(body["type"])
        if handler is None:
            raise InfoError(f"unsupported info type {body['type']!r}")
        return await handler(body)

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _user(body: dict[str, Any]) -> str:
        try:
            return normalize_address(str(body.get("user", "")))
        except ValueError as exc:
            raise InfoError(f"user: {exc}") from None

    def _spec(self, body: dict[str, Any]) -> MarketSpec:
        coin = body.get("coin")
        if not isinstance(coin, str):
            raise InfoError("coin must be a market name")
        try:
            return self.markets.by_name(coin)
        except ValueError as exc:
            raise InfoError(str(exc)) from None

    @staticmethod
    def _ms(body: dict[str, Any], field: str, default: int | None = None) -> int:
        value = body.get(field, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InfoError(f"{field} must be a non-negative integer of milliseconds")
        return value

    # ------------------------------------------------------------ markets

    @staticmethod
    def _table_id(m: MarketSpec) -> int:
        """Hyperliquid's margin table ids: a one-tier table is its leverage; a tiered one
        gets an id of its own (1000 + the asset id)."""
        return m.max_leverage if len(m.margin_tiers) <= 1 else 1000 + m.asset

    @staticmethod
    def _table(m: MarketSpec) -> dict[str, Any]:
        tiers = m.margin_tiers or (MarginTier(lower_bound=0, max_leverage=m.max_leverage),)
        return {
            "description": "" if len(tiers) == 1 else f"tiered {m.name}",
            "marginTiers": [
                {"lowerBound": _decimal(format_usd(t.lower_bound)), "maxLeverage": t.max_leverage}
                for t in tiers
            ],
        }

    def _meta(self) -> dict[str, Any]:
        tables = {self._table_id(m): self._table(m) for m in self.markets}
        return {
            "universe": [
                {
                    "name": m.name,
                    "szDecimals": m.sz_decimals,
                    "maxLeverage": m.max_leverage,
                    "marginTableId": self._table_id(m),
                }
                for m in self.markets
            ],
            "marginTables": [[table_id, table] for table_id, table in sorted(tables.items())],
        }

    async def margin_table(self, body: dict[str, Any]) -> Any:
        table_id = body.get("id")
        for m in self.markets:
            if self._table_id(m) == table_id:
                return self._table(m)
        raise InfoError(f"unknown margin table id {table_id!r}")

    async def meta(self, body: dict[str, Any]) -> Any:
        return self._meta()

    async def spot_meta(self, body: dict[str, Any]) -> Any:
        return {"universe": [], "tokens": []}  # a perp-only venue

    def _asset_ctx(
        self, spec: MarketSpec, ctx: MarketContext | None, day: DayStatsView | None = None
    ) -> dict[str, Any]:
        """A market's context; the 24-hour fields come from the marketdata service."""
        if ctx is None:
            ctx = MarketContext(market=spec.name)
        open_interest = day.open_interest if day else ctx.open_interest
        return {
            "funding": rate(ctx.funding_rate_ppb),
            "openInterest": spec.format_size(open_interest) if open_interest else "0.0",
            "oraclePx": price(spec, ctx.index_px),
            "markPx": price(spec, ctx.mark_px),
            "midPx": price(spec, ctx.mid_px) if ctx.mid_px else None,
            "impactPxs": [price(spec, ctx.impact_bid_px), price(spec, ctx.impact_ask_px)]
            if ctx.impact_bid_px and ctx.impact_ask_px
            else None,
            "premium": rate(ctx.premium_ppb),
            "dayNtlVlm": format_usd(day.day_ntl_vlm) if day and day.day_ntl_vlm else "0.0",
            "prevDayPx": price(spec, day.prev_day_px if day else ctx.index_px),
        }

    async def day_stats(self) -> dict[str, DayStatsView]:
        """Every market's 24-hour statistics, as the marketdata service last wrote them."""
        raw = cast(
            dict[bytes, bytes],
            await self.hot.redis.hgetall(day_stats_key(self.hot.risk.namespace)),
        )
        return {key.decode(): _DAY_STATS.decode(blob) for key, blob in raw.items()}

    async def meta_and_asset_ctxs(self, body: dict[str, Any]) -> Any:
        contexts = await self.hot.contexts()
        days = await self.day_stats()
        return [
            self._meta(),
            [self._asset_ctx(m, contexts.get(m.name), days.get(m.name)) for m in self.markets],
        ]

    # ------------------------------------------------------------ candles

    def candle_row(self, candle: CandleView) -> dict[str, Any]:
        spec = self.markets.by_name(candle.market)
        return {
            "t": candle.t,
            "T": candle.close_t,
            "s": candle.market,
            "i": candle.interval,
            "o": spec.format_price(candle.o),
            "c": spec.format_price(candle.c),
            "h": spec.format_price(candle.h),
            "l": spec.format_price(candle.low),
            "v": spec.format_size(candle.v),
            "n": candle.n,
        }

    async def candles(
        self, market: str, interval: str, start: int, end: int, limit: int
    ) -> list[CandleView]:
        """The latest ``limit`` candles opened in ``[start, end]``, oldest first."""
        key = candles_key(self.hot.risk.namespace, market, interval)
        raw = cast(
            list[bytes],
            await self.hot.redis.zrevrangebyscore(key, end, start, start=0, num=limit),
        )
        return [_CANDLE.decode(blob) for blob in reversed(raw)]

    async def candle_snapshot(self, body: dict[str, Any]) -> Any:
        req = body.get("req")
        if not isinstance(req, dict):
            raise InfoError("candleSnapshot needs req: {coin, interval, startTime, endTime}")
        spec = self._spec(req)
        interval = req.get("interval")
        if interval not in CANDLE_INTERVALS:
            raise InfoError(f"interval must be one of {', '.join(CANDLE_INTERVALS)}")
        start = self._ms(req, "startTime")
        end = self._ms(req, "endTime", self.clock())
        rows = await self.candles(spec.name, interval, start, end, CANDLES_PER_REQUEST)
        return [self.candle_row(c) for c in rows]

    async def all_mids(self, body: dict[str, Any]) -> Any:
        mids: dict[str, str] = {}
        for name, ctx in (await self.hot.contexts()).items():
            spec = self.markets.by_name(name)
            px = ctx.mid_px or ctx.mark_px
            if px:
                mids[name] = spec.format_price(px)
        return mids

    async def l2_book(self, body: dict[str, Any]) -> Any:
        spec = self._spec(body)
        view = await self.hot.l2(spec.name)
        levels: list[list[dict[str, Any]]] = [[], []]
        if view is not None:
            for side, rows in enumerate((view.bids, view.asks)):
                levels[side] = [
                    {"px": spec.format_price(px), "sz": spec.format_size(sz), "n": n}
                    for px, sz, n in rows
                ]
        return {"coin": spec.name, "time": view.ts if view else self.clock(), "levels": levels}

    async def predicted_fundings(self, body: dict[str, Any]) -> Any:
        contexts = await self.hot.contexts()
        hour = 3_600_000
        next_time = self.clock() // hour * hour + hour
        return [
            [
                m.name,
                [
                    [
                        "HlPerp",
                        {
                            "fundingRate": rate(contexts[m.name].funding_rate_ppb)
                            if m.name in contexts
                            else "0.0",
                            "nextFundingTime": next_time,
                            "fundingIntervalHours": m.funding_interval_ms // hour or 1,
                        },
                    ]
                ],
            ]
            for m in self.markets
        ]

    async def perps_at_open_interest_cap(self, body: dict[str, Any]) -> Any:
        return []

    async def funding_history(self, body: dict[str, Any]) -> Any:
        spec = self._spec(body)
        start = self._ms(body, "startTime")
        end = self._ms(body, "endTime", self.clock())
        return await self.history.funding_history(spec, start, end)

    # ------------------------------------------------------------ accounts

    async def clearinghouse_state(self, body: dict[str, Any]) -> Any:
        account, states = await self.hot.account_marks(self._user(body))
        marks = {name: state.mark_px for name, state in states.items()}
        return clearinghouse_document(
            account, marks, self.markets, self.clock(), oracle_prices(states)
        )

    async def portfolio_margin(self, body: dict[str, Any]) -> Any:
        """Our extension: the account's portfolio requirement and the scenario that binds,
        from its state in Redis with the formulas risk uses (whatever its mode)."""
        account, states = await self.hot.account_marks(self._user(body))
        marks = {name: state.mark_px for name, state in states.items()}
        prices = oracle_prices(states)
        return portfolio_margin_document(account, marks, self.markets, self.clock(), prices)

    async def what_if(self, body: dict[str, Any]) -> Any:
        """Our extension: the account valued at prices the caller picks (``prices`` per
        market and/or a grid ``scenario``) with the margin formulas risk decides with."""
        user = self._user(body)
        account, states = await self.hot.account_marks(user)
        try:
            return what_if(user, body, account, states, self.markets, self.clock())
        except WhatIfError as exc:
            raise InfoError(str(exc)) from None

    async def venue_state(self, body: dict[str, Any]) -> Any:
        """Our extension: markets (index, mark, last, oracle validity, funding, open
        interest), the insurance fund and backstop vault at mark, the what-if scenarios."""
        contexts = await self.hot.contexts()
        funds: dict[str, tuple[str, AccountValue]] = {}
        for name, address in (
            ("insuranceFund", INSURANCE_FUND_ACCOUNT),
            ("backstopVault", BACKSTOP_VAULT_ACCOUNT),
        ):
            account, states = await self.hot.account_marks(address)
            marks = {market: state.mark_px for market, state in states.items()}
            funds[name] = (
                address,
                account_value(account, marks, self.markets, oracle_prices(states)),
            )
        return venue_document(self.markets, contexts, funds, self.clock())

    def _orders(self, account: AccountState | None) -> list[tuple[MarketSpec, OpenOrderState]]:
        if account is None:
            return []
        orders = sorted(account.orders.values(), key=lambda o: o.oid)
        return [(self.markets.by_name(o.market), o) for o in orders]

    @staticmethod
    def _open_order(spec: MarketSpec, o: OpenOrderState) -> dict[str, Any]:
        row: dict[str, Any] = {
            "coin": spec.name,
            "side": "B" if o.is_buy else "A",
            "limitPx": spec.format_price(o.px),
            "sz": spec.format_size(o.sz),
            "oid": o.oid,
            "timestamp": o.ts,
            "origSz": spec.format_size(o.orig_sz),
        }
        if o.cloid:
            row["cloid"] = o.cloid
        return row

    async def open_orders(self, body: dict[str, Any]) -> Any:
        account, _ = await self.hot.account(self._user(body))
        return [self._open_order(spec, o) for spec, o in self._orders(account)]

    async def frontend_open_orders(self, body: dict[str, Any]) -> Any:
        account, _ = await self.hot.account(self._user(body))
        rows = []
        for spec, o in self._orders(account):
            row = self._open_order(spec, o)
            row.update(
                {
                    "isPositionTpsl": False,
                    "isTrigger": False,
                    "orderType": "Limit",
                    "reduceOnly": o.reduce_only,
                    "tif": "Gtc",
                    "triggerCondition": "N/A",
                    "triggerPx": "0.0",
                    "children": [],
                }
            )
            rows.append(row)
        return rows

    async def order_status(self, body: dict[str, Any]) -> Any:
        user = self._user(body)
        ref = body.get("oid")
        account, _ = await self.hot.account(user)
        for spec, o in self._orders(account):
            if o.oid == ref or (o.cloid is not None and o.cloid == str(ref).lower()):
                order = self._open_order(spec, o)
                return {
                    "status": "order",
                    "order": {"order": order, "status": "open", "statusTimestamp": o.ts},
                }
        past = await self.history.order_status(user, ref)
        if past is None:
            return {"status": "unknownOid"}
        return {"status": "order", "order": past}

    async def user_fills(self, body: dict[str, Any]) -> Any:
        return await self.history.fills(self._user(body), 0, self.clock(), limit=2000)

    async def user_fills_by_time(self, body: dict[str, Any]) -> Any:
        start = self._ms(body, "startTime")
        end = self._ms(body, "endTime", self.clock())
        return await self.history.fills(self._user(body), start, end, limit=2000)

    async def user_funding(self, body: dict[str, Any]) -> Any:
        start = self._ms(body, "startTime")
        end = self._ms(body, "endTime", self.clock())
        return await self.history.fundings(self._user(body), start, end)

    async def liquidation_history(self, body: dict[str, Any]) -> Any:
        """Our extension: every step of the user's liquidations (and ADL closes against
        it), oldest first, optionally within ``startTime``..``endTime``."""
        start = self._ms(body, "startTime", 0)
        end = self._ms(body, "endTime", self.clock())
        return await self.history.liquidations(self._user(body), start, end, limit=2000)

    async def user_fees(self, body: dict[str, Any]) -> Any:
        account, _ = await self.hot.account(self._user(body))
        default = next(iter(self.markets))
        taker = account.taker_fee_ppm if account and account.taker_fee_ppm is not None else None
        maker = account.maker_fee_ppm if account and account.maker_fee_ppm is not None else None
        taker = default.taker_fee_ppm if taker is None else taker
        maker = default.maker_fee_ppm if maker is None else maker
        return {
            "dailyUserVlm": [],
            "feeSchedule": {
                "cross": format_ratio(default.taker_fee_ppm, 1_000_000, 0),
                "add": format_ratio(default.maker_fee_ppm, 1_000_000, 0),
                "tiers": {"vip": [], "mm": []},
                "referralDiscount": "0.0",
            },
            "userCrossRate": format_ratio(taker, 1_000_000, 0),
            "userAddRate": format_ratio(maker, 1_000_000, 0),
            "activeReferralDiscount": "0.0",
        }

    async def user_rate_limit(self, body: dict[str, Any]) -> Any:
        return await self.address_limits.user_rate_limit(self._user(body))

    # ------------------------------------------------------------ vaults

    async def _vault(self, address: str) -> VaultView:
        ledger, account, marks = await self.hot.vault(address)
        return VaultView(address, ledger, account, marks, self.markets)

    async def vault_details(self, body: dict[str, Any]) -> Any:
        try:
            address = normalize_address(str(body.get("vaultAddress", "")))
        except ValueError as exc:
            raise InfoError(f"vaultAddress: {exc}") from None
        user = self._user(body) if body.get("user") is not None else None
        if address not in VAULTS:
            return None  # as Hyperliquid answers for an address that is no vault
        return (await self._vault(address)).details(user, self.clock())

    async def user_vault_equities(self, body: dict[str, Any]) -> Any:
        user = self._user(body)
        rows = []
        for address in VAULTS:
            row = (await self._vault(address)).user_equity(user)
            if row is not None:
                rows.append(row)
        return rows


def _decimal(text: str) -> str:
    """A whole amount as Hyperliquid writes it in tables: ``10000000.0``."""
    return text if "." in text else text + ".0"


__all__ = ["InfoApi", "InfoError", "format_units", "format_usd"]
