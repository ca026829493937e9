"""structlog setup: JSON or console lines, per-command context via contextvars, secrets redacted.

Redaction is a processor, so it holds for every logger whatever a call site passes.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"

# Keys whose values are secrets wherever they appear in an event dict.
_SECRET_KEY = re.compile(
    r"(api[_-]?key|secret|token|password|authorization|signature|amqp_url|x-api-key)", re.I
)
# Secret-looking substrings inside free text: MsgFlash keys, bearer tokens, URL credentials.
_SECRET_TEXT = (
    (re.compile(r"msgf_(live|team)_[A-Za-z0-9]+"), r"msgf_\1_" + REDACTED),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + REDACTED),
    (re.compile(r"(://[^:/@\s]+:)[^@/\s]+@"), r"\1" + REDACTED + "@"),
)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secrets and secret-shaped substrings from free text."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    # Every log line passes here: only run a pattern when its marker is present at all.
    lowered = text.lower()
    for (pattern, replacement), marker in zip(_SECRET_TEXT, _MARKERS, strict=True):
        if marker in lowered:
            text = pattern.sub(replacement, text)
    return text


_MARKERS = ("msgf_", "bearer", "@")


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


class SecretRedactor:
    """structlog processor: drops secret values by key and scrubs them out of any string."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            event_dict[key] = self._clean(key, value)
        return event_dict

    def _clean(self, key: str, value: Any) -> Any:
        if value is not None and _is_secret_key(key):
            return REDACTED
        if isinstance(value, str):
            return redact_text(value, self._secrets)
        if isinstance(value, dict):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(key, v) for v in value]
        return value


def configure_logging(
    *,
    log_format: str = "json",
    level: str = "info",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog once per process (the runtime calls it with the settings)."""
    renderer: Any
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            SecretRedactor(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=True,
    )
    # Libraries (aio-pika, aiohttp access log) log through stdlib: keep them quiet but visible.
    logging.basicConfig(level=logging.WARNING, stream=stream or sys.stderr, force=True)
