"""Packaging metadata that an install shows: no deprecated forms, so no warnings at install."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# An SPDX expression of one identifier: a listed licence id or a LicenseRef- of our own.
SPDX_ID = re.compile(r"^(LicenseRef-[A-Za-z0-9.-]+|[A-Za-z0-9.+-]+)$")


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_string_not_the_deprecated_table() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert isinstance(project["license"], str)
    assert SPDX_ID.match(project["license"])


def test_build_backend_understands_spdx_license_strings() -> None:
    build = _pyproject()["build-system"]
    assert isinstance(build, dict)
    assert "setuptools>=77" in build["requires"]


def test_image_label_names_the_same_license() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    label = f'org.opencontainers.image.licenses="{project["license"]}"'
    assert label in (ROOT / "Dockerfile").read_text()
