"""The oracle's pure core: source prices in, one index price per market out, with its
validity.

Per market and evaluation time ``now`` (always an event time, never the wall clock):

1. every configured source's last price, if younger than its staleness bound, is fresh;
2. the weighted median of the fresh prices is taken, and sources further than
   ``outlier_bps`` from it are left out;
3. the rest must make the quorum (``min_sources`` sources carrying ``min_weight``);
4. their weighted median, rounded to a valid price, is the candidate;
5. a candidate more than ``breaker_bps`` away from any price accepted within the breaker
   window (or from the last valid price) trips the breaker: the last valid price is held
   and the market is ``too_volatile`` until sources have kept reporting the new level
   (within the outlier band of where it first appeared) for ``breaker_confirm_ms``;
6. an operator override (freeze, or set a price) puts the market in ``halted`` until
   released.

While the status is not ``valid`` the published price is the last valid one. A market
is published at its cadence, and at once on a status change or a significant move.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal, NamedTuple

from libs.common.markets import MarketSpec
from libs.common.money import MAX_SIG_FIGS
from libs.common.schemas import IndexTick, OracleOverride, OraclePrice, SourceQuote
from services.oracle.config import Rules, SourceRule
from services.oracle.median import doubled_weighted_median
from services.oracle.sources.base import SourcePrice

VALID = "valid"
STALE = "stale"
INSUFFICIENT_SOURCES = "insufficient_sources"
TOO_VOLATILE = "too_volatile"
HALTED = "halted"
STATUSES = (VALID, STALE, INSUFFICIENT_SOURCES, TOO_VOLATILE, HALTED)

# Why a source was left out of an index.
MISSING = "missing"
STALE_SOURCE = "stale"
OUTLIER = "outlier"

BPS = 10_000

OverrideAction = Literal["freeze", "set", "release"]


class Verdict(NamedTuple):
    """One source's part in an evaluation: its last price (0 if it never reported), age
    (-1 if never), and why it was left out (empty if it counted)."""

    source: str
    weight: int
    px: int
    age_ms: int
    rejected: str


class IndexUpdate(NamedTuple):
    """An index price to publish, with its validity and everything that explains it."""

    ts: int
    market: str
    px: int
    status: str
    reason: str
    sources: tuple[SourceQuote, ...]
    verdicts: tuple[Verdict, ...]
    median: Decimal | None
    breaker_tripped: bool = False

    def index_tick(self) -> IndexTick:
        return IndexTick(
            ts=self.ts, market=self.market, px=self.px, status=self.status, sources=self.sources
        )

    def oracle_price(self) -> OraclePrice:
        return OraclePrice(
            ts=self.ts,
            market=self.market,
            px=self.px,
            status=self.status,
            sources=self.sources,
            reason=self.reason,
        )


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's command: freeze the index where it is, set it to ``px`` (ticks), or
    release it back to the sources. Both freeze and set put the market in ``halted``."""

    ts: int
    market: str
    action: OverrideAction
    px: int = 0
    operator: str = ""
    reason: str = ""


class OverrideRefused(ValueError):
    """An override that cannot apply (unknown market, nothing to freeze, not halted)."""


class PriceWindow:
    """Lowest and highest accepted price within the last ``span_ms`` (monotonic deques)."""

    def __init__(self, span_ms: int) -> None:
        self.span_ms = span_ms
        self._lows: deque[tuple[int, int]] = deque()
        self._highs: deque[tuple[int, int]] = deque()
        self._last: tuple[int, int] | None = None

    def add(self, ts: int, px: int) -> None:
        if self._last is not None and self._last[1] == px:
            return
        self._last = (ts, px)
        while self._lows and self._lows[-1][1] >= px:
            self._lows.pop()
        self._lows.append((ts, px))
        while self._highs and self._highs[-1][1] <= px:
            self._highs.pop()
        self._highs.append((ts, px))

    def reset(self, ts: int, px: int) -> None:
        self._lows.clear()
        self._highs.clear()
        self._last = None
        self.add(ts, px)

    def bounds(self, now: int) -> tuple[int, int] | None:
        """(low, high) of the prices accepted since ``now - span_ms``, or None."""
        horizon = now - self.span_ms
        while self._lows and self._lows[0][0] < horizon:
            self._lows.popleft()
        while self._highs and self._highs[0][0] < horizon:
            self._highs.popleft()
        if not self._lows:
            return None
        return self._lows[0][1], self._highs[0][1]


