"""Template placeholders: ``{{namespace.path}}`` parsing and rendering (pure).

Only four namespaces exist (contact, user, instance, custom); a bare ``{{firstName}}`` is a
syntax error (TEMPLATE_INVALID). Request ``variables`` are flat and land under ``custom.*``
literally: ``{"custom": {"x": 1}}`` defines ``custom.custom``, never ``custom.x``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NAMESPACES = ("contact", "user", "instance", "custom")
_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_PATH = re.compile(r"^(contact|user|instance|custom)(\.[A-Za-z0-9_]+)+$")


class TemplateSyntaxError(ValueError):
    """A placeholder outside the grammar; the message names it and the fix."""


@dataclass(frozen=True, slots=True)
class Rendering:
    text: str | None
    used: tuple[str, ...]  # every path the template references
    missing: tuple[str, ...]  # the ones the context could not resolve


def template_variables(text: str | None) -> tuple[str, ...]:
    """The paths a template uses, in order of first appearance."""
    if text is None:
        return ()
    paths: list[str] = []
    for match in _PLACEHOLDER.finditer(text):
        path = match.group(1)
        if not _PATH.match(path):
            raise TemplateSyntaxError(
                f"invalid placeholder {{{{{path}}}}}: use {{{{namespace.path}}}} with a namespace "
                f"among {', '.join(NAMESPACES)}, e.g. {{{{custom.firstName}}}}"
            )
        paths.append(path)
    leftover = _PLACEHOLDER.sub("", text)
    if "{{" in leftover or "}}" in leftover:
        raise TemplateSyntaxError("unbalanced braces: every '{{' needs a matching '}}'")
    return tuple(dict.fromkeys(paths))


def render(text: str | None, context: Mapping[str, str]) -> Rendering:
    """Substitute every resolvable placeholder; list the ones left unresolved."""
    used = template_variables(text)
    missing = tuple(path for path in used if path not in context)
    if text is None:
        return Rendering(None, used, missing)

    def substitute(match: re.Match[str]) -> str:
        return context.get(match.group(1), match.group(0))

    return Rendering(_PLACEHOLDER.sub(substitute, text), used, missing)


def build_context(
    *,
    user: Mapping[str, Any],
    instance_name: str | None,
    contact: Mapping[str, Any] | None,
    variables: Mapping[str, Any] | None,
) -> dict[str, str]:
    """The flat path -> text table a render resolves against."""
    context: dict[str, str] = {}
    for key in ("fullName", "email", "phone"):
        _put(context, f"user.{key}", user.get(key))
    _put(context, "instance.name", instance_name)
    if contact is not None:
        name = str(contact.get("name") or "")
        _put(context, "contact.name", name)
        # How MsgFlash derives firstName is undocumented: the first word of the name.
        _put(context, "contact.firstName", name.split()[0] if name.split() else None)
        _put(context, "contact.phone", contact.get("phone"))
        _put(context, "contact.tags", ", ".join(contact.get("tags") or ()))
        _flatten(context, "contact.meta", contact.get("meta") or {})
    for key, value in (variables or {}).items():
        _put(context, f"custom.{key}", value)
    return context


def _flatten(context: dict[str, str], prefix: str, value: Mapping[str, Any]) -> None:
    for key, item in value.items():
        if isinstance(item, Mapping):
            _flatten(context, f"{prefix}.{key}", item)
        else:
            _put(context, f"{prefix}.{key}", item)


def _put(context: dict[str, str], path: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, str):
        context[path] = value
    elif isinstance(value, bool):
        context[path] = "true" if value else "false"
    elif isinstance(value, int | float):
        context[path] = str(value)
    else:
        context[path] = json.dumps(value, separators=(",", ":"))
