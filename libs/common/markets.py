"""Market configuration: lot and tick sizes, leverage, margin tiers, limits and fees, read
from a TOML file."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import msgspec

from libs.common.money import (
    MAX_SIG_FIGS,
    USD_DECIMALS,
    UnitError,
    format_units,
    parse_decimal,
    significant_figures,
    to_units,
    usd_to_units,
)

DEFAULT_MARKETS_FILE = Path(__file__).resolve().parents[2] / "config" / "markets.toml"


class MarginTier(msgspec.Struct, frozen=True, kw_only=True):
    """From ``lower_bound`` micro-USDC of position value on, at most ``max_leverage``."""

    lower_bound: int
    max_leverage: int


class PortfolioGrid(msgspec.Struct, frozen=True, kw_only=True):
    """The venue-wide shape of the portfolio-margin scenario grid (``[portfolio]``).

    Shocks are percentages of each market's ``pm_volatility_ppm``: the grid moves prices
    by every step of ``shock_steps_pct``, up and down; the stress case moves every
    market against the position by ``stress_step_pct``. Maintenance is
    ``maintenance_ppm`` of the portfolio's initial requirement."""

    shock_steps_pct: tuple[int, ...] = (50, 100, 150)
    stress_step_pct: int = 50
    maintenance_ppm: int = 600_000


class HaircutTier(msgspec.Struct, frozen=True, kw_only=True):
    """From ``lower_bound`` micro-USDC of an asset's value on, each further dollar counts
    ``1 - haircut_ppm / 1e6`` toward collateral (brackets: the haircut grows with size)."""

    lower_bound: int
    haircut_ppm: int


class CollateralSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A collateral asset other than USDC: held in lots of the perp market of the same
    name, valued at that market's oracle (index) price less its haircut tiers."""

    asset: str
    haircuts: tuple[HaircutTier, ...]


class MarketSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One perpetual market. ``asset`` is its index in the universe.

    ``margin_tiers`` (lowest first) cap leverage by position value; empty means one tier
    at ``max_leverage``. ``open_interest_cap`` and ``max_position_usd`` are micro-USDC
    of notional at the mark, 0 meaning no limit."""

    name: str
    asset: int
    sz_decimals: int
    max_leverage: int
    default_leverage: int
    taker_fee_ppm: int
    maker_fee_ppm: int
    min_order_usd: int
    # Matching rules
    price_band_ppm: int = 800_000
    max_open_orders: int = 1000
    market_slippage_ppm: int = 50_000
    transfer_fee_ppm: int = 0
    # Mark price and funding (times are event time)
    mark_ema_ms: int = 150_000
    impact_notional_usd: int = 20_000_000_000
    premium_sample_ms: int = 5_000
    funding_interval_ms: int = 3_600_000
    interest_8h_ppb: int = 100_000
    premium_clamp_ppb: int = 500_000
    funding_cap_hourly_ppb: int = 40_000_000
    funding_smoothing: int = 1
    book_snapshot_ms: int = 10_000
    # Risk limits
    margin_tiers: tuple[MarginTier, ...] = ()
    open_interest_cap: int = 0
    max_position_usd: int = 0
    # Portfolio margin: volatility (one shock step of 100%), correlation with the
    # market-wide factor (pairwise correlation = the product), funding provision
    pm_volatility_ppm: int = 100_000
    pm_correlation_ppm: int = 0
    pm_funding_provision_ppm: int = 1_000

    @property
    def px_decimals(self) -> int:
        return USD_DECIMALS - self.sz_decimals

    def price_units(self, text: str | Decimal) -> int:
        """Decimal price string to ticks; rejects what the tick rules forbid (tickRejected)."""
        value = parse_decimal(text)
        if value <= 0:
            raise UnitError(f"price must be positive, got {text}")
        units = to_units(value, self.px_decimals, what="price")
        is_whole = units % 10**self.px_decimals == 0
        if not is_whole and significant_figures(units) > MAX_SIG_FIGS:
            raise UnitError(f"price {text} has more than {MAX_SIG_FIGS} significant figures")
        return units

    def round_price(self, value: Decimal) -> int:
        """The nearest valid price in ticks: 5 significant figures and the tick's decimals."""
        if value <= 0:
            raise UnitError("price must be positive")
        exponent = value.adjusted() - (MAX_SIG_FIGS - 1)
        quantum = Decimal(1).scaleb(max(exponent, -self.px_decimals))
        if exponent >= 0 and value >= 10**MAX_SIG_FIGS:
            quantum = Decimal(1)  # whole prices are always allowed
        return max(1, int(value.quantize(quantum).scaleb(self.px_decimals)))

    def size_units(self, text: str | Decimal) -> int:
        """Decimal size string to lots; rejects sizes finer than the lot."""
        value = parse_decimal(text)
        if value <= 0:
            raise UnitError(f"size must be positive, got {text}")
        return to_units(value, self.sz_decimals, what="size")

    def format_price(self, units: int) -> str:
        return format_units(units, self.px_decimals)

    def format_size(self, units: int) -> str:
        return format_units(units, self.sz_decimals)

    @staticmethod
    def notional(price: int, size: int) -> int:
        """Notional in micro-USDC: exact because px and sz decimals add up to 6."""
        return price * size


