"""The Dockerfile builds by construction: no engine runs here, so its structure is checked.

Two stages on python:3.11-slim; the first turns the project into wheels with pip (the same
build as CI's ``pip install .``), the last installs only those wheels, runs as a fixed
non-root UID and starts ``msgflash-relay run``. Everything it copies exists and survives
.dockerignore.
"""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from tests.deploy.dockerfile import Dockerfile, DockerIgnore, Stage, parse_dockerfile
from tests.deploy.manifests import (
    ADMIN_PORT,
    DOCKERFILE,
    HTTP_PORT,
    REPO_ROOT,
    relay_deployment,
)

DOCKERIGNORE = REPO_ROOT / ".dockerignore"
BASE_IMAGE = "python:3.11-slim"
RELAY_UID = 10001


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(dockerfile: Dockerfile) -> Stage:
    return dockerfile.stages[-1]


@pytest.fixture(scope="module")
def dockerignore() -> DockerIgnore:
    return DockerIgnore(DOCKERIGNORE.read_text(encoding="utf-8"))


def _context_sources(dockerfile: Dockerfile) -> list[str]:
    sources = []
    for stage in dockerfile.stages:
        for copy in stage.all("COPY") + stage.all("ADD"):
            flags, words = copy.flags_and_words()
            if "from" not in flags:
                sources.extend(words[:-1])
    return sources


def test_both_stages_start_from_python_3_11_slim(dockerfile: Dockerfile) -> None:
    assert [s.name for s in dockerfile.stages] == ["build", "runtime"]
    assert {dockerfile.resolve(s.base) for s in dockerfile.stages} == {BASE_IMAGE}


def test_build_stage_turns_the_project_into_wheels_with_pip(dockerfile: Dockerfile) -> None:
    runs = [r.arguments for r in dockerfile.stage("build").all("RUN")]
    assert any("pip wheel" in r and '--wheel-dir /wheels ".[otel]"' in r for r in runs)


def test_final_stage_installs_only_the_build_stages_wheels(final: Stage) -> None:
    assert not final.all("COPY") and not final.all("ADD"), "no source tree in the final image"
    (install,) = (r for r in final.all("RUN") if "pip install" in r.arguments)
    (mount,) = install.mounts()
    assert mount == {"type": "bind", "from": "build", "source": "/wheels", "target": "/wheels"}
    assert '--no-index --find-links /wheels "msgflash-relay[otel]"' in install.arguments
    for run in final.all("RUN"):
        for tool in ("apt-get", "gcc", "pip install .", "[dev]"):
            assert tool not in run.arguments, f"line {run.line}: {tool} in the final stage"


def test_final_stage_runs_as_the_fixed_non_root_uid_the_pod_expects(final: Stage) -> None:
    user = final.last("USER")
    assert user is not None
    assert all(run.line < user.line for run in final.all("RUN")), "RUN after USER: as whom?"
    uid, _, gid = user.arguments.partition(":")
    assert int(uid) == RELAY_UID and int(gid or uid) == RELAY_UID
    pod = relay_deployment("prod")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == RELAY_UID


def test_entrypoint_is_the_console_script_and_the_default_command_is_run(final: Stage) -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    entrypoint, cmd = final.last("ENTRYPOINT"), final.last("CMD")
    assert entrypoint is not None and cmd is not None
    assert entrypoint.json_form() == ["msgflash-relay"]
    assert "msgflash-relay" in pyproject["project"]["scripts"]
    assert cmd.json_form() == ["run"]


def test_the_public_and_admin_ports_are_exposed(final: Stage) -> None:
    assert [e.arguments for e in final.all("EXPOSE")] == [f"{HTTP_PORT} {ADMIN_PORT}"]


def test_healthcheck_probes_healthz_with_python_not_curl(final: Stage) -> None:
    healthcheck = final.last("HEALTHCHECK")
    assert healthcheck is not None
    options, _, command = healthcheck.arguments.partition("CMD ")
    probe = json.loads(command)
    assert probe[:2] == ["python", "-c"]
    assert "urllib.request" in probe[2] and "/healthz" in probe[2]
    assert "RELAY_ADMIN_PORT" in probe[2] and "'9090'" in probe[2]
    assert "--timeout=" in options and "--interval=" in options


def test_image_carries_oci_labels(final: Stage) -> None:
    labels = " ".join(label.arguments for label in final.all("LABEL"))
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_build_time_variables_are_declared_in_the_stage_that_uses_them(
    dockerfile: Dockerfile,
) -> None:
    variable = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
    for stage in dockerfile.stages:
        declared = {a.arguments.split("=")[0].strip() for a in stage.all("ARG")}
        declared |= {e.arguments.split("=")[0].strip() for e in stage.all("ENV")}
        for instruction in stage.instructions:
            if instruction.keyword in ("LABEL", "ENV", "WORKDIR", "USER", "COPY", "EXPOSE"):
                for name in variable.findall(instruction.arguments):
                    assert name in declared, f"line {instruction.line}: ${name} is not declared"


def test_every_copied_path_exists_in_the_repository(dockerfile: Dockerfile) -> None:
    sources = _context_sources(dockerfile)
    assert {"pyproject.toml", "README.md", "service", "consumers"} <= set(sources)
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such path in the repository"


def test_every_copied_file_survives_the_dockerignore(
    dockerfile: Dockerfile, dockerignore: DockerIgnore
) -> None:
    for source in _context_sources(dockerfile):
        path = REPO_ROOT / source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(REPO_ROOT).as_posix()
            if "__pycache__" in relative:
                continue
            assert not dockerignore.excludes(relative), f"{relative} is excluded by .dockerignore"


@pytest.mark.parametrize(
    "path",
    [".venv/bin/python", ".git/HEAD", "relay-state.db", "service/__pycache__/x.pyc", "deploy"],
)
def test_local_state_and_tooling_stay_out_of_the_build_context(
    dockerignore: DockerIgnore, path: str
) -> None:
    assert dockerignore.excludes(path)


def test_package_data_the_wheel_needs_is_in_the_context(dockerignore: DockerIgnore) -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for package, patterns in pyproject["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            for file in (REPO_ROOT / package).glob(pattern):
                assert not dockerignore.excludes(file.relative_to(REPO_ROOT).as_posix())


# --- the parsers themselves -----------------------------------------------------------------


def test_parser_joins_continuations_skips_comments_and_reads_stages() -> None:
    parsed = parse_dockerfile(
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=python:3.11-slim\n"
        "FROM ${BASE} AS build\n"
        "RUN a \\\n"
        "    # dropped\n"
        "    && b\n"
        "FROM ${BASE}\n"
        'CMD ["run"]\n'
    )
    assert parsed.global_args == {"BASE": "python:3.11-slim"}
    assert [(s.name, parsed.resolve(s.base)) for s in parsed.stages] == [
        ("build", "python:3.11-slim"),
        (None, "python:3.11-slim"),
    ]
    (run,) = parsed.stages[0].all("RUN")
    assert (run.arguments, run.line) == ("a && b", 4)
    cmd = parsed.stages[1].last("CMD")
    assert cmd is not None and cmd.json_form() == ["run"]


def test_dockerignore_last_matching_pattern_wins_and_parents_count() -> None:
    ignore = DockerIgnore("*\n!src/\nsrc/secret.txt\n**/*.pyc\n")
    assert ignore.excludes("other.txt")
    assert not ignore.excludes("src/app.py")
    assert ignore.excludes("src/secret.txt")
    assert ignore.excludes("src/deep/x.pyc")
