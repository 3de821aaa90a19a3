"""PromQL as the deploy tests read it: the series the services export and the series an
expression (alert rule, dashboard panel) selects.

The catalog comes from ``libs.common.metrics.REGISTRY``, so a metric renamed or removed
there breaks every rule and panel that still queries it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# marketdata keeps its two counters in its own module: imported here, they are in the
# registry whatever else this test run imported
import services.marketdata.service  # noqa: F401
from libs.common.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[3]
# The services, each its own scrape job: `job` names the service on every series.
JOBS = ("gateway", "risk", "matcher", "oracle", "liquidator", "marketdata")
DASHBOARDS_DIR = ROOT / "deploy" / "grafana" / "dashboards"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"

# Series Prometheus writes itself for every target it scrapes: not exported by a service,
# but the plainest "is it up" signal there is.
SCRAPE_SERIES = {"up": frozenset[str]()}
# Labels Prometheus attaches to every scraped sample (job/instance) or that the Kubernetes
# scrape config adds (namespace/pod).
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod"})

# Grafana's interval variables, replaced by a duration so the expression is plain PromQL.
GRAFANA_DURATIONS = re.compile(r"\$__rate_interval|\$__interval|\$__range|\$\{__\w+\}")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_BRACES = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset(
    "and or unless offset bool inf nan by without on ignoring group_left group_right".split()
)
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*([a-zA-Z_]\w*)\s*\)\s*$", re.S)


def exported_series() -> dict[str, frozenset[str]]:
    """Every sample name a service can export, with its label names.

    Counters expose ``<name>_total`` (and ``_created``), histograms ``_bucket`` (with
    ``le``), ``_sum`` and ``_count``; gauges their own name.
    """
    series: dict[str, frozenset[str]] = {}
    for family in REGISTRY.collect():
        # The registry knows each family's collector; its label names are what
        # .labels() accepts, whether or not a child exists yet.
        collector = REGISTRY._names_to_collectors[family.name]
        labels = frozenset(getattr(collector, "_labelnames", ()))
        if family.type == "counter":
            for suffix in ("_total", "_created"):
                series[family.name + suffix] = labels
        elif family.type == "histogram":
            series[family.name + "_bucket"] = labels | {"le"}
            for suffix in ("_sum", "_count", "_created"):
                series[family.name + suffix] = labels
        else:
            series[family.name] = labels
    return series


@dataclass(frozen=True)
class Selection:
    """What one PromQL expression reads: metric names, and label names per selector."""

    metrics: frozenset[str]
    matchers: tuple[tuple[str, frozenset[str]], ...]


def plain(expr: str, duration: str = "5m") -> str:
    """The expression with Grafana's interval variables replaced by ``duration``."""
    return GRAFANA_DURATIONS.sub(duration, expr)


def selection(expr: str) -> Selection:
    """Metric names and label matchers of a PromQL expression (functions, keywords,
    grouping labels, strings and durations are not metric names)."""
    expr = plain(expr)
    matchers = tuple(
        (name, frozenset(_MATCHER.findall(_STRING.sub('""', body))))
        for name, body in _SELECTOR.findall(expr)
    )
    bare = _STRING.sub('""', expr)
    bare = _BRACES.sub("", bare)
    bare = _RANGE.sub("", bare)
    bare = _GROUPING.sub("", bare)
    names = {
        name
        for name, call in _IDENT.findall(bare)
        if not call and name not in _KEYWORDS and not name.startswith("$")
    }
    return Selection(frozenset(names), matchers)


def unknown_references(expr: str, known: dict[str, frozenset[str]]) -> list[str]:
    """Problems with ``expr`` against the catalog ``known``: unknown series, unknown labels,
    or no series at all."""
    found = selection(expr)
    problems = [f"unknown series {name!r}" for name in sorted(found.metrics - known.keys())]
    for name, labels in found.matchers:
        if name in known:
            extra = labels - known[name] - TARGET_LABELS
            problems += [f"{name} has no label {label!r}" for label in sorted(extra)]
    if not found.metrics:
        problems.append("queries no series")
    return problems


# ------------------------------------------------------------------ dashboards


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    expr: str


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON by file name."""
    return {
        path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows; rows themselves excluded."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries() -> list[PanelQuery]:
    """Every Prometheus query of every panel of every dashboard."""
    queries = []
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                if "expr" in target:
                    queries.append(PanelQuery(name, panel.get("title", "?"), target["expr"]))
    return queries


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(variable, selector expression, label) of each ``label_values`` template variable."""
    found = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query)
        match = _LABEL_VALUES.match(text)
        assert match, f"variable {variable.get('name')!r}: use label_values(<series>, <label>)"
        found.append((variable["name"], match.group(1), match.group(2)))
    return found