class _Quote(NamedTuple):
    ts: int
    px: int


@dataclass(slots=True)
class _Hold:
    action: OverrideAction
    px: int
    operator: str
    reason: str


class _Market:
    """Everything the core remembers about one market."""

    __slots__ = (
        "dirty",
        "hold",
        "index",
        "last_update",
        "last_valid",
        "pending_px",
        "pending_since",
        "published_px",
        "published_status",
        "published_ts",
        "quotes",
        "spec",
        "tripped",
        "window",
    )

    def __init__(self, spec: MarketSpec, index: int, window_ms: int) -> None:
        self.spec = spec
        self.index = index
        self.quotes: dict[str, _Quote] = {}
        self.last_valid = 0
        self.window = PriceWindow(window_ms)
        self.tripped = False
        self.pending_since: int | None = None
        self.pending_px = 0
        self.hold: _Hold | None = None
        self.published_ts: int | None = None
        self.published_px = 0
        self.published_status: str | None = None
        self.last_update: IndexUpdate | None = None
        self.dirty = False


_Seen = tuple[SourceRule, "_Quote | None", int, bool]  # source, last price, age, fresh
_Kept = tuple[SourceRule, "_Quote", int]  # source, last price, age


class _Evaluation(NamedTuple):
    """The outcome of one evaluation, cheap to make; ``update`` builds what is published."""

    now: int
    market: _Market
    px: int
    status: str
    reason: str
    tripped: bool
    seen: list[_Seen]
    kept: list[_Kept]
    doubled_median: int  # 0 when no source was fresh

    def update(self, outlier_bps: int) -> IndexUpdate:
        m2 = self.doubled_median
        limit = outlier_bps * m2
        verdicts = []
        for source, quote, age, fresh in self.seen:
            if quote is None:
                verdicts.append(Verdict(source.name, source.weight, 0, -1, MISSING))
                continue
            if not fresh:
                rejected = STALE_SOURCE
            elif abs(2 * quote.px - m2) * BPS > limit:
                rejected = OUTLIER
            else:
                rejected = ""
            verdicts.append(Verdict(source.name, source.weight, quote.px, age, rejected))
        sources = tuple(
            SourceQuote(source=source.name, px=quote.px, weight=source.weight, age_ms=age)
            for source, quote, age in self.kept
        )
        return IndexUpdate(
            ts=self.now,
            market=self.market.spec.name,
            px=self.px,
            status=self.status,
            reason=self.reason,
            sources=sources,
            verdicts=tuple(verdicts),
            median=Decimal(m2) / 2 if m2 else None,
            breaker_tripped=self.tripped,
        )