class MarketRegistry:
    """The venue's universe, by name and by asset id, in a fixed order."""

    def __init__(
        self,
        markets: list[MarketSpec],
        portfolio: PortfolioGrid | None = None,
        collateral: tuple[CollateralSpec, ...] = (),
    ) -> None:
        self._list = list(markets)
        self.portfolio = portfolio or PortfolioGrid()
        self.collateral: dict[str, CollateralSpec] = {c.asset: c for c in collateral}
        self._by_name: dict[str, MarketSpec] = {m.name: m for m in self._list}
        if len(self._by_name) != len(self._list):
            raise ValueError("duplicate market names in configuration")

    def copy(self) -> MarketRegistry:
        """A registry of its own (a state machine changes its copy at its own offset)."""
        return MarketRegistry(self._list, self.portfolio, tuple(self.collateral.values()))

    def update(self, spec: MarketSpec) -> None:
        """Replace a listed market's parameters (same name, same asset id)."""
        current = self.by_name(spec.name)
        if current.asset != spec.asset or current.sz_decimals != spec.sz_decimals:
            raise UnitError(f"{spec.name}: a change cannot move the asset id or the lot size")
        self._list[spec.asset] = spec
        self._by_name[spec.name] = spec

    def __iter__(self) -> Iterator[MarketSpec]:
        return iter(self._list)

    def __len__(self) -> int:
        return len(self._list)

    def by_name(self, name: str) -> MarketSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnitError(f"unknown market {name!r}") from None

    def by_asset(self, asset: int) -> MarketSpec:
        if not 0 <= asset < len(self._list):
            raise UnitError(f"unknown asset {asset}")
        return self._list[asset]

    @property
    def names(self) -> list[str]:
        return [m.name for m in self._list]


_OPTIONAL_INTS = (
    "price_band_ppm",
    "max_open_orders",
    "market_slippage_ppm",
    "transfer_fee_ppm",
    "mark_ema_ms",
    "premium_sample_ms",
    "funding_interval_ms",
    "interest_8h_ppb",
    "premium_clamp_ppb",
    "funding_cap_hourly_ppb",
    "funding_smoothing",
    "book_snapshot_ms",
    "pm_volatility_ppm",
    "pm_correlation_ppm",
    "pm_funding_provision_ppm",
)


_OPTIONAL_USD = ("impact_notional_usd", "open_interest_cap", "max_position_usd")


