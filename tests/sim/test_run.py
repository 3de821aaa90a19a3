"""A short scenario end to end: the runner's own venue processes over the session's
Kafka and Redis, agents trading through the signed public API, and the report read
back from the logs and the end state."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import matplotlib.image
import msgspec
import pytest

from libs.localstack import LocalStack
from sim.report import CHARTS
from sim.run import run
from sim.scenario import load_scenario

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SCENARIOS = Path(__file__).parents[2] / "sim" / "scenarios"


async def test_a_short_calm_run_reports_what_a_user_checks(
    stack: LocalStack, tmp_path: Path
) -> None:
    scenario = load_scenario(SCENARIOS / "calm.toml").with_run(duration_s=20, seed=5)
    summary = await run(scenario, tmp_path, stack.bootstrap, stack.redis_url, progress=False)

    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert summary["agents"] == 9
    assert summary["trades"] > 0
    # every trade has a buyer's and a seller's fill, and the fills come from another
    # topic (account.events) than the trades (market.events)
    assert summary["fill_notional_micro"] == 2 * summary["volume_micro"] > 0
    assert summary["orders"]["filled"] > 0 and summary["orders"]["resting"] > 0
    # a calm market liquidates nobody; the funds hold what the faucet gave them
    assert summary["liquidations"]["cases"] == 0
    assert summary["funds"]["insurance_fund"]["end"] == "100000"
    assert summary["funds"]["vault"]["end"] == "500000"

    checks = summary["invariants"]
    assert summary["all_invariants_hold"], checks
    conservation = checks["conservation"]
    assert conservation["difference_micro"] == 0
    assert conservation["deposits_less_withdrawals"] == "3200000" == summary["deposits"]

    report = (tmp_path / "report.md").read_text()
    assert f"| **all** | **{summary['trades']}** | **{summary['volume']}** | |" in report
    assert f"accounts_value {conservation['accounts_value']}" in report
    assert "| conservation | yes |" in report
    for name in CHARTS:
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] > 200 and image.shape[1] > 500, name
    for log in (tmp_path / "logs").iterdir():
        assert "Traceback" not in log.read_text(), log.name


async def test_a_short_crash_liquidates_the_longs_and_keeps_the_books(
    stack: LocalStack, tmp_path: Path
) -> None:
    crash = load_scenario(SCENARIOS / "crash.toml").with_run(duration_s=35, seed=9)
    # the same -30%, faster: 10 steps, 2 s apart, from 5 s in
    ramp = msgspec.structs.replace(crash.ramps[0], start_ms=5000, duration_ms=20_000, steps=10)
    crash = msgspec.structs.replace(crash, ramps=(ramp,))
    summary = await run(crash, tmp_path, stack.bootstrap, stack.redis_url, progress=False)

    low = Decimal(summary["prices"]["BTC"]["low"])
    assert Decimal(69_000) < low < Decimal(71_500), summary["prices"]
    liquidations = summary["liquidations"]
    assert liquidations["cases"] >= 1
    stages = liquidations["steps_by_stage"]
    assert stages["triggered"] == liquidations["cases"]  # every case began with a trigger
    assert stages.get("closed", 0) + stages.get("recovered", 0) >= liquidations["cases"]
    assert summary["all_invariants_hold"], summary["invariants"]
    assert summary["invariants"]["conservation"]["difference_micro"] == 0
    report = (tmp_path / "report.md").read_text()
    assert f"| triggered | {stages['triggered']} |" in report
