"""Every YAML file of the repository passes yamllint --strict with the committed .yamllint."""

from __future__ import annotations

from pathlib import Path

from yamllint import linter  # type: ignore[import-untyped]
from yamllint.cli import find_files_recursively  # type: ignore[import-untyped]
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

from tests.deploy.manifests import COMPOSE_FILE, DEPLOY, REPO_ROOT, yaml_files_under

CONFIG_FILE = REPO_ROOT / ".yamllint"


def _config() -> YamlLintConfig:
    return YamlLintConfig(file=str(CONFIG_FILE))


def _linted_files() -> list[Path]:
    return sorted(Path(p) for p in find_files_recursively([str(REPO_ROOT)], _config()))


def test_yamllint_covers_the_deployment_files_and_skips_the_virtualenv() -> None:
    linted = set(_linted_files())
    assert {COMPOSE_FILE, CONFIG_FILE, *yaml_files_under(DEPLOY)} <= linted
    assert not [p for p in linted if ".venv" in p.relative_to(REPO_ROOT).parts]


def test_every_yaml_file_passes_yamllint_strictly() -> None:
    config = _config()
    problems = []
    for path in _linted_files():
        text = path.read_text(encoding="utf-8")
        for problem in linter.run(text, config, str(path)):
            where = f"{path.relative_to(REPO_ROOT)}:{problem.line}:{problem.column}"
            problems.append(f"{where}: [{problem.level}] {problem.desc} ({problem.rule})")
    assert not problems, "\n".join(problems)


def test_the_config_catches_yaml_11_booleans_and_long_lines() -> None:
    text = "enabled: yes\nlong: " + "word " * 30 + "\n"
    rules = {problem.rule for problem in linter.run(text, _config())}
    assert {"truthy", "line-length"} <= rules
