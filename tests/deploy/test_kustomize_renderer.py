"""The offline renderer does what kustomize does for the features deploy/ uses, and no more."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.errors import KustomizeError, UnsupportedFeature
from tests.deploy.kustomize import Manifest, build, config_map_hash, parse_env_file
from tests.deploy.manifests import BASE, OVERLAYS, overlay_dir

FIXTURE = Path(__file__).parent / "fixtures" / "tiny"
# The name kustomize v5.5.0 (kubectl 1.32) gives the fixture's merged ConfigMap.
KUSTOMIZE_CONFIG_NAME = "app-config-58hhhd7c8k"


def _by_id(objects: list[Manifest]) -> dict[tuple[str, str], Manifest]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


@pytest.fixture(scope="module")
def tiny() -> dict[tuple[str, str], Manifest]:
    return _by_id(build(FIXTURE / "overlay"))


def _app_pod(tiny: dict[tuple[str, str], Manifest]) -> dict[str, Any]:
    pod: dict[str, Any] = tiny[("Deployment", "app")]["spec"]["template"]["spec"]
    return pod


def _main_container(tiny: dict[tuple[str, str], Manifest]) -> dict[str, Any]:
    (main,) = (c for c in _app_pod(tiny)["containers"] if c["name"] == "main")
    return dict(main)


def test_namespace_is_set_on_every_object(tiny: dict[tuple[str, str], Manifest]) -> None:
    assert {o["metadata"].get("namespace") for o in tiny.values()} == {"tiny"}


def test_labels_of_base_and_overlay_go_on_metadata_but_never_on_selectors(
    tiny: dict[tuple[str, str], Manifest],
) -> None:
    for manifest in tiny.values():
        assert manifest["metadata"]["labels"] == {"team": "base", "env": "overlay"}
    deployment = tiny[("Deployment", "app")]
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "app"}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "app"}
    assert tiny[("Service", "app")]["spec"]["selector"] == {"app": "app"}


def test_images_get_new_name_and_tag_or_digest(tiny: dict[tuple[str, str], Manifest]) -> None:
    images = {c["name"]: c["image"] for c in _app_pod(tiny)["containers"]}
    assert images["main"] == "registry.example.com/app:2.0"
    assert images["sidecar"] == "example/sidecar@sha256:" + "0123456789abcdef" * 4


def test_replicas_override_the_base_count(tiny: dict[tuple[str, str], Manifest]) -> None:
    assert tiny[("Deployment", "app")]["spec"]["replicas"] == 5


def test_patch_merges_env_by_name_with_patch_entries_first(
    tiny: dict[tuple[str, str], Manifest],
) -> None:
    env = [(e["name"], e.get("value")) for e in _main_container(tiny)["env"]]
    assert env == [("CHANGED", "new"), ("ADDED", "2"), ("KEPT", "1"), ("FROM_CONFIG", None)]


def test_patch_replaces_lists_without_a_merge_key(tiny: dict[tuple[str, str], Manifest]) -> None:
    assert _main_container(tiny)["args"] == ["--new"]


def test_patch_merges_volumes_by_name_and_null_deletes_a_key(
    tiny: dict[tuple[str, str], Manifest],
) -> None:
    assert _app_pod(tiny)["volumes"] == [
        {"name": "data", "emptyDir": {}},
        {"name": "tmp", "hostPath": {"path": "/var/tmp"}},
        {"name": "config", "configMap": {"name": KUSTOMIZE_CONFIG_NAME}},
    ]
    mounts = [m["mountPath"] for m in _main_container(tiny)["volumeMounts"]]
    assert mounts == ["/data", "/tmp"]


def test_patch_with_delete_directive_removes_the_object(
    tiny: dict[tuple[str, str], Manifest],
) -> None:
    assert ("ServiceAccount", "doomed") not in tiny


def test_generated_config_map_merges_overlay_literals_into_base_env_file(
    tiny: dict[tuple[str, str], Manifest],
) -> None:
    config = tiny[("ConfigMap", KUSTOMIZE_CONFIG_NAME)]
    assert config["data"] == {"EMPTY": "", "EXTRA": "1", "GREETING": "bonjour"}


def test_generated_name_carries_kustomizes_content_hash_and_references_follow_it(
    tiny: dict[tuple[str, str], Manifest],
) -> None:
    assert ("ConfigMap", KUSTOMIZE_CONFIG_NAME) in tiny
    container = _main_container(tiny)
    assert container["envFrom"] == [{"configMapRef": {"name": KUSTOMIZE_CONFIG_NAME}}]
    (from_config,) = (e for e in container["env"] if e["name"] == "FROM_CONFIG")
    assert from_config["valueFrom"]["configMapKeyRef"]["name"] == KUSTOMIZE_CONFIG_NAME


def test_config_map_hash_changes_with_the_data() -> None:
    first = config_map_hash({"data": {"A": "1"}})
    assert first != config_map_hash({"data": {"A": "2"}})
    assert len(first) == 10 and first.isalnum()


def test_env_file_parsing_skips_comments_and_keeps_empty_values(tmp_path: Path) -> None:
    env = tmp_path / "x.env"
    env.write_text("# c\n\n  A=1\nB=\nC=x=y\n", encoding="utf-8")
    assert parse_env_file(env) == {"A": "1", "B": "", "C": "x=y"}


@pytest.mark.parametrize(
    "content",
    ['A="quoted"\n', "A=1 \n", "FROM_ENVIRONMENT\n"],
    ids=["quotes", "trailing-blank", "no-equals"],
)
def test_env_file_forms_kustomize_reads_differently_are_refused(
    tmp_path: Path, content: str
) -> None:
    env = tmp_path / "x.env"
    env.write_text(content, encoding="utf-8")
    with pytest.raises(UnsupportedFeature):
        parse_env_file(env)


def _write_kustomization(directory: Path, body: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    return directory


def test_an_unsupported_kustomization_field_is_refused_by_name(tmp_path: Path) -> None:
    directory = _write_kustomization(tmp_path, {"namePrefix": "x-", "resources": []})
    with pytest.raises(UnsupportedFeature, match="namePrefix"):
        build(directory)


def test_label_injection_into_selectors_is_refused(tmp_path: Path) -> None:
    entry = {"pairs": {"a": "b"}, "includeSelectors": True}
    directory = _write_kustomization(tmp_path, {"labels": [entry]})
    with pytest.raises(UnsupportedFeature, match="labels"):
        build(directory)


def test_a_patch_without_target_is_an_error(tmp_path: Path) -> None:
    patch = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "missing"}}
    (tmp_path / "patch.yaml").write_text(yaml.safe_dump(patch), encoding="utf-8")
    directory = _write_kustomization(tmp_path, {"patches": [{"path": "patch.yaml"}]})
    with pytest.raises(KustomizeError, match="Service/missing"):
        build(directory)


def test_patching_lists_of_non_workload_kinds_is_refused(tmp_path: Path) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    (tmp_path / "service.yaml").write_text(
        yaml.safe_dump({**service, "spec": {"ports": [{"port": 80}]}}), encoding="utf-8"
    )
    (tmp_path / "patch.yaml").write_text(
        yaml.safe_dump({**service, "spec": {"ports": [{"port": 81}]}}), encoding="utf-8"
    )
    body = {"resources": ["service.yaml"], "patches": [{"path": "patch.yaml"}]}
    with pytest.raises(UnsupportedFeature, match=r"spec\.ports"):
        build(_write_kustomization(tmp_path, body))


# --- the oracle: real kustomize, where a kubectl binary is installed ------------------------

KUBECTL = shutil.which("kubectl")


def _kubectl_kustomize(directory: Path) -> dict[tuple[str, str], Manifest]:
    assert KUBECTL is not None
    output = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return _by_id([d for d in yaml.safe_load_all(output) if d is not None])


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl here to compare with real kustomize")
@pytest.mark.parametrize(
    "directory",
    [FIXTURE / "overlay", BASE, *(overlay_dir(o) for o in OVERLAYS)],
    ids=["fixture", "base", *OVERLAYS],
)
def test_renders_exactly_what_kubectl_kustomize_renders(directory: Path) -> None:
    assert _by_id(build(directory)) == _kubectl_kustomize(directory)