def load_markets(path: Path | str | None = None) -> MarketRegistry:
    """Read the market table; the file's order defines asset ids."""
    source = Path(path) if path else DEFAULT_MARKETS_FILE
    with source.open("rb") as fh:
        doc = tomllib.load(fh)
    markets = []
    for asset, raw in enumerate(doc.get("market", [])):
        name = str(raw["name"])
        sz_decimals = int(raw["sz_decimals"])
        if not 0 <= sz_decimals <= USD_DECIMALS:
            raise ValueError(f"{name}: sz_decimals must be within 0..{USD_DECIMALS}")
        max_lev = int(raw["max_leverage"])
        tiers = raw.get("margin_tiers")
        spec = MarketSpec(
            name=name,
            asset=asset,
            sz_decimals=sz_decimals,
            max_leverage=max_lev,
            default_leverage=int(raw.get("default_leverage", max_lev)),
            taker_fee_ppm=int(raw["taker_fee_ppm"]),
            maker_fee_ppm=int(raw["maker_fee_ppm"]),
            min_order_usd=usd_to_units(str(raw.get("min_order_usd", "10"))),
            margin_tiers=(MarginTier(lower_bound=0, max_leverage=max_lev),)
            if tiers is None
            else _parse_tiers(name, tiers),
            **_optional_fields(raw),
        )
        check_spec(spec)
        markets.append(spec)
    grid = _portfolio_grid(doc.get("portfolio"))
    for n, spec in enumerate(markets):
        if "pm_volatility_ppm" not in doc["market"][n]:
            # unconfigured: the smallest volatility whose largest shock is 1/default_leverage
            vol = -(-1_000_000 * 100 // (spec.default_leverage * max(grid.shock_steps_pct)))
            markets[n] = spec = msgspec.structs.replace(spec, pm_volatility_ppm=vol)
        check_portfolio(spec, grid)
    names = {spec.name for spec in markets}
    collateral = tuple(_collateral(raw, names) for raw in doc.get("collateral", []))
    if len({c.asset for c in collateral}) != len(collateral):
        raise ValueError("collateral: an asset is listed twice")
    return MarketRegistry(markets, grid, collateral)


def _collateral(raw: object, markets: set[str]) -> CollateralSpec:
    """A ``[[collateral]]`` entry: an asset with a perp market (its oracle), and haircut
    tiers from 0, bounds rising, haircuts within 0..100% and never falling with size."""
    if not isinstance(raw, dict) or not isinstance(raw.get("asset"), str):
        raise ValueError("collateral: each entry is a table with an asset name")
    asset = raw["asset"]
    if asset not in markets:
        raise ValueError(f"collateral {asset}: no market of that name to price it")
    entries = raw.get("haircuts")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"collateral {asset}: haircuts must be a non-empty list")
    tiers = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError(f"collateral {asset}: each haircut tier is a table")
        tiers.append(
            HaircutTier(
                lower_bound=usd_to_units(str(entry["lower_bound_usd"])),
                haircut_ppm=int(entry["haircut_ppm"]),
            )
        )
    if tiers[0].lower_bound != 0:
        raise ValueError(f"collateral {asset}: the first haircut tier starts at 0")
    for tier in tiers:
        if not 0 <= tier.haircut_ppm <= 1_000_000:
            raise ValueError(f"collateral {asset}: haircut_ppm must be within 0..1000000")
    for lower, upper in pairwise(tiers):
        if upper.lower_bound <= lower.lower_bound:
            raise ValueError(f"collateral {asset}: haircut tier bounds must rise")
        if upper.haircut_ppm < lower.haircut_ppm:
            raise ValueError(f"collateral {asset}: haircuts must not fall as size grows")
    return CollateralSpec(asset=asset, haircuts=tuple(tiers))


def _portfolio_grid(raw: object) -> PortfolioGrid:
    """The ``[portfolio]`` table: steps rising and positive, a positive stress step, a
    maintenance fraction within (0, 1]."""
    if raw is None:
        return PortfolioGrid()
    if not isinstance(raw, dict):
        raise ValueError("portfolio: must be a table")
    unknown = sorted(set(raw) - {"shock_steps_pct", "stress_step_pct", "maintenance_ppm"})
    if unknown:
        raise ValueError(f"portfolio: unknown keys {unknown}")
    default = PortfolioGrid()
    steps = raw.get("shock_steps_pct", list(default.shock_steps_pct))
    if not isinstance(steps, list) or not steps or not all(isinstance(v, int) for v in steps):
        raise ValueError("portfolio: shock_steps_pct must be a non-empty list of integers")
    if steps[0] <= 0 or any(b <= a for a, b in pairwise(steps)):
        raise ValueError("portfolio: shock_steps_pct must be positive and rising")
    stress = raw.get("stress_step_pct", default.stress_step_pct)
    if not isinstance(stress, int) or stress <= 0:
        raise ValueError("portfolio: stress_step_pct must be a positive integer")
    maintenance = raw.get("maintenance_ppm", default.maintenance_ppm)
    if not isinstance(maintenance, int) or not 0 < maintenance <= 1_000_000:
        raise ValueError("portfolio: maintenance_ppm must be within 1..1000000")
    return PortfolioGrid(
        shock_steps_pct=tuple(steps), stress_step_pct=stress, maintenance_ppm=maintenance
    )


