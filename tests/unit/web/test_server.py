"""How the edge server logs requests it cannot parse: one short line, never a flood."""

from __future__ import annotations

import structlog
from aiohttp.http_exceptions import BadHttpMessage

from service.web.server import MalformedRequestLog
from tests.clock import FakeClock


def test_a_malformed_request_is_one_line_with_the_client_and_the_kind_of_error_only() -> None:
    error = BadHttpMessage("Invalid header value char: b'Authorization: Bearer tok\\x01en'")
    with structlog.testing.capture_logs() as logs:
        MalformedRequestLog(clock=FakeClock()).note("192.0.2.7", error)
    assert logs == [
        {
            "event": "http_request_malformed",
            "log_level": "info",
            "client": "192.0.2.7",
            "error": "BadHttpMessage",
            "suppressed": 0,
        }
    ]


def test_a_flood_is_one_line_a_second_counting_the_ones_left_out() -> None:
    clock = FakeClock()
    malformed = MalformedRequestLog(every=1.0, clock=clock)
    with structlog.testing.capture_logs() as logs:
        for _ in range(3 * 128):  # 128 a second for three seconds
            malformed.note("192.0.2.7", BadHttpMessage("x"))
            clock.advance(1 / 128)
    assert [line["suppressed"] for line in logs] == [0, 127, 127]
