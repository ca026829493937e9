"""An offline ``kustomize build`` for exactly the features deploy/ uses.

No kustomize binary can be installed by CI itself (Debian has none; kubectl comes with the
Google Cloud SDK, which is on some machines only), so the overlays are rendered here.
Supported: ``resources`` (files and kustomization directories), ``namespace``, ``labels``
(metadata only), ``images``, ``replicas``, ``patches`` (strategic-merge files, matched by
kind and name) and ``configMapGenerator`` (``envs``/``literals``, behaviors create, merge and
replace, kustomize's content-hash suffix and the rewrite of references to it). Any other field
raises ``UnsupportedFeature``. tests/deploy/test_kustomize_renderer.py compares the result with
``kubectl kustomize`` wherever kubectl is installed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.errors import KustomizeError, UnsupportedFeature
from tests.deploy.strategic_merge import is_delete_patch, merge_patch

Manifest = dict[str, Any]

KUSTOMIZATION_FILE = "kustomization.yaml"
SUPPORTED_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "resources",
        "namespace",
        "labels",
        "images",
        "replicas",
        "patches",
        "configMapGenerator",
    }
)
CLUSTER_SCOPED_KINDS = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "StorageClass"}
)
SCALABLE_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"})
POD_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Resource:
    """One object of the build; ``generated`` ConfigMaps get their hash suffix at the end."""

    manifest: Manifest
    generated: bool = False

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


@dataclass
class Build:
    """The resources of one kustomization, in the order kustomize accumulates them."""

    resources: list[Resource] = field(default_factory=list)

    def find(self, kind: str, name: str) -> Resource | None:
        return next((r for r in self.resources if r.kind == kind and r.name == name), None)

    def add(self, resource: Resource, origin: Path) -> None:
        if self.find(resource.kind, resource.name) is not None:
            raise KustomizeError(f"{origin}: {resource.kind}/{resource.name} is defined twice")
        self.resources.append(resource)


def build(directory: Path) -> list[Manifest]:
    """What ``kustomize build directory`` prints, as a list of objects."""
    result = accumulate(directory)
    renamed = {
        r.name: f"{r.name}-{config_map_hash(r.manifest)}" for r in result.resources if r.generated
    }
    for resource in result.resources:
        if resource.generated:
            resource.manifest["metadata"]["name"] = renamed[resource.name]
        else:
            _rewrite_config_map_references(resource.manifest, renamed)
    return [r.manifest for r in result.resources]


def accumulate(directory: Path) -> Build:
    """The kustomization in ``directory`` with generators and transformers applied, unhashed."""
    kustomization = _read_kustomization(directory)
    result = Build()
    for entry in kustomization.get("resources", []):
        for resource in _load_resource_entry(directory, entry):
            result.add(resource, directory / entry)
    for generator in kustomization.get("configMapGenerator", []):
        _generate_config_map(result, directory, generator)
    for entry in kustomization.get("patches", []):
        _apply_patch_file(result, directory, entry)
    if "namespace" in kustomization:
        _set_namespace(result, kustomization["namespace"])
    for entry in kustomization.get("labels", []):
        _add_labels(result, entry)
    for entry in kustomization.get("images", []):
        _set_image(result, entry)
    for entry in kustomization.get("replicas", []):
        _set_replicas(result, entry)
    return result


def config_map_hash(manifest: Manifest) -> str:
    """kustomize's 10-character suffix of a generated ConfigMap (api/hasher in kustomize v5).

    kustomize hashes ``{"kind", "name", "data"}`` as Go's json.Marshal writes it. Its name
    lookup uses the single path segment "metadata/name", which finds nothing, so the name
    always hashes as "": kept here, or the suffixes would differ from kustomize's.
    """
    encoded = _go_json({"kind": "ConfigMap", "name": "", "data": manifest.get("data", {})})
    digest = hashlib.sha256(encoded.encode("utf-8")).hexdigest()
    return digest[:10].translate(str.maketrans("013ae", "ghkmt"))


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as kustomize reads them: ``#`` comments and blank lines skipped."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        key, separator, value = stripped.partition("=")
        where = f"{path}:{number}"
        if not separator:
            raise UnsupportedFeature(f"{where}: {key!r} without '=' (read from the environment)")
        if not ENV_NAME.match(key):
            raise KustomizeError(f"{where}: {key!r} is not a valid environment variable name")
        if value != value.rstrip() or value[:1] in ("'", '"'):
            raise UnsupportedFeature(f"{where}: quoted values or trailing blanks in {key}")
        if key in values:
            raise KustomizeError(f"{where}: {key} is set twice")
        values[key] = value
    return values


def load_yaml_documents(path: Path) -> Iterator[Manifest]:
    with path.open(encoding="utf-8") as stream:
        for document in yaml.safe_load_all(stream):
            if document is not None:
                yield document


# --- loading -----------------------------------------------------------------------------


def _read_kustomization(directory: Path) -> dict[str, Any]:
    path = directory / KUSTOMIZATION_FILE
    if not path.is_file():
        raise KustomizeError(f"{directory}: no {KUSTOMIZATION_FILE}")
    kustomization = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = sorted(set(kustomization) - SUPPORTED_FIELDS)
    if unknown:
        raise UnsupportedFeature(f"{path}: unsupported field(s) {', '.join(unknown)}")
    if kustomization.get("kind", "Kustomization") != "Kustomization":
        raise UnsupportedFeature(f"{path}: kind {kustomization['kind']!r} (only Kustomization)")
    return dict(kustomization)


def _load_resource_entry(directory: Path, entry: str) -> Iterable[Resource]:
    if "://" in entry or entry.startswith("github.com/"):
        raise UnsupportedFeature(f"{directory}: remote resource {entry!r}")
    target = (directory / entry).resolve()
    if target.is_dir():
        return accumulate(target).resources
    if not target.is_file():
        raise KustomizeError(f"{directory}: resource {entry!r} does not exist")
    return [Resource(manifest) for manifest in load_yaml_documents(target)]


# --- generators and transformers -----------------------------------------------------------


def _generate_config_map(result: Build, directory: Path, generator: dict[str, Any]) -> None:
    unknown = sorted(set(generator) - {"name", "envs", "literals", "behavior"})
    if unknown:
        raise UnsupportedFeature(f"configMapGenerator field(s) {', '.join(unknown)}")
    name = generator["name"]
    data: dict[str, str] = {}
    for env_file in generator.get("envs", []):
        data.update(parse_env_file(directory / env_file))
    for literal in generator.get("literals", []):
        key, _, value = str(literal).partition("=")
        data[key] = value
    behavior = generator.get("behavior", "create")
    existing = result.find("ConfigMap", name)
    if behavior == "create":
        if existing is not None:
            raise KustomizeError(f"configMapGenerator {name!r} exists already: use behavior")
        manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
        result.add(Resource({**manifest, "data": dict(sorted(data.items()))}, True), directory)
        return
    if existing is None or not existing.generated:
        raise KustomizeError(f"configMapGenerator {name!r}: nothing generated to {behavior}")
    if behavior == "merge":
        data = {**existing.manifest.get("data", {}), **data}
    elif behavior != "replace":
        raise KustomizeError(f"configMapGenerator {name!r}: unknown behavior {behavior!r}")
    existing.manifest["data"] = dict(sorted(data.items()))


def _apply_patch_file(result: Build, directory: Path, entry: dict[str, Any]) -> None:
    if set(entry) != {"path"}:
        raise UnsupportedFeature(f"patch entry {entry!r}: only {{path: FILE}} is supported")
    for patch in load_yaml_documents(directory / entry["path"]):
        kind, name = patch["kind"], patch["metadata"]["name"]
        target = result.find(kind, name)
        if target is None or _group(target.manifest) != _group(patch):
            raise KustomizeError(f"{entry['path']}: no {kind}/{name} to patch")
        if is_delete_patch(patch):
            result.resources.remove(target)
            continue
        body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
        target.manifest = merge_patch(target.manifest, body)


def _set_namespace(result: Build, namespace: str) -> None:
    for resource in result.resources:
        if resource.kind not in CLUSTER_SCOPED_KINDS:
            resource.manifest["metadata"]["namespace"] = namespace


def _add_labels(result: Build, entry: dict[str, Any]) -> None:
    unknown = sorted(set(entry) - {"pairs", "includeSelectors", "includeTemplates"})
    if unknown or entry.get("includeSelectors") or entry.get("includeTemplates"):
        raise UnsupportedFeature(f"labels entry {entry!r}: only metadata labels (pairs)")
    for resource in result.resources:
        labels = resource.manifest["metadata"].setdefault("labels", {})
        labels.update(entry["pairs"])


def _set_image(result: Build, entry: dict[str, Any]) -> None:
    unknown = sorted(set(entry) - {"name", "newName", "newTag", "digest"})
    if unknown:
        raise UnsupportedFeature(f"images field(s) {', '.join(unknown)}")
    for container in _containers(result.resources):
        image = str(container.get("image", ""))
        repository, suffix = _split_image(image)
        if repository != entry["name"]:
            continue
        if "digest" in entry:
            suffix = f"@{entry['digest']}"
        elif "newTag" in entry:
            suffix = f":{entry['newTag']}"
        container["image"] = f"{entry.get('newName', repository)}{suffix}"


def _set_replicas(result: Build, entry: dict[str, Any]) -> None:
    targets = [r for r in result.resources if r.kind in SCALABLE_KINDS and r.name == entry["name"]]
    if not targets:
        raise KustomizeError(f"replicas: no workload named {entry['name']!r}")
    for resource in targets:
        resource.manifest["spec"]["replicas"] = int(entry["count"])


def _rewrite_config_map_references(manifest: Manifest, renamed: dict[str, str]) -> None:
    if manifest.get("kind") not in POD_TEMPLATE_KINDS:
        return
    pod = manifest["spec"]["template"]["spec"]
    refs: list[dict[str, Any]] = [
        v["configMap"] for v in pod.get("volumes", []) if "configMap" in v
    ]
    for container in _containers([Resource(manifest)]):
        refs += [e["configMapRef"] for e in container.get("envFrom", []) if "configMapRef" in e]
        refs += [
            e["valueFrom"]["configMapKeyRef"]
            for e in container.get("env", [])
            if "configMapKeyRef" in e.get("valueFrom", {})
        ]
    for ref in refs:
        ref["name"] = renamed.get(ref["name"], ref["name"])


def _containers(resources: Iterable[Resource]) -> Iterator[dict[str, Any]]:
    for resource in resources:
        if resource.kind not in POD_TEMPLATE_KINDS:
            continue
        pod = resource.manifest["spec"]["template"]["spec"]
        yield from pod.get("initContainers", [])
        yield from pod.get("containers", [])


def _split_image(image: str) -> tuple[str, str]:
    """``registry:5000/app:1.0`` -> (``registry:5000/app``, ``:1.0``); digests likewise."""
    if "@" in image:
        repository, digest = image.split("@", 1)
        return repository, f"@{digest}"
    head, _, last = image.rpartition("/")
    if ":" in last:
        name, tag = last.split(":", 1)
        return f"{head}/{name}" if head else name, f":{tag}"
    return image, ""


def _group(manifest: Manifest) -> str:
    api_version = str(manifest.get("apiVersion", ""))
    return api_version.split("/")[0] if "/" in api_version else ""


def _go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it: sorted keys, compact, UTF-8, HTML-escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