def check_portfolio(spec: MarketSpec, grid: PortfolioGrid) -> None:
    """A market's portfolio parameters: a positive volatility below 100%, a correlation
    within 0..1, and a largest shock at least the initial margin at the default
    leverage, so a lone position never needs less than under cross margin."""
    if not 0 < spec.pm_volatility_ppm <= 1_000_000:
        raise ValueError(f"{spec.name}: pm_volatility_ppm must be within 1..1000000")
    if not 0 <= spec.pm_correlation_ppm <= 1_000_000:
        raise ValueError(f"{spec.name}: pm_correlation_ppm must be within 0..1000000")
    if spec.pm_funding_provision_ppm < 0:
        raise ValueError(f"{spec.name}: pm_funding_provision_ppm must not be negative")
    largest = spec.pm_volatility_ppm * max(grid.shock_steps_pct) // 100
    if largest > 1_000_000:
        raise ValueError(f"{spec.name}: the largest portfolio shock must not exceed 100%")
    if largest * spec.default_leverage < 1_000_000:
        raise ValueError(
            f"{spec.name}: the largest portfolio shock ({largest} ppm) must be at least the "
            f"initial margin at the default leverage (1/{spec.default_leverage})"
        )


def _optional_fields(raw: Mapping[str, object]) -> dict[str, int]:
    """The optional parameters a market table names, in MarketSpec's units."""
    fields = {k: int(str(raw[k])) for k in _OPTIONAL_INTS if k in raw}
    fields.update({k: usd_to_units(str(raw[k])) for k in _OPTIONAL_USD if k in raw})
    return fields


def _parse_tiers(name: str, raw: object) -> tuple[MarginTier, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{name}: margin_tiers must be a non-empty list")
    tiers = []
    for entry in raw:
        if not isinstance(entry, dict) or set(entry) != {"lower_bound_usd", "max_leverage"}:
            raise ValueError(f"{name}: each margin tier has lower_bound_usd and max_leverage")
        tiers.append(
            MarginTier(
                lower_bound=usd_to_units(str(entry["lower_bound_usd"])),
                max_leverage=int(entry["max_leverage"]),
            )
        )
    return tuple(tiers)


# Bounds of the parameters (inclusive; None: unbounded), checked on load and on every
# change at run time.
_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "taker_fee_ppm": (0, 100_000),
    "min_order_usd": (0, None),
    "price_band_ppm": (1, 10_000_000),
    "max_open_orders": (1, 100_000),
    "market_slippage_ppm": (1, 999_999),
    "transfer_fee_ppm": (0, 100_000),
    "mark_ema_ms": (1, None),
    "impact_notional_usd": (1, None),
    "premium_sample_ms": (1, None),
    "funding_interval_ms": (1, None),
    "premium_clamp_ppb": (0, None),
    "funding_cap_hourly_ppb": (1, None),
    "funding_smoothing": (1, 1_000),
    "book_snapshot_ms": (1, None),
    "open_interest_cap": (0, None),
    "max_position_usd": (0, None),
}


def check_spec(spec: MarketSpec) -> None:
    """Refuse a market whose parameters contradict each other or leave their bounds."""
    name = spec.name
    for field, (low, high) in _LIMITS.items():
        value = getattr(spec, field)
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
            raise ValueError(f"{name}: {field} must be within {span}, got {value}")
    if not -spec.taker_fee_ppm <= spec.maker_fee_ppm <= spec.taker_fee_ppm:
        raise ValueError(
            f"{name}: maker_fee_ppm must be within -taker_fee_ppm..taker_fee_ppm "
            "(a larger rebate would pay out more than the venue takes)"
        )
    if not 1 <= spec.max_leverage <= 1_000:
        raise ValueError(f"{name}: max_leverage must be within 1..1000")
    if not 1 <= spec.default_leverage <= spec.max_leverage:
        raise ValueError(f"{name}: default_leverage must be within 1..max_leverage")
    tiers = spec.margin_tiers
    if not tiers:
        return  # one tier at max_leverage
    if tiers[0].lower_bound != 0 or tiers[0].max_leverage != spec.max_leverage:
        raise ValueError(f"{name}: the first margin tier starts at 0 with max_leverage")
    for lower, upper in pairwise(tiers):
        if upper.lower_bound <= lower.lower_bound or not 1 <= upper.max_leverage:
            raise ValueError(f"{name}: margin tier bounds must rise")
        if upper.max_leverage > lower.max_leverage:
            raise ValueError(f"{name}: margin tier leverage must not rise with the bound")


