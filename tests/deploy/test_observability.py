"""The alert rules, the Grafana dashboard and the compose observability profile: they parse,
agree with each other and with the README. Whether every metric they name is exported is
checked against a running relay (tests/integration/test_observability_metrics.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from service.metrics import Metrics
from tests.deploy.manifests import COMPOSE_FILE, DEPLOY
from tests.deploy.promql import (
    DASHBOARD,
    EXTERNAL_LABELS,
    PROMETHEUS_RULE,
    RULES_FILE,
    SAMPLE_SUFFIXES,
    TARGET_LABELS,
    alerts,
    dashboard,
    dashboard_queries,
    every_query,
    kept_labels,
    label_uses,
    metric_names,
    rule_groups,
    shape_problems,
)

README = DEPLOY.parent / "README.md"
PROMTOOL = shutil.which("promtool")
ISSUE_ALERTS = {
    "MsgFlashRelayDeadLettersGrowing",
    "MsgFlashRelayRateLimited",
    "MsgFlashRelayQuotaGateClosed",
    "MsgFlashRelayDown",
    "MsgFlashRelayNoConsumer",
    "MsgFlashRelayNotReady",
    "MsgFlashRelayProviderErrors",
    "MsgFlashRelayTetherErrors",
    "MsgFlashRelayTetherRateLimited",
    "MsgFlashRelayWebhookSignatureFailures",
}


def _promtool_check(rules_file: Path) -> None:
    assert PROMTOOL is not None
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules_file)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_operator_rule_carries_exactly_the_plain_rules_file() -> None:
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text(encoding="utf-8"))
    assert rule["spec"]["groups"] == rule_groups()


def test_the_alerts_cover_what_on_call_needs() -> None:
    assert {rule["alert"] for rule in alerts()} == ISSUE_ALERTS


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed: the shape check runs")
def test_promtool_accepts_the_rules_file() -> None:
    _promtool_check(RULES_FILE)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed: the shape check runs")
def test_promtool_accepts_every_dashboard_query(tmp_path: Path) -> None:
    recorded = [
        {"record": f"dashboard:query_{n}", "expr": query}
        for n, query in enumerate(dashboard_queries())
    ]
    rules_file = tmp_path / "dashboard.rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}))
    _promtool_check(rules_file)


@pytest.mark.parametrize("query", every_query())
def test_every_query_has_the_shape_of_promql(query: str) -> None:
    assert shape_problems(query) == []


def test_the_shape_check_catches_what_it_is_for() -> None:
    assert shape_problems('sum(rate(relay_commands_total{job="x"}[5m])') == ["unbalanced ()"]
    assert shape_problems("rate(relay_x[$__rate_interval])") == ["a Grafana variable is left"]
    assert metric_names('sum by (code) (increase(relay_dead_lettered_total{a="b"}[15m])) > 0') == {
        "relay_dead_lettered_total"
    }


def _relay_labels() -> dict[str, frozenset[str]]:
    """Each sample name of the relay's collectors with its label names (``_bucket`` adds
    ``le``). prometheus_client has no public accessor for a collector's label names."""
    labels = {}
    for collector in vars(Metrics()).values():
        if isinstance(collector, MetricWrapperBase):
            names = frozenset(collector._labelnames)
            for suffix in SAMPLE_SUFFIXES[collector._type]:
                bucket = {"le"} if suffix == "_bucket" else set()
                labels[collector._name + suffix] = names | bucket
    return labels


RELAY_LABELS = _relay_labels()


def unknown_labels(query: str) -> list[str]:
    known = RELAY_LABELS | EXTERNAL_LABELS
    return [
        f"{metric} has no label {label}"
        for metric, label in label_uses(query)
        if label not in known.get(metric, frozenset()) | TARGET_LABELS
    ]


@pytest.mark.parametrize("query", every_query())
def test_every_label_a_query_selects_or_groups_by_is_a_label_of_its_metric(query: str) -> None:
    assert unknown_labels(query) == []


