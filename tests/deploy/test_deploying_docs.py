"""The README's Deploying section says what the files and the relay actually are."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from service.metrics import Metrics
from tests.deploy.manifests import (
    RELAY,
    REPO_ROOT,
    find,
    relay_config,
    relay_container,
    relay_deployment,
    rendered,
    secret_template,
)

DOCS = REPO_ROOT / "README.md"
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def _text() -> str:
    return DOCS.read_text(encoding="utf-8").split("\n## Deploying", 1)[1]


def _exposed_metric_names() -> set[str]:
    names = set()
    for family in text_string_to_metric_families(Metrics().render().decode()):
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def test_every_relay_metric_the_docs_name_is_exposed() -> None:
    exposed = _exposed_metric_names()
    for name in set(re.findall(r"\brelay_[a-z_]+", _text())):
        base = next((name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name)
        assert base in exposed, f"README Deploying names {name}: not exposed"


def test_every_repository_path_the_docs_name_exists() -> None:
    paths = re.findall(r"`((?:deploy|tests|docs|service)/[^`\s]*)`", _text())
    assert paths
    for path in paths:
        assert list(REPO_ROOT.glob(path.rstrip("/"))), f"README Deploying names {path}"


def test_the_documented_secret_command_sets_exactly_the_template_keys() -> None:
    command = _text().split("create secret generic msgflash-relay-secrets", 1)[1]
    command = command.split("```", 1)[0]
    keys = set(re.findall(r"--from-literal=([A-Z_]+)=", command))
    assert keys == set(secret_template()["stringData"])


def test_the_documented_shutdown_arithmetic_matches_the_manifests() -> None:
    pre_stop = relay_container("prod")["lifecycle"]["preStop"]["exec"]["command"][1]
    drain = relay_config("prod")["RELAY_DRAIN_SECONDS"]
    grace = relay_deployment("prod")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    text = " ".join(_text().split())
    assert f"sleeps {pre_stop} s" in text
    assert f"`RELAY_DRAIN_SECONDS` ({drain} s)" in text
    assert f"{grace} s = {pre_stop} + {drain} + " in text


def test_the_documented_replica_range_matches_the_prod_autoscaler() -> None:
    spec = find(rendered("prod"), "ScaledObject", RELAY)["spec"]
    value = spec["triggers"][0]["metadata"]["value"]
    text = " ".join(_text().split())
    assert f"between {spec['minReplicaCount']} and {spec['maxReplicaCount']} replicas" in text
    assert f"({value} ready messages per replica" in text