class MarketParams(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """A change to a listed market, in MarketSpec's units; ``None`` keeps the value.

    Only what can change under open orders and positions is here. The name, asset id and
    lot size fix the units of every order and position; the funding interval and premium
    sampling fix the weights of samples already taken: those need a new listing."""

    taker_fee_ppm: int | None = None
    maker_fee_ppm: int | None = None
    min_order_usd: int | None = None
    price_band_ppm: int | None = None
    max_open_orders: int | None = None
    market_slippage_ppm: int | None = None
    transfer_fee_ppm: int | None = None
    mark_ema_ms: int | None = None
    impact_notional_usd: int | None = None
    interest_8h_ppb: int | None = None
    premium_clamp_ppb: int | None = None
    funding_cap_hourly_ppb: int | None = None
    funding_smoothing: int | None = None
    book_snapshot_ms: int | None = None
    max_leverage: int | None = None
    default_leverage: int | None = None
    margin_tiers: tuple[MarginTier, ...] | None = None
    open_interest_cap: int | None = None
    max_position_usd: int | None = None

    def changes(self) -> dict[str, object]:
        return {f: v for f in self.__struct_fields__ if (v := getattr(self, f)) is not None}


_FIXED = {
    "name": "the name identifies the market",
    "asset": "the asset id identifies the market",
    "sz_decimals": "the lot size fixes the units of every order and position",
    "funding_interval_ms": "the funding clock is fixed for a listed market",
    "premium_sample_ms": "the premium sampling clock is fixed for a listed market",
}


def parse_params(raw: Mapping[str, object]) -> MarketParams:
    """A change as an operator writes it (the market table's keys and units: USD amounts
    as decimal strings, margin_tiers with lower_bound_usd) to MarketParams."""
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError("changes must be a non-empty object")
    for key in raw:
        if key in _FIXED:
            raise ValueError(f"{key} cannot change on a listed market: {_FIXED[key]}")
        if key not in MarketParams.__struct_fields__:
            raise ValueError(f"unknown market parameter {key!r}")
    fields: dict[str, object] = {}
    try:
        for key, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, (int, str, list)):
                raise ValueError(f"{key} must be a number, a decimal string or a list")
            if key == "margin_tiers":
                fields[key] = _parse_tiers("changes", value)
            elif key in _OPTIONAL_USD or key == "min_order_usd":
                fields[key] = usd_to_units(str(value))
            elif isinstance(value, int):
                fields[key] = value
            else:
                raise ValueError(f"{key} must be an integer")
    except (UnitError, ArithmeticError, KeyError, TypeError) as exc:
        raise ValueError(f"invalid market parameter: {exc}") from None
    return MarketParams(**fields)  # type: ignore[arg-type]


def differences(base: MarketSpec, spec: MarketSpec) -> MarketParams:
    """The changeable parameters in which ``spec`` differs from ``base``."""
    fields = {
        f: value
        for f in MarketParams.__struct_fields__
        if (value := getattr(spec, f)) != getattr(base, f)
    }
    return MarketParams(**fields)


def with_overrides(base: MarketSpec, overrides: MarketParams) -> MarketSpec:
    """The market table's entry with the operator's run-time changes on top."""
    return reconfigure(base, overrides) if overrides.changes() else base


def reconfigure(spec: MarketSpec, params: MarketParams) -> MarketSpec:
    """The market with ``params`` applied, checked as a whole (ValueError otherwise)."""
    changes = params.changes()
    if not changes:
        raise ValueError("no parameter to change")
    if "max_leverage" in changes and "margin_tiers" not in changes:
        if len(spec.margin_tiers) > 1:
            raise ValueError(
                f"{spec.name}: give margin_tiers with max_leverage (the market has "
                f"{len(spec.margin_tiers)} tiers)"
            )
        if spec.margin_tiers:
            lev = changes["max_leverage"]
            changes["margin_tiers"] = (MarginTier(lower_bound=0, max_leverage=lev),)  # type: ignore[arg-type]
    new = msgspec.structs.replace(spec, **changes)
    check_spec(new)
    return new


__all__ = [
    "CollateralSpec",
    "HaircutTier",
    "MarginTier",
    "MarketParams",
    "MarketRegistry",
    "MarketSpec",
    "PortfolioGrid",
    "check_portfolio",
    "check_spec",
    "differences",
    "format_units",
    "load_markets",
    "parse_params",
    "reconfigure",
    "with_overrides",
]
