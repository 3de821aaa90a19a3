"""Scenario files: the price path and faults the oracle's simulated source plays, the
venue's market overrides, and the agents that trade, read from TOML into frozen objects.

The runner turns a scenario into an oracle configuration (``oracle_toml``) and a market
table (``markets_toml``) for its own venue processes, so the price path is the oracle's
own seeded simulator: the same seed gives the same path, step for step.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any, Literal

import msgspec

ROOT = Path(__file__).resolve().parents[1]
ORACLE_FILE = ROOT / "config" / "oracle.toml"
MARKETS_FILE = ROOT / "config" / "markets.toml"

AgentKind = Literal["market_maker", "noise", "trend", "funding_arb"]


class ScenarioError(ValueError):
    """The scenario file is inconsistent; the message names the entry."""


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Ramp(_Strict, frozen=True, kw_only=True):
    """A market-wide move of ``bps`` spread over ``steps`` equal (multiplicative) shifts
    between ``start_ms`` and ``start_ms + duration_ms``: a crash or a rally."""

    market: str
    start_ms: int
    duration_ms: int
    bps: Decimal
    steps: int = 30


class AgentGroup(_Strict, frozen=True, kw_only=True):
    """``count`` agents of one strategy, each funded with ``deposit`` USDC."""

    kind: AgentKind
    count: int = 1
    deposit: Decimal = Decimal(100_000)
    market: str = "BTC"
    params: dict[str, Any] = {}


class Scenario(_Strict, frozen=True, kw_only=True):
    name: str
    description: str = ""
    duration_s: float = 60.0
    seed: int = 1
    tick_ms: int = 1000
    oracle: dict[str, Any] = {}
    venue: dict[str, Any] = {}
    insurance_fund: Decimal = Decimal(0)
    backstop_vault: Decimal = Decimal(0)
    ramps: tuple[Ramp, ...] = ()
    agents: tuple[AgentGroup, ...] = ()

    def with_run(self, duration_s: float | None, seed: int | None) -> Scenario:
        """The scenario with the command line's duration and seed, when given."""
        return msgspec.structs.replace(
            self,
            duration_s=self.duration_s if duration_s is None else duration_s,
            seed=self.seed if seed is None else seed,
        )

    @property
    def markets(self) -> list[str]:
        """The markets the agents trade, in the order they first appear."""
        return list(dict.fromkeys(group.market for group in self.agents))


def load_scenario(path: Path | str) -> Scenario:
    with Path(path).open("rb") as fh:
        doc = tomllib.load(fh)
    doc["ramps"] = doc.pop("ramp", [])
    doc["agents"] = doc.pop("agent", [])
    try:
        scenario = msgspec.convert(doc, Scenario, strict=False)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    _check(scenario, path)
    return scenario


def _check(s: Scenario, path: Path | str) -> None:
    if s.duration_s <= 0 or s.tick_ms < 100:
        raise ScenarioError(f"{path}: duration_s must be positive and tick_ms at least 100")
    if not s.agents:
        raise ScenarioError(f"{path}: at least one [[agent]] is required")
    for group in s.agents:
        if group.count < 1 or group.deposit <= 0:
            raise ScenarioError(f"{path}: agent {group.kind}: count and deposit must be positive")
    for ramp in s.ramps:
        if ramp.steps < 1 or ramp.duration_ms < 0 or ramp.bps <= -10_000:
            raise ScenarioError(f"{path}: ramp on {ramp.market}: steps >= 1, bps > -10000")


# ---------------------------------------------------------------- oracle and market files


def ramp_faults(ramp: Ramp) -> list[dict[str, Any]]:
    """The ramp as ``shift`` faults of the oracle's simulator: ``steps`` equal factors
    whose product is the ramp's move (to 20 significant digits)."""
    with localcontext() as ctx:
        ctx.prec = 40
        factor = (1 + ramp.bps / 10_000) ** (Decimal(1) / ramp.steps)
        step_bps = ((factor - 1) * 10_000).quantize(Decimal("1e-12"))
    gap = ramp.duration_ms // ramp.steps
    return [
        {
            "kind": "shift",
            "market": ramp.market,
            "start_ms": ramp.start_ms + i * gap,
            "bps": str(step_bps),
        }
        for i in range(ramp.steps)
    ]


def oracle_doc(s: Scenario) -> dict[str, Any]:
    """config/oracle.toml with the scenario's simulator, faults and rules, the seed of
    the run, and no operator endpoint (the local stack's oracle may hold its port)."""
    with ORACLE_FILE.open("rb") as fh:
        doc = tomllib.load(fh)
    doc.pop("replay", None)
    doc["feed"] = "simulated"
    doc["control"] = {"port": 0}
    oracle = dict(s.oracle)
    doc["rules"] = {**doc.get("rules", {}), **oracle.pop("rules", {})}
    sim = dict(doc.get("simulator", {}))
    markets = {**sim.pop("market", {})}
    for name, table in oracle.pop("market", {}).items():
        markets[name] = {**markets.get(name, {}), **table}
    faults = list(oracle.pop("fault", []))
    for ramp in s.ramps:
        faults.extend(ramp_faults(ramp))
    sim.update(oracle)
    sim["seed"] = s.seed
    sim["market"] = markets
    sim.pop("fault", None)
    if faults:
        sim["fault"] = faults
    doc["simulator"] = sim
    return doc


def markets_doc(s: Scenario) -> dict[str, Any]:
    """config/markets.toml with the scenario's ``[venue.market.NAME]`` overrides."""
    with MARKETS_FILE.open("rb") as fh:
        doc = tomllib.load(fh)
    overrides = dict(s.venue.get("market", {}))
    for market in doc.get("market", []):
        market.update(overrides.pop(market["name"], {}))
    if overrides:
        raise ScenarioError(f"venue.market: unknown markets {sorted(overrides)}")
    listed = {market["name"] for market in doc.get("market", [])}
    unknown = [m for m in s.markets if m not in listed]
    if unknown:
        raise ScenarioError(f"agent: unknown markets {unknown} (listed: {sorted(listed)})")
    return doc


def to_toml(doc: dict[str, Any]) -> str:
    """A small TOML writer for the shapes of our configuration files: tables, arrays of
    tables, and values that are strings, numbers, booleans, or lists of them or of
    inline tables."""
    lines: list[str] = []
    _table(lines, [], doc)
    return "\n".join(lines) + "\n"


def _table(lines: list[str], path: list[str], table: dict[str, Any]) -> None:
    nested: list[tuple[str, Any]] = []
    for key, value in table.items():
        if isinstance(value, dict) or (
            isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        ):
            nested.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in nested:
        name = ".".join(_key(k) for k in [*path, key])
        if isinstance(value, dict):
            lines.extend(["", f"[{name}]"])
            _table(lines, [*path, key], value)
        else:
            for item in value:
                lines.extend(["", f"[[{name}]]"])
                _table(lines, [*path, key], item)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _value(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Decimal):
        return f'"{value}"'
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
