"""The README's configuration tables are the settings model, variable for variable, and its
architecture tree is the source tree, package for package and module for module."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SERVICE = ROOT / "service"
ROW = re.compile(r"^\| `([A-Z0-9_]+)` \| (.+?) \| (.+) \|$")


def _rows() -> dict[str, str]:
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return {m[1]: m[2] for line in section.splitlines() if (m := ROW.match(line))}


def test_every_setting_is_documented_and_nothing_else() -> None:
    assert set(_rows()) == {name.upper() for name in Settings.model_fields}


def test_documented_defaults_match_the_model() -> None:
    for variable, shown in _rows().items():
        default = Settings.model_fields[variable.lower()].default
        if default is None:
            assert shown == "none", variable
            continue
        value = default.get_secret_value() if hasattr(default, "get_secret_value") else default
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        assert shown == f"`{value}`", variable


def test_quick_start_is_exactly_the_two_make_commands() -> None:
    block = README.read_text().split("## Quick start", 1)[1].split("```sh", 1)[1].split("```")[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]


def _architecture() -> str:
    return README.read_text().split("## Architecture", 1)[1].split("\n## ", 1)[0]


def _tree() -> tuple[str, str]:
    """The architecture tree, as its ``service/`` part and its ``consumers/`` part."""
    blocks = _architecture().split("```")[1::2]
    tree = next(block for block in blocks if block.lstrip().startswith("service/"))
    service, consumers = tree.split("\nconsumers/\n")
    return service, consumers


def _packages(directory: Path, prefix: str = "") -> list[str]:
    return sorted(f"{prefix}{d.name}/" for d in directory.iterdir() if (d / "__init__.py").exists())


def _modules(directory: Path) -> list[str]:
    return sorted(f.name for f in directory.glob("*.py") if f.name != "__init__.py")


def _unnamed(names: list[str], text: str) -> list[str]:
    """The names ``text`` does not name as a word of its own (``common/`` is not named by
    ``providers/common/``)."""
    return [name for name in names if not re.search(rf"(?<![\w/.]){re.escape(name)}", text)]


def test_the_architecture_tree_names_every_package_and_top_level_module_of_service() -> None:
    service, _ = _tree()
    packages = _packages(SERVICE) + _packages(SERVICE / "providers", "providers/")
    assert _unnamed(packages + _modules(SERVICE), service) == []


def test_the_architecture_tree_names_every_module_it_lists_file_by_file() -> None:
    service, _ = _tree()
    listed = _modules(SERVICE / "contract") + _modules(SERVICE / "providers" / "common")
    assert _unnamed(listed, service) == []


def test_the_architecture_tree_names_every_consumers_module() -> None:
    _, consumers = _tree()
    assert _unnamed(_modules(ROOT / "consumers"), consumers) == []


def test_the_layers_sentence_names_every_layer_of_the_import_contract() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = contracts["contracts"][0]["layers"]
    names = [name.strip().removeprefix("service.") for layer in layers for name in layer.split("|")]
    sentence = _architecture().split("A layer imports only the layers below it:", 1)[1]
    sentence = sentence.split("at the bottom.", 1)[0]
    assert [name for name in names if f"`{name}`" not in sentence] == []
