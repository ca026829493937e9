"""Secrets never reach a log line, whatever the call site passes."""

from __future__ import annotations

import io
import json

import structlog

from service.logs import REDACTED, configure_logging

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
