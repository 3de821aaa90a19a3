"""Scenario files: every shipped file loads into an oracle configuration and a market
table the services accept; a ramp is the move it says; the same seed gives the same
price path, step for step."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from libs.common.markets import MarketRegistry, load_markets
from libs.common.settings import Settings
from services.oracle.config import OracleConfig, load_oracle_config
from services.oracle.sources.simulated import Simulator
from sim.run import agent_key, build_agents
from sim.scenario import (
    Ramp,
    Scenario,
    ScenarioError,
    load_scenario,
    markets_doc,
    oracle_doc,
    ramp_faults,
    to_toml,
)

SCENARIOS = sorted((Path(__file__).parents[2] / "sim" / "scenarios").glob("*.toml"))


def configs(scenario: Scenario, tmp: Path) -> tuple[OracleConfig, MarketRegistry]:
    (tmp / "markets.toml").write_text(to_toml(markets_doc(scenario)))
    (tmp / "oracle.toml").write_text(to_toml(oracle_doc(scenario)))
    markets = load_markets(tmp / "markets.toml")
    return load_oracle_config(Settings(), tmp / "oracle.toml", markets=markets), markets


def test_the_six_scenarios_exist() -> None:
    names = {p.stem for p in SCENARIOS}
    assert names == {
        "calm",
        "crash",
        "source_outage",
        "manipulated_source",
        "funding_spike",
        "liquidity_drought",
    }


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_gives_configs_the_services_accept(path: Path, tmp_path: Path) -> None:
    scenario = load_scenario(path)
    oracle, markets = configs(scenario, tmp_path)
    assert oracle.simulator.seed == scenario.seed
    assert oracle.control.port == 0  # never the local stack's oracle endpoint
    assert set(scenario.markets) <= set(markets.names)


def test_scenario_specifics(tmp_path: Path) -> None:
    root = SCENARIOS[0].parent
    crash, _ = configs(load_scenario(root / "crash.toml"), tmp_path)
    assert [f.kind for f in crash.simulator.faults] == ["shift"] * 30
    outage, _ = configs(load_scenario(root / "source_outage.toml"), tmp_path)
    assert sorted(f.source for f in outage.simulator.faults) == ["binance", "bybit", "okx"]
    _, markets = configs(load_scenario(root / "funding_spike.toml"), tmp_path)
    assert markets.by_name("BTC").funding_interval_ms == 20_000
    assert markets.by_name("ETH").funding_interval_ms == 3_600_000


def test_a_ramp_is_its_move_in_equal_steps() -> None:
    faults = ramp_faults(
        Ramp(market="BTC", start_ms=20_000, duration_ms=60_000, bps=Decimal(-3000))
    )
    assert [f["start_ms"] for f in faults] == list(range(20_000, 80_000, 2000))
    factor = Decimal(1)
    for f in faults:
        factor *= 1 + Decimal(f["bps"]) / 10_000
    assert abs(factor - Decimal("0.7")) < Decimal("1e-12")


def path(config: OracleConfig, markets: MarketRegistry, steps: int) -> list[tuple[str, Decimal]]:
    sim = Simulator(config.simulator, [s.name for s in config.sources], markets.names)
    quotes: list[tuple[str, Decimal]] = []
    for k in range(steps):
        batch = sim.step(1_767_225_600_000 + k * config.simulator.step_ms)
        quotes.extend((q.source, q.price) for q in batch.prices if q.market == "BTC")
    return quotes


def test_same_seed_same_price_path(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS[0].parent / "crash.toml")
    one = path(*configs(scenario, tmp_path), 90)
    assert one == path(*configs(scenario, tmp_path), 90)
    other = path(*configs(scenario.with_run(None, scenario.seed + 1), tmp_path), 90)
    assert one != other
    # the crash is in the path: 30% down from 20 s to 80 s, plus a few bps of noise
    first = {s: p for s, p in one[:5]}
    last = {s: p for s, p in one[-5:]}
    for source in first:
        assert Decimal("0.68") < last[source] / first[source] < Decimal("0.72")


def test_toml_writer_round_trips_the_market_table() -> None:
    doc = markets_doc(load_scenario(SCENARIOS[0]))
    assert tomllib.loads(to_toml(doc)) == doc


def test_bad_scenarios_are_refused_with_the_entry_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[agent]]\nkind = "whale"\n')
    with pytest.raises(ScenarioError, match="whale"):
        load_scenario(bad)
    bad.write_text('name = "x"\n')
    with pytest.raises(ScenarioError, match="at least one"):
        load_scenario(bad)
    bad.write_text(
        'name = "x"\n[venue.market.DOGE]\nfunding_interval_ms = 1\n[[agent]]\nkind = "noise"\n'
    )
    with pytest.raises(ScenarioError, match="DOGE"):
        markets_doc(load_scenario(bad))
    bad.write_text('name = "x"\n[[agent]]\nkind = "noise"\nmarket = "PEPE"\n')
    with pytest.raises(ScenarioError, match="PEPE"):
        markets_doc(load_scenario(bad))


def test_a_scenarios_agents_are_named_and_keyed_by_the_seed() -> None:
    crash = load_scenario(SCENARIOS[0].parent / "crash.toml")
    agents = build_agents(crash)
    names = [a.name for a, _ in agents]
    assert names == [
        *(f"market_maker-{i}" for i in range(3)),
        *(f"noise-{i}" for i in range(4)),
        *(f"trend-{i}" for i in range(4)),
        "funding_arb-0",
    ]
    assert [str(d) for _, d in agents[:4]] == ["2000000"] * 3 + ["100000"]
    keys = [agent_key(crash.seed, n).address for n in names]
    assert len(set(keys)) == len(keys)
    assert keys == [agent_key(crash.seed, n).address for n in names]
    assert keys[0] != agent_key(crash.seed + 1, names[0]).address
