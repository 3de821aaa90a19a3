"""Exact money and units: integer fixed-point values and the API's decimal strings.

Collateral is USDC held in micro-dollars (1e-6). Each market quotes sizes in lots of
``10**-sz_decimals`` coins and prices in ticks of ``10**-px_decimals`` USDC, with
``px_decimals + sz_decimals == USD_DECIMALS`` (Hyperliquid's perp rule), so a notional
in micro-USDC is exactly ``price * size`` with no rescaling and no rounding.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext

USD_DECIMALS = 6
USD_SCALE = 10**USD_DECIMALS
MAX_SIG_FIGS = 5
MAX_MAGNITUDE = 30  # no amount, price or size on this venue has 30 digits either side


class UnitError(ValueError):
    """A value that does not fit the market's tick, lot or range."""


def parse_decimal(text: str | int | Decimal) -> Decimal:
    """Parse an API number (a decimal string) without ever going through float."""
    if isinstance(text, bool) or isinstance(text, float):
        raise UnitError(f"expected a decimal string, got {type(text).__name__}")
    try:
        value = Decimal(text) if not isinstance(text, Decimal) else text
    except (InvalidOperation, TypeError) as exc:
        raise UnitError(f"not a decimal number: {text!r}") from exc
    if not value.is_finite():
        raise UnitError(f"not a finite number: {text!r}")
    return value


def to_units(text: str | int | Decimal, decimals: int, *, what: str = "value") -> int:
    """Convert a decimal string to an integer count of ``10**-decimals`` units, exactly."""
    value = parse_decimal(text)
    if abs(value.adjusted()) > MAX_MAGNITUDE:
        raise UnitError(f"{what} {text} is out of range")
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_MAGNITUDE + 2 * decimals  # exact: no rounding can hide a tail
        scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise UnitError(f"{what} {text} has more than {decimals} decimals")
    return int(scaled)


def format_units(units: int, decimals: int) -> str:
    """Format integer units as the API's decimal string: trailing zeros stripped."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    if decimals == 0 or frac == 0:
        return f"{sign}{whole}"
    digits = f"{frac:0{decimals}d}".rstrip("0")
    return f"{sign}{whole}.{digits}"


WIRE_DECIMALS = 8


def format_ratio(numerator: int, denominator: int, decimals: int) -> str:
    """``numerator / denominator`` units as a decimal string (for derived prices like an
    average or entry price), rounded half-even to the API's 8 decimals at most."""
    if denominator == 0:
        return "0.0"
    value = (Decimal(numerator) / Decimal(denominator)).scaleb(-decimals)
    value = value.quantize(Decimal(1).scaleb(-WIRE_DECIMALS))
    if value.is_zero():
        return "0"
    return format(value.normalize(), "f")


def format_ppb(ppb: int) -> str:
    """A rate in parts per billion as the API shows rates ("0.0000125"; zero as "0.0")."""
    return format_ratio(ppb, 1_000_000_000, 0) if ppb else "0.0"


def usd_to_units(text: str | int | Decimal) -> int:
    """USDC amount (decimal string) to micro-USDC."""
    return to_units(text, USD_DECIMALS, what="usd amount")


def format_usd(micro: int) -> str:
    return format_units(micro, USD_DECIMALS)


def div_ceil(numerator: int, denominator: int) -> int:
    """Integer division rounding toward +infinity (the venue's side for requirements)."""
    return -((-numerator) // denominator)


def mul_ratio(amount: int, ppm: int, *, round_up: bool) -> int:
    """``amount * ppm / 1e6`` rounded up or down; rates are parts per million."""
    product = amount * ppm
    return div_ceil(product, 1_000_000) if round_up else product // 1_000_000


def decimal_to_units_rounded(value: Decimal, decimals: int, *, up: bool) -> int:
    """Round a Decimal to integer units in a stated direction (for derived prices)."""
    rounding = ROUND_CEILING if up else ROUND_FLOOR
    return int(value.scaleb(decimals).to_integral_value(rounding=rounding))


def significant_figures(units: int) -> int:
    """Number of significant figures of an integer count of units (0 has none)."""
    digits = str(abs(units)).rstrip("0")
    return len(digits)
