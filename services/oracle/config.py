"""The oracle's configuration: sources and weights, aggregation rules, the simulator, replay
and the live adapters, read from ``config/oracle.toml`` into frozen typed objects.

Four settings predate the file and still win over it when they are set in the
environment (or passed to ``Settings``): ``EXCHANGE_ORACLE_INTERVAL_MS`` (cadence and
simulator step), ``EXCHANGE_ORACLE_SEED``, ``EXCHANGE_ORACLE_VOLATILITY_BPS`` (every
simulated market) and ``EXCHANGE_ORACLE_START_PRICES``.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec

from libs.common.markets import MarketRegistry
from libs.common.money import parse_decimal
from libs.common.settings import Settings

DEFAULT_ORACLE_FILE = Path(__file__).resolve().parents[2] / "config" / "oracle.toml"

Feed = Literal["simulated", "replay", "exchanges"]
FaultKind = Literal["outage", "frozen", "spike", "drift", "shift"]
EXCHANGES = ("binance", "okx", "bybit", "coinbase", "kraken")


class ConfigError(ValueError):
    """The oracle configuration is inconsistent; the message names the entry."""


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Rules(_Strict, frozen=True, kw_only=True):
    """How source prices become an index (all times in ms, all bounds in basis points)."""

    cadence_ms: int = 1000
    significant_move_bps: int = 20
    staleness_ms: int = 5000
    min_sources: int = 3
    min_weight: int = 5
    outlier_bps: int = 100
    breaker_bps: int = 1000
    breaker_window_ms: int = 60_000
    breaker_confirm_ms: int = 5000

    def __post_init__(self) -> None:
        for name in ("cadence_ms", "staleness_ms", "min_sources", "min_weight"):
            if getattr(self, name) < 1:
                raise ValueError(f"rules.{name} must be at least 1")
        for name in ("outlier_bps", "breaker_bps", "breaker_window_ms"):
            if getattr(self, name) < 1:
                raise ValueError(f"rules.{name} must be at least 1")
        if self.significant_move_bps < 0 or self.breaker_confirm_ms < 0:
            raise ValueError("rules.significant_move_bps and breaker_confirm_ms cannot be < 0")
        if self.outlier_bps >= 10_000 or self.breaker_bps >= 10_000:
            raise ValueError("rules.outlier_bps and breaker_bps must be below 10000 (100%)")


class SourceRule(_Strict, frozen=True, kw_only=True):
    """One named source: its weight in the median, its staleness bound, and (for live
    feeds) which adapter, endpoint and symbols it uses."""

    name: str
    weight: int
    staleness_ms: int = 0
    exchange: str = ""
    url: str = ""
    symbol: str = ""
    symbols: dict[str, str] = {}

    def symbol_for(self, market: str, template: str) -> str:
        """The exchange's symbol for a market: an explicit entry, else the template."""
        return self.symbols.get(market) or (self.symbol or template).format(market=market)


class MarketPath(_Strict, frozen=True, kw_only=True):
    """Simulated price path of one market: GBM with jumps, per step of the simulator.

    Jumps and the sources' disagreement are scaled by the volatility, so a market with
    ``volatility_bps = 0`` and no drift stays exactly at its start price."""

    start: Decimal | None = None
    volatility_bps: float = 10.0
    drift_bps: float = 0.0
    jump_rate: float = 0.0
    jump_sigmas: float = 0.0
    noise_ratio: float = 0.0


class Fault(_Strict, frozen=True, kw_only=True):
    """A scripted fault, timed from the simulator's first step.

    ``outage``: the source sends nothing; ``frozen``: it repeats the price it had when the
    fault began; ``spike``: it reports ``bps`` away; ``drift``: it slides away to ``bps``
    over the duration; ``shift``: every source moves ``bps`` (a real market jump) and
    stays there. ``duration_ms = 0`` means until the end; an empty market means all."""

    kind: FaultKind
    start_ms: int
    duration_ms: int = 0
    source: str = ""
    market: str = ""
    bps: Decimal = Decimal(0)

    def active(self, elapsed_ms: int) -> bool:
        if elapsed_ms < self.start_ms:
            return False
        return self.duration_ms == 0 or elapsed_ms < self.start_ms + self.duration_ms


