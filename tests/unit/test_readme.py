"""The README's configuration tables are the settings model, variable for variable."""

from __future__ import annotations

import re
from pathlib import Path

from service.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
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
