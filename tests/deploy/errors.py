"""Why the offline kustomize renderer refused a kustomization."""

from __future__ import annotations


class KustomizeError(Exception):
    """A kustomization that kustomize itself would reject (missing file, unknown target...)."""


class UnsupportedFeature(KustomizeError):
    """A kustomize feature this renderer does not implement: extend it, or drop the feature.

    Raised instead of rendering something that would differ from ``kustomize build``.
    """
