"""The dead-letter listing is readable at a glance."""

from __future__ import annotations

from datetime import UTC, datetime

from service.bus.deadletters import ParkedCommand
from service.tools.dlq import format_table


def test_table_shows_code_attempts_age_id_and_message() -> None:
    parked = [
        ParkedCommand("cmd-1", "INVALID_EVENT", "data.to: not E.164", 0,
                      datetime(2026, 1, 1, tzinfo=UTC), "message.send"),
        ParkedCommand("cmd-2", "RETRIES_EXHAUSTED", "gave up", 25, None, "message.send"),
    ]  # fmt: skip
    now = datetime(2026, 1, 1, 2, 30, tzinfo=UTC).timestamp()
    lines = format_table(parked, now=now).splitlines()
    assert lines[0].split() == ["CODE", "ATTEMPTS", "AGE", "ID", "MESSAGE"]
    assert lines[1].split()[:4] == ["INVALID_EVENT", "0", "2.5h", "cmd-1"]
    assert lines[2].split()[:4] == ["RETRIES_EXHAUSTED", "25", "-", "cmd-2"]
    assert lines[-1] == "2 parked command(s)"
