"""Every rendered object is valid for the API server, offline.

Built-in kinds go through kubernetes-validate's bundled schemas in strict mode (unknown fields
fail) for the oldest and newest Kubernetes versions it ships; custom resources go through the
schemas in custom_resources.py.
"""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from kubernetes_validate.utils import all_versions  # type: ignore[import-untyped]

from tests.deploy.custom_resources import SCHEMAS
from tests.deploy.kustomize import Manifest
from tests.deploy.manifests import OVERLAYS, rendered

KUBERNETES_VERSIONS = (all_versions()[0], all_versions()[-1])


def _object_id(manifest: Manifest) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def _cases() -> list[Any]:
    return [
        pytest.param(overlay, manifest, id=f"{overlay}-{_object_id(manifest)}")
        for overlay in OVERLAYS
        for manifest in rendered(overlay)
    ]


def _is_custom(manifest: Manifest) -> bool:
    return (manifest["apiVersion"], manifest["kind"]) in SCHEMAS


@pytest.mark.parametrize(("overlay", "manifest"), _cases())
def test_rendered_object_matches_its_schema(overlay: str, manifest: Manifest) -> None:
    if _is_custom(manifest):
        schema = SCHEMAS[(manifest["apiVersion"], manifest["kind"])]
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(manifest))
        assert not errors, "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
        return
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{exc.message}: add a schema for it to custom_resources.py")
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path)
            pytest.fail(
                f"{overlay}: {_object_id(manifest)} at {path}: {exc.message} (k8s {version})"
            )


def test_the_strict_check_rejects_a_misspelt_field() -> None:
    deployment = next(m for m in rendered("prod") if m["kind"] == "Deployment")
    container = dict(deployment["spec"]["template"]["spec"]["containers"][0])
    container["readinesProbe"] = container["readinessProbe"]
    template = {**deployment["spec"]["template"], "spec": {"containers": [container]}}
    broken = {**deployment, "spec": {**deployment["spec"], "template": template}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("key", sorted(f"{v}/{k}" for v, k in SCHEMAS))
def test_custom_resource_schemas_reject_a_misspelt_spec_field(key: str) -> None:
    api_version, kind = key.rsplit("/", 1)
    schema = SCHEMAS[(api_version, kind)]
    valid = next(m for m in rendered("prod") if (m["apiVersion"], m["kind"]) == (api_version, kind))
    jsonschema.validate(valid, schema)
    with pytest.raises(jsonschema.ValidationError, match="replicaz"):
        jsonschema.validate({**valid, "spec": {**valid["spec"], "replicaz": 3}}, schema)