class Aggregator:
    """The index of every market, driven only by the prices and times it is given."""

    def __init__(
        self,
        rules: Rules,
        sources: Sequence[SourceRule],
        markets: Iterable[MarketSpec],
    ) -> None:
        self.rules = rules
        self.sources = tuple(sources)
        self._staleness = {s.name: s.staleness_ms or rules.staleness_ms for s in self.sources}
        self._rules_by_source = [(s, self._staleness[s.name]) for s in self.sources]
        self._markets = {
            m.name: _Market(m, i, rules.breaker_window_ms) for i, m in enumerate(markets)
        }
        self._order = list(self._markets.values())
        self._dirty: list[_Market] = []
        self._unpublished = len(self._order)
        self._next_due: int | None = None
        self._now: int | None = None

    # ------------------------------------------------------------ inputs

    @property
    def now(self) -> int:
        """The latest event time the core has seen (0 before any)."""
        return self._now or 0

    @property
    def markets(self) -> list[str]:
        return list(self._markets)

    def observe(self, price: SourcePrice) -> bool:
        """Remember a source's price; False if it is unusable (unknown market or source,
        not a positive finite number, or older than the price already held)."""
        market = self._markets.get(price.market)
        if market is None or price.source not in self._staleness:
            return False
        value = price.price
        if not value.is_finite() or value <= 0:
            return False
        px = int(value.scaleb(market.spec.px_decimals).to_integral_value(ROUND_HALF_EVEN))
        if px <= 0:
            return False
        held = market.quotes.get(price.source)
        if held is not None and held.ts > price.ts:
            return False
        market.quotes[price.source] = _Quote(price.ts, px)
        if not market.dirty:
            market.dirty = True
            self._dirty.append(market)
        return True

    def advance(
        self, now: int, prices: Iterable[SourcePrice] = (), *, catch_up: bool = True
    ) -> list[IndexUpdate]:
        """Move time to ``now`` and take in ``prices``; returns the updates to publish.

        With ``catch_up``, cadence ticks that fell due before ``now`` are evaluated at
        their own times first (a replay then looks like a live run); a live shell that
        wakes on time passes False so a long pause does not publish a backlog."""
        if self._now is not None and now < self._now:
            now = self._now
        out: list[IndexUpdate] = []
        if catch_up:
            while self._next_due is not None and self._next_due < now:
                due = self._next_due
                self._now = due
                self._evaluate_all(due, out)
        self._now = now
        for price in prices:
            self.observe(price)
        self._evaluate_all(now, out)
        return out

    def next_due(self) -> int | None:
        """When the next cadence publication falls due (None before any publication)."""
        return self._next_due

    def restore_hold(self, audit: OracleOverride) -> None:
        """Re-impose an override that was in force before a restart (``freeze`` or
        ``set`` at the price it held): the market stays halted until released."""
        market = self._markets.get(audit.market)
        if market is None or audit.action not in ("freeze", "set") or audit.px <= 0:
            return
        market.last_valid = audit.px
        market.hold = _Hold(audit.action, audit.px, audit.operator, audit.reason)  # type: ignore[arg-type]

    def plan_override(self, command: Override) -> OracleOverride:
        """The audit event ``override(command)`` would give, changing nothing: raises
        ``OverrideRefused`` exactly when it would. The service keeps the hold before
        applying it, so an override that cannot be kept is not applied."""
        market = self._markets.get(command.market)
        if market is None:
            raise OverrideRefused(f"unknown market {command.market!r}")
        if command.action == "freeze":
            if market.last_valid == 0:
                raise OverrideRefused(f"{command.market} has no valid price to freeze at")
            px = market.last_valid
        elif command.action == "set":
            if command.px <= 0:
                raise OverrideRefused("set needs a positive price")
            px = command.px
        elif command.action == "release":
            if market.hold is None:
                raise OverrideRefused(f"{command.market} is not under an override")
            px = market.last_valid
        else:
            raise OverrideRefused(f"unknown action {command.action!r}")
        return OracleOverride(
            ts=max(command.ts, self._now or command.ts),
            market=command.market,
            action=command.action,
            px=px,
            operator=command.operator,
            reason=command.reason,
        )

    def override(self, command: Override) -> tuple[OracleOverride, IndexUpdate]:
        """Apply an operator override; returns the audit event and the index to publish."""
        market = self._markets.get(command.market)
        if market is None:
            raise OverrideRefused(f"unknown market {command.market!r}")
        now = max(command.ts, self._now or command.ts)
        self._now = now
        if command.action == "freeze":
            if market.last_valid == 0:
                raise OverrideRefused(f"{command.market} has no valid price to freeze at")
            market.hold = _Hold("freeze", market.last_valid, command.operator, command.reason)
        elif command.action == "set":
            if command.px <= 0:
                raise OverrideRefused("set needs a positive price")
            market.last_valid = command.px
            market.window.reset(now, command.px)
            market.tripped = False
            market.pending_since = None
            market.hold = _Hold("set", command.px, command.operator, command.reason)
        elif command.action == "release":
            if market.hold is None:
                raise OverrideRefused(f"{command.market} is not under an override")
            market.hold = None
        else:
            raise OverrideRefused(f"unknown action {command.action!r}")
        audit = OracleOverride(
            ts=now,
            market=command.market,
            action=command.action,
            px=market.hold.px if market.hold else market.last_valid,
            operator=command.operator,
            reason=command.reason,
        )
        update = self._evaluate(market, now).update(self.rules.outlier_bps)
        self._published(market, update)
        return audit, update

    def last_update(self, market: str) -> IndexUpdate | None:
        """The market's latest published index (for the operator status view)."""
        state = self._markets.get(market)
        return state.last_update if state else None

    # ------------------------------------------------------------ evaluation

    def _evaluate_all(self, now: int, out: list[IndexUpdate]) -> None:
        """Evaluate the markets with new prices or a cadence due, in configured order."""
        cadence = self.rules.cadence_ms
        if self._unpublished or (self._next_due is not None and self._next_due <= now):
            candidates = self._order
        elif self._dirty:
            candidates = sorted(self._dirty, key=lambda m: m.index)
        else:
            return
        self._dirty = []
        for market in candidates:
            due = market.published_ts is None or now - market.published_ts >= cadence
            if not (due or market.dirty):
                continue
            market.dirty = False
            outcome = self._evaluate(market, now)
            if due or outcome.tripped or self._significant(market, outcome):
                update = outcome.update(self.rules.outlier_bps)
                self._published(market, update)
                out.append(update)

    def _significant(self, market: _Market, outcome: _Evaluation) -> bool:
        if outcome.status != market.published_status:
            return True
        before, after = market.published_px, outcome.px
        if after == before:
            return False
        if before == 0:
            return True
        return abs(after - before) * BPS >= self.rules.significant_move_bps * before

    def _published(self, market: _Market, update: IndexUpdate) -> None:
        if market.published_ts is None:
            self._unpublished -= 1
        market.published_ts = update.ts
        market.published_px = update.px
        market.published_status = update.status
        market.last_update = update
        cadence = self.rules.cadence_ms
        dues = [m.published_ts + cadence for m in self._order if m.published_ts is not None]
        self._next_due = min(dues)

    def _evaluate(self, market: _Market, now: int) -> _Evaluation:
        seen: list[_Seen] = []
        fresh: list[tuple[int, int]] = []
        quotes = market.quotes
        for source, stale_after in self._rules_by_source:
            quote = quotes.get(source.name)
            if quote is None:
                seen.append((source, None, -1, False))
                continue
            age = now - quote.ts
            if age < 0:
                age = 0
            is_fresh = age <= stale_after
            seen.append((source, quote, age, is_fresh))
            if is_fresh:
                fresh.append((quote.px, source.weight))
        kept: list[_Kept] = []
        m2 = 0
        if fresh:
            m2 = doubled_weighted_median(fresh)
            limit = self.rules.outlier_bps * m2
            for source, quote, age, is_fresh in seen:
                if is_fresh and quote is not None and abs(2 * quote.px - m2) * BPS <= limit:
                    kept.append((source, quote, age))
        px, status, reason, tripped = self._judge(market, now, kept, bool(fresh))
        return _Evaluation(now, market, px, status, reason, tripped, seen, kept, m2)

    def _judge(
        self, market: _Market, now: int, kept: list[_Kept], any_fresh: bool
    ) -> tuple[int, str, str, bool]:
        """The published price, status, reason and whether the breaker tripped just now."""
        rules = self.rules
        spec = market.spec
        if market.hold is not None:
            hold = market.hold
            what = "frozen" if hold.action == "freeze" else "set"
            reason = f"{what} at {spec.format_price(hold.px)} by {hold.operator or 'operator'}"
            return hold.px, HALTED, f"{reason}: {hold.reason}" if hold.reason else reason, False
        if not any_fresh:
            market.pending_since = None
            return market.last_valid, STALE, "no source price within its staleness bound", False
        weight = 0
        youngest = -1
        for source, _, age in kept:
            weight += source.weight
            if youngest < 0 or age < youngest:
                youngest = age
        if len(kept) < rules.min_sources or weight < rules.min_weight:
            market.pending_since = None
            return (
                market.last_valid,
                INSUFFICIENT_SOURCES,
                f"{len(kept)} agreeing sources of weight {weight}; quorum is "
                f"{rules.min_sources} sources of weight {rules.min_weight}",
                False,
            )
        doubled = doubled_weighted_median([(q.px, s.weight) for s, q, _ in kept])
        candidate = index_ticks(spec, doubled)
        return self._breaker(market, now, candidate, now - youngest)

    def _breaker(
        self, market: _Market, now: int, candidate: int, newest: int
    ) -> tuple[int, str, str, bool]:
        """Accept the candidate, or hold the last valid price while a big move is
        unconfirmed. ``newest`` is the time of the latest report behind the candidate:
        a move is confirmed by sources still reporting it ``breaker_confirm_ms`` after
        they first did, not by old reports growing older."""
        rules = self.rules
        if market.last_valid:
            low, high = market.window.bounds(now) or (market.last_valid, market.last_valid)
            low, high = min(low, market.last_valid), max(high, market.last_valid)
            beyond = candidate * BPS > low * (BPS + rules.breaker_bps) or candidate * BPS < high * (
                BPS - rules.breaker_bps
            )
        else:
            low = high = candidate
            beyond = False  # the first price has nothing to be compared with
        if not beyond:
            reason = "breaker cleared: the move reverted" if market.tripped else ""
            market.tripped = False
            market.pending_since = None
            self._accept(market, now, candidate)
            return candidate, VALID, reason, False
        tripped = not market.tripped
        market.tripped = True
        drifted = abs(candidate - market.pending_px) * BPS > rules.outlier_bps * market.pending_px
        if market.pending_since is None or drifted:
            market.pending_since, market.pending_px = newest, candidate
        held_ms = max(0, newest - market.pending_since)
        ref = low if candidate > high else high
        move = _percent(candidate - ref, ref)
        if held_ms >= rules.breaker_confirm_ms:
            market.tripped = False
            market.pending_since = None
            market.window.reset(now, candidate)
            self._accept(market, now, candidate)
            return candidate, VALID, f"move of {move} confirmed after {held_ms} ms", tripped
        spec = market.spec
        return (
            market.last_valid,
            TOO_VOLATILE,
            f"{spec.format_price(candidate)} is {move} from {spec.format_price(ref)} within "
            f"{rules.breaker_window_ms} ms (bound {_percent(rules.breaker_bps, BPS, sign=False)});"
            f" held {held_ms} of {rules.breaker_confirm_ms} ms",
            tripped,
        )

    @staticmethod
    def _accept(market: _Market, now: int, px: int) -> None:
        market.last_valid = px
        market.window.add(now, px)


def index_ticks(spec: MarketSpec, doubled: int) -> int:
    """``doubled / 2`` ticks rounded (half even) to a valid price of the market: five
    significant figures, or a whole number of USDC from 100000 up. Integer arithmetic,
    the same result as ``spec.round_price`` on the exact value."""
    whole: int = 10**spec.px_decimals
    quantum: int
    if doubled >= 2 * 10**MAX_SIG_FIGS * whole:
        quantum = whole
    else:
        quantum = 10 ** max(0, len(str(doubled // 2)) - MAX_SIG_FIGS)
    quotient, remainder = divmod(doubled, 2 * quantum)
    if remainder > quantum or (remainder == quantum and quotient % 2):
        quotient += 1
    return max(1, quotient * quantum)


def _percent(numerator: int, denominator: int, *, sign: bool = True) -> str:
    value = (Decimal(numerator) * 100 / Decimal(denominator)).quantize(Decimal("0.01"))
    return f"{value:+}%" if sign else f"{value}%"
