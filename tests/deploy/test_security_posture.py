"""The relay pod runs locked down and shuts down within its grace period, in every overlay."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.manifests import (
    ADMIN_PORT,
    OVERLAYS,
    RELAY,
    find,
    relay_config,
    relay_container,
    relay_deployment,
    rendered,
)

RELAY_UID = 10001  # the Dockerfile's USER


def _pod(overlay: str) -> dict[str, Any]:
    return dict(relay_deployment(overlay)["spec"]["template"]["spec"])


def _probe_target(probe: dict[str, Any], overlay: str) -> tuple[str, int]:
    ports = {p["name"]: p["containerPort"] for p in relay_container(overlay)["ports"]}
    port = probe["httpGet"]["port"]
    return probe["httpGet"]["path"], ports.get(port, port)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_runs_as_the_images_fixed_non_root_uid_with_runtime_default_seccomp(
    overlay: str,
) -> None:
    pod_context = _pod(overlay)["securityContext"]
    container_context = relay_container(overlay)["securityContext"]
    assert pod_context["runAsNonRoot"] is True
    assert pod_context["runAsUser"] == RELAY_UID
    assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container_context.get("runAsUser", RELAY_UID) == RELAY_UID
    assert container_context.get("runAsNonRoot", True) is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_container_has_read_only_root_no_escalation_and_no_capabilities(overlay: str) -> None:
    context = relay_container(overlay)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tmp_is_a_writable_empty_dir(overlay: str) -> None:
    mounts = {m["mountPath"]: m["name"] for m in relay_container(overlay)["volumeMounts"]}
    volumes = {v["name"]: v for v in _pod(overlay)["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_service_account_token_and_no_service_link_variables(overlay: str) -> None:
    pod = _pod(overlay)
    account = find(rendered(overlay), "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_liveness_probes_healthz_and_readiness_probes_readyz_on_the_admin_port(
    overlay: str,
) -> None:
    container = relay_container(overlay)
    assert _probe_target(container["livenessProbe"], overlay) == ("/healthz", ADMIN_PORT)
    assert _probe_target(container["startupProbe"], overlay) == ("/healthz", ADMIN_PORT)
    assert _probe_target(container["readinessProbe"], overlay) == ("/readyz", ADMIN_PORT)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grace_period_exceeds_pre_stop_sleep_plus_drain_bound(overlay: str) -> None:
    command = relay_container(overlay)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    drain = float(relay_config(overlay)["RELAY_DRAIN_SECONDS"])
    grace = _pod(overlay)["terminationGracePeriodSeconds"]
    assert pre_stop > 0
    assert grace > pre_stop + drain


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_resources_are_requested_and_memory_is_limited(overlay: str) -> None:
    resources = relay_container(overlay)["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def _quantity(value: str) -> float:
    """A Kubernetes quantity in base units, for the suffixes our manifests use."""
    units = {"m": 1e-3, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


def test_prod_gets_more_cpu_and_memory_than_dev() -> None:
    dev, prod = relay_container("dev")["resources"], relay_container("prod")["resources"]
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            assert _quantity(prod[section][resource]) > _quantity(dev[section][resource])


def test_rolling_updates_never_drop_below_the_desired_replica_count() -> None:
    strategy = relay_deployment("prod")["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    pdb = find(rendered("prod"), "PodDisruptionBudget", RELAY)
    assert pdb["spec"]["maxUnavailable"] == 1
