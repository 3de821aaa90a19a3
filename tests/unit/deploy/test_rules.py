"""The alert rules (deploy/prometheus/rules): valid for Prometheus, tested firing and quiet
by promtool, and written only against series the services export.

promtool is Debian's (deploy/local/prometheus.sh install, which `make test` runs).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.promql import (
    JOBS,
    RULES_DIR,
    SCRAPE_SERIES,
    exported_series,
    unknown_references,
)

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
TESTS_DIR = PROMETHEUS_DIR / "tests"
DEPLOY_GUIDE = ROOT / "docs" / "deploy.md"
PROMTOOL = shutil.which("promtool")

# What issue #8 asks to be alerted on, and the alerts that answer it.
REQUIRED_ALERTS = {
    "oracle stale": "OracleStale",
    "oracle short of quorum": "OracleQuorumLost",
    "circuit breaker tripped": "OracleCircuitBreakerTripped",
    "consumer lag growing": "ConsumerLagGrowing",
    "a processor stalled": "ProcessorStalled",
    "liquidation backlog": "LiquidationBacklog",
    "insurance fund drawdown": "InsuranceFundDrawdown",
    "an ADL event": "ADLEvent",
    "gateway 5xx rate": "GatewayHigh5xxRate",
}


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rule_test_files() -> list[Path]:
    return sorted(TESTS_DIR.glob("*.yml"))


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (deploy/local/prometheus.sh install)")
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_rule_files_pass_promtool_check() -> None:
    assert rule_files()
    result = promtool("check", "rules", *map(str, rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rule_unit_tests_pass() -> None:
    assert rule_test_files()
    result = promtool("test", "rules", *(p.name for p in rule_test_files()), cwd=TESTS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_scrape_config_passes_promtool_check() -> None:
    result = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_query_only_series_the_services_export() -> None:
    known = {**exported_series(), **SCRAPE_SERIES}
    known |= {rule["record"]: frozenset[str]() for rule in rules() if "record" in rule}
    problems = {
        rule.get("alert") or rule["record"]: unknown_references(rule["expr"], known)
        for rule in rules()
    }
    assert not {name: p for name, p in problems.items() if p}


def test_every_alert_the_issue_asks_for_exists() -> None:
    names = {rule["alert"] for rule in alerts()}
    missing = {need: name for need, name in REQUIRED_ALERTS.items() if name not in names}
    assert not missing


def test_every_alert_is_tested_both_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    covered: set[Path] = set()
    for path in rule_test_files():
        spec = yaml.safe_load(path.read_text())
        for name in spec["rule_files"]:
            rule_file = (path.parent / name).resolve()
            assert rule_file.exists(), f"{path.name}: {name} does not exist"
            covered.add(rule_file)
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert covered == {path.resolve() for path in rule_files()}, "a rule file has no tests"
    names = {rule["alert"] for rule in alerts()}
    assert not names - firing, f"never tested firing: {sorted(names - firing)}"
    assert not names - quiet, f"never tested quiet: {sorted(names - quiet)}"


def doc_anchors() -> set[str]:
    """GitHub's anchors for the headings of the deploy guide."""
    anchors = set()
    for line in DEPLOY_GUIDE.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_every_alert_says_how_bad_what_happened_and_where_the_runbook_is() -> None:
    anchors = doc_anchors()
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == "docs/deploy.md", name
        assert anchor in anchors, f"{name}: docs/deploy.md has no heading for #{anchor}"


def test_service_alerts_name_exactly_the_five_services() -> None:
    for rule in alerts():
        expr = rule["expr"]
        if not re.search(r"\bup\b", expr):
            continue
        jobs: set[str] = set()
        for alternatives in re.findall(r'job=~"([^"]+)"', expr):
            jobs |= set(alternatives.split("|"))
        jobs |= set(re.findall(r'"job",\s*"(\w+)"', expr))
        assert jobs == set(JOBS), f"{rule['alert']}: {sorted(jobs)}"
