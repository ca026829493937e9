"""structlog setup: JSON or console lines, per-command context via contextvars, secrets redacted.

Redaction is two processors, so it holds for every logger whatever a call site passes: values
of secret-named keys before rendering, secret text in the rendered line after it.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from pydantic_core import PydanticSerializationError, to_json
from structlog.typing import Processor

REDACTED = "[redacted]"

Renderer = Callable[[Any, str, MutableMapping[str, Any]], str | bytes]

# Keys whose values are secrets wherever they appear in an event dict.
_SECRET_KEY = re.compile(
    r"(api[_-]?key|secret|token|password|authorization|signature|amqp_url|x-api-key)", re.I
)
# Secret-looking substrings inside free text: MsgFlash keys, bearer tokens, URL credentials. A
# bearer token runs to the next space or quote, escapes included: a token a client garbled
# with a control character is still a token.
_SECRET_TEXT = (
    (re.compile(r"msgf_(live|team)_[A-Za-z0-9]+"), r"msgf_\1_" + REDACTED),
    (re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), r"\1" + REDACTED),
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


# Every line passes the key check once per key: a plain dict answers the keys seen before
# without a call; bounded, since keys come from call sites (and a library's record fields).
_KEY_IS_SECRET: dict[str, bool] = {}
_KNOWN_KEYS_MAX = 4096
_CONTAINERS = (dict, list, tuple)


def _secret_key(key: str) -> bool:
    known = _KEY_IS_SECRET.get(key)
    if known is None:
        known = _is_secret_key(key)
        if len(_KEY_IS_SECRET) < _KNOWN_KEYS_MAX:
            _KEY_IS_SECRET[key] = known
    return known


class SecretKeyRedactor:
    """structlog processor: replaces the value of any secret-named key, at any depth.

    Runs before rendering, since a key's name is lost once the line is text. Only containers are
    walked; free text is left to ``SecretTextScrubber``, which sees the finished line.
    """

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            if value is None:
                continue
            if _secret_key(key):
                event_dict[key] = REDACTED
            elif isinstance(value, _CONTAINERS):
                event_dict[key] = _redact_keys(value)
        return event_dict


def _redact_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: REDACTED if v is not None and _is_secret_key(str(k)) else _redact_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_keys(v) for v in value]
    return value


class ScrubbedRenderer:
    """structlog processor: renders the line, then scrubs secrets out of the finished text.

    One pass over the text covers every value, however a call site nested, formatted or repr'd
    it, for the price of a few substring checks. Each known secret is also looked for in its
    JSON- and repr-escaped spellings, which is how the renderer may have written it.
    """

    def __init__(self, render: Renderer, secrets: Iterable[str] = ()) -> None:
        self._render = render
        spellings = set()
        for secret in secrets:
            if secret:
                spellings.update({secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]})
        self._secrets = tuple(sorted(spellings, key=len, reverse=True))

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        line = self._render(logger, method, event_dict)
        text = line.decode() if isinstance(line, bytes) else line
        return redact_text(text, self._secrets)


class UtcTimestamper:
    """structlog processor: ``timestamp`` as ISO 8601 UTC with microseconds and ``Z``, as
    ``TimeStamper(fmt="iso", utc=True)`` writes it, but with the date and time of day
    formatted once per second rather than once per line, which every line pays for."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # One tuple, replaced whole: a library's thread logging at the same time reads a
        # second and its text together, never one without the other.
        self._second: tuple[int, str] = (-1, "")

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        now = self._clock()
        second, prefix = self._second
        if int(now) != second:
            second = int(now)
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, prefix)
        micros = min(int((now - second) * 1_000_000), 999_999)
        event_dict["timestamp"] = f"{prefix}.{micros:06d}Z"
        return event_dict


def add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the active span's ``trace_id`` and ``span_id``, so a line joins its
    trace; nothing when no span is recording (tracing off)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = trace.format_trace_id(context.trace_id)
        event_dict["span_id"] = trace.format_span_id(context.span_id)
    return event_dict


def _json_line(event_dict: Any, **dumps_kw: Any) -> str:
    """pydantic-core's serializer (several times faster than ``json.dumps`` on a log line);
    values it cannot write, like undecodable bytes, fall back to ``json.dumps`` with structlog's
    handler in ``dumps_kw``."""
    try:
        return to_json(event_dict, fallback=repr).decode()
    except PydanticSerializationError:
        return json.dumps(event_dict, **dumps_kw)


def configure_logging(
    *,
    log_format: str = "json",
    level: str = "info",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog once per process (the runtime calls it with the settings).

    The standard library's records (aiohttp, aiormq, asyncio, anything) go through the same
    redaction and renderer as the relay's own lines, so JSON mode writes nothing but JSON
    objects, one a line, and a library's traceback cannot carry a secret past the scrubber.
    """
    renderer: Renderer
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json_line)
    output = stream or sys.stdout
    stamped: list[Processor] = [
        add_trace_ids,
        structlog.processors.add_log_level,
        UtcTimestamper(),
    ]
    finishing: list[Processor] = [
        structlog.processors.format_exc_info,
        SecretKeyRedactor(),
        ScrubbedRenderer(renderer, secrets),
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *stamped, *finishing],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # One write per line (print() makes two when Python runs unbuffered, as in the image).
        logger_factory=structlog.WriteLoggerFactory(output),
        cache_logger_on_first_use=True,
    )
    _route_standard_library(output, [structlog.stdlib.add_logger_name, *stamped], finishing)
    # Libraries stay quiet but visible, unless the relay itself is asked for debug lines.
    logging.getLogger().setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    logging.getLogger("aiormq.connection").addFilter(_said_by_the_relay)


def _said_by_the_relay(record: logging.LogRecord) -> bool:
    """Drop aiormq's own line for a failed connect: the relay's ``amqp_connect_failed`` and the
    tools' error already say it, with what to do."""
    return not str(record.msg).startswith("error when creating transport")


def _route_standard_library(
    stream: TextIO, pre_chain: list[Processor], finishing: list[Processor]
) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=pre_chain,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *finishing],
        )
    )
    root = logging.getLogger()
    for previous in root.handlers:
        root.removeHandler(previous)
    root.addHandler(handler)
