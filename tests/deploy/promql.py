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
# Metrics that come from elsewhere, with their own labels: Prometheus itself and RabbitMQ's
# per-object metrics (/metrics/per-object).
EXTERNAL_LABELS = {
    "up": frozenset[str](),
    "rabbitmq_queue_messages_ready": frozenset({"vhost", "queue"}),
    "rabbitmq_queue_consumers": frozenset({"vhost", "queue"}),
}
EXTERNAL_METRICS = frozenset(EXTERNAL_LABELS)
# What the scrape adds to every series, whatever the metric.
TARGET_LABELS = frozenset({"job", "instance"})
# The sample names each metric type exposes, after its family name.
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created", ""),
    "gauge": ("",),
}
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
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_AGGREGATION = re.compile(r"\b(by|without)\s*\(([^)]*)\)")


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


def label_uses(query: str) -> list[tuple[str, str]]:
    """(metric, label) for each label a query selects by (``{label=...}``) or groups by
    (``by (...)``, ``without (...)``, for every metric of the expression it aggregates)."""
    bare = _STRINGS.sub('""', query)
    uses = [
        (metric, label)
        for metric, matchers in _SELECTOR.findall(bare)
        for label in _MATCHER.findall(matchers)
    ]
    for grouping in _AGGREGATION.finditer(bare):
        aggregated = metric_names(_aggregated(bare, grouping))
        uses += [(metric, label) for metric in aggregated for label in _labels(grouping[2])]
    return uses


def kept_labels(query: str) -> set[str]:
    """The labels a query's ``by (...)`` clauses keep: all a legend can show of an aggregate."""
    bare = _STRINGS.sub('""', query)
    return {
        label
        for grouping in _AGGREGATION.finditer(bare)
        if grouping[1] == "by"
        for label in _labels(grouping[2])
    }


def _labels(grouping: str) -> list[str]:
    return [label.strip() for label in grouping.split(",") if label.strip()]


def _aggregated(query: str, grouping: re.Match[str]) -> str:
    """What a grouping clause aggregates: the bracket after it (``sum by (a) (x)``) or, when
    none follows, the one before it (``sum(x) by (a)``)."""
    after = query[grouping.end() :].lstrip()
    if after.startswith("("):
        return _bracketed(after, "(", ")")
    before = query[: grouping.start()].rstrip()
    return _bracketed(before[::-1], ")", "(")[::-1]


def _bracketed(text: str, opening: str, closing: str) -> str:
    """``text`` up to the bracket that closes its first character."""
    depth = 0
    for end, char in enumerate(text):
        depth += (char == opening) - (char == closing)
        if depth == 0:
            return text[: end + 1]
    return text


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
