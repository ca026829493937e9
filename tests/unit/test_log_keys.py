"""One key style in logs: camelCase, like the contract's event data (``requestId``), so a log
search for a field finds it whichever module logged it. Checked on the source of every call."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOG_METHODS = frozenset(
    {"debug", "info", "warning", "error", "exception", "critical", "bind", "bind_contextvars"}
)


def log_keys() -> Iterator[tuple[str, str]]:
    """(where, key) of every keyword passed to a structlog call in the relay's code."""
    for package in ("service", "consumers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                receiver = ast.unparse(node.func.value)
                if node.func.attr in LOG_METHODS and ("log" in receiver or "structlog" in receiver):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    yield from ((where, kw.arg) for kw in node.keywords if kw.arg)


def test_the_scan_sees_the_relays_log_calls() -> None:
    assert ("requestId" in {key for _, key in log_keys()}) and len(list(log_keys())) > 50


def test_every_log_key_is_camel_case() -> None:
    snake = [f"{where} {key}" for where, key in log_keys() if "_" in key]
    assert snake == []


def test_every_log_key_of_the_relay_is_documented_in_the_readme() -> None:
    section = (ROOT / "README.md").read_text().split("### Logs\n", 1)[1].split("\n#", 1)[0]
    documented = set(re.findall(r"`([A-Za-z]+)`", section))
    used = {key for where, key in log_keys() if "/sandbox/" not in where}
    assert used - documented == set()
