"""A short scenario end to end: the runner's own venue processes over the session's
Kafka and Redis, agents trading through the signed public API, and the report read
back from the logs and the end state."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
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
