"""Secrets never reach a log line, whatever the call site passes."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from aiohttp import web

from service.logs import REDACTED, UtcTimestamper, configure_logging

KEY = "msgf_live_" + "cd" * 32


def _log_line(**fields: object) -> dict[str, object]:
    stream = io.StringIO()
    configure_logging(log_format="json", level="info", secrets=["s3cr3t-value"], stream=stream)
    structlog.get_logger("test").info("something_happened", **fields)
    return json.loads(stream.getvalue().strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_secret_keys_are_redacted() -> None:
    line = _log_line(api_key=KEY, webhook_secret="x", authorization="Bearer abc")
    assert line["api_key"] == line["webhook_secret"] == line["authorization"] == REDACTED


def test_secret_shaped_text_is_scrubbed_anywhere() -> None:
    line = _log_line(
        error=f"call failed with {KEY}",
        url="amqp://guest:hunter2@broker:5672/",
        note="Authorization: Bearer tok.en-123",
        nested={"detail": "known s3cr3t-value here"},
    )
    text = json.dumps(line)
    for leaked in (KEY, "hunter2", "tok.en-123", "s3cr3t-value"):
        assert leaked not in text
    assert line["event"] == "something_happened"


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_bearer_token_garbled_with_a_control_character_is_scrubbed_whole(
    log_format: str,
) -> None:
    stream = io.StringIO()
    configure_logging(log_format=log_format, level="info", stream=stream)
    structlog.get_logger("test").info("refused", note="Authorization: Bearer other-tok\x01en-456")
    text = stream.getvalue()
    assert "other-tok" not in text and "en-456" not in text
    assert "Bearer [redacted]" in text


def test_escaped_spellings_of_a_secret_are_scrubbed_too() -> None:
    secret = 'quo"te\\and-é'
    for log_format in ("json", "console"):
        stream = io.StringIO()
        configure_logging(log_format=log_format, level="info", secrets=[secret], stream=stream)
        structlog.get_logger("test").info("failed", error=f"said {secret}", nested={"x": [secret]})
        text = stream.getvalue()
        for spelling in (secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]):
            assert spelling not in text, (log_format, text)
        assert "failed" in text


def test_a_secret_in_an_exception_traceback_is_scrubbed() -> None:
    stream = io.StringIO()
    configure_logging(log_format="json", level="info", secrets=["s3cr3t-value"], stream=stream)
    try:
        raise RuntimeError("login with s3cr3t-value refused")
    except RuntimeError:
        structlog.get_logger("test").exception("call_crashed")
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert "s3cr3t-value" not in json.dumps(line)
    assert "RuntimeError" in line["exception"]


# --- every library's lines, through the same pipe -----------------------------------------
TOKEN = "ingress-s3cr3t-token-0123"


async def test_a_library_traceback_is_one_json_line_without_the_token_it_held(
    aiohttp_client: Any,
) -> None:
    stream = io.StringIO()
    configure_logging(log_format="json", level="info", secrets=[TOKEN], stream=stream)

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError(f"refused {request.headers['Authorization']}")

    app = web.Application()
    app.router.add_get("/", crash)
    client = await aiohttp_client(app)
    async with client.get("/", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 500

    lines = stream.getvalue().strip().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    [crashed] = [r for r in records if r.get("logger") == "aiohttp.server"]
    assert crashed["level"] == "error"
    assert "RuntimeError" in crashed["exception"]
    assert TOKEN not in stream.getvalue()


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_library_loggers_are_scrubbed_like_the_relays_own(log_format: str) -> None:
    stream = io.StringIO()
    configure_logging(log_format=log_format, level="info", secrets=[TOKEN], stream=stream)

    logging.getLogger("aiormq.connection").warning(
        "connection to amqp://relay:hunter2@broker:5672/ lost, header %s", f"Bearer {TOKEN}"
    )
    logging.getLogger("asyncio").error("Task exception was never retrieved: %s", KEY)

    text = stream.getvalue()
    for leaked in ("hunter2", TOKEN, KEY):
        assert leaked not in text
    if log_format == "json":
        names = [json.loads(line)["logger"] for line in text.strip().splitlines()]
        assert names == ["aiormq.connection", "asyncio"]


def test_library_debug_lines_show_only_when_the_relay_is_asked_for_debug() -> None:
    for level, shown in (("info", False), ("debug", True)):
        stream = io.StringIO()
        configure_logging(log_format="json", level=level, stream=stream)
        logging.getLogger("aiohttp.access").debug("GET / 200")
        assert bool(stream.getvalue()) is shown


def test_a_line_logged_inside_a_span_carries_its_trace_and_span_ids() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("tests")
    with tracer.start_as_current_span("command") as span:
        inside = _log_line()
    outside = _log_line()

    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert "trace_id" not in outside and "span_id" not in outside


def test_a_secret_key_seen_before_is_redacted_again_and_nested_ones_too() -> None:
    for _ in range(2):  # the second line answers the keys from what the first one learnt
        line = _log_line(api_key=KEY, held={"token": "t", "items": [{"password": "p"}]}, n=None)
        assert line["api_key"] == REDACTED
        assert line["held"] == {"token": REDACTED, "items": [{"password": REDACTED}]}
        assert line["n"] is None


@pytest.mark.parametrize(
    ("now", "stamp"),
    [
        (1_780_000_000.25, "2026-05-28T20:26:40.250000Z"),
        (1_780_000_000.0, "2026-05-28T20:26:40.000000Z"),
        (1_780_000_000.9999995, "2026-05-28T20:26:40.999999Z"),
    ],
)
def test_the_timestamp_is_iso_utc_with_microseconds(now: float, stamp: str) -> None:
    assert UtcTimestamper(lambda: now)(None, "info", {})["timestamp"] == stamp


def test_the_timestamp_follows_the_clock_across_seconds() -> None:
    clock = iter([1_780_000_000.5, 1_780_000_000.75, 1_780_000_061.125])
    stamper = UtcTimestamper(lambda: next(clock))
    stamps = [stamper(None, "info", {})["timestamp"] for _ in range(3)]
    assert stamps == [
        "2026-05-28T20:26:40.500000Z",
        "2026-05-28T20:26:40.750000Z",
        "2026-05-28T20:27:41.125000Z",
    ]
    assert datetime.fromisoformat(stamps[2]) == datetime.fromtimestamp(1_780_000_061.125, UTC)
