"""Strategic-merge patching, reduced to the cases deploy/ uses; the rest is refused, not guessed.

Maps merge recursively and ``null`` deletes a key. Lists of built-in workload kinds merge by
their Kubernetes ``patchMergeKey`` (containers by name, volumeMounts by mountPath, ...): the
patch's elements come first, in patch order, then the original elements the patch did not
name, which is the order kustomize produces. Other lists are replaced. Patch directives other
than a whole-object ``$patch: delete`` raise ``UnsupportedFeature``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from tests.deploy.errors import UnsupportedFeature

# patchMergeKey of the list fields of a pod template (k8s.io/api core/v1), by field name.
POD_LIST_MERGE_KEYS: Mapping[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}

# Kinds whose lists follow POD_LIST_MERGE_KEYS. Patching a list anywhere else is refused:
# Service ports merge by "port" and custom resources have no merge keys at all.
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})

DELETE_DIRECTIVE = {"$patch": "delete"}


def is_delete_patch(patch: Mapping[str, Any]) -> bool:
    """True for a whole-object ``$patch: delete``, which removes the targeted resource."""
    return patch.get("$patch") == "delete"


def merge_patch(original: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``original`` with ``patch`` applied; neither argument is modified."""
    lists_merge = original.get("kind") in WORKLOAD_KINDS
    return _merge_map(original, patch, lists_merge=lists_merge, path=())


def _merge_map(
    original: Mapping[str, Any],
    patch: Mapping[str, Any],
    *,
    lists_merge: bool,
    path: tuple[str, ...],
) -> dict[str, Any]:
    merged = copy.deepcopy(dict(original))
    for key, value in patch.items():
        where = (*path, key)
        if key.startswith("$"):
            raise UnsupportedFeature(f"patch directive {key!r} at {'.'.join(where)}")
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_map(merged[key], value, lists_merge=lists_merge, path=where)
        elif isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = _merge_list(merged[key], value, lists_merge=lists_merge, path=where)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_list(
    original: list[Any], patch: list[Any], *, lists_merge: bool, path: tuple[str, ...]
) -> list[Any]:
    field = path[-1]
    if not lists_merge:
        raise UnsupportedFeature(
            f"patching the list {'.'.join(path)}: only lists of workload kinds are merged here"
        )
    merge_key = POD_LIST_MERGE_KEYS.get(field)
    if merge_key is None:
        return copy.deepcopy(patch)  # no patchMergeKey: the patch replaces the list
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise UnsupportedFeature(
                f"an element of {'.'.join(path)} without its merge key {merge_key!r}"
            )
        if any(key.startswith("$") for key in item):
            raise UnsupportedFeature(f"patch directives in elements of {'.'.join(path)}")
    by_key = {item[merge_key]: item for item in original}
    named = {item[merge_key] for item in patch}
    merged = [
        _merge_map(by_key[item[merge_key]], item, lists_merge=True, path=path)
        if item[merge_key] in by_key
        else copy.deepcopy(item)
        for item in patch
    ]
    merged.extend(copy.deepcopy(item) for item in original if item[merge_key] not in named)
    return merged