def test_the_label_check_catches_a_label_the_metric_does_not_have() -> None:
    assert RELAY_LABELS["relay_quota_gate_closed"] == {"account"}
    assert unknown_labels('max by (key) (relay_quota_gate_closed{job=~".*"})') == [
        "relay_quota_gate_closed has no label key"
    ]
    assert unknown_labels('sum(rate(relay_webhooks_total{account="a"}[5m])) by (result)') == [
        "relay_webhooks_total has no label account"
    ]
    assert unknown_labels("sum without (code) (relay_deferred_total)") == [
        "relay_deferred_total has no label code"
    ]
    bucket = "relay_msgflash_request_seconds_bucket"
    assert unknown_labels(f"sum by (le, endpoint) (rate({bucket}[5m]))") == []


def test_every_legend_shows_only_labels_its_query_keeps() -> None:
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target["legendFormat"]))
            assert shown <= kept_labels(target["expr"]), panel["title"]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_links_a_runbook_section_of_the_readme() -> None:
    headings = {
        _anchor(line.lstrip("#")) for line in README.read_text().splitlines() if line[:1] == "#"
    }
    for rule in alerts():
        target = rule["annotations"]["runbook_url"]
        assert target.startswith("README.md#"), rule["alert"]
        assert target.removeprefix("README.md#") in headings, rule["alert"]


def test_the_dashboard_is_importable_as_is() -> None:
    board = dashboard()
    panels = board["panels"]
    assert board["uid"] and board["title"] and "__inputs" not in board
    assert len({panel["id"] for panel in panels}) == len(panels)
    variables = {variable["name"] for variable in board["templating"]["list"]}
    assert {"datasource", "job", "rate_limit"} <= variables
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_the_dashboard_covers_every_area_of_the_relay() -> None:
    rows = {panel["title"] for panel in dashboard()["panels"] if panel["type"] == "row"}
    assert rows == {
        "Commands",
        "Provider calls",
        "Pacing and quota",
        "Retries and dead letters",
        "Webhooks",
        "In flight and drain",
    }


# --- the compose profile --------------------------------------------------------------------
def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return services


OBSERVABILITY = ("jaeger", "prometheus", "grafana")


def test_the_observability_stack_is_an_optional_profile_bound_to_localhost() -> None:
    services = _services()
    for name in OBSERVABILITY:
        assert services[name]["profiles"] == ["observability"], name
        for port in services[name]["ports"]:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    assert not [n for n, s in services.items() if n not in OBSERVABILITY and "profiles" in s]


def test_every_file_the_profile_mounts_exists() -> None:
    for name in OBSERVABILITY:
        for volume in _services()[name].get("volumes", []):
            source = volume.split(":")[0]
            assert (COMPOSE_FILE.parent / source).exists(), f"{name} mounts missing {source}"


def test_grafana_gets_the_dashboard_and_prometheus_scrapes_the_relay_and_rabbitmq() -> None:
    grafana = _services()["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    provider = yaml.safe_load(
        (COMPOSE_FILE.parent / "deploy/compose/grafana/dashboards.yml").read_text()
    )
    assert mounts["./deploy/grafana"] == provider["providers"][0]["options"]["path"]
    assert DASHBOARD.parent.name == "grafana"
    prometheus = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert set(jobs) == {"msgflash-relay", "rabbitmq"}  # the relay's: what up{job=...} expects
    assert jobs["msgflash-relay"]["static_configs"][0]["targets"] == ["relay:9090"]
    # The official image's rabbitmq_prometheus; per-object metrics carry the queue label.
    assert _services()["rabbitmq"]["image"].startswith("rabbitmq:3")
    assert jobs["rabbitmq"]["static_configs"][0]["targets"] == ["rabbitmq:15692"]
    assert jobs["rabbitmq"]["metrics_path"] == "/metrics/per-object"
    assert prometheus["rule_files"] == ["/etc/prometheus/rules/" + RULES_FILE.name]


def test_the_relay_exports_traces_to_jaeger_only_when_asked() -> None:
    environment = _services()["relay"]["environment"]
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "${OTEL_EXPORTER_OTLP_ENDPOINT:-}"
