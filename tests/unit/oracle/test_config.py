"""The oracle's configuration file and the EXCHANGE_ORACLE_* overrides."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from libs.common.settings import Settings
from services.oracle.config import DEFAULT_ORACLE_FILE, ConfigError, load_oracle_config


def test_the_shipped_file_has_the_reference_weights_and_runs_the_simulator() -> None:
    config = load_oracle_config(Settings())
    assert config.feed == "simulated"
    assert [(s.name, s.weight) for s in config.sources] == [
        ("binance", 3),
        ("okx", 2),
        ("bybit", 2),
        ("coinbase", 1),
        ("kraken", 1),
    ]
    assert config.rules.min_weight == 5  # a majority of the 9
    assert config.simulator.faults == ()
    assert {k: p.start for k, p in config.simulator.markets.items()} == {
        "BTC": Decimal(100000),
        "ETH": Decimal(3500),
        "SOL": Decimal(150),
    }
    assert config.simulator.markets["SOL"].volatility_bps == 15
    assert config.replay.path is not None and config.replay.path.exists()


def test_settings_that_are_set_win_over_the_file() -> None:
    config = load_oracle_config(
        Settings(
            oracle_volatility_bps=0,
            oracle_interval_ms=200,
            oracle_seed=11,
            oracle_start_prices="BTC=90000,XYZ=1",
        )
    )
    assert config.rules.cadence_ms == config.simulator.step_ms == 200
    assert config.simulator.seed == 11
    assert {p.volatility_bps for p in config.simulator.markets.values()} == {0}
    assert config.simulator.markets["BTC"].start == 90000
    assert config.simulator.markets["ETH"].start == 3500  # not named: the file's


def test_a_file_without_start_prices_takes_the_settings_defaults(tmp_path: Path) -> None:
    path = tmp_path / "oracle.toml"
    path.write_text(
        '[[source]]\nname = "a"\nweight = 1\n[rules]\nmin_sources = 1\nmin_weight = 1\n'
    )
    config = load_oracle_config(Settings(), path)
    assert config.simulator.markets["SOL"].start == 150


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "oracle.toml"
    path.write_text(DEFAULT_ORACLE_FILE.read_text() + "\n" + extra)
    return path


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ('[[source]]\nname = "okx"\nweight = 1\n', "source names repeat"),
        ('[[source]]\nname = "x"\nweight = 0\n', "weight must be at least 1"),
        ('[[simulator.fault]]\nkind = "outage"\nsource = "nope"\nstart_ms = 0\n', "unknown source"),
        ('[[simulator.fault]]\nkind = "drift"\nsource = "okx"\nstart_ms = 0\n', "needs a duration"),
        (
            '[[simulator.fault]]\nkind = "melt"\nsource = "okx"\nstart_ms = 0\n',
            "Invalid enum value 'melt'",
        ),
        ('[simulator.market.DOGE]\nstart = "1"\n', "not a market of the venue"),
    ],
)
def test_inconsistent_files_are_refused_with_the_entry(
    tmp_path: Path, extra: str, error: str
) -> None:
    with pytest.raises(ConfigError, match=error):
        load_oracle_config(Settings(), write(tmp_path, extra))


REPLAY = ('feed = "simulated"', 'feed = "replay"')


@pytest.mark.parametrize(
    ("edits", "error"),
    [
        ([("min_weight = 5 ", "min_weight = 10")], "min_weight 10 > total weight 9"),
        ([("min_sources = 3 ", "min_sources = 6")], "min_sources 6 > 5 sources"),
        ([("outlier_bps = 100 ", "outlier_bps = 0")], "outlier_bps must be at least 1"),
        ([("cadence_ms = 1000 ", "cadenze_ms = 1000")], "unknown field `cadenze_ms`"),
        ([REPLAY, ('file = "../tests', 'file = "../nowhere')], "replay.file .* does not exist"),
        (
            [('feed = "simulated"', 'feed = "exchanges"\n[[source]]\nname = "ftx"\nweight = 1')],
            "no adapter for exchange 'ftx'",
        ),
    ],
)
def test_rules_that_could_never_hold_are_refused(
    tmp_path: Path, edits: list[tuple[str, str]], error: str
) -> None:
    text = DEFAULT_ORACLE_FILE.read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / "oracle.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=error):
        load_oracle_config(Settings(), path)
