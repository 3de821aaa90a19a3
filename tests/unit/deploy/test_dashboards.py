"""The Grafana dashboards (deploy/grafana/dashboards) and their provisioning.

Every panel must query series the services really export (libs.common.metrics.REGISTRY),
with labels those series carry, in PromQL that Prometheus parses.
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
    DASHBOARDS_DIR,
    SCRAPE_SERIES,
    dashboards,
    exported_series,
    panel_queries,
    panels,
    plain,
    selection,
    unknown_references,
    variable_queries,
)

ROOT = Path(__file__).resolve().parents[3]
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMTOOL = shutil.which("promtool")

# The five dashboards issue #8 asks for, by uid.
EXPECTED = {
    "exchange-overview": "venue overview",
    "exchange-markets": "markets",
    "exchange-risk": "risk and liquidations",
    "exchange-oracle": "oracle health",
    "exchange-pipeline": "pipeline lag and latency",
}
GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)")


def datasource() -> dict[str, Any]:
    loaded = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = loaded["datasources"]
    assert isinstance(source, dict)
    return source


def compose_mount(host_dir: Path, service: str) -> str:
    """Where ``service`` in docker-compose.yml mounts ``host_dir`` from the repository."""
    spec = yaml.safe_load(COMPOSE_FILE.read_text())["services"][service]
    for mount in spec["volumes"]:
        source, target = mount.split(":")[:2]
        if (COMPOSE_FILE.parent / source).resolve() == host_dir.resolve():
            return str(target)
    raise AssertionError(f"{service} does not mount {host_dir}")


def test_the_five_dashboards_exist_with_unique_uids_and_titles() -> None:
    loaded = dashboards()
    uids = [d["uid"] for d in loaded.values()]
    assert sorted(uids) == sorted(EXPECTED)
    titles = [d["title"] for d in loaded.values()]
    assert len(set(titles)) == len(titles)
    for dashboard in loaded.values():
        assert EXPECTED[dashboard["uid"]] in dashboard["title"].lower()
        assert "perp-exchange" in dashboard["tags"]


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARDS_DIR.glob("*.json")))
def test_panels_have_titles_queries_and_a_place_on_the_grid(name: str) -> None:
    dashboard = dashboards()[name]
    placed: list[tuple[int, int, int, int]] = []
    ids = []
    for panel in dashboard["panels"]:
        ids.append(panel["id"])
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x, y, w, h in placed:
            overlaps = pos["x"] < x + w and x < pos["x"] + pos["w"]
            overlaps = overlaps and pos["y"] < y + h and y < pos["y"] + pos["h"]
            assert not overlaps, f"{panel['title']!r} overlaps another panel"
        placed.append((pos["x"], pos["y"], pos["w"], pos["h"]))
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(dashboard):
        assert panel["title"] and panel.get("description"), panel.get("title")
        assert panel["targets"], panel["title"]
        assert all(target.get("expr") for target in panel["targets"]), panel["title"]


def test_every_panel_uses_the_provisioned_prometheus() -> None:
    uid = datasource()["uid"]
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid, (name, panel["title"])
        for variable in dashboard.get("templating", {}).get("list", []):
            assert variable["datasource"]["uid"] == uid, (name, variable["name"])


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARDS_DIR.glob("*.json")))
def test_every_panel_queries_series_the_services_export(name: str) -> None:
    known = {**exported_series(), **SCRAPE_SERIES}
    problems = [
        f"{query.panel}: {problem}"
        for query in panel_queries()
        if query.dashboard == name
        for problem in unknown_references(query.expr, known)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARDS_DIR.glob("*.json")))
def test_template_variables_read_real_labels_and_are_defined_where_used(name: str) -> None:
    known = exported_series()
    dashboard = dashboards()[name]
    defined = set()
    for variable, series, label in variable_queries(dashboard):
        assert not unknown_references(series, known), series
        (metric,) = selection(series).metrics
        assert label in known[metric], f"{metric} has no label {label!r}"
        defined.add(variable)
    for query in panel_queries():
        if query.dashboard == name:
            used = set(GRAFANA_VARIABLE.findall(query.expr)) - {"__rate_interval"}
            assert used <= defined, f"{query.panel}: undefined {sorted(used - defined)}"


def test_every_exported_series_is_on_some_dashboard() -> None:
    queried = set().union(*(selection(q.expr).metrics for q in panel_queries()))
    families = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for name in exported_series()
        if not name.endswith("_created")
    }
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in queried}
    assert not families - shown, f"on no dashboard: {sorted(families - shown)}"


def test_every_panel_query_is_promql_prometheus_parses(tmp_path: Path) -> None:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (deploy/local/prometheus.sh install)")
    # Each query as a recording rule: `promtool check rules` parses every expression.
    rules = [
        {"record": f"dashboard:panel_{i}", "expr": re.sub(r"\$\w+", "x", plain(q.expr))}
        for i, q in enumerate(panel_queries())
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisions_the_dashboards_compose_mounts() -> None:
    loaded = yaml.safe_load((PROVISIONING / "dashboards" / "perp-exchange.yml").read_text())
    (provider,) = loaded["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == compose_mount(DASHBOARDS_DIR, "grafana")
    assert compose_mount(PROVISIONING, "grafana") == "/etc/grafana/provisioning"


def test_the_data_source_is_the_compose_prometheus() -> None:
    source = datasource()
    assert source["type"] == "prometheus" and source["isDefault"] is True
    match = re.fullmatch(r"http://([\w-]+):(\d+)", source["url"])
    assert match, source["url"]
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert match.group(1) in services
    assert services[match.group(1)]["image"].startswith("prom/prometheus:")
    assert match.group(2) == "9090"  # Prometheus' default --web.listen-address