class SimulatorConfig(_Strict, frozen=True, kw_only=True):
    seed: int = 7
    step_ms: int = 1000
    markets: dict[str, MarketPath] = {}
    faults: tuple[Fault, ...] = ()


class ReplayConfig(_Strict, frozen=True, kw_only=True):
    """A recorded tick file (JSONL or CSV: time, source, symbol, price); ``speed`` 1 is
    real time, 0 as fast as the bus takes it."""

    file: str = ""
    speed: float = 1.0

    @property
    def path(self) -> Path | None:
        return Path(self.file) if self.file else None


class WebSocketConfig(_Strict, frozen=True, kw_only=True):
    """Reconnection of the live adapters: exponential backoff with jitter, and a silent
    connection (no data, no heartbeat) counts as dead after ``idle_timeout_ms``."""

    backoff_initial_ms: int = 500
    backoff_max_ms: int = 30_000
    idle_timeout_ms: int = 30_000
    connect_timeout_ms: int = 10_000
    ping_interval_ms: int = 20_000


class ControlConfig(_Strict, frozen=True, kw_only=True):
    """The operator override endpoint (on ``EXCHANGE_METRICS_HOST``); port 0 disables it."""

    port: int = 0


class OracleConfig(_Strict, frozen=True, kw_only=True):
    feed: Feed = "simulated"
    rules: Rules = Rules()
    sources: tuple[SourceRule, ...] = ()
    simulator: SimulatorConfig = SimulatorConfig()
    replay: ReplayConfig = ReplayConfig()
    websocket: WebSocketConfig = WebSocketConfig()
    control: ControlConfig = ControlConfig()


def parse_start_prices(text: str) -> dict[str, Decimal]:
    """``"BTC=100000,ETH=3500"`` to exact Decimals by market."""
    out: dict[str, Decimal] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        name, sep, price = pair.partition("=")
        if not sep:
            raise ConfigError(f"start price {pair!r} is not NAME=PRICE")
        value = parse_decimal(price.strip())
        if value <= 0:
            raise ConfigError(f"start price of {name.strip()} must be positive")
        out[name.strip()] = value
    return out


