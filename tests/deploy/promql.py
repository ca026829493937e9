"""The PromQL of the dashboard and of the alert rules: where it is, which metrics it names, and
a shape check for machines without promtool."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.manifests import DEPLOY

RULES_FILE = DEPLOY / "prometheus" / "msgflash-relay.rules.yml"
PROMETHEUS_RULE = DEPLOY / "base" / "prometheusrule.yaml"
DASHBOARD = DEPLOY / "grafana" / "msgflash-relay.json"
# Metrics that come from elsewhere: Prometheus itself and RabbitMQ's per-object metrics.
EXTERNAL_METRICS = frozenset({"up", "rabbitmq_queue_messages_ready", "rabbitmq_queue_consumers"})
# Grafana's variables, replaced by what they stand for so the query is plain PromQL.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    '"$job"': '".*"',
    "$rate_limit": "10",
}

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
     "unless", "offset", "inf", "nan"}
)  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


def rule_groups(path: Path = RULES_FILE) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    return groups


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard_queries() -> list[str]:
    """Every panel query, with Grafana's variables replaced: plain PromQL."""
    queries = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            query = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                query = query.replace(variable, value)
            queries.append(query)
    return queries


def every_query() -> list[str]:
    return [str(rule["expr"]) for rule in alerts()] + dashboard_queries()


def metric_names(query: str) -> set[str]:
    """The metric names a query selects (functions, keywords and label names left out)."""
    bare = _STRINGS.sub('""', query)
    bare = _GROUPING.sub(" ", bare)
    bare = _MATCHERS.sub(" ", bare)
    bare = _RANGES.sub(" ", bare)
    return {name for name in _IDENTIFIER.findall(bare) if name.lower() not in _KEYWORDS}


def shape_problems(query: str) -> list[str]:
    """What promtool would refuse at a glance: unbalanced brackets, quotes, Grafana leftovers."""
    problems = []
    bare = _STRINGS.sub('""', query)
    if bare.count('"') % 2:
        problems.append("unterminated string")
    for opening, closing in ("()", "{}", "[]"):
        depth = 0
        for char in bare:
            depth += (char == opening) - (char == closing)
            if depth < 0:
                break
        if depth != 0:
            problems.append(f"unbalanced {opening}{closing}")
    if "$" in bare:
        problems.append("a Grafana variable is left")
    if not metric_names(query):
        problems.append("selects no metric")
    return problems