def _simulator_doc(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``[simulator]`` table with the market defaults folded into each
    ``[simulator.market.NAME]``, and those defaults (for markets it does not name)."""
    path_fields = set(MarketPath.__struct_fields__) - {"start"}
    defaults = {k: raw.pop(k) for k in list(raw) if k in path_fields}
    markets = raw.pop("market", {})
    if not isinstance(markets, dict):
        raise ConfigError("[simulator.market.NAME] tables expected")
    raw["markets"] = {name: {**defaults, **table} for name, table in markets.items()}
    raw["faults"] = raw.pop("fault", [])
    return raw, defaults


def load_oracle_config(
    settings: Settings, path: Path | str | None = None, *, markets: MarketRegistry | None = None
) -> OracleConfig:
    """Read and check the oracle file, then apply the ``EXCHANGE_ORACLE_*`` overrides."""
    source = Path(path or settings.oracle_config_file or DEFAULT_ORACLE_FILE)
    with source.open("rb") as fh:
        doc = tomllib.load(fh)
    doc["sources"] = doc.pop("source", [])
    sim, defaults = _simulator_doc(dict(doc.pop("simulator", {})))
    try:
        config = msgspec.convert({**doc, "simulator": sim}, OracleConfig, strict=False)
        default_path = msgspec.convert(defaults, MarketPath, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    config = _with_overrides(config, settings, default_path, markets or settings.markets)
    replay_path = config.replay.path
    if replay_path is not None and not replay_path.is_absolute():
        resolved = str((source.parent / replay_path).resolve())
        config = msgspec.structs.replace(
            config, replay=msgspec.structs.replace(config.replay, file=resolved)
        )
    check(config, markets or settings.markets)
    return config


def _with_overrides(
    config: OracleConfig, settings: Settings, default_path: MarketPath, markets: MarketRegistry
) -> OracleConfig:
    chosen = settings.model_fields_set
    sim = config.simulator
    paths = dict(sim.markets)
    for name in markets.names:  # every market gets a path, from the defaults if need be
        paths.setdefault(name, default_path)
    explicit = "oracle_start_prices" in chosen
    for name, price in parse_start_prices(settings.oracle_start_prices).items():
        if name in paths and (explicit or paths[name].start is None):
            paths[name] = msgspec.structs.replace(paths[name], start=price)
    if "oracle_volatility_bps" in chosen:
        vol = float(settings.oracle_volatility_bps)
        paths = {k: msgspec.structs.replace(p, volatility_bps=vol) for k, p in paths.items()}
    seed = settings.oracle_seed if "oracle_seed" in chosen else sim.seed
    step = settings.oracle_interval_ms if "oracle_interval_ms" in chosen else sim.step_ms
    rules = config.rules
    if "oracle_interval_ms" in chosen:
        rules = msgspec.structs.replace(rules, cadence_ms=settings.oracle_interval_ms)
    sim = msgspec.structs.replace(sim, markets=paths, seed=seed, step_ms=step)
    return msgspec.structs.replace(config, simulator=sim, rules=rules)


def check(config: OracleConfig, markets: MarketRegistry) -> None:
    """Refuse a configuration the aggregator could never satisfy or would misread."""
    names = [s.name for s in config.sources]
    if not names:
        raise ConfigError("at least one [[source]] is required")
    if len(set(names)) != len(names):
        raise ConfigError(f"source names repeat: {names}")
    for s in config.sources:
        if s.weight < 1:
            raise ConfigError(f"source {s.name}: weight must be at least 1")
        if s.staleness_ms < 0:
            raise ConfigError(f"source {s.name}: staleness_ms cannot be negative")
        if config.feed == "exchanges" and (s.exchange or s.name) not in EXCHANGES:
            raise ConfigError(
                f"source {s.name}: no adapter for exchange {s.exchange or s.name!r} "
                f"(known: {', '.join(EXCHANGES)})"
            )
    rules = config.rules
    total = sum(s.weight for s in config.sources)
    if rules.min_sources > len(names):
        raise ConfigError(f"rules.min_sources {rules.min_sources} > {len(names)} sources")
    if rules.min_weight > total:
        raise ConfigError(f"rules.min_weight {rules.min_weight} > total weight {total}")
    sim = config.simulator
    if sim.step_ms < 1:
        raise ConfigError("simulator.step_ms must be at least 1")
    for name, path in sim.markets.items():
        if name not in markets.names:
            raise ConfigError(f"simulator.market.{name}: not a market of the venue")
        if path.start is not None and path.start <= 0:
            raise ConfigError(f"simulator.market.{name}: start must be positive")
        if min(path.volatility_bps, path.jump_rate, path.jump_sigmas, path.noise_ratio) < 0:
            raise ConfigError(f"simulator.market.{name}: parameters cannot be negative")
        if path.jump_rate > 1:
            raise ConfigError(f"simulator.market.{name}: jump_rate is a probability per step")
    for fault in sim.faults:
        if fault.kind != "shift" and fault.source not in names:
            raise ConfigError(f"fault {fault.kind}: unknown source {fault.source!r}")
        if fault.market and fault.market not in markets.names:
            raise ConfigError(f"fault {fault.kind}: unknown market {fault.market!r}")
        if fault.start_ms < 0 or fault.duration_ms < 0:
            raise ConfigError(f"fault {fault.kind}: times cannot be negative")
        if fault.kind == "drift" and fault.duration_ms == 0:
            raise ConfigError("fault drift: needs a duration_ms to drift over")
    if config.feed == "replay":
        if config.replay.path is None or not config.replay.path.exists():
            raise ConfigError(f"replay.file {config.replay.file!r} does not exist")
        if config.replay.speed < 0:
            raise ConfigError("replay.speed cannot be negative")
    ws = config.websocket
    if min(ws.backoff_initial_ms, ws.backoff_max_ms, ws.idle_timeout_ms) < 1:
        raise ConfigError("websocket times must be at least 1 ms")
    if not 0 <= config.control.port < 65536:
        raise ConfigError("control.port must be a TCP port (0 disables)")
